-- expect: exit=1 stderr~time limit exceeded
-- args: --instr-limit 0 --time-limit 500
-- max-ms: 1500
-- note: issue 15 class 8 with instructions not counted: the same loop of the costliest queries
-- note: stops at the time limit, each call's work being a few microseconds of host time.
local text = ("e "):rep(2048)
while true do datasets.query("test/words", text, { limit = 8 }) end
