/* ts-stamp-tree.c: the content of a mergeable store (plain C)
 *
 * SPDX-License-Identifier: MIT
 *
 * See ts-stamp-tree-private.h for the model. Section numbers refer to
 * PROTOCOL.md (TinyBase 10.0.1).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib.h>
#ifdef G_OS_UNIX
# include <sys/mman.h>
#endif

#include "ts-error.h"
#include "ts-private.h"
#include "ts-stamp-tree-private.h"

#define SMALL 16     /* containers up to this size are searched linearly */
#define MAX_POOL 1000

static const char undefined_marker[] = "\xEF\xBF\xBC"; /* U+FFFC */
static const char encoded_prefix[] = "\xEF\xBF\xBD";   /* U+FFFD */

/* ---- Strings and values -------------------------------------------------- */

TsStr *
ts_str_new (const char *s,
            gsize       len)
{
  TsStr *str;

  g_assert (len < G_MAXUINT32);
  str = g_malloc (sizeof (TsStr) + len + 1);
  str->refcount = 1;
  str->len = len;
  memcpy (str->data, s, len);
  str->data[len] = 0;
  return str;
}

TsStr *
ts_str_ref (TsStr *s)
{
  s->refcount++;
  return s;
}

void
ts_str_unref (TsStr *s)
{
  if (s != NULL && --s->refcount == 0)
    g_free (s);
}

void
ts_val_clear (TsVal *v)
{
  if (v->kind == TS_VAL_STRING || v->kind == TS_VAL_RAW)
    ts_str_unref (v->u.str);
  v->kind = TS_VAL_UNDEFINED;
  v->u.num = 0;
}

TsVal
ts_val_copy (const TsVal *v)
{
  TsVal copy = *v;

  if (v->kind == TS_VAL_STRING || v->kind == TS_VAL_RAW)
    ts_str_ref (copy.u.str);
  return copy;
}

gboolean
ts_val_equal (const TsVal *a,
              const TsVal *b)
{
  if (a->kind != b->kind)
    return FALSE;
  switch (a->kind)
    {
    case TS_VAL_NUMBER:
      return a->u.num == b->u.num;
    case TS_VAL_STRING:
    case TS_VAL_RAW:
      return a->u.str == b->u.str ||
             (a->u.str->len == b->u.str->len &&
              memcmp (a->u.str->data, b->u.str->data, a->u.str->len) == 0);
    default:
      return TRUE;
    }
}

void
ts_val_write_json (GString     *out,
                   const TsVal *v)
{
  switch (v->kind)
    {
    case TS_VAL_UNDEFINED:
    case TS_VAL_NULL:
      g_string_append_len (out, "null", 4);
      break;
    case TS_VAL_FALSE:
      g_string_append_len (out, "false", 5);
      break;
    case TS_VAL_TRUE:
      g_string_append_len (out, "true", 4);
      break;
    case TS_VAL_NUMBER:
      ts_json_write_number (out, v->u.num);
      break;
    case TS_VAL_STRING:
      ts_json_write_string (out, v->u.str->data, v->u.str->len);
      break;
    case TS_VAL_RAW:
      g_string_append_len (out, v->u.str->data, v->u.str->len);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* The wire/stamp form: like ts_val_write_json but undefined is "\uFFFC". */
static void
write_stamp_value (GString     *out,
                   const TsVal *v)
{
  if (v->kind == TS_VAL_UNDEFINED)
    {
      g_string_append_c (out, '"');
      g_string_append_len (out, undefined_marker, 3);
      g_string_append_c (out, '"');
    }
  else
    ts_val_write_json (out, v);
}

static gboolean
is_encoded (const char *s,
            gsize       len)
{
  return len >= 3 && memcmp (s, encoded_prefix, 3) == 0;
}

void
ts_val_write_plain (GString     *out,
                    const TsVal *v)
{
  if (v->kind == TS_VAL_STRING && is_encoded (v->u.str->data, v->u.str->len))
    {
      g_autoptr(TsJsonDoc) doc = ts_json_parse (v->u.str->data + 3, v->u.str->len - 3, NULL);
      const TsJsonNode *root = doc ? ts_json_doc_get_root (doc) : NULL;

      if (root != NULL && (root->type == TS_JSON_OBJECT || root->type == TS_JSON_ARRAY))
        {
          ts_json_write_node (out, root);
          return;
        }
    }
  ts_val_write_json (out, v);
}

/* Number values that JSON can carry and TinyBase accepts */
static gboolean
number_valid (double x)
{
  return isfinite (x);
}

/* A leaf value from a node in encoded (wire) form: "\uFFFC" is undefined,
 * strings are kept verbatim, raw objects/arrays become RAW. The node was
 * validated. */
static void
val_from_wire (const TsJsonNode *node,
               TsVal            *out)
{
  out->u.num = 0;
  switch (node->type)
    {
    case TS_JSON_NULL:
      out->kind = TS_VAL_NULL;
      break;
    case TS_JSON_FALSE:
      out->kind = TS_VAL_FALSE;
      break;
    case TS_JSON_TRUE:
      out->kind = TS_VAL_TRUE;
      break;
    case TS_JSON_NUMBER:
      out->kind = TS_VAL_NUMBER;
      out->u.num = node->u.num;
      break;
    case TS_JSON_STRING:
      if (node->len == 3 && memcmp (node->u.str, undefined_marker, 3) == 0)
        out->kind = TS_VAL_UNDEFINED;
      else
        {
          out->kind = TS_VAL_STRING;
          out->u.str = ts_str_new (node->u.str, node->len);
        }
      break;
    case TS_JSON_ARRAY:
    case TS_JSON_OBJECT:
      {
        gsize len;
        char *text = ts_json_node_to_string (node, &len);

        out->kind = TS_VAL_RAW;
        out->u.str = ts_str_new (text, len);
        g_free (text);
      }
      break;
    default:
      g_assert_not_reached ();
    }
}

gboolean
ts_val_from_json_cell (const TsJsonNode  *node,
                       TsVal             *out,
                       GError           **error)
{
  out->u.num = 0;
  switch (node->type)
    {
    case TS_JSON_STRING:
      if ((node->len == 3 && memcmp (node->u.str, undefined_marker, 3) == 0) ||
          is_encoded (node->u.str, node->len))
        {
          g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CELL,
                       _("The strings “\\uFFFC” and strings starting with U+FFFD are reserved"));
          return FALSE;
        }
      out->kind = TS_VAL_STRING;
      out->u.str = ts_str_new (node->u.str, node->len);
      return TRUE;
    case TS_JSON_NUMBER:
      if (!number_valid (node->u.num))
        {
          g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CELL,
                       _("Numbers must be finite"));
          return FALSE;
        }
      out->kind = TS_VAL_NUMBER;
      out->u.num = node->u.num == 0 ? 0 : node->u.num;
      return TRUE;
    case TS_JSON_ARRAY:
    case TS_JSON_OBJECT:
      {
        GString *s = g_string_sized_new (64);

        g_string_append_len (s, encoded_prefix, 3);
        ts_json_write_node (s, node);
        out->kind = TS_VAL_STRING;
        out->u.str = ts_str_new (s->str, s->len);
        g_string_free (s, TRUE);
      }
      return TRUE;
    case TS_JSON_NULL:
      out->kind = TS_VAL_NULL;
      return TRUE;
    case TS_JSON_TRUE:
      out->kind = TS_VAL_TRUE;
      return TRUE;
    case TS_JSON_FALSE:
      out->kind = TS_VAL_FALSE;
      return TRUE;
    default:
      g_assert_not_reached ();
    }
  return FALSE;
}

/* ---- Hashes -------------------------------------------------------------- */

static guint32
id_prefix (const char *id,
           gsize       len)
{
  return ts_hash_update (ts_hash_update_string (TS_HASH_INIT, id, len), ":", 1);
}

static inline guint32
fold (guint32 prefix,
      guint32 hash)
{
  return ts_hash_update_uint (prefix, hash);
}

static guint32
leaf_hash (TsStampTree *tree,
           const TsVal *v,
           const TsHlc *hlc)
{
  GString *s = tree->scratch;
  guint32 h;

  g_string_truncate (s, 0);
  ts_val_write_json (s, v);
  h = ts_hash_update (ts_hash_bytes (s->str, s->len), ":", 1);
  return ts_hash_update (h, hlc->c, ts_hlc_len (hlc));
}

static guint32
hlc_hash (const TsHlc *hlc)
{
  return ts_hash_bytes (hlc->c, TS_HLC_LEN);
}

/* R(old, new) of section 7.3 */
static guint32
hlc_replace_term (const TsHlc *old,
                  const TsHlc *new)
{
  if (ts_hlc_compare (new, old) <= 0)
    return 0;
  return (ts_hlc_is_empty (old) ? 0 : hlc_hash (old)) ^ hlc_hash (new);
}

static void
hlc_max (TsHlc       *acc,
         const TsHlc *hlc)
{
  if (ts_hlc_compare (hlc, acc) > 0)
    *acc = *hlc;
}

/* ---- Indexes ------------------------------------------------------------- */

typedef gboolean (*IndexMatch) (gconstpointer ctx, guint32 pos, gconstpointer key, gsize len);

static void
index_clear (TsIndex *ix)
{
  g_clear_pointer (&ix->slots, g_free);
  ix->mask = 0;
}

static void
index_put (TsIndex *ix,
           guint32  hash,
           guint32  pos)
{
  guint32 i = hash & ix->mask;

  while (ix->slots[i] != 0)
    i = (i + 1) & ix->mask;
  ix->slots[i] = pos + 1;
}

static gssize
index_find (const TsIndex *ix,
            guint32        hash,
            IndexMatch     match,
            gconstpointer  ctx,
            gconstpointer  key,
            gsize          len)
{
  guint32 i = hash & ix->mask;
  guint32 slot;

  while ((slot = ix->slots[i]) != 0)
    {
      if (match (ctx, slot - 1, key, len))
        return slot - 1;
      i = (i + 1) & ix->mask;
    }
  return -1;
}

/* Makes room for n entries; hashes[pos] gives each entry's hash. Returns
 * TRUE if the index was rebuilt (then it already holds entries 0..n-1). */
static gboolean
index_reserve (TsIndex *ix,
               guint32  n,
               guint32 (*hash_at) (gconstpointer ctx, guint32 pos),
               gconstpointer ctx)
{
  guint32 size;

  if (n <= SMALL)
    return TRUE;
  if (ix->slots != NULL && n * 2 <= ix->mask + 1)
    return FALSE;

  size = 32;
  while (size < n * 2)
    size *= 2;
  g_free (ix->slots);
  ix->slots = g_new0 (guint32, size);
  ix->mask = size - 1;
  for (guint32 pos = 0; pos < n; pos++)
    index_put (ix, hash_at (ctx, pos), pos);
  return TRUE;
}

/* ---- Atoms --------------------------------------------------------------- */

/* Atoms, rows and tables all live in growing arrays of pointers, found by
 * their name: a length, a hash and the bytes, at offsets given here. */
typedef struct {
  gsize len_offset;     /* guint32 */
  gsize hash_offset;    /* guint32 */
  gsize str_offset;     /* char[] */
} NameLayout;

static const NameLayout atom_layout = {
  G_STRUCT_OFFSET (TsAtom, len), G_STRUCT_OFFSET (TsAtom, str_hash), G_STRUCT_OFFSET (TsAtom, str)
};
static const NameLayout row_layout = {
  G_STRUCT_OFFSET (TsRow, id_len), G_STRUCT_OFFSET (TsRow, str_hash), G_STRUCT_OFFSET (TsRow, id)
};
static const NameLayout table_layout = {
  G_STRUCT_OFFSET (TsTable, id_len), G_STRUCT_OFFSET (TsTable, str_hash), G_STRUCT_OFFSET (TsTable, id)
};

typedef struct {
  gpointer const   *items;
  const NameLayout *layout;
} Named;

static inline guint32
named_u32 (gconstpointer item,
           gsize         offset)
{
  return *(const guint32 *) ((const char *) item + offset);
}

static gboolean
named_match (gconstpointer ctx, guint32 pos, gconstpointer key, gsize len)
{
  const Named *named = ctx;
  const char *item = named->items[pos];

  return named_u32 (item, named->layout->len_offset) == len &&
         memcmp (item + named->layout->str_offset, key, len) == 0;
}

static guint32
named_hash_at (gconstpointer ctx, guint32 pos)
{
  const Named *named = ctx;

  return named_u32 (named->items[pos], named->layout->hash_offset);
}

/* The item of items[0..n) named id (hash h), or NULL */
static gpointer
named_find (gpointer const   *items,
            guint32           n,
            const TsIndex    *index,
            const NameLayout *layout,
            guint32           h,
            const char       *id,
            gsize             len)
{
  Named named = { items, layout };

  if (index->slots != NULL)
    {
      gssize pos = index_find (index, h, named_match, &named, id, len);
      return pos >= 0 ? items[pos] : NULL;
    }
  for (guint32 i = 0; i < n; i++)
    if (named_u32 (items[i], layout->hash_offset) == h && named_match (&named, i, id, len))
      return items[i];
  return NULL;
}

