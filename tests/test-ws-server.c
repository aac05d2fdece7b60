/* test-ws-server.c: TsWsServer over real sockets
 *
 * SPDX-License-Identifier: MIT
 *
 * Every test runs a SoupServer on 127.0.0.1 (port 0) with a TsWsServer,
 * and talks to it with two kinds of clients:
 *
 * - SoupSession WebSocket connections (the ordinary client path);
 * - "raw" clients: a GSocketClient connection that writes its own upgrade
 *   request (any request target, Sec-WebSocket-Key and subprotocol), then
 *   reads with a client SoupWebsocketConnection over the same socket and
 *   writes arbitrary frames (binary, invalid UTF-8, continuation frames,
 *   16 MiB) straight to the socket.
 *
 * tests/data/invalid-messages.json serverLegacy (62 cases) and
 * serverMultiple (22) are replayed in full against one server with
 * request-timeout 0.3 s, as recorded, and serverSimpleLegacy (10) and
 * serverSimpleMultiple (4) with 1 s (WsServerSimple's fixed lifetime; its
 * cases record no ignored errors): a sender and an observer on the same
 * room (for serverMultiple the sender is multiplexed on /caseN and the
 * observer legacy on /caseN/pets). Asserted per case: the close code and
 * reason the sender got (or that it is still open, proven by a sentinel
 * message it gets back after all its payloads), the exact frames sent back
 * to it, the exact frames relayed to the observer (proven complete by an
 * observer sentinel), and the ignored errors (same number; TinyBase's
 * tinybase:* message inside ours).
 *
 * Every wait has a timeout.
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>

#include <json-glib/json-glib.h>
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
wait_until_full (Condition cond,
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
  if (!wait_until_full (cond, data, WAIT_TIMEOUT_MS))
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
  wait_until_full (never, NULL, ms);
}

static gboolean
flag_is_set (gpointer data)
{
  return *(gboolean *) data;
}

/* ---- Fixture ------------------------------------------------------------ */

typedef struct {
  SoupServer  *soup;
  TsWsServer  *server;
  guint        port;
  SoupSession *session;
  GPtrArray   *events;   /* char *: "+path:P", "-client:P:C", ... */
  GPtrArray   *errors;   /* GError * */
  GPtrArray   *clients;  /* TestClient *, closed at teardown */
} Fixture;

static void
on_path_added (TsWsServer *server, const char *path_id, Fixture *fx)
{
  g_ptr_array_add (fx->events, g_strdup_printf ("+path:%s", path_id));
}

static void
on_path_removed (TsWsServer *server, const char *path_id, Fixture *fx)
{
  g_ptr_array_add (fx->events, g_strdup_printf ("-path:%s", path_id));
}

static void
on_client_added (TsWsServer *server, const char *path_id, const char *client_id, Fixture *fx)
{
  g_ptr_array_add (fx->events, g_strdup_printf ("+client:%s:%s", path_id, client_id));
}

static void
on_client_removed (TsWsServer *server, const char *path_id, const char *client_id, Fixture *fx)
{
  g_ptr_array_add (fx->events, g_strdup_printf ("-client:%s:%s", path_id, client_id));
}

static void
on_ignored_error (TsWsServer *server, GError *error, Fixture *fx)
{
  g_ptr_array_add (fx->errors, g_error_copy (error));
}

