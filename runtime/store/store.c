/* store.c — the LMDB environment, read txns, gets, puts and cursors. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *db_names[TRL_DB_COUNT] = {
    "meta", "rec", "idx", "hist", "log", "timer", "cnt", "auth", "idem", "files", "appr", "inbox",
};

int trl_store_rc(int rc, const char *what)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return TRL_ENOTFOUND;
    case MDB_KEYEXIST:
        return TRL_EEXIST;
    case MDB_MAP_FULL:
        return TRL_EMAPFULL;
    case MDB_PANIC:
    case MDB_CORRUPTED:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        /* The environment cannot be trusted any more: never carry on. */
        trl_log(TRL_LOG_ERROR, "fatal LMDB error in %s: %s; stopping", what, mdb_strerror(rc));
        _exit(70);
    case MDB_READERS_FULL:
        return TRL_EUNAVAIL;
    case ENOMEM:
        return TRL_ENOMEM;
    default:
        trl_log(TRL_LOG_ERROR, "LMDB error in %s: %s", what, mdb_strerror(rc));
        return TRL_EIO;
    }
}

/* A store failure in a write txn (not "not found" or "exists", which are answers) makes the txn
 * fail every later call with it: LMDB has marked the txn as failed, and code that caught the
 * error (a hook's pcall around trellis.create) must not commit a job that lost a write. */
static int txn_fail(struct trl_txn *t, int rc)
{
    if (rc && rc != TRL_ENOTFOUND && rc != TRL_EEXIST && t->write && !t->failed) t->failed = rc;
    return rc;
}

int trl_store_open(const struct trl_store_opts *o, struct trl_store **out, struct trl_diag *d)
{
    int rc;
    struct trl_store *s = calloc(1, sizeof(*s));
    if (!s) return trl_diag_set(d, TRL_ENOMEM, "out of memory opening the store");
    s->map_size = o->map_initial ? o->map_initial : (size_t)64 << 20;
    s->map_max = o->map_max ? o->map_max : (size_t)64 << 30;
    if (s->map_size > s->map_max) s->map_size = s->map_max;
    s->read_only = o->read_only;
    s->dir = strdup(o->dir);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->resize, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    if (!s->dir) {
        rc = trl_diag_set(d, TRL_ENOMEM, "out of memory opening the store");
        goto fail;
    }
    if (!o->read_only && trl_mkdir_p(o->dir, 0700)) {
        rc = trl_diag_set(d, TRL_EIO, "cannot create data directory %s: %s", o->dir,
                          strerror(errno));
        goto fail;
    }
    if ((rc = mdb_env_create(&s->env))) {
        rc = trl_diag_set(d, TRL_EIO, "mdb_env_create: %s", mdb_strerror(rc));
        goto fail;
    }
    mdb_env_set_maxdbs(s->env, TRL_DB_COUNT + 4);
    mdb_env_set_maxreaders(s->env, o->max_readers ? o->max_readers : 256);
    mdb_env_set_mapsize(s->env, s->map_size);
    unsigned flags = MDB_NOTLS | (o->read_only ? MDB_RDONLY : 0);
    rc = mdb_env_open(s->env, o->dir, flags, 0600);
    if (rc) {
        int code = rc == EAGAIN ? TRL_EUNAVAIL : TRL_EIO;
        rc = trl_diag_set(d, code, "cannot open store in %s: %s", o->dir, mdb_strerror(rc));
        d->cause = rc;
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (info.me_mapsize > s->map_size) s->map_size = info.me_mapsize;
    if (s->map_size > s->map_max) s->map_max = s->map_size;
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) trl_log(TRL_LOG_WARN, "cleared %d stale reader slot(s) in %s", dead, o->dir);

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, o->read_only ? MDB_RDONLY : 0, &txn))) {
        rc = trl_diag_set(d, trl_store_rc(rc, "open"), "cannot begin txn: %s", mdb_strerror(rc));
        goto fail;
    }
    for (int i = 0; i < TRL_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], o->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc == MDB_NOTFOUND && o->read_only && i >= TRL_DB_APPR) {
            /* A data directory from before this database existed: it reads as empty. */
            s->absent[i] = true;
            continue;
        }
        if (rc) {
            mdb_txn_abort(txn);
            rc = trl_diag_set(d, rc == MDB_NOTFOUND ? TRL_ENOTFOUND : TRL_EIO,
                              "cannot open database %s in %s: %s", db_names[i], o->dir,
                              mdb_strerror(rc));
            goto fail;
        }
    }
    if ((rc = mdb_txn_commit(txn))) {
        rc = trl_diag_set(d, TRL_EIO, "cannot commit: %s", mdb_strerror(rc));
        goto fail;
    }
    if (!o->read_only) {
        if (pthread_create(&s->writer, NULL, trl_store_writer_main, s)) {
            rc = trl_diag_set(d, TRL_EIO, "cannot start the writer thread");
            goto fail;
        }
        s->writer_started = true;
        pthread_setname_np(s->writer, "trl-writer"); /* seen in top -H, perf, gdb */
    }
    *out = s;
    return 0;
