-- expect: exit=0
-- stdout~: models.call: the request is too large (more than 1048576 bytes of JSON)
-- stdout~: datasets.query: the request is too large (more than 1048576 bytes of JSON)
-- stdout~: models.call: the request nests too deeply (more than 16 levels, or a cycle)
-- stdout~: datasets.query: the query text is too long (4097 bytes, at most 4096)
-- stdout~: ok 4096
-- args: --mem-limit 33554432
-- max-ms: 3000
-- note: issue 15 class 7: one string shared 600 times (a few bytes of heap, 1.2 MB of JSON), a
-- note: 2 MB prompt in datasets.query's opts, 17 levels of nesting, and a query text one byte
-- note: too long are refused before the host sees them; 4096 bytes of query text pass.
local s = ("x"):rep(2000)
local many = {}
for i = 1, 600 do many[i] = s end
print(pcall(models.call, "test/echo", { prompt = "x", many = many }))
print(pcall(datasets.query, "test/words", "grapes", { note = ("y"):rep(2 << 20) }))
local deep = {}
for i = 1, 16 do deep = { deep } end
print(pcall(models.call, "test/echo", { prompt = "x", deep = deep }))
print(pcall(datasets.query, "test/words", ("a"):rep(4097)))
print("ok " .. (#datasets.query("test/words", ("a "):rep(2048)).rows > 0 and 4096 or 0))
return { on_message = function() end }
