-- expect: exit=0
-- stdout: true
-- args: --mem-limit 67108864 --instr-limit 100000000
-- max-ms: 8000
-- note: issue 15 class 2, wider: 1000 levels of 190 pcalls. As stack_close_pcall_chain: coroutine.close nested 100 deep, each __close going 120 pcalls deep
-- note: before closing the next. Lua 5.4.4's lua_resetthread starts each closed coroutine's C-call
-- note: count afresh, so 100 levels of 120 stayed under every count and overflowed the 8 MiB C
-- note: stack (a segfault). The C stack itself is measured now: the deepest levels get "C stack
-- note: overflow", caught by the pcalls around them.
local DEPTH, PC = 1000, 190
local cos = {}
for level = 1, DEPTH do
  cos[level] = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function()
      local function dive(n)
        if n == 0 then
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
print(coroutine.close(cos[1]))
return { on_message = function() end }
