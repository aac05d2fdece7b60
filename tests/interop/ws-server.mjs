// ws-server.mjs: real TinyBase 10.0.1 clients (createWsSynchronizer over
// the `ws` package) syncing through tinysync's TsWsServer.
//
//   node ws-server.mjs RELAY_BINARY
//
// RELAY_BINARY is tests/interop/ws-server-relay (a TsWsServer on a free
// 127.0.0.1 port that reports its listeners on stdout). Prints TAP.
//
// Covered: legacy clients converging in a room and a late joiner pulling
// everything (every request type), rooms kept apart, two channels
// multiplexed on one socket next to legacy clients of base/channel,
// fragmented messages both ways, the close codes and reasons a real `ws`
// client sees for an invalid payload (1007 tinybase:14) and for oversized
// ones (1013 tinybase:15:socket, which libsoup cannot send by itself), and
// the server's path/client listeners and stats.

import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { WebSocket } from 'ws';
import { createMergeableStore } from 'tinybase';
import { createWsSynchronizer } from 'tinybase/synchronizers/synchronizer-ws-client';

const relayBinary = process.argv[2];
const TIMEOUT = 0.3;

let testNumber = 0;
let failures = 0;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const waitFor = async (what, cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(10);
  }
};

const assertEqual = (got, expected, what) => {
  const g = JSON.stringify(got);
  const e = JSON.stringify(expected);
  if (g !== e) {
    throw new Error(`${what}: got ${g}, expected ${e}`);
  }
};

// ---- The relay ---------------------------------------------------------

const relay = spawn(relayBinary, [String(TIMEOUT)], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = [];
let port;
readline.createInterface({ input: relay.stdout }).on('line', (line) => {
  lines.push(line);
  if (line.startsWith('port ')) {
    port = Number(line.slice(5));
  }
});
relay.on('exit', (code) => {
  if (port === undefined) {
    console.log(`Bail out! relay exited with ${code}`);
    process.exit(1);
  }
});

const lastStats = () => {
  const stats = lines.filter((line) => line.startsWith('stats '));
  return stats.length ? stats[stats.length - 1] : 'stats 0 0';
};

// ---- Clients -----------------------------------------------------------

const sockets = [];
const keys = new Map();

const openSocket = (path, protocols) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols);
    // The client id the server gives it: ws drops the request once open.
    keys.set(ws, ws._req.getHeader('sec-websocket-key'));
    sockets.push(ws);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });

const keyOf = (ws) => keys.get(ws);

const synchronizers = [];

const legacyClient = async (path, fragmentSize) => {
  const store = createMergeableStore();
  const ws = await openSocket(path);
  const errors = [];
  const synchronizer = await createWsSynchronizer(
    store,
    ws,
    TIMEOUT,
    undefined,
    undefined,
    (error) => errors.push(String(error?.message ?? error)),
    fragmentSize,
  );
  synchronizers.push(synchronizer);
  await synchronizer.startSync();
  return { store, ws, synchronizer, errors };
};

const channelClients = async (path, channelIds) => {
  const ws = await openSocket(path, 'tinybase');
  const clients = {};
  for (const channelId of channelIds) {
    const store = createMergeableStore();
    const synchronizer = await createWsSynchronizer(store, ws, channelId, TIMEOUT);
    synchronizers.push(synchronizer);
    await synchronizer.startSync();
    clients[channelId] = { store, ws, synchronizer };
  }
  return clients;
};

// JSON with object members sorted: row order depends on arrival order.
const canonical = (value) =>
  JSON.stringify(value, (key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v);

const sameTables = (...stores) =>
  stores.every((store) => canonical(store.getTables()) === canonical(stores[0].getTables()));

const closed = (ws) =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) {
      resolve({ code: ws._closeCode, reason: String(ws._closeMessage ?? '') });
    } else {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }
  });

// ---- Tests -------------------------------------------------------------

test('legacy clients converge; a late joiner pulls everything', async () => {
  const a = await legacyClient('/petShop');
  const b = await legacyClient('/petShop');
  a.store.setRow('pets', 'fido', { species: 'dog', legs: 4 });
  b.store.setRow('pets', 'felix', { species: 'cat' });
  b.store.setValue('open', true);
  await waitFor('a and b to converge', () =>
    sameTables(a.store, b.store) && a.store.getRowIds('pets').length === 2 &&
    a.store.getValue('open') === true);

  a.store.delCell('pets', 'fido', 'legs');
  const c = await legacyClient('/petShop');
  await waitFor('the late joiner', () =>
    sameTables(a.store, b.store, c.store) && c.store.getValue('open') === true &&
    !c.store.hasCell('pets', 'fido', 'legs'));
  assertEqual(canonical(c.store.getTables()),
    canonical({ pets: { fido: { species: 'dog' }, felix: { species: 'cat' } } }),
    'late joiner tables');

  for (const key of [a.ws, b.ws, c.ws].map(keyOf)) {
    if (!lines.includes(`client-added petShop ${key}`)) {
      throw new Error(`no client-added for ${key}`);
    }
  }
  if (!lines.includes('path-added petShop')) {
    throw new Error('no path-added');
  }
});

test('rooms are kept apart', async () => {
  const a = await legacyClient('/room/one');
  const b = await legacyClient('/room/two');
  a.store.setCell('t', 'r', 'c', 'one');
  b.store.setCell('t', 'r', 'c', 'two');
  const c = await legacyClient('/room/one');
  await waitFor('c to get room one', () => c.store.getCell('t', 'r', 'c') === 'one');
  await sleep(200);
  assertEqual(a.store.getCell('t', 'r', 'c'), 'one', 'room one');
  assertEqual(b.store.getCell('t', 'r', 'c'), 'two', 'room two');
});

