#!/usr/bin/python3
# test_store.py: TsMergeableStore through the Tinysync-1.0 typelib (PyGObject)
#
# SPDX-License-Identifier: MIT
#
# Run by meson (suite "python") with GI_TYPELIB_PATH and LD_LIBRARY_PATH
# pointing at the build tree. Callbacks only record what they see; every
# assertion runs afterwards, because PyGObject prints and swallows
# exceptions raised inside callbacks.
#
# Expected numbers are either TinyBase's documented vectors
# (PROTOCOL.md §3, §5, §6.2, §7) or computed here: by an independent
# implementation of TinyBase's hash (FNV-1a, closed form of §7.4) and diff
# rules (§10) over the parsed mergeable content, or by running the same
# operations on a second store.

import gc
import json
import subprocess
import sys
import textwrap
import time
import unittest
import weakref

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Tinysync', '1.0')
from gi.repository import GLib, Tinysync  # noqa: E402

T = 1704067200000          # the TinyBase docs' time: 2024-01-01T00:00:00Z
ALPHABET = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'
DELETED = '\ufffc'
ENCODED = '\ufffd'
DOCS_CONTENT = ('[[{"pets":[{"fido":[{"species":["dog","Nn1JUF-----FnHIC",290599168]},'
                '"",2682656941]},"",2102515304]},"",3506229770],[{},"",0]]')
SIGNALS = ('cell-changed', 'row-changed', 'table-changed', 'tables-changed',
           'value-changed', 'values-changed', 'transaction-finished')


# ---- An independent implementation of TinyBase's hashes (PROTOCOL.md §3, §7)

def fnv1a(s):
    h = 2166136261
    for b in s.encode('utf-8'):
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def js_json(value):
    """JSON.stringify of the plain values these tests store."""
    if value is None:
        return 'null'
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False, separators=(',', ':'))


def leaf_hash(value, hlc):
    return fnv1a(js_json(None if value == DELETED else value) + ':' + hlc)


def fold(id_, child_hash):
    return fnv1a('%s:%d' % (id_, child_hash))


def client_id_of(unique_id):
    h = fnv1a(unique_id)
    return ''.join(ALPHABET[(h >> shift) & 63] for shift in (24, 18, 12, 6, 0))


def decode_hlc(hlc):
    """(logical time, counter, client id) of an HLC (§5.1)."""
    d = [ALPHABET.index(c) for c in hlc[:11]]
    t = 0
    for x in d[:7]:
        t = t * 64 + x
    c = 0
    for x in d[7:]:
        c = c * 64 + x
    return t, c, hlc[11:]


def closed_form_check(test, content):
    """Recomputes every hash of parsed mergeable content (§7.4)."""
    (tables, tables_hlc, tables_hash), (values, values_hlc, values_hash) = content
    test.assertEqual(tables_hlc, '')
    test.assertEqual(values_hlc, '')
    tables_acc = 0
    for table_id, (rows, table_hlc, table_hash) in tables.items():
        test.assertEqual(table_hlc, '')
        table_acc = 0
        for row_id, (cells, row_hlc, row_hash) in rows.items():
            test.assertEqual(row_hlc, '')
            row_acc = 0
            for cell_id, (cell, hlc, cell_hash) in cells.items():
                test.assertEqual(cell_hash, leaf_hash(cell, hlc), (table_id, row_id, cell_id))
                row_acc ^= fold(cell_id, cell_hash) ^ fold(cell_id, 0)
            test.assertEqual(row_hash, row_acc, (table_id, row_id))
            table_acc ^= fold(row_id, row_hash)
        test.assertEqual(table_hash, table_acc, table_id)
        tables_acc ^= fold(table_id, table_hash)
    test.assertEqual(tables_hash, tables_acc)
    values_acc = 0
    for value_id, (value, hlc, value_hash) in values.items():
        test.assertEqual(value_hash, leaf_hash(value, hlc), value_id)
        values_acc ^= fold(value_id, value_hash) ^ fold(value_id, 0)
    test.assertEqual(values_hash, values_acc)


# ---- The diff rules of §10, over parsed mergeable content

def unhashed(thing, hlc):
    return [thing, hlc] if hlc else [thing]


def unhashed_table(table):
    rows, hlc, _ = table
    return unhashed({rid: unhashed({cid: unhashed(c[0], c[1]) for cid, c in row[0].items()}, row[1])
                     for rid, row in rows.items()}, hlc)


def expect_table_diff(content, other_table_hashes):
    tables, hlc, _ = content[0]
    new, differing = {}, {}
    for tid, table in tables.items():
        if tid not in other_table_hashes:
            new[tid] = unhashed_table(table)
        elif other_table_hashes[tid] != table[2]:
            differing[tid] = table[2]
    return [unhashed(new, hlc), differing]


def expect_row_hashes(content, other_table_hashes):
    tables = content[0][0]
    return {tid: {rid: row[2] for rid, row in tables[tid][0].items()}
            for tid, h in other_table_hashes.items()
            if tid in tables and tables[tid][2] != h and tables[tid][0]}


def expect_row_diff(content, other_row_hashes):
    tables, hlc, _ = content[0]
    new, differing = {}, {}
    for tid, rows in other_row_hashes.items():
        if tid not in tables:
            continue
        for rid, row in tables[tid][0].items():
            if rid not in rows:
                new.setdefault(tid, [{}])[0][rid] = unhashed_table([{rid: row}, '', 0])[0][rid]
            elif rows[rid] != row[2]:
                differing.setdefault(tid, {})[rid] = row[2]
    return [unhashed(new, hlc), differing]


def expect_cell_hashes(content, other_row_hashes):
    tables = content[0][0]
    out = {}
    for tid, rows in other_row_hashes.items():
        for rid, h in rows.items():
            if tid in tables and rid in tables[tid][0]:
                row = tables[tid][0][rid]
                if row[2] != h and row[0]:
                    out.setdefault(tid, {})[rid] = {cid: c[2] for cid, c in row[0].items()}
    return out


def expect_cell_diff(content, other_cell_hashes):
    tables, hlc, _ = content[0]
    out = {}
    for tid, rows in other_cell_hashes.items():
        if tid not in tables:
            continue
        for rid, cells in rows.items():
            if rid not in tables[tid][0]:
                continue
            for cid, c in tables[tid][0][rid][0].items():
                if cells.get(cid) != c[2]:
                    table = out.setdefault(tid, [{}])
                    table[0].setdefault(rid, [{}])[0][cid] = [c[0], c[1]]
    return unhashed(out, hlc)


def expect_value_diff(content, other_value_hashes):
    values, hlc, _ = content[1]
    return unhashed({vid: unhashed(v[0], v[1]) for vid, v in values.items()
                     if other_value_hashes.get(vid) != v[2]}, hlc)


# ---- Helpers

class Clock:
    """A settable time source; callable so set_clock() can take it."""

    def __init__(self, now=T):
        self.now = now
        self.calls = 0

    def __call__(self, *user_data):
        self.calls += 1
        return self.now


def new_store(unique_id='store1', now=T):
    store = Tinysync.MergeableStore.new(unique_id)
    clock = Clock(now)
    store.set_clock(clock)
    store.clock = clock       # PyGObject keeps the Python attribute on the wrapper
    return store


def content(store):
    return json.loads(store.get_mergeable_content_json())


def snapshot(store):
    return (store.get_mergeable_content_json(), tuple(store.get_mergeable_content_hashes()),
            store.get_content_json())


class Recorder:
    """Records every signal emission of a store, in order."""

    def __init__(self, store, signals=SIGNALS):
        self.events = []
        self.handlers = [(store, store.connect(name, self._record, name)) for name in signals]

    def _record(self, store, *args):
        name = args[-1]
        self.events.append((name,) + tuple(args[:-1]))

    def named(self, name):
        return [e[1:] for e in self.events if e[0] == name]

    def count(self, name):
        return len(self.named(name))

    def clear(self):
        self.events.clear()

    def disconnect(self):
        for store, handler in self.handlers:
            store.disconnect(handler)


