-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: table.sort's comparator (Lua code called from C) loops forever.
local t = {}
for i = 1, 1000 do t[i] = 1000 - i end
table.sort(t, function(a, b) while true do end end)
