-- expect: exit=1 stderr~instruction limit|time limit|memory limit
-- max-ms: 2500
-- note: host calls in a tight loop with large prompts: their work counts against the budgets.
local p = ("q"):rep(900 * 1024) -- under the 1 MiB bound on a request
while true do models.call("test/echo", { prompt = p }) end
