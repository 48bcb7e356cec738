-- expect: exit=0
-- stdout: 0 0 0 0
-- note: negation overflow in constant folding of '>>' (lua/lua commit 26be2745, fixed with the
-- note: 5.4.4 bugs in 5.4.5/6; test case from testes/bitwise.lua). Undefined behaviour in C on 5.4.4.
local r = {}
for _, c in ipairs({ string.format("return -1 >> %d", math.maxinteger),
                     string.format("return -1 >> %d", math.mininteger),
                     string.format("return -1 << %d", math.maxinteger),
                     string.format("return -1 << %d", math.mininteger) }) do
  r[#r + 1] = tostring(load(c)())
end
print(table.concat(r, " "))
return { on_message = function() return "" end }
