// chat.js: a session with an agent over WebSocket (/v1/sessions, the frames of ARCHITECTURE.md's
// Sessions), the reply streamed in as delta frames, a cancel button, and beside it the meter:
// each metered call of a run as it is booked (call frames; the usage frame sums the run up), its
// cost and who was paid and why, with the evidence of data shares fetched from GET /v1/usage/CALL
// (the records and spans behind them).
//
// The API key stays in this tab's sessionStorage. A browser cannot set headers on a WebSocket, so
// the key travels as the subprotocol "bearer.KEY" beside "accrue.v1", which the host picks.
import {h, api, errorBox, explain, amount, credits, address, pathOf, getKey, setKey, field, clear, priceOf} from './util.js';

const ROLES = {
  retrieval: 'contributor of records the query returned',
  span: 'contributor of text the model reproduced',
  owner: 'owner of the model or datanet',
  share: 'declared share of the model',
  author: "the agent's author (its price and markup)",
  operator: "the operator's fee",
};

let live = null; // the open chat: closed when the page leaves the view

export function leaveChat() {
  if (live) live.close();
  live = null;
}

class Chat {
  constructor(els) {
    this.els = els;
    this.ws = null;
    this.session = null;
    this.lastSeq = 0;
    this.run = null;      // the run under way: {id, bubble, text}
    this.pending = [];    // runs asked for, not started yet: their client ids
    this.nextId = 1;
    this.closing = false;
  }

  close() {
    this.closing = true;
    if (this.ws) this.ws.close(1000, 'page left');
  }

  status(text, isError) {
    const s = this.els.status;
    clear(s).append(text);
    s.classList.toggle('bad', !!isError);
  }

