/* test-synchronizer.c: the protocol engine over an in-memory transport
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <tinysync/tinysync.h>

/* ---- An in-memory room: every peer sees every broadcast ------------------ */

#define TEST_TYPE_SYNC (test_sync_get_type ())
G_DECLARE_FINAL_TYPE (TestSync, test_sync, TEST, SYNC, TsSynchronizer)

typedef struct {
  GPtrArray *peers;          /* TestSync*, not owned */
} Room;

struct _TestSync
{
  TsSynchronizer parent_instance;
  Room          *room;
  char          *id;
  guint          drop_responses;   /* drop this many outgoing responses */
  gboolean       mute;             /* drop everything outgoing */
  GPtrArray     *errors;           /* GError* reported */
  GPtrArray     *sent;             /* char* messages sent */
};

G_DEFINE_FINAL_TYPE (TestSync, test_sync, TS_TYPE_SYNCHRONIZER)

typedef struct {
  TestSync *to;
  char     *from;
  char     *json;
} Delivery;

static gboolean
deliver (gpointer data)
{
  Delivery *d = data;

  ts_synchronizer_receive_message (TS_SYNCHRONIZER (d->to), d->from, d->json, -1, NULL);
  g_object_unref (d->to);
  g_free (d->from);
  g_free (d->json);
  g_free (d);
  return G_SOURCE_REMOVE;
}

static void
test_sync_send (TsSynchronizer *sync,
                const char     *to,
                const char     *json,
                gsize           len)
{
  TestSync *self = TEST_SYNC (sync);

  g_ptr_array_add (self->sent, g_strndup (json, len));
  if (self->mute)
    return;
  if (self->drop_responses > 0 && strstr (json, ",0,") != NULL)
    {
      self->drop_responses--;
      return;
    }
  for (guint i = 0; i < self->room->peers->len; i++)
    {
      TestSync *peer = self->room->peers->pdata[i];
      Delivery *d;

      if (peer == self || (to != NULL && strcmp (to, peer->id) != 0))
        continue;
      d = g_new0 (Delivery, 1);
      d->to = g_object_ref (peer);
      d->from = g_strdup (self->id);
      d->json = g_strndup (json, len);
      g_idle_add (deliver, d);
    }
}

static void
test_sync_destroy (TsSynchronizer *sync)
{
  TestSync *self = TEST_SYNC (sync);

  g_ptr_array_remove (self->room->peers, self);
}

static void
test_sync_finalize (GObject *object)
{
  TestSync *self = TEST_SYNC (object);

  g_free (self->id);
  g_ptr_array_unref (self->errors);
  g_ptr_array_unref (self->sent);
  G_OBJECT_CLASS (test_sync_parent_class)->finalize (object);
}

static void
test_sync_class_init (TestSyncClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = test_sync_finalize;
  TS_SYNCHRONIZER_CLASS (klass)->send = test_sync_send;
  TS_SYNCHRONIZER_CLASS (klass)->destroy = test_sync_destroy;
}

static void
on_ignored_error (TsSynchronizer *sync,
                  GError         *error,
                  gpointer        data)
{
  g_ptr_array_add (TEST_SYNC (sync)->errors, g_error_copy (error));
}

static void
test_sync_init (TestSync *self)
{
  self->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  self->sent = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (self, "ignored-error", G_CALLBACK (on_ignored_error), NULL);
}

static TestSync *
test_sync_new (Room             *room,
               const char       *id,
               TsMergeableStore *store)
{
  TestSync *self = g_object_new (TEST_TYPE_SYNC, "store", store, "request-timeout", 0.2, NULL);

  self->room = room;
  self->id = g_strdup (id);
  g_ptr_array_add (room->peers, self);
  return self;
}

/* ---- Helpers ------------------------------------------------------------- */

static gboolean
timeout_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main loop for ms milliseconds. */
static void
run_for (guint ms)
{
  gboolean done = FALSE;
  guint id = g_timeout_add (ms, timeout_flag, &done);

  while (!done)
    g_main_context_iteration (NULL, TRUE);
  (void) id;
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error));
  g_assert_no_error (error);
  (*(int *) data)++;
}

static void
start (TestSync   *sync,
       const char *initial)
{
  int started = 0;
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (5000, timeout_flag, &timed_out);

  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (sync), initial, NULL, on_started, &started);
  while (started == 0 && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (id);
}

