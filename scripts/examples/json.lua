-- json.lua: the json codec agents get. Arrays stay arrays, json.null stands for null.
return {
  on_message = function(session, text)
    local doc = json.decode(text)
    doc.seen = true
    doc.tags = doc.tags or json.array({})
    return json.encode(doc)
  end,
}
