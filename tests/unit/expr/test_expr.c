/*
 * test_expr.c — the expression language: parsing, type checking, evaluation, errors with columns,
 * index plans, value ordering, and a randomized comparison against a reference evaluator.
 */
#include "expr/expr.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * A marketing_request-like schema.
 */
enum {
    C_TITLE,
    C_PARTNER,
    C_REGION,
    C_BUDGET,
    C_START,
    C_CREATED,
    C_UPDATED,
    C_STATE,
    C_OWNER,
    C_ORG,
    C_COUNT,
    C_ACTIVE,
    C_REF,
    C_NOTES,
    NCOLS
};

static const char *const region_opts[] = {"north", "south", "east", "west"};

static const struct col_def {
    const char *name;
    enum trl_ftype type;
    int scale;
    bool indexed;
    const char *const *opts;
    size_t nopts;
} cols[NCOLS] = {
    [C_TITLE] = {"title", TRL_FT_TEXT, 0, false, NULL, 0},
    [C_PARTNER] = {"partner", TRL_FT_TEXT, 0, false, NULL, 0},
    [C_REGION] = {"region", TRL_FT_ENUM, 0, true, region_opts, 4},
    [C_BUDGET] = {"budget", TRL_FT_DECIMAL, 2, true, NULL, 0},
    [C_START] = {"start_date", TRL_FT_DATE, 0, false, NULL, 0},
    [C_CREATED] = {"created_at", TRL_FT_DATETIME, 0, true, NULL, 0},
    [C_UPDATED] = {"updated_at", TRL_FT_DATETIME, 0, false, NULL, 0},
    [C_STATE] = {"state", TRL_FT_TEXT, 0, true, NULL, 0},
    [C_OWNER] = {"owner", TRL_FT_USER, 0, false, NULL, 0},
    [C_ORG] = {"org", TRL_FT_TEXT, 0, true, NULL, 0},
    [C_COUNT] = {"count", TRL_FT_INT, 0, false, NULL, 0},
    [C_ACTIVE] = {"active", TRL_FT_BOOL, 0, false, NULL, 0},
    [C_REF] = {"ref_id", TRL_FT_REF, 0, false, NULL, 0},
    [C_NOTES] = {"notes", TRL_FT_LONGTEXT, 0, false, NULL, 0},
};

static int resolve(void *ud, const char *name, size_t n, struct trl_expr_field *out)
{
    (void)ud;
    if (n == 6 && memcmp(name, "secret", 6) == 0) return TRL_EFORBIDDEN;
    for (int i = 0; i < NCOLS; i++) {
        if (strlen(cols[i].name) == n && memcmp(cols[i].name, name, n) == 0) {
            out->id = i;
            out->type = cols[i].type;
            out->scale = cols[i].scale;
            out->indexed = cols[i].indexed;
            out->options = cols[i].opts;
            out->noptions = cols[i].nopts;
            return 0;
        }
    }
    return TRL_ENOTFOUND;
}

struct rec {
    struct trl_value v[NCOLS]; /* values by column id */
    int fail_id;               /* column whose read fails, -1 for none */
};

static int get(void *ud, int id, struct trl_value *out)
{
    const struct rec *r = ud;
    if (id == r->fail_id) return TRL_EIO;
    ck_assert_int_ge(id, 0);
    ck_assert_int_lt(id, NCOLS);
    *out = r->v[id];
    return 0;
}

static struct trl_value vs(const char *s)
{
    return (struct trl_value){.kind = TRL_V_BYTES, .s = s, .n = strlen(s)};
}

static struct trl_value vi(int64_t i)
{
    return (struct trl_value){.kind = TRL_V_INT, .i = i};
}

static int64_t ms_of(const char *s)
{
    int64_t ms = 0;
    ck_assert_int_eq(trl_datetime_parse(s, strlen(s), &ms), 0);
    return ms;
}

static int32_t days_of(const char *s)
{
    int32_t d = 0;
    ck_assert_int_eq(trl_date_parse(s, strlen(s), &d), 0);
    return d;
}

static const struct trl_principal alice = {
    .user = "alice", .org = "acme", .role = "marketer", .region = "east"};

static struct trl_expr_env env_alice(void)
{
    return (struct trl_expr_env){.user = &alice, .now_ms = ms_of("2026-03-01T10:00:00Z")};
}

static struct rec sample(void)
{
    struct rec r = {.fail_id = -1};
    r.v[C_TITLE] = vs("Spring 促销 Campaign");
    r.v[C_PARTNER] = (struct trl_value){.kind = TRL_V_NULL};
    r.v[C_REGION] = vs("east");
    r.v[C_BUDGET] = vi(1230);
    r.v[C_START] = vi(days_of("2026-03-01"));
    r.v[C_CREATED] = vi(ms_of("2026-01-15T08:00:00Z"));
    r.v[C_UPDATED] = vi(ms_of("2026-01-16T08:00:00Z"));
    r.v[C_STATE] = vs("submitted");
    r.v[C_OWNER] = vs("alice");
    r.v[C_ORG] = vs("acme");
    r.v[C_COUNT] = vi(5);
    r.v[C_ACTIVE] = vi(1);
    r.v[C_REF] = vi(42);
    r.v[C_NOTES] = vs("Line one\nLINE TWO");
    return r;
}

/* Parses src (must succeed) and evaluates it on r with env. */
static bool eval_env(const char *src, const struct rec *r, const struct trl_expr_env *env)
{
    struct trl_diag d;
    struct trl_expr *e = NULL;
    trl_diag_init(&d);
    int rc = trl_expr_parse(src, strlen(src), resolve, NULL, &e, &d);
    ck_assert_msg(rc == 0, "parse of <%s> failed: %s", src, d.message);
    bool res = false;
    rc = trl_expr_eval(e, get, (void *)r, env, &res, &d);
    ck_assert_msg(rc == 0, "eval of <%s> failed: %s", src, d.message);
    trl_expr_free(e);
    trl_diag_reset(&d);
    return res;
}

static bool ev(const char *src)
{
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    return eval_env(src, &r, &env);
}

#define T(src) ck_assert_msg(ev(src), "expected true: %s", src)
#define F(src) ck_assert_msg(!ev(src), "expected false: %s", src)

/* Parses src expecting failure with code, exact message and field. */
static void expect_err_n(const char *src, size_t n, int code, const char *msg, const char *field)
{
    struct trl_diag d;
    struct trl_expr *e = (struct trl_expr *)&d; /* must be reset to NULL */
    trl_diag_init(&d);
    int rc = trl_expr_parse(src, n, resolve, NULL, &e, &d);
    ck_assert_msg(rc == code, "<%.80s>: rc %d (%s), want %d", src, rc, d.message, code);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(d.code, code);
    if (msg) ck_assert_str_eq(d.message, msg);
    if (field) ck_assert_str_eq(d.field, field);
    trl_diag_reset(&d);
}

static void expect_err(const char *src, const char *msg, const char *field)
{
    expect_err_n(src, strlen(src), TRL_EQUERY, msg, field);
}

/* ---------------------------------------------------------------------------------------------
 * Operators
 */
/* Parses src with parameters; returns its result on the sample record, or -1 when the parse
 * failed (the message in msg). */
