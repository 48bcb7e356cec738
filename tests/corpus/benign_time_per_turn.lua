-- expect: exit=0
-- input: x
-- stdout: first
-- stdout: second
-- args: --instr-limit 1000000000000 --time-limit 2500
-- max-ms: 6000
-- note: the time limit is per turn. Each turn busy-waits on the wall clock (os.time, so a loaded
-- note: machine does not change it) until the second changes twice: the first turn takes 1 to 2 s,
-- note: the second starts just after a change and takes just under 2 s. Each fits 2.5 s; together
-- note: they take at least 3 s.
local function wait_ticks(n)
  local last, seen = os.time(), 0
  while seen < n do
    local now = os.time()
    if now ~= last then seen, last = seen + 1, now end
  end
end
wait_ticks(2)
print("first")
return { on_message = function() wait_ticks(2) return "second" end }
