-- expect: exit=0
-- stdout: collected collected collected collected
-- args: --mem-limit 67108864 --time-limit 4000
-- max-ms: 6000
-- note: issue 15, also seen: collectgarbage("step", -2^31) put the collector 2 TiB in credit,
-- note: the refused "stop" by another name (and 2^32 + 2^31 wrapped to the same int). Steps are
-- note: now clamped to 0 .. a full cycle: garbage made afterwards is still collected.
local out = {}
for _, n in ipairs({ -2^31, -1, math.mininteger, 2^32 + 2^31 }) do
  collectgarbage("step", n)
  local peak = 0
  for i = 1, 100000 do
    local t = { i, i, i }
    if i % 1000 == 0 then peak = math.max(peak, collectgarbage("count")) end
  end
  collectgarbage()
  out[#out + 1] = peak < 8192 and "collected" or ("stopped at " .. peak .. " KiB")
end
print(table.concat(out, " "))
return { on_message = function() end }
