/* ts-mergeable-store.c: a TinyBase-compatible mergeable (CRDT) store
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "ts-error.h"
#include "ts-mergeable-store.h"
#include "ts-private.h"
#include "ts-stamp-tree-private.h"
#include "ts-mergeable-store-private.h"

/**
 * TsMergeableStore:
 *
 * A reactive store of tables and values whose every cell and value carries
 * a hybrid logical clock (HLC) stamp and a hash, exactly like TinyBase's
 * `MergeableStore` (tinybase 10.0.1), so that stores can be synchronized
 * with [class@Tinysync.Synchronizer] and converge deterministically, with
 * TinyBase peers too.
 *
 * The store holds *tables* (table id → row id → cell id → cell) and
 * *values* (value id → value). Cells and values are strings, finite
 * numbers, booleans, `null`, or JSON objects and arrays. A table exists
 * while it has a row, a row while it has a cell.
 *
 * Content goes in and out as JSON text in TinyBase's shapes
 * ([method@Tinysync.MergeableStore.set_tables_json],
 * [method@Tinysync.MergeableStore.get_tables_json], …) or cell by cell
 * with #GVariant ([method@Tinysync.MergeableStore.set_cell]).
 *
 * ```c
 * g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("store1");
 * g_autoptr(GError) error = NULL;
 *
 * if (!ts_mergeable_store_set_tables_json (store,
 *         "{\"pets\": {\"fido\": {\"species\": \"dog\"}}}", &error))
 *   g_printerr ("%s\n", error->message);
 * ts_mergeable_store_set_cell_number (store, "pets", "fido", "legs", 4);
 * g_autofree char *json = ts_mergeable_store_get_tables_json (store);
 * // {"pets":{"fido":{"species":"dog","legs":4}}}
 * ```
 *
 * Changes are grouped in transactions; listeners run once the outermost
 * transaction finishes, through the signals
 * [signal@Tinysync.MergeableStore::cell-changed] and friends, or through
 * TinyBase-style listeners with wildcard ids
 * ([method@Tinysync.MergeableStore.add_cell_listener]).
 *
 * The mergeable API ([method@Tinysync.MergeableStore.get_mergeable_content_json],
 * [method@Tinysync.MergeableStore.apply_mergeable_changes_json],
 * [method@Tinysync.MergeableStore.merge] and the hash and diff functions)
 * uses the *encoded* JSON form that TinyBase writes on the wire and in
 * its files: a deleted cell is the string `"\uFFFC"`, and an object or
 * array cell is the string U+FFFD followed by its JSON text.
 *
 * Since: 1.0
 */

typedef enum {
  LISTENER_CELL,
  LISTENER_ROW,
  LISTENER_TABLE,
  LISTENER_VALUE,
} ListenerKind;

typedef struct {
  gulong          id;
  ListenerKind    kind;
  char           *table_id;
  char           *row_id;
  char           *cell_id;    /* the value id for value listeners */
  gpointer        func;
  gpointer        user_data;
  GDestroyNotify  notify;
} Listener;

struct _TsMergeableStore
{
  GObject         parent_instance;

  char           *unique_id;
  TsStampTree     tree;

  TsClockFunc     clock_func;
  gpointer        clock_data;
  GDestroyNotify  clock_notify;

  GPtrArray      *listeners;
  gulong          next_listener_id;
  guint           emitting;
  gboolean        listeners_dirty;

  GArray         *finished_log;  /* the log being announced */
};

