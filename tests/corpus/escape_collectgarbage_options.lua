-- expect: exit=0
-- stdout: ok
-- note: collectgarbage allows only count, collect, step, isrunning; "stop" would let memory grow
-- note: unchecked, "generational" reaches the 5.4.4 generational-mode bug.
local bad = {}
for _, opt in ipairs({ "stop", "restart", "incremental", "generational", "setpause",
                       "setstepmul", "nonsense" }) do
  local ok = pcall(collectgarbage, opt)
  if ok then bad[#bad + 1] = opt end
end
if type(collectgarbage("count")) ~= "number" then bad[#bad + 1] = "count" end
if collectgarbage("isrunning") ~= true then bad[#bad + 1] = "isrunning" end
collectgarbage("collect"); collectgarbage("step"); collectgarbage()
print(#bad == 0 and "ok" or ("ALLOWED: " .. table.concat(bad, ",")))
return { on_message = function() return "" end }
