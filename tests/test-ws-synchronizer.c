/* test-ws-synchronizer.c: TsWsSynchronizer against in-test WebSocket servers
 *
 * SPDX-License-Identifier: MIT
 *
 * - a tiny relay on SoupServer (TinyBase's routing rules of PROTOCOL.md
 *   14.3, no validation, legacy and multiplexed sockets) for the sync
 *   scenarios;
 * - a bare SoupServer that plays the payloads of
 *   tests/data/invalid-messages.json to one client and records what the
 *   client sends and how it closes.
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <tinysync/tinysync.h>

#define T 1710000000000

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

/* Runs the main context until pred holds or timeout_ms passed. */
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

static gint64
fixed_clock (gpointer data)
{
  return T;
}

/* ======================================================================= */
/* A relay on SoupServer                                                    */
/* ======================================================================= */

typedef struct _Relay Relay;

typedef struct {
  Relay                   *relay;
  SoupWebsocketConnection *conn;
  char                    *id;
  char                    *path;
  gboolean                 multiplexed;
} RelayClient;

typedef struct {
  RelayClient *client;
  char        *channel;   /* NULL: legacy member */
} Member;

struct _Relay {
  SoupServer *server;
  guint       port;
  GPtrArray  *clients;     /* RelayClient* */
  GHashTable *rooms;       /* path -> GPtrArray of Member* */
  guint       frames;      /* frames received */
  guint       fragments;   /* of which fragment envelopes */
};

static void
member_free (gpointer data)
{
  Member *member = data;

  g_free (member->channel);
  g_free (member);
}

static GPtrArray *
relay_room (Relay      *relay,
            const char *path)
{
  GPtrArray *room = g_hash_table_lookup (relay->rooms, path);

  if (room == NULL)
    {
      room = g_ptr_array_new_with_free_func (member_free);
      g_hash_table_insert (relay->rooms, g_strdup (path), room);
    }
  return room;
}

static void
relay_leave (Relay       *relay,
             RelayClient *client,
             const char  *path)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, relay->rooms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      GPtrArray *room = value;

      if (path != NULL && strcmp (key, path) != 0)
        continue;
      for (guint i = room->len; i > 0; i--)
        if (((Member *) room->pdata[i - 1])->client == client)
          g_ptr_array_remove_index (room, i - 1);
    }
}

static void
relay_deliver (Member     *to,
               const char *from,
               const char *remainder,
               gsize       len)
{
  GString *out = g_string_new (NULL);
  g_autoptr(GBytes) bytes = NULL;

  if (soup_websocket_connection_get_state (to->client->conn) != SOUP_WEBSOCKET_STATE_OPEN)
    {
      g_string_free (out, TRUE);
      return;
    }
  if (to->channel != NULL)
    g_string_append_printf (out, "M\n%s\n", to->channel);
  g_string_append_printf (out, "%s\n", from);
  g_string_append_len (out, remainder, len);
  bytes = g_string_free_to_bytes (out);
  soup_websocket_connection_send_message (to->client->conn, SOUP_WEBSOCKET_DATA_TEXT, bytes);
}

static void
relay_route (Relay       *relay,
             RelayClient *from,
             const char  *path,
             const char  *payload,
             gsize        len)
{
  const char *nl = memchr (payload, '\n', len);
  g_autofree char *to = NULL;
  GPtrArray *room;
  const char *remainder;
  gsize remainder_len;

  if (nl == NULL)
    return;
  to = g_strndup (payload, nl - payload);
  remainder = nl + 1;
  remainder_len = len - (remainder - payload);
  if (g_regex_match_simple ("^[-0-9A-Za-z_]{16}\n", remainder, 0, 0))
    relay->fragments++;
  room = g_hash_table_lookup (relay->rooms, path);
  if (room == NULL)
    return;
  for (guint i = 0; i < room->len; i++)
    {
      Member *member = room->pdata[i];

      if (to[0] == '\0' ? member->client == from : strcmp (member->client->id, to) != 0)
        continue;
      relay_deliver (member, from->id, remainder, remainder_len);
    }
}

static char *
relay_channel_room (RelayClient *client,
                    const char  *channel)
{
  return client->path[0] == '\0' ? g_strdup (channel)
                                 : g_strdup_printf ("%s/%s", client->path, channel);
}

static void
relay_control (RelayClient *client,
               const char  *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonArray *message, *control;
  gint64 kind;
  const char *channel = NULL;
  g_autofree char *room_path = NULL;

  if (!json_parser_load_from_data (parser, text + 2, -1, NULL))
    return;
  message = json_node_get_array (json_parser_get_root (parser));
  control = json_array_get_array_element (message, 2);
  kind = json_array_get_int_element (control, 0);
  if (kind != 0)
    channel = json_array_get_string_element (control, 1);
  if (kind == 1)
    {
      Member *member = g_new0 (Member, 1);

      room_path = relay_channel_room (client, channel);
      relay_leave (client->relay, client, room_path);
      member->client = client;
      member->channel = g_strdup (channel);
      g_ptr_array_add (relay_room (client->relay, room_path), member);
    }
  else if (kind == 2)
    {
      room_path = relay_channel_room (client, channel);
      relay_leave (client->relay, client, room_path);
      return;
    }
  soup_websocket_connection_send_text (client->conn, text);   /* the echo */
}

static void
relay_on_message (SoupWebsocketConnection *conn,
                  int                      type,
                  GBytes                  *message,
                  gpointer                 data)
{
  RelayClient *client = data;
  gsize len;
  const char *text = g_bytes_get_data (message, &len);

  client->relay->frames++;
  if (!client->multiplexed)
    {
      relay_route (client->relay, client, client->path, text, len);
      return;
    }
  if (g_str_has_prefix (text, "S\n"))
    relay_control (client, text);
  else if (g_str_has_prefix (text, "M\n"))
    {
      const char *channel = text + 2;
      const char *nl = memchr (channel, '\n', len - 2);
      g_autofree char *id = NULL;
      g_autofree char *room_path = NULL;

      if (nl == NULL)
        return;
      id = g_strndup (channel, nl - channel);
      room_path = relay_channel_room (client, id);
      relay_route (client->relay, client, room_path, nl + 1, len - (nl + 1 - text));
    }
}

static void
relay_client_free (RelayClient *client)
{
  g_signal_handlers_disconnect_by_data (client->conn, client);
  g_object_unref (client->conn);
  g_free (client->id);
  g_free (client->path);
  g_free (client);
}

static void
relay_on_closed (SoupWebsocketConnection *conn,
                 gpointer                 data)
{
  RelayClient *client = data;
  Relay *relay = client->relay;

  relay_leave (relay, client, NULL);
  g_ptr_array_remove (relay->clients, client);
  relay_client_free (client);
}

