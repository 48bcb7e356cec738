-- expect: exit=0
-- stdout: number 1970-01-01 number 0
-- note: the os functions that remain: time, date, clock.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
out(type(os.time()), os.date("!%Y-%m-%d", 0), type(os.clock()), os.time({ year = 1970, month = 1, day = 1, hour = 0, isdst = false }) - os.time({ year = 1970, month = 1, day = 1, hour = 0, isdst = false }))
return { on_message = function() return "" end }
