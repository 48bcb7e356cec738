-- expect: exit=1 stderr~err_in_on_message.lua:6: boom
-- input: hi
-- stdout: top
-- note: an error in the second turn carries its chunk name and line.
print("top")
return { on_message = function(s, text) error("boom") end }