static void
relay_on_websocket (SoupServer              *server,
                    SoupServerMessage       *msg,
                    const char              *path,
                    SoupWebsocketConnection *conn,
                    gpointer                 data)
{
  Relay *relay = data;
  RelayClient *client = g_new0 (RelayClient, 1);
  const char *raw = g_uri_get_path (soup_server_message_get_uri (msg));

  client->relay = relay;
  client->conn = g_object_ref (conn);
  client->id = g_strdup (soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                       "Sec-WebSocket-Key"));
  client->path = g_strdup (raw[0] == '/' ? raw + 1 : raw);
  client->multiplexed = g_strcmp0 (soup_websocket_connection_get_protocol (conn), "tinybase") == 0;
  soup_websocket_connection_set_max_incoming_payload_size (conn, 0);
  g_signal_connect (conn, "message", G_CALLBACK (relay_on_message), client);
  g_signal_connect (conn, "closed", G_CALLBACK (relay_on_closed), client);
  g_ptr_array_add (relay->clients, client);
  if (!client->multiplexed)
    {
      Member *member = g_new0 (Member, 1);

      member->client = client;
      g_ptr_array_add (relay_room (relay, client->path), member);
    }
}

static void
relay_listen (Relay *relay,
              guint  port)
{
  const char *protocols[] = { "tinybase", NULL };
  g_autoptr(GError) error = NULL;
  GSList *uris;

  relay->server = soup_server_new ("raw-paths", TRUE, NULL);
  soup_server_remove_websocket_extension (relay->server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler (relay->server, NULL, NULL, (char **) protocols,
                                     relay_on_websocket, relay, NULL);
  if (port == 0)
    soup_server_listen_local (relay->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  else
    {
      g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);

      soup_server_listen (relay->server, address, 0, &error);
    }
  g_assert_no_error (error);
  uris = soup_server_get_uris (relay->server);
  relay->port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static Relay *
relay_new (void)
{
  Relay *relay = g_new0 (Relay, 1);

  relay->clients = g_ptr_array_new ();
  relay->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) g_ptr_array_unref);
  relay_listen (relay, 0);
  return relay;
}

static gboolean
relay_empty (gpointer data)
{
  return ((Relay *) data)->clients->len == 0;
}

/* Stops listening and closes every client (as a server going down). */
static void
relay_stop (Relay *relay)
{
  for (guint i = 0; i < relay->clients->len; i++)
    {
      RelayClient *client = relay->clients->pdata[i];

      if (soup_websocket_connection_get_state (client->conn) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (client->conn, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
    }
  g_assert_true (wait_for (relay_empty, relay, 10000));
  soup_server_disconnect (relay->server);
  g_clear_object (&relay->server);
}

static void
relay_free (Relay *relay)
{
  if (relay->server != NULL)
    relay_stop (relay);
  g_ptr_array_unref (relay->clients);
  g_hash_table_unref (relay->rooms);
  g_free (relay);
}

static char *
relay_uri (Relay      *relay,
           const char *path)
{
  return g_strdup_printf ("ws://127.0.0.1:%u%s", relay->port, path);
}

/* ======================================================================= */
/* Synchronizer helpers                                                     */
/* ======================================================================= */

typedef struct {
  GAsyncResult *result;
} Async;

static void
on_async (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  Async *async = data;

  async->result = g_object_ref (result);
}

static gboolean
async_done (gpointer data)
{
  return ((Async *) data)->result != NULL;
}

static TsWsSynchronizer *
create_sync (TsMergeableStore *store,
             const char       *uri,
             double            timeout,
             GError          **error)
{
  Async async = { NULL };
  TsWsSynchronizer *sync;

  ts_ws_synchronizer_new_async (store, uri, timeout, NULL, on_async, &async);
  g_assert_true (wait_for (async_done, &async, 20000));
  sync = ts_ws_synchronizer_new_finish (async.result, error);
  g_object_unref (async.result);
  return sync;
}

static TsWsSynchronizer *
create_channel_sync (TsMergeableStore        *store,
                     const char              *uri,
                     SoupWebsocketConnection *conn,
                     const char              *channel,
                     double                   timeout,
                     GError                 **error)
{
  Async async = { NULL };
  TsWsSynchronizer *sync;

  if (conn != NULL)
    ts_ws_synchronizer_new_channel_for_connection_async (store, conn, channel, timeout, NULL,
                                                         on_async, &async);
  else
    ts_ws_synchronizer_new_channel_async (store, uri, channel, timeout, NULL, on_async, &async);
  g_assert_true (wait_for (async_done, &async, 20000));
  sync = ts_ws_synchronizer_new_finish (async.result, error);
  g_object_unref (async.result);
  return sync;
}

static void
start_sync (TsWsSynchronizer *sync)
{
  Async async = { NULL };
  g_autoptr(GError) error = NULL;

  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (sync), NULL, NULL, on_async, &async);
  g_assert_true (wait_for (async_done, &async, 20000));
  g_assert_true (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (sync), async.result, &error));
  g_assert_no_error (error);
  g_object_unref (async.result);
}

/* Collects "tinybase:..." codes of ignored errors. */
static void
on_ignored_error (TsSynchronizer *sync,
                  GError         *error,
                  gpointer        data)
{
  GPtrArray *codes = data;
  const char *start = strstr (error->message, "(tinybase:");
  const char *end;

  if (start == NULL)
    {
      g_ptr_array_add (codes, g_strdup_printf ("other: %s", error->message));
      return;
    }
  start++;
  end = strrchr (start, ')');
  g_ptr_array_add (codes, g_strndup (start, end != NULL ? (gsize) (end - start) : strlen (start)));
}

static TsMergeableStore *
new_store (const char *unique_id)
{
  return ts_mergeable_store_new (unique_id);
}

/* JSON equality regardless of member order (stores keep insertion
 * order, which differs between peers). */
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

typedef struct {
  TsMergeableStore **stores;
  guint              n;
  const char        *expected_tables;   /* or NULL: only equal */
} Converged;

static gboolean
stores_converged (gpointer data)
{
  Converged *c = data;
  g_autofree char *first = ts_mergeable_store_get_mergeable_content_json (c->stores[0]);

  if (c->expected_tables != NULL)
    {
      g_autofree char *tables = ts_mergeable_store_get_tables_json (c->stores[0]);

      if (!json_text_equal (tables, c->expected_tables))
        return FALSE;
    }
  for (guint i = 1; i < c->n; i++)
    {
      g_autofree char *other = ts_mergeable_store_get_mergeable_content_json (c->stores[i]);

      if (!json_text_equal (first, other))
        return FALSE;
    }
  return TRUE;
}

