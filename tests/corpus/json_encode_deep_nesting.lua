-- expect: exit=0
-- stdout: ok
-- note: encoding a 100000-deep table, and a table that contains itself: an error, not a crash.
local t = {}
local cur = t
for i = 1, 100000 do cur[1] = {}; cur = cur[1] end
local ok1 = pcall(json.encode, t)
local cyc = {}
cyc.self = cyc
local ok2 = pcall(json.encode, cyc)
local a, b = {}, {}
a[1] = b; b[1] = a
local ok3 = pcall(json.encode, a)
print((not ok2 and not ok3) and "ok" or "cycle encoded?")
return { on_message = function() return "" end }
