-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: print calls __tostring, which loops.
print(setmetatable({}, { __tostring = function() while true do end end }))
