-- expect: exit=1 stderr~instruction limit
-- input: go
-- stdout: loaded
-- max-ms: 2500
-- note: the top-level turn is fine; the message turn loops.
print("loaded")
return { on_message = function() while true do end end }
