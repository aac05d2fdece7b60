/* test-ws-security.c: TsWsServer's abuse limits and tinysync-server's
 * security options, over real sockets
 *
 * SPDX-License-Identifier: MIT
 *
 * - accept-request: a token checked from the Authorization header or the
 *   query, refused with the handler's 401 and its WWW-Authenticate header,
 *   before the duplicate-key check can tell anything;
 * - max-connections-per-ip: 429 past the limit, a slot freed by a close;
 * - max-messages-per-second: a flooding client is closed with 1008
 *   tinysync:rate while another pair of the same room keeps relaying;
 * - the client id takeover of TinyBase (a second connection presenting a
 *   live peer's Sec-WebSocket-Key, even an authenticated one): refused
 *   with 409, the victim keeps its id and keeps receiving;
 * - wss: a throwaway self-signed certificate made with openssl at test
 *   time (skipped without openssl; the private key is deleted once
 *   loaded), refused by a TsWsSynchronizer with the system's trust store
 *   or another certificate's, then trusted through its tls-database
 *   property: two synchronizers sync over it;
 * - the tinysync-server daemon with --token-file, --max-path-length and
 *   --max-connections-per-ip, driven with SoupSession WebSocket clients.
 *
 * Raw clients write their own upgrade request (any target, key and extra
 * headers) over a GSocketClient, then talk through a client
 * SoupWebsocketConnection. Every wait has a timeout.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "tinysync/tinysync.h"

#define WAIT_TIMEOUT_MS 10000

/* ---- Waiting ------------------------------------------------------------ */

static gboolean
set_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Condition) (gpointer data);

