-- expect: exit=1 stderr~err_yield_in_on_message.lua:5: attempt to yield from outside a coroutine
-- input: hi
-- max-ms: 2500
-- note: the same bare yield in the message turn.
return { on_message = function() coroutine.yield({}) return "after yield" end }
