// server-faults.mjs: real TinyBase 10.0.1 clients through tinysync-server
// under two faults (the C side of the same faults is tests/test-faults.c):
//
// 1. A client stops reading its socket in a busy room: the server drops
//    it (tinybase:15:socket, then its socket is closed) while the other
//    clients receive every change.
// 2. The server is stopped (SIGSTOP) for a few seconds while two clients
//    write, also to the same cells; after SIGCONT every store converges.
//
// Prints TAP.
//
//   node server-faults.mjs SERVER_BINARY
//
// The server binds 127.0.0.1 on a free port and is stopped at the end.

import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createMergeableStore} from 'tinybase';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';
import {WebSocket} from 'ws';

const [serverBinary] = process.argv.slice(2);
const dataDir = mkdtempSync(join(tmpdir(), 'tinysync-faults-'));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const LIMIT = 262144; // --max-message-size
const WAIT_MS = 30000;

let testNumber = 0;
let failures = 0;
const ok = (good, name, detail = '') => {
  testNumber++;
  if (!good) {
    failures++;
  }
  console.log(`${good ? 'ok' : 'not ok'} ${testNumber} - ${name}`);
  if (!good && detail) {
    console.log(`# ${detail.replaceAll('\n', '\n# ')}`);
  }
};

// Polls cond every 20 ms for up to WAIT_MS; true once it holds.
const until = async (cond) => {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > WAIT_MS) {
      return false;
    }
    await pause(20);
  }
  return true;
};

let port = 0;
let log = '';
const startServer = () =>
  new Promise((resolve, reject) => {
    const child = spawn(
      serverBinary,
      ['-v', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir,
        '--max-message-size', String(LIMIT)],
      {stdio: ['ignore', 'pipe', 'pipe']},
    );
    const collect = (chunk) => {
      log += chunk;
      const match = log.match(/Listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
      if (match && !port) {
        port = Number(match[1]);
        resolve(child);
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', (code, signal) => {
      if (!port) {
        reject(new Error(`server exited early (${code ?? signal})`));
      }
    });
  });

const stopped = (child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve([child.exitCode, child.signalCode]);
    } else {
      child.on('exit', (code, signal) => resolve([code, signal]));
    }
  });

const connect = async (store) => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/faults`);
  const synchronizer = await createWsSynchronizer(store, ws, 1, undefined, undefined, () => {});
  await synchronizer.startSync();
  return [synchronizer, ws];
};

const count = (text) => log.split(text).length - 1;
// The same hashes (stamps included); row order may differ between stores.
const sameContent = (a, b) =>
  JSON.stringify(a.getMergeableContentHashes()) === JSON.stringify(b.getMergeableContentHashes()) &&
  a.getRowIds('t').length === b.getRowIds('t').length;

let server;
const synchronizers = [];

// meson's timeout sends SIGTERM: take the (maybe stopped) server along.
for (const name of ['SIGTERM', 'SIGINT']) {
  process.on(name, () => {
    server?.kill('SIGKILL');
    rmSync(dataDir, {recursive: true, force: true});
    process.exit(1);
  });
}
try {
  server = await startServer();

  // 1. A reader that stops reading.
  {
    const writer = createMergeableStore('writer');
    const watcher = createMergeableStore('watcher');
    const slow = createMergeableStore('slow');
    let slowWs;
    let writerSync;
    for (const store of [writer, watcher, slow]) {
      const [synchronizer, ws] = await connect(store);
      synchronizers.push(synchronizer);
      writerSync ??= synchronizer;
      slowWs = ws;
    }
    let changes = 0;
    watcher.addCellListener('t', null, 'v', () => changes++);
    let slowClosed = false;
    slowWs.on('close', () => (slowClosed = true));

    // The slow client's socket stops reading; the writer overwrites four
    // 8 KiB cells, five transactions a round (less than the limit), and
    // waits for the watcher to get the round.
    slowWs._socket.pause();
    const filler = (n) => String.fromCharCode(97 + (n % 26)).repeat(8192);
    let written = 0;
    let everyRound = true;
    const latest = (n) =>
      [0, 1, 2, 3].every((i) => watcher.getCell('t', `churn_${i}`, 'v') === filler(n - 1 + i));
    for (let round = 0; round < 3000 && count('Too much data queued') === 0; round++) {
      for (let k = 0; k < 5; k++) {
        // TinyBase 10.0.1 does not send a transaction made while its
        // synchronizer is loading a peer's message (status 1): it would
        // reach the others only at the next full sync.
        await until(() => writerSync.getStatus() === 0);
        writer.transaction(() => {
          for (let i = 0; i < 4; i++) {
            writer.setCell('t', `churn_${i}`, 'v', filler(written + i));
          }
        });
        written++;
      }
      // Every change or the latest one: a TinyBase client may also pull a
      // diff (it then sees the last values only), which is as good.
      if (!(await until(() => latest(written)))) {
        everyRound = false;
        break;
      }
    }
    ok(everyRound && latest(written),
      `the watcher got every round of changes while the slow client was stuck ` +
        `(${written} transactions, ${changes} of ${written * 4} cell changes seen one by one)`,
      log.split('\n').filter((line) => /left room|Too much/.test(line)).join('\n'));
    ok(await until(() => count('Too much data queued') === 1),
      `the server dropped the slow client after ${written} transactions of 32 KiB`);
    // libsoup gives a peer that does not read 5 s to take the close.
    ok((await until(() => count('left room') >= 1)) && count('left room') === 1,
      'only the slow client left the room',
      log.split('\n').filter((line) => line.includes('left room')).join('\n'));
    slowWs._socket.resume();
    ok(await until(() => slowClosed), 'the slow client sees its socket closed');
    ok(await until(() => sameContent(writer, watcher)), 'writer and watcher have the same content');
  }

  // 2. The server stops for three seconds while two clients write.
  {
    const a = createMergeableStore('a');
    const b = createMergeableStore('b');
    for (const store of [a, b]) {
      const [synchronizer] = await connect(store);
      synchronizers.push(synchronizer);
    }
    server.kill('SIGSTOP');
    for (let i = 0; i < 200; i++) {
      a.setCell('t', `pa_${i}`, 'v', i);
      b.setCell('t', `pb_${i}`, 'v', i);
    }
    a.setRow('t', 'both', {v: 'a'});
    await pause(50);
    b.setRow('t', 'both', {v: 'b'});
    await pause(3000);
    server.kill('SIGCONT');
    ok(await until(() => sameContent(a, b) && a.getRowIds('t').length >= 404),
      `both converge after the pause (${a.getRowIds('t').length} rows)`);
    ok(a.getCell('t', 'both', 'v') === 'b', 'the later write to the same cell won');
  }

  for (const synchronizer of synchronizers) {
    await synchronizer.destroy();
  }
  server.kill('SIGTERM');
  const [code, signal] = await stopped(server);
  ok(code === 0, `SIGTERM exits 0 (got ${code ?? signal})`);
} catch (error) {
  ok(false, 'faults run', String(error?.stack ?? error));
} finally {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGKILL');
  }
  rmSync(dataDir, {recursive: true, force: true});
}

console.log(`1..${testNumber}`);
process.exit(failures ? 1 : 0);
