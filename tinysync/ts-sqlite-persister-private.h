/* ts-sqlite-persister-private.h: what the tests look at
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-sqlite-persister.h"

G_BEGIN_DECLS

/* Rows inserted, updated or deleted through this persister's connection
 * since it was opened (sqlite3_total_changes64). */
gint64 _ts_sqlite_persister_get_total_changes (TsSqlitePersister *self);

G_END_DECLS
