/* sync-bench.c: the tinysync side of bench/run's sync cases
 *
 * The server is the built tinysync-server (--no-persist --port 0) in a child
 * process; the clients (TsWsSynchronizer peers) run in this process on one
 * main loop. bench/sync-bench.mjs does the same work with TinyBase 10.0.1
 * (its createWsServer in a child process, its clients in the Node process).
 * Prints on stdout
 *
 *     RESULT <ms>                 (initial_sync)
 *     RESULT_P50 <ms>             (change_latency)
 *     RESULT_P99 <ms>
 *
 * and INFO lines on stderr.
 *
 * Usage:
 *     sync-bench --server PATH --case initial_sync --cells N [--reps R]
 *                [--max-message-size BYTES]
 *     sync-bench --server PATH --case change_latency [--samples 2000]
 *                [--warmup 200]
 *
 * initial_sync: client A holds N cells and syncs in a room; the clock starts
 * when a fresh client B is created (socket connect included) and stops when
 * B's content hashes equal A's.
 * change_latency: A and B sync in one room; A sets one cell, the time until
 * B's cell listener runs, one sample at a time (monotonic clock).
 *
 * SPDX-License-Identifier: MIT
 */
#include <tinysync/tinysync.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_ID "t"
#define CELLS_PER_ROW 10
/* Request timeouts in seconds, the same as sync-bench.mjs: 10 s for B (its
 * load of 1M cells), 1 s for the first client A, which is
 * alone in the room when it starts (its load waits for the whole timeout) */
#define REQUEST_TIMEOUT 10.0
#define A_REQUEST_TIMEOUT 1.0
#define SYNC_TIMEOUT_S 120

static const char *const cell_ids[CELLS_PER_ROW] = {
  "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9",
};
static const char *const colours[4] = { "red", "green", "blue", "amber" };

/* Keep in sync with store-bench.c / sync-bench.mjs */
static double
cell_number (guint64 i, guint j)
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

static void
cell_string (guint64 i, guint j, char *buf, gsize size)
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

static void
fill_store (TsMergeableStore *store, guint64 rows)
{
  char row[32], buf[64];

  ts_mergeable_store_start_transaction (store);
  for (guint64 i = 0; i < rows; i++)
    {
      g_snprintf (row, sizeof row, "r%" G_GUINT64_FORMAT, i);
      for (guint j = 0; j < CELLS_PER_ROW; j++)
        if (j % 2 == 0)
          ts_mergeable_store_set_cell_number (store, TABLE_ID, row, cell_ids[j],
                                              cell_number (i, j));
        else
          {
            cell_string (i, j, buf, sizeof buf);
            ts_mergeable_store_set_cell_string (store, TABLE_ID, row, cell_ids[j], buf);
          }
    }
  ts_mergeable_store_finish_transaction (store);
}

static double
now_ms (void)
{
  return (double) g_get_monotonic_time () / 1000.0;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static char *opt_server = NULL;
static char *opt_case = NULL;
static gint64 opt_cells = 100000;
static int opt_reps = 3;
static gint64 opt_max_message_size = 0;
static int opt_samples = 2000;
static int opt_warmup = 200;

static GMainContext *ctx;

/* Iterates the main context until *done or the deadline */
static gboolean
spin_until (const gboolean *done, double seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);

  while (!*done)
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_main_context_iteration (ctx, TRUE);
    }
  return TRUE;
}

static gboolean
wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* ---- The server ----------------------------------------------------------- */

typedef struct {
  GSubprocess *proc;
  guint        port;
} Server;

static gboolean
server_start (Server *s, GError **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDataInputStream) in = NULL;
  g_autofree char *line = NULL;
  const char *p;

  g_ptr_array_add (argv, g_strdup (opt_server));
  g_ptr_array_add (argv, g_strdup ("--no-persist"));
  g_ptr_array_add (argv, g_strdup ("--port"));
  g_ptr_array_add (argv, g_strdup ("0"));
  if (opt_max_message_size > 0)
    g_ptr_array_add (argv, g_strdup_printf ("--max-message-size=%" G_GINT64_FORMAT,
                                            opt_max_message_size));
  g_ptr_array_add (argv, NULL);
  s->proc = g_subprocess_newv ((const char *const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE, error);
  if (s->proc == NULL)
    return FALSE;
  in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (s->proc));
  while ((line = g_data_input_stream_read_line (in, NULL, NULL, error)) != NULL)
    {
      if ((p = strstr (line, "Listening on ws://127.0.0.1:")) != NULL)
        {
          s->port = (guint) atoi (p + strlen ("Listening on ws://127.0.0.1:"));
          return TRUE;
        }
      g_clear_pointer (&line, g_free);
    }
  if (error && *error == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s exited before listening",
                 opt_server);
  return FALSE;
}

static void
server_stop (Server *s)
{
  if (s->proc == NULL)
    return;
  g_subprocess_send_signal (s->proc, SIGTERM);
  g_subprocess_wait (s->proc, NULL, NULL);
  g_clear_object (&s->proc);
}

