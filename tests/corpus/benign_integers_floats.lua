-- expect: exit=0
-- stdout: 1.5 1 -9223372036854775808 0x10 10 nil 3 inf -inf true
-- note: numeric edge cases: wraparound, hex, coercion, tonumber failure, huge floats.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
out(3 / 2, 3 // 2, math.maxinteger + 1, string.format("0x%x", 16), "5" + 5,
      tonumber("z"), tonumber("11", 2), 1e308 * 10, -1e308 * 10, 0 / 0 ~= 0 / 0)
return { on_message = function() return "" end }
