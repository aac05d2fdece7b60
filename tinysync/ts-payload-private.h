/* ts-payload-private.h: the WebSocket payload codec (PROTOCOL.md 11.3, 12, 13, 14.1)
 *
 * SPDX-License-Identifier: MIT
 *
 * Transport-independent and plain C: no libsoup, no GObject, no I/O, no
 * timers. The client and the server share it.
 *
 * Layers, bottom up:
 *
 * 1. Message validation (11.3): ts_protocol_message_valid() and the shape
 *    predicates on a parsed TsJsonNode tree. A string node that is exactly
 *    "\uFFFC" (the bytes EF BF BC, however it was written in JSON) is
 *    JavaScript's undefined (4.5): ts_wire_is_undefined().
 *
 * 2. The receive decoder (12.3, 12.4): one TsPayloadDecoder per legacy
 *    socket, or per channel of a multiplexed socket. Every decoder of one
 *    socket shares a TsPayloadBudget, which holds the limits (maximum
 *    payload, maximum retained fragment bytes, 100 open fragment buffers)
 *    and the socket's first error: after the first error every decoder on
 *    that budget (and ts_multiplex_decode()) ignores all further frames, so
 *    the caller reports and closes exactly once. Expiry of incomplete
 *    fragmented messages uses a monotonic time the caller passes in
 *    (microseconds, as g_get_monotonic_time()), so tests are
 *    deterministic; there is no timer inside. The caller may run
 *    ts_payload_decoder_expire() from a timer to release memory early,
 *    but expiry is also applied at the start of every decode.
 *
 * 3. Multiplex envelopes (13.2, 13.3): ts_multiplex_decode() classifies a
 *    frame of a multiplexed socket as a control (Hello, Subscribe,
 *    Unsubscribe) or a channel payload, or fails it; the server and client
 *    then apply their state (negotiated, subscribed channels), helped by
 *    ts_multiplex_server_action() and ts_multiplex_echo_matches().
 *
 * 4. Encoding (12.1, 12.3, 13.2): payloads, fragmentation, channel and
 *    control envelopes.
 *
 * Sizes are byte counts: every text here is UTF-8 (WebSocket text) or
 * WTF-8 (decoded JSON strings), whose byte length is exactly TinyBase's
 * size of the JS string (12.2). Binary frames go through
 * ts_payload_text_from_binary() first (U+FFFD for invalid sequences, as
 * Node's Buffer.toString ('utf8')).
 *
 * Payload texts may contain NUL bytes (a client id line is arbitrary), so
 * every text travels with its length; GBytes results are additionally
 * NUL-terminated (not counted in their size) for convenience.
 */
#pragma once

#include <string.h>

#include <glib.h>

#include "ts-json-private.h"

G_BEGIN_DECLS

/* ---- Constants (PROTOCOL.md 12.2, 13.3) -------------------------------- */

#define TS_PAYLOAD_DEFAULT_MAX_SIZE      16777216 /* 16 MiB: payload and retained fragments */
#define TS_PAYLOAD_MAX_FRAGMENTS         1000     /* per fragmented message */
#define TS_PAYLOAD_MAX_BUFFERS           100      /* incomplete fragmented messages per socket */
#define TS_PAYLOAD_MESSAGE_ID_LEN        16
#define TS_PAYLOAD_MAX_CHANNEL_ID_SIZE   1024
#define TS_PAYLOAD_MAX_CHANNELS          100      /* subscribed channels per socket */
#define TS_PAYLOAD_MAX_CHANNEL_RESOURCES 200      /* channels set up or torn down, server */

#define TS_PAYLOAD_SERVER_ID    "S" /* the room's server store; the control line */
#define TS_PAYLOAD_MULTIPLEX_ID "M" /* the channel payload line */

/* The wire form of undefined: the string U+FFFC. */
#define TS_WIRE_UNDEFINED     "\xEF\xBF\xBC"
#define TS_WIRE_UNDEFINED_LEN 3

