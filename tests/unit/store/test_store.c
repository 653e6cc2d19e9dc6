/*
 * test_store.c — the store contract: gets, puts, deletes and ordered cursors over key ranges;
 * the writer's group commit (batching, one failing job aborting alone, barriers, answers only
 * after durability); map growth up to the cap and TRL_EFULL at the cap with nothing of the
 * failing job stored; readers running while the map grows; hot backup; stale reader slots.
 *
 * Every test runs in its own temporary directory under /tmp (made with mkdtemp by the fixture,
 * removed afterwards). Job functions run in the writer thread, so they never call ck_assert:
 * they record what they saw and the test thread asserts.
 */
#include "store/store.h"

#include <check.h>

#include "../fixture.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------------------
 * Fixture: a temporary directory, and the store opened in it.
 */
static char tmp_dir[192]; /* per test: inside fx_base_dir */
static struct trl_store *st;

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmp_dir, name);
}

static struct trl_store *open_at(const char *dir, size_t map_initial, size_t map_max,
                                 bool read_only)
{
    struct trl_store_opts o = {
        .dir = dir, .map_initial = map_initial, .map_max = map_max, .read_only = read_only};
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store *s = NULL;
    int rc = trl_store_open(&o, &s, &d);
    ck_assert_msg(rc == 0, "open %s: %s", dir, d.message);
    trl_diag_reset(&d);
    return s;
}

/* Opens the fixture's store (in tmp_dir/db) with the given map sizes. */
static void open_store(size_t map_initial, size_t map_max)
{
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, map_initial, map_max, false);
}

static void setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/t-XXXXXX", fx_base_dir);
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    st = NULL;
}

static void setup_open(void)
{
    setup();
    open_store(0, 0);
}

static void teardown(void)
{
    trl_store_close(st);
    st = NULL;
    fx_rm_tree(tmp_dir);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */
static void key_u32(unsigned char k[4], uint32_t v)
{
    trl_put_u32be(k, v);
}

/* Value of key i: its length and bytes derive from i, so a reader can verify what it sees. */
static size_t value_for(uint32_t i, size_t size, unsigned char *out)
{
    for (size_t k = 0; k < size; k++)
        out[k] = (unsigned char)(i * 31 + k);
    return size;
}

static bool value_ok(uint32_t i, const struct trl_slice *v, size_t size)
{
    if (v->n != size) return false;
    const unsigned char *p = v->p;
    for (size_t k = 0; k < size; k++)
        if (p[k] != (unsigned char)(i * 31 + k)) return false;
    return true;
}

/* Puts keys [first, first + count) of db with values of vsize bytes. */
struct put_range {
    enum trl_db db;
    uint32_t first, count;
    size_t vsize;
    int fail_with;   /* return this after the puts (0: keep them) */
    atomic_int runs; /* times fn ran (reruns after growth count) */
};

static int put_range_fn(struct trl_txn *t, void *arg)
{
    struct put_range *p = arg;
    atomic_fetch_add(&p->runs, 1);
    unsigned char *v = malloc(p->vsize ? p->vsize : 1);
    if (!v) return TRL_ENOMEM;
    int rc = 0;
    for (uint32_t i = p->first; i < p->first + p->count && !rc; i++) {
        unsigned char k[4];
        key_u32(k, i);
        value_for(i, p->vsize, v);
        rc = trl_txn_put(t, p->db, k, 4, v, p->vsize, 0);
    }
    free(v);
    if (rc) return rc; /* TRL_EMAPFULL goes back unchanged */
    return p->fail_with;
}

static int write_range(enum trl_db db, uint32_t first, uint32_t count, size_t vsize)
{
    struct put_range p = {.db = db, .first = first, .count = count, .vsize = vsize};
    return trl_store_write(st, put_range_fn, &p);
}

/* Counts keys [first, first + count) present with the right value; -1 on a wrong value. */
static long count_present(struct trl_store *s, enum trl_db db, uint32_t first, uint32_t count,
                          size_t vsize)
{
    struct trl_txn *t = NULL;
    ck_assert_int_eq(trl_store_read(s, &t), 0);
    long n = 0;
    for (uint32_t i = first; i < first + count; i++) {
        unsigned char k[4];
        struct trl_slice v;
        key_u32(k, i);
        int rc = trl_txn_get(t, db, k, 4, &v);
        if (rc == TRL_ENOTFOUND) continue;
        if (rc || !value_ok(i, &v, vsize)) {
            n = -1;
            break;
        }
        n++;
    }
    trl_txn_end(t);
    return n;
}

/* Completion tracking for submitted jobs. */
struct waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    int pending;
};

static void waiter_init(struct waiter *w, int pending)
{
    pthread_mutex_init(&w->m, NULL);
    pthread_cond_init(&w->c, NULL);
    w->pending = pending;
}

static void waiter_done(struct waiter *w)
{
    pthread_mutex_lock(&w->m);
    w->pending--;
    pthread_cond_broadcast(&w->c);
    pthread_mutex_unlock(&w->m);
}

/* Waits (at most 30 s) until nothing is pending; returns what is still pending. */
static int waiter_wait(struct waiter *w)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&w->m);
    while (w->pending > 0)
        if (pthread_cond_timedwait(&w->c, &w->m, &until) == ETIMEDOUT) break;
    int left = w->pending;
    pthread_mutex_unlock(&w->m);
    return left;
}

static void waiter_destroy(struct waiter *w)
{
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->c);
}

/* A job that blocks the writer until released, so that later jobs queue up behind it and the
 * next batch holds exactly the jobs the test queued. */
struct gate {
    struct trl_write_job job;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool started, released, done;
};

static int gate_fn(struct trl_txn *t, void *arg)
{
    (void)t;
    struct gate *g = arg;
    pthread_mutex_lock(&g->m);
    g->started = true;
    pthread_cond_broadcast(&g->c);
    while (!g->released)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return 0;
}

