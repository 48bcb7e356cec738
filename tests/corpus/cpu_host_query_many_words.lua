-- expect: exit=1 stderr~instruction limit exceeded
-- args: --instr-limit 1000000 --time-limit 60000
-- max-ms: 4000
-- note: issue 15 class 8: a datasets.query with millions of one-letter words kept the provider
-- note: busy 8-10 s with nothing to stop it. A query's text is at most 4 KiB, the provider ranks
-- note: on its first 32 words, and each call is paid for: a loop of the costliest queries meets
-- note: the instruction limit, long before the distant time limit.
local text = ("a "):rep(2048)
while true do datasets.query("test/words", text, { limit = 8 }) end
