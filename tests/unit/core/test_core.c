/*
 * test_core.c — the core vocabulary: UTF-8, exact decimals, dates and RFC 3339 datetimes,
 * buffers and JSON string escaping, varints and big-endian integers, Accept-Language, the error
 * table, diagnostics, arenas and small parsers.
 */
#include "core/core.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check's ck_assert_* writes a mark to its parent process on every success: too slow inside
 * loops of many thousand iterations, so loops test with this and only report failures. */
#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * UTF-8
 */
struct utf8_case {
    const char *bytes; /* input */
    size_t n;          /* length (inputs may hold NUL) */
    bool valid;        /* expected verdict */
    const char *what;  /* for the failure message */
};

#define U(lit, ok, what)                                                                           \
    {                                                                                              \
        lit, sizeof(lit) - 1, ok, what                                                             \
    }

static const struct utf8_case utf8_cases[] = {
    U("", true, "empty"),
    U("plain ascii", true, "ascii"),
    U("a\0b", true, "embedded NUL is a valid code point"),
    U("\x7f", true, "DEL"),
    U("\xc3\xa9", true, "U+00E9 two bytes"),
    U("\xc2\x80", true, "U+0080 smallest two-byte"),
    U("\xdf\xbf", true, "U+07FF largest two-byte"),
    U("\xe0\xa0\x80", true, "U+0800 smallest three-byte"),
    U("\xe4\xb8\xad\xe6\x96\x87", true, "中文"),
    U("\xed\x9f\xbf", true, "U+D7FF just below the surrogates"),
    U("\xee\x80\x80", true, "U+E000 just above the surrogates"),
    U("\xef\xbf\xbf", true, "U+FFFF"),
    U("\xf0\x90\x80\x80", true, "U+10000 smallest four-byte"),
    U("\xf0\x9f\x98\x80", true, "U+1F600 emoji"),
    U("\xf4\x8f\xbf\xbf", true, "U+10FFFF the last code point"),
    /* Overlongs. */
    U("\xc0\x80", false, "overlong NUL"),
    U("\xc0\xaf", false, "overlong '/'"),
    U("\xc1\xbf", false, "overlong U+007F"),
    U("\xe0\x80\x80", false, "overlong three-byte NUL"),
    U("\xe0\x9f\xbf", false, "overlong U+07FF in three bytes"),
    U("\xf0\x80\x80\x80", false, "overlong four-byte NUL"),
    U("\xf0\x8f\xbf\xbf", false, "overlong U+FFFF in four bytes"),
    /* Surrogates. */
    U("\xed\xa0\x80", false, "U+D800 high surrogate"),
    U("\xed\xaf\xbf", false, "U+DBFF"),
    U("\xed\xb0\x80", false, "U+DC00 low surrogate"),
    U("\xed\xbf\xbf", false, "U+DFFF"),
    U("\xed\xa0\xbd\xed\xb8\x80", false, "CESU-8 surrogate pair"),
    /* Beyond U+10FFFF and bytes that never occur. */
    U("\xf4\x90\x80\x80", false, "U+110000"),
    U("\xf5\x80\x80\x80", false, "F5 lead byte"),
    U("\xf7\xbf\xbf\xbf", false, "U+1FFFFF"),
    U("\xf8\x88\x80\x80\x80", false, "five-byte form"),
    U("\xfe", false, "FE"),
    U("\xff", false, "FF"),
    /* Stray and missing continuation bytes. */
    U("\x80", false, "lone continuation"),
    U("a\xbf", false, "continuation after ascii"),
    U("\xc3", false, "truncated two-byte"),
    U("\xe4\xb8", false, "truncated three-byte"),
    U("\xf0\x9f\x98", false, "truncated four-byte"),
    U("ok\xe4", false, "truncated at the end"),
    U("\xc3\x28", false, "bad continuation in two-byte"),
    U("\xe4\x28\xad", false, "bad second byte in three-byte"),
    U("\xe4\xb8\x28", false, "bad third byte in three-byte"),
    U("\xf0\x9f\x28\x80", false, "bad third byte in four-byte"),
    U("\xf0\x9f\x98\x28", false, "bad fourth byte in four-byte"),
    U("\xc3\xa9\xc3", false, "valid then truncated"),
};

START_TEST(utf8_validation_table)
{
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const struct utf8_case *c = &utf8_cases[i];
        ck_assert_msg(trl_utf8_valid(c->bytes, c->n) == c->valid, "%s: expected %s", c->what,
                      c->valid ? "valid" : "invalid");
    }
}
END_TEST

START_TEST(utf8_validation_never_reads_past_n)
{
    /* A valid sequence cut short by n is refused even though the bytes after n complete it. */
    const char *s = "\xe4\xb8\xad";
    ck_assert(!trl_utf8_valid(s, 1));
    ck_assert(!trl_utf8_valid(s, 2));
    ck_assert(trl_utf8_valid(s, 3));
    ck_assert(trl_utf8_valid(s, 0));
}
END_TEST

