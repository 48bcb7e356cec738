-- expect: exit=0
-- input: x
-- stdout: refused
-- note: an unknown model raises an error the agent can catch.
return { on_message = function()
  local ok = pcall(models.call, "no/such-model", { prompt = "x" })
  return ok and "accepted" or "refused"
end }
