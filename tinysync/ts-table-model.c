/* ts-table-model.c: a GListModel of the rows of one TsMergeableStore table
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "ts-row-object.h"
#include "ts-row-object-private.h"
#include "ts-table-model.h"
#include "ts-table-model-private.h"

/**
 * TsTableModel:
 *
 * A [iface@Gio.ListModel] of the rows of one table of a
 * [class@Tinysync.MergeableStore], for `GtkListView`, `GtkColumnView`,
 * `GtkDropDown` and any other consumer of list models, in C, Python or
 * JavaScript. Its items are [class@Tinysync.RowObject]s.
 *
 * ```c
 * g_autoptr(TsTableModel) model = ts_table_model_new (store, "pets");
 *
 * ts_table_model_set_sort (model, "age", TRUE);   // oldest first
 * selection = gtk_single_selection_new (G_LIST_MODEL (g_steal_pointer (&model)));
 * view = gtk_column_view_new (GTK_SELECTION_MODEL (selection));
 * ```
 *
 * The model follows the table whatever changes it: local writes, merges
 * ([method@Tinysync.MergeableStore.apply_mergeable_changes_json],
 * [method@Tinysync.MergeableStore.merge]), replaced content
 * ([method@Tinysync.MergeableStore.set_mergeable_content_json]) and
 * synchronizers. It hears of them through the store's TinyBase-style
 * listeners ([method@Tinysync.MergeableStore.add_row_listener]) and
 * updates itself when the store calls the table listeners of its table,
 * that is once per transaction that changed the table, after every
 * changed row was announced. The handlers of the store's
 * [signal@Tinysync.MergeableStore::cell-changed],
 * [signal@Tinysync.MergeableStore::row-changed] and
 * [signal@Tinysync.MergeableStore::table-changed] signals therefore still
 * see the model as it was before the transaction; those of
 * [signal@Tinysync.MergeableStore::tables-changed] and
 * [signal@Tinysync.MergeableStore::transaction-finished] see it updated.
 *
 * ## Order
 *
 * Without [property@Tinysync.TableModel:sort-cell] the rows are sorted by
 * row id. With a sort cell they are sorted by the value of that cell, then
 * by row id. Values compare as in TinyBase's `getSortedRowIds (tableId,
 * cellId)`, whose default sorter is JavaScript's `<` with a missing cell
 * taken as 0:
 *
 * - numbers compare numerically; booleans count as 0 and 1, and `null` or
 *   a missing cell as 0, among the numbers, as JavaScript's `<` has it;
 * - strings, row ids included, compare by UTF-16 code units as
 *   JavaScript's `<` does (a character above U+FFFF sorts before
 *   U+E000…U+FFFF, unlike `strcmp()`);
 * - where JavaScript's comparison has no consistent answer, the model
 *   still needs a total order: all numbers (with booleans, `null` and
 *   missing cells) come before all strings, and strings before objects and
 *   arrays, which compare by their JSON text. Strings are never converted
 *   to numbers (`"10"` sorts before `"9"`, and after `9`);
 * - equal values are ordered by row id. TinyBase keeps them in the
 *   table's insertion order, which differs between synchronized stores;
 * - [property@Tinysync.TableModel:sort-descending] reverses the whole
 *   order, ties included.
 *
 * So when the sort cell holds distinct numbers in every row (booleans,
 * `null` and missing cells counting as numbers), or distinct strings in
 * every row, the model lists the rows exactly as `getSortedRowIds (tableId,
 * cellId, descending)` does. There is no separate numeric mode: numbers
 * always compare as numbers, strings as strings.
 *
 * ## Changes
 *
 * [signal@Gio.ListModel::items-changed] is exact: each emission replaces
 * one contiguous run of rows, at the right position, and while it runs
 * the model already holds that state (every intermediate state of a
 * transaction with several runs is consistent). A row that was added or
 * deleted is announced where it appears or disappears; a row whose sort
 * cell changed is removed and added at its new position, unless it keeps
 * its position, in which case, as for a change of any other cell, only
 * its row object tells (see [class@Tinysync.RowObject]). Runs of
 * adjacent rows merge into one emission, so filling an empty table
 * emits once. Changing the sort order moves only the rows outside a
 * longest run of rows whose relative order is kept.
 *
 * ## Row objects
 *
 * Row objects are made when [method@Gio.ListModel.get_item] first asks for
 * them and cached weakly: while anyone (a list item widget, a Python
 * variable) holds the object of a row, the model returns that same
 * object for the row, notifies it of the row's changes, and keeps it
 * through moves. Once nobody holds it, it is freed, and a later request
 * makes a new one. Only rows that are shown cost an object.
 *
 * ## Complexity
 *
 * Building the model costs O(n log n) for n rows. A transaction changing k
 * rows of the table costs O(k log n) (one binary search per changed row,
 * none for a row whose sort cell kept its value); changes to other tables
 * cost the store one id comparison per listener. A change of sort order
 * costs O(n log n).
 *
 * Since: 1.0
 */

