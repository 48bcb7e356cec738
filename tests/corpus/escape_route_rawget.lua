-- expect: exit=0
-- stdout: ok
-- note: removed names reached with rawget (bypassing any __index the sandbox might use to hide them).
local found = {}
for _, n in ipairs({ "io", "debug", "package", "require", "dofile", "loadfile", "loadstring" }) do
  if rawget(_G, n) ~= nil or rawget(_ENV, n) ~= nil then found[#found + 1] = n end
end
for _, n in ipairs({ "execute", "remove", "rename", "tmpname", "getenv", "exit", "setlocale" }) do
  if rawget(os, n) ~= nil then found[#found + 1] = "os." .. n end
end
if rawget(string, "dump") ~= nil then found[#found + 1] = "string.dump" end
local mt = getmetatable(_G)
if type(mt) == "table" then
  local idx = rawget(mt, "__index")
  if type(idx) == "table" and (rawget(idx, "io") or rawget(idx, "debug")) then
    found[#found + 1] = "_G's __index"
  end
end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
