// The fragment timeline of the stream page: fragments from ListFragments
// drawn on a time axis with the gaps between them marked, a selection made
// by dragging, a playhead, and under it a strip of thumbnails from
// GetImages aligned to the same axis (loaded only once the strip is on
// screen, cached per sample time).

import { dataCall, epoch } from './api.js';
import { errorBox, fmtTime, h } from './ui.js';

// A gap is a hole of more than this between one fragment's end and the
// next one's start (the HLS ON_DISCONTINUITY tolerance).
export const gapMs = 50;

const thumbHeight = 68;
const thumbCell = 124; // px per thumbnail
const niceIntervals = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 30, 40, 45, 60, 90, 120, 180, 240, 300, 360, 480, 600, 720, 900,
  1200, 1800, 2400, 3600, 5400, 7200, 10800, 14400, 21600].map((s) => s * 1000);

// thumbs caches thumbnails: stream|selector|time -> data URL, or '' for "no media".
const thumbs = new Map();

/** fragmentAt is the fragment covering t (binary search over sorted frags), or null. */
export function fragmentAt(frags, t) {
  let lo = 0;
  let hi = frags.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (frags[mid].start <= t) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (best < 0) return null;
  const f = frags[best];
  return t < f.start + Math.max(f.length, 1) ? f : null;
}

/** fragmentNear is the fragment covering t, else the closest one within tol ms, or null. */
export function fragmentNear(frags, t, tol) {
  const f = fragmentAt(frags, t);
  if (f) return f;
  let best = null;
  let bestD = tol;
  for (const g of frags) {
    const d = t < g.start ? g.start - t : t - (g.start + g.length);
    if (d <= bestD) {
      best = g;
      bestD = d;
    }
  }
  return best;
}

/** runs merges fragments into the covered spans [start, end) between gaps. */
export function runs(frags) {
  const out = [];
  for (const f of frags) {
    const end = f.start + f.length;
    const last = out[out.length - 1];
    if (last && f.start <= last.end + gapMs) last.end = Math.max(last.end, end);
    else out.push({ start: f.start, end });
  }
  return out;
}

/**
 * Timeline draws [from, to] and calls back: onSelectFragment(f),
 * onSelectRange(a, b), onSeek(t) (a thumbnail was clicked).
 */
export class Timeline {
  constructor({ stream, onSelectFragment, onSelectRange, onSeek }) {
    this.stream = stream;
    this.cb = { onSelectFragment, onSelectRange, onSeek };
    this.frags = [];
    this.from = 0;
    this.to = 1;
    this.selector = 'SERVER_TIMESTAMP';
    this.selection = null;
    this.selected = null;
    this.playhead = null;
    this.visible = false;
    this.loadingThumbs = false;

    this.track = h('div', { class: 'tl-track', title: 'click: fragment details · drag: select a range' });
    this.axis = h('div', { class: 'tl-axis' });
    this.strip = h('div', { class: 'tl-strip', style: `height:${thumbHeight + 18}px` });
    this.stripNote = h('div', { class: 'tl-note' });
    this.el = h('div', { class: 'timeline' }, this.track, this.axis, this.strip, this.stripNote);
    this.dragging();
    this.observer = new IntersectionObserver((entries) => {
      this.visible = entries.some((e) => e.isIntersecting);
      if (this.visible) this.loadThumbs();
    });
    this.observer.observe(this.strip);
  }

  destroy() {
    this.observer.disconnect();
    this.destroyed = true;
  }

