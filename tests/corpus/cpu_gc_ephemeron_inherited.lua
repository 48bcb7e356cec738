-- expect: exit=1 stderr~weak tables
-- note: the ephemeron bomb's setup through every route that could give a metatable in use a
-- note: __mode after setmetatable: a metatable that has a metatable of its own (class
-- note: inheritance), that metatable's __newindex, rawset, load with the metatable as its
-- note: environment, the host's own JSON array metatable. Each route must be refused.
local routes = {
  function() local M2 = {__index = {}} local mt = setmetatable({}, M2) setmetatable({}, mt) mt.__mode = "k" end,
  function() local M2 = {__newindex = function(t, k, v) rawset(t, k, v) end} local mt = setmetatable({}, M2)
             setmetatable({}, mt) mt.__mode = "k" end,
  function() local mt = {} setmetatable({}, mt) rawset(mt, "__mode", "k") end,
  function() local mt = {} setmetatable({}, mt) load("__mode = 'k'", "x", "t", mt)() end,
  function() local mt = {} setmetatable({}, mt) setmetatable(mt, nil) mt.__mode = "k" end,
  function() local mt = {} setmetatable({}, mt) setmetatable(mt, {}) mt.__mode = "k" end,
  function() getmetatable(json.decode("[]")).__mode = "k" end,
  function() setmetatable({}, {__mode = "v"}) end,
}
local refused = 0
for i, f in ipairs(routes) do
  local ok, err = pcall(f)
  if not ok and tostring(err):find("weak tables", 1, true) then refused = refused + 1
  else print("route " .. i .. " was not refused: " .. tostring(err)) end
end
assert(refused == #routes)
error("weak tables refused on all " .. refused .. " routes")
