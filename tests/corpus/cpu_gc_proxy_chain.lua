-- expect: exit=0
-- stdout: done
-- args: --instr-limit 100000000
-- max-ms: 3000
-- note: issue 15 class 5: the sandbox kept its metatable proxies in a weak-keyed table of its own
-- note: (proxy -> the agent's metatable it stands for). Metatables with __metatable set (so the
-- note: proxy does not hold them) whose own metatables chain in a random order made that table an
-- note: ephemeron chain, and one collectgarbage() did quadratic convergence work that no hook can
-- note: interrupt (20,000 links: 5.3 s against a 1 s limit). The sandbox keeps no weak table now.
local N = 20000
local M = {}
for i = 1, N do M[i] = { __metatable = false } end
local perm = {}
for i = 1, N do perm[i] = i end
math.randomseed(7)
for i = N, 2, -1 do local j = math.random(i) perm[i], perm[j] = perm[j], perm[i] end
for k = N - 1, 1, -1 do setmetatable(M[perm[k]], M[perm[k + 1]]) end
local holders = {}
for i = 1, N do holders[i] = setmetatable({}, M[i]) end
local head = holders[perm[1]]
M, perm, holders = nil, nil, nil
collectgarbage()
collectgarbage()
print(head and "done")
return { on_message = function() end }
