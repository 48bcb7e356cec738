-- expect: exit=1 stderr~time limit exceeded
-- args: --mem-limit 67108864 --instr-limit 0 --time-limit 300
-- max-ms: 1500
-- note: issue 15 class 6 (and class 10's "parser's name lookup"): a global named 50,000 times
-- note: inside 150 nested functions of 199 locals each is looked up through every level: over
-- note: 5 s of compiling. The time limit stops it between two 64-byte pieces.
local t = {}
for d = 1, 150 do
  local v = {}
  for i = 1, 199 do v[i] = "v" .. d .. "_" .. i end
  t[#t + 1] = "local function f" .. d .. "() local " .. table.concat(v, ",") .. "\n"
end
t[#t + 1] = ("x=y "):rep(50000)
t[#t + 1] = (" end"):rep(150)
load(table.concat(t))
print("compiled")
