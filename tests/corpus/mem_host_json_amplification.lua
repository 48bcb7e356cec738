-- expect: exit=1 stderr~memory limit
-- note: host memory outside the Lua cap: a 6 MB prompt of control bytes becomes a 36 MB JSON
-- note: request (every byte escaped as \u0001) when the host serialises the call, and the answer
-- note: comes back the same way. The runner bounds the process's peak RSS (cap + 40 MB); the host
-- note: must charge, refuse or bound such requests rather than build them outside the cap. Whatever
-- note: the calls do, the script then fills the heap, so the outcome is the memory limit either way
-- note: and the peak RSS is what is judged.
local p = string.rep("\1", 6 * 1024 * 1024)
for i = 1, 3 do
  local ok, r = pcall(models.call, "test/echo", { prompt = p })
  r = nil
  collectgarbage()
end
local fill = {}
while true do fill[#fill + 1] = ("f"):rep(1024 * 1024) .. #fill end
