/* ts-ws-server.c: a TinyBase-compatible WebSocket relay server
 *
 * SPDX-License-Identifier: MIT
 *
 * PROTOCOL.md sections 12 to 14 (WsServer without server stores).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ts-error.h"
#include "ts-payload-private.h"
#include "ts-private.h"
#include "ts-room-peer-private.h"
#include "ts-sqlite-persister.h"
#include "ts-ws-io-private.h"
#include "ts-ws-server.h"
#include "ts-ws-server-private.h"

/**
 * TsWsServer:
 *
 * Relays TinyBase synchronizer traffic between WebSocket clients, like
 * TinyBase's `createWsServer` without server-side stores.
 *
 * A `TsWsServer` answers WebSocket upgrades on every path of a
 * [class@Soup.Server] that the caller creates and listens on. The server
 * must be created with [property@Soup.Server:raw-paths] set to %TRUE (the
 * property is construct-only), so that rooms are named from the request
 * target exactly as TinyBase names them:
 *
 * ```c
 * g_autoptr(SoupServer) soup = soup_server_new ("raw-paths", TRUE, NULL);
 * g_autoptr(TsWsServer) server = ts_ws_server_new (soup);
 *
 * if (!soup_server_listen_local (soup, 8047, SOUP_SERVER_LISTEN_IPV4_ONLY, &error))
 *   return FALSE;
 * ```
 *
 * ## Rooms and clients
 *
 * A connection joins the **room** named by its path id: the raw request
 * target after the first `/` and up to the first `?`, without any
 * percent-decoding (`ws://host/shop/pets?x=1` is room `shop/pets`,
 * `ws://host/` is room `""`). Its **client id** is the value of its
 * `Sec-WebSocket-Key` header. A client that negotiated the `tinybase`
 * subprotocol runs in multiplexed mode: after its Hello it subscribes to
 * channels, each of which is the room `base/channel` (or `channel` when
 * the base path is empty), so multiplexed and legacy clients of the same
 * room talk to each other.
 *
 * Every payload is validated; a message addressed to no one (the empty
 * client id) goes to every other client of the room, one addressed to a
 * client id only to that client, with the sender's id in place of the
 * recipient's. The remainder of the payload is relayed byte for byte,
 * and a fragmented message is relayed as its original fragments once it is
 * complete and valid. A client that sends an invalid payload is closed
 * with code 1007 and reason `tinybase:14`, one that goes past a limit with
 * code 1013 and `tinybase:15:…`; the other clients never notice.
 *
 * The [signal@Tinysync.WsServer::path-added],
 * [signal@Tinysync.WsServer::path-removed],
 * [signal@Tinysync.WsServer::client-added] and
 * [signal@Tinysync.WsServer::client-removed] signals are TinyBase's path
 * id and client id listeners; [signal@Tinysync.WsServer::accept-request]
 * and [signal@Tinysync.WsServer::accept-client] can refuse connections;
 * [signal@Tinysync.WsServer::ignored-error] receives what TinyBase passes
 * to `onIgnoredError`.
 *
 * ## Limits against abuse
 *
 * Everything below is off by default, as in TinyBase:
 *
 * - [signal@Tinysync.WsServer::accept-request] gets the whole upgrade
 *   request (headers, query, remote address) and can refuse it with any
 *   HTTP status, for example 401 for a missing token.
 * - [property@Tinysync.WsServer:max-connections-per-ip] refuses a
 *   connection with 429 when its remote address already has that many
 *   connections (open or being upgraded).
 * - [property@Tinysync.WsServer:max-messages-per-second] closes a client
 *   that sends more WebSocket messages than that (a token bucket holding
 *   one second's worth) with code 1008 (policy violation) and reason
 *   `tinysync:rate`.
 *
 * See doc/threat-model.md for what the protocol trusts.
 *
 * ## Differences from TinyBase
 *
 * - A connection presenting a `Sec-WebSocket-Key` that a live connection
 *   of this server already uses is refused with HTTP status 409 instead of
 *   taking over the other connection's client id.
 * - Back-pressure: libsoup has no `bufferedAmount`. The server counts the
 *   bytes of the frames it hands to each connection and the bytes that
 *   actually reached its socket; a client whose queued bytes plus a new
 *   payload would pass [property@Tinysync.WsServer:max-message-size] is
 *   closed with 1013 `tinybase:15:socket`, as TinyBase does.
 * - A message made of several WebSocket frames is also bounded: once its
 *   frames add up to more than max-message-size plus 64 KiB, the client
 *   is closed with 1013 `tinybase:15:socket` (TinyBase's `ws` accepts up
 *   to 100 MiB).
 * - A client offering only subprotocols other than `tinybase` gets the
 *   first one it offered, like `ws`; a multiplexed Subscribe whose channel
 *   id contains a NUL character or a lone surrogate is invalid.
 * - libsoup parses the request target as a URI: dot segments are removed
 *   and raw bytes that a URI cannot hold (spaces, non-ASCII) come out
 *   percent-encoded (`/a b` is room `a%20b`). WebSocket clients send
 *   targets in that form anyway.
 * - A room with its own store (see [property@Tinysync.WsServer:data-dir]
 *   and [signal@Tinysync.WsServer::create-persister]) relays a client's
 *   message only once what its store applied is durable, and its store
 *   starts without TinyBase's initial broadcast request (which nobody
 *   could answer yet): it pulls from each client as soon as the client
 *   announces its hashes. Without one, messages addressed to `S` are
 *   dropped, as in TinyBase.
 *
 * `TsWsServer` handles the root path of the [class@Soup.Server]: handlers
 * the caller adds for more specific paths take precedence, and any other
 * plain HTTP request gets a 400 response.
 *
 * Since: 1.0
 */

/* The frames of one incoming message may pass max-message-size by this
 * much before the socket is cut off: the payload decoder then sees the
 * oversized text and gives TinyBase's exact close reason. */
#define FRAME_SLACK (64 * 1024)

#define WS_CLOSE_TRY_AGAIN_LATER 1013

/* The close reason of a client going past max-messages-per-second */
#define RATE_CLOSE_REASON "tinysync:rate"

struct _TsWsServer {
  GObject     parent_instance;

  SoupServer *server;
  gboolean    attached;
  gboolean    destroyed;

  guint64     max_message_size;
  double      request_timeout;
  guint       max_connections_per_ip;
  guint       max_messages_per_second;
  GHashTable *ips;         /* remote address → connections (GUINT_TO_POINTER) */

  GHashTable *rooms;       /* path id → Room (owned) */
  GPtrArray  *room_order;  /* Room (borrowed), in creation order */
  GHashTable *keys;        /* client id → Client (borrowed), live connections */
  GHashTable *pending;     /* client id → Pending (owned), upgrades in flight */
  GPtrArray  *clients;     /* Client (owned references) */

  char       *data_dir;    /* rooms persisted here when set */
  GHashTable *closing;     /* path id → GPtrArray of Room waiting to open */
  guint       n_closing;   /* room stores still stopping */
  GPtrArray  *close_tasks; /* GTask of ts_ws_server_close_async */
};

G_DEFINE_FINAL_TYPE (TsWsServer, ts_ws_server, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_SERVER,
  PROP_MAX_MESSAGE_SIZE,
  PROP_REQUEST_TIMEOUT,
  PROP_DATA_DIR,
  PROP_MAX_CONNECTIONS_PER_IP,
  PROP_MAX_MESSAGES_PER_SECOND,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  PATH_ADDED,
  PATH_REMOVED,
  CLIENT_ADDED,
  CLIENT_REMOVED,
  ACCEPT_CLIENT,
  IGNORED_ERROR,
  CREATE_PERSISTER,
  ACCEPT_REQUEST,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

typedef struct _Client Client;
typedef struct _Room   Room;

/* A client's presence in one room: the legacy socket's room, or one
 * channel of a multiplexed socket. Owned by the client; the room borrows
 * it while joined. */
typedef struct {
  Client           *client;      /* weak */
  Room             *room;        /* weak, NULL when not joined */
  char             *channel_id;  /* NULL for a legacy socket */
  TsPayloadDecoder *decoder;
} Member;

struct _Room {
  TsWsServer *server;   /* weak */
  char       *path_id;
  GHashTable *members;  /* client id → Member (borrowed) */
  GPtrArray  *order;    /* Member (borrowed), in join order */

  /* The room's own store, the peer "S" (14.4), when it has a persister */
  TsRoomPeer *peer;
  gboolean    ready;     /* FALSE while the store is starting */
  gboolean    waiting;   /* waiting for the same room to finish closing */
  GQueue      buffered;  /* Buffered, until ready */
  gsize       buffered_bytes;
  GQueue      relays;    /* Relay, waiting to be durable */
  guint64     relay_seq;
  guint64     flushing_upto;
  gboolean    flushing;
};

/* A message received before the room's store was ready (14.4) */
typedef struct {
  Client           *client;      /* owned reference */
  char             *channel_id;
  TsPayloadMessage *message;
  gsize             size;
} Buffered;

/* A message to relay once what the room's store applied is durable */
typedef struct {
  guint64    seq;
  char      *from;
  char      *to;                 /* NULL: every client but from */
  GPtrArray *remainders;         /* GBytes */
} Relay;

#define MAX_BUFFERED_PAYLOADS 1000

struct _Client {
  grefcount                ref_count;
  TsWsServer              *server;     /* weak, NULL once detached */
  SoupWebsocketConnection *conn;
  TsWsIOStream            *io;
  char                    *id;
  char                    *base_path;
  gboolean                 multiple;
  gboolean                 negotiated;
  gboolean                 failed;
  gboolean                 close_called;
  TsPayloadBudget         *budget;
  double                   lifetime;   /* incomplete fragments, seconds */
  Member                  *legacy;
  GHashTable              *channels;   /* channel id → Member (owned) */
  guint64                  queued;     /* frame bytes handed to libsoup */
  GSource                 *expiry;
  gint64                   expiry_at;
  char                    *ip;         /* counted in server->ips */
  double                   tokens;     /* max-messages-per-second bucket */
  gint64                   tokens_at;
};

typedef struct {
  TsWsServer        *server;   /* weak: the server owns the Pending */
  SoupServerMessage *msg;
  char              *key;
  char              *path_id;
  char              *protocol;
  char              *ip;       /* counted in server->ips until handed over */
} Pending;

/* ---- Small helpers ------------------------------------------------------ */

static void room_open (TsWsServer *self, Room *room);
static void room_buffer (TsWsServer *self, Room *room, Member *sender, TsPayloadMessage *message);
static void room_relay_later (TsWsServer *self, Room *room, const char *from, const char *to,
                              GPtrArray *remainders);
static void room_close (TsWsServer *self, Room *room);
static void route (TsWsServer *self, Member *sender, TsPayloadMessage *message);

static void
release_connection_cb (SoupWebsocketConnection *conn,
                       gpointer                 data)
{
  g_object_unref (conn);
}

/* Keeps conn alive until it finishes closing (unreffing an open connection
 * is a dirty close), then drops it. Takes over the caller's reference. */
static void
release_connection (SoupWebsocketConnection *conn)
{
  if (soup_websocket_connection_get_state (conn) == SOUP_WEBSOCKET_STATE_CLOSED)
    {
      g_object_unref (conn);
      return;
    }
  g_signal_connect (conn, "closed", G_CALLBACK (release_connection_cb), NULL);
}

/* Codes soup_websocket_connection_close() sends as given (3.2.3). */
static gboolean
soup_sends_code (guint16 code)
{
  switch (code)
    {
    case SOUP_WEBSOCKET_CLOSE_NORMAL:
    case SOUP_WEBSOCKET_CLOSE_GOING_AWAY:
    case SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR:
    case SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA:
    case SOUP_WEBSOCKET_CLOSE_NO_STATUS:
    case SOUP_WEBSOCKET_CLOSE_BAD_DATA:
    case SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION:
    case SOUP_WEBSOCKET_CLOSE_TOO_BIG:
    case SOUP_WEBSOCKET_CLOSE_SERVER_ERROR:
      return TRUE;
    default:
      return code >= 3000 && code < 5000;
    }
}

static char *
strndup_checked (const char *s,
                 gsize       len)
{
  if (memchr (s, '\0', len) != NULL || !g_utf8_validate (s, (gssize) len, NULL))
    return NULL;
  return g_strndup (s, len);
}

/* ---- Connections per remote address ------------------------------------ */

static guint
ip_count (TsWsServer *self,
          const char *ip)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (self->ips, ip));
}

