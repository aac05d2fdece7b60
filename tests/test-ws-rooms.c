/* test-ws-rooms.c: TsWsServer rooms with their own persisted store
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include <libsoup/soup.h>
#include <tinysync/tinysync.h>

typedef struct {
  SoupServer *soup;
  TsWsServer *server;
  char       *base;
  GPtrArray  *errors;
} Server;

static void
on_server_error (TsWsServer *server,
                 GError     *error,
                 gpointer    data)
{
  g_ptr_array_add (((Server *) data)->errors, g_strdup (error->message));
}

static void
server_start (Server     *s,
              const char *data_dir)
{
  g_autoptr(GError) error = NULL;
  GSList *uris;

  s->soup = soup_server_new ("raw-paths", TRUE, NULL);
  s->server = ts_ws_server_new (s->soup);
  ts_ws_server_set_data_dir (s->server, data_dir);
  if (s->errors == NULL)
    s->errors = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (s->server, "ignored-error", G_CALLBACK (on_server_error), s);
  g_assert_true (soup_server_listen_local (s->soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (s->soup);
  g_free (s->base);
  s->base = g_strdup_printf ("ws://127.0.0.1:%d", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static void
on_closed (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_ws_server_close_finish (TS_WS_SERVER (source), result, &error));
  g_assert_no_error (error);
  *(gboolean *) data = TRUE;
}

static void
server_stop (Server *s)
{
  gboolean closed = FALSE;

  ts_ws_server_close_async (s->server, NULL, on_closed, &closed);
  while (!closed)
    g_main_context_iteration (NULL, TRUE);
  soup_server_disconnect (s->soup);
  g_clear_object (&s->server);
  g_clear_object (&s->soup);
}

static gboolean
timeout_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Condition) (gpointer data);

static void
wait_for (Condition   condition,
          gpointer    data,
          const char *what)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (10000, timeout_flag, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (timed_out)
    g_error ("timed out waiting for %s", what);
  g_source_remove (id);
}

typedef struct {
  TsWsSynchronizer *sync;
  GError           *error;
  gboolean          done;
} Connect;

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Connect *c = data;

  c->sync = ts_ws_synchronizer_new_finish (result, &c->error);
  c->done = TRUE;
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error));
  *(gboolean *) data = TRUE;
}

static gboolean
is_true (gpointer data)
{
  return *(gboolean *) data;
}

static gboolean
connect_done (gpointer data)
{
  return ((Connect *) data)->done;
}

/* Connects a store to a room and starts syncing. */
static TsWsSynchronizer *
join (Server           *s,
      const char       *room,
      TsMergeableStore *store)
{
  g_autofree char *uri = g_strdup_printf ("%s/%s", s->base, room);
  Connect c = { 0 };
  gboolean started = FALSE;

  ts_ws_synchronizer_new_async (store, uri, 0.3, NULL, on_connected, &c);
  wait_for (connect_done, &c, "the connection");
  g_assert_no_error (c.error);
  ts_ws_synchronizer_set_reconnect (c.sync, FALSE);
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (c.sync), NULL, NULL, on_started, &started);
  wait_for (is_true, &started, "start_sync");
  return c.sync;
}

static void
leave (TsWsSynchronizer *sync)
{
  ts_synchronizer_destroy (TS_SYNCHRONIZER (sync));
  g_object_unref (sync);
}

typedef struct {
  TsMergeableStore *store;
  const char       *table;
  const char       *row;
} HasRow;

static gboolean
has_row (gpointer data)
{
  HasRow *h = data;

  return ts_mergeable_store_has_row (h->store, h->table, h->row);
}

typedef struct {
  Server *server;
  guint   paths;
} Paths;

static gboolean
paths_are (gpointer data)
{
  Paths *p = data;
  guint paths;

  ts_ws_server_get_stats (p->server->server, &paths, NULL);
  return paths == p->paths;
}