static void
assert_converged (TsMergeableStore **stores,
                  guint              n,
                  const char        *expected_tables,
                  guint              timeout_ms)
{
  Converged c = { stores, n, expected_tables };

  if (!wait_for (stores_converged, &c, timeout_ms))
    {
      for (guint i = 0; i < n; i++)
        {
          g_autofree char *tables = ts_mergeable_store_get_tables_json (stores[i]);
          g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (stores[i]);

          g_test_message ("store %u: %s\n  %s", i, tables, content);
        }
      g_assert_not_reached ();
    }
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
destroy_sync (TsWsSynchronizer **sync)
{
  if (*sync == NULL)
    return;
  ts_synchronizer_destroy (TS_SYNCHRONIZER (*sync));
  g_clear_object (sync);
}

/* ======================================================================= */
/* Scenarios through the relay                                              */
/* ======================================================================= */

static void
run_seed (guint fragment_size)
{
  Relay *relay = relay_new ();
  g_autofree char *uri = relay_uri (relay, "/petShop");
  g_autoptr(TsMergeableStore) store1 = new_store ("store1");
  g_autoptr(TsMergeableStore) store2 = new_store ("store2");
  TsMergeableStore *stores[] = { store1, store2 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
  TsWsSynchronizer *sync1, *sync2;

  sync1 = create_sync (store1, uri, 0.2, &error);
  g_assert_no_error (error);
  sync2 = create_sync (store2, uri, 0.2, &error);
  g_assert_no_error (error);
  g_assert_true (ts_ws_synchronizer_is_connected (sync1));
  g_assert_cmpstr (ts_ws_synchronizer_get_uri (sync1), ==, uri);
  g_assert_null (ts_ws_synchronizer_get_channel_id (sync1));
  g_assert_nonnull (ts_ws_synchronizer_get_connection (sync1));
  ts_ws_synchronizer_set_fragment_size (sync1, fragment_size);
  ts_ws_synchronizer_set_fragment_size (sync2, fragment_size);
  g_signal_connect (sync2, "ignored-error", G_CALLBACK (on_ignored_error), errors);

  start_sync (sync1);
  /* nobody answered: back to idle all the same */
  g_assert_cmpint (ts_synchronizer_get_status (TS_SYNCHRONIZER (sync1)), ==,
                   TS_SYNCHRONIZER_STATUS_IDLE);
  start_sync (sync2);
  g_assert_cmpint (ts_synchronizer_get_status (TS_SYNCHRONIZER (sync2)), ==,
                   TS_SYNCHRONIZER_STATUS_IDLE);
  /* sync2 got an answer from sync1: no timeout */
  g_assert_cmpuint (errors->len, ==, 0);

  g_assert_true (ts_mergeable_store_set_tables_json (store1, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}", &error));
  g_assert_no_error (error);
  g_assert_true (ts_mergeable_store_set_tables_json (store2, "{\"pets\":{\"felix\":{\"species\":\"cat\"}}}", &error));
  g_assert_no_error (error);
  assert_converged (stores, 2,
                    "{\"pets\":{\"fido\":{\"species\":\"dog\"},\"felix\":{\"species\":\"cat\"}}}",
                    5000);

  if (fragment_size > 0)
    {
      /* something big, with multi-byte characters, in small pieces */
      GString *text = g_string_new (NULL);
      g_autofree char *json = NULL;

      for (int i = 0; i < 200; i++)
        g_string_append (text, "é€😀x");
      json = g_strdup_printf ("{\"text\":%s}", "\"PLACEHOLDER\"");
      ts_mergeable_store_set_cell_string (store2, "notes", "n1", "text", text->str);
      ts_mergeable_store_set_value_string (store1, "motto", text->str);
      g_string_free (text, TRUE);
      assert_converged (stores, 2, NULL, 5000);
      g_assert_cmpuint (relay->fragments, >, 20);
    }
  else
    g_assert_cmpuint (relay->fragments, ==, 0);

  g_assert_cmpuint (errors->len, ==, 0);
  destroy_sync (&sync1);
  destroy_sync (&sync2);
  g_assert_true (wait_for (relay_empty, relay, 5000));
  relay_free (relay);
}

static void
test_seed (void)
{
  run_seed (0);
}

static void
test_fragments (void)
{
  run_seed (16);
}

static void
test_many_peers (void)
{
  Relay *relay = relay_new ();
  g_autofree char *uri = relay_uri (relay, "/shop/pets");
  TsMergeableStore *stores[4];
  TsWsSynchronizer *syncs[4];
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (stores); i++)
    {
      g_autofree char *id = g_strdup_printf ("peer%u", i);

      stores[i] = new_store (id);
      /* some data before connecting */
      ts_mergeable_store_set_cell_number (stores[i], "t", id, "n", i);
      syncs[i] = create_sync (stores[i], uri, 0.2, &error);
      g_assert_no_error (error);
      start_sync (syncs[i]);
    }
  /* conflicting writes and deletes */
  ts_mergeable_store_set_cell_string (stores[0], "t", "shared", "c", "zero");
  ts_mergeable_store_set_cell_string (stores[1], "t", "shared", "c", "one");
  ts_mergeable_store_del_row (stores[2], "t", "peer0");
  ts_mergeable_store_set_value_boolean (stores[3], "open", TRUE);
  assert_converged (stores, G_N_ELEMENTS (stores), NULL, 5000);
  {
    g_autofree char *tables = ts_mergeable_store_get_tables_json (stores[0]);

    g_assert_null (strstr (tables, "\"peer0\""));
    g_assert_nonnull (strstr (tables, "\"peer3\""));
  }
  for (guint i = 0; i < G_N_ELEMENTS (stores); i++)
    {
      destroy_sync (&syncs[i]);
      g_object_unref (stores[i]);
    }
  g_assert_true (wait_for (relay_empty, relay, 5000));
  relay_free (relay);
}

static void
test_reconnect (void)
{
  Relay *relay = relay_new ();
  guint port = relay->port;
  g_autofree char *uri = relay_uri (relay, "/room");
  g_autoptr(TsMergeableStore) store1 = new_store ("store1");
  g_autoptr(TsMergeableStore) store2 = new_store ("store2");
  TsMergeableStore *stores[] = { store1, store2 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
  TsWsSynchronizer *sync1, *sync2;

  sync1 = create_sync (store1, uri, 0.2, &error);
  g_assert_no_error (error);
  sync2 = create_sync (store2, uri, 0.2, &error);
  g_assert_no_error (error);
  g_assert_true (ts_ws_synchronizer_get_reconnect (sync1));
  g_signal_connect (sync1, "ignored-error", G_CALLBACK (on_ignored_error), errors);
  start_sync (sync1);
  start_sync (sync2);
  ts_mergeable_store_set_cell_string (store1, "t", "r", "before", "yes");
  assert_converged (stores, 2, NULL, 5000);

  /* the server goes away */
  relay_stop (relay);
  g_assert_true (wait_for (is_disconnected, sync1, 5000));
  g_assert_true (wait_for (is_disconnected, sync2, 5000));
  g_assert_null (ts_ws_synchronizer_get_connection (sync1));

  /* writes while disconnected */
  ts_mergeable_store_set_cell_string (store1, "t", "r", "offline1", "a");
  ts_mergeable_store_set_cell_string (store2, "t", "r", "offline2", "b");
  sleep_ms (300);

  /* the server comes back on the same port */
  relay_listen (relay, port);
  g_assert_true (wait_for (is_connected, sync1, 10000));
  g_assert_true (wait_for (is_connected, sync2, 10000));
  assert_converged (stores, 2, NULL, 10000);
  {
    g_autofree char *tables = ts_mergeable_store_get_tables_json (store1);

    g_assert_nonnull (strstr (tables, "\"offline1\":\"a\""));
    g_assert_nonnull (strstr (tables, "\"offline2\":\"b\""));
  }
  /* and keeps syncing */
  ts_mergeable_store_set_cell_string (store2, "t", "r", "after", "c");
  assert_converged (stores, 2, NULL, 5000);

  /* the lost connection was reported */
  g_assert_cmpuint (errors->len, >, 0);

  destroy_sync (&sync1);
  destroy_sync (&sync2);
  g_assert_true (wait_for (relay_empty, relay, 5000));
  relay_free (relay);
}

static void
test_no_reconnect (void)
{
  Relay *relay = relay_new ();
  guint port = relay->port;
  g_autofree char *uri = relay_uri (relay, "/room");
  g_autoptr(TsMergeableStore) store = new_store ("store");
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sync;

  sync = create_sync (store, uri, 0.2, &error);
  g_assert_no_error (error);
  ts_ws_synchronizer_set_reconnect (sync, FALSE);
  relay_stop (relay);
  g_assert_true (wait_for (is_disconnected, sync, 5000));
  relay_listen (relay, port);
  g_assert_false (wait_for (is_connected, sync, 1000));
  destroy_sync (&sync);
  relay_free (relay);
}

static void
test_connect_failure (void)
{
  g_autoptr(TsMergeableStore) store = new_store ("store");
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *uri = NULL;
  TsWsSynchronizer *sync;

  /* a port nobody listens on: bind without listening */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  uri = g_strdup_printf ("ws://127.0.0.1:%u/room",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  sync = create_sync (store, uri, 0.2, &error);
  g_assert_null (sync);
  g_assert_error (error, TS_ERROR, TS_ERROR_CLOSED);
  g_assert_nonnull (strstr (error->message, "tinybase:5"));
  g_clear_error (&error);

  sync = create_sync (store, "not a uri", 0.2, &error);
  g_assert_null (sync);
  g_assert_error (error, TS_ERROR, TS_ERROR_CLOSED);
}

/* ======================================================================= */
/* A bare server playing payloads (invalid-messages.json)                   */
/* ======================================================================= */

typedef struct {
  SoupServer              *server;
  guint                    port;
  SoupWebsocketConnection *conn;       /* the client, as seen by the server */
  GPtrArray               *received;   /* text frames from the client */
  gboolean                 closed;
  int                      close_code;
  char                    *close_reason;
  gboolean                 multiplexed;
  char                    *protocol_accepted;
} Bare;

static void
bare_on_message (SoupWebsocketConnection *conn,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 data)
{
  Bare *bare = data;

  g_ptr_array_add (bare->received, g_strndup (g_bytes_get_data (message, NULL),
                                              g_bytes_get_size (message)));
}

static void
bare_on_closed (SoupWebsocketConnection *conn,
                gpointer                 data)
{
  Bare *bare = data;

  bare->closed = TRUE;
  bare->close_code = soup_websocket_connection_get_close_code (conn);
  bare->close_reason = g_strdup (soup_websocket_connection_get_close_data (conn));
  if (bare->close_reason == NULL)
    bare->close_reason = g_strdup ("");
}

static void
bare_on_websocket (SoupServer              *server,
                   SoupServerMessage       *msg,
                   const char              *path,
                   SoupWebsocketConnection *conn,
                   gpointer                 data)
{
  Bare *bare = data;

  g_assert_null (bare->conn);
  bare->conn = g_object_ref (conn);
  bare->closed = FALSE;
  soup_websocket_connection_set_max_incoming_payload_size (conn, 0);
  g_signal_connect (conn, "message", G_CALLBACK (bare_on_message), bare);
  g_signal_connect (conn, "closed", G_CALLBACK (bare_on_closed), bare);
}

static Bare *
bare_new (gboolean multiplexed)
{
  Bare *bare = g_new0 (Bare, 1);
  const char *protocols[] = { "tinybase", NULL };
  g_autoptr(GError) error = NULL;
  GSList *uris;

  bare->received = g_ptr_array_new_with_free_func (g_free);
  bare->server = soup_server_new (NULL, NULL);
  soup_server_remove_websocket_extension (bare->server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler (bare->server, NULL, NULL,
                                     multiplexed ? (char **) protocols : NULL,
                                     bare_on_websocket, bare, NULL);
  soup_server_listen_local (bare->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);
  uris = soup_server_get_uris (bare->server);
  bare->port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return bare;
}

static gboolean
bare_has_conn (gpointer data)
{
  return ((Bare *) data)->conn != NULL;
}

static gboolean
bare_is_closed (gpointer data)
{
  return ((Bare *) data)->closed;
}

/* The client's close as the server saw it. */
static gboolean
assert_closed_with (Bare       *bare,
                    JsonObject *expected,
                    const char *description)
{
  int code = json_object_get_int_member (expected, "code");
  const char *reason = json_object_get_string_member (expected, "reason");

  if (bare->close_code != code || g_strcmp0 (bare->close_reason, reason) != 0)
    g_error ("%s: closed with %d \"%s\", expected %d \"%s\"", description,
             bare->close_code, bare->close_reason, code, reason);
  return TRUE;
}

static void
bare_reset (Bare *bare)
{
  if (bare->conn != NULL)
    {
      /* let the client's own close arrive first: when both sides close at
       * once, libsoup 3.2 waits 5 s for the peer to drop the socket */
      wait_for (bare_is_closed, bare, 2000);
      if (soup_websocket_connection_get_state (bare->conn) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (bare->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      g_assert_true (wait_for (bare_is_closed, bare, 10000));
      g_signal_handlers_disconnect_by_data (bare->conn, bare);
      g_clear_object (&bare->conn);
    }
  g_clear_pointer (&bare->close_reason, g_free);
  bare->closed = FALSE;
  bare->close_code = 0;
  g_ptr_array_set_size (bare->received, 0);
}

static void
bare_free (Bare *bare)
{
  bare_reset (bare);
  soup_server_disconnect (bare->server);
  g_object_unref (bare->server);
  g_ptr_array_unref (bare->received);
  g_free (bare);
}

/* A payload descriptor: a string, or {text?, repeat?: [unit, count],
 * suffix?, binary?, utf8Hex?}. */
static GBytes *
descriptor_bytes (JsonNode *node,
                  gboolean *binary)
{
  JsonObject *object;
  GString *out;

  *binary = FALSE;
  if (JSON_NODE_HOLDS_VALUE (node))
    return g_bytes_new (json_node_get_string (node), strlen (json_node_get_string (node)));
  object = json_node_get_object (node);
  *binary = json_object_has_member (object, "binary") &&
            json_object_get_boolean_member (object, "binary");
  out = g_string_new (NULL);
  if (json_object_has_member (object, "utf8Hex"))
    {
      const char *hex = json_object_get_string_member (object, "utf8Hex");

      for (gsize i = 0; hex[i] && hex[i + 1]; i += 2)
        g_string_append_c (out, (char) (g_ascii_xdigit_value (hex[i]) * 16 +
                                        g_ascii_xdigit_value (hex[i + 1])));
    }
  else
    {
      if (json_object_has_member (object, "text"))
        g_string_append (out, json_object_get_string_member (object, "text"));
      if (json_object_has_member (object, "repeat"))
        {
          JsonArray *repeat = json_object_get_array_member (object, "repeat");
          const char *unit = json_array_get_string_element (repeat, 0);
          gint64 count = json_array_get_int_element (repeat, 1);

          for (gint64 i = 0; i < count; i++)
            g_string_append (out, unit);
        }
      if (json_object_has_member (object, "suffix"))
        g_string_append (out, json_object_get_string_member (object, "suffix"));
    }
  return g_string_free_to_bytes (out);
}

/* Random request ids differ between runs: mask them. */
static char *
normalize (const char *text)
{
  static const char *patterns[][2] = {
    { "[-0-9A-Za-z_]{11}\\.[-0-9A-Za-z_]{4}", "<TX>.<RQ>" },
    { "(\"tx)\\.[-0-9A-Za-z_]{4}\"", "\\1.<RQ>\"" },
    { "(tinybase:3:[^.]*\\.tx)\\.[-0-9A-Za-z_]{4}\\.", "\\1.<RQ>." },
    { "\"[-0-9A-Za-z_]{11}\",2,", "\"<TX>\",2," },
    { "\"[-0-9A-Za-z_]{16}\",-1,", "\"<ID>\",-1," },
  };
  char *result = g_strdup (text);

  for (guint i = 0; i < G_N_ELEMENTS (patterns); i++)
    {
      g_autoptr(GRegex) regex = g_regex_new (patterns[i][0], 0, 0, NULL);
      char *next = g_regex_replace (regex, result, -1, 0, patterns[i][1], 0, NULL);

      g_free (result);
      result = next;
    }
  return result;
}

static void
assert_json_equal (const char *actual,
                   JsonNode   *expected,
                   const char *what)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *expected_text = json_to_string (expected, FALSE);

  json_parser_load_from_data (parser, actual, -1, &error);
  g_assert_no_error (error);
  if (!json_node_equal (json_parser_get_root (parser), expected))
    g_error ("%s differs:\n  actual   %s\n  expected %s", what, actual, expected_text);
}

static void
assert_strings (GPtrArray  *actual,
                JsonArray  *expected,
                const char *what,
                const char *description)
{
  guint n = json_array_get_length (expected);

  for (guint i = 0; i < MAX (n, actual->len); i++)
    {
      g_autofree char *a = i < actual->len ? normalize (actual->pdata[i]) : g_strdup ("(none)");
      g_autofree char *e = i < n ? normalize (json_array_get_string_element (expected, i))
                                 : g_strdup ("(none)");

      if (g_str_has_suffix (e, "…") && strlen (a) > strlen (e) - strlen ("…"))
        a[strlen (e) - strlen ("…")] = '\0', e[strlen (e) - strlen ("…")] = '\0';
      if (strcmp (a, e) != 0)
        g_error ("%s: %s %u differs:\n  actual   %s\n  expected %s", description, what, i, a, e);
    }
}

static JsonArray *
load_cases (const char *member,
            JsonParser *parser)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "invalid-messages.json", NULL);
  g_autoptr(GError) error = NULL;

  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  return json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), member);
}

static void
test_invalid_legacy (void)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonArray *cases = load_cases ("clientLegacy", parser);
  Bare *bare = bare_new (FALSE);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", bare->port);

  for (guint c = 0; c < json_array_get_length (cases); c++)
    {
      JsonObject *kase = json_array_get_object_element (cases, c);
      const char *description = json_object_get_string_member (kase, "description");
      gboolean syncing = g_str_equal (json_object_get_string_member (kase, "clientState"), "syncing");
      JsonArray *payloads = json_object_get_array_member (kase, "payloadsToClient");
      JsonNode *closed_with = json_object_get_member (kase, "clientClosedWith");
      g_autoptr(TsMergeableStore) store = new_store ("client");
      g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(GError) error = NULL;
      g_autofree char *content = NULL;
      g_autofree char *mergeable = NULL;
      gboolean closed_right = TRUE;
      TsWsSynchronizer *sync;

      g_test_message ("case %u: %s", c, description);
      ts_mergeable_store_set_clock (store, fixed_clock, NULL, NULL);
      ts_mergeable_store_set_cell_string (store, "mine", "row", "cell", "original");
      sync = create_sync (store, uri, 0.3, &error);
      g_assert_no_error (error);
      ts_ws_synchronizer_set_reconnect (sync, FALSE);
      g_assert_true (wait_for (bare_has_conn, bare, 5000));
      g_signal_connect (sync, "ignored-error", G_CALLBACK (on_ignored_error), errors);
      if (syncing)
        start_sync (sync);
      sleep_ms (50);
      g_ptr_array_set_size (errors, 0);
      g_ptr_array_set_size (bare->received, 0);

      for (guint p = 0; p < json_array_get_length (payloads); p++)
        {
          gboolean binary;
          g_autoptr(GBytes) bytes = descriptor_bytes (json_array_get_element (payloads, p), &binary);

          soup_websocket_connection_send_message (bare->conn,
                                                  binary ? SOUP_WEBSOCKET_DATA_BINARY
                                                         : SOUP_WEBSOCKET_DATA_TEXT,
                                                  bytes);
        }

      if (JSON_NODE_HOLDS_NULL (closed_with))
        {
          g_assert_false (wait_for (bare_is_closed, bare, 700));
          g_assert_true (ts_ws_synchronizer_is_connected (sync));
        }
      else
        {
          JsonObject *expected = json_node_get_object (closed_with);

          if (!wait_for (bare_is_closed, bare, 5000))
            g_error ("%s: the client did not close", description);
          closed_right = assert_closed_with (bare, expected, description);
          g_assert_true (wait_for (is_disconnected, sync, 5000));
        }

      if (closed_right)
        assert_strings (errors, json_object_get_array_member (kase, "clientIgnoredErrors"),
                      "ignored error", description);
      assert_strings (bare->received, json_object_get_array_member (kase, "clientSent"),
                      "frame sent", description);
      content = ts_mergeable_store_get_content_json (store);
      assert_json_equal (content, json_object_get_member (kase, "storeContentAfter"), description);
      mergeable = ts_mergeable_store_get_mergeable_content_json (store);
      assert_json_equal (mergeable, json_object_get_member (kase, "storeMergeableContentAfter"),
                         description);

      destroy_sync (&sync);
      bare_reset (bare);
    }
  bare_free (bare);
}

static void
test_destroy_closes (void)
{
  Bare *bare = bare_new (FALSE);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", bare->port);
  g_autoptr(TsMergeableStore) store = new_store ("client");
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sync;

  sync = create_sync (store, uri, 0.3, &error);
  g_assert_no_error (error);
  g_assert_true (wait_for (bare_has_conn, bare, 5000));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync));
  g_assert_false (ts_ws_synchronizer_is_connected (sync));
  g_assert_true (wait_for (bare_is_closed, bare, 5000));
  /* a plain close: no status */
  g_assert_cmpint (bare->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_object_unref (sync);
  bare_free (bare);
}

