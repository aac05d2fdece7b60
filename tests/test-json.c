/* test-json.c: unit tests of the JavaScript-exact JSON parser and writer
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ts-error.h"
#include "ts-json-private.h"

/* ---- Helpers ------------------------------------------------------------------ */

/* json-glib 1.6 rejects lone-surrogate escapes ("\ud800"), which some vector
 * files contain in informational members (every such string is also given
 * as hex). Replace each lone surrogate escape by "\ufffd" (same length) so
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

static char *
vector_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", name, NULL);
}

/* Loads a vector file with json-glib; NULL (and the test skipped) if it is
 * missing. */
static JsonParser *
load_vectors (const char *name)
{
  g_autofree char *path = vector_path (name);
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

static JsonArray *
vectors_array (JsonParser *parser,
               const char *member)
{
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));

  g_assert_true (json_object_has_member (root, member));
  return json_object_get_array_member (root, member);
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
 * surrogates as 3-byte sequences. Written independently of the library. */
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

static double
bits_to_double (const char *hex)
{
  guint64 bits = g_ascii_strtoull (hex, NULL, 16);
  double x;

  g_assert_cmpuint (strlen (hex), ==, 16);
  memcpy (&x, &bits, sizeof x);
  return x;
}

static guint64
double_bits (double x)
{
  guint64 bits;

  memcpy (&bits, &x, sizeof bits);
  return bits;
}

static char *
format (double x)
{
  char buf[64];
  gsize n;

  memset (buf, 'X', sizeof buf);
  n = ts_json_format_number (buf, x);
  g_assert_cmpuint (n, <, 32);
  g_assert_cmpint (buf[n], ==, '\0');
  g_assert_cmpuint (strlen (buf), ==, n);
  return g_strdup (buf);
}

static char *
write_string (const char *s,
              gsize       len)
{
  GString *out = g_string_new ("");

  ts_json_write_string (out, s, len);
  return g_string_free (out, FALSE);
}

static TsJsonDoc *
parse_ok (const char *text,
          gssize      len)
{
  g_autoptr(GError) error = NULL;
  TsJsonDoc *doc = ts_json_parse (text, len, &error);

  g_assert_no_error (error);
  g_assert_nonnull (doc);
  return doc;
}

/* Canonical JSON text of a JSON text (parse, write). */
static char *
canonical (const char *text)
{
  g_autoptr(TsJsonDoc) doc = parse_ok (text, -1);

  return ts_json_node_to_string (ts_json_doc_get_root (doc), NULL);
}

static void
assert_parse_fails (const char *text,
                    gssize      len,
                    gssize      offset)
{
  g_autoptr(GError) error = NULL;
  TsJsonDoc *doc = ts_json_parse (text, len, &error);

  if (doc != NULL)
    g_error ("accepted invalid JSON: %s", text);
  g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
  g_assert_nonnull (strstr (error->message, "byte"));
  if (offset >= 0)
    {
      g_autofree char *needle = g_strdup_printf ("byte %" G_GSSIZE_FORMAT ":", offset);

      if (strstr (error->message, needle) == NULL)
        g_error ("wrong offset for %s: %s (expected %s)", text, error->message, needle);
    }
}

/* ---- Vectors: numbers ------------------------------------------------------- */

static void
test_vectors_numbers (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("json.json");
  JsonArray *numbers;
  guint n;

  if (parser == NULL)
    return;
  numbers = vectors_array (parser, "numbers");
  n = json_array_get_length (numbers);
  g_assert_cmpuint (n, ==, 257);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (numbers, i);
      const char *bits = json_object_get_string_member (c, "bits");
      const char *json = json_object_get_string_member (c, "json");
      double x = bits_to_double (bits);
      g_autofree char *text = format (x);
      g_autoptr(GString) appended = g_string_new ("prefix:");
      g_autoptr(TsJsonDoc) doc = NULL;
      const TsJsonNode *root;
      double back;

      /* bits -> exact text */
      g_assert_cmpstr (text, ==, json);
      ts_json_write_number (appended, x);
      g_assert_cmpstr (appended->str + 7, ==, json);

      /* text -> the same bits (-0 is written "0", which reads as +0) */
      doc = parse_ok (json, -1);
      root = ts_json_doc_get_root (doc);
      g_assert_cmpint (root->type, ==, TS_JSON_NUMBER);
      back = root->u.num;
      g_assert_cmphex (double_bits (back), ==, x == 0 ? 0 : double_bits (x));
      g_assert_cmphex (double_bits (g_ascii_strtod (json, NULL)), ==, double_bits (back));
    }
}

/* ---- Vectors: strings ------------------------------------------------------- */

static void
test_vectors_strings (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("json.json");
  JsonArray *strings;
  guint n;

  if (parser == NULL)
    return;
  strings = vectors_array (parser, "strings");
  n = json_array_get_length (strings);
  g_assert_cmpuint (n, ==, 19);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (strings, i);
      g_autoptr(GString) wtf8 = utf16_hex_to_wtf8 (json_object_get_string_member (c, "utf16Hex"));
      g_autoptr(GBytes) expected = hex_to_bytes (json_object_get_string_member (c, "jsonUtf8Hex"));
      g_autofree char *written = write_string (wtf8->str, wtf8->len);
      gsize expected_len;
      const char *expected_data = g_bytes_get_data (expected, &expected_len);
      g_autoptr(TsJsonDoc) doc = NULL;
      g_autoptr(TsJsonDoc) doc2 = NULL;
      g_autofree char *obj_text = NULL;
      const TsJsonNode *root;

      g_assert_true (ts_wtf8_validate (wtf8->str, wtf8->len));

      /* write: exactly JSON.stringify's bytes */
      g_assert_cmpmem (written, strlen (written), expected_data, expected_len);
      g_assert_cmpstr (written, ==, json_object_get_string_member (c, "json"));
      g_assert_true (g_utf8_validate (written, -1, NULL));

      /* parse back: the same WTF-8 string */
      doc = parse_ok (expected_data, (gssize) expected_len);
      root = ts_json_doc_get_root (doc);
      g_assert_cmpint (root->type, ==, TS_JSON_STRING);
      g_assert_cmpmem (root->u.str, root->len, wtf8->str, wtf8->len);
      g_assert_cmpint (root->u.str[root->len], ==, '\0');

      /* the same as an object key */
      obj_text = g_strdup_printf ("{%s:%s}", written, written);
      doc2 = parse_ok (obj_text, -1);
      root = ts_json_doc_get_root (doc2);
      g_assert_cmpint (root->type, ==, TS_JSON_OBJECT);
      g_assert_cmpuint (root->len, ==, 1);
      g_assert_cmpmem (root->u.members[0].key, root->u.members[0].key_len, wtf8->str, wtf8->len);
      g_assert_nonnull (ts_json_object_get (doc2, root, wtf8->str, wtf8->len));
    }
}

/* ---- Vectors: objects ---------------------------------------------------------- */

static void
test_vectors_objects (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("json.json");
  JsonArray *objects;
  guint n;

  if (parser == NULL)
    return;
  objects = vectors_array (parser, "objects");
  n = json_array_get_length (objects);
  g_assert_cmpuint (n, ==, 6);

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (objects, i);
      JsonArray *insertion = json_object_get_array_member (c, "insertionOrder");
      JsonArray *key_order = json_object_get_array_member (c, "keyOrder");
      const char *json = json_object_get_string_member (c, "json");
      guint n_keys = json_array_get_length (insertion);
      g_autofree const char **keys = g_new0 (const char *, n_keys + 1);
      g_autofree const char **values = g_new0 (const char *, n_keys + 1);
      g_autofree guint32 *lens = g_new0 (guint32, n_keys + 1);
      g_autofree guint32 *order = NULL;
      g_autoptr(GString) out = g_string_new ("{");
      g_autoptr(GString) insertion_text = g_string_new ("{");
      g_autoptr(TsJsonDoc) doc = NULL;
      g_autofree char *rewritten = NULL;
      const TsJsonNode *root;

      g_assert_cmpuint (json_array_get_length (key_order), ==, n_keys);
      for (guint k = 0; k < n_keys; k++)
        {
          JsonArray *pair = json_array_get_array_element (insertion, k);

          keys[k] = json_array_get_string_element (pair, 0);
          values[k] = json_array_get_string_element (pair, 1);
          lens[k] = (guint32) strlen (keys[k]);
        }

      /* The writer helper gives keyOrder. */
      order = ts_json_property_order (keys, lens, n_keys);
      for (guint k = 0; k < n_keys; k++)
        {
          guint32 j = order != NULL ? order[k] : k;
          g_autofree char *value = canonical (values[j]);

          g_assert_cmpstr (keys[j], ==, json_array_get_string_element (key_order, k));
          if (k > 0)
            g_string_append_c (out, ',');
          ts_json_write_string (out, keys[j], lens[j]);
          g_string_append_c (out, ':');
          g_string_append (out, value);
        }
      g_string_append_c (out, '}');
      g_assert_cmpstr (out->str, ==, json);

      /* Parsing the object written in insertion order gives keyOrder too. */
      for (guint k = 0; k < n_keys; k++)
        {
          if (k > 0)
            g_string_append_c (insertion_text, ',');
          ts_json_write_string (insertion_text, keys[k], lens[k]);
          g_string_append_printf (insertion_text, " : %s ", values[k]);
        }
      g_string_append_c (insertion_text, '}');
      doc = parse_ok (insertion_text->str, (gssize) insertion_text->len);
      root = ts_json_doc_get_root (doc);
      g_assert_cmpint (root->type, ==, TS_JSON_OBJECT);
      g_assert_cmpuint (root->len, ==, n_keys);
      for (guint k = 0; k < n_keys; k++)
        g_assert_cmpstr (root->u.members[k].key, ==, json_array_get_string_element (key_order, k));
      rewritten = ts_json_node_to_string (root, NULL);
      g_assert_cmpstr (rewritten, ==, json);
    }
}

