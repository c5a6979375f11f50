#!/usr/bin/env node
// ebml-check.mjs: runs the console's fragment-tag reader
// (web/console/ebml.js) under node for TestConsoleFragmentTagsNode.
//
//   node ebml-check.mjs FILE
//
// FILE is a GetMediaForFragmentList response. Prints {"tags": the tags of
// the whole file, "truncations": how many prefixes were parsed, "mutations":
// how many randomly damaged copies, "threw": errors thrown (must be none),
// "doneEarly": prefixes that claimed to be done before the Cluster}.

import { readFileSync } from 'node:fs';
import { parseFragmentTags } from '../../web/console/ebml.js';

const data = new Uint8Array(readFileSync(process.argv[2]));
const full = parseFragmentTags(data);
const out = { tags: full.tags, done: full.done, error: full.error || '', truncations: 0, mutations: 0, threw: [], doneEarly: 0 };
const clusterAt = (() => {
  for (let i = 0; i + 4 <= data.length; i++) {
    if (data[i] === 0x1f && data[i + 1] === 0x43 && data[i + 2] === 0xb6 && data[i + 3] === 0x75) return i;
  }
  return data.length;
})();
for (let n = 0; n <= Math.min(data.length, clusterAt + 16); n++) {
  try {
    const r = parseFragmentTags(data.subarray(0, n));
    if (r.done && !r.error && n < clusterAt) out.doneEarly++;
  } catch (e) {
    out.threw.push(`prefix ${n}: ${e}`);
  }
  out.truncations++;
}
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
for (let k = 0; k < 3000; k++) {
  const b = data.slice(0, Math.min(data.length, clusterAt + 64));
  for (let m = 0; m < 1 + Math.floor(rnd() * 8); m++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
  try {
    parseFragmentTags(b.subarray(0, Math.floor(rnd() * b.length)));
  } catch (e) {
    out.threw.push(`mutation ${k}: ${e}`);
  }
  out.mutations++;
}
out.threw = out.threw.slice(0, 10);
process.stdout.write(JSON.stringify(out) + '\n');
