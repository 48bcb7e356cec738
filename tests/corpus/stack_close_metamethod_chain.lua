-- expect: exit=0
-- stdout: done
-- args: --mem-limit 67108864 --instr-limit 100000000
-- max-ms: 8000
-- note: issue 15 class 2 through metamethods: each __close goes 90 levels deep through __index
-- note: functions (C recursion Lua counts) and __tostring in tostring, then closes the next.
local DEPTH, PC = 400, 90
local cos = {}
for level = 1, DEPTH do
  cos[level] = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function()
      local mt = {}
      local depth = 0
      mt.__index = function(t, k)
        depth = depth + 1
        if depth >= PC then
          if level < DEPTH then pcall(coroutine.close, cos[level + 1]) end
          return 0
        end
        return tostring(setmetatable({}, { __tostring = function() return setmetatable({}, mt)[k] end }))
      end
      pcall(function() return setmetatable({}, mt).x end)
    end })
    coroutine.yield()
  end)
  coroutine.resume(cos[level])
end
coroutine.close(cos[1])
print("done")
return { on_message = function() end }