typedef struct _TestClient TestClient;
static void test_client_free (TestClient *c);
static void test_client_close_and_wait (TestClient *c);

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GSList *uris;

  fx->soup = soup_server_new ("raw-paths", TRUE, NULL);
  fx->server = ts_ws_server_new (fx->soup);
  g_assert_nonnull (fx->server);
  g_assert_true (soup_server_listen_local (fx->soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (fx->soup);
  g_assert_nonnull (uris);
  fx->port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  fx->session = soup_session_new ();
  fx->events = g_ptr_array_new_with_free_func (g_free);
  fx->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  fx->clients = g_ptr_array_new ();

  g_signal_connect (fx->server, "path-added", G_CALLBACK (on_path_added), fx);
  g_signal_connect (fx->server, "path-removed", G_CALLBACK (on_path_removed), fx);
  g_signal_connect (fx->server, "client-added", G_CALLBACK (on_client_added), fx);
  g_signal_connect (fx->server, "client-removed", G_CALLBACK (on_client_removed), fx);
  g_signal_connect (fx->server, "ignored-error", G_CALLBACK (on_ignored_error), fx);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  for (guint i = 0; i < fx->clients->len; i++)
    test_client_close_and_wait (g_ptr_array_index (fx->clients, i));
  for (guint i = 0; i < fx->clients->len; i++)
    test_client_free (g_ptr_array_index (fx->clients, i));
  g_ptr_array_unref (fx->clients);

  ts_ws_server_destroy (fx->server);
  g_assert_finalize_object (fx->server);
  soup_server_disconnect (fx->soup);
  g_assert_finalize_object (fx->soup);
  g_assert_finalize_object (fx->session);
  g_ptr_array_unref (fx->events);
  g_ptr_array_unref (fx->errors);

  /* Let closed sockets finish. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static gboolean
events_contain (Fixture    *fx,
                const char *event)
{
  for (guint i = 0; i < fx->events->len; i++)
    if (g_str_equal (g_ptr_array_index (fx->events, i), event))
      return TRUE;
  return FALSE;
}

typedef struct {
  Fixture    *fx;
  const char *event;
} EventWait;

static gboolean
event_seen (gpointer data)
{
  EventWait *w = data;

  return events_contain (w->fx, w->event);
}

static void
wait_event (Fixture    *fx,
            const char *event)
{
  EventWait w = { fx, event };

  if (!wait_until_full (event_seen, &w, WAIT_TIMEOUT_MS))
    g_error ("timed out waiting for event %s", event);
}

static void
assert_strv (char       **strv,
             const char  *first,
             ...)
{
  va_list args;
  guint i = 0;
  const char *s;

  va_start (args, first);
  for (s = first; s != NULL; s = va_arg (args, const char *), i++)
    {
      g_assert_nonnull (strv[i]);
      g_assert_cmpstr (strv[i], ==, s);
    }
  va_end (args);
  g_assert_null (strv[i]);
  g_strfreev (strv);
}

static void
assert_stats (Fixture *fx,
              guint    paths,
              guint    clients)
{
  guint p = 99, c = 99;

  ts_ws_server_get_stats (fx->server, &p, &c);
  g_assert_cmpuint (p, ==, paths);
  g_assert_cmpuint (c, ==, clients);
}

/* ---- Test clients ------------------------------------------------------- */

struct _TestClient {
  Fixture                 *fx;
  SoupMessage             *msg;       /* SoupSession clients */
  GSocketConnection       *sock;      /* raw clients */
  SoupWebsocketConnection *conn;
  char                    *key;
  char                    *protocol;
  guint                    status;    /* HTTP status of the handshake */
  gboolean                 done;      /* handshake over */
  gboolean                 no_reader; /* raw: never read after the handshake */
  GError                  *error;
  GPtrArray               *received;  /* char *, NUL-terminated texts */
  gboolean                 closed;
  guint16                  close_code;
  char                    *close_reason;
  GString                  *response;
  guint8                   byte;
  /* raw writes */
  GByteArray              *out;
  gsize                    out_sent;
  GSource                 *out_source;
};

static void
on_client_message (SoupWebsocketConnection *conn,
                   int                      type,
                   GBytes                  *bytes,
                   TestClient              *c)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  g_ptr_array_add (c->received, g_strndup (data, len));
}

static void
on_client_closed (SoupWebsocketConnection *conn,
                  TestClient              *c)
{
  c->closed = TRUE;
  c->close_code = soup_websocket_connection_get_close_code (conn);
  c->close_reason = g_strdup (soup_websocket_connection_get_close_data (conn));
}

static void
on_client_error (SoupWebsocketConnection *conn,
                 GError                  *error,
                 TestClient              *c)
{
  /* libsoup's client rejects close codes such as 1013 (and answers with
   * 1002); the code received is still what get_close_code() returns. */
}

static void
test_client_attach (TestClient *c)
{
  soup_websocket_connection_set_max_incoming_payload_size (c->conn, 0);
  soup_websocket_connection_set_keepalive_interval (c->conn, 0);
  g_signal_connect (c->conn, "message", G_CALLBACK (on_client_message), c);
  g_signal_connect (c->conn, "closed", G_CALLBACK (on_client_closed), c);
  g_signal_connect (c->conn, "error", G_CALLBACK (on_client_error), c);
}

static TestClient *
test_client_new (Fixture *fx)
{
  TestClient *c = g_new0 (TestClient, 1);

  c->fx = fx;
  c->received = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (fx->clients, c);
  return c;
}

static void
test_client_free (TestClient *c)
{
  if (c->out_source != NULL)
    {
      g_source_destroy (c->out_source);
      g_source_unref (c->out_source);
    }
  if (c->conn != NULL)
    {
      g_signal_handlers_disconnect_by_data (c->conn, c);
      g_object_unref (c->conn);
    }
  g_clear_object (&c->msg);
  g_clear_object (&c->sock);
  g_clear_error (&c->error);
  g_ptr_array_unref (c->received);
  g_clear_pointer (&c->out, g_byte_array_unref);
  if (c->response != NULL)
    g_string_free (c->response, TRUE);
  g_free (c->key);
  g_free (c->protocol);
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

static void
test_client_close_and_wait (TestClient *c)
{
  if (c->conn == NULL)
    {
      if (c->sock != NULL)
        g_io_stream_close (G_IO_STREAM (c->sock), NULL, NULL);
      return;
    }
  if (soup_websocket_connection_get_state (c->conn) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (c->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  if (!wait_until_full (client_closed, c, WAIT_TIMEOUT_MS))
    g_error ("client did not close");
}

/* SoupSession clients */

static void
session_connected (GObject      *source,
                   GAsyncResult *result,
                   gpointer      data)
{
  TestClient *c = data;

  c->conn = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &c->error);
  c->status = soup_message_get_status (c->msg);
  if (c->conn != NULL)
    {
      c->protocol = g_strdup (soup_websocket_connection_get_protocol (c->conn));
      test_client_attach (c);
    }
  c->done = TRUE;
}

static TestClient *
session_connect_full (Fixture    *fx,
                      const char *path,
                      const char *protocol,
                      const char *authorization)
{
  TestClient *c = test_client_new (fx);
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u%s", fx->port, path);
  char *protocols[] = { (char *) protocol, NULL };

  c->msg = soup_message_new ("GET", url);
  if (authorization != NULL)
    soup_message_headers_append (soup_message_get_request_headers (c->msg),
                                 "Authorization", authorization);
  soup_session_websocket_connect_async (fx->session, c->msg, NULL,
                                        protocol ? protocols : NULL,
                                        G_PRIORITY_DEFAULT, NULL, session_connected, c);
  wait_until (client_done, c);
  c->key = g_strdup (soup_message_headers_get_one (soup_message_get_request_headers (c->msg),
                                                   "Sec-WebSocket-Key"));
  return c;
}

static TestClient *
session_connect (Fixture    *fx,
                 const char *path,
                 const char *protocol)
{
  TestClient *c = session_connect_full (fx, path, protocol, NULL);

  g_assert_no_error (c->error);
  g_assert_nonnull (c->conn);
  return c;
}

/* Raw clients */

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
raw_byte_read (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
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

  /* "HTTP/1.1 101 Switching Protocols\r\n..." */
  c->status = (guint) g_ascii_strtoull (c->response->str + 9, NULL, 10);
  if (c->status == 101 && !c->no_reader)
    {
      g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", c->fx->port);
      g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
      g_auto(GStrv) lines = g_strsplit (c->response->str, "\r\n", -1);

      for (guint i = 0; lines[i] != NULL; i++)
        if (g_ascii_strncasecmp (lines[i], "Sec-WebSocket-Protocol: ", 24) == 0)
          c->protocol = g_strdup (lines[i] + 24);
      c->conn = soup_websocket_connection_new (G_IO_STREAM (c->sock), uri,
                                               SOUP_WEBSOCKET_CONNECTION_CLIENT,
                                               NULL, c->protocol, NULL);
      test_client_attach (c);
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
raw_request_written (GObject      *source,
                     GAsyncResult *result,
                     gpointer      data)
{
  TestClient *c = data;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &c->error))
    {
      c->done = TRUE;
      return;
    }
  /* The request is out: the string now collects the response. */
  g_string_truncate (c->response, 0);
  raw_read_byte (c);
}

static void
raw_connected (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
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

static TestClient *
raw_connect_full (Fixture    *fx,
                  const char *target,
                  const char *key,
                  const char *protocol,
                  gboolean    reader)
{
  TestClient *c = test_client_new (fx);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", fx->port);
  GString *request = g_string_new (NULL);

  c->key = key ? g_strdup (key) : random_key ();
  c->no_reader = !reader;
  g_string_append_printf (request,
                          "GET %s HTTP/1.1\r\n"
                          "Host: %s\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n",
                          target, host, c->key);
  if (protocol != NULL)
    g_string_append_printf (request, "Sec-WebSocket-Protocol: %s\r\n", protocol);
  g_string_append (request, "\r\n");

  /* The same GString carries the request, then collects the response. */
  c->response = request;
  g_socket_client_connect_to_host_async (client, "127.0.0.1", (guint16) fx->port, NULL,
                                         raw_connected, c);
  wait_until (client_done, c);
  return c;
}

static TestClient *
raw_connect (Fixture    *fx,
             const char *target,
             const char *key,
             const char *protocol)
{
  return raw_connect_full (fx, target, key, protocol, TRUE);
}

/* Frames: client frames are masked. */
static void
append_frame (GByteArray   *out,
              gboolean      fin,
              guint8        opcode,
              const guint8 *data,
              gsize         len)
{
  guint8 header[14];
  guint n = 0;
  guint8 mask[4];
  gsize start;

  header[n++] = (fin ? 0x80 : 0) | opcode;
  if (len < 126)
    header[n++] = 0x80 | (guint8) len;
  else if (len < 65536)
    {
      header[n++] = 0x80 | 126;
      header[n++] = (guint8) (len >> 8);
      header[n++] = (guint8) len;
    }
  else
    {
      header[n++] = 0x80 | 127;
      for (int shift = 56; shift >= 0; shift -= 8)
        header[n++] = (guint8) ((guint64) len >> shift);
    }
  for (guint i = 0; i < 4; i++)
    header[n++] = mask[i] = g_random_int_range (0, 256);
  g_byte_array_append (out, header, n);
  start = out->len;
  g_byte_array_append (out, data, (guint) len);
  for (gsize i = 0; i < len; i++)
    out->data[start + i] ^= mask[i % 4];
}

static gboolean raw_flush (gpointer data);

static gboolean
raw_socket_writable (GSocket      *socket,
                     GIOCondition  condition,
                     gpointer      data)
{
  TestClient *c = data;

  g_clear_pointer (&c->out_source, g_source_unref);
  raw_flush (c);
  return G_SOURCE_REMOVE;
}

/* Writes c->out straight to the socket (not through GOutputStream, whose
 * pending flag would collide with the SoupWebsocketConnection). */
static gboolean
raw_flush (gpointer data)
{
  TestClient *c = data;
  GSocket *socket = g_socket_connection_get_socket (c->sock);

  while (c->out != NULL && c->out_sent < c->out->len)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send_with_blocking (socket, (const char *) c->out->data + c->out_sent,
                                              c->out->len - c->out_sent, FALSE, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          c->out_source = g_socket_create_source (socket, G_IO_OUT, NULL);
          g_source_set_callback (c->out_source, (GSourceFunc) (void (*) (void)) raw_socket_writable,
                                 c, NULL);
          g_source_attach (c->out_source, NULL);
          return FALSE;
        }
      if (n < 0)
        {
          /* The server closed on us: drop the rest. */
          c->out_sent = c->out->len;
          break;
        }
      c->out_sent += (gsize) n;
    }
  return TRUE;
}

static gboolean
raw_flushed (gpointer data)
{
  TestClient *c = data;

  return c->out == NULL || c->out_sent >= c->out->len;
}

static void
raw_send_frames (TestClient *c,
                 GByteArray *frames)
{
  g_assert_nonnull (c->sock);
  g_clear_pointer (&c->out, g_byte_array_unref);
  c->out = g_byte_array_ref (frames);
  c->out_sent = 0;
  raw_flush (c);
  wait_until (raw_flushed, c);
}

static void
raw_send_text (TestClient *c,
               const char *text)
{
  g_autoptr(GByteArray) frames = g_byte_array_new ();

  append_frame (frames, TRUE, 0x1, (const guint8 *) text, strlen (text));
  raw_send_frames (c, frames);
}

static void
send_text (TestClient *c,
           const char *text)
{
  g_assert_nonnull (c->conn);
  soup_websocket_connection_send_text (c->conn, text);
}

typedef struct {
  TestClient *c;
  const char *text;
} ReceiveWait;

static gboolean
received_text (gpointer data)
{
  ReceiveWait *w = data;

  for (guint i = 0; i < w->c->received->len; i++)
    if (g_str_equal (g_ptr_array_index (w->c->received, i), w->text))
      return TRUE;
  return FALSE;
}

static void
wait_received (TestClient *c,
               const char *text)
{
  ReceiveWait w = { c, text };

  if (!wait_until_full (received_text, &w, WAIT_TIMEOUT_MS))
    g_error ("timed out waiting for %s", text);
}

/* Sends a message to itself and waits for it: everything the server did
 * with this client's earlier frames is done, and everything it relayed to
 * this client before has arrived. Removes the sentinel from received. */
static void
sync_client (TestClient *c)
{
  static guint counter;
  g_autofree char *request_id = g_strdup_printf ("sync%u", counter++);
  g_autofree char *text = NULL;
  g_autofree char *expected = NULL;

  if (c->protocol != NULL && g_str_equal (c->protocol, "tinybase"))
    {
      text = g_strdup_printf ("S\n[\"%s\",-1,[0,1]]", request_id);
      expected = g_strdup (text);
    }
  else
    {
      text = g_strdup_printf ("%s\n[\"%s\",1,\"\"]", c->key, request_id);
      expected = g_strdup (text);
    }
  send_text (c, text);
  wait_received (c, expected);
  g_assert_cmpstr (g_ptr_array_index (c->received, c->received->len - 1), ==, expected);
  g_ptr_array_remove_index (c->received, c->received->len - 1);
}

static void
assert_received (TestClient *c,
                 const char *first,
                 ...)
{
  va_list args;
  guint i = 0;

  va_start (args, first);
  for (const char *s = first; s != NULL; s = va_arg (args, const char *), i++)
    {
      if (i >= c->received->len)
        g_error ("missing %s", s);
      g_assert_cmpstr (g_ptr_array_index (c->received, i), ==, s);
    }
  va_end (args);
  g_assert_cmpuint (c->received->len, ==, i);
  g_ptr_array_set_size (c->received, 0);
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_properties (void)
{
  g_autoptr(SoupServer) soup = soup_server_new ("raw-paths", TRUE, NULL);
  g_autoptr(SoupServer) decoded = soup_server_new (NULL, NULL);
  g_autoptr(TsWsServer) server = NULL;
  guint64 max = 0;
  double timeout = 0;

  server = ts_ws_server_new (soup);
  g_assert_true (ts_ws_server_get_server (server) == soup);
  g_assert_cmpuint (ts_ws_server_get_max_message_size (server), ==, 16777216);
  g_assert_cmpfloat (ts_ws_server_get_request_timeout (server), ==, 1.0);
  ts_ws_server_set_max_message_size (server, 1000);
  ts_ws_server_set_request_timeout (server, 0.25);
  g_object_get (server, "max-message-size", &max, "request-timeout", &timeout, NULL);
  g_assert_cmpuint (max, ==, 1000);
  g_assert_cmpfloat (timeout, ==, 0.25);
  assert_strv (ts_ws_server_get_path_ids (server), NULL);
  assert_strv (ts_ws_server_get_client_ids (server, ""), NULL);

  /* There is always a limit. */
  g_test_expect_message ("Tinysync", G_LOG_LEVEL_CRITICAL, "*max_message_size >= 1*");
  ts_ws_server_set_max_message_size (server, 0);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (ts_ws_server_get_max_message_size (server), ==, 1000);

  /* Rooms need the raw request target. */
  g_test_expect_message ("Tinysync", G_LOG_LEVEL_CRITICAL, "*raw_paths*");
  g_assert_null (ts_ws_server_new (decoded));
  g_test_assert_expected_messages ();

  ts_ws_server_destroy (server);
  ts_ws_server_destroy (server);
}

static void
test_rooms (Fixture       *fx,
            gconstpointer  data)
{
  TestClient *a, *b, *c;
  g_autofree char *a_added = NULL, *b_added = NULL, *c_added = NULL;
  g_autofree char *text = NULL, *expected = NULL;

  a = session_connect (fx, "/room1", NULL);
  b = session_connect (fx, "/room1", NULL);
  c = session_connect (fx, "/room2?token=x", NULL);
  a_added = g_strdup_printf ("+client:room1:%s", a->key);
  b_added = g_strdup_printf ("+client:room1:%s", b->key);
  c_added = g_strdup_printf ("+client:room2:%s", c->key);
  wait_event (fx, c_added);

  g_assert_cmpuint (fx->events->len, ==, 5);
  g_assert_cmpstr (g_ptr_array_index (fx->events, 0), ==, "+path:room1");
  g_assert_cmpstr (g_ptr_array_index (fx->events, 1), ==, a_added);
  g_assert_cmpstr (g_ptr_array_index (fx->events, 2), ==, b_added);
  g_assert_cmpstr (g_ptr_array_index (fx->events, 3), ==, "+path:room2");
  g_assert_cmpstr (g_ptr_array_index (fx->events, 4), ==, c_added);
  assert_strv (ts_ws_server_get_path_ids (fx->server), "room1", "room2", NULL);
  assert_strv (ts_ws_server_get_client_ids (fx->server, "room1"), a->key, b->key, NULL);
  assert_strv (ts_ws_server_get_client_ids (fx->server, "room2"), c->key, NULL);
  assert_strv (ts_ws_server_get_client_ids (fx->server, "nowhere"), NULL);
  assert_stats (fx, 2, 3);

  /* Broadcast: every other client of the room, with the sender's id. */
  send_text (a, "\n[null,1,\"\"]");
  send_text (c, "\n[\"c\",1,\"\"]");
  sync_client (a);
  sync_client (b);
  sync_client (c);
  expected = g_strdup_printf ("%s\n[null,1,\"\"]", a->key);
  assert_received (b, expected, NULL);
  assert_received (a, NULL);
  assert_received (c, NULL);
  g_clear_pointer (&expected, g_free);

  /* Direct: only the recipient, and only in the same room; the remainder
   * is relayed byte for byte. */
  text = g_strdup_printf ("%s\n[\"r\" , 0,[0,0]]", b->key);
  send_text (a, text);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("%s\n[\"r\",0,[0,0]]", c->key);
  send_text (a, text);                      /* another room: dropped */
  send_text (a, "nobody\n[\"r\",0,[0,0]]"); /* unknown: dropped */
  send_text (a, "S\n[\"r\",1,\"\"]");       /* no server store: dropped */
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("%s\n[\"me\",0,[1,2]]", a->key);
  send_text (a, text);                      /* to itself: delivered */
  sync_client (a);
  sync_client (b);
  sync_client (c);
  expected = g_strdup_printf ("%s\n[\"r\" , 0,[0,0]]", a->key);
  assert_received (b, expected, NULL);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s\n[\"me\",0,[1,2]]", a->key);
  assert_received (a, expected, NULL);
  assert_received (c, NULL);
  g_assert_cmpuint (fx->errors->len, ==, 0);

  /* Leaving. */
  g_ptr_array_set_size (fx->events, 0);
  test_client_close_and_wait (b);
  g_clear_pointer (&b_added, g_free);
  b_added = g_strdup_printf ("-client:room1:%s", b->key);
  wait_event (fx, b_added);
  g_assert_cmpuint (fx->events->len, ==, 1);
  assert_stats (fx, 2, 2);
  test_client_close_and_wait (a);
  wait_event (fx, "-path:room1");
  g_assert_cmpuint (fx->events->len, ==, 3);
  assert_strv (ts_ws_server_get_path_ids (fx->server), "room2", NULL);
  assert_stats (fx, 1, 1);
}

static void
test_path_ids (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *file = g_test_build_filename (G_TEST_DIST, "data", "wire-transcript.json", NULL);
  JsonArray *cases;
  guint n;

  json_parser_load_from_file (parser, file, &error);
  g_assert_no_error (error);
  cases = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
                                        "pathIdCases");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, >=, 9);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *item = json_array_get_object_element (cases, i);
      const char *target = json_object_get_string_member (item, "requestTarget");
      const char *path_id = json_object_get_string_member (item, "pathId");
      g_autofree char *added = NULL;
      TestClient *c;

      c = raw_connect (fx, target, NULL, NULL);
      g_assert_no_error (c->error);
      g_assert_cmpuint (c->status, ==, 101);
      added = g_strdup_printf ("+client:%s:%s", path_id, c->key);
      wait_event (fx, added);
      assert_strv (ts_ws_server_get_client_ids (fx->server, path_id), c->key, NULL);
      test_client_close_and_wait (c);
    }

  /* A SoupSession client gets the same room as a raw one. */
  {
    TestClient *c = session_connect (fx, "/caf%C3%A9/x?y=%2F", NULL);
    g_autofree char *added = g_strdup_printf ("+client:caf%%C3%%A9/x:%s", c->key);

    wait_event (fx, added);
  }
}

static void
test_channels (Fixture       *fx,
               gconstpointer  data)
{
  TestClient *m, *pets, *staff, *root;
  g_autofree char *text = NULL, *expected = NULL, *event = NULL;

  m = session_connect (fx, "/shop", "tinybase");
  g_assert_cmpstr (m->protocol, ==, "tinybase");
  pets = session_connect (fx, "/shop/pets", NULL);
  staff = session_connect (fx, "/shop/staff", NULL);
  g_assert_null (staff->protocol);
  assert_stats (fx, 2, 2);

  /* Nothing before Hello: a Subscribe is ignored. */
  send_text (m, "S\n[\"s0\",-1,[1,\"pets\"]]");
  send_text (m, "S\n[\"h1\",-1,[0,1]]");
  wait_received (m, "S\n[\"h1\",-1,[0,1]]");
  assert_received (m, "S\n[\"h1\",-1,[0,1]]", NULL);
  assert_stats (fx, 2, 2);

  send_text (m, "S\n[\"s1\",-1,[1,\"pets\"]]");
  wait_received (m, "S\n[\"s1\",-1,[1,\"pets\"]]");
  event = g_strdup_printf ("+client:shop/pets:%s", m->key);
  g_assert_true (events_contain (fx, event));
  send_text (m, "S\n[\"s2\",-1,[1,\"staff\"]]");
  wait_received (m, "S\n[\"s2\",-1,[1,\"staff\"]]");
  send_text (m, "S\n[\"s3\",-1,[1,\"staff\"]]"); /* again: just echoed */
  wait_received (m, "S\n[\"s3\",-1,[1,\"staff\"]]");
  assert_received (m, "S\n[\"s1\",-1,[1,\"pets\"]]", "S\n[\"s2\",-1,[1,\"staff\"]]",
                   "S\n[\"s3\",-1,[1,\"staff\"]]", NULL);
  assert_stats (fx, 2, 4);
  assert_strv (ts_ws_server_get_client_ids (fx->server, "shop/pets"), pets->key, m->key, NULL);

  /* Legacy → channel. */
  send_text (pets, "\n[\"p\",1,\"\"]");
  send_text (staff, "\n[\"s\",1,\"\"]");
  sync_client (pets);
  sync_client (staff);
  sync_client (m);
  expected = g_strdup_printf ("M\npets\n%s\n[\"p\",1,\"\"]", pets->key);
  text = g_strdup_printf ("M\nstaff\n%s\n[\"s\",1,\"\"]", staff->key);
  assert_received (m, expected, text, NULL);
  g_clear_pointer (&expected, g_free);
  g_clear_pointer (&text, g_free);

  /* Channel → legacy, broadcast and direct; a channel's room is separate. */
  send_text (m, "M\npets\n\n[\"b\",2,[1,2]]");
  text = g_strdup_printf ("M\nstaff\n%s\n[\"d\",0,[1,2]]", staff->key);
  send_text (m, text);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("M\npets\n%s\n[\"x\",0,[1,2]]", staff->key); /* not in pets */
  send_text (m, text);
  g_clear_pointer (&text, g_free);
  sync_client (m);
  sync_client (pets);
  sync_client (staff);
  expected = g_strdup_printf ("%s\n[\"b\",2,[1,2]]", m->key);
  assert_received (pets, expected, NULL);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s\n[\"d\",0,[1,2]]", m->key);
  assert_received (staff, expected, NULL);
  g_clear_pointer (&expected, g_free);
  assert_received (m, NULL);

  /* Unsubscribe: leaves the room, no echo; later pets traffic stays away. */
  g_ptr_array_set_size (fx->events, 0);
  send_text (m, "S\n[null,-1,[2,\"pets\"]]");
  send_text (m, "S\n[null,-1,[2,\"never\"]]");
  sync_client (m);
  g_clear_pointer (&event, g_free);
  event = g_strdup_printf ("-client:shop/pets:%s", m->key);
  g_assert_true (events_contain (fx, event));
  g_assert_cmpuint (fx->events->len, ==, 1);
  send_text (pets, "\n[\"p2\",1,\"\"]");
  sync_client (pets);
  sync_client (m);
  assert_received (m, NULL);
  assert_stats (fx, 2, 3);

  /* A base path of "" gives rooms named by the channel alone, where a
   * legacy client of that path meets the channel. */
  root = session_connect (fx, "/", "tinybase");
  send_text (root, "S\n[\"h\",-1,[0,1]]");
  send_text (root, "S\n[\"s\",-1,[1,\"shop/pets\"]]");
  wait_received (root, "S\n[\"s\",-1,[1,\"shop/pets\"]]");
  send_text (pets, "\n[\"p3\",1,\"\"]");
  sync_client (pets);
  sync_client (root);
  expected = g_strdup_printf ("M\nshop/pets\n%s\n[\"p3\",1,\"\"]", pets->key);
  assert_received (root, "S\n[\"h\",-1,[0,1]]", "S\n[\"s\",-1,[1,\"shop/pets\"]]", expected, NULL);
  g_assert_cmpuint (fx->errors->len, ==, 0);

  /* Closing a multiplexed socket leaves every room it is in. */
  g_ptr_array_set_size (fx->events, 0);
  test_client_close_and_wait (m);
  g_clear_pointer (&event, g_free);
  event = g_strdup_printf ("-client:shop/staff:%s", m->key);
  wait_event (fx, event);
  assert_stats (fx, 2, 3);
}

/* Deviations: channel ids that can name no room; request targets as
 * libsoup parses them. */
static void
test_unusable_ids (Fixture       *fx,
                   gconstpointer  data)
{
  TestClient *m, *n, *raw;

  m = session_connect (fx, "/base", "tinybase");
  send_text (m, "S\n[\"h\",-1,[0,1]]");
  /* Unsubscribing such a channel: it cannot be subscribed, ignored. */
  send_text (m, "S\n[null,-1,[2,\"a\\u0000b\"]]");
  send_text (m, "S\n[null,-1,[2,\"\\ud800\"]]");
  sync_client (m);
  assert_received (m, "S\n[\"h\",-1,[0,1]]", NULL);
  g_assert_false (m->closed);

  /* Subscribing one: invalid. */
  send_text (m, "S\n[\"s\",-1,[1,\"a\\u0000b\"]]");
  wait_until (client_closed, m);
  g_assert_cmpuint (m->close_code, ==, 1007);
  g_assert_cmpstr (m->close_reason, ==, "tinybase:14");
  n = session_connect (fx, "/base", "tinybase");
  send_text (n, "S\n[\"h\",-1,[0,1]]");
  send_text (n, "S\n[\"s\",-1,[1,\"x\\udc00\"]]");
  wait_until (client_closed, n);
  g_assert_cmpuint (n->close_code, ==, 1007);
  g_assert_cmpuint (fx->errors->len, ==, 2);

  /* Raw bytes in the request target come out percent-encoded. */
  raw = raw_connect (fx, "/caf\xC3\xA9", NULL, NULL);
  g_assert_cmpuint (raw->status, ==, 101);
  raw = raw_connect (fx, "/caf\xE9", NULL, NULL);
  g_assert_cmpuint (raw->status, ==, 101);
  raw = raw_connect (fx, "/a/./b/../c", NULL, NULL);
  g_assert_cmpuint (raw->status, ==, 101);
  assert_strv (ts_ws_server_get_path_ids (fx->server), "caf%C3%A9", "caf%E9", "a/c", NULL);
}

static void
test_fragments (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *file = g_test_build_filename (G_TEST_DIST, "data", "wire-transcript.json", NULL);
  g_autoptr(GPtrArray) fragments = g_ptr_array_new_with_free_func (g_free);
  JsonArray *transcripts, *frames = NULL;
  TestClient *a, *b, *m;

  json_parser_load_from_file (parser, file, &error);
  g_assert_no_error (error);
  transcripts = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
                                              "transcripts");
  for (guint i = 0; i < json_array_get_length (transcripts); i++)
    {
      JsonObject *t = json_array_get_object_element (transcripts, i);

      if (g_str_equal (json_object_get_string_member (t, "name"), "fragmented"))
        frames = json_object_get_array_member (t, "frames");
    }
  g_assert_nonnull (frames);
  /* client1's fragmented ContentDiff, as TinyBase sent it. */
  for (guint i = 0; i < json_array_get_length (frames); i++)
    {
      JsonObject *f = json_array_get_object_element (frames, i);
      const char *payload;

      if (!g_str_equal (json_object_get_string_member (f, "dir"), "c2s"))
        continue;
      payload = json_object_get_string_member (f, "payload");
      if (g_str_has_prefix (payload, "\ndIJw5-iBwo87QNJo\n"))
        g_ptr_array_add (fragments, g_strdup (payload));
    }
  g_assert_cmpuint (fragments->len, ==, 4);

  a = session_connect (fx, "/big", NULL);
  b = session_connect (fx, "/big", NULL);
  m = session_connect (fx, "", "tinybase");
  send_text (m, "S\n[\"h\",-1,[0,1]]");
  send_text (m, "S\n[\"s\",-1,[1,\"big\"]]");
  sync_client (m);
  g_ptr_array_set_size (m->received, 0);

  /* Out of order: nothing is relayed until the message is complete, then
   * the original fragments go out in index order. */
  send_text (a, g_ptr_array_index (fragments, 2));
  send_text (a, g_ptr_array_index (fragments, 0));
  send_text (a, g_ptr_array_index (fragments, 3));
  sync_client (a);
  sync_client (b);
  sync_client (m);
  assert_received (b, NULL);
  assert_received (m, NULL);
  send_text (a, g_ptr_array_index (fragments, 1));
  sync_client (a);
  sync_client (b);
  sync_client (m);
  g_assert_cmpuint (b->received->len, ==, 4);
  g_assert_cmpuint (m->received->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *to_b = g_strconcat (a->key, g_ptr_array_index (fragments, i), NULL);
      g_autofree char *to_m = g_strconcat ("M\nbig\n", a->key, g_ptr_array_index (fragments, i), NULL);

      g_assert_cmpstr (g_ptr_array_index (b->received, i), ==, to_b);
      g_assert_cmpstr (g_ptr_array_index (m->received, i), ==, to_m);
    }
  g_ptr_array_set_size (b->received, 0);
  g_ptr_array_set_size (m->received, 0);

  /* A channel's fragments reach the legacy clients the same way. */
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *text = g_strconcat ("M\nbig\n", g_ptr_array_index (fragments, i), NULL);

      send_text (m, text);
    }
  sync_client (m);
  sync_client (a);
  sync_client (b);
  g_assert_cmpuint (a->received->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *to_a = g_strconcat (m->key, g_ptr_array_index (fragments, i), NULL);

      g_assert_cmpstr (g_ptr_array_index (a->received, i), ==, to_a);
    }
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