static inline gboolean
ts_wire_is_undefined (const TsJsonNode *node)
{
  return node->type == TS_JSON_STRING && node->len == TS_WIRE_UNDEFINED_LEN &&
         memcmp (node->u.str, TS_WIRE_UNDEFINED, TS_WIRE_UNDEFINED_LEN) == 0;
}

/* ---- Message validation (11.3) ------------------------------------------ */

typedef enum {
  TS_MESSAGE_RESPONSE = 0,
  TS_MESSAGE_GET_CONTENT_HASHES = 1,
  TS_MESSAGE_CONTENT_HASHES = 2,
  TS_MESSAGE_CONTENT_DIFF = 3,
  TS_MESSAGE_GET_TABLE_DIFF = 4,
  TS_MESSAGE_GET_ROW_DIFF = 5,
  TS_MESSAGE_GET_CELL_DIFF = 6,
  TS_MESSAGE_GET_VALUE_DIFF = 7,
} TsMessageType;

/* hash: a finite integral number 0 <= h <= 4294967295 (-0 included). */
gboolean ts_protocol_is_hash           (const TsJsonNode *node);
/* [hash, hash] */
gboolean ts_protocol_is_content_hashes (const TsJsonNode *node);
/* An object whose member values are hashes (depth 0) or hash trees of
 * depth - 1. */
gboolean ts_protocol_is_hash_tree      (const TsJsonNode *node,
                                        guint             depth);
/* [thing] or [thing, hlc] with hlc "" or 16 alphabet characters (no
 * time check); depth > 0: thing is an object of stamps of depth - 1;
 * depth 0: thing is undefined, a string, a finite number, a boolean,
 * null, an array or an object. A stamp with a hash (3 items) is invalid.
 * TablesStamp = 3, ValuesStamp = 1. */
gboolean ts_protocol_is_stamp          (const TsJsonNode *node,
                                        guint             depth);
/* The body check of one message type (0..7; anything else is FALSE). */
gboolean ts_protocol_body_valid        (int               type,
                                        const TsJsonNode *body);

/* isProtocolMessageValid on a parsed [requestId, message, body] array:
 * exactly 3 items, requestId null or a string (not undefined), message a
 * finite integral number 0..7 (so 2.0, 2e0 and -0 are fine) and a valid
 * body. On success the optional outputs are set: *request_id is NULL for
 * null, else the WTF-8 string inside the node's document. */
gboolean ts_protocol_message_valid     (const TsJsonNode  *message,
                                        const char       **request_id,
                                        gsize             *request_id_len,
                                        int               *type,
                                        const TsJsonNode **body);

/* ---- Outcomes: close codes and reasons (12.4, 13.4, 13.5) --------------- */

typedef enum {
  TS_PAYLOAD_OK = 0,
  TS_PAYLOAD_INVALID,             /* "tinybase:14",           close 1007 */
  TS_PAYLOAD_OVERFLOW_SOCKET,     /* "tinybase:15:socket",    close 1013 */
  TS_PAYLOAD_OVERFLOW_FRAGMENTS,  /* "tinybase:15:fragments", close 1013 */
  TS_PAYLOAD_OVERFLOW_CHANNELS,   /* "tinybase:15:channels",  close 1013 */
  /* Not produced by this layer; listed so the client and server close
   * through the same table. */
  TS_PAYLOAD_OVERFLOW_SERVER,     /* "tinybase:15:server",    close 1013 */
  TS_PAYLOAD_OVERFLOW_CLIENT,     /* "tinybase:15:client",    close 1013 */
  TS_PAYLOAD_OVERFLOW_CONTROLS,   /* "tinybase:15:controls",  close 1013 */
} TsPayloadStatus;

/* 1007 for INVALID, 1013 for every overflow, 0 for OK. */
guint16     ts_payload_status_close_code (TsPayloadStatus status);
/* The TinyBase error message, also the close reason; NULL for OK. */
const char *ts_payload_status_reason     (TsPayloadStatus status);
/* TRUE for the tinybase:15 family. */
gboolean    ts_payload_status_is_overflow (TsPayloadStatus status);

/* ---- Per-socket budget -------------------------------------------------- */

typedef struct _TsPayloadBudget TsPayloadBudget;

