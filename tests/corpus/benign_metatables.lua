-- expect: exit=0
-- stdout: 3 7 called:x true true 42 ab locked
-- note: ordinary metatable use (no __gc): __index, __add, __call, __eq, __lt, __len, __concat,
-- note: __metatable.
local function out(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local V = {}
V.__index = { get = function(self) return self.v end }
V.__add = function(a, b) return setmetatable({ v = a.v + b.v }, V) end
V.__call = function(self, x) return "called:" .. x end
V.__eq = function(a, b) return a.v == b.v end
V.__lt = function(a, b) return a.v < b.v end
V.__len = function() return 42 end
V.__concat = function(a, b) return "ab" end
local a, b = setmetatable({ v = 3 }, V), setmetatable({ v = 4 }, V)
local locked = setmetatable({}, { __metatable = "locked" })
out(a:get(), (a + b):get(), a("x"), a == setmetatable({ v = 3 }, V), a < b, #a, a .. b,
      getmetatable(locked))
return { on_message = function() return "" end }