static void gate_done(void *arg, int rc)
{
    (void)rc;
    struct gate *g = arg;
    pthread_mutex_lock(&g->m);
    g->done = true;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

/* Submits the gate and returns once the writer is inside it. */
static void gate_close(struct gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->m, NULL);
    pthread_cond_init(&g->c, NULL);
    g->job.fn = gate_fn;
    g->job.done = gate_done;
    g->job.arg = g;
    ck_assert_int_eq(trl_store_submit(st, &g->job), 0);
    pthread_mutex_lock(&g->m);
    while (!g->started)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    g->released = true;
    pthread_cond_broadcast(&g->c);
    while (!g->done)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    pthread_mutex_destroy(&g->m);
    pthread_cond_destroy(&g->c);
}

/* ---------------------------------------------------------------------------------------------
 * Get, put, delete
 */
struct basic {
    int rc_put, rc_put_again, rc_get, rc_del, rc_del_missing, rc_get_deleted;
    bool writable;
    size_t got_n;
    char got[16];
};

static int basic_fn(struct trl_txn *t, void *arg)
{
    struct basic *b = arg;
    struct trl_slice v;
    b->writable = trl_txn_writable(t);
    b->rc_put = trl_txn_put(t, TRL_DB_META, "alpha", 5, "one", 3, 0);
    b->rc_put_again = trl_txn_put(t, TRL_DB_META, "alpha", 5, "uno!", 4, 0); /* overwrite */
    b->rc_get = trl_txn_get(t, TRL_DB_META, "alpha", 5, &v);
    if (!b->rc_get) {
        b->got_n = v.n;
        memcpy(b->got, v.p, v.n < sizeof(b->got) ? v.n : sizeof(b->got));
    }
    trl_txn_put(t, TRL_DB_META, "beta", 4, "two", 3, 0);
    trl_txn_put(t, TRL_DB_REC, "alpha", 5, "other db", 8, 0);
    trl_txn_put(t, TRL_DB_META, "empty", 5, "", 0, 0);
    b->rc_del = trl_txn_del(t, TRL_DB_META, "beta", 4);
    b->rc_del_missing = trl_txn_del(t, TRL_DB_META, "gamma", 5);
    b->rc_get_deleted = trl_txn_get(t, TRL_DB_META, "beta", 4, &v);
    return 0;
}

START_TEST(put_get_delete_in_a_write_job)
{
    struct basic b = {0};
    ck_assert_int_eq(trl_store_write(st, basic_fn, &b), 0);
    ck_assert(b.writable);
    ck_assert_int_eq(b.rc_put, 0);
    ck_assert_int_eq(b.rc_put_again, 0);
    ck_assert_int_eq(b.rc_get, 0);
    ck_assert_uint_eq(b.got_n, 4);
    ck_assert_int_eq(memcmp(b.got, "uno!", 4), 0);
    ck_assert_int_eq(b.rc_del, 0);
    ck_assert_int_eq(b.rc_del_missing, TRL_ENOTFOUND);
    ck_assert_int_eq(b.rc_get_deleted, TRL_ENOTFOUND);

    struct trl_txn *t = NULL;
    struct trl_slice v;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert(!trl_txn_writable(t));
    ck_assert_uint_eq(trl_txn_steps(t), 0);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_META, "alpha", 5, &v), 0);
    ck_assert_uint_eq(v.n, 4);
    ck_assert_int_eq(memcmp(v.p, "uno!", 4), 0);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_REC, "alpha", 5, &v), 0); /* databases are separate */
    ck_assert_uint_eq(v.n, 8);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_META, "empty", 5, &v), 0);
    ck_assert_uint_eq(v.n, 0);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_META, "beta", 4, &v), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_IDX, "alpha", 5, &v), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_META, "alph", 4, &v), TRL_ENOTFOUND);
    ck_assert_uint_eq(trl_txn_steps(t), 6);
    trl_txn_end(t);
    trl_txn_end(NULL);
}
END_TEST

struct noover {
    int rc_first, rc_second, rc_other;
};

static int noover_fn(struct trl_txn *t, void *arg)
{
    struct noover *n = arg;
    n->rc_first = trl_txn_put(t, TRL_DB_IDX, "k", 1, "1", 1, TRL_PUT_NOOVERWRITE);
    n->rc_second = trl_txn_put(t, TRL_DB_IDX, "k", 1, "2", 1, TRL_PUT_NOOVERWRITE);
    n->rc_other = trl_txn_put(t, TRL_DB_IDX, "k2", 2, "x", 1, 0);
    return 0;
}

static int noover_abort_fn(struct trl_txn *t, void *arg)
{
    struct noover *n = arg;
    n->rc_other = trl_txn_put(t, TRL_DB_IDX, "k3", 2, "x", 1, 0);
    n->rc_second = trl_txn_put(t, TRL_DB_IDX, "k", 1, "3", 1, TRL_PUT_NOOVERWRITE);
    return n->rc_second; /* the job fails with TRL_EEXIST: none of its writes stay */
}

START_TEST(nooverwrite_refuses_an_existing_key)
{
    struct noover n = {0};
    ck_assert_int_eq(trl_store_write(st, noover_fn, &n), 0);
    ck_assert_int_eq(n.rc_first, 0);
    ck_assert_int_eq(n.rc_second, TRL_EEXIST);
    ck_assert_int_eq(n.rc_other, 0);
    struct noover m = {0};
    ck_assert_int_eq(trl_store_write(st, noover_abort_fn, &m), TRL_EEXIST);
    ck_assert_int_eq(m.rc_other, 0);

    struct trl_txn *t = NULL;
    struct trl_slice v;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_IDX, "k", 1, &v), 0);
    ck_assert_int_eq(memcmp(v.p, "1", 1), 0); /* the first value stayed */
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_IDX, "k2", 2, &v), 0);
    ck_assert_int_eq(trl_txn_get(t, TRL_DB_IDX, "k3", 2, &v), TRL_ENOTFOUND);
    trl_txn_end(t);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Cursors
 */
