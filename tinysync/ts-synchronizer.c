/* ts-synchronizer.c: the TinyBase synchronization protocol engine
 *
 * SPDX-License-Identifier: MIT
 *
 * PROTOCOL.md section 11. The engine knows no transport: a subclass sends
 * with the send vfunc and feeds received messages in.
 */
#include "config.h"

#include <string.h>

#include "ts-enums.h"
#include "ts-error.h"
#include "ts-mergeable-store-private.h"
#include "ts-payload-private.h"
#include "ts-private.h"
#include "ts-synchronizer.h"
#include "ts-synchronizer-private.h"

/**
 * TsSynchronizer:
 *
 * Keeps a [class@Tinysync.MergeableStore] in sync with peers through
 * TinyBase's synchronization protocol: when started it pulls what peers
 * have by descending their hash trees (content hashes, then table, row
 * and cell diffs), then broadcasts every local change and answers its
 * peers' requests.
 *
 * `TsSynchronizer` is the transport-independent engine; use a transport
 * such as [class@Tinysync.WsSynchronizer], or subclass it: implement the
 * `send` virtual function and pass every received message to
 * [method@Tinysync.Synchronizer.receive_message].
 *
 * Errors that TinyBase ignores (a peer that does not answer in time,
 * invalid messages, a closed transport) are reported through
 * [signal@Tinysync.Synchronizer::ignored-error] and never stop the
 * synchronizer.
 *
 * Since: 1.0
 */

#define MAX_PENDING_REQUESTS 100
#define TX_ID_LEN 11
#define REQUEST_SUFFIX_LEN 4

typedef struct _Pull Pull;

typedef void (*RequestDone) (TsSynchronizer   *self,
                             const char       *from,
                             TsJsonDoc        *doc,      /* transfer full */
                             const TsJsonNode *body,
                             GError           *error,    /* transfer none */
                             gpointer          data);

typedef struct {
  TsSynchronizer *self;
  char           *id;
  char           *to;            /* NULL: broadcast, anyone may answer */
  int             message;
  GSource        *timeout;
  RequestDone     done;
  gpointer        data;
} Request;

typedef void (*PullDone) (TsSynchronizer *self,
                          Pull           *pull,
                          GError         *error,
                          gpointer        data);

struct _Pull {
  TsSynchronizer   *self;
  char             *other;
  char             *tx;
  gboolean          have_hashes;
  guint32           other_tables;
  guint32           other_values;
  GPtrArray        *docs;           /* keeps the response bodies alive */
  GPtrArray        *tables_parts;   /* const TsJsonNode * */
  const TsJsonNode *values_part;
  PullDone          done;
  gpointer          data;
};

typedef struct {
  TsMergeableStore     *store;
  double                request_timeout;
  TsSynchronizerStatus  status;
  gboolean              syncing;
  gboolean              destroyed;
  guint                 sends;
  guint                 receives;
  guint                 loading;
  GHashTable           *pending;    /* request id -> Request */
  gulong                finished_handler;
  GMainContext         *context;
  GString              *scratch;
} TsSynchronizerPrivate;

