/* ts-ws-synchronizer.h: the TinyBase WebSocket synchronizer (client)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "ts-mergeable-store.h"
#include "ts-synchronizer.h"
#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_WS_SYNCHRONIZER (ts_ws_synchronizer_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsWsSynchronizer, ts_ws_synchronizer, TS, WS_SYNCHRONIZER, TsSynchronizer)

TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_new_async                      (TsMergeableStore         *store,
                                                                     const char               *uri,
                                                                     double                    request_timeout_seconds,
                                                                     GCancellable             *cancellable,
                                                                     GAsyncReadyCallback       callback,
                                                                     gpointer                  user_data);
TS_AVAILABLE_IN_ALL
TsWsSynchronizer *ts_ws_synchronizer_new_finish                     (GAsyncResult             *result,
                                                                     GError                  **error);
TS_AVAILABLE_IN_ALL
TsWsSynchronizer *ts_ws_synchronizer_new_for_connection             (TsMergeableStore         *store,
                                                                     SoupWebsocketConnection  *connection,
                                                                     double                    request_timeout_seconds);

TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_new_channel_async              (TsMergeableStore         *store,
                                                                     const char               *uri,
                                                                     const char               *channel_id,
                                                                     double                    request_timeout_seconds,
                                                                     GCancellable             *cancellable,
                                                                     GAsyncReadyCallback       callback,
                                                                     gpointer                  user_data);
TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_new_channel_for_connection_async (TsMergeableStore       *store,
                                                                     SoupWebsocketConnection  *connection,
                                                                     const char               *channel_id,
                                                                     double                    request_timeout_seconds,
                                                                     GCancellable             *cancellable,
                                                                     GAsyncReadyCallback       callback,
                                                                     gpointer                  user_data);

TS_AVAILABLE_IN_ALL
const char       *ts_ws_synchronizer_get_uri                        (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
const char       *ts_ws_synchronizer_get_channel_id                 (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
SoupWebsocketConnection *ts_ws_synchronizer_get_connection          (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
gboolean          ts_ws_synchronizer_is_connected                   (TsWsSynchronizer         *self);

TS_AVAILABLE_IN_ALL
guint             ts_ws_synchronizer_get_fragment_size              (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_set_fragment_size              (TsWsSynchronizer         *self,
                                                                     guint                     fragment_size);
TS_AVAILABLE_IN_ALL
guint             ts_ws_synchronizer_get_max_message_size           (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_set_max_message_size           (TsWsSynchronizer         *self,
                                                                     guint                     max_message_size);
TS_AVAILABLE_IN_ALL
gboolean          ts_ws_synchronizer_get_reconnect                  (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_set_reconnect                  (TsWsSynchronizer         *self,
                                                                     gboolean                  reconnect);
TS_AVAILABLE_IN_ALL
guint             ts_ws_synchronizer_get_keepalive_interval         (TsWsSynchronizer         *self);
TS_AVAILABLE_IN_ALL
void              ts_ws_synchronizer_set_keepalive_interval         (TsWsSynchronizer         *self,
                                                                     guint                     seconds);

G_END_DECLS
