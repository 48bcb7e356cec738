-- expect: exit=1 stderr~memory limit exceeded
-- stdout!~: caught
-- max-ms: 6000
-- note: issue 15 class 3: the memory error in one __close is followed by an ordinary error from
-- note: the next __close, which replaces it as the close's result: the limit must still hold.
local co = coroutine.create(function()
  local first <close> = setmetatable({}, { __close = function() error("an ordinary error") end })
  local second <close> = setmetatable({}, { __close = function()
    local t = {} for i = 1, 1e9 do t[i] = i end
  end })
  coroutine.yield()
end)
coroutine.resume(co)
print("caught", coroutine.close(co))
return { on_message = function() end }
