/* CSV export of a listing (GET /api/v1/records/{type}?format=csv or Accept: text/csv) against
 * the real server: every matching record the caller may read and nothing else (another org's
 * rows and hidden fields never appear), a UTF-8 BOM, labels in the caller's language, RFC 4180
 * quoting, text that a spreadsheet would run as a formula kept as text, the filter and fields=
 * of the listing, refusals that name the parameter and change nothing, and the row limit
 * (--export-max-rows) refused before anything is sent. */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;
static char ANN[128], BOB[128]; /* partners of acme and globex */

static const char *DEAL =
    "{\"name\":\"deal\",\"labels\":{\"en\":\"Deal\",\"zh-CN\":\"商机\"},\"fields\":["
    "{\"name\":\"title\",\"type\":\"text\",\"labels\":{\"en\":\"Title\",\"zh-CN\":\"标题\"}},"
    "{\"name\":\"tier\",\"type\":\"enum\",\"labels\":{\"en\":\"Tier\",\"zh-CN\":\"等级\"},"
    "\"options\":[{\"value\":\"gold\",\"labels\":{\"en\":\"Gold\",\"zh-CN\":\"金牌\"}},"
    "{\"value\":\"silver\",\"labels\":{\"en\":\"Silver\",\"zh-CN\":\"银牌\"}}]},"
    "{\"name\":\"amount\",\"type\":\"decimal\",\"scale\":2,"
    "\"labels\":{\"en\":\"Amount\",\"zh-CN\":\"金额\"}},"
    "{\"name\":\"margin\",\"type\":\"decimal\",\"scale\":2,"
    "\"labels\":{\"en\":\"Margin\",\"zh-CN\":\"毛利\"}},"
    "{\"name\":\"units\",\"type\":\"int\",\"labels\":{\"en\":\"Units\",\"zh-CN\":\"数量\"}}],"
    "\"permissions\":{\"partner\":{\"create\":\"org\",\"read\":\"org\",\"update\":\"org\","
    "\"fields\":{\"margin\":\"hidden\"}}}}";

static void post(const char *auth, const char *body)
{
    api_create(&S, auth, body, "/api/v1/records/deal");
}

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    cli_run3(&S, "org", "add", "acme");
    cli_run3(&S, "org", "add", "globex");
    cli_add_user(&S, "ann", "partner", "acme", NULL, ANN, sizeof(ANN));
    cli_add_user(&S, "bob", "partner", "globex", NULL, BOB, sizeof(BOB));
    snprintf(S.extra, sizeof(S.extra), "--export-max-rows 6");
    ck_assert_int_eq(srv_start(&S), 0);
    struct resp r;
    long st = api_call(&S, NULL, "PUT", DEAL, &r, "/api/v1/meta/types/deal");
    ck_assert_msg(st == 201, "%ld %s", st, r.body);
    resp_free(&r);
    /* ids 1-3 acme's (ann), 4 globex's (bob), 5 the admin's (no org) */
    post(ANN, "{\"title\":\"=HYPERLINK(\\\"http://evil.example\\\")\",\"tier\":\"gold\","
              "\"amount\":\"12.5\"}");
    post(ANN, "{\"title\":\"a,b \\\"c\\\"\",\"tier\":\"silver\",\"amount\":\"-3\"}");
    post(ANN, "{\"title\":\"春季促销\\n第二行\",\"amount\":\"1000\"}");
    post(BOB, "{\"title\":\"globex secret\",\"tier\":\"gold\",\"amount\":\"7\"}");
    /* 2^53 + 1: a double cannot hold it, the export must keep every digit */
    post(NULL, "{\"title\":\"hq deal\",\"tier\":\"silver\",\"amount\":\"0.01\",\"margin\":\"5\","
               "\"units\":9007199254740993}");
    long pst = api_call(&S, NULL, "PATCH", "{\"margin\":\"4.20\"}", &r, "/api/v1/records/deal/1");
    ck_assert_int_eq(pst, 200);
    resp_free(&r);
}

static void teardown(void)
{
    srv_teardown(&S);
}

