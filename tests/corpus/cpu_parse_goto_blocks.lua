-- expect: exit=0
-- stdout: refused: too many gotos in one chunk (at most 256)
-- stdout: refused: too many gotos in one chunk (at most 256)
-- args: --mem-limit 67108864 --instr-limit 100000000
-- max-ms: 2500
-- note: issue 15 class 6: `goto`s inside 190 nested blocks under 190 compile-time constants. Every
-- note: `end` walks all pending gotos, each through every constant (lparser.c), so the 760 bytes
-- note: of closing `end`s cost 13 s with 30,000 gotos: no check between parser pieces can stop
-- note: that. A chunk may hold at most 256 gotos; this one (loaded as a string and through a
-- note: reader function) is refused at once.
local parts = { "local f = function()\n" }
for i = 1, 190 do parts[#parts + 1] = ("local c%d <const> = %d\n"):format(i, i) end
parts[#parts + 1] = ("do "):rep(190)
parts[#parts + 1] = ("goto l "):rep(30000)
parts[#parts + 1] = ("end "):rep(190)
parts[#parts + 1] = "::l:: end"
local src = table.concat(parts)
local function show(f, err) print(f and "compiled" or "refused: " .. err:match("too many.*")) end
show(load(src))
local i = 0
show(load(function() i = i + 1 return parts[i] end))
return { on_message = function() end }
