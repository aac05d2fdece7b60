/* tinysync.h: the umbrella header of tinysync
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#define TS_INSIDE

#include "ts-version-macros.h"
#include "ts-version.h"
#include "ts-error.h"
#include "ts-enums.h"
#include "ts-mergeable-store.h"
#include "ts-synchronizer.h"
#include "ts-ws-synchronizer.h"
#include "ts-ws-server.h"
#include "ts-persister.h"
#include "ts-file-persister.h"
#include "ts-sqlite-persister.h"
#include "ts-row-object.h"
#include "ts-table-model.h"
#include "ts-id-object.h"
#include "ts-table-ids-model.h"

#undef TS_INSIDE