/* GET path as auth with one extra header; asserts the status; the body (owned). */
static char *get(const char *auth, const char *extra, const char *path, long want)
{
    struct resp r;
    long st = api_request(&S, auth, extra, "GET", path, NULL, &r);
    ck_assert_msg(st == want, "GET %s: %ld, want %ld: %s", path, st, want, r.body);
    if (want == 200 && strstr(path, "format=json") == NULL &&
        (strstr(path, "format=csv") || (extra && strstr(extra, "text/csv")))) {
        char ct[96];
        ck_assert_msg(resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                          strcmp(ct, "text/csv; charset=utf-8") == 0,
                      "content type %s", ct);
        ck_assert_msg(memcmp(r.body, "\xEF\xBB\xBF", 3) == 0, "no BOM: %s", r.body);
    }
    char *body = r.body;
    r.body = NULL;
    resp_free(&r);
    return body;
}

/* The problem names field (its "field" member, or one of its errors[]). */
static bool names_field(const char *body, const char *field)
{
    char want[96];
    snprintf(want, sizeof(want), "\"field\":\"%s\"", field);
    return strstr(body, want) != NULL || problem_has_field(body, field);
}

/* Line k (0 = the header, after the BOM) of a CSV body, without its CRLF. */
static const char *line(const char *csv, int k, char *out, size_t n)
{
    const char *p = csv + 3;
    for (int i = 0; i < k; i++) {
        /* a quoted cell may hold a line break: skip CRLFs inside quotes */
        bool q = false;
        for (; *p && (q || p[0] != '\r' || p[1] != '\n'); p++)
            if (*p == '"') q = !q;
        ck_assert_msg(*p, "CSV has no line %d: %s", k, csv);
        p += 2;
    }
    bool q = false;
    const char *e = p;
    for (; *e && (q || e[0] != '\r' || e[1] != '\n'); e++)
        if (*e == '"') q = !q;
    snprintf(out, n, "%.*s", (int)(e - p), p);
    return out;
}

static int lines(const char *csv)
{
    int n = 0;
    bool q = false;
    for (const char *p = csv; *p; p++) {
        if (*p == '"') q = !q;
        if (!q && p[0] == '\r' && p[1] == '\n') n++;
    }
    return n;
}

START_TEST(admin_exports_everything_with_labels_quoting_and_no_formulas)
{
    char l[512];
    char *csv = get(NULL, NULL, "/api/v1/records/deal?format=csv", 200);
    ck_assert_str_eq(line(csv, 0, l, sizeof(l)),
                     "ID,Title,Tier,Amount,Margin,Units,Owner,Organisation,Created,Updated");
    ck_assert_int_eq(lines(csv), 6); /* header + 5 records */
    free(csv);
    csv =
        get(NULL, NULL, "/api/v1/records/deal?format=csv&fields=id,title,tier,amount,margin", 200);
    ck_assert_str_eq(line(csv, 1, l, sizeof(l)), "5,hq deal,Silver,0.01,5.00");
    free(csv);
    csv = get(NULL, NULL, "/api/v1/records/deal?format=csv&fields=id,units&sort=-id", 200);
    ck_assert_str_eq(line(csv, 1, l, sizeof(l)), "5,9007199254740993");
    ck_assert_str_eq(line(csv, 2, l, sizeof(l)), "4,");
    free(csv);
    csv =
        get(NULL, NULL, "/api/v1/records/deal?format=csv&fields=id,title,tier,amount,margin", 200);
    ck_assert_str_eq(line(csv, 3, l, sizeof(l)), "3,\"春季促销\n第二行\",,1000.00,");
    ck_assert_str_eq(line(csv, 4, l, sizeof(l)), "2,\"a,b \"\"c\"\"\",Silver,-3.00,");
    /* The formula stays text: a spreadsheet shows it, never runs it. */
    ck_assert_str_eq(line(csv, 5, l, sizeof(l)),
                     "1,\"'=HYPERLINK(\"\"http://evil.example\"\")\",Gold,12.50,4.20");
    free(csv);
    /* Accept: text/csv does the same; Chinese labels for a Chinese reader. */
    csv = get(NULL, "Accept: text/csv", "/api/v1/records/deal?fields=id,tier", 200);
    ck_assert_str_eq(line(csv, 0, l, sizeof(l)), "ID,Tier");
    free(csv);
    csv =
        get(NULL, "Accept-Language: zh-CN", "/api/v1/records/deal?format=csv&fields=id,tier", 200);
    ck_assert_str_eq(line(csv, 0, l, sizeof(l)), "ID,等级");
    ck_assert_str_eq(line(csv, 5, l, sizeof(l)), "1,金牌");
    free(csv);
    /* The listing's filter and sort apply. */
    csv = get(NULL, NULL,
              "/api/v1/records/deal?format=csv&fields=id&sort=id&filter=tier%20%3D%20%22gold%22",
              200);
    ck_assert_int_eq(lines(csv), 3);
    ck_assert_str_eq(line(csv, 1, l, sizeof(l)), "1");
    ck_assert_str_eq(line(csv, 2, l, sizeof(l)), "4");
    free(csv);
    /* format=json is the plain listing. */
    csv = get(NULL, NULL, "/api/v1/records/deal?format=json&limit=1", 200);
    ck_assert_msg(csv[0] == '{' && strstr(csv, "\"items\""), "%s", csv);
    free(csv);
}
END_TEST

