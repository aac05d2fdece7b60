/* ts-ws-io.c: a WebSocket-aware GIOStream wrapper for libsoup 3.2
 *
 * SPDX-License-Identifier: MIT
 *
 * See ts-ws-io-private.h. RFC 6455 section 5.2 frame headers: byte 0 is
 * FIN and the opcode, byte 1 the mask bit and a 7-bit length (126: a
 * 16-bit length follows, 127: a 64-bit one), then the 4-byte mask key if
 * masked, then the payload. Opcodes with bit 3 set are control frames;
 * 0x8 is close, whose payload starts with the 2-byte code.
 */
#include "config.h"

#include <string.h>

#include "ts-ws-io-private.h"

#define OPCODE_CONTINUATION 0x0
#define OPCODE_CLOSE        0x8

/* ---- Frame header tracking ---------------------------------------------- */

typedef struct {
  guint8  header[14];
  guint   have;       /* header bytes seen */
  guint   need;       /* header length: 2 until byte 1 is known */
  gboolean in_payload;
  guint64 left;       /* payload bytes left in the current frame */
  guint64 pos;        /* payload bytes of the current frame already seen */
} FrameState;

static void
frame_state_reset (FrameState *fs)
{
  fs->have = 0;
  fs->need = 2;
  fs->in_payload = FALSE;
  fs->left = 0;
  fs->pos = 0;
}

static inline guint8
frame_opcode (const FrameState *fs)
{
  return fs->header[0] & 0x0f;
}

static inline gboolean
frame_is_data (const FrameState *fs)
{
  return (frame_opcode (fs) & 0x08) == 0;
}

static inline gboolean
frame_is_masked (const FrameState *fs)
{
  return (fs->header[1] & 0x80) != 0;
}

static guint64
frame_payload_len (const FrameState *fs)
{
  guint len7 = fs->header[1] & 0x7f;
  guint64 len = 0;

  if (len7 < 126)
    return len7;
  if (len7 == 126)
    return ((guint64) fs->header[2] << 8) | fs->header[3];
  for (guint i = 2; i < 10; i++)
    len = (len << 8) | fs->header[i];
  return len;
}

static inline const guint8 *
frame_mask (const FrameState *fs)
{
  return fs->header + fs->need - 4;
}

/* Feeds one header byte; returns TRUE when the header is complete. */
static gboolean
frame_header_byte (FrameState *fs,
                   guint8      byte)
{
  fs->header[fs->have++] = byte;
  if (fs->have == 2)
    {
      guint len7 = byte & 0x7f;

      fs->need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((byte & 0x80) ? 4 : 0);
    }
  if (fs->have < fs->need)
    return FALSE;
  fs->left = frame_payload_len (fs);
  fs->pos = 0;
  fs->in_payload = TRUE;
  return TRUE;
}

/* ---- TsWsIOStream ------------------------------------------------------- */

#define TS_TYPE_WS_IO_INPUT (ts_ws_io_input_get_type ())
G_DECLARE_FINAL_TYPE (TsWsIOInput, ts_ws_io_input, TS, WS_IO_INPUT, GInputStream)
#define TS_TYPE_WS_IO_OUTPUT (ts_ws_io_output_get_type ())
G_DECLARE_FINAL_TYPE (TsWsIOOutput, ts_ws_io_output, TS, WS_IO_OUTPUT, GOutputStream)

struct _TsWsIOStream {
  GIOStream     parent_instance;

  GIOStream    *base;
  TsWsIOInput  *input;
  TsWsIOOutput *output;

  /* input */
  FrameState    in_state;
  guint64       max_message_size;
  guint64       message_size;     /* payload bytes of the current data message */
  gboolean      discarding;
  GSource      *too_big_source;

  /* output */
  FrameState    out_state;
  guint64       data_bytes_written;
  guint16       close_code;       /* 0: no override pending */
  gboolean      close_written;
};

struct _TsWsIOInput {
  GInputStream  parent_instance;
  TsWsIOStream *owner;            /* weak: the owner holds us */
  GInputStream *base;
};

struct _TsWsIOOutput {
  GOutputStream  parent_instance;
  TsWsIOStream  *owner;           /* weak */
  GOutputStream *base;
};

