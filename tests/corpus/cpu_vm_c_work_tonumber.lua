-- expect: exit=1 stderr~time limit exceeded|instruction limit exceeded
-- args: --instr-limit 1000000000 --time-limit 1000
-- max-ms: 2500
-- note: issue 15 class 10: tonumber on huge strings of spaces and of digits
-- note: is C work inside one VM instruction or one call of Lua's own, which the instruction
-- note: count does not see (with --time-limit 0 such loops ran past 10 s). Every turn has a time
-- note: limit now (--time-limit 0 is refused), and the clock stops this loop.
local s = (" "):rep(1 << 22) .. "1"
local d = ("9"):rep(1 << 22)
while true do local x, y = tonumber(s), tonumber(d, 36) end
