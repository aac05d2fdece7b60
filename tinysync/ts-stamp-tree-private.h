/* ts-stamp-tree-private.h: the content of a mergeable store (plain C)
 *
 * SPDX-License-Identifier: MIT
 *
 * One tree holds both what TinyBase keeps in two places: the stamp tree
 * (every cell and value ever written, with its HLC and hash; deletions stay
 * as stamps holding "undefined") and the plain Store (the live cells and
 * values, in the Store's own insertion order). A leaf is "live" when it
 * holds a value; containers count their live children. The plain Store's
 * insertion order, in which a deleted and re-added id moves to the end, is
 * kept with per-container sequence numbers assigned whenever a child turns
 * live; the stamp order (first insertion, never removed) is the order of
 * the child arrays.
 *
 * No GObject, no I/O: the store wraps this with signals and listeners.
 */
#pragma once

#include <glib.h>

#include "ts-hlc-private.h"
#include "ts-json-private.h"

G_BEGIN_DECLS

typedef enum {
  TS_VAL_UNDEFINED = 0, /* a deletion, or never set */
  TS_VAL_NULL,
  TS_VAL_FALSE,
  TS_VAL_TRUE,
  TS_VAL_NUMBER,
  TS_VAL_STRING,        /* includes encoded objects/arrays: U+FFFD + JSON */
  TS_VAL_RAW,           /* a raw JSON object/array a peer sent unencoded */
} TsValKind;

/* Refcounted immutable WTF-8 string, NUL-terminated. */
typedef struct {
  guint32 refcount;
  guint32 len;
  char    data[];
} TsStr;

TsStr *ts_str_new   (const char *s, gsize len);
TsStr *ts_str_ref   (TsStr *s);
void   ts_str_unref (TsStr *s);

typedef struct {
  guint8 kind;
  union {
    double num;
    TsStr *str;         /* STRING and RAW */
  } u;
} TsVal;

void     ts_val_clear        (TsVal *v);
TsVal    ts_val_copy         (const TsVal *v);
gboolean ts_val_equal        (const TsVal *a, const TsVal *b);
/* Canonical JSON of the stored (encoded) value; undefined as "null". */
void     ts_val_write_json   (GString *out, const TsVal *v);
/* Same, but an encoded object/array is written decoded (the plain
 * Store's view). */
void     ts_val_write_plain  (GString *out, const TsVal *v);

/* Interned cell/value id, shared by every row of a store. */
typedef struct {
  guint32 len;
  guint32 str_hash;     /* index hash */
  guint32 prefix;       /* TinyBase hash state after "id:" */
  guint32 zero_term;    /* I(id, 0) */
  char    str[];
} TsAtom;

enum {
  TS_LEAF_TOUCHED = 1 << 0, /* changed in the current transaction */
};

/* 40 bytes: one per cell and value, so it is packed. */
typedef struct {
  TsAtom  *id;
  union {
    double num;
    TsStr *str;
  } u;
  TsHlc    hlc;
  guint32  hash;
  guint32  seq   : 27;  /* plain Store order while live (wraps after 2^27
                         * revivals in one row, harmlessly) */
  guint32  kind  : 4;   /* TsValKind; UNDEFINED = not live */
  guint32  flags : 1;
} TsLeaf;

G_STATIC_ASSERT (sizeof (TsLeaf) == 40);

/* Open-addressing index from key to child position (+1; 0 = empty). */
typedef struct {
  guint32 *slots;
  guint32  mask;
} TsIndex;

/* A row, or the values (a "leaf container"). */
typedef struct _TsRow {
  TsLeaf  *leaves;      /* stamp order */
  TsIndex  index;       /* by atom, only when many leaves */
  guint32  n_leaves;
  guint32  cap;         /* and TS_ROW_IN_SLAB, TS_ROW_LEAVES_IN_SLAB */
  guint32  n_live;
  guint32  hash;
  guint32  seq;         /* order in the table while live */
  guint32  next_seq;
  guint32  prefix;      /* hash state after "rowId:" */
  guint32  id_len;
  guint32  str_hash;
  guint32  mark;        /* scratch for grouping */
  TsHlc    hlc;
  char     id[];
} TsRow;

/* Flags in TsRow.cap: the row, or its leaves, live in its table's slabs */
#define TS_ROW_IN_SLAB        (1u << 31)
#define TS_ROW_LEAVES_IN_SLAB (1u << 30)
#define TS_ROW_CAP(row)       ((row)->cap & ~(TS_ROW_IN_SLAB | TS_ROW_LEAVES_IN_SLAB))

