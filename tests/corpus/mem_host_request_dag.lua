-- expect: exit=0
-- stdout~: models.call: the request holds too many values (more than 10000)
-- max-ms: 3000
-- note: issue 15 class 7: 8 tables in the Lua heap, each holding the next 8 times, encode to a
-- note: JSON text of two million {}; the provider then parsed it into 223-332 MiB of host memory
-- note: under a 16 MiB cap. A request is bounded (bytes, depth, values) while it is encoded, and
-- note: the host never sees this one. The peak RSS bound of the corpus checks the host side.
local t = {}
for i = 1, 7 do t = { t, t, t, t, t, t, t, t } end
print(pcall(models.call, "test/echo", { prompt = "x", context = t }))
return { on_message = function() end }
