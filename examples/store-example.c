/* store-example.c: a tour of TsMergeableStore
 *
 * SPDX-License-Identifier: MIT
 *
 * Builds a store, fills it with tables and values, listens to changes,
 * prints the store as JSON and as TinyBase mergeable content, then merges
 * a second store into it. store-example.py, store-example.js and
 * store-example.vala do the same and print the same text.
 *
 * Build outside the tree with:
 *   cc store-example.c $(pkg-config --cflags --libs tinysync-1.0)
 */
#include <stdlib.h>

#include <tinysync/tinysync.h>

/* 2024-01-01T00:00:00Z, the time TinyBase's documentation uses. A real
 * application keeps the default clock; a fixed one makes this example's
 * output reproducible, stamp for stamp. */
#define DOCS_TIME G_GINT64_CONSTANT (1704067200000)

static gint64
fixed_clock (gpointer user_data)
{
  return *(gint64 *) user_data;
}

/* ::cell-changed runs once per changed cell when a transaction ends; each
 * setter call outside a transaction is a transaction of its own. */
static void
on_cell_changed (TsMergeableStore *store,
                 const char       *table_id,
                 const char       *row_id,
                 const char       *cell_id,
                 gpointer          user_data)
{
  g_autofree char *json = ts_mergeable_store_get_cell_json (store, table_id, row_id, cell_id);

  g_print ("  %s: %s/%s/%s = %s\n", ts_mergeable_store_get_unique_id (store),
           table_id, row_id, cell_id, json != NULL ? json : "(deleted)");
}

static void
on_value_changed (TsMergeableStore *store,
                  const char       *value_id,
                  gpointer          user_data)
{
  g_autofree char *json = ts_mergeable_store_get_value_json (store, value_id);

  g_print ("  %s: value %s = %s\n", ts_mergeable_store_get_unique_id (store),
           value_id, json != NULL ? json : "(deleted)");
}

static void
print_store (TsMergeableStore *store)
{
  g_autofree char *tables = ts_mergeable_store_get_tables_json (store);
  g_autofree char *values = ts_mergeable_store_get_values_json (store);
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (store);
  guint32 tables_hash, values_hash;

  ts_mergeable_store_get_mergeable_content_hashes (store, &tables_hash, &values_hash);
  g_print ("%s (client id %s)\n", ts_mergeable_store_get_unique_id (store),
           ts_mergeable_store_get_client_id (store));
  g_print ("  tables: %s\n", tables);
  g_print ("  values: %s\n", values);
  g_print ("  hashes: tables %u, values %u\n", tables_hash, values_hash);
  g_print ("  mergeable content:\n    %s\n\n", content);
}

int
main (void)
{
  g_autoptr(TsMergeableStore) store = NULL;
  g_autoptr(TsMergeableStore) other = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  gint64 now = DOCS_TIME;
  gint64 later = DOCS_TIME + 60000;

  /* The unique id fixes the client id at the end of every HLC stamp:
   * "store1" gives "FnHIC", as in TinyBase. */
  store = ts_mergeable_store_new ("store1");
  ts_mergeable_store_set_clock (store, fixed_clock, &now, NULL);
  g_signal_connect (store, "cell-changed", G_CALLBACK (on_cell_changed), NULL);
  g_signal_connect (store, "value-changed", G_CALLBACK (on_value_changed), NULL);

  /* TinyBase's setTables(): JSON in, every cell gets a stamp. */
  g_print ("Setting tables:\n");
  if (!ts_mergeable_store_set_tables_json (store, "{\"pets\": {\"fido\": {\"species\": \"dog\"}}}",
                                           &error))
    {
      g_printerr ("set_tables_json: %s\n", error->message);
      return EXIT_FAILURE;
    }
  content = ts_mergeable_store_get_mergeable_content_json (store);
  g_print ("Mergeable content, as TinyBase's documentation shows it:\n  %s\n", content);

  /* Typed setters; writes inside one transaction are announced together
   * when it finishes. */
  g_print ("\nOne transaction:\n");
  ts_mergeable_store_start_transaction (store);
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 4);
  ts_mergeable_store_set_cell (store, "pets", "felix", "species",
                               g_variant_new_string ("cat"), NULL);
  ts_mergeable_store_set_value_boolean (store, "open", TRUE);
  ts_mergeable_store_finish_transaction (store);

  /* Invalid input is a GError and changes nothing. */
  if (!ts_mergeable_store_set_cell_json (store, "pets", "fido", "legs", "{oops", &error))
    {
      g_print ("  rejected: %s\n", error->message);
      g_clear_error (&error);
    }

  g_print ("\n");
  print_store (store);

  /* A second store writes a minute later; merging goes both ways, the
   * later stamp wins, and both end with the same content and hashes. */
  other = ts_mergeable_store_new ("store2");
  ts_mergeable_store_set_clock (other, fixed_clock, &later, NULL);
  ts_mergeable_store_set_cell_string (other, "pets", "fido", "species", "wolf");
  g_signal_connect (other, "cell-changed", G_CALLBACK (on_cell_changed), NULL);
  g_signal_connect (other, "value-changed", G_CALLBACK (on_value_changed), NULL);

  g_print ("Merging store2, which set pets/fido/species a minute later:\n");
  ts_mergeable_store_merge (store, other);

  g_print ("\n");
  print_store (store);
  print_store (other);

  return EXIT_SUCCESS;
}
