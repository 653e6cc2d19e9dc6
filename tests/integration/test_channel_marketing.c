/* The flagship app modules/channel-marketing end to end, against the real server, played over
 * HTTP as the real users of its tests/fixtures.json: orgs acme, globex and hq; partner pat (acme,
 * reads Chinese), partner admin pam (acme), partner gus (globex), channel manager cora, marketing
 * reviewers mia and max (group marketing_reviewers), finance reviewer fay, marketing director dan,
 * and the logistics channel managers lee (east) and lou (north) (group logistics). Users and orgs
 * come from the CLI, groups from PUT /api/v1/groups/{name}, each user has an API token of their
 * own; the server runs with --test-clock and every test sets the clock to Monday 2 March 2037,
 * 10:00 Shanghai (cn_office has no holiday that week).
 *
 * What it proves (modules/channel-marketing/README.md, runtime/workflow/README.md,
 * runtime/report/README.md):
 *  - main path: pat's request (Chinese and English material lines) is submitted and assigned round
 *    robin to mia or max; cora reads it and starts the review; the assigned reviewer finds the task
 *    in GET /api/v1/approvals?assignee=me&status=pending and approves; fay approves; over 50,000
 *    dan approves too. At every step: the state, the history (one event per transition and per
 *    decision), the inboxes of the people concerned, the marketing_review SLA clock (running, then
 *    met, its due and warning times on cn_office business hours) and the reports;
 *  - after approval: one material_delivery_task per material line in org acme (region from the
 *    line or the request, assignee by region in group logistics), a reimbursement_claim capped at
 *    the approved budget, both visible to pat; an amount over the cap is refused 422 naming
 *    amount and changes nothing; claiming before the activity runs is refused 409 and changes
 *    nothing; pat starts execution and claims; fay approves the claim and marks it paid, which
 *    closes the request; approval_cycle (elapsed and business hours) and every widget of the
 *    channel_overview dashboard answer;
 *  - under 50,000 the director gets no task, and the claim's cap keeps the budget's cents;
 *  - a reject needs a comment (422, nothing changes), then the request is rejected: pat hears it
 *    (approval_decided with the comment), no delivery task, no claim;
 *  - a return: pat gets the built-in "returned" message with the comment and the workflow's own
 *    notification; pat edits, resubmits and the request goes through to approval;
 *  - SLA: nothing before 75 % of 16 business hours, then the reviewer's warning; nothing before
 *    the due time, then the director's breach message and the review task escalated to him (the
 *    reviewer's task "delegated" with the escalation comment, dan's pending with delegated_from),
 *    and dan can decide;
 *  - isolation: gus sees none of acme's requests, tasks, claims, approvals or history (lists empty,
 *    GET 404, reports and the dashboard count nothing of acme's); partners never see
 *    internal_notes, finance_notes or cost_center (GET, lists, history, write answers, inbox,
 *    reports) after the reviewers filled them.
 *
 * Regressions: bugs this suite found in the platform or the app (fixed), each test naming what
 * it expects.
 * `trellis check` passes after every test (teardown).
 */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;
static const char *MR = "/api/v1/records/marketing_request";
static const char *MDT = "/api/v1/records/material_delivery_task";
static const char *RC = "/api/v1/records/reimbursement_claim";

/* What the reviewers write into the fields partners may never see. */
#define NOTE_INTERNAL "内部备注 INTERNAL-7c1"
#define NOTE_FINANCE  "财务备注 FINANCE-9d2"
#define COST_CENTER   "CC-SECRET-42"

static const char *ESC_COMMENT = "escalated: the step's time limit passed";

/* The users of tests/fixtures.json; ADMIN_U is the harness's administrator. */
enum { PAT, PAM, GUS, CORA, MIA, MAX, FAY, DAN, LEE, LOU, NUSERS, ADMIN_U = NUSERS };
static struct cm_user {
    const char *name, *role, *org, *region, *lang;
    char hdr[128]; /* "Authorization: Bearer ..." */
} U[NUSERS] = {
    [PAT] = {"pat", "partner_user", "acme", NULL, "zh-CN", ""},
    [PAM] = {"pam", "partner_admin", "acme", NULL, NULL, ""},
    [GUS] = {"gus", "partner_user", "globex", NULL, NULL, ""},
    [CORA] = {"cora", "channel_manager", "hq", NULL, NULL, ""},
    [MIA] = {"mia", "marketing_reviewer", "hq", NULL, NULL, ""},
    [MAX] = {"max", "marketing_reviewer", "hq", NULL, NULL, ""},
    [FAY] = {"fay", "finance_reviewer", "hq", NULL, NULL, ""},
    [DAN] = {"dan", "marketing_director", "hq", NULL, NULL, ""},
    [LEE] = {"lee", "channel_manager", "hq", "east", NULL, ""},
    [LOU] = {"lou", "channel_manager", "hq", "north", NULL, ""},
};
#define H(u) (U[u].hdr)

static const char *auth_of(int u)
{
    return u == ADMIN_U ? NULL : U[u].hdr;
}

static const char *name_of(int u)
{
    return u == ADMIN_U ? "admin" : U[u].name;
}

/* Long enough for the timer scheduler (about 250 ms) to have fired anything due, twice over. */
static void quiet(void)
{
    wait_ms(700);
}

/* ---------------------------------------------------------------------------------------------
 * Orgs, users, groups, server
 */
static void cli(const char *const *argv)
{
    char *out = NULL;
    int rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc == 0, "trellis %s %s %s: %d %s", argv[0], argv[1], argv[2], rc,
                  out ? out : "");
    free(out);
}

static void add_org(const char *name, const char *en, const char *zh)
{
    const char *argv[] = {"org",        "add", name,     "--label-en", en,
                          "--label-zh", zh,    "--data", S.dir,        NULL};
    cli(argv);
}

/* The user's display name: "Mia 审阅人" for mia (messages name people by it). */
static const char *display_of(const struct cm_user *u, char *buf, size_t n)
{
    snprintf(buf, n, "%c%s 审阅人", u->name[0] - 'a' + 'A', u->name + 1);
    return buf;
}

/* `trellis user add` with the user's org, region and language, then an API token of their own. */
static void add_user(struct cm_user *u)
{
    const char *argv[20];
    int k = 0;
    argv[k++] = "user";
    argv[k++] = "add";
    argv[k++] = u->name;
    argv[k++] = "--role";
    argv[k++] = u->role;
    argv[k++] = "--org";
    argv[k++] = u->org;
    if (u->region) {
        argv[k++] = "--region";
        argv[k++] = u->region;
    }
    if (u->lang) {
        argv[k++] = "--lang";
        argv[k++] = u->lang;
    }
    char disp[80];
    argv[k++] = "--display";
    argv[k++] = display_of(u, disp, sizeof(disp));
    argv[k++] = "--data";
    argv[k++] = S.dir;
    argv[k] = NULL;
    cli(argv);
    char tname[64];
    snprintf(tname, sizeof(tname), "tk_%s", u->name);
    cli_token(&S, u->name, tname, u->hdr, sizeof(u->hdr));
}

static void put_group(const char *name, const char *members)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"members\":%s}", members);
    struct resp r;
    long st = api_call(&S, NULL, "PUT", body, &r, "/api/v1/groups/%s", name);
    ck_assert_msg(st == 200 || st == 201, "PUT group %s: %ld %s", name, st, r.body);
    resp_free(&r);
}

static void setup(void)
{
    char app[4096];
    snprintf(app, sizeof(app), "%s/modules/channel-marketing", trellis_src());
    int rc = srv_init(&S, app);
    /* Registered even when srv_init failed half-way: the parent removes it either way. */
    if (S.dir[0]) tmpreg_add(S.dir);
    ck_assert_int_eq(rc, 0);
    snprintf(S.extra, sizeof(S.extra), "--test-clock");
    add_org("acme", "Acme Trading", "艾克美贸易");
    add_org("globex", "Globex", "环球科技");
    add_org("hq", "Headquarters", "总部");
    for (int i = 0; i < NUSERS; i++)
        add_user(&U[i]);
    ck_assert_int_eq(srv_start(&S), 0);
    put_group("marketing_reviewers", "[\"mia\",\"max\"]");
    put_group("logistics", "[\"lee\",\"lou\"]");
    clock_set(&S, "2037-03-02T10:00:00+08:00"); /* a Monday */
}

static void teardown(void)
{
    srv_teardown(&S);
}

/* ---------------------------------------------------------------------------------------------
 * What partners must never see
 */
static void assert_no_secrets(const char *body, const char *what)
{
    static const char *const bad[] = {"\"internal_notes\"", "\"finance_notes\"", "\"cost_center\"",
                                      "INTERNAL-7c1",       "FINANCE-9d2",       COST_CENTER};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(strstr(body, bad[i]) == NULL, "%s shows %s: %s", what, bad[i], body);
}

