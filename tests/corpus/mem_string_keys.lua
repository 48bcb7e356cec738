-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: distinct interned strings as table keys (the string table grows too).
local t = {}
local i = 0
while true do i = i + 1; t["key" .. i] = true end
