-- expect: exit=1 stderr~memory limit exceeded
-- args: --instr-limit 0 --time-limit 10000
-- max-ms: 8000
-- max-rss-mb: 64
-- note: issue 15 class 9: the cap counts bytes requested, not the pages the allocator holds. One
-- note: small string is kept per page, size class after size class, so every page stays pinned
-- note: while little is live: 111-152 MiB resident under a 16 MiB cap. A sandbox's pages now come
-- note: from address space reserved at 3x its cap plus 4 MiB: once fragmentation has used it,
-- note: allocations fail as at the cap. The peak RSS bound here is that plus the host's own.
local keep = {}
for size = 8, 4000, 40 do
  local tmp, base = {}, ("q"):rep(size - 7)
  for i = 1, (10 << 20) // (size + 40) do tmp[i] = base .. (1000000 + i) end
  for i = 1, #tmp, math.max(1, 4096 // (size + 25)) do keep[#keep + 1] = tmp[i] end
  tmp = nil
  collectgarbage()
end
