-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: __close tries to swallow the limit with pcall and keep working.
local function spin() local n = 0 while true do n = n + 1 end end
local x <close> = setmetatable({}, { __close = function()
  for i = 1, 1e9 do pcall(spin) end
end })
spin()
