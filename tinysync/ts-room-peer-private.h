/* ts-room-peer-private.h: a WsServer room's own store (the peer "S")
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "ts-payload-private.h"
#include "ts-persister.h"
#include "ts-synchronizer.h"

G_BEGIN_DECLS

#define TS_TYPE_ROOM_PEER (ts_room_peer_get_type ())
G_DECLARE_FINAL_TYPE (TsRoomPeer, ts_room_peer, TS, ROOM_PEER, TsSynchronizer)

/* Sends a remainder from "S": to a client id, or to every client of the
 * room when to is NULL. */
typedef void (*TsRoomPeerSendFunc) (const char *to,
                                    GBytes     *remainder,
                                    gpointer    user_data);

TsRoomPeer *ts_room_peer_new           (TsPersister         *persister,
                                        double               request_timeout,
                                        TsRoomPeerSendFunc   send,
                                        gpointer             user_data);
TsPersister *ts_room_peer_get_persister (TsRoomPeer         *self);

/* Loads the persisted room, starts saving every change and starts
 * syncing (quietly: no initial pull). */
void        ts_room_peer_start_async   (TsRoomPeer          *self,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
gboolean    ts_room_peer_start_finish  (TsRoomPeer          *self,
                                        GAsyncResult        *result,
                                        GError             **error);

/* Hands a decoded message from a client to the store; steals its doc. */
void        ts_room_peer_receive       (TsRoomPeer          *self,
                                        const char          *from,
                                        TsPayloadMessage    *message);

/* Completes when every change applied so far is durable. */
void        ts_room_peer_flush_async   (TsRoomPeer          *self,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
gboolean    ts_room_peer_flush_finish  (TsRoomPeer          *self,
                                        GAsyncResult        *result,
                                        GError             **error);

/* Stops syncing and saving once everything is flushed; the store is
 * then released. Never fails (errors go to ignored-error). */
void        ts_room_peer_stop_async    (TsRoomPeer          *self,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
void        ts_room_peer_stop_finish   (TsRoomPeer          *self,
                                        GAsyncResult        *result);

G_END_DECLS
