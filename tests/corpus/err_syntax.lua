-- expect: exit=1 stderr~err_syntax.lua:4:
-- note: a syntax error is reported with the chunk name and line, one line.
local x = 1
local y = = 2
return { on_message = function() return "" end }
