-- expect: exit=1 stderr~memory limit exceeded
-- stdout!~: caught
-- args: --mem-limit 2000000
-- max-ms: 6000
-- note: issue 15 class 3 through coroutine.wrap: the wrapped function fails, wrap closes its
-- note: variables, and that __close runs out of memory; pcall must not see a catchable error.
local f = coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function()
    local t = {} for i = 1, 1e9 do t[i] = i end
  end })
  error("first")
end)
print("caught", pcall(f))
return { on_message = function() end }
