/* ts-ws-synchronizer.c: the TinyBase WebSocket synchronizer (client)
 *
 * SPDX-License-Identifier: MIT
 *
 * PROTOCOL.md sections 12 (legacy mode: one room per socket) and 13
 * (multiplexed mode: channels over one socket), on libsoup 3.2.
 *
 * Layers, bottom up:
 *
 * - Link: one WebSocket as seen by its owner. Either the caller's
 *   connection (never replaced) or one opened from a URI, which is reopened
 *   with exponential backoff when it is lost and watched with keepalive
 *   pings. It owns the libsoup objects and tells its owner about each
 *   connection opened, frame received and connection lost.
 * - Legacy mode: a TsWsSynchronizer owns a Link and a payload decoder.
 * - Multiplexed mode: a Mux owns the Link, the Hello/Subscribe handshake,
 *   and a table of channels; each channel is a TsWsSynchronizer with its
 *   own decoder and outgoing queue.
 */
#include "config.h"

#include <string.h>

#include "ts-enums.h"
#include "ts-error.h"
#include "ts-hlc-private.h"
#include "ts-json-private.h"
#include "ts-payload-private.h"
#include "ts-private.h"
#include "ts-synchronizer-private.h"
#include "ts-ws-io-private.h"
#include "ts-ws-synchronizer.h"

/**
 * TsWsSynchronizer:
 *
 * Synchronizes a [class@Tinysync.MergeableStore] with the peers of a room
 * on a TinyBase WebSocket server (TinyBase's `WsServer`, or
 * `TsWsServer`), speaking TinyBase 10's wire protocol: it interoperates
 * with TinyBase's own `WsSynchronizer` clients in the same room.
 *
 * A synchronizer is created connected, as TinyBase's awaited
 * `createWsSynchronizer()`:
 *
 * ```c
 * static void
 * on_created (GObject *source, GAsyncResult *result, gpointer user_data)
 * {
 *   g_autoptr(GError) error = NULL;
 *   g_autoptr(TsWsSynchronizer) sync = ts_ws_synchronizer_new_finish (result, &error);
 *
 *   if (sync == NULL)
 *     g_warning ("%s", error->message);
 *   else
 *     ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (sync), NULL, NULL, NULL, NULL);
 *   ...
 * }
 *
 * ts_ws_synchronizer_new_async (store, "ws://localhost:8048/petShop", 1,
 *                               NULL, on_created, NULL);
 * ```
 *
 * The room is the path of the URI. In **legacy mode**
 * ([func@Tinysync.WsSynchronizer.new_async],
 * [ctor@Tinysync.WsSynchronizer.new_for_connection]) the socket carries one
 * room. In **channel mode** ([func@Tinysync.WsSynchronizer.new_channel_async],
 * [func@Tinysync.WsSynchronizer.new_channel_for_connection_async]) several
 * synchronizers, each with its own store and channel id, share one socket
 * opened with the `tinybase` subprotocol; the room of a channel is the
 * path of the URI followed by `/` and the channel id. Channel
 * synchronizers created for the same URI (in the same thread-default main
 * context) share one connection.
 *
 * Beyond TinyBase, a synchronizer that opened its connection from a URI
 * keeps it alive: libsoup sends keepalive pings every
 * [property@Tinysync.WsSynchronizer:keepalive-interval] seconds and a peer
 * that answers nothing for twice that long is considered gone; a lost
 * connection is reopened with exponential backoff (unless
 * [property@Tinysync.WsSynchronizer:reconnect] is %FALSE), and once it is
 * back a synchronizer that was syncing starts syncing again, which pulls
 * what peers changed meanwhile and lets them pull what changed here.
 * [property@Tinysync.WsSynchronizer:connected] tells whether the
 * synchronizer can currently reach the room.
 *
 * Every incoming payload is validated as TinyBase does: the first invalid
 * one closes the socket with code 1007, an oversized one with 1013, and
 * the error is reported through
 * [signal@Tinysync.Synchronizer::ignored-error]. Incoming frames of up to
 * [property@Tinysync.WsSynchronizer:max-message-size] bytes are accepted;
 * outgoing messages are split into fragments of at most
 * [property@Tinysync.WsSynchronizer:fragment-size] bytes when that is set.
 *
 * Since: 1.0
 */

#define DEFAULT_MAX_MESSAGE_SIZE  TS_PAYLOAD_DEFAULT_MAX_SIZE
#define DEFAULT_KEEPALIVE         30
#define CONNECT_TIMEOUT_SECONDS   15
#define BACKOFF_INITIAL_MS        250
#define BACKOFF_MAX_MS            30000
#define MAX_QUEUED_PAYLOADS       1000
#define MAX_QUEUED_SIZE           TS_PAYLOAD_DEFAULT_MAX_SIZE
#define MAX_PENDING_CONTROLS      100
#define CONTROL_ID_LEN            16

/* ======================================================================= */
/* Small helpers                                                            */
/* ======================================================================= */

/* WebSocket text must be UTF-8; NUL bytes are fine. libsoup turns a send
 * of anything else into a critical, so check first. */
static gboolean
is_websocket_text (const char *text,
                   gsize       len)
{
  const char *p = text;
  const char *end = text + len;

  while (p < end)
    {
      const char *nul = memchr (p, '\0', end - p);
      const char *stop = nul != NULL ? nul : end;

      if (stop > p && !g_utf8_validate_len (p, stop - p, NULL))
        return FALSE;
      p = nul != NULL ? nul + 1 : end;
    }
  return TRUE;
}

static gboolean
connection_is_open (SoupWebsocketConnection *conn)
{
  return conn != NULL && soup_websocket_connection_get_state (conn) == SOUP_WEBSOCKET_STATE_OPEN;
}

static void
on_lingering_closed (SoupWebsocketConnection *conn,
                     gpointer                 data)
{
  g_signal_handlers_disconnect_by_func (conn, on_lingering_closed, data);
  g_object_unref (conn);
}

/* Gives up a connection (transfer full): closes it, with code 0 for a
 * plain close, and keeps it alive until libsoup finished closing, so the
 * close is clean. */
