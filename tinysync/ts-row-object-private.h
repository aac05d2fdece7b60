/* ts-row-object-private.h: what TsTableModel uses of TsRowObject
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-row-object.h"

G_BEGIN_DECLS

/* A row object whose changes the caller (a TsTableModel) announces with
 * the two functions below, instead of the object listening to the store
 * itself (one store handler per row would make every change O(rows)). */
TsRowObject *_ts_row_object_new_managed   (TsMergeableStore *store,
                                           const char       *table_id,
                                           const char       *row_id);
/* Emits TsRowObject::cell-changed */
void         _ts_row_object_cell_changed  (TsRowObject      *self,
                                           const char       *cell_id);
/* Bumps TsRowObject:version */
void         _ts_row_object_row_changed   (TsRowObject      *self);

G_END_DECLS
