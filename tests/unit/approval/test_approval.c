/*
 * test_approval.c — approval voting rules and stored approvals on a real store.
 *
 * What it proves: each mode's outcome follows its rule for every approve/reject count with 1 to
 * 5 approvers; on a real store, every vote sequence of 1 to 5 approvers under any, all,
 * sequential and every quorum ends exactly when the outcome is certain, cancels the other open
 * tasks in that same write (they leave every inbox) and refuses later votes; sequential steps
 * open one task at a time in the listed order; approvers exclude the requester unless allowed,
 * skip inactive users, follow out-of-office rules and refuse too few approvers; decisions by
 * someone else, on closed tasks and without the needed comment change nothing; delegation
 * records who handed over and refuses double votes; out-of-office rules move pending tasks and
 * refuse cycles.
 */
#include "approval/approval.h"

#include <check.h>

#include "../fixture.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static char tmp_dir[192];
static struct trl_store *st;
static const int64_t NOW = 1790000000000; /* 2026-09 */

static void setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/s", fx_base_dir);
    fx_rm_tree(tmp_dir);
    struct trl_store_opts o = {.dir = tmp_dir};
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_msg(trl_store_open(&o, &st, &d) == 0, "open: %s", d.message);
    trl_diag_reset(&d);
}

static void teardown(void)
{
    trl_store_close(st);
    st = NULL;
    fx_rm_tree(tmp_dir);
}

/* ---------------------------------------------------------------------------------------------
 * The rule itself, against an independent model, for every count.
 */
static enum trl_appr_outcome model(enum trl_appr_mode m, unsigned q, unsigned n, unsigned a,
                                   unsigned r)
{
    switch (m) {
    case TRL_APPR_ANY:
        return a ? TRL_APPR_APPROVED : r ? TRL_APPR_REJECTED : TRL_APPR_PENDING;
    case TRL_APPR_ALL:
    case TRL_APPR_SEQUENTIAL:
        return r ? TRL_APPR_REJECTED : a == n ? TRL_APPR_APPROVED : TRL_APPR_PENDING;
    case TRL_APPR_QUORUM:
        return a >= q ? TRL_APPR_APPROVED : r > n - q ? TRL_APPR_REJECTED : TRL_APPR_PENDING;
    }
    return TRL_APPR_PENDING;
}

