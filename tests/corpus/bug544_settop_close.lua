-- expect: exit=0
-- stdout: ok
-- note: lua.org bugs page, 5.4.4 #5 "'lua_settop' may use a pointer to stack invalidated by
-- note: 'luaF_close'" (lua/lua commit 196bb94d). The original test needs the C API (T.testC); here a
-- note: __close metamethod reallocates the stack (deep recursion) while values are being returned
-- note: or an error unwinds, through pcall, coroutine.close and multiple returns.
collectgarbage(); collectgarbage(); collectgarbage()
local function loop(n) if n < 400 then loop(n + 1) end end
local mt = { __close = function() loop(0) end }
local function multi()
  local a <close> = setmetatable({}, mt)
  local b <close> = setmetatable({}, mt)
  return 1, 2, 3, 4, 5
end
for i = 1, 50 do
  local r = { multi() }
  assert(#r == 5)
  pcall(function()
    local c <close> = setmetatable({}, mt)
    error("x")
  end)
  local co = coroutine.create(function()
    local d <close> = setmetatable({}, mt)
    coroutine.yield()
  end)
  coroutine.resume(co)
  coroutine.close(co)
  local r2 = table.pack(pcall(multi))
  assert(r2.n == 6)
end
print("ok")
return { on_message = function() return "" end }