static void
release_connection (SoupWebsocketConnection *conn,
                    gushort                  code,
                    const char              *reason)
{
  SoupWebsocketState state = soup_websocket_connection_get_state (conn);

  if (state == SOUP_WEBSOCKET_STATE_CLOSED)
    {
      g_object_unref (conn);
      return;
    }
  if (state == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (conn, code == 0 ? SOUP_WEBSOCKET_CLOSE_NO_STATUS : code,
                                     code == 0 ? NULL : reason);
  g_signal_connect (conn, "closed", G_CALLBACK (on_lingering_closed), NULL);
}

/* The libsoup frame limit for a synchronizer accepting payloads of max
 * bytes: somewhat larger, so a slightly oversized frame reaches the
 * decoder and gets TinyBase's 1013 "tinybase:15:socket" instead of
 * libsoup's 1009. */
static guint64
incoming_limit (guint max)
{
  return (guint64) max + MAX (max / 4, 65536);
}

static GError *
status_error (TsPayloadStatus status)
{
  const char *reason = ts_payload_status_reason (status);

  if (status == TS_PAYLOAD_INVALID)
    return g_error_new (TS_ERROR, TS_ERROR_INVALID_MESSAGE,
                        _("Invalid payload received (%s)"), reason);
  return g_error_new (TS_ERROR, TS_ERROR_OVERFLOW, _("Limit exceeded (%s)"), reason);
}

static GError *
closed_error (void)
{
  return g_error_new (TS_ERROR, TS_ERROR_CLOSED, _("The connection closed (tinybase:5)"));
}

/* Reads the request id and message type at the start of a message
 * `[requestId,message,body]` as the engine writes it. *request_id is NULL
 * for null. */
static gboolean
peek_message (const char  *json,
              gsize        len,
              char       **request_id,
              int         *type)
{
  gsize i = 1;
  gint64 number;
  char *end;

  *request_id = NULL;
  if (len < 2 || json[0] != '[')
    return FALSE;
  if (len >= 5 && strncmp (json + 1, "null", 4) == 0)
    i = 5;
  else if (json[1] == '"')
    {
      g_autoptr(TsJsonDoc) doc = NULL;
      const TsJsonNode *node;

      for (i = 2; i < len && json[i] != '"'; i++)
        if (json[i] == '\\')
          i++;
      if (i >= len)
        return FALSE;
      i++;
      doc = ts_json_parse (json + 1, i - 1, NULL);
      if (doc == NULL)
        return FALSE;
      node = ts_json_doc_get_root (doc);
      if (node->type != TS_JSON_STRING)
        return FALSE;
      *request_id = g_strndup (node->u.str, node->len);
    }
  else
    return FALSE;
  if (i >= len || json[i] != ',')
    {
      g_clear_pointer (request_id, g_free);
      return FALSE;
    }
  number = g_ascii_strtoll (json + i + 1, &end, 10);
  *type = (int) number;
  return TRUE;
}

/* ======================================================================= */
/* Link: one WebSocket, reopened from its URI when lost                     */
/* ======================================================================= */

typedef struct _Link    Link;
typedef struct _Attempt Attempt;

typedef struct {
  void (*ref)     (gpointer owner);
  void (*unref)   (gpointer owner);
  /* A connection is open (first: the first one of this link). */
  void (*opened)  (gpointer owner,
                   gboolean first);
  /* An attempt to open a connection failed. */
  void (*failed)  (gpointer owner,
                   gboolean first,
                   const GError *error);
  void (*message) (gpointer owner,
                   int      type,
                   GBytes  *data);
  /* The open connection closed or was given up as dead. */
  void (*lost)    (gpointer owner);
  /* An error event of the connection (may repeat; not fatal by itself). */
  void (*error)   (gpointer owner,
                   const GError *error);
  /* An incoming message grew past the size limit (over several frames). */
  void (*too_big) (gpointer owner);
} LinkFuncs;

struct _Attempt {
  Link              *link;          /* NULL once the link stopped waiting */
  GCancellable      *cancellable;
  GSource           *timeout;
  gboolean           timed_out;
  GCancellable      *user_cancellable;   /* the caller's, forwarded to ours */
  gulong             user_handler;
  GUri              *uri;
  char              *key;           /* Sec-WebSocket-Key */
  GSocketConnection *stream;
  char              *request;       /* being written */
  GString           *response;
  guint8             byte;
};

struct _Link {
  const LinkFuncs         *funcs;
  gpointer                 owner;
  GMainContext            *context;
  char                    *uri;          /* NULL: the caller's connection */
  const char              *protocol;     /* subprotocol offered, or NULL */
  SoupWebsocketConnection *connection;
  TsWsIOStream            *io;           /* NULL for the caller's connection */
  guint64                  handed;       /* data frame bytes given to libsoup */
  gulong                   message_id;
  gulong                   closed_id;
  gulong                   error_id;
  gulong                   pong_id;
  gulong                   too_big_id;
  Attempt                 *attempt;
  GSource                 *retry;
  guint                    backoff_ms;
  gboolean                 established;  /* opened at least once */
  gboolean                 reconnect;
  guint                    keepalive;    /* seconds, 0 = off */
  GSource                 *liveness;
  gint64                   last_activity;
  guint64                  max_incoming;
  gboolean                 stopped;
  GTlsDatabase            *tls_database; /* NULL: the default database */
};

static void link_connect (Link *link, GCancellable *cancellable);

static void
link_init (Link            *link,
           const LinkFuncs *funcs,
           gpointer         owner)
{
  memset (link, 0, sizeof *link);
  link->funcs = funcs;
  link->owner = owner;
  link->context = g_main_context_ref_thread_default ();
  link->backoff_ms = BACKOFF_INITIAL_MS;
  link->reconnect = TRUE;
  link->keepalive = DEFAULT_KEEPALIVE;
  link->max_incoming = incoming_limit (DEFAULT_MAX_MESSAGE_SIZE);
}

static GSource *
link_add_timeout (Link        *link,
                  guint        ms,
                  GSourceFunc  func,
                  gpointer     data,
                  const char  *name)
{
  GSource *source = g_timeout_source_new (ms);

  g_source_set_callback (source, func, data, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, link->context);
  return source;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static void
link_detach (Link *link)
{
  SoupWebsocketConnection *conn = link->connection;

  if (conn == NULL)
    return;
  g_clear_signal_handler (&link->message_id, conn);
  g_clear_signal_handler (&link->closed_id, conn);
  g_clear_signal_handler (&link->error_id, conn);
  g_clear_signal_handler (&link->pong_id, conn);
  if (link->io != NULL)
    g_clear_signal_handler (&link->too_big_id, link->io);
  g_clear_object (&link->io);
  clear_source (&link->liveness);
  link->connection = NULL;
}

static gboolean
link_retry_cb (gpointer data)
{
  Link *link = data;

  g_clear_pointer (&link->retry, g_source_unref);
  link_connect (link, NULL);
  return G_SOURCE_REMOVE;
}

static void
link_schedule_retry (Link *link)
{
  guint delay;

  if (link->stopped || link->uri == NULL || !link->reconnect || link->retry != NULL ||
      link->attempt != NULL)
    return;
  /* +-20 % jitter so that clients of a restarted server spread out */
  delay = link->backoff_ms * (guint) g_random_int_range (80, 121) / 100;
  link->backoff_ms = MIN (link->backoff_ms * 2, BACKOFF_MAX_MS);
  link->retry = link_add_timeout (link, delay, link_retry_cb, link, "[tinysync] reconnect");
}

/* The connection closed (or is given up): tell the owner, maybe retry. */
static void
link_lost (Link *link)
{
  link->funcs->ref (link->owner);
  link->funcs->lost (link->owner);
  if (!link->stopped)
    link_schedule_retry (link);
  link->funcs->unref (link->owner);
}

static void
on_link_message (SoupWebsocketConnection *conn,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 data)
{
  Link *link = data;

  link->last_activity = g_get_monotonic_time ();
  link->funcs->ref (link->owner);
  link->funcs->message (link->owner, type, message);
  link->funcs->unref (link->owner);
}

static void
on_link_pong (SoupWebsocketConnection *conn,
              GBytes                  *message,
              gpointer                 data)
{
  Link *link = data;

  link->last_activity = g_get_monotonic_time ();
}

static void
on_link_error (SoupWebsocketConnection *conn,
               GError                  *error,
               gpointer                 data)
{
  Link *link = data;

  link->funcs->ref (link->owner);
  link->funcs->error (link->owner, error);
  link->funcs->unref (link->owner);
}

static void
on_link_closed (SoupWebsocketConnection *conn,
                gpointer                 data)
{
  Link *link = data;

  link_detach (link);
  g_object_unref (conn);
  link_lost (link);
}

/* Nothing from the peer for two keepalive intervals: it is gone (a plain
 * close would wait for its answer), so give the connection up now. */
static gboolean
link_liveness_cb (gpointer data)
{
  Link *link = data;
  gint64 silent = g_get_monotonic_time () - link->last_activity;
  SoupWebsocketConnection *conn;
  g_autoptr(GError) error = NULL;

  if (silent <= (gint64) link->keepalive * 2 * G_USEC_PER_SEC)
    return G_SOURCE_CONTINUE;

  error = g_error_new (TS_ERROR, TS_ERROR_CLOSED,
                       _("No answer from the server for %u seconds (tinybase:5)"),
                       link->keepalive * 2);
  conn = link->connection;
  link_detach (link);   /* destroys this source */
  release_connection (conn, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
  link->funcs->ref (link->owner);
  link->funcs->error (link->owner, error);
  link_lost (link);
  link->funcs->unref (link->owner);
  return G_SOURCE_REMOVE;
}

static void
link_apply_keepalive (Link *link)
{
  clear_source (&link->liveness);
  if (link->connection == NULL || link->uri == NULL)
    return;
  soup_websocket_connection_set_keepalive_interval (link->connection, link->keepalive);
  if (link->keepalive == 0)
    return;
  link->last_activity = g_get_monotonic_time ();
  link->liveness = g_timeout_source_new_seconds (link->keepalive);
  g_source_set_callback (link->liveness, link_liveness_cb, link, NULL);
  g_source_set_static_name (link->liveness, "[tinysync] keepalive");
  g_source_attach (link->liveness, link->context);
}

static void
on_link_too_big (TsWsIOStream *io,
                 gpointer      data)
{
  Link *link = data;

  link->funcs->ref (link->owner);
  link->funcs->too_big (link->owner);
  link->funcs->unref (link->owner);
}

/* Takes over conn (transfer full), which is open, and io (transfer full,
 * NULL for the caller's connection). */
static void
link_attach (Link                    *link,
             SoupWebsocketConnection *conn,
             TsWsIOStream            *io)
{
  g_assert (link->connection == NULL);

  link->connection = conn;
  link->io = io;
  link->handed = 0;
  if (io != NULL)
    link->too_big_id = g_signal_connect (io, "message-too-big", G_CALLBACK (on_link_too_big), link);
  soup_websocket_connection_set_max_incoming_payload_size (conn, link->max_incoming);
  link->message_id = g_signal_connect (conn, "message", G_CALLBACK (on_link_message), link);
  link->closed_id = g_signal_connect (conn, "closed", G_CALLBACK (on_link_closed), link);
  link->error_id = g_signal_connect (conn, "error", G_CALLBACK (on_link_error), link);
  link->pong_id = g_signal_connect (conn, "pong", G_CALLBACK (on_link_pong), link);
  link_apply_keepalive (link);
}

static void
forward_cancel (GCancellable *cancellable,
                gpointer      data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
}

static void
attempt_free (Attempt *attempt)
{
  if (attempt->user_cancellable != NULL)
    {
      g_cancellable_disconnect (attempt->user_cancellable, attempt->user_handler);
      g_clear_object (&attempt->user_cancellable);
    }
  clear_source (&attempt->timeout);
  g_clear_object (&attempt->cancellable);
  g_clear_pointer (&attempt->uri, g_uri_unref);
  g_free (attempt->key);
  g_clear_object (&attempt->stream);
  g_free (attempt->request);
  if (attempt->response != NULL)
    g_string_free (attempt->response, TRUE);
  g_free (attempt);
}

static gboolean
attempt_timeout_cb (gpointer data)
{
  Attempt *attempt = data;

  attempt->timed_out = TRUE;
  g_cancellable_cancel (attempt->cancellable);
  return G_SOURCE_CONTINUE;   /* the attempt's completion destroys it */
}

/* Ends an attempt: conn (transfer full, with its io) or error. */
static void
attempt_finish (Attempt                 *attempt,
                SoupWebsocketConnection *conn,
                TsWsIOStream            *io,
                GError                  *error)
{
  Link *link = attempt->link;
  g_autoptr(GError) timeout_error = NULL;
  gboolean first;

  if (link == NULL)
    {
      /* the link stopped meanwhile */
      if (conn != NULL)
        release_connection (conn, 0, NULL);
      g_clear_object (&io);
      attempt_free (attempt);
      return;
    }
  link->attempt = NULL;
  if (conn == NULL && attempt->timed_out)
    error = timeout_error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                         _("No connection after %d seconds"),
                                         CONNECT_TIMEOUT_SECONDS);
  attempt_free (attempt);

  first = !link->established;
  link->funcs->ref (link->owner);
  if (conn == NULL)
    {
      link->funcs->failed (link->owner, first, error);
      if (!first)
        link_schedule_retry (link);
    }
  else
    {
      link->established = TRUE;
      link->backoff_ms = BACKOFF_INITIAL_MS;
      link_attach (link, conn, io);
      link->funcs->opened (link->owner, first);
    }
  link->funcs->unref (link->owner);
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_RESPONSE_HEADERS 16384

static char *
accept_key (const char *key)
{
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, strlen (key));
  g_checksum_update (sha1, (const guchar *) WS_GUID, strlen (WS_GUID));
  g_checksum_get_digest (sha1, digest, &len);
  return g_base64_encode (digest, len);
}

static gboolean
header_has_token (SoupMessageHeaders *headers,
                  const char         *name,
                  const char         *token)
{
  const char *value = soup_message_headers_get_list (headers, name);
  g_auto(GStrv) parts = NULL;

  if (value == NULL)
    return FALSE;
  parts = g_strsplit (value, ",", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    if (g_ascii_strcasecmp (g_strstrip (parts[i]), token) == 0)
      return TRUE;
  return FALSE;
}

/* Checks the server's answer (RFC 6455 4.1) and starts the connection. */
static void
attempt_handshake_done (Attempt *attempt)
{
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  g_autofree char *reason = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;
  const char *protocol;
  const char *accept;
  SoupHTTPVersion version;
  guint status = 0;
  TsWsIOStream *io;
  SoupWebsocketConnection *conn;

  if (!soup_headers_parse_response (attempt->response->str, attempt->response->len, headers,
                                    &version, &status, &reason))
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         _("The server sent an invalid HTTP response"));
  else if (status != SOUP_STATUS_SWITCHING_PROTOCOLS)
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                         _("The server refused the WebSocket upgrade (HTTP %u %s)"), status,
                         reason != NULL ? reason : "");
  else if (!header_has_token (headers, "Upgrade", "websocket") ||
           !header_has_token (headers, "Connection", "upgrade"))
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         _("The server did not switch to the WebSocket protocol"));
  if (error != NULL)
    {
      attempt_finish (attempt, NULL, NULL, error);
      return;
    }
  expected = accept_key (attempt->key);
  accept = soup_message_headers_get_one (headers, "Sec-WebSocket-Accept");
  protocol = soup_message_headers_get_one (headers, "Sec-WebSocket-Protocol");
  if (g_strcmp0 (accept, expected) != 0)
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         _("The server sent a wrong Sec-WebSocket-Accept"));
  else if (protocol != NULL && (attempt->link->protocol == NULL ||
                                strcmp (protocol, attempt->link->protocol) != 0))
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         _("The server chose the subprotocol “%s”, which was not offered"), protocol);
  else if (soup_message_headers_get_one (headers, "Sec-WebSocket-Extensions") != NULL)
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         _("The server chose an extension, none was offered"));
  if (error != NULL)
    {
      attempt_finish (attempt, NULL, NULL, error);
      return;
    }

  io = ts_ws_io_stream_new (G_IO_STREAM (attempt->stream), attempt->link->max_incoming);
  conn = soup_websocket_connection_new (G_IO_STREAM (io), attempt->uri,
                                        SOUP_WEBSOCKET_CONNECTION_CLIENT, NULL, protocol, NULL);
  attempt_finish (attempt, conn, io, NULL);
}

static void attempt_read_byte (Attempt *attempt);

static void
on_response_byte (GObject      *source,
                  GAsyncResult *result,
                  gpointer      data)
{
  Attempt *attempt = data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (attempt->link == NULL)
    {
      attempt_finish (attempt, NULL, NULL, NULL);
      return;
    }
  if (n <= 0)
    {
      if (error == NULL)
        error = g_error_new (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                             _("The server closed the connection during the handshake"));
      attempt_finish (attempt, NULL, NULL, error);
      return;
    }
  g_string_append_c (attempt->response, (char) attempt->byte);
  if (g_str_has_suffix (attempt->response->str, "\r\n\r\n"))
    attempt_handshake_done (attempt);
  else if (attempt->response->len >= MAX_RESPONSE_HEADERS)
    {
      error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           _("The server sent too long a response"));
      attempt_finish (attempt, NULL, NULL, error);
    }
  else
    attempt_read_byte (attempt);
}

/* Reads the response one byte at a time: whatever follows the headers
 * belongs to the WebSocket. */
static void
attempt_read_byte (Attempt *attempt)
{
  GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (attempt->stream));

  g_input_stream_read_async (input, &attempt->byte, 1, G_PRIORITY_DEFAULT, attempt->cancellable,
                             on_response_byte, attempt);
}

static void
on_request_written (GObject      *source,
                    GAsyncResult *result,
                    gpointer      data)
{
  Attempt *attempt = data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error) ||
      attempt->link == NULL)
    {
      attempt_finish (attempt, NULL, NULL, error);
      return;
    }
  attempt->response = g_string_sized_new (256);
  attempt_read_byte (attempt);
}

/* The request target: path and query as given, with anything outside
 * printable ASCII percent-encoded (as a browser or Node's ws does). */
static char *
request_target (GUri *uri)
{
  const char *path = g_uri_get_path (uri);
  const char *query = g_uri_get_query (uri);
  GString *out = g_string_new (NULL);
  g_autofree char *raw = g_strconcat (path[0] != '\0' ? path : "/", query != NULL ? "?" : "",
                                      query != NULL ? query : "", NULL);

  for (const guchar *p = (const guchar *) raw; *p != '\0'; p++)
    {
      if (*p <= 0x20 || *p >= 0x7f)
        g_string_append_printf (out, "%%%02X", *p);
      else
        g_string_append_c (out, (char) *p);
    }
  return g_string_free (out, FALSE);
}

static void
on_socket_connected (GObject      *source,
                     GAsyncResult *result,
                     gpointer      data)
{
  Attempt *attempt = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL;
  g_autofree char *host = NULL;
  const char *name = g_uri_get_host (attempt->uri);
  int port = g_uri_get_port (attempt->uri);
  guint8 nonce[16];
  GString *request;
  gsize len;

  attempt->stream = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (attempt->stream == NULL || attempt->link == NULL)
    {
      attempt_finish (attempt, NULL, NULL, error);
      return;
    }

  for (guint i = 0; i < sizeof nonce; i++)
    nonce[i] = (guint8) g_random_int_range (0, 256);
  attempt->key = g_base64_encode (nonce, sizeof nonce);
  target = request_target (attempt->uri);
  host = strchr (name, ':') != NULL ? g_strdup_printf ("[%s]", name) : g_strdup (name);

  request = g_string_new (NULL);
  g_string_append_printf (request, "GET %s HTTP/1.1\r\n", target);
  if (port > 0)
    g_string_append_printf (request, "Host: %s:%d\r\n", host, port);
  else
    g_string_append_printf (request, "Host: %s\r\n", host);
  g_string_append (request, "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Version: 13\r\n");
  g_string_append_printf (request, "Sec-WebSocket-Key: %s\r\n", attempt->key);
  if (attempt->link->protocol != NULL)
    g_string_append_printf (request, "Sec-WebSocket-Protocol: %s\r\n", attempt->link->protocol);
  g_string_append (request, "User-Agent: tinysync/" PACKAGE_VERSION "\r\n\r\n");
  len = request->len;
  attempt->request = g_string_free (request, FALSE);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (attempt->stream)),
                                   attempt->request, len, G_PRIORITY_DEFAULT,
                                   attempt->cancellable, on_request_written, attempt);
}

