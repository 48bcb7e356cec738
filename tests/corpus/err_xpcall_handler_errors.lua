-- expect: exit=0
-- stdout: false
-- note: the message handler itself errors: Lua reports "error in error handling", no crash.
local ok = xpcall(error, function() error("in handler") end)
print(tostring(ok))
return { on_message = function() return "" end }