/* Appends item to a growing array (first capacity min_cap) and its index */
static void
named_append (gpointer         **items,
              guint32           *n,
              guint32           *cap,
              TsIndex           *index,
              const NameLayout  *layout,
              gpointer           item,
              guint32            min_cap)
{
  Named named;

  if (*n == *cap)
    {
      *cap = *cap == 0 ? min_cap : *cap * 2;
      *items = g_renew (gpointer, *items, *cap);
    }
  (*items)[(*n)++] = item;
  named.items = *items;
  named.layout = layout;
  if (!index_reserve (index, *n, named_hash_at, &named))
    index_put (index, named_u32 (item, layout->hash_offset), *n - 1);
}

/* ---- Atoms --------------------------------------------------------------- */

TsAtom *
ts_stamp_tree_atom (TsStampTree *tree,
                    const char  *id,
                    gsize        len,
                    gboolean     create)
{
  guint32 h = ts_hash_bytes (id, len);
  TsAtom *atom = named_find ((gpointer *) tree->atoms, tree->n_atoms, &tree->atoms_index,
                             &atom_layout, h, id, len);

  if (atom != NULL || !create)
    return atom;

  atom = g_malloc (sizeof (TsAtom) + len + 1);
  atom->len = len;
  atom->str_hash = h;
  memcpy (atom->str, id, len);
  atom->str[len] = 0;
  atom->prefix = id_prefix (id, len);
  atom->zero_term = fold (atom->prefix, 0);
  named_append ((gpointer **) &tree->atoms, &tree->n_atoms, &tree->atoms_cap,
                &tree->atoms_index, &atom_layout, atom, 16);
  return atom;
}

/* ---- Rows (leaf containers) ---------------------------------------------- */

/* Names a zeroed row */
static void
row_init (TsRow      *row,
          const char *id,
          gsize       len,
          guint32     str_hash)
{
  memcpy (row->id, id, len);
  row->id_len = len;
  row->str_hash = str_hash;
  row->prefix = id_prefix (id, len);
}

static TsRow *
row_new (const char *id,
         gsize       len,
         guint32     str_hash)
{
  TsRow *row = g_malloc0 (sizeof (TsRow) + len + 1);

  row_init (row, id, len, str_hash);
  return row;
}

static void
row_free (TsRow *row)
{
  for (guint32 i = 0; i < row->n_leaves; i++)
    {
      TsLeaf *leaf = &row->leaves[i];
      if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
        ts_str_unref (leaf->u.str);
    }
  if (!(row->cap & TS_ROW_LEAVES_IN_SLAB))
    g_free (row->leaves);
  index_clear (&row->index);
  if (!(row->cap & TS_ROW_IN_SLAB))
    g_free (row);
}

/* Gives a row whose leaves live in a slab an array of its own, with room
 * for cap leaves */
static void
row_own_leaves (TsRow   *row,
                guint32  cap)
{
  TsLeaf *leaves = g_new (TsLeaf, cap);

  if (row->n_leaves > 0)
    memcpy (leaves, row->leaves, row->n_leaves * sizeof (TsLeaf));
  row->leaves = leaves;
  row->cap = (row->cap & TS_ROW_IN_SLAB) | cap;
}

static gboolean
leaf_match (gconstpointer ctx, guint32 pos, gconstpointer key, gsize len)
{
  return ((const TsLeaf *) ctx)[pos].id == key;
}

static guint32
leaf_hash_at (gconstpointer ctx, guint32 pos)
{
  return ((const TsLeaf *) ctx)[pos].id->str_hash;
}

gssize
ts_row_leaf (TsRow    *row,
             TsAtom   *atom,
             gboolean  create)
{
  TsLeaf *leaf;

  if (row->index.slots != NULL)
    {
      gssize pos = index_find (&row->index, atom->str_hash, leaf_match, row->leaves, atom, 0);
      if (pos >= 0)
        return pos;
    }
  else
    {
      for (guint32 i = 0; i < row->n_leaves; i++)
        if (row->leaves[i].id == atom)
          return i;
    }

  if (!create)
    return -1;

  if (row->n_leaves == TS_ROW_CAP (row))
    {
      /* rows are small and many: grow gently, 4 slots at a time */
      guint32 cap = TS_ROW_CAP (row);

      cap = cap < 16 ? cap + 4 : cap + cap / 2;
      if (row->cap & TS_ROW_LEAVES_IN_SLAB)
        row_own_leaves (row, cap);
      else
        {
          row->cap = (row->cap & TS_ROW_IN_SLAB) | cap;
          row->leaves = g_renew (TsLeaf, row->leaves, cap);
        }
    }
  leaf = &row->leaves[row->n_leaves++];
  memset (leaf, 0, sizeof *leaf);
  leaf->id = atom;
  if (!index_reserve (&row->index, row->n_leaves, leaf_hash_at, row->leaves))
    index_put (&row->index, atom->str_hash, row->n_leaves - 1);
  return row->n_leaves - 1;
}

void
ts_row_reserve (TsRow   *row,
                guint32  n)
{
  if (TS_ROW_CAP (row) - row->n_leaves >= n)
    return;
  if (row->cap & TS_ROW_LEAVES_IN_SLAB)
    row_own_leaves (row, row->n_leaves + n);
  else
    {
      row->cap = (row->cap & TS_ROW_IN_SLAB) | (row->n_leaves + n);
      row->leaves = g_renew (TsLeaf, row->leaves, row->n_leaves + n);
    }
}

TsLeaf *
ts_row_find_leaf (TsStampTree *tree,
                  TsRow       *row,
                  const char  *id,
                  gsize        len)
{
  TsAtom *atom = ts_stamp_tree_atom (tree, id, len, FALSE);
  gssize pos;

  if (atom == NULL || row == NULL)
    return NULL;
  pos = ts_row_leaf (row, atom, FALSE);
  return pos < 0 ? NULL : &row->leaves[pos];
}

/* ---- Tables -------------------------------------------------------------- */

TsRow *
ts_table_row (TsTable    *table,
              const char *id,
              gsize       len,
              gboolean    create)
{
  guint32 h = ts_hash_bytes (id, len);
  TsRow *row = named_find ((gpointer *) table->rows, table->n_rows, &table->index,
                           &row_layout, h, id, len);

  if (row != NULL || !create)
    return row;

  row = row_new (id, len, h);
  named_append ((gpointer **) &table->rows, &table->n_rows, &table->cap, &table->index,
                &row_layout, row, 4);
  return row;
}

static void
row_ids_free (TsRowIdState *state)
{
  if (state == NULL)
    return;
  g_queue_clear_full (&state->pool, g_free);
  g_free (state);
}

/* ---- Slabs ----------------------------------------------------------------- */

/* Rows loaded in bulk and their leaves are carved out of large blocks that
 * the table owns: far fewer page faults (huge pages where the kernel gives
 * them) and mallocs than one allocation per row. */
typedef struct _TsSlab TsSlab;

struct _TsSlab {
  TsSlab  *next;
  gsize    size;        /* of data */
  gsize    used;
  gsize    mapped;      /* a gsize: data stays 8-byte aligned */
  char     data[];
};

G_STATIC_ASSERT (G_STRUCT_OFFSET (TsSlab, data) % 8 == 0);

#define SLAB_FIRST (16 * 1024)              /* bytes, header included */
#define SLAB_HUGE  (2 * 1024 * 1024)        /* from here on: mapped */
#define SLAB_MAX   (64 * 1024 * 1024)

/* A slab of at least min_data bytes, twice as large as the one before
 * (prev_total bytes, 0 for none) up to SLAB_MAX. Only what is used gets
 * touched, so a large slab costs no more memory than a small one. */
static TsSlab *
slab_new (gsize min_data,
          gsize prev_total)
{
  gsize total = prev_total == 0 ? SLAB_FIRST : MIN (prev_total * 2, SLAB_MAX);
  TsSlab *slab = NULL;

  total = MAX (total, min_data + sizeof (TsSlab));
#if defined(G_OS_UNIX) && defined(MAP_ANONYMOUS)
  if (total >= SLAB_HUGE)
    {
      char *mem;

      total = (total + SLAB_HUGE - 1) & ~(gsize) (SLAB_HUGE - 1);
      mem = mmap (NULL, total + SLAB_HUGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem != MAP_FAILED)
        {
          /* 2 MiB aligned, so that huge pages can back all of it */
          gsize head = (SLAB_HUGE - ((guintptr) mem & (SLAB_HUGE - 1))) & (SLAB_HUGE - 1);

          if (head > 0)
            munmap (mem, head);
          munmap (mem + head + total, SLAB_HUGE - head);
          slab = (TsSlab *) (gpointer) (mem + head);
# ifdef MADV_HUGEPAGE
          madvise (slab, total, MADV_HUGEPAGE);   /* a hint: failure is harmless */
# endif
          slab->mapped = TRUE;
        }
    }
#endif
  if (slab == NULL)
    {
      slab = g_malloc0 (total);
      slab->mapped = FALSE;
    }
  slab->size = total - sizeof (TsSlab);
  slab->used = 0;
  slab->next = NULL;
  return slab;
}

/* Asks for huge pages for the whole 2 MiB blocks of a large fresh
 * allocation (a transaction log about to be filled): far fewer page
 * faults. A hint: it may be ignored. */
static void
hint_huge_pages (gpointer p,
                 gsize    size)
{
#if defined(G_OS_UNIX) && defined(MADV_HUGEPAGE)
  guintptr start = ((guintptr) p + SLAB_HUGE - 1) & ~(guintptr) (SLAB_HUGE - 1);
  guintptr end = ((guintptr) p + size) & ~(guintptr) (SLAB_HUGE - 1);

  if (size >= 2 * SLAB_HUGE && end > start)
    madvise ((gpointer) start, end - start, MADV_HUGEPAGE);
#endif
}

/* Makes room in log for n more entries at once */
static void
log_reserve (GArray *log,
             gsize   n)
{
  guint len = log->len;

  if (n == 0 || len + n > G_MAXUINT)
    return;
  g_array_set_size (log, (guint) (len + n));
  hint_huge_pages (log->data + (gsize) len * sizeof (TsChange), n * sizeof (TsChange));
  g_array_set_size (log, len);
}

static void
slabs_free (TsSlab *slab)
{
  while (slab != NULL)
    {
      TsSlab *next = slab->next;

#if defined(G_OS_UNIX) && defined(MAP_ANONYMOUS)
      if (slab->mapped)
        munmap (slab, slab->size + sizeof (TsSlab));
      else
#endif
        g_free (slab);
      slab = next;
    }
}

/* size bytes of zeroed memory from the table's slabs */
static gpointer
slab_alloc (TsTable *table,
            gsize    size)
{
  TsSlab *slab = table->slabs;
  gpointer p;

  size = (size + 7) & ~(gsize) 7;
  if (slab == NULL || slab->size - slab->used < size)
    {
      TsSlab *fresh = slab_new (size, slab != NULL ? slab->size + sizeof (TsSlab) : 0);

      fresh->next = slab;
      table->slabs = slab = fresh;
    }
  p = slab->data + slab->used;
  slab->used += size;
  return p;
}

static void
table_free (TsTable *table)
{
  for (guint32 i = 0; i < table->n_rows; i++)
    row_free (table->rows[i]);
  g_free (table->rows);
  index_clear (&table->index);
  row_ids_free (table->row_ids);
  slabs_free (table->slabs);
  g_free (table);
}

TsTable *
ts_stamp_tree_table (TsStampTree *tree,
                     const char  *id,
                     gsize        len,
                     gboolean     create)
{
  guint32 h = ts_hash_bytes (id, len);
  TsTable *table = named_find ((gpointer *) tree->tables, tree->n_tables, &tree->tables_index,
                               &table_layout, h, id, len);

  if (table != NULL || !create)
    return table;

  table = g_malloc0 (sizeof (TsTable) + len + 1);
  memcpy (table->id, id, len);
  table->id_len = len;
  table->str_hash = h;
  table->prefix = id_prefix (id, len);
  named_append ((gpointer **) &tree->tables, &tree->n_tables, &tree->tables_cap,
                &tree->tables_index, &table_layout, table, 4);
  return table;
}

/* ---- Tree lifecycle ------------------------------------------------------ */

static void
tree_reset_content (TsStampTree *tree)
{
  tree->tables = NULL;
  tree->tables_index.slots = NULL;
  tree->tables_index.mask = 0;
  tree->n_tables = tree->tables_cap = 0;
  tree->n_live_tables = 0;
  tree->tables_hash = 0;
  tree->tables_next_seq = 0;
  memset (&tree->tables_hlc, 0, sizeof tree->tables_hlc);
  tree->values = row_new ("", 0, 0);
}

void
ts_stamp_tree_init (TsStampTree *tree,
                    const char  *unique_id,
                    gsize        len)
{
  memset (tree, 0, sizeof *tree);
  tree_reset_content (tree);
  ts_clock_init (&tree->clock, unique_id, len);
  tree->changes = g_array_new (FALSE, FALSE, sizeof (TsChange));
  tree->scratch = g_string_sized_new (256);
}

