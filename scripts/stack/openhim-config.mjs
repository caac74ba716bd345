// Prints an openhim-core 4.0.5 config (JSON) for the local test stack.
// Called by `scripts/stack.sh openhim-config` (and by `up` for the main core).
//
// It starts from the core's own config/default.json, so every field is one the
// core really reads, and applies the overrides below. An override whose path is
// not in default.json is an error (catches a misspelt field name: nconf would
// silently ignore it).
//
// Ports: the API port is given; every other port the core opens is derived from
// it so that two cores can run side by side:
//   api+1 rerun HTTP server, api+2 TCP-adapter HTTP receiver, api+3 polling,
//   api+4..api+6 ATNA audit UDP/TLS/TCP (disabled, but set so nothing clashes).
// Keep the API ports of concurrent cores at least 7 apart.
// A router port of 0 disables that router listener.

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

function die(msg) {
  console.error(`openhim-config: ${msg}`);
  process.exit(2);
}

const { values: a } = parseArgs({
  options: {
    'core-dir': { type: 'string' },
    'api-port': { type: 'string' },
    'router-http-port': { type: 'string' },
    'router-https-port': { type: 'string' },
    db: { type: 'string' },
    'mongo-host': { type: 'string', default: '127.0.0.1' },
    'mongo-port': { type: 'string' },
    'cert-path': { type: 'string' },
    'key-path': { type: 'string' },
    // The core's own bundled "OpenHIM Default Certificate" (self-signed, CA:TRUE, no SAN), as an
    // install that was given no certificate serves it: no certificateManagement settings at all.
    'default-cert': { type: 'boolean', default: false },
    'bind-address': { type: 'string', default: '127.0.0.1' },
  },
});

const required = ['core-dir', 'api-port', 'router-http-port', 'router-https-port', 'db', 'mongo-port'];
if (!a['default-cert']) required.push('cert-path', 'key-path');
for (const k of required) {
  if (a[k] === undefined || a[k] === '') die(`--${k} is required`);
}

function port(name, { allowZero = false } = {}) {
  const v = a[name];
  if (!/^\d+$/.test(v)) die(`--${name} must be a number, got '${v}'`);
  const n = Number(v);
  if ((n === 0 && !allowZero) || n > 65535) die(`--${name} out of range: ${n}`);
  return n;
}

const apiPort = port('api-port');
const routerHttpPort = port('router-http-port', { allowZero: true });
const routerHttpsPort = port('router-https-port', { allowZero: true });
const mongoPort = port('mongo-port');
if (apiPort + 6 > 65535) die(`--api-port too high: ports up to api+6 are used`);
if (!/^[A-Za-z0-9_-]{1,60}$/.test(a.db)) die(`--db must match [A-Za-z0-9_-]{1,60}, got '${a.db}'`);

const derived = {
  rerun: apiPort + 1,
  tcpAdapter: apiPort + 2,
  polling: apiPort + 3,
  auditUdp: apiPort + 4,
  auditTls: apiPort + 5,
  auditTcp: apiPort + 6,
};

// Listening TCP ports must not collide with each other.
const listening = { api: apiPort, routerHttp: routerHttpPort, routerHttps: routerHttpsPort, ...derived };
const seen = new Map();
for (const [name, p] of Object.entries(listening)) {
  if (p === 0) continue;
  if (seen.has(p)) die(`port ${p} used for both ${seen.get(p)} and ${name}`);
  seen.set(p, name);
}

const mongoUrl = `mongodb://${a['mongo-host']}:${mongoPort}/${a.db}`;

// Dotted path -> value. Only leaves of default.json may be set.
const overrides = {
  bindAddress: a['bind-address'],
  'mongo.url': mongoUrl,
  'mongo.atnaUrl': mongoUrl,
  'router.externalHostname': a['bind-address'],
  'router.httpPort': routerHttpPort,
  'router.httpsPort': routerHttpsPort,
  'api.httpsPort': apiPort,
  // Internal listeners default to "localhost", which may resolve to ::1.
  'rerun.httpPort': derived.rerun,
  'rerun.host': '127.0.0.1',
  'tcpAdapter.httpReceiver.httpPort': derived.tcpAdapter,
  'tcpAdapter.httpReceiver.host': '127.0.0.1',
  'polling.pollingPort': derived.polling,
  'polling.host': '127.0.0.1',
  'alerts.enableAlerts': false,
  'reports.enableReports': false,
  'statsd.enabled': false,
  'auditing.servers.udp.enabled': false,
  'auditing.servers.udp.port': derived.auditUdp,
  'auditing.servers.tls.enabled': false,
  'auditing.servers.tls.port': derived.auditTls,
  'auditing.servers.tcp.enabled': false,
  'auditing.servers.tcp.port': derived.auditTcp,
  // "internal" stores the core's own audit events in its DB (no network).
  'auditing.auditEvents.interface': 'internal',
  'auditing.auditEvents.host': '127.0.0.1',
  'auditing.auditEvents.port': derived.auditTls,
  'application.name': `cht-fhir-mediator local stack (${a.db})`,
};
if (!a['default-cert']) {
  // The core loads this cert/key into its keystore at every start (server.js
  // ensureKeystore) and serves it on the API and the HTTPS router.
  overrides['certificateManagement.watchFSForCert'] = true;
  overrides['certificateManagement.certPath'] = path.resolve(a['cert-path']);
  overrides['certificateManagement.keyPath'] = path.resolve(a['key-path']);
}

const defaultsFile = path.join(a['core-dir'], 'config', 'default.json');
let config;
try {
  config = JSON.parse(fs.readFileSync(defaultsFile, 'utf8'));
} catch (err) {
  die(`cannot read ${defaultsFile} (run 'scripts/stack.sh install' first?): ${err.message}`);
}

for (const [dotted, value] of Object.entries(overrides)) {
  const keys = dotted.split('.');
  let node = config;
  for (const k of keys.slice(0, -1)) {
    if (node[k] === null || typeof node[k] !== 'object') die(`${dotted}: '${k}' is not an object in ${defaultsFile}`);
    node = node[k];
  }
  const leaf = keys[keys.length - 1];
  if (!(leaf in node)) die(`${dotted} is not a field of ${defaultsFile}`);
  node[leaf] = value;
}

process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
