/* ts-ws-io-private.h: a WebSocket-aware GIOStream wrapper for libsoup 3.2
 *
 * SPDX-License-Identifier: MIT
 *
 * TsWsIOStream sits between a SoupWebsocketConnection and the socket
 * stream it runs on. It passes every byte through unchanged, except as
 * noted, and watches the WebSocket frame headers on both directions to
 * make up for three gaps of libsoup 3.2.3:
 *
 * - Close codes. soup_websocket_connection_close() turns every code under
 *   3000 that libsoup does not know (1013 "try again later" among them)
 *   into a 1002 protocol error. ts_ws_io_stream_override_close_code()
 *   rewrites the two code bytes of the next close frame the connection
 *   writes: close with a code libsoup accepts (1000) and the reason you
 *   want, and the peer receives the overridden code with that reason. The
 *   frame keeps its length.
 *
 * - Buffered amount. libsoup has no bufferedAmount: the stream counts the
 *   bytes of data frames (header included) that actually reached the
 *   socket, so a caller that also counts the frame bytes it hands to
 *   libsoup knows exactly what is still queued.
 *
 * - Whole-message size. max-incoming-payload-size bounds a single frame;
 *   continuation frames pile up without limit. The stream adds the payload
 *   lengths of the frames of each incoming data message and, once the sum
 *   would pass max_message_size, withholds that frame from libsoup,
 *   discards all further input and emits "message-too-big" (from an idle
 *   callback, never inside libsoup's read). After that, once a close frame
 *   has been written, the next read reports end of stream so libsoup
 *   finishes closing without waiting for the peer.
 *
 * The input and output streams are pollable (libsoup requires it). Only
 * non-blocking I/O is watched closely; blocking reads and writes pass
 * through the same accounting.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TS_TYPE_WS_IO_STREAM (ts_ws_io_stream_get_type ())
G_DECLARE_FINAL_TYPE (TsWsIOStream, ts_ws_io_stream, TS, WS_IO_STREAM, GIOStream)

/* base: the stream to wrap (a reference is taken); its input and output
 * streams must be pollable. max_message_size: the largest incoming data
 * message (sum of its frames' payloads); 0 means no limit. Frames may be
 * masked or not (the mask bit of each header says). */
TsWsIOStream *ts_ws_io_stream_new                    (GIOStream    *base,
                                                      guint64       max_message_size);
GIOStream    *ts_ws_io_stream_get_base_stream        (TsWsIOStream *self);

/* Bytes of data frames (opcodes 0, 1, 2; header and payload) written to the
 * base stream so far. */
guint64       ts_ws_io_stream_get_data_bytes_written (TsWsIOStream *self);

/* The next close frame written gets this code (its reason is kept). */
void          ts_ws_io_stream_override_close_code    (TsWsIOStream *self,
                                                      guint16       code);

/* TRUE once an incoming message passed max_message_size. */
gboolean      ts_ws_io_stream_is_discarding          (TsWsIOStream *self);

/* The size of the WebSocket frame a server writes for a payload of len
 * bytes (unmasked, no extensions). */
static inline guint64
ts_ws_frame_size (guint64 len)
{
  return len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
}

G_END_DECLS
