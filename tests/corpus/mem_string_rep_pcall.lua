-- expect: exit=1 stderr~memory limit
-- note: the memory limit is not catchable: pcall around a too-big allocation, then keep going.
for i = 1, 100 do
  pcall(string.rep, "x", 1 << 30)
end
print("survived")
