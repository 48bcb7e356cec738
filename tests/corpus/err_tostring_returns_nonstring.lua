-- expect: exit=1 stderr~script error: (error object is a table value)
-- note: an error object whose __tostring returns a table, and whose __name is not a string.
error(setmetatable({}, { __tostring = function() return {} end, __name = {} }))
