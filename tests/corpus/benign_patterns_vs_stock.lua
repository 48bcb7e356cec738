-- expect: exit=0
-- stdout-file: benign_patterns_vs_stock.out
-- note: the bounded matcher must answer exactly as stock Lua 5.4 does: ordinary and malformed
-- note: patterns through find, match, gmatch and gsub (expected output taken from lua5.4).
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do
    local v = t[i]
    if type(v) == "string" then v = string.format("%q", v) end
    t[i] = tostring(v)
  end
  return table.concat(t, ",")
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "error: " .. tostring(r[2]):gsub("^[^:]*:%d+: ", ""):gsub(" to '[^']*'", "") end
  return show(table.unpack(r, 2, r.n))
end
local subjects = { "", "a", "hello world", "  key = value  ", "x(a(b)c)y", "THE (quick) fox",
                   "a.b.c", "\0a\0", "αβγ", "aaa", "2024-01-15" }
local patterns = { "", "a", "^a", "a$", ".-", "(.-)", "%a+", "%s*(%w+)%s*=%s*(%w+)", "%b()",
                   "%f[%w]%w+", "[%a_][%w_]*", "[^%s]+", "()a()", "(a*(.)%w(%s*))", "%d+-%d+",
                   "[]", "[a", "%", "(()", "%1", "(a)%2", "%b", "%f", "%fa", "[%", "[a-]", "[]-a]",
                   "%g+", "[%z]", "%x%X", "^(.-)%s*$", "a-b", "a?b?c?", ".", "%.", "[.]" }
local out = {}
for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    out[#out + 1] = try(string.find, s, p) .. "|" .. try(string.match, s, p) .. "|" ..
                    try(string.gsub, s, p, "<%0>") .. "|" .. try(string.find, s, p, 2) .. "|" ..
                    try(string.find, s, p, -3) .. "|" .. try(string.match, s, p, 100)
    local g = {}
    local ok, e = pcall(function() for a, b in s:gmatch(p) do g[#g + 1] = show(a, b) if #g > 20 then break end end end)
    out[#out + 1] = ok and table.concat(g, ";") or ("error: " .. tostring(e):gsub("^[^:]*:%d+: ", ""):gsub(" to '[^']*'", ""))
  end
end
out[#out + 1] = try(string.gsub, "abc", "%w", "%2")
out[#out + 1] = try(string.gsub, "abc", "%w", "%")
out[#out + 1] = try(string.gsub, "abc", "(%w)", "%1%1%0")
out[#out + 1] = try(string.gsub, "abc", "%w", { a = 1, b = true })
out[#out + 1] = try(string.gsub, "abc", "%w", function(c) if c == "b" then return false end return c:upper() end)
out[#out + 1] = try(string.gsub, "abc", "", "-")
out[#out + 1] = try(string.gsub, "abc abc", "abc", "x", 1)
out[#out + 1] = try(string.gsub, "abc", "%w", "x", -1)
out[#out + 1] = try(string.find, "a+b", "+", 1, true)
out[#out + 1] = try(string.find, "abc", "b", 10, true)
out[#out + 1] = try(string.match, ("a"):rep(40), ("(a)"):rep(33))
out[#out + 1] = try(string.match, ("a"):rep(40), ("(a)"):rep(32))
out[#out + 1] = try(string.rep, "ab", 3, ",")
out[#out + 1] = try(string.rep, "ab", 0)
out[#out + 1] = try(string.rep, "ab", -5)
out[#out + 1] = try(string.rep, "", 1e9)
out[#out + 1] = try(string.format, "%5s|%-5s|%.2s|%q|%d|%5.1f|%g|%i|%c|%o|%X|%e", "a", "b", "xyz", "q\n\0", 3, 2.25, 1e20, -7, 65, 8, 255, 12345.678)
out[#out + 1] = try(string.format, "%q", math.mininteger)
out[#out + 1] = try(string.format, "%q", 1 / 0)
out[#out + 1] = try(string.format, "%d", 3.5)
out[#out + 1] = try(string.format, "%10.3q", "x")
out[#out + 1] = try(string.format, "%", 1)
out[#out + 1] = try(string.format, "%s")
out[#out + 1] = try(string.format, "%s %s", 1)
out[#out + 1] = try(string.format, "%099d", 7)
out[#out + 1] = try(string.format, "%100d", 7)
out[#out + 1] = try(string.format, "%.99f", 1 / 3)
out[#out + 1] = try(string.format, "%s", setmetatable({}, { __tostring = function() return "T" end }))
for _, init in ipairs({ 0, 1, 2, 3, 4, 5, -1, -2, -10, math.mininteger, math.maxinteger }) do
  local g = {}
  local ok, e = pcall(function() for a in ("abc"):gmatch(".", init) do g[#g + 1] = a end end)
  out[#out + 1] = tostring(init) .. " gmatch " .. (ok and table.concat(g, ";") or "error") ..
    " find " .. try(string.find, "abc", "", init) .. " plain " .. try(string.find, "abc", "", init, true) ..
    " c " .. try(string.find, "abc", "c", init, true) .. " match " .. try(string.match, "abc", "()", init) ..
    " gsub " .. try(string.gsub, "abc", "", "-", init)
end
print(#out)
for _, l in ipairs(out) do print(l) end
return { on_message = function() return "" end }
