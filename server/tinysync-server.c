/* tinysync-server: a TinyBase-compatible sync server that keeps its rooms
 *
 * SPDX-License-Identifier: MIT
 *
 * Serves TinyBase WsSynchronizer clients (and tinysync ones) over
 * WebSockets, one room per URL path; every room keeps its own store in
 * an SQLite file under the data folder, so rooms survive restarts and
 * crashes. SIGINT and SIGTERM save everything and exit 0.
 *
 * Security options (all off by default, as TinyBase; doc/threat-model.md):
 *
 * - --token-file FILE: one token per line (blank lines and lines starting
 *   with # are skipped). A client must present one, as
 *   `Authorization: Bearer TOKEN` or as the query parameter `?token=TOKEN`
 *   (browsers cannot set headers on a WebSocket; a Bearer header wins
 *   over the query); otherwise it gets 401. Checked before the path.
 *   Tokens are compared by their SHA-256 digests, in constant time, and
 *   every token is compared every time. The file is read at start-up.
 * - --max-connections-per-ip N: TsWsServer:max-connections-per-ip (429).
 * - --max-messages-per-second N: TsWsServer:max-messages-per-second
 *   (close 1008 `tinysync:rate`).
 * - --max-path-length N: a path id (the request path, still
 *   percent-encoded, without the leading / and the query) longer than N
 *   bytes, or holding a control character (U+0000 to U+001F, U+007F), raw
 *   or percent-encoded, gets 400.
 */
#include "config.h"

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libsoup/soup.h>
#include <tinysync/tinysync.h>

#define TOKEN_DIGEST_SIZE 32  /* SHA-256 */

typedef struct {
  GMainLoop  *loop;
  SoupServer *soup;
  TsWsServer *server;
  int         max_clients;
  int         max_rooms;
  guint       clients;
  gboolean    stopping;
  int         status;
  GPtrArray  *tokens;       /* GBytes: SHA-256 digests, NULL: no tokens */
  guint       max_path_length;
} Daemon;

static char *opt_host = NULL;
static int opt_port = 8047;
static char *opt_data_dir = NULL;
static char *opt_tls_cert = NULL;
static char *opt_tls_key = NULL;
static int opt_max_clients = 0;
static int opt_max_rooms = 0;
static gint64 opt_max_message_size = TS_WS_SERVER_DEFAULT_MAX_MESSAGE_SIZE;
static gboolean opt_verbose = FALSE;
static gboolean opt_version = FALSE;
static gboolean opt_no_persist = FALSE;
static char *opt_token_file = NULL;
static int opt_max_connections_per_ip = 0;
static int opt_max_messages_per_second = 0;
static int opt_max_path_length = 0;

