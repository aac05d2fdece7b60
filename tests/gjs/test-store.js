// test-store.js: TsMergeableStore through the Tinysync-1.0 typelib (GJS)
//
// SPDX-License-Identifier: MIT
//
// Run by meson (suite "gjs") with G_DEBUG=fatal-criticals, GI_TYPELIB_PATH
// and LD_LIBRARY_PATH pointing at the build tree. Every check is counted;
// callbacks only record, checks run afterwards (GJS logs and swallows
// exceptions thrown in callbacks). Any failure exits with status 1.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Tinysync = '1.0';
const {GLib, Tinysync} = imports.gi;
const System = imports.system;

const T = 1704067200000;   // the TinyBase docs' time
const DOCS_CONTENT = '[[{"pets":[{"fido":[{"species":["dog","Nn1JUF-----FnHIC",290599168]},' +
    '"",2682656941]},"",2102515304]},"",3506229770],[{},"",0]]';
const SIGNALS = ['cell-changed', 'row-changed', 'table-changed', 'tables-changed',
    'value-changed', 'values-changed', 'transaction-finished'];

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

// Compares as JSON, objects regardless of member order (arrays in order)
function canonical(x) {
    if (Array.isArray(x))
        return x.map(canonical);
    if (x !== null && typeof x === 'object')
        return Object.fromEntries(Object.keys(x).sort().map(k => [k, canonical(x[k])]));
    return x;
}

function checkEqual(what, got, expected) {
    const g = JSON.stringify(canonical(got)), e = JSON.stringify(canonical(expected));
    check(what, g === e, `got ${g}, expected ${e}`);
}

function checkError(what, code, func) {
    try {
        func();
        check(`${what} fails`, false, 'no error thrown');
        return null;
    } catch (e) {
        check(`${what} throws GLib.Error`, e instanceof GLib.Error, String(e));
        check(`${what} is Tinysync.Error ${code}`,
            e instanceof GLib.Error && e.matches(Tinysync.Error, code) && e.code === code,
            `${e.domain} ${e.code} ${e.message}`);
        return e;
    }
}

// The hash of PROTOCOL.md §3, to check the store's hashes independently
function fnv1a(string) {
    let h = 2166136261;
    for (const b of new TextEncoder().encode(string)) {
        h ^= b;
        h = Math.imul(h, 16777619) >>> 0;
    }
    return h;
}

function newStore(uniqueId = 'store1', now = T) {
    const store = Tinysync.MergeableStore.new(uniqueId);
    const clock = {now, calls: 0};
    store.set_clock(() => {
        clock.calls++;
        return clock.now;
    });
    return [store, clock];
}

function record(store) {
    const events = [];
    const ids = SIGNALS.map(name =>
        store.connect(name, (st, ...args) => events.push([name, ...args])));
    events.disconnect = () => ids.forEach(id => store.disconnect(id));
    return events;
}

function snapshot(store) {
    return store.get_mergeable_content_json() + store.get_content_json() +
        JSON.stringify(store.get_mergeable_content_hashes());
}

function checkRejected(what, store, code, func) {
    const before = snapshot(store);
    const events = record(store);
    checkError(what, code, func);
    events.disconnect();
    check(`${what} leaves the store unchanged`, snapshot(store) === before);
    checkEqual(`${what} emits nothing`, events, []);
}

