-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: a suspended coroutine holding a looping __close, closed by coroutine.close in a loop.
local function mk()
  return coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    coroutine.yield()
  end)
end
while true do
  local co = mk()
  coroutine.resume(co)
  pcall(coroutine.close, co)
end
