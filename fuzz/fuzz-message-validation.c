/* fuzz-message-validation.c: isProtocolMessageValid and its predicates
 *
 * SPDX-License-Identifier: MIT
 *
 * The input is a remainder (the JSON after a payload's first line). When it
 * parses:
 * - ts_protocol_message_valid() agrees with its definition (3 items, a null
 *   or string request id, an integral type 0..7, ts_protocol_body_valid());
 * - a valid message re-encoded by ts_payload_encode_remainder() from its
 *   parsed parts parses to a valid message with the same request id and
 *   type, and encoding that again gives the same bytes;
 * - every predicate runs on every node (any depth) without complaint;
 * - every string node: JavaScript loose equality with its own
 *   StringToNumber holds (unless NaN), and a string that is an HLC decodes
 *   and encodes back to itself.
 */

#include <math.h>
#include <string.h>

#include "tinysync/ts-hlc-private.h"
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

static void
check_string (const TsJsonNode *node)
{
  double x = ts_js_string_to_number (node->u.str, node->len);
  TsHlc hlc;

  if (!isnan (x) && !ts_wire_is_undefined (node))
    FUZZ_CHECK (ts_js_loosely_equals_number (node, x));

  if (ts_hlc_parse (node->u.str, node->len, G_MAXINT64, &hlc))
    {
      if (node->len == 0)
        FUZZ_CHECK (ts_hlc_is_empty (&hlc));
      else
        {
          gint64 time;
          guint32 counter;
          TsHlc again;

          FUZZ_CHECK (node->len == TS_HLC_LEN);
          FUZZ_CHECK (memcmp (hlc.c, node->u.str, TS_HLC_LEN) == 0);
          ts_hlc_decode (&hlc, &time, &counter);
          FUZZ_CHECK (time >= 0 && time <= TS_HLC_MAX_TIME);
          FUZZ_CHECK (counter <= TS_HLC_MAX_COUNTER);
          ts_hlc_encode (&again, time, counter, hlc.c + 11);
          FUZZ_CHECK (ts_hlc_compare (&again, &hlc) == 0);
          /* the logical time bound is inclusive */
          FUZZ_CHECK (ts_hlc_parse (node->u.str, node->len, time, NULL));
          if (time > 0)
            FUZZ_CHECK (!ts_hlc_parse (node->u.str, node->len, time - 1, NULL));
        }
    }
}

static void
visit (const TsJsonNode *node)
{
  (void) ts_protocol_is_hash (node);
  (void) ts_protocol_is_content_hashes (node);
  for (guint depth = 0; depth < 4; depth++)
    {
      (void) ts_protocol_is_hash_tree (node, depth);
      (void) ts_protocol_is_stamp (node, depth);
    }
  for (int type = -1; type <= 8; type++)
    (void) ts_protocol_body_valid (type, node);
  (void) ts_js_loosely_equals_number (node, 0);
  (void) ts_js_loosely_equals_number (node, 1);
  (void) ts_js_loosely_equals_number (node, -1);

  switch (node->type)
    {
    case TS_JSON_STRING:
      check_string (node);
      break;
    case TS_JSON_ARRAY:
      for (guint32 i = 0; i < node->len; i++)
        visit (&node->u.items[i]);
      break;
    case TS_JSON_OBJECT:
      for (guint32 i = 0; i < node->len; i++)
        visit (&node->u.members[i].value);
      break;
    default:
      break;
    }
}

/* The definition of isProtocolMessageValid, spelled out again. */
static gboolean
expected_valid (const TsJsonNode *message)
{
  const TsJsonNode *rid, *num;
  double m;

  if (message->type != TS_JSON_ARRAY || message->len != 3)
    return FALSE;
  rid = &message->u.items[0];
  num = &message->u.items[1];
  if (rid->type != TS_JSON_NULL && (rid->type != TS_JSON_STRING || ts_wire_is_undefined (rid)))
    return FALSE;
  if (num->type != TS_JSON_NUMBER)
    return FALSE;
  m = num->u.num;
  if (!(m >= 0 && m <= 7 && m == floor (m)))
    return FALSE;
  return ts_protocol_body_valid ((int) m, &message->u.items[2]);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  const char *request_id = NULL;
  gsize request_id_len = 0;
  int type = -1;
  const TsJsonNode *body = NULL;
  gboolean valid;

  doc = ts_json_parse ((const char *) data, (gssize) size, NULL);
  if (doc == NULL)
    return 0;
  root = ts_json_doc_get_root (doc);

  visit (root);

  valid = ts_protocol_message_valid (root, &request_id, &request_id_len, &type, &body);
  FUZZ_CHECK (valid == expected_valid (root));
  FUZZ_CHECK (valid == ts_protocol_message_valid (root, NULL, NULL, NULL, NULL));
  if (!valid)
    return 0;

  FUZZ_CHECK (type >= 0 && type <= 7);
  FUZZ_CHECK (body == &root->u.items[2]);
  FUZZ_CHECK (ts_protocol_body_valid (type, body));
  if (root->u.items[0].type == TS_JSON_NULL)
    FUZZ_CHECK (request_id == NULL && request_id_len == 0);
  else
    FUZZ_CHECK (request_id == root->u.items[0].u.str && request_id_len == root->u.items[0].len);

  /* Re-encode from the parts, as a synchronizer forwarding it would. */
  {
    g_autofree char *body_json = NULL;
    g_autofree char *encoded = NULL;
    g_autofree char *encoded2 = NULL;
    g_autoptr(TsJsonDoc) doc2 = NULL;
    gsize body_len = 0, len = 0, len2 = 0;
    const char *request_id2 = NULL;
    gsize request_id_len2 = 0;
    int type2 = -1;
    const TsJsonNode *body2 = NULL;

    body_json = ts_json_node_to_string (body, &body_len);
    encoded = ts_payload_encode_remainder (request_id, (gssize) request_id_len, type,
                                           body_json, (gssize) body_len, &len);
    doc2 = ts_json_parse (encoded, (gssize) len, NULL);
    FUZZ_CHECK (doc2 != NULL);
    FUZZ_CHECK (ts_protocol_message_valid (ts_json_doc_get_root (doc2), &request_id2,
                                           &request_id_len2, &type2, &body2));
    FUZZ_CHECK (type2 == type);
    FUZZ_CHECK ((request_id == NULL) == (request_id2 == NULL));
    FUZZ_CHECK (request_id_len2 == request_id_len);
    FUZZ_CHECK (request_id == NULL || memcmp (request_id, request_id2, request_id_len) == 0);

    g_clear_pointer (&body_json, g_free);
    body_json = ts_json_node_to_string (body2, &body_len);
    encoded2 = ts_payload_encode_remainder (request_id2, (gssize) request_id_len2, type2,
                                            body_json, (gssize) body_len, &len2);
    FUZZ_CHECK (len == len2 && memcmp (encoded, encoded2, len) == 0);
  }

  return 0;
}