static int with_params(const char *src, const char *const *names, const char *const *values,
                       size_t n, char *msg, size_t msgn)
{
    struct trl_diag d;
    struct trl_expr *e = NULL;
    trl_diag_init(&d);
    struct trl_expr_params p = {names, values, n, false};
    int rc = trl_expr_parse_params(src, strlen(src), resolve, NULL, &p, &e, &d);
    if (rc) {
        snprintf(msg, msgn, "%s", d.message);
        trl_diag_reset(&d);
        return -1;
    }
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    bool res = false;
    ck_assert_int_eq(trl_expr_eval(e, get, &r, &env, &res, &d), 0);
    trl_expr_free(e);
    trl_diag_reset(&d);
    return res;
}

START_TEST(parameters_are_bound_as_typed_values)
{
    char msg[512];
    const char *names[] = {"min", "region", "from", "flag", "title", "n"};
    const char *vals[] = {"12.30", "east", "2026-02-01", "true", "x\" || true || title = \"", "5"};
    /* Each takes the type of the column it is compared with. */
    ck_assert_int_eq(with_params("budget >= @param.min", names, vals, 6, msg, sizeof(msg)), 1);
    ck_assert_int_eq(with_params("budget > @param.min", names, vals, 6, msg, sizeof(msg)), 0);
    ck_assert_int_eq(with_params("region = @param.region", names, vals, 6, msg, sizeof(msg)), 1);
    ck_assert_int_eq(with_params("start_date > @param.from", names, vals, 6, msg, sizeof(msg)), 1);
    ck_assert_int_eq(with_params("active = @param.flag", names, vals, 6, msg, sizeof(msg)), 1);
    ck_assert_int_eq(with_params("count = @param.n && region in (@param.region, \"west\")", names,
                                 vals, 6, msg, sizeof(msg)),
                     1);
    /* Bound, never spliced: quotes and operators in a value are text. */
    ck_assert_int_eq(with_params("title = @param.title", names, vals, 6, msg, sizeof(msg)), 0);
    /* A value that does not fit its column names the parameter. */
    const char *bad[] = {"abc", "east", "2026-02-30", "yes", "", "5"};
    ck_assert_int_eq(with_params("budget >= @param.min", names, bad, 6, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "@param.min"), "%s", msg);
    ck_assert_int_eq(with_params("start_date > @param.from", names, bad, 6, msg, sizeof(msg)), -1);
    ck_assert_int_eq(with_params("active = @param.flag", names, bad, 6, msg, sizeof(msg)), -1);
    ck_assert_int_eq(with_params("region = @param.min", names, bad, 6, msg, sizeof(msg)), -1);
    /* Unknown parameters, and parameters where none are given. */
    ck_assert_int_eq(with_params("budget > @param.max", names, vals, 6, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "unknown parameter '@param.max'"), "%s", msg);
    ck_assert_int_eq(with_params("budget > @param.min", NULL, NULL, 0, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "takes no parameters"), "%s", msg);
    const char *unset[] = {NULL};
    const char *one[] = {"min"};
    ck_assert_int_eq(with_params("budget > @param.min", one, unset, 1, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "has no value"), "%s", msg);
}
END_TEST

START_TEST(comparison_operators_on_each_type)
{
    T("count = 5");
    F("count = 6");
    T("count != 6");
    F("count != 5");
    T("count < 6");
    F("count < 5");
    T("count <= 5");
    F("count <= 4");
    T("count > 4");
    F("count > 5");
    T("count >= 5");
    F("count >= 6");
    T("count > -1");
    T("budget = 12.30");
    T("budget = 12.3");
    T("budget = \"12.3\"");
    T("budget > 12");
    T("budget < 12.31");
    F("budget > 12.30");
    T("budget >= -100");
    T("active = true");
    F("active = false");
    T("active != false");
    T("active > false");
    T("ref_id = 42");
    F("ref_id = 43");
    T("title = \"Spring 促销 Campaign\"");
    T("title != \"spring 促销 campaign\"");
    T("state > \"reject\"");
    T("state < \"t\"");
    T("state >= \"submitted\"");
    F("state > \"submitted\"");
    T("region = \"east\"");
    T("region != \"west\"");
    T("region < \"north\"");
    T("owner = \"alice\"");
    T("notes ~ \"line two\"");
}
END_TEST

START_TEST(text_order_is_byte_order)
{
    /* "Z" (0x5A) < "a" (0x61) < "é" (0xC3 0xA9) < "促" (0xE4 ...); a prefix sorts first. */
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    r.v[C_TITLE] = vs("a");
    ck_assert(eval_env("title > \"Z\"", &r, &env));
    ck_assert(eval_env("title < \"é\"", &r, &env));
    ck_assert(eval_env("title < \"aa\"", &r, &env));
    r.v[C_TITLE] = vs("é");
    ck_assert(eval_env("title < \"促\"", &r, &env));
    ck_assert(!eval_env("title < \"z\"", &r, &env));
}
END_TEST

START_TEST(contains_and_prefix)
{
    T("title ~ \"促销\"");
    T("title ~ \"spring\"");
    T("title ~ \"SPRING 促销 CAMPAIGN\"");
    T("title ~ \"\"");
    T("title ~ \"campaign\"");
    F("title ~ \"campaigns\"");
    F("title ~ \"促销活动\"");
    T("title ^= \"Spring\"");
    F("title ^= \"spring\"");
    T("title ^= \"\"");
    T("title ^= \"Spring 促\"");
    F("title ^= \"促销\"");
    T("notes ~ \"one\\nline\"");
    T("region ~ \"AS\"");
    T("region ^= \"ea\"");
    T("owner ~ \"LIC\"");
    T("title ~ \"\\u4fc3\\u9500\""); /* 促销 as escapes */
    /* Only ASCII folds: "É" does not match "é". */
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    r.v[C_TITLE] = vs("Café Déjà");
    ck_assert(eval_env("title ~ \"café\"", &r, &env));
    ck_assert(!eval_env("title ~ \"CAFÉ\"", &r, &env));
    /* A needle with a repeated prefix needs the KMP fallback to be right. */
    r.v[C_TITLE] = vs("aaaabaaaab");
    ck_assert(eval_env("title ~ \"AAAB\"", &r, &env));
    ck_assert(eval_env("title ~ \"abaaaab\"", &r, &env));
    ck_assert(!eval_env("title ~ \"aaaaa\"", &r, &env));
    r.v[C_TITLE] = vs("abababc");
    ck_assert(eval_env("title ~ \"ababc\"", &r, &env));
}
END_TEST

START_TEST(precedence_and_parentheses)
{
    /* && binds tighter than ||. */
    T("count = 1 || count = 5 && region = \"east\"");
    T("count = 5 || count = 1 && region = \"west\"");
    F("(count = 5 || count = 1) && region = \"west\"");
    T("region = \"west\" && count = 1 || count = 5");
    F("region = \"west\" && (count = 1 || count = 5)");
    T("((count = 5))");
    T("count=5&&region=\"east\"");
    T("\tcount = 5\n&&\r\nregion = \"east\" ");
    T("!count = 6");
    F("!count = 5");
    T("!!count = 5");
    T("!(count = 6 || count = 7)");
    F("!(count = 6 || count = 5)");
    T("!count = 6 && count = 5");
    F("!(count = 6 && count = 6) && count = 6");
    T("count = 1 || count = 2 || count = 3 || count = 5");
    F("count = 5 && count = 5 && count = 5 && count = 4");
    T("(count = 5 && (region = \"east\" && (active = true)))");
}
END_TEST

