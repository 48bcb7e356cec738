-- expect: exit=0
-- stdout: ok
-- note: require and package are gone, by every name; no module loader or searcher is reachable.
local found = {}
if require ~= nil then
  for _, m in ipairs({ "io", "os", "debug", "package", "ffi", "posix" }) do
    local ok, v = pcall(require, m)
    if ok and v then found[#found + 1] = "require " .. m end
  end
end
if package ~= nil then found[#found + 1] = "package" end
for _, n in ipairs({ "package", "require" }) do
  if _G[n] or rawget(_G, n) or load("return " .. n)() then found[#found + 1] = n end
end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
