-- expect: exit=0
-- stdout: 65536 16384
-- note: issue 15 class 11: walking a 64 KiB string with s:sub(i, i) hit the 10^7 instruction
-- note: limit, because every call paid for the whole subject. A call pays for what it reads
-- note: and writes: one byte here.
local s = ("abcd"):rep(16384)
local n, a = 0, 0
for i = 1, #s do
  n = n + 1
  if s:sub(i, i) == "a" then a = a + 1 end
end
print(n .. " " .. a)
return { on_message = function() end }
