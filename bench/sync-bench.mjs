// sync-bench.mjs: the TinyBase 10.0.1 side of bench/run's sync cases
//
// Does the same work as bench/sync-bench.c through TinyBase's
// createWsSynchronizer (clients, in this process) and createWsServer (a
// child process running this file with --serve), and prints
//
//     RESULT <value>            (initial_sync, idle_rss)
//     RESULT_P50 <ms>           (change_latency)
//     RESULT_P99 <ms>
//     ERROR <text>              (with "RESULT null" when TinyBase fails)
//
// on stdout, INFO lines on stderr.
//
// Usage:
//   node sync-bench.mjs --case initial_sync --cells N [--reps R]
//   node sync-bench.mjs --case change_latency [--samples 2000] [--warmup 200]
//   node sync-bench.mjs --case idle_rss --server tinybase|tinysync
//                       [--ts-server PATH] [--clients 1000] [--rooms 100]
//   node sync-bench.mjs --serve           (TinyBase WsServer, prints PORT n)
//
// idle_rss is the load process for both servers: raw ws clients, only the
// server differs (tinysync-server --no-persist, or --serve here).
//
// SPDX-License-Identifier: MIT
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createMergeableStore } from 'tinybase';
import { createWsSynchronizer } from 'tinybase/synchronizers/synchronizer-ws-client';
import { createWsServer } from 'tinybase/synchronizers/synchronizer-ws-server';
import { WebSocket, WebSocketServer } from 'ws';

const TABLE_ID = 't';
const CELLS_PER_ROW = 10;
const CELL_IDS = Array.from({ length: CELLS_PER_ROW }, (_, j) => `c${j}`);
const COLOURS = ['red', 'green', 'blue', 'amber'];
// Request timeouts in seconds, the same on both sides: 10 s for B (its load
// of 1M cells), 1 s for the first client A, which is
// alone in the room when it starts (its load waits for the whole timeout).
const REQUEST_TIMEOUT = 10;
const A_REQUEST_TIMEOUT = 1;
const SYNC_TIMEOUT_MS = 120000;
// idle_rss opens this many sockets at a time (a GSocketListener backlog is 10:
// more would make the kernel drop SYNs and the clients retry after 1 s)
const CONNECT_BATCH = 8;

// Keep in sync with cell_number()/cell_string() in store-bench.c
const cellNumber = (i, j) => {
  switch (j) {
    case 0: return i;
    case 2: return (i % 1000) / 8;
    case 4: return -(i % 97) || 0;
    case 6: return i * 1.5;
    default: return (i * 7919) % 100000;
  }
};
const cellString = (i, j) => {
  switch (j) {
    case 1: return `name${i}`;
    case 3: return COLOURS[i % 4];
    case 5: return `user-${i % 5000}`;
    case 7: return `x${i % 10}`;
    default: return `note ${i} ok`;
  }
};
const makeTables = (rows) => {
  const table = {};
  for (let i = 0; i < rows; i++) {
    const row = {};
    for (let j = 0; j < CELLS_PER_ROW; j++) {
      row[CELL_IDS[j]] = j % 2 == 0 ? cellNumber(i, j) : cellString(i, j);
    }
    table[`r${i}`] = row;
  }
  return { [TABLE_ID]: table };
};

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const info = (text) => process.stderr.write(`INFO tinybase ${text}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);

// ---- Servers (child processes) ----------------------------------------------

// Runs CMD, waits for a line matching RE on its stdout, returns {child, port}
const startServer = (cmd, cmdArgs, re) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    const onData = (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stdout.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before listening`)));
  });

const startTinyBaseServer = () =>
  startServer(process.execPath, [fileURLToPath(import.meta.url), '--serve'], /PORT (\d+)/);

