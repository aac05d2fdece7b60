/* ws-server-relay.c: a TsWsServer for the interop test ws-server.mjs
 *
 * SPDX-License-Identifier: MIT
 *
 *   ws-server-relay [REQUEST_TIMEOUT_SECONDS]
 *
 * Listens on 127.0.0.1 (a free port) and prints, one per line on stdout:
 *
 *   port N
 *   path-added PATH | path-removed PATH
 *   client-added PATH ID | client-removed PATH ID
 *   ignored-error MESSAGE
 *   stats PATHS CLIENTS            (after every change)
 *
 * with PATH, ID and MESSAGE escaped by g_strescape(). Exits, after
 * ts_ws_server_destroy(), when stdin reaches end of file.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libsoup/soup.h>

#include "tinysync/tinysync.h"

static void
print_line (const char *kind,
            const char *a,
            const char *b)
{
  g_autofree char *ea = a ? g_strescape (a, NULL) : NULL;
  g_autofree char *eb = b ? g_strescape (b, NULL) : NULL;

  printf ("%s%s%s%s%s\n", kind, ea ? " " : "", ea ? ea : "", eb ? " " : "", eb ? eb : "");
  fflush (stdout);
}

static void
print_stats (TsWsServer *server)
{
  guint paths, clients;

  ts_ws_server_get_stats (server, &paths, &clients);
  printf ("stats %u %u\n", paths, clients);
  fflush (stdout);
}

static void
on_path (TsWsServer *server, const char *path_id, gpointer kind)
{
  print_line (kind, path_id, NULL);
  print_stats (server);
}

static void
on_client (TsWsServer *server, const char *path_id, const char *client_id, gpointer kind)
{
  print_line (kind, path_id, client_id);
  print_stats (server);
}

static void
on_ignored_error (TsWsServer *server, GError *error, gpointer data)
{
  print_line ("ignored-error", error->message, NULL);
}

static gboolean
on_stdin (int fd, GIOCondition condition, gpointer data)
{
  char buf[256];
  gssize n = read (fd, buf, sizeof buf);

  if (n > 0)
    return G_SOURCE_CONTINUE;
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(SoupServer) soup = soup_server_new ("raw-paths", TRUE, NULL);
  g_autoptr(TsWsServer) server = ts_ws_server_new (soup);
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GError) error = NULL;
  GSList *uris;

  if (argc > 1)
    ts_ws_server_set_request_timeout (server, g_ascii_strtod (argv[1], NULL));

  g_signal_connect (server, "path-added", G_CALLBACK (on_path), (gpointer) "path-added");
  g_signal_connect (server, "path-removed", G_CALLBACK (on_path), (gpointer) "path-removed");
  g_signal_connect (server, "client-added", G_CALLBACK (on_client), (gpointer) "client-added");
  g_signal_connect (server, "client-removed", G_CALLBACK (on_client), (gpointer) "client-removed");
  g_signal_connect (server, "ignored-error", G_CALLBACK (on_ignored_error), NULL);

  if (!soup_server_listen_local (soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error))
    {
      fprintf (stderr, "ws-server-relay: %s\n", error->message);
      return 1;
    }
  uris = soup_server_get_uris (soup);
  printf ("port %d\n", g_uri_get_port (uris->data));
  fflush (stdout);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  g_unix_fd_add (0, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, loop);
  g_main_loop_run (loop);

  ts_ws_server_destroy (server);
  /* Let the closing handshakes go out. */
  for (int i = 0; i < 100 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  soup_server_disconnect (soup);
  return 0;
}
