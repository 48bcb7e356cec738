-- expect: exit=0
-- input: hi
-- stdout: loaded
-- stdout: reply hi
-- note: CVE-2022-24735 class (Redis): the script poisons every global it can (string, table, print,
-- note: json, a trapping metatable on _G); the host must not depend on the script's globals, so
-- note: the second turn and the reply still work.
local send = session and session.send
local upper = string.upper
print("loaded")
string.rep = function() error("poisoned rep") end
string.format = function() error("poisoned format") end
table.concat = function() error("poisoned concat") end
tostring = function() error("poisoned tostring") end
setmetatable(_G, { __index = function(_, k) error("poisoned global read " .. tostring(k)) end,
                   __newindex = function(_, k) error("poisoned global write " .. tostring(k)) end })
return { on_message = function(s, text) return "reply " .. text end }
