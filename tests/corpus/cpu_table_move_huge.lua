-- expect: exit=1 stderr~instruction limit|time limit
-- max-ms: 2500
-- note: table.move over 2^62 absent elements of a plain table: no metamethod runs, so only the
-- note: C loop's own counting can stop it.
table.move({}, 1, 1 << 62, 2)
