// soak.mjs: many real TinyBase 10.0.1 clients write through one server
// for a while; the server's memory is sampled, and at the end every room
// must have converged (all its clients hold identical content hashes).
// Not part of the test suite: see tests/soak/run.
//
//   node soak.mjs SERVER_BINARY [--clients 1000] [--rooms 100]
//                 [--seconds 180] [--rate 2] [--persist]
//                 [--server tinysync|tinybase] [--processes 1]
//                 [--request-timeout 5]
//
// --rate is the writes per second of each client; --request-timeout the
// requestTimeoutSeconds of each client's synchronizer. --server tinybase runs
// TinyBase's own WsServer (createWsServer over a ws 8 WebSocketServer) in
// a separate Node process instead of tinysync-server (SERVER_BINARY is
// then unused; --persist is not supported). --processes N spreads the
// clients over N Node processes (client i in room i % rooms, process
// i % N, so every room spans processes). The server binds 127.0.0.1 on a
// free port and is stopped at the end.
//
// The same file is also the TinyBase server (--tinybase-server) and a
// client process (--worker, driven over the fork IPC channel).

import {fork, spawn} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {createMergeableStore} from 'tinybase';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';
import {createWsServer} from 'tinybase/synchronizers/synchronizer-ws-server';
import {WebSocket, WebSocketServer} from 'ws';

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- TinyBase's server ---------------------------------------------------

if (args[0] === '--tinybase-server') {
  const wss = new WebSocketServer({host: '127.0.0.1', port: 0});
  const wsServer = createWsServer(wss);
  wss.on('listening', () => {
    console.log(`Listening on ws://127.0.0.1:${wss.address().port}/`);
  });
  process.on('SIGTERM', () => {
    wsServer.destroy();
    wss.close(() => process.exit(0));
  });
} else if (args[0] === '--worker') {
  await worker();
} else {
  await coordinator();
}

// ---- A client process ----------------------------------------------------

