/* fuzz-payload-decoder.c: the receive side of the payload codec (ts-payload.c)
 *
 * SPDX-License-Identifier: MIT
 *
 * Input: two configuration bytes, then frames separated by the byte 0xFF
 * (never part of UTF-8):
 *   byte 0: max payload size 64 << (b & 7) (64 B .. 8 KiB), max retained
 *           fragment bytes 64 << ((b >> 3) & 7), fragment size for the
 *           re-encoding check 1 + (b >> 6) * 7;
 *   byte 1: the monotonic time advances by b x 50 ms before each frame
 *           (fragments live 1 s).
 * A frame that is valid UTF-8 goes in as a text frame; any other goes
 * through ts_payload_text_from_binary() first, as a binary frame does.
 *
 * Each frame is fed to two sockets as the server sees them: a legacy one
 * (one decoder) and a multiplexed one (ts_multiplex_decode(), then
 * Hello/Subscribe/Unsubscribe applied as TsWsServer does, with one decoder
 * per subscribed channel on the socket's shared budget). Checked:
 * - retained fragment bytes never exceed the cap, open buffers never exceed
 *   TS_PAYLOAD_MAX_BUFFERS, and both return to 0 when the decoders go;
 * - after the first error every frame is IGNORED, the status stays;
 * - a delivered message is valid; re-encoded (and fragmented) it decodes
 *   to the same message on a fresh socket;
 * - a control echo decodes to the same control;
 * - the text of a binary frame is UTF-8.
 */

#include <math.h>
#include <string.h>

#include "tinysync/ts-json-private.h"
#include "tinysync/ts-payload-private.h"

#include "fuzz-common.h"

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init ();
  return 0;
}

#define SEPARATOR 0xFF
#define LIFETIME_SECONDS 1.0

typedef struct {
  TsPayloadBudget  *budget;
  gsize             max_retained;
  guint             fragment_size;
  gint64            now;

  TsPayloadDecoder *legacy;

  TsPayloadBudget  *mux_budget;
  gboolean          negotiated;
  GHashTable       *channels;   /* channel id (char *) -> TsPayloadDecoder * */
} Sockets;

static gboolean
utf8_valid_with_nuls (const char *s,
                      gsize       len)
{
  const char *p = s, *end = s + len;

  while (p < end)
    {
      gunichar c;

      if (*p == '\0')
        {
          p++;
          continue;
        }
      c = g_utf8_get_char_validated (p, end - p);
      if (c == (gunichar) -1 || c == (gunichar) -2 || (c >= 0xD800 && c <= 0xDFFF))
        return FALSE;
      p = g_utf8_next_char (p);
    }
  return p == end;
}

static void
check_budget (TsPayloadBudget *budget,
              gsize            max_retained)
{
  FUZZ_CHECK (ts_payload_budget_get_retained (budget) <= max_retained);
  FUZZ_CHECK (ts_payload_budget_get_n_buffers (budget) <= TS_PAYLOAD_MAX_BUFFERS);
}

/* A delivered message: valid, and the same after encoding it again
 * (fragmented with a fixed message id) and decoding that on a fresh
 * socket. */
