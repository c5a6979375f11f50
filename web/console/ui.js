// Small DOM helpers shared by the pages.

import { KVSError, authErrorTypes } from './api.js';

/**
 * h builds an element: h('a', {href: '#/x', onclick: fn, class: 'c'}, 'text', child).
 * Attributes starting with "on" are listeners; null/false ones are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** spinner is a loading indicator with a label. */
export function spinner(label = 'Loading…') {
  return h('span', { class: 'spinner', role: 'status' }, label);
}

/** errorBox shows an error as a person expects: the AWS error type, its message, and what to do. */
export function errorBox(err, what) {
  if (err instanceof KVSError) {
    const hint = authErrorTypes.has(err.type)
      ? h('p', { class: 'hint' }, 'This server requires signed requests: enter your keys under ',
        h('button', { type: 'button', class: 'link', onclick: () => document.getElementById('creds-button').click() }, 'Credentials'), '.')
      : null;
    return h('div', { class: 'error', role: 'alert' },
      h('strong', { class: 'error-type' }, err.type),
      what ? ` (${what}${err.status ? `, HTTP ${err.status}` : ''})` : (err.status ? ` (HTTP ${err.status})` : ''),
      err.awsMessage ? h('div', { class: 'error-message' }, err.awsMessage) : null, hint);
  }
  return h('div', { class: 'error', role: 'alert' }, h('strong', { class: 'error-type' }, err && err.name ? err.name : 'Error'),
    what ? ` (${what})` : '', h('div', { class: 'error-message' }, err && err.message ? err.message : String(err)));
}

/** fmtTime formats ms as local date and time with milliseconds. */
export function fmtTime(ms, withDate = true) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const time = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  return withDate ? `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}` : time;
}

/** fmtAgo says how long ago ms was. */
export function fmtAgo(ms) {
  const s = (Date.now() - ms) / 1000;
  if (s < 1) return 'just now';
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

/** fmtBytes formats a byte count. */
export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** toLocalInput formats ms for an <input type="datetime-local" step="1">. */
export function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

/** fromLocalInput parses a datetime-local value as local time, in ms (NaN if empty). */
export function fromLocalInput(v) {
  return v ? new Date(v).getTime() : NaN;
}
