/* test-table-model.c: TsTableModel, TsRowObject, TsTableIdsModel
 *
 * SPDX-License-Identifier: MIT
 *
 * Every model under test is watched: each items-changed emission is
 * applied to a mirror list (reading the added items from the model, as a
 * list widget does), and while the emission runs the whole model must
 * already equal the mirror. After every operation the mirror and the
 * model must equal the expected list, which this file computes on its
 * own from the store's content: row ids from the store, values by
 * GVariant, strings compared as UTF-16 arrays.
 */
#include "config.h"

#include <string.h>
#include <time.h>

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

/* ---- The expected order, computed independently -------------------------- */

typedef struct {
  char      *id;
  gunichar2 *id16;
  glong      id16_len;
  int        cls;       /* 0 number-like, 1 string, 2 object or array */
  double     num;
  gunichar2 *str16;
  glong      str16_len;
  gboolean   descending;
} XRow;

static int
cmp_utf16 (const gunichar2 *a, glong na,
           const gunichar2 *b, glong nb)
{
  for (glong i = 0; i < na && i < nb; i++)
    if (a[i] != b[i])
      return a[i] < b[i] ? -1 : 1;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

static int
cmp_xrow (gconstpointer pa,
          gconstpointer pb)
{
  const XRow *a = pa, *b = pb;
  int c = 0;

  if (a->cls != b->cls)
    c = a->cls < b->cls ? -1 : 1;
  else if (a->cls == 0)
    c = a->num < b->num ? -1 : a->num > b->num ? 1 : 0;
  else
    c = cmp_utf16 (a->str16, a->str16_len, b->str16, b->str16_len);
  if (c == 0)
    c = cmp_utf16 (a->id16, a->id16_len, b->id16, b->id16_len);
  return a->descending ? -c : c;
}

static gunichar2 *
to_utf16 (const char *s,
          glong      *len)
{
  gunichar2 *u = g_utf8_to_utf16 (s, -1, NULL, len, NULL);

  g_assert_nonnull (u);
  return u;
}

/* The row ids of a table, sorted as TsTableModel documents */
static GPtrArray *
expected_rows (TsMergeableStore *store,
               const char       *table_id,
               const char       *sort_cell,
               gboolean          descending)
{
  g_auto(GStrv) ids = ts_mergeable_store_get_row_ids (store, table_id);
  guint n = g_strv_length (ids);
  XRow *rows = g_new0 (XRow, n);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < n; i++)
    {
      XRow *r = &rows[i];
      g_autoptr(GVariant) v = NULL;

      r->id = ids[i];
      r->id16 = to_utf16 (ids[i], &r->id16_len);
      r->descending = descending;
      if (sort_cell == NULL)
        continue;
      v = ts_mergeable_store_get_cell (store, table_id, ids[i], sort_cell);
      if (v == NULL || g_variant_is_of_type (v, G_VARIANT_TYPE ("mv")))
        r->num = 0;
      else if (g_variant_is_of_type (v, G_VARIANT_TYPE_BOOLEAN))
        r->num = g_variant_get_boolean (v);
      else if (g_variant_is_of_type (v, G_VARIANT_TYPE_DOUBLE))
        r->num = g_variant_get_double (v);
      else if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING))
        {
          r->cls = 1;
          r->str16 = to_utf16 (g_variant_get_string (v, NULL), &r->str16_len);
        }
      else
        {
          g_autofree char *json = ts_mergeable_store_get_cell_json (store, table_id, ids[i], sort_cell);

          g_assert_true (g_variant_is_of_type (v, G_VARIANT_TYPE ("a{sv}")) ||
                         g_variant_is_of_type (v, G_VARIANT_TYPE ("av")));
          r->cls = 2;
          r->str16 = to_utf16 (json, &r->str16_len);
        }
    }
  if (n > 0)  /* rows is NULL then: no qsort (NULL, …), UBSan */
    qsort (rows, n, sizeof (XRow), cmp_xrow);
  for (guint i = 0; i < n; i++)
    {
      g_ptr_array_add (out, g_strdup (rows[i].id));
      g_free (rows[i].id16);
      g_free (rows[i].str16);
    }
  g_free (rows);
  return out;
}

static GPtrArray *
expected_table_ids (TsMergeableStore *store)
{
  g_auto(GStrv) ids = ts_mergeable_store_get_table_ids (store);
  guint n = g_strv_length (ids);
  XRow *rows = g_new0 (XRow, n);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < n; i++)
    {
      rows[i].id = ids[i];
      rows[i].id16 = to_utf16 (ids[i], &rows[i].id16_len);
    }
  if (n > 0)  /* rows is NULL then: no qsort (NULL, …), UBSan */
    qsort (rows, n, sizeof (XRow), cmp_xrow);
  for (guint i = 0; i < n; i++)
    {
      g_ptr_array_add (out, g_strdup (rows[i].id));
      g_free (rows[i].id16);
    }
  g_free (rows);
  return out;
}

/* ---- Watching a model ---------------------------------------------------- */

typedef struct {
  GListModel *model;
  GPtrArray  *mirror;       /* of char *, maintained from items-changed */
  guint       events;       /* emissions since the last check */
  guint       total_events;
  gboolean    check_all;    /* compare the whole model inside each emission */
  GArray     *log;          /* of guint triples, when set */
} Watch;

/* The id of an item, copied: nothing else may hold the item */
static char *
dup_item_id (GListModel *model,
             guint       position)
{
  g_autoptr(GObject) item = g_list_model_get_item (model, position);

  g_assert_nonnull (item);
  if (TS_IS_ROW_OBJECT (item))
    return g_strdup (ts_row_object_get_row_id (TS_ROW_OBJECT (item)));
  return g_strdup (ts_id_object_get_id (TS_ID_OBJECT (item)));
}

static const char *
model_id (GListModel *model,
          guint       position)
{
  if (TS_IS_TABLE_MODEL (model))
    return ts_table_model_get_row_id (TS_TABLE_MODEL (model), position);
  return ts_table_ids_model_get_id (TS_TABLE_IDS_MODEL (model), position);
}

