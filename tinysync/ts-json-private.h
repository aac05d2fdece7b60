/* ts-json-private.h: JavaScript-exact JSON (parse and write), no GObject, no I/O
 *
 * SPDX-License-Identifier: MIT
 *
 * Strings are WTF-8: UTF-8 in which a lone UTF-16 surrogate (which only a
 * JSON escape such as "\ud800" can produce) is kept as its 3-byte generalized
 * UTF-8 form (ED A0 80 .. ED BF BF). The writer escapes such sequences back
 * to "\udXXX", so text round-trips exactly as JavaScript's JSON.parse and
 * JSON.stringify would. Strings may contain NUL bytes (from "\u0000"); every
 * string also carries its length and is NUL-terminated.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Nesting deeper than this is a syntax error (json-glib has no limit and
 * overflows the stack on deep input). */
#define TS_JSON_MAX_DEPTH 512

typedef enum {
  TS_JSON_NULL,
  TS_JSON_FALSE,
  TS_JSON_TRUE,
  TS_JSON_NUMBER,
  TS_JSON_STRING,
  TS_JSON_ARRAY,
  TS_JSON_OBJECT,
} TsJsonType;

typedef struct _TsJsonNode   TsJsonNode;
typedef struct _TsJsonMember TsJsonMember;

struct _TsJsonNode {
  TsJsonType type;
  guint32    len;      /* string: byte length; array: items; object: members */
  union {
    double        num;
    const char   *str;     /* NUL-terminated WTF-8, len bytes */
    TsJsonNode   *items;   /* array: len nodes */
    TsJsonMember *members; /* object: len members, JS property order */
  } u;
};

struct _TsJsonMember {
  const char *key;       /* NUL-terminated WTF-8 */
  guint32     key_len;
  TsJsonNode  value;
};

/* A parsed document. Every node, member array and string lives in the
 * document's arena and is freed with it. */
typedef struct _TsJsonDoc TsJsonDoc;

/* Parses exactly one JSON text (RFC 8259, as JavaScript's JSON.parse: no
 * comments, no trailing commas, no leading zeros, no NaN; surrounding
 * whitespace allowed). Numbers become doubles with correct rounding
 * (strtod in the C locale); a number that overflows to infinity ("1e400")
 * is kept as an infinite double (JSON.parse does the same) - callers
 * validate. Object members come out in JavaScript property order: members
 * whose key is a canonical array index (0..4294967294, no leading zeros)
 * first in ascending numeric order, then the others in first-insertion
 * order; for a duplicate key the last value wins at the position of the
 * first occurrence. Invalid UTF-8 in the input is a syntax error.
 * Lone-surrogate escapes are kept (WTF-8, see above); a valid pair of
 * escapes is combined.
 * Returns NULL and sets a TS_ERROR_INVALID_JSON error (message with the byte
 * offset) on failure. len may be -1 for a NUL-terminated text. */
TsJsonDoc        *ts_json_parse          (const char  *text,
                                          gssize       len,
                                          GError     **error);
const TsJsonNode *ts_json_doc_get_root   (TsJsonDoc   *doc);
void              ts_json_doc_free       (TsJsonDoc   *doc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TsJsonDoc, ts_json_doc_free)

/* Object member lookup by key (linear for small objects; an object with many
 * members gets a lazily built index inside the document). NULL if absent. */
const TsJsonNode *ts_json_object_get     (TsJsonDoc        *doc,
                                          const TsJsonNode *object,
                                          const char       *key,
                                          gsize             key_len);

/* TRUE if key (len bytes) is a canonical array index: "0" or a decimal
 * without leading zero whose value is <= 4294967294. Sets *index. */
gboolean          ts_json_is_array_index (const char *key,
                                          gsize       len,
                                          guint32    *index);

/* ---- Lexing, for specialised parsers ----------------------------------
 *
 * The scanners of ts_json_parse, for parsers of one known document shape
 * that must accept and decode exactly what ts_json_parse does. */

