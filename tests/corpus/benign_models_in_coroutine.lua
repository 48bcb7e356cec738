-- expect: exit=0
-- input: ping
-- stdout: top: hi
-- stdout: a:ping b:ping c:PING
-- note: host calls from the top level, from inside the agent's own coroutines (wrap and resume),
-- note: and inside pcall in a coroutine, all reach the host and come back.
print("top: " .. models.call("test/echo", { prompt = "hi" }).text)
return { on_message = function(session, text)
  local a = coroutine.wrap(function() return models.call("test/echo", { prompt = text }).text end)()
  local co = coroutine.create(function()
    local ok, r = pcall(models.call, "test/echo", { prompt = text })
    coroutine.yield(r.text)
  end)
  local _, b = coroutine.resume(co)
  local ok, c = pcall(function() return models.call("test/upper", { prompt = text }).text end)
  return "a:" .. a .. " b:" .. b .. " c:" .. (ok and c or "?")
end }
