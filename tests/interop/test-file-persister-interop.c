/* test-file-persister-interop.c: TsFilePersister and TinyBase 10.0.1's file
 * persister read each other's files
 *
 * SPDX-License-Identifier: MIT
 *
 * Run by run-file-persister.sh, which installs the npm packages and sets
 * TS_NODE and TS_FILE_PERSISTER_SCRIPT (file-persister.mjs).
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <tinysync/tinysync.h>

#include "ts-json-private.h"

typedef struct {
  char *dir;
} Fixture;

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  fx->dir = g_dir_make_tmp ("tinysync-file-interop-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  g_autoptr(GDir) dir = g_dir_open (fx->dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fx->dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (fx->dir);
  g_free (fx->dir);
}

/* What TinyBase printed about its store */
typedef struct {
  guint32  tables_hash;
  guint32  values_hash;
  char    *tables;
  char    *values;
} Report;

static void
report_clear (Report *r)
{
  g_free (r->tables);
  g_free (r->values);
}

static gboolean
have_node (void)
{
  if (g_getenv ("TS_NODE") == NULL || g_getenv ("TS_FILE_PERSISTER_SCRIPT") == NULL)
    {
      g_test_skip ("TS_NODE and TS_FILE_PERSISTER_SCRIPT are not set (run through run-file-persister.sh)");
      return FALSE;
    }
  return TRUE;
}

/* Runs file-persister.mjs with the arguments and parses its report. */
static void
run_tinybase (Report     *report,
              const char *command,
              const char *arg1,
              const char *arg2)
{
  const char *argv[] = {
    g_getenv ("TS_NODE"), g_getenv ("TS_FILE_PERSISTER_SCRIPT"), command, arg1, arg2, NULL,
  };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root, *hashes, *tables, *values;
  int status = 0;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, &error));
  g_assert_no_error (error);
  if (err != NULL && *err != '\0')
    g_test_message ("node: %s", err);
  g_assert_true (g_spawn_check_wait_status (status, &error));
  g_assert_no_error (error);

  doc = ts_json_parse (out, -1, &error);
  g_assert_no_error (error);
  root = ts_json_doc_get_root (doc);
  hashes = ts_json_object_get (doc, root, "hashes", 6);
  tables = ts_json_object_get (doc, root, "tables", 6);
  values = ts_json_object_get (doc, root, "values", 6);
  g_assert_nonnull (hashes);
  g_assert_cmpint (hashes->type, ==, TS_JSON_ARRAY);
  g_assert_cmpuint (hashes->len, ==, 2);
  g_assert_nonnull (tables);
  g_assert_nonnull (values);
  report->tables_hash = (guint32) hashes->u.items[0].u.num;
  report->values_hash = (guint32) hashes->u.items[1].u.num;
  report->tables = g_strndup (tables->u.str, tables->len);
  report->values = g_strndup (values->u.str, values->len);
}

static void
assert_store_matches (TsMergeableStore *store,
                      const Report     *report)
{
  g_autofree char *tables = ts_mergeable_store_get_tables_json (store);
  g_autofree char *values = ts_mergeable_store_get_values_json (store);
  guint32 tables_hash, values_hash;

  ts_mergeable_store_get_mergeable_content_hashes (store, &tables_hash, &values_hash);
  g_assert_cmpuint (tables_hash, ==, report->tables_hash);
  g_assert_cmpuint (values_hash, ==, report->values_hash);
  g_assert_cmpstr (tables, ==, report->tables);
  g_assert_cmpstr (values, ==, report->values);
}

static gboolean
is_set (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static void
got_result (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  *(GAsyncResult **) data = g_object_ref (result);
}

static gboolean
timeout_cb (gpointer data)
{
  g_error ("timed out");
  return G_SOURCE_REMOVE;
}

static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  guint id = g_timeout_add_seconds (30, timeout_cb, NULL);

  while (!is_set (slot))
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (id);
  return *slot;
}

static TsFilePersister *
new_persister (TsMergeableStore *store,
               const char       *path)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);

  return ts_file_persister_new (store, file);
}

static void
load (TsFilePersister *p)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  ts_persister_load_async (TS_PERSISTER (p), NULL, NULL, got_result, &result);
  g_assert_true (ts_persister_load_finish (TS_PERSISTER (p), wait_result (&result), &error));
  g_assert_no_error (error);
}

static void
save (TsFilePersister *p)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  ts_persister_save_async (TS_PERSISTER (p), NULL, got_result, &result);
  g_assert_true (ts_persister_save_finish (TS_PERSISTER (p), wait_result (&result), &error));
  g_assert_no_error (error);
}

static char *
read_file (const char *path)
{
  char *contents = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_get_contents (path, &contents, NULL, &error));
  g_assert_no_error (error);
  return contents;
}

/* TinyBase writes; tinysync loads the same content and hashes, and saves
 * the very same bytes; TinyBase loads that back */
