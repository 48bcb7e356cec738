-- expect: exit=0
-- stdout: ok
-- note: every removed global and library function, reached by its plain name; anything found is
-- note: used at once to try to leave a marker file or run a command.
local found = {}
local function probe(name, v)
  if v ~= nil then found[#found + 1] = name end
end
probe("io", io); probe("debug", debug); probe("package", package); probe("require", require)
probe("dofile", dofile); probe("loadfile", loadfile); probe("loadstring", loadstring)
probe("os.execute", os.execute); probe("os.remove", os.remove); probe("os.rename", os.rename)
probe("os.tmpname", os.tmpname); probe("os.getenv", os.getenv); probe("os.exit", os.exit)
probe("os.setlocale", os.setlocale); probe("os.difftime", os.difftime)
probe("string.dump", string.dump); probe("collectgarbage-is-not-removed", nil)
if io and io.open then pcall(function() io.open("ACCRUE_PWNED_direct", "w"):write("x") end) end
if os.execute then pcall(os.execute, "touch /tmp/ACCRUE_PWNED_direct") end
if dofile then pcall(dofile, "canary.txt") end
print(#found == 0 and "ok" or ("ESCAPE: " .. table.concat(found, ",")))
return { on_message = function() return "" end }
