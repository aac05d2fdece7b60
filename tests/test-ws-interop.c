/* test-ws-interop.c: TsWsSynchronizer against the real TinyBase 10.0.1
 *
 * SPDX-License-Identifier: MIT
 *
 * Drives tests/interop/ws-interop.mjs (TinyBase's createWsServer and
 * TinyBase WsSynchronizer clients on Node) over its stdin/stdout and puts
 * tinysync clients in the same rooms. Every case ends by checking that
 * all peers, C and JavaScript (and TinyBase's server-side stores), hold
 * the same mergeable content and the same content hashes.
 *
 * Run by tests/interop/run-ws-interop.sh, which installs the npm
 * packages and sets TS_NODE and TS_WS_INTEROP_SCRIPT.
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <tinysync/tinysync.h>

/* ======================================================================= */
/* Waiting                                                                  */
/* ======================================================================= */

typedef gboolean (*Predicate) (gpointer data);

static gboolean
timeout_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
wait_for (Predicate pred,
          gpointer  data,
          guint     timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, timeout_flag, &timed_out);

  while (!(pred != NULL && pred (data)) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return pred != NULL && pred (data);
}

static void
sleep_ms (guint ms)
{
  wait_for (NULL, NULL, ms);
}

/* ======================================================================= */
/* The Node side                                                            */
/* ======================================================================= */

typedef struct {
  GSubprocess      *process;
  GOutputStream    *input;
  GDataInputStream *output;
  GHashTable       *replies;    /* id -> JsonNode (object) */
  guint             next_id;
  guint             port;
  gboolean          eof;
  GCancellable     *cancellable;
} Node;

static Node *node;

static void node_read (Node *self);

static void
on_line (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Node *self = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source),
                                                                      result, NULL, &error);
  g_autoptr(JsonParser) parser = NULL;
  JsonObject *object;

  if (line == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        self->eof = TRUE;
      return;
    }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, line, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    g_error ("node printed: %s", line);
  object = json_node_get_object (json_parser_get_root (parser));
  if (json_object_has_member (object, "port") && !json_object_has_member (object, "id"))
    self->port = json_object_get_int_member (object, "port");
  else
    g_hash_table_insert (self->replies,
                         GUINT_TO_POINTER (json_object_get_int_member (object, "id")),
                         json_node_copy (json_parser_get_root (parser)));
  node_read (self);
}

static void
node_read (Node *self)
{
  g_data_input_stream_read_line_async (self->output, G_PRIORITY_DEFAULT, self->cancellable,
                                       on_line, self);
}

static gboolean
node_has_port (gpointer data)
{
  return ((Node *) data)->port != 0 || ((Node *) data)->eof;
}

static Node *
node_start (void)
{
  const char *node_path = g_getenv ("TS_NODE");
  const char *script = g_getenv ("TS_WS_INTEROP_SCRIPT");
  g_autoptr(GError) error = NULL;
  Node *self;

  if (node_path == NULL || script == NULL)
    return NULL;
  self = g_new0 (Node, 1);
  self->replies = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) json_node_unref);
  self->cancellable = g_cancellable_new ();
  self->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                    &error, node_path, script, NULL);
  g_assert_no_error (error);
  self->input = g_subprocess_get_stdin_pipe (self->process);
  self->output = g_data_input_stream_new (g_subprocess_get_stdout_pipe (self->process));
  node_read (self);
  g_assert_true (wait_for (node_has_port, self, 30000));
  g_assert_false (self->eof);
  return self;
}

typedef struct {
  Node  *node;
  guint  id;
} Reply;

static gboolean
reply_arrived (gpointer data)
{
  Reply *r = data;

  return r->node->eof || g_hash_table_contains (r->node->replies, GUINT_TO_POINTER (r->id));
}

/* Sends {"id":N, <members>} and returns the reply (an object). */
static JsonNode *
node_call (const char *members_format,
           ...) G_GNUC_PRINTF (1, 2);

