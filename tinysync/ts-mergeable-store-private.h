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
/* ts_mergeable_store_set_mergeable_content_json, through the JSON tree
 * only (fast FALSE) or first straight from the text (TRUE, as public) */
gboolean     _ts_mergeable_store_set_content_text         (TsMergeableStore  *self,
                                                           const char        *json,
                                                           gboolean           fast,
                                                           GError           **error);
gboolean     _ts_mergeable_store_apply_changes_node       (TsMergeableStore  *self,
                                                           const TsJsonNode  *root,
                                                           GError           **error);
void         _ts_mergeable_store_write_transaction_changes (TsMergeableStore *self,
                                                           GString          *out,
                                                           gboolean          with_hashes);
/* Whether the announced (or open) transaction changed any cell or value */
gboolean     _ts_mergeable_store_transaction_changed      (TsMergeableStore *self);
/* Counts stamp writes that no transaction's mergeable changes list (see
 * TsStampTree.unlisted_writes): when it moved during a transaction, its
 * with-hashes changes do not describe every stamp that changed. */
guint64      _ts_mergeable_store_get_unlisted_writes      (TsMergeableStore *self);
/* Whether the stamp tree holds no stamp at all (a new store) */
gboolean     _ts_mergeable_store_is_empty                 (TsMergeableStore *self);
/* Applies several tables stamps and a values stamp (NULL: none) received
 * from a peer as one set of changes, in one transaction; all are validated
 * first and nothing is applied if one is invalid. */
gboolean     _ts_mergeable_store_apply_parts              (TsMergeableStore  *self,
                                                           const TsJsonNode **tables_parts,
                                                           guint              n_tables_parts,
                                                           const TsJsonNode  *values_part,
                                                           GError           **error);

G_END_DECLS
