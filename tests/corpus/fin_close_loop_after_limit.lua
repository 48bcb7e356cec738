-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: a to-be-closed variable whose __close loops forever: when the limit stops the loop, the
-- note: __close runs during unwinding and must be stopped again (sticky limit).
local x <close> = setmetatable({}, { __close = function()
  local n = 0
  while true do n = n + 1 end
end })
while true do end
