/*
 * bench_timers — the timer machinery at a million pending timers (issue 4's timer test).
 *
 * Fills a fresh store with N pending timers (default 1,000,000) due over the next 30 days, in
 * write jobs of 10,000 (one durable commit each), then closes it and measures what a server
 * restart costs: opening the store and finding the earliest due timer, and the memory that takes
 * (nothing is loaded: VmRSS before and after). Then makes F timers (default 100,000) fall due at
 * once and fires them the way the server does (trl_timer_fire in write jobs of 500, each timer's
 * rows deleted in the job that fires it) and reports the rate. Prints figures; exits 0 unless
 * something fails.
 * usage: bench_timers [--timers N] [--due F] [--dir DIR]
 */
#include "sla/sla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

struct fill {
    uint64_t from, n, total;
    int64_t base, span, due_now; /* timers [0, due_now) are due at base - 1 */
};

static int fill_fn(struct trl_txn *t, void *arg)
{
    struct fill *f = arg;
    char owner[64], payload[96];
    for (uint64_t i = f->from; i < f->from + f->n; i++) {
        int64_t due = (int64_t)i < f->due_now
                          ? f->base - 1
                          : f->base + (int64_t)((i * 2654435761u) % (uint64_t)f->span);
        snprintf(owner, sizeof(owner), "sla/bench/%llu/review", (unsigned long long)i);
        snprintf(payload, sizeof(payload), "{\"sla\":\"review\",\"phase\":\"breach\"}");
        int rc = trl_timer_add(t, due, owner, payload, NULL);
        if (rc) return rc;
    }
    return 0;
}

struct fire {
    size_t fired;
    uint64_t bytes;
};

static int on_fire(void *ud, struct trl_txn *t, int64_t due, const char *owner, const char *payload,
                   size_t n)
{
    (void)t, (void)due, (void)owner;
    struct fire *f = ud;
    f->bytes += n;
    (void)payload;
    return 0;
}

struct fire_job {
    int64_t now;
    struct fire f;
    size_t fired;
};

static int fire_fn(struct trl_txn *t, void *arg)
{
    struct fire_job *j = arg;
    return trl_timer_fire(t, j->now, 500, on_fire, &j->f, &j->fired);
}

int main(int argc, char **argv)
{
    uint64_t total = 1000000, due_now = 100000;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timers") == 0 && i + 1 < argc)
            total = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--due") == 0 && i + 1 < argc)
            due_now = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_timers [--timers N] [--due F] [--dir DIR]\n");
            return 2;
        }
    }
    if (due_now > total) due_now = total;
    char tmpl[] = "/tmp/trellis-bench-timers.XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl))) return perror("mkdtemp"), 1;
    struct trl_store_opts o = {.dir = dir};
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store *st = NULL;
    if (trl_store_open(&o, &st, &d)) return fprintf(stderr, "open: %s\n", d.message), 1;
    int64_t base = (int64_t)time(NULL) * 1000;
    double t0 = now_s();
    for (uint64_t from = 0; from < total; from += 10000) {
        struct fill f = {.from = from,
                         .n = total - from < 10000 ? total - from : 10000,
                         .total = total,
                         .base = base,
                         .span = 30LL * 86400000,
                         .due_now = (int64_t)due_now};
        int rc = trl_store_write(st, fill_fn, &f);
        if (rc) return fprintf(stderr, "fill: %s\n", trl_err_token(rc)), 1;
    }
    double fill_s = now_s() - t0;
    printf("timers: %llu pending timers written in %.2f s (%.0f/s, commits of 10,000)\n",
           (unsigned long long)total, fill_s, (double)total / fill_s);
    trl_store_close(st);

    /* A restart: open, find the first due timer. Nothing is read into memory. */
    long rss0 = rss_kib();
    t0 = now_s();
    if (trl_store_open(&o, &st, &d)) return fprintf(stderr, "reopen: %s\n", d.message), 1;
    struct trl_txn *t = NULL;
    int64_t next = 0;
    if (trl_store_read(st, &t) || trl_timer_next(t, &next))
        return fprintf(stderr, "no first timer\n"), 1;
    trl_txn_end(t);
    double open_s = now_s() - t0;
    long rss1 = rss_kib();
    printf("timers: start-up with %llu pending: store open + first due timer in %.1f ms "
           "(target < 1 s); memory %+ld KiB (VmRSS %ld -> %ld KiB)\n",
           (unsigned long long)total, open_s * 1000, rss1 - rss0, rss0, rss1);

    /* F timers are due now: fire them as the server's writer does, 500 per job. */
    t0 = now_s();
    size_t fired = 0, jobs = 0;
    for (;;) {
        struct fire_job j = {.now = base};
        int rc = trl_store_write(st, fire_fn, &j);
        if (rc) return fprintf(stderr, "fire: %s\n", trl_err_token(rc)), 1;
        jobs++;
        fired += j.fired;
        if (j.fired < 500) break;
    }
    double fire_s = now_s() - t0;
    printf("timers: %zu due at once fired in %.2f s (%.0f/s; %zu write jobs of up to 500); "
           "remaining pending: ",
           fired, fire_s, (double)fired / fire_s, jobs);
    uint64_t left = 0;
    if (trl_store_read(st, &t) || trl_timer_count(t, &left)) return 1;
    trl_txn_end(t);
    printf("%llu\n", (unsigned long long)left);
    trl_store_close(st);
    if (fired != due_now || left != total - due_now) {
        fprintf(stderr, "bench_timers: fired %zu of %llu due, %llu left\n", fired,
                (unsigned long long)due_now, (unsigned long long)left);
        return 1;
    }
    char cmd[600];
    if (strncmp(dir, "/tmp/trellis-bench-timers.", 26) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
