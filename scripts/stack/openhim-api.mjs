// Minimal OpenHIM API client with the token auth scheme (the only one
// openhim-core 4.0.5 accepts), for poking the local stack by hand:
//
//   scripts/stack.sh api GET /mediators
//   scripts/stack.sh api POST /mediators '{"urn": "...", ...}'
//
// Settings (environment): STACK_OPENHIM_API_URL, STACK_CA_BUNDLE (TLS is
// verified against it, never skipped), OPENHIM_USER (root@openhim.org),
// OPENHIM_PASSWORD (openhim-password).
// Prints the HTTP status on stderr and the body on stdout; exits 0 for 2xx.
//
// Token scheme: GET /authenticate/<email> -> {salt, ts};
// passhash = sha512hex(salt + password);
// per request: auth-username, auth-ts (ISO time), auth-salt (random),
// auth-token = sha512hex(passhash + auth-salt + auth-ts).

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

const [method, path, body] = process.argv.slice(2);
if (!method || !path) {
  console.error('usage: openhim-api.mjs METHOD PATH [JSON-BODY]');
  process.exit(2);
}

const base = process.env.STACK_OPENHIM_API_URL ?? 'https://127.0.0.1:8080';
const caFile = process.env.STACK_CA_BUNDLE;
if (!caFile) {
  console.error('openhim-api.mjs: STACK_CA_BUNDLE is not set (source the stack env file)');
  process.exit(2);
}
const ca = fs.readFileSync(caFile);
const user = process.env.OPENHIM_USER ?? 'root@openhim.org';
const password = process.env.OPENHIM_PASSWORD ?? 'openhim-password';

const sha512hex = (s) => crypto.createHash('sha512').update(s).digest('hex');

function request(method, path, headers = {}, data) {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, base), { method, ca, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

const auth = await request('GET', `/authenticate/${encodeURIComponent(user)}`);
if (auth.status !== 200) {
  console.error(`GET /authenticate/${user} -> ${auth.status} ${auth.body}`);
  process.exit(1);
}
const { salt } = JSON.parse(auth.body);
const passhash = sha512hex(salt + password);
const ts = new Date().toISOString();
const reqSalt = crypto.randomUUID();
const headers = {
  'auth-username': user,
  'auth-ts': ts,
  'auth-salt': reqSalt,
  'auth-token': sha512hex(passhash + reqSalt + ts),
};
if (body !== undefined) {
  headers['content-type'] = 'application/json';
  headers['content-length'] = Buffer.byteLength(body);
}

const res = await request(method.toUpperCase(), path, headers, body);
console.error(`${method.toUpperCase()} ${path} -> ${res.status}`);
process.stdout.write(res.body);
if (res.body && !res.body.endsWith('\n')) process.stdout.write('\n');
process.exit(res.status >= 200 && res.status < 300 ? 0 : 1);
