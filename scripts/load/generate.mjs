// Bulk-loads N generated CHT patients (run-prefixed ids) into CHT's medic db and prints the
// changes seq just before them, so a backfill `--since` that seq reads exactly these.
const [cht, user, password, run, count] = process.argv.slice(2);
const auth = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
const headers = { authorization: auth, 'content-type': 'application/json', accept: 'application/json' };
const info = await (await fetch(`${cht}/medic`, { headers })).json();
const docs = Array.from({ length: Number(count) }, (_, i) => ({
  _id: `${run}-p${i}`, type: 'person', role: 'patient', name: `Bench Patient ${i}`, sex: i % 2 ? 'male' : 'female',
  date_of_birth: '1990-01-01', phone: '+254700000000', parent: { _id: `${run}-hh` },
}));
for (let i = 0; i < docs.length; i += 500) {
  const r = await fetch(`${cht}/medic/_bulk_docs`, { method: 'POST', headers, body: JSON.stringify({ docs: docs.slice(i, i + 500) }) });
  if (!r.ok) throw new Error(`_bulk_docs: ${r.status}`);
}
console.log(typeof info.update_seq === 'string' ? info.update_seq : String(info.update_seq));
