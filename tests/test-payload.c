/* test-payload.c: the WebSocket payload codec (ts-payload-private.h)
 *
 * SPDX-License-Identifier: MIT
 *
 * What the vector tests cover (tests/data/invalid-messages.json, recorded
 * with the real TinyBase 10.0.1):
 *
 * - serverLegacy (62 cases) and serverSimpleLegacy (10): every payload is
 *   replayed through one TsPayloadDecoder (lifetime 0.3 s, resp. 1 s; the
 *   {wait} items advance the fake clock). Asserted for every case: the
 *   close code/reason (or that the socket stays open), the ignored error,
 *   that later frames are ignored after the first error, and the frames
 *   the observer receives under a minimal routing model (a delivered
 *   message addressed to "" or to the observer is relayed as
 *   "{SENDER}\n" + each original remainder, a fragmented one as its
 *   original fragments). Left to the server-level tests: 3 routing cases
 *   (unknown recipient, "S" without server store, addressed to the
 *   observer: the codec asserts they are valid and carry that recipient;
 *   the relay model is only what the server must do), 2 binary-frame
 *   cases (the codec converts the bytes with ts_payload_text_from_binary;
 *   that the server treats binary frames as text is server-level) and 1
 *   WebSocket-level case (invalid UTF-8 in a text frame: libsoup closes
 *   with 1007 and an empty reason before the codec sees anything; the test
 *   only checks that the bytes are not UTF-8).
 * - serverMultiple (22) and serverSimpleMultiple (4): replayed through
 *   ts_multiplex_decode plus a minimal server state machine built on
 *   ts_multiplex_server_action (negotiated flag, channel table, one decoder
 *   per channel on a shared budget). Asserted: close code/reason, every
 *   echo sent back (byte for byte, re-serialized by
 *   ts_multiplex_encode_echo) and the frames relayed to the legacy observer
 *   on base/pets. Room creation, listeners and server stores are
 *   server-level.
 * - clientLegacy (25): replayed through a decoder (lifetime 0.3 s).
 *   Asserted: the close code/reason or open, and for open sockets the
 *   exact onReceive arguments [fromClientId, requestId, message, body];
 *   every frame the client sent is re-encoded byte for byte from its
 *   parsed form. Left to synchronizer tests: what the client answers,
 *   store contents and request timeouts (clientSent, storeContentAfter,
 *   timeout entries of clientIgnoredErrors).
 * - clientMultiple (6): a minimal client state machine (pending Hello and
 *   Subscribe, channel "pets"): close code/reason, onReceive, whether the
 *   Hello/Subscribe echoes match; every frame the client sent is rebuilt
 *   with the encoders. Left to client-level tests: the two timeouts
 *   (tinybase:4:0, tinybase:4:1) and the clean-up frames after them (the
 *   codec asserts the echo is absent or does not match).
 * - clientMultipleAgainstLegacyServer: subprotocol negotiation, not codec.
 *
 * tests/data/wire-transcript.json: every frame of every transcript is
 * decoded (legacy or multiplexed by the negotiated subprotocol) and must
 * be valid; each TinyBase-written message is re-encoded byte for byte; the
 * `fragmented` transcript's three fragmented messages are re-fragmented
 * with the same fragment size (60 for the client, 200 for the server
 * store) and compared piece by piece (with the original and with a random
 * message id, ignoring the 16 id characters); pathIdCases check the path
 * id rule.
 *
 * The hand-written tests cover each rule on its own, with a small budget
 * for the size boundaries plus one real 16 MiB boundary.
 */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "tinysync/ts-hlc-private.h"
#include "tinysync/ts-json-private.h"
#include "tinysync/ts-payload-private.h"

#define SEC  G_USEC_PER_SEC
#define T0   (G_GINT64_CONSTANT (1000) * SEC)

#define OBSERVER_ID "OBSERVERobserverOBSERV=="
#define HELLO_RID   "HelloRequestId16"
#define SUB_RID     "SubscribeReqId16"

/* ======================================================================= */
/* Helpers                                                                  */
/* ======================================================================= */

/* g_test_message with the text escaped (payloads contain newlines). */
static void
note (const char *prefix,
      const char *text)
{
  g_autofree char *escaped = g_strescape (text, NULL);

  g_test_message ("%s%s", prefix, escaped);
}

static TsJsonDoc *
load_vectors (const char *name)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", name, NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  TsJsonDoc *doc;

  g_file_get_contents (path, &text, &len, &error);
  g_assert_no_error (error);
  doc = ts_json_parse (text, (gssize) len, &error);
  g_assert_no_error (error);
  g_assert_nonnull (doc);
  return doc;
}

static const TsJsonNode *
member (TsJsonDoc        *doc,
        const TsJsonNode *object,
        const char       *key)
{
  g_assert_cmpint (object->type, ==, TS_JSON_OBJECT);
  return ts_json_object_get (doc, object, key, strlen (key));
}

static const char *
member_str (TsJsonDoc        *doc,
            const TsJsonNode *object,
            const char       *key)
{
  const TsJsonNode *node = member (doc, object, key);

  if (node == NULL || node->type != TS_JSON_STRING)
    return NULL;
  return node->u.str;
}

static void
assert_bytes_eq (GBytes     *bytes,
                 const char *expected,
                 gsize       expected_len)
{
  gsize size;
  const char *data = g_bytes_get_data (bytes, &size);

  if (size != expected_len || memcmp (data, expected, size) != 0)
    {
      g_autofree char *a = g_strescape (data ? data : "", NULL);
      g_autofree char *b = g_strescape (expected, NULL);

      g_error ("bytes differ:\n  got      %s\n  expected %s", a, b);
    }
}

static char *
node_to_json (const TsJsonNode *node)
{
  return ts_json_node_to_string (node, NULL);
}

static TsJsonDoc *
parse (const char *json)
{
  g_autoptr(GError) error = NULL;
  TsJsonDoc *doc = ts_json_parse (json, -1, &error);

  g_assert_no_error (error);
  return doc;
}

/* A frame of a vector: text, or a pause, or bytes the WebSocket layer
 * rejects (invalid UTF-8 in a text frame). */
typedef struct {
  GBytes  *text;
  gint64   wait;
  gboolean ws_rejects;
  gboolean binary;
} Frame;

static void
frame_clear (Frame *frame)
{
  g_clear_pointer (&frame->text, g_bytes_unref);
}

static char *
substitute (const char *text,
            gsize       len)
{
  GString *s = g_string_new_len (text, (gssize) len);

  g_string_replace (s, "{OBSERVER}", OBSERVER_ID, 0);
  g_string_replace (s, "{HELLO}", "\"" HELLO_RID "\"", 0);
  g_string_replace (s, "{SUB}", "\"" SUB_RID "\"", 0);
  return g_string_free (s, FALSE);
}

#define assert_bytes_str(bytes, s) assert_bytes_eq ((bytes), (s), strlen (s))

static GBytes *
bytes_from_hex (const char *hex)
{
  gsize n = strlen (hex) / 2;
  guint8 *data = g_malloc (n + 1);

  for (gsize i = 0; i < n; i++)
    data[i] = (guint8) (g_ascii_xdigit_value (hex[2 * i]) * 16 + g_ascii_xdigit_value (hex[2 * i + 1]));
  data[n] = 0;
  return g_bytes_new_take (data, n);
}

static void
frame_from_descriptor (TsJsonDoc        *doc,
                       const TsJsonNode *desc,
                       Frame            *frame)
{
  const TsJsonNode *node;
  g_autoptr(GBytes) raw = NULL;

  memset (frame, 0, sizeof *frame);
  if (desc->type == TS_JSON_STRING)
    {
      char *text = substitute (desc->u.str, desc->len);

      frame->text = g_bytes_new_take (text, strlen (text));
      return;
    }
  g_assert_cmpint (desc->type, ==, TS_JSON_OBJECT);
  if ((node = member (doc, desc, "wait")) != NULL)
    {
      frame->wait = (gint64) node->u.num * 1000;
      return;
    }
  node = member (doc, desc, "binary");
  frame->binary = node != NULL && node->type == TS_JSON_TRUE;
  if ((node = member (doc, desc, "utf8Hex")) != NULL)
    raw = bytes_from_hex (node->u.str);
  else
    {
      GString *s = g_string_new (member_str (doc, desc, "text"));
      const TsJsonNode *repeat = member (doc, desc, "repeat");
      const char *suffix = member_str (doc, desc, "suffix");

      if (repeat != NULL)
        {
          const TsJsonNode *unit = &repeat->u.items[0];
          gsize count = (gsize) repeat->u.items[1].u.num;

          g_assert_cmpuint (unit->len, ==, 1);
          g_string_set_size (s, s->len + count);
          memset (s->str + s->len - count, unit->u.str[0], count);
        }
      if (suffix != NULL)
        g_string_append (s, suffix);
      {
        char *text = substitute (s->str, s->len);
        gsize text_len = strlen (text);

        g_string_free (s, TRUE);
        raw = g_bytes_new_take (text, text_len);
      }
    }

  if (frame->binary)
    {
      gsize size, out_len;
      const char *data = g_bytes_get_data (raw, &size);
      char *text = ts_payload_text_from_binary (data, size, &out_len);

      frame->text = g_bytes_new_take (text, out_len);
    }
  else
    {
      gsize size;
      const char *data = g_bytes_get_data (raw, &size);

      if (!g_utf8_validate_len (data, size, NULL))
        frame->ws_rejects = TRUE;
      else
        frame->text = g_bytes_ref (raw);
    }
}

/* The remainder rebuilt from a parsed message: must equal what TinyBase
 * wrote (it writes canonical JSON). */
static char *
message_reencode_remainder (TsPayloadMessage *message,
                            gsize            *len)
{
  g_autofree char *body = node_to_json (message->body);

  return ts_payload_encode_remainder (message->request_id, (gssize) message->request_id_len,
                                      message->type, body, -1, len);
}

/* Asserts that the unfragmented frame text is exactly what our encoder
 * writes for the parsed message. */
static void
assert_message_reencodes (TsPayloadMessage *message,
                          const char       *text,
                          gsize             len)
{
  g_autofree char *body = node_to_json (message->body);
  g_autoptr(GPtrArray) payloads = NULL;

  g_assert_false (message->fragmented);
  payloads = ts_payload_encode (message->client_id, (gssize) message->client_id_len,
                                message->request_id, (gssize) message->request_id_len,
                                message->type, body, -1, 0);
  g_assert_cmpuint (payloads->len, ==, 1);
  assert_bytes_eq (payloads->pdata[0], text, len);
}

static gboolean
str_is (const char *a,
        gsize       a_len,
        const char *b)
{
  return a_len == strlen (b) && memcmp (a, b, a_len) == 0;
}

/* ======================================================================= */
/* Legacy replay (server and client sides decode alike)                     */
/* ======================================================================= */

typedef struct {
  TsPayloadStatus  status;
  guint            n_errors;
  guint            n_ignored;
  gboolean         ws_rejected;
  GPtrArray       *messages;
  guint            n_buffers_left;
} LegacyRun;

static void
legacy_run_clear (LegacyRun *run)
{
  g_clear_pointer (&run->messages, g_ptr_array_unref);
}

static void
legacy_replay (TsJsonDoc        *doc,
               const TsJsonNode *payloads,
               double            lifetime,
               LegacyRun        *run)
{
  g_autoptr(TsPayloadDecoder) decoder = ts_payload_decoder_new (NULL, lifetime);
  gint64 now = T0;

  memset (run, 0, sizeof *run);
  run->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) ts_payload_message_free);
  for (guint32 i = 0; i < payloads->len; i++)
    {
      Frame frame;
      TsPayloadMessage *message = NULL;
      TsPayloadStatus status = TS_PAYLOAD_OK;
      TsPayloadResult result;
      gsize size;
      const char *text;

      frame_from_descriptor (doc, &payloads->u.items[i], &frame);
      if (frame.wait)
        {
          now += frame.wait;
          continue;
        }
      if (frame.ws_rejects)
        {
          /* The WebSocket layer closes the socket: nothing more arrives. */
          run->ws_rejected = TRUE;
          frame_clear (&frame);
          break;
        }
      text = g_bytes_get_data (frame.text, &size);
      result = ts_payload_decoder_decode (decoder, text, size, now, &message, &status);
      switch (result)
        {
        case TS_PAYLOAD_RESULT_MESSAGE:
          g_assert_cmpint (run->status, ==, TS_PAYLOAD_OK);
          g_ptr_array_add (run->messages, message);
          break;
        case TS_PAYLOAD_RESULT_BUFFERED:
          g_assert_cmpint (run->status, ==, TS_PAYLOAD_OK);
          break;
        case TS_PAYLOAD_RESULT_ERROR:
          g_assert_cmpint (run->status, ==, TS_PAYLOAD_OK);
          g_assert_cmpint (status, !=, TS_PAYLOAD_OK);
          run->status = status;
          run->n_errors++;
          g_assert_cmpuint (ts_payload_decoder_get_n_buffers (decoder), ==, 0);
          break;
        case TS_PAYLOAD_RESULT_IGNORED:
          g_assert_cmpint (run->status, !=, TS_PAYLOAD_OK);
          run->n_ignored++;
          break;
        case TS_PAYLOAD_RESULT_CONTROL:
        case TS_PAYLOAD_RESULT_CHANNEL:
        default:
          g_assert_not_reached ();
        }
      frame_clear (&frame);
    }
  run->n_buffers_left = ts_payload_decoder_get_n_buffers (decoder);
  g_assert_cmpint (ts_payload_budget_get_status (ts_payload_decoder_get_budget (decoder)), ==, run->status);
}

/* The expected outcome {code, reason} or null. */
static void
assert_outcome (TsJsonDoc        *doc,
                const TsJsonNode *closed,
                TsPayloadStatus   status)
{
  if (closed == NULL || closed->type == TS_JSON_NULL)
    {
      g_assert_cmpint (status, ==, TS_PAYLOAD_OK);
      return;
    }
  g_assert_cmpint (status, !=, TS_PAYLOAD_OK);
  g_assert_cmpfloat (member (doc, closed, "code")->u.num, ==, ts_payload_status_close_code (status));
  g_assert_cmpstr (member_str (doc, closed, "reason"), ==, ts_payload_status_reason (status));
}

