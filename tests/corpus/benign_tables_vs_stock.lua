-- expect: exit=0
-- stdout-file: benign_tables_vs_stock.out
-- note: the bounded table functions must answer exactly as stock Lua 5.4 does, errors included
-- note: (expected output taken from lua5.4).
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = type(t[i]) == "table" and "table" or tostring(t[i]) end
  return table.concat(t, ",")
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "error: " .. tostring(r[2]):gsub("^[^:]*:%d+: ", ""):gsub(" to '[^']*'", "") end
  return show(table.unpack(r, 2, r.n))
end
local function dump(t) local r = {} for i = 1, #t do r[i] = tostring(t[i]) end return "{" .. table.concat(r, ",") .. "}" end
local out = {}
local function add(s) out[#out + 1] = s end
local t = { 1, 2, 3 }
add(try(table.insert, t, 1, 0) .. dump(t))
add(try(table.insert, t, 6, 9) .. dump(t))
add(try(table.insert, t, 0, 9) .. dump(t))
add(try(table.insert, t, 5, 9) .. dump(t))
add(try(table.insert, t) .. dump(t))
add(try(table.insert, t, 1, 2, 3) .. dump(t))
add(try(table.remove, t) .. dump(t))
add(try(table.remove, t, 1) .. dump(t))
add(try(table.remove, t, 10) .. dump(t))
add(try(table.remove, {}, 0))
add(try(table.remove, {}))
add(try(table.concat, { 1, 2.5, "x" }, "-"))
add(try(table.concat, { 1, {}, 3 }))
add(try(table.concat, { 1, 2, 3 }, ",", 2, 3))
add(try(table.concat, { 1, 2, 3 }, ",", 3, 2))
add(try(table.concat, { 1, 2, 3 }, ",", 1, 5))
add(try(table.concat, {}, ",", math.maxinteger - 1, math.maxinteger))
add(try(table.unpack, { 1, 2, 3 }, 2))
add(try(table.unpack, { 1, 2, 3 }, -1, 1))
add(try(table.unpack, {}, math.maxinteger - 1, math.maxinteger))
add(try(table.unpack, {}, math.mininteger, math.maxinteger))
add(try(table.move, { 1, 2, 3, 4, 5 }, 1, 3, 2) .. "")
local m = { 1, 2, 3, 4, 5 }
table.move(m, 1, 3, 3); add(dump(m))
m = { 1, 2, 3, 4, 5 }
table.move(m, 2, 5, 1); add(dump(m))
add(try(table.move, {}, 1, math.maxinteger, 2))
add(try(table.move, {}, -1, math.maxinteger, 2))
add(try(table.move, { 1 }, 1, 1, math.maxinteger))
local s = { 5, 2, 8, 1, 9, 3 }
table.sort(s); add(dump(s))
table.sort(s, function(a, b) return a > b end); add(dump(s))
local words = { "pear", "Apple", "fig", "apple" }
table.sort(words); add(dump(words))
add(try(table.sort, { 1, "x", 2 }))
add(try(table.sort, { 3, 1, 2 }, 42))
local recs = {}
for i = 1, 50 do recs[i] = { k = (i * 37) % 11, i = i } end
table.sort(recs, function(a, b) if a.k ~= b.k then return a.k < b.k end return a.i < b.i end)
local r = {} for i = 1, 50 do r[i] = recs[i].k .. ":" .. recs[i].i end
add(table.concat(r, " "))
add(try(table.pack))
add(show(table.pack(nil, nil).n))
add(show(select("#", table.unpack({ n = 3 }, 1, 3))))
local p = setmetatable({}, { __index = function(_, i) return i * 10 end, __len = function() return 4 end })
add(try(table.concat, p, "+"))
add(try(table.unpack, p))
add(show(#p))
print(#out)
for _, l in ipairs(out) do print(l) end
return { on_message = function() return "" end }
