// soak.mjs: many real TinyBase 10.0.1 clients write through one
// tinysync-server for a while; the server's memory is sampled, and at the
// end every room must have converged (all its clients hold identical
// content hashes). Not part of the test suite: see tests/soak/run.
//
//   node soak.mjs SERVER_BINARY [--clients 1000] [--rooms 100]
//                 [--seconds 180] [--rate 2] [--persist]
//
// --rate is the writes per second of each client. The server binds
// 127.0.0.1 on a free port and is stopped at the end.

import {spawn} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createMergeableStore} from 'tinybase';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';
import {WebSocket} from 'ws';

const args = process.argv.slice(2);
const serverBinary = args.shift();
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const clients = option('clients', 1000);
const rooms = option('rooms', 100);
const seconds = option('seconds', 180);
const rate = option('rate', 2);
const persist = args.includes('--persist');
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const dataDir = mkdtempSync(join(tmpdir(), 'tinysync-soak-'));

const rssMb = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
};

const server = spawn(
  serverBinary,
  ['--host', '127.0.0.1', '--port', '0',
    ...(persist ? ['--data-dir', dataDir] : ['--no-persist'])],
  {stdio: ['ignore', 'pipe', 'inherit']},
);
const port = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (chunk) => {
    out += chunk;
    const match = out.match(/Listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
    if (match) {
      resolve(Number(match[1]));
    }
  });
  server.on('exit', (code) => reject(new Error(`server exited (${code})`)));
});
console.log(`server pid ${server.pid} on port ${port}, ${persist ? 'persisting' : 'relay only'}`);
const rssStart = rssMb(server.pid);

const peers = [];
let errors = 0;
const errorKinds = new Map();
const onError = (error) => {
  errors++;
  const kind = String(error?.message ?? error).replace(/:[^:]*$/, '');
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
};
for (let i = 0; i < clients; i++) {
  const room = `room${i % rooms}`;
  const store = createMergeableStore(`c${i}`);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/${room}`);
  const synchronizer = await createWsSynchronizer(store, ws, 5, undefined, undefined, onError);
  peers.push({room, store, synchronizer});
  if (i % 100 === 99) {
    console.log(`${i + 1} clients connected, server RSS ${rssMb(server.pid).toFixed(1)} MB`);
  }
}
await Promise.all(peers.map((peer) => peer.synchronizer.startSync()));
const rssConnected = rssMb(server.pid);
console.log(`all ${clients} clients syncing in ${rooms} rooms; server RSS ${rssConnected.toFixed(1)} MB`);

let writes = 0;
let peakRss = rssConnected;
const samples = [];
const started = Date.now();
const tick = 1000 / rate;
while (Date.now() - started < seconds * 1000) {
  const round = Date.now();
  for (const peer of peers) {
    const n = Math.floor(Math.random() * 50);
    peer.store.setCell('t', `r${n}`, `c${Math.floor(Math.random() * 5)}`, writes++);
  }
  const rss = rssMb(server.pid);
  peakRss = Math.max(peakRss, rss);
  if (samples.length === 0 || Date.now() - samples.at(-1).at >= 10000) {
    samples.push({at: Date.now(), rss});
    console.log(`${Math.round((Date.now() - started) / 1000)} s: ${writes} writes, server RSS ${rss.toFixed(1)} MB`);
  }
  await pause(Math.max(0, tick - (Date.now() - round)));
}
const elapsed = (Date.now() - started) / 1000;

// Let the last changes travel, then check every room.
let diverged = [];
for (let attempt = 0; attempt < 30; attempt++) {
  await pause(1000);
  const byRoom = new Map();
  for (const peer of peers) {
    const hashes = JSON.stringify(peer.store.getMergeableContentHashes());
    if (!byRoom.has(peer.room)) {
      byRoom.set(peer.room, new Set());
    }
    byRoom.get(peer.room).add(hashes);
  }
  diverged = [...byRoom].filter(([, set]) => set.size > 1).map(([room]) => room);
  if (diverged.length === 0) {
    break;
  }
}

const rssEnd = rssMb(server.pid);
for (const peer of peers) {
  await peer.synchronizer.destroy();
}
server.kill('SIGTERM');
const code = await new Promise((resolve) => server.on('exit', (c) => resolve(c)));
rmSync(dataDir, {recursive: true, force: true});

console.log('');
console.log(`clients ${clients} in ${rooms} rooms, ${elapsed.toFixed(0)} s of writing`);
console.log(`writes ${writes} (${(writes / elapsed).toFixed(0)}/s offered)`);
console.log(`server RSS: start ${rssStart.toFixed(1)} MB, all connected ${rssConnected.toFixed(1)} MB, ` +
  `peak ${peakRss.toFixed(1)} MB, end ${rssEnd.toFixed(1)} MB`);
console.log(`client-side ignored errors: ${errors} ${JSON.stringify([...errorKinds])}`);
console.log(`rooms that did not converge: ${diverged.length}${diverged.length ? ' (' + diverged.slice(0, 5).join(', ') + ')' : ''}`);
console.log(`server exit code after SIGTERM: ${code}`);
process.exit(diverged.length === 0 && code === 0 ? 0 : 1);
