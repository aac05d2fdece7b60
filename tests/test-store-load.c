/* test-store-load.c: setMergeableContent straight from the text against
 * the generic path (JSON tree, validation, load)
 *
 * SPDX-License-Identifier: MIT
 *
 * ts_mergeable_store_set_mergeable_content_json() loads what it can without
 * a JSON tree and hands everything else to the generic path. Both must
 * agree on everything: accept or reject, the error, the content, the plain
 * order, the signals and the transaction changes, with and without
 * observers, into new and filled stores, inside outer transactions. Random
 * contents, their reformatted and mutated texts and hand-written edge cases
 * go through both.
 */
#include "config.h"

#include <string.h>

#include <tinysync/tinysync.h>

#include "tinysync/ts-mergeable-store-private.h"

static gint64 now = 1704067200000;

static gint64
fixed_now (gpointer data)
{
  return now;
}

static TsMergeableStore *
new_store (void)
{
  TsMergeableStore *store = ts_mergeable_store_new ("loader");

  ts_mergeable_store_set_clock (store, fixed_now, NULL, NULL);
  return store;
}

/* ---- Random content ----------------------------------------------------- */

static const char *const table_ids[] = { "t", "u", "0", "1", "" };
static const char *const row_ids[] = { "r1", "0", "1", "10", "2", "x", "4294967295", "01" };
static const char *const cell_ids[] = { "c", "d", "0", "5", "\xc3\xbc" };
static const char *const cells[] = {
  "1", "-0", "0.1", "1e21", "123456789012345678", "-5e-7", "\"str\"", "\"\"",
  "\"with \\\"quote\\\" and \\n\"", "\"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80\"", "\"\\ud800\"",
  "true", "false", "null", "{\"a\":1,\"0\":2}", "[1,[2],{}]", "\"\\u0000x\"",
};

static char *
random_content (GRand *rand)
{
  g_autoptr(TsMergeableStore) store = new_store ();
  guint n = g_rand_int_range (rand, 0, 40);

  for (guint i = 0; i < n; i++)
    {
      const char *t = table_ids[g_rand_int_range (rand, 0, G_N_ELEMENTS (table_ids))];
      const char *r = row_ids[g_rand_int_range (rand, 0, G_N_ELEMENTS (row_ids))];
      const char *c = cell_ids[g_rand_int_range (rand, 0, G_N_ELEMENTS (cell_ids))];
      const char *v = cells[g_rand_int_range (rand, 0, G_N_ELEMENTS (cells))];

      now += g_rand_int_range (rand, 0, 3);
      switch (g_rand_int_range (rand, 0, 10))
        {
        case 0:
          ts_mergeable_store_del_cell (store, t, r, c);
          break;
        case 1:
          ts_mergeable_store_del_row (store, t, r);
          break;
        case 2:
          g_assert_true (ts_mergeable_store_set_value_json (store, c, v, NULL));
          break;
        case 3:
          ts_mergeable_store_del_value (store, c);
          break;
        default:
          g_assert_true (ts_mergeable_store_set_cell_json (store, t, r, c, v, NULL));
          break;
        }
    }
  return ts_mergeable_store_get_mergeable_content_json (store);
}

/* ---- Variants of a text --------------------------------------------------- */

static const char ws_chars[] = " \n\r\t";

/* Whitespace between tokens */
static char *
spread_out (GRand      *rand,
            const char *text)
{
  GString *out = g_string_new (NULL);
  gboolean in_string = FALSE;

  if (g_rand_boolean (rand))
    g_string_append_c (out, ' ');
  for (const char *p = text; *p; p++)
    {
      g_string_append_c (out, *p);
      if (in_string)
        {
          if (*p == '\\')
            g_string_append_c (out, *++p);
          else if (*p == '"')
            in_string = FALSE;
          if (in_string)
            continue;
        }
      else if (*p == '"')
        {
          in_string = TRUE;
          continue;
        }
      /* after a structural character or a string only: not in numbers */
      if (strchr ("[]{},:\"", *p) != NULL && g_rand_int_range (rand, 0, 3) == 0)
        g_string_append_c (out, ws_chars[g_rand_int_range (rand, 0, 4)]);
    }
  if (g_rand_boolean (rand))
    g_string_append (out, "\n");
  return g_string_free (out, FALSE);
}

