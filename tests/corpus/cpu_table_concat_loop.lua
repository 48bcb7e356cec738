-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: table.concat of a 1 MB total, over and over.
local t = {}
local piece = ("y"):rep(1000)
for i = 1, 1000 do t[i] = piece end
for i = 1, 1e9 do local s = table.concat(t, ",") end