static void
on_items_changed (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  Watch      *w)
{
  g_assert_true (model == w->model);
  g_assert_cmpuint (removed + added, >, 0);
  g_assert_cmpuint (position + removed, <=, w->mirror->len);

  /* no emission replaces a row by itself at either end */
  if (removed > 0 && added > 0)
    {
      g_assert_cmpstr (w->mirror->pdata[position], !=, model_id (model, position));
      g_assert_cmpstr (w->mirror->pdata[position + removed - 1], !=,
                       model_id (model, position + added - 1));
    }

  g_ptr_array_remove_range (w->mirror, position, removed);
  for (guint i = 0; i < added; i++)
    {
      /* a row object tells its id; read them as GTK does */
      g_ptr_array_insert (w->mirror, position + i, dup_item_id (model, position + i));
    }
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, w->mirror->len);
  if (w->check_all)
    for (guint i = 0; i < w->mirror->len; i++)
      g_assert_cmpstr (model_id (model, i), ==, w->mirror->pdata[i]);
  if (w->log != NULL)
    {
      guint triple[3] = { position, removed, added };
      g_array_append_vals (w->log, triple, 3);
    }
  w->events++;
  w->total_events++;
}

static Watch *
watch_new (GListModel *model)
{
  Watch *w = g_new0 (Watch, 1);
  guint n = g_list_model_get_n_items (model);

  w->model = g_object_ref (model);
  w->mirror = g_ptr_array_new_with_free_func (g_free);
  w->check_all = TRUE;
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (w->mirror, dup_item_id (model, i));
  g_signal_connect (model, "items-changed", G_CALLBACK (on_items_changed), w);
  return w;
}

static void
watch_free (Watch *w)
{
  g_signal_handlers_disconnect_by_func (w->model, on_items_changed, w);
  g_object_unref (w->model);
  g_ptr_array_unref (w->mirror);
  if (w->log != NULL)
    g_array_unref (w->log);
  g_free (w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Watch, watch_free)

static void
assert_ids (GPtrArray *actual,
            GPtrArray *expected,
            const char *what)
{
  if (actual->len != expected->len)
    g_error ("%s: %u items, expected %u", what, actual->len, expected->len);
  for (guint i = 0; i < actual->len; i++)
    if (strcmp (actual->pdata[i], expected->pdata[i]) != 0)
      g_error ("%s: item %u is '%s', expected '%s'", what, i,
               (char *) actual->pdata[i], (char *) expected->pdata[i]);
}

/* Checks a table model against the store; returns whether the list
 * changed since the previous check (then it must have emitted). */
static void
check_watch (Watch     *w,
             GPtrArray *expected,
             GPtrArray *previous)
{
  guint n = g_list_model_get_n_items (w->model);
  g_autoptr(GPtrArray) listed = g_ptr_array_new ();
  guint n_prop = 0;

  g_object_get (w->model, "n-items", &n_prop, NULL);
  g_assert_cmpuint (n_prop, ==, n);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (listed, (gpointer) model_id (w->model, i));
  g_assert_null (model_id (w->model, n));
  g_assert_null (g_list_model_get_item (w->model, n));
  assert_ids (listed, expected, "model");
  assert_ids (w->mirror, expected, "mirror of items-changed");

  /* no emission when nothing moved */
  if (previous != NULL && previous->len == expected->len)
    {
      gboolean same = TRUE;

      for (guint i = 0; i < expected->len && same; i++)
        same = strcmp (previous->pdata[i], expected->pdata[i]) == 0;
      if (same)
        g_assert_cmpuint (w->events, ==, 0);
    }
  w->events = 0;
}

static GPtrArray *
copy_ids (GPtrArray *ids)
{
  GPtrArray *copy = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < ids->len; i++)
    g_ptr_array_add (copy, g_strdup (ids->pdata[i]));
  return copy;
}

static guint *
log_of (Watch *w,
        guint *n)
{
  *n = w->log->len / 3;
  return (guint *) (gpointer) w->log->data;
}

#define assert_log(w, ...) G_STMT_START {                                     \
    const guint expect_[] = { __VA_ARGS__ };                                  \
    guint n_;                                                                 \
    guint *got_ = log_of ((w), &n_);                                          \
    g_assert_cmpuint (n_ * 3, ==, G_N_ELEMENTS (expect_));                    \
    for (guint k_ = 0; k_ < G_N_ELEMENTS (expect_); k_++)                     \
      g_assert_cmpuint (got_[k_], ==, expect_[k_]);                           \
    g_array_set_size ((w)->log, 0);                                           \
  } G_STMT_END

#define assert_no_log(w) g_assert_cmpuint ((w)->log->len, ==, 0)

/* ---- Deterministic tests ------------------------------------------------- */

static void
check_table_model (Watch      *w,
                   TsMergeableStore *store)
{
  TsTableModel *model = TS_TABLE_MODEL (w->model);
  g_autoptr(GPtrArray) expected =
    expected_rows (store, ts_table_model_get_table_id (model),
                   ts_table_model_get_sort_cell (model),
                   ts_table_model_get_sort_descending (model));

  check_watch (w, expected, NULL);
}

static void
on_notify_count (GObject    *object,
                 GParamSpec *pspec,
                 guint      *count)
{
  (*count)++;
}

