/* test-store-differential.c: replay random operation scripts recorded from
 * the real TinyBase 10.0.1 (tests/interop/store-diff.mjs) through
 * TsMergeableStore and compare every observable byte for byte.
 *
 * Usage: test-store-differential [GTest options] [FILE]
 *        (or TS_DIFF_FILE=FILE test-store-differential)
 *
 * One GTest case per script. After each step the test compares, for every
 * store listed in the step's expectation: the encoded mergeable content, the
 * content hashes, getTables/getValues JSON, the encoded changes of the
 * transaction that finished during the step (via "transaction-finished"),
 * and the ids addRow returned. The first difference in a script fails that
 * script with both texts.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef G_OS_UNIX
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <tinysync/tinysync.h>

typedef struct
{
  char             *name;
  TsMergeableStore *store;
  gint64            clock_offset; /* added to the step's now */
  struct _Replay   *replay;
  gulong            handler;
  guint             finished;   /* transaction-finished emissions this step */
  char             *changes;    /* changes captured by the last emission */
} Peer;

typedef struct _Replay
{
  gint64      now;
  GPtrArray  *peers;            /* Peer* */
  GPtrArray  *returned;         /* char*, ids addRow returned this step */
  JsonObject *expect_stores;    /* the current step's expect.stores */
} Replay;

static JsonParser *diff_parser;
static JsonArray *diff_scripts;

/* Warnings tinysync logged during the current step (see log_writer). */
static GPtrArray *step_warnings;

/* tinysync's merge() has no GError: it logs a warning when one side refuses
 * the other's content (TinyBase's merge() ignores that silently). Collect
 * warnings instead of aborting or printing them, so each step can check
 * them (compare_warnings). */
static GLogWriterOutput
log_writer (GLogLevelFlags   log_level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  if ((log_level & G_LOG_LEVEL_MASK) == G_LOG_LEVEL_WARNING && step_warnings != NULL)
    {
      const char *message = NULL;

      for (gsize i = 0; i < n_fields; i++)
        if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0)
          message = fields[i].value;
      g_ptr_array_add (step_warnings, g_strdup (message != NULL ? message : "(no message)"));
      /* Printed by compare_warnings() if unexpected. */
      return G_LOG_WRITER_HANDLED;
    }
  return g_log_writer_default (log_level, fields, n_fields, user_data);
}

static gint64
peer_clock (gpointer user_data)
{
  Peer *peer = user_data;

  return peer->replay->now + peer->clock_offset;
}

static void
on_transaction_finished (TsMergeableStore *store,
                         gpointer          user_data)
{
  Peer *peer = user_data;

  g_free (peer->changes);
  peer->changes = ts_mergeable_store_get_transaction_mergeable_changes_json (store, FALSE);
  peer->finished++;
}

static void
peer_free (gpointer data)
{
  Peer *peer = data;

  if (peer->handler != 0)
    g_signal_handler_disconnect (peer->store, peer->handler);
  g_clear_object (&peer->store);
  g_free (peer->changes);
  g_free (peer->name);
  g_free (peer);
}

static Peer *
replay_find_peer (Replay     *replay,
                  const char *name)
{
  for (guint i = 0; i < replay->peers->len; i++)
    {
      Peer *peer = g_ptr_array_index (replay->peers, i);

      if (g_strcmp0 (peer->name, name) == 0)
        return peer;
    }
  g_error ("the script file names an unknown store %s", name);
}

/* Whether TinyBase ran no transaction at all on @peer during this step,
 * i.e. it ignored an invalid mergeable input. tinysync may report an error
 * there instead. */
static gboolean
replay_expects_ignored (Replay *replay,
                        Peer   *peer)
{
  JsonObject *expect;

  if (replay->expect_stores == NULL ||
      !json_object_has_member (replay->expect_stores, peer->name))
    return FALSE;
  expect = json_object_get_object_member (replay->expect_stores, peer->name);
  return json_object_get_null_member (expect, "changes");
}