  async connect(agent, key, resume) {
    this.agent = agent;
    this.key = key;
    // The key is checked over HTTP first: a refused WebSocket upgrade shows the page no status.
    try {
      await this.refreshBalance();
    } catch (e) {
      this.say(errorBox(e, 'The API key was not accepted'));
      this.status('Not connected.', true);
      return false;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/sessions`, ['accrue.v1', 'bearer.' + key]);
    } catch (e) {
      this.say(errorBox({code: 'bad_request', message: e.message}, 'The session could not be opened'));
      return false;
    }
    this.ws = ws;
    this.status('Connecting…');
    ws.onopen = () => {
      if (resume && this.session) ws.send(JSON.stringify({type: 'session.resume', id: 'resume', session: this.session, last_seq: this.lastSeq}));
      else ws.send(JSON.stringify({type: 'session.start', id: 'start', agent}));
    };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (typeof f.seq === 'number' && f.seq > this.lastSeq) this.lastSeq = f.seq;
      this.frame(f);
    };
    ws.onclose = (ev) => {
      this.ws = null;
      this.setRunning(false);
      if (this.closing) return;
      this.status(`Disconnected (${ev.code}${ev.reason ? ': ' + ev.reason : ''}).`, true);
      this.els.resume.hidden = !this.session;
      this.els.send.disabled = true;
    };
    return true;
  }

  frame(f) {
    switch (f.type) {
    case 'session.ready':
      this.session = f.session;
      this.status(h('span', {}, 'Session with ', h('strong', {}, `${f.agent}@${f.version}`), ': ',
                    amount(priceOf(f, 'per_message')), ' credits a message',
                    priceOf(f, 'per_session') ? [', ', amount(priceOf(f, 'per_session')), ' a session'] : ''));
      this.els.send.disabled = false;
      this.els.input.disabled = false;
      this.els.resume.hidden = true;
      this.els.connect.textContent = 'Restart session';
      this.els.input.focus();
      break;
    case 'session.resumed':
      this.status(`Resumed: ${f.replayed} frame(s) replayed.`);
      this.els.send.disabled = false;
      this.els.resume.hidden = true;
      break;
    case 'run.started': {
      const bubble = this.els.log.querySelector(`[data-pending="${CSS.escape(String(f.reply_to))}"]`);
      this.run = {id: f.run, bubble: bubble || this.reply(null), text: ''};
      this.run.bubble.removeAttribute('data-pending');
      this.run.bubble.dataset.run = f.run;
      this.run.bubble.querySelector('.text').textContent = '';
      this.setRunning(true);
      break;
    }
    case 'delta':
      if (this.run && f.run === this.run.id) {
        this.run.text += f.text;
        this.run.bubble.querySelector('.text').textContent = this.run.text;
      }
      break;
    case 'message':
      if (this.run && f.run === this.run.id) {
        this.run.text = f.content;
        this.run.bubble.querySelector('.text').textContent = f.content;
        this.run.bubble.classList.add('done');
      }
      break;
    case 'call':
      this.meterCall(f);
      break;
    case 'usage':
      this.meter(f);
      break;
    case 'run.done':
      if (this.run && f.run === this.run.id) {
        this.run.bubble.dataset.status = f.status;
        this.run.bubble.setAttribute('aria-busy', 'false');
        if (this.run.cancelling) this.run.cancelling.remove();
        if (f.status !== 'completed')
          this.run.bubble.append(h('p', {class: 'run-status'}, f.status === 'cancelled' ? 'Cancelled.' : 'The run failed.'));
      }
      this.run = null;
      this.setRunning(false);
      this.refreshBalance().catch(e => this.say(errorBox(e, 'Balance')));
      break;
    case 'error': {
      const where = f.run && this.run && f.run === this.run.id ? this.run.bubble : null;
      const box = h('div', {class: 'error', role: 'alert', dataset: {code: f.code}},
                    h('strong', {}, explain(f.code) || 'Error.'), ' ', h('code', {}, f.code), ': ', f.message);
      if (where) where.append(box);
      else {
        // An error for a message that never ran (refused before its run) marks its bubble.
        const b = f.id !== undefined && this.els.log.querySelector(`[data-pending="${CSS.escape(String(f.id))}"]`);
        if (b) { b.removeAttribute('data-pending'); b.setAttribute('aria-busy', 'false'); b.append(box); }
        else this.say(box);
      }
      if (f.id === 'start' || f.id === 'resume') this.status('No session.', true);
      break;
    }
    }
  }

  say(node) {
    this.els.log.append(h('div', {class: 'note'}, node));
    this.els.log.scrollTop = this.els.log.scrollHeight;
  }

  reply(id) {
    const b = h('div', {class: 'bubble agent', 'aria-busy': 'true', dataset: id ? {pending: id} : {}},
                h('span', {class: 'who'}, this.agent + ':'), ' ', h('span', {class: 'text'}, '…'));
    this.els.log.append(b);
    return b;
  }

  send(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !text) return;
    const id = 'm' + this.nextId++;
    this.els.log.append(h('div', {class: 'bubble user'}, h('span', {class: 'who'}, 'You:'), ' ', h('span', {class: 'text'}, text)));
    this.reply(id);
    this.els.log.scrollTop = this.els.log.scrollHeight;
    this.ws.send(JSON.stringify({type: 'message', id, content: text}));
  }

  cancel() {
    if (!this.ws || !this.run || this.run.cancelling) return;
    this.ws.send(JSON.stringify({type: 'cancel', id: 'cancel-' + this.run.id, run: this.run.id}));
    // Until run.done says how it ended: the button is spent, the bubble says what was asked.
    this.run.cancelling = h('p', {class: 'run-status'}, 'Cancelling…');
    this.run.bubble.append(this.run.cancelling);
    this.els.cancel.disabled = true;
  }

  setRunning(on) {
    this.els.cancel.disabled = !on;
    this.els.log.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  async refreshBalance() {
    const b = await api('/v1/balance', {key: this.key});
    const el = this.els.balance;
    clear(el).append(amount(b.available), ' credits');
    el.dataset.units = String(b.available);
    if (b.pending) el.append(h('span', {class: 'muted'}, ' (', amount(b.pending), ' reserved)'));
    return b;
  }

  // The meter's entry for a run: made by its first call frame (or its usage frame).
  meterRun(run) {
    const list = this.els.meter;
    let item = [...list.querySelectorAll('li.meter-run')].find(li => li.dataset.run === run);
    if (!item) {
      item = h('li', {class: 'meter-run', dataset: {run}}, h('h3', {}, `Run ${run}: booking…`));
      list.prepend(item);
    }
    return item;
  }

  // A call frame: one call as soon as it is booked (or refused), with its cost and payees.
  meterCall(f) {
    this.meterRun(f.run).append(this.callEntry(f));
  }

  // One run's usage frame: the run's calls summed up. Its calls were shown as they were booked;
  // any the page did not see (a resumed session's older runs) are shown from the usage frame.
  meter(f) {
    const calls = f.calls || [];
    const item = this.meterRun(f.run);
    item.dataset.cost = String(f.cost || 0);
    item.querySelector('h3').replaceChildren(`Run ${f.run}: `, amount(f.cost || 0), ' credits');
    if (item.querySelectorAll('.call').length < calls.length) {
      item.querySelectorAll('.call').forEach(e => e.remove());
      for (const c of calls) item.append(this.callEntry(c));
    }
    if (!calls.length) item.append(h('p', {class: 'muted'}, 'No metered call.'));
  }

  callEntry(c) {
    const rows = (c.payees || []).map(p => h('tr', {class: 'payee', dataset: {role: p.role, payee: p.payee}},
      h('td', {}, address(p.payee)), h('td', {}, h('span', {class: 'role', title: ROLES[p.role] || ''}, p.role)),
      h('td', {class: 'num'}, amount(p.amount)), h('td', {class: 'why'})));
    const entry = h('div', {class: 'call', dataset: {call: c.call || '', resource: c.resource, status: c.status}},
      h('p', {class: 'call-head'}, h('span', {class: 'resource'}, c.resource), ' ', h('code', {}, c.name), ' ',
        amount(c.cost), ' credits', c.status !== 'ok' ? h('span', {class: 'bad'}, ` ${c.status}`) : '',
        c.units_in || c.units_out ? h('span', {class: 'muted'}, ` (${c.units_in} in, ${c.units_out} out)`) : ''),
      c.error ? h('p', {class: 'error', role: 'alert'}, c.error) : '',
      rows.length ? h('table', {class: 'payees'},
        h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Payee'), h('th', {scope: 'col'}, 'Role'),
                         h('th', {scope: 'col', class: 'num'}, 'Amount'), h('th', {scope: 'col'}, 'Why'))),
        h('tbody', {}, rows)) : '');
    for (const r of rows) r.querySelector('.why').textContent = ROLES[r.dataset.role] || '';
    if (c.call && (c.resource === 'dataset' || c.resource === 'model') && c.status === 'ok')
      this.evidence(c, entry).catch(e => entry.append(errorBox(e, 'Evidence')));
    return entry;
  }

  async evidence(c, entry) {
    const ev = await api('/v1/usage/' + encodeURIComponent(c.call), {key: this.key});
    const spans = (ev.evidence && ev.evidence.spans) || [];
    const rows = (ev.evidence && ev.evidence.rows) || [];
    const rec = (id) => h('a', {href: '#/record/' + id, class: 'record', dataset: {record: id}}, '#' + id);
    for (const line of ev.lines || []) {
      const records = (line.evidence && line.evidence.records) || [];
      if (!records.length) continue;
      const tr = [...entry.querySelectorAll('tr.payee')].find(t => t.dataset.payee === line.payee && t.dataset.role === line.role);
      if (!tr) continue;
      const why = tr.querySelector('.why');
      why.append(h('div', {class: 'evidence'}, 'records ', records.map((r, i) => [i ? ', ' : '', rec(r)])));
      for (const s of spans.filter(s => (s.records || []).some(r => records.includes(r))))
        why.append(h('blockquote', {class: 'span', dataset: {start: s.start, end: s.end}},
                     `“${s.text}”`, h('small', {}, ` ${s.tokens} tokens, in `, (s.records || []).map((r, i) => [i ? ', ' : '', rec(r)]))));
      for (const row of rows.filter(x => records.includes(x.record)))
        why.append(h('small', {class: 'score'}, ` #${row.record} score ${row.score.toFixed(2)}`));
    }
    if (spans.length)
      entry.append(h('p', {class: 'muted'}, `${ev.evidence.covered_tokens} of ${ev.evidence.output_tokens} output tokens matched contributed records.`));
  }
}

