// tinybase-todo-client.mjs: a TinyBase 10.0.1 app in the to-do demo's room
//
// SPDX-License-Identifier: MIT
//
// Run by test-todo-demo.py with node --input-type=module from
// tests/interop/ (where npm ci put tinybase and ws), the room's URL in
// TODO_URL. One command a line on standard input, answered on standard
// output:
//
//   set ROW_ID DONE TEXT   setRow('todos', ROW_ID, {text, done})
//   dump                   "DUMP {json}": getTable('todos')
//   quit                   destroys the synchronizer and exits
import readline from 'node:readline';
import {WebSocket} from 'ws';
import {createMergeableStore} from 'tinybase';
import {createWsSynchronizer} from 'tinybase/synchronizers/synchronizer-ws-client';

const ws = new WebSocket(process.env.TODO_URL);
await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});
const store = createMergeableStore();
const synchronizer = await createWsSynchronizer(store, ws, 1);
await synchronizer.startSync();
console.log('READY');

for await (const line of readline.createInterface({input: process.stdin})) {
  const [command, ...rest] = line.split(' ');
  if (command === 'set') {
    const [rowId, done, ...text] = rest;
    store.setRow('todos', rowId, {text: text.join(' '), done: done === 'true'});
    console.log('OK');
  } else if (command === 'dump') {
    console.log('DUMP ' + JSON.stringify(store.getTable('todos')));
  } else if (command === 'quit') {
    await synchronizer.destroy();
    console.log('OK');
    break;
  } else {
    console.log('ERROR unknown command ' + command);
  }
}
process.exit(0);
