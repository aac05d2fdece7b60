/* faults-client.c: one TsWsSynchronizer client in its own process, driven
 * by test-faults through its standard input, so that the test can pause
 * it (SIGSTOP), kill it (SIGKILL) and restart it from its persister.
 *
 *   faults-client URL STORE_ID [--sqlite PATH | --file PATH] [--keepalive S]
 *                 [--max-message-size BYTES]
 *
 * Prints "ready" once its persister (if any) has loaded and it syncs, then
 * answers one command a line:
 *
 *   write PREFIX N SIZE    one transaction setting t/PREFIX_i/v for i < N to
 *                          a string of SIZE bytes; prints "wrote PREFIX"
 *   stream PREFIX K N      K transactions of N rows each (PREFIX_k_i), one a
 *                          millisecond at most; prints "streamed PREFIX"
 *   churn PREFIX K N SIZE  K transactions, one a main loop iteration, each
 *                          setting the same rows PREFIX_i (i < N) to
 *                          filler(SIZE, k + i); prints "churned PREFIX"
 *   stop                   ends a running stream or churn early
 *   hang PREFIX N          starts a transaction, sets N rows, prints
 *                          "hanging" and blocks forever (to be killed)
 *   state                  prints "state TABLES_HASH VALUES_HASH ROWS"
 *   quit                   stops syncing, flushes the persister, exits 0
 *
 * and prints "ignored MESSAGE" for each error the synchronizer reports.
 * Rows always go to table "t". Every line is flushed at once.
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <tinysync/tinysync.h>

typedef struct {
  GMainLoop        *loop;
  TsMergeableStore *store;
  TsPersister      *persister;
  TsWsSynchronizer *synchronizer;
  GDataInputStream *input;
  char             *url;
  guint             keepalive;
  guint             max_message_size;
  int               status;
} Client;

typedef struct {
  Client *client;
  char   *prefix;
  guint   k, count, n, size;
  gboolean churn;
} Stream;

static gboolean stopping;

static void read_next (Client *client);

static void
say (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
}

static void
fail (Client     *client,
      const char *what,
      GError     *error)
{
  say ("error %s: %s", what, error ? error->message : "?");
  client->status = 1;
  g_main_loop_quit (client->loop);
}

static char *
filler (guint size,
        guint i)
{
  char *s = g_malloc (size + 1);

  for (guint j = 0; j < size; j++)
    s[j] = 'a' + (char) ((i + j) % 26);
  s[size] = '\0';
  return s;
}

static void
set_rows (Client     *client,
          const char *prefix,
          guint       n,
          guint       size)
{
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *row = g_strdup_printf ("%s_%u", prefix, i);

      if (size == 0)
        ts_mergeable_store_set_cell_number (client->store, "t", row, "v", i);
      else
        {
          g_autofree char *value = filler (size, i);

          ts_mergeable_store_set_cell_string (client->store, "t", row, "v", value);
        }
    }
}

static gboolean
stream_step (gpointer data)
{
  Stream *stream = data;
  g_autofree char *prefix = NULL;

  if (stream->k == stream->count || stopping)
    {
      say ("%s %s", stream->churn ? "churned" : "streamed", stream->prefix);
      g_free (stream->prefix);
      g_free (stream);
      return G_SOURCE_REMOVE;
    }
  ts_mergeable_store_start_transaction (stream->client->store);
  if (stream->churn)
    {
      for (guint i = 0; i < stream->n; i++)
        {
          g_autofree char *row = g_strdup_printf ("%s_%u", stream->prefix, i);
          g_autofree char *value = filler (stream->size, stream->k + i);

          ts_mergeable_store_set_cell_string (stream->client->store, "t", row, "v", value);
        }
      stream->k++;
    }
  else
    {
      prefix = g_strdup_printf ("%s_%u", stream->prefix, stream->k++);
      set_rows (stream->client, prefix, stream->n, 0);
    }
  ts_mergeable_store_finish_transaction (stream->client->store);
  return G_SOURCE_CONTINUE;
}

static void
flushed_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;

  if (!ts_persister_flush_finish (TS_PERSISTER (source), result, &error))
    fail (client, "flush", error);
  g_main_loop_quit (client->loop);
}

static void
quit (Client *client)
{
  if (client->synchronizer != NULL)
    ts_synchronizer_destroy (TS_SYNCHRONIZER (client->synchronizer));
  if (client->persister != NULL)
    ts_persister_flush_async (client->persister, NULL, flushed_cb, client);
  else
    g_main_loop_quit (client->loop);
}

static void
command (Client     *client,
         const char *line)
{
  g_auto(GStrv) words = g_strsplit (line, " ", -1);
  guint n = g_strv_length (words);

  if (n == 4 && strcmp (words[0], "write") == 0)
    {
      ts_mergeable_store_start_transaction (client->store);
      set_rows (client, words[1], atoi (words[2]), atoi (words[3]));
      ts_mergeable_store_finish_transaction (client->store);
      say ("wrote %s", words[1]);
    }
  else if (n == 4 && strcmp (words[0], "stream") == 0)
    {
      Stream *stream = g_new0 (Stream, 1);

      stream->client = client;
      stream->prefix = g_strdup (words[1]);
      stream->count = atoi (words[2]);
      stream->n = atoi (words[3]);
      stopping = FALSE;
      /* One a millisecond at most, so that a kill lands in the middle. */
      g_timeout_add (1, stream_step, stream);
    }
  else if (n == 5 && strcmp (words[0], "churn") == 0)
    {
      Stream *stream = g_new0 (Stream, 1);

      stream->client = client;
      stream->prefix = g_strdup (words[1]);
      stream->count = atoi (words[2]);
      stream->n = atoi (words[3]);
      stream->size = atoi (words[4]);
      stream->churn = TRUE;
      stopping = FALSE;
      g_idle_add (stream_step, stream);
    }
  else if (n == 1 && strcmp (words[0], "stop") == 0)
    stopping = TRUE;
  else if (n == 3 && strcmp (words[0], "hang") == 0)
    {
      ts_mergeable_store_start_transaction (client->store);
      set_rows (client, words[1], atoi (words[2]), 0);
      say ("hanging");
      for (;;)
        pause ();
    }
  else if (n == 1 && strcmp (words[0], "state") == 0)
    {
      guint32 tables_hash = 0, values_hash = 0;

      ts_mergeable_store_get_mergeable_content_hashes (client->store, &tables_hash, &values_hash);
      say ("state %u %u %u", tables_hash, values_hash,
           ts_mergeable_store_get_row_count (client->store, "t"));
    }
  else if (n == 1 && strcmp (words[0], "quit") == 0)
    {
      quit (client);
      return;
    }
  else
    say ("error unknown command: %s", line);
  read_next (client);
}

