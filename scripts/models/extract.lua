-- extract.lua: a lua model (`accrue model register NAME --kind lua --script FILE`): an extractive
-- summary of the text it is given, deterministic and made of nothing but that text's own sentences.
--
-- A model script is written like an agent: on_message receives the call's request as JSON, with
-- a prompt or messages and max_tokens, and answers with text (what it returns; session.send
-- streams parts first). It runs in a fresh sandbox per call and cannot call models or datasets.
--
-- The summary: split the text into sentences, score each by how often the whole text uses its
-- words (short words do not count), keep the best sentences in their original order until
-- max_tokens words are used. Fed retrieved records, its output is those records' sentences, so
-- when the model's lineage is their datanet the contributors are paid for the spans it copies.

local function text_of(request)
  if request.prompt then return request.prompt end
  local parts = {}
  for _, m in ipairs(request.messages or {}) do
    if m.role ~= "system" then parts[#parts + 1] = m.content end
  end
  return table.concat(parts, "\n")
end

local function words(s)
  local out = {}
  for w in s:lower():gmatch("[%a%d']+") do
    if #w > 3 then out[#out + 1] = w end
  end
  return out
end

local function summarize(text, max_words)
  local sentences = {}
  for s in text:gmatch("[^%.!?\n]+[%.!?]?") do
    s = s:match("^%s*(.-)%s*$")
    if #s > 0 then sentences[#sentences + 1] = s end
  end
  local freq = {}
  for _, w in ipairs(words(text)) do freq[w] = (freq[w] or 0) + 1 end
  local ranked = {}
  for i, s in ipairs(sentences) do
    local score, ws = 0, words(s)
    for _, w in ipairs(ws) do score = score + freq[w] end
    ranked[#ranked + 1] = { i = i, score = #ws > 0 and score / #ws or 0, n = select(2, s:gsub("%S+", "")) }
  end
  table.sort(ranked, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.i < b.i
  end)
  local keep, used = {}, 0
  for _, r in ipairs(ranked) do
    if used + r.n <= max_words or used == 0 then
      keep[r.i] = true
      used = used + r.n
    end
  end
  local out = {}
  for i, s in ipairs(sentences) do
    if keep[i] then out[#out + 1] = s end
  end
  return table.concat(out, " ")
end

return {
  on_message = function(session, request_json)
    local request = json.decode(request_json)
    return summarize(text_of(request), request.max_tokens)
  end,
}
