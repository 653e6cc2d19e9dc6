/* writer.c — the single writer thread: group commit of queued jobs, each in a nested txn. */
#include "store_int.h"

#include <stdlib.h>
#include <sys/stat.h>
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
            /* A store failure the job caught and went on from is still its answer: its writes
             * are incomplete (and a full map is grown and the batch rerun). */
            if (t.failed) rcs[i] = t.failed;
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

static void finish(struct trl_write_job **jobs, size_t n, int *rcs, int batch_rc)
{
    for (size_t i = 0; i < n; i++) {
        int rc = batch_rc ? batch_rc : rcs[i];
        if (rc == TRL_EMAPFULL) rc = TRL_EFULL;
        jobs[i]->done(jobs[i]->arg, rc);
    }
}

/*
 * Keeps a region of written zeros past the end of the data in the file. A commit that extends
 * the file makes its fdatasync also journal the new size and extents, which made commits about a
 * third slower here; writing into blocks that already exist changes no metadata. The zeros are
 * written while holding a write txn (LMDB's writer lock, shared with other processes such as
 * `trellis import`), only past the file's current end, where no LMDB page lives, and never past
 * the map. Failures only cost speed, so they are logged, not returned.
 */
#define ZERO_LOW  ((off_t)4 << 20)  /* top up when less than this is left */
#define ZERO_STEP ((off_t)16 << 20) /* at least this much at a time */

static void keep_zeroed(struct trl_store *s)
{
    int fd;
    struct stat st;
    MDB_envinfo info;
    MDB_stat ms;
    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st)) return;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &ms);
    off_t used = (off_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (st.st_size - used >= ZERO_LOW) return;
    off_t step = used / 8 > ZERO_STEP ? used / 8 : ZERO_STEP;
    off_t target = st.st_size + step;
    if (target > (off_t)info.me_mapsize) target = (off_t)info.me_mapsize;
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn)) return;
    if (fstat(fd, &st) == 0 && st.st_size < target) {
        static const char zeros[1 << 16];
        bool ok = true;
        for (off_t off = st.st_size; ok && off < target; off += (off_t)sizeof(zeros)) {
            size_t n = target - off < (off_t)sizeof(zeros) ? (size_t)(target - off) : sizeof(zeros);
            ok = pwrite(fd, zeros, n, off) == (ssize_t)n;
        }
        if (ok) ok = fdatasync(fd) == 0;
        if (!ok) trl_log(TRL_LOG_WARN, "could not extend the store file ahead of its data");
    }
    mdb_txn_abort(txn);
}

void *trl_store_writer_main(void *arg)
{
    struct trl_store *s = arg;
    size_t cap = 64;
    struct trl_write_job **jobs = malloc(cap * sizeof(*jobs));
    int *rcs = malloc(cap * sizeof(*rcs));
    if (!jobs || !rcs) {
        trl_log(TRL_LOG_ERROR, "out of memory starting the writer");
        abort();
    }
    keep_zeroed(s);
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !s->stopping)
            pthread_cond_wait(&s->qcond, &s->qlock);
        struct trl_write_job *list = s->qhead;
        s->qhead = s->qtail = NULL;
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->qlock);
        if (!list && stop) break;

        /* Split the taken list into batches; a barrier job runs in a batch of its own. */
        while (list) {
            size_t n = 0;
            while (list) {
                if (list->barrier && n > 0) break;
                if (n == cap) {
                    size_t nc = cap * 2;
                    struct trl_write_job **nj = realloc(jobs, nc * sizeof(*nj));
                    if (nj) jobs = nj;
                    int *nr = nj ? realloc(rcs, nc * sizeof(*nr)) : NULL;
                    if (nr) rcs = nr;
                    if (!nj || !nr) break; /* run what fits now */
                    cap = nc;
                }
                struct trl_write_job *j = list;
                list = list->next;
                j->next = NULL;
                jobs[n++] = j;
                if (j->barrier) break;
            }
            int brc = run_batch(s, jobs, n, rcs);
            pthread_mutex_lock(&s->qlock);
            s->batches++;
            s->jobs += n;
            pthread_mutex_unlock(&s->qlock);
            finish(jobs, n, rcs, brc);
        }
        keep_zeroed(s);
    }
    free(jobs);
    free(rcs);
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
    if (s->qtail)
        s->qtail->next = job;
    else
        s->qhead = job;
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
        while (!sj.done)
            pthread_cond_wait(&sj.c, &sj.m);
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