  x(t) {
    return ((t - this.from) / (this.to - this.from)) * 100;
  }

  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return this.from + f * (this.to - this.from);
  }

  /** set shows fragments over [from, to] (ms) with the given selector. */
  set(frags, from, to, selector) {
    this.frags = frags;
    this.from = from;
    this.to = to;
    this.selector = selector;
    this.draw();
    this.drawStrip();
  }

  draw() {
    const els = [];
    const spans = runs(this.frags);
    let prev = null; // before the first fragment is not a gap: nothing was there yet (or it expired)
    for (const r of spans) {
      if (prev !== null && r.start - prev > gapMs) els.push(this.span('tl-gap', prev, r.start, `gap: ${fmtTime(prev)} – ${fmtTime(r.start)}`));
      els.push(this.span('tl-run', r.start, r.end, `${fmtTime(r.start)} – ${fmtTime(r.end)}`));
      prev = Math.max(prev ?? r.end, r.end);
    }
    if (prev !== null && this.to - prev > gapMs && this.to < Date.now() - 5000) {
      els.push(this.span('tl-gap', prev, this.to, `no fragments: ${fmtTime(prev)} – ${fmtTime(this.to)}`));
    }
    // Fragment boundaries, when they are far enough apart to see.
    const px = this.track.clientWidth || 800;
    if (this.frags.length > 0 && this.frags.length < px / 3) {
      for (const f of this.frags) els.push(h('div', { class: 'tl-tick', style: `left:${this.x(f.start)}%` }));
    }
    if (this.selected) els.push(this.span('tl-frag-selected', this.selected.start, this.selected.start + this.selected.length, `fragment ${this.selected.number}`));
    if (this.selection) els.push(this.span('tl-selection', this.selection[0], this.selection[1], 'selected range'));
    if (this.playhead !== null && this.playhead >= this.from && this.playhead <= this.to) {
      els.push(h('div', { class: 'tl-playhead', style: `left:${this.x(this.playhead)}%` }));
    }
    if (this.frags.length === 0) els.push(h('div', { class: 'tl-empty' }, 'no fragments in this window'));
    this.track.replaceChildren(...els);
    // Axis: about six labels.
    const step = niceIntervals.find((iv) => iv >= (this.to - this.from) / 6) || 86400000;
    const labels = [];
    for (let t = Math.ceil(this.from / step) * step; t <= this.to; t += step) {
      // Not so close to an edge that half the label is cut off.
      if (this.x(t) > 3 && this.x(t) < 97) labels.push(h('span', { style: `left:${this.x(t)}%` }, fmtTime(t, false).slice(0, 8)));
    }
    this.axis.replaceChildren(...labels);
  }

  span(cls, a, b, title) {
    const l = Math.max(0, this.x(a));
    const r = Math.min(100, this.x(b));
    return h('div', { class: cls, style: `left:${l}%;width:${Math.max(0.15, r - l)}%`, title });
  }

  setPlayhead(t) {
    this.playhead = t;
    this.draw();
  }

  setSelection(a, b) {
    this.selection = a === null ? null : [Math.min(a, b), Math.max(a, b)];
    this.draw();
  }

  dragging() {
    let start = null;
    let startX = 0;
    this.track.addEventListener('pointerdown', (e) => {
      start = this.timeAt(e.clientX);
      startX = e.clientX;
      this.track.setPointerCapture(e.pointerId);
    });
    this.track.addEventListener('pointermove', (e) => {
      if (start === null || Math.abs(e.clientX - startX) < 4) return;
      this.setSelection(start, this.timeAt(e.clientX));
    });
    this.track.addEventListener('pointerup', (e) => {
      if (start === null) return;
      const end = this.timeAt(e.clientX);
      if (Math.abs(e.clientX - startX) >= 4) {
        this.setSelection(start, end);
        this.cb.onSelectRange(this.selection[0], this.selection[1]);
      } else {
        const px = this.track.clientWidth || 800;
        const f = fragmentNear(this.frags, end, (4 / px) * (this.to - this.from));
        if (f) {
          this.selected = f;
          this.draw();
          this.cb.onSelectFragment(f);
        }
      }
      start = null;
    });
  }

  // The thumbnail strip: sample times at a "nice" interval so the same
  // times (and cached images) come back as the window moves.
  sampleTimes() {
    const px = this.strip.clientWidth || 800;
    const cells = Math.max(1, Math.floor(px / thumbCell));
    const iv = niceIntervals.find((v) => v >= (this.to - this.from) / cells) || 86400000;
    const times = [];
    // The last cell must fit: it starts at its time.
    const last = this.to - (thumbCell / px) * (this.to - this.from);
    for (let t = Math.ceil(this.from / iv) * iv; t <= last; t += iv) times.push(t);
    return { iv, times };
  }

  key(t) {
    return `${this.stream}|${this.selector}|${t}`;
  }

  drawStrip() {
    const { times } = this.sampleTimes();
    this.cells = times.map((t) => {
      const cached = thumbs.get(this.key(t));
      const covered = fragmentAt(this.frags, t) !== null;
      const cell = h('button', {
        type: 'button', class: 'tl-thumb', style: `left:${this.x(t)}%`, title: fmtTime(t), 'data-time': String(t),
        onclick: () => this.cb.onSeek(t),
      });
      if (cached) cell.append(h('img', { src: cached, alt: fmtTime(t), height: thumbHeight }));
      else if (cached === '') cell.append(h('span', { class: 'tl-nomedia' }, 'no media'));
      else if (!covered) cell.classList.add('tl-uncovered'); // the track shows why: no fragment there
      else cell.append(h('span', { class: 'spinner small' }, ''));
      cell.append(h('span', { class: 'tl-thumb-time' }, fmtTime(t, false).slice(0, 8)));
      return { t, cell, covered, done: cached !== undefined || !covered };
    });
    this.strip.replaceChildren(...this.cells.map((c) => c.cell));
    if (this.visible) this.loadThumbs();
  }

  // loadThumbs asks GetImages for the missing covered sample times, in
  // requests of at most 25 images and 300 s.
  async loadThumbs() {
    if (this.loadingThumbs || this.destroyed) return;
    this.loadingThumbs = true;
    try {
      for (;;) {
        const { iv } = this.sampleTimes();
        const todo = (this.cells || []).filter((c) => !c.done);
        if (todo.length === 0 || this.destroyed) break;
        const chunk = [todo[0]];
        for (const c of todo.slice(1)) {
          if (chunk.length >= 25 || c.t - chunk[0].t > 300000 || c.t - chunk[chunk.length - 1].t !== iv) break;
          chunk.push(c);
        }
        const startT = chunk[0].t;
        const endT = chunk.length > 1 ? chunk[chunk.length - 1].t : startT + 100;
        const cells = this.cells;
        try {
          const r = await dataCall('getImages', 'GET_IMAGES', {
            StreamName: this.stream, ImageSelectorType: this.selector, StartTimestamp: epoch(startT),
            EndTimestamp: epoch(endT), SamplingInterval: chunk.length > 1 ? iv : 200, Format: 'JPEG',
            FormatConfig: { JPEGQuality: '70' }, HeightPixels: thumbHeight, MaxResults: 25,
          });
          for (const img of r.Images || []) {
            const t = Math.round(img.TimeStamp * 1000);
            thumbs.set(this.key(t), img.ImageContent ? `data:image/jpeg;base64,${img.ImageContent}` : '');
          }
          this.stripNote.replaceChildren();
        } catch (e) {
          for (const c of chunk) c.done = true;
          this.stripNote.replaceChildren(errorBox(e, 'GetImages'));
        }
        for (const c of chunk) c.done = true;
        if (cells === this.cells) this.refreshCells(chunk);
      }
    } finally {
      this.loadingThumbs = false;
    }
  }

  refreshCells(chunk) {
    for (const c of chunk) {
      const src = thumbs.get(this.key(c.t));
      const time = c.cell.querySelector('.tl-thumb-time');
      c.cell.replaceChildren(src ? h('img', { src, alt: fmtTime(c.t), height: thumbHeight })
        : h('span', { class: 'tl-nomedia' }, src === '' ? 'no media' : '—'), time);
    }
  }
}
