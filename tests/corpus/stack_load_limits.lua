-- expect: exit=0
-- stdout: ok
-- note: the parser's own limits: too many locals, upvalues, and a huge constant table.
local locals = {}
for i = 1, 300 do locals[i] = "local v" .. i .. " = " .. i end
local f1 = load(table.concat(locals, "\n"))
local ups = {}
for i = 1, 300 do ups[i] = "local u" .. i end
local body = {}
for i = 1, 300 do body[i] = "u" .. i end
local f2 = load(table.concat(ups, " ") .. " return function() return " .. table.concat(body, "+") .. " end")
local consts = {}
for i = 1, 70000 do consts[i] = i .. ".5" end
local f3 = load("return {" .. table.concat(consts, ",") .. "}")
print((f1 == nil and f2 == nil) and "ok" or "unexpected")
return { on_message = function() return "" end }