/* GETs the formatted path as u (it must answer 200) and asserts that it shows no secret. */
static void get_no_secrets(int u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void get_no_secrets(int u, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    char *t = api_get_text(&S, auth_of(u), "%s", path);
    char what[600];
    snprintf(what, sizeof(what), "%s's GET %s", name_of(u), path);
    assert_no_secrets(t, what);
    free(t);
}

/* Everything pat (or pam) reads about request id and what it spawned shows no secret. */
static void partner_sees_no_secrets(int u, long long id)
{
    get_no_secrets(u, "%s/%lld", MR, id);
    get_no_secrets(u, "%s?limit=100", MR);
    get_no_secrets(u, "%s?filter=state%%20%%3D%%20%%22%s%%22", MR, "approved");
    get_no_secrets(u, "%s/%lld/history", MR, id);
    get_no_secrets(u, "%s/%lld/approvals", MR, id);
    get_no_secrets(u, "%s/%lld/transitions", MR, id);
    get_no_secrets(u, "%s?limit=100", MDT);
    get_no_secrets(u, "%s?limit=100", RC);
    get_no_secrets(u, "/api/v1/inbox?limit=1000");
    get_no_secrets(u, "/api/v1/dashboards/channel_overview");
}

/* ---------------------------------------------------------------------------------------------
 * Requests, transitions, approvals
 */
/* A request of partner u (pat, pam or gus): its id. materials is a JSON array text. */
static long long new_request(int u, const char *title, const char *budget, const char *region,
                             const char *materials)
{
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"title\":\"%s\",\"partner\":\"%s\",\"region\":\"%s\",\"budget\":\"%s\","
             "\"start_date\":\"2037-04-01\",\"end_date\":\"2037-04-30\","
             "\"activity_type\":\"roadshow\",\"channel\":\"distributor\","
             "\"plan\":\"## 目标 Goals\\n- 300 条线索 leads\\n- 3 个城市 cities\","
             "\"expected_leads\":300,\"materials\":%s}",
             title, str_eq(U[u].org, "acme") ? "  Acme Trading  " : "Globex", region, budget,
             materials);
    struct resp r;
    long st = api_call(&S, H(u), "POST", body, &r, "%s", MR);
    ck_assert_msg(st == 201, "%s creates %s: %ld %s", U[u].name, title, st, r.body);
    assert_no_secrets(r.body, "the create answer");
    cJSON *j = resp_json(&r);
    ck_assert_msg(str_eq(obj_str(j, "state"), "draft") && str_eq(obj_str(j, "owner"), U[u].name) &&
                      str_eq(obj_str(j, "org"), U[u].org),
                  "created: %s", r.body);
    long long id = obj_int(j, "id");
    cJSON_Delete(j);
    resp_free(&r);
    return id;
}

static long move(int u, const char *tp, long long id, const char *name, const char *body,
                 struct resp *out)
{
    return api_call(&S, auth_of(u), "POST", body ? body : "{}", out, "%s/%lld/transitions/%s", tp,
                    id, name);
}

/* u runs transition name: 200 and the record in state; the answer parsed (owned). */
static cJSON *move_ok(int u, const char *tp, long long id, const char *name, const char *body,
                      const char *state)
{
    struct resp r;
    long st = move(u, tp, id, name, body, &r);
    ck_assert_msg(st == 200, "%s runs %s on %lld: %ld %s", name_of(u), name, id, st, r.body);
    if (u == PAT || u == PAM || u == GUS)
        assert_no_secrets(r.body, "a partner's transition answer");
    cJSON *j = resp_json(&r);
    ck_assert_msg(str_eq(obj_str(j, "state"), state), "%s runs %s on %lld: want %s: %s", name_of(u),
                  name, id, state, r.body);
    resp_free(&r);
    return j;
}

/* pat submits request id: the reviewer it was assigned to (MIA or MAX). */
static int submit(int u, long long id, const char *body)
{
    cJSON *j = move_ok(u, MR, id, "submit", body, "submitted");
    const char *rev = obj_str(j, "marketing_reviewer");
    int who = str_eq(rev, "mia") ? MIA : str_eq(rev, "max") ? MAX : -1;
    ck_assert_msg(who >= 0, "submitted %lld assigned to %s", id, rev ? rev : "(nobody)");
    if (str_eq(U[u].org, "acme"))
        ck_assert_msg(str_eq(obj_str(j, "partner"), "Acme Trading"), "partner not trimmed: %s",
                      obj_str(j, "partner"));
    cJSON_Delete(j);
    return who;
}

static void start_review(long long id)
{
    cJSON_Delete(move_ok(CORA, MR, id, "start_review", NULL, "marketing_review"));
}

#define ASSERT_STATE(tp, id, want) ASSERT_RECORD_STATE(&S, tp, id, want)

/* The pending approval task of user u on record id of type type, 0 when none; asserts that there
 * is at most one and that it names u as its assignee. */
static long long task_of(int u, const char *type, long long id)
{
    cJSON *items, *root = api_get_items(&S, H(u), &items,
                                        "/api/v1/approvals?assignee=me&status=pending&limit=1000");
    long long found = 0;
    int n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, items)
    {
        if (obj_int(t, "record") != id || !str_eq(obj_str(t, "type"), type)) continue;
        found = obj_int(t, "id");
        n++;
        ck_assert_msg(str_eq(obj_str(t, "status"), "pending") &&
                          str_eq(obj_str(t, "assignee"), U[u].name),
                      "%s's pending task: %s", U[u].name, cJSON_PrintUnformatted(t));
    }
    ck_assert_msg(n <= 1, "%s holds %d pending tasks on %s %lld", U[u].name, n, type, id);
    cJSON_Delete(root);
    return found;
}

static long long mr_task(int u, long long id)
{
    return task_of(u, "marketing_request", id);
}

/* pat submits request id and cora starts its review: the reviewer it was assigned to; their
 * pending task on it (0: none) in *task. */
static int to_review(long long id, long long *task)
{
    int rev = submit(PAT, id, NULL);
    start_review(id);
    *task = mr_task(rev, id);
    return rev;
}

static long decide(int u, long long task, const char *decision, const char *comment,
                   struct resp *out)
{
    char body[512];
    if (comment)
        snprintf(body, sizeof(body), "{\"comment\":\"%s\"}", comment);
    else
        snprintf(body, sizeof(body), "{}");
    return api_call(&S, H(u), "POST", body, out, "/api/v1/approvals/%lld/%s", task, decision);
}

/* u decides task: 200, and record id of tp is then in state. */
static void decide_ok(int u, long long task, const char *decision, const char *comment,
                      const char *tp, long long id, const char *state)
{
    struct resp r;
    long st = decide(u, task, decision, comment, &r);
    ck_assert_msg(st == 200, "%s %ss task %lld: %ld %s", U[u].name, decision, task, st, r.body);
    resp_free(&r);
    ASSERT_STATE(tp, id, state);
}

/* u PATCHes record id of tp with body: 200. */
static void patch_ok(int u, const char *tp, long long id, const char *body)
{
    struct resp r;
    long st = api_call(&S, H(u), "PATCH", body, &r, "%s/%lld", tp, id);
    ck_assert_msg(st == 200, "%s PATCH %s/%lld %s: %ld %s", U[u].name, tp, id, body, st, r.body);
    if (u == PAT || u == PAM || u == GUS) assert_no_secrets(r.body, "a partner's PATCH answer");
    resp_free(&r);
}

/* The reviewers fill the fields partners may not see: the assigned marketing reviewer the
 * internal notes, fay the finance notes and the cost center. */
static void fill_internal(int reviewer, long long id)
{
    patch_ok(reviewer, MR, id, "{\"internal_notes\":\"" NOTE_INTERNAL "\"}");
    patch_ok(FAY, MR, id,
             "{\"finance_notes\":\"" NOTE_FINANCE "\",\"cost_center\":\"" COST_CENTER "\"}");
}

/* Request id from draft to approved as the real users (pat submits, cora starts the review, the
 * assigned reviewer fills the internal notes and approves, fay the finance fields and approves,
 * dan approves when director); the reviewer. */
static int approve_as_users(long long id, bool director)
{
    long long t;
    int rev = to_review(id, &t);
    ck_assert_msg(t > 0, "%s has no task on %lld", U[rev].name, id);
    fill_internal(rev, id);
    decide_ok(rev, t, "approve", "同意 OK", MR, id, "finance_review");
    t = mr_task(FAY, id);
    ck_assert_msg(t > 0, "fay has no task on %lld", id);
    decide_ok(FAY, t, "approve", NULL, MR, id, director ? "finance_review" : "approved");
    if (director) {
        t = mr_task(DAN, id);
        ck_assert_msg(t > 0, "dan has no task on %lld", id);
        decide_ok(DAN, t, "approve", NULL, MR, id, "approved");
    }
    return rev;
}

/* ---------------------------------------------------------------------------------------------
 * History: one token per event ("create", "transition:submit", "approval:approve",
 * "approval:escalated", "sla:warning", "update", "note", "assign"), joined by commas.
 */
static void history_sig(const char *tp, long long id, char *out, size_t n)
{
    cJSON *items, *h = api_get_items(&S, NULL, &items, "%s/%lld/history", tp, id);
    out[0] = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, items)
    {
        const char *a = obj_str(e, "action");
        char one[128];
        if (str_eq(a, "transition")) {
            const char *t = obj_str(e, "transition");
            snprintf(one, sizeof(one), "transition:%s", t ? t : "?");
        } else if (str_eq(a, "approval")) {
            const cJSON *ap = cJSON_GetObjectItemCaseSensitive(e, "approval");
            const char *d = obj_str(ap, "decision");
            if (cJSON_GetObjectItemCaseSensitive(ap, "escalated_to"))
                snprintf(one, sizeof(one), "approval:escalated");
            else
                snprintf(one, sizeof(one), "approval:%s", d ? d : "?");
        } else if (str_eq(a, "sla")) {
            const char *p = obj_str(cJSON_GetObjectItemCaseSensitive(e, "sla"), "phase");
            snprintf(one, sizeof(one), "sla:%s", p ? p : "?");
        } else {
            snprintf(one, sizeof(one), "%s", a ? a : "?");
        }
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s", len ? "," : "", one);
    }
    cJSON_Delete(h);
}

