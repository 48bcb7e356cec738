-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: endless yield/resume between two coroutines.
local a = coroutine.wrap(function() while true do coroutine.yield(1) end end)
while true do a() end