typedef enum {
  KEY_NONE,     /* sorting by row id */
  KEY_NUMBER,   /* numbers, booleans, null, missing */
  KEY_STRING,
  KEY_JSON,     /* objects and arrays, by JSON text */
} KeyKind;

typedef struct {
  KeyKind  kind;
  double   num;
  char    *str;
} SortKey;

typedef struct {
  GSequenceIter *iter;      /* its node in rows; NULL while out of it */
  SortKey        key;       /* the key rows is sorted by */
  SortKey        new_key;   /* scratch while applying changes */
  GWeakRef       object;    /* the TsRowObject, if alive */
  guint          pos;       /* scratch */
  guint          flags;     /* scratch */
  char           row_id[];
} RowEntry;

enum {
  ENTRY_IN_OLD  = 1 << 0,
  ENTRY_IN_NEW  = 1 << 1,
  ENTRY_KEPT    = 1 << 2,
};

/* A row removed from (iter, pos) or added, in the gap after `gap`
 * untouched rows. */
typedef struct {
  RowEntry      *entry;
  GSequenceIter *iter;
  guint          pos;
  guint          gap;
} PlanItem;

struct _TsTableModel
{
  GObject           parent_instance;

  TsMergeableStore *store;
  char             *table_id;
  char             *sort_cell;        /* the properties */
  gboolean          sort_descending;
  char             *active_cell;      /* what rows is sorted by */
  gboolean          active_descending;

  GSequence        *rows;             /* of RowEntry (borrowed) */
  GHashTable       *index;            /* row id → RowEntry (owned) */
  guint             n_items;

  GHashTable       *pending;          /* row ids announced, not applied */
  GHashTable       *batch;            /* the set being applied, else empty */
  GArray           *removed;          /* (empty) scratch of PlanItem */
  GArray           *added;
  GPtrArray        *gone;
  RowEntry         *probe;            /* see probe_for() */
  gsize             probe_size;
  gboolean          flushing;
  gboolean          resort_pending;
  gboolean          constructed;

  gulong            cell_listener;
  gulong            row_listener;
  gulong            table_listener;
};

static void ts_table_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsTableModel, ts_table_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      ts_table_model_list_model_init))

