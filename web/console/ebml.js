// Fragment metadata: GetMediaForFragmentList (a public API) sends, before a
// fragment's Cluster, a Matroska Tags element with the fragment's number,
// server and producer timestamps and the producer's own metadata tags.
// ListFragments has no field for them, so the console reads that element
// and stops the download at the Cluster.

const ID = {
  EBML: 0x1a45dfa3, Segment: 0x18538067, Cluster: 0x1f43b675, Tags: 0x1254c367, Tag: 0x7373,
  SimpleTag: 0x67c8, TagName: 0x45a3, TagString: 0x4487,
};

// vint reads an EBML variable-length integer at i: {value, len}, value -1
// for "unknown size" (all ones), null when incomplete or invalid.
function vint(b, i, keepMarker) {
  if (i >= b.length) return null;
  const first = b[i];
  let len = 1;
  while (len <= 8 && !(first & (0x80 >> (len - 1)))) len++;
  if (len > 8 || i + len > b.length) return null;
  let value = keepMarker ? first : first & (0xff >> len);
  let allOnes = value === (0xff >> len);
  for (let k = 1; k < len; k++) {
    value = value * 256 + b[i + k];
    if (b[i + k] !== 0xff) allOnes = false;
  }
  return { value: !keepMarker && allOnes ? -1 : value, len };
}

const dec = new TextDecoder();

/**
 * parseFragmentTags reads the tags that precede the first Cluster in a
 * GetMedia-style Matroska stream. It returns {tags: [{name, value}],
 * done} where done says the Cluster was reached (or the input is invalid:
 * then error is set); with done false, more bytes are needed.
 */
export function parseFragmentTags(b) {
  const tags = [];
  let i = 0;
  while (i < b.length) {
    const id = vint(b, i, true);
    if (!id) return { tags, done: false };
    const size = vint(b, i + id.len, false);
    if (!size) return { tags, done: false };
    const body = i + id.len + size.len;
    if (id.value === ID.Cluster) return { tags, done: true };
    if (id.value === ID.Segment) {
      i = body; // descend: its children follow
      continue;
    }
    if (size.value < 0) return { tags, done: true, error: 'element of unknown size' };
    if (size.value > 1 << 24) return { tags, done: true, error: 'element too large' };
    const end = body + size.value;
    if (id.value === ID.Tags) {
      if (end > b.length) return { tags, done: false };
      walk(b.subarray(body, end), tags);
    }
    i = end;
  }
  return { tags, done: false };
}

// walk collects SimpleTag name/value pairs in a Tags body.
function walk(b, tags) {
  let i = 0;
  while (i < b.length) {
    const id = vint(b, i, true);
    const size = id && vint(b, i + id.len, false);
    if (!size || size.value < 0) return;
    const body = i + id.len + size.len;
    const end = Math.min(body + size.value, b.length);
    if (id.value === ID.Tag) walk(b.subarray(body, end), tags);
    else if (id.value === ID.SimpleTag) {
      const t = { name: '', value: '' };
      let j = body;
      while (j < end) {
        const cid = vint(b, j, true);
        const csize = cid && vint(b, j + cid.len, false);
        if (!csize || csize.value < 0) break;
        const cb = j + cid.len + csize.len;
        const ce = Math.min(cb + csize.value, end);
        if (cid.value === ID.TagName) t.name = dec.decode(b.subarray(cb, ce));
        if (cid.value === ID.TagString) t.value = dec.decode(b.subarray(cb, ce));
        j = ce;
      }
      tags.push(t);
    }
    i = end;
  }
}

/**
 * readFragmentTags reads a Response body until the tags are complete, then
 * cancels the rest (the fragment's media). At most maxBytes are read.
 */
export async function readFragmentTags(resp, maxBytes = 4 << 20) {
  const reader = resp.body.getReader();
  let buf = new Uint8Array(0);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (value) {
        const next = new Uint8Array(buf.length + value.length);
        next.set(buf);
        next.set(value, buf.length);
        buf = next;
      }
      const r = parseFragmentTags(buf);
      if (r.done || done || buf.length > maxBytes) {
        if (!r.done && !r.error) r.error = done ? 'the response ended before the fragment' : 'no Cluster within the first bytes';
        return r;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