START_TEST(in_and_not_in)
{
    T("region in (\"east\")");
    T("region in (\"north\", \"east\")");
    F("region in (\"north\", \"west\")");
    T("region not in (\"north\", \"west\")");
    F("region not in (\"east\")");
    T("count in (1, 2, 5)");
    T("budget in (1, 12.3)");
    T("state in (\"draft\", \"submitted\")");
    T("start_date in (\"2026-03-01\")");
    F("partner in (\"x\", \"y\")");
    T("partner not in (\"x\", \"y\")");
    T("partner in (null, \"y\")");
    F("partner not in (null)");
    T("org in (@user.org)");
    T("region in (@user.region, \"north\")");
}
END_TEST

START_TEST(null_tests)
{
    T("partner = null");
    F("partner != null");
    F("title = null");
    T("title != null");
    /* A comparison with an absent value is false, except != which is true. */
    F("partner = \"x\"");
    T("partner != \"x\"");
    F("partner < \"x\"");
    F("partner > \"x\"");
    F("partner ~ \"\"");
    F("partner ^= \"\"");
    T("!partner ~ \"x\"");
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    r.v[C_COUNT] = (struct trl_value){.kind = TRL_V_NULL};
    ck_assert(!eval_env("count >= 0", &r, &env));
    ck_assert(!eval_env("count < 0", &r, &env));
    ck_assert(eval_env("count != 0", &r, &env));
    ck_assert(eval_env("count = null", &r, &env));
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Literals
 */
START_TEST(decimal_literals_scale_to_the_column)
{
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    r.v[C_BUDGET] = vi(1230);
    ck_assert(eval_env("budget = \"12.3\"", &r, &env));
    ck_assert(eval_env("budget = 12.30", &r, &env));
    ck_assert(eval_env("budget = 12.300", &r, &env)); /* zeros past the scale are harmless */
    r.v[C_BUDGET] = vi(1200);
    ck_assert(eval_env("budget = 12", &r, &env));
    r.v[C_BUDGET] = vi(-5);
    ck_assert(eval_env("budget = -0.05", &r, &env));
    ck_assert(eval_env("budget < 0", &r, &env));
    expect_err("budget = 12.345",
               "column 10: field 'budget' allows 2 decimal places; 12.345 has more", "budget");
    expect_err("budget = \"abc\"", "column 10: field 'budget' is decimal; \"abc\" is not a decimal",
               "budget");
    expect_err("budget > 99999999999999999999",
               "column 10: field 'budget' is decimal; 99999999999999999999 is out of range",
               "budget");
}
END_TEST

START_TEST(date_and_datetime_literals)
{
    T("start_date = \"2026-03-01\"");
    T("start_date > \"2026-02-28\"");
    F("start_date < \"2026-03-01\"");
    T("created_at = \"2026-01-15T08:00:00Z\"");
    T("created_at = \"2026-01-15T16:00:00+08:00\"");
    T("created_at = \"2026-01-15T08:00:00.000Z\"");
    T("created_at > \"2026-01-15T07:59:59.999Z\"");
    T("created_at >= \"2026-01-15\""); /* a date means its midnight UTC */
    F("created_at >= \"2026-01-16\"");
    expect_err("start_date = \"2026-02-30\"",
               "column 14: field 'start_date' is date; \"2026-02-30\" is not a date "
               "(\"YYYY-MM-DD\")",
               "start_date");
    expect_err("start_date = 20260301",
               "column 14: field 'start_date' is date; 20260301 is not a date (\"YYYY-MM-DD\")",
               "start_date");
    expect_err("created_at < \"yesterday\"",
               "column 14: field 'created_at' is datetime; \"yesterday\" is not an RFC 3339 time "
               "(\"2026-01-31T09:00:00Z\")",
               "created_at");
}
END_TEST

START_TEST(other_literals)
{
    /* int range */
    T("count < 9223372036854775807");
    T("count > -9223372036854775808");
    expect_err("count < 9223372036854775808",
               "column 9: field 'count' is int; 9223372036854775808 is out of range", "count");
    expect_err("count = 1.5", "column 9: field 'count' is int; 1.5 is not an integer", "count");
    expect_err("count = \"5\"", "column 9: field 'count' is int; \"5\" is not an integer", "count");
    expect_err("ref_id = true", "column 10: field 'ref_id' is ref; 'true' is not an integer",
               "ref_id");
    expect_err("active = 1", "column 10: field 'active' is bool; 1 is not true or false", "active");
    expect_err("title = 5", "column 9: field 'title' is text; 5 is not a string (quote it)",
               "title");
    expect_err("title = false", "column 9: field 'title' is text; 'false' is not a string",
               "title");
    expect_err("region=\"middle\"",
               "column 8: 'region' has no option \"middle\" (options: north, south, east, west)",
               "region");
    expect_err("region in (\"east\", \"East\")",
               "column 20: 'region' has no option \"East\" (options: north, south, east, west)",
               "region");
    /* String escapes. */
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    r.v[C_TITLE] = vs("q\"b\\s/\b\f\n\r\té😀");
    ck_assert(eval_env("title = \"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"", &r, &env));
    ck_assert(eval_env("title = \"q\\u0022b\\u005Cs/\\u0008\\u000c\\u000A\\r\\tÉ\" || title ~ "
                       "\"\\uD83D\\uDE00\"",
                       &r, &env));
    r.v[C_TITLE] = (struct trl_value){.kind = TRL_V_BYTES, .s = "a\0b", .n = 3};
    ck_assert(eval_env("title = \"a\\u0000b\"", &r, &env));
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Variables and column comparisons
 */
START_TEST(variables)
{
    struct rec r = sample();
    struct trl_expr_env env = env_alice();
    ck_assert(eval_env("org = @user.org", &r, &env));
    ck_assert(eval_env("owner = @user.id", &r, &env));
    ck_assert(eval_env("region = @user.region", &r, &env));
    ck_assert(eval_env("title ~ @user.role || state != @user.role", &r, &env));
    ck_assert(eval_env("created_at < @now", &r, &env));
    ck_assert(!eval_env("created_at > @now", &r, &env));
    /* @now on a date column uses its day; @today is the day, or its midnight for datetimes. */
    ck_assert(eval_env("start_date = @now", &r, &env));
    ck_assert(eval_env("start_date = @today", &r, &env));
    ck_assert(eval_env("start_date <= @today && start_date >= @today", &r, &env));
    r.v[C_CREATED] = vi(ms_of("2026-03-01T00:00:00Z"));
    ck_assert(eval_env("created_at = @today", &r, &env));
    ck_assert(eval_env("created_at < @now", &r, &env));
    /* Before the epoch the day still floors. */
    env.now_ms = ms_of("1969-12-31T23:00:00Z");
    r.v[C_START] = vi(-1);
    ck_assert(eval_env("start_date = @today", &r, &env));
    /* Without a user every @user.* is null: = is false, != is true. */
    env.user = NULL;
    ck_assert(!eval_env("org = @user.org", &r, &env));
    ck_assert(eval_env("org != @user.org", &r, &env));
    ck_assert(!eval_env("org in (@user.org)", &r, &env));
    /* An empty principal field counts as absent, even against an empty value. */
    struct trl_principal sys = {.user = "", .org = "", .role = "admin"};
    env.user = &sys;
    r.v[C_ORG] = vs("");
    ck_assert(!eval_env("org = @user.org", &r, &env));
    ck_assert(eval_env("title != @user.role", &r, &env));
    /* Without an env, variables are null. */
    ck_assert(!eval_env("created_at < @now", &r, NULL));
    ck_assert(eval_env("count = 5", &r, NULL));
    expect_err("count = @user.id", "column 9: '@user.id' needs a text field; 'count' is int",
               "count");
    expect_err("title < @now", "column 9: '@now' needs a date or datetime field; 'title' is text",
               "title");
    expect_err("title ~ @today", "column 9: '~' needs a string; found '@today'", "title");
    expect_err("owner = @user.name",
               "column 9: unknown variable '@user.name' (known: @now, @today, @user.id, "
               "@user.org, @user.role, @user.region, @user.skills)",
               NULL);
}
END_TEST

START_TEST(column_comparisons)
{
    T("updated_at > created_at");
    F("updated_at < created_at");
    T("created_at != updated_at");
    T("owner != title");
    T("title ~ title");
    T("title ^= title");
    F("partner = partner"); /* absent values never compare equal */
    T("partner != partner");
    expect_err("count = budget", "column 9: cannot compare 'count' (int) with 'budget' (decimal)",
               "budget");
    expect_err("created_at < start_date",
               "column 14: cannot compare 'created_at' (datetime) with 'start_date' (date)",
               "start_date");
    expect_err("title ~ count",
               "column 9: '~' needs text fields; 'title' is text and 'count' is int", "count");
    expect_err("region in (state)", "column 12: expected a value after '(' but found 'state'",
               NULL);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Errors
 */
START_TEST(syntax_errors_name_the_column)
{
    expect_err("", "column 1: empty expression", NULL);
    expect_err("   \n ", "column 6: empty expression", NULL);
    expect_err("(budget > 1 && region = \"east\"",
               "column 31: expected ')' to close '(' at column 1 but found end of input", NULL);
    expect_err("budget > 1 && (region = ",
               "column 25: expected a value after '=' but found end of input", NULL);
    expect_err("budget > 1 && (region =)", "column 24: expected a value after '=' but found ')'",
               NULL);
    expect_err("title = \"abc", "column 9: unterminated string", NULL);
    expect_err("title = \"abc\\\"", "column 9: unterminated string", NULL);
    expect_err("title = \"a\\qb\"", "column 11: invalid escape '\\q' in string", NULL);
    expect_err("title = \"\\u12\"", "column 10: invalid \\u escape in string (needs 4 hex digits)",
               NULL);
    expect_err("title = \"\\ud800x\"",
               "column 10: invalid \\u escape in string: unpaired surrogate", NULL);
    expect_err("title = \"\\udc00\"", "column 10: invalid \\u escape in string: unpaired surrogate",
               NULL);
    expect_err("title = \"a\tb\"",
               "column 11: control character 0x09 in string (use an escape such as \\n)", NULL);
    expect_err("title = \"促\xff\"", "column 11: string is not valid UTF-8", NULL);
    expect_err("title = \"\xed\xa0\x80\"", "column 10: string is not valid UTF-8", NULL);
    expect_err("title = \"a\" )", "column 13: unexpected ')' after the end of the expression",
               NULL);
    expect_err("title = \"a\" and count = 1",
               "column 13: unexpected 'and' after the end of the expression (use && and ||)", NULL);
    expect_err("title = \"a\" count = 1",
               "column 13: unexpected 'count' after the end of the expression", NULL);
    expect_err("budgt > 5", "column 1: unknown field 'budgt'", "budgt");
    expect_err("count = 1 && budgt > 5", "column 14: unknown field 'budgt'", "budgt");
    expect_err("title \"a\"", "column 7: expected an operator after 'title' but found \"a\"", NULL);
    expect_err("title", "column 6: expected an operator after 'title' but found end of input",
               NULL);
    expect_err("title == \"a\"", "column 8: expected a value after '=' but found '='", NULL);
    expect_err("count = 1 &&", "column 13: expected a field name but found end of input", NULL);
    expect_err("count = 1 & count = 2", "column 11: unexpected '&' (did you mean '&&'?)", NULL);
    expect_err("count = 1 | count = 2", "column 11: unexpected '|' (did you mean '||'?)", NULL);
    expect_err("title ^ \"a\"", "column 7: unexpected '^' (did you mean '^='?)", NULL);
    expect_err("\"a\" = title", "column 1: expected a field name but found \"a\"", NULL);
    expect_err("true = active", "column 1: expected a field name but found 'true'", NULL);
    expect_err("count = 1e3", "column 9: malformed number '1e3'", NULL);
    expect_err("count = 1.", "column 9: malformed number '1.'", NULL);
    expect_err("count = - 1", "column 9: unexpected '-'", NULL);
    expect_err("count = 1 # x", "column 11: unexpected character '#'", NULL);
    expect_err("促销 = 1", "column 1: unexpected character '促'", NULL);
    expect_err("count = 1 促销", "column 11: unexpected character '促'", NULL);
    expect_err_n("count = \0", 9, TRL_EQUERY, "column 9: unexpected byte 0x00", NULL);
    expect_err("count < null", "column 9: null can only be compared with = or != (not '<')",
               "count");
    expect_err("title ~ null", "column 9: null can only be compared with = or != (not '~')",
               "title");
    expect_err("budget ~ \"1\"", "column 8: '~' needs a text field; 'budget' is decimal", "budget");
    expect_err("created_at ^= \"2026\"",
               "column 12: '^=' needs a text field; 'created_at' is datetime", "created_at");
    expect_err("title ~ 5", "column 9: '~' needs a string; found 5", "title");
    expect_err("region not (\"east\")", "column 12: expected 'in' after 'not' but found '('", NULL);
    expect_err("region in \"east\"", "column 11: expected '(' after 'in' but found \"east\"", NULL);
    expect_err("region in ()", "column 12: expected a value after '(' but found ')'", NULL);
    expect_err("region in (\"east\",)", "column 19: expected a value after ',' but found ')'",
               NULL);
    expect_err("region in (\"east\" \"west\")",
               "column 19: expected ',' or ')' in the 'in' list but found \"west\"", NULL);
    expect_err("!", "column 2: expected a field name but found end of input", NULL);
    expect_err("()", "column 2: expected a field name but found ')'", NULL);
}
END_TEST

START_TEST(resolver_codes_propagate)
{
    expect_err_n("secret = 1", 10, TRL_EFORBIDDEN,
                 "column 1: field 'secret' cannot be used here (forbidden)", "secret");
    expect_err_n("count = 1 || title ~ secret", 27, TRL_EFORBIDDEN,
                 "column 22: field 'secret' cannot be used here (forbidden)", "secret");
}
END_TEST

START_TEST(limits)
{
    char buf[8192];
    /* Nesting: 64 levels parse, 65 do not. */
    for (int depth = 63; depth <= 65; depth++) {
        size_t o = 0;
        for (int i = 0; i < depth; i++)
            buf[o++] = i % 2 ? '!' : '(';
        o += (size_t)sprintf(buf + o, "count = 5");
        for (int i = 0; i < depth; i++)
            if (i % 2 == 0) buf[o++] = ')';
        buf[o] = 0;
        if (depth <= 64) {
            ck_assert(ev(buf) == ((depth / 2) % 2 == 0));
        } else {
            expect_err(buf, "column 65: expression nested deeper than 64 levels", NULL);
        }
    }
    /* Source: 4096 bytes parse, 4097 do not. */
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "count = 5", 9);
    buf[4096] = 0;
    ck_assert(ev(buf));
    buf[4096] = ' ';
    buf[4097] = 0;
    expect_err(buf, "column 4097: expression longer than 4096 bytes", NULL);
    /* A long && chain is flat, not deep. */
    size_t o = 0;
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(buf + o, "%scount=5", i ? "&&" : "");
    ck_assert(ev(buf));
    /* in: 256 values parse, 257 do not. */
    for (int n = 256; n <= 257; n++) {
        o = (size_t)sprintf(buf, "count in (");
        for (int i = 0; i < n; i++)
            o += (size_t)sprintf(buf + o, "%s%d", i ? "," : "", i);
        sprintf(buf + o, ")");
        if (n == 256)
            ck_assert(ev(buf));
        else
            expect_err(buf, "column 925: too many values in 'in' (at most 256)", NULL);
    }
}
END_TEST

START_TEST(columns_count_code_points)
{
    expect_err("title = \"促销\" && budgt = 1", "column 17: unknown field 'budgt'", "budgt");
}
END_TEST

START_TEST(getter_errors_abort)
{
    struct rec r = sample();
    struct trl_diag d;
    struct trl_expr *e = NULL;
    trl_diag_init(&d);
    const char *src = "count = 5 && budget > 1";
    ck_assert_int_eq(trl_expr_parse(src, strlen(src), resolve, NULL, &e, &d), 0);
    r.fail_id = C_BUDGET;
    bool res = true;
    ck_assert_int_eq(trl_expr_eval(e, get, &r, NULL, &res, &d), TRL_EIO);
    ck_assert(!res);
    ck_assert_int_eq(d.code, TRL_EIO);
    /* Short-circuit: the failing column is never read. */
    trl_diag_reset(&d);
    r.v[C_COUNT] = vi(6);
    ck_assert_int_eq(trl_expr_eval(e, get, &r, NULL, &res, &d), 0);
    ck_assert(!res);
    trl_expr_free(e);
    trl_expr_free(NULL);
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Plans
 */
static void plan_of(const char *src, const struct trl_expr_env *env, struct trl_expr **e,
                    struct trl_expr_plan *plan)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_expr_parse(src, strlen(src), resolve, NULL, e, &d);
    ck_assert_msg(rc == 0, "parse of <%s> failed: %s", src, d.message);
    ck_assert_int_eq(trl_expr_plan_build(*e, env, plan), 0);
    trl_diag_reset(&d);
}

static bool val_is_str(const struct trl_value *v, const char *s)
{
    return v->kind == TRL_V_BYTES && v->n == strlen(s) && memcmp(v->s, s, v->n) == 0;
}

START_TEST(plan_eq_in_range_prefix)
{
    struct trl_expr *e = NULL;
    struct trl_expr_plan plan;
    struct trl_expr_env env = env_alice();
    plan_of("budget >= 10 && region = \"east\" && title = \"x\" && budget < 100 && state in "
            "(\"a\", \"b\") && org ^= \"ac\" && count > 3",
            &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 4);
    ck_assert_int_eq(plan.preds[0].kind, TRL_PRED_RANGE);
    ck_assert_int_eq(plan.preds[0].id, C_BUDGET);
    ck_assert_int_eq(plan.preds[0].type, TRL_FT_DECIMAL);
    ck_assert(plan.preds[0].has_lo && plan.preds[0].lo_incl);
    ck_assert_int_eq(plan.preds[0].lo.i, 1000);
    ck_assert(plan.preds[0].has_hi && !plan.preds[0].hi_incl);
    ck_assert_int_eq(plan.preds[0].hi.i, 10000);
    ck_assert_int_eq(plan.preds[1].kind, TRL_PRED_EQ);
    ck_assert_int_eq(plan.preds[1].id, C_REGION);
    ck_assert_uint_eq(plan.preds[1].nvals, 1);
    ck_assert(val_is_str(&plan.preds[1].vals[0], "east"));
    ck_assert_int_eq(plan.preds[2].kind, TRL_PRED_IN);
    ck_assert_int_eq(plan.preds[2].id, C_STATE);
    ck_assert_uint_eq(plan.preds[2].nvals, 2);
    ck_assert(val_is_str(&plan.preds[2].vals[0], "a"));
    ck_assert(val_is_str(&plan.preds[2].vals[1], "b"));
    ck_assert_int_eq(plan.preds[3].kind, TRL_PRED_PREFIX);
    ck_assert_int_eq(plan.preds[3].id, C_ORG);
    ck_assert(val_is_str(&plan.preds[3].vals[0], "ac"));
    trl_expr_plan_free(&plan);
    ck_assert_ptr_null(plan.preds);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);

    /* Tightest bounds win; nested && groups are part of the top chain. */
    plan_of("budget > 5 && (budget >= 7 && budget > 7) && budget <= 50 && budget < 50 && "
            "budget <= 60",
            &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 1);
    ck_assert(plan.preds[0].has_lo && !plan.preds[0].lo_incl);
    ck_assert_int_eq(plan.preds[0].lo.i, 700);
    ck_assert(plan.preds[0].has_hi && !plan.preds[0].hi_incl);
    ck_assert_int_eq(plan.preds[0].hi.i, 5000);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);

    /* One-sided range, null equality, variables resolved from env. */
    plan_of("created_at < @now && region = null && org = @user.org && state ^= @user.role", &env,
            &e, &plan);
    ck_assert_uint_eq(plan.npreds, 4);
    ck_assert_int_eq(plan.preds[0].kind, TRL_PRED_RANGE);
    ck_assert(!plan.preds[0].has_lo && plan.preds[0].has_hi && !plan.preds[0].hi_incl);
    ck_assert_int_eq(plan.preds[0].hi.i, env.now_ms);
    ck_assert_int_eq(plan.preds[1].kind, TRL_PRED_EQ);
    ck_assert_int_eq(plan.preds[1].vals[0].kind, TRL_V_NULL);
    ck_assert_int_eq(plan.preds[2].kind, TRL_PRED_EQ);
    ck_assert(val_is_str(&plan.preds[2].vals[0], "acme"));
    ck_assert_ptr_eq(plan.preds[2].vals[0].s, alice.org);
    ck_assert_int_eq(plan.preds[3].kind, TRL_PRED_PREFIX);
    ck_assert(val_is_str(&plan.preds[3].vals[0], "marketer"));
    trl_expr_plan_free(&plan);
    trl_expr_free(e);

    /* A single comparison is its own chain. */
    plan_of("region in (\"east\", \"west\", null)", &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 1);
    ck_assert_int_eq(plan.preds[0].kind, TRL_PRED_IN);
    ck_assert_uint_eq(plan.preds[0].nvals, 3);
    ck_assert_int_eq(plan.preds[0].vals[2].kind, TRL_V_NULL);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);
}
END_TEST

/* @user.role and @user.skills hold several values: = and in match any of them, != and not in
 * none; an index plan never drives with one of them. */
START_TEST(multi_valued_user_variables)
{
    struct trl_principal bob = {
        .user = "bob", .org = "acme", .role = "partner", .nroles = 3, .nskills = 2};
    snprintf(bob.roles[0], 64, "partner");
    snprintf(bob.roles[1], 64, "reviewer");
    snprintf(bob.roles[2], 64, "finance");
    snprintf(bob.skills[0], 64, "network");
    snprintf(bob.skills[1], 64, "printer");
    struct trl_expr_env env = {.user = &bob, .now_ms = ms_of("2026-03-01T10:00:00Z")};
    struct rec r = sample();
    r.v[C_STATE] = vs("finance");
    ck_assert(eval_env("state = @user.role", &r, &env));
    ck_assert(eval_env("state in (\"x\", @user.role)", &r, &env));
    ck_assert(!eval_env("state != @user.role", &r, &env));
    ck_assert(!eval_env("state not in (@user.role)", &r, &env));
    r.v[C_STATE] = vs("printer");
    ck_assert(eval_env("state = @user.skills", &r, &env));
    ck_assert(!eval_env("state = @user.role", &r, &env));
    ck_assert(eval_env("state != @user.role", &r, &env));
    r.v[C_STATE] = vs("router");
    ck_assert(!eval_env("state = @user.skills", &r, &env));
    ck_assert(eval_env("state not in (@user.skills)", &r, &env));
    /* No skills at all: = is false, != is true. */
    bob.nskills = 0;
    ck_assert(!eval_env("state = @user.skills", &r, &env));
    ck_assert(eval_env("state != @user.skills", &r, &env));
    /* Only equality-like operators take @user.skills. */
    struct trl_expr *e = NULL;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_expr_parse("title ~ @user.skills", 20, resolve, NULL, &e, &d), TRL_EQUERY);
    ck_assert_ptr_nonnull(strstr(d.message, "several values"));
    trl_diag_reset(&d);
    /* Plans: state is indexed, but a multi-valued variable cannot drive it. */
    struct trl_expr_plan plan;
    plan_of("state = @user.role", &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 0);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);
    plan_of("state in (\"east\", @user.skills)", &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 0);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);
}
END_TEST

