-- expect: exit=1 stderr~instruction limit exceeded
-- args: --time-limit 60000
-- max-ms: 5000
-- note: issue 15 class 11, the other side: calls that do read or copy a big string still pay for
-- note: every byte (s:sub(1, -1), upper, utf8.len over all of it), so a loop of them meets the
-- note: instruction limit long before the distant time limit.
local s = ("x"):rep(1 << 20)
while true do
  local a = s:sub(1, -1)
  local b = s:upper()
  local n = utf8.len(s)
end
