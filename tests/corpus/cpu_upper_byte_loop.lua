-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: linear C functions (upper, reverse, byte-compare, utf8.len) over a big string, repeated.
local s = ("abc"):rep(1000000)
for i = 1, 1e9 do
  local u = s:upper()
  local r = s:reverse()
  local n = utf8.len(s)
  local eq = (u == r)
end
