-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: suspended coroutines, each with its own Lua stack.
local keep = {}
local n = 0
while true do
  n = n + 1
  local co = coroutine.create(function() local a, b, c = 1, 2, 3; coroutine.yield() end)
  coroutine.resume(co)
  keep[n] = co
end
