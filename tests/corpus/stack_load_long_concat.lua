-- expect: exit=0
-- stdout: ok
-- note: pathological load input: a 50000-term right-associative concatenation and a 50000-term
-- note: unary chain. Either may compile or be refused; neither may crash.
local a = load("local a = 'x' return " .. ("a .. "):rep(50000) .. "a")
local b = load("return " .. ("- "):rep(50000) .. "1")
local c = load("return " .. ("not "):rep(50000) .. "nil")
print("ok")
return { on_message = function() return "" end }
