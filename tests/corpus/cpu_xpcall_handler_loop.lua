-- expect: exit=1 stderr~instruction limit
-- max-ms: 2500
-- note: the message handler loops after the limit fired.
while true do
  xpcall(function() while true do end end, function() while true do end end)
end
