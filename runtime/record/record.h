/*
 * record — records of user-defined types: create, read, partial update, delete, validation,
 * indexes, counters, the hash-chained history, listing with the expression language, and
 * idempotency keys.
 *
 * Every write function runs inside a write txn given by the caller (the store's writer thread, in
 * the nested txn of one job), so a failure aborts the job alone and leaves the store unchanged.
 * Read functions run in a read txn. Output is JSON text appended to a trl_buf, serialised straight
 * from the binary record (no JSON tree).
 *
 * Storage (keys big-endian):
 *   rec   (type u32, id u64)                   -> encoded record (codec)
 *   idx   (type<<16|col u32, value, id u64)    -> ""        (schema.h describes index ids)
 *   idx   (type<<16|col|0x8000 u32, value)     -> id u64    (unique fields)
 *   hist  (type u32, id u64, seq u32)          -> sha256 u8[32] + event JSON
 *   hist  (type u32, id u64, 0)                -> head: seq u32 + sha256 (deleted records only)
 *   log   (change u64)                         -> (type u32, id u64, seq u32)
 *   cnt   ("t", type u32)                      -> u64 records of the type
 *   cnt   ("c", type<<16|col u32, value)       -> u64 records with that value (state, enums, refs)
 *   cnt   ("o", type<<16|col u32, org, value)  -> u64 the same within one org
 *   cnt   ("p", type u32, org)                 -> u64 records of one org
 *   cnt   ("s", "id:<type>" / "name:<type>:<prefix>" / "log") -> u64 (sequences, store.h)
 *   idem  (user, NUL, key)                     -> stored response
 *
 * History: each event's hash is sha256(previous hash || event JSON); the record keeps the chain
 * head, so `trellis check` detects an altered, missing or reordered event.
 */
#ifndef TRL_RECORD_H
#define TRL_RECORD_H

#include "expr/expr.h"
#include "schema/schema.h"

/* What a record operation needs to know about its request. */
/* What the caller may do with one type: row scopes and a mode per field (schema.h). */
struct trl_access {
    enum trl_scope create, read, update, del; /* row scopes */
    const unsigned char *fields;              /* enum trl_fmode per field index (borrowed) */
};

/* Computes the union of what who's roles may do with ty into a; fields must hold ty->nfields
 * bytes and becomes a->fields. Administrators get everything. */
void trl_rec_access(const struct trl_type *ty, const struct trl_principal *who,
                    struct trl_access *a, unsigned char *fields);

struct trl_rec_events;

struct trl_rec_ctx {
    const struct trl_catalog *cat;   /* schema snapshot (borrowed) */
    const struct trl_access *acc;    /* the caller's rights on the type; NULL: unrestricted */
    const struct trl_principal *who; /* caller (borrowed) */
    int64_t now_ms;                  /* time of the request */
    const char *request_id;          /* request id for history, "" when none */
    const char *lang;                /* "en" or "zh-CN" for messages */
    struct trl_diag *d;              /* diagnostics of the request */
    int64_t max_scan;                /* listing: most records a query may examine (0: 200000) */
    const struct trl_rec_events *ev; /* where app hooks listen (borrowed), NULL: none */
    const char *create_org;          /* create: the new record's org instead of the caller's
                                        (privileged hooks creating for a partner), or NULL */
    const char *create_owner;        /* create: its owner instead of the caller, or NULL */
};

/* Creates a record of type ty from inputs in[0..n). Unknown fields, wrong types and every rule
 * violation are collected into d->ferrs at once (TRL_EVALIDATION). On success appends the record
 * JSON to out and sets *id. Returns 0, TRL_EVALIDATION, TRL_EMAPFULL, TRL_ENOMEM, TRL_EIO. */
int trl_rec_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                   const struct trl_input *in, size_t n, uint64_t *id, struct trl_buf *out);

