-- expect: exit=1 stderr~stack overflow
-- note: C stack overflow through tostring -> __tostring -> tostring ...
local t
t = setmetatable({}, { __tostring = function(self) return "<" .. tostring(self) .. ">" end })
return tostring(t)
