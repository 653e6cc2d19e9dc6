/*
 * test_calendar.c — time zones and business calendars: zone names, TZif reading (system zones
 * and synthetic files of every version, footer rules, damaged files), offsets and local-to-UTC
 * around the 2026 DST changes of New York and Berlin and far past the tables (2090), offsets
 * against glibc for many zones, calendar definitions and their errors by path, working time
 * across lunch breaks, weekends, holiday ranges, make-up days and DST change days, randomized
 * properties of add/between, and a minute-by-minute reference implementation.
 *
 * The system zones come from /usr/share/zoneinfo (Debian package tzdata, see scripts/deps).
 */
#include "calendar/calendar.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Check's ck_assert_* writes to its parent on every success: too slow inside loops of many
 * thousand iterations, so loops test with this and only report failures. */
#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* RFC 3339 text to UTC ms. */
static int64_t T(const char *s)
{
    int64_t ms;
    int rc = trl_datetime_parse(s, strlen(s), &ms);
    ck_assert_msg(rc == 0, "bad test datetime %s", s);
    return ms;
}

static const char *fmt(int64_t ms, char *buf)
{
    if (ms == TRL_CAL_NEVER)
        strcpy(buf, "NEVER");
    else
        trl_datetime_format(ms, buf);
    return buf;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
/* Uniform-enough in [lo, hi]. */
static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static struct trl_tz *zone(const char *name)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_tz *tz = NULL;
    int rc = trl_tz_load(NULL, name, &tz, &d);
    ck_assert_msg(rc == 0, "loading %s: %s (is the tzdata package installed?)", name, d.message);
    trl_diag_reset(&d);
    return tz;
}

static struct trl_cal *cal(const char *json)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cal *c = NULL;
    int rc = trl_cal_parse(json, strlen(json), NULL, &c, &d);
    ck_assert_msg(rc == 0, "calendar refused: %s", d.message);
    trl_diag_reset(&d);
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * Zone names and loading
 */
START_TEST(zone_names_are_validated)
{
    static const char *const bad[] = {
        "",
        "/etc/passwd",
        "../etc/passwd",
        "America/../../etc/passwd",
        "Europe//Berlin",
        "Europe/Berlin/",
        "Europe/Ber lin",
        "Europe/Berlin.tab",
        "Asia/Shanghai\n",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* 65 */,
        "Mars/Olympus_Mons",
        "America",     /* a directory */
        "leapseconds", /* a file that is not TZif */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_tz *tz = (struct trl_tz *)1;
        int rc = trl_tz_load(NULL, bad[i], &tz, &d);
        ck_assert_msg(rc == TRL_EVALIDATION, "'%s' gave %d", bad[i], rc);
        ck_assert_ptr_null(tz);
        ck_assert_str_ne(d.message, "");
        ck_assert_str_ne(d.message_zh, "");
        trl_diag_reset(&d);
    }
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_tz_load(NULL, NULL, &(struct trl_tz *){NULL}, &d), TRL_EVALIDATION);
    trl_diag_reset(&d);
}
END_TEST

START_TEST(utc_is_built_in)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_tz *tz = NULL;
    ck_assert_int_eq(trl_tz_load("/nonexistent/zoneinfo", "UTC", &tz, &d), 0);
    ck_assert_str_eq(trl_tz_name(tz), "UTC");
    int64_t from, until;
    ck_assert_int_eq(trl_tz_offset_span(tz, 1234567890, &from, &until), 0);
    ck_assert(from == INT64_MIN && until == INT64_MAX);
    ck_assert_int_eq(trl_tz_to_utc(tz, 1234567890), 1234567890);
    trl_tz_free(tz);
    trl_tz_free(NULL);
    /* Any other zone needs its file. */
    ck_assert_int_eq(trl_tz_load("/nonexistent/zoneinfo", "Europe/Berlin", &tz, &d),
                     TRL_EVALIDATION);
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Offsets and local -> UTC on system zones
 */
struct off_case {
    const char *zone;
    const char *utc; /* instant */
    int32_t off;     /* expected offset */
};

static const struct off_case off_cases[] = {
    /* New York 2026: EDT from 2026-03-08 07:00Z to 2026-11-01 06:00Z. */
    {"America/New_York", "2026-01-15T12:00:00Z", -18000},
    {"America/New_York", "2026-03-08T06:59:59Z", -18000},
    {"America/New_York", "2026-03-08T07:00:00Z", -14400},
    {"America/New_York", "2026-07-01T00:00:00Z", -14400},
    {"America/New_York", "2026-11-01T05:59:59Z", -14400},
    {"America/New_York", "2026-11-01T06:00:00Z", -18000},
    /* Berlin 2026: CEST from 2026-03-29 01:00Z to 2026-10-25 01:00Z. */
    {"Europe/Berlin", "2026-03-29T00:59:59Z", 3600},
    {"Europe/Berlin", "2026-03-29T01:00:00Z", 7200},
    {"Europe/Berlin", "2026-10-25T00:59:59Z", 7200},
    {"Europe/Berlin", "2026-10-25T01:00:00Z", 3600},
    /* Far past the tables: the footer rules. */
    {"America/New_York", "2090-03-12T06:59:59Z", -18000},
    {"America/New_York", "2090-03-12T07:00:00Z", -14400},
    {"America/New_York", "2090-11-05T05:59:59Z", -14400},
    {"America/New_York", "2090-11-05T06:00:00Z", -18000},
    {"Europe/Berlin", "2090-03-26T00:59:59Z", 3600},
    {"Europe/Berlin", "2090-03-26T01:00:00Z", 7200},
    {"Europe/Berlin", "2090-10-29T00:59:59Z", 7200},
    {"Europe/Berlin", "2090-10-29T01:00:00Z", 3600},
    {"Europe/Berlin", "2090-12-31T23:59:59Z", 3600},
    {"Europe/Berlin", "2091-01-01T00:00:00Z", 3600},
    /* Shanghai: no DST, now or later. */
    {"Asia/Shanghai", "2026-01-01T00:00:00Z", 28800},
    {"Asia/Shanghai", "2026-07-01T00:00:00Z", 28800},
    {"Asia/Shanghai", "2090-07-01T00:00:00Z", 28800},
};

START_TEST(offsets_around_dst_changes)
{
    for (size_t i = 0; i < sizeof(off_cases) / sizeof(off_cases[0]); i++) {
        const struct off_case *c = &off_cases[i];
        struct trl_tz *tz = zone(c->zone);
        int32_t got = trl_tz_offset(tz, T(c->utc) / 1000);
        ck_assert_msg(got == c->off, "%s at %s: %d, expected %d", c->zone, c->utc, got, c->off);
        trl_tz_free(tz);
    }
}
END_TEST

START_TEST(offset_span_brackets_the_instant)
{
    static const char *const zones[] = {"America/New_York", "Europe/Berlin", "Asia/Shanghai",
                                        "Australia/Sydney"};
    rng_state = 0x5eed0001;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        struct trl_tz *tz = zone(zones[z]);
        for (int i = 0; i < 2000; i++) {
            int64_t t = rnd_in(0, 4102444800LL); /* 1970 .. 2100 */
            int64_t from, until;
            int32_t o = trl_tz_offset_span(tz, t, &from, &until);
            LOOP_ASSERT(from <= t && t < until, "%s: span does not hold %lld", zones[z],
                        (long long)t);
            if (from != INT64_MIN)
                LOOP_ASSERT(trl_tz_offset(tz, from) == o, "%s: offset at from", zones[z]);
            if (until != INT64_MAX) {
                LOOP_ASSERT(trl_tz_offset(tz, until - 1) == o, "%s: offset before until", zones[z]);
                LOOP_ASSERT(trl_tz_offset(tz, until) != o, "%s: until %lld is no change", zones[z],
                            (long long)until);
            }
        }
        trl_tz_free(tz);
    }
}
END_TEST