/* Changes the fields named in in[0..n) (null removes a value). if_match (0: none) must equal the
 * stored version (TRL_EPRECOND otherwise). Returns 0, TRL_ENOTFOUND, TRL_EPRECOND,
 * TRL_EVALIDATION, ... An update that changes nothing writes nothing and keeps the version. */
int trl_rec_patch(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                  uint64_t id, uint64_t if_match, const struct trl_input *in, size_t n,
                  struct trl_buf *out);

/* Deletes a record, its index entries and counters; its history stays, closed by a delete
 * event. Returns 0, TRL_ENOTFOUND, TRL_EPRECOND. */
int trl_rec_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                   uint64_t id, uint64_t if_match);

/* ---------------------------------------------------------------------------------------------
 * Guarded changes: the workflow engine's transitions. The record layer loads the record, checks
 * row visibility and the version, applies the caller's inputs with every field rule and
 * permission, and writes the new state, indexes, counters and one history event; the guard (the
 * engine) decides at two points whether the change may happen and what else it sets.
 */
struct trl_rec_move;

enum trl_rec_move_phase {
    TRL_MOVE_LOADED, /* the record is loaded and visible; no input applied yet (state, roles) */
    TRL_MOVE_FILLED, /* the inputs are applied and valid (required fields, conditions, actions) */
};

/* Returns 0 to go on, TRL_MOVE_STOP to end quietly (trl_rec_move returns 0, nothing written), or
 * a TRL_E* with cx->d filled (the change is refused, nothing written). */
#define TRL_MOVE_STOP (-1)
typedef int (*trl_rec_guard_fn)(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m);

struct trl_rec_move_opts {
    const char *action;     /* history action, e.g. "transition" */
    const char *to_state;   /* state after the change; NULL keeps the state */
    trl_rec_guard_fn guard; /* called at each phase (may be NULL) */
    void *ud;               /* passed to guard */
    struct trl_buf *extra; /* JSON members for the history event (the guard may fill it), or NULL */
    bool dry_run;          /* check everything, write nothing (works in a read txn) */
};

/* Runs a guarded change of record id. Errors: TRL_ENOTFOUND (absent or out of the caller's read
 * scope), TRL_EPRECOND (if_match), TRL_EVALIDATION (inputs), or the guard's code. On success
 * (and not dry_run) the record JSON is appended to out. A move always writes a new version, even
 * when no field changed: it is an event. */
int trl_rec_move(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 uint64_t id, uint64_t if_match, const struct trl_input *in, size_t n,
                 const struct trl_rec_move_opts *o, struct trl_buf *out);

/* For guards and event listeners. The record's current state (NUL-terminated). */
const char *trl_rec_move_state(const struct trl_rec_move *m);
/* True when the caller may change the record under their update scope. */
bool trl_rec_move_updatable(const struct trl_rec_move *m);
/* The value of column col (a field id or TRL_COL_*) as the change stands; the signature of
 * trl_expr_get_fn with ud = the move. */
int trl_rec_move_get(void *m, int col, struct trl_value *out);
/* The value of column col before the change (updates and transitions); TRL_ENOTFOUND when the
 * move has no stored version (a create). */
int trl_rec_move_get_old(const struct trl_rec_move *m, int col, struct trl_value *out);
/* Sets field f from a JSON-like input (converted and checked with the field's rules; failures are
 * field errors in cx->d and TRL_EVALIDATION). Not subject to the caller's field modes: this is
 * the definition acting. */
int trl_rec_move_set(struct trl_rec_move *m, const struct trl_field *f, const struct trl_input *v);
/* The same with a value already of f's type (bytes must outlive the move). */
int trl_rec_move_set_value(struct trl_rec_move *m, const struct trl_field *f,
                           const struct trl_value *v);

/* The same, with field errors going to d instead of the context's diagnostics. */
int trl_rec_move_set_d(struct trl_rec_move *m, const struct trl_field *f, const struct trl_input *v,
                       struct trl_diag *d);
