-- expect: exit=0
-- stdout: ok
-- note: lua.org bugs page, 5.4.4 #3 "Wrong code generation for constants in bitwise operations"
-- note: (test case from lua/lua commit c764ca71, testes/constructs.lua). On 5.4.4 the generated
-- note: code may compute a wrong value; it must not crash the host.
local code = { "local x = {" }
for i = 1, 257 do code[#code + 1] = i .. ".1," end
code[#code + 1] = "};"
code = table.concat(code)
local function check(ret)
  local f = load(code .. ret)
  local ok, v = pcall(f)
  return ok
end
check("return (1 ~ (2 or 3))")
check("return (1 | (2 or 3))")
check("return (1 + (2 or 3))")
check("return (1 << (2 or 3))")
print("ok")
return { on_message = function() return "" end }
