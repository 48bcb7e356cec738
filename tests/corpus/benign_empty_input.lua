-- expect: exit=0
-- input:
-- stdout: [0]
-- note: an empty message is still a message.
return { on_message = function(session, text) return "[" .. #text .. "]" end }
