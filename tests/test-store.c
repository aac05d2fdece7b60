/* test-store.c: TsMergeableStore API, errors, signals and listeners
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <tinysync/tinysync.h>

static gint64
fixed_now (gpointer data)
{
  return *(gint64 *) data;
}

static TsMergeableStore *
new_store (const char *id,
           gint64     *now)
{
  TsMergeableStore *store = ts_mergeable_store_new (id);

  ts_mergeable_store_set_clock (store, fixed_now, now, NULL);
  return store;
}

static void
test_docs_example (void)
{
  gint64 now = 1704067200000;
  g_autoptr(TsMergeableStore) store = new_store ("store1", &now);
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  g_autofree char *changes = NULL;

  g_assert_cmpstr (ts_mergeable_store_get_client_id (store), ==, "FnHIC");
  g_assert_true (ts_mergeable_store_set_tables_json (store, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}", &error));
  g_assert_no_error (error);
  content = ts_mergeable_store_get_mergeable_content_json (store);
  g_assert_cmpstr (content, ==,
                   "[[{\"pets\":[{\"fido\":[{\"species\":[\"dog\",\"Nn1JUF-----FnHIC\",290599168]},\"\",2682656941]},\"\",2102515304]},\"\",3506229770],[{},\"\",0]]");
  /* outside a transaction: an empty change set */
  changes = ts_mergeable_store_get_transaction_mergeable_changes_json (store, FALSE);
  g_assert_cmpstr (changes, ==, "[[{}],[{}],1]");
}

static void
test_random_unique_id (void)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new (NULL);
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new (NULL);
  g_autofree char *prop = NULL;

  g_assert_cmpuint (strlen (ts_mergeable_store_get_unique_id (a)), ==, 16);
  g_assert_cmpstr (ts_mergeable_store_get_unique_id (a), !=, ts_mergeable_store_get_unique_id (b));
  g_assert_cmpuint (strlen (ts_mergeable_store_get_client_id (a)), ==, 5);
  g_object_get (a, "client-id", &prop, NULL);
  g_assert_cmpstr (prop, ==, ts_mergeable_store_get_client_id (a));
}

static void
assert_unchanged_after_error (TsMergeableStore *store,
                              const char       *before)
{
  g_autofree char *after = ts_mergeable_store_get_mergeable_content_json (store);

  g_assert_cmpstr (before, ==, after);
}