enum {
  PROP_0,
  PROP_STORE,
  PROP_TABLE_ID,
  PROP_SORT_CELL,
  PROP_SORT_DESCENDING,
  PROP_ITEM_TYPE,
  PROP_N_ITEMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* ---- Comparing ----------------------------------------------------------- */

int
_ts_compare_code_units (const char *a,
                        const char *b)
{
  const guchar *p = (const guchar *) a, *q = (const guchar *) b;
  gsize back = 0;
  gunichar ca, cb;

  while (*p != 0 && *p == *q)
    p++, q++;
  if (*p == *q)
    return 0;
  if (*p == 0 || *q == 0)
    return *p == 0 ? -1 : 1;

  /* Back to the start of the characters that differ: UTF-8 byte order is
   * code point order, which is code unit order except for a character
   * encoded as a surrogate pair against one in U+E000..U+FFFF. */
  while (p - back > (const guchar *) a && (p[-(gssize) back] & 0xC0) == 0x80)
    back++;
  ca = g_utf8_get_char_validated ((const char *) p - back, -1);
  cb = g_utf8_get_char_validated ((const char *) q - back, -1);
  if (ca >= 0x110000 || cb >= 0x110000)
    return *p < *q ? -1 : 1;
  if ((ca >= 0x10000) != (cb >= 0x10000))
    {
      gunichar bmp = ca >= 0x10000 ? cb : ca;

      if (bmp >= 0xE000)
        return ca >= 0x10000 ? -1 : 1;
    }
  return ca < cb ? -1 : 1;
}

static int
compare_keys (const SortKey *a,
              const SortKey *b)
{
  if (a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  switch (a->kind)
    {
    case KEY_NONE:
      return 0;
    case KEY_NUMBER:
      return a->num < b->num ? -1 : a->num > b->num ? 1 : 0;
    case KEY_STRING:
    case KEY_JSON:
      return _ts_compare_code_units (a->str, b->str);
    default:
      g_assert_not_reached ();
    }
  return 0;
}

static int
compare_rows (TsTableModel  *self,
              const SortKey *key_a,
              const char    *id_a,
              const SortKey *key_b,
              const char    *id_b)
{
  int c = compare_keys (key_a, key_b);

  if (c == 0)
    c = _ts_compare_code_units (id_a, id_b);
  return self->active_descending ? -c : c;
}

/* For rows and searches in it: by the current key */
static int
compare_entries (gconstpointer a,
                 gconstpointer b,
                 gpointer      user_data)
{
  const RowEntry *ea = a, *eb = b;

  return compare_rows (user_data, &ea->key, ea->row_id, &eb->key, eb->row_id);
}

/* For arrays of RowEntry pointers: by the new key */
static int
compare_entries_new (gconstpointer a,
                     gconstpointer b,
                     gpointer      user_data)
{
  const RowEntry *ea = *(RowEntry * const *) a, *eb = *(RowEntry * const *) b;

  return compare_rows (user_data, &ea->new_key, ea->row_id, &eb->new_key, eb->row_id);
}

static int
compare_plan_by_new_key (gconstpointer a,
                         gconstpointer b,
                         gpointer      user_data)
{
  const PlanItem *pa = a, *pb = b;

  return compare_rows (user_data, &pa->entry->new_key, pa->entry->row_id,
                       &pb->entry->new_key, pb->entry->row_id);
}

static int
compare_plan_by_pos (gconstpointer a,
                     gconstpointer b)
{
  const PlanItem *pa = a, *pb = b;

  return pa->pos < pb->pos ? -1 : pa->pos > pb->pos;
}

static void
sort_key_clear (SortKey *key)
{
  g_clear_pointer (&key->str, g_free);
  key->kind = KEY_NONE;
  key->num = 0;
}

/* The sort key of a row by the active sort cell */
static void
read_key (TsTableModel *self,
          const char   *row_id,
          SortKey      *key)
{
  g_autoptr(GVariant) cell = NULL;

  g_assert (key->str == NULL);

  key->kind = KEY_NONE;
  key->num = 0;
  if (self->active_cell == NULL)
    return;

  key->kind = KEY_NUMBER;
  cell = ts_mergeable_store_get_cell (self->store, self->table_id, row_id, self->active_cell);
  if (cell == NULL || g_variant_is_of_type (cell, G_VARIANT_TYPE_MAYBE))
    return;
  if (g_variant_is_of_type (cell, G_VARIANT_TYPE_DOUBLE))
    key->num = g_variant_get_double (cell);
  else if (g_variant_is_of_type (cell, G_VARIANT_TYPE_BOOLEAN))
    key->num = g_variant_get_boolean (cell) ? 1 : 0;
  else if (g_variant_is_of_type (cell, G_VARIANT_TYPE_STRING))
    {
      key->kind = KEY_STRING;
      key->str = g_variant_dup_string (cell, NULL);
    }
  else
    {
      key->kind = KEY_JSON;
      key->str = ts_mergeable_store_get_cell_json (self->store, self->table_id, row_id,
                                                   self->active_cell);
    }
}

/* ---- Entries ------------------------------------------------------------- */

static RowEntry *
row_entry_new (const char *row_id)
{
  gsize len = strlen (row_id);
  RowEntry *entry = g_malloc0 (sizeof (RowEntry) + len + 1);

  memcpy (entry->row_id, row_id, len + 1);
  g_weak_ref_init (&entry->object, NULL);
  return entry;
}

static void
row_entry_free (gpointer data)
{
  RowEntry *entry = data;

  g_weak_ref_clear (&entry->object);
  sort_key_clear (&entry->key);
  sort_key_clear (&entry->new_key);
  g_free (entry);
}

static void
row_entry_take_new_key (RowEntry *entry)
{
  sort_key_clear (&entry->key);
  entry->key = entry->new_key;
  entry->new_key.str = NULL;
  sort_key_clear (&entry->new_key);
}

/* ---- Applying changes ---------------------------------------------------- */

/* Turns the list into the new one: @removed are the rows leaving their
 * place (sorted by old position), @added those taking a new one (sorted
 * by new position), each with the number of untouched rows before it.
 * Every gap between untouched rows becomes one emission, made after the
 * list holds it; a row both removed and added in one gap at the same
 * offset from either end is left in place. */
static void
apply_plan (TsTableModel *self,
            GArray       *removed,
            GArray       *added)
{
  PlanItem *rem = (PlanItem *) (gpointer) removed->data;
  PlanItem *add = (PlanItem *) (gpointer) added->data;
  guint n_rem = removed->len, n_add = added->len;
  guint i = 0, j = 0;

  while (i < n_rem || j < n_add)
    {
      guint gap = MIN (i < n_rem ? rem[i].gap : G_MAXUINT, j < n_add ? add[j].gap : G_MAXUINT);
      guint r0 = i, a0 = j, nr, na, pre = 0, suf = 0, position;
      GSequenceIter *anchor;

      while (i < n_rem && rem[i].gap == gap)
        i++;
      while (j < n_add && add[j].gap == gap)
        j++;
      nr = i - r0;
      na = j - a0;
      while (pre < nr && pre < na && rem[r0 + pre].entry == add[a0 + pre].entry)
        pre++;
      while (suf < nr - pre && suf < na - pre && rem[i - 1 - suf].entry == add[j - 1 - suf].entry)
        suf++;
      nr -= pre + suf;
      na -= pre + suf;
      if (nr == 0 && na == 0)
        continue;

      /* before the gap: the untouched rows and the rows already added */
      position = gap + a0 + pre;
      for (guint k = r0 + pre; k < r0 + pre + nr; k++)
        {
          if (rem[k].entry->iter == rem[k].iter)
            rem[k].entry->iter = NULL;
          g_sequence_remove (rem[k].iter);
        }
      anchor = g_sequence_get_iter_at_pos (self->rows, position);
      for (guint k = a0 + pre; k < a0 + pre + na; k++)
        add[k].entry->iter = g_sequence_insert_before (anchor, add[k].entry);
      self->n_items = self->n_items - nr + na;

      g_list_model_items_changed (G_LIST_MODEL (self), position, nr, na);
      if (nr != na)
        g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
    }
}

/* An entry standing for @entry at its new key, to search rows with (the
 * entry itself may be in rows, at its current key). Valid until the next
 * call; its key is borrowed. */
static RowEntry *
probe_for (TsTableModel *self,
           RowEntry     *entry)
{
  gsize len = strlen (entry->row_id);

  if (len + 1 > self->probe_size)
    {
      self->probe_size = MAX (len + 1, 2 * self->probe_size);
      self->probe = g_realloc (self->probe, sizeof (RowEntry) + self->probe_size);
    }
  memcpy (self->probe->row_id, entry->row_id, len + 1);
  self->probe->key = entry->new_key;
  return self->probe;
}

/* Applies the rows announced since the last time: O(k log n) */
static void
apply_batch (TsTableModel *self,
             GHashTable   *batch)
{
  GArray *removed = self->removed, *added = self->added;
  GPtrArray *gone = self->gone;
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, batch);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      const char *row_id = key;
      RowEntry *entry = g_hash_table_lookup (self->index, row_id);
      gboolean exists = ts_mergeable_store_has_row (self->store, self->table_id, row_id);
      PlanItem item = { 0, };

      if (entry != NULL && !exists)
        {
          item.entry = entry;
          item.iter = entry->iter;
          g_array_append_val (removed, item);
          g_ptr_array_add (gone, entry);
        }
      else if (entry != NULL)
        {
          read_key (self, row_id, &entry->new_key);
          if (compare_keys (&entry->key, &entry->new_key) == 0)
            sort_key_clear (&entry->new_key);
          else
            {
              item.entry = entry;
              item.iter = entry->iter;
              g_array_append_val (removed, item);
              g_array_append_val (added, item);
            }
        }
      else if (exists)
        {
          entry = row_entry_new (row_id);
          read_key (self, row_id, &entry->new_key);
          g_hash_table_insert (self->index, entry->row_id, entry);
          item.entry = entry;
          g_array_append_val (added, item);
        }
      /* cheaper than emptying the table afterwards */
      g_hash_table_iter_remove (&it);
    }
  if (removed->len == 0 && added->len == 0)
    return;
  g_assert (gone->len <= removed->len);

