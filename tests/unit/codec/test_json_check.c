/*
 * test_json_check.c — trl_json_check: the JSONTestSuite corpus, exact error messages and
 * positions for each rule, duplicate keys in small and large objects, nesting limits, reads that
 * stay inside the input, and a 1 MB throughput run.
 *
 * Every input is copied into a heap block of exactly its length first, so under ASan a read past
 * s + n is a crash, not a silent pass.
 *
 * Valid (y_) files: all 95 accepted by trl_json_check_grammar (RFC 8259). trl_json_check, the
 * request policy, also refuses y_object_duplicated_key and y_object_duplicated_key_and_value
 * (RFC 8259: names SHOULD be unique) with "duplicate key"; both behaviours are asserted.
 *
 * Decisions on the implementation-defined (i_) files of JSONTestSuite, asserted in suite_i below:
 *   - numbers that overflow or underflow a double, or exceed int64 (i_number_*): accepted; the
 *     grammar is what is checked, range is the schema's business.
 *   - lone or mismatched surrogate escapes (i_object_key_lone_2nd_surrogate,
 *     i_string_*surrogate*): refused.
 *   - bytes that are not UTF-8 (invalid sequences, ISO-8859-1, overlongs, UTF-8-encoded
 *     surrogates, code points above U+10FFFF, truncated sequences, UTF-16 with or without BOM):
 *     refused.
 *   - i_structure_UTF-8_BOM_empty_object: refused (no BOM).
 *   - i_structure_500_nested_arrays: accepted with max_depth 512 (refused below 500).
 */
#include "codec/codec.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */
static int check_n(const char *s, size_t n, int max_depth, struct trl_diag *d)
{
    char *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n) memcpy(copy, s, n);
    int rc = trl_json_check(copy, n, max_depth, d);
    free(copy);
    return rc;
}

#define ACCEPT(json)       accept_n((json), sizeof(json) - 1, 64, __LINE__)
#define REFUSE(json, msg)  refuse_n((json), sizeof(json) - 1, 64, (msg), __LINE__)
#define REFUSED(json, msg) refuse_n((json), strlen(json), 64, (msg), __LINE__)

static void accept_n(const char *s, size_t n, int max_depth, int line)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = check_n(s, n, max_depth, &d);
    ck_assert_msg(rc == 0, "line %d: refused (%d): %s", line, rc, d.message);
    trl_diag_reset(&d);
}

static void refuse_n(const char *s, size_t n, int max_depth, const char *msg, int line)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = check_n(s, n, max_depth, &d);
    ck_assert_msg(rc == TRL_EJSON, "line %d: expected TRL_EJSON, got %d", line, rc);
    ck_assert_int_eq(d.code, TRL_EJSON);
    ck_assert_msg(strcmp(d.message, msg) == 0, "line %d: message\n  got:  %s\n  want: %s", line,
                  d.message, msg);
    trl_diag_reset(&d);
}

/* Owned copy of a file's bytes (free with free()); NULL when it cannot be read. */
static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto out;
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) goto out;
    buf = malloc(len ? (size_t)len : 1);
    if (!buf) goto out;
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
        goto out;
    }
    *n = (size_t)len;
out:
    fclose(f);
    return buf;
}

static void suite_dir(char *out, size_t n)
{
    const char *shared = getenv("TRELLIS_SHARED");
    if (shared && *shared) {
        snprintf(out, n, "%s/testdata/JSONTestSuite/test_parsing", shared);
        return;
    }
    const char *src = getenv("TRELLIS_SRC");
    snprintf(out, n, "%s/../shared/testdata/JSONTestSuite/test_parsing", src ? src : ".");
}

/* Expected outcome of each i_ file: true when accepted. */
static const struct {
    const char *name;
    bool accept;
} i_files[] = {
    {"i_number_double_huge_neg_exp.json", true},
    {"i_number_huge_exp.json", true},
    {"i_number_neg_int_huge_exp.json", true},
    {"i_number_pos_double_huge_exp.json", true},
    {"i_number_real_neg_overflow.json", true},
    {"i_number_real_pos_overflow.json", true},
    {"i_number_real_underflow.json", true},
    {"i_number_too_big_neg_int.json", true},
    {"i_number_too_big_pos_int.json", true},
    {"i_number_very_big_negative_int.json", true},
    {"i_object_key_lone_2nd_surrogate.json", false},
    {"i_string_1st_surrogate_but_2nd_missing.json", false},
    {"i_string_1st_valid_surrogate_2nd_invalid.json", false},
    {"i_string_UTF-16LE_with_BOM.json", false},
    {"i_string_UTF-8_invalid_sequence.json", false},
    {"i_string_UTF8_surrogate_U+D800.json", false},
    {"i_string_incomplete_surrogate_and_escape_valid.json", false},
    {"i_string_incomplete_surrogate_pair.json", false},
    {"i_string_incomplete_surrogates_escape_valid.json", false},
    {"i_string_invalid_lonely_surrogate.json", false},
    {"i_string_invalid_surrogate.json", false},
    {"i_string_invalid_utf-8.json", false},
    {"i_string_inverted_surrogates_U+1D11E.json", false},
    {"i_string_iso_latin_1.json", false},
    {"i_string_lone_second_surrogate.json", false},
    {"i_string_lone_utf8_continuation_byte.json", false},
    {"i_string_not_in_unicode_range.json", false},
    {"i_string_overlong_sequence_2_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes_null.json", false},
    {"i_string_truncated-utf-8.json", false},
    {"i_string_utf16BE_no_BOM.json", false},
    {"i_string_utf16LE_no_BOM.json", false},
    {"i_structure_500_nested_arrays.json", true},
    {"i_structure_UTF-8_BOM_empty_object.json", false},
};

