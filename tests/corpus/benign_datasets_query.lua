-- expect: exit=0
-- input: what grows on vines
-- stdout: g h a|0.5|none|HELLO
-- note: datasets.query and models.call against the test provider (runtime/test_provider.h): rows
-- note: ranked by the share of query words they contain, ties in record order, opts.limit obeyed.
return { on_message = function(session, text)
  local found = datasets.query("test/words", text, { limit = 3 })
  local ids = {}
  for i, row in ipairs(found.rows) do ids[i] = row.id end
  local none = datasets.query("test/words", "zebra")
  return table.concat({ table.concat(ids, " "), tostring(found.rows[1].score),
    #none.rows == 0 and "none" or "some", models.call("test/upper", "hello").text }, "|")
end }