enum {
  MESSAGE_TOO_BIG,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (TsWsIOStream, ts_ws_io_stream, G_TYPE_IO_STREAM)

static gboolean
emit_too_big (gpointer data)
{
  TsWsIOStream *self = data;

  g_clear_pointer (&self->too_big_source, g_source_unref);
  g_signal_emit (self, signals[MESSAGE_TOO_BIG], 0);
  return G_SOURCE_REMOVE;
}

/* Walks n received bytes. Returns the offset (in data) where a frame that
 * makes its message too big starts (0 if it started in an earlier read),
 * or -1 if all is well. */
static gssize
input_walk (TsWsIOStream *self,
            const guint8 *data,
            gsize         n)
{
  FrameState *fs = &self->in_state;
  gsize i = 0;

  while (i < n)
    {
      if (!fs->in_payload)
        {
          gsize start = fs->have == 0 ? i : 0;

          if (!frame_header_byte (fs, data[i++]))
            continue;
          if (frame_is_data (fs))
            {
              guint64 len = frame_payload_len (fs);

              if (frame_opcode (fs) != OPCODE_CONTINUATION)
                self->message_size = 0;
              if (self->max_message_size > 0 &&
                  (len > self->max_message_size ||
                   self->message_size > self->max_message_size - len))
                return (gssize) start;
              self->message_size += len;
            }
          if (fs->left == 0)
            frame_state_reset (fs);
        }
      else
        {
          guint64 chunk = MIN (fs->left, (guint64) (n - i));

          i += chunk;
          fs->pos += chunk;
          fs->left -= chunk;
          if (fs->left == 0)
            frame_state_reset (fs);
        }
    }
  return -1;
}

static void
start_discarding (TsWsIOStream *self)
{
  self->discarding = TRUE;
  if (self->too_big_source == NULL)
    {
      self->too_big_source = g_idle_source_new ();
      g_source_set_priority (self->too_big_source, G_PRIORITY_DEFAULT);
      g_source_set_callback (self->too_big_source, emit_too_big,
                             g_object_ref (self), g_object_unref);
      g_source_set_static_name (self->too_big_source, "[tinysync] message too big");
      g_source_attach (self->too_big_source, g_main_context_get_thread_default ());
    }
}

/* Reads and drops what the peer sends after a too-big message. Returns 0
 * (end of stream) once our close frame is out or the base ended, -1 with
 * WOULD_BLOCK otherwise. */
static gssize
input_discard (TsWsIOStream  *self,
               gboolean       blocking,
               GCancellable  *cancellable,
               GError       **error)
{
  guint8 scratch[4096];

  for (;;)
    {
      gssize n;
      g_autoptr(GError) local = NULL;

      if (self->close_written)
        return 0;
      if (blocking)
        return 0;
      n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (self->input->base),
                                                    scratch, sizeof scratch,
                                                    cancellable, &local);
      if (n == 0)
        return 0;
      if (n < 0)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return -1;
        }
    }
}

static gssize
input_read (TsWsIOStream  *self,
            void          *buffer,
            gsize          count,
            gboolean       blocking,
            GCancellable  *cancellable,
            GError       **error)
{
  gssize n, cut;

  if (self->discarding)
    return input_discard (self, blocking, cancellable, error);

  if (blocking)
    n = g_input_stream_read (self->input->base, buffer, count, cancellable, error);
  else
    n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (self->input->base),
                                                  buffer, count, cancellable, error);
  if (n <= 0)
    return n;

  cut = input_walk (self, buffer, (gsize) n);
  if (cut < 0)
    return n;

  /* Hand over what came before the offending frame, drop the rest. */
  start_discarding (self);
  if (cut > 0)
    return cut;
  return input_discard (self, blocking, cancellable, error);
}

/* Walks n bytes about to be (patch != NULL) or just (patch == NULL)
 * written. With patch, the close code override is applied to patch (a
 * copy of data) on a scratch copy of the state; without, the real state
 * advances and the counters are updated. */
