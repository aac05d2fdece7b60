/* ts-payload.c: the WebSocket payload codec (PROTOCOL.md 11.3, 12, 13, 14.1)
 *
 * SPDX-License-Identifier: MIT
 *
 * See ts-payload-private.h for the design. Everything here follows the
 * order of checks of TinyBase 10.0.1, because the order decides which
 * close code a peer sees when a frame breaks several rules at once.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "ts-hlc-private.h"
#include "ts-payload-private.h"

/* ======================================================================= */
/* Message validation (11.3)                                                */
/* ======================================================================= */

static gboolean
is_string (const TsJsonNode *node)
{
  return node->type == TS_JSON_STRING && !ts_wire_is_undefined (node);
}

gboolean
ts_protocol_is_hash (const TsJsonNode *node)
{
  double h;

  g_return_val_if_fail (node != NULL, FALSE);

  if (node->type != TS_JSON_NUMBER)
    return FALSE;
  h = node->u.num;
  return isfinite (h) && h == floor (h) && h >= 0 && h <= 4294967295.0;
}

gboolean
ts_protocol_is_content_hashes (const TsJsonNode *node)
{
  g_return_val_if_fail (node != NULL, FALSE);

  return node->type == TS_JSON_ARRAY && node->len == 2 &&
         ts_protocol_is_hash (&node->u.items[0]) &&
         ts_protocol_is_hash (&node->u.items[1]);
}

gboolean
ts_protocol_is_hash_tree (const TsJsonNode *node,
                          guint             depth)
{
  g_return_val_if_fail (node != NULL, FALSE);

  if (node->type != TS_JSON_OBJECT)
    return FALSE;
  for (guint32 i = 0; i < node->len; i++)
    {
      const TsJsonNode *child = &node->u.members[i].value;

      if (depth > 0 ? !ts_protocol_is_hash_tree (child, depth - 1)
                    : !ts_protocol_is_hash (child))
        return FALSE;
    }
  return TRUE;
}

/* isCellOrValueOrUndefined: only the top-level type matters. */
static gboolean
is_cell_or_value_or_undefined (const TsJsonNode *thing)
{
  if (thing->type == TS_JSON_NUMBER)
    return isfinite (thing->u.num);
  return TRUE;
}

gboolean
ts_protocol_is_stamp (const TsJsonNode *node,
                      guint             depth)
{
  const TsJsonNode *thing;

  g_return_val_if_fail (node != NULL, FALSE);

  if (node->type != TS_JSON_ARRAY)
    return FALSE;
  if (node->len == 2)
    {
      const TsJsonNode *hlc = &node->u.items[1];

      if (!is_string (hlc) || !ts_hlc_parse (hlc->u.str, hlc->len, G_MAXINT64, NULL))
        return FALSE;
    }
  else if (node->len != 1)
    return FALSE;

  thing = &node->u.items[0];
  if (depth == 0)
    return is_cell_or_value_or_undefined (thing);

  if (thing->type != TS_JSON_OBJECT)
    return FALSE;
  for (guint32 i = 0; i < thing->len; i++)
    if (!ts_protocol_is_stamp (&thing->u.members[i].value, depth - 1))
      return FALSE;
  return TRUE;
}

static gboolean
is_response (const TsJsonNode *body)
{
  if (ts_protocol_is_content_hashes (body) ||
      ts_protocol_is_stamp (body, 3) ||
      ts_protocol_is_stamp (body, 1))
    return TRUE;
  return body->type == TS_JSON_ARRAY && body->len == 2 &&
         ts_protocol_is_stamp (&body->u.items[0], 3) &&
         (ts_protocol_is_hash_tree (&body->u.items[1], 0) ||
          ts_protocol_is_hash_tree (&body->u.items[1], 1));
}

static gboolean
is_mergeable_changes (const TsJsonNode *body)
{
  if (body->type != TS_JSON_ARRAY)
    return FALSE;
  if (body->len == 3)
    {
      const TsJsonNode *one = &body->u.items[2];

      /* body[2] === 1 */
      if (one->type != TS_JSON_NUMBER || one->u.num != 1)
        return FALSE;
    }
  else if (body->len != 2)
    return FALSE;
  return ts_protocol_is_stamp (&body->u.items[0], 3) &&
         ts_protocol_is_stamp (&body->u.items[1], 1);
}

gboolean
ts_protocol_body_valid (int               type,
                        const TsJsonNode *body)
{
  g_return_val_if_fail (body != NULL, FALSE);

  switch (type)
    {
    case TS_MESSAGE_RESPONSE:
      return is_response (body);
    case TS_MESSAGE_GET_CONTENT_HASHES:
      /* body === "" */
      return body->type == TS_JSON_STRING && body->len == 0;
    case TS_MESSAGE_CONTENT_HASHES:
      return ts_protocol_is_content_hashes (body);
    case TS_MESSAGE_CONTENT_DIFF:
      return is_mergeable_changes (body);
    case TS_MESSAGE_GET_TABLE_DIFF:
    case TS_MESSAGE_GET_VALUE_DIFF:
      return ts_protocol_is_hash_tree (body, 0);
    case TS_MESSAGE_GET_ROW_DIFF:
      return ts_protocol_is_hash_tree (body, 1);
    case TS_MESSAGE_GET_CELL_DIFF:
      return ts_protocol_is_hash_tree (body, 2);
    default:
      return FALSE;
    }
}

gboolean
ts_protocol_message_valid (const TsJsonNode  *message,
                           const char       **request_id,
                           gsize             *request_id_len,
                           int               *type,
                           const TsJsonNode **body)
{
  const TsJsonNode *rid, *num;
  double m;

  g_return_val_if_fail (message != NULL, FALSE);

  if (message->type != TS_JSON_ARRAY || message->len != 3)
    return FALSE;
  rid = &message->u.items[0];
  num = &message->u.items[1];
  if (rid->type != TS_JSON_NULL && !is_string (rid))
    return FALSE;
  if (num->type != TS_JSON_NUMBER)
    return FALSE;
  m = num->u.num;
  /* finite and integral; only 0..7 have a valid body (-0 is 0) */
  if (!isfinite (m) || m != floor (m) || m < 0 || m > 7)
    return FALSE;
  if (!ts_protocol_body_valid ((int) m, &message->u.items[2]))
    return FALSE;

  if (request_id != NULL)
    *request_id = rid->type == TS_JSON_NULL ? NULL : rid->u.str;
  if (request_id_len != NULL)
    *request_id_len = rid->type == TS_JSON_NULL ? 0 : rid->len;
  if (type != NULL)
    *type = (int) m;
  if (body != NULL)
    *body = &message->u.items[2];
  return TRUE;
}

