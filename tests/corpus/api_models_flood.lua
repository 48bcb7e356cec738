-- expect: exit=1 stderr~instruction limit|time limit|memory limit
-- max-ms: 2500
-- note: host calls in a tight loop with large prompts: their work counts against the budgets.
local p = ("q"):rep(1024 * 1024)
while true do models.call("test/echo", { prompt = p }) end