/* The type, id (0 before a create is written) and context of a move; the caller's mode for f. */
const struct trl_type *trl_rec_move_type(const struct trl_rec_move *m);
uint64_t trl_rec_move_id(const struct trl_rec_move *m);
const struct trl_rec_ctx *trl_rec_move_ctx(const struct trl_rec_move *m);
enum trl_fmode trl_rec_move_mode(const struct trl_rec_move *m, const struct trl_field *f);
/* Adds text to the history event the change of m will write (member "notes"). TRL_ECONFLICT
 * when m writes no event (a stored record's view: use trl_rec_note). */
int trl_rec_move_note(struct trl_rec_move *m, const char *text, size_t n);
/* Writes a history event with action "note" and the text to record id (a new version); the
 * engine acts (no row scope, no events). */
int trl_rec_note(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 uint64_t id, const char *text, size_t n);
/* A stored record as a move of its own (for events after a write): loaded unrestricted, its
 * values copied, so it stays valid across later writes of the txn. Owned: trl_rec_view_close.
 * Errors: TRL_ENOTFOUND, TRL_ECORRUPT, TRL_ENOMEM. */
int trl_rec_view_open(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                      uint64_t id, struct trl_rec_move **out);
void trl_rec_view_close(struct trl_rec_move *m);

/* ---------------------------------------------------------------------------------------------
 * Events: the points where an app's Lua hooks run. runtime/hooks implements struct
 * trl_rec_events and the composition root puts it into each request's context; the record layer
 * fires validate and the before events of create, update and delete, the workflow layer the
 * others. A listener refuses with a TRL_E* (cx->d filled): the write fails and its job rolls
 * back. In writable events it may change the record through the move (trl_rec_move_set_d).
 *
 *   event              fired                                              rec        old
 *   BEFORE_CREATE      inputs converted, before the field rules           writable   -
 *   VALIDATE           the rules passed, before writing (op: create,      read-only  update,
 *                      update or transition)                                         transition
 *   AFTER_CREATE       written, clocks started and assignment done        stored     -
 *   BEFORE_UPDATE      PATCH inputs converted, before the rules           writable   stored
 *   AFTER_UPDATE       written                                            stored     before
 *   BEFORE_DELETE      before anything is removed                         read-only  -
 *   AFTER_DELETE       removed (rec: the last version)                    read-only  -
 *   BEFORE_TRANSITION  conditions met and actions run, before writing     writable   -
 *   AFTER_TRANSITION   written, approvals and clocks updated              stored     -
 *   APPROVAL_DECIDED   a decision was recorded (detail: the decision)     stored     -
 *   SLA_WARNING/BREACH a clock passed its warning or due time (detail)    stored     -
 *   ACTION             a workflow action {"hook": name} runs              writable   -
 *   COMPUTE            a computed field is read (name, field): the        read-only  -
 *                      listener appends the value's JSON to out
 */
enum trl_rec_ev {
    TRL_EV_VALIDATE,
    TRL_EV_BEFORE_CREATE,
    TRL_EV_AFTER_CREATE,
    TRL_EV_BEFORE_UPDATE,
    TRL_EV_AFTER_UPDATE,
    TRL_EV_BEFORE_DELETE,
    TRL_EV_AFTER_DELETE,
    TRL_EV_BEFORE_TRANSITION,
    TRL_EV_AFTER_TRANSITION,
    TRL_EV_APPROVAL_DECIDED,
    TRL_EV_SLA_WARNING,
    TRL_EV_SLA_BREACH,
    TRL_EV_ACTION,
    TRL_EV_COMPUTE,
    TRL_EV_COUNT
};

