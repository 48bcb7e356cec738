-- expect: exit=0
-- stdout: ok
-- args: --mem-limit 67108864 --time-limit 3000
-- max-ms: 5000
-- max-rss-mb: 128
-- note: lua.org bugs page, 5.4.4 #4 "Lua-stack overflow when C stack overflows while handling an
-- note: error" (CVE-2022-33099; fixed by lua/lua commit 42d40581). Test shapes from testes/cstack.lua:
-- note: a recursive message handler on a recursive function, and pcall recursion under xpcall.
-- note: The Lua stack alone grows to 16 MB and is copied as it doubles: 105-115 MB peak RSS with
-- note: the 64 MiB cap, on main before issue 15 too.
local count = 0
local function loop(x, y, z) count = count + 1; return 1 + loop(x, y, z) end
local res, msg = xpcall(loop, loop)
local function loop2() assert(pcall(loop2)) end
local res2, msg2 = xpcall(loop2, loop2)
local function loop3() local s = "x" .. tostring(count) return loop3() .. s end
local res3 = xpcall(loop3, function(m) return m .. loop3() end)
print("ok")
return { on_message = function() return "" end }