test('two channels on one socket meet legacy clients of base/channel', async () => {
  const multi = await channelClients('/shop', ['pets', 'staff']);
  const pets = await legacyClient('/shop/pets');
  const staff = await legacyClient('/shop/staff');
  multi.pets.store.setRow('pets', 'rex', { species: 'dog' });
  pets.store.setRow('pets', 'tom', { species: 'cat' });
  multi.staff.store.setRow('staff', 'bob', { role: 'vet' });
  staff.store.setRow('staff', 'ann', { role: 'groomer' });
  await waitFor('channels to converge', () =>
    sameTables(multi.pets.store, pets.store) && pets.store.getRowIds('pets').length === 2 &&
    sameTables(multi.staff.store, staff.store) && staff.store.getRowIds('staff').length === 2);
  assertEqual(pets.store.getTableIds(), ['pets'], 'pets room has only pets');
  assertEqual(staff.store.getTableIds(), ['staff'], 'staff room has only staff');
  assertEqual(multi.pets.store.getTableIds(), ['pets'], 'pets channel has only pets');
  const key = keyOf(multi.pets.ws);
  for (const room of ['shop/pets', 'shop/staff']) {
    if (!lines.includes(`client-added ${room} ${key}`)) {
      throw new Error(`the multiplexed socket is not in ${room}`);
    }
  }

  // Destroying one channel unsubscribes it; the socket stays in the other.
  multi.pets.synchronizer.destroy();
  await waitFor('the pets channel to leave', () =>
    lines.includes(`client-removed shop/pets ${key}`));
  multi.staff.store.setCell('staff', 'bob', 'role', 'surgeon');
  await waitFor('staff to keep syncing', () =>
    staff.store.getCell('staff', 'bob', 'role') === 'surgeon');
});

test('fragmented messages are relayed as sent, both ways', async () => {
  const sent = await legacyClient('/big', 60);
  const got = await legacyClient('/big');
  const note = 'café 日本 🐶 '.repeat(40);
  sent.store.setRow('pets', 'fido', { note, species: 'dog' });
  await waitFor('the big row', () => got.store.getCell('pets', 'fido', 'note') === note);
  got.store.setCell('pets', 'fido', 'other', note + '!');
  await waitFor('the answer', () => sent.store.getCell('pets', 'fido', 'other') === note + '!');
  const multi = await channelClients('/', ['big']);
  await waitFor('a channel client to pull it', () =>
    sameTables(multi.big.store, got.store));
});

test('invalid and oversized payloads close the sender only', async () => {
  const peer = await legacyClient('/limits');
  const bad = await openSocket('/limits');
  const badClosed = closed(bad);
  bad.send('\n{');
  assertEqual(await badClosed, { code: 1007, reason: 'tinybase:14' }, 'invalid payload');

  const big = await openSocket('/limits');
  const bigClosed = closed(big);
  big.send('\n["' + 'x'.repeat(16 * 1024 * 1024) + '",1,""]');
  assertEqual(await bigClosed, { code: 1013, reason: 'tinybase:15:socket' }, 'oversized');

  const frag = await openSocket('/limits');
  const fragClosed = closed(frag);
  frag.send('\nAAAAAAAAAAAAAAAA\n0\n1001\nx');
  assertEqual(await fragClosed, { code: 1013, reason: 'tinybase:15:fragments' }, 'fragments');

  const multi = await openSocket('/limits', 'tinybase');
  const multiClosed = closed(multi);
  multi.send('S\n["h",-1,[0,1]]');
  multi.send('S\n["s",-1,[1,"' + 'c'.repeat(1025) + '"]]');
  assertEqual(await multiClosed, { code: 1013, reason: 'tinybase:15:channels' }, 'channels');

  for (const reason of ['tinybase:14', 'tinybase:15:socket', 'tinybase:15:fragments',
    'tinybase:15:channels']) {
    if (!lines.some((line) => line.startsWith('ignored-error ') && line.endsWith(`(${reason})`))) {
      throw new Error(`no ignored-error for ${reason}`);
    }
  }
  peer.store.setCell('t', 'r', 'c', 1);
  assertEqual(peer.ws.readyState, WebSocket.OPEN, 'the peer stays open');
});

test('every room is gone once every client left', async () => {
  for (const synchronizer of synchronizers) {
    synchronizer.destroy();
  }
  for (const ws of sockets) {
    ws.close();
  }
  await waitFor('stats 0 0', () => lastStats() === 'stats 0 0');
  const added = lines.filter((line) => line.startsWith('path-added ')).length;
  const removed = lines.filter((line) => line.startsWith('path-removed ')).length;
  assertEqual(removed, added, 'every room removed');
});

// ---- Run ---------------------------------------------------------------

await waitFor('the relay port', () => port !== undefined);
console.log(`1..${tests.length}`);
for (const { name, fn } of tests) {
  testNumber++;
  try {
    await fn();
    console.log(`ok ${testNumber} - ${name}`);
  } catch (error) {
    failures++;
    console.log(`not ok ${testNumber} - ${name}`);
    for (const line of String(error?.stack ?? error).split('\n')) {
      console.log(`# ${line}`);
    }
  }
}
relay.stdin.end();
await new Promise((resolve) => relay.once('exit', resolve));
process.exit(failures ? 1 : 0);
