-- expect: exit=1 stderr~script error: (error object is a nil value)
-- note: error(nil) and friends: the host still reports one line.
error(nil)
