// server-durability.mjs: real TinyBase 10.0.1 clients write through
// tinysync-server while it is killed with SIGKILL at random moments and
// restarted; every change that had reached another client through the
// server must still be there afterwards, and a fresh client must converge
// to it. Then SIGTERM: it must lose nothing and exit 0. Prints TAP.
//
//   node server-durability.mjs SERVER_BINARY [ROUNDS]
//
// Every server binds 127.0.0.1 on a free port and is stopped at the end.

import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createMergeableStore} from 'tinybase';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';
import {WebSocket} from 'ws';

const [serverBinary, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 6);
const dataDir = mkdtempSync(join(tmpdir(), 'tinysync-durability-'));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let seed = Number(process.env.TS_DURABILITY_SEED ?? Date.now() % 100000);
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};

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

let port = 0;
// every server process not yet exited, also one still starting up
const children = new Set();
const startServer = () =>
  new Promise((resolve, reject) => {
    const child = spawn(
      serverBinary,
      ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir],
      {stdio: ['ignore', 'pipe', 'inherit']},
    );
    children.add(child);
    child.on('exit', () => children.delete(child));
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/Listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
      if (match) {
        port = Number(match[1]);
        resolve(child);
      }
    });
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

const connect = async (store, room = 'durable') => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/${room}`);
  const synchronizer = await createWsSynchronizer(store, ws, 1, undefined, undefined, () => {});
  await synchronizer.startSync();
  return synchronizer;
};

const quietly = async (promise) => {
  try {
    await promise;
  } catch {
    // the server is gone
  }
};

// A fresh client after a restart: wait until it stops receiving.
const freshCopy = async () => {
  const store = createMergeableStore('fresh' + testNumber);
  const synchronizer = await connect(store);
  let last = -1;
  for (let i = 0; i < 40; i++) {
    await pause(150);
    const count = Object.keys(store.getTable('t')).length;
    if (count === last) {
      break;
    }
    last = count;
  }
  await quietly(synchronizer.destroy());
  return store;
};

const seen = new Set(); // every row B received through the server

let server;
// meson's timeout sends SIGTERM: take the server along, and its data.
for (const name of ['SIGTERM', 'SIGINT']) {
  process.on(name, () => {
    for (const child of children) {
      child.kill('SIGKILL');
    }
    rmSync(dataDir, {recursive: true, force: true});
    process.exit(1);
  });
}
try {
  server = await startServer();
  console.log(`# seed ${seed}, data in ${dataDir}`);

  for (let round = 0; round < rounds; round++) {
    const writer = createMergeableStore('writer' + round);
    const watcher = createMergeableStore('watcher' + round);
    const a = await connect(writer);
    const b = await connect(watcher);
    watcher.addRowListener('t', null, (_store, _table, rowId) => {
      if (watcher.hasRow('t', rowId)) {
        seen.add(rowId);
      }
    });

    // A writes as fast as it can; the server dies at a random moment.
    const killAfter = 150 + Math.floor(random() * 500);
    const started = Date.now();
    let written = 0;
    while (Date.now() - started < killAfter) {
      writer.setCell('t', `r${round}_${written}`, 'n', written);
      written++;
      if (written % 20 === 0) {
        await pause(1);
      }
    }
    server.kill('SIGKILL');
    await stopped(server);
    await quietly(a.destroy());
    await quietly(b.destroy());

    server = await startServer();
    const copy = await freshCopy();
    const missing = [...seen].filter((rowId) => !copy.hasRow('t', rowId));
    ok(
      missing.length === 0 && seen.size > 0,
      `round ${round}: killed after ${killAfter} ms with ${written} writes; ` +
        `all ${seen.size} rows another client saw survived`,
      `missing: ${missing.slice(0, 10).join(', ')} (${missing.length})`,
    );
  }

  // SIGTERM: everything the server got is saved, and it exits 0.
  {
    const writer = createMergeableStore('writer-term');
    const watcher = createMergeableStore('watcher-term');
    const a = await connect(writer);
    const b = await connect(watcher);
    writer.transaction(() => {
      for (let i = 0; i < 2000; i++) {
        writer.setCell('t', `term_${i}`, 'n', i);
      }
    });
    for (let i = 0; i < 100 && !watcher.hasRow('t', 'term_1999'); i++) {
      await pause(50);
    }
    server.kill('SIGTERM');
    const [code, signal] = await stopped(server);
    ok(code === 0, `SIGTERM exits 0 (got ${code ?? signal})`);
    await quietly(a.destroy());
    await quietly(b.destroy());

    server = await startServer();
    const copy = await freshCopy();
    let missing = 0;
    for (let i = 0; i < 2000; i++) {
      if (!copy.hasRow('t', `term_${i}`)) {
        missing++;
      }
    }
    ok(missing === 0, `SIGTERM lost nothing (${missing} of 2000 rows missing)`);
    const hashes = copy.getMergeableContentHashes();
    ok(hashes[0] !== 0, 'the restarted room has content hashes');
    server.kill('SIGTERM');
    await stopped(server);
  }
} catch (error) {
  ok(false, 'durability run', String(error?.stack ?? error));
} finally {
  // a failure part way may leave a server running
  for (const child of children) {
    child.kill('SIGKILL');
    await stopped(child);
  }
  rmSync(dataDir, {recursive: true, force: true});
}

console.log(`1..${testNumber}`);
process.exit(failures ? 1 : 0);
