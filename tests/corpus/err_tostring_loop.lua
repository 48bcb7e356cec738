-- expect: exit=1 stderr~script error: (error object is a table value)
-- max-ms: 2500
-- note: the error object's __tostring loops forever: the host must not run it unbounded when it
-- note: turns the error into its one-line message.
error(setmetatable({}, { __tostring = function() while true do end end }))