static void
output_walk (TsWsIOStream *self,
             FrameState   *fs,
             const guint8 *data,
             guint8       *patch,
             gsize         n)
{
  gsize i = 0;

  while (i < n)
    {
      if (!fs->in_payload)
        {
          gboolean done;

          done = frame_header_byte (fs, data[i]);
          if (patch == NULL && frame_is_data (fs))
            self->data_bytes_written++;
          i++;
          if (done && fs->left == 0)
            {
              if (patch == NULL && frame_opcode (fs) == OPCODE_CLOSE)
                {
                  self->close_written = TRUE;
                  self->close_code = 0;
                }
              frame_state_reset (fs);
            }
        }
      else
        {
          guint64 chunk = MIN (fs->left, (guint64) (n - i));

          if (frame_opcode (fs) == OPCODE_CLOSE && self->close_code != 0 && fs->pos < 2)
            {
              for (guint64 k = 0; k < chunk && fs->pos + k < 2; k++)
                {
                  guint64 at = fs->pos + k;
                  guint8 byte = at == 0 ? self->close_code >> 8 : self->close_code & 0xff;

                  if (frame_is_masked (fs))
                    byte ^= frame_mask (fs)[at % 4];
                  if (patch != NULL)
                    patch[i + k] = byte;
                }
            }
          if (patch == NULL && frame_is_data (fs))
            self->data_bytes_written += chunk;
          i += chunk;
          fs->pos += chunk;
          fs->left -= chunk;
          if (fs->left == 0)
            {
              if (patch == NULL && frame_opcode (fs) == OPCODE_CLOSE)
                {
                  self->close_written = TRUE;
                  self->close_code = 0;
                }
              frame_state_reset (fs);
            }
        }
    }
}

static gssize
output_write (TsWsIOStream  *self,
              const void    *buffer,
              gsize          count,
              gboolean       blocking,
              GCancellable  *cancellable,
              GError       **error)
{
  g_autofree guint8 *patched = NULL;
  const void *data = buffer;
  gssize n;

  if (self->close_code != 0 && count > 0)
    {
      FrameState scratch = self->out_state;

      patched = g_memdup2 (buffer, count);
      output_walk (self, &scratch, buffer, patched, count);
      data = patched;
    }

  if (blocking)
    n = g_output_stream_write (self->output->base, data, count, cancellable, error);
  else
    n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (self->output->base),
                                                    data, count, cancellable, error);
  if (n > 0)
    output_walk (self, &self->out_state, buffer, NULL, (gsize) n);
  return n;
}

static GInputStream *
ts_ws_io_stream_get_input_stream (GIOStream *stream)
{
  return G_INPUT_STREAM (TS_WS_IO_STREAM (stream)->input);
}

static GOutputStream *
ts_ws_io_stream_get_output_stream (GIOStream *stream)
{
  return G_OUTPUT_STREAM (TS_WS_IO_STREAM (stream)->output);
}

static void
close_own_streams (TsWsIOStream *self)
{
  /* Our streams' close functions do nothing: the base closes for real. */
  if (!g_input_stream_is_closed (G_INPUT_STREAM (self->input)))
    g_input_stream_close (G_INPUT_STREAM (self->input), NULL, NULL);
  if (!g_output_stream_is_closed (G_OUTPUT_STREAM (self->output)))
    g_output_stream_close (G_OUTPUT_STREAM (self->output), NULL, NULL);
}

static gboolean
ts_ws_io_stream_close_fn (GIOStream     *stream,
                          GCancellable  *cancellable,
                          GError       **error)
{
  TsWsIOStream *self = TS_WS_IO_STREAM (stream);

  close_own_streams (self);
  return g_io_stream_close (self->base, cancellable, error);
}