START_TEST(partners_export_only_their_org_and_never_hidden_fields)
{
    char l[512];
    char *csv = get(ANN, NULL, "/api/v1/records/deal?format=csv", 200);
    ck_assert_str_eq(line(csv, 0, l, sizeof(l)),
                     "ID,Title,Tier,Amount,Units,Owner,Organisation,Created,Updated");
    ck_assert_int_eq(lines(csv), 4); /* acme's three */
    ck_assert_msg(!strstr(csv, "globex") && !strstr(csv, "hq deal") && !strstr(csv, "4.20") &&
                      !strstr(csv, "Margin"),
                  "%s", csv);
    free(csv);
    csv = get(BOB, "Accept-Language: zh-CN", "/api/v1/records/deal?format=csv", 200);
    ck_assert_str_eq(line(csv, 0, l, sizeof(l)),
                     "ID,标题,等级,金额,数量,负责人,组织,创建时间,更新时间");
    ck_assert_int_eq(lines(csv), 2);
    ck_assert_msg(strstr(csv, "globex secret") && !strstr(csv, "HYPERLINK"), "%s", csv);
    free(csv);
    /* Naming a hidden field is refused as for the listing. */
    csv = get(ANN, NULL, "/api/v1/records/deal?format=csv&fields=id,margin", 400);
    ck_assert_msg(names_field(csv, "fields"), "%s", csv);
    free(csv);
    /* A filter on a hidden field too (403 naming it, as for the listing). */
    csv = get(ANN, NULL, "/api/v1/records/deal?format=csv&filter=margin%20%3E%200", 403);
    ck_assert_msg(names_field(csv, "margin"), "%s", csv);
    free(csv);
}
END_TEST

START_TEST(refusals_name_the_parameter_and_the_row_limit)
{
    struct snapshot snap = {0};
    snapshot_add(&S, &snap, "deals", NULL, "/api/v1/records/deal?limit=100");
    static const struct {
        const char *path, *field;
    } bad[] = {
        {"/api/v1/records/deal?format=xml", "format"},
        {"/api/v1/records/deal?format=csv&limit=2", "limit"},
        {"/api/v1/records/deal?format=csv&cursor=abc", "cursor"},
        {"/api/v1/records/deal?format=csv&render=html", "render"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = get(NULL, NULL, bad[i].path, 400);
        ck_assert_msg(names_field(b, bad[i].field), "%s: %s", bad[i].path, b);
        free(b);
    }
    snapshot_same(&S, &snap, "refused exports");
    /* Seven records against --export-max-rows 6: refused before anything is sent. */
    post(NULL, "{\"title\":\"six\"}");
    post(NULL, "{\"title\":\"seven\"}");
    char *b = get(NULL, NULL, "/api/v1/records/deal?format=csv", 400);
    ck_assert_msg(names_field(b, "filter") && strstr(b, "7 rows"), "%s", b);
    free(b);
    b = get(NULL, "Accept-Language: zh-CN", "/api/v1/records/deal?format=csv", 400);
    ck_assert_msg(strstr(b, "缩小筛选"), "%s", b);
    free(b);
    b = get(NULL, NULL, "/api/v1/records/deal?format=csv&filter=id%20%3C%206", 200);
    ck_assert_int_eq(lines(b), 6);
    free(b);
    /* The partner sees three, under the limit. */
    b = get(ANN, NULL, "/api/v1/records/deal?format=csv", 200);
    ck_assert_int_eq(lines(b), 4);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_export");
    TCase *tc = tcase_create("export");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, admin_exports_everything_with_labels_quoting_and_no_formulas);
    tcase_add_test(tc, partners_export_only_their_org_and_never_hidden_fields);
    tcase_add_test(tc, refusals_name_the_parameter_and_the_row_limit);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