static void
test_basic (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("basic", &now);
  g_autoptr(TsTableModel) model = NULL;
  g_autoptr(Watch) w = NULL;
  g_autoptr(TsMergeableStore) got_store = NULL;
  g_autofree char *table_id = NULL;
  GType item_type = 0;
  guint n_notify = 0, position = 99;

  ts_mergeable_store_set_tables_json (store,
    "{\"t\":{\"b\":{\"x\":1},\"a\":{\"x\":2},\"\\uff5e\":{\"x\":3},"
    "\"\\ud835\\udc9c\":{\"x\":4},\"B\":{\"x\":5},\"\":{\"x\":6}},"
    "\"u\":{\"z\":{\"x\":0}}}", NULL);

  model = ts_table_model_new (store, "t");
  w = watch_new (G_LIST_MODEL (model));
  w->log = g_array_new (FALSE, FALSE, sizeof (guint));
  g_signal_connect (model, "notify::n-items", G_CALLBACK (on_notify_count), &n_notify);

  /* JavaScript order: "" < "B" < "a" < "b" < U+1D49C (a surrogate pair) < U+FF5E */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 6);
  g_assert_cmpstr (ts_table_model_get_row_id (model, 0), ==, "");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 1), ==, "B");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 2), ==, "a");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 3), ==, "b");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 4), ==, "\xf0\x9d\x92\x9c");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 5), ==, "\xef\xbd\x9e");
  check_table_model (w, store);

  g_assert_true (g_list_model_get_item_type (G_LIST_MODEL (model)) == TS_TYPE_ROW_OBJECT);
  g_object_get (model, "store", &got_store, "table-id", &table_id, "item-type", &item_type, NULL);
  g_assert_true (got_store == store);
  g_assert_cmpstr (table_id, ==, "t");
  g_assert_true (item_type == TS_TYPE_ROW_OBJECT);
  g_assert_true (ts_table_model_get_store (model) == store);
  g_assert_null (ts_table_model_get_sort_cell (model));
  g_assert_false (ts_table_model_get_sort_descending (model));

  g_assert_true (ts_table_model_find (model, "b", &position));
  g_assert_cmpuint (position, ==, 3);
  g_assert_true (ts_table_model_find (model, "", NULL));
  g_assert_false (ts_table_model_find (model, "z", &position));
  g_assert_cmpuint (position, ==, 3);

  /* other tables and non-sort cells: nothing */
  ts_mergeable_store_set_cell_number (store, "u", "y", "x", 1);
  ts_mergeable_store_set_cell_number (store, "t", "a", "x", 10);
  assert_no_log (w);
  g_assert_cmpuint (n_notify, ==, 0);

  ts_mergeable_store_set_cell_string (store, "t", "ab", "x", "new");
  assert_log (w, 3, 0, 1);
  g_assert_cmpuint (n_notify, ==, 1);
  ts_mergeable_store_del_row (store, "t", "B");
  assert_log (w, 1, 1, 0);
  g_assert_cmpuint (n_notify, ==, 2);
  check_table_model (w, store);

  /* a whole table at once, then gone at once */
  ts_mergeable_store_del_table (store, "t");
  assert_log (w, 0, 6, 0);
  ts_mergeable_store_set_table_json (store, "t", "{\"c\":{\"x\":1},\"d\":{\"x\":1},\"a\":{\"x\":1}}", NULL);
  assert_log (w, 0, 0, 3);
  check_table_model (w, store);

  /* replacing the table: a and c stay, d goes, b and e come */
  ts_mergeable_store_set_table_json (store, "t", "{\"e\":{\"x\":1},\"c\":{\"x\":2},\"b\":{\"x\":1},\"a\":{\"x\":1}}", NULL);
  assert_log (w, 1, 0, 1, 3, 1, 1);
  check_table_model (w, store);
}

static void
test_empty_table_id (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("empty", &now);
  g_autoptr(TsTableModel) model = ts_table_model_new (store, "");
  g_autoptr(TsTableIdsModel) ids = ts_table_ids_model_new (store);
  g_autoptr(Watch) w = watch_new (G_LIST_MODEL (model));
  g_autoptr(Watch) wi = watch_new (G_LIST_MODEL (ids));
  g_autoptr(TsRowObject) row = NULL;
  guint version;

  ts_mergeable_store_set_cell_number (store, "", "", "", 1);
  ts_mergeable_store_set_cell_number (store, "", "r", "", 2);
  g_assert_cmpuint (w->total_events, ==, 2);
  g_assert_cmpuint (wi->total_events, ==, 1);
  check_table_model (w, store);
  g_assert_cmpstr (ts_table_ids_model_get_id (ids, 0), ==, "");

  row = g_list_model_get_item (G_LIST_MODEL (model), 0);
  version = ts_row_object_get_version (row);
  ts_mergeable_store_set_cell_number (store, "", "", "", 3);
  g_assert_cmpuint (ts_row_object_get_version (row), ==, version + 1);
}

static void
test_sort_values (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("sort", &now);
  g_autoptr(TsTableModel) model = NULL;
  g_autoptr(Watch) w = NULL;
  const char *ascending[] = {
    "n-big", "m1", "false", "missing", "negzero", "null", "zero", "half", "true", "three",
    "s-empty", "s-10", "s-9", "s-B", "s-a", "s-supp", "s-ff5e", "o-arr", "o-obj",
  };
  guint n = G_N_ELEMENTS (ascending);
  guint notify_cell = 0, notify_desc = 0;

  ts_mergeable_store_set_table_json (store, "t",
    "{\"three\":{\"v\":3},\"true\":{\"v\":true},\"half\":{\"v\":0.5},\"zero\":{\"v\":0},"
    "\"false\":{\"v\":false},\"null\":{\"v\":null},\"missing\":{\"w\":1},\"m1\":{\"v\":-1},"
    "\"negzero\":{\"v\":-0},\"n-big\":{\"v\":-1e300},"
    "\"s-empty\":{\"v\":\"\"},\"s-10\":{\"v\":\"10\"},\"s-9\":{\"v\":\"9\"},\"s-B\":{\"v\":\"B\"},"
    "\"s-a\":{\"v\":\"a\"},\"s-ff5e\":{\"v\":\"\\uff5e\"},\"s-supp\":{\"v\":\"\\ud835\\udc9c\"},"
    "\"o-obj\":{\"v\":{\"k\":1}},\"o-arr\":{\"v\":[1]}}", NULL);

  model = g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", "t",
                        "sort-cell", "v", NULL);
  w = watch_new (G_LIST_MODEL (model));
  w->log = g_array_new (FALSE, FALSE, sizeof (guint));
  g_signal_connect (model, "notify::sort-cell", G_CALLBACK (on_notify_count), &notify_cell);
  g_signal_connect (model, "notify::sort-descending", G_CALLBACK (on_notify_count), &notify_desc);

  /* ties (missing, null, zero, false, -0 are all 0) by row id */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (ts_table_model_get_row_id (model, i), ==, ascending[i]);
  check_table_model (w, store);

  ts_table_model_set_sort_descending (model, TRUE);
  g_assert_cmpuint (notify_desc, ==, 1);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (ts_table_model_get_row_id (model, i), ==, ascending[n - 1 - i]);
  check_table_model (w, store);
  ts_table_model_set_sort_descending (model, TRUE);
  g_assert_cmpuint (notify_desc, ==, 1);
  g_array_set_size (w->log, 0);

  /* a value change that keeps the position emits nothing; one that
   * moves the row emits a removal and an addition */
  ts_mergeable_store_set_cell_number (store, "t", "half", "v", 0.75);
  assert_no_log (w);
  ts_mergeable_store_set_cell_number (store, "t", "half", "v", 100);
  check_table_model (w, store);
  g_assert_cmpuint (w->log->len, ==, 6);
  g_array_set_size (w->log, 0);

  g_object_set (model, "sort-cell", NULL, "sort-descending", FALSE, NULL);
  g_assert_cmpuint (notify_cell, ==, 1);
  g_assert_cmpuint (notify_desc, ==, 2);
  check_table_model (w, store);
  g_array_set_size (w->log, 0);

  ts_table_model_set_sort (model, "w", FALSE);
  check_table_model (w, store);
  /* all rows but one tie at 0: ordered by row id as before, "missing" (w=1) moves to the end */
  assert_log (w, 3, 1, 0, 18, 0, 1);
}