/* ---- invalid-messages.json ---------------------------------------------- */

static GByteArray *
hex_decode (const char *hex)
{
  GByteArray *out = g_byte_array_new ();

  for (gsize i = 0; hex[i] && hex[i + 1]; i += 2)
    {
      guint8 b = (guint8) (g_ascii_xdigit_value (hex[i]) << 4 | g_ascii_xdigit_value (hex[i + 1]));

      g_byte_array_append (out, &b, 1);
    }
  return out;
}

static char *
replace (const char *text,
         const char *what,
         const char *with)
{
  g_auto(GStrv) parts = g_strsplit (text, what, -1);

  return g_strjoinv (with, parts);
}

static guint n_cases_run;
static guint n_cases_total;  /* keeps paths distinct across sets */

/* Compares received frames with a vector array, {SENDER} replaced; an
 * expected string ending with "…" (the recording truncated it) is a
 * prefix. */
static void
assert_frames (GPtrArray  *received,
               JsonArray  *expected,
               const char *sender)
{
  g_assert_cmpuint (received->len, ==, json_array_get_length (expected));
  for (guint i = 0; i < received->len; i++)
    {
      g_autofree char *want = replace (json_array_get_string_element (expected, i),
                                       "{SENDER}", sender);
      const char *got = g_ptr_array_index (received, i);

      if (g_str_has_suffix (want, "\xE2\x80\xA6"))
        {
          want[strlen (want) - 3] = '\0';
          g_assert_true (g_str_has_prefix (got, want));
        }
      else
        g_assert_cmpstr (got, ==, want);
    }
}