static JsonNode *
node_call (const char *members_format,
           ...)
{
  va_list args;
  g_autofree char *members = NULL;
  g_autofree char *line = NULL;
  g_autoptr(GError) error = NULL;
  Reply r = { node, ++node->next_id };
  JsonNode *reply;
  JsonObject *object;

  va_start (args, members_format);
  members = g_strdup_vprintf (members_format, args);
  va_end (args);
  line = g_strdup_printf ("{\"id\":%u,%s}\n", r.id, members);
  g_output_stream_write_all (node->input, line, strlen (line), NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_flush (node->input, NULL, &error);
  g_assert_no_error (error);
  if (!wait_for (reply_arrived, &r, 60000))
    g_error ("no reply from node to %s", line);
  if (node->eof)
    g_error ("node exited (command %s)", line);
  g_hash_table_steal_extended (node->replies, GUINT_TO_POINTER (r.id), NULL, (gpointer *) &reply);
  object = json_node_get_object (reply);
  if (!json_object_get_boolean_member (object, "ok"))
    g_error ("node failed %s: %s", line, json_object_get_string_member (object, "error"));
  return reply;
}

static void
node_call_ok (const char *members)
{
  json_node_unref (node_call ("%s", members));
}

static void
node_stop (void)
{
  if (node == NULL)
    return;
  node_call_ok ("\"cmd\":\"quit\"");
  g_output_stream_close (node->input, NULL, NULL);
  g_subprocess_wait (node->process, NULL, NULL);
  g_cancellable_cancel (node->cancellable);
  g_object_unref (node->cancellable);
  g_object_unref (node->output);
  g_object_unref (node->process);
  g_hash_table_unref (node->replies);
  g_clear_pointer (&node, g_free);
}

/* ======================================================================= */
/* Peers and convergence                                                    */
/* ======================================================================= */

typedef struct {
  const char       *name;     /* a node client, "server:PATH", or NULL */
  TsMergeableStore *store;    /* a C store, or NULL */
} Peer;

typedef struct {
  guint32  tables_hash;
  guint32  values_hash;
  char    *content;
  char    *tables;
} Snapshot;

static void
snapshot_clear (Snapshot *s)
{
  g_clear_pointer (&s->content, g_free);
  g_clear_pointer (&s->tables, g_free);
}

static void
peer_snapshot (const Peer *peer,
               Snapshot   *s)
{
  if (peer->store != NULL)
    {
      ts_mergeable_store_get_mergeable_content_hashes (peer->store, &s->tables_hash, &s->values_hash);
      s->content = ts_mergeable_store_get_mergeable_content_json (peer->store);
      s->tables = ts_mergeable_store_get_tables_json (peer->store);
    }
  else
    {
      g_autoptr(JsonNode) reply = NULL;
      g_autoptr(JsonNode) quoted = json_node_new (JSON_NODE_VALUE);
      g_autofree char *name = NULL;
      JsonObject *object;
      JsonArray *hashes;

      if (g_str_has_prefix (peer->name, "server:"))
        {
          json_node_set_string (quoted, peer->name + strlen ("server:"));
          name = json_to_string (quoted, FALSE);
          reply = node_call ("\"cmd\":\"dump\",\"server\":%s", name);
        }
      else
        {
          json_node_set_string (quoted, peer->name);
          name = json_to_string (quoted, FALSE);
          reply = node_call ("\"cmd\":\"dump\",\"name\":%s", name);
        }
      object = json_node_get_object (reply);
      hashes = json_object_get_array_member (object, "hashes");
      s->tables_hash = (guint32) json_array_get_int_element (hashes, 0);
      s->values_hash = (guint32) json_array_get_int_element (hashes, 1);
      s->content = g_strdup (json_object_get_string_member (object, "content"));
      s->tables = g_strdup (json_object_get_string_member (object, "tables"));
    }
}

/* JSON equality regardless of member order (each store keeps its own
 * insertion order). */
static gboolean
json_text_equal (const char *a,
                 const char *b)
{
  g_autoptr(JsonParser) pa = json_parser_new ();
  g_autoptr(JsonParser) pb = json_parser_new ();

  if (!json_parser_load_from_data (pa, a, -1, NULL) ||
      !json_parser_load_from_data (pb, b, -1, NULL))
    return FALSE;
  return json_node_equal (json_parser_get_root (pa), json_parser_get_root (pb));
}

static gboolean
peers_agree (const Peer *peers,
             guint       n,
             gboolean    report)
{
  g_autofree Snapshot *snaps = g_new0 (Snapshot, n);
  gboolean same = TRUE;

  for (guint i = 0; i < n; i++)
    peer_snapshot (&peers[i], &snaps[i]);
  for (guint i = 1; i < n && same; i++)
    same = snaps[i].tables_hash == snaps[0].tables_hash &&
           snaps[i].values_hash == snaps[0].values_hash &&
           json_text_equal (snaps[i].content, snaps[0].content);
  if (report)
    for (guint i = 0; i < n; i++)
      g_test_message ("%s: [%u,%u] %s\n    %s",
                      peers[i].name ? peers[i].name : "C", snaps[i].tables_hash,
                      snaps[i].values_hash, snaps[i].tables, snaps[i].content);
  for (guint i = 0; i < n; i++)
    snapshot_clear (&snaps[i]);
  return same;
}

/* Waits until every peer has the same mergeable content and hashes. */
static void
assert_peers_agree (const Peer *peers,
                    guint       n)
{
  gint64 end = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;

  while (!peers_agree (peers, n, FALSE))
    {
      if (g_get_monotonic_time () > end)
        {
          peers_agree (peers, n, TRUE);
          g_error ("the peers did not converge");
        }
      sleep_ms (100);
    }
  /* stays so (nothing still in flight undoes it) */
  sleep_ms (300);
  if (!peers_agree (peers, n, TRUE))
    g_error ("the peers diverged again");
}

static char *
tables_of (const Peer *peer)
{
  Snapshot s = { 0 };
  char *tables;

  peer_snapshot (peer, &s);
  tables = g_steal_pointer (&s.tables);
  snapshot_clear (&s);
  return tables;
}

/* ======================================================================= */
/* tinysync clients                                                         */
/* ======================================================================= */

typedef struct {
  GAsyncResult *result;
} Async;

static void
on_async (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  ((Async *) data)->result = g_object_ref (result);
}

static gboolean
async_done (gpointer data)
{
  return ((Async *) data)->result != NULL;
}

static void
on_ignored_error (TsSynchronizer *sync,
                  GError         *error,
                  gpointer        data)
{
  g_test_message ("%s: ignored error: %s", (const char *) data, error->message);
}

/* tinysync's own server, in this process */
static SoupServer *ts_soup_server;
static TsWsServer *ts_server;
static guint       ts_server_port;

static void
ts_server_start (void)
{
  g_autoptr(GError) error = NULL;
  GSList *uris;

  ts_soup_server = soup_server_new ("raw-paths", TRUE, NULL);
  ts_server = ts_ws_server_new (ts_soup_server);
  ts_ws_server_set_request_timeout (ts_server, 0.3);
  soup_server_listen_local (ts_soup_server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);
  uris = soup_server_get_uris (ts_soup_server);
  ts_server_port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static gboolean
ts_server_empty (gpointer data)
{
  guint paths = 0, clients = 0;

  ts_ws_server_get_stats (ts_server, &paths, &clients);
  return paths == 0 && clients == 0;
}

static void
ts_server_stop (void)
{
  g_assert_true (wait_for (ts_server_empty, NULL, 10000));
  ts_ws_server_destroy (ts_server);
  g_clear_object (&ts_server);
  g_clear_object (&ts_soup_server);
}

static TsWsSynchronizer *
c_client_on (guint             port,
             TsMergeableStore *store,
             const char       *path,
             const char       *channel,
             double            timeout,
             guint             fragment_size)
{
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u%s", port, path);
  g_autoptr(GError) error = NULL;
  Async async = { NULL };
  TsWsSynchronizer *sync;

  if (channel != NULL)
    ts_ws_synchronizer_new_channel_async (store, uri, channel, timeout, NULL, on_async, &async);
  else
    ts_ws_synchronizer_new_async (store, uri, timeout, NULL, on_async, &async);
  g_assert_true (wait_for (async_done, &async, 20000));
  sync = ts_ws_synchronizer_new_finish (async.result, &error);
  g_assert_no_error (error);
  g_object_unref (async.result);
  g_signal_connect (sync, "ignored-error", G_CALLBACK (on_ignored_error),
                    (gpointer) ts_mergeable_store_get_unique_id (store));
  ts_ws_synchronizer_set_fragment_size (sync, fragment_size);

  async.result = NULL;
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (sync), NULL, NULL, on_async, &async);
  g_assert_true (wait_for (async_done, &async, 20000));
  g_assert_true (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (sync), async.result, &error));
  g_object_unref (async.result);
  return sync;
}

