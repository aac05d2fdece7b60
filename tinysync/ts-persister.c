/* ts-persister.c: saving and loading a mergeable store
 *
 * SPDX-License-Identifier: MIT
 *
 * The base class of TinyBase-style persisters: one queue of loads and
 * saves run one at a time, auto-load and auto-save, and the bookkeeping
 * that lets a backend save only what a transaction changed.
 */
#include "config.h"

#include <string.h>

#include "ts-enums.h"
#include "ts-error.h"
#include "ts-json-private.h"
#include "ts-mergeable-store-private.h"
#include "ts-persister.h"
#include "ts-private.h"

/**
 * TsPersister:
 *
 * Saves a [class@Tinysync.MergeableStore] to storage and loads it back,
 * like TinyBase's persisters for a `MergeableStore`. Storage backends are
 * subclasses: [class@Tinysync.FilePersister] writes TinyBase's JSON file
 * format, [class@Tinysync.SqlitePersister] an SQLite database that is
 * updated incrementally.
 *
 * ```c
 * g_autoptr(GFile) file = g_file_new_for_path ("pets.json");
 * g_autoptr(TsFilePersister) persister = ts_file_persister_new (store, file);
 *
 * // load what was saved (or start from the default content), then follow
 * // every change of the store and of the file
 * ts_persister_start_auto_load_async (TS_PERSISTER (persister),
 *     "[{\"pets\":{\"fido\":{\"species\":\"dog\"}}},{}]", NULL, NULL, NULL);
 * ts_persister_start_auto_save_async (TS_PERSISTER (persister), NULL, NULL, NULL);
 * ```
 *
 * Loading *merges* the persisted content into the store with
 * [method@Tinysync.MergeableStore.apply_mergeable_changes_json]: a cell or
 * value the store changed later than the persisted one keeps its newer
 * stamp, so loading never loses local changes. (Into an empty store the
 * content is set as it is, hashes included, with
 * [method@Tinysync.MergeableStore.set_mergeable_content_json], which is
 * what TinyBase does.) When nothing is persisted yet, the optional initial
 * content is set with [method@Tinysync.MergeableStore.set_default_content_json].
 *
 * Saving writes the whole store. With auto-save, the persister saves after
 * every transaction that changed the store; while a save is in flight,
 * further changes wait and are saved together afterwards. Backends that
 * support it save only the stamps each transaction changed, all changes of
 * one main loop iteration in one write.
 *
 * Loads and saves run one at a time, in the order they were asked for,
 * except that a load caused by an external change (auto-load) goes first,
 * so that a following save does not overwrite what someone else wrote.
 * A persister stays alive until its queued loads and saves are done; use
 * [method@Tinysync.Persister.flush_async] to wait for them.
 *
 * Errors: a failed load or save is reported through
 * [signal@Tinysync.Persister::ignored-error] (where TinyBase calls
 * `onIgnoredError`), and also returned by the `_finish` function of an
 * explicit [method@Tinysync.Persister.load_async] or
 * [method@Tinysync.Persister.save_async]. Content that is not valid JSON
 * is %TS_ERROR_INVALID_JSON, JSON that is not mergeable content (or that
 * fails TinyBase's validation) is %TS_ERROR_INVALID_CONTENT, storage
 * failures are %TS_ERROR_IO. A failed load leaves the store unchanged.
 *
 * Bad data never replaces good data: after a load failed (the persisted
 * content is corrupt, truncated or unreadable), auto-save does not write
 * until a load succeeds, so the persisted data stays for inspection or
 * repair; the skipped save is reported once as %TS_ERROR_IO. An explicit
 * [method@Tinysync.Persister.save_async] still writes: the application
 * decided to replace what is persisted.
 *
 * Since: 1.0
 */

typedef enum {
  OP_LOAD,
  OP_SAVE,
  OP_AUTO_SAVE,
  OP_FLUSH,
} OpKind;

typedef struct {
  TsPersister  *self;              /* strong: queued work keeps the persister */
  OpKind        kind;
  GTask        *task;              /* NULL for automatic loads and saves */
  gboolean      task_ignores_errors;
  gboolean      incremental;       /* saves: set_persisted_changes_async */
  char         *initial_content;   /* loads */
} Op;

