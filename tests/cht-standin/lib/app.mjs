// The CHT API stand-in: routes, authentication, the /medic passthrough and
// the outbound engine, wired together. server.mjs reads the environment and
// calls startStandin().

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import { Couch } from './couch.mjs';
import { contactsFor } from './contacts.mjs';
import {
  HttpError, isJson, isTextPlain, readBody, readJson, respond, sendError, sendJSON,
} from './http.mjs';
import { lineageFor } from './lineage.mjs';
import { OutboundEngine } from './outbound.mjs';
import { createRecordByJSON } from './records.mjs';
import { vaultFor } from './vault.mjs';

export const CHT_VERSION = '4.17.0';

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

const isAdmin = (userCtx) => Array.isArray(userCtx.roles) && userCtx.roles.includes('_admin');

export async function startStandin(config) {
  const log = config.log || ((msg) => console.log(`${new Date().toISOString()} cht-standin ${msg}`));
  if (!config.couchUser) {
    // without admin credentials the stand-in would create its databases
    // anonymously, which crashes pouchdb-server 4.2.0 once an admin exists
    throw new Error('COUCH_USER / COUCH_PASSWORD (a CouchDB admin) are required');
  }
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
  // for short code lookups (CHT's contacts_by_reference view)
  await medic.createIndex(['patient_id']);
  await medic.createIndex(['place_id']);

  const lineage = lineageFor(medic);
  const vault = vaultFor(vaultDb, config.couchPassword);
  const contacts = contactsFor(medic, getSettings, lineage);
  const engine = new OutboundEngine({
    medic, sentinel, vault, lineage, getSettings, log,
    pollMs: config.pollMs, retryMs: config.retryMs, timeoutMs: config.timeoutMs, deliverTwice: config.deliverTwice,
  });

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
  const hasPermission = (userCtx, permission) => {
    if (isAdmin(userCtx)) {
      return true;
    }
    const roles = settings.permissions && settings.permissions[permission];
    return Array.isArray(roles) && (userCtx.roles || []).some((r) => roles.includes(r));
  };
  const check = async (req, permission) => {
    const userCtx = await getUserCtx(req);
    if (permission && !hasPermission(userCtx, permission)) {
      throw new HttpError(403, 'Insufficient privileges');
    }
    return userCtx;
  };
  const requireJsonBody = async (req) => {
    const body = isJson(req) ? await readJson(req) : null;
    if (!body || !Object.keys(body).length) {
      throw new HttpError(400, 'Request body is empty or Content-Type header was not set to application/json.');
    }
    return body;
  };

  // --- routes ---
  const routes = {
    'GET /api/info': async (req, res) => sendJSON(res, 200, { version: CHT_VERSION }),

    'GET /api/v2/monitoring': async (req, res) => {
      const [backlog, medicInfo] = await Promise.all([engine.backlog(), medic.info()]);
      const seqNum = (s) => (typeof s === 'number' ? s : Number.parseInt(String(s), 10));
      const pending = seqNum(medicInfo.update_seq) - seqNum(engine.seq);
      sendJSON(res, 200, {
        version: { app: CHT_VERSION, node: process.version },
        date: { current: Date.now(), uptime: process.uptime() },
        sentinel: { backlog: Number.isFinite(pending) ? Math.max(pending, 0) : -1 },
        outbound_push: { backlog },
      });
    },

    'POST /api/v2/records': async (req, res) => records(req, res),
    'POST /api/v1/records': async (req, res) => records(req, res),

    'POST /api/v1/people': async (req, res) => {
      await check(req, 'can_create_people');
      const body = await requireJsonBody(req);
      sendJSON(res, 200, await contacts.createPerson(body));
    },

    'POST /api/v1/places': async (req, res) => {
      await check(req, 'can_create_places');
      const body = await requireJsonBody(req);
      sendJSON(res, 200, await contacts.createPlace(body));
    },

    'GET /api/v1/hydrate': async (req, res, url) => {
      await check(req);
      let ids;
      try {
        ids = JSON.parse(url.searchParams.get('doc_ids'));
      } catch {
        ids = undefined;
      }
      await hydrate(res, ids);
    },
    'POST /api/v1/hydrate': async (req, res) => {
      await check(req);
      const body = isJson(req) ? await readJson(req) : {};
      await hydrate(res, body.doc_ids);
    },

    'GET /api/v1/settings': async (req, res) => {
      await check(req);
      sendJSON(res, 200, settings);
    },
    'PUT /api/v1/settings': async (req, res, url) => {
      await check(req, 'can_configure');
      const body = await requireJsonBody(req);
      const replace = ['true', '1'].includes(url.searchParams.get('replace') || '');
      settings = replace ? body : { ...settings, ...body };
      log(`app_settings ${replace ? 'replaced' : 'updated'} (keys: ${Object.keys(body).join(', ')})`);
      sendJSON(res, 200, { success: true, updated: true });
    },

    // test-only controls (not part of CHT)
    'POST /_standin/outbound/flush': async (req, res, url) => {
      const off = (name) => ['false', '0'].includes(url.searchParams.get(name) || '');
      sendJSON(res, 200, await engine.flush({ changes: !off('changes'), retry: !off('retry') }));
    },
    // Fault injection at run time: `{"deliver_twice": true}` POSTs every push twice from now on.
    'PUT /_standin/outbound/faults': async (req, res) => {
      const body = await requireJsonBody(req);
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
    }),
  };

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

  async function hydrate(res, ids) {
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) {
      throw new HttpError(400, 'Invalid doc_ids param');
    }
    const docs = await lineage.fetchHydratedDocs(ids);
    sendJSON(res, 200, ids.map((id) => {
      const doc = docs.find((d) => d._id === id);
      return doc ? { id, doc } : { id, error: 'not_found' };
    }));
  }

  const credentialsRoute = async (req, res, key) => {
    await check(req, 'can_configure');
    if (!isTextPlain(req)) {
      throw new HttpError(400, 'Content-Type must be text/plain');
    }
    const value = (await readBody(req)).toString('utf8');
    if (!value) {
      throw new HttpError(400, 'Missing credential value');
    }
    await vault.setCredentials(key, value);
    sendJSON(res, 200, { ok: true });
  };

  // /medic/* -> CouchDB <medic db>, same method/body/query, caller's auth
  const couchTarget = new URL(config.couchUrl.replace(/\/+$/, ''));
  const proxyMedic = async (req, res, url) => {
    const userCtx = await getUserCtx(req);
    const rest = req.url.slice('/medic'.length); // raw: keeps the caller's encoding
    const restPath = url.pathname.slice('/medic'.length);
    if ((restPath === '' || restPath === '/') && ['PUT', 'DELETE'].includes(req.method) && !isAdmin(userCtx)) {
      // a non-admin PUT /db crashes pouchdb-server; CouchDB answers this
      return sendJSON(res, 401, { error: 'unauthorized', reason: 'You are not a server admin.' });
    }
    if (/^\/_changes\/?$/.test(restPath) && url.searchParams.get('filter') === '_selector') {
      return sendJSON(res, 400, {
        error: 'bad_request',
        reason: 'filter=_selector is refused by the CHT stand-in: it crashes pouchdb-server. Poll _changes and filter yourself.',
      });
    }
    const target = new URL(couchTarget.href.replace(/\/+$/, '') + '/' + encodeURIComponent(medicName) + rest);
    const headers = { ...req.headers, host: target.host };
    delete headers.connection;
    delete headers['keep-alive'];
    await new Promise((resolve) => {
      const mod = target.protocol === 'https:' ? https : http;
      const preq = mod.request(target, { method: req.method, headers }, (pres) => {
        const h = { ...pres.headers };
        delete h.connection;
        delete h['keep-alive'];
        delete h['transfer-encoding'];
        res.writeHead(pres.statusCode, h);
        pres.pipe(res);
        pres.on('end', resolve);
        pres.on('error', () => { res.destroy(); resolve(); });
      });
      preq.on('error', (err) => {
        if (!res.headersSent) {
          respond(req, res, 503, 'CouchDB unavailable', err.code || err.message);
        } else {
          res.destroy();
        }
        resolve();
      });
      req.pipe(preq);
    });
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://standin.local');
    try {
      const path = url.pathname;
      if (path === '/medic' || path.startsWith('/medic/')) {
        return await proxyMedic(req, res, url);
      }
      const cred = /^\/api\/v1\/credentials\/([^/]+)$/.exec(path);
      if (cred) {
        if (req.method !== 'PUT') {
          throw new HttpError(405, 'Method Not Allowed');
        }
        return await credentialsRoute(req, res, decodeURIComponent(cred[1]));
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
  log(`listening on http://${address.address}:${address.port} (medic db "${medicName}", outbound ${engine.outboundActive() ? 'active' : 'INACTIVE: needs transitions.mark_for_outbound and outbound configs'})`);

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