/* ======================================================================= */
/* Outcomes                                                                 */
/* ======================================================================= */

guint16
ts_payload_status_close_code (TsPayloadStatus status)
{
  switch (status)
    {
    case TS_PAYLOAD_OK:
      return 0;
    case TS_PAYLOAD_INVALID:
      return 1007;
    case TS_PAYLOAD_OVERFLOW_SOCKET:
    case TS_PAYLOAD_OVERFLOW_FRAGMENTS:
    case TS_PAYLOAD_OVERFLOW_CHANNELS:
    case TS_PAYLOAD_OVERFLOW_SERVER:
    case TS_PAYLOAD_OVERFLOW_CLIENT:
    case TS_PAYLOAD_OVERFLOW_CONTROLS:
      return 1013;
    default:
      g_return_val_if_reached (0);
    }
}

const char *
ts_payload_status_reason (TsPayloadStatus status)
{
  switch (status)
    {
    case TS_PAYLOAD_OK:
      return NULL;
    case TS_PAYLOAD_INVALID:
      return "tinybase:14";
    case TS_PAYLOAD_OVERFLOW_SOCKET:
      return "tinybase:15:socket";
    case TS_PAYLOAD_OVERFLOW_FRAGMENTS:
      return "tinybase:15:fragments";
    case TS_PAYLOAD_OVERFLOW_CHANNELS:
      return "tinybase:15:channels";
    case TS_PAYLOAD_OVERFLOW_SERVER:
      return "tinybase:15:server";
    case TS_PAYLOAD_OVERFLOW_CLIENT:
      return "tinybase:15:client";
    case TS_PAYLOAD_OVERFLOW_CONTROLS:
      return "tinybase:15:controls";
    default:
      g_return_val_if_reached (NULL);
    }
}

gboolean
ts_payload_status_is_overflow (TsPayloadStatus status)
{
  return ts_payload_status_close_code (status) == 1013;
}

/* ======================================================================= */
/* Small helpers                                                            */
/* ======================================================================= */

static gsize
len_or_strlen (const char *s,
               gssize      len)
{
  if (s == NULL)
    return 0;
  return len < 0 ? strlen (s) : (gsize) len;
}

/* A GBytes over a fresh copy of the concatenation of up to four parts,
 * NUL-terminated beyond its size. */
static GBytes *
bytes_concat (const char *a, gsize a_len,
              const char *b, gsize b_len,
              const char *c, gsize c_len,
              const char *d, gsize d_len)
{
  gsize total = a_len + b_len + c_len + d_len;
  char *data = g_malloc (total + 1);
  char *p = data;

  if (a_len)
    p = (char *) memcpy (p, a, a_len) + a_len;
  if (b_len)
    p = (char *) memcpy (p, b, b_len) + b_len;
  if (c_len)
    p = (char *) memcpy (p, c, c_len) + c_len;
  if (d_len)
    p = (char *) memcpy (p, d, d_len) + d_len;
  *p = '\0';
  return g_bytes_new_take (data, total);
}

/* Like g_strndup, but keeps NUL bytes inside. */
static char *
memdup_nul (const char *s,
            gsize       len)
{
  char *copy = g_malloc (len + 1);

  if (len)
    memcpy (copy, s, len);
  copy[len] = '\0';
  return copy;
}

static GBytes *
gstring_free_to_bytes (GString *s)
{
  gsize len = s->len;

  return g_bytes_new_take (g_string_free (s, FALSE), len);
}

static inline gboolean
is_id_char (char c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '_';
}

static gboolean
parse_decimal_line (const char *s,
                    gsize       len,
                    gsize      *pos,
                    guint64    *value)
{
  gsize i = *pos;
  guint64 v = 0;

  while (i < len && g_ascii_isdigit (s[i]))
    {
      /* parseInt: only "> 1000" and ">= total" matter; saturate. */
      if (v < G_GUINT64_CONSTANT (1000000000000))
        v = v * 10 + (guint64) (s[i] - '0');
      i++;
    }
  if (i == *pos || i >= len || s[i] != '\n')
    return FALSE;
  *pos = i + 1;
  *value = v;
  return TRUE;
}

/* ^([-0-9A-Z_a-z]{16})\n(\d+)\n(\d+)\n — the piece starts at *header_len. */
static gboolean
parse_fragment_header (const char *r,
                       gsize       len,
                       guint64    *index,
                       guint64    *total,
                       gsize      *header_len)
{
  gsize i;

  if (len < TS_PAYLOAD_MESSAGE_ID_LEN + 1)
    return FALSE;
  for (i = 0; i < TS_PAYLOAD_MESSAGE_ID_LEN; i++)
    if (!is_id_char (r[i]))
      return FALSE;
  if (r[i] != '\n')
    return FALSE;
  i++;
  if (!parse_decimal_line (r, len, &i, index) ||
      !parse_decimal_line (r, len, &i, total))
    return FALSE;
  *header_len = i;
  return TRUE;
}

gboolean
ts_payload_looks_like_fragment (const char *text,
                                gsize       len)
{
  const char *nl;
  guint64 index, total;
  gsize header_len;

  g_return_val_if_fail (text != NULL || len == 0, FALSE);

  nl = len ? memchr (text, '\n', len) : NULL;
  if (nl == NULL)
    return FALSE;
  return parse_fragment_header (nl + 1, len - (gsize) (nl + 1 - text),
                                &index, &total, &header_len);
}

/* ======================================================================= */
/* Budget                                                                   */
/* ======================================================================= */

struct _TsPayloadBudget {
  grefcount        ref_count;
  gsize            max_payload_size;
  gsize            max_retained_size;
  guint            n_buffers;
  gsize            retained;
  TsPayloadStatus  status;
  GPtrArray       *decoders;   /* unowned TsPayloadDecoder */
};

TsPayloadBudget *
ts_payload_budget_new (gsize max_payload_size,
                       gsize max_retained_size)
{
  TsPayloadBudget *budget = g_new0 (TsPayloadBudget, 1);

  g_ref_count_init (&budget->ref_count);
  budget->max_payload_size = max_payload_size ? max_payload_size : TS_PAYLOAD_DEFAULT_MAX_SIZE;
  budget->max_retained_size = max_retained_size ? max_retained_size : TS_PAYLOAD_DEFAULT_MAX_SIZE;
  budget->status = TS_PAYLOAD_OK;
  budget->decoders = g_ptr_array_new ();
  return budget;
}

TsPayloadBudget *
ts_payload_budget_ref (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, NULL);

  g_ref_count_inc (&budget->ref_count);
  return budget;
}

