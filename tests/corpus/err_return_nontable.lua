-- expect: exit=1 stderr~script must return a table with an on_message function
-- note: the top-level code returns a number.
return 42
