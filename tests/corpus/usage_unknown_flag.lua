-- expect: exit=2 stderr~frobnicate
-- args: --frobnicate 1
-- note: an unknown flag is a usage error (exit 2, one line naming the flag); nothing runs.
-- stdout-max: 0
print("must not run")
return { on_message = function() return "" end }