static const char *
call_id (JsonObject *call,
         guint       index)
{
  JsonArray *ids = json_object_get_array_member (call, "ids");

  if (ids == NULL || index >= json_array_get_length (ids))
    g_error ("the script file lacks id %u of a %s call", index,
             json_object_get_string_member (call, "method"));
  return json_array_get_string_element (ids, index);
}

static const char *
call_json (JsonObject *call)
{
  const char *json = json_object_get_string_member (call, "json");

  if (json == NULL)
    g_error ("the script file lacks the JSON argument of a %s call",
             json_object_get_string_member (call, "method"));
  return json;
}

/* Runs one call on @peer; returns FALSE with @error when tinysync refused
 * it although TinyBase accepted it. */
static gboolean
replay_call (Replay      *replay,
             Peer        *peer,
             JsonObject  *call,
             GError     **error)
{
  TsMergeableStore *s = peer->store;
  const char *method = json_object_get_string_member (call, "method");
  gboolean ok = TRUE;

  if (g_str_equal (method, "setTables"))
    ok = ts_mergeable_store_set_tables_json (s, call_json (call), error);
  else if (g_str_equal (method, "setTable"))
    ok = ts_mergeable_store_set_table_json (s, call_id (call, 0), call_json (call), error);
  else if (g_str_equal (method, "setRow"))
    ok = ts_mergeable_store_set_row_json (s, call_id (call, 0), call_id (call, 1),
                                          call_json (call), error);
  else if (g_str_equal (method, "setPartialRow"))
    ok = ts_mergeable_store_set_partial_row_json (s, call_id (call, 0), call_id (call, 1),
                                                  call_json (call), error);
  else if (g_str_equal (method, "setCell"))
    ok = ts_mergeable_store_set_cell_json (s, call_id (call, 0), call_id (call, 1),
                                           call_id (call, 2), call_json (call), error);
  else if (g_str_equal (method, "setValues"))
    ok = ts_mergeable_store_set_values_json (s, call_json (call), error);
  else if (g_str_equal (method, "setPartialValues"))
    ok = ts_mergeable_store_set_partial_values_json (s, call_json (call), error);
  else if (g_str_equal (method, "setValue"))
    ok = ts_mergeable_store_set_value_json (s, call_id (call, 0), call_json (call), error);
  else if (g_str_equal (method, "addRow"))
    {
      char *id = ts_mergeable_store_add_row_json (s, call_id (call, 0), call_json (call),
                                                  json_object_get_boolean_member (call, "reuseRowIds"),
                                                  error);
      if (id == NULL)
        {
          if (error != NULL && *error == NULL)
            g_set_error_literal (error, g_quark_from_static_string ("store-differential"), 0,
                                 "addRow returned NULL without an error");
          ok = FALSE;
        }
      else
        g_ptr_array_add (replay->returned, id);
    }
  else if (g_str_equal (method, "delTables"))
    ts_mergeable_store_del_tables (s);
  else if (g_str_equal (method, "delTable"))
    ts_mergeable_store_del_table (s, call_id (call, 0));
  else if (g_str_equal (method, "delRow"))
    ts_mergeable_store_del_row (s, call_id (call, 0), call_id (call, 1));
  else if (g_str_equal (method, "delCell"))
    ts_mergeable_store_del_cell (s, call_id (call, 0), call_id (call, 1), call_id (call, 2));
  else if (g_str_equal (method, "delValues"))
    ts_mergeable_store_del_values (s);
  else if (g_str_equal (method, "delValue"))
    ts_mergeable_store_del_value (s, call_id (call, 0));
  else if (g_str_equal (method, "transaction"))
    {
      JsonArray *ops = json_object_get_array_member (call, "ops");

      ts_mergeable_store_start_transaction (s);
      for (guint i = 0; ok && i < json_array_get_length (ops); i++)
        ok = replay_call (replay, peer, json_array_get_object_element (ops, i), error);
      /* Finish even after a failure so the store is left consistent. */
      ts_mergeable_store_finish_transaction (s);
    }
  else if (g_str_equal (method, "applyMergeableChanges") ||
           g_str_equal (method, "setMergeableContent"))
    {
      g_autoptr(GError) local_error = NULL;

      if (g_str_equal (method, "applyMergeableChanges"))
        ok = ts_mergeable_store_apply_mergeable_changes_json (s, call_json (call), &local_error);
      else
        ok = ts_mergeable_store_set_mergeable_content_json (s, call_json (call), &local_error);
      if (!ok && replay_expects_ignored (replay, peer))
        {
          /* TinyBase silently ignored this input as invalid: an error is
           * tinysync's documented equivalent. */
          ok = TRUE;
        }
      else if (!ok)
        {
          if (local_error == NULL)
            g_set_error_literal (&local_error, g_quark_from_static_string ("store-differential"), 0,
                                 "returned FALSE without an error");
          g_propagate_error (error, g_steal_pointer (&local_error));
        }
    }
  else if (g_str_equal (method, "merge"))
    {
      Peer *other = replay_find_peer (replay, json_object_get_string_member (call, "from"));

      ts_mergeable_store_merge (s, other->store);
    }
  else
    g_error ("unknown method %s in the script file", method);

  if (!ok && error != NULL && *error != NULL)
    g_prefix_error (error, "%s: ", method);
  return ok;
}

