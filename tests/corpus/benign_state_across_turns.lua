-- expect: exit=0
-- input: b
-- stdout: top a
-- stdout: a b 2
-- note: globals and upvalues set in the first turn are there in the second.
state = { "a" }
local count = 1
print("top " .. state[1])
return { on_message = function(session, text)
  state[#state + 1] = text
  count = count + 1
  return table.concat(state, " ") .. " " .. count
end }