START_TEST(to_utc_in_gaps_and_overlaps)
{
    struct trl_tz *ny = zone("America/New_York"), *be = zone("Europe/Berlin");
    struct {
        struct trl_tz *tz;
        const char *local; /* wall clock, written as if UTC */
        const char *utc;   /* expected */
    } cases[] = {
        /* New York spring forward 2026-03-08: 02:00 EST -> 03:00 EDT. */
        {ny, "2026-03-08T01:59:59Z", "2026-03-08T06:59:59Z"},
        {ny, "2026-03-08T02:00:00Z", "2026-03-08T07:00:00Z"}, /* gap: as EST = 03:00 EDT */
        {ny, "2026-03-08T02:30:00Z", "2026-03-08T07:30:00Z"}, /* gap: 03:30 EDT */
        {ny, "2026-03-08T03:00:00Z", "2026-03-08T07:00:00Z"},
        {ny, "2026-03-08T03:30:00Z", "2026-03-08T07:30:00Z"},
        /* New York fall back 2026-11-01: 02:00 EDT -> 01:00 EST; 01:xx happens twice. */
        {ny, "2026-11-01T00:59:59Z", "2026-11-01T04:59:59Z"},
        {ny, "2026-11-01T01:00:00Z", "2026-11-01T05:00:00Z"}, /* earlier: EDT */
        {ny, "2026-11-01T01:30:00Z", "2026-11-01T05:30:00Z"},
        {ny, "2026-11-01T02:00:00Z", "2026-11-01T07:00:00Z"},
        /* Berlin spring forward 2026-03-29: 02:00 CET -> 03:00 CEST. */
        {be, "2026-03-29T01:59:00Z", "2026-03-29T00:59:00Z"},
        {be, "2026-03-29T02:30:00Z", "2026-03-29T01:30:00Z"}, /* gap: 03:30 CEST */
        {be, "2026-03-29T03:00:00Z", "2026-03-29T01:00:00Z"},
        /* Berlin fall back 2026-10-25: 03:00 CEST -> 02:00 CET; 02:xx happens twice. */
        {be, "2026-10-25T02:30:00Z", "2026-10-25T00:30:00Z"}, /* earlier: CEST */
        {be, "2026-10-25T03:00:00Z", "2026-10-25T02:00:00Z"},
        /* The footer years. */
        {ny, "2090-03-12T02:30:00Z", "2090-03-12T07:30:00Z"},
        {ny, "2090-11-05T01:30:00Z", "2090-11-05T05:30:00Z"},
        {be, "2090-10-29T02:30:00Z", "2090-10-29T00:30:00Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[32];
        int64_t got = trl_tz_to_utc(cases[i].tz, T(cases[i].local) / 1000) * 1000;
        ck_assert_msg(got == T(cases[i].utc), "%s local %s: %s, expected %s",
                      trl_tz_name(cases[i].tz), cases[i].local, fmt(got, buf), cases[i].utc);
    }
    /* Round trip: every instant comes back, except the second pass of an overlap, which comes
     * back as the first (one hour earlier here). */
    rng_state = 0x5eed0002;
    struct trl_tz *zs[] = {ny, be};
    for (int z = 0; z < 2; z++) {
        for (int i = 0; i < 5000; i++) {
            int64_t u = rnd_in(1735689600LL, 3155760000LL); /* 2025 .. 2070 */
            int64_t local = u + trl_tz_offset(zs[z], u);
            int64_t back = trl_tz_to_utc(zs[z], local);
            LOOP_ASSERT(back == u || back == u - 3600, "round trip of %lld gave %lld", (long long)u,
                        (long long)back);
            LOOP_ASSERT(back + trl_tz_offset(zs[z], back) == local, "not a solution");
        }
    }
    trl_tz_free(ny);
    trl_tz_free(be);
}
END_TEST

START_TEST(offsets_agree_with_glibc)
{
    static const char *const zones[] = {
        "America/New_York",  "Europe/Berlin",  "Asia/Shanghai",       "Australia/Sydney",
        "Europe/Dublin",     "Pacific/Apia",   "Africa/Casablanca",   "America/Santiago",
        "Asia/Kolkata",      "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns",
        "America/Sao_Paulo", "Asia/Tehran",    "Pacific/Chatham",     "Europe/London",
    };
    rng_state = 0x5eed0003;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        struct trl_tz *tz = zone(zones[z]);
        char env[80];
        snprintf(env, sizeof(env), ":%s", zones[z]);
        setenv("TZ", env, 1);
        tzset();
        for (int i = 0; i < 3000; i++) {
            /* 1970 .. 2200, with a third of the draws next to this year's DST changes */
            int64_t t = i % 3 ? rnd_in(0, 7258118400LL) : rnd_in(1767225600LL, 1798761600LL);
            time_t tt = (time_t)t;
            struct tm tm;
            localtime_r(&tt, &tm);
            int32_t got = trl_tz_offset(tz, t);
            LOOP_ASSERT(got == tm.tm_gmtoff, "%s at %lld: %d, glibc %ld", zones[z], (long long)t,
                        got, (long)tm.tm_gmtoff);
        }
        trl_tz_free(tz);
    }
    unsetenv("TZ");
    tzset();
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Synthetic TZif files: every version, footers, damage.
 */
struct tzif {
    int version;          /* 0 (v1), 2 or 3 */
    const int64_t *times; /* transitions */
    const uint8_t *idx;   /* type of each */
    size_t ntimes;
    const int32_t *offs; /* UT offsets of the types */
    size_t ntypes;
    const char *footer; /* v2+: footer text (no newlines) */
    int leaps;          /* leap second records to add */
};

static size_t put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return (size_t)bytes;
}

static size_t tzif_block(unsigned char *p, const struct tzif *z, int tsize)
{
    size_t n = 0;
    memcpy(p, "TZif", 4);
    p[4] = z->version ? (unsigned char)('0' + z->version) : 0;
    memset(p + 5, 0, 15);
    n = 20;
    n += put_be(p + n, 0, 4); /* isutcnt */
    n += put_be(p + n, 0, 4); /* isstdcnt */
    n += put_be(p + n, (uint64_t)z->leaps, 4);
    n += put_be(p + n, z->ntimes, 4);
    n += put_be(p + n, z->ntypes, 4);
    n += put_be(p + n, 4, 4); /* charcnt: "XXX\0" */
    for (size_t i = 0; i < z->ntimes; i++)
        n += put_be(p + n, (uint64_t)z->times[i], tsize);
    for (size_t i = 0; i < z->ntimes; i++)
        p[n++] = z->idx[i];
    for (size_t i = 0; i < z->ntypes; i++) {
        n += put_be(p + n, (uint32_t)z->offs[i], 4);
        p[n++] = 0;
        p[n++] = 0;
    }
    memcpy(p + n, "XXX", 4);
    n += 4;
    for (int i = 0; i < z->leaps; i++) {
        n += put_be(p + n, 78796800, tsize);
        n += put_be(p + n, (uint64_t)(i + 1), 4);
    }
    return n;
}

/* Writes z into dir/name, keeping only the first `cut` bytes when cut > 0. */
static void tzif_write(const char *dir, const char *name, const struct tzif *z, size_t cut)
{
    static unsigned char buf[8192];
    size_t n = tzif_block(buf, z, 4);
    if (z->version) {
        n += tzif_block(buf + n, z, 8);
        n += (size_t)sprintf((char *)buf + n, "\n%s\n", z->footer ? z->footer : "");
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, cut ? cut : n, f), cut ? cut : n);
    fclose(f);
}

static char tzdir[64];

static void tzdir_setup(void)
{
    strcpy(tzdir, "/tmp/trl-tzif-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tzdir));
}

static void tzdir_teardown(void)
{
    static const char *const names[] = {"V1",          "Southern",  "AllYearDst", "Quoted",
                                        "JulianRules", "Truncated", "Leap",       "BadFooter",
                                        "NotTzif",     "Unordered", "Empty",      "CompressedTail"};
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tzdir, names[i]);
        unlink(path);
    }
    rmdir(tzdir);
}

static int load_in(const char *name, struct trl_tz **tz)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_tz_load(tzdir, name, tz, &d);
    if (rc) ck_assert_str_ne(d.message, "");
    trl_diag_reset(&d);
    return rc;
}

START_TEST(tzif_version_1_uses_its_table)
{
    static const int64_t times[] = {1000000, 2000000};
    static const uint8_t idx[] = {1, 0};
    static const int32_t offs[] = {3600, 7200};
    struct tzif z = {0, times, idx, 2, offs, 2, NULL, 0};
    tzif_write(tzdir, "V1", &z, 0);
    struct trl_tz *tz = NULL;
    ck_assert_int_eq(load_in("V1", &tz), 0);
    ck_assert_int_eq(trl_tz_offset(tz, 999999), 3600);
    ck_assert_int_eq(trl_tz_offset(tz, 1000000), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, 1999999), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, 2000000), 3600);
    ck_assert_int_eq(trl_tz_offset(tz, 4000000000LL), 3600);
    int64_t from, until;
    trl_tz_offset_span(tz, 1500000, &from, &until);
    ck_assert(from == 1000000 && until == 2000000);
    trl_tz_free(tz);
}
END_TEST

