/*
 * fuzz_calendar.c — libFuzzer target for business calendar definitions (trl_cal_parse, zones
 * from the default zoneinfo directory) and the working-time arithmetic of what it accepts.
 *
 * A refusal must be TRL_EJSON, TRL_ETOOBIG, TRL_EVALIDATION (with at least one field error) or
 * TRL_ENOMEM, with nothing returned. On an accepted calendar, from a few fixed instants (DST
 * changes of New York and Berlin, the Golden Week, the footer-rule years, both ends of the range)
 * and durations, the contract of calendar.h and runtime/calendar/README.md must hold:
 *   - add(s, x) == s for x <= 0;
 *   - for x > 0, t = add(s, x) != TRL_CAL_NEVER: s <= t <= TRL_CAL_MAX_MS,
 *     between(s, t) == x and between(s, t - 1) == x - 1;
 *   - t == TRL_CAL_NEVER: all the working time left, between(s, TRL_CAL_MAX_MS), is below x;
 *   - n = next_working(s) != TRL_CAL_NEVER: n >= s, between(s, n) == 0, between(n, n + 1) == 1,
 *     and every add(s, x > 0) lies after n; n == TRL_CAL_NEVER: no working time is left.
 * abort() on any violation, so the fuzzer reports wrong answers as well as crashes.
 */
#include "calendar/calendar.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H_MS 3600000LL

static const int64_t instants[] = {
    TRL_CAL_MIN_MS - 1, /* before the range: counts from 1900-01-01 */
    0,                  /* 1970-01-01T00:00Z */
    1772798400000LL,    /* 2026-03-06T12:00Z, Friday before New York springs forward */
    1772951400000LL,    /* 2026-03-08T06:30Z, half an hour before it does */
    1790809200000LL,    /* 2026-09-30T23:00Z, the eve of the Golden Week in Shanghai */
    1792888200000LL,    /* 2026-10-25T00:30Z, half an hour before Berlin falls back */
    1793512799999LL,    /* 2026-11-01T05:59:59.999Z, a ms before New York falls back */
    3802579200000LL,    /* 2090-07-01T08:00Z, offsets from the zone's footer rule */
    253402128000000LL,  /* 9999-12-30T00:00Z, two days before the end */
};

static const int64_t durations[] = {1,         59999,     H_MS,       8 * H_MS + 1,
                                    16 * H_MS, 40 * H_MS, 1000 * H_MS};

static void fail(const char *what, int64_t s, int64_t x, int64_t got, int64_t want)
{
    fprintf(stderr, "fuzz_calendar: %s: s=%lld x=%lld got=%lld want=%lld\n", what, (long long)s,
            (long long)x, (long long)got, (long long)want);
    abort();
}

/* Walking to TRL_CAL_MAX_MS is what costs (milliseconds over thousands of DST stretches), so the
 * answers that are NEVER are not asked for again: add is monotonic in both arguments, so once
 * add(s, x) is NEVER, so is add(s', x') for every s' >= s and x' >= x. */
static void check(const struct trl_cal *c)
{
    int64_t never_x = INT64_MAX; /* smallest duration found NEVER from an earlier instant */
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        int64_t s = instants[i], lo = s < TRL_CAL_MIN_MS ? TRL_CAL_MIN_MS : s;
        if (trl_cal_add(c, s, 0) != s) fail("add(s, 0) != s", s, 0, trl_cal_add(c, s, 0), s);
        if (trl_cal_add(c, s, -H_MS) != s) fail("add(s, <0) != s", s, -H_MS, 0, s);
        if (never_x == 1) continue; /* no working time left after an earlier instant */

        int64_t n = trl_cal_next_working(c, s);
        if (n == TRL_CAL_NEVER) {
            if (trl_cal_between(c, s, TRL_CAL_MAX_MS) != 0)
                fail("next_working is NEVER but working time is left", s, 1,
                     trl_cal_between(c, s, TRL_CAL_MAX_MS), 0);
            never_x = 1;
            continue;
        }
        if (n < lo || n >= TRL_CAL_MAX_MS) fail("next_working out of range", s, 0, n, lo);
        if (trl_cal_between(c, s, n) != 0)
            fail("working time before next_working", s, 0, trl_cal_between(c, s, n), 0);
        if (trl_cal_between(c, n, n + 1) != 1)
            fail("next_working is not working time", s, 0, trl_cal_between(c, n, n + 1), 1);
        for (size_t k = 0; k < sizeof(durations) / sizeof(durations[0]); k++) {
            int64_t x = durations[k];
            if (x >= never_x) break;
            int64_t t = trl_cal_add(c, s, x);
            if (t == TRL_CAL_NEVER) {
                int64_t left = trl_cal_between(c, s, TRL_CAL_MAX_MS);
                if (left >= x) fail("add is NEVER but the working time is there", s, x, left, x);
                never_x = x;
                break;
            }
            if (t < n + 1 || t > TRL_CAL_MAX_MS) fail("add out of range", s, x, t, n + 1);
            int64_t b = trl_cal_between(c, s, t);
            if (b != x) fail("between(s, add(s, x)) != x", s, x, b, x);
            b = trl_cal_between(c, s, t - 1);
            if (b != x - 1) fail("between(s, add(s, x) - 1) != x - 1", s, x, b, x - 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trl_diag d;
    struct trl_cal *c = (struct trl_cal *)1;
    trl_diag_init(&d);
    int rc = trl_cal_parse((const char *)data, size, NULL, &c, &d);
    if (rc) {
        if (c) abort();
        if (rc != TRL_EJSON && rc != TRL_ETOOBIG && rc != TRL_EVALIDATION && rc != TRL_ENOMEM)
            abort();
        if (rc == TRL_EVALIDATION && d.nferrs == 0) abort();
        trl_diag_reset(&d);
        return 0;
    }
    if (!c || !trl_cal_name(c) || !trl_cal_tz(c) || !trl_cal_label(c, "en") ||
        !trl_cal_label(c, "zh-CN"))
        abort();
    check(c);
    trl_cal_free(c);
    trl_diag_reset(&d);
    return 0;
}