static void
test_send_overflow (void)
{
  Bare *bare = bare_new (FALSE);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", bare->port);
  g_autoptr(TsMergeableStore) store = new_store ("client");
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (4000, 'x');
  TsWsSynchronizer *sync;

  sync = create_sync (store, uri, 0.3, &error);
  g_assert_no_error (error);
  ts_ws_synchronizer_set_reconnect (sync, FALSE);
  ts_ws_synchronizer_set_max_message_size (sync, 2048);
  g_assert_cmpuint (ts_ws_synchronizer_get_max_message_size (sync), ==, 2048);
  g_signal_connect (sync, "ignored-error", G_CALLBACK (on_ignored_error), errors);
  g_assert_true (wait_for (bare_has_conn, bare, 5000));
  start_sync (sync);
  g_ptr_array_set_size (errors, 0);
  ts_mergeable_store_set_cell_string (store, "t", "r", "c", big);
  g_assert_true (wait_for (bare_is_closed, bare, 5000));
  g_assert_cmpint (bare->close_code, ==, 1013);
  g_assert_cmpstr (bare->close_reason, ==, "tinybase:15:socket");
  g_assert_true (g_ptr_array_find_with_equal_func (errors, "tinybase:15:socket", g_str_equal, NULL));
  destroy_sync (&sync);
  bare_free (bare);
}

