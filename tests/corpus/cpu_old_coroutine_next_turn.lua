-- expect: exit=1 stderr~instruction limit
-- input: go
-- stdout: parked
-- max-ms: 2500
-- note: a coroutine made and parked in the first turn is resumed in the second, where it loops:
-- note: its hook state from the first turn must not let it escape the second turn's budget.
local co = coroutine.wrap(function()
  coroutine.yield("parked")
  while true do end
end)
print(co())
return { on_message = function() co() return "unreachable" end }
