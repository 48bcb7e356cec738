-- expect: exit=1 stderr~stack overflow
-- note: table.sort comparator recursing into table.sort.
local function cmp(a, b) table.sort({ 3, 2, 1 }, cmp) return a < b end
table.sort({ 3, 2, 1 }, cmp)
