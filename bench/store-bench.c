/* store-bench.c: the tinysync side of bench/run
 *
 * Runs one benchmark case against TsMergeableStore and prints one line
 *
 *     RESULT <value>
 *
 * on stdout (plus "INFO ..." lines on stderr). bench/store-bench.mjs does the
 * same work through TinyBase 10.0.1; bench/run runs both and compares.
 *
 * Usage:
 *     store-bench --case KIND --cells N [--reps R] [--content FILE]
 *     store-bench --write-content FILE --cells N
 *
 * Kinds (N cells = N/10 rows of ten cells c0..c9 in table "t"):
 *     set_cell      ts_mergeable_store_set_cell_{number,string} one at a time,
 *                   each its own transaction (cells/s)
 *     set_tables    the same cells inside one start/finish_transaction
 *                   (cells/s)
 *     memory        RSS growth (after malloc_trim) for building an N-cell
 *                   store, divided by N (bytes/cell)
 *     get_content   ts_mergeable_store_get_mergeable_content_json on an
 *                   N-cell store (ms)
 *     load_content  ts_mergeable_store_set_mergeable_content_json of FILE's
 *                   text into a new store (ms; parsing included)
 *
 * The data (same in store-bench.mjs): row i is "r<i>"; even cells hold
 * numbers, odd cells short strings, see cell_number() / cell_string().
 *
 * SPDX-License-Identifier: MIT
 */
#include <tinysync/tinysync.h>

#if defined(HAVE_MALLINFO2) || defined(HAVE_MALLOC_TRIM)
# include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TABLE_ID "t"
#define CELLS_PER_ROW 10

static const char *const cell_ids[CELLS_PER_ROW] = {
  "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9",
};

static const char *const colours[4] = { "red", "green", "blue", "amber" };

/* ---- The data ------------------------------------------------------------- */

/* Keep in sync with cellNumber() in store-bench.mjs */
static double
cell_number (guint64 i,
             guint   j)
{
  switch (j)
    {
    case 0: return (double) i;
    case 2: return (double) (i % 1000) / 8.0;
    case 4: return -(double) (i % 97);
    case 6: return (double) i * 1.5;
    default: return (double) ((i * 7919) % 100000);
    }
}

/* Keep in sync with cellString() in store-bench.mjs */
static void
cell_string (guint64 i,
             guint   j,
             char   *buf,
             gsize   size)
{
  switch (j)
    {
    case 1: g_snprintf (buf, size, "name%" G_GUINT64_FORMAT, i); break;
    case 3: g_snprintf (buf, size, "%s", colours[i % 4]); break;
    case 5: g_snprintf (buf, size, "user-%" G_GUINT64_FORMAT, i % 5000); break;
    case 7: g_snprintf (buf, size, "x%" G_GUINT64_FORMAT, i % 10); break;
    default: g_snprintf (buf, size, "note %" G_GUINT64_FORMAT " ok", i); break;
    }
}

/* Ids and values made up front, so that timed loops only call the store */
typedef struct {
  guint64  rows;
  char   **row_ids;
  double  *numbers;   /* rows * CELLS_PER_ROW, used for even j */
  char   **strings;   /* rows * CELLS_PER_ROW, used for odd j */
} Data;

static void
data_init (Data    *d,
           guint64  rows)
{
  char buf[64];

  d->rows = rows;
  d->row_ids = g_new (char *, rows);
  d->numbers = g_new0 (double, rows * CELLS_PER_ROW);
  d->strings = g_new0 (char *, rows * CELLS_PER_ROW);
  for (guint64 i = 0; i < rows; i++)
    {
      g_snprintf (buf, sizeof buf, "r%" G_GUINT64_FORMAT, i);
      d->row_ids[i] = g_strdup (buf);
      for (guint j = 0; j < CELLS_PER_ROW; j++)
        if (j % 2 == 0)
          d->numbers[i * CELLS_PER_ROW + j] = cell_number (i, j);
        else
          {
            cell_string (i, j, buf, sizeof buf);
            d->strings[i * CELLS_PER_ROW + j] = g_strdup (buf);
          }
    }
}

