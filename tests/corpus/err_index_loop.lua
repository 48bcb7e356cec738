-- expect: exit=1 stderr~script error: (error object is a table value)
-- max-ms: 2500
-- note: the error object traps every field read and every conversion.
local trap = function() while true do end end
error(setmetatable({}, { __index = trap, __tostring = trap, __len = trap, __concat = trap,
                         __eq = trap, __name = "trap" }))