void
ts_payload_budget_unref (TsPayloadBudget *budget)
{
  g_return_if_fail (budget != NULL);

  if (g_ref_count_dec (&budget->ref_count))
    {
      /* Every decoder holds a reference, so none is left. */
      g_assert (budget->decoders->len == 0);
      g_ptr_array_unref (budget->decoders);
      g_free (budget);
    }
}

gsize
ts_payload_budget_get_max_payload_size (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, 0);
  return budget->max_payload_size;
}

gsize
ts_payload_budget_get_max_retained_size (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, 0);
  return budget->max_retained_size;
}

guint
ts_payload_budget_get_n_buffers (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, 0);
  return budget->n_buffers;
}

gsize
ts_payload_budget_get_retained (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, 0);
  return budget->retained;
}

TsPayloadStatus
ts_payload_budget_get_status (TsPayloadBudget *budget)
{
  g_return_val_if_fail (budget != NULL, TS_PAYLOAD_INVALID);
  return budget->status;
}

gboolean
ts_payload_budget_fail (TsPayloadBudget *budget,
                        TsPayloadStatus  status)
{
  g_return_val_if_fail (budget != NULL, FALSE);
  g_return_val_if_fail (status != TS_PAYLOAD_OK, FALSE);

  if (budget->status != TS_PAYLOAD_OK)
    return FALSE;
  budget->status = status;
  /* Drop every buffer of the socket (TinyBase's clearDecoders). */
  for (guint i = 0; i < budget->decoders->len; i++)
    ts_payload_decoder_clear (g_ptr_array_index (budget->decoders, i));
  return TRUE;
}

/* ======================================================================= */
/* Decoder                                                                  */
/* ======================================================================= */

typedef struct {
  GBytes  *key;          /* clientId "\n" messageId */
  guint    total;
  guint    remaining;
  GBytes **remainders;   /* total slots; NULL until received */
  gsize   *piece_offsets;
  gsize    retained;
  gint64   expires_at;
  GList    link;         /* in TsPayloadDecoder.order, data = self */
} FragmentBuffer;

struct _TsPayloadDecoder {
  TsPayloadBudget *budget;
  gint64           lifetime;   /* microseconds */
  GHashTable      *buffers;    /* GBytes key -> FragmentBuffer (owned) */
  GQueue           order;      /* oldest first: same lifetime for all */
};

static void
fragment_buffer_free (FragmentBuffer *buffer)
{
  for (guint i = 0; i < buffer->total; i++)
    g_clear_pointer (&buffer->remainders[i], g_bytes_unref);
  g_free (buffer->remainders);
  g_free (buffer->piece_offsets);
  g_bytes_unref (buffer->key);
  g_free (buffer);
}

/* Unlinks the buffer and returns its accounting to the budget; the caller
 * owns it afterwards. */
static FragmentBuffer *
decoder_steal_buffer (TsPayloadDecoder *self,
                      FragmentBuffer   *buffer)
{
  g_queue_unlink (&self->order, &buffer->link);
  g_hash_table_steal (self->buffers, buffer->key);
  g_assert (self->budget->n_buffers > 0);
  g_assert (self->budget->retained >= buffer->retained);
  self->budget->n_buffers--;
  self->budget->retained -= buffer->retained;
  return buffer;
}

TsPayloadDecoder *
ts_payload_decoder_new (TsPayloadBudget *budget,
                        double           lifetime_seconds)
{
  TsPayloadDecoder *self = g_new0 (TsPayloadDecoder, 1);
  double ms = lifetime_seconds * 1000;

  /* Node's setTimeout: a delay outside [1, 2^31 - 1] ms is 1 ms. */
  if (!(ms >= 1 && ms <= 2147483647.0))
    ms = 1;
  self->lifetime = (gint64) (ms * 1000);
  self->budget = budget ? ts_payload_budget_ref (budget) : ts_payload_budget_new (0, 0);
  self->buffers = g_hash_table_new (g_bytes_hash, g_bytes_equal);
  g_queue_init (&self->order);
  g_ptr_array_add (self->budget->decoders, self);
  return self;
}

void
ts_payload_decoder_clear (TsPayloadDecoder *self)
{
  g_return_if_fail (self != NULL);

  while (self->order.head != NULL)
    fragment_buffer_free (decoder_steal_buffer (self, self->order.head->data));
}

void
ts_payload_decoder_free (TsPayloadDecoder *self)
{
  if (self == NULL)
    return;
  ts_payload_decoder_clear (self);
  g_ptr_array_remove_fast (self->budget->decoders, self);
  g_hash_table_unref (self->buffers);
  ts_payload_budget_unref (self->budget);
  g_free (self);
}

TsPayloadBudget *
ts_payload_decoder_get_budget (TsPayloadDecoder *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->budget;
}

guint
ts_payload_decoder_get_n_buffers (TsPayloadDecoder *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->order.length;
}

static void
decoder_expire_own (TsPayloadDecoder *self,
                    gint64            now)
{
  while (self->order.head != NULL)
    {
      FragmentBuffer *oldest = self->order.head->data;

      if (now < oldest->expires_at)
        break;
      fragment_buffer_free (decoder_steal_buffer (self, oldest));
    }
}

void
ts_payload_decoder_expire (TsPayloadDecoder *self,
                           gint64            now)
{
  g_return_if_fail (self != NULL);

  /* Timers of every decoder of the socket would have fired in TinyBase:
   * the shared limits must not count expired buffers of other channels. */
  for (guint i = 0; i < self->budget->decoders->len; i++)
    decoder_expire_own (g_ptr_array_index (self->budget->decoders, i), now);
}

gint64
ts_payload_decoder_get_next_expiry (TsPayloadDecoder *self)
{
  g_return_val_if_fail (self != NULL, -1);

  if (self->order.head == NULL)
    return -1;
  return ((FragmentBuffer *) self->order.head->data)->expires_at;
}

void
ts_payload_message_free (TsPayloadMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->client_id);
  g_clear_pointer (&message->remainders, g_ptr_array_unref);
  g_clear_pointer (&message->doc, ts_json_doc_free);
  g_free (message);
}

/* Parses and validates a remainder; NULL if it is not a valid message. */
static TsPayloadMessage *
message_parse (const char *remainder,
               gsize       len)
{
  TsJsonDoc *doc;
  TsPayloadMessage *message;
  const char *request_id;
  gsize request_id_len;
  int type;
  const TsJsonNode *body;

  if (len > G_MAXSSIZE)
    return NULL;
  doc = ts_json_parse (remainder, (gssize) len, NULL);
  if (doc == NULL)
    return NULL;
  if (!ts_protocol_message_valid (ts_json_doc_get_root (doc),
                                  &request_id, &request_id_len, &type, &body))
    {
      ts_json_doc_free (doc);
      return NULL;
    }
  message = g_new0 (TsPayloadMessage, 1);
  message->doc = doc;
  message->request_id = request_id;
  message->request_id_len = request_id_len;
  message->type = type;
  message->body = body;
  message->remainders = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  return message;
}

