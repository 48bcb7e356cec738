-- expect: exit=1 stderr~memory limit exceeded
-- input: go
-- args: --instr-limit 0 --time-limit 10000
-- max-ms: 8000
-- max-rss-mb: 64
-- note: issue 15 class 9 across turns: the load turn pins pages in half the small size classes
-- note: and keeps them; the message turn pins the other half. The bound is the sandbox's, not
-- note: the turn's.
local keep = {}
local function pin(from, to)
  for size = from, to, 40 do
    local tmp, base = {}, ("q"):rep(size - 7)
    for i = 1, (10 << 20) // (size + 40) do tmp[i] = base .. (1000000 + i) end
    for i = 1, #tmp, math.max(1, 4096 // (size + 25)) do keep[#keep + 1] = tmp[i] end
    tmp = nil
    collectgarbage()
  end
end
pin(8, 1000)
return { on_message = function() pin(1008, 4000) end }