static void
assert_same (TsMergeableStore *a,
             TsMergeableStore *b)
{
  g_autofree char *ca = ts_mergeable_store_get_mergeable_content_json (a);
  g_autofree char *cb = ts_mergeable_store_get_mergeable_content_json (b);
  g_autofree char *ta = ts_mergeable_store_get_tables_json (a);
  g_autofree char *tb = ts_mergeable_store_get_tables_json (b);
  guint32 ha[2], hb[2];

  ts_mergeable_store_get_mergeable_content_hashes (a, &ha[0], &ha[1]);
  ts_mergeable_store_get_mergeable_content_hashes (b, &hb[0], &hb[1]);
  g_assert_cmpuint (ha[0], ==, hb[0]);
  g_assert_cmpuint (ha[1], ==, hb[1]);
  {
    /* the plain Store's order is each store's own: compare unordered */
    g_autoptr(JsonNode) na = json_from_string (ta, NULL);
    g_autoptr(JsonNode) nb = json_from_string (tb, NULL);
    g_autoptr(JsonNode) ma = json_from_string (ca, NULL);
    g_autoptr(JsonNode) mb = json_from_string (cb, NULL);

    if (!json_node_equal (na, nb))
      g_error ("tables differ: %s vs %s", ta, tb);
    if (!json_node_equal (ma, mb))
      g_error ("mergeable content differs: %s vs %s", ca, cb);
  }
}

static gboolean
has_error (TestSync   *sync,
           int         code,
           const char *fragment)
{
  for (guint i = 0; i < sync->errors->len; i++)
    {
      GError *e = sync->errors->pdata[i];
      if (e->code == code && (fragment == NULL || strstr (e->message, fragment) != NULL))
        return TRUE;
    }
  return FALSE;
}

static void
set (TsMergeableStore *store,
     const char       *json)
{
  g_autoptr(GError) error = NULL;

  ts_mergeable_store_set_tables_json (store, json, &error);
  g_assert_no_error (error);
}

/* ---- Tests ---------------------------------------------------------------- */

static void
test_seed (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("store1");
  g_autoptr(TsMergeableStore) s2 = ts_mergeable_store_new ("store2");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autoptr(TestSync) b = test_sync_new (&room, "B", s2);
  g_autofree char *tables = NULL;

  start (a, NULL);
  /* alone in the room: the broadcast GetContentHashes timed out */
  g_assert_true (has_error (a, TS_ERROR_REQUEST_FAILED, "(tinybase:3:."));
  start (b, NULL);
  g_assert_cmpuint (b->errors->len, ==, 0);

  set (s1, "{\"pets\":{\"fido\":{\"species\":\"dog\"}}}");
  set (s2, "{\"pets\":{\"felix\":{\"species\":\"cat\"}}}");
  run_for (300);

  tables = ts_mergeable_store_get_tables_json (s1);
  g_assert_cmpstr (tables, ==, "{\"pets\":{\"fido\":{\"species\":\"dog\"},\"felix\":{\"species\":\"cat\"}}}");
  assert_same (s1, s2);

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (b));
  g_ptr_array_unref (room.peers);
}

static void
test_late_joiner (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) s2 = ts_mergeable_store_new ("b");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autoptr(TestSync) b = NULL;
  g_autoptr(GError) error = NULL;
  guint sends, receives;

  set (s1, "{\"t1\":{\"r1\":{\"c\":1,\"d\":\"x\"},\"r2\":{\"o\":{\"k\":[1,2]}}},\"t2\":{\"r\":{\"c\":true}}}");
  ts_mergeable_store_set_values_json (s1, "{\"v\":1,\"w\":null}", &error);
  g_assert_no_error (error);
  ts_mergeable_store_del_cell (s1, "t1", "r1", "d");
  ts_mergeable_store_del_value (s1, "w");
  start (a, NULL);

  /* B has its own, older and conflicting data */
  set (s2, "{\"t1\":{\"r1\":{\"c\":2,\"e\":3}},\"t3\":{\"r\":{\"c\":\"mine\"}}}");
  b = test_sync_new (&room, "B", s2);
  start (b, NULL);
  run_for (300);

  assert_same (s1, s2);
  g_assert_true (ts_mergeable_store_has_table (s1, "t3"));
  g_assert_false (ts_mergeable_store_has_value (s2, "w"));
  ts_synchronizer_get_stats (TS_SYNCHRONIZER (b), &sends, &receives);
  g_assert_cmpuint (sends, >, 3);
  g_assert_cmpuint (receives, >, 3);

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (b));
  g_ptr_array_unref (room.peers);
}