static void
ip_hold (TsWsServer *self,
         const char *ip)
{
  g_hash_table_replace (self->ips, g_strdup (ip), GUINT_TO_POINTER (ip_count (self, ip) + 1));
}

static void
ip_release (TsWsServer *self,
            const char *ip)
{
  guint n = ip_count (self, ip);

  g_return_if_fail (n > 0);
  if (n == 1)
    g_hash_table_remove (self->ips, ip);
  else
    g_hash_table_replace (self->ips, g_strdup (ip), GUINT_TO_POINTER (n - 1));
}

/* ---- Members and rooms -------------------------------------------------- */

static Member *
member_new (Client     *client,
            const char *channel_id)
{
  Member *member = g_new0 (Member, 1);

  member->client = client;
  member->channel_id = g_strdup (channel_id);
  member->decoder = ts_payload_decoder_new (client->budget, client->lifetime);
  return member;
}

static void
member_free (Member *member)
{
  g_assert (member->room == NULL);

  ts_payload_decoder_free (member->decoder);
  g_free (member->channel_id);
  g_free (member);
}

static void buffered_free (Buffered *buffered);
static void relay_free (Relay *relay);

static Room *
room_new (TsWsServer *self,
          const char *path_id)
{
  Room *room = g_new0 (Room, 1);

  room->server = self;
  room->path_id = g_strdup (path_id);
  room->members = g_hash_table_new (g_str_hash, g_str_equal);
  room->order = g_ptr_array_new ();
  return room;
}

static void
room_free (Room *room)
{
  g_queue_clear_full (&room->buffered, (GDestroyNotify) buffered_free);
  g_queue_clear_full (&room->relays, (GDestroyNotify) relay_free);
  g_clear_object (&room->peer);
  g_hash_table_unref (room->members);
  g_ptr_array_unref (room->order);
  g_free (room->path_id);
  g_free (room);
}

static void
room_join (TsWsServer *self,
           const char *path_id,
           Member     *member)
{
  g_autofree char *path = g_strdup (path_id);
  g_autofree char *id = g_strdup (member->client->id);
  Room *room;
  gboolean created = FALSE;

  g_assert (member->room == NULL);

  room = g_hash_table_lookup (self->rooms, path_id);
  if (room == NULL)
    {
      room = room_new (self, path_id);
      g_hash_table_insert (self->rooms, room->path_id, room);
      g_ptr_array_add (self->room_order, room);
      created = TRUE;
    }
  g_assert (!g_hash_table_contains (room->members, member->client->id));
  g_hash_table_insert (room->members, member->client->id, member);
  g_ptr_array_add (room->order, member);
  member->room = room;

  g_object_ref (self);
  if (created)
    {
      room_open (self, room);
      g_signal_emit (self, signals[PATH_ADDED], 0, path);
    }
  g_signal_emit (self, signals[CLIENT_ADDED], 0, path, id);
  g_object_unref (self);
}

static void
room_leave (TsWsServer *self,
            Member     *member)
{
  Room *room = member->room;
  g_autofree char *path = NULL;
  g_autofree char *id = NULL;
  gboolean empty;

  if (room == NULL)
    return;

  member->room = NULL;
  g_hash_table_remove (room->members, member->client->id);
  g_ptr_array_remove (room->order, member);
  path = g_strdup (room->path_id);
  id = g_strdup (member->client->id);
  empty = room->order->len == 0;
  if (empty)
    {
      g_ptr_array_remove (self->room_order, room);
      g_hash_table_steal (self->rooms, path);
      room_close (self, room);
    }

  g_object_ref (self);
  g_signal_emit (self, signals[CLIENT_REMOVED], 0, path, id);
  if (empty)
    g_signal_emit (self, signals[PATH_REMOVED], 0, path);
  g_object_unref (self);
}

/* ---- Clients ------------------------------------------------------------ */

static Client *
client_ref (Client *client)
{
  g_ref_count_inc (&client->ref_count);
  return client;
}

static void
client_unref (Client *client)
{
  if (!g_ref_count_dec (&client->ref_count))
    return;

  g_assert (client->server == NULL);

  if (client->expiry != NULL)
    {
      g_source_destroy (client->expiry);
      g_clear_pointer (&client->expiry, g_source_unref);
    }
  g_clear_pointer (&client->legacy, member_free);
  g_clear_pointer (&client->channels, g_hash_table_unref);
  g_clear_pointer (&client->budget, ts_payload_budget_unref);
  if (client->conn != NULL)
    release_connection (g_steal_pointer (&client->conn));
  g_clear_object (&client->io);
  g_free (client->id);
  g_free (client->base_path);
  g_free (client->ip);
  g_free (client);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_unref)

static void
client_close (Client     *client,
              guint16     code,
              const char *reason)
{
  if (client->close_called)
    return;
  client->close_called = TRUE;
  if (soup_websocket_connection_get_state (client->conn) != SOUP_WEBSOCKET_STATE_OPEN)
    return;

  if (!soup_sends_code (code))
    {
      /* libsoup would turn this code into a protocol error: send a code it
       * knows and let the stream put the real one on the wire. */
      ts_ws_io_stream_override_close_code (client->io, code);
      code = SOUP_WEBSOCKET_CLOSE_NORMAL;
    }
  soup_websocket_connection_close (client->conn, code, reason);
}

static void
report (TsWsServer *self,
        GError     *error)
{
  g_object_ref (self);
  g_signal_emit (self, signals[IGNORED_ERROR], 0, error);
  g_object_unref (self);
}

/* The first invalid or overflowing thing on a socket: report it, then
 * close the socket with the matching code and reason (12.4). sending: the
 * problem is a payload for this client rather than from it. */
static void
client_fail (TsWsServer      *self,
             Client          *client,
             TsPayloadStatus  status,
             gboolean         sending)
{
  g_autoptr(GError) error = NULL;
  const char *reason = ts_payload_status_reason (status);

  if (client->failed || client->server == NULL)
    return;
  client->failed = TRUE;
  ts_payload_budget_fail (client->budget, status);

  if (sending)
    error = g_error_new (TS_ERROR, TS_ERROR_OVERFLOW,
                         _("Too much data queued for client %s (%s)"), client->id, reason);
  else if (ts_payload_status_is_overflow (status))
    error = g_error_new (TS_ERROR, TS_ERROR_OVERFLOW,
                         _("Client %s went past a limit (%s)"), client->id, reason);
  else
    error = g_error_new (TS_ERROR, TS_ERROR_INVALID_MESSAGE,
                         _("Invalid payload from client %s (%s)"), client->id, reason);

  client_ref (client);
  report (self, error);
  client_close (client, ts_payload_status_close_code (status), reason);
  client_unref (client);
}

/* Sends one payload if the socket is open, closing it instead if the
 * payload is too big or too much is queued (14.3). */
static gboolean
client_send (TsWsServer *self,
             Client     *client,
             GBytes     *payload)
{
  gsize size = g_bytes_get_size (payload);
  gsize max = ts_payload_budget_get_max_payload_size (client->budget);
  guint64 written, buffered;

  if (client->failed || client->close_called || client->server == NULL ||
      soup_websocket_connection_get_state (client->conn) != SOUP_WEBSOCKET_STATE_OPEN)
    return FALSE;

  written = ts_ws_io_stream_get_data_bytes_written (client->io);
  buffered = client->queued > written ? client->queued - written : 0;
  if (size > max || buffered > max - size)
    {
      client_fail (self, client, TS_PAYLOAD_OVERFLOW_SOCKET, TRUE);
      return FALSE;
    }

  client->queued += ts_ws_frame_size (size);
  soup_websocket_connection_send_message (client->conn, SOUP_WEBSOCKET_DATA_TEXT, payload);
  return TRUE;
}

static gboolean client_expire (gpointer data);

