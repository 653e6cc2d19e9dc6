/*
 * crash_kill9 — concurrent creates, `kill -9` at a random moment, restart on the same data dir.
 *
 * Each of the 20 runs (seeded; TRELLIS_CRASH_SEED=N replays, TRELLIS_CRASH_RUNS=N changes the
 * count) starts a fresh store and goes through two crash rounds on it. A round runs 8 keep-alive
 * clients creating records with unique titles, kills the server with SIGKILL after a random
 * 50-400 ms, and then asserts:
 *   - `trellis check` passes on the crashed store (records, indexes, counters, history chains),
 *   - after a restart every create answered 201 (this round or an earlier one) is there, by id,
 *     with its title, and so is every record seen after the previous restart,
 *   - every stored record is an acknowledged or an in-flight create, none is there twice, so the
 *     count lies in [earlier + acknowledged, earlier + acknowledged + in flight], in flight <= 8,
 *   - the restarted server takes a new create whose id is above every earlier one.
 * Odd runs start the map at 1 MiB and send 3 KB descriptions, so the kill can land while the
 * writer grows the map.
 */
#include "load.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { RUNS = 20, ROUNDS = 2, THREADS = 8, PER_THREAD_MAX = 4000 };

static unsigned base_seed;
static struct srv S;

static int by_title(const void *a, const void *b)
{
    return strcmp(((const struct ack *)a)->title, ((const struct ack *)b)->title);
}

/* A growable set of (id, title). */
struct set {
    struct ack *a;
    size_t n, cap;
};

static void set_add(struct set *s, long long id, const char *title)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->a = realloc(s->a, s->cap * sizeof(*s->a));
        ck_assert_ptr_nonnull(s->a);
    }
    s->a[s->n].id = id;
    snprintf(s->a[s->n].title, LOAD_TITLE_MAX, "%s", title);
    s->n++;
}

static const struct ack *set_find(const struct set *s, const char *title)
{
    struct ack key;
    snprintf(key.title, sizeof(key.title), "%s", title);
    return bsearch(&key, s->a, s->n, sizeof(key), by_title);
}

static void get_by_id(struct client *cl, const struct ack *a, unsigned seed, int round)
{
    char path[128], want[LOAD_TITLE_MAX + 16];
    snprintf(path, sizeof(path), "/api/v1/records/marketing_request/%lld", a->id);
    struct resp r;
    ck_assert_int_eq(client_req(cl, "GET", path, NULL, &r), 0);
    ck_assert_msg(r.status == 200, "seed %u round %d: record %lld (%s) lost: %ld %s", seed, round,
                  a->id, a->title, r.status, r.body);
    snprintf(want, sizeof(want), "{\"title\":\"%s\"}", a->title);
    ck_assert_msg(json_contains(r.body, want), "seed %u round %d: record %lld is not %s: %s", seed,
                  round, a->id, a->title, r.body);
    resp_free(&r);
}

