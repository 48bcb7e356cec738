-- expect: exit=0
-- stdout: ok
-- max-ms: 2500
-- note: objects left alive at the end of the run are freed by lua_close with hooks off: none of
-- note: them may carry a finalizer, whatever the script tried.
keep = {}
for i = 1, 1000 do
  local mt = {}
  keep[i] = setmetatable({}, mt)
  mt.__gc = function() while true do end end
  pcall(setmetatable, {}, { __gc = function() while true do end end })
end
print("ok")
return { on_message = function() return "" end }
