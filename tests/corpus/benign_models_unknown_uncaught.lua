-- expect: exit=1 stderr~no/such-model|unknown
-- input: x
-- note: the same error, uncaught, fails the turn with one line.
return { on_message = function()
  return models.call("no/such-model", { prompt = "x" }).text
end }
