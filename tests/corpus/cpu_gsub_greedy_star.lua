-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: greedy quantifiers backtrack too: O(n^k) with k stars.
local s = ("a"):rep(2000)
return s:find("a*a*a*a*a*a*b")
