-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000 --time-limit 2000
-- max-ms: 3500
-- note: distinct interned strings as table keys (the string table grows too). Stock lua5.4 reaches
-- note: 16 MB this way in 0.25 s; the 2 s time limit leaves 8x for the sandbox's overhead.
local t = {}
local i = 0
while true do i = i + 1; t["key" .. i] = true end
