-- expect: exit=1 stderr~script must return a table with an on_message function
-- max-ms: 2500
-- note: the returned table's on_message is found through an __index that loops: the host's lookup
-- note: must be bounded (or raw) and end in a one-line error, not hang.
return setmetatable({}, { __index = function() while true do end end })
