/* store_int.h — private to runtime/store: the environment, txn and writer state. */
#ifndef TRL_STORE_INT_H
#define TRL_STORE_INT_H

#include "store.h"

#include <lmdb.h>
#include <pthread.h>

struct trl_store {
    MDB_env *env;                        /* the environment */
    MDB_dbi dbi[TRL_DB_COUNT];           /* named databases */
    bool absent[TRL_DB_COUNT];           /* read-only open of an older directory: missing */
    char *dir;                           /* data directory (owned) */
    size_t map_size;                     /* current map size */
    size_t map_max;                      /* growth cap */
    bool read_only;                      /* opened read-only: no writer */
    pthread_rwlock_t resize;             /* readers hold it shared; map growth takes it exclusive */
    pthread_mutex_t qlock;               /* guards the queue and stopping */
    pthread_cond_t qcond;                /* signalled when a job is queued or on stop */
    struct trl_write_job *qhead, *qtail; /* queued jobs, FIFO */
    bool stopping;                       /* close requested */
    bool writer_started;                 /* writer thread exists */
    pthread_t writer;                    /* the writer thread */
    uint64_t batches, jobs;              /* writer statistics (guarded by qlock) */
};

struct trl_txn {
    struct trl_store *s; /* owning store */
    MDB_txn *txn;        /* the LMDB txn */
    bool write;          /* a write (nested) txn of the writer */
    uint64_t steps;      /* gets and cursor moves */
    int failed;          /* a write txn's first store failure (TRL_EMAPFULL, TRL_EIO, ...): LMDB
                          * refuses everything after it, and so does every later call here; the
                          * writer answers the job with it even if the job went on (store.h) */
};

struct trl_cursor {
    struct trl_txn *t; /* txn it belongs to */
    MDB_cursor *c;     /* LMDB cursor */
    MDB_val k, v;      /* current position */
};

/* Translates an LMDB or errno result into TRL_E*; MDB_PANIC ends the process. */
int trl_store_rc(int rc, const char *what);
/* Grows the map (exclusive lock against readers). 0, or TRL_EFULL at the cap. */
int trl_store_grow(struct trl_store *s);
void *trl_store_writer_main(void *arg);

#endif