/* ---- Row objects --------------------------------------------------------- */

typedef struct {
  guint  any;
  guint  name;
  char  *last;
} CellCounts;

static void
on_row_cell_changed (TsRowObject *row,
                     const char  *cell_id,
                     CellCounts  *counts)
{
  counts->any++;
  g_free (counts->last);
  counts->last = g_strdup (cell_id);
}

static void
on_row_name_changed (TsRowObject *row,
                     const char  *cell_id,
                     CellCounts  *counts)
{
  g_assert_cmpstr (cell_id, ==, "name");
  counts->name++;
}

static void
weak_notify_flag (gpointer  data,
                  GObject  *where_the_object_was)
{
  *(gboolean *) data = TRUE;
}

static void
test_row_objects (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("rows", &now);
  g_autoptr(TsTableModel) model = NULL;
  g_autoptr(TsRowObject) fido = NULL;
  g_autoptr(TsRowObject) again = NULL;
  g_autoptr(TsRowObject) standalone = NULL;
  g_autoptr(GVariant) v = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) cells = NULL;
  g_autofree char *s = NULL;
  g_autofree char *json = NULL;
  CellCounts counts = { 0, }, standalone_counts = { 0, };
  guint version_notifies = 0;
  gboolean freed = FALSE;
  guint position;

  ts_mergeable_store_set_table_json (store, "pets",
    "{\"fido\":{\"name\":\"Fido\",\"legs\":4,\"good\":true,\"tags\":[\"a\"]},"
    "\"felix\":{\"name\":\"Felix\",\"legs\":4}}", NULL);
  model = ts_table_model_new (store, "pets");

  fido = g_list_model_get_item (G_LIST_MODEL (model), 1);
  g_assert_cmpstr (ts_row_object_get_row_id (fido), ==, "fido");
  g_assert_cmpstr (ts_row_object_get_table_id (fido), ==, "pets");
  g_assert_true (ts_row_object_get_store (fido) == store);
  g_assert_cmpuint (ts_row_object_get_version (fido), ==, 0);

  /* the same object while someone holds it */
  again = g_list_model_get_item (G_LIST_MODEL (model), 1);
  g_assert_true (again == fido);
  g_clear_object (&again);

  /* getters */
  s = ts_row_object_dup_cell_string (fido, "name");
  g_assert_cmpstr (s, ==, "Fido");
  g_assert_null (ts_row_object_dup_cell_string (fido, "legs"));
  g_assert_null (ts_row_object_dup_cell_string (fido, "nope"));
  g_assert_cmpfloat (ts_row_object_get_cell_number (fido, "legs", -1), ==, 4);
  g_assert_cmpfloat (ts_row_object_get_cell_number (fido, "name", -1), ==, -1);
  g_assert_true (ts_row_object_get_cell_boolean (fido, "good", FALSE));
  g_assert_false (ts_row_object_get_cell_boolean (fido, "legs", FALSE));
  g_assert_true (ts_row_object_get_cell_boolean (fido, "nope", TRUE));
  g_assert_true (ts_row_object_has_cell (fido, "tags"));
  g_assert_false (ts_row_object_has_cell (fido, "nope"));
  json = ts_row_object_get_cell_json (fido, "tags");
  g_assert_cmpstr (json, ==, "[\"a\"]");
  g_assert_null (ts_row_object_get_cell_json (fido, "nope"));
  v = ts_row_object_get_cell (fido, "legs");
  g_assert_true (g_variant_is_of_type (v, G_VARIANT_TYPE_DOUBLE));
  g_assert_null (ts_row_object_get_cell (fido, "nope"));
  cells = ts_row_object_get_cell_ids (fido);
  g_assert_cmpuint (g_strv_length (cells), ==, 4);

  /* signals */
  g_signal_connect (fido, "cell-changed", G_CALLBACK (on_row_cell_changed), &counts);
  g_signal_connect (fido, "cell-changed::name", G_CALLBACK (on_row_name_changed), &counts);
  g_signal_connect (fido, "notify::version", G_CALLBACK (on_notify_count), &version_notifies);

  g_assert_true (ts_row_object_set_cell (fido, "legs", g_variant_new_int32 (3), &error));
  g_assert_no_error (error);
  g_assert_cmpuint (counts.any, ==, 1);
  g_assert_cmpuint (counts.name, ==, 0);
  g_assert_cmpstr (counts.last, ==, "legs");
  g_assert_cmpuint (version_notifies, ==, 1);
  g_assert_cmpuint (ts_row_object_get_version (fido), ==, 1);

  /* one version bump per transaction, one cell-changed per cell */
  ts_mergeable_store_start_transaction (store);
  g_assert_true (ts_row_object_set_cell_json (fido, "name", "\"Rex\"", &error));
  ts_row_object_set_cell (fido, "legs", g_variant_new_double (2), NULL);
  ts_row_object_set_cell (fido, "legs", g_variant_new_double (3), NULL);  /* back: no change */
  ts_mergeable_store_set_cell_number (store, "pets", "felix", "legs", 5);
  g_assert_cmpuint (counts.any, ==, 1);
  ts_mergeable_store_finish_transaction (store);
  g_assert_cmpuint (counts.any, ==, 2);
  g_assert_cmpuint (counts.name, ==, 1);
  g_assert_cmpuint (version_notifies, ==, 2);

  /* errors pass through */
  g_assert_false (ts_row_object_set_cell_json (fido, "name", "{", &error));
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
  g_clear_error (&error);

  /* merged changes too */
  {
    g_autoptr(TsMergeableStore) peer = new_store ("peer", &now);

    now += 10;
    ts_mergeable_store_set_cell_string (peer, "pets", "fido", "name", "Merged");
    ts_mergeable_store_merge (store, peer);
    g_assert_cmpuint (counts.name, ==, 2);
    g_assert_cmpuint (version_notifies, ==, 3);
  }

  /* deleting the row: cells announced, then the model drops it; the
   * object stays usable */
  ts_row_object_del_cell (fido, "tags");
  ts_mergeable_store_del_row (store, "pets", "fido");
  g_assert_false (ts_table_model_find (model, "fido", NULL));
  g_assert_null (ts_row_object_dup_cell_string (fido, "name"));
  g_assert_cmpuint (version_notifies, ==, 5);

  /* weakly cached: once nobody holds it, the object goes */
  g_assert_true (ts_table_model_find (model, "felix", &position));
  again = g_list_model_get_item (G_LIST_MODEL (model), position);
  g_object_weak_ref (G_OBJECT (again), weak_notify_flag, &freed);
  g_clear_object (&again);
  g_assert_true (freed);
  again = g_list_model_get_item (G_LIST_MODEL (model), position);
  g_assert_cmpstr (ts_row_object_get_row_id (again), ==, "felix");
  g_clear_object (&again);

  /* a row object outlives its model */
  again = g_list_model_get_item (G_LIST_MODEL (model), position);
  g_clear_object (&model);
  g_assert_cmpfloat (ts_row_object_get_cell_number (again, "legs", 0), ==, 5);
  g_clear_object (&again);

  /* a standalone row object listens by itself, for rows yet to exist */
  standalone = ts_row_object_new (store, "pets", "rex");
  g_signal_connect (standalone, "cell-changed", G_CALLBACK (on_row_cell_changed), &standalone_counts);
  ts_mergeable_store_set_cell_string (store, "pets", "felix", "name", "F");
  g_assert_cmpuint (standalone_counts.any, ==, 0);
  ts_mergeable_store_set_cell_string (store, "pets", "rex", "name", "Rex");
  g_assert_cmpuint (standalone_counts.any, ==, 1);
  g_assert_cmpuint (ts_row_object_get_version (standalone), ==, 1);

  g_free (counts.last);
  g_free (standalone_counts.last);
}