static void
free_content (TsTable **tables,
              guint32   n_tables,
              TsIndex  *index,
              TsRow    *values)
{
  for (guint32 i = 0; i < n_tables; i++)
    table_free (tables[i]);
  g_free (tables);
  index_clear (index);
  row_free (values);
}

static void
change_clear (TsChange *change)
{
  ts_val_clear (&change->old);
  if (change->names != NULL)
    {
      for (int i = 0; i < 3; i++)
        g_free (change->names[i]);
      g_free (change->names);
    }
}

void
ts_stamp_tree_free_log (GArray *log)
{
  if (log == NULL)
    return;
  for (guint i = 0; i < log->len; i++)
    change_clear (&g_array_index (log, TsChange, i));
  g_array_free (log, TRUE);
}

void
ts_change_get_ids (const TsChange  *change,
                   const char     **table_id,
                   const char     **row_id,
                   const char     **cell_id)
{
  if (change->names != NULL)
    {
      *table_id = change->names[0];
      *row_id = change->names[1];
      *cell_id = change->names[2];
      return;
    }
  *table_id = change->table ? change->table->id : NULL;
  *row_id = change->table ? change->row->id : NULL;
  *cell_id = change->row->leaves[change->leaf].id->str;
}

void
ts_change_get_value (const TsChange *change,
                     TsVal          *out)
{
  const TsLeaf *leaf;

  out->kind = TS_VAL_UNDEFINED;
  out->u.num = 0;
  if (change->row == NULL || change->leaf == TS_NO_LEAF)
    return;
  leaf = &change->row->leaves[change->leaf];
  out->kind = leaf->kind;
  out->u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    out->u.str = leaf->u.str;
}

typedef struct {
  TsTable **tables;
  guint32   n_tables;
  TsIndex   index;
  TsRow    *values;
} Retired;

static void free_content (TsTable **tables, guint32 n_tables, TsIndex *index, TsRow *values);

static void
retire_content (TsStampTree *tree,
                TsTable    **tables,
                guint32      n_tables,
                TsIndex      index,
                TsRow       *values)
{
  Retired *r;

  if (tree->hold == 0)
    {
      free_content (tables, n_tables, &index, values);
      return;
    }
  r = g_new (Retired, 1);
  r->tables = tables;
  r->n_tables = n_tables;
  r->index = index;
  r->values = values;
  tree->retired = g_slist_prepend (tree->retired, r);
}

void
ts_stamp_tree_hold (TsStampTree *tree)
{
  tree->hold++;
}

void
ts_stamp_tree_release (TsStampTree *tree)
{
  g_return_if_fail (tree->hold > 0);
  if (--tree->hold > 0)
    return;
  while (tree->retired != NULL)
    {
      Retired *r = tree->retired->data;

      tree->retired = g_slist_delete_link (tree->retired, tree->retired);
      free_content (r->tables, r->n_tables, &r->index, r->values);
      g_free (r);
    }
}

void
ts_stamp_tree_clear (TsStampTree *tree)
{
  ts_stamp_tree_free_log (tree->changes);
  tree->hold = 1;
  ts_stamp_tree_release (tree);
  free_content (tree->tables, tree->n_tables, &tree->tables_index, tree->values);
  for (guint32 i = 0; i < tree->n_atoms; i++)
    g_free (tree->atoms[i]);
  g_free (tree->atoms);
  index_clear (&tree->atoms_index);
  g_string_free (tree->scratch, TRUE);
  memset (tree, 0, sizeof *tree);
}

/* ---- Plain Store order --------------------------------------------------- */

static int
cmp_seq_ptr (gconstpointer a, gconstpointer b, gpointer offset)
{
  guint32 sa = *(const guint32 *) (*(const char * const *) a + GPOINTER_TO_SIZE (offset));
  guint32 sb = *(const guint32 *) (*(const char * const *) b + GPOINTER_TO_SIZE (offset));

  return sa < sb ? -1 : sa > sb;
}

static gpointer *
live_sorted (gpointer       *items,
             guint32         n_items,
             gsize           live_offset,
             gsize           seq_offset,
             guint          *n)
{
  gpointer *out = g_new (gpointer, n_items + 1);
  guint count = 0;
  gboolean sorted = TRUE;
  guint32 last = 0;

  for (guint32 i = 0; i < n_items; i++)
    {
      const char *item = items[i];
      guint32 seq;

      if (*(const guint32 *) (item + live_offset) == 0)
        continue;
      seq = *(const guint32 *) (item + seq_offset);
      if (count > 0 && seq < last)
        sorted = FALSE;
      last = seq;
      out[count++] = items[i];
    }
  if (!sorted)
    g_qsort_with_data (out, count, sizeof (gpointer), cmp_seq_ptr, GSIZE_TO_POINTER (seq_offset));
  out[count] = NULL;
  *n = count;
  return out;
}

TsTable **
ts_stamp_tree_live_tables (TsStampTree *tree,
                           guint       *n)
{
  return (TsTable **) live_sorted ((gpointer *) tree->tables, tree->n_tables,
                                   G_STRUCT_OFFSET (TsTable, n_live),
                                   G_STRUCT_OFFSET (TsTable, seq), n);
}

TsRow **
ts_table_live_rows (TsTable *table,
                    guint   *n)
{
  return (TsRow **) live_sorted ((gpointer *) table->rows, table->n_rows,
                                 G_STRUCT_OFFSET (TsRow, n_live),
                                 G_STRUCT_OFFSET (TsRow, seq), n);
}

static int
cmp_leaf_seq (gconstpointer a, gconstpointer b, gpointer data)
{
  const TsLeaf *leaves = data;
  guint32 sa = leaves[*(const guint32 *) a].seq;
  guint32 sb = leaves[*(const guint32 *) b].seq;

  return sa < sb ? -1 : sa > sb;
}

/* Fills out (room for row->n_leaves + 1) with the live leaves in plain
 * order; returns how many. */
static guint
row_live_leaves_into (TsRow   *row,
                      guint32 *out)
{
  guint count = 0;
  gboolean sorted = TRUE;
  guint32 last = 0;

  for (guint32 i = 0; i < row->n_leaves; i++)
    {
      const TsLeaf *leaf = &row->leaves[i];

      if (!ts_leaf_live (leaf))
        continue;
      if (count > 0 && leaf->seq < last)
        sorted = FALSE;
      last = leaf->seq;
      out[count++] = i;
    }
  if (!sorted)
    g_qsort_with_data (out, count, sizeof (guint32), cmp_leaf_seq, row->leaves);
  return count;
}

guint32 *
ts_row_live_leaves (TsRow *row,
                    guint *n)
{
  guint32 *out = g_new (guint32, row->n_leaves + 1);

  *n = row_live_leaves_into (row, out);
  return out;
}

/* Same, into a buffer that grows as needed */
static guint32 *
row_live_leaves_buf (TsRow    *row,
                     guint32 **buf,
                     guint32  *cap,
                     guint    *n)
{
  if (*cap < row->n_leaves + 1)
    {
      *cap = MAX (row->n_leaves + 1, 2 * *cap);
      *buf = g_renew (guint32, *buf, *cap);
    }
  *n = row_live_leaves_into (row, *buf);
  return *buf;
}

/* ---- Plain changes and the transaction log ------------------------------- */

static void
row_turned_live (TsStampTree *tree,
                 TsTable     *table,
                 TsRow       *row)
{
  if (table == NULL)
    return;
  row->seq = table->next_seq++;
  if (table->n_live++ == 0)
    {
      table->seq = tree->tables_next_seq++;
      tree->n_live_tables++;
    }
}

static void
row_turned_dead (TsStampTree *tree,
                 TsTable     *table,
                 TsRow       *row)
{
  if (table == NULL)
    return;
  if (--table->n_live == 0)
    {
      tree->n_live_tables--;
      /* the plain Store drops the table, and its addRow state with it */
      g_clear_pointer (&table->row_ids, row_ids_free);
    }
}

/* Replaces the plain value of a leaf (the caller knows it differs), keeps
 * the live counts and orders, and logs the change. value is consumed. */
static void
leaf_set_plain (TsStampTree *tree,
                TsTable     *table,
                TsRow       *row,
                guint32      idx,
                TsVal       *value,
                gboolean     record)
{
  TsLeaf *leaf = &row->leaves[idx];
  gboolean was_live = ts_leaf_live (leaf);
  gboolean now_live = value->kind != TS_VAL_UNDEFINED;
  TsVal old = { leaf->kind, { 0 } };

  old.u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    old.u.str = leaf->u.str;

  if (record && G_UNLIKELY (tree->log_deferred))
    ts_stamp_tree_expand_log (tree, tree->changes);
  if (record && !(leaf->flags & TS_LEAF_TOUCHED))
    {
      TsChange change = { table, row, idx, old, NULL };

      leaf->flags |= TS_LEAF_TOUCHED;
      g_array_append_val (tree->changes, change);
    }
  else
    ts_val_clear (&old);

  leaf->kind = value->kind;
  leaf->u.num = value->u.num;
  if (value->kind == TS_VAL_STRING || value->kind == TS_VAL_RAW)
    leaf->u.str = value->u.str;
  value->kind = TS_VAL_UNDEFINED;

  if (!was_live && now_live)
    {
      leaf->seq = row->next_seq++;
      if (row->n_live++ == 0)
        row_turned_live (tree, table, row);
    }
  else if (was_live && !now_live)
    {
      if (--row->n_live == 0)
        row_turned_dead (tree, table, row);
    }
}

/* Replaces the stamp value without a plain change (equal value). */
static void
leaf_keep_value (TsVal *value)
{
  ts_val_clear (value);
}

static gboolean
leaf_value_equal (const TsLeaf *leaf,
                  const TsVal  *value)
{
  TsVal current = { leaf->kind, { 0 } };

  current.u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    current.u.str = leaf->u.str;
  return ts_val_equal (&current, value);
}

void
ts_stamp_tree_begin (TsStampTree *tree)
{
  /* a finished log is expanded or dropped right away */
  if (tree->txn_depth++ == 0)
    tree->log_deferred = FALSE;
}

GArray *
ts_stamp_tree_end (TsStampTree *tree)
{
  GArray *log;

  g_return_val_if_fail (tree->txn_depth > 0, NULL);

  if (--tree->txn_depth > 0)
    return NULL;

  log = tree->changes;
  for (guint i = 0; i < log->len; i++)
    {
      TsChange *change = &g_array_index (log, TsChange, i);
      if (change->row != NULL && change->leaf != TS_NO_LEAF)
        change->row->leaves[change->leaf].flags &= ~TS_LEAF_TOUCHED;
    }
  tree->changes = g_array_new (FALSE, FALSE, sizeof (TsChange));
  return log;
}

/* ---- Local writes -------------------------------------------------------- */

static void
fold_row_into_table (TsStampTree *tree,
                     TsTable     *table,
                     TsRow       *row,
                     guint32      old_row_hash)
{
  guint32 old_table_hash = table->hash;

  table->hash ^= (old_row_hash != 0 ? fold (row->prefix, old_row_hash) : 0) ^
                 fold (row->prefix, row->hash);
  tree->tables_hash ^= (old_table_hash != 0 ? fold (table->prefix, old_table_hash) : 0) ^
                       fold (table->prefix, table->hash);
}

/* A local write of one leaf: section 8. Returns TRUE if it changed. */
static gboolean
local_write (TsStampTree *tree,
             TsTable     *table,
             TsRow       *row,
             TsAtom      *atom,
             TsVal       *value)
{
  gssize idx = ts_row_leaf (row, atom, FALSE);
  TsLeaf *leaf;
  TsHlc hlc;
  guint32 new_hash, old_row_hash;

  if (idx < 0)
    {
      if (value->kind == TS_VAL_UNDEFINED)
        return FALSE;
      idx = ts_row_leaf (row, atom, TRUE);
    }
  leaf = &row->leaves[idx];
  if (ts_leaf_live (leaf) ? leaf_value_equal (leaf, value) : value->kind == TS_VAL_UNDEFINED)
    {
      ts_val_clear (value);
      return FALSE;
    }

  if (tree->defaulting)
    {
      memset (&hlc, 0, sizeof hlc);
      if (!ts_hlc_is_empty (&leaf->hlc))
        {
          /* default content never overrides a stamped value */
          ts_val_clear (value);
          return FALSE;
        }
    }
  else
    {
      ts_clock_next (&tree->clock, &hlc);
      if (!ts_hlc_is_empty (&leaf->hlc) && ts_hlc_compare (&hlc, &leaf->hlc) <= 0)
        {
          /* TinyBase's tinybase:13: the clock is behind a stamp that was
           * loaded without validation. Nothing is written. */
          g_warning ("Local write to “%s” lost against an existing stamp", atom->str);
          ts_val_clear (value);
          return FALSE;
        }
    }

  new_hash = leaf_hash (tree, value, &hlc);
  old_row_hash = row->hash;
  row->hash ^= fold (atom->prefix, leaf->hash) ^ fold (atom->prefix, new_hash);
  leaf->hlc = hlc;
  leaf->hash = new_hash;
  leaf_set_plain (tree, table, row, idx, value, TRUE);
  if (table != NULL)
    fold_row_into_table (tree, table, row, old_row_hash);
  return TRUE;
}