static gboolean
wait_for (Condition cond,
          gpointer  data,
          guint     timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, set_flag, &timed_out);

  while (!cond (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return cond (data);
}

static void
wait_until (Condition cond,
            gpointer  data)
{
  if (!wait_for (cond, data, WAIT_TIMEOUT_MS))
    g_error ("timed out waiting");
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

static void
wait_ms (guint ms)
{
  wait_for (never, NULL, ms);
}

/* ---- Fixture ------------------------------------------------------------ */

typedef struct {
  SoupServer *soup;
  TsWsServer *server;
  guint       port;
  gboolean    tls;
  GPtrArray  *errors;   /* GError * */
  GPtrArray  *removed;  /* char *: client ids that left */
  GPtrArray  *clients;  /* TestClient * */
  char       *tmpdir;
} Fixture;

static void
on_ignored_error (TsWsServer *server, GError *error, Fixture *fx)
{
  g_ptr_array_add (fx->errors, g_error_copy (error));
}

static void
on_client_removed (TsWsServer *server, const char *path_id, const char *client_id, Fixture *fx)
{
  g_ptr_array_add (fx->removed, g_strdup (client_id));
}

static void
fixture_start (Fixture         *fx,
               GTlsCertificate *cert)
{
  g_autoptr(GError) error = NULL;
  GSList *uris;

  fx->soup = soup_server_new ("raw-paths", TRUE, "tls-certificate", cert, NULL);
  fx->server = ts_ws_server_new (fx->soup);
  fx->tls = cert != NULL;
  g_assert_true (soup_server_listen_local (fx->soup, 0,
                                           SOUP_SERVER_LISTEN_IPV4_ONLY |
                                           (cert ? SOUP_SERVER_LISTEN_HTTPS : 0),
                                           &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (fx->soup);
  fx->port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  g_signal_connect (fx->server, "ignored-error", G_CALLBACK (on_ignored_error), fx);
  g_signal_connect (fx->server, "client-removed", G_CALLBACK (on_client_removed), fx);
}

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  fx->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  fx->removed = g_ptr_array_new_with_free_func (g_free);
  fx->clients = g_ptr_array_new ();
  if (data == NULL)
    fixture_start (fx, NULL);
}

typedef struct _TestClient TestClient;
static void test_client_free (TestClient *c);

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  for (guint i = 0; i < fx->clients->len; i++)
    test_client_free (g_ptr_array_index (fx->clients, i));
  g_ptr_array_unref (fx->clients);
  if (fx->server != NULL)
    {
      ts_ws_server_destroy (fx->server);
      g_assert_finalize_object (fx->server);
      soup_server_disconnect (fx->soup);
      g_assert_finalize_object (fx->soup);
    }
  g_ptr_array_unref (fx->errors);
  g_ptr_array_unref (fx->removed);
  if (fx->tmpdir != NULL)
    {
      g_autoptr(GDir) dir = g_dir_open (fx->tmpdir, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (fx->tmpdir, name, NULL);

          g_unlink (path);
        }
      g_rmdir (fx->tmpdir);
      g_free (fx->tmpdir);
    }
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static gboolean
removed_contains (Fixture    *fx,
                  const char *id)
{
  for (guint i = 0; i < fx->removed->len; i++)
    if (g_str_equal (g_ptr_array_index (fx->removed, i), id))
      return TRUE;
  return FALSE;
}

/* ---- Raw clients -------------------------------------------------------- */

struct _TestClient {
  Fixture                 *fx;
  GSocketConnection       *sock;
  SoupWebsocketConnection *conn;
  char                    *key;
  guint                    status;
  GString                 *response;
  guint8                   byte;
  gboolean                 done;
  GError                  *error;
  GPtrArray               *received;
  gboolean                 closed;
  guint16                  close_code;
  char                    *close_reason;
};

static void
on_client_message (SoupWebsocketConnection *conn, int type, GBytes *bytes, TestClient *c)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  g_ptr_array_add (c->received, g_strndup (data, len));
}

static void
on_client_closed (SoupWebsocketConnection *conn, TestClient *c)
{
  c->closed = TRUE;
  c->close_code = soup_websocket_connection_get_close_code (conn);
  c->close_reason = g_strdup (soup_websocket_connection_get_close_data (conn));
}

static void
on_client_error (SoupWebsocketConnection *conn, GError *error, TestClient *c)
{
}

static void
test_client_free (TestClient *c)
{
  if (c->conn != NULL)
    {
      g_signal_handlers_disconnect_by_data (c->conn, c);
      if (soup_websocket_connection_get_state (c->conn) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (c->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      g_object_unref (c->conn);
    }
  if (c->sock != NULL)
    g_io_stream_close (G_IO_STREAM (c->sock), NULL, NULL);
  g_clear_object (&c->sock);
  g_clear_error (&c->error);
  g_ptr_array_unref (c->received);
  if (c->response != NULL)
    g_string_free (c->response, TRUE);
  g_free (c->key);
  g_free (c->close_reason);
  g_free (c);
}

static gboolean
client_done (gpointer data)
{
  return ((TestClient *) data)->done;
}

static gboolean
client_closed (gpointer data)
{
  return ((TestClient *) data)->closed;
}

static char *
random_key (void)
{
  guint8 nonce[16];

  for (guint i = 0; i < sizeof nonce; i++)
    nonce[i] = g_random_int_range (0, 256);
  return g_base64_encode (nonce, sizeof nonce);
}

static void raw_read_byte (TestClient *c);

static void
raw_byte_read (GObject *source, GAsyncResult *result, gpointer data)
{
  TestClient *c = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &c->error);

  if (n <= 0)
    {
      if (n == 0 && c->error == NULL)
        c->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "closed");
      c->done = TRUE;
      return;
    }
  g_string_append_c (c->response, (char) c->byte);
  if (!g_str_has_suffix (c->response->str, "\r\n\r\n"))
    {
      raw_read_byte (c);
      return;
    }
  c->status = (guint) g_ascii_strtoull (c->response->str + 9, NULL, 10);
  if (c->status == 101)
    {
      g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", c->fx->port);
      g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);

      c->conn = soup_websocket_connection_new (G_IO_STREAM (c->sock), uri,
                                               SOUP_WEBSOCKET_CONNECTION_CLIENT,
                                               NULL, NULL, NULL);
      soup_websocket_connection_set_keepalive_interval (c->conn, 0);
      g_signal_connect (c->conn, "message", G_CALLBACK (on_client_message), c);
      g_signal_connect (c->conn, "closed", G_CALLBACK (on_client_closed), c);
      g_signal_connect (c->conn, "error", G_CALLBACK (on_client_error), c);
    }
  c->done = TRUE;
}

static void
raw_read_byte (TestClient *c)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (c->sock)),
                             &c->byte, 1, G_PRIORITY_DEFAULT, NULL, raw_byte_read, c);
}

static void
raw_request_written (GObject *source, GAsyncResult *result, gpointer data)
{
  TestClient *c = data;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &c->error))
    {
      c->done = TRUE;
      return;
    }
  g_string_truncate (c->response, 0);
  raw_read_byte (c);
}

