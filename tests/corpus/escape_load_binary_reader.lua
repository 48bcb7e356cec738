-- expect: exit=0
-- stdout: refused
-- note: a binary chunk fed to load one byte at a time through a reader function (if reader
-- note: functions are allowed at all) must be refused as well.
local chunk = "\27LuaT\0\25\147\r\n\26\n\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\0\0\40\119\64\1\0\0\0"
local i = 0
local ok, f = pcall(load, function()
  i = i + 1
  if i <= #chunk then return chunk:sub(i, i) end
  return nil
end, "=bin")
print((ok and f ~= nil) and "ACCEPTED" or "refused")
return { on_message = function() return "" end }
