/* Authentication over HTTP: Bearer API tokens, 401s that say why, admin-only meta API, revocation
 * and disabling taking effect at once, the actor in history. */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct srv S;

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_cleanup(&S);
}

static const char *MR = "/api/v1/records/marketing_request";

static int cli(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5)
{
    const char *argv[12];
    int n = 0;
    const char *in[] = {a1, a2, a3, a4, a5};
    for (int i = 0; i < 5; i++)
        if (in[i]) argv[n++] = in[i];
    argv[n++] = "--data";
    argv[n++] = S.dir;
    argv[n] = NULL;
    return run_trellis(argv, out, 60);
}

/* A token for a new non-admin user; returns the Authorization header in hdr. */
static void partner_token(char *hdr, size_t n)
{
    char *out = NULL;
    ck_assert_int_eq(cli(&out, "org", "add", "acme", NULL, NULL), 0);
    free(out);
    const char *argv[] = {"user",  "add",  "pat",    "--role", "partner",
                          "--org", "acme", "--data", S.dir,    NULL};
    ck_assert_int_eq(run_trellis(argv, &out, 60), 0);
    free(out);
    ck_assert_int_eq(cli(&out, "token", "create", "pat", "--name", "pat-ci"), 0);
    const char *p = strstr(out, "trl_");
    ck_assert_ptr_nonnull(p);
    snprintf(hdr, n, "Authorization: Bearer %.68s", p);
    free(out);
}