#define ASSERT_HISTORY(tp, id, want)                                                               \
    do {                                                                                           \
        char hs_[2048];                                                                            \
        history_sig(tp, id, hs_, sizeof(hs_));                                                     \
        ck_assert_msg(strcmp(hs_, want) == 0, "history of %s/%lld:\n want %s\n got  %s", tp,       \
                      (long long)(id), want, hs_);                                                 \
    } while (0)

#define ASSERT_EVENT(tp, id, back, subset) ASSERT_HISTORY_EVENT(&S, tp, id, back, subset)

/* ---------------------------------------------------------------------------------------------
 * SLA clocks
 */
/* The clock of target on request id (GET .../sla as the administrator): a copy (owned). */
static cJSON *sla_clock(long long id, const char *target)
{
    cJSON *items, *root = api_get_items(&S, NULL, &items, "%s/%lld/sla", MR, id);
    cJSON *found = NULL;
    const cJSON *c;
    cJSON_ArrayForEach(c, items)
    {
        if (str_eq(obj_str(c, "target"), target)) found = cJSON_Duplicate(c, 1);
    }
    cJSON_Delete(root);
    ck_assert_msg(found != NULL, "request %lld has no %s clock", id, target);
    return found;
}

#define ASSERT_SLA(id, target, want)                                                               \
    do {                                                                                           \
        cJSON *c_ = sla_clock(id, target);                                                         \
        char *t_ = cJSON_PrintUnformatted(c_);                                                     \
        ck_assert_msg(str_eq(obj_str(c_, "status"), want), "%lld %s clock: want %s: %s",           \
                      (long long)(id), target, want, t_);                                          \
        free(t_);                                                                                  \
        cJSON_Delete(c_);                                                                          \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Inboxes
 */
static int inbox_count(int u, const char *kind, const char *type, long long id)
{
    return api_inbox_count(&S, H(u), kind, type, id);
}

static int mr_inbox(int u, const char *kind, long long id)
{
    return inbox_count(u, kind, "marketing_request", id);
}

/* Every message of u's inbox about request id (any kind). */
static int mr_inbox_all(int u, long long id)
{
    cJSON *items, *root = api_get_items(&S, H(u), &items, "/api/v1/inbox?limit=1000");
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, items)
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, "link");
        if (obj_int(l, "record") == id && str_eq(obj_str(l, "type"), "marketing_request")) n++;
    }
    cJSON_Delete(root);
    return n;
}

/* The newest message of kind about request id in u's inbox (a copy, owned); asserts it exists. */
static cJSON *mr_message(int u, const char *kind, long long id)
{
    cJSON *items, *root = api_get_items(&S, H(u), &items, "/api/v1/inbox?limit=1000");
    cJSON *found = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, items)
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, "link");
        if (!found && str_eq(obj_str(m, "kind"), kind) && obj_int(l, "record") == id &&
            str_eq(obj_str(l, "type"), "marketing_request"))
            found = cJSON_Duplicate(m, 1);
    }
    cJSON_Delete(root);
    ck_assert_msg(found != NULL, "%s has no %s message about %lld", U[u].name, kind, id);
    return found;
}

/* The newest message of kind about request id in u's inbox has html containing want. */
static void assert_message_has(int u, const char *kind, long long id, const char *want)
{
    cJSON *m = mr_message(u, kind, id);
    const char *html = obj_str(m, "body_html");
    ck_assert_msg(html && strstr(html, want), "%s's %s message about %lld: want \"%s\" in %s",
                  U[u].name, kind, id, want, html ? html : "(none)");
    cJSON_Delete(m);
}

/* ---------------------------------------------------------------------------------------------
 * Reports
 */
static cJSON *report(int u, const char *name)
{
    return api_get_json(&S, auth_of(u), "/api/v1/reports/%s", name);
}

static int report_col(const cJSON *rep, const char *name)
{
    int i = json_find(cJSON_GetObjectItemCaseSensitive(rep, "columns"), "name", name);
    if (i < 0) ck_abort_msg("report has no column %s", name);
    return i;
}

/* The row whose first cell is the string key, NULL when none. */
static const cJSON *report_row(const cJSON *rep, const char *key)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(rep, "rows"))
    {
        const cJSON *k = cJSON_GetArrayItem(row, 0);
        if (cJSON_IsString(k) && str_eq(k->valuestring, key)) return row;
    }
    return NULL;
}

static int report_nrows(const cJSON *rep)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rep, "rows"));
}

/* requests_by_state as u: "state=n" sorted and joined by commas ("" when no rows; at most 16). */
static void states_sig(int u, char *out, size_t n)
{
    cJSON *rep = report(u, "requests_by_state");
    cJSON *parts = cJSON_CreateArray();
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(rep, "rows"))
    {
        char buf[96];
        const cJSON *s = cJSON_GetArrayItem(row, 0), *c = cJSON_GetArrayItem(row, 1);
        snprintf(buf, sizeof(buf), "%s=%lld", cJSON_IsString(s) ? s->valuestring : "?",
                 cJSON_IsNumber(c) ? (long long)c->valuedouble : -1LL);
        cJSON_AddItemToArray(parts, cJSON_CreateString(buf));
    }
    ck_assert_msg(json_join_sorted(parts, out, n), "requests_by_state as %s: more than 16 rows",
                  name_of(u));
    cJSON_Delete(parts);
    cJSON_Delete(rep);
}

#define ASSERT_STATES(u, want)                                                                     \
    do {                                                                                           \
        char ss_[512];                                                                             \
        states_sig(u, ss_, sizeof(ss_));                                                           \
        ck_assert_msg(strcmp(ss_, want) == 0, "requests_by_state as %s: want \"%s\", got \"%s\"",  \
                      name_of(u), want, ss_);                                                      \
    } while (0)

/* approved_spend_by_region as u has a row for region with count requests and sum approved. */
static void assert_spend(int u, const char *region, long long count, const char *sum)
{
    cJSON *rep = report(u, "approved_spend_by_region");
    const cJSON *row = report_row(rep, region);
    char *t = cJSON_PrintUnformatted(rep);
    ck_assert_msg(row != NULL, "approved_spend_by_region as %s: no row %s: %s", name_of(u), region,
                  t);
    const cJSON *c = cJSON_GetArrayItem(row, report_col(rep, "requests"));
    const cJSON *s = cJSON_GetArrayItem(row, report_col(rep, "approved"));
    ck_assert_msg(cJSON_IsNumber(c) && (long long)c->valuedouble == count && cJSON_IsString(s) &&
                      str_eq(s->valuestring, sum),
                  "approved_spend_by_region as %s, %s: want %lld, %s: %s", name_of(u), region,
                  count, sum, t);
    free(t);
    cJSON_Delete(rep);
}

/* Every stored report and every widget of channel_overview as u answers no rows. */
static void assert_reports_empty(int u)
{
    static const char *const names[] = {"requests_by_state", "approved_spend_by_region",
                                        "approved_spend_by_partner", "approval_cycle",
                                        "sla_by_stage"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cJSON *rep = report(u, names[i]);
        char *t = cJSON_PrintUnformatted(rep);
        ck_assert_msg(report_nrows(rep) == 0, "%s as %s counts what it may not see: %s", names[i],
                      name_of(u), t);
        free(t);
        cJSON_Delete(rep);
    }
    cJSON *d = api_get_json(&S, auth_of(u), "/api/v1/dashboards/channel_overview");
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(d, "widgets"))
    {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(w, "data");
        char *t = cJSON_PrintUnformatted(w);
        ck_assert_msg(data && report_nrows(data) == 0, "widget as %s: %s", name_of(u), t);
        free(t);
    }
    cJSON_Delete(d);
}

/* ---------------------------------------------------------------------------------------------
 * Tasks and claims
 */
/* Records of tp whose request is id, as u sees them, sorted by id (owned root; items in *items). */
static cJSON *spawned(int u, const char *tp, long long id, cJSON **items)
{
    return api_get_items(&S, auth_of(u), items,
                         "%s?filter=request%%20%%3D%%20%lld&sort=id&limit=100", tp, id);
}

static int spawned_count(int u, const char *tp, long long id)
{
    cJSON *items, *root = spawned(u, tp, id, &items);
    int n = cJSON_GetArraySize(items);
    cJSON_Delete(root);
    return n;
}