  /* removed rows: by old position; the gap is the number of untouched
   * rows before */
  for (guint i = 0; i < removed->len; i++)
    {
      PlanItem *item = &g_array_index (removed, PlanItem, i);
      item->pos = g_sequence_iter_get_position (item->iter);
    }
  g_array_sort (removed, compare_plan_by_pos);
  for (guint i = 0; i < removed->len; i++)
    g_array_index (removed, PlanItem, i).gap = g_array_index (removed, PlanItem, i).pos - i;

  /* added rows: by new key; the gap is the number of rows now in the list
   * before the new key, minus the removed ones among them */
  g_array_sort_with_data (added, compare_plan_by_new_key, self);
  for (guint i = 0; i < added->len; i++)
    {
      PlanItem *item = &g_array_index (added, PlanItem, i);
      RowEntry *probe = probe_for (self, item->entry);
      guint lo = 0, hi = removed->len;

      item->pos = g_sequence_iter_get_position (g_sequence_search (self->rows, probe,
                                                                   compare_entries, self));
      while (lo < hi)
        {
          guint mid = lo + (hi - lo) / 2;
          RowEntry *r = g_array_index (removed, PlanItem, mid).entry;

          if (compare_rows (self, &r->key, r->row_id, &probe->key, probe->row_id) < 0)
            lo = mid + 1;
          else
            hi = mid;
        }
      item->gap = item->pos - lo;
    }

  apply_plan (self, removed, added);

  for (guint i = 0; i < added->len; i++)
    row_entry_take_new_key (g_array_index (added, PlanItem, i).entry);
  for (guint i = 0; i < gone->len; i++)
    g_hash_table_remove (self->index, ((RowEntry *) gone->pdata[i])->row_id);
  g_array_set_size (removed, 0);
  g_array_set_size (added, 0);
  g_ptr_array_set_size (gone, 0);
}

