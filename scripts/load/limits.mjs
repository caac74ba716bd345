// Load test of each resource limit, at the scale a hostile probe used (issue 9): run by
// scripts/limits.sh against a release build with its default settings. Prints one line per
// scenario with its figures; exits 1 if a bound did not hold.
//
// Usage: node limits.mjs <mediator-url> <mediator-pid> <dead-letter-db-path>
import net from 'node:net';
import { readFileSync, statSync } from 'node:fs';

const [base, pidText, dbPath] = process.argv.slice(2);
const url = new URL(base);
const pid = Number(pidText);
let failed = false;

const rssMb = () => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (ok, what) => {
  if (!ok) {
    failed = true;
    console.log(`  FAILED: ${what}`);
  }
};

/** One raw HTTP/1.1 request on a new connection; resolves with the status line ('' if closed unanswered). */
function raw(request, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let data = '';
    const done = (v) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(null));
    socket.on('data', (d) => (data += d));
    socket.on('error', () => done(data.split('\r\n')[0]));
    socket.on('close', () => done(data.split('\r\n')[0]));
    socket.write(request);
  });
}

async function live() {
  try {
    const r = await fetch(`${base}/health/live`, { signal: AbortSignal.timeout(2000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

async function metricsCardinality() {
  const before = (await (await fetch(`${base}/metrics`)).text()).length;
  const methods = Array.from({ length: 20000 }, (_, i) => `X${i.toString(36).toUpperCase()}Q`);
  for (let i = 0; i < methods.length; i += 200) {
    await Promise.all(
      methods.slice(i, i + 200).map((m) => raw(`${m} /cht/patient HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)),
    );
  }
  const after = (await (await fetch(`${base}/metrics`)).text()).length;
  console.log(
    `metrics: 20,000 requests with invented methods: /metrics ${(before / 1024).toFixed(1)} KB → ` +
      `${(after / 1024).toFixed(1)} KB, RSS ${rssMb().toFixed(1)} MB`,
  );
  check(after < before + 8 * 1024, '/metrics must not grow with invented methods');
}

async function idleConnections() {
  const sockets = [];
  let closedByServer = 0;
  for (let i = 0; i < 10000; i++) {
    const s = net.connect(Number(url.port), url.hostname);
    s.on('error', () => {});
    s.on('close', () => closedByServer++);
    sockets.push(s);
    if (i % 500 === 499) await sleep(50);
  }
  await sleep(2000);
  const rss = rssMb();
  const probeWhileFull = await live();
  const started = Date.now();
  while (!(await live()) && Date.now() - started < 30000) await sleep(250);
  const recovered = (Date.now() - started) / 1000;
  console.log(
    `connections: 10,000 idle sockets: ${closedByServer} closed at once by the server (MAX_CONNECTIONS), ` +
      `RSS ${rss.toFixed(1)} MB, /health/live while full: ${probeWhileFull ? 'answered' : 'no answer'}, ` +
      `answered again after ${recovered.toFixed(1)} s (HEADER_READ_TIMEOUT_MS frees the silent ones)`,
  );
  sockets.forEach((s) => s.destroy());
  check(rss < 100, 'RSS stays bounded under 10,000 idle connections');
  check(recovered < 15, 'the probes answer again once the silent connections time out');
  await sleep(1000);
}

async function slowHeaders() {
  const started = Date.now();
  const closed = await Promise.all(
    Array.from({ length: 300 }, () =>
      new Promise((resolve) => {
        const s = net.connect(Number(url.port), url.hostname);
        s.on('error', () => {});
        let n = 0;
        const header = 'POST /cht/patient HTTP/1.1\r\nHost: x\r\nX-Slow: ';
        const drip = setInterval(() => s.write(n < header.length ? header[n++] : 'a'), 1000);
        s.on('close', () => {
          clearInterval(drip);
          resolve((Date.now() - started) / 1000);
        });
        setTimeout(() => {
          clearInterval(drip);
          s.destroy();
          resolve(null);
        }, 40000);
      }),
    ),
  );
  const cut = closed.filter((t) => t !== null);
  console.log(
    `slow headers: 300 slowloris connections (one byte a second): ${cut.length} closed by the server, ` +
      `the last after ${Math.max(...cut).toFixed(1)} s`,
  );
  check(cut.length === 300, 'every slowloris connection is closed by the server');
}

async function deadLetters() {
  const big = 'x'.repeat(4.9 * 1024 * 1024);
  const statuses = {};
  for (let i = 0; i < 60; i++) {
    // Unconvertible: a person without a name. Distinct payloads, so each would be a new letter.
    const body = JSON.stringify({ doc: { _id: `flood-${i}`, type: 'person', notes: big } });
    const r = await fetch(`${base}/cht/patient`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    statuses[r.status] = (statuses[r.status] || 0) + 1;
    await r.arrayBuffer();
  }
  const size = ['', '-wal'].map((s) => { try { return statSync(dbPath + s).size; } catch { return 0; } }).reduce((a, b) => a + b, 0);
  console.log(
    `dead letters: 60 distinct unconvertible 4.9 MB documents: answers ${JSON.stringify(statuses)}, ` +
      `store ${(size / 1024 / 1024).toFixed(0)} MB on disk (DEAD_LETTER_MAX_BYTES 256 MiB)`,
  );
  check((statuses[507] || 0) > 0 && size < 400 * 1024 * 1024, 'the store stops at its cap with 507');
}

await metricsCardinality();
await slowHeaders();
await idleConnections();
await deadLetters();
console.log(`final RSS ${rssMb().toFixed(1)} MB`);
process.exit(failed ? 1 : 0);