static TsWsSynchronizer *
c_client (TsMergeableStore *store,
          const char       *path,
          const char       *channel,
          double            timeout,
          guint             fragment_size)
{
  return c_client_on (node->port, store, path, channel, timeout, fragment_size);
}

static void
destroy_sync (TsWsSynchronizer *sync)
{
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync));
  g_object_unref (sync);
}

static gboolean
is_connected (gpointer data)
{
  return ts_ws_synchronizer_is_connected (data);
}

static gboolean
is_disconnected (gpointer data)
{
  return !ts_ws_synchronizer_is_connected (data);
}

static void
set_cell_json (TsMergeableStore *store,
               const char       *table,
               const char       *row,
               const char       *cell,
               const char       *json)
{
  g_autoptr(GError) error = NULL;

  ts_mergeable_store_set_cell_json (store, table, row, cell, json, &error);
  g_assert_no_error (error);
}

/* ======================================================================= */
/* Cases                                                                    */
/* ======================================================================= */

#define SKIP_WITHOUT_NODE() \
  G_STMT_START { if (node == NULL) { g_test_skip ("TS_NODE/TS_WS_INTEROP_SCRIPT not set"); return; } } G_STMT_END

/* (a) the seed scenario: two tinysync clients through TinyBase's server */
static void
test_tinybase_server_seed (void)
{
  g_autoptr(TsMergeableStore) store1 = NULL;
  g_autoptr(TsMergeableStore) store2 = NULL;
  TsWsSynchronizer *sync1, *sync2;

  SKIP_WITHOUT_NODE ();
  node_call_ok ("\"cmd\":\"server\"");
  store1 = ts_mergeable_store_new ("store1");
  store2 = ts_mergeable_store_new ("store2");
  sync1 = c_client (store1, "/petShop", NULL, 0.3, 0);
  sync2 = c_client (store2, "/petShop", NULL, 0.3, 0);
  set_cell_json (store1, "pets", "fido", "species", "\"dog\"");
  set_cell_json (store2, "pets", "felix", "species", "\"cat\"");
  {
    Peer peers[] = { { NULL, store1 }, { NULL, store2 } };
    g_autofree char *tables = NULL;

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
    tables = tables_of (&peers[0]);
    g_assert_true (json_text_equal (tables, "{\"pets\":{\"fido\":{\"species\":\"dog\"},"
                                            "\"felix\":{\"species\":\"cat\"}}}"));
  }
  destroy_sync (sync1);
  destroy_sync (sync2);
}

