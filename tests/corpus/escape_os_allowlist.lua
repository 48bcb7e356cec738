-- expect: exit=0
-- stdout: clock,date,time
-- note: os holds only time, clock, date.
local keys = {}
for k in pairs(os) do keys[#keys + 1] = tostring(k) end
table.sort(keys)
print(table.concat(keys, ","))
return { on_message = function() return "" end }
