-- expect: exit=1 stderr~instruction limit|time limit|memory limit
-- max-ms: 2500
-- note: table.concat over 2^62 elements supplied by __index (empty strings, so memory stays flat).
local t = setmetatable({}, { __index = function() return "" end })
return table.concat(t, "", 1, 1 << 62)
