// Writes the `snapshot` of every StructureDefinition in a profiles directory from its
// `differential` and the base FHIR R4 definitions (profiles-resources.json, profiles-types.json).
// No dependencies beyond node.
//
//   node snapshots.mjs R4_DEFINITIONS_DIR PROFILES_DIR [OUT_DIR]
//
// Every StructureDefinition-*.json of PROFILES_DIR is rewritten (into OUT_DIR, default
// PROFILES_DIR) with `snapshot` set (and the base's `mapping` declarations its snapshot uses);
// nothing else of the file changes. Other files are not read or written.
//
// The rules (a subset of FHIR's snapshot generation, enough for profiles without slicing; anything
// outside it is an error, never silently dropped):
// - start from the base definition's snapshot (an R4 core definition, or another profile of the
//   directory, generated first);
// - each differential element is matched to the snapshot element of the same path, in order: the
//   differential must follow the snapshot's element order (as FHIR requires), else it is an error;
//   `x[x]` matches `x[x]`, and a renamed choice `valueQuantity` matches `value[x]` (narrowing its
//   type to Quantity);
// - a path below an element of a complex type (Patient.identifier.system) inserts that type's
//   snapshot elements under the element (ids and paths rebased, `base` kept), as HL7's generator does;
// - the differential's properties are merged into the matched element: min/max (never looser than
//   the base), fixed[x]/pattern[x], binding (replaced; a required binding cannot be weakened),
//   type (narrowed: each code must be one of the base's), short, definition, comment, requirements,
//   label, mustSupport, meaningWhenMissing, orderMeaning, example, minValue[x]/maxValue[x],
//   maxLength (replaced), alias/condition/constraint/mapping (added);
// - element ids are the paths (no slices); slicing, sliceName and contentReference in a
//   differential are refused.
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [r4Dir, profilesDir, outDir = profilesDir] = process.argv.slice(2);
if (!r4Dir || !profilesDir) {
  console.error('usage: node snapshots.mjs R4_DEFINITIONS_DIR PROFILES_DIR [OUT_DIR]');
  process.exit(2);
}

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const clone = (v) => structuredClone(v);

class ProfileError extends Error {}
const fail = (sd, message) => {
  throw new ProfileError(`${sd.id ?? sd.url}: ${message}`);
};

// --- base definitions -----------------------------------------------------------------------
const core = new Map();
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  for (const { resource } of readJson(join(r4Dir, file)).entry) {
    if (resource.resourceType === 'StructureDefinition') core.set(resource.url, resource);
  }
}
const typeDefinition = (code) => core.get(`http://hl7.org/fhir/StructureDefinition/${code}`);

// --- local profiles -------------------------------------------------------------------------
const files = readdirSync(profilesDir)
  .filter((f) => f.startsWith('StructureDefinition-') && f.endsWith('.json'))
  .sort();
const local = new Map(); // url -> { file, sd }
for (const file of files) {
  const sd = readJson(join(profilesDir, file));
  if (sd.resourceType !== 'StructureDefinition') continue;
  local.set(sd.url, { file, sd });
}

// ElementDefinition's properties in their canonical (JSON) order; `x[x]` names match by prefix.
const ELEMENT_ORDER = [
  'id', 'extension', 'modifierExtension', 'path', 'representation', 'sliceName', 'sliceIsConstraining',
  'label', 'code', 'slicing', 'short', 'definition', 'comment', 'requirements', 'alias', 'min', 'max',
  'base', 'contentReference', 'type', 'defaultValue', 'meaningWhenMissing', 'orderMeaning', 'fixed',
  'pattern', 'example', 'minValue', 'maxValue', 'maxLength', 'condition', 'constraint', 'mustSupport',
  'isModifier', 'isModifierReason', 'isSummary', 'binding', 'mapping',
];
const rank = (key) => {
  const exact = ELEMENT_ORDER.indexOf(key);
  if (exact >= 0) return exact;
  const prefixed = ELEMENT_ORDER.findIndex((p) => key.startsWith(p) && /^[A-Z]/.test(key.slice(p.length)));
  if (prefixed >= 0) return prefixed;
  throw new Error(`unknown ElementDefinition property ${key}`);
};
const canonicalOrder = (element) =>
  Object.fromEntries(Object.entries(element).sort(([a], [b]) => rank(a) - rank(b)));

