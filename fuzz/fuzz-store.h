/* fuzz-store.h: store helpers shared by the store and persister targets
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <string.h>

#include <glib/gstdio.h>

#include "tinysync/tinysync.h"
#include "tinysync/ts-json-private.h"

#include "fuzz-common.h"

/* The vectors' clock (tests/data/store-scenarios.json "T"), one minute on:
 * stamps up to five minutes ahead of it are accepted. */
#define FUZZ_NOW G_GINT64_CONSTANT (1710000060000)

static inline gint64
fuzz_fixed_clock (gpointer user_data)
{
  return FUZZ_NOW;
}

/* Content written locally (every kind of cell, a deleted cell, row and
 * value, integer-like ids), so its hashes are right. */
static inline char *
fuzz_make_preload (void)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new ("fuzz-preload");
  g_autoptr(GError) error = NULL;

  ts_mergeable_store_set_clock (store, fuzz_fixed_clock, NULL, NULL);
  if (!ts_mergeable_store_set_tables_json (store,
        "{\"pets\":{\"fido\":{\"species\":\"dog\",\"legs\":4,\"sold\":false},"
        "\"felix\":{\"species\":\"cat\",\"color\":\"black\"},"
        "\"rex\":{\"species\":\"dog\"}},"
        "\"7\":{\"0\":{\"1\":1.5,\"x\":\"\\u00e9\\ud83d\\ude00\"}}}", &error) ||
      !ts_mergeable_store_set_values_json (store,
        "{\"open\":true,\"employees\":3,\"motto\":\"hi\"}", &error))
    {
      fprintf (stderr, "preload: %s\n", error->message);
      abort ();
    }
  ts_mergeable_store_del_cell (store, "pets", "felix", "color");
  ts_mergeable_store_del_row (store, "pets", "rex");
  ts_mergeable_store_del_value (store, "motto");
  return ts_mergeable_store_get_mergeable_content_json (store);
}

/* A store with the fixed clock, holding preload (if not NULL). */
static inline TsMergeableStore *
fuzz_store_new (const char *unique_id,
                const char *preload)
{
  TsMergeableStore *store = ts_mergeable_store_new (unique_id);

  ts_mergeable_store_set_clock (store, fuzz_fixed_clock, NULL, NULL);
  if (preload != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!ts_mergeable_store_set_mergeable_content_json (store, preload, &error))
        {
          fprintf (stderr, "preload: %s\n", error->message);
          abort ();
        }
    }
  return store;
}

/* The store's mergeable content, checked to parse. */
static inline char *
fuzz_content_of (TsMergeableStore *store)
{
  char *content = ts_mergeable_store_get_mergeable_content_json (store);
  g_autoptr(TsJsonDoc) doc = ts_json_parse (content, -1, NULL);

  FUZZ_CHECK (doc != NULL);
  return content;
}

static inline void
fuzz_check_hashes_equal (TsMergeableStore *a,
                         TsMergeableStore *b)
{
  guint32 ta, va, tb, vb;

  ts_mergeable_store_get_mergeable_content_hashes (a, &ta, &va);
  ts_mergeable_store_get_mergeable_content_hashes (b, &tb, &vb);
  if (ta != tb || va != vb)
    {
      g_autofree char *ca = ts_mergeable_store_get_mergeable_content_json (a);
      g_autofree char *cb = ts_mergeable_store_get_mergeable_content_json (b);

      fprintf (stderr, "content hashes differ: [%u,%u] [%u,%u]\n  %s\n  %s\n",
               ta, va, tb, vb, ca, cb);
      abort ();
    }
}

/* ---- JSON with sorted members ------------------------------------------- */

static inline int
fuzz_compare_members (gconstpointer a,
                      gconstpointer b)
{
  const TsJsonMember *ma = *(const TsJsonMember * const *) a;
  const TsJsonMember *mb = *(const TsJsonMember * const *) b;
  int c = memcmp (ma->key, mb->key, MIN (ma->key_len, mb->key_len));

  return c != 0 ? c : (ma->key_len > mb->key_len) - (ma->key_len < mb->key_len);
}