/* max_payload_size: the largest accepted frame text in bytes (TinyBase:
 * 16 MiB; tinysync's max-message-size); max_retained_size: bytes that
 * incomplete fragmented messages may retain on the socket (TinyBase: 16
 * MiB). 0 means the default TS_PAYLOAD_DEFAULT_MAX_SIZE. */
TsPayloadBudget *ts_payload_budget_new             (gsize            max_payload_size,
                                                    gsize            max_retained_size);
TsPayloadBudget *ts_payload_budget_ref             (TsPayloadBudget *budget);
void             ts_payload_budget_unref           (TsPayloadBudget *budget);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TsPayloadBudget, ts_payload_budget_unref)

gsize            ts_payload_budget_get_max_payload_size  (TsPayloadBudget *budget);
gsize            ts_payload_budget_get_max_retained_size (TsPayloadBudget *budget);
/* Open incomplete fragmented messages and their retained bytes, summed
 * over every decoder on this budget. */
guint            ts_payload_budget_get_n_buffers   (TsPayloadBudget *budget);
gsize            ts_payload_budget_get_retained    (TsPayloadBudget *budget);
/* TS_PAYLOAD_OK while the socket is healthy, else its first error. */
TsPayloadStatus  ts_payload_budget_get_status      (TsPayloadBudget *budget);
/* Records an error found by the caller (for example a channel payload for
 * an unknown channel, or one channel too many). Returns TRUE if this is
 * the socket's first error: then report it and close with
 * ts_payload_status_close_code()/ts_payload_status_reason(); FALSE if the
 * socket had already failed (do nothing). */
gboolean         ts_payload_budget_fail            (TsPayloadBudget *budget,
                                                    TsPayloadStatus  status);

/* ---- Receive decoder (12.3, 12.4) --------------------------------------- */

typedef struct _TsPayloadDecoder TsPayloadDecoder;

typedef enum {
  TS_PAYLOAD_RESULT_MESSAGE,  /* a complete valid message: *out_message */
  TS_PAYLOAD_RESULT_BUFFERED, /* a fragment was kept; nothing to deliver yet */
  TS_PAYLOAD_RESULT_CONTROL,  /* ts_multiplex_decode(): a valid control */
  TS_PAYLOAD_RESULT_CHANNEL,  /* ts_multiplex_decode(): a channel payload */
  TS_PAYLOAD_RESULT_ERROR,    /* this frame failed the socket: *out_status */
  TS_PAYLOAD_RESULT_IGNORED,  /* the socket had already failed */
} TsPayloadResult;

/* A decoded message. client_id is the first line: the recipient when a
 * server decodes what a client sent, the sender when a client decodes.
 * remainders holds the original remainder texts (GBytes) to relay, byte
 * for byte: one for an unfragmented payload, else every fragment envelope
 * ("<messageId>\n<i>\n<n>\n<piece>") in index order. doc/request_id/type/
 * body are the parsed message (body may contain undefined markers); for a
 * fragmented message they come from the reassembled pieces. */
typedef struct {
  char             *client_id;      /* NUL-terminated, client_id_len bytes */
  gsize             client_id_len;
  GPtrArray        *remainders;     /* element-type GBytes, NUL-terminated data */
  gboolean          fragmented;
  TsJsonDoc        *doc;
  const char       *request_id;     /* NULL for a null request id */
  gsize             request_id_len;
  int               type;           /* TsMessageType */
  const TsJsonNode *body;
} TsPayloadMessage;

void ts_payload_message_free (TsPayloadMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TsPayloadMessage, ts_payload_message_free)

/* budget: the socket's shared budget (NULL: a private default one).
 * lifetime_seconds: how long an incomplete fragmented message is kept
 * after its first fragment (the receiver's requestTimeoutSeconds;
 * WsServerSimple: 1). Like Node's setTimeout, a lifetime below 1 ms or
 * above 2^31 - 1 ms counts as 1 ms. */
TsPayloadDecoder *ts_payload_decoder_new          (TsPayloadBudget  *budget,
                                                   double            lifetime_seconds);
