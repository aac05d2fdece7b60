/* ts-row-object.c: one row of a TsMergeableStore table as a GObject
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "ts-row-object.h"
#include "ts-row-object-private.h"

/**
 * TsRowObject:
 *
 * One row of a table of a [class@Tinysync.MergeableStore], as an object
 * that list widgets can show: the items of a [class@Tinysync.TableModel].
 *
 * A row object holds no data of its own: it names a row
 * ([property@Tinysync.RowObject:store],
 * [property@Tinysync.RowObject:table-id] and
 * [property@Tinysync.RowObject:row-id]) and reads its cells from the
 * store when asked ([method@Tinysync.RowObject.get_cell],
 * [method@Tinysync.RowObject.dup_cell_string], …), so it never shows
 * stale data. Writes go to the store ([method@Tinysync.RowObject.set_cell]).
 * The row may not exist (any more): getters then return %NULL or their
 * default.
 *
 * When a cell of the row changes, locally or by a merge, the object emits
 * [signal@Tinysync.RowObject::cell-changed] with the cell id as detail,
 * then, once per row and transaction, increments
 * [property@Tinysync.RowObject:version] and notifies it. Both happen when
 * the store announces its changes, after the outermost transaction.
 *
 * ## Showing cells in a `GtkColumnView`
 *
 * Watching `version` through a `GtkExpression` keeps a cell widget up to
 * date with no handler to disconnect; the list item's `item` is the row
 * object:
 *
 * ```c
 * static char *
 * cell_text (GtkListItem *list_item,
 *            TsRowObject *row,
 *            guint        version,
 *            const char  *cell_id)
 * {
 *   return row != NULL ? ts_row_object_get_cell_json (row, cell_id) : NULL;
 * }
 *
 * static void
 * setup_cell (GtkSignalListItemFactory *factory,
 *             GtkListItem              *list_item,
 *             const char               *cell_id)
 * {
 *   GtkWidget *label = gtk_label_new (NULL);
 *   GtkExpression *params[2];
 *
 *   params[0] = gtk_property_expression_new (GTK_TYPE_LIST_ITEM, NULL, "item");
 *   params[1] = gtk_property_expression_new (TS_TYPE_ROW_OBJECT,
 *                                            gtk_expression_ref (params[0]),
 *                                            "version");
 *   gtk_expression_bind (gtk_cclosure_expression_new (G_TYPE_STRING, NULL, 2, params,
 *                                                     G_CALLBACK (cell_text),
 *                                                     (gpointer) cell_id, NULL),
 *                        label, "label", list_item);
 *   gtk_list_item_set_child (list_item, label);
 * }
 *
 * // one column per cell id
 * factory = gtk_signal_list_item_factory_new ();
 * g_signal_connect (factory, "setup", G_CALLBACK (setup_cell), "name");
 * column = gtk_column_view_column_new ("Name", factory);
 * ```
 *
 * A "bind" handler can do the same with a signal, disconnected in
 * "unbind":
 *
 * ```c
 * static void
 * bind_cell (GtkSignalListItemFactory *factory,
 *            GtkListItem              *list_item,
 *            const char               *cell_id)
 * {
 *   TsRowObject *row = gtk_list_item_get_item (list_item);
 *   GtkWidget *label = gtk_list_item_get_child (list_item);
 *   g_autofree char *detailed = g_strconcat ("cell-changed::", cell_id, NULL);
 *
 *   update_label (row, cell_id, GTK_LABEL (label));
 *   g_signal_connect_object (row, detailed, G_CALLBACK (on_cell_changed), label, 0);
 * }
 *
 * static void
 * unbind_cell (GtkSignalListItemFactory *factory,
 *              GtkListItem              *list_item,
 *              const char               *cell_id)
 * {
 *   g_signal_handlers_disconnect_by_func (gtk_list_item_get_item (list_item),
 *                                         on_cell_changed,
 *                                         gtk_list_item_get_child (list_item));
 * }
 * ```
 *
 * In Python:
 *
 * ```python
 * def bind(factory, list_item):
 *     row = list_item.get_item()
 *     label = list_item.get_child()
 *     label.set_label(row.dup_cell_string('name') or '')
 *     list_item.handler = row.connect(
 *         'cell-changed::name',
 *         lambda row, cell_id: label.set_label(row.dup_cell_string('name') or ''))
 * ```
 *
 * Row objects that a [class@Tinysync.TableModel] hands out are told of
 * changes by the model, with a hash lookup per changed cell. One made with
 * [ctor@Tinysync.RowObject.new] adds its own listeners to the store, which
 * then checks them for every changed cell: fine for a few objects, not
 * for thousands.
 *
 * Since: 1.0
 */

