-- expect: exit=1 stderr~instruction limit exceeded
-- args: --instr-limit 1000000 --time-limit 60000
-- max-ms: 5000
-- note: issue 15 class 4: from inside an agent coroutine, close the turn's own thread (normal)
-- note: and the running coroutine, in a loop: neither call may touch a count in progress.
local main = coroutine.running()
local f = coroutine.wrap(function()
  local n = 0
  while true do
    n = n + 1
    pcall(coroutine.close, main)
    pcall(coroutine.close, coroutine.running())
  end
end)
f()
