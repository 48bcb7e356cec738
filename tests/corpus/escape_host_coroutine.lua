-- expect: exit=0
-- stdout: ok
-- note: the turn runs in a coroutine the host made: the script can see it (coroutine.running) but
-- note: must not be able to close, resume or wrap it into a state the host does not expect.
local me, ismain = coroutine.running()
local bad = {}
if pcall(coroutine.close, me) then bad[#bad + 1] = "closed itself" end
if coroutine.resume(me) then bad[#bad + 1] = "resumed itself" end
local co = coroutine.create(function() return coroutine.resume(me) end)
local ok, inner_ok = coroutine.resume(co)
if inner_ok then bad[#bad + 1] = "resumed from a child" end
if coroutine.status(me) ~= "running" then bad[#bad + 1] = "status " .. coroutine.status(me) end
print(#bad == 0 and "ok" or table.concat(bad, ","))
return { on_message = function() return "" end }
