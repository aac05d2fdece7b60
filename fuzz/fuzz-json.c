/* fuzz-json.c: the JSON parser and writer (ts-json.c)
 *
 * SPDX-License-Identifier: MIT
 *
 * For any input:
 * - parse; on failure a TS_ERROR_INVALID_JSON error is set;
 * - on success, every node is well formed (strings NUL-terminated valid
 *   WTF-8, object keys unique, array-index keys first in ascending order,
 *   ts_json_object_get() finds every member), writing gives text that
 *   parses to the same tree (non-finite numbers become null, -0 becomes 0)
 *   and writing that again gives the same bytes;
 * - every finite number in the tree formats as a reference
 *   Number::toString built from "%.*e" (shortest round-trip digits, the
 *   closest when several) and parses back to itself;
 * - an input of exactly 8 bytes is also taken as a double and checked the
 *   same way; an input that is valid WTF-8 is also written as a JSON
 *   string, which must parse back to the same bytes.
 */

#include <math.h>
#include <string.h>

#include "tinysync/ts-error.h"
#include "tinysync/ts-json-private.h"

#include "fuzz-common.h"

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init ();
  return 0;
}

/* ---- Reference Number::toString ------------------------------------------ */

/* Adds (delta 1) or subtracts (delta -1) one unit in the last digit of
 * the "d.ddde[+-]x" text sci, rewriting it in the same form. */
static void
sci_step (char *sci,
          gsize size,
          int   delta)
{
  char digits[40];
  int k = 0, e;
  const char *p;
  guint64 v = 0;

  for (p = sci; *p != 'e'; p++)
    if (*p != '.')
      digits[k++] = *p;
  e = atoi (p + 1);
  for (int i = 0; i < k; i++)
    v = v * 10 + (guint64) (digits[i] - '0');
  v = delta > 0 ? v + 1 : v - 1;
  /* v x 10^(e - k + 1); print it back with as many digits as it has */
  snprintf (digits, sizeof digits, "%" G_GUINT64_FORMAT, v);
  e += (int) strlen (digits) - k;
  k = (int) strlen (digits);
  if (k == 1)
    snprintf (sci, size, "%ce%+d", digits[0], e);
  else
    snprintf (sci, size, "%c.%se%+d", digits[0], digits + 1, e);
}

/* ECMA-262 Number::toString (x) for finite x: the fewest digits that
 * strtod() reads back as x, the closest to x among those. For each
 * precision "%.*e" gives the correctly rounded (closest) decimal; when it
 * does not read back, the only other candidate is its neighbour on the
 * other side of x (the rounding interval of a power of two is narrower
 * below than above). */
