-- expect: exit=1 stderr~time limit exceeded
-- args: --mem-limit 67108864 --instr-limit 0 --time-limit 500
-- max-ms: 1500
-- note: issue 15 class 6 at the bound: 256 gotos (the most a chunk may hold) inside 190 nested
-- note: blocks under 190 constants compile in about 0.1 s; compiled again and again, the time
-- note: limit stops the loop within one 64-byte piece of the parser's work (a few ms).
local parts = { "local f = function()\n" }
for i = 1, 190 do parts[#parts + 1] = ("local c%d <const> = %d\n"):format(i, i) end
parts[#parts + 1] = ("do "):rep(190)
parts[#parts + 1] = ("goto l "):rep(256)
parts[#parts + 1] = ("end "):rep(190)
parts[#parts + 1] = "::l:: end"
local src = table.concat(parts)
while true do assert(load(src)) end