static void
test_tinybase_to_tinysync (Fixture       *fx,
                           gconstpointer  data)
{
  g_autofree char *written = g_build_filename (fx->dir, "tinybase.json", NULL);
  g_autofree char *resaved = g_build_filename (fx->dir, "tinysync.json", NULL);
  g_autofree char *again = g_build_filename (fx->dir, "again.json", NULL);
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("tinysync");
  g_autoptr(TsFilePersister) loader = NULL;
  g_autoptr(TsFilePersister) saver = NULL;
  g_autofree char *text = NULL;
  g_autofree char *content = NULL;
  g_autofree char *text2 = NULL;
  g_autofree char *text3 = NULL;
  Report report = { 0 }, report2 = { 0 };

  if (!have_node ())
    return;

  run_tinybase (&report, "write", written, NULL);
  text = read_file (written);
  g_test_message ("TinyBase's file: %s", text);

  loader = new_persister (store, written);
  load (loader);
  assert_store_matches (store, &report);
  content = ts_mergeable_store_get_mergeable_content_json (store);
  g_assert_cmpstr (content, ==, text);

  saver = new_persister (store, resaved);
  save (saver);
  text2 = read_file (resaved);
  g_assert_cmpstr (text2, ==, text);

  run_tinybase (&report2, "read", resaved, again);
  assert_store_matches (store, &report2);
  text3 = read_file (again);
  g_assert_cmpstr (text3, ==, text);

  report_clear (&report);
  report_clear (&report2);
}

static void
changes (TsMergeableStore *store)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_mergeable_store_set_tables_json (store,
    "{\"pets\":{\"fido\":{\"species\":\"dog\",\"toys\":[\"ball\",{\"k\":null}]},"
    "\"2\":{\"n\":-0.000001},\"10\":{\"n\":1e-7}},"
    "\"\xe6\x97\xa5\xe6\x9c\xac\":{\"\xf0\x9f\x90\xb6\":{\"\":\"empty id\",\"s\":\"\\ud83d\\ude00\\udfff\"}}}",
    &error));
  g_assert_no_error (error);
  g_assert_true (ts_mergeable_store_set_values_json (store,
    "{\"open\":false,\"list\":[1,[2,[3]]],\"2\":\"two\",\"1\":1}", &error));
  g_assert_no_error (error);
  ts_mergeable_store_del_cell (store, "pets", "fido", "toys");
  ts_mergeable_store_del_row (store, "pets", "2");
  ts_mergeable_store_del_value (store, "1");
  ts_mergeable_store_set_cell_boolean (store, "pets", "fido", "good", TRUE);
}

/* tinysync writes (its own stamps, later changes on top of TinyBase's);
 * TinyBase loads the same content and hashes and saves the same bytes */
static void
test_tinysync_to_tinybase (Fixture       *fx,
                           gconstpointer  data)
{
  g_autofree char *path = g_build_filename (fx->dir, "tinysync.json", NULL);
  g_autofree char *again = g_build_filename (fx->dir, "again.json", NULL);
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("tinysync");
  g_autoptr(TsFilePersister) p = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;
  Report report = { 0 };

  if (!have_node ())
    return;

  changes (store);
  p = new_persister (store, path);
  save (p);
  run_tinybase (&report, "read", path, again);
  assert_store_matches (store, &report);
  text = read_file (path);
  text2 = read_file (again);
  g_assert_cmpstr (text2, ==, text);
  report_clear (&report);
}

/* Both: TinyBase's file loaded, changed and auto-saved by tinysync, then
 * loaded by TinyBase */
static void
test_mixed_auto_save (Fixture       *fx,
                      gconstpointer  data)
{
  g_autofree char *path = g_build_filename (fx->dir, "shared.json", NULL);
  g_autofree char *again = g_build_filename (fx->dir, "again.json", NULL);
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("tinysync");
  g_autoptr(TsFilePersister) p = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GAsyncResult) flushed = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  g_autofree char *text = NULL;
  Report report = { 0 }, report2 = { 0 };

  if (!have_node ())
    return;

  run_tinybase (&report, "write", path, NULL);
  p = new_persister (store, path);
  ts_persister_start_auto_load_async (TS_PERSISTER (p), NULL, NULL, got_result, &result);
  g_assert_true (ts_persister_start_auto_load_finish (TS_PERSISTER (p), wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&result);
  assert_store_matches (store, &report);
  ts_persister_start_auto_save_async (TS_PERSISTER (p), NULL, got_result, &result);
  g_assert_true (ts_persister_start_auto_save_finish (TS_PERSISTER (p), wait_result (&result), &error));
  g_assert_no_error (error);

  changes (store);
  ts_persister_flush_async (TS_PERSISTER (p), NULL, got_result, &flushed);
  g_assert_true (ts_persister_flush_finish (TS_PERSISTER (p), wait_result (&flushed), &error));
  g_assert_no_error (error);

  run_tinybase (&report2, "read", path, again);
  assert_store_matches (store, &report2);
  content = ts_mergeable_store_get_mergeable_content_json (store);
  text = read_file (again);
  g_assert_cmpstr (text, ==, content);
  report_clear (&report);
  report_clear (&report2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/interop/file-persister/tinybase-to-tinysync", Fixture, NULL,
              fixture_setup, test_tinybase_to_tinysync, fixture_teardown);
  g_test_add ("/interop/file-persister/tinysync-to-tinybase", Fixture, NULL,
              fixture_setup, test_tinysync_to_tinybase, fixture_teardown);
  g_test_add ("/interop/file-persister/mixed-auto-save", Fixture, NULL,
              fixture_setup, test_mixed_auto_save, fixture_teardown);

  return g_test_run ();
}
