/* ts-json.c: JavaScript-exact JSON (parse and write), no GObject, no I/O
 *
 * SPDX-License-Identifier: MIT
 *
 * The parser is a strict recursive-descent parser. Every node, member array
 * and string of a document is allocated from the document's arena (large
 * chunks, no per-node malloc). While an array or object is being parsed its
 * items sit on a growable scratch stack; when it closes they are copied into
 * the arena in one piece.
 *
 * The number writer implements ECMA-262 Number::toString: integers below
 * 2^53 are formatted directly; short decimals are recognised with an exact
 * floating-point test; for 2^-10 <= |x| < 2^100 the shortest (then nearest)
 * decimal inside the rounding interval of x is found exactly with 128-bit
 * integers; elsewhere the shortest round-trip precision is searched with
 * "%.*e" and g_ascii_strtod(). The text is always assembled here from the
 * bare digits, so the C locale's decimal point never leaks in.
 */

#include "config.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#ifdef G_OS_UNIX
# include <sys/mman.h>
#endif

#include "ts-error.h"
#include "ts-json-private.h"
#include "ts-private.h"

/* ---- Arena ---------------------------------------------------------------- */

#define ARENA_ALIGN         8
#define ARENA_MIN_CHUNK     (4 * 1024)
#define ARENA_MAX_CHUNK     (16 * 1024 * 1024)

typedef struct _ArenaChunk ArenaChunk;

struct _ArenaChunk {
  ArenaChunk *next;
  gsize       size;         /* usable bytes after the header */
  gsize       mapped_len;   /* 0: g_malloc () memory, else mmap () length */
  gsize       padding;
  /* The data follows, 16-byte aligned. */
  double      data[];
};

typedef struct {
  ArenaChunk *chunks;
  char       *pos;
  char       *end;
  gsize       next_size;
} Arena;

/* Chunks of 8 MiB and more (only documents of many megabytes get them)
 * are 2 MiB aligned mmap ()s, advised to use transparent huge pages and then
 * populated: such a document otherwise spends much of its parse time in
 * first-touch page faults, one per 4 KiB. Smaller chunks use g_malloc (),
 * whose heap recycles memory between documents without any fault. */
#define POPULATE_MIN ((gsize) 8 * 1024 * 1024)
#define MAP_ROUND    ((gsize) 2 * 1024 * 1024)

static ArenaChunk *
chunk_new (gsize size)
{
  ArenaChunk *c = NULL;
  gsize total = sizeof (ArenaChunk) + size;

#if defined(G_OS_UNIX) && defined(MAP_ANONYMOUS)
  if (total >= POPULATE_MIN)
    {
      int flags = MAP_PRIVATE | MAP_ANONYMOUS;
      void *mem;

# if defined(MAP_POPULATE) && !defined(MADV_POPULATE_WRITE)
      flags |= MAP_POPULATE;
# endif
      total = (total + MAP_ROUND - 1) & ~(MAP_ROUND - 1);
      /* 2 MiB aligned, so that huge pages can back all of it */
      mem = mmap (NULL, total + MAP_ROUND, PROT_READ | PROT_WRITE, flags, -1, 0);
      if (mem != MAP_FAILED)
        {
          gsize head = (MAP_ROUND - ((guintptr) mem & (MAP_ROUND - 1))) & (MAP_ROUND - 1);

          if (head > 0)
            munmap (mem, head);
          if (MAP_ROUND - head > 0)
            munmap ((char *) mem + head + total, MAP_ROUND - head);
          mem = (char *) mem + head;
          /* Huge pages first (if any), then populate; both are hints and
           * their failure (older kernels) is harmless. */
# ifdef MADV_HUGEPAGE
          madvise (mem, total, MADV_HUGEPAGE);
# endif
# ifdef MADV_POPULATE_WRITE
          madvise (mem, total, MADV_POPULATE_WRITE);
# endif
          c = mem;
          c->mapped_len = total;
          c->size = total - sizeof (ArenaChunk);
          return c;
        }
    }
#endif
  size = (size + (ARENA_ALIGN - 1)) & ~(gsize) (ARENA_ALIGN - 1);
  c = g_malloc (sizeof (ArenaChunk) + size);
  c->mapped_len = 0;
  c->size = size;
  return c;
}

static void
chunk_free (ArenaChunk *c)
{
#if defined(G_OS_UNIX) && defined(MAP_ANONYMOUS)
  if (c->mapped_len != 0)
    {
      munmap (c, c->mapped_len);
      return;
    }
#endif
  g_free (c);
}

static void
arena_init (Arena *arena,
            gsize  size_hint)
{
  arena->chunks = NULL;
  arena->pos = NULL;
  arena->end = NULL;
  arena->next_size = CLAMP (size_hint, ARENA_MIN_CHUNK, ARENA_MAX_CHUNK);
}

static void
arena_clear (Arena *arena)
{
  ArenaChunk *c = arena->chunks;

  while (c != NULL)
    {
      ArenaChunk *next = c->next;
      chunk_free (c);
      c = next;
    }
  arena->chunks = NULL;
  arena->pos = arena->end = NULL;
}

/* Slow path: the current chunk is full. */
static void *
arena_alloc_slow (Arena *arena,
                  gsize  size)
{
  ArenaChunk *c;

  if (size > arena->next_size / 4)
    {
      /* A big block gets a chunk of its own, linked behind the current one
       * so that the free space of the current chunk is not lost. */
      c = chunk_new (size);
      if (arena->chunks != NULL)
        {
          c->next = arena->chunks->next;
          arena->chunks->next = c;
        }
      else
        {
          c->next = NULL;
          arena->chunks = c;
          arena->pos = arena->end = (char *) c->data + c->size;
        }
      return c->data;
    }

  /* header included, so that chunks are round sizes */
  c = chunk_new (arena->next_size - sizeof (ArenaChunk));
  c->next = arena->chunks;
  arena->chunks = c;
  arena->pos = (char *) c->data;
  arena->end = arena->pos + c->size;
  if (arena->next_size < ARENA_MAX_CHUNK)
    arena->next_size *= 2;

  arena->pos += size;
  return c->data;
}

/* size bytes aligned for nodes and members */
static inline void *
arena_alloc (Arena *arena,
             gsize  size)
{
  char *p = (char *) (((guintptr) arena->pos + (ARENA_ALIGN - 1)) & ~(guintptr) (ARENA_ALIGN - 1));

  size = (size + (ARENA_ALIGN - 1)) & ~(gsize) (ARENA_ALIGN - 1);
  /* (aligning may step past the end of the chunk) */
  if (G_LIKELY (arena->pos != NULL && p <= arena->end && (gsize) (arena->end - p) >= size))
    {
      arena->pos = p + size;
      return p;
    }
  return arena_alloc_slow (arena, size);
}

/* size bytes, no alignment (strings) */
static inline char *
arena_alloc_bytes (Arena *arena,
                   gsize  size)
{
  char *p = arena->pos;

  if (G_LIKELY (p != NULL && (gsize) (arena->end - p) >= size))
    {
      arena->pos = p + size;
      return p;
    }
  return arena_alloc_slow (arena, size);
}

/* Gives back the tail of the most recent arena_alloc_bytes() when it was
 * taken from the current chunk. */
static inline void
arena_shrink_last (Arena *arena,
                   char  *block,
                   gsize  old_size,
                   gsize  new_size)
{
  if (arena->pos == block + old_size)
    arena->pos = block + new_size;
}

/* ---- Document --------------------------------------------------------------- */

/* Lazily built lookup index of one big object: open addressing over member
 * indices (+1, 0 is empty). */
typedef struct {
  guint32 mask;
  guint32 slots[];
} ObjectIndex;

struct _TsJsonDoc {
  Arena       arena;
  TsJsonNode  root;
  GHashTable *indexes;   /* const TsJsonMember * -> ObjectIndex * (owned) */
};

/* Objects with more members than this are looked up through an index, and
 * deduplicated with a hash table while parsing. */