/* The claim of request id as u sees it (its id); asserts there is exactly one. */
static long long claim_of(int u, long long id)
{
    cJSON *items, *root = spawned(u, RC, id, &items);
    char *t = cJSON_PrintUnformatted(items);
    ck_assert_msg(cJSON_GetArraySize(items) == 1, "claims of %lld as %s: %s", id, name_of(u), t);
    free(t);
    long long c = obj_int(cJSON_GetArrayItem(items, 0), "id");
    cJSON_Delete(root);
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * 1 and 2. The main path, over 50,000: marketing, finance and the director approve; then the
 * delivery tasks, the claim, execution, payment and closing.
 */
static const char *MATERIALS = "[{\"item\":\"宣传册 brochure\",\"qty\":500},"
                               "{\"item\":\"banner 横幅\",\"qty\":6,\"region\":\"north\"}]";

START_TEST(main_path_over_50000_to_closed)
{
    /* Monday 10:00: pat creates the request and submits it. */
    long long id = new_request(PAT, "春季路演 Spring roadshow", "80000", "east", MATERIALS);
    ASSERT_HISTORY(MR, id, "create");
    ASSERT_STATES(ADMIN_U, "draft=1");
    int rev = submit(PAT, id, "{\"comment\":\"请审核 please review\"}");
    int other = rev == MIA ? MAX : MIA;
    ASSERT_STATE(MR, id, "submitted");
    ASSERT_HISTORY(MR, id, "create,transition:submit");
    char sub[128];
    snprintf(sub, sizeof(sub),
             "{\"from\":\"draft\",\"to\":\"submitted\",\"assigned\":{\"to\":\"%s\","
             "\"rule\":\"round_robin\"}}",
             U[rev].name);
    ASSERT_EVENT(MR, id, 0, sub);
    /* The assigned reviewer hears of it; nobody has a task before the review starts. */
    ck_assert_int_eq(mr_inbox(rev, "assigned", id), 1);
    ck_assert_int_eq(mr_inbox_all(other, id), 0);
    ck_assert_int_eq(mr_task(rev, id), 0);
    ASSERT_STATES(ADMIN_U, "submitted=1");
    ASSERT_STATES(PAT, "submitted=1");

    /* Monday 11:00: cora sees it (with the internal fields, never the finance notes) and starts
     * the marketing review. */
    clock_set(&S, "2037-03-02T11:00:00+08:00");
    cJSON *seen = api_get_json(&S, H(CORA), "%s/%lld", MR, id);
    ck_assert(str_eq(obj_str(seen, "state"), "submitted"));
    ck_assert(str_eq(obj_str(seen, "title"), "春季路演 Spring roadshow"));
    ck_assert(cJSON_HasObjectItem(seen, "internal_notes"));
    ck_assert(!cJSON_HasObjectItem(seen, "finance_notes"));
    cJSON_Delete(seen);
    start_review(id);
    ASSERT_HISTORY(MR, id, "create,transition:submit,transition:start_review");
    char opened[160];
    snprintf(opened, sizeof(opened),
             "{\"actor\":\"cora\",\"approval\":{\"name\":\"marketing_review\",\"step\":"
             "\"marketing\",\"assignees\":[\"%s\"]},\"sla\":[{\"target\":\"marketing_review\","
             "\"event\":\"started\"}]}",
             U[rev].name);
    ASSERT_EVENT(MR, id, 0, opened);
    /* The clock runs: 16 business hours of cn_office from Monday 11:00 are due Wednesday 11:00,
     * the warning (75 %, 12 hours) Tuesday 16:00 (lunch 12:00-13:00 and nights excluded). */
    cJSON *clk = sla_clock(id, "marketing_review");
    ck_assert(str_eq(obj_str(clk, "status"), "running"));
    ck_assert_int_eq(obj_int(clk, "target_ms"), 16 * HOUR_MS);
    int64_t drift = obj_time_ms(clk, "started_at") - time_ms("2037-03-02T11:00:00+08:00");
    ck_assert_msg(drift >= 0 && drift < MIN_MS, "started %lld ms after 11:00", (long long)drift);
    ck_assert(obj_time_ms(clk, "due_at") == time_ms("2037-03-04T11:00:00+08:00") + drift);
    ck_assert(obj_time_ms(clk, "warn_at") == time_ms("2037-03-03T16:00:00+08:00") + drift);
    cJSON_Delete(clk);
    ASSERT_STATES(ADMIN_U, "marketing_review=1");

    /* The assigned reviewer's task, and only theirs. */
    long long t1 = mr_task(rev, id);
    ck_assert_msg(t1 > 0, "%s has no pending task", U[rev].name);
    ck_assert_int_eq(mr_task(other, id), 0);
    ck_assert_int_eq(mr_task(DAN, id), 0);
    ck_assert_int_eq(mr_task(FAY, id), 0);
    ck_assert_int_eq(mr_inbox(rev, "approval_task", id), 1);
    cJSON *m = mr_message(rev, "approval_task", id);
    ck_assert_int_eq(obj_int(cJSON_GetObjectItemCaseSensitive(m, "link"), "task"), t1);
    cJSON_Delete(m);
    ck_assert_int_eq(mr_inbox_all(PAT, id), 0);

    /* Monday 15:00: the reviewer writes internal notes and approves. */
    clock_set(&S, "2037-03-02T15:00:00+08:00");
    patch_ok(rev, MR, id, "{\"internal_notes\":\"" NOTE_INTERNAL "\"}");
    decide_ok(rev, t1, "approve", "同意 OK", MR, id, "finance_review");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,update,approval:approve,"
                   "transition:marketing_approve");
    ASSERT_EVENT(
        MR, id, 1,
        "{\"action\":\"approval\",\"approval\":{\"name\":\"marketing_review\","
        "\"decision\":\"approve\",\"comment\":\"同意 OK\",\"step_outcome\":\"approved\"}}");
    ASSERT_EVENT(MR, id, 0,
                 "{\"transition\":\"marketing_approve\",\"by\":\"approval\",\"approval\":{\"name\":"
                 "\"finance_review\",\"step\":\"finance\",\"assignees\":[\"fay\"]}}");
    /* The marketing clock is met after 3 business hours (11-12, 13-15); finance's runs. */
    clk = sla_clock(id, "marketing_review");
    ck_assert(str_eq(obj_str(clk, "status"), "met"));
    /* The test clock runs on from each clock_set, so the clock started `drift` after 11:00
     * and stopped some ms after 15:00: elapsed is exactly 3 h plus that stop's own drift minus
     * the start's. */
    int64_t stop_drift = obj_time_ms(clk, "stopped_at") - time_ms("2037-03-02T15:00:00+08:00");
    ck_assert_msg(stop_drift >= 0 && stop_drift < MIN_MS, "stopped %lld ms after 15:00",
                  (long long)stop_drift);
    ck_assert_msg(obj_int(clk, "elapsed_ms") == 3 * HOUR_MS + stop_drift - drift,
                  "elapsed %lld, start drift %lld, stop drift %lld", obj_int(clk, "elapsed_ms"),
                  (long long)drift, (long long)stop_drift);
    cJSON_Delete(clk);
    ASSERT_SLA(id, "finance_review", "running");
    ck_assert_int_eq(mr_task(rev, id), 0);
    /* pat hears the decision, in Chinese. */
    ck_assert_int_eq(mr_inbox(PAT, "approval_decided", id), 1);
    assert_message_has(PAT, "approval_decided", id, "批准");
    long long t2 = mr_task(FAY, id);
    ck_assert_msg(t2 > 0, "fay has no task");
    ck_assert_int_eq(mr_inbox(FAY, "approval_task", id), 1);
    ck_assert_int_eq(mr_task(DAN, id), 0);
    ASSERT_STATES(ADMIN_U, "finance_review=1");

    /* Tuesday 10:00: fay fills the finance fields and approves; over 50,000 the director's step
     * opens. */
    clock_set(&S, "2037-03-03T10:00:00+08:00");
    patch_ok(FAY, MR, id,
             "{\"finance_notes\":\"" NOTE_FINANCE "\",\"cost_center\":\"" COST_CENTER "\"}");
    decide_ok(FAY, t2, "approve", "财务同意", MR, id, "finance_review");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,update,approval:approve,"
                   "transition:marketing_approve,update,approval:approve");
    ASSERT_EVENT(MR, id, 0,
                 "{\"actor\":\"fay\",\"approval\":{\"step\":\"finance\",\"step_outcome\":"
                 "\"approved\",\"next\":{\"step\":\"director\",\"assignees\":[\"dan\"]}}}");
    long long t3 = mr_task(DAN, id);
    ck_assert_msg(t3 > 0, "dan has no task over 50,000");
    ck_assert_int_eq(mr_inbox(DAN, "approval_task", id), 1);
    ck_assert_int_eq(mr_inbox(PAT, "approval_decided", id), 1); /* nothing decided yet */
    partner_sees_no_secrets(PAT, id);

    /* Tuesday 11:00: dan approves: the request is approved with its budget. */
    clock_set(&S, "2037-03-03T11:00:00+08:00");
    decide_ok(DAN, t3, "approve", "总监同意", MR, id, "approved");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,update,approval:approve,"
                   "transition:marketing_approve,update,approval:approve,approval:approve,"
                   "transition:finance_approve,note");
    ASSERT_EVENT(MR, id, 1,
                 "{\"transition\":\"finance_approve\",\"from\":\"finance_review\",\"to\":"
                 "\"approved\",\"by\":\"approval\",\"changes\":{\"approved_budget\":{\"to\":"
                 "\"80000.00\"}}}");
    char buf[64];
    ck_assert_str_eq(api_record_str(&S, MR, id, "approved_budget", "", buf, sizeof(buf)),
                     "80000.00");
    ASSERT_SLA(id, "finance_review", "met");
    ASSERT_SLA(id, "marketing_review", "met");
    ck_assert_int_eq(mr_task(DAN, id), 0);
    ck_assert_int_eq(mr_task(FAY, id), 0);
    ck_assert_int_eq(mr_inbox(PAT, "approval_decided", id), 2);
    ASSERT_STATES(ADMIN_U, "approved=1");
    ASSERT_STATES(PAT, "approved=1");
    assert_spend(ADMIN_U, "east", 1, "80000.00");
    assert_spend(PAT, "east", 1, "80000.00");

    /* 2. One delivery task per material line, in acme, assigned by region in logistics. */
    cJSON *items, *root = spawned(PAT, MDT, id, &items);
    char *t = cJSON_PrintUnformatted(items);
    ck_assert_msg(cJSON_GetArraySize(items) == 2, "pat's delivery tasks: %s", t);
    const cJSON *a = cJSON_GetArrayItem(items, 0), *b = cJSON_GetArrayItem(items, 1);
    ck_assert_msg(str_eq(obj_str(a, "item"), "宣传册 brochure") && obj_int(a, "qty") == 500 &&
                      str_eq(obj_str(a, "region"), "east") &&
                      str_eq(obj_str(a, "assignee"), "lee") && str_eq(obj_str(a, "org"), "acme") &&
                      str_eq(obj_str(a, "owner"), "pat") && str_eq(obj_str(a, "state"), "open"),
                  "first task: %s", t);
    ck_assert_msg(str_eq(obj_str(b, "item"), "banner 横幅") && obj_int(b, "qty") == 6 &&
                      str_eq(obj_str(b, "region"), "north") &&
                      str_eq(obj_str(b, "assignee"), "lou") && str_eq(obj_str(b, "org"), "acme"),
                  "second task: %s", t);
    long long mdt_a = obj_int(a, "id"), mdt_b = obj_int(b, "id");
    free(t);
    cJSON_Delete(root);
    ck_assert_int_eq(inbox_count(LEE, "assigned", "material_delivery_task", mdt_a), 1);
    ck_assert_int_eq(inbox_count(LOU, "assigned", "material_delivery_task", mdt_b), 1);
    ck_assert_int_eq(inbox_count(LEE, "assigned", "material_delivery_task", mdt_b), 0);

    /* The claim: capped at the approved budget, in acme, visible to pat. */
    long long claim = claim_of(PAT, id);
    cJSON *c = api_get_json(&S, H(PAT), "%s/%lld", RC, claim);
    t = cJSON_PrintUnformatted(c);
    ck_assert_msg(str_eq(obj_str(c, "cap"), "80000.00") && str_eq(obj_str(c, "org"), "acme") &&
                      str_eq(obj_str(c, "owner"), "pat") && str_eq(obj_str(c, "state"), "draft") &&
                      cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "amount")),
                  "the claim as pat: %s", t);
    assert_no_secrets(t, "pat's claim");
    free(t);
    cJSON_Delete(c);

    /* An amount over the cap is refused, naming amount; nothing changes. */
    struct snapshot snap = {0};
    snapshot_add(&S, &snap, "the claim", NULL, "%s/%lld", RC, claim);
    snapshot_add(&S, &snap, "the claim's history", NULL, "%s/%lld/history", RC, claim);
    snapshot_add(&S, &snap, "the request", NULL, "%s/%lld", MR, id);
    struct resp r;
    long st = api_call(&S, H(PAT), "PATCH", "{\"amount\":\"80000.01\"}", &r, "%s/%lld", RC, claim);
    ck_assert_msg(st == 422 && problem_has_field(r.body, "amount"), "over the cap: %ld %s", st,
                  r.body);
    resp_free(&r);
    snapshot_same(&S, &snap, "pat's PATCH over the cap");

    /* pat fills amount and receipts; claiming before the activity runs is refused. */
    patch_ok(PAT, RC, claim,
             "{\"amount\":\"76543.21\",\"receipts\":[\"INV-2037-0001\",\"发票-0002\"]}");
    snapshot_add(&S, &snap, "the claim", NULL, "%s/%lld", RC, claim);
    snapshot_add(&S, &snap, "the claim's history", NULL, "%s/%lld/history", RC, claim);
    snapshot_add(&S, &snap, "the request", NULL, "%s/%lld", MR, id);
    snapshot_add(&S, &snap, "fay's tasks", H(FAY), "/api/v1/approvals?assignee=me&status=pending");
    assert_move_refused(&S, &snap, RC, claim, H(PAT), "pat", "submit", "{}", 409, NULL, NULL);

    /* pat starts the activity, then claims. */
    cJSON_Delete(move_ok(PAT, MR, id, "start_execution", NULL, "in_execution"));
    cJSON_Delete(
        move_ok(PAT, RC, claim, "submit", "{\"comment\":\"报销 claim\"}", "finance_review"));
    long long t4 = task_of(FAY, "reimbursement_claim", claim);
    ck_assert_msg(t4 > 0, "fay has no claim task");
    ck_assert_int_eq(inbox_count(FAY, "approval_task", "reimbursement_claim", claim), 1);
    decide_ok(FAY, t4, "approve", "票据齐全", RC, claim, "approved");
    ASSERT_STATE(MR, id, "in_execution");
    /* Paying closes the request. */
    cJSON_Delete(
        move_ok(FAY, RC, claim, "pay", "{\"fields\":{\"paid_on\":\"2037-04-15\"}}", "paid"));
    ASSERT_STATE(MR, id, "closed");
    ASSERT_HISTORY(RC, claim,
                   "create,update,transition:submit,approval:approve,transition:approve,"
                   "transition:pay");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,update,approval:approve,"
                   "transition:marketing_approve,update,approval:approve,approval:approve,"
                   "transition:finance_approve,note,transition:start_execution,transition:close");
    ASSERT_EVENT(MR, id, 0, "{\"actor\":\"fay\",\"from\":\"in_execution\",\"to\":\"closed\"}");
    cJSON *paid = api_get_json(&S, H(PAT), "%s/%lld", RC, claim);
    ck_assert(str_eq(obj_str(paid, "paid_on"), "2037-04-15"));
    ck_assert(str_eq(obj_str(paid, "amount"), "76543.21"));
    cJSON_Delete(paid);

    /* Reports: closed counts; the spend stays; the cycle from submitted (Mon 10:00) to approved
     * (Tue 11:00) is 25 hours, 9 of them business hours; every dashboard widget answers. */
    ASSERT_STATES(ADMIN_U, "closed=1");
    ASSERT_STATES(PAT, "closed=1");
    assert_spend(ADMIN_U, "east", 1, "80000.00");
    cJSON *cyc = report(ADMIN_U, "approval_cycle");
    const cJSON *row = report_row(cyc, "2037-03");
    t = cJSON_PrintUnformatted(cyc);
    ck_assert_msg(row != NULL && report_nrows(cyc) == 1, "approval_cycle: %s", t);
    const cJSON *n = cJSON_GetArrayItem(row, report_col(cyc, "approved"));
    const cJSON *hrs = cJSON_GetArrayItem(row, report_col(cyc, "median_hours"));
    const cJSON *biz = cJSON_GetArrayItem(row, report_col(cyc, "median_business_hours"));
    ck_assert_msg(cJSON_IsNumber(n) && n->valuedouble == 1 && cJSON_IsNumber(hrs) &&
                      hrs->valuedouble > 24.99 && hrs->valuedouble < 25.02 && cJSON_IsNumber(biz) &&
                      biz->valuedouble > 8.99 && biz->valuedouble < 9.02,
                  "approval_cycle: %s", t);
    free(t);
    cJSON_Delete(cyc);
    cJSON *sla = report(ADMIN_U, "sla_by_stage");
    row = report_row(sla, "east");
    t = cJSON_PrintUnformatted(sla);
    ck_assert_msg(
        row && cJSON_GetArrayItem(row, report_col(sla, "marketing_met"))->valuedouble == 1 &&
            cJSON_GetArrayItem(row, report_col(sla, "finance_met"))->valuedouble == 1 &&
            cJSON_GetArrayItem(row, report_col(sla, "marketing_breached"))->valuedouble == 0,
        "sla_by_stage: %s", t);
    free(t);
    cJSON_Delete(sla);
    cJSON *d = api_get_json(&S, NULL, "/api/v1/dashboards/channel_overview");
    const cJSON *widgets = cJSON_GetObjectItemCaseSensitive(d, "widgets");
    t = cJSON_PrintUnformatted(d);
    ck_assert_msg(cJSON_GetArraySize(widgets) == 5, "dashboard: %s", t);
    const cJSON *w;
    cJSON_ArrayForEach(w, widgets)
    {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(w, "data");
        ck_assert_msg(!cJSON_HasObjectItem(w, "error") && data && report_nrows(data) >= 1,
                      "widget %s: %s", obj_str(w, "report"), t);
        ck_assert(str_eq(obj_str(data, "report"), obj_str(w, "report")));
    }
    free(t);
    cJSON_Delete(d);
    partner_sees_no_secrets(PAT, id);
    partner_sees_no_secrets(PAM, id);
}
END_TEST

