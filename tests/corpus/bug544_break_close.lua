-- expect: exit=0
-- stdout: done
-- note: lua.org bugs page, 5.4.4 #6 "'break' may not properly close variable in a 'for' loop"
-- note: (test case from lua/lua commit 997f11f5, testes/locals.lua). On 5.4.4 the close may be
-- note: skipped; the script reports, never asserts, since only a host crash is a failure here.
local closed = false
local o1 = setmetatable({}, { __close = function() closed = true end })
local function test()
  for k, v in next, {}, nil, o1 do
    local function f() return k end
    break
  end
  return closed
end
test()
print("done")
return { on_message = function() return "" end }
