/* store-example.vala: a tour of Ts.MergeableStore from Vala
 *
 * SPDX-License-Identifier: MIT
 *
 * The same scenario as store-example.c, printing the same text. Build
 * outside the tree with:
 *   valac --pkg tinysync-1.0 store-example.vala
 * (the VAPI calls the namespace Ts, after the C prefix).
 */

/* 2024-01-01T00:00:00Z, the time TinyBase's documentation uses. A real
 * application keeps the default clock; a fixed one makes the output
 * reproducible, stamp for stamp. */
const int64 DOCS_TIME = 1704067200000;

/* ::cell-changed runs once per changed cell when a transaction ends. */
void on_cell_changed (Ts.MergeableStore store, string table_id, string row_id, string cell_id) {
    var json = store.get_cell_json (table_id, row_id, cell_id);
    print ("  %s: %s/%s/%s = %s\n", store.unique_id, table_id, row_id, cell_id,
           json ?? "(deleted)");
}

void on_value_changed (Ts.MergeableStore store, string value_id) {
    var json = store.get_value_json (value_id);
    print ("  %s: value %s = %s\n", store.unique_id, value_id, json ?? "(deleted)");
}

void print_store (Ts.MergeableStore store) {
    uint32 tables_hash, values_hash;

    store.get_mergeable_content_hashes (out tables_hash, out values_hash);
    print ("%s (client id %s)\n", store.unique_id, store.client_id);
    print ("  tables: %s\n", store.get_tables_json ());
    print ("  values: %s\n", store.get_values_json ());
    print ("  hashes: tables %u, values %u\n", tables_hash, values_hash);
    print ("  mergeable content:\n    %s\n\n", store.get_mergeable_content_json ());
}

int main () {
    /* The unique id fixes the client id at the end of every HLC stamp:
     * "store1" gives "FnHIC", as in TinyBase. */
    var store = new Ts.MergeableStore ("store1");
    store.set_clock (() => DOCS_TIME);
    store.cell_changed.connect (on_cell_changed);
    store.value_changed.connect (on_value_changed);

    /* TinyBase's setTables(): JSON in, every cell gets a stamp. */
    print ("Setting tables:\n");
    try {
        store.set_tables_json ("""{"pets": {"fido": {"species": "dog"}}}""");
    } catch (GLib.Error e) {
        printerr ("set_tables_json: %s\n", e.message);
        return 1;
    }
    print ("Mergeable content, as TinyBase's documentation shows it:\n  %s\n",
           store.get_mergeable_content_json ());

    /* Typed setters; writes inside one transaction are announced together
     * when it finishes. */
    print ("\nOne transaction:\n");
    store.transaction ((s) => {
        s.set_cell_number ("pets", "fido", "legs", 4);
        try {
            s.set_cell ("pets", "felix", "species", new Variant.string ("cat"));
        } catch (GLib.Error e) {
            assert_not_reached ();
        }
        s.set_value_boolean ("open", true);
    });

    /* Invalid input throws Ts.Error and changes nothing. */
    try {
        store.set_cell_json ("pets", "fido", "legs", "{oops");
    } catch (Ts.Error.INVALID_JSON e) {
        print ("  rejected: %s\n", e.message);
    } catch (GLib.Error e) {
        printerr ("unexpected error: %s\n", e.message);
        return 1;
    }

    print ("\n");
    print_store (store);

    /* A second store writes a minute later; merging goes both ways, the
     * later stamp wins, and both end with the same content and hashes. */
    var other = new Ts.MergeableStore ("store2");
    other.set_clock (() => DOCS_TIME + 60000);
    other.set_cell_string ("pets", "fido", "species", "wolf");
    other.cell_changed.connect (on_cell_changed);
    other.value_changed.connect (on_value_changed);

    print ("Merging store2, which set pets/fido/species a minute later:\n");
    store.merge (other);

    print ("\n");
    print_store (store);
    print_store (other);
    return 0;
}
