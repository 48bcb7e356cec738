-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.gmatch, each step backtracking over the rest of the subject.
local s = ("a"):rep(3000)
local n = 0
for m in s:gmatch("a.-.-.-.-b") do n = n + 1 end
return n
