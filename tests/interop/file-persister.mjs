// file-persister.mjs: TinyBase 10.0.1's file persister (createFilePersister
// from 'tinybase/persisters/persister-file') for a MergeableStore, driven by
// tests/interop/test-file-persister-interop.c.
//
//   node file-persister.mjs write FILE
//       a MergeableStore with object and array cells, deletions, values,
//       Unicode and integer-like ids, saved to FILE by TinyBase
//   node file-persister.mjs read FILE OUT
//       a new MergeableStore loads FILE with TinyBase's file persister and
//       saves what it loaded to OUT with another one
//
// Both print one line of JSON about the store: {"hashes": [tablesHash,
// valuesHash], "tables": JSON.stringify(getTables()), "values":
// JSON.stringify(getValues())}.

import {createMergeableStore} from 'tinybase';
import {createFilePersister} from 'tinybase/persisters/persister-file';

const report = (store) =>
  process.stdout.write(
    JSON.stringify({
      hashes: store.getMergeableContentHashes(),
      tables: JSON.stringify(store.getTables()),
      values: JSON.stringify(store.getValues()),
    }) + '\n',
  );

const ignored = [];
const onIgnoredError = (error) => ignored.push(String(error));

const write = async (file) => {
  let now = 1710000000000;
  const store = createMergeableStore('tinybase', () => now++);
  store.setTables({
    pets: {
      fido: {species: 'dog', legs: 4, toys: ['ball', 1, null], owner: {name: 'Ann', age: 30}},
      '1': {b: true},
      rex: {species: 'wolf', weight: 0.1, big: 1e21, tiny: 5e-324, neg: -1.5e-7},
    },
    't\u00e5ble \u2713': {'row \u{1F431}': {'cell \u00fc': '\u00fc', nul: null}},
    '10': {'2': {x: 'a\u0000b\ud800\u001f"q"\\'}, 'r\u0000x': {c: '\u2028'}},
  });
  store.setValues({open: true, conf: {k: [1, 2]}, v: 'x', gone: 1, '9': 0});
  store.delCell('pets', 'fido', 'legs');
  store.delRow('pets', '1');
  store.delValue('gone');
  store.setCell('pets', 'fido', 'species', 'cat');
  const persister = createFilePersister(store, file, onIgnoredError);
  await persister.save();
  await persister.destroy();
  report(store);
};

const read = async (file, out) => {
  const store = createMergeableStore('reader');
  const persister = createFilePersister(store, file, onIgnoredError);
  await persister.load();
  await persister.destroy();
  const saver = createFilePersister(store, out, onIgnoredError);
  await saver.save();
  await saver.destroy();
  report(store);
};

const [command, ...args] = process.argv.slice(2);
if (command == 'write' && args.length == 1) {
  await write(args[0]);
} else if (command == 'read' && args.length == 2) {
  await read(args[0], args[1]);
} else {
  process.stderr.write('usage: file-persister.mjs write FILE | read FILE OUT\n');
  process.exit(2);
}
if (ignored.length > 0) {
  process.stderr.write('ignored errors: ' + ignored.join('; ') + '\n');
  process.exit(1);
}
