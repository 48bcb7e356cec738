-- expect: exit=0
-- stdout: ok
-- note: tries every way to read the canary environment variable; the runner also checks that its
-- note: value never shows up in the output.
local got = {}
local getenv = os.getenv or rawget(os, "getenv") or (_G.os and _G.os.getenv)
if getenv then got[#got + 1] = tostring(getenv("ACCRUE_CANARY")) end
if io and io.popen then
  local p = io.popen("env") if p then got[#got + 1] = p:read("a") end
end
if io and io.open then
  local f = io.open("/proc/self/environ") if f then got[#got + 1] = f:read("a") end
  f = io.open("canary.txt") if f then got[#got + 1] = f:read("a") end
end
print(#got == 0 and "ok" or table.concat(got, " "))
return { on_message = function() return "" end }