/* One ASCII character of a string written as an escape: the same JSON */
static char *
escape_one (GRand      *rand,
            const char *text)
{
  GPtrArray *spots = g_ptr_array_new ();
  gboolean in_string = FALSE;
  GString *out;
  const char *at;

  for (const char *p = text; *p; p++)
    {
      if (!in_string)
        {
          in_string = *p == '"';
          continue;
        }
      if (*p == '\\')
        p++;
      else if (*p == '"')
        in_string = FALSE;
      else if ((guchar) *p < 0x80)
        g_ptr_array_add (spots, (gpointer) p);
    }
  if (spots->len == 0)
    {
      g_ptr_array_free (spots, TRUE);
      return g_strdup (text);
    }
  at = spots->pdata[g_rand_int_range (rand, 0, spots->len)];
  g_ptr_array_free (spots, TRUE);
  out = g_string_new_len (text, at - text);
  g_string_append_printf (out, g_rand_boolean (rand) ? "\\u%04x" : "\\u%04X", (guchar) *at);
  g_string_append (out, at + 1);
  return g_string_free (out, FALSE);
}

static const char mutation_chars[] = "[]{},:\"\\ 0123456789-.eE+tfnulr_xP\x01\xef";

/* A few random byte edits */
static char *
mutate (GRand      *rand,
        const char *text)
{
  GString *out = g_string_new (text);
  guint n = g_rand_int_range (rand, 1, 4);

  for (guint i = 0; i < n; i++)
    {
      guint pos = out->len > 0 ? g_rand_int_range (rand, 0, out->len) : 0;
      char c = mutation_chars[g_rand_int_range (rand, 0, sizeof mutation_chars - 1)];

      switch (g_rand_int_range (rand, 0, 3))
        {
        case 0:
          if (out->len > 0)
            g_string_erase (out, pos, 1);
          break;
        case 1:
          g_string_insert_c (out, pos, c);
          break;
        default:
          if (out->len > 0)
            out->str[pos] = c;
          break;
        }
    }
  return g_string_free (out, FALSE);
}

/* Replaces the first occurrence of from (if any) */
static char *
replace_once (const char *text,
              const char *from,
              const char *to)
{
  const char *at = strstr (text, from);

  if (at == NULL)
    return g_strdup (text);
  return g_strdup_printf ("%.*s%s%s", (int) (at - text), text, to, at + strlen (from));
}

/* ---- Running both paths ----------------------------------------------------- */

typedef enum {
  FRESH_OBSERVED,
  FRESH_UNOBSERVED,
  FILLED_OBSERVED,
  FILLED_UNOBSERVED,
  IN_TRANSACTION,
  N_SCENARIOS
} Scenario;

static void
on_cell (TsMergeableStore *store, const char *t, const char *r, const char *c, GString *log)
{
  g_string_append_printf (log, "cell %s/%s/%s\n", t, r, c);
}

static void
on_row (TsMergeableStore *store, const char *t, const char *r, GString *log)
{
  g_string_append_printf (log, "row %s/%s\n", t, r);
}

static void
on_value (TsMergeableStore *store, const char *v, GString *log)
{
  g_string_append_printf (log, "value %s\n", v);
}

static void
on_finished (TsMergeableStore *store, GString *log)
{
  g_autofree char *with = ts_mergeable_store_get_transaction_mergeable_changes_json (store, TRUE);
  g_autofree char *without = ts_mergeable_store_get_transaction_mergeable_changes_json (store, FALSE);

  g_string_append_printf (log, "finished %s %s\n", with, without);
}

/* Loads text in a scenario, through the public function (fast) or the
 * generic path only; returns everything observable. */
