-- expect: exit=0
-- stdout: sorted 10000
-- note: sorting 10000 records with a comparator fits the default budget easily.
local t = {}
for i = 1, 10000 do t[i] = { k = (i * 7919) % 10007 } end
table.sort(t, function(a, b) return a.k < b.k end)
for i = 2, #t do assert(t[i - 1].k <= t[i].k) end
print("sorted " .. #t)
return { on_message = function() return "" end }
