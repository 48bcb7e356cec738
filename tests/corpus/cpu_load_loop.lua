-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: compiling a big chunk over and over: the compiler's work happens in C.
local src = ("local a = 1 + 2 * 3 "):rep(20000)
for i = 1, 1e9 do local f = load(src) end
