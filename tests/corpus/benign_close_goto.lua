-- expect: exit=0
-- stdout: body closed 10 6
-- note: <close>, <const> and goto.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local log = {}
do
  local c <close> = setmetatable({}, { __close = function() log[#log + 1] = "closed" end })
  log[#log + 1] = "body"
end
local k <const> = 10
local i, s = 0, 0
::top::
i = i + 1
s = s + i
if i < 3 then goto top end
out(log[1], log[2], k, s)
return { on_message = function() return "" end }