static void
test_initial_content (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autofree char *content = NULL;

  start (a, "[{\"t\":{\"r\":{\"c\":\"default\"}}},{\"v\":1}]");
  content = ts_mergeable_store_get_mergeable_content_json (s1);
  /* default content carries no HLC */
  g_assert_nonnull (strstr (content, "[\"default\",\"\","));

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  g_ptr_array_unref (room.peers);
}

static void
test_conflicts (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) s2 = ts_mergeable_store_new ("b");
  g_autoptr(TsMergeableStore) s3 = ts_mergeable_store_new ("c");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autoptr(TestSync) b = test_sync_new (&room, "B", s2);
  g_autoptr(TestSync) c = test_sync_new (&room, "C", s3);

  start (a, NULL);
  start (b, NULL);
  start (c, NULL);
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *v1 = g_strdup_printf ("%d", i);
      ts_mergeable_store_set_cell_number (s1, "t", "r", "c", i);
      ts_mergeable_store_set_cell_string (s2, "t", "r", "c", v1);
      ts_mergeable_store_set_cell_boolean (s3, "t", "r2", v1, i % 2);
      if (i % 5 == 0)
        ts_mergeable_store_del_row (s3, "t", "r");
    }
  run_for (400);
  assert_same (s1, s2);
  assert_same (s2, s3);

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (b));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (c));
  g_ptr_array_unref (room.peers);
}

static void
test_lost_responses (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) s2 = ts_mergeable_store_new ("b");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autoptr(TestSync) b = test_sync_new (&room, "B", s2);

  set (s1, "{\"t\":{\"r\":{\"c\":1}}}");
  start (a, NULL);
  /* A's answers to B's first pull get lost: B reports the failed request
   * and catches up at A's next announcement */
  a->drop_responses = 1;
  start (b, NULL);
  g_assert_true (has_error (b, TS_ERROR_REQUEST_FAILED, "tinybase:3:"));
  run_for (300);
  set (s1, "{\"t\":{\"r\":{\"c\":2}}}");
  run_for (300);
  assert_same (s1, s2);

  /* B's pull of A's ContentHashes loses its GetTableDiff answer: it falls
   * back to a full load */
  ts_mergeable_store_set_cell_number (s2, "t", "x", "y", 1);
  run_for (300);
  assert_same (s1, s2);

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (b));
  g_ptr_array_unref (room.peers);
}

static void
test_stop_and_destroy (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TsMergeableStore) s2 = ts_mergeable_store_new ("b");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  g_autoptr(TestSync) b = test_sync_new (&room, "B", s2);
  guint sent_before;

  start (a, NULL);
  start (b, NULL);
  ts_synchronizer_stop_sync (TS_SYNCHRONIZER (a));
  g_assert_false (ts_synchronizer_is_syncing (TS_SYNCHRONIZER (a)));
  sent_before = a->sent->len;
  set (s1, "{\"t\":{\"r\":{\"c\":1}}}");
  run_for (100);
  g_assert_cmpuint (a->sent->len, ==, sent_before);
  g_assert_false (ts_mergeable_store_has_table (s2, "t"));

  /* a stopped synchronizer still answers diff requests, but not
   * GetContentHashes */
  g_assert_true (ts_synchronizer_receive_message (TS_SYNCHRONIZER (a), "B", "[\"q.1\",1,\"\"]", -1, NULL));
  g_assert_cmpuint (a->sent->len, ==, sent_before);
  g_assert_true (ts_synchronizer_receive_message (TS_SYNCHRONIZER (a), "B", "[\"q.2\",4,{}]", -1, NULL));
  g_assert_cmpuint (a->sent->len, ==, sent_before + 1);
  g_assert_true (g_str_has_prefix (a->sent->pdata[sent_before], "[\"q.2\",0,[[{\"t\":"));

  /* destroy fails the pending requests */
  b->mute = FALSE;
  a->mute = TRUE;
  start (a, NULL);
  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  g_assert_true (ts_synchronizer_is_destroyed (TS_SYNCHRONIZER (a)));

  ts_synchronizer_destroy (TS_SYNCHRONIZER (b));
  g_ptr_array_unref (room.peers);
}

