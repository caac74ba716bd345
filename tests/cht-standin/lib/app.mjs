// The CHT API stand-in: routes, authentication and authorisation, the /medic
// passthrough and the outbound engine, wired together. server.mjs reads the
// environment and calls startStandin().
//
// Who may call what follows cht-core 4.22 api/src/routing.js,
// api/src/auth.js, api/src/middleware/authorization.js and the controllers
// (see README.md for the table).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import {
  FIREWALL_ERROR, hasAllPermissions, isDbAdmin, isOnlineOnly,
} from './auth.mjs';
import { Couch } from './couch.mjs';
import { contactsFor } from './contacts.mjs';
import { installDesignDocs, removeLegacyIndexes } from './ddocs.mjs';
import {
  HttpError, isJson, isTextPlain, readBody, readJson, respond, sendError, sendJSON, sendText,
} from './http.mjs';
import { lineageFor } from './lineage.mjs';
import { OutboundEngine } from './outbound.mjs';
import { normalize as normalizePhone } from './phone.mjs';
import { createRecordByJSON } from './records.mjs';
import { usersFor } from './users.mjs';
import { vaultFor } from './vault.mjs';

export const DEFAULT_CHT_VERSION = '4.22.0';

export function loadAppSettings(path) {
  if (!path) {
    return {};
  }
  const parsed = JSON.parse(fs.readFileSync(path, 'utf8'));
  // accept both the bare app_settings and the settings doc shape {settings: {...}}
  if (parsed && parsed.settings && typeof parsed.settings === 'object' && !parsed.forms && !parsed.outbound) {
    return parsed.settings;
  }
  return parsed || {};
}

// ---- /medic/* access rules (routing.js) -------------------------------------
// ONLINE_ONLY_ENDPOINTS: offline users get the firewall's 403.
const ONLINE_ONLY = /^\/(?:_find|_explain|_index|_ensure_full_commit|_security|_purge)(?:\/.*)?$|^\/_design\/[^/]+\/_(?:view|list|show)\/./;
// UNAUDITED_ENDPOINTS: proxied as they are (no can_edit check, even for writes).
const UNAUDITED = /^\/(?:_local\/.+|_revs_diff\/?|_missing_revs\/?|_find\/?|_explain\/?)$|^\/_design\/[^/]+\/_(?:view|list|show)\/./;
// changes / all_docs / bulk_get: online users proxied, offline users filtered by CHT
const READ_FEEDS = /^\/(?:_changes|_all_docs)(?:\/.*)?$/;
const BULK_GET = /^\/_bulk_get(?:\/.*)?$/;
const WRITE_METHODS = ['PUT', 'POST', 'DELETE'];

