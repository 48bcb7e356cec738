-- expect: exit=0
-- stdout: ok
-- note: CVE-2025-49844 class (Redis parser use-after-free): the parser runs while the collector
-- note: runs hard: a reader function that forces full collections between pieces, long chunk
-- note: names, many times over. Reader functions may be refused; a crash is the failure.
for round = 1, 30 do
  local src = "local a = {} for i = 1, 10 do a[i] = 'x' .. i end return #a"
  local pos = 0
  local name = "=" .. string.rep("n", 200 + round)
  local ok, f = pcall(load, function()
    collectgarbage("collect")
    local t = {} for i = 1, 50 do t[i] = { i } end
    pos = pos + 1
    if pos <= #src then return src:sub(pos, pos) end
    return nil
  end, name)
  if ok and f then assert(f() == 10) end
  local g = load(src, name)
  collectgarbage("collect")
  assert(g() == 10)
end
print("ok")
return { on_message = function() return "" end }