static void
client_schedule_expiry (Client *client)
{
  gint64 next = -1, now;
  GHashTableIter iter;
  gpointer value;

  if (client->server == NULL)
    return;

  if (client->legacy != NULL)
    next = ts_payload_decoder_get_next_expiry (client->legacy->decoder);
  if (client->channels != NULL)
    {
      g_hash_table_iter_init (&iter, client->channels);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        {
          gint64 at = ts_payload_decoder_get_next_expiry (((Member *) value)->decoder);

          if (at >= 0 && (next < 0 || at < next))
            next = at;
        }
    }

  if (client->expiry != NULL && (next < 0 || next < client->expiry_at))
    {
      g_source_destroy (client->expiry);
      g_clear_pointer (&client->expiry, g_source_unref);
    }
  if (next < 0 || client->expiry != NULL)
    return;

  now = g_get_monotonic_time ();
  client->expiry_at = next;
  client->expiry = g_timeout_source_new (next > now ? (guint) ((next - now + 999) / 1000) : 0);
  g_source_set_callback (client->expiry, client_expire, client, NULL);
  g_source_set_static_name (client->expiry, "[tinysync] fragment expiry");
  g_source_attach (client->expiry, g_main_context_get_thread_default ());
}

/* Releases incomplete fragmented messages that lived too long (the
 * decoder also drops them on the next frame; this frees memory early). */
static gboolean
client_expire (gpointer data)
{
  Client *client = data;
  gint64 now = g_get_monotonic_time ();
  GHashTableIter iter;
  gpointer value;

  g_clear_pointer (&client->expiry, g_source_unref);
  if (client->legacy != NULL)
    ts_payload_decoder_expire (client->legacy->decoder, now);
  if (client->channels != NULL)
    {
      g_hash_table_iter_init (&iter, client->channels);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        ts_payload_decoder_expire (((Member *) value)->decoder, now);
    }
  client_schedule_expiry (client);
  return G_SOURCE_REMOVE;
}

/* ---- Routing (14.3) ----------------------------------------------------- */

typedef struct {
  Client *client;
  char   *channel_id;
} Recipient;

static void
recipient_clear (gpointer data)
{
  Recipient *recipient = data;

  g_clear_pointer (&recipient->client, client_unref);
  g_clear_pointer (&recipient->channel_id, g_free);
}

static void
add_recipient (GArray *recipients,
               Member *member)
{
  Recipient recipient = { client_ref (member->client), g_strdup (member->channel_id) };

  g_array_append_val (recipients, recipient);
}

static void
deliver (TsWsServer       *self,
         const Recipient  *recipient,
         const char       *from,
         GPtrArray        *remainders)
{
  for (guint i = 0; i < remainders->len; i++)
    {
      GBytes *remainder = g_ptr_array_index (remainders, i);
      gsize len;
      const char *text = g_bytes_get_data (remainder, &len);
      g_autoptr(GBytes) payload = ts_payload_build (from, -1, text, len);

      if (recipient->channel_id != NULL)
        {
          const char *inner = g_bytes_get_data (payload, &len);
          GBytes *wrapped = ts_multiplex_wrap (recipient->channel_id, -1, inner, len);

          g_bytes_unref (payload);
          payload = wrapped;
        }
      if (!client_send (self, recipient->client, payload))
        break;
    }
}

static void
route (TsWsServer       *self,
       Member           *sender,
       TsPayloadMessage *message)
{
  g_autoptr(GArray) recipients = NULL;
  g_autofree char *from = NULL;
  Room *room = sender->room;
  const char *to = message->client_id;
  gsize to_len = message->client_id_len;

  /* Routed only while the sender is in the room's client table. */
  if (room == NULL || g_hash_table_lookup (room->members, sender->client->id) != sender)
    return;

  /* Until the room's store is ready, messages wait (14.4). */
  if (room->peer != NULL && !room->ready)
    {
      room_buffer (self, room, sender, message);
      return;
    }
  if (room->peer != NULL && (to_len == 0 || (to_len == 1 && to[0] == TS_PAYLOAD_SERVER_ID[0])))
    ts_room_peer_receive (room->peer, sender->client->id, message);
  if (room->peer != NULL && !(to_len == 1 && to[0] == TS_PAYLOAD_SERVER_ID[0]))
    {
      /* relayed once what the store applied is durable */
      if (strlen (to) == to_len)
        room_relay_later (self, room, sender->client->id, to_len > 0 ? to : NULL,
                          message->remainders);
      return;
    }

  recipients = g_array_new (FALSE, FALSE, sizeof (Recipient));
  g_array_set_clear_func (recipients, recipient_clear);

  if (to_len == 0)
    {
      /* Broadcast: every other client (a room without its own store). */
      for (guint i = 0; i < room->order->len; i++)
        {
          Member *member = g_ptr_array_index (room->order, i);

          if (member != sender)
            add_recipient (recipients, member);
        }
    }
  else if (to_len == 1 && to[0] == TS_PAYLOAD_SERVER_ID[0])
    {
      /* The room's server store: there is none (or it got it), drop. */
      return;
    }
  else if (strlen (to) == to_len)
    {
      Member *member = g_hash_table_lookup (room->members, to);

      if (member != NULL)
        add_recipient (recipients, member);
    }

  from = g_strdup (sender->client->id);
  for (guint i = 0; i < recipients->len; i++)
    deliver (self, &g_array_index (recipients, Recipient, i), from, message->remainders);
}

static void
handle_payload (TsWsServer *self,
                Client     *client,
                Member     *member,
                const char *text,
                gsize       len)
{
  g_autoptr(TsPayloadMessage) message = NULL;
  TsPayloadStatus status = TS_PAYLOAD_OK;

  switch (ts_payload_decoder_decode (member->decoder, text, len, g_get_monotonic_time (),
                                     &message, &status))
    {
    case TS_PAYLOAD_RESULT_MESSAGE:
      route (self, member, message);
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      client_fail (self, client, status, FALSE);
      break;
    case TS_PAYLOAD_RESULT_BUFFERED:
    case TS_PAYLOAD_RESULT_IGNORED:
    case TS_PAYLOAD_RESULT_CONTROL:
    case TS_PAYLOAD_RESULT_CHANNEL:
    default:
      break;
    }
}

/* ---- Rooms with their own store (14.4) ---------------------------------- */

static void
buffered_free (Buffered *buffered)
{
  client_unref (buffered->client);
  g_free (buffered->channel_id);
  ts_payload_message_free (buffered->message);
  g_free (buffered);
}

static void
relay_free (Relay *relay)
{
  g_free (relay->from);
  g_free (relay->to);
  g_ptr_array_unref (relay->remainders);
  g_free (relay);
}

static gsize
remainders_size (GPtrArray *remainders)
{
  gsize size = 0;

  for (guint i = 0; i < remainders->len; i++)
    size += g_bytes_get_size (g_ptr_array_index (remainders, i));
  return size;
}

/* Keeps a message until the room's store is ready; takes it over. */
static void
room_buffer (TsWsServer       *self,
             Room             *room,
             Member           *sender,
             TsPayloadMessage *message)
{
  Buffered *buffered;
  gsize size = remainders_size (message->remainders);

  if (room->buffered.length >= MAX_BUFFERED_PAYLOADS ||
      room->buffered_bytes + size > self->max_message_size)
    {
      client_fail (self, sender->client, TS_PAYLOAD_OVERFLOW_SERVER, FALSE);
      return;
    }
  buffered = g_new0 (Buffered, 1);
  buffered->client = client_ref (sender->client);
  buffered->channel_id = g_strdup (sender->channel_id);
  buffered->message = g_new0 (TsPayloadMessage, 1);
  *buffered->message = *message;
  memset (message, 0, sizeof *message);   /* the caller frees an empty shell */
  buffered->size = size;
  room->buffered_bytes += size;
  g_queue_push_tail (&room->buffered, buffered);
}

static Member *
client_member (Client     *client,
               const char *channel_id)
{
  if (channel_id == NULL)
    return client->legacy;
  return client->channels ? g_hash_table_lookup (client->channels, channel_id) : NULL;
}

/* Routes what waited for the store, in arrival order. */
static void
room_drain (TsWsServer *self,
            Room       *room)
{
  while (room->ready && !g_queue_is_empty (&room->buffered))
    {
      Buffered *buffered = g_queue_pop_head (&room->buffered);
      Member *member = client_member (buffered->client, buffered->channel_id);

      room->buffered_bytes -= buffered->size;
      if (member != NULL && member->room == room && buffered->client->server == self)
        route (self, member, buffered->message);
      buffered_free (buffered);
    }
}

static void
deliver_relay (TsWsServer *self,
               Room       *room,
               Relay      *relay)
{
  g_autoptr(GArray) recipients = g_array_new (FALSE, FALSE, sizeof (Recipient));

  g_array_set_clear_func (recipients, recipient_clear);
  if (relay->to == NULL)
    {
      for (guint i = 0; i < room->order->len; i++)
        {
          Member *member = g_ptr_array_index (room->order, i);

          if (strcmp (member->client->id, relay->from) != 0)
            add_recipient (recipients, member);
        }
    }
  else
    {
      Member *member = g_hash_table_lookup (room->members, relay->to);

      if (member != NULL)
        add_recipient (recipients, member);
    }
  for (guint i = 0; i < recipients->len; i++)
    deliver (self, &g_array_index (recipients, Recipient, i), relay->from, relay->remainders);
}

typedef struct {
  TsWsServer *server;
  TsRoomPeer *peer;
  char       *path_id;
} RoomOp;

static RoomOp *
room_op_new (TsWsServer *self,
             Room       *room)
{
  RoomOp *op = g_new0 (RoomOp, 1);

  op->server = g_object_ref (self);
  op->peer = g_object_ref (room->peer);
  op->path_id = g_strdup (room->path_id);
  return op;
}

static void
room_op_free (RoomOp *op)
{
  g_object_unref (op->server);
  g_object_unref (op->peer);
  g_free (op->path_id);
  g_free (op);
}

/* The room an operation was started for, if it is still the same one */
static Room *
room_op_room (RoomOp *op)
{
  Room *room = g_hash_table_lookup (op->server->rooms, op->path_id);

  return room != NULL && room->peer == op->peer ? room : NULL;
}

static void room_flush (TsWsServer *self, Room *room);

