/* test-faults.c: tinysync-server and TsWsSynchronizer clients under faults
 *
 * Every test runs tinysync-server (with a data folder) as a child process
 * and clients as child processes (tests/faults-client), which the test
 * pauses with SIGSTOP, resumes with SIGCONT and kills with SIGKILL; the
 * test process itself runs one more client, the watcher.
 *
 * "Acknowledged" is defined from outside the writer: a row is acknowledged
 * once the watcher, another client of the room, has received it through
 * the server. A room with a data folder relays a change only once it is in
 * the room's SQLite file, so an acknowledged row is durable on the server:
 * it must survive a SIGKILL of the server or of its writer, and be in every
 * store once they converge. Converged means the same mergeable content
 * hashes (tables and values) and the same number of rows in table "t", in
 * every client and in the room's file read after the server stopped.
 *
 * Nothing here asserts on speed: conditions are waited for with generous
 * timeouts. Every child is killed in the teardown, also after a failure.
 */

#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <tinysync/tinysync.h>

#define ROOM "faults"

/* How long any condition may take: 30 s, ten times that under valgrind
 * (the test process only: valgrind does not follow the children). */
static guint wait_ms = 30000;
#define WAIT_MS wait_ms

/* The big writes are this many times smaller under valgrind, where the
 * watcher's store and synchronizer run some fifty times slower. */
static guint scale = 1;

/* ======================================================================= */
/* Waiting                                                                  */
/* ======================================================================= */

typedef gboolean (*Predicate) (gpointer data);

static gboolean
timeout_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
tick (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main context until pred holds (checked at least every 100 ms,
 * for conditions outside this process) or timeout_ms passed. */
static gboolean
wait_for (Predicate pred,
          gpointer  data,
          guint     timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, timeout_flag, &timed_out);
  guint ticker = g_timeout_add (100, tick, NULL);

  while (!(pred != NULL && pred (data)) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (ticker);
  if (!timed_out)
    g_source_remove (id);
  return pred != NULL && pred (data);
}

static void
sleep_ms (guint ms)
{
  wait_for (NULL, NULL, ms);
}

/* ======================================================================= */
/* Child processes                                                          */
/* ======================================================================= */

typedef struct {
  char             *name;
  GSubprocess      *proc;
  GOutputStream    *in;
  GDataInputStream *out;
  GQueue            lines;   /* char*, not consumed yet */
  GPtrArray        *log;     /* every line, for the server's messages */
  gboolean          eof;
  gboolean          exited;
  GCancellable     *cancellable;
} Child;

static void child_read (Child *child);

static void
child_line_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
{
  Child *child = data;
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, &error);

  if (line == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        child->eof = TRUE;
      return;
    }
  g_ptr_array_add (child->log, g_strdup (line));
  g_queue_push_tail (&child->lines, line);
  child_read (child);
}

static void
child_read (Child *child)
{
  g_data_input_stream_read_line_async (child->out, G_PRIORITY_DEFAULT, child->cancellable,
                                       child_line_cb, child);
}

static void
child_waited_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  Child *child = data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  child->exited = TRUE;
}

/* A child must not outlive a test that failed (g_error() aborts before
 * the teardown): it would keep the test's output open and run on. */
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static Child *
child_spawn (const char         *name,
             gboolean            merge_stderr,
             const char * const *argv)
{
  Child *child = g_new0 (Child, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE;

  if (merge_stderr)
    flags |= G_SUBPROCESS_FLAGS_STDERR_MERGE;
  child->name = g_strdup (name);
  child->log = g_ptr_array_new_with_free_func (g_free);
  child->cancellable = g_cancellable_new ();
  launcher = g_subprocess_launcher_new (flags);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  child->proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  child->in = g_object_ref (g_subprocess_get_stdin_pipe (child->proc));
  child->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child->proc));
  child_read (child);
  g_subprocess_wait_async (child->proc, NULL, child_waited_cb, child);
  return child;
}

static gboolean
child_exited (gpointer data)
{
  return ((Child *) data)->exited;
}

static void
child_signal (Child *child,
              int    signum)
{
  g_assert_false (child->exited);
  g_subprocess_send_signal (child->proc, signum);
}

/* SIGKILL, then wait for the process to be gone (also a stopped one). */
static void
child_kill (Child *child)
{
  if (!child->exited)
    {
      g_subprocess_force_exit (child->proc);
      g_assert_true (wait_for (child_exited, child, WAIT_MS));
    }
}