static const GOptionEntry entries[] = {
  { "host", 0, 0, G_OPTION_ARG_STRING, &opt_host,
    N_("Address to listen on (default 127.0.0.1)"), N_("ADDRESS") },
  { "port", 'p', 0, G_OPTION_ARG_INT, &opt_port,
    N_("Port to listen on, 0 for any free port (default 8047)"), N_("PORT") },
  { "data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_data_dir,
    N_("Folder where rooms are kept (default $XDG_DATA_HOME/tinysync-server)"), N_("DIR") },
  { "no-persist", 0, 0, G_OPTION_ARG_NONE, &opt_no_persist,
    N_("Relay only: keep no room data"), NULL },
  { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_cert,
    N_("PEM certificate file: serve wss:// instead of ws://"), N_("FILE") },
  { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_key,
    N_("PEM private key file for --tls-cert"), N_("FILE") },
  { "max-clients", 0, 0, G_OPTION_ARG_INT, &opt_max_clients,
    N_("Refuse connections beyond this many (0: no limit)"), N_("N") },
  { "max-rooms", 0, 0, G_OPTION_ARG_INT, &opt_max_rooms,
    N_("Refuse connections that would open more rooms (0: no limit)"), N_("N") },
  { "max-message-size", 0, 0, G_OPTION_ARG_INT64, &opt_max_message_size,
    N_("Largest message in bytes (default 16 MiB, as TinyBase)"), N_("BYTES") },
  { "token-file", 0, 0, G_OPTION_ARG_FILENAME, &opt_token_file,
    N_("Accept only clients presenting a token of this file (one per line) as "
       "“Authorization: Bearer TOKEN” or “?token=TOKEN”"), N_("FILE") },
  { "max-connections-per-ip", 0, 0, G_OPTION_ARG_INT, &opt_max_connections_per_ip,
    N_("Refuse connections beyond this many from one address (0: no limit)"), N_("N") },
  { "max-messages-per-second", 0, 0, G_OPTION_ARG_INT, &opt_max_messages_per_second,
    N_("Close clients sending more messages per second than this (0: no limit)"), N_("N") },
  { "max-path-length", 0, 0, G_OPTION_ARG_INT, &opt_max_path_length,
    N_("Refuse room paths longer than this or holding control characters (0: no check)"),
    N_("BYTES") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
    N_("Log every connection and room"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
    N_("Print the version and exit"), NULL },
  { NULL }
};

static void
log_event (GLogLevelFlags  level,
           const char     *event,
           const char     *path_id,
           const char     *client_id,
           const char     *message)
{
  g_log_structured ("tinysync-server", level,
                    "TINYSYNC_EVENT", event,
                    "TINYSYNC_PATH", path_id ? path_id : "",
                    "TINYSYNC_CLIENT", client_id ? client_id : "",
                    "MESSAGE", "%s", message);
}

static void
on_path_added (TsWsServer *server,
               const char *path_id,
               Daemon     *d)
{
  g_autofree char *msg = g_strdup_printf ("room “%s” opened", path_id);

  log_event (G_LOG_LEVEL_INFO, "room-opened", path_id, NULL, msg);
}

static void
on_path_removed (TsWsServer *server,
                 const char *path_id,
                 Daemon     *d)
{
  g_autofree char *msg = g_strdup_printf ("room “%s” closed", path_id);

  log_event (G_LOG_LEVEL_INFO, "room-closed", path_id, NULL, msg);
}

static void
on_client_added (TsWsServer *server,
                 const char *path_id,
                 const char *client_id,
                 Daemon     *d)
{
  g_autofree char *msg = g_strdup_printf ("client %s joined room “%s”", client_id, path_id);

  d->clients++;
  log_event (G_LOG_LEVEL_INFO, "client-joined", path_id, client_id, msg);
}

static void
on_client_removed (TsWsServer *server,
                   const char *path_id,
                   const char *client_id,
                   Daemon     *d)
{
  g_autofree char *msg = g_strdup_printf ("client %s left room “%s”", client_id, path_id);

  d->clients--;
  log_event (G_LOG_LEVEL_INFO, "client-left", path_id, client_id, msg);
}

static void
on_ignored_error (TsWsServer *server,
                  GError     *error,
                  Daemon     *d)
{
  log_event (G_LOG_LEVEL_WARNING, "error", NULL, NULL, error->message);
}

static gboolean
on_accept_client (TsWsServer         *server,
                  const char         *path_id,
                  SoupMessageHeaders *headers,
                  Daemon             *d)
{
  guint paths = 0, clients = 0;
  g_auto(GStrv) rooms = NULL;

  ts_ws_server_get_stats (server, &paths, &clients);
  if (d->max_clients > 0 && d->clients >= (guint) d->max_clients)
    {
      log_event (G_LOG_LEVEL_WARNING, "refused", path_id, NULL,
                 "connection refused: --max-clients reached");
      return FALSE;
    }
  if (d->max_rooms > 0 && paths >= (guint) d->max_rooms)
    {
      rooms = ts_ws_server_get_path_ids (server);
      if (!g_strv_contains ((const char * const *) rooms, path_id))
        {
          log_event (G_LOG_LEVEL_WARNING, "refused", path_id, NULL,
                     "connection refused: --max-rooms reached");
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- Tokens ------------------------------------------------------------- */

static GBytes *
token_digest (const char *token,
              gsize       len)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 digest[TOKEN_DIGEST_SIZE];
  gsize digest_len = sizeof digest;

  g_checksum_update (checksum, (const guchar *) token, len);
  g_checksum_get_digest (checksum, digest, &digest_len);
  return g_bytes_new (digest, digest_len);
}

static GPtrArray *
load_tokens (const char  *path,
             GError     **error)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GPtrArray) tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GStatBuf st;

  if (!g_file_get_contents (path, &contents, NULL, error))
    return NULL;
  if (g_stat (path, &st) == 0 && (st.st_mode & 0077) != 0)
    g_printerr (_("Warning: %s can be read by other users; make it mode 0600\n"), path);
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *line = g_strstrip (lines[i]);

      if (line[0] == '\0' || line[0] == '#')
        continue;
      g_ptr_array_add (tokens, token_digest (line, strlen (line)));
    }
  explicit_bzero (contents, strlen (contents));
  if (tokens->len == 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("%s holds no token"), path);
      return NULL;
    }
  return g_steal_pointer (&tokens);
}

/* Compares against every token, whatever matches, in time that depends
 * only on the number of tokens. */