START_TEST(plan_skips_what_an_index_cannot_answer)
{
    struct trl_expr *e = NULL;
    struct trl_expr_plan plan;
    struct trl_expr_env env = env_alice();
    const char *empty[] = {
        "region = \"east\" || budget > 5",
        "!(region = \"east\")",
        "!region = \"east\"",
        "title = \"x\" && count = 5 && start_date > \"2026-01-01\"", /* not indexed */
        "region != \"east\" && state not in (\"a\") && org ~ \"ac\"",
        "created_at < updated_at && state = org",
        "(region = \"east\" || region = \"west\") && title = \"x\"",
    };
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        plan_of(empty[i], &env, &e, &plan);
        ck_assert_msg(plan.npreds == 0, "plan of <%s> not empty", empty[i]);
        ck_assert_ptr_null(plan.preds);
        trl_expr_plan_free(&plan);
        trl_expr_free(e);
    }
    /* Variables that are null at plan time constrain nothing. */
    plan_of("org = @user.org && created_at > @now && state in (@user.id)", NULL, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 0);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);
    /* The indexable part of a mixed chain is kept. */
    plan_of("(region = \"east\" || count = 1) && state = \"x\"", &env, &e, &plan);
    ck_assert_uint_eq(plan.npreds, 1);
    ck_assert_int_eq(plan.preds[0].id, C_STATE);
    trl_expr_plan_free(&plan);
    trl_expr_free(e);
}
END_TEST

