-- expect: exit=1 stderr~output limit
-- input: go
-- stdout-max: 65536
-- note: session.send in a loop in the message turn.
return { on_message = function(s)
  while true do session.send(string.rep("z", 777)) end
end }