/* ---- Reentrancy ---------------------------------------------------------- */

typedef struct {
  TsMergeableStore *store;
  TsTableModel     *model;
  guint             calls;
} Reenter;

static void
on_items_changed_write (GListModel *model,
                        guint       position,
                        guint       removed,
                        guint       added,
                        Reenter    *r)
{
  if (r->calls++ > 0)
    return;
  /* inside the first emission: write to the store and change the order */
  ts_mergeable_store_set_cell_number (r->store, "t", "zz", "v", -5);
  ts_mergeable_store_del_row (r->store, "t", "b");
  ts_table_model_set_sort (r->model, "v", TRUE);
}

static void
test_reentrancy (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("re", &now);
  g_autoptr(TsTableModel) model = ts_table_model_new (store, "t");
  g_autoptr(TsTableModel) other = ts_table_model_new (store, "t");
  g_autoptr(Watch) w = NULL;
  g_autoptr(Watch) wo = NULL;
  Reenter r = { store, model, 0 };

  /* connected before the watches: the watch sees every emission after
   * the writes have been queued */
  g_signal_connect (model, "items-changed", G_CALLBACK (on_items_changed_write), &r);
  w = watch_new (G_LIST_MODEL (model));
  wo = watch_new (G_LIST_MODEL (other));

  ts_mergeable_store_set_table_json (store, "t", "{\"a\":{\"v\":1},\"b\":{\"v\":2},\"c\":{\"v\":3}}", NULL);
  g_assert_cmpuint (r.calls, >, 1);
  check_table_model (w, store);
  check_table_model (wo, store);
  g_assert_cmpstr (ts_table_model_get_row_id (model, 0), ==, "c");
  g_assert_cmpstr (ts_table_model_get_row_id (model, 2), ==, "zz");
}

/* ---- Random operations --------------------------------------------------- */

static const char *row_pool[] = {
  "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11",
  "", "B", "a", "\xc3\xa9", "\xef\xbd\x9e", "\xf0\x9d\x92\x9c", "\xee\x80\x80",
};
static const char *cell_pool[] = { "a", "b", "c" };
static const char *value_pool[] = {
  "0", "1", "-1", "2", "0.5", "-0", "3", "1e300", "true", "false", "null",
  "\"\"", "\"a\"", "\"b\"", "\"B\"", "\"10\"", "\"9\"", "\"\\u00e9\"", "\"\\uff5e\"",
  "\"\\ud835\\udc9c\"", "\"\\ue000\"", "{\"x\":1}", "{\"x\":[2]}", "[1,2]", "[]",
};

static const char *
pick (GRand       *rand,
      const char **pool,
      guint        n)
{
  return pool[g_rand_int_range (rand, 0, n)];
}

#define PICK(rand, pool) pick ((rand), (pool), G_N_ELEMENTS (pool))

static char *
random_row_json (GRand *rand)
{
  GString *s = g_string_new ("{");
  guint n = g_rand_int_range (rand, 1, 4);

  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%s\"%s\":%s", i ? "," : "", cell_pool[i],
                            PICK (rand, value_pool));
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

