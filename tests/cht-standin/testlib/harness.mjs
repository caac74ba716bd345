// Shared by the stand-in's node tests (test/*.test.mjs): HTTP helpers, a
// receiver standing in for OpenHIM / the mediator, and starting the stand-in
// (server.mjs) on a free port with its own databases.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SERVER = path.join(HERE, '..', 'server.mjs');

export const COUCH_URL = (process.env.COUCH_URL || '').replace(/\/+$/, '');
export const COUCH_USER = process.env.COUCH_USER;
export const COUCH_PASSWORD = process.env.COUCH_PASSWORD;

export const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
export const ADMIN_AUTH = basic(COUCH_USER, COUCH_PASSWORD);

export async function httpCall(base, method, p, { auth, body, headers = {}, contentType, redirect } = {}) {
  const h = { ...headers };
  if (auth) {
    h.Authorization = auth;
  }
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string') {
      payload = body;
      h['Content-Type'] = contentType || 'text/plain';
    } else {
      payload = JSON.stringify(body);
      h['Content-Type'] = contentType || 'application/json';
    }
  }
  const res = await fetch(base + p, {
    method, headers: h, body: payload, redirect: redirect || 'follow', signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: json };
}

export const couch = (method, p, body) =>
  httpCall(COUCH_URL, method, p, { auth: ADMIN_AUTH, body, headers: { Accept: 'application/json' } });

export function assertCouchEnv() {
  assert.ok(COUCH_URL && COUCH_USER && COUCH_PASSWORD,
    'set COUCH_URL, COUCH_USER and COUCH_PASSWORD to a running pouchdb-server/CouchDB admin');
}

export async function createCouchUser({ name, password, roles }) {
  const r = await couch('PUT', `/_users/org.couchdb.user:${name}`, { name, password, roles, type: 'user' });
  assert.ok([201, 202].includes(r.status), r.text);
}

export async function deleteCouchUser(name) {
  const r = await couch('GET', `/_users/org.couchdb.user:${encodeURIComponent(name)}`).catch(() => null);
  if (r && r.status === 200) {
    await couch('DELETE', `/_users/org.couchdb.user:${encodeURIComponent(name)}?rev=${r.body._rev}`).catch(() => {});
  }
}

export async function dropDatabases(db) {
  for (const name of [db, `${db}-sentinel`, `${db}-vault`]) {
    await couch('DELETE', `/${encodeURIComponent(name)}`).catch(() => {});
  }
}

// A receiver standing in for OpenHIM / the mediator: records every request,
// answers per path as told: {status, delayMs, location, contentType, body}
// (`body` a string sent as is; default {"received": true} as JSON).
export function startReceiver() {
  const requests = [];
  const behaviour = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      const p = req.url.split('?')[0];
      requests.push({ method: req.method, path: p, url: req.url, headers: req.headers, body });
      const b = behaviour.get(p) || {};
      const answer = () => {
        if (res.destroyed) {
          return;
        }
        const status = b.status || 200;
        const headers = { 'Content-Type': b.contentType === undefined ? 'application/json' : b.contentType };
        if (headers['Content-Type'] === null) {
          delete headers['Content-Type'];
        }
        if (b.location) {
          headers.Location = b.location;
        } else if (status >= 300 && status < 400 && b.location !== null) {
          headers.Location = 'http://127.0.0.1:9/elsewhere';
        }
        res.writeHead(status, headers);
        res.end(b.body !== undefined ? b.body : JSON.stringify({ received: true }));
      };
      if (b.delayMs) {
        setTimeout(answer, b.delayMs);
      } else {
        answer();
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({
        base,
        requests,
        on: (p, b) => behaviour.set(p, b),
        reset: (p) => behaviour.delete(p),
        at: (p) => requests.filter((r) => r.path === p),
        close: () => new Promise((r) => {
          server.close(r);
          server.closeAllConnections();
        }),
      });
    });
  });
}

// Starts server.mjs (free port, db `db`); lines of its log go to `logs` and,
// when given, `allLogs`.
export function startStandin(settingsFile, { db, extraEnv = {}, allLogs = [] } = {}) {
  const env = {
    ...process.env,
    COUCH_URL, COUCH_USER, COUCH_PASSWORD,
    STANDIN_PORT: '0',
    STANDIN_HOST: '127.0.0.1',
    STANDIN_MEDIC_DB: db,
    STANDIN_APP_SETTINGS: settingsFile,
    STANDIN_OUTBOUND_POLL_MS: '600000', // only flushes drive the feed unless a test says otherwise
    STANDIN_OUTBOUND_RETRY_MS: '600000',
    STANDIN_OUTBOUND_TIMEOUT_MS: '1500',
    ...extraEnv,
  };
  const child = spawn(process.execPath, [SERVER], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  let buffered = '';
  const onData = (chunk) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop();
    logs.push(...lines);
    allLogs.push(...lines);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stand-in did not start:\n${logs.join('\n')}`)), 20_000);
    const exitEarly = (code) => {
      clearTimeout(timer);
      reject(new Error(`stand-in exited (${code}):\n${logs.join('\n')}${buffered}`));
    };
    child.once('exit', exitEarly);
    const check = setInterval(() => {
      const line = logs.find((l) => /listening on http:\/\/[\d.]+:(\d+)/.test(l));
      if (line) {
        clearInterval(check);
        clearTimeout(timer);
        child.off('exit', exitEarly);
        const port = Number(/listening on http:\/\/[\d.]+:(\d+)/.exec(line)[1]);
        const base = `http://127.0.0.1:${port}`;
        resolve({
          base,
          logs,
          call: (method, p, opts) => httpCall(base, method, p, opts),
          flush: async (query = '') => {
            const r = await httpCall(base, 'POST', `/_standin/outbound/flush${query}`);
            assert.equal(r.status, 200, r.text);
            return r.body;
          },
          stats: async () => (await httpCall(base, 'GET', '/_standin/stats')).body,
          stop: () => new Promise((r) => {
            if (child.exitCode !== null) {
              return r();
            }
            child.once('exit', () => r());
            child.kill('SIGTERM');
          }),
        });
      }
    }, 50);
    child.once('exit', () => clearInterval(check));
  });
}

export async function waitFor(what, fn, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > end) {
      assert.fail(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
