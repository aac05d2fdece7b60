/* test-hlc.c: unit tests of the hash, unique ids and the hybrid logical clock
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ts-hlc-private.h"
#include "ts-json-private.h"

/* ---- Helpers ------------------------------------------------------------------ */

/* json-glib 1.6 rejects lone-surrogate escapes ("\ud800"), which hash.json
 * contains in informational members (every such string is also given as
 * hex). Replace each lone surrogate escape by "\ufffd" (same length) so
 * json-glib can load the file; the tests only read the hex forms. */
static void
neutralize_lone_surrogates (char  *text,
                            gsize  len)
{
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      if (!in_string)
        {
          if (text[i] == '"')
            in_string = TRUE;
          continue;
        }
      if (text[i] == '"')
        in_string = FALSE;
      else if (text[i] == '\\' && i + 1 < len)
        {
          unsigned int u, lo;

          if (text[i + 1] == 'u' && i + 6 <= len && sscanf (text + i + 2, "%4x", &u) == 1 &&
              u >= 0xD800 && u <= 0xDFFF)
            {
              if (u <= 0xDBFF && i + 12 <= len && text[i + 6] == '\\' && text[i + 7] == 'u' &&
                  sscanf (text + i + 8, "%4x", &lo) == 1 && lo >= 0xDC00 && lo <= 0xDFFF)
                {
                  i += 11;   /* a valid pair */
                  continue;
                }
              memcpy (text + i + 2, "fffd", 4);
              i += 5;
            }
          else
            i++;
        }
    }
}

/* Loads a vector file with json-glib; NULL (and the test skipped) if it is
 * missing. */
static JsonParser *
load_vectors (const char *name)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", name, NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  JsonParser *parser;

  if (!g_file_get_contents (path, &text, &len, &error))
    {
      g_autofree char *msg = g_strdup_printf ("vector file missing: %s", error->message);
      g_test_skip (msg);
      return NULL;
    }
  neutralize_lone_surrogates (text, len);
  parser = json_parser_new ();
  json_parser_load_from_data (parser, text, (gssize) len, &error);
  g_assert_no_error (error);
  return parser;
}

static JsonObject *
vectors_root (JsonParser *parser)
{
  return json_node_get_object (json_parser_get_root (parser));
}

static GBytes *
hex_to_bytes (const char *hex)
{
  gsize n = strlen (hex);
  guint8 *out = g_malloc (n / 2 + 1);

  g_assert_cmpuint (n % 2, ==, 0);
  for (gsize i = 0; i < n / 2; i++)
    {
      int hi = g_ascii_xdigit_value (hex[2 * i]);
      int lo = g_ascii_xdigit_value (hex[2 * i + 1]);

      g_assert_true (hi >= 0 && lo >= 0);
      out[i] = (guint8) (hi << 4 | lo);
    }
  out[n / 2] = 0;
  return g_bytes_new_take (out, n / 2);
}

/* UTF-16 code units (4 hex digits each) to WTF-8: valid pairs combined, lone
 * surrogates as 3-byte sequences. */
static GString *
utf16_hex_to_wtf8 (const char *hex)
{
  gsize n = strlen (hex) / 4;
  guint32 *units = g_new (guint32, n + 1);
  GString *s = g_string_new (NULL);

  g_assert_cmpuint (strlen (hex) % 4, ==, 0);
  for (gsize i = 0; i < n; i++)
    {
      char tmp[5] = { hex[4 * i], hex[4 * i + 1], hex[4 * i + 2], hex[4 * i + 3], 0 };
      units[i] = (guint32) g_ascii_strtoull (tmp, NULL, 16);
    }
  for (gsize i = 0; i < n; i++)
    {
      guint32 cp = units[i];

      if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && units[i + 1] >= 0xDC00 && units[i + 1] <= 0xDFFF)
        {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (units[i + 1] - 0xDC00);
          i++;
        }
      if (cp < 0x80)
        g_string_append_c (s, (char) cp);
      else if (cp < 0x800)
        {
          g_string_append_c (s, (char) (0xC0 | (cp >> 6)));
          g_string_append_c (s, (char) (0x80 | (cp & 0x3F)));
        }
      else if (cp < 0x10000)
        {
          g_string_append_c (s, (char) (0xE0 | (cp >> 12)));
          g_string_append_c (s, (char) (0x80 | ((cp >> 6) & 0x3F)));
          g_string_append_c (s, (char) (0x80 | (cp & 0x3F)));
        }
      else
        {
          g_string_append_c (s, (char) (0xF0 | (cp >> 18)));
          g_string_append_c (s, (char) (0x80 | ((cp >> 12) & 0x3F)));
          g_string_append_c (s, (char) (0x80 | ((cp >> 6) & 0x3F)));
          g_string_append_c (s, (char) (0x80 | (cp & 0x3F)));
        }
    }
  g_free (units);
  return s;
}

