-- expect: exit=0
-- stdout: ok
-- max-ms: 2500
-- note: __gc put into the metatable after setmetatable: Lua does not mark the object for
-- note: finalization, so the looping finalizer never runs, and the collection finishes.
local mt = {}
local objs = {}
for i = 1, 100 do objs[i] = setmetatable({}, mt) end
mt.__gc = function() while true do end end
objs = nil
collectgarbage("collect")
collectgarbage("collect")
print("ok")
return { on_message = function() return "" end }
