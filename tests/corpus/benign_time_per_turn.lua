-- expect: exit=0
-- input: x
-- stdout: first
-- stdout: second
-- args: --instr-limit 1000000000000 --time-limit 1000
-- max-ms: 3500
-- note: the time limit is per turn: each turn busy-waits 600 ms of CPU under a 1000 ms limit.
local function busy(ms)
  local t0 = os.clock()
  while (os.clock() - t0) * 1000 < ms do end
end
busy(600)
print("first")
return { on_message = function() busy(600) return "second" end }
