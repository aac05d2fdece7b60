/* seed.c: TinyBase's synchronization example, in C
 *
 * SPDX-License-Identifier: MIT
 *
 * A TsWsServer relays a room, "petShop"; two stores join it through
 * TsWsSynchronizers, each adds a pet, and both end up with both pets:
 *
 *   const server = createWsServer (new WebSocketServer ({port: 8048}));
 *   const synchronizer1 = await createWsSynchronizer (store1, new WebSocket (url));
 *   await synchronizer1.startSync ();
 *   ...
 *   store1.setTables ({pets: {fido: {species: 'dog'}}});
 *   store2.setTables ({pets: {felix: {species: 'cat'}}});
 *
 * TinyBase clients (Node, browsers) can join the same room: the server
 * and the synchronizers speak TinyBase 10's wire protocol.
 *
 * Build outside the tree with:
 *   cc seed.c $(pkg-config --cflags --libs tinysync-1.0)
 */
#include <stdlib.h>
#include <string.h>

#include <libsoup/soup.h>
#include <tinysync/tinysync.h>

typedef struct {
  GMainLoop        *loop;
  TsWsServer       *server;
  char             *uri;
  TsMergeableStore *store1;
  TsMergeableStore *store2;
  TsWsSynchronizer *sync1;
  TsWsSynchronizer *sync2;
  guint             poll_id;
  int               status;
} Seed;

static void
fail (Seed         *seed,
      const GError *error)
{
  g_printerr ("seed: %s\n", error->message);
  seed->status = EXIT_FAILURE;
  g_main_loop_quit (seed->loop);
}

static gboolean
has_both_pets (TsMergeableStore *store)
{
  return ts_mergeable_store_has_row (store, "pets", "fido") &&
         ts_mergeable_store_has_row (store, "pets", "felix");
}

/* 5. Both stores converged: print them. */
static gboolean
check_converged (gpointer user_data)
{
  Seed *seed = user_data;
  g_autofree char *tables1 = NULL;
  g_autofree char *tables2 = NULL;

  if (!has_both_pets (seed->store1) || !has_both_pets (seed->store2))
    return G_SOURCE_CONTINUE;

  tables1 = ts_mergeable_store_get_tables_json (seed->store1);
  tables2 = ts_mergeable_store_get_tables_json (seed->store2);
  g_print ("store1: %s\n", tables1);
  g_print ("store2: %s\n", tables2);

  seed->poll_id = 0;
  g_main_loop_quit (seed->loop);
  return G_SOURCE_REMOVE;
}

/* 4. Both are syncing: each store gets a pet; the synchronizers tell the
 * other side. */
static void
on_sync2_started (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Seed *seed = user_data;
  g_autoptr(GError) error = NULL;

  if (!ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error))
    {
      fail (seed, error);
      return;
    }
  if (!ts_mergeable_store_set_tables_json (seed->store1, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}", &error) ||
      !ts_mergeable_store_set_tables_json (seed->store2, "{\"pets\":{\"felix\":{\"species\":\"cat\"}}}", &error))
    {
      fail (seed, error);
      return;
    }
  seed->poll_id = g_timeout_add (20, check_converged, seed);
}

/* 3. The first one in an empty room waits for an answer (one request
 * timeout, a second) before it starts; then the second one starts. */
static void
on_sync1_started (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Seed *seed = user_data;
  g_autoptr(GError) error = NULL;

  if (!ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error))
    {
      fail (seed, error);
      return;
    }
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (seed->sync2), NULL, NULL,
                                    on_sync2_started, seed);
}

/* 2. Both synchronizers are connected. */
static void
on_created (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Seed *seed = user_data;
  g_autoptr(GError) error = NULL;
  TsWsSynchronizer *sync = ts_ws_synchronizer_new_finish (result, &error);

  if (sync == NULL)
    {
      fail (seed, error);
      return;
    }
  if (ts_synchronizer_get_store (TS_SYNCHRONIZER (sync)) == seed->store1)
    seed->sync1 = sync;
  else
    seed->sync2 = sync;
  if (seed->sync1 != NULL && seed->sync2 != NULL)
    ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (seed->sync1), NULL, NULL,
                                      on_sync1_started, seed);
}

static gboolean
on_timeout (gpointer user_data)
{
  Seed *seed = user_data;

  g_printerr ("seed: the stores did not converge in time\n");
  seed->status = EXIT_FAILURE;
  g_main_loop_quit (seed->loop);
  return G_SOURCE_REMOVE;
}

static gboolean
is_empty (TsWsServer *server)
{
  guint paths = 0;
  guint clients = 0;

  ts_ws_server_get_stats (server, &paths, &clients);
  return paths == 0 && clients == 0;
}

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(SoupServer) soup_server = NULL;
  g_autoptr(GError) error = NULL;
  GSList *uris;
  Seed seed = { 0 };
  guint timeout_id;

  seed.loop = g_main_loop_new (NULL, FALSE);

  /* 1. A server on a free local port, and two stores. */
  soup_server = soup_server_new ("raw-paths", TRUE, NULL);
  seed.server = ts_ws_server_new (soup_server);
  if (!soup_server_listen_local (soup_server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error))
    {
      g_printerr ("seed: %s\n", error->message);
      return EXIT_FAILURE;
    }
  uris = soup_server_get_uris (soup_server);
  seed.uri = g_strdup_printf ("ws://127.0.0.1:%d/petShop", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  seed.store1 = ts_mergeable_store_new ("store1");
  seed.store2 = ts_mergeable_store_new ("store2");
  ts_ws_synchronizer_new_async (seed.store1, seed.uri, 1, NULL, on_created, &seed);
  ts_ws_synchronizer_new_async (seed.store2, seed.uri, 1, NULL, on_created, &seed);

  timeout_id = g_timeout_add_seconds (20, on_timeout, &seed);
  seed.status = EXIT_SUCCESS;
  g_main_loop_run (seed.loop);
  g_source_remove (timeout_id);
  if (seed.poll_id != 0)
    g_source_remove (seed.poll_id);

  /* 6. Leave the room, stop the server. */
  if (seed.sync1 != NULL)
    ts_synchronizer_destroy (TS_SYNCHRONIZER (seed.sync1));
  if (seed.sync2 != NULL)
    ts_synchronizer_destroy (TS_SYNCHRONIZER (seed.sync2));
  {
    gboolean waited = FALSE;

    timeout_id = g_timeout_add_seconds (5, set_flag, &waited);
    while (!is_empty (seed.server) && !waited)
      g_main_context_iteration (NULL, TRUE);
    if (!waited)
      g_source_remove (timeout_id);
  }
  ts_ws_server_destroy (seed.server);

  g_clear_object (&seed.sync1);
  g_clear_object (&seed.sync2);
  g_clear_object (&seed.store1);
  g_clear_object (&seed.store2);
  g_clear_object (&seed.server);
  g_free (seed.uri);
  g_main_loop_unref (seed.loop);
  return seed.status;
}
