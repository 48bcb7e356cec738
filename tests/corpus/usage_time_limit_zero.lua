-- expect: exit=2 stderr~--time-limit 0 is refused
-- args: --time-limit 0
-- note: issue 15 class 10: the instruction limit does not see the C work Lua's VM does inside
-- note: one instruction (string comparison, rehashing, the collector, the parser), so a turn
-- note: without a wall-time limit could run forever: that configuration is refused.
return { on_message = function() end }
