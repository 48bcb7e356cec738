-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: the ARCHITECTURE.md case: ran past 60 s in stock Lua with no hook able to stop it.
local s = ("a"):rep(200)
return s:find(".-.-.-.-.-b")
