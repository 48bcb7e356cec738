-- expect: exit=0
-- input: go
-- args: --output-limit 1000
-- stdout-max: 2000
-- note: the output cap is per turn: 800 bytes in each of two turns fit a 1000-byte cap.
print(string.rep("a", 799))
return { on_message = function() return string.rep("b", 799) end }
