-- expect: exit=0
-- input: hello world
-- stdout: echo: hello world
-- note: the smallest agent.
return { on_message = function(session, text) return "echo: " .. text end }