static guint32
get_hash_member (JsonObject *o,
                 const char *name)
{
  gint64 v = json_object_get_int_member (o, name);

  g_assert_cmpint (v, >=, 0);
  g_assert_cmpint (v, <=, G_MAXUINT32);
  return (guint32) v;
}

static TsHlc
hlc_from_string (const char *s)
{
  TsHlc hlc;

  g_assert_true (ts_hlc_parse (s, strlen (s), G_MAXINT64, &hlc));
  return hlc;
}

/* ---- Hash vectors ----------------------------------------------------------------- */

static void
test_hash_fnv1a (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hash.json");
  JsonArray *cases;
  guint n, lone = 0;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "fnv1a");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 43);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      g_autoptr(GBytes) utf8 = hex_to_bytes (json_object_get_string_member (c, "utf8Hex"));
      g_autoptr(GString) wtf8 = utf16_hex_to_wtf8 (json_object_get_string_member (c, "utf16Hex"));
      guint32 expected = get_hash_member (c, "hash");
      gsize utf8_len;
      const guint8 *utf8_data = g_bytes_get_data (utf8, &utf8_len);
      g_autofree char *converted = NULL;
      gsize converted_len = 0;

      /* the hash of the UTF-8 bytes */
      g_assert_cmpuint (ts_hash_bytes (utf8_data, utf8_len), ==, expected);
      g_assert_cmpuint (ts_hash_update (TS_HASH_INIT, utf8_data, utf8_len), ==, expected);

      /* ts_hash_string on the WTF-8 form hashes lone surrogates as EF BF BD */
      g_assert_cmpuint (ts_hash_string (wtf8->str, wtf8->len), ==, expected);
      g_assert_cmpuint (ts_hash_update_string (TS_HASH_INIT, wtf8->str, wtf8->len), ==, expected);

      /* in two pieces, split at every byte */
      for (gsize cut = 0; cut <= wtf8->len && cut < 64; cut++)
        {
          /* splitting inside a lone surrogate would change the meaning */
          if (cut > 0 && cut < wtf8->len && ((guint8) wtf8->str[cut] & 0xC0) == 0x80)
            continue;
          g_assert_cmpuint (ts_hash_update_string (ts_hash_string (wtf8->str, cut),
                                                   wtf8->str + cut, wtf8->len - cut), ==, expected);
        }

      /* TextEncoder's bytes are what ts_wtf8_to_utf8 gives */
      converted = ts_wtf8_to_utf8 (wtf8->str, wtf8->len, &converted_len);
      if (converted != NULL)
        {
          lone++;
          g_assert_cmpmem (converted, converted_len, utf8_data, utf8_len);
        }
      else
        g_assert_cmpmem (wtf8->str, wtf8->len, utf8_data, utf8_len);
    }
  g_assert_cmpuint (lone, ==, 2);
}

/* JSON (value) + ":" + hlc */
static void
test_hash_cell (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hash.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  g_assert_true (json_object_get_boolean_member (vectors_root (parser), "valueHashEqualsCellHash"));
  cases = json_object_get_array_member (vectors_root (parser), "cellHash");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 44);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      JsonNode *value = json_object_get_member (c, "value");
      const char *hlc = json_object_get_string_member (c, "hlc");
      g_autoptr(GBytes) preimage = hex_to_bytes (json_object_get_string_member (c, "preimageUtf8Hex"));
      guint32 expected = get_hash_member (c, "hash");
      g_autoptr(GString) json = g_string_new (NULL);
      g_autoptr(GString) full = NULL;
      gsize pre_len;
      const char *pre_data = g_bytes_get_data (preimage, &pre_len);

      /* the canonical JSON of the stored value */
      if (json_object_get_boolean_member (c, "valueIsUndefined"))
        g_string_append (json, "null");
      else if (json_object_has_member (c, "valueBits"))
        {
          guint64 bits = g_ascii_strtoull (json_object_get_string_member (c, "valueBits"), NULL, 16);
          double x;

          memcpy (&x, &bits, sizeof x);
          ts_json_write_number (json, x);
        }
      else if (json_object_has_member (c, "valueUtf16Hex"))
        {
          g_autoptr(GString) wtf8 = utf16_hex_to_wtf8 (json_object_get_string_member (c, "valueUtf16Hex"));

          ts_json_write_string (json, wtf8->str, wtf8->len);
        }
      else if (JSON_NODE_HOLDS_NULL (value))
        g_string_append (json, "null");
      else
        {
          g_assert_true (json_node_get_value_type (value) == G_TYPE_BOOLEAN);
          g_string_append (json, json_node_get_boolean (value) ? "true" : "false");
        }

      full = g_string_new_len (json->str, (gssize) json->len);
      g_string_append_c (full, ':');
      g_string_append (full, hlc);
      g_assert_cmpmem (full->str, full->len, pre_data, pre_len);

      g_assert_cmpuint (ts_hash_leaf (json->str, json->len, hlc, strlen (hlc)), ==, expected);
      g_assert_cmpuint (ts_hash_bytes (pre_data, pre_len), ==, expected);
    }
}