G_DEFINE_TYPE_WITH_PRIVATE (TsSynchronizer, ts_synchronizer, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STORE,
  PROP_REQUEST_TIMEOUT,
  PROP_STATUS,
  PROP_SYNCING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  IGNORED_ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void request_free (gpointer data);

/* ---- GObject ------------------------------------------------------------- */

static void
ts_synchronizer_dispose (GObject *object)
{
  TsSynchronizer *self = TS_SYNCHRONIZER (object);
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  if (priv->finished_handler != 0)
    g_clear_signal_handler (&priv->finished_handler, priv->store);
  g_hash_table_remove_all (priv->pending);

  G_OBJECT_CLASS (ts_synchronizer_parent_class)->dispose (object);
}

static void
ts_synchronizer_finalize (GObject *object)
{
  TsSynchronizer *self = TS_SYNCHRONIZER (object);
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_hash_table_unref (priv->pending);
  g_clear_object (&priv->store);
  g_main_context_unref (priv->context);
  g_string_free (priv->scratch, TRUE);

  G_OBJECT_CLASS (ts_synchronizer_parent_class)->finalize (object);
}

static void
ts_synchronizer_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  TsSynchronizer *self = TS_SYNCHRONIZER (object);
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, priv->store);
      break;
    case PROP_REQUEST_TIMEOUT:
      g_value_set_double (value, priv->request_timeout);
      break;
    case PROP_STATUS:
      g_value_set_enum (value, priv->status);
      break;
    case PROP_SYNCING:
      g_value_set_boolean (value, priv->syncing);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_synchronizer_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  TsSynchronizer *self = TS_SYNCHRONIZER (object);
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_STORE:
      priv->store = g_value_dup_object (value);
      break;
    case PROP_REQUEST_TIMEOUT:
      ts_synchronizer_set_request_timeout (self, g_value_get_double (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_synchronizer_real_send (TsSynchronizer *self,
                           const char     *to_client_id,
                           const char     *message_json,
                           gsize           length)
{
  g_critical ("%s does not implement TsSynchronizer.send", G_OBJECT_TYPE_NAME (self));
}

static void
ts_synchronizer_class_init (TsSynchronizerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ts_synchronizer_dispose;
  object_class->finalize = ts_synchronizer_finalize;
  object_class->get_property = ts_synchronizer_get_property;
  object_class->set_property = ts_synchronizer_set_property;
  klass->send = ts_synchronizer_real_send;

  /**
   * TsSynchronizer:store: (getter get_store)
   *
   * The store this synchronizer keeps in sync.
   *
   * Since: 1.0
   */
  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, TS_TYPE_MERGEABLE_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsSynchronizer:request-timeout: (getter get_request_timeout) (setter set_request_timeout)
   *
   * How long, in seconds, a request waits for its response (TinyBase's
   * `requestTimeoutSeconds`, 1 by default). The first client of an empty
   * room waits this long when it starts.
   *
   * Since: 1.0
   */
  properties[PROP_REQUEST_TIMEOUT] =
    g_param_spec_double ("request-timeout", NULL, NULL, 0.001, 3600.0, 1.0,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT |
                         G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsSynchronizer:status: (getter get_status)
   *
   * What the synchronizer is doing.
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_enum ("status", NULL, NULL, TS_TYPE_SYNCHRONIZER_STATUS,
                       TS_SYNCHRONIZER_STATUS_IDLE,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * TsSynchronizer:syncing: (getter is_syncing)
   *
   * Whether [method@Tinysync.Synchronizer.start_sync_async] was called and
   * [method@Tinysync.Synchronizer.stop_sync] was not since.
   *
   * Since: 1.0
   */
  properties[PROP_SYNCING] =
    g_param_spec_boolean ("syncing", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TsSynchronizer::ignored-error:
   * @self: the synchronizer
   * @error: what went wrong
   *
   * Reports an error that does not stop synchronization, where TinyBase
   * calls `onIgnoredError`: a request that timed out (%TS_ERROR_REQUEST_FAILED),
   * an invalid message (%TS_ERROR_INVALID_MESSAGE), an overflow
   * (%TS_ERROR_OVERFLOW), a closed transport (%TS_ERROR_CLOSED). The
   * message ends with TinyBase's own code in parentheses, such as
   * `(tinybase:3:.V-6vr6Rshyo.xYbz.1)`.
   *
   * Since: 1.0
   */
  signals[IGNORED_ERROR] =
    g_signal_new ("ignored-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
ts_synchronizer_init (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  priv->request_timeout = 1.0;
  priv->pending = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, request_free);
  priv->context = g_main_context_ref_thread_default ();
  priv->scratch = g_string_sized_new (256);
}

/* ---- Small helpers ------------------------------------------------------- */

static TsStampTree *
tree_of (TsSynchronizerPrivate *priv)
{
  return _ts_mergeable_store_get_tree (priv->store);
}

static char *
new_tx_id (void)
{
  char id[TX_ID_LEN + 1];

  ts_random_id (id, TX_ID_LEN);
  return g_strdup (id);
}

static void
set_status (TsSynchronizer       *self,
            TsSynchronizerStatus  status)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  if (priv->status == status)
    return;
  priv->status = status;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATUS]);
}

/**
 * ts_synchronizer_report_error:
 * @self: a synchronizer
 * @error: the error
 *
 * Emits [signal@Tinysync.Synchronizer::ignored-error]. For transports.
 *
 * Since: 1.0
 */
void
ts_synchronizer_report_error (TsSynchronizer *self,
                              const GError   *error)
{
  g_return_if_fail (TS_IS_SYNCHRONIZER (self));
  g_return_if_fail (error != NULL);

  g_signal_emit (self, signals[IGNORED_ERROR], 0, error);
}

static void
report (TsSynchronizer *self,
        int             code,
        const char     *format,
        ...) G_GNUC_PRINTF (3, 4);

static void
report (TsSynchronizer *self,
        int             code,
        const char     *format,
        ...)
{
  g_autoptr(GError) error = NULL;
  va_list args;

  va_start (args, format);
  error = g_error_new_valist (TS_ERROR, code, format, args);
  va_end (args);
  ts_synchronizer_report_error (self, error);
}

/* Sends [requestId, message, body] with body already JSON. */
static void
send_message (TsSynchronizer *self,
              const char     *to,
              const char     *request_id,
              int             message,
              const char     *body,
              gsize           body_len)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autoptr(GString) out = g_string_sized_new (body_len + 48);

  if (priv->destroyed)
    return;
  g_string_append_c (out, '[');
  if (request_id != NULL)
    ts_json_write_string (out, request_id, strlen (request_id));
  else
    g_string_append (out, "null");
  g_string_append_printf (out, ",%d,", message);
  g_string_append_len (out, body, body_len);
  g_string_append_c (out, ']');
  priv->sends++;
  TS_SYNCHRONIZER_GET_CLASS (self)->send (self, to, out->str, out->len);
}

/* ---- Requests (section 11.4) -------------------------------------------- */

static void
request_free (gpointer data)
{
  Request *request = data;

  if (request->timeout != NULL)
    {
      g_source_destroy (request->timeout);
      g_source_unref (request->timeout);
    }
  g_free (request->id);
  g_free (request->to);
  g_free (request);
}

/* Completes a request exactly once: removes it, then calls back. */
static void
request_finish (Request          *request,
                const char       *from,
                TsJsonDoc        *doc,
                const TsJsonNode *body,
                GError           *error)
{
  TsSynchronizer *self = g_object_ref (request->self);
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  RequestDone done = request->done;
  gpointer data = request->data;

  g_hash_table_steal (priv->pending, request->id);
  request_free (request);
  done (self, from, doc, body, error, data);
  g_object_unref (self);
}

static gboolean
request_timed_out (gpointer data)
{
  Request *request = data;
  g_autoptr(GError) error =
    g_error_new (TS_ERROR, TS_ERROR_REQUEST_FAILED,
                 _("No answer to request %s in time (tinybase:3:%s.%s.%d)"),
                 request->id, request->to ? request->to : "", request->id, request->message);

  g_source_unref (request->timeout);
  request->timeout = NULL;
  request_finish (request, NULL, NULL, NULL, error);
  return G_SOURCE_REMOVE;
}

static void
request (TsSynchronizer *self,
         const char     *to,
         int             message,
         const char     *body,
         gsize           body_len,
         const char     *tx,
         RequestDone     done,
         gpointer        data)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  char suffix[REQUEST_SUFFIX_LEN + 1];
  Request *req;

  if (priv->destroyed)
    {
      g_autoptr(GError) error = g_error_new (TS_ERROR, TS_ERROR_REQUEST_FAILED,
                                             _("The synchronizer was destroyed (tinybase:3:destroyed)"));
      done (self, NULL, NULL, NULL, error, data);
      return;
    }
  if (g_hash_table_size (priv->pending) >= MAX_PENDING_REQUESTS)
    {
      g_autoptr(GError) error = g_error_new (TS_ERROR, TS_ERROR_OVERFLOW,
                                             _("Too many pending requests (tinybase:15:requests)"));
      done (self, NULL, NULL, NULL, error, data);
      return;
    }

  req = g_new0 (Request, 1);
  req->self = self;
  do
    {
      ts_random_id (suffix, REQUEST_SUFFIX_LEN);
      g_free (req->id);
      req->id = g_strconcat (tx, ".", suffix, NULL);
    }
  while (g_hash_table_contains (priv->pending, req->id));
  req->to = g_strdup (to);
  req->message = message;
  req->done = done;
  req->data = data;
  req->timeout = g_timeout_source_new ((guint) (priv->request_timeout * 1000 + 0.5));
  g_source_set_callback (req->timeout, request_timed_out, req, NULL);
  g_source_set_static_name (req->timeout, "[tinysync] request timeout");
  g_source_attach (req->timeout, priv->context);
  g_hash_table_insert (priv->pending, req->id, req);

  send_message (self, to, req->id, message, body, body_len);
}

static void
fail_pending (TsSynchronizer *self,
              int             code,
              const char     *message)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autoptr(GList) requests = g_hash_table_get_values (priv->pending);

  for (GList *l = requests; l != NULL; l = l->next)
    {
      Request *req = l->data;
      g_autoptr(GError) error = NULL;

      if (!g_hash_table_contains (priv->pending, req->id))
        continue;   /* finished by an earlier callback */
      error = g_error_new_literal (TS_ERROR, code, message);
      request_finish (req, NULL, NULL, NULL, error);
    }
}

