/* ts-synchronizer-private.h: the engine's entry for transports that
 * already decoded and validated a message
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-json-private.h"
#include "ts-synchronizer.h"

G_BEGIN_DECLS

/* Handles a valid message (section 11.3 already checked). Takes doc;
 * request_id and body point into it. */
void _ts_synchronizer_receive (TsSynchronizer   *self,
                               const char       *from,
                               TsJsonDoc        *doc,
                               const char       *request_id,
                               int               type,
                               const TsJsonNode *body);

/* Starts syncing without the initial pull: announces the store's hashes
 * and broadcasts every later change. For a room's server store, whose
 * clients are not syncing yet when it starts and which pulls from each of
 * them as soon as they announce their hashes. */
void _ts_synchronizer_start_sync_quietly (TsSynchronizer *self);

G_END_DECLS