/* tls-database: the certificate of a wss:// server is checked against
 * the link's database instead of the default one. */
static void
on_socket_client_event (GSocketClient      *client,
                        GSocketClientEvent  event,
                        GSocketConnectable *connectable,
                        GIOStream          *connection,
                        gpointer            data)
{
  if (event == G_SOCKET_CLIENT_TLS_HANDSHAKING && G_IS_TLS_CONNECTION (connection))
    g_tls_connection_set_database (G_TLS_CONNECTION (connection), data);
}

/* Opens a WebSocket to the link's URI: our own HTTP/1.1 upgrade over a
 * GSocketClient, so that the connection runs over a TsWsIOStream (close
 * codes libsoup 3.2 refuses, whole-message size limit, buffered bytes). */
static void
link_connect (Link         *link,
              GCancellable *cancellable)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSocketConnectable) address = NULL;
  Attempt *attempt;
  const char *scheme;
  gboolean tls;
  int port;

  g_assert (link->uri != NULL);
  g_assert (link->attempt == NULL);

  attempt = g_new0 (Attempt, 1);
  attempt->link = link;
  attempt->cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    {
      attempt->user_cancellable = g_object_ref (cancellable);
      attempt->user_handler = g_cancellable_connect (cancellable, G_CALLBACK (forward_cancel),
                                                     g_object_ref (attempt->cancellable),
                                                     g_object_unref);
    }
  link->attempt = attempt;

  attempt->uri = g_uri_parse (link->uri, G_URI_FLAGS_ENCODED, &error);
  scheme = attempt->uri != NULL ? g_uri_get_scheme (attempt->uri) : NULL;
  if (attempt->uri == NULL || g_uri_get_host (attempt->uri) == NULL ||
      g_uri_get_host (attempt->uri)[0] == '\0' ||
      (g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0 &&
       g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0))
    {
      g_clear_error (&error);
      error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           _("Invalid WebSocket URI “%s”"), link->uri);
      link->funcs->ref (link->owner);
      attempt_finish (attempt, NULL, NULL, error);
      link->funcs->unref (link->owner);
      return;
    }
  tls = g_ascii_strcasecmp (scheme, "wss") == 0 || g_ascii_strcasecmp (scheme, "https") == 0;
  port = g_uri_get_port (attempt->uri);
  attempt->timeout = link_add_timeout (link, CONNECT_TIMEOUT_SECONDS * 1000, attempt_timeout_cb,
                                       attempt, "[tinysync] connect timeout");
  client = g_socket_client_new ();
  g_socket_client_set_tls (client, tls);
  if (tls && link->tls_database != NULL)
    g_signal_connect_data (client, "event", G_CALLBACK (on_socket_client_event),
                           g_object_ref (link->tls_database),
                           (GClosureNotify) (void (*) (void)) g_object_unref, 0);
  address = g_network_address_new (g_uri_get_host (attempt->uri),
                                   port > 0 ? port : tls ? 443 : 80);
  g_socket_client_connect_async (client, address, attempt->cancellable, on_socket_connected,
                                 attempt);
}

/* For a URI link: starts the first connection. */
static void
link_start (Link         *link,
            const char   *uri,
            const char   *protocol,
            GCancellable *cancellable)
{
  link->uri = g_strdup (uri);
  link->protocol = protocol;
  link_connect (link, cancellable);
}

/* Close codes libsoup 3.2 sends as they are (it turns any other code
 * under 3000 into a 1002 protocol error). */
static gboolean
is_native_close_code (gushort code)
{
  switch (code)
    {
    case SOUP_WEBSOCKET_CLOSE_NORMAL:
    case SOUP_WEBSOCKET_CLOSE_GOING_AWAY:
    case SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR:
    case SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA:
    case SOUP_WEBSOCKET_CLOSE_BAD_DATA:
    case SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION:
    case SOUP_WEBSOCKET_CLOSE_TOO_BIG:
    case SOUP_WEBSOCKET_CLOSE_NO_EXTENSION:
      return TRUE;
    default:
      return code >= 3000 && code < 5000;
    }
}

/* Closes the open connection with a code (its loss is reported when
 * libsoup is done). */
static void
link_close (Link       *link,
            gushort     code,
            const char *reason)
{
  if (!connection_is_open (link->connection))
    return;
  if (!is_native_close_code (code) && link->io != NULL)
    {
      /* libsoup writes 1000, the stream rewrites the code on the wire */
      ts_ws_io_stream_override_close_code (link->io, code);
      code = SOUP_WEBSOCKET_CLOSE_NORMAL;
    }
  soup_websocket_connection_close (link->connection, code, reason);
}

/* Stops for good: plain close, no callbacks any more. */
static void
link_stop (Link *link)
{
  link->stopped = TRUE;
  if (link->attempt != NULL)
    {
      Attempt *attempt = g_steal_pointer (&link->attempt);

      attempt->link = NULL;
      g_cancellable_cancel (attempt->cancellable);
    }
  clear_source (&link->retry);
  if (link->connection != NULL)
    {
      SoupWebsocketConnection *conn = link->connection;

      link_detach (link);
      release_connection (conn, 0, NULL);
    }
}

static void
link_clear (Link *link)
{
  link_stop (link);
  g_clear_pointer (&link->uri, g_free);
  g_clear_pointer (&link->context, g_main_context_unref);
  g_clear_object (&link->tls_database);
}

static gboolean
link_is_open (Link *link)
{
  return connection_is_open (link->connection);
}

static gboolean
link_send (Link   *link,
           GBytes *payload)
{
  gsize len;
  const char *data = g_bytes_get_data (payload, &len);

  if (!link_is_open (link) || !is_websocket_text (data, len))
    return FALSE;
  soup_websocket_connection_send_message (link->connection, SOUP_WEBSOCKET_DATA_TEXT, payload);
  /* a masked client frame: header, mask key, payload */
  link->handed += len + (len < 126 ? 2 : len < 65536 ? 4 : 10) + 4;
  return TRUE;
}

/* Bytes handed to libsoup that did not reach the socket yet (TinyBase's
 * bufferedAmount); 0 when unknown (the caller's connection). */
static guint64
link_buffered (Link *link)
{
  guint64 written;

  if (link->io == NULL)
    return 0;
  written = ts_ws_io_stream_get_data_bytes_written (link->io);
  return link->handed > written ? link->handed - written : 0;
}

static void
link_set_max_incoming (Link    *link,
                       guint64  limit)
{
  link->max_incoming = limit;
  if (link->connection != NULL)
    soup_websocket_connection_set_max_incoming_payload_size (link->connection, limit);
}

static void
link_set_keepalive (Link  *link,
                    guint  seconds)
{
  if (link->keepalive == seconds)
    return;
  link->keepalive = seconds;
  link_apply_keepalive (link);
}

/* A frame's text: binary frames are decoded as Node does. */
static const char *
frame_text (int      type,
            GBytes  *message,
            gsize   *len,
            char   **owned)
{
  const char *data = g_bytes_get_data (message, len);

  *owned = NULL;
  if (data == NULL)
    data = "";
  if (type == SOUP_WEBSOCKET_DATA_BINARY)
    {
      *owned = ts_payload_text_from_binary (data, *len, len);
      return *owned;
    }
  return data;
}

/* ======================================================================= */
/* TsWsSynchronizer                                                         */
/* ======================================================================= */

typedef struct _Mux     Mux;
typedef struct _Channel Channel;

struct _TsWsSynchronizer
{
  TsSynchronizer           parent_instance;

  char                    *uri;
  char                    *channel_id;
  SoupWebsocketConnection *given_connection;  /* construct property */
  guint                    fragment_size;
  guint                    max_message_size;
  gboolean                 reconnect;
  guint                    keepalive;
  gboolean                 connected;
  gboolean                 initialized;
  gboolean                 released;

  /* legacy mode */
  Link                     link;
  TsPayloadBudget         *budget;
  TsPayloadDecoder        *decoder;
  GSource                 *expiry;
  gboolean                 send_overflowed;
  GTask                   *init_task;

  /* channel mode */
  Mux                     *mux;

  GTlsDatabase            *tls_database;  /* construct property */
};

static void ts_ws_synchronizer_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsWsSynchronizer, ts_ws_synchronizer, TS_TYPE_SYNCHRONIZER,
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      ts_ws_synchronizer_async_initable_iface_init))

enum {
  PROP_0,
  PROP_URI,
  PROP_CHANNEL_ID,
  PROP_CONNECTION,
  PROP_FRAGMENT_SIZE,
  PROP_MAX_MESSAGE_SIZE,
  PROP_RECONNECT,
  PROP_KEEPALIVE_INTERVAL,
  PROP_CONNECTED,
  PROP_TLS_DATABASE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* The socket used by a legacy synchronizer cannot be multiplexed, and the
 * other way round (tinybase:9 and tinybase:10). */
static GQuark legacy_quark;
static GQuark mux_quark;

static void
set_connected (TsWsSynchronizer *self,
               gboolean          connected)
{
  if (self->connected == connected)
    return;
  self->connected = connected;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTED]);
}

static void
report_error (TsWsSynchronizer *self,
              const GError     *error)
{
  if (!ts_synchronizer_is_destroyed (TS_SYNCHRONIZER (self)))
    ts_synchronizer_report_error (TS_SYNCHRONIZER (self), error);
}

/* A connection came back: sync again if syncing (pulls what the peers
 * changed meanwhile; the ContentHashes that follows lets them pull from
 * us). */
static void
resync (TsWsSynchronizer *self)
{
  if (ts_synchronizer_is_syncing (TS_SYNCHRONIZER (self)) &&
      !ts_synchronizer_is_destroyed (TS_SYNCHRONIZER (self)))
    ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (self), NULL, NULL, NULL, NULL);
}

/* Delivers a decoded message to the engine (takes message). */
static void
deliver (TsWsSynchronizer *self,
         TsPayloadMessage *message)
{
  TsJsonDoc *doc = g_steal_pointer (&message->doc);

  _ts_synchronizer_receive (TS_SYNCHRONIZER (self), message->client_id, doc,
                            message->request_id, message->type, message->body);
  ts_payload_message_free (message);
}

/* ---- Legacy mode --------------------------------------------------------- */

static void
legacy_reset_decoder (TsWsSynchronizer *self)
{
  clear_source (&self->expiry);
  g_clear_pointer (&self->decoder, ts_payload_decoder_free);
  g_clear_pointer (&self->budget, ts_payload_budget_unref);
  self->budget = ts_payload_budget_new (self->max_message_size, 0);
  self->decoder = ts_payload_decoder_new (self->budget,
                                          ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (self)));
}

static gboolean legacy_expiry_cb (gpointer data);

/* Drops incomplete fragmented messages when they expire (the decoder also
 * does at each frame; this releases their memory early). */
static void
legacy_schedule_expiry (TsWsSynchronizer *self)
{
  gint64 next;
  gint64 now;

  clear_source (&self->expiry);
  if (self->decoder == NULL)
    return;
  next = ts_payload_decoder_get_next_expiry (self->decoder);
  if (next < 0)
    return;
  now = g_get_monotonic_time ();
  self->expiry = g_timeout_source_new (next > now ? (guint) ((next - now + 999) / 1000) : 0);
  g_source_set_callback (self->expiry, legacy_expiry_cb, self, NULL);
  g_source_set_static_name (self->expiry, "[tinysync] fragment expiry");
  g_source_attach (self->expiry, self->link.context);
}

static gboolean
legacy_expiry_cb (gpointer data)
{
  TsWsSynchronizer *self = data;

  g_clear_pointer (&self->expiry, g_source_unref);
  if (self->decoder != NULL)
    {
      ts_payload_decoder_expire (self->decoder, g_get_monotonic_time ());
      legacy_schedule_expiry (self);
    }
  return G_SOURCE_REMOVE;
}

/* The first invalid or oversized payload: report, close 1007/1013. */
static void
legacy_fail (TsWsSynchronizer *self,
             TsPayloadStatus   status)
{
  g_autoptr(GError) error = status_error (status);

  clear_source (&self->expiry);
  link_close (&self->link, ts_payload_status_close_code (status),
              ts_payload_status_reason (status));
  report_error (self, error);
}

static void
legacy_ref (gpointer owner)
{
  g_object_ref (owner);
}

static void
legacy_unref (gpointer owner)
{
  g_object_unref (owner);
}

static void
legacy_opened (gpointer owner,
               gboolean first)
{
  TsWsSynchronizer *self = owner;

  legacy_reset_decoder (self);
  self->send_overflowed = FALSE;
  set_connected (self, TRUE);
  if (self->init_task != NULL)
    {
      GTask *task = g_steal_pointer (&self->init_task);

      self->initialized = TRUE;
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
    }
  else if (!first)
    resync (self);
}