/* Appends a description of the first difference between two texts. */
static void
describe_text_diff (GString    *out,
                    const char *what,
                    const char *expected,
                    const char *actual)
{
  gsize i = 0;
  gsize from;

  g_string_append_printf (out, "%s differs\n", what);
  if (expected == NULL || actual == NULL)
    {
      g_string_append_printf (out, "  TinyBase: %s\n  tinysync: %s\n",
                              expected != NULL ? expected : "(none)",
                              actual != NULL ? actual : "(none)");
      return;
    }
  while (expected[i] != '\0' && expected[i] == actual[i])
    i++;
  from = i > 60 ? i - 60 : 0;
  /* Do not start the excerpt inside a UTF-8 sequence. */
  while (from > 0 && (expected[from] & 0xc0) == 0x80)
    from--;
  g_string_append_printf (out, "  first difference at byte %" G_GSIZE_FORMAT "\n", i);
  g_string_append_printf (out, "  TinyBase near it: ...%.140s\n", expected + from);
  g_string_append_printf (out, "  tinysync near it: ...%.140s\n", actual + from);
  g_string_append_printf (out, "  TinyBase: %s\n  tinysync: %s\n", expected, actual);
}

/* Compares the state of @peer to @expect; appends differences to @out. */
static void
compare_peer (Peer       *peer,
              JsonObject *expect,
              GString    *out)
{
  g_autofree char *content = ts_mergeable_store_get_mergeable_content_json (peer->store);
  g_autofree char *tables = ts_mergeable_store_get_tables_json (peer->store);
  g_autofree char *values = ts_mergeable_store_get_values_json (peer->store);
  JsonArray *hashes = json_object_get_array_member (expect, "hashes");
  const char *exp_changes = json_object_get_null_member (expect, "changes")
    ? NULL : json_object_get_string_member (expect, "changes");
  const char *exp_content = json_object_get_string_member (expect, "content");
  const char *exp_tables = json_object_get_string_member (expect, "tables");
  const char *exp_values = json_object_get_string_member (expect, "values");
  guint32 tables_hash = 0, values_hash = 0;
  gint64 exp_tables_hash = json_array_get_int_element (hashes, 0);
  gint64 exp_values_hash = json_array_get_int_element (hashes, 1);
  g_autofree char *prefix = g_strdup_printf ("store %s: ", peer->name);
  g_autofree char *label = NULL;

  ts_mergeable_store_get_mergeable_content_hashes (peer->store, &tables_hash, &values_hash);

  if (exp_changes == NULL && peer->finished != 0)
    {
      label = g_strconcat (prefix, "transaction changes (TinyBase finished no transaction)", NULL);
      describe_text_diff (out, label, "(no transaction)", peer->changes);
    }
  else if (exp_changes != NULL && peer->finished == 0)
    {
      label = g_strconcat (prefix, "transaction changes (tinysync emitted no transaction-finished)", NULL);
      describe_text_diff (out, label, exp_changes, "(no transaction)");
    }
  else if (exp_changes != NULL && peer->finished != 1)
    g_string_append_printf (out, "%stransaction-finished emitted %u times, TinyBase finished 1 transaction\n",
                            prefix, peer->finished);
  else if (g_strcmp0 (exp_changes, peer->changes) != 0)
    {
      label = g_strconcat (prefix, "transaction changes", NULL);
      describe_text_diff (out, label, exp_changes, peer->changes);
    }
  g_clear_pointer (&label, g_free);

  if (g_strcmp0 (exp_content, content) != 0)
    {
      label = g_strconcat (prefix, "mergeable content", NULL);
      describe_text_diff (out, label, exp_content, content);
      g_clear_pointer (&label, g_free);
    }
  if ((gint64) tables_hash != exp_tables_hash || (gint64) values_hash != exp_values_hash)
    g_string_append_printf (out, "%scontent hashes differ: TinyBase [%" G_GINT64_FORMAT ",%"
                            G_GINT64_FORMAT "], tinysync [%u,%u]\n",
                            prefix, exp_tables_hash, exp_values_hash, tables_hash, values_hash);
  if (g_strcmp0 (exp_tables, tables) != 0)
    {
      label = g_strconcat (prefix, "getTables", NULL);
      describe_text_diff (out, label, exp_tables, tables);
      g_clear_pointer (&label, g_free);
    }
  if (g_strcmp0 (exp_values, values) != 0)
    {
      label = g_strconcat (prefix, "getValues", NULL);
      describe_text_diff (out, label, exp_values, values);
    }
}