struct _TsRowObject
{
  GObject           parent_instance;

  TsMergeableStore *store;
  char             *table_id;
  char             *row_id;
  guint             version;
  gboolean          managed;
  gulong            cell_listener;  /* unmanaged objects only */
  gulong            row_listener;
};

G_DEFINE_FINAL_TYPE (TsRowObject, ts_row_object, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STORE,
  PROP_TABLE_ID,
  PROP_ROW_ID,
  PROP_VERSION,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  CELL_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Set around g_object_new() by _ts_row_object_new_managed() */
static GPrivate constructing_managed;

static void
on_store_cell_changed (TsMergeableStore *store,
                       const char       *table_id,
                       const char       *row_id,
                       const char       *cell_id,
                       gpointer          user_data)
{
  _ts_row_object_cell_changed (user_data, cell_id);
}

static void
on_store_row_changed (TsMergeableStore *store,
                      const char       *table_id,
                      const char       *row_id,
                      gpointer          user_data)
{
  _ts_row_object_row_changed (user_data);
}

static void
ts_row_object_constructed (GObject *object)
{
  TsRowObject *self = TS_ROW_OBJECT (object);

  G_OBJECT_CLASS (ts_row_object_parent_class)->constructed (object);

  self->managed = g_private_get (&constructing_managed) != NULL;
  g_private_set (&constructing_managed, NULL);

  if (self->store == NULL || self->table_id == NULL || self->row_id == NULL)
    {
      g_critical ("TsRowObject needs a store, a table id and a row id");
      return;
    }
  /* removed in dispose, which runs before the object is freed */
  if (!self->managed)
    {
      self->cell_listener =
        ts_mergeable_store_add_cell_listener (self->store, self->table_id, self->row_id, NULL,
                                              on_store_cell_changed, self, NULL);
      self->row_listener =
        ts_mergeable_store_add_row_listener (self->store, self->table_id, self->row_id,
                                             on_store_row_changed, self, NULL);
    }
}

static void
ts_row_object_dispose (GObject *object)
{
  TsRowObject *self = TS_ROW_OBJECT (object);

  if (self->store != NULL && self->cell_listener != 0)
    {
      ts_mergeable_store_del_listener (self->store, self->cell_listener);
      ts_mergeable_store_del_listener (self->store, self->row_listener);
      self->cell_listener = self->row_listener = 0;
    }
  g_clear_object (&self->store);

  G_OBJECT_CLASS (ts_row_object_parent_class)->dispose (object);
}

static void
ts_row_object_finalize (GObject *object)
{
  TsRowObject *self = TS_ROW_OBJECT (object);

  g_free (self->table_id);
  g_free (self->row_id);

  G_OBJECT_CLASS (ts_row_object_parent_class)->finalize (object);
}

static void
ts_row_object_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  TsRowObject *self = TS_ROW_OBJECT (object);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, self->store);
      break;
    case PROP_TABLE_ID:
      g_value_set_string (value, self->table_id);
      break;
    case PROP_ROW_ID:
      g_value_set_string (value, self->row_id);
      break;
    case PROP_VERSION:
      g_value_set_uint (value, self->version);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_row_object_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  TsRowObject *self = TS_ROW_OBJECT (object);

  switch (prop_id)
    {
    case PROP_STORE:
      self->store = g_value_dup_object (value);
      break;
    case PROP_TABLE_ID:
      self->table_id = g_value_dup_string (value);
      break;
    case PROP_ROW_ID:
      self->row_id = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_row_object_class_init (TsRowObjectClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_row_object_constructed;
  object_class->dispose = ts_row_object_dispose;
  object_class->finalize = ts_row_object_finalize;
  object_class->get_property = ts_row_object_get_property;
  object_class->set_property = ts_row_object_set_property;

  /**
   * TsRowObject:store: (getter get_store)
   *
   * The store holding the row.
   *
   * Since: 1.0
   */
  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, TS_TYPE_MERGEABLE_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsRowObject:table-id: (getter get_table_id)
   *
   * The id of the row's table.
   *
   * Since: 1.0
   */
  properties[PROP_TABLE_ID] =
    g_param_spec_string ("table-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsRowObject:row-id: (getter get_row_id)
   *
   * The id of the row.
   *
   * Since: 1.0
   */
  properties[PROP_ROW_ID] =
    g_param_spec_string ("row-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsRowObject:version: (getter get_version)
   *
   * A counter incremented, and notified, once per transaction that
   * changed a cell of the row (added or deleted it included), after the
   * [signal@Tinysync.RowObject::cell-changed] emissions. Its value means
   * nothing; watch it to refresh what shows the row, for instance with a
   * `GtkPropertyExpression`.
   *
   * Since: 1.0
   */
  properties[PROP_VERSION] =
    g_param_spec_uint ("version", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TsRowObject::cell-changed:
   * @self: the row object
   * @cell_id: the id of the changed cell
   *
   * Emitted once per cell of the row whose value differs at the end of
   * the store's outermost transaction from what it was at its start,
   * whether the change was local or merged (the store's
   * [signal@Tinysync.MergeableStore::cell-changed]). The detail is the
   * cell id: `"cell-changed::name"` only hears about the `name` cell.
   *
   * Since: 1.0
   */
  signals[CELL_CHANGED] =
    g_signal_new ("cell-changed", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
ts_row_object_init (TsRowObject *self)
{
}

/**
 * ts_row_object_new:
 * @store: a store
 * @table_id: a table id
 * @row_id: a row id
 *
 * Creates an object for one row, which need not exist yet. The object
 * listens to @store for changes of the row itself; prefer the items of a
 * [class@Tinysync.TableModel] when there are many rows.
 *
 * Returns: (transfer full): a new row object
 *
 * Since: 1.0
 */
TsRowObject *
ts_row_object_new (TsMergeableStore *store,
                   const char       *table_id,
                   const char       *row_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);
  g_return_val_if_fail (table_id != NULL, NULL);
  g_return_val_if_fail (row_id != NULL, NULL);

  return g_object_new (TS_TYPE_ROW_OBJECT,
                       "store", store,
                       "table-id", table_id,
                       "row-id", row_id,
                       NULL);
}

TsRowObject *
_ts_row_object_new_managed (TsMergeableStore *store,
                            const char       *table_id,
                            const char       *row_id)
{
  g_private_set (&constructing_managed, GINT_TO_POINTER (1));
  return g_object_new (TS_TYPE_ROW_OBJECT,
                       "store", store,
                       "table-id", table_id,
                       "row-id", row_id,
                       NULL);
}

void
_ts_row_object_cell_changed (TsRowObject *self,
                             const char  *cell_id)
{
  GQuark detail;

  g_assert (TS_IS_ROW_OBJECT (self));

  /* With detail 0 this is TRUE when any handler, detailed or not, is
   * connected; a detail whose quark does not exist has no handler. */
  if (!g_signal_has_handler_pending (self, signals[CELL_CHANGED], 0, TRUE))
    return;
  detail = g_quark_try_string (cell_id);
  g_signal_emit (self, signals[CELL_CHANGED], detail, cell_id);
}

void
_ts_row_object_row_changed (TsRowObject *self)
{
  g_assert (TS_IS_ROW_OBJECT (self));

  self->version++;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_VERSION]);
}

/**
 * ts_row_object_get_store: (get-property store)
 * @self: a row object
 *
 * Gets the store holding the row.
 *
 * Returns: (transfer none): the store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_row_object_get_store (TsRowObject *self)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);

  return self->store;
}

/**
 * ts_row_object_get_table_id: (get-property table-id)
 * @self: a row object
 *
 * Gets the id of the row's table.
 *
 * Returns: (transfer none): the table id
 *
 * Since: 1.0
 */
const char *
ts_row_object_get_table_id (TsRowObject *self)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);

  return self->table_id;
}

/**
 * ts_row_object_get_row_id: (get-property row-id)
 * @self: a row object
 *
 * Gets the id of the row.
 *
 * Returns: (transfer none): the row id
 *
 * Since: 1.0
 */
const char *
ts_row_object_get_row_id (TsRowObject *self)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);

  return self->row_id;
}