/* Under 50,000: no director task; round robin alternates; the claim keeps the cents. */
START_TEST(under_50000_the_director_has_no_task)
{
    long long a = new_request(PAT, "小额培训 Training A", "45678.90", "south",
                              "[{\"item\":\"笔 pen\",\"qty\":100}]");
    long long b = new_request(PAT, "线上广告 Online B", "1000", "west", "[]");
    int ra = submit(PAT, a, NULL), rb = submit(PAT, b, NULL);
    ck_assert_msg(ra != rb, "both requests went to %s", U[ra].name);
    start_review(a);
    long long t = mr_task(ra, a);
    ck_assert_int_eq(mr_task(rb, a), 0);
    decide_ok(ra, t, "approve", NULL, MR, a, "finance_review");
    t = mr_task(FAY, a);
    decide_ok(FAY, t, "approve", "OK", MR, a, "approved");
    ASSERT_EVENT(MR, a, 2,
                 "{\"approval\":{\"step\":\"finance\",\"next\":{\"outcome\":"
                 "\"approved\"}}}");
    ck_assert_int_eq(mr_task(DAN, a), 0);
    ck_assert_int_eq(mr_inbox_all(DAN, a), 0);
    /* The director step was skipped, recorded as such in the approval. */
    cJSON *items, *root = api_get_items(&S, NULL, &items, "%s/%lld/approvals", MR, a);
    char *txt = cJSON_PrintUnformatted(items);
    ck_assert_msg(json_contains(txt,
                                "[{\"name\":\"finance_review\",\"status\":\"approved\",\"steps\":[{"
                                "\"name\":\"finance\",\"status\":\"approved\"},{\"name\":"
                                "\"director\",\"status\":\"skipped\"}]}]"),
                  "approvals: %s", txt);
    free(txt);
    cJSON_Delete(root);
    char buf[64];
    ck_assert_str_eq(api_record_str(&S, MR, a, "approved_budget", "", buf, sizeof(buf)),
                     "45678.90");
    long long claim = claim_of(PAT, a);
    cJSON *c = api_get_json(&S, H(PAT), "%s/%lld", RC, claim);
    ck_assert_msg(str_eq(obj_str(c, "cap"), "45678.90"), "cap %s", obj_str(c, "cap"));
    cJSON_Delete(c);
    /* At the cap exactly is fine; a cent over is not. */
    struct resp r;
    long st = api_call(&S, H(PAT), "PATCH", "{\"amount\":\"45678.91\"}", &r, "%s/%lld", RC, claim);
    ck_assert_msg(st == 422 && problem_has_field(r.body, "amount"), "%ld %s", st, r.body);
    resp_free(&r);
    patch_ok(PAT, RC, claim, "{\"amount\":\"45678.90\"}");
    /* One task for the single line: no region on the line, south on the request; nobody in
     * logistics covers south, so the least loaded (a tie: group order) takes it. */
    cJSON *tk = spawned(PAT, MDT, a, &items);
    ck_assert_int_eq(cJSON_GetArraySize(items), 1);
    ck_assert(str_eq(obj_str(cJSON_GetArrayItem(items, 0), "region"), "south"));
    ck_assert(str_eq(obj_str(cJSON_GetArrayItem(items, 0), "assignee"), "lee"));
    cJSON_Delete(tk);
    ASSERT_STATES(ADMIN_U, "approved=1,submitted=1");
    assert_spend(PAT, "south", 1, "45678.90");
}
END_TEST