static void
test_for_connection (void)
{
  Relay *relay = relay_new ();
  g_autofree char *uri = relay_uri (relay, "/caller");
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(TsMergeableStore) store1 = new_store ("store1");
  g_autoptr(TsMergeableStore) store2 = new_store ("store2");
  TsMergeableStore *stores[] = { store1, store2 };
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sync1, *sync2;
  SoupWebsocketConnection *conn;
  Async async = { NULL };
  g_autoptr(SoupMessage) msg = soup_message_new (SOUP_METHOD_GET, uri);

  soup_session_websocket_connect_async (session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        on_async, &async);
  g_assert_true (wait_for (async_done, &async, 10000));
  conn = soup_session_websocket_connect_finish (session, async.result, &error);
  g_assert_no_error (error);
  g_clear_object (&async.result);

  sync1 = ts_ws_synchronizer_new_for_connection (store1, conn, 0.2);
  g_assert_true (ts_ws_synchronizer_is_connected (sync1));
  g_assert_true (ts_ws_synchronizer_get_connection (sync1) == conn);
  g_assert_null (ts_ws_synchronizer_get_uri (sync1));
  sync2 = create_sync (store2, uri, 0.2, &error);
  g_assert_no_error (error);
  start_sync (sync1);
  start_sync (sync2);
  ts_mergeable_store_set_cell_string (store1, "t", "r", "c", "caller");
  assert_converged (stores, 2, NULL, 5000);

  /* the server closes: no reconnect for a caller's connection */
  relay_stop (relay);
  g_assert_true (wait_for (is_disconnected, sync1, 5000));
  destroy_sync (&sync1);
  destroy_sync (&sync2);
  g_object_unref (conn);
  relay_free (relay);
}