static void
test_hash_id (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hash.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "idHash");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 8);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      g_autoptr(GString) id = utf16_hex_to_wtf8 (json_object_get_string_member (c, "idUtf16Hex"));
      g_autoptr(GBytes) preimage = hex_to_bytes (json_object_get_string_member (c, "preimageUtf8Hex"));
      guint32 child = get_hash_member (c, "childHash");
      guint32 expected = get_hash_member (c, "hash");
      gsize pre_len;
      const char *pre_data = g_bytes_get_data (preimage, &pre_len);
      guint32 h;

      g_assert_cmpuint (ts_hash_id (id->str, id->len, child), ==, expected);
      g_assert_cmpuint (ts_hash_bytes (pre_data, pre_len), ==, expected);

      /* the same by pieces */
      h = ts_hash_update_string (TS_HASH_INIT, id->str, id->len);
      h = ts_hash_update (h, ":", 1);
      g_assert_cmpuint (ts_hash_update_uint (h, child), ==, expected);
    }
}

static void
test_hash_container (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hash.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "containerHash");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 3);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      JsonObject *children = json_object_get_object_member (c, "childHashes");
      g_autoptr(GList) ids = json_object_get_members (children);
      guint32 row = 0, table = 0;

      for (GList *l = ids; l != NULL; l = l->next)
        {
          const char *id = l->data;
          guint32 h = get_hash_member (children, id);

          row ^= ts_hash_id (id, strlen (id), h) ^ ts_hash_id (id, strlen (id), 0);
          table ^= ts_hash_id (id, strlen (id), h);
        }
      g_assert_cmpuint (row, ==, get_hash_member (c, "rowOrValuesHash_withLegacyTerm"));
      g_assert_cmpuint (table, ==, get_hash_member (c, "tableOrTablesHash_noLegacyTerm"));
    }
}

static void
test_hash_hand (void)
{
  static const guint32 numbers[] = {
    0, 1, 9, 10, 99, 100, 12345, 290599168, 2147483647, 2147483648u, 4294967295u,
  };
  char buf[16];

  /* PROTOCOL.md section 3 examples */
  g_assert_cmpuint (ts_hash_string ("", 0), ==, 2166136261u);
  g_assert_cmpuint (ts_hash_string ("a", 1), ==, 3826002220u);
  g_assert_cmpuint (ts_hash_string ("foobar", 6), ==, 3214735720u);
  g_assert_cmpuint (ts_hash_string ("store1", 6), ==, 3503105229u);
  g_assert_cmpuint (ts_hash_string ("species:0", 9), ==, 2328635627u);
  g_assert_cmpuint (ts_hash_id ("fido", 4, 2682656941u), ==, 2102515304u);

  /* decimal digits of every width */
  for (gsize i = 0; i < G_N_ELEMENTS (numbers); i++)
    {
      int len = g_snprintf (buf, sizeof buf, "%u", numbers[i]);

      g_assert_cmpuint (ts_hash_update_uint (TS_HASH_INIT, numbers[i]), ==, ts_hash_bytes (buf, (gsize) len));
      g_assert_cmpuint (ts_hash_update_uint (12345, numbers[i]), ==, ts_hash_update (12345, buf, (gsize) len));
    }
  for (guint32 v = 1; v != 0 && v < 4000000000u; v = v * 3 + 1)
    {
      int len = g_snprintf (buf, sizeof buf, "%u", v);

      g_assert_cmpuint (ts_hash_update_uint (TS_HASH_INIT, v), ==, ts_hash_bytes (buf, (gsize) len));
    }

  /* only lone surrogates (ED A0..BF xx) are replaced; U+D7FF (ED 9F BF)
   * and a truncated ED are hashed as they are */
  g_assert_cmpuint (ts_hash_string ("\xed\x9f\xbf", 3), ==, ts_hash_bytes ("\xed\x9f\xbf", 3));
  g_assert_cmpuint (ts_hash_string ("a\xed", 2), ==, ts_hash_bytes ("a\xed", 2));
  g_assert_cmpuint (ts_hash_string ("\xed\xa0", 2), ==, ts_hash_bytes ("\xed\xa0", 2));
  g_assert_cmpuint (ts_hash_string ("\xed\xa0\x80\xed\xbf\xbf", 6), ==,
                    ts_hash_bytes ("\xef\xbf\xbd\xef\xbf\xbd", 6));
  g_assert_cmpuint (ts_hash_string ("x\xed\xb0\x80y\xed\x9f\xbfz", 9), ==,
                    ts_hash_bytes ("x\xef\xbf\xbdy\xed\x9f\xbfz", 9));
  /* NUL bytes are data, the length bounds the string */
  g_assert_cmpuint (ts_hash_string ("a\0b", 3), ==, ts_hash_bytes ("a\0b", 3));
  g_assert_cmpuint (ts_hash_string ("abc", 2), ==, ts_hash_bytes ("ab", 2));

  /* leaf: json ":" hlc, with the empty HLC */
  g_assert_cmpuint (ts_hash_leaf ("\"dog\"", 5, "Nn1JUF-----FnHIC", 16), ==, 290599168u);
  g_assert_cmpuint (ts_hash_leaf ("null", 4, "Nn1JUF-----FnHIC", 16), ==, 2752493455u);
  g_assert_cmpuint (ts_hash_leaf ("\"dog\"", 5, "", 0), ==, ts_hash_bytes ("\"dog\":", 6));
}

