-- expect: exit=1 stderr~memory limit
-- note: string.pack pads a "c" field to its full size: a 1 GiB field from a 1-byte string.
local s = string.pack("c" .. (1 << 30), "x")
