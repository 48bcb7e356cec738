-- expect: exit=1 stderr~memory limit exceeded
-- stdout!~: cap is
-- args: --mem-limit 3000000
-- max-ms: 6000
-- note: issue 15 class 3: probing the exact cap by bisecting allocation sizes under pcall (and
-- note: under coroutine.close's __close, and inside a coroutine): the first refusal ends the turn.
local lo, hi = 0, 1 << 30
local function try(n)
  local co = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function() local s = ("x"):rep(n) end })
    coroutine.yield()
  end)
  coroutine.resume(co)
  local ok = coroutine.close(co)
  return ok and pcall(function() return ("y"):rep(n) end)
end
while hi - lo > 1 do
  local mid = (lo + hi) // 2
  if try(mid) then lo = mid else hi = mid end
end
print("cap is about", lo)
return { on_message = function() end }
