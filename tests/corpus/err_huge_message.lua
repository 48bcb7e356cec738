-- expect: exit=1
-- note: a 4 MB error message: still one line on stderr, no crash.
error(string.rep("x", 4 * 1024 * 1024))
