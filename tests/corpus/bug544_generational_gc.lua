-- expect: exit=0
-- stdout: ok
-- args: --instr-limit 50000000
-- max-ms: 4000
-- note: lua.org bugs page, 5.4.4 #7 "GC not setting a proper target for next cycle after a full
-- note: collection in generational mode" (lua/lua commit a1f77a23, no test case given). The sandbox
-- note: refuses "generational"; the churn with full collections must stay within the cap.
pcall(collectgarbage, "generational")
local keep = {}
for i = 1, 2000 do
  keep[i % 100 + 1] = string.rep("g", 10000 + i)
  if i % 100 == 0 then collectgarbage() end
end
print("ok")
return { on_message = function() return "" end }
