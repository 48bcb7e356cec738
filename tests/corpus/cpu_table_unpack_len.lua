-- expect: exit=1 stderr~too many results
-- note: table.unpack with a huge __len is refused before any work ("too many results to unpack").
local t = setmetatable({}, { __len = function() return 1 << 62 end })
return table.unpack(t)
