/* fuzz-sqlite-persister-load.c: loading the database of a TsSqlitePersister
 *
 * SPDX-License-Identifier: MIT
 *
 * The input lists rows of the persister's tables, one per line, fields
 * separated by tabs (no escapes):
 *   C <kind> <table_id> <row_id> <hlc> <hash>          tinysync_container_stamps
 *   L <table_id> <row_id> <cell_id> <value_json> <hlc> <hash>  tinysync_cell_stamps
 *   V <value_id> <value_json> <hlc> <hash>             tinysync_value_stamps
 *   M <key> <value>                                    tinysync_meta
 * kind and hash go in as integers when they are decimal integers, else as
 * text (a corrupt database); every other field as text, NUL bytes
 * included. Lines that do not fit, or that a constraint refuses, are
 * skipped. The rows are inserted (INSERT OR REPLACE, in order) into a
 * database the persister created, then loaded into an empty store and into
 * a store that already holds some content. Checked as for the file
 * persister (fuzz-persister-load.c): a failed load sets an error and
 * changes nothing; merged hashes are right; what is then saved loads back
 * into a fresh store with the same content hashes and the same content
 * (order aside: the database keeps first-write order).
 */

#include <sqlite3.h>

#include "fuzz-store.h"

static char *db_path;
static char *preload_json;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init ();
  db_path = g_build_filename (fuzz_make_tmp_dir (), "store.db", NULL);
  preload_json = fuzz_make_preload ();
  return 0;
}

static void
remove_db (void)
{
  static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };

  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (db_path, suffixes[i], NULL);

      g_unlink (path);
    }
}

/* ---- The input as rows -------------------------------------------------- */

typedef struct {
  const char *p;
  gsize       len;
} Field;

static gboolean
is_integer (const Field *f)
{
  gsize i = 0;

  if (f->len > 0 && f->p[0] == '-')
    i = 1;
  if (f->len == i || f->len - i > 18)
    return FALSE;
  for (; i < f->len; i++)
    if (f->p[i] < '0' || f->p[i] > '9')
      return FALSE;
  return TRUE;
}

static void
bind_field (sqlite3_stmt *stmt,
            int           column,
            const Field  *f,
            gboolean      maybe_integer)
{
  if (maybe_integer && is_integer (f))
    {
      g_autofree char *s = g_strndup (f->p, f->len);

      sqlite3_bind_int64 (stmt, column, g_ascii_strtoll (s, NULL, 10));
    }
  else
    sqlite3_bind_text (stmt, column, f->p, (int) f->len, SQLITE_TRANSIENT);
}

