// Outbound push, after cht-core:
// - shared-libs/outbound/src/outbound.js (mapping, hash, send),
// - shared-libs/transitions/src/transitions/mark_for_outbound.js (realtime
//   attempt on every change, failures queued as task:outbound:<docId>),
// - sentinel/src/schedule/outbound.js (retry of the queue, re-mapping the
//   CURRENT doc, no cap, no backoff),
// - sentinel's change feed processing (here: polling medic/_changes).
// Plus, when app_settings enables it, generate_shortcode_on_contacts (runs
// before mark_for_outbound, as in CHT's transition order).

import crypto from 'node:crypto';
import os from 'node:os';
import vm from 'node:vm';

export class OutboundError extends Error {}

const OUTBOUND_REQ_TIMEOUT = 10 * 1000;
const VM_TIMEOUT = 5000; // CHT has none; keeps a runaway expression from wedging the stand-in
const CHANGES_BATCH = 100;
const SEQ_DOC = '_local/sentinel-meta-data';
const MAX_ATTEMPTS_KEPT = 10000;
const TASK_GRACE_MS = 60 * 1000;

// ---- object-path (0.11) get/set semantics ---------------------------------

const getKey = (key) => {
  const intKey = parseInt(key, 10);
  return String(intKey) === key ? intKey : key;
};
const hasShallowProperty = (obj, prop) =>
  (typeof prop === 'number' && Array.isArray(obj)) ||
  (obj !== null && obj !== undefined && Object.prototype.hasOwnProperty.call(obj, prop));

export function pathGet(obj, path) {
  if (typeof path === 'number') {
    path = [path];
  }
  if (!path || path.length === 0) {
    return obj;
  }
  if (obj === null || obj === undefined) {
    return undefined;
  }
  if (typeof path === 'string') {
    return pathGet(obj, path.split('.'));
  }
  const current = getKey(path[0]);
  const next = hasShallowProperty(obj, current) ? obj[current] : undefined;
  if (next === undefined) {
    return undefined;
  }
  if (path.length === 1) {
    return next;
  }
  return pathGet(obj[current], path.slice(1));
}

export function pathSet(obj, path, value) {
  if (typeof path === 'number') {
    path = [path];
  }
  if (!path || path.length === 0) {
    return;
  }
  if (typeof path === 'string') {
    return pathSet(obj, path.split('.').map(getKey), value);
  }
  const current = path[0];
  if (current === '__proto__' || current === 'constructor' || current === 'prototype') {
    throw new OutboundError(`Unsafe destination path segment '${current}'`);
  }
  const currentValue = hasShallowProperty(obj, current) ? obj[current] : undefined;
  if (path.length === 1) {
    obj[current] = value;
    return;
  }
  if (currentValue === undefined) {
    obj[current] = typeof path[1] === 'number' ? [] : {};
  }
  pathSet(obj[current], path.slice(1), value);
}

// ---- url-join (4.x) ---------------------------------------------------------