static uint32_t cur_key(struct trl_cursor *c)
{
    struct trl_slice k;
    trl_cursor_get(c, &k, NULL);
    ck_assert_uint_eq(k.n, 4);
    return trl_get_u32be(k.p);
}

/* Even keys 0, 2, ..., 998 in TRL_DB_IDX. */
static int evens_fn(struct trl_txn *t, void *arg)
{
    (void)arg;
    unsigned char v[8];
    for (uint32_t i = 0; i < 1000; i += 2) {
        unsigned char k[4];
        key_u32(k, i);
        value_for(i, 8, v);
        int rc = trl_txn_put(t, TRL_DB_IDX, k, 4, v, 8, 0);
        if (rc) return rc;
    }
    return 0;
}

START_TEST(cursor_seek_finds_first_key_at_or_after)
{
    ck_assert_int_eq(trl_store_write(st, evens_fn, NULL), 0);
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    unsigned char k[4];
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_IDX, &c), 0);
    ck_assert_int_eq(trl_cursor_seek(c, NULL, 0), 0);
    ck_assert_uint_eq(cur_key(c), 0);
    key_u32(k, 500);
    ck_assert_int_eq(trl_cursor_seek(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 500);
    key_u32(k, 501);
    ck_assert_int_eq(trl_cursor_seek(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 502);
    /* A shorter key is a prefix: it sorts before every key that extends it. */
    ck_assert_int_eq(trl_cursor_seek(c, "\x00\x00\x01", 3), 0);
    ck_assert_uint_eq(cur_key(c), 256);
    key_u32(k, 999);
    ck_assert_int_eq(trl_cursor_seek(c, k, 4), TRL_ENOTFOUND);
    key_u32(k, 998);
    ck_assert_int_eq(trl_cursor_seek(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 998);
    struct trl_slice v;
    trl_cursor_get(c, NULL, &v);
    ck_assert(value_ok(998, &v, 8));
    trl_cursor_close(c);
    trl_cursor_close(NULL);
    trl_txn_end(t);
}
END_TEST

START_TEST(cursor_seek_before_finds_last_key_below)
{
    ck_assert_int_eq(trl_store_write(st, evens_fn, NULL), 0);
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    unsigned char k[4];
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_IDX, &c), 0);
    ck_assert_int_eq(trl_cursor_seek_before(c, NULL, 0), 0);
    ck_assert_uint_eq(cur_key(c), 998);
    key_u32(k, 501);
    ck_assert_int_eq(trl_cursor_seek_before(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 500);
    key_u32(k, 500); /* strictly below */
    ck_assert_int_eq(trl_cursor_seek_before(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 498);
    key_u32(k, 5000); /* past the end: the last key */
    ck_assert_int_eq(trl_cursor_seek_before(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 998);
    key_u32(k, 0); /* nothing below the first key */
    ck_assert_int_eq(trl_cursor_seek_before(c, k, 4), TRL_ENOTFOUND);
    key_u32(k, 1);
    ck_assert_int_eq(trl_cursor_seek_before(c, k, 4), 0);
    ck_assert_uint_eq(cur_key(c), 0);
    trl_cursor_close(c);
    trl_txn_end(t);
}
END_TEST

START_TEST(cursor_walks_a_range_both_ways)
{
    ck_assert_int_eq(trl_store_write(st, evens_fn, NULL), 0);
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    unsigned char lo[4], hi[4];
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_IDX, &c), 0);
    /* Forward over [100, 200). */
    key_u32(lo, 100);
    key_u32(hi, 200);
    uint32_t expect = 100;
    int n = 0, rc;
    for (rc = trl_cursor_seek(c, lo, 4); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (memcmp(k.p, hi, 4) >= 0) break;
        ck_assert_uint_eq(trl_get_u32be(k.p), expect);
        expect += 2;
        n++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(n, 50);
    /* Backward over the same range. */
    expect = 198;
    n = 0;
    for (rc = trl_cursor_seek_before(c, hi, 4); rc == 0; rc = trl_cursor_prev(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (memcmp(k.p, lo, 4) < 0) break;
        ck_assert_uint_eq(trl_get_u32be(k.p), expect);
        expect -= 2;
        n++;
    }
    ck_assert_int_eq(n, 50);
    /* Ends of the table. */
    ck_assert_int_eq(trl_cursor_seek_before(c, NULL, 0), 0);
    ck_assert_int_eq(trl_cursor_next(c), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_cursor_seek(c, NULL, 0), 0);
    ck_assert_int_eq(trl_cursor_prev(c), TRL_ENOTFOUND);
    /* Whole table forward: 500 keys in order. */
    n = 0;
    expect = 0;
    for (rc = trl_cursor_seek(c, NULL, 0); rc == 0; rc = trl_cursor_next(c)) {
        ck_assert_uint_eq(cur_key(c), expect);
        expect += 2;
        n++;
    }
    ck_assert_int_eq(rc, TRL_ENOTFOUND);
    ck_assert_int_eq(n, 500);
    trl_cursor_close(c);
    trl_txn_end(t);
}
END_TEST

START_TEST(cursor_on_an_empty_database)
{
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_TIMER, &c), 0);
    ck_assert_int_eq(trl_cursor_seek(c, NULL, 0), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_cursor_seek_before(c, NULL, 0), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_cursor_seek(c, "a", 1), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_cursor_seek_before(c, "a", 1), TRL_ENOTFOUND);
    trl_cursor_close(c);
    trl_txn_end(t);
}
END_TEST

START_TEST(steps_count_gets_and_cursor_moves)
{
    ck_assert_int_eq(trl_store_write(st, evens_fn, NULL), 0);
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    struct trl_slice v;
    unsigned char k[4];
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    key_u32(k, 2);
    trl_txn_get(t, TRL_DB_IDX, k, 4, &v);
    key_u32(k, 3);
    trl_txn_get(t, TRL_DB_IDX, k, 4, &v); /* misses count too */
    ck_assert_uint_eq(trl_txn_steps(t), 2);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_IDX, &c), 0);
    ck_assert_uint_eq(trl_txn_steps(t), 2);
    trl_cursor_seek(c, NULL, 0);
    for (int i = 0; i < 5; i++)
        trl_cursor_next(c);
    ck_assert_uint_eq(trl_txn_steps(t), 8);
    trl_cursor_seek_before(c, k, 4); /* a seek plus a step back */
    ck_assert_uint_eq(trl_txn_steps(t), 10);
    trl_cursor_close(c);
    trl_txn_end(t);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Group commit
 */
