-- expect: exit=0
-- stdout: ok
-- max-ms: 2500
-- note: Redis cjson sparse-array class: a table with one huge integer key must not make the encoder
-- note: emit (or allocate) a billion nulls.
local ok, s = pcall(json.encode, { [1] = 1, [2 ^ 31] = 2, [math.maxinteger] = 3 })
assert(not ok or #s < 1000000)
local ok2, s2 = pcall(json.encode, { [1e9] = true })
assert(not ok2 or #s2 < 1000000)
local ok3, s3 = pcall(json.encode, { [-1] = 1, [0] = 2, [1.5] = 3 })
print("ok")
return { on_message = function() return "" end }
