-- expect: exit=0
-- stdout: done
-- max-ms: 6000
-- note: issue 15 class 2 through coroutine.wrap: a wrapped function fails, wrap closes its
-- note: variables, and that __close dives 150 pcalls deep and calls the next failing wrap.
local DEPTH, PC = 300, 150
local wraps = {}
for level = 1, DEPTH do
  wraps[level] = coroutine.wrap(function()
    local x <close> = setmetatable({}, { __close = function()
      local function dive(n)
        if n == 0 then
          if level < DEPTH then pcall(wraps[level + 1]) end
          return
        end
        pcall(dive, n - 1)
      end
      dive(PC)
    end })
    error("fail")
  end)
end
pcall(wraps[1])
print("done")
return { on_message = function() end }
