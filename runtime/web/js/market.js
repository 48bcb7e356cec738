// market.js: the marketplace (GET /v1/agents: search, tag, sort, pages) and an agent's page
// (GET /v1/agents/NAME[@VERSION], its models and datanets, GET /v1/agents/NAME:usage for the chart).
import {h, svg, api, append, errorBox, amount, credits, address, date, pathOf, copyButton, field, loading, clear,
        priceOf, timeOf} from './util.js';

const PAGE = 12;

function tagButton(tag) {
  return h('a', {class: 'tag', href: '#/?tag=' + encodeURIComponent(tag)}, tag);
}

function usageFigures(u) {
  u = u || {};
  const row = (label, k, fmt) => h('tr', {}, h('th', {scope: 'row'}, label),
                                   h('td', {}, fmt(u[k + '_7d'] || 0)), h('td', {}, fmt(u[k + '_30d'] || 0)));
  const n = v => String(v);
  return h('table', {class: 'figures'},
           h('thead', {}, h('tr', {}, h('td', {}), h('th', {scope: 'col'}, '7 days'), h('th', {scope: 'col'}, '30 days'))),
           h('tbody', {}, row('Sessions', 'sessions', n), row('Messages', 'messages', n),
             row('Revenue', 'revenue', v => amount(v))));
}

function price(a) {
  return h('dl', {class: 'price'},
           h('dt', {}, 'Per message'), h('dd', {}, amount(priceOf(a, 'per_message'))),
           h('dt', {}, 'Per session'), h('dd', {}, amount(priceOf(a, 'per_session'))));
}

function card(a) {
  const link = '#/agent/' + pathOf(a.name);
  return h('li', {class: 'card agent-card', dataset: {agent: a.name}},
    h('h3', {}, h('a', {href: link}, a.name), ' ', h('span', {class: 'version'}, 'v' + a.version)),
    h('p', {class: 'by'}, 'by ', address(a.author)),
    h('p', {class: 'desc'}, a.description || ''),
    price(a),
    h('p', {class: 'tags'}, (a.tags || []).map(tagButton)),
    usageFigures(a.usage),
    h('p', {class: 'actions'}, h('a', {class: 'button', href: '#/chat/' + pathOf(a.name)}, 'Chat'),
      ' ', h('a', {class: 'button secondary', href: link}, 'Details')));
}

export async function marketView(main, params) {
  const search = params.get('search') || '', tag = params.get('tag') || '', sort = params.get('sort') || 'usage';
  const page = Math.max(0, parseInt(params.get('page') || '0', 10) || 0);
  const go = (changes) => {
    const p = new URLSearchParams({search, tag, sort, page: String(page)});
    for (const [k, v] of Object.entries(changes)) p.set(k, v);
    if (!('page' in changes)) p.set('page', '0');
    for (const k of [...p.keys()]) if (!p.get(k) || (k === 'page' && p.get(k) === '0')) p.delete(k);
    const q = p.toString();
    location.hash = '#/' + (q ? '?' + q : '');
  };
  const searchBox = h('input', {type: 'search', name: 'search', value: search, placeholder: 'name, description, author',
                                autocomplete: 'off'});
  const tagBox = h('input', {type: 'text', name: 'tag', value: tag, list: 'known-tags', autocomplete: 'off',
                             placeholder: 'any'});
  const sortBox = h('select', {name: 'sort'},
                    [['usage', 'Most used'], ['revenue', 'Most revenue'], ['new', 'Newest']].map(
                        ([v, l]) => h('option', {value: v, selected: v === sort}, l)));
  const form = h('form', {class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    go({search: searchBox.value.trim(), tag: tagBox.value.trim(), sort: sortBox.value});
  }},
    field('Search', searchBox), field('Tag', tagBox), field('Sort by', sortBox),
    h('div', {class: 'field'}, h('button', {type: 'submit'}, 'Search')));
  sortBox.addEventListener('change', () => form.requestSubmit());
  const results = h('div', {id: 'results', 'aria-live': 'polite'}, loading('agents'));
  main.append(h('h1', {tabindex: '-1'}, 'Marketplace'),
              h('p', {class: 'lead'}, 'Agents listed on this server: what they cost, who wrote them, how much they are used.'),
              form, h('datalist', {id: 'known-tags'}), results);

  const q = new URLSearchParams({sort, limit: String(PAGE + 1), offset: String(page * PAGE)});
  if (search) q.set('search', search);
  if (tag) q.set('tag', tag);
  let data;
  try {
    data = await api('/v1/agents?' + q);
  } catch (e) {
    clear(results).append(errorBox(e, 'The marketplace could not be listed'));
    return;
  }
  const agents = data.agents || [];
  const more = agents.length > PAGE;
  const shown = agents.slice(0, PAGE);
  clear(results);
  const tags = new Set();
  shown.forEach(a => (a.tags || []).forEach(t => tags.add(t)));
  const dl = main.querySelector('#known-tags');
  [...tags].sort().forEach(t => dl.append(h('option', {value: t})));
  const what = [search && `matching “${search}”`, tag && `tagged “${tag}”`].filter(Boolean).join(' and ');
  results.append(h('p', {class: 'count', role: 'status'},
                    shown.length ? `Agents ${page * PAGE + 1}–${page * PAGE + shown.length}${what ? ' ' + what : ''}`
                                 : `No agent${what ? ' ' + what : ''}${page ? ' on this page' : ''}.`));
  results.append(h('ul', {class: 'cards'}, shown.map(card)));
  const nav = h('nav', {class: 'pager', 'aria-label': 'Pages of agents'});
  if (page > 0) nav.append(h('button', {type: 'button', onclick: () => go({page: String(page - 1)})}, '← Previous'));
  nav.append(h('span', {}, `Page ${page + 1}`));
  if (more) nav.append(h('button', {type: 'button', onclick: () => go({page: String(page + 1)})}, 'Next →'));
  results.append(nav);
}

