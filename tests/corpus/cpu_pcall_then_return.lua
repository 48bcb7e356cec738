-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: the limit fires inside pcall; the script catches it and returns a good agent table at once.
-- note: The turn must still end with the limit, whatever the script returned.
pcall(function() while true do end end)
return { on_message = function() return "" end }