/* Frees the decoder and returns its buffered fragments to the budget. */
void              ts_payload_decoder_free         (TsPayloadDecoder *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TsPayloadDecoder, ts_payload_decoder_free)

TsPayloadBudget  *ts_payload_decoder_get_budget   (TsPayloadDecoder *self);

/* Processes one frame's text (12.4), in order: a failed socket ignores it;
 * size > max payload is an overflow (":fragments" if the text starts like
 * a fragment, else ":socket"); no "\n" is invalid; split at the first
 * "\n"; a remainder that parses as a valid [requestId, message, body] is
 * delivered; else a fragment envelope is buffered with the checks of 12.3
 * in TinyBase's order (total > 1000 overflow; total 0 or index >= total
 * invalid; a new buffer beyond 100 overflow; another total or a repeated
 * index invalid; retained bytes + this remainder (+ key once) beyond the
 * cap overflow); a completed message is reassembled and validated; anything
 * else is invalid. now is the caller's monotonic time in microseconds;
 * buffers whose lifetime has passed (now >= first fragment + lifetime) are
 * dropped first. On MESSAGE *out_message is set (transfer full); on ERROR
 * *out_status is set, the budget has failed and this decoder's buffers are
 * dropped. out_status may be NULL. */
TsPayloadResult   ts_payload_decoder_decode       (TsPayloadDecoder  *self,
                                                   const char        *text,
                                                   gsize              len,
                                                   gint64             now,
                                                   TsPayloadMessage **out_message,
                                                   TsPayloadStatus   *out_status);

/* Drops incomplete messages whose lifetime has passed at now. */
void              ts_payload_decoder_expire       (TsPayloadDecoder *self,
                                                   gint64            now);
/* When the oldest incomplete message expires, -1 if there is none. */
gint64            ts_payload_decoder_get_next_expiry (TsPayloadDecoder *self);
/* Drops every incomplete message (channel unsubscribed, socket closed). */
void              ts_payload_decoder_clear        (TsPayloadDecoder *self);
guint             ts_payload_decoder_get_n_buffers (TsPayloadDecoder *self);

/* TRUE if text (after the first line) is a fragment envelope start:
 * ^[^\n]*\n[-0-9A-Z_a-z]{16}\n\d+\n\d+\n (the 12.4 step 2 rule). */
gboolean          ts_payload_looks_like_fragment  (const char *text,
                                                   gsize       len);

/* ---- Encoding (12.1, 12.3) ---------------------------------------------- */

/* client_id "\n" remainder. client_id NULL is "" (broadcast); lengths may
 * be -1 for NUL-terminated text. */
GBytes    *ts_payload_build              (const char *client_id,
                                          gssize      client_id_len,
                                          const char *remainder,
                                          gssize      remainder_len);

/* JSON [requestId, type, body]: request_id NULL writes null; body_json is
 * the JSON text of the body (undefined already written as "\uFFFC"). */
char      *ts_payload_encode_remainder   (const char *request_id,
                                          gssize      request_id_len,
                                          int         type,
                                          const char *body_json,
                                          gssize      body_json_len,
                                          gsize      *out_len);

/* The fragment target size of 12.3 step 1 for fragment_size F >= 1:
 * max (F, ceil (remainder_size / 1000) + 3). */
gsize      ts_payload_fragment_target    (gsize       remainder_size,
                                          gsize       fragment_size);

/* Splits text into pieces of at most target bytes at code point
 * boundaries (a piece exceeds target only when it is one code point).
 * Returns the number of pieces (at least 1) and, if ends is not NULL,
 * a newly allocated array of each piece's end offset. */
guint      ts_payload_split              (const char  *text,
                                          gsize        len,
                                          gsize        target,
                                          gsize      **ends);

/* The payloads (element-type GBytes) that send one remainder: fragment_size
 * 0 means no fragmentation (TinyBase: fragmentSize undefined or < 1; pass
 * floor (F) for a JS F). A single piece gives the plain payload; else
 * "client_id\n<messageId>\n<i>\n<n>\n<piece>" for each piece, with
 * message_id (16 characters) or, if NULL, ts_random_id (16). */
