/* ts-mergeable-store-private.h: what the synchronizer and persisters use
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-mergeable-store.h"
#include "ts-stamp-tree-private.h"

G_BEGIN_DECLS

TsStampTree *_ts_mergeable_store_get_tree                 (TsMergeableStore  *self);
gboolean     _ts_mergeable_store_set_content_node         (TsMergeableStore  *self,
                                                           const TsJsonNode  *root,
                                                           GError           **error);
gboolean     _ts_mergeable_store_apply_changes_node       (TsMergeableStore  *self,
                                                           const TsJsonNode  *root,
                                                           GError           **error);
void         _ts_mergeable_store_write_transaction_changes (TsMergeableStore *self,
                                                           GString          *out,
                                                           gboolean          with_hashes);

G_END_DECLS