static void
base_closed (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  g_autoptr(GTask) task = data;
  GError *error = NULL;

  if (g_io_stream_close_finish (G_IO_STREAM (source), result, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
ts_ws_io_stream_close_async (GIOStream           *stream,
                             int                  io_priority,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  TsWsIOStream *self = TS_WS_IO_STREAM (stream);
  GTask *task;

  task = g_task_new (stream, cancellable, callback, user_data);
  g_task_set_source_tag (task, ts_ws_io_stream_close_async);
  close_own_streams (self);
  g_io_stream_close_async (self->base, io_priority, cancellable, base_closed, task);
}

static gboolean
ts_ws_io_stream_close_finish (GIOStream     *stream,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, stream), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
ts_ws_io_stream_dispose (GObject *object)
{
  TsWsIOStream *self = TS_WS_IO_STREAM (object);

  if (self->too_big_source != NULL)
    {
      g_source_destroy (self->too_big_source);
      g_clear_pointer (&self->too_big_source, g_source_unref);
    }
  G_OBJECT_CLASS (ts_ws_io_stream_parent_class)->dispose (object);
}

static void
ts_ws_io_stream_finalize (GObject *object)
{
  TsWsIOStream *self = TS_WS_IO_STREAM (object);

  g_clear_object (&self->input);
  g_clear_object (&self->output);
  g_clear_object (&self->base);
  G_OBJECT_CLASS (ts_ws_io_stream_parent_class)->finalize (object);
}

static void
ts_ws_io_stream_class_init (TsWsIOStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GIOStreamClass *stream_class = G_IO_STREAM_CLASS (klass);

  object_class->dispose = ts_ws_io_stream_dispose;
  object_class->finalize = ts_ws_io_stream_finalize;
  stream_class->get_input_stream = ts_ws_io_stream_get_input_stream;
  stream_class->get_output_stream = ts_ws_io_stream_get_output_stream;
  stream_class->close_fn = ts_ws_io_stream_close_fn;
  stream_class->close_async = ts_ws_io_stream_close_async;
  stream_class->close_finish = ts_ws_io_stream_close_finish;

  /* Emitted once, from an idle callback, when an incoming message passed
   * max_message_size. */
  signals[MESSAGE_TOO_BIG] =
    g_signal_new ("message-too-big", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
ts_ws_io_stream_init (TsWsIOStream *self)
{
  frame_state_reset (&self->in_state);
  frame_state_reset (&self->out_state);
}

/* ---- Input -------------------------------------------------------------- */

static void ts_ws_io_input_pollable_init (GPollableInputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsWsIOInput, ts_ws_io_input, G_TYPE_INPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                                                      ts_ws_io_input_pollable_init))

static gssize
ts_ws_io_input_read_fn (GInputStream  *stream,
                        void          *buffer,
                        gsize          count,
                        GCancellable  *cancellable,
                        GError       **error)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (stream);

  return input_read (self->owner, buffer, count, TRUE, cancellable, error);
}

static gboolean
ts_ws_io_input_close_fn (GInputStream  *stream,
                         GCancellable  *cancellable,
                         GError       **error)
{
  return TRUE;
}

static void
ts_ws_io_input_finalize (GObject *object)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (object);

  g_clear_object (&self->base);
  G_OBJECT_CLASS (ts_ws_io_input_parent_class)->finalize (object);
}

static void
ts_ws_io_input_class_init (TsWsIOInputClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *input_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = ts_ws_io_input_finalize;
  input_class->read_fn = ts_ws_io_input_read_fn;
  input_class->close_fn = ts_ws_io_input_close_fn;
}

static void
ts_ws_io_input_init (TsWsIOInput *self)
{
}

static gboolean
ts_ws_io_input_can_poll (GPollableInputStream *stream)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (stream);

  return G_IS_POLLABLE_INPUT_STREAM (self->base) &&
         g_pollable_input_stream_can_poll (G_POLLABLE_INPUT_STREAM (self->base));
}

static gboolean
ts_ws_io_input_is_readable (GPollableInputStream *stream)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (stream);

  if (self->owner->discarding && self->owner->close_written)
    return TRUE;
  return g_pollable_input_stream_is_readable (G_POLLABLE_INPUT_STREAM (self->base));
}

static GSource *
ts_ws_io_input_create_source (GPollableInputStream *stream,
                              GCancellable         *cancellable)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (stream);
  g_autoptr(GSource) base_source = NULL;
  GSource *source;

  if (self->owner->discarding && self->owner->close_written)
    base_source = g_timeout_source_new (0);
  else
    base_source = g_pollable_input_stream_create_source (G_POLLABLE_INPUT_STREAM (self->base), NULL);
  source = g_pollable_source_new_full (stream, base_source, cancellable);
  return source;
}

static gssize
ts_ws_io_input_read_nonblocking (GPollableInputStream  *stream,
                                 void                  *buffer,
                                 gsize                  count,
                                 GError               **error)
{
  TsWsIOInput *self = TS_WS_IO_INPUT (stream);

  return input_read (self->owner, buffer, count, FALSE, NULL, error);
}

static void
ts_ws_io_input_pollable_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = ts_ws_io_input_can_poll;
  iface->is_readable = ts_ws_io_input_is_readable;
  iface->create_source = ts_ws_io_input_create_source;
  iface->read_nonblocking = ts_ws_io_input_read_nonblocking;
}

/* ---- Output ------------------------------------------------------------- */

static void ts_ws_io_output_pollable_init (GPollableOutputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TsWsIOOutput, ts_ws_io_output, G_TYPE_OUTPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_OUTPUT_STREAM,
                                                      ts_ws_io_output_pollable_init))

static gssize
ts_ws_io_output_write_fn (GOutputStream  *stream,
                          const void     *buffer,
                          gsize           count,
                          GCancellable   *cancellable,
                          GError        **error)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);

  return output_write (self->owner, buffer, count, TRUE, cancellable, error);
}