static char *
run (const char *text,
     Scenario    scenario,
     gboolean    fast)
{
  g_autoptr(TsMergeableStore) store = new_store ();
  g_autoptr(GError) error = NULL;
  GString *log = g_string_new (NULL);
  g_autofree char *content = NULL, *tables = NULL, *values = NULL, *plain = NULL;
  guint64 unlisted;
  guint32 th, vh;
  gboolean ok;

  if (scenario == FILLED_OBSERVED || scenario == FILLED_UNOBSERVED || scenario == IN_TRANSACTION)
    {
      g_assert_true (ts_mergeable_store_set_tables_json (store,
          "{\"t\":{\"r1\":{\"c\":1,\"d\":\"x\"},\"0\":{\"c\":true}},\"v\":{\"a\":{\"z\":null}}}", NULL));
      g_assert_true (ts_mergeable_store_set_values_json (store, "{\"c\":2,\"0\":3}", NULL));
      ts_mergeable_store_del_value (store, "0");
      ts_mergeable_store_set_cell_string (store, "t", "r1", "e", "later");
    }
  if (scenario != FRESH_UNOBSERVED && scenario != FILLED_UNOBSERVED)
    {
      g_signal_connect (store, "cell-changed", G_CALLBACK (on_cell), log);
      g_signal_connect (store, "row-changed", G_CALLBACK (on_row), log);
      g_signal_connect (store, "value-changed", G_CALLBACK (on_value), log);
      g_signal_connect (store, "transaction-finished", G_CALLBACK (on_finished), log);
    }
  if (scenario == IN_TRANSACTION)
    {
      ts_mergeable_store_start_transaction (store);
      ts_mergeable_store_set_cell_number (store, "t", "r1", "c", 5);
      ts_mergeable_store_set_value_string (store, "n", "new");
    }

  unlisted = _ts_mergeable_store_get_unlisted_writes (store);
  ok = _ts_mergeable_store_set_content_text (store, text, fast, &error);
  /* the result first (handlers have logged already) */
  {
    g_autofree char *head = g_strdup_printf ("ok %d %s unlisted +%" G_GUINT64_FORMAT "\n", ok,
                                             error ? error->message : "-",
                                             _ts_mergeable_store_get_unlisted_writes (store) - unlisted);
    g_string_prepend (log, head);
  }

  if (scenario == IN_TRANSACTION)
    {
      g_autofree char *mid = NULL;

      ts_mergeable_store_set_cell_number (store, "t", "0", "d", 6);
      ts_mergeable_store_del_value (store, "c");
      mid = ts_mergeable_store_get_transaction_mergeable_changes_json (store, TRUE);
      g_string_append_printf (log, "mid %s\n", mid);
      ts_mergeable_store_finish_transaction (store);
    }
  else if (scenario == FRESH_UNOBSERVED || scenario == FILLED_UNOBSERVED)
    {
      /* a later transaction sees only its own changes */
      g_signal_connect (store, "transaction-finished", G_CALLBACK (on_finished), log);
      ts_mergeable_store_set_cell_number (store, "t", "r1", "c", 7);
    }

  content = ts_mergeable_store_get_mergeable_content_json (store);
  tables = ts_mergeable_store_get_tables_json (store);
  values = ts_mergeable_store_get_values_json (store);
  plain = ts_mergeable_store_get_content_json (store);
  ts_mergeable_store_get_mergeable_content_hashes (store, &th, &vh);
  g_string_append_printf (log, "%s\n%s\n%s\n%s\n%u %u\n", content, tables, values, plain, th, vh);
  return g_string_free (log, FALSE);
}

/* Loads (or merges) text into a new store, inside a transaction that
 * goes on when in_transaction, and returns what it announced */
static char *
announced (const char *text,
           gboolean    merge,
           gboolean    in_transaction)
{
  g_autoptr(TsMergeableStore) store = new_store ();
  GString *log = g_string_new (NULL);

  g_signal_connect (store, "cell-changed", G_CALLBACK (on_cell), log);
  g_signal_connect (store, "row-changed", G_CALLBACK (on_row), log);
  g_signal_connect (store, "value-changed", G_CALLBACK (on_value), log);
  g_signal_connect (store, "transaction-finished", G_CALLBACK (on_finished), log);
  if (in_transaction)
    ts_mergeable_store_start_transaction (store);
  if (merge)
    g_assert_true (ts_mergeable_store_apply_mergeable_changes_json (store, text, NULL));
  else
    g_assert_true (ts_mergeable_store_set_mergeable_content_json (store, text, NULL));
  if (in_transaction)
    {
      g_autofree char *mid = NULL;

      ts_mergeable_store_set_cell_number (store, "t", "r1", "c", 9);
      ts_mergeable_store_del_value (store, "c");
      mid = ts_mergeable_store_get_transaction_mergeable_changes_json (store, TRUE);
      g_string_append_printf (log, "mid %s\n", mid);
      ts_mergeable_store_finish_transaction (store);
    }
  return g_string_free (log, FALSE);
}

/* For valid content with right hashes, what loading into a new store
 * announces (its log deferred) equals what merging it does (which logs
 * cell by cell) */
static void
check_like_merge (const char *text)
{
  for (int t = 0; t < 2; t++)
    {
      g_autofree char *load = announced (text, FALSE, t);
      g_autofree char *merge = announced (text, TRUE, t);

      g_assert_cmpstr (load, ==, merge);
    }
}

/* Whether the text takes the fast path into a new store */
static gboolean
takes_fast_path (const char *text)
{
  g_autoptr(TsMergeableStore) store = new_store ();
  gboolean fast;

  ts_mergeable_store_start_transaction (store);
  fast = ts_stamp_tree_set_content_text (_ts_mergeable_store_get_tree (store), text, strlen (text));
  ts_mergeable_store_finish_transaction (store);
  return fast;
}