/* p is at a '"' before end. Returns the position of the closing quote, or
 * NULL if ts_json_parse would reject the string (unterminated, a control
 * character, invalid UTF-8, a non-ASCII byte after a backslash). Sets
 * *has_escape when the raw bytes hold a backslash: then decode them with
 * ts_json_decode_escapes. */
const char       *ts_json_scan_string    (const char  *p,
                                          const char  *end,
                                          gboolean    *has_escape);

/* Decodes the escapes of the raw bytes of a scanned string into out (at
 * least raw_len bytes). Returns the decoded length, or -1 for an escape
 * ts_json_parse rejects. */
gssize            ts_json_decode_escapes (const char  *raw,
                                          gsize        raw_len,
                                          char        *out);

/* p is at a '-' or a digit before end. Returns the position after the
 * number, or NULL if ts_json_parse would reject it; *out as ts_json_parse
 * gives it (possibly infinite). */
const char       *ts_json_scan_number    (const char  *p,
                                          const char  *end,
                                          double      *out);

/* ---- Writing: exactly JavaScript's JSON.stringify ---------------------- */

/* Appends Number::toString(x) for a finite x: shortest round-trip digits,
 * decimal between 1e-7 (exclusive) and 1e21 (exclusive), exponential outside
 * ("1e+21", "1.5e-7"), -0 as "0". Non-finite x writes "null" (as
 * JSON.stringify does). Never locale dependent. */
void              ts_json_write_number   (GString     *out,
                                          double       x);

/* Formats into buf (at least 32 bytes), returns the length. Same output. */
gsize             ts_json_format_number  (char        *buf,
                                          double       x);

/* Appends JSON.stringify(s) for a WTF-8 string of len bytes (quotes
 * included): escapes " \ and U+0000..U+001F (\b \t \n \f \r, otherwise
 * \u00xx lower-case), lone surrogates as \udxxx lower-case; everything else
 * verbatim. */
void              ts_json_write_string   (GString     *out,
                                          const char  *s,
                                          gsize        len);

/* Appends the compact JSON.stringify of a parsed node (members in the
 * node's order, which is already JS property order). */
void              ts_json_write_node     (GString          *out,
                                          const TsJsonNode *node);

/* Convenience: the canonical JSON text of a node, newly allocated. */
char             *ts_json_node_to_string (const TsJsonNode *node,
                                          gsize            *out_len);

/* ---- Object writer with JS property order ----------------------------- */

/* JSON.stringify writes integer-like keys first. Writers that emit members
 * from an insertion-ordered source use this helper: give it the keys in
 * insertion order; it returns the order in which to write them (indices
 * into keys), array-index keys first ascending, then the rest in given
 * order. The returned array is owned by the caller (g_free); NULL when the
 * given order is already correct (the common case: no integer-like key). */
guint32          *ts_json_property_order (const char * const *keys,
                                          const guint32      *key_lens,
                                          guint32             n_keys);

/* ---- Strings ----------------------------------------------------------- */

/* UTF-8 byte length of a WTF-8 string as JavaScript's TextEncoder would
 * produce it (a lone surrogate counts 3, like U+FFFD): equals len. */

/* Converts WTF-8 to well-formed UTF-8 by replacing each lone surrogate
 * with U+FFFD (EF BF BD): what TextEncoder does. Returns NULL when s is
 * already well-formed UTF-8 (nothing to do). */
char             *ts_wtf8_to_utf8        (const char  *s,
                                          gsize        len,
                                          gsize       *out_len);

/* TRUE if s (len bytes) is valid WTF-8 (UTF-8 plus lone surrogates; a
 * surrogate pair encoded as two 3-byte sequences is NOT valid). */
gboolean          ts_wtf8_validate       (const char  *s,
                                          gsize        len);

G_END_DECLS