struct gc_job {
    struct trl_write_job job;
    struct waiter *w;
    uint32_t key;
    atomic_int runs;     /* fn calls */
    int done_rc;         /* rc given to done */
    int visible_at_done; /* 1 when a fresh read txn saw the key inside done */
    int fail;            /* fn returns this after its put */
};

static struct trl_store *gc_store;

static int gc_fn(struct trl_txn *t, void *arg)
{
    struct gc_job *j = arg;
    atomic_fetch_add(&j->runs, 1);
    unsigned char k[4], v[16];
    key_u32(k, j->key);
    value_for(j->key, sizeof(v), v);
    int rc = trl_txn_put(t, TRL_DB_REC, k, 4, v, sizeof(v), 0);
    return rc ? rc : j->fail;
}

static void gc_done(void *arg, int rc)
{
    struct gc_job *j = arg;
    j->done_rc = rc;
    /* Durable before done: a new read txn already sees the data. */
    struct trl_txn *t = NULL;
    if (trl_store_read(gc_store, &t) == 0) {
        unsigned char k[4];
        struct trl_slice v;
        key_u32(k, j->key);
        j->visible_at_done = trl_txn_get(t, TRL_DB_REC, k, 4, &v) == 0 && value_ok(j->key, &v, 16);
        trl_txn_end(t);
    }
    waiter_done(j->w);
}

static void gc_prepare(struct gc_job *j, struct waiter *w, uint32_t key)
{
    memset(j, 0, sizeof(*j));
    j->job.fn = gc_fn;
    j->job.done = gc_done;
    j->job.arg = j;
    j->w = w;
    j->key = key;
    j->visible_at_done = -1;
}

#define GC_THREADS    4
#define GC_PER_THREAD 500

struct gc_thread {
    struct gc_job *jobs; /* GC_PER_THREAD of them */
    int submit_errors;
};

static void *gc_submitter(void *arg)
{
    struct gc_thread *th = arg;
    for (int i = 0; i < GC_PER_THREAD; i++)
        if (trl_store_submit(gc_store, &th->jobs[i].job)) th->submit_errors++;
    return NULL;
}

START_TEST(group_commit_batches_jobs_from_many_threads)
{
    int total = GC_THREADS * GC_PER_THREAD;
    struct gc_job *jobs = calloc((size_t)total, sizeof(*jobs));
    struct waiter w;
    waiter_init(&w, total);
    gc_store = st;
    for (int i = 0; i < total; i++)
        gc_prepare(&jobs[i], &w, (uint32_t)i);
    uint64_t b0, j0;
    trl_store_writer_stats(st, &b0, &j0);

    /* Hold the writer so the jobs of all threads queue up, then let it go. */
    struct gate g;
    gate_close(&g);
    pthread_t th[GC_THREADS];
    struct gc_thread args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_thread){.jobs = jobs + i * GC_PER_THREAD};
        ck_assert_int_eq(pthread_create(&th[i], NULL, gc_submitter, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].submit_errors, 0);
    }
    gate_open(&g);
    ck_assert_int_eq(waiter_wait(&w), 0);

    uint64_t b1, j1;
    trl_store_writer_stats(st, &b1, &j1);
    ck_assert_uint_eq(j1 - j0, (uint64_t)total + 1); /* + the gate */
    ck_assert_uint_lt(b1 - b0, j1 - j0);
    ck_assert_uint_le(b1 - b0, 1 + (uint64_t)total / 64); /* the writer's batches are large */
    for (int i = 0; i < total; i++) {
        ck_assert_int_eq(jobs[i].runs, 1);
        ck_assert_int_eq(jobs[i].done_rc, 0);
        ck_assert_msg(jobs[i].visible_at_done == 1, "job %d answered before its data was visible",
                      i);
    }
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, (uint32_t)total, 16), total);
    waiter_destroy(&w);
    free(jobs);
}
END_TEST

