/* record_int.h — private to runtime/record: shared helpers of CRUD, query and history. */
#ifndef TRL_RECORD_INT_H
#define TRL_RECORD_INT_H

#include "record.h"

/* (type u32, id u64) key into k[12]. */
void trl_rec_key(unsigned char k[12], uint32_t type_id, uint64_t id);
/* Loads and decodes record id; values borrow txn memory, or a copy in arena when arena is given
 * (write paths: a later put may move the page). 0, TRL_ENOTFOUND, TRL_ECORRUPT, TRL_ENOMEM. */
int trl_rec_load(struct trl_txn *t, const struct trl_type *ty, uint64_t id, struct trl_arena *arena,
                 struct trl_record *r);
/* Value of a column (field id or TRL_COL_*) of r, defaults applied for absent fields. */
void trl_rec_column(const struct trl_type *ty, const struct trl_record *r, uint32_t col,
                    struct trl_value *out);
/* True when record r of type ty lies in one of the scopes (a mask) of the caller: ALL always;
 * OWN the caller owns it; ORG same non-empty org; ASSIGNED the type's assignee_field names the
 * caller. */
bool trl_rec_in_scope(const struct trl_rec_ctx *cx, const struct trl_type *ty, enum trl_scope scope,
                      const struct trl_record *r);
/* Static description of a column by name for the expression resolver and sort. */
int trl_rec_resolve(const struct trl_type *ty, const char *name, size_t n,
                    struct trl_expr_field *out);
/* Appends the JSON of r to out. */
int trl_rec_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_record *r, const struct trl_rec_out *o, struct trl_buf *out);
/* Columns that carry an index for ty, with the record's values; used by writes and check. */
struct trl_idx_entry {
    uint32_t col;       /* column id */
    bool unique;        /* has a unique index too */
    bool counted;       /* has a value counter (trl_rec_column_counted) */
    struct trl_value v; /* value (borrowed from the record or the schema) */
};
/* Whether column col of ty has per-value counters: state, enums and refs (the schema indexes
 * every enum and ref), so `col = v` and `col in (...)` count in O(values). */
bool trl_rec_column_counted(const struct trl_type *ty, uint32_t col);
/* Most index entries a record of ty can have (the system columns and every field). */
size_t trl_rec_index_cap(const struct trl_type *ty);
/* Calls fn for each record of ty with an id from `from` on, in id order (with from the type's
 * pending mark: the records waiting for their index batch), decoded into r (freed after fn
 * returns), raw its stored bytes (valid for the txn). fn returns 0 to go on, > 0 to stop, < 0 for
 * an error; that result is returned. */
int trl_rec_each_from(struct trl_txn *t, const struct trl_type *ty, uint64_t from,
                      int (*fn)(void *ud, const struct trl_record *r, struct trl_slice raw),
                      void *ud);
/* Fills at most cap entries; returns the number. */
size_t trl_rec_index_entries(const struct trl_type *ty, const struct trl_record *r,
                             struct trl_idx_entry *out, size_t cap);
/* Appends a history event to r's chain (updates r->hist_seq and r->hist_hash) and a change-log
 * entry. action: create, update, delete, transition; changes: JSON object text of per-field
 * changes; extra: JSON members added to the event (e.g. `"transition":"submit","from":...`) or
 * NULL. */
int trl_rec_hist_append(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                        struct trl_record *r, const char *action, const char *changes,
                        size_t changes_n, const char *extra);

/* Whether the history of a record of ty is visible to cx: the record (NULL once deleted) lies
 * in the caller's read scope; a deleted record only with read scope all; everything when cx->acc
 * is NULL. The rule of trl_rec_history and of the change feed. */
bool trl_rec_hist_visible(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                          const struct trl_record *r);
/* Appends the members of history event ev[0..n) (the JSON object history.c writes) without its
 * braces, separated by commas (and one before the first with lead_comma); omit_seq leaves its
 * "seq" out. Changes of fields hidden from cx (trl_rec_field_mode) or no longer in ty are
 * removed. action (action_n bytes, may be NULL) receives the event's action. 0, TRL_ENOMEM,
 * TRL_ECORRUPT (an event it cannot follow); out is unchanged on failure. */
int trl_rec_hist_members(const struct trl_rec_ctx *cx, const struct trl_type *ty, const char *ev,
                         size_t n, bool omit_seq, bool lead_comma, char *action, size_t action_n,
                         struct trl_buf *out);

#endif
