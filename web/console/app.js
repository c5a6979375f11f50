// The console's entry point: hash routing (#/streams, #/stream/NAME,
// #/dashboard) over one index.html, and the credentials dialog.
//
// A page module exports render(main, params) and may return a function
// that stops it (timers, players) when the route changes. Only the streams
// page is loaded up front; the others, and player libraries, on demand.

import { credentials, setCredentials } from './api.js';
import { errorBox, spinner } from './ui.js';

const pages = {
  streams: () => import('./streams.js'),
  stream: () => import('./stream.js'),
  dashboard: () => import('./dashboard.js'),
};

let stop = null;
let generation = 0;

/** parseRoute splits "#/stream/NAME?x=1" into page, argument and query. */
function parseRoute(hash) {
  const [path, query] = (hash.replace(/^#\/?/, '') || 'streams').split('?');
  const [page, ...rest] = path.split('/');
  return { page, arg: rest.length ? decodeURIComponent(rest.join('/')) : '', query: new URLSearchParams(query || '') };
}

async function route() {
  const gen = ++generation;
  if (stop) {
    try {
      stop();
    } catch (e) {
      console.error(e);
    }
    stop = null;
  }
  const r = parseRoute(location.hash);
  const main = document.getElementById('main');
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === r.page || (r.page === 'stream' && a.dataset.nav === 'streams'));
  }
  const load = pages[r.page];
  if (!load) {
    location.replace('#/streams');
    return;
  }
  main.replaceChildren(spinner());
  try {
    const mod = await load();
    if (gen !== generation) return;
    main.replaceChildren();
    const s = mod.render(main, r);
    stop = typeof s === 'function' ? s : null;
  } catch (e) {
    if (gen === generation) main.replaceChildren(errorBox(e, 'loading the page'));
  }
}

function setupCredentials() {
  const dialog = document.getElementById('creds-dialog');
  const form = document.getElementById('creds-form');
  const button = document.getElementById('creds-button');
  const label = () => {
    const c = credentials();
    button.textContent = c ? `Signed as ${c.accessKeyId}` : 'Credentials';
  };
  button.addEventListener('click', () => {
    const c = credentials() || {};
    form.accessKeyId.value = c.accessKeyId || '';
    form.secretAccessKey.value = c.secretAccessKey || '';
    form.sessionToken.value = c.sessionToken || '';
    form.region.value = c.region || 'us-west-2';
    dialog.showModal();
  });
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') {
      const c = {
        accessKeyId: form.accessKeyId.value.trim(), secretAccessKey: form.secretAccessKey.value.trim(),
        sessionToken: form.sessionToken.value.trim(), region: form.region.value.trim() || 'us-west-2',
      };
      setCredentials(c.accessKeyId && c.secretAccessKey ? c : null);
    } else if (dialog.returnValue === 'forget') {
      setCredentials(null);
    } else {
      return;
    }
    label();
    route();
  });
  label();
}

setupCredentials();
window.addEventListener('hashchange', route);
route();
