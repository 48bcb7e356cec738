-- expect: exit=1 stderr~stack overflow
-- note: gsub callback recursing into gsub (C -> Lua -> C ...).
local function f(s) return (s:gsub(".", f)) end
return f("abc")