gboolean
ts_stamp_tree_set_cell (TsStampTree *tree,
                        TsTable     *table,
                        TsRow       *row,
                        TsAtom      *cell,
                        TsVal       *value)
{
  g_assert (tree->txn_depth > 0);
  return local_write (tree, table, row, cell, value);
}

gboolean
ts_stamp_tree_set_value (TsStampTree *tree,
                         TsAtom      *id,
                         TsVal       *value)
{
  g_assert (tree->txn_depth > 0);
  return local_write (tree, NULL, tree->values, id, value);
}

static gboolean
is_digits (const char *s,
           gsize       len)
{
  if (len == 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return FALSE;
  return TRUE;
}

static void
del_leaves (TsStampTree *tree,
            TsTable     *table,
            TsRow       *row)
{
  guint n;
  g_autofree guint32 *live = ts_row_live_leaves (row, &n);

  for (guint i = 0; i < n; i++)
    {
      TsVal undef = { TS_VAL_UNDEFINED, { 0 } };
      local_write (tree, table, row, row->leaves[live[i]].id, &undef);
    }
}

void
ts_stamp_tree_del_row (TsStampTree *tree,
                       TsTable     *table,
                       TsRow       *row,
                       gboolean     release_id)
{
  if (!ts_row_live (row))
    return;
  del_leaves (tree, table, row);
  if (release_id && ts_table_live (table) && is_digits (row->id, row->id_len))
    {
      if (table->row_ids == NULL)
        table->row_ids = g_new0 (TsRowIdState, 1);
      if (table->row_ids->pool.length < MAX_POOL)
        g_queue_push_tail (&table->row_ids->pool, g_strndup (row->id, row->id_len));
    }
}

void
ts_stamp_tree_del_table (TsStampTree *tree,
                         TsTable     *table)
{
  guint n;
  g_autofree TsRow **rows = ts_table_live_rows (table, &n);

  for (guint i = 0; i < n; i++)
    ts_stamp_tree_del_row (tree, table, rows[i], TRUE);
}

void
ts_stamp_tree_del_tables (TsStampTree *tree)
{
  guint n;
  g_autofree TsTable **tables = ts_stamp_tree_live_tables (tree, &n);

  for (guint i = 0; i < n; i++)
    ts_stamp_tree_del_table (tree, tables[i]);
}

void
ts_stamp_tree_del_values (TsStampTree *tree)
{
  del_leaves (tree, NULL, tree->values);
}

char *
ts_stamp_tree_next_row_id (TsStampTree *tree,
                           TsTable     *table,
                           gboolean     reuse)
{
  TsRowIdState *state;

  if (table->row_ids == NULL)
    table->row_ids = g_new0 (TsRowIdState, 1);
  state = table->row_ids;

  for (;;)
    {
      char *id;
      TsRow *row;

      if (reuse && state->pool.length > 0)
        id = g_queue_pop_head (&state->pool);
      else
        id = g_strdup_printf ("%" G_GUINT64_FORMAT, state->next_id++);
      row = ts_table_row (table, id, strlen (id), FALSE);
      if (row == NULL || !ts_row_live (row))
        return id;
      g_free (id);
    }
}

/* ---- Writing stamps ------------------------------------------------------ */

static void
write_uint (GString *out,
            guint32  n)
{
  char buf[16];
  int i = sizeof buf;

  do
    {
      buf[--i] = '0' + n % 10;
      n /= 10;
    }
  while (n != 0);
  g_string_append_len (out, buf + i, sizeof buf - i);
}

static void
write_key (GString    *out,
           const char *key,
           gsize       len)
{
  ts_json_write_string (out, key, len);
  g_string_append_c (out, ':');
}

static void
write_hlc (GString     *out,
           const TsHlc *hlc)
{
  g_string_append_c (out, '"');
  g_string_append_len (out, hlc->c, ts_hlc_len (hlc));
  g_string_append_c (out, '"');
}

/* Closes a stamp "[thing" with its HLC and hash per the form:
 * hashed: ,"hlc",hash]   unhashed: ,"hlc"] or ] when the HLC is empty
 * always_hlc: ,"hlc"] even when empty (GetCellDiff leaves). */
typedef enum {
  STAMP_UNHASHED,
  STAMP_HASHED,
  STAMP_ALWAYS_HLC,
} StampForm;

static void
close_stamp (GString     *out,
             const TsHlc *hlc,
             guint32      hash,
             StampForm    form)
{
  if (form != STAMP_UNHASHED || !ts_hlc_is_empty (hlc))
    {
      g_string_append_c (out, ',');
      write_hlc (out, hlc);
    }
  if (form == STAMP_HASHED)
    {
      g_string_append_c (out, ',');
      write_uint (out, hash);
    }
  g_string_append_c (out, ']');
}

static void
write_leaf_stamp (GString      *out,
                  const TsLeaf *leaf,
                  StampForm     form)
{
  TsVal v = { leaf->kind, { 0 } };

  v.u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    v.u.str = leaf->u.str;
  g_string_append_c (out, '[');
  write_stamp_value (out, &v);
  close_stamp (out, &leaf->hlc, leaf->hash, form);
}

static gboolean
maybe_index_key (const char *key,
                 gsize       len)
{
  return len > 0 && key[0] >= '0' && key[0] <= '9';
}

/* Computes the JS property order of n keys given by an accessor; NULL when
 * the natural order is right. */
typedef const char *(*KeyAt) (gconstpointer ctx, guint32 i, guint32 *len);

static guint32 *
property_order (gconstpointer ctx,
                guint32       n,
                KeyAt         key_at)
{
  gboolean any = FALSE;
  g_autofree const char **keys = NULL;
  g_autofree guint32 *lens = NULL;

  for (guint32 i = 0; i < n && !any; i++)
    {
      guint32 len;
      const char *key = key_at (ctx, i, &len);
      any = maybe_index_key (key, len);
    }
  if (!any)
    return NULL;

  keys = g_new (const char *, n);
  lens = g_new (guint32, n);
  for (guint32 i = 0; i < n; i++)
    keys[i] = key_at (ctx, i, &lens[i]);
  return ts_json_property_order (keys, lens, n);
}

static const char *
leaf_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const TsLeaf *leaf = &((const TsLeaf *) ctx)[i];

  *len = leaf->id->len;
  return leaf->id->str;
}

static const char *
row_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const TsRow *row = ((TsRow * const *) ctx)[i];

  *len = row->id_len;
  return row->id;
}

static const char *
table_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const TsTable *table = ((TsTable * const *) ctx)[i];

  *len = table->id_len;
  return table->id;
}

static void
write_row_stamp (GString     *out,
                 const TsRow *row,
                 StampForm    form)
{
  g_autofree guint32 *order = property_order (row->leaves, row->n_leaves, leaf_key_at);

  g_string_append_len (out, "[{", 2);
  for (guint32 j = 0; j < row->n_leaves; j++)
    {
      const TsLeaf *leaf = &row->leaves[order ? order[j] : j];

      if (j > 0)
        g_string_append_c (out, ',');
      write_key (out, leaf->id->str, leaf->id->len);
      write_leaf_stamp (out, leaf, form == STAMP_ALWAYS_HLC ? STAMP_UNHASHED : form);
    }
  g_string_append_c (out, '}');
  close_stamp (out, &row->hlc, row->hash, form == STAMP_ALWAYS_HLC ? STAMP_UNHASHED : form);
}

static void
write_table_stamp (GString       *out,
                   const TsTable *table,
                   StampForm      form)
{
  g_autofree guint32 *order = property_order (table->rows, table->n_rows, row_key_at);

  g_string_append_len (out, "[{", 2);
  for (guint32 j = 0; j < table->n_rows; j++)
    {
      const TsRow *row = table->rows[order ? order[j] : j];

      if (j > 0)
        g_string_append_c (out, ',');
      write_key (out, row->id, row->id_len);
      write_row_stamp (out, row, form);
    }
  g_string_append_c (out, '}');
  close_stamp (out, &table->hlc, table->hash, form);
}

void
ts_stamp_tree_write_content (TsStampTree *tree,
                             GString     *out)
{
  g_autofree guint32 *order = property_order (tree->tables, tree->n_tables, table_key_at);

  g_string_append_len (out, "[[{", 3);
  for (guint32 j = 0; j < tree->n_tables; j++)
    {
      const TsTable *table = tree->tables[order ? order[j] : j];

      if (j > 0)
        g_string_append_c (out, ',');
      write_key (out, table->id, table->id_len);
      write_table_stamp (out, table, STAMP_HASHED);
    }
  g_string_append_c (out, '}');
  close_stamp (out, &tree->tables_hlc, tree->tables_hash, STAMP_HASHED);
  g_string_append_c (out, ',');
  write_row_stamp (out, tree->values, STAMP_HASHED);
  g_string_append_c (out, ']');
}

/* ---- Transaction changes ------------------------------------------------- */

typedef struct {
  TsTable *table;
  TsRow   *row;
  guint32  leaf;
  guint32  order;
} LogEntry;

static int
cmp_log_entry (gconstpointer a, gconstpointer b)
{
  const LogEntry *x = a, *y = b;
  guint32 tx = x->table ? x->table->mark : 0, ty = y->table ? y->table->mark : 0;
  guint32 rx = x->row ? x->row->mark : 0, ry = y->row ? y->row->mark : 0;

  if (tx != ty)
    return tx < ty ? -1 : 1;
  if (rx != ry)
    return rx < ry ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static const char *
entry_leaf_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const LogEntry *e = &((const LogEntry *) ctx)[i];
  const TsAtom *atom = e->row->leaves[e->leaf].id;

  *len = atom->len;
  return atom->str;
}

static const char *
entry_row_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const LogEntry * const *e = &((const LogEntry * const *) ctx)[i];

  *len = (*e)->row->id_len;
  return (*e)->row->id;
}

static const char *
entry_table_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const LogEntry * const *e = &((const LogEntry * const *) ctx)[i];

  *len = (*e)->table->id_len;
  return (*e)->table->id;
}

/* Writes the leaves of entries[0..n) (all in one row) as a row stamp. */
static void
write_entry_leaves (GString        *out,
                    const LogEntry *entries,
                    guint32         n,
                    const TsRow    *row,
                    StampForm       form)
{
  g_autofree guint32 *order = property_order (entries, n, entry_leaf_key_at);

  g_string_append_len (out, "[{", 2);
  for (guint32 j = 0; j < n; j++)
    {
      const LogEntry *e = &entries[order ? order[j] : j];
      const TsLeaf *leaf = &e->row->leaves[e->leaf];

      if (j > 0)
        g_string_append_c (out, ',');
      write_key (out, leaf->id->str, leaf->id->len);
      write_leaf_stamp (out, leaf, form);
    }
  g_string_append_c (out, '}');
  close_stamp (out, &row->hlc, row->hash, form);
}

void
ts_stamp_tree_write_transaction_changes (TsStampTree *tree,
                                         GArray      *log,
                                         GString     *out,
                                         gboolean     with_hashes)
{
  StampForm form = with_hashes ? STAMP_HASHED : STAMP_UNHASHED;
  g_autoptr(GArray) tables = g_array_new (FALSE, FALSE, sizeof (LogEntry));
  g_autoptr(GArray) values = g_array_new (FALSE, FALSE, sizeof (LogEntry));
  guint32 table_marks = 0, row_marks = 0;
  g_autoptr(GPtrArray) table_starts = g_ptr_array_new ();
  g_autofree guint32 *torder = NULL;

  for (guint i = 0; i < log->len; i++)
    {
      const TsChange *change = &g_array_index (log, TsChange, i);
      LogEntry e = { change->table, change->row, change->leaf, i };
      gboolean is_value = change->names ? change->names[0] == NULL : change->table == NULL;

      if (is_value)
        {
          if (change->leaf != TS_NO_LEAF)
            g_array_append_val (values, e);
          continue;
        }
      /* a changed cell whose table (or row, or only the cell) is gone
       * from a replaced tree still lists the containers that remain */
      if (change->table == NULL)
        continue;
      if (change->table->mark == 0)
        change->table->mark = ++table_marks;
      if (change->row != NULL && change->row->mark == 0)
        change->row->mark = ++row_marks;
      g_array_append_val (tables, e);
    }
  g_array_sort (tables, cmp_log_entry);

  /* one pointer per table group, to its first entry */
  for (guint i = 0; i < tables->len; i++)
    {
      LogEntry *e = &g_array_index (tables, LogEntry, i);
      if (i == 0 || e->table != g_array_index (tables, LogEntry, i - 1).table)
        g_ptr_array_add (table_starts, e);
    }
  torder = property_order (table_starts->pdata, table_starts->len, entry_table_key_at);

  g_string_append_len (out, "[[{", 3);
  for (guint32 tj = 0; tj < table_starts->len; tj++)
    {
      guint32 ti = torder ? torder[tj] : tj;
      LogEntry *first = table_starts->pdata[ti];
      LogEntry *end = (LogEntry *) (void *) (tables->data) + tables->len;
      TsTable *table = first->table;
      g_autoptr(GPtrArray) row_starts = g_ptr_array_new ();
      g_autofree guint32 *rorder = NULL;
      LogEntry *e;

      for (e = first; e < end && e->table == table; e++)
        if (e->row != NULL && (e == first || e->row != (e - 1)->row))
          g_ptr_array_add (row_starts, e);
      rorder = property_order (row_starts->pdata, row_starts->len, entry_row_key_at);

      if (tj > 0)
        g_string_append_c (out, ',');
      write_key (out, table->id, table->id_len);
      g_string_append_len (out, "[{", 2);
      for (guint32 rj = 0; rj < row_starts->len; rj++)
        {
          LogEntry *rfirst = row_starts->pdata[rorder ? rorder[rj] : rj];
          g_autoptr(GArray) leaves = g_array_new (FALSE, FALSE, sizeof (LogEntry));

          for (LogEntry *r = rfirst; r < end && r->row == rfirst->row; r++)
            if (r->leaf != TS_NO_LEAF)
              g_array_append_val (leaves, *r);
          if (rj > 0)
            g_string_append_c (out, ',');
          write_key (out, rfirst->row->id, rfirst->row->id_len);
          write_entry_leaves (out, (LogEntry *) (void *) leaves->data, leaves->len,
                              rfirst->row, form);
        }
      g_string_append_c (out, '}');
      close_stamp (out, &table->hlc, table->hash, form);
    }
  g_string_append_c (out, '}');
  close_stamp (out, &tree->tables_hlc, tree->tables_hash, form);
  g_string_append_c (out, ',');
  write_entry_leaves (out, (LogEntry *) (void *) values->data, values->len, tree->values, form);
  g_string_append_len (out, ",1]", 3);

  for (guint i = 0; i < tables->len; i++)
    {
      LogEntry *e = &g_array_index (tables, LogEntry, i);
      e->table->mark = 0;
      if (e->row != NULL)
        e->row->mark = 0;
    }
}

