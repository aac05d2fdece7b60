/* ts-sqlite-persister.h: a mergeable store in an SQLite database, saved incrementally
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

#define TS_TYPE_SQLITE_PERSISTER (ts_sqlite_persister_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsSqlitePersister, ts_sqlite_persister, TS, SQLITE_PERSISTER, TsPersister)

TS_AVAILABLE_IN_ALL
TsSqlitePersister *ts_sqlite_persister_new      (TsMergeableStore   *store,
                                                 const char         *path,
                                                 GError            **error);
TS_AVAILABLE_IN_ALL
const char        *ts_sqlite_persister_get_path (TsSqlitePersister  *self);

G_END_DECLS