static void
on_room_flushed (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  RoomOp *op = data;
  TsWsServer *self = op->server;
  g_autoptr(GError) error = NULL;
  Room *room;

  if (!ts_room_peer_flush_finish (TS_ROOM_PEER (source), result, &error))
    report (self, error);   /* relay anyway: a stalled room is worse */
  room = room_op_room (op);
  if (room != NULL)
    {
      room->flushing = FALSE;
      while (!g_queue_is_empty (&room->relays))
        {
          Relay *relay = g_queue_peek_head (&room->relays);

          if (relay->seq > room->flushing_upto)
            break;
          g_queue_pop_head (&room->relays);
          deliver_relay (self, room, relay);
          relay_free (relay);
        }
      room_flush (self, room);
    }
  room_op_free (op);
}

static void
room_flush (TsWsServer *self,
            Room       *room)
{
  if (room->flushing || g_queue_is_empty (&room->relays) || room->peer == NULL)
    return;
  room->flushing = TRUE;
  room->flushing_upto = room->relay_seq;
  ts_room_peer_flush_async (room->peer, on_room_flushed, room_op_new (self, room));
}

/* Relays a message once everything the room's store applied so far is
 * durable: a change that reached another client survives a crash. */
static void
room_relay_later (TsWsServer *self,
                  Room       *room,
                  const char *from,
                  const char *to,
                  GPtrArray  *remainders)
{
  Relay *relay = g_new0 (Relay, 1);

  relay->seq = ++room->relay_seq;
  relay->from = g_strdup (from);
  relay->to = g_strdup (to);
  relay->remainders = g_ptr_array_ref (remainders);
  g_queue_push_tail (&room->relays, relay);
  room_flush (self, room);
}

/* What the room's store sends, from "S" */
static void
room_peer_send (const char *to,
                GBytes     *remainder,
                gpointer    data)
{
  Room *room = data;
  TsWsServer *self = room->server;
  g_autoptr(GPtrArray) remainders = g_ptr_array_new ();
  g_autoptr(GArray) recipients = g_array_new (FALSE, FALSE, sizeof (Recipient));

  g_ptr_array_add (remainders, remainder);
  g_array_set_clear_func (recipients, recipient_clear);
  if (to == NULL)
    for (guint i = 0; i < room->order->len; i++)
      add_recipient (recipients, g_ptr_array_index (room->order, i));
  else if (g_hash_table_lookup (room->members, to) != NULL)
    add_recipient (recipients, g_hash_table_lookup (room->members, to));
  for (guint i = 0; i < recipients->len; i++)
    deliver (self, &g_array_index (recipients, Recipient, i), TS_PAYLOAD_SERVER_ID, remainders);
}

static void
on_peer_error (TsSynchronizer *peer,
               GError         *error,
               gpointer        data)
{
  report (TS_WS_SERVER (data), error);
}

static void
on_room_started (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  RoomOp *op = data;
  TsWsServer *self = op->server;
  g_autoptr(GError) error = NULL;
  Room *room;

  /* A room that closed before its store started (its last client left
   * at once) is no error. */
  if (!ts_room_peer_start_finish (TS_ROOM_PEER (source), result, &error) &&
      !g_error_matches (error, TS_ERROR, TS_ERROR_CLOSED))
    {
      g_autoptr(GError) wrapped = g_error_new (TS_ERROR, TS_ERROR_IO,
                                               _("The store of room “%s” could not start: %s"),
                                               op->path_id, error->message);
      report (self, wrapped);
    }
  room = room_op_room (op);
  if (room != NULL)
    {
      if (error != NULL)
        {
          /* go on as a plain relay room */
          g_signal_handlers_disconnect_by_data (room->peer, self);
          ts_synchronizer_destroy (TS_SYNCHRONIZER (room->peer));
          g_clear_object (&room->peer);
        }
      room->ready = TRUE;
      room_drain (self, room);
    }
  room_op_free (op);
}

static void
room_start (TsWsServer *self,
            Room       *room)
{
  room->waiting = FALSE;
  ts_room_peer_start_async (room->peer, NULL, on_room_started, room_op_new (self, room));
}

/* File names are at most 255 bytes on Linux file systems. */
#define ROOM_FILE_NAME_MAX 255
/* A longer name keeps this much of its escaped path id, then "-", the
 * SHA-256 of the whole path id in hex, and ".sqlite" (5 + 160 + 1 + 64 +
 * 7 = 237 bytes). */
#define ROOM_FILE_NAME_KEEP 160

/* "room-" + the path id with every byte other than letters, digits, "-",
 * "_" and "." as %XX + ".sqlite"; a name that would pass 255 bytes (a
 * path id of about 250 bytes, or a channel id of up to 1024) is cut at a
 * whole escape and made unique with the SHA-256 of the path id. */
static char *
room_file_name (const char *path_id)
{
  GString *name = g_string_new ("room-");

  for (const char *p = path_id; *p != '\0'; p++)
    {
      if (name->len > ROOM_FILE_NAME_MAX)
        break;
      if (g_ascii_isalnum (*p) || *p == '-' || *p == '_' || *p == '.')
        g_string_append_c (name, *p);
      else
        g_string_append_printf (name, "%%%02X", (guchar) *p);
    }
  if (name->len + strlen (".sqlite") > ROOM_FILE_NAME_MAX)
    {
      g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, path_id, -1);
      gsize keep = strlen ("room-") + ROOM_FILE_NAME_KEEP;

      /* never in the middle of a %XX */
      if (name->str[keep - 1] == '%')
        keep -= 1;
      else if (name->str[keep - 2] == '%')
        keep -= 2;
      g_string_truncate (name, keep);
      g_string_append_printf (name, "-%s", digest);
    }
  g_string_append (name, ".sqlite");
  return g_string_free (name, FALSE);
}

static TsPersister *
room_default_persister (TsWsServer  *self,
                        const char  *path_id,
                        GError     **error)
{
  g_autofree char *name = room_file_name (path_id);
  g_autofree char *path = g_build_filename (self->data_dir, name, NULL);
  g_autoptr(TsMergeableStore) store = NULL;

  if (g_mkdir_with_parents (self->data_dir, 0700) != 0)
    {
      int errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Cannot create the data folder “%s”: %s"), self->data_dir, g_strerror (errsv));
      return NULL;
    }
  store = ts_mergeable_store_new (NULL);
  return (TsPersister *) ts_sqlite_persister_new (store, path, error);
}

/* A room was created: give it its own store when there is a persister. */
static void
room_open (TsWsServer *self,
           Room       *room)
{
  g_autoptr(TsPersister) persister = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *waiters;

  room->ready = TRUE;
  g_signal_emit (self, signals[CREATE_PERSISTER], 0, room->path_id, &persister);
  if (persister == NULL && self->data_dir != NULL)
    {
      persister = room_default_persister (self, room->path_id, &error);
      if (persister == NULL)
        {
          g_autoptr(GError) wrapped = g_error_new (TS_ERROR, TS_ERROR_IO,
                                                   _("The store of room “%s” could not open: %s"),
                                                   room->path_id, error->message);
          report (self, wrapped);
        }
    }
  if (persister == NULL)
    return;

  room->peer = ts_room_peer_new (persister, self->request_timeout, room_peer_send, room);
  g_signal_connect (room->peer, "ignored-error", G_CALLBACK (on_peer_error), self);
  room->ready = FALSE;

  /* The same room is still saving its last changes: wait for it. */
  waiters = g_hash_table_lookup (self->closing, room->path_id);
  if (waiters != NULL)
    {
      room->waiting = TRUE;
      g_ptr_array_add (waiters, g_object_ref (room->peer));
      return;
    }
  room_start (self, room);
}

static void
finish_close_tasks (TsWsServer *self)
{
  if (self->n_closing > 0)
    return;
  while (self->close_tasks->len > 0)
    {
      g_autoptr(GTask) task = g_ptr_array_steal_index (self->close_tasks, 0);
      g_task_return_boolean (task, TRUE);
    }
}

static void
on_room_closed (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  RoomOp *op = data;
  TsWsServer *self = op->server;
  g_autofree char *closing_id = NULL;
  g_autoptr(GPtrArray) waiters = NULL;

  ts_room_peer_stop_finish (TS_ROOM_PEER (source), result);
  g_hash_table_steal_extended (self->closing, op->path_id,
                               (gpointer *) &closing_id, (gpointer *) &waiters);
  self->n_closing--;
  if (waiters != NULL)
    for (guint i = 0; i < waiters->len; i++)
      {
        Room *room = g_hash_table_lookup (self->rooms, op->path_id);

        if (room != NULL && room->peer == waiters->pdata[i] && room->waiting)
          room_start (self, room);
      }
  finish_close_tasks (self);
  room_op_free (op);
}

/* The last client left: save what is left to save, then let go of the
 * store; the data stays on disk for the next client. The room itself is
 * already out of the server's tables. */
static void
room_close (TsWsServer *self,
            Room       *room)
{
  if (room->peer != NULL && !room->waiting)
    {
      RoomOp *op = room_op_new (self, room);

      g_signal_handlers_disconnect_by_data (room->peer, self);
      if (!g_hash_table_contains (self->closing, room->path_id))
        g_hash_table_insert (self->closing, g_strdup (room->path_id),
                             g_ptr_array_new_with_free_func (g_object_unref));
      self->n_closing++;
      ts_room_peer_stop_async (room->peer, on_room_closed, op);
    }
  room_free (room);
}

/* ---- Multiplexed sockets (13.5) ----------------------------------------- */

static void
send_echo (TsWsServer             *self,
           Client                 *client,
           const TsMultiplexFrame *frame)
{
  g_autoptr(GBytes) echo = ts_multiplex_encode_echo (frame);

  client_send (self, client, echo);
}

