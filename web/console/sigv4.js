// AWS Signature Version 4 on WebCrypto (SubtleCrypto SHA-256 and HMAC-SHA256):
// the console signs its API requests in the browser, so secrets never reach
// the server. Header signing only (no presigned URLs), as the AWS SDKs do it
// for kinesisvideo: the canonical URI is the URL's path escaped once more,
// the canonical query string sorted, the signed headers lower-case and
// sorted, the payload hash the hex SHA-256 of the body.

const enc = new TextEncoder();

function toHex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** sha256Hex is the lower-case hex SHA-256 of a string or bytes. */
export async function sha256Hex(data) {
  const bytes = typeof data === 'string' ? enc.encode(data) : data;
  return toHex(await crypto.subtle.digest('SHA-256', bytes));
}

async function hmac(key, msg) {
  const k = await crypto.subtle.importKey('raw', typeof key === 'string' ? enc.encode(key) : key,
    { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return crypto.subtle.sign('HMAC', k, enc.encode(msg));
}

/** amzDate formats a Date as SigV4's YYYYMMDD'T'HHMMSS'Z'. */
export function amzDate(d) {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

// uriEncode is RFC 3986 percent-encoding of everything but the unreserved
// characters (and '/', when keepSlash).
function uriEncode(s, keepSlash) {
  let out = '';
  for (const b of enc.encode(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function canonicalQuery(searchParams) {
  const pairs = [];
  for (const [k, v] of searchParams) pairs.push([uriEncode(k, false), uriEncode(v, false)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/**
 * sign returns the headers to send: the given ones plus X-Amz-Date,
 * Authorization and (with a session token) X-Amz-Security-Token. The Host
 * header, which browsers set themselves, is signed as the URL's host.
 *
 * @param {object} r
 * @param {string} r.method
 * @param {string} r.url absolute URL
 * @param {Object<string,string>} [r.headers] headers to send and sign
 * @param {string|Uint8Array} [r.body]
 * @param {string} r.accessKeyId
 * @param {string} r.secretAccessKey
 * @param {string} [r.sessionToken]
 * @param {string} r.region
 * @param {string} r.service
 * @param {Date} [r.date] signing time (now)
 */
export async function sign(r) {
  const url = new URL(r.url);
  const date = amzDate(r.date || new Date());
  const day = date.slice(0, 8);
  const headers = { ...(r.headers || {}) };
  headers['X-Amz-Date'] = date;
  if (r.sessionToken) headers['X-Amz-Security-Token'] = r.sessionToken;

  const canon = new Map([['host', url.host]]);
  for (const [k, v] of Object.entries(headers)) {
    canon.set(k.toLowerCase(), String(v).trim().replace(/\s+/g, ' '));
  }
  const names = [...canon.keys()].sort();
  const signedHeaders = names.join(';');
  const payloadHash = await sha256Hex(r.body === undefined ? '' : r.body);
  const canonicalRequest = [
    r.method.toUpperCase(),
    uriEncode(url.pathname || '/', true),
    canonicalQuery(url.searchParams),
    names.map((n) => `${n}:${canon.get(n)}\n`).join(''),
    signedHeaders,
    payloadHash,
  ].join('\n');
  const scope = `${day}/${r.region}/${r.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, await sha256Hex(canonicalRequest)].join('\n');
  let key = await hmac('AWS4' + r.secretAccessKey, day);
  key = await hmac(key, r.region);
  key = await hmac(key, r.service);
  key = await hmac(key, 'aws4_request');
  const signature = toHex(await hmac(key, stringToSign));
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${r.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}
