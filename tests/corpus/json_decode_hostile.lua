-- expect: exit=0
-- stdout: ok
-- note: hostile JSON texts: broken escapes, lone surrogates, huge numbers, NUL bytes, invalid
-- note: UTF-8, truncation, trailing garbage, duplicate keys. Errors are fine; crashes are not.
local inputs = {
  '"\\ud800"', '"\\udc00\\ud800"', '"\\u12"', '"\\uZZZZ"', '"\\', '"abc', '[1,', '{"a"',
  '{"a":}', '1e999999', '-1e999999', '123456789012345678901234567890', '-0', '0.' , '.5',
  '"\0"', '"\xff\xfe"', '"\xc0\x80"', '[1] x', '{"a":1,"a":2}', 'nul', 'true false', '',
  ("9"):rep(100000), '"' .. ("\\u0041"):rep(100000) .. '"', '[' .. ("1,"):rep(100000) .. '1]',
}
for _, s in ipairs(inputs) do pcall(json.decode, s) end
assert(json.decode('"\\u0000"') == "\0")
assert(json.decode("[1,2,3]")[3] == 3)
print("ok")
return { on_message = function() return "" end }