/* ======================================================================= */
/* A server that completes the handshake, then never answers                */
/* ======================================================================= */

typedef struct {
  GSocketService *service;
  guint           port;
  GPtrArray      *connections;   /* GSocketConnection*, kept silent */
  guint           accepted;
} Silent;

typedef struct {
  Silent            *silent;
  GSocketConnection *conn;
  GString           *request;
  char               buffer[512];
} SilentClient;

static void silent_read (SilentClient *client);

static void
silent_written (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  SilentClient *client = data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL);
  /* from now on: read nothing, answer nothing (no pongs) */
  g_ptr_array_add (client->silent->connections, client->conn);
  g_string_free (client->request, TRUE);
  g_free (client);
}

static void
silent_on_read (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  SilentClient *client = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);
  const char *key;
  g_autofree char *accept = NULL;
  g_autoptr(GChecksum) sha1 = NULL;
  char *response;
  guint8 digest[20];
  gsize len = sizeof digest;

  if (n <= 0)
    {
      g_object_unref (client->conn);
      g_string_free (client->request, TRUE);
      g_free (client);
      return;
    }
  g_string_append_len (client->request, client->buffer, n);
  if (strstr (client->request->str, "\r\n\r\n") == NULL)
    {
      silent_read (client);
      return;
    }
  key = strstr (client->request->str, "Sec-WebSocket-Key: ");
  g_assert_nonnull (key);
  key += strlen ("Sec-WebSocket-Key: ");
  sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  g_checksum_update (sha1, (const guchar *) key, strcspn (key, "\r"));
  g_checksum_update (sha1, (const guchar *) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", -1);
  g_checksum_get_digest (sha1, digest, &len);
  accept = g_base64_encode (digest, len);
  response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
  len = strlen (response);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (client->conn)),
                                   response, len, G_PRIORITY_DEFAULT, NULL, silent_written, client);
  g_object_set_data_full (G_OBJECT (client->conn), "response", response, g_free);
}

static void
silent_read (SilentClient *client)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (client->conn)),
                             client->buffer, sizeof client->buffer, G_PRIORITY_DEFAULT, NULL,
                             silent_on_read, client);
}

static gboolean
silent_on_incoming (GSocketService    *service,
                    GSocketConnection *conn,
                    GObject           *source,
                    gpointer           data)
{
  SilentClient *client = g_new0 (SilentClient, 1);

  client->silent = data;
  client->silent->accepted++;
  client->conn = g_object_ref (conn);
  client->request = g_string_new (NULL);
  silent_read (client);
  return TRUE;
}

static Silent *
silent_new (void)
{
  Silent *silent = g_new0 (Silent, 1);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) effective = NULL;
  g_autoptr(GError) error = NULL;

  silent->connections = g_ptr_array_new_with_free_func (g_object_unref);
  silent->service = g_socket_service_new ();
  g_socket_listener_add_address (G_SOCKET_LISTENER (silent->service), address,
                                 G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                 &effective, &error);
  g_assert_no_error (error);
  silent->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  g_signal_connect (silent->service, "incoming", G_CALLBACK (silent_on_incoming), silent);
  g_socket_service_start (silent->service);
  return silent;
}

static void
silent_free (Silent *silent)
{
  g_socket_service_stop (silent->service);
  g_socket_listener_close (G_SOCKET_LISTENER (silent->service));
  g_object_unref (silent->service);
  g_ptr_array_unref (silent->connections);
  g_free (silent);
}

static gboolean
two_accepted (gpointer data)
{
  return ((Silent *) data)->accepted >= 2;
}

static void
test_keepalive (void)
{
  Silent *silent = silent_new ();
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", silent->port);
  g_autoptr(TsMergeableStore) store = new_store ("store");
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sync;

  sync = create_sync (store, uri, 0.2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ts_ws_synchronizer_get_keepalive_interval (sync), ==, 30);
  g_signal_connect (sync, "ignored-error", G_CALLBACK (on_ignored_error), errors);
  ts_ws_synchronizer_set_keepalive_interval (sync, 1);
  g_assert_true (ts_ws_synchronizer_is_connected (sync));

  /* no pong, nothing else: given up after two intervals, reopened */
  g_assert_true (wait_for (is_disconnected, sync, 5000));
  g_assert_true (g_ptr_array_find_with_equal_func (errors, "tinybase:5", g_str_equal, NULL));
  g_assert_true (wait_for (two_accepted, silent, 5000));
  g_assert_true (wait_for (is_connected, sync, 5000));

  ts_ws_synchronizer_set_reconnect (sync, FALSE);
  g_assert_true (wait_for (is_disconnected, sync, 5000));
  g_assert_false (wait_for (is_connected, sync, 1500));
  destroy_sync (&sync);
  silent_free (silent);
}