/* ---- Pulling from a peer (section 11.5) --------------------------------- */

static void
pull_free (Pull *pull)
{
  g_clear_object (&pull->self);
  g_free (pull->other);
  g_free (pull->tx);
  g_ptr_array_unref (pull->docs);
  g_ptr_array_unref (pull->tables_parts);
  g_free (pull);
}

static void
pull_finish (Pull   *pull,
             GError *error)
{
  pull->done (pull->self, pull, error, pull->data);
  pull_free (pull);
}

static void
pull_fail_shape (Pull       *pull,
                 const char *what)
{
  g_autoptr(GError) error = g_error_new (TS_ERROR, TS_ERROR_INVALID_MESSAGE,
                                         _("Unexpected answer to %s from %s (tinybase:14)"),
                                         what, pull->other ? pull->other : "");
  pull_finish (pull, error);
}

static void pull_values (Pull *pull);

static void
on_value_diff (TsSynchronizer   *self,
               const char       *from,
               TsJsonDoc        *doc,
               const TsJsonNode *body,
               GError           *error,
               gpointer          data)
{
  Pull *pull = data;

  if (error != NULL)
    {
      pull_finish (pull, error);
      return;
    }
  g_ptr_array_add (pull->docs, doc);
  if (!ts_protocol_is_stamp (body, 1))
    {
      pull_fail_shape (pull, "GetValueDiff");
      return;
    }
  pull->values_part = body;
  pull_finish (pull, NULL);
}