static void
line_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source),
                                                                     result, NULL, &error);

  if (line == NULL)
    {
      /* The test went away: stop as after "quit". */
      quit (client);
      return;
    }
  command (client, line);
}

static void
read_next (Client *client)
{
  g_data_input_stream_read_line_async (client->input, G_PRIORITY_DEFAULT, NULL, line_cb, client);
}

static void
synced_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;

  if (!ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error))
    {
      fail (client, "start sync", error);
      return;
    }
  say ("ready");
  read_next (client);
}

static void
ignored_error_cb (TsSynchronizer *synchronizer,
                  GError         *error,
                  Client         *client)
{
  say ("ignored %s", error->message);
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;

  client->synchronizer = ts_ws_synchronizer_new_finish (result, &error);
  if (client->synchronizer == NULL)
    {
      fail (client, "connect", error);
      return;
    }
  ts_ws_synchronizer_set_keepalive_interval (client->synchronizer, client->keepalive);
  if (client->max_message_size > 0)
    ts_ws_synchronizer_set_max_message_size (client->synchronizer, client->max_message_size);
  g_signal_connect (client->synchronizer, "ignored-error", G_CALLBACK (ignored_error_cb), client);
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (client->synchronizer), NULL, NULL,
                                    synced_cb, client);
}

static void
connect_now (Client *client)
{
  ts_ws_synchronizer_new_async (client->store, client->url, 5, NULL, connected_cb, client);
}

static void
auto_saving_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;

  if (!ts_persister_start_auto_save_finish (TS_PERSISTER (source), result, &error))
    {
      fail (client, "auto-save", error);
      return;
    }
  connect_now (client);
}

static void
loaded_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Client *client = data;
  g_autoptr(GError) error = NULL;

  if (!ts_persister_load_finish (TS_PERSISTER (source), result, &error))
    {
      fail (client, "load", error);
      return;
    }
  ts_persister_start_auto_save_async (client->persister, NULL, auto_saving_cb, client);
}

int
main (int   argc,
      char *argv[])
{
  Client client = { 0 };
  g_autoptr(GInputStream) in = NULL;
  const char *sqlite = NULL, *file = NULL;

  if (argc < 3)
    {
      g_printerr ("usage: %s URL STORE_ID [--sqlite PATH | --file PATH] [--keepalive S] "
                  "[--max-message-size BYTES]\n", argv[0]);
      return 2;
    }
  client.url = argv[1];
  client.keepalive = 30;
  for (int i = 3; i + 1 < argc; i += 2)
    {
      if (strcmp (argv[i], "--sqlite") == 0)
        sqlite = argv[i + 1];
      else if (strcmp (argv[i], "--file") == 0)
        file = argv[i + 1];
      else if (strcmp (argv[i], "--keepalive") == 0)
        client.keepalive = atoi (argv[i + 1]);
      else if (strcmp (argv[i], "--max-message-size") == 0)
        client.max_message_size = atoi (argv[i + 1]);
      else
        {
          g_printerr ("unknown option %s\n", argv[i]);
          return 2;
        }
    }

  /* The test closes our pipes when it fails: no SIGPIPE death then. */
  signal (SIGPIPE, SIG_IGN);

  client.loop = g_main_loop_new (NULL, FALSE);
  client.store = ts_mergeable_store_new (argv[2]);
  in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  client.input = g_data_input_stream_new (in);

  if (sqlite != NULL)
    {
      g_autoptr(GError) error = NULL;

      client.persister = TS_PERSISTER (ts_sqlite_persister_new (client.store, sqlite, &error));
      if (client.persister == NULL)
        {
          say ("error sqlite: %s", error->message);
          return 1;
        }
    }
  else if (file != NULL)
    {
      g_autoptr(GFile) f = g_file_new_for_path (file);

      client.persister = TS_PERSISTER (ts_file_persister_new (client.store, f));
    }

  if (client.persister != NULL)
    ts_persister_load_async (client.persister, NULL, NULL, loaded_cb, &client);
  else
    connect_now (&client);

  g_main_loop_run (client.loop);

  g_clear_object (&client.synchronizer);
  g_clear_object (&client.persister);
  g_clear_object (&client.input);
  g_clear_object (&client.store);
  g_main_loop_unref (client.loop);
  return client.status;
}
