/* ts-sqlite-persister.c: a mergeable store in an SQLite database, saved incrementally
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "ts-error.h"
#include "ts-json-private.h"
#include "ts-private.h"
#include "ts-sqlite-persister.h"
#include "ts-sqlite-persister-private.h"

/**
 * TsSqlitePersister:
 *
 * A [class@Tinysync.Persister] that keeps a store in an SQLite database,
 * stamp by stamp, so that auto-save writes only what a transaction
 * changed: after a one-cell change in a store of a million cells, one
 * save updates a handful of rows (the cell, its row, its table and the
 * tables stamp).
 *
 * The database holds these tables (created if missing; other tables in
 * the same database are left alone):
 *
 * - `tinysync_cell_stamps (table_id, row_id, cell_id, value_json, hlc, hash)`,
 *   primary key `(table_id, row_id, cell_id)`: one row per cell stamp;
 *   `value_json` is the JSON text of the encoded cell (`"\uFFFC"` for a
 *   deleted cell, U+FFFD and JSON text in a string for an object or array).
 * - `tinysync_value_stamps (value_id, value_json, hlc, hash)`, primary key
 *   `value_id`.
 * - `tinysync_container_stamps (kind, table_id, row_id, hlc, hash)`,
 *   primary key `(kind, table_id, row_id)`: the HLC and hash of the tables
 *   (kind 0), the values (kind 1), each table (kind 2, `row_id` empty) and
 *   each row (kind 3).
 * - `tinysync_meta (key, value)`: the format version.
 *
 * Loading rebuilds the mergeable content, hashes included, from these
 * tables, in the order the stamps were first written; the base class
 * merges it into the store.
 *
 * Durability: the database uses write-ahead logging (`journal_mode=WAL`)
 * with `synchronous=FULL`, so a save is reported done only after its
 * commit reached the disk (the log is flushed at every commit): it
 * survives the process being killed and a power loss. (`NORMAL` would
 * survive `kill -9` but could lose the last commits on a power loss.) To
 * keep that affordable, auto-save groups the changes of all transactions
 * of one main loop iteration, and those made while a commit is in flight,
 * into one SQL transaction. The SQL runs in a worker thread.
 *
 * Auto-load polls `PRAGMA data_version` every second, which changes when
 * another connection (another persister, another process) commits.
 *
 * Since: 1.0
 */

struct _TsSqlitePersister
{
  TsPersister    parent_instance;

  char          *path;
  sqlite3       *db;              /* used by one thread at a time, under write_lock */
  sqlite3_stmt  *upsert_cell;
  sqlite3_stmt  *upsert_value;
  sqlite3_stmt  *upsert_container;
  GMutex         write_lock;      /* whoever uses db holds it */

  GSource       *poll;
  gint64         data_version;
};

static void ts_sqlite_persister_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsSqlitePersister, ts_sqlite_persister, TS_TYPE_PERSISTER,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      ts_sqlite_persister_initable_iface_init))

enum {
  PROP_0,
  PROP_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

#define FORMAT_VERSION "1"
#define POLL_INTERVAL_MS 1000

enum {
  KIND_TABLES = 0,
  KIND_VALUES = 1,
  KIND_TABLE = 2,
  KIND_ROW = 3,
};

static const char schema_sql[] =
  "CREATE TABLE IF NOT EXISTS tinysync_meta ("
  "  key TEXT PRIMARY KEY NOT NULL,"
  "  value TEXT NOT NULL);"
  "INSERT OR IGNORE INTO tinysync_meta (key, value) VALUES ('format', '" FORMAT_VERSION "');"
  "CREATE TABLE IF NOT EXISTS tinysync_container_stamps ("
  "  kind INTEGER NOT NULL,"
  "  table_id TEXT NOT NULL,"
  "  row_id TEXT NOT NULL,"
  "  hlc TEXT NOT NULL,"
  "  hash INTEGER NOT NULL,"
  "  PRIMARY KEY (kind, table_id, row_id));"
  "CREATE TABLE IF NOT EXISTS tinysync_cell_stamps ("
  "  table_id TEXT NOT NULL,"
  "  row_id TEXT NOT NULL,"
  "  cell_id TEXT NOT NULL,"
  "  value_json TEXT NOT NULL,"
  "  hlc TEXT NOT NULL,"
  "  hash INTEGER NOT NULL,"
  "  PRIMARY KEY (table_id, row_id, cell_id));"
  "CREATE TABLE IF NOT EXISTS tinysync_value_stamps ("
  "  value_id TEXT PRIMARY KEY NOT NULL,"
  "  value_json TEXT NOT NULL,"
  "  hlc TEXT NOT NULL,"
  "  hash INTEGER NOT NULL);";

/* Upserts keep the rowid of an existing stamp, so rowid order is the
 * order in which stamps were first written. */
static const char upsert_cell_sql[] =
  "INSERT INTO tinysync_cell_stamps (table_id, row_id, cell_id, value_json, hlc, hash) "
  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (table_id, row_id, cell_id) "
  "DO UPDATE SET value_json = excluded.value_json, hlc = excluded.hlc, hash = excluded.hash";
static const char upsert_value_sql[] =
  "INSERT INTO tinysync_value_stamps (value_id, value_json, hlc, hash) "
  "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (value_id) "
  "DO UPDATE SET value_json = excluded.value_json, hlc = excluded.hlc, hash = excluded.hash";
static const char upsert_container_sql[] =
  "INSERT INTO tinysync_container_stamps (kind, table_id, row_id, hlc, hash) "
  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, table_id, row_id) "
  "DO UPDATE SET hlc = excluded.hlc, hash = excluded.hash";

