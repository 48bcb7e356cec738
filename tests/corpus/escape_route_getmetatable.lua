-- expect: exit=0
-- stdout: ok
-- note: removed names reached through metatables: the string metatable (protected, must be
-- note: false), metatables of every basic type, of _G and of the API tables.
local found = {}
if getmetatable("") ~= false then found[#found + 1] = "string metatable not protected" end
if getmetatable("abc") ~= false then found[#found + 1] = "string metatable (abc)" end
for _, v in ipairs({ 1, 1.5, true, print, coroutine.create(function() end) }) do
  local mt = getmetatable(v)
  if mt ~= nil then found[#found + 1] = "metatable of " .. type(v) end
end
if getmetatable(nil) ~= nil then found[#found + 1] = "metatable of nil" end
for name, t in pairs({ _G = _G, string = string, os = os, json = json, session = session,
                       models = models, datasets = datasets }) do
  local mt = getmetatable(t)
  if type(mt) == "table" then
    for k, v in pairs(mt) do
      if type(v) == "table" and (rawget(v, "io") or rawget(v, "debug") or rawget(v, "require")) then
        found[#found + 1] = name .. " metatable ." .. tostring(k)
      end
    end
  end
end
-- the string library is reachable through ("").x only, and it has no dump
if ("").dump ~= nil then found[#found + 1] = '("").dump' end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