static TsPayloadResult
decoder_fail (TsPayloadDecoder *self,
              TsPayloadStatus   status,
              TsPayloadStatus  *out_status)
{
  /* The budget fails once; that also clears this decoder. */
  ts_payload_budget_fail (self->budget, status);
  ts_payload_decoder_clear (self);
  if (out_status != NULL)
    *out_status = status;
  return TS_PAYLOAD_RESULT_ERROR;
}

static TsPayloadResult
decoder_fragment (TsPayloadDecoder  *self,
                  const char        *client_id,
                  gsize              client_id_len,
                  const char        *remainder,
                  gsize              remainder_len,
                  guint64            index,
                  guint64            total,
                  gsize              header_len,
                  gint64             now,
                  TsPayloadMessage **out_message,
                  TsPayloadStatus   *out_status)
{
  TsPayloadBudget *budget = self->budget;
  g_autoptr(GBytes) key = NULL;
  FragmentBuffer *buffer;
  gsize add;
  g_autoptr(GString) joined = NULL;
  TsPayloadMessage *message;

  /* The order of these checks is TinyBase's (12.3). */
  if (total > TS_PAYLOAD_MAX_FRAGMENTS)
    return decoder_fail (self, TS_PAYLOAD_OVERFLOW_FRAGMENTS, out_status);
  if (total == 0 || index >= total)
    return decoder_fail (self, TS_PAYLOAD_INVALID, out_status);

  key = bytes_concat (client_id, client_id_len, "\n", 1,
                      remainder, TS_PAYLOAD_MESSAGE_ID_LEN, NULL, 0);
  buffer = g_hash_table_lookup (self->buffers, key);
  if (buffer == NULL && budget->n_buffers >= TS_PAYLOAD_MAX_BUFFERS)
    return decoder_fail (self, TS_PAYLOAD_OVERFLOW_FRAGMENTS, out_status);
  if (buffer != NULL && (buffer->total != total || buffer->remainders[index] != NULL))
    return decoder_fail (self, TS_PAYLOAD_INVALID, out_status);

  add = remainder_len + (buffer == NULL ? g_bytes_get_size (key) : 0);
  g_assert (budget->retained <= budget->max_retained_size);
  if (add > budget->max_retained_size - budget->retained)
    return decoder_fail (self, TS_PAYLOAD_OVERFLOW_FRAGMENTS, out_status);

  if (buffer == NULL)
    {
      buffer = g_new0 (FragmentBuffer, 1);
      buffer->key = g_bytes_ref (key);
      buffer->total = buffer->remaining = (guint) total;
      buffer->remainders = g_new0 (GBytes *, total);
      buffer->piece_offsets = g_new0 (gsize, total);
      buffer->expires_at = now + self->lifetime;
      buffer->link.data = buffer;
      g_hash_table_insert (self->buffers, buffer->key, buffer);
      g_queue_push_tail_link (&self->order, &buffer->link);
      budget->n_buffers++;
    }
  buffer->remainders[index] = bytes_concat (remainder, remainder_len,
                                            NULL, 0, NULL, 0, NULL, 0);
  buffer->piece_offsets[index] = header_len;
  buffer->remaining--;
  buffer->retained += add;
  budget->retained += add;

  if (buffer->remaining > 0)
    return TS_PAYLOAD_RESULT_BUFFERED;

  /* Complete: take it out first, then decode the reassembled text. */
  decoder_steal_buffer (self, buffer);
  joined = g_string_sized_new (buffer->retained);
  for (guint i = 0; i < buffer->total; i++)
    {
      gsize size;
      const char *data = g_bytes_get_data (buffer->remainders[i], &size);

      g_string_append_len (joined, data + buffer->piece_offsets[i],
                           (gssize) (size - buffer->piece_offsets[i]));
    }
  message = message_parse (joined->str, joined->len);
  if (message == NULL)
    {
      fragment_buffer_free (buffer);
      return decoder_fail (self, TS_PAYLOAD_INVALID, out_status);
    }
  for (guint i = 0; i < buffer->total; i++)
    g_ptr_array_add (message->remainders, g_steal_pointer (&buffer->remainders[i]));
  fragment_buffer_free (buffer);
  message->fragmented = TRUE;
  message->client_id = memdup_nul (client_id, client_id_len);
  message->client_id_len = client_id_len;
  *out_message = message;
  return TS_PAYLOAD_RESULT_MESSAGE;
}

TsPayloadResult
ts_payload_decoder_decode (TsPayloadDecoder  *self,
                           const char        *text,
                           gsize              len,
                           gint64             now,
                           TsPayloadMessage **out_message,
                           TsPayloadStatus   *out_status)
{
  const char *nl, *remainder;
  gsize client_id_len, remainder_len, header_len;
  guint64 index, total;
  TsPayloadMessage *message;

  g_return_val_if_fail (self != NULL, TS_PAYLOAD_RESULT_IGNORED);
  g_return_val_if_fail (text != NULL || len == 0, TS_PAYLOAD_RESULT_IGNORED);
  g_return_val_if_fail (out_message != NULL && *out_message == NULL, TS_PAYLOAD_RESULT_IGNORED);

  /* 1. A failed socket ignores everything. */
  if (self->budget->status != TS_PAYLOAD_OK)
    {
      ts_payload_decoder_clear (self);
      return TS_PAYLOAD_RESULT_IGNORED;
    }
  ts_payload_decoder_expire (self, now);

  /* 2. Size. */
  if (len > self->budget->max_payload_size)
    return decoder_fail (self,
                         ts_payload_looks_like_fragment (text, len)
                           ? TS_PAYLOAD_OVERFLOW_FRAGMENTS
                           : TS_PAYLOAD_OVERFLOW_SOCKET,
                         out_status);

  /* 3., 4. The first line. */
  nl = len ? memchr (text, '\n', len) : NULL;
  if (nl == NULL)
    return decoder_fail (self, TS_PAYLOAD_INVALID, out_status);
  client_id_len = (gsize) (nl - text);
  remainder = nl + 1;
  remainder_len = len - client_id_len - 1;

  /* 5. A whole message. */
  message = message_parse (remainder, remainder_len);
  if (message != NULL)
    {
      message->client_id = memdup_nul (text, client_id_len);
      message->client_id_len = client_id_len;
      g_ptr_array_add (message->remainders,
                       bytes_concat (remainder, remainder_len, NULL, 0, NULL, 0, NULL, 0));
      *out_message = message;
      return TS_PAYLOAD_RESULT_MESSAGE;
    }

  /* 6. A fragment. */
  if (parse_fragment_header (remainder, remainder_len, &index, &total, &header_len))
    return decoder_fragment (self, text, client_id_len, remainder, remainder_len,
                             index, total, header_len, now, out_message, out_status);

  /* 7. Anything else. */
  return decoder_fail (self, TS_PAYLOAD_INVALID, out_status);
}