/* ---- Errors -------------------------------------------------------------- */

static void
set_db_error (TsSqlitePersister  *self,
              int                 rc,
              GError            **error)
{
  int primary = rc & 0xff;
  int code = primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB
             ? TS_ERROR_INVALID_CONTENT : TS_ERROR_IO;
  const char *message = self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc);

  g_set_error (error, TS_ERROR, code, _("SQLite database “%s”: %s"), self->path, message);
}

static void
set_corrupt_error (TsSqlitePersister  *self,
                   const char         *what,
                   GError            **error)
{
  g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT,
               _("SQLite database “%s” holds invalid stamps: %s"), self->path, what);
}

static gboolean
exec (TsSqlitePersister  *self,
      const char         *sql,
      GError            **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      set_db_error (self, rc, error);
      return FALSE;
    }
  return TRUE;
}

static void
rollback (TsSqlitePersister *self)
{
  if (!sqlite3_get_autocommit (self->db))
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- Loading: the stamps back to mergeable content JSON ------------------ */

typedef struct {
  GString *leaves;        /* "cellId":[...],... */
  char    *hlc;
  guint32  hash;
} RowB;

typedef struct {
  GPtrArray  *rows;       /* RowB*, first-write order */
  GPtrArray  *row_keys;   /* JSON text of the row ids, same order */
  GHashTable *by_key;     /* JSON text of a row id -> RowB* */
  char       *hlc;
  guint32     hash;
} TableB;

static void
row_b_free (RowB *row)
{
  g_string_free (row->leaves, TRUE);
  g_free (row->hlc);
  g_free (row);
}

static void
table_b_free (TableB *table)
{
  g_ptr_array_unref (table->rows);
  g_ptr_array_unref (table->row_keys);
  g_hash_table_unref (table->by_key);
  g_free (table->hlc);
  g_free (table);
}

/* The JSON text of a text column (ids may hold any character) */
static void
write_text_column (GString      *out,
                   sqlite3_stmt *stmt,
                   int           column)
{
  const char *text = (const char *) sqlite3_column_text (stmt, column);
  int len = sqlite3_column_bytes (stmt, column);

  ts_json_write_string (out, text != NULL ? text : "", len);
}

static gboolean
read_hash (sqlite3_stmt *stmt,
           int           column,
           guint32      *hash)
{
  sqlite3_int64 v;

  if (sqlite3_column_type (stmt, column) != SQLITE_INTEGER)
    return FALSE;
  v = sqlite3_column_int64 (stmt, column);
  if (v < 0 || v > G_MAXUINT32)
    return FALSE;
  *hash = (guint32) v;
  return TRUE;
}

static char *
dup_text_column (sqlite3_stmt *stmt,
                 int           column)
{
  GString *s = g_string_new (NULL);

  write_text_column (s, stmt, column);
  return g_string_free (s, FALSE);
}

static void
append_uint (GString *out,
             guint32  n)
{
  char buf[16];
  int i = sizeof buf;

  do
    buf[--i] = '0' + n % 10;
  while ((n /= 10) != 0);
  g_string_append_len (out, buf + i, sizeof buf - i);
}

/* A value_json column must be exactly one JSON value, so that it cannot
 * change the shape of the content around it (the whole content is parsed
 * later, which catches any other syntax error): one string, or one token
 * without structural characters, or (a raw object or array that a peer
 * sent unencoded) a container that parses alone. */
static gboolean
is_one_value (const char *json,
              gsize       len)
{
  if (len == 0)
    return FALSE;
  if (json[0] == '"')
    {
      gsize i = 1;

      while (i < len && json[i] != '"')
        i += json[i] == '\\' ? 2 : 1;
      return i == len - 1;
    }
  if (json[0] == '{' || json[0] == '[')
    {
      g_autoptr(TsJsonDoc) doc = ts_json_parse (json, len, NULL);

      return doc != NULL;
    }
  for (gsize i = 0; i < len; i++)
    if (strchr (",:[]{}\" \t\r\n", json[i]) != NULL || json[i] == '\0')
      return FALSE;
  return TRUE;
}

static gboolean
append_leaf (GString      *out,
             GString      *key,
             sqlite3_stmt *stmt,
             int           first)
{
  const char *json = (const char *) sqlite3_column_text (stmt, first);
  int len = sqlite3_column_bytes (stmt, first);
  guint32 hash;

  if (json == NULL || !is_one_value (json, len) ||
      sqlite3_column_type (stmt, first + 1) != SQLITE_TEXT ||
      !read_hash (stmt, first + 2, &hash))
    return FALSE;

  if (out->len > 0)
    g_string_append_c (out, ',');
  g_string_append_len (out, key->str, key->len);
  g_string_append (out, ":[");
  g_string_append_len (out, json, len);
  g_string_append_c (out, ',');
  write_text_column (out, stmt, first + 1);
  g_string_append_c (out, ',');
  append_uint (out, hash);
  g_string_append_c (out, ']');
  return TRUE;
}

static void
close_container (GString    *out,
                 const char *hlc,
                 guint32     hash)
{
  g_string_append_c (out, '}');
  g_string_append_c (out, ',');
  g_string_append (out, hlc != NULL ? hlc : "\"\"");
  g_string_append_c (out, ',');
  append_uint (out, hash);
  g_string_append_c (out, ']');
}

/* Returns the content, NULL with no error when nothing is stored. */
static GString *
read_content (TsSqlitePersister  *self,
              GError            **error)
{
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func ((GDestroyNotify) table_b_free);
  g_autoptr(GPtrArray) table_keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) tables_by_key = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GString) values = g_string_new (NULL);
  g_autoptr(GString) key = g_string_new (NULL);
  g_autoptr(GString) last_table = g_string_new (NULL);
  g_autoptr(GString) last_row = g_string_new (NULL);
  RowB *row = NULL;
  g_autofree char *tables_hlc = NULL;
  g_autofree char *values_hlc = NULL;
  guint32 tables_hash = 0, values_hash = 0;
  gsize total = 0;
  gboolean have_tables = FALSE, have_values = FALSE, any = FALSE;
  sqlite3_stmt *stmt = NULL;
  GString *out;
  int rc;

  /* containers, in first-write order */
  rc = sqlite3_prepare_v2 (self->db,
                           "SELECT kind, table_id, row_id, hlc, hash "
                           "FROM tinysync_container_stamps ORDER BY rowid",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    goto db_error;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      int kind = sqlite3_column_int (stmt, 0);
      g_autofree char *hlc = NULL;
      guint32 hash;
      TableB *table;

      any = TRUE;
      if (sqlite3_column_type (stmt, 3) != SQLITE_TEXT || !read_hash (stmt, 4, &hash))
        goto corrupt;
      hlc = dup_text_column (stmt, 3);
      g_string_truncate (key, 0);
      write_text_column (key, stmt, 1);

      switch (kind)
        {
        case KIND_TABLES:
          g_free (tables_hlc);
          tables_hlc = g_steal_pointer (&hlc);
          tables_hash = hash;
          have_tables = TRUE;
          break;
        case KIND_VALUES:
          g_free (values_hlc);
          values_hlc = g_steal_pointer (&hlc);
          values_hash = hash;
          have_values = TRUE;
          break;
        case KIND_TABLE:
          if (g_hash_table_contains (tables_by_key, key->str))
            goto corrupt;
          table = g_new0 (TableB, 1);
          table->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) row_b_free);
          table->row_keys = g_ptr_array_new_with_free_func (g_free);
          table->by_key = g_hash_table_new (g_str_hash, g_str_equal);
          table->hlc = g_steal_pointer (&hlc);
          table->hash = hash;
          g_ptr_array_add (tables, table);
          g_ptr_array_add (table_keys, g_strndup (key->str, key->len));
          g_hash_table_insert (tables_by_key, table_keys->pdata[table_keys->len - 1], table);
          break;
        case KIND_ROW:
          {
            table = g_hash_table_lookup (tables_by_key, key->str);
            if (table == NULL)
              goto corrupt;
            g_string_truncate (key, 0);
            write_text_column (key, stmt, 2);
            if (g_hash_table_contains (table->by_key, key->str))
              goto corrupt;
            row = g_new0 (RowB, 1);
            row->leaves = g_string_new (NULL);
            row->hlc = g_steal_pointer (&hlc);
            row->hash = hash;
            g_ptr_array_add (table->rows, row);
            g_ptr_array_add (table->row_keys, g_strndup (key->str, key->len));
            g_hash_table_insert (table->by_key, table->row_keys->pdata[table->row_keys->len - 1], row);
          }
          break;
        default:
          goto corrupt;
        }
    }
  if (rc != SQLITE_DONE)
    goto db_error;
  g_clear_pointer (&stmt, sqlite3_finalize);

  /* cells */
  row = NULL;
  rc = sqlite3_prepare_v2 (self->db,
                           "SELECT table_id, row_id, cell_id, value_json, hlc, hash "
                           "FROM tinysync_cell_stamps ORDER BY rowid",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    goto db_error;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const void *table_id = sqlite3_column_blob (stmt, 0);
      int table_len = sqlite3_column_bytes (stmt, 0);
      const void *row_id = sqlite3_column_blob (stmt, 1);
      int row_len = sqlite3_column_bytes (stmt, 1);

      any = TRUE;
      /* cells of one row mostly come one after the other */
      if (row == NULL ||
          (gsize) table_len != last_table->len || memcmp (table_id, last_table->str, table_len) != 0 ||
          (gsize) row_len != last_row->len || memcmp (row_id, last_row->str, row_len) != 0)
        {
          TableB *table;

          g_string_truncate (key, 0);
          write_text_column (key, stmt, 0);
          if ((table = g_hash_table_lookup (tables_by_key, key->str)) == NULL)
            goto corrupt;
          g_string_truncate (key, 0);
          write_text_column (key, stmt, 1);
          if ((row = g_hash_table_lookup (table->by_key, key->str)) == NULL)
            goto corrupt;
          g_string_truncate (last_table, 0);
          g_string_append_len (last_table, table_id, table_len);
          g_string_truncate (last_row, 0);
          g_string_append_len (last_row, row_id, row_len);
        }
      g_string_truncate (key, 0);
      write_text_column (key, stmt, 2);
      if (!append_leaf (row->leaves, key, stmt, 3))
        goto corrupt;
    }
  if (rc != SQLITE_DONE)
    goto db_error;
  g_clear_pointer (&stmt, sqlite3_finalize);

  /* values */
  rc = sqlite3_prepare_v2 (self->db,
                           "SELECT value_id, value_json, hlc, hash "
                           "FROM tinysync_value_stamps ORDER BY rowid",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    goto db_error;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      any = TRUE;
      g_string_truncate (key, 0);
      write_text_column (key, stmt, 0);
      if (!append_leaf (values, key, stmt, 1))
        goto corrupt;
    }
  if (rc != SQLITE_DONE)
    goto db_error;
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (!any)
    return NULL;
  if ((tables->len > 0 && !have_tables) || (values->len > 0 && !have_values))
    {
      set_corrupt_error (self, _("a container stamp is missing"), error);
      return NULL;
    }

  for (guint i = 0; i < tables->len; i++)
    {
      TableB *table = tables->pdata[i];

      for (guint j = 0; j < table->rows->len; j++)
        total += ((RowB *) table->rows->pdata[j])->leaves->len + 64;
    }
  out = g_string_sized_new (1024 + values->len + total);
  g_string_append (out, "[[{");
  for (guint i = 0; i < tables->len; i++)
    {
      TableB *table = tables->pdata[i];

      if (i > 0)
        g_string_append_c (out, ',');
      g_string_append (out, table_keys->pdata[i]);
      g_string_append (out, ":[{");
      for (guint j = 0; j < table->rows->len; j++)
        {
          RowB *r = table->rows->pdata[j];

          if (j > 0)
            g_string_append_c (out, ',');
          g_string_append (out, table->row_keys->pdata[j]);
          g_string_append (out, ":[{");
          g_string_append_len (out, r->leaves->str, r->leaves->len);
          close_container (out, r->hlc, r->hash);
        }
      close_container (out, table->hlc, table->hash);
    }
  close_container (out, tables_hlc, tables_hash);
  g_string_append (out, ",[{");
  g_string_append_len (out, values->str, values->len);
  close_container (out, values_hlc, values_hash);
  g_string_append_c (out, ']');
  return out;