struct trl_rec_event {
    enum trl_rec_ev kind;
    const struct trl_type *ty;
    struct trl_rec_move *rec;      /* the record */
    struct trl_rec_move *old;      /* the record before the change, or NULL */
    bool writable;                 /* the listener may change rec */
    const char *op;                /* create, update, delete, transition (VALIDATE), or NULL */
    const char *name;              /* transition, approval, SLA policy or action hook; or NULL */
    const char *from, *to;         /* transitions: states */
    const char *transition;        /* ACTION: the transition (or SLA phase) running the action */
    const char *comment;           /* transitions, decisions: the caller's comment, or NULL */
    const char *detail;            /* JSON object text with more (decision, clock), or NULL */
    const struct trl_field *field; /* COMPUTE: the field */
    struct trl_buf *out;           /* COMPUTE: where its value's JSON goes */
};

struct trl_rec_events {
    /* Whether anything listens to kind on ty (name: the transition or action, else NULL). Must
     * be cheap: it is asked on every write. */
    bool (*wants)(void *ud, const struct trl_type *ty, enum trl_rec_ev kind, const char *name);
    /* Runs the listeners in t; 0 or a TRL_E* with cx->d filled. */
    int (*fire)(void *ud, struct trl_txn *t, const struct trl_rec_ctx *cx,
                const struct trl_rec_event *ev);
    /* A due timer the engine does not own ("job/..." owners: scheduled hooks), or NULL. */
    int (*timer)(void *ud, struct trl_txn *t, const struct trl_rec_ctx *cx, const char *owner,
                 const char *payload, size_t n);
    void *ud;
};

/* Whether cx's listeners want the event; fires it when they do (0 when nobody listens). */
bool trl_rec_wants(const struct trl_rec_ctx *cx, const struct trl_type *ty, enum trl_rec_ev kind,
                   const char *name);
int trl_rec_fire(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_rec_event *ev);

/* Resolves a column of type ty (ud) by name for trl_expr_parse: fields and system columns, with
 * no permission filter (definitions, not callers). */
int trl_rec_resolve_any(void *ud, const char *name, size_t n, struct trl_expr_field *out);
/* The caller's mode for field f (TRL_FIELD_WRITE when unrestricted). */
enum trl_fmode trl_rec_field_mode(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                                  const struct trl_field *f);
/* The resolver of a filter a caller writes (listings, reports): ty's columns, and TRL_EFORBIDDEN
 * for a field hidden from cx, whose name it leaves in hidden. ud is this struct. */
struct trl_rec_caller_resolver {
    const struct trl_type *ty;
    const struct trl_rec_ctx *cx;
    char hidden[64]; /* the hidden field a filter named */
};
int trl_rec_resolve_caller(void *ud, const char *name, size_t n, struct trl_expr_field *out);
/* A definition's condition src over type ty (a transition, an approval step, an SLA policy, an
 * assignment rule): compiled into *cond and copied into *text (both owned), or an error at path
 * naming the column. Nothing happens when ty is NULL (the type is unknown: reported elsewhere). */
void trl_rec_def_condition(struct trl_defcheck *c, const char *src, const char *path,
                           const struct trl_type *ty, struct trl_expr **cond, char **text);

/* Appends the JSON of one value of field f (as records show it: decimals and dates as strings). */
int trl_rec_value_json(const struct trl_field *f, const struct trl_value *v, struct trl_buf *out);

/* Output options for reads. */
struct trl_rec_out {
    bool render_html;   /* longtext fields rendered to HTML (cmark, safe mode) */
    const char *fields; /* comma-separated projection, NULL for all */
    const char *expand; /* comma-separated ref fields to inline, NULL for none */
};

/* 0 when record id exists and lies in the caller's read scope, else TRL_ENOTFOUND (with the
 * same problem as trl_rec_get), without rendering it. */
int trl_rec_visible(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                    uint64_t id);
/* Appends the JSON of record id to out; *version receives its version (ETag).
 * Returns 0, TRL_ENOTFOUND, TRL_ECORRUPT. */
int trl_rec_get(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                uint64_t id, const struct trl_rec_out *o, uint64_t *version, struct trl_buf *out);