static void
child_free (Child *child)
{
  if (child == NULL)
    return;
  if (!child->exited)
    {
      g_subprocess_send_signal (child->proc, SIGCONT);
      g_subprocess_force_exit (child->proc);
      wait_for (child_exited, child, WAIT_MS);
    }
  g_cancellable_cancel (child->cancellable);
  /* Let the cancelled read and the wait finish before freeing. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_queue_clear_full (&child->lines, g_free);
  g_ptr_array_unref (child->log);
  g_object_unref (child->in);
  g_object_unref (child->out);
  g_object_unref (child->proc);
  g_object_unref (child->cancellable);
  g_free (child->name);
  g_free (child);
}

static void
child_send (Child      *child,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static void
child_send (Child      *child,
            const char *format,
            ...)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *line = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  line = g_strconcat (text, "\n", NULL);
  g_output_stream_write_all (child->in, line, strlen (line), NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_flush (child->in, NULL, &error);
  g_assert_no_error (error);
}

typedef struct {
  Child      *child;
  const char *prefix;
  char       *line;
} LineWait;

static gboolean
line_arrived (gpointer data)
{
  LineWait *wait = data;

  while (wait->line == NULL && !g_queue_is_empty (&wait->child->lines))
    {
      char *line = g_queue_pop_head (&wait->child->lines);

      if (g_str_has_prefix (line, "error "))
        g_error ("%s: %s", wait->child->name, line);
      if (g_str_has_prefix (line, wait->prefix))
        wait->line = line;
      else
        g_free (line);
    }
  return wait->line != NULL || wait->child->eof;
}

/* The next line of child starting with prefix (earlier lines are
 * skipped); fails the test when it does not come. */
static char *
child_expect (Child      *child,
              const char *prefix)
{
  LineWait wait = { child, prefix, NULL };

  wait_for (line_arrived, &wait, WAIT_MS);
  if (wait.line == NULL)
    g_error ("%s: no line “%s…” within %d s%s", child->name, prefix, WAIT_MS / 1000,
             child->eof ? " (it exited)" : "");
  return wait.line;
}

typedef struct {
  Child      *child;
  const char *text;
  guint       from;
} LogWait;

static gboolean
log_has (gpointer data)
{
  LogWait *wait = data;

  for (guint i = wait->from; i < wait->child->log->len; i++)
    if (strstr (wait->child->log->pdata[i], wait->text) != NULL)
      return TRUE;
  return FALSE;
}

static guint
log_count (Child      *child,
           const char *text)
{
  guint n = 0;

  for (guint i = 0; i < child->log->len; i++)
    if (strstr (child->log->pdata[i], text) != NULL)
      n++;
  return n;
}

/* ======================================================================= */
/* The server                                                               */
/* ======================================================================= */

typedef struct {
  Child  *child;
  guint   port;
  char   *data_dir;
  char  **extra;
} Server;

static void
server_start (Server *server)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) argv = NULL;
  g_autofree char *port = g_strdup_printf ("%u", server->port);
  g_autofree char *line = NULL;
  const char *binary = g_getenv ("TINYSYNC_SERVER");
  const char *listening = "Listening on ws://127.0.0.1:";

  g_assert_nonnull (binary);
  g_strv_builder_add_many (builder, binary, "-v", "--host", "127.0.0.1", "--port", port,
                           "--data-dir", server->data_dir, NULL);
  if (server->extra != NULL)
    g_strv_builder_addv (builder, (const char **) server->extra);
  argv = g_strv_builder_end (builder);
  server->child = child_spawn ("server", TRUE, (const char * const *) argv);
  line = child_expect (server->child, listening);
  server->port = (guint) atoi (line + strlen (listening));
  g_assert_cmpuint (server->port, >, 0);
}

static char *
server_url (Server *server)
{
  return g_strdup_printf ("ws://127.0.0.1:%u/" ROOM, server->port);
}

/* VmRSS of the server process in KiB. */
static guint64
server_rss_kib (Server *server)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/status",
                                           g_subprocess_get_identifier (server->child->proc));
  g_autofree char *status = NULL;
  const char *rss;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    return 0;
  rss = strstr (status, "VmRSS:");
  return rss != NULL ? g_ascii_strtoull (rss + 6, NULL, 10) : 0;
}

/* The number of sockets the server process has open. */
static guint
server_sockets (Server *server)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/fd",
                                           g_subprocess_get_identifier (server->child->proc));
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *fd = g_build_filename (path, name, NULL);
      g_autofree char *target = g_file_read_link (fd, NULL);

      if (target != NULL && g_str_has_prefix (target, "socket:"))
        n++;
    }
  g_dir_close (dir);
  return n;
}

typedef struct {
  Server *server;
  guint   count;
} SocketsWait;

static gboolean
sockets_down_to (gpointer data)
{
  SocketsWait *wait = data;

  return server_sockets (wait->server) <= wait->count;
}

/* ======================================================================= */
/* Clients                                                                  */
/* ======================================================================= */

typedef struct {
  guint32 tables_hash;
  guint32 values_hash;
  guint   rows;
} State;

