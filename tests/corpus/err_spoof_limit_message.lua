-- expect: exit=1 stderr~accrue: script error: memory limit exceeded
-- stderr!~: accrue: memory limit exceeded
-- note: issue 15, also seen: a script's error message was printed as it was, so error("memory
-- note: limit exceeded", 0) made the host's own verdict line. The script's text is now
-- note: introduced as a script error.
error("memory limit exceeded", 0)
