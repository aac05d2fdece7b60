/* ts-table-model-private.h: helpers shared by the list models
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Compares UTF-8 strings as JavaScript's < compares strings: by UTF-16
 * code units (a character above U+FFFF sorts before U+E000..U+FFFF). */
int _ts_compare_code_units (const char *a,
                            const char *b);

G_END_DECLS