/* (a) with TinyBase server stores (client id S) and fragments both ways */
static void
test_tinybase_server_store (void)
{
  g_autoptr(TsMergeableStore) a = NULL;
  g_autoptr(TsMergeableStore) b = NULL;
  g_autoptr(GString) big = g_string_new (NULL);
  g_autofree char *big_json = NULL;
  TsWsSynchronizer *sa, *sb;

  SKIP_WITHOUT_NODE ();
  node_call_ok ("\"cmd\":\"server\",\"serverStores\":true,\"fragmentSize\":64,\"timeout\":0.3");
  a = ts_mergeable_store_new ("a");
  /* data before joining: the server store pulls it */
  set_cell_json (a, "notes", "n1", "text", "\"written before connecting\"");
  sa = c_client (a, "/stored", NULL, 0.5, 48);
  for (int i = 0; i < 300; i++)
    g_string_append (big, "ünïcødé 🦊 ");
  big_json = g_strdup_printf ("\"%s\"", big->str);
  set_cell_json (a, "notes", "n2", "text", big_json);
  ts_mergeable_store_set_value_number (a, "count", 3);
  {
    Peer peers[] = { { "server:stored", NULL }, { NULL, a } };

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
  }
  /* a late joiner gets everything, fragmented by the server's store */
  b = ts_mergeable_store_new ("b");
  sb = c_client (b, "/stored", NULL, 0.5, 0);
  {
    Peer peers[] = { { "server:stored", NULL }, { NULL, a }, { NULL, b } };

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
  }
  destroy_sync (sa);
  destroy_sync (sb);
}

