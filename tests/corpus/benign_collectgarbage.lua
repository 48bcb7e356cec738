-- expect: exit=0
-- stdout: number true ok
-- note: the collectgarbage options that stay.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local before = collectgarbage("count")
collectgarbage("collect")
collectgarbage("step")
out(type(before), collectgarbage("isrunning"), collectgarbage() == 0 and "ok" or "ok")
return { on_message = function() return "" end }
