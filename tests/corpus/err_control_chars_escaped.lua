-- expect: exit=1 stderr~script error: \x1B[2J\x1B]0;owned\x07 \x9B31m \xC2\x9B \xFF tab\x09 é \\
-- note: issue 15, also seen: terminal control sequences in an error message (ESC, BEL, the 8-bit
-- note: CSI raw and UTF-8-encoded, an invalid byte) reach stderr escaped; printable UTF-8 and
-- note: backslashes (escaped as \\) survive.
error("\27[2J\27]0;owned\7 \155" .. "31m \194\155 \255 tab\t é \\", 0)