/* Starts a client; it prints "ready" once it syncs. */
static Child *
client_spawn (Server     *server,
              const char *name,
              const char *persister,   /* "sqlite", "file" or NULL */
              const char *path,
              guint       keepalive,
              guint       max_message_size)
{
  g_autofree char *binary = g_test_build_filename (G_TEST_BUILT, "faults-client", NULL);
  g_autofree char *url = server_url (server);
  g_autofree char *option = persister ? g_strconcat ("--", persister, NULL) : NULL;
  g_autofree char *ka = g_strdup_printf ("%u", keepalive);
  g_autofree char *max = g_strdup_printf ("%u", max_message_size);
  const char *argv[] = { binary, url, name, "--keepalive", ka, "--max-message-size", max,
                         option, path, NULL };

  return child_spawn (name, FALSE, argv);
}

/* Starts a client and waits until it syncs. */
static Child *
client_start_full (Server     *server,
                   const char *name,
                   const char *persister,
                   const char *path,
                   guint       keepalive,
                   guint       max_message_size)
{
  Child *child = client_spawn (server, name, persister, path, keepalive, max_message_size);

  g_free (child_expect (child, "ready"));
  return child;
}

static Child *
client_start (Server     *server,
              const char *name,
              const char *persister,
              const char *path,
              guint       keepalive)
{
  return client_start_full (server, name, persister, path, keepalive, 0);
}

static State
client_state (Child *child)
{
  g_autofree char *line = NULL;
  State state = { 0 };

  child_send (child, "state");
  line = child_expect (child, "state ");
  g_assert_cmpint (sscanf (line, "state %u %u %u", &state.tables_hash, &state.values_hash,
                           &state.rows), ==, 3);
  return state;
}

/* The watcher: a client in the test process that records every row of
 * table "t" it has received. */
typedef struct {
  TsMergeableStore *store;
  TsWsSynchronizer *synchronizer;
  GHashTable       *seen;     /* row id set */
  GHashTable       *changes;  /* row id → number of cell changes seen */
} Watcher;

static void
watcher_cell_changed (TsMergeableStore *store,
                      const char       *table_id,
                      const char       *row_id,
                      const char       *cell_id,
                      Watcher          *watcher)
{
  guint n;

  if (!ts_mergeable_store_has_row (store, table_id, row_id))
    return;
  g_hash_table_add (watcher->seen, g_strdup (row_id));
  n = GPOINTER_TO_UINT (g_hash_table_lookup (watcher->changes, row_id));
  g_hash_table_insert (watcher->changes, g_strdup (row_id), GUINT_TO_POINTER (n + 1));
}

static void
got_result (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  *(GAsyncResult **) data = g_object_ref (result);
}

static gboolean
result_arrived (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static GAsyncResult *
wait_result (GAsyncResult **result)
{
  g_assert_true (wait_for (result_arrived, result, WAIT_MS));
  return *result;
}

static Watcher *
watcher_new (Server *server,
             guint   keepalive)
{
  Watcher *watcher = g_new0 (Watcher, 1);
  g_autofree char *url = server_url (server);
  g_autoptr(GAsyncResult) connected = NULL;
  g_autoptr(GAsyncResult) synced = NULL;
  g_autoptr(GError) error = NULL;

  watcher->store = ts_mergeable_store_new ("watcher");
  watcher->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  watcher->changes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_signal_connect (watcher->store, "cell-changed::t", G_CALLBACK (watcher_cell_changed), watcher);
  ts_ws_synchronizer_new_async (watcher->store, url, 5, NULL, got_result, &connected);
  watcher->synchronizer = ts_ws_synchronizer_new_finish (wait_result (&connected), &error);
  g_assert_no_error (error);
  ts_ws_synchronizer_set_keepalive_interval (watcher->synchronizer, keepalive);
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (watcher->synchronizer), NULL, NULL,
                                    got_result, &synced);
  g_assert_true (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (watcher->synchronizer),
                                                    wait_result (&synced), &error));
  g_assert_no_error (error);
  return watcher;
}

static void
watcher_free (Watcher *watcher)
{
  if (watcher == NULL)
    return;
  if (watcher->synchronizer != NULL)
    ts_synchronizer_destroy (TS_SYNCHRONIZER (watcher->synchronizer));
  g_clear_object (&watcher->synchronizer);
  g_clear_object (&watcher->store);
  g_hash_table_unref (watcher->seen);
  g_hash_table_unref (watcher->changes);
  g_free (watcher);
}

static State
store_state (TsMergeableStore *store)
{
  State state = { 0 };

  ts_mergeable_store_get_mergeable_content_hashes (store, &state.tables_hash, &state.values_hash);
  state.rows = ts_mergeable_store_get_row_count (store, "t");
  return state;
}

static gboolean
state_equal (State a,
             State b)
{
  return a.tables_hash == b.tables_hash && a.values_hash == b.values_hash && a.rows == b.rows;
}

typedef struct {
  Watcher *watcher;
  Child  **clients;
  guint    n_clients;
} Converge;

static gboolean
converged (gpointer data)
{
  Converge *c = data;
  State mine = store_state (c->watcher->store);

  for (guint i = 0; i < c->n_clients; i++)
    if (!state_equal (client_state (c->clients[i]), mine))
      return FALSE;
  return TRUE;
}

