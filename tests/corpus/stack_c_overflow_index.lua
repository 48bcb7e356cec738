-- expect: exit=1 stderr~stack overflow
-- note: C stack overflow through a recursive __index metamethod.
local t = setmetatable({}, {})
getmetatable(t).__index = function(self, k) return self[k .. "x"] end
return t.a
