/*
 * store — the only module that touches LMDB (DESIGN.md §2).
 *
 * A data directory holds one LMDB environment with the named databases of enum trl_db. The
 * contract is an ordered key-value store with transactions: read txns (any thread, never block
 * writers), one writer thread that runs write jobs, and ordered cursors over key ranges. Keys and
 * values are byte strings; integers in keys are big-endian so byte order is numeric order.
 *
 * Write path: callers submit jobs (struct trl_write_job). The writer thread takes every queued
 * job, runs each in its own nested txn (a failing job aborts alone), commits the batch once (one
 * fsync: group commit) and only then calls each job's done callback. A job is therefore answered
 * only after its data is durable. When the map is full the batch is aborted, the map grown
 * (up to map_max) and the batch rerun; at the cap every job of the batch fails with TRL_EFULL and
 * nothing of it is stored. MDB_PANIC (and any other fatal LMDB state) ends the process with a log
 * line and exit status 70.
 *
 * Lifetimes: data returned by get and cursors points into the map and is valid until the txn
 * ends (or, for a write txn, until the next write to that database). Copy before keeping it.
 * After a failed put or delete a write txn is poisoned: only abort (the job returning an error)
 * is legal.
 */
#ifndef TRL_STORE_H
#define TRL_STORE_H

#include "core/core.h"

enum trl_db {
    TRL_DB_META = 0, /* definitions by kind and name, schema counters */
    TRL_DB_REC,      /* (type u32, id u64) -> encoded record */
    TRL_DB_IDX,      /* (index u32, encoded value[, id u64]) -> empty or id */
    TRL_DB_HIST,     /* (type u32, id u64, seq u32) -> history event */
    TRL_DB_LOG,      /* global change seq u64 -> (type, id, seq) */
    TRL_DB_TIMER,    /* (due ms u64, timer id) -> payload */
    TRL_DB_CNT,      /* maintained counters ('c', 't' keys) and named sequences ('s' keys) */
    TRL_DB_AUTH,     /* users, roles, orgs, sessions, tokens */
    TRL_DB_IDEM,     /* idempotency keys -> stored responses */
    TRL_DB_FILES,    /* attachment metadata by sha256 */
    TRL_DB_APPR,     /* approvals, tasks, inboxes, out-of-office rules (approval.h) */
    TRL_DB_INBOX,    /* in-app notifications per user */
    TRL_DB_COUNT
};

struct trl_store;
struct trl_txn;
struct trl_cursor;

struct trl_store_opts {
    const char *dir;      /* data directory (created if absent) */
    size_t map_initial;   /* initial map size in bytes (0: 64 MiB) */
    size_t map_max;       /* growth cap in bytes (0: 64 GiB) */
    unsigned max_readers; /* reader slots (0: 256) */
    bool read_only;       /* open for reading only (check, export) */
};

/* Opens (creating if needed) the environment in opts->dir, clears stale reader slots, creates
 * the named databases and starts the writer thread. Returns 0 and an owned store
 * (trl_store_close), or TRL_EIO / TRL_ENOMEM / TRL_EUNAVAIL (locked by another process) with d. */
int trl_store_open(const struct trl_store_opts *opts, struct trl_store **out, struct trl_diag *d);
/* Stops the writer after it finished the queued jobs, and closes. Accepts NULL. */
void trl_store_close(struct trl_store *s);

/* Current map size and cap in bytes; bytes used by pages in use. */
void trl_store_stats(struct trl_store *s, size_t *map_size, size_t *map_max, size_t *used);
/* Clears stale reader slots (dead processes/threads); returns how many were cleared. */
int trl_store_reader_check(struct trl_store *s);
/* Hot, consistent, compacted copy of the environment into file path. 0 or TRL_EIO. */
int trl_store_backup(struct trl_store *s, const char *path, struct trl_diag *d);

/* ---------------------------------------------------------------------------------------------
 * Transactions
 */
/* Begins a read txn (owned; end with trl_txn_end). 0, TRL_EIO, TRL_EUNAVAIL (no reader slot). */
int trl_store_read(struct trl_store *s, struct trl_txn **out);
/* Ends a read txn. Accepts NULL. */
void trl_txn_end(struct trl_txn *t);

struct trl_slice {
    const void *p; /* borrowed: valid until the txn ends or the db is written */
    size_t n;      /* length */
};

/* 0 and v set, TRL_ENOTFOUND, or TRL_EIO. */
int trl_txn_get(struct trl_txn *t, enum trl_db db, const void *k, size_t kn, struct trl_slice *v);
/* Put flags. */
#define TRL_PUT_NOOVERWRITE 1u /* TRL_EEXIST when the key is present */
#define TRL_PUT_APPEND                                                                             \
    2u /* the key is probably past every key: append (full pages); a                               \
          plain put when it is not */