G_DEFINE_FINAL_TYPE (TsMergeableStore, ts_mergeable_store, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_UNIQUE_ID,
  PROP_CLIENT_ID,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  CELL_CHANGED,
  ROW_CHANGED,
  TABLE_CHANGED,
  TABLES_CHANGED,
  VALUE_CHANGED,
  VALUES_CHANGED,
  TRANSACTION_FINISHED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* ---- GObject ------------------------------------------------------------- */

static void
listener_free (gpointer data)
{
  Listener *l = data;

  if (l->notify != NULL)
    l->notify (l->user_data);
  g_free (l->table_id);
  g_free (l->row_id);
  g_free (l->cell_id);
  g_free (l);
}

static gint64
store_now (gpointer user_data)
{
  TsMergeableStore *self = user_data;

  return self->clock_func (self->clock_data);
}

static void
ts_mergeable_store_constructed (GObject *object)
{
  TsMergeableStore *self = TS_MERGEABLE_STORE (object);

  G_OBJECT_CLASS (ts_mergeable_store_parent_class)->constructed (object);

  if (self->unique_id == NULL)
    {
      char id[17];

      ts_random_id (id, 16);
      self->unique_id = g_strdup (id);
    }
  ts_stamp_tree_init (&self->tree, self->unique_id, strlen (self->unique_id));
}

static void
ts_mergeable_store_finalize (GObject *object)
{
  TsMergeableStore *self = TS_MERGEABLE_STORE (object);

  g_ptr_array_unref (self->listeners);
  if (self->clock_notify != NULL)
    self->clock_notify (self->clock_data);
  ts_stamp_tree_clear (&self->tree);
  g_free (self->unique_id);

  G_OBJECT_CLASS (ts_mergeable_store_parent_class)->finalize (object);
}

static void
ts_mergeable_store_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  TsMergeableStore *self = TS_MERGEABLE_STORE (object);

  switch (prop_id)
    {
    case PROP_UNIQUE_ID:
      g_value_set_string (value, self->unique_id);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->tree.clock.client_id);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_mergeable_store_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  TsMergeableStore *self = TS_MERGEABLE_STORE (object);

  switch (prop_id)
    {
    case PROP_UNIQUE_ID:
      self->unique_id = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_mergeable_store_class_init (TsMergeableStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_mergeable_store_constructed;
  object_class->finalize = ts_mergeable_store_finalize;
  object_class->get_property = ts_mergeable_store_get_property;
  object_class->set_property = ts_mergeable_store_set_property;

  /**
   * TsMergeableStore:unique-id: (getter get_unique_id)
   *
   * The unique id of the store: its HLC client id is derived from it
   * exactly as TinyBase does, so two stores (here or in TinyBase) with the
   * same unique id stamp identically. %NULL at construction picks a random
   * one.
   *
   * Since: 1.0
   */
  properties[PROP_UNIQUE_ID] =
    g_param_spec_string ("unique-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsMergeableStore:client-id: (getter get_client_id)
   *
   * The five-character HLC client id derived from
   * [property@Tinysync.MergeableStore:unique-id].
   *
   * Since: 1.0
   */
  properties[PROP_CLIENT_ID] =
    g_param_spec_string ("client-id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TsMergeableStore::cell-changed:
   * @store: the store
   * @table_id: the table id
   * @row_id: the row id
   * @cell_id: the cell id
   *
   * Emitted once per cell whose value differs at the end of the outermost
   * transaction from what it was at its start, whether the change was
   * local or merged. The signal detail is the table id, so
   * `"cell-changed::pets"` only hears about the pets table.
   *
   * Since: 1.0
   */
  signals[CELL_CHANGED] =
    g_signal_new ("cell-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * TsMergeableStore::row-changed:
   * @store: the store
   * @table_id: the table id
   * @row_id: the row id
   *
   * Emitted once per row with at least one changed cell, after the
   * [signal@Tinysync.MergeableStore::cell-changed] emissions. The detail
   * is the table id.
   *
   * Since: 1.0
   */
  signals[ROW_CHANGED] =
    g_signal_new ("row-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * TsMergeableStore::table-changed:
   * @store: the store
   * @table_id: the table id
   *
   * Emitted once per table with at least one changed cell. The detail is
   * the table id.
   *
   * Since: 1.0
   */
  signals[TABLE_CHANGED] =
    g_signal_new ("table-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * TsMergeableStore::tables-changed:
   * @store: the store
   *
   * Emitted once per transaction that changed any cell.
   *
   * Since: 1.0
   */
  signals[TABLES_CHANGED] =
    g_signal_new ("tables-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * TsMergeableStore::value-changed:
   * @store: the store
   * @value_id: the value id
   *
   * Emitted once per changed value. The detail is the value id.
   *
   * Since: 1.0
   */
  signals[VALUE_CHANGED] =
    g_signal_new ("value-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * TsMergeableStore::values-changed:
   * @store: the store
   *
   * Emitted once per transaction that changed any value.
   *
   * Since: 1.0
   */
  signals[VALUES_CHANGED] =
    g_signal_new ("values-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * TsMergeableStore::transaction-finished:
   * @store: the store
   *
   * Emitted when the outermost transaction finished, after the change
   * signals and listeners, even when nothing changed (TinyBase's
   * did-finish-transaction listeners). While it runs,
   * [method@Tinysync.MergeableStore.get_transaction_mergeable_changes_json]
   * describes the transaction.
   *
   * Since: 1.0
   */
  signals[TRANSACTION_FINISHED] =
    g_signal_new ("transaction-finished", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
ts_mergeable_store_init (TsMergeableStore *self)
{
  self->listeners = g_ptr_array_new_with_free_func (listener_free);
  self->next_listener_id = 1;
}

/**
 * ts_mergeable_store_new:
 * @unique_id: (nullable): the unique id of the store, or %NULL for a random one
 *
 * Creates an empty store: TinyBase's `createMergeableStore(uniqueId)`.
 *
 * Returns: (transfer full): a new store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_mergeable_store_new (const char *unique_id)
{
  return g_object_new (TS_TYPE_MERGEABLE_STORE, "unique-id", unique_id, NULL);
}

/**
 * ts_mergeable_store_get_unique_id: (get-property unique-id)
 * @self: a store
 *
 * Gets the unique id the store's HLC client id derives from.
 *
 * Returns: (transfer none): the unique id
 *
 * Since: 1.0
 */
const char *
ts_mergeable_store_get_unique_id (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return self->unique_id;
}

/**
 * ts_mergeable_store_get_client_id: (get-property client-id)
 * @self: a store
 *
 * Gets the five-character client id that ends every HLC this store makes.
 *
 * Returns: (transfer none): the client id
 *
 * Since: 1.0
 */
const char *
ts_mergeable_store_get_client_id (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return self->tree.clock.client_id;
}

/**
 * ts_mergeable_store_set_clock:
 * @self: a store
 * @func: (nullable) (scope notified) (closure user_data) (destroy notify):
 *   the time source, or %NULL for the real clock
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data
 *
 * Replaces the time source of the store's hybrid logical clock, like the
 * `getNow` argument of TinyBase's `createMergeableStore`. Mostly for
 * deterministic tests.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_clock (TsMergeableStore *self,
                              TsClockFunc       func,
                              gpointer          user_data,
                              GDestroyNotify    notify)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  if (self->clock_notify != NULL)
    self->clock_notify (self->clock_data);
  self->clock_func = func;
  self->clock_data = user_data;
  self->clock_notify = notify;
  self->tree.clock.now = func != NULL ? store_now : NULL;
  self->tree.clock.now_data = self;
}

/* ---- Ids and JSON helpers ------------------------------------------------- */

static gboolean
check_id (const char  *id,
          GError     **error)
{
  if (id != NULL && g_utf8_validate (id, -1, NULL))
    return TRUE;
  g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ID,
               _("Ids must be valid UTF-8 strings"));
  return FALSE;
}

#define ID_OK(id) ((id) != NULL && g_utf8_validate ((id), -1, NULL))

static TsJsonDoc *
parse_json (const char        *json,
            const TsJsonNode **root,
            GError           **error)
{
  TsJsonDoc *doc;

  if (json == NULL)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_JSON, _("No JSON text given"));
      return NULL;
    }
  doc = ts_json_parse (json, -1, error);
  if (doc != NULL)
    *root = ts_json_doc_get_root (doc);
  return doc;
}

static char *
finish_string (GString *out)
{
  return g_string_free (out, FALSE);
}

static TsTable *
find_live_table (TsMergeableStore *self,
                 const char       *table_id)
{
  TsTable *table = ts_stamp_tree_table (&self->tree, table_id, strlen (table_id), FALSE);

  return table != NULL && ts_table_live (table) ? table : NULL;
}

static TsRow *
find_live_row (TsMergeableStore *self,
               const char       *table_id,
               const char       *row_id)
{
  TsTable *table = find_live_table (self, table_id);
  TsRow *row = table ? ts_table_row (table, row_id, strlen (row_id), FALSE) : NULL;

  return row != NULL && ts_row_live (row) ? row : NULL;
}

static TsLeaf *
find_live_leaf (TsMergeableStore *self,
                TsRow            *row,
                const char       *id)
{
  TsLeaf *leaf = row ? ts_row_find_leaf (&self->tree, row, id, strlen (id)) : NULL;

  return leaf != NULL && ts_leaf_live (leaf) ? leaf : NULL;
}

static void
leaf_val (const TsLeaf *leaf,
          TsVal        *out)
{
  out->kind = leaf->kind;
  out->u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    out->u.str = leaf->u.str;
}

/* Plain JSON of a leaf container: {"id":value,...} in Store order. */
static void
write_plain_row (GString     *out,
                 TsRow       *row)
{
  guint n;
  g_autofree guint32 *live = ts_row_live_leaves (row, &n);
  g_autofree const char **keys = g_new (const char *, n + 1);
  g_autofree guint32 *lens = g_new (guint32, n + 1);
  g_autofree guint32 *order = NULL;

  for (guint i = 0; i < n; i++)
    {
      keys[i] = row->leaves[live[i]].id->str;
      lens[i] = row->leaves[live[i]].id->len;
    }
  order = ts_json_property_order (keys, lens, n);

  g_string_append_c (out, '{');
  for (guint j = 0; j < n; j++)
    {
      guint i = order ? order[j] : j;
      TsVal v;

      if (j > 0)
        g_string_append_c (out, ',');
      ts_json_write_string (out, keys[i], lens[i]);
      g_string_append_c (out, ':');
      leaf_val (&row->leaves[live[i]], &v);
      ts_val_write_plain (out, &v);
    }
  g_string_append_c (out, '}');
}

static void
write_plain_table (GString *out,
                   TsTable *table)
{
  guint n;
  g_autofree TsRow **rows = ts_table_live_rows (table, &n);
  g_autofree const char **keys = g_new (const char *, n + 1);
  g_autofree guint32 *lens = g_new (guint32, n + 1);
  g_autofree guint32 *order = NULL;

  for (guint i = 0; i < n; i++)
    {
      keys[i] = rows[i]->id;
      lens[i] = rows[i]->id_len;
    }
  order = ts_json_property_order (keys, lens, n);

  g_string_append_c (out, '{');
  for (guint j = 0; j < n; j++)
    {
      guint i = order ? order[j] : j;

      if (j > 0)
        g_string_append_c (out, ',');
      ts_json_write_string (out, keys[i], lens[i]);
      g_string_append_c (out, ':');
      write_plain_row (out, rows[i]);
    }
  g_string_append_c (out, '}');
}

static void
write_plain_tables (GString          *out,
                    TsMergeableStore *self)
{
  guint n;
  g_autofree TsTable **tables = ts_stamp_tree_live_tables (&self->tree, &n);
  g_autofree const char **keys = g_new (const char *, n + 1);
  g_autofree guint32 *lens = g_new (guint32, n + 1);
  g_autofree guint32 *order = NULL;

  for (guint i = 0; i < n; i++)
    {
      keys[i] = tables[i]->id;
      lens[i] = tables[i]->id_len;
    }
  order = ts_json_property_order (keys, lens, n);

  g_string_append_c (out, '{');
  for (guint j = 0; j < n; j++)
    {
      guint i = order ? order[j] : j;

      if (j > 0)
        g_string_append_c (out, ',');
      ts_json_write_string (out, keys[i], lens[i]);
      g_string_append_c (out, ':');
      write_plain_table (out, tables[i]);
    }
  g_string_append_c (out, '}');
}

/* ---- Plain getters -------------------------------------------------------- */

/**
 * ts_mergeable_store_get_tables_json:
 * @self: a store
 *
 * Gets all tables as JSON, as TinyBase's `getTablesJson()`:
 * `{"tableId":{"rowId":{"cellId":cell}}}`, with object and array cells
 * decoded and ids in the Store's insertion order (integer-like ids first,
 * as JavaScript orders object members).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_tables_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (256);
  write_plain_tables (out, self);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_table_json:
 * @self: a store
 * @table_id: a table id
 *
 * Gets one table as JSON (`{}` if there is no such table).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_table_json (TsMergeableStore *self,
                                   const char       *table_id)
{
  TsTable *table;
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL, NULL);

  out = g_string_sized_new (128);
  table = ID_OK (table_id) ? find_live_table (self, table_id) : NULL;
  if (table != NULL)
    write_plain_table (out, table);
  else
    g_string_append (out, "{}");
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_row_json:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 *
 * Gets one row as JSON (`{}` if there is no such row).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_row_json (TsMergeableStore *self,
                                 const char       *table_id,
                                 const char       *row_id)
{
  TsRow *row;
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL && row_id != NULL, NULL);

  out = g_string_sized_new (64);
  row = ID_OK (table_id) && ID_OK (row_id) ? find_live_row (self, table_id, row_id) : NULL;
  if (row != NULL)
    write_plain_row (out, row);
  else
    g_string_append (out, "{}");
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_cell_json:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 *
 * Gets one cell as JSON text.
 *
 * Returns: (transfer full) (nullable): JSON text, or %NULL if there is no
 *   such cell
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_cell_json (TsMergeableStore *self,
                                  const char       *table_id,
                                  const char       *row_id,
                                  const char       *cell_id)
{
  TsLeaf *leaf;
  GString *out;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL, NULL);

  if (!ID_OK (table_id) || !ID_OK (row_id) || !ID_OK (cell_id))
    return NULL;
  leaf = find_live_leaf (self, find_live_row (self, table_id, row_id), cell_id);
  if (leaf == NULL)
    return NULL;
  out = g_string_sized_new (32);
  leaf_val (leaf, &v);
  ts_val_write_plain (out, &v);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_values_json:
 * @self: a store
 *
 * Gets all values as JSON: `{"valueId":value}`.
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_values_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (64);
  write_plain_row (out, self->tree.values);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_value_json:
 * @self: a store
 * @value_id: a value id
 *
 * Gets one value as JSON text.
 *
 * Returns: (transfer full) (nullable): JSON text, or %NULL if there is no
 *   such value
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_value_json (TsMergeableStore *self,
                                   const char       *value_id)
{
  TsLeaf *leaf;
  GString *out;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (value_id != NULL, NULL);

  if (!ID_OK (value_id))
    return NULL;
  leaf = find_live_leaf (self, self->tree.values, value_id);
  if (leaf == NULL)
    return NULL;
  out = g_string_sized_new (32);
  leaf_val (leaf, &v);
  ts_val_write_plain (out, &v);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_content_json:
 * @self: a store
 *
 * Gets tables and values as the JSON array `[tables, values]`
 * (TinyBase's `getContent()`).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_content_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (256);
  g_string_append_c (out, '[');
  write_plain_tables (out, self);
  g_string_append_c (out, ',');
  write_plain_row (out, self->tree.values);
  g_string_append_c (out, ']');
  return finish_string (out);
}

/* ---- Transactions and change notification -------------------------------- */

/**
 * ts_mergeable_store_start_transaction:
 * @self: a store
 *
 * Starts a transaction; transactions nest. Listeners and signals run when
 * the outermost transaction finishes with
 * [method@Tinysync.MergeableStore.finish_transaction].
 *
 * Since: 1.0
 */
void
ts_mergeable_store_start_transaction (TsMergeableStore *self)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  ts_stamp_tree_begin (&self->tree);
}

static gboolean
listener_matches (const char *want,
                  const char *id)
{
  return want == NULL || (id != NULL && strcmp (want, id) == 0);
}

static gboolean
have_listeners (TsMergeableStore *self,
                ListenerKind      kind)
{
  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *l = self->listeners->pdata[i];
      if (l->kind == kind && l->func != NULL)
        return TRUE;
    }
  return FALSE;
}

static void
call_listeners (TsMergeableStore *self,
                ListenerKind      kind,
                const char       *table_id,
                const char       *row_id,
                const char       *cell_id)
{
  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *l = self->listeners->pdata[i];

      if (l->kind != kind || l->func == NULL)
        continue;
      switch (kind)
        {
        case LISTENER_CELL:
          if (listener_matches (l->table_id, table_id) && listener_matches (l->row_id, row_id) &&
              listener_matches (l->cell_id, cell_id))
            ((TsCellListenerFunc) l->func) (self, table_id, row_id, cell_id, l->user_data);
          break;
        case LISTENER_ROW:
          if (listener_matches (l->table_id, table_id) && listener_matches (l->row_id, row_id))
            ((TsRowListenerFunc) l->func) (self, table_id, row_id, l->user_data);
          break;
        case LISTENER_TABLE:
          if (listener_matches (l->table_id, table_id))
            ((TsTableListenerFunc) l->func) (self, table_id, l->user_data);
          break;
        case LISTENER_VALUE:
          if (listener_matches (l->cell_id, cell_id))
            ((TsValueListenerFunc) l->func) (self, cell_id, l->user_data);
          break;
        default:
          g_assert_not_reached ();
        }
    }
}

/* Whether the signal has any handler, whatever its detail
 * (g_signal_has_handler_pending() with detail 0 only sees handlers
 * connected without one). */
static gboolean
signal_wanted (TsMergeableStore *self,
               guint             signal)
{
  return g_signal_handler_find (self, G_SIGNAL_MATCH_ID, signals[signal],
                                0, NULL, NULL, NULL) != 0;
}

/* The detail to emit with: a quark that does not exist yet cannot have
 * handlers, so there is no need to create one. */
static GQuark
detail_of (const char *id)
{
  return g_quark_try_string (id);
}

static gboolean
change_is_net (const TsChange *change)
{
  TsVal now;

  ts_change_get_value (change, &now);
  if (now.kind == TS_VAL_UNDEFINED || change->old.kind == TS_VAL_UNDEFINED)
    return now.kind != change->old.kind;
  return !ts_val_equal (&now, &change->old);
}

/* A (table id, row id) pair, for finding the distinct rows of a log */
typedef struct {
  const char *table_id;
  const char *row_id;
} RowKey;

static guint
row_key_hash (gconstpointer key)
{
  const RowKey *k = key;

  return g_str_hash (k->table_id) * 31 + g_str_hash (k->row_id);
}

static gboolean
row_key_equal (gconstpointer a,
               gconstpointer b)
{
  const RowKey *ka = a, *kb = b;

  return strcmp (ka->table_id, kb->table_id) == 0 && strcmp (ka->row_id, kb->row_id) == 0;
}

static void
announce (TsMergeableStore *self,
          GArray           *log)
{
  gboolean any_table = FALSE, any_value = FALSE;
  gboolean cell_l = have_listeners (self, LISTENER_CELL);
  gboolean row_l = have_listeners (self, LISTENER_ROW);
  gboolean table_l = have_listeners (self, LISTENER_TABLE);
  gboolean value_l = have_listeners (self, LISTENER_VALUE);
  gboolean cell_s = signal_wanted (self, CELL_CHANGED);
  gboolean row_s = signal_wanted (self, ROW_CHANGED);
  gboolean table_s = signal_wanted (self, TABLE_CHANGED);
  gboolean value_s = signal_wanted (self, VALUE_CHANGED);
  gboolean tables_s = signal_wanted (self, TABLES_CHANGED);
  gboolean values_s = signal_wanted (self, VALUES_CHANGED);
  gboolean want_rows = row_s || row_l || table_s || table_l;
  const char *last_table = NULL, *last_row = NULL;
  g_autoptr(GPtrArray) rows = NULL;    /* (table, row) pairs, flattened */
  g_autoptr(GPtrArray) tables = NULL;
  g_autoptr(GHashTable) seen_rows = NULL;     /* RowKey set */
  g_autoptr(GHashTable) seen_tables = NULL;

  /* Nobody listens to changes: announcing costs nothing per cell. */
  if (!(cell_s || cell_l || value_s || value_l || want_rows || tables_s || values_s))
    {
      g_signal_emit (self, signals[TRANSACTION_FINISHED], 0);
      return;
    }

  for (guint i = 0; i < log->len; i++)
    {
      const TsChange *change = &g_array_index (log, TsChange, i);
      const char *table_id, *row_id, *cell_id;

      if (!change_is_net (change))
        continue;
      ts_change_get_ids (change, &table_id, &row_id, &cell_id);
      if (table_id == NULL)
        {
          any_value = TRUE;
          if (value_s)
            g_signal_emit (self, signals[VALUE_CHANGED], detail_of (cell_id), cell_id);
          if (value_l)
            call_listeners (self, LISTENER_VALUE, NULL, NULL, cell_id);
          continue;
        }

      any_table = TRUE;
      if (cell_s)
        g_signal_emit (self, signals[CELL_CHANGED], detail_of (table_id), table_id, row_id, cell_id);
      if (cell_l)
        call_listeners (self, LISTENER_CELL, table_id, row_id, cell_id);
      if (!want_rows)
        continue;

      /* remember distinct rows and tables, in first-change order */
      if (last_table == NULL || strcmp (last_table, table_id) != 0 || strcmp (last_row, row_id) != 0)
        {
          RowKey key = { table_id, row_id };

          if (rows == NULL)
            {
              rows = g_ptr_array_new ();
              seen_rows = g_hash_table_new_full (row_key_hash, row_key_equal, g_free, NULL);
            }
          if (!g_hash_table_contains (seen_rows, &key))
            {
              g_hash_table_add (seen_rows, g_memdup2 (&key, sizeof key));
              g_ptr_array_add (rows, (gpointer) table_id);
              g_ptr_array_add (rows, (gpointer) row_id);
            }
          last_table = table_id;
          last_row = row_id;
        }
    }

  if (rows != NULL)
    {
      tables = g_ptr_array_new ();
      seen_tables = g_hash_table_new (g_str_hash, g_str_equal);
      for (guint j = 0; j < rows->len; j += 2)
        {
          const char *table_id = rows->pdata[j], *row_id = rows->pdata[j + 1];

          if (row_s)
            g_signal_emit (self, signals[ROW_CHANGED], detail_of (table_id), table_id, row_id);
          if (row_l)
            call_listeners (self, LISTENER_ROW, table_id, row_id, NULL);
          if (g_hash_table_add (seen_tables, (gpointer) table_id))
            g_ptr_array_add (tables, (gpointer) table_id);
        }
      for (guint k = 0; k < tables->len; k++)
        {
          if (table_s)
            g_signal_emit (self, signals[TABLE_CHANGED], detail_of (tables->pdata[k]),
                           tables->pdata[k]);
          if (table_l)
            call_listeners (self, LISTENER_TABLE, tables->pdata[k], NULL, NULL);
        }
    }
  if (any_table && tables_s)
    g_signal_emit (self, signals[TABLES_CHANGED], 0);
  if (any_value && values_s)
    g_signal_emit (self, signals[VALUES_CHANGED], 0);
  g_signal_emit (self, signals[TRANSACTION_FINISHED], 0);
}

/* Whether a listener or a signal handler could see a finished
 * transaction's log (transaction-finished handlers can read it) */
static gboolean
anyone_observes (TsMergeableStore *self)
{
  for (guint i = 0; i < self->listeners->len; i++)
    if (((Listener *) self->listeners->pdata[i])->func != NULL)
      return TRUE;
  for (guint s = 0; s < N_SIGNALS; s++)
    if (signal_wanted (self, s))
      return TRUE;
  return FALSE;
}

static void
compact_listeners (TsMergeableStore *self)
{
  if (self->emitting > 0 || !self->listeners_dirty)
    return;
  for (guint i = self->listeners->len; i > 0; i--)
    {
      Listener *l = self->listeners->pdata[i - 1];
      if (l->func == NULL)
        g_ptr_array_remove_index (self->listeners, i - 1);
    }
  self->listeners_dirty = FALSE;
}

/**
 * ts_mergeable_store_finish_transaction:
 * @self: a store
 *
 * Finishes a transaction started with
 * [method@Tinysync.MergeableStore.start_transaction]. When it is the
 * outermost one, the change signals and listeners run for every cell and
 * value whose value differs from before the transaction, then
 * [signal@Tinysync.MergeableStore::transaction-finished] is emitted.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_finish_transaction (TsMergeableStore *self)
{
  GArray *log, *outer_log;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (self->tree.txn_depth > 0);

  log = ts_stamp_tree_end (&self->tree);
  if (log == NULL)
    return;
  /* loaded content lists its cells only for those who can see the log */
  if (self->tree.log_deferred)
    {
      if (anyone_observes (self))
        ts_stamp_tree_expand_log (&self->tree, log);
      else
        self->tree.log_deferred = FALSE;
    }

  g_object_ref (self);
  ts_stamp_tree_hold (&self->tree);
  self->emitting++;
  outer_log = self->finished_log;
  self->finished_log = log;

  announce (self, log);

  self->finished_log = outer_log;
  self->emitting--;
  ts_stamp_tree_free_log (log);
  ts_stamp_tree_release (&self->tree);
  compact_listeners (self);
  g_object_unref (self);
}

/**
 * ts_mergeable_store_transaction:
 * @self: a store
 * @func: (scope call): the body of the transaction
 * @user_data: data for @func
 *
 * Runs @func inside a transaction.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_transaction (TsMergeableStore  *self,
                                TsTransactionFunc  func,
                                gpointer           user_data)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (func != NULL);

  ts_mergeable_store_start_transaction (self);
  func (self, user_data);
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_in_transaction:
 * @self: a store
 *
 * Whether a transaction is open.
 *
 * Returns: %TRUE inside a transaction
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_in_transaction (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);

  return self->tree.txn_depth > 0;
}

/* ---- Validating setter arguments ----------------------------------------- */

static gboolean
validate_cells (const TsJsonNode  *row,
                GError           **error)
{
  if (row->type != TS_JSON_OBJECT)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
                   _("A row must be a JSON object of cells"));
      return FALSE;
    }
  for (guint32 i = 0; i < row->len; i++)
    {
      TsVal v;

      if (!ts_val_from_json_cell (&row->u.members[i].value, &v, error))
        return FALSE;
      ts_val_clear (&v);
    }
  return TRUE;
}

static gboolean
validate_table (const TsJsonNode  *table,
                GError           **error)
{
  if (table->type != TS_JSON_OBJECT)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
                   _("A table must be a JSON object of rows"));
      return FALSE;
    }
  for (guint32 i = 0; i < table->len; i++)
    if (!validate_cells (&table->u.members[i].value, error))
      return FALSE;
  return TRUE;
}

static gboolean
validate_tables (const TsJsonNode  *tables,
                 GError           **error)
{
  if (tables->type != TS_JSON_OBJECT)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
                   _("Tables must be a JSON object of tables"));
      return FALSE;
    }
  for (guint32 i = 0; i < tables->len; i++)
    if (!validate_table (&tables->u.members[i].value, error))
      return FALSE;
  return TRUE;
}