static void
test_errors (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("s", &now);
  g_autofree char *before = NULL;
  struct {
    const char *json;
    int code;
  } tables_cases[] = {
    { "{bad", TS_ERROR_INVALID_JSON },
    { "", TS_ERROR_INVALID_JSON },
    { "{\"t\":{\"r\":{\"c\":1}}} trailing", TS_ERROR_INVALID_JSON },
    { "{\"t\":{\"r\":{\"c\":NaN}}}", TS_ERROR_INVALID_JSON },
    { "{\"t\":{\"r\":{\"c\":1e400}}}", TS_ERROR_INVALID_CELL },
    { "{\"t\":{\"r\":{\"c\":\"\xEF\xBF\xBC\"}}}", TS_ERROR_INVALID_CELL },
    { "{\"t\":{\"r\":{\"c\":\"\xEF\xBF\xBDx\"}}}", TS_ERROR_INVALID_CELL },
    { "[]", TS_ERROR_INVALID_ARGUMENT },
    { "{\"t\":[]}", TS_ERROR_INVALID_ARGUMENT },
    { "{\"t\":{\"r\":5}}", TS_ERROR_INVALID_ARGUMENT },
    { "{}", TS_ERROR_INVALID_ARGUMENT },
    { "{\"t\":{}}", TS_ERROR_INVALID_ARGUMENT },
    { "{\"t\":{\"r\":{}}}", TS_ERROR_INVALID_ARGUMENT },
    /* one bad cell among good ones rejects everything */
    { "{\"t\":{\"r\":{\"a\":1,\"b\":1e999}},\"u\":{\"r\":{\"c\":1}}}", TS_ERROR_INVALID_CELL },
  };

  ts_mergeable_store_set_tables_json (store, "{\"keep\":{\"r\":{\"c\":\"x\"}}}", NULL);
  before = ts_mergeable_store_get_mergeable_content_json (store);

  for (guint i = 0; i < G_N_ELEMENTS (tables_cases); i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("case %u: %s", i, tables_cases[i].json);
      g_assert_false (ts_mergeable_store_set_tables_json (store, tables_cases[i].json, &error));
      g_assert_error (error, TS_ERROR, tables_cases[i].code);
      assert_unchanged_after_error (store, before);
    }

  {
    g_autoptr(GError) error = NULL;
    /* deep nesting is refused before it can exhaust the stack */
    GString *deep = g_string_new ("{\"t\":{\"r\":{\"c\":");
    for (int i = 0; i < 100000; i++)
      g_string_append_c (deep, '[');
    g_assert_false (ts_mergeable_store_set_tables_json (store, deep->str, &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
    g_string_free (deep, TRUE);
  }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (ts_mergeable_store_set_cell_json (store, "t", "r", "\xff", "1", &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_ID);
  }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (ts_mergeable_store_set_cell (store, "t", "r", "c",
                                                 g_variant_new_double (NAN), &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CELL);
  }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (ts_mergeable_store_set_value (store, "v",
                                                  g_variant_new_string ("\xEF\xBF\xBC"), &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CELL);
  }
  {
    g_autoptr(GError) error = NULL;
    /* an HLC a day ahead voids the whole change set */
    g_assert_false (ts_mergeable_store_apply_mergeable_changes_json (store,
                    "[[{\"keep\":[{\"r\":[{\"c\":[\"new\",\"NsZ-Aa-----Z21Zg\"]}]}]}],[{}],1]", &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT);
  }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (ts_mergeable_store_set_mergeable_content_json (store, "[[{},\"\"],[{},\"\",0]]", &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT);
  }
  {
    g_autoptr(GError) error = NULL;
    g_assert_null (ts_mergeable_store_get_mergeable_table_diff_json (store, "[1]", &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT);
  }
  assert_unchanged_after_error (store, before);
}

static void
test_variants (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("v");
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) s = NULL, d = NULL, b = NULL, n = NULL, o = NULL, a = NULL, i = NULL;
  g_autofree char *json = NULL;
  GVariantBuilder builder;

  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "s", g_variant_new_string ("hi"), &error));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "d", g_variant_new_double (0.1), &error));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "b", g_variant_new_boolean (TRUE), &error));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "n",
                                              g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL), &error));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "i", g_variant_new_int64 (-42), &error));
  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&builder, "{sv}", "b", g_variant_new_int32 (1));
  g_variant_builder_add (&builder, "{sv}", "2", g_variant_new_string ("x"));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "o", g_variant_builder_end (&builder), &error));
  g_assert_true (ts_mergeable_store_set_cell (store, "t", "r", "a",
                                              g_variant_new_parsed ("[<1>, <'two'>, <[<true>]>]"), &error));
  g_assert_no_error (error);

  json = ts_mergeable_store_get_row_json (store, "t", "r");
  g_assert_cmpstr (json, ==,
                   "{\"s\":\"hi\",\"d\":0.1,\"b\":true,\"n\":null,\"i\":-42,\"o\":{\"2\":\"x\",\"b\":1},\"a\":[1,\"two\",[true]]}");

  s = ts_mergeable_store_get_cell (store, "t", "r", "s");
  g_assert_cmpstr (g_variant_get_string (s, NULL), ==, "hi");
  d = ts_mergeable_store_get_cell (store, "t", "r", "d");
  g_assert_cmpfloat (g_variant_get_double (d), ==, 0.1);
  b = ts_mergeable_store_get_cell (store, "t", "r", "b");
  g_assert_true (g_variant_get_boolean (b));
  n = ts_mergeable_store_get_cell (store, "t", "r", "n");
  g_assert_true (g_variant_is_of_type (n, G_VARIANT_TYPE ("mv")));
  g_assert_cmpuint (g_variant_n_children (n), ==, 0);
  i = ts_mergeable_store_get_cell (store, "t", "r", "i");
  g_assert_cmpfloat (g_variant_get_double (i), ==, -42);
  o = ts_mergeable_store_get_cell (store, "t", "r", "o");
  g_assert_true (g_variant_is_of_type (o, G_VARIANT_TYPE ("a{sv}")));
  g_assert_cmpuint (g_variant_n_children (o), ==, 2);
  a = ts_mergeable_store_get_cell (store, "t", "r", "a");
  g_assert_true (g_variant_is_of_type (a, G_VARIANT_TYPE ("av")));
  g_assert_cmpuint (g_variant_n_children (a), ==, 3);
  g_assert_null (ts_mergeable_store_get_cell (store, "t", "r", "missing"));

  /* the encoded object is what is stamped */
  {
    g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (store);
    g_assert_nonnull (strstr (content, "\"o\":[\"\xEF\xBF\xBD{\\\"2\\\":\\\"x\\\",\\\"b\\\":1}\""));
  }
}