static void
run_invalid_case (Fixture    *fx,
                  JsonObject *item,
                  gboolean    multiple,
                  guint       index)
{
  const char *description = json_object_get_string_member (item, "description");
  JsonArray *payloads = json_object_get_array_member (item, "payloads");
  /* WsServerSimple cases record no errors: it has no onIgnoredError. */
  JsonArray *errors = json_object_has_member (item, "serverIgnoredErrors")
                        ? json_object_get_array_member (item, "serverIgnoredErrors") : NULL;
  JsonArray *replies = json_object_get_array_member (item, "repliesToSender");
  JsonArray *relayed = json_object_get_array_member (item, "relayedToObserver");
  JsonNode *closed_node = json_object_get_member (item, "senderClosedWith");
  g_autofree char *path = g_strdup_printf ("/%s%u", multiple ? "multiple" : "legacy",
                                           index + n_cases_total);
  g_autofree char *observer_path = g_strdup_printf ("%s%s", path, multiple ? "/pets" : "");
  g_autoptr(GByteArray) frames = g_byte_array_new ();
  TestClient *sender, *observer;
  guint errors_before = fx->errors->len;

  g_test_message ("%s %u: %s", multiple ? "multiplexed" : "legacy", index, description);

  observer = session_connect (fx, observer_path, NULL);
  sender = raw_connect (fx, path, NULL, multiple ? "tinybase" : NULL);
  g_assert_cmpuint (sender->status, ==, 101);
  g_assert_cmpstr (sender->protocol, ==, multiple ? "tinybase" : NULL);

  for (guint i = 0; i < json_array_get_length (payloads); i++)
    {
      JsonNode *node = json_array_get_element (payloads, i);

      if (JSON_NODE_HOLDS_VALUE (node))
        {
          g_autofree char *text = replace (json_node_get_string (node), "{OBSERVER}", observer->key);

          append_frame (frames, TRUE, 0x1, (const guint8 *) text, strlen (text));
        }
      else
        {
          JsonObject *p = json_node_get_object (node);
          gboolean binary = json_object_has_member (p, "binary") &&
                            json_object_get_boolean_member (p, "binary");

          if (json_object_has_member (p, "wait"))
            {
              raw_send_frames (sender, frames);
              g_byte_array_set_size (frames, 0);
              wait_ms ((guint) json_object_get_int_member (p, "wait"));
            }
          else if (json_object_has_member (p, "utf8Hex"))
            {
              g_autoptr(GByteArray) bytes = hex_decode (json_object_get_string_member (p, "utf8Hex"));

              append_frame (frames, TRUE, binary ? 0x2 : 0x1, bytes->data, bytes->len);
            }
          else
            {
              GString *text = g_string_new (json_object_get_string_member_with_default (p, "text", ""));

              if (json_object_has_member (p, "repeat"))
                {
                  JsonArray *repeat = json_object_get_array_member (p, "repeat");
                  const char *unit = json_array_get_string_element (repeat, 0);
                  gint64 count = json_array_get_int_element (repeat, 1);

                  for (gint64 k = 0; k < count; k++)
                    g_string_append (text, unit);
                }
              g_string_append (text, json_object_get_string_member_with_default (p, "suffix", ""));
              append_frame (frames, TRUE, binary ? 0x2 : 0x1, (const guint8 *) text->str, text->len);
              g_string_free (text, TRUE);
            }
        }
    }
  raw_send_frames (sender, frames);

  if (JSON_NODE_HOLDS_NULL (closed_node))
    {
      /* Still open: a sentinel comes back after all the payloads. */
      sync_client (sender);
      g_assert_false (sender->closed);
    }
  else
    {
      JsonObject *closed = json_node_get_object (closed_node);

      if (!wait_until_full (client_closed, sender, WAIT_TIMEOUT_MS))
        g_error ("%s: the sender was not closed", description);
      g_assert_cmpuint (sender->close_code, ==, json_object_get_int_member (closed, "code"));
      g_assert_cmpstr (sender->close_reason ? sender->close_reason : "", ==,
                       json_object_get_string_member (closed, "reason"));
    }
  sync_client (observer);

  assert_frames (sender->received, replies, sender->key);
  assert_frames (observer->received, relayed, sender->key);

  if (errors != NULL)
    g_assert_cmpuint (fx->errors->len - errors_before, ==, json_array_get_length (errors));
  for (guint i = 0; errors != NULL && i < json_array_get_length (errors); i++)
    {
      const char *expected = json_array_get_string_element (errors, i);
      GError *error = g_ptr_array_index (fx->errors, errors_before + i);

      if (g_str_has_prefix (expected, "tinybase:"))
        {
          g_autofree char *inside = g_strdup_printf ("(%s)", expected);

          g_assert_true (g_error_matches (error, TS_ERROR,
                                          g_str_has_prefix (expected, "tinybase:15")
                                            ? TS_ERROR_OVERFLOW : TS_ERROR_INVALID_MESSAGE));
          g_assert_true (g_str_has_suffix (error->message, inside));
        }
    }

  test_client_close_and_wait (sender);
  test_client_close_and_wait (observer);
  g_ptr_array_remove (fx->clients, sender);
  g_ptr_array_remove (fx->clients, observer);
  test_client_free (sender);
  test_client_free (observer);
  n_cases_run++;
}