static gboolean
outcome_is_ws_level (TsJsonDoc        *doc,
                     const TsJsonNode *closed)
{
  const char *reason;

  if (closed == NULL || closed->type == TS_JSON_NULL)
    return FALSE;
  reason = member_str (doc, closed, "reason");
  return reason != NULL && reason[0] == '\0';
}

/* Compares a list of strings with a vector array; an expected string
 * ending with "…" (the generator truncated it) is a prefix. */
static void
assert_string_list (TsJsonDoc        *doc,
                    const TsJsonNode *expected,
                    GPtrArray        *got)
{
  g_assert_cmpint (expected->type, ==, TS_JSON_ARRAY);
  g_assert_cmpuint (got->len, ==, expected->len);
  for (guint i = 0; i < got->len; i++)
    {
      const TsJsonNode *e = &expected->u.items[i];
      gsize size;
      const char *data = g_bytes_get_data (got->pdata[i], &size);

      if (e->len >= 3 && g_str_has_suffix (e->u.str, "\xE2\x80\xA6"))
        {
          g_assert_cmpuint (size, >=, e->len - 3);
          g_assert_true (memcmp (data, e->u.str, e->len - 3) == 0);
        }
      else
        assert_bytes_eq (got->pdata[i], e->u.str, e->len);
    }
}

typedef struct {
  guint cases;
  guint full;            /* outcome and relays asserted */
  guint routing;         /* valid + recipient asserted; routing is server-level */
  guint binary;          /* conversion asserted; frame type is server-level */
  guint ws_level;        /* rejected by the WebSocket layer */
  guint closed;
} LegacyCounts;

static void
check_server_legacy_cases (const TsJsonNode *cases,
                           TsJsonDoc        *doc,
                           double            lifetime,
                           gboolean          has_ignored_errors,
                           LegacyCounts     *counts)
{
  for (guint32 c = 0; c < cases->len; c++)
    {
      const TsJsonNode *item = &cases->u.items[c];
      const char *description = member_str (doc, item, "description");
      const TsJsonNode *closed = member (doc, item, "senderClosedWith");
      g_autoptr(GPtrArray) relayed = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      gboolean routed_elsewhere = FALSE, binary = FALSE;
      LegacyRun run;

      g_test_message ("server legacy case: %s", description);
      counts->cases++;
      legacy_replay (doc, member (doc, item, "payloads"), lifetime, &run);

      for (guint32 i = 0; i < member (doc, item, "payloads")->len; i++)
        {
          const TsJsonNode *desc = &member (doc, item, "payloads")->u.items[i];

          if (desc->type == TS_JSON_OBJECT && member (doc, desc, "binary") != NULL)
            binary = TRUE;
        }

      if (outcome_is_ws_level (doc, closed))
        {
          g_assert_true (run.ws_rejected);
          g_assert_cmpfloat (member (doc, closed, "code")->u.num, ==, 1007);
          counts->ws_level++;
          counts->closed++;
          legacy_run_clear (&run);
          continue;
        }
      g_assert_false (run.ws_rejected);
      assert_outcome (doc, closed, run.status);
      if (run.status != TS_PAYLOAD_OK)
        counts->closed++;
      if (has_ignored_errors)
        {
          const TsJsonNode *errors = member (doc, item, "serverIgnoredErrors");

          g_assert_cmpuint (errors->len, ==, run.n_errors);
          if (run.n_errors)
            g_assert_cmpstr (errors->u.items[0].u.str, ==, ts_payload_status_reason (run.status));
        }

      /* Relay model: to "" (broadcast) or to the observer. */
      for (guint i = 0; i < run.messages->len; i++)
        {
          TsPayloadMessage *message = run.messages->pdata[i];

          if (message->client_id_len == 0 ||
              str_is (message->client_id, message->client_id_len, OBSERVER_ID))
            {
              if (message->client_id_len != 0)
                routed_elsewhere = TRUE;
              for (guint r = 0; r < message->remainders->len; r++)
                {
                  gsize size;
                  const char *data = g_bytes_get_data (message->remainders->pdata[r], &size);

                  g_ptr_array_add (relayed, ts_payload_build ("{SENDER}", -1, data, (gssize) size));
                }
            }
          else
            routed_elsewhere = TRUE;
        }
      assert_string_list (doc, member (doc, item, "relayedToObserver"), relayed);
      g_assert_cmpuint (member (doc, item, "repliesToSender")->len, ==, 0);

      if (binary)
        counts->binary++;
      else if (routed_elsewhere)
        counts->routing++;
      else
        counts->full++;
      legacy_run_clear (&run);
    }
}

static void
test_vectors_server_legacy (void)
{
  g_autoptr(TsJsonDoc) doc = load_vectors ("invalid-messages.json");
  const TsJsonNode *root = ts_json_doc_get_root (doc);
  LegacyCounts counts = { 0 }, simple = { 0 };

  check_server_legacy_cases (member (doc, root, "serverLegacy"), doc, 0.3, TRUE, &counts);
  g_test_message ("serverLegacy: %u cases, %u fully asserted, %u routing, %u binary, "
                  "%u WebSocket-level; %u close",
                  counts.cases, counts.full, counts.routing, counts.binary,
                  counts.ws_level, counts.closed);
  g_assert_cmpuint (counts.cases, ==, 62);
  g_assert_cmpuint (counts.routing, ==, 3);
  g_assert_cmpuint (counts.binary, ==, 2);
  g_assert_cmpuint (counts.ws_level, ==, 1);
  g_assert_cmpuint (counts.full, ==, 56);

  check_server_legacy_cases (member (doc, root, "serverSimpleLegacy"), doc, 1.0, FALSE, &simple);
  g_test_message ("serverSimpleLegacy: %u cases, %u fully asserted, %u routing; %u close",
                  simple.cases, simple.full, simple.routing, simple.closed);
  g_assert_cmpuint (simple.cases, ==, 10);
  g_assert_cmpuint (simple.routing, ==, 3);
}

static void
test_vectors_client_legacy (void)
{
  g_autoptr(TsJsonDoc) doc = load_vectors ("invalid-messages.json");
  const TsJsonNode *cases = member (doc, ts_json_doc_get_root (doc), "clientLegacy");
  guint n_closed = 0, n_open = 0, n_sent = 0;

  for (guint32 c = 0; c < cases->len; c++)
    {
      const TsJsonNode *item = &cases->u.items[c];
      const TsJsonNode *closed = member (doc, item, "clientClosedWith");
      const TsJsonNode *received = member (doc, item, "clientOnReceive");
      const TsJsonNode *sent = member (doc, item, "clientSent");
      const TsJsonNode *errors = member (doc, item, "clientIgnoredErrors");
      LegacyRun run;

      g_test_message ("client legacy case: %s", member_str (doc, item, "description"));
      legacy_replay (doc, member (doc, item, "payloadsToClient"), 0.3, &run);
      g_assert_false (run.ws_rejected);
      assert_outcome (doc, closed, run.status);
      if (run.status != TS_PAYLOAD_OK)
        {
          n_closed++;
          g_assert_cmpuint (errors->len, ==, 1);
          g_assert_cmpstr (errors->u.items[0].u.str, ==, ts_payload_status_reason (run.status));
        }
      else
        n_open++;

      /* onReceive: [fromClientId, requestId, message, body] */
      g_assert_cmpuint (received->len, ==, run.messages->len);
      for (guint i = 0; i < run.messages->len; i++)
        {
          TsPayloadMessage *message = run.messages->pdata[i];
          const TsJsonNode *args = &received->u.items[i];
          g_autofree char *expected_body = node_to_json (&args->u.items[3]);
          g_autofree char *body = node_to_json (message->body);

          g_assert_true (str_is (message->client_id, message->client_id_len, args->u.items[0].u.str));
          if (args->u.items[1].type == TS_JSON_NULL)
            g_assert_null (message->request_id);
          else
            g_assert_true (str_is (message->request_id, message->request_id_len, args->u.items[1].u.str));
          g_assert_cmpfloat (args->u.items[2].u.num, ==, message->type);
          g_assert_cmpstr (body, ==, expected_body);
        }

      /* What the client wrote is what our encoder writes. */
      for (guint32 i = 0; i < sent->len; i++)
        {
          g_autoptr(TsPayloadDecoder) decoder = ts_payload_decoder_new (NULL, 1);
          g_autoptr(TsPayloadMessage) message = NULL;
          const TsJsonNode *frame = &sent->u.items[i];

          g_assert_cmpint (ts_payload_decoder_decode (decoder, frame->u.str, frame->len, T0,
                                                      &message, NULL),
                           ==, TS_PAYLOAD_RESULT_MESSAGE);
          assert_message_reencodes (message, frame->u.str, frame->len);
          n_sent++;
        }
      legacy_run_clear (&run);
    }
  g_test_message ("clientLegacy: %u cases, %u close, %u stay open; %u sent frames re-encoded",
                  cases->len, n_closed, n_open, n_sent);
  g_assert_cmpuint (cases->len, ==, 25);
  g_assert_cmpuint (n_closed, ==, 12);
}

/* ======================================================================= */
/* Multiplexed server model                                                 */
/* ======================================================================= */

typedef struct {
  TsPayloadBudget *budget;
  double           lifetime;
  char            *base_path;
  char            *observer_room;
  gboolean         negotiated;
  GHashTable      *channels;   /* channel id -> TsPayloadDecoder */
  GPtrArray       *replies;    /* GBytes */
  GPtrArray       *relayed;    /* GBytes, to the observer */
  TsPayloadStatus  status;
} MuxServer;

static void
mux_server_init (MuxServer *server,
                 double     lifetime)
{
  memset (server, 0, sizeof *server);
  server->budget = ts_payload_budget_new (0, 0);
  server->lifetime = lifetime;
  server->base_path = g_strdup ("case");
  server->observer_room = g_strdup ("case/pets");
  server->channels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) ts_payload_decoder_free);
  server->replies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  server->relayed = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
}

static void
mux_server_clear (MuxServer *server)
{
  g_hash_table_unref (server->channels);
  ts_payload_budget_unref (server->budget);
  g_ptr_array_unref (server->replies);
  g_ptr_array_unref (server->relayed);
  g_free (server->base_path);
  g_free (server->observer_room);
}

static void
mux_server_fail (MuxServer       *server,
                 TsPayloadStatus  status)
{
  if (ts_payload_budget_fail (server->budget, status))
    server->status = status;
}

static void
mux_server_receive (MuxServer  *server,
                    const char *text,
                    gsize       len,
                    gint64      now)
{
  TsMultiplexFrame frame;
  TsPayloadStatus status = TS_PAYLOAD_OK;
  g_autofree char *channel = NULL;

  switch (ts_multiplex_decode (server->budget, text, len, &frame, &status))
    {
    case TS_PAYLOAD_RESULT_CONTROL:
      channel = frame.channel_id ? g_strndup (frame.channel_id, frame.channel_id_len) : NULL;
      switch (ts_multiplex_server_action (&frame, server->negotiated,
                                          channel && g_hash_table_contains (server->channels, channel),
                                          g_hash_table_size (server->channels),
                                          g_hash_table_size (server->channels)))
        {
        case TS_MULTIPLEX_ACTION_HELLO:
          server->negotiated = TRUE;
          g_ptr_array_add (server->replies, ts_multiplex_encode_echo (&frame));
          break;
        case TS_MULTIPLEX_ACTION_SUBSCRIBE:
          g_hash_table_insert (server->channels, g_steal_pointer (&channel),
                               ts_payload_decoder_new (server->budget, server->lifetime));
          g_ptr_array_add (server->replies, ts_multiplex_encode_echo (&frame));
          break;
        case TS_MULTIPLEX_ACTION_ECHO:
          g_ptr_array_add (server->replies, ts_multiplex_encode_echo (&frame));
          break;
        case TS_MULTIPLEX_ACTION_UNSUBSCRIBE:
          g_hash_table_remove (server->channels, channel);
          break;
        case TS_MULTIPLEX_ACTION_OVERFLOW:
          mux_server_fail (server, TS_PAYLOAD_OVERFLOW_CHANNELS);
          break;
        case TS_MULTIPLEX_ACTION_IGNORE:
        default:
          break;
        }
      ts_multiplex_frame_clear (&frame);
      break;

    case TS_PAYLOAD_RESULT_CHANNEL:
      {
        TsPayloadDecoder *decoder;
        g_autoptr(TsPayloadMessage) message = NULL;
        g_autofree char *room = NULL;

        channel = g_strndup (frame.channel_id, frame.channel_id_len);
        decoder = server->negotiated ? g_hash_table_lookup (server->channels, channel) : NULL;
        if (decoder == NULL)
          {
            mux_server_fail (server, TS_PAYLOAD_INVALID);
            break;
          }
        switch (ts_payload_decoder_decode (decoder, frame.inner, frame.inner_len, now,
                                           &message, &status))
          {
          case TS_PAYLOAD_RESULT_MESSAGE:
            room = ts_multiplex_room_path (server->base_path, channel);
            if (g_str_equal (room, server->observer_room) && message->client_id_len == 0)
              for (guint r = 0; r < message->remainders->len; r++)
                {
                  gsize size;
                  const char *data = g_bytes_get_data (message->remainders->pdata[r], &size);

                  g_ptr_array_add (server->relayed,
                                   ts_payload_build ("{SENDER}", -1, data, (gssize) size));
                }
            break;
          case TS_PAYLOAD_RESULT_ERROR:
            server->status = status;
            break;
          case TS_PAYLOAD_RESULT_BUFFERED:
          case TS_PAYLOAD_RESULT_IGNORED:
          default:
            break;
          }
      }
      break;

    case TS_PAYLOAD_RESULT_ERROR:
      server->status = status;
      break;

    case TS_PAYLOAD_RESULT_IGNORED:
    case TS_PAYLOAD_RESULT_MESSAGE:
    case TS_PAYLOAD_RESULT_BUFFERED:
    default:
      g_assert_cmpint (server->status, !=, TS_PAYLOAD_OK);
      break;
    }
}