fail:
    trl_store_close(s);
    return rc;
}

void trl_store_close(struct trl_store *s)
{
    if (!s) return;
    if (s->writer_started) {
        pthread_mutex_lock(&s->qlock);
        s->stopping = true;
        pthread_cond_broadcast(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
        pthread_join(s->writer, NULL);
    }
    if (s->env) mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    free(s->dir);
    free(s);
}

void trl_store_stats(struct trl_store *s, size_t *map_size, size_t *map_max, size_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&s->resize);
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    pthread_rwlock_unlock(&s->resize);
    if (map_size) *map_size = info.me_mapsize;
    if (map_max) *map_max = s->map_max;
    if (used) *used = (size_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int trl_store_reader_check(struct trl_store *s)
{
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    return dead;
}

int trl_store_grow(struct trl_store *s)
{
    if (s->map_size >= s->map_max) return TRL_EFULL;
    size_t ns = s->map_size * 2;
    if (ns > s->map_max || ns < s->map_size) ns = s->map_max;
    pthread_rwlock_wrlock(&s->resize);
    int rc = mdb_env_set_mapsize(s->env, ns);
    pthread_rwlock_unlock(&s->resize);
    if (rc) return trl_store_rc(rc, "grow map");
    trl_log(TRL_LOG_INFO, "store map grown from %zu to %zu MiB (cap %zu MiB)", s->map_size >> 20,
            ns >> 20, s->map_max >> 20);
    s->map_size = ns;
    return 0;
}

int trl_store_backup(struct trl_store *s, const char *path, struct trl_diag *d)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return trl_diag_set(d, TRL_EIO, "cannot create %s: %s", path, strerror(errno));
    pthread_rwlock_rdlock(&s->resize);
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->resize);
    if (!rc && fsync(fd)) rc = errno;
    if (close(fd) && !rc) rc = errno;
    if (rc) {
        unlink(path);
        return trl_diag_set(d, TRL_EIO, "backup to %s failed: %s", path, mdb_strerror(rc));
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Transactions
 */
int trl_store_read(struct trl_store *s, struct trl_txn **out)
{
    struct trl_txn *t = calloc(1, sizeof(*t));
    if (!t) return TRL_ENOMEM;
    t->s = s;
    pthread_rwlock_rdlock(&s->resize);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size, then retry once. */
        pthread_rwlock_unlock(&s->resize);
        pthread_rwlock_wrlock(&s->resize);
        mdb_env_set_mapsize(s->env, 0);
        pthread_rwlock_unlock(&s->resize);
        pthread_rwlock_rdlock(&s->resize);
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    }
    if (rc) {
        pthread_rwlock_unlock(&s->resize);
        free(t);
        return trl_store_rc(rc, "read txn");
    }
    *out = t;
    return 0;
}

void trl_txn_end(struct trl_txn *t)
{
    if (!t) return;
    mdb_txn_abort(t->txn);
    if (!t->write) pthread_rwlock_unlock(&t->s->resize);
    free(t);
}

int trl_txn_get(struct trl_txn *t, enum trl_db db, const void *k, size_t kn, struct trl_slice *v)
{
    MDB_val key = {kn, (void *)k}, val;
    v->p = NULL;
    v->n = 0;
    t->steps++;
    if (t->failed) return t->failed;
    if (t->s->absent[db]) return TRL_ENOTFOUND;
    int rc = mdb_get(t->txn, t->s->dbi[db], &key, &val);
    if (rc) return txn_fail(t, trl_store_rc(rc, "get"));
    v->p = val.mv_data;
    v->n = val.mv_size;
    return 0;
}

int trl_txn_put(struct trl_txn *t, enum trl_db db, const void *k, size_t kn, const void *v,
                size_t vn, unsigned flags)
{
    MDB_val key = {kn, (void *)k}, val = {vn, (void *)v};
    int rc;
    if (t->failed) return t->failed;
    if (flags & TRL_PUT_APPEND) {
        /* Appending fills pages instead of splitting them in half; LMDB refuses it with
         * MDB_KEYEXIST when the key is not past the last one, and then a plain put does. */
        rc = mdb_put(t->txn, t->s->dbi[db], &key, &val, MDB_APPEND);
        if (rc != MDB_KEYEXIST) return rc ? txn_fail(t, trl_store_rc(rc, "put")) : 0;
        key.mv_size = kn, key.mv_data = (void *)k;
        val.mv_size = vn, val.mv_data = (void *)v;
    }
    rc = mdb_put(t->txn, t->s->dbi[db], &key, &val,
                 (flags & TRL_PUT_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);
    return rc ? txn_fail(t, trl_store_rc(rc, "put")) : 0;
}

int trl_txn_del(struct trl_txn *t, enum trl_db db, const void *k, size_t kn)
{
    MDB_val key = {kn, (void *)k};
    if (t->failed) return t->failed;
    int rc = mdb_del(t->txn, t->s->dbi[db], &key, NULL);
    return rc ? txn_fail(t, trl_store_rc(rc, "del")) : 0;
}

/* 's' + name into key; names are short literals or built from type ids and date parts. */
static size_t seq_key(char *key, size_t cap, const char *name)
{
    size_t n = strlen(name);
    if (n > cap - 1) n = cap - 1;
    key[0] = 's';
    memcpy(key + 1, name, n);
    return n + 1;
}

int trl_txn_seq_get(struct trl_txn *t, const char *name, uint64_t *out)
{
    char key[256];
    size_t kn = seq_key(key, sizeof(key), name);
    struct trl_slice v = {0};
    *out = 0;
    int rc = trl_txn_get(t, TRL_DB_CNT, key, kn, &v);
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v.n == 8) *out = trl_get_u64be(v.p);
    return 0;
}

int trl_txn_nested(struct trl_txn *t, int (*fn)(struct trl_txn *nt, void *arg), void *arg)
{
    if (!t->write) return TRL_EINVAL;
    if (t->failed) return t->failed;
    struct trl_txn nt = {.s = t->s, .write = true};
    int rc = mdb_txn_begin(t->s->env, t->txn, 0, &nt.txn);
    if (rc) return txn_fail(t, trl_store_rc(rc, "nested txn"));
    rc = fn(&nt, arg);
    if (nt.failed) rc = nt.failed; /* whatever fn made of it */
    if (rc == 0) {
        int mrc = mdb_txn_commit(nt.txn);
        if (mrc) rc = txn_fail(&nt, trl_store_rc(mrc, "nested commit"));
    } else {
        mdb_txn_abort(nt.txn);
    }
    t->steps += nt.steps;
    /* The nested writes are gone, but the failure is the whole job's: a caller that carries on
     * (a hook's pcall) must not commit it. */
    if (nt.failed) t->failed = nt.failed;
    return rc;
}

int trl_txn_seq_set(struct trl_txn *t, const char *name, uint64_t v)
{
    char key[256];
    size_t kn = seq_key(key, sizeof(key), name);
    unsigned char b[8];
    trl_put_u64be(b, v);
    return trl_txn_put(t, TRL_DB_CNT, key, kn, b, 8, 0);
}

int trl_txn_seq_next(struct trl_txn *t, const char *name, uint64_t *out)
{
    uint64_t cur;
    int rc = trl_txn_seq_get(t, name, &cur);
    if (!rc) rc = trl_txn_seq_set(t, name, cur + 1);
    if (!rc) *out = cur + 1;
    return rc;
}

uint64_t trl_txn_steps(const struct trl_txn *t)
{
    return t->steps;
}

bool trl_txn_writable(const struct trl_txn *t)
{
    return t->write;
}

/* ---------------------------------------------------------------------------------------------
 * Cursors
 */
int trl_cursor_open(struct trl_txn *t, enum trl_db db, struct trl_cursor **out)
{
    if (t->failed) return t->failed;
    struct trl_cursor *c = calloc(1, sizeof(*c));
    if (!c) return TRL_ENOMEM;
    c->t = t;
    if (t->s->absent[db]) {
        *out = c; /* an empty database: every move finds nothing */
        return 0;
    }
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c->c);
    if (rc) {
        free(c);
        return txn_fail(t, trl_store_rc(rc, "cursor"));
    }
    *out = c;
    return 0;
}