/* (b) a mixed room: TinyBase clients and tinysync clients writing
 * concurrently, with conflicts, deletes, object/array cells, unicode ids */
static void
test_mixed_room (void)
{
  g_autoptr(TsMergeableStore) c1 = NULL;
  g_autoptr(TsMergeableStore) c2 = NULL;
  TsWsSynchronizer *s1, *s2;
  g_autofree char *tables = NULL;

  SKIP_WITHOUT_NODE ();
  node_call_ok ("\"cmd\":\"server\"");
  c1 = ts_mergeable_store_new ("c1");
  c2 = ts_mergeable_store_new ("c2");
  node_call_ok ("\"cmd\":\"client\",\"name\":\"js1\",\"path\":\"/mixed\",\"uniqueId\":\"js1\",\"timeout\":0.3");
  s1 = c_client (c1, "/mixed", NULL, 0.3, 0);
  node_call_ok ("\"cmd\":\"client\",\"name\":\"js2\",\"path\":\"/mixed\",\"uniqueId\":\"js2\",\"timeout\":0.3,\"fragmentSize\":40");
  s2 = c_client (c2, "/mixed", NULL, 0.3, 24);

  /* concurrent conflicting writes: no waiting between them */
  node_call_ok ("\"cmd\":\"do\",\"name\":\"js1\",\"ops\":["
                "[\"setCell\",\"pets\",\"fido\",\"species\",\"dog\"],"
                "[\"setCell\",\"pets\",\"fido\",\"legs\",4],"
                "[\"setCell\",\"pets\",\"😀\",\"name\",\"smiley\"],"
                "[\"setValue\",\"open\",true]]");
  set_cell_json (c1, "pets", "fido", "species", "\"wolf\"");
  set_cell_json (c1, "pets", "fido", "tags", "[\"good\",\"boy\",1.5]");
  set_cell_json (c2, "pets", "fido", "owner", "{\"name\":\"Zoë\",\"age\":7}");
  set_cell_json (c2, "pets", "ключ", "σ", "\"unicode ids\"");
  node_call_ok ("\"cmd\":\"do\",\"name\":\"js2\",\"ops\":["
                "[\"setCell\",\"pets\",\"felix\",\"species\",\"cat\"],"
                "[\"setCell\",\"pets\",\"felix\",\"meta\",{\"a\":[1,{\"b\":null}]}],"
                "[\"setValues\",{\"motto\":\"héllo\",\"limits\":[1,2,3]}]]");
  ts_mergeable_store_set_value_string (c1, "motto", "bonjour");
  {
    Peer peers[] = { { "js1", NULL }, { "js2", NULL }, { NULL, c1 }, { NULL, c2 } };

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
  }

  /* deletes against concurrent writes */
  node_call_ok ("\"cmd\":\"do\",\"name\":\"js2\",\"ops\":[[\"delRow\",\"pets\",\"fido\"]]");
  set_cell_json (c1, "pets", "fido", "legs", "3");
  ts_mergeable_store_del_cell (c2, "pets", "😀", "name");
  ts_mergeable_store_del_value (c1, "open");
  node_call_ok ("\"cmd\":\"do\",\"name\":\"js1\",\"ops\":[[\"delTable\",\"nothing\"],"
                "[\"setCell\",\"other\",\"r\",\"c\",\"\\u0000\\n\\\"\"]]");
  {
    Peer peers[] = { { "js1", NULL }, { "js2", NULL }, { NULL, c1 }, { NULL, c2 } };

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
    tables = tables_of (&peers[2]);
    /* the emoji row lost its only cell */
    g_assert_null (strstr (tables, "smiley"));
  }

  /* a JavaScript client leaves, a tinysync client joins late */
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"js1\"");
  {
    g_autoptr(TsMergeableStore) late = ts_mergeable_store_new ("late");
    TsWsSynchronizer *sl = c_client (late, "/mixed", NULL, 0.3, 0);
    Peer peers[] = { { "js2", NULL }, { NULL, c1 }, { NULL, c2 }, { NULL, late } };

    assert_peers_agree (peers, G_N_ELEMENTS (peers));
    destroy_sync (sl);
  }
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"js2\"");
  destroy_sync (s1);
  destroy_sync (s2);
}