corrupt:
  g_clear_pointer (&stmt, sqlite3_finalize);
  set_corrupt_error (self, _("a stamp has the wrong type or no container"), error);
  return NULL;

db_error:
  set_db_error (self, rc, error);
  g_clear_pointer (&stmt, sqlite3_finalize);
  return NULL;
}

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  TsSqlitePersister *self = source_object;
  g_autoptr(GError) error = NULL;
  GString *content;

  g_mutex_lock (&self->write_lock);
  /* one read transaction: a consistent snapshot */
  if (!exec (self, "BEGIN", &error))
    {
      g_mutex_unlock (&self->write_lock);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  content = read_content (self, &error);
  rollback (self);
  g_mutex_unlock (&self->write_lock);

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else if (content == NULL)
    g_task_return_pointer (task, NULL, NULL);
  else
    g_task_return_pointer (task, g_string_free_to_bytes (content), (GDestroyNotify) g_bytes_unref);
}

static void
ts_sqlite_persister_get_persisted_async (TsPersister         *persister,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (persister, cancellable, callback, user_data);

  g_task_set_source_tag (task, ts_sqlite_persister_get_persisted_async);
  g_task_set_name (task, "[tinysync] sqlite load");
  g_task_run_in_thread (task, load_thread);
}

static GBytes *
ts_sqlite_persister_get_persisted_finish (TsPersister   *persister,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, persister), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- Saving -------------------------------------------------------------- */