/* ======================================================================= */
/* Encoding                                                                 */
/* ======================================================================= */

GBytes *
ts_payload_build (const char *client_id,
                  gssize      client_id_len,
                  const char *remainder,
                  gssize      remainder_len)
{
  g_return_val_if_fail (remainder != NULL || remainder_len == 0, NULL);

  return bytes_concat (client_id, len_or_strlen (client_id, client_id_len), "\n", 1,
                       remainder, len_or_strlen (remainder, remainder_len), NULL, 0);
}

char *
ts_payload_encode_remainder (const char *request_id,
                             gssize      request_id_len,
                             int         type,
                             const char *body_json,
                             gssize      body_json_len,
                             gsize      *out_len)
{
  GString *out;
  gsize body_len = len_or_strlen (body_json, body_json_len);

  g_return_val_if_fail (body_json != NULL, NULL);

  out = g_string_sized_new (body_len + 32);
  g_string_append_c (out, '[');
  if (request_id == NULL)
    g_string_append (out, "null");
  else
    ts_json_write_string (out, request_id, len_or_strlen (request_id, request_id_len));
  g_string_append_printf (out, ",%d,", type);
  g_string_append_len (out, body_json, (gssize) body_len);
  g_string_append_c (out, ']');
  if (out_len != NULL)
    *out_len = out->len;
  return g_string_free (out, FALSE);
}

gsize
ts_payload_fragment_target (gsize remainder_size,
                            gsize fragment_size)
{
  gsize minimum = (remainder_size + TS_PAYLOAD_MAX_FRAGMENTS - 1) / TS_PAYLOAD_MAX_FRAGMENTS + 3;

  return MAX (fragment_size, minimum);
}

/* Bytes of the code point starting with lead byte c (WTF-8: a lone
 * surrogate is 3 bytes, a pair is one 4-byte code point). Stray bytes
 * count alone. */
static gsize
code_point_size (const char *s,
                 gsize       i,
                 gsize       len)
{
  guchar c = (guchar) s[i];
  gsize n = c < 0x80 ? 1 : c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;

  return MIN (n, len - i);
}

guint
ts_payload_split (const char  *text,
                  gsize        len,
                  gsize        target,
                  gsize      **ends)
{
  GArray *array = g_array_new (FALSE, FALSE, sizeof (gsize));
  gsize piece = 0;
  gsize i = 0;
  guint n;

  g_return_val_if_fail (text != NULL || len == 0, 0);

  while (i < len)
    {
      gsize cp = code_point_size (text, i, len);

      if (piece > 0 && piece + cp > target)
        {
          g_array_append_val (array, i);
          piece = 0;
        }
      piece += cp;
      i += cp;
    }
  g_array_append_val (array, len);
  n = array->len;
  if (ends != NULL)
    *ends = (gsize *) (void *) g_array_free (array, FALSE);
  else
    g_array_free (array, TRUE);
  return n;
}

GPtrArray *
ts_payload_fragment (const char *client_id,
                     gssize      client_id_len,
                     const char *remainder,
                     gsize       remainder_len,
                     gsize       fragment_size,
                     const char *message_id)
{
  GPtrArray *payloads = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gsize cid_len = len_or_strlen (client_id, client_id_len);
  g_autofree gsize *ends = NULL;
  char random_id[TS_PAYLOAD_MESSAGE_ID_LEN + 1];
  guint n;
  gsize start = 0;

  g_return_val_if_fail (remainder != NULL || remainder_len == 0, payloads);
  g_return_val_if_fail (message_id == NULL || strlen (message_id) == TS_PAYLOAD_MESSAGE_ID_LEN, payloads);

  n = fragment_size == 0
        ? 1
        : ts_payload_split (remainder, remainder_len,
                            ts_payload_fragment_target (remainder_len, fragment_size),
                            &ends);
  if (n == 1)
    {
      g_ptr_array_add (payloads, bytes_concat (client_id, cid_len, "\n", 1,
                                               remainder, remainder_len, NULL, 0));
      return payloads;
    }

  if (message_id == NULL)
    {
      ts_random_id (random_id, TS_PAYLOAD_MESSAGE_ID_LEN);
      message_id = random_id;
    }
  for (guint i = 0; i < n; i++)
    {
      char header[TS_PAYLOAD_MESSAGE_ID_LEN + 32];
      int header_len = g_snprintf (header, sizeof header, "\n%s\n%u\n%u\n", message_id, i, n);

      g_ptr_array_add (payloads, bytes_concat (client_id, cid_len, header, (gsize) header_len,
                                               remainder + start, ends[i] - start, NULL, 0));
      start = ends[i];
    }
  return payloads;
}

GPtrArray *
ts_payload_encode (const char *client_id,
                   gssize      client_id_len,
                   const char *request_id,
                   gssize      request_id_len,
                   int         type,
                   const char *body_json,
                   gssize      body_json_len,
                   gsize       fragment_size)
{
  g_autofree char *remainder = NULL;
  gsize remainder_len;

  g_return_val_if_fail (body_json != NULL, NULL);

  remainder = ts_payload_encode_remainder (request_id, request_id_len, type,
                                           body_json, body_json_len, &remainder_len);
  return ts_payload_fragment (client_id, client_id_len, remainder, remainder_len,
                              fragment_size, NULL);
}

/* ======================================================================= */
/* JavaScript semantics                                                     */
/* ======================================================================= */

/* Decodes the (WTF-8) code point at *i and advances; stray bytes decode as
 * themselves (never white space). */
static gunichar
wtf8_next (const char *s,
           gsize       len,
           gsize      *i)
{
  gsize n = code_point_size (s, *i, len);
  guchar c = (guchar) s[*i];
  gunichar cp;

  if (n == 1)
    cp = c;
  else
    {
      cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
      for (gsize k = 1; k < n; k++)
        cp = (cp << 6) | ((guchar) s[*i + k] & 0x3F);
    }
  *i += n;
  return cp;
}

