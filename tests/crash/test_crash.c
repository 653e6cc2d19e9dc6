/*
 * crash_kill9 — concurrent creates, `kill -9` at a random moment, restart on the same data dir.
 *
 * Each run (20 of them, seeded; TRELLIS_CRASH_SEED=N replays a failure) starts a fresh store,
 * runs 8 keep-alive clients creating records with unique titles, kills the server with SIGKILL
 * after a random 50-400 ms, and then asserts:
 *   - `trellis check` passes on the crashed store (records, indexes, counters, history chains),
 *   - after a restart every create answered 201 is there, by id, with its title,
 *   - every stored record is an acknowledged or an in-flight create (no phantom, no duplicate),
 *     so the count lies in [acknowledged, acknowledged + in flight] with in flight <= threads,
 *   - the restarted server takes new creates whose ids and names never repeat an earlier one.
 */
#include "load.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { RUNS = 20, THREADS = 8, PER_THREAD_MAX = 4000 };

static unsigned base_seed;
static struct srv S;

static int by_title(const void *a, const void *b)
{
    return strcmp(((const struct ack *)a)->title, ((const struct ack *)b)->title);
}

static bool has_title(const struct ack *sorted, size_t n, const char *title)
{
    struct ack key;
    snprintf(key.title, sizeof(key.title), "%s", title);
    return bsearch(&key, sorted, n, sizeof(key), by_title) != NULL;
}

START_TEST(kill9_during_creates)
{
    unsigned seed = base_seed + (unsigned)_i;
    srand(seed);
    int delay = 50 + rand() % 351;
    printf("crash run %d: seed %u, kill -9 after %d ms\n", _i, seed, delay);
    fflush(stdout);

    ck_assert_int_eq(srv_init(&S, NULL), 0);
    guard_srv(&S);
    ck_assert_int_eq(srv_start(&S), 0);

    struct load L;
    memset(&L, 0, sizeof(L));
    L.s = &S;
    L.nthreads = THREADS;
    L.max_per_thread = PER_THREAD_MAX;
    snprintf(L.tag, sizeof(L.tag), "crash-%u", seed);
    ck_assert_int_eq(load_start(&L), 0);
    sleep_ms(delay);
    pid_t victim = S.pid;
    srv_kill9(&S);
    load_stop(&L);

    size_t acked = L.nacks;
    int inflight = load_inflight(&L);
    printf("crash run %d: pid %d killed; %zu acknowledged, %d in flight, %ld other\n", _i,
           (int)victim, acked, inflight, L.nother);
    fflush(stdout);
    ck_assert_msg(L.nother == 0, "unexpected status %ld before the kill: %s", L.other_status,
                  L.other_body);
    ck_assert_int_le(inflight, THREADS);

    /* The crashed store, before anything reopens it for writing, is consistent. */
    char *out = NULL;
    int crc = store_check(S.dir, &out);
    ck_assert_msg(crc == 0, "trellis check after kill -9 (seed %u): %s", seed, out ? out : "");
    free(out);

    ck_assert_int_eq(srv_start(&S), 0);
    struct client cl;
    ck_assert_int_eq(client_init(&cl, &S), 0);

    /* Every acknowledged create is there, with its title. */
    for (size_t i = 0; i < acked; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/records/marketing_request/%lld", L.acks[i].id);
        struct resp r;
        ck_assert_int_eq(client_req(&cl, "GET", path, NULL, &r), 0);
        ck_assert_msg(r.status == 200, "seed %u: acknowledged record %lld (%s) lost: %ld %s",
                      seed, L.acks[i].id, L.acks[i].title, r.status, r.body);
        char want[LOAD_TITLE_MAX + 16];
        snprintf(want, sizeof(want), "{\"title\":\"%s\"}", L.acks[i].title);
        ck_assert_msg(json_contains(r.body, want), "seed %u: record %lld is not %s: %s", seed,
                      L.acks[i].id, L.acks[i].title, r.body);
        resp_free(&r);
    }

    /* Every stored record is an acknowledged or an in-flight create, and none is there twice. */
    struct ack *all = NULL;
    long n = list_all(&cl, &all);
    ck_assert_int_ge(n, 0);
    long exact = count_records(&S, "marketing_request");
    ck_assert_int_eq(exact, n);
    ck_assert_int_ge(n, (long)acked);
    ck_assert_int_le(n, (long)acked + inflight);
    struct ack *known = malloc((acked + THREADS + 1) * sizeof(*known));
    ck_assert_ptr_nonnull(known);
    memcpy(known, L.acks, acked * sizeof(*known));
    size_t nk = acked;
    for (int t = 0; t < THREADS; t++)
        if (L.inflight[t][0]) snprintf(known[nk++].title, LOAD_TITLE_MAX, "%s", L.inflight[t]);
    qsort(known, nk, sizeof(*known), by_title);
    long long max_id = 0;
    for (long i = 0; i < n; i++) {
        ck_assert_msg(has_title(known, nk, all[i].title), "seed %u: record %lld (%s) was never sent",
                      seed, all[i].id, all[i].title);
        if (all[i].id > max_id) max_id = all[i].id;
    }
    qsort(all, (size_t)n, sizeof(*all), by_title);
    for (long i = 1; i < n; i++)
        ck_assert_msg(strcmp(all[i - 1].title, all[i].title) != 0, "seed %u: %s stored twice",
                      seed, all[i].title);

    /* The restarted server writes again, and ids and names do not repeat. */
    struct resp r;
    ck_assert_int_eq(client_req(&cl, "POST", "/api/v1/records/marketing_request",
                                "{\"title\":\"after-crash\",\"partner\":\"P\",\"budget\":\"1\"}",
                                &r),
                     0);
    ck_assert_msg(r.status == 201, "create after restart: %ld %s", r.status, r.body);
    long long nid = json_int(r.body, "id", -1);
    ck_assert_int_gt(nid, max_id);
    resp_free(&r);
    ck_assert_int_eq(count_records(&S, "marketing_request"), n + 1);

    client_free(&cl);
    free(known);
    free(all);
    load_free(&L);
    srv_stop(&S);
    out = NULL;
    crc = store_check(S.dir, &out);
    ck_assert_msg(crc == 0, "trellis check after restart (seed %u): %s", seed, out ? out : "");
    free(out);
    srv_cleanup(&S);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *env = getenv("TRELLIS_CRASH_SEED");
    base_seed = env ? (unsigned)strtoul(env, NULL, 10)
                    : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
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
