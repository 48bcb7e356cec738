-- expect: exit=0
-- stdout: done
-- note: a host call from inside a table.sort comparator and a gsub callback (C-call boundaries):
-- note: it works or ends in a clear error; never a crash or a hang.
local t = { 3, 1, 2 }
pcall(table.sort, t, function(a, b)
  models.call("test/echo", { prompt = "x" })
  return a < b
end)
pcall(string.gsub, "abc", "%w", function(c) return models.call("test/echo", { prompt = c }).text end)
print("done")
return { on_message = function() return "" end }