static gboolean
js_is_white_space (gunichar c)
{
  switch (c)
    {
    case 0x0009: case 0x000A: case 0x000B: case 0x000C: case 0x000D:
    case 0x0020: case 0x00A0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
      return TRUE;
    default:
      return c >= 0x2000 && c <= 0x200A;
    }
}

static double
parse_radix_integer (const char *s,
                     gsize       len,
                     guint       radix)
{
  double v = 0;

  if (len == 0)
    return NAN;
  for (gsize i = 0; i < len; i++)
    {
      int d = g_ascii_xdigit_value (s[i]);

      if (d < 0 || (guint) d >= radix)
        return NAN;
      v = v * radix + d;
    }
  return v;
}

/* StrDecimalLiteral without the sign: digits [. digits] [exp] | . digits [exp]. */
static gboolean
is_unsigned_decimal (const char *s,
                     gsize       len)
{
  gsize i = 0, int_digits = 0, frac_digits = 0;

  while (i < len && g_ascii_isdigit (s[i]))
    i++, int_digits++;
  if (i < len && s[i] == '.')
    {
      i++;
      while (i < len && g_ascii_isdigit (s[i]))
        i++, frac_digits++;
    }
  if (int_digits + frac_digits == 0)
    return FALSE;
  if (i < len && (s[i] == 'e' || s[i] == 'E'))
    {
      gsize exp_digits = 0;

      i++;
      if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
      while (i < len && g_ascii_isdigit (s[i]))
        i++, exp_digits++;
      if (exp_digits == 0)
        return FALSE;
    }
  return i == len;
}

double
ts_js_string_to_number (const char *s,
                        gsize       len)
{
  gsize start = 0, end = len;
  const char *t;
  gsize n;
  gboolean negative = FALSE;

  g_return_val_if_fail (s != NULL || len == 0, NAN);

  /* Trim leading white space. */
  while (start < end)
    {
      gsize next = start;

      if (!js_is_white_space (wtf8_next (s, end, &next)))
        break;
      start = next;
    }
  /* Trim trailing white space: step back to the last lead byte. */
  while (end > start)
    {
      gsize lead = end - 1, next;

      while (lead > start && ((guchar) s[lead] & 0xC0) == 0x80 && end - lead < 4)
        lead--;
      next = lead;
      if (!js_is_white_space (wtf8_next (s, end, &next)) || next != end)
        break;
      end = lead;
    }

  t = s + start;
  n = end - start;
  if (n == 0)
    return 0;

  if (n > 2 && t[0] == '0')
    {
      switch (t[1])
        {
        case 'x': case 'X':
          return parse_radix_integer (t + 2, n - 2, 16);
        case 'o': case 'O':
          return parse_radix_integer (t + 2, n - 2, 8);
        case 'b': case 'B':
          return parse_radix_integer (t + 2, n - 2, 2);
        default:
          break;
        }
    }

  if (t[0] == '+' || t[0] == '-')
    {
      negative = t[0] == '-';
      t++;
      n--;
    }
  if (n == 8 && memcmp (t, "Infinity", 8) == 0)
    return negative ? -INFINITY : INFINITY;
  if (!is_unsigned_decimal (t, n))
    return NAN;
  {
    g_autofree char *copy = g_strndup (t, n);
    double v = g_ascii_strtod (copy, NULL);

    return negative ? -v : v;
  }
}

/* Array.prototype.join (",") of a wire array as JS ToString would; FALSE
 * where JavaScript throws (an object element: no toString on TinyBase's
 * prototype-less objects). */
