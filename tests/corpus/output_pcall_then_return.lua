-- expect: exit=1 stderr~output limit
-- stdout-max: 65536
-- note: the output limit fires inside pcall; the script catches it and returns normally.
pcall(function() while true do print(("x"):rep(1000)) end end)
return { on_message = function() return "" end }