START_TEST(requests_without_a_token_are_401_and_say_why)
{
    struct resp r;
    char buf[200];
    http_anon(&S, "GET", MR, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert(json_contains(r.body, "{\"status\":401,\"code\":\"unauthenticated\"}"));
    ck_assert_ptr_nonnull(resp_header(&r, "WWW-Authenticate", buf, sizeof(buf)));
    ck_assert(strncmp(buf, "Bearer", 6) == 0);
    resp_free(&r);
    const char *bad[] = {"Authorization: Bearer "
                         "trl_0000000000000000000000000000000000000000000000000000000000000000",
                         "Accept-Language: zh-CN", NULL};
    long before = count_records(&S, "marketing_request");
    http(&S, "POST", MR, "{\"title\":\"x\",\"partner\":\"p\",\"budget\":1}", 38, bad, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert(strstr(r.body, "令牌") != NULL);
    ck_assert(strstr(resp_header(&r, "WWW-Authenticate", buf, sizeof(buf)), "invalid_token"));
    resp_free(&r);
    ck_assert_int_eq(count_records(&S, "marketing_request"), before);
    /* Health and metrics stay open for probes. */
    http_anon(&S, "GET", "/healthz", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(a_token_acts_as_its_user)
{
    char hdr[128];
    partner_token(hdr, sizeof(hdr));
    const char *h[] = {hdr, "Content-Type: application/json", NULL};
    struct resp r;
    http(&S, "GET", "/api/v1/auth/me", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(json_contains(r.body, "{\"user\":{\"name\":\"pat\",\"org\":\"acme\",\"roles\":"
                                        "[\"partner\"]},\"token\":\"pat-ci\",\"admin\":false}"),
                  "%s", r.body);
    resp_free(&r);
    const char *body = "{\"title\":\"by pat\",\"partner\":\"Acme\",\"budget\":\"10\"}";
    http(&S, "POST", MR, body, strlen(body), h, &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert(json_contains(r.body, "{\"owner\":\"pat\",\"org\":\"acme\",\"created_by\":\"pat\"}"));
    long long id = json_int(r.body, "id", 0);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld/history", MR, id);
    http(&S, "GET", path, NULL, 0, h, &r);
    ck_assert(json_contains(r.body, "{\"items\":[{\"actor\":\"pat\"}]}"));
    resp_free(&r);
    /* The meta API is for administrators only. */
    http(&S, "GET", "/api/v1/meta/types", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    http(&S, "PUT", "/api/v1/meta/types/x", "{\"name\":\"x\",\"fields\":[]}", 24, h, &r);
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    http(&S, "GET", "/api/v1/meta/types", NULL, 0, NULL, &r); /* the harness's admin token */
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(revoking_a_token_or_disabling_its_user_takes_effect_at_once)
{
    char hdr[128], *out = NULL;
    partner_token(hdr, sizeof(hdr));
    const char *h[] = {hdr, NULL};
    struct resp r;
    http(&S, "GET", MR, NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(cli(&out, "user", "disable", "pat", NULL, NULL), 0);
    free(out);
    http(&S, "GET", MR, NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    ck_assert_int_eq(cli(&out, "user", "enable", "pat", NULL, NULL), 0);
    free(out);
    http(&S, "GET", MR, NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(cli(&out, "token", "revoke", "pat-ci", NULL, NULL), 0);
    free(out);
    http(&S, "GET", MR, NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    /* Listing tokens never shows a secret. */
    ck_assert_int_eq(cli(&out, "token", "list", NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "trl_") == NULL && strstr(out, S.token + 4) == NULL, "%s", out);
    free(out);
}
END_TEST

START_TEST(admins_manage_users_orgs_and_tokens_over_the_api)
{
    struct resp r;
    const char *org = "{\"name\":\"globex\",\"labels\":{\"en\":\"Globex\",\"zh-CN\":\"环球\"}}";
    http_json(&S, "POST", "/api/v1/orgs", org, &r);
    ck_assert_msg(r.status == 201, "%s", r.body);
    resp_free(&r);
    /* Every invalid member at once; nothing stored. */
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"gus\",\"roles\":\"partner\",\"colour\":\"red\",\"active\":1}", &r);
    ck_assert_int_eq(r.status, 422);
    ck_assert(json_contains(r.body, "{\"errors\":[{\"field\":\"roles\",\"code\":\"type\"},"
                                    "{\"field\":\"colour\",\"code\":\"unknown_field\"},"
                                    "{\"field\":\"active\",\"code\":\"type\"}]}"));
    resp_free(&r);
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"gus\",\"roles\":[\"partner\"],\"org\":\"globex\",\"language\":"
              "\"zh-CN\",\"password\":\"long enough secret\"}",
              &r);
    ck_assert_msg(r.status == 201, "%s", r.body);
    ck_assert(json_contains(r.body, "{\"name\":\"gus\",\"org\":\"globex\",\"active\":true}"));
    ck_assert(strstr(r.body, "argon2") == NULL && strstr(r.body, "long enough") == NULL);
    resp_free(&r);
    http_json(&S, "POST", "/api/v1/users", "{\"name\":\"gus\",\"roles\":[\"x\"]}", &r);
    ck_assert_int_eq(r.status, 409);
    resp_free(&r);
    http_json(&S, "POST", "/api/v1/users", "{\"name\":\"nope\",\"roles\":[\"x\"],\"org\":\"none\"}",
              &r);
    ck_assert_int_eq(r.status, 422);
    resp_free(&r);

    /* A token for gus, made by the admin; gus may change his display name but not his roles. */
    http_json(&S, "POST", "/api/v1/auth/tokens", "{\"name\":\"gus-1\",\"user\":\"gus\"}", &r);
    ck_assert_msg(r.status == 201, "%s", r.body);
    const char *p = strstr(r.body, "trl_");
    ck_assert_ptr_nonnull(p);
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %.68s", p);
    resp_free(&r);
    const char *h[] = {hdr, "Content-Type: application/json", NULL};
    const char *up = "{\"roles\":[\"admin\"]}";
    http(&S, "PATCH", "/api/v1/users/gus", up, strlen(up), h, &r);
    ck_assert_int_eq(r.status, 422);
    ck_assert(json_contains(r.body, "{\"errors\":[{\"field\":\"roles\",\"code\":\"read_only\"}]}"));
    resp_free(&r);
    const char *dn = "{\"display_name\":\"古斯\"}";
    http(&S, "PATCH", "/api/v1/users/gus", dn, strlen(dn), h, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert(json_contains(r.body, "{\"display_name\":\"古斯\",\"roles\":[\"partner\"]}"));
    resp_free(&r);
    /* Not an admin: other users and the user list are out of reach. */
    http(&S, "GET", "/api/v1/users/admin", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    http(&S, "GET", "/api/v1/users", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    /* The admin disables gus through the API: his token stops at once. */
    http_json(&S, "PATCH", "/api/v1/users/gus", "{\"active\":false}", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    http(&S, "GET", "/api/v1/auth/me", NULL, 0, h, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    /* Revoke through the API. */
    http(&S, "DELETE", "/api/v1/auth/tokens/gus-1", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    resp_free(&r);
    http(&S, "GET", "/api/v1/auth/tokens", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "gus-1") == NULL && strstr(r.body, "trl_") == NULL);
    resp_free(&r);
}
END_TEST

/* The value of the trellis_session cookie in a response's Set-Cookie, into out. */
static bool cookie_of(const struct resp *r, char *out, size_t n)
{
    char sc[300];
    if (!resp_header(r, "Set-Cookie", sc, sizeof(sc))) return false;
    if (strncmp(sc, "trellis_session=", 16) != 0) return false;
    snprintf(out, n, "trellis_session=%.*s", (int)strcspn(sc + 16, ";"), sc + 16);
    return true;
}

static long login(const char *user, const char *pw, const char *old_cookie, char *cookie, size_t cn,
                  char *csrf, size_t xn)
{
    char body[256], hc[200];
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    snprintf(hc, sizeof(hc), "Cookie: %s", old_cookie ? old_cookie : "");
    const char *h[] = {"Content-Type: application/json", old_cookie ? hc : NULL, NULL};
    struct resp r;
    http_anon(&S, "POST", "/api/v1/auth/login", body, strlen(body), h, &r);
    long st = r.status;
    if (st == 200) {
        char sc[300];
        ck_assert_ptr_nonnull(resp_header(&r, "Set-Cookie", sc, sizeof(sc)));
        ck_assert_msg(strstr(sc, "HttpOnly") && strstr(sc, "SameSite=Lax") && strstr(sc, "Path=/"),
                      "%s", sc);
        ck_assert(cookie_of(&r, cookie, cn));
        const char *x = strstr(r.body, "\"csrf_token\":\"");
        ck_assert_ptr_nonnull(x);
        snprintf(csrf, xn, "X-CSRF-Token: %.64s", x + 14);
    }
    resp_free(&r);
    return st;
}

static long with_cookie(const char *method, const char *path, const char *body, const char *cookie,
                        const char *csrf)
{
    char hc[200];
    snprintf(hc, sizeof(hc), "Cookie: %s", cookie);
    const char *h[] = {hc, "Content-Type: application/json", csrf, NULL};
    struct resp r;
    http_anon(&S, method, path, body, body ? strlen(body) : 0, h, &r);
    long st = r.status;
    resp_free(&r);
    return st;
}

START_TEST(browser_sessions_login_csrf_rotation_logout)
{
    char *out = NULL;
    /* A user with a password (through the API: it is hashed off the HTTP threads). */
    struct resp r;
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"lee\",\"roles\":[\"partner\",\"reviewer\"],\"password\":\"lee's long "
              "password\"}",
              &r);
    ck_assert_msg(r.status == 201, "%s", r.body);
    resp_free(&r);
    char cookie[160], csrf[100], c2[160], x2[100];
    ck_assert_int_eq(
        login("lee", "wrong password!", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)), 401);
    ck_assert_int_eq(
        login("nobody", "whatever123", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)), 401);
    ck_assert_int_eq(
        login("lee", "lee's long password", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)), 200);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, cookie, NULL), 200);
    const char *body = "{\"title\":\"by cookie\",\"partner\":\"P\",\"budget\":\"1\"}";
    long before = count_records(&S, "marketing_request");
    ck_assert_int_eq(with_cookie("POST", MR, body, cookie, NULL), 403); /* no CSRF token */
    ck_assert_int_eq(with_cookie("POST", MR, body, cookie, "X-CSRF-Token: 0000"), 403);
    ck_assert_int_eq(count_records(&S, "marketing_request"), before);
    ck_assert_int_eq(with_cookie("POST", MR, body, cookie, csrf), 201);
    /* Logging in again rotates: the old session ends. */
    ck_assert_int_eq(login("lee", "lee's long password", cookie, c2, sizeof(c2), x2, sizeof(x2)),
                     200);
    ck_assert_str_ne(cookie, c2);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, cookie, NULL), 401);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, c2, NULL), 200);
    /* Logout ends it. */
    ck_assert_int_eq(with_cookie("POST", "/api/v1/auth/logout", NULL, c2, x2), 204);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, c2, NULL), 401);
    /* A password change ends every session of the user. */
    ck_assert_int_eq(login("lee", "lee's long password", NULL, c2, sizeof(c2), x2, sizeof(x2)),
                     200);
    http_json(&S, "PATCH", "/api/v1/users/lee", "{\"password\":\"a brand new password\"}", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, c2, NULL), 401);
    /* So does disabling the user (from the CLI, another process). */
    ck_assert_int_eq(login("lee", "a brand new password", NULL, c2, sizeof(c2), x2, sizeof(x2)),
                     200);
    ck_assert_int_eq(cli(&out, "user", "disable", "lee", NULL, NULL), 0);
    free(out);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/auth/me", NULL, c2, NULL), 401);
    ck_assert_int_eq(login("lee", "a brand new password", NULL, c2, sizeof(c2), x2, sizeof(x2)),
                     401);
}
END_TEST

START_TEST(failed_logins_are_throttled_then_forgiven)
{
    struct resp r;
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"kim\",\"roles\":[\"reviewer\"],\"password\":\"kim's long password\"}",
              &r);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    char cookie[160], csrf[100];
    /* Three free failures, then each attempt must wait (1 s after the 4th failure). */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(
            login("kim", "not the password", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)),
            401);
    const char *body = "{\"username\":\"kim\",\"password\":\"kim's long password\"}";
    const char *h[] = {"Content-Type: application/json", NULL};
    http_anon(&S, "POST", "/api/v1/auth/login", body, strlen(body), h, &r);
    ck_assert_int_eq(r.status, 429);
    char ra[32];
    ck_assert_ptr_nonnull(resp_header(&r, "Retry-After", ra, sizeof(ra)));
    int wait = atoi(ra);
    ck_assert(wait >= 1 && wait <= 60);
    ck_assert(json_contains(r.body, "{\"code\":\"rate_limited\"}"));
    resp_free(&r);
    /* Other routes are not slowed down meanwhile. */
    http(&S, "GET", "/api/v1/auth/me", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* The throttle expires: after the wait, the right password works. */
    sleep((unsigned)wait);
    ck_assert_int_eq(
        login("kim", "kim's long password", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)), 200);
}
END_TEST

