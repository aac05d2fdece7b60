/* fuzz-apply-changes.c: received changes and content on a mergeable store
 *
 * SPDX-License-Identifier: MIT
 *
 * Every store starts from the same preloaded content (written locally at
 * init, so its hashes are right) and has a fixed clock. The input is used
 * as:
 * 1. ts_mergeable_store_apply_mergeable_changes_json() on store A. On
 *    failure an error is set and A is unchanged. Then: A's content re-parses;
 *    A's content applied as changes to a fresh store gives the same content
 *    and content hashes (hashes that A computed incrementally equal the ones
 *    computed from scratch); a store holding only the preloaded content
 *    that pulls from A as TinyBase's synchronizer does (table, row, cell and
 *    value hashes and diffs) ends with A's content hashes.
 * 2. ts_mergeable_store_set_mergeable_content_json() on store B (hashes are
 *    trusted, so they are not recomputed): on failure B is unchanged; on
 *    success B's content re-parses and loads unchanged into a fresh store.
 *    Into a fresh and a preloaded store, loading straight from the text
 *    and through the JSON tree only give the same result, error and store.
 * 3. The input as the "other hashes" argument of every diff function of A:
 *    a result re-parses, a failure sets an error.
 */

#include "fuzz-store.h"
#include "tinysync/ts-mergeable-store-private.h"

static char *preload_json;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init ();
  preload_json = fuzz_make_preload ();
  return 0;
}

static TsMergeableStore *
store_new (const char *unique_id,
           gboolean    preloaded)
{
  return fuzz_store_new (unique_id, preloaded ? preload_json : NULL);
}

static void
check_parses (const char *json)
{
  g_autoptr(TsJsonDoc) doc = NULL;

  FUZZ_CHECK (json != NULL);
  doc = ts_json_parse (json, -1, NULL);
  FUZZ_CHECK (doc != NULL);
}

static void
check_content_equal (TsMergeableStore *a,
                     TsMergeableStore *b)
{
  g_autofree char *ca = ts_mergeable_store_get_mergeable_content_json (a);
  g_autofree char *cb = ts_mergeable_store_get_mergeable_content_json (b);
  /* the plain order is history, which a store loaded from the content
   * does not share */
  g_autofree char *ta = fuzz_sorted_json (ts_mergeable_store_get_tables_json (a));
  g_autofree char *tb = fuzz_sorted_json (ts_mergeable_store_get_tables_json (b));
  g_autofree char *va = fuzz_sorted_json (ts_mergeable_store_get_values_json (a));
  g_autofree char *vb = fuzz_sorted_json (ts_mergeable_store_get_values_json (b));

  if (strcmp (ca, cb) != 0 || strcmp (ta, tb) != 0 || strcmp (va, vb) != 0)
    {
      fprintf (stderr, "stores differ:\n  %s\n  %s\n  %s\n  %s\n  %s\n  %s\n",
               ca, cb, ta, tb, va, vb);
      abort ();
    }
}

static gboolean
unchanged (TsMergeableStore *store)
{
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (store);

  return strcmp (content, preload_json) == 0;
}

/* Items of a diff result [a, b], as JSON texts. */
static void
split_pair (const char  *json,
            char       **first,
            char       **second)
{
  g_autoptr(TsJsonDoc) doc = ts_json_parse (json, -1, NULL);
  const TsJsonNode *root;

  FUZZ_CHECK (doc != NULL);
  root = ts_json_doc_get_root (doc);
  FUZZ_CHECK (root->type == TS_JSON_ARRAY && root->len == 2);
  *first = ts_json_node_to_string (&root->u.items[0], NULL);
  *second = ts_json_node_to_string (&root->u.items[1], NULL);
}

static gboolean
empty_object (const char *json)
{
  return strcmp (json, "{}") == 0;
}

static void
apply_or_die (TsMergeableStore *store,
              const char       *tables_stamp,
              const char       *values_stamp)
{
  g_autofree char *changes = g_strdup_printf ("[%s,%s,1]",
                                              tables_stamp ? tables_stamp : "[{}]",
                                              values_stamp ? values_stamp : "[{}]");
  g_autoptr(GError) error = NULL;

  if (!ts_mergeable_store_apply_mergeable_changes_json (store, changes, &error))
    {
      fprintf (stderr, "applying %s: %s\n", changes, error->message);
      abort ();
    }
}

