-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: table.insert at position 1 into a table whose __len claims maxinteger-1 elements: stock Lua
-- note: shifts 2^63 slots in C.
local t = setmetatable({}, { __len = function() return math.maxinteger - 1 end })
table.insert(t, 1, "x")
