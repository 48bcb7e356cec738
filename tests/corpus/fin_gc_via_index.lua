-- expect: exit=0
-- stdout: ok
-- max-ms: 2500
-- note: a metatable whose __gc comes from its own __index is not a finalizer (Lua reads __gc raw);
-- note: a sandbox that reads the field with metamethods must not loop or be fooled either.
local inner = { __index = function(t, k) if k == "__gc" then return function() while true do end end end end }
local mt = setmetatable({}, inner)
local ok = pcall(setmetatable, {}, mt)
for i = 1, 100 do pcall(setmetatable, {}, mt) end
collectgarbage("collect")
print("ok")
return { on_message = function() return "" end }