/* A diff call that must succeed on another store's own hashes. */
#define DIFF_OK(call)                                                      \
  ({                                                                       \
    g_autoptr(GError) diff_error = NULL;                                   \
    char *diff_result = call;                                              \
    if (diff_result == NULL)                                               \
      {                                                                    \
        fprintf (stderr, "%s: %s\n", #call, diff_error->message);          \
        abort ();                                                          \
      }                                                                    \
    diff_result;                                                           \
  })

/* The pull of TinyBase's synchronizer (getChangesFromOtherStore): local
 * asks remote for what differs, level by level, then applies it all. */
static void
pull (TsMergeableStore *local,
      TsMergeableStore *remote)
{
  guint32 lt, lv, rt, rv;
  g_autofree char *new_tables = NULL, *different_tables = NULL;
  g_autofree char *new_rows = NULL, *different_rows = NULL;
  g_autofree char *new_cells = NULL;
  g_autofree char *new_values = NULL;

  ts_mergeable_store_get_mergeable_content_hashes (local, &lt, &lv);
  ts_mergeable_store_get_mergeable_content_hashes (remote, &rt, &rv);

  if (lt != rt)
    {
      g_autofree char *table_hashes = ts_mergeable_store_get_mergeable_table_hashes_json (local);
      g_autofree char *table_diff = DIFF_OK (ts_mergeable_store_get_mergeable_table_diff_json (remote, table_hashes, &diff_error));

      split_pair (table_diff, &new_tables, &different_tables);
      if (!empty_object (different_tables))
        {
          g_autofree char *row_hashes = DIFF_OK (ts_mergeable_store_get_mergeable_row_hashes_json (local, different_tables, &diff_error));
          g_autofree char *row_diff = DIFF_OK (ts_mergeable_store_get_mergeable_row_diff_json (remote, row_hashes, &diff_error));

          split_pair (row_diff, &new_rows, &different_rows);
          if (!empty_object (different_rows))
            {
              g_autofree char *cell_hashes = DIFF_OK (ts_mergeable_store_get_mergeable_cell_hashes_json (local, different_rows, &diff_error));

              new_cells = DIFF_OK (ts_mergeable_store_get_mergeable_cell_diff_json (remote, cell_hashes, &diff_error));
            }
        }
    }
  if (lv != rv)
    {
      g_autofree char *value_hashes = ts_mergeable_store_get_mergeable_value_hashes_json (local);

      new_values = DIFF_OK (ts_mergeable_store_get_mergeable_value_diff_json (remote, value_hashes, &diff_error));
    }

  if (new_tables != NULL)
    apply_or_die (local, new_tables, NULL);
  if (new_rows != NULL)
    apply_or_die (local, new_rows, NULL);
  if (new_cells != NULL)
    apply_or_die (local, new_cells, NULL);
  if (new_values != NULL)
    apply_or_die (local, NULL, new_values);
}

/* Content without the HLCs and hashes of tables and rows, members sorted:
 * [[{tableId: {rowId: {cellId: [cell, hlc, hash]}}}, tablesHlc],
 *  [{valueId: [value, hlc, hash]}, valuesHlc]] */
static void
write_leaves (GString          *out,
              const TsJsonNode *container,
              guint             depth)
{
  const TsJsonNode *things = &container->u.items[0];
  g_autoptr(GPtrArray) members = g_ptr_array_new ();

  for (guint32 i = 0; i < things->len; i++)
    g_ptr_array_add (members, &things->u.members[i]);
  g_ptr_array_sort (members, fuzz_compare_members);
  g_string_append_c (out, '{');
  for (guint i = 0; i < members->len; i++)
    {
      const TsJsonMember *m = members->pdata[i];

      if (i > 0)
        g_string_append_c (out, ',');
      ts_json_write_string (out, m->key, m->key_len);
      g_string_append_c (out, ':');
      if (depth > 0)
        write_leaves (out, &m->value, depth - 1);
      else
        ts_json_write_node (out, &m->value);
    }
  g_string_append_c (out, '}');
}

static char *
leaves_of (TsMergeableStore *store)
{
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (store);
  g_autoptr(TsJsonDoc) doc = ts_json_parse (content, -1, NULL);
  const TsJsonNode *root;
  GString *out = g_string_new ("[[");

  FUZZ_CHECK (doc != NULL);
  root = ts_json_doc_get_root (doc);
  write_leaves (out, &root->u.items[0], 2);
  g_string_append_c (out, ',');
  ts_json_write_node (out, &root->u.items[0].u.items[1]);
  g_string_append (out, "],[");
  write_leaves (out, &root->u.items[1], 0);
  g_string_append_c (out, ',');
  ts_json_write_node (out, &root->u.items[1].u.items[1]);
  g_string_append (out, "]]");
  return g_string_free (out, FALSE);
}

static gboolean
same_hlc (const TsJsonNode *a,
          const TsJsonNode *b)
{
  const TsJsonNode *ha = &a->u.items[1], *hb = &b->u.items[1];

  return ha->len == hb->len && memcmp (ha->u.str, hb->u.str, ha->len) == 0;
}

/* Whether a table or row of remote has another HLC in puller. */
static gboolean
container_hlcs_differ (TsMergeableStore *remote,
                       TsMergeableStore *puller)
{
  g_autofree char *cr = ts_mergeable_store_get_mergeable_content_json (remote);
  g_autofree char *cp = ts_mergeable_store_get_mergeable_content_json (puller);
  g_autoptr(TsJsonDoc) dr = ts_json_parse (cr, -1, NULL);
  g_autoptr(TsJsonDoc) dp = ts_json_parse (cp, -1, NULL);
  const TsJsonNode *tr = &ts_json_doc_get_root (dr)->u.items[0];
  const TsJsonNode *tp = &ts_json_doc_get_root (dp)->u.items[0];

  for (guint32 i = 0; i < tr->u.items[0].len; i++)
    {
      const TsJsonMember *table = &tr->u.items[0].u.members[i];
      const TsJsonNode *other = ts_json_object_get (dp, &tp->u.items[0], table->key, table->key_len);

      if (other == NULL || !same_hlc (&table->value, other))
        return TRUE;
      for (guint32 j = 0; j < table->value.u.items[0].len; j++)
        {
          const TsJsonMember *row = &table->value.u.items[0].u.members[j];
          const TsJsonNode *other_row = ts_json_object_get (dp, &other->u.items[0],
                                                            row->key, row->key_len);

          if (other_row == NULL || !same_hlc (&row->value, other_row))
            return TRUE;
        }
    }
  return FALSE;
}

/* After the pull the puller holds every cell and value stamp of the
 * remote. The content hashes are equal too, except when a table or row
 * HLC (which only a peer's message can set; local writes leave them "")
 * differs: as in TinyBase 10.0.1, the diff messages carry a row's HLC only
 * with a differing cell and a table's only with a new row, so such a
 * difference never syncs. */
static void
check_pulled (TsMergeableStore *remote,
              TsMergeableStore *puller)
{
  g_autofree char *lr = leaves_of (remote);
  g_autofree char *lp = leaves_of (puller);
  guint32 rt, rv, pt, pv;

  if (strcmp (lr, lp) != 0)
    {
      fprintf (stderr, "the pull missed stamps:\n  %s\n  %s\n", lr, lp);
      abort ();
    }
  ts_mergeable_store_get_mergeable_content_hashes (remote, &rt, &rv);
  ts_mergeable_store_get_mergeable_content_hashes (puller, &pt, &pv);
  FUZZ_CHECK (rv == pv);
  if (rt != pt)
    FUZZ_CHECK (container_hlcs_differ (remote, puller));
}

/* ---- The three uses of the input ------------------------------------------ */

static void
fuzz_apply (const char *input)
{
  g_autoptr(TsMergeableStore) a = store_new ("fuzz-a", TRUE);
  g_autoptr(TsMergeableStore) fresh = store_new ("fuzz-fresh", FALSE);
  g_autoptr(TsMergeableStore) puller = store_new ("fuzz-puller", TRUE);
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;

  if (!ts_mergeable_store_apply_mergeable_changes_json (a, input, &error))
    {
      FUZZ_CHECK (error != NULL && error->message != NULL);
      FUZZ_CHECK (unchanged (a));
      return;
    }
  FUZZ_CHECK (error == NULL);

  content = ts_mergeable_store_get_mergeable_content_json (a);
  check_parses (content);

  /* Content as changes: the hashes come out the same from scratch. */
  if (!ts_mergeable_store_apply_mergeable_changes_json (fresh, content, &error))
    {
      fprintf (stderr, "own content rejected (%s): %s\n", error->message, content);
      abort ();
    }
  fuzz_check_hashes_equal (a, fresh);
  check_content_equal (a, fresh);

  /* A synchronizer's pull converges. */
  pull (puller, a);
  check_pulled (a, puller);
}

/* The same store state, plain order included */
static void
check_same (TsMergeableStore *a,
            TsMergeableStore *b)
{
  g_autofree char *ca = ts_mergeable_store_get_mergeable_content_json (a);
  g_autofree char *cb = ts_mergeable_store_get_mergeable_content_json (b);
  g_autofree char *pa = ts_mergeable_store_get_content_json (a);
  g_autofree char *pb = ts_mergeable_store_get_content_json (b);

  if (strcmp (ca, cb) != 0 || strcmp (pa, pb) != 0)
    {
      fprintf (stderr, "stores differ:\n  %s\n  %s\n  %s\n  %s\n", ca, cb, pa, pb);
      abort ();
    }
}

/* Loading straight from the text (the public function) and through the
 * JSON tree only agree: the same result, error and store. */
static void
check_fast_path (const char *input,
                 gboolean    preloaded)
{
  g_autoptr(TsMergeableStore) fast = store_new ("fuzz-b", preloaded);
  g_autoptr(TsMergeableStore) generic = store_new ("fuzz-b", preloaded);
  g_autoptr(GError) fast_error = NULL;
  g_autoptr(GError) generic_error = NULL;
  gboolean fast_ok, generic_ok;

  fast_ok = ts_mergeable_store_set_mergeable_content_json (fast, input, &fast_error);
  generic_ok = _ts_mergeable_store_set_content_text (generic, input, FALSE, &generic_error);
  FUZZ_CHECK (fast_ok == generic_ok);
  if (!fast_ok)
    FUZZ_CHECK (fast_error->code == generic_error->code &&
                strcmp (fast_error->message, generic_error->message) == 0);
  FUZZ_CHECK (_ts_mergeable_store_get_unlisted_writes (fast) ==
              _ts_mergeable_store_get_unlisted_writes (generic));
  check_same (fast, generic);
}

static void
fuzz_set_content (const char *input)
{
  g_autoptr(TsMergeableStore) b = store_new ("fuzz-b", TRUE);
  g_autoptr(TsMergeableStore) fresh = store_new ("fuzz-fresh", FALSE);
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;

  check_fast_path (input, FALSE);
  check_fast_path (input, TRUE);
  if (!ts_mergeable_store_set_mergeable_content_json (b, input, &error))
    {
      FUZZ_CHECK (error != NULL && error->message != NULL);
      FUZZ_CHECK (unchanged (b));
      return;
    }
  FUZZ_CHECK (error == NULL);

  content = ts_mergeable_store_get_mergeable_content_json (b);
  check_parses (content);
  if (!ts_mergeable_store_set_mergeable_content_json (fresh, content, &error))
    {
      fprintf (stderr, "own content rejected (%s): %s\n", error->message, content);
      abort ();
    }
  check_content_equal (b, fresh);
  fuzz_check_hashes_equal (b, fresh);
}

typedef char *(*DiffFunc) (TsMergeableStore *, const char *, GError **);

static void
fuzz_diffs (const char *input)
{
  static const DiffFunc funcs[] = {
    ts_mergeable_store_get_mergeable_table_diff_json,
    ts_mergeable_store_get_mergeable_row_hashes_json,
    ts_mergeable_store_get_mergeable_row_diff_json,
    ts_mergeable_store_get_mergeable_cell_hashes_json,
    ts_mergeable_store_get_mergeable_cell_diff_json,
    ts_mergeable_store_get_mergeable_value_diff_json,
  };
  g_autoptr(TsMergeableStore) a = store_new ("fuzz-a", TRUE);

  for (gsize i = 0; i < G_N_ELEMENTS (funcs); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *result = funcs[i] (a, input, &error);

      if (result == NULL)
        FUZZ_CHECK (error != NULL && error->message != NULL);
      else
        {
          FUZZ_CHECK (error == NULL);
          check_parses (result);
        }
    }
  FUZZ_CHECK (unchanged (a));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  /* The API takes NUL-terminated text: an embedded NUL ends it early. */
  g_autofree char *input = g_strndup ((const char *) data, size);

  fuzz_apply (input);
  fuzz_set_content (input);
  fuzz_diffs (input);
  return 0;
}
