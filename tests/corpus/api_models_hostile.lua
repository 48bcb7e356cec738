-- expect: exit=0
-- stdout: ok
-- note: hostile arguments to the agent API: unknown and path-like model names, non-table requests,
-- note: huge and binary prompts. Errors are fine; crashes and escapes are not.
local bad = 0
for _, name in ipairs({ "../../etc/passwd", "/etc/passwd", "", "\0", ("m"):rep(100000),
                        "test/echo\0evil", "file:///etc/passwd" }) do
  if pcall(models.call, name, { prompt = "x" }) then bad = bad + 1 end
end
pcall(models.call)
pcall(models.call, "test/echo")
pcall(models.call, "test/echo", "not a table")
pcall(models.call, "test/echo", { prompt = print })
pcall(datasets.query, "../x", "text", {})
pcall(datasets.query)
pcall(session.send, {})
pcall(session.send, nil)
print(bad == 0 and "ok" or "accepted a bad model name")
return { on_message = function() return "" end }