const startTinySyncServer = (path) =>
  startServer(path, ['--no-persist', '--port', '0'], /Listening on ws:\/\/127\.0\.0\.1:(\d+)\//);

const stopServer = ({ child }) =>
  new Promise((resolve) => {
    child.removeAllListeners('exit');
    if (child.exitCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });

const serve = () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('listening', () => {
    createWsServer(wss);
    process.stdout.write(`PORT ${wss.address().port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
};

// ---- Clients ------------------------------------------------------------------

const openSocket = (url) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });

const connectClient = async (store, url, timeout = REQUEST_TIMEOUT) => {
  const ws = new WebSocket(url);
  const sync = await createWsSynchronizer(store, ws, timeout);
  return { ws, sync };
};

const closeClient = async ({ ws, sync }) => {
  await sync.destroy();
  ws.close();
};

const hashesEqual = (a, b) => a[0] === b[0] && a[1] === b[1];

// ---- initial_sync -------------------------------------------------------------

// A (timeout 1 s: it is alone when it starts) holds the cells and syncs in
// the room for every repetition; each repetition times a fresh client B.
const startA = async (url, rows) => {
  const store = createMergeableStore();
  store.setTables(makeTables(rows));
  const client = await connectClient(store, url, A_REQUEST_TIMEOUT);
  await client.sync.startSync();
  return { store, ...client };
};

const initialSyncOnce = async (a, url, rows) => {
  const want = a.store.getMergeableContentHashes();
  const storeB = createMergeableStore();
  global.gc?.();
  const t0 = nowMs();
  let b, ms;
  try {
    ms = await new Promise((resolve, reject) => {
      let done = false;
      const finish = (err, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        err ? reject(err) : resolve(value);
      };
      const check = () => {
        if (hashesEqual(storeB.getMergeableContentHashes(), want)) finish(null, nowMs() - t0);
      };
      const timer = setTimeout(
        () => finish(new Error(`B did not converge within ${SYNC_TIMEOUT_MS / 1000} s`)),
        SYNC_TIMEOUT_MS,
      );
      const onClose = (who) => (code, reason) =>
        finish(new Error(`client ${who}'s socket closed (code ${code}${reason?.length ? ` ${reason}` : ''})`));
      a.ws.once('close', onClose('A'));
      storeB.addDidFinishTransactionListener(check);
      connectClient(storeB, url, REQUEST_TIMEOUT).then((client) => {
        b = client;
        b.ws.once('close', onClose('B'));
        b.sync.startSync().then(check, (e) => finish(e));
      }, (e) => finish(e));
    });
  } finally {
    a.ws.removeAllListeners('close');
    if (b) await closeClient(b).catch(() => {});
  }
  const got = storeB.getRowCount(TABLE_ID);
  if (got != rows) throw new Error(`B has ${got} rows, want ${rows}`);
  return ms;
};

const initialSync = async () => {
  const cells = Number(opt('cells', 100000));
  const reps = Number(opt('reps', 3));
  const rows = cells / CELLS_PER_ROW;
  const server = await startTinyBaseServer();
  const url = `ws://127.0.0.1:${server.port}/initial`;
  let a;
  try {
    a = await startA(url, rows);
    // warm-up: one uncounted repetition, so that the JIT has compiled the paths
    info(`initial_sync ${cells} cells (warm-up): ${(await initialSyncOnce(a, url, rows)).toFixed(1)} ms`);
    const times = [];
    for (let r = 0; r < reps; r++) {
      const ms = await initialSyncOnce(a, url, rows);
      info(`initial_sync ${cells} cells: ${ms.toFixed(1)} ms`);
      times.push(ms);
    }
    console.log(`RESULT ${median(times)}`);
  } catch (e) {
    info(`initial_sync ${cells} cells failed: ${e.message}`);
    console.log('RESULT null');
    console.log(`ERROR ${e.message}`);
  } finally {
    if (a) await closeClient(a).catch(() => {});
    await stopServer(server);
  }
};

// ---- change_latency -----------------------------------------------------------

const changeLatency = async () => {
  const samples = Number(opt('samples', 2000));
  const warmup = Number(opt('warmup', 200));
  const server = await startTinyBaseServer();
  const url = `ws://127.0.0.1:${server.port}/latency`;
  const storeA = createMergeableStore();
  const storeB = createMergeableStore();
  const a = await connectClient(storeA, url, A_REQUEST_TIMEOUT);
  await a.sync.startSync();
  const b = await connectClient(storeB, url);
  await b.sync.startSync();

  let pending = null;
  storeB.addCellListener(TABLE_ID, 'r0', 'c0', () => {
    if (pending) {
      const p = pending;
      pending = null;
      p(nowMs());
    }
  });
  const lat = [];
  for (let i = 0; i < warmup + samples; i++) {
    const arrived = new Promise((resolve) => (pending = resolve));
    const t0 = nowMs();
    storeA.setCell(TABLE_ID, 'r0', 'c0', i);
    const t1 = await Promise.race([arrived, sleep(5000).then(() => null)]);
    if (t1 === null) throw new Error(`sample ${i}: B saw no change within 5 s`);
    if (i >= warmup) lat.push(t1 - t0);
    await new Promise((r) => setImmediate(r));
  }
  lat.sort((x, y) => x - y);
  const p50 = percentile(lat, 50);
  const p99 = percentile(lat, 99);
  info(`change_latency ${samples} samples: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, max ${lat.at(-1).toFixed(3)} ms`);
  console.log(`RESULT_P50 ${p50}`);
  console.log(`RESULT_P99 ${p99}`);
  await closeClient(a);
  await closeClient(b);
  await stopServer(server);
};

// ---- idle_rss -----------------------------------------------------------------

const rssMb = (pid) => {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) / 1024;
};

const idleRss = async () => {
  const which = opt('server', 'tinybase');
  const clients = Number(opt('clients', 1000));
  const rooms = Number(opt('rooms', 100));
  const server = which == 'tinysync'
    ? await startTinySyncServer(opt('ts-server'))
    : await startTinyBaseServer();
  try {
    await sleep(200);
    const before = rssMb(server.child.pid);
    const sockets = [];
    for (let i = 0; i < clients; i += CONNECT_BATCH) {
      const batch = [];
      for (let k = i; k < Math.min(clients, i + CONNECT_BATCH); k++) {
        batch.push(openSocket(`ws://127.0.0.1:${server.port}/room${k % rooms}`));
      }
      sockets.push(...(await Promise.all(batch)));
    }
    await sleep(1000);
    const open = sockets.filter((s) => s.readyState == WebSocket.OPEN).length;
    if (open != clients) throw new Error(`only ${open} of ${clients} clients still open`);
    const rss = rssMb(server.child.pid);
    process.stderr.write(`INFO ${which} idle_rss: ${clients} clients in ${rooms} rooms: server VmRSS ${rss.toFixed(1)} MB (${before.toFixed(1)} MB before)\n`);
    console.log(`RESULT ${rss}`);
    for (const s of sockets) s.terminate();
  } finally {
    await stopServer(server);
  }
};

// ---- Main ---------------------------------------------------------------------

if (flag('serve')) {
  serve();
} else {
  const kind = opt('case');
  const run = { initial_sync: initialSync, change_latency: changeLatency, idle_rss: idleRss }[kind];
  if (!run) {
    process.stderr.write(`sync-bench.mjs: unknown --case ${kind}\n`);
    process.exit(2);
  }
  run().then(() => process.exit(0), (e) => {
    process.stderr.write(`sync-bench.mjs: ${e.stack}\n`);
    process.exit(1);
  });
}
