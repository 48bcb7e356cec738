-- hello.lua: the smallest agent. accrue run scripts/examples/hello.lua --input world
return {
  on_message = function(session, text)
    return "hello, " .. text
  end,
}
