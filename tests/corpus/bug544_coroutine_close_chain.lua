-- expect: exit=0
-- stdout: ok
-- max-ms: 4000
-- note: lua.org bugs page, 5.4.4 #9 "C-stack overflow with deep nesting of coroutine.close"
-- note: (test case from lua/lua commit 1e64c139, testes/cstack.lua: "With a large enough N,
-- note: previous Lua versions crash in this test"). Must not crash the host.
local count = 0
local coro = false
for i = 1, 1000 do
  local previous = coro
  coro = coroutine.create(function()
    local cc <close> = setmetatable({}, { __close = function()
      count = count + 1
      if previous then
        assert(coroutine.close(previous))
      end
    end })
    coroutine.yield()
  end)
  assert(coroutine.resume(coro))
end
local st, msg = pcall(coroutine.close, coro)
print("ok")
return { on_message = function() return "" end }