START_TEST(tzif_footer_rules)
{
    static const int32_t off10[] = {36000}, offm4[] = {-14400}, offm3[] = {-10800}, off2[] = {7200};
    /* Southern hemisphere, no transitions at all: the footer governs every instant. */
    struct tzif s = {2, NULL, NULL, 0, off10, 1, "AEST-10AEDT,M10.1.0,M4.1.0/3", 0};
    tzif_write(tzdir, "Southern", &s, 0);
    /* DST all year (a v3 footer with a time past 24:00). */
    struct tzif a = {3, NULL, NULL, 0, offm4, 1, "EST5EDT,0/0,J365/25", 0};
    tzif_write(tzdir, "AllYearDst", &a, 0);
    /* Quoted numeric abbreviations, no DST. */
    struct tzif q = {2, NULL, NULL, 0, offm3, 1, "<-03>3", 0};
    tzif_write(tzdir, "Quoted", &q, 0);
    /* Julian day rules with negative and long times: DST from J60 (Mar 1) at -1:00 to zero-based
     * day 300 at 25:30. */
    struct tzif j = {3, NULL, NULL, 0, off2, 1, "XST-2XDT,J60/-1,300/25:30", 0};
    tzif_write(tzdir, "JulianRules", &j, 0);

    struct trl_tz *tz = NULL;
    ck_assert_int_eq(load_in("Southern", &tz), 0);
    /* 2026: DST ends 2026-04-05 03:00 AEDT (04-04 16:00Z), starts 2026-10-04 02:00 AEST
     * (10-03 16:00Z). */
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-01-01T00:00:00Z") / 1000), 39600);
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-04-04T15:59:59Z") / 1000), 39600);
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-04-04T16:00:00Z") / 1000), 36000);
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-10-03T15:59:59Z") / 1000), 36000);
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-10-03T16:00:00Z") / 1000), 39600);
    ck_assert_int_eq(trl_tz_offset(tz, T("2026-12-31T23:59:59Z") / 1000), 39600);
    int64_t from, until;
    trl_tz_offset_span(tz, T("2026-06-01T00:00:00Z") / 1000, &from, &until);
    ck_assert(from == T("2026-04-04T16:00:00Z") / 1000 &&
              until == T("2026-10-03T16:00:00Z") / 1000);
    trl_tz_free(tz);

    ck_assert_int_eq(load_in("AllYearDst", &tz), 0);
    static const char *const always[] = {"2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z",
                                         "2026-12-31T23:59:59Z", "2027-01-01T04:00:00Z",
                                         "2027-01-01T05:00:00Z", "2090-02-28T12:00:00Z"};
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        ck_assert_msg(trl_tz_offset(tz, T(always[i]) / 1000) == -14400, "%s", always[i]);
    trl_tz_free(tz);

    ck_assert_int_eq(load_in("Quoted", &tz), 0);
    ck_assert_int_eq(trl_tz_offset(tz, 0), -10800);
    ck_assert_int_eq(trl_tz_offset(tz, T("2090-07-01T00:00:00Z") / 1000), -10800);
    trl_tz_offset_span(tz, 0, &from, &until);
    ck_assert(from == INT64_MIN && until == INT64_MAX);
    trl_tz_free(tz);

    ck_assert_int_eq(load_in("JulianRules", &tz), 0);
    /* 2027 (not leap): start 02-28 23:00 XST = 21:00Z; end 10-28 + 25:30 XDT = 10-28 22:30Z. */
    ck_assert_int_eq(trl_tz_offset(tz, T("2027-02-28T20:59:59Z") / 1000), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, T("2027-02-28T21:00:00Z") / 1000), 10800);
    ck_assert_int_eq(trl_tz_offset(tz, T("2027-10-28T22:29:59Z") / 1000), 10800);
    ck_assert_int_eq(trl_tz_offset(tz, T("2027-10-28T22:30:00Z") / 1000), 7200);
    /* 2028 (leap): J60 is still Mar 1 (Feb 29 is never counted); day 300 is Oct 27. */
    ck_assert_int_eq(trl_tz_offset(tz, T("2028-02-29T20:59:59Z") / 1000), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, T("2028-02-29T21:00:00Z") / 1000), 10800);
    ck_assert_int_eq(trl_tz_offset(tz, T("2028-10-27T22:29:59Z") / 1000), 10800);
    ck_assert_int_eq(trl_tz_offset(tz, T("2028-10-27T22:30:00Z") / 1000), 7200);
    trl_tz_free(tz);
}
END_TEST

START_TEST(tzif_rule_starts_at_the_last_transition)
{
    /* The last transition keeps the offset (a new abbreviation only), so it is not among the
     * offset changes; the footer still governs only from it on, not from the change before. */
    static const int64_t times[] = {1000000, 2000000};
    static const uint8_t idx[] = {1, 2};
    static const int32_t offs[] = {3600, 7200, 7200};
    struct tzif z = {2, times, idx, 2, offs, 3, "XST-1", 0};
    tzif_write(tzdir, "CompressedTail", &z, 0);
    struct trl_tz *tz = NULL;
    ck_assert_int_eq(load_in("CompressedTail", &tz), 0);
    ck_assert_int_eq(trl_tz_offset(tz, 999999), 3600);
    ck_assert_int_eq(trl_tz_offset(tz, 1000000), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, 1999999), 7200);
    ck_assert_int_eq(trl_tz_offset(tz, 2000000), 3600);
    int64_t from, until;
    ck_assert_int_eq(trl_tz_offset_span(tz, 1500000, &from, &until), 7200);
    ck_assert(from == 1000000 && until == 2000000);
    ck_assert_int_eq(trl_tz_offset_span(tz, 500000, &from, &until), 3600);
    ck_assert(from == INT64_MIN && until == 1000000);
    ck_assert_int_eq(trl_tz_offset_span(tz, 3000000, &from, &until), 3600);
    ck_assert(from == 2000000 && until == INT64_MAX);
    ck_assert_int_eq(trl_tz_to_utc(tz, 1500000 + 7200), 1500000);
    trl_tz_free(tz);
}
END_TEST

