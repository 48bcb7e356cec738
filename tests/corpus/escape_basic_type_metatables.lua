-- expect: exit=0
-- stdout: ok
-- note: CVE-2025-46818 class (Redis): code must not be attached to basic types. The string
-- note: metatable is protected (getmetatable false, not settable), numbers/booleans/nil/functions
-- note: get no metatable.
local bad = {}
local ok = pcall(function() getmetatable("").__index = { upper = function() return "HIJACK" end } end)
if ok then bad[#bad + 1] = "string __index replaced" end
ok = pcall(function() getmetatable("").__add = function() return 1 end end)
if ok then bad[#bad + 1] = "string __add" end
for _, v in ipairs({ 1, true, print }) do
  if pcall(setmetatable, v, {}) then bad[#bad + 1] = "setmetatable " .. type(v) end
end
if pcall(setmetatable, "", {}) then bad[#bad + 1] = "setmetatable string" end
if ("abc"):upper() ~= "ABC" then bad[#bad + 1] = "string methods broken" end
print(#bad == 0 and "ok" or ("BAD: " .. table.concat(bad, ",")))
return { on_message = function() return "" end }
