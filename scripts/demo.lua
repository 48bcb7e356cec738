-- demo.lua: a small retrieval agent, the shape of the agents accrue runs.
--
-- For each message it looks up matching records in the demo registry's datanet (demo/orchard: a
-- few hundred short notes on growing fruit, from five contributors), streams what it found with
-- who contributed it, then asks the model built from that datanet (demo/orchard-ngram, the model
-- factory's) to answer the question. The query pays the contributors of the records it returned;
-- the answer is the contributors' own sentences, so it pays them for the spans it copied. `accrue
-- run` makes the demo registry in ./accrue.db the first time and prints who was paid what. The
-- registry also holds this script as the agent orchard-guide: `accrue run orchard-guide`.

local DATASET, MODEL = "demo/orchard", "demo/orchard-ngram"
local turns = 0

local function on_message(session, text)
  turns = turns + 1
  local found = datasets.query(DATASET, text, { limit = 3 })
  if #found.rows == 0 then
    return "No record in " .. DATASET .. " matches '" .. text .. "'."
  end
  session.send(("Found %d record(s):\n"):format(#found.rows))
  for _, row in ipairs(found.rows) do
    session.send(("  [%d] %s (%s)\n"):format(row.id, row.text, row.contributor))
  end
  local answer = models.call(MODEL, {
    messages = { { role = "user", content = text } },
    max_tokens = 80,
  })
  return ("Answer (%s, %d tokens in, %d out, turn %d): %s"):format(
    MODEL, answer.usage.prompt_tokens, answer.usage.completion_tokens, turns, answer.text)
end

return { on_message = on_message }
