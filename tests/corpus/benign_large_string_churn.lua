-- expect: exit=0
-- stdout: ok
-- args: --mem-limit 33554432 --instr-limit 0 --time-limit 10000
-- max-ms: 8000
-- note: issue 15 class 9, the other side: the address space behind a sandbox (3x its cap) must
-- note: not fail ordinary use near the cap: strings of 100 KB to 3 MB made and dropped 400
-- note: times, three alive at once, and tables grown to 200,000 entries and dropped.
local live = {}
math.randomseed(3)
for i = 1, 400 do
  local size = math.random(1, 30) * 100000
  live[i % 3 + 1] = ("x"):rep(size)
  if i % 7 == 0 then local t = {} for k = 1, math.random(1, 200000) do t[k] = k end end
end
print("ok")
return { on_message = function() end }