static void
run_invalid_cases (Fixture    *fx,
                   const char *member,
                   gboolean    multiple,
                   guint       expected,
                   double      request_timeout)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *file = g_test_build_filename (G_TEST_DIST, "data", "invalid-messages.json", NULL);
  JsonArray *cases;

  json_parser_load_from_file (parser, file, &error);
  g_assert_no_error (error);
  cases = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), member);
  g_assert_cmpuint (json_array_get_length (cases), ==, expected);

  /* As recorded: a WsServer with requestTimeoutSeconds 0.3, or a
   * WsServerSimple (fragments expire after 1 s). */
  ts_ws_server_set_request_timeout (fx->server, request_timeout);
  n_cases_run = 0;
  for (guint i = 0; i < json_array_get_length (cases); i++)
    run_invalid_case (fx, json_array_get_object_element (cases, i), multiple, i);
  g_assert_cmpuint (n_cases_run, ==, expected);
  n_cases_total += n_cases_run;
  g_test_message ("%s: %u of %u cases replayed", member, n_cases_run, expected);
}

static void
test_invalid_legacy (Fixture       *fx,
                     gconstpointer  data)
{
  run_invalid_cases (fx, "serverLegacy", FALSE, 62, 0.3);
}

static void
test_invalid_multiple (Fixture       *fx,
                       gconstpointer  data)
{
  run_invalid_cases (fx, "serverMultiple", TRUE, 22, 0.3);
}

