-- expect: exit=0
-- stdout: 4 words
-- stdout: key=val;k2=v2
-- stdout: (nested (parens))
-- stdout: THE cat
-- stdout: 2024 01 15
-- stdout: x1y2
-- note: ordinary pattern use: gmatch, captures, %b, %f, gsub with a function and a table.
local n = 0
for w in ("the quick brown fox"):gmatch("%a+") do n = n + 1 end
print(n .. " words")
local parts = {}
for k, v in ("key = val, k2 = v2"):gmatch("(%w+)%s*=%s*(%w+)") do parts[#parts + 1] = k .. "=" .. v end
print(table.concat(parts, ";"))
print(("x (nested (parens)) y"):match("%b()"))
print((("the cat"):gsub("%f[%a]the%f[%A]", string.upper)))
print(("2024-01-15"):match("(%d+)-(%d+)-(%d+)") .. " " .. select(2, ("2024-01-15"):match("(%d+)-(%d+)-(%d+)")) .. " " .. select(3, ("2024-01-15"):match("(%d+)-(%d+)-(%d+)")))
print((("ab"):gsub("%a", { a = "x1", b = "y2" })))
return { on_message = function() return "" end }