static void
data_clear (Data *d)
{
  for (guint64 i = 0; i < d->rows; i++)
    g_free (d->row_ids[i]);
  for (guint64 k = 0; k < d->rows * CELLS_PER_ROW; k++)
    g_free (d->strings[k]);
  g_free (d->row_ids);
  g_free (d->numbers);
  g_free (d->strings);
  memset (d, 0, sizeof *d);
}

static inline void
set_prepared_cell (TsMergeableStore *store,
                   const Data       *d,
                   guint64           i,
                   guint             j)
{
  if (j % 2 == 0)
    ts_mergeable_store_set_cell_number (store, TABLE_ID, d->row_ids[i], cell_ids[j],
                                        d->numbers[i * CELLS_PER_ROW + j]);
  else
    ts_mergeable_store_set_cell_string (store, TABLE_ID, d->row_ids[i], cell_ids[j],
                                        d->strings[i * CELLS_PER_ROW + j]);
}

static void
fill_one_by_one (TsMergeableStore *store,
                 const Data       *d)
{
  for (guint64 i = 0; i < d->rows; i++)
    for (guint j = 0; j < CELLS_PER_ROW; j++)
      set_prepared_cell (store, d, i, j);
}

static void
fill_transaction (TsMergeableStore *store,
                  const Data       *d)
{
  ts_mergeable_store_start_transaction (store);
  fill_one_by_one (store, d);
  ts_mergeable_store_finish_transaction (store);
}

/* Builds the store straight from the generator, allocating nothing that
 * outlives it except what the store keeps (for the memory case) */
static void
fill_generated (TsMergeableStore *store,
                guint64           rows)
{
  char row_id[32], buf[64];

  ts_mergeable_store_start_transaction (store);
  for (guint64 i = 0; i < rows; i++)
    {
      g_snprintf (row_id, sizeof row_id, "r%" G_GUINT64_FORMAT, i);
      for (guint j = 0; j < CELLS_PER_ROW; j++)
        if (j % 2 == 0)
          ts_mergeable_store_set_cell_number (store, TABLE_ID, row_id, cell_ids[j],
                                              cell_number (i, j));
        else
          {
            cell_string (i, j, buf, sizeof buf);
            ts_mergeable_store_set_cell_string (store, TABLE_ID, row_id, cell_ids[j], buf);
          }
    }
  ts_mergeable_store_finish_transaction (store);
}

static void
check_store (TsMergeableStore *store,
             guint64           rows)
{
  guint64 last = rows - 1;
  char row_id[32], want[64];
  g_autofree char *got = NULL;
  g_autofree char *want_json = NULL;

  if (ts_mergeable_store_get_row_count (store, TABLE_ID) != rows)
    {
      g_printerr ("store-bench: expected %" G_GUINT64_FORMAT " rows, got %u\n",
                  rows, ts_mergeable_store_get_row_count (store, TABLE_ID));
      exit (1);
    }
  g_snprintf (row_id, sizeof row_id, "r%" G_GUINT64_FORMAT, last);
  cell_string (last, 9, want, sizeof want);
  want_json = g_strdup_printf ("\"%s\"", want);
  got = ts_mergeable_store_get_cell_json (store, TABLE_ID, row_id, "c9");
  if (got == NULL || strcmp (got, want_json) != 0)
    {
      g_printerr ("store-bench: %s/c9 is %s, expected %s\n", row_id,
                  got != NULL ? got : "(missing)", want_json);
      exit (1);
    }
}

/* ---- Measuring -------------------------------------------------------------- */

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* CPU time of the process: shows how much of the wall time was spent
 * waiting for the CPU on a busy machine (INFO lines only) */
static double
cpu_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static gint64
rss_bytes (void)
{
  long pages_total = 0, pages_rss = 0;
  FILE *f = fopen ("/proc/self/statm", "r");

  if (f == NULL || fscanf (f, "%ld %ld", &pages_total, &pages_rss) != 2)
    {
      g_printerr ("store-bench: cannot read /proc/self/statm\n");
      exit (1);
    }
  fclose (f);
  return (gint64) pages_rss * sysconf (_SC_PAGESIZE);
}

