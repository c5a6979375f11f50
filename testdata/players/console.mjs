#!/usr/bin/env node
// console.mjs: drives kvsgate's web console in headless Chromium (the
// browser of play.mjs, through playwright-core) and reports what a user
// would see. Used by web/console_test.go.
//
//   node console.mjs --url http://127.0.0.1:8080 --checks streams,play:hlsjs:HLS_FMP4,thumbs,clip,dashboard \
//        [--stream demo] [--seconds 5] [--artifacts DIR] [--access-key ID --secret KEY] [--timeout S]
//   node console.mjs --url http://127.0.0.1:8080 --bench 5
//
// Checks run in order in one page (so keys entered by "signin" stay in its
// session storage). Each saves a screenshot <check>.png under --artifacts.
//
//   streams                 #/streams: names listed, rate cells filled
//   play:PLAYER:PROTOCOL    #/stream/S LIVE with PLAYER (hlsjs|shaka|dashjs|native) and PROTOCOL
//                           (HLS_FMP4|HLS_TS|DASH): seconds of real playback (play.mjs's meter)
//   ondemand:PLAYER:PROTOCOL  ON_DEMAND over 20 s of the past; a thumbnail click inside it seeks there
//   thumbs                  #/stream/S (1 min window): thumbnail strip images, their naturalWidth; a click on one
//   clip                    #/stream/S?start&end: Export MP4, the download saved as <artifacts>/clip.mp4
//   metadata:STREAM         #/stream/STREAM: click the first fragment run, read the tags panel
//   dashboard               #/dashboard: every card's thumbnail; then a click on the first plays it live
//   manage                  #/streams: create console-scratch (twice), retention 48 h, delete
//   refused                 #/streams without keys: the error shown
//   signin                  enter --access-key/--secret in the Credentials dialog; the streams listed
//
// --bench N: N first loads of #/streams, each in a fresh browser context
// (empty cache): bytes transferred (CDP Network.loadingFinished
// encodedDataLength, headers included), requests, and time to interactive:
// the console's performance mark "console-ready", set once the streams
// table is rendered with its links (navigation start = 0). Baseline, in
// the same context right after: the load event of the server's plain-text
// /healthz (browser and loopback overhead under the machine's load).
//
// Prints one JSON line: {ok, checks: {name: result}, browser, harnessError?}.

import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

const chromiumFlags = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  '--disable-dev-shm-usage', '--mute-audio',
];

