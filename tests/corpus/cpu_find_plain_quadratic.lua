-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: plain find is quadratic too: stock Lua's lmemfind does memchr + memcmp at each position, so
-- note: a 1 MB subject of "a" and a 500 KB needle "aaa...ab" cost about 2.5e11 byte compares in C.
-- note: A needle without pattern specials takes the same path even without plain=true. A linear
-- note: search (memmem) answers at once; then the script spins, so only a hang fails.
local s = ("a"):rep(1000000)
local needle = ("a"):rep(500000) .. "b"
local r1 = s:find(needle, 1, true)
local r2 = s:find(needle)
while true do end