typedef struct
{
  TsMergeableStore  *store;
  GMainContext      *context;
  gulong             finished_handler;

  TsPersisterStatus  status;
  guint              loads;
  guint              saves;

  GQueue             ops;          /* of Op* */
  Op                *current;
  GSource           *kick;

  gboolean           auto_loading;
  gboolean           auto_saving;
  gboolean           auto_load_queued;
  gboolean           auto_save_queued;

  /* TRUE when the persisted content equals the store's content minus the
   * changes in @pending, so that saving @pending brings it up to date. */
  gboolean           in_sync;
  GString           *pending;      /* "[changes,changes" or NULL */
  guint64            unlisted_seen;
  gboolean           applying;     /* our own load runs a transaction */

  /* the last load failed: auto-save must not overwrite that data */
  gboolean           blocked;
  gboolean           blocked_reported;
  GError            *save_error;   /* why the store has unsaved changes */
} TsPersisterPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (TsPersister, ts_persister, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STORE,
  PROP_STATUS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  IGNORED_ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void run_next     (TsPersister *self);
static void ensure_kick  (TsPersister *self);

/* ---- Small helpers ------------------------------------------------------- */

static void
set_status (TsPersister       *self,
            TsPersisterStatus  status)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (priv->status == status)
    return;
  priv->status = status;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATUS]);
}

static gboolean
is_cancelled (const GError *error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
report (TsPersister  *self,
        const GError *error)
{
  if (!is_cancelled (error))
    g_signal_emit (self, signals[IGNORED_ERROR], 0, error);
}

static void
set_in_sync (TsPersister *self,
             gboolean     in_sync)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  priv->in_sync = in_sync;
  if (priv->pending != NULL)
    {
      g_string_free (priv->pending, TRUE);
      priv->pending = NULL;
    }
}

static void
set_save_error (TsPersister  *self,
                const GError *error)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  g_clear_error (&priv->save_error);
  if (error != NULL)
    priv->save_error = g_error_copy (error);
}

/* ---- The queue ----------------------------------------------------------- */

static Op *
op_new (TsPersister *self,
        OpKind       kind,
        GTask       *task)
{
  Op *op = g_new0 (Op, 1);

  op->self = g_object_ref (self);
  op->kind = kind;
  op->task = task != NULL ? g_object_ref (task) : NULL;
  return op;
}

static void
op_free (Op *op)
{
  g_clear_object (&op->task);
  g_free (op->initial_content);
  g_object_unref (op->self);
  g_free (op);
}

static void
queue_op (TsPersister *self,
          Op          *op,
          gboolean     first)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (first)
    g_queue_push_head (&priv->ops, op);
  else
    g_queue_push_tail (&priv->ops, op);
  ensure_kick (self);
}

/* Ends the current operation: the task (if any) gets @error or success. */
static void
op_done (Op     *op,
         GError *error)
{
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  g_autoptr(GTask) task = g_steal_pointer (&op->task);

  g_assert (priv->current == op);
  priv->current = NULL;
  set_status (self, TS_PERSISTER_STATUS_IDLE);

  /* Cancelling a start before its first load or save undoes the start. */
  if (task != NULL && is_cancelled (error))
    {
      if (g_task_get_source_tag (task) == ts_persister_start_auto_save_async)
        ts_persister_stop_auto_save (self);
      else if (g_task_get_source_tag (task) == ts_persister_start_auto_load_async)
        ts_persister_stop_auto_load (self);
    }
  ensure_kick (self);

  if (task != NULL)
    {
      if (error != NULL && (!op->task_ignores_errors || is_cancelled (error)))
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
  op_free (op);   /* may drop the last reference to self */
}

static gboolean
kick_cb (gpointer data)
{
  TsPersister *self = data;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  g_clear_pointer (&priv->kick, g_source_unref);
  run_next (self);
  return G_SOURCE_REMOVE;
}

/* Starts the next operation in a later main loop iteration, so that the
 * changes of every transaction of this iteration are saved together. */
static void
ensure_kick (TsPersister *self)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (priv->kick != NULL || priv->current != NULL || g_queue_is_empty (&priv->ops))
    return;
  priv->kick = g_idle_source_new ();
  g_source_set_priority (priv->kick, G_PRIORITY_DEFAULT);
  g_source_set_static_name (priv->kick, "[tinysync] persister");
  /* no reference: queued operations hold one */
  g_source_set_callback (priv->kick, kick_cb, self, NULL);
  g_source_attach (priv->kick, priv->context);
}