static void
pull_values (Pull *pull)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (pull->self);
  GString *body = priv->scratch;

  if (tree_of (priv)->values->hash == pull->other_values)
    {
      pull_finish (pull, NULL);
      return;
    }
  g_string_truncate (body, 0);
  ts_stamp_tree_write_value_hashes (tree_of (priv), body);
  request (pull->self, pull->other, TS_MESSAGE_GET_VALUE_DIFF, body->str, body->len,
           pull->tx, on_value_diff, pull);
}

static gboolean
hash_tree_empty (const TsJsonNode *node)
{
  return node->type != TS_JSON_OBJECT || node->len == 0;
}

static void
on_cell_diff (TsSynchronizer   *self,
              const char       *from,
              TsJsonDoc        *doc,
              const TsJsonNode *body,
              GError           *error,
              gpointer          data)
{
  Pull *pull = data;

  if (error != NULL)
    {
      pull_finish (pull, error);
      return;
    }
  g_ptr_array_add (pull->docs, doc);
  if (!ts_protocol_is_stamp (body, 3))
    {
      pull_fail_shape (pull, "GetCellDiff");
      return;
    }
  g_ptr_array_add (pull->tables_parts, (gpointer) body);
  pull_values (pull);
}

typedef gboolean (*HashesWriter) (TsStampTree *tree, TsJsonDoc *doc, const TsJsonNode *other,
                                  GString *out, GError **error);

/* The answers to GetTableDiff and GetRowDiff are [newStamps,
 * differingHashes] (hash trees of the given depth): keep the new stamps and
 * ask for the next level of what still differs. */
static void
pull_descend (Pull             *pull,
              TsJsonDoc        *doc,
              const TsJsonNode *body,
              GError           *error,
              guint             depth,
              const char       *what,
              HashesWriter      next_hashes,
              int               next_message,
              RequestDone       next_done)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (pull->self);
  const TsJsonNode *differing;
  GString *out = priv->scratch;

  if (error != NULL)
    {
      pull_finish (pull, error);
      return;
    }
  g_ptr_array_add (pull->docs, doc);
  if (body->type != TS_JSON_ARRAY || body->len != 2 ||
      !ts_protocol_is_stamp (&body->u.items[0], 3) ||
      !ts_protocol_is_hash_tree (&body->u.items[1], depth))
    {
      pull_fail_shape (pull, what);
      return;
    }
  g_ptr_array_add (pull->tables_parts, (gpointer) &body->u.items[0]);
  differing = &body->u.items[1];
  if (hash_tree_empty (differing))
    {
      pull_values (pull);
      return;
    }
  g_string_truncate (out, 0);
  next_hashes (tree_of (priv), doc, differing, out, NULL);
  request (pull->self, pull->other, next_message, out->str, out->len, pull->tx,
           next_done, pull);
}

static void
on_row_diff (TsSynchronizer   *self,
             const char       *from,
             TsJsonDoc        *doc,
             const TsJsonNode *body,
             GError           *error,
             gpointer          data)
{
  pull_descend (data, doc, body, error, 1, "GetRowDiff",
                ts_stamp_tree_write_cell_hashes, TS_MESSAGE_GET_CELL_DIFF, on_cell_diff);
}

static void
on_table_diff (TsSynchronizer   *self,
               const char       *from,
               TsJsonDoc        *doc,
               const TsJsonNode *body,
               GError           *error,
               gpointer          data)
{
  pull_descend (data, doc, body, error, 0, "GetTableDiff",
                ts_stamp_tree_write_row_hashes, TS_MESSAGE_GET_ROW_DIFF, on_row_diff);
}

static void
pull_tables (Pull *pull)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (pull->self);
  GString *body = priv->scratch;

  if (tree_of (priv)->tables_hash == pull->other_tables)
    {
      pull_values (pull);
      return;
    }
  g_string_truncate (body, 0);
  ts_stamp_tree_write_table_hashes (tree_of (priv), body);
  request (pull->self, pull->other, TS_MESSAGE_GET_TABLE_DIFF, body->str, body->len,
           pull->tx, on_table_diff, pull);
}

