/* ts-file-persister.h: a mergeable store in a JSON file, as TinyBase writes it
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <gio/gio.h>

#include "ts-mergeable-store.h"
#include "ts-persister.h"
#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_FILE_PERSISTER (ts_file_persister_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsFilePersister, ts_file_persister, TS, FILE_PERSISTER, TsPersister)

TS_AVAILABLE_IN_ALL
TsFilePersister *ts_file_persister_new      (TsMergeableStore *store,
                                             GFile            *file);
TS_AVAILABLE_IN_ALL
GFile           *ts_file_persister_get_file (TsFilePersister  *self);

G_END_DECLS
