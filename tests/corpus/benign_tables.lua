-- expect: exit=0
-- stdout: 1,2,3,4,5
-- stdout: 5,4,3,2,1
-- stdout: 2,3,4
-- stdout: a b c
-- stdout: 3 nil
-- stdout: 1,2,9,9,5
-- note: ordinary table functions: insert, remove, sort with comparator, concat, unpack, move, pack.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local t = { 5, 3, 1, 4, 2 }
table.sort(t)
out(table.concat(t, ","))
table.sort(t, function(a, b) return a > b end)
out(table.concat(t, ","))
local u = { 1, 2, 3, 4, 5 }
table.remove(u, 1); table.remove(u)
out(table.concat(u, ","))
out(table.unpack({ "a", "b", "c" }))
local p = table.pack(1, nil, 3)
out(p.n, p[2])
local m = { 1, 2, 3, 4, 5 }
table.move({ 9, 9 }, 1, 2, 3, m)
out(table.concat(m, ","))
return { on_message = function() return "" end }
