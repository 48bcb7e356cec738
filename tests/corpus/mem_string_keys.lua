-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000 --time-limit 4000
-- max-ms: 5500
-- note: distinct interned strings as table keys (the string table grows too). Stock lua5.4 reaches
-- note: 16 MB this way in 0.25 s; the sandbox took 1.9 s when this was written (see the report).
local t = {}
local i = 0
while true do i = i + 1; t["key" .. i] = true end
