-- expect: exit=0
-- stdout: ok
-- note: codec overflow class (Redis cjson/cmsgpack): 200000 nested arrays and objects must be
-- note: refused with an error or decoded, never overflow the C stack.
local n = 200000
local ok1 = pcall(json.decode, ("["):rep(n) .. ("]"):rep(n))
local ok2 = pcall(json.decode, ('{"a":'):rep(n) .. "1" .. ("}"):rep(n))
local ok3 = pcall(json.decode, ("["):rep(n))
print("ok")
return { on_message = function() return "" end }