static gsize
reference_number (char   *out,
                  double  x)
{
  char sci[64];
  char digits[32];
  char *o = out;
  int k = 0, n, e;
  const char *p;

  if (x == 0)
    {
      strcpy (out, "0");
      return 1;
    }
  if (x < 0)
    {
      *o++ = '-';
      x = -x;
    }
  for (int prec = 0; prec < 17; prec++)
    {
      double y;

      snprintf (sci, sizeof sci, "%.*e", prec, x);
      y = strtod (sci, NULL);
      if (y == x)
        break;
      sci_step (sci, sizeof sci, y < x ? 1 : -1);
      if (strtod (sci, NULL) == x)
        break;
    }
  /* "d.ddde[+-]xx" */
  for (p = sci; *p != 'e'; p++)
    if (*p != '.')
      digits[k++] = *p;
  while (k > 1 && digits[k - 1] == '0')
    k--;
  digits[k] = '\0';
  e = atoi (p + 1);
  n = e + 1;

  if (k <= n && n <= 21)
    {
      memcpy (o, digits, k);
      o += k;
      for (int i = 0; i < n - k; i++)
        *o++ = '0';
    }
  else if (0 < n && n <= 21)
    {
      memcpy (o, digits, n);
      o += n;
      *o++ = '.';
      memcpy (o, digits + n, k - n);
      o += k - n;
    }
  else if (-6 < n && n <= 0)
    {
      *o++ = '0';
      *o++ = '.';
      for (int i = 0; i < -n; i++)
        *o++ = '0';
      memcpy (o, digits, k);
      o += k;
    }
  else
    {
      *o++ = digits[0];
      if (k > 1)
        {
          *o++ = '.';
          memcpy (o, digits + 1, k - 1);
          o += k - 1;
        }
      o += sprintf (o, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
  *o = '\0';
  return (gsize) (o - out);
}

static void
check_number (double x)
{
  char buf[40];
  char ref[64];
  gsize len;
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;

  memset (buf, 0x55, sizeof buf);
  len = ts_json_format_number (buf, x);
  FUZZ_CHECK (len < 32);
  FUZZ_CHECK (buf[len] == '\0' && strlen (buf) == len);

  if (!isfinite (x))
    {
      FUZZ_CHECK (strcmp (buf, "null") == 0);
      return;
    }

  reference_number (ref, x);
  if (strcmp (buf, ref) != 0)
    {
      fprintf (stderr, "number %.17g: wrote \"%s\", expected \"%s\"\n", x, buf, ref);
      abort ();
    }

  doc = ts_json_parse (buf, (gssize) len, NULL);
  FUZZ_CHECK (doc != NULL);
  root = ts_json_doc_get_root (doc);
  FUZZ_CHECK (root->type == TS_JSON_NUMBER);
  FUZZ_CHECK (root->u.num == x);
}

/* ---- Tree checks ------------------------------------------------------------- */

/* Well-formed UTF-8 (NUL bytes allowed, no surrogates). */
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
check_string (const char *s,
              gsize       len)
{
  gsize utf8_len = 0;
  g_autofree char *utf8 = NULL;

  FUZZ_CHECK (s != NULL);
  FUZZ_CHECK (s[len] == '\0');
  FUZZ_CHECK (ts_wtf8_validate (s, len));

  utf8 = ts_wtf8_to_utf8 (s, len, &utf8_len);
  FUZZ_CHECK (utf8_len == len);
  if (utf8 == NULL)
    FUZZ_CHECK (utf8_valid_with_nuls (s, len));
  else
    FUZZ_CHECK (utf8_valid_with_nuls (utf8, utf8_len));
}

static void
check_tree (TsJsonDoc        *doc,
            const TsJsonNode *node,
            guint             depth)
{
  FUZZ_CHECK (depth <= TS_JSON_MAX_DEPTH + 1);

  switch (node->type)
    {
    case TS_JSON_NULL:
    case TS_JSON_FALSE:
    case TS_JSON_TRUE:
      break;

    case TS_JSON_NUMBER:
      FUZZ_CHECK (!isnan (node->u.num));
      check_number (node->u.num);
      break;

    case TS_JSON_STRING:
      check_string (node->u.str, node->len);
      break;

    case TS_JSON_ARRAY:
      for (guint32 i = 0; i < node->len; i++)
        check_tree (doc, &node->u.items[i], depth + 1);
      break;

    case TS_JSON_OBJECT:
      {
        g_autoptr(GHashTable) seen = NULL;
        g_autofree const char **keys = NULL;
        g_autofree guint32 *key_lens = NULL;
        g_autofree guint32 *order = NULL;
        gboolean in_indexes = TRUE;
        guint32 prev_index = 0;

        seen = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                      (GDestroyNotify) g_bytes_unref, NULL);
        keys = g_new (const char *, node->len + 1);
        key_lens = g_new (guint32, node->len + 1);
        for (guint32 i = 0; i < node->len; i++)
          {
            const TsJsonMember *m = &node->u.members[i];
            GBytes *key = g_bytes_new_static (m->key, m->key_len);
            guint32 index;

            check_string (m->key, m->key_len);
            /* unique keys */
            FUZZ_CHECK (!g_hash_table_contains (seen, key));
            g_hash_table_add (seen, key);
            /* JS property order: array indexes first, ascending */
            if (ts_json_is_array_index (m->key, m->key_len, &index))
              {
                FUZZ_CHECK (in_indexes);
                FUZZ_CHECK (i == 0 || index > prev_index);
                prev_index = index;
              }
            else
              in_indexes = FALSE;
            /* lookup finds this very member */
            FUZZ_CHECK (ts_json_object_get (doc, node, m->key, m->key_len) == &m->value);
            keys[i] = m->key;
            key_lens[i] = m->key_len;
            check_tree (doc, &m->value, depth + 1);
          }
        /* a key that is not there */
        FUZZ_CHECK (ts_json_object_get (doc, node, "\xff", 1) == NULL);
        order = ts_json_property_order (keys, key_lens, node->len);
        FUZZ_CHECK (order == NULL);
      }
      break;

    default:
      FUZZ_CHECK (!"unknown node type");
    }
}

/* b is a after writing and parsing again. */
static void
check_same_tree (const TsJsonNode *a,
                 const TsJsonNode *b)
{
  if (a->type == TS_JSON_NUMBER && !isfinite (a->u.num))
    {
      FUZZ_CHECK (b->type == TS_JSON_NULL);
      return;
    }
  FUZZ_CHECK (a->type == b->type);
  switch (a->type)
    {
    case TS_JSON_NUMBER:
      /* -0 is written as 0 */
      FUZZ_CHECK (a->u.num == b->u.num);
      break;
    case TS_JSON_STRING:
      FUZZ_CHECK (a->len == b->len && memcmp (a->u.str, b->u.str, a->len) == 0);
      break;
    case TS_JSON_ARRAY:
      FUZZ_CHECK (a->len == b->len);
      for (guint32 i = 0; i < a->len; i++)
        check_same_tree (&a->u.items[i], &b->u.items[i]);
      break;
    case TS_JSON_OBJECT:
      FUZZ_CHECK (a->len == b->len);
      for (guint32 i = 0; i < a->len; i++)
        {
          const TsJsonMember *ma = &a->u.members[i], *mb = &b->u.members[i];

          FUZZ_CHECK (ma->key_len == mb->key_len &&
                      memcmp (ma->key, mb->key, ma->key_len) == 0);
          check_same_tree (&ma->value, &mb->value);
        }
      break;
    default:
      break;
    }
}

/* ---- Entry point -------------------------------------------------------------- */

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *text = (const char *) data;
  g_autoptr(TsJsonDoc) doc = NULL;
  g_autoptr(GError) error = NULL;

  if (size > G_MAXSSIZE)
    return 0;

  if (size == 8)
    {
      double x;

      memcpy (&x, data, sizeof x);
      check_number (x);
    }

  /* A WTF-8 text written as a JSON string parses back to itself. */
  if (ts_wtf8_validate (text, size))
    {
      g_autoptr(GString) out = g_string_new (NULL);
      g_autoptr(TsJsonDoc) sdoc = NULL;
      const TsJsonNode *s;

      ts_json_write_string (out, text, size);
      sdoc = ts_json_parse (out->str, (gssize) out->len, NULL);
      FUZZ_CHECK (sdoc != NULL);
      s = ts_json_doc_get_root (sdoc);
      FUZZ_CHECK (s->type == TS_JSON_STRING);
      FUZZ_CHECK (s->len == size && memcmp (s->u.str, text, size) == 0);
    }

  doc = ts_json_parse (text, (gssize) size, &error);
  if (doc == NULL)
    {
      FUZZ_CHECK (error != NULL);
      FUZZ_CHECK (g_error_matches (error, TS_ERROR, TS_ERROR_INVALID_JSON));
      return 0;
    }
  FUZZ_CHECK (error == NULL);

  {
    const TsJsonNode *root = ts_json_doc_get_root (doc);
    g_autoptr(TsJsonDoc) doc2 = NULL;
    g_autoptr(TsJsonDoc) doc3 = NULL;
    g_autofree char *out1 = NULL;
    g_autofree char *out2 = NULL;
    gsize len1 = 0, len2 = 0;

    check_tree (doc, root, 0);

    out1 = ts_json_node_to_string (root, &len1);
    FUZZ_CHECK (strlen (out1) <= len1);
    doc2 = ts_json_parse (out1, (gssize) len1, NULL);
    FUZZ_CHECK (doc2 != NULL);
    check_same_tree (root, ts_json_doc_get_root (doc2));

    out2 = ts_json_node_to_string (ts_json_doc_get_root (doc2), &len2);
    FUZZ_CHECK (len1 == len2 && memcmp (out1, out2, len1) == 0);

    /* The same text NUL-terminated, length -1 (when it has no NUL). */
    if (memchr (out1, '\0', len1) == NULL)
      {
        doc3 = ts_json_parse (out1, -1, NULL);
        FUZZ_CHECK (doc3 != NULL);
        check_same_tree (ts_json_doc_get_root (doc2), ts_json_doc_get_root (doc3));
      }
  }

  return 0;
}
