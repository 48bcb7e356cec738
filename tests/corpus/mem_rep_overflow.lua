-- expect: exit=0
-- stdout: ok
-- note: size overflows in string.rep: stock Lua refuses each of these with "resulting string too
-- note: large" before allocating anything; the bounded version must refuse them the same way (a
-- note: wrapped size would allocate too little and write past it, an unchecked one would hit the
-- note: memory limit, which is not catchable).
local cases = {
  function() return string.rep("ab", 1 << 62) end,
  function() return string.rep("ab", math.maxinteger, "cd") end,
  function() return string.rep("x", 1 << 31) end,
  function() return string.rep("x", (1 << 30) + 1, ("y"):rep(3)) end,
  function() return string.rep(("z"):rep(1 << 16), 1 << 48) end,
  function() return string.rep("", 1 << 62, ("s"):rep(1 << 16)) end,
}
local refused = 0
for _, f in ipairs(cases) do
  local ok, err = pcall(f)
  if not ok and tostring(err):find("too large") then refused = refused + 1 end
end
print(refused == #cases and "ok" or ("refused only " .. refused .. " of " .. #cases))
return { on_message = function() return "" end }
