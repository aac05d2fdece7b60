#!/usr/bin/env python3
# seed.py: TinyBase's synchronization example with PyGObject.
#
# A TsWsServer relays the room "petShop"; two stores join it through
# TsWsSynchronizers, each adds a pet, and both end up with both pets.
# (PyGObject 3.42 cannot await, so the steps chain through callbacks.)
#
# SPDX-License-Identifier: MIT
import sys

import gi

gi.require_version("Soup", "3.0")
gi.require_version("Tinysync", "1.0")
from gi.repository import GLib, Soup, Tinysync  # noqa: E402

loop = GLib.MainLoop()
status = {"code": 0}


def fail(error):
    print("seed:", error.message if hasattr(error, "message") else error, file=sys.stderr)
    status["code"] = 1
    loop.quit()


# 1. A server on a free local port, and two stores.
soup = Soup.Server(raw_paths=True)
server = Tinysync.WsServer.new(soup)
soup.listen_local(0, Soup.ServerListenOptions.IPV4_ONLY)
url = "ws://127.0.0.1:%d/petShop" % soup.get_uris()[0].get_port()
store1 = Tinysync.MergeableStore.new("store1")
store2 = Tinysync.MergeableStore.new("store2")
synchronizers = {}


def converged():
    # 5. Both stores have both pets: print them.
    if all(s.has_row("pets", "fido") and s.has_row("pets", "felix") for s in (store1, store2)):
        print("store1:", store1.get_tables_json())
        print("store2:", store2.get_tables_json())
        loop.quit()
        return GLib.SOURCE_REMOVE
    return GLib.SOURCE_CONTINUE


def on_sync2_started(sync, result):
    # 4. Both are syncing: each store gets a pet.
    try:
        sync.start_sync_finish(result)
    except GLib.Error as e:
        return fail(e)
    store1.set_tables_json('{"pets":{"fido":{"species":"dog"}}}')
    store2.set_tables_json('{"pets":{"felix":{"species":"cat"}}}')
    GLib.timeout_add(20, converged)


def on_sync1_started(sync, result):
    # 3. The first one in an empty room waits a request timeout; then the
    # second one starts.
    try:
        sync.start_sync_finish(result)
    except GLib.Error as e:
        return fail(e)
    synchronizers[store2].start_sync_async(None, None, on_sync2_started)


def on_created(_source, result, store):
    # 2. Both synchronizers are connected.
    try:
        synchronizers[store] = Tinysync.WsSynchronizer.new_finish(result)
    except GLib.Error as e:
        return fail(e)
    if len(synchronizers) == 2:
        synchronizers[store1].start_sync_async(None, None, on_sync1_started)


Tinysync.WsSynchronizer.new_async(store1, url, 1.0, None, on_created, store1)
Tinysync.WsSynchronizer.new_async(store2, url, 1.0, None, on_created, store2)
GLib.timeout_add_seconds(20, lambda: fail("the stores did not converge in time"))
loop.run()

for sync in synchronizers.values():
    sync.destroy()
server.destroy()
sys.exit(status["code"])
