-- expect: exit=1 stderr~memory limit exceeded
-- stdout!~: caught
-- max-ms: 6000
-- note: issue 15 class 3: out of memory inside a __close run by coroutine.close came back to the
-- note: script as false, "not enough memory", and the script carried on.
local co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function()
    local t = {} for i = 1, 1e9 do t[i] = i end
  end })
  coroutine.yield()
end)
coroutine.resume(co)
print("caught", coroutine.close(co))
return { on_message = function() end }
