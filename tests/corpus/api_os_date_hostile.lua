-- expect: exit=0
-- stdout: ok
-- note: hostile arguments to the os functions that remain: invalid and huge formats, times that do
-- note: not fit, out-of-range table fields. Errors are fine; crashes and hangs are not.
for _, args in ipairs({ { "%Ez" }, { "%" }, { "%Q" }, { ("%c"):rep(10000) }, { "*t", 1 << 60 },
                        { "!*t", math.mininteger }, { "%Y", math.maxinteger }, { "%Y", 0 / 0 },
                        { "%Y", 1e300 }, { ("x"):rep(100000) } }) do
  pcall(os.date, table.unpack(args))
end
for _, t in ipairs({ { year = 1 << 40, month = 1, day = 1 }, { year = 2000, month = 1 << 40, day = 1 },
                     { year = 2000, month = 1, day = -(1 << 40) }, { year = "x", month = 1, day = 1 },
                     { month = 1, day = 1 }, { year = 2000.5, month = 1, day = 1 } }) do
  pcall(os.time, t)
end
pcall(os.time, "x")
print("ok")
return { on_message = function() return "" end }
