#!/usr/bin/python3
# test_table_model.py: TsTableModel, TsRowObject and TsTableIdsModel through
# the Tinysync-1.0 typelib (PyGObject)
#
# SPDX-License-Identifier: MIT
#
# Run by meson (suite "python") with GI_TYPELIB_PATH and LD_LIBRARY_PATH
# pointing at the build tree. Callbacks only record what they see; every
# assertion runs afterwards, because PyGObject prints and swallows
# exceptions raised inside callbacks.
#
# The expected order of rows is computed here, independently: strings
# compare as their UTF-16 code units (JavaScript's <), numbers (with
# booleans, null and missing cells as 0/1/0) before strings before
# objects and arrays, ties by row id.

import gc
import json
import random
import sys
import unittest
import weakref

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Tinysync', '1.0')
from gi.repository import Gio, GLib, GObject, Tinysync  # noqa: E402

try:
    gi.require_version('Gtk', '4.0')
    from gi.repository import Gtk  # noqa: E402
except (ValueError, ImportError):
    Gtk = None

T = 1704067200000


class Clock:
    def __init__(self, now=T):
        self.now = now

    def __call__(self, *user_data):
        return self.now


def new_store(unique_id, clock):
    store = Tinysync.MergeableStore.new(unique_id)
    store.set_clock(clock)
    return store


def utf16(s):
    return s.encode('utf-16-be', 'surrogatepass')


def sort_key(store, table_id, row_id, cell_id):
    if cell_id is None:
        return (0, 0)
    text = store.get_cell_json(table_id, row_id, cell_id) \
        if store.has_cell(table_id, row_id, cell_id) else None
    value = None if text is None else json.loads(text)
    if value is None or isinstance(value, (bool, int, float)):
        return (0, float(value or 0))
    if isinstance(value, str):
        return (1, utf16(value))
    return (2, utf16(text))


def expected_rows(store, table_id, cell_id=None, descending=False):
    rows = store.get_row_ids(table_id)
    rows.sort(key=lambda r: (sort_key(store, table_id, r, cell_id), utf16(r)),
              reverse=descending)
    return rows


class Mirror:
    """A list kept from items-changed alone, reading added items as GTK does."""

    def __init__(self, model):
        self.model = model
        self.items = [self.id_of(model.get_item(i)) for i in range(model.get_n_items())]
        self.events = []
        self.problems = []
        self.handler = model.connect('items-changed', self.on_items_changed)

    @staticmethod
    def id_of(item):
        return item.get_row_id() if isinstance(item, Tinysync.RowObject) else item.get_id()

    def on_items_changed(self, model, position, removed, added):
        self.events.append((position, removed, added))
        if position + removed > len(self.items) or removed + added == 0:
            self.problems.append(('bad emission', position, removed, added, len(self.items)))
            return
        new = [self.id_of(model.get_item(position + i)) for i in range(added)]
        self.items[position:position + removed] = new
        if model.get_n_items() != len(self.items):
            self.problems.append(('n-items', model.get_n_items(), len(self.items)))
        now = [self.id_of(model.get_item(i)) for i in range(model.get_n_items())]
        if now != self.items:
            self.problems.append(('intermediate state', now, list(self.items)))

    def listed(self):
        return [self.id_of(item) for item in self.model]

    def take_events(self):
        events, self.events = self.events, []
        return events

    def disconnect(self):
        self.model.disconnect(self.handler)


