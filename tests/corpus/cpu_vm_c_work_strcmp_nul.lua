-- expect: exit=1 stderr~time limit exceeded|instruction limit exceeded
-- args: --instr-limit 1000000000 --time-limit 1000
-- max-ms: 2500
-- note: issue 15 class 10: comparing two long strings full of NULs (strcoll on every NUL-separated part)
-- note: is C work inside one VM instruction or one call of Lua's own, which the instruction
-- note: count does not see (with --time-limit 0 such loops ran past 10 s). Every turn has a time
-- note: limit now (--time-limit 0 is refused), and the clock stops this loop.
local a, b = ("\0"):rep(1 << 20) .. "a", ("\0"):rep(1 << 20) .. "b"
local n = 0
while true do if a < b then n = n + 1 end end