static gboolean
token_valid (Daemon     *d,
             const char *token,
             gsize       len)
{
  g_autoptr(GBytes) digest = token_digest (token, len);
  const guint8 *a = g_bytes_get_data (digest, NULL);
  guint found = 0;

  for (guint i = 0; i < d->tokens->len; i++)
    {
      const guint8 *b = g_bytes_get_data (g_ptr_array_index (d->tokens, i), NULL);
      guint8 diff = 0;

      for (guint j = 0; j < TOKEN_DIGEST_SIZE; j++)
        diff |= a[j] ^ b[j];
      found |= (guint) (diff == 0);
    }
  return found != 0;
}

/* The token of the request, from the Authorization header or the query;
 * NULL when it has none. */
static char *
request_token (SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *auth = soup_message_headers_get_one (headers, "Authorization");
  const char *query = g_uri_get_query (soup_server_message_get_uri (msg));

  if (auth != NULL && g_ascii_strncasecmp (auth, "Bearer ", 7) == 0)
    return g_strstrip (g_strdup (auth + 7));
  if (query != NULL)
    {
      g_autoptr(GHashTable) params = g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, NULL);
      const char *token = params ? g_hash_table_lookup (params, "token") : NULL;

      if (token != NULL)
        return g_strdup (token);
    }
  return NULL;
}

static gboolean
path_id_valid (const char *path_id,
               guint       max_length)
{
  gsize len = strlen (path_id);

  if (len > max_length)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) path_id[i];

      if (c < 0x20 || c == 0x7f)
        return FALSE;
      /* percent-encoded control characters: %00-%1F, %7F */
      if (c == '%' && i + 2 < len && g_ascii_isxdigit (path_id[i + 1]) &&
          g_ascii_isxdigit (path_id[i + 2]))
        {
          int v = g_ascii_xdigit_value (path_id[i + 1]) * 16 + g_ascii_xdigit_value (path_id[i + 2]);

          if (v < 0x20 || v == 0x7f)
            return FALSE;
        }
    }
  return TRUE;
}

static gboolean
on_accept_request (TsWsServer        *server,
                   const char        *path_id,
                   SoupServerMessage *msg,
                   Daemon            *d)
{
  const char *remote = soup_server_message_get_remote_host (msg);

  if (d->tokens != NULL)
    {
      g_autofree char *token = request_token (msg);

      if (token == NULL || !token_valid (d, token, strlen (token)))
        {
          g_autofree char *text = g_strdup_printf ("connection from %s refused: %s token",
                                                   remote ? remote : "?",
                                                   token ? "invalid" : "no");

          if (token != NULL)
            explicit_bzero (token, strlen (token));
          log_event (G_LOG_LEVEL_WARNING, "refused", path_id, NULL, text);
          soup_server_message_set_status (msg, SOUP_STATUS_UNAUTHORIZED, NULL);
          soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                        "WWW-Authenticate", "Bearer realm=\"tinysync\"");
          return FALSE;
        }
      explicit_bzero (token, strlen (token));
    }
  /* After the token: an unauthenticated client learns nothing more. */
  if (d->max_path_length > 0 && !path_id_valid (path_id, d->max_path_length))
    {
      log_event (G_LOG_LEVEL_WARNING, "refused", NULL, NULL,
                 "connection refused: invalid or too long path");
      soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, NULL);
      return FALSE;
    }
  return TRUE;
}

static void
on_closed (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Daemon *d = data;
  g_autoptr(GError) error = NULL;

  if (!ts_ws_server_close_finish (TS_WS_SERVER (source), result, &error))
    {
      log_event (G_LOG_LEVEL_WARNING, "error", NULL, NULL, error->message);
      d->status = EXIT_FAILURE;
    }
  log_event (G_LOG_LEVEL_MESSAGE, "stopped", NULL, NULL, "stopped; every room is saved");
  g_main_loop_quit (d->loop);
}

static gboolean
on_signal (gpointer data)
{
  Daemon *d = data;

  if (d->stopping)
    return G_SOURCE_CONTINUE;
  d->stopping = TRUE;
  log_event (G_LOG_LEVEL_MESSAGE, "stopping", NULL, NULL, "stopping: saving every room");
  soup_server_disconnect (d->soup);
  ts_ws_server_close_async (d->server, NULL, on_closed, d);
  return G_SOURCE_CONTINUE;
}

static gboolean
set_tls (SoupServer  *soup,
         GError     **error)
{
  g_autoptr(GTlsCertificate) cert = NULL;

  if (opt_tls_cert == NULL && opt_tls_key == NULL)
    return TRUE;
  if (opt_tls_cert == NULL || opt_tls_key == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--tls-cert and --tls-key go together"));
      return FALSE;
    }
  cert = g_tls_certificate_new_from_files (opt_tls_cert, opt_tls_key, error);
  if (cert == NULL)
    return FALSE;
  g_object_set (soup, "tls-certificate", cert, NULL);
  return TRUE;
}

