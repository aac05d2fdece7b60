/* ts-table-model.h: a GListModel of the rows of one TsMergeableStore table
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <gio/gio.h>

#include "ts-mergeable-store.h"
#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_TABLE_MODEL (ts_table_model_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsTableModel, ts_table_model, TS, TABLE_MODEL, GObject)

TS_AVAILABLE_IN_ALL
TsTableModel     *ts_table_model_new                 (TsMergeableStore *store,
                                                      const char       *table_id);
TS_AVAILABLE_IN_ALL
TsMergeableStore *ts_table_model_get_store           (TsTableModel     *self);
TS_AVAILABLE_IN_ALL
const char       *ts_table_model_get_table_id        (TsTableModel     *self);
TS_AVAILABLE_IN_ALL
const char       *ts_table_model_get_sort_cell       (TsTableModel     *self);
TS_AVAILABLE_IN_ALL
void              ts_table_model_set_sort_cell       (TsTableModel     *self,
                                                      const char       *cell_id);
TS_AVAILABLE_IN_ALL
gboolean          ts_table_model_get_sort_descending (TsTableModel     *self);
TS_AVAILABLE_IN_ALL
void              ts_table_model_set_sort_descending (TsTableModel     *self,
                                                      gboolean          descending);
TS_AVAILABLE_IN_ALL
void              ts_table_model_set_sort            (TsTableModel     *self,
                                                      const char       *cell_id,
                                                      gboolean          descending);
TS_AVAILABLE_IN_ALL
const char       *ts_table_model_get_row_id          (TsTableModel     *self,
                                                      guint             position);
TS_AVAILABLE_IN_ALL
gboolean          ts_table_model_find                (TsTableModel     *self,
                                                      const char       *row_id,
                                                      guint            *position);

G_END_DECLS
