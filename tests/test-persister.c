/* test-persister.c: TsPersister, TsFilePersister and TsSqlitePersister
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <tinysync/tinysync.h>

#include "ts-sqlite-persister-private.h"

/* ---- Main loop helpers --------------------------------------------------- */

#define WAIT_TIMEOUT_MS 15000

static gboolean
timeout_flag_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until cond (data) holds; FALSE on timeout. */
static gboolean
wait_until (gboolean (*cond) (gpointer), gpointer data, guint timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, timeout_flag_cb, &timed_out);

  while (!cond (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return !timed_out;
}

/* Runs the main context for ms milliseconds. */
static void
spin (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, timeout_flag_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
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

static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  g_assert_true (wait_until (is_set, slot, WAIT_TIMEOUT_MS));
  return *slot;
}

static gboolean
run_load (TsPersister  *p,
          const char   *initial,
          GError      **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  gboolean ok;

  ts_persister_load_async (p, initial, NULL, got_result, &result);
  ok = ts_persister_load_finish (p, wait_result (&result), error);
  if (!ok && error != NULL && *error != NULL)
    g_test_message ("load failed: %s", (*error)->message);
  return ok;
}

static gboolean
run_save (TsPersister  *p,
          GError      **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  ts_persister_save_async (p, NULL, got_result, &result);
  return ts_persister_save_finish (p, wait_result (&result), error);
}

static gboolean
run_flush (TsPersister  *p,
           GError      **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  ts_persister_flush_async (p, NULL, got_result, &result);
  return ts_persister_flush_finish (p, wait_result (&result), error);
}

static void
run_start_auto_save (TsPersister *p)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  ts_persister_start_auto_save_async (p, NULL, got_result, &result);
  g_assert_true (ts_persister_start_auto_save_finish (p, wait_result (&result), &error));
  g_assert_no_error (error);
}

static void
run_start_auto_load (TsPersister *p,
                     const char  *initial)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  ts_persister_start_auto_load_async (p, initial, NULL, got_result, &result);
  g_assert_true (ts_persister_start_auto_load_finish (p, wait_result (&result), &error));
  g_assert_no_error (error);
}

/* ---- Fixtures ------------------------------------------------------------ */

typedef enum {
  KIND_FILE,
  KIND_SQLITE,
} Kind;

typedef struct {
  Kind       kind;
  char      *dir;
  char      *path;
  GPtrArray *errors;     /* GError* reported through ignored-error */
} Fixture;

static void
on_ignored_error (TsPersister  *p,
                  const GError *error,
                  Fixture      *fx)
{
  g_ptr_array_add (fx->errors, g_error_copy (error));
}

static TsPersister *
new_persister (Fixture          *fx,
               TsMergeableStore *store)
{
  TsPersister *p;

  if (fx->kind == KIND_FILE)
    {
      g_autoptr(GFile) file = g_file_new_for_path (fx->path);

      p = TS_PERSISTER (ts_file_persister_new (store, file));
    }
  else
    {
      g_autoptr(GError) error = NULL;

      p = TS_PERSISTER (ts_sqlite_persister_new (store, fx->path, &error));
      g_assert_no_error (error);
    }
  g_signal_connect (p, "ignored-error", G_CALLBACK (on_ignored_error), fx);
  return p;
}

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  fx->kind = GPOINTER_TO_INT (data);
  fx->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  if (g_test_subprocess ())
    {
      /* a child of test_kill: the parent's files */
      fx->path = g_strdup (g_getenv ("TS_TEST_KILL_PATH"));
      g_assert_nonnull (fx->path);
      fx->dir = g_path_get_dirname (fx->path);
      return;
    }
  fx->dir = g_dir_make_tmp ("tinysync-persister-XXXXXX", &error);
  g_assert_no_error (error);
  fx->path = g_build_filename (fx->dir, fx->kind == KIND_FILE ? "store.json" : "store.db", NULL);
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir == NULL)
    {
      g_unlink (path);
      return;
    }
  g_chmod (path, 0755);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_dir_close (dir);
  g_rmdir (path);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  /* let finished threads and idle sources go */
  spin (10);
  if (!g_test_subprocess ())
    remove_tree (fx->dir);
  g_free (fx->dir);
  g_free (fx->path);
  g_ptr_array_unref (fx->errors);
}

static gboolean
has_error (Fixture *fx,
           int      code)
{
  for (guint i = 0; i < fx->errors->len; i++)
    {
      const GError *e = fx->errors->pdata[i];

      if (e->domain == TS_ERROR && e->code == code)
        return TRUE;
    }
  return FALSE;
}

static gint64
fixed_now (gpointer data)
{
  return *(gint64 *) data;
}

/* A store with object and array cells, Unicode and integer-like ids, an id
 * holding NUL, control characters, a lone surrogate, deletions and values */