/* ---- Loading ------------------------------------------------------------- */

static gboolean
stamp_hash (const TsJsonNode *stamp,
            double           *hash)
{
  if (stamp->type != TS_JSON_ARRAY || stamp->len != 3 ||
      stamp->u.items[2].type != TS_JSON_NUMBER)
    return FALSE;
  *hash = stamp->u.items[2].u.num;
  return TRUE;
}

/* Merges persisted content into the store. *bad_data tells whether an
 * error is about the persisted data (not the initial content). */
static gboolean
apply_loaded (TsPersister  *self,
              GBytes       *bytes,
              const char   *initial_content,
              gboolean     *bad_data,
              GError      **error)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  g_autoptr(TsJsonDoc) doc = NULL;
  const TsJsonNode *root;
  const char *data;
  gsize len = 0;
  gboolean ok;
  double persisted_tables, persisted_values;
  guint32 tables_hash, values_hash;

  *bad_data = FALSE;
  data = bytes != NULL ? g_bytes_get_data (bytes, &len) : NULL;
  if (len == 0)
    {
      /* Nothing persisted: in sync only if there is nothing to save. */
      set_in_sync (self, _ts_mergeable_store_is_empty (priv->store));
      if (initial_content != NULL &&
          !ts_mergeable_store_set_default_content_json (priv->store, initial_content, error))
        return FALSE;
      return TRUE;
    }

  *bad_data = TRUE;
  if ((doc = ts_json_parse (data, len, error)) == NULL)
    {
      g_prefix_error (error, _("Could not load the persisted content: "));
      return FALSE;
    }
  root = ts_json_doc_get_root (doc);
  if (root->type != TS_JSON_ARRAY || root->len < 2 || root->len > 3)
    {
      g_set_error (error, TS_ERROR, TS_ERROR_INVALID_CONTENT,
                   _("Could not load the persisted content: it is not mergeable content"));
      return FALSE;
    }

  priv->applying = TRUE;
  if (root->len == 2 && _ts_mergeable_store_is_empty (priv->store))
    ok = _ts_mergeable_store_set_content_node (priv->store, root, error);
  else
    ok = _ts_mergeable_store_apply_changes_node (priv->store, root, error);
  priv->applying = FALSE;
  priv->unlisted_seen = _ts_mergeable_store_get_unlisted_writes (priv->store);
  if (!ok)
    {
      g_prefix_error (error, _("Could not load the persisted content: "));
      return FALSE;
    }
  *bad_data = FALSE;

  /* The store now holds the persisted content; if it also holds newer or
   * other stamps, the persisted content must be rewritten. */
  ts_mergeable_store_get_mergeable_content_hashes (priv->store, &tables_hash, &values_hash);
  set_in_sync (self,
               stamp_hash (&root->u.items[0], &persisted_tables) &&
               stamp_hash (&root->u.items[1], &persisted_values) &&
               persisted_tables == tables_hash && persisted_values == values_hash);
  return TRUE;
}

static void
load_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Op *op = data;
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  gboolean bad_data = TRUE;

  bytes = TS_PERSISTER_GET_CLASS (self)->get_persisted_finish (self, result, &error);
  if (error == NULL)
    apply_loaded (self, bytes, op->initial_content, &bad_data, &error);

  if (error != NULL)
    {
      /* the persisted data could not be read or is bad: keep it */
      if (bad_data && !is_cancelled (error))
        {
          priv->blocked = TRUE;
          priv->blocked_reported = FALSE;
          set_in_sync (self, FALSE);
        }
      report (self, error);
    }
  else
    {
      priv->blocked = FALSE;
      if (priv->auto_saving && !priv->in_sync && !priv->auto_save_queued)
        {
          priv->auto_save_queued = TRUE;
          queue_op (self, op_new (self, OP_AUTO_SAVE, NULL), FALSE);
        }
    }
  op_done (op, error);
}

