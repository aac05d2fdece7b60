/* ts-persister.h: saving and loading a mergeable store
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <gio/gio.h>

#include "ts-mergeable-store.h"
#include "ts-version-macros.h"

G_BEGIN_DECLS

/**
 * TsPersisterStatus:
 * @TS_PERSISTER_STATUS_IDLE: nothing in progress
 * @TS_PERSISTER_STATUS_LOADING: reading persisted content into the store
 * @TS_PERSISTER_STATUS_SAVING: writing the store's content
 *
 * What a persister is doing (TinyBase's persister `Status`).
 *
 * Since: 1.0
 */
typedef enum {
  TS_PERSISTER_STATUS_IDLE,
  TS_PERSISTER_STATUS_LOADING,
  TS_PERSISTER_STATUS_SAVING,
} TsPersisterStatus;

#define TS_TYPE_PERSISTER (ts_persister_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (TsPersister, ts_persister, TS, PERSISTER, GObject)

/**
 * TsPersisterClass:
 * @parent_class: the parent class
 * @get_persisted_async: starts reading the persisted content (TinyBase's
 *   `getPersisted`). Storage backends must implement it.
 * @get_persisted_finish: returns the persisted mergeable content as JSON
 *   text (the encoded form of
 *   [method@Tinysync.MergeableStore.get_mergeable_content_json]), or %NULL
 *   without an error when nothing is persisted (a missing file, an empty
 *   database). The returned #GBytes need not be NUL-terminated.
 * @set_persisted_async: starts replacing the persisted content with
 *   @content, the whole store as mergeable content JSON (TinyBase's
 *   `setPersisted`). It must be atomic: on failure or a crash the old
 *   content stays. Storage backends must implement it.
 * @set_persisted_finish: finishes @set_persisted_async; %TRUE once the
 *   content is durable.
 * @set_persisted_changes_async: optional incremental save. @changes is the JSON
 *   array of one or more mergeable changes with hashes, oldest first, each
 *   from [method@Tinysync.MergeableStore.get_transaction_mergeable_changes_json]
 *   of a transaction: the current stamps of the cells and values it
 *   changed, with the current HLCs and hashes of their rows, tables, the
 *   tables and the values. Applying them in order (each stamp replaces the
 *   stored one) turns the last saved content into the store's content.
 *   Write them all atomically. When %NULL, every save is a full save.
 * @set_persisted_changes_finish: finishes @set_persisted_changes_async;
 *   %TRUE once durable.
 * @start_watching: starts noticing changes made to the persisted content
 *   by others (not by this persister's saves) and reports each with
 *   [method@Tinysync.Persister.persisted_changed]. Optional; without it
 *   [method@Tinysync.Persister.start_auto_load_async] only loads once.
 * @stop_watching: stops what @start_watching started.
 *
 * The virtual functions of storage backends. The base class runs one load
 * or save at a time, so they never overlap; they run in the main context
 * of the thread that created the persister.
 *
 * Since: 1.0
 */
struct _TsPersisterClass
{
  GObjectClass parent_class;

  void      (*get_persisted_async)          (TsPersister          *self,
                                             GCancellable         *cancellable,
                                             GAsyncReadyCallback   callback,
                                             gpointer              user_data);
  GBytes   *(*get_persisted_finish)         (TsPersister          *self,
                                             GAsyncResult         *result,
                                             GError              **error);
  void      (*set_persisted_async)          (TsPersister          *self,
                                             GBytes               *content,
                                             GCancellable         *cancellable,
                                             GAsyncReadyCallback   callback,
                                             gpointer              user_data);
  gboolean  (*set_persisted_finish)         (TsPersister          *self,
                                             GAsyncResult         *result,
                                             GError              **error);
  void      (*set_persisted_changes_async)  (TsPersister          *self,
                                             GBytes               *changes,
                                             GCancellable         *cancellable,
                                             GAsyncReadyCallback   callback,
                                             gpointer              user_data);
  gboolean  (*set_persisted_changes_finish) (TsPersister          *self,
                                             GAsyncResult         *result,
                                             GError              **error);
  gboolean  (*start_watching)               (TsPersister          *self,
                                             GError              **error);
  void      (*stop_watching)                (TsPersister          *self);

  /*< private >*/
  gpointer padding[8];
};

TS_AVAILABLE_IN_ALL
TsMergeableStore  *ts_persister_get_store              (TsPersister          *self);
TS_AVAILABLE_IN_ALL
TsPersisterStatus  ts_persister_get_status             (TsPersister          *self);
TS_AVAILABLE_IN_ALL
void               ts_persister_get_stats              (TsPersister          *self,
                                                        guint                *loads,
                                                        guint                *saves);

TS_AVAILABLE_IN_ALL
void               ts_persister_load_async             (TsPersister          *self,
                                                        const char           *initial_content_json,
                                                        GCancellable         *cancellable,
                                                        GAsyncReadyCallback   callback,
                                                        gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_load_finish            (TsPersister          *self,
                                                        GAsyncResult         *result,
                                                        GError              **error);
TS_AVAILABLE_IN_ALL
void               ts_persister_save_async             (TsPersister          *self,
                                                        GCancellable         *cancellable,
                                                        GAsyncReadyCallback   callback,
                                                        gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_save_finish            (TsPersister          *self,
                                                        GAsyncResult         *result,
                                                        GError              **error);
TS_AVAILABLE_IN_ALL
void               ts_persister_flush_async            (TsPersister          *self,
                                                        GCancellable         *cancellable,
                                                        GAsyncReadyCallback   callback,
                                                        gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_flush_finish           (TsPersister          *self,
                                                        GAsyncResult         *result,
                                                        GError              **error);

TS_AVAILABLE_IN_ALL
void               ts_persister_start_auto_load_async  (TsPersister          *self,
                                                        const char           *initial_content_json,
                                                        GCancellable         *cancellable,
                                                        GAsyncReadyCallback   callback,
                                                        gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_start_auto_load_finish (TsPersister          *self,
                                                        GAsyncResult         *result,
                                                        GError              **error);
TS_AVAILABLE_IN_ALL
void               ts_persister_stop_auto_load         (TsPersister          *self);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_is_auto_loading        (TsPersister          *self);

TS_AVAILABLE_IN_ALL
void               ts_persister_start_auto_save_async  (TsPersister          *self,
                                                        GCancellable         *cancellable,
                                                        GAsyncReadyCallback   callback,
                                                        gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_start_auto_save_finish (TsPersister          *self,
                                                        GAsyncResult         *result,
                                                        GError              **error);
TS_AVAILABLE_IN_ALL
void               ts_persister_stop_auto_save         (TsPersister          *self);
TS_AVAILABLE_IN_ALL
gboolean           ts_persister_is_auto_saving         (TsPersister          *self);

/* For storage backends */
TS_AVAILABLE_IN_ALL
void               ts_persister_persisted_changed      (TsPersister          *self);

G_END_DECLS
