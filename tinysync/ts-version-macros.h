/* ts-version-macros.h: symbol visibility and availability macros
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <glib.h>

#ifndef _TS_EXTERN
# define _TS_EXTERN __attribute__((visibility ("default"))) extern
#endif

#define TS_AVAILABLE_IN_ALL _TS_EXTERN
#define TS_AVAILABLE_IN_1_0 _TS_EXTERN

#define TS_DEPRECATED _TS_EXTERN G_DEPRECATED
#define TS_DEPRECATED_FOR(f) _TS_EXTERN G_DEPRECATED_FOR (f)
