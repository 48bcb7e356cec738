-- expect: exit=0
-- stdout: ok
-- note: nothing of the host process leaks in as a global: no arg table, no lua.c helpers.
local bad = {}
for _, n in ipairs({ "arg", "io", "LUA_PATH", "ffi", "jit", "bit32", "unpack", "module",
                     "setfenv", "getfenv", "newproxy", "gcinfo" }) do
  if rawget(_G, n) ~= nil then bad[#bad + 1] = n end
end
print(#bad == 0 and "ok" or ("LEAK: " .. table.concat(bad, ",")))
return { on_message = function() return "" end }
