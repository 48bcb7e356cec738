-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: tables whose __index/__pairs/__len/__tostring loop forever, handed to every API that
-- note: reads a table. The API may read them raw or run the traps; either way nothing may run
-- note: unbounded, and after the calls the script spins so the outcome is the limit.
local spin = function() while true do end end
local trap = setmetatable({}, { __index = spin, __pairs = spin, __len = spin, __tostring = spin,
                                __name = "trap" })
pcall(json.encode, trap)
pcall(json.encode, { a = trap, b = { trap } })
pcall(models.call, "test/echo", trap)
pcall(models.call, trap, { prompt = "x" })
pcall(datasets.query, "d", trap, trap)
pcall(session.send, trap)
pcall(print, trap)
while true do end
