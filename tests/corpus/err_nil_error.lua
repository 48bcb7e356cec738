-- expect: exit=1
-- note: error(nil) and friends: the host still reports one line.
error(nil)