START_TEST(value_cmp_has_one_order)
{
    struct trl_value n = {.kind = TRL_V_NULL}, a = vi(-5), b = vi(3), s1 = vs("ab"), s2 = vs("abc"),
                     s3 = vs("b"), s4 = vs("促"), empty = vs("");
    ck_assert_int_eq(trl_expr_value_cmp(TRL_FT_INT, &n, &n), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_INT, &n, &a), 0);
    ck_assert_int_gt(trl_expr_value_cmp(TRL_FT_INT, &a, &n), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_INT, &a, &b), 0);
    ck_assert_int_gt(trl_expr_value_cmp(TRL_FT_INT, &b, &a), 0);
    ck_assert_int_eq(trl_expr_value_cmp(TRL_FT_INT, &b, &b), 0);
    struct trl_value big = vi(INT64_MAX), small = vi(INT64_MIN);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_DECIMAL, &small, &big), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_TEXT, &n, &empty), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_TEXT, &empty, &s1), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_TEXT, &s1, &s2), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_TEXT, &s2, &s3), 0);
    ck_assert_int_lt(trl_expr_value_cmp(TRL_FT_TEXT, &s3, &s4), 0);
    ck_assert_int_eq(trl_expr_value_cmp(TRL_FT_TEXT, &s2, &s2), 0);
    struct trl_value t1 = vi(1), t2 = vi(7);
    ck_assert_int_eq(trl_expr_value_cmp(TRL_FT_BOOL, &t1, &t2), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Randomized comparison with a reference evaluator
 */
struct rng {
    uint64_t s; /* xorshift64* state */
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 2685821657736338717ULL) >> 33) % n;
}