const REPLACED = new Set([
  'short', 'definition', 'comment', 'requirements', 'label', 'mustSupport', 'meaningWhenMissing',
  'orderMeaning', 'maxLength',
]);
const ADDED = new Set(['alias', 'condition']);
const REFUSED = new Set(['slicing', 'sliceName', 'sliceIsConstraining', 'contentReference', 'representation']);
const VALUE_PREFIXES = ['fixed', 'pattern', 'minValue', 'maxValue', 'defaultValue'];
const valuePrefix = (key) => VALUE_PREFIXES.find((p) => key.startsWith(p) && /^[A-Z]/.test(key.slice(p.length)));
const maxNumber = (max) => (max === '*' ? Infinity : Number(max));
const STRENGTH = ['example', 'preferred', 'extensible', 'required'];
const FHIR_TYPE = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const fhirTypeOf = (type) => {
  const ext = (type.extension ?? []).find((e) => e.url === FHIR_TYPE);
  return ext?.valueUrl ?? ext?.valueUri;
};
const capitalised = (code) => code.charAt(0).toUpperCase() + code.slice(1);

/** Merges differential element `diff` into snapshot element `el` (in place). */
function merge(sd, el, diff, renamedType) {
  if (renamedType) el.type = el.type.filter((t) => t.code === renamedType);
  for (const [key, value] of Object.entries(diff)) {
    if (key === 'id' || key === 'path') continue;
    if (REFUSED.has(key)) fail(sd, `${diff.path}: '${key}' in a differential is not supported by this generator`);
    if (key === 'min') {
      if (value < el.min) fail(sd, `${diff.path}: min ${value} is looser than the base's ${el.min}`);
      el.min = value;
    } else if (key === 'max') {
      if (maxNumber(value) > maxNumber(el.max)) fail(sd, `${diff.path}: max ${value} is looser than the base's ${el.max}`);
      el.max = value;
    } else if (REPLACED.has(key)) {
      el[key] = clone(value);
    } else if (ADDED.has(key)) {
      el[key] = [...(el[key] ?? []), ...value.filter((v) => !(el[key] ?? []).includes(v))];
    } else if (key === 'example' || key === 'mapping') {
      el[key] = [...(el[key] ?? []), ...clone(value)];
    } else if (key === 'constraint') {
      const have = new Set((el.constraint ?? []).map((c) => c.key));
      for (const c of value) {
        if (have.has(c.key)) fail(sd, `${diff.path}: constraint ${c.key} already exists in the base`);
        el.constraint = [...(el.constraint ?? []), { ...clone(c), source: c.source ?? sd.url }];
      }
    } else if (key === 'type') {
      el.type = value.map((t) => {
        const base = (el.type ?? []).find((b) => b.code === t.code);
        if (base) return { ...clone(base), ...clone(t) };
        // Element.id, Extension.url...: a System type standing for the FHIR type its
        // structuredefinition-fhir-type extension names; the differential's type replaces it
        // (as HL7's generator does: Extension.url of type uri).
        const system = (el.type ?? []).find((b) => fhirTypeOf(b) === t.code);
        if (!system) fail(sd, `${diff.path}: type ${t.code} is not one of the base's (${(el.type ?? []).map((b) => b.code)})`);
        return clone(t);
      });
    } else if (key === 'binding') {
      const before = el.binding?.strength;
      if (before === 'required' && STRENGTH.indexOf(value.strength) < STRENGTH.indexOf(before)) {
        fail(sd, `${diff.path}: binding ${value.strength} weakens the base's required binding`);
      }
      el.binding = clone(value);
    } else if (valuePrefix(key)) {
      const prefix = valuePrefix(key);
      for (const k of Object.keys(el)) if (valuePrefix(k) === prefix) delete el[k];
      el[key] = clone(value);
    } else {
      fail(sd, `${diff.path}: '${key}' in a differential is not supported by this generator`);
    }
  }
}

