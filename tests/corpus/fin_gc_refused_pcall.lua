-- expect: exit=0
-- stdout: ok
-- note: every way of handing setmetatable a __gc field is refused, and the refusal is catchable.
local bad = 0
local function try(mt) if pcall(setmetatable, {}, mt) then bad = bad + 1 end end
try({ __gc = function() end })
try({ __gc = print })
try({ __gc = true })
try(setmetatable({ __gc = function() end }, { __metatable = "locked" }))
print(bad == 0 and "ok" or ("accepted " .. bad))
return { on_message = function() return "" end }