/* ---- Vectors: undefined on the wire ---------------------------------------------- */

static guint
count_fffc_strings (const TsJsonNode *node)
{
  guint n = 0;

  switch (node->type)
    {
    case TS_JSON_STRING:
      return node->len == 3 && memcmp (node->u.str, "\xEF\xBF\xBC", 3) == 0;
    case TS_JSON_ARRAY:
      for (guint32 i = 0; i < node->len; i++)
        n += count_fffc_strings (&node->u.items[i]);
      return n;
    case TS_JSON_OBJECT:
      for (guint32 i = 0; i < node->len; i++)
        n += count_fffc_strings (&node->u.members[i].value);
      return n;
    default:
      return 0;
    }
}

static void
test_vectors_wire_undefined (void)
{
  g_autoptr(JsonParser) parser = load_vectors ("json.json");
  g_autofree char *marker = write_string ("\xEF\xBF\xBC", 3);
  JsonArray *cases;
  guint n;

  if (parser == NULL)
    return;
  cases = vectors_array (parser, "wireUndefined");
  n = json_array_get_length (cases);
  g_assert_cmpuint (n, ==, 3);

  /* The marker string is written as the raw character, never escaped. */
  g_assert_cmpstr (marker, ==, "\"\xEF\xBF\xBC\"");

  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *wire = json_object_get_string_member (c, "wire");
      const char *plain = json_object_get_string_member (c, "jsonStringify");
      g_autoptr(TsJsonDoc) wire_doc = parse_ok (wire, -1);
      g_autoptr(TsJsonDoc) plain_doc = parse_ok (plain, -1);
      g_autofree char *wire2 = ts_json_node_to_string (ts_json_doc_get_root (wire_doc), NULL);
      g_autofree char *plain2 = ts_json_node_to_string (ts_json_doc_get_root (plain_doc), NULL);

      /* Both texts are canonical: parse + write reproduces them. */
      g_assert_cmpstr (wire2, ==, wire);
      g_assert_cmpstr (plain2, ==, plain);
      /* The wire form carries one marker string where the plain form lost
       * the undefined, which the plain form never has. */
      g_assert_cmpuint (count_fffc_strings (ts_json_doc_get_root (wire_doc)), ==, 1);
      g_assert_cmpuint (count_fffc_strings (ts_json_doc_get_root (plain_doc)), ==, 0);
    }
}

/* ---- Vectors parsed by our own parser ------------------------------------------- */

/* hash.json contains raw lone-surrogate escapes ("\ud800") and "\u0000":
 * every fnv1a "string" must decode to the WTF-8 of its utf16Hex. */
static void
test_vectors_hash_file_strings (void)
{
  g_autofree char *path = vector_path ("hash.json");
  g_autofree char *text = NULL;
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autoptr(GError) error = NULL;
  const TsJsonNode *root, *fnv;
  gsize len;
  guint lone = 0, nul = 0;

  if (!g_file_get_contents (path, &text, &len, NULL))
    {
      g_test_skip ("hash.json missing");
      return;
    }
  doc = ts_json_parse (text, (gssize) len, &error);
  g_assert_no_error (error);
  root = ts_json_doc_get_root (doc);
  fnv = ts_json_object_get (doc, root, "fnv1a", 5);
  g_assert_nonnull (fnv);
  g_assert_cmpint (fnv->type, ==, TS_JSON_ARRAY);
  g_assert_cmpuint (fnv->len, ==, 43);

  for (guint32 i = 0; i < fnv->len; i++)
    {
      const TsJsonNode *c = &fnv->u.items[i];
      const TsJsonNode *str = ts_json_object_get (doc, c, "string", 6);
      const TsJsonNode *hex = ts_json_object_get (doc, c, "utf16Hex", 8);
      g_autoptr(GString) wtf8 = NULL;

      g_assert_nonnull (str);
      g_assert_nonnull (hex);
      wtf8 = utf16_hex_to_wtf8 (hex->u.str);
      g_assert_cmpmem (str->u.str, str->len, wtf8->str, wtf8->len);
      if (!g_utf8_validate_len (str->u.str, str->len, NULL))
        lone++;
      if (memchr (str->u.str, 0, str->len) != NULL)
        nul++;
    }
  /* the file really exercises both */
  g_assert_cmpuint (lone, >=, 2);
  g_assert_cmpuint (nul, >=, 1);
}

/* Every vector file: parse, write, parse, write gives the same text. */
static void
test_vectors_files_round_trip (void)
{
  const char *files[] = {
    "json.json", "hash.json", "hlc.json", "store-scenarios.json",
    "wire-transcript.json", "invalid-messages.json",
  };
  guint done = 0;

  for (gsize f = 0; f < G_N_ELEMENTS (files); f++)
    {
      g_autofree char *path = vector_path (files[f]);
      g_autofree char *text = NULL;
      g_autofree char *once = NULL, *twice = NULL;
      g_autoptr(TsJsonDoc) doc = NULL, doc2 = NULL;
      gsize len, once_len, twice_len;

      if (!g_file_get_contents (path, &text, &len, NULL))
        continue;
      doc = parse_ok (text, (gssize) len);
      once = ts_json_node_to_string (ts_json_doc_get_root (doc), &once_len);
      doc2 = parse_ok (once, (gssize) once_len);
      twice = ts_json_node_to_string (ts_json_doc_get_root (doc2), &twice_len);
      g_assert_cmpmem (once, once_len, twice, twice_len);
      done++;
    }
  if (done == 0)
    g_test_skip ("no vector files");
}

/* ---- Parser: rejects ------------------------------------------------------------------ */

static void
test_parse_rejects (void)
{
  static const struct {
    const char *text;
    gssize      offset;   /* -1: not checked */
  } bad[] = {
    { "", 0 },
    { "   ", 3 },
    { "// comment\n1", 0 },
    { "/* comment */ 1", 0 },
    { "1 // comment", 2 },
    { "[1,]", 3 },
    { "[1,2,,3]", 5 },
    { "[,1]", 1 },
    { "{\"a\":1,}", 7 },
    { "{,}", 1 },
    { "01", 0 },
    { "-01", 1 },
    { "00", 0 },
    { "[012]", 1 },
    { "+1", 0 },
    { ".5", 0 },
    { "-.5", 1 },
    { "1.", 2 },
    { "1.e5", 2 },
    { "1e", 2 },
    { "1e+", 3 },
    { "1E-", 3 },
    { "-", 1 },
    { "- 1", 1 },
    { "NaN", 0 },
    { "-NaN", 1 },
    { "Infinity", 0 },
    { "-Infinity", 1 },
    { "0x10", 1 },
    { "1_000", 1 },
    { "'a'", 0 },
    { "{'a':1}", 1 },
    { "[\"a\",'b']", 5 },
    { "\"a\tb\"", 2 },
    { "\"a\nb\"", 2 },
    { "\"\x01\"", 1 },
    { "\"\x1f\"", 1 },
    { "\"\\\x01\"", 2 },
    { "\"\xff\"", 1 },
    { "\"\x80\"", 1 },
    { "\"\xc0\xaf\"", 1 },              /* overlong '/' */
    { "\"\xe0\x80\xaf\"", 1 },          /* overlong */
    { "\"\xed\xa0\x80\"", 1 },          /* raw surrogate: not UTF-8 */
    { "\"\xf4\x90\x80\x80\"", 1 },      /* above U+10FFFF */
    { "\"\xc3\"", 1 },                  /* truncated */
    { "\"\xe6\x97\"", 1 },
    { "\xc3\xa9", 0 },
    { "\xef\xbb\xbf" "1", 0 },         /* BOM */
    { "\xc2\xa0" "1", 0 },             /* NBSP is not JSON whitespace */
    { "\f1", 0 },
    { "\v1", 0 },
    { "\"abc", 0 },
    { "\"abc\\\"", 0 },
    { "\"abc\\", 0 },
    { "[\"abc", 1 },
    { "[1,2", 4 },
    { "[1 2]", 3 },
    { "{\"a\"", 4 },
    { "{\"a\" 1}", 5 },
    { "{\"a\":}", 5 },
    { "{\"a\":1 \"b\":2}", 7 },
    { "{a:1}", 1 },
    { "{1:1}", 1 },
    { "{null:1}", 1 },
    { "1 2", 2 },
    { "[]x", 2 },
    { "{} {}", 3 },
    { "nul", 3 },
    { "tru", 3 },
    { "fals", 4 },
    { "nulL", 3 },
    { "True", 0 },
    { "None", 0 },
    { "undefined", 0 },
    { "\"\\x41\"", 1 },
    { "\"\\u12\"", 1 },
    { "\"\\u12g4\"", 1 },
    { "\"\\U0041\"", 1 },
    { "\"\\'\"", 1 },
    { "\"\\a\"", 1 },
    { "\"\\0\"", 1 },
    { "[1]]", 3 },
    { "]", 0 },
    { "}", 0 },
    { ",", 0 },
    { ":", 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_parse_fails (bad[i].text, -1, bad[i].offset);

  /* NUL bytes are not whitespace, and not allowed raw in strings */
  assert_parse_fails ("[1]\0", 4, 3);
  assert_parse_fails ("\"a\0b\"", 5, 2);
  assert_parse_fails ("\0", 1, 0);
  /* the length bounds the text: nothing beyond it is read */
  assert_parse_fails ("[1,2]", 4, 4);
  assert_parse_fails ("\"abc\"", 4, 0);
  assert_parse_fails ("true", 3, 3);
  assert_parse_fails ("1e5", 2, 2);
  assert_parse_fails ("-1", 1, 1);
}

static char *
nested (guint depth,
        const char *open,
        const char *inner,
        const char *close)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < depth; i++)
    g_string_append (s, open);
  g_string_append (s, inner);
  for (guint i = 0; i < depth; i++)
    g_string_append (s, close);
  return g_string_free (s, FALSE);
}