static void
test_ids_and_deletes (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("i");
  g_auto(GStrv) tables = NULL;
  g_auto(GStrv) rows = NULL;
  g_auto(GStrv) cells = NULL;
  g_auto(GStrv) values = NULL;
  g_autofree char *json = NULL;

  ts_mergeable_store_set_tables_json (store, "{\"b\":{\"x\":{\"c\":1}},\"10\":{\"2\":{\"z\":1,\"1\":2},\"1\":{\"a\":1}},\"a\":{\"y\":{\"c\":1}}}", NULL);
  ts_mergeable_store_set_value_number (store, "v", 1);
  ts_mergeable_store_set_value_boolean (store, "w", FALSE);
  ts_mergeable_store_set_value_string (store, "u", "s");

  tables = ts_mergeable_store_get_table_ids (store);
  g_assert_cmpstrv (tables, ((const char *[]) { "10", "b", "a", NULL }));
  rows = ts_mergeable_store_get_row_ids (store, "10");
  g_assert_cmpstrv (rows, ((const char *[]) { "1", "2", NULL }));
  cells = ts_mergeable_store_get_cell_ids (store, "10", "2");
  g_assert_cmpstrv (cells, ((const char *[]) { "1", "z", NULL }));
  values = ts_mergeable_store_get_value_ids (store);
  g_assert_cmpstrv (values, ((const char *[]) { "v", "w", "u", NULL }));
  g_assert_cmpuint (ts_mergeable_store_get_row_count (store, "10"), ==, 2);
  g_assert_true (ts_mergeable_store_has_tables (store));
  g_assert_true (ts_mergeable_store_has_row (store, "10", "1"));
  g_assert_false (ts_mergeable_store_has_row (store, "10", "3"));
  g_assert_true (ts_mergeable_store_has_cell (store, "a", "y", "c"));
  g_assert_true (ts_mergeable_store_has_value (store, "w"));

  /* the last cell takes its row and table with it */
  ts_mergeable_store_del_cell (store, "a", "y", "c");
  g_assert_false (ts_mergeable_store_has_table (store, "a"));
  ts_mergeable_store_del_row (store, "10", "1");
  g_assert_cmpuint (ts_mergeable_store_get_row_count (store, "10"), ==, 1);
  ts_mergeable_store_del_table (store, "b");
  json = ts_mergeable_store_get_tables_json (store);
  g_assert_cmpstr (json, ==, "{\"10\":{\"2\":{\"1\":2,\"z\":1}}}");
  ts_mergeable_store_del_tables (store);
  g_assert_false (ts_mergeable_store_has_tables (store));
  ts_mergeable_store_del_value (store, "v");
  g_assert_false (ts_mergeable_store_has_value (store, "v"));
  ts_mergeable_store_del_values (store);
  g_assert_false (ts_mergeable_store_has_values (store));

  /* deletes of absent things are harmless no-ops */
  ts_mergeable_store_del_row (store, "none", "none");
  ts_mergeable_store_del_cell (store, "none", "none", "none");
  ts_mergeable_store_del_table (store, "none");
  ts_mergeable_store_del_value (store, "none");
}

