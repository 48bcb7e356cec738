-- expect: exit=1 stderr~memory limit|too large|json
-- note: JSON codec as a trust boundary: 3 MB of control bytes escape to 18 MB of \u00XX; the
-- note: encoder's buffer must count against the cap (or refuse).
local s = string.rep("\1", 3 * 1024 * 1024)
local out = json.encode({ s = s })
print(#out)