static char *
json_string (const char *s)
{
  GString *out = g_string_new ("\"");

  for (const char *p = s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_c (out, '\\');
      g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
  return g_string_free (out, FALSE);
}

static char *
random_table_json (GRand *rand)
{
  GString *s = g_string_new ("{");
  gboolean first = TRUE;

  for (guint i = 0; i < G_N_ELEMENTS (row_pool); i++)
    {
      g_autofree char *row = NULL;
      g_autofree char *id = NULL;

      if (g_rand_int_range (rand, 0, 3) != 0)
        continue;
      row = random_row_json (rand);
      id = json_string (row_pool[i]);
      g_string_append_printf (s, "%s%s:%s", first ? "" : ",", id, row);
      first = FALSE;
    }
  if (first)
    g_string_append (s, "\"r0\":{\"a\":1}");
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

static const char *
random_table (GRand *rand)
{
  int n = g_rand_int_range (rand, 0, 20);

  return n < 15 ? "t" : n < 18 ? "" : "u";
}

/* One plain write */
static void
random_write (TsMergeableStore *store,
              GRand            *rand)
{
  const char *table = random_table (rand);
  const char *row = PICK (rand, row_pool);
  const char *cell = PICK (rand, cell_pool);
  int op = g_rand_int_range (rand, 0, 100);
  g_autoptr(GError) error = NULL;

  if (op < 45)
    g_assert_true (ts_mergeable_store_set_cell_json (store, table, row, cell,
                                                     PICK (rand, value_pool), &error));
  else if (op < 60)
    ts_mergeable_store_del_cell (store, table, row, cell);
  else if (op < 72)
    ts_mergeable_store_del_row (store, table, row);
  else if (op < 82)
    {
      g_autofree char *json = random_row_json (rand);
      g_assert_true (ts_mergeable_store_set_row_json (store, table, row, json, &error));
    }
  else if (op < 92)
    {
      g_autofree char *json = random_row_json (rand);
      g_assert_true (ts_mergeable_store_set_partial_row_json (store, table, row, json, &error));
    }
  else if (op < 98)
    {
      g_autofree char *json = random_table_json (rand);
      g_assert_true (ts_mergeable_store_set_table_json (store, table, json, &error));
    }
  else
    ts_mergeable_store_del_table (store, table);
  g_assert_no_error (error);
}

typedef struct {
  TsMergeableStore *store;
  GRand            *rand;
  guint             n;
} TxnData;

static void
random_transaction_body (TsMergeableStore *store,
                         gpointer          user_data)
{
  TxnData *d = user_data;

  for (guint i = 0; i < d->n; i++)
    random_write (store, d->rand);
}

/* Row objects held across operations, as list item widgets would */
typedef struct {
  TsRowObject *object;
  guint        version;     /* at hold time */
  guint        cells;       /* cell-changed seen */
  guint        row_changes; /* the store's row-changed for it since hold */
  guint        cell_changes;
} Held;

static void
held_free (gpointer data)
{
  Held *h = data;

  g_signal_handlers_disconnect_matched (h->object, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, h);
  g_object_unref (h->object);
  g_free (h);
}

static void
on_held_cell_changed (TsRowObject *row,
                      const char  *cell_id,
                      Held        *h)
{
  h->cells++;
}

static void
on_store_row_changed (TsMergeableStore *store,
                      const char       *table_id,
                      const char       *row_id,
                      GHashTable       *held)
{
  Held *h = g_hash_table_lookup (held, row_id);

  if (h != NULL)
    h->row_changes++;
}

static void
on_store_cell_changed (TsMergeableStore *store,
                       const char       *table_id,
                       const char       *row_id,
                       const char       *cell_id,
                       GHashTable       *held)
{
  Held *h = g_hash_table_lookup (held, row_id);

  if (h != NULL)
    h->cell_changes++;
}

static void
check_held (TsTableModel *model,
            GHashTable   *held,
            GRand        *rand)
{
  GHashTableIter it;
  gpointer key, value;
  guint n = g_list_model_get_n_items (G_LIST_MODEL (model));

  g_hash_table_iter_init (&it, held);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      Held *h = value;
      guint position;

      g_assert_cmpuint (ts_row_object_get_version (h->object) - h->version, ==, h->row_changes);
      g_assert_cmpuint (h->cells, ==, h->cell_changes);
      if (ts_table_model_find (model, key, &position))
        {
          g_autoptr(TsRowObject) item = g_list_model_get_item (G_LIST_MODEL (model), position);
          g_assert_true (item == h->object);
        }
      else
        g_hash_table_iter_remove (&it);
    }

  /* hold a few more */
  if (n > 0 && g_rand_int_range (rand, 0, 3) == 0)
    {
      TsRowObject *object = g_list_model_get_item (G_LIST_MODEL (model),
                                                   g_rand_int_range (rand, 0, n));
      const char *row_id = ts_row_object_get_row_id (object);

      if (g_hash_table_contains (held, row_id))
        g_object_unref (object);
      else
        {
          Held *h = g_new0 (Held, 1);

          h->object = object;
          h->version = ts_row_object_get_version (object);
          g_signal_connect (object, "cell-changed", G_CALLBACK (on_held_cell_changed), h);
          g_hash_table_insert (held, g_strdup (row_id), h);
        }
    }
}

#define N_MODELS 4

static void
run_random (guint32 seed,
            guint   n_ops)
{
  gint64 now = 1710000000000;
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr(TsMergeableStore) store = new_store ("main", &now);
  g_autoptr(TsMergeableStore) peer = new_store ("peer", &now);
  g_autoptr(TsTableIdsModel) ids_model = NULL;
  g_autoptr(Watch) ids_watch = NULL;
  g_autoptr(GPtrArray) ids_previous = NULL;
  g_autoptr(GHashTable) held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, held_free);
  TsTableModel *models[N_MODELS];
  Watch *watches[N_MODELS];
  GPtrArray *previous[N_MODELS] = { NULL, };
  const char *sort_cells[] = { NULL, "a", "b", "c" };
  guint counts[16] = { 0, };

  /* some content first, so models start non-empty */
  for (guint i = 0; i < 30; i++)
    random_write (store, rand);

  models[0] = ts_table_model_new (store, "t");
  models[1] = g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", "t",
                            "sort-cell", "a", NULL);
  models[2] = g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", "t",
                            "sort-cell", "b", "sort-descending", TRUE, NULL);
  models[3] = g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", "",
                            "sort-cell", "a", NULL);
  for (guint m = 0; m < N_MODELS; m++)
    watches[m] = watch_new (G_LIST_MODEL (models[m]));
  ids_model = ts_table_ids_model_new (store);
  ids_watch = watch_new (G_LIST_MODEL (ids_model));
  g_signal_connect (store, "row-changed::t", G_CALLBACK (on_store_row_changed), held);
  g_signal_connect (store, "cell-changed::t", G_CALLBACK (on_store_cell_changed), held);

  for (guint step = 0; step < n_ops; step++)
    {
      int op = g_rand_int_range (rand, 0, 100);
      g_autoptr(GError) error = NULL;

      now += g_rand_int_range (rand, 0, 3);
      if (op < 45)
        {
          counts[0]++;
          random_write (store, rand);
        }
      else if (op < 55)
        {
          TxnData d = { store, rand, g_rand_int_range (rand, 2, 8) };

          counts[1]++;
          ts_mergeable_store_transaction (store, random_transaction_body, &d);
        }
      else if (op < 65)
        {
          guint n = g_rand_int_range (rand, 1, 6);

          counts[2]++;
          for (guint i = 0; i < n; i++)
            random_write (peer, rand);
          ts_mergeable_store_merge (store, peer);
        }
      else if (op < 71)
        {
          g_autofree char *content = NULL;
          guint n = g_rand_int_range (rand, 1, 6);

          counts[3]++;
          for (guint i = 0; i < n; i++)
            random_write (peer, rand);
          content = ts_mergeable_store_get_mergeable_content_json (peer);
          g_assert_true (ts_mergeable_store_apply_mergeable_changes_json (store, content, &error));
        }
      else if (op < 75)
        {
          g_autofree char *content = NULL;
          guint n = g_rand_int_range (rand, 0, 6);

          counts[4]++;
          for (guint i = 0; i < n; i++)
            random_write (peer, rand);
          content = ts_mergeable_store_get_mergeable_content_json (peer);
          g_assert_true (ts_mergeable_store_set_mergeable_content_json (store, content, &error));
        }
      else if (op < 78)
        {
          g_autofree char *t = random_table_json (rand);
          g_autofree char *u = random_table_json (rand);
          g_autofree char *json = g_strdup_printf ("{\"t\":%s,\"\":%s}", t, u);

          counts[5]++;
          g_assert_true (ts_mergeable_store_set_tables_json (store, json, &error));
        }
      else if (op < 79)
        {
          counts[6]++;
          ts_mergeable_store_del_tables (store);
        }
      else if (op < 90)
        {
          guint m = g_rand_int_range (rand, 0, N_MODELS);
          const char *cell = PICK (rand, sort_cells);
          int how = g_rand_int_range (rand, 0, 3);

          counts[7]++;
          if (how == 0)
            ts_table_model_set_sort_cell (models[m], cell);
          else if (how == 1)
            ts_table_model_set_sort_descending (models[m], g_rand_boolean (rand));
          else
            ts_table_model_set_sort (models[m], cell, g_rand_boolean (rand));
        }
      else
        {
          /* a transaction mixing local writes and a merge */
          g_autofree char *content = NULL;

          counts[8]++;
          random_write (peer, rand);
          content = ts_mergeable_store_get_mergeable_content_json (peer);
          ts_mergeable_store_start_transaction (store);
          random_write (store, rand);
          g_assert_true (ts_mergeable_store_apply_mergeable_changes_json (store, content, &error));
          random_write (store, rand);
          ts_mergeable_store_finish_transaction (store);
        }
      g_assert_no_error (error);

      for (guint m = 0; m < N_MODELS; m++)
        {
          g_autoptr(GPtrArray) expected =
            expected_rows (store, ts_table_model_get_table_id (models[m]),
                           ts_table_model_get_sort_cell (models[m]),
                           ts_table_model_get_sort_descending (models[m]));

          check_watch (watches[m], expected, previous[m]);
          g_clear_pointer (&previous[m], g_ptr_array_unref);
          previous[m] = copy_ids (expected);
        }
      {
        g_autoptr(GPtrArray) expected = expected_table_ids (store);

        check_watch (ids_watch, expected, ids_previous);
        g_clear_pointer (&ids_previous, g_ptr_array_unref);
        ids_previous = copy_ids (expected);
      }
      check_held (models[0], held, rand);
    }

  g_test_message ("seed %u: %u ops (%u writes, %u transactions, %u merges, %u applies, "
                  "%u set-content, %u set-tables, %u del-tables, %u sort changes, %u mixed); "
                  "items-changed: %u, %u, %u, %u; table ids: %u",
                  seed, n_ops, counts[0], counts[1], counts[2], counts[3], counts[4],
                  counts[5], counts[6], counts[7], counts[8],
                  watches[0]->total_events, watches[1]->total_events,
                  watches[2]->total_events, watches[3]->total_events,
                  ids_watch->total_events);

  g_signal_handlers_disconnect_by_data (store, held);
  g_hash_table_remove_all (held);
  for (guint m = 0; m < N_MODELS; m++)
    {
      g_clear_pointer (&previous[m], g_ptr_array_unref);
      watch_free (watches[m]);
      g_object_unref (models[m]);
    }
}

