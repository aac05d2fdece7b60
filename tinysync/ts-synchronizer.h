/* ts-synchronizer.h: the TinyBase synchronization protocol engine
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
 * TsSynchronizerStatus:
 * @TS_SYNCHRONIZER_STATUS_IDLE: nothing in progress
 * @TS_SYNCHRONIZER_STATUS_LOADING: applying data received from peers
 * @TS_SYNCHRONIZER_STATUS_SAVING: sending local changes
 *
 * What a synchronizer is doing (TinyBase's persister status).
 *
 * Since: 1.0
 */
typedef enum {
  TS_SYNCHRONIZER_STATUS_IDLE,
  TS_SYNCHRONIZER_STATUS_LOADING,
  TS_SYNCHRONIZER_STATUS_SAVING,
} TsSynchronizerStatus;

#define TS_TYPE_SYNCHRONIZER (ts_synchronizer_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (TsSynchronizer, ts_synchronizer, TS, SYNCHRONIZER, GObject)

/**
 * TsSynchronizerClass:
 * @parent_class: the parent class
 * @send: sends one protocol message, the JSON text
 *   `[requestId, message, body]`, to the peer @to_client_id, or to every
 *   other peer when it is %NULL. Transports must implement it.
 * @destroy: releases the transport; called once by
 *   [method@Tinysync.Synchronizer.destroy] after the engine stopped.
 *
 * The class of transports. A transport subclass sends with @send and feeds
 * what it receives to [method@Tinysync.Synchronizer.receive_message].
 *
 * Since: 1.0
 */
struct _TsSynchronizerClass
{
  GObjectClass parent_class;

  void (*send)    (TsSynchronizer *self,
                   const char     *to_client_id,
                   const char     *message_json,
                   gsize           length);
  void (*destroy) (TsSynchronizer *self);

  /*< private >*/
  gpointer padding[8];
};

TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_start_sync_async   (TsSynchronizer       *self,
                                                         const char           *initial_content_json,
                                                         GCancellable         *cancellable,
                                                         GAsyncReadyCallback   callback,
                                                         gpointer              user_data);
TS_AVAILABLE_IN_ALL
gboolean             ts_synchronizer_start_sync_finish  (TsSynchronizer       *self,
                                                         GAsyncResult         *result,
                                                         GError              **error);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_stop_sync          (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_destroy            (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
gboolean             ts_synchronizer_is_syncing         (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
gboolean             ts_synchronizer_is_destroyed       (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
TsMergeableStore    *ts_synchronizer_get_store          (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_get_stats          (TsSynchronizer       *self,
                                                         guint                *sends,
                                                         guint                *receives);
TS_AVAILABLE_IN_ALL
TsSynchronizerStatus ts_synchronizer_get_status         (TsSynchronizer       *self);
TS_AVAILABLE_IN_ALL
double               ts_synchronizer_get_request_timeout (TsSynchronizer      *self);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_set_request_timeout (TsSynchronizer      *self,
                                                          double               seconds);

/* For transports */
TS_AVAILABLE_IN_ALL
gboolean             ts_synchronizer_receive_message    (TsSynchronizer       *self,
                                                         const char           *from_client_id,
                                                         const char           *message_json,
                                                         gssize                length,
                                                         GError              **error);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_report_error       (TsSynchronizer       *self,
                                                         const GError         *error);
TS_AVAILABLE_IN_ALL
void                 ts_synchronizer_transport_closed   (TsSynchronizer       *self);

G_END_DECLS
