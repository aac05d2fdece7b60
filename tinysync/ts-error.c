/* ts-error.c: the tinysync error domain and translations
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <libintl.h>

#include "ts-error.h"
#include "ts-private.h"

/**
 * ts_error_quark:
 *
 * The quark of the %TS_ERROR error domain.
 *
 * Returns: the error domain
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (ts-error-quark, ts_error)

const char *
_ts_gettext (const char *msgid)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      g_once_init_leave (&initialized, 1);
    }

  return g_dgettext (GETTEXT_PACKAGE, msgid);
}
