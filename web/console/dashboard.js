// Dashboard: the newest thumbnail of every stream, refreshed every few
// seconds; a click plays the stream live.

import { dataCall, epoch, listAllStreams, listFragments } from './api.js';
import { errorBox, fmtAgo, fmtTime, h, spinner } from './ui.js';

const refreshMs = 4000;
const lookbackMs = 30000;
const idleLookbackMs = 3600000; // for streams idle for lookbackMs, checked once a minute
const idleRecheckMs = 60000;

export function render(main) {
  const ctl = new AbortController();
  const grid = h('div', { class: 'grid', id: 'grid' }, spinner('Loading streams…'));
  const top = h('div', {});
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'),
    h('span', { class: 'muted' }, `newest frame of each stream, every ${refreshMs / 1000} s`)), top, grid);
  const cards = new Map(); // stream name -> card

  async function refresh() {
    let streams;
    try {
      streams = await listAllStreams(ctl.signal);
      top.replaceChildren();
    } catch (e) {
      if (e.name !== 'AbortError') top.replaceChildren(errorBox(e, 'ListStreams'));
      return;
    }
    streams.sort((a, b) => a.StreamName.localeCompare(b.StreamName));
    if (streams.length === 0) grid.replaceChildren(h('p', { class: 'empty' }, 'No streams.'));
    const seen = new Set();
    const order = [];
    for (const s of streams) {
      seen.add(s.StreamName);
      if (!cards.has(s.StreamName)) cards.set(s.StreamName, card(s));
      order.push(cards.get(s.StreamName));
    }
    for (const k of [...cards.keys()]) if (!seen.has(k)) cards.delete(k);
    if (streams.length) grid.replaceChildren(...order.map((c) => c.el));
    await Promise.all(order.map((c, i) => c.update(streams[i])));
  }

  function card(s) {
    const name = s.StreamName;
    const img = h('img', { alt: name, class: 'dash-thumb' });
    const frame = h('div', { class: 'dash-frame' }, spinner(''));
    const caption = h('div', { class: 'dash-caption' }, h('strong', {}, name), h('span', { class: 'muted dash-time' }, ''));
    const el = h('a', { class: 'dash-card', href: `#/stream/${encodeURIComponent(name)}?mode=LIVE&autoplay=1`, 'data-stream': name, title: `play ${name} live` }, frame, caption);
    let shown = null; // fragment number on screen
    let idleChecked = 0; // when the last hour was last searched
    async function update(info) {
      const time = caption.querySelector('.dash-time');
      if (info.DataRetentionInHours === 0) {
        frame.replaceChildren(h('span', { class: 'muted' }, 'not archived: no thumbnails'));
        return;
      }
      try {
        const now = Date.now();
        let frags = await listFragments(name, 'SERVER_TIMESTAMP', now - lookbackMs, now, { signal: ctl.signal });
        if (frags.length === 0) {
          // Idle: its newest fragment of the last hour, looked up once a minute.
          if (now - idleChecked < idleRecheckMs) return;
          idleChecked = now;
          frags = await listFragments(name, 'SERVER_TIMESTAMP', now - idleLookbackMs, now, { signal: ctl.signal, max: 20000 });
        }
        if (frags.length === 0) {
          frame.replaceChildren(h('span', { class: 'muted' }, 'no fragment in the last hour'));
          time.textContent = '';
          shown = null;
          return;
        }
        const newest = frags.reduce((a, b) => (b.server > a.server ? b : a));
        time.textContent = ` ${fmtTime(newest.server, false).slice(0, 8)} (${fmtAgo(newest.server)})`;
        if (newest.number === shown) return;
        // Its first video frame: a fragment's server timestamp is that of
        // its earliest frame of any track (ListFragments rounds it down to
        // the millisecond) and video may start a little later than audio,
        // so three samples over its first 0.4 s; the first image wins.
        const t = newest.server + 1;
        const r = await dataCall('getImages', 'GET_IMAGES', {
          StreamName: name, ImageSelectorType: 'SERVER_TIMESTAMP', StartTimestamp: epoch(t),
          EndTimestamp: epoch(t + 400), SamplingInterval: 200, Format: 'JPEG',
          FormatConfig: { JPEGQuality: '75' }, HeightPixels: 180, MaxResults: 3,
        }, { signal: ctl.signal });
        const im = (r.Images || []).find((i) => i.ImageContent) || (r.Images || [])[0];
        if (im && im.ImageContent) {
          img.src = `data:image/jpeg;base64,${im.ImageContent}`;
          img.title = fmtTime(newest.server);
          if (img.parentNode !== frame) frame.replaceChildren(img);
          shown = newest.number;
        } else {
          frame.replaceChildren(h('span', { class: 'muted' }, im ? `no image: ${im.Error}` : 'no image'));
        }
      } catch (e) {
        if (e.name !== 'AbortError') frame.replaceChildren(errorBox(e, 'thumbnail'));
      }
    }
    return { el, update };
  }

  let running = false;
  const loop = async () => {
    if (running || document.hidden) return;
    running = true;
    try {
      await refresh();
    } finally {
      running = false;
    }
  };
  loop();
  const timer = setInterval(loop, refreshMs);
  return () => {
    clearInterval(timer);
    ctl.abort();
  };
}