static void
legacy_failed (gpointer      owner,
               gboolean      first,
               const GError *error)
{
  TsWsSynchronizer *self = owner;
  g_autoptr(GError) closed = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    closed = g_error_copy (error);
  else
    closed = g_error_new (TS_ERROR, TS_ERROR_CLOSED, _("Could not connect to %s: %s (tinybase:5)"),
                          self->link.uri, error->message);
  report_error (self, closed);
  if (self->init_task != NULL)
    {
      GTask *task = g_steal_pointer (&self->init_task);

      g_task_return_error (task, g_steal_pointer (&closed));
      g_object_unref (task);
    }
}

static void
legacy_message (gpointer owner,
                int      type,
                GBytes  *data)
{
  TsWsSynchronizer *self = owner;
  g_autofree char *owned = NULL;
  TsPayloadMessage *message = NULL;
  TsPayloadStatus status = TS_PAYLOAD_OK;
  const char *text;
  gsize len;

  if (self->decoder == NULL)
    return;
  text = frame_text (type, data, &len, &owned);
  switch (ts_payload_decoder_decode (self->decoder, text, len, g_get_monotonic_time (),
                                     &message, &status))
    {
    case TS_PAYLOAD_RESULT_MESSAGE:
      deliver (self, message);
      break;
    case TS_PAYLOAD_RESULT_BUFFERED:
      if (self->expiry == NULL)
        legacy_schedule_expiry (self);
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      legacy_fail (self, status);
      break;
    case TS_PAYLOAD_RESULT_IGNORED:
    case TS_PAYLOAD_RESULT_CONTROL:
    case TS_PAYLOAD_RESULT_CHANNEL:
    default:
      break;
    }
}

static void
legacy_lost (gpointer owner)
{
  TsWsSynchronizer *self = owner;

  clear_source (&self->expiry);
  if (self->decoder != NULL)
    ts_payload_decoder_clear (self->decoder);
  set_connected (self, FALSE);
  ts_synchronizer_transport_closed (TS_SYNCHRONIZER (self));
}

static void
legacy_error (gpointer      owner,
              const GError *error)
{
  report_error (TS_WS_SYNCHRONIZER (owner), error);
}

static void
legacy_too_big (gpointer owner)
{
  TsWsSynchronizer *self = owner;

  if (self->budget != NULL && ts_payload_budget_fail (self->budget, TS_PAYLOAD_OVERFLOW_SOCKET))
    legacy_fail (self, TS_PAYLOAD_OVERFLOW_SOCKET);
}

static const LinkFuncs legacy_link_funcs = {
  legacy_ref, legacy_unref, legacy_opened, legacy_failed, legacy_message, legacy_lost,
  legacy_error, legacy_too_big,
};

/* Sending a payload over 16 MiB: report, close 1013, drop all later
 * sends on this connection. */
static void
legacy_send_overflow (TsWsSynchronizer *self)
{
  g_autoptr(GError) error = status_error (TS_PAYLOAD_OVERFLOW_SOCKET);

  self->send_overflowed = TRUE;
  link_close (&self->link, ts_payload_status_close_code (TS_PAYLOAD_OVERFLOW_SOCKET),
              ts_payload_status_reason (TS_PAYLOAD_OVERFLOW_SOCKET));
  report_error (self, error);
}

static void
legacy_send (TsWsSynchronizer *self,
             const char       *to,
             const char       *json,
             gsize             len)
{
  g_autoptr(GPtrArray) payloads = NULL;

  if (self->send_overflowed || !link_is_open (&self->link))
    return;
  payloads = ts_payload_fragment (to, -1, json, len, self->fragment_size, NULL);
  for (guint i = 0; i < payloads->len; i++)
    {
      GBytes *payload = payloads->pdata[i];

      if (self->send_overflowed || !link_is_open (&self->link))
        return;
      if (g_bytes_get_size (payload) > self->max_message_size ||
          link_buffered (&self->link) + g_bytes_get_size (payload) > self->max_message_size)
        {
          legacy_send_overflow (self);
          return;
        }
      if (!link_send (&self->link, payload))
        {
          g_autoptr(GError) error =
            g_error_new (TS_ERROR, TS_ERROR_INVALID_MESSAGE,
                         _("A message could not be sent as WebSocket text"));
          report_error (self, error);
          return;
        }
    }
}

/* ======================================================================= */
/* Multiplexed mode (section 13)                                            */
/* ======================================================================= */

typedef struct {
  GPtrArray *payloads;   /* inner payloads (GBytes) */
  guint      next;
  gsize      size;       /* bytes not sent yet */
  gint64     deadline;
} Outgoing;

struct _Channel {
  Mux              *mux;
  char             *id;
  TsWsSynchronizer *sync;              /* not owned; it owns a mux ref */
  TsPayloadDecoder *decoder;
  GSource          *expiry;
  gboolean          subscribed;
  guint             subscribe_serial;  /* connection the Subscribe went out on */
  GQueue            outgoing;          /* Outgoing* */
  gboolean          dirty;             /* a ContentHashes is owed */
  char             *dirty_request_id;
  GTask            *creation;
  gulong            cancel_id;         /* on the creation's cancellable */
};

typedef void (*ControlDone) (Mux          *mux,
                             guint         serial,
                             const char   *channel_id,
                             const GError *error);

typedef struct {
  Mux                *mux;
  char               *request_id;
  TsMultiplexControl  control;
  char               *channel_id;    /* NULL for Hello */
  guint               serial;
  GSource            *timeout;
  ControlDone         done;
} Control;

struct _Mux {
  int                      ref_count;
  char                    *key;         /* registry key, NULL for a caller connection */
  SoupWebsocketConnection *caller_connection;
  Link                     link;
  TsPayloadBudget         *budget;
  GHashTable              *channels;    /* id -> Channel* */
  GPtrArray               *order;       /* Channel*, in creation order */
  GHashTable              *controls;    /* request id -> Control* */
  guint                    serial;      /* current connection */
  gboolean                 connected;   /* Hello echoed on it */
  gboolean                 hello_sent;
  gboolean                 failed;      /* it failed (invalid, overflow) */
  gboolean                 destroyed;
  guint                    queued_count;
  gsize                    queued_size;
  GSource                 *flush;       /* retry after back-pressure */
  guint                    max_payload; /* the first channel's max-message-size */
};

G_LOCK_DEFINE_STATIC (muxes);
static GHashTable *muxes;   /* key -> Mux* (not owned) */

static void mux_shutdown_if_empty (Mux *mux);
static void channel_subscribe (Channel *channel);

static Mux *
mux_ref (Mux *mux)
{
  mux->ref_count++;
  return mux;
}

static void
control_free (gpointer data)
{
  Control *control = data;

  clear_source (&control->timeout);
  g_free (control->request_id);
  g_free (control->channel_id);
  g_free (control);
}

static void
outgoing_free (gpointer data)
{
  Outgoing *outgoing = data;

  g_ptr_array_unref (outgoing->payloads);
  g_free (outgoing);
}

static void
mux_unref (Mux *mux)
{
  if (--mux->ref_count > 0)
    return;
  mux->destroyed = TRUE;
  if (mux->key != NULL)
    {
      G_LOCK (muxes);
      if (muxes != NULL && g_hash_table_lookup (muxes, mux->key) == mux)
        g_hash_table_remove (muxes, mux->key);
      G_UNLOCK (muxes);
    }
  if (mux->caller_connection != NULL)
    {
      if (g_object_get_qdata (G_OBJECT (mux->caller_connection), mux_quark) == mux)
        g_object_set_qdata (G_OBJECT (mux->caller_connection), mux_quark, NULL);
      g_clear_object (&mux->caller_connection);
    }
  clear_source (&mux->flush);
  link_clear (&mux->link);
  g_hash_table_unref (mux->controls);
  g_hash_table_unref (mux->channels);
  g_ptr_array_unref (mux->order);
  g_clear_pointer (&mux->budget, ts_payload_budget_unref);
  g_free (mux->key);
  g_free (mux);
}

static void
mux_link_ref (gpointer owner)
{
  mux_ref (owner);
}

static void
mux_link_unref (gpointer owner)
{
  mux_unref (owner);
}

static double
mux_timeout (Mux *mux)
{
  double timeout = 1.0;
  gboolean first = TRUE;

  for (guint i = 0; i < mux->order->len; i++)
    {
      Channel *channel = mux->order->pdata[i];
      double t = ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (channel->sync));

      if (first || t < timeout)
        timeout = t;
      first = FALSE;
    }
  return timeout;
}

static guint
seconds_to_ms (double seconds)
{
  return (guint) CLAMP (seconds * 1000 + 0.5, 1, G_MAXINT);
}

/* Reports an error to every channel. */
static void
mux_report (Mux          *mux,
            const GError *error)
{
  g_autoptr(GPtrArray) syncs = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < mux->order->len; i++)
    g_ptr_array_add (syncs, g_object_ref (((Channel *) mux->order->pdata[i])->sync));
  for (guint i = 0; i < syncs->len; i++)
    report_error (syncs->pdata[i], error);
}

static void
mux_fail_controls (Mux          *mux,
                   const GError *error)
{
  g_autoptr(GList) controls = g_hash_table_get_values (mux->controls);

  for (GList *l = controls; l != NULL; l = l->next)
    {
      Control *control = l->data;
      g_autofree char *channel_id = NULL;
      ControlDone done;
      guint serial;

      if (!g_hash_table_steal (mux->controls, control->request_id))
        continue;
      done = control->done;
      serial = control->serial;
      channel_id = g_steal_pointer (&control->channel_id);
      control_free (control);
      done (mux, serial, channel_id, error);
    }
}

static gboolean
control_timeout_cb (gpointer data)
{
  Control *control = data;
  Mux *mux = mux_ref (control->mux);
  g_autoptr(GError) error =
    g_error_new (TS_ERROR, TS_ERROR_CONTROL_TIMEOUT,
                 _("The server did not acknowledge a %s in time (tinybase:4:%d)"),
                 control->control == TS_MULTIPLEX_HELLO ? "Hello" : "Subscribe",
                 (int) control->control);
  g_autofree char *channel_id = g_steal_pointer (&control->channel_id);
  ControlDone done = control->done;
  guint serial = control->serial;

  g_clear_pointer (&control->timeout, g_source_unref);
  g_hash_table_remove (mux->controls, control->request_id);
  done (mux, serial, channel_id, error);
  mux_unref (mux);
  return G_SOURCE_REMOVE;
}

static void mux_overflow (Mux *mux, TsPayloadStatus status);

static gboolean
mux_send_raw (Mux    *mux,
              GBytes *payload)
{
  if (g_bytes_get_size (payload) > ts_payload_budget_get_max_payload_size (mux->budget))
    {
      mux_overflow (mux, TS_PAYLOAD_OVERFLOW_SOCKET);
      return FALSE;
    }
  return link_send (&mux->link, payload);
}

/* Sends a Hello or Subscribe and waits for its echo. */
static void
mux_send_control (Mux                *mux,
                  TsMultiplexControl  kind,
                  const char         *channel_id,
                  double              timeout,
                  ControlDone         done)
{
  char id[CONTROL_ID_LEN + 1];
  g_autoptr(GBytes) payload = NULL;
  Control *control;

  if (g_hash_table_size (mux->controls) >= MAX_PENDING_CONTROLS)
    {
      g_autoptr(GError) error = status_error (TS_PAYLOAD_OVERFLOW_CONTROLS);

      mux_overflow (mux, TS_PAYLOAD_OVERFLOW_CONTROLS);
      done (mux, mux->serial, channel_id, error);
      return;
    }
  do
    ts_random_id (id, CONTROL_ID_LEN);
  while (g_hash_table_contains (mux->controls, id));

  control = g_new0 (Control, 1);
  control->mux = mux;
  control->request_id = g_strdup (id);
  control->control = kind;
  control->channel_id = g_strdup (channel_id);
  control->serial = mux->serial;
  control->done = done;
  control->timeout = link_add_timeout (&mux->link, seconds_to_ms (timeout), control_timeout_cb,
                                       control, "[tinysync] control timeout");
  g_hash_table_insert (mux->controls, control->request_id, control);

  payload = ts_multiplex_encode_control (id, -1, kind, channel_id, -1);
  mux_send_raw (mux, payload);
}

static gboolean
mux_can_send (Mux *mux)
{
  return mux->connected && !mux->failed && link_is_open (&mux->link);
}

static void
channel_set_connected (Channel  *channel,
                       gboolean  connected)
{
  set_connected (channel->sync, connected);
}

static void
channel_clear_outgoing (Channel *channel)
{
  Mux *mux = channel->mux;
  Outgoing *outgoing;

  while ((outgoing = g_queue_pop_head (&channel->outgoing)) != NULL)
    {
      mux->queued_count -= outgoing->payloads->len - outgoing->next;
      mux->queued_size -= outgoing->size;
      outgoing_free (outgoing);
    }
  channel->dirty = FALSE;
  g_clear_pointer (&channel->dirty_request_id, g_free);
}

