-- expect: exit=1 stderr~weak tables|instruction limit|time limit
-- max-ms: 2500
-- note: the collector's atomic phase is quadratic on a chain through a weak-keyed (ephemeron) table
-- note: laid out against both traversal directions: convergeephemerons re-traverses the whole table
-- note: once per link. The layout is learned from pairs() (hash order), then linked as a spiral from
-- note: the middle. Stock lua5.4: 40000 links take 6.5 s in one collection, all in C where no hook
-- note: runs; 60000 take about 15 s. The collection is forced here, but plain allocation reaches
-- note: the same atomic phase.
local n = 60000
local e = setmetatable({}, { __mode = "k" })
local keys = {}
for i = 1, n do local k = {} keys[i] = k e[k] = true end
local ord = {}
for k in pairs(e) do ord[#ord + 1] = k end
local m = #ord
local mid = m // 2
local seq = { ord[mid] }
for d = 1, m do
  if mid - d >= 1 then seq[#seq + 1] = ord[mid - d] end
  if mid + d <= m then seq[#seq + 1] = ord[mid + d] end
end
for i = 1, #seq - 1 do e[seq[i]] = seq[i + 1] end
local root = seq[1]
keys, ord, seq = nil, nil, nil
collectgarbage()
for i = 1, 100 do local garbage = ("g"):rep(100000) .. i end
while true do end
