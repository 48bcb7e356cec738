-- expect: exit=0
-- stdout: caught
-- args: --mem-limit 67108864
-- note: a stack overflow is an ordinary error and can be caught (unlike the limits).
local function f(n) return 1 + f(n + 1) end
local ok, err = pcall(f, 1)
print((not ok and tostring(err):find("stack overflow")) and "caught" or tostring(err))
return { on_message = function() return "" end }
