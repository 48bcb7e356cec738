-- expect: exit=1
-- note: a plain table as the error object.
error({ code = 42 })
