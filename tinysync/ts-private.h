/* ts-private.h: internal helpers shared by every tinysync source file
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Translations of user-visible messages, in tinysync's own gettext domain
 * (never the application's). The domain is bound once, on first use. */
const char *_ts_gettext (const char *msgid) G_GNUC_FORMAT (1);

#define _(String) _ts_gettext (String)
#define N_(String) (String)

G_END_DECLS
