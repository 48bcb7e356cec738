-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.gsub tries the backtracking pattern at every position.
local s = ("a"):rep(400)
return (s:gsub(".-.-.-.-b", ""))