/* WsServerSimple shares the relay, the decoder and the close codes. */
static void
test_invalid_simple (Fixture       *fx,
                     gconstpointer  data)
{
  run_invalid_cases (fx, "serverSimpleLegacy", FALSE, 10, 1.0);
  run_invalid_cases (fx, "serverSimpleMultiple", TRUE, 4, 1.0);
}

/* ---- Limits ------------------------------------------------------------- */

static GError *
find_error (Fixture    *fx,
            const char *reason)
{
  g_autofree char *inside = g_strdup_printf ("(%s)", reason);

  for (guint i = 0; i < fx->errors->len; i++)
    {
      GError *error = g_ptr_array_index (fx->errors, i);

      if (g_str_has_suffix (error->message, inside))
        return error;
    }
  return NULL;
}

static void
test_max_message_size (Fixture       *fx,
                       gconstpointer  data)
{
  TestClient *a, *b, *big, *frag;
  g_autoptr(GString) text = g_string_new ("\n[\"");
  g_autofree char *expected = NULL;
  g_autoptr(GByteArray) frames = g_byte_array_new ();
  g_autofree guint8 *chunk = NULL;

  ts_ws_server_set_max_message_size (fx->server, 1000);
  a = session_connect (fx, "/limits", NULL);
  b = raw_connect (fx, "/limits", NULL, NULL);

  /* Exactly 1000 bytes from the sender: fine, but the relayed frame gets
   * the 24-character sender id in front and is too big for b. */
  while (text->len < 1000 - 7)
    g_string_append_c (text, 'x');
  g_string_append (text, "\",1,\"\"]");
  g_assert_cmpuint (text->len, ==, 1000);
  send_text (a, text->str);
  sync_client (a);
  g_assert_false (a->closed);
  wait_until (client_closed, b);
  g_assert_cmpuint (b->close_code, ==, 1013);
  g_assert_cmpstr (b->close_reason, ==, "tinybase:15:socket");
  g_assert_true (g_error_matches (find_error (fx, "tinybase:15:socket"), TS_ERROR, TS_ERROR_OVERFLOW));
  g_ptr_array_set_size (fx->errors, 0);

  /* 1001 bytes: the sender is closed. */
  g_string_insert_c (text, 3, 'y');
  send_text (a, text->str);
  wait_until (client_closed, a);
  g_assert_cmpuint (a->close_code, ==, 1013);
  g_assert_cmpstr (a->close_reason, ==, "tinybase:15:socket");
  g_assert_nonnull (find_error (fx, "tinybase:15:socket"));
  g_ptr_array_set_size (fx->errors, 0);

  /* One frame far beyond the limit never reaches libsoup's own check
   * (which would close with 1009). */
  big = raw_connect (fx, "/limits", NULL, NULL);
  chunk = g_malloc (200 * 1024);
  memset (chunk, 'z', 200 * 1024);
  append_frame (frames, TRUE, 0x1, chunk, 200 * 1024);
  raw_send_frames (big, frames);
  wait_until (client_closed, big);
  g_assert_cmpuint (big->close_code, ==, 1013);
  g_assert_cmpstr (big->close_reason, ==, "tinybase:15:socket");
  g_ptr_array_set_size (fx->errors, 0);

  /* Nor does a message in many frames, each below every frame limit. */
  frag = raw_connect (fx, "/limits", NULL, NULL);
  g_byte_array_set_size (frames, 0);
  for (guint i = 0; i < 5; i++)
    append_frame (frames, FALSE, i == 0 ? 0x1 : 0x0, chunk, 20 * 1024);
  raw_send_frames (frag, frames);
  wait_until (client_closed, frag);
  g_assert_cmpuint (frag->close_code, ==, 1013);
  g_assert_cmpstr (frag->close_reason, ==, "tinybase:15:socket");
  g_assert_cmpuint (fx->errors->len, ==, 1);

  assert_stats (fx, 0, 0);
}