/* A table argument with at least one non-empty row */
static gboolean
table_has_rows (const TsJsonNode *table)
{
  for (guint32 i = 0; i < table->len; i++)
    if (table->u.members[i].value.len > 0)
      return TRUE;
  return FALSE;
}

static gboolean
tables_have_rows (const TsJsonNode *tables)
{
  for (guint32 i = 0; i < tables->len; i++)
    if (table_has_rows (&tables->u.members[i].value))
      return TRUE;
  return FALSE;
}

static gboolean
fail_empty (GError **error)
{
  g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
               _("Nothing to set: use the del functions to delete"));
  return FALSE;
}

/* ---- Applying setter arguments ------------------------------------------- */

static void
set_json_cell (TsMergeableStore *self,
               TsTable          *table,
               TsRow            *row,
               const char       *id,
               gsize             len,
               const TsJsonNode *node)
{
  TsAtom *atom = ts_stamp_tree_atom (&self->tree, id, len, TRUE);
  TsVal v;

  if (!ts_val_from_json_cell (node, &v, NULL))
    g_assert_not_reached ();   /* validated before */
  if (table != NULL)
    ts_stamp_tree_set_cell (&self->tree, table, row, atom, &v);
  else
    ts_stamp_tree_set_value (&self->tree, atom, &v);
}

/* Sets the cells of a row (or values); with replace, then deletes the live
 * ones the argument lacks, in Store order. */
static void
apply_row (TsMergeableStore *self,
           TsJsonDoc        *doc,
           TsTable          *table,
           TsRow            *row,
           const TsJsonNode *cells,
           gboolean          replace)
{
  for (guint32 i = 0; i < cells->len; i++)
    set_json_cell (self, table, row, cells->u.members[i].key, cells->u.members[i].key_len,
                   &cells->u.members[i].value);

  if (replace)
    {
      guint n;
      g_autofree guint32 *live = ts_row_live_leaves (row, &n);

      for (guint i = 0; i < n; i++)
        {
          TsAtom *atom = row->leaves[live[i]].id;

          if (ts_json_object_get (doc, cells, atom->str, atom->len) == NULL)
            {
              TsVal undef = { TS_VAL_UNDEFINED, { 0 } };

              if (table != NULL)
                ts_stamp_tree_set_cell (&self->tree, table, row, atom, &undef);
              else
                ts_stamp_tree_set_value (&self->tree, atom, &undef);
            }
        }
    }
}