#define OBJECT_LINEAR_MAX 16
#define DEDUP_LINEAR_MAX  12

static inline guint32
key_hash (const char *s,
          gsize       len)
{
  guint64 h = G_GUINT64_CONSTANT (0x9E3779B97F4A7C15) ^ len;

  while (len >= 8)
    {
      guint64 w;

      memcpy (&w, s, 8);
      h = (h ^ w) * G_GUINT64_CONSTANT (0xff51afd7ed558ccd);
      h ^= h >> 32;
      s += 8;
      len -= 8;
    }
  if (len > 0)
    {
      guint64 w = 0;

      for (gsize i = 0; i < len; i++)
        w |= (guint64) (guint8) s[i] << (8 * i);
      h = (h ^ w) * G_GUINT64_CONSTANT (0xff51afd7ed558ccd);
    }
  h ^= h >> 29;
  h *= G_GUINT64_CONSTANT (0xc4ceb9fe1a85ec53);
  h ^= h >> 32;
  return (guint32) h;
}

static inline gboolean
key_equal (const TsJsonMember *m,
           const char         *key,
           gsize               key_len)
{
  return m->key_len == key_len && memcmp (m->key, key, key_len) == 0;
}

const TsJsonNode *
ts_json_doc_get_root (TsJsonDoc *doc)
{
  g_return_val_if_fail (doc != NULL, NULL);

  return &doc->root;
}

void
ts_json_doc_free (TsJsonDoc *doc)
{
  if (doc == NULL)
    return;
  g_clear_pointer (&doc->indexes, g_hash_table_unref);
  arena_clear (&doc->arena);
  g_free (doc);
}

static ObjectIndex *
object_index_build (const TsJsonNode *object)
{
  guint64 cap = 16;
  ObjectIndex *index;

  while (cap < 2 * (guint64) object->len)
    cap *= 2;

  /* Not from the arena: after a big parse that could start a new chunk. */
  index = g_malloc0 (sizeof (ObjectIndex) + cap * sizeof (guint32));
  index->mask = (guint32) (cap - 1);

  for (guint32 i = 0; i < object->len; i++)
    {
      const TsJsonMember *m = &object->u.members[i];
      guint32 slot = key_hash (m->key, m->key_len) & index->mask;

      while (index->slots[slot] != 0)
        {
          /* A hand-built object may repeat a key: the first one wins. */
          if (key_equal (&object->u.members[index->slots[slot] - 1], m->key, m->key_len))
            break;
          slot = (slot + 1) & index->mask;
        }
      if (index->slots[slot] == 0)
        index->slots[slot] = i + 1;
    }

  return index;
}

const TsJsonNode *
ts_json_object_get (TsJsonDoc        *doc,
                    const TsJsonNode *object,
                    const char       *key,
                    gsize             key_len)
{
  ObjectIndex *index;
  guint32 slot;

  if (object == NULL || object->type != TS_JSON_OBJECT)
    return NULL;
  g_return_val_if_fail (key != NULL || key_len == 0, NULL);

  if (object->len <= OBJECT_LINEAR_MAX || doc == NULL)
    {
      for (guint32 i = 0; i < object->len; i++)
        if (key_equal (&object->u.members[i], key, key_len))
          return &object->u.members[i].value;
      return NULL;
    }

  if (doc->indexes == NULL)
    doc->indexes = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  index = g_hash_table_lookup (doc->indexes, object->u.members);
  if (index == NULL)
    {
      index = object_index_build (object);
      g_hash_table_insert (doc->indexes, (gpointer) object->u.members, index);
    }

  slot = key_hash (key, key_len) & index->mask;
  while (index->slots[slot] != 0)
    {
      const TsJsonMember *m = &object->u.members[index->slots[slot] - 1];

      if (key_equal (m, key, key_len))
        return &m->value;
      slot = (slot + 1) & index->mask;
    }
  return NULL;
}

gboolean
ts_json_is_array_index (const char *key,
                        gsize       len,
                        guint32    *index)
{
  guint64 v = 0;

  if (len == 0 || len > 10)
    return FALSE;
  if (key[0] == '0')
    {
      if (len != 1)
        return FALSE;
      if (index != NULL)
        *index = 0;
      return TRUE;
    }
  for (gsize i = 0; i < len; i++)
    {
      if (key[i] < '0' || key[i] > '9')
        return FALSE;
      v = v * 10 + (guint64) (key[i] - '0');
    }
  if (v > G_GUINT64_CONSTANT (4294967294))
    return FALSE;
  if (index != NULL)
    *index = (guint32) v;
  return TRUE;
}

/* ---- Parser ----------------------------------------------------------------- */

typedef struct {
  const char *start;
  const char *p;
  const char *end;
  Arena      *arena;

  /* Scratch stack for the items/members of open arrays and objects. */
  char       *stack;
  gsize       stack_len;
  gsize       stack_cap;

  /* Scratch for deduplicating and ordering object members. */
  guint32    *dedup;
  gsize       dedup_cap;
  guint64    *order;
  gsize       order_cap;

  GError    **error;
} Parser;

typedef enum {
  ERR_UNEXPECTED_END,
  ERR_UNEXPECTED_CHAR,
  ERR_TRAILING,
  ERR_TOO_DEEP,
  ERR_BAD_NUMBER,
  ERR_LEADING_ZERO,
  ERR_UNTERMINATED_STRING,
  ERR_CONTROL_CHAR,
  ERR_BAD_ESCAPE,
  ERR_BAD_UTF8,
  ERR_EXPECTED_KEY,
  ERR_EXPECTED_COLON,
  ERR_EXPECTED_COMMA_ARRAY,
  ERR_EXPECTED_COMMA_OBJECT,
  ERR_TOO_LONG,
} ParseErr;

static gboolean
parse_fail (Parser     *ps,
            const char *at,
            ParseErr    err)
{
  const char *what = NULL;

  switch (err)
    {
    case ERR_UNEXPECTED_END:
      what = _("unexpected end of input");
      break;
    case ERR_UNEXPECTED_CHAR:
      what = _("unexpected character");
      break;
    case ERR_TRAILING:
      what = _("unexpected text after the JSON value");
      break;
    case ERR_TOO_DEEP:
      what = _("nesting too deep");
      break;
    case ERR_BAD_NUMBER:
      what = _("invalid number");
      break;
    case ERR_LEADING_ZERO:
      what = _("leading zero in a number");
      break;
    case ERR_UNTERMINATED_STRING:
      what = _("unterminated string");
      break;
    case ERR_CONTROL_CHAR:
      what = _("control character in a string");
      break;
    case ERR_BAD_ESCAPE:
      what = _("invalid escape sequence");
      break;
    case ERR_BAD_UTF8:
      what = _("invalid UTF-8");
      break;
    case ERR_EXPECTED_KEY:
      what = _("expected a string as object key");
      break;
    case ERR_EXPECTED_COLON:
      what = _("expected ':'");
      break;
    case ERR_EXPECTED_COMMA_ARRAY:
      what = _("expected ',' or ']'");
      break;
    case ERR_EXPECTED_COMMA_OBJECT:
      what = _("expected ',' or '}'");
      break;
    case ERR_TOO_LONG:
      what = _("string too long");
      break;
    default:
      g_assert_not_reached ();
    }

  g_set_error (ps->error, TS_ERROR, TS_ERROR_INVALID_JSON,
               _("Invalid JSON at byte %zu: %s"),
               (size_t) (at - ps->start), what);
  return FALSE;
}

static inline void
skip_ws (Parser *ps)
{
  const char *p = ps->p;
  const char *end = ps->end;

  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  ps->p = p;
}

static void *
stack_push (Parser *ps,
            gsize   size)
{
  void *slot;

  if (G_UNLIKELY (ps->stack_len + size > ps->stack_cap))
    {
      gsize cap = MAX (ps->stack_cap * 2, 4096);

      while (cap < ps->stack_len + size)
        cap *= 2;
      ps->stack = g_realloc (ps->stack, cap);
      ps->stack_cap = cap;
    }
  slot = ps->stack + ps->stack_len;
  ps->stack_len += size;
  return slot;
}

