-- expect: exit=1 stderr~time limit|instruction limit
-- max-ms: 2500
-- note: Lua's code generator is quadratic on long "or"/"and" chains and "elseif" ladders (each new
-- note: jump walks the whole pending jump list): stock lua5.4 compiles "x or x or ... x" with
-- note: 80000 terms (480 KB) in 9 s, all inside one C call (load) where no hook runs. The parser
-- note: must be stopped by the limits too (e.g. a reader that feeds small pieces and checks).
local n = 100000
load("local x = ... return " .. ("x or "):rep(n) .. "x")
load("local x = ... return " .. ("x and "):rep(n) .. "x")
load("local x = ... if x then " .. ("elseif x then "):rep(n) .. "end")