static gboolean
valid_stamp (const TsJsonNode *stamp,
             gboolean          container)
{
  return stamp->type == TS_JSON_ARRAY && stamp->len == 3 &&
         (!container || stamp->u.items[0].type == TS_JSON_OBJECT) &&
         stamp->u.items[1].type == TS_JSON_STRING &&
         stamp->u.items[2].type == TS_JSON_NUMBER &&
         stamp->u.items[2].u.num >= 0 && stamp->u.items[2].u.num <= G_MAXUINT32;
}

static int
step_reset (sqlite3_stmt *stmt)
{
  int rc = sqlite3_step (stmt);

  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
put_container (TsSqlitePersister *self,
               int                kind,
               const char        *table_id,
               gsize              table_len,
               const char        *row_id,
               gsize              row_len,
               const TsJsonNode  *stamp)
{
  sqlite3_stmt *stmt = self->upsert_container;

  sqlite3_bind_int (stmt, 1, kind);
  sqlite3_bind_text (stmt, 2, table_id, table_len, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, row_id, row_len, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, stamp->u.items[1].u.str, stamp->u.items[1].len, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) stamp->u.items[2].u.num);
  return step_reset (stmt);
}

static int
put_leaves (TsSqlitePersister *self,
            const TsJsonMember *table,
            const TsJsonMember *row,
            const TsJsonNode   *leaves,
            GString            *scratch)
{
  sqlite3_stmt *stmt = row != NULL ? self->upsert_cell : self->upsert_value;
  int first = row != NULL ? 3 : 1;

  for (guint32 i = 0; i < leaves->len; i++)
    {
      const TsJsonMember *leaf = &leaves->u.members[i];
      const TsJsonNode *stamp = &leaf->value;
      int rc;

      if (!valid_stamp (stamp, FALSE))
        return SQLITE_MISMATCH;
      g_string_truncate (scratch, 0);
      ts_json_write_node (scratch, &stamp->u.items[0]);
      if (row != NULL)
        {
          sqlite3_bind_text (stmt, 1, table->key, table->key_len, SQLITE_STATIC);
          sqlite3_bind_text (stmt, 2, row->key, row->key_len, SQLITE_STATIC);
        }
      sqlite3_bind_text (stmt, first, leaf->key, leaf->key_len, SQLITE_STATIC);
      sqlite3_bind_text (stmt, first + 1, scratch->str, scratch->len, SQLITE_STATIC);
      sqlite3_bind_text (stmt, first + 2, stamp->u.items[1].u.str, stamp->u.items[1].len,
                         SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, first + 3, (sqlite3_int64) stamp->u.items[2].u.num);
      if ((rc = step_reset (stmt)) != SQLITE_OK)
        return rc;
    }
  return SQLITE_OK;
}