/* ---- Unique ids ------------------------------------------------------------------- */

static void
test_random_id (void)
{
  gboolean seen[256] = { FALSE };
  char first[17], other[17];
  guint distinct = 0;

  g_assert_cmpuint (strlen (ts_id_alphabet), ==, 64);

  for (int i = 0; i < 2000; i++)
    {
      char id[18];

      memset (id, '#', sizeof id);
      ts_random_id (id, 16);
      g_assert_cmpint (id[16], ==, '\0');
      g_assert_cmpint (id[17], ==, '#');
      for (int k = 0; k < 16; k++)
        {
          g_assert_nonnull (memchr (ts_id_alphabet, id[k], 64));
          seen[(guint8) id[k]] = TRUE;
        }
    }
  /* 32000 draws cover all 64 characters (failure odds ~ 64 (63/64)^32000) */
  for (int c = 0; c < 256; c++)
    distinct += seen[c];
  g_assert_cmpuint (distinct, ==, 64);

  ts_random_id (first, 16);
  ts_random_id (other, 16);
  g_assert_cmpstr (first, !=, other);

  /* the protocol's lengths, and lengths beyond one getrandom batch */
  for (gsize len = 0; len <= 200; len += (len < 20 ? 1 : 45))
    {
      g_autofree char *id = g_malloc (len + 2);

      id[len + 1] = '#';
      ts_random_id (id, len);
      g_assert_cmpuint (strlen (id), ==, len);
      g_assert_cmpint (id[len + 1], ==, '#');
      g_assert_cmpuint (strspn (id, ts_id_alphabet), ==, len);
    }
}

/* ---- HLC vectors ------------------------------------------------------------------- */

static void
test_hlc_alphabet (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  const char *alphabet;

  if (parser == NULL)
    return;
  alphabet = json_object_get_string_member (vectors_root (parser), "alphabet");
  g_assert_cmpstr (ts_id_alphabet, ==, alphabet);

  /* character i encodes digit i, ascending in ASCII */
  for (int i = 0; i < 64; i++)
    {
      TsHlc hlc;
      gint64 t;
      guint32 c;

      if (i > 0)
        g_assert_cmpint (ts_id_alphabet[i - 1], <, ts_id_alphabet[i]);
      memset (hlc.c, '-', TS_HLC_LEN);
      hlc.c[6] = ts_id_alphabet[i];
      hlc.c[10] = ts_id_alphabet[63 - i];
      ts_hlc_decode (&hlc, &t, &c);
      g_assert_cmpint (t, ==, i);
      g_assert_cmpuint (c, ==, 63 - (guint) i);

      ts_hlc_encode (&hlc, (gint64) i << 36, (guint32) i << 18, "abcde");
      g_assert_cmpint (hlc.c[0], ==, ts_id_alphabet[i]);
      g_assert_cmpint (hlc.c[7], ==, ts_id_alphabet[i]);
    }
}

