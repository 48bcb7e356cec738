-- expect: exit=0
-- input: x
-- stdout: first
-- stdout: second
-- args: --instr-limit 1000000000000 --time-limit 2000
-- max-ms: 6000
-- note: the time limit is per turn: each turn busy-waits 1200 ms of CPU under a 2000 ms limit (2400 ms in all).
local function busy(ms)
  local t0 = os.clock()
  while (os.clock() - t0) * 1000 < ms do end
end
busy(1200)
print("first")
return { on_message = function() busy(1200) return "second" end }