/* ---- Clients -------------------------------------------------------------- */

typedef struct {
  TsWsSynchronizer *sync;
  GError           *error;
  gboolean          done;
} Pending;

static void
on_new (GObject *source, GAsyncResult *result, gpointer data)
{
  Pending *p = data;

  p->sync = ts_ws_synchronizer_new_finish (result, &p->error);
  p->done = TRUE;
}

static void
on_started (GObject *source, GAsyncResult *result, gpointer data)
{
  Pending *p = data;

  ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &p->error);
  p->done = TRUE;
}

static void
start_new (Pending *p, TsMergeableStore *store, const char *uri, double timeout)
{
  memset (p, 0, sizeof *p);
  ts_ws_synchronizer_new_async (store, uri, timeout, NULL, on_new, p);
}

static void
configure (TsWsSynchronizer *sync)
{
  if (opt_max_message_size > 0)
    ts_ws_synchronizer_set_max_message_size (sync, (guint) opt_max_message_size);
}

/* Connects and starts syncing, blocking (on the main context) */
static TsWsSynchronizer *
connect_and_sync (TsMergeableStore *store, const char *uri, double timeout)
{
  Pending p;
  TsWsSynchronizer *sync;

  start_new (&p, store, uri, timeout);
  spin_until (&p.done, 30);
  if (p.sync == NULL)
    g_error ("connect %s: %s", uri, p.error ? p.error->message : "timeout");
  sync = p.sync;
  configure (sync);
  memset (&p, 0, sizeof p);
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (sync), NULL, NULL, on_started, &p);
  spin_until (&p.done, 60);
  if (p.error)
    g_error ("start sync %s: %s", uri, p.error->message);
  return sync;
}

static void
close_client (TsWsSynchronizer *sync)
{
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync));
  g_object_unref (sync);
}

/* ---- initial_sync ---------------------------------------------------------- */

typedef struct {
  TsMergeableStore *store;
  guint32           want_tables, want_values;
  gboolean          equal;
  double            t_equal;
} Watch;

static void
check_equal (Watch *w)
{
  guint32 t, v;

  if (w->equal)
    return;
  ts_mergeable_store_get_mergeable_content_hashes (w->store, &t, &v);
  if (t == w->want_tables && v == w->want_values)
    {
      w->equal = TRUE;
      w->t_equal = now_ms ();
    }
}

static void
on_transaction_finished (TsMergeableStore *store, gpointer data)
{
  check_equal (data);
}

/* A (see A_REQUEST_TIMEOUT) holds the cells and syncs in the room for every
 * repetition; each repetition times a fresh client B */
static double
initial_sync_once (TsMergeableStore *a_store, const char *uri, guint64 rows)
{
  g_autoptr(TsMergeableStore) b_store = ts_mergeable_store_new (NULL);
  TsWsSynchronizer *b;
  Pending pb, sb;
  Watch w = { 0 };
  double t0;

  w.store = b_store;
  ts_mergeable_store_get_mergeable_content_hashes (a_store, &w.want_tables, &w.want_values);
  g_signal_connect (b_store, "transaction-finished", G_CALLBACK (on_transaction_finished), &w);

  t0 = now_ms ();
  start_new (&pb, b_store, uri, REQUEST_TIMEOUT);
  if (!spin_until (&pb.done, 30) || pb.sync == NULL)
    g_error ("connect B: %s", pb.error ? pb.error->message : "timeout");
  b = pb.sync;
  configure (b);
  memset (&sb, 0, sizeof sb);
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (b), NULL, NULL, on_started, &sb);
  while (!w.equal && !sb.done)
    g_main_context_iteration (ctx, TRUE);
  if (sb.error)
    g_error ("B's start sync: %s", sb.error->message);
  check_equal (&w);
  if (!spin_until (&w.equal, SYNC_TIMEOUT_S))
    g_error ("B did not converge within %d s", SYNC_TIMEOUT_S);
  spin_until (&sb.done, 60);
  close_client (b);
  if (ts_mergeable_store_get_row_count (b_store, TABLE_ID) != rows)
    g_error ("B has %u rows, want %" G_GUINT64_FORMAT,
             ts_mergeable_store_get_row_count (b_store, TABLE_ID), rows);
  return w.t_equal - t0;
}

static int
run_initial_sync (Server *s)
{
  guint64 rows = (guint64) opt_cells / CELLS_PER_ROW;
  g_autofree double *times = g_new (double, opt_reps);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/initial", s->port);
  g_autoptr(TsMergeableStore) a_store = ts_mergeable_store_new (NULL);
  TsWsSynchronizer *a;

  fill_store (a_store, rows);
  a = connect_and_sync (a_store, uri, A_REQUEST_TIMEOUT);
  /* warm-up: one uncounted repetition, as sync-bench.mjs */
  g_printerr ("INFO tinysync initial_sync %" G_GINT64_FORMAT " cells (warm-up): %.1f ms\n",
              opt_cells, initial_sync_once (a_store, uri, rows));
  for (int r = 0; r < opt_reps; r++)
    {
      times[r] = initial_sync_once (a_store, uri, rows);
      g_printerr ("INFO tinysync initial_sync %" G_GINT64_FORMAT " cells: %.1f ms\n",
                  opt_cells, times[r]);
    }
  close_client (a);
  qsort (times, opt_reps, sizeof (double), cmp_double);
  g_print ("RESULT %.3f\n", opt_reps % 2 ? times[opt_reps / 2]
                                          : (times[opt_reps / 2 - 1] + times[opt_reps / 2]) / 2);
  return 0;
}

