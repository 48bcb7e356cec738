-- expect: exit=1 stderr~time limit
-- args: --instr-limit 0 --time-limit 300
-- max-ms: 1500
-- note: instructions not counted (--instr-limit 0), so only the time limit can stop anything. A
-- note: suspended coroutine's looping __close runs inside that coroutine when coroutine.close is
-- note: called: the stop must reach the thread actually executing, not only the caller.
local co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
  coroutine.yield()
end)
coroutine.resume(co)
coroutine.close(co)
return { on_message = function() return "" end }
