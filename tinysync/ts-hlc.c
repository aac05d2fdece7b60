/* ts-hlc.c: TinyBase's hash, unique ids and hybrid logical clock
 *
 * SPDX-License-Identifier: MIT
 *
 * PROTOCOL.md sections 2 (ids), 3 (hash) and 5 (HLC).
 */

#include "config.h"

#include <string.h>

#if defined(__has_include)
# if __has_include(<sys/random.h>)
#  include <sys/random.h>
#  define HAVE_GETRANDOM 1
# endif
#endif

#include "ts-hlc-private.h"

/* ---- Hash ----------------------------------------------------------------- */

guint32
ts_hash_update_string (guint32     h,
                       const char *s,
                       gsize       len)
{
  const guint8 *p = (const guint8 *) s;
  const guint8 *end = p + len;

  /* WTF-8 lone surrogates (ED A0..BF xx) hash as TextEncoder's EF BF BD;
   * everything else is hashed as is. */
  for (;;)
    {
      const guint8 *ed = memchr (p, 0xED, (gsize) (end - p));

      if (ed == NULL)
        return ts_hash_update (h, p, (gsize) (end - p));
      if (end - ed >= 3 && ed[1] >= 0xA0)
        {
          static const guint8 replacement[3] = { 0xEF, 0xBF, 0xBD };

          h = ts_hash_update (h, p, (gsize) (ed - p));
          h = ts_hash_update (h, replacement, 3);
          p = ed + 3;
        }
      else
        {
          h = ts_hash_update (h, p, (gsize) (ed + 1 - p));
          p = ed + 1;
        }
    }
}

guint32
ts_hash_string (const char *s,
                gsize       len)
{
  return ts_hash_update_string (TS_HASH_INIT, s, len);
}

guint32
ts_hash_update_uint (guint32 h,
                     guint32 n)
{
  char buf[10];
  int i = sizeof buf;

  do
    {
      buf[--i] = (char) ('0' + n % 10);
      n /= 10;
    }
  while (n != 0);
  return ts_hash_update (h, buf + i, sizeof buf - (gsize) i);
}

guint32
ts_hash_id (const char *id,
            gsize       id_len,
            guint32     child_hash)
{
  guint32 h = ts_hash_update_string (TS_HASH_INIT, id, id_len);

  h = ts_hash_update (h, ":", 1);
  return ts_hash_update_uint (h, child_hash);
}

guint32
ts_hash_leaf (const char *json,
              gsize       json_len,
              const char *hlc,
              gsize       hlc_len)
{
  guint32 h = ts_hash_update (TS_HASH_INIT, json, json_len);

  h = ts_hash_update (h, ":", 1);
  return ts_hash_update (h, hlc, hlc_len);
}

/* ---- Unique ids ------------------------------------------------------------- */

const char ts_id_alphabet[65] =
  "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/* Value of each alphabet character, -1 for any other byte. */
