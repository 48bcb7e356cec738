-- expect: exit=0
-- stdout: false benign_pcall.lua:13: plain
-- stdout: false 42
-- stdout: false handled: oops
-- stdout: true 1 2
-- stdout: false nested
-- note: ordinary pcall, error and xpcall use, with levels, non-string errors and handlers.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
out(pcall(function() error("plain") end))
out(pcall(error, 42))
out(xpcall(function() error("oops", 0) end, function(m) return "handled: " .. m end))
out(pcall(function() return 1, 2 end))
out(pcall(function() local ok, e = pcall(error, "nested", 0) error(e, 0) end))
return { on_message = function() return "" end }
