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

/* Group membership by user: kept with every put and delete, rebuilt by trl_auth_upgrade, and
 * checked by trl_auth_check (which sees a missing or a stray row). */
struct gctx {
    struct trl_group g;
    struct trl_diag d;
    const char *raw_key; /* raw auth key to put (stray) or delete (missing) */
    size_t raw_n;
    bool raw_put;
    bool changed;
};

static int put_group(struct trl_txn *t, void *arg)
{
    struct gctx *c = arg;
    return trl_auth_group_put(t, &c->g, &c->d);
}

static int del_group(struct trl_txn *t, void *arg)
{
    struct gctx *c = arg;
    return trl_auth_group_delete(t, c->g.name);
}

static int raw_row(struct trl_txn *t, void *arg)
{
    struct gctx *c = arg;
    return c->raw_put ? trl_txn_put(t, TRL_DB_AUTH, c->raw_key, c->raw_n, "", 0, 0)
                      : trl_txn_del(t, TRL_DB_AUTH, c->raw_key, c->raw_n);
}

static int upgrade(struct trl_txn *t, void *arg)
{
    struct gctx *c = arg;
    return trl_auth_upgrade(t, &c->changed);
}

/* "a,b" = the groups of user; and the number of problems trl_auth_check finds. */
static void groups_of(const char *user, char *out, size_t n, int *problems)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    char gs[16][64];
    size_t ng = 0;
    ck_assert_int_eq(trl_auth_user_groups(t, user, gs, 16, &ng), 0);
    out[0] = 0;
    for (size_t i = 0; i < ng; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", gs[i]);
    struct trl_buf rep;
    trl_buf_init(&rep);
    *problems = trl_auth_check(t, &rep);
    trl_buf_free(&rep);
    trl_txn_end(t);
}

START_TEST(group_membership_is_indexed_by_user)
{
    struct ctx c = {0};
    trl_diag_init(&c.d);
    const char *names[] = {"ann", "ben", "cal"};
    for (int i = 0; i < 3; i++) {
        user(&c, names[i], "", "agent");
        ck_assert_int_eq(do_write(put_user, &c), 0);
    }
    struct gctx g = {0};
    trl_diag_init(&g.d);
    char got[256];
    int problems;
    ck_assert_int_eq(do_write(upgrade, &g), 0); /* a new store: marked, nothing to index */
    ck_assert(g.changed);
    ck_assert_int_eq(do_write(upgrade, &g), 0);
    ck_assert(!g.changed);

    snprintf(g.g.name, sizeof(g.g.name), "field");
    snprintf(g.g.members[0], 64, "ann");
    snprintf(g.g.members[1], 64, "ben");
    g.g.nmembers = 2;
    ck_assert_int_eq(do_write(put_group, &g), 0);
    snprintf(g.g.name, sizeof(g.g.name), "desk");
    snprintf(g.g.members[0], 64, "ben");
    g.g.nmembers = 1;
    ck_assert_int_eq(do_write(put_group, &g), 0);
    groups_of("ben", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "desk,field");
    ck_assert_int_eq(problems, 0);
    groups_of("cal", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "");

    /* Replacing the members moves the rows; deleting the group removes them. */
    snprintf(g.g.name, sizeof(g.g.name), "field");
    snprintf(g.g.members[0], 64, "cal");
    g.g.nmembers = 1;
    ck_assert_int_eq(do_write(put_group, &g), 0);
    groups_of("ann", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "");
    groups_of("ben", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "desk");
    groups_of("cal", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "field");
    ck_assert_int_eq(problems, 0);
    snprintf(g.g.name, sizeof(g.g.name), "desk");
    ck_assert_int_eq(do_write(del_group, &g), 0);
    groups_of("ben", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "");
    ck_assert_int_eq(problems, 0);

    /* check sees a missing row and a stray one. */
    static const char missing[] = "m\0cal\0field", stray[] = "m\0ann\0field";
    g.raw_key = missing, g.raw_n = sizeof(missing) - 1, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    groups_of("cal", got, sizeof(got), &problems);
    ck_assert_int_eq(problems, 1);
    g.raw_key = stray, g.raw_n = sizeof(stray) - 1, g.raw_put = true;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    groups_of("ann", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "field");
    ck_assert_int_eq(problems, 2);
    /* An older store (no mark): the upgrade rebuilds what the groups say. */
    g.raw_key = stray, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    static const char mark[] = "v\0groups_by_user";
    g.raw_key = mark, g.raw_n = sizeof(mark) - 1, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    ck_assert_int_eq(do_write(upgrade, &g), 0);
    ck_assert(g.changed);
    groups_of("cal", got, sizeof(got), &problems);
    ck_assert_str_eq(got, "field");
    ck_assert_int_eq(problems, 0);
}
END_TEST

