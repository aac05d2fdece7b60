/* test-store-vectors.c: replays store-scenarios.json (made by the real
 * TinyBase 10.0.1) through TsMergeableStore and compares every snapshot
 * byte for byte.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include <tinysync/tinysync.h>

#include "ts-json-private.h"
#include "ts-mergeable-store-private.h"

typedef struct {
  gint64 now;
} Clock;

static gint64
clock_now (gpointer data)
{
  return ((Clock *) data)->now;
}

typedef struct {
  char              *name;
  TsMergeableStore  *store;
  char              *changes;    /* captured in transaction-finished */
} Store;

static void
on_finished (TsMergeableStore *store,
             gpointer          data)
{
  Store *s = data;

  g_free (s->changes);
  s->changes = ts_mergeable_store_get_transaction_mergeable_changes_json (store, FALSE);
}

static char *
node_json (const TsJsonNode *node)
{
  return ts_json_node_to_string (node, NULL);
}

static TsJsonDoc *
load_vectors (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "store-scenarios.json", NULL);
  g_autofree char *text = NULL;
  gsize len;
  g_autoptr(GError) error = NULL;
  TsJsonDoc *doc;

  g_assert_true (g_file_get_contents (path, &text, &len, &error));
  doc = ts_json_parse (text, len, &error);
  g_assert_no_error (error);
  return doc;
}

static const TsJsonNode *
get (TsJsonDoc        *doc,
     const TsJsonNode *obj,
     const char       *key)
{
  g_assert_true (obj->type == TS_JSON_OBJECT);
  return ts_json_object_get (doc, obj, key, strlen (key));
}

static Store *
find_store (GPtrArray  *stores,
            const char *name)
{
  for (guint i = 0; i < stores->len; i++)
    {
      Store *s = stores->pdata[i];
      if (strcmp (s->name, name) == 0)
        return s;
    }
  g_assert_not_reached ();
  return NULL;
}

static void
store_free (gpointer data)
{
  Store *s = data;

  g_object_unref (s->store);
  g_free (s->changes);
  g_free (s->name);
  g_free (s);
}

static void
assert_hash_tree (TsJsonDoc        *doc,
                  TsStampTree      *tree,
                  const TsJsonNode *expected,
                  int               depth)
{
  /* depth 1: {t: {r: hash}}, depth 2: {t: {r: {c: hash}}} */
  guint counted = 0, total = 0;

  for (guint32 i = 0; i < expected->len; i++)
    {
      const TsJsonMember *tm = &expected->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, tm->key, tm->key_len, FALSE);

      g_assert_nonnull (table);
      for (guint32 j = 0; j < tm->value.len; j++)
        {
          const TsJsonMember *rm = &tm->value.u.members[j];
          TsRow *row = ts_table_row (table, rm->key, rm->key_len, FALSE);

          g_assert_nonnull (row);
          if (depth == 1)
            {
              g_assert_cmpfloat (rm->value.u.num, ==, (double) row->hash);
              counted++;
              continue;
            }
          for (guint32 k = 0; k < rm->value.len; k++)
            {
              const TsJsonMember *cm = &rm->value.u.members[k];
              TsLeaf *leaf = ts_row_find_leaf (tree, row, cm->key, cm->key_len);

              g_assert_nonnull (leaf);
              g_assert_cmpfloat (cm->value.u.num, ==, (double) leaf->hash);
              counted++;
            }
        }
    }
  for (guint32 t = 0; t < tree->n_tables; t++)
    for (guint32 r = 0; r < tree->tables[t]->n_rows; r++)
      total += depth == 1 ? 1 : tree->tables[t]->rows[r]->n_leaves;
  g_assert_cmpuint (counted, ==, total);
}