/* Rebuilds the order from the store (after a change of sort order):
 * O(n log n). The rows outside a longest run whose relative order is
 * kept move. */
static void
apply_all (TsTableModel *self)
{
  g_auto(GStrv) row_ids = NULL;
  g_autoptr(GPtrArray) old_rows = g_ptr_array_new ();
  g_autoptr(GPtrArray) new_rows = g_ptr_array_new ();
  g_autoptr(GPtrArray) gone = g_ptr_array_new ();
  g_autoptr(GArray) removed = g_array_new (FALSE, FALSE, sizeof (PlanItem));
  g_autoptr(GArray) added = g_array_new (FALSE, FALSE, sizeof (PlanItem));
  g_autofree guint *tails = NULL;   /* LIS: index in new_rows of the smallest tail */
  g_autofree guint *prev = NULL;
  guint n_tails = 0, kept;

  g_free (self->active_cell);
  self->active_cell = g_strdup (self->sort_cell);
  self->active_descending = self->sort_descending;

  for (GSequenceIter *iter = g_sequence_get_begin_iter (self->rows);
       !g_sequence_iter_is_end (iter); iter = g_sequence_iter_next (iter))
    {
      RowEntry *entry = g_sequence_get (iter);

      entry->pos = old_rows->len;
      entry->flags = ENTRY_IN_OLD;
      g_ptr_array_add (old_rows, entry);
    }

  row_ids = ts_mergeable_store_get_row_ids (self->store, self->table_id);
  for (guint i = 0; row_ids[i] != NULL; i++)
    {
      RowEntry *entry = g_hash_table_lookup (self->index, row_ids[i]);

      if (entry == NULL)
        {
          entry = row_entry_new (row_ids[i]);
          g_hash_table_insert (self->index, entry->row_id, entry);
        }
      entry->flags |= ENTRY_IN_NEW;
      sort_key_clear (&entry->new_key);
      read_key (self, entry->row_id, &entry->new_key);
      g_ptr_array_add (new_rows, entry);
    }
  g_ptr_array_sort_with_data (new_rows, compare_entries_new, self);

  /* a longest increasing run of old positions in the new order */
  tails = g_new (guint, new_rows->len + 1);
  prev = g_new (guint, new_rows->len + 1);
  for (guint i = 0; i < new_rows->len; i++)
    {
      RowEntry *entry = new_rows->pdata[i];
      guint lo = 0, hi = n_tails;

      if (!(entry->flags & ENTRY_IN_OLD))
        continue;
      while (lo < hi)
        {
          guint mid = lo + (hi - lo) / 2;

          if (((RowEntry *) new_rows->pdata[tails[mid]])->pos < entry->pos)
            lo = mid + 1;
          else
            hi = mid;
        }
      prev[i] = lo > 0 ? tails[lo - 1] : G_MAXUINT;
      tails[lo] = i;
      if (lo == n_tails)
        n_tails++;
    }
  if (n_tails > 0)
    for (guint i = tails[n_tails - 1]; i != G_MAXUINT; i = prev[i])
      ((RowEntry *) new_rows->pdata[i])->flags |= ENTRY_KEPT;

  kept = 0;
  for (guint i = 0; i < old_rows->len; i++)
    {
      RowEntry *entry = old_rows->pdata[i];
      PlanItem item = { entry, entry->iter, i, kept };

      if (entry->flags & ENTRY_KEPT)
        kept++;
      else
        g_array_append_val (removed, item);
      if (!(entry->flags & ENTRY_IN_NEW))
        g_ptr_array_add (gone, entry);
    }
  kept = 0;
  for (guint i = 0; i < new_rows->len; i++)
    {
      RowEntry *entry = new_rows->pdata[i];
      PlanItem item = { entry, NULL, i, kept };

      if (entry->flags & ENTRY_KEPT)
        kept++;
      else
        g_array_append_val (added, item);
    }

  apply_plan (self, removed, added);

  for (guint i = 0; i < new_rows->len; i++)
    {
      RowEntry *entry = new_rows->pdata[i];

      row_entry_take_new_key (entry);
      entry->flags = 0;
    }
  for (guint i = 0; i < gone->len; i++)
    g_hash_table_remove (self->index, ((RowEntry *) gone->pdata[i])->row_id);
}

/* Applies what is pending; reentrant calls (from an items-changed
 * handler that changes the store or the sort order) leave it to the
 * running loop. */
