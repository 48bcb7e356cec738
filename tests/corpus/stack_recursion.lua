-- expect: exit=1 stderr~stack overflow|memory limit
-- note: plain unbounded Lua recursion.
local function f(n) return 1 + f(n + 1) end
f(1)