/* Listing parameters (DESIGN.md §5). Strings are borrowed. */
struct trl_list_opts {
    const char *filter;     /* expression, NULL or "" for all */
    const char *sort;       /* "-created_at", "title", ... NULL for "-id" */
    int64_t limit;          /* 1..1000 (0: 50) */
    const char *cursor;     /* opaque cursor from a previous page, NULL for the first */
    bool count_exact;       /* include "count" */
    struct trl_rec_out out; /* per-record output options */
};

/* Appends {"items":[...],"next_cursor":...,"count":...} to out. Errors: TRL_EQUERY (bad filter,
 * sort, limit or cursor: d names the parameter and column), TRL_EINVAL (a query that would scan
 * more than max_scan records; d says to add a filter on an indexed field). */
int trl_rec_list(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_list_opts *o, struct trl_buf *out);

/* Calls fn for every record of ty that the caller may read (cx->acc's read scope) and that
 * matches filter (NULL: all; parsed against ty, evaluated with env, NULL: cx's user and time), in
 * id order, driven by an index where the filter's plan has an equality or `in` on an indexed
 * column. Records are borrowed for the call. fn returns 0 to go on or a TRL_E* that ends the
 * scan. Past cx->max_scan examined records: TRL_EINVAL (d says to add an indexed filter).
 * *scanned (may be NULL) receives the records examined. */
int trl_rec_each(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_expr *filter, const struct trl_expr_env *env,
                 int (*fn)(void *ud, const struct trl_record *r), void *ud, int64_t *scanned);
/* The value of column col (a field id or TRL_COL_*) of a record (defaults applied). */
/* The display label of a system column ("state" -> "State" / "状态"; id, name, state, owner, org,
 * created_at, updated_at, created_by, updated_by), NULL for another name. */
const char *trl_rec_sys_label(const char *name, bool zh);
void trl_rec_value(const struct trl_type *ty, const struct trl_record *r, int col,
                   struct trl_value *out);

/* Walks the states record id entered, from its history, oldest first: the initial state at its
 * creation, then each transition's target, with the UTC ms it happened (reports measure time in
 * states from these). fn returns 0 to go on. */
int trl_rec_state_walk(struct trl_txn *t, const struct trl_type *ty, uint64_t id,
                       int (*fn)(void *ud, const char *state, int64_t at_ms), void *ud);

/* Appends {"items":[events...]} of a record (also a deleted one) as cx may see it: TRL_ENOTFOUND
 * when the record never existed or lies outside the caller's read scope (cx->acc; a deleted one
 * is visible only with read scope all); changes of fields hidden from the caller, or that ty no
 * longer has, are left out. */
int trl_rec_history(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                    uint64_t id, struct trl_buf *out);

/* ---------------------------------------------------------------------------------------------
 * The change feed (feed.c): the global change log (`log`) read in order, for server-sent events.
 * Readers take a bounded batch per read txn and remember the last sequence they saw; nothing
 * here holds state between calls.
 */
struct trl_rec_change {
    uint64_t seq;      /* global change sequence (the log key; grows by one per change) */
    uint32_t type_id;  /* type of the changed record */
    uint64_t id;       /* the record */
    uint32_t hist_seq; /* its history event */
};

/* The newest change's sequence into *seq (0 when the log is empty). 0, TRL_ECORRUPT, TRL_EIO. */
int trl_rec_log_last(struct trl_txn *t, uint64_t *seq);
/* Up to max changes with a sequence above after, oldest first, into out[0..*n). Fewer than max
 * means the log ends there (for this txn). 0, TRL_ECORRUPT, TRL_EIO. */
int trl_rec_log_read(struct trl_txn *t, uint64_t after, struct trl_rec_change *out, size_t max,
                     size_t *n);
