/* ts-room-peer.c: a WsServer room's own store (the peer "S")
 *
 * SPDX-License-Identifier: MIT
 *
 * PROTOCOL.md section 14.4: a room with a persister gets a store that
 * takes part in sync as client id "S". It loads what was persisted when
 * the room opens, saves every change, and stays on disk after the last
 * client left.
 */
#include "config.h"

#include "ts-error.h"
#include "ts-private.h"
#include "ts-room-peer-private.h"
#include "ts-synchronizer-private.h"

struct _TsRoomPeer
{
  TsSynchronizer      parent_instance;

  TsPersister        *persister;
  TsRoomPeerSendFunc  send;
  gpointer            send_data;
  gboolean            stopped;
};

G_DEFINE_FINAL_TYPE (TsRoomPeer, ts_room_peer, TS_TYPE_SYNCHRONIZER)

static void
ts_room_peer_send (TsSynchronizer *sync,
                   const char     *to,
                   const char     *json,
                   gsize           length)
{
  TsRoomPeer *self = TS_ROOM_PEER (sync);
  g_autoptr(GBytes) remainder = NULL;

  if (self->send == NULL)
    return;
  remainder = g_bytes_new (json, length);
  self->send (to, remainder, self->send_data);
}

static void
ts_room_peer_destroy (TsSynchronizer *sync)
{
  TsRoomPeer *self = TS_ROOM_PEER (sync);

  self->send = NULL;
}

static void
on_persister_error (TsPersister *persister,
                    GError      *error,
                    gpointer     data)
{
  ts_synchronizer_report_error (TS_SYNCHRONIZER (data), error);
}

static void
ts_room_peer_dispose (GObject *object)
{
  TsRoomPeer *self = TS_ROOM_PEER (object);

  if (self->persister != NULL)
    g_signal_handlers_disconnect_by_data (self->persister, self);
  g_clear_object (&self->persister);

  G_OBJECT_CLASS (ts_room_peer_parent_class)->dispose (object);
}

static void
ts_room_peer_class_init (TsRoomPeerClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = ts_room_peer_dispose;
  TS_SYNCHRONIZER_CLASS (klass)->send = ts_room_peer_send;
  TS_SYNCHRONIZER_CLASS (klass)->destroy = ts_room_peer_destroy;
}

static void
ts_room_peer_init (TsRoomPeer *self)
{
}

TsRoomPeer *
ts_room_peer_new (TsPersister        *persister,
                  double              request_timeout,
                  TsRoomPeerSendFunc  send,
                  gpointer            user_data)
{
  TsRoomPeer *self;

  g_return_val_if_fail (TS_IS_PERSISTER (persister), NULL);

  self = g_object_new (TS_TYPE_ROOM_PEER,
                       "store", ts_persister_get_store (persister),
                       "request-timeout", request_timeout,
                       NULL);
  self->persister = g_object_ref (persister);
  self->send = send;
  self->send_data = user_data;
  g_signal_connect (persister, "ignored-error", G_CALLBACK (on_persister_error), self);
  return self;
}

TsPersister *
ts_room_peer_get_persister (TsRoomPeer *self)
{
  return self->persister;
}

/* ---- Start: load, auto-save, sync ---------------------------------------- */

static void
on_auto_save_started (GObject      *source,
                      GAsyncResult *result,
                      gpointer      data)
{
  g_autoptr(GTask) task = data;
  TsRoomPeer *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (!ts_persister_start_auto_save_finish (TS_PERSISTER (source), result, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (self->stopped)
    {
      g_task_return_new_error (task, TS_ERROR, TS_ERROR_CLOSED, _("The room closed"));
      return;
    }
  _ts_synchronizer_start_sync_quietly (TS_SYNCHRONIZER (self));
  g_task_return_boolean (task, TRUE);
}

static void
on_auto_load_started (GObject      *source,
                      GAsyncResult *result,
                      gpointer      data)
{
  g_autoptr(GTask) task = data;
  TsRoomPeer *self = g_task_get_source_object (task);
  GCancellable *cancellable;
  GError *error = NULL;

  if (!ts_persister_start_auto_load_finish (TS_PERSISTER (source), result, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  cancellable = g_task_get_cancellable (task);
  ts_persister_start_auto_save_async (self->persister, cancellable,
                                      on_auto_save_started, g_steal_pointer (&task));
}

void
ts_room_peer_start_async (TsRoomPeer          *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, ts_room_peer_start_async);
  ts_persister_start_auto_load_async (self->persister, NULL, cancellable,
                                      on_auto_load_started, task);
}

gboolean
ts_room_peer_start_finish (TsRoomPeer    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
ts_room_peer_receive (TsRoomPeer       *self,
                      const char       *from,
                      TsPayloadMessage *message)
{
  TsJsonDoc *doc = g_steal_pointer (&message->doc);

  if (doc == NULL)
    return;
  _ts_synchronizer_receive (TS_SYNCHRONIZER (self), from, doc,
                            message->request_id, message->type, message->body);
}

/* ---- Flush and stop ------------------------------------------------------- */

static void
on_flushed (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  g_autoptr(GTask) task = data;
  GError *error = NULL;

  if (!ts_persister_flush_finish (TS_PERSISTER (source), result, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
ts_room_peer_flush_async (TsRoomPeer          *self,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);

  g_task_set_source_tag (task, ts_room_peer_flush_async);
  ts_persister_flush_async (self->persister, NULL, on_flushed, task);
}

gboolean
ts_room_peer_flush_finish (TsRoomPeer    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_stop_flushed (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  g_autoptr(GTask) task = data;
  TsRoomPeer *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;

  if (!ts_persister_flush_finish (TS_PERSISTER (source), result, &error))
    ts_synchronizer_report_error (TS_SYNCHRONIZER (self), error);
  ts_persister_stop_auto_save (self->persister);
  ts_persister_stop_auto_load (self->persister);
  g_task_return_boolean (task, TRUE);
}

void
ts_room_peer_stop_async (TsRoomPeer          *self,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);

  g_task_set_source_tag (task, ts_room_peer_stop_async);
  self->stopped = TRUE;
  /* No more sync traffic; what was applied is saved, then we stop. */
  ts_synchronizer_destroy (TS_SYNCHRONIZER (self));
  ts_persister_flush_async (self->persister, NULL, on_stop_flushed, task);
}

void
ts_room_peer_stop_finish (TsRoomPeer   *self,
                          GAsyncResult *result)
{
  g_task_propagate_boolean (G_TASK (result), NULL);
}
