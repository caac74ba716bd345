// A real OAuth2 token endpoint for tests/fhir_auth.rs, built on @node-oauth/oauth2-server (the
// library does the client authentication, the grant and the token checks; this file only wires
// it to node:http and keeps the tokens in memory). Prints `listening <port>` once it accepts.
//
// Usage: node token-server.mjs <install dir> <client id> <client secret> <expires_in seconds>
// (the install dir is what tests/support/token-server-install.sh prints).
//
//   POST /token       the client_credentials grant, only for that client id and secret (Basic
//                     or form credentials); others get invalid_client (401 with Basic)
//   POST /introspect  RFC 7662: `token=…` → {"active": true|false}, checked by the library
//                     (known, not expired); what the stand-in FHIR server asks
//   GET  /stats       {"issued", "refused", "basic", "post", "scopes", "tokens"} — what the
//                     tests count (and the tokens, which they check never reach a log)
//   POST /revoke-all  forgets every token issued (a server that revoked them early)
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const [installDir, clientId, clientSecret, expiresIn] = process.argv.slice(2);
const require = createRequire(path.join(installDir, 'package.json'));
const OAuth2Server = require('@node-oauth/oauth2-server');
const { Request, Response } = OAuth2Server;

const tokens = new Map();
const stats = { issued: 0, refused: 0, basic: 0, post: 0, scopes: [], tokens: [] };
const client = { id: clientId, grants: ['client_credentials'] };

const oauth = new OAuth2Server({
  accessTokenLifetime: Number(expiresIn),
  model: {
    async getClient(id, secret) {
      const ok = id === clientId && secret === clientSecret;
      if (!ok) stats.refused += 1;
      return ok ? client : null;
    },
    async getUserFromClient() {
      return { id: 'system' };
    },
    async saveToken(token, savedClient, user) {
      const saved = { ...token, client: savedClient, user };
      tokens.set(token.accessToken, saved);
      stats.issued += 1;
      stats.tokens.push(token.accessToken);
      return saved;
    },
    async getAccessToken(accessToken) {
      return tokens.get(accessToken) ?? null;
    },
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()))));
  });
}

// With a length, not chunked: the tests' introspection client reads the body as it comes.
function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function token(req, res) {
  const body = await readForm(req);
  stats[req.headers.authorization ? 'basic' : 'post'] += 1;
  if (body.scope) stats.scopes.push(body.scope);
  const request = new Request({ method: req.method, headers: req.headers, query: {}, body });
  const response = new Response();
  try {
    await oauth.token(request, response);
  } catch {
    // The library has written the error answer (status, `error`, `error_description`) into `response`.
  }
  send(res, response.status, response.body, response.headers);
}

async function introspect(req, res) {
  const { token: presented } = await readForm(req);
  const request = new Request({
    method: 'GET',
    headers: { authorization: `Bearer ${presented ?? ''}` },
    query: {},
  });
  try {
    const found = await oauth.authenticate(request, new Response());
    send(res, 200, { active: true, client_id: found.client.id, exp: Math.floor(found.accessTokenExpiresAt / 1000) });
  } catch {
    send(res, 200, { active: false });
  }
}

const server = http.createServer((req, res) => {
  const route = `${req.method} ${req.url}`;
  const handle =
    {
      'POST /token': token,
      'POST /introspect': introspect,
      'GET /stats': async () => send(res, 200, stats),
      'POST /revoke-all': async () => {
        tokens.clear();
        send(res, 200, {});
      },
    }[route] ?? (async () => send(res, 404, { error: 'not_found' }));
  handle(req, res).catch((e) => send(res, 500, { error: 'server_error', error_description: String(e) }));
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
