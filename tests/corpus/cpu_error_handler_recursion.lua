-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: nested pcalls each restarting the bomb in their error path.
local function bomb(depth)
  local ok = pcall(function() while true do end end)
  if depth < 150 then bomb(depth + 1) end
  while true do pcall(bomb, depth + 1) end
end
bomb(0)