START_TEST(group_commit_without_a_gate_still_batches)
{
    /* Free-running submitters: the writer commits as soon as work is waiting, so while one
     * commit is in flight the next jobs queue and go together. */
    int total = GC_THREADS * GC_PER_THREAD;
    struct gc_job *jobs = calloc((size_t)total, sizeof(*jobs));
    struct waiter w;
    waiter_init(&w, total);
    gc_store = st;
    for (int i = 0; i < total; i++)
        gc_prepare(&jobs[i], &w, (uint32_t)(100000 + i));
    uint64_t b0, j0;
    trl_store_writer_stats(st, &b0, &j0);
    pthread_t th[GC_THREADS];
    struct gc_thread args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_thread){.jobs = jobs + i * GC_PER_THREAD};
        ck_assert_int_eq(pthread_create(&th[i], NULL, gc_submitter, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(waiter_wait(&w), 0);
    uint64_t b1, j1;
    trl_store_writer_stats(st, &b1, &j1);
    ck_assert_uint_eq(j1 - j0, (uint64_t)total);
    ck_assert_uint_lt(b1 - b0, j1 - j0);
    for (int i = 0; i < total; i++) {
        ck_assert_int_eq(jobs[i].done_rc, 0);
        ck_assert_int_eq(jobs[i].visible_at_done, 1);
    }
    waiter_destroy(&w);
    free(jobs);
}
END_TEST

START_TEST(failing_job_aborts_alone_in_its_batch)
{
    struct gc_job jobs[5];
    struct waiter w;
    waiter_init(&w, 5);
    gc_store = st;
    for (int i = 0; i < 5; i++)
        gc_prepare(&jobs[i], &w, (uint32_t)(10 + i));
    jobs[1].fail = TRL_ECONFLICT;
    jobs[3].fail = TRL_EVALIDATION;
    uint64_t b0, j0;
    trl_store_writer_stats(st, &b0, &j0);
    struct gate g;
    gate_close(&g);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(trl_store_submit(st, &jobs[i].job), 0);
    gate_open(&g);
    ck_assert_int_eq(waiter_wait(&w), 0);
    uint64_t b1, j1;
    trl_store_writer_stats(st, &b1, &j1);
    ck_assert_uint_eq(b1 - b0, 2); /* the gate, then one batch of the five */
    ck_assert_uint_eq(j1 - j0, 6);
    ck_assert_int_eq(jobs[0].done_rc, 0);
    ck_assert_int_eq(jobs[1].done_rc, TRL_ECONFLICT);
    ck_assert_int_eq(jobs[2].done_rc, 0);
    ck_assert_int_eq(jobs[3].done_rc, TRL_EVALIDATION);
    ck_assert_int_eq(jobs[4].done_rc, 0);
    ck_assert_int_eq(jobs[0].visible_at_done, 1);
    ck_assert_int_eq(jobs[1].visible_at_done, 0);
    ck_assert_int_eq(jobs[3].visible_at_done, 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 10, 1, 16), 1);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 11, 1, 16), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 12, 1, 16), 1);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 13, 1, 16), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 14, 1, 16), 1);
    waiter_destroy(&w);
}
END_TEST

/* Barrier test: every job notes, in a fresh read txn, which earlier keys were committed when it
 * ran. */
struct bar_job {
    struct gc_job base;
    uint32_t seen_mask; /* bit i: key 20+i committed when fn ran */
    int order;          /* position in which fn ran */
};

static atomic_int bar_order;

static int bar_fn(struct trl_txn *t, void *arg)
{
    struct bar_job *b = arg;
    b->order = atomic_fetch_add(&bar_order, 1);
    struct trl_txn *r = NULL;
    b->seen_mask = 0;
    if (trl_store_read(gc_store, &r) == 0) {
        for (uint32_t i = 0; i < 8; i++) {
            unsigned char k[4];
            struct trl_slice v;
            key_u32(k, 20 + i);
            if (trl_txn_get(r, TRL_DB_REC, k, 4, &v) == 0) b->seen_mask |= 1u << i;
        }
        trl_txn_end(r);
    }
    return gc_fn(t, &b->base);
}

START_TEST(barrier_jobs_run_in_a_batch_of_their_own)
{
    struct bar_job jobs[5];
    struct waiter w;
    waiter_init(&w, 5);
    gc_store = st;
    atomic_store(&bar_order, 0);
    for (int i = 0; i < 5; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        gc_prepare(&jobs[i].base, &w, (uint32_t)(20 + i));
        jobs[i].base.job.fn = bar_fn;
        jobs[i].base.job.arg = &jobs[i];
        jobs[i].base.job.done = gc_done;
    }
    /* gc_done takes a gc_job: bar_job starts with one. */
    jobs[2].base.job.barrier = true;
    uint64_t b0, j0;
    trl_store_writer_stats(st, &b0, &j0);
    struct gate g;
    gate_close(&g);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(trl_store_submit(st, &jobs[i].base.job), 0);
    gate_open(&g);
    ck_assert_int_eq(waiter_wait(&w), 0);
    uint64_t b1, j1;
    trl_store_writer_stats(st, &b1, &j1);
    /* gate | 0 1 | barrier 2 | 3 4 */
    ck_assert_uint_eq(b1 - b0, 4);
    ck_assert_uint_eq(j1 - j0, 6);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(jobs[i].order, i);
        ck_assert_int_eq(jobs[i].base.done_rc, 0);
    }
    /* Jobs 0 and 1 ran in one batch: neither saw the other committed. */
    ck_assert_uint_eq(jobs[0].seen_mask, 0);
    ck_assert_uint_eq(jobs[1].seen_mask, 0);
    /* The barrier ran after 0 and 1 were committed, and alone. */
    ck_assert_uint_eq(jobs[2].seen_mask, 0x3);
    /* Job 3 ran after the barrier was committed. */
    ck_assert_uint_eq(jobs[3].seen_mask, 0x7);
    ck_assert_uint_eq(jobs[4].seen_mask, 0x7);
    waiter_destroy(&w);
}
END_TEST

START_TEST(close_finishes_queued_jobs)
{
    struct gc_job jobs[200];
    struct waiter w;
    waiter_init(&w, 200);
    gc_store = st;
    for (int i = 0; i < 200; i++)
        gc_prepare(&jobs[i], &w, (uint32_t)(1000 + i));
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(trl_store_submit(st, &jobs[i].job), 0);
    trl_store_close(st); /* waits for the queue */
    st = NULL;
    ck_assert_int_eq(waiter_wait(&w), 0);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(jobs[i].done_rc, 0);
    open_store(0, 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 1000, 200, 16), 200);
    waiter_destroy(&w);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Map growth and the cap
 */
