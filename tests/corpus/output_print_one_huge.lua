-- expect: exit=1 stderr~output limit
-- stdout-max: 65536
-- note: one print call of 1 MB, 16 times the cap (and well inside the memory cap).
print(string.rep("y", 1024 * 1024))
