-- expect: exit=0
-- stdout: ok
-- note: every removed name reached through _G, _G._G and a table walk of every global table.
local found = {}
for _, n in ipairs({ "io", "debug", "package", "require", "dofile", "loadfile", "loadstring" }) do
  if _G[n] ~= nil or _G._G[n] ~= nil then found[#found + 1] = "_G." .. n end
end
-- names that must not exist anywhere, and names that must not exist at one place
local deny = { dump = true, execute = true, tmpname = true, getenv = true, setlocale = true,
  getregistry = true, sethook = true, gethook = true, getupvalue = true, setupvalue = true,
  upvaluejoin = true, upvalueid = true, setuservalue = true, getuservalue = true,
  loadlib = true, searchpath = true, popen = true, dofile = true, loadfile = true,
  require = true, io = true, debug = true, package = true }
local deny_at = { ["_G.os.remove"] = true, ["_G.os.rename"] = true, ["_G.os.exit"] = true,
  ["_G.os.difftime"] = true }
local seen = {}
local function walk(t, path, depth)
  if seen[t] or depth > 3 then return end
  seen[t] = true
  for k, v in pairs(t) do
    if type(k) == "string" then
      if deny[k] or deny_at[path .. "." .. k] then found[#found + 1] = path .. "." .. k end
      if type(v) == "table" then walk(v, path .. "." .. k, depth + 1) end
    end
  end
end
walk(_G, "_G", 0)
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
