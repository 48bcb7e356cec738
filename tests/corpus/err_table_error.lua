-- expect: exit=1 stderr~script error: (error object is a table value)
-- note: a plain table as the error object.
error({ code = 42 })
