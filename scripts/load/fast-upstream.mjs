// A minimal, fast stand-in for the FHIR server (and CHT) in load tests: answers at once, and the
// way a FHIR server must — so the mediator's checks of the answers pass and the latency measured is
// the mediator's own:
// - `GET /metadata`: a CapabilityStatement with update-as-create and the batch and transaction
//   interactions (what HFS declares), so `FHIR_WRITE_MODE=auto` picks client ids;
// - `GET [type]/[id]`: that resource; a search: an empty searchset;
// - `PUT [type]/[id]`: 201 with the resource as stored;
// - `POST /` a transaction or batch Bundle: a transaction-response / batch-response with one
//   answer per entry (a 2xx status; GETs answered as above). An answer with fewer entries is a
//   failure to the mediator, as it must be.
import http from 'node:http';

const port = Number(process.argv[2] || 6190);
const types = ['Patient', 'Encounter', 'Observation', 'Task', 'ServiceRequest', 'Organization', 'Endpoint'];
const capabilities = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  kind: 'instance',
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [
    {
      mode: 'server',
      resource: types.map((type) => ({ type, updateCreate: true, conditionalUpdate: true })),
      interaction: [{ code: 'transaction' }, { code: 'batch' }],
    },
  ],
};
const searchset = { resourceType: 'Bundle', type: 'searchset', total: 0, entry: [] };

// The answer to GET `url` (relative, with or without a query).
function read(url) {
  const [path] = url.split('?');
  const parts = path.replace(/^\//, '').split('/');
  if (path === '/metadata' || path === 'metadata') return [200, capabilities];
  if (parts.length === 2 && types.includes(parts[0])) return [200, { resourceType: parts[0], id: parts[1], meta: { versionId: '1' } }];
  return [200, searchset];
}

function bundleAnswer(bundle) {
  const batch = bundle.type === 'batch';
  const entry = (bundle.entry || []).map((e) => {
    const method = e.request?.method;
    if (method === 'GET') {
      const [status, resource] = read(e.request.url);
      return { resource, response: { status: `${status} OK` } };
    }
    if (method === 'DELETE') return { response: { status: '204 No Content' } };
    return { response: { status: '201 Created', etag: 'W/"1"' } };
  });
  return { resourceType: 'Bundle', type: batch ? 'batch-response' : 'transaction-response', entry };
}

const json = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'PUT') {
        let resource = {};
        try {
          resource = JSON.parse(Buffer.concat(chunks).toString());
        } catch {}
        return json(res, 201, { ...resource, meta: { versionId: '1' } });
      }
      if (req.method === 'POST') {
        let bundle = {};
        try {
          bundle = JSON.parse(Buffer.concat(chunks).toString());
        } catch {}
        if (bundle.resourceType === 'Bundle') return json(res, 200, bundleAnswer(bundle));
        return json(res, 201, { ...bundle, id: 'x', meta: { versionId: '1' } });
      }
      const [status, body] = read(req.url);
      return json(res, status, body);
    });
  })
  .listen(port, '127.0.0.1');
