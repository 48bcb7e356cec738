-- expect: exit=0
-- stdout: refused
-- note: CVE-2015-4335 class (Redis): a hand-made Lua 5.4 binary chunk must be refused by load,
-- note: with an error mentioning "binary", in every mode.
local header = "\27LuaT\0\25\147\r\n\26\n\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\0\0\40\119\64"
local chunk = header .. "\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
local ok = true
for _, mode in ipairs({ nil, "b", "t", "bt" }) do
  local f, err = load(chunk, "=bin", mode)
  if f ~= nil then ok = false end
  if mode ~= "t" and not (type(err) == "string" and err:find("binary")) then ok = false end
end
print(ok and "refused" or "ACCEPTED")
return { on_message = function() return "" end }
