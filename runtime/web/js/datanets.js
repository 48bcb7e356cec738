// datanets.js: the datanets (GET /v1/datanets), one datanet's records (GET
// /v1/datanets/NAME:records, paged by id) and contributors (GET /v1/datanets/NAME:contributors),
// and adding a record (POST /v1/datanets/NAME:contribute), signed by its contributor: with the
// browser's wallet when there is one (EIP-191 personal_sign over keccak256(NAME || 0x00 || TEXT),
// computed here), or with a signature made by `accrue sign` and pasted.
import {h, api, errorBox, amount, address, date, pathOf, isAddress, getKey, setKey, field, loading, clear,
        priceOf, timeOf, signedOf} from './util.js';
import {contributionDigest, hex} from './keccak.js';

const PAGE = 25;

export async function datanetsView(main) {
  main.append(h('h1', {tabindex: '-1'}, 'Datanets'),
              h('p', {class: 'lead'}, 'Sets of contributed records that agents query and models are trained on. Every call that uses a record pays its contributor.'),
              loading('datanets'));
  let d;
  try {
    d = await api('/v1/datanets');
  } catch (e) {
    main.lastChild.replaceWith(errorBox(e, 'The datanets could not be listed'));
    return;
  }
  const list = d.datanets || [];
  main.lastChild.replaceWith(list.length ? h('ul', {class: 'cards'}, list.map(n => h('li', {class: 'card', dataset: {datanet: n.name}},
    h('h3', {}, h('a', {href: '#/datanet/' + pathOf(n.name)}, n.name)),
    h('p', {class: 'by'}, 'owned by ', address(n.owner)),
    h('p', {class: 'desc'}, n.description || ''),
    h('dl', {class: 'price'}, h('dt', {}, 'Per query'), h('dd', {}, amount(priceOf(n, 'per_query'))),
      h('dt', {}, 'Per record returned'), h('dd', {}, amount(priceOf(n, 'per_record')))),
    h('p', {class: 'muted'}, `${n.version} accepted records, ${n.pending} pending, curation ${n.curation}`)))) : h('p', {}, 'No datanet yet.'));
}

function recordRow(r) {
  return h('tr', {dataset: {record: r.id}, id: 'record-' + r.id},
    h('td', {class: 'num'}, String(r.id)), h('td', {}, address(r.contributor)), h('td', {class: 'text'}, r.text),
    h('td', {}, r.status, signedOf(r) ? '' : h('span', {class: 'muted', title: (r.provenance && JSON.stringify(r.provenance)) || ''}, ' (imported)')),
    h('td', {}, date(timeOf(r, 'created'))));
}

// printf's octal escapes for bytes: portable to any POSIX shell (dash's printf has no \x).
function printfBytes(bytes) { return Array.from(bytes, b => '\\' + b.toString(8).padStart(3, '0')).join(''); }