/* Drops queued messages older than the channel's request timeout. */
static void
channel_expire_outgoing (Channel *channel)
{
  Mux *mux = channel->mux;
  gint64 now = g_get_monotonic_time ();
  GList *l = channel->outgoing.head;

  while (l != NULL)
    {
      GList *next = l->next;
      Outgoing *outgoing = l->data;

      if (outgoing->deadline <= now)
        {
          mux->queued_count -= outgoing->payloads->len - outgoing->next;
          mux->queued_size -= outgoing->size;
          g_queue_delete_link (&channel->outgoing, l);
          outgoing_free (outgoing);
        }
      l = next;
    }
}

/* Sends payloads now; FALSE if the socket failed. */
static gboolean
channel_send_now (Channel   *channel,
                  GPtrArray *payloads,
                  guint      from)
{
  for (guint i = from; i < payloads->len; i++)
    {
      GBytes *inner = payloads->pdata[i];
      gsize len;
      const char *data = g_bytes_get_data (inner, &len);
      g_autoptr(GBytes) payload = ts_multiplex_wrap (channel->id, -1, data, len);

      if (g_bytes_get_size (payload) > ts_payload_budget_get_max_payload_size (channel->mux->budget))
        {
          mux_overflow (channel->mux, TS_PAYLOAD_OVERFLOW_CLIENT);
          return FALSE;
        }
      if (!mux_can_send (channel->mux) || !link_send (&channel->mux->link, payload))
        return FALSE;
    }
  return TRUE;
}

static GPtrArray *
channel_content_hashes (Channel *channel)
{
  TsMergeableStore *store = ts_synchronizer_get_store (TS_SYNCHRONIZER (channel->sync));
  guint32 th, vh;
  char body[32];
  int body_len;
  g_autofree char *remainder = NULL;
  gsize remainder_len;

  ts_mergeable_store_get_mergeable_content_hashes (store, &th, &vh);
  body_len = g_snprintf (body, sizeof body, "[%u,%u]", th, vh);
  remainder = ts_payload_encode_remainder (channel->dirty_request_id, -1,
                                           TS_MESSAGE_CONTENT_HASHES, body, body_len,
                                           &remainder_len);
  return ts_payload_fragment (NULL, 0, remainder, remainder_len, channel->sync->fragment_size,
                              NULL);
}

/* TinyBase's back-pressure rule: the socket's unsent bytes plus this
 * much would pass 16 MiB. */
static gboolean
mux_pressured (Mux   *mux,
               gsize  size)
{
  return link_buffered (&mux->link) + size > MAX_QUEUED_SIZE;
}

static void channel_flush (Channel *channel);

static gboolean
mux_flush_cb (gpointer data)
{
  Mux *mux = mux_ref (data);

  g_clear_pointer (&mux->flush, g_source_unref);
  for (guint i = 0; i < mux->order->len; i++)
    channel_flush (mux->order->pdata[i]);
  mux_unref (mux);
  return G_SOURCE_REMOVE;
}

/* Retries queued sends every 10 ms while the socket is back-pressured. */
static void
mux_schedule_flush (Mux *mux)
{
  if (mux->flush == NULL && !mux->destroyed)
    mux->flush = link_add_timeout (&mux->link, 10, mux_flush_cb, mux, "[tinysync] flush");
}

static gsize
payloads_size (GPtrArray *payloads)
{
  gsize size = 0;

  for (guint i = 0; i < payloads->len; i++)
    size += g_bytes_get_size (payloads->pdata[i]);
  return size;
}

/* Sends what was queued while the channel could not send, then one fresh
 * ContentHashes for the coalesced broadcasts. */
static void
channel_flush (Channel *channel)
{
  Mux *mux = channel->mux;
  Outgoing *outgoing;

  if (!mux_can_send (mux) || !channel->subscribed)
    return;
  channel_expire_outgoing (channel);
  while ((outgoing = g_queue_peek_head (&channel->outgoing)) != NULL)
    {
      gboolean ok;

      if (mux_pressured (mux, outgoing->size))
        {
          mux_schedule_flush (mux);
          return;
        }
      g_queue_pop_head (&channel->outgoing);
      ok = channel_send_now (channel, outgoing->payloads, outgoing->next);

      mux->queued_count -= outgoing->payloads->len - outgoing->next;
      mux->queued_size -= outgoing->size;
      outgoing_free (outgoing);
      if (!ok)
        return;
    }
  if (channel->dirty)
    {
      g_autoptr(GPtrArray) payloads = channel_content_hashes (channel);

      if (mux_pressured (mux, payloads_size (payloads)))
        {
          mux_schedule_flush (mux);
          return;
        }
      channel->dirty = FALSE;
      g_clear_pointer (&channel->dirty_request_id, g_free);
      channel_send_now (channel, payloads, 0);
    }
}

static void
channel_queue (Channel   *channel,
               GPtrArray *payloads)
{
  Mux *mux = channel->mux;
  Outgoing *outgoing;
  gsize size = payloads_size (payloads);

  channel_expire_outgoing (channel);
  if (mux->queued_count + payloads->len > MAX_QUEUED_PAYLOADS ||
      mux->queued_size + size > MAX_QUEUED_SIZE)
    {
      mux_overflow (mux, TS_PAYLOAD_OVERFLOW_CLIENT);
      return;
    }
  outgoing = g_new0 (Outgoing, 1);
  outgoing->payloads = g_ptr_array_ref (payloads);
  outgoing->size = size;
  outgoing->deadline = g_get_monotonic_time () +
    (gint64) (ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (channel->sync)) * G_USEC_PER_SEC);
  g_queue_push_tail (&channel->outgoing, outgoing);
  mux->queued_count += payloads->len;
  mux->queued_size += size;
}

static void
channel_send (Channel    *channel,
              const char *to,
              const char *json,
              gsize       len)
{
  Mux *mux = channel->mux;
  g_autoptr(GPtrArray) payloads = NULL;
  g_autofree char *request_id = NULL;
  int type = -1;
  gboolean coalesce;

  if (mux->destroyed || mux->failed)
    return;
  coalesce = to == NULL && peek_message (json, len, &request_id, &type) &&
             (type == TS_MESSAGE_CONTENT_HASHES || type == TS_MESSAGE_CONTENT_DIFF);
  payloads = ts_payload_fragment (to, -1, json, len, channel->sync->fragment_size, NULL);
  if (mux_can_send (mux) && channel->subscribed && g_queue_is_empty (&channel->outgoing) &&
      !channel->dirty && !mux_pressured (mux, payloads_size (payloads)))
    channel_send_now (channel, payloads, 0);
  else
    {
      if (coalesce)
        {
          channel->dirty = TRUE;
          g_free (channel->dirty_request_id);
          channel->dirty_request_id = g_steal_pointer (&request_id);
        }
      else
        channel_queue (channel, payloads);
      if (mux_can_send (mux) && channel->subscribed)
        mux_schedule_flush (mux);
    }
}

static void
channel_free (Channel *channel)
{
  channel_clear_outgoing (channel);
  clear_source (&channel->expiry);
  g_clear_pointer (&channel->decoder, ts_payload_decoder_free);
  g_free (channel->id);
  g_free (channel);
}

static void
channel_complete_creation (Channel      *channel,
                           const GError *error);

/* Removes a channel (destroy, or failed creation): Unsubscribe if it was
 * subscribed on this connection; the last channel closes the socket. */
static void
mux_remove_channel (Mux     *mux,
                    Channel *channel)
{
  if (mux->connected && !mux->failed && channel->subscribe_serial == mux->serial &&
      link_is_open (&mux->link))
    {
      g_autoptr(GBytes) payload =
        ts_multiplex_encode_control (NULL, 0, TS_MULTIPLEX_UNSUBSCRIBE, channel->id, -1);

      mux_send_raw (mux, payload);
    }
  g_ptr_array_remove (mux->order, channel);
  g_hash_table_remove (mux->channels, channel->id);   /* frees it */
  mux_shutdown_if_empty (mux);
}

static void
mux_shutdown_if_empty (Mux *mux)
{
  g_autoptr(GError) error = NULL;

  if (mux->destroyed || g_hash_table_size (mux->channels) > 0)
    return;
  mux->destroyed = TRUE;
  mux->connected = FALSE;
  if (mux->key != NULL)
    {
      G_LOCK (muxes);
      if (g_hash_table_lookup (muxes, mux->key) == mux)
        g_hash_table_remove (muxes, mux->key);
      G_UNLOCK (muxes);
    }
  error = g_error_new (TS_ERROR, TS_ERROR_CLOSED,
                       _("The multiplexed connection was destroyed (tinybase:8)"));
  mux_fail_controls (mux, error);
  clear_source (&mux->flush);
  link_stop (&mux->link);
}

/* Invalid input or an overflow on the socket (its budget has failed):
 * close with 1007 or 1013 first (so nothing a handler does turns it into
 * a plain close), then report to every channel and fail what is
 * pending. */
static void
mux_fail_socket (Mux             *mux,
                 TsPayloadStatus  status)
{
  g_autoptr(GError) error = status_error (status);

  mux->failed = TRUE;
  mux->connected = FALSE;
  mux_ref (mux);
  link_close (&mux->link, ts_payload_status_close_code (status), ts_payload_status_reason (status));
  for (guint i = 0; i < mux->order->len; i++)
    {
      Channel *channel = mux->order->pdata[i];

      channel->subscribed = FALSE;
      channel_clear_outgoing (channel);
      clear_source (&channel->expiry);
      if (channel->decoder != NULL)
        ts_payload_decoder_clear (channel->decoder);
    }
  mux_report (mux, error);
  mux_fail_controls (mux, error);
  for (guint i = 0; i < mux->order->len; i++)
    {
      Channel *channel = mux->order->pdata[i];

      channel_set_connected (channel, FALSE);
      ts_synchronizer_transport_closed (TS_SYNCHRONIZER (channel->sync));
    }
  mux_unref (mux);
}

/* An error found here rather than by the decoder. */
static void
mux_overflow (Mux             *mux,
              TsPayloadStatus  status)
{
  if (mux->budget != NULL && ts_payload_budget_fail (mux->budget, status))
    mux_fail_socket (mux, status);
}

static void
on_subscribed (Mux          *mux,
               guint         serial,
               const char   *channel_id,
               const GError *error)
{
  Channel *channel = g_hash_table_lookup (mux->channels, channel_id);

  if (channel == NULL || serial != channel->subscribe_serial || serial != mux->serial)
    {
      if (channel != NULL && error != NULL && channel->creation != NULL)
        channel_complete_creation (channel, error);
      return;
    }
  if (error != NULL)
    {
      if (!g_error_matches (error, TS_ERROR, TS_ERROR_CLOSED))
        report_error (channel->sync, error);
      if (channel->creation != NULL)
        channel_complete_creation (channel, error);
      return;
    }
  channel->subscribed = TRUE;
  channel_set_connected (channel, TRUE);
  channel_flush (channel);
  if (channel->creation != NULL)
    channel_complete_creation (channel, NULL);
  else
    resync (channel->sync);
}

static void
channel_subscribe (Channel *channel)
{
  Mux *mux = channel->mux;

  if (!mux_can_send (mux) || channel->subscribed || channel->subscribe_serial == mux->serial)
    return;
  channel->subscribe_serial = mux->serial;
  mux_send_control (mux, TS_MULTIPLEX_SUBSCRIBE, channel->id,
                    ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (channel->sync)),
                    on_subscribed);
}

/* Fails every channel still being created. */
static void
mux_fail_creations (Mux          *mux,
                    const GError *error)
{
  g_autoptr(GPtrArray) creating = g_ptr_array_new ();

  for (guint i = 0; i < mux->order->len; i++)
    if (((Channel *) mux->order->pdata[i])->creation != NULL)
      g_ptr_array_add (creating, g_strdup (((Channel *) mux->order->pdata[i])->id));
  for (guint i = 0; i < creating->len; i++)
    {
      Channel *channel = g_hash_table_lookup (mux->channels, creating->pdata[i]);

      if (channel != NULL && channel->creation != NULL)
        channel_complete_creation (channel, error);
      g_free (creating->pdata[i]);
    }
}