static void
compare_returned (Replay     *replay,
                  JsonObject *expect,
                  GString    *out)
{
  JsonArray *returned = json_object_has_member (expect, "returned")
    ? json_object_get_array_member (expect, "returned") : NULL;
  guint n = returned != NULL ? json_array_get_length (returned) : 0;
  gboolean same = n == replay->returned->len;

  for (guint i = 0; same && i < n; i++)
    same = g_str_equal (json_array_get_string_element (returned, i),
                        g_ptr_array_index (replay->returned, i));
  if (!same)
    {
      GString *expected = g_string_new ("[");
      GString *actual = g_string_new ("[");

      for (guint i = 0; i < n; i++)
        g_string_append_printf (expected, "%s\"%s\"", i ? "," : "",
                                json_array_get_string_element (returned, i));
      for (guint i = 0; i < replay->returned->len; i++)
        g_string_append_printf (actual, "%s\"%s\"", i ? "," : "",
                                (const char *) g_ptr_array_index (replay->returned, i));
      g_string_append_printf (out, "addRow returned ids differ\n  TinyBase: %s]\n  tinysync: %s]\n",
                              expected->str, actual->str);
      g_string_free (expected, TRUE);
      g_string_free (actual, TRUE);
    }
}

/* Diagnostics go through g_print, which converts to the locale's charset
 * (non-ASCII becomes '?' under LANG=C): write them as ASCII, with every
 * non-ASCII character as \u{XXXX} and other bytes as \xNN. */
static char *
ascii_escape (const char *text,
              gsize       max_chars)
{
  GString *out = g_string_new (NULL);
  const char *p = text;
  gsize n = 0;

  while (*p != '\0' && n++ < max_chars)
    {
      guchar c = (guchar) *p;

      if (c >= 0x20 && c < 0x7f)
        {
          g_string_append_c (out, (char) c);
          p++;
        }
      else if (c < 0x80)
        {
          g_string_append_printf (out, "\\x%02x", c);
          p++;
        }
      else
        {
          gunichar ch = g_utf8_get_char_validated (p, -1);

          if (ch == (gunichar) -1 || ch == (gunichar) -2)
            {
              g_string_append_printf (out, "\\x%02x", c);
              p++;
            }
          else
            {
              g_string_append_printf (out, "\\u{%04x}", (guint) ch);
              p = g_utf8_next_char (p);
            }
        }
    }
  if (*p != '\0')
    g_string_append (out, "...");
  return g_string_free (out, FALSE);
}

