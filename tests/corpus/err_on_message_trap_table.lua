-- expect: exit=1
-- max-ms: 2500
-- note: the returned table's on_message is found through an __index that loops: the host's lookup
-- note: must be bounded (or raw) and end in a one-line error, not hang.
return setmetatable({}, { __index = function() while true do end end })
