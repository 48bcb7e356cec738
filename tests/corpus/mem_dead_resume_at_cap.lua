-- expect: exit=1 stderr~memory limit exceeded
-- args: --instr-limit 100000000
-- max-ms: 6000
-- note: issue 15 class 1. The heap is filled to within a few bytes of the cap, then a dead
-- note: coroutine is resumed: Lua 5.4.4 makes "cannot resume dead coroutine" inside the dead
-- note: coroutine, with no protected call there, and an allocation failing then called abort().
-- note: The script then runs out of memory for good.
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

local CAP = 16777216
local co = coroutine.create(function() end)
coroutine.resume(co)
do local margin = 8
  fill(CAP, margin)
  coroutine.resume(co) -- its message is not kept: the next fill collects it
end
local t = {} for i = 1, 1e9 do t[i] = i end
