/* test-i18n.c: tinysync's GError messages come translated from its own
 * gettext domain
 *
 * SPDX-License-Identifier: MIT
 *
 * Run by meson (suite "i18n") with TS_LOCALEDIR pointing at the build
 * tree's po folder, where po/de.po is compiled into
 * de/LC_MESSAGES/tinysync-1.0.mo. The library binds its domain to the
 * installed locale folder on its first message; the test rebinds it to
 * the build tree after that, as an uninstalled run must.
 */
#include "config.h"

#include <libintl.h>
#include <locale.h>

#include <tinysync/tinysync.h>

static char *
invalid_json_message (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("i18n");
  g_autoptr(GError) error = NULL;

  g_assert_false (ts_mergeable_store_set_tables_json (store, "{\"t\": [}", &error));
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
  return g_strdup (error->message);
}

static void
test_german_error (void)
{
  g_autofree char *english = NULL;
  g_autofree char *german = NULL;
  const char *localedir = g_getenv ("TS_LOCALEDIR");

  g_assert_nonnull (localedir);

  /* The first message binds the domain to the installed folder, which
   * holds no tinysync catalog while testing: English */
  english = invalid_json_message ();
  g_assert_true (g_str_has_prefix (english, "Invalid JSON at byte 7: "));

  g_assert_nonnull (bindtextdomain (GETTEXT_PACKAGE, localedir));
  german = invalid_json_message ();
  g_test_message ("%s -> %s", english, german);
  g_assert_cmpstr (german, ==, "Ungültiges JSON bei Byte 7: unerwartetes Zeichen");
}

static void
test_german_quotes (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("i18n");
  g_autoptr(GVariant) entry = NULL;
  g_autoptr(GError) error = NULL;

  /* Typographic quotes survive: the domain's codeset is UTF-8 */
  g_assert_nonnull (bindtextdomain (GETTEXT_PACKAGE, g_getenv ("TS_LOCALEDIR")));
  /* a lone dict entry has no JSON form */
  entry = g_variant_ref_sink (g_variant_new_dict_entry (g_variant_new_string ("k"),
                                                        g_variant_new_int32 (1)));
  g_assert_false (ts_mergeable_store_set_cell (store, "t", "r", "c", entry, &error));
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CELL);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_cmpstr (error->message, ==,
                   "Der GVariant-Typ „{si}“ kann nicht in einer Zelle gespeichert werden");
}

int
main (int argc, char *argv[])
{
  /* German messages in a UTF-8 locale that every machine has */
  g_setenv ("LANGUAGE", "de", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  setlocale (LC_ALL, "");
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/i18n/german-error", test_german_error);
  g_test_add_func ("/i18n/german-quotes", test_german_quotes);

  return g_test_run ();
}