START_TEST(utf8_len_counts_code_points)
{
    ck_assert_uint_eq(trl_utf8_len("", 0), 0);
    ck_assert_uint_eq(trl_utf8_len("abc", 3), 3);
    const char *zh = "中文abc";
    ck_assert_uint_eq(strlen(zh), 9);
    ck_assert_uint_eq(trl_utf8_len(zh, strlen(zh)), 5);
    const char *mixed = "Spring 促销 Campaign 😀";
    ck_assert_uint_eq(trl_utf8_len(mixed, strlen(mixed)), 20);
    ck_assert_uint_eq(trl_utf8_len("\xc3\xa9", 2), 1);
    ck_assert_uint_eq(trl_utf8_len("a\0b", 3), 3);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Decimals
 */
static int64_t dec_ok(const char *s, int scale)
{
    int64_t v = 0;
    const char *why = "unset";
    int rc = trl_decimal_parse(s, strlen(s), scale, &v, &why);
    ck_assert_msg(rc == 0, "\"%s\" at scale %d refused (%s)", s, scale, why ? why : "-");
    ck_assert_ptr_null(why);
    return v;
}

static void dec_bad(const char *s, int scale, const char *want_why)
{
    int64_t v = 12345;
    const char *why = NULL;
    int rc = trl_decimal_parse(s, strlen(s), scale, &v, &why);
    ck_assert_msg(rc == TRL_EINVAL, "\"%s\" at scale %d accepted as %lld", s, scale, (long long)v);
    ck_assert_msg(why && strcmp(why, want_why) == 0, "\"%s\": why %s, want %s", s,
                  why ? why : "NULL", want_why);
    ck_assert_int_eq(v, 12345); /* untouched on failure */
}

START_TEST(decimal_parse_scales_exactly)
{
    ck_assert_int_eq(dec_ok("12.30", 2), 1230);
    ck_assert_int_eq(dec_ok("12.3", 2), 1230);
    ck_assert_int_eq(dec_ok("12", 2), 1200);
    ck_assert_int_eq(dec_ok("5", 0), 5);
    ck_assert_int_eq(dec_ok("0", 2), 0);
    ck_assert_int_eq(dec_ok("0.01", 2), 1);
    ck_assert_int_eq(dec_ok("-12.30", 2), -1230);
    ck_assert_int_eq(dec_ok("-0.05", 2), -5);
    ck_assert_int_eq(dec_ok("+1.5", 2), 150);
    ck_assert_int_eq(dec_ok("007.5", 1), 75);
    ck_assert_int_eq(dec_ok("1.123456789", 9), 1123456789);
    ck_assert_int_eq(dec_ok("50000", 2), 5000000);
}
END_TEST

START_TEST(decimal_trailing_zeros_beyond_scale_are_harmless)
{
    ck_assert_int_eq(dec_ok("1.500", 2), 150);
    ck_assert_int_eq(dec_ok("1.50000000000000000000", 2), 150);
    ck_assert_int_eq(dec_ok("12.0", 0), 12);
    ck_assert_int_eq(dec_ok("-3.000", 1), -30);
}
END_TEST

START_TEST(decimal_too_many_decimals_is_scale)
{
    dec_bad("1.505", 2, "scale");
    dec_bad("0.001", 2, "scale");
    dec_bad("12.5", 0, "scale");
    dec_bad("-0.0000000001", 9, "scale");
    dec_bad("1.5010", 2, "scale");
}
END_TEST

START_TEST(decimal_overflow_is_range)
{
    /* INT64_MAX = 9223372036854775807 */
    ck_assert_int_eq(dec_ok("92233720368547758.07", 2), INT64_MAX);
    ck_assert_int_eq(dec_ok("-92233720368547758.08", 2), INT64_MIN);
    ck_assert_int_eq(dec_ok("9223372036854775807", 0), INT64_MAX);
    dec_bad("92233720368547758.08", 2, "range");
    dec_bad("-92233720368547758.09", 2, "range");
    dec_bad("9223372036854775808", 0, "range");
    dec_bad("99999999999999999999999999999999999999999999", 0, "range");
    dec_bad("10000000000", 9, "range");
    dec_bad("-99999999999999999999999999999999999999999999.5", 1, "range");
}
END_TEST

START_TEST(decimal_refuses_non_decimal_text)
{
    static const char *bad[] = {"",      "-",    "+",   ".",        "1.", ".5",  "1e3",
                                "1E3",   "0x10", "1,5", " 1",       "1 ", "--1", "+-1",
                                "1.2.3", "abc",  "NaN", "Infinity", "١٢"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        dec_bad(bad[i], 2, "type");
}
END_TEST

START_TEST(decimal_format_has_exactly_scale_digits)
{
    char out[32];
    trl_decimal_format(1230, 2, out);
    ck_assert_str_eq(out, "12.30");
    trl_decimal_format(-5, 2, out);
    ck_assert_str_eq(out, "-0.05");
    trl_decimal_format(0, 2, out);
    ck_assert_str_eq(out, "0.00");
    trl_decimal_format(7, 0, out);
    ck_assert_str_eq(out, "7");
    trl_decimal_format(-7, 0, out);
    ck_assert_str_eq(out, "-7");
    trl_decimal_format(1, 9, out);
    ck_assert_str_eq(out, "0.000000001");
    trl_decimal_format(INT64_MIN, 2, out);
    ck_assert_str_eq(out, "-92233720368547758.08");
    trl_decimal_format(INT64_MAX, 0, out);
    ck_assert_str_eq(out, "9223372036854775807");
    trl_decimal_format(INT64_MIN, 9, out);
    ck_assert_str_eq(out, "-9223372036.854775808");
}
END_TEST

START_TEST(decimal_format_parse_round_trip)
{
    static const int64_t vals[] = {
        0,       1,       -1,        99,        100, -100,           123456,
        -987654, 5000000, INT64_MAX, INT64_MIN, 10,  1000000000000LL};
    char out[32];
    for (int scale = 0; scale <= 9; scale++) {
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
            trl_decimal_format(vals[i], scale, out);
            ck_assert_msg(dec_ok(out, scale) == vals[i], "%s at scale %d", out, scale);
        }
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Dates and datetimes
 */
static int32_t date_ok(const char *s)
{
    int32_t d = 0;
    LOOP_ASSERT(trl_date_parse(s, strlen(s), &d) == 0, "date %s refused", s);
    return d;
}

static int64_t dt_ok(const char *s)
{
    int64_t ms = 0;
    LOOP_ASSERT(trl_datetime_parse(s, strlen(s), &ms) == 0, "datetime %s refused", s);
    return ms;
}

START_TEST(date_parse_known_days)
{
    ck_assert_int_eq(date_ok("1970-01-01"), 0);
    ck_assert_int_eq(date_ok("1970-01-02"), 1);
    ck_assert_int_eq(date_ok("1969-12-31"), -1);
    ck_assert_int_eq(date_ok("2000-01-01"), 10957);
    ck_assert_int_eq(date_ok("2000-03-01"), 11017); /* 2000 is a leap year */
    ck_assert_int_eq(date_ok("2026-01-02"), 20455);
    ck_assert_int_eq(date_ok("2024-03-01") - date_ok("2024-02-28"), 2);
    ck_assert_int_eq(date_ok("2023-03-01") - date_ok("2023-02-28"), 1);
    ck_assert_int_eq(date_ok("2100-03-01") - date_ok("2100-02-28"), 1);
}
END_TEST

START_TEST(date_leap_years)
{
    date_ok("2024-02-29");
    date_ok("2000-02-29");
    date_ok("1600-02-29");
    static const char *bad[] = {"2023-02-29", "1900-02-29", "2100-02-29", "2024-02-30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int32_t d;
        ck_assert_msg(trl_date_parse(bad[i], strlen(bad[i]), &d) == TRL_EINVAL, "%s accepted",
                      bad[i]);
    }
}
END_TEST

START_TEST(date_invalid_forms_refused)
{
    static const char *bad[] = {
        "",           "2026-13-01",  "2026-00-10",  "2026-01-00",  "2026-01-32",
        "2026-04-31", "2026-06-31",  "2026-1-01",   "2026-01-1",   "20260101",
        "2026/01/01", "2026-01-01T", " 2026-01-01", "2026-01-01 ", "２０２６-01-01",
        "abcd-ef-gh", "-026-01-01",  "2026-+1-01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int32_t d;
        ck_assert_msg(trl_date_parse(bad[i], strlen(bad[i]), &d) == TRL_EINVAL, "%s accepted",
                      bad[i]);
    }
}
END_TEST

START_TEST(date_format_parse_round_trip_every_day)
{
    /* Every day from 1899 to 2101 (leap rules for 1900, 2000 and 2100 included). */
    char out[11];
    int32_t from = date_ok("1899-01-01"), to = date_ok("2101-12-31");
    for (int32_t d = from; d <= to; d++) {
        trl_date_format(d, out);
        LOOP_ASSERT(date_ok(out) == d, "%s is not day %d", out, d);
    }
    trl_date_format(0, out);
    ck_assert_str_eq(out, "1970-01-01");
    trl_date_format(date_ok("0001-01-01"), out);
    ck_assert_str_eq(out, "0001-01-01");
    trl_date_format(date_ok("9999-12-31"), out);
    ck_assert_str_eq(out, "9999-12-31");
    trl_date_format(date_ok("2024-02-29"), out);
    ck_assert_str_eq(out, "2024-02-29");
}
END_TEST

START_TEST(civil_helpers_agree)
{
    for (int32_t d = -800000; d < 800000; d += 997) {
        int64_t y;
        unsigned m, dd;
        trl_civil_from_days(d, &y, &m, &dd);
        LOOP_ASSERT(trl_days_from_civil(y, m, dd) == d, "day %d", d);
    }
}
END_TEST

START_TEST(datetime_round_trip_utc)
{
    char out[25];
    int64_t ms = dt_ok("2026-01-02T03:04:05.678Z");
    trl_datetime_format(ms, out);
    ck_assert_str_eq(out, "2026-01-02T03:04:05.678Z");
    ck_assert_int_eq(ms, (int64_t)20455 * 86400000 + 3 * 3600000 + 4 * 60000 + 5678);
    ms = dt_ok("2026-01-02T03:04:05Z");
    trl_datetime_format(ms, out);
    ck_assert_str_eq(out, "2026-01-02T03:04:05.000Z");
    ck_assert_int_eq(dt_ok("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(dt_ok("1970-01-01T00:00:00.001Z"), 1);
    ck_assert_int_eq(dt_ok("1969-12-31T23:59:59.999Z"), -1);
    trl_datetime_format(-1, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
    trl_datetime_format(-86400000, out);
    ck_assert_str_eq(out, "1969-12-31T00:00:00.000Z");
    ms = dt_ok("2024-02-29T23:59:59.999Z");
    trl_datetime_format(ms, out);
    ck_assert_str_eq(out, "2024-02-29T23:59:59.999Z");
    trl_datetime_format(ms + 1, out);
    ck_assert_str_eq(out, "2024-03-01T00:00:00.000Z");
    /* Every formatted value parses back to itself. */
    for (int64_t v = -5000000000000LL; v < 5000000000000LL; v += 123456789013LL) {
        trl_datetime_format(v, out);
        ck_assert_int_eq(dt_ok(out), v);
    }
}
END_TEST

START_TEST(datetime_offsets_convert_to_utc)
{
    int64_t utc = dt_ok("2026-01-02T03:04:05.678Z");
    ck_assert_int_eq(dt_ok("2026-01-02T11:04:05.678+08:00"), utc);
    ck_assert_int_eq(dt_ok("2026-01-01T21:34:05.678-05:30"), utc);
    ck_assert_int_eq(dt_ok("2026-01-02T03:04:05.678+00:00"), utc);
    ck_assert_int_eq(dt_ok("2026-01-02T03:04:05.678-00:00"), utc);
    char out[25];
    /* An offset can move the UTC date back across a month and year. */
    trl_datetime_format(dt_ok("2026-01-01T02:00:00+08:00"), out);
    ck_assert_str_eq(out, "2025-12-31T18:00:00.000Z");
    trl_datetime_format(dt_ok("2024-02-28T20:00:00-08:00"), out);
    ck_assert_str_eq(out, "2024-02-29T04:00:00.000Z");
}
END_TEST

START_TEST(datetime_accepted_variants)
{
    int64_t utc = dt_ok("2026-01-02T03:04:05Z");
    ck_assert_int_eq(dt_ok("2026-01-02t03:04:05z"), utc);
    ck_assert_int_eq(dt_ok("2026-01-02 03:04:05Z"), utc);
    /* More than three fractional digits are truncated to milliseconds. */
    ck_assert_int_eq(dt_ok("2026-01-02T03:04:05.6789Z"), utc + 678);
    ck_assert_int_eq(dt_ok("2026-01-02T03:04:05.5Z"), utc + 500);
    ck_assert_int_eq(dt_ok("2026-01-02T03:04:05.05Z"), utc + 50);
}
END_TEST

START_TEST(datetime_invalid_forms_refused)
{
    static const char *bad[] = {
        "",
        "2026-01-02",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04Z",
        "2026-01-02T24:00:00Z",
        "2026-01-02T23:60:00Z",
        "2026-01-02T23:59:60Z",
        "2023-02-29T00:00:00Z",
        "2026-13-02T03:04:05Z",
        "2026-01-02X03:04:05Z",
        "2026-01-02T03:04:05.Z",
        "2026-01-02T03:04:05.123",
        "2026-01-02T03:04:05+08",
        "2026-01-02T03:04:05+0800",
        "2026-01-02T03:04:05+08:0",
        "2026-01-02T03:04:05+24:00",
        "2026-01-02T03:04:05+08:60",
        "2026-01-02T03:04:05Z ",
        "2026-01-02T03:04:05ZZ",
        "2026-01-02T03:04:05+08:00Z",
        "2026-01-02T3:04:05Z",
        "2026-01-02T03:04:05,5Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        ck_assert_msg(trl_datetime_parse(bad[i], strlen(bad[i]), &ms) == TRL_EINVAL, "%s accepted",
                      bad[i]);
    }
}
END_TEST

START_TEST(clock_is_injectable)
{
    struct trl_clock c;
    trl_clock_system(&c);
    int64_t a = trl_clock_now(&c);
    c.offset_ms = 86400000;
    int64_t b = trl_clock_now(&c);
    ck_assert_int_ge(b - a, 86400000);
    ck_assert_int_lt(b - a, 86400000 + 60000);
    int64_t m1 = trl_mono_ms(), m2 = trl_mono_ms();
    ck_assert_int_ge(m2, m1);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Buffers, JSON string escaping, integers, varints
 */
START_TEST(buffer_grows_and_stays_terminated)
{
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(trl_buf_adds(&b, "abc"), 0);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_str_eq(b.data, "abc");
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(trl_buf_printf(&b, "%04d", i), 0);
    ck_assert_uint_eq(b.len, 3 + 8000);
    ck_assert_uint_gt(b.cap, b.len);
    ck_assert_int_eq(b.data[b.len], 0);
    ck_assert_int_eq(memcmp(b.data + 3 + 4 * 1999, "1999", 4), 0);
    ck_assert_int_eq(trl_buf_addc(&b, 0), 0); /* bytes, not C strings */
    ck_assert_uint_eq(b.len, 8004);
    ck_assert_int_eq(trl_buf_add(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 8004);
    trl_buf_clear(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(trl_buf_adds(&b, "xyz"), 0);
    char *s = trl_buf_steal(&b);
    ck_assert_str_eq(s, "xyz");
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    free(s);
    s = trl_buf_steal(&b); /* an empty buffer still yields an owned "" */
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    free(s);
    trl_buf_free(&b);
    trl_buf_free(NULL);
}
END_TEST

static void json_str_is(const char *in, size_t n, const char *want)
{
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_int_eq(trl_buf_add_json_str(&b, in, n), 0);
    ck_assert_str_eq(b.data, want);
    ck_assert_uint_eq(b.len, strlen(want));
    trl_buf_free(&b);
}

static void csv_is(const char *in, const char *want)
{
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_int_eq(trl_buf_add_csv(&b, in, strlen(in)), 0);
    ck_assert_msg(b.len == strlen(want) && (!b.len || memcmp(b.data, want, b.len) == 0),
                  "csv(%s) = %.*s", in, (int)b.len, b.data ? b.data : "");
    trl_buf_free(&b);
}

START_TEST(csv_cells_are_quoted_and_never_formulas)
{
    csv_is("", "");
    csv_is("plain 中文", "plain 中文");
    csv_is("a,b", "\"a,b\"");
    csv_is("say \"hi\"", "\"say \"\"hi\"\"\"");
    csv_is("two\nlines", "\"two\nlines\"");
    /* Spreadsheet formulas stay text; numbers stay numbers. */
    csv_is("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\"");
    csv_is("=1+2", "'=1+2");
    csv_is("+86 10 1234", "'+86 10 1234");
    csv_is("@SUM(A1)", "'@SUM(A1)");
    csv_is("-cmd", "'-cmd");
    csv_is("\tx", "\"'\tx\"");
    csv_is("-12.50", "-12.50");
    csv_is("+7", "+7");
    csv_is("-", "'-");
    csv_is("-.", "'-.");
    csv_is("12-3", "12-3");
}
END_TEST

START_TEST(json_string_escaping)
{
    json_str_is("", 0, "\"\"");
    json_str_is("plain", 5, "\"plain\"");
    json_str_is("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    json_str_is("back\\slash", 10, "\"back\\\\slash\"");
    json_str_is("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    json_str_is("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    json_str_is("a\0b", 3, "\"a\\u0000b\"");
    json_str_is("\x7f", 1, "\"\x7f\"");
    json_str_is("/", 1, "\"/\"");
    json_str_is("促销 😀", strlen("促销 😀"), "\"促销 😀\"");
    json_str_is("end\"", 4, "\"end\\\"\"");
    /* Appends to what the buffer holds. */
    struct trl_buf b;
    trl_buf_init(&b);
    trl_buf_adds(&b, "{\"k\":");
    trl_buf_add_json_str(&b, "v\n", 2);
    trl_buf_addc(&b, '}');
    ck_assert_str_eq(b.data, "{\"k\":\"v\\n\"}");
    trl_buf_free(&b);
}
END_TEST

START_TEST(big_endian_integers_sort_numerically)
{
    struct trl_buf b;
    trl_buf_init(&b);
    trl_buf_add_u16be(&b, 0x1234);
    trl_buf_add_u32be(&b, 0xDEADBEEF);
    trl_buf_add_u64be(&b, 0x0102030405060708ULL);
    ck_assert_uint_eq(b.len, 14);
    ck_assert_int_eq(memcmp(b.data, "\x12\x34\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08", 14),
                     0);
    ck_assert_uint_eq(trl_get_u16be(b.data), 0x1234);
    ck_assert_uint_eq(trl_get_u32be(b.data + 2), 0xDEADBEEF);
    ck_assert_uint_eq(trl_get_u64be(b.data + 6), 0x0102030405060708ULL);
    unsigned char x[8], y[8];
    trl_put_u64be(x, 255);
    trl_put_u64be(y, 256);
    ck_assert_int_lt(memcmp(x, y, 8), 0);
    trl_put_u32be(x, 0xFFFFFFFFu);
    ck_assert_uint_eq(trl_get_u32be(x), 0xFFFFFFFFu);
    trl_buf_free(&b);
}
END_TEST

START_TEST(varint_round_trip_and_lengths)
{
    static const struct {
        uint64_t v;
        size_t len;
    } cases[] = {
        {0, 1},     {1, 1},     {127, 1},          {128, 2},           {300, 2},
        {16383, 2}, {16384, 3}, {(1ULL << 32), 5}, {(1ULL << 63), 10}, {UINT64_MAX, 10},
    };
    struct trl_buf b;
    trl_buf_init(&b);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t before = b.len;
        ck_assert_int_eq(trl_buf_add_varint(&b, cases[i].v), 0);
        ck_assert_uint_eq(b.len - before, cases[i].len);
    }
    ck_assert_int_eq(memcmp(b.data + 5, "\xac\x02", 2), 0); /* 300 is AC 02 (LEB128) */
    const unsigned char *p = (const unsigned char *)b.data, *end = p + b.len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 0;
        ck_assert_int_eq(trl_get_varint(&p, end, &v), 0);
        ck_assert_uint_eq(v, cases[i].v);
    }
    ck_assert_ptr_eq(p, end);
    trl_buf_free(&b);
}
END_TEST

START_TEST(varint_corrupt_inputs_refused)
{
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"", 0},
        {"\x80", 1},
        {"\xff\xff", 2},
        /* 11 bytes: longer than any 64-bit value. */
        {"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11},
        /* Tenth byte carries bits beyond 64. */
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const unsigned char *p = (const unsigned char *)bad[i].bytes, *start = p;
        uint64_t v = 77;
        ck_assert_msg(trl_get_varint(&p, p + bad[i].n, &v) == TRL_ECORRUPT, "case %zu", i);
        ck_assert_ptr_eq(p, start); /* not advanced */
        ck_assert_uint_eq(v, 77);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Accept-Language
 */
START_TEST(accept_language_picks_the_best_supported)
{
    static const struct {
        const char *header;
        const char *want;
    } cases[] = {
        {NULL, "en"},
        {"", "en"},
        {"zh-CN", "zh-CN"},
        {"zh", "zh-CN"},
        {"zh-TW", "zh-CN"},
        {"ZH-cn", "zh-CN"},
        {"en", "en"},
        {"en-US", "en"},
        {"zh-CN;q=0.9,en;q=0.8", "zh-CN"},
        {"zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"},
        {"en-US,en;q=0.9,zh-CN;q=0.8", "en"},
        {"en;q=0.5,zh-CN", "zh-CN"},
        {"en;q=0.5, zh-CN;q=0.6", "zh-CN"},
        {"en ; q=0.2 , zh ; q=0.1", "en"},
        {"fr-FR,fr;q=0.9", "en"},
        {"fr, zh;q=0.3", "zh-CN"},
        {"de;q=1.0, en;q=0.1", "en"},
        {"*", "en"},
        {"en,zh", "en"}, /* a tie goes to the first listed */
        {"zh,en", "zh-CN"},
        {"zh-Hans-CN;q=0.8, en-GB;q=0.7", "zh-CN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = trl_lang_pick(cases[i].header);
        ck_assert_msg(strcmp(got, cases[i].want) == 0, "\"%s\": got %s, want %s",
                      cases[i].header ? cases[i].header : "(null)", got, cases[i].want);
    }
}
END_TEST

START_TEST(accept_language_q0_means_not_acceptable)
{
    /* RFC 9110 §12.4.2: q=0 means "not acceptable", so it can never be the choice. */
    ck_assert_str_eq(trl_lang_pick("zh-CN;q=0"), "en");
    ck_assert_str_eq(trl_lang_pick("zh;q=0, fr"), "en");
    ck_assert_str_eq(trl_lang_pick("zh;q=0.0,en;q=0"), "en");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Error table and diagnostics
 */
START_TEST(error_table_tokens_and_statuses)
{
    static const struct {
        int code;
        const char *token;
        int status;
    } rows[] = {
        {TRL_OK, "ok", 200},
        {TRL_EINVAL, "invalid_request", 400},
        {TRL_EJSON, "malformed_json", 400},
        {TRL_EQUERY, "bad_query", 400},
        {TRL_EAUTH, "unauthenticated", 401},
        {TRL_EFORBIDDEN, "forbidden", 403},
        {TRL_ENOTFOUND, "not_found", 404},
        {TRL_ECONFLICT, "conflict", 409},
        {TRL_EEXIST, "already_exists", 409},
        {TRL_EPRECOND, "precondition_failed", 412},
        {TRL_ETOOBIG, "payload_too_large", 413},
        {TRL_EVALIDATION, "validation_failed", 422},
        {TRL_ERATELIMIT, "rate_limited", 429},
        {TRL_EINTERNAL, "internal_error", 500},
        {TRL_ENOMEM, "out_of_memory", 503},
        {TRL_EFULL, "storage_full", 507},
        {TRL_ECORRUPT, "corrupt", 500},
        {TRL_EMAPFULL, "map_full", 507},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_str_eq(trl_err_token(rows[i].code), rows[i].token);
        ck_assert_int_eq(trl_err_status(rows[i].code), rows[i].status);
    }
    ck_assert_str_eq(trl_err_title(TRL_EVALIDATION, "en"), "Validation failed");
    ck_assert_str_eq(trl_err_title(TRL_EVALIDATION, "zh-CN"), "数据校验失败");
    ck_assert_str_eq(trl_err_title(TRL_EVALIDATION, NULL), "Validation failed");
    ck_assert_str_eq(trl_err_title(TRL_EPRECOND, "fr"), "Version mismatch");
}
END_TEST

START_TEST(error_table_unknown_codes_are_internal)
{
    static const int unknown[] = {1, 42, -TRL_ERR_COUNT, -1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ck_assert_str_eq(trl_err_token(unknown[i]), "internal_error");
        ck_assert_int_eq(trl_err_status(unknown[i]), 500);
        ck_assert_str_eq(trl_err_title(unknown[i], "en"), "Internal error");
    }
}
END_TEST

START_TEST(error_table_rows_are_well_formed)
{
    for (int idx = 0; idx < TRL_ERR_COUNT; idx++) {
        int code = -idx;
        const char *tok = trl_err_token(code);
        ck_assert_uint_gt(strlen(tok), 0);
        for (const char *p = tok; *p; p++)
            ck_assert_msg((*p >= 'a' && *p <= 'z') || *p == '_', "token %s is not snake_case", tok);
        /* Tokens are unique: they are the stable API. */
        for (int k = 0; k < idx; k++)
            ck_assert_str_ne(trl_err_token(-k), tok);
        int st = trl_err_status(code);
        ck_assert_int_ge(st, 200);
        ck_assert_int_le(st, 599);
        ck_assert_int_eq(st == 200, idx == 0);
        const char *zh = trl_err_title(code, "zh-CN");
        ck_assert_uint_gt(strlen(zh), 0);
        ck_assert(trl_utf8_valid(zh, strlen(zh)));
        ck_assert_uint_gt(strlen(trl_err_title(code, "en")), 0);
    }
}
END_TEST

START_TEST(diagnostics_collect_and_move)
{
    struct trl_diag d, e;
    trl_diag_init(&d);
    trl_diag_init(&e);
    ck_assert_int_eq(trl_diag_set(&d, TRL_EVALIDATION, "%d field(s) failed", 2), TRL_EVALIDATION);
    ck_assert_int_eq(d.code, TRL_EVALIDATION);
    ck_assert_str_eq(d.message, "2 field(s) failed");
    ck_assert_ptr_nonnull(d.file);
    ck_assert_int_gt(d.line, 0);
    trl_diag_zh(&d, "%d 个字段", 2);
    ck_assert_str_eq(d.message_zh, "2 个字段");
    trl_diag_field(&d, "title");
    ck_assert_str_eq(d.field, "title");
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(trl_diag_add_ferr(&d, "f", "required", NULL), 0);
    ck_assert_int_eq(trl_diag_add_ferr(&d, NULL, NULL, "x"), 0);
    ck_assert_uint_eq(d.nferrs, 21);
    ck_assert_str_eq(d.ferrs[20].field, "");
    ck_assert_str_eq(d.ferrs[20].code, "invalid");
    /* A later set overwrites the message and clears the Chinese one. */
    trl_diag_set(&d, TRL_ECONFLICT, "conflict");
    ck_assert_str_eq(d.message_zh, "");
    trl_diag_move(&e, &d);
    ck_assert_int_eq(e.code, TRL_ECONFLICT);
    ck_assert_uint_eq(e.nferrs, 21);
    ck_assert_int_eq(d.code, 0);
    ck_assert_uint_eq(d.nferrs, 0);
    ck_assert_ptr_null(d.ferrs);
    trl_diag_reset(&e);
    ck_assert_uint_eq(e.nferrs, 0);
    trl_diag_reset(&d);
    trl_diag_reset(NULL);
    ck_assert_int_eq(trl_diag_set(NULL, TRL_EIO, "ignored"), TRL_EIO);
}
END_TEST

START_TEST(field_error_messages_in_both_languages)
{
    char buf[256];
    struct trl_ferr e = {.field = "title", .code = "max_length", .detail = "10"};
    trl_ferr_message(&e, "en", buf, sizeof(buf));
    ck_assert_str_eq(buf, "must be at most 10 characters");
    trl_ferr_message(&e, "zh-CN", buf, sizeof(buf));
    ck_assert_str_eq(buf, "长度不能超过 10 个字符");
    struct trl_ferr t = {.field = "n", .code = "type", .detail = "an integer"};
    trl_ferr_message(&t, "en", buf, sizeof(buf));
    ck_assert_str_eq(buf, "must be an integer");
    trl_ferr_message(&t, "zh-CN", buf, sizeof(buf));
    ck_assert_str_eq(buf, "类型应为 整数");
    struct trl_ferr r = {.field = "x", .code = "required", .detail = ""};
    trl_ferr_message(&r, "en", buf, sizeof(buf));
    ck_assert_str_eq(buf, "is required");
    struct trl_ferr u = {.field = "x", .code = "no_such_rule", .detail = "d"};
    trl_ferr_message(&u, "en", buf, sizeof(buf));
    ck_assert_str_eq(buf, "is invalid: d");
    /* A small buffer truncates, never overflows. */
    char tiny[8];
    trl_ferr_message(&e, "en", tiny, sizeof(tiny));
    ck_assert_uint_eq(strlen(tiny), 7);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Arenas and helpers
 */
START_TEST(arena_allocations_are_aligned_and_distinct)
{
    struct trl_arena a;
    trl_arena_init(&a);
    unsigned char *prev[300];
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i % 37) + 1;
        unsigned char *p = trl_arena_alloc(&a, n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, i & 0xFF, n);
        prev[i] = p;
    }
    /* Earlier allocations keep their bytes after the arena grew new chunks. */
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i % 37) + 1;
        for (size_t k = 0; k < n; k++)
            ck_assert_uint_eq(prev[i][k], (unsigned)(i & 0xFF));
    }
    /* Larger than a chunk. */
    unsigned char *big = trl_arena_alloc(&a, 100000);
    ck_assert_ptr_nonnull(big);
    memset(big, 0xAB, 100000);
    char *s = trl_arena_strndup(&a, "hello world", 5);
    ck_assert_str_eq(s, "hello");
    char *e = trl_arena_strndup(&a, NULL, 0);
    ck_assert_str_eq(e, "");
    trl_arena_free(&a);
    ck_assert_ptr_null(a.head);
    /* Reusable after free. */
    ck_assert_ptr_nonnull(trl_arena_alloc(&a, 10));
    trl_arena_free(&a);
    trl_arena_free(NULL);
}
END_TEST

START_TEST(parse_i64_is_exact)
{
    int64_t v;
    ck_assert_int_eq(trl_parse_i64("0", 1, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(trl_parse_i64("-42", 3, &v), 0);
    ck_assert_int_eq(v, -42);
    ck_assert_int_eq(trl_parse_i64("9223372036854775807", 19, &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(trl_parse_i64("-9223372036854775808", 20, &v), 0);
    ck_assert_int_eq(v, INT64_MIN);
    static const char *bad[] = {"",
                                "-",
                                "+1",
                                "1.0",
                                "1e3",
                                " 1",
                                "1 ",
                                "0x1",
                                "9223372036854775808",
                                "-9223372036854775809",
                                "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(trl_parse_i64(bad[i], strlen(bad[i]), &v) == TRL_EINVAL, "%s accepted",
                      bad[i]);
}
END_TEST

START_TEST(hex_strndup_and_type_names)
{
    char hex[9];
    trl_hex("\x00\x7f\xab\xff", 4, hex);
    ck_assert_str_eq(hex, "007fabff");
    char *s = trl_strndup("abcdef", 3);
    ck_assert_str_eq(s, "abc");
    free(s);
    for (int t = 0; t < TRL_FT_COUNT; t++) {
        const char *name = trl_ftype_name((enum trl_ftype)t);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(trl_ftype_parse(name), t);
    }
    ck_assert_ptr_null(trl_ftype_name(TRL_FT_COUNT));
    ck_assert_int_eq(trl_ftype_parse("float"), -1);
    ck_assert_int_eq(trl_ftype_parse("TEXT"), -1);
    ck_assert(trl_ftype_is_int(TRL_FT_DECIMAL));
    ck_assert(trl_ftype_is_int(TRL_FT_REF));
    ck_assert(trl_ftype_is_int(TRL_FT_DATETIME));
    ck_assert(!trl_ftype_is_int(TRL_FT_ENUM));
    ck_assert(!trl_ftype_is_int(TRL_FT_JSON));
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_validation_table);
    tcase_add_test(tc, utf8_validation_never_reads_past_n);
    tcase_add_test(tc, utf8_len_counts_code_points);
    suite_add_tcase(s, tc);
    tc = tcase_create("decimal");
    tcase_add_test(tc, decimal_parse_scales_exactly);
    tcase_add_test(tc, decimal_trailing_zeros_beyond_scale_are_harmless);
    tcase_add_test(tc, decimal_too_many_decimals_is_scale);
    tcase_add_test(tc, decimal_overflow_is_range);
    tcase_add_test(tc, decimal_refuses_non_decimal_text);
    tcase_add_test(tc, decimal_format_has_exactly_scale_digits);
    tcase_add_test(tc, decimal_format_parse_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("time");
    tcase_add_test(tc, date_parse_known_days);
    tcase_add_test(tc, date_leap_years);
    tcase_add_test(tc, date_invalid_forms_refused);
    tcase_add_test(tc, date_format_parse_round_trip_every_day);
    tcase_add_test(tc, civil_helpers_agree);
    tcase_add_test(tc, datetime_round_trip_utc);
    tcase_add_test(tc, datetime_offsets_convert_to_utc);
    tcase_add_test(tc, datetime_accepted_variants);
    tcase_add_test(tc, datetime_invalid_forms_refused);
    tcase_add_test(tc, clock_is_injectable);
    suite_add_tcase(s, tc);
    tc = tcase_create("buffers");
    tcase_add_test(tc, buffer_grows_and_stays_terminated);
    tcase_add_test(tc, json_string_escaping);
    tcase_add_test(tc, big_endian_integers_sort_numerically);
    tcase_add_test(tc, varint_round_trip_and_lengths);
    tcase_add_test(tc, varint_corrupt_inputs_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("accept_language");
    tcase_add_test(tc, accept_language_picks_the_best_supported);
    tcase_add_test(tc, accept_language_q0_means_not_acceptable);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, error_table_tokens_and_statuses);
    tcase_add_test(tc, error_table_unknown_codes_are_internal);
    tcase_add_test(tc, error_table_rows_are_well_formed);
    tcase_add_test(tc, diagnostics_collect_and_move);
    tcase_add_test(tc, field_error_messages_in_both_languages);
    suite_add_tcase(s, tc);
    tc = tcase_create("arena_and_helpers");
    tcase_add_test(tc, arena_allocations_are_aligned_and_distinct);
    tcase_add_test(tc, parse_i64_is_exact);
    tcase_add_test(tc, hex_strndup_and_type_names);
    tcase_add_test(tc, csv_cells_are_quoted_and_never_formulas);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(core_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