/* ---- Validation of incoming content and changes (section 9.3) ----------- */

static gboolean
valid_hlc (const TsJsonNode *node,
           gint64            max_time)
{
  return node->type == TS_JSON_STRING && ts_hlc_parse (node->u.str, node->len, max_time, NULL);
}

static gboolean
valid_stamp (const TsJsonNode *stamp,
             int               depth,
             gint64            max_time,
             gboolean          content)
{
  const TsJsonNode *thing;

  if (stamp->type != TS_JSON_ARRAY || stamp->len < 1 || stamp->len > 3)
    return FALSE;
  if (content && stamp->len != 3)
    return FALSE;
  if (stamp->len >= 2 && !valid_hlc (&stamp->u.items[1], max_time))
    return FALSE;
  if (stamp->len == 3 &&
      (stamp->u.items[2].type != TS_JSON_NUMBER || !isfinite (stamp->u.items[2].u.num)))
    return FALSE;

  thing = &stamp->u.items[0];
  if (depth > 0)
    {
      if (thing->type != TS_JSON_OBJECT)
        return FALSE;
      for (guint32 i = 0; i < thing->len; i++)
        if (!valid_stamp (&thing->u.members[i].value, depth - 1, max_time, content))
          return FALSE;
      return TRUE;
    }
  if (thing->type == TS_JSON_NUMBER)
    return isfinite (thing->u.num);
  return TRUE;
}

static gboolean
validate_incoming (TsStampTree       *tree,
                   const TsJsonNode  *node,
                   gboolean           content,
                   GError           **error)
{
  gint64 max_time = ts_clock_now (&tree->clock) + TS_HLC_MAX_FUTURE_MS;
  gboolean ok;

  if (node->type != TS_JSON_ARRAY)
    ok = FALSE;
  else if (content)
    ok = node->len == 2;
  else
    ok = node->len == 2 ||
         (node->len == 3 && node->u.items[2].type == TS_JSON_NUMBER &&
          node->u.items[2].u.num == 1);

  ok = ok &&
       valid_stamp (&node->u.items[0], 3, max_time, content) &&
       valid_stamp (&node->u.items[1], 1, max_time, content);
  if (!ok)
    g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT,
                 content ? _("Invalid mergeable content")
                         : _("Invalid mergeable changes"));
  return ok;
}

static void
stamp_hlc (const TsJsonNode *stamp,
           TsHlc            *out)
{
  memset (out, 0, sizeof *out);
  if (stamp->len >= 2)
    ts_hlc_parse (stamp->u.items[1].u.str, stamp->u.items[1].len, G_MAXINT64, out);
}

/* JS ToUint32 of a finite number */
static guint32
to_uint32 (double x)
{
  double t = trunc (x);
  double m = fmod (t, 4294967296.0);

  if (m < 0)
    m += 4294967296.0;
  return (guint32) m;
}

/* ---- Merging (section 7.3, 9.2) ------------------------------------------ */

static void
merge_leaves (TsStampTree      *tree,
              TsTable          *table,
              TsRow            *row,
              const TsJsonNode *stamp,
              TsHlc            *max_hlc)
{
  const TsJsonNode *things = &stamp->u.items[0];
  guint32 h = row->hash;
  TsHlc in_hlc;

  if (row->n_leaves == 0)
    ts_row_reserve (row, things->len);
  for (guint32 i = 0; i < things->len; i++)
    {
      const TsJsonMember *m = &things->u.members[i];
      TsAtom *atom = ts_stamp_tree_atom (tree, m->key, m->key_len, TRUE);
      gssize idx = ts_row_leaf (row, atom, TRUE);
      TsLeaf *leaf = &row->leaves[idx];
      TsHlc leaf_hlc;

      stamp_hlc (&m->value, &leaf_hlc);
      if (ts_hlc_is_empty (&leaf->hlc) || ts_hlc_compare (&leaf_hlc, &leaf->hlc) > 0)
        {
          TsVal v;
          guint32 new_hash;

          val_from_wire (&m->value.u.items[0], &v);
          new_hash = leaf_hash (tree, &v, &leaf_hlc);
          h ^= fold (atom->prefix, leaf->hash) ^ fold (atom->prefix, new_hash);
          leaf->hlc = leaf_hlc;
          leaf->hash = new_hash;
          hlc_max (max_hlc, &leaf_hlc);
          if (ts_leaf_live (leaf) ? leaf_value_equal (leaf, &v) : v.kind == TS_VAL_UNDEFINED)
            {
              leaf_keep_value (&v);
              tree->unlisted_writes++;
            }
          else
            leaf_set_plain (tree, table, row, idx, &v, TRUE);
        }
    }

  stamp_hlc (stamp, &in_hlc);
  if (ts_hlc_compare (&in_hlc, &row->hlc) > 0)
    tree->unlisted_writes++;
  h ^= hlc_replace_term (&row->hlc, &in_hlc);
  hlc_max (&row->hlc, &in_hlc);
  hlc_max (max_hlc, &in_hlc);
  row->hash = h;
}

static void
merge_rows (TsStampTree      *tree,
            TsTable          *table,
            const TsJsonNode *stamp,
            TsHlc            *max_hlc)
{
  const TsJsonNode *things = &stamp->u.items[0];
  guint32 h = table->hash;
  TsHlc in_hlc;

  for (guint32 i = 0; i < things->len; i++)
    {
      const TsJsonMember *m = &things->u.members[i];
      TsRow *row = ts_table_row (table, m->key, m->key_len, TRUE);
      guint32 old = row->hash;

      merge_leaves (tree, table, row, &m->value, max_hlc);
      if (old == 0 && row->hash == 0)
        tree->unlisted_writes++;
      h ^= (old != 0 ? fold (row->prefix, old) : 0) ^ fold (row->prefix, row->hash);
    }

  stamp_hlc (stamp, &in_hlc);
  if (ts_hlc_compare (&in_hlc, &table->hlc) > 0)
    tree->unlisted_writes++;
  h ^= hlc_replace_term (&table->hlc, &in_hlc);
  hlc_max (&table->hlc, &in_hlc);
  hlc_max (max_hlc, &in_hlc);
  table->hash = h;
}

gboolean
ts_stamp_tree_validate_changes (TsStampTree       *tree,
                                const TsJsonNode  *changes,
                                GError           **error)
{
  return validate_incoming (tree, changes, FALSE, error);
}

void
ts_stamp_tree_merge_changes (TsStampTree      *tree,
                             const TsJsonNode *changes)
{
  const TsJsonNode *tables_stamp, *things;
  guint32 h;
  TsHlc in_hlc, max_hlc;

  g_assert (tree->txn_depth > 0);

  memset (&max_hlc, 0, sizeof max_hlc);
  tables_stamp = &changes->u.items[0];
  things = &tables_stamp->u.items[0];
  h = tree->tables_hash;
  for (guint32 i = 0; i < things->len; i++)
    {
      const TsJsonMember *m = &things->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, m->key, m->key_len, TRUE);
      guint32 old = table->hash;

      merge_rows (tree, table, &m->value, &max_hlc);
      if (old == 0 && table->hash == 0)
        tree->unlisted_writes++;
      h ^= (old != 0 ? fold (table->prefix, old) : 0) ^ fold (table->prefix, table->hash);
    }
  stamp_hlc (tables_stamp, &in_hlc);
  if (ts_hlc_compare (&in_hlc, &tree->tables_hlc) > 0)
    tree->unlisted_writes++;
  h ^= hlc_replace_term (&tree->tables_hlc, &in_hlc);
  hlc_max (&tree->tables_hlc, &in_hlc);
  hlc_max (&max_hlc, &in_hlc);
  tree->tables_hash = h;

  merge_leaves (tree, NULL, tree->values, &changes->u.items[1], &max_hlc);

  ts_clock_seen (&tree->clock, &max_hlc);
}

gboolean
ts_stamp_tree_apply_changes (TsStampTree       *tree,
                             const TsJsonNode  *changes,
                             GError           **error)
{
  g_assert (tree->txn_depth > 0);

  if (!validate_incoming (tree, changes, FALSE, error))
    return FALSE;
  ts_stamp_tree_merge_changes (tree, changes);
  return TRUE;
}

/* ---- setMergeableContent (section 9.5) ----------------------------------- */

/* Verbatim copy of a leaf container from hashed stamps. */
static void
load_leaves (TsStampTree      *tree,
             TsTable          *table,
             TsRow            *row,
             const TsJsonNode *stamp,
             TsHlc            *max_hlc)
{
  const TsJsonNode *things = &stamp->u.items[0];

  if (row->n_leaves == 0)
    ts_row_reserve (row, things->len);
  for (guint32 i = 0; i < things->len; i++)
    {
      const TsJsonMember *m = &things->u.members[i];
      TsAtom *atom = ts_stamp_tree_atom (tree, m->key, m->key_len, TRUE);
      gssize idx = ts_row_leaf (row, atom, TRUE);
      TsLeaf *leaf = &row->leaves[idx];
      TsVal v;

      stamp_hlc (&m->value, &leaf->hlc);
      leaf->hash = to_uint32 (m->value.u.items[2].u.num);
      hlc_max (max_hlc, &leaf->hlc);
      val_from_wire (&m->value.u.items[0], &v);
      if (ts_leaf_live (leaf) ? leaf_value_equal (leaf, &v) : v.kind == TS_VAL_UNDEFINED)
        leaf_keep_value (&v);   /* a duplicate key: the last one wins */
      else
        leaf_set_plain (tree, table, row, idx, &v, FALSE);
    }
  stamp_hlc (stamp, &row->hlc);
  row->hash = to_uint32 (stamp->u.items[2].u.num);
  hlc_max (max_hlc, &row->hlc);
}

/* Points a log entry at the same names in the new tree; what is gone
 * stays NULL (or TS_NO_LEAF) and the names are kept. */
static void
relocate_change (TsStampTree  *tree,
                 TsChange     *change,
                 const char   *table_id, gsize table_len,
                 const char   *row_id, gsize row_len,
                 const TsAtom *cell)
{
  TsRow *row = NULL;
  TsTable *table = NULL;
  gssize idx = -1;

  if (table_id != NULL)
    {
      table = ts_stamp_tree_table (tree, table_id, table_len, FALSE);
      row = table ? ts_table_row (table, row_id, row_len, FALSE) : NULL;
    }
  else
    row = tree->values;
  if (row != NULL)
    idx = ts_row_leaf (row, (TsAtom *) cell, FALSE);

  change->table = table;
  change->row = row;
  change->leaf = TS_NO_LEAF;
  if (idx >= 0 && !(row->leaves[idx].flags & TS_LEAF_TOUCHED))
    {
      change->leaf = idx;
      row->leaves[idx].flags |= TS_LEAF_TOUCHED;
      if (change->names == NULL)
        return;
      for (int i = 0; i < 3; i++)
        g_free (change->names[i]);
      g_clear_pointer (&change->names, g_free);
      return;
    }
  if (change->names == NULL)
    {
      change->names = g_new0 (char *, 3);
      if (table_id != NULL)
        {
          change->names[0] = g_strndup (table_id, table_len);
          change->names[1] = g_strndup (row_id, row_len);
        }
      change->names[2] = g_strndup (cell->str, cell->len);
    }
}

