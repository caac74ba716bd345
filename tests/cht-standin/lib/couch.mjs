// Tiny CouchDB client over global fetch, always with the admin's credentials.
// Only the calls pouchdb-server 4.2.0 handles safely are used (see
// shared/reference/local-stack.md section 3): never `_changes?filter=_selector`.

export class CouchError extends Error {
  constructor(status, body, what) {
    super(`CouchDB ${what} answered ${status}: ${body && (body.reason || body.error) || ''}`);
    this.status = status;
    this.body = body;
  }
}

const TIMEOUT_MS = 30_000;

export class Couch {
  constructor(url, user, password) {
    this.base = url.replace(/\/+$/, '');
    this.authHeader = user ? 'Basic ' + Buffer.from(`${user}:${password ?? ''}`).toString('base64') : undefined;
  }

  async request(method, path, { body, query, headers = {}, ok = [] } = {}) {
    let url = this.base + path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined) {
          qs.set(k, typeof v === 'string' ? v : JSON.stringify(v));
        }
      }
      url += '?' + qs.toString();
    }
    const h = { Accept: 'application/json', ...headers };
    if (this.authHeader) {
      h.Authorization = this.authHeader;
    }
    let payload;
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, { method, headers: h, body: payload, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (err) {
      const e = new CouchError(503, { reason: err.message }, `${method} ${path.split('?')[0]}`);
      e.unavailable = true;
      throw e;
    }
    const text = await res.text();
    let parsed;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { reason: text };
    }
    if (res.status >= 400 && !ok.includes(res.status)) {
      throw new CouchError(res.status, parsed, `${method} ${path.split('?')[0]}`);
    }
    return { status: res.status, body: parsed };
  }

  db(name) {
    return new Db(this, name);
  }

  // The caller's userCtx from /_session with the caller's own Authorization
  // header, or null when anonymous / wrong credentials.
  async session(authorization) {
    let res;
    try {
      res = await fetch(this.base + '/_session', {
        headers: { Accept: 'application/json', Authorization: authorization },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const e = new CouchError(503, { reason: err.message }, 'GET /_session');
      e.unavailable = true;
      throw e;
    }
    const body = await res.json().catch(() => ({}));
    if (res.status !== 200 || !body.userCtx || !body.userCtx.name) {
      return null;
    }
    return body.userCtx;
  }
}

const enc = (id) => id.startsWith('_design/') || id.startsWith('_local/')
  ? id.slice(0, id.indexOf('/') + 1) + encodeURIComponent(id.slice(id.indexOf('/') + 1))
  : encodeURIComponent(id);

export class Db {
  constructor(couch, name) {
    this.couch = couch;
    this.name = name;
    this.path = '/' + encodeURIComponent(name);
  }

  async ensure() {
    // 412 = exists. Always with admin credentials (an anonymous or non-admin
    // PUT /db crashes pouchdb-server 4.2.0).
    await this.couch.request('PUT', this.path, { ok: [412] });
  }

  async destroy() {
    await this.couch.request('DELETE', this.path, { ok: [404] });
  }

  async info() {
    return (await this.couch.request('GET', this.path)).body;
  }

  // null when missing or deleted
  async get(id) {
    const r = await this.couch.request('GET', `${this.path}/${enc(id)}`, { ok: [404] });
    return r.status === 404 ? null : r.body;
  }

  // {ok, id, rev} or {conflict: true} on 409
  async put(doc) {
    const r = await this.couch.request('PUT', `${this.path}/${enc(doc._id)}`, { body: doc, ok: [409] });
    return r.status === 409 ? { conflict: true } : r.body;
  }

  // {ok, id, rev}; a doc whose _id exists already throws a CouchError 409
  async post(doc) {
    return (await this.couch.request('POST', this.path, { body: doc })).body;
  }

  async allDocs(params) {
    params = { ...params };
    for (const k of ['key', 'startkey', 'endkey']) {
      if (params[k] !== undefined) {
        params[k] = JSON.stringify(params[k]); // CouchDB wants JSON-encoded keys
      }
    }
    if (params.keys) {
      const { keys, ...rest } = params;
      return (await this.couch.request('POST', `${this.path}/_all_docs`, { body: { keys }, query: rest })).body;
    }
    return (await this.couch.request('GET', `${this.path}/_all_docs`, { query: params })).body;
  }

  // GET/POST <db>/_design/<ddoc>/_view/<view>; `view` is "ddoc/view" as in
  // PouchDB's db.query. Keys are JSON-encoded; `keys` goes in a POST body.
  async query(view, params = {}) {
    const [ddoc, name] = view.split('/');
    const path = `${this.path}/_design/${encodeURIComponent(ddoc)}/_view/${encodeURIComponent(name)}`;
    const query = { ...params };
    for (const k of ['key', 'startkey', 'endkey']) {
      if (query[k] !== undefined) {
        query[k] = JSON.stringify(query[k]);
      }
    }
    for (const [k, v] of Object.entries(query)) {
      if (typeof v === 'boolean' || typeof v === 'number') {
        query[k] = String(v);
      }
    }
    if (query.keys) {
      const { keys, ...rest } = query;
      return (await this.couch.request('POST', path, { body: { keys }, query: rest })).body;
    }
    return (await this.couch.request('GET', path, { query })).body;
  }

  async changes({ since, limit }) {
    const query = { include_docs: 'true', since: typeof since === 'string' ? since : String(since) };
    if (limit) {
      query.limit = String(limit);
    }
    return (await this.couch.request('GET', `${this.path}/_changes`, { query })).body;
  }
}
