-- expect: exit=0
-- stdout: 2 20 nil true
-- stdout: chunk:1:
-- note: load of text: plain, with its own env, a syntax error returned as a value.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local f = load("return 1 + 1")
local g = load("return x * 2", "=chunk", "t", { x = 10 })
local h, err = load("return +", "=chunk")
out(f(), g(), h, err:find("^chunk:1:") ~= nil)
out(err:match("^chunk:1:"))
return { on_message = function() return "" end }
