-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: table.remove(t, 1) with a __len of 2^62: stock Lua shifts 2^62 slots in C.
local t = setmetatable({}, { __len = function() return 1 << 62 end })
table.remove(t, 1)
