#!/usr/bin/python3
# store-example.py: a tour of Tinysync.MergeableStore from Python
#
# SPDX-License-Identifier: MIT
#
# The same scenario as store-example.c, printing the same text. Use
# Debian's /usr/bin/python3 (it has PyGObject); from a build tree, point
# GI_TYPELIB_PATH and LD_LIBRARY_PATH at _build/tinysync, or run it
# inside `meson devenv -C _build`.

import sys

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Tinysync', '1.0')
from gi.repository import GLib, Tinysync  # noqa: E402

# 2024-01-01T00:00:00Z, the time TinyBase's documentation uses. A real
# application keeps the default clock; a fixed one makes the output
# reproducible, stamp for stamp.
DOCS_TIME = 1704067200000


def on_cell_changed(store, table_id, row_id, cell_id):
    # Runs once per changed cell when a transaction ends.
    json = store.get_cell_json(table_id, row_id, cell_id)
    print(f'  {store.props.unique_id}: {table_id}/{row_id}/{cell_id} = {json or "(deleted)"}')


def on_value_changed(store, value_id):
    json = store.get_value_json(value_id)
    print(f'  {store.props.unique_id}: value {value_id} = {json or "(deleted)"}')


def print_store(store):
    tables_hash, values_hash = store.get_mergeable_content_hashes()
    print(f'{store.props.unique_id} (client id {store.props.client_id})')
    print(f'  tables: {store.get_tables_json()}')
    print(f'  values: {store.get_values_json()}')
    print(f'  hashes: tables {tables_hash}, values {values_hash}')
    print(f'  mergeable content:\n    {store.get_mergeable_content_json()}\n')


def main():
    # The unique id fixes the client id at the end of every HLC stamp:
    # "store1" gives "FnHIC", as in TinyBase.
    store = Tinysync.MergeableStore.new('store1')
    store.set_clock(lambda: DOCS_TIME)
    store.connect('cell-changed', on_cell_changed)
    store.connect('value-changed', on_value_changed)

    # TinyBase's setTables(): JSON in, every cell gets a stamp.
    print('Setting tables:')
    store.set_tables_json('{"pets": {"fido": {"species": "dog"}}}')
    print("Mergeable content, as TinyBase's documentation shows it:")
    print(f'  {store.get_mergeable_content_json()}')

    # Typed setters; writes inside one transaction are announced together
    # when it finishes.
    print('\nOne transaction:')

    def body(store):
        store.set_cell_number('pets', 'fido', 'legs', 4)
        store.set_cell('pets', 'felix', 'species', GLib.Variant('s', 'cat'))
        store.set_value_boolean('open', True)

    store.transaction(body)

    # Invalid input raises GLib.Error (domain Tinysync.Error) and changes nothing.
    try:
        store.set_cell_json('pets', 'fido', 'legs', '{oops')
    except GLib.Error as error:
        print(f'  rejected: {error.message}')

    print()
    print_store(store)

    # A second store writes a minute later; merging goes both ways, the
    # later stamp wins, and both end with the same content and hashes.
    other = Tinysync.MergeableStore.new('store2')
    other.set_clock(lambda: DOCS_TIME + 60000)
    other.set_cell_string('pets', 'fido', 'species', 'wolf')
    other.connect('cell-changed', on_cell_changed)
    other.connect('value-changed', on_value_changed)

    print('Merging store2, which set pets/fido/species a minute later:')
    store.merge(other)

    print()
    print_store(store)
    print_store(other)
    return 0


if __name__ == '__main__':
    sys.exit(main())
