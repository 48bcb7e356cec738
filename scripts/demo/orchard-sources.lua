-- orchard-sources.lua: a demo agent that answers with sources only. For each message it returns
-- the five records of demo/orchard that best match it, ranked, each with its record id, score and
-- contributor: what a reader checks before trusting an answer, and whom a query pays.

local DATASET = "demo/orchard"

return {
  on_message = function(session, text)
    local found = datasets.query(DATASET, text, { limit = 5 })
    if #found.rows == 0 then
      return "No source in " .. DATASET .. " for '" .. text .. "'."
    end
    local lines = {}
    for i, row in ipairs(found.rows) do
      lines[i] = ("%d. %s\n   record %d, score %.2f, contributed by %s"):format(
        i, row.text, row.id, row.score, row.contributor)
    end
    return table.concat(lines, "\n")
  end,
}
