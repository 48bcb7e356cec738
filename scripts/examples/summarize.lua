-- summarize.lua: an agent that has a lua model summarise what a datanet holds on a question.
--
-- It finds records in the demo registry's datanet, hands their text to demo/orchard-extract (a
-- lua model: scripts/models/extract.lua, an extractive summary made of the text's own sentences),
-- and returns the summary. The query pays the contributors of the records it returned; the
-- model's output copies their sentences and its lineage is the datanet, so its call pays them
-- again for the spans it copied.
--
--   zig build run -- run scripts/examples/summarize.lua --input "pruning apple trees"

return {
  on_message = function(session, text)
    local found = datasets.query("demo/orchard", text, { limit = 5 })
    if #found.rows == 0 then return "Nothing in demo/orchard matches '" .. text .. "'." end
    local texts = {}
    for _, row in ipairs(found.rows) do texts[#texts + 1] = row.text end
    local summary = models.call("demo/orchard-extract", { prompt = table.concat(texts, " "), max_tokens = 40 })
    return ("%s\n(%d records, summarised in %d words)"):format(summary.text, #found.rows,
                                                             summary.usage.completion_tokens)
  end,
}
