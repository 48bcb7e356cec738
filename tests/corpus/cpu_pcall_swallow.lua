-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: pcall around the loop: the limit error must not be catchable (sticky stop).
while true do
  pcall(function() while true do end end)
end
