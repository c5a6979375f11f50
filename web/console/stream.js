// Stream page: a player (protocol x player x mode, server or producer
// timestamps, a time range), the fragment timeline with thumbnails, export
// of the selected range (GetClip) and the selected fragment's metadata.

import { call, dataCall, epoch, listFragments, reachable } from './api.js';
import { readFragmentTags } from './ebml.js';
import { attach, players } from './players.js';
import { Timeline, fragmentAt } from './timeline.js';
import { errorBox, fmtBytes, fmtTime, fromLocalInput, h, spinner, toLocalInput } from './ui.js';

const protocols = {
  HLS_FMP4: 'HLS (fMP4)',
  HLS_TS: 'HLS (MPEG-TS)',
  DASH: 'DASH',
};
const modes = ['LIVE', 'LIVE_REPLAY', 'ON_DEMAND'];
const windows = [[60, '1 min'], [300, '5 min'], [900, '15 min'], [3600, '1 h'], [6 * 3600, '6 h'], [24 * 3600, '24 h']];
const refreshMs = 5000;
const sessionExpires = 43200; // the API's longest session, 12 h

function select(name, options, value) {
  return h('select', { name }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

export function render(main, route) {
  const name = route.arg;
  const q = route.query;
  const ctl = new AbortController();
  const timers = [];
  let player = null;
  let session = null; // {mode, selector, frags (ON_DEMAND/LIVE_REPLAY), url}
  let windowS = Number(q.get('window')) || 300;
  let follow = true;
  let windowEnd = Date.now();

  // Player controls.
  const form = h('form', { class: 'player-controls', onsubmit: (e) => { e.preventDefault(); play(); } },
    h('label', {}, 'Protocol ', select('protocol', Object.entries(protocols), q.get('protocol') || 'HLS_FMP4')),
    h('label', {}, 'Player ', select('player', Object.entries(players).map(([k, p]) => [k, p.label]), q.get('player') || 'hlsjs')),
    h('label', {}, 'Mode ', select('mode', modes.map((m) => [m, m]), q.get('mode') || 'LIVE')),
    h('label', {}, 'Timestamps ', select('selector', [['SERVER_TIMESTAMP', 'server'], ['PRODUCER_TIMESTAMP', 'producer']], q.get('selector') || 'SERVER_TIMESTAMP')),
    h('label', { class: 'range' }, 'From ', h('input', { name: 'start', type: 'datetime-local', step: '1' })),
    h('label', { class: 'range' }, 'To ', h('input', { name: 'end', type: 'datetime-local', step: '1' })),
    h('button', { class: 'primary', name: 'play' }, 'Play'),
    h('button', { type: 'button', name: 'stop', onclick: () => stopPlayer('stopped') }, 'Stop'));
  if (q.get('start')) form.start.value = toLocalInput(Number(q.get('start')));
  if (q.get('end')) form.end.value = toLocalInput(Number(q.get('end')));

  const video = h('video', { id: 'video', controls: true, muted: true, autoplay: true, playsinline: true });
  video.muted = true;
  const playerStatus = h('div', { class: 'player-status', id: 'player-status' }, 'Choose a protocol, player and mode, then Play.');
  const playerError = h('div', { id: 'player-error' });

  const info = h('div', { class: 'stream-info' }, spinner('DescribeStream…'));
  const windowSel = select('window', windows.map(([s, l]) => [String(s), l]), String(windowS));
  const followBox = h('input', { type: 'checkbox', checked: true, name: 'follow' });
  const tlStatus = h('span', { class: 'tl-status' });
  const tlError = h('div', {});
  const selectionBox = h('div', { class: 'selection', id: 'selection' });
  const exportBox = h('div', { id: 'export' });
  const fragBox = h('div', { class: 'fragment-panel', id: 'fragment' },
    h('p', { class: 'muted' }, 'Click a fragment on the timeline to see its details and metadata tags.'));

  const timeline = new Timeline({
    stream: name,
    onSelectFragment: (f) => showFragment(f),
    onSelectRange: (a, b) => setRange(a, b),
    onSeek: (t) => seek(t),
  });

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, h('a', { href: '#/streams', class: 'muted' }, 'Streams'), ' / ', name), info),
    h('section', { class: 'player-panel' }, form, h('div', { class: 'video-box' }, video), playerStatus, playerError),
    h('section', { class: 'timeline-panel' },
      h('div', { class: 'tl-toolbar' },
        h('strong', {}, 'Fragments'),
        h('label', {}, 'Window ', windowSel),
        h('button', { type: 'button', onclick: () => shift(-1), title: 'earlier' }, '◀'),
        h('button', { type: 'button', onclick: () => shift(1), title: 'later' }, '▶'),
        h('label', {}, followBox, ' follow now'),
        tlStatus),
      timeline.el, tlError,
      h('div', { class: 'selection-bar' }, selectionBox,
        h('button', { type: 'button', name: 'play-range', onclick: () => { form.mode.value = 'ON_DEMAND'; play(); } }, 'Play range'),
        h('button', { type: 'button', name: 'export', class: 'primary', onclick: () => exportClip() }, 'Export MP4'),
        exportBox)),
    h('section', {}, h('h2', {}, 'Fragment'), fragBox));

  // Controls that depend on each other.
  const syncControls = () => {
    const proto = form.protocol.value;
    for (const o of form.player.options) o.disabled = !players[o.value].protocols.includes(proto);
    if (form.player.selectedOptions[0].disabled) form.player.value = proto === 'DASH' ? 'dashjs' : 'hlsjs';
    const mode = form.mode.value;
    form.start.disabled = mode === 'LIVE';
    form.end.disabled = mode !== 'ON_DEMAND';
    const [a, b] = range();
    if (Number.isFinite(a) && Number.isFinite(b) && b > a) timeline.setSelection(a, b);
    selectionBox.textContent = Number.isFinite(a) && Number.isFinite(b)
      ? `Selected: ${fmtTime(a)} – ${fmtTime(b)} (${((b - a) / 1000).toFixed(0)} s)`
      : 'Drag on the timeline (or fill From/To) to select a range.';
  };
  form.addEventListener('change', syncControls);
  windowSel.addEventListener('change', () => {
    windowS = Number(windowSel.value);
    refresh();
  });
  followBox.addEventListener('change', () => {
    follow = followBox.checked;
    if (follow) refresh();
  });

  function range() {
    return [fromLocalInput(form.start.value), fromLocalInput(form.end.value)];
  }

  function setRange(a, b) {
    form.start.value = toLocalInput(Math.floor(a / 1000) * 1000);
    form.end.value = toLocalInput(Math.ceil(b / 1000) * 1000);
    syncControls();
  }

  function shift(dir) {
    follow = false;
    followBox.checked = false;
    windowEnd += dir * windowS * 1000 * 0.8;
    if (windowEnd >= Date.now()) {
      windowEnd = Date.now();
      follow = true;
      followBox.checked = true;
    }
    refresh();
  }

  // refresh reloads the timeline's fragments (ListFragments). Following
  // now, it asks only for what is new since the last load (with 30 s of
  // overlap for late fragments) and drops what left the window.
  let refreshing = false;
  let loaded = null; // {selector, from, to, frags}
  const maxFragments = 100000;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    if (follow) windowEnd = Date.now();
    const to = windowEnd;
    const from = to - windowS * 1000;
    const selector = form.selector.value;
    const need = from - 20000; // a fragment that starts up to 20 s earlier may reach into the window
    const incremental = loaded && loaded.selector === selector && loaded.from <= need && loaded.to <= to && to - loaded.to < 60000;
    if (!incremental) tlStatus.replaceChildren(spinner('ListFragments…'));
    try {
      let frags;
      if (incremental) {
        const fresh = await listFragments(name, selector, loaded.to - 30000, to, { signal: ctl.signal, max: maxFragments });
        const seen = new Set(fresh.map((f) => f.number));
        frags = loaded.frags.filter((f) => !seen.has(f.number) && f.start + f.length >= need).concat(fresh);
        frags.sort((a, b) => a.start - b.start);
      } else {
        frags = await listFragments(name, selector, need, to, { signal: ctl.signal, max: maxFragments });
      }
      loaded = { selector, from: need, to, frags };
      timeline.set(frags.filter((f) => f.start + f.length >= from), from, to, selector);
      const cut = frags.length >= maxFragments ? ` (only the first ${maxFragments}: choose a shorter window)` : '';
      tlStatus.replaceChildren(`${timeline.frags.length} fragments in view${cut}`);
      tlError.replaceChildren();
    } catch (e) {
      if (e.name === 'AbortError') return;
      tlStatus.replaceChildren();
      tlError.replaceChildren(errorBox(e, 'ListFragments'));
    } finally {
      refreshing = false;
    }
  }

  async function describe() {
    try {
      const r = await call('describeStream', { StreamName: name }, { signal: ctl.signal });
      const s = r.StreamInfo;
      const parts = [s.MediaType, `retention ${s.DataRetentionInHours} h`, `created ${fmtTime(s.CreationTime * 1000)}`];
      info.replaceChildren(
        h('span', { class: `status status-${String(s.Status).toLowerCase()}` }, s.Status),
        ' ' + parts.filter(Boolean).join(' · '));
    } catch (e) {
      if (e.name !== 'AbortError') info.replaceChildren(errorBox(e, 'DescribeStream'));
    }
  }

  function stopPlayer(why) {
    if (player) {
      try {
        player.destroy();
      } catch (e) {
        console.error(e);
      }
    }
    player = null;
    session = null;
    timeline.setPlayhead(null);
    if (why) playerStatus.textContent = why;
  }

  // sessionRequest is the GetHLS/DASHStreamingSessionURL input.
  function sessionRequest(mode, selector, from, to) {
    const proto = form.protocol.value;
    const sel = { FragmentSelectorType: selector };
    if (mode !== 'LIVE') {
      sel.TimestampRange = { StartTimestamp: epoch(from) };
      if (mode === 'ON_DEMAND') sel.TimestampRange.EndTimestamp = epoch(to);
    }
    if (proto === 'DASH') {
      return ['getDASHStreamingSessionURL', 'GET_DASH_STREAMING_SESSION_URL', {
        StreamName: name, PlaybackMode: mode, DisplayFragmentTimestamp: 'ALWAYS', DisplayFragmentNumber: 'ALWAYS',
        Expires: sessionExpires, DASHFragmentSelector: sel,
      }, 'DASHStreamingSessionURL'];
    }
    return ['getHLSStreamingSessionURL', 'GET_HLS_STREAMING_SESSION_URL', {
      StreamName: name, PlaybackMode: mode, ContainerFormat: proto === 'HLS_TS' ? 'MPEG_TS' : 'FRAGMENTED_MP4',
      DiscontinuityMode: 'ON_DISCONTINUITY', DisplayFragmentTimestamp: 'ALWAYS', Expires: sessionExpires,
      HLSFragmentSelector: sel,
    }, 'HLSStreamingSessionURL'];
  }

  // play starts a session in the chosen mode and attaches the player;
  // seekTo (ms, on the selector's clock) is where to go once it has loaded.
  async function play(seekTo) {
    stopPlayer();
    playerError.replaceChildren();
    const mode = form.mode.value;
    const selector = form.selector.value;
    const playerName = form.player.value;
    let [from, to] = range();
    if (mode !== 'LIVE' && !Number.isFinite(from)) {
      playerError.replaceChildren(errorBox(new Error(`${mode} needs a start time: fill From, or drag on the timeline`), 'Play'));
      return;
    }
    if (mode === 'ON_DEMAND' && !Number.isFinite(to)) {
      playerError.replaceChildren(errorBox(new Error('ON_DEMAND needs an end time: fill To, or drag on the timeline'), 'Play'));
      return;
    }
    const [op, api, input, field] = sessionRequest(mode, selector, from, to);
    playerStatus.replaceChildren(spinner(`${op}…`));
    const mine = {};
    session = mine;
    let url;
    try {
      url = reachable((await dataCall(op, api, input, { signal: ctl.signal }))[field]);
      if (mode !== 'LIVE') {
        const end = mode === 'ON_DEMAND' ? to : Date.now();
        mine.frags = await listFragments(name, selector, from, end, { signal: ctl.signal });
      }
    } catch (e) {
      if (e.name === 'AbortError' || session !== mine) return;
      playerStatus.textContent = 'No session.';
      playerError.replaceChildren(errorBox(e, op));
      return;
    }
    if (session !== mine) return;
    Object.assign(mine, { mode, selector, url });
    video.dataset.sessionUrl = url;
    video.dataset.player = playerName;
    playerStatus.replaceChildren(spinner(`loading ${players[playerName].label}…`));
    try {
      const p = await attach(playerName, video, url, (err) => {
        if (session === mine) playerError.replaceChildren(errorBox(Object.assign(new Error(err.message), { name: `${err.source} error` }), 'playback'));
      });
      if (session !== mine) {
        p.destroy();
        return;
      }
      player = p;
      playerStatus.replaceChildren(`${players[playerName].label} ${p.version} · ${mode} · ${protocols[form.protocol.value]} · `,
        h('a', { href: url, target: '_blank', rel: 'noopener', class: 'session-url' }, 'session URL'));
      if (seekTo !== undefined) {
        video.addEventListener('loadedmetadata', () => seek(seekTo), { once: true });
      }
    } catch (e) {
      playerError.replaceChildren(errorBox(e, 'loading the player'));
    }
  }

  // mediaTime maps a wall-clock time to the player's time in a session of
  // known fragments: the players' timelines are the fragments' durations
  // laid end to end (gaps collapsed), from the start of what is seekable.
  function mediaTime(frags, t) {
    let acc = 0;
    for (const f of frags) {
      if (t < f.start) return acc;
      if (t < f.start + f.length) return acc + (t - f.start);
      acc += f.length;
    }
    return acc;
  }

  function wallTime(frags, m) {
    let acc = 0;
    for (const f of frags) {
      if (m < acc + f.length) return f.start + (m - acc);
      acc += f.length;
    }
    return frags.length ? frags[frags.length - 1].start + frags[frags.length - 1].length : null;
  }

  // seek goes to wall time t: within the current ON_DEMAND / LIVE_REPLAY
  // session if it holds t, else with a new LIVE_REPLAY session from there.
  function seek(t) {
    const s = session;
    if (s && s.frags && s.frags.length && player && t >= s.frags[0].start && t < s.frags[s.frags.length - 1].start + s.frags[s.frags.length - 1].length) {
      const base = video.seekable.length ? video.seekable.start(0) : 0;
      player.seek(base + mediaTime(s.frags, t) / 1000);
      video.play().catch(() => {});
      return;
    }
    const f = fragmentAt(timeline.frags, t);
    form.mode.value = 'LIVE_REPLAY';
    form.start.value = toLocalInput(Math.floor((f ? f.start : t) / 1000) * 1000);
    syncControls();
    play(t);
  }

  // The playhead: the player's own date (HLS program date time, DASH
  // availability time) or the session's fragment map.
  function tick() {
    if (!player || !session) return;
    let t = player.date();
    if ((t === null || !Number.isFinite(t)) && session.frags && session.frags.length) {
      const base = video.seekable.length ? video.seekable.start(0) : 0;
      t = wallTime(session.frags, (video.currentTime - base) * 1000);
    }
    if (t !== null && Number.isFinite(t)) {
      timeline.setPlayhead(t);
      video.dataset.wallTime = String(Math.round(t));
    }
  }

  async function exportClip() {
    const [a, b] = range();
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      exportBox.replaceChildren(errorBox(new Error('select a range first: drag on the timeline, or fill From and To'), 'Export'));
      return;
    }
    const selector = form.selector.value;
    exportBox.replaceChildren(spinner('GetClip…'));
    try {
      const resp = await dataCall('getClip', 'GET_CLIP', {
        StreamName: name,
        ClipFragmentSelector: { FragmentSelectorType: selector, TimestampRange: { StartTimestamp: epoch(a), EndTimestamp: epoch(b) } },
      }, { raw: true, signal: ctl.signal });
      const truncated = resp.headers.get('x-amzn-kvsgate-clip-truncated');
      const blob = await resp.blob();
      const stamp = (ms) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
      const file = `${name}_${stamp(a)}_${stamp(b)}.mp4`;
      const href = URL.createObjectURL(blob);
      const link = h('a', { href, download: file, class: 'download' }, `${file} (${fmtBytes(blob.size)})`);
      exportBox.replaceChildren('Saved ', link, truncated ? h('span', { class: 'warn' }, ` · cut short: ${truncated}`) : '');
      link.click();
    } catch (e) {
      if (e.name !== 'AbortError') exportBox.replaceChildren(errorBox(e, 'GetClip'));
    }
  }

  let fragReq = null;
  async function showFragment(f) {
    if (fragReq) fragReq.abort();
    const req = new AbortController();
    fragReq = req;
    const tags = h('div', { class: 'tags' }, spinner('GetMediaForFragmentList…'));
    fragBox.replaceChildren(
      h('table', { class: 'kv' }, h('tbody', {},
        [['Fragment number', f.number], ['Server timestamp', fmtTime(f.server)], ['Producer timestamp', fmtTime(f.producer)],
          ['Length', `${f.length} ms`], ['Size', fmtBytes(f.size)]].map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))))),
      h('div', { class: 'row' },
        h('button', { type: 'button', onclick: () => seek(f.start) }, 'Play from here'),
        h('button', { type: 'button', onclick: () => setRange(f.start, f.start + f.length) }, 'Select this fragment')),
      h('h3', {}, 'Metadata tags'),
      tags);
    try {
      const resp = await dataCall('getMediaForFragmentList', 'GET_MEDIA_FOR_FRAGMENT_LIST',
        { StreamName: name, Fragments: [f.number] }, { raw: true, signal: req.signal });
      const r = await readFragmentTags(resp);
      const own = r.tags.filter((t) => !t.name.startsWith('AWS_KINESISVIDEO_'));
      const aws = r.tags.filter((t) => t.name.startsWith('AWS_KINESISVIDEO_'));
      const rows = (list) => list.map((t) => h('tr', {}, h('th', {}, t.name), h('td', {}, t.value)));
      tags.replaceChildren(
        own.length ? h('table', { class: 'kv producer-tags' }, h('tbody', {}, rows(own)))
          : h('p', { class: 'muted' }, 'The producer sent no metadata tags with this fragment.'),
        aws.length ? h('details', {}, h('summary', {}, `${aws.length} tags kvsgate adds (GetMedia)`), h('table', { class: 'kv' }, h('tbody', {}, rows(aws)))) : '',
        r.error ? errorBox(new Error(r.error), 'reading the fragment tags') : '');
    } catch (e) {
      if (e.name !== 'AbortError') tags.replaceChildren(errorBox(e, 'GetMediaForFragmentList'));
    }
  }

  syncControls();
  describe();
  refresh();
  timers.push(setInterval(() => { if (follow && !document.hidden) refresh(); }, refreshMs));
  timers.push(setInterval(tick, 250));
  if (q.get('autoplay') === '1') play();

  return () => {
    ctl.abort();
    if (fragReq) fragReq.abort();
    for (const t of timers) clearInterval(t);
    stopPlayer();
    timeline.destroy();
  };
}