static gboolean
start_listening (Daemon   *d,
        GError  **error)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (opt_host);
  g_autoptr(GSocketAddress) address = NULL;
  SoupServerListenOptions options = opt_tls_cert ? SOUP_SERVER_LISTEN_HTTPS : 0;
  GSList *uris;

  if (inet == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("“%s” is not an IP address"), opt_host);
      return FALSE;
    }
  address = g_inet_socket_address_new (inet, opt_port);
  if (!soup_server_listen (d->soup, address, options, error))
    return FALSE;

  uris = soup_server_get_uris (d->soup);
  for (GSList *l = uris; l != NULL; l = l->next)
    {
      GUri *uri = l->data;
      g_autofree char *ws = g_strdup_printf ("%s://%s:%d/",
                                             opt_tls_cert ? "wss" : "ws",
                                             g_uri_get_host (uri), g_uri_get_port (uri));
      /* the one line a script waits for */
      g_print ("Listening on %s\n", ws);
      fflush (stdout);
    }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  Daemon d = { 0 };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
    _("Serves TinyBase-compatible sync rooms over WebSockets and keeps their data."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (opt_version)
    {
      g_print ("tinysync-server %s\n", PACKAGE_VERSION);
      return 0;
    }
  if (opt_verbose)
    g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
  if (opt_host == NULL)
    opt_host = g_strdup ("127.0.0.1");
  if (opt_data_dir == NULL && !opt_no_persist)
    opt_data_dir = g_build_filename (g_get_user_data_dir (), "tinysync-server", NULL);
  if (opt_max_connections_per_ip < 0 || opt_max_messages_per_second < 0 ||
      opt_max_path_length < 0)
    {
      g_printerr (_("--max-connections-per-ip, --max-messages-per-second and "
                    "--max-path-length cannot be negative\n"));
      return 2;
    }
  if (opt_token_file != NULL)
    {
      d.tokens = load_tokens (opt_token_file, &error);
      if (d.tokens == NULL)
        {
          g_printerr ("%s\n", error->message);
          return 2;
        }
    }
  d.max_path_length = (guint) opt_max_path_length;
  if (opt_max_message_size < 1 || opt_max_message_size > G_MAXUINT32)
    {
      g_printerr (_("--max-message-size must be between 1 and %u\n"), G_MAXUINT32);
      return 2;
    }

  d.loop = g_main_loop_new (NULL, FALSE);
  d.max_clients = opt_max_clients;
  d.max_rooms = opt_max_rooms;
  d.soup = soup_server_new ("raw-paths", TRUE, "server-header", "tinysync-server", NULL);
  if (!set_tls (d.soup, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  d.server = ts_ws_server_new (d.soup);
  ts_ws_server_set_max_message_size (d.server, (guint64) opt_max_message_size);
  ts_ws_server_set_max_connections_per_ip (d.server, (guint) opt_max_connections_per_ip);
  ts_ws_server_set_max_messages_per_second (d.server, (guint) opt_max_messages_per_second);
  if (!opt_no_persist)
    ts_ws_server_set_data_dir (d.server, opt_data_dir);
  g_signal_connect (d.server, "path-added", G_CALLBACK (on_path_added), &d);
  g_signal_connect (d.server, "path-removed", G_CALLBACK (on_path_removed), &d);
  g_signal_connect (d.server, "client-added", G_CALLBACK (on_client_added), &d);
  g_signal_connect (d.server, "client-removed", G_CALLBACK (on_client_removed), &d);
  g_signal_connect (d.server, "ignored-error", G_CALLBACK (on_ignored_error), &d);
  g_signal_connect (d.server, "accept-client", G_CALLBACK (on_accept_client), &d);
  g_signal_connect (d.server, "accept-request", G_CALLBACK (on_accept_request), &d);

  if (!start_listening (&d, &error))
    {
      g_printerr (_("Cannot listen on %s port %d: %s\n"), opt_host, opt_port, error->message);
      return 1;
    }
  if (opt_data_dir != NULL && !opt_no_persist)
    {
      g_autofree char *msg = g_strdup_printf ("rooms are kept in %s", opt_data_dir);
      log_event (G_LOG_LEVEL_MESSAGE, "started", NULL, NULL, msg);
    }

  g_unix_signal_add (SIGINT, on_signal, &d);
  g_unix_signal_add (SIGTERM, on_signal, &d);
  g_main_loop_run (d.loop);

  g_object_unref (d.server);
  g_object_unref (d.soup);
  g_main_loop_unref (d.loop);
  g_clear_pointer (&d.tokens, g_ptr_array_unref);
  return d.status;
}