/* The content fields of a tree, set aside while new content is loaded */
typedef struct {
  TsTable **tables;
  TsIndex   tables_index;
  guint32   n_tables;
  guint32   tables_cap;
  guint32   n_live_tables;
  guint32   tables_hash;
  guint32   tables_next_seq;
  TsHlc     tables_hlc;
  TsRow    *values;
} Content;

/* Sets the content aside and leaves the tree empty */
static void
content_take (TsStampTree *tree,
              Content     *c)
{
  c->tables = tree->tables;
  c->tables_index = tree->tables_index;
  c->n_tables = tree->n_tables;
  c->tables_cap = tree->tables_cap;
  c->n_live_tables = tree->n_live_tables;
  c->tables_hash = tree->tables_hash;
  c->tables_next_seq = tree->tables_next_seq;
  c->tables_hlc = tree->tables_hlc;
  c->values = tree->values;
  tree_reset_content (tree);
}

/* Frees the tree's content and puts the one set aside back */
static void
content_put_back (TsStampTree   *tree,
                  const Content *c)
{
  free_content (tree->tables, tree->n_tables, &tree->tables_index, tree->values);
  tree->tables = c->tables;
  tree->tables_index = c->tables_index;
  tree->n_tables = c->n_tables;
  tree->tables_cap = c->tables_cap;
  tree->n_live_tables = c->n_live_tables;
  tree->tables_hash = c->tables_hash;
  tree->tables_next_seq = c->tables_next_seq;
  tree->tables_hlc = c->tables_hlc;
  tree->values = c->values;
}

/* Live leaves of some tables and a values container */
static gsize
count_live_leaves (TsTable **tables,
                   guint32   n_tables,
                   TsRow    *values)
{
  gsize n = values->n_live;

  for (guint32 t = 0; t < n_tables; t++)
    for (guint32 r = 0; r < tables[t]->n_rows; r++)
      n += tables[t]->rows[r]->n_live;
  return n;
}

typedef void (*LiveLeafFunc) (TsTable *table,
                              TsRow   *row,
                              guint32  leaf,
                              gpointer data);

/* Calls func for every live leaf of tables (n_tables of them, live or not)
 * and values that is not marked touched, in plain order: the tables, then
 * the values (table NULL). leaves and leaves_cap are a reusable buffer. */
static void
foreach_untouched_live_leaf (TsTable      **tables,
                             guint          n_tables,
                             TsRow         *values,
                             guint32      **leaves,
                             guint32       *leaves_cap,
                             LiveLeafFunc   func,
                             gpointer       data)
{
  guint n_live;
  g_autofree TsTable **live_tables =
    (TsTable **) live_sorted ((gpointer *) tables, n_tables, G_STRUCT_OFFSET (TsTable, n_live),
                              G_STRUCT_OFFSET (TsTable, seq), &n_live);

  for (guint t = 0; t <= n_live; t++)
    {
      TsTable *table = t < n_live ? live_tables[t] : NULL;
      guint n_rows;
      g_autofree TsRow **rows = NULL;

      if (table != NULL)
        rows = ts_table_live_rows (table, &n_rows);
      else
        {
          rows = g_new (TsRow *, 1);
          rows[0] = values;
          n_rows = 1;
        }
      for (guint r = 0; r < n_rows; r++)
        {
          TsRow *row = rows[r];
          guint n_leaves;

          row_live_leaves_buf (row, leaves, leaves_cap, &n_leaves);
          for (guint l = 0; l < n_leaves; l++)
            if (!(row->leaves[(*leaves)[l]].flags & TS_LEAF_TOUCHED))
              func (table, row, (*leaves)[l], data);
        }
    }
}

typedef struct {
  GArray   *log;
  gboolean  touch;
} AppendLive;

static void
append_live_leaf (TsTable *table,
                  TsRow   *row,
                  guint32  leaf,
                  gpointer data)
{
  AppendLive *append = data;
  TsChange change = { table, row, leaf, { TS_VAL_UNDEFINED, { 0 } }, NULL };

  if (append->touch)
    row->leaves[leaf].flags |= TS_LEAF_TOUCHED;
  g_array_append_val (append->log, change);
}

/* Appends an entry for every live leaf not logged yet, in plain order,
 * marking them touched when log is the transaction log */
static void
log_append_live (TsStampTree  *tree,
                 GArray       *log,
                 guint32     **leaves,
                 guint32      *leaves_cap)
{
  AppendLive append = { log, log == tree->changes };

  foreach_untouched_live_leaf (tree->tables, tree->n_tables, tree->values, leaves, leaves_cap,
                               append_live_leaf, &append);
}

void
ts_stamp_tree_expand_log (TsStampTree *tree,
                          GArray      *log)
{
  g_autofree guint32 *leaves = NULL;
  guint32 leaves_cap = 0;
  gsize n;

  if (!tree->log_deferred || log == NULL)
    return;
  g_assert (tree->txn_depth == 0 || log == tree->changes);
  tree->log_deferred = FALSE;

  n = count_live_leaves (tree->tables, tree->n_tables, tree->values);
  log_reserve (log, n);
  log_append_live (tree, log, &leaves, &leaves_cap);
}

/* Moves the value of a leaf of the old content into a transaction log
 * entry of its own (the old content goes away): a deletion TinyBase's
 * setMergeableContent makes */
static void
log_old_leaf (TsTable *table,
              TsRow   *row,
              guint32  index,
              gpointer data)
{
  TsStampTree *tree = data;
  TsLeaf *leaf = &row->leaves[index];
  TsChange change = { 0, };

  leaf->flags |= TS_LEAF_TOUCHED;
  change.old.kind = leaf->kind;
  change.old.u.num = leaf->u.num;
  if (leaf->kind == TS_VAL_STRING || leaf->kind == TS_VAL_RAW)
    change.old.u.str = leaf->u.str;
  leaf->kind = TS_VAL_UNDEFINED;
  if (table != NULL)
    relocate_change (tree, &change, table->id, table->id_len, row->id, row->id_len, leaf->id);
  else
    relocate_change (tree, &change, NULL, 0, NULL, 0, leaf->id);
  g_array_append_val (tree->changes, change);
}

/* The end of setMergeableContent, once the new content is in the tree and
 * the old one (old) set aside: the transaction log, then the old content
 * goes. */
static void
finish_set_content (TsStampTree   *tree,
                    const Content *old,
                    const TsHlc   *max_hlc)
{
  guint n_old_changes;
  g_autofree guint32 *leaves = NULL;
  guint32 leaves_cap = 0;

  tree->unlisted_writes++;

  /* The transaction log: TinyBase deletes all plain content, then sets the
   * new content; only cells that exist in the new stamp tree are listed
   * as mergeable changes, listeners see the net change. */
  n_old_changes = tree->changes->len;
  if (n_old_changes > 0 || count_live_leaves (old->tables, old->n_tables, old->values) > 0)
    {
      /* room for every entry at once (one entry per live leaf at most) */
      log_reserve (tree->changes,
                   count_live_leaves (old->tables, old->n_tables, old->values) +
                   count_live_leaves (tree->tables, tree->n_tables, tree->values));
    }
  for (guint i = 0; i < n_old_changes; i++)
    {
      TsChange *change = &g_array_index (tree->changes, TsChange, i);
      const char *table_id, *row_id, *cell_id;
      TsAtom *cell;

      ts_change_get_ids (change, &table_id, &row_id, &cell_id);
      cell = ts_stamp_tree_atom (tree, cell_id, strlen (cell_id), TRUE);
      /* the ids point into the old tree (or names): copy them first */
      {
        g_autofree char *t = g_strdup (table_id);
        g_autofree char *r = g_strdup (row_id);

        relocate_change (tree, change, t, t ? strlen (t) : 0, r, r ? strlen (r) : 0, cell);
      }
    }

  /* old live leaves not logged yet, in plain order */
  foreach_untouched_live_leaf (old->tables, old->n_tables, old->values, &leaves, &leaves_cap,
                               log_old_leaf, tree);

  /* new live leaves not logged yet, in their (new) plain order: when none
   * is logged yet, that is all of them, and they wait until the log is
   * needed */
  if (tree->changes->len == 0)
    tree->log_deferred = TRUE;
  else
    log_append_live (tree, tree->changes, &leaves, &leaves_cap);

  retire_content (tree, old->tables, old->n_tables, old->tables_index, old->values);
  ts_clock_seen (&tree->clock, max_hlc);
}

gboolean
ts_stamp_tree_set_content (TsStampTree       *tree,
                           const TsJsonNode  *content,
                           GError           **error)
{
  Content old;
  const TsJsonNode *tables_stamp, *things;
  TsHlc max_hlc;

  g_assert (tree->txn_depth > 0);

  if (!validate_incoming (tree, content, TRUE, error))
    return FALSE;

  ts_stamp_tree_expand_log (tree, tree->changes);
  content_take (tree, &old);

  memset (&max_hlc, 0, sizeof max_hlc);
  tables_stamp = &content->u.items[0];
  things = &tables_stamp->u.items[0];
  for (guint32 i = 0; i < things->len; i++)
    {
      const TsJsonMember *tm = &things->u.members[i];
      const TsJsonNode *rows = &tm->value.u.items[0];
      TsTable *table = ts_stamp_tree_table (tree, tm->key, tm->key_len, TRUE);

      for (guint32 j = 0; j < rows->len; j++)
        {
          const TsJsonMember *rm = &rows->u.members[j];
          TsRow *row = ts_table_row (table, rm->key, rm->key_len, TRUE);

          load_leaves (tree, table, row, &rm->value, &max_hlc);
        }
      stamp_hlc (&tm->value, &table->hlc);
      table->hash = to_uint32 (tm->value.u.items[2].u.num);
      hlc_max (&max_hlc, &table->hlc);
    }
  stamp_hlc (tables_stamp, &tree->tables_hlc);
  tree->tables_hash = to_uint32 (tables_stamp->u.items[2].u.num);
  hlc_max (&max_hlc, &tree->tables_hlc);
  load_leaves (tree, NULL, tree->values, &content->u.items[1], &max_hlc);

  finish_set_content (tree, &old, &max_hlc);
  return TRUE;
}

/* ---- setMergeableContent straight from JSON text ------------------------- */

/* The common case of setMergeableContent, loaded as the text is read: no
 * JSON tree, every stamp validated as it comes. It declines (leaving the
 * tree as it was) whatever it does not handle exactly as ts_json_parse,
 * validate_incoming and the loading above together would: invalid or
 * unusual text (an escape in a key or HLC, a key that is an array index
 * and so reordered, a duplicate key, an object or array as a cell), and
 * every kind of invalid content. The caller then takes the generic path,
 * which gives the same result or the error. */

typedef struct {
  TsAtom *atom;
  TsVal   value;
  TsHlc   hlc;
  guint32 hash;
} PendingLeaf;

typedef struct {
  TsStampTree *tree;
  const char  *p;
  const char  *end;
  gint64       max_time;
  TsHlc        max_hlc;
  GArray      *pending;     /* of PendingLeaf: the leaves of one container */
  GPtrArray   *last_atoms;  /* the previous row's atoms, by position */
  GString     *decoded;     /* a string with escapes */
  TsStr      **strs;        /* recent short strings, by hash, with a ref */
} Loader;

#define LOADER_STRS     4096   /* a power of 2 */
#define LOADER_STR_MAX  64

/* A stored string: short ones that repeat (colours, states, names) are
 * shared, as the strings are immutable. */
static TsStr *
loader_str (Loader     *ld,
            const char *s,
            gsize       len)
{
  TsStr **slot, *str;

  if (len > LOADER_STR_MAX)
    return ts_str_new (s, len);
  slot = &ld->strs[ts_hash_bytes (s, len) & (LOADER_STRS - 1)];
  if (*slot != NULL && (*slot)->len == len && memcmp ((*slot)->data, s, len) == 0)
    return ts_str_ref (*slot);
  str = ts_str_new (s, len);
  ts_str_unref (*slot);
  *slot = ts_str_ref (str);
  return str;
}