/* ======================================================================= */
/* Channel mode                                                             */
/* ======================================================================= */

static void
test_channels (void)
{
  Relay *relay = relay_new ();
  g_autofree char *uri = relay_uri (relay, "/base");
  g_autofree char *legacy_uri = relay_uri (relay, "/base/pets");
  TsMergeableStore *stores[4];
  TsWsSynchronizer *syncs[4];
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *dup;

  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *id = g_strdup_printf ("store%u", i);

      stores[i] = new_store (id);
    }
  /* two channels on one socket, a second socket on "pets", and a legacy
   * client in room base/pets */
  syncs[0] = create_channel_sync (stores[0], uri, NULL, "pets", 0.2, &error);
  g_assert_no_error (error);
  syncs[1] = create_channel_sync (stores[1], uri, NULL, "staff", 0.2, &error);
  g_assert_no_error (error);
  g_assert_true (ts_ws_synchronizer_get_connection (syncs[0]) ==
                 ts_ws_synchronizer_get_connection (syncs[1]));
  g_assert_cmpstr (ts_ws_synchronizer_get_channel_id (syncs[1]), ==, "staff");
  g_assert_true (ts_ws_synchronizer_is_connected (syncs[0]));
  syncs[2] = create_sync (stores[2], legacy_uri, 0.2, &error);
  g_assert_no_error (error);
  syncs[3] = create_channel_sync (stores[3], NULL,
                                  ts_ws_synchronizer_get_connection (syncs[0]), "staff2", 0.2,
                                  &error);
  g_assert_no_error (error);
  g_assert_cmpuint (relay->clients->len, ==, 2);

  /* duplicate and invalid channels */
  dup = create_channel_sync (stores[3], uri, NULL, "pets", 0.2, &error);
  g_assert_null (dup);
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CHANNEL);
  g_assert_nonnull (strstr (error->message, "tinybase:7:pets"));
  g_clear_error (&error);
  dup = create_channel_sync (stores[3], uri, NULL, "a//b", 0.2, &error);
  g_assert_null (dup);
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_CHANNEL);
  g_assert_nonnull (strstr (error->message, "tinybase:6:a//b"));
  g_clear_error (&error);

  for (guint i = 0; i < 4; i++)
    start_sync (syncs[i]);
  ts_mergeable_store_set_cell_string (stores[0], "pets", "fido", "species", "dog");
  ts_mergeable_store_set_cell_string (stores[2], "pets", "felix", "species", "cat");
  ts_mergeable_store_set_cell_string (stores[1], "staff", "ann", "role", "vet");
  {
    TsMergeableStore *pets[] = { stores[0], stores[2] };

    assert_converged (pets, 2,
                      "{\"pets\":{\"fido\":{\"species\":\"dog\"},\"felix\":{\"species\":\"cat\"}}}",
                      5000);
  }
  sleep_ms (200);
  {
    g_autofree char *staff = ts_mergeable_store_get_tables_json (stores[1]);
    g_autofree char *staff2 = ts_mergeable_store_get_tables_json (stores[3]);

    g_assert_cmpstr (staff, ==, "{\"staff\":{\"ann\":{\"role\":\"vet\"}}}");
    g_assert_cmpstr (staff2, ==, "{}");
  }

  /* destroying channels keeps the socket until the last one */
  destroy_sync (&syncs[1]);
  destroy_sync (&syncs[3]);
  g_assert_cmpuint (relay->clients->len, ==, 2);
  destroy_sync (&syncs[0]);
  destroy_sync (&syncs[2]);
  g_assert_true (wait_for (relay_empty, relay, 5000));
  for (guint i = 0; i < 4; i++)
    g_object_unref (stores[i]);
  relay_free (relay);
}

static void
test_channel_reconnect (void)
{
  Relay *relay = relay_new ();
  guint port = relay->port;
  g_autofree char *uri = relay_uri (relay, "");
  g_autoptr(TsMergeableStore) a = new_store ("a");
  g_autoptr(TsMergeableStore) b = new_store ("b");
  TsMergeableStore *stores[] = { a, b };
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sa, *sb;
  g_autofree char *uri_b = NULL;

  sa = create_channel_sync (a, uri, NULL, "room/x", 0.2, &error);
  g_assert_no_error (error);
  /* another URI, so another socket */
  uri_b = g_strdup_printf ("ws://localhost:%u", port);
  sb = create_channel_sync (b, uri_b, NULL, "room/x", 0.2, &error);
  g_assert_no_error (error);
  start_sync (sa);
  start_sync (sb);
  ts_mergeable_store_set_cell_string (a, "t", "r", "c", "1");
  assert_converged (stores, 2, NULL, 5000);

  relay_stop (relay);
  g_assert_true (wait_for (is_disconnected, sa, 5000));
  ts_mergeable_store_set_cell_string (a, "t", "r", "offline", "2");
  relay_listen (relay, port);
  g_assert_true (wait_for (is_connected, sa, 10000));
  g_assert_true (wait_for (is_connected, sb, 10000));
  assert_converged (stores, 2, NULL, 10000);
  {
    g_autofree char *tables = ts_mergeable_store_get_tables_json (b);

    g_assert_nonnull (strstr (tables, "\"offline\":\"2\""));
  }
  destroy_sync (&sa);
  destroy_sync (&sb);
  g_assert_true (wait_for (relay_empty, relay, 5000));
  relay_free (relay);
}

static gboolean
cancel_cb (gpointer data)
{
  g_cancellable_cancel (data);
  return G_SOURCE_REMOVE;
}

static void
test_cancel (void)
{
  Bare *bare = bare_new (TRUE);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", bare->port);
  g_autoptr(TsMergeableStore) store = new_store ("store");
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) cancellable2 = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  Async async = { NULL };
  TsWsSynchronizer *sync;
  gint64 start = g_get_monotonic_time ();

  /* a channel whose Hello is never answered (timeout 5 s), cancelled */
  ts_ws_synchronizer_new_channel_async (store, uri, "pets", 5, cancellable, on_async, &async);
  g_timeout_add (200, cancel_cb, cancellable);
  g_assert_true (wait_for (async_done, &async, 5000));
  sync = ts_ws_synchronizer_new_finish (async.result, &error);
  g_clear_object (&async.result);
  g_assert_null (sync);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
  g_clear_error (&error);
  /* the socket, left without channels, is closed */
  g_assert_true (wait_for (bare_is_closed, bare, 5000));
  bare_reset (bare);

  /* a legacy connection cancelled at once */
  ts_ws_synchronizer_new_async (store, uri, 1, cancellable2, on_async, &async);
  g_cancellable_cancel (cancellable2);
  g_assert_true (wait_for (async_done, &async, 5000));
  sync = ts_ws_synchronizer_new_finish (async.result, &error);
  g_clear_object (&async.result);
  g_assert_null (sync);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  bare_free (bare);
}

/* The clientMultiple cases: the bare server answers Hello/Subscribe as
 * told ({HELLO}/{SUB} stand for the client's request ids). */
