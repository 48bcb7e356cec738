-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: the utf8 functions that walk a string (offset, len, codepoint, codes) over 2 MB of
-- note: continuation bytes, repeated.
local s = ("\x80"):rep(2 * 1024 * 1024)
while true do
  pcall(utf8.offset, s, 2)
  pcall(utf8.offset, s, -2)
  pcall(utf8.len, s)
  pcall(utf8.len, s, 1, -1, true)
  pcall(utf8.codepoint, s, 1, -1)
end