/* Users by role: kept with every user put, used by trl_auth_role_users (which reads every user
 * on an older store until trl_auth_upgrade builds the index), and checked by trl_auth_check. */
static int collect(void *ud, const struct trl_user *u)
{
    char *out = ud;
    snprintf(out + strlen(out), 256 - strlen(out), "%s%s", out[0] ? "," : "", u->name);
    return 0;
}

/* "a,b" = the holders of role; and the number of problems trl_auth_check finds. */
static void holders(const char *role, char *out, int *problems)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    out[0] = 0;
    ck_assert_int_eq(trl_auth_role_users(t, role, collect, out), 0);
    struct trl_buf rep;
    trl_buf_init(&rep);
    *problems = trl_auth_check(t, &rep);
    trl_buf_free(&rep);
    trl_txn_end(t);
}

START_TEST(users_are_indexed_by_role)
{
    struct ctx c = {0};
    trl_diag_init(&c.d);
    struct gctx g = {0};
    char got[256];
    int problems;
    ck_assert_int_eq(do_write(upgrade, &g), 0); /* a new store: marked */
    const char *names[] = {"cal", "ann", "ben"}, *roles[] = {"agent", "agent", "lead"};
    for (int i = 0; i < 3; i++) {
        user(&c, names[i], "", roles[i]);
        ck_assert_int_eq(do_write(put_user, &c), 0);
    }
    holders("agent", got, &problems);
    ck_assert_str_eq(got, "ann,cal"); /* name order, as a scan of every user gives */
    ck_assert_int_eq(problems, 0);
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ben");
    holders("nobody", got, &problems);
    ck_assert_str_eq(got, "");
    /* A second role, then a change of role: the rows follow. */
    user(&c, "ann", "", "agent");
    snprintf(c.u.roles[1], 64, "lead");
    c.u.nroles = 2;
    ck_assert_int_eq(do_write(put_user, &c), 0);
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ann,ben");
    user(&c, "cal", "", "lead");
    ck_assert_int_eq(do_write(put_user, &c), 0);
    holders("agent", got, &problems);
    ck_assert_str_eq(got, "ann");
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ann,ben,cal");
    ck_assert_int_eq(problems, 0);
    /* check sees a stray row (which the lookup ignores) and a missing one. */
    static const char stray[] = "r\0agent\0ben", missing[] = "r\0lead\0ben";
    g.raw_key = stray, g.raw_n = sizeof(stray) - 1, g.raw_put = true;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    holders("agent", got, &problems);
    ck_assert_str_eq(got, "ann");
    ck_assert_int_eq(problems, 1);
    g.raw_key = missing, g.raw_n = sizeof(missing) - 1, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ann,cal");
    ck_assert_int_eq(problems, 2);
    /* An older store (no mark): every user is read, then the upgrade rebuilds the rows. */
    static const char mark[] = "v\0users_by_role";
    g.raw_key = mark, g.raw_n = sizeof(mark) - 1, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ann,ben,cal");
    ck_assert_int_eq(do_write(upgrade, &g), 0);
    ck_assert(g.changed);
    g.raw_key = stray, g.raw_n = sizeof(stray) - 1, g.raw_put = false;
    ck_assert_int_eq(do_write(raw_row, &g), 0);
    holders("lead", got, &problems);
    ck_assert_str_eq(got, "ann,ben,cal");
    ck_assert_int_eq(problems, 0);
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
    tcase_add_test(tc, group_membership_is_indexed_by_user);
    tcase_add_test(tc, users_are_indexed_by_role);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