static const char *const text_pool[] = {
    "",     "a",        "A",    "ab",     "Ab", "abc",         "b",     "acme", "alice",
    "促销", "促销活动", "x\"y", "tab\tz", "é",  "Spring 促销", "north", "east",
};
#define NTEXT (sizeof(text_pool) / sizeof(text_pool[0]))
static const int64_t int_pool[] = {-3, 0, 1, 5, 7, 100};
static const int64_t dec_pool[] = {-150, 0, 1, 99, 100, 1230, 5000};
static const int64_t ref_pool[] = {0, 1, 42, 43};

enum gop { G_EQ, G_NE, G_LT, G_LE, G_GT, G_GE, G_CONTAINS, G_PREFIX, G_IN, G_NOTIN, G_NOPS };
static const char *const gop_text[] = {"=", "!=", "<", "<=", ">", ">=", "~", "^=", "in", "not in"};

enum gitem_kind { GI_VAL, GI_NULL, GI_VAR };

struct gitem {
    enum gitem_kind kind;
    struct trl_value v; /* GI_VAL: the value as the column stores it */
    int var;            /* GI_VAR: 0 @now, 1 @today, 2 @user.org, 3 @user.id */
};

struct gnode {
    int kind; /* 0 cmp, 1 &&, 2 ||, 3 ! */
    struct gnode *a, *b;
    int col;
    enum gop op;
    struct gitem items[4];
    int nitems;
};

struct gen {
    struct rng rng;        /* randomness */
    char src[4096];        /* generated source */
    size_t n;              /* its length */
    struct gnode pool[64]; /* node storage */
    int npool;             /* used nodes */
    int64_t now_ms;        /* env now */
};

static void emit(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(g->src + g->n, sizeof(g->src) - g->n, fmt, ap);
    va_end(ap);
    ck_assert(w >= 0 && (size_t)w < sizeof(g->src) - g->n);
    g->n += (size_t)w;
}

/* A text literal in JSON syntax with randomly chosen escapes. */
static void emit_text(struct gen *g, const char *s)
{
    emit(g, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"')
            emit(g, rnd(&g->rng, 2) ? "\\\"" : "\\u0022");
        else if (*p == '\t')
            emit(g, rnd(&g->rng, 2) ? "\\t" : "\\u0009");
        else if (*p < 0x80 && rnd(&g->rng, 6) == 0)
            emit(g, "\\u%04X", *p);
        else
            emit(g, "%c", *p);
    }
    emit(g, "\"");
}