static guint
check_server_multiple_cases (const TsJsonNode *cases,
                             TsJsonDoc        *doc,
                             double            lifetime,
                             gboolean          has_ignored_errors)
{
  for (guint32 c = 0; c < cases->len; c++)
    {
      const TsJsonNode *item = &cases->u.items[c];
      const TsJsonNode *payloads = member (doc, item, "payloads");
      MuxServer server;
      gint64 now = T0;

      g_test_message ("server multiple case: %s", member_str (doc, item, "description"));
      mux_server_init (&server, lifetime);
      for (guint32 i = 0; i < payloads->len; i++)
        {
          Frame frame;
          gsize size;
          const char *text;

          frame_from_descriptor (doc, &payloads->u.items[i], &frame);
          g_assert_false (frame.ws_rejects);
          if (frame.wait)
            {
              now += frame.wait;
              continue;
            }
          text = g_bytes_get_data (frame.text, &size);
          mux_server_receive (&server, text, size, now);
          frame_clear (&frame);
        }
      assert_outcome (doc, member (doc, item, "senderClosedWith"), server.status);
      g_assert_cmpint (ts_payload_budget_get_status (server.budget), ==, server.status);
      if (has_ignored_errors)
        {
          const TsJsonNode *errors = member (doc, item, "serverIgnoredErrors");

          g_assert_cmpuint (errors->len, ==, server.status == TS_PAYLOAD_OK ? 0 : 1);
        }
      assert_string_list (doc, member (doc, item, "repliesToSender"), server.replies);
      assert_string_list (doc, member (doc, item, "relayedToObserver"), server.relayed);
      mux_server_clear (&server);
    }
  return cases->len;
}

static void
test_vectors_server_multiple (void)
{
  g_autoptr(TsJsonDoc) doc = load_vectors ("invalid-messages.json");
  const TsJsonNode *root = ts_json_doc_get_root (doc);
  guint n;

  n = check_server_multiple_cases (member (doc, root, "serverMultiple"), doc, 0.3, TRUE);
  g_assert_cmpuint (n, ==, 22);
  n = check_server_multiple_cases (member (doc, root, "serverSimpleMultiple"), doc, 1.0, FALSE);
  g_assert_cmpuint (n, ==, 4);
}

/* ======================================================================= */
/* Multiplexed client model                                                 */
/* ======================================================================= */

static void
test_vectors_client_multiple (void)
{
  g_autoptr(TsJsonDoc) doc = load_vectors ("invalid-messages.json");
  const TsJsonNode *cases = member (doc, ts_json_doc_get_root (doc), "clientMultiple");
  guint n_left_to_client = 0;

  for (guint32 c = 0; c < cases->len; c++)
    {
      const TsJsonNode *item = &cases->u.items[c];
      const TsJsonNode *plays = member (doc, item, "serverPlays");
      const TsJsonNode *received = member (doc, item, "clientOnReceive");
      const TsJsonNode *sent = member (doc, item, "clientSent");
      const char *rejected = member_str (doc, item, "createWsSynchronizerRejectedWith");
      g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (0, 0);
      g_autoptr(TsPayloadDecoder) pets = ts_payload_decoder_new (budget, 0.3);
      g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func ((GDestroyNotify) ts_payload_message_free);
      TsPayloadStatus status = TS_PAYLOAD_OK;
      gboolean hello_acked = FALSE, subscribed = FALSE;
      gint64 now = T0;

      g_test_message ("client multiple case: %s", member_str (doc, item, "description"));
      for (guint32 i = 0; i < plays->len; i++)
        {
          Frame frame;
          TsMultiplexFrame mux;
          TsPayloadStatus s = TS_PAYLOAD_OK;
          gsize size;
          const char *text;

          frame_from_descriptor (doc, &plays->u.items[i], &frame);
          if (frame.wait)
            {
              now += frame.wait;
              continue;
            }
          text = g_bytes_get_data (frame.text, &size);
          switch (ts_multiplex_decode (budget, text, size, &mux, &s))
            {
            case TS_PAYLOAD_RESULT_CONTROL:
              if (mux.control != TS_MULTIPLEX_HELLO && mux.channel_id_too_long)
                {
                  if (ts_payload_budget_fail (budget, TS_PAYLOAD_OVERFLOW_CHANNELS))
                    status = TS_PAYLOAD_OVERFLOW_CHANNELS;
                }
              else if (ts_multiplex_echo_matches (&mux, HELLO_RID, 16, TS_MULTIPLEX_HELLO, NULL, 0))
                hello_acked = TRUE;
              else if (ts_multiplex_echo_matches (&mux, SUB_RID, 16, TS_MULTIPLEX_SUBSCRIBE, "pets", 4))
                subscribed = TRUE;
              ts_multiplex_frame_clear (&mux);
              break;
            case TS_PAYLOAD_RESULT_CHANNEL:
              if (!str_is (mux.channel_id, mux.channel_id_len, "pets"))
                {
                  if (ts_payload_budget_fail (budget, TS_PAYLOAD_INVALID))
                    status = TS_PAYLOAD_INVALID;
                }
              else
                {
                  TsPayloadMessage *message = NULL;

                  switch (ts_payload_decoder_decode (pets, mux.inner, mux.inner_len, now, &message, &s))
                    {
                    case TS_PAYLOAD_RESULT_MESSAGE:
                      g_ptr_array_add (messages, message);
                      break;
                    case TS_PAYLOAD_RESULT_ERROR:
                      status = s;
                      break;
                    default:
                      break;
                    }
                }
              break;
            case TS_PAYLOAD_RESULT_ERROR:
              status = s;
              break;
            default:
              break;
            }
          frame_clear (&frame);
        }

      if (rejected != NULL && g_str_has_prefix (rejected, "tinybase:4:"))
        /* The client closes after its own timeout (1005): not a codec error. */
        g_assert_cmpint (status, ==, TS_PAYLOAD_OK);
      else
        assert_outcome (doc, member (doc, item, "clientClosedWith"), status);
      if (rejected != NULL && g_str_equal (rejected, "tinybase:4:0"))
        {
          /* Hello never answered: the timeout is the client's. */
          g_assert_false (hello_acked);
          n_left_to_client++;
        }
      else if (rejected != NULL && g_str_equal (rejected, "tinybase:4:1"))
        {
          /* The Subscribe echo names another channel: it does not match. */
          g_assert_true (hello_acked);
          g_assert_false (subscribed);
          n_left_to_client++;
        }
      else if (rejected != NULL)
        g_assert_cmpstr (rejected, ==, ts_payload_status_reason (status));
      else
        {
          g_assert_true (hello_acked);
          g_assert_true (subscribed);
        }

      g_assert_cmpuint (received->len, ==, messages->len);
      for (guint i = 0; i < messages->len; i++)
        {
          TsPayloadMessage *message = messages->pdata[i];
          g_autofree char *expected_body = node_to_json (&received->u.items[i].u.items[3]);
          g_autofree char *body = node_to_json (message->body);

          g_assert_true (str_is (message->client_id, message->client_id_len,
                                 received->u.items[i].u.items[0].u.str));
          g_assert_cmpstr (body, ==, expected_body);
        }

      /* Every frame the client sent, rebuilt with our encoders. */
      for (guint32 i = 0; i < sent->len; i++)
        {
          const TsJsonNode *f = &sent->u.items[i];
          g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (0, 0);
          TsMultiplexFrame mux;
          g_autoptr(GBytes) rebuilt = NULL;

          switch (ts_multiplex_decode (b, f->u.str, f->len, &mux, NULL))
            {
            case TS_PAYLOAD_RESULT_CONTROL:
              rebuilt = ts_multiplex_encode_control (mux.request_id, (gssize) mux.request_id_len,
                                                     mux.control, mux.channel_id,
                                                     (gssize) mux.channel_id_len);
              ts_multiplex_frame_clear (&mux);
              break;
            case TS_PAYLOAD_RESULT_CHANNEL:
              {
                g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (b, 1);
                g_autoptr(TsPayloadMessage) message = NULL;
                g_autofree char *body = NULL;
                g_autoptr(GPtrArray) payloads = NULL;
                gsize size;
                const char *data;

                g_assert_cmpint (ts_payload_decoder_decode (d, mux.inner, mux.inner_len, T0, &message, NULL),
                                 ==, TS_PAYLOAD_RESULT_MESSAGE);
                body = node_to_json (message->body);
                payloads = ts_payload_encode (message->client_id, (gssize) message->client_id_len,
                                              message->request_id, (gssize) message->request_id_len,
                                              message->type, body, -1, 0);
                data = g_bytes_get_data (payloads->pdata[0], &size);
                rebuilt = ts_multiplex_wrap (mux.channel_id, (gssize) mux.channel_id_len, data, size);
              }
              break;
            default:
              g_assert_not_reached ();
            }
          assert_bytes_eq (rebuilt, f->u.str, f->len);
        }
    }
  g_test_message ("clientMultiple: %u cases, %u with a client-level timeout outcome",
                  cases->len, n_left_to_client);
  g_assert_cmpuint (cases->len, ==, 6);
  g_assert_cmpuint (n_left_to_client, ==, 2);
}

/* ======================================================================= */
/* wire-transcript.json                                                     */
/* ======================================================================= */

typedef struct {
  char             *conn;
  gboolean          multiplexed;
  TsPayloadBudget  *budget[2];    /* per direction */
  TsPayloadDecoder *legacy[2];
  GHashTable       *channels[2];  /* channel id -> decoder */
} TranscriptConn;

static void
transcript_conn_free (TranscriptConn *conn)
{
  for (int d = 0; d < 2; d++)
    {
      g_clear_pointer (&conn->channels[d], g_hash_table_unref);
      g_clear_pointer (&conn->legacy[d], ts_payload_decoder_free);
      g_clear_pointer (&conn->budget[d], ts_payload_budget_unref);
    }
  g_free (conn->conn);
  g_free (conn);
}

/* Re-fragments a fragmented message with fragment size F and compares
 * piece by piece with the frames that carried it. */
static void
assert_refragments (TsPayloadMessage *message,
                    gsize             fragment_size)
{
  g_autofree char *remainder = NULL;
  gsize remainder_len;
  gsize first_size;
  const char *first = g_bytes_get_data (message->remainders->pdata[0], &first_size);
  char message_id[TS_PAYLOAD_MESSAGE_ID_LEN + 1];
  GString *joined = g_string_new (NULL);

  /* The reassembled text is canonical JSON: rebuild it from the parse and
   * check it against the pieces. */
  remainder = message_reencode_remainder (message, &remainder_len);
  for (guint i = 0; i < message->remainders->len; i++)
    {
      gsize size;
      const char *data = g_bytes_get_data (message->remainders->pdata[i], &size);
      gsize skip = 0, newlines = 0;

      /* "<messageId>\n<i>\n<n>\n<piece>" */
      while (newlines < 3)
        if (data[skip++] == '\n')
          newlines++;
      g_string_append_len (joined, data + skip, (gssize) (size - skip));
    }
  g_assert_cmpstr (joined->str, ==, remainder);
  g_string_free (joined, TRUE);

  memcpy (message_id, first, TS_PAYLOAD_MESSAGE_ID_LEN);
  message_id[TS_PAYLOAD_MESSAGE_ID_LEN] = '\0';
  for (int pass = 0; pass < 2; pass++)
    {
      g_autoptr(GPtrArray) payloads =
        ts_payload_fragment (message->client_id, (gssize) message->client_id_len,
                             remainder, remainder_len, fragment_size,
                             pass == 0 ? message_id : NULL);

      g_assert_cmpuint (payloads->len, ==, message->remainders->len);
      for (guint i = 0; i < payloads->len; i++)
        {
          gsize size, got_size;
          const char *data = g_bytes_get_data (message->remainders->pdata[i], &size);
          g_autoptr(GBytes) expected = ts_payload_build (message->client_id, (gssize) message->client_id_len,
                                                         data, (gssize) size);
          const char *e = g_bytes_get_data (expected, &size);
          const char *got_data = g_bytes_get_data (payloads->pdata[i], &got_size);
          g_autofree char *got = g_memdup2 (got_data, got_size + 1);

          g_assert_cmpuint (got_size, ==, size);
          if (pass == 1)
            {
              /* Random id: 16 alphabet characters; then compare the rest. */
              for (gsize k = 0; k < TS_PAYLOAD_MESSAGE_ID_LEN; k++)
                g_assert_nonnull (strchr (ts_id_alphabet, got[message->client_id_len + 1 + k]));
              memcpy (got + message->client_id_len + 1, message_id, TS_PAYLOAD_MESSAGE_ID_LEN);
            }
          g_assert_true (memcmp (got, e, size) == 0);
        }
    }
}

