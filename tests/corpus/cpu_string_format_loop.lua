-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.format copying megabytes per call.
local s = ("z"):rep(1024 * 1024)
for i = 1, 1e9 do local r = string.format("%s%s%s", s, s, s) end