START_TEST(the_audit_log_records_logins_tokens_and_refusals)
{
    struct resp r;
    char cookie[160], csrf[100], hdr[128];
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"ann\",\"roles\":[\"reviewer\"],\"password\":\"ann's long password\"}",
              &r);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    ck_assert_int_eq(login("ann", "wrong one!!", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)),
                     401);
    ck_assert_int_eq(
        login("ann", "ann's long password", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf)), 200);
    ck_assert_int_eq(with_cookie("GET", "/api/v1/users", NULL, cookie, NULL), 403);
    ck_assert_int_eq(with_cookie("POST", "/api/v1/auth/logout", NULL, cookie, csrf), 204);
    partner_token(hdr, sizeof(hdr)); /* CLI: org add, user add, token create */
    const char *h[] = {hdr, NULL};
    http(&S, "GET", "/api/v1/audit", NULL, 0, h, &r); /* not an admin */
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    /* Newest first; the 403 just above is the newest entry (its write may trail the answer). */
    for (int i = 0; i < 50; i++) {
        http(&S, "GET", "/api/v1/audit?limit=20", NULL, 0, NULL, &r);
        if (strstr(r.body, "\"/api/v1/audit\"")) break;
        resp_free(&r);
        usleep(20000);
    }
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(json_contains(r.body, "{\"items\":[{\"actor\":\"pat\",\"action\":\"forbidden\","
                                        "\"target\":\"/api/v1/audit\"}]}"),
                  "%s", r.body);
    const char *want[] = {"\"action\":\"user_create\",\"target\":\"ann\"",
                          "\"action\":\"login_failed\",\"target\":\"ann\"",
                          "\"actor\":\"ann\",\"action\":\"login\"",
                          "\"actor\":\"ann\",\"action\":\"forbidden\",\"target\":\"/api/v1/users\"",
                          "\"actor\":\"ann\",\"action\":\"logout\"",
                          "\"actor\":\"cli\",\"action\":\"token_create\",\"target\":\"pat\"",
                          "\"client\":\"127.0.0.1\""};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(r.body, want[i]) != NULL, "missing %s in %s", want[i], r.body);
    resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, requests_without_a_token_are_401_and_say_why);
    tcase_add_test(tc, a_token_acts_as_its_user);
    tcase_add_test(tc, revoking_a_token_or_disabling_its_user_takes_effect_at_once);
    tcase_add_test(tc, admins_manage_users_orgs_and_tokens_over_the_api);
    tcase_add_test(tc, browser_sessions_login_csrf_rotation_logout);
    tcase_add_test(tc, failed_logins_are_throttled_then_forgiven);
    tcase_add_test(tc, the_audit_log_records_logins_tokens_and_refusals);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