typedef struct {
  GPtrArray *events;
} Recorder;

static void
record (Recorder *r, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
record (Recorder   *r,
        const char *fmt,
        ...)
{
  va_list args;

  va_start (args, fmt);
  g_ptr_array_add (r->events, g_strdup_vprintf (fmt, args));
  va_end (args);
}

static void
on_cell (TsMergeableStore *s, const char *t, const char *r, const char *c, Recorder *rec)
{
  record (rec, "cell %s/%s/%s", t, r, c);
}

static void
on_pets_cell (TsMergeableStore *s, const char *t, const char *r, const char *c, Recorder *rec)
{
  record (rec, "pets-cell %s/%s/%s", t, r, c);
}

static void
on_row (TsMergeableStore *s, const char *t, const char *r, Recorder *rec)
{
  record (rec, "row %s/%s", t, r);
}

static void
on_table (TsMergeableStore *s, const char *t, Recorder *rec)
{
  record (rec, "table %s", t);
}

static void
on_tables (TsMergeableStore *s, Recorder *rec)
{
  record (rec, "tables");
}

static void
on_value (TsMergeableStore *s, const char *v, Recorder *rec)
{
  record (rec, "value %s", v);
}

static void
on_values (TsMergeableStore *s, Recorder *rec)
{
  record (rec, "values");
}

static void
on_finished (TsMergeableStore *s, Recorder *rec)
{
  g_autofree char *changes = ts_mergeable_store_get_transaction_mergeable_changes_json (s, FALSE);

  record (rec, "finished %s", changes);
}

static void
listener_cell (TsMergeableStore *s, const char *t, const char *r, const char *c, gpointer data)
{
  record (data, "L-cell %s/%s/%s", t, r, c);
}

static void
listener_value (TsMergeableStore *s, const char *v, gpointer data)
{
  record (data, "L-value %s", v);
}

static void
notify_count (gpointer data)
{
  (*(int *) data)++;
}

static void
in_transaction (TsMergeableStore *store,
                gpointer          data)
{
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 4);
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 3);
  /* set and reverted: no signal, but listed as a change */
  ts_mergeable_store_set_cell_string (store, "pets", "rex", "species", "cat");
  ts_mergeable_store_del_cell (store, "pets", "rex", "species");
  ts_mergeable_store_set_value_number (store, "open", 1);
}