export async function datanetView(main, name, params) {
  const status = ['accepted', 'pending', 'rejected'].includes(params.get('status')) ? params.get('status') : 'accepted';
  const after = Math.max(0, parseInt(params.get('after') || '0', 10) || 0);
  const record = parseInt(params.get('record') || '0', 10) || 0;
  main.append(h('h1', {tabindex: '-1'}, name), loading('the datanet'));
  let d;
  try {
    d = await api('/v1/datanets/' + pathOf(name));
  } catch (e) {
    main.lastChild.replaceWith(errorBox(e, 'No datanet to show'));
    return;
  }
  main.lastChild.remove();
  const recs = h('section', {'aria-labelledby': 'h-recs'}, h('h2', {id: 'h-recs'}, 'Records'), loading('records'));
  const contribs = h('section', {'aria-labelledby': 'h-contribs'}, h('h2', {id: 'h-contribs'}, 'Contributors'), loading('contributors'));
  main.append(
    h('p', {class: 'by'}, 'Owned by ', address(d.owner), ', created ', date(timeOf(d, 'created'))),
    h('p', {class: 'desc'}, d.description || ''),
    h('dl', {class: 'price'}, h('dt', {}, 'Per query'), h('dd', {}, amount(priceOf(d, 'per_query'))),
      h('dt', {}, 'Per record returned'), h('dd', {}, amount(priceOf(d, 'per_record'))),
      h('dt', {}, 'Records'), h('dd', {}, `${d.version} accepted, ${d.pending} pending, ${d.rejected} rejected`),
      h('dt', {}, 'Curation'), h('dd', {}, d.curation === 'review' ? 'the owner reviews each record' : 'records are accepted as they come')),
    contributeForm(d), contribs, recs);

  api('/v1/datanets/' + pathOf(name) + ':contributors').then(c => {
    const list = c.contributors || [];
    contribs.lastChild.replaceWith(list.length ? h('table', {class: 'contributors'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Contributor'), h('th', {scope: 'col', class: 'num'}, 'Accepted'),
                       h('th', {scope: 'col', class: 'num'}, 'Pending'), h('th', {scope: 'col', class: 'num'}, 'Earned'))),
      h('tbody', {}, list.map(x => h('tr', {dataset: {contributor: x.address}}, h('td', {}, address(x.address)),
        h('td', {class: 'num'}, String(x.accepted)), h('td', {class: 'num'}, String(x.pending)),
        h('td', {class: 'num'}, x.earned === undefined ? '–' : amount(x.earned)))))) : h('p', {}, 'No contributor yet.'));
  }, e => contribs.lastChild.replaceWith(errorBox(e, 'Contributors')));

  const base = '#/datanet/' + pathOf(name);
  const statusSel = h('select', {name: 'status'}, ['accepted', 'pending', 'rejected'].map(s => h('option', {value: s, selected: s === status}, s)));
  statusSel.addEventListener('change', () => { location.hash = base + '?status=' + statusSel.value; });
  try {
    const q = new URLSearchParams({status, limit: String(PAGE), after: String(after)});
    const r = await api('/v1/datanets/' + pathOf(name) + ':records?' + q);
    const rows = r.records || [];
    const nav = h('nav', {class: 'pager', 'aria-label': 'Pages of records'});
    if (after > 0) nav.append(h('a', {class: 'button secondary', href: `${base}?status=${status}`}, '⇤ First'));
    nav.append(h('span', {}, rows.length ? `Records #${rows[0].id}–#${rows[rows.length - 1].id}` : 'No record here.'));
    if (rows.length === PAGE)
      nav.append(h('a', {class: 'button secondary', href: `${base}?status=${status}&after=${rows[rows.length - 1].id}`}, 'Next →'));
    clear(recs).append(h('h2', {id: 'h-recs'}, 'Records'), field('Status', statusSel),
      rows.length ? h('div', {class: 'scroll'}, h('table', {class: 'records'},
        h('thead', {}, h('tr', {}, ['Id', 'Contributor', 'Text', 'Status', 'Added'].map(t => h('th', {scope: 'col'}, t)))),
        h('tbody', {}, rows.map(recordRow)))) : '', nav);
  } catch (e) {
    clear(recs).append(h('h2', {id: 'h-recs'}, 'Records'), errorBox(e, 'Records'));
  }
  if (record) showRecord(main, name, record, recs);
}

// One record, named by the address (#/datanet/NAME?record=ID): from the meter's evidence links.
async function showRecord(main, name, id, before) {
  try {
    const rec = await api('/v1/records/' + id);
    if (rec.datanet !== name) throw {code: 'not_found', message: `record #${id} is in ${rec.datanet}, not ${name}`};
    const box = h('section', {class: 'card highlight', id: 'record', 'aria-labelledby': 'h-record', tabindex: '-1'},
      h('h2', {id: 'h-record'}, `Record #${id}`), h('blockquote', {}, rec.text),
      h('p', {}, 'Contributed by ', address(rec.contributor), ', ', rec.status, ', ', date(timeOf(rec, 'created')),
        signedOf(rec) ? ', signed by its contributor' : ', imported by the owner'),
      h('p', {}, 'Content hash ', h('code', {class: 'hash'}, rec.content_hash)));
    main.insertBefore(box, before);
    box.focus();
  } catch (e) {
    main.insertBefore(errorBox(e, `Record #${id}`), before);
  }
}

