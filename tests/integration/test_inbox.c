/* The in-app inbox over HTTP (/api/v1/inbox): an empty inbox lists nothing and counts 0, read-all
 * on it marks 0, unknown and malformed message ids are 404, bad or unknown query parameters are
 * 400 naming the parameter (in Chinese too), wrong methods are 405 with Allow, a body with members
 * is refused, and every route wants credentials. Nothing produces notifications yet; the suite
 * grows with the producers (approvals, assignment, SLA). */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    tmpreg_add(S.dir); /* removed by the parent even when a test fails before its teardown */
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_cleanup(&S);
}

/* The "field" of a problem body, "" when none. */
static void problem_field(const struct resp *r, char *out, size_t n)
{
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "field");
    snprintf(out, n, "%s", cJSON_IsString(f) ? f->valuestring : "");
    cJSON_Delete(j);
}

START_TEST(an_empty_inbox_lists_nothing_and_counts_zero)
{
    struct resp r;
    const char *paths[] = {"/api/v1/inbox", "/api/v1/inbox?unread=1", "/api/v1/inbox?unread=0",
                           "/api/v1/inbox?unread=true&limit=5",
                           "/api/v1/inbox?limit=1000&cursor=9"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        http(&S, "GET", paths[i], NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 200, "%s: %ld %s", paths[i], r.status, r.body);
        ck_assert_str_eq(r.body, "{\"items\":[],\"unread\":0,\"next_cursor\":null}");
        resp_free(&r);
    }
    http(&S, "GET", "/api/v1/inbox/count", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"unread\":0}");
    resp_free(&r);
    http(&S, "POST", "/api/v1/inbox/read-all", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"marked\":0}");
    resp_free(&r);
    http_json(&S, "POST", "/api/v1/inbox/read-all", "{}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"marked\":0}");
    resp_free(&r);
    /* A user who is not an administrator has an inbox of their own. */
    char hdr[128];
    cli_add_user(&S, "pat", "partner", NULL, "ci", hdr, sizeof(hdr)); /* no org, not an admin */
    const char *h[] = {hdr, NULL};
    http(&S, "GET", "/api/v1/inbox/count", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"unread\":0}");
    resp_free(&r);
    http(&S, "POST", "/api/v1/inbox/read-all", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"marked\":0}");
    resp_free(&r);
}
END_TEST

START_TEST(unknown_messages_are_404)
{
    struct resp r;
    char field[64];
    const char *cases[][2] = {
        {"POST", "/api/v1/inbox/1/read"}, {"POST", "/api/v1/inbox/18446744073709551/read"},
        {"GET", "/api/v1/inbox/1"},       {"POST", "/api/v1/inbox/abc/read"},
        {"POST", "/api/v1/inbox/0/read"}, {"GET", "/api/v1/inbox/-1"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http(&S, cases[i][0], cases[i][1], NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 404, "%s %s: %ld", cases[i][0], cases[i][1], r.status);
        ck_assert(json_contains(r.body, "{\"status\":404,\"code\":\"not_found\"}"));
        problem_field(&r, field, sizeof(field));
        ck_assert_str_eq(field, "id");
        resp_free(&r);
    }
    const char *zh[] = {"Accept-Language: zh-CN", NULL};
    http(&S, "POST", "/api/v1/inbox/7/read", NULL, 0, zh, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "不存在该消息"));
    resp_free(&r);
    http(&S, "POST", "/api/v1/inbox/7/unread", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
}
END_TEST

START_TEST(bad_parameters_are_400_naming_them)
{
    struct resp r;
    char field[64];
    const char *cases[][2] = {
        {"/api/v1/inbox?limit=0", "limit"},         {"/api/v1/inbox?limit=1001", "limit"},
        {"/api/v1/inbox?limit=ten", "limit"},       {"/api/v1/inbox?limit=", "limit"},
        {"/api/v1/inbox?cursor=0", "cursor"},       {"/api/v1/inbox?cursor=-4", "cursor"},
        {"/api/v1/inbox?cursor=x", "cursor"},       {"/api/v1/inbox?unread=maybe", "unread"},
        {"/api/v1/inbox?unread=", "unread"},        {"/api/v1/inbox?status=pending", "status"},
        {"/api/v1/inbox/count?unread=1", "unread"}, {"/api/v1/inbox/1?x=1", "x"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http(&S, "GET", cases[i][0], NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 400, "%s: %ld %s", cases[i][0], r.status, r.body);
        ck_assert_msg(json_contains(r.body, "{\"status\":400}"), "%s", r.body);
        problem_field(&r, field, sizeof(field));
        ck_assert_msg(strcmp(field, cases[i][1]) == 0, "%s: field %s", cases[i][0], field);
        resp_free(&r);
    }
    http(&S, "POST", "/api/v1/inbox/read-all?all=1", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    const char *zh[] = {"Accept-Language: zh-CN", NULL};
    http(&S, "GET", "/api/v1/inbox?limit=0", NULL, 0, zh, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "limit 为 1 到 1000"));
    resp_free(&r);
    /* Marking takes no body members; a body that is not JSON is refused too. */
    http_json(&S, "POST", "/api/v1/inbox/read-all", "{\"ids\":[1]}", &r);
    ck_assert_int_eq(r.status, 422);
    problem_field(&r, field, sizeof(field));
    ck_assert_str_eq(field, "ids");
    resp_free(&r);
    http_json(&S, "POST", "/api/v1/inbox/read-all", "{", &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
}
END_TEST

START_TEST(wrong_methods_are_405_with_allow)
{
    struct resp r;
    char allow[64];
    const char *cases[][3] = {
        {"POST", "/api/v1/inbox", "GET"},        {"DELETE", "/api/v1/inbox", "GET"},
        {"PUT", "/api/v1/inbox/count", "GET"},   {"GET", "/api/v1/inbox/read-all", "POST"},
        {"GET", "/api/v1/inbox/3/read", "POST"}, {"DELETE", "/api/v1/inbox/3", "GET"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http(&S, cases[i][0], cases[i][1], NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 405, "%s %s: %ld", cases[i][0], cases[i][1], r.status);
        ck_assert_ptr_nonnull(resp_header(&r, "Allow", allow, sizeof(allow)));
        ck_assert_str_eq(allow, cases[i][2]);
        resp_free(&r);
    }
}
END_TEST

START_TEST(every_route_wants_credentials)
{
    struct resp r;
    const char *cases[][2] = {{"GET", "/api/v1/inbox"},
                              {"GET", "/api/v1/inbox/count"},
                              {"GET", "/api/v1/inbox/1"},
                              {"POST", "/api/v1/inbox/1/read"},
                              {"POST", "/api/v1/inbox/read-all"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_anon(&S, cases[i][0], cases[i][1], NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 401, "%s %s: %ld", cases[i][0], cases[i][1], r.status);
        ck_assert(json_contains(r.body, "{\"status\":401,\"code\":\"unauthenticated\"}"));
        resp_free(&r);
    }
    const char *bad[] = {"Authorization: Bearer "
                         "trl_0000000000000000000000000000000000000000000000000000000000000000",
                         NULL};
    http(&S, "POST", "/api/v1/inbox/read-all", NULL, 0, bad, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("inbox");
    TCase *tc = tcase_create("inbox");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, an_empty_inbox_lists_nothing_and_counts_zero);
    tcase_add_test(tc, unknown_messages_are_404);
    tcase_add_test(tc, bad_parameters_are_400_naming_them);
    tcase_add_test(tc, wrong_methods_are_405_with_allow);
    tcase_add_test(tc, every_route_wants_credentials);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
