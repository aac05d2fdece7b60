/* ts-table-ids-model.c: a GListModel of the table ids of a TsMergeableStore
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdlib.h>

#include "ts-id-object.h"
#include "ts-table-ids-model.h"
#include "ts-table-model-private.h"

/**
 * TsTableIdsModel:
 *
 * A [iface@Gio.ListModel] of the ids of the tables of a
 * [class@Tinysync.MergeableStore], as [class@Tinysync.IdObject]s, for a
 * `GtkDropDown`, a sidebar or a `GtkTreeListModel` whose children are
 * [class@Tinysync.TableModel]s.
 *
 * The ids are sorted by UTF-16 code units, like the row ids of a
 * [class@Tinysync.TableModel] (wrap the model in a `GtkSortListModel` for
 * another order). A table is listed while it has a row. The model follows
 * local and merged changes and updates itself once per transaction, when
 * the store emits [signal@Tinysync.MergeableStore::tables-changed], with
 * one exact [signal@Gio.ListModel::items-changed] emission per run of
 * adjacent ids that appeared or disappeared. The item of a table stays
 * the same object while the table exists.
 *
 * Since: 1.0
 */

struct _TsTableIdsModel
{
  GObject           parent_instance;

  TsMergeableStore *store;
  GPtrArray        *items;    /* of TsIdObject (owned), sorted */
  GHashTable       *pending;  /* table ids announced, not applied */
  gboolean          flushing;

  gulong            table_listener;
  gulong            tables_handler;
};

static void ts_table_ids_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsTableIdsModel, ts_table_ids_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      ts_table_ids_model_list_model_init))

enum {
  PROP_0,
  PROP_STORE,
  PROP_ITEM_TYPE,
  PROP_N_ITEMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

typedef struct {
  char  *id;     /* added: the id (borrowed from the batch) */
  guint  pos;    /* removed: the position */
  guint  gap;    /* untouched ids before */
} IdChange;

/* The number of items whose id sorts before @id; *found tells whether
 * the next one is @id. */
static guint
lower_bound (TsTableIdsModel *self,
             const char      *id,
             gboolean        *found)
{
  guint lo = 0, hi = self->items->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;

      if (_ts_compare_code_units (ts_id_object_get_id (self->items->pdata[mid]), id) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  if (found != NULL)
    *found = lo < self->items->len &&
             _ts_compare_code_units (ts_id_object_get_id (self->items->pdata[lo]), id) == 0;
  return lo;
}

static int
compare_changes_by_pos (gconstpointer a,
                        gconstpointer b)
{
  const IdChange *ca = a, *cb = b;

  return ca->pos < cb->pos ? -1 : ca->pos > cb->pos;
}

static int
compare_changes_by_id (gconstpointer a,
                       gconstpointer b)
{
  return _ts_compare_code_units (((const IdChange *) a)->id, ((const IdChange *) b)->id);
}

static void
apply_batch (TsTableIdsModel *self,
             GHashTable      *batch)
{
  g_autoptr(GArray) removed = g_array_new (FALSE, FALSE, sizeof (IdChange));
  g_autoptr(GArray) added = g_array_new (FALSE, FALSE, sizeof (IdChange));
  IdChange *rem, *add;
  GHashTableIter it;
  gpointer key;
  guint i = 0, j = 0;

  g_hash_table_iter_init (&it, batch);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      gboolean found, exists = ts_mergeable_store_has_table (self->store, key);
      IdChange change = { key, lower_bound (self, key, &found), 0 };

      if (found && !exists)
        g_array_append_val (removed, change);
      else if (!found && exists)
        g_array_append_val (added, change);
    }

  g_array_sort (removed, compare_changes_by_pos);
  rem = (IdChange *) (gpointer) removed->data;
  for (guint k = 0; k < removed->len; k++)
    rem[k].gap = rem[k].pos - k;

  g_array_sort (added, compare_changes_by_id);
  add = (IdChange *) (gpointer) added->data;
  for (guint k = 0; k < added->len; k++)
    {
      guint lo = 0, hi = removed->len;

      while (lo < hi)
        {
          guint mid = lo + (hi - lo) / 2;

          if (_ts_compare_code_units (ts_id_object_get_id (self->items->pdata[rem[mid].pos]),
                                      add[k].id) < 0)
            lo = mid + 1;
          else
            hi = mid;
        }
      add[k].gap = add[k].pos - lo;
    }

  /* one emission per gap between untouched ids, the list holding it */
  while (i < removed->len || j < added->len)
    {
      guint gap = MIN (i < removed->len ? rem[i].gap : G_MAXUINT,
                       j < added->len ? add[j].gap : G_MAXUINT);
      guint r0 = i, a0 = j, position = gap + a0;

      while (i < removed->len && rem[i].gap == gap)
        i++;
      while (j < added->len && add[j].gap == gap)
        j++;
      if (i > r0)
        g_ptr_array_remove_range (self->items, position, i - r0);
      for (guint k = a0; k < j; k++)
        g_ptr_array_insert (self->items, position + (k - a0), ts_id_object_new (add[k].id));

      g_list_model_items_changed (G_LIST_MODEL (self), position, i - r0, j - a0);
      if (i - r0 != j - a0)
        g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
    }
}

static void
flush (TsTableIdsModel *self)
{
  if (self->flushing || self->store == NULL)
    return;

  g_object_ref (self);
  self->flushing = TRUE;
  while (g_hash_table_size (self->pending) > 0)
    {
      g_autoptr(GHashTable) batch = self->pending;

      self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      apply_batch (self, batch);
    }
  self->flushing = FALSE;
  g_object_unref (self);
}

static void
on_table_changed (TsMergeableStore *store,
                  const char       *table_id,
                  gpointer          user_data)
{
  TsTableIdsModel *self = user_data;

  if (!g_hash_table_contains (self->pending, table_id))
    g_hash_table_add (self->pending, g_strdup (table_id));
}

static void
on_tables_changed (TsMergeableStore *store,
                   TsTableIdsModel  *self)
{
  if (g_hash_table_size (self->pending) > 0)
    flush (self);
}

/* ---- GListModel ---------------------------------------------------------- */

static GType
ts_table_ids_model_get_item_type (GListModel *list)
{
  return TS_TYPE_ID_OBJECT;
}

static guint
ts_table_ids_model_get_n_items (GListModel *list)
{
  return TS_TABLE_IDS_MODEL (list)->items->len;
}

static gpointer
ts_table_ids_model_get_item (GListModel *list,
                             guint       position)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (list);

