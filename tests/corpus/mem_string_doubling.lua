-- expect: exit=1 stderr~memory limit
-- note: s = s .. s until the heap cap.
local s = "x"
while true do s = s .. s end