static inline void
fuzz_write_sorted (GString          *out,
                   const TsJsonNode *node)
{
  if (node->type == TS_JSON_OBJECT)
    {
      g_autoptr(GPtrArray) members = g_ptr_array_new ();

      for (guint32 i = 0; i < node->len; i++)
        g_ptr_array_add (members, &node->u.members[i]);
      g_ptr_array_sort (members, fuzz_compare_members);
      g_string_append_c (out, '{');
      for (guint i = 0; i < members->len; i++)
        {
          const TsJsonMember *m = members->pdata[i];

          if (i > 0)
            g_string_append_c (out, ',');
          ts_json_write_string (out, m->key, m->key_len);
          g_string_append_c (out, ':');
          fuzz_write_sorted (out, &m->value);
        }
      g_string_append_c (out, '}');
    }
  else if (node->type == TS_JSON_ARRAY)
    {
      g_string_append_c (out, '[');
      for (guint32 i = 0; i < node->len; i++)
        {
          if (i > 0)
            g_string_append_c (out, ',');
          fuzz_write_sorted (out, &node->u.items[i]);
        }
      g_string_append_c (out, ']');
    }
  else
    ts_json_write_node (out, node);
}

/* json (freed) with every object's members sorted by key: content whose
 * order is history (a row deleted and written again moves to the end, as
 * in TinyBase) compares equal to a store loaded from it. */
static inline char *
fuzz_sorted_json (char *json)
{
  g_autoptr(TsJsonDoc) doc = ts_json_parse (json, -1, NULL);
  GString *out = g_string_new (NULL);

  FUZZ_CHECK (doc != NULL);
  fuzz_write_sorted (out, ts_json_doc_get_root (doc));
  g_free (json);
  return g_string_free (out, FALSE);
}

/* ---- Persisters: the async API run to completion ---------------------------- */

typedef struct {
  gboolean      done;
  GAsyncResult *result;
} FuzzWait;

static inline void
fuzz_wait_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  FuzzWait *wait = data;

  wait->result = g_object_ref (result);
  wait->done = TRUE;
}

static inline gboolean
fuzz_persister_load (TsPersister  *persister,
                     GError      **error)
{
  FuzzWait wait = { FALSE, NULL };
  gboolean ok;

  ts_persister_load_async (persister, NULL, NULL, fuzz_wait_cb, &wait);
  while (!wait.done)
    g_main_context_iteration (NULL, TRUE);
  ok = ts_persister_load_finish (persister, wait.result, error);
  g_object_unref (wait.result);
  return ok;
}

static inline gboolean
fuzz_persister_save (TsPersister  *persister,
                     GError      **error)
{
  FuzzWait wait = { FALSE, NULL };
  gboolean ok;

  ts_persister_save_async (persister, NULL, fuzz_wait_cb, &wait);
  while (!wait.done)
    g_main_context_iteration (NULL, TRUE);
  ok = ts_persister_save_finish (persister, wait.result, error);
  g_object_unref (wait.result);
  return ok;
}

/* A private directory for the files of a persister target (tmpfs if
 * there is one), emptied and removed at exit. */
static char *fuzz_tmp_dir;

static inline void
fuzz_remove_tmp_dir (void)
{
  g_autoptr(GDir) dir = g_dir_open (fuzz_tmp_dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fuzz_tmp_dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (fuzz_tmp_dir);
}

static inline const char *
fuzz_make_tmp_dir (void)
{
  if (g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR))
    fuzz_tmp_dir = g_mkdtemp (g_strdup ("/dev/shm/tinysync-fuzz-XXXXXX"));
  if (fuzz_tmp_dir == NULL)
    fuzz_tmp_dir = g_dir_make_tmp ("tinysync-fuzz-XXXXXX", NULL);
  if (fuzz_tmp_dir == NULL)
    abort ();
  atexit (fuzz_remove_tmp_dir);
  return fuzz_tmp_dir;
}
