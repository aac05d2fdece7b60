/* ts-row-object.h: one row of a TsMergeableStore table as a GObject
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <glib-object.h>

#include "ts-mergeable-store.h"
#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_ROW_OBJECT (ts_row_object_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsRowObject, ts_row_object, TS, ROW_OBJECT, GObject)

TS_AVAILABLE_IN_ALL
TsRowObject      *ts_row_object_new              (TsMergeableStore *store,
                                                  const char       *table_id,
                                                  const char       *row_id);
TS_AVAILABLE_IN_ALL
TsMergeableStore *ts_row_object_get_store        (TsRowObject      *self);
TS_AVAILABLE_IN_ALL
const char       *ts_row_object_get_table_id     (TsRowObject      *self);
TS_AVAILABLE_IN_ALL
const char       *ts_row_object_get_row_id       (TsRowObject      *self);
TS_AVAILABLE_IN_ALL
guint             ts_row_object_get_version      (TsRowObject      *self);

TS_AVAILABLE_IN_ALL
gboolean          ts_row_object_has_cell         (TsRowObject      *self,
                                                  const char       *cell_id);
TS_AVAILABLE_IN_ALL
GStrv             ts_row_object_get_cell_ids     (TsRowObject      *self);
TS_AVAILABLE_IN_ALL
GVariant         *ts_row_object_get_cell         (TsRowObject      *self,
                                                  const char       *cell_id);
TS_AVAILABLE_IN_ALL
char             *ts_row_object_get_cell_json    (TsRowObject      *self,
                                                  const char       *cell_id);
TS_AVAILABLE_IN_ALL
char             *ts_row_object_dup_cell_string  (TsRowObject      *self,
                                                  const char       *cell_id);
TS_AVAILABLE_IN_ALL
double            ts_row_object_get_cell_number  (TsRowObject      *self,
                                                  const char       *cell_id,
                                                  double            default_value);
TS_AVAILABLE_IN_ALL
gboolean          ts_row_object_get_cell_boolean (TsRowObject      *self,
                                                  const char       *cell_id,
                                                  gboolean          default_value);

TS_AVAILABLE_IN_ALL
gboolean          ts_row_object_set_cell         (TsRowObject      *self,
                                                  const char       *cell_id,
                                                  GVariant         *value,
                                                  GError          **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_row_object_set_cell_json    (TsRowObject      *self,
                                                  const char       *cell_id,
                                                  const char       *json,
                                                  GError          **error);
TS_AVAILABLE_IN_ALL
void              ts_row_object_del_cell         (TsRowObject      *self,
                                                  const char       *cell_id);

G_END_DECLS
