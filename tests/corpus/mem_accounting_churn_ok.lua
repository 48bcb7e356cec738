-- expect: exit=0
-- stdout: ok
-- args: --instr-limit 200000000 --time-limit 10000
-- max-ms: 15000
-- note: the allocator's accounting must not drift: 60 rounds of tables that grow and shrink
-- note: (realloc), strings of many sizes, closures, coroutines and buffers, all dropped each round,
-- note: under a 16 MB cap that the live data never comes near.
for round = 1, 60 do
  local t = {}
  for i = 1, 20000 do t[i] = i end
  for i = 20000, 1, -1 do t[i] = nil end
  local h = {}
  for i = 1, 5000 do h["k" .. i .. "_" .. round] = { i } end
  h = nil
  local parts = {}
  for i = 1, 200 do parts[i] = ("s"):rep(i * 37 % 5000) end
  local joined = table.concat(parts, ",")
  local cos = {}
  for i = 1, 200 do
    cos[i] = coroutine.wrap(function(a) local b = coroutine.yield(a) return b end)
    cos[i](i)
  end
  local fs = {}
  for i = 1, 2000 do fs[i] = function() return i + round end end
  local g = joined:gsub("s+", function(m) return #m end)
  collectgarbage("step")
end
collectgarbage("collect")
print(collectgarbage("count") < 4096 and "ok" or ("heap still " .. collectgarbage("count") .. " KB"))
return { on_message = function() return "" end }
