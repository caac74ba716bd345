// Steady-rate load for the soak run: RATE person pushes per second for SECONDS, then a summary.
const [url, rate = '500', seconds = '600'] = process.argv.slice(2);
const perTick = Math.max(1, Math.round(Number(rate) / 20));
let sent = 0, ok = 0, failed = 0, n = 0;
const end = Date.now() + Number(seconds) * 1000;
const tick = setInterval(() => {
  if (Date.now() >= end) {
    clearInterval(tick);
    setTimeout(() => console.log(`soak: sent ${sent}, 2xx ${ok}, other ${failed}`), 2000);
    return;
  }
  for (let i = 0; i < perTick; i++) {
    n += 1;
    sent += 1;
    const body = JSON.stringify({ doc: { _id: `soak-${n}`, type: 'person', role: 'patient', name: 'Soak Patient', sex: 'male' } });
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then((r) => { if (r.ok) ok += 1; else failed += 1; return r.arrayBuffer(); })
      .catch(() => { failed += 1; });
  }
}, 50);
