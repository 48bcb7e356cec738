-- expect: exit=0
-- stdout: 3 6 héé 233,233 4
-- note: ordinary utf8 use.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local s = "h" .. utf8.char(233, 233)
local cps = {}
for _, c in utf8.codes(s) do if c > 127 then cps[#cps + 1] = c end end
out(utf8.len(s), #s + 1, s, table.concat(cps, ","), utf8.offset(s, 3))
return { on_message = function() return "" end }