static void
check_message (TsPayloadMessage *message,
               guint             fragment_size)
{
  const char *request_id = NULL;
  gsize request_id_len = 0;
  int type = -1;
  const TsJsonNode *body = NULL;
  g_autofree char *body_json = NULL;
  g_autofree char *remainder = NULL;
  gsize body_len = 0, remainder_len = 0;
  g_autoptr(GPtrArray) payloads = NULL;
  g_autoptr(TsPayloadDecoder) decoder = NULL;
  g_autoptr(TsPayloadMessage) again = NULL;

  FUZZ_CHECK (message->doc != NULL);
  FUZZ_CHECK (message->remainders != NULL && message->remainders->len >= 1);
  FUZZ_CHECK (message->client_id != NULL && message->client_id[message->client_id_len] == '\0');
  FUZZ_CHECK (ts_protocol_message_valid (ts_json_doc_get_root (message->doc),
                                         &request_id, &request_id_len, &type, &body));
  FUZZ_CHECK (type == message->type && body == message->body);
  FUZZ_CHECK (request_id == message->request_id && request_id_len == message->request_id_len);
  if (!message->fragmented)
    FUZZ_CHECK (message->remainders->len == 1);

  body_json = ts_json_node_to_string (body, &body_len);
  remainder = ts_payload_encode_remainder (request_id, (gssize) request_id_len, type,
                                           body_json, (gssize) body_len, &remainder_len);
  payloads = ts_payload_fragment (message->client_id, (gssize) message->client_id_len,
                                  remainder, remainder_len, fragment_size,
                                  "fuzzfuzzfuzzfuzz");
  FUZZ_CHECK (payloads != NULL && payloads->len >= 1);
  FUZZ_CHECK (payloads->len <= TS_PAYLOAD_MAX_FRAGMENTS);

  decoder = ts_payload_decoder_new (NULL, LIFETIME_SECONDS);
  for (guint i = 0; i < payloads->len; i++)
    {
      gsize len;
      const char *text = g_bytes_get_data (payloads->pdata[i], &len);
      TsPayloadStatus status = TS_PAYLOAD_OK;
      TsPayloadResult result;

      result = ts_payload_decoder_decode (decoder, text, len, 0, &again, &status);
      if (i + 1 < payloads->len)
        FUZZ_CHECK (result == TS_PAYLOAD_RESULT_BUFFERED);
      else
        FUZZ_CHECK (result == TS_PAYLOAD_RESULT_MESSAGE);
    }
  FUZZ_CHECK (again != NULL);
  FUZZ_CHECK (again->type == type);
  FUZZ_CHECK (again->fragmented == (payloads->len > 1));
  FUZZ_CHECK (again->remainders->len == payloads->len);
  FUZZ_CHECK (again->client_id_len == message->client_id_len &&
              memcmp (again->client_id, message->client_id, message->client_id_len) == 0);
  FUZZ_CHECK ((again->request_id == NULL) == (request_id == NULL));
  FUZZ_CHECK (again->request_id_len == request_id_len &&
              (request_id == NULL || memcmp (again->request_id, request_id, request_id_len) == 0));
  {
    g_autofree char *again_json = NULL;
    gsize again_len = 0;

    again_json = ts_json_node_to_string (again->body, &again_len);
    FUZZ_CHECK (again_len == body_len && memcmp (again_json, body_json, body_len) == 0);
  }
}

/* One frame through one decoder, with the invariants of its budget. */
static void
decode_one (Sockets          *s,
            TsPayloadDecoder *decoder,
            const char       *text,
            gsize             len)
{
  TsPayloadBudget *budget = ts_payload_decoder_get_budget (decoder);
  TsPayloadStatus before = ts_payload_budget_get_status (budget);
  TsPayloadStatus status = TS_PAYLOAD_OK;
  g_autoptr(TsPayloadMessage) message = NULL;
  TsPayloadResult result;

  result = ts_payload_decoder_decode (decoder, text, len, s->now, &message, &status);
  switch (result)
    {
    case TS_PAYLOAD_RESULT_MESSAGE:
      FUZZ_CHECK (before == TS_PAYLOAD_OK && message != NULL);
      check_message (message, s->fragment_size);
      break;
    case TS_PAYLOAD_RESULT_BUFFERED:
      FUZZ_CHECK (before == TS_PAYLOAD_OK && message == NULL);
      FUZZ_CHECK (ts_payload_decoder_get_n_buffers (decoder) > 0);
      FUZZ_CHECK (ts_payload_decoder_get_next_expiry (decoder) > s->now);
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      FUZZ_CHECK (before == TS_PAYLOAD_OK && message == NULL);
      FUZZ_CHECK (status != TS_PAYLOAD_OK);
      FUZZ_CHECK (ts_payload_budget_get_status (budget) == status);
      FUZZ_CHECK (ts_payload_status_close_code (status) != 0);
      FUZZ_CHECK (ts_payload_status_reason (status) != NULL);
      FUZZ_CHECK (ts_payload_decoder_get_n_buffers (decoder) == 0);
      break;
    case TS_PAYLOAD_RESULT_IGNORED:
      FUZZ_CHECK (before != TS_PAYLOAD_OK && message == NULL);
      break;
    default:
      FUZZ_CHECK (!"unexpected decoder result");
    }
  if (before != TS_PAYLOAD_OK)
    FUZZ_CHECK (ts_payload_budget_get_status (budget) == before);
  check_budget (budget, s->max_retained);
}