static void
apply_table (TsMergeableStore *self,
             TsJsonDoc        *doc,
             const char       *table_id,
             gsize             table_len,
             const TsJsonNode *rows)
{
  TsTable *table = ts_stamp_tree_table (&self->tree, table_id, table_len, TRUE);
  guint n;
  g_autofree TsRow **live = NULL;

  for (guint32 i = 0; i < rows->len; i++)
    {
      const TsJsonMember *m = &rows->u.members[i];

      TsRow *row;

      if (m->value.len == 0)
        continue;   /* an empty row is dropped, then deleted below */
      row = ts_table_row (table, m->key, m->key_len, TRUE);
      if (row->n_leaves == 0)
        ts_row_reserve (row, m->value.len);
      apply_row (self, doc, table, row, &m->value, TRUE);
    }

  live = ts_table_live_rows (table, &n);
  for (guint i = 0; i < n; i++)
    {
      const TsJsonNode *arg = ts_json_object_get (doc, rows, live[i]->id, live[i]->id_len);

      if (arg == NULL || arg->len == 0)
        ts_stamp_tree_del_row (&self->tree, table, live[i], TRUE);
    }
}

static void
apply_tables (TsMergeableStore *self,
              TsJsonDoc        *doc,
              const TsJsonNode *tables)
{
  guint n;
  g_autofree TsTable **live = NULL;

  for (guint32 i = 0; i < tables->len; i++)
    {
      const TsJsonMember *m = &tables->u.members[i];

      if (!table_has_rows (&m->value))
        continue;
      apply_table (self, doc, m->key, m->key_len, &m->value);
    }

  live = ts_stamp_tree_live_tables (&self->tree, &n);
  for (guint i = 0; i < n; i++)
    {
      const TsJsonNode *arg = ts_json_object_get (doc, tables, live[i]->id, live[i]->id_len);

      if (arg == NULL || !table_has_rows (arg))
        ts_stamp_tree_del_table (&self->tree, live[i]);
    }
}

/* ---- Plain setters -------------------------------------------------------- */

/**
 * ts_mergeable_store_set_tables_json:
 * @self: a store
 * @json: JSON text of an object of tables
 * @error: return location for a #GError
 *
 * Replaces all tables, as TinyBase's `setTables()`: every cell of @json is
 * set (each change gets its own HLC, in the order JavaScript would
 * iterate the object), then rows and tables that @json lacks are deleted.
 * A row given as `{}` counts as absent. Object and array cells are stored
 * encoded (U+FFFD followed by their JSON).
 *
 * Invalid JSON, a wrong shape, an invalid cell (the reserved strings
 * `"\uFFFC"` and strings starting with U+FFFD, or a number that is not
 * finite) or nothing to set makes the call fail without changing anything.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_tables_json (TsMergeableStore  *self,
                                    const char        *json,
                                    GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((doc = parse_json (json, &root, error)) == NULL || !validate_tables (root, error))
    return FALSE;
  if (!tables_have_rows (root))
    return fail_empty (error);

  ts_mergeable_store_start_transaction (self);
  apply_tables (self, doc, root);
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

/**
 * ts_mergeable_store_set_table_json:
 * @self: a store
 * @table_id: a table id
 * @json: JSON text of an object of rows
 * @error: return location for a #GError
 *
 * Replaces one table, as TinyBase's `setTable()`. See
 * [method@Tinysync.MergeableStore.set_tables_json] for the rules.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_table_json (TsMergeableStore  *self,
                                   const char        *table_id,
                                   const char        *json,
                                   GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_id (table_id, error))
    return FALSE;
  if ((doc = parse_json (json, &root, error)) == NULL || !validate_table (root, error))
    return FALSE;
  if (!table_has_rows (root))
    return fail_empty (error);

  ts_mergeable_store_start_transaction (self);
  apply_table (self, doc, table_id, strlen (table_id), root);
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

static gboolean
set_row_common (TsMergeableStore  *self,
                const char        *table_id,
                const char        *row_id,
                const char        *json,
                gboolean           replace,
                GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  TsTable *table;

  if (!check_id (table_id, error) || !check_id (row_id, error))
    return FALSE;
  if ((doc = parse_json (json, &root, error)) == NULL || !validate_cells (root, error))
    return FALSE;
  if (root->len == 0)
    return fail_empty (error);

  ts_mergeable_store_start_transaction (self);
  table = ts_stamp_tree_table (&self->tree, table_id, strlen (table_id), TRUE);
  {
    TsRow *row = ts_table_row (table, row_id, strlen (row_id), TRUE);

    if (row->n_leaves == 0)
      ts_row_reserve (row, root->len);
    apply_row (self, doc, table, row, root, replace);
  }
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

/**
 * ts_mergeable_store_set_row_json:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @json: JSON text of an object of cells
 * @error: return location for a #GError
 *
 * Replaces one row, as TinyBase's `setRow()`: the cells of @json are set,
 * then the row's other cells are deleted.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_row_json (TsMergeableStore  *self,
                                 const char        *table_id,
                                 const char        *row_id,
                                 const char        *json,
                                 GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return set_row_common (self, table_id, row_id, json, TRUE, error);
}

/**
 * ts_mergeable_store_set_partial_row_json:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @json: JSON text of an object of cells
 * @error: return location for a #GError
 *
 * Sets some cells of a row, as TinyBase's `setPartialRow()`; the other
 * cells stay.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_partial_row_json (TsMergeableStore  *self,
                                         const char        *table_id,
                                         const char        *row_id,
                                         const char        *json,
                                         GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return set_row_common (self, table_id, row_id, json, FALSE, error);
}

static gboolean
set_one_cell (TsMergeableStore  *self,
              const char        *table_id,
              const char        *row_id,
              const char        *cell_id,
              TsVal             *value)
{
  gboolean changed;

  ts_mergeable_store_start_transaction (self);
  if (table_id != NULL)
    {
      TsTable *table = ts_stamp_tree_table (&self->tree, table_id, strlen (table_id), TRUE);
      TsRow *row = ts_table_row (table, row_id, strlen (row_id), TRUE);
      TsAtom *atom = ts_stamp_tree_atom (&self->tree, cell_id, strlen (cell_id), TRUE);

      changed = ts_stamp_tree_set_cell (&self->tree, table, row, atom, value);
    }
  else
    {
      TsAtom *atom = ts_stamp_tree_atom (&self->tree, cell_id, strlen (cell_id), TRUE);

      changed = ts_stamp_tree_set_value (&self->tree, atom, value);
    }
  ts_mergeable_store_finish_transaction (self);
  return changed;
}

/**
 * ts_mergeable_store_set_cell_json:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 * @json: JSON text of the cell
 * @error: return location for a #GError
 *
 * Sets one cell, as TinyBase's `setCell()`. Setting the value a cell
 * already has changes nothing.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_cell_json (TsMergeableStore  *self,
                                  const char        *table_id,
                                  const char        *row_id,
                                  const char        *cell_id,
                                  const char        *json,
                                  GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_id (table_id, error) || !check_id (row_id, error) || !check_id (cell_id, error))
    return FALSE;
  if ((doc = parse_json (json, &root, error)) == NULL ||
      !ts_val_from_json_cell (root, &v, error))
    return FALSE;
  set_one_cell (self, table_id, row_id, cell_id, &v);
  return TRUE;
}

/**
 * ts_mergeable_store_set_values_json:
 * @self: a store
 * @json: JSON text of an object of values
 * @error: return location for a #GError
 *
 * Replaces all values, as TinyBase's `setValues()`.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_values_json (TsMergeableStore  *self,
                                    const char        *json,
                                    GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((doc = parse_json (json, &root, error)) == NULL || !validate_cells (root, error))
    return FALSE;
  if (root->len == 0)
    return fail_empty (error);

  ts_mergeable_store_start_transaction (self);
  apply_row (self, doc, NULL, self->tree.values, root, TRUE);
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

/**
 * ts_mergeable_store_set_partial_values_json:
 * @self: a store
 * @json: JSON text of an object of values
 * @error: return location for a #GError
 *
 * Sets some values, as TinyBase's `setPartialValues()`.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_partial_values_json (TsMergeableStore  *self,
                                            const char        *json,
                                            GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((doc = parse_json (json, &root, error)) == NULL || !validate_cells (root, error))
    return FALSE;
  if (root->len == 0)
    return fail_empty (error);

  ts_mergeable_store_start_transaction (self);
  apply_row (self, doc, NULL, self->tree.values, root, FALSE);
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

/**
 * ts_mergeable_store_set_value_json:
 * @self: a store
 * @value_id: a value id
 * @json: JSON text of the value
 * @error: return location for a #GError
 *
 * Sets one value, as TinyBase's `setValue()`.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_value_json (TsMergeableStore  *self,
                                   const char        *value_id,
                                   const char        *json,
                                   GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_id (value_id, error))
    return FALSE;
  if ((doc = parse_json (json, &root, error)) == NULL ||
      !ts_val_from_json_cell (root, &v, error))
    return FALSE;
  set_one_cell (self, NULL, NULL, value_id, &v);
  return TRUE;
}

static gboolean
set_content_common (TsMergeableStore  *self,
                    const char        *json,
                    gboolean           defaulting,
                    GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  if ((doc = parse_json (json, &root, error)) == NULL)
    return FALSE;
  if (root->type != TS_JSON_ARRAY || root->len != 2)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
                   _("Content must be a JSON array [tables, values]"));
      return FALSE;
    }
  if (!validate_tables (&root->u.items[0], error) || !validate_cells (&root->u.items[1], error))
    return FALSE;

  ts_mergeable_store_start_transaction (self);
  self->tree.defaulting = defaulting;
  apply_tables (self, doc, &root->u.items[0]);
  apply_row (self, doc, NULL, self->tree.values, &root->u.items[1], TRUE);
  self->tree.defaulting = FALSE;
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

/**
 * ts_mergeable_store_set_content_json:
 * @self: a store
 * @json: JSON text of `[tables, values]`
 * @error: return location for a #GError
 *
 * Replaces all tables and all values in one transaction. Unlike
 * [method@Tinysync.MergeableStore.set_tables_json], empty objects are
 * allowed and delete everything.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_content_json (TsMergeableStore  *self,
                                     const char        *json,
                                     GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return set_content_common (self, json, FALSE, error);
}

/**
 * ts_mergeable_store_set_default_content_json:
 * @self: a store
 * @json: JSON text of `[tables, values]`
 * @error: return location for a #GError
 *
 * Sets content whose stamps carry no time (an empty HLC), as TinyBase's
 * `setDefaultContent()`: any stamped value, local or from a peer, wins
 * over it. This is what a synchronizer's initial content does.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_default_content_json (TsMergeableStore  *self,
                                             const char        *json,
                                             GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return set_content_common (self, json, TRUE, error);
}

/**
 * ts_mergeable_store_add_row_json:
 * @self: a store
 * @table_id: a table id
 * @json: JSON text of an object of cells
 * @reuse_row_ids: whether ids of deleted rows may be used again
 * @error: return location for a #GError
 *
 * Adds a row with a new id, as TinyBase's `addRow()`: ids count up from
 * `"0"`, and with @reuse_row_ids the numeric ids of rows deleted as a
 * whole are used again first.
 *
 * Returns: (transfer full) (nullable): the new row id, or %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_add_row_json (TsMergeableStore  *self,
                                 const char        *table_id,
                                 const char        *json,
                                 gboolean           reuse_row_ids,
                                 GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  TsTable *table;
  char *row_id;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_id (table_id, error))
    return NULL;
  if ((doc = parse_json (json, &root, error)) == NULL || !validate_cells (root, error))
    return NULL;
  if (root->len == 0)
    {
      fail_empty (error);
      return NULL;
    }

  ts_mergeable_store_start_transaction (self);
  table = ts_stamp_tree_table (&self->tree, table_id, strlen (table_id), TRUE);
  row_id = ts_stamp_tree_next_row_id (&self->tree, table, reuse_row_ids);
  apply_row (self, doc, table, ts_table_row (table, row_id, strlen (row_id), TRUE), root, TRUE);
  ts_mergeable_store_finish_transaction (self);
  return row_id;
}

/* ---- GVariant ------------------------------------------------------------- */

