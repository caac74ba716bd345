// A real TLS server presenting the certificate it is given, answering every request 200 with a
// small FHIR CapabilityStatement: the upstream whose certificate tests/tls_pinning.rs trusts or
// refuses. Prints `listening <port>` once it accepts connections.
//
// Usage: node tls-server.mjs <cert.pem> <key.pem>
import https from 'node:https';
import { readFileSync } from 'node:fs';

const [certPath, keyPath] = process.argv.slice(2);
const server = https.createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, (req, res) => {
  res.writeHead(200, { 'content-type': 'application/fhir+json' });
  res.end(JSON.stringify({ resourceType: 'CapabilityStatement', fhirVersion: '4.0.1', status: 'active' }));
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
