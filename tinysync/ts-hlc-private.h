/* ts-hlc-private.h: TinyBase's hash, unique ids and hybrid logical clock
 *
 * SPDX-License-Identifier: MIT
 *
 * Plain C, no GObject, no I/O. PROTOCOL.md sections 2, 3 and 5.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* ---- Hash (PROTOCOL.md section 3): 32-bit FNV-1a over bytes ----------- */

#define TS_HASH_INIT 2166136261u

static inline guint32
ts_hash_update (guint32 h, const void *data, gsize len)
{
  const guint8 *p = data;
  for (gsize i = 0; i < len; i++)
    {
      h ^= p[i];
      h *= 16777619u;
    }
  return h;
}

static inline guint32
ts_hash_bytes (const void *data, gsize len)
{
  return ts_hash_update (TS_HASH_INIT, data, len);
}

/* Hash of a WTF-8 string as TinyBase hashes a JS string: its TextEncoder
 * UTF-8 bytes, so each lone surrogate is hashed as EF BF BD. */
guint32 ts_hash_string (const char *s, gsize len);

/* Like ts_hash_string but continues from h. */
guint32 ts_hash_update_string (guint32 h, const char *s, gsize len);

/* Appends decimal(n) to h: the bytes of the plain base-10 form. */
guint32 ts_hash_update_uint (guint32 h, guint32 n);

/* I(id, child) = H(id + ":" + decimal(child)) (section 7.2). */
guint32 ts_hash_id (const char *id, gsize id_len, guint32 child_hash);

/* leafHash = H(json + ":" + hlc) where json is the canonical JSON text of
 * the stored value ("null" for a deletion) and hlc is 0 or 16 bytes. */
guint32 ts_hash_leaf (const char *json, gsize json_len, const char *hlc, gsize hlc_len);

/* ---- Unique ids (section 2) ---------------------------------------------- */

extern const char ts_id_alphabet[65];

/* Fills out[0..len-1] with random alphabet characters and out[len] = 0. */
void ts_random_id (char *out, gsize len);

/* ---- HLC (section 5) ------------------------------------------------------ */

#define TS_HLC_LEN 16
#define TS_HLC_MAX_FUTURE_MS 300000
#define TS_HLC_MAX_TIME ((G_GINT64_CONSTANT (1) << 42) - 1)
#define TS_HLC_MAX_COUNTER ((1 << 24) - 1)

/* An HLC in memory: the 16 characters, or all zero bytes for the empty HLC
 * "". memcmp of two TsHlc orders them exactly as JS compares the strings
 * ("" first). */
typedef struct {
  char c[TS_HLC_LEN];
} TsHlc;

static inline gboolean
ts_hlc_is_empty (const TsHlc *hlc)
{
  return hlc->c[0] == 0;
}

static inline int
ts_hlc_compare (const TsHlc *a, const TsHlc *b)
{
  return memcmp (a->c, b->c, TS_HLC_LEN);
}

/* Writes the 5-character client id for a unique id (low 30 bits of its
 * hash), out must hold 6 bytes (NUL-terminated). */
void     ts_hlc_client_id_for     (const char *unique_id, gsize len, char out[6]);

void     ts_hlc_encode            (TsHlc *out, gint64 logical_time, guint32 counter,
                                   const char client_id[5]);
/* Decodes; characters outside the alphabet count as 0. Empty gives 0, 0. */
void     ts_hlc_decode            (const TsHlc *hlc, gint64 *logical_time,
                                   guint32 *counter);

/* isHlc(s, max_time): "" or exactly 16 alphabet characters whose logical
 * time is <= max_time (G_MAXINT64 for the wire check). On success fills
 * *out (if not NULL). */
gboolean ts_hlc_parse             (const char *s, gsize len, gint64 max_time,
                                   TsHlc *out);

/* Length of the string form: 0 or 16. */
static inline gsize
ts_hlc_len (const TsHlc *hlc)
{
  return ts_hlc_is_empty (hlc) ? 0 : TS_HLC_LEN;
}

/* The clock of one store (section 5.5). */
typedef gint64 (*TsNowFunc) (gpointer user_data);

typedef struct {
  gint64    last_time;     /* lastLogicalTime, initially 0 */
  gint64    last_counter;  /* lastCounter, initially -1 */
  char      client_id[6];
  TsNowFunc now;           /* NULL: g_get_real_time () / 1000 */
  gpointer  now_data;
} TsClock;

void     ts_clock_init            (TsClock *clock, const char *unique_id, gsize len);
gint64   ts_clock_now             (TsClock *clock);
/* seen(hlc); hlc NULL means "no HLC given". */
void     ts_clock_seen            (TsClock *clock, const TsHlc *hlc);
void     ts_clock_next            (TsClock *clock, TsHlc *out);

G_END_DECLS
