-- expect: exit=1 stderr~fin_close_error.lua:5: closeboom
-- note: an error raised inside a __close metamethod ends the turn with that error, one line.
do
  local x <close> = setmetatable({}, { __close = function()
    error("closeboom")
  end })
end
return { on_message = function() return "" end }
