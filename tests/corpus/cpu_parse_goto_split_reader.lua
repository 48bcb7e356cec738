-- expect: exit=0
-- stdout: refused: too many gotos in one chunk (at most 256)
-- stdout: true
-- max-ms: 2500
-- note: issue 15 class 6: a reader function hands the text over one byte at a time, so every
-- note: `goto` is split across pieces: the count still sees each one. 257 gotos are refused,
-- note: 256 compile.
local function reader_of(src)
  local i = 0
  return function() i = i + 1 if i <= #src then return src:sub(i, i) end end
end
local function chunk(n) return "do " .. ("goto l "):rep(n) .. "::l:: end" end
local f, err = load(reader_of(chunk(257)))
print(f and "compiled" or "refused: " .. err:match("too many.*"))
print(load(reader_of(chunk(256))) ~= nil)
return { on_message = function() end }
