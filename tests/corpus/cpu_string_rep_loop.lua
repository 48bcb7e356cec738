-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: few VM instructions, megabytes of C work each: string.rep's work must be counted.
for i = 1, 1e9 do
  local s = string.rep("x", 4 * 1024 * 1024)
end