static void
flush (TsTableModel *self)
{
  if (self->flushing || self->store == NULL)
    return;

  g_object_ref (self);
  self->flushing = TRUE;
  while (self->store != NULL)
    {
      if (self->resort_pending)
        {
          self->resort_pending = FALSE;
          g_hash_table_remove_all (self->pending);
          apply_all (self);
        }
      else if (g_hash_table_size (self->pending) > 0)
        {
          GHashTable *batch = self->pending;

          /* new announcements go to the other (empty) set meanwhile */
          self->pending = self->batch;
          self->batch = batch;
          apply_batch (self, batch);
          g_assert (g_hash_table_size (batch) == 0);
        }
      else
        break;
    }
  self->flushing = FALSE;
  g_object_unref (self);
}

/* ---- Store signals ------------------------------------------------------- */

static TsRowObject *
dup_live_object (TsTableModel *self,
                 const char   *row_id)
{
  RowEntry *entry = g_hash_table_lookup (self->index, row_id);

  return entry != NULL ? g_weak_ref_get (&entry->object) : NULL;
}

static void
on_cell_changed (TsMergeableStore *store,
                 const char       *table_id,
                 const char       *row_id,
                 const char       *cell_id,
                 gpointer          user_data)
{
  TsTableModel *self = user_data;
  g_autoptr(TsRowObject) object = dup_live_object (self, row_id);

  if (object != NULL)
    _ts_row_object_cell_changed (object, cell_id);
}

static void
on_row_changed (TsMergeableStore *store,
                const char       *table_id,
                const char       *row_id,
                gpointer          user_data)
{
  TsTableModel *self = user_data;
  g_autoptr(TsRowObject) object = NULL;

  if (!g_hash_table_contains (self->pending, row_id))
    g_hash_table_add (self->pending, g_strdup (row_id));
  object = dup_live_object (self, row_id);
  if (object != NULL)
    _ts_row_object_row_changed (object);
}

/* After the row listeners of the transaction */
static void
on_table_changed (TsMergeableStore *store,
                  const char       *table_id,
                  gpointer          user_data)
{
  TsTableModel *self = user_data;

  if (g_hash_table_size (self->pending) > 0)
    flush (self);
}

/* ---- GListModel ---------------------------------------------------------- */

static GType
ts_table_model_get_item_type (GListModel *list)
{
  return TS_TYPE_ROW_OBJECT;
}

static guint
ts_table_model_get_n_items (GListModel *list)
{
  return TS_TABLE_MODEL (list)->n_items;
}

static gpointer
ts_table_model_get_item (GListModel *list,
                         guint       position)
{
  TsTableModel *self = TS_TABLE_MODEL (list);
  RowEntry *entry;
  TsRowObject *object;

  if (position >= self->n_items || self->store == NULL)
    return NULL;
  entry = g_sequence_get (g_sequence_get_iter_at_pos (self->rows, position));
  object = g_weak_ref_get (&entry->object);
  if (object == NULL)
    {
      object = _ts_row_object_new_managed (self->store, self->table_id, entry->row_id);
      g_weak_ref_set (&entry->object, object);
    }
  return object;
}

static void
ts_table_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = ts_table_model_get_item_type;
  iface->get_n_items = ts_table_model_get_n_items;
  iface->get_item = ts_table_model_get_item;
}

/* ---- GObject ------------------------------------------------------------- */

static void
ts_table_model_constructed (GObject *object)
{
  TsTableModel *self = TS_TABLE_MODEL (object);

  G_OBJECT_CLASS (ts_table_model_parent_class)->constructed (object);

  self->constructed = TRUE;
  if (self->store == NULL || self->table_id == NULL)
    {
      g_critical ("TsTableModel needs a store and a table id");
      g_clear_object (&self->store);
      return;
    }

  /* Listeners, not signals: they are plain C calls, and a table id can be
   * any string ("" cannot be a signal detail in "signal::detail" form).
   * They are removed in dispose, which runs before the model is freed. */
  self->cell_listener = ts_mergeable_store_add_cell_listener (self->store, self->table_id,
                                                              NULL, NULL, on_cell_changed,
                                                              self, NULL);
  self->row_listener = ts_mergeable_store_add_row_listener (self->store, self->table_id, NULL,
                                                            on_row_changed, self, NULL);
  self->table_listener = ts_mergeable_store_add_table_listener (self->store, self->table_id,
                                                                on_table_changed, self, NULL);
  apply_all (self);
}

static void
ts_table_model_dispose (GObject *object)
{
  TsTableModel *self = TS_TABLE_MODEL (object);

  if (self->store != NULL && self->cell_listener != 0)
    {
      ts_mergeable_store_del_listener (self->store, self->cell_listener);
      ts_mergeable_store_del_listener (self->store, self->row_listener);
      ts_mergeable_store_del_listener (self->store, self->table_listener);
      self->cell_listener = self->row_listener = self->table_listener = 0;
    }
  g_clear_object (&self->store);

  G_OBJECT_CLASS (ts_table_model_parent_class)->dispose (object);
}