static void
raw_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  TestClient *c = data;

  c->sock = g_socket_client_connect_to_host_finish (G_SOCKET_CLIENT (source), result, &c->error);
  if (c->sock == NULL)
    {
      c->done = TRUE;
      return;
    }
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (c->sock)),
                                   c->response->str, c->response->len, G_PRIORITY_DEFAULT,
                                   NULL, raw_request_written, c);
}

/* extra: more header lines, each ending with \r\n, or NULL */
static TestClient *
raw_connect_full (Fixture    *fx,
                  const char *target,
                  const char *key,
                  const char *protocol,
                  const char *extra)
{
  TestClient *c = g_new0 (TestClient, 1);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  GString *request = g_string_new (NULL);

  c->fx = fx;
  c->received = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (fx->clients, c);
  c->key = key ? g_strdup (key) : random_key ();
  g_string_append_printf (request,
                          "GET %s HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%u\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n",
                          target, fx->port, c->key);
  if (protocol != NULL)
    g_string_append_printf (request, "Sec-WebSocket-Protocol: %s\r\n", protocol);
  if (extra != NULL)
    g_string_append (request, extra);
  g_string_append (request, "\r\n");
  c->response = request;
  g_socket_client_connect_to_host_async (client, "127.0.0.1", (guint16) fx->port, NULL,
                                         raw_connected, c);
  wait_until (client_done, c);
  return c;
}

static TestClient *
raw_connect (Fixture    *fx,
             const char *target,
             const char *extra)
{
  return raw_connect_full (fx, target, NULL, NULL, extra);
}

static void
client_send (TestClient *c,
             const char *text)
{
  soup_websocket_connection_send_text (c->conn, text);
}

typedef struct {
  TestClient *c;
  const char *text;
} ReceivedWait;

static gboolean
has_received (gpointer data)
{
  ReceivedWait *w = data;

  for (guint i = 0; i < w->c->received->len; i++)
    if (g_str_equal (g_ptr_array_index (w->c->received, i), w->text))
      return TRUE;
  return FALSE;
}

static void
wait_received (TestClient *c,
               const char *text)
{
  ReceivedWait w = { c, text };

  if (!wait_for (has_received, &w, WAIT_TIMEOUT_MS))
    g_error ("timed out waiting for %s", text);
}

/* ---- Tokens through accept-request -------------------------------------- */

typedef struct {
  guint  calls;
  char  *remote;
} AuthState;

static gboolean
accept_token (TsWsServer        *server,
              const char        *path_id,
              SoupServerMessage *msg,
              AuthState         *state)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *auth = soup_message_headers_get_one (headers, "Authorization");
  const char *query = g_uri_get_query (soup_server_message_get_uri (msg));
  g_autoptr(GHashTable) params = NULL;

  state->calls++;
  g_free (state->remote);
  state->remote = g_strdup (soup_server_message_get_remote_host (msg));
  if (g_strcmp0 (auth, "Bearer s3cret") == 0)
    return TRUE;
  if (query != NULL)
    params = g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, NULL);
  if (params != NULL && g_strcmp0 (g_hash_table_lookup (params, "token"), "s3cret") == 0)
    return TRUE;
  soup_server_message_set_status (msg, SOUP_STATUS_UNAUTHORIZED, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "WWW-Authenticate", "Bearer");
  return FALSE;
}

static gboolean
accept_client_count (TsWsServer *server, const char *path_id, SoupMessageHeaders *headers,
                     guint *calls)
{
  (*calls)++;
  return TRUE;
}