class StoreTestCase(unittest.TestCase):
    def assertTsError(self, code, func, *args):
        with self.assertRaises(GLib.Error) as cm:
            func(*args)
        err = cm.exception
        self.assertEqual(err.domain, GLib.quark_to_string(Tinysync.Error.quark()))
        self.assertEqual(err.domain, 'ts-error-quark')
        self.assertEqual(err.code, int(code), err.message)
        self.assertTrue(err.matches(Tinysync.Error.quark(), code))
        self.assertTrue(err.message)
        return err

    def assertRejected(self, store, code, func, *args):
        """func(*args) fails with code and leaves store and listeners untouched."""
        before = snapshot(store)
        rec = Recorder(store)
        err = self.assertTsError(code, func, *args)
        rec.disconnect()
        self.assertEqual(snapshot(store), before)
        self.assertEqual(rec.events, [])
        self.assertFalse(store.in_transaction())
        return err


# ---- Construction and properties

class TestConstruction(StoreTestCase):
    def test_new_with_unique_id(self):
        store = Tinysync.MergeableStore.new('store1')
        self.assertIsInstance(store, Tinysync.MergeableStore)
        self.assertEqual(store.get_unique_id(), 'store1')
        self.assertEqual(store.props.unique_id, 'store1')
        self.assertEqual(store.get_property('unique-id'), 'store1')
        self.assertEqual(store.get_client_id(), 'FnHIC')     # PROTOCOL.md §5.2
        self.assertEqual(store.props.client_id, 'FnHIC')

    def test_client_id_is_derived_from_unique_id(self):
        self.assertEqual(client_id_of('store1'), 'FnHIC')    # the spec's vector
        self.assertEqual(client_id_of('s1'), '7JQY8')
        for unique_id in ('s1', 'client1', 'a', 'tinybase', 'ünïcødé', 'x' * 100):
            store = Tinysync.MergeableStore.new(unique_id)
            self.assertEqual(store.props.client_id, client_id_of(unique_id), unique_id)

    def test_new_without_unique_id(self):
        a = Tinysync.MergeableStore.new(None)
        b = Tinysync.MergeableStore.new(None)
        for store in (a, b):
            self.assertEqual(len(store.props.unique_id), 16)
            self.assertTrue(all(c in ALPHABET for c in store.props.unique_id))
            self.assertEqual(store.props.client_id, client_id_of(store.props.unique_id))
        self.assertNotEqual(a.props.unique_id, b.props.unique_id)

    def test_gobject_construction(self):
        store = Tinysync.MergeableStore(unique_id='store1')
        self.assertEqual(store.props.client_id, 'FnHIC')
        random = Tinysync.MergeableStore()
        self.assertEqual(len(random.props.unique_id), 16)
        self.assertEqual(len(random.props.client_id), 5)

    def test_client_id_is_read_only(self):
        store = Tinysync.MergeableStore.new('store1')
        with self.assertRaises(TypeError):
            store.props.client_id = 'AAAAA'
        self.assertEqual(store.props.client_id, 'FnHIC')

    def test_empty_store(self):
        store = Tinysync.MergeableStore.new('store1')
        self.assertEqual(store.get_mergeable_content_json(), '[[{},"",0],[{},"",0]]')
        self.assertEqual(tuple(store.get_mergeable_content_hashes()), (0, 0))
        self.assertEqual(store.get_tables_json(), '{}')
        self.assertEqual(store.get_values_json(), '{}')
        self.assertEqual(store.get_content_json(), '[{},{}]')
        self.assertFalse(store.has_tables())
        self.assertFalse(store.has_values())
        self.assertEqual(store.get_table_ids(), [])
        self.assertEqual(store.get_value_ids(), [])
        self.assertFalse(store.in_transaction())

    def test_store_is_freed(self):
        store = new_store()
        store.set_tables_json('{"t":{"r":{"c":1}}}')
        ref = weakref.ref(store)
        del store
        gc.collect()
        self.assertIsNone(ref())


# ---- The clock

class TestClock(StoreTestCase):
    def test_docs_vector(self):
        store = new_store('store1', T)
        store.set_tables_json('{"pets":{"fido":{"species":"dog"}}}')
        self.assertEqual(store.get_mergeable_content_json(), DOCS_CONTENT)
        self.assertEqual(tuple(store.get_mergeable_content_hashes()), (3506229770, 0))
        self.assertGreater(store.clock.calls, 0)

    def test_same_ops_same_stamps(self):
        a, b = new_store('store1'), new_store('store1')
        for store in (a, b):
            store.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4}}}')
            store.clock.now += 10
            store.set_value_json('open', 'true')
            store.del_cell('pets', 'fido', 'legs')
        self.assertEqual(a.get_mergeable_content_json(), b.get_mergeable_content_json())

    def test_clock_user_data(self):
        seen = []

        def clock(data):
            seen.append(data)
            return T

        store = Tinysync.MergeableStore.new('store1')
        store.set_clock(clock, 'my data')
        store.set_tables_json('{"pets":{"fido":{"species":"dog"}}}')
        self.assertEqual(store.get_mergeable_content_json(), DOCS_CONTENT)
        self.assertTrue(seen)
        self.assertEqual(set(seen), {'my data'})

    def test_counters_and_time(self):
        store = new_store()
        store.set_cell_string('t', 'r', 'a', 'x')
        store.set_cell_string('t', 'r', 'b', 'x')
        store.clock.now = T + 5
        store.set_cell_string('t', 'r', 'c', 'x')
        store.clock.now = T - 1000           # backwards: logical time is kept
        store.set_cell_string('t', 'r', 'd', 'x')
        cells = content(store)[0][0]['t'][0]['r'][0]
        stamps = {cid: decode_hlc(cell[1]) for cid, cell in cells.items()}
        self.assertEqual(stamps['a'], (T, 0, 'FnHIC'))
        self.assertEqual(stamps['b'], (T, 1, 'FnHIC'))
        self.assertEqual(stamps['c'], (T + 5, 0, 'FnHIC'))
        self.assertEqual(stamps['d'], (T + 5, 1, 'FnHIC'))
        hlcs = [cells[c][1] for c in 'abcd']
        self.assertEqual(hlcs, sorted(hlcs))

    def test_clock_is_released(self):
        store = Tinysync.MergeableStore.new('store1')
        clock = Clock()
        ref = weakref.ref(clock)
        store.set_clock(clock)
        del clock
        gc.collect()
        self.assertIsNotNone(ref())
        store.set_clock(None)
        gc.collect()
        self.assertIsNone(ref(), 'set_clock() must drop the previous callable')

        clock = Clock()
        ref = weakref.ref(clock)
        store.set_clock(clock)
        del clock
        del store
        gc.collect()
        self.assertIsNone(ref(), 'finalizing the store must drop the callable')

    def test_real_clock(self):
        store = Tinysync.MergeableStore.new('store1')
        store.set_clock(Clock())
        store.set_clock(None)
        before = int(time.time() * 1000)
        store.set_value_number('v', 1)
        after = int(time.time() * 1000)
        t, counter, client = decode_hlc(content(store)[1][0]['v'][1])
        self.assertLessEqual(before - 1, t)
        self.assertLessEqual(t, after + 1)
        self.assertEqual(client, 'FnHIC')


# ---- Plain JSON getters and setters