static void
start_load (Op *op)
{
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (op->task == NULL)
    priv->auto_load_queued = FALSE;
  set_status (self, TS_PERSISTER_STATUS_LOADING);
  priv->loads++;
  TS_PERSISTER_GET_CLASS (self)->get_persisted_async (self,
                                             op->task ? g_task_get_cancellable (op->task) : NULL,
                                             load_cb, op);
}

/* ---- Saving -------------------------------------------------------------- */

static void
save_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Op *op = data;
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  TsPersisterClass *klass = TS_PERSISTER_GET_CLASS (self);
  g_autoptr(GError) error = NULL;

  if (op->incremental)
    klass->set_persisted_changes_finish (self, result, &error);
  else
    klass->set_persisted_finish (self, result, &error);

  if (error != NULL)
    {
      set_in_sync (self, FALSE);
      if (!is_cancelled (error))
        set_save_error (self, error);
      report (self, error);
    }
  else
    {
      if (!op->incremental)
        priv->blocked = FALSE;
      if (priv->in_sync)
        set_save_error (self, NULL);
    }
  op_done (op, error);
}

static void
start_full_save (Op *op)
{
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  g_autoptr(GBytes) content = NULL;
  char *json;

  json = ts_mergeable_store_get_mergeable_content_json (priv->store);
  content = g_bytes_new_take (json, strlen (json));
  /* What changes from now on is saved after this content. */
  set_in_sync (self, TRUE);
  set_status (self, TS_PERSISTER_STATUS_SAVING);
  priv->saves++;
  TS_PERSISTER_GET_CLASS (self)->set_persisted_async (self, content,
                                             op->task ? g_task_get_cancellable (op->task) : NULL,
                                             save_cb, op);
}

static void
start_auto_save (Op *op)
{
  TsPersister *self = op->self;
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  TsPersisterClass *klass = TS_PERSISTER_GET_CLASS (self);
  g_autoptr(GBytes) changes = NULL;

  if (op->task == NULL)
    priv->auto_save_queued = FALSE;

  if (!priv->auto_saving)
    {
      op_done (op, NULL);
      return;
    }

  if (priv->blocked)
    {
      g_autoptr(GError) error = NULL;

      g_set_error (&error, TS_ERROR, TS_ERROR_IO,
                   _("Not saving: the persisted data could not be loaded, and "
                     "saving would overwrite it"));
      set_in_sync (self, FALSE);
      set_save_error (self, error);
      if (!priv->blocked_reported)
        {
          priv->blocked_reported = TRUE;
          report (self, error);
        }
      op_done (op, error);
      return;
    }

  if (!priv->in_sync)
    {
      start_full_save (op);
      return;
    }
  if (priv->pending == NULL || klass->set_persisted_changes_async == NULL)
    {
      op_done (op, NULL);
      return;
    }

  g_string_append_c (priv->pending, ']');
  changes = g_string_free_to_bytes (g_steal_pointer (&priv->pending));
  op->incremental = TRUE;
  set_status (self, TS_PERSISTER_STATUS_SAVING);
  priv->saves++;
  klass->set_persisted_changes_async (self, changes, NULL, save_cb, op);
}

static void
queue_auto_save (TsPersister *self)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (priv->auto_save_queued)
    return;
  priv->auto_save_queued = TRUE;
  queue_op (self, op_new (self, OP_AUTO_SAVE, NULL), FALSE);
}

/* Runs after every transaction of the store, auto-saving or not: it keeps
 * track of whether the persisted content still matches the store. */
static void
on_transaction_finished (TsMergeableStore *store,
                         TsPersister      *self)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  TsPersisterClass *klass = TS_PERSISTER_GET_CLASS (self);
  guint64 unlisted = _ts_mergeable_store_get_unlisted_writes (store);
  gboolean unlisted_moved = unlisted != priv->unlisted_seen;

  priv->unlisted_seen = unlisted;
  if (priv->applying)
    return;   /* our own load: the persisted content has it */
  if (!unlisted_moved && !_ts_mergeable_store_transaction_changed (store))
    return;

  if (priv->in_sync && priv->auto_saving && !unlisted_moved &&
      klass->set_persisted_changes_async != NULL)
    {
      /* The with-hashes changes are only valid inside this handler. */
      if (priv->pending == NULL)
        priv->pending = g_string_new ("[");
      else
        g_string_append_c (priv->pending, ',');
      _ts_mergeable_store_write_transaction_changes (store, priv->pending, TRUE);
    }
  else
    set_in_sync (self, FALSE);

  if (priv->auto_saving)
    queue_auto_save (self);
}

