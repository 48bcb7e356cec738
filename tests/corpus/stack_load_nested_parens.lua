-- expect: exit=0
-- stdout: refused
-- note: pathological load input: 100000 nested parentheses.
local n = 100000
local f, err = load("return " .. ("("):rep(n) .. "1" .. (")"):rep(n))
print(f == nil and "refused" or "compiled")
return { on_message = function() return "" end }
