/* writer.c — the single writer thread: group commit of queued jobs, each in a nested txn. */
#include "store_int.h"

#include <stdlib.h>
#include <unistd.h>

/* Runs jobs [first, end) in one batch txn; fills job->next-independent results into rcs. */
static int run_batch(struct trl_store *s, struct trl_write_job **jobs, size_t n, int *rcs)
{
    for (;;) {
        MDB_txn *parent;
        int rc = mdb_txn_begin(s->env, NULL, 0, &parent);
        if (rc == MDB_MAP_RESIZED) {
            pthread_rwlock_wrlock(&s->resize);
            mdb_env_set_mapsize(s->env, 0);
            pthread_rwlock_unlock(&s->resize);
            rc = mdb_txn_begin(s->env, NULL, 0, &parent);
        }
        if (rc) return trl_store_rc(rc, "write txn");
        bool map_full = false;
        for (size_t i = 0; i < n; i++) {
            struct trl_txn t = {.s = s, .write = true, .steps = 0};
            rc = mdb_txn_begin(s->env, parent, 0, &t.txn);
            if (rc) {
                rcs[i] = trl_store_rc(rc, "nested txn");
                if (rcs[i] == TRL_EMAPFULL) map_full = true;
                if (map_full) break;
                continue;
            }
            rcs[i] = jobs[i]->fn(&t, jobs[i]->arg);
            if (rcs[i] == 0) {
                rc = mdb_txn_commit(t.txn);
                if (rc) rcs[i] = trl_store_rc(rc, "nested commit");
            } else {
                mdb_txn_abort(t.txn);
            }
            if (rcs[i] == TRL_EMAPFULL) {
                map_full = true;
                break;
            }
        }
        if (!map_full) {
            rc = mdb_txn_commit(parent);
            if (rc == 0) return 0;
            rc = trl_store_rc(rc, "commit");
            if (rc != TRL_EMAPFULL) return rc;
        } else {
            mdb_txn_abort(parent);
        }
        /* Map full: grow and rerun the whole batch; at the cap nothing of it is stored. */
        if (trl_store_grow(s)) return TRL_EFULL;
    }
}

static void finish(struct trl_write_job **jobs, size_t n, const int *rcs, int batch_rc)
{
    for (size_t i = 0; i < n; i++) {
        int rc = batch_rc ? batch_rc : rcs[i];
        if (rc == TRL_EMAPFULL) rc = TRL_EFULL;
        jobs[i]->done(jobs[i]->arg, rc);
    }
}

/* A batch: its jobs, their results, and the batch's own result. */
struct batch {
    struct trl_write_job **jobs; /* owned array */
    int *rcs;                    /* owned array, one result per job */
    size_t n, cap;               /* used and allocated entries */
    int brc;                     /* commit result */
    bool barrier;                /* holds a barrier job */
};

static bool batch_grow(struct batch *b)
{
    size_t nc = b->cap ? b->cap * 2 : 64;
    struct trl_write_job **nj = realloc(b->jobs, nc * sizeof(*nj));
    if (!nj) return false;
    b->jobs = nj;
    int *nr = realloc(b->rcs, nc * sizeof(*nr));
    if (!nr) return false;
    b->rcs = nr;
    b->cap = nc;
    return true;
}

static size_t last_txnid(struct trl_store *s)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    return info.me_last_txnid;
}

/* Flushes the file so that the newest commit's meta page is on disk. A failed flush leaves
 * durability unknown: the process ends rather than acknowledge anything (clients retry). */
static void sync_now(struct trl_store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    if (rc) {
        trl_log(TRL_LOG_ERROR, "fdatasync of the store failed: %s; stopping", mdb_strerror(rc));
        _exit(70);
    }
}

/*
 * Durability is pipelined. The environment runs with MDB_NOMETASYNC: a commit writes its pages,
 * fdatasyncs them, then writes its meta page without a flush of its own. That meta page reaches
 * the disk with the next commit's fdatasync, or with an explicit sync when no work is waiting. A
 * batch is acknowledged only after one of those two, so every answer still follows durability,
 * while a busy writer pays one flush per commit instead of two.
 */
