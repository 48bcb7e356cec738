-- expect: exit=0
-- stdout: done
-- args: --mem-limit 67108864 --instr-limit 100000000
-- max-ms: 8000
-- note: issue 15 class 2 with the JSON codec at the bottom of every level: each __close dives
-- note: 150 pcalls, encodes and decodes a 120-deep document, then closes the next coroutine.
local DEPTH, PC = 300, 150
local deep = {} local t = deep for i = 1, 120 do t[1] = {} t = t[1] end
local text = json.encode(deep)
local cos = {}
for level = 1, DEPTH do
  cos[level] = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function()
      local function dive(n)
        if n == 0 then
          json.decode(json.encode(deep) == text and text or "")
          if level < DEPTH then coroutine.close(cos[level + 1]) end
          return
        end
        pcall(dive, n - 1)
      end
      dive(PC)
    end })
    coroutine.yield()
  end)
  coroutine.resume(cos[level])
end
coroutine.close(cos[1])
print("done")
return { on_message = function() end }