static void
test_room_keeps_data (void)
{
  g_autofree char *dir = g_dir_make_tmp ("tinysync-rooms-XXXXXX", NULL);
  Server s = { 0 };
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) c = ts_mergeable_store_new ("c");
  g_autoptr(TsMergeableStore) d = ts_mergeable_store_new ("d");
  TsWsSynchronizer *sync;
  HasRow h;
  Paths p = { &s, 0 };
  guint32 ha[2], hc[2];
  g_autofree char *file = NULL;

  server_start (&s, dir);

  /* A writes, then leaves: nobody else is in the room */
  sync = join (&s, "shop/pets", a);
  ts_mergeable_store_set_tables_json (a, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}", NULL);
  ts_mergeable_store_set_value_number (a, "open", 1);
  /* the room's store got it once B sees it relayed... here: wait until
   * the store is durable, i.e. a second client receives it from S */
  leave (sync);
  wait_for (paths_are, &p, "the room to close");

  /* B joins the empty room later: it gets A's data from the room's store */
  sync = join (&s, "shop/pets", b);
  h = (HasRow) { b, "pets", "fido" };
  wait_for (has_row, &h, "B to get fido from the room's store");
  g_assert_true (ts_mergeable_store_has_value (b, "open"));
  leave (sync);
  wait_for (paths_are, &p, "the room to close");

  /* the server restarts: C still gets everything */
  server_stop (&s);
  file = g_build_filename (dir, "room-shop%2Fpets.sqlite", NULL);
  g_assert_true (g_file_test (file, G_FILE_TEST_EXISTS));
  server_start (&s, dir);
  sync = join (&s, "shop/pets", c);
  h = (HasRow) { c, "pets", "fido" };
  wait_for (has_row, &h, "C to get fido after a restart");
  ts_mergeable_store_get_mergeable_content_hashes (a, &ha[0], &ha[1]);
  ts_mergeable_store_get_mergeable_content_hashes (c, &hc[0], &hc[1]);
  g_assert_cmpuint (ha[0], ==, hc[0]);
  g_assert_cmpuint (ha[1], ==, hc[1]);

  /* other rooms are separate */
  {
    TsWsSynchronizer *other = join (&s, "elsewhere", d);
    g_usleep (200000);
    while (g_main_context_iteration (NULL, FALSE))
      ;
    g_assert_false (ts_mergeable_store_has_tables (d));
    leave (other);
  }

  leave (sync);
  server_stop (&s);
  g_assert_cmpuint (s.errors->len, ==, 0);
  g_ptr_array_unref (s.errors);
  g_free (s.base);
}

static void
test_live_peers_with_store (void)
{
  g_autofree char *dir = g_dir_make_tmp ("tinysync-rooms-XXXXXX", NULL);
  Server s = { 0 };
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  TsWsSynchronizer *sa, *sb;
  HasRow h;

  server_start (&s, dir);
  sa = join (&s, "live", a);
  sb = join (&s, "live", b);
  for (int i = 0; i < 50; i++)
    {
      char row[16];

      g_snprintf (row, sizeof row, "r%d", i);
      ts_mergeable_store_set_cell_number (i % 2 ? a : b, "t", row, "n", i);
    }
  h = (HasRow) { a, "t", "r48" };
  wait_for (has_row, &h, "A to get B's rows");
  h = (HasRow) { b, "t", "r49" };
  wait_for (has_row, &h, "B to get A's rows");
  leave (sa);
  leave (sb);
  server_stop (&s);
  g_assert_cmpuint (s.errors->len, ==, 0);
  g_ptr_array_unref (s.errors);
  g_free (s.base);
}

static gboolean
file_exists (gpointer data)
{
  return g_file_test (data, G_FILE_TEST_EXISTS);
}

static TsPersister *
create_file_persister (TsWsServer *server,
                       const char *path_id,
                       gpointer    data)
{
  g_autoptr(TsMergeableStore) store = ts_mergeable_store_new (NULL);
  g_autofree char *name = g_strdup_printf ("%s.json", path_id);
  g_autofree char *path = g_build_filename (data, name, NULL);
  g_autoptr(GFile) file = g_file_new_for_path (path);

  return TS_PERSISTER (ts_file_persister_new (store, file));
}

