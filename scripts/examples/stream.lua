-- stream.lua: a reply streamed in parts with session.send; the parts count against the output limit.
return {
  on_message = function(session, text)
    for word in text:gmatch("%S+") do
      session.send(word:upper() .. " ")
    end
    session.send("\n")
    return nil -- everything was streamed
  end,
}