static void
test_vectors_wire_transcript (void)
{
  g_autoptr(TsJsonDoc) doc = load_vectors ("wire-transcript.json");
  const TsJsonNode *root = ts_json_doc_get_root (doc);
  const TsJsonNode *transcripts = member (doc, root, "transcripts");
  const TsJsonNode *paths = member (doc, root, "pathIdCases");
  guint n_frames = 0, n_messages = 0, n_fragmented = 0, n_controls = 0;

  for (guint32 t = 0; t < transcripts->len; t++)
    {
      const TsJsonNode *transcript = &transcripts->u.items[t];
      const char *name = member_str (doc, transcript, "name");
      const TsJsonNode *conns = member (doc, transcript, "connections");
      const TsJsonNode *frames = member (doc, transcript, "frames");
      double lifetime = member (doc, transcript, "requestTimeoutSeconds")->u.num;
      gboolean fragmented_transcript = g_str_equal (name, "fragmented");
      g_autoptr(GPtrArray) states = g_ptr_array_new_with_free_func ((GDestroyNotify) transcript_conn_free);

      for (guint32 i = 0; i < conns->len; i++)
        {
          TranscriptConn *conn = g_new0 (TranscriptConn, 1);
          const char *protocol = member_str (doc, &conns->u.items[i], "subprotocolAccepted");

          conn->conn = g_strdup (member_str (doc, &conns->u.items[i], "conn"));
          conn->multiplexed = protocol != NULL && g_str_equal (protocol, "tinybase");
          for (int d = 0; d < 2; d++)
            {
              conn->budget[d] = ts_payload_budget_new (0, 0);
              conn->legacy[d] = ts_payload_decoder_new (conn->budget[d], lifetime);
              conn->channels[d] = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                         (GDestroyNotify) ts_payload_decoder_free);
            }
          g_ptr_array_add (states, conn);
        }

      for (guint32 f = 0; f < frames->len; f++)
        {
          const TsJsonNode *frame = &frames->u.items[f];
          const char *dir = member_str (doc, frame, "dir");
          const TsJsonNode *payload = member (doc, frame, "payload");
          const char *conn_name = member_str (doc, frame, "conn");
          gint64 now = T0 + (gint64) (member (doc, frame, "ms")->u.num * 1000);
          TranscriptConn *conn = NULL;
          TsPayloadDecoder *decoder;
          g_autoptr(TsPayloadMessage) message = NULL;
          const char *text;
          gsize len;
          const char *channel = NULL;
          gsize channel_len = 0;
          int d;

          if (payload == NULL)
            continue;
          d = g_str_equal (dir, "c2s") ? 0 : 1;
          for (guint i = 0; i < states->len; i++)
            if (g_str_equal (((TranscriptConn *) states->pdata[i])->conn, conn_name))
              conn = states->pdata[i];
          g_assert_nonnull (conn);
          n_frames++;
          text = payload->u.str;
          len = payload->len;
          decoder = conn->legacy[d];

          if (conn->multiplexed)
            {
              TsMultiplexFrame mux;
              g_autofree char *key = NULL;

              switch (ts_multiplex_decode (conn->budget[d], text, len, &mux, NULL))
                {
                case TS_PAYLOAD_RESULT_CONTROL:
                  {
                    g_autoptr(GBytes) rebuilt = NULL;

                    if (d == 1)
                      rebuilt = ts_multiplex_encode_echo (&mux);
                    else
                      rebuilt = ts_multiplex_encode_control (mux.request_id, (gssize) mux.request_id_len,
                                                             mux.control, mux.channel_id,
                                                             (gssize) mux.channel_id_len);
                    assert_bytes_eq (rebuilt, text, len);
                    g_assert_false (mux.channel_id_too_long);
                    ts_multiplex_frame_clear (&mux);
                    n_controls++;
                    continue;
                  }
                case TS_PAYLOAD_RESULT_CHANNEL:
                  key = g_strndup (mux.channel_id, mux.channel_id_len);
                  decoder = g_hash_table_lookup (conn->channels[d], key);
                  if (decoder == NULL)
                    {
                      decoder = ts_payload_decoder_new (conn->budget[d], lifetime);
                      g_hash_table_insert (conn->channels[d], g_strdup (key), decoder);
                    }
                  channel = mux.channel_id;
                  channel_len = mux.channel_id_len;
                  text = mux.inner;
                  len = mux.inner_len;
                  break;
                default:
                  g_error ("%s: frame %u is not a valid multiplexed frame", name, f);
                }
            }

          switch (ts_payload_decoder_decode (decoder, text, len, now, &message, NULL))
            {
            case TS_PAYLOAD_RESULT_BUFFERED:
              continue;
            case TS_PAYLOAD_RESULT_MESSAGE:
              break;
            default:
              g_error ("%s: frame %u is not valid", name, f);
            }
          n_messages++;
          if (message->fragmented)
            {
              gsize fragment_size;

              g_assert_true (fragmented_transcript);
              /* client1 used fragmentSize 60, the server store 200. */
              fragment_size = d == 1 && str_is (message->client_id, message->client_id_len, "S") ? 200 : 60;
              assert_refragments (message, fragment_size);
              n_fragmented++;
            }
          else
            {
              g_autoptr(GBytes) full = NULL;

              assert_message_reencodes (message, text, len);
              if (channel != NULL)
                {
                  full = ts_multiplex_wrap (channel, (gssize) channel_len, text, len);
                  assert_bytes_eq (full, payload->u.str, payload->len);
                }
              if (fragmented_transcript)
                {
                  /* Sent with fragmentation on, yet in one piece: it fits. */
                  gsize remainder_len;
                  g_autofree char *remainder = message_reencode_remainder (message, &remainder_len);

                  g_assert_cmpuint (ts_payload_split (remainder, remainder_len,
                                                      ts_payload_fragment_target (remainder_len, 60),
                                                      NULL),
                                    ==, 1);
                }
            }
        }
      for (guint i = 0; i < states->len; i++)
        for (int d = 0; d < 2; d++)
          {
            TranscriptConn *conn = states->pdata[i];

            g_assert_cmpint (ts_payload_budget_get_status (conn->budget[d]), ==, TS_PAYLOAD_OK);
            g_assert_cmpuint (ts_payload_budget_get_n_buffers (conn->budget[d]), ==, 0);
          }
    }
  g_test_message ("wire transcripts: %u frames, %u messages (%u fragmented), %u controls",
                  n_frames, n_messages, n_fragmented, n_controls);
  g_assert_cmpuint (n_fragmented, ==, 3);
  g_assert_cmpuint (n_controls, >=, 6);

  for (guint32 i = 0; i < paths->len; i++)
    {
      const TsJsonNode *item = &paths->u.items[i];
      const TsJsonNode *target = member (doc, item, "requestTarget");
      g_autofree char *path_id = NULL;
      gsize path_id_len;

      g_assert_true (ts_path_id_from_request_target (target->u.str, target->len, &path_id, &path_id_len));
      g_assert_cmpstr (path_id, ==, member_str (doc, item, "pathId"));
    }
}

/* ======================================================================= */
/* Hand-written: validation                                                 */
/* ======================================================================= */

static gboolean
message_text_valid (const char *json)
{
  g_autoptr(TsJsonDoc) doc = ts_json_parse (json, -1, NULL);

  return doc != NULL && ts_protocol_message_valid (ts_json_doc_get_root (doc), NULL, NULL, NULL, NULL);
}

static void
test_validate (void)
{
  static const struct {
    const char *json;
    gboolean    valid;
  } cases[] = {
    /* envelope */
    { "[null,1,\"\"]", TRUE },
    { "[\"r\",1,\"\"]", TRUE },
    { "[\"\",1,\"\"]", TRUE },
    { "[\"\xEF\xBF\xBC\",1,\"\"]", FALSE },      /* undefined request id */
    { "[\"\\ufffc\",1,\"\"]", FALSE },           /* the same, escaped */
    { "[\"\\ufffd\",1,\"\"]", TRUE },
    { "[1,1,\"\"]", FALSE },
    { "[true,1,\"\"]", FALSE },
    { "[[],1,\"\"]", FALSE },
    { "[null,\"1\",\"\"]", FALSE },
    { "[null,1.0,\"\"]", TRUE },
    { "[null,1e0,\"\"]", TRUE },
    { "[null,0.1e1,\"\"]", TRUE },
    { "[null,1.5,\"\"]", FALSE },
    { "[null,1e400,\"\"]", FALSE },
    { "[null,-1,[0,1]]", FALSE },
    { "[null,8,{}]", FALSE },
    { "[null,-0,[0,0]]", TRUE },                 /* -0 is Response */
    { "[null,1]", FALSE },
    { "[null,1,\"\",1]", FALSE },
    { "{}", FALSE },
    { "\"\"", FALSE },
    /* 1 GetContentHashes */
    { "[null,1,\"x\"]", FALSE },
    { "[null,1,null]", FALSE },
    { "[null,1,[]]", FALSE },
    /* 2 ContentHashes and hashes */
    { "[null,2,[0,0]]", TRUE },
    { "[null,2,[-0,4294967295]]", TRUE },
    { "[null,2,[0,4294967296]]", FALSE },
    { "[null,2,[0,-1]]", FALSE },
    { "[null,2,[0,1.5]]", FALSE },
    { "[null,2,[0,1e400]]", FALSE },
    { "[null,2,[0,\"1\"]]", FALSE },
    { "[null,2,[0,null]]", FALSE },
    { "[null,2,[0,\"\xEF\xBF\xBC\"]]", FALSE },
    { "[null,2,[1e3,4.294967295e9]]", TRUE },
    { "[null,2,[0]]", FALSE },
    { "[null,2,[0,0,0]]", FALSE },
    { "[null,2,{}]", FALSE },
    /* 3 ContentDiff and stamps */
    { "[null,3,[[{}],[{}]]]", TRUE },
    { "[null,3,[[{}],[{}],1]]", TRUE },
    { "[null,3,[[{}],[{}],1.0]]", TRUE },
    { "[null,3,[[{}],[{}],\"1\"]]", FALSE },
    { "[null,3,[[{}],[{}],2]]", FALSE },
    { "[null,3,[[{}],[{}],1,1]]", FALSE },
    { "[null,3,[[{}]]]", FALSE },
    { "[null,3,[[{},\"\"],[{},\"\"]]]", TRUE },
    { "[null,3,[[{},\"NsYwJk-----Z21Zg\"],[{},\"zzzzzzzzzzzzzzzz\"]]]", TRUE },
    { "[null,3,[[{},\"NsYwJk-----Z21Z\"],[{}]]]", FALSE },   /* 15 characters */
    { "[null,3,[[{},\"NsYwJk-----Z21Zgg\"],[{}]]]", FALSE }, /* 17 */
    { "[null,3,[[{},\"NsYwJk-----Z21Z+\"],[{}]]]", FALSE },  /* alphabet */
    { "[null,3,[[{},\"\xEF\xBF\xBC\"],[{}]]]", FALSE },       /* undefined HLC */
    { "[null,3,[[{},null],[{}]]]", FALSE },
    { "[null,3,[[{},\"NsYwJk-----Z21Z\\u0000\"],[{}]]]", FALSE },  /* NUL */
    { "[null,3,[[{},\"NsYwJk-----Z21Z\\u00e9\"],[{}]]]", FALSE },
    { "[null,3,[[{},\"NsYwJk-----Z21Z\\u0067\"],[{}]]]", TRUE },   /* escaped g */
    { "[null,3,[[{},\"\",0],[{}]]]", FALSE },                /* stamp with a hash */
    { "[null,3,[[],[{}]]]", FALSE },
    { "[null,3,[[[]],[{}]]]", FALSE },
    { "[null,3,[[null],[{}]]]", FALSE },
    { "[null,3,[[\"\xEF\xBF\xBC\"],[{}]]]", FALSE },          /* undefined table stamp */
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[\"\xEF\xBF\xBC\",\"\"]}]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[\"\xEF\xBF\xBC\"]}]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[null]},\"\"]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[true]}]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[-1.5e-7]}]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[[1e400]]}]}]}],[{}],1]]", TRUE }, /* raw array */
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[{\"a\":1}]}]}]}],[{}],1]]", TRUE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[1e400]}]}]}],[{}],1]]", FALSE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":[]}]}]}],[{}],1]]", FALSE },
    { "[null,3,[[{\"t\":[{\"r\":[{\"c\":1}]}]}],[{}],1]]", FALSE },
    { "[null,3,[[{\"t\":[{\"r\":[[1]]}]}],[{}],1]]", FALSE },  /* row thing not an object */
    { "[null,3,[[{\"t\":[[1]]}],[{}],1]]", FALSE },
    { "[null,3,[[{}],[{\"v\":[1,\"\"]}],1]]", TRUE },
    { "[null,3,[[{}],[{\"v\":[{\"x\":[1]}]}],1]]", TRUE },     /* value thing: an object */
    { "[null,3,[[{}],[{\"v\":[1,\"\",5]}],1]]", FALSE },
    /* 4..7 hash trees */
    { "[null,4,{}]", TRUE },
    { "[null,4,{\"t\":1,\"u\":4294967295}]", TRUE },
    { "[null,4,{\"t\":{\"r\":1}}]", FALSE },
    { "[null,4,null]", FALSE },
    { "[null,4,[]]", FALSE },
    { "[null,7,{\"v\":\"1\"}]", FALSE },
    { "[null,7,{\"v\":-1}]", FALSE },
    { "[null,5,{\"t\":{\"r\":1}}]", TRUE },
    { "[null,5,{\"t\":1}]", FALSE },
    { "[null,5,{\"t\":{}}]", TRUE },
    { "[null,6,{\"t\":{\"r\":{\"c\":1}}}]", TRUE },
    { "[null,6,{\"t\":{\"r\":1}}]", FALSE },
    { "[null,6,{\"a\":1,\"a\":{\"r\":{}}}]", TRUE },           /* last duplicate wins */
    /* 0 Response alternatives */
    { "[\"x\",0,[0,0]]", TRUE },                               /* ContentHashes */
    { "[\"x\",0,[{}]]", TRUE },                                /* a stamp (depth 3 or 1) */
    { "[\"x\",0,[{\"t\":[{\"r\":[{\"c\":[1,\"\"]}]}]}]]", TRUE }, /* TablesStamp */
    { "[\"x\",0,[{\"v\":[1,\"\"]}]]", TRUE },                  /* ValuesStamp */
    { "[\"x\",0,[{\"v\":[1,\"\"]},\"\"]]", TRUE },
    { "[\"x\",0,[[{}],{}]]", TRUE },
    { "[\"x\",0,[[{}],{\"t\":1}]]", TRUE },                    /* depth-0 tree */
    { "[\"x\",0,[[{}],{\"t\":{\"r\":1}}]]", TRUE },            /* depth-1 tree */
    { "[\"x\",0,[[{}],{\"t\":{\"r\":{\"c\":1}}}]]", FALSE },   /* depth 2 */
    { "[\"x\",0,[[{}],{\"t\":1,\"u\":{\"r\":1}}]]", FALSE },   /* mixed depths */
    { "[\"x\",0,{\"a\":1}]", FALSE },                          /* a bare hash tree */
    { "[\"x\",0,[[{}],[{}]]]", FALSE },
    { "[\"x\",0,\"\"]", FALSE },
    { "[\"x\",0,null]", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      note ("", cases[i].json);
      g_assert_cmpint (message_text_valid (cases[i].json), ==, cases[i].valid);
    }

  /* Outputs. */
  {
    g_autoptr(TsJsonDoc) doc = parse ("[\"req\",6,{\"t\":{\"r\":{\"c\":1}}}]");
    const char *rid = NULL;
    gsize rid_len = 0;
    int type = -1;
    const TsJsonNode *body = NULL;

    g_assert_true (ts_protocol_message_valid (ts_json_doc_get_root (doc), &rid, &rid_len, &type, &body));
    g_assert_cmpstr (rid, ==, "req");
    g_assert_cmpuint (rid_len, ==, 3);
    g_assert_cmpint (type, ==, TS_MESSAGE_GET_CELL_DIFF);
    g_assert_cmpint (body->type, ==, TS_JSON_OBJECT);
  }
  {
    g_autoptr(TsJsonDoc) doc = parse ("[null,-0,[0,0]]");
    const char *rid = "x";
    int type = -1;

    g_assert_true (ts_protocol_message_valid (ts_json_doc_get_root (doc), &rid, NULL, &type, NULL));
    g_assert_null (rid);
    g_assert_cmpint (type, ==, 0);
  }
  /* Predicates directly. */
  {
    g_autoptr(TsJsonDoc) doc = parse ("[{\"a\":{\"b\":{\"c\":7}}}, [\"\xEF\xBF\xBC\"], [1,2], 4294967295]");
    const TsJsonNode *items = ts_json_doc_get_root (doc)->u.items;

    g_assert_true (ts_protocol_is_hash_tree (&items[0], 2));
    g_assert_false (ts_protocol_is_hash_tree (&items[0], 1));
    g_assert_false (ts_protocol_is_hash_tree (&items[0], 3));
    g_assert_true (ts_protocol_is_stamp (&items[1], 0));
    g_assert_false (ts_protocol_is_stamp (&items[1], 1));
    g_assert_true (ts_protocol_is_content_hashes (&items[2]));
    g_assert_true (ts_protocol_is_hash (&items[3]));
    g_assert_true (ts_wire_is_undefined (&items[1].u.items[0]));
    g_assert_false (ts_protocol_body_valid (8, &items[2]));
    g_assert_false (ts_protocol_body_valid (-1, &items[2]));
  }
}

