// seed.js: TinyBase's synchronization example with GJS.
//
// A TsWsServer relays the room "petShop"; two stores join it through
// TsWsSynchronizers, each adds a pet, and both end up with both pets.
//
// SPDX-License-Identifier: MIT
imports.gi.versions.Soup = '3.0';
imports.gi.versions.Tinysync = '1.0';
const {Gio, GLib, Soup, Tinysync} = imports.gi;
const System = imports.system;

Gio._promisify(Tinysync.WsSynchronizer, 'new_async', 'new_finish');
Gio._promisify(Tinysync.Synchronizer.prototype, 'start_sync_async', 'start_sync_finish');

const loop = new GLib.MainLoop(null, false);
let status = 0;

const waitUntil = (test) => new Promise((resolve) => {
    GLib.timeout_add(GLib.PRIORITY_DEFAULT, 20, () => {
        if (!test())
            return GLib.SOURCE_CONTINUE;
        resolve();
        return GLib.SOURCE_REMOVE;
    });
});

async function main() {
    // 1. A server on a free local port, and two stores.
    const soup = new Soup.Server({raw_paths: true});
    const server = Tinysync.WsServer.new(soup);
    soup.listen_local(0, Soup.ServerListenOptions.IPV4_ONLY);
    const url = `ws://127.0.0.1:${soup.get_uris()[0].get_port()}/petShop`;
    const store1 = Tinysync.MergeableStore.new('store1');
    const store2 = Tinysync.MergeableStore.new('store2');

    // 2. await createWsSynchronizer(store, webSocket), twice.
    const sync1 = await Tinysync.WsSynchronizer.new_async(store1, url, 1.0, null);
    const sync2 = await Tinysync.WsSynchronizer.new_async(store2, url, 1.0, null);

    // 3. The first one in an empty room waits a request timeout.
    await sync1.start_sync_async(null, null);
    await sync2.start_sync_async(null, null);

    // 4. Each store gets a pet.
    store1.set_tables_json('{"pets":{"fido":{"species":"dog"}}}');
    store2.set_tables_json('{"pets":{"felix":{"species":"cat"}}}');

    // 5. Both converge.
    const both = (s) => s.has_row('pets', 'fido') && s.has_row('pets', 'felix');
    await waitUntil(() => both(store1) && both(store2));
    print(`store1: ${store1.get_tables_json()}`);
    print(`store2: ${store2.get_tables_json()}`);

    sync1.destroy();
    sync2.destroy();
    server.destroy();
}

GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, 20, () => {
    printerr('seed: the stores did not converge in time');
    status = 1;
    loop.quit();
    return GLib.SOURCE_REMOVE;
});
main().catch((e) => {
    printerr(`seed: ${e.message ?? e}`);
    status = 1;
}).finally(() => loop.quit());
loop.run();
System.exit(status);
