/*
 * bench_calendar.c — speed of trl_cal_add and trl_cal_between (run by scripts/bench-calendar on a
 * Release build; not a test).
 *
 * Two calendars: China office hours with a lunch break, holidays and make-up days (Asia/Shanghai),
 * and a New York office (two DST changes a year). For each, 1,000,000 calls of trl_cal_add with
 * random starts in 2026 (to the millisecond) and random durations from one minute to six working
 * weeks, then 1,000,000 calls of trl_cal_between over random windows of up to six weeks; the New
 * York add once more with starts in 2090, where offsets come from the zone's footer rule. Inputs
 * are drawn before the clock starts. Prints one line per run and exits 0 (1 when a calendar
 * cannot be loaded).
 */
#include "calendar/calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N       1000000
#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

static const char *const cn_office =
    "{\"name\": \"cn_office\", \"timezone\": \"Asia/Shanghai\", \"week\": {"
    "\"mon\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    "\"tue\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    "\"wed\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    "\"thu\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    "\"fri\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]]},"
    "\"holidays\": [\"2026-01-01\", {\"from\": \"2026-02-15\", \"to\": \"2026-02-23\"},"
    " {\"from\": \"2026-04-04\", \"to\": \"2026-04-06\"}, {\"from\": \"2026-05-01\", \"to\": "
    "\"2026-05-05\"}, {\"from\": \"2026-06-19\", \"to\": \"2026-06-21\"}, {\"from\": "
    "\"2026-09-25\", \"to\": \"2026-09-27\"}, {\"from\": \"2026-10-01\", \"to\": \"2026-10-08\"}],"
    "\"workdays\": [\"2026-02-14\", \"2026-02-28\", \"2026-05-09\", \"2026-09-20\","
    " \"2026-10-10\"]}";

static const char *const ny_office =
    "{\"name\": \"ny_office\", \"timezone\": \"America/New_York\", \"week\": {"
    "\"mon\": [[\"08:00\",\"12:00\"],[\"13:00\",\"17:00\"]],"
    "\"tue\": [[\"08:00\",\"12:00\"],[\"13:00\",\"17:00\"]],"
    "\"wed\": [[\"08:00\",\"12:00\"],[\"13:00\",\"17:00\"]],"
    "\"thu\": [[\"08:00\",\"12:00\"],[\"13:00\",\"17:00\"]],"
    "\"fri\": [[\"08:00\",\"12:00\"],[\"13:00\",\"17:00\"]]},"
    "\"holidays\": [\"2026-01-01\", \"2026-05-25\", \"2026-07-03\", \"2026-09-07\","
    " {\"from\": \"2026-11-26\", \"to\": \"2026-11-27\"}, \"2026-12-25\"]}";

static uint64_t rng = 0x243f6a8885a308d3ULL;
static int64_t rnd_in(int64_t lo, int64_t hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int64_t)(rng % (uint64_t)(hi - lo + 1));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t *a_in, *b_in;
static int64_t sink;

static void report(const char *what, const char *cal, double secs)
{
    printf("calendar %-7s %-10s: %d calls in %.3f s (%.1f M/s, %.0f ns/call)\n", what, cal, N, secs,
           N / secs / 1e6, secs * 1e9 / N);
}

/* Random starts in [from, from + 1 year) and durations up to six working weeks (week_h hours). */
static double run_add(const struct trl_cal *c, int64_t from, int64_t week_h)
{
    for (int i = 0; i < N; i++) {
        a_in[i] = from + rnd_in(0, 365 * DAY_MS - 1);
        b_in[i] = rnd_in(MIN_MS, 6 * week_h * HOUR_MS);
    }
    double t0 = now_s();
    for (int i = 0; i < N; i++)
        sink += trl_cal_add(c, a_in[i], b_in[i]);
    return now_s() - t0;
}

static double run_between(const struct trl_cal *c, int64_t from)
{
    for (int i = 0; i < N; i++) {
        a_in[i] = from + rnd_in(0, 365 * DAY_MS - 1);
        b_in[i] = a_in[i] + rnd_in(0, 42 * DAY_MS);
    }
    double t0 = now_s();
    for (int i = 0; i < N; i++)
        sink += trl_cal_between(c, a_in[i], b_in[i]);
    return now_s() - t0;
}

static struct trl_cal *load(const char *json)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cal *c = NULL;
    if (trl_cal_parse(json, strlen(json), NULL, &c, &d)) {
        fprintf(stderr, "bench_calendar: %s\n", d.message);
        c = NULL;
    }
    trl_diag_reset(&d);
    return c;
}

int main(void)
{
    struct trl_cal *cn = load(cn_office), *ny = load(ny_office);
    a_in = malloc(N * sizeof(*a_in));
    b_in = malloc(N * sizeof(*b_in));
    if (!cn || !ny || !a_in || !b_in) return 1;
    const int64_t y2026 = 1767225600000LL, y2090 = 3786912000000LL;
    double worst = 0, t;
    t = run_add(cn, y2026, 37);
    report("add", "cn_office", t);
    worst = t > worst ? t : worst;
    t = run_between(cn, y2026);
    report("between", "cn_office", t);
    t = run_add(ny, y2026, 40);
    report("add", "ny_office", t);
    worst = t > worst ? t : worst;
    t = run_between(ny, y2026);
    report("between", "ny_office", t);
    t = run_add(ny, y2090, 40);
    report("add", "ny (2090)", t);
    worst = t > worst ? t : worst;
    printf("target: 1,000,000 adds well under 1 s; slowest run %.3f s: %s\n", worst,
           worst < 0.5 ? "PASS" : "MISS");
    printf("(checksum %lld)\n", (long long)(sink & 0xffff));
    trl_cal_free(cn);
    trl_cal_free(ny);
    free(a_in);
    free(b_in);
    return 0;
}