static void
handle_control (TsWsServer             *self,
                Client                 *client,
                const TsMultiplexFrame *frame)
{
  g_autofree char *channel_id = NULL;
  gboolean subscribed = FALSE;
  guint n_channels = g_hash_table_size (client->channels);
  TsMultiplexServerAction action;

  if (frame->channel_id != NULL)
    {
      channel_id = strndup_checked (frame->channel_id, frame->channel_id_len);
      subscribed = channel_id != NULL && g_hash_table_contains (client->channels, channel_id);
    }

  action = ts_multiplex_server_action (frame, client->negotiated, subscribed,
                                       n_channels, n_channels);
  if (action == TS_MULTIPLEX_ACTION_SUBSCRIBE && channel_id == NULL)
    {
      /* A channel id with a NUL or a lone surrogate can name no room
       * (deviation: TinyBase would subscribe it). */
      client_fail (self, client, TS_PAYLOAD_INVALID, FALSE);
      return;
    }

  switch (action)
    {
    case TS_MULTIPLEX_ACTION_HELLO:
      client->negotiated = TRUE;
      send_echo (self, client, frame);
      break;

    case TS_MULTIPLEX_ACTION_SUBSCRIBE:
      {
        Member *member = member_new (client, channel_id);
        g_autofree char *path_id = ts_multiplex_room_path (client->base_path, channel_id);

        g_hash_table_insert (client->channels, member->channel_id, member);
        room_join (self, path_id, member);
        send_echo (self, client, frame);
      }
      break;

    case TS_MULTIPLEX_ACTION_ECHO:
      send_echo (self, client, frame);
      break;

    case TS_MULTIPLEX_ACTION_UNSUBSCRIBE:
      {
        Member *member = channel_id ? g_hash_table_lookup (client->channels, channel_id) : NULL;

        if (member != NULL)
          {
            g_hash_table_steal (client->channels, channel_id);
            room_leave (self, member);
            member_free (member);
          }
      }
      break;

    case TS_MULTIPLEX_ACTION_OVERFLOW:
      client_fail (self, client, TS_PAYLOAD_OVERFLOW_CHANNELS, FALSE);
      break;

    case TS_MULTIPLEX_ACTION_IGNORE:
    default:
      break;
    }
}

static void
handle_multiplexed (TsWsServer *self,
                    Client     *client,
                    const char *text,
                    gsize       len)
{
  TsMultiplexFrame frame;
  TsPayloadStatus status = TS_PAYLOAD_OK;

  switch (ts_multiplex_decode (client->budget, text, len, &frame, &status))
    {
    case TS_PAYLOAD_RESULT_CONTROL:
      handle_control (self, client, &frame);
      break;

    case TS_PAYLOAD_RESULT_CHANNEL:
      {
        g_autofree char *channel_id = strndup_checked (frame.channel_id, frame.channel_id_len);
        Member *member = channel_id ? g_hash_table_lookup (client->channels, channel_id) : NULL;

        /* Includes every channel payload before Hello. */
        if (member == NULL)
          client_fail (self, client, TS_PAYLOAD_INVALID, FALSE);
        else
          handle_payload (self, client, member, frame.inner, frame.inner_len);
      }
      break;

    case TS_PAYLOAD_RESULT_ERROR:
      client_fail (self, client, status, FALSE);
      break;

    case TS_PAYLOAD_RESULT_IGNORED:
    case TS_PAYLOAD_RESULT_MESSAGE:
    case TS_PAYLOAD_RESULT_BUFFERED:
    default:
      break;
    }
  ts_multiplex_frame_clear (&frame);
}

/* ---- Connection signals ------------------------------------------------- */

/* max-messages-per-second: a token bucket holding one second's worth of
 * messages, refilled continuously. */
static gboolean
client_take_token (TsWsServer *self,
                   Client     *client)
{
  double rate = self->max_messages_per_second;
  gint64 now;

  if (rate <= 0)
    return TRUE;
  now = g_get_monotonic_time ();
  if (client->tokens_at == 0)
    client->tokens = rate;
  else
    client->tokens = MIN (rate, client->tokens + rate * (double) (now - client->tokens_at) / G_USEC_PER_SEC);
  client->tokens_at = now;
  if (client->tokens < 1.0)
    return FALSE;
  client->tokens -= 1.0;
  return TRUE;
}

static void
client_fail_rate (TsWsServer *self,
                  Client     *client)
{
  g_autoptr(GError) error = NULL;

  if (client->failed || client->server == NULL)
    return;
  client->failed = TRUE;
  ts_payload_budget_fail (client->budget, TS_PAYLOAD_OVERFLOW_SOCKET);
  error = g_error_new (TS_ERROR, TS_ERROR_OVERFLOW,
                       _("Client %s sent more than %u messages per second (%s)"),
                       client->id, self->max_messages_per_second, RATE_CLOSE_REASON);
  client_ref (client);
  report (self, error);
  client_close (client, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, RATE_CLOSE_REASON);
  client_unref (client);
}

static void
on_message (SoupWebsocketConnection *conn,
            int                      type,
            GBytes                  *bytes,
            gpointer                 data)
{
  Client *client = data;
  TsWsServer *self = client->server;
  g_autofree char *converted = NULL;
  const char *text;
  gsize len;

  if (self == NULL || client->failed || client->close_called)
    return;

  if (!client_take_token (self, client))
    {
      client_fail_rate (self, client);
      return;
    }

  text = g_bytes_get_data (bytes, &len);
  if (type == SOUP_WEBSOCKET_DATA_BINARY)
    {
      /* Node turns any frame into a string (U+FFFD for bad bytes). */
      converted = ts_payload_text_from_binary (text, len, &len);
      text = converted;
    }

  g_object_ref (self);
  client_ref (client);
  if (client->multiple)
    handle_multiplexed (self, client, text, len);
  else
    handle_payload (self, client, client->legacy, text, len);
  client_schedule_expiry (client);
  client_unref (client);
  g_object_unref (self);
}

static void
on_error (SoupWebsocketConnection *conn,
          GError                  *error,
          gpointer                 data)
{
  Client *client = data;

  if (client->server != NULL)
    report (client->server, error);
}

static void
on_message_too_big (TsWsIOStream *io,
                    gpointer      data)
{
  Client *client = data;

  if (client->server != NULL)
    client_fail (client->server, client, TS_PAYLOAD_OVERFLOW_SOCKET, FALSE);
}

/* Takes the client out of the server: leaves its rooms (emitting the
 * listeners' signals), forgets its key and connection signals. The caller
 * owns a reference. */
static void
client_detach (TsWsServer *self,
               Client     *client)
{
  g_autoptr(GPtrArray) members = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  if (client->server == NULL)
    return;

  g_signal_handlers_disconnect_by_data (client->conn, client);
  g_signal_handlers_disconnect_by_data (client->io, client);
  if (g_hash_table_lookup (self->keys, client->id) == client)
    g_hash_table_remove (self->keys, client->id);
  if (client->ip != NULL)
    ip_release (self, client->ip);
  client->server = NULL;
  if (client->expiry != NULL)
    {
      g_source_destroy (client->expiry);
      g_clear_pointer (&client->expiry, g_source_unref);
    }

  if (client->legacy != NULL)
    g_ptr_array_add (members, client->legacy);
  if (client->channels != NULL)
    {
      g_hash_table_iter_init (&iter, client->channels);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        g_ptr_array_add (members, value);
    }
  /* Members stay owned by the client, so reentrant signal handlers cannot
   * free them under us. */
  g_object_ref (self);
  for (guint i = 0; i < members->len; i++)
    room_leave (self, g_ptr_array_index (members, i));
  g_object_unref (self);
}

static void
on_closed (SoupWebsocketConnection *conn,
           gpointer                 data)
{
  Client *client = data;
  TsWsServer *self = client->server;
  g_autoptr(Client) owned = NULL;
  guint index;

  if (self == NULL)
    return;

  g_object_ref (self);
  if (g_ptr_array_find (self->clients, client, &index))
    owned = g_ptr_array_steal_index (self->clients, index);
  client_detach (self, client);
  g_object_unref (self);
  if (owned != NULL)
    release_connection (g_steal_pointer (&owned->conn));
}

/* ---- Upgrades ----------------------------------------------------------- */

static void
pending_free (Pending *pending)
{
  g_signal_handlers_disconnect_by_data (pending->msg, pending);
  g_object_unref (pending->msg);
  g_free (pending->key);
  g_free (pending->path_id);
  g_free (pending->protocol);
  if (pending->ip != NULL)
    {
      ip_release (pending->server, pending->ip);
      g_free (pending->ip);
    }
  g_free (pending);
}

static Client *
client_new (TsWsServer              *self,
            SoupWebsocketConnection *conn,
            TsWsIOStream            *io,
            Pending                 *pending)
{
  Client *client = g_new0 (Client, 1);

  g_ref_count_init (&client->ref_count);
  client->server = self;
  client->conn = conn;
  client->io = g_object_ref (io);
  client->id = g_strdup (pending->key);
  client->base_path = g_strdup (pending->path_id);
  client->ip = g_steal_pointer (&pending->ip);   /* the count moves over */
  client->multiple = g_strcmp0 (pending->protocol, "tinybase") == 0;
  client->budget = ts_payload_budget_new (self->max_message_size, self->max_message_size);
  client->lifetime = self->request_timeout;
  if (client->multiple)
    client->channels = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                              (GDestroyNotify) member_free);
  else
    client->legacy = member_new (client, NULL);
  return client;
}

static void
on_upgraded (SoupServerMessage *msg,
             gpointer           data)
{
  Pending *pending = data;
  TsWsServer *self = pending->server;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(TsWsIOStream) io = NULL;
  SoupWebsocketConnection *conn;
  Client *client;

  g_hash_table_steal (self->pending, pending->key);
  g_signal_handlers_disconnect_by_data (msg, pending);

  stream = soup_server_message_steal_connection (msg);
  if (stream == NULL || self->destroyed)
    {
      if (stream != NULL)
        g_io_stream_close_async (stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      pending_free (pending);
      return;
    }

  io = ts_ws_io_stream_new (stream, self->max_message_size + FRAME_SLACK);
  conn = soup_websocket_connection_new (G_IO_STREAM (io),
                                        soup_server_message_get_uri (msg),
                                        SOUP_WEBSOCKET_CONNECTION_SERVER,
                                        soup_message_headers_get_one (headers, "Origin"),
                                        pending->protocol, NULL);
  /* The stream cuts a message off first; this is a backstop. */
  soup_websocket_connection_set_max_incoming_payload_size (conn, self->max_message_size + FRAME_SLACK + 1);
  soup_websocket_connection_set_keepalive_interval (conn, 0);

  client = client_new (self, conn, io, pending);
  pending_free (pending);

  g_ptr_array_add (self->clients, client);
  g_hash_table_insert (self->keys, client->id, client);
  g_signal_connect (conn, "message", G_CALLBACK (on_message), client);
  g_signal_connect (conn, "error", G_CALLBACK (on_error), client);
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed), client);
  g_signal_connect (io, "message-too-big", G_CALLBACK (on_message_too_big), client);

  if (!client->multiple)
    room_join (self, client->base_path, client->legacy);
}