static void
test_random (gconstpointer data)
{
  run_random (GPOINTER_TO_UINT (data), 1500);
}

/* ---- Table ids ----------------------------------------------------------- */

static void
test_table_ids (void)
{
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) store = new_store ("ids", &now);
  g_autoptr(TsTableIdsModel) model = NULL;
  g_autoptr(Watch) w = NULL;
  g_autoptr(TsIdObject) first = NULL;
  g_autoptr(TsIdObject) again = NULL;
  g_autoptr(GPtrArray) expected = NULL;
  g_autofree char *id = NULL;
  guint position = 0;

  ts_mergeable_store_set_tables_json (store,
    "{\"b\":{\"r\":{\"c\":1}},\"\\uff5e\":{\"r\":{\"c\":1}},\"a\":{\"r\":{\"c\":1}},"
    "\"\\ud835\\udc9c\":{\"r\":{\"c\":1}}}", NULL);
  model = ts_table_ids_model_new (store);
  w = watch_new (G_LIST_MODEL (model));
  w->log = g_array_new (FALSE, FALSE, sizeof (guint));

  g_assert_true (g_list_model_get_item_type (G_LIST_MODEL (model)) == TS_TYPE_ID_OBJECT);
  g_assert_true (ts_table_ids_model_get_store (model) == store);
  g_assert_cmpstr (ts_table_ids_model_get_id (model, 0), ==, "a");
  g_assert_cmpstr (ts_table_ids_model_get_id (model, 1), ==, "b");
  g_assert_cmpstr (ts_table_ids_model_get_id (model, 2), ==, "\xf0\x9d\x92\x9c");
  g_assert_cmpstr (ts_table_ids_model_get_id (model, 3), ==, "\xef\xbd\x9e");
  g_assert_null (ts_table_ids_model_get_id (model, 4));
  g_assert_true (ts_table_ids_model_find (model, "b", &position));
  g_assert_cmpuint (position, ==, 1);
  g_assert_false (ts_table_ids_model_find (model, "c", NULL));

  first = g_list_model_get_item (G_LIST_MODEL (model), 0);
  g_object_get (first, "id", &id, NULL);
  g_assert_cmpstr (id, ==, "a");

  /* rows and cells of existing tables: nothing */
  ts_mergeable_store_set_cell_number (store, "a", "s", "c", 2);
  ts_mergeable_store_del_row (store, "a", "r");
  assert_no_log (w);
  again = g_list_model_get_item (G_LIST_MODEL (model), 0);
  g_assert_true (again == first);

  ts_mergeable_store_set_cell_number (store, "c", "r", "c", 2);
  assert_log (w, 2, 0, 1);
  ts_mergeable_store_del_table (store, "b");
  assert_log (w, 1, 1, 0);

  /* one transaction: a and c go, aa and ab come, d comes */
  ts_mergeable_store_start_transaction (store);
  ts_mergeable_store_del_table (store, "a");
  ts_mergeable_store_del_table (store, "c");
  ts_mergeable_store_set_cell_number (store, "ab", "r", "c", 2);
  ts_mergeable_store_set_cell_number (store, "aa", "r", "c", 2);
  ts_mergeable_store_set_cell_number (store, "d", "r", "c", 2);
  ts_mergeable_store_finish_transaction (store);
  assert_log (w, 0, 2, 3);
  expected = expected_table_ids (store);
  check_watch (w, expected, NULL);

  ts_mergeable_store_del_tables (store);
  assert_log (w, 0, 5, 0);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 0);
}

