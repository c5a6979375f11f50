#!/usr/bin/env node
// play.mjs: does a real player play a URL? One run of headless Chromium.
//
//   node play.mjs --player hlsjs|shaka|dashjs|native --url URL --seconds N [--timeout S] [--verbose]
//   node play.mjs --player hlsjs|shaka --url URL --seconds N --latency [--settle S]
//
// Starts a static server on 127.0.0.1:0 that serves a one-video page and the
// player libraries from ./node_modules, launches /usr/bin/chromium through
// playwright-core with a fresh profile, attaches the player to a muted,
// autoplaying <video> and watches currentTime until it has advanced N seconds
// of real playback (seeks, e.g. the jump to a live edge, do not count), a
// fatal error happens, the media ends or the timeout runs out. Prints one
// JSON line on stdout (see README.md); diagnostics go to stderr.
//
// The page's origin is the local static server, so the media URL is another
// origin: MSE players (hls.js, Shaka, dash.js) fetch it with CORS and need
// `Access-Control-Allow-Origin` on every playlist, manifest and segment
// response. The native <video src> path loads without CORS.
//
// --latency (live HLS with EXT-X-PROGRAM-DATE-TIME): once playback has
// advanced --settle seconds (default 10), every 500 ms the page compares the
// wall-clock time the player is showing (hls.js `hls.playingDate`, Shaka
// `getPlayheadTimeAsDate()`) with `Date.now()`. N must be larger than S: the
// run still stops once playback has advanced N seconds. The JSON then has
// "latency": {source, settleS, intervalMs, samples, nulls (no date yet),
// waiting (<video> waiting events while sampling), startedAtMs, minMs, p50Ms,
// p90Ms, maxMs, meanMs, values (ms, in order), and hlsjs: {latency,
// targetLatency, maxLatency, drift, liveSyncPosition, targetduration,
// holdBack, totalduration, fragments, startTimeOffset} (hls.js's own view,
// seconds) or shaka: {liveLatency}}. Used by TestHLSLiveLatency.
//
// Exit status: 0 ok, 1 the player did not play (the JSON says why), 2 the
// harness itself failed (usage, missing/stale node_modules, browser launch;
// the JSON then has "harnessError").

import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Chromium flags from DESIGN.md; --disable-dev-shm-usage because Debian's
// wrapper script fails to test the /dev/shm size (and a small /dev/shm
// crashes renderers), --mute-audio since nothing here listens.
const chromiumFlags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-dev-shm-usage',
  '--mute-audio',
];

// Player libraries: what the page loads, from node_modules.
const libraries = {
  hlsjs: { pkg: 'hls.js', file: 'hls.js/dist/hls.min.js' },
  shaka: { pkg: 'shaka-player', file: 'shaka-player/dist/shaka-player.compiled.js' },
  dashjs: { pkg: 'dashjs', file: 'dashjs/dist/modern/umd/dash.all.min.js' },
  native: null,
};

const maxEvents = 200;

function usage(msg) {
  finish({ ok: false, harnessError: `${msg}; usage: node play.mjs --player hlsjs|shaka|dashjs|native --url URL --seconds N [--timeout S] [--verbose]` }, 2);
  process.exit(2);
}

function parseArgs(argv) {
  const a = { player: '', url: '', seconds: NaN, timeout: NaN, verbose: false, executable: process.env.CHROMIUM || '/usr/bin/chromium' };
  a.latency = false; // --latency [--settle S]: see the top of the file
  a.settle = 10;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) usage(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--player': a.player = v(); break;
      case '--url': a.url = v(); break;
      case '--seconds': a.seconds = Number(v()); break;
      case '--timeout': a.timeout = Number(v()); break;
      case '--chromium': a.executable = v(); break;
      case '--verbose': a.verbose = true; break;
      case '--latency': a.latency = true; break;
      case '--settle': a.settle = Number(v()); break;
      default: usage(`unknown argument ${k}`);
    }
  }
  if (!(a.player in libraries)) usage(`--player must be one of ${Object.keys(libraries).join(', ')}`);
  if (!a.url) usage('--url is required');
  if (!(a.seconds > 0)) usage('--seconds must be > 0');
  if (Number.isNaN(a.timeout)) a.timeout = Math.max(30, a.seconds * 3 + 20);
  if (!(a.timeout > 0)) usage('--timeout must be > 0');
  if (a.latency) {
    if (a.player !== 'hlsjs' && a.player !== 'shaka') usage('--latency needs --player hlsjs or shaka');
    if (!(a.settle >= 0) || !(a.seconds > a.settle)) usage('--latency needs 0 <= --settle < --seconds');
  }
  return a;
}

