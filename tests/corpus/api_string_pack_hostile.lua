-- expect: exit=0
-- stdout: ok
-- note: string.pack/unpack/packsize with hostile formats and truncated data (codec-overflow class).
local cases = {
  function() return string.unpack("z", "abc") end,
  function() return string.unpack("s8", "\255\255\255\255\255\255\255\127") end,
  function() return string.unpack("s4", "\255\255\255\255") end,
  function() return string.pack("i17", 1) end,
  function() return string.packsize("c2147483647c2147483647") end,
  function() return string.packsize(("c1000000000"):rep(20)) end,
  function() return string.pack("!17 i4", 1) end,
  function() return string.unpack("i16", ("\255"):rep(16)) end,
  function() return string.unpack("j", "abc", -100) end,
  function() return string.unpack("j", "abcdefgh", math.mininteger) end,
  function() return string.unpack(">I9", ("\1"):rep(9)) end,
  function() return string.pack("s1", ("x"):rep(300)) end,
  function() return string.unpack("Xz", "") end,
}
for _, f in ipairs(cases) do pcall(f) end
assert(string.unpack("<i4", string.pack("<i4", -2)) == -2)
print("ok")
return { on_message = function() return "" end }
