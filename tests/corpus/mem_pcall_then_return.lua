-- expect: exit=1 stderr~memory limit
-- note: the memory limit fires inside pcall; the script catches it and returns normally.
pcall(string.rep, "x", 1 << 30)
return { on_message = function() return "" end }