static void
assert_snapshot (TsJsonDoc        *doc,
                 Store            *s,
                 const TsJsonNode *snap,
                 const char       *where)
{
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (s->store);
  g_autofree char *want_content = node_json (get (doc, snap, "content"));
  g_autofree char *tables = ts_mergeable_store_get_tables_json (s->store);
  g_autofree char *want_tables = node_json (get (doc, snap, "tables"));
  g_autofree char *values = ts_mergeable_store_get_values_json (s->store);
  g_autofree char *want_values = node_json (get (doc, snap, "values"));
  g_autofree char *table_hashes = ts_mergeable_store_get_mergeable_table_hashes_json (s->store);
  g_autofree char *want_table_hashes = node_json (get (doc, snap, "tableHashes"));
  g_autofree char *value_hashes = ts_mergeable_store_get_mergeable_value_hashes_json (s->store);
  g_autofree char *want_value_hashes = node_json (get (doc, snap, "valueHashes"));
  const TsJsonNode *hashes = get (doc, snap, "contentHashes");
  guint32 th, vh;

  g_test_message ("%s: store %s", where, s->name);
  g_assert_cmpstr (content, ==, want_content);
  g_assert_cmpstr (tables, ==, want_tables);
  g_assert_cmpstr (values, ==, want_values);
  g_assert_cmpstr (table_hashes, ==, want_table_hashes);
  g_assert_cmpstr (value_hashes, ==, want_value_hashes);
  ts_mergeable_store_get_mergeable_content_hashes (s->store, &th, &vh);
  g_assert_cmpfloat ((double) th, ==, hashes->u.items[0].u.num);
  g_assert_cmpfloat ((double) vh, ==, hashes->u.items[1].u.num);
  assert_hash_tree (doc, _ts_mergeable_store_get_tree (s->store), get (doc, snap, "rowHashes"), 1);
  assert_hash_tree (doc, _ts_mergeable_store_get_tree (s->store), get (doc, snap, "cellHashes"), 2);
}

static char *
arg (const TsJsonNode *op,
     guint             i)
{
  g_assert_cmpuint (op->len, >, i);
  return node_json (&op->u.items[i]);
}

static const char *
sarg (const TsJsonNode *op,
      guint             i)
{
  g_assert_cmpuint (op->len, >, i);
  g_assert_true (op->u.items[i].type == TS_JSON_STRING);
  return op->u.items[i].u.str;
}

/* Runs one op; returns the addRow id when there is one. */
static char *
run_op (GPtrArray        *stores,
        Store            *s,
        const TsJsonNode *op)
{
  const char *m = sarg (op, 0);
  g_autoptr(GError) error = NULL;
  TsMergeableStore *st = s->store;
  char *returned = NULL;

  if (strcmp (m, "transaction") == 0)
    {
      ts_mergeable_store_start_transaction (st);
      for (guint i = 1; i < op->len; i++)
        g_free (run_op (stores, s, &op->u.items[i]));
      ts_mergeable_store_finish_transaction (st);
      return NULL;
    }
  if (strcmp (m, "setTables") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_set_tables_json (st, a, &error);
    }
  else if (strcmp (m, "setTable") == 0)
    {
      g_autofree char *a = arg (op, 2);
      ts_mergeable_store_set_table_json (st, sarg (op, 1), a, &error);
    }
  else if (strcmp (m, "setRow") == 0)
    {
      g_autofree char *a = arg (op, 3);
      ts_mergeable_store_set_row_json (st, sarg (op, 1), sarg (op, 2), a, &error);
    }
  else if (strcmp (m, "setPartialRow") == 0)
    {
      g_autofree char *a = arg (op, 3);
      ts_mergeable_store_set_partial_row_json (st, sarg (op, 1), sarg (op, 2), a, &error);
    }
  else if (strcmp (m, "setCell") == 0)
    {
      g_autofree char *a = arg (op, 4);
      ts_mergeable_store_set_cell_json (st, sarg (op, 1), sarg (op, 2), sarg (op, 3), a, &error);
    }
  else if (strcmp (m, "setValues") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_set_values_json (st, a, &error);
    }
  else if (strcmp (m, "setPartialValues") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_set_partial_values_json (st, a, &error);
    }
  else if (strcmp (m, "setValue") == 0)
    {
      g_autofree char *a = arg (op, 2);
      ts_mergeable_store_set_value_json (st, sarg (op, 1), a, &error);
    }
  else if (strcmp (m, "addRow") == 0)
    {
      g_autofree char *a = arg (op, 2);
      gboolean reuse = op->len < 4 || op->u.items[3].type == TS_JSON_TRUE;
      returned = ts_mergeable_store_add_row_json (st, sarg (op, 1), a, reuse, &error);
    }
  else if (strcmp (m, "delTables") == 0)
    ts_mergeable_store_del_tables (st);
  else if (strcmp (m, "delTable") == 0)
    ts_mergeable_store_del_table (st, sarg (op, 1));
  else if (strcmp (m, "delRow") == 0)
    ts_mergeable_store_del_row (st, sarg (op, 1), sarg (op, 2));
  else if (strcmp (m, "delCell") == 0)
    ts_mergeable_store_del_cell (st, sarg (op, 1), sarg (op, 2), sarg (op, 3));
  else if (strcmp (m, "delValues") == 0)
    ts_mergeable_store_del_values (st);
  else if (strcmp (m, "delValue") == 0)
    ts_mergeable_store_del_value (st, sarg (op, 1));
  else if (strcmp (m, "applyEncodedMergeableChanges") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_apply_mergeable_changes_json (st, a, NULL);
    }
  else if (strcmp (m, "setEncodedMergeableContent") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_set_mergeable_content_json (st, a, NULL);
    }
  else if (strcmp (m, "setDefaultContent") == 0)
    {
      g_autofree char *a = arg (op, 1);
      ts_mergeable_store_set_default_content_json (st, a, &error);
    }
  else if (strcmp (m, "merge") == 0)
    ts_mergeable_store_merge (st, find_store (stores, sarg (op, 1))->store);
  else
    g_error ("unknown op %s", m);

  g_assert_no_error (error);
  return returned;
}