static void
on_hello (Mux          *mux,
          guint         serial,
          const char   *channel_id,
          const GError *error)
{
  if (serial != mux->serial || mux->destroyed)
    return;
  if (error != NULL)
    {
      mux_ref (mux);
      if (!g_error_matches (error, TS_ERROR, TS_ERROR_CLOSED))
        mux_report (mux, error);
      mux_fail_creations (mux, error);
      /* a server that does not answer Hello: try again later */
      if (!mux->destroyed && g_error_matches (error, TS_ERROR, TS_ERROR_CONTROL_TIMEOUT) &&
          mux->link.uri != NULL && mux->link.reconnect)
        link_close (&mux->link, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      mux_unref (mux);
      return;
    }
  mux->connected = TRUE;
  mux_ref (mux);
  for (guint i = 0; i < mux->order->len && mux->connected; i++)
    channel_subscribe (mux->order->pdata[i]);
  mux_unref (mux);
}

/* A fresh open connection: check the subprotocol, then Hello. */
static void
mux_start_connection (Mux *mux)
{
  const char *protocol = soup_websocket_connection_get_protocol (mux->link.connection);

  mux->serial++;
  mux->connected = FALSE;
  mux->hello_sent = FALSE;
  mux->failed = FALSE;
  g_clear_pointer (&mux->budget, ts_payload_budget_unref);
  mux->budget = ts_payload_budget_new (mux->max_payload, 0);
  for (guint i = 0; i < mux->order->len; i++)
    {
      Channel *channel = mux->order->pdata[i];

      clear_source (&channel->expiry);
      g_clear_pointer (&channel->decoder, ts_payload_decoder_free);
      channel->decoder = ts_payload_decoder_new (mux->budget,
                                                 ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (channel->sync)));
    }
  if (g_strcmp0 (protocol, "tinybase") != 0)
    {
      g_autoptr(GError) error =
        g_error_new (TS_ERROR, TS_ERROR_CLOSED,
                     _("The server did not accept the “tinybase” subprotocol (tinybase:5)"));

      mux_ref (mux);
      mux_report (mux, error);
      mux_fail_creations (mux, error);
      if (!mux->destroyed)
        link_close (&mux->link, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      mux_unref (mux);
      return;
    }
  mux->hello_sent = TRUE;
  mux_send_control (mux, TS_MULTIPLEX_HELLO, NULL, mux_timeout (mux), on_hello);
}

static void
mux_opened (gpointer owner,
            gboolean first)
{
  mux_start_connection (owner);
}

static void
mux_failed (gpointer      owner,
            gboolean      first,
            const GError *error)
{
  Mux *mux = owner;
  g_autoptr(GError) closed = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    closed = g_error_copy (error);
  else
    closed = g_error_new (TS_ERROR, TS_ERROR_CLOSED, _("Could not connect to %s: %s (tinybase:5)"),
                          mux->link.uri, error->message);
  mux_report (mux, closed);
  mux_fail_creations (mux, closed);
}

static void
mux_lost (gpointer owner)
{
  Mux *mux = owner;
  g_autoptr(GError) error = closed_error ();
  gboolean was_failed = mux->failed;

  mux->connected = FALSE;
  mux->hello_sent = FALSE;
  if (!was_failed)
    mux_report (mux, error);
  mux_fail_controls (mux, error);
  mux_fail_creations (mux, error);
  for (guint i = 0; i < mux->order->len; i++)
    {
      Channel *channel = mux->order->pdata[i];

      channel->subscribed = FALSE;
      clear_source (&channel->expiry);
      if (channel->decoder != NULL)
        ts_payload_decoder_clear (channel->decoder);
      channel_set_connected (channel, FALSE);
    }
  if (!was_failed)
    for (guint i = 0; i < mux->order->len; i++)
      ts_synchronizer_transport_closed (TS_SYNCHRONIZER (((Channel *) mux->order->pdata[i])->sync));
}

static void
mux_error (gpointer      owner,
           const GError *error)
{
  mux_report (owner, error);
}

static gboolean channel_expiry_cb (gpointer data);

static void
channel_schedule_expiry (Channel *channel)
{
  gint64 next;
  gint64 now;

  clear_source (&channel->expiry);
  if (channel->decoder == NULL)
    return;
  next = ts_payload_decoder_get_next_expiry (channel->decoder);
  if (next < 0)
    return;
  now = g_get_monotonic_time ();
  channel->expiry = g_timeout_source_new (next > now ? (guint) ((next - now + 999) / 1000) : 0);
  g_source_set_callback (channel->expiry, channel_expiry_cb, channel, NULL);
  g_source_set_static_name (channel->expiry, "[tinysync] fragment expiry");
  g_source_attach (channel->expiry, channel->mux->link.context);
}

static gboolean
channel_expiry_cb (gpointer data)
{
  Channel *channel = data;

  g_clear_pointer (&channel->expiry, g_source_unref);
  if (channel->decoder != NULL)
    {
      ts_payload_decoder_expire (channel->decoder, g_get_monotonic_time ());
      channel_schedule_expiry (channel);
    }
  return G_SOURCE_REMOVE;
}

static void
mux_channel_frame (Mux                    *mux,
                   const TsMultiplexFrame *frame)
{
  g_autofree char *id = g_strndup (frame->channel_id, frame->channel_id_len);
  Channel *channel = g_hash_table_lookup (mux->channels, id);
  TsPayloadMessage *message = NULL;
  TsPayloadStatus status = TS_PAYLOAD_OK;
  TsWsSynchronizer *sync;

  if (channel == NULL || channel->decoder == NULL)
    {
      mux_overflow (mux, TS_PAYLOAD_INVALID);
      return;
    }
  switch (ts_payload_decoder_decode (channel->decoder, frame->inner, frame->inner_len,
                                     g_get_monotonic_time (), &message, &status))
    {
    case TS_PAYLOAD_RESULT_MESSAGE:
      sync = g_object_ref (channel->sync);
      deliver (sync, message);
      g_object_unref (sync);
      break;
    case TS_PAYLOAD_RESULT_BUFFERED:
      if (channel->expiry == NULL)
        channel_schedule_expiry (channel);
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      mux_fail_socket (mux, status);
      break;
    default:
      break;
    }
}

static void
mux_message (gpointer owner,
             int      type,
             GBytes  *data)
{
  Mux *mux = owner;
  g_autofree char *owned = NULL;
  TsMultiplexFrame frame;
  TsPayloadStatus status = TS_PAYLOAD_OK;
  const char *text;
  gsize len;

  if (mux->budget == NULL || mux->destroyed)
    return;
  text = frame_text (type, data, &len, &owned);
  memset (&frame, 0, sizeof frame);
  switch (ts_multiplex_decode (mux->budget, text, len, &frame, &status))
    {
    case TS_PAYLOAD_RESULT_CONTROL:
      if (frame.control != TS_MULTIPLEX_HELLO && frame.channel_id_too_long)
        mux_overflow (mux, TS_PAYLOAD_OVERFLOW_CHANNELS);
      else if (frame.request_id != NULL)
        {
          g_autofree char *request_id = g_strndup (frame.request_id, frame.request_id_len);
          Control *control = g_hash_table_lookup (mux->controls, request_id);

          if (control != NULL &&
              ts_multiplex_echo_matches (&frame, control->request_id, strlen (control->request_id),
                                         control->control, control->channel_id,
                                         control->channel_id ? strlen (control->channel_id) : 0))
            {
              g_autofree char *channel_id = g_steal_pointer (&control->channel_id);
              ControlDone done = control->done;
              guint serial = control->serial;

              g_hash_table_remove (mux->controls, request_id);
              done (mux, serial, channel_id, NULL);
            }
        }
      break;
    case TS_PAYLOAD_RESULT_CHANNEL:
      mux_channel_frame (mux, &frame);
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      mux_fail_socket (mux, status);
      break;
    default:
      break;
    }
  ts_multiplex_frame_clear (&frame);
}

static void
mux_too_big (gpointer owner)
{
  mux_overflow (owner, TS_PAYLOAD_OVERFLOW_SOCKET);
}

static const LinkFuncs mux_link_funcs = {
  mux_link_ref, mux_link_unref, mux_opened, mux_failed, mux_message, mux_lost, mux_error,
  mux_too_big,
};

static Mux *
mux_new (void)
{
  Mux *mux = g_new0 (Mux, 1);

  mux->ref_count = 1;
  link_init (&mux->link, &mux_link_funcs, mux);
  mux->link.protocol = "tinybase";
  mux->channels = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify) channel_free);
  mux->order = g_ptr_array_new ();
  mux->controls = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, control_free);
  mux->budget = ts_payload_budget_new (0, 0);
  return mux;
}

/* The shared connection of URI channel synchronizers. */
static Mux *
mux_for_uri (const char   *uri,
             GTlsDatabase *tls_database,
             gboolean     *created)
{
  /* Channels share a connection only if they trust the same database. */
  g_autofree char *key = g_strdup_printf ("%p %p %s", (void *) g_main_context_get_thread_default (),
                                          (void *) tls_database, uri);
  Mux *mux;

  G_LOCK (muxes);
  if (muxes == NULL)
    muxes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  mux = g_hash_table_lookup (muxes, key);
  if (mux != NULL && !mux->destroyed)
    {
      mux_ref (mux);
      G_UNLOCK (muxes);
      *created = FALSE;
      return mux;
    }
  mux = mux_new ();
  mux->key = g_strdup (key);
  g_hash_table_replace (muxes, g_steal_pointer (&key), mux);
  G_UNLOCK (muxes);
  mux->link.uri = g_strdup (uri);
  if (tls_database != NULL)
    mux->link.tls_database = g_object_ref (tls_database);
  *created = TRUE;
  return mux;
}

static Mux *
mux_for_connection (SoupWebsocketConnection *conn,
                    gboolean                *created)
{
  Mux *mux = g_object_get_qdata (G_OBJECT (conn), mux_quark);

  if (mux != NULL && !mux->destroyed)
    {
      *created = FALSE;
      return mux_ref (mux);
    }
  mux = mux_new ();
  mux->caller_connection = g_object_ref (conn);
  g_object_set_qdata (G_OBJECT (conn), mux_quark, mux);
  *created = TRUE;
  return mux;
}

/* ---- Channel creation ---------------------------------------------------- */

static void
channel_complete_creation (Channel      *channel,
                           const GError *error)
{
  GTask *task = g_steal_pointer (&channel->creation);
  TsWsSynchronizer *self = g_task_get_source_object (task);

  if (channel->cancel_id != 0)
    g_cancellable_disconnect (g_task_get_cancellable (task), channel->cancel_id);
  channel->cancel_id = 0;

  if (error == NULL)
    {
      self->initialized = TRUE;
      g_task_return_boolean (task, TRUE);
    }
  else
    {
      Mux *mux = channel->mux;

      mux_ref (mux);
      mux_remove_channel (mux, channel);
      mux_unref (mux);
      g_clear_pointer (&self->mux, mux_unref);
      g_task_return_error (task, g_error_copy (error));
    }
  g_object_unref (task);
}

static Channel *
self_channel (TsWsSynchronizer *self)
{
  if (self->mux == NULL || self->channel_id == NULL)
    return NULL;
  return g_hash_table_lookup (self->mux->channels, self->channel_id);
}

static gboolean
creation_cancelled_cb (gpointer data)
{
  GTask *task = data;
  TsWsSynchronizer *self = g_task_get_source_object (task);
  Channel *channel = self_channel (self);

  if (channel != NULL && channel->sync == self && channel->creation == task)
    {
      g_autoptr(GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                             _("Operation was cancelled"));

      channel_complete_creation (channel, error);
    }
  return G_SOURCE_REMOVE;
}

/* Runs wherever the cancellable is cancelled: finish from the main
 * context instead. */
static void
on_creation_cancelled (GCancellable *cancellable,
                       gpointer      data)
{
  GTask *task = data;
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, creation_cancelled_cb, g_object_ref (task), g_object_unref);
  g_source_set_static_name (source, "[tinysync] creation cancelled");
  g_source_attach (source, g_task_get_context (task));
  g_source_unref (source);
}

static void
channel_init_async (TsWsSynchronizer *self,
                    GTask            *task)
{
  Mux *mux;
  Channel *channel;
  gboolean created = FALSE;
  gsize id_len = strlen (self->channel_id);

  if (ts_channel_id_check (self->channel_id, id_len) != TS_CHANNEL_ID_VALID)
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_INVALID_CHANNEL,
                               _("Invalid channel id “%s” (tinybase:6:%s)"),
                               self->channel_id, self->channel_id);
      g_object_unref (task);
      return;
    }

  if (self->given_connection != NULL)
    {
      if (g_object_get_qdata (G_OBJECT (self->given_connection), legacy_quark) != NULL)
        {
          g_task_return_new_error (task, TS_ERROR, TS_ERROR_FAILED,
                                   _("The connection is used by a legacy synchronizer (tinybase:9)"));
          g_object_unref (task);
          return;
        }
      if (!connection_is_open (self->given_connection))
        {
          g_task_return_new_error (task, TS_ERROR, TS_ERROR_CLOSED,
                                   _("The connection is not open (tinybase:5)"));
          g_object_unref (task);
          return;
        }
      mux = mux_for_connection (self->given_connection, &created);
    }
  else
    mux = mux_for_uri (self->uri, self->tls_database, &created);

  if (g_hash_table_contains (mux->channels, self->channel_id))
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_INVALID_CHANNEL,
                               _("Channel “%s” is already used on this connection (tinybase:7:%s)"),
                               self->channel_id, self->channel_id);
      g_object_unref (task);
      mux_unref (mux);
      return;
    }
  if (g_hash_table_size (mux->channels) >= TS_PAYLOAD_MAX_CHANNELS)
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_OVERFLOW,
                               _("Too many channels on one connection (tinybase:15:channels)"));
      g_object_unref (task);
      mux_unref (mux);
      return;
    }
  if (!created && mux->link.uri != NULL && mux->link.connection == NULL &&
      mux->link.attempt == NULL)
    {
      /* waiting to reconnect */
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_CLOSED,
                               _("The connection is not open (tinybase:5)"));
      g_object_unref (task);
      mux_unref (mux);
      return;
    }

  self->mux = mux;
  channel = g_new0 (Channel, 1);
  channel->mux = mux;
  channel->id = g_strdup (self->channel_id);
  channel->sync = self;
  channel->creation = task;
  g_queue_init (&channel->outgoing);
  channel->decoder = ts_payload_decoder_new (mux->budget,
                                             ts_synchronizer_get_request_timeout (TS_SYNCHRONIZER (self)));
  g_hash_table_insert (mux->channels, channel->id, channel);
  g_ptr_array_add (mux->order, channel);
  if (g_task_get_cancellable (task) != NULL)
    channel->cancel_id = g_cancellable_connect (g_task_get_cancellable (task),
                                                G_CALLBACK (on_creation_cancelled), task, NULL);

  if (created)
    {
      mux->link.reconnect = self->reconnect;
      mux->link.keepalive = self->keepalive;
      mux->max_payload = self->max_message_size;
      link_set_max_incoming (&mux->link, incoming_limit (self->max_message_size));
      if (mux->caller_connection != NULL)
        {
          link_attach (&mux->link, g_object_ref (mux->caller_connection), NULL);
          mux->link.established = TRUE;
          mux_start_connection (mux);
        }
      else
        link_connect (&mux->link, NULL);
    }
  else if (mux->connected)
    channel_subscribe (channel);
  /* else: the Hello in flight (or the connection being opened) subscribes
   * every channel when it is answered */
}