static void
test_hlc_client_ids (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "clientIds");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 12);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *unique_id = json_object_get_string_member (c, "uniqueId");
      char out[6];
      TsClock clock;

      memset (out, '#', sizeof out);
      g_assert_cmpuint (ts_hash_string (unique_id, strlen (unique_id)), ==, get_hash_member (c, "hash"));
      ts_hlc_client_id_for (unique_id, strlen (unique_id), out);
      g_assert_cmpstr (out, ==, json_object_get_string_member (c, "clientId"));

      ts_clock_init (&clock, unique_id, strlen (unique_id));
      g_assert_cmpstr (clock.client_id, ==, out);
      g_assert_cmpint (clock.last_time, ==, 0);
      g_assert_cmpint (clock.last_counter, ==, -1);
    }
}

static void
test_hlc_encode (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "encode");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 24);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *unique_id = json_object_get_string_member (c, "uniqueId");
      const char *expected = json_object_get_string_member (c, "hlc");
      gint64 t = json_object_get_int_member (c, "logicalTime");
      gint64 counter = json_object_get_int_member (c, "counter");
      char client_id[6];
      TsHlc hlc;
      gint64 t2;
      guint32 c2;

      ts_hlc_client_id_for (unique_id, strlen (unique_id), client_id);
      ts_hlc_encode (&hlc, t, (guint32) counter, client_id);
      g_assert_cmpmem (hlc.c, TS_HLC_LEN, expected, strlen (expected));
      g_assert_cmpuint (ts_hlc_len (&hlc), ==, 16);
      ts_hlc_decode (&hlc, &t2, &c2);
      g_assert_cmpint (t2, ==, t);
      g_assert_cmpint (c2, ==, counter);
    }
}

static void
test_hlc_decode (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = json_object_get_array_member (vectors_root (parser), "decode");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 27);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *s = json_object_get_string_member (c, "hlc");
      TsHlc hlc = hlc_from_string (s);
      gint64 t;
      guint32 counter;

      ts_hlc_decode (&hlc, &t, &counter);
      g_assert_cmpint (t, ==, json_object_get_int_member (c, "logicalTime"));
      g_assert_cmpint (counter, ==, json_object_get_int_member (c, "counter"));
      g_assert_cmpmem (hlc.c + 11, 5, json_object_get_string_member (c, "clientId"), 5);
      /* optional outputs */
      ts_hlc_decode (&hlc, NULL, &counter);
      ts_hlc_decode (&hlc, &t, NULL);
      g_assert_cmpint (t, ==, json_object_get_int_member (c, "logicalTime"));
    }
}

static void
test_hlc_is_hlc (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  JsonObject *is_hlc;
  JsonArray *cases;
  gint64 now, max_future;
  guint n;

  if (parser == NULL)
    return;
  is_hlc = json_object_get_object_member (vectors_root (parser), "isHlc");
  now = json_object_get_int_member (is_hlc, "now");
  max_future = json_object_get_int_member (is_hlc, "maxFutureOffsetMs");
  g_assert_cmpint (max_future, ==, TS_HLC_MAX_FUTURE_MS);
  cases = json_object_get_array_member (is_hlc, "cases");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 10);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *s = json_object_get_string_member (c, "hlc");
      gboolean for_sync = json_object_get_boolean_member (c, "validForSynchronizer");
      gboolean for_store = json_object_get_boolean_member (c, "validForStoreAtNow");
      TsHlc hlc;

      memset (&hlc, 'X', sizeof hlc);
      g_assert_cmpint (ts_hlc_parse (s, strlen (s), G_MAXINT64, &hlc), ==, for_sync);
      g_assert_cmpint (ts_hlc_parse (s, strlen (s), now + max_future, NULL), ==, for_store);
      if (for_sync)
        {
          if (*s == '\0')
            {
              g_assert_true (ts_hlc_is_empty (&hlc));
              g_assert_cmpuint (ts_hlc_len (&hlc), ==, 0);
            }
          else
            {
              gint64 t;

              g_assert_cmpmem (hlc.c, TS_HLC_LEN, s, 16);
              ts_hlc_decode (&hlc, &t, NULL);
              g_assert_cmpint (t, ==, json_object_get_int_member (c, "logicalTime"));
            }
        }
    }
}

typedef struct {
  gint64 now;
  guint  calls;
} FakeNow;

static gint64
fake_now (gpointer user_data)
{
  FakeNow *f = user_data;

  f->calls++;
  return f->now;
}