static void
test_signals (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("s1", &now);
  Recorder rec = { g_ptr_array_new_with_free_func (g_free) };
  int notified = 0;
  gulong l1, l2;
  const char *expected[] = {
    "cell pets/fido/legs",
    "pets-cell pets/fido/legs",
    "L-cell pets/fido/legs",
    "value open",
    "L-value open",
    "row pets/fido",
    "table pets",
    "tables",
    "values",
    "finished [[{\"pets\":[{\"fido\":[{\"legs\":[3,\"NsYwJk----17JQY8\"]}],\"rex\":[{\"species\":[\"\xEF\xBF\xBC\",\"NsYwJk----37JQY8\"]}]}]}],[{\"open\":[1,\"NsYwJk----47JQY8\"]}],1]",
  };

  g_signal_connect (store, "cell-changed", G_CALLBACK (on_cell), &rec);
  g_signal_connect (store, "cell-changed::pets", G_CALLBACK (on_pets_cell), &rec);
  g_signal_connect (store, "cell-changed::other", G_CALLBACK (on_pets_cell), &rec);
  g_signal_connect (store, "row-changed", G_CALLBACK (on_row), &rec);
  g_signal_connect (store, "table-changed::pets", G_CALLBACK (on_table), &rec);
  g_signal_connect (store, "tables-changed", G_CALLBACK (on_tables), &rec);
  g_signal_connect (store, "value-changed::open", G_CALLBACK (on_value), &rec);
  g_signal_connect (store, "values-changed", G_CALLBACK (on_values), &rec);
  g_signal_connect (store, "transaction-finished", G_CALLBACK (on_finished), &rec);
  l1 = ts_mergeable_store_add_cell_listener (store, NULL, "fido", NULL, listener_cell, &rec, NULL);
  l2 = ts_mergeable_store_add_value_listener (store, "open", listener_value, &rec, NULL);
  ts_mergeable_store_add_cell_listener (store, "nope", NULL, NULL, listener_cell, &notified, notify_count);

  ts_mergeable_store_set_cell_string (store, "pets", "fido", "species", "dog");
  g_ptr_array_set_size (rec.events, 0);

  ts_mergeable_store_transaction (store, in_transaction, NULL);
  for (guint i = 0; i < rec.events->len; i++)
    g_test_message ("event %u: %s", i, (char *) rec.events->pdata[i]);
  g_assert_cmpuint (rec.events->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpstr (rec.events->pdata[i], ==, expected[i]);

  /* a no-op still finishes a transaction, nothing else */
  g_ptr_array_set_size (rec.events, 0);
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 3);
  g_assert_cmpuint (rec.events->len, ==, 1);
  g_assert_cmpstr (rec.events->pdata[0], ==, "finished [[{}],[{}],1]");

  /* nested transactions announce once, at the end */
  g_ptr_array_set_size (rec.events, 0);
  ts_mergeable_store_start_transaction (store);
  ts_mergeable_store_start_transaction (store);
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 5);
  ts_mergeable_store_finish_transaction (store);
  g_assert_cmpuint (rec.events->len, ==, 0);
  g_assert_true (ts_mergeable_store_in_transaction (store));
  ts_mergeable_store_finish_transaction (store);
  g_assert_false (ts_mergeable_store_in_transaction (store));
  g_assert_cmpuint (rec.events->len, >, 0);

  ts_mergeable_store_del_listener (store, l1);
  ts_mergeable_store_del_listener (store, l2);
  g_ptr_array_set_size (rec.events, 0);
  ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 6);
  ts_mergeable_store_set_value_number (store, "open", 2);
  for (guint i = 0; i < rec.events->len; i++)
    g_assert_false (g_str_has_prefix (rec.events->pdata[i], "L-"));

  g_signal_handlers_disconnect_by_data (store, &rec);
  g_ptr_array_unref (rec.events);
  g_clear_object (&store);
  /* the listener's data was released with the store */
  g_assert_cmpint (notified, ==, 1);
}

static void
reentrant_cell (TsMergeableStore *s, const char *t, const char *r, const char *c, gpointer data)
{
  /* writing from a handler starts a new transaction */
  if (strcmp (t, "a") == 0)
    ts_mergeable_store_set_cell_string (s, "b", r, c, "echo");
  if (strcmp (t, "b") == 0)
    (*(int *) data)++;
}

static void
test_reentrancy (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("r");
  int echoes = 0;

  g_signal_connect (store, "cell-changed", G_CALLBACK (reentrant_cell), &echoes);
  ts_mergeable_store_set_tables_json (store, "{\"a\":{\"r1\":{\"c\":1},\"r2\":{\"c\":2}}}", NULL);
  g_assert_cmpint (echoes, ==, 2);
  g_assert_true (ts_mergeable_store_has_cell (store, "b", "r2", "c"));
}

static void
test_add_row (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("a");
  g_autoptr(GError) error = NULL;
  char *ids[4];

  for (int i = 0; i < 3; i++)
    ids[i] = ts_mergeable_store_add_row_json (store, "t", "{\"c\":1}", TRUE, &error);
  g_assert_cmpstr (ids[0], ==, "0");
  g_assert_cmpstr (ids[1], ==, "1");
  g_assert_cmpstr (ids[2], ==, "2");
  ts_mergeable_store_del_row (store, "t", "1");
  ids[3] = ts_mergeable_store_add_row_json (store, "t", "{\"c\":1}", TRUE, &error);
  g_assert_cmpstr (ids[3], ==, "1");
  for (int i = 0; i < 4; i++)
    g_free (ids[i]);
  g_assert_null (ts_mergeable_store_add_row_json (store, "t", "{}", TRUE, &error));
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT);
}