START_TEST(kill9_during_creates)
{
    unsigned seed = base_seed + (unsigned)_i;
    srand(seed);
    bool grow = _i % 2 == 1;

    ck_assert_int_eq(srv_init(&S, NULL), 0);
    guard_srv(&S);
    if (grow) snprintf(S.extra, sizeof(S.extra), "--map-initial 1");
    ck_assert_int_eq(srv_start(&S), 0);

    struct set must = {0}; /* records that have to be there: acknowledged or seen */
    for (int round = 1; round <= ROUNDS; round++) {
        int delay = 50 + rand() % 351;
        struct load L;
        memset(&L, 0, sizeof(L));
        L.s = &S;
        L.nthreads = THREADS;
        L.max_per_thread = PER_THREAD_MAX;
        L.desc_len = grow ? 3000 : 0;
        snprintf(L.tag, sizeof(L.tag), "crash-%u-r%d", seed, round);
        ck_assert_int_eq(load_start(&L), 0);
        sleep_ms(delay);
        pid_t victim = S.pid;
        srv_kill9(&S);
        load_stop(&L);

        size_t acked = L.nacks;
        int inflight = load_inflight(&L);
        printf("crash run %d round %d: seed %u%s, kill -9 of pid %d after %d ms: %zu "
               "acknowledged, %d in flight\n",
               _i, round, seed, grow ? " (map from 1 MiB)" : "", (int)victim, delay, acked,
               inflight);
        fflush(stdout);
        ck_assert_msg(L.nother == 0, "seed %u: status %ld before the kill: %s", seed,
                      L.other_status, L.other_body);
        ck_assert_int_le(inflight, THREADS);

        /* The crashed store, before anything reopens it for writing, is consistent. */
        char *out = NULL;
        int crc = store_check(S.dir, &out);
        ck_assert_msg(crc == 0, "trellis check after kill -9 (seed %u round %d): %s", seed, round,
                      out ? out : "");
        free(out);

        ck_assert_int_eq(srv_start(&S), 0);
        struct client cl;
        ck_assert_int_eq(client_init(&cl, &S), 0);

        /* Every earlier record and every acknowledged create is there, with its title. */
        for (size_t i = 0; i < must.n; i++)
            get_by_id(&cl, &must.a[i], seed, round);
        for (size_t i = 0; i < acked; i++)
            get_by_id(&cl, &L.acks[i], seed, round);

        /* Every stored record is expected or in flight, with the expected id, none twice. */
        size_t earlier = must.n;
        for (size_t i = 0; i < acked; i++)
            set_add(&must, L.acks[i].id, L.acks[i].title);
        qsort(must.a, must.n, sizeof(*must.a), by_title);
        struct set fly = {0};
        for (int t = 0; t < THREADS; t++)
            if (L.inflight[t][0]) set_add(&fly, -1, L.inflight[t]);
        if (fly.n) qsort(fly.a, fly.n, sizeof(*fly.a), by_title);
        struct ack *all = NULL;
        long n = list_all(&cl, &all);
        ck_assert_int_ge(n, 0);
        ck_assert_int_eq(count_records(&S, "marketing_request"), n);
        ck_assert_int_ge(n, (long)must.n);
        ck_assert_int_le(n, (long)must.n + inflight);
        long long max_id = 0;
        for (long i = 0; i < n; i++) {
            const struct ack *m = set_find(&must, all[i].title);
            ck_assert_msg(m || (fly.n && set_find(&fly, all[i].title)),
                          "seed %u round %d: record %lld (%s) was never sent", seed, round,
                          all[i].id, all[i].title);
            if (m)
                ck_assert_msg(m->id == all[i].id, "seed %u: %s has id %lld, was answered %lld",
                              seed, all[i].title, all[i].id, m->id);
            if (all[i].id > max_id) max_id = all[i].id;
        }
        qsort(all, (size_t)n, sizeof(*all), by_title);
        for (long i = 1; i < n; i++)
            ck_assert_msg(strcmp(all[i - 1].title, all[i].title) != 0,
                          "seed %u round %d: %s stored twice", seed, round, all[i].title);
        printf("crash run %d round %d: %ld stored = %zu earlier + %zu acknowledged + %ld of %d in "
               "flight; map %lld bytes\n",
               _i, round, n, earlier, acked, n - (long)must.n, inflight,
               metric(&cl, "trellis_store_map_bytes{kind=\"size\"}"));

        /* From now on everything listed has to stay: in-flight ones that made it are durable. */
        must.n = 0;
        for (long i = 0; i < n; i++)
            set_add(&must, all[i].id, all[i].title);

        /* The restarted server writes again; the id sequence does not go back. */
        char body[160], title[64];
        snprintf(title, sizeof(title), "after-crash-%u-r%d", seed, round);
        snprintf(body, sizeof(body), "{\"title\":\"%s\",\"partner\":\"P\",\"budget\":\"1\"}",
                 title);
        struct resp r;
        ck_assert_int_eq(client_req(&cl, "POST", "/api/v1/records/marketing_request", body, &r), 0);
        ck_assert_msg(r.status == 201, "create after restart: %ld %s", r.status, r.body);
        long long nid = json_int(r.body, "id", -1);
        ck_assert_int_gt(nid, max_id);
        resp_free(&r);
        set_add(&must, nid, title);
        ck_assert_int_eq(count_records(&S, "marketing_request"), n + 1);

        client_free(&cl);
        free(all);
        free(fly.a);
        load_free(&L);
    }
    free(must.a);
    srv_stop(&S);
    char *out = NULL;
    int crc = store_check(S.dir, &out);
    ck_assert_msg(crc == 0, "trellis check after the last restart (seed %u): %s", seed,
                  out ? out : "");
    free(out);
    srv_cleanup(&S);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *env = getenv("TRELLIS_CRASH_SEED");
    base_seed =
        env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    printf("crash_kill9: base seed %u (TRELLIS_CRASH_SEED=%u replays; run i uses seed+i)\n",
           base_seed, base_seed);
    fflush(stdout);
    int runs = RUNS;
    const char *r = getenv("TRELLIS_CRASH_RUNS");
    if (r && atoi(r) > 0 && atoi(r) <= 1000) runs = atoi(r);

    Suite *s = suite_create("crash_kill9");
    TCase *tc = tcase_create("kill9");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, kill9_during_creates, 0, runs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