/* ---- change_latency -------------------------------------------------------- */

typedef struct {
  gboolean arrived;
  double   t;
} Arrival;

static void
on_cell (TsMergeableStore *store, const char *table_id, const char *row_id,
         const char *cell_id, gpointer data)
{
  Arrival *a = data;

  a->t = now_ms ();
  a->arrived = TRUE;
}

static double
percentile (const double *sorted, int n, double p)
{
  int i = (int) ((p / 100.0) * n + 0.999999) - 1;

  return sorted[CLAMP (i, 0, n - 1)];
}

static int
run_change_latency (Server *s)
{
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/latency", s->port);
  g_autoptr(TsMergeableStore) a_store = ts_mergeable_store_new (NULL);
  g_autoptr(TsMergeableStore) b_store = ts_mergeable_store_new (NULL);
  g_autofree double *lat = g_new (double, opt_samples);
  TsWsSynchronizer *a, *b;
  Arrival arr = { 0 };
  double p50, p99;

  a = connect_and_sync (a_store, uri, A_REQUEST_TIMEOUT);
  b = connect_and_sync (b_store, uri, REQUEST_TIMEOUT);
  ts_mergeable_store_add_cell_listener (b_store, TABLE_ID, "r0", "c0", on_cell, &arr, NULL);

  for (int i = 0; i < opt_warmup + opt_samples; i++)
    {
      double t0;

      arr.arrived = FALSE;
      t0 = now_ms ();
      ts_mergeable_store_set_cell_number (a_store, TABLE_ID, "r0", "c0", i);
      if (!spin_until (&arr.arrived, 5))
        g_error ("sample %d: B saw no change within 5 s", i);
      if (i >= opt_warmup)
        lat[i - opt_warmup] = arr.t - t0;
      /* let the rest of this round (B's own sends etc.) run before the next */
      while (g_main_context_iteration (ctx, FALSE))
        ;
    }
  qsort (lat, opt_samples, sizeof (double), cmp_double);
  p50 = percentile (lat, opt_samples, 50);
  p99 = percentile (lat, opt_samples, 99);
  g_printerr ("INFO tinysync change_latency %d samples: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
              opt_samples, p50, p99, lat[opt_samples - 1]);
  g_print ("RESULT_P50 %.4f\nRESULT_P99 %.4f\n", p50, p99);
  close_client (a);
  close_client (b);
  return 0;
}

/* ---- Main -------------------------------------------------------------------- */

static const GOptionEntry entries[] = {
  { "server", 0, 0, G_OPTION_ARG_FILENAME, &opt_server, "tinysync-server to run", "PATH" },
  { "case", 0, 0, G_OPTION_ARG_STRING, &opt_case, "initial_sync or change_latency", "KIND" },
  { "cells", 0, 0, G_OPTION_ARG_INT64, &opt_cells, "cells held by client A", "N" },
  { "reps", 0, 0, G_OPTION_ARG_INT, &opt_reps, "repetitions (median)", "R" },
  { "max-message-size", 0, 0, G_OPTION_ARG_INT64, &opt_max_message_size,
    "raise the peers' and server's message limit", "BYTES" },
  { "samples", 0, 0, G_OPTION_ARG_INT, &opt_samples, "latency samples", "N" },
  { "warmup", 0, 0, G_OPTION_ARG_INT, &opt_warmup, "latency warm-up samples", "N" },
  { NULL }
};

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) octx = g_option_context_new ("- tinysync sync benchmarks");
  g_autoptr(GError) error = NULL;
  Server server = { 0 };
  int status;

  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    {
      g_printerr ("sync-bench: %s\n", error->message);
      return 2;
    }
  if (opt_server == NULL || opt_case == NULL || opt_reps < 1 || opt_samples < 1 ||
      opt_warmup < 0 || opt_cells < CELLS_PER_ROW)
    {
      g_printerr ("sync-bench: need --server PATH --case KIND (see the source)\n");
      return 2;
    }
  ctx = g_main_context_default ();
  g_timeout_add_seconds (1, wake, NULL);
  if (!server_start (&server, &error))
    {
      g_printerr ("sync-bench: %s\n", error->message);
      return 1;
    }
  if (g_str_equal (opt_case, "initial_sync"))
    status = run_initial_sync (&server);
  else if (g_str_equal (opt_case, "change_latency"))
    status = run_change_latency (&server);
  else
    {
      g_printerr ("sync-bench: unknown --case %s\n", opt_case);
      status = 2;
    }
  server_stop (&server);
  return status;
}
