-- expect: exit=0
-- stdout: ok
-- note: removed names reached from code compiled by load(): default env, _G as env, a fresh env.
local found = {}
for _, n in ipairs({ "io", "debug", "package", "require", "dofile", "loadfile", "loadstring" }) do
  local f = load("return " .. n)
  if f and f() ~= nil then found[#found + 1] = "load:" .. n end
  f = load("return " .. n, "x", "t", _G)
  if f and f() ~= nil then found[#found + 1] = "load(_G):" .. n end
  f = load("return _ENV['" .. n .. "']", "x", "t")
  if f and f() ~= nil then found[#found + 1] = "load(_ENV[]):" .. n end
end
local f = load("return os.execute, os.getenv, string.dump")
local a, b, c = f()
if a or b or c then found[#found + 1] = "load:os/string" end
local g = load("local t = ... return t.io", "x", "t", {})
if g and g(_G) ~= nil then found[#found + 1] = "load(arg)" end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