class TestJson(StoreTestCase):
    def setUp(self):
        self.store = new_store()
        self.store.set_content_json(
            '[{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
            '"owners":{"alice":{"age":30}}},{"open":true,"motto":"hi"}]')

    def test_getters(self):
        s = self.store
        self.assertEqual(s.get_tables_json(),
                         '{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
                         '"owners":{"alice":{"age":30}}}')
        self.assertEqual(s.get_table_json('pets'),
                         '{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}}')
        self.assertEqual(s.get_table_json('nope'), '{}')
        self.assertEqual(s.get_row_json('pets', 'fido'), '{"species":"dog","legs":4}')
        self.assertEqual(s.get_row_json('pets', 'nope'), '{}')
        self.assertEqual(s.get_cell_json('pets', 'fido', 'species'), '"dog"')
        self.assertEqual(s.get_cell_json('pets', 'fido', 'legs'), '4')
        self.assertIsNone(s.get_cell_json('pets', 'fido', 'nope'))
        self.assertEqual(s.get_values_json(), '{"open":true,"motto":"hi"}')
        self.assertEqual(s.get_value_json('open'), 'true')
        self.assertIsNone(s.get_value_json('nope'))
        self.assertEqual(s.get_content_json(), '[%s,%s]' % (s.get_tables_json(), s.get_values_json()))

    def test_set_tables(self):
        s = self.store
        s.set_tables_json('{"pets":{"fido":{"species":"wolf"}},"toys":{"ball":{"red":true}}}')
        self.assertEqual(s.get_tables_json(),
                         '{"pets":{"fido":{"species":"wolf"}},"toys":{"ball":{"red":true}}}')
        self.assertEqual(s.get_values_json(), '{"open":true,"motto":"hi"}')
        # the deleted cells, row and table keep deletion stamps
        tables = content(s)[0][0]
        self.assertEqual(tables['pets'][0]['fido'][0]['legs'][0], DELETED)
        self.assertEqual(tables['pets'][0]['felix'][0]['species'][0], DELETED)
        self.assertEqual(tables['owners'][0]['alice'][0]['age'][0], DELETED)

    def test_set_tables_empty_row_counts_as_absent(self):
        s = self.store
        s.set_tables_json('{"pets":{"fido":{"species":"dog"},"felix":{}}}')
        self.assertEqual(s.get_tables_json(), '{"pets":{"fido":{"species":"dog"}}}')

    def test_set_table(self):
        s = self.store
        s.set_table_json('pets', '{"rex":{"species":"dog"}}')
        self.assertEqual(s.get_table_json('pets'), '{"rex":{"species":"dog"}}')
        self.assertEqual(s.get_table_json('owners'), '{"alice":{"age":30}}')

    def test_set_row_and_partial_row(self):
        s = self.store
        s.set_row_json('pets', 'fido', '{"legs":3,"color":"brown"}')
        self.assertEqual(s.get_row_json('pets', 'fido'), '{"legs":3,"color":"brown"}')
        s.set_partial_row_json('pets', 'fido', '{"species":"dog","legs":4}')
        self.assertEqual(s.get_row_json('pets', 'fido'),
                         '{"legs":4,"color":"brown","species":"dog"}')

    def test_set_cell_and_same_value(self):
        s = self.store
        s.set_cell_json('pets', 'fido', 'legs', '3')
        self.assertEqual(s.get_cell_json('pets', 'fido', 'legs'), '3')
        before = s.get_mergeable_content_json()
        rec = Recorder(s)
        s.set_cell_json('pets', 'fido', 'legs', '3')      # no change, no stamp
        self.assertEqual(s.get_mergeable_content_json(), before)
        self.assertEqual(rec.named('cell-changed'), [])
        self.assertEqual(rec.count('transaction-finished'), 1)

    def test_values(self):
        s = self.store
        s.set_values_json('{"motto":"bye","count":1}')
        self.assertEqual(s.get_values_json(), '{"motto":"bye","count":1}')
        s.set_partial_values_json('{"open":false}')
        self.assertEqual(s.get_values_json(), '{"motto":"bye","count":1,"open":false}')
        s.set_value_json('count', '2')
        self.assertEqual(s.get_value_json('count'), '2')
        self.assertEqual(content(s)[1][0]['motto'][0], 'bye')

    def test_set_content_empty_deletes_everything(self):
        s = self.store
        s.set_content_json('[{},{}]')
        self.assertEqual(s.get_content_json(), '[{},{}]')
        self.assertFalse(s.has_tables())
        self.assertFalse(s.has_values())

    def test_object_and_array_cells(self):
        s = self.store
        s.set_cell_json('pets', 'fido', 'tags', '{"a":[1,2,{"b":null}],"c":"d"}')
        s.set_value_json('list', '[true,"x",1.5]')
        self.assertEqual(s.get_cell_json('pets', 'fido', 'tags'), '{"a":[1,2,{"b":null}],"c":"d"}')
        self.assertEqual(s.get_value_json('list'), '[true,"x",1.5]')
        stamps = content(s)
        self.assertEqual(stamps[0][0]['pets'][0]['fido'][0]['tags'][0],
                         ENCODED + '{"a":[1,2,{"b":null}],"c":"d"}')
        self.assertEqual(stamps[1][0]['list'][0], ENCODED + '[true,"x",1.5]')
        closed_form_check(self, stamps)

    def test_numbers_are_written_like_javascript(self):
        s = self.store
        for text, expected in (('1e21', '1e+21'), ('0.1', '0.1'), ('-0', '0'),
                               ('1.0', '1'), ('123456789012', '123456789012'),
                               ('1e-7', '1e-7'), ('2.5e-3', '0.0025')):
            s.set_value_json('n', text)
            self.assertEqual(s.get_value_json('n'), expected, text)

    def test_js_property_order(self):
        s = new_store()
        s.set_row_json('t', 'r', '{"b":1,"10":2,"a":3,"2":4}')
        self.assertEqual(s.get_row_json('t', 'r'), '{"2":4,"10":2,"b":1,"a":3}')
        self.assertEqual(s.get_cell_ids('t', 'r'), ['2', '10', 'b', 'a'])

    def test_add_row(self):
        s = new_store()
        self.assertEqual(s.add_row_json('pets', '{"n":0}', True), '0')
        self.assertEqual(s.add_row_json('pets', '{"n":1}', True), '1')
        self.assertEqual(s.add_row_json('pets', '{"n":2}', True), '2')
        s.del_row('pets', '1')
        self.assertEqual(s.add_row_json('pets', '{"n":3}', False), '3')
        self.assertEqual(s.add_row_json('pets', '{"n":4}', True), '1')
        self.assertEqual(s.get_row_json('pets', '1'), '{"n":4}')
        self.assertEqual(s.get_row_count('pets'), 4)

    def test_default_content(self):
        s = new_store('store1')
        s.set_default_content_json('[{"t":{"r":{"c":1}}},{"v":"x"}]')
        self.assertEqual(s.get_content_json(), '[{"t":{"r":{"c":1}}},{"v":"x"}]')
        stamps = content(s)
        self.assertEqual(stamps[0][0]['t'][0]['r'][0]['c'][1], '')
        self.assertEqual(stamps[1][0]['v'][1], '')
        closed_form_check(self, stamps)
        # any stamped value, here a peer's, wins over defaulted content
        peer = new_store('store2')
        peer.set_cell_json('t', 'r', 'c', '2')
        s.apply_mergeable_changes_json(peer.get_mergeable_content_json())
        self.assertEqual(s.get_cell_json('t', 'r', 'c'), '2')


# ---- GVariant cells