static gboolean
variant_to_json (GString   *out,
                 GVariant  *v,
                 GError   **error)
{
  const GVariantType *type = g_variant_get_type (v);

  switch (g_variant_classify (v))
    {
    case G_VARIANT_CLASS_BOOLEAN:
      g_string_append (out, g_variant_get_boolean (v) ? "true" : "false");
      return TRUE;
    case G_VARIANT_CLASS_BYTE:
      ts_json_write_number (out, g_variant_get_byte (v));
      return TRUE;
    case G_VARIANT_CLASS_INT16:
      ts_json_write_number (out, g_variant_get_int16 (v));
      return TRUE;
    case G_VARIANT_CLASS_UINT16:
      ts_json_write_number (out, g_variant_get_uint16 (v));
      return TRUE;
    case G_VARIANT_CLASS_INT32:
      ts_json_write_number (out, g_variant_get_int32 (v));
      return TRUE;
    case G_VARIANT_CLASS_UINT32:
      ts_json_write_number (out, g_variant_get_uint32 (v));
      return TRUE;
    case G_VARIANT_CLASS_INT64:
      ts_json_write_number (out, (double) g_variant_get_int64 (v));
      return TRUE;
    case G_VARIANT_CLASS_UINT64:
      ts_json_write_number (out, (double) g_variant_get_uint64 (v));
      return TRUE;
    case G_VARIANT_CLASS_HANDLE:
      ts_json_write_number (out, g_variant_get_handle (v));
      return TRUE;
    case G_VARIANT_CLASS_DOUBLE:
      if (!isfinite (g_variant_get_double (v)))
        {
          g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CELL, _("Numbers must be finite"));
          return FALSE;
        }
      ts_json_write_number (out, g_variant_get_double (v));
      return TRUE;
    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
      {
        gsize len;
        const char *s = g_variant_get_string (v, &len);
        ts_json_write_string (out, s, len);
      }
      return TRUE;
    case G_VARIANT_CLASS_VARIANT:
      {
        g_autoptr(GVariant) inner = g_variant_get_variant (v);
        return variant_to_json (out, inner, error);
      }
    case G_VARIANT_CLASS_MAYBE:
      {
        g_autoptr(GVariant) inner = g_variant_get_maybe (v);
        if (inner == NULL)
          {
            g_string_append (out, "null");
            return TRUE;
          }
        return variant_to_json (out, inner, error);
      }
    case G_VARIANT_CLASS_ARRAY:
      {
        gsize n = g_variant_n_children (v);
        gboolean dict = g_variant_type_is_dict_entry (g_variant_type_element (type)) &&
                        g_variant_type_equal (g_variant_type_key (g_variant_type_element (type)),
                                              G_VARIANT_TYPE_STRING);

        if (g_variant_type_is_dict_entry (g_variant_type_element (type)) && !dict)
          break;
        g_string_append_c (out, dict ? '{' : '[');
        for (gsize i = 0; i < n; i++)
          {
            g_autoptr(GVariant) child = g_variant_get_child_value (v, i);

            if (i > 0)
              g_string_append_c (out, ',');
            if (dict)
              {
                g_autoptr(GVariant) key = g_variant_get_child_value (child, 0);
                g_autoptr(GVariant) val = g_variant_get_child_value (child, 1);
                gsize len;
                const char *s = g_variant_get_string (key, &len);

                ts_json_write_string (out, s, len);
                g_string_append_c (out, ':');
                if (!variant_to_json (out, val, error))
                  return FALSE;
              }
            else if (!variant_to_json (out, child, error))
              return FALSE;
          }
        g_string_append_c (out, dict ? '}' : ']');
        return TRUE;
      }
    case G_VARIANT_CLASS_TUPLE:
      {
        gsize n = g_variant_n_children (v);

        g_string_append_c (out, '[');
        for (gsize i = 0; i < n; i++)
          {
            g_autoptr(GVariant) child = g_variant_get_child_value (v, i);

            if (i > 0)
              g_string_append_c (out, ',');
            if (!variant_to_json (out, child, error))
              return FALSE;
          }
        g_string_append_c (out, ']');
        return TRUE;
      }
    default:
      break;
    }
  g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CELL,
               _("GVariant type “%s” cannot be stored in a cell"),
               g_variant_get_type_string (v));
  return FALSE;
}

static gboolean
variant_to_val (GVariant  *variant,
                TsVal     *out,
                GError   **error)
{
  g_autoptr(GString) json = g_string_new (NULL);
  g_autoptr(TsJsonDoc) doc = NULL;

  if (!variant_to_json (json, variant, error))
    return FALSE;
  doc = ts_json_parse (json->str, json->len, error);
  return doc != NULL && ts_val_from_json_cell (ts_json_doc_get_root (doc), out, error);
}

static GVariant *
node_to_variant (const TsJsonNode *node)
{
  switch (node->type)
    {
    case TS_JSON_NULL:
      return g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL);
    case TS_JSON_TRUE:
      return g_variant_new_boolean (TRUE);
    case TS_JSON_FALSE:
      return g_variant_new_boolean (FALSE);
    case TS_JSON_NUMBER:
      return g_variant_new_double (node->u.num);
    case TS_JSON_STRING:
      {
        g_autofree char *utf8 = ts_wtf8_to_utf8 (node->u.str, node->len, NULL);
        return g_variant_new_string (utf8 ? utf8 : node->u.str);
      }
    case TS_JSON_ARRAY:
      {
        GVariantBuilder b;

        g_variant_builder_init (&b, G_VARIANT_TYPE ("av"));
        for (guint32 i = 0; i < node->len; i++)
          g_variant_builder_add (&b, "v", node_to_variant (&node->u.items[i]));
        return g_variant_builder_end (&b);
      }
    case TS_JSON_OBJECT:
      {
        GVariantBuilder b;

        g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
        for (guint32 i = 0; i < node->len; i++)
          {
            g_autofree char *utf8 = ts_wtf8_to_utf8 (node->u.members[i].key,
                                                     node->u.members[i].key_len, NULL);
            g_variant_builder_add (&b, "{sv}", utf8 ? utf8 : node->u.members[i].key,
                                   node_to_variant (&node->u.members[i].value));
          }
        return g_variant_builder_end (&b);
      }
    default:
      g_assert_not_reached ();
    }
  return NULL;
}

static GVariant *
leaf_to_variant (const TsLeaf *leaf)
{
  g_autoptr(GString) json = g_string_new (NULL);
  g_autoptr(TsJsonDoc) doc = NULL;
  TsVal v;

  switch (leaf->kind)
    {
    case TS_VAL_NULL:
      return g_variant_ref_sink (g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL));
    case TS_VAL_TRUE:
    case TS_VAL_FALSE:
      return g_variant_ref_sink (g_variant_new_boolean (leaf->kind == TS_VAL_TRUE));
    case TS_VAL_NUMBER:
      return g_variant_ref_sink (g_variant_new_double (leaf->u.num));
    case TS_VAL_STRING:
      if (leaf->u.str->len < 3 || memcmp (leaf->u.str->data, "\xEF\xBF\xBD", 3) != 0)
        {
          g_autofree char *utf8 = ts_wtf8_to_utf8 (leaf->u.str->data, leaf->u.str->len, NULL);
          return g_variant_ref_sink (g_variant_new_string (utf8 ? utf8 : leaf->u.str->data));
        }
      break;
    default:
      break;
    }
  leaf_val (leaf, &v);
  ts_val_write_plain (json, &v);
  doc = ts_json_parse (json->str, json->len, NULL);
  g_assert (doc != NULL);
  return g_variant_ref_sink (node_to_variant (ts_json_doc_get_root (doc)));
}

/**
 * ts_mergeable_store_set_cell:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 * @value: the cell
 * @error: return location for a #GError
 *
 * Sets one cell from a #GVariant: `s` strings, `b` booleans, numbers of
 * any numeric type (stored as doubles), a `nothing` maybe (`mv`) for
 * `null`, `a{sv}` dictionaries for JSON objects and arrays or tuples for
 * JSON arrays; `v` is unwrapped. A floating @value is consumed.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_cell (TsMergeableStore  *self,
                             const char        *table_id,
                             const char        *row_id,
                             const char        *cell_id,
                             GVariant          *value,
                             GError           **error)
{
  g_autoptr(GVariant) owned = NULL;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  owned = g_variant_ref_sink (value);
  if (!check_id (table_id, error) || !check_id (row_id, error) || !check_id (cell_id, error))
    return FALSE;
  if (!variant_to_val (owned, &v, error))
    return FALSE;
  set_one_cell (self, table_id, row_id, cell_id, &v);
  return TRUE;
}

/**
 * ts_mergeable_store_get_cell:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 *
 * Gets one cell as a #GVariant: `s`, `d`, `b`, `mv` (nothing) for `null`,
 * `a{sv}` for objects and `av` for arrays.
 *
 * Returns: (transfer full) (nullable): the cell, or %NULL if absent
 *
 * Since: 1.0
 */
GVariant *
ts_mergeable_store_get_cell (TsMergeableStore *self,
                             const char       *table_id,
                             const char       *row_id,
                             const char       *cell_id)
{
  TsLeaf *leaf;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL, NULL);

  if (!ID_OK (table_id) || !ID_OK (row_id) || !ID_OK (cell_id))
    return NULL;
  leaf = find_live_leaf (self, find_live_row (self, table_id, row_id), cell_id);
  return leaf ? leaf_to_variant (leaf) : NULL;
}

/**
 * ts_mergeable_store_set_value:
 * @self: a store
 * @value_id: a value id
 * @value: the value
 * @error: return location for a #GError
 *
 * Sets one value from a #GVariant, with the types of
 * [method@Tinysync.MergeableStore.set_cell].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_value (TsMergeableStore  *self,
                              const char        *value_id,
                              GVariant          *value,
                              GError           **error)
{
  g_autoptr(GVariant) owned = NULL;
  TsVal v;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  owned = g_variant_ref_sink (value);
  if (!check_id (value_id, error))
    return FALSE;
  if (!variant_to_val (owned, &v, error))
    return FALSE;
  set_one_cell (self, NULL, NULL, value_id, &v);
  return TRUE;
}

/**
 * ts_mergeable_store_get_value:
 * @self: a store
 * @value_id: a value id
 *
 * Gets one value as a #GVariant, with the types of
 * [method@Tinysync.MergeableStore.get_cell].
 *
 * Returns: (transfer full) (nullable): the value, or %NULL if absent
 *
 * Since: 1.0
 */