static void
test_parse_depth (void)
{
  g_autofree char *a512 = nested (TS_JSON_MAX_DEPTH, "[", "1", "]");
  g_autofree char *a513 = nested (TS_JSON_MAX_DEPTH + 1, "[", "1", "]");
  g_autofree char *e513 = nested (TS_JSON_MAX_DEPTH + 1, "[", "", "]");
  g_autofree char *o512 = nested (TS_JSON_MAX_DEPTH, "{\"a\":", "null", "}");
  g_autofree char *o513 = nested (TS_JSON_MAX_DEPTH + 1, "{\"a\":", "null", "}");
  g_autofree char *m513 = nested ((TS_JSON_MAX_DEPTH + 1) / 2, "[{\"k\":", "[]", "}]");
  g_autofree char *huge = nested (200000, "[", "", "]");
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autoptr(TsJsonDoc) doc2 = NULL;
  g_autofree char *text = NULL;
  const TsJsonNode *node;
  guint depth = 0;

  /* 512 levels are fine and survive a write */
  doc = parse_ok (a512, -1);
  text = ts_json_node_to_string (ts_json_doc_get_root (doc), NULL);
  g_assert_cmpstr (text, ==, a512);
  for (node = ts_json_doc_get_root (doc); node->type == TS_JSON_ARRAY; node = &node->u.items[0])
    {
      g_assert_cmpuint (node->len, ==, 1);
      depth++;
    }
  g_assert_cmpuint (depth, ==, TS_JSON_MAX_DEPTH);
  g_assert_cmpfloat (node->u.num, ==, 1);
  doc2 = parse_ok (o512, -1);

  /* 513 are not (the offset is the 513th bracket) */
  assert_parse_fails (a513, -1, TS_JSON_MAX_DEPTH);
  assert_parse_fails (e513, -1, TS_JSON_MAX_DEPTH);
  assert_parse_fails (o513, -1, 5 * TS_JSON_MAX_DEPTH);
  g_assert_cmpuint (strlen (m513), >, 0);
  if ((TS_JSON_MAX_DEPTH + 1) % 2 == 1)
    {
      /* 256 x "[{" plus the inner "[]" = 514 levels */
      assert_parse_fails (m513, -1, -1);
    }
  /* deep input does not overflow the stack */
  assert_parse_fails (huge, -1, TS_JSON_MAX_DEPTH);
}

/* ---- Parser: accepts --------------------------------------------------------------- */

static const TsJsonNode *
root_of (TsJsonDoc *doc)
{
  return ts_json_doc_get_root (doc);
}

static void
assert_string_doc (const char *text,
                   const char *expected,
                   gsize       expected_len)
{
  g_autoptr(TsJsonDoc) doc = parse_ok (text, -1);
  const TsJsonNode *root = root_of (doc);

  g_assert_cmpint (root->type, ==, TS_JSON_STRING);
  g_assert_cmpmem (root->u.str, root->len, expected, expected_len);
  g_assert_cmpint (root->u.str[root->len], ==, '\0');
}

static void
test_parse_strings (void)
{
  /* escapes */
  assert_string_doc ("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
  assert_string_doc ("\"\\u0041\\u00e9\\u00E9\\u20AC\"", "A\xc3\xa9\xc3\xa9\xe2\x82\xac", 8);
  /* lone surrogates are kept (WTF-8) */
  assert_string_doc ("\"\\ud800\"", "\xed\xa0\x80", 3);
  assert_string_doc ("\"\\uDFFF\"", "\xed\xbf\xbf", 3);
  assert_string_doc ("\"a\\ud83db\"", "a\xed\xa0\xbd" "b", 5);
  assert_string_doc ("\"\\ude00\\ud83d\"", "\xed\xb8\x80\xed\xa0\xbd", 6);
  assert_string_doc ("\"\\ud800\\u0041\"", "\xed\xa0\x80" "A", 4);
  assert_string_doc ("\"\\ud800\\ud800\"", "\xed\xa0\x80\xed\xa0\x80", 6);
  assert_string_doc ("\"\\ud800\\\\udc00\"", "\xed\xa0\x80\\udc00", 9);
  assert_string_doc ("\"\\ud83d\"", "\xed\xa0\xbd", 3);
  /* a valid pair of escapes is combined, in any case */
  assert_string_doc ("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
  assert_string_doc ("\"\\uD83D\\uDE00x\"", "\xf0\x9f\x98\x80x", 5);
  assert_string_doc ("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
  /* NUL inside strings */
  assert_string_doc ("\"a\\u0000b\"", "a\0b", 3);
  assert_string_doc ("\"\\u0000\"", "\0", 1);
  /* raw UTF-8, up to 4 bytes; DEL and C1 are fine raw */
  assert_string_doc ("\"\xf0\x9f\x98\x80 \xe6\x97\xa5 \xc3\xa9 \x7f \xc2\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"",
                     "\xf0\x9f\x98\x80 \xe6\x97\xa5 \xc3\xa9 \x7f \xc2\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf", 25);
  assert_string_doc ("\"\"", "", 0);
  /* long strings take the 8-bytes-at-a-time path; specials at every offset */
  for (guint pos = 0; pos < 40; pos++)
    {
      g_autoptr(GString) text = g_string_new ("\"");
      g_autoptr(GString) expected = g_string_new (NULL);

      for (guint i = 0; i < 40; i++)
        {
          if (i == pos)
            {
              g_string_append (text, "\\n\xc3\xa9");
              g_string_append (expected, "\n\xc3\xa9");
            }
          g_string_append_c (text, (char) ('a' + i % 26));
          g_string_append_c (expected, (char) ('a' + i % 26));
        }
      g_string_append_c (text, '"');
      assert_string_doc (text->str, expected->str, expected->len);
      /* a control character at that offset is rejected there */
      text->str[pos + 1] = '\x02';
      assert_parse_fails (text->str, (gssize) text->len, pos + 1);
    }
}

static void
test_parse_numbers (void)
{
  static const struct {
    const char *text;
    double      value;
  } cases[] = {
    { "0", 0.0 },
    { "1", 1.0 },
    { "-1", -1.0 },
    { "1.0", 1.0 },
    { "1e0", 1.0 },
    { "1E+0", 1.0 },
    { "10e-1", 1.0 },
    { "0.1", 0.1 },
    { "1.5", 1.5 },
    { "-1.5e-10", -1.5e-10 },
    { "123.456", 123.456 },
    { "1e21", 1e21 },
    { "1e+21", 1e21 },
    { "1e22", 1e22 },
    { "1e23", 1e23 },
    { "0.000001", 1e-6 },
    { "1e-7", 1e-7 },
    { "5e-324", 5e-324 },
    { "2.2250738585072014e-308", 2.2250738585072014e-308 },
    { "1.7976931348623157e308", 1.7976931348623157e308 },
    { "9007199254740992", 9007199254740992.0 },
    { "9007199254740993", 9007199254740992.0 },      /* ties to even */
    { "9007199254740995", 9007199254740996.0 },
    { "9223372036854775807", 9223372036854775808.0 },
    { "9223372036854775808", 9223372036854775808.0 },
    { "18446744073709551616", 18446744073709551616.0 },
    { "123456789012345680000", 123456789012345680000.0 },
    { "100000000000000000000000000000", 1e29 },
    { "0.30000000000000004", 0.30000000000000004 },
    { "3.141592653589793", 3.141592653589793 },
    { "1e-400", 0.0 },
    { "0e99999999999", 0.0 },
    { "1e-99999999999", 0.0 },
    { "0.0000000000000000000000000000000000000000001", 1e-43 },
  };
  g_autoptr(TsJsonDoc) inf = parse_ok ("[1e400,-1e400,1E999999999999999]", -1);
  g_autoptr(TsJsonDoc) neg0 = parse_ok ("-0", -1);
  g_autoptr(TsJsonDoc) neg0b = parse_ok ("-0.0e5", -1);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TsJsonDoc) doc = parse_ok (cases[i].text, -1);
      const TsJsonNode *root = root_of (doc);

      g_assert_cmpint (root->type, ==, TS_JSON_NUMBER);
      g_assert_cmphex (double_bits (root->u.num), ==, double_bits (cases[i].value));
    }

  /* overflow is kept as infinity */
  g_assert_cmpuint (root_of (inf)->len, ==, 3);
  g_assert_true (isinf (root_of (inf)->u.items[0].u.num) && root_of (inf)->u.items[0].u.num > 0);
  g_assert_true (isinf (root_of (inf)->u.items[1].u.num) && root_of (inf)->u.items[1].u.num < 0);
  g_assert_true (isinf (root_of (inf)->u.items[2].u.num));

  g_assert_true (root_of (neg0)->u.num == 0 && signbit (root_of (neg0)->u.num));
  g_assert_true (root_of (neg0b)->u.num == 0 && signbit (root_of (neg0b)->u.num));

  /* a number at the very end of a buffer that is not NUL-terminated */
  {
    char buf[3] = { '1', '2', '3' };
    g_autoptr(TsJsonDoc) doc = parse_ok (buf, 2);
    g_autofree char *digits = g_strnfill (400, '7');
    g_autofree char *big = g_strdup_printf ("%s.5e-390", digits);
    g_autoptr(TsJsonDoc) doc2 = parse_ok (big, (gssize) strlen (big));

    g_assert_cmpfloat (root_of (doc)->u.num, ==, 12);
    g_assert_cmphex (double_bits (root_of (doc2)->u.num), ==, double_bits (g_ascii_strtod (big, NULL)));
  }
}

/* Every short decimal: the parser's fast paths agree with g_ascii_strtod. */
static void
test_parse_numbers_vs_strtod (void)
{
  GRand *rand = g_rand_new_with_seed (20240309);
  GString *text = g_string_new (NULL);
  guint n = g_test_slow () ? 1000000 : 200000;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TsJsonDoc) doc = NULL;
      int digits = g_rand_int_range (rand, 1, 20);
      int point = g_rand_int_range (rand, 0, digits + 1);
      int form = g_rand_int_range (rand, 0, 4);
      const TsJsonNode *root;

      g_string_truncate (text, 0);
      if (g_rand_boolean (rand))
        g_string_append_c (text, '-');
      for (int d = 0; d < digits; d++)
        {
          int digit = g_rand_int_range (rand, 0, 10);

          if (d == point && d > 0)
            g_string_append_c (text, '.');
          if (d == 0 && digit == 0 && (point > 1 || (point == 0 && digits > 1)))
            digit = 1;   /* no leading zero */
          g_string_append_c (text, (char) ('0' + digit));
        }
      if (form >= 2)
        g_string_append_printf (text, "%c%s%d", form == 2 ? 'e' : 'E',
                                g_rand_boolean (rand) ? "-" : (g_rand_boolean (rand) ? "+" : ""),
                                g_rand_int_range (rand, 0, form == 2 ? 30 : 330));

      doc = parse_ok (text->str, (gssize) text->len);
      root = root_of (doc);
      g_assert_cmpint (root->type, ==, TS_JSON_NUMBER);
      if (double_bits (root->u.num) != double_bits (g_ascii_strtod (text->str, NULL)))
        g_error ("%s parsed as %.17g, strtod says %.17g", text->str,
                 root->u.num, g_ascii_strtod (text->str, NULL));
    }
  g_string_free (text, TRUE);
  g_rand_free (rand);
}