class TestVariant(StoreTestCase):
    def setUp(self):
        self.store = new_store()

    def roundtrip(self, variant):
        self.store.set_cell('t', 'r', 'c', variant)
        self.store.set_value('v', variant)
        got = self.store.get_cell('t', 'r', 'c')
        self.assertEqual(got, self.store.get_value('v'))
        return got

    def test_string(self):
        got = self.roundtrip(GLib.Variant('s', 'dög "quoted"\n'))
        self.assertEqual(got.get_type_string(), 's')
        self.assertEqual(got.unpack(), 'dög "quoted"\n')
        self.assertEqual(self.store.get_cell_json('t', 'r', 'c'), '"dög \\"quoted\\"\\n"')

    def test_boolean(self):
        for b in (True, False):
            got = self.roundtrip(GLib.Variant('b', b))
            self.assertEqual(got.get_type_string(), 'b')
            self.assertIs(got.unpack(), b)

    def test_double(self):
        got = self.roundtrip(GLib.Variant('d', 2.5))
        self.assertEqual(got.get_type_string(), 'd')
        self.assertEqual(got.unpack(), 2.5)

    def test_integer_types_become_doubles(self):
        for type_string, value in (('y', 255), ('n', -32768), ('q', 65535), ('i', -7),
                                   ('u', 4294967295), ('x', -(2 ** 53)), ('t', 2 ** 53),
                                   ('h', 3)):
            got = self.roundtrip(GLib.Variant(type_string, value))
            self.assertEqual(got.get_type_string(), 'd', type_string)
            self.assertEqual(got.unpack(), float(value), type_string)
            self.assertEqual(self.store.get_cell_json('t', 'r', 'c'), str(value))

    def test_null(self):
        got = self.roundtrip(GLib.Variant('mv', None))
        self.assertEqual(got.get_type_string(), 'mv')
        self.assertIsNone(got.unpack())
        self.assertEqual(self.store.get_cell_json('t', 'r', 'c'), 'null')
        self.assertTrue(self.store.has_cell('t', 'r', 'c'))
        # a maybe with a value is its value
        got = self.roundtrip(GLib.Variant('ms', 'x'))
        self.assertEqual(got.get_type_string(), 's')

    def test_dictionary(self):
        v = GLib.Variant('a{sv}', {
            'name': GLib.Variant('s', 'fido'),
            'legs': GLib.Variant('i', 4),
            'tags': GLib.Variant('as', ['a', 'b']),
            'owner': GLib.Variant('a{sv}', {'nick': GLib.Variant('mv', None)}),
        })
        got = self.roundtrip(v)
        self.assertEqual(got.get_type_string(), 'a{sv}')
        self.assertEqual(got.unpack(), {'name': 'fido', 'legs': 4.0, 'tags': ['a', 'b'],
                                        'owner': {'nick': None}})
        self.assertEqual(self.store.get_cell_json('t', 'r', 'c'),
                         '{"name":"fido","legs":4,"tags":["a","b"],"owner":{"nick":null}}')
        self.assertEqual(self.roundtrip(GLib.Variant('a{ss}', {'k': 'v'})).unpack(), {'k': 'v'})

    def test_array(self):
        v = GLib.Variant('av', [GLib.Variant('s', 'x'), GLib.Variant('d', 1.5),
                                GLib.Variant('b', True), GLib.Variant('av', [])])
        got = self.roundtrip(v)
        self.assertEqual(got.get_type_string(), 'av')
        self.assertEqual(got.unpack(), ['x', 1.5, True, []])
        self.assertEqual(self.store.get_cell_json('t', 'r', 'c'), '["x",1.5,true,[]]')
        # typed arrays and tuples are JSON arrays too
        self.assertEqual(self.roundtrip(GLib.Variant('ai', [1, 2])).unpack(), [1.0, 2.0])
        self.assertEqual(self.roundtrip(GLib.Variant('(sib)', ('a', 1, False))).unpack(),
                         ['a', 1.0, False])
        self.assertEqual(self.roundtrip(GLib.Variant('as', [])).get_type_string(), 'av')

    def test_variant_is_unwrapped(self):
        got = self.roundtrip(GLib.Variant('v', GLib.Variant('s', 'inner')))
        self.assertEqual(got.get_type_string(), 's')
        self.assertEqual(got.unpack(), 'inner')

    def test_json_and_variant_agree(self):
        self.store.set_cell_json('t', 'r', 'j', '{"a":[1,"b",null,true]}')
        got = self.store.get_cell('t', 'r', 'j')
        self.assertEqual(got.get_type_string(), 'a{sv}')
        self.assertEqual(got.unpack(), {'a': [1.0, 'b', None, True]})

    def test_absent(self):
        self.assertIsNone(self.store.get_cell('t', 'r', 'nope'))
        self.assertIsNone(self.store.get_value('nope'))

    def test_same_stamps_as_json(self):
        other = new_store()
        self.store.set_cell('t', 'r', 'c', GLib.Variant('a{sv}', {'a': GLib.Variant('i', 1)}))
        other.set_cell_json('t', 'r', 'c', '{"a":1}')
        self.assertEqual(self.store.get_mergeable_content_json(), other.get_mergeable_content_json())


# ---- The C conveniences

class TestConveniences(StoreTestCase):
    def test_cells(self):
        s = new_store()
        s.set_cell_string('pets', 'fido', 'species', 'dog')
        s.set_cell_number('pets', 'fido', 'legs', 4)
        s.set_cell_boolean('pets', 'fido', 'good', True)
        s.set_cell_number('pets', 'fido', 'weight', 12.5)
        self.assertEqual(s.get_row_json('pets', 'fido'),
                         '{"species":"dog","legs":4,"good":true,"weight":12.5}')
        self.assertEqual(s.get_cell('pets', 'fido', 'good').unpack(), True)

    def test_values(self):
        s = new_store()
        s.set_value_string('motto', 'hi')
        s.set_value_number('count', -0.0)
        s.set_value_boolean('open', False)
        self.assertEqual(s.get_values_json(), '{"motto":"hi","count":0,"open":false}')

    def test_same_stamps_as_json(self):
        a, b = new_store(), new_store()
        a.set_cell_string('t', 'r', 's', 'x')
        a.set_cell_number('t', 'r', 'n', 1.5)
        a.set_cell_boolean('t', 'r', 'b', True)
        a.set_value_string('vs', 'y')
        a.set_value_number('vn', 2)
        a.set_value_boolean('vb', False)
        b.set_cell_json('t', 'r', 's', '"x"')
        b.set_cell_json('t', 'r', 'n', '1.5')
        b.set_cell_json('t', 'r', 'b', 'true')
        b.set_value_json('vs', '"y"')
        b.set_value_json('vn', '2')
        b.set_value_json('vb', 'false')
        self.assertEqual(a.get_mergeable_content_json(), b.get_mergeable_content_json())


# ---- Ids, existence, counts

class TestIds(StoreTestCase):
    def test_ids(self):
        s = new_store()
        s.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
                          '"owners":{"alice":{"age":30}}}')
        s.set_values_json('{"open":true,"motto":"hi"}')
        self.assertEqual(s.get_table_ids(), ['pets', 'owners'])
        self.assertEqual(s.get_row_ids('pets'), ['fido', 'felix'])
        self.assertEqual(s.get_row_ids('nope'), [])
        self.assertEqual(s.get_cell_ids('pets', 'fido'), ['species', 'legs'])
        self.assertEqual(s.get_cell_ids('pets', 'nope'), [])
        self.assertEqual(s.get_value_ids(), ['open', 'motto'])
        self.assertTrue(s.has_tables())
        self.assertTrue(s.has_table('pets'))
        self.assertFalse(s.has_table('nope'))
        self.assertTrue(s.has_row('pets', 'felix'))
        self.assertFalse(s.has_row('pets', 'nope'))
        self.assertTrue(s.has_cell('pets', 'fido', 'legs'))
        self.assertFalse(s.has_cell('pets', 'felix', 'legs'))
        self.assertTrue(s.has_values())
        self.assertTrue(s.has_value('motto'))
        self.assertFalse(s.has_value('nope'))
        self.assertEqual(s.get_row_count('pets'), 2)
        self.assertEqual(s.get_row_count('owners'), 1)
        self.assertEqual(s.get_row_count('nope'), 0)

    def test_unicode_ids(self):
        s = new_store()
        s.set_cell_string('tåble', 'rôw', 'cèll 🐕', 'v')
        self.assertEqual(s.get_table_ids(), ['tåble'])
        self.assertEqual(s.get_cell_ids('tåble', 'rôw'), ['cèll 🐕'])
        self.assertEqual(s.get_tables_json(), '{"tåble":{"rôw":{"cèll 🐕":"v"}}}')
        closed_form_check(self, content(s))


# ---- Deleters

class TestDeleters(StoreTestCase):
    def setUp(self):
        self.store = new_store()
        self.store.set_content_json(
            '[{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
            '"owners":{"alice":{"age":30}}},{"open":true,"motto":"hi"}]')

    def test_del_cell_takes_last_row_and_table(self):
        s = self.store
        s.del_cell('pets', 'fido', 'legs')
        self.assertEqual(s.get_row_json('pets', 'fido'), '{"species":"dog"}')
        s.del_cell('owners', 'alice', 'age')
        self.assertFalse(s.has_row('owners', 'alice'))
        self.assertFalse(s.has_table('owners'))
        self.assertEqual(s.get_table_ids(), ['pets'])
        stamps = content(s)
        self.assertEqual(stamps[0][0]['owners'][0]['alice'][0]['age'][0], DELETED)
        self.assertEqual(decode_hlc(stamps[0][0]['owners'][0]['alice'][0]['age'][1])[2], 'FnHIC')
        closed_form_check(self, stamps)

    def test_del_row_table_tables(self):
        s = self.store
        s.del_row('pets', 'felix')
        self.assertEqual(s.get_row_ids('pets'), ['fido'])
        s.del_table('pets')
        self.assertEqual(s.get_table_ids(), ['owners'])
        s.del_tables()
        self.assertFalse(s.has_tables())
        self.assertEqual(s.get_tables_json(), '{}')
        self.assertTrue(s.has_values())
        stamps = content(s)
        cells = [c for t in stamps[0][0].values() for r in t[0].values() for c in r[0].values()]
        self.assertEqual(len(cells), 4)
        self.assertTrue(all(c[0] == DELETED for c in cells))
        closed_form_check(self, stamps)

    def test_del_values(self):
        s = self.store
        s.del_value('open')
        self.assertEqual(s.get_values_json(), '{"motto":"hi"}')
        s.del_values()
        self.assertFalse(s.has_values())
        self.assertEqual(s.get_values_json(), '{}')
        self.assertTrue(all(v[0] == DELETED for v in content(s)[1][0].values()))

    def test_deleting_absent_things_changes_nothing(self):
        s = self.store
        before = snapshot(s)
        rec = Recorder(s)
        s.del_cell('pets', 'fido', 'nope')
        s.del_row('pets', 'nope')
        s.del_table('nope')
        s.del_value('nope')
        self.assertEqual(snapshot(s), before)
        self.assertEqual([e for e in rec.events if e[0] != 'transaction-finished'], [])