static inline void
loader_ws (Loader *ld)
{
  const char *p = ld->p;

  while (p < ld->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  ld->p = p;
}

static inline gboolean
loader_char (Loader *ld,
             char    c)
{
  loader_ws (ld);
  if (G_UNLIKELY (ld->p >= ld->end || *ld->p != c))
    return FALSE;
  ld->p++;
  return TRUE;
}

/* Just after the "{" of an object: 1 if a member follows, 0 for an empty
 * object (its "}" consumed) */
static inline int
loader_object_start (Loader *ld)
{
  loader_ws (ld);
  if (ld->p < ld->end && *ld->p == '}')
    {
      ld->p++;
      return 0;
    }
  return 1;
}

/* After a member: 1 for "," (another member follows), 0 for the closing
 * "}", each consumed; -1 for anything else */
static inline int
loader_object_next (Loader *ld)
{
  loader_ws (ld);
  if (ld->p < ld->end && (*ld->p == ',' || *ld->p == '}'))
    return *ld->p++ == ',';
  return -1;
}

/* A string without escapes: its bytes in place */
static inline gboolean
loader_plain_string (Loader      *ld,
                     const char **s,
                     gsize       *len)
{
  const char *q;
  gboolean has_escape;

  loader_ws (ld);
  if (G_UNLIKELY (ld->p >= ld->end || *ld->p != '"'))
    return FALSE;
  q = ts_json_scan_string (ld->p, ld->end, &has_escape);
  if (G_UNLIKELY (q == NULL || has_escape || q - ld->p - 1 >= G_MAXUINT32))
    return FALSE;
  *s = ld->p + 1;
  *len = (gsize) (q - ld->p - 1);
  ld->p = q + 1;
  return TRUE;
}

/* Where the keys of one object are: JSON.parse puts the keys that are
 * array indexes first, ascending; the loader takes only objects already
 * in that order. */
typedef struct {
  gboolean other;       /* a key that is no array index came */
  gboolean any_index;
  guint32  last_index;
} KeyOrder;

/* An object key and its colon */
static inline gboolean
loader_key (Loader      *ld,
            KeyOrder    *order,
            const char **s,
            gsize       *len)
{
  guint32 index;

  if (!loader_plain_string (ld, s, len))
    return FALSE;
  if (*len > 0 && (*s)[0] >= '0' && (*s)[0] <= '9' &&
      ts_json_is_array_index (*s, *len, &index))
    {
      if (order->other || (order->any_index && index <= order->last_index))
        return FALSE;
      order->any_index = TRUE;
      order->last_index = index;
    }
  else
    order->other = TRUE;
  return loader_char (ld, ':');
}

/* After the thing of a stamp: ", hlc, hash ]" */
static gboolean
loader_stamp_tail (Loader  *ld,
                   TsHlc   *hlc,
                   guint32 *hash)
{
  const char *s, *q;
  gsize len;
  double num;

  if (!loader_char (ld, ',') || !loader_plain_string (ld, &s, &len) ||
      !ts_hlc_parse (s, len, ld->max_time, hlc) || !loader_char (ld, ','))
    return FALSE;
  loader_ws (ld);
  if (ld->p >= ld->end || !(*ld->p == '-' || (*ld->p >= '0' && *ld->p <= '9')))
    return FALSE;
  q = ts_json_scan_number (ld->p, ld->end, &num);
  if (q == NULL || !isfinite (num))
    return FALSE;
  ld->p = q;
  *hash = to_uint32 (num);
  hlc_max (&ld->max_hlc, hlc);
  return loader_char (ld, ']');
}

static inline gboolean
loader_literal (Loader     *ld,
                const char *lit,
                gsize       len)
{
  if ((gsize) (ld->end - ld->p) < len || memcmp (ld->p, lit, len) != 0)
    return FALSE;
  ld->p += len;
  return TRUE;
}

/* A cell or value in encoded form, as val_from_wire */
static gboolean
loader_leaf_value (Loader *ld,
                   TsVal  *out)
{
  out->kind = TS_VAL_UNDEFINED;
  out->u.num = 0;
  loader_ws (ld);
  if (ld->p >= ld->end)
    return FALSE;
  switch (*ld->p)
    {
    case '"':
      {
        gboolean has_escape;
        const char *q = ts_json_scan_string (ld->p, ld->end, &has_escape);
        const char *s = ld->p + 1;
        gsize len;

        if (q == NULL || q - s >= G_MAXUINT32)
          return FALSE;
        len = (gsize) (q - s);
        ld->p = q + 1;
        if (has_escape)
          {
            gssize n;

            g_string_set_size (ld->decoded, len);
            n = ts_json_decode_escapes (s, len, ld->decoded->str);
            if (n < 0)
              return FALSE;
            s = ld->decoded->str;
            len = (gsize) n;
          }
        if (len == 3 && memcmp (s, undefined_marker, 3) == 0)
          return TRUE;
        out->kind = TS_VAL_STRING;
        out->u.str = loader_str (ld, s, len);
        return TRUE;
      }
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      {
        const char *q = ts_json_scan_number (ld->p, ld->end, &out->u.num);

        if (q == NULL || !isfinite (out->u.num))
          return FALSE;
        ld->p = q;
        out->kind = TS_VAL_NUMBER;
        return TRUE;
      }
    case 't':
      out->kind = TS_VAL_TRUE;
      return loader_literal (ld, "true", 4);
    case 'f':
      out->kind = TS_VAL_FALSE;
      return loader_literal (ld, "false", 5);
    case 'n':
      out->kind = TS_VAL_NULL;
      return loader_literal (ld, "null", 4);
    default:
      return FALSE;     /* objects and arrays, and invalid text */
    }
}

static void
pending_clear (GArray *pending)
{
  for (guint i = 0; i < pending->len; i++)
    ts_val_clear (&g_array_index (pending, PendingLeaf, i).value);
  g_array_set_size (pending, 0);
}

/* The stamp of a leaf container: "[{id: [value, hlc, hash], ...}, hlc,
 * hash]", as load_leaves */
static gboolean
loader_leaves (Loader  *ld,
               TsTable *table,
               TsRow   *row)
{
  GArray *pending = ld->pending;
  KeyOrder order = { FALSE, FALSE, 0 };
  int more;
  guint32 n;
  gboolean ok = FALSE;

  if (!loader_char (ld, '[') || !loader_char (ld, '{'))
    return FALSE;
  for (more = loader_object_start (ld); more > 0; more = loader_object_next (ld))
    {
      PendingLeaf *pl;
      const char *key;
      gsize len;
      TsAtom *atom = NULL;

      if (!loader_key (ld, &order, &key, &len))
        goto out;
      /* rows tend to repeat the cell ids of the one before */
      if (pending->len < ld->last_atoms->len)
        {
          TsAtom *last = ld->last_atoms->pdata[pending->len];

          if (last->len == len && memcmp (last->str, key, len) == 0)
            atom = last;
        }
      if (atom == NULL)
        {
          atom = ts_stamp_tree_atom (ld->tree, key, len, TRUE);
          if (pending->len < ld->last_atoms->len)
            ld->last_atoms->pdata[pending->len] = atom;
          else
            g_ptr_array_add (ld->last_atoms, atom);
        }
      g_array_set_size (pending, pending->len + 1);
      pl = &g_array_index (pending, PendingLeaf, pending->len - 1);
      pl->atom = atom;
      pl->value.kind = TS_VAL_UNDEFINED;
      if (!loader_char (ld, '[') || !loader_leaf_value (ld, &pl->value) ||
          !loader_stamp_tail (ld, &pl->hlc, &pl->hash))
        goto out;
    }
  if (more < 0)
    goto out;

  n = pending->len;
  if (row->n_leaves == 0 && n > 0 && (row->cap & TS_ROW_IN_SLAB))
    {
      row->leaves = slab_alloc (table, n * sizeof (TsLeaf));
      row->cap = TS_ROW_IN_SLAB | TS_ROW_LEAVES_IN_SLAB | n;
    }
  else if (row->n_leaves == 0)
    ts_row_reserve (row, n);
  for (guint32 i = 0; i < n; i++)
    {
      PendingLeaf *pl = &g_array_index (pending, PendingLeaf, i);
      guint32 before = row->n_leaves;
      gssize idx = ts_row_leaf (row, pl->atom, TRUE);
      TsLeaf *leaf = &row->leaves[idx];

      if (row->n_leaves == before)
        goto out;       /* a duplicate key */
      leaf->hlc = pl->hlc;
      leaf->hash = pl->hash;
      if (pl->value.kind != TS_VAL_UNDEFINED)
        leaf_set_plain (ld->tree, table, row, idx, &pl->value, FALSE);
    }
  ok = loader_stamp_tail (ld, &row->hlc, &row->hash);

out:
  pending_clear (pending);
  return ok;
}

/* Rows of a table past this many come from its slabs */
#define SLAB_ROWS 64

/* The row named key of a table, new unless the key is a duplicate */
static TsRow *
loader_row (TsTable    *table,
            const char *key,
            gsize       len)
{
  guint32 h;
  TsRow *row;

  if (table->n_rows < SLAB_ROWS)
    return ts_table_row (table, key, len, TRUE);

  h = ts_hash_bytes (key, len);
  row = named_find ((gpointer *) table->rows, table->n_rows, &table->index,
                    &row_layout, h, key, len);
  if (row != NULL)
    return row;
  row = slab_alloc (table, sizeof (TsRow) + len + 1);
  row_init (row, key, len, h);
  row->cap = TS_ROW_IN_SLAB;
  named_append ((gpointer **) &table->rows, &table->n_rows, &table->cap, &table->index,
                &row_layout, row, 4);
  return row;
}

static gboolean
loader_rows (Loader  *ld,
             TsTable *table)
{
  KeyOrder order = { FALSE, FALSE, 0 };
  int more;

  if (!loader_char (ld, '[') || !loader_char (ld, '{'))
    return FALSE;
  for (more = loader_object_start (ld); more > 0; more = loader_object_next (ld))
    {
      const char *key;
      gsize len;
      guint32 before = table->n_rows;
      TsRow *row;

      if (!loader_key (ld, &order, &key, &len))
        return FALSE;
      row = loader_row (table, key, len);
      if (table->n_rows == before || !loader_leaves (ld, table, row))
        return FALSE;
    }
  if (more < 0)
    return FALSE;
  return loader_stamp_tail (ld, &table->hlc, &table->hash);
}

static gboolean
loader_content (Loader *ld)
{
  TsStampTree *tree = ld->tree;
  KeyOrder order = { FALSE, FALSE, 0 };
  int more;

  if (!loader_char (ld, '[') || !loader_char (ld, '[') || !loader_char (ld, '{'))
    return FALSE;
  for (more = loader_object_start (ld); more > 0; more = loader_object_next (ld))
    {
      const char *key;
      gsize len;
      guint32 before = tree->n_tables;
      TsTable *table;

      if (!loader_key (ld, &order, &key, &len))
        return FALSE;
      table = ts_stamp_tree_table (tree, key, len, TRUE);
      if (tree->n_tables == before || !loader_rows (ld, table))
        return FALSE;
    }
  if (more < 0)
    return FALSE;
  if (!loader_stamp_tail (ld, &tree->tables_hlc, &tree->tables_hash) ||
      !loader_char (ld, ',') || !loader_leaves (ld, NULL, tree->values) ||
      !loader_char (ld, ']'))
    return FALSE;
  loader_ws (ld);
  return ld->p == ld->end;
}

gboolean
ts_stamp_tree_set_content_text (TsStampTree *tree,
                                const char  *text,
                                gsize        len)
{
  Loader ld;
  Content old;
  gboolean ok;

  g_assert (tree->txn_depth > 0);

  memset (&ld, 0, sizeof ld);
  ld.tree = tree;
  ld.p = text;
  ld.end = text + len;
  ld.max_time = ts_clock_now (&tree->clock) + TS_HLC_MAX_FUTURE_MS;
  ld.pending = g_array_sized_new (FALSE, FALSE, sizeof (PendingLeaf), 16);
  ld.last_atoms = g_ptr_array_new ();
  ld.decoded = g_string_new (NULL);
  ld.strs = g_new0 (TsStr *, LOADER_STRS);

  ts_stamp_tree_expand_log (tree, tree->changes);
  content_take (tree, &old);
  ok = loader_content (&ld);
  if (ok)
    finish_set_content (tree, &old, &ld.max_hlc);
  else
    content_put_back (tree, &old);

  g_array_free (ld.pending, TRUE);
  g_ptr_array_free (ld.last_atoms, TRUE);
  g_string_free (ld.decoded, TRUE);
  for (guint i = 0; i < LOADER_STRS; i++)
    ts_str_unref (ld.strs[i]);
  g_free (ld.strs);
  return ok;
}

/* ---- Hash and diff queries (section 10) ---------------------------------- */

static gboolean
expect_object (const TsJsonNode  *node,
               GError           **error)
{
  if (node->type == TS_JSON_OBJECT)
    return TRUE;
  g_set_error (error, TS_ERROR, TS_ERROR_INVALID_ARGUMENT,
               _("Expected a JSON object of hashes"));
  return FALSE;
}

/* Compares a local hash with an entry of a hash object: TRUE if the entry
 * is missing or differs. */
static gboolean
hash_differs (TsJsonDoc        *doc,
              const TsJsonNode *hashes,
              const char       *id,
              gsize             len,
              guint32           local,
              const TsJsonNode **entry)
{
  const TsJsonNode *other = ts_json_object_get (doc, hashes, id, len);

  if (entry != NULL)
    *entry = other;
  return other == NULL || other->type != TS_JSON_NUMBER || other->u.num != (double) local;
}

static void
write_hash_member (GString    *out,
                   gboolean   *first,
                   const char *id,
                   gsize       len,
                   guint32     hash)
{
  if (!*first)
    g_string_append_c (out, ',');
  *first = FALSE;
  write_key (out, id, len);
  write_uint (out, hash);
}

/* Writes {id: hash} for the children of a container, in JS order. */
static void
write_child_hashes (GString       *out,
                    gconstpointer  items,
                    guint32        n,
                    KeyAt          key_at,
                    guint32      (*hash_at) (gconstpointer, guint32))
{
  g_autofree guint32 *order = property_order (items, n, key_at);
  gboolean first = TRUE;

  g_string_append_c (out, '{');
  for (guint32 j = 0; j < n; j++)
    {
      guint32 i = order ? order[j] : j;
      guint32 len;
      const char *key = key_at (items, i, &len);

      write_hash_member (out, &first, key, len, hash_at (items, i));
    }
  g_string_append_c (out, '}');
}

static guint32
table_stamp_hash_at (gconstpointer ctx, guint32 i)
{
  return ((TsTable * const *) ctx)[i]->hash;
}

static guint32
row_stamp_hash_at (gconstpointer ctx, guint32 i)
{
  return ((TsRow * const *) ctx)[i]->hash;
}

static guint32
leaf_stamp_hash_at (gconstpointer ctx, guint32 i)
{
  return ((const TsLeaf *) ctx)[i].hash;
}

void
ts_stamp_tree_write_table_hashes (TsStampTree *tree,
                                  GString     *out)
{
  write_child_hashes (out, tree->tables, tree->n_tables, table_key_at, table_stamp_hash_at);
}

void
ts_stamp_tree_write_value_hashes (TsStampTree *tree,
                                  GString     *out)
{
  write_child_hashes (out, tree->values->leaves, tree->values->n_leaves,
                      leaf_key_at, leaf_stamp_hash_at);
}

/* Writes "[{...}" + (",hlc")? + "]" for a tables stamp built from a list
 * of (table, rows) selections; a helper for the diffs. */
typedef struct {
  TsTable   *table;
  GPtrArray *rows;   /* TsRow*, or NULL for "all rows" */
} TableSel;

static const char *
sel_key_at (gconstpointer ctx, guint32 i, guint32 *len)
{
  const TableSel *sel = &((const TableSel *) ctx)[i];

  *len = sel->table->id_len;
  return sel->table->id;
}

static void
write_rows_selection (GString          *out,
                      TsStampTree      *tree,
                      GArray           *sels,
                      gboolean          with_table_hlc)
{
  g_autofree guint32 *order = property_order (sels->data, sels->len, sel_key_at);

  g_string_append_len (out, "[{", 2);
  for (guint32 j = 0; j < sels->len; j++)
    {
      TableSel *sel = &g_array_index (sels, TableSel, order ? order[j] : j);

      if (j > 0)
        g_string_append_c (out, ',');
      write_key (out, sel->table->id, sel->table->id_len);
      if (sel->rows == NULL)
        write_table_stamp (out, sel->table, STAMP_UNHASHED);
      else
        {
          g_autofree guint32 *rorder = property_order (sel->rows->pdata, sel->rows->len, row_key_at);
          TsHlc none = { { 0 } };

          g_string_append_len (out, "[{", 2);
          for (guint32 k = 0; k < sel->rows->len; k++)
            {
              TsRow *row = sel->rows->pdata[rorder ? rorder[k] : k];

              if (k > 0)
                g_string_append_c (out, ',');
              write_key (out, row->id, row->id_len);
              write_row_stamp (out, row, STAMP_UNHASHED);
            }
          g_string_append_c (out, '}');
          close_stamp (out, with_table_hlc ? &sel->table->hlc : &none, 0, STAMP_UNHASHED);
        }
    }
  g_string_append_c (out, '}');
  close_stamp (out, &tree->tables_hlc, 0, STAMP_UNHASHED);
}

static void
free_sels (GArray *sels)
{
  for (guint i = 0; i < sels->len; i++)
    if (g_array_index (sels, TableSel, i).rows != NULL)
      g_ptr_array_unref (g_array_index (sels, TableSel, i).rows);
  g_array_unref (sels);
}

gboolean
ts_stamp_tree_write_table_diff (TsStampTree       *tree,
                                TsJsonDoc         *doc,
                                const TsJsonNode  *other,
                                GString           *out,
                                GError           **error)
{
  GArray *sels;
  g_autoptr(GString) differing = g_string_new ("{");
  gboolean first = TRUE;
  g_autofree guint32 *order = NULL;

  if (!expect_object (other, error))
    return FALSE;

  sels = g_array_new (FALSE, FALSE, sizeof (TableSel));
  order = property_order (tree->tables, tree->n_tables, table_key_at);
  for (guint32 j = 0; j < tree->n_tables; j++)
    {
      TsTable *table = tree->tables[order ? order[j] : j];
      const TsJsonNode *entry;

      if (!hash_differs (doc, other, table->id, table->id_len, table->hash, &entry))
        continue;
      if (entry == NULL)
        {
          TableSel sel = { table, NULL };
          g_array_append_val (sels, sel);
        }
      else
        write_hash_member (differing, &first, table->id, table->id_len, table->hash);
    }
  g_string_append_c (differing, '}');

  g_string_append_c (out, '[');
  write_rows_selection (out, tree, sels, TRUE);
  g_string_append_c (out, ',');
  g_string_append_len (out, differing->str, differing->len);
  g_string_append_c (out, ']');
  free_sels (sels);
  return TRUE;
}

gboolean
ts_stamp_tree_write_row_hashes (TsStampTree       *tree,
                                TsJsonDoc         *doc,
                                const TsJsonNode  *other,
                                GString           *out,
                                GError           **error)
{
  gboolean first = TRUE;

  if (!expect_object (other, error))
    return FALSE;

  g_string_append_c (out, '{');
  for (guint32 i = 0; i < other->len; i++)
    {
      const TsJsonMember *m = &other->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, m->key, m->key_len, FALSE);

      if (table == NULL || table->n_rows == 0 ||
          (m->value.type == TS_JSON_NUMBER && m->value.u.num == (double) table->hash))
        continue;
      if (!first)
        g_string_append_c (out, ',');
      first = FALSE;
      write_key (out, table->id, table->id_len);
      write_child_hashes (out, table->rows, table->n_rows, row_key_at, row_stamp_hash_at);
    }
  g_string_append_c (out, '}');
  return TRUE;
}