/* Random canonical JSON: strings with escapes and odd lengths, numbers,
 * nested containers, object keys unique and not integer-like. */
static void
random_json (GRand   *rand,
             GString *out,
             int      depth)
{
  int kind = g_rand_int_range (rand, 0, depth > 4 ? 4 : 7);

  switch (kind)
    {
    case 0:
    case 1:
      {
        char buf[64];
        int len = g_rand_int_range (rand, 0, 40);

        for (int i = 0; i < len; i++)
          {
            int r = g_rand_int_range (rand, 0, 20);

            buf[i] = r == 0 ? '"' : r == 1 ? '\\' : r == 2 ? '\n' : (char) g_rand_int_range (rand, 'a', 'z' + 1);
          }
        ts_json_write_string (out, buf, (gsize) len);
        break;
      }
    case 2:
      ts_json_write_number (out, g_rand_double_range (rand, -1e6, 1e6));
      break;
    case 3:
      g_string_append (out, g_rand_boolean (rand) ? "true" : "null");
      break;
    case 4:
    case 5:
      {
        int n = g_rand_int_range (rand, 0, 12);

        g_string_append_c (out, '[');
        for (int i = 0; i < n; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            random_json (rand, out, depth + 1);
          }
        g_string_append_c (out, ']');
        break;
      }
    default:
      {
        int n = g_rand_int_range (rand, 0, 30);

        g_string_append_c (out, '{');
        for (int i = 0; i < n; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            g_string_append_printf (out, "\"k%d_%.*s\":", i, g_rand_int_range (rand, 0, 9), "xxxxxxxxx");
            random_json (rand, out, depth + 1);
          }
        g_string_append_c (out, '}');
        break;
      }
    }
}

/* Documents of many sizes: every arena chunk boundary is crossed with
 * strings of odd lengths followed by aligned nodes. */
static void
test_parse_arena_stress (void)
{
  GRand *rand = g_rand_new_with_seed (5);
  g_autoptr(GString) text = g_string_new (NULL);
  guint n = 0;

  for (guint round = 0; round < 600; round++)
    {
      g_autoptr(TsJsonDoc) doc = NULL;
      g_autofree char *again = NULL;
      gsize len = 0;
      gsize target = (gsize) g_rand_int_range (rand, 1, 100000);

      g_string_assign (text, "[");
      while (text->len < target)
        {
          if (text->len > 1)
            g_string_append_c (text, ',');
          random_json (rand, text, 0);
        }
      g_string_append_c (text, ']');

      doc = parse_ok (text->str, (gssize) text->len);
      again = ts_json_node_to_string (root_of (doc), &len);
      g_assert_cmpmem (again, len, text->str, text->len);
      n++;
    }
  g_assert_cmpuint (n, ==, 600);
  g_rand_free (rand);
}

static void
test_parse_structure (void)
{
  g_autoptr(TsJsonDoc) doc = parse_ok (" \t\r\n{ \"a\" : [ 1 , true , false , null , \"s\" , { } , [ ] ] ,\n\"b\":{\"c\":\"d\"} } \n", -1);
  const TsJsonNode *root = root_of (doc);
  const TsJsonNode *a, *b, *c;
  g_autofree char *text = NULL;
  gsize len = 0;

  g_assert_cmpint (root->type, ==, TS_JSON_OBJECT);
  g_assert_cmpuint (root->len, ==, 2);
  a = ts_json_object_get (doc, root, "a", 1);
  g_assert_nonnull (a);
  g_assert_cmpint (a->type, ==, TS_JSON_ARRAY);
  g_assert_cmpuint (a->len, ==, 7);
  g_assert_cmpint (a->u.items[0].type, ==, TS_JSON_NUMBER);
  g_assert_cmpint (a->u.items[1].type, ==, TS_JSON_TRUE);
  g_assert_cmpint (a->u.items[2].type, ==, TS_JSON_FALSE);
  g_assert_cmpint (a->u.items[3].type, ==, TS_JSON_NULL);
  g_assert_cmpint (a->u.items[4].type, ==, TS_JSON_STRING);
  g_assert_cmpint (a->u.items[5].type, ==, TS_JSON_OBJECT);
  g_assert_cmpuint (a->u.items[5].len, ==, 0);
  g_assert_cmpint (a->u.items[6].type, ==, TS_JSON_ARRAY);
  g_assert_cmpuint (a->u.items[6].len, ==, 0);
  b = ts_json_object_get (doc, root, "b", 1);
  c = ts_json_object_get (doc, b, "c", 1);
  g_assert_cmpstr (c->u.str, ==, "d");
  g_assert_null (ts_json_object_get (doc, root, "c", 1));
  g_assert_null (ts_json_object_get (doc, a, "a", 1));
  g_assert_null (ts_json_object_get (doc, NULL, "a", 1));

  text = ts_json_node_to_string (root, &len);
  g_assert_cmpstr (text, ==, "{\"a\":[1,true,false,null,\"s\",{},[]],\"b\":{\"c\":\"d\"}}");
  g_assert_cmpuint (len, ==, strlen (text));

  /* scalars at top level */
  {
    g_autoptr(TsJsonDoc) t = parse_ok ("true", -1);
    g_autoptr(TsJsonDoc) f = parse_ok (" false ", -1);
    g_autoptr(TsJsonDoc) n = parse_ok ("null", -1);

    g_assert_cmpint (root_of (t)->type, ==, TS_JSON_TRUE);
    g_assert_cmpint (root_of (f)->type, ==, TS_JSON_FALSE);
    g_assert_cmpint (root_of (n)->type, ==, TS_JSON_NULL);
  }
}