typedef struct {
  Fixture *fx;
} ErrorWait;

static gboolean
overflow_reported (gpointer data)
{
  return find_error (data, "tinybase:15:socket") != NULL;
}

static void
test_back_pressure (Fixture       *fx,
                    gconstpointer  data)
{
  TestClient *sender, *stuck;
  g_autoptr(GString) text = g_string_new ("\n[\"");
  g_autofree char *removed = NULL;
  guint sent = 0;

  ts_ws_server_set_max_message_size (fx->server, 1024 * 1024);
  sender = session_connect (fx, "/pressure", NULL);
  /* A client that never reads: complete the handshake, then ignore the
   * socket. */
  stuck = raw_connect_full (fx, "/pressure", NULL, NULL, FALSE);
  g_assert_cmpuint (stuck->status, ==, 101);
  g_socket_set_option (g_socket_connection_get_socket (stuck->sock), SOL_SOCKET, SO_RCVBUF, 4096, NULL);

  while (text->len < 900 * 1024)
    g_string_append_c (text, 'p');
  g_string_append (text, "\",1,\"\"]");

  while (!overflow_reported (fx) && sent < 200)
    {
      send_text (sender, text->str);
      sync_client (sender);
      sent++;
    }
  g_assert_nonnull (find_error (fx, "tinybase:15:socket"));
  g_test_message ("back-pressure after %u payloads of %zu bytes", sent, text->len);
  g_assert_false (sender->closed);

  /* The stuck client leaves once its socket goes away. */
  g_io_stream_close (G_IO_STREAM (stuck->sock), NULL, NULL);
  removed = g_strdup_printf ("-client:pressure:%s", stuck->key);
  wait_event (fx, removed);
  assert_stats (fx, 1, 1);
}

static void
test_duplicate_key (Fixture       *fx,
                    gconstpointer  data)
{
  TestClient *a, *dup, *other_room, *again;
  g_autofree char *text = NULL;

  a = session_connect (fx, "/room", NULL);
  dup = raw_connect (fx, "/room", a->key, NULL);
  g_assert_cmpuint (dup->status, ==, 409);
  g_assert_null (dup->conn);
  other_room = raw_connect (fx, "/elsewhere", a->key, "tinybase");
  g_assert_cmpuint (other_room->status, ==, 409);
  assert_stats (fx, 1, 1);

  /* a is undisturbed and still receives what is addressed to it. */
  again = raw_connect (fx, "/room", NULL, NULL);
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", a->key);
  raw_send_text (again, text);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("%s\n[\"t\",1,\"\"]", again->key);
  wait_received (a, text);
  g_clear_pointer (&text, g_free);

  /* Once a is gone, its key may be used again. */
  test_client_close_and_wait (a);
  text = g_strdup_printf ("-client:room:%s", a->key);
  wait_event (fx, text);
  dup = raw_connect (fx, "/room", a->key, NULL);
  g_assert_cmpuint (dup->status, ==, 101);
  assert_stats (fx, 1, 2);
}

static void
store_result (GObject *source, GAsyncResult *result, gpointer data)
{
  *(GAsyncResult **) data = g_object_ref (result);
}

