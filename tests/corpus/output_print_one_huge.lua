-- expect: exit=1 stderr~output limit
-- stdout-max: 65536
-- note: one print call far bigger than the cap.
print(string.rep("y", 4 * 1024 * 1024))