static void
test_scenario (gconstpointer data)
{
  const char *name = data;
  g_autoptr(TsJsonDoc) doc = load_vectors ();
  const TsJsonNode *root = ts_json_doc_get_root (doc);
  const TsJsonNode *scenarios = get (doc, root, "scenarios");
  const TsJsonNode *sc = NULL;
  const TsJsonNode *specs, *steps;
  g_autoptr(GPtrArray) stores = g_ptr_array_new_with_free_func (store_free);
  Clock clock = { 0 };

  for (guint32 i = 0; i < scenarios->len && sc == NULL; i++)
    if (strcmp (get (doc, &scenarios->u.items[i], "name")->u.str, name) == 0)
      sc = &scenarios->u.items[i];
  g_assert_nonnull (sc);

  specs = get (doc, sc, "stores");
  for (guint32 i = 0; i < specs->len; i++)
    {
      Store *s = g_new0 (Store, 1);

      s->name = g_strdup (get (doc, &specs->u.items[i], "name")->u.str);
      s->store = ts_mergeable_store_new (get (doc, &specs->u.items[i], "uniqueId")->u.str);
      ts_mergeable_store_set_clock (s->store, clock_now, &clock, NULL);
      g_signal_connect (s->store, "transaction-finished", G_CALLBACK (on_finished), s);
      g_ptr_array_add (stores, s);
    }

  steps = get (doc, sc, "steps");
  for (guint32 i = 0; i < steps->len; i++)
    {
      const TsJsonNode *step = &steps->u.items[i];
      Store *s = find_store (stores, get (doc, step, "store")->u.str);
      const TsJsonNode *op = get (doc, step, "op");
      const TsJsonNode *want_changes = get (doc, step, "transactionChanges");
      const TsJsonNode *returned = get (doc, step, "returned");
      const TsJsonNode *after = get (doc, step, "after");
      g_autofree char *where = g_strdup_printf ("%s step %u %s", name, i, sarg (op, 0));
      g_autofree char *got_returned = NULL;

      clock.now = (gint64) get (doc, step, "now")->u.num;
      for (guint j = 0; j < stores->len; j++)
        g_clear_pointer (&((Store *) stores->pdata[j])->changes, g_free);

      got_returned = run_op (stores, s, op);

      if (returned != NULL && returned->type == TS_JSON_STRING)
        g_assert_cmpstr (got_returned, ==, returned->u.str);
      if (want_changes != NULL)
        {
          if (want_changes->type == TS_JSON_NULL)
            g_assert_null (s->changes);
          else
            {
              g_autofree char *want = node_json (want_changes);
              g_test_message ("%s: changes", where);
              g_assert_cmpstr (s->changes, ==, want);
            }
        }
      if (get (doc, after, "content") != NULL)
        assert_snapshot (doc, s, after, where);
      else
        for (guint j = 0; j < stores->len; j++)
          {
            Store *other = stores->pdata[j];
            assert_snapshot (doc, other, get (doc, after, other->name), where);
          }
    }
}

static void
set_content (Store            *s,
             TsJsonDoc        *doc,
             const TsJsonNode *snap)
{
  g_autofree char *content = node_json (get (doc, snap, "content"));
  g_autoptr(GError) error = NULL;

  ts_mergeable_store_set_mergeable_content_json (s->store, content, &error);
  g_assert_no_error (error);
}

