-- expect: exit=0
-- stdout: ok
-- note: values the encoder cannot represent: functions, coroutines, NaN, inf, mixed keys, binary
-- note: strings.
for _, v in ipairs({ print, coroutine.create(print), 0 / 0, 1 / 0, -1 / 0,
                     { 1, 2, x = 3 }, { [true] = 1 }, string.rep("\255\0", 1000) }) do
  pcall(json.encode, v)
end
print("ok")
return { on_message = function() return "" end }