export async function chatView(main, ref) {
  const agentSel = h('select', {name: 'agent'});
  const keyBox = h('input', {type: 'password', name: 'api_key', autocomplete: 'off', spellcheck: 'false',
                             value: getKey(), placeholder: 'acc_…'});
  const connect = h('button', {type: 'submit'}, 'Start session');
  const forget = h('button', {type: 'button', class: 'secondary'}, 'Forget key');
  const status = h('p', {class: 'status', role: 'status', id: 'chat-status'}, 'No session.');
  const log = h('div', {class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', tabindex: '0'});
  const input = h('textarea', {name: 'message', rows: '2', disabled: true});
  const send = h('button', {type: 'submit', disabled: true}, 'Send');
  const cancel = h('button', {type: 'button', class: 'danger', disabled: true}, 'Cancel run');
  const resume = h('button', {type: 'button', hidden: true}, 'Reconnect');
  const balance = h('p', {class: 'balance', id: 'balance', 'aria-live': 'polite'}, '–');
  const meter = h('ol', {class: 'meter', id: 'meter', 'aria-live': 'polite'});

  const setup = h('form', {class: 'chat-setup'},
    field('Agent', agentSel), field('API key', keyBox, 'Kept in this browser tab only (sessionStorage).'),
    h('div', {class: 'field buttons'}, connect, forget));
  const composer = h('form', {class: 'composer'},
    field('Message', input, 'Enter sends, Shift+Enter starts a new line.'),
    h('div', {class: 'buttons'}, send, cancel, resume));
  main.append(h('h1', {tabindex: '-1'}, 'Chat'), setup, status,
    h('div', {class: 'chat-grid'},
      h('section', {class: 'conversation', 'aria-labelledby': 'h-conv'}, h('h2', {id: 'h-conv'}, 'Conversation'), log, composer),
      h('aside', {class: 'meter-box', 'aria-labelledby': 'h-meter'}, h('h2', {id: 'h-meter'}, 'Meter'),
        h('p', {}, 'Balance: '), balance, meter)));

  const chat = new Chat({log, input, send, cancel, resume, status, balance, meter, connect});
  leaveChat();
  live = chat;
  keyBox.addEventListener('change', () => setKey(keyBox.value.trim()));
  forget.addEventListener('click', () => { setKey(''); keyBox.value = ''; keyBox.focus(); });
  setup.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = keyBox.value.trim();
    if (!key) {
      status.textContent = 'Paste an API key first.';
      keyBox.focus();
      return;
    }
    setKey(key);
    if (chat.ws) { chat.closing = true; chat.ws.close(1000, 'restart'); chat.closing = false; chat.session = null; }
    chat.lastSeq = 0;
    await chat.connect(agentSel.value, key, false);
  });
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    chat.send(text);
    input.value = '';
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  cancel.addEventListener('click', () => chat.cancel());
  resume.addEventListener('click', () => chat.connect(chat.agent, chat.key, true));

  // The agents to pick from: the marketplace, and the one the address names even if unlisted.
  try {
    const data = await api('/v1/agents?limit=200&sort=usage');
    const names = (data.agents || []).map(a => a.name);
    if (ref && !names.includes(ref)) names.unshift(ref);
    for (const n of names) agentSel.append(h('option', {value: n, selected: n === ref}, n));
  } catch (e) {
    main.insertBefore(errorBox(e, 'The agents could not be listed'), setup);
    if (ref) agentSel.append(h('option', {value: ref, selected: true}, ref));
  }
  if (getKey()) chat.key = getKey(), chat.refreshBalance().catch(() => {});
}
