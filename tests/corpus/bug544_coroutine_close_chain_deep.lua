-- expect: exit=0
-- stdout: ok
-- args: --mem-limit 67108864 --instr-limit 100000000 --time-limit 3000
-- max-ms: 6000
-- note: the same chain as bug544_coroutine_close_chain with N = 20000, far past LUAI_MAXCCALLS.
local coro = false
for i = 1, 20000 do
  local previous = coro
  coro = coroutine.create(function()
    local cc <close> = setmetatable({}, { __close = function()
      if previous then coroutine.close(previous) end
    end })
    coroutine.yield()
  end)
  coroutine.resume(coro)
end
pcall(coroutine.close, coro)
print("ok")
return { on_message = function() return "" end }
