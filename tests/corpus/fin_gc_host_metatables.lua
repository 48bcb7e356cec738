-- expect: exit=0
-- input: hi
-- stdout: ok
-- stdout: reply
-- max-ms: 2500
-- note: a metatable the host reuses for objects it makes later (the session object of each turn,
-- note: API values, userdata) gets a looping __gc added after the fact. Any object the host then
-- note: creates with it would be finalized with hooks off, at lua_close at the latest: the host's
-- note: metatables must be out of reach or protected.
local spin = function() while true do end end
local touched = 0
local function poison(v)
  local mt = getmetatable(v)
  if type(mt) == "table" then
    if pcall(rawset, mt, "__gc", spin) then touched = touched + 1 end
    pcall(rawset, mt, "__close", spin)
  end
end
for _, v in ipairs({ session, json, json.null, models, datasets, session.send, json.encode }) do
  poison(v)
end
print("ok")
return { on_message = function(s, text)
  poison(s)
  for i = 1, 100 do json.decode('{"a":[1,2,{"b":null}]}') end
  collectgarbage("collect")
  return "reply"
end }