static guint n_texts, n_fast, n_accepted;

static void
check_text (const char *text)
{
  gboolean fast = takes_fast_path (text);

  n_texts++;
  n_fast += fast;
  for (Scenario s = 0; s < N_SCENARIOS; s++)
    {
      g_autofree char *a = run (text, s, TRUE);
      g_autofree char *b = run (text, s, FALSE);

      if (g_strcmp0 (a, b) != 0)
        g_printerr ("text: %s\nscenario %d\n", text, s);
      g_assert_cmpstr (a, ==, b);
      if (s == FRESH_OBSERVED && g_str_has_prefix (a, "ok 1"))
        n_accepted++;
      /* the fast path never declines what it could load */
      if (fast && !g_str_has_prefix (a, "ok 1"))
        g_printerr ("text: %s\nscenario %d\n%s\n", text, s, a);
      if (fast)
        g_assert_true (g_str_has_prefix (a, "ok 1"));
    }
}

static void
test_random (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261126);
  guint rounds = g_test_slow () ? 2000 : 300;

  n_texts = n_fast = n_accepted = 0;
  for (guint i = 0; i < rounds; i++)
    {
      g_autofree char *text = random_content (rand);
      g_autofree char *spread = spread_out (rand, text);
      g_autofree char *escaped = escape_one (rand, text);
      g_autofree char *mutated = mutate (rand, text);
      g_autofree char *mutated2 = mutate (rand, spread);

      /* what the store writes always takes the fast path */
      g_assert_true (takes_fast_path (text));
      g_assert_true (takes_fast_path (spread));
      check_text (text);
      check_text (spread);
      check_like_merge (text);
      check_text (escaped);
      check_text (mutated);
      check_text (mutated2);
    }
  g_test_message ("%u texts, %u accepted, %u on the fast path", n_texts, n_accepted, n_fast);
  g_assert_cmpuint (n_fast, >=, 2 * rounds);
  g_assert_cmpuint (n_accepted, >, n_fast);
}

/* Tables large enough for the loader's slabs: both stores must then
 * behave the same under every later change (rows growing out of their
 * slab, deletions, replacing the content). */
static void
test_large (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  g_autoptr(TsMergeableStore) source = new_store ();
  g_autoptr(TsMergeableStore) fast = new_store ();
  g_autoptr(TsMergeableStore) generic = new_store ();
  g_autofree char *text = NULL;

  for (guint i = 0; i < 3000; i++)
    {
      g_autofree char *row = g_strdup_printf (g_rand_boolean (rand) ? "r%u" : "%u",
                                              g_rand_int_range (rand, 0, 400));
      g_autofree char *cell = g_strdup_printf ("c%u", g_rand_int_range (rand, 0, 24));
      const char *table = g_rand_int_range (rand, 0, 4) == 0 ? "u" : "t";

      now++;
      g_assert_true (ts_mergeable_store_set_cell_json (source, table, row, cell,
          cells[g_rand_int_range (rand, 0, G_N_ELEMENTS (cells))], NULL));
      if (g_rand_int_range (rand, 0, 20) == 0)
        ts_mergeable_store_del_cell (source, table, row, cell);
    }
  text = ts_mergeable_store_get_mergeable_content_json (source);
  g_assert_true (takes_fast_path (text));
  check_text (text);
  g_assert_true (ts_mergeable_store_set_mergeable_content_json (fast, text, NULL));
  g_assert_true (_ts_mergeable_store_set_content_text (generic, text, FALSE, NULL));

  for (guint i = 0; i < 1000; i++)
    {
      g_autofree char *row = g_strdup_printf ("r%u", g_rand_int_range (rand, 0, 420));
      g_autofree char *cell = g_strdup_printf ("c%u", g_rand_int_range (rand, 0, 40));
      const char *table = g_rand_boolean (rand) ? "u" : "t";
      guint op = g_rand_int_range (rand, 0, 100);
      g_autofree char *a = NULL, *b = NULL, *pa = NULL, *pb = NULL;

      now++;
      for (int k = 0; k < 2; k++)
        {
          TsMergeableStore *store = k == 0 ? fast : generic;

          if (op < 80)
            ts_mergeable_store_set_cell_number (store, table, row, cell, i);
          else if (op < 90)
            ts_mergeable_store_del_cell (store, table, row, cell);
          else if (op < 97)
            ts_mergeable_store_del_row (store, table, row);
          else if (op < 98)
            ts_mergeable_store_del_table (store, table);
          else
            g_assert_true (_ts_mergeable_store_set_content_text (store, text, k == 0, NULL));
        }
      if (i % 10 != 9)
        continue;
      a = ts_mergeable_store_get_mergeable_content_json (fast);
      b = ts_mergeable_store_get_mergeable_content_json (generic);
      pa = ts_mergeable_store_get_content_json (fast);
      pb = ts_mergeable_store_get_content_json (generic);
      g_assert_cmpstr (a, ==, b);
      g_assert_cmpstr (pa, ==, pb);
    }
}

