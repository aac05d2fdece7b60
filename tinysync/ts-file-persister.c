/* ts-file-persister.c: a mergeable store in a JSON file, as TinyBase writes it
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ts-error.h"
#include "ts-file-persister.h"
#include "ts-hlc-private.h"
#include "ts-private.h"

/**
 * TsFilePersister:
 *
 * A [class@Tinysync.Persister] that keeps a store in a JSON file, in
 * exactly the format of TinyBase 10.0.1's file persister
 * (`createFilePersister` from `tinybase/persisters/persister-file`) for a
 * `MergeableStore`: files written by either load in the other.
 *
 * The file holds the store's mergeable content in the encoded form, the
 * text of [method@Tinysync.MergeableStore.get_mergeable_content_json]:
 * `JSON.stringify` output without whitespace or final newline, of
 * `[[{tableId:[{rowId:[{cellId:[cell,hlc,hash]},hlc,hash]},hlc,hash]},hlc,hash],[{valueId:[value,hlc,hash]},hlc,hash]]`,
 * where a deleted cell or value is the string `"\uFFFC"` (TinyBase writes
 * `undefined` so) and an object or array cell is a string of U+FFFD
 * followed by its JSON text:
 *
 * ```json
 * [[{"pets":[{"fido":[{"species":["dog","NsYwJk1----7JQY8",1391445129],
 * "toys":["\uFFFD[\"ball\"]","NsYwJk3----7JQY8",…],"legs":["\uFFFC","NsYwJk5----7JQY8",…]},
 * "",…]},"",…]},"",…],[{"open":[true,"NsYwJk7----7JQY8",…]},"",…]]
 * ```
 *
 * (`\uFFFC` and `\uFFFD` stand for the characters themselves, which the
 * file contains unescaped, as UTF-8.)
 *
 * Saving is atomic and durable: the content goes to a temporary file next
 * to the target (`FILE.XXXXXXXXXXXXXXXX.tmp`, as TinyBase names it), which
 * is flushed to disk (`fsync`), takes the mode of the file it replaces and
 * is then renamed over it; the directory is flushed too. A crash leaves
 * either the old or the new file, never a mix. If the file is a symbolic
 * link, its target is replaced. (For a #GFile without a local path,
 * g_file_replace_contents() is used.)
 *
 * A missing or empty file means nothing is persisted (TinyBase's auto-load
 * creates an empty file). A file that is not valid JSON fails to load with
 * %TS_ERROR_INVALID_JSON, JSON that is not mergeable content (including
 * the plain `[tables, values]` file of a TinyBase `Store`) with
 * %TS_ERROR_INVALID_CONTENT; the store and the file stay as they are, and
 * auto-save leaves the file alone until a load succeeds.
 *
 * Auto-load watches the file with a #GFileMonitor and loads when its
 * content changes; events caused by this persister's own saves are
 * recognised by the content's checksum and ignored.
 *
 * Since: 1.0
 */

struct _TsFilePersister
{
  TsPersister    parent_instance;

  GFile         *file;

  /* SHA-256 of the content last read or written ("" if unknown); the one
   * a save in flight is writing is set by its thread before the rename. */
  GMutex         lock;
  char          *known_checksum;
  char          *writing_checksum;

  GFileMonitor  *monitor;
  GSource       *check_timeout;
  GCancellable  *check_cancellable;
};

G_DEFINE_FINAL_TYPE (TsFilePersister, ts_file_persister, TS_TYPE_PERSISTER)

enum {
  PROP_0,
  PROP_FILE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* Debounces bursts of monitor events (ms) */
#define CHECK_DELAY_MS 50

static char *
checksum_of (const char *data,
             gsize       len)
{
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, len);
}

static char *
display_name (GFile *file)
{
  return g_file_get_parse_name (file);
}

static void
set_write_error (GError     **error,
                 GFile       *file,
                 gboolean     renaming,
                 int          errsv)
{
  g_autofree char *name = display_name (file);

  if (renaming)
    g_set_error (error, TS_ERROR, TS_ERROR_IO, _("Could not replace “%s”: %s"),
                 name, g_strerror (errsv));
  else
    g_set_error (error, TS_ERROR, TS_ERROR_IO, _("Could not write “%s”: %s"),
                 name, g_strerror (errsv));
}

/* ---- Loading ------------------------------------------------------------- */

typedef struct {
  GBytes *bytes;
  char   *checksum;
} Loaded;

