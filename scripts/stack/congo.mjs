// Launches CongoDB, the in-memory MongoDB-wire-protocol server shipped inside
// @push.rocks/smartmongo@2.2.0, for the local test stack (scripts/stack.sh).
//
// Usage: node congo.mjs --smartmongo <dir> [--host 127.0.0.1] [--port 27017]
// (or SMARTMONGO_DIR / CONGO_HOST / CONGO_PORT in the environment).
// <dir> is the untarred smartmongo package (the one holding dist_ts/).
//
// All data lives in memory and is gone when the process exits.

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    smartmongo: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
  },
});

const smartmongoDir = args.smartmongo ?? process.env.SMARTMONGO_DIR;
const host = args.host ?? process.env.CONGO_HOST ?? '127.0.0.1';
const port = Number(args.port ?? process.env.CONGO_PORT ?? 27017);

if (!smartmongoDir) {
  console.error('congo.mjs: --smartmongo <dir> (or SMARTMONGO_DIR) is required');
  process.exit(2);
}
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`congo.mjs: invalid port ${port}`);
  process.exit(2);
}

// An absolute path must be turned into a file:// URL for a dynamic ESM import.
const entry = pathToFileURL(path.resolve(smartmongoDir, 'dist_ts/congodb/index.js')).href;
const { CongoServer, CommandRouter } = await import(entry);

// Two aliases make CongoDB accept what openhim-core 4.0.5 sends (it was written
// for MongoDB <= 3.4), and a third fix makes it refuse what MongoDB refuses:
//
// 1. The MongoDB 2.x driver it bundles sends the command `findandmodify` (all
//    lower case). CongoDB only registers `findAndModify`, and its UpdateHandler
//    reads the collection name from `command.findAndModify`, so both the routed
//    command name and the key inside the command document are renamed. Without
//    this OpenHIM's worker crash-loops at start (agenda and the API use it).
//
// 2. Mongoose 4 saves array appends with the `$pushAll` update operator
//    (removed in MongoDB 3.6; CongoDB answers "Unknown update operator"), e.g.
//    the audit metadata update after every API login. `$pushAll: {f: [a, b]}`
//    means exactly `$push: {f: {$each: [a, b]}}`, which CongoDB supports.

function rewritePushAll(update) {
  if (!update || typeof update !== 'object' || Array.isArray(update) || !('$pushAll' in update)) {
    return update;
  }
  const { $pushAll, ...rest } = update;
  const push = { ...(rest.$push ?? {}) };
  for (const [field, values] of Object.entries($pushAll ?? {})) {
    if (field in push) throw new Error(`$pushAll and $push both set ${field}`);
    push[field] = { $each: values };
  }
  return { ...rest, $push: push };
}

function rewriteUpdateStatements(statements) {
  return Array.isArray(statements) ? statements.map((s) => (s && s.u ? { ...s, u: rewritePushAll(s.u) } : s)) : statements;
}

// 3. CongoDB records unique indexes but its insert never checks them: two
//    channels with one name were stored side by side, where MongoDB refuses the
//    second with E11000 (OpenHIM's channels have a unique index on `name`, and
//    a soft-deleted channel keeps its name — the mediator must cope with that,
//    so the stand-in must refuse as MongoDB does). Inserts are checked here
//    against the collection's unique indexes (other than `_id`, which CongoDB
//    enforces) and refused with MongoDB's error and code.

function keyOf(doc, key) {
  return JSON.stringify(Object.keys(key).map((path) => path.split('.').reduce((v, k) => (v == null ? v : v[k]), doc) ?? null));
}

async function duplicateKeyError(storage, database, collection, documents) {
  const unique = (await storage.getIndexes(database, collection)).filter((i) => i.unique && i.name !== '_id_');
  if (!unique.length) return null;
  const existing = await storage.findAll(database, collection);
  for (const index of unique) {
    const seen = new Set(existing.map((d) => keyOf(d, index.key)));
    for (const doc of documents) {
      const k = keyOf(doc, index.key);
      if (seen.has(k)) {
        const shown = Object.keys(index.key).map((p, i) => `${p}: ${JSON.stringify(JSON.parse(k)[i])}`).join(', ');
        return `E11000 duplicate key error collection: ${database}.${collection} index: ${index.name} dup key: { ${shown} }`;
      }
      seen.add(k);
    }
  }
  return null;
}

const originalRoute = CommandRouter.prototype.route;
CommandRouter.prototype.route = async function routeWithAliases(parsed) {
  try {
    parsed = applyAliases(parsed);
  } catch (err) {
    return { ok: 0, errmsg: err.message, code: 2, codeName: 'BadValue' };
  }
  if (parsed && parsed.commandName === 'insert' && typeof parsed.command?.insert === 'string') {
    const seqs = parsed.documentSequences;
    const documents = (seqs && seqs.has('documents') ? seqs.get('documents') : parsed.command.documents) || [];
    const duplicate = await duplicateKeyError(this.storage, parsed.database, parsed.command.insert, documents);
    if (duplicate) {
      return { ok: 1, n: 0, writeErrors: [{ index: 0, code: 11000, errmsg: duplicate }] };
    }
  }
  return originalRoute.call(this, parsed);
};

function applyAliases(parsed) {
  if (!parsed || !parsed.command) return parsed;
  if (parsed.commandName === 'findandmodify') {
    const { findandmodify: collection, ...rest } = parsed.command;
    // Keep the command name as the first key, as MongoDB expects.
    parsed = { ...parsed, commandName: 'findAndModify', command: { findAndModify: collection, ...rest } };
  }
  if (parsed.commandName === 'findAndModify' && parsed.command.update) {
    parsed = { ...parsed, command: { ...parsed.command, update: rewritePushAll(parsed.command.update) } };
  }
  if (parsed.commandName === 'update') {
    if (parsed.command.updates) {
      parsed = { ...parsed, command: { ...parsed.command, updates: rewriteUpdateStatements(parsed.command.updates) } };
    }
    // OP_MSG may carry the statements as a document sequence instead.
    const seqs = parsed.documentSequences;
    if (seqs && seqs.has('updates')) {
      const copy = new Map(seqs);
      copy.set('updates', rewriteUpdateStatements(seqs.get('updates')));
      parsed = { ...parsed, documentSequences: copy };
    }
  }
  return parsed;
}

const server = new CongoServer({ host, port });
await server.start();
console.log(`CongoDB (smartmongo) listening on mongodb://${host}:${port} (pid ${process.pid})`);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`CongoDB: ${signal} received, stopping`);
  try {
    await server.stop();
  } catch (err) {
    console.error('CongoDB: error while stopping:', err);
  }
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
