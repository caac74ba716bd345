// A proxy in front of a server (FHIR, or CHT) that forwards every request at once but holds back
// the ANSWER to `POST HELD_PATH` (default `/`: a FHIR transaction — a `batch` of reads posted there
// is answered at once) for DELAY ms: the write has
// happened when the mediator is killed or gives up, its answer is lost — the situation CHT's
// at-least-once redelivery (or a requester's retry) meets.
//
//   node slow-proxy.mjs TARGET_URL PORT DELAY_MS [HELD_PATH]
import http from 'node:http';

const [target, port, delay, held = '/'] = process.argv.slice(2);
const upstream = new URL(target);
http
  .createServer((req, res) => {
    const sent = [];
    req.on('data', (c) => sent.push(c));
    req.on('end', () => relay(req, Buffer.concat(sent), res));
  })
  .listen(Number(port), '127.0.0.1', () => console.log('listening'));

function isBatch(body) {
  try {
    return JSON.parse(body.toString()).type === 'batch';
  } catch {
    return false;
  }
}

function relay(req, body, res) {
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        const chunks = [];
        answer.on('data', (c) => chunks.push(c));
        answer.on('end', () => {
          const send = () => {
            res.writeHead(answer.statusCode, answer.headers);
            res.end(Buffer.concat(chunks));
          };
          if (req.method === 'POST' && req.url === held && !isBatch(body)) setTimeout(send, Number(delay)); else send();
        });
      },
    );
    forward.on('error', () => { res.writeHead(502); res.end(); });
    forward.end(body);
}
