-- expect: exit=0
-- stdout: ok
-- note: lua.org bugs page, 5.4.4 #2 "Lua can generate wrong code when _ENV is <const>"
-- note: (test case from lua/lua commit 1f3c6f45, testes/attrib.lua).
local function foo()
  local _ENV <const> = 11
  X = "hi"
end
local st, msg = pcall(foo)
assert(not st and string.find(msg, "number"))
local function bar()
  local _ENV <const> = { y = 5 }
  return y
end
assert(bar() == 5)
print("ok")
return { on_message = function() return "" end }