static bool g_text_like(int col)
{
    enum trl_ftype t = cols[col].type;
    return t == TRL_FT_TEXT || t == TRL_FT_LONGTEXT || t == TRL_FT_ENUM || t == TRL_FT_USER;
}

static int64_t g_base_days(void)
{
    return 20513; /* 2026-03-01 */
}

/* A random non-null value of column col, as the record stores it. */
static struct trl_value rand_value(struct rng *r, int col, bool any_text)
{
    switch (cols[col].type) {
    case TRL_FT_INT:
        return vi(int_pool[rnd(r, 6)]);
    case TRL_FT_DECIMAL:
        return vi(dec_pool[rnd(r, 7)]);
    case TRL_FT_BOOL:
        return vi(rnd(r, 2));
    case TRL_FT_REF:
        return vi(ref_pool[rnd(r, 4)]);
    case TRL_FT_DATE:
        return vi(g_base_days() - 2 + rnd(r, 5));
    case TRL_FT_DATETIME:
        return vi((g_base_days() - 1 + rnd(r, 3)) * 86400000LL +
                  (int64_t)rnd(r, 4) * 6 * 3600000LL);
    case TRL_FT_ENUM:
        if (!any_text) return vs(region_opts[rnd(r, 4)]);
        /* fall through */
    default:
        return vs(text_pool[rnd(r, NTEXT)]);
    }
}

static void emit_value(struct gen *g, int col, const struct trl_value *v)
{
    char buf[64];
    switch (cols[col].type) {
    case TRL_FT_INT:
    case TRL_FT_REF:
        emit(g, "%lld", (long long)v->i);
        break;
    case TRL_FT_BOOL:
        emit(g, "%s", v->i ? "true" : "false");
        break;
    case TRL_FT_DECIMAL:
        if (v->i % 100 == 0 && rnd(&g->rng, 2)) {
            emit(g, "%lld", (long long)(v->i / 100));
        } else {
            trl_decimal_format(v->i, 2, buf);
            if (rnd(&g->rng, 3) == 0)
                emit(g, "\"%s\"", buf);
            else
                emit(g, "%s", buf);
        }
        break;
    case TRL_FT_DATE:
        trl_date_format((int32_t)v->i, buf);
        emit(g, "\"%s\"", buf);
        break;
    case TRL_FT_DATETIME:
        trl_datetime_format(v->i, buf);
        emit(g, "\"%s\"", buf);
        break;
    default: {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)v->n, v->s);
        emit_text(g, tmp);
    }
    }
}

static void gen_item(struct gen *g, int col, enum gop op, struct gitem *it)
{
    enum trl_ftype t = cols[col].type;
    bool timecol = t == TRL_FT_DATE || t == TRL_FT_DATETIME;
    bool nullable = op == G_EQ || op == G_NE || op == G_IN || op == G_NOTIN;
    bool textop = op == G_CONTAINS || op == G_PREFIX;
    uint32_t k = rnd(&g->rng, 10);
    if (nullable && k == 0) {
        it->kind = GI_NULL;
        emit(g, "null");
    } else if (k == 1 && (timecol || g_text_like(col)) && !(textop && timecol)) {
        it->kind = GI_VAR;
        if (timecol)
            it->var = (int)rnd(&g->rng, 2);
        else
            it->var = 2 + (int)rnd(&g->rng, 2);
        static const char *const names[] = {"@now", "@today", "@user.org", "@user.id"};
        emit(g, "%s", names[it->var]);
    } else {
        it->kind = GI_VAL;
        it->v = rand_value(&g->rng, col, textop);
        if (textop)
            emit_text(g, it->v.s);
        else
            emit_value(g, col, &it->v);
    }
}

static struct gnode *gen_tree(struct gen *g, int depth)
{
    ck_assert_int_lt(g->npool, 64);
    struct gnode *nd = &g->pool[g->npool++];
    memset(nd, 0, sizeof(*nd));
    uint32_t k = depth >= 4 ? 0 : rnd(&g->rng, 8);
    nd->kind = k < 4 ? 0 : k < 6 ? 1 : k < 7 ? 2 : 3;
    if (nd->kind != 0) {
        nd->a = gen_tree(g, depth + 1);
        if (nd->kind != 3) nd->b = gen_tree(g, depth + 1);
        return nd;
    }
    nd->col = (int)rnd(&g->rng, NCOLS);
    for (;;) {
        nd->op = (enum gop)rnd(&g->rng, G_NOPS);
        if ((nd->op == G_CONTAINS || nd->op == G_PREFIX) && !g_text_like(nd->col)) continue;
        break;
    }
    nd->nitems = nd->op == G_IN || nd->op == G_NOTIN ? 1 + (int)rnd(&g->rng, 4) : 1;
    return nd;
}

/* Prints nd; items are generated while printing so the escapes and spacing vary. */
static void gen_print(struct gen *g, struct gnode *nd, int parent)
{
    bool paren =
        (parent == 1 && nd->kind == 2) || (parent == 3 && (nd->kind == 1 || nd->kind == 2));
    if (!paren && nd->kind != 3 && rnd(&g->rng, 8) == 0) paren = true;
    const char *sp = rnd(&g->rng, 3) ? " " : "";
    if (paren) emit(g, "(");
    switch (nd->kind) {
    case 0:
        emit(g, "%s%s%s%s", cols[nd->col].name, nd->op >= G_IN ? " " : sp, gop_text[nd->op],
             nd->op >= G_IN ? " " : sp);
        if (nd->op >= G_IN) emit(g, "(");
        for (int i = 0; i < nd->nitems; i++) {
            if (i) emit(g, ",%s", sp);
            gen_item(g, nd->col, nd->op, &nd->items[i]);
        }
        if (nd->op >= G_IN) emit(g, ")");
        break;
    case 1:
    case 2:
        gen_print(g, nd->a, nd->kind);
        emit(g, "%s%s%s", sp, nd->kind == 1 ? "&&" : "||", sp);
        gen_print(g, nd->b, nd->kind);
        break;
    case 3:
        emit(g, "!%s", sp);
        gen_print(g, nd->a, 3);
        break;
    }
    if (paren) emit(g, ")");
}

/* The reference: straight from the definitions in expr.h, sharing no code with expr.c. */
static int ref_cmp(const struct trl_value *a, const struct trl_value *b)
{
    if (a->kind == TRL_V_INT) return a->i < b->i ? -1 : a->i > b->i;
    size_t m = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < m; i++) {
        unsigned char x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        if (x != y) return x < y ? -1 : 1;
    }
    return a->n < b->n ? -1 : a->n > b->n;
}

static struct trl_value ref_item(const struct gen *g, int col, const struct gitem *it)
{
    if (it->kind == GI_VAL) return it->v;
    if (it->kind == GI_NULL) return (struct trl_value){.kind = TRL_V_NULL};
    int64_t day = g->now_ms / 86400000LL; /* now is after the epoch */
    switch (it->var) {
    case 0:
        return vi(cols[col].type == TRL_FT_DATE ? day : g->now_ms);
    case 1:
        return vi(cols[col].type == TRL_FT_DATE ? day : day * 86400000LL);
    case 2:
        return vs(alice.org);
    default:
        return vs(alice.user);
    }
}

