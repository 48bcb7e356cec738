-- expect: exit=1 stderr~output limit
-- stdout-max: 65536
-- note: print in a loop past the output cap (65536 bytes here); nothing past the cap escapes.
while true do print(string.rep("x", 1000)) end
