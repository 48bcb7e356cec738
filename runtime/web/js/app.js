// app.js: the page's router. The address's hash names the view (#/ the marketplace, #/agent/NAME,
// #/chat/NAME, #/contributor/ADDRESS, #/datanets, #/datanet/NAME), so every view can be
// bookmarked, reloaded and reached with the back button; each view renders into <main>.
import {h, clear, errorBox} from './util.js';
import {marketView, agentView} from './market.js';
import {chatView, leaveChat} from './chat.js';
import {contributorView} from './contributors.js';
import {datanetsView, datanetView, recordView} from './datanets.js';

const main = document.getElementById('main');
let firstRender = true;

function parse() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const slash = path.indexOf('/');
  const view = slash < 0 ? path : path.slice(0, slash);
  const rest = slash < 0 ? '' : path.slice(slash + 1).split('/').map(decodeURIComponent).join('/');
  return {view: view || 'market', rest, params};
}

async function render() {
  const {view, rest, params} = parse();
  if (view !== 'chat') leaveChat();
  clear(main);
  main.dataset.view = view;
  for (const a of document.querySelectorAll('header nav a')) {
    const on = a.dataset.view === view || (a.dataset.view === 'datanets' && (view === 'datanet' || view === 'record')) ||
               (a.dataset.view === 'market' && view === 'agent');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const views = {
    market: () => marketView(main, params),
    agent: () => agentView(main, rest),
    chat: () => chatView(main, rest),
    contributor: () => contributorView(main, rest),
    datanets: () => datanetsView(main),
    datanet: () => datanetView(main, rest, params),
    record: () => recordView(main, rest),
  };
  const fn = views[view];
  const done = fn ? fn() : Promise.resolve(main.append(h('h1', {tabindex: '-1'}, 'Not found'),
                                                     h('p', {}, 'No such view. ', h('a', {href: '#/'}, 'The marketplace.'))));
  // Focus moves to the new view's heading (not on the first load), so keyboard and screen-reader
  // users land where the content changed.
  const heading = main.querySelector('h1');
  if (heading && !firstRender) heading.focus();
  firstRender = false;
  try {
    await done;
  } catch (e) {
    main.append(errorBox(e, 'The page failed'));
  }
  main.dataset.ready = view; // for tests and scripts: the view finished loading
  const t = main.querySelector('h1');
  document.title = (t ? t.textContent + ' · ' : '') + 'accrue';
}

window.addEventListener('hashchange', render);
render();