static void
on_content_hashes (TsSynchronizer   *self,
                   const char       *from,
                   TsJsonDoc        *doc,
                   const TsJsonNode *body,
                   GError           *error,
                   gpointer          data)
{
  Pull *pull = data;

  if (error != NULL)
    {
      pull_finish (pull, error);
      return;
    }
  g_ptr_array_add (pull->docs, doc);
  g_free (pull->other);
  pull->other = g_strdup (from);
  if (!ts_protocol_is_content_hashes (body))
    {
      pull_fail_shape (pull, "GetContentHashes");
      return;
    }
  pull->other_tables = (guint32) body->u.items[0].u.num;
  pull->other_values = (guint32) body->u.items[1].u.num;
  pull->have_hashes = TRUE;
  pull_tables (pull);
}

/* Starts a pull from other (NULL: whoever answers a broadcast first). */
static void
pull_start (TsSynchronizer *self,
            const char     *other,
            const guint32  *hashes,
            const char     *tx,
            PullDone        done,
            gpointer        data)
{
  Pull *pull = g_new0 (Pull, 1);

  pull->self = g_object_ref (self);
  pull->other = g_strdup (other);
  pull->tx = tx ? g_strdup (tx) : new_tx_id ();
  pull->docs = g_ptr_array_new_with_free_func ((GDestroyNotify) ts_json_doc_free);
  pull->tables_parts = g_ptr_array_new ();
  pull->done = done;
  pull->data = data;

  if (hashes == NULL)
    {
      request (self, NULL, TS_MESSAGE_GET_CONTENT_HASHES, "\"\"", 2, pull->tx,
               on_content_hashes, pull);
      return;
    }
  pull->have_hashes = TRUE;
  pull->other_tables = hashes[0];
  pull->other_values = hashes[1];
  pull_tables (pull);
}

static gboolean
pull_is_empty (Pull *pull)
{
  for (guint i = 0; i < pull->tables_parts->len; i++)
    {
      const TsJsonNode *part = pull->tables_parts->pdata[i];
      if (part->u.items[0].len > 0)
        return FALSE;
    }
  return pull->values_part == NULL || pull->values_part->u.items[0].len == 0;
}

/* Applies what a pull brought, as received data (never echoed). */
static void
apply_pull (TsSynchronizer *self,
            Pull           *pull)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autoptr(GError) error = NULL;

  if (pull_is_empty (pull))
    return;
  priv->loading++;
  set_status (self, TS_SYNCHRONIZER_STATUS_LOADING);
  if (!_ts_mergeable_store_apply_parts (priv->store,
                                        (const TsJsonNode **) pull->tables_parts->pdata,
                                        pull->tables_parts->len, pull->values_part, &error))
    report (self, TS_ERROR_INVALID_CONTENT, _("Changes from %s were not applied: %s"),
            pull->other ? pull->other : "", error->message);
  if (--priv->loading == 0)
    set_status (self, TS_SYNCHRONIZER_STATUS_IDLE);
}

/* ---- Sending side (section 11.6) ---------------------------------------- */

static void
broadcast_content_hashes (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autofree char *tx = new_tx_id ();
  char body[32];
  guint32 th, vh;
  int len;

  ts_mergeable_store_get_mergeable_content_hashes (priv->store, &th, &vh);
  len = g_snprintf (body, sizeof body, "[%u,%u]", th, vh);
  send_message (self, NULL, tx, TS_MESSAGE_CONTENT_HASHES, body, len);
}

static void
on_transaction_finished (TsMergeableStore *store,
                         gpointer          data)
{
  TsSynchronizer *self = data;
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autofree char *tx = NULL;
  GString *body = priv->scratch;

  if (!priv->syncing || priv->destroyed || priv->loading > 0 ||
      !_ts_mergeable_store_transaction_changed (store))
    return;

  set_status (self, TS_SYNCHRONIZER_STATUS_SAVING);
  tx = new_tx_id ();
  g_string_truncate (body, 0);
  _ts_mergeable_store_write_transaction_changes (store, body, FALSE);
  send_message (self, NULL, tx, TS_MESSAGE_CONTENT_DIFF, body->str, body->len);
  set_status (self, TS_SYNCHRONIZER_STATUS_IDLE);
}

typedef struct {
  char *initial_content;
} StartData;

static void
start_data_free (gpointer data)
{
  StartData *sd = data;

  g_free (sd->initial_content);
  g_free (sd);
}