function contributeForm(d) {
  const text = h('textarea', {name: 'text', rows: '3', required: true});
  const contributor = h('input', {type: 'text', name: 'contributor', placeholder: '0x…', autocomplete: 'off', spellcheck: 'false'});
  const signature = h('input', {type: 'text', name: 'signature', placeholder: '0x… (65 bytes)', autocomplete: 'off', spellcheck: 'false'});
  const key = h('input', {type: 'password', name: 'api_key', value: getKey(), autocomplete: 'off', placeholder: 'acc_…'});
  const digestOut = h('code', {class: 'hash', id: 'digest'}, '–');
  const cmd = h('pre', {class: 'cmd', tabindex: '0', 'aria-label': 'command that signs this record'}, '');
  const result = h('div', {class: 'result', 'aria-live': 'polite'});
  const wallet = h('button', {type: 'button', id: 'wallet-sign', hidden: !window.ethereum}, 'Sign with my wallet and add');
  const update = () => {
    const digest = contributionDigest(d.name, text.value);
    digestOut.textContent = hex(digest);
    cmd.textContent = `printf '${printfBytes(digest)}' > digest.bin\naccrue sign --key YOUR.key --message-file digest.bin`;
  };
  text.addEventListener('input', update);
  update();
  const submit = async () => {
    clear(result);
    const k = key.value.trim();
    if (!k) { result.append(errorBox({code: 'unauthorized', message: 'paste an API key: adding a record needs one'}, 'Not sent')); key.focus(); return; }
    if (!isAddress(contributor.value.trim())) { result.append(errorBox({code: 'bad_request', message: 'the contributor must be an address: 0x and 40 hex digits'}, 'Not sent')); contributor.focus(); return; }
    setKey(k);
    try {
      const r = await api('/v1/datanets/' + pathOf(d.name) + ':contribute', {key: k,
        body: {text: text.value, contributor: contributor.value.trim(), signature: signature.value.trim()}});
      result.append(h('p', {class: 'ok', role: 'status'}, `Added as record #${r.id} (${r.status}).`,
                      ' ', h('a', {href: '#/datanet/' + pathOf(d.name) + '?status=' + r.status + '&record=' + r.id}, 'See it')));
    } catch (e) {
      result.append(errorBox(e, 'The record was refused'));
    }
  };
  wallet.addEventListener('click', async () => {
    clear(result);
    try {
      const accounts = await window.ethereum.request({method: 'eth_requestAccounts'});
      if (!accounts || !accounts.length) throw new Error('the wallet gave no account');
      contributor.value = accounts[0];
      signature.value = await window.ethereum.request({method: 'personal_sign', params: [digestOut.textContent, accounts[0]]});
    } catch (e) {
      result.append(errorBox({code: 'wallet', message: e.message || String(e)}, 'The wallet did not sign'));
      return;
    }
    await submit();
  });
  const form = h('form', {class: 'contribute', onsubmit: (e) => { e.preventDefault(); submit(); }},
    h('h2', {id: 'h-add'}, 'Add a record'),
    h('p', {}, 'A record is signed by its contributor: ', window.ethereum ? 'with the wallet in this browser, or ' : '',
      'with ', h('code', {}, 'accrue sign'), ' over the digest below, pasting the signature here.'),
    field('Text', text),
    h('p', {}, 'Digest to sign (keccak-256 of the datanet\'s name, a zero byte and the text): ', digestOut),
    h('details', {}, h('summary', {}, 'Sign it with the accrue command line'), cmd),
    field('Contributor address', contributor), field('Signature', signature),
    field('API key', key, 'Kept in this browser tab only (sessionStorage).'),
    h('div', {class: 'buttons'}, h('button', {type: 'submit'}, 'Add record'), wallet), result);
  form.setAttribute('aria-labelledby', 'h-add');
  return form;
}

// #/record/ID: one record wherever it is (what the meter's evidence and earnings cite).
export async function recordView(main, id) {
  main.append(h('h1', {tabindex: '-1'}, `Record #${id}`), loading('the record'));
  try {
    const rec = await api('/v1/records/' + encodeURIComponent(id));
    main.lastChild.replaceWith(h('div', {id: 'record', dataset: {record: rec.id}},
      h('blockquote', {class: 'record-text'}, rec.text),
      h('dl', {class: 'price'},
        h('dt', {}, 'Datanet'), h('dd', {}, h('a', {href: '#/datanet/' + pathOf(rec.datanet)}, rec.datanet)),
        h('dt', {}, 'Contributor'), h('dd', {}, address(rec.contributor)),
        h('dt', {}, 'Status'), h('dd', {}, rec.status),
        h('dt', {}, 'Added'), h('dd', {}, date(timeOf(rec, 'created'))),
        h('dt', {}, 'Provenance'), h('dd', {}, signedOf(rec) ? 'signed by its contributor' : 'imported by the datanet\'s owner'),
        h('dt', {}, 'Content hash'), h('dd', {}, h('code', {class: 'hash'}, rec.content_hash)))));
  } catch (e) {
    main.lastChild.replaceWith(errorBox(e, 'No record to show'));
  }
}