/* channel mode through TinyBase's server, next to TinyBase legacy and
 * multiplexed clients */
static void
test_channels (void)
{
  g_autoptr(TsMergeableStore) pets = NULL;
  g_autoptr(TsMergeableStore) staff = NULL;
  TsWsSynchronizer *sp, *ss;

  SKIP_WITHOUT_NODE ();
  node_call_ok ("\"cmd\":\"server\"");
  pets = ts_mergeable_store_new ("pets");
  staff = ts_mergeable_store_new ("staff");
  sp = c_client (pets, "/shop", "pets", 0.3, 0);
  ss = c_client (staff, "/shop", "staff", 0.3, 30);
  g_assert_true (ts_ws_synchronizer_get_connection (sp) == ts_ws_synchronizer_get_connection (ss));
  node_call_ok ("\"cmd\":\"client\",\"name\":\"legacy\",\"path\":\"/shop/pets\",\"uniqueId\":\"legacy\",\"timeout\":0.3");
  node_call_ok ("\"cmd\":\"client\",\"name\":\"multi\",\"path\":\"/shop\",\"channel\":\"staff\",\"uniqueId\":\"multi\",\"timeout\":0.3");

  set_cell_json (pets, "pets", "fido", "species", "\"dog\"");
  node_call_ok ("\"cmd\":\"do\",\"name\":\"legacy\",\"ops\":[[\"setCell\",\"pets\",\"felix\",\"species\",\"cat\"]]");
  set_cell_json (staff, "staff", "ann", "role", "\"vet\"");
  node_call_ok ("\"cmd\":\"do\",\"name\":\"multi\",\"ops\":[[\"setCell\",\"staff\",\"bob\",\"role\",\"groomer\"]]");
  {
    Peer p[] = { { "legacy", NULL }, { NULL, pets } };
    Peer s[] = { { "multi", NULL }, { NULL, staff } };

    assert_peers_agree (p, G_N_ELEMENTS (p));
    assert_peers_agree (s, G_N_ELEMENTS (s));
  }
  {
    g_autofree char *tables = ts_mergeable_store_get_tables_json (pets);

    g_assert_null (strstr (tables, "staff"));
  }
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"legacy\"");
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"multi\"");
  destroy_sync (sp);
  destroy_sync (ss);
}

/* TinyBase's server restarts: tinysync clients reconnect and resync */
static void
test_server_restart (void)
{
  g_autoptr(TsMergeableStore) a = NULL;
  g_autoptr(TsMergeableStore) b = NULL;
  TsWsSynchronizer *sa, *sb;

  SKIP_WITHOUT_NODE ();
  node_call_ok ("\"cmd\":\"server\"");
  a = ts_mergeable_store_new ("a");
  b = ts_mergeable_store_new ("b");
  sa = c_client (a, "/restart", NULL, 0.3, 0);
  sb = c_client (b, "/restart", "chan", 0.3, 0);
  /* b is in room restart/chan: give a a second synchronizer there */
  {
    g_autoptr(TsMergeableStore) a2 = ts_mergeable_store_new ("a2");
    TsWsSynchronizer *sa2 = c_client (a2, "/restart/chan", NULL, 0.3, 0);

    set_cell_json (a2, "t", "r", "c", "\"first\"");
    {
      Peer peers[] = { { NULL, a2 }, { NULL, b } };

      assert_peers_agree (peers, G_N_ELEMENTS (peers));
    }
    node_call_ok ("\"cmd\":\"stop\"");
    g_assert_true (wait_for (is_disconnected, sa2, 5000));
    g_assert_true (wait_for (is_disconnected, sb, 5000));
    set_cell_json (a2, "t", "r", "offline", "\"a2\"");
    set_cell_json (b, "t", "r", "offline2", "\"b\"");
    node_call_ok ("\"cmd\":\"server\"");
    g_assert_true (wait_for (is_connected, sa2, 15000));
    g_assert_true (wait_for (is_connected, sb, 15000));
    {
      Peer peers[] = { { NULL, a2 }, { NULL, b } };
      g_autofree char *tables = NULL;

      assert_peers_agree (peers, G_N_ELEMENTS (peers));
      tables = ts_mergeable_store_get_tables_json (a2);
      g_assert_nonnull (strstr (tables, "\"offline2\":\"b\""));
    }
    destroy_sync (sa2);
  }
  g_assert_true (wait_for (is_connected, sa, 15000));
  destroy_sync (sa);
  destroy_sync (sb);
}