/* Writes every stamp of content (@roots: the tables and values stamps
 * even when empty) or of with-hashes changes (where an empty tables or
 * values stamp did not change). */
static int
put_stamps (TsSqlitePersister *self,
            const TsJsonNode  *node,
            gboolean           roots,
            GString           *scratch)
{
  const TsJsonNode *tables_stamp, *values_stamp, *tables;
  int rc;

  if (node->type != TS_JSON_ARRAY || node->len < 2)
    return SQLITE_MISMATCH;
  tables_stamp = &node->u.items[0];
  values_stamp = &node->u.items[1];
  if (!valid_stamp (tables_stamp, TRUE) || !valid_stamp (values_stamp, TRUE))
    return SQLITE_MISMATCH;

  tables = &tables_stamp->u.items[0];
  if ((roots || tables->len > 0) &&
      (rc = put_container (self, KIND_TABLES, "", 0, "", 0, tables_stamp)) != SQLITE_OK)
    return rc;
  for (guint32 i = 0; i < tables->len; i++)
    {
      const TsJsonMember *table = &tables->u.members[i];
      const TsJsonNode *rows;

      if (!valid_stamp (&table->value, TRUE))
        return SQLITE_MISMATCH;
      if ((rc = put_container (self, KIND_TABLE, table->key, table->key_len, "", 0,
                               &table->value)) != SQLITE_OK)
        return rc;
      rows = &table->value.u.items[0];
      for (guint32 j = 0; j < rows->len; j++)
        {
          const TsJsonMember *row = &rows->u.members[j];

          if (!valid_stamp (&row->value, TRUE))
            return SQLITE_MISMATCH;
          if ((rc = put_container (self, KIND_ROW, table->key, table->key_len,
                                   row->key, row->key_len, &row->value)) != SQLITE_OK ||
              (rc = put_leaves (self, table, row, &row->value.u.items[0], scratch)) != SQLITE_OK)
            return rc;
        }
    }

  if ((roots || values_stamp->u.items[0].len > 0) &&
      ((rc = put_container (self, KIND_VALUES, "", 0, "", 0, values_stamp)) != SQLITE_OK ||
       (rc = put_leaves (self, NULL, NULL, &values_stamp->u.items[0], scratch)) != SQLITE_OK))
    return rc;
  return SQLITE_OK;
}