// Receives {port, indexes, rooms, rate}; connects, reports 'connected';
// on 'write' writes for the given seconds and reports 'written'; on
// 'hashes' reports every client's room and content hashes; on 'stop'
// destroys its synchronizers and exits.
async function worker() {
  const peers = [];
  const errorKinds = {};
  let errors = 0;
  let phase = 'start';  // start (connecting, startSync), write, settle
  let received = 0;     // valid messages the clients received
  const onError = (error) => {
    errors++;
    const kind = `${String(error?.message ?? error).replace(/:[^:]*$/, '')} (${phase})`;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const next = () => new Promise((resolve) => process.once('message', resolve));
  const setup = await next();

  for (const i of setup.indexes) {
    const room = `room${i % setup.rooms}`;
    const store = createMergeableStore(`c${i}`);
    const ws = new WebSocket(`ws://127.0.0.1:${setup.port}/${room}`);
    const synchronizer = await createWsSynchronizer(store, ws, setup.requestTimeout, undefined,
      () => received++, onError);
    peers.push({room, store, synchronizer});
  }
  await Promise.all(peers.map((peer) => peer.synchronizer.startSync()));
  process.send({type: 'connected'});

  for (;;) {
    const command = await next();
    if (command.type === 'write') {
      phase = 'write';
      let writes = 0;
      let lateTicks = 0;
      // Writes made while a synchronizer was Loading (status 1): TinyBase
      // does not broadcast them (PROTOCOL.md 11.7); per room, the last one.
      let loadingWrites = 0;
      const lastLoadingWrite = {};
      const started = Date.now();
      const tick = 1000 / setup.rate;
      while (Date.now() - started < command.seconds * 1000) {
        const round = Date.now();
        for (const peer of peers) {
          const n = Math.floor(Math.random() * 50);
          if (peer.synchronizer.getStatus() === 1) {
            loadingWrites++;
            lastLoadingWrite[peer.room] = Date.now();
          }
          peer.store.setCell('t', `r${n}`, `c${Math.floor(Math.random() * 5)}`,
            setup.base + writes++);
        }
        const spent = Date.now() - round;
        if (spent > tick) {
          lateTicks++;
        }
        await pause(Math.max(0, tick - spent));
      }
      phase = 'settle';
      process.send({type: 'written', writes, lateTicks, loadingWrites, lastLoadingWrite,
        ended: Date.now()});
    } else if (command.type === 'hashes') {
      process.send({
        type: 'hashes',
        hashes: peers.map((peer) => [peer.room, JSON.stringify(peer.store.getMergeableContentHashes())]),
        errors,
        errorKinds,
        received,
      });
    } else if (command.type === 'stop') {
      for (const peer of peers) {
        await peer.synchronizer.destroy();
      }
      process.send({type: 'stopped'});
      process.exit(0);
    }
  }
}

// ---- The run -------------------------------------------------------------

async function coordinator() {
  const serverBinary = args.shift();
  const option = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const clients = Number(option('clients', 1000));
  const rooms = Number(option('rooms', 100));
  const seconds = Number(option('seconds', 180));
  const rate = Number(option('rate', 2));
  const processes = Number(option('processes', 1));
  const requestTimeout = Number(option('request-timeout', 5));
  const kind = option('server', 'tinysync');
  const persist = args.includes('--persist');
  const dataDir = mkdtempSync(join(tmpdir(), 'tinysync-soak-'));

  if (kind !== 'tinysync' && kind !== 'tinybase') {
    throw new Error(`--server ${kind}: tinysync or tinybase`);
  }
  if (kind === 'tinybase' && persist) {
    throw new Error('--persist needs --server tinysync');
  }

  const rssMb = (pid) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(status.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  };
  const cpuSeconds = (pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;  // utime + stime, USER_HZ 100
  };

  const server = kind === 'tinysync'
    ? spawn(serverBinary,
      ['--host', '127.0.0.1', '--port', '0',
        ...(persist ? ['--data-dir', dataDir] : ['--no-persist'])],
      {stdio: ['ignore', 'pipe', 'inherit']})
    : spawn(process.execPath, ['--max-old-space-size=4096', self, '--tinybase-server'],
      {stdio: ['ignore', 'pipe', 'inherit']});
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
  const serverName = kind === 'tinysync' ? 'tinysync-server' : "TinyBase's WsServer (Node)";
  console.log(`${serverName} pid ${server.pid} on port ${port}, ` +
    `${persist ? 'persisting' : 'relay only'}; ${clients} clients in ${processes} process(es)`);
  const rssStart = rssMb(server.pid);

  // Client processes; each gets the clients i with i % processes == its index.
  const workers = [];
  for (let w = 0; w < processes; w++) {
    const child = fork(self, ['--worker'], {execArgv: ['--max-old-space-size=4096']});
    const inbox = [];
    const waiters = [];
    child.on('message', (message) => {
      if (waiters.length) {
        waiters.shift()(message);
      } else {
        inbox.push(message);
      }
    });
    child.on('exit', (code) => {
      if (code !== 0 && !child.stopping) {
        console.error(`client process ${w} exited (${code})`);
        process.exit(1);
      }
    });
    const receive = () => new Promise((resolve) => {
      if (inbox.length) {
        resolve(inbox.shift());
      } else {
        waiters.push(resolve);
      }
    });
    const indexes = [];
    for (let i = w; i < clients; i += processes) {
      indexes.push(i);
    }
    child.send({port, indexes, rooms, rate, requestTimeout, base: w * 1e9});
    workers.push({child, receive});
  }
  const all = async (message) => {
    for (const worker of workers) {
      worker.child.send(message);
    }
    return Promise.all(workers.map((worker) => worker.receive()));
  };
  const connecting = Date.now();
  await Promise.all(workers.map((worker) => worker.receive()));
  const rssConnected = rssMb(server.pid);
  console.log(`all ${clients} clients syncing in ${rooms} rooms after ` +
    `${((Date.now() - connecting) / 1000).toFixed(0)} s; server RSS ${rssConnected.toFixed(1)} MB`);

  // Writing: the client processes write; this one samples the server.
  let peakRss = rssConnected;
  const cpuStart = cpuSeconds(server.pid);
  const started = Date.now();
  const written = all({type: 'write', seconds});
  let done = false;
  written.then(() => {
    done = true;
  });
  let lastLog = started;
  while (!done) {
    await pause(500);
    const rss = rssMb(server.pid);
    peakRss = Math.max(peakRss, rss);
    if (Date.now() - lastLog >= 10000) {
      lastLog = Date.now();
      console.log(`${Math.round((Date.now() - started) / 1000)} s: server RSS ${rss.toFixed(1)} MB, ` +
        `server CPU ${(cpuSeconds(server.pid) - cpuStart).toFixed(1)} s`);
    }
  }
  const results = await written;
  const elapsed = (Date.now() - started) / 1000;
  const serverCpu = cpuSeconds(server.pid) - cpuStart;
  const writes = results.reduce((sum, r) => sum + r.writes, 0);
  const lateTicks = results.reduce((sum, r) => sum + r.lateTicks, 0);
  const loadingWrites = results.reduce((sum, r) => sum + r.loadingWrites, 0);
  const ended = Math.max(...results.map((r) => r.ended));
  const lastLoadingWrite = {};
  for (const r of results) {
    for (const [room, at] of Object.entries(r.lastLoadingWrite)) {
      lastLoadingWrite[room] = Math.max(lastLoadingWrite[room] ?? 0, at);
    }
  }
  // Seconds before the end of writing of a room's last unbroadcast write
  const loadingAge = (room) => room in lastLoadingWrite
    ? `${((ended - lastLoadingWrite[room]) / 1000).toFixed(1)} s` : 'none';

  // Let the last changes travel, then check every room.
  let diverged = [];
  let last;
  for (let attempt = 0; attempt < 30; attempt++) {
    await pause(1000);
    last = await all({type: 'hashes'});
    const byRoom = new Map();
    for (const report of last) {
      for (const [room, hashes] of report.hashes) {
        if (!byRoom.has(room)) {
          byRoom.set(room, new Set());
        }
        byRoom.get(room).add(hashes);
      }
    }
    diverged = [...byRoom].filter(([, set]) => set.size > 1).map(([room]) => room);
    if (diverged.length === 0) {
      break;
    }
  }
  const errors = last.reduce((sum, r) => sum + r.errors, 0);
  const received = last.reduce((sum, r) => sum + r.received, 0);
  const errorKinds = {};
  for (const report of last) {
    for (const [k, n] of Object.entries(report.errorKinds)) {
      errorKinds[k] = (errorKinds[k] ?? 0) + n;
    }
  }

  const rssEnd = rssMb(server.pid);
  for (const worker of workers) {
    worker.child.stopping = true;
  }
  await all({type: 'stop'});
  server.kill('SIGTERM');
  const code = await new Promise((resolve) => server.on('exit', (c) => resolve(c)));
  rmSync(dataDir, {recursive: true, force: true});

  console.log('');
  console.log(`server ${serverName}; clients ${clients} in ${rooms} rooms over ${processes} process(es), ` +
    `${elapsed.toFixed(0)} s of writing`);
  console.log(`writes ${writes} (${(writes / elapsed).toFixed(0)}/s; offered ${clients * rate}/s; ` +
    `${lateTicks} late write rounds in the client processes)`);
  console.log(`server CPU while writing: ${serverCpu.toFixed(1)} s (${(100 * serverCpu / elapsed).toFixed(0)}% of one core)`);
  console.log(`server RSS: start ${rssStart.toFixed(1)} MB, all connected ${rssConnected.toFixed(1)} MB, ` +
    `peak ${peakRss.toFixed(1)} MB, end ${rssEnd.toFixed(1)} MB`);
  console.log(`messages received by the clients: ${received}`);
  console.log(`client-side ignored errors: ${errors} ${JSON.stringify(errorKinds)}`);
  const recent = Object.values(lastLoadingWrite).filter((at) => ended - at < 10000).length;
  console.log(`writes made while their synchronizer was loading (not broadcast): ${loadingWrites}, ` +
    `in ${Object.keys(lastLoadingWrite).length} rooms; in the last 10 s of writing: ${recent} rooms`);
  console.log(`rooms that did not converge: ${diverged.length}${diverged.length ? ' (' +
    diverged.slice(0, 10).map((room) => `${room}: last unbroadcast write ${loadingAge(room)} before the end`).join(', ') + ')' : ''}`);
  console.log(`server exit code after SIGTERM: ${code}`);
  process.exit(diverged.length === 0 && code === 0 ? 0 : 1);
}