START_TEST(outcome_every_count)
{
    size_t checked = 0;
    for (unsigned n = 1; n <= 5; n++)
        for (unsigned a = 0; a <= n; a++)
            for (unsigned r = 0; a + r <= n; r++) {
                for (int m = TRL_APPR_ANY; m <= TRL_APPR_SEQUENTIAL; m++) {
                    unsigned qmax = m == TRL_APPR_QUORUM ? n : 1;
                    for (unsigned q = 1; q <= qmax; q++, checked++)
                        LOOP_ASSERT(trl_appr_outcome(m, q, n, a, r) == model(m, q, n, a, r),
                                    "mode %d q %u n %u a %u r %u", m, q, n, a, r);
                }
            }
    /* Spot checks stated in words: 2 of 3 approve a quorum of 2; 2 rejects of 3 make a quorum
     * of 2 unreachable; one reject ends an "all" step; "any" ends at the first decision. */
    ck_assert_int_eq(trl_appr_outcome(TRL_APPR_QUORUM, 2, 3, 2, 0), TRL_APPR_APPROVED);
    ck_assert_int_eq(trl_appr_outcome(TRL_APPR_QUORUM, 2, 3, 0, 1), TRL_APPR_PENDING);
    ck_assert_int_eq(trl_appr_outcome(TRL_APPR_QUORUM, 2, 3, 0, 2), TRL_APPR_REJECTED);
    ck_assert_int_eq(trl_appr_outcome(TRL_APPR_ALL, 0, 4, 3, 1), TRL_APPR_REJECTED);
    ck_assert_int_eq(trl_appr_outcome(TRL_APPR_ANY, 0, 5, 0, 1), TRL_APPR_REJECTED);
    ck_assert_uint_gt(checked, 100);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Helpers on the store
 */
static int users_fn(struct trl_txn *t, void *arg)
{
    (void)arg;
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = 0;
    for (int i = 1; i <= 6 && !rc; i++) {
        struct trl_user u = {.active = true};
        snprintf(u.name, sizeof(u.name), "u%d", i);
        snprintf(u.lang, sizeof(u.lang), "en");
        rc = trl_auth_user_put(t, &u, &d);
    }
    struct trl_user req = {.active = true};
    snprintf(req.name, sizeof(req.name), "req");
    snprintf(req.lang, sizeof(req.lang), "en");
    if (!rc) rc = trl_auth_user_put(t, &req, &d);
    struct trl_user gone = {.active = false};
    snprintf(gone.name, sizeof(gone.name), "gone");
    snprintf(gone.lang, sizeof(gone.lang), "en");
    if (!rc) rc = trl_auth_user_put(t, &gone, &d);
    trl_diag_reset(&d);
    return rc;
}

static void make_users(void)
{
    ck_assert_int_eq(trl_store_write(st, users_fn, NULL), 0);
}

/* A one-step approval definition with the given approvers JSON and mode. Owned by the caller. */
static struct trl_appr_def *def_of(const char *approvers, const char *mode, unsigned quorum,
                                   bool allow_self)
{
    char json[1024];
    char q[32] = "";
    if (quorum) snprintf(q, sizeof(q), ",\"quorum\":%u", quorum);
    snprintf(json, sizeof(json),
             "{\"name\":\"a\",\"state\":\"review\",\"on_approve\":\"ok\",\"on_reject\":\"no\","
             "\"steps\":[{\"name\":\"s\",\"approvers\":%s,\"mode\":\"%s\"%s%s}]}",
             approvers, mode, q, allow_self ? ",\"allow_self\":true" : "");
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_defcheck c = {.d = &d};
    struct trl_appr_def *a = calloc(1, sizeof(*a));
    trl_appr_def_parse(&c, j, "approvals[0]", NULL, a);
    cJSON_Delete(j);
    ck_assert_msg(c.nerr == 0 && c.rc == 0, "def: %s", d.nferrs ? d.ferrs[0].detail : "");
    trl_diag_reset(&d);
    return a;
}

static void def_free(struct trl_appr_def *a)
{
    trl_appr_def_free(a);
    free(a);
}

/* Pending task ids of user for approval aid (from the inbox). */
static size_t inbox(struct trl_txn *t, const char *user, uint64_t aid, uint64_t *ids, size_t cap)
{
    struct trl_buf b;
    trl_buf_init(&b);
    LOOP_ASSERT(trl_appr_list(t, user, true, 1000, 0, &b) == 0, "list");
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    trl_buf_free(&b);
    LOOP_ASSERT(j != NULL, "list json");
    size_t n = 0;
    const cJSON *items = cJSON_GetObjectItem(j, "items");
    for (const cJSON *it = items ? items->child : NULL; it; it = it->next)
        if ((uint64_t)cJSON_GetObjectItem(it, "approval")->valuedouble == aid && n < cap)
            ids[n++] = (uint64_t)cJSON_GetObjectItem(it, "id")->valuedouble;
    cJSON_Delete(j);
    return n;
}

static const char *task_status(struct trl_txn *t, uint64_t task, char *buf, size_t n)
{
    struct trl_buf b;
    trl_buf_init(&b);
    LOOP_ASSERT(trl_appr_task_json(t, task, &b) == 0, "task %llu", (unsigned long long)task);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    trl_buf_free(&b);
    snprintf(buf, n, "%s", cJSON_GetObjectItem(j, "status")->valuestring);
    cJSON_Delete(j);
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Every vote sequence, on the store
 */
struct seq_job {
    enum trl_appr_mode mode;
    unsigned n, q;
    unsigned votes; /* bit i: vote i is a reject */
    unsigned len;   /* votes cast until the outcome (or all n) */
    char err[256];
    uint64_t record;
};

static int seq_fn(struct trl_txn *t, void *arg)
{
    struct seq_job *s = arg;
    static const char *modes[] = {"any", "all", "quorum", "sequential"};
    char users[128] = "[";
    for (unsigned i = 1; i <= s->n; i++)
        snprintf(users + strlen(users), sizeof(users) - strlen(users), "%s\"u%u\"",
                 i > 1 ? "," : "", i);
    strcat(users, "]");
    char appr[160];
    snprintf(appr, sizeof(appr), "{\"users\":%s}", users);
    struct trl_appr_def *def =
        def_of(appr, modes[s->mode], s->mode == TRL_APPR_QUORUM ? s->q : 0, false);
    struct trl_appr_subject sub = {
        .workflow = "w", .type = "t", .record = s->record, .title = "T", .requester = "req"};
    uint64_t aid;
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_appr_approver ap[TRL_APPR_MAX_APPROVERS];
    size_t n;
    int rc = trl_appr_start(t, def, &sub, NOW, &aid);
    if (!rc) rc = trl_appr_resolve(t, &def->steps[0], "req", NULL, NOW, ap, &n, &d);
    if (!rc && n != s->n) snprintf(s->err, sizeof(s->err), "resolved %zu approvers", n);
    if (!rc) rc = trl_appr_open_step(t, aid, 0, &def->steps[0], ap, n, NOW, NULL);
    uint64_t tasks[5] = {0};
    char user[8], stbuf[32];
    /* Task ids in approver order: sequential steps show only the current one in the inbox. */
    for (unsigned i = 0; i < s->n && !rc && !s->err[0]; i++) {
        snprintf(user, sizeof(user), "u%u", i + 1);
        uint64_t ids[4];
        size_t k = inbox(t, user, aid, ids, 4);
        bool expect = s->mode != TRL_APPR_SEQUENTIAL || i == 0;
        if (k != (expect ? 1u : 0u))
            snprintf(s->err, sizeof(s->err), "u%u has %zu pending task(s) at the start", i + 1, k);
        tasks[i] = (k ? ids[0] : 0);
    }
    unsigned a = 0, r = 0, cast = 0;
    enum trl_appr_outcome out = TRL_APPR_PENDING;
    for (unsigned i = 0; i < s->n && !rc && !s->err[0] && out == TRL_APPR_PENDING; i++) {
        snprintf(user, sizeof(user), "u%u", i + 1);
        if (!tasks[i]) { /* sequential: the task appears when its turn comes */
            uint64_t ids[4];
            if (inbox(t, user, aid, ids, 4) != 1) {
                snprintf(s->err, sizeof(s->err), "u%u has no task on their turn", i + 1);
                break;
            }
            tasks[i] = ids[0];
        }
        bool rej = s->votes >> i & 1;
        struct trl_appr_result res;
        rc = trl_appr_decide(t, tasks[i], user, rej ? TRL_DECIDE_REJECT : TRL_DECIDE_APPROVE,
                             rej ? "no" : NULL, NULL, false, NOW + i, &res, &d);
        cast++;
        rej ? r++ : a++;
        out = res.step_outcome;
        if (!rc && out != model(s->mode, s->q, s->n, a, r))
            snprintf(s->err, sizeof(s->err), "after %u vote(s) (%u approve, %u reject): %d", cast,
                     a, r, out);
    }
    s->len = cast;
    if (!rc && !s->err[0] && out == TRL_APPR_PENDING)
        snprintf(s->err, sizeof(s->err), "undecided after every vote");
    /* Decided: nobody has a pending task of it, the unvoted tasks are cancelled, and a late vote
     * is refused. */
    for (unsigned i = 0; i < s->n && !rc && !s->err[0]; i++) {
        snprintf(user, sizeof(user), "u%u", i + 1);
        uint64_t ids[4];
        if (inbox(t, user, aid, ids, 4) != 0)
            snprintf(s->err, sizeof(s->err), "u%u still has a pending task", i + 1);
        if (i >= cast && tasks[i] &&
            strcmp(task_status(t, tasks[i], stbuf, sizeof(stbuf)), "cancelled") != 0)
            snprintf(s->err, sizeof(s->err), "unvoted task of u%u is %s", i + 1, stbuf);
    }
    if (!rc && !s->err[0] && cast < s->n) {
        snprintf(user, sizeof(user), "u%u", cast + 1);
        uint64_t late = tasks[cast];
        if (late) {
            struct trl_appr_result res;
            struct trl_diag d2;
            trl_diag_init(&d2);
            int lrc = trl_appr_decide(t, late, user, TRL_DECIDE_APPROVE, NULL, NULL, false, NOW,
                                      &res, &d2);
            trl_diag_reset(&d2);
            if (lrc != TRL_ECONFLICT) snprintf(s->err, sizeof(s->err), "late vote gave %d", lrc);
        }
    }
    trl_diag_reset(&d);
    def_free(def);
    return rc;
}

START_TEST(every_vote_sequence)
{
    make_users();
    size_t runs = 0;
    uint64_t record = 1;
    for (unsigned n = 1; n <= 5; n++)
        for (int m = TRL_APPR_ANY; m <= TRL_APPR_SEQUENTIAL; m++) {
            unsigned qmax = m == TRL_APPR_QUORUM ? n : 1;
            for (unsigned q = 1; q <= qmax; q++)
                for (unsigned v = 0; v < (1u << n); v++) {
                    struct seq_job s = {.mode = m, .n = n, .q = q, .votes = v, .record = record++};
                    int rc = trl_store_write(st, seq_fn, &s);
                    LOOP_ASSERT(rc == 0 && !s.err[0], "mode %d n %u q %u votes %x: rc %d %s", m, n,
                                q, v, rc, s.err);
                    runs++;
                }
        }
    /* any, all, sequential: 3 x 2^n sequences; quorum: n x 2^n; n = 1..5. */
    ck_assert_uint_eq(runs, 186 + 258);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Approvers
 */
struct resolve_job {
    const char *approvers, *mode;
    unsigned quorum;
    bool allow_self;
    const char *requester;
    struct trl_appr_approver ap[TRL_APPR_MAX_APPROVERS];
    size_t n;
    int rc;
    char msg[512];
};

static int resolve_fn(struct trl_txn *t, void *arg)
{
    struct resolve_job *j = arg;
    struct trl_appr_def *def = def_of(j->approvers, j->mode, j->quorum, j->allow_self);
    struct trl_diag d;
    trl_diag_init(&d);
    j->rc = trl_appr_resolve(t, &def->steps[0], j->requester, NULL, NOW, j->ap, &j->n, &d);
    snprintf(j->msg, sizeof(j->msg), "%s", d.message);
    trl_diag_reset(&d);
    def_free(def);
    return 0;
}

static struct resolve_job resolve(const char *approvers, const char *mode, unsigned q, bool self,
                                  const char *requester)
{
    struct resolve_job j = {.approvers = approvers,
                            .mode = mode,
                            .quorum = q,
                            .allow_self = self,
                            .requester = requester};
    ck_assert_int_eq(trl_store_write(st, resolve_fn, &j), 0);
    return j;
}

struct ooo_job {
    struct trl_appr_ooo o;
    size_t moved;
    int rc;
    char field[64];
};

static int ooo_fn(struct trl_txn *t, void *arg)
{
    struct ooo_job *j = arg;
    struct trl_diag d;
    trl_diag_init(&d);
    j->rc = trl_appr_ooo_put(t, &j->o, NOW, &j->moved, &d);
    snprintf(j->field, sizeof(j->field), "%s", d.nferrs ? d.ferrs[0].field : "");
    trl_diag_reset(&d);
    return 0;
}

static struct ooo_job away(const char *user, const char *delegate, int64_t from, int64_t until)
{
    struct ooo_job j = {.o = {.from_ms = from, .until_ms = until}};
    snprintf(j.o.user, sizeof(j.o.user), "%s", user);
    snprintf(j.o.delegate, sizeof(j.o.delegate), "%s", delegate);
    ck_assert_int_eq(trl_store_write(st, ooo_fn, &j), 0);
    return j;
}

START_TEST(approvers_self_inactive_quorum_ooo)
{
    make_users();
    /* The requester is left out unless the step allows self-approval; inactive users too. */
    struct resolve_job j =
        resolve("{\"users\":[\"u1\",\"req\",\"gone\",\"u2\"]}", "all", 0, false, "req");
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(j.n, 2);
    ck_assert_str_eq(j.ap[0].user, "u1");
    ck_assert_str_eq(j.ap[1].user, "u2");
    j = resolve("{\"users\":[\"u1\",\"req\"]}", "all", 0, true, "req");
    ck_assert_uint_eq(j.n, 2);
    /* Only the requester: refused, saying why. */
    j = resolve("{\"users\":[\"req\"]}", "any", 0, false, "req");
    ck_assert_int_eq(j.rc, TRL_EVALIDATION);
    ck_assert_msg(strstr(j.msg, "other than the requester"), "%s", j.msg);
    /* A quorum that cannot be reached is refused when the step opens. */
    j = resolve("{\"users\":[\"u1\",\"u2\",\"gone\"]}", "quorum", 3, false, "req");
    ck_assert_int_eq(j.rc, TRL_EVALIDATION);
    ck_assert_msg(strstr(j.msg, "needs 3"), "%s", j.msg);
    /* An unknown group or a manager-less requester: no approver. */
    j = resolve("{\"group\":\"nobody\"}", "any", 0, false, "req");
    ck_assert_int_eq(j.rc, TRL_EVALIDATION);
    j = resolve("{\"manager\":true}", "any", 0, false, "req");
    ck_assert_int_eq(j.rc, TRL_EVALIDATION);

    /* Out of office: u1 away -> u3 stands in (recorded); u2 away -> u3 as well: one vote. */
    ck_assert_int_eq(away("u1", "u3", NOW - 1000, NOW + 1000).rc, 0);
    j = resolve("{\"users\":[\"u1\",\"u4\"]}", "all", 0, false, "req");
    ck_assert_uint_eq(j.n, 2);
    ck_assert_str_eq(j.ap[0].user, "u3");
    ck_assert_str_eq(j.ap[0].via, "u1");
    ck_assert_int_eq(away("u2", "u3", NOW - 1000, NOW + 1000).rc, 0);
    j = resolve("{\"users\":[\"u1\",\"u2\"]}", "all", 0, false, "req");
    ck_assert_uint_eq(j.n, 1);
    /* A rule outside its dates does nothing. */
    ck_assert_int_eq(away("u4", "u5", NOW + 1000, NOW + 2000).rc, 0);
    j = resolve("{\"users\":[\"u4\"]}", "any", 0, false, "req");
    ck_assert_str_eq(j.ap[0].user, "u4");
    /* Refused rules: a cycle, oneself, an inactive delegate, until before from. */
    struct ooo_job o = away("u3", "u1", NOW - 10, NOW + 10);
    ck_assert_int_eq(o.rc, TRL_EVALIDATION);
    ck_assert_str_eq(o.field, "delegate");
    ck_assert_int_eq(away("u5", "u5", NOW, NOW + 10).rc, TRL_EVALIDATION);
    ck_assert_int_eq(away("u5", "gone", NOW, NOW + 10).rc, TRL_EVALIDATION);
    o = away("u5", "u6", NOW + 10, NOW);
    ck_assert_int_eq(o.rc, TRL_EVALIDATION);
    ck_assert_str_eq(o.field, "until");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Decisions that are refused, delegation, and out-of-office moving pending tasks
 */
struct flow_job {
    int step; /* which part to run */
    uint64_t aid, t1, t2;
    int rc;
    char err[256];
};

static int decide_as(struct trl_txn *t, uint64_t task, const char *who, enum trl_appr_decision dec,
                     const char *comment, const char *to, struct trl_appr_result *res)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_appr_decide(t, task, who, dec, comment, to, false, NOW, res, &d);
    trl_diag_reset(&d);
    return rc;
}

static int flow_fn(struct trl_txn *t, void *arg)
{
    struct flow_job *f = arg;
    struct trl_appr_result res;
    uint64_t ids[4];
    char sb[32];
    if (f->step == 0) {
        struct trl_appr_def *def = def_of("{\"users\":[\"u1\",\"u2\"]}", "all", 0, false);
        struct trl_appr_subject sub = {
            .workflow = "w", .type = "t", .record = 7, .title = "T", .requester = "req"};
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_appr_approver ap[4];
        size_t n;
        int rc = trl_appr_start(t, def, &sub, NOW, &f->aid);
        if (!rc) rc = trl_appr_resolve(t, &def->steps[0], "req", NULL, NOW, ap, &n, &d);
        if (!rc) rc = trl_appr_open_step(t, f->aid, 0, &def->steps[0], ap, n, NOW, NULL);
        trl_diag_reset(&d);
        def_free(def);
        if (rc) return rc;
        if (inbox(t, "u1", f->aid, ids, 4) != 1) return TRL_EINVAL;
        f->t1 = ids[0];
        if (inbox(t, "u2", f->aid, ids, 4) != 1) return TRL_EINVAL;
        f->t2 = ids[0];
        uint64_t active;
        char name[64];
        if (trl_appr_active(t, "t", 7, &active, name, sizeof(name)) || active != f->aid)
            return TRL_EINVAL;
        return 0;
    }
    /* Refusals (the job's caller checks the codes). */
    if (f->step == 1) return decide_as(t, f->t1, "u2", TRL_DECIDE_APPROVE, NULL, NULL, &res);
    if (f->step == 2) return decide_as(t, f->t1, "u1", TRL_DECIDE_REJECT, "", NULL, &res);
    if (f->step == 3) return decide_as(t, f->t1, "u1", TRL_DECIDE_RETURN, NULL, NULL, &res);
    if (f->step == 4) return decide_as(t, f->t1, "u1", TRL_DECIDE_DELEGATE, NULL, "u2", &res);
    if (f->step == 5) return decide_as(t, f->t1, "u1", TRL_DECIDE_DELEGATE, NULL, "req", &res);
    if (f->step == 6) return decide_as(t, f->t1, "u1", TRL_DECIDE_DELEGATE, NULL, "gone", &res);
    if (f->step == 7) return decide_as(t, 99999, "u1", TRL_DECIDE_APPROVE, NULL, NULL, &res);
    if (f->step == 8) {
        /* u1 delegates to u5: u1's task closes as delegated, u5 gets one naming u1. */
        int rc = decide_as(t, f->t1, "u1", TRL_DECIDE_DELEGATE, "on leave", "u5", &res);
        if (rc) return rc;
        if (strcmp(task_status(t, f->t1, sb, sizeof(sb)), "delegated") != 0) return TRL_EINVAL;
        if (inbox(t, "u1", f->aid, ids, 4) != 0 || inbox(t, "u5", f->aid, ids, 4) != 1)
            return TRL_EINVAL;
        struct trl_buf b;
        trl_buf_init(&b);
        rc = trl_appr_task_json(t, ids[0], &b);
        bool named = rc == 0 && strstr(b.data, "\"delegated_from\":\"u1\"");
        trl_buf_free(&b);
        if (!named) return TRL_EINVAL;
        f->t1 = ids[0];
        /* u1 no longer decides anything here. */
        if (decide_as(t, f->t1, "u1", TRL_DECIDE_APPROVE, NULL, NULL, &res) != TRL_EFORBIDDEN)
            return TRL_EINVAL;
        return 0;
    }
    if (f->step == 9) {
        /* u2 goes away with u6 standing in: the pending task moves at once. */
        struct trl_appr_ooo o = {.from_ms = NOW - 1, .until_ms = NOW + 1000};
        snprintf(o.user, sizeof(o.user), "u2");
        snprintf(o.delegate, sizeof(o.delegate), "u6");
        size_t moved;
        struct trl_diag d;
        trl_diag_init(&d);
        int rc = trl_appr_ooo_put(t, &o, NOW, &moved, &d);
        trl_diag_reset(&d);
        if (rc) return rc;
        if (moved != 1 || inbox(t, "u2", f->aid, ids, 4) != 0 ||
            inbox(t, "u6", f->aid, ids, 4) != 1)
            return TRL_EINVAL;
        f->t2 = ids[0];
        /* Both approve: "all" is approved. */
        if ((rc = decide_as(t, f->t1, "u5", TRL_DECIDE_APPROVE, NULL, NULL, &res))) return rc;
        if (res.step_outcome != TRL_APPR_PENDING) return TRL_EINVAL;
        if ((rc = decide_as(t, f->t2, "u6", TRL_DECIDE_APPROVE, NULL, NULL, &res))) return rc;
        if (res.step_outcome != TRL_APPR_APPROVED) return TRL_EINVAL;
        if ((rc = trl_appr_finish(t, f->aid, "approved", NOW))) return rc;
        uint64_t active;
        char name[64];
        return trl_appr_active(t, "t", 7, &active, name, sizeof(name)) == TRL_ENOTFOUND
                   ? 0
                   : TRL_EINVAL;
    }
    return TRL_EINVAL;
}

START_TEST(refusals_delegation_out_of_office)
{
    make_users();
    struct flow_job f = {0};
    ck_assert_int_eq(trl_store_write(st, flow_fn, &f), 0);
    const int expect[] = {0,
                          TRL_EFORBIDDEN,  /* someone else's task */
                          TRL_EVALIDATION, /* reject without a comment */
                          TRL_EVALIDATION, /* return without a comment */
                          TRL_EVALIDATION, /* delegate to someone holding a task of the step */
                          TRL_EVALIDATION, /* delegate to the requester */
                          TRL_EVALIDATION, /* delegate to an inactive user */
                          TRL_ENOTFOUND};  /* no such task */
    for (int s = 1; s <= 7; s++) {
        f.step = s;
        ck_assert_msg(trl_store_write(st, flow_fn, &f) == expect[s], "step %d", s);
    }
    /* The refusals changed nothing: both tasks are still pending. */
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    char sb[32];
    ck_assert_str_eq(task_status(t, f.t1, sb, sizeof(sb)), "pending");
    ck_assert_str_eq(task_status(t, f.t2, sb, sizeof(sb)), "pending");
    trl_txn_end(t);
    f.step = 8;
    ck_assert_int_eq(trl_store_write(st, flow_fn, &f), 0);
    f.step = 9;
    ck_assert_int_eq(trl_store_write(st, flow_fn, &f), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Definitions: errors name their path
 */
/* trellis check: inbox entries and pending tasks agree, and a broken pair is reported. */
static int break_inbox_fn(struct trl_txn *t, void *arg)
{
    uint64_t task = *(uint64_t *)arg;
    unsigned char k[64];
    size_t n = 0;
    k[n++] = 'P';
    memcpy(k + n, "u2", 3);
    n += 3;
    for (int i = 7; i >= 0; i--)
        k[n + (size_t)(7 - i)] = (unsigned char)(task >> (8 * i));
    n += 8;
    return trl_txn_del(t, TRL_DB_APPR, k, n);
}

START_TEST(check_finds_a_task_missing_from_its_inbox)
{
    make_users();
    struct flow_job f = {0};
    ck_assert_int_eq(trl_store_write(st, flow_fn, &f), 0);
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_appr_check(t, NULL), 0);
    trl_txn_end(t);
    ck_assert_int_eq(trl_store_write(st, break_inbox_fn, &f.t2), 0);
    struct trl_buf rep;
    trl_buf_init(&rep);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_appr_check(t, &rep), 1);
    trl_txn_end(t);
    ck_assert_ptr_nonnull(strstr(rep.data, "missing from u2's inbox"));
    trl_buf_free(&rep);
}
END_TEST

START_TEST(definition_errors_name_paths)
{
    const char *bad[][2] = {
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[]}",
         "approvals[0].steps"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_reject\":\"y\",\"steps\":[{\"name\":\"s1\","
         "\"approvers\":{\"role\":\"r\"}}]}",
         "approvals[0].on_approve"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[{"
         "\"name\":\"s1\",\"approvers\":{\"role\":\"r\",\"group\":\"g\"}}]}",
         "approvals[0].steps[0].approvers"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[{"
         "\"name\":\"s1\",\"approvers\":{\"users\":[\"a\",\"b\"]},\"mode\":\"quorum\","
         "\"quorum\":3}]}",
         "approvals[0].steps[0].quorum"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[{"
         "\"name\":\"s1\",\"approvers\":{\"role\":\"r\"},\"mode\":\"most\"}]}",
         "approvals[0].steps[0].mode"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[{"
         "\"name\":\"s1\",\"approvers\":{\"role\":\"r\"},\"quorum\":2}]}",
         "approvals[0].steps[0].quorum"},
        {"{\"name\":\"a\",\"state\":\"s\",\"on_approve\":\"x\",\"on_reject\":\"y\",\"steps\":[{"
         "\"name\":\"s1\",\"approvers\":{\"role\":\"r\"},\"colour\":2}]}",
         "approvals[0].steps[0].colour"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = cJSON_Parse(bad[i][0]);
        ck_assert_ptr_nonnull(j);
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_defcheck c = {.d = &d};
        struct trl_appr_def a;
        trl_appr_def_parse(&c, j, "approvals[0]", NULL, &a);
        cJSON_Delete(j);
        bool found = false;
        for (size_t k = 0; k < d.nferrs; k++)
            found |= strcmp(d.ferrs[k].field, bad[i][1]) == 0;
        ck_assert_msg(c.nerr > 0 && found, "case %zu: expected an error at %s, first: %s", i,
                      bad[i][1], d.nferrs ? d.ferrs[0].field : "(none)");
        trl_appr_def_free(&a);
        trl_diag_reset(&d);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("approval");
    TCase *tc = fx_tcase("approval", setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, outcome_every_count);
    tcase_add_test(tc, every_vote_sequence);
    tcase_add_test(tc, approvers_self_inactive_quorum_ooo);
    tcase_add_test(tc, refusals_delegation_out_of_office);
    tcase_add_test(tc, definition_errors_name_paths);
    tcase_add_test(tc, check_finds_a_task_missing_from_its_inbox);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