  if (position >= self->items->len)
    return NULL;
  return g_object_ref (self->items->pdata[position]);
}

static void
ts_table_ids_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = ts_table_ids_model_get_item_type;
  iface->get_n_items = ts_table_ids_model_get_n_items;
  iface->get_item = ts_table_ids_model_get_item;
}

/* ---- GObject ------------------------------------------------------------- */

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return _ts_compare_code_units (*(char * const *) a, *(char * const *) b);
}

static void
ts_table_ids_model_constructed (GObject *object)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (object);
  g_auto(GStrv) ids = NULL;
  gsize n;

  G_OBJECT_CLASS (ts_table_ids_model_parent_class)->constructed (object);

  if (self->store == NULL)
    {
      g_critical ("TsTableIdsModel needs a store");
      return;
    }

  /* removed in dispose, which runs before the model is freed */
  self->table_listener = ts_mergeable_store_add_table_listener (self->store, NULL,
                                                                on_table_changed, self, NULL);
  self->tables_handler = g_signal_connect_object (self->store, "tables-changed",
                                                  G_CALLBACK (on_tables_changed), self, 0);

  ids = ts_mergeable_store_get_table_ids (self->store);
  n = g_strv_length (ids);
  qsort (ids, n, sizeof (char *), compare_strings);
  for (gsize i = 0; i < n; i++)
    g_ptr_array_add (self->items, ts_id_object_new (ids[i]));
}

static void
ts_table_ids_model_dispose (GObject *object)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (object);

  if (self->store != NULL)
    {
      if (self->table_listener != 0)
        ts_mergeable_store_del_listener (self->store, self->table_listener);
      self->table_listener = 0;
      g_clear_signal_handler (&self->tables_handler, self->store);
    }
  g_clear_object (&self->store);

  G_OBJECT_CLASS (ts_table_ids_model_parent_class)->dispose (object);
}