# ---- Transactions

class TestTransactions(StoreTestCase):
    def test_nesting(self):
        s = new_store()
        rec = Recorder(s)
        s.start_transaction()
        self.assertTrue(s.in_transaction())
        s.set_cell_string('t', 'r', 'a', 'x')
        s.start_transaction()
        s.set_cell_string('t', 'r', 'b', 'y')
        s.finish_transaction()
        self.assertTrue(s.in_transaction())
        self.assertEqual(rec.events, [])        # nothing until the outermost finishes
        s.set_value_number('v', 1)
        s.finish_transaction()
        self.assertFalse(s.in_transaction())
        self.assertEqual(rec.named('cell-changed'), [('t', 'r', 'a'), ('t', 'r', 'b')])
        self.assertEqual(rec.named('row-changed'), [('t', 'r')])
        self.assertEqual(rec.named('value-changed'), [('v',)])
        self.assertEqual(rec.count('transaction-finished'), 1)

    def test_transaction_callback(self):
        s = new_store()
        rec = Recorder(s)
        seen = []

        def body(store, *user_data):
            seen.append((store, store.in_transaction(), user_data))
            store.set_cell_string('t', 'r', 'a', 'x')
            store.set_cell_number('t', 'r', 'b', 2)
            seen.append(len(rec.events))

        s.transaction(body, 'data')
        self.assertEqual(len(seen), 2)
        self.assertIs(seen[0][0], s)
        self.assertTrue(seen[0][1])
        self.assertEqual(seen[0][2], ('data',))
        self.assertEqual(seen[1], 0)
        self.assertFalse(s.in_transaction())
        self.assertEqual(rec.count('cell-changed'), 2)
        self.assertEqual(rec.count('transaction-finished'), 1)
        self.assertEqual(s.get_row_json('t', 'r'), '{"a":"x","b":2}')

    def test_net_changes_only(self):
        s = new_store()
        s.set_cell_string('t', 'r', 'a', 'x')
        rec = Recorder(s)
        s.start_transaction()
        s.set_cell_string('t', 'r', 'a', 'changed')
        s.set_cell_string('t', 'r', 'a', 'x')        # back to what it was
        s.set_value_number('tmp', 1)
        s.del_value('tmp')                           # never existed before
        s.finish_transaction()
        self.assertEqual(rec.events, [('transaction-finished',)])

    def test_empty_transaction(self):
        s = new_store()
        rec = Recorder(s)
        s.start_transaction()
        s.finish_transaction()
        self.assertEqual(rec.events, [('transaction-finished',)])


# ---- Signals

class TestSignals(StoreTestCase):
    def test_detailed_signals(self):
        s = new_store()
        counts = {}
        args = {}

        def handler(store, *a):
            name = a[-1]
            counts[name] = counts.get(name, 0) + 1
            args.setdefault(name, []).append(tuple(a[:-1]))

        for name in ('cell-changed', 'cell-changed::pets', 'cell-changed::owners',
                     'cell-changed::nope', 'row-changed', 'row-changed::owners',
                     'table-changed', 'table-changed::pets', 'tables-changed',
                     'value-changed', 'value-changed::v', 'value-changed::nope',
                     'values-changed', 'transaction-finished'):
            s.connect(name, handler, name)
        rec = Recorder(s)

        s.transaction(lambda store: (
            store.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4},'
                                  '"felix":{"species":"cat"}},"owners":{"alice":{"age":30}}}'),
            store.set_values_json('{"v":1,"w":2}')))

        self.assertEqual(counts, {
            'cell-changed': 4, 'cell-changed::pets': 3, 'cell-changed::owners': 1,
            'row-changed': 3, 'row-changed::owners': 1,
            'table-changed': 2, 'table-changed::pets': 1, 'tables-changed': 1,
            'value-changed': 2, 'value-changed::v': 1, 'values-changed': 1,
            'transaction-finished': 1})
        self.assertEqual(args['cell-changed'], [('pets', 'fido', 'species'), ('pets', 'fido', 'legs'),
                                                ('pets', 'felix', 'species'),
                                                ('owners', 'alice', 'age')])
        self.assertEqual(args['cell-changed::owners'], [('owners', 'alice', 'age')])
        self.assertEqual(args['row-changed'], [('pets', 'fido'), ('pets', 'felix'),
                                               ('owners', 'alice')])
        self.assertEqual(args['row-changed::owners'], [('owners', 'alice')])
        self.assertEqual(args['table-changed'], [('pets',), ('owners',)])
        self.assertEqual(args['table-changed::pets'], [('pets',)])
        self.assertEqual(args['tables-changed'], [()])
        self.assertEqual(args['value-changed'], [('v',), ('w',)])
        self.assertEqual(args['value-changed::v'], [('v',)])
        self.assertEqual(args['values-changed'], [()])

        # cells before their rows, rows before tables, then the totals, last the end
        order = [e[0] for e in rec.events]
        self.assertLess(max(i for i, n in enumerate(order) if n == 'cell-changed'),
                        min(i for i, n in enumerate(order) if n == 'row-changed'))
        self.assertLess(max(i for i, n in enumerate(order) if n == 'row-changed'),
                        min(i for i, n in enumerate(order) if n == 'table-changed'))
        self.assertEqual(order[-3:], ['tables-changed', 'values-changed', 'transaction-finished'])

    def test_values_only_and_disconnect(self):
        s = new_store()
        rec = Recorder(s)
        s.set_value_string('v', 'x')
        self.assertEqual(rec.events, [('value-changed', 'v'), ('values-changed',),
                                      ('transaction-finished',)])
        rec.disconnect()
        rec.clear()
        s.set_value_string('v', 'y')
        self.assertEqual(rec.events, [])

    def test_deletions_and_merges_emit(self):
        s = new_store()
        s.set_tables_json('{"t":{"r":{"a":1,"b":2}}}')
        rec = Recorder(s, ('cell-changed', 'row-changed', 'table-changed'))
        s.del_row('t', 'r')
        self.assertEqual(rec.named('cell-changed'), [('t', 'r', 'a'), ('t', 'r', 'b')])
        self.assertEqual(rec.named('row-changed'), [('t', 'r')])
        self.assertEqual(rec.named('table-changed'), [('t',)])
        rec.clear()
        peer = new_store('store2', T + 1000)
        peer.set_cell_string('t', 'r2', 'c', 'x')
        s.merge(peer)
        self.assertEqual(rec.named('cell-changed'), [('t', 'r2', 'c')])

    def test_handler_can_read_store(self):
        s = new_store()
        seen = []
        s.connect('cell-changed::pets', lambda st, t, r, c: seen.append(
            (st.get_cell_json(t, r, c), st.in_transaction(), st.has_row(t, r))))
        s.set_cell_string('pets', 'fido', 'species', 'dog')
        s.del_cell('pets', 'fido', 'species')
        self.assertEqual(seen, [('"dog"', False, True), (None, False, False)])


# ---- TinyBase-style listeners