START_TEST(tzif_damage_is_refused)
{
    static const int64_t times[] = {1000000, 2000000}, backwards[] = {2000000, 1000000};
    static const uint8_t idx[] = {1, 0};
    static const int32_t offs[] = {3600, 7200};
    struct tzif good = {2, times, idx, 2, offs, 2, "CET-1", 0};
    tzif_write(tzdir, "Truncated", &good, 60);
    struct tzif leap = {2, times, idx, 2, offs, 2, "CET-1", 1};
    tzif_write(tzdir, "Leap", &leap, 0);
    struct tzif badf = {2, times, idx, 2, offs, 2, "CET-1CEST", 0}; /* DST without rules */
    tzif_write(tzdir, "BadFooter", &badf, 0);
    struct tzif unord = {2, backwards, idx, 2, offs, 2, "CET-1", 0};
    tzif_write(tzdir, "Unordered", &unord, 0);
    tzif_write(tzdir, "Empty", &good, 1);
    char path[512];
    snprintf(path, sizeof(path), "%s/NotTzif", tzdir);
    FILE *f = fopen(path, "w");
    fputs("# not a zone file, but long enough to hold a header of forty-four bytes\n", f);
    fclose(f);

    struct trl_tz *tz = NULL;
    ck_assert_int_eq(load_in("Truncated", &tz), TRL_ECORRUPT);
    ck_assert_int_eq(load_in("Leap", &tz), TRL_EVALIDATION);
    ck_assert_int_eq(load_in("BadFooter", &tz), TRL_ECORRUPT);
    ck_assert_int_eq(load_in("Unordered", &tz), TRL_ECORRUPT);
    ck_assert_int_eq(load_in("Empty", &tz), TRL_EVALIDATION);
    ck_assert_int_eq(load_in("NotTzif", &tz), TRL_EVALIDATION);
    ck_assert_ptr_null(tz);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Calendar definitions
 */
static const char *const cn_office =
    "{\"name\": \"cn_office\", \"labels\": {\"en\": \"China office hours\", \"zh-CN\": "
    "\"中国办公时间\"},\n"
    " \"timezone\": \"Asia/Shanghai\",\n"
    " \"week\": {\"mon\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    " \"tue\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    " \"wed\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    " \"thu\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]],"
    " \"fri\": [[\"09:00\",\"12:00\"],[\"13:30\",\"18:00\"]], \"sat\": [], \"sun\": []},\n"
    " \"holidays\": [\"2026-10-01\", {\"from\": \"2026-10-02\", \"to\": \"2026-10-07\", "
    "\"name\": \"National Day\"}],\n"
    " \"workdays\": [{\"date\": \"2026-10-10\", \"name\": \"调休\"}, \"2026-09-27\"]}";

START_TEST(definition_parses)
{
    struct trl_cal *c = cal(cn_office);
    ck_assert_str_eq(trl_cal_name(c), "cn_office");
    ck_assert_str_eq(trl_cal_label(c, "en"), "China office hours");
    ck_assert_str_eq(trl_cal_label(c, "zh-CN"), "中国办公时间");
    ck_assert_str_eq(trl_tz_name(trl_cal_tz(c)), "Asia/Shanghai");
    trl_cal_free(c);
    trl_cal_free(NULL);

    c = cal("{\"name\": \"plain\", \"timezone\": \"UTC\", \"week\": \"24x7\"}");
    ck_assert_str_eq(trl_cal_label(c, "zh-CN"), "plain");
    ck_assert_int_eq(trl_cal_add(c, 5, 7 * DAY_MS), 5 + 7 * DAY_MS);
    trl_cal_free(c);

    c = cal("{\"name\": \"en_only\", \"labels\": {\"en\": \"Office\"}, \"timezone\": "
            "\"Europe/Berlin\", \"week\": {\"mon\": [[\"00:00\", \"24:00\"]]}}");
    ck_assert_str_eq(trl_cal_label(c, "zh-CN"), "Office");
    trl_cal_free(c);
}
END_TEST

struct bad_def {
    const char *json;  /* definition */
    int code;          /* expected return */
    const char *field; /* a field error that must be present (NULL: none checked) */
};

#define WK   "\"week\": {\"mon\": [[\"09:00\", \"18:00\"]]}"
#define HEAD "{\"name\": \"x\", \"timezone\": \"Asia/Shanghai\", "

static const struct bad_def bad_defs[] = {
    {"{\"name\": \"x\",", TRL_EJSON, NULL},
    {HEAD WK "} trailing", TRL_EJSON, NULL},
    {"{\"name\": \"\xff\"}", TRL_EJSON, NULL},
    {"", TRL_EJSON, NULL},
    {"[]", TRL_EVALIDATION, ""},
    /* times */
    {HEAD "\"week\": {\"mon\": [[\"9:00\", \"12:00\"]]}}", TRL_EVALIDATION, "week.mon[0]"},
    {HEAD "\"week\": {\"mon\": [[\"09:00\", \"24:30\"]]}}", TRL_EVALIDATION, "week.mon[0]"},
    {HEAD "\"week\": {\"mon\": [[\"09:00\", \"12:60\"]]}}", TRL_EVALIDATION, "week.mon[0]"},
    {HEAD "\"week\": {\"mon\": [[\"09:00\", 12]]}}", TRL_EVALIDATION, "week.mon[0]"},
    {HEAD "\"week\": {\"mon\": [[\"09:00\"]]}}", TRL_EVALIDATION, "week.mon[0]"},
    {HEAD "\"week\": {\"tue\": [[\"12:00\", \"09:00\"]]}}", TRL_EVALIDATION, "week.tue[0]"},
    {HEAD "\"week\": {\"tue\": [[\"09:00\", \"09:00\"]]}}", TRL_EVALIDATION, "week.tue[0]"},
    /* overlapping and unsorted spans */
    {HEAD "\"week\": {\"mon\": [[\"09:00\", \"12:00\"], [\"11:00\", \"13:00\"]]}}", TRL_EVALIDATION,
     "week.mon[1]"},
    {HEAD "\"week\": {\"wed\": [[\"13:00\", \"14:00\"], [\"09:00\", \"10:00\"]]}}", TRL_EVALIDATION,
     "week.wed[1]"},
    {HEAD "\"week\": {\"mon\": [[\"01:00\", \"02:00\"], [\"03:00\", \"04:00\"], [\"05:00\", "
          "\"06:00\"], [\"07:00\", \"08:00\"], [\"09:00\", \"10:00\"], [\"11:00\", \"12:00\"], "
          "[\"13:00\", \"14:00\"], [\"15:00\", \"16:00\"], [\"17:00\", \"18:00\"]]}}",
     TRL_EVALIDATION, "week.mon"},
    {HEAD "\"week\": {\"mon\": \"09:00-18:00\"}}", TRL_EVALIDATION, "week.mon"},
    /* dates */
    {HEAD WK ", \"holidays\": [\"2026-01-01\", \"2026-02-30\"]}", TRL_EVALIDATION, "holidays[1]"},
    {HEAD WK ", \"holidays\": [\"1899-12-31\"]}", TRL_EVALIDATION, "holidays[0]"},
    {HEAD WK ", \"holidays\": [{\"from\": \"2026-10-07\", \"to\": \"2026-10-01\"}]}",
     TRL_EVALIDATION, "holidays[0].to"},
    {HEAD WK ", \"holidays\": [{\"from\": \"2026-10-07\"}]}", TRL_EVALIDATION, "holidays[0]"},
    {HEAD WK ", \"holidays\": [{\"date\": \"2026-10-07\", \"from\": \"2026-10-07\"}]}",
     TRL_EVALIDATION, "holidays[0]"},
    {HEAD WK ", \"holidays\": [{\"date\": \"2026/10/07\"}]}", TRL_EVALIDATION, "holidays[0].date"},
    {HEAD WK ", \"holidays\": [20261007]}", TRL_EVALIDATION, "holidays[0]"},
    {HEAD WK ", \"holidays\": [{\"date\": \"2026-10-07\", \"name\": 5}]}", TRL_EVALIDATION,
     "holidays[0].name"},
    {HEAD WK ", \"holidays\": \"2026-10-07\"}", TRL_EVALIDATION, "holidays"},
    {HEAD WK ", \"workdays\": [{\"date\": \"2026-13-01\"}]}", TRL_EVALIDATION, "workdays[0].date"},
    /* unknown keys */
    {HEAD WK ", \"weekk\": 1}", TRL_EVALIDATION, "weekk"},
    {HEAD "\"week\": {\"monday\": [[\"09:00\", \"18:00\"]]}}", TRL_EVALIDATION, "week.monday"},
    {HEAD WK ", \"holidays\": [{\"date\": \"2026-10-07\", \"why\": \"x\"}]}", TRL_EVALIDATION,
     "holidays[0].why"},
    {HEAD WK ", \"labels\": {\"fr\": \"Bureau\"}}", TRL_EVALIDATION, "labels.fr"},
    {HEAD WK ", " WK "}", TRL_EVALIDATION, "week"},
    /* zones */
    {"{\"name\": \"x\", \"timezone\": \"Mars/Olympus_Mons\", " WK "}", TRL_EVALIDATION, "timezone"},
    {"{\"name\": \"x\", \"timezone\": \"../../etc/passwd\", " WK "}", TRL_EVALIDATION, "timezone"},
    {"{\"name\": \"x\", " WK "}", TRL_EVALIDATION, "timezone"},
    /* names */
    {"{\"name\": \"Bad Name\", \"timezone\": \"UTC\", " WK "}", TRL_EVALIDATION, "name"},
    {"{\"timezone\": \"UTC\", " WK "}", TRL_EVALIDATION, "name"},
    /* no working time */
    {HEAD "\"week\": {}}", TRL_EVALIDATION, "week"},
    {HEAD "\"week\": {\"sat\": [], \"sun\": []}, \"holidays\": [\"2026-01-01\"]}", TRL_EVALIDATION,
     "week"},
    {HEAD "\"week\": \"24/7\"}", TRL_EVALIDATION, "week"},
    {HEAD "\"holidays\": []}", TRL_EVALIDATION, "week"},
    /* make-up days */
    {HEAD WK ", \"holidays\": [{\"from\": \"2026-10-01\", \"to\": \"2026-10-07\"}], "
             "\"workdays\": [\"2026-10-03\"]}",
     TRL_EVALIDATION, "workdays[0]"},
    {HEAD WK ", \"workdays\": [\"2026-10-10\", {\"date\": \"2026-10-10\"}]}", TRL_EVALIDATION,
     "workdays[1]"},
    {HEAD WK ", \"workdays\": [{\"date\": \"2026-10-10\", \"spans\": []}]}", TRL_EVALIDATION,
     "workdays[0].spans"},
    {HEAD WK ", \"workdays\": [{\"date\": \"2026-10-10\", \"spans\": [[\"18:00\", \"09:00\"]]}]}",
     TRL_EVALIDATION, "workdays[0].spans[0]"},
    {HEAD "\"week\": {\"sat\": [[\"09:00\", \"12:00\"]]}, \"workdays\": [\"2026-10-10\"]}",
     TRL_EVALIDATION, "workdays[0]"},
};

static bool has_ferr(const struct trl_diag *d, const char *field)
{
    for (size_t i = 0; i < d->nferrs; i++)
        if (strcmp(d->ferrs[i].field, field) == 0) return true;
    return false;
}

START_TEST(definition_errors_name_their_path)
{
    for (size_t i = 0; i < sizeof(bad_defs) / sizeof(bad_defs[0]); i++) {
        const struct bad_def *b = &bad_defs[i];
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_cal *c = (struct trl_cal *)1;
        int rc = trl_cal_parse(b->json, strlen(b->json), NULL, &c, &d);
        ck_assert_msg(rc == b->code, "case %zu (%s): %d, expected %d (%s)", i, b->json, rc, b->code,
                      d.message);
        ck_assert_ptr_null(c);
        ck_assert_str_ne(d.message, "");
        ck_assert_str_ne(d.message_zh, "");
        if (b->field) {
            ck_assert_msg(has_ferr(&d, b->field), "case %zu (%s): no error at %s; first: %s: %s", i,
                          b->json, b->field, d.nferrs ? d.ferrs[0].field : "-",
                          d.nferrs ? d.ferrs[0].detail : "-");
            for (size_t k = 0; k < d.nferrs; k++)
                ck_assert_str_eq(d.ferrs[k].code, "schema");
        }
        trl_diag_reset(&d);
    }
}
END_TEST

START_TEST(definition_errors_are_reported_together)
{
    const char *j = "{\"name\": \"X\", \"timezone\": \"Nowhere/Land\", \"week\": {\"mon\": "
                    "[[\"09:00\", \"25:00\"]], \"fri\": [[\"10:00\", \"11:00\"], [\"10:30\", "
                    "\"12:00\"]]}, \"holidays\": [\"2026-02-29\"], \"extra\": true}";
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cal *c = NULL;
    ck_assert_int_eq(trl_cal_parse(j, strlen(j), NULL, &c, &d), TRL_EVALIDATION);
    static const char *const fields[] = {"name",        "timezone",    "week.mon[0]",
                                         "week.fri[1]", "holidays[0]", "extra"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        ck_assert_msg(has_ferr(&d, fields[i]), "no error at %s", fields[i]);
    ck_assert_uint_eq(d.nferrs, 6);
    ck_assert_ptr_nonnull(strstr(d.message, "6 error(s)"));
    ck_assert_ptr_nonnull(strstr(d.message_zh, "6 处错误"));
    trl_diag_reset(&d);
}
END_TEST

START_TEST(definition_limits)
{
    /* 4096 entries pass, 4097 do not. */
    struct trl_buf b;
    for (int n = 4096; n <= 4097; n++) {
        trl_buf_init(&b);
        trl_buf_adds(&b, HEAD WK ", \"holidays\": [");
        for (int i = 0; i < n; i++)
            trl_buf_printf(&b, "%s\"%04d-01-01\"", i ? ", " : "", 2000 + i);
        trl_buf_adds(&b, "]}");
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_cal *c = NULL;
        int rc = trl_cal_parse(b.data, b.len, NULL, &c, &d);
        if (n == 4096) {
            ck_assert_msg(rc == 0, "%s", d.message);
            /* 2026-01-01 is a Thursday holiday in this calendar; 2026-01-05 a Monday. */
            ck_assert_int_eq(
                trl_cal_between(c, T("2026-01-01T00:00:00Z"), T("2026-01-06T00:00:00Z")),
                9 * HOUR_MS);
        } else {
            ck_assert_int_eq(rc, TRL_EVALIDATION);
            ck_assert(has_ferr(&d, "holidays"));
        }
        trl_cal_free(c);
        trl_diag_reset(&d);
        trl_buf_free(&b);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Counting working time
 */
struct add_case {
    const char *start;  /* RFC 3339 with offset */
    int64_t business;   /* ms */
    const char *expect; /* RFC 3339 with offset, or NULL for TRL_CAL_NEVER */
};

static void check_adds(struct trl_cal *c, const struct add_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char got[32];
        int64_t s = T(cases[i].start);
        int64_t want = cases[i].expect ? T(cases[i].expect) : TRL_CAL_NEVER;
        int64_t r = trl_cal_add(c, s, cases[i].business);
        ck_assert_msg(r == want, "%s: add(%s, %lld min) = %s, expected %s", trl_cal_name(c),
                      cases[i].start, (long long)(cases[i].business / MIN_MS), fmt(r, got),
                      cases[i].expect ? cases[i].expect : "NEVER");
        if (r != TRL_CAL_NEVER && cases[i].business > 0) {
            ck_assert_msg(trl_cal_between(c, s, r) == cases[i].business,
                          "%s: between(%s, add) = %lld", trl_cal_name(c), cases[i].start,
                          (long long)trl_cal_between(c, s, r));
        }
    }
}

START_TEST(lunch_weekend_holidays_and_make_up_days)
{
    struct trl_cal *c = cal(cn_office);
    static const struct add_case cases[] = {
        /* Lunch break: 11:00 + 2h = 1h before lunch, 1h after 13:30. */
        {"2026-09-14T11:00:00+08:00", 2 * HOUR_MS, "2026-09-14T14:30:00+08:00"},
        /* A duration that ends with the morning ends at 12:00, not 13:30. */
        {"2026-09-14T09:00:00+08:00", 3 * HOUR_MS, "2026-09-14T12:00:00+08:00"},
        {"2026-09-14T09:00:00+08:00", 3 * HOUR_MS + 1, "2026-09-14T13:30:00.001+08:00"},
        /* Start inside lunch, before work, after work. */
        {"2026-09-14T12:30:00+08:00", 30 * MIN_MS, "2026-09-14T14:00:00+08:00"},
        {"2026-09-14T06:00:00+08:00", 30 * MIN_MS, "2026-09-14T09:30:00+08:00"},
        {"2026-09-14T19:00:00+08:00", 30 * MIN_MS, "2026-09-15T09:30:00+08:00"},
        /* Exact to the millisecond. */
        {"2026-09-14T11:59:59.999+08:00", 2, "2026-09-14T13:30:00.001+08:00"},
        /* A whole day is 7.5 h; a week 37.5 h. */
        {"2026-09-14T09:00:00+08:00", 450 * MIN_MS, "2026-09-14T18:00:00+08:00"},
        {"2026-09-14T09:00:00+08:00", 75 * HOUR_MS / 2, "2026-09-18T18:00:00+08:00"},
        /* Weekend: Friday 17:00 + 2h -> Monday 10:00; Saturday start -> Monday. */
        {"2026-09-18T17:00:00+08:00", 2 * HOUR_MS, "2026-09-21T10:00:00+08:00"},
        {"2026-09-19T10:00:00+08:00", HOUR_MS, "2026-09-21T10:00:00+08:00"},
        /* Sunday 2026-09-27 is a make-up day with Monday's spans. */
        {"2026-09-26T10:00:00+08:00", HOUR_MS, "2026-09-27T10:00:00+08:00"},
        /* National Day: 10-01 .. 10-07 off; Saturday 10-10 worked. */
        {"2026-09-30T17:00:00+08:00", 2 * HOUR_MS, "2026-10-08T10:00:00+08:00"},
        {"2026-10-09T17:00:00+08:00", 2 * HOUR_MS, "2026-10-10T10:00:00+08:00"},
        {"2026-10-03T12:00:00+08:00", 30 * MIN_MS, "2026-10-08T09:30:00+08:00"},
        /* Zero: the start itself, even outside working time. */
        {"2026-10-03T12:00:00+08:00", 0, "2026-10-03T12:00:00+08:00"},
        {"2026-10-03T12:00:00+08:00", -5, "2026-10-03T12:00:00+08:00"},
        /* Weeks ahead: 150 h from Monday 2026-09-07 09:00 = three weeks (112.5 h), make-up
         * Sunday 09-27 (120 h), 09-28..09-30 (142.5 h), 10-01..10-07 off, Thursday 10-08. */
        {"2026-09-07T09:00:00+08:00", 150 * HOUR_MS, "2026-10-08T18:00:00+08:00"},
        /* Far ahead and beyond the end of time. */
        {"9999-12-31T17:00:00+08:00", 2 * HOUR_MS, NULL},
        {"2026-01-01T00:00:00Z", INT64_MAX, NULL},
    };
    check_adds(c, cases, sizeof(cases) / sizeof(cases[0]));
    /* between */
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-09-18T17:00:00+08:00"), T("2026-09-21T10:00:00+08:00")),
        2 * HOUR_MS);
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-09-30T18:00:00+08:00"), T("2026-10-08T09:00:00+08:00")), 0);
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-10-08T09:00:00+08:00"), T("2026-09-30T18:00:00+08:00")), 0);
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-10-10T00:00:00+08:00"), T("2026-10-11T00:00:00+08:00")),
        450 * MIN_MS);
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-01-01T00:00:00+08:00"), T("2027-01-01T00:00:00+08:00")),
        /* 261 weekdays - 5 National Day weekdays + 2 make-up days */
        258 * 450 * MIN_MS);
    /* next_working */
    ck_assert_int_eq(trl_cal_next_working(c, T("2026-09-19T10:00:00+08:00")),
                     T("2026-09-21T09:00:00+08:00"));
    ck_assert_int_eq(trl_cal_next_working(c, T("2026-09-21T10:15:00+08:00")),
                     T("2026-09-21T10:15:00+08:00"));
    ck_assert_int_eq(trl_cal_next_working(c, T("2026-09-21T12:00:00+08:00")),
                     T("2026-09-21T13:30:00+08:00"));
    ck_assert_int_eq(trl_cal_next_working(c, T("2026-10-01T00:00:00+08:00")),
                     T("2026-10-08T09:00:00+08:00"));
    trl_cal_free(c);
}
END_TEST