/* Bytes malloc hands out (glibc only; -1 elsewhere) */
static gint64
heap_in_use (void)
{
#ifdef HAVE_MALLINFO2
  struct mallinfo2 mi = mallinfo2 ();

  return (gint64) (mi.uordblks + mi.hblkhd);
#else
  return -1;
#endif
}

/* Gives freed heap back to the kernel so RSS shows what is still in use */
static void
trim_heap (void)
{
#ifdef HAVE_MALLOC_TRIM
  malloc_trim (0);
#endif
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (double *v,
        guint   n)
{
  qsort (v, n, sizeof *v, compare_doubles);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
warm_up (guint64 cells)
{
  Data d;
  TsMergeableStore *store = ts_mergeable_store_new (NULL);
  guint64 rows = MIN (cells, 20000) / CELLS_PER_ROW;

  data_init (&d, MAX (rows, 1));
  fill_one_by_one (store, &d);
  g_object_unref (store);
  store = ts_mergeable_store_new (NULL);
  fill_transaction (store, &d);
  g_free (ts_mergeable_store_get_mergeable_content_json (store));
  g_object_unref (store);
  data_clear (&d);
}

/* ---- Cases ------------------------------------------------------------------ */

static double
run_fill (guint64  cells,
          guint    reps,
          gboolean one_transaction)
{
  Data d;
  g_autofree double *rates = g_new (double, reps);
  guint64 rows = cells / CELLS_PER_ROW;

  data_init (&d, rows);
  warm_up (cells);
  for (guint r = 0; r < reps; r++)
    {
      TsMergeableStore *store = ts_mergeable_store_new (NULL);
      double t0 = now_s (), c0 = cpu_s (), t;

      if (one_transaction)
        fill_transaction (store, &d);
      else
        fill_one_by_one (store, &d);
      t = now_s () - t0;
      rates[r] = (double) (rows * CELLS_PER_ROW) / t;
      g_printerr ("INFO tinysync rep %u: %.3f s (cpu %.3f s), %.0f cells/s\n",
                  r, t, cpu_s () - c0, rates[r]);
      check_store (store, rows);
      g_object_unref (store);
    }
  data_clear (&d);
  return median (rates, reps);
}

static double
run_memory (guint64 cells)
{
  guint64 rows = cells / CELLS_PER_ROW;
  gint64 rss0, rss1, heap0, heap1;
  TsMergeableStore *store;
  double per_cell;

  warm_up (cells);
  trim_heap ();
  rss0 = rss_bytes ();
  heap0 = heap_in_use ();
  store = ts_mergeable_store_new (NULL);
  fill_generated (store, rows);
  trim_heap ();
  rss1 = rss_bytes ();
  heap1 = heap_in_use ();
  check_store (store, rows);
  per_cell = (double) (rss1 - rss0) / (double) (rows * CELLS_PER_ROW);
  g_printerr ("INFO tinysync RSS delta %.1f MiB = %.1f B/cell; malloc in-use delta %.1f MiB = %.1f B/cell\n",
              (rss1 - rss0) / 1048576.0, per_cell,
              (heap1 - heap0) / 1048576.0, (double) (heap1 - heap0) / (double) (rows * CELLS_PER_ROW));
  g_object_unref (store);
  return per_cell;
}

static double
run_get_content (guint64 cells,
                 guint   reps)
{
  Data d;
  g_autofree double *ms = g_new (double, reps);
  guint64 rows = cells / CELLS_PER_ROW;
  TsMergeableStore *store;

  warm_up (cells);
  data_init (&d, rows);
  store = ts_mergeable_store_new (NULL);
  fill_transaction (store, &d);
  data_clear (&d);
  for (guint r = 0; r < reps; r++)
    {
      double t0 = now_s (), c0 = cpu_s ();
      char *json = ts_mergeable_store_get_mergeable_content_json (store);

      ms[r] = (now_s () - t0) * 1000;
      g_printerr ("INFO tinysync rep %u: %.1f ms (cpu %.1f ms), %zu bytes of JSON\n",
                  r, ms[r], (cpu_s () - c0) * 1000, strlen (json));
      g_free (json);
    }
  g_object_unref (store);
  return median (ms, reps);
}

static double
run_load_content (guint64     cells,
                  guint       reps,
                  const char *path)
{
  g_autofree char *text = NULL;
  g_autofree double *ms = g_new (double, reps);
  g_autoptr(GError) error = NULL;
  gsize len;

  if (path == NULL)
    {
      g_printerr ("store-bench: load_content needs --content FILE\n");
      exit (2);
    }
  if (!g_file_get_contents (path, &text, &len, &error))
    {
      g_printerr ("store-bench: %s\n", error->message);
      exit (1);
    }
  warm_up (cells);
  for (guint r = 0; r < reps; r++)
    {
      TsMergeableStore *store = ts_mergeable_store_new (NULL);
      double t0 = now_s (), c0 = cpu_s ();

      if (!ts_mergeable_store_set_mergeable_content_json (store, text, &error))
        {
          g_printerr ("store-bench: loading %s: %s\n", path, error->message);
          exit (1);
        }
      ms[r] = (now_s () - t0) * 1000;
      g_printerr ("INFO tinysync rep %u: %.1f ms (cpu %.1f ms) for %zu bytes\n",
                  r, ms[r], (cpu_s () - c0) * 1000, len);
      check_store (store, cells / CELLS_PER_ROW);
      g_object_unref (store);
    }
  return median (ms, reps);
}

static void
write_content (guint64     cells,
               const char *path)
{
  Data d;
  TsMergeableStore *store = ts_mergeable_store_new (NULL);
  g_autofree char *json = NULL;
  g_autoptr(GError) error = NULL;

  data_init (&d, cells / CELLS_PER_ROW);
  fill_transaction (store, &d);
  data_clear (&d);
  json = ts_mergeable_store_get_mergeable_content_json (store);
  if (!g_file_set_contents (path, json, -1, &error))
    {
      g_printerr ("store-bench: %s\n", error->message);
      exit (1);
    }
  g_object_unref (store);
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *kind = NULL;
  g_autofree char *content = NULL;
  g_autofree char *write_to = NULL;
  gint64 cells = 100000;
  int reps = 1;
  double value;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) ctx = NULL;
  GOptionEntry entries[] = {
    { "case", 0, 0, G_OPTION_ARG_STRING, &kind, "Case to run", "KIND" },
    { "cells", 0, 0, G_OPTION_ARG_INT64, &cells, "Number of cells (multiple of 10)", "N" },
    { "reps", 0, 0, G_OPTION_ARG_INT, &reps, "Repetitions (median reported)", "R" },
    { "content", 0, 0, G_OPTION_ARG_FILENAME, &content, "Mergeable content JSON (load_content)", "FILE" },
    { "write-content", 0, 0, G_OPTION_ARG_FILENAME, &write_to, "Write N cells of mergeable content JSON to FILE", "FILE" },
    { NULL }
  };

  ctx = g_option_context_new ("- tinysync side of bench/run");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("store-bench: %s\n", error->message);
      return 2;
    }
  if (cells < CELLS_PER_ROW || cells % CELLS_PER_ROW != 0 || reps < 1)
    {
      g_printerr ("store-bench: --cells must be a positive multiple of %d, --reps positive\n", CELLS_PER_ROW);
      return 2;
    }

  if (write_to != NULL)
    {
      write_content ((guint64) cells, write_to);
      return 0;
    }
  if (kind == NULL)
    {
      g_printerr ("store-bench: give --case or --write-content\n");
      return 2;
    }

  if (strcmp (kind, "set_cell") == 0)
    value = run_fill ((guint64) cells, (guint) reps, FALSE);
  else if (strcmp (kind, "set_tables") == 0)
    value = run_fill ((guint64) cells, (guint) reps, TRUE);
  else if (strcmp (kind, "memory") == 0)
    value = run_memory ((guint64) cells);
  else if (strcmp (kind, "get_content") == 0)
    value = run_get_content ((guint64) cells, (guint) reps);
  else if (strcmp (kind, "load_content") == 0)
    value = run_load_content ((guint64) cells, (guint) reps, content);
  else
    {
      g_printerr ("store-bench: unknown case “%s”\n", kind);
      return 2;
    }

  printf ("RESULT %.6g\n", value);
  return 0;
}