typedef struct {
  guint64  next_id;
  GQueue   pool;        /* of char*, at most 1000 */
} TsRowIdState;

typedef struct _TsTable {
  TsRow  **rows;        /* stamp order */
  TsIndex  index;
  guint32  n_rows;
  guint32  cap;
  guint32  n_live;
  guint32  hash;
  guint32  seq;
  guint32  next_seq;
  guint32  prefix;
  guint32  id_len;
  guint32  str_hash;
  guint32  mark;        /* scratch for grouping */
  TsHlc    hlc;
  TsRowIdState *row_ids; /* addRow state, while the table is live */
  struct _TsSlab *slabs; /* memory of rows loaded in bulk, freed with the table */
  char     id[];
} TsTable;

/* One entry of the transaction log: a leaf whose plain value changed
 * (first change in this transaction), with the value it had before. */
#define TS_NO_LEAF G_MAXUINT32

typedef struct {
  TsTable *table;       /* NULL for a value, or for a table that is gone */
  TsRow   *row;         /* the row or the values container; NULL if gone */
  guint32  leaf;        /* TS_NO_LEAF when the leaf is gone */
  TsVal    old;
  /* (table, row, cell) ids when set_content replaced the tree and the leaf
   * is gone; table and row are NULL for a value */
  char   **names;
} TsChange;

typedef struct _TsStampTree TsStampTree;

struct _TsStampTree {
  /* Tables stamp */
  TsTable **tables;
  TsIndex   tables_index;
  guint32   n_tables;
  guint32   tables_cap;
  guint32   n_live_tables;
  guint32   tables_hash;
  guint32   tables_next_seq;
  TsHlc     tables_hlc;

  /* Values stamp */
  TsRow    *values;

  /* Interned cell and value ids */
  TsAtom  **atoms;
  TsIndex   atoms_index;
  guint32   n_atoms;
  guint32   atoms_cap;

  TsClock   clock;

  /* Transactions */
  guint     txn_depth;
  gboolean  defaulting; /* setDefaultContent: stamps get HLC "" */
  GArray   *changes;    /* of TsChange: the open transaction's log */
  /* The log (changes, or the one ts_stamp_tree_end just returned) still
   * lacks an entry for every live leaf, in plain order: loading content
   * into a tree without live or logged leaves leaves them out until
   * someone needs the log (ts_stamp_tree_expand_log), as mostly no one
   * does. */
  gboolean  log_deferred;
  guint     hold;       /* while > 0, replaced content is retired, not freed */
  GSList   *retired;

  /* Stamp writes that no transaction log lists: a merged stamp that won
   * with an equal value, a container HLC raised by a merge, an empty row
   * or table folded in, a replaced tree (set_content). Persisters that
   * store only the listed stamps save everything when this moved. */
  guint64   unlisted_writes;

  GString  *scratch;
};

void      ts_stamp_tree_init   (TsStampTree *tree, const char *unique_id, gsize len);
void      ts_stamp_tree_clear  (TsStampTree *tree);

TsAtom   *ts_stamp_tree_atom        (TsStampTree *tree, const char *id, gsize len, gboolean create);
TsTable  *ts_stamp_tree_table       (TsStampTree *tree, const char *id, gsize len, gboolean create);
TsRow    *ts_table_row              (TsTable *table, const char *id, gsize len, gboolean create);
/* Position of the leaf for atom in row, or -1 (creates when create). */
gssize    ts_row_leaf               (TsRow *row, TsAtom *atom, gboolean create);
/* Makes room for n more leaves (exactly, when it has to grow). */
void      ts_row_reserve            (TsRow *row, guint32 n);
TsLeaf   *ts_row_find_leaf          (TsStampTree *tree, TsRow *row, const char *id, gsize len);

static inline gboolean ts_leaf_live (const TsLeaf *l) { return l->kind != TS_VAL_UNDEFINED; }
static inline gboolean ts_row_live (const TsRow *r) { return r->n_live > 0; }
static inline gboolean ts_table_live (const TsTable *t) { return t->n_live > 0; }

/* Live children in plain Store order (caller frees the array). */
TsTable **ts_stamp_tree_live_tables (TsStampTree *tree, guint *n);
TsRow   **ts_table_live_rows        (TsTable *table, guint *n);
guint32  *ts_row_live_leaves        (TsRow *row, guint *n);

/* Transactions */
void      ts_stamp_tree_begin      (TsStampTree *tree);
/* Returns the log (of TsChange) when this ended the outermost transaction,
 * NULL otherwise. The caller owns it: it stays valid (its pointers into the
 * tree too) while the caller holds the tree (ts_stamp_tree_hold) and is
 * freed with ts_stamp_tree_free_log. */
