-- expect: exit=2 stderr~instr-limit
-- args: --instr-limit nope
-- note: a malformed limit is a usage error (exit 2, one line naming the flag); nothing runs.
-- stdout-max: 0
print("must not run")
return { on_message = function() return "" end }
