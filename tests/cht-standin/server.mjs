#!/usr/bin/env node
// CHT API stand-in for local tests: `node tests/cht-standin/server.mjs`.
// See README.md in this folder for what it implements and the settings.

import { loadAppSettings, startStandin } from './lib/app.mjs';

const env = process.env;
const num = (name, dflt) => {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return dflt;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`cht-standin: ${name} must be a non-negative number, got "${raw}"`);
    process.exit(2);
  }
  return n;
};

const config = {
  port: num('STANDIN_PORT', 5988),
  host: env.STANDIN_HOST || '127.0.0.1',
  couchUrl: env.COUCH_URL || 'http://127.0.0.1:5984',
  couchUser: env.COUCH_USER,
  couchPassword: env.COUCH_PASSWORD,
  medicDb: env.STANDIN_MEDIC_DB || 'medic',
  pollMs: Math.max(num('STANDIN_OUTBOUND_POLL_MS', 1000), 50),
  retryMs: Math.max(num('STANDIN_OUTBOUND_RETRY_MS', 300000), 50),
  timeoutMs: Math.max(num('STANDIN_OUTBOUND_TIMEOUT_MS', 10000), 1),
  deliverTwice: env.STANDIN_DELIVER_TWICE === 'true',
  couchWaitMs: num('STANDIN_COUCH_WAIT_MS', 30000),
  chtVersion: env.STANDIN_CHT_VERSION || undefined,
};

try {
  config.appSettings = loadAppSettings(env.STANDIN_APP_SETTINGS);
} catch (err) {
  console.error(`cht-standin: cannot read STANDIN_APP_SETTINGS (${env.STANDIN_APP_SETTINGS}): ${err.message}`);
  process.exit(2);
}
if (!env.STANDIN_APP_SETTINGS) {
  console.log('cht-standin: STANDIN_APP_SETTINGS not set, starting with empty app_settings');
}

let standin;
try {
  standin = await startStandin(config);
} catch (err) {
  console.error(`cht-standin: failed to start: ${err.message}`);
  process.exit(1);
}

let stopping = false;
const stop = async (signal) => {
  if (stopping) {
    return;
  }
  stopping = true;
  console.log(`cht-standin: ${signal}, stopping`);
  await standin.close();
  process.exit(0);
};
process.on('SIGHUP', () => {
  try {
    standin.setSettings(loadAppSettings(env.STANDIN_APP_SETTINGS));
    console.log('cht-standin: SIGHUP, app_settings reloaded');
  } catch (err) {
    console.error(`cht-standin: SIGHUP, app_settings NOT reloaded: ${err.message}`);
  }
});
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