START_TEST(map_grows_from_a_tiny_start)
{
    trl_store_close(st);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, 1 * MiB, 64 * MiB, false);
    size_t size0, max0, used0;
    trl_store_stats(st, &size0, &max0, &used0);
    ck_assert_uint_eq(size0, 1 * MiB);
    ck_assert_uint_eq(max0, 64 * MiB);
    /* ~10 MB: 40 jobs of 64 values of 4 KiB. */
    struct put_range p[40];
    for (int i = 0; i < 40; i++) {
        p[i] = (struct put_range){
            .db = TRL_DB_REC, .first = (uint32_t)i * 64, .count = 64, .vsize = 4096};
        ck_assert_int_eq(trl_store_write(st, put_range_fn, &p[i]), 0);
    }
    size_t size1, max1, used1;
    trl_store_stats(st, &size1, &max1, &used1);
    ck_assert_uint_ge(size1, 16 * MiB);
    ck_assert_uint_le(size1, 64 * MiB);
    ck_assert_uint_gt(used1, 10 * MiB);
    ck_assert_uint_le(used1, size1);
    /* Some batches ran again after a growth; their data is there once. */
    int reruns = 0;
    for (int i = 0; i < 40; i++)
        reruns += p[i].runs - 1;
    ck_assert_int_gt(reruns, 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 40 * 64, 4096), 40 * 64);
    /* Reopened with the tiny initial size, the map covers at least the data, and grows on. */
    trl_store_close(st);
    st = open_at(dir, 1 * MiB, 64 * MiB, false);
    size_t size2, used2;
    trl_store_stats(st, &size2, NULL, &used2);
    ck_assert_uint_ge(size2, used1);
    ck_assert_uint_eq(used2, used1);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 40 * 64, 4096), 40 * 64);
    for (uint32_t i = 40; i < 60; i++)
        ck_assert_int_eq(write_range(TRL_DB_REC, i * 64, 64, 4096), 0);
    size_t size3;
    trl_store_stats(st, &size3, NULL, NULL);
    ck_assert_uint_gt(size3, size2);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 60 * 64, 4096), 60 * 64);
}
END_TEST

/* A job that runs put_range_fn nested and carries on whatever it returned (as a hook's pcall
 * around trellis.create does), then writes a marker of its own. */
struct swallow {
    struct put_range inner;
    atomic_int runs;
    int nested_rc, after_rc; /* of the last run */
};

static int swallow_inner(struct trl_txn *t, void *arg)
{
    return put_range_fn(t, arg);
}

static int swallow_fn(struct trl_txn *t, void *arg)
{
    struct swallow *w = arg;
    atomic_fetch_add(&w->runs, 1);
    w->nested_rc = trl_txn_nested(t, swallow_inner, &w->inner);
    unsigned char k[4], v[8];
    key_u32(k, 999999);
    value_for(999999, sizeof(v), v);
    w->after_rc = trl_txn_put(t, TRL_DB_REC, k, 4, v, sizeof(v), 0);
    return 0; /* "the error was handled" */
}

START_TEST(a_caught_store_failure_still_fails_the_job)
{
    /* The nested writes (2 MB) do not fit in a 1 MiB map. The job catches TRL_EMAPFULL and
     * returns 0: the writer must still grow the map and rerun it, never commit the marker
     * without the nested writes. The failed txn refuses every later call with the same error,
     * without asking LMDB (which would answer MDB_BAD_TXN). */
    trl_store_close(st);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, 1 * MiB, 64 * MiB, false);
    struct swallow w = {.inner = {.db = TRL_DB_REC, .first = 0, .count = 512, .vsize = 4096}};
    ck_assert_int_eq(trl_store_write(st, swallow_fn, &w), 0);
    ck_assert_int_ge(atomic_load(&w.runs), 2);
    ck_assert_int_eq(w.nested_rc, 0);
    ck_assert_int_eq(w.after_rc, 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 512, 4096), 512);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 999999, 1, 8), 1);
    /* A failure that growth cannot mend (the cap) is the job's answer, and nothing is stored. */
    trl_store_close(st);
    path_in(dir, sizeof(dir), "db2");
    st = open_at(dir, 1 * MiB, 1 * MiB, false);
    struct swallow w2 = {.inner = {.db = TRL_DB_REC, .first = 0, .count = 512, .vsize = 4096}};
    ck_assert_int_eq(trl_store_write(st, swallow_fn, &w2), TRL_EFULL);
    ck_assert_int_eq(w2.nested_rc, TRL_EMAPFULL);
    ck_assert_int_eq(w2.after_rc, TRL_EMAPFULL);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 512, 4096), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 999999, 1, 8), 0);
}
END_TEST

START_TEST(map_cap_refuses_the_job_that_does_not_fit)
{
    trl_store_close(st);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, 1 * MiB, 2 * MiB, false);
    /* 64 KiB per job until the cap. */
    int failed_at = -1;
    struct put_range p;
    for (int i = 0; i < 100; i++) {
        p = (struct put_range){
            .db = TRL_DB_REC, .first = (uint32_t)i * 16, .count = 16, .vsize = 4096};
        int rc = trl_store_write(st, put_range_fn, &p);
        if (rc) {
            ck_assert_int_eq(rc, TRL_EFULL);
            failed_at = i;
            break;
        }
    }
    ck_assert_int_gt(failed_at, 5); /* 2 MiB holds several */
    size_t size, max;
    trl_store_stats(st, &size, &max, NULL);
    ck_assert_uint_eq(size, 2 * MiB);
    ck_assert_uint_eq(max, 2 * MiB);
    /* Earlier jobs present, nothing of the failing one. */
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, (uint32_t)failed_at * 16, 4096),
                     failed_at * 16);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, (uint32_t)failed_at * 16, 16, 4096), 0);
    /* The same job again still does not fit. */
    p.runs = 0;
    ck_assert_int_eq(trl_store_write(st, put_range_fn, &p), TRL_EFULL);
    /* Smaller writes either fit or say full; either way the store stays consistent. */
    int small_ok = 0;
    for (uint32_t i = 0; i < 64; i++) {
        int rc = write_range(TRL_DB_META, i, 1, 16);
        ck_assert(rc == 0 || rc == TRL_EFULL);
        if (rc == 0) {
            small_ok++;
            ck_assert_int_eq(count_present(st, TRL_DB_META, i, 1, 16), 1);
        } else {
            ck_assert_int_eq(count_present(st, TRL_DB_META, i, 1, 16), 0);
        }
    }
    ck_assert_int_gt(small_ok, 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, (uint32_t)failed_at * 16, 4096),
                     failed_at * 16);
}
END_TEST

