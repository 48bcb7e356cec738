-- expect: exit=1 stderr~instruction limit
-- args: --time-limit 3000
-- max-ms: 5000
-- note: hook counters live per coroutine: many short coroutines must still draw from one budget.
while true do
  local co = coroutine.wrap(function() for i = 1, 50 do end end)
  co()
end
