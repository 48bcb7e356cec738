// contributors.js: what an address earned: its balance (GET /v1/balance/ADDRESS: accrued,
// pending, settled), the records and models that earned it (GET /v1/earnings/ADDRESS), the
// settlement batches it appears in and, for each, its Merkle proof as `accrue proof SEQ ADDRESS
// --json` prints it (GET /v1/batches?address=, GET /v1/batches/SEQ/proofs/ADDRESS), ready to
// copy into a claim.
import {h, api, errorBox, amount, address, date, pathOf, isAddress, copyButton, field, loading, clear} from './util.js';

export async function contributorView(main, addr) {
  const box = h('input', {type: 'text', name: 'address', value: addr || '', placeholder: '0x…', autocomplete: 'off',
                          spellcheck: 'false', pattern: '0x[0-9a-fA-F]{40}'});
  const form = h('form', {class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    const v = box.value.trim();
    location.hash = '#/contributor/' + encodeURIComponent(v);
  }}, field('Address', box, 'A contributor, a model owner or an agent author (0x and 40 hex digits).'),
     h('div', {class: 'field'}, h('button', {type: 'submit'}, 'Show earnings')));
  main.append(h('h1', {tabindex: '-1'}, 'Contributors'),
              h('p', {class: 'lead'}, 'What an address earned from the calls that used its records and models, and how it is paid out.'),
              form);
  if (!addr) return;
  if (!isAddress(addr)) {
    main.append(errorBox({code: 'bad_request', message: `“${addr}” is not an address: 0x and 40 hex digits`}, 'Address'));
    return;
  }
  const out = h('div', {id: 'contributor'});
  main.append(out);
  const bal = h('section', {'aria-labelledby': 'h-bal'}, h('h2', {id: 'h-bal'}, 'Balance'), loading('the balance'));
  const earn = h('section', {'aria-labelledby': 'h-earn'}, h('h2', {id: 'h-earn'}, 'What earned it'), loading('earnings'));
  const bat = h('section', {'aria-labelledby': 'h-bat'}, h('h2', {id: 'h-bat'}, 'Settlement batches and proofs'), loading('batches'));
  out.append(h('p', {class: 'by'}, address(addr)), bal, earn, bat);

  api('/v1/balance/' + encodeURIComponent(addr)).then(b => {
    bal.lastChild.replaceWith(h('dl', {class: 'balance-figures'},
      h('dt', {}, 'Earned in all'), h('dd', {dataset: {field: 'earned'}}, amount(b.earned)),
      h('dt', {}, 'Accrued (not settled yet)'), h('dd', {dataset: {field: 'accrued'}}, amount(b.accrued)),
      h('dt', {}, 'Pending (reserved)'), h('dd', {dataset: {field: 'pending'}}, amount(b.pending)),
      h('dt', {}, 'Settled (in signed batches)'), h('dd', {dataset: {field: 'settled'}}, amount(b.settled))));
  }, e => bal.lastChild.replaceWith(errorBox(e, 'Balance')));

  api('/v1/earnings/' + encodeURIComponent(addr)).then(d => {
    const src = d.sources || [];
    const recs = d.records || [];
    const parts = [];
    parts.push(src.length ? h('table', {class: 'earnings'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Source'), h('th', {scope: 'col'}, 'Role'),
                       h('th', {scope: 'col', class: 'num'}, 'Calls'), h('th', {scope: 'col', class: 'num'}, 'Amount'))),
      h('tbody', {}, src.map(s => h('tr', {dataset: {resource: s.resource, name: s.name, role: s.role}},
        h('td', {}, h('span', {class: 'resource'}, s.resource), ' ',
          s.resource === 'dataset' ? h('a', {href: '#/datanet/' + pathOf(s.name)}, s.name)
          : s.resource === 'message' ? h('a', {href: '#/agent/' + pathOf(s.name)}, s.name) : h('code', {}, s.name)),
        h('td', {}, s.role), h('td', {class: 'num'}, String(s.calls)), h('td', {class: 'num'}, amount(s.amount))))))
      : h('p', {}, 'Nothing earned yet.'));
    if (recs.length)
      parts.push(h('h3', {}, 'Records of this address that earned'),
        h('ul', {class: 'plain records'}, recs.map(r => h('li', {dataset: {record: r.id}},
          h('a', {href: '#/record/' + r.id}, `${r.datanet} #${r.id}`),
          ` in ${r.calls} call${r.calls === 1 ? '' : 's'}`, r.text ? [': ', h('q', {}, r.text)] : ''))));
    if (d.records_total > recs.length) parts.push(h('p', {class: 'muted'}, `The ${recs.length} most used of ${d.records_total} records.`));
    if (d.truncated) parts.push(h('p', {class: 'muted'}, `Only the newest ${d.scanned} ledger postings were read.`));
    earn.lastChild.replaceWith(h('div', {}, parts));
  }, e => earn.lastChild.replaceWith(errorBox(e, 'Earnings')));

  try {
    const d = await api('/v1/batches?address=' + encodeURIComponent(addr));
    const list = d.batches || [];
    const ul = h('ul', {class: 'plain batches'});
    clear(bat).append(h('h2', {id: 'h-bat'}, 'Settlement batches and proofs'),
                      list.length ? ul : h('p', {}, 'In no settlement batch yet.'));
    for (const b of list) {
      const li = h('li', {class: 'batch card', dataset: {sequence: b.sequence}},
        h('h3', {}, `Batch ${b.sequence}`, ' ', h('span', {class: 'muted'}, date(b.cut_time_ms || (b.cut_time * 1000)))),
        h('p', {}, 'Owed to this address: ', amount(b.amount), ' credits; root ', h('code', {class: 'hash'}, b.root)),
        loading('the proof'));
      ul.append(li);
      api(`/v1/batches/${b.sequence}/proofs/${encodeURIComponent(addr)}`).then(p => {
        const text = JSON.stringify(p, null, 2);
        li.lastChild.replaceWith(h('div', {},
          h('pre', {class: 'json proof', tabindex: '0', 'aria-label': `Merkle proof for batch ${b.sequence}`}, text),
          copyButton(() => text, 'Copy proof')));
      }, e => li.lastChild.replaceWith(errorBox(e, 'Proof')));
    }
  } catch (e) {
    clear(bat).append(h('h2', {id: 'h-bat'}, 'Settlement batches and proofs'), errorBox(e, 'Batches'));
  }
}
