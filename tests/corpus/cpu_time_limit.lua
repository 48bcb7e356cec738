-- expect: exit=1 stderr~time limit
-- args: --instr-limit 100000000000 --time-limit 300
-- max-ms: 1500
-- note: with a huge instruction budget the wall-time limit stops the loop.
while true do end