/* ---- Flushing ------------------------------------------------------------ */

static void
run_flush (Op *op)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (op->self);

  if (priv->auto_saving && !priv->in_sync && priv->save_error != NULL)
    op_done (op, priv->save_error);
  else
    op_done (op, NULL);
}

static void
run_next (TsPersister *self)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);
  Op *op;

  if (priv->current != NULL)
    return;
  op = g_queue_pop_head (&priv->ops);
  if (op == NULL)
    return;
  priv->current = op;

  if (op->task != NULL && g_cancellable_is_cancelled (g_task_get_cancellable (op->task)))
    {
      g_autoptr(GError) error = NULL;

      g_cancellable_set_error_if_cancelled (g_task_get_cancellable (op->task), &error);
      op_done (op, error);
      return;
    }

  switch (op->kind)
    {
    case OP_LOAD:
      start_load (op);
      break;
    case OP_SAVE:
      start_full_save (op);
      break;
    case OP_AUTO_SAVE:
      start_auto_save (op);
      break;
    case OP_FLUSH:
    default:
      run_flush (op);
      break;
    }
}

/* ---- GObject ------------------------------------------------------------- */

static void
ts_persister_constructed (GObject *object)
{
  TsPersister *self = TS_PERSISTER (object);
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  G_OBJECT_CLASS (ts_persister_parent_class)->constructed (object);

  g_assert (TS_IS_MERGEABLE_STORE (priv->store));
  priv->unlisted_seen = _ts_mergeable_store_get_unlisted_writes (priv->store);
  priv->finished_handler = g_signal_connect (priv->store, "transaction-finished",
                                             G_CALLBACK (on_transaction_finished), self);
}

static void
ts_persister_dispose (GObject *object)
{
  TsPersister *self = TS_PERSISTER (object);
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  if (priv->auto_loading)
    {
      priv->auto_loading = FALSE;
      if (TS_PERSISTER_GET_CLASS (self)->stop_watching != NULL)
        TS_PERSISTER_GET_CLASS (self)->stop_watching (self);
    }
  priv->auto_saving = FALSE;
  if (priv->store != NULL)
    g_clear_signal_handler (&priv->finished_handler, priv->store);
  if (priv->kick != NULL)
    {
      g_source_destroy (priv->kick);
      g_clear_pointer (&priv->kick, g_source_unref);
    }
  g_clear_object (&priv->store);

  G_OBJECT_CLASS (ts_persister_parent_class)->dispose (object);
}

static void
ts_persister_finalize (GObject *object)
{
  TsPersister *self = TS_PERSISTER (object);
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  /* queued operations hold a reference, so none is left here */
  g_assert (g_queue_is_empty (&priv->ops));
  if (priv->pending != NULL)
    g_string_free (priv->pending, TRUE);
  g_clear_error (&priv->save_error);
  g_main_context_unref (priv->context);

  G_OBJECT_CLASS (ts_persister_parent_class)->finalize (object);
}

