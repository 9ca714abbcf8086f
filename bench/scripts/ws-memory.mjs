// Per-connection and per-subscription memory of a running ward, as RSS slopes: opens 2 × N
// initialised websocket connections, then subscribes each, then sends two ticket changes.
//
//   target/release/ward &                                       # the embedded default
//   node bench/scripts/ws-memory.mjs "$(target/release/ward token --email manager@demo.test)" [N]
//
// Needs the `ws` package of tests/clients (`cd tests/clients && npm ci`).
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';

const require = createRequire(new URL('../../tests/clients/package.json', import.meta.url));
const WebSocket = require('ws');
const [token, n = '1000', url = 'http://127.0.0.1:8080'] = process.argv.slice(2);
const N = Number(n);
const pid = execSync("pgrep -f 'ward( serve)?$' | head -1").toString().trim();
const rss = () => Number(execSync(`grep VmRSS /proc/${pid}/status`).toString().split(/\s+/)[1]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const graphql = async (query) =>
  (await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  })).json();

const sockets = [];
async function open(count) {
  for (let done = 0; done < count; done += 100) {
    const batch = Array.from({ length: Math.min(100, count - done) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/graphql/ws`, 'graphql-transport-ws');
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } })));
      ws.on('message', (m) => { if (String(m).includes('connection_ack')) resolve(ws); });
      ws.on('error', reject);
    }));
    sockets.push(...await Promise.all(batch));
  }
}
function subscribe(from, to) {
  const query = 'subscription { ticketUpdates { eventId ticket { title } } }';
  for (let i = from; i < to; i++) sockets[i].send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query } }));
}
async function change(title) {
  const { data } = await graphql('{ tickets(first: 1) { nodes { id version } } }');
  const t = data.tickets.nodes[0];
  await graphql(`mutation { updateTicket(id: "${t.id}", expectedVersion: ${t.version}, input: { title: "${title}" }) { id } }`);
}

const r0 = rss();
await open(N); await sleep(2000); const r1 = rss();
await open(N); await sleep(2000); const r2 = rss();
subscribe(0, N); await sleep(3000); const r3 = rss();
subscribe(N, 2 * N); await sleep(3000); const r4 = rss();
let received = 0;
for (const ws of sockets) ws.on('message', () => { received += 1; });
await change('memory probe 1'); await sleep(3000); const r5 = rss();
console.log(JSON.stringify({
  connections: 2 * N,
  kib_per_connection: (r2 - r1) / N,
  kib_per_subscription: (r4 - r3) / N,
  kib_per_subscriber_after_an_update: (r5 - r4) / (2 * N),
  updates_received: received,
  rss_kib: { r0, r1, r2, r3, r4, r5 },
}));
process.exit(0);
