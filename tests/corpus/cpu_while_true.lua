-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: the plainest CPU bomb.
while true do end
