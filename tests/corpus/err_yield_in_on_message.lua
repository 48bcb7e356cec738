-- expect: exit=1
-- input: hi
-- max-ms: 2500
-- note: the same bare yield in the message turn.
return { on_message = function() coroutine.yield({}) return "after yield" end }
