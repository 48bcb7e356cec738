-- expect: exit=1 stderr~output limit
-- input: go
-- stdout-max: 65536
-- note: a reply far bigger than the output cap.
return { on_message = function() return string.rep("r", 1024 * 1024) end }
