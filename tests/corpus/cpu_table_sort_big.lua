-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: sorting with a cheap comparator, over and over: the C work of sort must be counted.
local t = {}
for i = 1, 100000 do t[i] = (i * 7919) % 100003 end
local lt = function(a, b) return a < b end
for round = 1, 1e9 do
  table.sort(t, round % 2 == 0 and lt or nil)
  for i = 1, 3 do t[i], t[#t - i + 1] = t[#t - i + 1], t[i] end
end