static gboolean
have_result (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static gboolean
accept_all (TsWsServer *server, const char *path_id, SoupMessageHeaders *headers, gpointer data)
{
  (*(guint *) data)++;
  return TRUE;
}

static gboolean
accept_authorized (TsWsServer *server, const char *path_id, SoupMessageHeaders *headers, gpointer data)
{
  (*(guint *) data)++;
  if (!g_str_has_prefix (path_id, "secret"))
    return TRUE;
  return g_strcmp0 (soup_message_headers_get_one (headers, "Authorization"), "Bearer ok") == 0;
}

static void
test_accept_client (Fixture       *fx,
                    gconstpointer  data)
{
  guint first = 0, second = 0;
  TestClient *c;

  g_signal_connect (fx->server, "accept-client", G_CALLBACK (accept_all), &first);
  g_signal_connect (fx->server, "accept-client", G_CALLBACK (accept_authorized), &second);

  c = session_connect (fx, "/public", NULL);
  g_assert_cmpuint (first, ==, 1);
  g_assert_cmpuint (second, ==, 1);

  c = session_connect_full (fx, "/secret/room", NULL, NULL);
  g_assert_error (c->error, SOUP_WEBSOCKET_ERROR, SOUP_WEBSOCKET_ERROR_NOT_WEBSOCKET);
  g_assert_cmpuint (c->status, ==, 403);
  c = raw_connect (fx, "/secret", NULL, "tinybase");
  g_assert_cmpuint (c->status, ==, 403);

  c = session_connect_full (fx, "/secret/room", NULL, "Bearer ok");
  g_assert_no_error (c->error);
  g_assert_cmpuint (first, ==, 4);
  g_assert_cmpuint (second, ==, 4);
  assert_strv (ts_ws_server_get_path_ids (fx->server), "public", "secret/room", NULL);

  /* Emission stops at the first refusal. */
  g_signal_handlers_disconnect_by_func (fx->server, accept_all, &first);
  g_signal_connect (fx->server, "accept-client", G_CALLBACK (accept_all), &first);
  c = raw_connect (fx, "/secret", NULL, NULL);
  g_assert_cmpuint (c->status, ==, 403);
  g_assert_cmpuint (second, ==, 5);
  g_assert_cmpuint (first, ==, 4);
  assert_stats (fx, 2, 2);

  /* Not a WebSocket request at all. */
  {
    g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/public", fx->port);
    g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
    g_autoptr(GAsyncResult) result = NULL;
    g_autoptr(GBytes) body = NULL;

    soup_session_send_and_read_async (fx->session, msg, G_PRIORITY_DEFAULT, NULL,
                                      store_result, &result);
    wait_until (have_result, &result);
    body = soup_session_send_and_read_finish (fx->session, result, NULL);
    g_assert_cmpuint (soup_message_get_status (msg), ==, 400);
  }
}

static void
test_destroy (Fixture       *fx,
              gconstpointer  data)
{
  TestClient *a, *b, *m, *late;

  a = session_connect (fx, "/one", NULL);
  b = session_connect (fx, "/two", NULL);
  m = session_connect (fx, "/two", "tinybase");
  send_text (m, "S\n[\"h\",-1,[0,1]]");
  send_text (m, "S\n[\"s\",-1,[1,\"c\"]]");
  wait_received (m, "S\n[\"s\",-1,[1,\"c\"]]");
  assert_stats (fx, 3, 3);
  g_ptr_array_set_size (fx->events, 0);

  ts_ws_server_destroy (fx->server);
  assert_stats (fx, 0, 0);
  assert_strv (ts_ws_server_get_path_ids (fx->server), NULL);
  g_assert_cmpuint (fx->events->len, ==, 6);
  g_assert_true (events_contain (fx, "-path:one"));
  g_assert_true (events_contain (fx, "-path:two"));
  g_assert_true (events_contain (fx, "-path:two/c"));

  /* Plain close: no status code. */
  wait_until (client_closed, a);
  wait_until (client_closed, b);
  wait_until (client_closed, m);
  g_assert_cmpuint (a->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_assert_cmpuint (m->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);

  /* No more upgrades. */
  late = raw_connect (fx, "/one", NULL, NULL);
  g_assert_cmpuint (late->status, ==, 404);
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

static void
destroy_on_error (TsWsServer *server,
                  GError     *error,
                  gpointer    data)
{
  ts_ws_server_destroy (server);
}

static void
count_path_ids (TsWsServer *server,
                const char *path_id,
                gpointer    data)
{
  g_auto(GStrv) ids = ts_ws_server_get_path_ids (server);

  *(guint *) data = g_strv_length (ids);
}

/* Handlers may call back into the server, even destroy it, while it is
 * relaying: here b's overflow is reported in the middle of a broadcast to
 * b, c and d. */
static void
test_reentrancy (Fixture       *fx,
                 gconstpointer  data)
{
  TestClient *a, *b, *c, *d;
  g_autoptr(GString) text = g_string_new ("\n[\"");
  guint n_paths = 0;

  ts_ws_server_set_max_message_size (fx->server, 1000);
  g_signal_connect (fx->server, "path-removed", G_CALLBACK (count_path_ids), &n_paths);
  a = session_connect (fx, "/r", NULL);
  b = session_connect (fx, "/r", NULL);
  c = session_connect (fx, "/r", "tinybase");
  send_text (c, "S\n[\"h\",-1,[0,1]]");
  send_text (c, "S\n[\"s\",-1,[1,\"x\"]]");
  wait_received (c, "S\n[\"s\",-1,[1,\"x\"]]");
  d = session_connect (fx, "/r/x", NULL);
  g_signal_connect (fx->server, "ignored-error", G_CALLBACK (destroy_on_error), NULL);

  while (text->len < 1000 - 7)
    g_string_append_c (text, 'x');
  g_string_append (text, "\",1,\"\"]");
  send_text (a, text->str);
  wait_until (client_closed, a);
  wait_until (client_closed, b);
  wait_until (client_closed, c);
  wait_until (client_closed, d);
  /* The error is reported before b is closed (as TinyBase does), so the
   * handler's destroy closes everybody first, b included. */
  g_assert_cmpuint (a->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_assert_cmpuint (b->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_assert_cmpuint (c->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_assert_cmpuint (d->close_code, ==, SOUP_WEBSOCKET_CLOSE_NO_STATUS);
  g_assert_true (g_str_has_suffix (((GError *) g_ptr_array_index (fx->errors, 0))->message,
                                   "(tinybase:15:socket)"));
  g_assert_cmpuint (fx->errors->len, ==, 1);
  assert_stats (fx, 0, 0);
  g_assert_cmpuint (n_paths, ==, 0);
}

static void
test_expiry (Fixture       *fx,
             gconstpointer  data)
{
  TestClient *a, *b;
  g_autofree char *expected = NULL;
  gboolean waited = FALSE;

  ts_ws_server_set_request_timeout (fx->server, 0.2);
  a = session_connect (fx, "/expiry", NULL);
  b = session_connect (fx, "/expiry", NULL);

  /* The second piece arrives in time: delivered. */
  send_text (a, "\n0123456789ABCDEF\n0\n2\n[null,1,");
  send_text (a, "\n0123456789ABCDEF\n1\n2\n\"\"]");
  sync_client (a);
  sync_client (b);
  g_assert_cmpuint (b->received->len, ==, 2);
  g_ptr_array_set_size (b->received, 0);

  /* Too late: the first piece was dropped, the second starts anew. */
  send_text (a, "\nAAAAAAAAAAAAAAAA\n0\n2\n[null,1,");
  g_timeout_add (400, set_flag, &waited);
  wait_until (flag_is_set, &waited);
  send_text (a, "\nAAAAAAAAAAAAAAAA\n1\n2\n\"\"]");
  sync_client (a);
  sync_client (b);
  assert_received (b, NULL);
  g_assert_false (a->closed);

  /* ... and completing it now works again. */
  send_text (a, "\nAAAAAAAAAAAAAAAA\n0\n2\n[null,1,");
  sync_client (a);
  sync_client (b);
  expected = g_strdup_printf ("%s\nAAAAAAAAAAAAAAAA\n1\n2\n\"\"]", a->key);
  g_assert_cmpuint (b->received->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (b->received, 1), ==, expected);
  g_assert_cmpuint (fx->errors->len, ==, 0);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/tinysync/ws-server/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  g_test_add_func ("/tinysync/ws-server/properties", test_properties);
  ADD ("rooms", test_rooms);
  ADD ("path-ids", test_path_ids);
  ADD ("channels", test_channels);
  ADD ("unusable-ids", test_unusable_ids);
  ADD ("fragments", test_fragments);
  ADD ("expiry", test_expiry);
  ADD ("invalid-messages/legacy", test_invalid_legacy);
  ADD ("invalid-messages/multiple", test_invalid_multiple);
  ADD ("invalid-messages/simple", test_invalid_simple);
  ADD ("max-message-size", test_max_message_size);
  ADD ("back-pressure", test_back_pressure);
  ADD ("duplicate-key", test_duplicate_key);
  ADD ("accept-client", test_accept_client);
  ADD ("destroy", test_destroy);
  ADD ("reentrancy", test_reentrancy);

  return g_test_run ();
}