/**
 * ts_row_object_get_version: (get-property version)
 * @self: a row object
 *
 * Gets the counter of transactions that changed the row since the object
 * was made (see [property@Tinysync.RowObject:version]).
 *
 * Returns: the version
 *
 * Since: 1.0
 */
guint
ts_row_object_get_version (TsRowObject *self)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), 0);

  return self->version;
}

/**
 * ts_row_object_has_cell:
 * @self: a row object
 * @cell_id: a cell id
 *
 * Whether the row has the cell.
 *
 * Returns: %TRUE if the cell exists
 *
 * Since: 1.0
 */
gboolean
ts_row_object_has_cell (TsRowObject *self,
                        const char  *cell_id)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), FALSE);
  g_return_val_if_fail (cell_id != NULL, FALSE);

  return ts_mergeable_store_has_cell (self->store, self->table_id, self->row_id, cell_id);
}

/**
 * ts_row_object_get_cell_ids:
 * @self: a row object
 *
 * Gets the ids of the row's cells, as
 * [method@Tinysync.MergeableStore.get_cell_ids].
 *
 * Returns: (transfer full): the cell ids (empty if the row does not exist)
 *
 * Since: 1.0
 */
GStrv
ts_row_object_get_cell_ids (TsRowObject *self)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);

  return ts_mergeable_store_get_cell_ids (self->store, self->table_id, self->row_id);
}