static void
test_token (Fixture       *fx,
            gconstpointer  data)
{
  AuthState state = { 0 };
  guint client_calls = 0;
  TestClient *c, *ok, *by_query;
  g_autofree char *text = NULL;

  g_signal_connect (fx->server, "accept-request", G_CALLBACK (accept_token), &state);
  g_signal_connect (fx->server, "accept-client", G_CALLBACK (accept_client_count), &client_calls);

  c = raw_connect (fx, "/room", NULL);
  g_assert_cmpuint (c->status, ==, 401);
  g_assert_nonnull (strstr (c->response->str, "WWW-Authenticate: Bearer"));
  g_assert_cmpstr (state.remote, ==, "127.0.0.1");
  c = raw_connect (fx, "/room", "Authorization: Bearer wrong\r\n");
  g_assert_cmpuint (c->status, ==, 401);
  c = raw_connect (fx, "/room?token=wrong", NULL);
  g_assert_cmpuint (c->status, ==, 401);
  /* A refused request never reaches accept-client. */
  g_assert_cmpuint (client_calls, ==, 0);

  ok = raw_connect (fx, "/room", "Authorization: Bearer s3cret\r\n");
  g_assert_cmpuint (ok->status, ==, 101);
  by_query = raw_connect (fx, "/room?token=s3cret", NULL);
  g_assert_cmpuint (by_query->status, ==, 101);
  g_assert_cmpuint (client_calls, ==, 2);
  /* The query is not part of the room. */
  {
    g_auto(GStrv) paths = ts_ws_server_get_path_ids (fx->server);

    g_assert_cmpuint (g_strv_length (paths), ==, 1);
    g_assert_cmpstr (paths[0], ==, "room");
  }

  /* Without a token, even a live key gets 401, not 409: nothing is
   * revealed before authentication. */
  c = raw_connect_full (fx, "/room", ok->key, NULL, NULL);
  g_assert_cmpuint (c->status, ==, 401);
  c = raw_connect_full (fx, "/room", ok->key, NULL, "Authorization: Bearer s3cret\r\n");
  g_assert_cmpuint (c->status, ==, 409);

  /* The two accepted clients talk. */
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", ok->key);
  client_send (by_query, text);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", by_query->key);
  wait_received (ok, text);
  g_free (state.remote);
}

/* ---- Connections per address -------------------------------------------- */