GVariant *
ts_mergeable_store_get_value (TsMergeableStore *self,
                              const char       *value_id)
{
  TsLeaf *leaf;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (value_id != NULL, NULL);

  if (!ID_OK (value_id))
    return NULL;
  leaf = find_live_leaf (self, self->tree.values, value_id);
  return leaf ? leaf_to_variant (leaf) : NULL;
}

static void
set_simple (TsMergeableStore *self,
            const char       *table_id,
            const char       *row_id,
            const char       *cell_id,
            TsVal            *v)
{
  if (!ID_OK (cell_id) || (table_id != NULL && (!ID_OK (table_id) || !ID_OK (row_id))))
    {
      ts_val_clear (v);
      g_critical ("tinysync: ids must be valid UTF-8 strings");
      return;
    }
  set_one_cell (self, table_id, row_id, cell_id, v);
}

static gboolean
string_val (const char *value,
            TsVal      *v)
{
  gsize len = strlen (value);

  if (!g_utf8_validate (value, len, NULL) ||
      (len == 3 && memcmp (value, "\xEF\xBF\xBC", 3) == 0) ||
      (len >= 3 && memcmp (value, "\xEF\xBF\xBD", 3) == 0))
    {
      g_critical ("tinysync: invalid string cell “%s”", value);
      return FALSE;
    }
  v->kind = TS_VAL_STRING;
  v->u.str = ts_str_new (value, len);
  return TRUE;
}

static gboolean
number_val (double  value,
            TsVal  *v)
{
  if (!isfinite (value))
    {
      g_critical ("tinysync: cells and values must be finite numbers");
      return FALSE;
    }
  v->kind = TS_VAL_NUMBER;
  v->u.num = value == 0 ? 0 : value;
  return TRUE;
}

/**
 * ts_mergeable_store_set_cell_string:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 * @value: a UTF-8 string, not one of the reserved strings
 *
 * Sets a string cell.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_cell_string (TsMergeableStore *self,
                                    const char       *table_id,
                                    const char       *row_id,
                                    const char       *cell_id,
                                    const char       *value)
{
  TsVal v;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL && value != NULL);

  if (string_val (value, &v))
    set_simple (self, table_id, row_id, cell_id, &v);
}

/**
 * ts_mergeable_store_set_cell_number:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 * @value: a finite number
 *
 * Sets a number cell.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_cell_number (TsMergeableStore *self,
                                    const char       *table_id,
                                    const char       *row_id,
                                    const char       *cell_id,
                                    double            value)
{
  TsVal v;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL);

  if (number_val (value, &v))
    set_simple (self, table_id, row_id, cell_id, &v);
}

/**
 * ts_mergeable_store_set_cell_boolean:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 * @value: the boolean
 *
 * Sets a boolean cell.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_cell_boolean (TsMergeableStore *self,
                                     const char       *table_id,
                                     const char       *row_id,
                                     const char       *cell_id,
                                     gboolean          value)
{
  TsVal v = { value ? TS_VAL_TRUE : TS_VAL_FALSE, { 0 } };

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL);

  set_simple (self, table_id, row_id, cell_id, &v);
}

/**
 * ts_mergeable_store_set_value_string:
 * @self: a store
 * @value_id: a value id
 * @value: a UTF-8 string, not one of the reserved strings
 *
 * Sets a string value.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_value_string (TsMergeableStore *self,
                                     const char       *value_id,
                                     const char       *value)
{
  TsVal v;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (value_id != NULL && value != NULL);

  if (string_val (value, &v))
    set_simple (self, NULL, NULL, value_id, &v);
}

/**
 * ts_mergeable_store_set_value_number:
 * @self: a store
 * @value_id: a value id
 * @value: a finite number
 *
 * Sets a number value.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_value_number (TsMergeableStore *self,
                                     const char       *value_id,
                                     double            value)
{
  TsVal v;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (value_id != NULL);

  if (number_val (value, &v))
    set_simple (self, NULL, NULL, value_id, &v);
}

/**
 * ts_mergeable_store_set_value_boolean:
 * @self: a store
 * @value_id: a value id
 * @value: the boolean
 *
 * Sets a boolean value.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_set_value_boolean (TsMergeableStore *self,
                                      const char       *value_id,
                                      gboolean          value)
{
  TsVal v = { value ? TS_VAL_TRUE : TS_VAL_FALSE, { 0 } };

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (value_id != NULL);

  set_simple (self, NULL, NULL, value_id, &v);
}

/* ---- Ids and existence ---------------------------------------------------- */

static GStrv
ids_to_strv (const char **ids,
             const guint32 *lens,
             guint n)
{
  g_autofree guint32 *order = ts_json_property_order (ids, lens, n);
  GStrv out = g_new (char *, n + 1);

  for (guint j = 0; j < n; j++)
    {
      guint i = order ? order[j] : j;
      char *utf8 = ts_wtf8_to_utf8 (ids[i], lens[i], NULL);

      out[j] = utf8 ? utf8 : g_strndup (ids[i], lens[i]);
    }
  out[n] = NULL;
  return out;
}

/**
 * ts_mergeable_store_get_table_ids:
 * @self: a store
 *
 * Gets the ids of the tables, in the order of
 * [method@Tinysync.MergeableStore.get_tables_json].
 *
 * Returns: (transfer full): the table ids
 *
 * Since: 1.0
 */
GStrv
ts_mergeable_store_get_table_ids (TsMergeableStore *self)
{
  guint n;
  g_autofree TsTable **tables = NULL;
  g_autofree const char **ids = NULL;
  g_autofree guint32 *lens = NULL;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  tables = ts_stamp_tree_live_tables (&self->tree, &n);
  ids = g_new (const char *, n + 1);
  lens = g_new (guint32, n + 1);
  for (guint i = 0; i < n; i++)
    {
      ids[i] = tables[i]->id;
      lens[i] = tables[i]->id_len;
    }
  return ids_to_strv (ids, lens, n);
}

/**
 * ts_mergeable_store_get_row_ids:
 * @self: a store
 * @table_id: a table id
 *
 * Gets the ids of the rows of a table.
 *
 * Returns: (transfer full): the row ids (empty if there is no such table)
 *
 * Since: 1.0
 */
GStrv
ts_mergeable_store_get_row_ids (TsMergeableStore *self,
                                const char       *table_id)
{
  TsTable *table;
  guint n = 0;
  g_autofree TsRow **rows = NULL;
  g_autofree const char **ids = NULL;
  g_autofree guint32 *lens = NULL;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL, NULL);

  table = ID_OK (table_id) ? find_live_table (self, table_id) : NULL;
  if (table != NULL)
    rows = ts_table_live_rows (table, &n);
  ids = g_new (const char *, n + 1);
  lens = g_new (guint32, n + 1);
  for (guint i = 0; i < n; i++)
    {
      ids[i] = rows[i]->id;
      lens[i] = rows[i]->id_len;
    }
  return ids_to_strv (ids, lens, n);
}

static GStrv
leaf_ids (TsRow *row)
{
  guint n = 0;
  g_autofree guint32 *live = NULL;
  g_autofree const char **ids = NULL;
  g_autofree guint32 *lens = NULL;

  if (row != NULL)
    live = ts_row_live_leaves (row, &n);
  ids = g_new (const char *, n + 1);
  lens = g_new (guint32, n + 1);
  for (guint i = 0; i < n; i++)
    {
      ids[i] = row->leaves[live[i]].id->str;
      lens[i] = row->leaves[live[i]].id->len;
    }
  return ids_to_strv (ids, lens, n);
}

/**
 * ts_mergeable_store_get_cell_ids:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 *
 * Gets the ids of the cells of a row.
 *
 * Returns: (transfer full): the cell ids (empty if there is no such row)
 *
 * Since: 1.0
 */
GStrv
ts_mergeable_store_get_cell_ids (TsMergeableStore *self,
                                 const char       *table_id,
                                 const char       *row_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);
  g_return_val_if_fail (table_id != NULL && row_id != NULL, NULL);

  if (!ID_OK (table_id) || !ID_OK (row_id))
    return leaf_ids (NULL);
  return leaf_ids (find_live_row (self, table_id, row_id));
}

/**
 * ts_mergeable_store_get_value_ids:
 * @self: a store
 *
 * Gets the ids of the values.
 *
 * Returns: (transfer full): the value ids
 *
 * Since: 1.0
 */
GStrv
ts_mergeable_store_get_value_ids (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return leaf_ids (self->tree.values);
}

/**
 * ts_mergeable_store_has_tables:
 * @self: a store
 *
 * Whether the store has any table.
 *
 * Returns: %TRUE if there is a table
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_tables (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);

  return self->tree.n_live_tables > 0;
}

/**
 * ts_mergeable_store_has_table:
 * @self: a store
 * @table_id: a table id
 *
 * Whether a table exists.
 *
 * Returns: %TRUE if it exists
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_table (TsMergeableStore *self,
                              const char       *table_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (table_id != NULL, FALSE);

  return ID_OK (table_id) && find_live_table (self, table_id) != NULL;
}

/**
 * ts_mergeable_store_has_row:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 *
 * Whether a row exists.
 *
 * Returns: %TRUE if it exists
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_row (TsMergeableStore *self,
                            const char       *table_id,
                            const char       *row_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (table_id != NULL && row_id != NULL, FALSE);

  return ID_OK (table_id) && ID_OK (row_id) && find_live_row (self, table_id, row_id) != NULL;
}

/**
 * ts_mergeable_store_has_cell:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 *
 * Whether a cell exists.
 *
 * Returns: %TRUE if it exists
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_cell (TsMergeableStore *self,
                             const char       *table_id,
                             const char       *row_id,
                             const char       *cell_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL, FALSE);

  return ID_OK (table_id) && ID_OK (row_id) && ID_OK (cell_id) &&
         find_live_leaf (self, find_live_row (self, table_id, row_id), cell_id) != NULL;
}

/**
 * ts_mergeable_store_has_values:
 * @self: a store
 *
 * Whether the store has any value.
 *
 * Returns: %TRUE if there is a value
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_values (TsMergeableStore *self)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);

  return self->tree.values->n_live > 0;
}

/**
 * ts_mergeable_store_has_value:
 * @self: a store
 * @value_id: a value id
 *
 * Whether a value exists.
 *
 * Returns: %TRUE if it exists
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_has_value (TsMergeableStore *self,
                              const char       *value_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (value_id != NULL, FALSE);

  return ID_OK (value_id) && find_live_leaf (self, self->tree.values, value_id) != NULL;
}

/**
 * ts_mergeable_store_get_row_count:
 * @self: a store
 * @table_id: a table id
 *
 * Counts the rows of a table.
 *
 * Returns: the number of rows (0 if there is no such table)
 *
 * Since: 1.0
 */
