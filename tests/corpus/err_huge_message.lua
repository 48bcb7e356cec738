-- expect: exit=1 stderr~err_huge_message.lua:3: xxxxxxxx
-- note: a 4 MB error message: still one line on stderr, no crash.
error(string.rep("x", 4 * 1024 * 1024))
