-- expect: exit=0
-- stdout: 1 2 3
-- stdout: suspended dead
-- stdout: true 10
-- stdout: false cannot resume dead coroutine
-- stdout: closed true
-- note: ordinary coroutine use: generators, status, passing values, close.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
out(gen(), gen(), gen())
local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
coroutine.resume(co, 1)
local st1 = coroutine.status(co)
coroutine.resume(co, 5)
out(st1, coroutine.status(co))
local co2 = coroutine.create(function(x) return x * 10 end)
out(coroutine.resume(co2, 1))
out(coroutine.resume(co2))
local co3 = coroutine.create(function() coroutine.yield() end)
coroutine.resume(co3)
out("closed", coroutine.close(co3))
return { on_message = function() return "" end }