static int tolower_ascii(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool ref_contains(const struct trl_value *h, const struct trl_value *n)
{
    for (size_t i = 0; i + n->n <= h->n; i++) {
        size_t k = 0;
        for (; k < n->n; k++) {
            int x = (unsigned char)h->s[i + k], y = (unsigned char)n->s[k];
            if (x < 0x80) x = tolower_ascii(x);
            if (y < 0x80) y = tolower_ascii(y);
            if (x != y) break;
        }
        if (k == n->n) return true;
    }
    return false;
}

static bool ref_eval(const struct gen *g, const struct gnode *nd, const struct rec *r)
{
    switch (nd->kind) {
    case 1:
        return ref_eval(g, nd->a, r) && ref_eval(g, nd->b, r);
    case 2:
        return ref_eval(g, nd->a, r) || ref_eval(g, nd->b, r);
    case 3:
        return !ref_eval(g, nd->a, r);
    default:
        break;
    }
    const struct trl_value *a = &r->v[nd->col];
    bool anull = a->kind == TRL_V_NULL;
    bool hit = false;
    for (int i = 0; i < nd->nitems; i++) {
        const struct gitem *it = &nd->items[i];
        struct trl_value b = ref_item(g, nd->col, it);
        switch (nd->op) {
        case G_EQ:
        case G_NE:
        case G_IN:
        case G_NOTIN:
            if (it->kind == GI_NULL)
                hit = hit || anull;
            else
                hit = hit || (!anull && ref_cmp(a, &b) == 0);
            break;
        case G_LT:
            hit = !anull && ref_cmp(a, &b) < 0;
            break;
        case G_LE:
            hit = !anull && ref_cmp(a, &b) <= 0;
            break;
        case G_GT:
            hit = !anull && ref_cmp(a, &b) > 0;
            break;
        case G_GE:
            hit = !anull && ref_cmp(a, &b) >= 0;
            break;
        case G_CONTAINS:
            hit = !anull && ref_contains(a, &b);
            break;
        case G_PREFIX:
            hit = !anull && b.n <= a->n && memcmp(a->s, b.s, b.n) == 0;
            break;
        default:
            break;
        }
    }
    return nd->op == G_NE || nd->op == G_NOTIN ? !hit : hit;
}

/* Does value v of a record satisfy pred? Plans must never exclude a matching record. */
static bool pred_holds(const struct trl_expr_pred *p, const struct trl_value *v)
{
    switch (p->kind) {
    case TRL_PRED_EQ:
    case TRL_PRED_IN:
        for (size_t i = 0; i < p->nvals; i++) {
            if (p->vals[i].kind == TRL_V_NULL
                    ? v->kind == TRL_V_NULL
                    : v->kind != TRL_V_NULL && trl_expr_value_cmp(p->type, v, &p->vals[i]) == 0)
                return true;
        }
        return false;
    case TRL_PRED_RANGE:
        if (v->kind == TRL_V_NULL) return false;
        if (p->has_lo) {
            int c = trl_expr_value_cmp(p->type, v, &p->lo);
            if (c < 0 || (c == 0 && !p->lo_incl)) return false;
        }
        if (p->has_hi) {
            int c = trl_expr_value_cmp(p->type, v, &p->hi);
            if (c > 0 || (c == 0 && !p->hi_incl)) return false;
        }
        return true;
    case TRL_PRED_PREFIX:
        return v->kind == TRL_V_BYTES && v->n >= p->vals[0].n &&
               memcmp(v->s, p->vals[0].s, p->vals[0].n) == 0;
    }
    return false;
}

START_TEST(random_expressions_match_the_reference)
{
    struct gen *g = calloc(1, sizeof(*g));
    ck_assert_ptr_nonnull(g);
    g->rng.s = 0x9E3779B97F4A7C15ULL;
    struct trl_expr_env env = env_alice();
    g->now_ms = env.now_ms;
    size_t ntrue = 0, nfalse = 0, npreds = 0;
    for (int iter = 0; iter < 4000; iter++) {
        g->n = 0;
        g->npool = 0;
        g->src[0] = 0;
        struct gnode *root = gen_tree(g, 0);
        gen_print(g, root, 0);
        struct trl_diag d;
        struct trl_expr *e = NULL;
        trl_diag_init(&d);
        int rc = trl_expr_parse(g->src, g->n, resolve, NULL, &e, &d);
        ck_assert_msg(rc == 0, "parse of <%s> failed: %s", g->src, d.message);
        struct trl_expr_plan plan;
        ck_assert_int_eq(trl_expr_plan_build(e, &env, &plan), 0);
        npreds += plan.npreds;
        for (int k = 0; k < 24; k++) {
            struct rec r = {.fail_id = -1};
            for (int c = 0; c < NCOLS; c++)
                r.v[c] = rnd(&g->rng, 5) == 0 ? (struct trl_value){.kind = TRL_V_NULL}
                                              : rand_value(&g->rng, c, false);
            bool got = false, want = ref_eval(g, root, &r);
            ck_assert_int_eq(trl_expr_eval(e, get, &r, &env, &got, &d), 0);
            ck_assert_msg(got == want, "<%s>: got %d, reference %d", g->src, got, want);
            got ? ntrue++ : nfalse++;
            for (size_t i = 0; got && i < plan.npreds; i++)
                ck_assert_msg(pred_holds(&plan.preds[i], &r.v[plan.preds[i].id]),
                              "<%s>: plan predicate %zu excludes a match", g->src, i);
        }
        trl_expr_plan_free(&plan);
        trl_expr_free(e);
        trl_diag_reset(&d);
    }
    /* The generator must exercise both outcomes and produce plans. */
    ck_assert_uint_gt(ntrue, 10000);
    ck_assert_uint_gt(nfalse, 10000);
    ck_assert_uint_gt(npreds, 500);
    free(g);
}
END_TEST

static Suite *expr_suite(void)
{
    Suite *s = suite_create("expr");
    TCase *tc = tcase_create("operators");
    tcase_add_test(tc, comparison_operators_on_each_type);
    tcase_add_test(tc, parameters_are_bound_as_typed_values);
    tcase_add_test(tc, text_order_is_byte_order);
    tcase_add_test(tc, contains_and_prefix);
    tcase_add_test(tc, precedence_and_parentheses);
    tcase_add_test(tc, in_and_not_in);
    tcase_add_test(tc, null_tests);
    suite_add_tcase(s, tc);
    tc = tcase_create("literals");
    tcase_add_test(tc, decimal_literals_scale_to_the_column);
    tcase_add_test(tc, date_and_datetime_literals);
    tcase_add_test(tc, other_literals);
    suite_add_tcase(s, tc);
    tc = tcase_create("variables_and_columns");
    tcase_add_test(tc, variables);
    tcase_add_test(tc, column_comparisons);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, syntax_errors_name_the_column);
    tcase_add_test(tc, resolver_codes_propagate);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, columns_count_code_points);
    tcase_add_test(tc, getter_errors_abort);
    suite_add_tcase(s, tc);
    tc = tcase_create("plans");
    tcase_add_test(tc, plan_eq_in_range_prefix);
    tcase_add_test(tc, plan_skips_what_an_index_cannot_answer);
    tcase_add_test(tc, multi_valued_user_variables);
    tcase_add_test(tc, value_cmp_has_one_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("random");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, random_expressions_match_the_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(expr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