static const char *const edge_cases[] = {
  "",
  " ",
  "[]",
  "[[{},\"\",0],[{},\"\",0]]",
  " [ [ { } , \"\" , 0 ] , [ { } , \"\" , 0 ] ] ",
  "[[{},\"\",0],[{},\"\",0]] x",
  "[[{},\"\",0],[{},\"\",0],1]",
  "[[{},\"\",0]]",
  "[[{},\"\"],[{},\"\",0]]",
  "[[{},\"\",0,1],[{},\"\",0]]",
  "[[{},\"\",1e400],[{},\"\",0]]",
  "[[{},\"\",-1.5],[{},\"\",4294967297]]",
  "[[{},\"\",\"0\"],[{},\"\",0]]",
  "[[{},\"\",0],[{},\"Nn1JUF-----FnHIC\",0]]",
  "[[{},\"Nn1JUF-----FnHI\",0],[{},\"\",0]]",
  "[[{},\"\\u004En1JUF-----FnHIC\",0],[{},\"\",0]]",
  "[[{},\"zzzzzzzzzzzzzzzz\",0],[{},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2],\"a\":[2,\"\",3]},\"\",0]]",
  "[[{},\"\",0],[{\"1\":[1,\"\",2],\"0\":[2,\"\",3]},\"\",0]]",
  "[[{},\"\",0],[{\"0\":[1,\"\",2],\"1\":[2,\"\",3]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2],\"0\":[2,\"\",3]},\"\",0]]",
  "[[{},\"\",0],[{\"01\":[1,\"\",2],\"0\":[2,\"\",3]},\"\",0]]",
  "[[{},\"\",0],[{\"\\u0061\":[1,\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1e400,\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[-0,\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[{\"y\":1,\"x\":2,\"y\":3},\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[[1 , 2],\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[\"\\uFFFC\",\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[\"\xef\xbf\xbc\",\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[\"\\ud800\\udc00\\ud800\",\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[\"\\x\",\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[\"\xed\xa0\x80\",\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[tru,\"\",2]},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2]},\"\",0]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2],},\"\",0]]",
  "[[{},\"\",0],[{\"a\":[1,\"\",2]}\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4],\"t\":[{},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3],\"r\":[{},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2],\"c\":[\"\\uFFFC\",\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"2\":[{\"c\":[1,\"\",2]},\"\",3],\"10\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"10\":[{\"c\":[1,\"\",2]},\"\",3],\"2\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[\"\\uFFFC\",\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]\x01",
  "[[{\"t\":[{\"r\":[{},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0],1]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{\"c\":[1]},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1]},\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[[],\"\",3]},\"\",4]},\"\",5],[{},\"\",0]]",
  "[[{\"t\":[{\"r\":[{\"c\":[1,\"\",2]},\"\",3]},\"\",4]},\"\",5],[{\"v\":[{},\"\",2]},\"\",0]]",
};

static void
test_edge_cases (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (edge_cases); i++)
    check_text (edge_cases[i]);

  /* HLCs from the store's clock: in range, then five minutes and one
   * millisecond ahead */
  {
    g_autoptr(TsMergeableStore) store = new_store ();
    g_autofree char *content = NULL;
    g_autofree char *ahead = NULL;

    ts_mergeable_store_set_cell_number (store, "t", "r", "c", 1);
    content = ts_mergeable_store_get_mergeable_content_json (store);
    check_text (content);
    now -= 300001;
    check_text (content);
    now += 300001;
    ahead = replace_once (content, "[1,", "[\"\\uFFFD{}\",");
    check_text (ahead);
  }

  /* a NULL text is an error on both paths */
  {
    g_autoptr(TsMergeableStore) store = new_store ();
    g_autoptr(GError) error = NULL;

    g_assert_false (ts_mergeable_store_set_mergeable_content_json (store, NULL, &error));
    g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_JSON);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/store-load/edge-cases", test_edge_cases);
  g_test_add_func ("/tinysync/store-load/random", test_random);
  g_test_add_func ("/tinysync/store-load/large", test_large);

  return g_test_run ();
}
