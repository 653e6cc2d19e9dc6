/* HTTPS: `serve --tls-cert --tls-key` speaks TLS, and browser sessions then use a Secure cookie
 * with the __Host- prefix. The certificate is a throwaway self-signed one made by openssl. */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 "
             "-keyout '%s/key.pem' -out '%s/cert.pem' >/dev/null 2>&1",
             S.dir, S.dir);
    ck_assert_msg(system(cmd) == 0, "openssl could not make a certificate");
    snprintf(S.extra, sizeof(S.extra), "--tls-cert %s/cert.pem --tls-key %s/key.pem", S.dir, S.dir);
    S.tls = true;
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_cleanup(&S);
}

START_TEST(https_serves_and_session_cookies_are_secure_and_host_only)
{
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", "/api/v1/auth/me", NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* Plain HTTP to the TLS port gets no HTTP answer. */
    S.tls = false;
    http(&S, "GET", "/healthz", NULL, 0, NULL, &r);
    ck_assert_int_ne(r.status, 200);
    resp_free(&r);
    S.tls = true;
    http_json(&S, "POST", "/api/v1/users",
              "{\"name\":\"sue\",\"roles\":[\"reviewer\"],\"password\":\"sue's long password\"}",
              &r);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    const char *body = "{\"username\":\"sue\",\"password\":\"sue's long password\"}";
    const char *h[] = {"Content-Type: application/json", NULL};
    http_anon(&S, "POST", "/api/v1/auth/login", body, strlen(body), h, &r);
    ck_assert_int_eq(r.status, 200);
    char sc[300];
    ck_assert_ptr_nonnull(resp_header(&r, "Set-Cookie", sc, sizeof(sc)));
    ck_assert_msg(strncmp(sc, "__Host-trellis_session=s_", 25) == 0 && strstr(sc, "; Secure") &&
                      strstr(sc, "Path=/") && strstr(sc, "HttpOnly") && !strstr(sc, "Domain"),
                  "%s", sc);
    resp_free(&r);
    char cookie[200];
    snprintf(cookie, sizeof(cookie), "Cookie: %.*s", (int)strcspn(sc, ";"), sc);
    const char *hc[] = {cookie, NULL};
    http_anon(&S, "GET", "/api/v1/auth/me", NULL, 0, hc, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_contains(r.body, "{\"user\":{\"name\":\"sue\"}}"));
    resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, https_serves_and_session_cookies_are_secure_and_host_only);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
