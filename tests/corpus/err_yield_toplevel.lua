-- expect: exit=1 stderr~err_yield_toplevel.lua:5: attempt to yield from outside a coroutine
-- max-ms: 2500
-- note: the turn runs as a coroutine: a bare coroutine.yield at the top level must not confuse the
-- note: host's scheduler into waiting for a host call that was never made.
coroutine.yield("fake host call")
return { on_message = function() return "" end }
