// A minimal, fast stand-in for the FHIR server (and CHT) in load tests: answers at once, the way
// a FHIR server would — a Patient for reads, an empty searchset for searches, 201 for PUT, a
// transaction-response for POST — so the latency measured is the mediator's own.
import http from 'node:http';

const port = Number(process.argv[2] || 6190);
const json = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url.split('?')[0];
      if (req.method === 'PUT') return json(res, 201, { resourceType: 'Patient', id: 'x' });
      if (req.method === 'POST') return json(res, 200, { resourceType: 'Bundle', type: 'transaction-response', entry: [] });
      if (/^\/Patient\/[^/]+$/.test(path)) return json(res, 200, { resourceType: 'Patient', id: path.split('/')[2] });
      return json(res, 200, { resourceType: 'Bundle', type: 'searchset', entry: [] });
    });
  })
  .listen(port, '127.0.0.1');