static void
ts_table_model_finalize (GObject *object)
{
  TsTableModel *self = TS_TABLE_MODEL (object);

  g_sequence_free (self->rows);
  g_hash_table_unref (self->index);
  g_hash_table_unref (self->pending);
  g_hash_table_unref (self->batch);
  g_array_unref (self->removed);
  g_array_unref (self->added);
  g_ptr_array_unref (self->gone);
  g_free (self->probe);
  g_free (self->table_id);
  g_free (self->sort_cell);
  g_free (self->active_cell);

  G_OBJECT_CLASS (ts_table_model_parent_class)->finalize (object);
}

static void
ts_table_model_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  TsTableModel *self = TS_TABLE_MODEL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, self->store);
      break;
    case PROP_TABLE_ID:
      g_value_set_string (value, self->table_id);
      break;
    case PROP_SORT_CELL:
      g_value_set_string (value, self->sort_cell);
      break;
    case PROP_SORT_DESCENDING:
      g_value_set_boolean (value, self->sort_descending);
      break;
    case PROP_ITEM_TYPE:
      g_value_set_gtype (value, TS_TYPE_ROW_OBJECT);
      break;
    case PROP_N_ITEMS:
      g_value_set_uint (value, self->n_items);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_table_model_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  TsTableModel *self = TS_TABLE_MODEL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      self->store = g_value_dup_object (value);
      break;
    case PROP_TABLE_ID:
      self->table_id = g_value_dup_string (value);
      break;
    case PROP_SORT_CELL:
      ts_table_model_set_sort_cell (self, g_value_get_string (value));
      break;
    case PROP_SORT_DESCENDING:
      ts_table_model_set_sort_descending (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_table_model_class_init (TsTableModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_table_model_constructed;
  object_class->dispose = ts_table_model_dispose;
  object_class->finalize = ts_table_model_finalize;
  object_class->get_property = ts_table_model_get_property;
  object_class->set_property = ts_table_model_set_property;

  /**
   * TsTableModel:store: (getter get_store)
   *
   * The store holding the table.
   *
   * Since: 1.0
   */
  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, TS_TYPE_MERGEABLE_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsTableModel:table-id: (getter get_table_id)
   *
   * The id of the table whose rows the model lists. The table need not
   * exist: the model is empty while it does not.
   *
   * Since: 1.0
   */
  properties[PROP_TABLE_ID] =
    g_param_spec_string ("table-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsTableModel:sort-cell: (getter get_sort_cell) (setter set_sort_cell)
   *
   * The id of the cell whose value orders the rows, or %NULL to order them
   * by row id. See the class description for how values compare.
   *
   * Since: 1.0
   */
  properties[PROP_SORT_CELL] =
    g_param_spec_string ("sort-cell", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsTableModel:sort-descending: (getter get_sort_descending) (setter set_sort_descending)
   *
   * Whether the order is reversed, ties included.
   *
   * Since: 1.0
   */
  properties[PROP_SORT_DESCENDING] =
    g_param_spec_boolean ("sort-descending", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                          G_PARAM_STATIC_STRINGS);

  /**
   * TsTableModel:item-type:
   *
   * The type of the items: always [class@Tinysync.RowObject].
   *
   * Since: 1.0
   */
  properties[PROP_ITEM_TYPE] =
    g_param_spec_gtype ("item-type", NULL, NULL, G_TYPE_OBJECT,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * TsTableModel:n-items:
   *
   * The number of rows, notified when it changes.
   *
   * Since: 1.0
   */
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_table_model_init (TsTableModel *self)
{
  self->rows = g_sequence_new (NULL);
  self->index = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, row_entry_free);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->batch = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->removed = g_array_new (FALSE, FALSE, sizeof (PlanItem));
  self->added = g_array_new (FALSE, FALSE, sizeof (PlanItem));
  self->gone = g_ptr_array_new ();
}

/**
 * ts_table_model_new:
 * @store: a store
 * @table_id: a table id
 *
 * Creates a list model of the rows of a table, sorted by row id.
 *
 * Returns: (transfer full): a new model
 *
 * Since: 1.0
 */
TsTableModel *
ts_table_model_new (TsMergeableStore *store,
                    const char       *table_id)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);
  g_return_val_if_fail (table_id != NULL, NULL);

  return g_object_new (TS_TYPE_TABLE_MODEL, "store", store, "table-id", table_id, NULL);
}

/**
 * ts_table_model_get_store: (get-property store)
 * @self: a table model
 *
 * Gets the store holding the table.
 *
 * Returns: (transfer none): the store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_table_model_get_store (TsTableModel *self)
{
  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), NULL);

  return self->store;
}

/**
 * ts_table_model_get_table_id: (get-property table-id)
 * @self: a table model
 *
 * Gets the id of the table.
 *
 * Returns: (transfer none): the table id
 *
 * Since: 1.0
 */
const char *
ts_table_model_get_table_id (TsTableModel *self)
{
  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), NULL);

  return self->table_id;
}

