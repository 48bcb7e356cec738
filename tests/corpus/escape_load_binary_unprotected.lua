-- expect: exit=1 stderr~binary
-- note: assert(load(binary)) fails the script with the loader's message, which mentions "binary".
local f = assert(load("\27LuaT\0\25\147\r\n\26\n\4\8\8\120\86\0\0\0\0\0\0\0\0"))
f()
return { on_message = function() return "" end }