GPtrArray *ts_payload_fragment           (const char *client_id,
                                          gssize      client_id_len,
                                          const char *remainder,
                                          gsize       remainder_len,
                                          gsize       fragment_size,
                                          const char *message_id);

/* ts_payload_encode_remainder + ts_payload_fragment: createPayloads. */
GPtrArray *ts_payload_encode             (const char *client_id,
                                          gssize      client_id_len,
                                          const char *request_id,
                                          gssize      request_id_len,
                                          int         type,
                                          const char *body_json,
                                          gssize      body_json_len,
                                          gsize       fragment_size);

/* ---- Multiplexing (13) -------------------------------------------------- */

typedef enum {
  TS_CHANNEL_ID_VALID,
  TS_CHANNEL_ID_INVALID,   /* tinybase:14 on the wire, tinybase:6 locally */
  TS_CHANNEL_ID_TOO_LONG,  /* more than 1024 bytes: tinybase:15:channels */
} TsChannelIdCheck;

/* 13.3: too long is checked first (size > 1024); then non-empty, none of
 * \n \r ? #, and every "/"-separated segment non-empty and not "." or "..". */
TsChannelIdCheck ts_channel_id_check (const char *channel_id,
                                      gsize       len);

typedef enum {
  TS_MULTIPLEX_HELLO = 0,
  TS_MULTIPLEX_SUBSCRIBE = 1,
  TS_MULTIPLEX_UNSUBSCRIBE = 2,
} TsMultiplexControl;

#define TS_MULTIPLEX_VERSION 1

typedef struct {
  /* TS_PAYLOAD_RESULT_CONTROL */
  TsMultiplexControl control;
  TsJsonDoc         *doc;
  const char        *request_id;      /* NULL for null (Unsubscribe) */
  gsize              request_id_len;
  const TsJsonNode  *control_node;    /* as received (JS loose ==), for echoes */
  const TsJsonNode  *body_node;
  /* Subscribe and Unsubscribe: the body string (in doc). Channel payload:
   * the second line (in the caller's text). */
  const char        *channel_id;
  gsize              channel_id_len;
  gboolean           channel_id_too_long; /* control only; channel frames fail */
  /* TS_PAYLOAD_RESULT_CHANNEL: the inner legacy payload, in the caller's text */
  const char        *inner;
  gsize              inner_len;
} TsMultiplexFrame;

/* Classifies one frame of a multiplexed socket (client or server side):
 * - the socket failed before: IGNORED;
 * - size > max payload: ERROR OVERFLOW_SOCKET (even for fragment-like text);
 * - "S\n" + a 3-array [requestId, m, [control, body]] with requestId null
 *   or a string, m == -1 and control == 0, 1 or 2 under JavaScript loose
 *   equality, and: Hello: requestId a string and body == 1 (loose);
 *   Subscribe: requestId a string; Unsubscribe: requestId null; both with
 *   a string body that is a valid channel id or longer than 1024 bytes
 *   (channel_id_too_long): CONTROL;
 * - "M\n" + channelId + "\n" + inner: a channel id longer than 1024 bytes
 *   is ERROR OVERFLOW_CHANNELS; a valid one is CHANNEL;
 * - anything else: ERROR INVALID.
 * On ERROR the budget has failed. Clear *frame with
 * ts_multiplex_frame_clear(). The caller applies its state: see
 * ts_multiplex_server_action() (13.5); a client fails a Subscribe or
 * Unsubscribe with channel_id_too_long as OVERFLOW_CHANNELS and a channel
 * payload for an unknown channel as INVALID (13.4). */
TsPayloadResult ts_multiplex_decode      (TsPayloadBudget  *budget,
                                          const char       *text,
                                          gsize             len,
                                          TsMultiplexFrame *frame,
                                          TsPayloadStatus  *out_status);
void            ts_multiplex_frame_clear (TsMultiplexFrame *frame);

