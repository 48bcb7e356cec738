-- expect: exit=1 stderr~time limit
-- args: --instr-limit 0 --time-limit 300
-- max-ms: 1500
-- note: instructions not counted: the time limit alone stops loops in the main turn, in coroutines,
-- note: in a sort comparator and in a gsub callback.
local co = coroutine.wrap(function()
  table.sort({ 3, 2, 1 }, function(a, b)
    return (("x"):gsub("x", function() while true do end end))
  end)
end)
co()
