-- expect: exit=0
-- stdout: 1	nil	true	x	2.5
-- stdout:
-- stdout: {}
-- note: print separates with tabs and ends with a newline; uses __tostring.
print(1, nil, true, "x", 2.5)
print()
print(setmetatable({}, { __tostring = function() return "{}" end }))
return { on_message = function() return "" end }