typedef struct {
  GBytes   *json;
  gboolean  incremental;
} SaveData;

static void
save_data_free (SaveData *data)
{
  g_bytes_unref (data->json);
  g_free (data);
}

static void
save_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  TsSqlitePersister *self = source_object;
  SaveData *data = task_data;
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autoptr(GString) scratch = g_string_sized_new (256);
  g_autoptr(GError) error = NULL;
  const TsJsonNode *root;
  const char *json;
  gsize len;
  int rc = SQLITE_OK;

  json = g_bytes_get_data (data->json, &len);
  if ((doc = ts_json_parse (json, len, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  root = ts_json_doc_get_root (doc);

  if (g_task_return_error_if_cancelled (task))
    return;

  g_mutex_lock (&self->write_lock);
  if (!exec (self, "BEGIN IMMEDIATE", &error))
    goto out;

  if (data->incremental)
    {
      if (root->type != TS_JSON_ARRAY)
        rc = SQLITE_MISMATCH;
      for (guint32 i = 0; rc == SQLITE_OK && i < root->len; i++)
        rc = put_stamps (self, &root->u.items[i], FALSE, scratch);
    }
  else
    {
      if (!exec (self,
                 "DELETE FROM tinysync_container_stamps;"
                 "DELETE FROM tinysync_cell_stamps;"
                 "DELETE FROM tinysync_value_stamps;", &error))
        goto out;
      rc = put_stamps (self, root, TRUE, scratch);
    }

  if (rc == SQLITE_MISMATCH)
    g_set_error (&error, TS_ERROR, TS_ERROR_INVALID_CONTENT,
                 _("Not saving to SQLite database “%s”: the content has the wrong shape"),
                 self->path);
  else if (rc != SQLITE_OK)
    set_db_error (self, rc, &error);
  else
    exec (self, "COMMIT", &error);

out:
  if (error != NULL)
    rollback (self);
  g_mutex_unlock (&self->write_lock);

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

static void
start_save (TsPersister         *persister,
            GBytes              *json,
            gboolean             incremental,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data,
            gpointer             tag)
{
  g_autoptr(GTask) task = g_task_new (persister, cancellable, callback, user_data);
  SaveData *data = g_new0 (SaveData, 1);

  data->json = g_bytes_ref (json);
  data->incremental = incremental;
  g_task_set_source_tag (task, tag);
  g_task_set_name (task, incremental ? "[tinysync] sqlite save changes" : "[tinysync] sqlite save");
  g_task_set_task_data (task, data, (GDestroyNotify) save_data_free);
  g_task_run_in_thread (task, save_thread);
}

static void
ts_sqlite_persister_set_persisted_async (TsPersister         *persister,
                                GBytes              *content,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  start_save (persister, content, FALSE, cancellable, callback, user_data,
              ts_sqlite_persister_set_persisted_async);
}

static void
ts_sqlite_persister_set_persisted_changes_async (TsPersister         *persister,
                                        GBytes              *changes,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data)
{
  start_save (persister, changes, TRUE, cancellable, callback, user_data,
              ts_sqlite_persister_set_persisted_changes_async);
}

static gboolean
ts_sqlite_persister_set_persisted_finish (TsPersister   *persister,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, persister), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- Watching ------------------------------------------------------------ */

static gboolean
read_data_version (TsSqlitePersister *self,
                   gint64            *version)
{
  sqlite3_stmt *stmt = NULL;
  gboolean ok = FALSE;

  if (sqlite3_prepare_v2 (self->db, "PRAGMA data_version", -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    {
      *version = sqlite3_column_int64 (stmt, 0);
      ok = TRUE;
    }
  sqlite3_finalize (stmt);
  return ok;
}

static gboolean
poll_cb (gpointer data)
{
  TsSqlitePersister *self = data;
  gint64 version;

  /* our own transactions do not change data_version; skip while busy */
  if (ts_persister_get_status (TS_PERSISTER (self)) == TS_PERSISTER_STATUS_IDLE &&
      g_mutex_trylock (&self->write_lock))
    {
      gboolean ok = read_data_version (self, &version);

      g_mutex_unlock (&self->write_lock);
      if (ok && version != self->data_version)
        {
          self->data_version = version;
          ts_persister_persisted_changed (TS_PERSISTER (self));
        }
    }
  return G_SOURCE_CONTINUE;
}

static void
ts_sqlite_persister_stop_watching (TsPersister *persister)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (persister);

  if (self->poll != NULL)
    {
      g_source_destroy (self->poll);
      g_clear_pointer (&self->poll, g_source_unref);
    }
}

static gboolean
ts_sqlite_persister_start_watching (TsPersister  *persister,
                                    GError      **error)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (persister);
  gboolean ok;

  ts_sqlite_persister_stop_watching (persister);
  g_mutex_lock (&self->write_lock);
  ok = read_data_version (self, &self->data_version);
  g_mutex_unlock (&self->write_lock);
  if (!ok)
    {
      set_db_error (self, sqlite3_errcode (self->db), error);
      return FALSE;
    }
  self->poll = g_timeout_source_new (POLL_INTERVAL_MS);
  g_source_set_static_name (self->poll, "[tinysync] sqlite poll");
  g_source_set_callback (self->poll, poll_cb, self, NULL);
  g_source_attach (self->poll, g_main_context_get_thread_default ());
  return TRUE;
}

/* ---- Opening ------------------------------------------------------------- */

static gboolean
prepare (TsSqlitePersister  *self,
         const char         *sql,
         sqlite3_stmt      **stmt,
         GError            **error)
{
  int rc = sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);

  if (rc != SQLITE_OK)
    {
      set_db_error (self, rc, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_format (TsSqlitePersister  *self,
              GError            **error)
{
  sqlite3_stmt *stmt = NULL;
  gboolean ok = FALSE;
  int rc;

  rc = sqlite3_prepare_v2 (self->db, "SELECT value FROM tinysync_meta WHERE key = 'format'",
                           -1, &stmt, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *format = (const char *) sqlite3_column_text (stmt, 0);

      ok = g_strcmp0 (format, FORMAT_VERSION) == 0;
      if (!ok)
        g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT,
                     _("SQLite database “%s” has an unsupported format (%s)"),
                     self->path, format != NULL ? format : "");
    }
  else
    set_db_error (self, rc, error);
  sqlite3_finalize (stmt);
  return ok;
}

static gboolean
ts_sqlite_persister_initable_init (GInitable     *initable,
                                   GCancellable  *cancellable,
                                   GError       **error)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (initable);
  sqlite3_stmt *stmt = NULL;
  gboolean wal = FALSE;
  int rc;

  g_return_val_if_fail (self->path != NULL, FALSE);

  if (self->db != NULL)
    return TRUE;

  rc = sqlite3_open_v2 (self->path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL);
  if (rc != SQLITE_OK)
    goto fail;
  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, 5000);

  /* WAL: readers do not block the writer, commits append to the log.
   * FULL: the log is flushed at every commit, so a finished save is
   * durable. */
  rc = sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *mode = (const char *) sqlite3_column_text (stmt, 0);

      wal = g_strcmp0 (mode, "wal") == 0 || g_strcmp0 (mode, "memory") == 0;
      rc = SQLITE_OK;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (rc != SQLITE_OK)
    goto fail;
  if (!wal)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_IO,
                   _("SQLite database “%s”: write-ahead logging is not available"), self->path);
      goto fail_set;
    }

  if (!exec (self, "PRAGMA synchronous=FULL", error) ||
      !exec (self, "BEGIN IMMEDIATE", error))
    goto fail_set;
  if (!exec (self, schema_sql, error) || !check_format (self, error))
    {
      rollback (self);
      goto fail_set;
    }
  if (!exec (self, "COMMIT", error))
    {
      rollback (self);
      goto fail_set;
    }

  if (!prepare (self, upsert_cell_sql, &self->upsert_cell, error) ||
      !prepare (self, upsert_value_sql, &self->upsert_value, error) ||
      !prepare (self, upsert_container_sql, &self->upsert_container, error))
    goto fail_set;
  return TRUE;

fail:
  set_db_error (self, rc, error);
fail_set:
  g_clear_pointer (&self->upsert_cell, sqlite3_finalize);
  g_clear_pointer (&self->upsert_value, sqlite3_finalize);
  g_clear_pointer (&self->upsert_container, sqlite3_finalize);
  g_clear_pointer (&self->db, sqlite3_close);
  return FALSE;
}

