#!/usr/bin/python3
# tinysync-todo.py: a shared to-do list in GTK 4, synced with tinysync
#
# SPDX-License-Identifier: MIT
#
# Every instance keeps a TsMergeableStore with one table, "todos" (cells
# "text" and "done"), shows it through a TsTableModel in a GtkListView and
# syncs it with a TsWsSynchronizer to a room of tinysync-server (or of
# TinyBase's WsServer). Two instances on the same URL edit the same list.
#
#   tinysync-todo.py [ws://127.0.0.1:8047/todos]
#
# --test-commands reads one command a line from standard input and answers on
# standard output, so that tests/gui/test-todo-demo.py can drive a real window:
#
#   add TEXT          types TEXT into the entry and clicks "Add"
#   toggle INDEX      clicks the check button of the row at INDEX
#   delete INDEX      clicks the delete button of the row at INDEX
#   dump              answers "DUMP {json}": the connection state and the rows
#                     as the list view's model has them
#   quit              closes the window
#
# The commands act on the widgets (the same handlers as a user's clicks), not
# on the store behind their back.

import argparse
import json
import sys
import time

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Gtk', '4.0')
gi.require_version('Pango', '1.0')
gi.require_version('Tinysync', '1.0')
from gi.repository import Gio, GLib, Gtk, Pango, Tinysync  # noqa: E402

APP_ID = 'org.tinysync.Todo'
TABLE = 'todos'
DEFAULT_URL = 'ws://127.0.0.1:8047/todos'
RETRY_SECONDS = 2


def new_row_id():
    # Creation time first, so that rows sorted by id (TsTableModel's order
    # without a sort cell) list in the order they were added.
    return '%013d-%s' % (int(time.time() * 1000),
                         GLib.uuid_string_random()[:8])