/* A control echo is itself a control frame with the same meaning. */
static void
check_echo (const TsMultiplexFrame *frame)
{
  g_autoptr(GBytes) echo = ts_multiplex_encode_echo (frame);
  g_autoptr(TsPayloadBudget) budget = ts_payload_budget_new (0, 0);
  TsMultiplexFrame again;
  TsPayloadStatus status = TS_PAYLOAD_OK;
  gsize len;
  const char *text = g_bytes_get_data (echo, &len);

  FUZZ_CHECK (ts_multiplex_decode (budget, text, len, &again, &status) == TS_PAYLOAD_RESULT_CONTROL);
  FUZZ_CHECK (again.control == frame->control);
  FUZZ_CHECK ((again.request_id == NULL) == (frame->request_id == NULL));
  FUZZ_CHECK (again.request_id_len == frame->request_id_len);
  FUZZ_CHECK (frame->request_id == NULL ||
              memcmp (again.request_id, frame->request_id, frame->request_id_len) == 0);
  FUZZ_CHECK ((again.channel_id == NULL) == (frame->channel_id == NULL));
  FUZZ_CHECK (again.channel_id_len == frame->channel_id_len);
  FUZZ_CHECK (frame->channel_id == NULL ||
              memcmp (again.channel_id, frame->channel_id, frame->channel_id_len) == 0);
  FUZZ_CHECK (again.channel_id_too_long == frame->channel_id_too_long);
  ts_multiplex_frame_clear (&again);
}

static void
handle_control (Sockets                *s,
                const TsMultiplexFrame *frame)
{
  g_autofree char *channel_id = NULL;
  gboolean subscribed = FALSE;
  guint n_channels = g_hash_table_size (s->channels);

  check_echo (frame);
  (void) ts_multiplex_echo_matches (frame, "r1", 2, frame->control,
                                    frame->channel_id, frame->channel_id_len);

  if (frame->channel_id != NULL && memchr (frame->channel_id, '\0', frame->channel_id_len) == NULL)
    {
      channel_id = g_strndup (frame->channel_id, frame->channel_id_len);
      subscribed = g_hash_table_contains (s->channels, channel_id);
    }

  switch (ts_multiplex_server_action (frame, s->negotiated, subscribed, n_channels, n_channels))
    {
    case TS_MULTIPLEX_ACTION_HELLO:
      s->negotiated = TRUE;
      break;
    case TS_MULTIPLEX_ACTION_SUBSCRIBE:
      FUZZ_CHECK (!subscribed);
      if (channel_id == NULL)
        {
          ts_payload_budget_fail (s->mux_budget, TS_PAYLOAD_INVALID);
          break;
        }
      FUZZ_CHECK (n_channels < TS_PAYLOAD_MAX_CHANNELS);
      FUZZ_CHECK (ts_channel_id_check (channel_id, frame->channel_id_len) == TS_CHANNEL_ID_VALID);
      g_hash_table_insert (s->channels, g_steal_pointer (&channel_id),
                           ts_payload_decoder_new (s->mux_budget, LIFETIME_SECONDS));
      break;
    case TS_MULTIPLEX_ACTION_ECHO:
      FUZZ_CHECK (subscribed);
      break;
    case TS_MULTIPLEX_ACTION_UNSUBSCRIBE:
      if (channel_id != NULL)
        g_hash_table_remove (s->channels, channel_id);
      break;
    case TS_MULTIPLEX_ACTION_OVERFLOW:
      ts_payload_budget_fail (s->mux_budget, TS_PAYLOAD_OVERFLOW_CHANNELS);
      break;
    case TS_MULTIPLEX_ACTION_IGNORE:
      FUZZ_CHECK (!s->negotiated);
      break;
    default:
      FUZZ_CHECK (!"unexpected server action");
    }
}

static void
handle_multiplexed (Sockets    *s,
                    const char *text,
                    gsize       len)
{
  TsPayloadStatus before = ts_payload_budget_get_status (s->mux_budget);
  TsPayloadStatus status = TS_PAYLOAD_OK;
  TsMultiplexFrame frame;
  TsPayloadResult result;

  result = ts_multiplex_decode (s->mux_budget, text, len, &frame, &status);
  switch (result)
    {
    case TS_PAYLOAD_RESULT_CONTROL:
      FUZZ_CHECK (before == TS_PAYLOAD_OK);
      handle_control (s, &frame);
      break;
    case TS_PAYLOAD_RESULT_CHANNEL:
      {
        g_autofree char *channel_id = NULL;
        TsPayloadDecoder *decoder = NULL;

        FUZZ_CHECK (before == TS_PAYLOAD_OK);
        FUZZ_CHECK (frame.channel_id_len <= TS_PAYLOAD_MAX_CHANNEL_ID_SIZE);
        FUZZ_CHECK (frame.inner >= text && frame.inner + frame.inner_len <= text + len);
        if (memchr (frame.channel_id, '\0', frame.channel_id_len) == NULL)
          {
            channel_id = g_strndup (frame.channel_id, frame.channel_id_len);
            decoder = g_hash_table_lookup (s->channels, channel_id);
          }
        if (decoder == NULL)
          ts_payload_budget_fail (s->mux_budget, TS_PAYLOAD_INVALID);
        else
          decode_one (s, decoder, frame.inner, frame.inner_len);
      }
      break;
    case TS_PAYLOAD_RESULT_ERROR:
      FUZZ_CHECK (before == TS_PAYLOAD_OK);
      FUZZ_CHECK (status != TS_PAYLOAD_OK && ts_payload_budget_get_status (s->mux_budget) == status);
      break;
    case TS_PAYLOAD_RESULT_IGNORED:
      FUZZ_CHECK (before != TS_PAYLOAD_OK);
      break;
    default:
      FUZZ_CHECK (!"unexpected multiplex result");
    }
  ts_multiplex_frame_clear (&frame);
  if (before != TS_PAYLOAD_OK)
    FUZZ_CHECK (ts_payload_budget_get_status (s->mux_budget) == before);
  check_budget (s->mux_budget, s->max_retained);
}