// Extensions HL7's generator does not carry from a base element into a profile's
// (ProfileUtilities.NON_INHERITED_ED_URLS; these are the ones R4 core elements carry).
const NON_INHERITED = new Set([
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status',
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version',
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-explicit-type-name',
  'http://hl7.org/fhir/StructureDefinition/elementdefinition-isCommonBinding',
]);
const withoutNonInherited = (holder) => {
  if (!holder?.extension) return;
  holder.extension = holder.extension.filter((e) => !NON_INHERITED.has(e.url));
  if (!holder.extension.length) delete holder.extension;
};
/** A base element as a profile inherits it, as HL7's generator copies it: without the
 *  non-inherited extensions, a contentReference made absolute and each constraint's `source` set
 *  (to the definition it is from), and Resource.id typed `id` (R4 core says `string`, HL7's
 *  generator corrects it). */
function inherited(element, fromUrl) {
  const e = clone(element);
  withoutNonInherited(e);
  withoutNonInherited(e.binding);
  if (e.contentReference?.startsWith('#')) e.contentReference = fromUrl + e.contentReference;
  // A constraint without a source is the definition's own: in the profile it is the base's.
  for (const c of e.constraint ?? []) c.source ??= fromUrl;
  if (e.base?.path === 'Resource.id') {
    for (const t of e.type ?? []) {
      for (const x of t.extension ?? []) if (x.url === FHIR_TYPE && x.valueUrl === 'string') x.valueUrl = 'id';
    }
  }
  return e;
}

/** Inserts the children of `parent` (an element of one complex type, without children yet). */
function expand(sd, elements, index) {
  const parent = elements[index];
  if (parent.contentReference) fail(sd, `${parent.path}: children of a contentReference element are not supported`);
  const codes = (parent.type ?? []).map((t) => t.code);
  if (codes.length !== 1) fail(sd, `${parent.path}: cannot constrain children of an element of types [${codes}]`);
  const [code] = codes;
  const def = typeDefinition(code);
  if (!def?.snapshot) fail(sd, `${parent.path}: no definition of type ${code}`);
  const children = def.snapshot.element.slice(1).map((e) => {
    const rebased = inherited(e, def.url);
    rebased.path = parent.path + e.path.slice(def.type.length);
    rebased.id = rebased.path;
    return rebased;
  });
  elements.splice(index + 1, 0, ...children);
  return def;
}

/** The index of the snapshot element `path` names, expanding types on the way; and the choice
 *  type a renamed choice segment (`valueQuantity`) narrows to. */
function locate(sd, elements, path, typesUsed) {
  const segments = path.split('.');
  if (segments[0] !== elements[0].path) fail(sd, `${path}: does not start with ${elements[0].path}`);
  let index = 0;
  let renamedType;
  for (const segment of segments.slice(1)) {
    const prefix = elements[index].path;
    const childIndex = () => {
      for (let i = index + 1; i < elements.length && elements[i].path.startsWith(prefix + '.'); i++) {
        const rest = elements[i].path.slice(prefix.length + 1);
        if (rest.includes('.')) continue;
        if (rest === segment) return [i, undefined];
        if (rest.endsWith('[x]') && segment.startsWith(rest.slice(0, -3))) {
          const type = (elements[i].type ?? []).find((t) => capitalised(t.code) === segment.slice(rest.length - 3));
          if (type) return [i, type.code];
        }
      }
      return [-1];
    };
    let [found, type] = childIndex();
    const hasChildren = elements[index + 1]?.path.startsWith(prefix + '.');
    if (found < 0 && !hasChildren && index > 0) {
      typesUsed.add(expand(sd, elements, index).url);
      [found, type] = childIndex();
    }
    if (found < 0) fail(sd, `${path}: no element ${segment} under ${prefix}`);
    if (type && elements[found].type.length > 1 && segment !== segments.at(-1)) {
      elements[found].type = elements[found].type.filter((t) => t.code === type);
    }
    index = found;
    renamedType = type;
  }
  return [index, renamedType];
}

