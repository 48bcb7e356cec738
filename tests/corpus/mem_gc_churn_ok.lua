-- expect: exit=0
-- stdout: ok
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: 200 MB allocated in total under a 16 MB cap, little of it alive at once: the cap is on the
-- note: live heap, not on the total.
local total = 0
for i = 1, 200 do
  local s = string.rep(string.char(65 + i % 26), 1024 * 1024)
  total = total + #s
end
print(total == 200 * 1024 * 1024 and "ok" or "wrong")
return { on_message = function() return "" end }
