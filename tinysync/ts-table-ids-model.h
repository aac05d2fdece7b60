/* ts-table-ids-model.h: a GListModel of the table ids of a TsMergeableStore
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

#define TS_TYPE_TABLE_IDS_MODEL (ts_table_ids_model_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsTableIdsModel, ts_table_ids_model, TS, TABLE_IDS_MODEL, GObject)

TS_AVAILABLE_IN_ALL
TsTableIdsModel  *ts_table_ids_model_new       (TsMergeableStore *store);
TS_AVAILABLE_IN_ALL
TsMergeableStore *ts_table_ids_model_get_store (TsTableIdsModel  *self);
TS_AVAILABLE_IN_ALL
const char       *ts_table_ids_model_get_id    (TsTableIdsModel  *self,
                                                guint             position);
TS_AVAILABLE_IN_ALL
gboolean          ts_table_ids_model_find      (TsTableIdsModel  *self,
                                                const char       *table_id,
                                                guint            *position);

G_END_DECLS