static gboolean
converged_slowly (gpointer data)
{
  sleep_ms (200);
  return converged (data);
}

/* Waits until every client has the watcher's content. */
static void
assert_converged (Watcher *watcher,
                  Child  **clients,
                  guint    n_clients)
{
  Converge c = { watcher, clients, n_clients };

  if (!wait_for (converged_slowly, &c, WAIT_MS))
    {
      State mine = store_state (watcher->store);

      for (guint i = 0; i < n_clients; i++)
        {
          State theirs = client_state (clients[i]);

          g_test_message ("%s: %u/%u, %u rows; watcher %u/%u, %u rows", clients[i]->name,
                          theirs.tables_hash, theirs.values_hash, theirs.rows,
                          mine.tables_hash, mine.values_hash, mine.rows);
        }
      g_error ("the stores did not converge within %d s", WAIT_MS / 1000);
    }
}

/* Loads an SQLite file (a room of the server's data folder, or a client's
 * store) into a new store. */
static TsMergeableStore *
load_sqlite (const char *path)
{
  TsMergeableStore *store = ts_mergeable_store_new ("loader");
  g_autoptr(GError) error = NULL;
  g_autoptr(TsSqlitePersister) persister = ts_sqlite_persister_new (store, path, &error);
  g_autoptr(GAsyncResult) result = NULL;

  g_assert_no_error (error);
  ts_persister_load_async (TS_PERSISTER (persister), NULL, NULL, got_result, &result);
  g_assert_true (ts_persister_load_finish (TS_PERSISTER (persister), wait_result (&result),
                                           &error));
  g_assert_no_error (error);
  return store;
}

static char *
room_file (Server *server)
{
  return g_build_filename (server->data_dir, "room-" ROOM ".sqlite", NULL);
}

/* Every row in seen is in store; returns how many rows that is. */
static guint
assert_has_rows (TsMergeableStore *store,
                 GHashTable       *seen,
                 const char       *what)
{
  GHashTableIter iter;
  gpointer key;
  guint missing = 0;

  g_hash_table_iter_init (&iter, seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!ts_mergeable_store_has_row (store, "t", key))
      {
        if (missing++ < 5)
          g_test_message ("%s lacks acknowledged row %s", what, (const char *) key);
      }
  g_assert_cmpuint (missing, ==, 0);
  return g_hash_table_size (seen);
}

static guint
count_prefix (TsMergeableStore *store,
              const char       *prefix)
{
  g_auto(GStrv) rows = ts_mergeable_store_get_row_ids (store, "t");
  guint n = 0;

  for (guint i = 0; rows != NULL && rows[i] != NULL; i++)
    if (g_str_has_prefix (rows[i], prefix))
      n++;
  return n;
}

typedef struct {
  Watcher    *watcher;
  const char *prefix;
  guint       count;
} SeenWait;

static gboolean
seen_prefix (gpointer data)
{
  SeenWait *wait = data;

  return count_prefix (wait->watcher->store, wait->prefix) >= wait->count;
}

static void
wait_seen (Watcher    *watcher,
           const char *prefix,
           guint       count)
{
  SeenWait wait = { watcher, prefix, count };

  if (!wait_for (seen_prefix, &wait, WAIT_MS))
    g_error ("the watcher got %u rows %s*, not %u", count_prefix (watcher->store, prefix), prefix,
             count);
}

/* ======================================================================= */
/* Fixture                                                                  */
/* ======================================================================= */

typedef struct {
  char    *dir;
  Server   server;
  Watcher *watcher;
  Child   *clients[4];
} Fixture;

static void
fixture_set_up (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  fx->dir = g_dir_make_tmp ("tinysync-faults-XXXXXX", &error);
  g_assert_no_error (error);
  fx->server.data_dir = g_build_filename (fx->dir, "server", NULL);
  g_assert_cmpint (g_mkdir (fx->server.data_dir, 0700), ==, 0);
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          remove_tree (child);
        }
      g_dir_close (dir);
    }
  g_remove (path);
}

static void
fixture_tear_down (Fixture       *fx,
                   gconstpointer  data)
{
  for (guint i = 0; i < G_N_ELEMENTS (fx->clients); i++)
    g_clear_pointer (&fx->clients[i], child_free);
  g_clear_pointer (&fx->watcher, watcher_free);
  g_clear_pointer (&fx->server.child, child_free);
  g_strfreev (fx->server.extra);
  remove_tree (fx->dir);
  g_free (fx->server.data_dir);
  g_free (fx->dir);
}

/* Stops the server with SIGTERM (every room saved, exit 0) and checks
 * that the room's file holds what the watcher has. */