/* 3. Rejected by the marketing reviewer: a comment is required; pat hears it; nothing spawned. */
START_TEST(rejected_by_the_marketing_reviewer)
{
    long long id = new_request(PAT, "线上广告 Online ads", "12000", "south",
                               "[{\"item\":\"海报 poster\",\"qty\":10}]");
    long long t;
    int rev = to_review(id, &t);
    ck_assert(t > 0);
    /* Without a comment: refused, and nothing changes. */
    struct snapshot snap = {0};
    snapshot_add(&S, &snap, "the request", NULL, "%s/%lld", MR, id);
    snapshot_add(&S, &snap, "its history", NULL, "%s/%lld/history", MR, id);
    snapshot_add(&S, &snap, "its approvals", NULL, "%s/%lld/approvals", MR, id);
    snapshot_add(&S, &snap, "pat's inbox", H(PAT), "/api/v1/inbox?limit=1000");
    snapshot_add(&S, &snap, "the reviewer's tasks", H(rev),
                 "/api/v1/approvals?assignee=me&status=pending");
    struct resp r;
    long st = decide(rev, t, "reject", NULL, &r);
    assert_problem(&r, 422, st, "comment", NULL, "a reject without a comment");
    ck_assert(problem_has_field(r.body, "comment"));
    resp_free(&r);
    snapshot_same(&S, &snap, "a reject without a comment");

    decide_ok(rev, t, "reject", "预算不合理 budget unclear", MR, id, "rejected");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,approval:reject,"
                   "transition:reject");
    ASSERT_EVENT(MR, id, 0,
                 "{\"transition\":\"reject\",\"to\":\"rejected\",\"by\":\"approval\",\"comment\":"
                 "\"预算不合理 budget unclear\",\"approval_ended\":{\"status\":\"rejected\"}}");
    ASSERT_SLA(id, "marketing_review", "met");
    /* The workflow's reject has no notify action: pat hears it from the approval, once. */
    ck_assert_int_eq(mr_inbox(PAT, "approval_decided", id), 1);
    ck_assert_int_eq(mr_inbox(PAT, "transition", id), 0);
    ck_assert_int_eq(mr_inbox_all(PAT, id), 1);
    assert_message_has(PAT, "approval_decided", id, "驳回");
    assert_message_has(PAT, "approval_decided", id, "预算不合理 budget unclear");
    char disp[80]; /* by the reviewer's display name, not their login */
    assert_message_has(PAT, "approval_decided", id, display_of(&U[rev], disp, sizeof(disp)));
    /* No tasks anywhere, no deliveries, no claim. */
    ck_assert_int_eq(mr_task(rev, id), 0);
    ck_assert_int_eq(mr_task(FAY, id), 0);
    ck_assert_int_eq(mr_task(DAN, id), 0);
    ck_assert_int_eq(spawned_count(ADMIN_U, MDT, id), 0);
    ck_assert_int_eq(spawned_count(ADMIN_U, RC, id), 0);
    ck_assert_int_eq(count_records(&S, "material_delivery_task"), 0);
    ck_assert_int_eq(count_records(&S, "reimbursement_claim"), 0);
    ASSERT_STATES(ADMIN_U, "rejected=1");
    ASSERT_STATES(PAT, "rejected=1");
    /* A final state: pat cannot resubmit it. */
    snapshot_add(&S, &snap, "the request", NULL, "%s/%lld", MR, id);
    assert_move_refused(&S, &snap, MR, id, H(PAT), "pat", "submit", "{}", 409, "state", NULL);
}
END_TEST

/* 4. Returned with a comment: pat hears it, edits and resubmits; it goes through to approval. */
START_TEST(returned_then_resubmitted_and_approved)
{
    long long id = new_request(PAT, "伙伴培训 Training", "20000", "west",
                               "[{\"item\":\"手册 handbook\",\"qty\":50}]");
    long long t;
    int rev = to_review(id, &t);
    struct resp r;
    long st = decide(rev, t, "return", NULL, &r);
    assert_problem(&r, 422, st, "comment", NULL, "a return without a comment");
    resp_free(&r);
    ASSERT_STATE(MR, id, "marketing_review");
    decide_ok(rev, t, "return", "请补充物料明细 add material details", MR, id, "returned");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,approval:return,"
                   "transition:return");
    ASSERT_SLA(id, "marketing_review", "met");
    ck_assert_int_eq(mr_task(rev, id), 0);
    /* pat: the approval's built-in "returned" message with the comment, and the workflow's own
     * notify action of the return transition, both in Chinese. */
    ck_assert_int_eq(mr_inbox(PAT, "returned", id), 1);
    assert_message_has(PAT, "returned", id, "请补充物料明细 add material details");
    assert_message_has(PAT, "returned", id, "退回修改");
    ck_assert_int_eq(mr_inbox(PAT, "transition", id), 1);
    assert_message_has(PAT, "transition", id, "已被退回修改");

    /* pat edits the request and submits it again. */
    patch_ok(PAT, MR, id,
             "{\"plan\":\"培训计划 v2\",\"materials\":[{\"item\":\"手册 handbook\",\"qty\":50},"
             "{\"item\":\"易拉宝 roll-up\",\"qty\":4,\"region\":\"east\"}]}");
    int rev2 = submit(PAT, id, "{\"comment\":\"已补充 added\"}");
    ASSERT_EVENT(MR, id, 0, "{\"from\":\"returned\",\"to\":\"submitted\"}");
    start_review(id);
    ASSERT_SLA(id, "marketing_review", "running");
    t = mr_task(rev2, id);
    ck_assert_msg(t > 0, "%s has no task after the resubmission", U[rev2].name);
    decide_ok(rev2, t, "approve", NULL, MR, id, "finance_review");
    decide_ok(FAY, mr_task(FAY, id), "approve", NULL, MR, id, "approved");
    ASSERT_HISTORY(MR, id,
                   "create,transition:submit,transition:start_review,approval:return,"
                   "transition:return,update,transition:submit,transition:start_review,"
                   "approval:approve,transition:marketing_approve,approval:approve,"
                   "transition:finance_approve,note");
    /* The edited lines are what was delivered. */
    cJSON *items, *root = spawned(PAT, MDT, id, &items);
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);
    ck_assert(str_eq(obj_str(cJSON_GetArrayItem(items, 1), "item"), "易拉宝 roll-up"));
    ck_assert(str_eq(obj_str(cJSON_GetArrayItem(items, 1), "assignee"), "lee"));
    cJSON_Delete(root);
    ck_assert_int_eq(spawned_count(PAT, RC, id), 1);
    ck_assert_int_eq(mr_inbox(PAT, "approval_decided", id), 2);
}
END_TEST

/* 5. SLA on cn_office: the reviewer's warning at 75 %, then the director's breach message and the
 * task escalated to the director. runtime/workflow/README.md does not describe a step's
 * time_limit / escalate_to (only runtime/approval/approval.h and tests/integration/
 * test_escalation.c do): what is asserted is what those and the app's README say — the pending
 * task handed to the first active marketing_director, closed "delegated" with the escalation
 * comment, one history event (approval.escalated_to) and an approval_task message. */
