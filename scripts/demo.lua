-- demo.lua: a small retrieval agent, the shape of the agents accrue runs.
--
-- For each message it looks up matching records in the demo registry's datanet (demo/orchard: a
-- few hundred short notes on growing fruit, from five contributors), streams what it found with
-- who contributed it, then asks a model to answer with those records as context. The registry
-- answers the query (SQLite FTS5, BM25); `accrue run` makes the demo registry in ./accrue.db the
-- first time. The model is the test provider's test/echo, so the run is the same on every machine.
-- The registry also holds it as the agent orchard-guide: `accrue run orchard-guide`.

local DATASET, MODEL = "demo/orchard", "test/echo"
local turns = 0

local function on_message(session, text)
  turns = turns + 1
  local found = datasets.query(DATASET, text, { limit = 3 })
  if #found.rows == 0 then
    return "No record in " .. DATASET .. " matches '" .. text .. "'."
  end
  session.send(("Found %d record(s):\n"):format(#found.rows))
  local context = {}
  for i, row in ipairs(found.rows) do
    session.send(("  [%d] %s (%s)\n"):format(row.id, row.text, row.contributor))
    context[i] = row.text
  end
  local answer = models.call(MODEL, {
    messages = {
      { role = "system", content = "Answer from the context only." },
      { role = "user", content = table.concat(context, " ") },
    },
  })
  return ("Answer (%s, %d tokens in, %d out, turn %d): %s"):format(
    MODEL, answer.usage.input_tokens, answer.usage.output_tokens, turns, answer.text)
end

return { on_message = on_message }