/* 0, TRL_EEXIST, TRL_EMAPFULL (the writer retries after growth), TRL_EIO. */
int trl_txn_put(struct trl_txn *t, enum trl_db db, const void *k, size_t kn, const void *v,
                size_t vn, unsigned flags);
/* 0, TRL_ENOTFOUND, TRL_EIO. */
int trl_txn_del(struct trl_txn *t, enum trl_db db, const void *k, size_t kn);
/* Increments the named sequence (absent counts as 0) and returns its new value: ids,
 * autonaming and change-log counters, which never repeat because the increment commits with the
 * rows that use it. Sequences share TRL_DB_CNT with the counters (one B-tree page less to write
 * per commit) under the key 's' + name. 0, or a put error. */
int trl_txn_seq_next(struct trl_txn *t, const char *name, uint64_t *out);
/* The named sequence's current value (0 when absent). 0, or TRL_EIO. */
int trl_txn_seq_get(struct trl_txn *t, const char *name, uint64_t *out);
/* Sets the named sequence (for repair tools and tests). 0, or a put error. */
int trl_txn_seq_set(struct trl_txn *t, const char *name, uint64_t v);
/* Runs fn in a write txn nested in t: fn's writes join t when it returns 0 and vanish when it
 * returns an error (which is returned; TRL_EMAPFULL must reach the writer unchanged). A store
 * failure inside fn is returned whatever fn returns, and sticks to t too (trl_write_fn). t must
 * not be used, nor have cursors open, while fn runs. For work that may fail on its own inside a
 * job (one timer's actions among many). */
int trl_txn_nested(struct trl_txn *t, int (*fn)(struct trl_txn *nt, void *arg), void *arg);
/* Number of cursor steps and gets made by t (for tests that prove a plan reads O(result)). */
uint64_t trl_txn_steps(const struct trl_txn *t);
/* True for a write txn. */
bool trl_txn_writable(const struct trl_txn *t);

/* ---------------------------------------------------------------------------------------------
 * Cursors: positioned on an entry or exhausted. The slices are valid until the next move.
 */
int trl_cursor_open(struct trl_txn *t, enum trl_db db, struct trl_cursor **out);
void trl_cursor_close(struct trl_cursor *c);
/* Positions at the first key >= k (k NULL: first key). 0, TRL_ENOTFOUND (none), TRL_EIO. */
int trl_cursor_seek(struct trl_cursor *c, const void *k, size_t kn);
/* Positions at the last key < k (k NULL: the last key). 0, TRL_ENOTFOUND, TRL_EIO. */
int trl_cursor_seek_before(struct trl_cursor *c, const void *k, size_t kn);
int trl_cursor_next(struct trl_cursor *c);
int trl_cursor_prev(struct trl_cursor *c);
/* Key and value at the current position. */
void trl_cursor_get(struct trl_cursor *c, struct trl_slice *k, struct trl_slice *v);

/* ---------------------------------------------------------------------------------------------
 * Writes
 */
/* Runs in the writer thread inside a nested txn of the batch. Return 0 to keep its writes, or a
 * TRL_E* to abort them alone (fill your own diagnostics in arg). TRL_EMAPFULL must be returned
 * unchanged: the writer grows the map and reruns the batch (so fn may run more than once and must
 * not have effects outside the txn before done is called). A store failure (anything but
 * TRL_ENOTFOUND / TRL_EEXIST) sticks to the txn: every later call on it, or on the txn a
 * trl_txn_nested ran in, returns it, and the job's answer is that failure whatever fn returns,
 * so a caller that caught one (a hook's pcall) cannot commit a job that lost a write. */
typedef int (*trl_write_fn)(struct trl_txn *t, void *arg);
/* Called in the writer thread after the batch committed (rc = fn's result) or failed to commit
 * (rc = TRL_EIO / TRL_EFULL). Must not block. */
typedef void (*trl_write_done_fn)(void *arg, int rc);

struct trl_write_job {
    trl_write_fn fn;            /* the work */
    trl_write_done_fn done;     /* completion, after durability */
    void *arg;                  /* passed to both */
    bool barrier;               /* commit before and after this job (schema changes) */
    struct trl_write_job *next; /* queue link, owned by the store while queued */
};

/* Queues job (borrowed until done is called). 0, or TRL_EUNAVAIL when the store is closing. */
int trl_store_submit(struct trl_store *s, struct trl_write_job *job);
/* Submits fn and waits for its durable result (for the CLI and tests). Returns fn's result or the
 * commit error. */
int trl_store_write(struct trl_store *s, trl_write_fn fn, void *arg);
/* Batch statistics since open: batches committed and jobs run (for metrics and tests). */
void trl_store_writer_stats(struct trl_store *s, uint64_t *batches, uint64_t *jobs);

#endif