static void
loaded_free (Loaded *loaded)
{
  g_clear_pointer (&loaded->bytes, g_bytes_unref);
  g_free (loaded->checksum);
  g_free (loaded);
}

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  TsFilePersister *self = source_object;
  g_autoptr(GError) error = NULL;
  char *contents = NULL;
  gsize len = 0;
  Loaded *loaded;

  if (!g_file_load_contents (self->file, cancellable, &contents, &len, NULL, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        g_task_return_pointer (task, NULL, NULL);   /* nothing persisted */
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        {
          g_autofree char *name = display_name (self->file);

          g_task_return_new_error (task, TS_ERROR, TS_ERROR_IO,
                                   _("Could not read “%s”: %s"), name, error->message);
        }
      return;
    }

  loaded = g_new0 (Loaded, 1);
  loaded->checksum = checksum_of (contents, len);
  loaded->bytes = g_bytes_new_take (contents, len);
  g_task_return_pointer (task, loaded, (GDestroyNotify) loaded_free);
}

static void
ts_file_persister_get_persisted_async (TsPersister         *persister,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (persister, cancellable, callback, user_data);

  g_task_set_source_tag (task, ts_file_persister_get_persisted_async);
  g_task_set_name (task, "[tinysync] file load");
  g_task_run_in_thread (task, load_thread);
}

static GBytes *
ts_file_persister_get_persisted_finish (TsPersister   *persister,
                               GAsyncResult  *result,
                               GError       **error)
{
  TsFilePersister *self = TS_FILE_PERSISTER (persister);
  Loaded *loaded;
  GBytes *bytes;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  loaded = g_task_propagate_pointer (G_TASK (result), error);
  if (loaded == NULL)
    return NULL;

  g_mutex_lock (&self->lock);
  g_free (self->known_checksum);
  self->known_checksum = g_steal_pointer (&loaded->checksum);
  g_mutex_unlock (&self->lock);

  bytes = g_steal_pointer (&loaded->bytes);
  loaded_free (loaded);
  return bytes;
}

/* ---- Saving -------------------------------------------------------------- */

static gboolean
write_all (int          fd,
           const char  *data,
           gsize        len)
{
  while (len > 0)
    {
      gssize n = write (fd, data, MIN (len, (gsize) G_MAXSSIZE));

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return FALSE;
        }
      data += n;
      len -= n;
    }
  return TRUE;
}

/* The file a save replaces: the target of a symbolic link, like TinyBase. */
static char *
resolve_target (const char *path)
{
  struct stat st;
  char *real;
  g_autofree char *link = NULL;
  g_autofree char *dir = NULL;

  if (lstat (path, &st) != 0 || !S_ISLNK (st.st_mode))
    return g_strdup (path);
  if ((real = realpath (path, NULL)) != NULL)
    {
      char *copy = g_strdup (real);

      free (real);
      return copy;
    }
  /* a dangling link: where it points */
  if ((link = g_file_read_link (path, NULL)) == NULL)
    return g_strdup (path);
  if (g_path_is_absolute (link))
    return g_steal_pointer (&link);
  dir = g_path_get_dirname (path);
  return g_build_filename (dir, link, NULL);
}

static void
sync_dir (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0)
    return;
  /* best effort: some file systems cannot sync directories */
  (void) fsync (fd);
  close (fd);
}

/* write a temporary file, fsync it, rename it over the target, fsync the
 * directory */
static gboolean
replace_local (TsFilePersister  *self,
               const char       *path,
               const char       *data,
               gsize             len,
               const char       *checksum,
               GError          **error)
{
  g_autofree char *target = resolve_target (path);
  g_autofree char *tmp = NULL;
  char id[17];
  struct stat st;
  gboolean have_mode;
  int fd;
  int errsv;

  have_mode = stat (target, &st) == 0;
  ts_random_id (id, 16);
  tmp = g_strdup_printf ("%s.%s.tmp", target, id);

  fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    {
      set_write_error (error, self->file, FALSE, errno);
      return FALSE;
    }
  if ((have_mode && fchmod (fd, st.st_mode & 07777) != 0) ||
      !write_all (fd, data, len) ||
      fsync (fd) != 0)
    {
      errsv = errno;
      close (fd);
      g_unlink (tmp);
      set_write_error (error, self->file, FALSE, errsv);
      return FALSE;
    }
  if (close (fd) != 0)
    {
      errsv = errno;
      g_unlink (tmp);
      set_write_error (error, self->file, FALSE, errsv);
      return FALSE;
    }

  /* from here on, the file monitor may see this content */
  g_mutex_lock (&self->lock);
  g_free (self->writing_checksum);
  self->writing_checksum = g_strdup (checksum);
  g_mutex_unlock (&self->lock);

  if (g_rename (tmp, target) != 0)
    {
      errsv = errno;
      g_unlink (tmp);
      set_write_error (error, self->file, TRUE, errsv);
      return FALSE;
    }
  sync_dir (target);
  return TRUE;
}