function snapshotOf(url, stack = []) {
  const entry = local.get(url);
  if (!entry) {
    const def = core.get(url);
    if (!def?.snapshot) throw new ProfileError(`no snapshot for base definition ${url}`);
    return def;
  }
  const { sd } = entry;
  if (sd.snapshot && entry.generated) return sd;
  if (stack.includes(url)) throw new ProfileError(`circular baseDefinition: ${[...stack, url].join(' -> ')}`);
  if (sd.derivation !== 'constraint') fail(sd, `derivation ${sd.derivation}: only constraints are supported`);
  const base = snapshotOf(sd.baseDefinition, [...stack, url]);
  if (base.type !== sd.type) fail(sd, `type ${sd.type} differs from its base's ${base.type}`);
  const elements = local.has(base.url) ? clone(base.snapshot.element) : base.snapshot.element.map((e) => inherited(e, base.url));
  const typesUsed = new Set([base.url]);
  let previous;
  for (const diff of sd.differential?.element ?? []) {
    if (diff.id !== undefined && diff.id !== diff.path) fail(sd, `${diff.path}: id ${diff.id} is not the path`);
    const [index, renamedType] = locate(sd, elements, diff.path, typesUsed);
    if (previous !== undefined && index <= elements.indexOf(previous)) {
      fail(sd, `${diff.path}: the differential is not in the base's element order (it comes before ${previous.path})`);
    }
    merge(sd, elements[index], diff, renamedType);
    previous = elements[index];
  }
  sd.snapshot = { element: elements.map(canonicalOrder) };
  // The base's mapping declarations, as HL7's generator copies them, and those of the data types
  // whose elements were inserted (their elements use them).
  const used = new Set(elements.flatMap((e) => (e.mapping ?? []).map((m) => m.identity)));
  const declared = [...(sd.mapping ?? [])];
  for (const u of typesUsed) {
    const def = local.get(u)?.sd ?? core.get(u);
    for (const m of def.mapping ?? []) {
      const needed = u === base.url || used.has(m.identity);
      if (needed && !declared.some((d) => d.identity === m.identity)) declared.push(clone(m));
    }
  }
  if (declared.length) sd.mapping = declared;
  entry.generated = true;
  return sd;
}

// The generated parts go where FHIR's JSON order puts them: `mapping` after `fhirVersion`'s
// neighbours (before `kind`), `snapshot` before `differential`.
const SD_ORDER = [
  'resourceType', 'id', 'meta', 'implicitRules', 'language', 'text', 'contained', 'extension',
  'modifierExtension', 'url', 'identifier', 'version', 'name', 'title', 'status', 'experimental', 'date',
  'publisher', 'contact', 'description', 'useContext', 'jurisdiction', 'purpose', 'copyright', 'keyword',
  'fhirVersion', 'mapping', 'kind', 'abstract', 'context', 'contextInvariant', 'type', 'baseDefinition',
  'derivation', 'snapshot', 'differential',
];
const sdOrder = (sd) =>
  Object.fromEntries(
    Object.entries(sd).sort(([a], [b]) => {
      const [ra, rb] = [SD_ORDER.indexOf(a), SD_ORDER.indexOf(b)];
      if (ra < 0 || rb < 0) throw new Error(`unknown StructureDefinition property ${ra < 0 ? a : b}`);
      return ra - rb;
    }),
  );

try {
  for (const entry of local.values()) {
    delete entry.sd.snapshot; // always regenerated from the differential
  }
  mkdirSync(outDir, { recursive: true });
  for (const [url, entry] of local) {
    const sd = snapshotOf(url);
    writeFileSync(join(outDir, entry.file), JSON.stringify(sdOrder(sd), null, 2) + '\n');
  }
} catch (e) {
  if (!(e instanceof ProfileError)) throw e;
  console.error(`fhir-profiles snapshots: ${e.message}`);
  process.exit(1);
}