typedef struct {
  Bare      *bare;
  JsonArray *plays;
  guint      next;
  gboolean   waiting;
  guint      wait_id;
} Player;

static gboolean player_step (gpointer data);

static gboolean
player_wait_done (gpointer data)
{
  Player *player = data;

  player->waiting = FALSE;
  player->wait_id = 0;
  return G_SOURCE_REMOVE;
}

static const char *
find_control (Bare       *bare,
              const char *marker)
{
  for (guint i = 0; i < bare->received->len; i++)
    if (strstr (bare->received->pdata[i], marker) != NULL)
      return bare->received->pdata[i];
  return NULL;
}

/* Sends what can be sent now; TRUE when done. */
static gboolean
player_step (gpointer data)
{
  Player *player = data;

  while (!player->waiting && player->next < json_array_get_length (player->plays))
    {
      JsonNode *node = json_array_get_element (player->plays, player->next);
      g_autofree char *text = NULL;

      if (JSON_NODE_HOLDS_OBJECT (node))
        {
          player->waiting = TRUE;
          player->wait_id = g_timeout_add (json_object_get_int_member (json_node_get_object (node), "wait"),
                                           player_wait_done, player);
          player->next++;
          return FALSE;
        }
      if (player->bare->conn == NULL)
        return FALSE;
      text = g_strdup (json_node_get_string (node));
      if (strstr (text, "{HELLO}") != NULL || strstr (text, "{SUB}") != NULL)
        {
          gboolean hello = strstr (text, "{HELLO}") != NULL;
          const char *control = find_control (player->bare, hello ? ",[0," : ",[1,");
          g_autofree char *id = NULL;
          g_auto(GStrv) parts = NULL;

          if (control == NULL)
            return FALSE;
          id = g_strndup (control + 3, 18);   /* "…16 chars…" after S\n[ */
          parts = g_strsplit (text, hello ? "{HELLO}" : "{SUB}", 2);
          g_free (text);
          text = g_strconcat (parts[0], id, parts[1], NULL);
        }
      g_test_message ("server plays %s", text);
      if (soup_websocket_connection_get_state (player->bare->conn) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_text (player->bare->conn, text);
      player->next++;
    }
  return !player->waiting && player->next >= json_array_get_length (player->plays);
}

typedef struct {
  Player  *player;
  Async   *async;
} CreationWait;

static gboolean
creation_or_played (gpointer data)
{
  CreationWait *w = data;

  player_step (w->player);
  return w->async->result != NULL;
}

static void
test_invalid_multiple (void)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonArray *cases = load_cases ("clientMultiple", parser);
  Bare *bare = bare_new (TRUE);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/room", bare->port);

  for (guint c = 0; c < json_array_get_length (cases); c++)
    {
      JsonObject *kase = json_array_get_object_element (cases, c);
      const char *description = json_object_get_string_member (kase, "description");
      JsonNode *closed_with = json_object_get_member (kase, "clientClosedWith");
      const char *rejected = json_object_has_member (kase, "createWsSynchronizerRejectedWith")
                               ? json_object_get_string_member (kase, "createWsSynchronizerRejectedWith")
                               : NULL;
      g_autoptr(TsMergeableStore) store = new_store ("client");
      g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(GError) error = NULL;
      g_autofree char *content = NULL;
      TsWsSynchronizer *sync;
      Player player = { bare, json_object_get_array_member (kase, "serverPlays"), 0, FALSE, 0 };
      Async async = { NULL };
      CreationWait w = { &player, &async };

      g_test_message ("case %u: %s", c, description);
      ts_mergeable_store_set_clock (store, fixed_clock, NULL, NULL);
      ts_mergeable_store_set_cell_string (store, "mine", "row", "cell", "original");
      ts_ws_synchronizer_new_channel_async (store, uri, "pets", 0.3, NULL, on_async, &async);
      g_assert_true (wait_for (creation_or_played, &w, 5000));
      sync = ts_ws_synchronizer_new_finish (async.result, &error);
      g_clear_object (&async.result);
      if (rejected != NULL)
        {
          g_autofree char *code = NULL;

          g_assert_null (sync);
          g_assert_nonnull (error);
          code = g_strdup_printf ("(%s)", rejected);
          if (strstr (error->message, code) == NULL)
            g_error ("%s: rejected with %s, expected %s", description, error->message, rejected);
        }
      else
        {
          g_assert_no_error (error);
          ts_ws_synchronizer_set_reconnect (sync, FALSE);
          g_signal_connect (sync, "ignored-error", G_CALLBACK (on_ignored_error), errors);
          /* as the generator: the server's plays, then startSync () */
          g_assert_true (wait_for (player_step, &player, 5000));
          start_sync (sync);
        }

      if (JSON_NODE_HOLDS_NULL (closed_with))
        g_assert_false (wait_for (bare_is_closed, bare, 700));
      else
        {
          JsonObject *expected = json_node_get_object (closed_with);

          if (!wait_for (bare_is_closed, bare, 5000))
            g_error ("%s: the client did not close", description);
          assert_closed_with (bare, expected, description);
        }
      if (sync != NULL && JSON_NODE_HOLDS_NULL (closed_with))
        {
          /* what the client sent: compare (random ids masked) */
          assert_strings (bare->received, json_object_get_array_member (kase, "clientSent"),
                          "frame sent", description);
        }
      content = ts_mergeable_store_get_content_json (store);
      assert_json_equal (content, json_object_get_member (kase, "storeContentAfter"), description);

      if (player.wait_id != 0)
        g_source_remove (player.wait_id);
      destroy_sync (&sync);
      bare_reset (bare);
    }
  bare_free (bare);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/ws-synchronizer/seed", test_seed);
  g_test_add_func ("/tinysync/ws-synchronizer/fragments", test_fragments);
  g_test_add_func ("/tinysync/ws-synchronizer/many-peers", test_many_peers);
  g_test_add_func ("/tinysync/ws-synchronizer/reconnect", test_reconnect);
  g_test_add_func ("/tinysync/ws-synchronizer/no-reconnect", test_no_reconnect);
  g_test_add_func ("/tinysync/ws-synchronizer/connect-failure", test_connect_failure);
  g_test_add_func ("/tinysync/ws-synchronizer/destroy-closes", test_destroy_closes);
  g_test_add_func ("/tinysync/ws-synchronizer/send-overflow", test_send_overflow);
  g_test_add_func ("/tinysync/ws-synchronizer/for-connection", test_for_connection);
  g_test_add_func ("/tinysync/ws-synchronizer/keepalive", test_keepalive);
  g_test_add_func ("/tinysync/ws-synchronizer/invalid-messages/legacy", test_invalid_legacy);
  g_test_add_func ("/tinysync/ws-synchronizer/channels", test_channels);
  g_test_add_func ("/tinysync/ws-synchronizer/channel-reconnect", test_channel_reconnect);
  g_test_add_func ("/tinysync/ws-synchronizer/cancel", test_cancel);
  g_test_add_func ("/tinysync/ws-synchronizer/invalid-messages/multiple", test_invalid_multiple);

  return g_test_run ();
}