static void
save_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  TsFilePersister *self = source_object;
  GBytes *content = task_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_file_get_path (self->file);
  g_autofree char *checksum = NULL;
  const char *data;
  gsize len;

  data = g_bytes_get_data (content, &len);
  checksum = checksum_of (data, len);

  if (g_task_return_error_if_cancelled (task))
    return;

  if (path != NULL)
    {
      if (!replace_local (self, path, data, len, checksum, &error))
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
    }
  else
    {
      g_mutex_lock (&self->lock);
      g_free (self->writing_checksum);
      self->writing_checksum = g_strdup (checksum);
      g_mutex_unlock (&self->lock);
      if (!g_file_replace_contents (self->file, data, len, NULL, FALSE,
                                    G_FILE_CREATE_NONE, NULL, cancellable, &error))
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            g_task_return_error (task, g_steal_pointer (&error));
          else
            {
              g_autofree char *name = display_name (self->file);

              g_task_return_new_error (task, TS_ERROR, TS_ERROR_IO,
                                       _("Could not write “%s”: %s"), name, error->message);
            }
          return;
        }
    }
  g_task_return_pointer (task, g_steal_pointer (&checksum), g_free);
}

static void
ts_file_persister_set_persisted_async (TsPersister         *persister,
                              GBytes              *content,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (persister, cancellable, callback, user_data);

  g_task_set_source_tag (task, ts_file_persister_set_persisted_async);
  g_task_set_name (task, "[tinysync] file save");
  g_task_set_task_data (task, g_bytes_ref (content), (GDestroyNotify) g_bytes_unref);
  g_task_run_in_thread (task, save_thread);
}

static gboolean
ts_file_persister_set_persisted_finish (TsPersister   *persister,
                               GAsyncResult  *result,
                               GError       **error)
{
  TsFilePersister *self = TS_FILE_PERSISTER (persister);
  char *checksum;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  checksum = g_task_propagate_pointer (G_TASK (result), error);
  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->writing_checksum, g_free);
  if (checksum != NULL)
    {
      g_free (self->known_checksum);
      self->known_checksum = checksum;
    }
  g_mutex_unlock (&self->lock);
  return checksum != NULL;
}

/* ---- Watching ------------------------------------------------------------ */

static void
check_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  TsFilePersister *self = source_object;
  char *contents = NULL;
  gsize len = 0;

  /* a file that cannot be read (deleted, or mid-replacement) has nothing
   * to load */
  if (!g_file_load_contents (self->file, cancellable, &contents, &len, NULL, NULL))
    {
      g_task_return_pointer (task, NULL, NULL);
      return;
    }
  g_task_return_pointer (task, checksum_of (contents, len), g_free);
  g_free (contents);
}

static void
check_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  TsFilePersister *self = TS_FILE_PERSISTER (source);
  g_autofree char *checksum = g_task_propagate_pointer (G_TASK (result), NULL);
  gboolean ours;

  if (checksum == NULL || g_task_had_error (G_TASK (result)) || self->monitor == NULL)
    return;

  g_mutex_lock (&self->lock);
  ours = g_strcmp0 (checksum, self->known_checksum) == 0 ||
         g_strcmp0 (checksum, self->writing_checksum) == 0;
  g_mutex_unlock (&self->lock);
  if (!ours)
    ts_persister_persisted_changed (TS_PERSISTER (self));
}

static gboolean
check_timeout_cb (gpointer data)
{
  TsFilePersister *self = data;
  g_autoptr(GTask) task = NULL;

  g_clear_pointer (&self->check_timeout, g_source_unref);
  task = g_task_new (self, self->check_cancellable, check_cb, NULL);
  g_task_set_source_tag (task, check_timeout_cb);
  g_task_set_name (task, "[tinysync] file check");
  g_task_run_in_thread (task, check_thread);
  return G_SOURCE_REMOVE;
}

static void
monitor_changed_cb (GFileMonitor      *monitor,
                    GFile             *file,
                    GFile             *other_file,
                    GFileMonitorEvent  event,
                    TsFilePersister   *self)
{
  if (event == G_FILE_MONITOR_EVENT_ATTRIBUTE_CHANGED ||
      event == G_FILE_MONITOR_EVENT_PRE_UNMOUNT ||
      event == G_FILE_MONITOR_EVENT_UNMOUNTED)
    return;

  /* read the file once a burst of events is over */
  if (self->check_timeout != NULL)
    {
      g_source_destroy (self->check_timeout);
      g_clear_pointer (&self->check_timeout, g_source_unref);
    }
  self->check_timeout = g_timeout_source_new (CHECK_DELAY_MS);
  g_source_set_static_name (self->check_timeout, "[tinysync] file check");
  g_source_set_callback (self->check_timeout, check_timeout_cb, self, NULL);
  g_source_attach (self->check_timeout, g_main_context_get_thread_default ());
}

