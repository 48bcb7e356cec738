-- models_in_coroutines.lua: model calls wait for the host, even inside the agent's own coroutines.
local function ask(prompt)
  return models.call("test/upper", { prompt = prompt }).text
end

return {
  on_message = function(session, text)
    local gen = coroutine.wrap(function()
      for word in text:gmatch("%S+") do coroutine.yield(ask(word)) end
    end)
    local out = {}
    for answer in gen do out[#out + 1] = answer end
    return table.concat(out, "+")
  end,
}