/* Length of a valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid.
 * Strict: no overlong forms, no surrogates, nothing above U+10FFFF. */
static inline gsize
utf8_seq_len (const guint8 *p,
              const guint8 *end)
{
  guint8 c = p[0];
  gsize avail = (gsize) (end - p);

#define CONT(b) (((b) & 0xC0) == 0x80)
  if (c >= 0xC2 && c <= 0xDF)
    return (avail >= 2 && CONT (p[1])) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF)
    {
      if (avail < 3 || !CONT (p[1]) || !CONT (p[2]))
        return 0;
      if (c == 0xE0 && p[1] < 0xA0)
        return 0;
      if (c == 0xED && p[1] >= 0xA0)
        return 0;
      return 3;
    }
  if (c >= 0xF0 && c <= 0xF4)
    {
      if (avail < 4 || !CONT (p[1]) || !CONT (p[2]) || !CONT (p[3]))
        return 0;
      if (c == 0xF0 && p[1] < 0x90)
        return 0;
      if (c == 0xF4 && p[1] >= 0x90)
        return 0;
      return 4;
    }
#undef CONT
  return 0;
}

/* Byte classes inside a string: 0 plain, 1 needs attention. */
static const guint8 string_special[256] = {
  /* 0x00..0x1F: control characters */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* '"' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\\' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x80..0xFF: non-ASCII, validated */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Non-zero if one of the 8 bytes of w is '"', '\\', < 0x20 or >= 0x80. */
static inline guint64
word_has_special (guint64 w)
{
  const guint64 ones = G_GUINT64_CONSTANT (0x0101010101010101);
  const guint64 highs = G_GUINT64_CONSTANT (0x8080808080808080);
  guint64 q = w ^ (ones * 0x22);
  guint64 b = w ^ (ones * 0x5C);

  return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w) & highs;
}

static inline int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static inline int
read_hex4 (const char *p)
{
  int a = hex_value (p[0]), b = hex_value (p[1]), c = hex_value (p[2]), d = hex_value (p[3]);

  if ((a | b | c | d) < 0)
    return -1;
  return (a << 12) | (b << 8) | (c << 4) | d;
}

static inline char *
put_utf8 (char    *o,
          guint32  cp)
{
  if (cp < 0x80)
    *o++ = (char) cp;
  else if (cp < 0x800)
    {
      *o++ = (char) (0xC0 | (cp >> 6));
      *o++ = (char) (0x80 | (cp & 0x3F));
    }
  else if (cp < 0x10000)
    {
      /* also lone surrogates: WTF-8 */
      *o++ = (char) (0xE0 | (cp >> 12));
      *o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
      *o++ = (char) (0x80 | (cp & 0x3F));
    }
  else
    {
      *o++ = (char) (0xF0 | (cp >> 18));
      *o++ = (char) (0x80 | ((cp >> 12) & 0x3F));
      *o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
      *o++ = (char) (0x80 | (cp & 0x3F));
    }
  return o;
}

/* Decodes the escapes of raw[0..raw_len) (known to contain no '"' ending the
 * string, no control character and only valid UTF-8) into out. Returns the
 * decoded length or -1 with *bad_at at the bad escape. */
static inline gssize
decode_escapes_core (const char  *raw,
                     gsize        raw_len,
                     char        *out,
                     const char **bad_at)
{
  const char *p = raw;
  const char *end = raw + raw_len;
  char *o = out;

  while (p < end)
    {
      const char *bs = memchr (p, '\\', (gsize) (end - p));
      int cp;

      if (bs == NULL)
        {
          memcpy (o, p, (gsize) (end - p));
          o += end - p;
          break;
        }
      memcpy (o, p, (gsize) (bs - p));
      o += bs - p;
      p = bs + 1;
      /* The scan guaranteed a character after the backslash. */
      switch (*p)
        {
        case '"':
        case '\\':
        case '/':
          *o++ = *p++;
          break;
        case 'b':
          *o++ = '\b';
          p++;
          break;
        case 'f':
          *o++ = '\f';
          p++;
          break;
        case 'n':
          *o++ = '\n';
          p++;
          break;
        case 'r':
          *o++ = '\r';
          p++;
          break;
        case 't':
          *o++ = '\t';
          p++;
          break;
        case 'u':
          if (end - p < 5 || (cp = read_hex4 (p + 1)) < 0)
            {
              *bad_at = bs;
              return -1;
            }
          p += 5;
          if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u')
            {
              int lo = read_hex4 (p + 2);

              if (lo >= 0xDC00 && lo <= 0xDFFF)
                {
                  cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                  p += 6;
                }
            }
          o = put_utf8 (o, (guint32) cp);
          break;
        default:
          *bad_at = bs;
          return -1;
        }
    }

  return o - out;
}

static gssize
decode_escapes (Parser     *ps,
                const char *raw,
                gsize       raw_len,
                char       *out)
{
  const char *bad_at = NULL;
  gssize n = decode_escapes_core (raw, raw_len, out, &bad_at);

  if (n < 0)
    parse_fail (ps, bad_at, ERR_BAD_ESCAPE);
  return n;
}

gssize
ts_json_decode_escapes (const char *raw,
                        gsize       raw_len,
                        char       *out)
{
  const char *bad_at;

  return decode_escapes_core (raw, raw_len, out, &bad_at);
}

/* Scans the string whose opening quote is at q: returns the position of
 * the closing quote, or NULL with *err_at and *err set. */
static inline const char *
scan_string (const char  *q,
             const char  *end,
             gboolean    *has_escape,
             const char **err_at,
             ParseErr    *err)
{
  const char *p = q + 1;

  *has_escape = FALSE;
  for (;;)
    {
      guint8 c;

      /* Eight plain bytes at a time. */
      while (end - p >= 8)
        {
          guint64 w;

          memcpy (&w, p, 8);
          if (word_has_special (w))
            break;
          p += 8;
        }
      while (p < end && !string_special[(guint8) *p])
        p++;
      if (G_UNLIKELY (p >= end))
        {
          *err_at = q;
          *err = ERR_UNTERMINATED_STRING;
          return NULL;
        }

      c = (guint8) *p;
      if (c == '"')
        break;
      if (c == '\\')
        {
          *has_escape = TRUE;
          if (end - p < 2)
            {
              *err_at = q;
              *err = ERR_UNTERMINATED_STRING;
              return NULL;
            }
          if ((guint8) p[1] < 0x20)
            {
              *err_at = p + 1;
              *err = ERR_CONTROL_CHAR;
              return NULL;
            }
          if ((guint8) p[1] >= 0x80)
            {
              *err_at = p;
              *err = ERR_BAD_ESCAPE;
              return NULL;
            }
          p += 2;
        }
      else if (c < 0x20)
        {
          *err_at = p;
          *err = ERR_CONTROL_CHAR;
          return NULL;
        }
      else
        {
          gsize n = utf8_seq_len ((const guint8 *) p, (const guint8 *) end);

          if (n == 0)
            {
              *err_at = p;
              *err = ERR_BAD_UTF8;
              return NULL;
            }
          p += n;
        }
    }
  return p;
}

const char *
ts_json_scan_string (const char  *p,
                     const char  *end,
                     gboolean    *has_escape)
{
  const char *err_at;
  ParseErr err;

  return scan_string (p, end, has_escape, &err_at, &err);
}