static void
test_status (void)
{
  static const struct {
    TsPayloadStatus status;
    guint16         code;
    const char     *reason;
  } table[] = {
    { TS_PAYLOAD_OK, 0, NULL },
    { TS_PAYLOAD_INVALID, 1007, "tinybase:14" },
    { TS_PAYLOAD_OVERFLOW_SOCKET, 1013, "tinybase:15:socket" },
    { TS_PAYLOAD_OVERFLOW_FRAGMENTS, 1013, "tinybase:15:fragments" },
    { TS_PAYLOAD_OVERFLOW_CHANNELS, 1013, "tinybase:15:channels" },
    { TS_PAYLOAD_OVERFLOW_SERVER, 1013, "tinybase:15:server" },
    { TS_PAYLOAD_OVERFLOW_CLIENT, 1013, "tinybase:15:client" },
    { TS_PAYLOAD_OVERFLOW_CONTROLS, 1013, "tinybase:15:controls" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    {
      g_assert_cmpuint (ts_payload_status_close_code (table[i].status), ==, table[i].code);
      g_assert_cmpstr (ts_payload_status_reason (table[i].status), ==, table[i].reason);
      g_assert_cmpint (ts_payload_status_is_overflow (table[i].status), ==, table[i].code == 1013);
    }
}

/* ======================================================================= */
/* Hand-written: the decoder                                                */
/* ======================================================================= */

static TsPayloadResult
feed (TsPayloadDecoder  *decoder,
      const char        *text,
      gint64             now,
      TsPayloadStatus   *status)
{
  g_autoptr(TsPayloadMessage) message = NULL;

  return ts_payload_decoder_decode (decoder, text, strlen (text), now, &message, status);
}

static void
assert_feed_error (TsPayloadDecoder *decoder,
                   const char       *text,
                   gint64            now,
                   TsPayloadStatus   expected)
{
  TsPayloadStatus status = TS_PAYLOAD_OK;

  g_assert_cmpint (feed (decoder, text, now, &status), ==, TS_PAYLOAD_RESULT_ERROR);
  g_assert_cmpint (status, ==, expected);
  g_assert_cmpint (ts_payload_budget_get_status (ts_payload_decoder_get_budget (decoder)), ==, expected);
  /* Dead from now on. */
  g_assert_cmpint (feed (decoder, "\n[null,1,\"\"]", now, NULL), ==, TS_PAYLOAD_RESULT_IGNORED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (decoder), ==, 0);
}

static char *
fragment_text (const char *client,
               const char *id,
               guint       index,
               guint       total,
               const char *piece)
{
  return g_strdup_printf ("%s\n%s\n%u\n%u\n%s", client, id, index, total, piece);
}

static void
test_decoder_message (void)
{
  g_autoptr(TsPayloadDecoder) decoder = ts_payload_decoder_new (NULL, 1);
  static const char text[] = "peer\n [ \"rid\" , 3 , [[{}],[{\"v\":[\"\xEF\xBF\xBC\"]}],1] ] \n";
  g_autoptr(TsPayloadMessage) message = NULL;
  g_autofree char *body = NULL;
  static const char nul_id[] = "a\0b\n[null,1,\"\"]";

  g_assert_cmpint (ts_payload_decoder_decode (decoder, text, sizeof text - 1, T0, &message, NULL),
                   ==, TS_PAYLOAD_RESULT_MESSAGE);
  g_assert_cmpstr (message->client_id, ==, "peer");
  g_assert_cmpuint (message->client_id_len, ==, 4);
  g_assert_false (message->fragmented);
  g_assert_cmpuint (message->remainders->len, ==, 1);
  /* The remainder exactly as received, whitespace included. */
  assert_bytes_eq (message->remainders->pdata[0], text + 5, sizeof text - 1 - 5);
  g_assert_true (str_is (message->request_id, message->request_id_len, "rid"));
  g_assert_cmpint (message->type, ==, TS_MESSAGE_CONTENT_DIFF);
  body = node_to_json (message->body);
  g_assert_cmpstr (body, ==, "[[{}],[{\"v\":[\"\xEF\xBF\xBC\"]}],1]");
  g_clear_pointer (&message, ts_payload_message_free);

  /* JSON white space around the message. */
  g_assert_cmpint (feed (decoder, "\n\t\r\n [null,1,\"\"] \t\r\n", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* Empty client id, further newlines belong to the remainder. */
  g_assert_cmpint (feed (decoder, "\n[null,1,\n\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* A NUL byte in the first line is just part of the id. */
  g_assert_cmpint (ts_payload_decoder_decode (decoder, nul_id, sizeof nul_id - 1, T0, &message, NULL),
                   ==, TS_PAYLOAD_RESULT_MESSAGE);
  g_assert_cmpuint (message->client_id_len, ==, 3);
  g_assert_true (memcmp (message->client_id, "a\0b", 3) == 0);
  g_clear_pointer (&message, ts_payload_message_free);

  /* Invalid ones, each on a fresh decoder. */
  {
    static const char *invalid[] = {
      "", "[null,1,\"\"]", "\n", "\n{", "\n[null,1,\"\"] x", "\n[null,1,\"\"]\n\n[null,1,\"\"]",
      "\n[null,9,{}]", "S\n[\"r\",-1,[0,1]]", "M\npets\npeer\n[null,1,\"\"]",
      "\n0123456789ABCDE\n0\n1\n[null,1,\"\"]", "\n0123456789ABCDEF\n\n1\n[]",
      "\n0123456789ABCDEF\n0\n1", "\n0123456789ABCDE+\n0\n1\nx", "\n0123456789ABCDEF\n+1\n2\nx",
      "\n0123456789ABCDEF\n\xD9\xA1\n2\nx",
      /* JSON.parse white space is only space, tab, LF and CR */
      "\n\xEF\xBB\xBF[null,1,\"\"]", "\n\x0b[null,1,\"\"]", "\n\xC2\xA0[null,1,\"\"]",
      "\n[null,1,\"\"]\x0c",
    };

    for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++)
      {
        g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

        note ("invalid: ", invalid[i]);
        assert_feed_error (d, invalid[i], T0, TS_PAYLOAD_INVALID);
      }
  }
}

static void
test_decoder_fragments (void)
{
  static const char *id = "0123456789ABCDEF";
  static const char *pieces[] = { "[\"req\",", "2,[1", "2,", "3", "4]]" };
  g_autoptr(TsPayloadDecoder) decoder = ts_payload_decoder_new (NULL, 1);
  static const guint orders[][5] = {
    { 0, 1, 2, 3, 4 }, { 4, 3, 2, 1, 0 }, { 2, 0, 4, 1, 3 },
  };

  /* Any order; the remainders come back in index order. */
  for (gsize o = 0; o < G_N_ELEMENTS (orders); o++)
    {
      g_autoptr(TsPayloadMessage) message = NULL;

      for (guint k = 0; k < 5; k++)
        {
          guint i = orders[o][k];
          g_autofree char *text = fragment_text ("peer", id, i, 5, pieces[i]);
          TsPayloadResult result = ts_payload_decoder_decode (decoder, text, strlen (text), T0,
                                                              &message, NULL);

          g_assert_cmpint (result, ==, k < 4 ? TS_PAYLOAD_RESULT_BUFFERED : TS_PAYLOAD_RESULT_MESSAGE);
          g_assert_cmpuint (ts_payload_decoder_get_n_buffers (decoder), ==, k < 4 ? 1 : 0);
        }
      g_assert_true (message->fragmented);
      g_assert_cmpstr (message->client_id, ==, "peer");
      g_assert_cmpint (message->type, ==, 2);
      g_assert_true (str_is (message->request_id, message->request_id_len, "req"));
      g_assert_cmpuint (message->remainders->len, ==, 5);
      for (guint i = 0; i < 5; i++)
        {
          g_autofree char *expected = g_strdup_printf ("%s\n%u\n5\n%s", id, i, pieces[i]);

          assert_bytes_eq (message->remainders->pdata[i], expected, strlen (expected));
        }
      g_assert_cmpuint (ts_payload_budget_get_retained (ts_payload_decoder_get_budget (decoder)), ==, 0);
    }

  /* Leading zeros are the same numbers: "00"/"02" and "0"/"2" complete it. */
  g_assert_cmpint (feed (decoder, "peer\n0123456789ABCDEF\n00\n02\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (feed (decoder, "peer\n0123456789ABCDEF\n1\n2\n1,\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* Two senders (or recipients) with the same id: two messages. */
  g_assert_cmpint (feed (decoder, "a\n0123456789ABCDEF\n0\n2\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (feed (decoder, "b\n0123456789ABCDEF\n0\n2\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (decoder), ==, 2);
  g_assert_cmpint (feed (decoder, "b\n0123456789ABCDEF\n1\n2\n1,\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (decoder), ==, 1);

  /* A single-piece fragmented message is fine too. */
  g_assert_cmpint (feed (decoder, "\n_-_-_-_-_-_-_-_-\n0\n1\n[null,1,\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* An empty piece. */
  g_assert_cmpint (feed (decoder, "\nzzzzzzzzzzzzzzzz\n1\n2\n", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (feed (decoder, "\nzzzzzzzzzzzzzzzz\n0\n2\n[null,1,\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* Error cases, each on its own decoder. */
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* duplicate index */
    g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n0\n3\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    assert_feed_error (d, "\n0123456789ABCDEF\n00\n3\n[null,", T0, TS_PAYLOAD_INVALID);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* another total */
    g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n0\n3\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    assert_feed_error (d, "\n0123456789ABCDEF\n1\n2\n1,\"\"]", T0, TS_PAYLOAD_INVALID);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* reassembles to something invalid */
    g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n0\n2\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    assert_feed_error (d, "\n0123456789ABCDEF\n1\n2\n9,{}]", T0, TS_PAYLOAD_INVALID);
    g_assert_cmpuint (ts_payload_budget_get_retained (ts_payload_decoder_get_budget (d)), ==, 0);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    assert_feed_error (d, "\n0123456789ABCDEF\n0\n0\nx", T0, TS_PAYLOAD_INVALID);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    assert_feed_error (d, "\n0123456789ABCDEF\n5\n5\nx", T0, TS_PAYLOAD_INVALID);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* a huge index is just >= total */
    assert_feed_error (d, "\n0123456789ABCDEF\n99999999999999999999999999\n5\nx", T0, TS_PAYLOAD_INVALID);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* total > 1000 is checked before index >= total and total 0 */
    assert_feed_error (d, "\n0123456789ABCDEF\n5000\n1001\nx", T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    assert_feed_error (d, "\n0123456789ABCDEF\n0\n99999999999999999999999\nx", T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    /* 1000 pieces is the maximum; the last index is 999 */
    g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n999\n1000\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    assert_feed_error (d, "\n0123456789ABCDEF\n1000\n1000\nx", T0, TS_PAYLOAD_INVALID);
  }
  {
    /* A full 1000-piece message. */
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);
    g_autoptr(TsPayloadMessage) message = NULL;
    GString *body = g_string_new ("[null,2,[0,0]");

    /* 13 characters, 986 spaces, "]": 1000 one-byte pieces */
    g_string_set_size (body, 1000);
    memset (body->str + 13, ' ', 986);
    body->str[999] = ']';
    for (guint i = 0; i < 1000; i++)
      {
        char piece[2] = { body->str[i], 0 };
        g_autofree char *text = fragment_text ("", "AAAAAAAAAAAAAAAA", i, 1000, piece);

        g_assert_cmpint (ts_payload_decoder_decode (d, text, strlen (text), T0, &message, NULL),
                         ==, i < 999 ? TS_PAYLOAD_RESULT_BUFFERED : TS_PAYLOAD_RESULT_MESSAGE);
      }
    g_assert_cmpuint (message->remainders->len, ==, 1000);
    g_string_free (body, TRUE);
  }
}

static void
test_decoder_buffer_limit (void)
{
  g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (0, 0);
  g_autoptr(TsPayloadDecoder) a = ts_payload_decoder_new (budget, 1);
  g_autoptr(TsPayloadDecoder) b = ts_payload_decoder_new (budget, 1);

  /* 100 incomplete messages per socket, shared by its decoders. */
  for (guint i = 0; i < 100; i++)
    {
      g_autofree char *text = g_strdup_printf ("\n%016u\n0\n3\n[null,", i);

      g_assert_cmpint (feed (i % 2 ? a : b, text, T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    }
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 100);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (a), ==, 50);
  /* A further piece of an open message is not a new buffer. */
  g_assert_cmpint (feed (a, "\n0000000000000001\n1\n3\n1,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  /* Completing one frees a slot. */
  g_assert_cmpint (feed (a, "\n0000000000000001\n2\n3\n\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 99);
  g_assert_cmpint (feed (b, "\nxxxxxxxxxxxxxxxx\n0\n3\n[null,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  /* The 101st on the other decoder overflows the socket: both are dead. */
  assert_feed_error (a, "\nyyyyyyyyyyyyyyyy\n0\n3\n[null,", T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  g_assert_cmpint (feed (b, "\n[null,1,\"\"]", T0, NULL), ==, TS_PAYLOAD_RESULT_IGNORED);
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 0);
  g_assert_cmpuint (ts_payload_budget_get_retained (budget), ==, 0);
}

static void
test_decoder_expiry (void)
{
  g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (0, 0);
  g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (budget, 0.3);
  g_autoptr(TsPayloadDecoder) other = ts_payload_decoder_new (budget, 0.3);
  const gint64 lifetime = 300 * 1000;

  g_assert_cmpint (ts_payload_decoder_get_next_expiry (d), ==, -1);
  g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n0\n2\n[null,1,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (ts_payload_decoder_get_next_expiry (d), ==, T0 + lifetime);
  /* Just in time. */
  g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n1\n2\n\"\"]", T0 + lifetime - 1, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);

  /* Too late: the first piece is gone; the second starts a new buffer. */
  g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n0\n2\n[null,1,", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (feed (d, "\n0123456789ABCDEF\n1\n2\n\"\"]", T0 + lifetime, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (d), ==, 1);
  g_assert_cmpint (ts_payload_decoder_get_next_expiry (d), ==, T0 + 2 * lifetime);
  /* The lifetime runs from the first fragment, not the latest. */
  g_assert_cmpint (feed (d, "\nAAAAAAAAAAAAAAAA\n0\n3\n[null,", T0 + lifetime + 10, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpint (feed (d, "\nAAAAAAAAAAAAAAAA\n1\n3\n1,", T0 + 2 * lifetime + 5, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (d), ==, 1);
  g_assert_cmpint (feed (d, "\nAAAAAAAAAAAAAAAA\n2\n3\n\"\"]", T0 + 2 * lifetime + 10, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (d), ==, 1);

  /* Expired buffers of another decoder on the socket do not count. */
  ts_payload_decoder_clear (d);
  for (guint i = 0; i < 100; i++)
    {
      g_autofree char *text = g_strdup_printf ("\n%016u\n0\n2\nx", i);

      g_assert_cmpint (feed (other, text, T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    }
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 100);
  g_assert_cmpint (feed (d, "\nBBBBBBBBBBBBBBBB\n0\n2\nx", T0 + lifetime, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_decoder_get_n_buffers (other), ==, 0);
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 1);
  ts_payload_decoder_expire (other, T0 + 2 * lifetime);
  g_assert_cmpuint (ts_payload_budget_get_n_buffers (budget), ==, 0);
  g_assert_cmpuint (ts_payload_budget_get_retained (budget), ==, 0);

  /* Node's setTimeout clamps: 0 s behaves as 1 ms. */
  {
    g_autoptr(TsPayloadDecoder) z = ts_payload_decoder_new (NULL, 0);

    g_assert_cmpint (feed (z, "\n0123456789ABCDEF\n0\n2\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    g_assert_cmpint (ts_payload_decoder_get_next_expiry (z), ==, T0 + 1000);
  }
}

static void
test_decoder_retained (void)
{
  /* Small caps for exact boundaries: key "c\n" + 16 = 18 bytes, counted
   * once per message; each remainder counts fully (envelope included). */
  const gsize cap = 100;
  g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (1000, cap);
  g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (budget, 1);
  g_autofree char *first = NULL, *second = NULL, *third = NULL;
  gsize header = 16 + 1 + 1 + 1 + 1 + 1; /* id \n 0 \n 3 \n */

  /* 18 + (21 + 30) = 69 */
  first = fragment_text ("c", "KKKKKKKKKKKKKKKK", 0, 3, "[null,2,[0,0]                 ");
  g_assert_cmpuint (strlen (first) - 2, ==, header + 30);
  g_assert_cmpint (feed (d, first, T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_budget_get_retained (budget), ==, 18 + header + 30);
  /* + (21 + 10) = 100: exactly the cap */
  second = fragment_text ("c", "KKKKKKKKKKKKKKKK", 1, 3, "abcdefghij");
  g_assert_cmpint (feed (d, second, T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
  g_assert_cmpuint (ts_payload_budget_get_retained (budget), ==, cap);
  /* one more byte is too much */
  third = fragment_text ("c", "KKKKKKKKKKKKKKKK", 2, 3, "]");
  assert_feed_error (d, third, T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  g_assert_cmpuint (ts_payload_budget_get_retained (budget), ==, 0);

  /* The key counts once per buffer: a new message costs its key again. */
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (1000, 18 + 22 + 18 + 22);
    g_autoptr(TsPayloadDecoder) e = ts_payload_decoder_new (b, 1);

    g_assert_cmpint (feed (e, "c\nKKKKKKKKKKKKKKKK\n0\n3\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    g_assert_cmpint (feed (e, "c\nKKKKKKKKKKKKKKKK\n1\n3\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    g_assert_cmpuint (ts_payload_budget_get_retained (b), ==, 18 + 22 + 22);
    /* a new message needs 18 + 22 > 18 left */
    assert_feed_error (e, "c\nLLLLLLLLLLLLLLLL\n0\n3\nx", T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  }
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (1000, 18 + 22 + 18 + 22);
    g_autoptr(TsPayloadDecoder) e = ts_payload_decoder_new (b, 1);

    g_assert_cmpint (feed (e, "c\nKKKKKKKKKKKKKKKK\n0\n3\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    g_assert_cmpint (feed (e, "c\nLLLLLLLLLLLLLLLL\n0\n3\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    g_assert_cmpuint (ts_payload_budget_get_retained (b), ==, 2 * (18 + 22));
    g_assert_cmpuint (ts_payload_decoder_get_n_buffers (e), ==, 2);
  }
  {
    /* The checks run in order: a repeated index is invalid even when it
     * would also overflow. */
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (1000, 18 + 22);
    g_autoptr(TsPayloadDecoder) e = ts_payload_decoder_new (b, 1);

    g_assert_cmpint (feed (e, "c\nKKKKKKKKKKKKKKKK\n0\n3\nx", T0, NULL), ==, TS_PAYLOAD_RESULT_BUFFERED);
    assert_feed_error (e, "c\nKKKKKKKKKKKKKKKK\n0\n3\nx", T0, TS_PAYLOAD_INVALID);
  }
}

static void
test_decoder_payload_size (void)
{
  const gsize cap = 64;
  GString *s = g_string_new ("\n[null,1,\"\"]");

  g_string_append_len (s, "                                                                ", (gssize) (cap - s->len));
  g_assert_cmpuint (s->len, ==, cap);
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (cap, 0);
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (b, 1);

    g_assert_cmpint (feed (d, s->str, T0, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);
  }
  g_string_append_c (s, ' ');
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (cap, 0);
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (b, 1);

    assert_feed_error (d, s->str, T0, TS_PAYLOAD_OVERFLOW_SOCKET);
  }
  g_string_free (s, TRUE);

  /* Too large and fragment-like: even with an absurd total or a prefix. */
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (cap, 0);
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (b, 1);
    g_autofree char *text = g_strdup_printf ("anything\n0123456789ABCDEF\n7\n0\n%0*d", (int) cap, 0);

    assert_feed_error (d, text, T0, TS_PAYLOAD_OVERFLOW_FRAGMENTS);
  }
  {
    g_autoptr(TsPayloadBudget) b = ts_payload_budget_new (cap, 0);
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (b, 1);
    /* no newline after total: not fragment-like */
    g_autofree char *text = g_strdup_printf ("\n0123456789ABCDEF\n7\n0%0*d", (int) cap, 0);

    assert_feed_error (d, text, T0, TS_PAYLOAD_OVERFLOW_SOCKET);
  }
  g_assert_true (ts_payload_looks_like_fragment ("\n0123456789ABCDEF\n0\n1\n", 22));
  g_assert_true (ts_payload_looks_like_fragment ("x\ny\n0123456789ABCDEF\n0\n1\n", 25) == FALSE);
  g_assert_false (ts_payload_looks_like_fragment ("\n0123456789ABCDEF\n0\n1", 21));
  g_assert_false (ts_payload_looks_like_fragment ("0123456789ABCDEF\n0\n1\n", 21));
}

static void
test_decoder_16mib (void)
{
  /* The real default: exactly 16 MiB is accepted, one more byte is not. */
  const gsize max = TS_PAYLOAD_DEFAULT_MAX_SIZE;
  static const char head[] = "\n[null,1,\"\"]";
  char *text = g_malloc (max + 2);
  g_autoptr(TsPayloadMessage) message = NULL;
  TsPayloadStatus status = TS_PAYLOAD_OK;

  memcpy (text, head, sizeof head - 1);
  memset (text + sizeof head - 1, ' ', max + 1 - (sizeof head - 1));
  text[max + 1] = '\0';
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    g_assert_cmpuint (ts_payload_budget_get_max_payload_size (ts_payload_decoder_get_budget (d)), ==, 16777216);
    g_assert_cmpuint (ts_payload_budget_get_max_retained_size (ts_payload_decoder_get_budget (d)), ==, 16777216);
    g_assert_cmpint (ts_payload_decoder_decode (d, text, max, T0, &message, NULL), ==, TS_PAYLOAD_RESULT_MESSAGE);
    g_assert_cmpuint (g_bytes_get_size (message->remainders->pdata[0]), ==, max - 1);
  }
  {
    g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);

    g_clear_pointer (&message, ts_payload_message_free);
    g_assert_cmpint (ts_payload_decoder_decode (d, text, max + 1, T0, &message, &status), ==, TS_PAYLOAD_RESULT_ERROR);
    g_assert_cmpint (status, ==, TS_PAYLOAD_OVERFLOW_SOCKET);
  }
  g_free (text);
}

/* ======================================================================= */
/* Hand-written: encoding                                                   */
/* ======================================================================= */

static void
test_encode (void)
{
  g_autofree char *r1 = NULL, *r2 = NULL;
  gsize len;
  g_autoptr(GPtrArray) payloads = NULL;
  g_autoptr(GBytes) built = NULL;

  r1 = ts_payload_encode_remainder (NULL, -1, 1, "\"\"", -1, &len);
  g_assert_cmpstr (r1, ==, "[null,1,\"\"]");
  g_assert_cmpuint (len, ==, strlen (r1));
  r2 = ts_payload_encode_remainder ("a\"b\n\xEF\xBF\xBC", -1, 0, "[0,0]", 5, NULL);
  g_assert_cmpstr (r2, ==, "[\"a\\\"b\\n\xEF\xBF\xBC\",0,[0,0]]");

  payloads = ts_payload_encode (NULL, -1, "V-6vr6Rshyo.xYbz", -1, 1, "\"\"", -1, 0);
  g_assert_cmpuint (payloads->len, ==, 1);
  assert_bytes_str (payloads->pdata[0], "\n[\"V-6vr6Rshyo.xYbz\",1,\"\"]");
  g_clear_pointer (&payloads, g_ptr_array_unref);

  /* With fragmentation on, a short message stays whole. */
  payloads = ts_payload_encode ("peer", -1, NULL, -1, 2, "[0,0]", -1, 60);
  g_assert_cmpuint (payloads->len, ==, 1);
  assert_bytes_str (payloads->pdata[0], "peer\n[null,2,[0,0]]");
  g_clear_pointer (&payloads, g_ptr_array_unref);

  built = ts_payload_build ("S", 1, "[null,1,\"\"]", -1);
  assert_bytes_str (built, "S\n[null,1,\"\"]");
  g_clear_pointer (&built, g_bytes_unref);
  built = ts_multiplex_wrap ("pets", -1, "\n[null,1,\"\"]", 12);
  assert_bytes_str (built, "M\npets\n\n[null,1,\"\"]");
  g_clear_pointer (&built, g_bytes_unref);
  built = ts_multiplex_encode_control ("r1", -1, TS_MULTIPLEX_HELLO, NULL, -1);
  assert_bytes_str (built, "S\n[\"r1\",-1,[0,1]]");
  g_clear_pointer (&built, g_bytes_unref);
  built = ts_multiplex_encode_control (NULL, -1, TS_MULTIPLEX_UNSUBSCRIBE, "a/b", -1);
  assert_bytes_str (built, "S\n[null,-1,[2,\"a/b\"]]");
}

static void
test_fragment_split (void)
{
  /* 1-, 2-, 3- and 4-byte code points. */
  static const char text[] = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x90\xB6z\xF0\x9F\x90\xB6\xF0\x9F\x90\xB6";
  gsize len = sizeof text - 1;

  for (gsize target = 1; target <= len + 1; target++)
    {
      g_autofree gsize *ends = NULL;
      guint n = ts_payload_split (text, len, target, &ends);
      gsize start = 0;

      g_assert_cmpuint (ends[n - 1], ==, len);
      for (guint i = 0; i < n; i++)
        {
          gsize size = ends[i] - start;

          g_assert_cmpuint (size, >, 0);
          /* never inside a code point */
          g_assert_true (ends[i] == len || ((guchar) text[ends[i]] & 0xC0) != 0x80);
          /* over target only when it is one code point */
          if (size > target)
            g_assert_cmpuint (g_utf8_strlen (text + start, (gssize) size), ==, 1);
          /* greedy: the next code point did not fit */
          if (i + 1 < n)
            {
              gsize next = 1;

              while (ends[i] + next < len && ((guchar) text[ends[i] + next] & 0xC0) == 0x80)
                next++;
              g_assert_cmpuint (size + next, >, target);
            }
          start = ends[i];
        }
    }
  g_assert_cmpuint (ts_payload_split ("", 0, 5, NULL), ==, 1);
  g_assert_cmpuint (ts_payload_split ("abcdef", 6, 2, NULL), ==, 3);

  /* Targets (12.3 step 1). */
  g_assert_cmpuint (ts_payload_fragment_target (100, 60), ==, 60);
  g_assert_cmpuint (ts_payload_fragment_target (100, 1), ==, 4);
  g_assert_cmpuint (ts_payload_fragment_target (1000, 1), ==, 4);
  g_assert_cmpuint (ts_payload_fragment_target (1001, 1), ==, 5);
  g_assert_cmpuint (ts_payload_fragment_target (0, 1), ==, 3);
}

static void
test_fragment_roundtrip (void)
{
  /* A long body with multi-byte characters, fragment size 1: never more
   * than 1000 pieces; decoding the pieces gives the message back. */
  GString *body = g_string_new ("[[{\"t\":[{\"r\":[{\"c\":[\"");
  g_autoptr(GPtrArray) payloads = NULL;
  g_autoptr(TsPayloadDecoder) d = ts_payload_decoder_new (NULL, 1);
  g_autoptr(TsPayloadMessage) message = NULL;
  g_autofree char *remainder = NULL;
  gsize remainder_len;
  const char *id0 = NULL;

  for (int i = 0; i < 3000; i++)
    g_string_append (body, i % 3 == 0 ? "\xF0\x9F\x90\xB6" : i % 3 == 1 ? "\xC3\xA9" : "x");
  g_string_append (body, "\",\"\"]}]}]}],[{}],1]");
  remainder = ts_payload_encode_remainder ("tx", -1, 3, body->str, -1, &remainder_len);
  payloads = ts_payload_encode ("", -1, "tx", -1, 3, body->str, -1, 1);
  g_assert_cmpuint (payloads->len, <=, 1000);
  /* every piece but the last is at least target - 3 bytes */
  g_assert_cmpuint (payloads->len, >=, remainder_len / ts_payload_fragment_target (remainder_len, 1));
  for (guint i = 0; i < payloads->len; i++)
    {
      gsize size;
      const char *data = g_bytes_get_data (payloads->pdata[i], &size);
      g_autofree char *prefix = g_strdup_printf ("\n%u\n%u\n", i, payloads->len);

      g_assert_cmpint (data[0], ==, '\n');
      if (id0 == NULL)
        id0 = data + 1;
      g_assert_true (memcmp (data + 1, id0, 16) == 0);
      g_assert_true (memcmp (data + 17, prefix, strlen (prefix)) == 0);
      g_assert_true (g_utf8_validate_len (data, size, NULL));
      g_assert_cmpint (ts_payload_decoder_decode (d, data, size, T0, &message, NULL),
                       ==, i + 1 < payloads->len ? TS_PAYLOAD_RESULT_BUFFERED : TS_PAYLOAD_RESULT_MESSAGE);
    }
  {
    gsize len;
    g_autofree char *again = message_reencode_remainder (message, &len);

    g_assert_cmpstr (again, ==, remainder);
  }
  for (guint k = 0; k < 16; k++)
    g_assert_nonnull (strchr (ts_id_alphabet, id0[k]));
  g_string_free (body, TRUE);

  /* A fixed id gives a fixed result; a random one differs per call. */
  {
    g_autoptr(GPtrArray) x = ts_payload_fragment ("p", 1, "[null,1,\"\"]", 11, 4, "abcdefghijklmnop");
    g_autoptr(GPtrArray) y = ts_payload_fragment ("p", 1, "[null,1,\"\"]", 11, 4, NULL);
    g_autoptr(GPtrArray) z = ts_payload_fragment ("p", 1, "[null,1,\"\"]", 11, 4, NULL);

    g_assert_cmpuint (x->len, ==, 3);
    assert_bytes_str (x->pdata[0], "p\nabcdefghijklmnop\n0\n3\n[nul");
    assert_bytes_str (x->pdata[1], "p\nabcdefghijklmnop\n1\n3\nl,1,");
    assert_bytes_str (x->pdata[2], "p\nabcdefghijklmnop\n2\n3\n\"\"]");
    g_assert_false (g_bytes_equal (y->pdata[0], z->pdata[0]));
  }
}

/* ======================================================================= */
/* Hand-written: multiplexing                                               */
/* ======================================================================= */

static void
test_channel_ids (void)
{
  static const struct {
    const char      *id;
    TsChannelIdCheck check;
  } cases[] = {
    { "pets", TS_CHANNEL_ID_VALID },
    { "a/b", TS_CHANNEL_ID_VALID },
    { "a/b/c", TS_CHANNEL_ID_VALID },
    { "...", TS_CHANNEL_ID_VALID },
    { "a/.b", TS_CHANNEL_ID_VALID },
    { "caf\xC3\xA9", TS_CHANNEL_ID_VALID },
    { "a b%20", TS_CHANNEL_ID_VALID },
    { "", TS_CHANNEL_ID_INVALID },
    { "/", TS_CHANNEL_ID_INVALID },
    { "/a", TS_CHANNEL_ID_INVALID },
    { "a/", TS_CHANNEL_ID_INVALID },
    { "a//b", TS_CHANNEL_ID_INVALID },
    { ".", TS_CHANNEL_ID_INVALID },
    { "..", TS_CHANNEL_ID_INVALID },
    { "./a", TS_CHANNEL_ID_INVALID },
    { "a/./b", TS_CHANNEL_ID_INVALID },
    { "a/../b", TS_CHANNEL_ID_INVALID },
    { "a/..", TS_CHANNEL_ID_INVALID },
    { "a?b", TS_CHANNEL_ID_INVALID },
    { "a#b", TS_CHANNEL_ID_INVALID },
    { "a\nb", TS_CHANNEL_ID_INVALID },
    { "a\rb", TS_CHANNEL_ID_INVALID },
  };
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpint (ts_channel_id_check (cases[i].id, strlen (cases[i].id)), ==, cases[i].check);

  /* 1024 bytes is fine, 1025 too long, even if also malformed. */
  for (int i = 0; i < 1024; i++)
    g_string_append_c (s, 'c');
  g_assert_cmpint (ts_channel_id_check (s->str, s->len), ==, TS_CHANNEL_ID_VALID);
  g_string_append_c (s, '?');
  g_assert_cmpint (ts_channel_id_check (s->str, s->len), ==, TS_CHANNEL_ID_TOO_LONG);
  /* Sizes are bytes: 341 x "€" (3 bytes) + "a" = 1024, 342 x "€" = 1026. */
  g_string_truncate (s, 0);
  for (int i = 0; i < 341; i++)
    g_string_append (s, "\xE2\x82\xAC");
  g_string_append_c (s, 'a');
  g_assert_cmpint (ts_channel_id_check (s->str, s->len), ==, TS_CHANNEL_ID_VALID);
  g_string_truncate (s, s->len - 1);
  g_string_append (s, "\xE2\x82\xAC");
  g_assert_cmpint (ts_channel_id_check (s->str, s->len), ==, TS_CHANNEL_ID_TOO_LONG);
  g_string_free (s, TRUE);

  {
    g_autofree char *a = ts_multiplex_room_path ("", "pets");
    g_autofree char *b = ts_multiplex_room_path ("shop", "pets");

    g_assert_cmpstr (a, ==, "pets");
    g_assert_cmpstr (b, ==, "shop/pets");
  }
}

static TsPayloadResult
mux (const char       *text,
     TsMultiplexFrame *frame,
     TsPayloadStatus  *status)
{
  g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (0, 0);

  *status = TS_PAYLOAD_OK;
  return ts_multiplex_decode (budget, text, strlen (text), frame, status);
}

static void
test_js_loose_equality (void)
{
  static const struct {
    const char *json;
    double      x;
    gboolean    equal;
  } cases[] = {
    { "1", 1, TRUE }, { "1.0", 1, TRUE }, { "1e0", 1, TRUE }, { "10e-1", 1, TRUE },
    { "\"1\"", 1, TRUE }, { "\" 1 \"", 1, TRUE }, { "\"1.0\"", 1, TRUE }, { "\"+1\"", 1, TRUE },
    { "\"01\"", 1, TRUE }, { "\"0x1\"", 1, TRUE }, { "\"0X01\"", 1, TRUE }, { "\"0b1\"", 1, TRUE },
    { "\"0o1\"", 1, TRUE }, { "\".1e1\"", 1, TRUE }, { "\"1.\"", 1, TRUE }, { "\"\\t1\\n\"", 1, TRUE },
    { "\"\xC2\xA0" "1\xE2\x80\xA8\"", 1, TRUE }, { "\"\xEF\xBB\xBF" "1\xE3\x80\x80\"", 1, TRUE },
    { "\"1.00000000000000001\"", 1, TRUE }, { "\"0.99999999999999999\"", 1, TRUE },
    { "true", 1, TRUE }, { "[1]", 1, TRUE }, { "[\"1\"]", 1, TRUE }, { "[[1]]", 1, TRUE },
    { "[[[\" 1 \"]]]", 1, TRUE }, { "[\"0x1\"]", 1, TRUE }, { "[1.0]", 1, TRUE },
    { "2", 1, FALSE }, { "\"2\"", 1, FALSE }, { "false", 1, FALSE }, { "null", 1, FALSE },
    { "\"\xEF\xBF\xBC\"", 1, FALSE }, { "[]", 1, FALSE }, { "[1,2]", 1, FALSE }, { "[true]", 1, FALSE },
    { "\"true\"", 1, FALSE }, { "\"1a\"", 1, FALSE }, { "\"0x\"", 1, FALSE }, { "\"1e\"", 1, FALSE },
    { "\"\"", 1, FALSE }, { "{}", 1, FALSE }, { "[{}]", 1, FALSE }, { "\"1_0\"", 10, FALSE },
    { "\"\xD9\xA1\"", 1, FALSE }, { "\"+0x1\"", 1, FALSE }, { "\"-0x1\"", -1, FALSE }, { "\". 1\"", 1, FALSE },
    { "\"1 1\"", 1, FALSE }, { "\"\\u00001\"", 1, FALSE }, { "\"\xE1\xA0\x8E" "1\"", 1, FALSE },
    /* -1 (the control message number) */
    { "-1", -1, TRUE }, { "\"-1\"", -1, TRUE }, { "[-1]", -1, TRUE }, { "[\"-1\"]", -1, TRUE },
    { "\" -1e0 \"", -1, TRUE }, { "\"-1.\"", -1, TRUE }, { "[[-1]]", -1, TRUE },
    /* 0 */
    { "0", 0, TRUE }, { "-0", 0, TRUE }, { "false", 0, TRUE }, { "\"\"", 0, TRUE }, { "\"  \"", 0, TRUE },
    { "[]", 0, TRUE }, { "[[]]", 0, TRUE }, { "[null]", 0, TRUE }, { "[\"\xEF\xBF\xBC\"]", 0, TRUE },
    { "\"0x0\"", 0, TRUE }, { "\"-0\"", 0, TRUE }, { "null", 0, FALSE }, { "\"\xEF\xBF\xBC\"", 0, FALSE },
    { "{}", 0, FALSE }, { "[null,null]", 0, FALSE },
    /* numbers inside arrays are written as Number::toString */
    { "[1e21]", 1e21, TRUE }, { "[1e400]", INFINITY, TRUE }, { "\"Infinity\"", INFINITY, TRUE },
    { "\"-Infinity\"", -INFINITY, TRUE }, { "\"infinity\"", INFINITY, FALSE }, { "[2,[]]", 2, FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TsJsonDoc) doc = parse (cases[i].json);

      g_test_message ("%s == %g", cases[i].json, cases[i].x);
      g_assert_cmpint (ts_js_loosely_equals_number (ts_json_doc_get_root (doc), cases[i].x), ==, cases[i].equal);
    }
  g_assert_true (isnan (ts_js_string_to_number ("abc", 3)));
  g_assert_cmpfloat (ts_js_string_to_number ("0xff", 4), ==, 255);
  g_assert_cmpfloat (ts_js_string_to_number (" -1.5e3 ", 8), ==, -1500);
  g_assert_cmpfloat (ts_js_string_to_number ("", 0), ==, 0);
}

static void
test_multiplex_controls (void)
{
  static const struct {
    const char        *text;
    TsPayloadResult    result;
    TsMultiplexControl control;
  } cases[] = {
    { "S\n[\"r\",-1,[0,1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,\"1\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,true]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,[1]]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,[\"1\"]]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,[[1]]]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[0,1.0]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",\"-1\",[0,1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",[-1],[\"0\",1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[[],1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[false,1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"\",-1,[0,1]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n [ \"r\" , -1 , [ 0 , 1 ] ] ", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_HELLO },
    { "S\n[\"r\",-1,[1,\"pets\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_SUBSCRIBE },
    { "S\n[\"r\",-1,[true,\"pets\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_SUBSCRIBE },
    { "S\n[\"r\",-1,[\"1\",\"a/b\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_SUBSCRIBE },
    { "S\n[null,-1,[2,\"pets\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_UNSUBSCRIBE },
    { "S\n[null,-1,[[2],\"pets\"]]", TS_PAYLOAD_RESULT_CONTROL, TS_MULTIPLEX_UNSUBSCRIBE },
    /* invalid */
    { "S\n[\"r\",-1,[0,2]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0,null]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0,{}]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0,\"\xEF\xBF\xBC\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[null,-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[1,-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"\xEF\xBF\xBC\",-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-2,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",\"-0x1\",[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",{},[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0,1,2]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,\"01\"]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[0,1],1]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[3,\"pets\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[null,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[{},1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[null,-1,[1,\"pets\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[2,\"pets\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[1,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[1,\"\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[1,\"a//b\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[\"r\",-1,[1,\"\xEF\xBF\xBC\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[null,-1,[2,\"a/../b\"]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n[null,1,\"\"]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S\n{", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S \n[\"r\",-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "s\n[\"r\",-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "\n[\"r\",-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
    { "S[\"r\",-1,[0,1]]", TS_PAYLOAD_RESULT_ERROR, 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TsMultiplexFrame frame;
      TsPayloadStatus status;

      note ("", cases[i].text);
      g_assert_cmpint (mux (cases[i].text, &frame, &status), ==, cases[i].result);
      if (cases[i].result == TS_PAYLOAD_RESULT_CONTROL)
        {
          g_assert_cmpint (frame.control, ==, cases[i].control);
          g_assert_false (frame.channel_id_too_long);
        }
      else
        g_assert_cmpint (status, ==, TS_PAYLOAD_INVALID);
      ts_multiplex_frame_clear (&frame);
    }

  /* Echoes re-serialize the parsed values. */
  {
    static const struct {
      const char *in;
      const char *echo;
    } echoes[] = {
      { "S\n[\"r1\",-1,[0,1.0]]", "S\n[\"r1\",-1,[0,1]]" },
      { "S\n[\"r1\",-1,[0,\"1\"]]", "S\n[\"r1\",-1,[0,\"1\"]]" },
      { "S\n [\"\\u0072\" , \"-1\" ,[[],[[1e0]]]]", "S\n[\"r\",-1,[[],[[1]]]]" },
      { "S\n[\"r2\",-1,[\"1\",\"p\\u0065ts\"]]", "S\n[\"r2\",-1,[\"1\",\"pets\"]]" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS (echoes); i++)
      {
        TsMultiplexFrame frame;
        TsPayloadStatus status;
        g_autoptr(GBytes) echo = NULL;

        g_assert_cmpint (mux (echoes[i].in, &frame, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
        echo = ts_multiplex_encode_echo (&frame);
        assert_bytes_eq (echo, echoes[i].echo, strlen (echoes[i].echo));
        ts_multiplex_frame_clear (&frame);
      }
  }

  /* Too-long channel ids are valid controls with a flag. */
  {
    GString *s = g_string_new ("S\n[\"r\",-1,[1,\"");
    TsMultiplexFrame frame;
    TsPayloadStatus status;

    for (int i = 0; i < 1025; i++)
      g_string_append_c (s, '/');
    g_string_append (s, "\"]]");
    g_assert_cmpint (mux (s->str, &frame, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
    g_assert_true (frame.channel_id_too_long);
    g_assert_cmpuint (frame.channel_id_len, ==, 1025);
    g_assert_cmpint (ts_multiplex_server_action (&frame, FALSE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_IGNORE);
    g_assert_cmpint (ts_multiplex_server_action (&frame, TRUE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_OVERFLOW);
    ts_multiplex_frame_clear (&frame);
    g_string_free (s, TRUE);
  }
}

static void
test_multiplex_channels (void)
{
  TsMultiplexFrame frame;
  TsPayloadStatus status;
  GString *s;

  g_assert_cmpint (mux ("M\npets\npeer\n[null,1,\"\"]", &frame, &status), ==, TS_PAYLOAD_RESULT_CHANNEL);
  g_assert_true (str_is (frame.channel_id, frame.channel_id_len, "pets"));
  g_assert_true (str_is (frame.inner, frame.inner_len, "peer\n[null,1,\"\"]"));
  ts_multiplex_frame_clear (&frame);
  /* The inner payload is not looked at here. */
  g_assert_cmpint (mux ("M\na/b\n", &frame, &status), ==, TS_PAYLOAD_RESULT_CHANNEL);
  g_assert_cmpuint (frame.inner_len, ==, 0);
  ts_multiplex_frame_clear (&frame);

  {
    static const char *invalid[] = {
      "M\npets", "M\n\n\n[null,1,\"\"]", "M\na//b\n\n[null,1,\"\"]", "M\na?b\n\n[null,1,\"\"]",
      "M \npets\n\n[null,1,\"\"]", "m\npets\n\n[null,1,\"\"]", "\n[null,1,\"\"]", "peer\n[null,1,\"\"]",
      "", "M", "no newline",
    };

    for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++)
      {
        note ("", invalid[i]);
        g_assert_cmpint (mux (invalid[i], &frame, &status), ==, TS_PAYLOAD_RESULT_ERROR);
        g_assert_cmpint (status, ==, TS_PAYLOAD_INVALID);
      }
  }

  /* Too long: overflow, but only once the second line is complete. */
  s = g_string_new ("M\n");
  for (int i = 0; i < 1025; i++)
    g_string_append_c (s, '#');
  g_assert_cmpint (mux (s->str, &frame, &status), ==, TS_PAYLOAD_RESULT_ERROR);
  g_assert_cmpint (status, ==, TS_PAYLOAD_INVALID);
  g_string_append (s, "\n\n[null,1,\"\"]");
  g_assert_cmpint (mux (s->str, &frame, &status), ==, TS_PAYLOAD_RESULT_ERROR);
  g_assert_cmpint (status, ==, TS_PAYLOAD_OVERFLOW_CHANNELS);

  /* Frames over the cap are socket overflows, whatever they contain. */
  {
    g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new ((gsize) s->len - 1, 0);

    g_assert_cmpint (ts_multiplex_decode (budget, s->str, s->len, &frame, &status), ==, TS_PAYLOAD_RESULT_ERROR);
    g_assert_cmpint (status, ==, TS_PAYLOAD_OVERFLOW_SOCKET);
    g_assert_cmpint (ts_payload_budget_get_status (budget), ==, TS_PAYLOAD_OVERFLOW_SOCKET);
    /* and then everything is ignored */
    g_assert_cmpint (ts_multiplex_decode (budget, "S\n[\"r\",-1,[0,1]]", 17, &frame, &status),
                     ==, TS_PAYLOAD_RESULT_IGNORED);
    g_assert_false (ts_payload_budget_fail (budget, TS_PAYLOAD_INVALID));
  }
  {
    static const char fragment_like[] = "M\npets\n\n0123456789ABCDEF\n0\n2\n[null,1,\"\"]";
    g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (sizeof fragment_like - 2, 0);

    g_assert_cmpint (ts_multiplex_decode (budget, fragment_like, sizeof fragment_like - 1, &frame, &status),
                     ==, TS_PAYLOAD_RESULT_ERROR);
    g_assert_cmpint (status, ==, TS_PAYLOAD_OVERFLOW_SOCKET);
  }
  g_string_free (s, TRUE);
}

static void
test_multiplex_server_client (void)
{
  TsMultiplexFrame hello, sub, unsub;
  TsPayloadStatus status;

  g_assert_cmpint (mux ("S\n[\"HelloRequestId16\",-1,[0,1]]", &hello, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
  g_assert_cmpint (mux ("S\n[\"r\",-1,[1,\"pets\"]]", &sub, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
  g_assert_cmpint (mux ("S\n[null,-1,[2,\"pets\"]]", &unsub, &status), ==, TS_PAYLOAD_RESULT_CONTROL);

  /* 13.5 */
  g_assert_cmpint (ts_multiplex_server_action (&hello, FALSE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_HELLO);
  g_assert_cmpint (ts_multiplex_server_action (&hello, TRUE, FALSE, 100, 200), ==, TS_MULTIPLEX_ACTION_HELLO);
  g_assert_cmpint (ts_multiplex_server_action (&sub, FALSE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_IGNORE);
  g_assert_cmpint (ts_multiplex_server_action (&sub, TRUE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_SUBSCRIBE);
  g_assert_cmpint (ts_multiplex_server_action (&sub, TRUE, FALSE, 99, 199), ==, TS_MULTIPLEX_ACTION_SUBSCRIBE);
  g_assert_cmpint (ts_multiplex_server_action (&sub, TRUE, FALSE, 100, 100), ==, TS_MULTIPLEX_ACTION_OVERFLOW);
  g_assert_cmpint (ts_multiplex_server_action (&sub, TRUE, FALSE, 50, 200), ==, TS_MULTIPLEX_ACTION_OVERFLOW);
  g_assert_cmpint (ts_multiplex_server_action (&sub, TRUE, TRUE, 100, 200), ==, TS_MULTIPLEX_ACTION_ECHO);
  g_assert_cmpint (ts_multiplex_server_action (&unsub, FALSE, TRUE, 1, 1), ==, TS_MULTIPLEX_ACTION_IGNORE);
  g_assert_cmpint (ts_multiplex_server_action (&unsub, TRUE, FALSE, 0, 0), ==, TS_MULTIPLEX_ACTION_UNSUBSCRIBE);

  /* 13.4: echo matching (control loose, body strict). */
  g_assert_true (ts_multiplex_echo_matches (&hello, HELLO_RID, 16, TS_MULTIPLEX_HELLO, NULL, 0));
  g_assert_false (ts_multiplex_echo_matches (&hello, "HelloRequestId17", 16, TS_MULTIPLEX_HELLO, NULL, 0));
  g_assert_false (ts_multiplex_echo_matches (&hello, HELLO_RID, 16, TS_MULTIPLEX_SUBSCRIBE, NULL, 0));
  g_assert_true (ts_multiplex_echo_matches (&sub, "r", 1, TS_MULTIPLEX_SUBSCRIBE, "pets", 4));
  g_assert_false (ts_multiplex_echo_matches (&sub, "r", 1, TS_MULTIPLEX_SUBSCRIBE, "staff", 5));
  ts_multiplex_frame_clear (&hello);
  ts_multiplex_frame_clear (&sub);
  ts_multiplex_frame_clear (&unsub);

  {
    static const struct {
      const char *text;
      gboolean    matches;
    } hellos[] = {
      { "S\n[\"HelloRequestId16\",-1,[\"0\",1]]", TRUE },  /* control: loose */
      { "S\n[\"HelloRequestId16\",-1,[0,1e0]]", TRUE },
      { "S\n[\"HelloRequestId16\",-1,[0,\"1\"]]", FALSE }, /* body: strict */
      { "S\n[\"HelloRequestId16\",-1,[0,true]]", FALSE },
      { "S\n[\"HelloRequestId16\",-1,[0,[1]]]", FALSE },
    };

    for (gsize i = 0; i < G_N_ELEMENTS (hellos); i++)
      {
        TsMultiplexFrame f;

        g_assert_cmpint (mux (hellos[i].text, &f, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
        g_assert_cmpint (ts_multiplex_echo_matches (&f, HELLO_RID, 16, TS_MULTIPLEX_HELLO, NULL, 0),
                         ==, hellos[i].matches);
        ts_multiplex_frame_clear (&f);
      }
  }
  {
    TsMultiplexFrame f;

    /* an empty request id never matches */
    g_assert_cmpint (mux ("S\n[\"\",-1,[0,1]]", &f, &status), ==, TS_PAYLOAD_RESULT_CONTROL);
    g_assert_false (ts_multiplex_echo_matches (&f, "", 0, TS_MULTIPLEX_HELLO, NULL, 0));
    ts_multiplex_frame_clear (&f);
  }
}

/* ======================================================================= */
/* Hand-written: rooms and frames                                           */
/* ======================================================================= */

static void
test_path_ids (void)
{
  static const struct {
    const char *target;
    const char *path_id;
  } cases[] = {
    { "/", "" }, { "/petShop", "petShop" }, { "/shop/pets?x=1", "shop/pets" }, { "/a/", "a/" },
    { "//a", "/a" }, { "/pet%20shop", "pet%20shop" }, { "/a?b/c", "a" }, { "/?x", "" },
    { "?a/b", "b" }, { "x/y", "y" }, { "", NULL }, { "*", NULL }, { "?/", "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path_id = NULL;
      gboolean found = ts_path_id_from_request_target (cases[i].target, strlen (cases[i].target),
                                                       &path_id, NULL);

      g_assert_cmpint (found, ==, cases[i].path_id != NULL);
      g_assert_cmpstr (path_id, ==, cases[i].path_id);
    }
}

static void
test_binary_frames (void)
{
  static const struct {
    const char *hex;
    const char *text;
  } cases[] = {
    { "", "" },
    { "41", "A" },
    { "00", "\0" },
    { "ff", "\xEF\xBF\xBD" },
    { "c3a9", "\xC3\xA9" },
    { "c3", "\xEF\xBF\xBD" },
    { "e282", "\xEF\xBF\xBD" },                          /* truncated: one */
    { "e28241", "\xEF\xBF\xBD" "A" },
    { "e282ac", "\xE2\x82\xAC" },
    { "f09f90b6", "\xF0\x9F\x90\xB6" },
    { "f09f90", "\xEF\xBF\xBD" },
    { "f080", "\xEF\xBF\xBD\xEF\xBF\xBD" },              /* overlong: each byte */
    { "c080", "\xEF\xBF\xBD\xEF\xBF\xBD" },
    { "eda080", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" }, /* surrogate */
    { "f4908080", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },
    { "80bf", "\xEF\xBF\xBD\xEF\xBF\xBD" },
    { "e0a0", "\xEF\xBF\xBD" },
    { "efbbbf41", "\xEF\xBB\xBF" "A" },                  /* BOM kept */
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) raw = bytes_from_hex (cases[i].hex);
      gsize size, out_len, expected_len = strlen (cases[i].text);
      const char *data = g_bytes_get_data (raw, &size);
      g_autofree char *text = NULL;

      if (g_str_equal (cases[i].hex, "00"))
        expected_len = 1;
      text = ts_payload_text_from_binary (data, size, &out_len);
      g_test_message ("%s", cases[i].hex);
      g_assert_cmpuint (out_len, ==, expected_len);
      g_assert_true (memcmp (text, cases[i].text, out_len) == 0);
      g_assert_cmpint (text[out_len], ==, 0);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/payload/validate", test_validate);
  g_test_add_func ("/tinysync/payload/status", test_status);
  g_test_add_func ("/tinysync/payload/decoder/message", test_decoder_message);
  g_test_add_func ("/tinysync/payload/decoder/fragments", test_decoder_fragments);
  g_test_add_func ("/tinysync/payload/decoder/buffer-limit", test_decoder_buffer_limit);
  g_test_add_func ("/tinysync/payload/decoder/expiry", test_decoder_expiry);
  g_test_add_func ("/tinysync/payload/decoder/retained", test_decoder_retained);
  g_test_add_func ("/tinysync/payload/decoder/payload-size", test_decoder_payload_size);
  g_test_add_func ("/tinysync/payload/decoder/16mib", test_decoder_16mib);
  g_test_add_func ("/tinysync/payload/encode/basic", test_encode);
  g_test_add_func ("/tinysync/payload/encode/split", test_fragment_split);
  g_test_add_func ("/tinysync/payload/encode/roundtrip", test_fragment_roundtrip);
  g_test_add_func ("/tinysync/payload/multiplex/channel-ids", test_channel_ids);
  g_test_add_func ("/tinysync/payload/multiplex/loose-equality", test_js_loose_equality);
  g_test_add_func ("/tinysync/payload/multiplex/controls", test_multiplex_controls);
  g_test_add_func ("/tinysync/payload/multiplex/channels", test_multiplex_channels);
  g_test_add_func ("/tinysync/payload/multiplex/server-client", test_multiplex_server_client);
  g_test_add_func ("/tinysync/payload/path-ids", test_path_ids);
  g_test_add_func ("/tinysync/payload/binary-frames", test_binary_frames);
  g_test_add_func ("/tinysync/payload/vectors/server-legacy", test_vectors_server_legacy);
  g_test_add_func ("/tinysync/payload/vectors/server-multiple", test_vectors_server_multiple);
  g_test_add_func ("/tinysync/payload/vectors/client-legacy", test_vectors_client_legacy);
  g_test_add_func ("/tinysync/payload/vectors/client-multiple", test_vectors_client_multiple);
  g_test_add_func ("/tinysync/payload/vectors/wire-transcript", test_vectors_wire_transcript);

  return g_test_run ();
}