static void
test_hlc_clock_sequences (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("hlc.json");
  JsonArray *sequences;
  guint n, total_steps = 0, ignored = 0;

  if (parser == NULL)
    return;
  sequences = json_object_get_array_member (vectors_root (parser), "clockSequences");
  n = json_array_get_length (sequences);
  g_assert_cmpuint (n, ==, 3);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *seq = json_array_get_object_element (sequences, i);
      const char *unique_id = json_object_get_string_member (seq, "uniqueId");
      JsonArray *steps = json_object_get_array_member (seq, "steps");
      FakeNow fake = { 0, 0 };
      TsClock clock;

      ts_clock_init (&clock, unique_id, strlen (unique_id));
      clock.now = fake_now;
      clock.now_data = &fake;

      for (guint k = 0; k < json_array_get_length (steps); k++)
        {
          JsonObject *step = json_array_get_object_element (steps, k);
          const char *op = json_object_get_string_member (step, "op");

          fake.now = json_object_get_int_member (step, "now");
          g_assert_cmpint (ts_clock_now (&clock), ==, fake.now);
          if (g_str_equal (op, "next"))
            {
              const char *expected = json_object_get_string_member (step, "result");
              TsHlc hlc;

              ts_clock_next (&clock, &hlc);
              g_assert_cmpmem (hlc.c, TS_HLC_LEN, expected, strlen (expected));
            }
          else
            {
              const char *s = json_object_get_string_member (step, "hlc");
              TsHlc hlc;

              g_assert_cmpstr (op, ==, "seen");
              if (ts_hlc_parse (s, strlen (s), G_MAXINT64, &hlc))
                ts_clock_seen (&clock, &hlc);
              else
                {
                  /* not an HLC at all ("not-an-hlc"): seen () ignores it;
                   * a TsHlc holding such bytes is ignored too */
                  memset (hlc.c, '!', TS_HLC_LEN);
                  memcpy (hlc.c, s, MIN (strlen (s), TS_HLC_LEN));
                  ts_clock_seen (&clock, &hlc);
                  ignored++;
                }
            }
          g_assert_cmpint (clock.last_time, ==, json_object_get_int_member (step, "lastLogicalTime"));
          g_assert_cmpint (clock.last_counter, ==, json_object_get_int_member (step, "lastCounter"));
          total_steps++;
        }
      g_assert_cmpuint (fake.calls, >=, json_array_get_length (steps));
    }
  g_assert_cmpuint (total_steps, ==, 5 + 21 + 3);
  g_assert_cmpuint (ignored, ==, 1);
}

/* ---- Hand-written HLC and clock tests --------------------------------------------- */

static void
test_hlc_parse (void)
{
  TsHlc hlc;
  gint64 t;
  guint32 c;

  memset (&hlc, 'X', sizeof hlc);
  g_assert_true (ts_hlc_parse ("", 0, 0, &hlc));
  g_assert_true (ts_hlc_is_empty (&hlc));
  g_assert_true (ts_hlc_parse ("", 0, -1, NULL));   /* "" whatever the time */
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, 0);
  g_assert_cmpuint (c, ==, 0);

  g_assert_true (ts_hlc_parse ("zzzzzzzzzzzzzzzz", 16, G_MAXINT64, &hlc));
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, TS_HLC_MAX_TIME);
  g_assert_cmpuint (c, ==, TS_HLC_MAX_COUNTER);
  g_assert_true (ts_hlc_parse ("zzzzzzzzzzzzzzzz", 16, TS_HLC_MAX_TIME, NULL));
  g_assert_false (ts_hlc_parse ("zzzzzzzzzzzzzzzz", 16, TS_HLC_MAX_TIME - 1, NULL));
  g_assert_true (ts_hlc_parse ("----------------", 16, 0, NULL));
  g_assert_false (ts_hlc_parse ("----------------", 16, -1, NULL));

  /* shape: exactly 16 alphabet characters */
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnHIC\n", 17, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnHI", 15, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH\0C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH.C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH+C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH\xc3\xa9", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH@C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH[C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH`C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH{C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH/C", 16, G_MAXINT64, NULL));
  g_assert_false (ts_hlc_parse ("NsYwJk-----FnH:C", 16, G_MAXINT64, NULL));
  /* the length bounds the string */
  g_assert_true (ts_hlc_parse ("NsYwJk-----FnHICextra", 16, G_MAXINT64, NULL));
  /* every alphabet character is accepted in every position */
  for (int i = 0; i < 64; i++)
    {
      char s[17];

      memset (s, ts_id_alphabet[i], 16);
      s[16] = '\0';
      g_assert_true (ts_hlc_parse (s, 16, G_MAXINT64, NULL));
    }

  /* decode counts characters outside the alphabet as 0 */
  memcpy (hlc.c, "!!!!!!0!!!0FnHIC", 16);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, 1);
  g_assert_cmpuint (c, ==, 1);
}