class TableModelTestCase(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = new_store('py-model', self.clock)

    def assertMirror(self, mirror, expected):
        self.assertEqual(mirror.problems, [])
        self.assertEqual(mirror.listed(), expected)
        self.assertEqual(mirror.items, expected)
        self.assertEqual(len(mirror.model), len(expected))


class TestTableModel(TableModelTestCase):
    def test_python_protocols_and_properties(self):
        s = self.store
        s.set_table_json('pets', json.dumps({'fido': {'legs': 4}, 'felix': {'legs': 4},
                                             '\U0001d49c': {'legs': 1}, '\uff5e': {'legs': 2}}))
        model = Tinysync.TableModel.new(s, 'pets')
        self.assertIsInstance(model, Gio.ListModel)
        self.assertEqual(model.get_item_type(), Tinysync.RowObject.__gtype__)
        self.assertEqual(model.props.item_type, Tinysync.RowObject.__gtype__)
        self.assertEqual(model.props.n_items, 4)
        self.assertEqual(len(model), 4)
        # JavaScript order: U+1D49C (surrogates) before U+FF5E
        self.assertEqual([row.props.row_id for row in model],
                         ['felix', 'fido', '\U0001d49c', '\uff5e'])
        self.assertEqual(model.get_row_id(1), 'fido')
        self.assertIsNone(model.get_row_id(4))
        self.assertEqual(model.find('fido'), (True, 1))
        self.assertFalse(model.find('nope')[0])
        self.assertIs(model.props.store, s)
        self.assertEqual(model.props.table_id, 'pets')
        self.assertIsNone(model.props.sort_cell)
        self.assertFalse(model.props.sort_descending)

        built = GObject.new(Tinysync.TableModel, store=s, table_id='pets',
                            sort_cell='legs', sort_descending=True)
        self.assertEqual([r.get_row_id() for r in built],
                         ['fido', 'felix', '\uff5e', '\U0001d49c'])

    def test_exact_items_changed(self):
        s = self.store
        model = Tinysync.TableModel.new(s, 't')
        mirror = Mirror(model)
        s.set_table_json('t', json.dumps({'c': {'v': 3}, 'a': {'v': 1}, 'b': {'v': 2}}))
        self.assertEqual(mirror.take_events(), [(0, 0, 3)])
        s.set_cell_number('t', 'b', 'w', 20)          # a new cell, same rows
        self.assertEqual(mirror.take_events(), [])
        model.set_sort_cell('v')
        self.assertEqual(mirror.take_events(), [])   # same order
        s.set_cell_number('t', 'a', 'v', 1.5)         # keeps its place
        self.assertEqual(mirror.take_events(), [])
        s.set_cell_number('t', 'a', 'v', 30)          # moves to the end
        self.assertEqual(mirror.take_events(), [(0, 1, 0), (2, 0, 1)])
        s.del_row('t', 'c')
        self.assertEqual(mirror.take_events(), [(1, 1, 0)])
        model.props.sort_descending = True
        self.assertMirror(mirror, ['a', 'b'])
        s.del_table('t')
        self.assertEqual(mirror.take_events()[-1], (0, 2, 0))
        self.assertMirror(mirror, [])

    def test_random_operations_and_merges(self):
        rnd = random.Random(4242)
        peer = new_store('py-peer', self.clock)
        s = self.store
        models = [Tinysync.TableModel.new(s, 't'),
                  GObject.new(Tinysync.TableModel, store=s, table_id='t', sort_cell='a'),
                  GObject.new(Tinysync.TableModel, store=s, table_id='t', sort_cell='b',
                              sort_descending=True)]
        mirrors = [Mirror(m) for m in models]
        ids = Tinysync.TableIdsModel.new(s)
        ids_mirror = Mirror(ids)
        rows = ['r%d' % i for i in range(8)] + ['', 'B', '\xe9', '\uff5e', '\U0001d49c']
        values = [0, 1, -1, 2.5, True, False, None, '', 'a', 'B', '10', '9',
                  '\U0001d49c', '\ue000', {'x': 1}, [1, 2]]

        def write(store):
            table = rnd.choice(['t', 't', 't', 'u'])
            row = rnd.choice(rows)
            op = rnd.randrange(10)
            if op < 5:
                store.set_cell_json(table, row, rnd.choice('abc'), json.dumps(rnd.choice(values)))
            elif op < 7:
                store.del_row(table, row)
            elif op < 8:
                store.del_cell(table, row, rnd.choice('abc'))
            elif op < 9:
                store.set_row_json(table, row, json.dumps({c: rnd.choice(values) for c in 'ab'}))
            else:
                store.set_table_json(table, json.dumps(
                    {r: {'a': rnd.choice(values)} for r in rnd.sample(rows, 4)}))

        for step in range(400):
            self.clock.now += rnd.randrange(3)
            op = rnd.randrange(10)
            if op < 5:
                write(s)
            elif op < 7:
                for _ in range(rnd.randrange(1, 4)):
                    write(peer)
                s.merge(peer)
            elif op < 8:
                write(peer)
                s.set_mergeable_content_json(peer.get_mergeable_content_json())
            elif op < 9:
                m = rnd.choice(models)
                m.set_sort(rnd.choice([None, 'a', 'b', 'c']), rnd.random() < 0.5)
            else:
                s.start_transaction()
                write(s)
                write(peer)
                s.apply_mergeable_changes_json(peer.get_mergeable_content_json())
                write(s)
                s.finish_transaction()
            for m, mirror in zip(models, mirrors):
                self.assertMirror(mirror, expected_rows(s, 't', m.props.sort_cell,
                                                        m.props.sort_descending))
            self.assertMirror(ids_mirror, sorted(s.get_table_ids(), key=utf16))
        self.assertGreater(sum(len(m.events) for m in mirrors), 0)


class TestRowObject(TableModelTestCase):
    def test_cells_signals_and_identity(self):
        s = self.store
        s.set_row_json('pets', 'fido', json.dumps({'name': 'Fido', 'legs': 4, 'good': True}))
        model = Tinysync.TableModel.new(s, 'pets')
        row = model[0]
        self.assertIs(model.get_item(0), row)       # same object while held
        self.assertEqual(row.props.table_id, 'pets')
        self.assertEqual(row.get_row_id(), 'fido')
        self.assertIs(row.props.store, s)
        self.assertEqual(row.dup_cell_string('name'), 'Fido')
        self.assertIsNone(row.dup_cell_string('legs'))
        self.assertEqual(row.get_cell_number('legs', -1), 4)
        self.assertEqual(row.get_cell_number('name', -1), -1)
        self.assertTrue(row.get_cell_boolean('good', False))
        self.assertEqual(row.get_cell('legs').unpack(), 4.0)
        self.assertIsNone(row.get_cell('nope'))
        self.assertEqual(row.get_cell_json('name'), '"Fido"')
        self.assertEqual(sorted(row.get_cell_ids()), ['good', 'legs', 'name'])

        seen = []
        versions = []
        row.connect('cell-changed', lambda r, cell: seen.append(('any', cell)))
        row.connect('cell-changed::name', lambda r, cell: seen.append(('name', cell)))
        row.connect('notify::version', lambda r, pspec: versions.append(r.props.version))
        row.set_cell('legs', GLib.Variant('d', 3))
        row.set_cell_json('name', '"Rex"')
        s.set_cell_string('pets', 'other', 'name', 'x')
        self.assertEqual(seen, [('any', 'legs'), ('any', 'name'), ('name', 'name')])
        self.assertEqual(versions, [1, 2])
        with self.assertRaises(GLib.Error):
            row.set_cell_json('name', '{')

        # a merged change is announced too
        peer = new_store('py-peer', self.clock)
        self.clock.now += 5
        peer.set_cell_string('pets', 'fido', 'name', 'Merged')
        s.merge(peer)
        self.assertEqual(seen[-1], ('name', 'name'))
        self.assertEqual(row.dup_cell_string('name'), 'Merged')

        # Python attributes live on the wrapper: the same object comes back
        row.note = 'kept'
        position = model.find('fido')[1]
        self.assertEqual(model.get_item(position).note, 'kept')

    def test_weak_cache(self):
        s = self.store
        s.set_cell_number('t', 'r', 'v', 1)
        model = Tinysync.TableModel.new(s, 't')
        ref = weakref.ref(model.get_item(0))
        gc.collect()
        self.assertIsNone(ref())
        self.assertEqual(model.get_item(0).get_row_id(), 'r')

    def test_standalone(self):
        s = self.store
        row = Tinysync.RowObject.new(s, 't', 'later')
        seen = []
        row.connect('cell-changed', lambda r, cell: seen.append(cell))
        s.set_cell_number('t', 'other', 'v', 1)
        s.set_cell_number('t', 'later', 'v', 1)
        self.assertEqual(seen, ['v'])
        self.assertEqual(row.props.version, 1)
        built = GObject.new(Tinysync.RowObject, store=s, table_id='t', row_id='later')
        self.assertEqual(built.get_cell_number('v', 0), 1)


class TestTableIdsModel(TableModelTestCase):
    def test_table_ids(self):
        s = self.store
        s.set_tables_json(json.dumps({'b': {'r': {'c': 1}}, 'a': {'r': {'c': 1}}}))
        model = Tinysync.TableIdsModel.new(s)
        mirror = Mirror(model)
        self.assertEqual([item.props.id for item in model], ['a', 'b'])
        self.assertEqual(model.get_item_type(), Tinysync.IdObject.__gtype__)
        first = model[0]
        s.set_cell_number('c', 'r', 'c', 1)
        s.set_cell_number('a', 's', 'c', 1)
        self.assertEqual(mirror.take_events(), [(2, 0, 1)])
        self.assertIs(model[0], first)
        s.del_table('a')
        self.assertEqual(mirror.take_events(), [(0, 1, 0)])
        self.assertMirror(mirror, ['b', 'c'])
        self.assertEqual(model.find('c'), (True, 1))
        self.assertEqual(Tinysync.IdObject.new('x').get_id(), 'x')


@unittest.skipIf(Gtk is None, 'GTK 4 is not available')
class TestWithGtk(TableModelTestCase):
    """GTK's own list models consume ours and must agree with it."""

    def test_gtk_models_follow(self):
        s = self.store
        rnd = random.Random(7)
        model = GObject.new(Tinysync.TableModel, store=s, table_id='t', sort_cell='v')
        selection = Gtk.SingleSelection.new(model)
        selection.set_autoselect(False)
        # filters and sorters see items when they are added: use what a row
        # never changes, its id
        filtered = Gtk.FilterListModel.new(
            model, Gtk.CustomFilter.new(lambda row, *data: int(row.get_row_id()[1:]) % 2 == 0))
        resorted = Gtk.SortListModel.new(
            model, Gtk.CustomSorter.new(
                lambda a, b, *data: (a.get_row_id() > b.get_row_id()) -
                                    (a.get_row_id() < b.get_row_id())))
        tree = Gtk.TreeListModel.new(Tinysync.TableIdsModel.new(s), False, True,
                                     lambda item, *data: Tinysync.TableModel.new(s, item.get_id())
                                     if isinstance(item, Tinysync.IdObject) else None)
        for step in range(300):
            row = 'r%d' % rnd.randrange(30)
            op = rnd.randrange(4)
            if op == 0:
                s.del_row('t', row)
            elif op == 3:
                s.set_cell_number('u', row, 'v', 1)
            else:
                s.set_cell_number('t', row, 'v', rnd.randrange(10))
            rows = expected_rows(s, 't', 'v')
            self.assertEqual([r.get_row_id() for r in selection], rows)
            self.assertEqual([r.get_row_id() for r in filtered],
                             [r for r in rows if int(r[1:]) % 2 == 0])
            self.assertEqual([r.get_row_id() for r in resorted], sorted(rows, key=utf16))
            flat = []
            for i in range(tree.get_n_items()):
                item = tree.get_item(i).get_item()
                flat.append(item.get_id() if isinstance(item, Tinysync.IdObject)
                            else item.get_row_id())
            expected = []
            for table in sorted(s.get_table_ids(), key=utf16):
                expected.append(table)
                expected += expected_rows(s, table)
            self.assertEqual(flat, expected)


if __name__ == '__main__':
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    program = unittest.main(testRunner=runner, exit=False)
    result = program.result
    print('%d tests, %d failures, %d errors, %d skipped' % (
        result.testsRun, len(result.failures), len(result.errors), len(result.skipped)))
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
