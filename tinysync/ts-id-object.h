/* ts-id-object.h: an id as a GObject, the items of TsTableIdsModel
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <glib-object.h>

#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_ID_OBJECT (ts_id_object_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsIdObject, ts_id_object, TS, ID_OBJECT, GObject)

TS_AVAILABLE_IN_ALL
TsIdObject *ts_id_object_new    (const char *id);
TS_AVAILABLE_IN_ALL
const char *ts_id_object_get_id (TsIdObject *self);

G_END_DECLS
