-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.rep with a separator, many small pieces.
for i = 1, 1e9 do
  local s = string.rep("x", 1000000, ",")
end
