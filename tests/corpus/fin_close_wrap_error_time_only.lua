-- expect: exit=1 stderr~time limit
-- args: --instr-limit 0 --time-limit 300
-- max-ms: 1500
-- note: as fin_close_coroutine_time_only, but the __close runs when coroutine.wrap closes a
-- note: coroutine that died of an error (lua_resetthread), after the resume has returned.
local f = coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
  error("die")
end)
pcall(f)
return { on_message = function() return "" end }