static void
on_initial_pull (TsSynchronizer *self,
                 Pull           *pull,
                 GError         *error,
                 gpointer        data)
{
  GTask *task = data;
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  StartData *sd = g_task_get_task_data (task);

  if (error != NULL)
    ts_synchronizer_report_error (self, error);

  if (priv->destroyed)
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_CLOSED,
                               _("The synchronizer was destroyed"));
      g_object_unref (task);
      return;
    }

  if (error != NULL || pull_is_empty (pull))
    {
      if (sd->initial_content != NULL)
        {
          g_autoptr(GError) local_error = NULL;

          priv->loading++;
          set_status (self, TS_SYNCHRONIZER_STATUS_LOADING);
          if (!ts_mergeable_store_set_default_content_json (priv->store, sd->initial_content,
                                                            &local_error))
            ts_synchronizer_report_error (self, local_error);
          if (--priv->loading == 0)
            set_status (self, TS_SYNCHRONIZER_STATUS_IDLE);
        }
    }
  else
    apply_pull (self, pull);
  /* the load is over, whatever it brought (nothing, when nobody answered) */
  if (priv->loading == 0)
    set_status (self, TS_SYNCHRONIZER_STATUS_IDLE);

  /* auto-save start: announce our hashes, then broadcast every change */
  if (priv->syncing)
    {
      broadcast_content_hashes (self);
      if (priv->finished_handler == 0)
        priv->finished_handler = g_signal_connect (priv->store, "transaction-finished",
                                                   G_CALLBACK (on_transaction_finished), self);
    }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/**
 * ts_synchronizer_start_sync_async:
 * @self: a synchronizer
 * @initial_content_json: (nullable): JSON of `[tables, values]` to use when
 *   no peer has any data, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when started
 * @user_data: data for @callback
 *
 * Starts synchronizing, as TinyBase's `startSync()`: asks the peers for
 * their content hashes, pulls what differs from the first one that answers
 * (or, when nobody answers within
 * [property@Tinysync.Synchronizer:request-timeout], sets
 * @initial_content_json as default content), then announces the store's
 * hashes and from then on broadcasts every local change.
 *
 * Since: 1.0
 */
void
ts_synchronizer_start_sync_async (TsSynchronizer      *self,
                                  const char          *initial_content_json,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  GTask *task;
  StartData *sd;

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, ts_synchronizer_start_sync_async);
  sd = g_new0 (StartData, 1);
  sd->initial_content = g_strdup (initial_content_json);
  g_task_set_task_data (task, sd, start_data_free);

  if (priv->destroyed)
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_CLOSED,
                               _("The synchronizer was destroyed"));
      g_object_unref (task);
      return;
    }

  if (!priv->syncing)
    {
      priv->syncing = TRUE;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SYNCING]);
    }
  set_status (self, TS_SYNCHRONIZER_STATUS_LOADING);
  pull_start (self, NULL, NULL, NULL, on_initial_pull, task);
}

void
_ts_synchronizer_start_sync_quietly (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));

  if (priv->destroyed || priv->syncing)
    return;
  priv->syncing = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SYNCING]);
  broadcast_content_hashes (self);
  if (priv->finished_handler == 0)
    priv->finished_handler = g_signal_connect (priv->store, "transaction-finished",
                                               G_CALLBACK (on_transaction_finished), self);
}

/**
 * ts_synchronizer_start_sync_finish:
 * @self: a synchronizer
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Synchronizer.start_sync_async].
 *
 * Returns: %TRUE once synchronizing
 *
 * Since: 1.0
 */
gboolean
ts_synchronizer_start_sync_finish (TsSynchronizer  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, ts_synchronizer_start_sync_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * ts_synchronizer_stop_sync:
 * @self: a synchronizer
 *
 * Stops synchronizing, as TinyBase's `stopSync()`: local changes are no
 * longer broadcast and peers' changes no longer applied, but peers' diff
 * requests are still answered. The transport stays open.
 *
 * Since: 1.0
 */
void
ts_synchronizer_stop_sync (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));

  if (priv->finished_handler != 0)
    g_clear_signal_handler (&priv->finished_handler, priv->store);
  if (priv->syncing)
    {
      priv->syncing = FALSE;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SYNCING]);
    }
}

/**
 * ts_synchronizer_destroy:
 * @self: a synchronizer
 *
 * Stops for good, as TinyBase's `destroy()`: pending requests fail, later
 * input is ignored, and the transport is released (a WebSocket
 * synchronizer closes its connection).
 *
 * Since: 1.0
 */
void
ts_synchronizer_destroy (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));

  if (priv->destroyed)
    return;
  g_object_ref (self);
  priv->destroyed = TRUE;
  fail_pending (self, TS_ERROR_REQUEST_FAILED,
                _("The synchronizer was destroyed (tinybase:3:destroyed)"));
  ts_synchronizer_stop_sync (self);
  if (TS_SYNCHRONIZER_GET_CLASS (self)->destroy != NULL)
    TS_SYNCHRONIZER_GET_CLASS (self)->destroy (self);
  g_object_unref (self);
}

