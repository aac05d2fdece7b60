/* ts-id-object.c: an id as a GObject, the items of TsTableIdsModel
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "ts-id-object.h"

/**
 * TsIdObject:
 *
 * An immutable id wrapped in an object: the items of
 * [class@Tinysync.TableIdsModel], like `GtkStringObject` (which needs
 * GTK) wraps a string. Show it with a property expression on
 * [property@Tinysync.IdObject:id]:
 *
 * ```c
 * GtkExpression *expression =
 *   gtk_property_expression_new (TS_TYPE_ID_OBJECT, NULL, "id");
 * GtkWidget *tables = gtk_drop_down_new (G_LIST_MODEL (ts_table_ids_model_new (store)),
 *                                        expression);
 * ```
 *
 * Since: 1.0
 */

struct _TsIdObject
{
  GObject  parent_instance;

  char    *id;
};

G_DEFINE_FINAL_TYPE (TsIdObject, ts_id_object, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ID,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
ts_id_object_finalize (GObject *object)
{
  TsIdObject *self = TS_ID_OBJECT (object);

  g_free (self->id);

  G_OBJECT_CLASS (ts_id_object_parent_class)->finalize (object);
}

static void
ts_id_object_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  TsIdObject *self = TS_ID_OBJECT (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_id_object_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  TsIdObject *self = TS_ID_OBJECT (object);

  switch (prop_id)
    {
    case PROP_ID:
      self->id = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_id_object_class_init (TsIdObjectClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = ts_id_object_finalize;
  object_class->get_property = ts_id_object_get_property;
  object_class->set_property = ts_id_object_set_property;

  /**
   * TsIdObject:id: (getter get_id)
   *
   * The id.
   *
   * Since: 1.0
   */
  properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_id_object_init (TsIdObject *self)
{
}

/**
 * ts_id_object_new:
 * @id: an id
 *
 * Wraps an id in an object.
 *
 * Returns: (transfer full): a new id object
 *
 * Since: 1.0
 */
TsIdObject *
ts_id_object_new (const char *id)
{
  g_return_val_if_fail (id != NULL, NULL);

  return g_object_new (TS_TYPE_ID_OBJECT, "id", id, NULL);
}

/**
 * ts_id_object_get_id: (get-property id)
 * @self: an id object
 *
 * Gets the id.
 *
 * Returns: (transfer none): the id
 *
 * Since: 1.0
 */
const char *
ts_id_object_get_id (TsIdObject *self)
{
  g_return_val_if_fail (TS_IS_ID_OBJECT (self), NULL);

  return self->id;
}
