-- expect: exit=0
-- stdout: ok
-- note: json.null survives a round trip, and the agent cannot corrupt the host's json.null.
local t = json.decode('{"a":null,"b":[null,1]}')
assert(t.a == json.null and t.b[1] == json.null and t.b[2] == 1)
local s = json.encode({ a = json.null })
assert(s:find('^{%s*"a"%s*:%s*null%s*}$'))
pcall(function() json.null.x = 1 end)
pcall(setmetatable, json.null, {})
print("ok")
return { on_message = function() return "" end }