static void
test_merge (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) a = new_store ("a", &now);
  g_autoptr(TsMergeableStore) b = new_store ("b", &now);
  guint32 ha[2], hb[2];
  g_autofree char *ta = NULL, *tb = NULL;

  ts_mergeable_store_set_tables_json (a, "{\"t\":{\"r\":{\"o\":{\"x\":1},\"n\":1}}}", NULL);
  now++;
  ts_mergeable_store_set_tables_json (b, "{\"t\":{\"r\":{\"n\":2},\"s\":{\"a\":[1]}}}", NULL);
  ts_mergeable_store_merge (a, b);
  ts_mergeable_store_get_mergeable_content_hashes (a, &ha[0], &ha[1]);
  ts_mergeable_store_get_mergeable_content_hashes (b, &hb[0], &hb[1]);
  /* unlike TinyBase's merge(), object cells converge too */
  g_assert_cmpuint (ha[0], ==, hb[0]);
  g_assert_cmpuint (ha[1], ==, hb[1]);
  ta = ts_mergeable_store_get_row_json (a, "t", "r");
  tb = ts_mergeable_store_get_row_json (b, "t", "r");
  g_assert_cmpstr (ta, ==, "{\"o\":{\"x\":1},\"n\":2}");
  g_assert_cmpstr (tb, ==, "{\"n\":2,\"o\":{\"x\":1}}");
}

static void
test_many (void)
{
  /* enough rows and cells to use the hashed indexes, with ids that look
   * alike, and a content round trip */
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autofree char *content = NULL;
  g_autofree char *again = NULL;
  g_autoptr(GError) error = NULL;
  guint32 ha[2], hb[2];

  ts_mergeable_store_start_transaction (a);
  for (int r = 0; r < 2000; r++)
    for (int c = 0; c < 20; c++)
      {
        char row[16], cell[16];
        g_snprintf (row, sizeof row, "r%d", r);
        g_snprintf (cell, sizeof cell, "c%d", c);
        ts_mergeable_store_set_cell_number (a, (r % 3) ? "t" : "u", row, cell, r * c);
      }
  ts_mergeable_store_finish_transaction (a);
  g_assert_cmpuint (ts_mergeable_store_get_row_count (a, "t"), ==, 1333);
  for (int r = 0; r < 2000; r += 7)
    {
      char row[16];
      g_snprintf (row, sizeof row, "r%d", r);
      ts_mergeable_store_del_row (a, (r % 3) ? "t" : "u", row);
    }

  content = ts_mergeable_store_get_mergeable_content_json (a);
  g_assert_true (ts_mergeable_store_set_mergeable_content_json (b, content, &error));
  g_assert_no_error (error);
  again = ts_mergeable_store_get_mergeable_content_json (b);
  g_assert_cmpstr (content, ==, again);
  ts_mergeable_store_get_mergeable_content_hashes (a, &ha[0], &ha[1]);
  ts_mergeable_store_get_mergeable_content_hashes (b, &hb[0], &hb[1]);
  g_assert_cmpuint (ha[0], ==, hb[0]);
  g_assert_true (ts_mergeable_store_has_cell (b, "t", "r1999", "c19"));
  g_assert_false (ts_mergeable_store_has_row (b, "t", "r7"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/store/docs-example", test_docs_example);
  g_test_add_func ("/tinysync/store/random-unique-id", test_random_unique_id);
  g_test_add_func ("/tinysync/store/errors", test_errors);
  g_test_add_func ("/tinysync/store/variants", test_variants);
  g_test_add_func ("/tinysync/store/ids-and-deletes", test_ids_and_deletes);
  g_test_add_func ("/tinysync/store/signals", test_signals);
  g_test_add_func ("/tinysync/store/reentrancy", test_reentrancy);
  g_test_add_func ("/tinysync/store/add-row", test_add_row);
  g_test_add_func ("/tinysync/store/merge", test_merge);
  g_test_add_func ("/tinysync/store/many", test_many);

  return g_test_run ();
}