typedef enum {
  TS_MULTIPLEX_ACTION_IGNORE,       /* Subscribe/Unsubscribe before Hello */
  TS_MULTIPLEX_ACTION_HELLO,        /* mark negotiated, echo */
  TS_MULTIPLEX_ACTION_SUBSCRIBE,    /* join the channel's room, echo at once */
  TS_MULTIPLEX_ACTION_ECHO,         /* already subscribed: echo only */
  TS_MULTIPLEX_ACTION_UNSUBSCRIBE,  /* leave the room if subscribed; no echo */
  TS_MULTIPLEX_ACTION_OVERFLOW,     /* fail with OVERFLOW_CHANNELS */
} TsMultiplexServerAction;

/* 13.5 for a CONTROL frame. subscribed: the channel already is; n_channels:
 * subscribed channels; n_resources: channels not yet released (including
 * those being torn down). */
TsMultiplexServerAction ts_multiplex_server_action (const TsMultiplexFrame *frame,
                                                    gboolean                negotiated,
                                                    gboolean                subscribed,
                                                    guint                   n_channels,
                                                    guint                   n_resources);

/* Client (13.4): does this CONTROL frame acknowledge the pending control
 * (request_id, control, channel_id; channel_id NULL for Hello)? TinyBase
 * requires a non-empty request id, the same control (loose ==) and the
 * same body (strict ===: the number 1 for Hello, the channel id string). */
gboolean        ts_multiplex_echo_matches (const TsMultiplexFrame *frame,
                                           const char             *request_id,
                                           gsize                   request_id_len,
                                           TsMultiplexControl      control,
                                           const char             *channel_id,
                                           gsize                   channel_id_len);

/* "S\n" JSON([requestId, -1, [control, body]]) with body 1 for Hello
 * (channel_id NULL) or the channel id string. request_id NULL is null. */
GBytes *ts_multiplex_encode_control (const char        *request_id,
                                     gssize             request_id_len,
                                     TsMultiplexControl control,
                                     const char        *channel_id,
                                     gssize             channel_id_len);
/* The server's echo of a received control: [requestId, -1, [control, body]]
 * re-serialized from the parsed values (not the received text). */
GBytes *ts_multiplex_encode_echo    (const TsMultiplexFrame *frame);
/* "M\n" channel_id "\n" payload. */
GBytes *ts_multiplex_wrap           (const char *channel_id,
                                     gssize      channel_id_len,
                                     const char *payload,
                                     gsize       payload_len);

/* The room of a channel (13.5): channel_id if base is "", else
 * base "/" channel_id. */
char   *ts_multiplex_room_path      (const char *base_path,
                                     const char *channel_id);

/* ---- Rooms and frames --------------------------------------------------- */

/* 14.1: the path id is what the regex \/([^?]*) captures in the raw request
 * target: after the first "/" up to the first "?" or the end, no decoding.
 * FALSE if the target contains no "/" (TinyBase then ignores the
 * connection). *path_id is newly allocated. */
gboolean ts_path_id_from_request_target (const char  *target,
                                         gsize        len,
                                         char       **path_id,
                                         gsize       *path_id_len);

/* The text of a binary frame, as Node's Buffer.toString ('utf8'): UTF-8
 * decoding with each maximal invalid subpart replaced by U+FFFD (the
 * WHATWG decoder). Newly allocated, NUL-terminated. */
char    *ts_payload_text_from_binary    (const char *data,
                                         gsize       len,
                                         gsize      *out_len);

/* ---- JavaScript semantics used by the envelopes ------------------------- */

/* ECMAScript StringToNumber on a WTF-8 string: trims JS white space and
 * line terminators; "" is 0; decimal literals with optional sign,
 * fraction and exponent, "Infinity" with optional sign, and unsigned
 * 0x/0o/0b integers; anything else NaN. */
double   ts_js_string_to_number         (const char *s,
                                         gsize       len);

/* JavaScript `value == x` for a wire value (undefined markers count as
 * undefined) and a number: numbers compare by value, booleans as 0/1,
 * strings through StringToNumber, arrays through Array.prototype.join
 * (elements: undefined and null as "", numbers via Number::toString,
 * nested arrays joined); null, undefined and objects are never equal
 * (TinyBase's parsed objects have no prototype: comparing them throws). */
gboolean ts_js_loosely_equals_number    (const TsJsonNode *node,
                                         double            x);

G_END_DECLS