static void
on_start_failed (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (ts_synchronizer_start_sync_finish (TS_SYNCHRONIZER (source), result, &error));
  g_assert_error (error, TS_ERROR, TS_ERROR_CLOSED);
  (*(int *) data)++;
}

static void
test_pending_destroyed (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  int done = 0;

  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (a), NULL, NULL, on_start_failed, &done);
  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  g_assert_true (has_error (a, TS_ERROR_REQUEST_FAILED, "tinybase:3:destroyed"));
  while (done == 0)
    g_main_context_iteration (NULL, TRUE);

  /* starting a destroyed synchronizer fails */
  ts_synchronizer_start_sync_async (TS_SYNCHRONIZER (a), NULL, NULL, on_start_failed, &done);
  while (done == 1)
    g_main_context_iteration (NULL, TRUE);
  g_ptr_array_unref (room.peers);
}

static void
test_invalid_messages (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);
  const char *bad[] = {
    "not json", "[]", "[null,8,\"\"]", "[null,1,0]", "[1,1,\"\"]",
    "[null,2,[1]]", "[null,2,[1,-1]]", "[null,4,{\"t\":\"x\"}]",
    "[null,3,[[{\"t\":[{\"r\":[{\"c\":[1,\"bad hlc\"]}]}]}],[{}],1]]",
    "[null,3,[[{\"t\":[{\"r\":[{\"c\":[1,\"NsYwJk-----Z21Zg\",5]}]}]}],[{}],1]]",
  };
  g_autofree char *before = ts_mergeable_store_get_mergeable_content_json (s1);
  g_autofree char *after = NULL;

  start (a, NULL);
  g_ptr_array_set_size (a->errors, 0);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (ts_synchronizer_receive_message (TS_SYNCHRONIZER (a), "X", bad[i], -1, &error));
      g_assert_error (error, TS_ERROR, TS_ERROR_INVALID_MESSAGE);
    }
  g_assert_cmpuint (a->errors->len, ==, G_N_ELEMENTS (bad));
  after = ts_mergeable_store_get_mergeable_content_json (s1);
  g_assert_cmpstr (before, ==, after);

  /* valid, but an HLC an hour ahead: the store ignores it silently */
  g_assert_true (ts_synchronizer_receive_message (TS_SYNCHRONIZER (a), "X",
                 "[null,3,[[{\"t\":[{\"r\":[{\"c\":[1,\"zzzzzzz----Z21Zg\"]}]}]}],[{}],1]]", -1, NULL));
  g_assert_false (ts_mergeable_store_has_table (s1, "t"));

  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  g_ptr_array_unref (room.peers);
}

static void
test_pending_limit (void)
{
  Room room = { g_ptr_array_new () };
  g_autoptr(TsMergeableStore) s1 = ts_mergeable_store_new ("a");
  g_autoptr(TestSync) a = test_sync_new (&room, "A", s1);

  start (a, NULL);
  g_ptr_array_set_size (a->errors, 0);
  /* each ContentHashes from a silent peer starts a pull whose first
   * request is never answered; the 101st cannot be sent */
  for (int i = 0; i < 101; i++)
    {
      g_autofree char *msg = g_strdup_printf ("[\"tx%d\",2,[%d,0]]", i, i + 1);
      g_assert_true (ts_synchronizer_receive_message (TS_SYNCHRONIZER (a), "Silent", msg, -1, NULL));
    }
  g_assert_true (has_error (a, TS_ERROR_OVERFLOW, "tinybase:15:requests"));
  ts_synchronizer_destroy (TS_SYNCHRONIZER (a));
  g_ptr_array_unref (room.peers);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tinysync/synchronizer/seed", test_seed);
  g_test_add_func ("/tinysync/synchronizer/late-joiner", test_late_joiner);
  g_test_add_func ("/tinysync/synchronizer/initial-content", test_initial_content);
  g_test_add_func ("/tinysync/synchronizer/conflicts", test_conflicts);
  g_test_add_func ("/tinysync/synchronizer/lost-responses", test_lost_responses);
  g_test_add_func ("/tinysync/synchronizer/stop-and-destroy", test_stop_and_destroy);
  g_test_add_func ("/tinysync/synchronizer/pending-destroyed", test_pending_destroyed);
  g_test_add_func ("/tinysync/synchronizer/invalid-messages", test_invalid_messages);
  g_test_add_func ("/tinysync/synchronizer/pending-limit", test_pending_limit);

  return g_test_run ();
}