/* ======================================================================= */
/* GObject                                                                  */
/* ======================================================================= */

static void
ts_ws_synchronizer_release (TsWsSynchronizer *self)
{
  if (self->released)
    return;
  self->released = TRUE;
  if (self->mux != NULL)
    {
      Mux *mux = self->mux;
      Channel *channel = self_channel (self);

      if (channel != NULL && channel->sync == self)
        {
          mux_ref (mux);
          mux_remove_channel (mux, channel);
          mux_unref (mux);
        }
      g_clear_pointer (&self->mux, mux_unref);
    }
  else
    {
      if (self->link.connection != NULL && self->link.uri == NULL)
        g_object_set_qdata (G_OBJECT (self->link.connection), legacy_quark, NULL);
      link_stop (&self->link);
      clear_source (&self->expiry);
    }
  set_connected (self, FALSE);
}

static void
ts_ws_synchronizer_dispose (GObject *object)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (object);

  ts_ws_synchronizer_release (self);
  G_OBJECT_CLASS (ts_ws_synchronizer_parent_class)->dispose (object);
}

static void
ts_ws_synchronizer_finalize (GObject *object)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (object);

  link_clear (&self->link);
  clear_source (&self->expiry);
  g_clear_pointer (&self->decoder, ts_payload_decoder_free);
  g_clear_pointer (&self->budget, ts_payload_budget_unref);
  g_clear_object (&self->given_connection);
  g_clear_object (&self->tls_database);
  g_free (self->uri);
  g_free (self->channel_id);

  G_OBJECT_CLASS (ts_ws_synchronizer_parent_class)->finalize (object);
}

static void
ts_ws_synchronizer_constructed (GObject *object)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (object);

  G_OBJECT_CLASS (ts_ws_synchronizer_parent_class)->constructed (object);

  link_set_max_incoming (&self->link, incoming_limit (self->max_message_size));
  self->link.reconnect = self->reconnect;
  self->link.keepalive = self->keepalive;

  /* A legacy synchronizer on the caller's connection works at once. */
  if (self->given_connection != NULL && self->channel_id == NULL)
    {
      GObject *conn = G_OBJECT (self->given_connection);

      self->initialized = TRUE;
      g_object_set_qdata (conn, legacy_quark, GINT_TO_POINTER (1));
      if (connection_is_open (self->given_connection))
        {
          link_attach (&self->link, g_object_ref (self->given_connection), NULL);
          self->link.established = TRUE;
          legacy_reset_decoder (self);
          set_connected (self, TRUE);
        }
    }
}

static void
ts_ws_synchronizer_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (object);

  switch (prop_id)
    {
    case PROP_URI:
      g_value_set_string (value, self->uri);
      break;
    case PROP_CHANNEL_ID:
      g_value_set_string (value, self->channel_id);
      break;
    case PROP_CONNECTION:
      g_value_set_object (value, ts_ws_synchronizer_get_connection (self));
      break;
    case PROP_FRAGMENT_SIZE:
      g_value_set_uint (value, self->fragment_size);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint (value, self->max_message_size);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean (value, self->reconnect);
      break;
    case PROP_KEEPALIVE_INTERVAL:
      g_value_set_uint (value, self->keepalive);
      break;
    case PROP_CONNECTED:
      g_value_set_boolean (value, self->connected);
      break;
    case PROP_TLS_DATABASE:
      g_value_set_object (value, self->tls_database);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_ws_synchronizer_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (object);

  switch (prop_id)
    {
    case PROP_URI:
      self->uri = g_value_dup_string (value);
      break;
    case PROP_CHANNEL_ID:
      self->channel_id = g_value_dup_string (value);
      break;
    case PROP_CONNECTION:
      self->given_connection = g_value_dup_object (value);
      break;
    case PROP_FRAGMENT_SIZE:
      ts_ws_synchronizer_set_fragment_size (self, g_value_get_uint (value));
      break;
    case PROP_MAX_MESSAGE_SIZE:
      ts_ws_synchronizer_set_max_message_size (self, g_value_get_uint (value));
      break;
    case PROP_RECONNECT:
      ts_ws_synchronizer_set_reconnect (self, g_value_get_boolean (value));
      break;
    case PROP_KEEPALIVE_INTERVAL:
      ts_ws_synchronizer_set_keepalive_interval (self, g_value_get_uint (value));
      break;
    case PROP_TLS_DATABASE:
      self->tls_database = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_ws_synchronizer_send (TsSynchronizer *sync,
                         const char     *to_client_id,
                         const char     *message_json,
                         gsize           length)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (sync);
  Channel *channel;

  if (self->released)
    return;
  if (self->channel_id != NULL)
    {
      channel = self_channel (self);
      if (channel != NULL && channel->sync == self)
        channel_send (channel, to_client_id, message_json, length);
      return;
    }
  legacy_send (self, to_client_id, message_json, length);
}

static void
ts_ws_synchronizer_destroy (TsSynchronizer *sync)
{
  ts_ws_synchronizer_release (TS_WS_SYNCHRONIZER (sync));
}

static void
ts_ws_synchronizer_class_init (TsWsSynchronizerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  TsSynchronizerClass *sync_class = TS_SYNCHRONIZER_CLASS (klass);

  object_class->dispose = ts_ws_synchronizer_dispose;
  object_class->finalize = ts_ws_synchronizer_finalize;
  object_class->constructed = ts_ws_synchronizer_constructed;
  object_class->get_property = ts_ws_synchronizer_get_property;
  object_class->set_property = ts_ws_synchronizer_set_property;
  sync_class->send = ts_ws_synchronizer_send;
  sync_class->destroy = ts_ws_synchronizer_destroy;

  legacy_quark = g_quark_from_static_string ("ts-ws-synchronizer-legacy");
  mux_quark = g_quark_from_static_string ("ts-ws-synchronizer-mux");

  /**
   * TsWsSynchronizer:uri: (getter get_uri)
   *
   * The `ws://` or `wss://` URI the synchronizer connects to, or %NULL
   * for a synchronizer on a caller's connection. Its path is the room.
   *
   * Since: 1.0
   */
  properties[PROP_URI] =
    g_param_spec_string ("uri", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:channel-id: (getter get_channel_id)
   *
   * The channel of a multiplexed synchronizer, or %NULL in legacy mode.
   *
   * Since: 1.0
   */
  properties[PROP_CHANNEL_ID] =
    g_param_spec_string ("channel-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:connection: (getter get_connection)
   *
   * The WebSocket connection in use, %NULL while there is none. At
   * construction: the caller's open connection to use instead of a
   * [property@Tinysync.WsSynchronizer:uri].
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTION] =
    g_param_spec_object ("connection", NULL, NULL, SOUP_TYPE_WEBSOCKET_CONNECTION,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:fragment-size: (getter get_fragment_size) (setter set_fragment_size)
   *
   * When not 0, outgoing messages larger than this many bytes are split
   * into fragments (TinyBase's `fragmentSize`, PROTOCOL.md §12.3). Every
   * receiver reassembles fragments, so this only needs to be set where
   * frames must stay small.
   *
   * Since: 1.0
   */
  properties[PROP_FRAGMENT_SIZE] =
    g_param_spec_uint ("fragment-size", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:max-message-size: (getter get_max_message_size) (setter set_max_message_size)
   *
   * The largest payload, in bytes, sent or accepted (TinyBase: 16 MiB).
   * A larger incoming one closes the socket with 1013
   * `tinybase:15:socket`; sending a larger one does the same. Changes
   * apply to the next connection. Channel synchronizers sharing a socket
   * use the value the first of them had when the socket was set up.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint ("max-message-size", NULL, NULL, 1024, G_MAXINT / 2,
                       DEFAULT_MAX_MESSAGE_SIZE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:reconnect: (getter get_reconnect) (setter set_reconnect)
   *
   * Whether a connection opened from the
   * [property@Tinysync.WsSynchronizer:uri] is reopened when it is lost,
   * with exponential backoff (from a quarter of a second up to 30
   * seconds), after which a syncing synchronizer syncs again. TinyBase's
   * synchronizer never reconnects. A caller's connection is never
   * reopened.
   *
   * Since: 1.0
   */
  properties[PROP_RECONNECT] =
    g_param_spec_boolean ("reconnect", NULL, NULL, TRUE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY |
                          G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:keepalive-interval: (getter get_keepalive_interval) (setter set_keepalive_interval)
   *
   * Seconds between keepalive pings on a connection opened from the
   * [property@Tinysync.WsSynchronizer:uri], or 0 for none. A server that
   * answers nothing for twice this long is considered gone and the
   * connection is given up (and reopened when
   * [property@Tinysync.WsSynchronizer:reconnect] is set).
   *
   * Since: 1.0
   */
  properties[PROP_KEEPALIVE_INTERVAL] =
    g_param_spec_uint ("keepalive-interval", NULL, NULL, 0, 86400, DEFAULT_KEEPALIVE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:connected: (getter is_connected)
   *
   * Whether the synchronizer can currently reach its room: its
   * connection is open (and, in channel mode, its channel subscribed).
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTED] =
    g_param_spec_boolean ("connected", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsSynchronizer:tls-database:
   *
   * The certificates a `wss://` server's certificate is checked against,
   * instead of the system's trust store (the default database of the
   * [iface@Gio.TlsBackend]): set it to a [iface@Gio.TlsFileDatabase] of
   * a private CA or of a self-signed server certificate. The check is as
   * strict as ever; there is no way to turn it off. Set it at
   * construction, with g_async_initable_new_async():
   *
   * ```c
   * g_async_initable_new_async (TS_TYPE_WS_SYNCHRONIZER, G_PRIORITY_DEFAULT,
   *                             NULL, on_ready, data,
   *                             "store", store,
   *                             "uri", "wss://sync.example:8047/room",
   *                             "tls-database", database,
   *                             NULL);
   * ```
   *
   * Channel synchronizers share a connection only with those of the same
   * URI and database.
   *
   * Since: 1.0
   */
  properties[PROP_TLS_DATABASE] =
    g_param_spec_object ("tls-database", NULL, NULL, G_TYPE_TLS_DATABASE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_ws_synchronizer_init (TsWsSynchronizer *self)
{
  self->max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
  self->reconnect = TRUE;
  self->keepalive = DEFAULT_KEEPALIVE;
  link_init (&self->link, &legacy_link_funcs, self);
}

/* ---- GAsyncInitable ------------------------------------------------------ */

static void
ts_ws_synchronizer_init_async (GAsyncInitable      *initable,
                               int                  io_priority,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  TsWsSynchronizer *self = TS_WS_SYNCHRONIZER (initable);
  GTask *task;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, ts_ws_synchronizer_init_async);
  g_task_set_name (task, "[tinysync] ts_ws_synchronizer_init_async");

  if (self->initialized)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  if (self->init_task != NULL || self->mux != NULL || self->released)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING,
                               _("The synchronizer is already being initialized"));
      g_object_unref (task);
      return;
    }
  if (self->channel_id != NULL && (self->uri != NULL || self->given_connection != NULL))
    {
      channel_init_async (self, task);
      return;
    }
  if (self->uri == NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("A WebSocket synchronizer needs a URI or a connection"));
      g_object_unref (task);
      return;
    }
  self->init_task = task;
  g_set_object (&self->link.tls_database, self->tls_database);
  link_start (&self->link, self->uri, NULL, cancellable);
}

static gboolean
ts_ws_synchronizer_init_finish (GAsyncInitable  *initable,
                                GAsyncResult    *result,
                                GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
ts_ws_synchronizer_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = ts_ws_synchronizer_init_async;
  iface->init_finish = ts_ws_synchronizer_init_finish;
}

/* ======================================================================= */
/* Public API                                                               */
/* ======================================================================= */

static double
timeout_or_default (double seconds)
{
  return seconds > 0 ? seconds : 1.0;
}

/**
 * ts_ws_synchronizer_new_async:
 * @store: the store to synchronize
 * @uri: a `ws://` or `wss://` URI; its path is the room
 * @request_timeout_seconds: how long requests wait for their response
 *   (TinyBase's `requestTimeoutSeconds`), or 0 for 1 second
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called once connected or failed
 * @user_data: data for @callback
 *
 * Opens a WebSocket to @uri and creates a legacy-mode synchronizer on it,
 * as TinyBase's `await createWsSynchronizer (store, new WebSocket (uri))`.
 * The synchronizer is returned once the connection is open; call
 * [method@Tinysync.Synchronizer.start_sync_async] to start syncing.
 *
 * To set properties such as
 * [property@Tinysync.WsSynchronizer:fragment-size] before the connection
 * opens, use g_async_initable_new_async() with %TS_TYPE_WS_SYNCHRONIZER.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_new_async (TsMergeableStore    *store,
                              const char          *uri,
                              double               request_timeout_seconds,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (store));
  g_return_if_fail (uri != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (TS_TYPE_WS_SYNCHRONIZER, G_PRIORITY_DEFAULT, cancellable,
                              callback, user_data,
                              "store", store,
                              "uri", uri,
                              "request-timeout", timeout_or_default (request_timeout_seconds),
                              NULL);
}

/**
 * ts_ws_synchronizer_new_finish:
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [func@Tinysync.WsSynchronizer.new_async] or
 * [func@Tinysync.WsSynchronizer.new_channel_async]. A connection that
 * could not be opened gives %TS_ERROR_CLOSED (TinyBase's `tinybase:5`);
 * an invalid or duplicate channel id %TS_ERROR_INVALID_CHANNEL; a server
 * that did not acknowledge the channel %TS_ERROR_CONTROL_TIMEOUT.
 *
 * Returns: (transfer full): the synchronizer, or %NULL on error
 *
 * Since: 1.0
 */
TsWsSynchronizer *
ts_ws_synchronizer_new_finish (GAsyncResult  *result,
                               GError       **error)
{
  g_autoptr(GObject) source = NULL;
  GObject *object;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);

  source = g_async_result_get_source_object (result);
  object = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);
  return object != NULL ? TS_WS_SYNCHRONIZER (object) : NULL;
}

/**
 * ts_ws_synchronizer_new_for_connection:
 * @store: the store to synchronize
 * @connection: an open client WebSocket connection, opened without a
 *   subprotocol; its path is the room
 * @request_timeout_seconds: how long requests wait for their response,
 *   or 0 for 1 second
 *
 * Creates a legacy-mode synchronizer on a connection the caller opened.
 * It is never reopened: once it closes, the synchronizer stays
 * disconnected (create a new one on a new connection; its
 * [method@Tinysync.Synchronizer.start_sync_async] catches up).
 * [method@Tinysync.Synchronizer.destroy] closes it.
 *
 * Returns: (transfer full): the synchronizer
 *
 * Since: 1.0
 */
TsWsSynchronizer *
ts_ws_synchronizer_new_for_connection (TsMergeableStore        *store,
                                       SoupWebsocketConnection *connection,
                                       double                   request_timeout_seconds)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);
  g_return_val_if_fail (SOUP_IS_WEBSOCKET_CONNECTION (connection), NULL);
  g_return_val_if_fail (g_object_get_qdata (G_OBJECT (connection), mux_quark) == NULL, NULL);

  return g_object_new (TS_TYPE_WS_SYNCHRONIZER,
                       "store", store,
                       "connection", connection,
                       "request-timeout", timeout_or_default (request_timeout_seconds),
                       NULL);
}

/**
 * ts_ws_synchronizer_new_channel_async:
 * @store: the store to synchronize
 * @uri: a `ws://` or `wss://` URI; its path is the base of the rooms
 * @channel_id: the channel: non-empty, at most 1024 bytes, without
 *   `\n`, `\r`, `?`, `#`, made of non-empty `/`-separated segments other
 *   than `.` and `..`
 * @request_timeout_seconds: how long requests wait for their response,
 *   or 0 for 1 second
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called once subscribed or failed
 * @user_data: data for @callback
 *
 * Creates a channel-mode synchronizer, as TinyBase's
 * `createWsSynchronizer (store, webSocket, channelId)`: channel
 * synchronizers created for the same @uri share one connection, opened
 * with the `tinybase` subprotocol; each channel is the room
 * `path/channelId` on the server. Finish with
 * [ctor@Tinysync.WsSynchronizer.new_finish]; the synchronizer is returned
 * once the server acknowledged the channel.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_new_channel_async (TsMergeableStore    *store,
                                      const char          *uri,
                                      const char          *channel_id,
                                      double               request_timeout_seconds,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (store));
  g_return_if_fail (uri != NULL);
  g_return_if_fail (channel_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (TS_TYPE_WS_SYNCHRONIZER, G_PRIORITY_DEFAULT, cancellable,
                              callback, user_data,
                              "store", store,
                              "uri", uri,
                              "channel-id", channel_id,
                              "request-timeout", timeout_or_default (request_timeout_seconds),
                              NULL);
}

/**
 * ts_ws_synchronizer_new_channel_for_connection_async:
 * @store: the store to synchronize
 * @connection: an open client WebSocket connection that negotiated the
 *   `tinybase` subprotocol
 * @channel_id: the channel (see [func@Tinysync.WsSynchronizer.new_channel_async])
 * @request_timeout_seconds: how long requests wait for their response,
 *   or 0 for 1 second
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called once subscribed or failed
 * @user_data: data for @callback
 *
 * Creates a channel-mode synchronizer on a connection the caller opened;
 * every channel synchronizer created on the same @connection shares it,
 * and destroying the last one closes it. Finish with
 * [ctor@Tinysync.WsSynchronizer.new_finish].
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_new_channel_for_connection_async (TsMergeableStore        *store,
                                                     SoupWebsocketConnection *connection,
                                                     const char              *channel_id,
                                                     double                   request_timeout_seconds,
                                                     GCancellable            *cancellable,
                                                     GAsyncReadyCallback      callback,
                                                     gpointer                 user_data)
{
  g_return_if_fail (TS_IS_MERGEABLE_STORE (store));
  g_return_if_fail (SOUP_IS_WEBSOCKET_CONNECTION (connection));
  g_return_if_fail (channel_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (TS_TYPE_WS_SYNCHRONIZER, G_PRIORITY_DEFAULT, cancellable,
                              callback, user_data,
                              "store", store,
                              "connection", connection,
                              "channel-id", channel_id,
                              "request-timeout", timeout_or_default (request_timeout_seconds),
                              NULL);
}

/**
 * ts_ws_synchronizer_get_uri: (get-property uri)
 * @self: a synchronizer
 *
 * Gets the URI the synchronizer connects to.
 *
 * Returns: (nullable): the URI, or %NULL for a caller's connection
 *
 * Since: 1.0
 */
const char *
ts_ws_synchronizer_get_uri (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), NULL);

  return self->uri;
}