// What CHT's routing does with a /medic request of a logged-in user:
// 'firewall' (403 for an offline user), 'proxy', or 'can_edit' (needs the
// can_edit permission, then proxied). `rest` is the decoded path after /medic.
export function medicAccess(method, rest, online) {
  if (!online && ONLINE_ONLY.test(rest)) {
    return 'firewall';
  }
  if (UNAUDITED.test(rest) || READ_FEEDS.test(rest) || (method === 'POST' && BULK_GET.test(rest))) {
    return 'proxy';
  }
  const segments = rest.replace(/^\//, '').split('/');
  const single = segments.length === 1 && segments[0] !== '';
  if (!online) {
    // the requests CHT's offline handlers authorise (filtered: doc, ddoc,
    // attachment, _bulk_docs, POST /medic/), everything else: the firewall
    const authorised =
      (method === 'POST' && (rest === '/' || /^\/_bulk_docs\/?$/.test(rest))) ||
      (single && ['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) ||
      segments.length > 1;
    if (!authorised) {
      return 'firewall';
    }
  }
  return WRITE_METHODS.includes(method) ? 'can_edit' : 'proxy';
}

// field names used by a Mango selector ("fields.task_id", ...), never values
const selectorFields = (selector, prefix = '', out = new Set()) => {
  if (Array.isArray(selector)) {
    selector.forEach((s) => selectorFields(s, prefix, out));
  } else if (selector && typeof selector === 'object') {
    for (const [k, v] of Object.entries(selector)) {
      if (k.startsWith('$')) {
        if (v && typeof v === 'object') {
          selectorFields(v, prefix, out);
        } else if (prefix) {
          out.add(prefix);
        }
      } else {
        const path = prefix ? `${prefix}.${k}` : k;
        if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).some((x) => !x.startsWith('$'))) {
          selectorFields(v, path, out);
        } else {
          out.add(path);
        }
      }
    }
  }
  return out;
};

export async function startStandin(config) {
  const log = config.log || ((msg) => console.log(`${new Date().toISOString()} cht-standin ${msg}`));
  if (!config.couchUser) {
    // without admin credentials the stand-in would create its databases
    // anonymously, which crashes pouchdb-server 4.2.0 once an admin exists
    throw new Error('COUCH_USER / COUCH_PASSWORD (a CouchDB admin) are required');
  }
  const chtVersion = config.chtVersion || DEFAULT_CHT_VERSION;
  let settings = config.appSettings || {};
  const getSettings = () => settings;

  const couch = new Couch(config.couchUrl, config.couchUser, config.couchPassword);
  const medicName = config.medicDb || 'medic';
  const medic = couch.db(medicName);
  const sentinel = couch.db(`${medicName}-sentinel`);
  const vaultDb = couch.db(`${medicName}-vault`);
  // CouchDB may still be starting (stack scripts start both at once)
  const waitUntil = Date.now() + (config.couchWaitMs ?? 30_000);
  for (;;) {
    try {
      for (const db of [medic, sentinel, vaultDb]) {
        await db.ensure();
      }
      break;
    } catch (err) {
      if (!err.unavailable || Date.now() > waitUntil) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  // the stock views (no Mango index: a stock medic db has none)
  await installDesignDocs(medic, log);
  await removeLegacyIndexes(medic, log);

  const lineage = lineageFor(medic);
  const vault = vaultFor(vaultDb, config.couchPassword);
  const contacts = contactsFor(medic, getSettings, lineage);
  const users = usersFor({ couch, medic, getSettings, contacts });
  const engine = new OutboundEngine({
    medic, sentinel, vault, lineage, getSettings, log, chtVersion,
    pollMs: config.pollMs, retryMs: config.retryMs, timeoutMs: config.timeoutMs, deliverTwice: config.deliverTwice,
  });

  // what the callers of /medic did (test-only, GET /_standin/stats)
  const newStats = () => ({ finds: 0, unindexed_finds: 0, unindexed: [], view_queries: {}, since: new Date().toISOString() });
  let stats = newStats();
  let unindexedCounter = 0;

  // --- auth ---
  const getUserCtx = async (req) => {
    const header = req.headers.authorization;
    if (!header || !/^basic\s/i.test(header)) {
      throw new HttpError(401, 'unauthorized');
    }
    const userCtx = await couch.session(header);
    if (!userCtx) {
      throw new HttpError(401, 'unauthorized');
    }
    return userCtx;
  };
  // auth.check(req, permissions): all of them (admins pass), no online requirement
  const check = async (req, permissions) => {
    const userCtx = await getUserCtx(req);
    if (permissions && !hasAllPermissions(settings, userCtx, permissions)) {
      throw new HttpError(403, 'Insufficient privileges');
    }
    return userCtx;
  };
  const firewalled = (res) => sendJSON(res, FIREWALL_ERROR.code, FIREWALL_ERROR);
  // handleAuthErrors + offlineUserFirewall: the userCtx, or null when the
  // firewall already answered
  const onlineUser = async (req, res) => {
    const userCtx = await getUserCtx(req);
    if (!isOnlineOnly(userCtx)) {
      firewalled(res);
      return null;
    }
    return userCtx;
  };
  // routing.js handleJsonRequest (postJson / putJson): the exact header
  const requireJsonContentType = (req, alsoCsv = false) => {
    const type = req.headers['content-type'];
    if (type === 'application/json' || (alsoCsv && type === 'text/csv')) {
      return;
    }
    throw new HttpError(400, alsoCsv
      ? 'Content-Type must be application/json or text/csv'
      : 'Content-Type must be application/json');
  };
  const emptyBody = () => new HttpError(400, 'Request body is empty or Content-Type header was not set to application/json.');
  const isEmpty = (body) => !body || typeof body !== 'object' || !Object.keys(body).length;

  // --- routes ---
  const routes = {
    'GET /api/info': async (req, res) => sendJSON(res, 200, { version: chtVersion }),

    'GET /api/v2/monitoring': async (req, res) => {
      const [backlog, medicInfo] = await Promise.all([engine.backlog(), medic.info()]);
      const seqNum = (s) => (typeof s === 'number' ? s : Number.parseInt(String(s), 10));
      const pending = seqNum(medicInfo.update_seq) - seqNum(engine.seq);
      sendJSON(res, 200, {
        version: { app: chtVersion, node: process.version },
        date: { current: Date.now(), uptime: process.uptime() },
        sentinel: { backlog: Number.isFinite(pending) ? Math.max(pending, 0) : -1 },
        outbound_push: { backlog },
      });
    },

    'POST /api/v2/records': async (req, res) => records(req, res),
    'POST /api/v1/records': async (req, res) => records(req, res),

    'POST /api/v1/people': async (req, res) => {
      requireJsonContentType(req);
      const body = await readJson(req);
      await check(req, ['can_edit', 'can_create_people']);
      if (isEmpty(body)) {
        throw emptyBody();
      }
      sendJSON(res, 200, await contacts.createPerson(body));
    },

    'POST /api/v1/places': async (req, res) => {
      requireJsonContentType(req);
      const body = await readJson(req);
      await check(req, ['can_edit', 'can_create_places']);
      if (isEmpty(body)) {
        throw emptyBody();
      }
      sendJSON(res, 200, await contacts.createPlace(body));
    },

    'POST /api/v1/users': async (req, res) => {
      requireJsonContentType(req);
      const body = await readJson(req);
      await check(req, ['can_edit', 'can_create_users']);
      sendJSON(res, 200, await users.createUsers(body));
    },
    'POST /api/v2/users': async (req, res) => {
      requireJsonContentType(req, true);
      if (req.headers['content-type'] === 'text/csv') {
        await check(req, ['can_edit', 'can_create_users']);
        throw new HttpError(400, 'The CHT stand-in does not import users from CSV; send JSON');
      }
      const body = await readJson(req);
      await check(req, ['can_edit', 'can_create_users']);
      sendJSON(res, 200, await users.createUsers(body));
    },

    'GET /api/v1/hydrate': async (req, res, url) => {
      if (!(await onlineUser(req, res))) {
        return;
      }
      await hydrate(res, jsonQuery(url, 'doc_ids'));
    },
    'POST /api/v1/hydrate': async (req, res, url) => {
      if (!(await onlineUser(req, res))) {
        return;
      }
      const body = isJson(req) ? await readJson(req) : {};
      await hydrate(res, jsonQuery(url, 'doc_ids') || (body && body.doc_ids));
    },

    'GET /api/v1/contacts-by-phone': async (req, res, url) => {
      if (!(await onlineUser(req, res))) {
        return;
      }
      await contactsByPhone(res, url.searchParams.get('phone'));
    },
    'POST /api/v1/contacts-by-phone': async (req, res, url) => {
      if (!(await onlineUser(req, res))) {
        return;
      }
      const body = isJson(req) ? await readJson(req) : {};
      await contactsByPhone(res, url.searchParams.get('phone') || (body && body.phone));
    },

    'GET /api/v1/settings': async (req, res) => {
      try {
        await getUserCtx(req);
      } catch (err) {
        err.showPrompt = true;
        throw err;
      }
      sendJSON(res, 200, settings);
    },
    'PUT /api/v1/settings': async (req, res, url) => {
      requireJsonContentType(req);
      const body = await readJson(req);
      try {
        await check(req, ['can_edit', 'can_configure']);
      } catch (err) {
        err.showPrompt = true;
        throw err;
      }
      // overwrite: the whole settings; replace (and, unlike CHT's deep merge,
      // the default): the top-level keys given
      const flag = (name) => ['true', '1'].includes(url.searchParams.get(name) || '');
      const before = JSON.stringify(settings);
      settings = flag('overwrite') ? body : { ...settings, ...body };
      const updated = JSON.stringify(settings) !== before;
      log(`app_settings ${flag('overwrite') ? 'overwritten' : 'updated'} (keys: ${Object.keys(body).join(', ')})`);
      sendJSON(res, 200, { success: true, updated });
    },

    // test-only controls (not part of CHT)
    'POST /_standin/outbound/flush': async (req, res, url) => {
      const off = (name) => ['false', '0'].includes(url.searchParams.get(name) || '');
      sendJSON(res, 200, await engine.flush({ changes: !off('changes'), retry: !off('retry') }));
    },
    // Fault injection at run time: `{"deliver_twice": true}` POSTs every push twice from now on.
    'PUT /_standin/outbound/faults': async (req, res) => {
      const body = isJson(req) ? await readJson(req) : null;
      if (isEmpty(body)) {
        throw emptyBody();
      }
      if (typeof body.deliver_twice === 'boolean') engine.deliverTwice = body.deliver_twice;
      log(`outbound faults: deliver_twice=${engine.deliverTwice}`);
      sendJSON(res, 200, { deliver_twice: engine.deliverTwice });
    },
    'GET /_standin/outbound/attempts': async (req, res, url) => {
      const since = Number(url.searchParams.get('since') || 0);
      sendJSON(res, 200, { attempts: engine.attempts.filter((a) => a.n > since), last: engine.attemptCounter });
    },
    'GET /_standin/health': async (req, res) => sendJSON(res, 200, {
      ok: true, medic_db: medicName, processed_seq: engine.seq, outbound_active: engine.outboundActive(),
      cht_version: chtVersion,
    }),
    // how the callers used /medic: _find calls, the unindexed ones (the field
    // names of their selectors, no values), view queries per view
    'GET /_standin/stats': async (req, res) => sendJSON(res, 200, stats),
    'POST /_standin/stats/reset': async (req, res) => {
      const before = stats;
      stats = newStats();
      sendJSON(res, 200, before);
    },
  };

  function jsonQuery(url, name) {
    const raw = url.searchParams.get(name);
    if (raw === null) {
      return undefined;
    }
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }

  async function records(req, res) {
    await check(req, 'can_create_records');
    if (!isJson(req)) {
      throw new Error('Content type not supported.'); // 500 without details, as CHT
    }
    const body = await readJson(req);
    const doc = createRecordByJSON(body, settings);
    doc._id = crypto.randomUUID();
    await engine.apiTransition(doc); // synchronous outbound, before saving and answering
    const saved = await medic.post(doc);
    sendJSON(res, 200, { success: true, id: saved.id });
  }

  // controllers/hydration.js
  async function hydrate(res, ids) {
    if (!Array.isArray(ids)) {
      return sendJSON(res, 400, { error: 'bad_request', reason: '`doc_ids` parameter must be a json array.' });
    }
    if (!ids.length) {
      return sendJSON(res, 200, []);
    }
    const docs = await lineage.fetchHydratedDocs(ids);
    sendJSON(res, 200, ids.map((id) => {
      const doc = docs.find((d) => d._id === id);
      return doc ? { id, doc } : { id, error: 'not_found' };
    }));
  }

  // controllers/contacts-by-phone.js
  async function contactsByPhone(res, phone) {
    const invalid = () => sendJSON(res, 400, {
      error: 'bad_request', reason: '`phone` parameter is required and must be a valid phone number',
    });
    if (!phone) {
      return invalid();
    }
    const normalized = normalizePhone(settings, phone);
    if (!normalized) {
      return invalid();
    }
    const result = await medic.query('medic-client/contacts_by_phone', { key: normalized });
    if (!result || !result.rows || !result.rows.length) {
      return sendJSON(res, 404, { error: 'not_found', reason: 'no matches found' });
    }
    const docs = await lineage.fetchHydratedDocs(result.rows.map((row) => row.id));
    sendJSON(res, 200, { ok: true, docs });
  }

  // controllers/credentials.js (behind the offline firewall): key, body, then admin only
  const credentialsRoute = async (req, res, key) => {
    const userCtx = await onlineUser(req, res);
    if (!userCtx) {
      return;
    }
    const value = isTextPlain(req) ? (await readBody(req)).toString('utf8') : '';
    if (!key) {
      throw new HttpError(400, 'Missing required param "key"');
    }
    if (!value) {
      throw new HttpError(400, 'Missing required request body');
    }
    if (!isDbAdmin(userCtx)) {
      throw new HttpError(403, 'Insufficient permissions');
    }
    await vault.setCredentials(key, value);
    sendJSON(res, 200, { ok: true });
  };

  // --- /medic/* -> CouchDB <medic db>, same method/body/query, caller's auth ---
  const couchTarget = new URL(config.couchUrl.replace(/\/+$/, ''));

  const countView = (restPath) => {
    const m = /^\/_design\/([^/]+)\/_view\/([^/]+)/.exec(restPath);
    if (m) {
      const name = `${m[1]}/${m[2]}`;
      stats.view_queries[name] = (stats.view_queries[name] || 0) + 1;
    }
  };

  // A _find answered with CouchDB's "No matching index found" warning, or
  // refused because no index can serve its sort, or served by the special
  // _all_docs index (pouchdb-server does not warn for _id-only selectors,
  // CouchDB does) is an unindexed find.
  const checkFind = async (requestBody, status, responseText) => {
    stats.finds++;
    let answer = {};
    try {
      answer = JSON.parse(responseText);
    } catch {
      // not JSON: leave it
    }
    let query = {};
    try {
      query = JSON.parse(requestBody.toString('utf8') || '{}');
    } catch {
      return;
    }
    let reason = null;
    if (answer && typeof answer.warning === 'string' && /no matching index found/i.test(answer.warning)) {
      reason = 'no_matching_index';
    } else if (status === 400 && answer && (answer.error === 'no_usable_index' || /default index/i.test(answer.reason || ''))) {
      reason = 'no_usable_index';
    } else if (status === 200) {
      try {
        const explained = await couch.request('POST', `/${encodeURIComponent(medicName)}/_explain`, { body: query });
        if (explained.body && explained.body.index && explained.body.index.type === 'special') {
          reason = 'all_docs_index';
        }
      } catch {
        // could not explain: counted only by the warning
      }
    }
    if (reason) {
      stats.unindexed_finds++;
      stats.unindexed.push({
        n: ++unindexedCounter, at: new Date().toISOString(), reason,
        fields: [...selectorFields(query.selector)].sort(),
      });
      if (stats.unindexed.length > 100) {
        stats.unindexed.splice(0, stats.unindexed.length - 100);
      }
      log(`unindexed _find (${reason}) on fields ${[...selectorFields(query.selector)].sort().join(', ') || '(none)'}`);
    }
  };

  const forward = (req, res, target, body) => new Promise((resolve) => {
    const headers = { ...req.headers, host: target.host };
    delete headers.connection;
    delete headers['keep-alive'];
    if (body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
    }
    const mod = target.protocol === 'https:' ? https : http;
    const preq = mod.request(target, { method: req.method, headers }, (pres) => {
      const h = { ...pres.headers };
      delete h.connection;
      delete h['keep-alive'];
      delete h['transfer-encoding'];
      if (!body) {
        res.writeHead(pres.statusCode, h);
        pres.pipe(res);
        pres.on('end', () => resolve(null));
        pres.on('error', () => { res.destroy(); resolve(null); });
        return;
      }
      // buffered (for _find): answer, then hand the text to the caller
      const chunks = [];
      pres.on('data', (c) => chunks.push(c));
      pres.on('end', () => {
        const text = Buffer.concat(chunks);
        delete h['content-length'];
        res.writeHead(pres.statusCode, { ...h, 'content-length': text.length });
        res.end(text);
        resolve({ status: pres.statusCode, text: text.toString('utf8') });
      });
      pres.on('error', () => { res.destroy(); resolve(null); });
    });
    preq.on('error', (err) => {
      if (!res.headersSent) {
        respond(req, res, 503, 'CouchDB unavailable', err.code || err.message);
      } else {
        res.destroy();
      }
      resolve(null);
    });
    if (body) {
      preq.end(body);
    } else {
      req.pipe(preq);
    }
  });

  const proxyMedic = async (req, res, url) => {
    const restPath = url.pathname.slice('/medic'.length);
    if (restPath === '' && req.method === 'GET') {
      // routing.js: `/medic` redirects to `/medic/` (for anyone)
      return sendText(res, 302, 'Found. Redirecting to /medic/', { Location: '/medic/' });
    }
    const userCtx = await getUserCtx(req);
    const admin = isDbAdmin(userCtx);
    const access = medicAccess(req.method, restPath || '/', isOnlineOnly(userCtx));
    if (access === 'firewall') {
      return firewalled(res);
    }
    if (access === 'can_edit' && !hasAllPermissions(settings, userCtx, 'can_edit')) {
      throw new HttpError(403, 'Insufficient privileges');
    }
    if ((restPath === '' || restPath === '/') && ['PUT', 'DELETE'].includes(req.method) && !admin) {
      // a non-admin PUT /db crashes pouchdb-server; CouchDB answers this
      return sendJSON(res, 401, { error: 'unauthorized', reason: 'You are not a server admin.' });
    }
    if (/^\/_changes\/?$/.test(restPath) && url.searchParams.get('filter') === '_selector') {
      return sendJSON(res, 400, {
        error: 'bad_request',
        reason: 'filter=_selector is refused by the CHT stand-in: it crashes pouchdb-server. Poll _changes and filter yourself.',
      });
    }
    countView(restPath);
    const rest = req.url.slice('/medic'.length); // raw: keeps the caller's encoding
    const target = new URL(couchTarget.href.replace(/\/+$/, '') + '/' + encodeURIComponent(medicName) + rest);
    if (req.method === 'POST' && /^\/_find\/?$/.test(restPath)) {
      const body = await readBody(req);
      const answer = await forward(req, res, target, body);
      if (answer) {
        await checkFind(body, answer.status, answer.text);
      }
      return;
    }
    await forward(req, res, target, null);
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://standin.local');
    try {
      const path = url.pathname;
      if (path === '/medic' || path.startsWith('/medic/')) {
        return await proxyMedic(req, res, url);
      }
      // CHT's API passes /_session to CouchDB (its login and the webapp read it there): the
      // caller's own name and roles, as CouchDB decides them.
      if (path === '/_session' && req.method === 'GET') {
        return await forward(req, res, new URL(couchTarget.href.replace(/\/+$/, '') + '/_session'), null);
      }
      const cred = /^\/api\/v1\/credentials(?:\/([^/]*))?$/.exec(path);
      if (cred) {
        if (req.method !== 'PUT') {
          throw new HttpError(404, 'Not Found');
        }
        return await credentialsRoute(req, res, cred[1] ? decodeURIComponent(cred[1]) : '');
      }
      const route = routes[`${req.method} ${path.replace(/\/+$/, '') || '/'}`];
      if (!route) {
        throw new HttpError(404, 'Not Found');
      }
      return await route(req, res, url);
    } catch (err) {
      if (err.unavailable) {
        return respond(req, res, 503, 'CouchDB unavailable');
      }
      return sendError(req, res, err, log);
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const address = server.address();
  await engine.start();
  log(`listening on http://${address.address}:${address.port} (CHT ${chtVersion}, medic db "${medicName}", outbound ${engine.outboundActive() ? 'active' : 'INACTIVE: needs transitions.mark_for_outbound and outbound configs'})`);

  return {
    port: address.port,
    engine,
    setSettings(next) {
      settings = next;
    },
    async close() {
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
      await Promise.race([engine.stop(), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}
