/* ts-ws-server.h: a TinyBase-compatible WebSocket relay server
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "ts-version-macros.h"

G_BEGIN_DECLS

/**
 * TS_WS_SERVER_DEFAULT_MAX_MESSAGE_SIZE:
 *
 * The default of [property@Tinysync.WsServer:max-message-size]: 16 MiB,
 * TinyBase's payload limit.
 *
 * Since: 1.0
 */
#define TS_WS_SERVER_DEFAULT_MAX_MESSAGE_SIZE 16777216

#define TS_TYPE_WS_SERVER (ts_ws_server_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsWsServer, ts_ws_server, TS, WS_SERVER, GObject)

TS_AVAILABLE_IN_ALL
TsWsServer  *ts_ws_server_new                   (SoupServer  *server);

TS_AVAILABLE_IN_ALL
SoupServer  *ts_ws_server_get_server            (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
char       **ts_ws_server_get_path_ids          (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
char       **ts_ws_server_get_client_ids        (TsWsServer  *self,
                                                 const char  *path_id);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_get_stats             (TsWsServer  *self,
                                                 guint       *paths,
                                                 guint       *clients);

TS_AVAILABLE_IN_ALL
guint64      ts_ws_server_get_max_message_size  (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_set_max_message_size  (TsWsServer  *self,
                                                 guint64      max_message_size);

TS_AVAILABLE_IN_ALL
double       ts_ws_server_get_request_timeout   (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_set_request_timeout   (TsWsServer  *self,
                                                 double       seconds);

TS_AVAILABLE_IN_ALL
const char  *ts_ws_server_get_data_dir          (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_set_data_dir          (TsWsServer  *self,
                                                 const char  *data_dir);

TS_AVAILABLE_IN_ALL
guint        ts_ws_server_get_max_connections_per_ip  (TsWsServer *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_set_max_connections_per_ip  (TsWsServer *self,
                                                       guint       max_connections);

TS_AVAILABLE_IN_ALL
guint        ts_ws_server_get_max_messages_per_second (TsWsServer *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_set_max_messages_per_second (TsWsServer *self,
                                                       guint       max_messages);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_destroy               (TsWsServer  *self);

TS_AVAILABLE_IN_ALL
void         ts_ws_server_close_async           (TsWsServer          *self,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);

TS_AVAILABLE_IN_ALL
gboolean     ts_ws_server_close_finish          (TsWsServer          *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);

G_END_DECLS