static gboolean
js_array_join (const TsJsonNode *array,
               GString          *out)
{
  for (guint32 i = 0; i < array->len; i++)
    {
      const TsJsonNode *item = &array->u.items[i];

      if (i > 0)
        g_string_append_c (out, ',');
      switch (item->type)
        {
        case TS_JSON_NULL:
          break;
        case TS_JSON_TRUE:
          g_string_append (out, "true");
          break;
        case TS_JSON_FALSE:
          g_string_append (out, "false");
          break;
        case TS_JSON_NUMBER:
          if (isinf (item->u.num))
            g_string_append (out, item->u.num > 0 ? "Infinity" : "-Infinity");
          else
            ts_json_write_number (out, item->u.num);
          break;
        case TS_JSON_STRING:
          if (!ts_wire_is_undefined (item))
            g_string_append_len (out, item->u.str, item->len);
          break;
        case TS_JSON_ARRAY:
          if (!js_array_join (item, out))
            return FALSE;
          break;
        case TS_JSON_OBJECT:
        default:
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
ts_js_loosely_equals_number (const TsJsonNode *node,
                             double            x)
{
  g_return_val_if_fail (node != NULL, FALSE);

  switch (node->type)
    {
    case TS_JSON_NUMBER:
      return node->u.num == x;
    case TS_JSON_TRUE:
      return x == 1;
    case TS_JSON_FALSE:
      return x == 0;
    case TS_JSON_STRING:
      if (ts_wire_is_undefined (node))
        return FALSE;
      return ts_js_string_to_number (node->u.str, node->len) == x;
    case TS_JSON_ARRAY:
      {
        g_autoptr(GString) joined = g_string_new (NULL);

        if (!js_array_join (node, joined))
          return FALSE;
        return ts_js_string_to_number (joined->str, joined->len) == x;
      }
    case TS_JSON_NULL:
    case TS_JSON_OBJECT:
    default:
      return FALSE;
    }
}

/* ======================================================================= */
/* Multiplexing                                                             */
/* ======================================================================= */

TsChannelIdCheck
ts_channel_id_check (const char *channel_id,
                     gsize       len)
{
  gsize segment_start = 0;

  g_return_val_if_fail (channel_id != NULL || len == 0, TS_CHANNEL_ID_INVALID);

  if (len > TS_PAYLOAD_MAX_CHANNEL_ID_SIZE)
    return TS_CHANNEL_ID_TOO_LONG;
  if (len == 0)
    return TS_CHANNEL_ID_INVALID;
  for (gsize i = 0; i <= len; i++)
    {
      char c = i < len ? channel_id[i] : '/';

      if (c == '\n' || c == '\r' || c == '?' || c == '#')
        return TS_CHANNEL_ID_INVALID;
      if (c == '/')
        {
          const char *segment = channel_id + segment_start;
          gsize segment_len = i - segment_start;

          if (segment_len == 0 ||
              (segment_len == 1 && segment[0] == '.') ||
              (segment_len == 2 && segment[0] == '.' && segment[1] == '.'))
            return TS_CHANNEL_ID_INVALID;
          segment_start = i + 1;
        }
    }
  return TS_CHANNEL_ID_VALID;
}

void
ts_multiplex_frame_clear (TsMultiplexFrame *frame)
{
  g_return_if_fail (frame != NULL);

  g_clear_pointer (&frame->doc, ts_json_doc_free);
  memset (frame, 0, sizeof *frame);
}

/* ifMultipleControlPayloadValid on the remainder after "S\n". */
static gboolean
control_parse (const char       *remainder,
               gsize             len,
               TsMultiplexFrame *frame)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root, *rid, *pair, *control, *body;
  gboolean rid_is_string;

  if (len > G_MAXSSIZE)
    return FALSE;
  doc = ts_json_parse (remainder, (gssize) len, NULL);
  if (doc == NULL)
    return FALSE;
  root = ts_json_doc_get_root (doc);
  if (root->type != TS_JSON_ARRAY || root->len != 3)
    return FALSE;
  rid = &root->u.items[0];
  pair = &root->u.items[2];
  rid_is_string = is_string (rid);
  if (rid->type != TS_JSON_NULL && !rid_is_string)
    return FALSE;
  /* message == -1, loosely (a valid protocol message never is). */
  if (!ts_js_loosely_equals_number (&root->u.items[1], -1))
    return FALSE;
  if (pair->type != TS_JSON_ARRAY || pair->len != 2)
    return FALSE;
  control = &pair->u.items[0];
  body = &pair->u.items[1];

  if (ts_js_loosely_equals_number (control, TS_MULTIPLEX_HELLO))
    {
      if (!rid_is_string || !ts_js_loosely_equals_number (body, TS_MULTIPLEX_VERSION))
        return FALSE;
      frame->control = TS_MULTIPLEX_HELLO;
    }
  else if (ts_js_loosely_equals_number (control, TS_MULTIPLEX_SUBSCRIBE) ||
           ts_js_loosely_equals_number (control, TS_MULTIPLEX_UNSUBSCRIBE))
    {
      gboolean subscribe = ts_js_loosely_equals_number (control, TS_MULTIPLEX_SUBSCRIBE);
      TsChannelIdCheck check;

      if (subscribe ? !rid_is_string : rid->type != TS_JSON_NULL)
        return FALSE;
      if (!is_string (body))
        return FALSE;
      check = ts_channel_id_check (body->u.str, body->len);
      if (check == TS_CHANNEL_ID_INVALID)
        return FALSE;
      frame->control = subscribe ? TS_MULTIPLEX_SUBSCRIBE : TS_MULTIPLEX_UNSUBSCRIBE;
      frame->channel_id = body->u.str;
      frame->channel_id_len = body->len;
      frame->channel_id_too_long = check == TS_CHANNEL_ID_TOO_LONG;
    }
  else
    return FALSE;

  frame->request_id = rid_is_string ? rid->u.str : NULL;
  frame->request_id_len = rid_is_string ? rid->len : 0;
  frame->control_node = control;
  frame->body_node = body;
  frame->doc = g_steal_pointer (&doc);
  return TRUE;
}

static TsPayloadResult
multiplex_fail (TsPayloadBudget *budget,
                TsPayloadStatus  status,
                TsPayloadStatus *out_status)
{
  ts_payload_budget_fail (budget, status);
  if (out_status != NULL)
    *out_status = status;
  return TS_PAYLOAD_RESULT_ERROR;
}

TsPayloadResult
ts_multiplex_decode (TsPayloadBudget  *budget,
                     const char       *text,
                     gsize             len,
                     TsMultiplexFrame *frame,
                     TsPayloadStatus  *out_status)
{
  const char *nl, *rest;
  gsize first_len, rest_len;

  g_return_val_if_fail (budget != NULL, TS_PAYLOAD_RESULT_IGNORED);
  g_return_val_if_fail (text != NULL || len == 0, TS_PAYLOAD_RESULT_IGNORED);
  g_return_val_if_fail (frame != NULL, TS_PAYLOAD_RESULT_IGNORED);

  memset (frame, 0, sizeof *frame);
  if (budget->status != TS_PAYLOAD_OK)
    return TS_PAYLOAD_RESULT_IGNORED;
  if (len > budget->max_payload_size)
    return multiplex_fail (budget, TS_PAYLOAD_OVERFLOW_SOCKET, out_status);

  nl = len ? memchr (text, '\n', len) : NULL;
  if (nl == NULL)
    return multiplex_fail (budget, TS_PAYLOAD_INVALID, out_status);
  first_len = (gsize) (nl - text);
  rest = nl + 1;
  rest_len = len - first_len - 1;

  if (first_len == 1 && text[0] == TS_PAYLOAD_SERVER_ID[0])
    {
      if (control_parse (rest, rest_len, frame))
        return TS_PAYLOAD_RESULT_CONTROL;
      ts_multiplex_frame_clear (frame);
    }
  else if (first_len == 1 && text[0] == TS_PAYLOAD_MULTIPLEX_ID[0])
    {
      const char *nl2 = rest_len ? memchr (rest, '\n', rest_len) : NULL;

      if (nl2 != NULL)
        {
          gsize channel_len = (gsize) (nl2 - rest);

          switch (ts_channel_id_check (rest, channel_len))
            {
            case TS_CHANNEL_ID_TOO_LONG:
              return multiplex_fail (budget, TS_PAYLOAD_OVERFLOW_CHANNELS, out_status);
            case TS_CHANNEL_ID_VALID:
              frame->channel_id = rest;
              frame->channel_id_len = channel_len;
              frame->inner = nl2 + 1;
              frame->inner_len = rest_len - channel_len - 1;
              return TS_PAYLOAD_RESULT_CHANNEL;
            case TS_CHANNEL_ID_INVALID:
            default:
              break;
            }
        }
    }
  return multiplex_fail (budget, TS_PAYLOAD_INVALID, out_status);
}

TsMultiplexServerAction
ts_multiplex_server_action (const TsMultiplexFrame *frame,
                            gboolean                negotiated,
                            gboolean                subscribed,
                            guint                   n_channels,
                            guint                   n_resources)
{
  g_return_val_if_fail (frame != NULL, TS_MULTIPLEX_ACTION_IGNORE);

  switch (frame->control)
    {
    case TS_MULTIPLEX_HELLO:
      return TS_MULTIPLEX_ACTION_HELLO;
    case TS_MULTIPLEX_SUBSCRIBE:
      if (!negotiated)
        return TS_MULTIPLEX_ACTION_IGNORE;
      if (frame->channel_id_too_long ||
          (!subscribed && (n_channels >= TS_PAYLOAD_MAX_CHANNELS ||
                           n_resources >= TS_PAYLOAD_MAX_CHANNEL_RESOURCES)))
        return TS_MULTIPLEX_ACTION_OVERFLOW;
      return subscribed ? TS_MULTIPLEX_ACTION_ECHO : TS_MULTIPLEX_ACTION_SUBSCRIBE;
    case TS_MULTIPLEX_UNSUBSCRIBE:
      if (!negotiated)
        return TS_MULTIPLEX_ACTION_IGNORE;
      if (frame->channel_id_too_long)
        return TS_MULTIPLEX_ACTION_OVERFLOW;
      return TS_MULTIPLEX_ACTION_UNSUBSCRIBE;
    default:
      g_return_val_if_reached (TS_MULTIPLEX_ACTION_IGNORE);
    }
}

gboolean
ts_multiplex_echo_matches (const TsMultiplexFrame *frame,
                           const char             *request_id,
                           gsize                   request_id_len,
                           TsMultiplexControl      control,
                           const char             *channel_id,
                           gsize                   channel_id_len)
{
  const TsJsonNode *body;

  g_return_val_if_fail (frame != NULL, FALSE);
  g_return_val_if_fail (request_id != NULL, FALSE);

  /* requestId ? pendingControls.get (requestId) : undefined */
  if (frame->request_id == NULL || frame->request_id_len == 0 ||
      frame->request_id_len != request_id_len ||
      memcmp (frame->request_id, request_id, request_id_len) != 0)
    return FALSE;
  if (frame->control != control)
    return FALSE;
  body = frame->body_node;
  if (channel_id == NULL)
    return body->type == TS_JSON_NUMBER && body->u.num == TS_MULTIPLEX_VERSION;
  return is_string (body) && body->len == channel_id_len &&
         memcmp (body->u.str, channel_id, channel_id_len) == 0;
}

GBytes *
ts_multiplex_encode_control (const char        *request_id,
                             gssize             request_id_len,
                             TsMultiplexControl control,
                             const char        *channel_id,
                             gssize             channel_id_len)
{
  GString *out = g_string_new ("S\n[");

  if (request_id == NULL)
    g_string_append (out, "null");
  else
    ts_json_write_string (out, request_id, len_or_strlen (request_id, request_id_len));
  g_string_append_printf (out, ",-1,[%d,", (int) control);
  if (channel_id == NULL)
    g_string_append_printf (out, "%d", TS_MULTIPLEX_VERSION);
  else
    ts_json_write_string (out, channel_id, len_or_strlen (channel_id, channel_id_len));
  g_string_append (out, "]]");
  return gstring_free_to_bytes (out);
}

GBytes *
ts_multiplex_encode_echo (const TsMultiplexFrame *frame)
{
  GString *out;

  g_return_val_if_fail (frame != NULL && frame->control_node != NULL, NULL);

  out = g_string_new ("S\n[");
  if (frame->request_id == NULL)
    g_string_append (out, "null");
  else
    ts_json_write_string (out, frame->request_id, frame->request_id_len);
  g_string_append (out, ",-1,[");
  ts_json_write_node (out, frame->control_node);
  g_string_append_c (out, ',');
  ts_json_write_node (out, frame->body_node);
  g_string_append (out, "]]");
  return gstring_free_to_bytes (out);
}

GBytes *
ts_multiplex_wrap (const char *channel_id,
                   gssize      channel_id_len,
                   const char *payload,
                   gsize       payload_len)
{
  g_return_val_if_fail (channel_id != NULL, NULL);
  g_return_val_if_fail (payload != NULL || payload_len == 0, NULL);

  return bytes_concat ("M\n", 2, channel_id, len_or_strlen (channel_id, channel_id_len),
                       "\n", 1, payload, payload_len);
}

char *
ts_multiplex_room_path (const char *base_path,
                        const char *channel_id)
{
  g_return_val_if_fail (base_path != NULL, NULL);
  g_return_val_if_fail (channel_id != NULL, NULL);

  if (base_path[0] == '\0')
    return g_strdup (channel_id);
  return g_strconcat (base_path, "/", channel_id, NULL);
}

/* ======================================================================= */
/* Rooms and frames                                                         */
/* ======================================================================= */

gboolean
ts_path_id_from_request_target (const char  *target,
                                gsize        len,
                                char       **path_id,
                                gsize       *path_id_len)
{
  const char *slash, *start, *end;

  g_return_val_if_fail (target != NULL || len == 0, FALSE);
  g_return_val_if_fail (path_id != NULL, FALSE);

  slash = len ? memchr (target, '/', len) : NULL;
  if (slash == NULL)
    return FALSE;
  start = slash + 1;
  end = memchr (start, '?', len - (gsize) (start - target));
  if (end == NULL)
    end = target + len;
  *path_id = g_strndup (start, (gsize) (end - start));
  if (path_id_len != NULL)
    *path_id_len = (gsize) (end - start);
  return TRUE;
}

char *
ts_payload_text_from_binary (const char *data,
                             gsize       len,
                             gsize      *out_len)
{
  static const char replacement[] = "\xEF\xBF\xBD";
  const guchar *s = (const guchar *) data;
  GString *out;
  gsize i = 0, seq_start = 0;
  guint needed = 0, seen = 0;
  guchar lower = 0x80, upper = 0xBF;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  out = g_string_sized_new (len + 1);
  /* The WHATWG UTF-8 decoder: each maximal invalid subpart is one U+FFFD. */
  while (i < len)
    {
      guchar b = s[i];

      if (needed == 0)
        {
          seq_start = i;
          if (b <= 0x7F)
            g_string_append_c (out, (char) b);
          else if (b >= 0xC2 && b <= 0xDF)
            needed = 1;
          else if (b >= 0xE0 && b <= 0xEF)
            {
              if (b == 0xE0)
                lower = 0xA0;
              if (b == 0xED)
                upper = 0x9F;
              needed = 2;
            }
          else if (b >= 0xF0 && b <= 0xF4)
            {
              if (b == 0xF0)
                lower = 0x90;
              if (b == 0xF4)
                upper = 0x8F;
              needed = 3;
            }
          else
            g_string_append_len (out, replacement, 3);
          i++;
          continue;
        }
      if (b < lower || b > upper)
        {
          /* Emit U+FFFD and process b again as a new start. */
          needed = seen = 0;
          lower = 0x80;
          upper = 0xBF;
          g_string_append_len (out, replacement, 3);
          continue;
        }
      lower = 0x80;
      upper = 0xBF;
      seen++;
      i++;
      if (seen == needed)
        {
          g_string_append_len (out, data + seq_start, (gssize) (i - seq_start));
          needed = seen = 0;
        }
    }
  if (needed != 0)
    g_string_append_len (out, replacement, 3);

  if (out_len != NULL)
    *out_len = out->len;
  return g_string_free (out, FALSE);
}
