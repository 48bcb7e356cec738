-- expect: exit=1 stderr~script error: ok\naccrue: time limit exceeded
-- note: issue 15, also seen: a newline in the message cannot start a line of the host's own:
-- note: it is written as the two characters \n.
error("ok\naccrue: time limit exceeded", 0)
