/* test-full-disk.c: persisters on a full data folder
 *
 * SPDX-License-Identifier: MIT
 *
 * Mounts a 512 KiB tmpfs (needs root; skipped otherwise), saves a small
 * store there, then tries to save one that does not fit: the save fails
 * with a clear error, nothing crashes, and what was saved before still
 * loads unchanged.
 */
#include "config.h"

#include <glib/gstdio.h>

#include <tinysync/tinysync.h>

typedef struct {
  char *dir;
  gboolean mounted;
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *cmd = NULL;
  int status = 0;

  f->dir = g_dir_make_tmp ("tinysync-full-XXXXXX", NULL);
  cmd = g_strdup_printf ("mount -t tmpfs -o size=512k tmpfs %s", f->dir);
  f->mounted = g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL) &&
               g_spawn_check_wait_status (status, NULL);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  if (f->mounted)
    {
      g_autofree char *cmd = g_strdup_printf ("umount -l %s", f->dir);
      g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
}

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  GError **error = data;

  if (!ts_persister_save_finish (TS_PERSISTER (source), result, error) && *error == NULL)
    g_set_error_literal (error, TS_ERROR, TS_ERROR_FAILED, "failed without an error");
  if (*error == NULL)
    *error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_EXISTS, "ok");
}

/* Saves; returns NULL on success, the error otherwise. */
static GError *
save (TsPersister *persister)
{
  GError *error = NULL;

  ts_persister_save_async (persister, NULL, on_done, &error);
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_EXISTS))
    g_clear_error (&error);
  return error;
}

static void
on_loaded (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_persister_load_finish (TS_PERSISTER (source), result, &error));
  g_assert_no_error (error);
  *(gboolean *) data = TRUE;
}

static void
load (TsPersister *persister)
{
  gboolean done = FALSE;

  ts_persister_load_async (persister, NULL, NULL, on_loaded, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

static void
fill (TsMergeableStore *store)
{
  ts_mergeable_store_start_transaction (store);
  for (int i = 0; i < 40000; i++)
    {
      char row[16];
      g_snprintf (row, sizeof row, "r%d", i);
      ts_mergeable_store_set_cell_string (store, "big", row, "text",
                                          "some text that takes room on the disk");
    }
  ts_mergeable_store_finish_transaction (store);
}

typedef TsPersister *(*MakePersister) (TsMergeableStore *store, const char *dir);

static TsPersister *
make_file (TsMergeableStore *store,
           const char       *dir)
{
  g_autofree char *path = g_build_filename (dir, "store.json", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (path);

  return TS_PERSISTER (ts_file_persister_new (store, file));
}

static TsPersister *
make_sqlite (TsMergeableStore *store,
             const char       *dir)
{
  g_autofree char *path = g_build_filename (dir, "store.sqlite", NULL);
  g_autoptr(GError) error = NULL;
  TsSqlitePersister *persister = ts_sqlite_persister_new (store, path, &error);

  g_assert_no_error (error);
  return TS_PERSISTER (persister);
}

static void
test_full (Fixture       *f,
           gconstpointer  data)
{
  MakePersister make = (MakePersister) data;
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("s");
  g_autoptr(TsMergeableStore) again = ts_mergeable_store_new ("t");
  g_autoptr(TsPersister) persister = NULL;
  g_autoptr(TsPersister) reader = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *saved = NULL;
  g_autofree char *loaded = NULL;

  if (!f->mounted)
    {
      g_test_skip ("mounting a small tmpfs needs root");
      return;
    }

  persister = make (store, f->dir);
  ts_mergeable_store_set_cell_string (store, "small", "r", "c", "kept");
  error = save (persister);
  g_assert_no_error (error);
  saved = ts_mergeable_store_get_mergeable_content_json (store);

  /* about 2 MB of content into a 512 KiB folder */
  fill (store);
  error = save (persister);
  g_assert_nonnull (error);
  g_test_message ("save on a full folder: %s", error->message);

  /* what was saved before is still there, intact */
  reader = make (again, f->dir);
  load (reader);
  loaded = ts_mergeable_store_get_mergeable_content_json (again);
  g_assert_cmpstr (loaded, ==, saved);
  g_assert_true (ts_mergeable_store_has_cell (again, "small", "r", "c"));
  g_assert_false (ts_mergeable_store_has_table (again, "big"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/tinysync/full-disk/file", Fixture, make_file,
              fixture_set_up, test_full, fixture_tear_down);
  g_test_add ("/tinysync/full-disk/sqlite", Fixture, make_sqlite,
              fixture_set_up, test_full, fixture_tear_down);

  return g_test_run ();
}