GArray   *ts_stamp_tree_end        (TsStampTree *tree);
void      ts_stamp_tree_free_log   (GArray *log);
/* Adds the entries left out (see log_deferred) to log: changes while in a
 * transaction, else the log ts_stamp_tree_end just returned (before the
 * tree changes again). Then clears log_deferred. */
void      ts_stamp_tree_expand_log (TsStampTree *tree, GArray *log);
void      ts_stamp_tree_hold       (TsStampTree *tree);
void      ts_stamp_tree_release    (TsStampTree *tree);
/* The names of a log entry's leaf (table and row NULL for a value). */
void      ts_change_get_ids        (const TsChange *change, const char **table_id,
                                    const char **row_id, const char **cell_id);
/* The current value of a logged leaf (undefined when it is gone). */
void      ts_change_get_value      (const TsChange *change, TsVal *out);

/* Local writes (must be inside a transaction). value is consumed. Returns
 * TRUE if the plain value changed (and a stamp was written). */
gboolean  ts_stamp_tree_set_cell   (TsStampTree *tree, TsTable *table, TsRow *row,
                                    TsAtom *cell, TsVal *value);
gboolean  ts_stamp_tree_set_value  (TsStampTree *tree, TsAtom *id, TsVal *value);

/* Deletions in plain Store order */
void      ts_stamp_tree_del_row    (TsStampTree *tree, TsTable *table, TsRow *row,
                                    gboolean release_id);
void      ts_stamp_tree_del_table  (TsStampTree *tree, TsTable *table);
void      ts_stamp_tree_del_tables (TsStampTree *tree);
void      ts_stamp_tree_del_values (TsStampTree *tree);

/* addRow id choice; returns a new string */
char     *ts_stamp_tree_next_row_id (TsStampTree *tree, TsTable *table, gboolean reuse);

/* Mergeable content (encoded form, undefined as "\uFFFC") */
void      ts_stamp_tree_write_content (TsStampTree *tree, GString *out);
void      ts_stamp_tree_write_transaction_changes (TsStampTree *tree, GArray *log,
                                                   GString *out, gboolean with_hashes);

/* Incoming content and changes. Validation per PROTOCOL.md 9.3 with
 * max time now + 5 minutes; returns FALSE (with a TS_ERROR_INVALID_CONTENT
 * error) and changes nothing if invalid. Must be called inside a
 * transaction. */
gboolean  ts_stamp_tree_apply_changes (TsStampTree *tree, const TsJsonNode *changes,
                                       GError **error);
gboolean  ts_stamp_tree_set_content   (TsStampTree *tree, const TsJsonNode *content,
                                       GError **error);
/* ts_stamp_tree_set_content of JSON text (len bytes), without building a
 * JSON tree, for the content it can load exactly as ts_json_parse and
 * ts_stamp_tree_set_content would. Returns FALSE, with the tree
 * unchanged, for anything else (including every invalid text or
 * content): then parse and call ts_stamp_tree_set_content. Must be called
 * inside a transaction. */
gboolean  ts_stamp_tree_set_content_text (TsStampTree *tree, const char *text, gsize len);
/* The two halves of ts_stamp_tree_apply_changes */
gboolean  ts_stamp_tree_validate_changes (TsStampTree *tree, const TsJsonNode *changes,
                                          GError **error);
void      ts_stamp_tree_merge_changes    (TsStampTree *tree, const TsJsonNode *changes);

/* Hash and diff queries (section 10), JSON out; inputs already parsed.
 * Return FALSE with TS_ERROR_INVALID_ARGUMENT if the input has the wrong
 * shape. */
void      ts_stamp_tree_write_table_hashes (TsStampTree *tree, GString *out);
gboolean  ts_stamp_tree_write_table_diff   (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);
gboolean  ts_stamp_tree_write_row_hashes   (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);
gboolean  ts_stamp_tree_write_row_diff     (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);
gboolean  ts_stamp_tree_write_cell_hashes  (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);
gboolean  ts_stamp_tree_write_cell_diff    (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);
void      ts_stamp_tree_write_value_hashes (TsStampTree *tree, GString *out);
gboolean  ts_stamp_tree_write_value_diff   (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other, GString *out, GError **error);

/* Converting JSON to stored values: a parsed cell (public form: objects
 * and arrays are encoded; a string that is "\uFFFC" or starts with U+FFFD
 * and a non-finite number are invalid). */
gboolean  ts_val_from_json_cell    (const TsJsonNode *node, TsVal *out, GError **error);

G_END_DECLS