/**
 * ts_row_object_get_cell:
 * @self: a row object
 * @cell_id: a cell id
 *
 * Gets one cell of the row as a #GVariant, with the types of
 * [method@Tinysync.MergeableStore.get_cell].
 *
 * Returns: (transfer full) (nullable): the cell, or %NULL if absent
 *
 * Since: 1.0
 */
GVariant *
ts_row_object_get_cell (TsRowObject *self,
                        const char  *cell_id)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);
  g_return_val_if_fail (cell_id != NULL, NULL);

  return ts_mergeable_store_get_cell (self->store, self->table_id, self->row_id, cell_id);
}

/**
 * ts_row_object_get_cell_json:
 * @self: a row object
 * @cell_id: a cell id
 *
 * Gets one cell of the row as JSON text, as
 * [method@Tinysync.MergeableStore.get_cell_json].
 *
 * Returns: (transfer full) (nullable): JSON text, or %NULL if absent
 *
 * Since: 1.0
 */
char *
ts_row_object_get_cell_json (TsRowObject *self,
                             const char  *cell_id)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);
  g_return_val_if_fail (cell_id != NULL, NULL);

  if (!ts_mergeable_store_has_cell (self->store, self->table_id, self->row_id, cell_id))
    return NULL;
  return ts_mergeable_store_get_cell_json (self->store, self->table_id, self->row_id, cell_id);
}

/**
 * ts_row_object_dup_cell_string:
 * @self: a row object
 * @cell_id: a cell id
 *
 * Gets a copy of a string cell.
 *
 * Returns: (transfer full) (nullable): the string, or %NULL if the cell
 *   is absent or not a string
 *
 * Since: 1.0
 */