/* The y_ files that Trellis refuses on purpose: RFC 8259 only says object names SHOULD be
 * unique, codec.h promises no duplicate keys. Returns the expected message, or NULL. */
static const char *refused_by_policy(const char *name)
{
    if (strcmp(name, "y_object_duplicated_key.json") == 0 ||
        strcmp(name, "y_object_duplicated_key_and_value.json") == 0)
        return "line 1, column 10: duplicate key \"a\"";
    return NULL;
}

/* Runs every file of the suite whose name starts with prefix; returns how many there were. */
static size_t run_suite(char prefix)
{
    char dir[1024], path[2048];
    suite_dir(dir, sizeof(dir));
    DIR *dh = opendir(dir);
    ck_assert_msg(dh != NULL, "cannot open %s", dir);
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        const char *name = de->d_name;
        if (name[0] != prefix || name[1] != '_') continue;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        size_t n = 0;
        char *buf = read_file(path, &n);
        ck_assert_msg(buf != NULL, "cannot read %s", path);
        struct trl_diag d;
        trl_diag_init(&d);
        int rc = trl_json_check(buf, n, 512, &d);
        struct trl_diag gd;
        trl_diag_init(&gd);
        int grc = trl_json_check_grammar(buf, n, 512, &gd);
        free(buf);
        const char *policy = prefix == 'y' ? refused_by_policy(name) : NULL;
        /* The grammar check agrees with the strict one on everything but duplicate keys. */
        if (!policy) ck_assert_msg(grc == rc, "%s: grammar %d, strict %d", name, grc, rc);
        if (prefix == 'y') ck_assert_msg(grc == 0, "%s refused by the grammar: %s", name, gd.message);
        trl_diag_reset(&gd);
        if (policy) {
            ck_assert_msg(rc == TRL_EJSON && strcmp(d.message, policy) == 0, "%s: %d %s", name, rc,
                          d.message);
        } else if (prefix == 'y') {
            ck_assert_msg(rc == 0, "%s refused: %s", name, d.message);
        } else if (prefix == 'n') {
            ck_assert_msg(rc == TRL_EJSON, "%s: expected TRL_EJSON, got %d", name, rc);
            ck_assert_msg(strncmp(d.message, "line ", 5) == 0, "%s: message %s", name, d.message);
        } else {
            ck_assert_msg(rc == 0 || rc == TRL_EJSON, "%s: got %d", name, rc);
            bool known = false;
            for (size_t k = 0; k < sizeof(i_files) / sizeof(i_files[0]); k++) {
                if (strcmp(i_files[k].name, name) != 0) continue;
                known = true;
                ck_assert_msg((rc == 0) == i_files[k].accept, "%s: %s (%s)", name,
                              rc == 0 ? "accepted" : "refused", d.message);
            }
            ck_assert_msg(known, "%s: no decision recorded", name);
        }
        trl_diag_reset(&d);
        count++;
    }
    closedir(dh);
    return count;
}

/* ---------------------------------------------------------------------------------------------
 * JSONTestSuite
 */
START_TEST(suite_y_files_are_accepted_duplicate_keys_only_by_the_grammar)
{
    ck_assert_uint_eq(run_suite('y'), 95);
}
END_TEST

START_TEST(suite_n_files_are_refused)
{
    ck_assert_uint_eq(run_suite('n'), 188);
}
END_TEST

START_TEST(suite_i_files_follow_the_recorded_decisions)
{
    ck_assert_uint_eq(run_suite('i'), sizeof(i_files) / sizeof(i_files[0]));
}
END_TEST

