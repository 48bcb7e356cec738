-- expect: exit=0
-- stdout: ok
-- note: lua.org bugs page, 5.4.4 #8 "'utf8.codes' does not raise an error on spurious continuation
-- note: bytes" (test cases from lua/lua commit a1089b41, testes/utf8.lua). 5.4.4 accepts them; no
-- note: crash either way.
local function errorcodes(s)
  return pcall(function() for p, c in utf8.codes(s) do end end)
end
for _, s in ipairs({ "ab\xff", "\u{110000}", "in\x80valid", "\xbfinvalid", "αλφ\xBFα",
                     "汉字\x80", "\x80hello", "hel\x80lo", "汉字\xBF", "\xBFhello", "hel\xBFlo",
                     "\xF4\x9F\xBF", "\xF4\x9F\xBF\xBF" }) do
  errorcodes(s)
  utf8.len(s)
end
local f = utf8.codes("")
assert(f("", 2) == nil)
assert(f("", -1) == nil)
assert(f("", math.mininteger) == nil)
print("ok")
return { on_message = function() return "" end }