static void
ts_persister_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  TsPersister *self = TS_PERSISTER (object);
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, priv->store);
      break;
    case PROP_STATUS:
      g_value_set_enum (value, priv->status);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_persister_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  TsPersister *self = TS_PERSISTER (object);
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_STORE:
      g_assert (priv->store == NULL);
      priv->store = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_persister_class_init (TsPersisterClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = ts_persister_constructed;
  object_class->dispose = ts_persister_dispose;
  object_class->finalize = ts_persister_finalize;
  object_class->get_property = ts_persister_get_property;
  object_class->set_property = ts_persister_set_property;

  /**
   * TsPersister:store: (getter get_store)
   *
   * The store this persister saves and loads.
   *
   * Since: 1.0
   */
  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, TS_TYPE_MERGEABLE_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  /**
   * TsPersister:status: (getter get_status)
   *
   * Whether the persister is loading, saving or idle.
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_enum ("status", NULL, NULL, TS_TYPE_PERSISTER_STATUS,
                       TS_PERSISTER_STATUS_IDLE,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TsPersister::ignored-error:
   * @self: the persister
   * @error: what went wrong
   *
   * Reports every failed load or save (TinyBase's `onIgnoredError`),
   * including those whose error an explicit `_finish` function also
   * returns, and a save that auto-save skipped because the persisted data
   * could not be loaded. Cancellations are not reported.
   *
   * Since: 1.0
   */
  signals[IGNORED_ERROR] =
    g_signal_new ("ignored-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
ts_persister_init (TsPersister *self)
{
  TsPersisterPrivate *priv = ts_persister_get_instance_private (self);

  priv->context = g_main_context_ref_thread_default ();
  g_queue_init (&priv->ops);
}

/* ---- Public API ---------------------------------------------------------- */

/**
 * ts_persister_get_store:
 * @self: a persister
 *
 * Gets the store this persister saves and loads.
 *
 * Returns: (transfer none): the store
 *
 * Since: 1.0
 */
TsMergeableStore *
ts_persister_get_store (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_val_if_fail (TS_IS_PERSISTER (self), NULL);

  priv = ts_persister_get_instance_private (self);
  return priv->store;
}

/**
 * ts_persister_get_status:
 * @self: a persister
 *
 * Gets whether the persister is loading, saving or idle.
 *
 * Returns: the status
 *
 * Since: 1.0
 */
TsPersisterStatus
ts_persister_get_status (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_val_if_fail (TS_IS_PERSISTER (self), TS_PERSISTER_STATUS_IDLE);

  priv = ts_persister_get_instance_private (self);
  return priv->status;
}

/**
 * ts_persister_get_stats:
 * @self: a persister
 * @loads: (out) (optional): the number of loads started
 * @saves: (out) (optional): the number of saves started (full or
 *   incremental; an auto-save with nothing to write is not counted)
 *
 * Gets the persister's statistics, TinyBase's `getStats()`.
 *
 * Since: 1.0
 */
void
ts_persister_get_stats (TsPersister *self,
                        guint       *loads,
                        guint       *saves)
{
  TsPersisterPrivate *priv;

  g_return_if_fail (TS_IS_PERSISTER (self));

  priv = ts_persister_get_instance_private (self);
  if (loads != NULL)
    *loads = priv->loads;
  if (saves != NULL)
    *saves = priv->saves;
}

static GTask *
new_task (TsPersister         *self,
          GCancellable        *cancellable,
          GAsyncReadyCallback  callback,
          gpointer             user_data,
          gpointer             tag,
          const char          *name)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, tag);
  g_task_set_name (task, name);
  return task;
}