static TsMergeableStore *
new_rich_store (const char *id)
{
  TsMergeableStore *store = ts_mergeable_store_new (id);
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_mergeable_store_set_tables_json (store,
    "{\"pets\":{\"fido\":{\"species\":\"dog\",\"legs\":4,\"toys\":[\"ball\",1,null],"
    "\"owner\":{\"name\":\"Ann\",\"age\":30}},\"1\":{\"b\":true}},"
    "\"t\xc3\xa5" "ble \xe2\x9c\x93\":{\"row \xf0\x9f\x90\xb1\":{\"cell \xc3\xbc\":\"\xc3\xbc\","
    "\"n\":0.1,\"big\":1e21,\"nul\":null,\"neg\":-1.5e-7}},"
    "\"10\":{\"2\":{\"x\":\"a\\u0000b\\ud800\\u001f\"},\"r\\u0000x\":{\"c\":\"\\\"q\\\"\"}}}",
    &error));
  g_assert_no_error (error);
  g_assert_true (ts_mergeable_store_set_values_json (store,
    "{\"open\":true,\"conf\":{\"k\":[1,2]},\"v\":\"x\",\"gone\":1,\"9\":0}", &error));
  g_assert_no_error (error);
  ts_mergeable_store_del_cell (store, "pets", "fido", "legs");
  ts_mergeable_store_del_row (store, "pets", "1");
  ts_mergeable_store_del_value (store, "gone");
  ts_mergeable_store_set_cell_string (store, "pets", "rex", "species", "wolf");
  return store;
}

static void
assert_same_content (TsMergeableStore *a,
                     TsMergeableStore *b)
{
  g_autofree char *ca = ts_mergeable_store_get_mergeable_content_json (a);
  g_autofree char *cb = ts_mergeable_store_get_mergeable_content_json (b);
  g_autofree char *ta = ts_mergeable_store_get_tables_json (a);
  g_autofree char *tb = ts_mergeable_store_get_tables_json (b);
  g_autofree char *va = ts_mergeable_store_get_values_json (a);
  g_autofree char *vb = ts_mergeable_store_get_values_json (b);
  guint32 ha[2], hb[2];

  g_assert_cmpstr (ca, ==, cb);
  g_assert_cmpstr (ta, ==, tb);
  g_assert_cmpstr (va, ==, vb);
  ts_mergeable_store_get_mergeable_content_hashes (a, &ha[0], &ha[1]);
  ts_mergeable_store_get_mergeable_content_hashes (b, &hb[0], &hb[1]);
  g_assert_cmpuint (ha[0], ==, hb[0]);
  g_assert_cmpuint (ha[1], ==, hb[1]);
}