static void
ts_file_persister_stop_watching (TsPersister *persister)
{
  TsFilePersister *self = TS_FILE_PERSISTER (persister);

  if (self->check_timeout != NULL)
    {
      g_source_destroy (self->check_timeout);
      g_clear_pointer (&self->check_timeout, g_source_unref);
    }
  if (self->check_cancellable != NULL)
    {
      g_cancellable_cancel (self->check_cancellable);
      g_clear_object (&self->check_cancellable);
    }
  if (self->monitor != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->monitor, self);
      g_file_monitor_cancel (self->monitor);
      g_clear_object (&self->monitor);
    }
}

static gboolean
ts_file_persister_start_watching (TsPersister  *persister,
                                  GError      **error)
{
  TsFilePersister *self = TS_FILE_PERSISTER (persister);
  g_autoptr(GError) local_error = NULL;

  ts_file_persister_stop_watching (persister);
  self->monitor = g_file_monitor_file (self->file, G_FILE_MONITOR_WATCH_MOVES, NULL, &local_error);
  if (self->monitor == NULL)
    {
      g_autofree char *name = display_name (self->file);

      g_set_error (error, TS_ERROR, TS_ERROR_IO, _("Could not watch “%s”: %s"),
                   name, local_error->message);
      return FALSE;
    }
  self->check_cancellable = g_cancellable_new ();
  g_signal_connect (self->monitor, "changed", G_CALLBACK (monitor_changed_cb), self);
  return TRUE;
}

/* ---- GObject ------------------------------------------------------------- */

static void
ts_file_persister_dispose (GObject *object)
{
  ts_file_persister_stop_watching (TS_PERSISTER (object));

  G_OBJECT_CLASS (ts_file_persister_parent_class)->dispose (object);
}

static void
ts_file_persister_finalize (GObject *object)
{
  TsFilePersister *self = TS_FILE_PERSISTER (object);

  g_clear_object (&self->file);
  g_free (self->known_checksum);
  g_free (self->writing_checksum);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (ts_file_persister_parent_class)->finalize (object);
}

static void
ts_file_persister_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  TsFilePersister *self = TS_FILE_PERSISTER (object);

  switch (prop_id)
    {
    case PROP_FILE:
      g_value_set_object (value, self->file);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_file_persister_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  TsFilePersister *self = TS_FILE_PERSISTER (object);

  switch (prop_id)
    {
    case PROP_FILE:
      g_assert (self->file == NULL);
      self->file = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ts_file_persister_class_init (TsFilePersisterClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  TsPersisterClass *persister_class = TS_PERSISTER_CLASS (klass);

  object_class->dispose = ts_file_persister_dispose;
  object_class->finalize = ts_file_persister_finalize;
  object_class->get_property = ts_file_persister_get_property;
  object_class->set_property = ts_file_persister_set_property;

  persister_class->get_persisted_async = ts_file_persister_get_persisted_async;
  persister_class->get_persisted_finish = ts_file_persister_get_persisted_finish;
  persister_class->set_persisted_async = ts_file_persister_set_persisted_async;
  persister_class->set_persisted_finish = ts_file_persister_set_persisted_finish;
  persister_class->start_watching = ts_file_persister_start_watching;
  persister_class->stop_watching = ts_file_persister_stop_watching;

  /**
   * TsFilePersister:file: (getter get_file)
   *
   * The JSON file the store is kept in.
   *
   * Since: 1.0
   */
  properties[PROP_FILE] =
    g_param_spec_object ("file", NULL, NULL, G_TYPE_FILE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
ts_file_persister_init (TsFilePersister *self)
{
  g_mutex_init (&self->lock);
}

/**
 * ts_file_persister_new:
 * @store: the store to persist
 * @file: the JSON file to keep it in
 *
 * Creates a persister that keeps @store in @file in TinyBase's file
 * format, TinyBase's `createFilePersister(store, filePath)`. Nothing is
 * read or written until it is asked to load or save.
 *
 * Returns: (transfer full): a new persister
 *
 * Since: 1.0
 */
TsFilePersister *
ts_file_persister_new (TsMergeableStore *store,
                       GFile            *file)
{
  g_return_val_if_fail (TS_IS_MERGEABLE_STORE (store), NULL);
  g_return_val_if_fail (G_IS_FILE (file), NULL);

  return g_object_new (TS_TYPE_FILE_PERSISTER, "store", store, "file", file, NULL);
}

/**
 * ts_file_persister_get_file:
 * @self: a file persister
 *
 * Gets the file the store is kept in.
 *
 * Returns: (transfer none): the file
 *
 * Since: 1.0
 */
GFile *
ts_file_persister_get_file (TsFilePersister *self)
{
  g_return_val_if_fail (TS_IS_FILE_PERSISTER (self), NULL);

  return self->file;
}