/**
 * ts_synchronizer_transport_closed:
 * @self: a synchronizer
 *
 * Tells the engine that its transport closed or failed: pending requests
 * fail with %TS_ERROR_CLOSED. For transports.
 *
 * Since: 1.0
 */
void
ts_synchronizer_transport_closed (TsSynchronizer *self)
{
  g_return_if_fail (TS_IS_SYNCHRONIZER (self));

  fail_pending (self, TS_ERROR_CLOSED, _("The connection closed (tinybase:5)"));
}

/* ---- Receiving side (section 11.7) --------------------------------------- */

typedef struct {
  char *from;
} FallbackData;

static void
on_fallback_pull (TsSynchronizer *self,
                  Pull           *pull,
                  GError         *error,
                  gpointer        data)
{
  if (error != NULL)
    ts_synchronizer_report_error (self, error);
  else
    apply_pull (self, pull);
}

static void
on_hashes_pull (TsSynchronizer *self,
                Pull           *pull,
                GError         *error,
                gpointer        data)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  if (error == NULL)
    {
      apply_pull (self, pull);
      return;
    }
  ts_synchronizer_report_error (self, error);
  /* fall back to a full load from whoever answers */
  if (priv->syncing && !priv->destroyed)
    pull_start (self, NULL, NULL, NULL, on_fallback_pull, NULL);
}

static void
respond (TsSynchronizer *self,
         const char     *to,
         const char     *request_id,
         GString        *body)
{
  send_message (self, to, request_id, TS_MESSAGE_RESPONSE, body->str, body->len);
}

void
_ts_synchronizer_receive (TsSynchronizer   *self,
                          const char       *from,
                          TsJsonDoc        *doc,
                          const char       *request_id,
                          int               type,
                          const TsJsonNode *body)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autoptr(TsJsonDoc) owned = doc;
  g_autoptr(GString) out = NULL;
  TsStampTree *tree;

  if (priv->destroyed)
    return;
  priv->receives++;
  tree = tree_of (priv);

  switch (type)
    {
    case TS_MESSAGE_RESPONSE:
      {
        Request *req = request_id ? g_hash_table_lookup (priv->pending, request_id) : NULL;

        if (req == NULL || (req->to != NULL && g_strcmp0 (req->to, from) != 0))
          return;   /* unknown, expired or from the wrong peer */
        request_finish (req, from, g_steal_pointer (&owned), body, NULL);
      }
      return;

    case TS_MESSAGE_GET_CONTENT_HASHES:
      if (priv->syncing)
        {
          guint32 th, vh;

          ts_mergeable_store_get_mergeable_content_hashes (priv->store, &th, &vh);
          out = g_string_new (NULL);
          g_string_printf (out, "[%u,%u]", th, vh);
          respond (self, from, request_id, out);
        }
      return;

    case TS_MESSAGE_CONTENT_HASHES:
      if (priv->syncing)
        {
          guint32 hashes[2] = { (guint32) body->u.items[0].u.num,
                                (guint32) body->u.items[1].u.num };

          pull_start (self, from, hashes, request_id, on_hashes_pull, NULL);
        }
      return;

    case TS_MESSAGE_CONTENT_DIFF:
      if (priv->syncing && body->len == 3)
        {
          g_autoptr(GError) error = NULL;

          priv->loading++;
          set_status (self, TS_SYNCHRONIZER_STATUS_LOADING);
          /* invalid changes (an HLC too far ahead) are ignored silently,
           * as TinyBase does */
          _ts_mergeable_store_apply_changes_node (priv->store, body, &error);
          if (--priv->loading == 0)
            set_status (self, TS_SYNCHRONIZER_STATUS_IDLE);
        }
      return;

    case TS_MESSAGE_GET_TABLE_DIFF:
    case TS_MESSAGE_GET_ROW_DIFF:
    case TS_MESSAGE_GET_CELL_DIFF:
    case TS_MESSAGE_GET_VALUE_DIFF:
      {
        gboolean ok;

        out = g_string_sized_new (256);
        if (type == TS_MESSAGE_GET_TABLE_DIFF)
          ok = ts_stamp_tree_write_table_diff (tree, owned, body, out, NULL);
        else if (type == TS_MESSAGE_GET_ROW_DIFF)
          ok = ts_stamp_tree_write_row_diff (tree, owned, body, out, NULL);
        else if (type == TS_MESSAGE_GET_CELL_DIFF)
          ok = ts_stamp_tree_write_cell_diff (tree, owned, body, out, NULL);
        else
          ok = ts_stamp_tree_write_value_diff (tree, owned, body, out, NULL);
        if (ok)
          respond (self, from, request_id, out);
      }
      return;

    default:
      return;
    }
}

