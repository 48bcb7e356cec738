-- expect: exit=1 stderr~instruction limit exceeded
-- args: --instr-limit 1000000 --time-limit 60000
-- max-ms: 5000
-- note: issue 15 class 4: coroutine.close(coroutine.running()) every few instructions re-armed
-- note: the count hook and reset its count: 23 million instructions were reported as 19, and
-- note: with no time limit the loop ran forever. Here the time limit is a minute away.
local n = 0
while true do
  n = n + 1
  pcall(coroutine.close, coroutine.running())
end