START_TEST(dst_change_days_count_real_time)
{
    /* Every day 01:00-04:00 local: two hours on a spring-forward day, four on a fall-back day. */
    static const char *const zones[] = {"America/New_York", "Europe/Berlin"};
    static const char *const days[][3] = {
        /* spring, fall, an ordinary day */
        {"2026-03-08", "2026-11-01", "2026-06-07"},
        {"2026-03-29", "2026-10-25", "2026-06-07"},
    };
    for (int z = 0; z < 2; z++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"name\": \"night\", \"timezone\": \"%s\", \"week\": {\"mon\": [[\"01:00\", "
                 "\"04:00\"]], \"tue\": [[\"01:00\", \"04:00\"]], \"wed\": [[\"01:00\", "
                 "\"04:00\"]], \"thu\": [[\"01:00\", \"04:00\"]], \"fri\": [[\"01:00\", "
                 "\"04:00\"]], \"sat\": [[\"01:00\", \"04:00\"]], \"sun\": [[\"01:00\", "
                 "\"04:00\"]]}}",
                 zones[z]);
        struct trl_cal *c = cal(json);
        const struct trl_tz *tz = trl_cal_tz(c);
        static const int64_t hours[] = {2, 4, 3};
        for (int k = 0; k < 3; k++) {
            int32_t day;
            trl_date_parse(days[z][k], 10, &day);
            int64_t a = trl_tz_to_utc(tz, (int64_t)day * 86400) * 1000;
            int64_t b = trl_tz_to_utc(tz, (int64_t)(day + 1) * 86400) * 1000;
            ck_assert_msg(trl_cal_between(c, a, b) == hours[k] * HOUR_MS, "%s %s: %lld min",
                          zones[z], days[z][k], (long long)(trl_cal_between(c, a, b) / MIN_MS));
        }
        trl_cal_free(c);
    }
    /* The same through add, with exact instants. New York 2026-03-08: 01:00 EST is 06:00Z; the
     * clock jumps from 02:00 EST to 03:00 EDT at 07:00Z; 04:00 EDT is 08:00Z. */
    struct trl_cal *c = cal("{\"name\": \"ny\", \"timezone\": \"America/New_York\", \"week\": "
                            "{\"sun\": [[\"01:00\", \"04:00\"]]}}");
    static const struct add_case ny[] = {
        {"2026-03-08T06:00:00Z", HOUR_MS, "2026-03-08T07:00:00Z"},
        {"2026-03-08T06:00:00Z", 2 * HOUR_MS, "2026-03-08T08:00:00Z"},
        {"2026-03-08T06:00:00Z", 2 * HOUR_MS + 1, "2026-03-15T05:00:00.001Z"},
        /* Fall back 2026-11-01: 01:00 EDT = 05:00Z ... 04:00 EST = 09:00Z. */
        {"2026-11-01T05:00:00Z", 4 * HOUR_MS, "2026-11-01T09:00:00Z"},
        {"2026-11-01T06:30:00Z", HOUR_MS, "2026-11-01T07:30:00Z"}, /* in the second 01:xx */
        /* The footer years: 2090-03-12 and 2090-11-05. */
        {"2090-03-12T06:00:00Z", 2 * HOUR_MS, "2090-03-12T08:00:00Z"},
        {"2090-11-05T05:00:00Z", 4 * HOUR_MS, "2090-11-05T09:00:00Z"},
    };
    check_adds(c, ny, sizeof(ny) / sizeof(ny[0]));
    trl_cal_free(c);

    /* An office week across the Berlin change: Friday 16:00 CET + 2h = Monday 10:00 CEST. */
    c = cal("{\"name\": \"berlin_office\", \"timezone\": \"Europe/Berlin\", \"week\": {\"mon\": "
            "[[\"09:00\", \"17:00\"]], \"tue\": [[\"09:00\", \"17:00\"]], \"wed\": [[\"09:00\", "
            "\"17:00\"]], \"thu\": [[\"09:00\", \"17:00\"]], \"fri\": [[\"09:00\", "
            "\"17:00\"]]}}");
    static const struct add_case be[] = {
        {"2026-03-27T16:00:00+01:00", 2 * HOUR_MS, "2026-03-30T10:00:00+02:00"},
        {"2026-10-23T16:00:00+02:00", 2 * HOUR_MS, "2026-10-26T10:00:00+01:00"},
        {"2026-03-02T09:00:00+01:00", 80 * HOUR_MS, "2026-03-13T17:00:00+01:00"},
        /* Ten weeks across both changes of 2026. */
        {"2026-03-16T09:00:00+01:00", 400 * HOUR_MS, "2026-05-22T17:00:00+02:00"},
        {"2026-10-12T09:00:00+02:00", 120 * HOUR_MS, "2026-10-30T17:00:00+01:00"},
    };
    check_adds(c, be, sizeof(be) / sizeof(be[0]));
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-03-27T09:00:00+01:00"), T("2026-03-30T09:00:00+02:00")),
        8 * HOUR_MS);
    trl_cal_free(c);

    /* Shanghai has no DST: the same office week counts the same all year. */
    c = cal("{\"name\": \"sh\", \"timezone\": \"Asia/Shanghai\", \"week\": {\"mon\": "
            "[[\"09:00\", \"17:00\"]], \"tue\": [[\"09:00\", \"17:00\"]], \"wed\": [[\"09:00\", "
            "\"17:00\"]], \"thu\": [[\"09:00\", \"17:00\"]], \"fri\": [[\"09:00\", "
            "\"17:00\"]]}}");
    static const struct add_case sh[] = {
        {"2026-03-27T16:00:00+08:00", 2 * HOUR_MS, "2026-03-30T10:00:00+08:00"},
        {"2026-10-23T16:00:00+08:00", 2 * HOUR_MS, "2026-10-26T10:00:00+08:00"},
        {"2090-10-27T16:00:00+08:00", 2 * HOUR_MS, "2090-10-30T10:00:00+08:00"},
    };
    check_adds(c, sh, sizeof(sh) / sizeof(sh[0]));
    for (int w = 0; w < 52; w++) {
        int64_t a = T("2026-01-05T00:00:00+08:00") + w * 7 * DAY_MS;
        LOOP_ASSERT(trl_cal_between(c, a, a + 7 * DAY_MS) == 40 * HOUR_MS, "week %d", w);
    }
    trl_cal_free(c);
}
END_TEST

