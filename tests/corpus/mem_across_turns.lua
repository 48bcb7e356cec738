-- expect: exit=1 stderr~memory limit
-- input: more
-- stdout: loaded
-- note: memory is capped for the sandbox's whole life: the first turn keeps 10 MB, the second
-- note: turn asks for 10 MB more.
keep1 = string.rep("a", 10 * 1024 * 1024)
print("loaded")
return { on_message = function()
  keep2 = string.rep("b", 10 * 1024 * 1024)
  return "should not get here"
end }