static gboolean
finish_task (TsPersister   *self,
             GAsyncResult  *result,
             gpointer       tag,
             GError       **error)
{
  g_return_val_if_fail (TS_IS_PERSISTER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, tag), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * ts_persister_load_async:
 * @self: a persister
 * @initial_content_json: (nullable): JSON text of `[tables, values]` to set
 *   as default content when nothing is persisted, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when done
 * @user_data: data for @callback
 *
 * Loads the persisted content and merges it into the store, TinyBase's
 * `load(initialContent)`: a stamp in the store that is newer than the
 * persisted one wins. When nothing is persisted (a missing or empty file,
 * an empty database), @initial_content_json is set as default content
 * ([method@Tinysync.MergeableStore.set_default_content_json]); that is not
 * an error.
 *
 * On failure the store is unchanged and, until a load succeeds, auto-save
 * does not overwrite the persisted data.
 *
 * Since: 1.0
 */
void
ts_persister_load_async (TsPersister         *self,
                         const char          *initial_content_json,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Op *op;

  g_return_if_fail (TS_IS_PERSISTER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = new_task (self, cancellable, callback, user_data,
                   ts_persister_load_async, "[tinysync] load");
  op = op_new (self, OP_LOAD, task);
  op->initial_content = g_strdup (initial_content_json);
  queue_op (self, op, FALSE);
}

/**
 * ts_persister_load_finish:
 * @self: a persister
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Persister.load_async].
 *
 * Returns: %TRUE if the persisted content (or the initial content) was
 *   loaded, or nothing was persisted
 *
 * Since: 1.0
 */
gboolean
ts_persister_load_finish (TsPersister   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return finish_task (self, result, ts_persister_load_async, error);
}

/**
 * ts_persister_save_async:
 * @self: a persister
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when done
 * @user_data: data for @callback
 *
 * Replaces the persisted content with the whole store, TinyBase's
 * `save()`. The callback runs once the content is durable. Unlike
 * auto-save, this also overwrites persisted data that failed to load.
 *
 * Since: 1.0
 */
void
ts_persister_save_async (TsPersister         *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (TS_IS_PERSISTER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = new_task (self, cancellable, callback, user_data,
                   ts_persister_save_async, "[tinysync] save");
  queue_op (self, op_new (self, OP_SAVE, task), FALSE);
}

/**
 * ts_persister_save_finish:
 * @self: a persister
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Persister.save_async].
 *
 * Returns: %TRUE if the store was saved
 *
 * Since: 1.0
 */
gboolean
ts_persister_save_finish (TsPersister   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return finish_task (self, result, ts_persister_save_async, error);
}

/**
 * ts_persister_flush_async:
 * @self: a persister
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when done
 * @user_data: data for @callback
 *
 * Waits until every load and save asked for so far, including the
 * auto-saves of the changes made so far, is done. Call it before the
 * application quits.
 *
 * Since: 1.0
 */
void
ts_persister_flush_async (TsPersister         *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (TS_IS_PERSISTER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = new_task (self, cancellable, callback, user_data,
                   ts_persister_flush_async, "[tinysync] flush");
  queue_op (self, op_new (self, OP_FLUSH, task), FALSE);
}

/**
 * ts_persister_flush_finish:
 * @self: a persister
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Persister.flush_async].
 *
 * Returns: %TRUE if, while auto-saving, every change is saved; %FALSE with
 *   the error of the failed (or refused) save when the store has changes
 *   that auto-save could not write
 *
 * Since: 1.0
 */
gboolean
ts_persister_flush_finish (TsPersister   *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  return finish_task (self, result, ts_persister_flush_async, error);
}

/**
 * ts_persister_start_auto_load_async:
 * @self: a persister
 * @initial_content_json: (nullable): JSON text of `[tables, values]` to set
 *   as default content when nothing is persisted, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when done
 * @user_data: data for @callback
 *
 * Starts following the persisted content, TinyBase's
 * `startAutoLoad(initialContent)`: loads it now and again whenever someone
 * else changes it (another process writing the file or the database).
 * The callback runs after the first load; as in TinyBase, load errors do
 * not fail it but are reported through
 * [signal@Tinysync.Persister::ignored-error].
 *
 * Since: 1.0
 */
void
ts_persister_start_auto_load_async (TsPersister         *self,
                                    const char          *initial_content_json,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  TsPersisterPrivate *priv;
  TsPersisterClass *klass;
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  Op *op;

  g_return_if_fail (TS_IS_PERSISTER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  priv = ts_persister_get_instance_private (self);
  klass = TS_PERSISTER_GET_CLASS (self);
  task = new_task (self, cancellable, callback, user_data,
                   ts_persister_start_auto_load_async, "[tinysync] start auto-load");

  if (!priv->auto_loading)
    {
      if (klass->start_watching != NULL && !klass->start_watching (self, &error))
        {
          report (self, error);
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      priv->auto_loading = TRUE;
    }

  op = op_new (self, OP_LOAD, task);
  op->task_ignores_errors = TRUE;
  op->initial_content = g_strdup (initial_content_json);
  queue_op (self, op, FALSE);
}

/**
 * ts_persister_start_auto_load_finish:
 * @self: a persister
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Persister.start_auto_load_async].
 *
 * Returns: %TRUE if auto-load started; %FALSE if watching the storage
 *   failed or the operation was cancelled before the first load
 *
 * Since: 1.0
 */
gboolean
ts_persister_start_auto_load_finish (TsPersister   *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  return finish_task (self, result, ts_persister_start_auto_load_async, error);
}

/**
 * ts_persister_stop_auto_load:
 * @self: a persister
 *
 * Stops following the persisted content (TinyBase's `stopAutoLoad()`).
 *
 * Since: 1.0
 */
void
ts_persister_stop_auto_load (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_if_fail (TS_IS_PERSISTER (self));

  priv = ts_persister_get_instance_private (self);
  if (!priv->auto_loading)
    return;
  priv->auto_loading = FALSE;
  if (TS_PERSISTER_GET_CLASS (self)->stop_watching != NULL)
    TS_PERSISTER_GET_CLASS (self)->stop_watching (self);
}

/**
 * ts_persister_is_auto_loading:
 * @self: a persister
 *
 * Gets whether the persister follows the persisted content.
 *
 * Returns: %TRUE between [method@Tinysync.Persister.start_auto_load_async]
 *   and [method@Tinysync.Persister.stop_auto_load]
 *
 * Since: 1.0
 */
gboolean
ts_persister_is_auto_loading (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_val_if_fail (TS_IS_PERSISTER (self), FALSE);

  priv = ts_persister_get_instance_private (self);
  return priv->auto_loading;
}

/**
 * ts_persister_start_auto_save_async:
 * @self: a persister
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when done
 * @user_data: data for @callback
 *
 * Starts saving after every transaction that changes the store,
 * TinyBase's `startAutoSave()`. Unless the persisted content is known to
 * match the store (it was just loaded or saved), the whole store is saved
 * first; the callback runs after that. Save errors do not fail it but are
 * reported through [signal@Tinysync.Persister::ignored-error].
 *
 * Changes made while a save is in flight are saved together once it is
 * done. Backends with incremental saves write only the stamps that
 * changed, the changes of all transactions of one main loop iteration in
 * one write.
 *
 * Since: 1.0
 */
void
ts_persister_start_auto_save_async (TsPersister         *self,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  TsPersisterPrivate *priv;
  g_autoptr(GTask) task = NULL;
  Op *op;

  g_return_if_fail (TS_IS_PERSISTER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  priv = ts_persister_get_instance_private (self);
  task = new_task (self, cancellable, callback, user_data,
                   ts_persister_start_auto_save_async, "[tinysync] start auto-save");
  priv->auto_saving = TRUE;
  op = op_new (self, OP_AUTO_SAVE, task);
  op->task_ignores_errors = TRUE;
  queue_op (self, op, FALSE);
}

/**
 * ts_persister_start_auto_save_finish:
 * @self: a persister
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Tinysync.Persister.start_auto_save_async].
 *
 * Returns: %TRUE unless cancelled before the first save
 *
 * Since: 1.0
 */
gboolean
ts_persister_start_auto_save_finish (TsPersister   *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  return finish_task (self, result, ts_persister_start_auto_save_async, error);
}

/**
 * ts_persister_stop_auto_save:
 * @self: a persister
 *
 * Stops saving after every change (TinyBase's `stopAutoSave()`). A save
 * already in flight completes; changes not yet saved are not.
 *
 * Since: 1.0
 */
void
ts_persister_stop_auto_save (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_if_fail (TS_IS_PERSISTER (self));

  priv = ts_persister_get_instance_private (self);
  if (!priv->auto_saving)
    return;
  priv->auto_saving = FALSE;
  if (priv->pending != NULL)
    set_in_sync (self, FALSE);
}

/**
 * ts_persister_is_auto_saving:
 * @self: a persister
 *
 * Gets whether the persister saves after every change.
 *
 * Returns: %TRUE between [method@Tinysync.Persister.start_auto_save_async]
 *   and [method@Tinysync.Persister.stop_auto_save]
 *
 * Since: 1.0
 */
gboolean
ts_persister_is_auto_saving (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_val_if_fail (TS_IS_PERSISTER (self), FALSE);

  priv = ts_persister_get_instance_private (self);
  return priv->auto_saving;
}

/**
 * ts_persister_persisted_changed:
 * @self: a persister
 *
 * For storage backends: reports that someone else changed the persisted
 * content. While auto-loading, a load follows (before any queued save);
 * several reports before it starts give one load.
 *
 * Since: 1.0
 */
void
ts_persister_persisted_changed (TsPersister *self)
{
  TsPersisterPrivate *priv;

  g_return_if_fail (TS_IS_PERSISTER (self));

  priv = ts_persister_get_instance_private (self);
  if (!priv->auto_loading || priv->auto_load_queued)
    return;
  priv->auto_load_queued = TRUE;
  queue_op (self, op_new (self, OP_LOAD, NULL), TRUE);
}
