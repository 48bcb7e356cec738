-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: an ever-growing table of small tables.
local t = {}
local i = 0
while true do i = i + 1; t[i] = { i, i, i } end
