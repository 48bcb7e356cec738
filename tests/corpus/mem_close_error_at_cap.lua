-- expect: exit=1 stderr~memory limit exceeded
-- args: --mem-limit 2000000
-- max-ms: 6000
-- note: issue 15 class 1 through lua_resetthread: a suspended coroutine whose __close raises an
-- note: error is closed with the heap full, so the closing path makes its error object
-- note: with the heap full.
-- Fills the heap to within `margin` bytes of the cap: collectgarbage("count") is exact to the
-- byte, and s:sub(1, k) makes one string of exactly 25 + k bytes.
local big = ("z"):rep(200000)
local slots = {}
for i = 1, 4000 do slots[i] = false end
local nslots = 0
local function fill(cap, margin)
  while true do
    collectgarbage(); collectgarbage()
    local free = cap - math.floor(collectgarbage("count") * 1024)
    if free < 60 + margin then return end
    nslots = nslots + 1
    slots[nslots] = big:sub(1, math.min(free - 25 - margin, 200000))
  end
end

local CAP = 2000000
do local margin = 0
  local co = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function() error("from __close") end })
    coroutine.yield()
  end)
  coroutine.resume(co)
  fill(CAP, margin)
  pcall(coroutine.close, co)
end
local t = {} for i = 1, 1e9 do t[i] = i end
