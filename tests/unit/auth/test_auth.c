/* auth: Argon2id passwords, users and orgs, API tokens (create, check, expiry, revocation). */
#include "auth/auth.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static struct trl_store *st;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/trellis-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store_opts o = {.dir = dir};
    ck_assert_int_eq(trl_store_open(&o, &st, &d), 0);
}

static void teardown(void)
{
    trl_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

typedef int (*txn_fn)(struct trl_txn *t, void *arg);

static int do_write(txn_fn fn, void *arg)
{
    return trl_store_write(st, fn, arg);
}

START_TEST(passwords_are_argon2id_at_owasp_minimum)
{
    struct trl_diag d;
    trl_diag_init(&d);
    char h1[128], h2[128];
    ck_assert_int_eq(trl_auth_password_hash("correct horse 电池", h1, &d), 0);
    ck_assert_int_eq(trl_auth_password_hash("correct horse 电池", h2, &d), 0);
    /* 19 MiB = 19456 KiB, 2 passes; a fresh salt each time. */
    ck_assert_msg(strncmp(h1, "$argon2id$v=19$m=19456,t=2,", 27) == 0, "%s", h1);
    ck_assert_str_ne(h1, h2);
    ck_assert(trl_auth_password_verify(h1, "correct horse 电池"));
    ck_assert(!trl_auth_password_verify(h1, "correct horse 电"));
    ck_assert(!trl_auth_password_verify("", "anything"));
    ck_assert_int_eq(trl_auth_password_hash("short", h1, &d), TRL_EVALIDATION);
    ck_assert_str_eq(d.field, "password");
    trl_diag_reset(&d);
}
END_TEST

struct ctx {
    struct trl_user u;
    struct trl_token tok;
    char secret[80];
    struct trl_diag d;
    const char *name;
};

static int add_org(struct trl_txn *t, void *arg)
{
    struct ctx *c = arg;
    return trl_auth_org_put(t, c->name, "Acme", "爱克美", &c->d);
}

static int put_user(struct trl_txn *t, void *arg)
{
    struct ctx *c = arg;
    return trl_auth_user_put(t, &c->u, &c->d);
}

static int make_token(struct trl_txn *t, void *arg)
{
    struct ctx *c = arg;
    return trl_auth_token_create(t, &c->tok, c->secret, &c->d);
}

static int do_revoke(struct trl_txn *t, void *arg)
{
    struct ctx *c = arg;
    return trl_auth_token_revoke(t, c->name);
}

static void user(struct ctx *c, const char *name, const char *org, const char *role)
{
    memset(&c->u, 0, sizeof(c->u));
    snprintf(c->u.name, sizeof(c->u.name), "%s", name);
    snprintf(c->u.display, sizeof(c->u.display), "%s 用户", name);
    snprintf(c->u.lang, sizeof(c->u.lang), "zh-CN");
    snprintf(c->u.org, sizeof(c->u.org), "%s", org);
    snprintf(c->u.roles[0], 64, "%s", role);
    c->u.nroles = 1;
    c->u.active = true;
}

START_TEST(users_need_an_existing_org_and_valid_names)
{
    struct ctx c = {0};
    trl_diag_init(&c.d);
    user(&c, "alice", "acme", "partner");
    ck_assert_int_eq(do_write(put_user, &c), TRL_EVALIDATION);
    ck_assert_str_eq(c.d.field, "org");
    trl_diag_reset(&c.d);
    c.name = "acme";
    ck_assert_int_eq(do_write(add_org, &c), 0);
    ck_assert_int_eq(do_write(put_user, &c), 0);
    user(&c, "Bad Name", "", "x");
    ck_assert_int_eq(do_write(put_user, &c), TRL_EVALIDATION);
    trl_diag_reset(&c.d);
    user(&c, "bob", "", "reviewer");
    snprintf(c.u.manager, sizeof(c.u.manager), "nobody");
    ck_assert_int_eq(do_write(put_user, &c), TRL_EVALIDATION);
    ck_assert_str_eq(c.d.field, "manager");
    trl_diag_reset(&c.d);
    snprintf(c.u.manager, sizeof(c.u.manager), "alice");
    ck_assert_int_eq(do_write(put_user, &c), 0);

    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    struct trl_user got;
    ck_assert_int_eq(trl_auth_user_get(t, "alice", &got), 0);
    ck_assert_str_eq(got.org, "acme");
    ck_assert_str_eq(got.display, "alice 用户");
    ck_assert_int_eq(trl_auth_user_get(t, "nobody", &got), TRL_ENOTFOUND);
    struct trl_buf out;
    trl_buf_init(&out);
    ck_assert_int_eq(trl_auth_user_list(t, &out), 0);
    ck_assert(strstr(out.data, "\"name\":\"alice\"") && strstr(out.data, "\"manager\":\"alice\""));
    ck_assert(strstr(out.data, "password_hash") == NULL && strstr(out.data, "$argon2id") == NULL);
    trl_buf_free(&out);
    trl_txn_end(t);
}
END_TEST

START_TEST(tokens_are_shown_once_stored_hashed_and_revocable)
{
    struct ctx c = {0};
    trl_diag_init(&c.d);
    user(&c, "alice", "", "partner");
    ck_assert_int_eq(do_write(put_user, &c), 0);
    snprintf(c.tok.name, sizeof(c.tok.name), "ci");
    snprintf(c.tok.user, sizeof(c.tok.user), "alice");
    snprintf(c.tok.roles[0], 64, "admin"); /* not a role of alice */
    c.tok.nroles = 1;
    ck_assert_int_eq(do_write(make_token, &c), TRL_EVALIDATION);
    trl_diag_reset(&c.d);
    snprintf(c.tok.roles[0], 64, "partner");
    c.tok.created_at = 1000;
    c.tok.expires_at = 5000;
    ck_assert_int_eq(do_write(make_token, &c), 0);
    ck_assert_int_eq(strlen(c.secret), 68);
    char first[80];
    snprintf(first, sizeof(first), "%s", c.secret);
    ck_assert_int_eq(do_write(make_token, &c), TRL_EEXIST); /* names are unique */
    trl_diag_reset(&c.d);

    struct trl_txn *t;
    struct trl_token tok;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_auth_token_check(t, first, 4999, &tok, NULL), 0);
    ck_assert_str_eq(tok.user, "alice");
    ck_assert_int_eq(trl_auth_token_check(t, first, 5000, &tok, NULL), TRL_EAUTH); /* expired */
    first[10] ^= 1;
    ck_assert_int_eq(trl_auth_token_check(t, first, 10, &tok, NULL), TRL_EAUTH);
    first[10] ^= 1;
    struct trl_buf out;
    trl_buf_init(&out);
    ck_assert_int_eq(trl_auth_token_list(t, &out), 0);
    ck_assert(strstr(out.data, "\"name\":\"ci\"") != NULL);
    ck_assert(strstr(out.data, first + 4) == NULL && strstr(out.data, "hash") == NULL);
    trl_buf_free(&out);
    trl_txn_end(t);

    /* A disabled user's tokens stop working at once. */
    c.u.active = false;
    ck_assert_int_eq(do_write(put_user, &c), 0);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_auth_token_check(t, first, 10, &tok, NULL), TRL_EAUTH);
    trl_txn_end(t);
    c.u.active = true;
    ck_assert_int_eq(do_write(put_user, &c), 0);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_auth_token_check(t, first, 10, &tok, NULL), 0);
    trl_txn_end(t);

    c.name = "ci";
    ck_assert_int_eq(do_write(do_revoke, &c), 0);
    ck_assert_int_eq(do_write(do_revoke, &c), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_auth_token_check(t, first, 10, &tok, NULL), TRL_EAUTH);
    trl_txn_end(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, passwords_are_argon2id_at_owasp_minimum);
    tcase_add_test(tc, users_need_an_existing_org_and_valid_names);
    tcase_add_test(tc, tokens_are_shown_once_stored_hashed_and_revocable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