export function urlJoin(...parts) {
  const strArray = [...parts];
  for (const p of strArray) {
    if (typeof p !== 'string') {
      throw new OutboundError(`Url must be a string. Received ${p}`);
    }
  }
  if (strArray[0].match(/^[^/:]+:\/*$/) && strArray.length > 1) {
    const first = strArray.shift();
    strArray[0] = first + strArray[0];
  }
  if (strArray[0].match(/^file:\/\/\//)) {
    strArray[0] = strArray[0].replace(/^([^/:]+):\/*/, '$1:///');
  } else {
    strArray[0] = strArray[0].replace(/^([^/:]+):\/*/, '$1://');
  }
  const result = [];
  for (let i = 0; i < strArray.length; i++) {
    let component = strArray[i];
    if (component === '') {
      continue;
    }
    if (i > 0) {
      component = component.replace(/^[/]+/, '');
    }
    component = i < strArray.length - 1 ? component.replace(/[/]+$/, '') : component.replace(/[/]+$/, '/');
    result.push(component);
  }
  let str = result.join('/');
  str = str.replace(/\/(\?|&|#[^!])/g, '$1');
  const qs = str.split('?');
  str = qs.shift() + (qs.length > 0 ? '?' : '') + qs.join('&');
  return str;
}

// ---- mapping and hashing (outbound.js) -------------------------------------

export function mapDocumentToPayload(doc, config, key) {
  const normalise = (src) => {
    if (typeof src === 'string') {
      return { path: src, required: true };
    }
    return { path: src.path, expr: src.expr, required: !src.optional };
  };
  const toReturn = {};
  for (const dest of Object.keys(config.mapping || {})) {
    const { path, expr, required } = normalise(config.mapping[dest]);
    let srcValue;
    if (expr) {
      try {
        srcValue = vm.runInNewContext(expr, { doc }, { timeout: VM_TIMEOUT });
      } catch (err) {
        throw new OutboundError(`Mapping error for '${key}/${dest}' JS error on source document: '${doc._id}': ${err}`);
      }
    } else {
      try {
        srcValue = pathGet({ doc }, path);
      } catch (err) {
        throw new OutboundError(`Mapping error for '${key}/${dest}' JS error on source document: '${doc._id}': ${err}`);
      }
    }
    if (required && srcValue === undefined) {
      const problem = expr ? 'expr evaluated to undefined' : `cannot find '${path}' on source document`;
      throw new OutboundError(`Mapping error for '${key}/${dest}' on source document '${doc._id}': ${problem}`);
    }
    if (srcValue !== undefined) {
      pathSet(toReturn, dest, srcValue);
    }
  }
  return toReturn;
}

// Objects get sorted keys (recursively); arrays go through JSON.stringify as
// they are, exactly like CHT's orderedStringify.
const orderedStringify = (thing) => {
  if (Object.prototype.toString.call(thing) === '[object Object]') {
    const keys = Object.keys(thing).sort();
    return `{${keys.map((k) => `"${k}":${orderedStringify(thing[k])}`).join(',')}}`;
  }
  return JSON.stringify(thing);
};

export const hashPayload = (payload) =>
  crypto.createHash('sha256').update(orderedStringify(JSON.parse(JSON.stringify(payload)))).digest('hex');

const alreadySent = (payload, configName, info) => {
  if (!info || !info.completed_tasks) {
    return false;
  }
  const last = info.completed_tasks.filter((t) => t.type === 'outbound' && t.name === configName).pop();
  return !!(last && last.hash && last.hash === hashPayload(payload));
};

// couch-request: the final response (after fetch followed any redirects) is
// a success when `response.ok` (2xx) or 301-398 (a 3xx fetch did not follow:
// 304, 305, 306, a redirect without Location, ...).
const isSuccess = (status) => (status >= 200 && status < 300) || (status > 300 && status < 399);

// couch-request getResponseBody: a Content-Type starting with
// application/json is parsed (and throws when it does not parse), anything
// else is read as text (then tried as JSON).
const responseBody = async (res) => {
  const contentType = res.headers.get('content-type');
  if (contentType && contentType.startsWith('application/json')) {
    return res.json();
  }
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

// scheme://host:port/path only (no credentials, no query: tokens live there)
const redactUrl = (raw) => {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '';
  }
};

const withCheckDigit = (digits) => {
  const weight = digits.length + 1;
  let total = 0;
  [...digits].forEach((d, i) => {
    total += Number(d) * (weight - i);
  });
  const check = total % 11;
  return digits + (check === 10 ? 0 : check);
};

// ---- the engine -------------------------------------------------------------

export class OutboundEngine {
  constructor({ medic, sentinel, vault, lineage, getSettings, log, pollMs, retryMs, timeoutMs, deliverTwice, chtVersion }) {
    Object.assign(this, { medic, sentinel, vault, lineage, getSettings, log });
    // couch-request (4.20+) adds this to every request to another host
    this.userAgent = `Community Health Toolkit/${chtVersion || 'unknown'} (${os.platform()},${os.arch()})`;
    this.pollMs = pollMs;
    this.retryMs = retryMs;
    this.timeoutMs = timeoutMs || OUTBOUND_REQ_TIMEOUT;
    this.deliverTwice = !!deliverTwice;
    this.attempts = [];
    this.attemptCounter = 0;
    this.chain = Promise.resolve();
    this.seq = 0;
    this.timers = [];
    this.pollQueued = false;
    this.retryQueued = false;
  }

  // sentinel works one thing at a time: polls, retries and flushes share this
  exclusive(fn) {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => {});
    return p;
  }

  configs() {
    const outbound = this.getSettings().outbound;
    return outbound && typeof outbound === 'object' ? outbound : {};
  }

  transitionEnabled(name) {
    const t = this.getSettings().transitions;
    const v = t && t[name];
    if (!v) {
      return false;
    }
    return !(typeof v === 'object' && v.disable);
  }

  outboundActive() {
    return this.transitionEnabled('mark_for_outbound') && Object.keys(this.configs()).length > 0;
  }

  record(entry) {
    const full = { n: ++this.attemptCounter, at: new Date().toISOString(), ...entry };
    this.attempts.push(full);
    if (this.attempts.length > MAX_ATTEMPTS_KEPT) {
      this.attempts.splice(0, this.attempts.length - MAX_ATTEMPTS_KEPT);
    }
    const delivery = entry.delivery ? ` delivery=${entry.delivery}` : '';
    const code = entry.error_code ? ` error=${entry.error_code}` : '';
    const redirected = entry.redirected_to ? ' redirected=true' : '';
    this.log(`outbound push source=${entry.source} doc=${entry.doc_id} config=${entry.config} status=${entry.status}${delivery}${redirected}${code}`);
    return full;
  }

  // --- life cycle ---

  async start() {
    const meta = await this.sentinel.get(SEQ_DOC);
    this.seq = meta && meta.processed_seq !== undefined ? meta.processed_seq : 0;
    this.savedSeq = this.seq;
    this.timers.push(setInterval(() => this.schedulePoll(), this.pollMs));
    this.timers.push(setInterval(() => this.scheduleRetry(), this.retryMs));
    this.schedulePoll();
  }

  async stop() {
    this.timers.forEach(clearInterval);
    this.timers = [];
    await this.chain;
  }

  schedulePoll() {
    if (this.pollQueued) {
      return;
    }
    this.pollQueued = true;
    this.exclusive(async () => {
      this.pollQueued = false;
      await this.pollChanges();
    }).catch((err) => this.log(`changes poll failed: ${err.message}`));
  }

  scheduleRetry() {
    if (this.retryQueued) {
      return;
    }
    this.retryQueued = true;
    this.exclusive(async () => {
      this.retryQueued = false;
      await this.runQueue();
    }).catch((err) => this.log(`outbound retry failed: ${err.message}`));
  }

  async flush({ changes = true, retry = true } = {}) {
    const start = this.attemptCounter;
    const processed = await this.exclusive(async () => {
      const n = changes ? await this.pollChanges() : 0;
      if (retry) {
        await this.runQueue();
      }
      return n;
    });
    const attempts = this.attempts.filter((a) => a.n > start);
    const brief = (a) => ({ doc_id: a.doc_id, config: a.config, status: a.status, source: a.source });
    return {
      processed_changes: processed,
      pushed: attempts.filter((a) => a.sent && a.ok).map(brief),
      failed: attempts.filter((a) => !a.ok).map(brief),
      unchanged: attempts.filter((a) => a.status === 'unchanged').map(brief),
      attempts,
      backlog: await this.backlog(),
    };
  }

  // --- sentinel: the changes feed ---

  async saveSeq() {
    if (this.savedSeq === this.seq) {
      return;
    }
    for (let i = 0; i < 5; i++) {
      const existing = await this.sentinel.get(SEQ_DOC);
      const doc = { ...(existing || { _id: SEQ_DOC }), processed_seq: this.seq };
      const r = await this.sentinel.put(doc);
      if (!r.conflict) {
        this.savedSeq = this.seq;
        return;
      }
    }
  }

  // Processes every change after the stored seq; returns how many.
  async pollChanges() {
    let processed = 0;
    for (;;) {
      const res = await this.medic.changes({ since: this.seq, limit: CHANGES_BATCH });
      const results = res.results || [];
      let failed = false;
      for (const change of results) {
        try {
          await this.processChange(change);
        } catch (err) {
          // like sentinel: don't move past a change that could not be processed
          this.log(`could not process change for ${change.id}: ${err.message}`);
          failed = true;
          break;
        }
        this.seq = change.seq;
        processed++;
      }
      if (!failed && results.length < CHANGES_BATCH) {
        this.seq = res.last_seq !== undefined ? res.last_seq : this.seq;
      }
      await this.saveSeq();
      if (failed || results.length < CHANGES_BATCH) {
        return processed;
      }
    }
  }

  async processChange(change) {
    if (!change.id || change.id.startsWith('_design/') || change.deleted || !change.doc || change.doc._deleted) {
      return;
    }
    const doc = change.doc;
    const changed = this.transitionEnabled('generate_shortcode_on_contacts') && await this.addShortcode(doc);
    if (this.outboundActive()) {
      const [hydrated] = await this.lineage.hydrateDocs([doc]);
      await this.markForOutbound(hydrated, 'changes');
    }
    if (changed) {
      const r = await this.medic.put(doc);
      if (r.conflict) {
        this.log(`shortcode for ${doc._id} not saved (conflict); the next change retries`);
      }
    }
  }

  // generate_shortcode_on_contacts: persons get patient_id, places place_id
  async addShortcode(doc) {
    const HARDCODED_PLACES = ['district_hospital', 'health_center', 'clinic'];
    const types = this.getSettings().contact_types;
    const typeId = doc.type === 'contact' ? doc.contact_type : doc.type;
    let isPerson;
    if (Array.isArray(types) && types.length) {
      const def = types.find((t) => t.id === typeId);
      if (!def) {
        return false;
      }
      isPerson = !!def.person;
    } else if (typeId === 'person') {
      isPerson = true;
    } else if (HARDCODED_PLACES.includes(typeId)) {
      isPerson = false;
    } else {
      return false;
    }
    const field = isPerson ? 'patient_id' : 'place_id';
    if (doc[field]) {
      return false;
    }
    const code = await this.uniqueShortcode();
    if (!code) {
      return false;
    }
    doc[field] = code;
    return true;
  }

  // transitions/lib/ids.js: 200 random candidates of 4 digits plus a check
  // digit (weighted sum mod 11, 10 -> 0); the first one medic/docs_by_shortcode
  // does not know is used. (CHT lengthens the codes when a batch is all taken;
  // the stand-in gives up.)
  async uniqueShortcode() {
    const candidates = new Set();
    while (candidates.size < 200) {
      candidates.add(withCheckDigit(String(crypto.randomInt(0, 10000)).padStart(4, '0')));
    }
    const keys = [...candidates];
    const result = await this.medic.query('medic/docs_by_shortcode', { keys });
    const used = new Set((result.rows || []).map((r) => r.key));
    return keys.find((k) => !used.has(k));
  }

  // --- the mark_for_outbound transition ---

  // Records API: the transition runs on the new (not yet saved) doc before
  // the API answers. Never fails the API call.
  async apiTransition(doc) {
    if (!this.outboundActive()) {
      return;
    }
    try {
      const [hydrated] = await this.lineage.hydrateDocs([doc]);
      await this.markForOutbound(hydrated, 'api');
    } catch (err) {
      this.log(`mark_for_outbound failed for ${doc._id}: ${err.message}`);
    }
  }

  async markForOutbound(doc, source) {
    const configs = this.configs();
    const relevant = [];
    for (const key of Object.keys(configs)) {
      const conf = configs[key];
      let match;
      try {
        match = conf && conf.relevant_to && vm.runInNewContext(conf.relevant_to, { doc }, { timeout: VM_TIMEOUT });
      } catch (err) {
        // as in CHT, a throwing relevant_to aborts the transition for this
        // doc (nothing sent, nothing queued); the feed moves on
        this.log(`mark_for_outbound: relevant_to of '${key}' threw for ${doc._id}: ${err.message}`);
        return;
      }
      if (match) {
        relevant.push([conf, key]);
      }
    }
    const failedKeys = [];
    for (const [conf, key] of relevant) {
      // `cron` is ignored: every push is attempted immediately
      try {
        await this.send(conf, key, doc, source);
      } catch {
        failedKeys.push(key);
      }
    }
    if (failedKeys.length) {
      await this.queueTask(doc._id, failedKeys);
    }
  }

  async queueTask(docId, failedKeys) {
    const _id = `task:outbound:${docId}`;
    const existing = await this.sentinel.get(_id);
    if (existing) {
      // CHT: "TODO: deal with either ignoring or topping up existing queue"
      this.log(`${_id} already exists, ignoring`);
      return;
    }
    this.log(`Creating outbound task ${_id}`);
    const r = await this.sentinel.put({ _id, type: 'task:outbound', created: Date.now(), doc_id: docId, queue: failedKeys });
    if (r.conflict) {
      this.log(`${_id} already exists, ignoring`);
    }
  }

  // --- outbound.send ---

  async getInfo(docId) {
    return (await this.sentinel.get(`${docId}-info`)) || null;
  }

  async addCompletedTask(docId, task) {
    for (let i = 0; i < 10; i++) {
      const now = new Date().toISOString();
      const info = (await this.getInfo(docId)) || {
        _id: `${docId}-info`, type: 'info', doc_id: docId, initial_replication_date: now,
      };
      info.latest_replication_date = now;
      info.completed_tasks = info.completed_tasks || [];
      info.completed_tasks.push(task);
      const r = await this.sentinel.put(info);
      if (!r.conflict) {
        return;
      }
    }
    throw new Error(`could not update ${docId}-info (conflicts)`);
  }

  // true = sent, false = identical to the last payload sent; throws on failure
  async send(conf, key, doc, source) {
    const base = { source, doc_id: doc._id, config: key };
    let payload;
    try {
      payload = mapDocumentToPayload(doc, conf, key);
    } catch (err) {
      this.record({ ...base, status: 'mapping_error', ok: false, sent: false, error: err.message });
      throw err;
    }
    if (alreadySent(payload, key, await this.getInfo(doc._id))) {
      this.record({ ...base, status: 'unchanged', ok: true, sent: false });
      return false;
    }
    await this.sendPayload(payload, conf, base);
    await this.addCompletedTask(doc._id, { type: 'outbound', name: key, timestamp: Date.now(), hash: hashPayload(payload) });
    return true;
  }

  async fetchPassword(key) {
    const password = await this.vault.getCredentials(key);
    if (!password) {
      throw new OutboundError(`Credentials for '${key}' have not been configured. See the Outbound documentation.`);
    }
    return password;
  }

  async authenticate(conf, headers) {
    const authConf = conf.destination.auth;
    if (!authConf) {
      return '';
    }
    if (!authConf.type) {
      throw new OutboundError('No auth.type, either declare the type or omit the auth property');
    }
    const type = String(authConf.type).toLowerCase();
    if (type === 'basic') {
      const password = await this.fetchPassword(authConf.password_key);
      headers.authorization = 'Basic ' + Buffer.from(`${authConf.username}:${password}`).toString('base64');
      return '';
    }
    if (type === 'header') {
      if (authConf.name && authConf.name.toLowerCase() === 'authorization') {
        headers.authorization = await this.fetchPassword(authConf.value_key);
        return '';
      }
      throw new OutboundError(`Unsupported header name '${authConf.name}'. Supported: authorization`);
    }
    if (type === 'muso-sih') {
      const password = await this.fetchPassword(authConf.password_key);
      const res = await fetch(urlJoin(conf.destination.base_url, authConf.path), {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': this.userAgent,
        },
        body: new URLSearchParams({ login: authConf.username, password }).toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const result = await responseBody(res);
      if (!isSuccess(res.status)) {
        throw new OutboundError(`${res.status} from the muso-sih auth request`);
      }
      if (!result || result.statut !== 200) {
        throw new OutboundError(`Got ${result && result.statut} when requesting auth`);
      }
      return '?' + new URLSearchParams({ token: result.data.username_token }).toString();
    }
    throw new OutboundError(`Invalid auth type '${authConf.type}'. Supported: basic, header, muso-sih`);
  }

  // outbound.sendPayload through couch-request: POST with global fetch
  // (redirects followed as fetch does: 301/302/303 turn a POST into a GET
  // without body, 307/308 repeat the POST), JSON body and headers, then the
  // success rule on the FINAL response; a body announced as JSON that does not
  // parse (e.g. an empty 200/204 with Content-Type: application/json) makes
  // the push fail, as couch-request's response.json() throws.
  async sendPayload(payload, conf, base) {
    const headers = { accept: 'application/json', 'content-type': 'application/json', 'user-agent': this.userAgent };
    let url;
    let query;
    try {
      if (!conf.destination) {
        throw new OutboundError('No destination configured');
      }
      url = urlJoin(conf.destination.base_url, conf.destination.path);
      query = await this.authenticate(conf, headers);
    } catch (err) {
      const status = err.name === 'TimeoutError' ? 'timeout' : err instanceof OutboundError ? 'config_error' : 'network_error';
      this.record({ ...base, status, ok: false, sent: false, error: err.message, error_code: err.cause && err.cause.code });
      throw err;
    }
    const body = JSON.stringify(payload);
    const deliveries = this.deliverTwice ? 2 : 1;
    let lastError = null;
    for (let i = 1; i <= deliveries; i++) {
      const delivery = this.deliverTwice ? `${i}/${deliveries}` : undefined;
      try {
        const res = await fetch(url + query, {
          method: 'POST', headers, body, redirect: 'follow', signal: AbortSignal.timeout(this.timeoutMs),
        });
        const redirected = res.redirected ? { redirected_to: redactUrl(res.url) } : {};
        let ok = isSuccess(res.status);
        let bodyError;
        try {
          await responseBody(res);
        } catch (err) {
          bodyError = err;
          ok = false;
        }
        this.record({
          ...base, status: res.status, ok, sent: true, delivery, ...redirected,
          ...(bodyError ? { error: `response body is not JSON: ${bodyError.message}`, error_code: 'invalid_json' } : {}),
        });
        lastError = ok ? null : new OutboundError(`Failed to push ${base.doc_id} to ${base.config}, server responsed with ${res.status}`);
      } catch (err) {
        const timeout = err.name === 'TimeoutError' || err.name === 'AbortError';
        const code = err.cause && err.cause.code;
        this.record({ ...base, status: timeout ? 'timeout' : 'network_error', ok: false, sent: true, delivery, error: err.message, error_code: code });
        lastError = err;
      }
    }
    if (lastError) {
      throw lastError;
    }
  }

  // --- sentinel/src/schedule/outbound.js ---

  async runQueue() {
    const configs = this.configs();
    if (!Object.keys(configs).length) {
      return;
    }
    const result = await this.sentinel.allDocs({
      startkey: 'task:outbound:', endkey: 'task:outbound:\ufff0', include_docs: true,
    });
    const tasks = result.rows.map((r) => r.doc).filter((d) => d && Array.isArray(d.queue));
    for (const task of tasks) {
      const row = (await this.medic.allDocs({ keys: [task.doc_id], include_docs: true })).rows[0];
      if (!row || !row.doc) {
        // The records API queues a failed push before it saves the doc: a
        // young task whose doc does not exist yet is left alone.
        const young = Date.now() - (task.created || 0) < TASK_GRACE_MS;
        if (row && row.error === 'not_found' && young) {
          continue;
        }
        if (row && (row.error === 'not_found' || (row.value && row.value.deleted))) {
          this.log(`Task ${task._id} failed to load ${task.doc_id}; deleting the task`);
          await this.sentinel.put({ ...task, _deleted: true });
        }
        continue;
      }
      const [doc] = await this.lineage.hydrateDocs([row.doc]);
      for (const key of [...task.queue]) {
        const conf = configs[key];
        if (!conf) {
          this.log(`Unable to push ${doc._id} for ${key} because this outbound config no longer exists, clearing task`);
          await this.removeConfigKeyFromTask(task, key);
          continue;
        }
        try {
          await this.send(conf, key, doc, 'retry');
        } catch {
          continue; // stays queued for the next run
        }
        await this.removeConfigKeyFromTask(task, key);
      }
    }
  }

  async removeConfigKeyFromTask(task, key) {
    task.queue.splice(task.queue.indexOf(key), 1);
    if (task.queue.length === 0) {
      task._deleted = true;
    }
    const r = await this.sentinel.put(task);
    if (r.conflict) {
      this.log(`could not update ${task._id} (conflict)`);
      return;
    }
    task._rev = r.rev;
  }

  async backlog() {
    const result = await this.sentinel.allDocs({ startkey: 'task:outbound:', endkey: 'task:outbound:\ufff0' });
    return result.rows.length;
  }
}
