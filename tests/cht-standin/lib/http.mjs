// HTTP helpers shared by the stand-in's routes: body reading, content
// negotiation and the error answers cht-core's api/src/server-utils.js gives.

export class HttpError extends Error {
  constructor(code, message, details) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

// An error whose message CHT shows to the caller as `details` of a 500
// (cht-core's PublicError: publicMessage).
export class PublicError extends Error {
  constructor(message) {
    super(message);
    this.publicMessage = message;
  }
}

const MAX_BODY = 32 * 1024 * 1024; // CHT's body-parser limit

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'Payload Too Large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const mediaType = (req) => (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();

// type-is semantics of express' req.is('json') / req.is('text/plain')
export const isJson = (req) => {
  const t = mediaType(req);
  return t === 'application/json' || /^[a-z]+\/[^;]*\+json$/.test(t);
};
export const isTextPlain = (req) => mediaType(req) === 'text/plain';
export const isUrlencoded = (req) => mediaType(req) === 'application/x-www-form-urlencoded';

// body-parser's json(): strict (object or array), empty body gives {}.
export async function readJson(req) {
  const buf = await readBody(req);
  const text = buf.toString('utf8');
  if (!text.trim()) {
    return {};
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, err.message);
  }
  if (parsed === null || typeof parsed !== 'object') {
    throw new HttpError(400, `Unexpected token in JSON: strict mode only accepts objects and arrays`);
  }
  return parsed;
}

// Minimal `negotiator` (what express' req.accepts uses): for each offered type
// take the most specific matching Accept entry; rank by q, specificity,
// position in the Accept header, then position in the offer list. No Accept
// header means the first offer.
export function negotiate(accept, offers) {
  if (!accept) {
    return offers[0];
  }
  const ranges = accept.split(',').map((part, i) => {
    const [range, ...params] = part.trim().split(';');
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k === 'q') {
        q = Number.parseFloat(v);
      }
    }
    const [type = '', subtype = ''] = range.trim().toLowerCase().split('/');
    return { type, subtype, q: Number.isNaN(q) ? 0 : q, i };
  });
  const ranked = [];
  offers.forEach((offer, oi) => {
    const [t, s] = offer.split('/');
    let best = null;
    for (const r of ranges) {
      let spec = 0;
      if (r.type === t) spec |= 4; else if (r.type !== '*') continue;
      if (r.subtype === s) spec |= 2; else if (r.subtype !== '*') continue;
      if (!best || spec > best.spec || (spec === best.spec && r.q > best.q)) {
        best = { q: r.q, spec, i: r.i };
      }
    }
    if (best && best.q > 0) {
      ranked.push({ offer, ...best, oi });
    }
  });
  ranked.sort((a, b) => (b.q - a.q) || (b.spec - a.spec) || (a.i - b.i) || (a.oi - b.oi));
  return ranked.length ? ranked[0].offer : false;
}

// server-utils.wantsJSON: req.accepts(['text', 'json']) === 'json'
export const wantsJSON = (req) => negotiate(req.headers.accept, ['text/plain', 'application/json']) === 'application/json';

export function sendJSON(res, status, body, headers = {}) {
  if (res.headersSent) {
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

export function sendText(res, status, text, headers = {}) {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// server-utils respond(): JSON {code, error, details} when the client prefers
// JSON over text, else "message: details" as text/plain.
export function respond(req, res, code, message, details) {
  if (wantsJSON(req)) {
    return sendJSON(res, code, { code, error: message, details });
  }
  if (message && message.message) {
    message = message.message; // users.js errors carry {message, translationKey, ...}
  }
  let text = typeof message === 'string' ? message : JSON.stringify(message);
  if (details) {
    text += ': ' + JSON.stringify(details);
  }
  return sendText(res, code, text);
}

// server-utils notLoggedIn() for API clients (no browser redirect here).
// showPrompt (the settings API): always the Basic prompt as text.
export function notLoggedIn(req, res, showPrompt = false) {
  const headers = { 'logout-authorization': 'CHT-Core API' };
  if (!showPrompt && wantsJSON(req)) {
    return sendJSON(res, 401, { code: 401, error: 'unauthorized' }, headers);
  }
  return sendText(res, 401, 'not logged in', { ...headers, 'WWW-Authenticate': 'Basic realm="Medic Web Services"' });
}

// server-utils error(): 401 -> notLoggedIn, 5xx -> "Server error" with the
// public message as details, anything else -> the error's message.
export function sendError(req, res, err, log) {
  let code = err.code || err.statusCode || err.status || 500;
  if (!Number.isInteger(code)) {
    code = 500;
  }
  if (code === 401) {
    return notLoggedIn(req, res, !!err.showPrompt);
  }
  if (code >= 500 && code < 600) {
    if (!err.publicMessage && log) {
      log(`server error on ${req.method} ${req.url.split('?')[0]}: ${err.message}`);
    }
    if (code === 503 && err.message) {
      return respond(req, res, 503, err.message);
    }
    return respond(req, res, 500, 'Server error', err.publicMessage);
  }
  return respond(req, res, code, err.message || err.reason, err.details);
}
