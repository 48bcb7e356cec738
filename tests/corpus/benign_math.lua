-- expect: exit=0
-- stdout: 3 -4 1 integer float 9223372036854775807 2 1.0 inf true
-- note: ordinary math: floor/ceil, integer division, types, maxinteger, tointeger, huge, random range.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local r = math.random(1, 6)
out(math.floor(3.7), math.ceil(-4.2), 7 // 4, math.type(1), math.type(1.0),
      math.maxinteger, math.tointeger(2.0), 3.0 // 2 - 0.0, math.huge, r >= 1 and r <= 6)
return { on_message = function() return "" end }
