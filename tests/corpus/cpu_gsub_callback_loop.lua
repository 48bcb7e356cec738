-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: the gsub callback is Lua code called from C: the hook runs there.
return (("abc"):gsub("%w", function() while true do end end))