/**
 * ts_ws_synchronizer_get_channel_id: (get-property channel-id)
 * @self: a synchronizer
 *
 * Gets the channel of a channel-mode synchronizer.
 *
 * Returns: (nullable): the channel id, or %NULL in legacy mode
 *
 * Since: 1.0
 */
const char *
ts_ws_synchronizer_get_channel_id (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), NULL);

  return self->channel_id;
}

/**
 * ts_ws_synchronizer_get_connection: (get-property connection)
 * @self: a synchronizer
 *
 * Gets the WebSocket connection in use (shared with other channels in
 * channel mode).
 *
 * Returns: (transfer none) (nullable): the connection, or %NULL while
 *   there is none
 *
 * Since: 1.0
 */
SoupWebsocketConnection *
ts_ws_synchronizer_get_connection (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), NULL);

  if (self->mux != NULL)
    return self->mux->link.connection;
  return self->link.connection;
}

/**
 * ts_ws_synchronizer_is_connected: (get-property connected)
 * @self: a synchronizer
 *
 * Whether the synchronizer can currently reach its room.
 *
 * Returns: %TRUE while connected
 *
 * Since: 1.0
 */
gboolean
ts_ws_synchronizer_is_connected (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), FALSE);

  return self->connected;
}

/**
 * ts_ws_synchronizer_get_fragment_size: (get-property fragment-size)
 * @self: a synchronizer
 *
 * Gets the fragment size.
 *
 * Returns: the size in bytes, 0 when messages are not fragmented
 *
 * Since: 1.0
 */
guint
ts_ws_synchronizer_get_fragment_size (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), 0);

  return self->fragment_size;
}

/**
 * ts_ws_synchronizer_set_fragment_size: (set-property fragment-size)
 * @self: a synchronizer
 * @fragment_size: the size in bytes, 0 to send every message whole
 *
 * Sets the size above which outgoing messages are fragmented.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_set_fragment_size (TsWsSynchronizer *self,
                                      guint             fragment_size)
{
  g_return_if_fail (TS_IS_WS_SYNCHRONIZER (self));

  if (self->fragment_size == fragment_size)
    return;
  self->fragment_size = fragment_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FRAGMENT_SIZE]);
}

/**
 * ts_ws_synchronizer_get_max_message_size: (get-property max-message-size)
 * @self: a synchronizer
 *
 * Gets the largest payload sent or accepted.
 *
 * Returns: the size in bytes
 *
 * Since: 1.0
 */
guint
ts_ws_synchronizer_get_max_message_size (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), DEFAULT_MAX_MESSAGE_SIZE);

  return self->max_message_size;
}

/**
 * ts_ws_synchronizer_set_max_message_size: (set-property max-message-size)
 * @self: a synchronizer
 * @max_message_size: the size in bytes (at least 1024)
 *
 * Sets the largest payload sent or accepted. The WebSocket frame limit of
 * the connection is raised (or lowered) to match.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_set_max_message_size (TsWsSynchronizer *self,
                                         guint             max_message_size)
{
  g_return_if_fail (TS_IS_WS_SYNCHRONIZER (self));
  g_return_if_fail (max_message_size >= 1024);

  if (self->max_message_size == max_message_size)
    return;
  self->max_message_size = max_message_size;
  if (self->mux == NULL)
    {
      link_set_max_incoming (&self->link, incoming_limit (max_message_size));
      if (self->decoder != NULL && ts_payload_decoder_get_n_buffers (self->decoder) == 0 &&
          ts_payload_budget_get_status (self->budget) == TS_PAYLOAD_OK)
        legacy_reset_decoder (self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_MESSAGE_SIZE]);
}

/**
 * ts_ws_synchronizer_get_reconnect: (get-property reconnect)
 * @self: a synchronizer
 *
 * Whether a lost connection is reopened.
 *
 * Returns: %TRUE if it is
 *
 * Since: 1.0
 */
gboolean
ts_ws_synchronizer_get_reconnect (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), FALSE);

  return self->reconnect;
}

/**
 * ts_ws_synchronizer_set_reconnect: (set-property reconnect)
 * @self: a synchronizer
 * @reconnect: whether to reopen a lost connection
 *
 * Sets whether a connection opened from the URI is reopened when lost. In
 * channel mode this applies to the shared connection.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_set_reconnect (TsWsSynchronizer *self,
                                  gboolean          reconnect)
{
  g_return_if_fail (TS_IS_WS_SYNCHRONIZER (self));

  reconnect = !!reconnect;
  if (self->mux != NULL)
    self->mux->link.reconnect = reconnect;
  else
    {
      self->link.reconnect = reconnect;
      if (!reconnect)
        clear_source (&self->link.retry);
    }
  if (self->reconnect == reconnect)
    return;
  self->reconnect = reconnect;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RECONNECT]);
}

/**
 * ts_ws_synchronizer_get_keepalive_interval: (get-property keepalive-interval)
 * @self: a synchronizer
 *
 * Gets the keepalive interval.
 *
 * Returns: seconds, 0 when off
 *
 * Since: 1.0
 */
guint
ts_ws_synchronizer_get_keepalive_interval (TsWsSynchronizer *self)
{
  g_return_val_if_fail (TS_IS_WS_SYNCHRONIZER (self), 0);

  return self->keepalive;
}

/**
 * ts_ws_synchronizer_set_keepalive_interval: (set-property keepalive-interval)
 * @self: a synchronizer
 * @seconds: seconds between pings, 0 for none
 *
 * Sets the keepalive interval of a connection opened from the URI. In
 * channel mode this applies to the shared connection.
 *
 * Since: 1.0
 */
void
ts_ws_synchronizer_set_keepalive_interval (TsWsSynchronizer *self,
                                           guint             seconds)
{
  g_return_if_fail (TS_IS_WS_SYNCHRONIZER (self));

  if (self->mux != NULL)
    link_set_keepalive (&self->mux->link, seconds);
  else
    link_set_keepalive (&self->link, seconds);
  if (self->keepalive == seconds)
    return;
  self->keepalive = seconds;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_KEEPALIVE_INTERVAL]);
}
