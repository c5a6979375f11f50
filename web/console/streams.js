// Streams page: every stream with its status, retention, media type, last
// fragment time and ingest rate (from ListFragments over the last minute);
// create, update retention, delete.

import { KVSError, call, listAllStreams, listFragments } from './api.js';
import { errorBox, fmtAgo, fmtTime, h, spinner } from './ui.js';

const rateWindowMs = 60000;

export function render(main) {
  const ctl = new AbortController();
  const message = h('div', { class: 'message' });
  const tableBox = h('div', {}, spinner('Loading streams…'));
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Streams'),
      h('button', { type: 'button', onclick: () => load() }, 'Refresh')),
    createForm(message, () => load()),
    message,
    tableBox,
  );

  async function load() {
    tableBox.replaceChildren(spinner('Loading streams…'));
    let streams;
    try {
      streams = await listAllStreams(ctl.signal);
    } catch (e) {
      if (e.name !== 'AbortError') tableBox.replaceChildren(errorBox(e, 'ListStreams'));
      return;
    }
    streams.sort((a, b) => a.StreamName.localeCompare(b.StreamName));
    const rows = streams.map((s) => streamRow(s, message, () => load(), ctl.signal));
    tableBox.replaceChildren(streams.length === 0
      ? h('p', { class: 'empty' }, 'No streams yet. Create one above, or start kvsgate with --demo.')
      : h('table', { class: 'streams' },
        h('thead', {}, h('tr', {}, ['Name', 'Status', 'Media type', 'Retention', 'Last fragment', 'Ingest rate (1 min)', 'Created', '']
          .map((c) => h('th', {}, c)))),
        h('tbody', {}, rows.map((r) => r.tr))));
    // The table is on screen and clickable: what the first-load benchmark waits for.
    if (!document.body.dataset.ready) {
      performance.mark('console-ready');
      document.body.dataset.ready = 'streams';
    }
    for (const r of rows) r.stats();
  }
  load();
  return () => ctl.abort();
}

function createForm(message, reload) {
  const form = h('form', { class: 'create', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const btn = f.querySelector('button');
    btn.disabled = true;
    message.replaceChildren(spinner('Creating…'));
    try {
      await call('createStream', {
        StreamName: f.name.value.trim(), MediaType: f.mediaType.value.trim() || undefined,
        DataRetentionInHours: Number(f.retention.value),
      });
      message.replaceChildren(h('div', { class: 'ok' }, `Created ${f.name.value.trim()}.`));
      f.name.value = '';
      reload();
    } catch (e) {
      message.replaceChildren(errorBox(e, 'CreateStream'));
    } finally {
      btn.disabled = false;
    }
  } },
  h('label', {}, 'Name ', h('input', { name: 'name', required: true, pattern: '[a-zA-Z0-9_.\\-]{1,256}', placeholder: 'cam1', spellcheck: 'false' })),
  h('label', {}, 'Media type ', h('input', { name: 'mediaType', value: 'video/h264', spellcheck: 'false' })),
  h('label', {}, 'Retention (hours) ', h('input', { name: 'retention', type: 'number', min: '0', max: '87600', value: '24', required: true })),
  h('button', { class: 'primary' }, 'Create stream'));
  return form;
}

function streamRow(s, message, reload, signal) {
  const last = h('td', { class: 'last' }, spinner(''));
  const rate = h('td', { class: 'rate' }, spinner(''));
  const name = s.StreamName;
  const retention = h('td', {}, `${s.DataRetentionInHours} h`);
  const tr = h('tr', { 'data-stream': name },
    h('td', {}, h('a', { href: `#/stream/${encodeURIComponent(name)}` }, name)),
    h('td', {}, h('span', { class: `status status-${String(s.Status).toLowerCase()}` }, s.Status)),
    h('td', {}, s.MediaType || '—'),
    retention,
    last,
    rate,
    h('td', { title: fmtTime(s.CreationTime * 1000) }, fmtTime(s.CreationTime * 1000)),
    h('td', { class: 'actions' },
      h('button', { type: 'button', onclick: () => editRetention(s, message, reload) }, 'Retention…'),
      h('button', { type: 'button', class: 'danger', onclick: () => remove(s, message, reload) }, 'Delete')));

  async function stats() {
    if (s.DataRetentionInHours === 0) {
      last.replaceChildren(h('span', { class: 'muted' }, 'not archived'));
      rate.replaceChildren(h('span', { class: 'muted' }, '—'));
      return;
    }
    const now = Date.now();
    try {
      const frags = await listFragments(name, 'SERVER_TIMESTAMP', now - rateWindowMs, now, { signal });
      if (frags.length === 0) {
        last.replaceChildren(h('span', { class: 'muted', title: 'no fragment in the last minute' }, 'none in the last minute'));
        rate.replaceChildren('0 kbit/s');
        return;
      }
      const newest = frags.reduce((a, b) => (b.server > a.server ? b : a));
      const bytes = frags.reduce((n, f) => n + f.size, 0);
      // Over the minute, or since the oldest fragment in it if it is younger.
      const span = Math.min(rateWindowMs, Math.max(1000, now - Math.min(...frags.map((f) => f.server))));
      last.replaceChildren(h('span', { title: fmtTime(newest.server) }, fmtTime(newest.server, false)),
        h('span', { class: 'muted' }, ` (${fmtAgo(newest.server)})`));
      rate.replaceChildren(`${(bytes * 8 / span).toFixed(0)} kbit/s`,
        h('span', { class: 'muted' }, ` · ${frags.length} fragments`));
    } catch (e) {
      if (e.name === 'AbortError') return;
      const text = e instanceof KVSError ? e.type : String(e);
      last.replaceChildren(h('span', { class: 'error-inline', title: e.message }, text));
      rate.replaceChildren('—');
    }
  }
  return { tr, stats };
}

async function editRetention(s, message, reload) {
  const v = prompt(`Data retention of ${s.StreamName} in hours (now ${s.DataRetentionInHours}):`, String(s.DataRetentionInHours));
  if (v === null) return;
  const want = Number(v);
  if (!Number.isInteger(want) || want < 0) {
    message.replaceChildren(errorBox(new Error(`"${v}" is not a whole number of hours`), 'UpdateDataRetention'));
    return;
  }
  if (want === s.DataRetentionInHours) return;
  message.replaceChildren(spinner('Updating retention…'));
  try {
    await call('updateDataRetention', {
      StreamName: s.StreamName, CurrentVersion: s.Version,
      Operation: want > s.DataRetentionInHours ? 'INCREASE_DATA_RETENTION' : 'DECREASE_DATA_RETENTION',
      DataRetentionChangeInHours: Math.abs(want - s.DataRetentionInHours),
    });
    message.replaceChildren(h('div', { class: 'ok' }, `Retention of ${s.StreamName} is now ${want} h.`));
    reload();
  } catch (e) {
    message.replaceChildren(errorBox(e, 'UpdateDataRetention'));
  }
}

async function remove(s, message, reload) {
  if (!confirm(`Delete stream ${s.StreamName} and its archive?`)) return;
  message.replaceChildren(spinner('Deleting…'));
  try {
    await call('deleteStream', { StreamARN: s.StreamARN, CurrentVersion: s.Version });
    message.replaceChildren(h('div', { class: 'ok' }, `Deleted ${s.StreamName}.`));
    reload();
  } catch (e) {
    message.replaceChildren(errorBox(e, 'DeleteStream'));
  }
}
