-- expect: exit=1 stderr~memory limit
-- args: --instr-limit 100000000
-- max-ms: 4000
-- note: after a memory-limit error, the xpcall message handler keeps allocating; then the script
-- note: carries on as if nothing happened.
xpcall(function() local s = string.rep("x", 1 << 30) end, function(m)
  local t = {}
  for i = 1, 1e9 do t[i] = { i } end
  return m
end)
print("survived")
return { on_message = function() return "" end }
