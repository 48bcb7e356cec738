-- expect: exit=0
-- stdout: done
-- args: --instr-limit 100000000 --time-limit 3000
-- max-ms: 5000
-- note: issue 15 class 5: the same random chain rebuilt and collected again and again, with the
-- note: links laid through the metatables of metatables in both directions.
for round = 1, 4 do
  local N = 8000
  local M = {}
  for i = 1, N do M[i] = { __metatable = round } end
  local perm = {}
  for i = 1, N do perm[i] = i end
  math.randomseed(round)
  for i = N, 2, -1 do local j = math.random(i) perm[i], perm[j] = perm[j], perm[i] end
  for k = 1, N - 1 do
    if round % 2 == 0 then setmetatable(M[perm[k]], M[perm[k + 1]])
    else setmetatable(M[perm[k + 1]], M[perm[k]]) end
  end
  local holders = {}
  for i = 1, N do holders[i] = setmetatable({}, M[i]) end
  M, perm, holders = nil, nil, nil
  collectgarbage()
end
print("done")
return { on_message = function() end }