const tests = {
    construction() {
        const store = Tinysync.MergeableStore.new('store1');
        checkEqual('unique id', store.get_unique_id(), 'store1');
        checkEqual('unique-id property', store.unique_id, 'store1');
        checkEqual('client id', store.get_client_id(), 'FnHIC');
        checkEqual('client-id property', store.client_id, 'FnHIC');
        const built = new Tinysync.MergeableStore({unique_id: 'store1'});
        checkEqual('GObject construction', built.client_id, 'FnHIC');
        const random = Tinysync.MergeableStore.new(null);
        checkEqual('random unique id length', random.unique_id.length, 16);
        checkEqual('random client id length', random.client_id.length, 5);
        check('random ids differ', random.unique_id !== new Tinysync.MergeableStore().unique_id);
        checkEqual('empty content', store.get_mergeable_content_json(), '[[{},"",0],[{},"",0]]');
        checkEqual('empty hashes', store.get_mergeable_content_hashes(), [0, 0]);
        checkEqual('no table ids', store.get_table_ids(), []);
    },

    clock() {
        const [store, clock] = newStore();
        store.set_tables_json('{"pets":{"fido":{"species":"dog"}}}');
        checkEqual('docs vector', store.get_mergeable_content_json(), DOCS_CONTENT);
        check('clock called', clock.calls > 0);
        checkEqual('hashes', store.get_mergeable_content_hashes(), [3506229770, 0]);
        check('hash of the docs cell', fnv1a('"dog":Nn1JUF-----FnHIC') === 290599168);
        check('row hash from the cell hash',
            (fnv1a('species:290599168') ^ fnv1a('species:0')) >>> 0 === 2682656941);
        clock.now = T + 1;
        store.set_value_number('v', 1);
        const hlc = JSON.parse(store.get_mergeable_content_json())[1][0].v[1];
        check('later HLC after the clock moved', hlc > 'Nn1JUF-----FnHIC', hlc);
        store.set_clock(null);
        store.set_value_number('v', 2);
        const real = JSON.parse(store.get_mergeable_content_json())[1][0].v[1];
        check('real clock is now', real > hlc, real);
    },

    json() {
        const [s] = newStore();
        s.set_content_json('[{"pets":{"fido":{"species":"dog","legs":4}}},{"open":true}]');
        checkEqual('tables', s.get_tables_json(), '{"pets":{"fido":{"species":"dog","legs":4}}}');
        checkEqual('table', s.get_table_json('pets'), '{"fido":{"species":"dog","legs":4}}');
        checkEqual('row', s.get_row_json('pets', 'fido'), '{"species":"dog","legs":4}');
        checkEqual('cell', s.get_cell_json('pets', 'fido', 'legs'), '4');
        checkEqual('absent cell', s.get_cell_json('pets', 'fido', 'nope'), null);
        checkEqual('values', s.get_values_json(), '{"open":true}');
        checkEqual('value', s.get_value_json('open'), 'true');
        s.set_table_json('owners', '{"alice":{"age":30}}');
        s.set_row_json('pets', 'fido', '{"legs":3}');
        s.set_partial_row_json('pets', 'fido', '{"color":"brown"}');
        s.set_cell_json('pets', 'fido', 'tags', '["a",{"b":null}]');
        s.set_partial_values_json('{"motto":"hi"}');
        s.set_value_json('open', 'false');
        checkEqual('content after setters', s.get_content_json(),
            '[{"pets":{"fido":{"legs":3,"color":"brown","tags":["a",{"b":null}]}},' +
            '"owners":{"alice":{"age":30}}},{"open":false,"motto":"hi"}]');
        s.set_values_json('{"n":1e21}');
        checkEqual('numbers like JavaScript', s.get_values_json(), '{"n":1e+21}');
        checkEqual('add_row', s.add_row_json('pets', '{"species":"cat"}', true), '0');
        s.set_tables_json('{"pets":{"rex":{"species":"dog"}}}');
        checkEqual('set_tables replaces', s.get_tables_json(), '{"pets":{"rex":{"species":"dog"}}}');
    },

    variants() {
        const [s] = newStore();
        const cases = [
            ['s', new GLib.Variant('s', 'dög'), 's', 'dög'],
            ['b', new GLib.Variant('b', true), 'b', true],
            ['d', new GLib.Variant('d', 2.5), 'd', 2.5],
            ['i', new GLib.Variant('i', -7), 'd', -7],
            ['x', new GLib.Variant('x', 2 ** 40), 'd', 2 ** 40],
            ['mv', new GLib.Variant('mv', null), 'mv', null],
            ['a{sv}', new GLib.Variant('a{sv}', {a: new GLib.Variant('s', 'x'),
                n: new GLib.Variant('mv', null)}), 'a{sv}', {a: 'x', n: null}],
            ['av', new GLib.Variant('av', [new GLib.Variant('d', 1), new GLib.Variant('b', false)]),
                'av', [1, false]],
            ['v', new GLib.Variant('v', new GLib.Variant('s', 'in')), 's', 'in'],
        ];
        for (const [type, variant, gotType, value] of cases) {
            s.set_cell('t', 'r', 'c', variant);
            const cell = s.get_cell('t', 'r', 'c');
            checkEqual(`${type} cell type`, cell.get_type_string(), gotType);
            checkEqual(`${type} cell value`, cell.recursiveUnpack(), value);
            s.set_value('v', variant);
            checkEqual(`${type} value value`, s.get_value('v').recursiveUnpack(), value);
        }
        checkEqual('object cell as JSON', (s.set_cell('t', 'r', 'o', cases[6][1]),
            s.get_cell_json('t', 'r', 'o')), '{"a":"x","n":null}');
        checkEqual('absent cell', s.get_cell('t', 'r', 'nope'), null);
        checkEqual('absent value', s.get_value('nope'), null);
    },

    conveniences() {
        const [a] = newStore();
        const [b] = newStore();
        a.set_cell_string('t', 'r', 's', 'x');
        a.set_cell_number('t', 'r', 'n', 4);
        a.set_cell_boolean('t', 'r', 'b', true);
        a.set_value_string('vs', 'y');
        a.set_value_number('vn', 0.5);
        a.set_value_boolean('vb', false);
        b.set_content_json('[{"t":{"r":{"s":"x","n":4,"b":true}}},{"vs":"y","vn":0.5,"vb":false}]');
        checkEqual('conveniences content', a.get_content_json(), b.get_content_json());
        checkEqual('same stamps as JSON setters', a.get_mergeable_content_json(),
            b.get_mergeable_content_json());
    },

    idsAndDeleters() {
        const [s] = newStore();
        s.set_content_json('[{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},' +
            '"owners":{"alice":{"age":30}}},{"open":true,"motto":"hi"}]');
        checkEqual('table ids', s.get_table_ids(), ['pets', 'owners']);
        checkEqual('row ids', s.get_row_ids('pets'), ['fido', 'felix']);
        checkEqual('cell ids', s.get_cell_ids('pets', 'fido'), ['species', 'legs']);
        checkEqual('value ids', s.get_value_ids(), ['open', 'motto']);
        checkEqual('has', [s.has_tables(), s.has_table('pets'), s.has_row('pets', 'felix'),
            s.has_cell('pets', 'fido', 'legs'), s.has_values(), s.has_value('open'),
            s.has_table('nope'), s.has_value('nope')], [true, true, true, true, true, true, false, false]);
        checkEqual('row count', s.get_row_count('pets'), 2);
        s.del_cell('owners', 'alice', 'age');
        check('last cell takes row and table', !s.has_row('owners', 'alice') && !s.has_table('owners'));
        s.del_row('pets', 'felix');
        checkEqual('del_row', s.get_row_ids('pets'), ['fido']);
        s.del_table('pets');
        check('del_table', !s.has_tables());
        s.set_cell_string('t', 'r', 'c', 'x');
        s.del_tables();
        checkEqual('del_tables', s.get_tables_json(), '{}');
        s.del_value('open');
        checkEqual('del_value', s.get_value_ids(), ['motto']);
        s.del_values();
        check('del_values', !s.has_values());
        const stamps = JSON.parse(s.get_mergeable_content_json());
        checkEqual('deletions keep stamps', stamps[1][0].open[0], '\uFFFC');
    },

    transactionsAndSignals() {
        const [s] = newStore();
        const counts = {};
        const args = {};
        for (const name of ['cell-changed', 'cell-changed::pets', 'cell-changed::nope', 'row-changed',
            'row-changed::owners', 'table-changed', 'table-changed::pets', 'tables-changed',
            'value-changed', 'value-changed::v', 'values-changed', 'transaction-finished']) {
            s.connect(name, (st, ...a) => {
                counts[name] = (counts[name] || 0) + 1;
                (args[name] = args[name] || []).push(a);
            });
        }
        const seen = [];
        s.start_transaction();
        s.start_transaction();
        s.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4}},"owners":{"alice":{"age":30}}}');
        s.finish_transaction();
        check('nested: still in transaction', s.in_transaction());
        checkEqual('nested: nothing emitted yet', counts, {});
        s.transaction(st => {
            seen.push(st === s, st.in_transaction());
            st.set_values_json('{"v":1,"w":2}');
        });
        checkEqual('transaction() callback', seen, [true, true]);
        checkEqual('transaction() inside a transaction emits nothing', counts, {});
        s.finish_transaction();
        check('transaction closed', !s.in_transaction());
        checkEqual('signal counts', counts, {
            'cell-changed': 3, 'cell-changed::pets': 2, 'row-changed': 2, 'row-changed::owners': 1,
            'table-changed': 2, 'table-changed::pets': 1, 'tables-changed': 1,
            'value-changed': 2, 'value-changed::v': 1, 'values-changed': 1,
            'transaction-finished': 1,
        });
        checkEqual('cell-changed arguments', args['cell-changed'],
            [['pets', 'fido', 'species'], ['pets', 'fido', 'legs'], ['owners', 'alice', 'age']]);
        checkEqual('row-changed::owners arguments', args['row-changed::owners'], [['owners', 'alice']]);
        checkEqual('value-changed::v arguments', args['value-changed::v'], [['v']]);

        const events = record(s);
        s.start_transaction();
        s.set_cell_number('pets', 'fido', 'legs', 3);
        s.set_cell_number('pets', 'fido', 'legs', 4);
        s.finish_transaction();
        checkEqual('net changes only', events, [['transaction-finished']]);
    },

    listeners() {
        const [s] = newStore();
        const calls = {};
        const add = key => (st, ...a) => (calls[key] = calls[key] || []).push(a);
        s.add_cell_listener(null, null, null, add('cell ***'));
        s.add_cell_listener('pets', null, 'species', add('cell pets*species'));
        s.add_row_listener(null, 'alice', add('row *alice'));
        s.add_table_listener('pets', add('table pets'));
        const v = s.add_value_listener(null, add('value *'));
        const ids = {};
        ids.once = s.add_cell_listener(null, null, null, (st, t, r, c) => {
            (calls.once = calls.once || []).push(c);
            st.del_listener(ids.once);
        });
        s.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4}},"owners":{"alice":{"age":30}}}');
        s.set_value_string('motto', 'hi');
        s.del_listener(v);
        s.set_value_string('motto', 'bye');
        checkEqual('listener calls', calls, {
            'cell ***': [['pets', 'fido', 'species'], ['pets', 'fido', 'legs'], ['owners', 'alice', 'age']],
            'cell pets*species': [['pets', 'fido', 'species']],
            'once': ['species'],
            'row *alice': [['owners', 'alice']],
            'table pets': [['pets']],
            'value *': [['motto']],
        });
    },

    transactionChanges() {
        const [s] = newStore();
        const seen = [];
        s.connect('transaction-finished', st => seen.push(st.get_transaction_mergeable_changes_json(false)));
        s.set_tables_json('{"pets":{"fido":{"species":"dog"}}}');
        checkEqual('ContentDiff of the docs example', seen,
            ['[[{"pets":[{"fido":[{"species":["dog","Nn1JUF-----FnHIC"]}]}]}],[{}],1]']);
        checkEqual('outside a transaction', s.get_transaction_mergeable_changes_json(false),
            '[[{}],[{}],1]');
        const [other] = newStore('store2');
        other.apply_mergeable_changes_json(seen[0]);
        checkEqual('replayed on another store', other.get_mergeable_content_json(), DOCS_CONTENT);
    },

    mergeAndDiffs() {
        const [a] = newStore('store1', T);
        const [b] = newStore('store2', T + 1000);
        a.set_content_json('[{"pets":{"fido":{"species":"dog"}}},{"open":true}]');
        b.set_content_json('[{"pets":{"fido":{"species":"wolf"},"felix":{"species":"cat"}}},{"n":1}]');
        const bHashes = JSON.parse(b.get_mergeable_table_hashes_json());
        const [newTables, differing] = JSON.parse(a.get_mergeable_table_diff_json(JSON.stringify(bHashes)));
        checkEqual('table diff: nothing new', newTables, [{}]);
        checkEqual('table diff: differing pets hash is the local one', differing,
            {pets: JSON.parse(a.get_mergeable_content_json())[0][0].pets[2]});
        const openStamp = JSON.parse(a.get_mergeable_content_json())[1][0].open;
        checkEqual('value diff against nothing', JSON.parse(a.get_mergeable_value_diff_json('{}')),
            [{open: [openStamp[0], openStamp[1]]}]);
        checkEqual('value hashes', JSON.parse(a.get_mergeable_value_hashes_json()), {open: openStamp[2]});
        check('value hash is the hash of "true:HLC"', openStamp[2] === fnv1a(`true:${openStamp[1]}`));
        a.merge(b);
        checkEqual('merge: equal hashes', a.get_mergeable_content_hashes(), b.get_mergeable_content_hashes());
        checkEqual('merge: later HLC wins', a.get_cell_json('pets', 'fido', 'species'), '"wolf"');
        checkEqual('merge: same plain content', JSON.parse(a.get_content_json()), JSON.parse(b.get_content_json()));
        const [c] = newStore('store3');
        c.set_mergeable_content_json(a.get_mergeable_content_json());
        checkEqual('set_mergeable_content copies stamps', c.get_mergeable_content_json(),
            a.get_mergeable_content_json());
    },

    errors() {
        const [s] = newStore();
        s.set_content_json('[{"pets":{"fido":{"species":"dog"}}},{"open":true}]');
        const E = Tinysync.Error;
        checkRejected('bad JSON', s, E.INVALID_JSON, () => s.set_tables_json('{oops'));
        checkRejected('bad JSON cell', s, E.INVALID_JSON, () => s.set_cell_json('pets', 'fido', 'x', '{'));
        checkRejected('U+FFFC string', s, E.INVALID_CELL,
            () => s.set_cell('pets', 'fido', 'x', new GLib.Variant('s', '\uFFFC')));
        checkRejected('NaN', s, E.INVALID_CELL,
            () => s.set_cell('pets', 'fido', 'x', new GLib.Variant('d', NaN)));
        checkRejected('Infinity value', s, E.INVALID_CELL,
            () => s.set_value('v', new GLib.Variant('d', Infinity)));
        checkRejected('array instead of object', s, E.INVALID_ARGUMENT, () => s.set_tables_json('[]'));
        checkRejected('empty object', s, E.INVALID_ARGUMENT, () => s.set_tables_json('{}'));
        checkRejected('empty row', s, E.INVALID_ARGUMENT, () => s.set_row_json('pets', 'fido', '{}'));
        const [future] = newStore('future', T + 24 * 3600 * 1000);
        future.set_cell_string('pets', 'fido', 'species', 'wolf');
        checkRejected('HLC a day ahead (apply)', s, E.INVALID_CONTENT,
            () => s.apply_mergeable_changes_json(future.get_mergeable_content_json()));
        checkRejected('HLC a day ahead (set)', s, E.INVALID_CONTENT,
            () => s.set_mergeable_content_json(future.get_mergeable_content_json()));
        checkRejected('bad diff argument', s, E.INVALID_ARGUMENT,
            () => s.get_mergeable_row_diff_json('[]'));
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
