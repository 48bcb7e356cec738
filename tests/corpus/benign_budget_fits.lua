-- expect: exit=0
-- input: again
-- stdout: 4500001500000
-- stdout: 4500001500000
-- args: --instr-limit 10000000
-- note: each turn runs about 6 of its 10 million instructions: the budget is per turn, so the
-- note: second turn is not stopped by what the first one used.
local function sum() local s = 0 for i = 1, 3000000 do s = s + i end return s end
print(sum())
return { on_message = function() return tostring(sum()) end }
