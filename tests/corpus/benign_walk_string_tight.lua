-- expect: exit=0
-- stdout: 65536 65536
-- args: --instr-limit 2500000
-- note: issue 15 class 11 under a tight budget: 64 Ki calls each of s:sub(i, i) and s:byte(i)
-- note: cost a few units each, not #s / 64.
local s = ("xy"):rep(32768)
local a, b = 0, 0
for i = 1, #s do
  if #s:sub(i, i) == 1 then a = a + 1 end
end
for i = 1, #s do
  if s:byte(i) > 0 then b = b + 1 end
end
print(a .. " " .. b)
return { on_message = function() end }
