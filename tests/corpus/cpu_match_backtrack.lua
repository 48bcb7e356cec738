-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.match with nested lazy captures on a long subject.
local s = ("a"):rep(5000)
return string.match(s, "(.-)(.-)(.-)(.-)(.-)x")