static void
test_exchange (gconstpointer data)
{
  const char *name = data;
  g_autoptr(TsJsonDoc) doc = load_vectors ();
  const TsJsonNode *scenarios = get (doc, ts_json_doc_get_root (doc), "scenarios");
  const TsJsonNode *sc = NULL, *exchange, *before, *after;
  g_autoptr(GPtrArray) stores = g_ptr_array_new_with_free_func (store_free);
  g_autofree char *applied = NULL;
  g_autoptr(GError) error = NULL;
  Clock clock = { 1710000100000 };
  const char *names[] = { "A", "B" };
  const char *unique_ids[] = { "a", "b" };

  for (guint32 i = 0; i < scenarios->len && sc == NULL; i++)
    if (strcmp (get (doc, &scenarios->u.items[i], "name")->u.str, name) == 0)
      sc = &scenarios->u.items[i];
  g_assert_nonnull (sc);

  before = get (doc, sc, "before");
  for (guint i = 0; i < 2; i++)
    {
      Store *s = g_new0 (Store, 1);

      s->name = g_strdup (names[i]);
      s->store = ts_mergeable_store_new (unique_ids[i]);
      ts_mergeable_store_set_clock (s->store, clock_now, &clock, NULL);
      g_ptr_array_add (stores, s);
      set_content (s, doc, get (doc, before, names[i]));
      assert_snapshot (doc, s, get (doc, before, names[i]), name);
    }

  exchange = get (doc, sc, "exchange");
  for (guint32 i = 0; i < exchange->len; i++)
    {
      const TsJsonNode *e = &exchange->u.items[i];
      Store *s = find_store (stores, get (doc, e, "store")->u.str);
      const char *method = get (doc, e, "method")->u.str;
      const TsJsonNode *input = get (doc, e, "input");
      g_autofree char *in = input ? node_json (input) : NULL;
      g_autofree char *want = node_json (get (doc, e, "output"));
      g_autofree char *got = NULL;

      if (strcmp (method, "getMergeableContentHashes") == 0)
        {
          guint32 th, vh;
          ts_mergeable_store_get_mergeable_content_hashes (s->store, &th, &vh);
          got = g_strdup_printf ("[%u,%u]", th, vh);
        }
      else if (strcmp (method, "getMergeableTableHashes") == 0)
        got = ts_mergeable_store_get_mergeable_table_hashes_json (s->store);
      else if (strcmp (method, "getMergeableTableDiff") == 0)
        got = ts_mergeable_store_get_mergeable_table_diff_json (s->store, in, &error);
      else if (strcmp (method, "getMergeableRowHashes") == 0)
        got = ts_mergeable_store_get_mergeable_row_hashes_json (s->store, in, &error);
      else if (strcmp (method, "getMergeableRowDiff") == 0)
        got = ts_mergeable_store_get_mergeable_row_diff_json (s->store, in, &error);
      else if (strcmp (method, "getMergeableCellHashes") == 0)
        got = ts_mergeable_store_get_mergeable_cell_hashes_json (s->store, in, &error);
      else if (strcmp (method, "getMergeableCellDiff") == 0)
        got = ts_mergeable_store_get_mergeable_cell_diff_json (s->store, in, &error);
      else if (strcmp (method, "getMergeableValueHashes") == 0)
        got = ts_mergeable_store_get_mergeable_value_hashes_json (s->store);
      else if (strcmp (method, "getMergeableValueDiff") == 0)
        got = ts_mergeable_store_get_mergeable_value_diff_json (s->store, in, &error);
      else
        g_error ("unknown method %s", method);
      g_assert_no_error (error);
      g_test_message ("%s: %s", name, method);
      g_assert_cmpstr (got, ==, want);
    }

  applied = node_json (get (doc, sc, "changesAppliedToB"));
  ts_mergeable_store_apply_mergeable_changes_json (find_store (stores, "B")->store, applied, &error);
  g_assert_no_error (error);
  after = get (doc, sc, "after");
  for (guint i = 0; i < 2; i++)
    assert_snapshot (doc, find_store (stores, names[i]), get (doc, after, names[i]), name);
}

int
main (int argc, char **argv)
{
  const char *scenarios[] = {
    "single-store-basics",
    "counter-and-clock",
    "incoming-validation-and-edge-cases",
    "default-content",
    "conflicts-and-merge",
  };

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (scenarios); i++)
    {
      g_autofree char *path = g_strdup_printf ("/tinysync/store-vectors/%s", scenarios[i]);
      g_test_add_data_func (path, scenarios[i], test_scenario);
    }
  g_test_add_data_func ("/tinysync/store-vectors/diff-exchange", "diff-exchange", test_exchange);
  g_test_add_data_func ("/tinysync/store-vectors/diff-exchange-values-only",
                        "diff-exchange-values-only", test_exchange);

  return g_test_run ();
}
