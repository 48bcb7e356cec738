-- expect: exit=1 stderr~time limit|instruction limit
-- max-ms: 2500
-- note: a vararg tail call that grows its argument list: about a million VM instructions in all
-- note: (well under the instruction budget) but quadratic copying inside the VM (4.5e10 slot moves),
-- note: so only the wall-time limit can stop it.
local function many(n, ...) if n == 0 then return select("#", ...) end return many(n - 1, n, ...) end
return many(300000)