static void
test_create_persister_signal (void)
{
  g_autofree char *dir = g_dir_make_tmp ("tinysync-rooms-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "notes.json", NULL);
  Server s = { 0 };
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  TsWsSynchronizer *sync;
  Paths p = { &s, 0 };
  HasRow h;

  server_start (&s, NULL);
  g_signal_connect (s.server, "create-persister", G_CALLBACK (create_file_persister), dir);
  sync = join (&s, "notes", a);
  ts_mergeable_store_set_cell_string (a, "n", "1", "text", "hello");
  leave (sync);
  wait_for (paths_are, &p, "the room to close");
  /* the room's store saves what it holds once its last client left */
  wait_for (file_exists, path, "the room's file");

  sync = join (&s, "notes", b);
  h = (HasRow) { b, "n", "1" };
  wait_for (has_row, &h, "B to get the note from the file");
  leave (sync);
  server_stop (&s);
  g_ptr_array_unref (s.errors);
  g_free (s.base);
}

/* Path ids too long for a file name of their own (255 bytes) still get
 * a room file, unique to them, that survives a restart. */
static void
test_long_path_id (void)
{
  g_autofree char *dir = g_dir_make_tmp ("tinysync-rooms-XXXXXX", NULL);
  g_autofree char *room = NULL, *other_room = NULL, *digest = NULL, *ending = NULL;
  g_autoptr(TsMergeableStore) a = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) b = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) c = ts_mergeable_store_new ("c");
  g_autoptr(GString) path = g_string_new ("long/");
  g_autoptr(GDir) folder = NULL;
  Server s = { 0 };
  TsWsSynchronizer *sync;
  HasRow h;
  Paths p = { &s, 0 };
  const char *name;
  guint files = 0;

  for (guint i = 0; i < 600; i++)
    g_string_append_c (path, (char) ('a' + i % 26));
  room = g_strdup (path->str);
  other_room = g_strdup_printf ("%sz", path->str);

  server_start (&s, dir);
  sync = join (&s, room, a);
  ts_mergeable_store_set_tables_json (a, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}", NULL);
  /* durable once the room's store relays it to a second client */
  {
    TsWsSynchronizer *second = join (&s, room, b);

    h = (HasRow) { b, "pets", "fido" };
    wait_for (has_row, &h, "B to get fido");
    leave (second);
  }
  leave (sync);
  wait_for (paths_are, &p, "the room to close");
  server_stop (&s);

  /* one file, 255 bytes at most, ending in the path id's SHA-256 */
  digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, room, -1);
  ending = g_strdup_printf ("-%s.sqlite", digest);
  folder = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (folder);
  while ((name = g_dir_read_name (folder)) != NULL)
    if (g_str_has_suffix (name, ".sqlite"))
      {
        g_assert_cmpuint (strlen (name), <=, 255);
        g_assert_true (g_str_has_prefix (name, "room-long%2Fabcdef"));
        g_assert_true (g_str_has_suffix (name, ending));
        files++;
      }
  g_assert_cmpuint (files, ==, 1);

  /* after a restart C gets it; a path id that differs only past the
   * kept part is another room */
  server_start (&s, dir);
  sync = join (&s, other_room, c);
  leave (sync);
  wait_for (paths_are, &p, "the other room to close");
  g_assert_false (ts_mergeable_store_has_tables (c));
  sync = join (&s, room, c);
  h = (HasRow) { c, "pets", "fido" };
  wait_for (has_row, &h, "C to get fido after a restart");
  leave (sync);
  server_stop (&s);
  g_assert_cmpuint (s.errors->len, ==, 0);
  g_ptr_array_unref (s.errors);
  g_free (s.base);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/ws-rooms/keeps-data", test_room_keeps_data);
  g_test_add_func ("/tinysync/ws-rooms/live-peers", test_live_peers_with_store);
  g_test_add_func ("/tinysync/ws-rooms/create-persister", test_create_persister_signal);
  g_test_add_func ("/tinysync/ws-rooms/long-path-id", test_long_path_id);

  return g_test_run ();
}
