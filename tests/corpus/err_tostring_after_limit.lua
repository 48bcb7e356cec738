-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: after the limit, an xpcall handler replaces the error with an object whose __tostring
-- note: loops; the turn still ends with the limit.
local obj = setmetatable({}, { __tostring = function() while true do end end })
xpcall(function() while true do end end, function() return obj end)
error(obj)