static const gint8 digit_value[256] = {
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  /* ' ' .. '/': '-' is 0 */
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  0, -1, -1,
  /* '0' .. '9' are 1..10 */
   1,  2,  3,  4,  5,  6,  7,  8,  9, 10, -1, -1, -1, -1, -1, -1,
  /* '@', 'A' .. 'O' are 11..25 */
  -1, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
  /* 'P' .. 'Z' are 26..36, '_' is 37 */
  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, -1, -1, -1, -1, 37,
  /* '`', 'a' .. 'o' are 38..52 */
  -1, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
  /* 'p' .. 'z' are 53..63 */
  53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

void
ts_random_id (char  *out,
              gsize  len)
{
  gsize i = 0;

  g_return_if_fail (out != NULL);

#ifdef HAVE_GETRANDOM
  {
    /* Like TinyBase's getUniqueId: bytes from the system's CSPRNG. */
    guint8 bytes[64];

    while (i < len)
      {
        gsize want = MIN (len - i, sizeof bytes);
        gssize got = getrandom (bytes, want, 0);

        if (got <= 0)
          break;
        for (gssize j = 0; j < got; j++)
          out[i++] = ts_id_alphabet[bytes[j] & 63];
      }
  }
#endif

  /* Fallback (no getrandom, or it failed): GLib's generator, 5 characters
   * per 32-bit draw. */
  while (i < len)
    {
      guint32 r = g_random_int ();

      for (int j = 0; j < 5 && i < len; j++, r >>= 6)
        out[i++] = ts_id_alphabet[r & 63];
    }
  out[len] = '\0';
}

/* ---- HLC -------------------------------------------------------------------- */

void
ts_hlc_client_id_for (const char *unique_id,
                      gsize       len,
                      char        out[6])
{
  guint32 h = ts_hash_string (unique_id, len);

  out[0] = ts_id_alphabet[(h >> 24) & 63];
  out[1] = ts_id_alphabet[(h >> 18) & 63];
  out[2] = ts_id_alphabet[(h >> 12) & 63];
  out[3] = ts_id_alphabet[(h >> 6) & 63];
  out[4] = ts_id_alphabet[h & 63];
  out[5] = '\0';
}

void
ts_hlc_encode (TsHlc      *out,
               gint64      logical_time,
               guint32     counter,
               const char  client_id[5])
{
  guint64 t = (guint64) logical_time;

  g_return_if_fail (out != NULL);
  g_return_if_fail (client_id != NULL);

  for (int i = 0; i < 7; i++)
    out->c[i] = ts_id_alphabet[(t >> (6 * (6 - i))) & 63];
  for (int i = 0; i < 4; i++)
    out->c[7 + i] = ts_id_alphabet[(counter >> (6 * (3 - i))) & 63];
  memcpy (out->c + 11, client_id, 5);
}

static inline int
digit_or_zero (char c)
{
  int v = digit_value[(guint8) c];

  return v < 0 ? 0 : v;
}

void
ts_hlc_decode (const TsHlc *hlc,
               gint64      *logical_time,
               guint32     *counter)
{
  gint64 t = 0;
  guint32 n = 0;

  g_return_if_fail (hlc != NULL);

  if (!ts_hlc_is_empty (hlc))
    {
      for (int i = 0; i < 7; i++)
        t = (t << 6) | digit_or_zero (hlc->c[i]);
      for (int i = 7; i < 11; i++)
        n = (n << 6) | (guint32) digit_or_zero (hlc->c[i]);
    }
  if (logical_time != NULL)
    *logical_time = t;
  if (counter != NULL)
    *counter = n;
}

static gboolean
hlc_shape_ok (const char *s)
{
  for (int i = 0; i < TS_HLC_LEN; i++)
    if (digit_value[(guint8) s[i]] < 0)
      return FALSE;
  return TRUE;
}

gboolean
ts_hlc_parse (const char *s,
              gsize       len,
              gint64      max_time,
              TsHlc      *out)
{
  TsHlc hlc;
  gint64 t;

  if (len == 0)
    {
      if (out != NULL)
        memset (out, 0, sizeof *out);
      return TRUE;
    }
  if (len != TS_HLC_LEN || s == NULL || !hlc_shape_ok (s))
    return FALSE;

  memcpy (hlc.c, s, TS_HLC_LEN);
  ts_hlc_decode (&hlc, &t, NULL);
  if (t > max_time)
    return FALSE;
  if (out != NULL)
    *out = hlc;
  return TRUE;
}

/* ---- Clock -------------------------------------------------------------------- */

void
ts_clock_init (TsClock    *clock,
               const char *unique_id,
               gsize       len)
{
  g_return_if_fail (clock != NULL);

  clock->last_time = 0;
  clock->last_counter = -1;
  clock->now = NULL;
  clock->now_data = NULL;
  if (unique_id != NULL)
    ts_hlc_client_id_for (unique_id, len, clock->client_id);
  else
    ts_random_id (clock->client_id, 5);   /* createMergeableStore () without id */
}

gint64
ts_clock_now (TsClock *clock)
{
  if (clock->now != NULL)
    return clock->now (clock->now_data);
  return g_get_real_time () / 1000;
}

void
ts_clock_seen (TsClock     *clock,
               const TsHlc *hlc)
{
  gint64 now, prev, rt = 0;
  guint32 rc = 0;

  g_return_if_fail (clock != NULL);

  now = ts_clock_now (clock);

  if (hlc != NULL && !ts_hlc_is_empty (hlc))
    {
      /* isHlc (hlc, now + HLC_MAX_FUTURE_OFFSET), or ignore it. */
      if (!hlc_shape_ok (hlc->c))
        return;
      ts_hlc_decode (hlc, &rt, &rc);
      if (rt > now + TS_HLC_MAX_FUTURE_MS)
        return;
    }

  prev = clock->last_time;
  clock->last_time = MAX (MAX (prev, rt), now);
  if (clock->last_time == prev)
    {
      if (clock->last_time == rt)
        clock->last_counter = MAX (clock->last_counter, (gint64) rc);
    }
  else
    clock->last_counter = clock->last_time == rt ? (gint64) rc : -1;
}

void
ts_clock_next (TsClock *clock,
               TsHlc   *out)
{
  g_return_if_fail (clock != NULL);
  g_return_if_fail (out != NULL);

  ts_clock_seen (clock, NULL);
  clock->last_counter++;
  if (clock->last_counter > TS_HLC_MAX_COUNTER)
    {
      clock->last_time++;
      clock->last_counter = 0;
    }
  ts_hlc_encode (out, clock->last_time, (guint32) clock->last_counter, clock->client_id);
}
