-- expect: exit=1 stderr~time limit exceeded|instruction limit exceeded
-- args: --instr-limit 1000000000 --time-limit 1000
-- max-ms: 2500
-- note: issue 15 class 10: `next` over a big emptied table (every call scans the empty slots)
-- note: is C work inside one VM instruction or one call of Lua's own, which the instruction
-- note: count does not see (with --time-limit 0 such loops ran past 10 s). Every turn has a time
-- note: limit now (--time-limit 0 is refused), and the clock stops this loop.
local t = {}
for i = 1, 1 << 19 do t[i] = i end
for i = 1, 1 << 19 do t[i] = nil end
while true do local k = next(t) end
