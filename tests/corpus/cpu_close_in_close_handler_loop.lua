-- expect: exit=1 stderr~instruction limit exceeded
-- args: --instr-limit 1000000 --time-limit 60000
-- max-ms: 5000
-- note: issue 15 class 4 from inside callbacks: a __close handler of a coroutine being closed
-- note: closes the closing coroutine and the turn's thread, over and over.
local main = coroutine.running()
local co
co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function()
    while true do
      pcall(coroutine.close, co)
      pcall(coroutine.close, main)
    end
  end })
  coroutine.yield()
end)
coroutine.resume(co)
coroutine.close(co)