class TestListeners(StoreTestCase):
    OPS = ('{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
           '"owners":{"alice":{"age":30}}}')

    def test_wildcards(self):
        s = new_store()
        calls = {}

        def listener(key):
            def record(store, *args):
                calls.setdefault(key, []).append((store,) + args)
            return record

        s.add_cell_listener(None, None, None, listener('cell ***'))
        s.add_cell_listener('pets', None, None, listener('cell pets**'))
        s.add_cell_listener('pets', 'fido', None, listener('cell pets fido *'))
        s.add_cell_listener(None, None, 'species', listener('cell **species'))
        s.add_cell_listener('pets', 'fido', 'legs', listener('cell pets fido legs'))
        s.add_cell_listener('nope', None, None, listener('cell nope'))
        s.add_row_listener(None, None, listener('row **'))
        s.add_row_listener('pets', None, listener('row pets *'))
        s.add_row_listener(None, 'alice', listener('row * alice'))
        s.add_table_listener(None, listener('table *'))
        s.add_table_listener('owners', listener('table owners'))
        s.add_value_listener(None, listener('value *'))
        s.add_value_listener('v', listener('value v'))

        s.set_tables_json(self.OPS)
        s.set_values_json('{"v":1,"w":2}')

        self.assertTrue(all(c[0] is s for cs in calls.values() for c in cs))
        got = {k: [c[1:] for c in v] for k, v in calls.items()}
        self.assertEqual(got, {
            'cell ***': [('pets', 'fido', 'species'), ('pets', 'fido', 'legs'),
                         ('pets', 'felix', 'species'), ('owners', 'alice', 'age')],
            'cell pets**': [('pets', 'fido', 'species'), ('pets', 'fido', 'legs'),
                            ('pets', 'felix', 'species')],
            'cell pets fido *': [('pets', 'fido', 'species'), ('pets', 'fido', 'legs')],
            'cell **species': [('pets', 'fido', 'species'), ('pets', 'felix', 'species')],
            'cell pets fido legs': [('pets', 'fido', 'legs')],
            'row **': [('pets', 'fido'), ('pets', 'felix'), ('owners', 'alice')],
            'row pets *': [('pets', 'fido'), ('pets', 'felix')],
            'row * alice': [('owners', 'alice')],
            'table *': [('pets',), ('owners',)],
            'table owners': [('owners',)],
            'value *': [('v',), ('w',)],
            'value v': [('v',)],
        })

    def test_user_data_and_del_listener(self):
        s = new_store()
        calls = []

        class Listener:
            def __call__(self, store, table_id, row_id, cell_id, *user_data):
                calls.append((table_id, row_id, cell_id, user_data))

        listener = Listener()
        ref = weakref.ref(listener)
        a = s.add_cell_listener(None, None, None, listener, 'extra')
        b = s.add_value_listener(None, lambda store, value_id: calls.append(value_id))
        self.assertNotEqual(a, 0)
        self.assertNotEqual(b, 0)
        self.assertNotEqual(a, b)
        del listener
        s.set_cell_string('t', 'r', 'c', 'x')
        s.set_value_string('v', 'x')
        self.assertEqual(calls, [('t', 'r', 'c', ('extra',)), 'v'])
        gc.collect()
        self.assertIsNotNone(ref())
        s.del_listener(a)
        gc.collect()
        self.assertIsNone(ref(), 'del_listener() must drop the callable')
        s.del_listener(a)                          # twice is harmless
        s.set_cell_string('t', 'r', 'c', 'y')
        s.set_value_string('v', 'y')
        self.assertEqual(calls, [('t', 'r', 'c', ('extra',)), 'v', 'v'])

    def test_del_other_listener_from_listener(self):
        s = new_store()
        calls = []
        ids = {}

        def first(store, table_id, row_id, cell_id):
            calls.append(('first', cell_id))
            store.del_listener(ids['second'])

        ids['first'] = s.add_cell_listener(None, None, None, first)
        ids['second'] = s.add_cell_listener(None, None, None,
                                            lambda *args: calls.append(('second', args[3])))
        s.set_row_json('t', 'r', '{"a":1,"b":2}')
        self.assertEqual(calls, [('first', 'a'), ('first', 'b')])

    # A listener that removes itself: the store must not release the
    # listener's data (PyGObject's closure) while it runs. This crashed
    # once (use after free); it runs in a child process so that a crash
    # cannot take the suite down.
    def test_del_listener_from_itself(self):
        script = textwrap.dedent('''
            import gi
            gi.require_version('Tinysync', '1.0')
            from gi.repository import Tinysync
            store = Tinysync.MergeableStore.new('store1')
            calls, ids = [], {}
            def once(store, table_id, row_id, cell_id):
                calls.append(cell_id)
                store.del_listener(ids['once'])
            ids['once'] = store.add_cell_listener(None, None, None, once)
            store.set_row_json('t', 'r', '{"a":1,"b":2}')
            store.set_row_json('t', 'r', '{"a":3,"b":4}')
            print(calls)
        ''')
        proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, 'child died: %d %s' % (proc.returncode, proc.stderr))
        self.assertEqual(proc.stdout.strip(), "['a']")

    def test_listener_writes_start_new_transaction(self):
        s = new_store()

        def mirror(store, table_id, row_id, cell_id):
            store.set_cell_json('mirror', row_id, cell_id, store.get_cell_json(table_id, row_id, cell_id))

        s.add_cell_listener('pets', None, None, mirror)
        s.set_row_json('pets', 'fido', '{"species":"dog"}')
        self.assertEqual(s.get_table_json('mirror'), '{"fido":{"species":"dog"}}')


# ---- Transaction changes

class TestTransactionChanges(StoreTestCase):
    def test_in_transaction_finished(self):
        s = new_store('store1', T)
        seen = []
        s.connect('transaction-finished', lambda st: seen.append(
            (st.get_transaction_mergeable_changes_json(False),
             st.get_transaction_mergeable_changes_json(True))))
        s.set_tables_json('{"pets":{"fido":{"species":"dog"}}}')
        # PROTOCOL.md §6.2: the ContentDiff broadcast for the docs example
        self.assertEqual(seen[0][0], '[[{"pets":[{"fido":[{"species":["dog","Nn1JUF-----FnHIC"]}]}]}],[{}],1]')
        with_hashes = json.loads(seen[0][1])
        stamps = content(s)
        self.assertEqual(with_hashes[0], stamps[0])
        self.assertEqual(with_hashes[1], stamps[1])
        self.assertEqual(with_hashes[2], 1)

    def test_lists_changed_cells_once_with_latest_stamp(self):
        s = new_store()
        s.set_content_json('[{"t":{"r":{"a":1,"b":2}}},{"open":true}]')
        seen = []
        s.connect('transaction-finished',
                  lambda st: seen.append(json.loads(st.get_transaction_mergeable_changes_json(False))))
        s.start_transaction()
        s.set_cell_number('t', 'r', 'a', 10)
        s.set_cell_number('t', 'r', 'a', 11)
        s.del_value('open')
        s.set_value_number('count', 4)
        inside = json.loads(s.get_transaction_mergeable_changes_json(False))
        s.finish_transaction()
        stamps = content(s)
        a = stamps[0][0]['t'][0]['r'][0]['a']
        self.assertEqual(seen, [[[{'t': [{'r': [{'a': [11, a[1]]}]}]}],
                                 [{'open': [DELETED, stamps[1][0]['open'][1]],
                                   'count': [4, stamps[1][0]['count'][1]]}], 1]])
        self.assertEqual(inside, seen[0])

    def test_outside_a_transaction(self):
        s = new_store()
        s.set_value_number('v', 1)
        self.assertEqual(s.get_transaction_mergeable_changes_json(False), '[[{}],[{}],1]')

    def test_changes_replay_on_another_store(self):
        a = new_store('store1')
        b = new_store('store2')
        diffs = []
        a.connect('transaction-finished',
                  lambda st: diffs.append(st.get_transaction_mergeable_changes_json(False)))
        a.set_tables_json('{"pets":{"fido":{"species":"dog","legs":4}}}')
        a.set_value_json('open', 'true')
        a.del_cell('pets', 'fido', 'legs')
        a.set_cell_json('pets', 'fido', 'tags', '["a"]')
        for diff in diffs:
            b.apply_mergeable_changes_json(diff)
        self.assertEqual(b.get_content_json(), a.get_content_json())
        self.assertEqual(b.get_mergeable_content_json(), a.get_mergeable_content_json())


# ---- Merging, mergeable content and changes