static gboolean
ts_ws_io_output_flush (GOutputStream  *stream,
                       GCancellable   *cancellable,
                       GError        **error)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);

  return g_output_stream_flush (self->base, cancellable, error);
}

static gboolean
ts_ws_io_output_close_fn (GOutputStream  *stream,
                          GCancellable   *cancellable,
                          GError        **error)
{
  return TRUE;
}

static void
ts_ws_io_output_finalize (GObject *object)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (object);

  g_clear_object (&self->base);
  G_OBJECT_CLASS (ts_ws_io_output_parent_class)->finalize (object);
}

static void
ts_ws_io_output_class_init (TsWsIOOutputClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GOutputStreamClass *output_class = G_OUTPUT_STREAM_CLASS (klass);

  object_class->finalize = ts_ws_io_output_finalize;
  output_class->write_fn = ts_ws_io_output_write_fn;
  output_class->flush = ts_ws_io_output_flush;
  output_class->close_fn = ts_ws_io_output_close_fn;
}

static void
ts_ws_io_output_init (TsWsIOOutput *self)
{
}

static gboolean
ts_ws_io_output_can_poll (GPollableOutputStream *stream)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);

  return G_IS_POLLABLE_OUTPUT_STREAM (self->base) &&
         g_pollable_output_stream_can_poll (G_POLLABLE_OUTPUT_STREAM (self->base));
}

static gboolean
ts_ws_io_output_is_writable (GPollableOutputStream *stream)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);

  return g_pollable_output_stream_is_writable (G_POLLABLE_OUTPUT_STREAM (self->base));
}

static GSource *
ts_ws_io_output_create_source (GPollableOutputStream *stream,
                               GCancellable          *cancellable)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);
  g_autoptr(GSource) base_source = NULL;

  base_source = g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (self->base), NULL);
  return g_pollable_source_new_full (stream, base_source, cancellable);
}

static gssize
ts_ws_io_output_write_nonblocking (GPollableOutputStream  *stream,
                                   const void             *buffer,
                                   gsize                   count,
                                   GError                **error)
{
  TsWsIOOutput *self = TS_WS_IO_OUTPUT (stream);

  return output_write (self->owner, buffer, count, FALSE, NULL, error);
}

static void
ts_ws_io_output_pollable_init (GPollableOutputStreamInterface *iface)
{
  iface->can_poll = ts_ws_io_output_can_poll;
  iface->is_writable = ts_ws_io_output_is_writable;
  iface->create_source = ts_ws_io_output_create_source;
  iface->write_nonblocking = ts_ws_io_output_write_nonblocking;
}

/* ---- API ---------------------------------------------------------------- */

TsWsIOStream *
ts_ws_io_stream_new (GIOStream *base,
                     guint64    max_message_size)
{
  TsWsIOStream *self;

  g_return_val_if_fail (G_IS_IO_STREAM (base), NULL);
  g_return_val_if_fail (G_IS_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (base)), NULL);
  g_return_val_if_fail (G_IS_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (base)), NULL);

  self = g_object_new (TS_TYPE_WS_IO_STREAM, NULL);
  self->base = g_object_ref (base);
  self->max_message_size = max_message_size;

  self->input = g_object_new (TS_TYPE_WS_IO_INPUT, NULL);
  self->input->owner = self;
  self->input->base = g_object_ref (g_io_stream_get_input_stream (base));

  self->output = g_object_new (TS_TYPE_WS_IO_OUTPUT, NULL);
  self->output->owner = self;
  self->output->base = g_object_ref (g_io_stream_get_output_stream (base));

  return self;
}

GIOStream *
ts_ws_io_stream_get_base_stream (TsWsIOStream *self)
{
  g_return_val_if_fail (TS_IS_WS_IO_STREAM (self), NULL);

  return self->base;
}

guint64
ts_ws_io_stream_get_data_bytes_written (TsWsIOStream *self)
{
  g_return_val_if_fail (TS_IS_WS_IO_STREAM (self), 0);

  return self->data_bytes_written;
}

void
ts_ws_io_stream_override_close_code (TsWsIOStream *self,
                                     guint16       code)
{
  g_return_if_fail (TS_IS_WS_IO_STREAM (self));

  self->close_code = code;
}

gboolean
ts_ws_io_stream_is_discarding (TsWsIOStream *self)
{
  g_return_val_if_fail (TS_IS_WS_IO_STREAM (self), FALSE);

  return self->discarding;
}