static void
ts_table_ids_model_finalize (GObject *object)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (object);

  g_ptr_array_unref (self->items);
  g_hash_table_unref (self->pending);

  G_OBJECT_CLASS (ts_table_ids_model_parent_class)->finalize (object);
}

static void
ts_table_ids_model_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, self->store);
      break;
    case PROP_ITEM_TYPE:
      g_value_set_gtype (value, TS_TYPE_ID_OBJECT);
      break;
    case PROP_N_ITEMS:
      g_value_set_uint (value, self->items->len);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_table_ids_model_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  TsTableIdsModel *self = TS_TABLE_IDS_MODEL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      self->store = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_table_ids_model_class_init (TsTableIdsModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_table_ids_model_constructed;
  object_class->dispose = ts_table_ids_model_dispose;
  object_class->finalize = ts_table_ids_model_finalize;
  object_class->get_property = ts_table_ids_model_get_property;
  object_class->set_property = ts_table_ids_model_set_property;

  /**
   * TsTableIdsModel:store: (getter get_store)
   *
   * The store whose table ids the model lists.
   *
   * Since: 1.0
   */
  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, TS_TYPE_MERGEABLE_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsTableIdsModel:item-type:
   *
   * The type of the items: always [class@Tinysync.IdObject].
   *
   * Since: 1.0
   */
  properties[PROP_ITEM_TYPE] =
    g_param_spec_gtype ("item-type", NULL, NULL, G_TYPE_OBJECT,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * TsTableIdsModel:n-items:
   *
   * The number of tables, notified when it changes.
   *
   * Since: 1.0
   */
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_table_ids_model_init (TsTableIdsModel *self)
{
  self->items = g_ptr_array_new_with_free_func (g_object_unref);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

/**
 * ts_table_ids_model_new:
 * @store: a store
 *
 * Creates a list model of the ids of the store's tables.
 *
 * Returns: (transfer full): a new model
 *
 * Since: 1.0
 */
TsTableIdsModel *
ts_table_ids_model_new (TsMergeableStore *store)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);

  return g_object_new (TS_TYPE_TABLE_IDS_MODEL, "store", store, NULL);
}

/**
 * ts_table_ids_model_get_store: (get-property store)
 * @self: a table ids model
 *
 * Gets the store whose table ids the model lists.
 *
 * Returns: (transfer none): the store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_table_ids_model_get_store (TsTableIdsModel *self)
{
  g_return_val_if_fail (TS_IS_TABLE_IDS_MODEL (self), NULL);

  return self->store;
}

/**
 * ts_table_ids_model_get_id:
 * @self: a table ids model
 * @position: a position
 *
 * Gets the table id at @position without a new reference to its item.
 *
 * Returns: (transfer none) (nullable): the table id, valid while the
 *   table is listed, or %NULL if @position is past the end
 *
 * Since: 1.0
 */
const char *
ts_table_ids_model_get_id (TsTableIdsModel *self,
                           guint            position)
{
  g_return_val_if_fail (TS_IS_TABLE_IDS_MODEL (self), NULL);

  if (position >= self->items->len)
    return NULL;
  return ts_id_object_get_id (self->items->pdata[position]);
}

/**
 * ts_table_ids_model_find:
 * @self: a table ids model
 * @table_id: a table id
 * @position: (out) (optional): where to store the position of the table
 *
 * Finds the position of a table, in O(log n).
 *
 * Returns: %TRUE if the model lists the table
 *
 * Since: 1.0
 */
gboolean
ts_table_ids_model_find (TsTableIdsModel *self,
                         const char      *table_id,
                         guint           *position)
{
  gboolean found;
  guint pos;

  g_return_val_if_fail (TS_IS_TABLE_IDS_MODEL (self), FALSE);
  g_return_val_if_fail (table_id != NULL, FALSE);

  pos = lower_bound (self, table_id, &found);
  if (found && position != NULL)
    *position = pos;
  return found;
}
