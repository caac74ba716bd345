// The FHIR server's own ingest rate for the same work as a patient backfill: N Patients (shaped
// like the mediator's) in transaction Bundles of SIZE, CONCURRENCY at a time. Prints seconds.
const [fhir, run, count, size, concurrency] = process.argv.slice(2);
const patient = (i) => ({
  resourceType: 'Patient', id: `${run}-p${i}`,
  meta: { profile: ['http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-patient'] },
  identifier: [{ use: 'official', type: { text: 'CHT Document ID' }, system: 'https://cht.example.org/fhir/identifier/document-id', value: `${run}-p${i}` }],
  active: true, name: [{ use: 'official', text: `Bench Patient ${i}`, family: String(i), given: ['Bench', 'Patient'] }],
  telecom: [{ system: 'phone', value: '+254700000000', use: 'mobile' }], gender: i % 2 ? 'male' : 'female', birthDate: '1990-01-01',
  extension: [{ url: 'http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-lineage', valueIdentifier: { system: 'https://cht.example.org/fhir/identifier/document-id', value: `${run}-hh` } }],
});
const bundles = [];
for (let i = 0; i < Number(count); i += Number(size)) {
  const entry = [];
  for (let j = i; j < Math.min(i + Number(size), Number(count)); j++) {
    const p = patient(j);
    entry.push({ fullUrl: `${fhir}/Patient/${p.id}`, resource: p, request: { method: 'PUT', url: `Patient/${p.id}` } });
  }
  bundles.push({ resourceType: 'Bundle', type: 'transaction', entry });
}
const start = process.hrtime.bigint();
let next = 0;
const worker = async () => {
  while (next < bundles.length) {
    const bundle = bundles[next++];
    const r = await fetch(fhir, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(bundle) });
    if (!r.ok) throw new Error(`transaction: ${r.status}`);
    await r.arrayBuffer();
  }
};
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
console.log((Number(process.hrtime.bigint() - start) / 1e9).toFixed(3));
