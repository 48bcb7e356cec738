-- expect: exit=0
-- stdout: 65536 6455296
-- note: issue 15 class 11: s:byte(i) over every byte of a 64 KiB string, and string.byte(s, i, i)
-- note: with explicit ranges, under the default limits.
local s = ("abcd"):rep(16384)
local sum = 0
for i = 1, #s do sum = sum + s:byte(i) end
local n = 0
for i = 1, #s do n = n + (string.byte(s, i, i) == s:byte(i) and 1 or 0) end
print(n .. " " .. sum)
return { on_message = function() end }
