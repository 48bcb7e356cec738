-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: %q quoting expands control bytes; repeated.
local s = ("\0\1\n\""):rep(200000)
for i = 1, 1e9 do local r = string.format("%q", s) end