/**
 * ts_synchronizer_receive_message:
 * @self: a synchronizer
 * @from_client_id: (nullable): the sender's id on the transport
 * @message_json: the JSON text `[requestId, message, body]`
 * @length: length of @message_json in bytes, or -1 if NUL-terminated
 * @error: return location for a #GError
 *
 * Feeds a received message to the engine. For transports. The message is
 * validated as TinyBase does (PROTOCOL.md §11.3); an invalid one is
 * reported through [signal@Tinysync.Synchronizer::ignored-error] and
 * %TS_ERROR_INVALID_MESSAGE, and ignored.
 *
 * Returns: %TRUE if the message was valid
 *
 * Since: 1.0
 */
gboolean
ts_synchronizer_receive_message (TsSynchronizer  *self,
                                 const char      *from_client_id,
                                 const char      *message_json,
                                 gssize           length,
                                 GError         **error)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);
  g_autoptr(TsJsonDoc) doc = NULL;
  const char *request_id;
  gsize request_id_len;
  int type;
  const TsJsonNode *body;

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), FALSE);
  g_return_val_if_fail (message_json != NULL, FALSE);

  if (priv->destroyed)
    return TRUE;

  doc = ts_json_parse (message_json, length, NULL);
  if (doc == NULL ||
      !ts_protocol_message_valid (ts_json_doc_get_root (doc), &request_id, &request_id_len,
                                  &type, &body))
    {
      g_autoptr(GError) local_error =
        g_error_new (TS_ERROR, TS_ERROR_INVALID_MESSAGE,
                     _("Invalid message from %s (tinybase:14)"),
                     from_client_id ? from_client_id : "");
      ts_synchronizer_report_error (self, local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  _ts_synchronizer_receive (self, from_client_id ? from_client_id : "",
                            g_steal_pointer (&doc), request_id, type, body);
  return TRUE;
}

/* ---- Accessors ------------------------------------------------------------ */

/**
 * ts_synchronizer_get_store:
 * @self: a synchronizer
 *
 * Gets the store.
 *
 * Returns: (transfer none): the store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_synchronizer_get_store (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), NULL);

  return priv->store;
}

/**
 * ts_synchronizer_get_stats:
 * @self: a synchronizer
 * @sends: (out) (optional): messages given to the transport
 * @receives: (out) (optional): valid messages received
 *
 * Gets TinyBase's `getSynchronizerStats()`.
 *
 * Since: 1.0
 */
void
ts_synchronizer_get_stats (TsSynchronizer *self,
                           guint          *sends,
                           guint          *receives)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));

  if (sends != NULL)
    *sends = priv->sends;
  if (receives != NULL)
    *receives = priv->receives;
}

/**
 * ts_synchronizer_get_status: (get-property status)
 * @self: a synchronizer
 *
 * Gets what the synchronizer is doing.
 *
 * Returns: the status
 *
 * Since: 1.0
 */
TsSynchronizerStatus
ts_synchronizer_get_status (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), TS_SYNCHRONIZER_STATUS_IDLE);

  return priv->status;
}

/**
 * ts_synchronizer_is_syncing: (get-property syncing)
 * @self: a synchronizer
 *
 * Whether the synchronizer is syncing.
 *
 * Returns: %TRUE between start and stop
 *
 * Since: 1.0
 */
gboolean
ts_synchronizer_is_syncing (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), FALSE);

  return priv->syncing;
}

/**
 * ts_synchronizer_is_destroyed:
 * @self: a synchronizer
 *
 * Whether [method@Tinysync.Synchronizer.destroy] was called.
 *
 * Returns: %TRUE once destroyed
 *
 * Since: 1.0
 */
gboolean
ts_synchronizer_is_destroyed (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), FALSE);

  return priv->destroyed;
}

/**
 * ts_synchronizer_get_request_timeout: (get-property request-timeout)
 * @self: a synchronizer
 *
 * Gets the request timeout.
 *
 * Returns: seconds
 *
 * Since: 1.0
 */
double
ts_synchronizer_get_request_timeout (TsSynchronizer *self)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_val_if_fail (TS_IS_SYNCHRONIZER (self), 1.0);

  return priv->request_timeout;
}

/**
 * ts_synchronizer_set_request_timeout: (set-property request-timeout)
 * @self: a synchronizer
 * @seconds: the timeout, in seconds
 *
 * Sets how long requests wait for their response.
 *
 * Since: 1.0
 */
void
ts_synchronizer_set_request_timeout (TsSynchronizer *self,
                                     double          seconds)
{
  TsSynchronizerPrivate *priv = ts_synchronizer_get_instance_private (self);

  g_return_if_fail (TS_IS_SYNCHRONIZER (self));
  g_return_if_fail (seconds > 0);

  if (priv->request_timeout == seconds)
    return;
  priv->request_timeout = seconds;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_REQUEST_TIMEOUT]);
}