static void
test_per_ip (Fixture       *fx,
             gconstpointer  data)
{
  TestClient *a, *b, *c;
  guint limit = 99;

  g_assert_cmpuint (ts_ws_server_get_max_connections_per_ip (fx->server), ==, 0);
  g_object_set (fx->server, "max-connections-per-ip", 2, NULL);
  g_object_get (fx->server, "max-connections-per-ip", &limit, NULL);
  g_assert_cmpuint (limit, ==, 2);

  a = raw_connect (fx, "/one", NULL);
  g_assert_cmpuint (a->status, ==, 101);
  b = raw_connect (fx, "/two", NULL);
  g_assert_cmpuint (b->status, ==, 101);
  c = raw_connect (fx, "/one", NULL);
  g_assert_cmpuint (c->status, ==, 429);
  g_assert_null (c->conn);

  /* A refused duplicate key does not take a slot either. */
  soup_websocket_connection_close (a->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  wait_until (client_closed, a);
  while (!removed_contains (fx, a->key))
    g_main_context_iteration (NULL, TRUE);
  c = raw_connect_full (fx, "/one", b->key, NULL, NULL);
  g_assert_cmpuint (c->status, ==, 409);
  c = raw_connect (fx, "/one", NULL);
  g_assert_cmpuint (c->status, ==, 101);
  c = raw_connect (fx, "/one", NULL);
  g_assert_cmpuint (c->status, ==, 429);

  /* Raising the limit (or 0) lets more in at once. */
  ts_ws_server_set_max_connections_per_ip (fx->server, 0);
  c = raw_connect (fx, "/one", NULL);
  g_assert_cmpuint (c->status, ==, 101);
}

/* ---- Messages per second ------------------------------------------------ */

static void
test_rate (Fixture       *fx,
           gconstpointer  data)
{
  TestClient *flood, *a, *b;
  guint rate = 99;

  g_assert_cmpuint (ts_ws_server_get_max_messages_per_second (fx->server), ==, 0);
  ts_ws_server_set_max_messages_per_second (fx->server, 20);
  g_object_get (fx->server, "max-messages-per-second", &rate, NULL);
  g_assert_cmpuint (rate, ==, 20);

  flood = raw_connect (fx, "/room", NULL);
  a = raw_connect (fx, "/room", NULL);
  b = raw_connect (fx, "/room", NULL);
  g_assert_cmpuint (flood->status, ==, 101);
  g_assert_cmpuint (a->status, ==, 101);
  g_assert_cmpuint (b->status, ==, 101);

  /* A burst within one second's worth passes. */
  for (guint i = 0; i < 15; i++)
    {
      g_autofree char *text = g_strdup_printf ("%s\n[\"t%u\",1,\"\"]", a->key, i);

      client_send (flood, text);
    }
  {
    g_autofree char *last = g_strdup_printf ("%s\n[\"t14\",1,\"\"]", flood->key);

    wait_received (a, last);
  }
  g_assert_false (flood->closed);

  /* A flood does not. */
  for (guint i = 0; i < 200 && soup_websocket_connection_get_state (flood->conn) == SOUP_WEBSOCKET_STATE_OPEN; i++)
    {
      client_send (flood, "\n[\"t\",1,\"\"]");
      g_main_context_iteration (NULL, FALSE);
    }
  wait_until (client_closed, flood);
  g_assert_cmpuint (flood->close_code, ==, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
  g_assert_cmpstr (flood->close_reason, ==, "tinysync:rate");
  g_assert_cmpuint (fx->errors->len, ==, 1);
  g_assert_error ((GError *) g_ptr_array_index (fx->errors, 0), TS_ERROR, TS_ERROR_OVERFLOW);
  g_assert_nonnull (strstr (((GError *) g_ptr_array_index (fx->errors, 0))->message,
                            "tinysync:rate"));
  while (!removed_contains (fx, flood->key))
    g_main_context_iteration (NULL, TRUE);

  /* The others of the room keep going, at a rate below the limit, for
   * longer than the bucket holds. */
  for (guint i = 0; i < 30; i++)
    {
      g_autofree char *to_b = g_strdup_printf ("%s\n[\"t%u\",1,\"\"]", b->key, i);
      g_autofree char *to_a = g_strdup_printf ("%s\n[\"u%u\",1,\"\"]", a->key, i);
      g_autofree char *from_a = g_strdup_printf ("%s\n[\"t%u\",1,\"\"]", a->key, i);
      g_autofree char *from_b = g_strdup_printf ("%s\n[\"u%u\",1,\"\"]", b->key, i);

      client_send (a, to_b);
      client_send (b, to_a);
      wait_received (b, from_a);
      wait_received (a, from_b);
      wait_ms (60);
    }
  g_assert_false (a->closed);
  g_assert_false (b->closed);
  g_assert_cmpuint (fx->errors->len, ==, 1);
}

/* ---- Client id takeover ------------------------------------------------- */

static gboolean
accept_bearer (TsWsServer *server, const char *path_id, SoupServerMessage *msg, gpointer data)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  if (g_strcmp0 (soup_message_headers_get_one (headers, "Authorization"), "Bearer member") == 0)
    return TRUE;
  soup_server_message_set_status (msg, SOUP_STATUS_UNAUTHORIZED, NULL);
  return FALSE;
}

static void
test_takeover (Fixture       *fx,
               gconstpointer  data)
{
  const char *auth = "Authorization: Bearer member\r\n";
  TestClient *victim, *peer, *thief;
  g_autofree char *text = NULL;

  g_signal_connect (fx->server, "accept-request", G_CALLBACK (accept_bearer), NULL);
  victim = raw_connect (fx, "/room", auth);
  peer = raw_connect (fx, "/room", auth);
  g_assert_cmpuint (victim->status, ==, 101);
  g_assert_cmpuint (peer->status, ==, 101);

  /* A member of the room (authenticated like everyone) presents the
   * victim's key: legacy, multiplexed, in the same room and another. In
   * TinyBase the last one to connect would own the id. */
  thief = raw_connect_full (fx, "/room", victim->key, NULL, auth);
  g_assert_cmpuint (thief->status, ==, 409);
  g_assert_null (thief->conn);
  thief = raw_connect_full (fx, "/room", victim->key, "tinybase", auth);
  g_assert_cmpuint (thief->status, ==, 409);
  thief = raw_connect_full (fx, "/other", victim->key, NULL, auth);
  g_assert_cmpuint (thief->status, ==, 409);
  g_assert_false (removed_contains (fx, victim->key));
  {
    g_auto(GStrv) ids = ts_ws_server_get_client_ids (fx->server, "room");

    g_assert_cmpuint (g_strv_length (ids), ==, 2);
    g_assert_true (g_strv_contains ((const char * const *) ids, victim->key));
  }

  /* What is addressed to the victim's id still reaches the victim, and
   * what it broadcasts still comes from its id. */
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", victim->key);
  client_send (peer, text);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", peer->key);
  wait_received (victim, text);
  g_clear_pointer (&text, g_free);
  client_send (victim, "\n[\"t2\",1,\"\"]");
  text = g_strdup_printf ("%s\n[\"t2\",1,\"\"]", victim->key);
  wait_received (peer, text);
  g_assert_false (victim->closed);
}

/* ---- wss ---------------------------------------------------------------- */

typedef struct {
  GAsyncResult *result;
} Async;

static void
on_async (GObject *source, GAsyncResult *result, gpointer data)
{
  ((Async *) data)->result = g_object_ref (result);
}

static gboolean
async_done (gpointer data)
{
  return ((Async *) data)->result != NULL;
}

static TsWsSynchronizer *
create_sync (TsMergeableStore *store,
             const char       *uri,
             GTlsDatabase     *database,
             GError          **error)
{
  Async async = { NULL };
  g_autoptr(GObject) source = NULL;
  GObject *sync;

  g_async_initable_new_async (TS_TYPE_WS_SYNCHRONIZER, G_PRIORITY_DEFAULT, NULL,
                              on_async, &async,
                              "store", store,
                              "uri", uri,
                              "tls-database", database,
                              NULL);
  if (!wait_for (async_done, &async, 20000))
    g_error ("timed out connecting to %s", uri);
  /* (transfer full) */
  source = g_async_result_get_source_object (async.result);
  sync = g_async_initable_new_finish (G_ASYNC_INITABLE (source), async.result, error);
  g_object_unref (async.result);
  return sync != NULL ? TS_WS_SYNCHRONIZER (sync) : NULL;
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

static gboolean
make_certificate (const char *dir,
                  char      **cert_path,
                  char      **key_path)
{
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;

  if (openssl == NULL)
    return FALSE;
  *cert_path = g_build_filename (dir, "cert.pem", NULL);
  *key_path = g_build_filename (dir, "key.pem", NULL);
  {
    const char *argv[] = {
      openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
      "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", *key_path, "-out", *cert_path, NULL
    };

    if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                       &out, &err, &status, &error) ||
        !g_spawn_check_wait_status (status, NULL))
      {
        g_test_message ("openssl failed: %s", err ? err : error->message);
        return FALSE;
      }
  }
  return TRUE;
}

