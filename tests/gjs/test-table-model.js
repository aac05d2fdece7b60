// test-table-model.js: TsTableModel, TsRowObject and TsTableIdsModel
// through the Tinysync-1.0 typelib (GJS)
//
// SPDX-License-Identifier: MIT
//
// Run by meson (suite "gjs") with G_DEBUG=fatal-criticals, GI_TYPELIB_PATH
// and LD_LIBRARY_PATH pointing at the build tree. Callbacks only record,
// checks run afterwards (GJS logs and swallows exceptions thrown in
// callbacks). Any failure exits with status 1.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Gio = '2.0';
imports.gi.versions.Tinysync = '1.0';
const {GLib, Gio, Tinysync} = imports.gi;
const System = imports.system;

const T = 1704067200000;

let checks = 0;
let failures = 0;
let currentTest = '';

function check(what, ok, detail = '') {
    checks++;
    if (!ok) {
        failures++;
        print(`not ok ${checks} - ${currentTest}: ${what}${detail ? ` (${detail})` : ''}`);
    } else {
        print(`ok ${checks} - ${currentTest}: ${what}`);
    }
}

function checkEqual(what, got, expected) {
    const g = JSON.stringify(got), e = JSON.stringify(expected);
    check(what, g === e, `got ${g}, expected ${e}`);
}

function newStore(uniqueId, clock) {
    const store = Tinysync.MergeableStore.new(uniqueId);
    store.set_clock(() => clock.now);
    return store;
}

// JavaScript's own < on strings is the order the models document
function jsCompare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}

function sortKey(store, tableId, rowId, cellId) {
    if (cellId === null || !store.has_cell(tableId, rowId, cellId))
        return [0, 0];
    const text = store.get_cell_json(tableId, rowId, cellId);
    const value = JSON.parse(text);
    if (value === null || typeof value === 'number' || typeof value === 'boolean')
        return [0, Number(value)];
    if (typeof value === 'string')
        return [1, value];
    return [2, text];
}

function expectedRows(store, tableId, cellId, descending) {
    const rows = store.get_row_ids(tableId).map(r => [sortKey(store, tableId, r, cellId), r]);
    rows.sort(([[c1, v1], r1], [[c2, v2], r2]) => {
        const c = c1 !== c2 ? c1 - c2 : jsCompare(v1, v2) || jsCompare(r1, r2);
        return descending ? -c : c;
    });
    return rows.map(([, r]) => r);
}

function idOf(item) {
    return item instanceof Tinysync.RowObject ? item.get_row_id() : item.get_id();
}

// A list kept from items-changed alone
function mirror(model) {
    const m = {items: [], events: [], problems: []};
    for (let i = 0; i < model.get_n_items(); i++)
        m.items.push(idOf(model.get_item(i)));
    model.connect('items-changed', (list, position, removed, added) => {
        m.events.push([position, removed, added]);
        if (position + removed > m.items.length || removed + added === 0) {
            m.problems.push(['bad emission', position, removed, added]);
            return;
        }
        const news = [];
        for (let i = 0; i < added; i++)
            news.push(idOf(list.get_item(position + i)));
        m.items.splice(position, removed, ...news);
        if (list.get_n_items() !== m.items.length)
            m.problems.push(['n-items', list.get_n_items(), m.items.length]);
    });
    m.listed = () => {
        const out = [];
        for (let i = 0; i < model.get_n_items(); i++)
            out.push(idOf(model.get_item(i)));
        return out;
    };
    m.take = () => m.events.splice(0);
    return m;
}

function checkMirror(what, m, expected) {
    checkEqual(`${what}: no inconsistent emission`, m.problems, []);
    checkEqual(`${what}: model`, m.listed(), expected);
    checkEqual(`${what}: items-changed mirror`, m.items, expected);
}

