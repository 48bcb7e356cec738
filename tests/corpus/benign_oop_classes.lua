-- expect: exit=0
-- input: rex
-- stdout: rex makes a sound|rex fetches|true|true|nil|locked|hi|a?|y!
-- note: the usual class patterns keep working with the metatable guard (metaguard.c): inheritance
-- note: through a metatable's metatable, self-metatables, protected metatables, __newindex.
local Animal = {}; Animal.__index = Animal
function Animal.new(name) return setmetatable({ name = name }, Animal) end
function Animal:speak() return self.name .. " makes a sound" end
local Dog = setmetatable({}, { __index = Animal }); Dog.__index = Dog
function Dog.new(name) return setmetatable(Animal.new(name), Dog) end
function Dog:fetch() return self.name .. " fetches" end
local C = {}; C.__index = C; setmetatable(C, C); function C:hi() return "hi" end
local P = setmetatable({}, { __metatable = "locked" })
local V = setmetatable({}, { __index = function(t, k) return k .. "!" end,
                             __newindex = function(t, k, v) rawset(t, k, v .. "?") end })
setmetatable({}, V)
V.x = "a"
return { on_message = function(session, name)
  local d = Dog.new(name)
  return table.concat({ d:speak(), d:fetch(), tostring(getmetatable(d) == Dog),
    tostring(getmetatable(Dog).__index == Animal), tostring(getmetatable(Animal)),
    tostring(getmetatable(P)), setmetatable({}, C):hi(), V.x, V.y }, "|")
end }
