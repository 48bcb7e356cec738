-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: closures each holding an upvalue.
local keep = {}
local n = 0
while true do
  n = n + 1
  local v = n
  keep[n] = function() return v end
end