/* Appends change ch of a record of ty as cx may see it, by the history's rules: nothing (and
 * *visible false) unless the record lies in the caller's read scope (cx->acc; a deleted record
 * only with read scope all); changes of fields hidden from the caller or no longer in ty are
 * left out. The JSON: {"seq","type","id","name" (null once deleted),"hist_seq", then the
 * history event's members: "at","actor","action","version","request_id", ..., "changes"}.
 * action receives the event's action ("" when it has none). 0, TRL_ECORRUPT, TRL_ENOMEM,
 * TRL_EIO; on failure out is left as it was. */
int trl_rec_change_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                        const struct trl_rec_change *ch, bool *visible, char action[32],
                        struct trl_buf *out);

/* Whether who may read some record that holds the file sha (64 hex) in an attachment field they
 * may see. 0 with *visible set, or a read error. */
int trl_rec_file_visible(struct trl_txn *t, const struct trl_catalog *cat,
                         const struct trl_principal *who, const char *sha, bool *visible);

/* Records of a type (from the maintained counter). */
int trl_rec_count(struct trl_txn *t, const struct trl_type *ty, uint64_t *n);
/* Maintained counters (updated in the same write txn as the records, O(1) to read): records of
 * ty whose counted column col (the state, an enum or a ref field) holds v, in every org (org
 * NULL) or in one org; and the records of one org. A listing's count=exact reads them when its
 * filter is absent or one `col = v` / `col in (...)` on a counted column, and the caller reads
 * every row or exactly its own org's (read scope "org" alone); otherwise it counts through the
 * listing's plan. */
int trl_rec_count_value(struct trl_txn *t, const struct trl_type *ty, int col, const char *org,
                        const struct trl_value *v, uint64_t *n);
int trl_rec_count_org(struct trl_txn *t, const struct trl_type *ty, const char *org, uint64_t *n);
/* Calls fn for each value of counted column col (state, enum and ref fields) that records hold,
 * with their number, in every org (org NULL) or one; value bytes go into arena. */
int trl_rec_count_each(struct trl_txn *t, const struct trl_type *ty, int col, const char *org,
                       struct trl_arena *arena,
                       int (*fn)(void *ud, const struct trl_value *v, uint64_t n), void *ud);

/* ---------------------------------------------------------------------------------------------
 * Idempotency: a stored response per (user, key), kept for 24 hours.
 */
struct trl_idem {
    int status;        /* HTTP status of the first answer */
    char *body;        /* its body (owned) */
    char *fingerprint; /* method + path + body hash of the first request (owned) */
};
/* 0 and *found set (entry owned by the caller: trl_idem_free), or TRL_EIO. */
int trl_idem_get(struct trl_txn *t, const char *user, const char *key, int64_t now_ms, bool *found,
                 struct trl_idem *e);
int trl_idem_put(struct trl_txn *t, const char *user, const char *key, int64_t now_ms,
                 const struct trl_idem *e);
void trl_idem_free(struct trl_idem *e);
/* Deletes at most max entries older than the 24-hour window; *n receives how many. */
int trl_idem_purge(struct trl_txn *t, int64_t now_ms, size_t max, size_t *n);

/* ---------------------------------------------------------------------------------------------
 * Consistency check (`trellis check`): records against indexes, unique indexes, counters,
 * history chains and sequences. Writes one line per problem to report (may be NULL) and returns
 * the number of problems found (>= 0) or a TRL_E* on failure to read.
 */
int trl_rec_check(struct trl_txn *t, const struct trl_catalog *cat, struct trl_buf *report);

/* New records get their plain index entries in batches (schema.h, trl_schema_pending_key); a
 * full batch is written by the create that fills it. trl_rec_index_flush writes every waiting
 * record's entries now (write txn; cat must be the store's current schema, else nothing is
 * written), counting the records in *written; the server runs it when the writer is idle, the
 * CLI before it closes a store it wrote. trl_rec_index_pending: whether any record waits. */
int trl_rec_index_flush(struct trl_txn *t, const struct trl_catalog *cat, uint64_t *written);
int trl_rec_index_pending(struct trl_txn *t, bool *any);

#endif
