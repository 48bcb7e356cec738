-- expect: exit=0
-- stdout: ok
-- note: warn("@on") would make Lua write to the host's stderr, outside the output cap: warn must
-- note: be absent or silent.
if warn then
  pcall(warn, "@on")
  for i = 1, 1000 do pcall(warn, "WARNFLOOD ", string.rep("w", 100)) end
end
print("ok")
return { on_message = function() return "" end }
