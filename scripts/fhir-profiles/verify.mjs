// The report of scripts/fhir-profiles/verify.sh: reads validate.sh's answers (one JSON line per
// file) and checks them: no error in fhir-profiles/ nor in the snapshots' resources, the fixtures'
// errors as expected-errors.json says. Exit 1 when a check fails.
//
//   node verify.mjs ANSWERS.jsonl SNAPSHOTS_DIR EXPECTED_ERRORS.json
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const [answersFile, snapshotsDir, expectedFile] = process.argv.slice(2);
const answers = readFileSync(answersFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const expected = JSON.parse(readFileSync(expectedFile, 'utf8'));
const where = (i) => `${i.path}${i.resource ? ` (${i.resource})` : ''}`;
let failed = false;

const groups = [
  ['(a) fhir-profiles/', (f) => f.startsWith('fhir-profiles/')],
  ['(b) tests/snapshots resources', (f) => f.startsWith(snapshotsDir)],
  ['(c) tests/fixtures/fhir-profiles', (f) => f.startsWith('tests/fixtures/fhir-profiles/')],
];
for (const [name, member] of groups) {
  const mine = answers.filter((a) => member(a.file));
  const errors = mine.flatMap((a) => a.errors.map((e) => ({ ...e, file: a.file })));
  const warnings = mine.flatMap((a) => a.warnings.map((w) => ({ ...w, file: a.file })));
  console.log(`== ${name}: ${mine.length} files, ${errors.length} errors, ${warnings.length} warnings`);
  const counts = new Map();
  for (const w of warnings) {
    const key = `${w.path.replace(/\[\d+\]/g, '[n]')}: ${w.message.replace(/ '[^']*'/g, " '…'").slice(0, 140)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  warning ×${n} ${k}`);
  if (name.startsWith('(c)')) {
    for (const a of mine) {
      const want = expected[basename(a.file)];
      if (!want) {
        console.log(`  FAIL ${a.file}: not in expected-errors.json`);
        failed = true;
        continue;
      }
      const texts = a.errors.map((e) => `${e.path}: ${e.message}`);
      const missing = want.filter((w) => !texts.some((t) => t.includes(w)));
      const ok = missing.length === 0 && (want.length > 0 || texts.length === 0);
      failed ||= !ok;
      console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${basename(a.file)}: ${texts.length} error(s)${missing.length ? `; missing ${JSON.stringify(missing)}` : ''}`);
      for (const t of texts) console.log(`         ${t.slice(0, 220)}`);
    }
  } else {
    for (const e of errors) console.log(`  ERROR ${e.file}: ${where(e)}: ${e.message}`);
    failed ||= errors.length > 0;
  }
}
const seen = new Set(answers.map((a) => a.file));
for (const f of Object.keys(expected)) {
  if (![...seen].some((s) => basename(s) === f)) {
    console.log(`FAIL expected-errors.json names ${f}, which was not validated`);
    failed = true;
  }
}
console.log(failed ? 'verify: FAILED' : 'verify: ok');
process.exit(failed ? 1 : 0);
