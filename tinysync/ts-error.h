/* ts-error.h: the tinysync error domain
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <glib.h>

#include "ts-version-macros.h"

G_BEGIN_DECLS

/**
 * TS_ERROR:
 *
 * The error domain of tinysync. Errors in this domain are from the
 * [enum@Tinysync.Error] enumeration.
 */
#define TS_ERROR (ts_error_quark ())

/**
 * TsError:
 * @TS_ERROR_FAILED: a generic failure
 * @TS_ERROR_INVALID_JSON: text that is not valid JSON (syntax, nesting too deep,
 *   a number out of range)
 * @TS_ERROR_INVALID_ARGUMENT: valid JSON of the wrong shape (for example an
 *   array where an object of rows was expected, or an empty row)
 * @TS_ERROR_INVALID_CELL: a cell or value that TinyBase does not allow (the
 *   reserved strings `"\uFFFC"` and strings starting with U+FFFD, NaN,
 *   infinities, an unsupported #GVariant type)
 * @TS_ERROR_INVALID_ID: an id that is not valid UTF-8
 * @TS_ERROR_INVALID_CONTENT: mergeable content or changes that fail TinyBase's
 *   validation (a bad stamp, an invalid HLC, an HLC more than five minutes in
 *   the future)
 * @TS_ERROR_REQUEST_FAILED: a synchronizer request timed out or was abandoned
 *   (TinyBase's `tinybase:3`)
 * @TS_ERROR_INVALID_MESSAGE: an invalid protocol message or payload
 *   (TinyBase's `tinybase:14`)
 * @TS_ERROR_OVERFLOW: a limit was exceeded (TinyBase's `tinybase:15`)
 * @TS_ERROR_CLOSED: the transport is not open, closed or failed (TinyBase's
 *   `tinybase:5`)
 * @TS_ERROR_CANCELLED: the operation was cancelled
 * @TS_ERROR_INVALID_CHANNEL: an invalid or duplicate channel id
 *   (TinyBase's `tinybase:6` and `tinybase:7`)
 * @TS_ERROR_CONTROL_TIMEOUT: a multiplex control message was not acknowledged
 *   in time (TinyBase's `tinybase:4`)
 * @TS_ERROR_IO: reading or writing persisted data failed
 * @TS_ERROR_CLOCK: a local write lost against an existing stamp (TinyBase's
 *   `tinybase:13`)
 *
 * Error codes of the %TS_ERROR domain. New codes are only ever appended.
 *
 * Since: 1.0
 */
typedef enum {
  TS_ERROR_FAILED,
  TS_ERROR_INVALID_JSON,
  TS_ERROR_INVALID_ARGUMENT,
  TS_ERROR_INVALID_CELL,
  TS_ERROR_INVALID_ID,
  TS_ERROR_INVALID_CONTENT,
  TS_ERROR_REQUEST_FAILED,
  TS_ERROR_INVALID_MESSAGE,
  TS_ERROR_OVERFLOW,
  TS_ERROR_CLOSED,
  TS_ERROR_CANCELLED,
  TS_ERROR_INVALID_CHANNEL,
  TS_ERROR_CONTROL_TIMEOUT,
  TS_ERROR_IO,
  TS_ERROR_CLOCK,
} TsError;

TS_AVAILABLE_IN_ALL
GQuark ts_error_quark (void);

G_END_DECLS