class TodoRow(Gtk.Box):
    """One row of the list: a check button, the text, a delete button."""

    def __init__(self):
        super().__init__(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
        self.set_margin_top(4)
        self.set_margin_bottom(4)
        self.set_margin_start(6)
        self.set_margin_end(6)

        self.check = Gtk.CheckButton()
        self.check.set_tooltip_text('Done')
        self.label = Gtk.Label(xalign=0, hexpand=True)
        self.label.set_ellipsize(Pango.EllipsizeMode.END)
        self.delete = Gtk.Button.new_from_icon_name('user-trash-symbolic')
        self.delete.set_tooltip_text('Delete')
        self.delete.add_css_class('flat')
        self.append(self.check)
        self.append(self.label)
        self.append(self.delete)

        self.row = None
        self._updating = False
        self._version_handler = 0
        self.check.connect('toggled', self._on_toggled)
        self.delete.connect('clicked', self._on_delete)

    def bind(self, row):
        self.row = row
        self._version_handler = row.connect('notify::version',
                                            lambda *args: self.update())
        self.update()

    def unbind(self):
        if self.row is not None and self._version_handler:
            self.row.disconnect(self._version_handler)
        self._version_handler = 0
        self.row = None

    def update(self):
        if self.row is None:
            return
        self._updating = True
        text = self.row.dup_cell_string('text') or ''
        done = self.row.get_cell_boolean('done', False)
        self.label.set_text(text)
        self.check.set_active(done)
        if done:
            self.label.add_css_class('dim-label')
        else:
            self.label.remove_css_class('dim-label')
        self._updating = False

    def _on_toggled(self, check):
        if self._updating or self.row is None:
            return
        store = self.row.get_store()
        store.set_cell_boolean(TABLE, self.row.get_row_id(), 'done',
                               check.get_active())

    def _on_delete(self, button):
        if self.row is None:
            return
        store = self.row.get_store()
        store.del_row(TABLE, self.row.get_row_id())


class TodoWindow(Gtk.ApplicationWindow):

    def __init__(self, app, url):
        super().__init__(application=app, title='Shared to-do list')
        self.set_default_size(420, 360)
        self.url = url
        self.store = Tinysync.MergeableStore.new(GLib.uuid_string_random())
        self.model = Tinysync.TableModel.new(self.store, TABLE)
        self.synchronizer = None
        self.retry_id = 0
        self.state = 'connecting'
        self.rows = {}  # row id -> TodoRow shown for it

        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        box.set_margin_top(12)
        box.set_margin_bottom(12)
        box.set_margin_start(12)
        box.set_margin_end(12)
        self.set_child(box)

        entry_box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        self.entry = Gtk.Entry(hexpand=True, placeholder_text='New item')
        self.entry.connect('activate', self._on_add)
        self.add_button = Gtk.Button(label='Add')
        self.add_button.add_css_class('suggested-action')
        self.add_button.connect('clicked', self._on_add)
        entry_box.append(self.entry)
        entry_box.append(self.add_button)
        box.append(entry_box)

        factory = Gtk.SignalListItemFactory()
        factory.connect('setup', self._on_setup)
        factory.connect('bind', self._on_bind)
        factory.connect('unbind', self._on_unbind)
        self.list_view = Gtk.ListView(
            model=Gtk.NoSelection(model=self.model), factory=factory)
        scrolled = Gtk.ScrolledWindow(vexpand=True)
        scrolled.set_child(self.list_view)
        frame = Gtk.Frame()
        frame.set_child(scrolled)
        box.append(frame)

        self.status = Gtk.Label(xalign=0)
        self.status.add_css_class('dim-label')
        box.append(self.status)

        self.connect('close-request', self._on_close_request)
        self._connect()

    # The list

    def _on_setup(self, factory, item):
        item.set_child(TodoRow())

    def _on_bind(self, factory, item):
        widget = item.get_child()
        row = item.get_item()
        widget.bind(row)
        self.rows[row.get_row_id()] = widget

    def _on_unbind(self, factory, item):
        widget = item.get_child()
        if widget.row is not None:
            if self.rows.get(widget.row.get_row_id()) is widget:
                del self.rows[widget.row.get_row_id()]
        widget.unbind()

    def _on_add(self, *args):
        text = self.entry.get_text().strip()
        if not text:
            return
        row_id = new_row_id()
        self.store.start_transaction()
        self.store.set_cell_string(TABLE, row_id, 'text', text)
        self.store.set_cell_boolean(TABLE, row_id, 'done', False)
        self.store.finish_transaction()
        self.entry.set_text('')

    # Syncing

    def _set_state(self, state, text):
        self.state = state
        self.status.set_text(text)

    def _connect(self):
        self.retry_id = 0
        self._set_state('connecting', 'Connecting to %s…' % self.url)
        Tinysync.WsSynchronizer.new_async(self.store, self.url, 1.0, None,
                                          self._on_synchronizer_ready)
        return GLib.SOURCE_REMOVE

    def _on_synchronizer_ready(self, source, result):
        try:
            synchronizer = Tinysync.WsSynchronizer.new_finish(result)
        except GLib.Error as e:
            self._set_state('offline', 'Offline (%s), retrying…' % e.message)
            self.retry_id = GLib.timeout_add_seconds(RETRY_SECONDS,
                                                     self._connect)
            return
        self.synchronizer = synchronizer
        synchronizer.connect('notify::connected', self._on_connected_changed)
        synchronizer.start_sync_async(None, None)
        self._on_connected_changed(synchronizer, None)

    def _on_connected_changed(self, synchronizer, pspec):
        if synchronizer.is_connected():
            self._set_state('connected', 'Connected to %s' % self.url)
        else:
            self._set_state('reconnecting',
                            'Disconnected from %s, reconnecting…' % self.url)

    def _on_close_request(self, window):
        if self.retry_id:
            GLib.source_remove(self.retry_id)
            self.retry_id = 0
        if self.synchronizer is not None:
            self.synchronizer.destroy()
            self.synchronizer = None
        return False

    # The test hook: what the model shows, and clicks by index

    def dump(self):
        rows = []
        for position in range(self.model.get_n_items()):
            row = self.model.get_item(position)
            rows.append({
                'id': row.get_row_id(),
                'text': row.dup_cell_string('text'),
                'done': row.get_cell_boolean('done', False),
            })
        return {'state': self.state, 'rows': rows}

    def widget_at(self, index):
        row_id = self.model.get_row_id(index)
        if row_id is None:
            raise IndexError('no row %d' % index)
        widget = self.rows.get(row_id)
        if widget is None:
            raise IndexError('row %d is not shown' % index)
        return widget


class TodoApp(Gtk.Application):

    def __init__(self, url, test_commands):
        # NON_UNIQUE: two instances side by side are the point of the demo.
        super().__init__(application_id=APP_ID,
                         flags=Gio.ApplicationFlags.NON_UNIQUE)
        self.url = url
        self.test_commands = test_commands
        self.window = None
        self.stdin = None

    def do_activate(self):
        if self.window is None:
            self.window = TodoWindow(self, self.url)
        self.window.present()
        if self.test_commands and self.stdin is None:
            self.stdin = Gio.DataInputStream.new(
                Gio.UnixInputStream.new(0, False))
            self._read_command()

    def _read_command(self):
        self.stdin.read_line_async(GLib.PRIORITY_DEFAULT, None,
                                   self._on_command)

    def _answer(self, line):
        sys.stdout.write(line + '\n')
        sys.stdout.flush()

    def _on_command(self, stream, result):
        line, _ = stream.read_line_finish_utf8(result)
        if line is None:  # end of input: the driver went away
            self.quit()
            return
        command, _, argument = line.strip().partition(' ')
        window = self.window
        try:
            if command == 'add':
                window.entry.set_text(argument)
                window.add_button.emit('clicked')
                self._answer('OK')
            elif command == 'toggle':
                check = window.widget_at(int(argument)).check
                check.set_active(not check.get_active())
                self._answer('OK')
            elif command == 'delete':
                window.widget_at(int(argument)).delete.emit('clicked')
                self._answer('OK')
            elif command == 'dump':
                self._answer('DUMP ' + json.dumps(window.dump()))
            elif command == 'quit':
                window.close()
                self._answer('OK')
                return
            else:
                self._answer('ERROR unknown command %r' % command)
        except Exception as e:  # noqa: BLE001
            # PyGObject would print and swallow it, and the driver would
            # wait for an answer that never comes
            self._answer('ERROR %s: %s' % (type(e).__name__, e))
        self._read_command()


def main(argv):
    parser = argparse.ArgumentParser(
        description='A shared to-do list synced with tinysync.')
    parser.add_argument('url', nargs='?', default=DEFAULT_URL,
                        help='room to join (default %s)' % DEFAULT_URL)
    parser.add_argument('--test-commands', action='store_true',
                        help='read test commands from standard input')
    args = parser.parse_args(argv[1:])
    app = TodoApp(args.url, args.test_commands)
    return app.run([argv[0]])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
