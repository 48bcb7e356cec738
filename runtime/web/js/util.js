// util.js: what every view of the page shares: building elements (text only, never HTML from the
// API), calling the HTTP API and turning its errors into messages, amounts, the API key.
//
// The page talks to the server it was loaded from and to nothing else: every path is relative to
// this origin, nothing is fetched from another site, so it works on a machine with no internet.

export const UNIT_DIGITS = 6; // base unit: one micro-credit (10^-6 of a credit)

// h('a', {href: '#/x', class: 'y'}, 'text', child...): an element. Strings become text nodes;
// attributes starting with "on" are listeners; null/false children and attributes are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// An SVG element (the usage chart).
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// An error of the API: the HTTP status, the stable code and the server's message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Calls the HTTP API. opts: {method, body (JSON-encoded), key (bearer; default: none)}.
// Resolves to the parsed JSON; rejects with an ApiError carrying what the server said.
export async function api(path, opts = {}) {
  const headers = {};
  if (opts.key) headers.Authorization = 'Bearer ' + opts.key;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method: opts.method || (opts.body !== undefined ? 'POST' : 'GET'),
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'the server cannot be reached (' + e.message + ')');
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) {
    const err = data && data.error;
    throw new ApiError(r.status, (err && err.code) || 'http_' + r.status,
                       (err && err.message) || text.slice(0, 300) || r.statusText);
  }
  if (data === null) throw new ApiError(r.status, 'bad_response', 'the server answered something that is not JSON');
  return data;
}

// A box that says what went wrong, read out at once (role=alert).
export function errorBox(err, what) {
  const code = err.code || 'error';
  const status = err.status ? ` (HTTP ${err.status})` : '';
  return h('div', {class: 'error', role: 'alert', dataset: {code}},
           h('strong', {}, what ? what + ': ' : ''), h('code', {}, code), status, ' ', err.message || String(err));
}

// A message for a code of the sessions' error frames, in words a person can act on.
export function explain(code) {
  return {
    insufficient_funds: 'The account cannot pay for this: top it up or pick a cheaper agent.',
    limit_exceeded: 'A limit was reached (the agent\'s own, the budget, or the server\'s).',
    unauthorized: 'The API key was refused: check it, or ask the operator for one.',
    agent_error: 'The agent failed while answering.',
    not_found: 'Not found.',
    bad_request: 'The server refused the request as malformed.',
  }[code] || '';
}

// Whole base units as credits: 1000 -> "0.001000". Integer arithmetic only (BigInt).
export function credits(units) {
  if (units === null || units === undefined || units === '') return '–';
  let v;
  try { v = BigInt(units); } catch (e) { return String(units); }
  const neg = v < 0n;
  if (neg) v = -v;
  const s = v.toString().padStart(UNIT_DIGITS + 1, '0');
  return (neg ? '-' : '') + s.slice(0, -UNIT_DIGITS) + '.' + s.slice(-UNIT_DIGITS);
}

// An amount element: credits shown, base units in its title and data-units (for programs).
export function amount(units) {
  return h('span', {class: 'amount', title: `${units} micro-credits`, dataset: {units: String(units)}},
           credits(units));
}

// A time: Unix milliseconds, or an ISO 8601 text (the CLI's JSON shape).
export function date(t) {
  if (!t) return '–';
  const d = new Date(typeof t === 'string' && !/^\d+$/.test(t) ? t : Number(t));
  if (isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

// An address, whole (they are what people copy), breaking anywhere on a narrow screen.
export function address(a) {
  return h('a', {class: 'addr', href: '#/contributor/' + encodeURIComponent(a)}, a);
}

export function isAddress(s) { return /^0x[0-9a-fA-F]{40}$/.test(s); }

// The API key: in this tab's sessionStorage only (never localStorage, never a cookie).
const KEY = 'accrue.api_key';
export function getKey() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(k) { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); }

// Names hold '/', so each part of a path is encoded by itself.
export function pathOf(name) { return name.split('/').map(encodeURIComponent).join('/'); }

// A button that copies text, saying so for a moment.
export function copyButton(getText, label = 'Copy') {
  const b = h('button', {type: 'button', class: 'copy'}, label);
  b.addEventListener('click', async () => {
    const text = getText();
    let ok = false;
    try { await navigator.clipboard.writeText(text); ok = true; } catch (e) { ok = false; }
    if (!ok) { // no clipboard permission (plain http): select the text for Ctrl+C instead
      const ta = h('textarea', {class: 'sr-only', 'aria-hidden': 'true'});
      ta.value = text;
      document.body.append(ta);
      ta.select();
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      ta.remove();
    }
    b.textContent = ok ? 'Copied' : 'Select and copy';
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

// A labelled form control: h('label') around text and the control, so clicks and screen readers
// find it.
export function field(label, control, hint) {
  const id = control.id || ('f' + Math.random().toString(36).slice(2, 9));
  control.id = id;
  const parts = [h('label', {for: id}, label), control];
  if (hint) {
    const hid = id + '-hint';
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', {id: hid, class: 'hint'}, hint));
  }
  return h('div', {class: 'field'}, parts);
}

// The API's objects in either shape: nested prices ({price: {per_message}}) or flat
// ({price_per_message}), times in ms or as text, a record's "signed" or its signature.
export function priceOf(o, k) {
  const v = o.price && o.price[k] !== undefined ? o.price[k] : o['price_' + k];
  return v === undefined || v === null ? 0 : v;
}
export function timeOf(o, k) { return o[k + '_ms'] !== undefined ? o[k + '_ms'] : o[k === 'created' && o.time ? 'time' : k]; }
export function signedOf(r) { return r.signed !== undefined ? r.signed : !!r.signature; }

export function loading(what) { return h('p', {class: 'loading', role: 'status'}, 'Loading ' + what + '…'); }