/* A batch at the cap: every job of it fails with TRL_EFULL and none of it is stored. */
struct cap_job {
    struct trl_write_job job;
    struct put_range p;
    struct waiter *w;
    int done_rc;
};

static int cap_fn(struct trl_txn *t, void *arg)
{
    return put_range_fn(t, &((struct cap_job *)arg)->p);
}

static void cap_done(void *arg, int rc)
{
    struct cap_job *j = arg;
    j->done_rc = rc;
    waiter_done(j->w);
}

START_TEST(map_cap_fails_a_whole_batch)
{
    trl_store_close(st);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, 1 * MiB, 2 * MiB, false);
    struct cap_job jobs[3];
    struct waiter w;
    waiter_init(&w, 3);
    for (int i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].job = (struct trl_write_job){.fn = cap_fn, .done = cap_done, .arg = &jobs[i]};
        jobs[i].w = &w;
        /* small, too big for the whole map, small */
        jobs[i].p = (struct put_range){.db = TRL_DB_REC,
                                       .first = (uint32_t)i * 1000,
                                       .count = i == 1 ? 800 : 1,
                                       .vsize = 4096};
    }
    struct gate g;
    gate_close(&g);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(trl_store_submit(st, &jobs[i].job), 0);
    gate_open(&g);
    ck_assert_int_eq(waiter_wait(&w), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(jobs[i].done_rc, TRL_EFULL);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 1, 4096), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 1000, 800, 4096), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 2000, 1, 4096), 0);
    /* The small jobs alone fit. */
    ck_assert_int_eq(write_range(TRL_DB_REC, 0, 1, 4096), 0);
    ck_assert_int_eq(write_range(TRL_DB_REC, 2000, 1, 4096), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 1, 4096), 1);
    waiter_destroy(&w);
}
END_TEST

/* A reader thread looping read txns (gets and cursor walks) while the writer grows the map. */
struct reader_arg {
    atomic_bool stop;
    long iterations;
    long bad; /* wrong values seen */
    int err;  /* first unexpected rc */
};

static void *reader_loop(void *arg)
{
    struct reader_arg *r = arg;
    while (!atomic_load(&r->stop)) {
        struct trl_txn *t = NULL;
        int rc = trl_store_read(st, &t);
        if (rc) {
            r->err = rc;
            break;
        }
        struct trl_cursor *c = NULL;
        if ((rc = trl_cursor_open(t, TRL_DB_REC, &c)) == 0) {
            int n = 0;
            for (rc = trl_cursor_seek(c, NULL, 0); rc == 0 && n < 200;
                 rc = trl_cursor_next(c), n++) {
                struct trl_slice k, v;
                trl_cursor_get(c, &k, &v);
                if (k.n != 4 || !value_ok(trl_get_u32be(k.p), &v, 4096)) r->bad++;
            }
            if (rc == TRL_ENOTFOUND) rc = 0;
            trl_cursor_close(c);
        }
        unsigned char k[4];
        struct trl_slice v;
        uint32_t probe = (uint32_t)(r->iterations * 7919 % 3000);
        key_u32(k, probe);
        int g = trl_txn_get(t, TRL_DB_REC, k, 4, &v);
        if (g == 0 && !value_ok(probe, &v, 4096))
            r->bad++;
        else if (g && g != TRL_ENOTFOUND && !r->err)
            r->err = g;
        if (rc && !r->err) r->err = rc;
        trl_txn_end(t);
        r->iterations++;
    }
    return NULL;
}

START_TEST(readers_run_while_the_map_grows)
{
    trl_store_close(st);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    st = open_at(dir, 1 * MiB, 64 * MiB, false);
    struct reader_arg ra[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&ra[i], 0, sizeof(ra[i]));
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_loop, &ra[i]), 0);
    }
    for (uint32_t i = 0; i < 48; i++)
        ck_assert_int_eq(write_range(TRL_DB_REC, i * 64, 64, 4096), 0);
    for (int i = 0; i < 2; i++) {
        atomic_store(&ra[i].stop, true);
        pthread_join(th[i], NULL);
        ck_assert_int_eq(ra[i].err, 0);
        ck_assert_int_eq(ra[i].bad, 0);
        ck_assert_int_gt(ra[i].iterations, 0);
    }
    size_t size;
    trl_store_stats(st, &size, NULL, NULL);
    ck_assert_uint_ge(size, 8 * MiB);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 48 * 64, 4096), 48 * 64);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Backup, read-only opening, stale readers, open errors
 */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

