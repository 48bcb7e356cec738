-- expect: exit=0
-- stdout: refused
-- note: pathological load input: 5000 nested function bodies.
local n = 5000
local f, err = load(("return function() "):rep(n) .. "return 1" .. (" end"):rep(n))
print(f == nil and "refused" or "compiled")
return { on_message = function() return "" end }