/* A warning is only acceptable from merge(), once per store that refused
 * the other's content where TinyBase ignored it too. */
static void
compare_warnings (Replay     *replay,
                  JsonObject *call,
                  GString    *out)
{
  guint allowed = 0;

  if (step_warnings->len == 0)
    return;
  if (g_str_equal (json_object_get_string_member (call, "method"), "merge"))
    for (guint i = 0; i < replay->peers->len; i++)
      {
        Peer *p = g_ptr_array_index (replay->peers, i);

        if (json_object_has_member (replay->expect_stores, p->name) &&
            replay_expects_ignored (replay, p))
          allowed++;
      }
  if (step_warnings->len > allowed)
    for (guint i = 0; i < step_warnings->len; i++)
      g_string_append_printf (out, "tinysync logged a warning: %s\n",
                              (const char *) g_ptr_array_index (step_warnings, i));
}

static void
report_failure (guint       script_index,
                guint       step_index,
                JsonObject *step,
                JsonArray  *stores,
                const char *details)
{
  g_auto(GStrv) lines = NULL;
  g_autofree char *op = NULL;
  GString *head = g_string_new (NULL);

  g_string_append_printf (head, "script %u step %u: store %s, now %" G_GINT64_FORMAT ", op %s\n",
                          script_index, step_index,
                          json_object_get_string_member (step, "store"),
                          json_object_get_int_member (step, "now"),
                          json_object_get_string_member (step, "op"));
  g_string_append (head, "  stores:");
  for (guint i = 0; i < json_array_get_length (stores); i++)
    {
      JsonObject *def = json_array_get_object_element (stores, i);
      g_autofree char *quoted = json_to_string (json_object_get_member (def, "uniqueId"), FALSE);

      g_string_append_printf (head, " %s=%s", json_object_get_string_member (def, "name"), quoted);
      if (json_object_get_int_member_with_default (def, "clockOffset", 0) != 0)
        g_string_append_printf (head, " (clock %+" G_GINT64_FORMAT " ms)",
                                json_object_get_int_member_with_default (def, "clockOffset", 0));
    }
  g_string_append_c (head, '\n');
  g_string_append (head, details);

  lines = g_strsplit (head->str, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (lines[i][0] != '\0')
      {
        g_autofree char *line = ascii_escape (lines[i], G_MAXSIZE);

        g_test_message ("%s", line);
      }
  op = ascii_escape (json_object_get_string_member (step, "op"), 160);
  g_test_fail_printf ("script %u differs from TinyBase at step %u (%s)", script_index, step_index, op);
  g_string_free (head, TRUE);
}

/* Replays @script. Returns the index of the first step that differs (with
 * @details describing it) or -1. When @progress_fd is not -1, "S<step>\n"
 * is written to it before each step, so that a parent process can tell
 * where a crash happened. */
static int
replay_script (JsonObject *script,
               GString    *details,
               int         progress_fd)
{
  JsonArray *stores = json_object_get_array_member (script, "stores");
  JsonArray *steps = json_object_get_array_member (script, "steps");
  Replay replay = { 0, };
  int failed_step = -1;

  replay.peers = g_ptr_array_new_with_free_func (peer_free);
  replay.returned = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < json_array_get_length (stores); i++)
    {
      JsonObject *def = json_array_get_object_element (stores, i);
      Peer *peer = g_new0 (Peer, 1);

      peer->name = g_strdup (json_object_get_string_member (def, "name"));
      peer->replay = &replay;
      peer->clock_offset = json_object_get_int_member_with_default (def, "clockOffset", 0);
      peer->store = ts_mergeable_store_new (json_object_get_string_member (def, "uniqueId"));
      ts_mergeable_store_set_clock (peer->store, peer_clock, peer, NULL);
      peer->handler = g_signal_connect (peer->store, "transaction-finished",
                                        G_CALLBACK (on_transaction_finished), peer);
      g_ptr_array_add (replay.peers, peer);
    }

  for (guint step_index = 0; step_index < json_array_get_length (steps); step_index++)
    {
      JsonObject *step = json_array_get_object_element (steps, step_index);
      JsonObject *call = json_object_get_object_member (step, "call");
      JsonObject *expect = json_object_get_object_member (step, "expect");
      Peer *peer = replay_find_peer (&replay, json_object_get_string_member (step, "store"));
      g_autoptr(GError) error = NULL;
      GList *names;

      if (progress_fd != -1)
        {
          char record[32];
          int len = g_snprintf (record, sizeof record, "S%u\n", step_index);

          if (write (progress_fd, record, (size_t) len) != len)
            g_error ("cannot report progress: %s", g_strerror (errno));
        }

      replay.now = json_object_get_int_member (step, "now");
      replay.expect_stores = json_object_get_object_member (expect, "stores");
      g_ptr_array_set_size (replay.returned, 0);
      g_ptr_array_set_size (step_warnings, 0);
      for (guint i = 0; i < replay.peers->len; i++)
        {
          Peer *p = g_ptr_array_index (replay.peers, i);

          p->finished = 0;
          g_clear_pointer (&p->changes, g_free);
        }

      if (!replay_call (&replay, peer, call, &error))
        g_string_append_printf (details, "tinysync refused a call TinyBase accepted: %s\n",
                                error != NULL ? error->message : "(no error set)");

      names = json_object_get_members (replay.expect_stores);
      for (GList *l = names; l != NULL; l = l->next)
        {
          Peer *p = replay_find_peer (&replay, l->data);

          compare_peer (p, json_object_get_object_member (replay.expect_stores, l->data), details);
        }
      g_list_free (names);
      /* A store that TinyBase did not touch must not report a transaction. */
      for (guint i = 0; i < replay.peers->len; i++)
        {
          Peer *p = g_ptr_array_index (replay.peers, i);

          if (!json_object_has_member (replay.expect_stores, p->name) && p->finished != 0)
            g_string_append_printf (details, "store %s emitted transaction-finished but was not involved\n",
                                    p->name);
        }
      compare_returned (&replay, expect, details);
      compare_warnings (&replay, call, details);

      if (details->len > 0)
        {
          failed_step = (int) step_index;
          break;
        }
    }

  g_ptr_array_unref (replay.returned);
  g_ptr_array_unref (replay.peers);
  return failed_step;
}