/* ps->p is at the opening quote. */
static gboolean
parse_string (Parser      *ps,
              const char **out_str,
              guint32     *out_len)
{
  const char *s = ps->p + 1;
  const char *p, *err_at;
  ParseErr err;
  gboolean has_escape;
  gsize raw_len;
  char *dst;

  p = scan_string (ps->p, ps->end, &has_escape, &err_at, &err);
  if (G_UNLIKELY (p == NULL))
    return parse_fail (ps, err_at, err);

  raw_len = (gsize) (p - s);
  if (G_UNLIKELY (raw_len >= G_MAXUINT32))
    return parse_fail (ps, ps->p, ERR_TOO_LONG);

  dst = arena_alloc_bytes (ps->arena, raw_len + 1);
  if (!has_escape)
    {
      memcpy (dst, s, raw_len);
      dst[raw_len] = '\0';
      *out_len = (guint32) raw_len;
    }
  else
    {
      gssize n = decode_escapes (ps, s, raw_len, dst);

      if (n < 0)
        return FALSE;
      dst[n] = '\0';
      arena_shrink_last (ps->arena, dst, raw_len + 1, (gsize) n + 1);
      *out_len = (guint32) n;
    }
  *out_str = dst;
  ps->p = p + 1;
  return TRUE;
}

static const double exact_pow10[23] G_GNUC_UNUSED = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The Clinger fast path needs every double operation to round once, to
 * double precision (not so with x87 excess precision). */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
# define HAVE_EXACT_DOUBLE_ARITHMETIC 1
#else
# define HAVE_EXACT_DOUBLE_ARITHMETIC 0
#endif

static inline gboolean
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

/* Scans the number starting at start: returns the position after it, or
 * NULL with *err_at and *err set. */
static inline const char *
scan_number (const char  *start,
             const char  *end,
             double      *out,
             const char **err_at,
             ParseErr    *err)
{
  const char *p = start;
  gboolean neg = FALSE;
  guint64 mant = 0;
  int sig_digits = 0;       /* significant digits accumulated in mant */
  gboolean truncated = FALSE;
  int frac_digits = 0;
  gboolean has_frac = FALSE, has_exp = FALSE;
  int exp_val = 0;

  if (*p == '-')
    {
      neg = TRUE;
      p++;
    }
  if (p >= end)
    {
      *err_at = p;
      *err = ERR_UNEXPECTED_END;
      return NULL;
    }

  if (*p == '0')
    {
      p++;
      if (p < end && is_digit (*p))
        {
          *err_at = p - 1;
          *err = ERR_LEADING_ZERO;
          return NULL;
        }
    }
  else if (*p >= '1' && *p <= '9')
    {
      while (p < end && is_digit (*p))
        {
          if (sig_digits < 19)
            {
              mant = mant * 10 + (guint64) (*p - '0');
              sig_digits++;
            }
          else
            truncated = TRUE;
          p++;
        }
    }
  else
    {
      *err_at = p;
      *err = ERR_BAD_NUMBER;
      return NULL;
    }

  if (p < end && *p == '.')
    {
      has_frac = TRUE;
      p++;
      if (p >= end || !is_digit (*p))
        {
          *err_at = p;
          *err = ERR_BAD_NUMBER;
          return NULL;
        }
      while (p < end && is_digit (*p))
        {
          if (sig_digits < 19)
            {
              if (mant != 0 || *p != '0')
                {
                  mant = mant * 10 + (guint64) (*p - '0');
                  sig_digits++;
                }
              frac_digits++;
            }
          else
            truncated = TRUE;
          p++;
        }
    }

  if (p < end && (*p == 'e' || *p == 'E'))
    {
      gboolean exp_neg = FALSE;

      has_exp = TRUE;
      p++;
      if (p < end && (*p == '+' || *p == '-'))
        {
          exp_neg = *p == '-';
          p++;
        }
      if (p >= end || !is_digit (*p))
        {
          *err_at = p;
          *err = ERR_BAD_NUMBER;
          return NULL;
        }
      while (p < end && is_digit (*p))
        {
          if (exp_val < 100000)
            exp_val = exp_val * 10 + (*p - '0');
          p++;
        }
      if (exp_neg)
        exp_val = -exp_val;
    }

  if (!truncated && sig_digits <= 15)
    {
      if (!has_frac && !has_exp)
        {
          /* A short integer: exact. */
          double v = (double) mant;

          *out = neg ? -v : v;
          return p;
        }
#if HAVE_EXACT_DOUBLE_ARITHMETIC
      else
        {
          int e10 = exp_val - frac_digits;

          if (mant == 0)
            {
              *out = neg ? -0.0 : 0.0;
              return p;
            }
          if (e10 >= -22 && e10 <= 22)
            {
              /* mant < 10^15 < 2^53 and 10^|e10| are exact: one correctly
               * rounded operation gives the correctly rounded result. */
              double v = (double) mant;

              v = e10 >= 0 ? v * exact_pow10[e10] : v / exact_pow10[-e10];
              *out = neg ? -v : v;
              return p;
            }
        }
#endif
    }

  /* General case: the locale-independent, correctly rounding strtod. */
  {
    char small[64];
    gsize n = (gsize) (p - start);
    char *buf = n < sizeof small ? small : g_malloc (n + 1);

    memcpy (buf, start, n);
    buf[n] = '\0';
    *out = g_ascii_strtod (buf, NULL);
    if (buf != small)
      g_free (buf);
  }
  return p;
}

const char *
ts_json_scan_number (const char *p,
                     const char *end,
                     double     *out)
{
  const char *err_at;
  ParseErr err;

  return scan_number (p, end, out, &err_at, &err);
}

static gboolean
parse_number (Parser *ps,
              double *out)
{
  const char *err_at;
  ParseErr err;
  const char *p = scan_number (ps->p, ps->end, out, &err_at, &err);

  if (G_UNLIKELY (p == NULL))
    return parse_fail (ps, err_at, err);
  ps->p = p;
  return TRUE;
}

static gboolean parse_value (Parser     *ps,
                             TsJsonNode *out,
                             int         depth);

static gboolean
parse_array (Parser     *ps,
             TsJsonNode *out,
             int         depth)
{
  gsize base = ps->stack_len;
  gsize n;

  if (depth > TS_JSON_MAX_DEPTH)
    return parse_fail (ps, ps->p, ERR_TOO_DEEP);

  ps->p++;
  skip_ws (ps);
  if (ps->p < ps->end && *ps->p == ']')
    {
      ps->p++;
      out->type = TS_JSON_ARRAY;
      out->len = 0;
      out->u.items = NULL;
      return TRUE;
    }

  for (;;)
    {
      TsJsonNode item;

      if (!parse_value (ps, &item, depth))
        return FALSE;
      memcpy (stack_push (ps, sizeof (TsJsonNode)), &item, sizeof item);
      skip_ws (ps);
      if (G_UNLIKELY (ps->p >= ps->end))
        return parse_fail (ps, ps->p, ERR_UNEXPECTED_END);
      if (*ps->p == ',')
        {
          ps->p++;
          skip_ws (ps);
          continue;
        }
      if (*ps->p == ']')
        {
          ps->p++;
          break;
        }
      return parse_fail (ps, ps->p, ERR_EXPECTED_COMMA_ARRAY);
    }

  n = (ps->stack_len - base) / sizeof (TsJsonNode);
  if (G_UNLIKELY (n > G_MAXUINT32))
    return parse_fail (ps, ps->p, ERR_TOO_LONG);
  out->type = TS_JSON_ARRAY;
  out->len = (guint32) n;
  out->u.items = arena_alloc (ps->arena, n * sizeof (TsJsonNode));
  memcpy (out->u.items, ps->stack + base, n * sizeof (TsJsonNode));
  ps->stack_len = base;
  return TRUE;
}

/* Removes duplicate keys in place (last value wins at the position of the
 * first occurrence). Returns the new count. */