START_TEST(suite_selected_messages)
{
    char dir[1024], path[2048];
    suite_dir(dir, sizeof(dir));
    static const struct {
        const char *name;
        int max_depth;
        const char *msg;
    } cases[] = {
        {"n_structure_100000_opening_arrays.json", 512,
         "line 1, column 513: nesting deeper than 512 levels"},
        {"i_structure_500_nested_arrays.json", 499,
         "line 1, column 500: nesting deeper than 499 levels"},
        {"n_structure_open_array_object.json", 512,
         "line 1, column 1281: nesting deeper than 512 levels"},
        {"i_structure_UTF-8_BOM_empty_object.json", 512,
         "line 1, column 1: byte order mark (BOM) is not allowed"},
        {"i_string_UTF-16LE_with_BOM.json", 512, "line 1, column 1: invalid UTF-8"},
        {"n_single_space.json", 512, "line 1, column 2: empty input"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].name);
        size_t n = 0;
        char *buf = read_file(path, &n);
        ck_assert_msg(buf != NULL, "cannot read %s", path);
        refuse_n(buf, n, cases[i].max_depth, cases[i].msg, __LINE__);
        free(buf);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Numbers and literals
 */
START_TEST(numbers_valid)
{
    ACCEPT("0");
    ACCEPT("-0");
    ACCEPT("0.0");
    ACCEPT("10");
    ACCEPT("1e5");
    ACCEPT("1E+5");
    ACCEPT("-1.5e-10");
    ACCEPT("0e0");
    ACCEPT("123456789012345678901234567890");
    ACCEPT("1e999");
    ACCEPT("[0,-0,1.25]");
}
END_TEST

START_TEST(numbers_strict_grammar)
{
    REFUSE("01", "line 1, column 1: leading zero in number");
    REFUSE("[-01]", "line 1, column 3: leading zero in number");
    REFUSE("{\"a\": 01}", "line 1, column 7: leading zero in number");
    REFUSE("00", "line 1, column 1: leading zero in number");
    REFUSE("+1", "line 1, column 1: expected a value, found '+'");
    REFUSE(".5", "line 1, column 1: expected a value, found '.'");
    REFUSE("[1.]", "line 1, column 4: expected a digit after the decimal point");
    REFUSE("1.", "line 1, column 3: expected a digit after the decimal point");
    REFUSE("1.e5", "line 1, column 3: expected a digit after the decimal point");
    REFUSE("1e", "line 1, column 3: expected a digit in the exponent");
    REFUSE("1e+", "line 1, column 4: expected a digit in the exponent");
    REFUSE("[1E-x]", "line 1, column 5: expected a digit in the exponent");
    REFUSE("-", "line 1, column 2: expected a digit after '-'");
    REFUSE("- 1", "line 1, column 2: expected a digit after '-'");
    REFUSE("NaN", "line 1, column 1: expected a value, found 'N'");
    REFUSE("Infinity", "line 1, column 1: expected a value, found 'I'");
    REFUSE("-Infinity", "line 1, column 2: expected a digit after '-'");
    REFUSE("0x10", "line 1, column 2: trailing characters after the JSON value");
    REFUSE("1 2", "line 1, column 3: trailing characters after the JSON value");
}
END_TEST

START_TEST(literals_strict)
{
    ACCEPT("true");
    ACCEPT("false");
    ACCEPT("null");
    ACCEPT("[true,false,null]");
    REFUSE("tru", "line 1, column 4: unexpected end of input");
    REFUSE("[fals", "line 1, column 6: unexpected end of input");
    REFUSE("trUe", "line 1, column 1: invalid literal (expected true)");
    REFUSE("[nul]", "line 1, column 2: invalid literal (expected null)");
    REFUSE("True", "line 1, column 1: expected a value, found 'T'");
    REFUSE("nulll", "line 1, column 5: trailing characters after the JSON value");
    REFUSE("[truex]", "line 1, column 6: expected ',' or ']' after an array element, found 'x'");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Structure
 */
START_TEST(structure_trailing_commas_and_separators)
{
    REFUSE("[1,2,]", "line 1, column 5: trailing comma in array");
    REFUSE("[1,2 , ]", "line 1, column 6: trailing comma in array");
    REFUSE("{\"a\":1,}", "line 1, column 7: trailing comma in object");
    REFUSE("[,1]", "line 1, column 2: expected a value, found ','");
    REFUSE("[1,,2]", "line 1, column 4: expected a value, found ','");
    REFUSE("[1 2]", "line 1, column 4: expected ',' or ']' after an array element, found '2'");
    REFUSE("[1}", "line 1, column 3: expected ',' or ']' after an array element, found '}'");
    REFUSE("{\"a\":1]", "line 1, column 7: expected ',' or '}' after an object member, found ']'");
    REFUSE("{\"a\" 1}", "line 1, column 6: expected ':' after the object key, found '1'");
    REFUSE("{1:1}", "line 1, column 2: expected a string key, found '1'");
    REFUSE("{,}", "line 1, column 2: expected a string key, found ','");
    REFUSE("{'a':1}", "line 1, column 2: expected a string key, found '''");
    REFUSE("{\"a\":1,,}", "line 1, column 8: expected a string key, found ','");
}
END_TEST

START_TEST(structure_one_value_only)
{
    REFUSE("[1]x", "line 1, column 4: trailing characters after the JSON value");
    REFUSE("[1] [2]", "line 1, column 5: trailing characters after the JSON value");
    REFUSE("{}}", "line 1, column 3: trailing characters after the JSON value");
    REFUSE("\"a\"\"b\"", "line 1, column 4: trailing characters after the JSON value");
    refuse_n("[]\0", 3, 64, "line 1, column 3: trailing characters after the JSON value", __LINE__);
    ACCEPT(" \t\r\n[ 1 , 2 ]\n ");
    ACCEPT("\"\"");
    ACCEPT("{}");
    ACCEPT("[]");
    ACCEPT("[[],{},[{}]]");
    ACCEPT("{ \"a\" : [ 1 , { \"b\" : null } ] }");
}
END_TEST

START_TEST(structure_empty_and_truncated)
{
    refuse_n("", 0, 64, "line 1, column 1: empty input", __LINE__);
    REFUSE(" \n ", "line 2, column 2: empty input");
    REFUSE("[", "line 1, column 2: unexpected end of input");
    REFUSE("[1,", "line 1, column 4: unexpected end of input");
    REFUSE("[1", "line 1, column 3: unexpected end of input");
    REFUSE("{", "line 1, column 2: unexpected end of input");
    REFUSE("{\"a\"", "line 1, column 5: unexpected end of input");
    REFUSE("{\"a\":", "line 1, column 6: unexpected end of input");
    REFUSE("{\"a\":1 ", "line 1, column 8: unexpected end of input");
    REFUSE("{\"a\":1,", "line 1, column 8: unexpected end of input");
}
END_TEST

START_TEST(structure_whitespace_is_only_four_bytes)
{
    REFUSE("\f[]", "line 1, column 1: expected a value, found U+000C");
    REFUSE("[1,\v2]", "line 1, column 4: expected a value, found U+000B");
    refuse_n("\0", 1, 64, "line 1, column 1: expected a value, found U+0000", __LINE__);
    REFUSE("\xC2\xA0[]", "line 1, column 1: expected a value, found U+00A0");
    REFUSE("[]\xC2\xA0", "line 1, column 3: trailing characters after the JSON value");
}
END_TEST

START_TEST(structure_bom_refused)
{
    REFUSE("\xEF\xBB\xBF{}", "line 1, column 1: byte order mark (BOM) is not allowed");
    REFUSE("\xEF\xBB\xBF", "line 1, column 1: byte order mark (BOM) is not allowed");
    REFUSE(" \xEF\xBB\xBF{}", "line 1, column 2: expected a value, found U+FEFF");
}
END_TEST

START_TEST(structure_positions_count_lines_and_characters)
{
    /* Columns count code points: é, 中 and 😀 are one column each. */
    REFUSE("[\"é中😀\", x]", "line 1, column 9: expected a value, found 'x'");
    REFUSE("\t\tx", "line 1, column 3: expected a value, found 'x'");
    REFUSE("[\n  1,\n  x]", "line 3, column 3: expected a value, found 'x'");
    REFUSE("[\r\n  1,\r\n  x]", "line 3, column 3: expected a value, found 'x'");
    REFUSE("[\r  1,\r  x]", "line 3, column 3: expected a value, found 'x'");
    REFUSE("[\n\n\r\n\r\r1,]", "line 6, column 2: trailing comma in array");
}
END_TEST

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc(depth * (lo + lc) + li + 1);
    ck_assert_ptr_nonnull(s);
    char *p = s;
    for (size_t i = 0; i < depth; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (size_t i = 0; i < depth; i++, p += lc)
        memcpy(p, close, lc);
    *p = 0;
    return s;
}

START_TEST(depth_limit_exact)
{
    char *s = nested(64, "[", "1", "]");
    accept_n(s, strlen(s), 64, __LINE__);
    free(s);
    s = nested(65, "[", "1", "]");
    refuse_n(s, strlen(s), 64, "line 1, column 65: nesting deeper than 64 levels", __LINE__);
    free(s);

    s = nested(64, "{\"a\":", "{}", "}");
    refuse_n(s, strlen(s), 64, "line 1, column 321: nesting deeper than 64 levels", __LINE__);
    free(s);
    s = nested(63, "{\"a\":", "{}", "}");
    accept_n(s, strlen(s), 64, __LINE__);
    free(s);

    /* Deeper than the inline frames: the stack moves to the heap. */
    s = nested(512, "[{\"k\":", "0", "}]");
    refuse_n(s, strlen(s), 512, "line 1, column 1537: nesting deeper than 512 levels", __LINE__);
    free(s);
    s = nested(256, "[{\"k\":", "[]", "}]");
    accept_n(s, strlen(s), 513, __LINE__);
    free(s);
}
END_TEST

START_TEST(depth_zero_allows_scalars_only)
{
    accept_n("1", 1, 0, __LINE__);
    accept_n("\"x\"", 3, 0, __LINE__);
    refuse_n("[]", 2, 0, "line 1, column 1: nesting deeper than 0 levels", __LINE__);
    refuse_n("{}", 2, -5, "line 1, column 1: nesting deeper than 0 levels", __LINE__);
    accept_n("[]", 2, 1, __LINE__);
    refuse_n("[[]]", 4, 1, "line 1, column 2: nesting deeper than 1 levels", __LINE__);
}
END_TEST

START_TEST(depth_huge_input_does_not_recurse)
{
    size_t n = 1000000;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    memset(s, '[', n);
    refuse_n(s, n, 512, "line 1, column 513: nesting deeper than 512 levels", __LINE__);
    /* With a limit above the input's depth the whole stack is used and the end is reached. */
    refuse_n(s, n, 2000000, "line 1, column 1000001: unexpected end of input", __LINE__);
    free(s);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Strings
 */
START_TEST(strings_control_characters)
{
    REFUSE("\"a\tb\"", "line 1, column 3: unescaped control character U+0009 in string");
    REFUSE("[\"a\nb\"]", "line 1, column 4: unescaped control character U+000A in string");
    REFUSE("\"\x1f\"", "line 1, column 2: unescaped control character U+001F in string");
    refuse_n("\"a\0\"", 4, 64, "line 1, column 3: unescaped control character U+0000 in string",
             __LINE__);
    ACCEPT("\"\x7f\"");
    ACCEPT("\"\\t\\n\\u0000\\u001f\"");
}
END_TEST

START_TEST(strings_escapes)
{
    ACCEPT("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    ACCEPT("\"\\u0041\\u00e9\\u4E2D\\uFFFF\"");
    REFUSE("\"\\x\"", "line 1, column 2: invalid escape '\\x'");
    REFUSE("\"\\U0041\"", "line 1, column 2: invalid escape '\\U'");
    REFUSE("\"\\'\"", "line 1, column 2: invalid escape '\\''");
    REFUSE("\"\\\x01\"", "line 1, column 2: invalid escape (backslash before U+0001)");
    REFUSE("\"\\u12\"", "line 1, column 2: invalid \\u escape (expected 4 hex digits)");
    REFUSE("\"\\u12G4\"", "line 1, column 2: invalid \\u escape (expected 4 hex digits)");
    REFUSE("\"ab\\u004", "line 1, column 4: invalid \\u escape (expected 4 hex digits)");
    REFUSE("\"abc", "line 1, column 1: unterminated string");
    REFUSE("[\"abc\\", "line 1, column 2: unterminated string");
    REFUSE("[\"abc\\\"]", "line 1, column 2: unterminated string");
}
END_TEST

START_TEST(strings_surrogate_escapes)
{
    ACCEPT("\"\\uD83D\\uDE00\"");
    ACCEPT("\"\\ud834\\udd1e\"");
    ACCEPT("\"\\uDBFF\\uDFFF\"");
    REFUSE("\"\\uD83D\"",
           "line 1, column 2: high surrogate \\uD83D not followed by a low surrogate");
    REFUSE("\"x\\uD83Dx\"",
           "line 1, column 3: high surrogate \\uD83D not followed by a low surrogate");
    REFUSE("\"\\uD83D\\u0041\"",
           "line 1, column 2: high surrogate \\uD83D not followed by a low surrogate");
    REFUSE("\"\\uD83D\\uD83D\"",
           "line 1, column 2: high surrogate \\uD83D not followed by a low surrogate");
    REFUSE("\"\\uD83D\\n\"",
           "line 1, column 2: high surrogate \\uD83D not followed by a low surrogate");
    REFUSE("\"\\uD83D\\uDE0", "line 1, column 2: high surrogate \\uD83D not followed by a low "
                              "surrogate");
    REFUSE("\"\\uDE00\"", "line 1, column 2: lone low surrogate \\uDE00");
    REFUSE("\"\\udd1e\\ud834\"", "line 1, column 2: lone low surrogate \\uDD1E");
}
END_TEST

START_TEST(strings_utf8)
{
    ACCEPT("\"é中😀\"");
    ACCEPT("\"\xF4\x8F\xBF\xBF\"");                                    /* U+10FFFF */
    ACCEPT("\"\xEF\xBF\xBF\xED\x9F\xBF\"");                            /* U+FFFF, U+D7FF */
    REFUSE("\"\xC0\xAF\"", "line 1, column 2: invalid UTF-8");         /* overlong '/' */
    REFUSE("\"\xC1\xBF\"", "line 1, column 2: invalid UTF-8");         /* overlong */
    REFUSE("\"\xE0\x80\xAF\"", "line 1, column 2: invalid UTF-8");     /* overlong 3 bytes */
    REFUSE("\"\xF0\x80\x80\xAF\"", "line 1, column 2: invalid UTF-8"); /* overlong 4 bytes */
    REFUSE("\"a\xED\xA0\x80\"", "line 1, column 3: invalid UTF-8");    /* U+D800 */
    REFUSE("\"\xED\xBF\xBF\"", "line 1, column 2: invalid UTF-8");     /* U+DFFF */
    REFUSE("\"\xF4\x90\x80\x80\"", "line 1, column 2: invalid UTF-8"); /* U+110000 */
    REFUSE("\"\xF5\x80\x80\x80\"", "line 1, column 2: invalid UTF-8"); /* lead F5 */
    REFUSE("\"\xE4\xB8\"", "line 1, column 2: invalid UTF-8");         /* truncated */
    REFUSE("\"é\xE4\xB8", "line 1, column 3: invalid UTF-8");          /* truncated by the end */
    REFUSE("\"\xE4\"", "line 1, column 2: invalid UTF-8");             /* lead then quote */
    REFUSE("\"\x80\"", "line 1, column 2: invalid UTF-8");             /* stray continuation */
    REFUSE("\"\xFF\"", "line 1, column 2: invalid UTF-8");
    REFUSE("\xFF", "line 1, column 1: invalid UTF-8");
    REFUSE("[\xE9]", "line 1, column 2: invalid UTF-8"); /* ISO-8859-1 é outside a string */
}
END_TEST

/* The 8-byte scan must find a special byte at every offset and alignment, and stop at the end. */
START_TEST(strings_every_alignment)
{
    char buf[80], want[128];
    for (size_t pre = 0; pre < 8; pre++) {
        for (size_t k = 0; k < 40; k++) {
            size_t n = 0;
            for (size_t i = 0; i < pre; i++)
                buf[n++] = ' ';
            buf[n++] = '"';
            for (size_t i = 0; i < k; i++)
                buf[n++] = 'a';
            size_t bad = n;
            buf[n++] = '\x01';
            buf[n++] = '"';
            snprintf(want, sizeof(want),
                     "line 1, column %zu: unescaped control character U+0001 in string", bad + 1);
            refuse_n(buf, n, 64, want, __LINE__);

            buf[bad] = 'b';
            accept_n(buf, n, 64, __LINE__);
            snprintf(want, sizeof(want), "line 1, column %zu: unterminated string", pre + 1);
            refuse_n(buf, n - 1, 64, want, __LINE__);

            buf[bad] = '\x80';
            snprintf(want, sizeof(want), "line 1, column %zu: invalid UTF-8", bad + 1);
            refuse_n(buf, n, 64, want, __LINE__);

            memcpy(buf + bad, "\\n\"", 3);
            accept_n(buf, bad + 3, 64, __LINE__);
            memcpy(buf + bad, "\xC3\xA9\"", 3);
            accept_n(buf, bad + 3, 64, __LINE__);
        }
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Duplicate keys
 */
START_TEST(keys_duplicates_small_objects)
{
    REFUSE("{\"a\":1,\"a\":2}", "line 1, column 8: duplicate key \"a\"");
    REFUSE("{\"a\":1,\"\\u0061\":2}", "line 1, column 8: duplicate key \"a\"");
    REFUSE("{\"\\u0061\":1,\"a\":2}", "line 1, column 13: duplicate key \"a\"");
    REFUSE("{\"é\":1,\"\\u00e9\":2}", "line 1, column 8: duplicate key \"é\"");
    REFUSE("{\"😀\":1,\"\\uD83D\\uDE00\":2}", "line 1, column 8: duplicate key \"😀\"");
    REFUSE("{\"\\/\":1,\"/\":2}", "line 1, column 9: duplicate key \"/\"");
    REFUSE("{\"\":1,\"\":2}", "line 1, column 7: duplicate key \"\"");
    REFUSE("{\"a\\\"b\":1,\"a\\\"b\":2}", "line 1, column 11: duplicate key \"a\\\"b\"");
    REFUSE("{\"\\u0000\":1,\"\\u0000\":2}", "line 1, column 13: duplicate key \"\\u0000\"");
    REFUSE("{\"t\\t\":1,\"t\\u0009\":2}", "line 1, column 10: duplicate key \"t\\u0009\"");
    REFUSE("{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", "line 1, column 19: duplicate key \"c\"");
    REFUSE("{\"a\":1,\"b\":2,\"b\":3,\"a\":4}", "line 1, column 14: duplicate key \"b\"");
    REFUSE("{\"a\" :1,\n \"a\"\t:2}", "line 2, column 2: duplicate key \"a\"");
    ACCEPT("{\"a\":{\"a\":1},\"b\":{\"a\":2}}");
    ACCEPT("[{\"a\":1},{\"a\":1}]");
    ACCEPT("{\"ab\":1,\"a\":2,\"b\":3,\"ba\":4}");
    ACCEPT("{\"\\u0000a\":1,\"\\u0000b\":1,\"\":0}");
    ACCEPT("{\"A\":1,\"a\":1}");
    ACCEPT("{\"a\":{\"b\":{\"c\":1}},\"b\":{\"c\":{\"a\":1}},\"c\":[{\"a\":1,\"b\":2}]}");
    /* The check runs when the object closes: an unclosed object reports the end of input. */
    REFUSE("{\"a\":1,\"a\":2", "line 1, column 13: unexpected end of input");
}
END_TEST

START_TEST(keys_duplicate_message_is_cut)
{
    char json[512], want[256];
    char key[101];
    memset(key, 'k', 100);
    key[100] = 0;
    snprintf(json, sizeof(json), "{\"%s\":1,\"%s\":2}", key, key);
    snprintf(want, sizeof(want), "line 1, column 107: duplicate key \"%.64s...\"", key);
    REFUSED(json, want);

    /* Cutting never splits a multi-byte character: 21 x "中" is 63 bytes, the 22nd would pass 64.
     */
    char wide[200] = "", quoted[100] = "";
    for (int i = 0; i < 30; i++)
        strcat(wide, "中");
    for (int i = 0; i < 21; i++)
        strcat(quoted, "中");
    snprintf(json, sizeof(json), "{\"%s\":1,\"%s\":2}", wide, wide);
    snprintf(want, sizeof(want), "line 1, column 37: duplicate key \"%s...\"", quoted);
    REFUSED(json, want);
}
END_TEST

/* An object with nkeys keys "k0".."k{n-1}" then the extra keys, each valued 0. */
static char *object_with(size_t nkeys, const char *const *extra, size_t nextra, bool escape)
{
    size_t cap = (nkeys + nextra) * 32 + 16, n = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    s[n++] = '{';
    for (size_t i = 0; i < nkeys + nextra; i++) {
        if (i) s[n++] = ',';
        if (i < nkeys)
            n += (size_t)snprintf(s + n, cap - n, escape ? "\"\\u006b%zu\":0" : "\"k%zu\":0", i);
        else
            n += (size_t)snprintf(s + n, cap - n, "\"%s\":0", extra[i - nkeys]);
    }
    s[n++] = '}';
    s[n] = 0;
    return s;
}

/* Column of the n-th occurrence (1-based) of needle in s (single-line ASCII input). */
static size_t column_of(const char *s, const char *needle, int nth)
{
    const char *p = s;
    for (int i = 0; i < nth; i++) {
        p = strstr(i ? p + 1 : p, needle);
        ck_assert_ptr_nonnull(p);
    }
    return (size_t)(p - s) + 1;
}

START_TEST(keys_duplicates_large_objects)
{
    char want[128];
    for (int esc = 0; esc < 2; esc++) {
        char *s = object_with(10000, NULL, 0, esc);
        accept_n(s, strlen(s), 64, __LINE__);
        free(s);

        /* Two duplicated keys: the one whose second occurrence comes first is reported. */
        const char *two[] = {"k50", "k10", "k7", "k7"};
        s = object_with(10000, two, 4, esc);
        snprintf(want, sizeof(want), "line 1, column %zu: duplicate key \"k50\"",
                 column_of(s, "\"k50\"", esc ? 1 : 2));
        refuse_n(s, strlen(s), 64, want, __LINE__);
        free(s);

        const char *three[] = {"k9999", "k9999"};
        s = object_with(10000, three, 2, esc);
        snprintf(want, sizeof(want), "line 1, column %zu: duplicate key \"k9999\"",
                 column_of(s, "\"k9999\"", esc ? 1 : 2));
        refuse_n(s, strlen(s), 64, want, __LINE__);
        free(s);
    }
    /* Around the switch from the pairwise check to sorting. */
    for (size_t n = 14; n <= 18; n++) {
        const char *first[] = {"k0"};
        char *s = object_with(n, first, 1, false);
        snprintf(want, sizeof(want), "line 1, column %zu: duplicate key \"k0\"",
                 column_of(s, "\"k0\"", 2));
        refuse_n(s, strlen(s), 64, want, __LINE__);
        free(s);
        s = object_with(n, NULL, 0, false);
        accept_n(s, strlen(s), 64, __LINE__);
        free(s);
    }
}
END_TEST

START_TEST(keys_large_nested_objects_keep_their_own_keys)
{
    /* {"k0":0,...,"k99":0,"in":{...},"in2":{...},"<last>":0} where the inner objects hold the same
     * 100 keys (escaped): they are checked and popped before the outer object continues. */
    char *inner = object_with(100, NULL, 0, true);
    size_t cap = strlen(inner) * 3 + 2048;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    const char *last[] = {"x", "k7"};
    for (int dup = 0; dup < 2; dup++) {
        size_t n = 0;
        s[n++] = '{';
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(s + n, cap - n, "\"k%d\":0,", i);
        n += (size_t)snprintf(s + n, cap - n, "\"in\":%s,\"in2\":%s,\"%s\":0}", inner, inner,
                              last[dup]);
        if (!dup) {
            accept_n(s, n, 64, __LINE__);
            continue;
        }
        char want[128];
        snprintf(want, sizeof(want), "line 1, column %zu: duplicate key \"k7\"",
                 column_of(s, "\"k7\"", 2));
        refuse_n(s, n, 64, want, __LINE__);
    }
    free(s);
    free(inner);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Bounds and robustness
 */
START_TEST(bounds_every_prefix_is_refused)
{
    static const char doc[] = "{\"name\":\"caf\\u00e9 \xE4\xB8\xAD\",\"n\":[-1.5e+3,0,true,false,"
                              "null],\"o\":{\"\\uD83D\\uDE00\":{}}, \"s\":\"\\\"\\\\\"}";
    accept_n(doc, sizeof(doc) - 1, 64, __LINE__);
    for (size_t n = 0; n + 1 < sizeof(doc); n++) {
        struct trl_diag d;
        trl_diag_init(&d);
        ck_assert_int_eq(check_n(doc, n, 64, &d), TRL_EJSON);
        ck_assert(strncmp(d.message, "line 1, column ", 15) == 0);
        trl_diag_reset(&d);
    }
}
END_TEST

START_TEST(bounds_null_diag_is_allowed)
{
    ck_assert_int_eq(check_n("[1,]", 4, 64, NULL), TRL_EJSON);
    ck_assert_int_eq(check_n("{\"a\":1,\"a\":1}", 13, 64, NULL), TRL_EJSON);
    ck_assert_int_eq(check_n("[1]", 3, 64, NULL), 0);
}
END_TEST

START_TEST(bounds_diag_records_code_and_source)
{
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(check_n("[01]", 4, 64, &d), TRL_EJSON);
    ck_assert_int_eq(d.code, TRL_EJSON);
    ck_assert_ptr_nonnull(d.file);
    ck_assert_int_gt(d.line, 0);
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Throughput (printed, not asserted: sanitizer builds are much slower)
 */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void time_it(const char *what, const char *s, size_t n)
{
    int reps = 20;
    double t0 = now_s();
    for (int i = 0; i < reps; i++)
        ck_assert_int_eq(trl_json_check(s, n, 64, NULL), 0);
    double dt = now_s() - t0;
    printf("json_check %-28s %7.2f MB in %8.3f ms: %8.1f MB/s\n", what, n / 1e6, dt * 1e3 / reps,
           (double)n * reps / dt / 1e6);
}

START_TEST(perf_one_megabyte)
{
    size_t cap = (1u << 20) + 4096, n = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);

    /* A flat object of records-like members. */
    s[n++] = '{';
    for (int i = 0; n < (1u << 20) - 200; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "%s\"field_%06d\":{\"title\":\"Quarterly partner campaign %d\","
                              "\"budget\":%d.50,\"active\":true,\"tags\":[\"north\",\"q3\"]}",
                              i ? "," : "", i, i, i * 7);
    s[n++] = '}';
    time_it("object (1 MB)", s, n);

    /* A pretty-printed array of numbers. */
    n = 0;
    s[n++] = '[';
    for (int i = 0; n < (1u << 20) - 64; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s\n    %d.%03de%d", i ? "," : "", i, i % 1000,
                              i % 30);
    s[n++] = '\n';
    s[n++] = ']';
    time_it("pretty array of numbers", s, n);

    /* One long ASCII string. */
    n = 0;
    s[n++] = '"';
    for (; n < (1u << 20) - 1; n++)
        s[n] = (char)('a' + n % 26);
    s[n++] = '"';
    time_it("one 1 MB string", s, n);
    free(s);
}
END_TEST

static Suite *json_check_suite(void)
{
    Suite *s = suite_create("json_check");
    TCase *tc;

    tc = tcase_create("suite");
    tcase_add_test(tc, suite_y_files_are_accepted_duplicate_keys_only_by_the_grammar);
    tcase_add_test(tc, suite_n_files_are_refused);
    tcase_add_test(tc, suite_i_files_follow_the_recorded_decisions);
    tcase_add_test(tc, suite_selected_messages);
    suite_add_tcase(s, tc);

    tc = tcase_create("numbers");
    tcase_add_test(tc, numbers_valid);
    tcase_add_test(tc, numbers_strict_grammar);
    tcase_add_test(tc, literals_strict);
    suite_add_tcase(s, tc);

    tc = tcase_create("structure");
    tcase_add_test(tc, structure_trailing_commas_and_separators);
    tcase_add_test(tc, structure_one_value_only);
    tcase_add_test(tc, structure_empty_and_truncated);
    tcase_add_test(tc, structure_whitespace_is_only_four_bytes);
    tcase_add_test(tc, structure_bom_refused);
    tcase_add_test(tc, structure_positions_count_lines_and_characters);
    suite_add_tcase(s, tc);

    tc = tcase_create("depth");
    tcase_add_test(tc, depth_limit_exact);
    tcase_add_test(tc, depth_zero_allows_scalars_only);
    tcase_add_test(tc, depth_huge_input_does_not_recurse);
    suite_add_tcase(s, tc);

    tc = tcase_create("strings");
    tcase_add_test(tc, strings_control_characters);
    tcase_add_test(tc, strings_escapes);
    tcase_add_test(tc, strings_surrogate_escapes);
    tcase_add_test(tc, strings_utf8);
    tcase_add_test(tc, strings_every_alignment);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, keys_duplicates_small_objects);
    tcase_add_test(tc, keys_duplicate_message_is_cut);
    tcase_add_test(tc, keys_duplicates_large_objects);
    tcase_add_test(tc, keys_large_nested_objects_keep_their_own_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_test(tc, bounds_every_prefix_is_refused);
    tcase_add_test(tc, bounds_null_diag_is_allowed);
    tcase_add_test(tc, bounds_diag_records_code_and_source);
    suite_add_tcase(s, tc);

    tc = tcase_create("perf");
    tcase_add_test(tc, perf_one_megabyte);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_check_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
