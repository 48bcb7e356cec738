-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: string.rep("", 2^62): stock Lua loops 2^62 times copying nothing (no size check stops it).
-- note: The bounded version may return "" at once or count the loop; then the script spins, so the
-- note: outcome is the limit either way and only a hang fails.
local a = string.rep("", 1 << 62)
local b = string.rep("", 1 << 62, "")
local c = ("x"):rep(0, ("y"):rep(1000))
while true do end