START_TEST(sla_warning_breach_and_escalation_to_the_director)
{
    long long id = new_request(PAT, "夏季展会 Summer expo", "30000", "north",
                               "[{\"item\":\"展架 stand\",\"qty\":2}]");
    long long t;
    int rev = to_review(id, &t); /* the review starts on Monday 10:00 */
    ck_assert(t > 0);
    cJSON *clk = sla_clock(id, "marketing_review");
    int64_t drift = obj_time_ms(clk, "started_at") - time_ms("2037-03-02T10:00:00+08:00");
    ck_assert_msg(drift >= 0 && drift < MIN_MS, "started %lld ms after 10:00", (long long)drift);
    /* 12 business hours: Mon 10-12, 13-18, Tue 9-12, 13-15; 16: then Tue 15-18 and Wed 9-10. */
    int64_t warn = time_ms("2037-03-03T15:00:00+08:00") + drift;
    int64_t due = time_ms("2037-03-04T10:00:00+08:00") + drift;
    ck_assert(obj_time_ms(clk, "warn_at") == warn);
    ck_assert(obj_time_ms(clk, "due_at") == due);
    cJSON_Delete(clk);

    /* A minute before the warning: nothing. */
    clock_set_ms(&S, warn - MIN_MS);
    quiet();
    ck_assert_int_eq(mr_inbox(rev, "sla_warning", id), 0);
    ck_assert_int_eq(api_history_count(&S, MR, id, "action", "sla"), 0);
    /* Past it: the assigned reviewer is warned, once, with the app's text and the due time. */
    clock_set_ms(&S, warn + 1000);
    WAIT_FOR(mr_inbox(rev, "sla_warning", id) == 1, "no warning for %s", U[rev].name);
    assert_message_has(rev, "sla_warning", id, "Marketing review of <strong>夏季展会 Summer expo");
    assert_message_has(rev, "sla_warning", id, "is due 2037-03-04 10:00 Asia/Shanghai");
    ASSERT_HISTORY(MR, id, "create,transition:submit,transition:start_review,sla:warning");
    clk = sla_clock(id, "marketing_review");
    ck_assert(str_eq(obj_str(clk, "status"), "running"));
    ck_assert(obj_time_ms(clk, "warned_at") >= warn);
    cJSON_Delete(clk);
    ck_assert_int_eq(mr_inbox(DAN, "sla_breach", id), 0);
    ck_assert_int_eq(mr_inbox(PAT, "sla_warning", id), 0);

    /* A minute before the due time: no breach, the task still the reviewer's. */
    clock_set_ms(&S, due - MIN_MS);
    quiet();
    ck_assert_int_eq(mr_inbox(DAN, "sla_breach", id), 0);
    ck_assert_int_eq(mr_task(rev, id), t);
    ck_assert_int_eq(mr_task(DAN, id), 0);
    /* Past it: dan hears of the breach, with the app's text ... */
    clock_set_ms(&S, due + 1000);
    WAIT_FOR(mr_inbox(DAN, "sla_breach", id) == 1, "no breach message for dan");
    assert_message_has(DAN, "sla_breach", id, "is overdue (due 2037-03-04 10:00 Asia/Shanghai)");
    assert_message_has(DAN, "sla_breach", id, "it is escalated to you");
    ASSERT_SLA(id, "marketing_review", "breached");
    /* ... and the step's time limit hands the task to him: the reviewer's task closes delegated
     * with the escalation comment, dan's names the reviewer, dan gets an approval_task. */
    WAIT_FOR(mr_task(DAN, id) > 0, "the task was not escalated to dan");
    long long td = mr_task(DAN, id);
    ck_assert_int_eq(mr_task(rev, id), 0);
    char want[256];
    snprintf(want, sizeof(want),
             "{\"assignee\":\"%s\",\"status\":\"delegated\",\"comment\":\"%s\"}", U[rev].name,
             ESC_COMMENT);
    ASSERT_APPROVAL_TASK(&S, t, want);
    snprintf(want, sizeof(want),
             "{\"assignee\":\"dan\",\"status\":\"pending\",\"delegated_from\":\"%s\"}",
             U[rev].name);
    ASSERT_APPROVAL_TASK(&S, td, want);
    ck_assert_int_eq(mr_inbox(DAN, "approval_task", id), 1);
    ck_assert_int_eq(api_history_count(&S, MR, id, "action", "sla"), 2);
    char hs[1024];
    history_sig(MR, id, hs, sizeof(hs));
    /* The escalation and the breach fall due at the same instant: either order. */
    static const char *const pre = "create,transition:submit,transition:start_review,sla:warning,";
    ck_assert_msg(strncmp(hs, pre, strlen(pre)) == 0 &&
                      (strcmp(hs + strlen(pre), "approval:escalated,sla:breach") == 0 ||
                       strcmp(hs + strlen(pre), "sla:breach,approval:escalated") == 0),
                  "history: %s", hs);
    ASSERT_EVENT(MR, id, str_eq(hs + strlen(pre), "approval:escalated,sla:breach") ? 1 : 0,
                 "{\"actor\":\"system\",\"approval\":{\"name\":\"marketing_review\",\"step\":"
                 "\"marketing\",\"escalated_to\":[\"dan\"]}}");
    ASSERT_STATE(MR, id, "marketing_review");
    /* Nothing fires twice. */
    quiet();
    ck_assert_int_eq(mr_inbox(DAN, "sla_breach", id), 1);
    ck_assert_int_eq(mr_inbox(rev, "sla_warning", id), 1);

    /* The director decides: on to finance; the marketing clock stays breached, now stopped. */
    decide_ok(DAN, td, "approve", "总监代审 OK", MR, id, "finance_review");
    clk = sla_clock(id, "marketing_review");
    ck_assert(str_eq(obj_str(clk, "status"), "breached"));
    ck_assert(obj_time_ms(clk, "stopped_at") > 0);
    cJSON_Delete(clk);
    ASSERT_SLA(id, "finance_review", "running");
    cJSON *sla = report(ADMIN_U, "sla_by_stage");
    const cJSON *row = report_row(sla, "north");
    ck_assert(row != NULL);
    ck_assert(cJSON_GetArrayItem(row, report_col(sla, "marketing_breached"))->valuedouble == 1);
    cJSON_Delete(sla);
}
END_TEST

/* 6. Isolation: gus (globex) sees nothing of acme's; partners never see the internal fields. */
START_TEST(other_org_sees_nothing_and_partners_no_internal_fields)
{
    long long id = new_request(PAT, "春季路演 Spring roadshow", "80000", "east", MATERIALS);
    approve_as_users(id, true);
    long long claim = claim_of(PAT, id);
    cJSON *items, *root = spawned(PAT, MDT, id, &items);
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);
    long long mdt = obj_int(cJSON_GetArrayItem(items, 0), "id");
    cJSON_Delete(root);
    long long task = 0;
    root = api_get_items(&S, NULL, &items, "%s/%lld/approvals", MR, id);
    const cJSON *ap = cJSON_GetArrayItem(items, 0);
    const cJSON *st0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ap, "steps"), 0);
    task = obj_int(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st0, "tasks"), 0), "id");
    cJSON_Delete(root);
    ck_assert(task > 0);

    /* gus: empty lists, 404 by id, nothing in reports or the dashboard, no tasks. */
    const char *lists[] = {MR, MDT, RC};
    for (int i = 0; i < 3; i++) {
        cJSON *l = api_get_items(&S, H(GUS), &items, "%s?limit=100", lists[i]);
        ck_assert_msg(cJSON_GetArraySize(items) == 0, "gus lists %s", lists[i]);
        cJSON_Delete(l);
        struct resp r;
        ck_assert_int_eq(api_call(&S, H(GUS), "GET", NULL, &r, "%s?count=exact&limit=1", lists[i]),
                         200);
        ck_assert_msg(json_int(r.body, "count", -1) == 0, "gus counts %s: %s", lists[i], r.body);
        resp_free(&r);
    }
    struct resp r;
    const char *paths[] = {"%s/%lld", "%s/%lld/history", "%s/%lld/sla", "%s/%lld/approvals",
                           "%s/%lld/transitions"};
    for (int i = 0; i < 5; i++) {
        char p[256];
        snprintf(p, sizeof(p), paths[i], MR, id);
        long st = api_call(&S, H(GUS), "GET", NULL, &r, "%s", p);
        ck_assert_msg(st == 404, "gus GET %s: %ld %s", p, st, r.body);
        resp_free(&r);
    }
    ck_assert_int_eq(api_call(&S, H(GUS), "GET", NULL, &r, "%s/%lld", MDT, mdt), 404);
    resp_free(&r);
    ck_assert_int_eq(api_call(&S, H(GUS), "GET", NULL, &r, "%s/%lld", RC, claim), 404);
    resp_free(&r);
    ck_assert_int_eq(api_call(&S, H(GUS), "GET", NULL, &r, "/api/v1/approvals/%lld", task), 404);
    resp_free(&r);
    ck_assert_int_eq(api_call(&S, H(GUS), "PATCH", "{\"amount\":\"1\"}", &r, "%s/%lld", RC, claim),
                     404);
    resp_free(&r);
    ck_assert_int_eq(move(GUS, MR, id, "start_execution", NULL, &r), 404);
    resp_free(&r);
    root = api_get_items(&S, H(GUS), &items, "/api/v1/approvals?assignee=me&status=done");
    ck_assert_int_eq(cJSON_GetArraySize(items), 0);
    cJSON_Delete(root);
    assert_reports_empty(GUS);
    ASSERT_STATE(MR, id, "approved");

    /* gus's own request: he sees it alone, pat does not see it, each report counts its own. */
    long long g = new_request(GUS, "环球展会 Globex expo", "5000", "north", "[]");
    root = api_get_items(&S, H(GUS), &items, "%s?limit=100", MR);
    ck_assert_int_eq(cJSON_GetArraySize(items), 1);
    ck_assert_int_eq(obj_int(cJSON_GetArrayItem(items, 0), "id"), g);
    cJSON_Delete(root);
    ck_assert_int_eq(api_call(&S, H(PAT), "GET", NULL, &r, "%s/%lld", MR, g), 404);
    resp_free(&r);
    ASSERT_STATES(GUS, "draft=1");
    ASSERT_STATES(PAT, "approved=1");
    ASSERT_STATES(PAM, "approved=1");
    ASSERT_STATES(ADMIN_U, "approved=1,draft=1");
    cJSON *rep = report(GUS, "approved_spend_by_partner");
    ck_assert_int_eq(report_nrows(rep), 0);
    cJSON_Delete(rep);

    /* The reviewers filled every internal field; partners see none of them anywhere. */
    cJSON *full = api_get_json(&S, H(FAY), "%s/%lld", MR, id);
    ck_assert(str_eq(obj_str(full, "internal_notes"), NOTE_INTERNAL));
    ck_assert(str_eq(obj_str(full, "finance_notes"), NOTE_FINANCE));
    ck_assert(str_eq(obj_str(full, "cost_center"), COST_CENTER));
    cJSON_Delete(full);
    partner_sees_no_secrets(PAT, id);
    partner_sees_no_secrets(PAM, id);
    get_no_secrets(PAT, "%s/%lld", RC, claim);
    get_no_secrets(PAT, "%s/%lld/history", RC, claim);
    get_no_secrets(PAT, "%s/%lld", MDT, mdt);
    static const char *const reps[] = {"requests_by_state", "approved_spend_by_region",
                                       "approved_spend_by_partner", "approval_cycle",
                                       "sla_by_stage"};
    for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++)
        get_no_secrets(PAT, "/api/v1/reports/%s", reps[i]);
    /* Asking for a hidden field is refused rather than answered. */
    long st = api_call(&S, H(PAT), "GET", NULL, &r, "%s?fields=title,internal_notes", MR);
    ck_assert_msg(st == 400 || st == 403, "fields=internal_notes: %ld %s", st, r.body);
    assert_no_secrets(r.body, "the refusal");
    resp_free(&r);
    st = api_call(&S, H(PAT), "GET", NULL, &r,
                  "%s?filter=cost_center%%20%%3D%%20%%22" COST_CENTER "%%22", MR);
    ck_assert_msg(st == 400 || st == 403, "filter on cost_center: %ld %s", st, r.body);
    resp_free(&r);
    /* Writes: pat cannot fill them either, and a write answer shows none. */
    st = api_call(&S, H(PAT), "PATCH", "{\"internal_notes\":\"x\"}", &r, "%s/%lld", MR, id);
    ck_assert_msg(st == 403 || st == 422, "pat writes internal_notes: %ld %s", st, r.body);
    resp_free(&r);
    patch_ok(PAT, MR, id, "{\"description\":\"活动说明 description\"}");
    cJSON_Delete(move_ok(PAT, MR, id, "start_execution", NULL, "in_execution"));
    partner_sees_no_secrets(PAT, id);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Regressions: bugs this suite found (fixed).
 */