guint
ts_mergeable_store_get_row_count (TsMergeableStore *self,
                                  const char       *table_id)
{
  TsTable *table;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), 0);
  g_return_val_if_fail (table_id != NULL, 0);

  table = ID_OK (table_id) ? find_live_table (self, table_id) : NULL;
  return table ? table->n_live : 0;
}

/* ---- Deleters ------------------------------------------------------------- */

/**
 * ts_mergeable_store_del_tables:
 * @self: a store
 *
 * Deletes all tables (every cell gets a deletion stamp).
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_tables (TsMergeableStore *self)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  ts_mergeable_store_start_transaction (self);
  ts_stamp_tree_del_tables (&self->tree);
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_del_table:
 * @self: a store
 * @table_id: a table id
 *
 * Deletes a table.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_table (TsMergeableStore *self,
                              const char       *table_id)
{
  TsTable *table;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL);

  ts_mergeable_store_start_transaction (self);
  table = ID_OK (table_id) ? find_live_table (self, table_id) : NULL;
  if (table != NULL)
    ts_stamp_tree_del_table (&self->tree, table);
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_del_row:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 *
 * Deletes a row.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_row (TsMergeableStore *self,
                            const char       *table_id,
                            const char       *row_id)
{
  TsRow *row;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL && row_id != NULL);

  ts_mergeable_store_start_transaction (self);
  row = ID_OK (table_id) && ID_OK (row_id) ? find_live_row (self, table_id, row_id) : NULL;
  if (row != NULL)
    ts_stamp_tree_del_row (&self->tree, find_live_table (self, table_id), row, TRUE);
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_del_cell:
 * @self: a store
 * @table_id: a table id
 * @row_id: a row id
 * @cell_id: a cell id
 *
 * Deletes a cell; the row (and table) goes with its last cell.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_cell (TsMergeableStore *self,
                             const char       *table_id,
                             const char       *row_id,
                             const char       *cell_id)
{
  TsRow *row;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (table_id != NULL && row_id != NULL && cell_id != NULL);

  ts_mergeable_store_start_transaction (self);
  row = ID_OK (table_id) && ID_OK (row_id) && ID_OK (cell_id) ?
        find_live_row (self, table_id, row_id) : NULL;
  if (row != NULL)
    {
      TsAtom *atom = ts_stamp_tree_atom (&self->tree, cell_id, strlen (cell_id), FALSE);
      TsVal undef = { TS_VAL_UNDEFINED, { 0 } };

      if (atom != NULL)
        ts_stamp_tree_set_cell (&self->tree, find_live_table (self, table_id), row, atom, &undef);
    }
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_del_values:
 * @self: a store
 *
 * Deletes all values.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_values (TsMergeableStore *self)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  ts_mergeable_store_start_transaction (self);
  ts_stamp_tree_del_values (&self->tree);
  ts_mergeable_store_finish_transaction (self);
}

/**
 * ts_mergeable_store_del_value:
 * @self: a store
 * @value_id: a value id
 *
 * Deletes a value.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_value (TsMergeableStore *self,
                              const char       *value_id)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (value_id != NULL);

  ts_mergeable_store_start_transaction (self);
  if (ID_OK (value_id))
    {
      TsAtom *atom = ts_stamp_tree_atom (&self->tree, value_id, strlen (value_id), FALSE);
      TsVal undef = { TS_VAL_UNDEFINED, { 0 } };

      if (atom != NULL)
        ts_stamp_tree_set_value (&self->tree, atom, &undef);
    }
  ts_mergeable_store_finish_transaction (self);
}

/* ---- Mergeable API -------------------------------------------------------- */

/**
 * ts_mergeable_store_get_mergeable_content_json:
 * @self: a store
 *
 * Gets the whole stamp tree, TinyBase's `getMergeableContent()` in the
 * encoded form its synchronizers and persisters write:
 * `[[{tableId:[{rowId:[{cellId:[cell,hlc,hash]},hlc,hash]},hlc,hash]},hlc,hash],[{valueId:[value,hlc,hash]},hlc,hash]]`,
 * with deleted cells as `"\uFFFC"`.
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_content_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (1024);
  ts_stamp_tree_write_content (&self->tree, out);
  return finish_string (out);
}

/**
 * ts_mergeable_store_set_mergeable_content_json:
 * @self: a store
 * @json: JSON text of mergeable content (encoded form)
 * @error: return location for a #GError
 *
 * Replaces everything with the given stamp tree, trusting its hashes, as
 * TinyBase's `setMergeableContent()`. Persisters load with this.
 *
 * Content that fails TinyBase's validation (PROTOCOL.md §9.3: a stamp of
 * the wrong shape, an invalid HLC or one more than five minutes ahead of
 * the store's clock) changes nothing and sets %TS_ERROR_INVALID_CONTENT.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_set_mergeable_content_json (TsMergeableStore  *self,
                                               const char        *json,
                                               GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return _ts_mergeable_store_set_content_text (self, json, TRUE, error);
}

/* Closes a transaction that changed nothing without announcing it */
static void
abort_transaction (TsMergeableStore *self)
{
  GArray *log = ts_stamp_tree_end (&self->tree);

  if (log != NULL)
    self->tree.log_deferred = FALSE;
  ts_stamp_tree_free_log (log);
}

gboolean
_ts_mergeable_store_set_content_text (TsMergeableStore  *self,
                                      const char        *json,
                                      gboolean           fast,
                                      GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  /* Straight from the text when it can; it declines, changing nothing,
   * whatever the generic path has to judge. */
  if (fast && json != NULL)
    {
      ts_mergeable_store_start_transaction (self);
      if (ts_stamp_tree_set_content_text (&self->tree, json, strlen (json)))
        {
          ts_mergeable_store_finish_transaction (self);
          return TRUE;
        }
      abort_transaction (self);
    }

  if ((doc = parse_json (json, &root, error)) == NULL)
    return FALSE;
  return _ts_mergeable_store_set_content_node (self, root, error);
}

gboolean
_ts_mergeable_store_set_content_node (TsMergeableStore  *self,
                                      const TsJsonNode  *root,
                                      GError           **error)
{
  gboolean ok;

  ts_mergeable_store_start_transaction (self);
  ok = ts_stamp_tree_set_content (&self->tree, root, error);
  if (ok)
    ts_mergeable_store_finish_transaction (self);
  else
    abort_transaction (self);
  return ok;
}

gboolean
_ts_mergeable_store_apply_changes_node (TsMergeableStore  *self,
                                        const TsJsonNode  *root,
                                        GError           **error)
{
  gboolean ok;

  ts_mergeable_store_start_transaction (self);
  ok = ts_stamp_tree_apply_changes (&self->tree, root, error);
  if (ok)
    ts_mergeable_store_finish_transaction (self);
  else
    abort_transaction (self);
  return ok;
}

/**
 * ts_mergeable_store_apply_mergeable_changes_json:
 * @self: a store
 * @json: JSON text of mergeable changes or content (encoded form)
 * @error: return location for a #GError
 *
 * Merges changes (`[tables, values, 1]`, stamps with or without hashes)
 * or content (`[tables, values]`) into the store: each incoming cell or
 * value wins if its HLC is later than the local one, as TinyBase's
 * `applyMergeableChanges()`. Invalid input changes nothing and sets
 * %TS_ERROR_INVALID_CONTENT.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_mergeable_store_apply_mergeable_changes_json (TsMergeableStore  *self,
                                                 const char        *json,
                                                 GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((doc = parse_json (json, &root, error)) == NULL)
    return FALSE;
  return _ts_mergeable_store_apply_changes_node (self, root, error);
}

/**
 * ts_mergeable_store_merge:
 * @self: a store
 * @other: another store
 *
 * Merges two stores both ways, so that both end with the same content and
 * hashes (TinyBase's `merge()`, but through the encoded form, so object
 * and array cells converge too). As in TinyBase, a side whose content the
 * other store rejects (an HLC more than five minutes ahead of its clock)
 * is ignored.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_merge (TsMergeableStore *self,
                          TsMergeableStore *other)
{
  g_autofree char *mine = NULL;
  g_autofree char *theirs = NULL;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));
  g_return_if_fail (TS_IS_MERGEABLE_STORE (other));

  /* Content that the receiving store rejects (an HLC more than five
   * minutes ahead of its clock) is ignored, as TinyBase does. */
  mine = ts_mergeable_store_get_mergeable_content_json (self);
  theirs = ts_mergeable_store_get_mergeable_content_json (other);
  if (!ts_mergeable_store_apply_mergeable_changes_json (other, mine, &error))
    g_debug ("Merging into store %s ignored: %s", other->unique_id, error->message);
  g_clear_error (&error);
  if (!ts_mergeable_store_apply_mergeable_changes_json (self, theirs, &error))
    g_debug ("Merging into store %s ignored: %s", self->unique_id, error->message);
}

void
_ts_mergeable_store_write_transaction_changes (TsMergeableStore *self,
                                               GString          *out,
                                               gboolean          with_hashes)
{
  GArray *log = self->tree.txn_depth > 0 ? self->tree.changes : self->finished_log;
  g_autoptr(GArray) empty = NULL;

  if (self->tree.txn_depth > 0)
    ts_stamp_tree_expand_log (&self->tree, log);

  if (log == NULL)
    log = empty = g_array_new (FALSE, FALSE, sizeof (TsChange));
  ts_stamp_tree_write_transaction_changes (&self->tree, log, out, with_hashes);
}

/**
 * ts_mergeable_store_get_transaction_mergeable_changes_json:
 * @self: a store
 * @with_hashes: whether stamps carry their hashes
 *
 * Describes the open transaction, or — in a
 * [signal@Tinysync.MergeableStore::transaction-finished] handler — the one
 * that just finished: the current stamp of every cell and value whose
 * value changed during it, as TinyBase's `getTransactionMergeableChanges()`
 * in encoded form. Without hashes, this is exactly the ContentDiff a
 * synchronizer broadcasts. Outside of both, it describes an empty
 * transaction.
 *
 * Returns: (transfer full): JSON text of `[tables, values, 1]`
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_transaction_mergeable_changes_json (TsMergeableStore *self,
                                                           gboolean          with_hashes)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (256);
  _ts_mergeable_store_write_transaction_changes (self, out, with_hashes);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_mergeable_content_hashes:
 * @self: a store
 * @tables_hash: (out) (optional): the hash of all tables
 * @values_hash: (out) (optional): the hash of all values
 *
 * Gets the two top-level hashes, TinyBase's
 * `getMergeableContentHashes()`. Stores with equal hashes hold the same
 * stamps.
 *
 * Since: 1.0
 */
void
ts_mergeable_store_get_mergeable_content_hashes (TsMergeableStore *self,
                                                 guint32          *tables_hash,
                                                 guint32          *values_hash)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  if (tables_hash != NULL)
    *tables_hash = self->tree.tables_hash;
  if (values_hash != NULL)
    *values_hash = self->tree.values->hash;
}

