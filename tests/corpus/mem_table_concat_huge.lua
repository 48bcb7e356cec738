-- expect: exit=1 stderr~memory limit
-- note: table.concat of 100 MB built from one shared 100 KB piece.
local piece = ("p"):rep(100 * 1024)
local t = {}
for i = 1, 1000 do t[i] = piece end
local s = table.concat(t)
