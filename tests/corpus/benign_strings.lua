-- expect: exit=0
-- stdout: HELLO|hello|olleh|ell|3|hi hi hi|a-b-c|65 66|AB|5|x=  42|3.14|ff|"a\"b"
-- note: ordinary string functions.
local s = "hello"
print(table.concat({
  s:upper(), s:lower(), s:reverse(), s:sub(2, 4), tostring(s:find("l")),
  ("hi"):rep(3, " "), ("a,b,c"):gsub(",", "-"), table.concat({ ("AB"):byte(1, 2) }, " "),
  string.char(65, 66), tostring(#s), string.format("x=%4d", 42), string.format("%.2f", 3.14159),
  string.format("%x", 255), string.format("%q", 'a"b'),
}, "|"))
return { on_message = function() return "" end }
