-- expect: exit=0
-- stdout: ok
-- note: string.dump is gone (no bytecode can be made inside the sandbox), by every route.
local found = {}
if string.dump then found[#found + 1] = "string.dump" end
if ("x").dump then found[#found + 1] = "(\"x\").dump" end
for k in pairs(string) do if k == "dump" then found[#found + 1] = "pairs(string)" end end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
