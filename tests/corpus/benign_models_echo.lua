-- expect: exit=0
-- input: ping
-- stdout: model said: ping
-- note: the test provider's echo model.
return { on_message = function(session, text)
  local r = models.call("test/echo", { prompt = text })
  return "model said: " .. r.text
end }
