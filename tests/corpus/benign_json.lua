-- expect: exit=0
-- input: {"n":3,"items":["a","b"],"ok":true}
-- stdout: 3 b true
-- note: json.decode of the message and json.encode round trips.
return { on_message = function(session, text)
  local t = json.decode(text)
  local back = json.decode(json.encode(t))
  assert(back.n == 3 and back.items[2] == "b" and back.ok == true)
  assert(json.decode(json.encode("tab\tnl\nq\"")) == "tab\tnl\nq\"")
  return t.n .. " " .. t.items[2] .. " " .. tostring(t.ok)
end }