static gboolean
store_has_cell (gpointer data)
{
  g_autoptr(GVariant) value = ts_mergeable_store_get_cell (data, "t", "r", "c");

  return value != NULL;
}

static void
test_wss (Fixture       *fx,
          gconstpointer  data)
{
  g_autofree char *cert_path = NULL, *key_path = NULL, *uri = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autoptr(GTlsDatabase) database = NULL;
  g_autoptr(GTlsDatabase) other = NULL;
  g_autofree char *other_cert = NULL, *other_key = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(TsMergeableStore) store1 = NULL, store2 = NULL;
  g_autoptr(TsWsSynchronizer) sync1 = NULL, sync2 = NULL, refused = NULL;
  g_autoptr(GVariant) value = NULL;

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_test_skip ("no TLS backend (glib-networking)");
      return;
    }
  fx->tmpdir = g_dir_make_tmp ("tinysync-wss-XXXXXX", &error);
  g_assert_no_error (error);
  if (!make_certificate (fx->tmpdir, &cert_path, &key_path))
    {
      g_test_skip ("openssl cannot make a test certificate");
      return;
    }
  cert = g_tls_certificate_new_from_files (cert_path, key_path, &error);
  g_assert_no_error (error);
  /* The key is not needed any more: do not leave it around. */
  g_unlink (key_path);
  fixture_start (fx, cert);
  uri = g_strdup_printf ("wss://127.0.0.1:%u/secure", fx->port);

  /* An unknown certificate is refused: by the system's trust store, and
   * by a database of another certificate. */
  store1 = ts_mergeable_store_new (NULL);
  refused = create_sync (store1, uri, NULL, &error);
  g_assert_null (refused);
  g_assert_nonnull (error);
  g_test_message ("untrusted certificate: %s", error->message);
  g_clear_error (&error);
  {
    g_autofree char *sub = g_build_filename (fx->tmpdir, "other", NULL);

    g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
    g_assert_true (make_certificate (sub, &other_cert, &other_key));
    g_unlink (other_key);
    other = g_tls_file_database_new (other_cert, &error);
    g_assert_no_error (error);
    refused = create_sync (store1, uri, other, &error);
    g_assert_null (refused);
    g_assert_nonnull (error);
    g_clear_error (&error);
    g_unlink (other_cert);
    g_rmdir (sub);
  }
  {
    guint paths = 99, clients = 99;

    ts_ws_server_get_stats (fx->server, &paths, &clients);
    g_assert_cmpuint (clients, ==, 0);
  }

  /* Trusted through TsWsSynchronizer:tls-database. */
  database = g_tls_file_database_new (cert_path, &error);
  g_assert_no_error (error);
  store2 = ts_mergeable_store_new (NULL);
  sync1 = create_sync (store1, uri, database, &error);
  g_assert_no_error (error);
  g_assert_true (ts_ws_synchronizer_is_connected (sync1));
  sync2 = create_sync (store2, uri, database, &error);
  g_assert_no_error (error);
  {
    GTlsDatabase *got = NULL;

    g_object_get (sync1, "tls-database", &got, NULL);
    g_assert_true (got == database);
    g_object_unref (got);
  }
  start_sync (sync1);
  start_sync (sync2);
  ts_mergeable_store_set_cell_string (store1, "t", "r", "c", "over tls");
  if (!wait_for (store_has_cell, store2, WAIT_TIMEOUT_MS))
    g_error ("the change did not arrive over wss");
  value = ts_mergeable_store_get_cell (store2, "t", "r", "c");
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "over tls");

  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync1));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync2));
}

