-- expect: exit=1 stderr~string
-- input: x
-- max-ms: 2500
-- note: on_message returns a table whose __tostring loops: the host must not run it unbounded to
-- note: make the reply; a non-string reply is an error naming what a reply must be.
return { on_message = function()
  return setmetatable({}, { __tostring = function() while true do end end })
end }