static void
stop_server_and_check_room (Fixture *fx)
{
  g_autofree char *path = room_file (&fx->server);
  g_autoptr(TsMergeableStore) room = NULL;

  /* The watcher must not write while the server stops. */
  ts_synchronizer_destroy (TS_SYNCHRONIZER (fx->watcher->synchronizer));
  child_signal (fx->server.child, SIGTERM);
  g_assert_true (wait_for (child_exited, fx->server.child, WAIT_MS));
  g_assert_true (g_subprocess_get_if_exited (fx->server.child->proc));
  g_assert_cmpint (g_subprocess_get_exit_status (fx->server.child->proc), ==, 0);
  room = load_sqlite (path);
  g_assert_true (state_equal (store_state (room), store_state (fx->watcher->store)));
}

/* ======================================================================= */
/* 1. Partitions: a paused client, a paused server                          */
/* ======================================================================= */

static void
assert_values_from (TsMergeableStore *store,
                    const char       *prefix,
                    guint             n,
                    guint             size)
{
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *row = g_strdup_printf ("%s_%u", prefix, i);
      g_autoptr(GVariant) value = ts_mergeable_store_get_cell (store, "t", row, "v");

      g_assert_nonnull (value);
      g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING));
      g_assert_cmpuint (strlen (g_variant_get_string (value, NULL)), ==, size);
    }
}

static void
test_pause_client (Fixture       *fx,
                   gconstpointer  data)
{
  Child *a, *b;
  g_autofree char *line = NULL;
  guint acked;

  server_start (&fx->server);
  fx->watcher = watcher_new (&fx->server, 30);
  a = fx->clients[0] = client_start (&fx->server, "A", NULL, NULL, 1);
  b = fx->clients[1] = client_start (&fx->server, "B", NULL, NULL, 1);

  child_send (a, "write a0 50 0");
  child_send (b, "write b0 50 0");
  wait_seen (fx->watcher, "a0_", 50);
  wait_seen (fx->watcher, "b0_", 50);

  /* B is partitioned: it neither reads nor writes. A goes on writing,
   * also the cells B will write after it comes back. */
  child_signal (b, SIGSTOP);
  child_send (a, "stream ap 100 10");
  g_free (child_expect (a, "streamed ap"));
  child_send (a, "write c 20 8");
  g_free (child_expect (a, "wrote c"));
  wait_seen (fx->watcher, "ap_", 1000);
  wait_seen (fx->watcher, "c_", 20);
  /* Longer than B's keepalive: the server may drop it (it does not
   * answer pings), or keep it; both must work out. */
  sleep_ms (3000);

  /* B's own writes, later than A's: B's values must win. The command is
   * in B's pipe before it resumes. */
  child_send (b, "write c 20 5");
  child_signal (b, SIGCONT);
  g_free (child_expect (b, "wrote c"));
  child_send (b, "write bp 100 0");
  g_free (child_expect (b, "wrote bp"));

  assert_converged (fx->watcher, fx->clients, 2);
  acked = assert_has_rows (fx->watcher->store, fx->watcher->seen, "the watcher");
  g_assert_cmpuint (acked, ==, 50 + 50 + 1000 + 20 + 100);
  assert_values_from (fx->watcher->store, "c", 20, 5);
  g_test_message ("paused client: %u rows written, %u acknowledged, 3 stores converged", acked,
                  acked);
  stop_server_and_check_room (fx);
}