// The usage chart: messages per day as bars, revenue per day as a line, drawn here as SVG, with
// the same figures in a table for screen readers (and for anyone who wants the numbers).
export function usageChart(days) {
  const W = 640, H = 200, L = 40, R = 56, T = 12, B = 28;
  const n = days.length;
  const maxM = Math.max(1, ...days.map(d => d.messages));
  const maxR = Math.max(1, ...days.map(d => d.revenue));
  const bw = (W - L - R) / Math.max(1, n);
  const y = (v, max) => T + (H - T - B) * (1 - v / max);
  const g = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
                        'aria-labelledby': 'chart-title', preserveAspectRatio: 'xMidYMid meet'});
  g.append(svg('title', {id: 'chart-title'},
               `Messages and revenue per day over the last ${n} days: ` +
               `${days.reduce((s, d) => s + d.messages, 0)} messages, ` +
               `${credits(days.reduce((s, d) => s + d.revenue, 0))} credits`));
  for (let i = 0; i <= 4; i++) { // grid and left axis (messages)
    const v = Math.round(maxM * i / 4), yy = y(maxM * i / 4, maxM);
    g.append(svg('line', {x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid'}));
    g.append(svg('text', {x: L - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis'}, String(v)));
    g.append(svg('text', {x: W - R + 6, y: yy + 4, class: 'axis rev'}, credits(Math.round(maxR * i / 4)).replace(/0+$/, '').replace(/\.$/, '')));
  }
  days.forEach((d, i) => {
    const x = L + i * bw;
    const bar = svg('rect', {x: x + bw * 0.15, width: Math.max(1, bw * 0.7), y: y(d.messages, maxM),
                             height: (H - T - B) - (y(d.messages, maxM) - T), class: 'bar'});
    bar.append(svg('title', {}, `${d.day}: ${d.messages} messages, ${d.sessions} sessions, ${credits(d.revenue)} credits`));
    g.append(bar);
    if (i % Math.ceil(n / 6) === 0 || i === n - 1)
      g.append(svg('text', {x: x + bw / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis'}, d.day.slice(5)));
  });
  const pts = days.map((d, i) => `${L + i * bw + bw / 2},${y(d.revenue, maxR)}`).join(' ');
  g.append(svg('polyline', {points: pts, class: 'revline', fill: 'none'}));
  const table = h('table', {class: 'sr-only'}, h('caption', {}, 'Usage per day'),
                  h('tr', {}, h('th', {}, 'Day'), h('th', {}, 'Sessions'), h('th', {}, 'Messages'), h('th', {}, 'Revenue')),
                  days.map(d => h('tr', {}, h('td', {}, d.day), h('td', {}, d.sessions), h('td', {}, d.messages),
                                  h('td', {}, credits(d.revenue)))));
  return h('figure', {class: 'chart-box'}, g,
           h('figcaption', {}, h('span', {class: 'key bar'}, 'messages (left)'), ' ',
             h('span', {class: 'key rev'}, 'revenue in credits (right)')), table);
}

// The manifest as the author signed it (its fields; the registry keeps them, with the script's hash).
function manifestOf(a) {
  return {
    name: a.name, version: a.version, description: a.description, tags: a.tags, author: a.author,
    price_per_message: priceOf(a, 'per_message'), price_per_session: priceOf(a, 'per_session'), markup_bps: a.markup_bps,
    limits: a.limits, models: a.models, datanets: a.datanets,
  };
}

export async function agentView(main, ref) {
  main.append(h('h1', {tabindex: '-1'}, ref), loading('the agent'));
  let a;
  try {
    a = await api('/v1/agents/' + pathOf(ref));
  } catch (e) {
    main.lastChild.replaceWith(errorBox(e, 'No agent to show'));
    return;
  }
  main.lastChild.remove();
  main.querySelector('h1').textContent = a.name;
  const manifest = JSON.stringify(manifestOf(a), null, 2);
  const models = h('ul', {class: 'plain'}, (a.models || []).map(m => h('li', {class: 'model', dataset: {model: m}}, h('code', {}, m))));
  const datanets = h('ul', {class: 'plain'}, (a.datanets || []).map(d =>
      h('li', {}, h('a', {href: '#/datanet/' + pathOf(d)}, d))));
  const chartBox = h('div', {id: 'usage-chart'}, loading('usage'));
  main.append(
    h('p', {class: 'by'}, 'Version ', h('strong', {}, a.version), ' by ', address(a.author),
      ', deployed ', date(timeOf(a, 'deployed')), a.listed ? '' : ' (unlisted)'),
    h('p', {class: 'desc'}, a.description),
    h('p', {class: 'tags'}, (a.tags || []).map(tagButton)),
    h('p', {class: 'actions'}, h('a', {class: 'button', href: '#/chat/' + pathOf(a.name + '@' + a.version)},
                                 'Chat with ' + a.name)),
    h('div', {class: 'grid2'},
      h('section', {'aria-labelledby': 'h-price'}, h('h2', {id: 'h-price'}, 'Price'), price(a),
        h('p', {}, `Markup on model and data costs: ${(a.markup_bps || 0) / 100}%`)),
      h('section', {'aria-labelledby': 'h-use'}, h('h2', {id: 'h-use'}, 'Usage'), usageFigures(a.usage))),
    h('section', {'aria-labelledby': 'h-chart'}, h('h2', {id: 'h-chart'}, 'Usage over the last 30 days'), chartBox),
    h('div', {class: 'grid2'},
      h('section', {'aria-labelledby': 'h-models'}, h('h2', {id: 'h-models'}, 'Models it may call'),
        (a.models || []).length ? models : h('p', {}, 'None.')),
      h('section', {'aria-labelledby': 'h-data'}, h('h2', {id: 'h-data'}, 'Datanets it may query'),
        (a.datanets || []).length ? datanets : h('p', {}, 'None.'))),
    h('section', {'aria-labelledby': 'h-versions'}, h('h2', {id: 'h-versions'}, 'Versions'),
      h('ul', {class: 'plain versions'}, (a.versions || []).map(v => h('li', {},
        h('a', {href: '#/agent/' + pathOf(a.name + '@' + v.version), 'aria-current': v.version === a.version ? 'page' : null},
          v.version), ' ', date(timeOf(v, 'deployed')), v.listed ? '' : ' (unlisted)')))),
    h('section', {'aria-labelledby': 'h-manifest'}, h('h2', {id: 'h-manifest'}, 'Manifest'),
      h('p', {}, 'Script hash ', h('code', {class: 'hash'}, a.script_hash), '. The author signed the manifest with this hash.'),
      h('pre', {class: 'json', tabindex: '0', 'aria-label': 'manifest'}, manifest), copyButton(() => manifest, 'Copy manifest')));

  // Each model's kind, prices and lineage (what its outputs are attributed against).
  for (const li of models.querySelectorAll('li')) {
    api('/v1/models/' + pathOf(li.dataset.model)).then(m => {
      append(li, [' ', h('span', {class: 'muted'}, `${m.kind}, owner `), address(m.owned_by || m.owner),
                h('span', {class: 'muted'}, `, per call ${credits(priceOf(m, 'per_call'))}, per 1k in ${credits(priceOf(m, 'per_1k_in'))}, ` +
                  `per 1k out ${credits(priceOf(m, 'per_1k_out'))}` + (m.lineage && m.lineage.length ? ', trained on ' : '')),
                (m.lineage || []).map((d, i) => [i ? ', ' : '', h('a', {href: '#/datanet/' + pathOf(d)}, d)])]);
    }, e => li.append(' ', h('span', {class: 'muted'}, e.status === 404 && li.dataset.model.startsWith('test/')
        ? "(the server's built-in test provider: not metered)" : `(${e.code}: ${e.message})`)));
  }
  try {
    const u = await api('/v1/agents/' + pathOf(a.name) + ':usage?days=30');
    clear(chartBox).append(usageChart(u.days || []));
  } catch (e) {
    clear(chartBox).append(errorBox(e, 'Usage over time'));
  }
}
