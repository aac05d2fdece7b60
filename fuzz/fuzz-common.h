/* fuzz-common.h: helpers shared by the libFuzzer targets
 *
 * SPDX-License-Identifier: MIT
 *
 * Every target links the internal static library (private API) and runs
 * under AddressSanitizer and UndefinedBehaviorSanitizer. A GLib warning or
 * critical (a g_return_if_fail() reached from peer input) is a finding:
 * the log writer aborts on it, so libFuzzer reports it as a crash. Debug
 * and informational messages are dropped to keep the fuzzer fast.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);
int LLVMFuzzerInitialize   (int           *argc,
                            char        ***argv);

/* A failed invariant: print it and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond)                                                   \
  G_STMT_START {                                                           \
    if (G_UNLIKELY (!(cond)))                                              \
      {                                                                    \
        fprintf (stderr, "%s:%d: invariant failed: %s\n",                  \
                 __FILE__, __LINE__, #cond);                               \
        abort ();                                                          \
      }                                                                    \
  } G_STMT_END

static GLogWriterOutput
fuzz_log_writer (GLogLevelFlags   log_level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  if (log_level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    {
      g_log_writer_standard_streams (log_level, fields, n_fields, user_data);
      abort ();
    }
  return G_LOG_WRITER_HANDLED;
}

static inline void
fuzz_init (void)
{
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
}
