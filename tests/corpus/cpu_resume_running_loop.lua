-- expect: exit=1 stderr~instruction limit exceeded
-- args: --instr-limit 1000000 --time-limit 60000
-- max-ms: 5000
-- note: issue 15 class 4: resuming the running coroutine (or the turn's thread from inside a
-- note: coroutine) fails, but must not re-arm the hook of the coroutine that asked.
local main = coroutine.running()
coroutine.wrap(function()
  local n = 0
  while true do
    n = n + 1
    coroutine.resume(coroutine.running())
    coroutine.resume(main)
  end
end)()