/* ---- Performance --------------------------------------------------------- */

static double
seconds (void)
{
  return g_get_monotonic_time () / 1e6;
}

static void
fill (TsMergeableStore *store,
      guint             n_rows)
{
  /* in transactions of 1000 rows: announcing one transaction costs the
   * store O(rows²) */
  for (guint done = 0; done < n_rows; done += 1000)
    {
      ts_mergeable_store_start_transaction (store);
      for (guint i = done; i < done + 1000 && i < n_rows; i++)
        {
          char row[16];

          g_snprintf (row, sizeof row, "row%06u", i);
          ts_mergeable_store_set_cell_number (store, "t", row, "n", (i * 7919u) % n_rows);
          ts_mergeable_store_set_cell_string (store, "t", row, "s", row);
        }
      ts_mergeable_store_finish_transaction (store);
    }
}

/* us per change: the sort cell, another cell, both without a model */
static void
time_changes (TsMergeableStore *store,
              guint             n_rows,
              guint             n_changes,
              double           *sort_us,
              double           *other_us)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  double t0;

  t0 = seconds ();
  for (guint i = 0; i < n_changes; i++)
    {
      char row[16];

      g_snprintf (row, sizeof row, "row%06u", g_rand_int_range (rand, 0, n_rows));
      ts_mergeable_store_set_cell_number (store, "t", row, "n", g_rand_int_range (rand, 0, n_rows));
    }
  *sort_us = (seconds () - t0) * 1e6 / n_changes;

  t0 = seconds ();
  for (guint i = 0; i < n_changes; i++)
    {
      char row[16];

      g_snprintf (row, sizeof row, "row%06u", g_rand_int_range (rand, 0, n_rows));
      ts_mergeable_store_set_cell_number (store, "t", row, "x", i);
    }
  *other_us = (seconds () - t0) * 1e6 / n_changes;
}

static void
count_emissions (GListModel *model,
                 guint       position,
                 guint       removed,
                 guint       added,
                 guint      *count)
{
  (*count)++;
}

static void
test_perf (void)
{
  guint n_rows = g_test_perf () ? 100000 : 10000;
  guint n_changes = g_test_perf () ? 20000 : 2000;
  gint64 now = 1710000000000;
  g_autoptr(TsMergeableStore) bare = new_store ("bare", &now);
  g_autoptr(TsMergeableStore) store = new_store ("perf", &now);
  g_autoptr(TsTableModel) model = NULL;
  g_autoptr(TsTableModel) by_id = NULL;
  g_autoptr(GPtrArray) expected = NULL;
  g_autoptr(GPtrArray) listed = g_ptr_array_new ();
  double t0, build, build_id, bare_sort, bare_other, sort_us, other_us;
  guint emissions = 0, id_emissions = 0;

  fill (bare, n_rows);
  time_changes (bare, n_rows, n_changes, &bare_sort, &bare_other);

  fill (store, n_rows);
  t0 = seconds ();
  model = g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", "t",
                        "sort-cell", "n", NULL);
  build = seconds () - t0;
  t0 = seconds ();
  by_id = ts_table_model_new (store, "t");
  build_id = seconds () - t0;
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, n_rows);
  g_signal_connect (model, "items-changed", G_CALLBACK (count_emissions), &emissions);
  g_signal_connect (by_id, "items-changed", G_CALLBACK (count_emissions), &id_emissions);
  time_changes (store, n_rows, n_changes, &sort_us, &other_us);

  g_test_message ("%u rows: models built in %.1f ms (by a number cell), %.1f ms (by row id); "
                  "per single-cell change with both models attached: of the sort cell "
                  "%.2f us (%.2f us without models), of another cell %.2f us (%.2f us)",
                  n_rows, build * 1e3, build_id * 1e3, sort_us, bare_sort, other_us, bare_other);
  if (g_test_perf ())
    g_test_minimized_result (sort_us, "us per sort-cell change, %u rows", n_rows);

  /* each sort-cell change moved one row at most: two emissions */
  g_assert_cmpuint (emissions, <=, 2 * n_changes);
  g_assert_cmpuint (id_emissions, ==, 0);
  expected = expected_rows (store, "t", "n", FALSE);
  for (guint i = 0; i < n_rows; i++)
    g_ptr_array_add (listed, (gpointer) ts_table_model_get_row_id (model, i));
  assert_ids (listed, expected, "model");
}

int
main (int   argc,
      char *argv[])
{
  const guint32 seeds[] = { 1, 2, 3, 20240101 };

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/table-model/basic", test_basic);
  g_test_add_func ("/tinysync/table-model/empty-table-id", test_empty_table_id);
  g_test_add_func ("/tinysync/table-model/sort-values", test_sort_values);
  g_test_add_func ("/tinysync/table-model/row-objects", test_row_objects);
  g_test_add_func ("/tinysync/table-model/reentrancy", test_reentrancy);
  for (guint i = 0; i < G_N_ELEMENTS (seeds); i++)
    {
      g_autofree char *path = g_strdup_printf ("/tinysync/table-model/random/%u", seeds[i]);
      g_test_add_data_func (path, GUINT_TO_POINTER (seeds[i]), test_random);
    }
  g_test_add_func ("/tinysync/table-ids-model/basic", test_table_ids);
  g_test_add_func ("/tinysync/table-model/perf", test_perf);

  return g_test_run ();
}