START_TEST(backup_copy_opens_with_the_same_data)
{
    ck_assert_int_eq(write_range(TRL_DB_REC, 0, 500, 300), 0);
    ck_assert_int_eq(write_range(TRL_DB_META, 7, 3, 10), 0);
    char bk[200], dir2[200], data2[260];
    path_in(bk, sizeof(bk), "backup.mdb");
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_store_backup(st, bk, &d), 0);
    /* Never overwrites an existing file. */
    ck_assert_int_eq(trl_store_backup(st, bk, &d), TRL_EIO);
    ck_assert_int_eq(d.code, TRL_EIO);
    trl_diag_reset(&d);
    /* Writes after the backup are not in it. */
    ck_assert_int_eq(write_range(TRL_DB_REC, 500, 10, 300), 0);

    path_in(dir2, sizeof(dir2), "restored");
    ck_assert_int_eq(mkdir(dir2, 0700), 0);
    snprintf(data2, sizeof(data2), "%s/data.mdb", dir2);
    copy_file(bk, data2);
    struct trl_store *s2 = open_at(dir2, 0, 0, false);
    ck_assert_int_eq(count_present(s2, TRL_DB_REC, 0, 500, 300), 500);
    ck_assert_int_eq(count_present(s2, TRL_DB_REC, 500, 10, 300), 0);
    ck_assert_int_eq(count_present(s2, TRL_DB_META, 7, 3, 10), 3);
    trl_store_close(s2);
    /* And read-only, as `trellis check` opens it: reads work, writes are refused. */
    s2 = open_at(dir2, 0, 0, true);
    ck_assert_int_eq(count_present(s2, TRL_DB_REC, 0, 500, 300), 500);
    struct put_range p = {.db = TRL_DB_REC, .first = 1, .count = 1, .vsize = 1};
    ck_assert_int_eq(trl_store_write(s2, put_range_fn, &p), TRL_EUNAVAIL);
    ck_assert_int_eq(p.runs, 0);
    trl_store_close(s2);
}
END_TEST

START_TEST(reader_check_clears_slots_of_dead_processes)
{
    ck_assert_int_eq(write_range(TRL_DB_REC, 0, 10, 8), 0);
    ck_assert_int_eq(trl_store_reader_check(st), 0);
    char dir[160];
    path_in(dir, sizeof(dir), "db");
    /* A child process opens the environment, starts a read txn and dies holding it (killed, as
     * a crash would: no exit handlers, nor valgrind's leak check of the memory it held). */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct trl_store_opts o = {.dir = dir, .read_only = true};
        struct trl_store *s = NULL;
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_txn *t = NULL;
        if (trl_store_open(&o, &s, &d) || trl_store_read(s, &t)) _exit(1);
        raise(SIGKILL); /* no trl_txn_end: the slot stays taken */
        _exit(2);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x", status);
    ck_assert_int_ge(trl_store_reader_check(st), 1);
    ck_assert_int_eq(trl_store_reader_check(st), 0);
    /* Writing still works and reuses the space. */
    ck_assert_int_eq(write_range(TRL_DB_REC, 10, 10, 8), 0);
    ck_assert_int_eq(count_present(st, TRL_DB_REC, 0, 20, 8), 20);
}
END_TEST

START_TEST(open_reports_unusable_directories)
{
    char file[200], under[260];
    path_in(file, sizeof(file), "plainfile");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(under, sizeof(under), "%s/db", file);
    struct trl_store_opts o = {.dir = under};
    struct trl_store *s = (struct trl_store *)&o;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_store_open(&o, &s, &d), TRL_EIO);
    ck_assert_int_eq(d.code, TRL_EIO);
    ck_assert_ptr_nonnull(strstr(d.message, "plainfile"));
    trl_diag_reset(&d);
    /* Read-only on a directory that holds no store. */
    char empty[200];
    path_in(empty, sizeof(empty), "empty");
    ck_assert_int_eq(mkdir(empty, 0700), 0);
    o = (struct trl_store_opts){.dir = empty, .read_only = true};
    ck_assert_int_ne(trl_store_open(&o, &s, &d), 0);
    ck_assert_int_ne(d.code, 0);
    trl_diag_reset(&d);
    trl_store_close(NULL);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = fx_tcase("get_put_del", setup_open, teardown);
    tcase_add_test(tc, put_get_delete_in_a_write_job);
    tcase_add_test(tc, nooverwrite_refuses_an_existing_key);
    suite_add_tcase(s, tc);
    tc = fx_tcase("cursors", setup_open, teardown);
    tcase_add_test(tc, cursor_seek_finds_first_key_at_or_after);
    tcase_add_test(tc, cursor_seek_before_finds_last_key_below);
    tcase_add_test(tc, cursor_walks_a_range_both_ways);
    tcase_add_test(tc, cursor_on_an_empty_database);
    tcase_add_test(tc, steps_count_gets_and_cursor_moves);
    suite_add_tcase(s, tc);
    tc = fx_tcase("group_commit", setup_open, teardown);
    tcase_add_test(tc, group_commit_batches_jobs_from_many_threads);
    tcase_add_test(tc, group_commit_without_a_gate_still_batches);
    tcase_add_test(tc, failing_job_aborts_alone_in_its_batch);
    tcase_add_test(tc, barrier_jobs_run_in_a_batch_of_their_own);
    tcase_add_test(tc, close_finishes_queued_jobs);
    suite_add_tcase(s, tc);
    tc = fx_tcase("map_size", setup_open, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, map_grows_from_a_tiny_start);
    tcase_add_test(tc, a_caught_store_failure_still_fails_the_job);
    tcase_add_test(tc, map_cap_refuses_the_job_that_does_not_fit);
    tcase_add_test(tc, map_cap_fails_a_whole_batch);
    tcase_add_test(tc, readers_run_while_the_map_grows);
    suite_add_tcase(s, tc);
    tc = fx_tcase("maintenance", setup_open, teardown);
    tcase_add_test(tc, backup_copy_opens_with_the_same_data);
    tcase_add_test(tc, reader_check_clears_slots_of_dead_processes);
    suite_add_tcase(s, tc);
    tc = fx_tcase("open", setup, teardown);
    tcase_add_test(tc, open_reports_unusable_directories);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