const tests = {
    tableModel() {
        const clock = {now: T};
        const store = newStore('gjs', clock);
        store.set_table_json('pets', JSON.stringify({
            fido: {legs: 4}, felix: {legs: 4}, '\u{1d49c}': {legs: 1}, '\uff5e': {legs: 2},
        }));
        const model = Tinysync.TableModel.new(store, 'pets');
        check('is a Gio.ListModel', model instanceof Gio.ListModel);
        checkEqual('item type', model.get_item_type().name, 'TsRowObject');
        checkEqual('n-items', model.n_items, 4);
        checkEqual('JavaScript order', expectedRows(store, 'pets', null, false),
            ['felix', 'fido', '\u{1d49c}', '\uff5e']);
        const m = mirror(model);
        checkMirror('by row id', m, ['felix', 'fido', '\u{1d49c}', '\uff5e']);
        checkEqual('find', model.find('fido'), [true, 1]);
        checkEqual('get_row_id', model.get_row_id(0), 'felix');

        model.set_sort('legs', true);
        checkMirror('by legs, descending', m, expectedRows(store, 'pets', 'legs', true));
        checkEqual('sort-cell', model.sort_cell, 'legs');
        check('sort-descending', model.sort_descending);
        m.take();
        store.set_cell_number('pets', 'rex', 'legs', 3);
        checkEqual('one row added', m.take(), [[2, 0, 1]]);
        store.set_cell_number('pets', 'fido', 'legs', 4);
        checkEqual('an unchanged cell emits nothing', m.take(), []);
        store.del_row('pets', 'felix');
        checkEqual('one row removed', m.take(), [[1, 1, 0]]);

        const built = new Tinysync.TableModel({store, table_id: 'pets', sort_cell: 'legs'});
        checkEqual('GObject construction',
            [0, 1, 2, 3].map(i => built.get_row_id(i)), ['\u{1d49c}', '\uff5e', 'rex', 'fido']);
    },

    rowObject() {
        const clock = {now: T};
        const store = newStore('gjs-rows', clock);
        store.set_row_json('pets', 'fido', JSON.stringify({name: 'Fido', legs: 4, good: true}));
        const model = Tinysync.TableModel.new(store, 'pets');
        const row = model.get_item(0);
        check('same object while held', model.get_item(0) === row);
        checkEqual('row id', row.row_id, 'fido');
        checkEqual('table id', row.table_id, 'pets');
        checkEqual('string cell', row.dup_cell_string('name'), 'Fido');
        checkEqual('not a string', row.dup_cell_string('legs'), null);
        checkEqual('number cell', row.get_cell_number('legs', -1), 4);
        checkEqual('boolean cell', row.get_cell_boolean('good', false), true);
        checkEqual('variant cell', row.get_cell('legs').unpack(), 4);
        checkEqual('json cell', row.get_cell_json('name'), '"Fido"');

        const seen = [], versions = [];
        row.connect('cell-changed', (r, cellId) => seen.push(cellId));
        row.connect('cell-changed::name', (r, cellId) => seen.push(`name:${cellId}`));
        row.connect('notify::version', r => versions.push(r.version));
        row.set_cell('legs', new GLib.Variant('d', 3));
        row.set_cell_json('name', '"Rex"');
        const peer = newStore('gjs-peer', clock);
        clock.now += 5;
        peer.set_cell_string('pets', 'fido', 'name', 'Merged');
        store.merge(peer);
        checkEqual('cell-changed, detailed too, merges included', seen,
            ['legs', 'name', 'name:name', 'name', 'name:name']);
        checkEqual('version notified once per transaction', versions, [1, 2, 3]);
        checkEqual('merged value', row.dup_cell_string('name'), 'Merged');
    },

    randomOperations() {
        const clock = {now: T};
        const store = newStore('gjs-main', clock);
        const peer = newStore('gjs-other', clock);
        const model = new Tinysync.TableModel({store, table_id: 't', sort_cell: 'a'});
        const m = mirror(model);
        const ids = Tinysync.TableIdsModel.new(store);
        const mi = mirror(ids);
        const rows = ['r0', 'r1', 'r2', 'r3', 'r4', 'B', '', '\u00e9', '\u{1d49c}', '\uff5e'];
        const values = [0, 1, -1, 2.5, true, false, null, '', 'a', 'B', '10', '9', {x: 1}, [1]];
        let seed = 12345;
        const rand = n => {
            seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
            return (seed >>> 8) % n;
        };
        const pick = a => a[rand(a.length)];
        const write = s => {
            const table = pick(['t', 't', 'u']);
            const op = rand(5);
            if (op < 3)
                s.set_cell_json(table, pick(rows), pick(['a', 'b']), JSON.stringify(pick(values)));
            else if (op < 4)
                s.del_row(table, pick(rows));
            else
                s.del_cell(table, pick(rows), pick(['a', 'b']));
        };
        let ok = true;
        for (let step = 0; step < 300 && ok; step++) {
            clock.now += rand(3);
            const op = rand(6);
            if (op < 3) {
                write(store);
            } else if (op < 4) {
                write(peer);
                store.merge(peer);
            } else if (op < 5) {
                write(peer);
                store.set_mergeable_content_json(peer.get_mergeable_content_json());
            } else {
                model.set_sort(pick([null, 'a', 'b']), rand(2) === 1);
            }
            const expected = expectedRows(store, 't', model.sort_cell, model.sort_descending);
            const tables = store.get_table_ids().sort(jsCompare);
            ok = JSON.stringify(m.listed()) === JSON.stringify(expected) &&
                JSON.stringify(m.items) === JSON.stringify(expected) &&
                JSON.stringify(mi.items) === JSON.stringify(tables) && m.problems.length === 0;
            if (!ok) {
                checkMirror(`step ${step}`, m, expected);
                checkMirror(`table ids at step ${step}`, mi, tables);
            }
        }
        check('300 random operations keep the models exact', ok);
        check('emissions happened', m.events.length > 0 && mi.events.length > 0);
    },
};

for (const [name, test] of Object.entries(tests)) {
    currentTest = name;
    try {
        test();
    } catch (e) {
        check('runs without an exception', false, `${e}\n${e.stack}`);
    }
}

print(`# ${checks} checks, ${failures} failed`);
if (failures > 0 || checks === 0)
    System.exit(1);