START_TEST(plain_time_calendars)
{
    struct trl_cal *c = NULL;
    ck_assert_int_eq(trl_cal_24x7(&c), 0);
    ck_assert_str_eq(trl_cal_name(c), "24x7");
    ck_assert_str_eq(trl_tz_name(trl_cal_tz(c)), "UTC");
    rng_state = 0x5eed0004;
    for (int i = 0; i < 2000; i++) {
        int64_t s = rnd_in(T("1950-01-01T00:00:00Z"), T("2200-01-01T00:00:00Z"));
        int64_t x = rnd_in(1, 400 * DAY_MS);
        LOOP_ASSERT(trl_cal_add(c, s, x) == s + x, "24x7 add");
        LOOP_ASSERT(trl_cal_between(c, s, s + x) == x, "24x7 between");
    }
    /* Clamped to the supported range. */
    ck_assert_int_eq(trl_cal_between(c, TRL_CAL_MIN_MS - DAY_MS, TRL_CAL_MIN_MS + DAY_MS), DAY_MS);
    ck_assert_int_eq(trl_cal_between(c, INT64_MIN, INT64_MAX), TRL_CAL_MAX_MS - TRL_CAL_MIN_MS);
    ck_assert_int_eq(trl_cal_add(c, TRL_CAL_MAX_MS - 10, 10), TRL_CAL_MAX_MS);
    ck_assert_int_eq(trl_cal_add(c, TRL_CAL_MAX_MS - 10, 11), TRL_CAL_NEVER);
    ck_assert_int_eq(trl_cal_add(c, INT64_MAX, 1), TRL_CAL_NEVER);
    ck_assert_int_eq(trl_cal_add(c, INT64_MIN, 1), TRL_CAL_MIN_MS + 1);
    trl_cal_free(c);

    /* 24x7 in a DST zone with a holiday: calendar time, minus the holiday's real length. */
    c = cal("{\"name\": \"ny_24x7\", \"timezone\": \"America/New_York\", \"week\": \"24x7\", "
            "\"holidays\": [\"2026-03-08\"]}");
    ck_assert_int_eq(
        trl_cal_between(c, T("2026-03-07T00:00:00-05:00"), T("2026-03-10T00:00:00-04:00")),
        (3 * 24 - 1 - 23) * HOUR_MS);
    ck_assert_int_eq(trl_cal_add(c, T("2026-03-07T23:00:00-05:00"), 2 * HOUR_MS),
                     T("2026-03-09T01:00:00-04:00"));
    trl_cal_free(c);

    /* Only make-up days: the count runs out. */
    c = cal("{\"name\": \"sparse\", \"timezone\": \"Europe/Berlin\", \"week\": {}, "
            "\"workdays\": [{\"date\": \"2026-03-29\", \"spans\": [[\"01:00\", \"04:00\"]]}, "
            "{\"date\": \"2031-06-02\", \"spans\": [[\"09:00\", \"10:00\"]]}]}");
    static const struct add_case sp[] = {
        {"2026-01-01T00:00:00Z", HOUR_MS, "2026-03-29T01:00:00Z"},
        {"2026-01-01T00:00:00Z", 2 * HOUR_MS, "2026-03-29T02:00:00Z"},
        {"2026-01-01T00:00:00Z", 3 * HOUR_MS, "2031-06-02T08:00:00Z"},
        {"2026-01-01T00:00:00Z", 3 * HOUR_MS + 1, NULL},
        {"2031-06-03T00:00:00Z", 1, NULL},
    };
    check_adds(c, sp, sizeof(sp) / sizeof(sp[0]));
    ck_assert_int_eq(trl_cal_between(c, TRL_CAL_MIN_MS, TRL_CAL_MAX_MS), 3 * HOUR_MS);
    ck_assert_int_eq(trl_cal_next_working(c, T("2031-06-02T09:00:00Z")), TRL_CAL_NEVER);
    trl_cal_free(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Properties and a minute-by-minute reference
 */

/* A calendar written down twice: as data for the reference below and as JSON for the module. */
struct rspan {
    const char *a, *b; /* "HH:MM" */
};
struct rday {
    struct rspan s[4];
};
struct rcal {
    const char *name;
    const char *tz;
    struct rday week[7]; /* Monday first */
    const char *hol[6][2];
    struct {
        const char *date;
        struct rday spans; /* no spans: Monday's */
    } work[4];
};

#define OFFICE                                                                                     \
    {                                                                                              \
        {                                                                                          \
            {"08:00", "12:00"},                                                                    \
            {                                                                                      \
                "13:00", "17:00"                                                                   \
            }                                                                                      \
        }                                                                                          \
    }
static const struct rcal rcals[] = {
    {"cn",
     "Asia/Shanghai",
     {{{{"09:00", "12:00"}, {"13:30", "18:00"}}},
      {{{"09:00", "12:00"}, {"13:30", "18:00"}}},
      {{{"09:00", "12:00"}, {"13:30", "18:00"}}},
      {{{"09:00", "12:00"}, {"13:30", "18:00"}}},
      {{{"09:00", "12:00"}, {"13:30", "18:00"}}}},
     {{"2026-01-01", "2026-01-01"},
      {"2026-02-15", "2026-02-23"},
      {"2026-10-01", "2026-10-07"},
      {"2026-04-04", "2026-04-06"},
      {"2027-01-01", "2027-01-03"}},
     {{"2026-02-14", {{{NULL, NULL}}}},
      {"2026-02-28", {{{NULL, NULL}}}},
      {"2026-09-27", {{{"10:00", "16:00"}}}},
      {"2026-10-10", {{{NULL, NULL}}}}}},
    {"ny",
     "America/New_York",
     {OFFICE,
      OFFICE,
      OFFICE,
      OFFICE,
      OFFICE,
      {{{"01:00", "04:00"}}},
      {{{"01:00", "03:00"}, {"22:00", "24:00"}}}},
     {{"2026-07-03", "2026-07-03"},
      {"2026-11-26", "2026-11-27"},
      {"2026-12-25", "2026-12-25"},
      {"2090-12-25", "2090-12-26"}},
     {{"2026-11-01", {{{"00:30", "02:30"}}}}, {"2090-11-05", {{{"00:00", "24:00"}}}}}},
    {"be",
     "Europe/Berlin",
     {{{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}},
      {{{"00:00", "02:30"}, {"02:45", "03:15"}, {"23:00", "24:00"}}}},
     {{"2026-12-24", "2026-12-26"}, {"2026-03-30", "2026-04-12"}},
     {{NULL, {{{NULL, NULL}}}}}},
};
#define NRCALS (int)(sizeof(rcals) / sizeof(rcals[0]))

static int hhmm(const char *s)
{
    return ((s[0] - '0') * 10 + (s[1] - '0')) * 60 + (s[3] - '0') * 10 + (s[4] - '0');
}

static void rday_json(struct trl_buf *b, const struct rday *d)
{
    trl_buf_addc(b, '[');
    for (int i = 0; i < 4 && d->s[i].a; i++)
        trl_buf_printf(b, "%s[\"%s\", \"%s\"]", i ? ", " : "", d->s[i].a, d->s[i].b);
    trl_buf_addc(b, ']');
}

static struct trl_cal *rcal_build(const struct rcal *r)
{
    static const char *const dn[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    struct trl_buf b;
    trl_buf_init(&b);
    trl_buf_printf(&b, "{\"name\": \"%s\", \"timezone\": \"%s\", \"week\": {", r->name, r->tz);
    for (int i = 0; i < 7; i++) {
        trl_buf_printf(&b, "%s\"%s\": ", i ? ", " : "", dn[i]);
        rday_json(&b, &r->week[i]);
    }
    trl_buf_adds(&b, "}, \"holidays\": [");
    for (int i = 0; i < 6 && r->hol[i][0]; i++)
        trl_buf_printf(&b, "%s{\"from\": \"%s\", \"to\": \"%s\"}", i ? ", " : "", r->hol[i][0],
                       r->hol[i][1]);
    trl_buf_adds(&b, "], \"workdays\": [");
    for (int i = 0; i < 4 && r->work[i].date; i++) {
        trl_buf_printf(&b, "%s{\"date\": \"%s\"", i ? ", " : "", r->work[i].date);
        if (r->work[i].spans.s[0].a) {
            trl_buf_adds(&b, ", \"spans\": ");
            rday_json(&b, &r->work[i].spans);
        }
        trl_buf_addc(&b, '}');
    }
    trl_buf_adds(&b, "]}");
    struct trl_cal *c = cal(b.data);
    trl_buf_free(&b);
    return c;
}

static int32_t day_of(const char *s)
{
    int32_t d;
    trl_date_parse(s, 10, &d);
    return d;
}

static bool in_day(const struct rday *d, int minute)
{
    for (int i = 0; i < 4 && d->s[i].a; i++)
        if (minute >= hhmm(d->s[i].a) && minute < hhmm(d->s[i].b)) return true;
    return false;
}

/* The reference: is the minute starting at t (ms, minute-aligned) working time? Its local
 * wall-clock time must fall in a span of its local date. */
static bool ref_working(const struct rcal *r, const struct trl_tz *tz, int64_t t)
{
    int64_t local = t / 1000 + trl_tz_offset(tz, t / 1000);
    int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int minute = (int)((local - day * 86400) / 60);
    for (int i = 0; i < 4 && r->work[i].date; i++) {
        if (day_of(r->work[i].date) == day)
            return in_day(r->work[i].spans.s[0].a ? &r->work[i].spans : &r->week[0], minute);
    }
    for (int i = 0; i < 6 && r->hol[i][0]; i++)
        if (day >= day_of(r->hol[i][0]) && day <= day_of(r->hol[i][1])) return false;
    int wd = (int)(((day + 3) % 7 + 7) % 7);
    return in_day(&r->week[wd], minute);
}

START_TEST(add_matches_minute_by_minute_reference)
{
    rng_state = 0x5eed0005;
    for (int ci = 0; ci < NRCALS; ci++) {
        const struct rcal *r = &rcals[ci];
        struct trl_cal *c = rcal_build(r);
        const struct trl_tz *tz = trl_cal_tz(c);
        for (int i = 0; i < 120; i++) {
            /* Starts in 2026 (table years), a few in 2090 (footer years), minute-aligned. */
            int64_t base = i % 6 == 5 ? T("2090-01-01T00:00:00Z") : T("2026-01-01T00:00:00Z");
            int64_t s = base + rnd_in(0, 365 * 24 * 60 - 1) * MIN_MS;
            /* Up to about five working weeks, often small. */
            int64_t x = (i % 3 ? rnd_in(1, 12000) : rnd_in(1, 600)) * MIN_MS;
            int64_t t = s, rem = x, limit = s + 120 * DAY_MS;
            while (rem > 0 && t < limit) {
                if (ref_working(r, tz, t)) rem -= MIN_MS;
                t += MIN_MS;
            }
            int64_t got = trl_cal_add(c, s, x);
            char a[32], b[32], e[32];
            if (rem > 0)
                LOOP_ASSERT(got > limit, "%s: add(%s, %lld min) = %s, reference: after %s", r->name,
                            fmt(s, a), (long long)(x / MIN_MS), fmt(got, b), fmt(limit, e));
            else
                LOOP_ASSERT(got == t, "%s: add(%s, %lld min) = %s, reference %s", r->name,
                            fmt(s, a), (long long)(x / MIN_MS), fmt(got, b), fmt(t, e));
        }
        /* between over random minute-aligned windows of up to ten days */
        for (int i = 0; i < 60; i++) {
            int64_t a = T("2026-01-01T00:00:00Z") + rnd_in(0, 365 * 24 * 60 - 1) * MIN_MS;
            int64_t b = a + rnd_in(0, 10 * 24 * 60) * MIN_MS;
            int64_t want = 0;
            for (int64_t t = a; t < b; t += MIN_MS)
                want += ref_working(r, tz, t) ? MIN_MS : 0;
            char sa[32];
            LOOP_ASSERT(trl_cal_between(c, a, b) == want,
                        "%s: between(%s, +%lld min) = %lld min, "
                        "reference %lld",
                        r->name, fmt(a, sa), (long long)((b - a) / MIN_MS),
                        (long long)(trl_cal_between(c, a, b) / MIN_MS), (long long)(want / MIN_MS));
        }
        trl_cal_free(c);
    }
}
END_TEST

START_TEST(add_and_between_agree)
{
    rng_state = 0x5eed0006;
    for (int ci = 0; ci < NRCALS; ci++) {
        struct trl_cal *c = rcal_build(&rcals[ci]);
        for (int i = 0; i < 1500; i++) {
            int64_t base = i % 4 == 3 ? T("2089-06-01T00:00:00Z") : T("2025-06-01T00:00:00Z");
            int64_t s = base + rnd_in(0, 2 * 365 * DAY_MS);
            int64_t x = i % 2 ? rnd_in(1, 8 * HOUR_MS) : rnd_in(1, 300 * HOUR_MS);
            int64_t y = rnd_in(0, 20 * HOUR_MS);
            int64_t r = trl_cal_add(c, s, x);
            char sa[32];
            LOOP_ASSERT(r != TRL_CAL_NEVER && r > s, "%s: add(%s, %lld) = %lld", rcals[ci].name,
                        fmt(s, sa), (long long)x, (long long)r);
            LOOP_ASSERT(trl_cal_between(c, s, r) == x, "%s: between(s, add(s, %lld)) = %lld",
                        rcals[ci].name, (long long)x, (long long)trl_cal_between(c, s, r));
            /* earliest: one ms less is one ms short */
            LOOP_ASSERT(trl_cal_between(c, s, r - 1) == x - 1, "%s: not the earliest instant",
                        rcals[ci].name);
            LOOP_ASSERT(trl_cal_add(c, s, x + y) >= r, "%s: add is not monotonic", rcals[ci].name);
            /* additivity of between */
            int64_t m = s + rnd_in(0, r - s);
            LOOP_ASSERT(trl_cal_between(c, s, m) + trl_cal_between(c, m, r) == x,
                        "%s: between is not additive", rcals[ci].name);
            /* add composes: add(add(s, x), y) == add(s, x + y) for y > 0 */
            if (y > 0)
                LOOP_ASSERT(trl_cal_add(c, r, y) == trl_cal_add(c, s, x + y),
                            "%s: add does not compose", rcals[ci].name);
        }
        trl_cal_free(c);
    }
}
END_TEST

static Suite *calendar_suite(void)
{
    Suite *s = suite_create("calendar");
    TCase *tc = tcase_create("zones");
    tcase_add_test(tc, zone_names_are_validated);
    tcase_add_test(tc, utc_is_built_in);
    tcase_add_test(tc, offsets_around_dst_changes);
    tcase_add_test(tc, offset_span_brackets_the_instant);
    tcase_add_test(tc, to_utc_in_gaps_and_overlaps);
    tcase_add_test(tc, offsets_agree_with_glibc);
    suite_add_tcase(s, tc);
    tc = tcase_create("tzif_files");
    tcase_add_checked_fixture(tc, tzdir_setup, tzdir_teardown);
    tcase_add_test(tc, tzif_version_1_uses_its_table);
    tcase_add_test(tc, tzif_footer_rules);
    tcase_add_test(tc, tzif_rule_starts_at_the_last_transition);
    tcase_add_test(tc, tzif_damage_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("definitions");
    tcase_add_test(tc, definition_parses);
    tcase_add_test(tc, definition_errors_name_their_path);
    tcase_add_test(tc, definition_errors_are_reported_together);
    tcase_add_test(tc, definition_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("counting");
    tcase_add_test(tc, lunch_weekend_holidays_and_make_up_days);
    tcase_add_test(tc, dst_change_days_count_real_time);
    tcase_add_test(tc, plain_time_calendars);
    suite_add_tcase(s, tc);
    tc = tcase_create("properties");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, add_matches_minute_by_minute_reference);
    tcase_add_test(tc, add_and_between_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(calendar_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