gboolean
ts_stamp_tree_write_row_diff (TsStampTree       *tree,
                              TsJsonDoc         *doc,
                              const TsJsonNode  *other,
                              GString           *out,
                              GError           **error)
{
  GArray *sels;
  g_autoptr(GString) differing = g_string_new ("{");
  gboolean first_table = TRUE;

  if (!expect_object (other, error))
    return FALSE;

  sels = g_array_new (FALSE, FALSE, sizeof (TableSel));
  for (guint32 i = 0; i < other->len; i++)
    {
      const TsJsonMember *m = &other->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, m->key, m->key_len, FALSE);
      g_autofree guint32 *order = NULL;
      GPtrArray *new_rows = NULL;
      gboolean first_row = TRUE;

      if (table == NULL)
        continue;
      if (m->value.type != TS_JSON_OBJECT)
        {
          free_sels (sels);
          return expect_object (&m->value, error);
        }
      order = property_order (table->rows, table->n_rows, row_key_at);
      for (guint32 j = 0; j < table->n_rows; j++)
        {
          TsRow *row = table->rows[order ? order[j] : j];
          const TsJsonNode *entry;

          if (!hash_differs (doc, &m->value, row->id, row->id_len, row->hash, &entry))
            continue;
          if (entry == NULL)
            {
              if (new_rows == NULL)
                new_rows = g_ptr_array_new ();
              g_ptr_array_add (new_rows, row);
            }
          else
            {
              if (first_row)
                {
                  if (!first_table)
                    g_string_append_c (differing, ',');
                  first_table = FALSE;
                  write_key (differing, table->id, table->id_len);
                  g_string_append_c (differing, '{');
                }
              write_hash_member (differing, &first_row, row->id, row->id_len, row->hash);
            }
        }
      if (!first_row)
        g_string_append_c (differing, '}');
      if (new_rows != NULL)
        {
          TableSel sel = { table, new_rows };
          g_array_append_val (sels, sel);
        }
    }
  g_string_append_c (differing, '}');

  g_string_append_c (out, '[');
  write_rows_selection (out, tree, sels, FALSE);
  g_string_append_c (out, ',');
  g_string_append_len (out, differing->str, differing->len);
  g_string_append_c (out, ']');
  free_sels (sels);
  return TRUE;
}

gboolean
ts_stamp_tree_write_cell_hashes (TsStampTree       *tree,
                                 TsJsonDoc         *doc,
                                 const TsJsonNode  *other,
                                 GString           *out,
                                 GError           **error)
{
  gboolean first_table = TRUE;

  if (!expect_object (other, error))
    return FALSE;

  g_string_append_c (out, '{');
  for (guint32 i = 0; i < other->len; i++)
    {
      const TsJsonMember *m = &other->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, m->key, m->key_len, FALSE);
      gboolean first_row = TRUE;

      if (table == NULL)
        continue;
      if (m->value.type != TS_JSON_OBJECT)
        return expect_object (&m->value, error);
      for (guint32 j = 0; j < m->value.len; j++)
        {
          const TsJsonMember *rm = &m->value.u.members[j];
          TsRow *row = ts_table_row (table, rm->key, rm->key_len, FALSE);

          if (row == NULL || row->n_leaves == 0 ||
              (rm->value.type == TS_JSON_NUMBER && rm->value.u.num == (double) row->hash))
            continue;
          if (first_row)
            {
              if (!first_table)
                g_string_append_c (out, ',');
              first_table = FALSE;
              write_key (out, table->id, table->id_len);
              g_string_append_c (out, '{');
            }
          else
            g_string_append_c (out, ',');
          first_row = FALSE;
          write_key (out, row->id, row->id_len);
          write_child_hashes (out, row->leaves, row->n_leaves, leaf_key_at, leaf_stamp_hash_at);
        }
      if (!first_row)
        g_string_append_c (out, '}');
    }
  g_string_append_c (out, '}');
  return TRUE;
}

/* Writes the leaves of row whose hash differs from other's (always with
 * the HLC when always_hlc) as "[{...}" + row hlc + "]"; returns FALSE and
 * writes nothing when none differs. */
static gboolean
write_leaf_diff (GString          *out,
                 TsJsonDoc        *doc,
                 const TsRow      *row,
                 const TsJsonNode *other,
                 StampForm         leaf_form)
{
  g_autofree guint32 *order = property_order (row->leaves, row->n_leaves, leaf_key_at);
  gboolean first = TRUE;

  for (guint32 j = 0; j < row->n_leaves; j++)
    {
      const TsLeaf *leaf = &row->leaves[order ? order[j] : j];

      if (!hash_differs (doc, other, leaf->id->str, leaf->id->len, leaf->hash, NULL))
        continue;
      g_string_append_len (out, first ? "[{" : ",", first ? 2 : 1);
      first = FALSE;
      write_key (out, leaf->id->str, leaf->id->len);
      write_leaf_stamp (out, leaf, leaf_form);
    }
  if (first)
    return FALSE;
  g_string_append_c (out, '}');
  close_stamp (out, &row->hlc, 0, STAMP_UNHASHED);
  return TRUE;
}

gboolean
ts_stamp_tree_write_cell_diff (TsStampTree       *tree,
                               TsJsonDoc         *doc,
                               const TsJsonNode  *other,
                               GString           *out,
                               GError           **error)
{
  gboolean first_table = TRUE;

  if (!expect_object (other, error))
    return FALSE;

  g_string_append_len (out, "[{", 2);
  for (guint32 i = 0; i < other->len; i++)
    {
      const TsJsonMember *m = &other->u.members[i];
      TsTable *table = ts_stamp_tree_table (tree, m->key, m->key_len, FALSE);
      gboolean first_row = TRUE;
      gsize table_start = out->len;

      if (table == NULL)
        continue;
      if (m->value.type != TS_JSON_OBJECT)
        return expect_object (&m->value, error);

      if (!first_table)
        g_string_append_c (out, ',');
      write_key (out, table->id, table->id_len);
      g_string_append_len (out, "[{", 2);
      for (guint32 j = 0; j < m->value.len; j++)
        {
          const TsJsonMember *rm = &m->value.u.members[j];
          TsRow *row = ts_table_row (table, rm->key, rm->key_len, FALSE);
          gsize row_start = out->len;

          if (row == NULL)
            continue;
          if (rm->value.type != TS_JSON_OBJECT)
            return expect_object (&rm->value, error);
          if (!first_row)
            g_string_append_c (out, ',');
          write_key (out, row->id, row->id_len);
          if (write_leaf_diff (out, doc, row, &rm->value, STAMP_ALWAYS_HLC))
            first_row = FALSE;
          else
            g_string_truncate (out, row_start);
        }
      if (first_row)
        {
          g_string_truncate (out, table_start);
          continue;
        }
      g_string_append_c (out, '}');
      close_stamp (out, &table->hlc, 0, STAMP_UNHASHED);
      first_table = FALSE;
    }
  g_string_append_c (out, '}');
  close_stamp (out, &tree->tables_hlc, 0, STAMP_UNHASHED);
  return TRUE;
}

gboolean
ts_stamp_tree_write_value_diff (TsStampTree       *tree,
                                TsJsonDoc         *doc,
                                const TsJsonNode  *other,
                                GString           *out,
                                GError           **error)
{
  if (!expect_object (other, error))
    return FALSE;

  if (!write_leaf_diff (out, doc, tree->values, other, STAMP_UNHASHED))
    {
      g_string_append_len (out, "[{}", 3);
      close_stamp (out, &tree->values->hlc, 0, STAMP_UNHASHED);
    }
  return TRUE;
}
