-- expect: exit=1 stderr~first part
-- note: an error message with newlines and control characters still comes out as ONE line.
error("first part\nsecond line\r\nthird\0fourth\27[31m")