/* (c) TinyBase clients and tinysync clients through TsWsServer */
static void
test_ts_server_mixed (void)
{
  g_autoptr(TsMergeableStore) c1 = NULL;
  g_autoptr(TsMergeableStore) c2 = NULL;
  TsWsSynchronizer *s1, *s2;

  SKIP_WITHOUT_NODE ();
  ts_server_start ();
  c1 = ts_mergeable_store_new ("c1");
  c2 = ts_mergeable_store_new ("c2");
  s1 = c_client_on (ts_server_port, c1, "/room", NULL, 0.3, 0);
  json_node_unref (node_call ("\"cmd\":\"client\",\"name\":\"tsjs1\",\"path\":\"/room\",\"uniqueId\":\"tsjs1\","
                              "\"timeout\":0.3,\"fragmentSize\":50,\"port\":%u", ts_server_port));
  /* a multiplexed tinysync client on room/ch next to a TinyBase legacy one */
  s2 = c_client_on (ts_server_port, c2, "/room", "ch", 0.3, 20);
  json_node_unref (node_call ("\"cmd\":\"client\",\"name\":\"tsjs2\",\"path\":\"/room/ch\",\"uniqueId\":\"tsjs2\","
                              "\"timeout\":0.3,\"port\":%u", ts_server_port));

  node_call_ok ("\"cmd\":\"do\",\"name\":\"tsjs1\",\"ops\":["
                "[\"setCell\",\"t\",\"r\",\"c\",\"js\"],"
                "[\"setCell\",\"t\",\"ö\",\"arr\",[1,[2,\"three\"]]],"
                "[\"setValue\",\"v\",-0.5]]");
  set_cell_json (c1, "t", "r", "c", "\"c\"");
  set_cell_json (c1, "t", "r", "obj", "{\"deep\":{\"x\":[true,null]}}");
  ts_mergeable_store_del_value (c1, "v");
  set_cell_json (c2, "ch", "r", "c", "\"in the channel\"");
  node_call_ok ("\"cmd\":\"do\",\"name\":\"tsjs2\",\"ops\":[[\"setCell\",\"ch\",\"r2\",\"n\",1e21]]");
  {
    Peer room[] = { { "tsjs1", NULL }, { NULL, c1 } };
    Peer ch[] = { { "tsjs2", NULL }, { NULL, c2 } };

    assert_peers_agree (room, G_N_ELEMENTS (room));
    assert_peers_agree (ch, G_N_ELEMENTS (ch));
  }
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"tsjs1\"");
  node_call_ok ("\"cmd\":\"destroy\",\"name\":\"tsjs2\"");
  destroy_sync (s1);
  destroy_sync (s2);
  ts_server_stop ();
}

int
main (int   argc,
      char *argv[])
{
  int result;

  g_test_init (&argc, &argv, NULL);

  node = node_start ();

  g_test_add_func ("/tinysync/ws-interop/tinybase-server/seed", test_tinybase_server_seed);
  g_test_add_func ("/tinysync/ws-interop/tinybase-server/server-store", test_tinybase_server_store);
  g_test_add_func ("/tinysync/ws-interop/tinybase-server/mixed-room", test_mixed_room);
  g_test_add_func ("/tinysync/ws-interop/tinybase-server/channels", test_channels);
  g_test_add_func ("/tinysync/ws-interop/tinybase-server/restart", test_server_restart);
  g_test_add_func ("/tinysync/ws-interop/ts-server/mixed-room", test_ts_server_mixed);

  result = g_test_run ();
  node_stop ();
  return result;
}