/**
 * ts_table_model_get_sort_cell: (get-property sort-cell)
 * @self: a table model
 *
 * Gets the id of the cell ordering the rows.
 *
 * Returns: (transfer none) (nullable): the cell id, or %NULL when the rows
 *   are ordered by row id
 *
 * Since: 1.0
 */
const char *
ts_table_model_get_sort_cell (TsTableModel *self)
{
  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), NULL);

  return self->sort_cell;
}

/**
 * ts_table_model_get_sort_descending: (get-property sort-descending)
 * @self: a table model
 *
 * Whether the order is reversed.
 *
 * Returns: %TRUE for descending order
 *
 * Since: 1.0
 */
gboolean
ts_table_model_get_sort_descending (TsTableModel *self)
{
  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), FALSE);

  return self->sort_descending;
}

/**
 * ts_table_model_set_sort:
 * @self: a table model
 * @cell_id: (nullable): the id of the cell ordering the rows, or %NULL to
 *   order them by row id
 * @descending: whether to reverse the order
 *
 * Changes the order of the rows, moving them with the fewest
 * [signal@Gio.ListModel::items-changed] emissions this model can find.
 * Setting both properties at once reorders once.
 *
 * Since: 1.0
 */
void
ts_table_model_set_sort (TsTableModel *self,
                         const char   *cell_id,
                         gboolean      descending)
{
  gboolean cell_changed, descending_changed;

  g_return_if_fail (TS_IS_TABLE_MODEL (self));

  descending = !!descending;
  cell_changed = g_strcmp0 (cell_id, self->sort_cell) != 0;
  descending_changed = descending != self->sort_descending;
  if (!cell_changed && !descending_changed)
    return;

  if (cell_changed)
    {
      g_free (self->sort_cell);
      self->sort_cell = g_strdup (cell_id);
    }
  self->sort_descending = descending;

  if (self->constructed && self->store != NULL)
    {
      self->resort_pending = TRUE;
      flush (self);
    }

  if (cell_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SORT_CELL]);
  if (descending_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SORT_DESCENDING]);
}

/**
 * ts_table_model_set_sort_cell: (set-property sort-cell)
 * @self: a table model
 * @cell_id: (nullable): the id of the cell ordering the rows, or %NULL to
 *   order them by row id
 *
 * Sets [property@Tinysync.TableModel:sort-cell].
 *
 * Since: 1.0
 */
void
ts_table_model_set_sort_cell (TsTableModel *self,
                              const char   *cell_id)
{
  g_return_if_fail (TS_IS_TABLE_MODEL (self));

  ts_table_model_set_sort (self, cell_id, self->sort_descending);
}

/**
 * ts_table_model_set_sort_descending: (set-property sort-descending)
 * @self: a table model
 * @descending: whether to reverse the order
 *
 * Sets [property@Tinysync.TableModel:sort-descending].
 *
 * Since: 1.0
 */
void
ts_table_model_set_sort_descending (TsTableModel *self,
                                    gboolean      descending)
{
  g_return_if_fail (TS_IS_TABLE_MODEL (self));

  ts_table_model_set_sort (self, self->sort_cell, descending);
}

/**
 * ts_table_model_get_row_id:
 * @self: a table model
 * @position: a position
 *
 * Gets the id of the row at @position without making its row object.
 *
 * Returns: (transfer none) (nullable): the row id, valid until the model
 *   changes, or %NULL if @position is past the end
 *
 * Since: 1.0
 */
const char *
ts_table_model_get_row_id (TsTableModel *self,
                           guint         position)
{
  RowEntry *entry;

  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), NULL);

  if (position >= self->n_items)
    return NULL;
  entry = g_sequence_get (g_sequence_get_iter_at_pos (self->rows, position));
  return entry->row_id;
}

/**
 * ts_table_model_find:
 * @self: a table model
 * @row_id: a row id
 * @position: (out) (optional): where to store the position of the row
 *
 * Finds the position of a row, in O(log n).
 *
 * Returns: %TRUE if the model lists the row
 *
 * Since: 1.0
 */
gboolean
ts_table_model_find (TsTableModel *self,
                     const char   *row_id,
                     guint        *position)
{
  RowEntry *entry;

  g_return_val_if_fail (TS_IS_TABLE_MODEL (self), FALSE);
  g_return_val_if_fail (row_id != NULL, FALSE);

  entry = g_hash_table_lookup (self->index, row_id);
  if (entry == NULL || entry->iter == NULL)
    return FALSE;
  if (position != NULL)
    *position = g_sequence_iter_get_position (entry->iter);
  return TRUE;
}
