-- expect: exit=1 stderr~stack overflow
-- note: deeply nested coroutines: each resumes a new one inside itself.
local function f() return coroutine.wrap(f)() end
f()