char *
ts_row_object_dup_cell_string (TsRowObject *self,
                               const char  *cell_id)
{
  g_autoptr(GVariant) cell = NULL;

  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), NULL);
  g_return_val_if_fail (cell_id != NULL, NULL);

  cell = ts_mergeable_store_get_cell (self->store, self->table_id, self->row_id, cell_id);
  if (cell == NULL || !g_variant_is_of_type (cell, G_VARIANT_TYPE_STRING))
    return NULL;
  return g_variant_dup_string (cell, NULL);
}

/**
 * ts_row_object_get_cell_number:
 * @self: a row object
 * @cell_id: a cell id
 * @default_value: what to return when the cell is not a number
 *
 * Gets a number cell.
 *
 * Returns: the number, or @default_value if the cell is absent or not a
 *   number
 *
 * Since: 1.0
 */
double
ts_row_object_get_cell_number (TsRowObject *self,
                               const char  *cell_id,
                               double       default_value)
{
  g_autoptr(GVariant) cell = NULL;

  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), default_value);
  g_return_val_if_fail (cell_id != NULL, default_value);

  cell = ts_mergeable_store_get_cell (self->store, self->table_id, self->row_id, cell_id);
  if (cell == NULL || !g_variant_is_of_type (cell, G_VARIANT_TYPE_DOUBLE))
    return default_value;
  return g_variant_get_double (cell);
}

/**
 * ts_row_object_get_cell_boolean:
 * @self: a row object
 * @cell_id: a cell id
 * @default_value: what to return when the cell is not a boolean
 *
 * Gets a boolean cell.
 *
 * Returns: the boolean, or @default_value if the cell is absent or not a
 *   boolean
 *
 * Since: 1.0
 */
gboolean
ts_row_object_get_cell_boolean (TsRowObject *self,
                                const char  *cell_id,
                                gboolean     default_value)
{
  g_autoptr(GVariant) cell = NULL;

  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), default_value);
  g_return_val_if_fail (cell_id != NULL, default_value);

  cell = ts_mergeable_store_get_cell (self->store, self->table_id, self->row_id, cell_id);
  if (cell == NULL || !g_variant_is_of_type (cell, G_VARIANT_TYPE_BOOLEAN))
    return default_value;
  return g_variant_get_boolean (cell);
}

/**
 * ts_row_object_set_cell:
 * @self: a row object
 * @cell_id: a cell id
 * @value: the cell, with the types of [method@Tinysync.MergeableStore.set_cell]
 * @error: return location for a #GError
 *
 * Sets one cell of the row (creating the row if needed), as
 * [method@Tinysync.MergeableStore.set_cell]. A floating @value is
 * consumed.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_row_object_set_cell (TsRowObject *self,
                        const char  *cell_id,
                        GVariant    *value,
                        GError     **error)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ts_mergeable_store_set_cell (self->store, self->table_id, self->row_id,
                                      cell_id, value, error);
}

/**
 * ts_row_object_set_cell_json:
 * @self: a row object
 * @cell_id: a cell id
 * @json: JSON text of the cell
 * @error: return location for a #GError
 *
 * Sets one cell of the row (creating the row if needed) from JSON text,
 * as [method@Tinysync.MergeableStore.set_cell_json].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
ts_row_object_set_cell_json (TsRowObject *self,
                             const char  *cell_id,
                             const char  *json,
                             GError     **error)
{
  g_return_val_if_fail (TS_IS_ROW_OBJECT (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ts_mergeable_store_set_cell_json (self->store, self->table_id, self->row_id,
                                           cell_id, json, error);
}

/**
 * ts_row_object_del_cell:
 * @self: a row object
 * @cell_id: a cell id
 *
 * Deletes one cell of the row, as
 * [method@Tinysync.MergeableStore.del_cell]; deleting its last cell
 * deletes the row.
 *
 * Since: 1.0
 */
void
ts_row_object_del_cell (TsRowObject *self,
                        const char  *cell_id)
{
  g_return_if_fail (TS_IS_ROW_OBJECT (self));
  g_return_if_fail (cell_id != NULL);

  ts_mergeable_store_del_cell (self->store, self->table_id, self->row_id, cell_id);
}
