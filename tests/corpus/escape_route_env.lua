-- expect: exit=0
-- stdout: ok
-- note: every removed name reached through _ENV, including a copied and a rebuilt _ENV.
local names = { "io", "debug", "package", "require", "dofile", "loadfile", "loadstring" }
local found = {}
for _, n in ipairs(names) do
  if _ENV[n] ~= nil then found[#found + 1] = "_ENV." .. n end
end
for _, n in ipairs({ "execute", "remove", "rename", "tmpname", "getenv", "exit", "setlocale" }) do
  if _ENV.os[n] ~= nil then found[#found + 1] = "_ENV.os." .. n end
end
if _ENV.string.dump ~= nil then found[#found + 1] = "_ENV.string.dump" end
do
  local _ENV = setmetatable({}, { __index = _ENV })
  if io ~= nil or debug ~= nil or require ~= nil then found[#found + 1] = "inherited _ENV" end
end
local function f() local _ENV <const> = _ENV; return io, debug end
if f() ~= nil or select(2, f()) ~= nil then found[#found + 1] = "const _ENV" end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
