-- expect: exit=1 stderr~gc
-- note: setmetatable refuses a metatable with __gc (a finalizer would run with hooks off).
setmetatable({}, { __gc = function() while true do end end })
return { on_message = function() return "" end }
