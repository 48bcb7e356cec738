-- expect: exit=1 stderr~time limit
-- input: go
-- stdout: parked
-- args: --instr-limit 0 --time-limit 300
-- max-ms: 1500
-- note: as cpu_old_coroutine_next_turn with instructions not counted: only the time limit stops it.
local co = coroutine.create(function()
  coroutine.yield("parked")
  while true do end
end)
print(select(2, coroutine.resume(co)))
return { on_message = function() coroutine.resume(co) return "unreachable" end }