static gsize
dedup_members (Parser       *ps,
               TsJsonMember *m,
               gsize         n)
{
  gsize w = 0;

  if (n <= DEDUP_LINEAR_MAX)
    {
      for (gsize j = 0; j < n; j++)
        {
          gsize i;

          for (i = 0; i < w; i++)
            if (key_equal (&m[i], m[j].key, m[j].key_len))
              break;
          if (i < w)
            m[i].value = m[j].value;
          else
            {
              if (w != j)
                m[w] = m[j];
              w++;
            }
        }
      return w;
    }
  else
    {
      gsize cap = 32;
      guint32 mask;

      while (cap < 2 * n)
        cap *= 2;
      if (cap > ps->dedup_cap)
        {
          g_free (ps->dedup);
          ps->dedup = g_new (guint32, cap);
          ps->dedup_cap = cap;
        }
      memset (ps->dedup, 0, cap * sizeof (guint32));
      mask = (guint32) (cap - 1);

      for (gsize j = 0; j < n; j++)
        {
          guint32 slot = key_hash (m[j].key, m[j].key_len) & mask;

          for (;;)
            {
              guint32 s = ps->dedup[slot];

              if (s == 0)
                {
                  if (w != j)
                    m[w] = m[j];
                  w++;
                  ps->dedup[slot] = (guint32) w;
                  break;
                }
              if (key_equal (&m[s - 1], m[j].key, m[j].key_len))
                {
                  m[s - 1].value = m[j].value;
                  break;
                }
              slot = (slot + 1) & mask;
            }
        }
      return w;
    }
}

static int
compare_u64 (const void *a,
             const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;

  return x < y ? -1 : x > y;
}

/* Copies the n members m into dst in JS property order. */
static void
order_members (Parser             *ps,
               const TsJsonMember *m,
               gsize               n,
               TsJsonMember       *dst)
{
  gsize n_index = 0;
  gboolean in_order = TRUE;
  guint32 prev = 0;
  gsize k;

  /* Pass 1: are the index keys already first and ascending? */
  for (gsize i = 0; i < n; i++)
    {
      guint32 idx;

      if (ts_json_is_array_index (m[i].key, m[i].key_len, &idx))
        {
          if (n_index != i || (n_index > 0 && idx <= prev))
            in_order = FALSE;
          prev = idx;
          n_index++;
        }
    }

  if (in_order)
    {
      memcpy (dst, m, n * sizeof (TsJsonMember));
      return;
    }

  if (n_index > ps->order_cap)
    {
      g_free (ps->order);
      ps->order_cap = MAX (n_index, 64);
      ps->order = g_new (guint64, ps->order_cap);
    }
  k = 0;
  for (gsize i = 0; i < n; i++)
    {
      guint32 idx;

      if (ts_json_is_array_index (m[i].key, m[i].key_len, &idx))
        ps->order[k++] = ((guint64) idx << 32) | i;
    }
  qsort (ps->order, n_index, sizeof (guint64), compare_u64);

  for (k = 0; k < n_index; k++)
    dst[k] = m[ps->order[k] & G_MAXUINT32];
  for (gsize i = 0; i < n; i++)
    if (!ts_json_is_array_index (m[i].key, m[i].key_len, NULL))
      dst[k++] = m[i];
  g_assert (k == n);
}

static gboolean
parse_object (Parser     *ps,
              TsJsonNode *out,
              int         depth)
{
  gsize base = ps->stack_len;
  gboolean digit_key = FALSE;
  TsJsonMember *m;
  gsize n;

  if (depth > TS_JSON_MAX_DEPTH)
    return parse_fail (ps, ps->p, ERR_TOO_DEEP);

  ps->p++;
  skip_ws (ps);
  if (ps->p < ps->end && *ps->p == '}')
    {
      ps->p++;
      out->type = TS_JSON_OBJECT;
      out->len = 0;
      out->u.members = NULL;
      return TRUE;
    }

  for (;;)
    {
      TsJsonMember member;

      if (G_UNLIKELY (ps->p >= ps->end))
        return parse_fail (ps, ps->p, ERR_UNEXPECTED_END);
      if (*ps->p != '"')
        return parse_fail (ps, ps->p, ERR_EXPECTED_KEY);
      if (!parse_string (ps, &member.key, &member.key_len))
        return FALSE;
      if (member.key_len > 0 && is_digit (member.key[0]))
        digit_key = TRUE;
      skip_ws (ps);
      if (G_UNLIKELY (ps->p >= ps->end))
        return parse_fail (ps, ps->p, ERR_UNEXPECTED_END);
      if (*ps->p != ':')
        return parse_fail (ps, ps->p, ERR_EXPECTED_COLON);
      ps->p++;
      skip_ws (ps);
      if (!parse_value (ps, &member.value, depth))
        return FALSE;
      memcpy (stack_push (ps, sizeof (TsJsonMember)), &member, sizeof member);
      skip_ws (ps);
      if (G_UNLIKELY (ps->p >= ps->end))
        return parse_fail (ps, ps->p, ERR_UNEXPECTED_END);
      if (*ps->p == ',')
        {
          ps->p++;
          skip_ws (ps);
          continue;
        }
      if (*ps->p == '}')
        {
          ps->p++;
          break;
        }
      return parse_fail (ps, ps->p, ERR_EXPECTED_COMMA_OBJECT);
    }

  m = (TsJsonMember *) (gpointer) (ps->stack + base);
  n = (ps->stack_len - base) / sizeof (TsJsonMember);
  if (n > 1)
    n = dedup_members (ps, m, n);
  if (G_UNLIKELY (n > G_MAXUINT32))
    return parse_fail (ps, ps->p, ERR_TOO_LONG);

  out->type = TS_JSON_OBJECT;
  out->len = (guint32) n;
  out->u.members = arena_alloc (ps->arena, n * sizeof (TsJsonMember));
  if (digit_key)
    order_members (ps, m, n, out->u.members);
  else
    memcpy (out->u.members, m, n * sizeof (TsJsonMember));
  ps->stack_len = base;
  return TRUE;
}

static inline gboolean
match_literal (Parser     *ps,
               const char *lit,
               gsize       len)
{
  if ((gsize) (ps->end - ps->p) >= len && memcmp (ps->p, lit, len) == 0)
    {
      ps->p += len;
      return TRUE;
    }
  /* Point at the first differing byte. */
  for (gsize i = 0; i < len; i++)
    {
      if (ps->p + i >= ps->end)
        return parse_fail (ps, ps->p + i, ERR_UNEXPECTED_END);
      if (ps->p[i] != lit[i])
        return parse_fail (ps, ps->p + i, ERR_UNEXPECTED_CHAR);
    }
  g_assert_not_reached ();
  return FALSE;
}

/* ps->p is at the first byte of the value (whitespace skipped). */
static gboolean
parse_value (Parser     *ps,
             TsJsonNode *out,
             int         depth)
{
  if (G_UNLIKELY (ps->p >= ps->end))
    return parse_fail (ps, ps->p, ERR_UNEXPECTED_END);

  switch (*ps->p)
    {
    case '"':
      out->type = TS_JSON_STRING;
      return parse_string (ps, &out->u.str, &out->len);
    case '{':
      return parse_object (ps, out, depth + 1);
    case '[':
      return parse_array (ps, out, depth + 1);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      out->type = TS_JSON_NUMBER;
      out->len = 0;
      return parse_number (ps, &out->u.num);
    case 't':
      out->type = TS_JSON_TRUE;
      out->len = 0;
      out->u.str = NULL;
      return match_literal (ps, "true", 4);
    case 'f':
      out->type = TS_JSON_FALSE;
      out->len = 0;
      out->u.str = NULL;
      return match_literal (ps, "false", 5);
    case 'n':
      out->type = TS_JSON_NULL;
      out->len = 0;
      out->u.str = NULL;
      return match_literal (ps, "null", 4);
    default:
      return parse_fail (ps, ps->p, ERR_UNEXPECTED_CHAR);
    }
}