#ifdef G_OS_UNIX
/* Scripts run in a forked worker process (one for the whole run, replaced
 * after a crash), so that a crash in tinysync fails only the script it
 * happened in, says at which step, and the run goes on. The parent sends
 * "<script position>\n"; the worker answers "S<step>\n" before each step,
 * then "R<failed step or -1> <length>\n" and that many bytes of details. */
typedef struct
{
  pid_t    pid;
  int      cmd_fd;
  int      res_fd;
  GString *inbuf;
} Worker;

static Worker worker = { -1, -1, -1, NULL };

static void
write_all (int         fd,
           const char *data,
           gsize       len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        _exit (3);
      data += n;
      len -= (gsize) n;
    }
}

G_NORETURN static void
worker_main (int cmd_fd,
             int res_fd)
{
  GString *line = g_string_new (NULL);

  for (;;)
    {
      char c;
      ssize_t n = read (cmd_fd, &c, 1);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      if (c != '\n')
        {
          g_string_append_c (line, c);
          continue;
        }
      {
        JsonObject *script = json_array_get_object_element (diff_scripts, (guint) atoi (line->str));
        GString *details = g_string_new (NULL);
        int step = replay_script (script, details, res_fd);
        g_autofree char *header = g_strdup_printf ("R%d %" G_GSIZE_FORMAT "\n", step, details->len);

        write_all (res_fd, header, strlen (header));
        write_all (res_fd, details->str, details->len);
        g_string_free (details, TRUE);
        g_string_truncate (line, 0);
      }
    }
  fflush (stdout);
  fflush (stderr);
  _exit (0);
}