/* ---- The daemon --------------------------------------------------------- */

typedef struct {
  SoupSession             *session;
  SoupMessage             *msg;
  SoupWebsocketConnection *conn;
  GError                  *error;
  gboolean                 done;
} SessionClient;

static void
session_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  SessionClient *c = data;

  c->conn = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &c->error);
  c->done = TRUE;
}

static gboolean
session_done (gpointer data)
{
  return ((SessionClient *) data)->done;
}

/* Returns the HTTP status: 101 when connected. */
static guint
session_try (SoupSession *session,
             guint        port,
             const char  *target,
             const char  *authorization)
{
  SessionClient c = { session };
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u%s", port, target);
  guint status;

  c.msg = soup_message_new ("GET", url);
  g_assert_nonnull (c.msg);
  if (authorization != NULL)
    soup_message_headers_append (soup_message_get_request_headers (c.msg),
                                 "Authorization", authorization);
  soup_session_websocket_connect_async (session, c.msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                        NULL, session_connected, &c);
  wait_until (session_done, &c);
  status = soup_message_get_status (c.msg);
  if (c.conn != NULL)
    {
      soup_websocket_connection_close (c.conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      while (soup_websocket_connection_get_state (c.conn) != SOUP_WEBSOCKET_STATE_CLOSED)
        g_main_context_iteration (NULL, TRUE);
      g_object_unref (c.conn);
    }
  else
    g_assert_nonnull (c.error);
  g_clear_error (&c.error);
  g_object_unref (c.msg);
  return status;
}

static void
test_daemon (void)
{
  g_autofree char *server = g_test_build_filename (G_TEST_BUILT, "..", "server",
                                                   "tinysync-server", NULL);
  g_autofree char *dir = NULL, *tokens = NULL, *line = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(SoupSession) session = NULL;
  g_autofree char *long_path = NULL;
  guint port = 0;

  if (!g_file_test (server, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("tinysync-server is not built");
      return;
    }
  dir = g_dir_make_tmp ("tinysync-daemon-XXXXXX", &error);
  g_assert_no_error (error);
  tokens = g_build_filename (dir, "tokens", NULL);
  g_assert_true (g_file_set_contents (tokens, "# clients\nalpha-token\n\n  beta-token  \n",
                                      -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (tokens, 0600), ==, 0);

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                           server, "--port", "0", "--no-persist",
                           "--token-file", tokens,
                           "--max-path-length", "64",
                           "--max-connections-per-ip", "8",
                           "--max-messages-per-second", "100", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "Listening on ws://127.0.0.1:"));
  port = (guint) g_ascii_strtoull (line + strlen ("Listening on ws://127.0.0.1:"), NULL, 10);
  g_assert_cmpuint (port, >, 0);

  session = soup_session_new ();
  g_assert_cmpuint (session_try (session, port, "/room", NULL), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/room", "Bearer nope"), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/room", "Bearer alpha-tok"), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/room?token=alpha-tokenX", NULL), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/room", "Basic YWxwaGEtdG9rZW4="), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/room", "Bearer alpha-token"), ==, 101);
  g_assert_cmpuint (session_try (session, port, "/room", "Bearer beta-token"), ==, 101);
  g_assert_cmpuint (session_try (session, port, "/room?token=beta-token", NULL), ==, 101);
  g_assert_cmpuint (session_try (session, port, "/r?x=1&token=alpha-token", NULL), ==, 101);
  /* Comments are not tokens. */
  g_assert_cmpuint (session_try (session, port, "/room", "Bearer # clients"), ==, 401);

  /* Path validation, after the token: without one, 401 all the same. */
  g_assert_cmpuint (session_try (session, port, "/a%01b", NULL), ==, 401);
  g_assert_cmpuint (session_try (session, port, "/a%01b", "Bearer alpha-token"), ==, 400);
  g_assert_cmpuint (session_try (session, port, "/a%7Fb", "Bearer alpha-token"), ==, 400);
  long_path = g_strnfill (65, 'x');
  long_path[0] = '/';
  g_assert_cmpuint (session_try (session, port, long_path, "Bearer alpha-token"), ==, 101);
  g_free (long_path);
  long_path = g_strnfill (66, 'x');
  long_path[0] = '/';
  g_assert_cmpuint (session_try (session, port, long_path, "Bearer alpha-token"), ==, 400);

  g_subprocess_send_signal (proc, SIGTERM);
  g_assert_true (g_subprocess_wait (proc, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);

  g_unlink (tokens);
  g_rmdir (dir);
}

/* The daemon over wss with tokens: TsWsSynchronizers present their token
 * in the query (as a browser would) and trust the server through
 * tls-database. */
static void
test_daemon_wss (void)
{
  g_autofree char *server = g_test_build_filename (G_TEST_BUILT, "..", "server",
                                                   "tinysync-server", NULL);
  g_autofree char *dir = NULL, *tokens = NULL, *line = NULL, *uri = NULL, *bad_uri = NULL;
  g_autofree char *cert_path = NULL, *key_path = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GTlsDatabase) database = NULL;
  g_autoptr(TsMergeableStore) store1 = NULL, store2 = NULL;
  g_autoptr(TsWsSynchronizer) sync1 = NULL, sync2 = NULL, refused = NULL;
  const char *prefix = "Listening on wss://127.0.0.1:";
  guint port;

  if (!g_file_test (server, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("tinysync-server is not built");
      return;
    }
  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_test_skip ("no TLS backend (glib-networking)");
      return;
    }
  dir = g_dir_make_tmp ("tinysync-daemon-wss-XXXXXX", &error);
  g_assert_no_error (error);
  if (!make_certificate (dir, &cert_path, &key_path))
    {
      g_rmdir (dir);
      g_test_skip ("openssl cannot make a test certificate");
      return;
    }
  tokens = g_build_filename (dir, "tokens", NULL);
  g_assert_true (g_file_set_contents (tokens, "w+ss/t=ken\n", -1, &error));
  g_assert_cmpint (g_chmod (tokens, 0600), ==, 0);

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                           server, "--port", "0", "--no-persist",
                           "--tls-cert", cert_path, "--tls-key", key_path,
                           "--token-file", tokens, NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, prefix));
  port = (guint) g_ascii_strtoull (line + strlen (prefix), NULL, 10);
  /* The daemon has read them: the key and tokens need not stay around. */
  g_unlink (key_path);
  g_unlink (tokens);

  database = g_tls_file_database_new (cert_path, &error);
  g_assert_no_error (error);
  store1 = ts_mergeable_store_new (NULL);
  store2 = ts_mergeable_store_new (NULL);

  bad_uri = g_strdup_printf ("wss://127.0.0.1:%u/team?token=nope", port);
  refused = create_sync (store1, bad_uri, database, &error);
  g_assert_null (refused);
  g_assert_nonnull (error);
  g_test_message ("wrong token: %s", error->message);
  g_clear_error (&error);

  /* The token percent-encoded in the query, as a URL carries it. */
  uri = g_strdup_printf ("wss://127.0.0.1:%u/team?token=w%%2Bss%%2Ft%%3Dken", port);
  sync1 = create_sync (store1, uri, database, &error);
  g_assert_no_error (error);
  sync2 = create_sync (store2, uri, database, &error);
  g_assert_no_error (error);
  start_sync (sync1);
  start_sync (sync2);
  ts_mergeable_store_set_cell_string (store1, "t", "r", "c", "daemon over tls");
  if (!wait_for (store_has_cell, store2, WAIT_TIMEOUT_MS))
    g_error ("the change did not arrive through the daemon");
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync1));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync2));

  g_subprocess_send_signal (proc, SIGTERM);
  g_assert_true (g_subprocess_wait (proc, NULL, &error));
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  g_unlink (cert_path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add ("/tinysync/ws-security/" path, Fixture, data, fixture_setup, func, fixture_teardown)
  ADD ("token", test_token, NULL);
  ADD ("per-ip", test_per_ip, NULL);
  ADD ("rate", test_rate, NULL);
  ADD ("takeover", test_takeover, NULL);
  ADD ("wss", test_wss, "tls");
  g_test_add_func ("/tinysync/ws-security/daemon", test_daemon);
  g_test_add_func ("/tinysync/ws-security/daemon-wss", test_daemon_wss);

  return g_test_run ();
}