static void
test_pause_server (Fixture       *fx,
                   gconstpointer  data)
{
  Child *a, *b;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(TsMergeableStore) room = NULL;
  g_autofree char *path = NULL;
  GHashTableIter iter;
  gpointer key;

  server_start (&fx->server);
  fx->watcher = watcher_new (&fx->server, 1);
  a = fx->clients[0] = client_start (&fx->server, "A", NULL, NULL, 1);
  b = fx->clients[1] = client_start (&fx->server, "B", NULL, NULL, 1);

  child_send (a, "write a0 100 0");
  child_send (b, "write b0 100 0");
  wait_seen (fx->watcher, "a0_", 100);
  wait_seen (fx->watcher, "b0_", 100);
  before = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_iter_init (&iter, fx->watcher->seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_add (before, g_strdup (key));

  /* The server stops for six seconds, three times the clients' liveness
   * limit (two keepalive intervals): they give the connection up and try
   * to reconnect while both write, also to the same cells (B after A). */
  child_signal (fx->server.child, SIGSTOP);
  child_send (a, "stream pa 50 10");
  g_free (child_expect (a, "streamed pa"));
  child_send (a, "write d 30 8");
  g_free (child_expect (a, "wrote d"));
  sleep_ms (50);
  child_send (b, "stream pb 50 10");
  g_free (child_expect (b, "streamed pb"));
  child_send (b, "write d 30 5");
  g_free (child_expect (b, "wrote d"));
  sleep_ms (6000);
  child_signal (fx->server.child, SIGCONT);

  assert_converged (fx->watcher, fx->clients, 2);
  g_assert_cmpuint (count_prefix (fx->watcher->store, "pa_"), ==, 500);
  g_assert_cmpuint (count_prefix (fx->watcher->store, "pb_"), ==, 500);
  assert_values_from (fx->watcher->store, "d", 30, 5);
  assert_has_rows (fx->watcher->store, before, "the watcher");
  g_test_message ("paused server: %u rows written (1060 during the pause), all converged",
                  ts_mergeable_store_get_row_count (fx->watcher->store, "t"));

  path = room_file (&fx->server);
  stop_server_and_check_room (fx);
  room = load_sqlite (path);
  assert_has_rows (room, before, "the room");
}

/* While the server is stopped, a client writes more than its send queue
 * takes: it closes the connection itself (tinybase:15:socket) rather than
 * queue without bound, reconnects once the server answers and sends what
 * it wrote then. */
static void
test_pause_server_overflow (Fixture       *fx,
                            gconstpointer  data)
{
  Child *a;
  guint rounds = 0;

  server_start (&fx->server);
  fx->watcher = watcher_new (&fx->server, 30);
  a = fx->clients[0] = client_start_full (&fx->server, "A", NULL, NULL, 30, 262144);
  child_send (a, "write a0 10 0");
  wait_seen (fx->watcher, "a0_", 10);

  child_signal (fx->server.child, SIGSTOP);
  /* Rounds of 200 changes of 32 KiB until A gives up its connection
   * (the kernel's socket buffers take a few MiB first). */
  while (rounds < 12)
    {
      child_send (a, "churn churn %u %u %u", 200, 4, 8192);
      g_free (child_expect (a, "churned churn"));
      rounds++;
      if (log_count (a, "tinybase:15:socket") > 0)
        break;
    }
  g_assert_cmpuint (log_count (a, "ignored Limit exceeded (tinybase:15:socket)"), ==, 1);
  child_signal (fx->server.child, SIGCONT);

  assert_converged (fx->watcher, fx->clients, 1);
  assert_values_from (fx->watcher->store, "churn", 4, 8192);
  g_test_message ("paused server, overflowing client: %u changes of 32 KiB written, the client "
                  "closed its connection, then converged", rounds * 200);
  stop_server_and_check_room (fx);
}

/* ======================================================================= */
/* 2. A client killed in the middle of a transaction                        */
/* ======================================================================= */

/* Rows PREFIX_k_i, i < n, of every transaction k: all or none. */
static guint
assert_transactions_whole (TsMergeableStore *store,
                           const char       *prefix,
                           guint             count,
                           guint             n)
{
  guint whole = 0;

  for (guint k = 0; k < count; k++)
    {
      g_autofree char *row_prefix = g_strdup_printf ("%s_%u_", prefix, k);
      guint have = count_prefix (store, row_prefix);

      if (have != 0 && have != n)
        g_error ("transaction %s_%u is in the store in part: %u of %u rows", prefix, k, have, n);
      whole += have != 0;
    }
  return whole;
}

static void
test_kill_client (Fixture       *fx,
                  gconstpointer  data)
{
  const char *persister = data;
  g_autofree char *path = g_build_filename (fx->dir, "client-store", NULL);
  Child *other;
  guint streamed, acked, big;
  guint big_rows = 5000 / scale;

  server_start (&fx->server);
  fx->watcher = watcher_new (&fx->server, 30);
  other = fx->clients[1] = client_start (&fx->server, "O", NULL, NULL, 5);
  fx->clients[0] = client_start (&fx->server, "C", persister, path, 5);

  child_send (fx->clients[0], "write w 30 0");
  wait_seen (fx->watcher, "w_", 30);

  /* Killed inside a transaction: nothing of it may exist anywhere. */
  child_send (fx->clients[0], "hang h 500");
  g_free (child_expect (fx->clients[0], "hanging"));
  child_kill (fx->clients[0]);
  g_clear_pointer (&fx->clients[0], child_free);
  fx->clients[0] = client_start (&fx->server, "C", persister, path, 5);
  assert_converged (fx->watcher, fx->clients, 2);
  g_assert_cmpuint (count_prefix (fx->watcher->store, "h_"), ==, 0);
  g_assert_cmpuint (count_prefix (fx->watcher->store, "w_"), ==, 30);

  /* Killed while streaming transactions of 5 rows: what the watcher got
   * survives; every transaction is whole or absent. */
  child_send (fx->clients[0], "stream s 4000 5");
  wait_seen (fx->watcher, "s_", 500);
  child_kill (fx->clients[0]);
  g_clear_pointer (&fx->clients[0], child_free);
  fx->clients[0] = client_start (&fx->server, "C", persister, path, 5);
  assert_converged (fx->watcher, fx->clients, 2);
  streamed = assert_transactions_whole (fx->watcher->store, "s", 4000, 5);

  /* Killed right after finishing a big transaction, while it is being
   * saved and sent: all of it or none. */
  child_send (fx->clients[0], "write big %u 0", big_rows);
  g_free (child_expect (fx->clients[0], "wrote big"));
  child_kill (fx->clients[0]);
  g_clear_pointer (&fx->clients[0], child_free);
  fx->clients[0] = client_start (&fx->server, "C", persister, path, 5);
  assert_converged (fx->watcher, fx->clients, 2);
  big = count_prefix (fx->watcher->store, "big_");
  g_assert_true (big == 0 || big == big_rows);

  /* The server and the other client kept working all along. */
  child_send (other, "write o 10 0");
  wait_seen (fx->watcher, "o_", 10);
  assert_converged (fx->watcher, fx->clients, 2);

  acked = assert_has_rows (fx->watcher->store, fx->watcher->seen, "the watcher");
  g_test_message ("killed client (%s): %u of 4000 streamed transactions and %u of %u rows of "
                  "the big one survived; %u rows acknowledged, all present, 4 stores converged",
                  persister, streamed, big, big_rows, acked);
  stop_server_and_check_room (fx);
}

/* ======================================================================= */
/* 3. The server killed in the middle of a sync                             */
/* ======================================================================= */

static void
test_kill_server (Fixture       *fx,
                  gconstpointer  data)
{
  g_autofree char *path = NULL;
  g_autoptr(TsMergeableStore) room = NULL;
  g_autoptr(GHashTable) acked = NULL;
  GHashTableIter iter;
  gpointer key;
  guint n_acked;
  guint transactions = 3000 / scale;

  server_start (&fx->server);
  fx->watcher = watcher_new (&fx->server, 30);
  fx->clients[0] = client_start (&fx->server, "A", NULL, NULL, 5);

  /* A stream of writes; the server is killed in its middle. */
  child_send (fx->clients[0], "stream r %u 10", transactions);
  wait_seen (fx->watcher, "r_", transactions * 10 / 15);
  child_kill (fx->server.child);

  /* Everything relayed before the kill is in the room's file. */
  acked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_iter_init (&iter, fx->watcher->seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_add (acked, g_strdup (key));
  path = room_file (&fx->server);
  room = load_sqlite (path);
  n_acked = assert_has_rows (room, acked, "the room after SIGKILL");
  assert_transactions_whole (room, "r", transactions, 10);

  /* Restarted on the same port: the clients reconnect by themselves. */
  g_clear_pointer (&fx->server.child, child_free);
  server_start (&fx->server);
  g_free (child_expect (fx->clients[0], "streamed r"));
  assert_converged (fx->watcher, fx->clients, 1);
  g_assert_cmpuint (count_prefix (fx->watcher->store, "r_"), ==, transactions * 10);

  /* A new client's initial sync of all those rows, the server killed as
   * soon as it has joined the room (the room's content on its way). */
  {
    LogWait joined = { fx->server.child, "joined room", fx->server.child->log->len };
    g_autofree char *ready = NULL;

    fx->clients[1] = client_spawn (&fx->server, "N", NULL, NULL, 5, 0);
    g_assert_true (wait_for (log_has, &joined, WAIT_MS));
    child_kill (fx->server.child);
    g_clear_pointer (&fx->server.child, child_free);
    server_start (&fx->server);
    ready = child_expect (fx->clients[1], "ready");
  }
  assert_converged (fx->watcher, fx->clients, 2);

  g_test_message ("killed server: %u rows acknowledged before the kill, all in the room's file; "
                  "%u written, 3 stores converged after the restarts", n_acked,
                  transactions * 10);
  stop_server_and_check_room (fx);
}

/* ======================================================================= */
/* 4. A client that stops reading                                           */
/* ======================================================================= */

#define SLOW_MAX 262144    /* --max-message-size */

/* AddressSanitizer keeps freed memory in quarantine (256 MiB): the
 * server's RSS says nothing about its queues then. */
#if defined(__SANITIZE_ADDRESS__)
# define ASAN_BUILD 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define ASAN_BUILD 1
# endif
#endif
#define CHURN_ROWS 4
#define CHURN_SIZE 8192
#define CHURN_ROUND 5        /* 160 KiB: less than SLOW_MAX */
#define CHURN_ROUNDS 3000    /* 94 MiB at most */

typedef struct {
  Watcher    *watcher;
  const char *row;
  guint       count;
} ChangesWait;

static gboolean
changes_arrived (gpointer data)
{
  ChangesWait *wait = data;

  return GPOINTER_TO_UINT (g_hash_table_lookup (wait->watcher->changes, wait->row)) >= wait->count;
}

static void
test_slow_reader (Fixture       *fx,
                  gconstpointer  data)
{
  Child *writer, *slow;
  LogWait dropped = { NULL, "Too much data queued for client", 0 };
  guint64 rss_before, rss_max = 0;
  guint rounds = 0, changes;
  guint left_before, log_from;
  SocketsWait sockets = { &fx->server, 0 };

  fx->server.extra = g_strsplit ("--max-message-size " G_STRINGIFY (SLOW_MAX), " ", -1);
  server_start (&fx->server);
  dropped.child = fx->server.child;
  fx->watcher = watcher_new (&fx->server, 30);
  writer = fx->clients[0] = client_start (&fx->server, "W", NULL, NULL, 30);
  fx->clients[1] = client_start (&fx->server, "F", NULL, NULL, 30);
  slow = fx->clients[2] = client_start (&fx->server, "S", NULL, NULL, 30);
  child_send (writer, "write x 4 10");
  wait_seen (fx->watcher, "x_", 4);
  assert_converged (fx->watcher, fx->clients, 3);
  rss_before = server_rss_kib (&fx->server);
  left_before = log_count (fx->server.child, "left room");
  log_from = fx->server.child->log->len;
  sockets.count = server_sockets (&fx->server) - 1;

  /* S stops reading. W overwrites the same rows (the room stays small)
   * round after round until the server drops S; after every round the
   * watcher must have every change of it, S being stuck or not. (A round
   * is smaller than the limit, so that the watcher, which runs under
   * valgrind in .ci/valgrind, is never behind by more than the limit
   * itself.) */
  child_signal (slow, SIGSTOP);
  while (rounds < CHURN_ROUNDS && !log_has (&dropped))
    {
      g_autofree char *row = g_strdup_printf ("churn_%u", CHURN_ROWS - 1);
      guint expected = (rounds + 1) * CHURN_ROUND;
      ChangesWait wait = { fx->watcher, row, expected };

      child_send (writer, "churn churn %u %u %u", CHURN_ROUND, CHURN_ROWS, CHURN_SIZE);
      g_free (child_expect (writer, "churned churn"));
      rounds++;
      wait_for (changes_arrived, &wait, WAIT_MS);
      g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (fx->watcher->changes, row)), ==,
                        expected);
      rss_max = MAX (rss_max, server_rss_kib (&fx->server));
    }
  changes = rounds * CHURN_ROUND;

  /* The server closed S (it is still stopped) and reported why. */
  g_assert_true (wait_for (log_has, &dropped, WAIT_MS));
  {
    LogWait left = { fx->server.child, "left room", log_from };

    g_assert_true (wait_for (log_has, &left, WAIT_MS));
  }
  g_assert_cmpuint (log_count (fx->server.child, "left room"), ==, left_before + 1);
  g_assert_cmpuint (log_count (fx->server.child, "Too much data queued"), ==, 1);
  /* ... and let its socket go, S still being stopped. */
  if (!wait_for (sockets_down_to, &sockets, WAIT_MS))
    g_error ("the server still has %u sockets, not %u", server_sockets (&fx->server),
             sockets.count);

  /* Its queue was bounded: the server did not keep what S did not read. */
  g_test_message ("slow reader: %u changes of %u bytes; server RSS %" G_GUINT64_FORMAT
                  " KiB before, at most %" G_GUINT64_FORMAT " KiB while S was stuck",
                  changes, CHURN_ROWS * CHURN_SIZE, rss_before, rss_max);
#ifndef ASAN_BUILD
  g_assert_cmpuint (rss_max, <, rss_before + 32 * 1024);
#endif

  /* Resumed, S reconnects and catches up; F got everything all along. */
  child_signal (slow, SIGCONT);
  assert_converged (fx->watcher, fx->clients, 3);
  stop_server_and_check_room (fx);
}