class TestMerge(StoreTestCase):
    def test_merge_converges(self):
        a = new_store('store1', T)
        b = new_store('store2', T + 500)
        a.set_tables_json('{"pets":{"fido":{"species":"dog"}}}')
        a.set_value_json('open', 'true')
        b.set_tables_json('{"pets":{"felix":{"species":"cat"}},"owners":{"bob":{"age":40}}}')
        b.set_cell_json('pets', 'fido', 'species', '"wolf"')    # later HLC than a's
        b.set_value_json('list', '[1,{"x":2}]')
        rec_a, rec_b = Recorder(a), Recorder(b)
        a.merge(b)
        self.assertEqual(tuple(a.get_mergeable_content_hashes()),
                         tuple(b.get_mergeable_content_hashes()))
        # same stamps; member order is each store's own insertion order
        self.assertEqual(content(a), content(b))
        self.assertEqual(json.loads(a.get_content_json()), json.loads(b.get_content_json()))
        self.assertEqual(a.get_cell_json('pets', 'fido', 'species'), '"wolf"')
        self.assertEqual(a.get_value_json('list'), '[1,{"x":2}]')
        self.assertEqual(b.get_value_json('open'), 'true')
        closed_form_check(self, content(a))
        self.assertEqual(rec_a.count('transaction-finished'), 1)
        self.assertEqual(rec_b.count('transaction-finished'), 1)
        self.assertIn(('owners', 'bob', 'age'), rec_a.named('cell-changed'))
        self.assertEqual(rec_b.named('value-changed'), [('open',)])
        # merging again changes nothing
        before = a.get_mergeable_content_json()
        rec_a.clear()
        a.merge(b)
        self.assertEqual(a.get_mergeable_content_json(), before)
        self.assertEqual(rec_a.named('cell-changed'), [])

    def test_later_hlc_wins_either_way(self):
        for first, second in ((0, 1), (1, 0)):
            stores = [new_store('store1', T), new_store('store2', T)]
            stores[0].set_cell_string('t', 'r', 'c', 'early')
            stores[1].clock.now = T + 1
            stores[1].set_cell_string('t', 'r', 'c', 'late')
            stores[first].merge(stores[second])
            self.assertEqual(stores[0].get_cell_json('t', 'r', 'c'), '"late"')
            self.assertEqual(stores[1].get_cell_json('t', 'r', 'c'), '"late"')

    def test_apply_changes_keeps_newer_local(self):
        a = new_store('store1', T)
        b = new_store('store2', T + 1000)
        a.set_cell_string('t', 'r', 'c', 'old')
        b.set_cell_string('t', 'r', 'c', 'new')
        b.apply_mergeable_changes_json(a.get_mergeable_content_json())
        self.assertEqual(b.get_cell_json('t', 'r', 'c'), '"new"')
        a.apply_mergeable_changes_json(b.get_mergeable_content_json())
        self.assertEqual(a.get_cell_json('t', 'r', 'c'), '"new"')
        # the clock saw b's HLC: a's next write is later
        a.set_cell_string('t', 'r', 'c', 'newest')
        self.assertGreater(content(a)[0][0]['t'][0]['r'][0]['c'][1],
                           content(b)[0][0]['t'][0]['r'][0]['c'][1])

    def test_set_mergeable_content(self):
        a = new_store('store1', T)
        a.set_content_json('[{"pets":{"fido":{"species":"dog"},"felix":{"species":"cat"}}},{"v":1}]')
        a.del_row('pets', 'felix')
        c = new_store('store3', T)
        c.set_content_json('[{"other":{"r":{"c":1}}},{"w":2}]')
        rec = Recorder(c)
        c.set_mergeable_content_json(a.get_mergeable_content_json())
        self.assertEqual(c.get_mergeable_content_json(), a.get_mergeable_content_json())
        self.assertEqual(tuple(c.get_mergeable_content_hashes()),
                         tuple(a.get_mergeable_content_hashes()))
        self.assertEqual(c.get_content_json(), '[{"pets":{"fido":{"species":"dog"}}},{"v":1}]')
        self.assertEqual(rec.count('transaction-finished'), 1)
        self.assertIn(('other', 'r', 'c'), rec.named('cell-changed'))
        self.assertIn(('pets', 'fido', 'species'), rec.named('cell-changed'))
        self.assertIn(('w',), rec.named('value-changed'))
        # the clock moved past every loaded HLC
        c.set_value_number('v', 2)
        self.assertGreater(content(c)[1][0]['v'][1],
                           max(cell[1] for cell in content(a)[0][0]['pets'][0]['felix'][0].values()))


# ---- Hashes and diffs

def build_pair():
    """Two stores with a shared history that then diverged."""
    a = new_store('store1', T)
    a.set_content_json('[{"pets":{"fido":{"species":"dog","legs":4},"felix":{"species":"cat"}},'
                       '"owners":{"alice":{"age":30,"pet":null}}},{"open":true,"motto":"hi"}]')
    a.set_cell_json('pets', 'fido', 'tags', '{"a":[1,2]}')
    b = new_store('store2', T + 100)
    b.set_mergeable_content_json(a.get_mergeable_content_json())
    a.clock.now = T + 200
    a.set_cell_number('pets', 'fido', 'legs', 3)             # differing cell
    a.set_row_json('pets', 'rex', '{"species":"dog"}')       # a new row
    a.set_table_json('toys', '{"ball":{"red":true}}')        # a new table
    a.del_value('open')
    b.clock.now = T + 300
    b.set_cell_string('owners', 'alice', 'pet', 'felix')
    b.set_value_number('count', 1)
    return a, b


class TestHashes(StoreTestCase):
    def test_documented_hash_vectors(self):
        self.assertEqual(fnv1a(''), 2166136261)
        self.assertEqual(fnv1a('store1'), 3503105229)
        self.assertEqual(leaf_hash('dog', 'Nn1JUF-----FnHIC'), 290599168)
        self.assertEqual(fold('fido', 2682656941), 2102515304)
        closed_form_check(self, json.loads(DOCS_CONTENT))

    def test_hashes_match_closed_form(self):
        a, b = build_pair()
        for store in (a, b):
            stamps = content(store)
            closed_form_check(self, stamps)
            self.assertEqual(tuple(store.get_mergeable_content_hashes()),
                             (stamps[0][2], stamps[1][2]))
            self.assertEqual(json.loads(store.get_mergeable_table_hashes_json()),
                             {tid: t[2] for tid, t in stamps[0][0].items()})
            self.assertEqual(json.loads(store.get_mergeable_value_hashes_json()),
                             {vid: v[2] for vid, v in stamps[1][0].items()})

    def test_diffs_follow_the_rules(self):
        a, b = build_pair()
        ca, cb = content(a), content(b)
        b_tables = json.loads(b.get_mergeable_table_hashes_json())
        table_diff = json.loads(a.get_mergeable_table_diff_json(json.dumps(b_tables)))
        self.assertEqual(table_diff, expect_table_diff(ca, b_tables))
        self.assertIn('toys', table_diff[0][0])
        self.assertEqual(set(table_diff[1]), {'pets', 'owners'})

        b_rows = json.loads(b.get_mergeable_row_hashes_json(json.dumps(table_diff[1])))
        self.assertEqual(b_rows, expect_row_hashes(cb, table_diff[1]))
        row_diff = json.loads(a.get_mergeable_row_diff_json(json.dumps(b_rows)))
        self.assertEqual(row_diff, expect_row_diff(ca, b_rows))
        self.assertEqual(list(row_diff[0][0]['pets'][0]), ['rex'])

        b_cells = json.loads(b.get_mergeable_cell_hashes_json(json.dumps(row_diff[1])))
        self.assertEqual(b_cells, expect_cell_hashes(cb, row_diff[1]))
        cell_diff = json.loads(a.get_mergeable_cell_diff_json(json.dumps(b_cells)))
        self.assertEqual(cell_diff, expect_cell_diff(ca, b_cells))

        b_values = json.loads(b.get_mergeable_value_hashes_json())
        value_diff = json.loads(a.get_mergeable_value_diff_json(json.dumps(b_values)))
        self.assertEqual(value_diff, expect_value_diff(ca, b_values))
        self.assertEqual(set(value_diff[0]), {'open'})

        # equal stores: nothing differs
        self.assertEqual(json.loads(a.get_mergeable_table_diff_json(a.get_mergeable_table_hashes_json())),
                         [[{}], {}])
        self.assertEqual(json.loads(a.get_mergeable_value_diff_json(a.get_mergeable_value_hashes_json())),
                         [{}])

    def test_sync_through_diffs(self):
        # each store pulls from the other as TinyBase's synchronizer does (§11.5)
        a, b = build_pair()
        expected = new_store('x', T)
        expected.set_mergeable_content_json(a.get_mergeable_content_json())
        expected.apply_mergeable_changes_json(b.get_mergeable_content_json())

        def pull(into, frm):
            new_tables, differing = json.loads(
                frm.get_mergeable_table_diff_json(into.get_mergeable_table_hashes_json()))
            into.apply_mergeable_changes_json(json.dumps([new_tables, [{}], 1]))
            row_hashes = into.get_mergeable_row_hashes_json(json.dumps(differing))
            new_rows, differing_rows = json.loads(frm.get_mergeable_row_diff_json(row_hashes))
            into.apply_mergeable_changes_json(json.dumps([new_rows, [{}], 1]))
            cell_hashes = into.get_mergeable_cell_hashes_json(json.dumps(differing_rows))
            cells = json.loads(frm.get_mergeable_cell_diff_json(cell_hashes))
            values = json.loads(frm.get_mergeable_value_diff_json(into.get_mergeable_value_hashes_json()))
            into.apply_mergeable_changes_json(json.dumps([cells, values, 1]))

        pull(b, a)
        pull(a, b)
        self.assertEqual(tuple(a.get_mergeable_content_hashes()),
                         tuple(b.get_mergeable_content_hashes()))
        self.assertEqual(content(a), content(b))
        self.assertEqual(content(a), content(expected))
        self.assertEqual(json.loads(a.get_content_json()), json.loads(expected.get_content_json()))
        self.assertEqual(a.get_cell_json('pets', 'fido', 'legs'), '3')
        self.assertEqual(a.get_cell_json('owners', 'alice', 'pet'), '"felix"')
        self.assertEqual(a.get_value_json('count'), '1')
        self.assertFalse(a.has_value('open'))


