// The KVS API as the console calls it: the same public operations and JSON
// the AWS SDKs send, signed with SigV4 in the browser when the user has
// entered keys (sigv4.js), data-plane calls sent to GetDataEndpoint's URL.

import { sign } from './sigv4.js';

/** KVSError is an API error: the AWS error type, its message, the HTTP status. */
export class KVSError extends Error {
  constructor(type, message, status, op) {
    super(message ? `${type}: ${message}` : type);
    this.type = type;
    this.awsMessage = message;
    this.status = status;
    this.op = op;
  }
}

const credsKey = 'kvsgate.credentials';

/** credentials are the keys the user entered in this tab, or null. */
export function credentials() {
  try {
    const c = JSON.parse(sessionStorage.getItem(credsKey) || 'null');
    return c && c.accessKeyId && c.secretAccessKey ? c : null;
  } catch {
    return null;
  }
}

/** setCredentials keeps keys in sessionStorage (null forgets them). */
export function setCredentials(c) {
  if (c) sessionStorage.setItem(credsKey, JSON.stringify(c));
  else sessionStorage.removeItem(credsKey);
  endpoints.clear();
}

/** authErrorTypes are the errors that mean "sign in" (or other keys). */
export const authErrorTypes = new Set(['MissingAuthenticationTokenException', 'UnrecognizedClientException',
  'InvalidSignatureException', 'IncompleteSignatureException', 'AccessDeniedException']);

/**
 * call sends one API operation (e.g. "listStreams") and returns the decoded
 * JSON, or with raw the Response (for GetClip and GetMediaForFragmentList).
 * Errors are KVSErrors; an AbortSignal's abort is passed through.
 */
export async function call(op, input, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await callOnce(op, input, opts);
    } catch (e) {
      if (!(e instanceof KVSError) || e.type !== 'ClientLimitExceededException' || attempt >= 4) throw e;
      // Throttled (the stream's fragment credits or a TPS limit, as KVS
      // enforces them): wait as Retry-After says, or back off, and retry.
      await sleep(e.retryAfter > 0 ? e.retryAfter * 1000 : 250 * 2 ** attempt, opts.signal);
    }
  }
}

/** sleep resolves after ms, or rejects when signal aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

async function callOnce(op, input, { endpoint = location.origin, signal, raw = false } = {}) {
  const url = endpoint.replace(/\/+$/, '') + '/' + op;
  const body = JSON.stringify(input || {});
  let headers = {};
  const c = credentials();
  if (c) {
    headers = await sign({
      method: 'POST', url, body, accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken || undefined, region: c.region || 'us-west-2', service: 'kinesisvideo',
    });
  }
  headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url, { method: 'POST', headers, body, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new KVSError('NetworkError', `${op} failed: ${e.message}`, 0, op);
  }
  if (!resp.ok) {
    let type = resp.headers.get('x-amzn-ErrorType') || `HTTP ${resp.status}`;
    let message = '';
    try {
      const j = await resp.json();
      type = j.__type || type;
      message = j.Message || j.message || '';
    } catch {
      // not JSON: keep the status
    }
    const err = new KVSError(String(type).split(':')[0], message, resp.status, op);
    err.retryAfter = Number(resp.headers.get('Retry-After')) || 0;
    throw err;
  }
  return raw ? resp : resp.json();
}

// endpoints caches GetDataEndpoint answers: stream + API name -> URL.
const endpoints = new Map();

/**
 * reachable turns a URL on an unspecified address (a server listening on
 * 0.0.0.0 without --public-url: its data endpoint and session URLs) into
 * one on the page's host with the same port: browsers refuse to fetch
 * from 0.0.0.0.
 */
export function reachable(endpoint) {
  try {
    const u = new URL(endpoint);
    if (u.hostname === '0.0.0.0' || u.hostname === '[::]') {
      u.hostname = location.hostname;
      return u.pathname === '/' && !u.search ? u.origin : u.href;
    }
  } catch {
    // not a URL: let the call fail with it
  }
  return endpoint;
}

/** dataEndpoint is GetDataEndpoint's URL for a stream and API name (cached). */
export async function dataEndpoint(stream, apiName, signal) {
  const key = stream + '\n' + apiName;
  if (!endpoints.has(key)) {
    const p = call('getDataEndpoint', { StreamName: stream, APIName: apiName }, { signal })
      .then((r) => reachable(r.DataEndpoint));
    endpoints.set(key, p);
    p.catch(() => endpoints.delete(key));
  }
  return endpoints.get(key);
}

/** dataCall calls a data-plane operation at the stream's data endpoint. */
export async function dataCall(op, apiName, input, opts = {}) {
  const endpoint = await dataEndpoint(input.StreamName, apiName, opts.signal);
  return call(op, input, { ...opts, endpoint });
}

/** listAllStreams pages through ListStreams. */
export async function listAllStreams(signal) {
  const out = [];
  let token;
  do {
    const r = await call('listStreams', { MaxResults: 1000, NextToken: token }, { signal });
    out.push(...(r.StreamInfoList || []));
    token = r.NextToken;
  } while (token);
  return out;
}

/** epoch converts a time in ms to the API's epoch seconds. */
export const epoch = (ms) => Math.round(ms) / 1000;

/**
 * listFragments lists the fragments of [fromMs, toMs] by the selector
 * (SERVER_TIMESTAMP or PRODUCER_TIMESTAMP), every page, at most max, sorted
 * by that timestamp. Timestamps come back in ms: start, server, producer.
 */
export async function listFragments(stream, selector, fromMs, toMs, { signal, max = 5000 } = {}) {
  const out = [];
  let token;
  do {
    const input = { StreamName: stream, MaxResults: 1000 };
    if (token) input.NextToken = token;
    else {
      input.FragmentSelector = {
        FragmentSelectorType: selector,
        TimestampRange: { StartTimestamp: epoch(fromMs), EndTimestamp: epoch(toMs) },
      };
    }
    const r = await dataCall('listFragments', 'LIST_FRAGMENTS', input, { signal });
    for (const f of r.Fragments || []) {
      const server = Math.round(f.ServerTimestamp * 1000);
      const producer = Math.round(f.ProducerTimestamp * 1000);
      out.push({
        number: f.FragmentNumber, size: f.FragmentSizeInBytes, length: f.FragmentLengthInMilliseconds,
        server, producer, start: selector === 'PRODUCER_TIMESTAMP' ? producer : server,
      });
    }
    token = r.NextToken;
  } while (token && out.length < max);
  out.sort((a, b) => a.start - b.start);
  return out;
}