/* Platform (runtime/record/record.c trl_rec_json): ?expand=<ref> renders the referenced record
 * with the caller's context of the OUTER type: its field modes are indexed by the referenced
 * type's field positions (cx->acc->fields[f - rt->fields], an array of the outer type's nfields
 * bytes). A partner expanding a delivery task's or a claim's request sees the request's
 * internal_notes, finance_notes and cost_center; in the claim's case activity_type (position 7,
 * finance_notes' position in reimbursement_claim) disappears instead. */
START_TEST(reg_expand_shows_hidden_fields_of_the_referenced_record)
{
    long long id = new_request(PAT, "春季路演 Spring roadshow", "80000", "east", MATERIALS);
    approve_as_users(id, true);
    long long claim = claim_of(PAT, id);
    cJSON *items, *root = spawned(PAT, MDT, id, &items);
    long long mdt = obj_int(cJSON_GetArrayItem(items, 0), "id");
    cJSON_Delete(root);
    /* Every finding at once: which answers leak, and the claim's request losing a field. */
    char found[1024] = "";
    char paths[3][160];
    snprintf(paths[0], sizeof(paths[0]), "%s?expand=request&limit=100", MDT);
    snprintf(paths[1], sizeof(paths[1]), "%s/%lld?expand=request", MDT, mdt);
    snprintf(paths[2], sizeof(paths[2]), "%s/%lld?expand=request", RC, claim);
    for (int i = 0; i < 3; i++) {
        char *t = api_get_text(&S, H(PAT), "%s", paths[i]);
        if (strstr(t, "\"internal_notes\"") || strstr(t, "\"finance_notes\"") ||
            strstr(t, "\"cost_center\"") || strstr(t, "INTERNAL-7c1") || strstr(t, COST_CENTER))
            snprintf(found + strlen(found), sizeof(found) - strlen(found),
                     "pat's GET %s shows the request's internal fields; ", paths[i]);
        free(t);
    }
    cJSON *c = api_get_json(&S, H(PAT), "%s", paths[2]);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(c, "request");
    if (!str_eq(obj_str(req, "activity_type"), "roadshow"))
        snprintf(found + strlen(found), sizeof(found) - strlen(found),
                 "the claim's expanded request lacks activity_type; ");
    cJSON_Delete(c);
    ck_assert_msg(found[0] == 0, "%s", found);
}
END_TEST

/* App (hooks/marketing_request.lua after_transition_finance_approve): the claim's title is
 * rec.name .. " " .. rec.title, but both titles allow 200 characters: a request whose title is
 * over 185 characters can never be approved (the finance or director approval answers 422
 * "title: must be at most 200 characters" of reimbursement_claim, and the request stays in
 * finance_review). */
START_TEST(reg_long_title_blocks_the_final_approval)
{
    char title[1024] = "";
    for (int i = 0; i < 200; i++)
        strcat(title, "长");
    long long id = new_request(PAT, title, "1000", "east", "[{\"item\":\"x\",\"qty\":1}]");
    int rev = submit(PAT, id, NULL);
    start_review(id);
    decide_ok(rev, mr_task(rev, id), "approve", NULL, MR, id, "finance_review");
    struct resp r;
    long st = decide(FAY, mr_task(FAY, id), "approve", NULL, &r);
    ck_assert_msg(st == 200, "fay approves a request with a 200-character title: %ld %s", st,
                  r.body);
    resp_free(&r);
    ASSERT_STATE(MR, id, "approved");
    ck_assert_int_eq(spawned_count(PAT, RC, id), 1);
}
END_TEST

/* Platform (runtime/workflow/workflow.c escalate_guard: note_task(..., 0)): the approval_task
 * message the escalation target gets has link.task null, while every other approval_task message
 * links its task. */
START_TEST(reg_escalated_task_message_links_the_task)
{
    long long id = new_request(PAT, "夏季展会 Summer expo", "30000", "north", "[]");
    submit(PAT, id, NULL);
    start_review(id);
    clock_set(&S, "2037-03-04T10:01:00+08:00");
    WAIT_FOR(mr_task(DAN, id) > 0, "the task was not escalated to dan");
    long long td = mr_task(DAN, id);
    cJSON *m = mr_message(DAN, "approval_task", id);
    char *t = cJSON_PrintUnformatted(m);
    ck_assert_msg(obj_int(cJSON_GetObjectItemCaseSensitive(m, "link"), "task") == td,
                  "dan's task is %lld; his message: %s", td, t);
    free(t);
    cJSON_Delete(m);
}
END_TEST

/* App (types/reimbursement_claim.json, hooks/reimbursement_claim.lua): the claim's request is a
 * plain ref field that partners may update, and the cap is set only on create. pat can point the
 * claim of a small request at another request: the claim keeps the first request's cap, is
 * checked and closes against the other one — "the cap is the request's approved budget" no
 * longer holds. Expected: the partner cannot change a claim's request (refused, nothing
 * changes). */
START_TEST(reg_partner_repoints_a_claim_to_another_request)
{
    long long big = new_request(PAT, "大额 big", "80000", "east", "[]");
    approve_as_users(big, true);
    long long small = new_request(PAT, "小额 small", "1000", "east", "[]");
    approve_as_users(small, false);
    long long claim = claim_of(PAT, big);
    struct snapshot snap = {0};
    snapshot_add(&S, &snap, "the claim", NULL, "%s/%lld", RC, claim);
    struct resp r;
    char body[64];
    snprintf(body, sizeof(body), "{\"request\":%lld}", small);
    long st = api_call(&S, H(PAT), "PATCH", body, &r, "%s/%lld", RC, claim);
    ck_assert_msg(st >= 400 && st < 500,
                  "pat re-pointed the claim (cap 80000.00) at request %lld (approved 1000.00): "
                  "%ld %s",
                  small, st, r.body);
    resp_free(&r);
    snapshot_same(&S, &snap, "pat's PATCH of the claim's request");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_channel_marketing");
    TCase *tc = tcase_create("channel_marketing");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, main_path_over_50000_to_closed);
    tcase_add_test(tc, under_50000_the_director_has_no_task);
    tcase_add_test(tc, rejected_by_the_marketing_reviewer);
    tcase_add_test(tc, returned_then_resubmitted_and_approved);
    tcase_add_test(tc, sla_warning_breach_and_escalation_to_the_director);
    tcase_add_test(tc, other_org_sees_nothing_and_partners_no_internal_fields);
    suite_add_tcase(s, tc);
    /* Bugs this suite found, kept as regression tests. */
    TCase *bugs = tcase_create("regressions");
    tcase_add_unchecked_fixture(bugs, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(bugs, setup, teardown);
    tcase_set_timeout(bugs, 60);
    tcase_add_test(bugs, reg_expand_shows_hidden_fields_of_the_referenced_record);
    tcase_add_test(bugs, reg_long_title_blocks_the_final_approval);
    tcase_add_test(bugs, reg_escalated_task_message_links_the_task);
    tcase_add_test(bugs, reg_partner_repoints_a_claim_to_another_request);
    suite_add_tcase(s, bugs);
    return run_suite(s);
}