static void
test_parse_duplicates_and_order (void)
{
  g_autoptr(TsJsonDoc) doc = parse_ok ("{\"a\":1,\"b\":2,\"a\":3}", -1);
  g_autoptr(TsJsonDoc) doc2 = parse_ok ("{\"b\":1,\"10\":2,\"a\":3,\"2\":4,\"b\":5,\"10\":6,\"01\":7,\"0\":8}", -1);
  g_autoptr(TsJsonDoc) doc3 = parse_ok ("{\"4294967295\":1,\"4294967294\":2,\"-0\":3,\"1.0\":4,\" 1\":5}", -1);
  g_autoptr(GString) big = g_string_new ("{");
  g_autoptr(TsJsonDoc) doc4 = NULL;
  g_autofree char *t1 = ts_json_node_to_string (root_of (doc), NULL);
  g_autofree char *t2 = ts_json_node_to_string (root_of (doc2), NULL);
  g_autofree char *t3 = ts_json_node_to_string (root_of (doc3), NULL);
  const TsJsonNode *root;

  g_assert_cmpstr (t1, ==, "{\"a\":3,\"b\":2}");
  g_assert_cmpstr (t2, ==, "{\"0\":8,\"2\":4,\"10\":6,\"b\":5,\"a\":3,\"01\":7}");
  g_assert_cmpstr (t3, ==, "{\"4294967294\":2,\"4294967295\":1,\"-0\":3,\"1.0\":4,\" 1\":5}");

  /* A big object (hash-table dedup): 300 keys, each one written three times
   * with different values, integer-like keys descending. */
  for (int round = 0; round < 3; round++)
    for (int i = 299; i >= 0; i--)
      g_string_append_printf (big, "%s\"%s%d\":%d", big->len > 1 ? "," : "",
                              i % 2 ? "k" : "", i, round * 1000 + i);
  g_string_append_c (big, '}');
  doc4 = parse_ok (big->str, (gssize) big->len);
  root = root_of (doc4);
  g_assert_cmpuint (root->len, ==, 300);
  /* 150 integer keys ascending first, then the k-keys in first-insertion order */
  for (guint i = 0; i < 150; i++)
    {
      char key[16];

      g_snprintf (key, sizeof key, "%u", 2 * i);
      g_assert_cmpstr (root->u.members[i].key, ==, key);
      g_assert_cmpfloat (root->u.members[i].value.u.num, ==, 2000 + 2 * i);
      g_snprintf (key, sizeof key, "k%u", 299 - 2 * i);
      g_assert_cmpstr (root->u.members[150 + i].key, ==, key);
      g_assert_cmpfloat (root->u.members[150 + i].value.u.num, ==, 2000 + 299 - 2 * i);
    }
}

static void
test_object_get (void)
{
  g_autoptr(GString) text = g_string_new ("{");
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autoptr(TsJsonDoc) small = parse_ok ("{\"\":1,\"a\\u0000b\":2,\"a\":3}", -1);
  const TsJsonNode *root;

  g_assert_cmpfloat (ts_json_object_get (small, root_of (small), "", 0)->u.num, ==, 1);
  g_assert_cmpfloat (ts_json_object_get (small, root_of (small), "a\0b", 3)->u.num, ==, 2);
  g_assert_cmpfloat (ts_json_object_get (small, root_of (small), "a", 1)->u.num, ==, 3);
  g_assert_null (ts_json_object_get (small, root_of (small), "a\0", 2));
  g_assert_null (ts_json_object_get (small, root_of (small), "b", 1));

  for (guint n = 0; n <= 2000; n = n < 40 ? n + 1 : n * 2)
    {
      g_autoptr(TsJsonDoc) d = NULL;

      g_string_assign (text, "{");
      for (guint i = 0; i < n; i++)
        g_string_append_printf (text, "%s\"key-%u\":%u", i ? "," : "", i, i);
      g_string_append (text, ",\"\":-1,\"x\\u0000y\":-2}");
      if (n == 0)
        g_string_erase (text, 1, 1);
      d = parse_ok (text->str, (gssize) text->len);
      root = root_of (d);
      g_assert_cmpuint (root->len, ==, n + 2);
      /* twice: the second round uses the lazily built index */
      for (int round = 0; round < 2; round++)
        {
          for (guint i = 0; i < n; i++)
            {
              char key[32];
              gsize len = (gsize) g_snprintf (key, sizeof key, "key-%u", i);
              const TsJsonNode *v = ts_json_object_get (d, root, key, len);

              g_assert_nonnull (v);
              g_assert_cmpfloat (v->u.num, ==, i);
              key[len] = 'x';
              g_assert_null (ts_json_object_get (d, root, key, len + 1));
              if (i < 10)
                g_assert_null (ts_json_object_get (d, root, key, len - 1));
            }
          g_assert_cmpfloat (ts_json_object_get (d, root, "", 0)->u.num, ==, -1);
          g_assert_cmpfloat (ts_json_object_get (d, root, "x\0y", 3)->u.num, ==, -2);
          g_assert_null (ts_json_object_get (d, root, "x", 1));
          g_assert_null (ts_json_object_get (d, root, "key-", 4));
        }
    }

  /* an object without a document works too (linear) */
  doc = parse_ok ("[{\"a\":1}]", -1);
  g_assert_cmpfloat (ts_json_object_get (NULL, &root_of (doc)->u.items[0], "a", 1)->u.num, ==, 1);
}

static void
test_is_array_index (void)
{
  static const struct {
    const char *key;
    gboolean    ok;
    guint32     index;
  } cases[] = {
    { "0", TRUE, 0 },
    { "7", TRUE, 7 },
    { "10", TRUE, 10 },
    { "4294967294", TRUE, 4294967294u },
    { "4294967295", FALSE, 0 },
    { "4294967296", FALSE, 0 },
    { "9999999999", FALSE, 0 },
    { "10000000000", FALSE, 0 },
    { "01", FALSE, 0 },
    { "00", FALSE, 0 },
    { "-1", FALSE, 0 },
    { "-0", FALSE, 0 },
    { "+1", FALSE, 0 },
    { "1.5", FALSE, 0 },
    { "1e3", FALSE, 0 },
    { " 1", FALSE, 0 },
    { "1 ", FALSE, 0 },
    { "", FALSE, 0 },
    { "a", FALSE, 0 },
    { "١", FALSE, 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint32 index = 12345;
      gboolean ok = ts_json_is_array_index (cases[i].key, strlen (cases[i].key), &index);

      g_assert_cmpint (ok, ==, cases[i].ok);
      if (ok)
        g_assert_cmpuint (index, ==, cases[i].index);
      g_assert_cmpint (ts_json_is_array_index (cases[i].key, strlen (cases[i].key), NULL), ==, ok);
    }
  /* the length bounds the key */
  g_assert_true (ts_json_is_array_index ("12x", 2, NULL));
  g_assert_false (ts_json_is_array_index ("1\0", 2, NULL));
}

static void
test_property_order (void)
{
  const char *none[] = { "b", "a", "01", "-1" };
  const char *sorted[] = { "0", "1", "9", "10", "b", "a" };
  const char *mixed[] = { "b", "2", "a", "1", "10", "9" };
  const char *late[] = { "0", "a", "1" };
  const char *desc[] = { "2", "1" };
  guint32 lens[6];
  g_autofree guint32 *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL;

  g_assert_null (ts_json_property_order (none, NULL, 4));
  g_assert_null (ts_json_property_order (sorted, NULL, 6));
  g_assert_null (ts_json_property_order (NULL, NULL, 0));

  for (int i = 0; i < 6; i++)
    lens[i] = (guint32) strlen (mixed[i]);
  o1 = ts_json_property_order (mixed, lens, 6);
  g_assert_nonnull (o1);
  g_assert_cmpuint (o1[0], ==, 3);
  g_assert_cmpuint (o1[1], ==, 1);
  g_assert_cmpuint (o1[2], ==, 5);
  g_assert_cmpuint (o1[3], ==, 4);
  g_assert_cmpuint (o1[4], ==, 0);
  g_assert_cmpuint (o1[5], ==, 2);

  o2 = ts_json_property_order (late, NULL, 3);
  g_assert_nonnull (o2);
  g_assert_cmpuint (o2[0], ==, 0);
  g_assert_cmpuint (o2[1], ==, 2);
  g_assert_cmpuint (o2[2], ==, 1);

  o3 = ts_json_property_order (desc, NULL, 2);
  g_assert_nonnull (o3);
  g_assert_cmpuint (o3[0], ==, 1);
  g_assert_cmpuint (o3[1], ==, 0);

  /* key_lens bound the keys: "1x" with length 1 is "1" */
  {
    const char *k[] = { "a", "1x" };
    guint32 l[] = { 1, 1 };

    o4 = ts_json_property_order (k, l, 2);
    g_assert_nonnull (o4);
    g_assert_cmpuint (o4[0], ==, 1);
    g_assert_cmpuint (o4[1], ==, 0);
  }
}

/* ---- Writer ------------------------------------------------------------------------- */

static void
test_write_numbers (void)
{
  static const struct {
    double      x;
    const char *text;
  } cases[] = {
    { 0.0, "0" },
    { -0.0, "0" },
    { 1.5, "1.5" },
    { -1.5, "-1.5" },
    { 0.1 + 0.2, "0.30000000000000004" },
    { 1e20, "100000000000000000000" },
    { 1e21, "1e+21" },
    { 123456789012345680000.0, "123456789012345680000" },
    { 1.2345678901234568e21, "1.2345678901234568e+21" },
    { 1e-6, "0.000001" },
    { 1.5e-6, "0.0000015" },
    { 1e-7, "1e-7" },
    { 9.9e-7, "9.9e-7" },
    { 1.2345e-7, "1.2345e-7" },
    { -1.5e-10, "-1.5e-10" },
    { 5e-324, "5e-324" },
    { 9007199254740992.0, "9007199254740992" },
    { 9007199254740991.0, "9007199254740991" },
    { -9007199254740991.0, "-9007199254740991" },
    { 1.7976931348623157e308, "1.7976931348623157e+308" },
    { 18446744073709551616.0, "18446744073709552000" },
    { 4294967295.0, "4294967295" },
    { 100, "100" },
    { 1e100, "1e+100" },
    { 1.5e300, "1.5e+300" },
    { 123.456, "123.456" },
    { 0.5, "0.5" },
    { 0.001, "0.001" },
    { 1e-5, "0.00001" },
    { 2e-7, "2e-7" },
    { 1.0 / 3.0, "0.3333333333333333" },
    { 2.0 / 3.0, "0.6666666666666666" },
    { 5e-7, "5e-7" },
    { 999999999999999.9, "999999999999999.9" },
    { 0.000001234, "0.000001234" },
    { 1e15 + 0.5, "1000000000000000.5" },
    { 4.35, "4.35" },
    { 2.5e-5, "0.000025" },
    { 1.9999999999999998, "1.9999999999999998" },
    { 1e22, "1e+22" },
    { 1e23, "1e+23" },
    { 5e-310, "5e-310" },
    /* 2^-1074 .. powers of two: asymmetric rounding intervals */
    { 9.5367431640625e-7, "9.5367431640625e-7" },
    { 8.98846567431158e307, "8.98846567431158e+307" },
    { 2.2250738585072014e-308, "2.2250738585072014e-308" },
  };
  g_autoptr(GString) out = g_string_new (NULL);
  char buf[32];

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = format (cases[i].x);

      g_assert_cmpstr (text, ==, cases[i].text);
    }

  /* non-finite numbers write null, as JSON.stringify does */
  g_assert_cmpuint (ts_json_format_number (buf, NAN), ==, 4);
  g_assert_cmpstr (buf, ==, "null");
  g_assert_cmpuint (ts_json_format_number (buf, INFINITY), ==, 4);
  g_assert_cmpstr (buf, ==, "null");
  g_assert_cmpuint (ts_json_format_number (buf, -INFINITY), ==, 4);
  g_assert_cmpstr (buf, ==, "null");
  ts_json_write_number (out, NAN);
  ts_json_write_number (out, 1);
  ts_json_write_number (out, -0.0);
  g_assert_cmpstr (out->str, ==, "null10");

  /* the longest forms fit the documented buffer */
  g_assert_cmpuint (ts_json_format_number (buf, -1.2345678901234567e-300), <, 32);
  g_assert_cmpuint (ts_json_format_number (buf, -1.2345678901234567e-7), <, 32);
  g_assert_cmpuint (ts_json_format_number (buf, -0.0000012345678901234567), <, 32);
  g_assert_cmpstr (buf, ==, "-0.0000012345678901234567");
  g_assert_cmpuint (ts_json_format_number (buf, -999999999999999900000.0), <, 32);
  g_assert_cmpstr (buf, ==, "-999999999999999900000");
}