static void
ts_sqlite_persister_initable_iface_init (GInitableIface *iface)
{
  iface->init = ts_sqlite_persister_initable_init;
}

/* ---- GObject ------------------------------------------------------------- */

static void
ts_sqlite_persister_dispose (GObject *object)
{
  ts_sqlite_persister_stop_watching (TS_PERSISTER (object));

  G_OBJECT_CLASS (ts_sqlite_persister_parent_class)->dispose (object);
}

static void
ts_sqlite_persister_finalize (GObject *object)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (object);

  g_clear_pointer (&self->upsert_cell, sqlite3_finalize);
  g_clear_pointer (&self->upsert_value, sqlite3_finalize);
  g_clear_pointer (&self->upsert_container, sqlite3_finalize);
  g_clear_pointer (&self->db, sqlite3_close);
  g_free (self->path);
  g_mutex_clear (&self->write_lock);

  G_OBJECT_CLASS (ts_sqlite_persister_parent_class)->finalize (object);
}

static void
ts_sqlite_persister_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_sqlite_persister_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  TsSqlitePersister *self = TS_SQLITE_PERSISTER (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_assert (self->path == NULL);
      self->path = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_sqlite_persister_class_init (TsSqlitePersisterClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  TsPersisterClass *persister_class = TS_PERSISTER_CLASS (klass);

  object_class->dispose = ts_sqlite_persister_dispose;
  object_class->finalize = ts_sqlite_persister_finalize;
  object_class->get_property = ts_sqlite_persister_get_property;
  object_class->set_property = ts_sqlite_persister_set_property;

  persister_class->get_persisted_async = ts_sqlite_persister_get_persisted_async;
  persister_class->get_persisted_finish = ts_sqlite_persister_get_persisted_finish;
  persister_class->set_persisted_async = ts_sqlite_persister_set_persisted_async;
  persister_class->set_persisted_finish = ts_sqlite_persister_set_persisted_finish;
  persister_class->set_persisted_changes_async = ts_sqlite_persister_set_persisted_changes_async;
  persister_class->set_persisted_changes_finish = ts_sqlite_persister_set_persisted_finish;
  persister_class->start_watching = ts_sqlite_persister_start_watching;
  persister_class->stop_watching = ts_sqlite_persister_stop_watching;

  /**
   * TsSqlitePersister:path: (getter get_path)
   *
   * The file name of the SQLite database.
   *
   * Since: 1.0
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_sqlite_persister_init (TsSqlitePersister *self)
{
  g_mutex_init (&self->write_lock);
}

/**
 * ts_sqlite_persister_new:
 * @store: the store to persist
 * @path: (type filename): the file name of the SQLite database, created if
 *   missing
 * @error: return location for a #GError
 *
 * Opens (or creates) the database at @path and its tinysync tables, and
 * creates a persister that keeps @store in it. Nothing of the store is
 * read or written until the persister is asked to load or save.
 *
 * Returns: (transfer full) (nullable): a new persister, or %NULL if the
 *   database could not be opened (%TS_ERROR_IO) or is not a database or
 *   of a newer format (%TS_ERROR_INVALID_CONTENT)
 *
 * Since: 1.0
 */
TsSqlitePersister *
ts_sqlite_persister_new (TsMergeableStore  *store,
                         const char        *path,
                         GError           **error)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (TS_TYPE_SQLITE_PERSISTER, NULL, error,
                         "store", store, "path", path, NULL);
}

/**
 * ts_sqlite_persister_get_path:
 * @self: an SQLite persister
 *
 * Gets the file name of the database.
 *
 * Returns: (type filename): the file name
 *
 * Since: 1.0
 */
const char *
ts_sqlite_persister_get_path (TsSqlitePersister *self)
{
  g_return_val_if_fail (TS_IS_SQLITE_PERSISTER (self), NULL);

  return self->path;
}

gint64
_ts_sqlite_persister_get_total_changes (TsSqlitePersister *self)
{
  g_return_val_if_fail (TS_IS_SQLITE_PERSISTER (self), 0);

  return sqlite3_total_changes64 (self->db);
}
