/* fuzz-synchronizer.c: the protocol engine (ts-synchronizer.c) fed by a peer
 *
 * SPDX-License-Identifier: MIT
 *
 * Input: frames separated by the byte 0xFF, each "fromClientId\n" followed
 * by a message [requestId, type, body] as a peer would send it (a frame
 * without "\n" comes from "peer"). A request id written "?" (the JSON
 * string) is replaced by the id of the last request the engine sent, so
 * that responses reach the engine's pending requests.
 *
 * The engine syncs a store preloaded with some content, over a transport
 * that records what it sends. After every frame the main context runs
 * until idle. Checked: everything the engine sends is a valid protocol
 * message; the store's hashes stay right (its content applied to a fresh
 * store gives the same hashes, unless a row or table stamp had hash 0 after
 * some frame, see has_zero_hash_container()); destroying the engine with requests pending
 * releases everything (LeakSanitizer).
 */

#include "tinysync/ts-payload-private.h"
#include "tinysync/ts-synchronizer-private.h"

#include "fuzz-store.h"

#define SEPARATOR 0xFF

static char *preload_json;

/* ---- A recording transport ------------------------------------------------ */

#define FUZZ_TYPE_SYNC (fuzz_sync_get_type ())
G_DECLARE_FINAL_TYPE (FuzzSync, fuzz_sync, FUZZ, SYNC, TsSynchronizer)

struct _FuzzSync
{
  TsSynchronizer parent_instance;
  char          *last_request_id;   /* JSON text, NULL before any request */
  guint          sends;
};

G_DEFINE_FINAL_TYPE (FuzzSync, fuzz_sync, TS_TYPE_SYNCHRONIZER)

static void
fuzz_sync_send (TsSynchronizer *sync,
                const char     *to,
                const char     *json,
                gsize           len)
{
  FuzzSync *self = FUZZ_SYNC (sync);
  g_autoptr(TsJsonDoc) doc = ts_json_parse (json, (gssize) len, NULL);
  const char *request_id = NULL;
  gsize request_id_len = 0;
  int type = -1;
  const TsJsonNode *body = NULL;

  self->sends++;
  if (doc == NULL ||
      !ts_protocol_message_valid (ts_json_doc_get_root (doc), &request_id, &request_id_len,
                                  &type, &body))
    {
      fprintf (stderr, "the engine sent an invalid message to %s: %.*s\n",
               to ? to : "(all)", (int) MIN (len, 2000), json);
      abort ();
    }
  if (type != TS_MESSAGE_RESPONSE && request_id != NULL)
    {
      GString *s = g_string_new (NULL);

      ts_json_write_string (s, request_id, request_id_len);
      g_free (self->last_request_id);
      self->last_request_id = g_string_free (s, FALSE);
    }
}

static void
fuzz_sync_destroy (TsSynchronizer *sync)
{
}

static void
fuzz_sync_finalize (GObject *object)
{
  FuzzSync *self = FUZZ_SYNC (object);

  g_free (self->last_request_id);
  G_OBJECT_CLASS (fuzz_sync_parent_class)->finalize (object);
}

static void
fuzz_sync_class_init (FuzzSyncClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fuzz_sync_finalize;
  TS_SYNCHRONIZER_CLASS (klass)->send = fuzz_sync_send;
  TS_SYNCHRONIZER_CLASS (klass)->destroy = fuzz_sync_destroy;
}

static void
fuzz_sync_init (FuzzSync *self)
{
}

/* ---- The hash oracle ------------------------------------------------------- */

/* TRUE if the store has a row or table stamp whose hash is 0 (an empty
 * row or table with no HLC, which a crafted peer can send). For those
 * TinyBase's incremental rule treats the child as new each time a change
 * mentions it again and XORs its I(id, 0) term in and out (PROTOCOL.md
 * 7.3 and 7.4, "Empty Row/Table stamps"); tinysync does the same, so once
 * such a stamp has existed the hashes legitimately differ from those of
 * the content applied once, even after cells fill the row. */
static gboolean
has_zero_hash_container (TsMergeableStore *store)
{
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (store);
  g_autoptr(TsJsonDoc) doc = ts_json_parse (content, -1, NULL);
  const TsJsonNode *tables;

  FUZZ_CHECK (doc != NULL);
  tables = &ts_json_doc_get_root (doc)->u.items[0].u.items[0];
  for (guint32 t = 0; t < tables->len; t++)
    {
      const TsJsonNode *table = &tables->u.members[t].value;
      const TsJsonNode *rows = &table->u.items[0];

      if (table->u.items[2].u.num == 0)
        return TRUE;
      for (guint32 r = 0; r < rows->len; r++)
        if (rows->u.members[r].value.u.items[2].u.num == 0)
          return TRUE;
    }
  return FALSE;
}

/* ---- Entry points ------------------------------------------------------------- */

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init ();
  preload_json = fuzz_make_preload ();
  return 0;
}

static void
drain (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
receive (FuzzSync   *sync,
         const char *frame,
         gsize       len)
{
  const char *nl = memchr (frame, '\n', len);
  g_autofree char *from = NULL;
  g_autoptr(GString) json = NULL;
  const char *hole;

  if (nl != NULL)
    {
      from = g_strndup (frame, (gsize) (nl - frame));
      len -= (gsize) (nl + 1 - frame);
      frame = nl + 1;
    }
  else
    from = g_strdup ("peer");
  /* client ids are text: the transport only passes valid UTF-8 */
  if (!g_utf8_validate (from, -1, NULL))
    return;

  json = g_string_new_len (frame, (gssize) len);
  hole = sync->last_request_id != NULL ? strstr (json->str, "\"?\"") : NULL;
  if (hole != NULL)
    {
      gsize at = (gsize) (hole - json->str);

      g_string_erase (json, (gssize) at, 3);
      g_string_insert (json, (gssize) at, sync->last_request_id);
    }

  ts_synchronizer_receive_message (TS_SYNCHRONIZER (sync), from, json->str,
                                   (gssize) json->len, NULL);
  drain ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(TsMergeableStore) store = fuzz_store_new ("fuzz-store", preload_json);
  g_autoptr(TsMergeableStore) fresh = fuzz_store_new ("fuzz-fresh", NULL);
  g_autoptr(FuzzSync) sync = g_object_new (FUZZ_TYPE_SYNC, "store", store, NULL);
  g_autofree char *content = NULL;
  g_autoptr(GError) error = NULL;
  const uint8_t *p, *end = data + size;
  gboolean legacy_hash_terms = FALSE;

  _ts_synchronizer_start_sync_quietly (TS_SYNCHRONIZER (sync));
  drain ();

  for (p = data; p <= end;)
    {
      const uint8_t *sep = memchr (p, SEPARATOR, (gsize) (end - p));
      const uint8_t *frame_end = sep != NULL ? sep : end;

      receive (sync, (const char *) p, (gsize) (frame_end - p));
      legacy_hash_terms = legacy_hash_terms || has_zero_hash_container (store);
      if (sep == NULL)
        break;
      p = sep + 1;
    }

  /* What the peer's messages made of the store hashes right. */
  content = fuzz_content_of (store);
  if (!ts_mergeable_store_apply_mergeable_changes_json (fresh, content, &error))
    {
      fprintf (stderr, "own content rejected (%s): %s\n", error->message, content);
      abort ();
    }
  if (!legacy_hash_terms)
    fuzz_check_hashes_equal (store, fresh);

  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync));
  drain ();
  return 0;
}
