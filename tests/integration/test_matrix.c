/* The permission matrix: roles x scopes x operations over the home org and two partner orgs.
 * Scope "assigned" counts a record assigned to the user (field `who`) or to a team the user is
 * in (field `team`, group team_a).
 * Every cell is computed from the rule it tests and asserted against the real server:
 * get (200/404), PATCH and DELETE with a stale If-Match (404 out of scope, 403 no right, 412 when
 * allowed: nothing is ever changed), the listing count and create. */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum scope { NONE, OWN, ORG, ASG, ALL };
struct role {
    const char *name;
    enum scope create, read, update, del;
};
static const struct role roles[] = {
    {"mx_all", ALL, ALL, ALL, ALL},     {"mx_org", ORG, ORG, ORG, ORG},
    {"mx_own", OWN, OWN, OWN, OWN},     {"mx_mixed", ORG, ALL, ORG, NONE},
    {"mx_read", NONE, ALL, NONE, NONE}, {"mx_none", NONE, NONE, NONE, NONE},
    {"mx_asg", ORG, ASG, ASG, ASG},
};
#define NROLES (sizeof(roles) / sizeof(roles[0]))
static const char *orgs[] = {"home", "p1", "p2"};
#define NORGS 3

struct user {
    char name[32];
    const struct role *role;
    const char *org;
    char auth[128];
};
static struct user users[NROLES * NORGS];
static size_t nusers;
struct rec {
    long long id;
    const struct user *owner;
    const char *who; /* assignee (a user name) */
    bool team;       /* assigned to team_a */
};
static struct rec recs[NROLES * NORGS];
static size_t nrecs;
static struct srv S;

static void run(const char *const *argv)
{
    char *out = NULL;
    int rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc == 0, "%s %s: %s", argv[0], argv[1], out);
    free(out);
}

static bool in_scope(enum scope s, const struct user *u, const struct rec *r)
{
    switch (s) {
    case ALL:
        return true;
    case ORG:
        return strcmp(u->org, r->owner->org) == 0;
    case OWN:
        return u == r->owner;
    case ASG:
        /* team_a's only member is mx_asg_p1. */
        return strcmp(r->who, u->name) == 0 || (r->team && strcmp(u->name, "mx_asg_p1") == 0);
    default:
        return false;
    }
}

static long call(const struct user *u, const char *method, const char *path, const char *body,
                 const char *extra, struct resp *out)
{
    const char *h[] = {u->auth, "Content-Type: application/json", extra, NULL};
    struct resp tmp, *r = out ? out : &tmp;
    http(&S, method, path, body, body ? strlen(body) : 0, h, r);
    long st = r->status;
    if (!out) resp_free(r);
    return st;
}

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    for (int o = 0; o < NORGS; o++) {
        const char *a[] = {"org", "add", orgs[o], "--data", S.dir, NULL};
        run(a);
    }
    nusers = nrecs = 0;
    for (size_t r = 0; r < NROLES; r++)
        for (int o = 0; o < NORGS; o++) {
            struct user *u = &users[nusers++];
            snprintf(u->name, sizeof(u->name), "%s_%s", roles[r].name, orgs[o]);
            u->role = &roles[r];
            u->org = orgs[o];
            const char *a[] = {"user",  "add",   u->name,  "--role", roles[r].name,
                               "--org", orgs[o], "--data", S.dir,    NULL};
            run(a);
            const char *t[] = {"token", "create", u->name, "--data", S.dir, NULL};
            char *out = NULL;
            ck_assert_int_eq(run_trellis(t, &out, 60), 0);
            snprintf(u->auth, sizeof(u->auth), "Authorization: Bearer %.68s", strstr(out, "trl_"));
            free(out);
        }
    ck_assert_int_eq(srv_start(&S), 0);
    /* The type under test, with one permission row per role. */
    struct trl_buf_like {
        char s[4096];
    } def;
    int n = snprintf(def.s, sizeof(def.s),
                     "{\"name\":\"mx\",\"fields\":[{\"name\":\"t\",\"type\":\"text\"},"
                     "{\"name\":\"who\",\"type\":\"text\",\"indexed\":true},"
                     "{\"name\":\"team\",\"type\":\"text\",\"indexed\":true}],"
                     "\"assignee_field\":\"who\",\"assignee_group_field\":\"team\","
                     "\"permissions\":{");
    static const char *sn[] = {"none", "own", "org", "assigned", "all"};
    for (size_t r = 0; r < NROLES; r++)
        n += snprintf(def.s + n, sizeof(def.s) - (size_t)n,
                      "%s\"%s\":{\"create\":\"%s\",\"read\":\"%s\",\"update\":\"%s\","
                      "\"delete\":\"%s\"}",
                      r ? "," : "", roles[r].name, sn[roles[r].create], sn[roles[r].read],
                      sn[roles[r].update], sn[roles[r].del]);
    snprintf(def.s + n, sizeof(def.s) - (size_t)n, "}}");
    struct resp r;
    http_json(&S, "PUT", "/api/v1/meta/types/mx", def.s, &r);
    ck_assert_msg(r.status == 201, "%s", r.body);
    resp_free(&r);
    http_json(&S, "PUT", "/api/v1/groups/team_a", "{\"members\":[\"mx_asg_p1\"]}", &r);
    ck_assert_msg(r.status == 200 || r.status == 201, "%s", r.body);
    resp_free(&r);
}