static void
on_handshake_finished (SoupServerMessage *msg,
                       gpointer           data)
{
  Pending *pending = data;

  /* Finished without the upgrade (the peer went away). */
  g_hash_table_remove (pending->server->pending, pending->key);
}

static char *
first_offered_protocol (SoupMessageHeaders *headers)
{
  const char *offered = soup_message_headers_get_one (headers, "Sec-WebSocket-Protocol");
  g_auto(GStrv) tokens = NULL;

  if (offered == NULL)
    return NULL;
  /* Split as soup_websocket_server_process_handshake() does. */
  tokens = g_strsplit_set (offered, ", ", -1);
  for (guint i = 0; tokens[i] != NULL; i++)
    if (tokens[i][0] != '\0')
      return g_strdup (tokens[i]);
  return NULL;
}

static void
on_request (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           data)
{
  TsWsServer *self = data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  GUri *uri = soup_server_message_get_uri (msg);
  g_autofree char *target = NULL;
  g_autofree char *path_id = NULL;
  g_autofree char *protocol = NULL;
  const char *key;
  const char *ip;
  gboolean accepted = TRUE;
  Pending *pending;

  if (self->destroyed)
    {
      soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
      return;
    }
  if (!soup_websocket_server_check_handshake (msg, NULL, NULL, NULL, NULL))
    {
      /* Not a (valid) WebSocket upgrade: libsoup explains with a 400. */
      soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL);
      return;
    }

  /* The raw request target (raw-paths: no decoding), as Node's request.url;
   * GUri has already removed dot segments. */
  target = g_uri_get_query (uri) != NULL
             ? g_strconcat (g_uri_get_path (uri), "?", g_uri_get_query (uri), NULL)
             : g_strdup (g_uri_get_path (uri));
  /* Path ids travel as UTF-8 strings (signals, bindings); GUri has
   * percent-encoded raw bytes already, this only keeps that promise. */
  if (!ts_path_id_from_request_target (target, strlen (target), &path_id, NULL) ||
      !g_utf8_validate (path_id, -1, NULL))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, NULL);
      return;
    }

  /* Before anything else is revealed, even whether the key is in use. */
  if (g_signal_has_handler_pending (self, signals[ACCEPT_REQUEST], 0, FALSE))
    {
      g_object_ref (self);
      g_signal_emit (self, signals[ACCEPT_REQUEST], 0, path_id, msg, &accepted);
      g_object_unref (self);
      if (self->destroyed)
        accepted = FALSE;
      if (!accepted)
        {
          if (soup_server_message_get_status (msg) == 0)
            soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, NULL);
          soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                        "Connection", "close");
          return;
        }
    }

  ip = soup_server_message_get_remote_host (msg);
  if (ip == NULL)
    ip = "";
  if (self->max_connections_per_ip > 0 && ip_count (self, ip) >= self->max_connections_per_ip)
    {
      soup_server_message_set_status (msg, 429, "Too Many Requests");
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Connection", "close");
      return;
    }

  key = soup_message_headers_get_one (headers, "Sec-WebSocket-Key");
  if (g_hash_table_contains (self->keys, key) || g_hash_table_contains (self->pending, key))
    {
      /* Deviation from TinyBase (14.2): never let a connection take over
       * the client id of another. */
      soup_server_message_set_status (msg, SOUP_STATUS_CONFLICT, NULL);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Connection", "close");
      return;
    }

  if (g_signal_has_handler_pending (self, signals[ACCEPT_CLIENT], 0, FALSE))
    {
      g_object_ref (self);
      g_signal_emit (self, signals[ACCEPT_CLIENT], 0, path_id, headers, &accepted);
      g_object_unref (self);
      if (self->destroyed)
        accepted = FALSE;
    }
  if (!accepted || g_hash_table_contains (self->keys, key) ||
      g_hash_table_contains (self->pending, key) ||
      (self->max_connections_per_ip > 0 && ip_count (self, ip) >= self->max_connections_per_ip))
    {
      if (soup_server_message_get_status (msg) == 0)
        soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, NULL);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Connection", "close");
      return;
    }

  /* Like ws, select the first subprotocol offered; only "tinybase" makes
   * the socket multiplexed. No extensions: permessage-deflate would let a
   * small frame inflate without bound. */
  protocol = first_offered_protocol (headers);
  {
    char *protocols[] = { protocol, NULL };

    if (!soup_websocket_server_process_handshake (msg, NULL, protocol ? protocols : NULL,
                                                  NULL, NULL))
      return;
  }

  pending = g_new0 (Pending, 1);
  pending->server = self;
  pending->msg = g_object_ref (msg);
  pending->key = g_strdup (key);
  pending->path_id = g_steal_pointer (&path_id);
  pending->protocol = g_steal_pointer (&protocol);
  pending->ip = g_strdup (ip);
  ip_hold (self, ip);
  g_hash_table_insert (self->pending, pending->key, pending);
  g_signal_connect (msg, "wrote-informational", G_CALLBACK (on_upgraded), pending);
  g_signal_connect (msg, "finished", G_CALLBACK (on_handshake_finished), pending);
}

/* ---- GObject ------------------------------------------------------------ */

static gboolean
accept_accumulator (GSignalInvocationHint *ihint,
                    GValue                *return_accu,
                    const GValue          *handler_return,
                    gpointer               data)
{
  gboolean accept = g_value_get_boolean (handler_return);

  g_value_set_boolean (return_accu, accept);
  return accept;
}

static gboolean
persister_accumulator (GSignalInvocationHint *ihint,
                       GValue                *return_accu,
                       const GValue          *handler_return,
                       gpointer               data)
{
  GObject *persister = g_value_get_object (handler_return);

  if (persister == NULL)
    return TRUE;
  g_value_set_object (return_accu, persister);
  return FALSE;
}

static void
ts_ws_server_constructed (GObject *object)
{
  TsWsServer *self = TS_WS_SERVER (object);
  gboolean raw_paths = FALSE;

  G_OBJECT_CLASS (ts_ws_server_parent_class)->constructed (object);

  if (self->server == NULL)
    {
      g_critical ("TsWsServer needs a SoupServer");
      self->destroyed = TRUE;
      return;
    }
  g_object_get (self->server, "raw-paths", &raw_paths, NULL);
  if (!raw_paths)
    {
      g_critical ("TsWsServer needs a SoupServer created with raw-paths set to TRUE");
      self->destroyed = TRUE;
      return;
    }

  soup_server_add_handler (self->server, NULL, on_request, self, NULL);
  self->attached = TRUE;
}

static void
ts_ws_server_dispose (GObject *object)
{
  TsWsServer *self = TS_WS_SERVER (object);

  ts_ws_server_destroy (self);
  g_hash_table_remove_all (self->pending);
  g_clear_object (&self->server);

  G_OBJECT_CLASS (ts_ws_server_parent_class)->dispose (object);
}

static void
ts_ws_server_finalize (GObject *object)
{
  TsWsServer *self = TS_WS_SERVER (object);

  g_hash_table_unref (self->rooms);
  g_ptr_array_unref (self->room_order);
  g_hash_table_unref (self->keys);
  g_hash_table_unref (self->pending);
  g_ptr_array_unref (self->clients);
  g_hash_table_unref (self->ips);
  g_hash_table_unref (self->closing);
  g_ptr_array_unref (self->close_tasks);
  g_free (self->data_dir);

  G_OBJECT_CLASS (ts_ws_server_parent_class)->finalize (object);
}