/* The exact decimal expansion of x > 0: digits and the exponent of the
 * first one (glibc prints exactly with enough precision). */
static void
exact_decimal (double  x,
               char   *digits,
               gsize   size,
               int    *exp10)
{
  char *buf = g_strdup_printf ("%.800e", x);
  gsize k = 0;
  char *p;

  for (p = buf; *p != 'e'; p++)
    if (g_ascii_isdigit (*p) && k + 1 < size)
      digits[k++] = *p;
  digits[k] = '\0';
  *exp10 = atoi (p + 1);
  g_free (buf);
}

static double
digits_value (guint64 s,
              int     e)
{
  char buf[64];

  g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT "e%d", s, e);
  return g_ascii_strtod (buf, NULL);
}

/* Checks text = Number::toString (x) for a finite x > 0 without using the
 * library's algorithm: layout, round-trip, shortest, closest. */
static void
check_shortest (double      x,
                const char *text)
{
  char digits[32];
  char exact[820];
  int k = 0, frac = -1, exp_part = 0, e_exact, n_point;
  const char *p;
  guint64 s = 0;
  int e10;   /* value = s x 10^e10 */

  g_assert_true (x > 0);
  if (g_ascii_strtod (text, NULL) != x)
    g_error ("%s does not round-trip to %.17g", text, x);

  /* s and e10 from the text */
  for (p = text; *p != '\0' && *p != 'e'; p++)
    {
      if (*p == '.')
        {
          g_assert_cmpint (frac, ==, -1);
          frac = 0;
          continue;
        }
      g_assert_true (g_ascii_isdigit (*p));
      if (frac >= 0)
        frac++;
      if (k == 0 && *p == '0')
        continue;
      g_assert_cmpint (k, <, 22);
      digits[k++] = *p;
    }
  digits[k] = '\0';
  if (*p == 'e')
    {
      g_assert_true (p[1] == '+' || p[1] == '-');
      g_assert_true (g_ascii_isdigit (p[2]) && p[2] != '0');
      exp_part = atoi (p + 1);
    }
  e10 = exp_part - MAX (frac, 0);
  while (k > 0 && digits[k - 1] == '0')
    {
      /* only the integer form ends with zeros */
      g_assert_true (*p != 'e' && frac == -1);
      e10++;
      digits[--k] = '\0';
    }
  g_assert_cmpint (k, >=, 1);
  g_assert_cmpint (k, <=, 17);
  for (int i = 0; i < k; i++)
    s = s * 10 + (guint64) (digits[i] - '0');
  g_assert_cmphex (double_bits (digits_value (s, e10)), ==, double_bits (x));
  n_point = e10 + k;   /* the "n" of Number::toString */

  /* layout rules 4-7 */
  if (*p == 'e')
    {
      g_assert_true (x < 1e-6 || x >= 1e21);
      g_assert_true (n_point > 21 || n_point <= -6);
      g_assert_true (g_ascii_isdigit (text[0]) && text[0] != '0');
      g_assert_true (k == 1 ? text[1] == 'e' : text[1] == '.');
    }
  else
    {
      g_assert_true (x >= 1e-6 && x < 1e21);
      if (n_point >= k)
        g_assert_cmpint (frac, ==, -1);
      else if (n_point > 0)
        g_assert_cmpint (frac, ==, k - n_point);
      else
        {
          g_assert_true (g_str_has_prefix (text, "0."));
          g_assert_cmpint ((int) strspn (text + 2, "0"), ==, -n_point);
          g_assert_cmpint (frac, ==, k - n_point);
        }
    }

  /* shortest: no decimal with one fewer significant digit round-trips. Any
   * that did would lie within one unit of s's last digit-but-one. */
  if (k > 1)
    {
      guint64 t = s / 10;
      guint64 nines = 1;

      for (gint64 d = -5; d <= 5; d++)
        {
          gint64 c = (gint64) t + d;

          if (c > 0 && digits_value ((guint64) c, e10 + 1) == x)
            g_error ("%s is not shortest: %" G_GINT64_FORMAT "e%d round-trips", text, c, e10 + 1);
        }
      /* below a power of ten the (k-1)-digit grid is finer */
      for (int i = 0; i < k - 1; i++)
        nines *= 10;
      for (guint64 c = 1; c <= 5 && c < nines; c++)
        if (digits_value (nines - c, e10) == x)
          g_error ("%s is not shortest", text);
    }

  /* closest: a k-digit neighbour that round-trips must not be closer */
  exact_decimal (x, exact, sizeof exact, &e_exact);
  if (e_exact == e10 + k - 1)
    {
      int cmp = strncmp (exact, digits, (gsize) k);
      const char *rest = exact + k;
      gboolean rest_zero = strspn (rest, "0") == strlen (rest);
      int vs_half;   /* the rest compared with a half unit */

      if (rest[0] != '5')
        vs_half = rest[0] > '5' ? 1 : -1;
      else
        vs_half = strspn (rest + 1, "0") == strlen (rest + 1) ? 0 : 1;

      if (cmp == 0)
        {
          /* s <= x: s + 1 would be closer iff the rest exceeds a half */
          if (!rest_zero && digits_value (s + 1, e10) == x)
            g_assert_true (vs_half < 0 || (vs_half == 0 && (s % 2) == 0));
        }
      else
        {
          /* x < s, so s is the ceiling: the floor is closer iff the rest is
           * below a half */
          g_assert_cmpint (cmp, <, 0);
          if (digits_value (s - 1, e10) == x)
            g_assert_true (vs_half > 0 || (vs_half == 0 && (s % 2) == 0));
        }
    }
}

static void
test_write_numbers_random (void)
{
  GRand *rand = g_rand_new_with_seed (1710000000);
  guint n = g_test_slow () ? 1000000 : 100000;
  guint exponential = 0, decimal = 0;

  for (guint i = 0; i < n; i++)
    {
      guint64 bits = ((guint64) g_rand_int (rand) << 32) | g_rand_int (rand);
      double x;
      g_autofree char *text = NULL;

      /* two in three: a random double of moderate magnitude (the range
       * real data live in, and where the writer has an exact path) */
      if (i % 3 != 0)
        bits = (bits & G_GUINT64_CONSTANT (0x800FFFFFFFFFFFFF)) |
               ((guint64) g_rand_int_range (rand, 1023 - 40, 1023 + 120) << 52);
      memcpy (&x, &bits, sizeof x);
      if (!isfinite (x))
        continue;
      text = format (x);
      if (x == 0)
        {
          g_assert_cmpstr (text, ==, "0");
          continue;
        }
      if (x < 0)
        {
          g_assert_cmpint (text[0], ==, '-');
          check_shortest (-x, text + 1);
        }
      else
        check_shortest (x, text);
      if (strchr (text, 'e'))
        exponential++;
      else
        decimal++;
    }
  g_assert_cmpuint (exponential, >, n / 10);
  g_assert_cmpuint (decimal, >, n / 10);
  g_rand_free (rand);
}

