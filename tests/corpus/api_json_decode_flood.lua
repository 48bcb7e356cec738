-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: json.decode of a 1 MB document over and over: the codec's C work must be counted.
local doc = "[" .. ("1,"):rep(300000) .. "1]"
while true do local t = json.decode(doc) end