static void
ts_ws_server_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  TsWsServer *self = TS_WS_SERVER (object);

  switch (prop_id)
    {
    case PROP_SERVER:
      g_value_set_object (value, self->server);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint64 (value, self->max_message_size);
      break;
    case PROP_REQUEST_TIMEOUT:
      g_value_set_double (value, self->request_timeout);
      break;
    case PROP_DATA_DIR:
      g_value_set_string (value, self->data_dir);
      break;
    case PROP_MAX_CONNECTIONS_PER_IP:
      g_value_set_uint (value, self->max_connections_per_ip);
      break;
    case PROP_MAX_MESSAGES_PER_SECOND:
      g_value_set_uint (value, self->max_messages_per_second);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_ws_server_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  TsWsServer *self = TS_WS_SERVER (object);

  switch (prop_id)
    {
    case PROP_SERVER:
      self->server = g_value_dup_object (value);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      ts_ws_server_set_max_message_size (self, g_value_get_uint64 (value));
      break;
    case PROP_REQUEST_TIMEOUT:
      ts_ws_server_set_request_timeout (self, g_value_get_double (value));
      break;
    case PROP_DATA_DIR:
      ts_ws_server_set_data_dir (self, g_value_get_string (value));
      break;
    case PROP_MAX_CONNECTIONS_PER_IP:
      ts_ws_server_set_max_connections_per_ip (self, g_value_get_uint (value));
      break;
    case PROP_MAX_MESSAGES_PER_SECOND:
      ts_ws_server_set_max_messages_per_second (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_ws_server_class_init (TsWsServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_ws_server_constructed;
  object_class->dispose = ts_ws_server_dispose;
  object_class->finalize = ts_ws_server_finalize;
  object_class->get_property = ts_ws_server_get_property;
  object_class->set_property = ts_ws_server_set_property;

  /**
   * TsWsServer:server:
   *
   * The [class@Soup.Server] whose WebSocket upgrades this server answers
   * (TinyBase's `getWebSocketServer()`). It must have been created with
   * [property@Soup.Server:raw-paths] set to %TRUE.
   *
   * Since: 1.0
   */
  properties[PROP_SERVER] =
    g_param_spec_object ("server", NULL, NULL,
                         SOUP_TYPE_SERVER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsServer:max-message-size:
   *
   * The largest payload, in bytes, that a client may send or be sent
   * (TinyBase: 16 MiB), also the bound on the bytes its incomplete
   * fragmented messages may hold and on the bytes queued for sending to
   * it. There is always a limit. Changes apply to connections accepted
   * afterwards.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint64 ("max-message-size", NULL, NULL,
                         1, G_MAXUINT32, TS_WS_SERVER_DEFAULT_MAX_MESSAGE_SIZE,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsServer:request-timeout:
   *
   * TinyBase's `requestTimeoutSeconds` of the server: how long, in
   * seconds, the pieces of an incomplete fragmented message are kept.
   * Changes apply to connections accepted afterwards.
   *
   * Since: 1.0
   */
  properties[PROP_REQUEST_TIMEOUT] =
    g_param_spec_double ("request-timeout", NULL, NULL,
                         0.0, G_MAXDOUBLE, 1.0,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsServer:data-dir:
   *
   * A folder where every room keeps its own store, in an SQLite file per
   * room (PROTOCOL.md §14.4, TinyBase's `createPersisterForPath`): the
   * room's store takes part in sync as client `S`, loads what was saved
   * when the room opens, makes every change durable before relaying it to
   * the other clients, and keeps the data when the last client leaves.
   * %NULL (the default) makes a pure relay, unless a
   * [signal@Tinysync.WsServer::create-persister] handler provides
   * persisters. Changes apply to rooms opened afterwards.
   *
   * A room's file is `room-` plus its path id, with every byte other than
   * letters, digits, `-`, `_` and `.` written as `%XX`, plus `.sqlite`.
   * When that would pass 255 bytes (the limit of a file name), the
   * escaped path id is cut after 160 bytes and followed by `-` and the
   * SHA-256 of the whole path id in hexadecimal.
   *
   * Since: 1.0
   */
  properties[PROP_DATA_DIR] =
    g_param_spec_string ("data-dir", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsServer:max-connections-per-ip:
   *
   * How many connections one remote address may hold at once, counting
   * upgrades in flight; a connection beyond it is refused with HTTP
   * status 429. 0 (the default, as TinyBase) means no limit. Behind a
   * reverse proxy every client has the proxy's address: limit there
   * instead.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_CONNECTIONS_PER_IP] =
    g_param_spec_uint ("max-connections-per-ip", NULL, NULL,
                       0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsWsServer:max-messages-per-second:
   *
   * How many WebSocket messages a client may send per second, on
   * average: each client has a bucket of that many tokens, refilled at
   * that rate, and each message takes one. A client that sends a message
   * with an empty bucket is reported to
   * [signal@Tinysync.WsServer::ignored-error] (%TS_ERROR_OVERFLOW) and
   * closed with code 1008 (policy violation) and reason `tinysync:rate`;
   * the other clients of its rooms are not affected. Every fragment of a
   * fragmented payload and every message of every channel of a
   * multiplexed socket counts. 0 (the default, as TinyBase) means no
   * limit. Changes apply at once.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGES_PER_SECOND] =
    g_param_spec_uint ("max-messages-per-second", NULL, NULL,
                       0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TsWsServer::path-added:
   * @self: the server
   * @path_id: the room's path id
   *
   * A room got its first client (TinyBase's path id listener with `1`).
   *
   * Since: 1.0
   */
  signals[PATH_ADDED] =
    g_signal_new ("path-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * TsWsServer::path-removed:
   * @self: the server
   * @path_id: the room's path id
   *
   * A room lost its last client (TinyBase's path id listener with `-1`).
   *
   * Since: 1.0
   */
  signals[PATH_REMOVED] =
    g_signal_new ("path-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * TsWsServer::client-added:
   * @self: the server
   * @path_id: the room's path id
   * @client_id: the client's id (its `Sec-WebSocket-Key`)
   *
   * A client joined a room: a legacy connection on opening, a multiplexed
   * one when it subscribes to a channel (TinyBase's client id listener
   * with `1`).
   *
   * Since: 1.0
   */
  signals[CLIENT_ADDED] =
    g_signal_new ("client-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);

  /**
   * TsWsServer::client-removed:
   * @self: the server
   * @path_id: the room's path id
   * @client_id: the client's id
   *
   * A client left a room: its connection closed, it unsubscribed the
   * channel, or the server was destroyed (TinyBase's client id listener
   * with `-1`).
   *
   * Since: 1.0
   */
  signals[CLIENT_REMOVED] =
    g_signal_new ("client-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);

  /**
   * TsWsServer::accept-client:
   * @self: the server
   * @path_id: the path id of the requested URL (for a multiplexed client,
   *   the base of its channel rooms)
   * @request_headers: the headers of the upgrade request
   *
   * Emitted for every valid WebSocket upgrade request before it is
   * answered, after [signal@Tinysync.WsServer::accept-request]. Return
   * %FALSE to refuse the connection: the client gets a 403 response.
   * Emission stops at the first handler that refuses. TinyBase has no
   * such hook: rooms are neither authenticated nor authorized unless you
   * add it. To answer with another status, or to see the query or the
   * remote address, use [signal@Tinysync.WsServer::accept-request].
   *
   * Returns: %TRUE to accept the connection
   *
   * Since: 1.0
   */
  /**
   * TsWsServer::create-persister:
   * @self: the server
   * @path_id: the room being opened
   *
   * Emitted when a room opens (its first client joined), as TinyBase's
   * `createPersisterForPath`. Return a [class@Tinysync.Persister] (with
   * its own new [class@Tinysync.MergeableStore]) to give the room a store
   * of its own; it is loaded before the room's messages are routed and
   * saved as changes arrive. The first handler that returns a persister
   * wins; with none, [property@Tinysync.WsServer:data-dir] decides.
   *
   * Returns: (transfer full) (nullable): a persister, or %NULL
   *
   * Since: 1.0
   */
  signals[CREATE_PERSISTER] =
    g_signal_new ("create-persister", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, persister_accumulator, NULL, NULL, TS_TYPE_PERSISTER, 1,
                  G_TYPE_STRING);

  /**
   * TsWsServer::accept-request:
   * @self: the server
   * @path_id: the path id of the requested URL
   * @msg: the upgrade request
   *
   * Emitted for every valid WebSocket upgrade request, before anything
   * else is checked (a duplicate `Sec-WebSocket-Key`, the
   * [property@Tinysync.WsServer:max-connections-per-ip] limit,
   * [signal@Tinysync.WsServer::accept-client]). The handler can read
   * everything about the request: its headers, its URI with the query
   * ([method@Soup.ServerMessage.get_uri]), its remote address
   * ([method@Soup.ServerMessage.get_remote_host]), and whether it came
   * over TLS. Return %FALSE to refuse it: the client gets the status the
   * handler set with [method@Soup.ServerMessage.set_status] (and any
   * response headers it added, such as `WWW-Authenticate`), or 403 if it
   * set none. Emission stops at the first handler that refuses. Do not
   * keep @msg or answer it otherwise.
   *
   * Returns: %TRUE to let the request go on
   *
   * Since: 1.0
   */
  signals[ACCEPT_REQUEST] =
    g_signal_new ("accept-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, accept_accumulator, NULL, NULL, G_TYPE_BOOLEAN, 2,
                  G_TYPE_STRING, SOUP_TYPE_SERVER_MESSAGE);

  signals[ACCEPT_CLIENT] =
    g_signal_new ("accept-client", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, accept_accumulator, NULL, NULL, G_TYPE_BOOLEAN, 2,
                  G_TYPE_STRING, SOUP_TYPE_MESSAGE_HEADERS);

  /**
   * TsWsServer::ignored-error:
   * @self: the server
   * @error: the error
   *
   * What TinyBase passes to `onIgnoredError`: an invalid payload
   * (%TS_ERROR_INVALID_MESSAGE, `tinybase:14`) or one going past a limit
   * (%TS_ERROR_OVERFLOW, `tinybase:15:…`), reported just before the
   * client is closed, and errors of the WebSocket connections, passed as
   * libsoup reports them. The message of a tinysync error ends with the
   * TinyBase error text in parentheses. None of these stop the server.
   *
   * Since: 1.0
   */
  signals[IGNORED_ERROR] =
    g_signal_new ("ignored-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
ts_ws_server_init (TsWsServer *self)
{
  self->max_message_size = TS_WS_SERVER_DEFAULT_MAX_MESSAGE_SIZE;
  self->request_timeout = 1.0;
  self->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) room_free);
  self->room_order = g_ptr_array_new ();
  self->keys = g_hash_table_new (g_str_hash, g_str_equal);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) pending_free);
  self->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) client_unref);
  self->ips = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->closing = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) g_ptr_array_unref);
  self->close_tasks = g_ptr_array_new_with_free_func (g_object_unref);
}

/* ---- Public API --------------------------------------------------------- */

/**
 * ts_ws_server_new:
 * @server: a [class@Soup.Server] created with
 *   [property@Soup.Server:raw-paths] set to %TRUE
 *
 * Creates a relay server answering WebSocket upgrades on every path of
 * @server that no more specific handler takes. Call
 * soup_server_listen_local() or another listen function on @server
 * yourself, in the thread whose thread-default main context should run
 * the connections.
 *
 * Returns: (transfer full): a new `TsWsServer`
 *
 * Since: 1.0
 */
TsWsServer *
ts_ws_server_new (SoupServer *server)
{
  gboolean raw_paths = FALSE;

  g_return_val_if_fail (SOUP_IS_SERVER (server), NULL);
  g_object_get (server, "raw-paths", &raw_paths, NULL);
  g_return_val_if_fail (raw_paths, NULL);

  return g_object_new (TS_TYPE_WS_SERVER, "server", server, NULL);
}

/**
 * ts_ws_server_get_server:
 * @self: a `TsWsServer`
 *
 * Gets the [class@Soup.Server] this server answers on.
 *
 * Returns: (transfer none) (nullable): the server, or %NULL after disposal
 *
 * Since: 1.0
 */
SoupServer *
ts_ws_server_get_server (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), NULL);

  return self->server;
}

/**
 * ts_ws_server_get_path_ids:
 * @self: a `TsWsServer`
 *
 * Lists the rooms that have at least one client, oldest first.
 *
 * Returns: (transfer full) (array zero-terminated=1): the path ids
 *
 * Since: 1.0
 */
char **
ts_ws_server_get_path_ids (TsWsServer *self)
{
  GStrvBuilder *builder;
  char **result;

  g_return_val_if_fail (TS_IS_WS_SERVER (self), NULL);

  builder = g_strv_builder_new ();
  for (guint i = 0; i < self->room_order->len; i++)
    g_strv_builder_add (builder, ((Room *) g_ptr_array_index (self->room_order, i))->path_id);
  result = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return result;
}

/**
 * ts_ws_server_get_client_ids:
 * @self: a `TsWsServer`
 * @path_id: a path id
 *
 * Lists the clients of a room, in the order they joined.
 *
 * Returns: (transfer full) (array zero-terminated=1): the client ids,
 *   empty if the room has no clients
 *
 * Since: 1.0
 */
char **
ts_ws_server_get_client_ids (TsWsServer *self,
                             const char *path_id)
{
  GStrvBuilder *builder;
  char **result;
  Room *room;

  g_return_val_if_fail (TS_IS_WS_SERVER (self), NULL);
  g_return_val_if_fail (path_id != NULL, NULL);

  builder = g_strv_builder_new ();
  room = g_hash_table_lookup (self->rooms, path_id);
  if (room != NULL)
    for (guint i = 0; i < room->order->len; i++)
      g_strv_builder_add (builder, ((Member *) g_ptr_array_index (room->order, i))->client->id);
  result = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return result;
}

/**
 * ts_ws_server_get_stats:
 * @self: a `TsWsServer`
 * @paths: (out) (optional): the number of rooms
 * @clients: (out) (optional): the number of room memberships, summed over
 *   the rooms (a multiplexed socket in two rooms counts twice)
 *
 * Gets TinyBase's `getStats()`.
 *
 * Since: 1.0
 */
void
ts_ws_server_get_stats (TsWsServer *self,
                        guint      *paths,
                        guint      *clients)
{
  guint n = 0;

  g_return_if_fail (TS_IS_WS_SERVER (self));

  for (guint i = 0; i < self->room_order->len; i++)
    n += ((Room *) g_ptr_array_index (self->room_order, i))->order->len;
  if (paths != NULL)
    *paths = self->room_order->len;
  if (clients != NULL)
    *clients = n;
}

void
ts_ws_server_get_usage (TsWsServer      *self,
                        TsWsServerUsage *usage)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));
  g_return_if_fail (usage != NULL);

  memset (usage, 0, sizeof *usage);
  for (guint i = 0; i < self->clients->len; i++)
    {
      Client *client = g_ptr_array_index (self->clients, i);
      guint64 written;

      if (client->server == NULL)
        continue;
      usage->clients++;
      usage->members += client->channels != NULL ? g_hash_table_size (client->channels)
                                                 : client->legacy != NULL ? 1 : 0;
      if (client->budget != NULL)
        {
          usage->fragment_buffers += ts_payload_budget_get_n_buffers (client->budget);
          usage->fragment_bytes += ts_payload_budget_get_retained (client->budget);
        }
      written = client->io != NULL ? ts_ws_io_stream_get_data_bytes_written (client->io) : 0;
      usage->queued_bytes += client->queued > written ? client->queued - written : 0;
    }
  for (guint i = 0; i < self->room_order->len; i++)
    {
      Room *room = g_ptr_array_index (self->room_order, i);

      usage->buffered_payloads += room->buffered.length;
      usage->buffered_bytes += room->buffered_bytes;
    }
}

/**
 * ts_ws_server_get_max_message_size:
 * @self: a `TsWsServer`
 *
 * Gets [property@Tinysync.WsServer:max-message-size].
 *
 * Returns: the limit in bytes
 *
 * Since: 1.0
 */
guint64
ts_ws_server_get_max_message_size (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), 0);

  return self->max_message_size;
}

/**
 * ts_ws_server_set_max_message_size:
 * @self: a `TsWsServer`
 * @max_message_size: the limit in bytes, at least 1 and at most 4 GiB - 1
 *
 * Sets [property@Tinysync.WsServer:max-message-size].
 *
 * Since: 1.0
 */
void
ts_ws_server_set_max_message_size (TsWsServer *self,
                                   guint64     max_message_size)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));
  g_return_if_fail (max_message_size >= 1 && max_message_size <= G_MAXUINT32);

  if (self->max_message_size == max_message_size)
    return;
  self->max_message_size = max_message_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_MESSAGE_SIZE]);
}