TsJsonDoc *
ts_json_parse (const char  *text,
               gssize       len,
               GError     **error)
{
  TsJsonDoc *doc;
  Parser ps;
  gboolean ok;

  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (len < 0)
    len = (gssize) strlen (text);

  doc = g_new0 (TsJsonDoc, 1);
  /* Nodes take about as much room as the text; start there. */
  arena_init (&doc->arena, (gsize) len + 256);

  memset (&ps, 0, sizeof ps);
  ps.start = text;
  ps.p = text;
  ps.end = text + len;
  ps.arena = &doc->arena;
  ps.error = error;

  skip_ws (&ps);
  ok = parse_value (&ps, &doc->root, 0);
  if (ok)
    {
      skip_ws (&ps);
      if (ps.p != ps.end)
        ok = parse_fail (&ps, ps.p, ERR_TRAILING);
    }

  g_free (ps.stack);
  g_free (ps.dedup);
  g_free (ps.order);

  if (!ok)
    {
      ts_json_doc_free (doc);
      return NULL;
    }
  return doc;
}

/* ---- Numbers ------------------------------------------------------------------ */

/* A decimal s x 10^e. */
typedef struct {
  guint64 s;
  int     e;
} Decimal;

static const guint64 pow10_u64[20] = {
  G_GUINT64_CONSTANT (1),
  G_GUINT64_CONSTANT (10),
  G_GUINT64_CONSTANT (100),
  G_GUINT64_CONSTANT (1000),
  G_GUINT64_CONSTANT (10000),
  G_GUINT64_CONSTANT (100000),
  G_GUINT64_CONSTANT (1000000),
  G_GUINT64_CONSTANT (10000000),
  G_GUINT64_CONSTANT (100000000),
  G_GUINT64_CONSTANT (1000000000),
  G_GUINT64_CONSTANT (10000000000),
  G_GUINT64_CONSTANT (100000000000),
  G_GUINT64_CONSTANT (1000000000000),
  G_GUINT64_CONSTANT (10000000000000),
  G_GUINT64_CONSTANT (100000000000000),
  G_GUINT64_CONSTANT (1000000000000000),
  G_GUINT64_CONSTANT (10000000000000000),
  G_GUINT64_CONSTANT (100000000000000000),
  G_GUINT64_CONSTANT (1000000000000000000),
  G_GUINT64_CONSTANT (10000000000000000000),
};

static gsize format_uint64 (char    *buf,
                            guint64  v);

/* The double nearest to d (correctly rounded, in any locale). */
static double
decimal_to_double (const Decimal *d)
{
  char buf[48];
  gsize n = format_uint64 (buf, d->s);
  int e = d->e;

  buf[n++] = 'e';
  if (e < 0)
    {
      buf[n++] = '-';
      e = -e;
    }
  n += format_uint64 (buf + n, (guint64) e);
  buf[n] = '\0';
  return g_ascii_strtod (buf, NULL);
}

/* The correctly rounded prec-digit decimal of x > 0 (glibc's printf rounds
 * exactly). Only the digits and the exponent are taken from the printf
 * output, so the locale's radix character does not matter. */
static void
decimal_nearest (Decimal *d,
                 double   x,
                 int      prec)
{
  char buf[64];
  const char *p = buf;
  int e = 0;
  gboolean neg = FALSE;

  snprintf (buf, sizeof buf, "%.*e", prec - 1, x);

  d->s = 0;
  while (*p != '\0' && *p != 'e')
    {
      if (is_digit (*p))
        d->s = d->s * 10 + (guint64) (*p - '0');
      p++;
    }
  g_assert (*p == 'e');
  p++;
  if (*p == '-' || *p == '+')
    neg = *p++ == '-';
  while (is_digit (*p))
    e = e * 10 + (*p++ - '0');
  d->e = (neg ? -e : e) - (prec - 1);
}

/* Neighbours on the prec-digit grid (d has prec digits). */
static void
decimal_up (Decimal *d,
            int      prec)
{
  d->s++;
  if (d->s == pow10_u64[prec])
    {
      d->s = pow10_u64[prec - 1];
      d->e++;
    }
}

static void
decimal_down (Decimal *d,
              int      prec)
{
  if (d->s == pow10_u64[prec - 1])
    {
      /* 100..0 -> 99..9 in the decade below */
      d->s = pow10_u64[prec] - 1;
      d->e--;
    }
  else
    d->s--;
}

/* Is there a prec-digit decimal (prec <= 15) that converts back to x? d17
 * is the correctly rounded 17-digit decimal of x, so floor and ceiling of x
 * on the prec-digit grid are among t-1, t, t+1 (t = d17 truncated). The
 * rounding interval of x is contiguous, so if it holds a prec-digit decimal
 * it holds the floor or the ceiling. On success *out is the one that
 * converts back, or the nearest when several do (only for subnormals). */