static void
check_number (double x)
{
  g_autofree char *text = NULL;
  g_autofree char *neg = NULL;

  if (x == 0 || !isfinite (x))
    return;
  text = format (x);
  neg = format (-x);

  g_assert_cmpint (neg[0], ==, '-');
  g_assert_cmpstr (neg + 1, ==, text);
  check_shortest (x, text);
}

/* Powers of two (asymmetric rounding intervals), powers of ten, their
 * neighbours, subnormals and the edges of the writer's exact path. */
static void
test_write_numbers_boundaries (void)
{
  guint n = 0;

  for (int k = -1074; k <= 1023; k++)
    {
      double x = ldexp (1.0, k);

      check_number (x);
      check_number (nextafter (x, 0));
      check_number (nextafter (x, INFINITY));
      n += 3;
    }
  for (int k = -323; k <= 308; k++)
    {
      char src[16];
      double x;

      g_snprintf (src, sizeof src, "1e%d", k);
      x = g_ascii_strtod (src, NULL);
      check_number (x);
      check_number (nextafter (x, 0));
      if (k < 308)
        check_number (nextafter (x, INFINITY));
      check_number (x * 9.5);
      n += 4;
    }
  for (guint64 m = 1; m < 2000; m++)
    {
      double x;
      guint64 bits = m;   /* the smallest subnormals */

      memcpy (&x, &bits, sizeof x);
      check_number (x);
      bits = G_GUINT64_CONSTANT (0x000FFFFFFFFFFFFF) - m;   /* the largest */
      memcpy (&x, &bits, sizeof x);
      check_number (x);
      bits = G_GUINT64_CONSTANT (0x7FEFFFFFFFFFFFFF) - m;
      memcpy (&x, &bits, sizeof x);
      check_number (x);
      n += 3;
    }
  g_assert_cmpuint (n, >, 10000);
}

/* Short decimals n / 10^k: the text is the decimal itself, built here with
 * integer arithmetic only. */
static void
test_write_numbers_short_decimals (void)
{
  GRand *rand = g_rand_new_with_seed (42);

  for (guint i = 0; i < 100000; i++)
    {
      int digits = g_rand_int_range (rand, 1, 16);
      guint64 n = 0;
      int k = g_rand_int_range (rand, 0, 22);
      char ndigits[32], src[64], expected[64];
      g_autofree char *text = NULL;
      double x;
      int len;

      for (int d = 0; d < digits; d++)
        n = n * 10 + (guint64) g_rand_int_range (rand, d == 0 ? 1 : 0, 10);
      while (n % 10 == 0 && k > 0)
        {
          n /= 10;
          k--;
        }
      len = g_snprintf (ndigits, sizeof ndigits, "%" G_GUINT64_FORMAT, n);
      g_snprintf (src, sizeof src, "%se-%d", ndigits, k);
      x = g_ascii_strtod (src, NULL);

      /* P is the decimal point position: value = 0.ndigits x 10^P */
      if (len - k > 21 || len - k <= -6)
        {
          int e = len - k - 1;

          if (len == 1)
            g_snprintf (expected, sizeof expected, "%se%c%d", ndigits, e > 0 ? '+' : '-', ABS (e));
          else
            g_snprintf (expected, sizeof expected, "%c.%se%c%d", ndigits[0], ndigits + 1,
                        e > 0 ? '+' : '-', ABS (e));
        }
      else if (k == 0)
        g_snprintf (expected, sizeof expected, "%s", ndigits);
      else if (len > k)
        g_snprintf (expected, sizeof expected, "%.*s.%s", len - k, ndigits, ndigits + len - k);
      else
        {
          g_autofree char *zeros = g_strnfill ((gsize) (k - len), '0');

          g_snprintf (expected, sizeof expected, "0.%s%s", zeros, ndigits);
        }
      text = format (x);
      if (strcmp (text, expected) != 0)
        g_error ("%s: wrote %s, expected %s", src, text, expected);
      {
        g_autofree char *neg = format (-x);

        g_assert_cmpint (neg[0], ==, '-');
        g_assert_cmpstr (neg + 1, ==, expected);
      }
    }
  g_rand_free (rand);
}

static void
test_write_strings (void)
{
  g_autoptr(GString) all = g_string_new (NULL);
  g_autofree char *controls = NULL;
  g_autofree char *mixed = NULL;
  g_autofree char *lone = NULL;
  g_autofree char *near = NULL;
  g_autofree char *nul = NULL;

  for (int c = 0; c < 0x20; c++)
    g_string_append_c (all, (char) c);
  controls = write_string (all->str, all->len);
  g_assert_cmpstr (controls, ==,
                   "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                   "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
                   "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
                   "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"");

  mixed = write_string ("a\"b\\c/d\x7f\xc2\x80\xe2\x80\xa8\xef\xbb\xbf\xf0\x9f\x98\x80", 20);
  g_assert_cmpstr (mixed, ==, "\"a\\\"b\\\\c/d\x7f\xc2\x80\xe2\x80\xa8\xef\xbb\xbf\xf0\x9f\x98\x80\"");

  /* WTF-8 lone surrogates: \udxxx lower-case; U+D7FF (ED 9F BF) is literal */
  lone = write_string ("\xed\xa0\x80x\xed\xbf\xbf\xed\xaf\xbf\xed\xb0\x80", 13);
  g_assert_cmpstr (lone, ==, "\"\\ud800x\\udfff\\udbff\\udc00\"");
  near = write_string ("\xed\x9f\xbf\xed\x80\x80", 6);
  g_assert_cmpstr (near, ==, "\"\xed\x9f\xbf\xed\x80\x80\"");

  /* NUL and the length bound */
  nul = write_string ("a\0b\"never", 3);
  g_assert_cmpstr (nul, ==, "\"a\\u0000b\"");
}

static void
test_write_node (void)
{
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
    { " [ 1.0 , 1E2 , -0 , 1e400 , -1e400 , 0.10 , 1e-7 ] ", "[1,100,0,null,null,0.1,1e-7]" },
    { "{ \"a\" : { \"b\" : [ ] } , \"c\" : \"\\u00e9\\/\" }", "{\"a\":{\"b\":[]},\"c\":\"\xc3\xa9/\"}" },
    { "\"\\ud800\"", "\"\\ud800\"" },
    { "\"\\uD800\\uDC00\"", "\"\xf0\x90\x80\x80\"" },
    { "[\"\\u001F\\u007f\"]", "[\"\\u001f\x7f\"]" },
    { "{\"\\u0000\":\"\\u0000\"}", "{\"\\u0000\":\"\\u0000\"}" },
    { "[true,false,null]", "[true,false,null]" },
    { "12345678901234567890", "12345678901234567000" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TsJsonDoc) doc = parse_ok (cases[i].in, -1);
      g_autoptr(GString) out = g_string_new ("x");
      g_autofree char *text = NULL;
      gsize len = 0;

      ts_json_write_node (out, root_of (doc));
      g_assert_cmpstr (out->str + 1, ==, cases[i].out);
      text = ts_json_node_to_string (root_of (doc), &len);
      g_assert_cmpstr (text, ==, cases[i].out);
      g_assert_cmpuint (len, ==, strlen (cases[i].out));
    }

  /* a NUL in a string is written escaped, the length matches */
  {
    g_autoptr(TsJsonDoc) doc = parse_ok ("\"a\\u0000\"", -1);
    gsize len = 0;
    g_autofree char *text = ts_json_node_to_string (root_of (doc), &len);

    g_assert_cmpuint (len, ==, 9);
    g_assert_cmpstr (text, ==, "\"a\\u0000\"");
    g_assert_cmpuint (strlen (text), ==, 9);
  }
}