# ---- Errors

class TestErrors(StoreTestCase):
    def setUp(self):
        self.store = new_store()
        self.store.set_content_json('[{"pets":{"fido":{"species":"dog"}}},{"open":true}]')

    def test_invalid_json(self):
        s, E = self.store, Tinysync.Error.INVALID_JSON
        self.assertRejected(s, E, s.set_tables_json, '{oops')
        self.assertRejected(s, E, s.set_tables_json, '')
        self.assertRejected(s, E, s.set_tables_json, '{"pets":{"fido":{"a":1}}} trailing')
        self.assertRejected(s, E, s.set_table_json, 'pets', '{"r":')
        self.assertRejected(s, E, s.set_row_json, 'pets', 'fido', '{,}')
        self.assertRejected(s, E, s.set_partial_row_json, 'pets', 'fido', '{')
        self.assertRejected(s, E, s.set_cell_json, 'pets', 'fido', 'x', "'single'")
        self.assertRejected(s, E, s.set_values_json, 'nope')
        self.assertRejected(s, E, s.set_partial_values_json, '{"a":}')
        self.assertRejected(s, E, s.set_value_json, 'v', 'undefined')
        self.assertRejected(s, E, s.set_content_json, '[{},')
        self.assertRejected(s, E, s.set_default_content_json, ']')
        self.assertRejected(s, E, s.add_row_json, 'pets', '{', True)
        self.assertRejected(s, E, s.set_mergeable_content_json, '[[')
        self.assertRejected(s, E, s.apply_mergeable_changes_json, 'x')
        for f in (s.get_mergeable_table_diff_json, s.get_mergeable_row_hashes_json,
                  s.get_mergeable_row_diff_json, s.get_mergeable_cell_hashes_json,
                  s.get_mergeable_cell_diff_json, s.get_mergeable_value_diff_json):
            self.assertRejected(s, E, f, '{oops')

    def test_invalid_cell(self):
        s, E = self.store, Tinysync.Error.INVALID_CELL
        err = self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x', GLib.Variant('s', DELETED))
        self.assertIn('FFFC', err.message)
        self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x', GLib.Variant('s', ENCODED + '{}'))
        self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x', GLib.Variant('d', float('nan')))
        self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x', GLib.Variant('d', float('inf')))
        self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x',
                            GLib.Variant('a{sv}', {'deep': GLib.Variant('d', float('-inf'))}))
        self.assertRejected(s, E, s.set_cell, 'pets', 'fido', 'x',
                            GLib.Variant('a{iv}', {1: GLib.Variant('s', 'x')}))
        self.assertRejected(s, E, s.set_value, 'v', GLib.Variant('d', float('nan')))
        self.assertRejected(s, E, s.set_value, 'v', GLib.Variant('s', DELETED))
        self.assertRejected(s, E, s.set_cell_json, 'pets', 'fido', 'x', '"\\uFFFC"')
        self.assertRejected(s, E, s.set_value_json, 'v', '"\\uFFFDnot encoded"')
        self.assertRejected(s, E, s.set_tables_json,
                            '{"pets":{"fido":{"species":"cat","bad":"\\uFFFC"}}}')
        self.assertRejected(s, E, s.set_row_json, 'pets', 'fido', '{"n":1e400}')
        self.assertRejected(s, E, s.set_content_json, '[{},{"v":"\\uFFFC"}]')

    def test_invalid_argument(self):
        s, E = self.store, Tinysync.Error.INVALID_ARGUMENT
        self.assertRejected(s, E, s.set_tables_json, '[]')
        self.assertRejected(s, E, s.set_tables_json, '{}')
        self.assertRejected(s, E, s.set_tables_json, '{"pets":[]}')
        self.assertRejected(s, E, s.set_tables_json, '{"pets":{"fido":5}}')
        self.assertRejected(s, E, s.set_tables_json, '{"pets":{"fido":{}}}')
        self.assertRejected(s, E, s.set_table_json, 'pets', '{}')
        self.assertRejected(s, E, s.set_row_json, 'pets', 'fido', '[]')
        self.assertRejected(s, E, s.set_row_json, 'pets', 'fido', '{}')
        self.assertRejected(s, E, s.set_partial_row_json, 'pets', 'fido', '{}')
        self.assertRejected(s, E, s.set_values_json, '["open"]')
        self.assertRejected(s, E, s.set_values_json, '{}')
        self.assertRejected(s, E, s.set_partial_values_json, '{}')
        self.assertRejected(s, E, s.set_content_json, '{}')
        self.assertRejected(s, E, s.set_content_json, '[{}]')
        self.assertRejected(s, E, s.add_row_json, 'pets', '[]', True)
        self.assertRejected(s, E, s.get_mergeable_table_diff_json, '[]')
        self.assertRejected(s, E, s.get_mergeable_value_diff_json, '5')

    def test_invalid_content(self):
        s, E = self.store, Tinysync.Error.INVALID_CONTENT
        future = new_store('future', T + 24 * 3600 * 1000)         # a day ahead
        future.set_cell_string('pets', 'fido', 'species', 'wolf')
        far = future.get_mergeable_content_json()
        self.assertRejected(s, E, s.apply_mergeable_changes_json, far)
        self.assertRejected(s, E, s.set_mergeable_content_json, far)
        diff = []
        future.connect('transaction-finished',
                       lambda st: diff.append(st.get_transaction_mergeable_changes_json(False)))
        future.set_value_string('open', 'later')
        self.assertRejected(s, E, s.apply_mergeable_changes_json, diff[0])

        self.assertRejected(s, E, s.set_mergeable_content_json, '[[{},"",0]]')
        self.assertRejected(s, E, s.set_mergeable_content_json, '[[{},"",0],[{},"",0],1]')
        self.assertRejected(s, E, s.set_mergeable_content_json,
                            '[[{"t":[{"r":[{"c":[1,"bad hlc",0]},"",0]},"",0]},"",0],[{},"",0]]')
        self.assertRejected(s, E, s.apply_mergeable_changes_json, '[[{}],[{}],2]')
        self.assertRejected(s, E, s.apply_mergeable_changes_json, '{}')
        self.assertRejected(s, E, s.apply_mergeable_changes_json,
                            '[[{"t":[{"r":[{"c":[1,"Nn1JUF-----FnHIC"]}]}]}],[{}],1,2]')
        self.assertRejected(s, E, s.apply_mergeable_changes_json,
                            '[[{"t":[{"r":[{"c":[1,"Nn1JUF-----FnHI"]}]}]}],[{}],1]')
        self.assertRejected(s, E, s.apply_mergeable_changes_json, '[[{"t":[[]]}],[{}],1]')

        # four minutes ahead is within TinyBase's five-minute window
        near = new_store('near', T + 4 * 60 * 1000)
        near.set_cell_string('pets', 'fido', 'species', 'wolf')
        s.apply_mergeable_changes_json(near.get_mergeable_content_json())
        self.assertEqual(s.get_cell_json('pets', 'fido', 'species'), '"wolf"')

    def test_store_usable_after_errors(self):
        s = self.store
        for bad in ('{oops', '[]', '{}'):
            with self.assertRaises(GLib.Error):
                s.set_tables_json(bad)
        rec = Recorder(s)
        s.set_cell_string('pets', 'fido', 'legs', '4')
        self.assertEqual(rec.named('cell-changed'), [('pets', 'fido', 'legs')])
        closed_form_check(self, content(s))


if __name__ == '__main__':
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    program = unittest.main(testRunner=runner, exit=False)
    result = program.result
    print('%d tests, %d failures, %d errors, %d skipped' % (
        result.testsRun, len(result.failures), len(result.errors), len(result.skipped)))
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
