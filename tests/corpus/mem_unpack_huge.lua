-- expect: exit=0
-- stdout: ok
-- note: table.unpack and string.byte asked for millions of results: refused with an error, not a
-- note: crash (Lua's "too many results").
local ok1 = pcall(table.unpack, {}, 1, 1e8)
local ok2 = pcall(string.byte, ("x"):rep(10), 1, -1)
local ok3 = pcall(function() return select("#", table.unpack({}, 1, 1e7)) end)
local ok4 = pcall(function() return string.char(table.unpack({}, 1, 1e6)) end)
print((not ok1 and ok2 and not ok3) and "ok" or "unexpected")
return { on_message = function() return "" end }