static void
worker_start (void)
{
  int cmd[2], res[2];

  if (pipe (cmd) != 0 || pipe (res) != 0)
    g_error ("pipe: %s", g_strerror (errno));
  fflush (stdout);
  fflush (stderr);
  worker.pid = fork ();
  if (worker.pid < 0)
    g_error ("fork: %s", g_strerror (errno));
  if (worker.pid == 0)
    {
      close (cmd[1]);
      close (res[0]);
      worker_main (cmd[0], res[1]);
    }
  close (cmd[0]);
  close (res[1]);
  worker.cmd_fd = cmd[1];
  worker.res_fd = res[0];
  worker.inbuf = g_string_new (NULL);
}

/* Ends the worker; returns its wait status. */
static int
worker_stop (void)
{
  int status = 0;

  if (worker.pid < 0)
    return 0;
  close (worker.cmd_fd);
  close (worker.res_fd);
  while (waitpid (worker.pid, &status, 0) < 0)
    if (errno != EINTR)
      g_error ("waitpid: %s", g_strerror (errno));
  g_string_free (worker.inbuf, TRUE);
  worker.pid = -1;
  worker.cmd_fd = worker.res_fd = -1;
  worker.inbuf = NULL;
  return status;
}

/* Makes worker.inbuf hold at least @len bytes; FALSE at end of input. */
static gboolean
worker_fill (gsize len)
{
  while (worker.inbuf->len < len)
    {
      char buf[65536];
      ssize_t n = read (worker.res_fd, buf, sizeof buf);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      g_string_append_len (worker.inbuf, buf, n);
    }
  return TRUE;
}

/* Takes one line (without its newline) from the worker; NULL at the end. */
static char *
worker_read_line (void)
{
  for (;;)
    {
      const char *eol = memchr (worker.inbuf->str, '\n', worker.inbuf->len);

      if (eol != NULL)
        {
          gsize len = (gsize) (eol - worker.inbuf->str);
          char *line = g_strndup (worker.inbuf->str, len);

          g_string_erase (worker.inbuf, 0, (gssize) len + 1);
          return line;
        }
      if (!worker_fill (worker.inbuf->len + 1))
        return NULL;
    }
}

static int
replay_script_isolated (guint    position,
                        GString *details)
{
  g_autofree char *command = g_strdup_printf ("%u\n", position);
  int last_step = -1;
  int status;

  if (worker.pid < 0)
    worker_start ();
  if (write (worker.cmd_fd, command, strlen (command)) == (ssize_t) strlen (command))
    for (;;)
      {
        g_autofree char *line = worker_read_line ();

        if (line == NULL)
          break;
        if (line[0] == 'S')
          last_step = atoi (line + 1);
        else if (line[0] == 'R')
          {
            int step = atoi (line + 1);
            const char *space = strchr (line, ' ');
            gsize len = space != NULL ? (gsize) g_ascii_strtoull (space + 1, NULL, 10) : 0;

            if (!worker_fill (len))
              break;
            g_string_append_len (details, worker.inbuf->str, (gssize) len);
            g_string_erase (worker.inbuf, 0, (gssize) len);
            return step;
          }
      }

  /* The worker died in the middle of the script. */
  status = worker_stop ();
  g_string_truncate (details, 0);
  if (WIFSIGNALED (status))
    g_string_append_printf (details, "tinysync crashed with signal %d (%s) during this step\n",
                            WTERMSIG (status), g_strsignal (WTERMSIG (status)));
  else
    g_string_append_printf (details, "the replay exited with status %d during this step\n",
                            WIFEXITED (status) ? WEXITSTATUS (status) : -1);
  g_string_append (details, "  (rerun in-process to debug: TS_DIFF_NO_FORK=1 test-store-differential -p PATH FILE)\n");
  return last_step >= 0 ? last_step : 0;
}
#endif