static void
insert_rows (const char *data,
             gsize       size)
{
  static const struct {
    char        tag;
    guint       n_fields;
    guint       integer_mask;   /* fields that may be integers */
    const char *sql;
  } kinds[] = {
    { 'C', 5, 1 << 0 | 1 << 4,
      "INSERT OR REPLACE INTO tinysync_container_stamps (kind, table_id, row_id, hlc, hash) "
      "VALUES (?1, ?2, ?3, ?4, ?5)" },
    { 'L', 6, 1 << 5,
      "INSERT OR REPLACE INTO tinysync_cell_stamps "
      "(table_id, row_id, cell_id, value_json, hlc, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)" },
    { 'V', 4, 1 << 3,
      "INSERT OR REPLACE INTO tinysync_value_stamps (value_id, value_json, hlc, hash) "
      "VALUES (?1, ?2, ?3, ?4)" },
    { 'M', 2, 0,
      "INSERT OR REPLACE INTO tinysync_meta (key, value) VALUES (?1, ?2)" },
  };
  sqlite3 *db = NULL;
  const char *line = data, *end = data + size;

  if (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    {
      fprintf (stderr, "cannot open %s: %s\n", db_path, sqlite3_errmsg (db));
      abort ();
    }
  sqlite3_exec (db, "BEGIN", NULL, NULL, NULL);

  while (line < end)
    {
      const char *eol = memchr (line, '\n', (gsize) (end - line));
      const char *line_end = eol != NULL ? eol : end;
      Field fields[8];
      guint n = 0;
      const char *p;

      /* "X\tfield\tfield..." */
      if (line_end - line >= 2 && line[1] == '\t')
        {
          for (p = line + 2; n < G_N_ELEMENTS (fields); n++)
            {
              const char *tab = memchr (p, '\t', (gsize) (line_end - p));

              fields[n].p = p;
              fields[n].len = (gsize) ((tab != NULL ? tab : line_end) - p);
              if (tab == NULL)
                {
                  n++;
                  break;
                }
              p = tab + 1;
            }

          for (gsize k = 0; k < G_N_ELEMENTS (kinds); k++)
            {
              sqlite3_stmt *stmt = NULL;

              if (kinds[k].tag != line[0] || kinds[k].n_fields != n)
                continue;
              if (sqlite3_prepare_v2 (db, kinds[k].sql, -1, &stmt, NULL) != SQLITE_OK)
                abort ();
              for (guint i = 0; i < n; i++)
                bind_field (stmt, (int) i + 1, &fields[i], (kinds[k].integer_mask >> i) & 1);
              (void) sqlite3_step (stmt);  /* a refused row is skipped */
              sqlite3_finalize (stmt);
            }
        }
      if (eol == NULL)
        break;
      line = eol + 1;
    }

  sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close (db);
}

/* ---- Loading ------------------------------------------------------------------ */

/* A fresh database holding the input's rows (the persister makes the
 * tables). */
static void
make_db (const uint8_t *data,
         size_t         size)
{
  g_autoptr(TsMergeableStore) store = fuzz_store_new ("fuzz-maker", NULL);
  g_autoptr(TsSqlitePersister) maker = NULL;
  g_autoptr(GError) error = NULL;

  remove_db ();
  maker = ts_sqlite_persister_new (store, db_path, &error);
  if (maker == NULL)
    {
      fprintf (stderr, "cannot create %s: %s\n", db_path, error->message);
      abort ();
    }
  g_clear_object (&maker);
  insert_rows ((const char *) data, size);
}

static void
check_save_loads_back (TsMergeableStore *store,
                       TsPersister      *persister)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TsMergeableStore) again = fuzz_store_new ("fuzz-again", NULL);
  g_autoptr(TsSqlitePersister) again_persister = NULL;
  g_autofree char *content = NULL;
  g_autofree char *again_content = NULL;

  if (!fuzz_persister_save (persister, &error))
    {
      fprintf (stderr, "save failed: %s\n", error->message);
      abort ();
    }
  again_persister = ts_sqlite_persister_new (again, db_path, &error);
  if (again_persister == NULL ||
      !fuzz_persister_load (TS_PERSISTER (again_persister), &error))
    {
      fprintf (stderr, "saved content does not load: %s\n", error->message);
      abort ();
    }
  fuzz_check_hashes_equal (store, again);
  content = fuzz_sorted_json (fuzz_content_of (store));
  again_content = fuzz_sorted_json (fuzz_content_of (again));
  if (strcmp (content, again_content) != 0)
    {
      fprintf (stderr, "saved content loads differently:\n  %s\n  %s\n", content, again_content);
      abort ();
    }
}

static void
fuzz_load (const uint8_t *data,
           size_t         size,
           const char    *preload)
{
  g_autoptr(TsMergeableStore) store = fuzz_store_new ("fuzz-store", preload);
  g_autoptr(TsSqlitePersister) persister = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = fuzz_content_of (store);
  g_autofree char *after = NULL;

  make_db (data, size);
  persister = ts_sqlite_persister_new (store, db_path, &error);
  if (persister == NULL)
    {
      /* only the format row can make the database unusable */
      FUZZ_CHECK (g_error_matches (error, TS_ERROR, TS_ERROR_INVALID_CONTENT));
      return;
    }

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