/**
 * ts_mergeable_store_get_mergeable_table_hashes_json:
 * @self: a store
 *
 * Gets `{tableId: hash}` for every table stamp (TinyBase's
 * `getMergeableTableHashes()`).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_table_hashes_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (64);
  ts_stamp_tree_write_table_hashes (&self->tree, out);
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_mergeable_value_hashes_json:
 * @self: a store
 *
 * Gets `{valueId: hash}` for every value stamp (TinyBase's
 * `getMergeableValueHashes()`).
 *
 * Returns: (transfer full): JSON text
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_value_hashes_json (TsMergeableStore *self)
{
  GString *out;

  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  out = g_string_sized_new (64);
  ts_stamp_tree_write_value_hashes (&self->tree, out);
  return finish_string (out);
}

typedef gboolean (*DiffFunc) (TsStampTree *, TsJsonDoc *, const TsJsonNode *, GString *, GError **);

static char *
run_diff (TsMergeableStore  *self,
          const char        *json,
          DiffFunc           func,
          GError           **error)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  GString *out;

  if ((doc = parse_json (json, &root, error)) == NULL)
    return NULL;
  out = g_string_sized_new (256);
  if (!func (&self->tree, doc, root, out, error))
    {
      g_string_free (out, TRUE);
      return NULL;
    }
  return finish_string (out);
}

/**
 * ts_mergeable_store_get_mergeable_table_diff_json:
 * @self: a store
 * @other_table_hashes_json: another store's table hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableTableDiff()`: `[newTables, differingTableHashes]`
 * where newTables holds the whole tables the other store lacks.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_table_diff_json (TsMergeableStore  *self,
                                                  const char        *other_table_hashes_json,
                                                  GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_table_hashes_json, ts_stamp_tree_write_table_diff, error);
}

/**
 * ts_mergeable_store_get_mergeable_row_hashes_json:
 * @self: a store
 * @other_table_hashes_json: another store's (differing) table hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableRowHashes()`: `{tableId: {rowId: hash}}` for the
 * tables whose hash differs.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_row_hashes_json (TsMergeableStore  *self,
                                                  const char        *other_table_hashes_json,
                                                  GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_table_hashes_json, ts_stamp_tree_write_row_hashes, error);
}

/**
 * ts_mergeable_store_get_mergeable_row_diff_json:
 * @self: a store
 * @other_table_row_hashes_json: another store's row hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableRowDiff()`: `[newRows, differingRowHashes]`.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_row_diff_json (TsMergeableStore  *self,
                                                const char        *other_table_row_hashes_json,
                                                GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_table_row_hashes_json, ts_stamp_tree_write_row_diff, error);
}

/**
 * ts_mergeable_store_get_mergeable_cell_hashes_json:
 * @self: a store
 * @other_table_row_hashes_json: another store's (differing) row hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableCellHashes()`:
 * `{tableId: {rowId: {cellId: hash}}}` for the rows whose hash differs.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_cell_hashes_json (TsMergeableStore  *self,
                                                   const char        *other_table_row_hashes_json,
                                                   GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_table_row_hashes_json, ts_stamp_tree_write_cell_hashes, error);
}

/**
 * ts_mergeable_store_get_mergeable_cell_diff_json:
 * @self: a store
 * @other_table_row_cell_hashes_json: another store's cell hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableCellDiff()`: a tables stamp of the cells whose
 * hash differs.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_cell_diff_json (TsMergeableStore  *self,
                                                 const char        *other_table_row_cell_hashes_json,
                                                 GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_table_row_cell_hashes_json, ts_stamp_tree_write_cell_diff, error);
}

/**
 * ts_mergeable_store_get_mergeable_value_diff_json:
 * @self: a store
 * @other_value_hashes_json: another store's value hashes
 * @error: return location for a #GError
 *
 * TinyBase's `getMergeableValueDiff()`: a values stamp of the values whose
 * hash differs.
 *
 * Returns: (transfer full) (nullable): JSON text, %NULL on error
 *
 * Since: 1.0
 */
char *
ts_mergeable_store_get_mergeable_value_diff_json (TsMergeableStore  *self,
                                                  const char        *other_value_hashes_json,
                                                  GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), NULL);

  return run_diff (self, other_value_hashes_json, ts_stamp_tree_write_value_diff, error);
}

/* ---- Listeners ------------------------------------------------------------ */

static gulong
add_listener (TsMergeableStore *self,
              ListenerKind      kind,
              const char       *table_id,
              const char       *row_id,
              const char       *cell_id,
              gpointer          func,
              gpointer          user_data,
              GDestroyNotify    notify)
{
  Listener *l = g_new0 (Listener, 1);

  l->id = self->next_listener_id++;
  l->kind = kind;
  l->table_id = g_strdup (table_id);
  l->row_id = g_strdup (row_id);
  l->cell_id = g_strdup (cell_id);
  l->func = func;
  l->user_data = user_data;
  l->notify = notify;
  g_ptr_array_add (self->listeners, l);
  return l->id;
}

/**
 * ts_mergeable_store_add_cell_listener:
 * @self: a store
 * @table_id: (nullable): a table id, or %NULL for any
 * @row_id: (nullable): a row id, or %NULL for any
 * @cell_id: (nullable): a cell id, or %NULL for any
 * @func: (scope notified) (closure user_data) (destroy notify): the listener
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data when the listener is removed
 *
 * Adds a TinyBase-style cell listener: @func runs for every changed cell
 * matching the ids (%NULL is a wildcard) after the outermost transaction.
 *
 * Returns: the listener id, for [method@Tinysync.MergeableStore.del_listener]
 *
 * Since: 1.0
 */
gulong
ts_mergeable_store_add_cell_listener (TsMergeableStore   *self,
                                      const char         *table_id,
                                      const char         *row_id,
                                      const char         *cell_id,
                                      TsCellListenerFunc  func,
                                      gpointer            user_data,
                                      GDestroyNotify      notify)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  return add_listener (self, LISTENER_CELL, table_id, row_id, cell_id, func, user_data, notify);
}

/**
 * ts_mergeable_store_add_row_listener:
 * @self: a store
 * @table_id: (nullable): a table id, or %NULL for any
 * @row_id: (nullable): a row id, or %NULL for any
 * @func: (scope notified) (closure user_data) (destroy notify): the listener
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data when the listener is removed
 *
 * Adds a listener for rows with changed cells.
 *
 * Returns: the listener id
 *
 * Since: 1.0
 */
gulong
ts_mergeable_store_add_row_listener (TsMergeableStore  *self,
                                     const char        *table_id,
                                     const char        *row_id,
                                     TsRowListenerFunc  func,
                                     gpointer           user_data,
                                     GDestroyNotify     notify)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  return add_listener (self, LISTENER_ROW, table_id, row_id, NULL, func, user_data, notify);
}

/**
 * ts_mergeable_store_add_table_listener:
 * @self: a store
 * @table_id: (nullable): a table id, or %NULL for any
 * @func: (scope notified) (closure user_data) (destroy notify): the listener
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data when the listener is removed
 *
 * Adds a listener for tables with changed cells.
 *
 * Returns: the listener id
 *
 * Since: 1.0
 */
gulong
ts_mergeable_store_add_table_listener (TsMergeableStore    *self,
                                       const char          *table_id,
                                       TsTableListenerFunc  func,
                                       gpointer             user_data,
                                       GDestroyNotify       notify)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  return add_listener (self, LISTENER_TABLE, table_id, NULL, NULL, func, user_data, notify);
}

/**
 * ts_mergeable_store_add_value_listener:
 * @self: a store
 * @value_id: (nullable): a value id, or %NULL for any
 * @func: (scope notified) (closure user_data) (destroy notify): the listener
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data when the listener is removed
 *
 * Adds a listener for changed values.
 *
 * Returns: the listener id
 *
 * Since: 1.0
 */
gulong
ts_mergeable_store_add_value_listener (TsMergeableStore    *self,
                                       const char          *value_id,
                                       TsValueListenerFunc  func,
                                       gpointer             user_data,
                                       GDestroyNotify       notify)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  return add_listener (self, LISTENER_VALUE, NULL, NULL, value_id, func, user_data, notify);
}

/**
 * ts_mergeable_store_del_listener:
 * @self: a store
 * @listener_id: an id from one of the `add_*_listener` functions
 *
 * Removes a listener (safe from inside a listener).
 *
 * Since: 1.0
 */
void
ts_mergeable_store_del_listener (TsMergeableStore *self,
                                 gulong            listener_id)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (self));

  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *l = self->listeners->pdata[i];

      if (l->id != listener_id || l->func == NULL)
        continue;
      /* Only mark it: while listeners run (maybe this very one), freeing
       * its data would pull it from under the caller. The data is released
       * when the list is compacted, right away or after the emission. */
      l->func = NULL;
      self->listeners_dirty = TRUE;
      compact_listeners (self);
      return;
    }
}

/* ---- Private API ---------------------------------------------------------- */

gboolean
_ts_mergeable_store_transaction_changed (TsMergeableStore *self)
{
  GArray *log = self->tree.txn_depth > 0 ? self->tree.changes : self->finished_log;

  if (self->tree.txn_depth > 0)
    ts_stamp_tree_expand_log (&self->tree, log);
  return log != NULL && log->len > 0;
}

guint64
_ts_mergeable_store_get_unlisted_writes (TsMergeableStore *self)
{
  return self->tree.unlisted_writes;
}

gboolean
_ts_mergeable_store_is_empty (TsMergeableStore *self)
{
  return self->tree.n_tables == 0 && self->tree.values->n_leaves == 0;
}

gboolean
_ts_mergeable_store_apply_parts (TsMergeableStore  *self,
                                 const TsJsonNode **tables_parts,
                                 guint              n_tables_parts,
                                 const TsJsonNode  *values_part,
                                 GError           **error)
{
  TsJsonNode empty_object = { TS_JSON_OBJECT, 0, { 0 } };
  TsJsonNode empty_values = { TS_JSON_ARRAY, 1, { 0 } };
  TsJsonNode empty_tables = { TS_JSON_ARRAY, 1, { 0 } };
  g_autofree TsJsonNode *changes = g_new0 (TsJsonNode, (n_tables_parts + 1) * 4);
  guint n = 0;

  empty_values.u.items = &empty_object;
  empty_tables.u.items = &empty_object;

  /* one synthetic [tables, values, 1] per part: items are laid out as
   * node, then its three items */
  for (guint i = 0; i <= n_tables_parts; i++)
    {
      TsJsonNode *node = &changes[n * 4];
      TsJsonNode *items = node + 1;

      if (i < n_tables_parts)
        {
          items[0] = *tables_parts[i];
          items[1] = empty_values;
        }
      else
        {
          items[0] = empty_tables;
          items[1] = values_part ? *values_part : empty_values;
        }
      items[2].type = TS_JSON_NUMBER;
      items[2].u.num = 1;
      node->type = TS_JSON_ARRAY;
      node->len = 3;
      node->u.items = items;
      if (!ts_stamp_tree_validate_changes (&self->tree, node, error))
        return FALSE;
      n++;
    }

  ts_mergeable_store_start_transaction (self);
  for (guint i = 0; i < n; i++)
    ts_stamp_tree_merge_changes (&self->tree, &changes[i * 4]);
  ts_mergeable_store_finish_transaction (self);
  return TRUE;
}

TsStampTree *
_ts_mergeable_store_get_tree (TsMergeableStore *self)
{
  return &self->tree;
}
