// Compares the snapshots snapshots.mjs wrote with the ones HAPI generated (HapiSnapshots.java),
// each against its own base definitions: HAPI's R4 core (hapi-fhir-validation-resources-r4, from
// the XML) differs from the JSON one in whitespace and a few technical corrections, so what is
// compared is what each generator CHANGED in each element relative to its base.
//
//   node hapi-compare.mjs R4_DEFINITIONS_DIR PROFILES_DIR HAPI_OUT_DIR
//
// Prints, per profile, the differences the generators made (element ids on one side only, and per
// element and property the two values where they differ and not just because the bases do),
// then the properties where only the two bases differ; exit 0 either way.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [r4Dir, mineDir, hapiDir] = process.argv.slice(2);
const readJson = (f) => JSON.parse(readFileSync(f, 'utf8'));
const sortKeys = (_, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x);
const canon = (v) => JSON.stringify(v, sortKeys);
const short = (v) => (v === undefined ? '(absent)' : canon(v).slice(0, 400));

const mineBase = new Map();
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  for (const { resource } of readJson(join(r4Dir, file)).entry) {
    if (resource.resourceType === 'StructureDefinition') mineBase.set(resource.type, resource);
  }
}
const hapiBase = new Map();
for (const f of readdirSync(join(hapiDir, 'base'))) {
  const sd = readJson(join(hapiDir, 'base', f));
  hapiBase.set(sd.type, sd);
}

/** The base element an element of a profile of `type` stems from (resource or data type). */
function origin(bases, type, path) {
  const def = bases.get(type);
  if (!def) return undefined;
  const exact = def.snapshot.element.find((e) => e.path === path);
  if (exact) return exact;
  const segments = path.split('.');
  for (let n = segments.length - 1; n > 1; n--) {
    const parent = def.snapshot.element.find((e) => e.path === segments.slice(0, n).join('.'));
    if (parent?.type?.length === 1) return origin(bases, parent.type[0].code, [parent.type[0].code, ...segments.slice(n)].join('.'));
  }
  return undefined;
}

/** What a generator changed in each element of `sd`, relative to its base: id -> {key: value}. */
function deltas(sd, bases) {
  const out = new Map();
  for (const e of sd.snapshot.element) {
    const o = origin(bases, sd.type, e.path) ?? {};
    const d = {};
    for (const k of new Set([...Object.keys(e), ...Object.keys(o)])) {
      if (k === 'id' || k === 'path') continue;
      if (canon(e[k]) !== canon(o[k])) d[k] = e[k];
    }
    out.set(e.id, d);
  }
  return out;
}

// Whitespace differs between the XML and JSON forms of the core definitions.
const norm = (v) => canon(v === undefined ? null : JSON.parse(JSON.stringify(v), (_, x) => (typeof x === 'string' ? x.replace(/\s+/g, ' ').trim() : x)));

for (const f of readdirSync(hapiDir).filter((f) => f.startsWith('StructureDefinition-')).sort()) {
  const mine = readJson(join(mineDir, f));
  const hapi = readJson(join(hapiDir, f));
  const lines = [];
  const baseOnly = new Map(); // property -> elements where only the two bases differ
  const dm = deltas(mine, mineBase);
  const dh = deltas(hapi, hapiBase);
  const ids = (m) => [...m.keys()];
  const onlyMine = ids(dm).filter((i) => !dh.has(i));
  const onlyHapi = ids(dh).filter((i) => !dm.has(i));
  if (onlyMine.length) lines.push(`elements only in mine: ${onlyMine.join(' ')}`);
  if (onlyHapi.length) lines.push(`elements only in HAPI's: ${onlyHapi.join(' ')}`);
  const common = ids(dm).filter((i) => dh.has(i));
  if (canon(common) !== canon(ids(dh).filter((i) => dm.has(i)))) lines.push('element order differs');
  for (const id of common) {
    const a = mine.snapshot.element.find((e) => e.id === id);
    const b = hapi.snapshot.element.find((e) => e.id === id);
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (norm(a[k]) === norm(b[k])) continue;
      if (canon(dm.get(id)[k]) === canon(dh.get(id)[k])) {
        baseOnly.set(k, [...(baseOnly.get(k) ?? []), id]);
      } else {
        lines.push(`${id} ${k}: mine ${short(a[k])} | HAPI ${short(b[k])}`);
      }
    }
  }
  for (const k of ['mapping']) {
    const [a, b] = [mine[k] ?? [], hapi[k] ?? []];
    const only = (x, y) => x.filter((m) => !y.some((n) => n.identity === m.identity)).map((m) => m.identity);
    if (only(a, b).length || only(b, a).length) {
      lines.push(`StructureDefinition.mapping identities only in mine: [${only(a, b)}], only in HAPI's: [${only(b, a)}]`);
    }
  }
  console.log(`${f}: ${lines.length ? `${lines.length} difference(s)` : 'no difference'} made by the generators`);
  for (const l of lines) console.log(`  ${l}`);
  for (const [k, where] of baseOnly) console.log(`  (the two R4 cores differ, both kept as is: ${k} of ${where.join(' ')})`);
}