static void
handle_frame (Sockets    *s,
              const char *data,
              gsize       len)
{
  g_autofree char *converted = NULL;
  const char *text = data;
  g_autofree char *path_id = NULL;
  gsize path_id_len = 0;

  if (!g_utf8_validate_len (data, len, NULL) || memchr (data, '\0', len) != NULL)
    {
      /* As a binary frame (NUL bytes are fine in text frames too, but
       * g_utf8_validate_len() refuses them; converting is harmless). */
      converted = ts_payload_text_from_binary (data, len, &len);
      FUZZ_CHECK (converted != NULL && converted[len] == '\0');
      FUZZ_CHECK (utf8_valid_with_nuls (converted, len));
      text = converted;
    }

  (void) ts_payload_looks_like_fragment (text, len);
  (void) ts_channel_id_check (text, len);
  if (ts_path_id_from_request_target (text, len, &path_id, &path_id_len))
    FUZZ_CHECK (path_id != NULL && path_id_len < len);

  decode_one (s, s->legacy, text, len);
  handle_multiplexed (s, text, len);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  Sockets s = { 0 };
  gsize max_payload;
  gint64 step;
  const uint8_t *p, *end = data + size;

  if (size < 2)
    return 0;

  max_payload = (gsize) 64 << (data[0] & 7);
  s.max_retained = (gsize) 64 << ((data[0] >> 3) & 7);
  s.fragment_size = 1 + (data[0] >> 6) * 7;
  step = (gint64) data[1] * 50000;
  s.now = 1000000;

  s.budget = ts_payload_budget_new (max_payload, s.max_retained);
  FUZZ_CHECK (ts_payload_budget_get_max_payload_size (s.budget) == max_payload);
  FUZZ_CHECK (ts_payload_budget_get_max_retained_size (s.budget) == s.max_retained);
  s.legacy = ts_payload_decoder_new (s.budget, LIFETIME_SECONDS);
  s.mux_budget = ts_payload_budget_new (max_payload, s.max_retained);
  s.channels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) ts_payload_decoder_free);

  for (p = data + 2; p <= end;)
    {
      const uint8_t *sep = memchr (p, SEPARATOR, (gsize) (end - p));
      const uint8_t *frame_end = sep != NULL ? sep : end;

      s.now += step;
      handle_frame (&s, (const char *) p, (gsize) (frame_end - p));
      if (sep == NULL)
        break;
      p = sep + 1;
    }

  /* Expiry releases everything once every lifetime has passed. */
  s.now += (gint64) (LIFETIME_SECONDS * G_USEC_PER_SEC) + 1;
  ts_payload_decoder_expire (s.legacy, s.now);
  FUZZ_CHECK (ts_payload_decoder_get_n_buffers (s.legacy) == 0);
  FUZZ_CHECK (ts_payload_decoder_get_next_expiry (s.legacy) == -1);
  FUZZ_CHECK (ts_payload_budget_get_retained (s.budget) == 0);

  /* Freeing the decoders returns their buffers to the budgets. */
  ts_payload_decoder_free (s.legacy);
  g_hash_table_unref (s.channels);
  FUZZ_CHECK (ts_payload_budget_get_n_buffers (s.budget) == 0);
  FUZZ_CHECK (ts_payload_budget_get_retained (s.budget) == 0);
  FUZZ_CHECK (ts_payload_budget_get_n_buffers (s.mux_budget) == 0);
  FUZZ_CHECK (ts_payload_budget_get_retained (s.mux_budget) == 0);
  ts_payload_budget_unref (s.budget);
  ts_payload_budget_unref (s.mux_budget);

  return 0;
}