void *trl_store_writer_main(void *arg)
{
    struct trl_store *s = arg;
    struct batch bs[2] = {{0}};
    struct batch *pend = NULL; /* committed, waiting for its meta page to be flushed */
    int cur = 0;
    if (!batch_grow(&bs[0]) || !batch_grow(&bs[1])) {
        trl_log(TRL_LOG_ERROR, "out of memory starting the writer");
        abort();
    }
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !s->stopping && !pend) pthread_cond_wait(&s->qcond, &s->qlock);
        struct trl_write_job *list = s->qhead;
        s->qhead = s->qtail = NULL;
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->qlock);
        if (!list) {
            /* Idle: make the last batch durable now and answer it. */
            if (pend) {
                sync_now(s);
                finish(pend->jobs, pend->n, pend->rcs, 0);
                pend = NULL;
            }
            if (stop) break;
            continue;
        }
        /* Split the taken list into batches; a barrier job runs in a batch of its own. */
        while (list) {
            struct batch *b = &bs[cur];
            b->n = 0;
            b->barrier = false;
            while (list) {
                if (list->barrier && b->n > 0) break;
                if (b->n == b->cap && !batch_grow(b)) break; /* run what fits now */
                struct trl_write_job *j = list;
                list = list->next;
                j->next = NULL;
                b->jobs[b->n++] = j;
                if (j->barrier) {
                    b->barrier = true;
                    break;
                }
            }
            size_t before = last_txnid(s);
            b->brc = run_batch(s, b->jobs, b->n, b->rcs);
            bool wrote = b->brc == 0 && last_txnid(s) != before;
            if (pend) {
                /* This commit's fdatasync carried the previous meta page; without a commit,
                 * flush explicitly. */
                if (!wrote) sync_now(s);
                finish(pend->jobs, pend->n, pend->rcs, 0);
                pend = NULL;
            }
            pthread_mutex_lock(&s->qlock);
            s->batches++;
            s->jobs += b->n;
            pthread_mutex_unlock(&s->qlock);
            if (!wrote) {
                /* Failed, or nothing to make durable. */
                finish(b->jobs, b->n, b->rcs, b->brc);
            } else if (b->barrier) {
                /* Definition changes are answered (and published) before the next batch. */
                sync_now(s);
                finish(b->jobs, b->n, b->rcs, 0);
            } else {
                pend = b;
                cur ^= 1;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        free(bs[i].jobs);
        free(bs[i].rcs);
    }
    return NULL;
}

int trl_store_submit(struct trl_store *s, struct trl_write_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&s->qlock);
    if (s->stopping || s->read_only) {
        pthread_mutex_unlock(&s->qlock);
        return TRL_EUNAVAIL;
    }
    if (s->qtail) s->qtail->next = job;
    else s->qhead = job;
    s->qtail = job;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    return 0;
}

struct sync_job {
    struct trl_write_job job;
    trl_write_fn fn;
    void *arg;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
    int rc;
};

static int sync_fn(struct trl_txn *t, void *arg)
{
    struct sync_job *sj = arg;
    return sj->fn(t, sj->arg);
}

static void sync_done(void *arg, int rc)
{
    struct sync_job *sj = arg;
    pthread_mutex_lock(&sj->m);
    sj->rc = rc;
    sj->done = true;
    pthread_cond_signal(&sj->c);
    pthread_mutex_unlock(&sj->m);
}

int trl_store_write(struct trl_store *s, trl_write_fn fn, void *arg)
{
    struct sync_job sj = {.fn = fn, .arg = arg};
    sj.job.fn = sync_fn;
    sj.job.done = sync_done;
    sj.job.arg = &sj;
    sj.job.barrier = true;
    pthread_mutex_init(&sj.m, NULL);
    pthread_cond_init(&sj.c, NULL);
    int rc = trl_store_submit(s, &sj.job);
    if (rc == 0) {
        pthread_mutex_lock(&sj.m);
        while (!sj.done) pthread_cond_wait(&sj.c, &sj.m);
        pthread_mutex_unlock(&sj.m);
        rc = sj.rc;
    }
    pthread_mutex_destroy(&sj.m);
    pthread_cond_destroy(&sj.c);
    return rc;
}

void trl_store_writer_stats(struct trl_store *s, uint64_t *batches, uint64_t *jobs)
{
    pthread_mutex_lock(&s->qlock);
    *batches = s->batches;
    *jobs = s->jobs;
    pthread_mutex_unlock(&s->qlock);
}