static gboolean
shortest_try_short (double         x,
                    const Decimal *d17,
                    int            prec,
                    gboolean       normal,
                    Decimal       *out)
{
  guint64 grid = pow10_u64[17 - prec];
  guint64 rest = d17->s % grid;
  Decimal cand[3];
  int n_ok = 0;

  /* For a normal double half the rounding interval is below 11.2 units of
   * the 17th digit, and d17 is within half a unit of x: a prec-digit decimal
   * that converts back lies within 12 units of d17. */
  if (normal && rest > 16 && rest < grid - 16)
    return FALSE;

  cand[0].s = d17->s / grid;
  cand[0].e = d17->e + (17 - prec);
  cand[1] = cand[0];
  decimal_down (&cand[1], prec);
  cand[2] = cand[0];
  decimal_up (&cand[2], prec);

  for (int i = 0; i < 3; i++)
    if (decimal_to_double (&cand[i]) == x)
      {
        if (n_ok++ == 0)
          *out = cand[i];
      }
  if (n_ok > 1)
    {
      /* Several convert back: take the nearest, which is then one of them. */
      decimal_nearest (out, x, prec);
    }
  return n_ok > 0;
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

static inline u128
pow10_u128 (int n)
{
  return n <= 19 ? (u128) pow10_u64[n] : (u128) pow10_u64[19] * pow10_u64[n - 19];
}

/* The rounding interval of x = m 2^q, scaled by 4: its ends and middle are
 * (4m - dl) 2^sh, 4m 2^sh and (4m + 2) 2^sh with sh = q - 2. The ends belong
 * to it when m is even (strtod rounds ties to even). */
typedef struct {
  guint64  lo;
  guint64  mid;
  guint64  hi;
  int      sh;
  gboolean inclusive;
} Interval;

/* n 2^sh 10^j = num / den */
static inline void
interval_scale (guint64  n,
                int      sh,
                int      j,
                u128    *num,
                u128    *den)
{
  u128 a = n, d = 1;

  if (sh >= 0)
    a <<= sh;
  else
    d <<= -sh;
  if (j >= 0)
    a *= pow10_u128 (j);
  else
    d *= pow10_u128 (-j);
  *num = a;
  *den = d;
}

/* The integers c with c 10^-j in the interval: [*c_lo, *c_hi], FALSE if
 * there is none. */
static gboolean
interval_range (const Interval *iv,
                int             j,
                guint64        *c_lo,
                guint64        *c_hi)
{
  u128 num, den, q, r;
  guint64 lo, hi;

  interval_scale (iv->lo, iv->sh, j, &num, &den);
  q = num / den;
  r = num % den;
  lo = (guint64) q + (r != 0 || !iv->inclusive);

  interval_scale (iv->hi, iv->sh, j, &num, &den);
  q = num / den;
  r = num % den;
  if (r == 0 && !iv->inclusive)
    {
      if (q == 0)
        return FALSE;
      q--;
    }
  hi = (guint64) q;

  *c_lo = lo;
  *c_hi = hi;
  return lo <= hi;
}

/* Exact shortest-and-nearest for 2^-10 <= x < 2^100 (everything then fits
 * in 128 bits). */
static void
shortest_decimal_exact (double   x,
                        Decimal *out)
{
  guint64 bits, frac, c_lo = 0, c_hi = 0, c;
  int biased, k, e_est, t, a, b, j;
  Interval iv;
  u128 num, den, q, r;

  memcpy (&bits, &x, sizeof bits);
  biased = (int) (bits >> 52);
  frac = bits & ((G_GUINT64_CONSTANT (1) << 52) - 1);
  iv.mid = 4 * (frac | (G_GUINT64_CONSTANT (1) << 52));
  iv.hi = iv.mid + 2;
  iv.lo = iv.mid - ((frac == 0 && biased > 1) ? 1 : 2);
  iv.sh = biased - 1075 - 2;
  iv.inclusive = (frac & 1) == 0;

  /* x is in [2^k, 2^(k+1)); its decimal exponent E is e_est or e_est + 1
   * (78913 / 2^18 is log10 (2) to 7 digits). */
  k = biased - 1023;
  t = k * 78913;
  e_est = t >= 0 ? t >> 18 : -((-t + (1 << 18) - 1) >> 18);
  /* 10^-a > 10 x: nothing at a; b gives at least 17 digits: always one. */
  a = -(e_est + 3);
  b = 17 - e_est;

  j = b;
  if (!interval_range (&iv, j, &c_lo, &c_hi))
    g_assert_not_reached ();

  /* Usually 16 or 17 digits: walk down a few steps, then bisect. */
  for (int step = 0; step < 4; step++)
    {
      guint64 lo2, hi2;

      if (j - 1 <= a || !interval_range (&iv, j - 1, &lo2, &hi2))
        goto found;
      j--;
    }
  {
    int lo = a, hi = j;   /* nothing at lo, something at hi */

    while (hi - lo > 1)
      {
        int mid = lo + (hi - lo) / 2;
        guint64 lo2, hi2;

        if (interval_range (&iv, mid, &lo2, &hi2))
          hi = mid;
        else
          lo = mid;
      }
    j = hi;
  }

found:
  if (!interval_range (&iv, j, &c_lo, &c_hi))
    g_assert_not_reached ();

  /* the nearest to x (ties to even), kept inside the interval */
  interval_scale (iv.mid, iv.sh, j, &num, &den);
  q = num / den;
  r = num % den;
  c = (guint64) q;
  if (2 * r > den || (2 * r == den && (c & 1) != 0))
    c++;
  out->s = CLAMP (c, c_lo, c_hi);
  out->e = -j;
}
#endif

/* Shortest round-trip decimal of a finite x > 0 that is neither an integer
 * below 2^53 nor caught by the short-decimal path. */
static void
shortest_decimal (double   x,
                  Decimal *out)
{
  Decimal d17, d16;
  guint64 last;
  double v;
  gboolean normal = x >= DBL_MIN;
  int lo, hi;

#ifdef __SIZEOF_INT128__
  if (x >= 0x1p-10 && x < 0x1p100)
    {
      shortest_decimal_exact (x, out);
      return;
    }
#endif

  decimal_nearest (&d17, x, 17);   /* 17 digits always convert back */

  /* 16 digits: the nearest one, derived from d17 unless its last digit is 5
   * (then rounding d17 again could differ from rounding x). */
  last = d17.s % 10;
  if (last != 5)
    {
      d16.s = d17.s / 10 + (last > 5);
      d16.e = d17.e + 1;
      if (d16.s == pow10_u64[16])
        {
          d16.s = pow10_u64[15];
          d16.e++;
        }
    }
  else
    decimal_nearest (&d16, x, 16);

  v = decimal_to_double (&d16);
  if (v != x)
    {
      /* The nearest does not convert back; the neighbour across x might. */
      if (v < x)
        decimal_up (&d16, 16);
      else
        decimal_down (&d16, 16);
      if (decimal_to_double (&d16) != x)
        {
          *out = d17;
          return;
        }
    }
  *out = d16;

  /* Fewer digits: the answer is monotone in the precision. */
  if (!shortest_try_short (x, &d17, 15, normal, out))
    return;
  lo = 1;
  hi = 15;
  while (lo < hi)
    {
      int mid = (lo + hi) / 2;
      Decimal d;

      if (shortest_try_short (x, &d17, mid, normal, &d))
        {
          hi = mid;
          *out = d;
        }
      else
        lo = mid + 1;
    }
  /* *out is the result of the last successful probe, at precision hi */
}

static gsize
format_uint64 (char    *buf,
               guint64  v)
{
  char tmp[24];
  int n = 0;

  do
    {
      tmp[n++] = (char) ('0' + v % 10);
      v /= 10;
    }
  while (v != 0);
  for (int i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return (gsize) n;
}

/* Lays out digits d[0..k) with decimal point position n (value =
 * 0.d x 10^n) per Number::toString rules 4-7. */
static gsize
layout_number (char       *buf,
               const char *d,
               int         k,
               int         n)
{
  char *o = buf;

  if (k <= n && n <= 21)
    {
      memcpy (o, d, (gsize) k);
      o += k;
      memset (o, '0', (gsize) (n - k));
      o += n - k;
    }
  else if (0 < n && n <= 21)
    {
      memcpy (o, d, (gsize) n);
      o += n;
      *o++ = '.';
      memcpy (o, d + n, (gsize) (k - n));
      o += k - n;
    }
  else if (-6 < n && n <= 0)
    {
      *o++ = '0';
      *o++ = '.';
      memset (o, '0', (gsize) -n);
      o += -n;
      memcpy (o, d, (gsize) k);
      o += k;
    }
  else
    {
      int e = n - 1;

      *o++ = d[0];
      if (k > 1)
        {
          *o++ = '.';
          memcpy (o, d + 1, (gsize) (k - 1));
          o += k - 1;
        }
      *o++ = 'e';
      if (e > 0)
        *o++ = '+';
      else
        {
          *o++ = '-';
          e = -e;
        }
      o += format_uint64 (o, (guint64) e);
    }
  return (gsize) (o - buf);
}

gsize
ts_json_format_number (char   *buf,
                       double  x)
{
  char *o = buf;

  if (!isfinite (x))
    {
      memcpy (buf, "null", 5);
      return 4;
    }
  if (x == 0)
    {
      memcpy (buf, "0", 2);
      return 1;
    }
  if (x < 0)
    {
      *o++ = '-';
      x = -x;
    }

  /* Integers below 2^53: their digits are the shortest form. */
  if (x < 9007199254740992.0)
    {
      guint64 i = (guint64) x;

      if ((double) i == x)
        {
          o += format_uint64 (o, i);
          *o = '\0';
          return (gsize) (o - buf);
        }
    }

#if HAVE_EXACT_DOUBLE_ARITHMETIC
  /* Short decimals: if x == n / 10^e exactly as IEEE division computes it
   * (n < 10^15, e <= 15), the decimal n x 10^-e round-trips. With at most 15
   * digits the rounding interval of x is narrower than a unit of the last
   * digit, so it is the only decimal of that length that does, and shorter
   * ones would be too (padded with zeros): it is the shortest and closest. */
  if (x < 1e15 && x >= 1e-15)
    {
      for (int e = 1; e <= 15; e++)
        {
          double y = x * exact_pow10[e];
          guint64 n;

          if (y >= 1e15)
            break;
          n = (guint64) y;
          if ((double) n == y && n != 0 && (double) n / exact_pow10[e] == x)
            {
              char digits[24];
              gsize k = format_uint64 (digits, n);

              while (k > 1 && digits[k - 1] == '0')
                {
                  /* cannot happen for the smallest e, kept for safety */
                  k--;
                  e--;
                }
              o += layout_number (o, digits, (int) k, (int) k - e);
              *o = '\0';
              return (gsize) (o - buf);
            }
        }
    }
#endif

  /* General case. */
  {
    Decimal d;
    char digits[24];
    gsize k;

    shortest_decimal (x, &d);
    while (d.s % 10 == 0)
      {
        d.s /= 10;
        d.e++;
      }
    k = format_uint64 (digits, d.s);
    o += layout_number (o, digits, (int) k, d.e + (int) k);
  }
  *o = '\0';
  return (gsize) (o - buf);
}

void
ts_json_write_number (GString *out,
                      double   x)
{
  char buf[40];
  gsize n = ts_json_format_number (buf, x);

  g_string_append_len (out, buf, (gssize) n);
}

/* ---- Strings ------------------------------------------------------------------ */

/* 1: escape (control characters, '"', '\\'); 2: possible lone surrogate. */
static const guint8 write_special[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0,   /* 0xED */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static const char hex_lower[] = "0123456789abcdef";

void
ts_json_write_string (GString    *out,
                      const char *s,
                      gsize       len)
{
  const guint8 *p = (const guint8 *) s;
  const guint8 *end = p + len;
  const guint8 *run = p;

  g_string_append_c (out, '"');
  while (p < end)
    {
      char esc[8];
      gsize esc_len;
      guint8 c;

      while (p < end && !write_special[*p])
        p++;
      if (p >= end)
        break;

      c = *p;
      if (c == 0xED)
        {
          guint32 cp;

          if (end - p < 3 || p[1] < 0xA0)
            {
              p++;
              continue;
            }
          /* ED A0..BF xx: a lone surrogate (WTF-8) */
          cp = 0xD000u | ((guint32) (p[1] & 0x3F) << 6) | (p[2] & 0x3F);
          esc[0] = '\\';
          esc[1] = 'u';
          esc[2] = hex_lower[(cp >> 12) & 0xF];
          esc[3] = hex_lower[(cp >> 8) & 0xF];
          esc[4] = hex_lower[(cp >> 4) & 0xF];
          esc[5] = hex_lower[cp & 0xF];
          esc_len = 6;
          g_string_append_len (out, (const char *) run, p - run);
          g_string_append_len (out, esc, (gssize) esc_len);
          p += 3;
          run = p;
          continue;
        }

      esc[0] = '\\';
      esc_len = 2;
      switch (c)
        {
        case '"':
          esc[1] = '"';
          break;
        case '\\':
          esc[1] = '\\';
          break;
        case '\b':
          esc[1] = 'b';
          break;
        case '\t':
          esc[1] = 't';
          break;
        case '\n':
          esc[1] = 'n';
          break;
        case '\f':
          esc[1] = 'f';
          break;
        case '\r':
          esc[1] = 'r';
          break;
        default:
          esc[1] = 'u';
          esc[2] = '0';
          esc[3] = '0';
          esc[4] = hex_lower[c >> 4];
          esc[5] = hex_lower[c & 0xF];
          esc_len = 6;
          break;
        }
      g_string_append_len (out, (const char *) run, p - run);
      g_string_append_len (out, esc, (gssize) esc_len);
      p++;
      run = p;
    }
  g_string_append_len (out, (const char *) run, end - run);
  g_string_append_c (out, '"');
}

void
ts_json_write_node (GString          *out,
                    const TsJsonNode *node)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (node != NULL);

  switch (node->type)
    {
    case TS_JSON_NULL:
      g_string_append_len (out, "null", 4);
      break;
    case TS_JSON_FALSE:
      g_string_append_len (out, "false", 5);
      break;
    case TS_JSON_TRUE:
      g_string_append_len (out, "true", 4);
      break;
    case TS_JSON_NUMBER:
      ts_json_write_number (out, node->u.num);
      break;
    case TS_JSON_STRING:
      ts_json_write_string (out, node->u.str, node->len);
      break;
    case TS_JSON_ARRAY:
      g_string_append_c (out, '[');
      for (guint32 i = 0; i < node->len; i++)
        {
          if (i > 0)
            g_string_append_c (out, ',');
          ts_json_write_node (out, &node->u.items[i]);
        }
      g_string_append_c (out, ']');
      break;
    case TS_JSON_OBJECT:
      g_string_append_c (out, '{');
      for (guint32 i = 0; i < node->len; i++)
        {
          const TsJsonMember *m = &node->u.members[i];

          if (i > 0)
            g_string_append_c (out, ',');
          ts_json_write_string (out, m->key, m->key_len);
          g_string_append_c (out, ':');
          ts_json_write_node (out, &m->value);
        }
      g_string_append_c (out, '}');
      break;
    default:
      g_return_if_reached ();
    }
}

char *
ts_json_node_to_string (const TsJsonNode *node,
                        gsize            *out_len)
{
  GString *s = g_string_sized_new (64);

  ts_json_write_node (s, node);
  if (out_len != NULL)
    *out_len = s->len;
  return g_string_free (s, FALSE);
}

/* ---- Property order ------------------------------------------------------------ */

guint32 *
ts_json_property_order (const char * const *keys,
                        const guint32      *key_lens,
                        guint32             n_keys)
{
  guint32 n_index = 0;
  gboolean in_order = TRUE;
  guint32 prev = 0;
  guint64 *idx_pos;
  guint32 *order;
  guint32 k = 0;

  g_return_val_if_fail (keys != NULL || n_keys == 0, NULL);

#define KEY_LEN(i) (key_lens != NULL ? key_lens[i] : strlen (keys[i]))
  for (guint32 i = 0; i < n_keys; i++)
    {
      guint32 idx;

      if (ts_json_is_array_index (keys[i], KEY_LEN (i), &idx))
        {
          if (n_index != i || (n_index > 0 && idx <= prev))
            in_order = FALSE;
          prev = idx;
          n_index++;
        }
    }
  if (in_order)
    return NULL;

  idx_pos = g_new (guint64, n_index);
  for (guint32 i = 0; i < n_keys; i++)
    {
      guint32 idx;

      if (ts_json_is_array_index (keys[i], KEY_LEN (i), &idx))
        idx_pos[k++] = ((guint64) idx << 32) | i;
    }
  qsort (idx_pos, n_index, sizeof (guint64), compare_u64);

  order = g_new (guint32, n_keys);
  for (k = 0; k < n_index; k++)
    order[k] = (guint32) (idx_pos[k] & G_MAXUINT32);
  for (guint32 i = 0; i < n_keys; i++)
    if (!ts_json_is_array_index (keys[i], KEY_LEN (i), NULL))
      order[k++] = i;
#undef KEY_LEN

  g_free (idx_pos);
  return order;
}

/* ---- WTF-8 --------------------------------------------------------------------- */

char *
ts_wtf8_to_utf8 (const char *s,
                 gsize       len,
                 gsize      *out_len)
{
  const guint8 *p = (const guint8 *) s;
  const guint8 *end = p + len;
  char *copy = NULL;

  if (out_len != NULL)
    *out_len = len;

  for (; p < end; p++)
    {
      p = memchr (p, 0xED, (gsize) (end - p));
      if (p == NULL)
        break;
      if (end - p >= 3 && p[1] >= 0xA0)
        {
          gsize off = (gsize) (p - (const guint8 *) s);

          if (copy == NULL)
            {
              copy = g_malloc (len + 1);
              memcpy (copy, s, len);
            }
          copy[off] = (char) 0xEF;
          copy[off + 1] = (char) 0xBF;
          copy[off + 2] = (char) 0xBD;
          p += 2;
        }
    }
  if (copy != NULL)
    copy[len] = '\0';
  return copy;
}

gboolean
ts_wtf8_validate (const char *s,
                  gsize       len)
{
  const guint8 *p = (const guint8 *) s;
  const guint8 *end = p + len;
  gboolean after_high = FALSE;

  while (p < end)
    {
      gsize n;

      if (*p < 0x80)
        {
          p++;
          after_high = FALSE;
          continue;
        }
      if (*p == 0xED && end - p >= 3 && p[1] >= 0xA0 && p[1] <= 0xBF && (p[2] & 0xC0) == 0x80)
        {
          gboolean high = p[1] < 0xB0;

          if (!high && after_high)
            return FALSE;   /* an encoded pair must be a 4-byte sequence */
          after_high = high;
          p += 3;
          continue;
        }
      n = utf8_seq_len (p, end);
      if (n == 0)
        return FALSE;
      p += n;
      after_high = FALSE;
    }
  return TRUE;
}
