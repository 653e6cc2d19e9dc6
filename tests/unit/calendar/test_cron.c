/*
 * test_cron.c — cron expressions: every accepted form (checked by firing times and by
 * equivalent spellings), every refusal with the field it names, next firing times computed by
 * hand in UTC, Asia/Shanghai, America/New_York, Europe/Berlin and Australia/Lord_Howe (both DST
 * changes: a skipped local time fires once after the gap, a repeated one only the first time),
 * the Vixie rule for day-of-month and day-of-week, month ends and 29 February, expressions that
 * never match, the end of the calendar range, randomized comparisons with reference searches
 * (UTC and UTC+8 from gmtime_r; DST zones minute by minute from trl_tz_offset) and speed.
 *
 * The zones come from /usr/share/zoneinfo (Debian package tzdata, see scripts/deps).
 */
#include "calendar/calendar.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Check's ck_assert_* writes to its parent on every success: loops use this instead. */
#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

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

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
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
static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static struct trl_cron *cron(const char *expr)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cron *c = NULL;
    int rc = trl_cron_parse(expr, &c, &d);
    ck_assert_msg(rc == 0, "'%s' refused: %s", expr, d.message);
    ck_assert_ptr_nonnull(c);
    trl_diag_reset(&d);
    return c;
}

/* Checks that expr, from `after`, fires at want[0], then want[1], ... (NULL-terminated). */
static void expect_seq(const char *expr, const struct trl_tz *tz, const char *after,
                       const char *const *want)
{
    struct trl_cron *c = cron(expr);
    int64_t t = after ? T(after) : INT64_MIN;
    for (size_t i = 0; want[i]; i++) {
        int64_t w = strcmp(want[i], "NEVER") == 0 ? TRL_CAL_NEVER : T(want[i]);
        int64_t got = trl_cron_next(c, tz, t);
        char b1[32], b2[32], b3[32];
        ck_assert_msg(got == w, "'%s' in %s after %s: got %s, want %s", expr,
                      tz ? trl_tz_name(tz) : "UTC", after ? fmt(t, b1) : "-inf", fmt(got, b2),
                      fmt(w, b3));
        t = got;
    }
    trl_cron_free(c);
}
#define SEQ(expr, tz, after, ...)                                                                  \
    expect_seq(expr, tz, after, (const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------------------------------------
 * Syntax
 */
START_TEST(accepted_forms_fire_as_written)
{
    /* numbers, lists, ranges, steps on '*' and on ranges, mixed lists */
    SEQ("*/15 * * * *", NULL, "2026-01-01T00:07:30.500Z", "2026-01-01T00:15:00Z",
        "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z");
    SEQ("5,10-12,*/30 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z",
        "2026-01-01T00:10:00Z", "2026-01-01T00:11:00Z", "2026-01-01T00:12:00Z",
        "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:05:00Z");
    SEQ("1-10/3 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
        "2026-01-01T00:04:00Z", "2026-01-01T00:07:00Z", "2026-01-01T00:10:00Z",
        "2026-01-01T01:01:00Z");
    SEQ("0 22-23,0-1/1 * * *", NULL, "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z",
        "2026-01-01T22:00:00Z", "2026-01-01T23:00:00Z", "2026-01-02T00:00:00Z");
    /* month names (any case) and month steps */
    SEQ("0 0 1 JAN-DEC/3 *", NULL, "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z",
        "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z");
    SEQ("0 12 1 jan,Jul *", NULL, "2026-01-01T12:00:00Z", "2026-07-01T12:00:00Z",
        "2027-01-01T12:00:00Z");
    /* weekday names, 0 and 7 both Sunday */
    SEQ("0 9 * * MON-FRI", NULL, "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z",
        "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z", "2026-01-08T09:00:00Z",
        "2026-01-09T09:00:00Z", "2026-01-12T09:00:00Z");
    SEQ("0 0 * * 7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z");
    SEQ("0 0 * * 5-7", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z",
        "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z");
    SEQ("0 0 * * sAt", NULL, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z");
    /* macros */
    SEQ("@yearly", NULL, "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z");
    SEQ("@annually", NULL, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    SEQ("@monthly", NULL, "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z");
    SEQ("@weekly", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z");
    SEQ("@daily", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    SEQ("@midnight", NULL, "2026-01-01T23:59:59.999Z", "2026-01-02T00:00:00Z");
    SEQ("@hourly", NULL, "2026-01-01T10:59:59.999Z", "2026-01-01T11:00:00Z",
        "2026-01-01T12:00:00Z");
    SEQ("  @Daily\n", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    /* white space around and between fields */
    SEQ(" \t0  12\t* *   *\n", NULL, "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z");
    /* the largest steps */
    SEQ("*/60 */24 */31 */12 *", NULL, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    SEQ("0 0 * * */7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z");
}
END_TEST

/* Spellings that must fire at exactly the same instants. */
START_TEST(equivalent_spellings_fire_alike)
{
    static const char *const groups[][5] = {
        {"0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN", "@weekly"},
        {"0 0 * jan-mar *", "0 0 * 1,2,3 *", "0 0 * 1-3 *", "0 0 * JAN,feb,Mar *", NULL},
        {"*/20 * * * *", "0,20,40 * * * *", "0-59/20 * * * *", "0-40/20 * * * *", NULL},
        {"10-50/20 * * * *", "10,30,50 * * * *", "10-59/20 * * * *", NULL, NULL},
        {"@yearly", "@annually", "0 0 1 1 *", "0 0 1 JAN *", "@YEARLY"},
        {"@daily", "@midnight", "0 0 * * *", "0 0 */1 * *", "0 0 1-31 1-12 0-7"},
        {"@monthly", "0 0 1 * *", "0 0 1 */1 *", NULL, NULL},
        {"@hourly", "0 * * * *", "0 0-23 * * *", "00 */1 * * *", NULL},
        {"0 0 * * 5-7", "0 0 * * 0,5,6", "0 0 * * FRI-SAT,SUN", "0 0 * * 0,5-6,7", NULL},
        {"0 0 * * */2", "0 0 * * 0,2,4,6", "0 0 * * SUN,TUE,THU,SAT", NULL, NULL},
        {"* * * * *", "0-59 0-23 1-31 1-12 0-6", "*/1 */1 */1 */1 */1", NULL, NULL},
        {"0 9 * * MON-FRI", "0 9 * * 1-5", "0 9 * * mon,tue,wed,thu,fri", "0 09 * * 01-05", NULL},
    };
    struct trl_tz *ny = zone("America/New_York");
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        struct trl_cron *ref = cron(groups[g][0]);
        for (size_t i = 1; i < 5 && groups[g][i]; i++) {
            struct trl_cron *c = cron(groups[g][i]);
            for (int z = 0; z < 2; z++) {
                const struct trl_tz *tz = z ? ny : NULL;
                int64_t a = T("2026-01-01T00:00:00Z"), b = a;
                for (int k = 0; k < 300; k++) {
                    a = trl_cron_next(ref, tz, a);
                    b = trl_cron_next(c, tz, b);
                    char b1[32], b2[32];
                    LOOP_ASSERT(a == b, "'%s' fires at %s, '%s' at %s", groups[g][0], fmt(a, b1),
                                groups[g][i], fmt(b, b2));
                }
            }
            trl_cron_free(c);
        }
        trl_cron_free(ref);
    }
    trl_tz_free(ny);
}
END_TEST

START_TEST(refusals_name_the_field_and_the_text)
{
    char long_expr[260];
    memset(long_expr, ' ', sizeof(long_expr));
    memcpy(long_expr, "0 0 * * *", 9);
    long_expr[201] = 0; /* 201 bytes */
    const struct {
        const char *expr;
        int field; /* 0: the whole expression */
        const char *says;
    } cases[] = {
        {"60 * * * *", 1, "60 is out of range 0-59"},
        {"* 24 * * *", 2, "24 is out of range 0-23"},
        {"* * 0 * *", 3, "0 is out of range 1-31"},
        {"* * 32 * *", 3, "32 is out of range 1-31"},
        {"* * * 0 *", 4, "0 is out of range 1-12"},
        {"* * * 13 *", 4, "13 is out of range 1-12"},
        {"* * * * 8", 5, "8 is out of range 0-7"},
        {"99999999999999999999 * * * *", 1, "99999999999999999999 is out of range 0-59"},
        {"1-60 * * * *", 1, "60 is out of range 0-59"},
        {"0 0 1,2,40 * *", 3, "40 is out of range 1-31"},
        {"* * ? * *", 3, "'?' in '?' is not supported (Quartz syntax"},
        {"* * * * ?", 5, "'?' in '?' is not supported"},
        {"* * L * *", 3, "'L' in 'L' is not supported"},
        {"* * LW * *", 3, "in 'LW' is not supported"},
        {"* * 15W * *", 3, "'W' in '15W' is not supported"},
        {"* * * * 5L", 5, "'L' in '5L' is not supported"},
        {"* * * * 5#3", 5, "'#' in '5#3' is not supported"},
        {"* * * * MON#2", 5, "'#' in 'MON#2' is not supported"},
        {"1,,2 * * * *", 1, "empty list element in '1,,2'"},
        {"1, * * * *", 1, "empty list element in '1,'"},
        {",1 * * * *", 1, "empty list element in ',1'"},
        {"* * * , *", 4, "empty list element in ','"},
        {"*/0 * * * *", 1, "step 0 in '*/0' is out of range 1-60"},
        {"* 0-23/0 * * *", 2, "step 0 in '0-23/0' is out of range 1-24"},
        {"*/61 * * * *", 1, "step 61 in '*/61' is out of range 1-60"},
        {"* * */32 * *", 3, "step 32"},
        {"* * * */13 *", 4, "step 13"},
        {"* * * * */8", 5, "step 8 in '*/8' is out of range 1-7"},
        {"10-5 * * * *", 1, "range '10-5' is reversed (10 > 5)"},
        {"* * * DEC-JAN *", 4, "range 'DEC-JAN' is reversed (12 > 1)"},
        {"* * * * SAT-SUN", 5, "range 'SAT-SUN' is reversed (6 > 0); Sunday may be written 7"},
        {"5/15 * * * *", 1, "'5/15': a step needs a range"},
        {"* * * JAN/2 *", 4, "a step needs a range"},
        {"* * * FOO *", 4, "'FOO' is not a month name (JAN-DEC)"},
        {"* * * JANUARY *", 4, "'JANUARY' is not a month name"},
        {"* * * MON *", 4, "'MON' is not a month name"},
        {"* * * * FUNDAY", 5, "'FUNDAY' is not a weekday name (SUN-SAT)"},
        {"* * * * JAN", 5, "'JAN' is not a weekday name"},
        {"MON * * * *", 1, "'MON' is not a number"},
        {"* * JAN * *", 3, "'JAN' is not a number"},
        {"1- * * * *", 1, "'1-' is missing a number"},
        {"*/ * * * *", 1, "'*/' is missing a number"},
        {"* 1-2/ * * *", 2, "'1-2/' is missing a number"},
        {"1-2-3 * * * *", 1, "unexpected '-' in '1-2-3'"},
        {"** * * * *", 1, "unexpected '*' in '**'"},
        {"*-5 * * * *", 1, "unexpected '-' in '*-5'"},
        {"-1 * * * *", 1, "unexpected '-' in '-1'"},
        {"*/2/3 * * * *", 1, "unexpected '/' in '*/2/3'"},
        {"0x10 * * * *", 1, "unexpected 'x' in '0x10'"},
        {"1.5 * * * *", 1, "unexpected '.' in '1.5'"},
        {"+1 * * * *", 1, "unexpected '+' in '+1'"},
        {"*/-1 * * * *", 1, "unexpected '-' in '*/-1'"},
        {"* * * * \xE5\x91\xA8\xE4\xB8\x80", 5,
         "unexpected '\\xE5' in '\\xE5\\x91\\xA8\\xE4\\xB8\\x80'"},
        {"", 0, "cron expression is empty"},
        {" \t\n ", 0, "cron expression is empty"},
        {"*", 0, "has 1 field; expected 5 (minute hour day-of-month month day-of-week)"},
        {"* * * *", 0, "has 4 fields; expected 5"},
        {"0 * * * * *", 0,
         "has 6 fields; expected 5 (minute hour day-of-month month "
         "day-of-week); seconds and year fields are not supported"},
        {"0 0 12 * * ? 2026", 0, "has 7 fields"},
        {"* * * * * * * *", 0,
         "has 8 fields; expected 5 (minute hour day-of-month month "
         "day-of-week)"},
        {"@reboot", 0, "unknown cron macro '@reboot'; expected @yearly"},
        {"@daily 5", 0, "unknown cron macro '@daily 5'"},
        {"@", 0, "unknown cron macro '@'"},
        {"@every 5m", 0, "unknown cron macro"},
        {"0 @daily * * *", 2, "unexpected '@' in '@daily'"},
        {long_expr, 0, "cron expression is 201 bytes; at most 200 are allowed"},
    };
    static const char *const names[] = {"",      "minute",     "hour", "day-of-month",
                                        "month", "day-of-week"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_cron *c = (struct trl_cron *)1;
        int rc = trl_cron_parse(cases[i].expr, &c, &d);
        ck_assert_msg(rc == TRL_EVALIDATION, "'%s' gave %d", cases[i].expr, rc);
        ck_assert_ptr_null(c);
        ck_assert_int_eq(d.code, TRL_EVALIDATION);
        ck_assert_msg(strstr(d.message, cases[i].says), "'%s': message '%s' lacks '%s'",
                      cases[i].expr, d.message, cases[i].says);
        ck_assert_str_ne(d.message_zh, "");
        for (const char *p = d.message; *p; p++)
            ck_assert_msg((unsigned char)*p < 0x80, "'%s': message not ASCII", cases[i].expr);
        if (cases[i].field) {
            char want[64], want_zh[64];
            snprintf(want, sizeof(want), "cron field %d (%s): ", cases[i].field,
                     names[cases[i].field]);
            snprintf(want_zh, sizeof(want_zh), "第 %d 个字段", cases[i].field);
            ck_assert_msg(strncmp(d.message, want, strlen(want)) == 0,
                          "'%s': message '%s' does not start with '%s'", cases[i].expr, d.message,
                          want);
            ck_assert_msg(strstr(d.message_zh, want_zh), "'%s': '%s' lacks '%s'", cases[i].expr,
                          d.message_zh, want_zh);
        } else {
            ck_assert_msg(strncmp(d.message, "cron expression", 15) == 0 ||
                              strncmp(d.message, "unknown cron macro", 18) == 0,
                          "'%s': %s", cases[i].expr, d.message);
        }
        trl_diag_reset(&d);
    }

    /* the example of the API comment, word for word, and its Chinese */
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cron *c = NULL;
    ck_assert_int_eq(trl_cron_parse("0 24 * * *", &c, &d), TRL_EVALIDATION);
    ck_assert_str_eq(d.message, "cron field 2 (hour): 24 is out of range 0-23");
    ck_assert_str_eq(d.message_zh, "cron 表达式第 2 个字段(小时):24 超出范围 0-23");
    trl_diag_reset(&d);

    /* NULL expression; NULL diagnostics */
    ck_assert_int_eq(trl_cron_parse(NULL, &c, &d), TRL_EVALIDATION);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(d.message, "cron expression is missing");
    trl_diag_reset(&d);
    ck_assert_int_eq(trl_cron_parse("61 * * * *", &c, NULL), TRL_EVALIDATION);
    ck_assert_ptr_null(c);

    /* 200 bytes are fine */
    long_expr[200] = 0;
    trl_cron_free(cron(long_expr));
    trl_cron_free(NULL);
    ck_assert(trl_cron_next(NULL, NULL, 0) == TRL_CAL_NEVER);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Next firing
 */
START_TEST(vixie_day_of_month_or_day_of_week)
{
    /* both restricted: the 13th OR a Friday */
    SEQ("0 0 13 * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
        "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z");
    /* February 29 OR any Monday of February */
    SEQ("0 0 29 2 1", NULL, "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
        "2026-02-16T00:00:00Z", "2026-02-23T00:00:00Z", "2027-02-01T00:00:00Z");
    SEQ("0 0 29 2 1", NULL, "2028-02-26T00:00:00Z", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z",
        "2029-02-05T00:00:00Z");
    /* 30 February never exists, but the Mondays of February do */
    SEQ("0 0 30 2 MON", NULL, "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z");
    /* a field starting with '*' makes it AND: days 1, 11, 21, 31 that are Mondays */
    SEQ("0 0 */10 * MON", NULL, "2026-01-01T00:00:00Z", "2026-05-11T00:00:00Z",
        "2026-06-01T00:00:00Z");
    /* 29 February that is a Sunday: 2032, 2060, 2088 */
    SEQ("0 0 29 2 */7", NULL, "2026-01-01T00:00:00Z", "2032-02-29T00:00:00Z",
        "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z");
    /* day-of-week '*': the day-of-month alone */
    SEQ("0 0 13 * *", NULL, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z");
    /* day-of-month '*': the weekday alone */
    SEQ("0 0 * * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
        "2026-01-09T00:00:00Z");
}
END_TEST

START_TEST(month_ends_and_leap_days)
{
    SEQ("0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z",
        "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z",
        "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z");
    SEQ("0 0 30 * *", NULL, "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z");
    SEQ("0 0 29 2 *", NULL, "2027-01-01T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z");
    /* 2100 is not a leap year, 2000 is */
    SEQ("0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
    SEQ("0 0 29 2 *", NULL, "1999-01-01T00:00:00Z", "2000-02-29T00:00:00Z");
    SEQ("59 23 28-29 2 *", NULL, "2027-02-28T23:59:00Z", "2028-02-28T23:59:00Z",
        "2028-02-29T23:59:00Z", "2029-02-28T23:59:00Z");
    SEQ("59 23 31 12 *", NULL, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z");
    /* from the middle of a matching day and hour */
    SEQ("30 12 15 6 *", NULL, "2026-06-15T12:30:00Z", "2027-06-15T12:30:00Z");
    SEQ("30 12 15 6 *", NULL, "2026-06-15T12:29:59.999Z", "2026-06-15T12:30:00Z");
}
END_TEST

START_TEST(never_and_the_end_of_the_range)
{
    static const char *const never[] = {
        "0 0 30 2 *",   "0 0 31 2,4,6,9,11 *", "* * 31 FEB *",   "0 0 30,31 2 *",
        "0 0 30 2 */7", "0 0 31 APR-JUN/2 *",  "* * 30-31 feb *"};
    struct trl_tz *ny = zone("America/New_York");
    double t0 = now_s();
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        struct trl_cron *c = cron(never[i]);
        for (int k = 0; k < 10000; k++) {
            int64_t at = TRL_CAL_MIN_MS + (int64_t)k * 700 * DAY_MS;
            LOOP_ASSERT(trl_cron_next(c, k % 2 ? ny : NULL, at) == TRL_CAL_NEVER, "'%s' fired",
                        never[i]);
        }
        trl_cron_free(c);
    }
    ck_assert_msg(now_s() - t0 < 2.0, "never-matching expressions are slow");
    trl_tz_free(ny);

    /* nothing at or after 10000-01-01T00:00Z */
    SEQ("0 0 29 2 *", NULL, "9996-02-28T00:00:00Z", "9996-02-29T00:00:00Z", "NEVER");
    SEQ("* * * * *", NULL, "9999-12-31T23:58:30Z", "9999-12-31T23:59:00Z", "NEVER");
    SEQ("0 0 1 1 *", NULL, "9999-06-01T00:00:00Z", "NEVER");
    struct trl_tz *sh = zone("Asia/Shanghai");
    /* 10000-01-01 00:00 in Shanghai is before the end in UTC */
    SEQ("0 0 1 1 *", sh, "9999-06-01T00:00:00Z", "9999-12-31T16:00:00Z", "NEVER");
    SEQ("0 8 1 1 *", sh, "9999-06-01T00:00:00Z", "NEVER");
    struct trl_cron *c = cron("* * * * *");
    ck_assert(trl_cron_next(c, NULL, TRL_CAL_MAX_MS) == TRL_CAL_NEVER);
    ck_assert(trl_cron_next(c, NULL, INT64_MAX) == TRL_CAL_NEVER);
    ck_assert(trl_cron_next(c, NULL, TRL_CAL_MAX_MS - 1) == TRL_CAL_NEVER);
    /* before 1900 counts from 1900-01-01T00:00Z */
    ck_assert(trl_cron_next(c, NULL, INT64_MIN) == TRL_CAL_MIN_MS);
    ck_assert(trl_cron_next(c, sh, INT64_MIN) == TRL_CAL_MIN_MS);
    ck_assert(trl_cron_next(c, NULL, TRL_CAL_MIN_MS) == TRL_CAL_MIN_MS + MIN_MS);
    trl_cron_free(c);
    SEQ("0 0 1 1 *", NULL, NULL, "1900-01-01T00:00:00Z", "1901-01-01T00:00:00Z");
    /* negative instants: floor, not truncation */
    SEQ("* * * * *", NULL, "1969-12-31T23:59:30Z", "1970-01-01T00:00:00Z");
    SEQ("* * * * *", NULL, "1969-12-31T23:58:00Z", "1969-12-31T23:59:00Z");
    trl_tz_free(sh);
}
END_TEST

START_TEST(shanghai_and_berlin)
{
    struct trl_tz *sh = zone("Asia/Shanghai");
    SEQ("0 9 * * *", sh, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-02T01:00:00Z");
    SEQ("30 23 31 12 *", sh, "2026-01-01T00:00:00Z", "2026-12-31T15:30:00Z",
        "2027-12-31T15:30:00Z");
    /* Monday 00:00 local is Sunday 16:00Z */
    SEQ("0 0 * * MON", sh, "2026-01-04T16:00:00Z", "2026-01-11T16:00:00Z");
    SEQ("0 0 1 * *", sh, "2026-01-31T15:59:00Z", "2026-01-31T16:00:00Z", "2026-02-28T16:00:00Z");
    trl_tz_free(sh);

    struct trl_tz *be = zone("Europe/Berlin");
    SEQ("0 9 * * MON-FRI", be, "2026-01-02T12:00:00Z", "2026-01-05T08:00:00Z");
    SEQ("0 9 * * MON-FRI", be, "2026-07-03T12:00:00Z", "2026-07-06T07:00:00Z");
    /* 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:30 fires at 03:00 CEST */
    SEQ("30 2 * * *", be, "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z");
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 fires at 02:30 CEST only */
    SEQ("30 2 * * *", be, "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z");
    SEQ("30 2 * * *", be, "2026-10-25T00:45:00Z", "2026-10-26T01:30:00Z");
    SEQ("*/20 2 25 10 *", be, "2026-10-25T00:00:00Z", "2026-10-25T00:20:00Z",
        "2026-10-25T00:40:00Z", "2027-10-25T00:00:00Z");
    trl_tz_free(be);
}
END_TEST

START_TEST(new_york_dst_changes)
{
    struct trl_tz *ny = zone("America/New_York");
    /* standard and summer time */
    SEQ("0 9 * * *", ny, "2026-01-01T00:00:00Z", "2026-01-01T14:00:00Z");
    SEQ("0 9 * * *", ny, "2026-07-01T00:00:00Z", "2026-07-01T13:00:00Z");

    /* 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z; 02:00-02:59 does not exist */
    SEQ("30 2 * * *", ny, "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z");
    SEQ("0 2 * * *", ny, "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z");
    SEQ("59 2 * * *", ny, "2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z");
    SEQ("15 3 * * *", ny, "2026-03-08T00:00:00Z", "2026-03-08T07:15:00Z");
    /* several skipped times fire once; 03:00 itself is the same instant */
    SEQ("*/30 * * * *", ny, "2026-03-08T06:00:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z",
        "2026-03-08T07:30:00Z");
    SEQ("0 * * * *", ny, "2026-03-08T05:30:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z",
        "2026-03-08T08:00:00Z");
    /* a yearly job on the missing hour (2027 springs forward on 14 March) */
    SEQ("0 2 8 3 *", ny, "2026-01-01T00:00:00Z", "2026-03-08T07:00:00Z", "2027-03-08T07:00:00Z");
    SEQ("0 2 14 3 *", ny, "2027-01-01T00:00:00Z", "2027-03-14T07:00:00Z", "2028-03-14T06:00:00Z");

    /* 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00Z; 01:00-01:59 happens twice */
    SEQ("30 1 * * *", ny, "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z");
    SEQ("30 1 * * *", ny, "2026-11-01T05:45:00Z", "2026-11-02T06:30:00Z");
    SEQ("30 1 * * *", ny, "2026-11-01T06:15:00Z", "2026-11-02T06:30:00Z");
    SEQ("30 1 * * *", ny, "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z");
    SEQ("0 1 * * *", ny, "2026-11-01T00:00:00Z", "2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z");
    SEQ("*/30 * * * *", ny, "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z",
        "2026-11-01T07:30:00Z");
    SEQ("0 2 * * *", ny, "2026-10-31T12:00:00Z", "2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z");
    SEQ("59 0 * * *", ny, "2026-10-31T12:00:00Z", "2026-11-01T04:59:00Z");
    trl_tz_free(ny);

    /* Lord Howe Island moves by half an hour: 02:00-02:29 is skipped on 2026-10-04 (at
     * 15:30Z), 01:30-01:59 repeats on 2026-04-05 (from 15:00Z) */
    struct trl_tz *lh = zone("Australia/Lord_Howe");
    SEQ("15 2 * * *", lh, "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z");
    SEQ("45 1 * * *", lh, "2026-04-04T00:00:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z");
    trl_tz_free(lh);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Randomized comparison with reference searches
 */

/* A random expression and the sets it stands for, built side by side (not by the parser). */
struct gen {
    char text[256];
    uint64_t bits[5]; /* minute, hour, day of month, month, day of week (bit 7: Sunday too) */
    bool dom_star, dow_star;
};

static const int g_lo[5] = {0, 0, 1, 1, 0}, g_hi[5] = {59, 23, 31, 12, 7},
                 g_step[5] = {60, 24, 31, 12, 7};
static const char *const g_month[] = {"jan", "FEB", "Mar", "APR", "may", "JUN",
                                      "jul", "AUG", "sep", "OCT", "nov", "Dec"};
static const char *const g_day[] = {"SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"};

static int gen_value(int f, int v, char *out)
{
    if (f == 3 && rnd() % 3 == 0) return sprintf(out, "%s", g_month[v - 1]);
    if (f == 4 && v < 7 && rnd() % 3 == 0) return sprintf(out, "%s", g_day[v]);
    return sprintf(out, "%d", v);
}

/* Appends one list item of field f to out; sets its values in *bits. `sparse` favours single
 * values over '*'. */
static int gen_item(int f, bool sparse, char *out, uint64_t *bits)
{
    int lo = g_lo[f], hi = g_hi[f], kind = (int)(rnd() % (sparse ? 10 : 6)), n = 0;
    int a = lo, b = hi, step = 1;
    if (kind >= 5) kind = 2; /* sparse: mostly single values */
    switch (kind) {
    case 0:
        n = sprintf(out, "*");
        break;
    case 1:
        step = (int)rnd_in(1, g_step[f]);
        n = sprintf(out, "*/%d", step);
        break;
    case 2:
        a = b = (int)rnd_in(lo, hi);
        if (f == 1 && rnd() % 2) a = b = (int)rnd_in(0, 3); /* hours near the DST changes */
        n = gen_value(f, a, out);
        break;
    default:
        a = (int)rnd_in(lo, hi);
        b = (int)rnd_in(a, hi);
        n = gen_value(f, a, out);
        out[n++] = '-';
        n += gen_value(f, b, out + n);
        if (kind == 4) {
            step = (int)rnd_in(1, g_step[f]);
            n += sprintf(out + n, "/%d", step);
        }
        break;
    }
    for (int v = a; v <= b; v += step)
        *bits |= 1ULL << v;
    return n;
}

/* dense: months and days of month always '*', so most expressions fire within days. */
static void gen_expr(struct gen *g, bool dense)
{
    int n = 0;
    memset(g, 0, sizeof(*g));
    for (int f = 0; f < 5; f++) {
        if (f) g->text[n++] = ' ';
        int start = n;
        if (dense && (f == 2 || f == 3 || (f == 4 && rnd() % 2))) {
            n += sprintf(g->text + n, "*");
            g->bits[f] = ~0ULL;
        } else {
            int items = rnd() % 10 < 7 ? 1 : rnd() % 3 ? 2 : 3;
            for (int i = 0; i < items; i++) {
                if (i) g->text[n++] = ',';
                n += gen_item(f, f >= 2 && !dense, g->text + n, &g->bits[f]);
            }
        }
        if (f == 2) g->dom_star = g->text[start] == '*';
        if (f == 4) g->dow_star = g->text[start] == '*';
    }
    g->text[n] = 0;
}

static bool ref_day(const struct gen *g, const struct tm *tm)
{
    if (!(g->bits[3] >> (tm->tm_mon + 1) & 1)) return false;
    bool dm = g->bits[2] >> tm->tm_mday & 1;
    bool wm = (g->bits[4] >> tm->tm_wday & 1) || (tm->tm_wday == 0 && (g->bits[4] >> 7 & 1));
    return g->dom_star || g->dow_star ? dm && wm : dm || wm;
}

static bool ref_minute(const struct gen *g, int64_t local_min)
{
    time_t lt = (time_t)(local_min * 60);
    struct tm tm;
    gmtime_r(&lt, &tm);
    return ref_day(g, &tm) && (g->bits[1] >> tm.tm_hour & 1) && (g->bits[0] >> tm.tm_min & 1);
}

/* The first whole UTC minute after after_ms and up to limit_s whose local time (UTC + off_s)
 * matches, or TRL_CAL_NEVER. Looks at every minute of every matching hour of every matching day
 * (gmtime_r decides); a day or an hour that does not match is passed over whole. */
static int64_t ref_next_fixed(const struct gen *g, int32_t off_s, int64_t after_ms, int64_t limit_s)
{
    int64_t u = floor_div(after_ms, MIN_MS) * 60 + 60;
    while (u <= limit_s) {
        time_t lt = (time_t)(u + off_s);
        struct tm tm;
        gmtime_r(&lt, &tm);
        int into_day = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
        if (!ref_day(g, &tm))
            u += 86400 - into_day;
        else if (!(g->bits[1] >> tm.tm_hour & 1))
            u += 3600 - (tm.tm_min * 60 + tm.tm_sec);
        else if (!(g->bits[0] >> tm.tm_min & 1))
            u += 60;
        else
            return u * 1000;
    }
    return TRL_CAL_NEVER;
}

static int64_t local_minute(const struct trl_tz *tz, int64_t u)
{
    return floor_div(u + trl_tz_offset(tz, u), 60);
}

/* The DST rules stated minute by minute: walk UTC minutes up to limit_s keeping the latest local
 * minute seen; a minute whose local time is not later than that (fall-back repeat) never fires;
 * one that comes after skipped local minutes (spring-forward gap) fires if it or any skipped
 * minute matches. */
static int64_t ref_next_zone(const struct gen *g, const struct trl_tz *tz, int64_t after_ms,
                             int64_t limit_s)
{
    int64_t u = floor_div(after_ms, MIN_MS) * 60 + 60, seen = INT64_MIN;
    for (int64_t v = u - 6 * 3600; v < u; v += 60) {
        int64_t l = local_minute(tz, v);
        if (l > seen) seen = l;
    }
    for (; u <= limit_s; u += 60) {
        int64_t l = local_minute(tz, u);
        if (l <= seen) continue;
        bool fire = ref_minute(g, l);
        for (int64_t k = seen + 1; k < l && !fire; k++)
            fire = ref_minute(g, k);
        seen = l;
        if (fire) return u * 1000;
    }
    return TRL_CAL_NEVER;
}

/* Random instants, some on whole minutes (so `after` itself may match). */
static int64_t rnd_instant(int64_t lo_ms, int64_t hi_ms)
{
    int64_t t = rnd_in(lo_ms, hi_ms);
    return rnd() % 3 == 0 ? floor_div(t, MIN_MS) * MIN_MS : t;
}

static void compare_fixed(const char *zone_name, int32_t off_s, uint64_t seed)
{
    struct trl_tz *tz = zone_name ? zone(zone_name) : NULL;
    rng_state = seed;
    int found = 0, beyond = 0;
    for (int i = 0; i < 2000; i++) {
        struct gen g;
        gen_expr(&g, false);
        struct trl_cron *c = cron(g.text);
        int64_t after = rnd_instant(T("1995-01-01T00:00:00Z"), T("2090-01-01T00:00:00Z"));
        int64_t limit_s = after / 1000 + 400 * 86400;
        for (int step = 0; step < 3; step++) {
            int64_t want = ref_next_fixed(&g, off_s, after, limit_s);
            int64_t got = trl_cron_next(c, tz, after);
            char b1[32], b2[32], b3[32];
            if (want != TRL_CAL_NEVER) {
                LOOP_ASSERT(got == want, "%s '%s' after %s: got %s, want %s",
                            zone_name ? zone_name : "UTC", g.text, fmt(after, b1), fmt(got, b2),
                            fmt(want, b3));
                found++;
            } else {
                LOOP_ASSERT(got > limit_s * 1000, "%s '%s' after %s: got %s, none before %s",
                            zone_name ? zone_name : "UTC", g.text, fmt(after, b1), fmt(got, b2),
                            fmt(limit_s * 1000, b3));
                beyond++;
                break;
            }
            after = got;
        }
        trl_cron_free(c);
    }
    /* the generator makes both kinds */
    ck_assert_int_gt(found, 1000);
    ck_assert_int_gt(beyond, 20);
    trl_tz_free(tz);
}

START_TEST(utc_matches_reference)
{
    compare_fixed(NULL, 0, 0x9e3779b97f4a7c15u);
}
END_TEST

START_TEST(shanghai_matches_utc_plus_8_reference)
{
    compare_fixed("Asia/Shanghai", 8 * 3600, 0x2545f4914f6cdd1du);
}
END_TEST

START_TEST(dst_zones_match_minute_by_minute_reference)
{
    static const char *const zones[] = {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
                                        "America/Santiago"};
    rng_state = 0x5851f42d4c957f2du;
    for (size_t zi = 0; zi < sizeof(zones) / sizeof(zones[0]); zi++) {
        struct trl_tz *tz = zone(zones[zi]);
        int found = 0;
        for (int i = 0; i < 300; i++) {
            /* a start within two days of a DST change */
            int64_t from, until;
            trl_tz_offset_span(tz,
                               rnd_in(T("2000-01-01T00:00:00Z"), T("2090-01-01T00:00:00Z")) / 1000,
                               &from, &until);
            int64_t after = rnd_instant(until * 1000 - 2 * DAY_MS, until * 1000 + DAY_MS);
            int64_t limit_s = after / 1000 + 4 * 86400;
            struct gen g;
            gen_expr(&g, true);
            struct trl_cron *c = cron(g.text);
            for (int step = 0; step < 4; step++) {
                int64_t want = ref_next_zone(&g, tz, after, limit_s);
                int64_t got = trl_cron_next(c, tz, after);
                char b1[32], b2[32], b3[32];
                if (want == TRL_CAL_NEVER) {
                    LOOP_ASSERT(got > limit_s * 1000, "%s '%s' after %s: got %s, none before %s",
                                zones[zi], g.text, fmt(after, b1), fmt(got, b2),
                                fmt(limit_s * 1000, b3));
                    break;
                }
                LOOP_ASSERT(got == want, "%s '%s' after %s: got %s, want %s", zones[zi], g.text,
                            fmt(after, b1), fmt(got, b2), fmt(want, b3));
                found++;
                after = got;
            }
            trl_cron_free(c);
        }
        ck_assert_int_gt(found, 300);
        trl_tz_free(tz);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Speed
 */
START_TEST(rare_expressions_are_fast)
{
    static const char *const rare[] = {"0 0 29 2 */7", "0 0 29 2 *", "59 23 31 12 SUN-SAT",
                                       "0 0 13 * FRI"};
    struct trl_tz *ny = zone("America/New_York");
    rng_state = 0x853c49e6748fea9bu;
    for (size_t i = 0; i < sizeof(rare) / sizeof(rare[0]); i++) {
        struct trl_cron *c = cron(rare[i]);
        double t0 = now_s();
        for (int k = 0; k < 10000; k++) {
            int64_t after = rnd_in(T("2000-01-01T00:00:00Z"), T("2090-01-01T00:00:00Z"));
            int64_t got = trl_cron_next(c, ny, after);
            LOOP_ASSERT(got > after && got != TRL_CAL_NEVER, "'%s' gave no answer", rare[i]);
        }
        double dt = now_s() - t0;
        trl_cron_free(c);
        ck_assert_msg(dt < 2.0, "10000 calls of '%s' in New York took %.3f s", rare[i], dt);
    }
    trl_tz_free(ny);
}
END_TEST

static Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("syntax");
    tcase_add_test(tc, accepted_forms_fire_as_written);
    tcase_add_test(tc, equivalent_spellings_fire_alike);
    tcase_add_test(tc, refusals_name_the_field_and_the_text);
    suite_add_tcase(s, tc);
    tc = tcase_create("next");
    tcase_add_test(tc, vixie_day_of_month_or_day_of_week);
    tcase_add_test(tc, month_ends_and_leap_days);
    tcase_add_test(tc, never_and_the_end_of_the_range);
    tcase_add_test(tc, shanghai_and_berlin);
    tcase_add_test(tc, new_york_dst_changes);
    suite_add_tcase(s, tc);
    tc = tcase_create("properties");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, utc_matches_reference);
    tcase_add_test(tc, shanghai_matches_utc_plus_8_reference);
    tcase_add_test(tc, dst_zones_match_minute_by_minute_reference);
    suite_add_tcase(s, tc);
    tc = tcase_create("speed");
    tcase_set_tags(tc, "timing"); /* not under scripts/valgrind */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rare_expressions_are_fast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cron_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