function parseArgs(argv) {
  const a = {
    url: '', checks: [], stream: 'demo', seconds: 5, artifacts: join(here, '..', 'artifacts'), accessKey: '', secret: '',
    timeout: 40, bench: 0, executable: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    switch (k) {
      case '--url': a.url = v().replace(/\/+$/, ''); break;
      case '--checks': a.checks = v().split(',').filter(Boolean); break;
      case '--stream': a.stream = v(); break;
      case '--seconds': a.seconds = Number(v()); break;
      case '--artifacts': a.artifacts = v(); break;
      case '--access-key': a.accessKey = v(); break;
      case '--secret': a.secret = v(); break;
      case '--timeout': a.timeout = Number(v()); break;
      case '--bench': a.bench = Number(v()); break;
      case '--chromium': a.executable = v(); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.url) throw new Error('--url is required');
  return a;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// meter runs in the page: play.mjs's advance meter on #video (real
// playback only; steps across a seek do not count).
function meter() {
  const st = { advanced: 0 };
  window.__meter = st;
  let last = null;
  let seeked = false;
  let video = null;
  setInterval(() => {
    const v = document.getElementById('video');
    if (v !== video) {
      video = v;
      last = null;
      if (v) v.addEventListener('seeking', () => { seeked = true; });
    }
    if (!v) return;
    const wall = performance.now();
    const t = v.currentTime;
    if (last && !seeked && !v.seeking) {
      const d = t - last.t;
      const w = (wall - last.wall) / 1000;
      if (d > 0 && d <= w * 2.5 + 0.05) st.advanced += d;
    }
    seeked = false;
    last = { t, wall };
  }, 100);
}

async function until(page, fn, arg, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await page.evaluate(fn, arg);
    if (r && r.done) return r;
    if (Date.now() > deadline) return { ...r, timedOut: true };
    await sleep(250);
  }
}

async function shot(page, args, name) {
  const path = join(args.artifacts, `console-${name.replace(/[^a-zA-Z0-9_-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true }).catch(() => {});
  return path;
}

const errorsOnPage = () => [...document.querySelectorAll('.error')].map((e) => e.textContent.trim()).slice(0, 5);

async function goto(page, url) {
  await page.goto(url, { waitUntil: 'load' });
}

const checks = {
  async streams(page, args) {
    await goto(page, `${args.url}/#/streams`);
    const r = await until(page, () => {
      const names = [...document.querySelectorAll('tr[data-stream]')].map((tr) => tr.dataset.stream);
      const rates = [...document.querySelectorAll('tr[data-stream] td.rate')].map((td) => td.textContent);
      const lasts = [...document.querySelectorAll('tr[data-stream] td.last')].map((td) => td.textContent);
      const errors = [...document.querySelectorAll('.error')].map((e) => e.textContent.trim());
      return { done: names.length > 0 && rates.every((x) => /kbit/.test(x)), names, rates, lasts, errors };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, 'streams');
    return r;
  },

  async play(page, args, player, protocol) {
    await goto(page, `${args.url}/#/stream/${encodeURIComponent(args.stream)}?player=${player}&protocol=${protocol}&mode=LIVE&autoplay=1`);
    await page.evaluate(meter);
    const r = await until(page, (seconds) => {
      const v = document.getElementById('video');
      const errs = [...document.querySelectorAll('#player-error .error')].map((e) => e.textContent.trim());
      const advanced = window.__meter.advanced;
      return {
        done: advanced >= seconds || errs.length > 0, advanced, errors: errs,
        currentTime: v ? v.currentTime : 0, videoWidth: v ? v.videoWidth : 0, videoHeight: v ? v.videoHeight : 0,
        status: document.getElementById('player-status')?.textContent || '', sessionUrl: v ? v.dataset.sessionUrl : '',
        wallTime: v && v.dataset.wallTime ? Number(v.dataset.wallTime) : null,
      };
    }, args.seconds, args.timeout * 1000);
    r.screenshot = await shot(page, args, `play-${player}-${protocol}`);
    return r;
  },

  // ondemand:PLAYER:PROTOCOL: ON_DEMAND over 20 s of the past, then a
  // click on a thumbnail inside the range seeks there (the playhead's wall
  // time is compared with the thumbnail's).
  async ondemand(page, args, player, protocol) {
    const end = Date.now() - 4000;
    const start = end - 20000;
    await goto(page, `${args.url}/#/stream/${encodeURIComponent(args.stream)}?player=${player}&protocol=${protocol}&mode=ON_DEMAND` +
      `&start=${start}&end=${end}&window=60&autoplay=1`);
    await page.evaluate(meter);
    const r = await until(page, () => {
      const errs = [...document.querySelectorAll('#player-error .error')].map((e) => e.textContent.trim());
      const v = document.getElementById('video');
      if (!v) return { done: false, advanced: window.__meter.advanced, errors: errs };
      const buffered = [];
      for (let i = 0; i < v.buffered.length; i++) buffered.push([v.buffered.start(i), v.buffered.end(i)]);
      return { done: window.__meter.advanced >= 3 || errs.length > 0, advanced: window.__meter.advanced, errors: errs,
        before: { currentTime: v.currentTime, paused: v.paused, readyState: v.readyState, duration: v.duration, buffered } };
    }, null, args.timeout * 1000);
    // The latest loaded thumbnail inside the session's range, at least 4 s after its start.
    const pick = await until(page, ([a, b]) => {
      const cells = [...document.querySelectorAll('.tl-thumb')].filter((c) => c.querySelector('img'))
        .map((c) => Number(c.dataset.time)).filter((t) => t >= a + 4000 && t <= b - 1000);
      return { done: cells.length > 0, target: cells.length ? cells[cells.length - 1] : null };
    }, [start, end], args.timeout * 1000);
    const target = pick.target;
    r.target = target;
    if (target !== null) {
      await page.click(`.tl-thumb[data-time="${target}"]`);
      await sleep(1500);
      const after = await page.evaluate(() => {
        const v = document.getElementById('video');
        return { wallTime: v.dataset.wallTime ? Number(v.dataset.wallTime) : null, mode: document.querySelector('select[name=mode]').value,
          currentTime: v.currentTime, paused: v.paused };
      });
      Object.assign(r, { afterSeek: after, seekErrorMs: after.wallTime === null ? null : after.wallTime - target });
    }
    r.screenshot = await shot(page, args, `ondemand-${player}-${protocol}`);
    return r;
  },

  async thumbs(page, args) {
    await goto(page, `${args.url}/#/stream/${encodeURIComponent(args.stream)}?window=60`);
    await page.locator('.tl-strip').scrollIntoViewIfNeeded().catch(() => {});
    const r = await until(page, () => {
      const imgs = [...document.querySelectorAll('.tl-strip img')];
      const loaded = imgs.filter((i) => i.complete && i.naturalWidth > 0);
      const cells = document.querySelectorAll('.tl-thumb').length;
      const pending = document.querySelectorAll('.tl-strip .spinner').length;
      return {
        done: loaded.length >= 1 && pending === 0, images: imgs.length, loaded: loaded.length, cells, pending,
        naturalWidths: loaded.map((i) => i.naturalWidth).slice(0, 10), naturalHeights: loaded.map((i) => i.naturalHeight).slice(0, 10),
        errors: [...document.querySelectorAll('.error')].map((e) => e.textContent.trim()),
      };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, 'thumbs');
    // Click a thumbnail: it seeks (a LIVE_REPLAY session from its time).
    if (r.loaded > 0) {
      await page.evaluate(meter);
      await page.locator('.tl-thumb:has(img)').first().click();
      const p = await until(page, () => {
        const v = document.getElementById('video');
        const errs = [...document.querySelectorAll('#player-error .error')].map((e) => e.textContent.trim());
        return { done: window.__meter.advanced >= 2 || errs.length > 0, advanced: window.__meter.advanced, errors: errs,
          mode: document.querySelector('select[name=mode]').value, wallTime: v && v.dataset.wallTime ? Number(v.dataset.wallTime) : null };
      }, null, args.timeout * 1000);
      r.clickSeek = p;
      await shot(page, args, 'thumbs-click');
    }
    return r;
  },

  async clip(page, args) {
    const end = Date.now() - 6000;
    const start = end - 12000;
    await goto(page, `${args.url}/#/stream/${encodeURIComponent(args.stream)}?start=${start}&end=${end}`);
    await page.waitForSelector('button[name=export]');
    await mkdir(args.artifacts, { recursive: true });
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: args.timeout * 1000 }),
      page.click('button[name=export]'),
    ]);
    const path = join(args.artifacts, 'console-clip.mp4');
    await download.saveAs(path);
    const r = { file: path, suggested: download.suggestedFilename(), start, end };
    r.shown = await page.evaluate(() => document.getElementById('export').textContent);
    r.screenshot = await shot(page, args, 'clip');
    return r;
  },

  async metadata(page, args, stream) {
    await goto(page, `${args.url}/#/stream/${encodeURIComponent(stream)}?window=900`);
    await page.waitForSelector('.tl-run', { timeout: args.timeout * 1000 });
    const box = await page.locator('.tl-run').first().boundingBox();
    await page.mouse.click(box.x + Math.min(3, box.width / 2), box.y + box.height / 2);
    const r = await until(page, () => {
      const tags = [...document.querySelectorAll('.producer-tags tr')].map((tr) => [tr.querySelector('th').textContent, tr.querySelector('td').textContent]);
      const none = document.querySelector('#fragment .tags p.muted');
      const errors = [...document.querySelectorAll('#fragment .error')].map((e) => e.textContent.trim());
      const number = document.querySelector('#fragment table.kv td')?.textContent || '';
      return { done: tags.length > 0 || !!none || errors.length > 0, tags, none: none ? none.textContent : '', errors, number };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, `metadata-${stream}`);
    return r;
  },

  async dashboard(page, args) {
    await goto(page, `${args.url}/#/dashboard`);
    const r = await until(page, () => {
      const cards = [...document.querySelectorAll('.dash-card')].map((c) => {
        const img = c.querySelector('img.dash-thumb');
        return { stream: c.dataset.stream, naturalWidth: img && img.complete ? img.naturalWidth : 0, text: c.textContent.trim().slice(0, 200) };
      });
      return { done: cards.length > 0 && cards.every((c) => c.naturalWidth > 0), cards };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, 'dashboard');
    if (r.cards.length > 0) {
      await page.evaluate(meter);
      await page.locator('.dash-card').first().click();
      const p = await until(page, () => {
        const errs = [...document.querySelectorAll('#player-error .error')].map((e) => e.textContent.trim());
        return { done: window.__meter.advanced >= 2 || errs.length > 0, advanced: window.__meter.advanced, hash: location.hash, errors: errs };
      }, null, args.timeout * 1000);
      r.click = p;
      await shot(page, args, 'dashboard-click');
    }
    return r;
  },

  // manage: create console-scratch from the form (twice: the second time
  // the error is shown), set its retention to 48 h, delete it.
  async manage(page, args) {
    const name = 'console-scratch';
    await goto(page, `${args.url}/#/streams`);
    await page.waitForSelector('tr[data-stream]', { timeout: args.timeout * 1000 });
    const r = { created: false, retention: '', deleted: false, duplicate: '' };
    const create = async () => {
      await page.fill('form.create input[name=name]', name);
      await page.fill('form.create input[name=retention]', '24');
      await page.click('form.create button');
    };
    await create();
    await page.waitForSelector(`tr[data-stream="${name}"]`, { timeout: args.timeout * 1000 });
    r.created = true;
    await create();
    await page.waitForSelector('.message .error', { timeout: args.timeout * 1000 });
    r.duplicate = await page.textContent('.message .error');
    await shot(page, args, 'manage-duplicate');
    page.once('dialog', (d) => d.accept('48'));
    await page.click(`tr[data-stream="${name}"] button:has-text("Retention")`);
    await page.waitForFunction((n) => document.querySelector(`tr[data-stream="${n}"] td:nth-child(4)`)?.textContent === '48 h', name,
      { timeout: args.timeout * 1000 }).catch(() => {});
    r.retention = await page.textContent(`tr[data-stream="${name}"] td:nth-child(4)`);
    page.once('dialog', (d) => d.accept());
    await page.click(`tr[data-stream="${name}"] button:has-text("Delete")`);
    await page.waitForFunction((n) => !document.querySelector(`tr[data-stream="${n}"]`) && document.querySelector('tr[data-stream]'), name,
      { timeout: args.timeout * 1000 }).catch(() => {});
    r.deleted = (await page.$(`tr[data-stream="${name}"]`)) === null;
    r.errors = await page.evaluate(errorsOnPage);
    r.screenshot = await shot(page, args, 'manage');
    return r;
  },

  async refused(page, args) {
    await goto(page, `${args.url}/#/streams`);
    const r = await until(page, () => {
      const errors = [...document.querySelectorAll('.error')].map((e) => e.textContent.trim());
      return { done: errors.length > 0, errors, names: [...document.querySelectorAll('tr[data-stream]')].map((t) => t.dataset.stream) };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, 'refused');
    return r;
  },

  async signin(page, args) {
    await page.click('#creds-button');
    await page.fill('#creds-form input[name=accessKeyId]', args.accessKey);
    await page.fill('#creds-form input[name=secretAccessKey]', args.secret);
    await page.click('#creds-form button[value=save]');
    const r = await until(page, () => {
      const names = [...document.querySelectorAll('tr[data-stream]')].map((tr) => tr.dataset.stream);
      const rates = [...document.querySelectorAll('tr[data-stream] td.rate')].map((td) => td.textContent);
      return {
        done: names.length > 0 && rates.every((x) => /kbit/.test(x)), names, rates,
        button: document.getElementById('creds-button').textContent,
        errors: [...document.querySelectorAll('.error')].map((e) => e.textContent.trim()),
        stored: Object.keys(sessionStorage),
      };
    }, null, args.timeout * 1000);
    r.screenshot = await shot(page, args, 'signin');
    return r;
  },
};

async function bench(browser, args) {
  const runs = [];
  for (let i = 0; i < args.bench; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    const reqs = new Map();
    let bytes = 0;
    cdp.on('Network.requestWillBeSent', (e) => reqs.set(e.requestId, e.request.url));
    cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
    const t0 = Date.now();
    await page.goto(`${args.url}/#/streams`, { waitUntil: 'commit' });
    await page.waitForFunction(() => document.body && document.body.dataset.ready === 'streams', null, { timeout: 30000 });
    const timing = await page.evaluate(() => {
      const m = performance.getEntriesByName('console-ready')[0];
      const nav = performance.getEntriesByType('navigation')[0];
      return { tti: m ? m.startTime : null, domContentLoaded: nav ? nav.domContentLoadedEventEnd : null, load: nav ? nav.loadEventEnd : null };
    });
    await sleep(300); // let the last loadingFinished events arrive
    const firstBytes = bytes;
    // Baseline, same context, same moment: a plain-text page of the same
    // server (/healthz), load event from navigation start.
    await page.goto(`${args.url}/healthz`, { waitUntil: 'load' });
    const baselineMs = await page.evaluate(() => performance.getEntriesByType('navigation')[0].loadEventEnd);
    const urls = [...reqs.values()].map((u) => u.replace(args.url, '')).filter((u) => u !== '/healthz');
    runs.push({ bytes: firstBytes, requests: urls.length, baselineMs: Math.round(baselineMs), ttiMs: Math.round(timing.tti), domContentLoadedMs: Math.round(timing.domContentLoaded), wallMs: Date.now() - t0,
      playerLibraries: urls.filter((u) => u.includes('/vendor/')), urls });
    await context.close();
  }
  const med = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    runs, medianBytes: med(runs.map((r) => r.bytes)), medianTtiMs: med(runs.map((r) => r.ttiMs)), medianBaselineMs: med(runs.map((r) => r.baselineMs)),
    maxTtiMs: Math.max(...runs.map((r) => r.ttiMs)), maxBytes: Math.max(...runs.map((r) => r.bytes)),
  };
}

async function main() {
  const out = { ok: false, checks: {} };
  let browser;
  const hard = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ...out, harnessError: 'harness hung' }) + '\n');
    process.exit(2);
  }, 15 * 60 * 1000);
  try {
    const args = parseArgs(process.argv.slice(2));
    await mkdir(args.artifacts, { recursive: true });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: args.executable, headless: true, args: chromiumFlags, timeout: 60000 });
    out.browser = browser.version();
    if (args.bench > 0) out.bench = await bench(browser, args);
    if (args.checks.length) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
      const page = await context.newPage();
      const log = [];
      page.on('pageerror', (e) => log.push(`pageerror: ${String(e).slice(0, 300)}`));
      page.on('console', (m) => { if (m.type() === 'error') log.push(`console.error: ${m.text().slice(0, 300)}`); });
      for (const c of args.checks) {
        const [name, ...params] = c.split(':');
        if (!checks[name]) throw new Error(`unknown check ${name}`);
        const started = Date.now();
        try {
          out.checks[c] = await checks[name](page, args, ...params);
        } catch (e) {
          out.checks[c] = { failed: String(e && e.stack ? e.stack : e).slice(0, 1500) };
          await shot(page, args, `${c}-failed`);
        }
        out.checks[c].elapsedMs = Date.now() - started;
        out.checks[c].pageErrors = log.splice(0);
      }
      await context.close();
    }
    out.ok = true;
  } catch (e) {
    out.harnessError = String(e && e.stack ? e.stack : e).slice(0, 2000);
  } finally {
    clearTimeout(hard);
    if (browser) await browser.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = out.ok ? 0 : 2;
}

main();