static void teardown(void)
{
    srv_teardown(&S);
}

START_TEST(every_cell_of_the_matrix)
{
    /* create: every user tries once; allowed ones become the records of the matrix. */
    int cells = 0;
    for (size_t i = 0; i < nusers; i++) {
        const struct user *u = &users[i];
        struct resp r;
        char body[192];
        /* Every other record is assigned to an mx_asg user, the others to someone else; every
         * third to team_a. */
        const char *who = i % 2 ? users[(i * 7) % nusers].name : users[nusers - 1 - i % NORGS].name;
        bool team = i % 3 == 1;
        snprintf(body, sizeof(body), "{\"t\":\"by %s\",\"who\":\"%s\",\"team\":\"%s\"}", u->name,
                 who, team ? "team_a" : "");
        long st = call(u, "POST", "/api/v1/records/mx", body, NULL, &r);
        long want = u->role->create != NONE ? 201 : u->role->read != NONE ? 403 : 404;
        ck_assert_msg(st == want, "create by %s: %ld, want %ld (%s)", u->name, st, want, r.body);
        if (st == 201) recs[nrecs++] = (struct rec){json_int(r.body, "id", 0), u, who, team};
        resp_free(&r);
        cells++;
    }
    ck_assert_int_eq(nrecs, 15); /* 5 roles that may create x 3 orgs */
    /* The assigned scope is exercised both ways: by name and through the team. */
    int by_name = 0, by_team = 0;
    for (size_t k = 0; k < nrecs; k++) {
        by_name += strncmp(recs[k].who, "mx_asg_", 7) == 0;
        by_team += recs[k].team;
    }
    ck_assert(by_name >= 3 && by_team >= 3);
    for (size_t i = 0; i < nusers; i++) {
        const struct user *u = &users[i];
        long visible = 0;
        for (size_t k = 0; k < nrecs; k++) {
            const struct rec *rc = &recs[k];
            bool see = in_scope(u->role->read, u, rc);
            visible += see;
            char path[96];
            snprintf(path, sizeof(path), "/api/v1/records/mx/%lld", rc->id);
            long st = call(u, "GET", path, NULL, NULL, NULL);
            long want = u->role->read == NONE && u->role->create == NONE ? 404 : see ? 200 : 404;
            ck_assert_msg(st == want, "GET %s by %s: %ld want %ld", path, u->name, st, want);
            st = call(u, "PATCH", path, "{\"t\":\"x\"}", "If-Match: \"999\"", NULL);
            want = !see ? 404 : in_scope(u->role->update, u, rc) ? 412 : 403;
            if (u->role->read == NONE && u->role->create == NONE) want = 404;
            ck_assert_msg(st == want, "PATCH %s by %s: %ld want %ld", path, u->name, st, want);
            st = call(u, "DELETE", path, NULL, "If-Match: \"999\"", NULL);
            want = !see ? 404 : in_scope(u->role->del, u, rc) ? 412 : 403;
            if (u->role->read == NONE && u->role->create == NONE) want = 404;
            ck_assert_msg(st == want, "DELETE %s by %s: %ld want %ld", path, u->name, st, want);
            cells += 3;
        }
        struct resp r;
        long st = call(u, "GET", "/api/v1/records/mx?count=exact&limit=1000", NULL, NULL, &r);
        if (u->role->read == NONE && u->role->create == NONE) {
            ck_assert_int_eq(st, 404);
        } else {
            ck_assert_int_eq(st, 200);
            ck_assert_msg(json_int(r.body, "count", -1) == visible, "count for %s: %s, want %ld",
                          u->name, r.body, visible);
        }
        resp_free(&r);
        cells++;
    }
    printf("permission matrix: %d cells asserted\n", cells);
    ck_assert_int_ge(cells, 21 + 21 * 15 * 3 + 21);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_matrix");
    TCase *tc = tcase_create("matrix");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_cell_of_the_matrix);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
