/* fuzz-persister-load.c: loading the file of a TsFilePersister
 *
 * SPDX-License-Identifier: MIT
 *
 * The input is the content of the persisted file. It is loaded
 * (ts_persister_load_async()) into an empty store and into a store that
 * already holds some content, both with a fixed clock. Checked:
 * - a load that fails sets an error and leaves the store as it was;
 * - after a load the store's content re-parses; a load into the preloaded
 *   store merges (hashes are computed), so that content applied to a fresh
 *   store gives the same content hashes;
 * - what the persister then saves loads back into a fresh store with the
 *   same mergeable content, byte for byte.
 */

#include "fuzz-store.h"

static GFile *file;
static char *preload_json;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_autofree char *path = NULL;

  fuzz_init ();
  path = g_build_filename (fuzz_make_tmp_dir (), "store.json", NULL);
  file = g_file_new_for_path (path);
  preload_json = fuzz_make_preload ();
  return 0;
}

static void
check_save_loads_back (TsMergeableStore *store,
                       TsPersister      *persister)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TsMergeableStore) again = fuzz_store_new ("fuzz-again", NULL);
  g_autoptr(TsFilePersister) again_persister = NULL;
  g_autofree char *content = fuzz_content_of (store);
  g_autofree char *again_content = NULL;

  if (!fuzz_persister_save (persister, &error))
    {
      fprintf (stderr, "save failed: %s\n", error->message);
      abort ();
    }
  again_persister = ts_file_persister_new (again, file);
  if (!fuzz_persister_load (TS_PERSISTER (again_persister), &error))
    {
      fprintf (stderr, "saved content does not load: %s\n", error->message);
      abort ();
    }
  again_content = fuzz_content_of (again);
  if (strcmp (content, again_content) != 0)
    {
      fprintf (stderr, "saved content loads differently:\n  %s\n  %s\n", content, again_content);
      abort ();
    }
  fuzz_check_hashes_equal (store, again);
}

static void
fuzz_load (const uint8_t *data,
           size_t         size,
           const char    *preload)
{
  g_autoptr(TsMergeableStore) store = fuzz_store_new ("fuzz-store", preload);
  g_autoptr(TsFilePersister) persister = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = fuzz_content_of (store);
  g_autofree char *after = NULL;

  if (!g_file_replace_contents (file, (const char *) data, size, NULL, FALSE,
                                G_FILE_CREATE_NONE, NULL, NULL, &error))
    {
      fprintf (stderr, "cannot write the input: %s\n", error->message);
      abort ();
    }

  persister = ts_file_persister_new (store, file);
  if (!fuzz_persister_load (TS_PERSISTER (persister), &error))
    {
      FUZZ_CHECK (error != NULL && error->message != NULL);
      after = fuzz_content_of (store);
      FUZZ_CHECK (strcmp (before, after) == 0);
      return;
    }
  FUZZ_CHECK (error == NULL);
  after = fuzz_content_of (store);

  if (preload != NULL)
    {
      /* merged: the hashes were computed, so they must be right */
      g_autoptr(TsMergeableStore) fresh = fuzz_store_new ("fuzz-fresh", NULL);

      if (!ts_mergeable_store_apply_mergeable_changes_json (fresh, after, &error))
        {
          fprintf (stderr, "own content rejected (%s): %s\n", error->message, after);
          abort ();
        }
      fuzz_check_hashes_equal (store, fresh);
    }

  check_save_loads_back (store, TS_PERSISTER (persister));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  fuzz_load (data, size, NULL);
  fuzz_load (data, size, preload_json);
  return 0;
}
