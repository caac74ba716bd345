// Sends exactly N requests of one kind (the bodies the wrk scripts send), C at a time, and fails
// on any non-2xx: for instruction counts per request (scripts/load-instructions.sh).
//   node scripts/load/send.mjs BASE_URL KIND N [C] [PREFIX]
import http from 'node:http';

const [base, kind, n, c = '4', prefix = 'i'] = process.argv.slice(2);
const bodies = {
  '/patient': (i) => ({ resourceType: 'Patient', identifier: [{ system: 'cht', use: 'official', value: `${prefix}-${i}` }],
    name: [{ use: 'official', family: 'Amina Wanjiru Njeri', given: [null] }], gender: 'female', birthDate: '1990-05-12' }),
  '/encounter': (i) => ({ resourceType: 'Encounter', identifier: [{ system: 'cht', use: 'official', value: `${prefix}-${i}` }],
    status: 'finished', class: 'outpatient', type: [{ text: 'Community health worker visit' }],
    subject: { reference: `Patient/?identifier=${prefix}-${i}` }, participant: [{ type: [{ text: 'Community health worker' }] }] }),
  '/cht/patient': (i) => ({ doc: { _id: `${prefix}-${i}`, type: 'person', role: 'patient', name: 'Load Test Patient', sex: 'female',
    date_of_birth: '1990-05-12', phone: '+254700000000', patient_id: `${i}` } }),
  '/cht/encounter': (i) => ({ doc: { _id: `${prefix}-r${i}`, type: 'data_record', form: 'pregnancy_home_visit', reported_date: 1732000000000,
    fields: { patient_uuid: `${prefix}-${i}`, vitals: { weight: '61.25', muac: 23.5 }, pregnancy: { weeks_pregnant: '24' } } } }),
};
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(c) });
const post = (i) =>
  new Promise((resolve, reject) => {
    const text = JSON.stringify(bodies[kind](i));
    const req = http.request(`${base}${kind}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error(`${kind} ${i}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(text);
  });
let next = 0;
const worker = async () => {
  while (next < Number(n)) await post(next++);
};
await Promise.all(Array.from({ length: Number(c) }, worker));
agent.destroy();
