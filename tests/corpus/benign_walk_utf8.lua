-- expect: exit=0
-- stdout: 32768 32768 32768
-- note: issue 15 class 11 for utf8: utf8.offset and utf8.codepoint step through 64 KiB of
-- note: two-byte characters one at a time, and utf8.len measures one character at a time.
local s = ("é"):rep(32768)
local n, p = 0, 1
while p <= #s do
  local q = utf8.offset(s, 2, p)
  n = n + (utf8.codepoint(s, p) == 0xE9 and 1 or 0)
  p = q
end
local m = 0
for i = 1, #s, 2 do m = m + utf8.len(s, i, i + 1) end
print(n .. " " .. m .. " " .. utf8.len(s))
return { on_message = function() end }
