-- expect: exit=0
-- input: x
-- stdout: part1 part2 done
-- note: streamed parts go out as they happen, then the reply and a newline.
return { on_message = function(session, text)
  session.send("part1 ")
  session.send("part2 ")
  return "done"
end }
