-- expect: exit=1 stderr~memory limit
-- note: one allocation far beyond the cap (1 GiB; string.rep refuses more than INT_MAX bytes itself).
local s = string.rep("x", 1 << 30)