int
main (int   argc,
      char *argv[])
{
  const char *preload = g_getenv ("LD_PRELOAD");

  g_test_init (&argc, &argv, NULL);
  if (preload != NULL && strstr (preload, "vgpreload") != NULL)
    {
      wait_ms *= 10;
      scale = 10;
    }

  if (g_getenv ("TINYSYNC_SERVER") == NULL)
    {
      g_test_skip ("TINYSYNC_SERVER is not set");
      return g_test_run ();
    }

  g_test_add ("/faults/partition/pause-client", Fixture, NULL, fixture_set_up, test_pause_client,
              fixture_tear_down);
  g_test_add ("/faults/partition/pause-server", Fixture, NULL, fixture_set_up, test_pause_server,
              fixture_tear_down);
  g_test_add ("/faults/partition/pause-server-overflow", Fixture, NULL, fixture_set_up,
              test_pause_server_overflow, fixture_tear_down);
  g_test_add ("/faults/kill-client/sqlite", Fixture, "sqlite", fixture_set_up, test_kill_client,
              fixture_tear_down);
  g_test_add ("/faults/kill-client/file", Fixture, "file", fixture_set_up, test_kill_client,
              fixture_tear_down);
  g_test_add ("/faults/kill-server", Fixture, NULL, fixture_set_up, test_kill_server,
              fixture_tear_down);
  g_test_add ("/faults/slow-reader", Fixture, NULL, fixture_set_up, test_slow_reader,
              fixture_tear_down);

  return g_test_run ();
}