/**
 * ts_ws_server_get_request_timeout:
 * @self: a `TsWsServer`
 *
 * Gets [property@Tinysync.WsServer:request-timeout].
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
double
ts_ws_server_get_request_timeout (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), 0);

  return self->request_timeout;
}

/**
 * ts_ws_server_set_request_timeout:
 * @self: a `TsWsServer`
 * @seconds: the timeout in seconds, not negative
 *
 * Sets [property@Tinysync.WsServer:request-timeout].
 *
 * Since: 1.0
 */
void
ts_ws_server_set_request_timeout (TsWsServer *self,
                                  double      seconds)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));
  g_return_if_fail (seconds >= 0.0);

  if (self->request_timeout == seconds)
    return;
  self->request_timeout = seconds;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_REQUEST_TIMEOUT]);
}

/**
 * ts_ws_server_get_max_connections_per_ip:
 * @self: a `TsWsServer`
 *
 * Gets [property@Tinysync.WsServer:max-connections-per-ip].
 *
 * Returns: the limit, 0 for none
 *
 * Since: 1.0
 */
guint
ts_ws_server_get_max_connections_per_ip (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), 0);

  return self->max_connections_per_ip;
}

/**
 * ts_ws_server_set_max_connections_per_ip:
 * @self: a `TsWsServer`
 * @max_connections: the limit, 0 for none
 *
 * Sets [property@Tinysync.WsServer:max-connections-per-ip].
 *
 * Since: 1.0
 */
void
ts_ws_server_set_max_connections_per_ip (TsWsServer *self,
                                         guint       max_connections)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));

  if (self->max_connections_per_ip == max_connections)
    return;
  self->max_connections_per_ip = max_connections;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_CONNECTIONS_PER_IP]);
}

/**
 * ts_ws_server_get_max_messages_per_second:
 * @self: a `TsWsServer`
 *
 * Gets [property@Tinysync.WsServer:max-messages-per-second].
 *
 * Returns: the limit, 0 for none
 *
 * Since: 1.0
 */
guint
ts_ws_server_get_max_messages_per_second (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), 0);

  return self->max_messages_per_second;
}

/**
 * ts_ws_server_set_max_messages_per_second:
 * @self: a `TsWsServer`
 * @max_messages: the limit, 0 for none
 *
 * Sets [property@Tinysync.WsServer:max-messages-per-second].
 *
 * Since: 1.0
 */
void
ts_ws_server_set_max_messages_per_second (TsWsServer *self,
                                          guint       max_messages)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));

  if (self->max_messages_per_second == max_messages)
    return;
  self->max_messages_per_second = max_messages;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_MESSAGES_PER_SECOND]);
}

/**
 * ts_ws_server_destroy:
 * @self: a `TsWsServer`
 *
 * Stops accepting connections (the handler is removed from the
 * [class@Soup.Server], which stays listening: unref or disconnect it
 * yourself), closes every client connection with a plain close and
 * empties every room, emitting [signal@Tinysync.WsServer::client-removed]
 * and [signal@Tinysync.WsServer::path-removed]. The connections finish
 * their closing handshake in the background. Calling it again does
 * nothing.
 *
 * Since: 1.0
 */
void
ts_ws_server_destroy (TsWsServer *self)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));

  if (self->destroyed)
    return;
  self->destroyed = TRUE;

  g_object_ref (self);
  if (self->attached)
    {
      soup_server_remove_handler (self->server, "/");
      self->attached = FALSE;
    }
  /* Upgrades in flight are closed as soon as they complete. */
  while (self->clients->len > 0)
    {
      g_autoptr(Client) client = g_ptr_array_steal_index (self->clients, self->clients->len - 1);

      client_detach (self, client);
      client_close (client, SOUP_WEBSOCKET_CLOSE_NO_STATUS, NULL);
      release_connection (g_steal_pointer (&client->conn));
    }
  g_object_unref (self);
}

/**
 * ts_ws_server_get_data_dir:
 * @self: a `TsWsServer`
 *
 * Gets the folder where rooms keep their stores.
 *
 * Returns: (transfer none) (nullable): the folder, or %NULL
 *
 * Since: 1.0
 */
const char *
ts_ws_server_get_data_dir (TsWsServer *self)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), NULL);

  return self->data_dir;
}

/**
 * ts_ws_server_set_data_dir:
 * @self: a `TsWsServer`
 * @data_dir: (nullable) (type filename): a folder, or %NULL
 *
 * Sets [property@Tinysync.WsServer:data-dir].
 *
 * Since: 1.0
 */
void
ts_ws_server_set_data_dir (TsWsServer *self,
                           const char *data_dir)
{
  g_return_if_fail (TS_IS_WS_SERVER (self));

  if (g_strcmp0 (self->data_dir, data_dir) == 0)
    return;
  g_free (self->data_dir);
  self->data_dir = g_strdup (data_dir);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DATA_DIR]);
}

/**
 * ts_ws_server_close_async:
 * @self: a `TsWsServer`
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when closed
 * @user_data: data for @callback
 *
 * Destroys the server ([method@Tinysync.WsServer.destroy]) and completes
 * once every room's store has saved what it holds. Call it before exiting
 * a process that serves persisted rooms.
 *
 * Since: 1.0
 */
void
ts_ws_server_close_async (TsWsServer          *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (TS_IS_WS_SERVER (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, ts_ws_server_close_async);
  ts_ws_server_destroy (self);
  g_ptr_array_add (self->close_tasks, task);
  finish_close_tasks (self);
}

/**
 * ts_ws_server_close_finish:
 * @self: a `TsWsServer`
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.WsServer.close_async].
 *
 * Returns: %TRUE once closed
 *
 * Since: 1.0
 */
gboolean
ts_ws_server_close_finish (TsWsServer    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (TS_IS_WS_SERVER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