static void
test_wtf8 (void)
{
  static const struct {
    const char *s;
    gsize       len;
    gboolean    valid;
  } cases[] = {
    { "", 0, TRUE },
    { "plain", 5, TRUE },
    { "a\0b", 3, TRUE },
    { "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", 9, TRUE },
    { "\xed\xa0\x80", 3, TRUE },                  /* lone high */
    { "\xed\xbf\xbf", 3, TRUE },                  /* lone low */
    { "\xed\xb0\x80\xed\xa0\x80", 6, TRUE },      /* low then high: two lone */
    { "\xed\xa0\x80x\xed\xb0\x80", 7, TRUE },
    { "\xed\xa0\x80\xed\xa0\x80", 6, TRUE },      /* two highs */
    { "\xed\xa0\xbd\xed\xb8\x80", 6, FALSE },     /* an encoded pair */
    { "\xed\xa0", 2, FALSE },
    { "\xed\xa0\x41", 3, FALSE },
    { "\xc0\xaf", 2, FALSE },
    { "\xe0\x80\xaf", 3, FALSE },
    { "\xf4\x90\x80\x80", 4, FALSE },
    { "\xf8\x88\x80\x80\x80", 5, FALSE },
    { "\x80", 1, FALSE },
    { "\xff", 1, FALSE },
    { "\xc3", 1, FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpint (ts_wtf8_validate (cases[i].s, cases[i].len), ==, cases[i].valid);

  /* to UTF-8: NULL when nothing to do */
  {
    gsize len = 99;

    g_assert_null (ts_wtf8_to_utf8 ("abc\xc3\xa9\xed\x9f\xbf", 8, &len));
    g_assert_cmpuint (len, ==, 8);
    g_assert_null (ts_wtf8_to_utf8 ("", 0, NULL));
  }
  {
    gsize len = 0;
    g_autofree char *u = ts_wtf8_to_utf8 ("a\xed\xa0\x80" "b\xed\xbf\xbf", 8, &len);

    g_assert_cmpuint (len, ==, 8);
    g_assert_cmpmem (u, len, "a\xef\xbf\xbd" "b\xef\xbf\xbd", 8);
    g_assert_cmpint (u[len], ==, '\0');
    g_assert_true (g_utf8_validate (u, (gssize) len, NULL));
  }
  {
    /* the input need not be NUL-terminated */
    char buf[4] = { '\xed', '\xa0', '\x80', 'Z' };
    gsize len = 0;
    g_autofree char *u = ts_wtf8_to_utf8 (buf, 3, &len);

    g_assert_cmpstr (u, ==, "\xef\xbf\xbd");
  }
}

/* ---- Performance (only with -m perf) ----------------------------------------------- */

/* A MergeableContent-like document: tables of rows of cells, each cell a
 * stamp [value, hlc, hash]. */
static GString *
generate_content (guint n_cells)
{
  GString *s = g_string_sized_new ((gsize) n_cells * 64);
  GRand *rand = g_rand_new_with_seed (7);
  guint cell = 0;

  g_string_append (s, "[[{");
  for (guint t = 0; cell < n_cells; t++)
    {
      if (t > 0)
        g_string_append_c (s, ',');
      g_string_append_printf (s, "\"table%u\":[{", t);
      for (guint r = 0; r < 1000 && cell < n_cells; r++)
        {
          if (r > 0)
            g_string_append_c (s, ',');
          g_string_append_printf (s, "\"%u\":[{", r);
          for (guint c = 0; c < 10 && cell < n_cells; c++, cell++)
            {
              if (c > 0)
                g_string_append_c (s, ',');
              g_string_append_printf (s, "\"cell%u\":[", c);
              switch (c % 4)
                {
                case 0:
                  g_string_append_printf (s, "\"value number %u\"", g_rand_int (rand));
                  break;
                case 1:
                  g_string_append_printf (s, "%u", g_rand_int (rand) % 100000);
                  break;
                case 2:
                  ts_json_write_number (s, g_rand_double (rand) * 1000);
                  break;
                default:
                  g_string_append (s, g_rand_boolean (rand) ? "true" : "null");
                  break;
                }
              g_string_append_printf (s, ",\"NsYwJk%c---%c7JQY8\",%u]",
                                      'A' + c, 'a' + r % 26, g_rand_int (rand));
            }
          g_string_append_printf (s, "},\"\",%u]", g_rand_int (rand));
        }
      g_string_append_printf (s, "},\"\",%u]", g_rand_int (rand));
    }
  g_string_append (s, "},\"\",0],[{\"v\":[1,\"NsYwJk-----7JQY8\",1]},\"\",0]]");
  g_rand_free (rand);
  return s;
}

/* A document big enough for the arena's largest (mmap) chunks. */
static void
test_parse_big_document (void)
{
  g_autoptr(GString) text = generate_content (200000);
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autofree char *again = NULL;
  const TsJsonNode *root, *tables, *table, *row, *cell;
  gsize len = 0;

  g_assert_cmpuint (text->len, >, 10 * 1024 * 1024);
  doc = parse_ok (text->str, (gssize) text->len);
  root = root_of (doc);
  g_assert_cmpuint (root->len, ==, 2);
  tables = &root->u.items[0].u.items[0];
  g_assert_cmpuint (tables->len, ==, 20);
  table = ts_json_object_get (doc, tables, "table19", 7);
  g_assert_nonnull (table);
  row = ts_json_object_get (doc, &table->u.items[0], "999", 3);
  g_assert_nonnull (row);
  cell = ts_json_object_get (doc, &row->u.items[0], "cell9", 5);
  g_assert_nonnull (cell);
  g_assert_cmpint (cell->u.items[0].type, ==, TS_JSON_NUMBER);
  g_assert_cmpstr (cell->u.items[1].u.str, ==, "NsYwJkJ---l7JQY8");

  again = ts_json_node_to_string (root, &len);
  g_assert_cmpmem (again, len, text->str, text->len);
}

static void
test_perf_parse (void)
{
  g_autoptr(GString) text = NULL;
  double best = G_MAXDOUBLE;
  gint64 start;
  double write_secs;

  if (!g_test_perf ())
    {
      g_test_skip ("performance test: run with -m perf");
      return;
    }

  text = generate_content (1000000);
  for (int round = 0; round < 5; round++)
    {
      g_autoptr(TsJsonDoc) doc = NULL;
      double secs;

      start = g_get_monotonic_time ();
      doc = parse_ok (text->str, (gssize) text->len);
      secs = (double) (g_get_monotonic_time () - start) / 1e6;
      best = MIN (best, secs);
    }
  {
    g_autoptr(TsJsonDoc) doc = parse_ok (text->str, (gssize) text->len);
    g_autoptr(GString) out = g_string_sized_new (text->len + 16);

    start = g_get_monotonic_time ();
    ts_json_write_node (out, root_of (doc));
    write_secs = (double) (g_get_monotonic_time () - start) / 1e6;
    g_assert_cmpmem (out->str, out->len, text->str, text->len);
  }
  g_test_minimized_result (best, "parse %.1f MB in %.3f s: %.0f MB/s",
                           text->len / 1e6, best, text->len / 1e6 / best);
  g_test_message ("write %.1f MB in %.3f s: %.0f MB/s",
                  text->len / 1e6, write_secs, text->len / 1e6 / write_secs);
}

static void
test_perf_numbers (void)
{
  const guint n = 1000000;
  double *values;
  GRand *rand;
  const char *kinds[] = { "random bits", "random doubles in [0, 1000)", "short decimals", "integers" };

  if (!g_test_perf ())
    {
      g_test_skip ("performance test: run with -m perf");
      return;
    }

  values = g_new (double, n);
  rand = g_rand_new_with_seed (3);
  for (int kind = 0; kind < 4; kind++)
    {
      char buf[32];
      gsize total = 0;
      gint64 start;
      double ns;

      for (guint i = 0; i < n; i++)
        {
          if (kind == 0)
            {
              guint64 bits;

              do
                {
                  bits = ((guint64) g_rand_int (rand) << 32) | g_rand_int (rand);
                  memcpy (&values[i], &bits, sizeof (double));
                }
              while (!isfinite (values[i]));
            }
          else if (kind == 1)
            values[i] = g_rand_double (rand) * 1000;
          else if (kind == 2)
            values[i] = (double) g_rand_int_range (rand, 0, 1000000) / 100.0;
          else
            values[i] = g_rand_int (rand);
        }
      start = g_get_monotonic_time ();
      for (guint i = 0; i < n; i++)
        total += ts_json_format_number (buf, values[i]);
      ns = (double) (g_get_monotonic_time () - start) * 1000.0 / n;
      g_assert_cmpuint (total, >, n);
      g_test_message ("format %s: %.0f ns/number", kinds[kind], ns);
      if (kind == 0)
        g_test_minimized_result (ns, "format random bit patterns: %.0f ns/number", ns);
    }
  g_rand_free (rand);
  g_free (values);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/json/vectors/numbers", test_vectors_numbers);
  g_test_add_func ("/tinysync/json/vectors/strings", test_vectors_strings);
  g_test_add_func ("/tinysync/json/vectors/objects", test_vectors_objects);
  g_test_add_func ("/tinysync/json/vectors/wire-undefined", test_vectors_wire_undefined);
  g_test_add_func ("/tinysync/json/vectors/hash-file-strings", test_vectors_hash_file_strings);
  g_test_add_func ("/tinysync/json/vectors/files-round-trip", test_vectors_files_round_trip);
  g_test_add_func ("/tinysync/json/parse/rejects", test_parse_rejects);
  g_test_add_func ("/tinysync/json/parse/depth", test_parse_depth);
  g_test_add_func ("/tinysync/json/parse/strings", test_parse_strings);
  g_test_add_func ("/tinysync/json/parse/numbers", test_parse_numbers);
  g_test_add_func ("/tinysync/json/parse/numbers-vs-strtod", test_parse_numbers_vs_strtod);
  g_test_add_func ("/tinysync/json/parse/structure", test_parse_structure);
  g_test_add_func ("/tinysync/json/parse/arena-stress", test_parse_arena_stress);
  g_test_add_func ("/tinysync/json/parse/duplicates-and-order", test_parse_duplicates_and_order);
  g_test_add_func ("/tinysync/json/object-get", test_object_get);
  g_test_add_func ("/tinysync/json/is-array-index", test_is_array_index);
  g_test_add_func ("/tinysync/json/property-order", test_property_order);
  g_test_add_func ("/tinysync/json/write/numbers", test_write_numbers);
  g_test_add_func ("/tinysync/json/write/numbers-random", test_write_numbers_random);
  g_test_add_func ("/tinysync/json/write/numbers-short-decimals", test_write_numbers_short_decimals);
  g_test_add_func ("/tinysync/json/write/numbers-boundaries", test_write_numbers_boundaries);
  g_test_add_func ("/tinysync/json/write/strings", test_write_strings);
  g_test_add_func ("/tinysync/json/write/node", test_write_node);
  g_test_add_func ("/tinysync/json/wtf8", test_wtf8);
  g_test_add_func ("/tinysync/json/parse/big-document", test_parse_big_document);
  g_test_add_func ("/tinysync/json/perf/parse", test_perf_parse);
  g_test_add_func ("/tinysync/json/perf/numbers", test_perf_numbers);

  return g_test_run ();
}
