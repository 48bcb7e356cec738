-- expect: exit=1 stderr~stack_coroutine_nesting.lua:5:
-- note: deeply nested coroutines: each resumes a new one inside itself. The error ("C stack
-- note: overflow") comes back through every level, each adding its position, so the one-line
-- note: report may be cut before the reason; it starts with the position.
local function f() return coroutine.wrap(f)() end
f()
