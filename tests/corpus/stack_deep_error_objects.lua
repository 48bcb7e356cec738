-- expect: exit=1 stderr~stack overflow|memory limit|error in error handling
-- note: stack overflow inside a message handler that itself recurses.
local function h(e) return h(e) + 1 end
local function f() return f() + 1 end
local ok, err = xpcall(f, h)
error(err, 0)
