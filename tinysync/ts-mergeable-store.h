/* ts-mergeable-store.h: a TinyBase-compatible mergeable (CRDT) store
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined(TS_INSIDE) && !defined(TS_COMPILATION)
# error "Only <tinysync/tinysync.h> can be included directly."
#endif

#include <glib-object.h>

#include "ts-version-macros.h"

G_BEGIN_DECLS

#define TS_TYPE_MERGEABLE_STORE (ts_mergeable_store_get_type ())

TS_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (TsMergeableStore, ts_mergeable_store, TS, MERGEABLE_STORE, GObject)

/**
 * TsClockFunc:
 * @user_data: the data given to [method@Tinysync.MergeableStore.set_clock]
 *
 * The time source of a store's hybrid logical clock: TinyBase's `getNow`.
 *
 * Returns: the current time in milliseconds since the Unix epoch
 *
 * Since: 1.0
 */
typedef gint64 (*TsClockFunc) (gpointer user_data);

/**
 * TsTransactionFunc:
 * @store: the store
 * @user_data: the data given to [method@Tinysync.MergeableStore.transaction]
 *
 * The body of a transaction run by [method@Tinysync.MergeableStore.transaction].
 *
 * Since: 1.0
 */
typedef void (*TsTransactionFunc) (TsMergeableStore *store,
                                   gpointer          user_data);

/**
 * TsCellListenerFunc:
 * @store: the store
 * @table_id: the table of the changed cell
 * @row_id: the row of the changed cell
 * @cell_id: the changed cell
 * @user_data: the listener's data
 *
 * Called once per changed cell after the outermost transaction finished.
 *
 * Since: 1.0
 */
typedef void (*TsCellListenerFunc) (TsMergeableStore *store,
                                    const char       *table_id,
                                    const char       *row_id,
                                    const char       *cell_id,
                                    gpointer          user_data);

/**
 * TsRowListenerFunc:
 * @store: the store
 * @table_id: the table of the changed row
 * @row_id: the changed row
 * @user_data: the listener's data
 *
 * Called once per changed row after the outermost transaction finished.
 *
 * Since: 1.0
 */
typedef void (*TsRowListenerFunc) (TsMergeableStore *store,
                                   const char       *table_id,
                                   const char       *row_id,
                                   gpointer          user_data);

/**
 * TsTableListenerFunc:
 * @store: the store
 * @table_id: the changed table
 * @user_data: the listener's data
 *
 * Called once per changed table after the outermost transaction finished.
 *
 * Since: 1.0
 */
typedef void (*TsTableListenerFunc) (TsMergeableStore *store,
                                     const char       *table_id,
                                     gpointer          user_data);

/**
 * TsValueListenerFunc:
 * @store: the store
 * @value_id: the changed value
 * @user_data: the listener's data
 *
 * Called once per changed value after the outermost transaction finished.
 *
 * Since: 1.0
 */
typedef void (*TsValueListenerFunc) (TsMergeableStore *store,
                                     const char       *value_id,
                                     gpointer          user_data);