let printed = false;
function finish(result, code) {
  if (!printed) {
    printed = true;
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  process.exitCode = code;
}

// checkInstalled fails when node_modules does not hold the versions
// package.json pins (stale after a version bump: npm ci --prefix testdata/players).
function checkInstalled() {
  const pins = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies;
  const versions = {};
  for (const [name, want] of Object.entries(pins)) {
    let got = '';
    try {
      got = JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      got = 'missing';
    }
    if (got !== want) {
      throw new Error(`node_modules/${name} is ${got}, package.json pins ${want}: run npm ci --prefix testdata/players (make test does)`);
    }
    versions[name] = got;
  }
  return versions;
}

function pageHTML(player) {
  const lib = libraries[player] ? `<script src="/lib/${player}.js"></script>` : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>kvsgate player harness: ${player}</title></head>
<body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline width="640" height="360"></video>
${lib}
</body></html>
`;
}

// startPageServer serves the page and the player library on 127.0.0.1:0.
async function startPageServer(player) {
  const html = pageHTML(player);
  const lib = libraries[player] ? await readFile(join(here, 'node_modules', libraries[player].file)) : null;
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    } else if (lib && path === `/lib/${player}.js`) {
      res.writeHead(200, { 'Content-Type': 'text/javascript', 'Cache-Control': 'no-store' });
      res.end(lib);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server;
}

// pageMain runs in the page: attaches the player and keeps window.__kvs up
// to date. It must not refer to anything outside itself.
function pageMain({ player, url, maxEvents }) {
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const round = (x) => Math.round(x * 1000) / 1000;
  const st = {
    t0: Date.now(), events: [], dropped: 0, errors: [], advanced: 0, playingAt: null, ended: false,
    version: '', native: null, live: null,
  };
  window.__kvs = st;
  // ev records an event; a repeat of an earlier one (same type and detail,
  // e.g. a live manifest reload) only counts on that one.
  const byKey = new Map();
  const ev = (type, detail) => {
    const key = type + JSON.stringify(detail);
    const prev = byKey.get(key);
    if (prev) {
      prev.repeats = (prev.repeats || 0) + 1;
      prev.lastT = now();
      return;
    }
    if (st.events.length >= maxEvents) {
      st.dropped++;
      return;
    }
    const e = { t: now(), type };
    if (detail !== undefined) e.detail = detail;
    st.events.push(e);
    byKey.set(key, e);
  };
  const seen = new Set();
  const fatal = (source, detail) => {
    const key = source + JSON.stringify(detail);
    if (seen.has(key)) return;
    seen.add(key);
    st.errors.push({ t: now(), source, ...detail });
    ev('fatal', { source, ...detail });
  };
  // safe turns player error data into something JSON can carry, briefly.
  const safe = (x) => {
    try {
      const s = JSON.stringify(x, (k, v) => (v instanceof Node || v instanceof Window ? undefined : v));
      return s && s.length > 500 ? s.slice(0, 500) + '…' : s;
    } catch (e) {
      return String(x);
    }
  };

  const video = document.getElementById('v');
  video.muted = true;
  video.autoplay = true;
  for (const type of ['loadstart', 'loadedmetadata', 'loadeddata', 'canplay', 'playing', 'waiting', 'stalled',
    'seeking', 'seeked', 'pause', 'ended', 'ratechange', 'resize', 'emptied', 'abort']) {
    video.addEventListener(type, () => ev('video:' + type, { currentTime: round(video.currentTime) }));
  }
  video.addEventListener('error', () => {
    const e = video.error;
    fatal('video', { code: e ? e.code : 0, message: e ? e.message : '' });
  });
  video.addEventListener('playing', () => { if (st.playingAt === null) st.playingAt = now(); });
  video.addEventListener('ended', () => { st.ended = true; });
  // One play() when it can play but autoplay did not start it.
  video.addEventListener('canplay', () => {
    if (video.paused && !video.ended) {
      const p = video.play();
      if (p) p.catch((e) => ev('play-rejected', String(e)));
    }
  });

  // The advance meter: real playback only. Every 100 ms, a forward step no
  // larger than the wall time passed (times 2.5, for a live catch-up rate)
  // counts; a step across a seek (the jump to the live edge, a gap jump) does not.
  let last = null;
  let seekedSince = false;
  video.addEventListener('seeking', () => { seekedSince = true; });
  setInterval(() => {
    const wall = performance.now();
    const t = video.currentTime;
    if (last && !seekedSince && !video.seeking) {
      const d = t - last.t;
      const w = (wall - last.wall) / 1000;
      if (d > 0 && d <= w * 2.5 + 0.05) st.advanced += d;
    }
    seekedSince = false;
    last = { t, wall };
  }, 100);

  switch (player) {
    case 'hlsjs': {
      const Hls = window.Hls;
      st.version = Hls.version;
      if (!Hls.isSupported()) {
        fatal('hlsjs', { message: 'Hls.isSupported() is false' });
        return;
      }
      const hls = new Hls({ debug: false });
      window.__kvsPlayer = hls;
      hls.on(Hls.Events.ERROR, (_, d) => {
        const info = {
          type: d.type, details: d.details, fatal: !!d.fatal,
          reason: d.reason || (d.error && d.error.message) || '',
          url: d.url || (d.frag && d.frag.url) || (d.context && d.context.url) || '',
          status: d.response ? d.response.code : undefined,
        };
        if (d.fatal) fatal('hlsjs', info);
        else ev('hlsjs:error', info);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => ev('hlsjs:manifestParsed', { levels: d.levels.length }));
      let levelLoaded = 0;
      hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
        st.live = !!d.details.live;
        if (levelLoaded++ < 3) {
          ev('hlsjs:levelLoaded', {
            live: d.details.live, fragments: d.details.fragments.length, targetduration: d.details.targetduration,
          });
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      break;
    }
    case 'shaka': {
      const shaka = window.shaka;
      st.version = shaka.Player.version;
      shaka.polyfill.installAll();
      if (!shaka.Player.isBrowserSupported()) {
        fatal('shaka', { message: 'shaka.Player.isBrowserSupported() is false' });
        return;
      }
      const onError = (e) => {
        const info = {
          severity: e.severity, category: e.category, code: e.code,
          message: e.message || '', data: safe(e.data),
        };
        if (e.severity === shaka.util.Error.Severity.CRITICAL) fatal('shaka', info);
        else ev('shaka:error', info);
      };
      const p = new shaka.Player();
      window.__kvsPlayer = p;
      p.addEventListener('error', (e) => onError(e.detail));
      p.addEventListener('buffering', (e) => ev('shaka:buffering', { buffering: e.buffering }));
      p.attach(video)
        .then(() => p.load(url))
        .then(() => {
          st.live = p.isLive();
          ev('shaka:loaded', { live: st.live, variants: p.getVariantTracks().length });
        })
        .catch((e) => {
          if (e && e.code !== undefined) onError(e);
          else fatal('shaka', { message: String(e) });
        });
      break;
    }
    case 'dashjs': {
      const dashjs = window.dashjs;
      const p = dashjs.MediaPlayer().create();
      window.__kvsPlayer = p;
      st.version = p.getVersion();
      const events = dashjs.MediaPlayer.events;
      // dash.js has no fatal flag: it reports an error once it gives up on
      // something. These it survives: 16 time sync failed (no UTCTiming in the
      // MPD and the default time server unreachable: it keeps the local
      // clock), 21 buffer remove failed, 33 timed text parse.
      const nonFatal = new Set([16, 21, 33]);
      const onError = (source) => (e) => {
        const err = e.error || {};
        const info = { event: source, code: err.code, message: err.message || '', data: safe(err.data) };
        if (source === 'error' && nonFatal.has(err.code)) ev('dashjs:error', info);
        else fatal('dashjs', info);
      };
      p.on(events.ERROR, onError('error'));
      p.on(events.PLAYBACK_ERROR, onError('playbackError'));
      p.on(events.MANIFEST_LOADED, () => ev('dashjs:manifestLoaded'));
      p.on(events.STREAM_INITIALIZED, () => {
        st.live = p.isDynamic();
        ev('dashjs:streamInitialized', { live: st.live });
      });
      p.initialize(video, url, true);
      break;
    }
    case 'native': {
      st.native = {
        hls: video.canPlayType('application/vnd.apple.mpegurl'),
        mpegurl: video.canPlayType('application/x-mpegURL'),
        dash: video.canPlayType('application/dash+xml'),
        mse: typeof window.MediaSource === 'function',
      };
      ev('native:canPlayType', st.native);
      video.src = url;
      break;
    }
  }
}

function snapshot() {
  const st = window.__kvs;
  const v = document.getElementById('v');
  const buffered = [];
  for (let i = 0; i < v.buffered.length && i < 5; i++) buffered.push([v.buffered.start(i), v.buffered.end(i)]);
  return {
    currentTime: v.currentTime, advanced: st.advanced, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
    duration: Number.isFinite(v.duration) ? v.duration : (Number.isNaN(v.duration) ? null : 'Infinity'),
    paused: v.paused, ended: st.ended, readyState: v.readyState, buffered,
    errors: st.errors, events: st.events, dropped: st.dropped, playingAt: st.playingAt,
    version: st.version, native: st.native,
    // The player's word; natively, an infinite duration.
    live: st.native ? (Number.isNaN(v.duration) ? null : v.duration === Infinity) : st.live,
  };
}

// latencyProbe runs in the page after pageMain (--latency): once playback
// has advanced `settle` seconds, every `intervalMs` it samples the
// wall-clock time the player shows against Date.now(). It must not refer to
// anything outside itself.
function latencyProbe({ player, settle, intervalMs }) {
  const st = window.__kvs;
  const video = document.getElementById('v');
  const lat = { source: '', settleS: settle, intervalMs, values: [], nulls: 0, waiting: 0, startedAt: null };
  st.latencyProbe = lat;
  let sampling = false;
  video.addEventListener('waiting', () => { if (sampling) lat.waiting++; });
  const shown = () => {
    const p = window.__kvsPlayer;
    if (!p) return null;
    if (player === 'hlsjs') {
      lat.source = 'hls.playingDate';
      const d = p.playingDate;
      return d ? d.getTime() : null;
    }
    lat.source = 'shaka getPlayheadTimeAsDate()';
    const d = p.getPlayheadTimeAsDate();
    return d ? d.getTime() : null;
  };
  setInterval(() => {
    if (!sampling) {
      if (st.advanced < settle || video.paused) return;
      sampling = true;
      lat.startedAt = Date.now() - st.t0;
    }
    const t = shown();
    if (t === null || !Number.isFinite(t)) {
      lat.nulls++;
      return;
    }
    if (lat.values.length < 2000) lat.values.push(Date.now() - t);
  }, intervalMs);
}

// latencyReport summarizes latencyProbe's samples, with the player's own view.
function latencyReport() {
  const lat = window.__kvs.latencyProbe;
  const p = window.__kvsPlayer;
  const v = lat.values.slice().sort((a, b) => a - b);
  const q = (x) => (v.length ? v[Math.min(v.length - 1, Math.floor(x * v.length))] : null);
  const out = {
    source: lat.source, settleS: lat.settleS, intervalMs: lat.intervalMs, samples: v.length, nulls: lat.nulls,
    waiting: lat.waiting, startedAtMs: lat.startedAt,
    minMs: q(0), p50Ms: q(0.5), p90Ms: q(0.9), maxMs: v.length ? v[v.length - 1] : null,
    meanMs: v.length ? Math.round(v.reduce((a, b) => a + b, 0) / v.length) : null,
    values: lat.values,
  };
  const r3 = (x) => (typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
  try {
    if (window.Hls && p instanceof window.Hls) {
      const d = p.latestLevelDetails;
      out.hlsjs = {
        latency: r3(p.latency), targetLatency: r3(p.targetLatency), maxLatency: r3(p.maxLatency), drift: r3(p.drift),
        liveSyncPosition: r3(p.liveSyncPosition),
        targetduration: d ? d.targetduration : null, holdBack: d ? d.holdBack : null, totalduration: d ? r3(d.totalduration) : null,
        fragments: d ? d.fragments.length : null, startTimeOffset: d ? d.startTimeOffset : null,
      };
    } else if (p && p.getStats) {
      out.shaka = { liveLatency: r3(p.getStats().liveLatency) };
    }
  } catch (e) {
    out.playerError = String(e);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const result = {
    player: args.player, url: args.url, ok: false, currentTime: 0, advanced: 0, errors: [], events: [],
    videoWidth: 0, videoHeight: 0,
  };
  let versions;
  try {
    versions = checkInstalled();
  } catch (e) {
    finish({ ...result, harnessError: e.message }, 2);
    return;
  }
  const { chromium } = await import('playwright-core');

  const netEvents = [];
  let server;
  let context;
  let profile;
  let hardTimer;
  const cleanup = async () => {
    clearTimeout(hardTimer);
    if (context) await context.close().catch(() => {});
    if (server) server.close();
    if (profile) await rm(profile, { recursive: true, force: true }).catch(() => {});
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      finish({ ...result, harnessError: `killed by ${sig}` }, 2);
      await cleanup();
      process.exit(2);
    });
  }
  // Nothing the browser does may keep us past the timeout plus launch time.
  hardTimer = setTimeout(async () => {
    finish({ ...result, harnessError: `harness hung past ${args.timeout + 60} s` }, 2);
    await cleanup();
    process.exit(2);
  }, (args.timeout + 60) * 1000);

  try {
    server = await startPageServer(args.player);
    const origin = `http://127.0.0.1:${server.address().port}`;
    profile = await mkdtemp(join(tmpdir(), 'kvsgate-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: args.executable,
      headless: true,
      args: chromiumFlags,
      viewport: { width: 640, height: 360 },
      timeout: 60000,
    });
    result.browser = context.browser() ? context.browser().version() : undefined;
    result.versions = { ...versions };
    const page = context.pages()[0] || (await context.newPage());
    if (!result.browser) {
      // launchPersistentContext has no Browser object: ask the page.
      result.browser = await page.evaluate(() => navigator.userAgent.match(/Chrom(e|ium)\/([\d.]+)/)?.[2] || '');
    }
    const t0 = Date.now();
    const netByKey = new Map();
    const netEvent = (type, detail) => {
      const key = type + JSON.stringify(detail);
      const prev = netByKey.get(key);
      if (prev) {
        prev.repeats = (prev.repeats || 0) + 1;
        prev.lastT = Date.now() - t0;
        return;
      }
      const e = { t: Date.now() - t0, type, detail };
      if (netEvents.length < maxEvents) netEvents.push(e);
      netByKey.set(key, e);
    };
    page.on('requestfailed', (r) => netEvent('net:failed', { url: r.url(), method: r.method(), failure: r.failure()?.errorText }));
    page.on('response', (r) => {
      if (r.status() >= 400) netEvent('net:status', { url: r.url(), status: r.status() });
    });
    page.on('console', (m) => {
      if (args.verbose) process.stderr.write(`console.${m.type()}: ${m.text()}\n`);
      if (m.type() === 'error') netEvent('console:error', m.text().slice(0, 400));
    });
    page.on('pageerror', (e) => netEvent('pageerror', String(e).slice(0, 400)));
    page.on('crash', () => netEvent('pagecrash'));

    await page.goto(origin + '/', { waitUntil: 'load' });
    await page.evaluate(pageMain, { player: args.player, url: args.url, maxEvents });
    if (args.latency) await page.evaluate(latencyProbe, { player: args.player, settle: args.settle, intervalMs: 500 });
    result.versions.player = await page.evaluate(() => window.__kvs.version);

    const deadline = started + args.timeout * 1000;
    let s;
    for (;;) {
      await sleep(250);
      s = await page.evaluate(snapshot);
      if (s.errors.length > 0) {
        await sleep(300); // let the rest of the failure report arrive
        s = await page.evaluate(snapshot);
        result.reason = 'fatal error';
        break;
      }
      if (s.advanced >= args.seconds) {
        result.reason = `advanced ${s.advanced.toFixed(2)} s`;
        break;
      }
      if (s.ended) {
        result.reason = `ended after advancing ${s.advanced.toFixed(2)} s`;
        break;
      }
      if (Date.now() >= deadline) {
        result.reason = `timeout after ${args.timeout} s, advanced ${s.advanced.toFixed(2)} s`;
        result.timedOut = true;
        break;
      }
    }
    const pageT0 = await page.evaluate(() => window.__kvs.t0);
    const shift = pageT0 - t0; // node-side times onto the page clock
    const events = s.events.concat(netEvents.map((e) => ({ ...e, t: e.t - shift, lastT: e.lastT === undefined ? undefined : e.lastT - shift })));
    events.sort((a, b) => a.t - b.t);
    Object.assign(result, {
      ok: s.errors.length === 0 && s.advanced >= args.seconds,
      currentTime: s.currentTime,
      advanced: Math.round(s.advanced * 1000) / 1000,
      errors: s.errors,
      events: events.slice(0, maxEvents),
      eventsDropped: s.dropped + Math.max(0, events.length - maxEvents),
      videoWidth: s.videoWidth,
      videoHeight: s.videoHeight,
      duration: s.duration,
      paused: s.paused,
      ended: s.ended,
      readyState: s.readyState,
      buffered: s.buffered,
      startupMs: s.playingAt,
      live: s.live,
      native: s.native ?? undefined,
      elapsedMs: Date.now() - started,
    });
    if (args.latency) result.latency = await page.evaluate(latencyReport);
    finish(result, result.ok ? 0 : 1);
  } catch (e) {
    finish({ ...result, events: netEvents, harnessError: String(e && e.stack ? e.stack : e).slice(0, 2000) }, 2);
  } finally {
    await cleanup();
  }
}

main().catch((e) => finish({ ok: false, harnessError: String(e) }, 2));