static void
test_script (gconstpointer data)
{
  guint position = GPOINTER_TO_UINT (data);
  JsonObject *script = json_array_get_object_element (diff_scripts, position);
  guint script_index = (guint) json_object_get_int_member (script, "index");
  JsonArray *stores = json_object_get_array_member (script, "stores");
  JsonArray *steps = json_object_get_array_member (script, "steps");
  GString *details = g_string_new (NULL);
  int failed_step;

  {
    gpointer klass = g_type_class_ref (TS_TYPE_MERGEABLE_STORE);
    guint signal_id = g_signal_lookup ("transaction-finished", TS_TYPE_MERGEABLE_STORE);

    g_type_class_unref (klass);
    if (signal_id == 0)
      {
        g_test_fail_printf ("TsMergeableStore has no \"transaction-finished\" signal");
        g_string_free (details, TRUE);
        return;
      }
  }

#ifdef G_OS_UNIX
  if (g_getenv ("TS_DIFF_NO_FORK") == NULL)
    failed_step = replay_script_isolated (position, details);
  else
#endif
    failed_step = replay_script (script, details, -1);

  if (failed_step >= 0 && (guint) failed_step < json_array_get_length (steps))
    report_failure (script_index, (guint) failed_step,
                    json_array_get_object_element (steps, (guint) failed_step), stores, details->str);
  else if (failed_step >= 0)
    g_test_fail_printf ("script %u: bad failing step %d", script_index, failed_step);
  g_string_free (details, TRUE);
}

static void
test_no_file (void)
{
  g_test_skip ("no script file: pass FILE or set TS_DIFF_FILE (see tests/interop/run-store-diff.sh)");
}

int
main (int    argc,
      char **argv)
{
  const char *file;
  g_autoptr(GError) error = NULL;
  JsonObject *root;
  JsonArray *scripts;

  g_log_set_writer_func (log_writer, NULL, NULL);
  g_test_init (&argc, &argv, NULL);
  /* Report every differing script, not only the first one; warnings are
   * checked step by step (log_writer), criticals stay fatal. */
  g_test_set_nonfatal_assertions ();
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  step_warnings = g_ptr_array_new_with_free_func (g_free);

  file = argc > 1 ? argv[1] : g_getenv ("TS_DIFF_FILE");
  if (file == NULL || *file == '\0')
    {
      g_test_add_func ("/store-differential/no-file", test_no_file);
      return g_test_run ();
    }

  diff_parser = json_parser_new_immutable ();
  if (!json_parser_load_from_file (diff_parser, file, &error))
    g_error ("cannot read %s: %s", file, error->message);
  root = json_node_get_object (json_parser_get_root (diff_parser));
  scripts = diff_scripts = json_object_get_array_member (root, "scripts");
  g_test_message ("%s: seed %" G_GINT64_FORMAT ", %u scripts, %" G_GINT64_FORMAT " steps",
                  file, json_object_get_int_member (root, "seed"),
                  json_array_get_length (scripts), json_object_get_int_member (root, "steps"));

  for (guint i = 0; i < json_array_get_length (scripts); i++)
    {
      JsonObject *script = json_array_get_object_element (scripts, i);
      g_autofree char *path = g_strdup_printf ("/store-differential/script-%04" G_GINT64_FORMAT,
                                               json_object_get_int_member (script, "index"));

      g_test_add_data_func (path, GUINT_TO_POINTER (i), test_script);
    }

  {
    int status;

#ifdef G_OS_UNIX
    /* A worker that dies must show up as a failed script, not kill us. */
    signal (SIGPIPE, SIG_IGN);
#endif
    status = g_test_run ();
#ifdef G_OS_UNIX
    worker_stop ();
#endif

    g_clear_object (&diff_parser);
    g_clear_pointer (&step_warnings, g_ptr_array_unref);
    return status;
  }
}
