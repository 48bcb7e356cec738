-- expect: exit=1 stderr~attempt to perform 'n%0'
-- note: lua.org bugs page, 5.4.4 #10 "Wrong line in error message for arithmetic errors"
-- note: (test case from lua/lua commit 02bab9fc, testes/errors.lua). The line is wrong on 5.4.4
-- note: ("it also causes L->top to be wrong"); the host must still report one line.
local a = 0
local b = 1
local c = b % a
return { on_message = function() return "" end }
