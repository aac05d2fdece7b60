// store-example.js: a tour of Tinysync.MergeableStore from GJS
//
// SPDX-License-Identifier: MIT
//
// The same scenario as store-example.c, printing the same text. From a
// build tree, point GI_TYPELIB_PATH and LD_LIBRARY_PATH at _build/tinysync,
// or run `gjs examples/store-example.js` inside `meson devenv -C _build`.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Tinysync = '1.0';
const {GLib, Tinysync} = imports.gi;

// 2024-01-01T00:00:00Z, the time TinyBase's documentation uses. A real
// application keeps the default clock; a fixed one makes the output
// reproducible, stamp for stamp.
const DOCS_TIME = 1704067200000;

// Runs once per changed cell when a transaction ends.
function onCellChanged(store, tableId, rowId, cellId) {
    const json = store.get_cell_json(tableId, rowId, cellId);
    print(`  ${store.unique_id}: ${tableId}/${rowId}/${cellId} = ${json ?? '(deleted)'}`);
}

function onValueChanged(store, valueId) {
    const json = store.get_value_json(valueId);
    print(`  ${store.unique_id}: value ${valueId} = ${json ?? '(deleted)'}`);
}

function printStore(store) {
    const [tablesHash, valuesHash] = store.get_mergeable_content_hashes();
    print(`${store.unique_id} (client id ${store.client_id})`);
    print(`  tables: ${store.get_tables_json()}`);
    print(`  values: ${store.get_values_json()}`);
    print(`  hashes: tables ${tablesHash}, values ${valuesHash}`);
    print(`  mergeable content:\n    ${store.get_mergeable_content_json()}\n`);
}

// The unique id fixes the client id at the end of every HLC stamp:
// "store1" gives "FnHIC", as in TinyBase.
const store = Tinysync.MergeableStore.new('store1');
store.set_clock(() => DOCS_TIME);
store.connect('cell-changed', onCellChanged);
store.connect('value-changed', onValueChanged);

// TinyBase's setTables(): JSON in, every cell gets a stamp.
print('Setting tables:');
store.set_tables_json('{"pets": {"fido": {"species": "dog"}}}');
print("Mergeable content, as TinyBase's documentation shows it:");
print(`  ${store.get_mergeable_content_json()}`);

// Typed setters; writes inside one transaction are announced together
// when it finishes.
print('\nOne transaction:');
store.transaction(s => {
    s.set_cell_number('pets', 'fido', 'legs', 4);
    s.set_cell('pets', 'felix', 'species', new GLib.Variant('s', 'cat'));
    s.set_value_boolean('open', true);
});

// Invalid input throws a GLib.Error (domain Tinysync.Error) and changes nothing.
try {
    store.set_cell_json('pets', 'fido', 'legs', '{oops');
} catch (error) {
    if (!error.matches(Tinysync.Error, Tinysync.Error.INVALID_JSON))
        throw error;
    print(`  rejected: ${error.message}`);
}

print('');
printStore(store);

// A second store writes a minute later; merging goes both ways, the later
// stamp wins, and both end with the same content and hashes.
const other = Tinysync.MergeableStore.new('store2');
other.set_clock(() => DOCS_TIME + 60000);
other.set_cell_string('pets', 'fido', 'species', 'wolf');
other.connect('cell-changed', onCellChanged);
other.connect('value-changed', onValueChanged);

print('Merging store2, which set pets/fido/species a minute later:');
store.merge(other);

print('');
printStore(store);
printStore(other);
