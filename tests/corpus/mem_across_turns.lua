-- expect: exit=1 stderr~memory limit
-- input: more
-- stdout: loaded
-- args: --mem-limit 33554432
-- note: memory is capped for the sandbox's whole life: under a 32 MB cap the first turn keeps 12 MB
-- note: (building it may briefly take twice that), the second turn asks for 12 MB more.
keep1 = string.rep("a", 12 * 1024 * 1024)
print("loaded")
return { on_message = function()
  keep2 = string.rep("b", 12 * 1024 * 1024)
  return "should not get here"
end }