static void
test_hlc_order (void)
{
  GRand *rand = g_rand_new_with_seed (99);

  for (int i = 0; i < 100000; i++)
    {
      gint64 t1 = (gint64) (g_rand_double (rand) * TS_HLC_MAX_TIME);
      gint64 t2 = g_rand_boolean (rand) ? t1 : (gint64) (g_rand_double (rand) * TS_HLC_MAX_TIME);
      guint32 c1 = g_rand_int_range (rand, 0, TS_HLC_MAX_COUNTER + 1);
      guint32 c2 = g_rand_boolean (rand) ? c1 : (guint32) g_rand_int_range (rand, 0, TS_HLC_MAX_COUNTER + 1);
      char id1[6], id2[6];
      TsHlc a, b, empty;
      gint64 dt;
      guint32 dc;
      int expected, got;

      ts_random_id (id1, 5);
      if (g_rand_boolean (rand))
        memcpy (id2, id1, 6);
      else
        ts_random_id (id2, 5);
      ts_hlc_encode (&a, t1, c1, id1);
      ts_hlc_encode (&b, t2, c2, id2);

      /* round trip */
      ts_hlc_decode (&a, &dt, &dc);
      g_assert_cmpint (dt, ==, t1);
      g_assert_cmpuint (dc, ==, c1);
      g_assert_true (ts_hlc_parse (a.c, 16, t1, NULL));
      g_assert_false (ts_hlc_parse (a.c, 16, t1 - 1, NULL));

      /* string order is (time, counter, client id) order */
      expected = t1 != t2 ? (t1 < t2 ? -1 : 1) : c1 != c2 ? (c1 < c2 ? -1 : 1) : strcmp (id1, id2);
      got = ts_hlc_compare (&a, &b);
      g_assert_cmpint (expected < 0, ==, got < 0);
      g_assert_cmpint (expected > 0, ==, got > 0);

      /* the empty HLC sorts first */
      memset (&empty, 0, sizeof empty);
      g_assert_cmpint (ts_hlc_compare (&empty, &a), <, 0);
    }
  g_rand_free (rand);
}

static void
test_clock_rules (void)
{
  FakeNow fake = { 1710000000000, 0 };
  TsClock clock;
  TsHlc hlc, remote;
  gint64 t;
  guint32 c;
  char remote_id[6];

  ts_clock_init (&clock, "store1", 6);
  g_assert_cmpstr (clock.client_id, ==, "FnHIC");
  clock.now = fake_now;
  clock.now_data = &fake;
  ts_hlc_client_id_for ("other", 5, remote_id);

  /* first write at T */
  ts_clock_next (&clock, &hlc);
  g_assert_cmpmem (hlc.c, 16, "NsYwJk-----FnHIC", 16);

  /* counter overflow carries into the time */
  clock.last_counter = TS_HLC_MAX_COUNTER - 1;
  ts_clock_next (&clock, &hlc);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, fake.now);
  g_assert_cmpuint (c, ==, TS_HLC_MAX_COUNTER);
  ts_clock_next (&clock, &hlc);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, fake.now + 1);
  g_assert_cmpuint (c, ==, 0);
  g_assert_cmpint (clock.last_time, ==, fake.now + 1);
  g_assert_cmpint (clock.last_counter, ==, 0);

  /* the wall clock catches up: counter restarts */
  fake.now += 10;
  ts_clock_next (&clock, &hlc);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, fake.now);
  g_assert_cmpuint (c, ==, 0);

  /* a backwards clock is ignored */
  fake.now -= 5000;
  ts_clock_next (&clock, &hlc);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, fake.now + 5000);
  g_assert_cmpuint (c, ==, 1);
  fake.now += 5000;

  /* seen: exactly now + 300000 is accepted, one more is ignored */
  ts_hlc_encode (&remote, fake.now + TS_HLC_MAX_FUTURE_MS + 1, 5, remote_id);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_time, ==, fake.now);
  g_assert_cmpint (clock.last_counter, ==, 1);
  ts_hlc_encode (&remote, fake.now + TS_HLC_MAX_FUTURE_MS, 5, remote_id);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_time, ==, fake.now + TS_HLC_MAX_FUTURE_MS);
  g_assert_cmpint (clock.last_counter, ==, 5);
  /* later local HLCs are greater than the remote one */
  ts_clock_next (&clock, &hlc);
  g_assert_cmpint (ts_hlc_compare (&hlc, &remote), >, 0);
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, ==, fake.now + TS_HLC_MAX_FUTURE_MS);
  g_assert_cmpuint (c, ==, 6);

  /* same time, bigger remote counter: max */
  ts_hlc_encode (&remote, clock.last_time, 100, remote_id);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_counter, ==, 100);
  /* same time, smaller remote counter: unchanged */
  ts_hlc_encode (&remote, clock.last_time, 3, remote_id);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_counter, ==, 100);
  /* older remote time: unchanged */
  ts_hlc_encode (&remote, clock.last_time - 1, 99999, remote_id);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_counter, ==, 100);

  /* no HLC, the empty HLC and garbage leave a quiet clock alone */
  ts_clock_seen (&clock, NULL);
  g_assert_cmpint (clock.last_counter, ==, 100);
  memset (&remote, 0, sizeof remote);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_counter, ==, 100);
  memcpy (remote.c, "~~~~~~~~~~~~~~~~", 16);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_counter, ==, 100);
  memcpy (remote.c, "zzzzzzzzzzzzzzz!", 16);
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_time, ==, fake.now + TS_HLC_MAX_FUTURE_MS);

  /* the wall clock passes the remote time: counter -1, next gives 0 */
  fake.now += TS_HLC_MAX_FUTURE_MS + 1;
  ts_clock_seen (&clock, NULL);
  g_assert_cmpint (clock.last_time, ==, fake.now);
  g_assert_cmpint (clock.last_counter, ==, -1);
  /* a remote HLC exactly at the new time: its counter */
  ts_hlc_encode (&remote, fake.now + 1, 42, remote_id);
  fake.now += 1;
  ts_clock_seen (&clock, &remote);
  g_assert_cmpint (clock.last_time, ==, fake.now);
  g_assert_cmpint (clock.last_counter, ==, 42);
}

