-- expect: exit=0
-- stdout: ok
-- note: the same nesting, caught: each level pcalls the next; the host must come back intact.
local depth = 0
local function f()
  depth = depth + 1
  local co = coroutine.create(f)
  local ok = coroutine.resume(co)
  return ok
end
pcall(f)
print(depth > 10 and "ok" or ("depth " .. depth))
return { on_message = function() return "" end }
