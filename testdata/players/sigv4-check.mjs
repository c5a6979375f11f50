#!/usr/bin/env node
// sigv4-check.mjs: runs the console's SigV4 signer (web/console/sigv4.js)
// under node (WebCrypto as in the browser) for TestConsoleSigV4Node.
//
//   node sigv4-check.mjs URL BODY DATE
//
// Prints {"vanilla": signature of the AWS SigV4 test suite's get-vanilla
// request, "headers": the headers sign() gives a POST of BODY to URL at
// DATE (RFC 3339), with the test suite's keys, us-west-2, kinesisvideo}.

import { sign } from '../../web/console/sigv4.js';

const [url, body, date] = process.argv.slice(2);
const keys = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

// get-vanilla: GET / on example.amazonaws.com, 20150830T123600Z, us-east-1,
// service "service"; the suite's published signature is
// 5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31.
const vanilla = await sign({ method: 'GET', url: 'https://example.amazonaws.com/', ...keys, region: 'us-east-1', service: 'service',
  date: new Date('2015-08-30T12:36:00Z') });
const headers = await sign({ method: 'POST', url, body, ...keys, region: 'us-west-2', service: 'kinesisvideo', date: new Date(date) });
process.stdout.write(JSON.stringify({ vanilla: vanilla.Authorization.match(/Signature=([0-9a-f]{64})/)[1], headers }) + '\n');