void trl_cursor_close(struct trl_cursor *c)
{
    if (!c) return;
    if (c->c) mdb_cursor_close(c->c);
    free(c);
}

static int cursor_op(struct trl_cursor *c, MDB_cursor_op op)
{
    c->t->steps++;
    if (c->t->failed) return c->t->failed;
    if (!c->c) return TRL_ENOTFOUND;
    int rc = mdb_cursor_get(c->c, &c->k, &c->v, op);
    return rc ? txn_fail(c->t, trl_store_rc(rc, "cursor")) : 0;
}

int trl_cursor_seek(struct trl_cursor *c, const void *k, size_t kn)
{
    if (!k) return cursor_op(c, MDB_FIRST);
    c->k.mv_data = (void *)k;
    c->k.mv_size = kn;
    return cursor_op(c, MDB_SET_RANGE);
}

int trl_cursor_seek_before(struct trl_cursor *c, const void *k, size_t kn)
{
    if (!k) return cursor_op(c, MDB_LAST);
    c->k.mv_data = (void *)k;
    c->k.mv_size = kn;
    int rc = cursor_op(c, MDB_SET_RANGE);
    if (rc == TRL_ENOTFOUND) return cursor_op(c, MDB_LAST);
    if (rc) return rc;
    return cursor_op(c, MDB_PREV);
}

int trl_cursor_next(struct trl_cursor *c)
{
    return cursor_op(c, MDB_NEXT);
}

int trl_cursor_prev(struct trl_cursor *c)
{
    return cursor_op(c, MDB_PREV);
}

void trl_cursor_get(struct trl_cursor *c, struct trl_slice *k, struct trl_slice *v)
{
    if (k) k->p = c->k.mv_data, k->n = c->k.mv_size;
    if (v) v->p = c->v.mv_data, v->n = c->v.mv_size;
}
