-- expect: exit=0
-- stdout: 100000 1 20000
-- note: linear patterns over a 100 KB subject stay well inside the budget (the bounded matcher must
-- note: not be stingy with ordinary use).
local s = ("abcd "):rep(20000)
local count = select(2, s:gsub("%a+", "%0"))
print(#s .. " " .. s:find("abcd", 1, true) .. " " .. count)
return { on_message = function() return "" end }
