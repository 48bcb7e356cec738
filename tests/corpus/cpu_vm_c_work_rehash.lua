-- expect: exit=1 stderr~time limit exceeded|instruction limit exceeded
-- args: --instr-limit 1000000000 --time-limit 1000
-- max-ms: 2500
-- note: issue 15 class 10: table rehashing, a key added and removed at the edge of a full table
-- note: is C work inside one VM instruction or one call of Lua's own, which the instruction
-- note: count does not see (with --time-limit 0 such loops ran past 10 s). Every turn has a time
-- note: limit now (--time-limit 0 is refused), and the clock stops this loop.
local t = {}
for i = 1, 1 << 16 do t["k" .. i] = i end
local i = 0
while true do i = i + 1 t[-i] = 1 t[-i] = nil end
