/* ts-ws-server-private.h: what a TsWsServer holds, for tests
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-ws-server.h"

G_BEGIN_DECLS

/* The memory a server holds on behalf of its clients, each part bounded
 * by a limit: fragments by max-message-size per socket, room buffers by
 * 1000 payloads, send queues by max-message-size per client. */
typedef struct {
  guint   clients;           /* open connections */
  guint   members;           /* legacy rooms plus subscribed channels */
  guint   fragment_buffers;  /* incomplete fragmented messages */
  gsize   fragment_bytes;    /* bytes they retain */
  guint   buffered_payloads; /* held by rooms whose store is loading */
  gsize   buffered_bytes;
  guint64 queued_bytes;      /* frames handed to libsoup, not yet written */
} TsWsServerUsage;

void ts_ws_server_get_usage (TsWsServer      *self,
                             TsWsServerUsage *usage);

G_END_DECLS
