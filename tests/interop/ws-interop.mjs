// ws-interop.mjs: the TinyBase 10.0.1 side of tests/test-ws-interop.c.
//
//   node ws-interop.mjs
//
// Runs a real TinyBase WsServer (createWsServer over a `ws`
// WebSocketServer on 127.0.0.1, free port) and real TinyBase clients
// (createWsSynchronizer over `ws` WebSockets), driven by the C test one
// JSON command per line on stdin. Every command is answered by one JSON
// line on stdout, {"id": <the command's id>, "ok": true, ...} or
// {"id": ..., "ok": false, "error": "..."}. The first line is
// {"port": N}.
//
// Commands ({"id": k, "cmd": ..., ...}):
//   server   {serverStores?: bool, fragmentSize?: n, timeout?: s}
//            (re)starts the WsServer on the same port. With serverStores
//            every room gets a server-side MergeableStore (client id S),
//            kept in memory per path across restarts.
//   stop     destroys the WsServer (its clients see the socket close).
//   client   {name, path, uniqueId, timeout?, fragmentSize?, channel?, port?}
//            a MergeableStore + WebSocket + createWsSynchronizer (legacy,
//            or multiplexed on `channel`), then startSync(). `port`: connect
//            to another server on 127.0.0.1 (the C test's TsWsServer)
//            instead of this one.
//   do       {name, ops: [[method, ...args], ...]} calls store methods
//            (one transaction when ops has several entries).
//   dump     {name} or {server: path}: hashes [tables, values], the
//            encoded mergeable content (undefined as "\uFFFC") and the
//            getTables()/getValues() JSON.
//   destroy  {name}
//   errors   the errors passed to onIgnoredError so far, by client name
//            (and "server").
//   quit
//
// Stores use Date.now; both sides run on the same machine.

import {once} from 'node:events';
import readline from 'node:readline';
import {createMergeableStore} from 'tinybase';
import {createCustomPersister} from 'tinybase/persisters';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';
import {createWsServer} from 'tinybase/synchronizers/synchronizer-ws-server';
import {WebSocket, WebSocketServer} from 'ws';

const U = '\uFFFC';
const jsonU = (value) =>
  JSON.stringify(value, (_key, v) => (v === undefined ? U : v));

const clients = new Map(); // name -> {store, synchronizer, webSocket}
const serverStores = new Map(); // path -> MergeableStore
const errors = {server: []};
let port = 0;
let wss;
let server;

const out = (object) => process.stdout.write(JSON.stringify(object) + '\n');

const memoryPersister = (store) =>
  createCustomPersister(
    store,
    async () => undefined,
    async () => {},
    () => 0,
    () => 0,
    undefined,
    2, // Persists.MergeableStoreOnly
  );

const startServer = async ({serverStores: withStores, fragmentSize, timeout = 1}) => {
  wss = new WebSocketServer({host: '127.0.0.1', port});
  await once(wss, 'listening');
  port = wss.address().port;
  server = createWsServer(
    wss,
    withStores
      ? (path) => {
          if (!serverStores.has(path)) {
            serverStores.set(path, createMergeableStore('server-' + path));
          }
          return memoryPersister(serverStores.get(path));
        }
      : undefined,
    (error) => errors.server.push(String(error?.message ?? error)),
    timeout,
    fragmentSize,
  );
};

const stopServer = async () => {
  if (server) {
    await server.destroy();
    server = undefined;
  }
  if (wss) {
    for (const client of wss.clients) {
      client.terminate();
    }
    await new Promise((resolve) => wss.close(resolve));
    wss = undefined;
  }
};

const openSocket = async (url, protocols) => {
  const webSocket = new WebSocket(url, protocols);
  webSocket.on('error', () => 0);
  await once(webSocket, 'open');
  return webSocket;
};

const dumpStore = (store) => ({
  hashes: store.getMergeableContentHashes(),
  content: jsonU(store.__[1]()),
  tables: JSON.stringify(store.getTables()),
  values: JSON.stringify(store.getValues()),
});

const runOps = (store, ops) => {
  const run = () => {
    for (const [method, ...args] of ops) {
      store[method](...args);
    }
  };
  if (ops.length > 1) {
    store.transaction(run);
  } else {
    run();
  }
};

const handlers = {
  server: async (command) => {
    await stopServer();
    await startServer(command);
    return {port};
  },
  stop: async () => {
    await stopServer();
    return {};
  },
  client: async ({name, path, uniqueId, timeout = 1, fragmentSize, channel, port: other}) => {
    const store = createMergeableStore(uniqueId);
    const url = `ws://127.0.0.1:${other ?? port}${path}`;
    errors[name] = [];
    const onError = (error) => errors[name].push(String(error?.message ?? error));
    const webSocket = await openSocket(url, channel != null ? 'tinybase' : undefined);
    const synchronizer =
      channel != null
        ? await createWsSynchronizer(
            store, webSocket, channel, timeout, undefined, undefined, onError, fragmentSize)
        : await createWsSynchronizer(
            store, webSocket, timeout, undefined, undefined, onError, fragmentSize);
    await synchronizer.startSync();
    clients.set(name, {store, synchronizer, webSocket});
    return {};
  },
  do: async ({name, ops}) => {
    runOps(clients.get(name).store, ops);
    return {};
  },
  dump: async ({name, server: path}) =>
    dumpStore(path != null ? serverStores.get(path) : clients.get(name).store),
  destroy: async ({name}) => {
    const client = clients.get(name);
    clients.delete(name);
    await client.synchronizer.destroy();
    return {};
  },
  errors: async () => ({errors}),
  quit: async () => {
    for (const [, client] of clients) {
      await client.synchronizer.destroy();
    }
    clients.clear();
    await stopServer();
    setTimeout(() => process.exit(0), 10);
    return {};
  },
};

// Commands run one after the other, in arrival order.
let queue = Promise.resolve();
readline.createInterface({input: process.stdin}).on('line', (line) => {
  if (!line.trim()) {
    return;
  }
  queue = queue.then(async () => {
    let command;
    try {
      command = JSON.parse(line);
      const result = await handlers[command.cmd](command);
      out({id: command.id, ok: true, ...result});
    } catch (error) {
      out({id: command?.id ?? null, ok: false, error: String(error?.stack ?? error)});
    }
  });
});
process.stdin.on('end', () => queue.then(() => handlers.quit({})));

await startServer({});
out({port});