static char *
read_file (const char *path)
{
  char *contents = NULL;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

/* ---- Round trips --------------------------------------------------------- */

static void
test_round_trip (Fixture       *fx,
                 gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = new_rich_store ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) c = ts_mergeable_store_new ("c");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(TsPersister) pc = NULL;
  g_autoptr(GError) error = NULL;
  guint loads, saves;

  g_assert_true (ts_persister_get_store (pa) == a);
  g_assert_true (run_save (pa, &error));
  g_assert_no_error (error);

  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (a, b);

  /* and once more: b saves what it loaded, c loads that */
  g_assert_true (run_save (pb, &error));
  g_assert_no_error (error);
  pc = new_persister (fx, c);
  g_assert_true (run_load (pc, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (a, c);

  ts_persister_get_stats (pb, &loads, &saves);
  g_assert_cmpuint (loads, ==, 1);
  g_assert_cmpuint (saves, ==, 1);
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* The file is exactly the mergeable content JSON (TinyBase's format);
 * saving is atomic and leaves no temporary file; the mode is kept. */
static void
test_file_format (Fixture       *fx,
                  gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = new_rich_store ("a");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GDir) dir = NULL;
  struct stat st;

  g_assert_true (run_save (pa, &error));
  g_assert_no_error (error);
  content = read_file (fx->path);
  expected = ts_mergeable_store_get_mergeable_content_json (a);
  g_assert_cmpstr (content, ==, expected);
  g_assert_nonnull (strstr (content, "[\"\xef\xbf\xbc\","));            /* deletions */
  g_assert_nonnull (strstr (content, "\"\xef\xbf\xbd{\\\"name\\\""));  /* objects */

  g_assert_cmpint (g_chmod (fx->path, 0640), ==, 0);
  ts_mergeable_store_set_cell_string (a, "pets", "fido", "species", "cat");
  g_assert_true (run_save (pa, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (fx->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0640);

  dir = g_dir_open (fx->dir, 0, NULL);
  g_assert_cmpstr (g_dir_read_name (dir), ==, "store.json");
  g_assert_null (g_dir_read_name (dir));
}

/* A symbolic link stays a link; its target is replaced */
static void
test_file_symlink (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = new_rich_store ("a");
  g_autofree char *target = g_build_filename (fx->dir, "target.json", NULL);
  g_autofree char *content = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(TsPersister) pa = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (symlink ("target.json", fx->path), ==, 0);
  pa = new_persister (fx, a);
  g_assert_true (run_save (pa, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (fx->path, G_FILE_TEST_IS_SYMLINK));
  content = read_file (target);
  expected = ts_mergeable_store_get_mergeable_content_json (a);
  g_assert_cmpstr (content, ==, expected);
}

/* Nothing persisted: not an error; the initial content is default content */
static void
test_missing (Fixture       *fx,
              gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  g_autofree char *tables = NULL;

  g_assert_true (run_load (pa, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (ts_mergeable_store_has_tables (a));

  g_assert_true (run_load (pa, "[{\"pets\":{\"fido\":{\"species\":\"dog\"}}},{\"open\":true}]", &error));
  g_assert_no_error (error);
  content = ts_mergeable_store_get_mergeable_content_json (a);
  /* default content has no time */
  g_assert_nonnull (strstr (content, "\"species\":[\"dog\",\"\","));

  /* bad initial content is an error, but not one of the persisted data:
   * auto-save still writes */
  g_clear_object (&pb);
  {
    g_autoptr(TsMergeableStore) c = ts_mergeable_store_new ("c");
    g_autoptr(TsPersister) pc = NULL;

    g_unlink (fx->path);
    pc = new_persister (fx, c);
    g_assert_false (run_load (pc, "[{\"t\":", &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
    g_clear_error (&error);
    run_start_auto_save (pc);
    ts_mergeable_store_set_cell_number (c, "t", "r", "c", 1);
    g_assert_true (run_flush (pc, &error));
    g_assert_no_error (error);
    g_ptr_array_set_size (fx->errors, 0);
  }

  /* an empty file (TinyBase's auto-load creates one) is nothing too */
  if (fx->kind == KIND_FILE)
    {
      g_assert_true (g_file_set_contents (fx->path, "", 0, NULL));
      pb = new_persister (fx, b);
      g_assert_true (run_load (pb, "[{\"t\":{\"r\":{\"c\":1}}},{}]", &error));
      g_assert_no_error (error);
      tables = ts_mergeable_store_get_tables_json (b);
      g_assert_cmpstr (tables, ==, "{\"t\":{\"r\":{\"c\":1}}}");
    }
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* Loading merges: stamps the store wrote later win over persisted ones */
static void
test_load_merges (Fixture       *fx,
                  gconstpointer  data)
{
  gint64 now_a = 1710000000000, now_b = 1710000100000;
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) check = ts_mergeable_store_new ("check");
  g_autoptr(TsPersister) pa = NULL;
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(TsPersister) pc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *tables = NULL;
  g_autofree char *values = NULL;

  ts_mergeable_store_set_clock (a, fixed_now, &now_a, NULL);
  ts_mergeable_store_set_clock (b, fixed_now, &now_b, NULL);

  g_assert_true (ts_mergeable_store_set_tables_json (a,
    "{\"pets\":{\"fido\":{\"species\":\"dog\",\"legs\":4}}}", &error));
  ts_mergeable_store_set_value_string (a, "v", "from a");
  pa = new_persister (fx, a);
  g_assert_true (run_save (pa, &error));
  g_assert_no_error (error);

  /* b changed fido's species later, and has its own cell */
  ts_mergeable_store_set_cell_string (b, "pets", "fido", "species", "cat");
  ts_mergeable_store_set_cell_string (b, "pets", "felix", "species", "cat");
  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  g_assert_no_error (error);
  tables = ts_mergeable_store_get_tables_json (b);
  g_assert_cmpstr (tables, ==,
                   "{\"pets\":{\"fido\":{\"species\":\"cat\",\"legs\":4},\"felix\":{\"species\":\"cat\"}}}");
  values = ts_mergeable_store_get_values_json (b);
  g_assert_cmpstr (values, ==, "{\"v\":\"from a\"}");

  /* b saves the union; the persisted content equals b's */
  g_assert_true (run_save (pb, &error));
  g_assert_no_error (error);
  pc = new_persister (fx, check);
  g_assert_true (run_load (pc, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (b, check);
}

/* ---- Auto-save ----------------------------------------------------------- */

static void
test_auto_save (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  guint saves0, saves1;

  run_start_auto_save (pa);
  g_assert_true (ts_persister_is_auto_saving (pa));
  ts_persister_get_stats (pa, NULL, &saves0);
  g_assert_cmpuint (saves0, ==, 1);   /* the first, full save */

  ts_mergeable_store_set_cell_string (a, "pets", "fido", "species", "dog");
  g_assert_true (run_flush (pa, &error));
  g_assert_no_error (error);

  /* a burst in one main loop iteration: one save */
  ts_persister_get_stats (pa, NULL, &saves0);
  for (int i = 0; i < 50; i++)
    {
      g_autofree char *row = g_strdup_printf ("r%d", i);

      ts_mergeable_store_set_cell_number (a, "t", row, "n", i);
    }
  ts_mergeable_store_del_cell (a, "t", "r7", "n");
  ts_mergeable_store_set_value_string (a, "v", "\xf0\x9f\x98\x80");
  g_assert_true (run_flush (pa, &error));
  g_assert_no_error (error);
  ts_persister_get_stats (pa, NULL, &saves1);
  g_assert_cmpuint (saves1 - saves0, ==, 1);

  /* a transaction that changed nothing saves nothing */
  ts_mergeable_store_set_cell_number (a, "t", "r1", "n", 1);
  g_assert_true (run_flush (pa, &error));
  ts_persister_get_stats (pa, NULL, &saves0);
  g_assert_cmpuint (saves0, ==, saves1);

  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (a, b);

  /* stopped: changes stay unsaved */
  ts_persister_stop_auto_save (pa);
  g_assert_false (ts_persister_is_auto_saving (pa));
  ts_mergeable_store_set_cell_string (a, "pets", "fido", "species", "cat");
  g_assert_true (run_flush (pa, &error));
  ts_persister_get_stats (pa, NULL, &saves1);
  g_assert_cmpuint (saves1, ==, saves0);
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* Changes made while a save is in flight are saved together afterwards */
static gboolean
is_saving (gpointer data)
{
  return ts_persister_get_status (data) == TS_PERSISTER_STATUS_SAVING;
}

static void
test_auto_save_coalesces (Fixture       *fx,
                          gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  guint saves0, saves1;
  int n = 0;

  run_start_auto_save (pa);
  ts_persister_get_stats (pa, NULL, &saves0);
  ts_mergeable_store_set_cell_number (a, "t", "r", "n", n++);
  g_assert_true (wait_until (is_saving, pa, WAIT_TIMEOUT_MS));
  /* one change per main loop iteration while the save runs */
  while (ts_persister_get_status (pa) == TS_PERSISTER_STATUS_SAVING)
    {
      ts_mergeable_store_set_cell_number (a, "t", "r", "n", n++);
      g_main_context_iteration (NULL, FALSE);
    }
  g_assert_true (run_flush (pa, &error));
  g_assert_no_error (error);
  ts_persister_get_stats (pa, NULL, &saves1);
  /* the first save, then the rest of the burst at most once more (twice
   * if the first finished between two changes) */
  g_assert_cmpuint (saves1 - saves0, <=, 3);
  g_assert_cmpuint (saves1 - saves0, <=, (guint) n);

  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  assert_same_content (a, b);
}

/* ---- Auto-load ----------------------------------------------------------- */

static gboolean
has_species (gpointer data)
{
  g_autofree char *cell = ts_mergeable_store_get_cell_json (data, "pets", "fido", "species");

  return g_strcmp0 (cell, "\"cat\"") == 0;
}

static void
test_auto_load (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = new_persister (fx, b);
  g_autoptr(GError) error = NULL;
  guint loads0, loads1;

  run_start_auto_load (pa, "[{\"pets\":{\"fido\":{\"species\":\"dog\"}}},{}]");
  g_assert_true (ts_persister_is_auto_loading (pa));
  run_start_auto_save (pa);

  /* someone else writes: a follows */
  ts_mergeable_store_set_cell_string (b, "pets", "fido", "species", "cat");
  g_assert_true (run_save (pb, &error));
  g_assert_no_error (error);
  g_assert_true (wait_until (has_species, a, WAIT_TIMEOUT_MS));

  /* a's own saves are not loaded back */
  g_assert_true (run_flush (pa, &error));
  spin (300);
  ts_persister_get_stats (pa, &loads0, NULL);
  ts_mergeable_store_set_cell_string (a, "pets", "fido", "name", "Fido");
  g_assert_true (run_flush (pa, &error));
  g_assert_no_error (error);
  spin (fx->kind == KIND_SQLITE ? 1500 : 300);
  ts_persister_get_stats (pa, &loads1, NULL);
  g_assert_cmpuint (loads1, ==, loads0);

  /* stopped: no more loads */
  ts_persister_stop_auto_load (pa);
  g_assert_false (ts_persister_is_auto_loading (pa));
  ts_mergeable_store_set_cell_string (b, "pets", "fido", "species", "dog");
  g_assert_true (run_save (pb, &error));
  spin (fx->kind == KIND_SQLITE ? 1500 : 300);
  g_assert_true (has_species (a));
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* ---- Bad data ------------------------------------------------------------ */

typedef struct {
  const char *text;
  int         code;
} BadCase;

static void
test_file_corrupt (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(TsMergeableStore) good = new_rich_store ("good");
  g_autofree char *good_text = ts_mergeable_store_get_mergeable_content_json (good);
  g_autofree char *truncated = g_strndup (good_text, strlen (good_text) / 2);
  BadCase cases[] = {
    { truncated, TS_ERROR_INVALID_JSON },
    { "\x7f" "ELF garbage", TS_ERROR_INVALID_JSON },
    { "[[{},\"\",0],[{},\"\",0]", TS_ERROR_INVALID_JSON },
    { "{\"not\":\"content\"}", TS_ERROR_INVALID_CONTENT },
    { "[1,2]", TS_ERROR_INVALID_CONTENT },
    { "null", TS_ERROR_INVALID_CONTENT },
    /* a plain Store's file */
    { "[{\"pets\":{\"fido\":{\"species\":\"dog\"}}},{}]", TS_ERROR_INVALID_CONTENT },
    /* an HLC far in the future */
    { "[[{\"t\":[{\"r\":[{\"c\":[1,\"zzzzzzzz----0000\",1]},\"\",1]},\"\",1]},\"\",1],[{},\"\",0]]",
      TS_ERROR_INVALID_CONTENT },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TsMergeableStore) store = new_rich_store ("s");
      g_autoptr(TsPersister) p = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *before = ts_mergeable_store_get_mergeable_content_json (store);
      g_autofree char *after = NULL;
      g_autofree char *file_after = NULL;

      g_test_message ("case %u: %s", i, cases[i].text);
      g_ptr_array_set_size (fx->errors, 0);
      g_assert_true (g_file_set_contents (fx->path, cases[i].text, -1, NULL));
      p = new_persister (fx, store);

      g_assert_false (run_load (p, "[{\"x\":{\"y\":{\"z\":1}}},{}]", &error));
      g_assert_error (error, TS_ERROR, cases[i].code);
      g_assert_true (has_error (fx, cases[i].code));
      after = ts_mergeable_store_get_mergeable_content_json (store);
      g_assert_cmpstr (before, ==, after);

      /* auto-save does not overwrite what failed to load */
      run_start_auto_save (p);
      ts_mergeable_store_set_cell_string (store, "pets", "fido", "species", "emu");
      g_clear_error (&error);
      g_assert_false (run_flush (p, &error));
      g_assert_error (error, TS_ERROR, TS_ERROR_IO);
      file_after = read_file (fx->path);
      g_assert_cmpstr (file_after, ==, cases[i].text);

      /* an explicit save does */
      g_clear_error (&error);
      g_assert_true (run_save (p, &error));
      g_assert_no_error (error);
      g_clear_pointer (&file_after, g_free);
      file_after = read_file (fx->path);
      g_clear_pointer (&after, g_free);
      after = ts_mergeable_store_get_mergeable_content_json (store);
      g_assert_cmpstr (file_after, ==, after);
      g_assert_true (run_flush (p, &error));
      g_assert_no_error (error);
    }
}

static void
test_sqlite_corrupt (Fixture       *fx,
                     gconstpointer  data)
{
  g_autoptr(TsMergeableStore) store = new_rich_store ("s");
  g_autofree char *before = ts_mergeable_store_get_mergeable_content_json (store);
  g_autofree char *after = NULL;
  g_autofree char *file_after = NULL;
  g_autoptr(TsSqlitePersister) p = NULL;
  g_autoptr(GError) error = NULL;
  const char garbage[] = "this is not an SQLite database, but it is long enough to look like one ......"
                         "................................................................................";
  const char *damage[] = {
    "DELETE FROM tinysync_container_stamps WHERE kind = 3",
    "UPDATE tinysync_cell_stamps SET hash = 'x'",
    "UPDATE tinysync_cell_stamps SET value_json = '1],\"d\":[2'",
    "UPDATE tinysync_meta SET value = '99' WHERE key = 'format'",
  };
  sqlite3 *db;

  /* not a database: the persister cannot be made, the file stays */
  g_assert_true (g_file_set_contents (fx->path, garbage, -1, NULL));
  p = ts_sqlite_persister_new (store, fx->path, &error);
  g_assert_null (p);
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT);
  file_after = read_file (fx->path);
  g_assert_cmpstr (file_after, ==, garbage);
  g_clear_error (&error);
  g_unlink (fx->path);

  /* a cell stamp without its row stamp, a hash of the wrong type */
  {
    g_autoptr(TsMergeableStore) other = ts_mergeable_store_new ("o");
    g_autoptr(TsPersister) po = new_persister (fx, other);

    ts_mergeable_store_set_cell_number (other, "t", "r", "c", 1);
    g_assert_true (run_save (po, &error));
    g_assert_no_error (error);
  }
  for (guint i = 0; i < G_N_ELEMENTS (damage); i++)
    {
      g_autoptr(TsPersister) po = NULL;
      g_autoptr(TsMergeableStore) empty = ts_mergeable_store_new ("e");

      g_assert_cmpint (sqlite3_open (fx->path, &db), ==, SQLITE_OK);
      /* the persister's own connection may still be closing (its last
       * checkpoint) in a worker thread: wait for its lock, as it does */
      sqlite3_busy_timeout (db, 5000);
      g_assert_cmpint (sqlite3_exec (db, "BEGIN", NULL, NULL, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_exec (db, damage[i], NULL, NULL, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);

      if (i == 3)
        {
          g_clear_object (&p);
          p = ts_sqlite_persister_new (store, fx->path, &error);
          g_assert_null (p);
          g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT);
          g_clear_error (&error);
          sqlite3_close (db);
          continue;
        }
      p = ts_sqlite_persister_new (store, fx->path, &error);
      g_assert_no_error (error);
      g_assert_false (run_load (TS_PERSISTER (p), NULL, &error));
      g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT);
      g_clear_error (&error);
      g_clear_pointer (&after, g_free);
      after = ts_mergeable_store_get_mergeable_content_json (store);
      g_assert_cmpstr (before, ==, after);
      g_clear_object (&p);

      /* restore */
      g_assert_cmpint (sqlite3_exec (db, "DELETE FROM tinysync_cell_stamps;"
                                         "DELETE FROM tinysync_container_stamps", NULL, NULL, NULL),
                       ==, SQLITE_OK);
      sqlite3_close (db);
      po = new_persister (fx, empty);
      ts_mergeable_store_set_cell_number (empty, "t", "r", "c", 1);
      g_assert_true (run_save (po, &error));
      g_assert_no_error (error);
    }
}

static void
test_read_only (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(TsMergeableStore) store = new_rich_store ("s");
  g_autofree char *blocker = g_build_filename (fx->dir, "not-a-dir", NULL);
  g_autofree char *ro_dir = g_build_filename (fx->dir, "ro", NULL);
  const char *paths[2];

  /* a path under a regular file fails for everyone, root included; a
   * read-only folder only for other users */
  g_assert_true (g_file_set_contents (blocker, "", 0, NULL));
  g_assert_cmpint (g_mkdir (ro_dir, 0755), ==, 0);
  paths[0] = blocker;
  paths[1] = ro_dir;
  g_assert_cmpint (g_chmod (ro_dir, 0555), ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autofree char *path = g_build_filename (paths[i], fx->kind == KIND_FILE ? "s.json" : "s.db", NULL);
      g_autoptr(GError) error = NULL;

      if (i == 1 && access (ro_dir, W_OK) == 0)
        {
          g_test_message ("running as root: a read-only folder is writable");
          continue;
        }
      g_ptr_array_set_size (fx->errors, 0);
      if (fx->kind == KIND_FILE)
        {
          g_autoptr(GFile) file = g_file_new_for_path (path);
          g_autoptr(TsFilePersister) p = ts_file_persister_new (store, file);

          g_signal_connect (p, "ignored-error", G_CALLBACK (on_ignored_error), fx);
          g_assert_false (run_save (TS_PERSISTER (p), &error));
          g_assert_error (error, TS_ERROR, TS_ERROR_IO);
          g_assert_true (has_error (fx, TS_ERROR_IO));
          g_clear_error (&error);
          /* auto-save reports, the store keeps working */
          run_start_auto_save (TS_PERSISTER (p));
          ts_mergeable_store_set_cell_string (store, "pets", "fido", "species", "emu");
          g_assert_false (run_flush (TS_PERSISTER (p), &error));
          g_assert_error (error, TS_ERROR, TS_ERROR_IO);
          g_clear_error (&error);
          /* a missing file in a read-only folder is nothing to load; a
           * file under a regular file cannot be read */
          if (i == 1)
            {
              g_assert_true (run_load (TS_PERSISTER (p), NULL, &error));
              g_assert_no_error (error);
            }
          else
            {
              g_assert_false (run_load (TS_PERSISTER (p), NULL, &error));
              g_assert_error (error, TS_ERROR, TS_ERROR_IO);
            }
        }
      else
        {
          g_autoptr(TsSqlitePersister) p = ts_sqlite_persister_new (store, path, &error);

          g_assert_null (p);
          g_assert_error (error, TS_ERROR, TS_ERROR_IO);
        }
    }
  g_chmod (ro_dir, 0755);
}

/* ---- SQLite specifics ---------------------------------------------------- */

static void
fill_store (TsMergeableStore *store,
            guint             n_rows,
            guint             n_cells)
{
  ts_mergeable_store_start_transaction (store);
  for (guint r = 0; r < n_rows; r++)
    {
      char row[16];

      g_snprintf (row, sizeof row, "r%u", r);
      for (guint c = 0; c < n_cells; c++)
        {
          char cell[16];

          g_snprintf (cell, sizeof cell, "c%u", c);
          ts_mergeable_store_set_cell_number (store, "t", row, cell, r * n_cells + c);
        }
    }
  ts_mergeable_store_finish_transaction (store);
}

static void
test_sqlite_incremental (Fixture       *fx,
                         gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  TsSqlitePersister *sa = TS_SQLITE_PERSISTER (pa);
  gint64 before, after;
  guint saves0, saves1;

  fill_store (a, 100, 100);   /* 10k cells */
  run_start_auto_save (pa);
  g_assert_cmpint (_ts_sqlite_persister_get_total_changes (sa), >=, 10000);

  /* one cell: the cell, its row, its table, the tables */
  before = _ts_sqlite_persister_get_total_changes (sa);
  ts_mergeable_store_set_cell_number (a, "t", "r42", "c7", -1);
  g_assert_true (run_flush (pa, &error));
  g_assert_no_error (error);
  after = _ts_sqlite_persister_get_total_changes (sa);
  g_assert_cmpint (after - before, ==, 4);

  /* one value: the value and the values */
  before = after;
  ts_mergeable_store_set_value_boolean (a, "open", TRUE);
  g_assert_true (run_flush (pa, &error));
  after = _ts_sqlite_persister_get_total_changes (sa);
  g_assert_cmpint (after - before, ==, 2);

  /* a new row in a new table, a deletion, an object cell */
  before = after;
  ts_mergeable_store_start_transaction (a);
  ts_mergeable_store_del_cell (a, "t", "r1", "c1");
  g_assert_true (ts_mergeable_store_set_cell_json (a, "u", "x", "o", "{\"k\":[1,2]}", &error));
  ts_mergeable_store_finish_transaction (a);
  g_assert_true (run_flush (pa, &error));
  after = _ts_sqlite_persister_get_total_changes (sa);
  g_assert_cmpint (after - before, ==, 7);

  /* many transactions in one main loop iteration: one SQL transaction */
  ts_persister_get_stats (pa, NULL, &saves0);
  for (int i = 0; i < 20; i++)
    ts_mergeable_store_set_cell_number (a, "t", "r5", "c5", i);
  g_assert_true (run_flush (pa, &error));
  ts_persister_get_stats (pa, NULL, &saves1);
  g_assert_cmpuint (saves1 - saves0, ==, 1);

  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (a, b);
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* A merged stamp that wins with an equal value changes hashes without
 * being a listed change: the persister then saves everything. */
static void
test_sqlite_unlisted (Fixture       *fx,
                      gconstpointer  data)
{
  gint64 now_a = 1710000100000, now_b = 1710000000000;
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) c = ts_mergeable_store_new ("c");
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(TsPersister) pc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *content_a = NULL;
  g_autofree char *changes = NULL;

  ts_mergeable_store_set_clock (a, fixed_now, &now_a, NULL);
  ts_mergeable_store_set_clock (b, fixed_now, &now_b, NULL);
  ts_mergeable_store_set_cell_string (a, "pets", "fido", "species", "dog");
  ts_mergeable_store_set_cell_string (b, "pets", "fido", "species", "dog");
  ts_mergeable_store_set_cell_string (b, "pets", "rex", "species", "dog");
  pb = new_persister (fx, b);
  run_start_auto_save (pb);

  /* a's later stamp of the same value wins in b: nothing listed */
  content_a = ts_mergeable_store_get_mergeable_content_json (a);
  g_assert_true (ts_mergeable_store_apply_mergeable_changes_json (b, content_a, &error));
  g_assert_no_error (error);
  g_assert_true (run_flush (pb, &error));
  g_assert_no_error (error);

  /* an empty row from a crafted peer, a container HLC */
  g_assert_true (ts_mergeable_store_apply_mergeable_changes_json (b,
    "[[{\"pets\":[{\"empty\":[{}]},\"NsYwJk0----0peer\"]}],[{}],1]", &error));
  g_assert_no_error (error);
  g_assert_true (run_flush (pb, &error));
  g_assert_no_error (error);

  pc = new_persister (fx, c);
  g_assert_true (run_load (pc, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (b, c);
}

/* What a save reported done survives the process being killed right
 * after (kill -9) */
static void
test_kill (Fixture       *fx,
           gconstpointer  data)
{
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *cell = NULL;

  if (g_test_subprocess ())
    {
      g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
      g_autoptr(TsPersister) pa = new_persister (fx, a);

      fill_store (a, 100, 10);
      run_start_auto_save (pa);
      for (int i = 0; i < 10; i++)
        {
          ts_mergeable_store_set_cell_number (a, "t", "r3", "c3", -i);
          g_main_context_iteration (NULL, FALSE);
        }
      g_assert_true (run_flush (pa, &error));
      g_assert_no_error (error);
      kill (getpid (), SIGKILL);
      g_assert_not_reached ();
    }

  g_setenv ("TS_TEST_KILL_PATH", fx->path, TRUE);
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_unsetenv ("TS_TEST_KILL_PATH");
  g_test_trap_assert_failed ();

  pb = new_persister (fx, b);
  g_assert_true (run_load (pb, NULL, &error));
  g_assert_no_error (error);
  cell = ts_mergeable_store_get_cell_json (b, "t", "r3", "c3");
  g_assert_cmpstr (cell, ==, "-9");
  g_assert_cmpuint (ts_mergeable_store_get_row_count (b, "t"), ==, 100);
}

/* ---- Status and statistics ----------------------------------------------- */

static void
on_status (GObject    *object,
           GParamSpec *pspec,
           GString    *log)
{
  g_string_append_printf (log, "%d", ts_persister_get_status (TS_PERSISTER (object)));
}

static void
test_status (Fixture       *fx,
             gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = new_rich_store ("a");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(GString) log = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  TsPersisterStatus status;
  guint loads, saves;

  g_signal_connect (pa, "notify::status", G_CALLBACK (on_status), log);
  g_assert_cmpint (ts_persister_get_status (pa), ==, TS_PERSISTER_STATUS_IDLE);
  g_assert_true (run_save (pa, &error));
  g_assert_true (run_load (pa, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (log->str, ==, "2010");
  g_object_get (pa, "status", &status, NULL);
  g_assert_cmpint (status, ==, TS_PERSISTER_STATUS_IDLE);
  ts_persister_get_stats (pa, &loads, &saves);
  g_assert_cmpuint (loads, ==, 1);
  g_assert_cmpuint (saves, ==, 1);
}

/* A cancelled load changes nothing and blocks nothing */
static void
test_cancel (Fixture       *fx,
             gconstpointer  data)
{
  g_autoptr(TsMergeableStore) a = new_rich_store ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsPersister) pa = new_persister (fx, a);
  g_autoptr(TsPersister) pb = new_persister (fx, b);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (run_save (pa, &error));
  g_cancellable_cancel (cancellable);
  ts_persister_load_async (pb, NULL, cancellable, got_result, &result);
  g_assert_false (ts_persister_load_finish (pb, wait_result (&result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (ts_mergeable_store_has_tables (b));
  g_assert_cmpuint (fx->errors->len, ==, 0);
  g_clear_error (&error);
  g_clear_object (&result);

  ts_persister_start_auto_save_async (pb, cancellable, got_result, &result);
  g_assert_false (ts_persister_start_auto_save_finish (pb, wait_result (&result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (ts_persister_is_auto_saving (pb));
}

/* ---- Performance (-m perf) ----------------------------------------------- */

static gint64
file_size (const char *path)
{
  struct stat st;

  return g_stat (path, &st) == 0 ? st.st_size : 0;
}

static void
perf_one (Fixture *fx,
          guint    n_cells)
{
  g_autofree char *path = g_strdup_printf ("%s/perf-%u.db", fx->dir, n_cells);
  g_autofree char *wal = g_strdup_printf ("%s-wal", path);
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsSqlitePersister) pa = NULL;
  g_autoptr(TsSqlitePersister) pb = NULL;
  g_autoptr(GError) error = NULL;
  sqlite3 *db;
  gint64 t0, total_us = 0, set_us = 0, total_bytes = 0, rows0;
  const int rounds = 50;

  fill_store (a, n_cells / 10, 10);
  pa = ts_sqlite_persister_new (a, path, &error);
  g_assert_no_error (error);
  t0 = g_get_monotonic_time ();
  run_start_auto_save (TS_PERSISTER (pa));
  g_test_message ("%u cells: full save %.3f s", n_cells,
                  (g_get_monotonic_time () - t0) / 1e6);

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  rows0 = _ts_sqlite_persister_get_total_changes (pa);
  for (int i = 0; i < rounds; i++)
    {
      char row[16];

      g_assert_cmpint (sqlite3_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), ==, SQLITE_OK);
      g_assert_cmpint (file_size (wal), ==, 0);
      g_snprintf (row, sizeof row, "r%u", g_random_int_range (0, n_cells / 10));
      t0 = g_get_monotonic_time ();
      ts_mergeable_store_set_cell_number (a, "t", row, "c3", i + 0.5);
      set_us += g_get_monotonic_time () - t0;
      g_assert_true (run_flush (TS_PERSISTER (pa), &error));
      total_us += g_get_monotonic_time () - t0;
      total_bytes += file_size (wal);
    }
  sqlite3_close (db);
  g_test_message ("%u cells: single-cell change %.3f ms (set_cell %.3f ms, then the save "
                  "until its commit), %.0f rows and %.0f WAL bytes per change",
                  n_cells, total_us / 1e3 / rounds, set_us / 1e3 / rounds,
                  (double) (_ts_sqlite_persister_get_total_changes (pa) - rows0) / rounds,
                  (double) total_bytes / rounds);
  g_test_minimized_result (total_us / 1e6 / rounds, "single-cell save, %u cells", n_cells);

  pb = ts_sqlite_persister_new (b, path, &error);
  g_assert_no_error (error);
  t0 = g_get_monotonic_time ();
  g_assert_true (run_load (TS_PERSISTER (pb), NULL, &error));
  g_assert_no_error (error);
  g_test_message ("%u cells: load %.3f s", n_cells, (g_get_monotonic_time () - t0) / 1e6);
  {
    guint32 ha, hb;

    ts_mergeable_store_get_mergeable_content_hashes (a, &ha, NULL);
    ts_mergeable_store_get_mergeable_content_hashes (b, &hb, NULL);
    g_assert_cmpuint (ha, ==, hb);
  }
}

static void
test_sqlite_perf (Fixture       *fx,
                  gconstpointer  data)
{
  const char *max = g_getenv ("TS_PERF_CELLS");
  guint64 limit = max != NULL ? g_ascii_strtoull (max, NULL, 10) : 1000000;

  perf_one (fx, 10000);
  if (limit > 10000)
    perf_one (fx, (guint) limit);
}

int
main (int argc, char **argv)
{
  struct {
    const char *name;
    void (*func) (Fixture *, gconstpointer);
    gboolean file;
    gboolean sqlite;
  } tests[] = {
    { "round-trip", test_round_trip, TRUE, TRUE },
    { "format", test_file_format, TRUE, FALSE },
    { "symlink", test_file_symlink, TRUE, FALSE },
    { "missing", test_missing, TRUE, TRUE },
    { "load-merges", test_load_merges, TRUE, TRUE },
    { "auto-save", test_auto_save, TRUE, TRUE },
    { "auto-save-coalesces", test_auto_save_coalesces, TRUE, TRUE },
    { "auto-load", test_auto_load, TRUE, TRUE },
    { "corrupt", test_file_corrupt, TRUE, FALSE },
    { "corrupt", test_sqlite_corrupt, FALSE, TRUE },
    { "read-only", test_read_only, TRUE, TRUE },
    { "incremental", test_sqlite_incremental, FALSE, TRUE },
    { "unlisted-stamps", test_sqlite_unlisted, FALSE, TRUE },
    { "kill-9", test_kill, TRUE, TRUE },
    { "status", test_status, TRUE, TRUE },
    { "cancel", test_cancel, TRUE, TRUE },
  };

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      for (int kind = KIND_FILE; kind <= KIND_SQLITE; kind++)
        {
          g_autofree char *path = NULL;

          if (!(kind == KIND_FILE ? tests[i].file : tests[i].sqlite))
            continue;
          path = g_strdup_printf ("/tinysync/persister/%s/%s",
                                  kind == KIND_FILE ? "file" : "sqlite", tests[i].name);
          g_test_add (path, Fixture, GINT_TO_POINTER (kind),
                      fixture_setup, tests[i].func, fixture_teardown);
        }
    }
  if (g_test_perf ())
    g_test_add ("/tinysync/persister/sqlite/perf", Fixture, GINT_TO_POINTER (KIND_SQLITE),
                fixture_setup, test_sqlite_perf, fixture_teardown);

  return g_test_run ();
}