TS_AVAILABLE_IN_ALL
TsMergeableStore *ts_mergeable_store_new             (const char        *unique_id);
TS_AVAILABLE_IN_ALL
const char       *ts_mergeable_store_get_unique_id   (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
const char       *ts_mergeable_store_get_client_id   (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_clock       (TsMergeableStore  *self,
                                                      TsClockFunc        func,
                                                      gpointer           user_data,
                                                      GDestroyNotify     notify);

/* Plain JSON getters */
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_tables_json (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_table_json  (TsMergeableStore  *self,
                                                      const char        *table_id);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_row_json    (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_cell_json   (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_values_json (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_value_json  (TsMergeableStore  *self,
                                                      const char        *value_id);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_content_json (TsMergeableStore *self);

/* Plain JSON setters */
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_tables_json (TsMergeableStore  *self,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_table_json  (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_row_json    (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_partial_row_json (TsMergeableStore *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_cell_json   (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_values_json (TsMergeableStore  *self,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_partial_values_json (TsMergeableStore *self,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_value_json  (TsMergeableStore  *self,
                                                      const char        *value_id,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_content_json (TsMergeableStore *self,
                                                      const char        *json,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_add_row_json    (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *json,
                                                      gboolean           reuse_row_ids,
                                                      GError           **error);

/* Typed access */
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_cell        (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id,
                                                      GVariant          *value,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
GVariant         *ts_mergeable_store_get_cell        (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_value       (TsMergeableStore  *self,
                                                      const char        *value_id,
                                                      GVariant          *value,
                                                      GError           **error);
TS_AVAILABLE_IN_ALL
GVariant         *ts_mergeable_store_get_value       (TsMergeableStore  *self,
                                                      const char        *value_id);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_cell_string (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id,
                                                      const char        *value);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_cell_number (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id,
                                                      double             value);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_cell_boolean (TsMergeableStore *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id,
                                                      gboolean           value);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_value_string (TsMergeableStore *self,
                                                      const char        *value_id,
                                                      const char        *value);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_value_number (TsMergeableStore *self,
                                                      const char        *value_id,
                                                      double             value);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_set_value_boolean (TsMergeableStore *self,
                                                      const char        *value_id,
                                                      gboolean           value);

/* Ids and existence */
TS_AVAILABLE_IN_ALL
GStrv             ts_mergeable_store_get_table_ids   (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
GStrv             ts_mergeable_store_get_row_ids     (TsMergeableStore  *self,
                                                      const char        *table_id);
TS_AVAILABLE_IN_ALL
GStrv             ts_mergeable_store_get_cell_ids    (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id);
TS_AVAILABLE_IN_ALL
GStrv             ts_mergeable_store_get_value_ids   (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_tables      (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_table       (TsMergeableStore  *self,
                                                      const char        *table_id);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_row         (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_cell        (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_values      (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_has_value       (TsMergeableStore  *self,
                                                      const char        *value_id);
TS_AVAILABLE_IN_ALL
guint             ts_mergeable_store_get_row_count   (TsMergeableStore  *self,
                                                      const char        *table_id);

/* Deleters */
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_tables      (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_table       (TsMergeableStore  *self,
                                                      const char        *table_id);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_row         (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_cell        (TsMergeableStore  *self,
                                                      const char        *table_id,
                                                      const char        *row_id,
                                                      const char        *cell_id);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_values      (TsMergeableStore  *self);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_value       (TsMergeableStore  *self,
                                                      const char        *value_id);

/* Transactions */
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_start_transaction  (TsMergeableStore *self);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_finish_transaction (TsMergeableStore *self);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_transaction     (TsMergeableStore  *self,
                                                      TsTransactionFunc  func,
                                                      gpointer           user_data);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_in_transaction  (TsMergeableStore  *self);

/* Mergeable API (encoded JSON, as on the wire) */
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_content_json (TsMergeableStore *self);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_mergeable_content_json (TsMergeableStore *self,
                                                                 const char       *json,
                                                                 GError          **error);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_apply_mergeable_changes_json (TsMergeableStore *self,
                                                                   const char       *json,
                                                                   GError          **error);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_merge           (TsMergeableStore  *self,
                                                      TsMergeableStore  *other);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_transaction_mergeable_changes_json (TsMergeableStore *self,
                                                                             gboolean          with_hashes);
TS_AVAILABLE_IN_ALL
gboolean          ts_mergeable_store_set_default_content_json (TsMergeableStore *self,
                                                               const char       *json,
                                                               GError          **error);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_get_mergeable_content_hashes (TsMergeableStore *self,
                                                                   guint32          *tables_hash,
                                                                   guint32          *values_hash);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_table_hashes_json (TsMergeableStore *self);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_table_diff_json (TsMergeableStore *self,
                                                                    const char       *other_table_hashes_json,
                                                                    GError          **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_row_hashes_json (TsMergeableStore *self,
                                                                    const char       *other_table_hashes_json,
                                                                    GError          **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_row_diff_json (TsMergeableStore *self,
                                                                  const char       *other_table_row_hashes_json,
                                                                  GError          **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_cell_hashes_json (TsMergeableStore *self,
                                                                     const char       *other_table_row_hashes_json,
                                                                     GError          **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_cell_diff_json (TsMergeableStore *self,
                                                                   const char       *other_table_row_cell_hashes_json,
                                                                   GError          **error);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_value_hashes_json (TsMergeableStore *self);
TS_AVAILABLE_IN_ALL
char             *ts_mergeable_store_get_mergeable_value_diff_json (TsMergeableStore *self,
                                                                    const char       *other_value_hashes_json,
                                                                    GError          **error);

/* Listeners */
TS_AVAILABLE_IN_ALL
gulong            ts_mergeable_store_add_cell_listener  (TsMergeableStore   *self,
                                                         const char         *table_id,
                                                         const char         *row_id,
                                                         const char         *cell_id,
                                                         TsCellListenerFunc  func,
                                                         gpointer            user_data,
                                                         GDestroyNotify      notify);
TS_AVAILABLE_IN_ALL
gulong            ts_mergeable_store_add_row_listener   (TsMergeableStore   *self,
                                                         const char         *table_id,
                                                         const char         *row_id,
                                                         TsRowListenerFunc   func,
                                                         gpointer            user_data,
                                                         GDestroyNotify      notify);
TS_AVAILABLE_IN_ALL
gulong            ts_mergeable_store_add_table_listener (TsMergeableStore   *self,
                                                         const char         *table_id,
                                                         TsTableListenerFunc func,
                                                         gpointer            user_data,
                                                         GDestroyNotify      notify);
TS_AVAILABLE_IN_ALL
gulong            ts_mergeable_store_add_value_listener (TsMergeableStore   *self,
                                                         const char         *value_id,
                                                         TsValueListenerFunc func,
                                                         gpointer            user_data,
                                                         GDestroyNotify      notify);
TS_AVAILABLE_IN_ALL
void              ts_mergeable_store_del_listener       (TsMergeableStore   *self,
                                                         gulong              listener_id);

G_END_DECLS