static void
test_clock_defaults (void)
{
  TsClock clock, clock2;
  TsHlc hlc;
  gint64 before = g_get_real_time () / 1000;
  gint64 t, after;
  guint32 c;

  /* no unique id: a random 5-character client id */
  ts_clock_init (&clock, NULL, 0);
  g_assert_cmpuint (strlen (clock.client_id), ==, 5);
  g_assert_cmpuint (strspn (clock.client_id, ts_id_alphabet), ==, 5);
  ts_clock_init (&clock2, NULL, 0);
  ts_clock_init (&clock2, NULL, 0);

  /* the default time source is the wall clock in ms */
  g_assert_null (clock.now);
  ts_clock_next (&clock, &hlc);
  after = g_get_real_time () / 1000;
  ts_hlc_decode (&hlc, &t, &c);
  g_assert_cmpint (t, >=, before);
  g_assert_cmpint (t, <=, after);
  g_assert_cmpint (ts_clock_now (&clock), >=, t);
  g_assert_cmpmem (hlc.c + 11, 5, clock.client_id, 5);
  g_assert_true (ts_hlc_parse (hlc.c, 16, after + TS_HLC_MAX_FUTURE_MS, NULL));

  /* "" is a valid unique id with its own client id */
  ts_clock_init (&clock, "", 0);
  g_assert_cmpstr (clock.client_id, ==, "068r4");
  ts_clock_init (&clock, "s1", 2);
  g_assert_cmpstr (clock.client_id, ==, "7JQY8");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/hash/vectors/fnv1a", test_hash_fnv1a);
  g_test_add_func ("/tinysync/hash/vectors/cell-hash", test_hash_cell);
  g_test_add_func ("/tinysync/hash/vectors/id-hash", test_hash_id);
  g_test_add_func ("/tinysync/hash/vectors/container-hash", test_hash_container);
  g_test_add_func ("/tinysync/hash/hand", test_hash_hand);
  g_test_add_func ("/tinysync/ids/random-id", test_random_id);
  g_test_add_func ("/tinysync/hlc/vectors/alphabet", test_hlc_alphabet);
  g_test_add_func ("/tinysync/hlc/vectors/client-ids", test_hlc_client_ids);
  g_test_add_func ("/tinysync/hlc/vectors/encode", test_hlc_encode);
  g_test_add_func ("/tinysync/hlc/vectors/decode", test_hlc_decode);
  g_test_add_func ("/tinysync/hlc/vectors/is-hlc", test_hlc_is_hlc);
  g_test_add_func ("/tinysync/hlc/vectors/clock-sequences", test_hlc_clock_sequences);
  g_test_add_func ("/tinysync/hlc/parse", test_hlc_parse);
  g_test_add_func ("/tinysync/hlc/order", test_hlc_order);
  g_test_add_func ("/tinysync/hlc/clock-rules", test_clock_rules);
  g_test_add_func ("/tinysync/hlc/clock-defaults", test_clock_defaults);

  return g_test_run ();
}
