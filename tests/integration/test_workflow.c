/* Workflows against the real server: concurrent transitions of one record (exactly one wins, one
 * history event each, the store stays consistent); role enforcement for partners of two orgs and a
 * reviewer; the meta API for workflows (errors named by path, nothing stored on refusal, removing a
 * state that records are in refused with the count, a new transition usable at once); set actions
 * (now, user.id, copy, constants) and conditions; Idempotency-Key on a transition. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;
static char A[128], B[128], REV[128]; /* Authorization headers: acme partner, globex, reviewer */
static const char *MR = "/api/v1/records/marketing_request";
static const char *WF = "/api/v1/meta/workflows/marketing_request";

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    tmpreg_add(S.dir); /* removed by the parent even when a test fails before its teardown */
    cli_run3(&S, "org", "add", "acme");
    cli_run3(&S, "org", "add", "globex");
    cli_add_user(&S, "ann", "partner", "acme", NULL, A, sizeof(A));
    cli_add_user(&S, "bob", "partner", "globex", NULL, B, sizeof(B));
    cli_add_user(&S, "rita", "reviewer", NULL, NULL, REV, sizeof(REV));
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_teardown(&S);
}

/* One request as hdr (NULL: the admin token); extra: one more header or NULL. */
static long req2(const char *hdr, const char *extra, const char *method, const char *path,
                 const char *body, struct resp *out)
{
    return api_request(&S, hdr, extra, method, path, body, out);
}

static long req(const char *hdr, const char *method, const char *path, const char *body,
                struct resp *out)
{
    return api_request(&S, hdr, NULL, method, path, body, out);
}

static long long create_as(const char *hdr, const char *title, const char *start_date)
{
    char body[256];
    if (start_date)
        snprintf(body, sizeof(body),
                 "{\"title\":\"%s\",\"partner\":\"P\",\"budget\":\"10\",\"start_date\":\"%s\"}",
                 title, start_date);
    else
        snprintf(body, sizeof(body), "{\"title\":\"%s\",\"partner\":\"P\",\"budget\":\"10\"}",
                 title);
    struct resp r;
    ck_assert_int_eq(req(hdr, "POST", MR, body, &r), 201);
    long long id = json_int(r.body, "id", 0);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"draft\",\"version\":1}"), "%s", r.body);
    resp_free(&r);
    return id;
}

/* POST .../{id}/transitions/{name}; status. */
static long move(const char *hdr, const char *type_path, long long id, const char *name,
                 const char *body, struct resp *out)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%lld/transitions/%s", type_path, id, name);
    return req(hdr, "POST", path, body, out);
}

static int count_sub(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s ? strstr(s, sub) : NULL; p; p = strstr(p + 1, sub))
        n++;
    return n;
}

/* Number of "action":"transition" events in a record's history. */
static int transition_events(const char *type_path, long long id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%lld/history", type_path, id);
    struct resp r;
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    int n = count_sub(r.body, "\"action\":\"transition\"");
    resp_free(&r);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * a. Two identical submits at once on each of 20 records: exactly one wins.
 */
struct racer {
    const char *path;
    pthread_barrier_t *go;
    long status;
    char *body;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"fields\":{\"start_date\":\"2026-07-01\"}}";
    struct resp r;
    pthread_barrier_wait(x->go);
    http(&S, "POST", x->path, body, strlen(body), h, &r);
    x->status = r.status;
    x->body = r.body ? strdup(r.body) : NULL;
    resp_free(&r);
    return NULL;
}

START_TEST(concurrent_submits_one_wins_per_record)
{
    enum { NREC = 20 };
    long long ids[NREC];
    for (int i = 0; i < NREC; i++) {
        char title[32];
        snprintf(title, sizeof(title), "race %d", i);
        ids[i] = create_as(NULL, title, NULL);
    }
    for (int i = 0; i < NREC; i++) {
        char path[160];
        snprintf(path, sizeof(path), "%s/%lld/transitions/submit", MR, ids[i]);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        pthread_t th[2];
        struct racer rs[2];
        for (int k = 0; k < 2; k++) {
            rs[k] = (struct racer){.path = path, .go = &go};
            ck_assert_int_eq(pthread_create(&th[k], NULL, race, &rs[k]), 0);
        }
        int ok = 0, conflict = 0;
        for (int k = 0; k < 2; k++) {
            pthread_join(th[k], NULL);
            if (rs[k].status == 200) {
                ok++;
                ck_assert_msg(json_contains(rs[k].body, "{\"state\":\"submitted\",\"version\":2}"),
                              "%s", rs[k].body);
            }
            if (rs[k].status == 409) {
                conflict++;
                ck_assert_msg(
                    json_contains(rs[k].body,
                                  "{\"rule\":\"state\",\"path\":\"transitions[0].from\"}"),
                    "%s", rs[k].body);
            }
        }
        pthread_barrier_destroy(&go);
        ck_assert_msg(ok == 1 && conflict == 1, "record %lld: %ld and %ld (%s | %s)", ids[i],
                      rs[0].status, rs[1].status, rs[0].body, rs[1].body);
        free(rs[0].body);
        free(rs[1].body);
    }
    for (int i = 0; i < NREC; i++)
        ck_assert_int_eq(transition_events(MR, ids[i]), 1);
    struct resp r;
    ck_assert_int_eq(req(NULL, "GET",
                         "/api/v1/records/"
                         "marketing_request?filter=state%20%3D%20%22submitted%22&count=exact",
                         NULL, &r),
                     200);
    ck_assert_int_eq(json_int(r.body, "count", -1), NREC);
    resp_free(&r);
    /* The store is consistent (state counters match the records) and survives a restart. */
    srv_stop(&S);
    assert_store_check(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/%lld", MR, ids[NREC - 1]);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"version\":2}"), "%s", r.body);
    resp_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * b. Roles: the partner submits, the reviewer reviews, another org sees nothing.
 */
START_TEST(roles_partner_reviewer_and_other_org)
{
    long long id = create_as(A, "acme request", NULL);
    char path[160];
    struct resp r;
    /* ann sees submit with start_date missing; bob does not see the record at all. */
    snprintf(path, sizeof(path), "%s/%lld/transitions", MR, id);
    ck_assert_int_eq(req(A, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"draft\",\"items\":[{\"name\":\"submit\","
                                        "\"missing\":[\"start_date\"]}]}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(req(B, "GET", path, NULL, NULL), 404);
    ck_assert_int_eq(move(B, MR, id, "submit", "{\"fields\":{\"start_date\":\"2026-08-01\"}}", &r),
                     404);
    ck_assert(strstr(r.body, "acme") == NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld/transitions/submit?dry_run=1", MR, id);
    ck_assert_int_eq(req(B, "POST", path, "{\"fields\":{\"start_date\":\"2026-08-01\"}}", NULL),
                     404);
    /* The reviewer may read it but submit is for partners. */
    ck_assert_int_eq(
        move(REV, MR, id, "submit", "{\"fields\":{\"start_date\":\"2026-08-01\"}}", &r), 403);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"role\",\"path\":\"transitions[0].roles\"}"),
                  "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld/transitions", MR, id);
    ck_assert_int_eq(req(REV, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"draft\",\"items\":[]}"), "%s", r.body);
    resp_free(&r);
    /* ann submits her own org's record. */
    ck_assert_int_eq(move(A, MR, id, "submit", "{\"fields\":{\"start_date\":\"2026-08-01\"}}", &r),
                     200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"version\":2}"), "%s", r.body);
    resp_free(&r);
    /* ann may not start the review (nor dry-run it); bob still finds nothing. */
    ck_assert_int_eq(move(A, MR, id, "start_review", NULL, &r), 403);
    ck_assert_msg(json_contains(r.body, "{\"status\":403,\"rule\":\"role\","
                                        "\"path\":\"transitions[1].roles\"}"),
                  "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld/transitions/start_review?dry_run=1", MR, id);
    ck_assert_int_eq(req(A, "POST", path, NULL, &r), 403);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"role\"}"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(B, MR, id, "start_review", NULL, NULL), 404);
    snprintf(path, sizeof(path), "%s/%lld/transitions", MR, id);
    ck_assert_int_eq(req(A, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"items\":[]}"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(req(REV, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"items\":[{\"name\":"
                                        "\"start_review\"}]}"),
                  "%s", r.body);
    resp_free(&r);
    /* The reviewer has no update right on the type, but start_review names the role. */
    ck_assert_int_eq(move(REV, MR, id, "start_review", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"marketing_review\",\"version\":3}"), "%s",
                  r.body);
    resp_free(&r);
    /* The marketing review is an approval now: its outcome is the approver's decision, not a
     * transition anyone with the role may run. */
    ck_assert_int_eq(move(REV, MR, id, "reject", "{\"comment\":\"too vague\"}", &r), 409);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"approval\",\"path\":\"approvals[0]\"}"), "%s",
                  r.body);
    resp_free(&r);
    ck_assert_int_eq(req(REV, "GET", "/api/v1/approvals?assignee=me", NULL, &r), 200);
    cJSON *inbox = cJSON_Parse(r.body);
    resp_free(&r);
    cJSON *task = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(inbox, "items"), 0);
    ck_assert_ptr_nonnull(task);
    ck_assert_int_eq((long long)cJSON_GetObjectItemCaseSensitive(task, "record")->valuedouble, id);
    snprintf(path, sizeof(path), "/api/v1/approvals/%lld/reject",
             (long long)cJSON_GetObjectItemCaseSensitive(task, "id")->valuedouble);
    cJSON_Delete(inbox);
    ck_assert_int_eq(req(REV, "POST", path, "{\"comment\":\"too vague\"}", &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"task\":{\"status\":\"rejected\"},\"record\":{"
                                        "\"state\":\"rejected\",\"version\":5}}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(transition_events(MR, id), 3);
    /* The refusals wrote nothing. */
    snprintf(path, sizeof(path), "%s/%lld/history", MR, id);
    ck_assert_int_eq(req(A, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"items\":[{\"action\":\"create\"},{\"transition\":"
                                        "\"submit\"},{\"transition\":\"start_review\"},{"
                                        "\"action\":\"approval\",\"approval\":{\"decision\":"
                                        "\"reject\",\"comment\":\"too vague\"}},{"
                                        "\"transition\":\"reject\",\"comment\":\"too vague\","
                                        "\"by\":\"approval\"}]}"),
                  "%s", r.body);
    resp_free(&r);
    /* The meta API is for administrators. */
    ck_assert_int_eq(req(A, "GET", WF, NULL, NULL), 403);
    ck_assert_int_eq(req(REV, "GET", "/api/v1/meta/workflows", NULL, NULL), 403);
    ck_assert_int_eq(req(A, "DELETE", WF, NULL, NULL), 403);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * c. The meta API.
 */
static cJSON *get_def(char **text)
{
    struct resp r;
    ck_assert_int_eq(req(NULL, "GET", WF, NULL, &r), 200);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(j);
    if (text) *text = strdup(r.body);
    resp_free(&r);
    return j;
}

static cJSON *item_named(cJSON *arr, const char *name)
{
    cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return it;
    }
    return NULL;
}

static void remove_named(cJSON *arr, const char *name)
{
    int i = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            cJSON_DeleteItemFromArray(arr, i);
            return;
        }
        i++;
    }
}

static long put_def(const cJSON *j, struct resp *out)
{
    char *t = cJSON_PrintUnformatted(j);
    long st = req(NULL, "PUT", WF, t, out);
    free(t);
    return st;
}

START_TEST(meta_api_errors_in_flight_and_new_transition)
{
    char *orig = NULL;
    cJSON *def = get_def(&orig);
    cJSON *states = cJSON_GetObjectItemCaseSensitive(def, "states");
    cJSON *trs = cJSON_GetObjectItemCaseSensitive(def, "transitions");
    ck_assert_int_eq(cJSON_GetArraySize(trs), 7);
    ck_assert_ptr_nonnull(item_named(states, "rejected"));
    ck_assert_ptr_nonnull(item_named(trs, "reject"));
    struct resp r;

    /* Four kinds of error at once, each named by its path; nothing is stored. */
    cJSON *bad = cJSON_Duplicate(def, 1);
    cJSON *bt = cJSON_GetObjectItemCaseSensitive(bad, "transitions");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(bt, 0), "to", cJSON_CreateString("nowhere"));
    cJSON_AddStringToObject(cJSON_GetArrayItem(bt, 1), "condition", "no_such_field > 1");
    const char *from_final[] = {"approved"};
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(bt, 2), "from",
                              cJSON_CreateStringArray(from_final, 1));
    cJSON *bs = cJSON_GetObjectItemCaseSensitive(bad, "states");
    cJSON_AddBoolToObject(cJSON_GetArrayItem(bs, 1), "initial", 1);
    ck_assert_int_eq(put_def(bad, &r), 422);
    ck_assert_msg(problem_has_field(r.body, "transitions[0].to"), "%s", r.body);
    ck_assert_msg(problem_has_field(r.body, "transitions[1].condition"), "%s", r.body);
    ck_assert_msg(problem_has_field(r.body, "transitions[2].from[0]"), "%s", r.body);
    ck_assert_msg(problem_has_field(r.body, "states"), "%s", r.body);
    ck_assert_msg(strstr(r.body, "no_such_field") != NULL, "%s", r.body);
    resp_free(&r);
    cJSON_Delete(bad);
    char *now = NULL;
    cJSON_Delete(get_def(&now));
    ck_assert_str_eq(now, orig);
    free(now);
    /* Not JSON, and a name that differs from the URL. */
    ck_assert_int_eq(req(NULL, "PUT", WF, "{\"name\":", NULL), 400);
    bad = cJSON_Duplicate(def, 1);
    cJSON_ReplaceItemInObject(bad, "name", cJSON_CreateString("other"));
    ck_assert_int_eq(put_def(bad, &r), 422);
    ck_assert_msg(problem_has_field(r.body, "name"), "%s", r.body);
    resp_free(&r);
    cJSON_Delete(bad);
    /* A second workflow for the same type is refused. */
    bad = cJSON_Duplicate(def, 1);
    cJSON_ReplaceItemInObject(bad, "name", cJSON_CreateString("second"));
    char *t2 = cJSON_PrintUnformatted(bad);
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/workflows/second", t2, &r), 409);
    ck_assert_msg(strstr(r.body, "marketing_request") != NULL, "%s", r.body);
    free(t2);
    resp_free(&r);
    cJSON_Delete(bad);
    ck_assert_int_eq(req(NULL, "GET", "/api/v1/meta/workflows/second", NULL, NULL), 404);
    /* PUT of the same definition changes nothing and answers 200. */
    ck_assert_int_eq(put_def(def, &r), 200);
    resp_free(&r);

    /* A record in 'rejected': removing that state is refused with the count. */
    long long id = create_as(NULL, "to reject", "2026-09-01");
    ck_assert_int_eq(move(NULL, MR, id, "submit", NULL, NULL), 200);
    ck_assert_int_eq(move(NULL, MR, id, "start_review", NULL, NULL), 200);
    ck_assert_int_eq(move(NULL, MR, id, "reject", "{\"comment\":\"no\"}", NULL), 200);
    cJSON *shrunk = cJSON_Duplicate(def, 1);
    remove_named(cJSON_GetObjectItemCaseSensitive(shrunk, "states"), "rejected");
    remove_named(cJSON_GetObjectItemCaseSensitive(shrunk, "transitions"), "reject");
    cJSON_DeleteItemFromObject(shrunk, "approvals"); /* they name 'reject' as their outcome */
    cJSON_DeleteItemFromObject(shrunk, "slas");      /* their clocks stop in 'rejected' */
    ck_assert_int_eq(put_def(shrunk, &r), 409);
    ck_assert_msg(json_contains(r.body, "{\"code\":\"conflict\",\"rule\":\"in_flight\"}"), "%s",
                  r.body);
    ck_assert_msg(strstr(r.body, "rejected") && strstr(r.body, "1 marketing_request record"), "%s",
                  r.body);
    resp_free(&r);
    cJSON_Delete(shrunk);
    cJSON_Delete(get_def(&now));
    ck_assert_str_eq(now, orig);
    free(now);

    /* A new state and two new transitions: usable at once. 'hold' names no roles (whoever may
     * update the record), 'resume' is for reviewers. */
    cJSON *grown = cJSON_Duplicate(def, 1);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(grown, "states"),
                         cJSON_Parse("{\"name\":\"on_hold\",\"labels\":{\"en\":\"On hold\","
                                     "\"zh-CN\":\"暂缓\"},\"category\":\"waiting\"}"));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(grown, "transitions"),
                         cJSON_Parse("{\"name\":\"hold\",\"from\":[\"submitted\"],"
                                     "\"to\":\"on_hold\"}"));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(grown, "transitions"),
                         cJSON_Parse("{\"name\":\"resume\",\"from\":\"on_hold\","
                                     "\"to\":\"submitted\",\"roles\":[\"reviewer\"]}"));
    ck_assert_int_eq(put_def(grown, &r), 200);
    ck_assert_msg(strstr(r.body, "on_hold") != NULL, "%s", r.body);
    resp_free(&r);
    cJSON_Delete(grown);
    long long a1 = create_as(A, "acme hold", "2026-09-02");
    ck_assert_int_eq(move(A, MR, a1, "submit", NULL, NULL), 200);
    char path[160];
    snprintf(path, sizeof(path), "%s/%lld/transitions", MR, a1);
    ck_assert_int_eq(req(A, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"items\":[{\"name\":\"hold\","
                                        "\"to\":\"on_hold\"}]}"),
                  "%s", r.body);
    resp_free(&r);
    /* The reviewer may read but not update the record: 'hold' (no roles) is refused. */
    ck_assert_int_eq(move(REV, MR, a1, "hold", NULL, &r), 403);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"role\",\"path\":\"transitions[7].roles\"}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(B, MR, a1, "hold", NULL, NULL), 404);
    ck_assert_int_eq(move(A, MR, a1, "hold", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"on_hold\",\"version\":3}"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(A, MR, a1, "resume", NULL, NULL), 403);
    ck_assert_int_eq(move(REV, MR, a1, "resume", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"submitted\",\"version\":4}"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(req(NULL, "GET", "/api/v1/meta/workflows", NULL, &r), 200);
    ck_assert_msg(strstr(r.body, "\"resume\"") != NULL, "%s", r.body);
    resp_free(&r);

    /* Deleting the workflow: records keep their states, transitions answer 404 rule workflow. */
    ck_assert_int_eq(req(NULL, "DELETE", WF, NULL, NULL), 204);
    ck_assert_int_eq(req(NULL, "GET", WF, NULL, NULL), 404);
    ck_assert_int_eq(move(NULL, MR, a1, "hold", NULL, &r), 404);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"workflow\"}"), "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"rejected\"}"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(req(NULL, "DELETE", WF, NULL, NULL), 404);
    cJSON_Delete(def);
    free(orig);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * d. Set actions and conditions on a type made through the meta API.
 */
static const char *GRANT_TYPE =
    "{\"name\":\"grant\",\"initial_state\":\"new\",\"fields\":["
    "{\"name\":\"title\",\"type\":\"text\",\"required\":true},"
    "{\"name\":\"budget\",\"type\":\"decimal\",\"scale\":2,\"required\":true},"
    "{\"name\":\"priority\",\"type\":\"enum\",\"options\":[\"low\",\"high\"]},"
    "{\"name\":\"decided_at\",\"type\":\"datetime\"},"
    "{\"name\":\"decided_by\",\"type\":\"text\"},"
    "{\"name\":\"approved_budget\",\"type\":\"decimal\",\"scale\":2}]}";

static const char *GRANT_FLOW =
    "{\"name\":\"grant_flow\",\"type\":\"grant\",\"states\":["
    "{\"name\":\"new\",\"initial\":true},{\"name\":\"approved\",\"final\":true},"
    "{\"name\":\"board\",\"category\":\"waiting\"}],"
    "\"transitions\":["
    "{\"name\":\"approve\",\"from\":[\"new\"],\"to\":\"approved\",\"actions\":["
    "{\"set\":\"decided_at\",\"var\":\"now\"},{\"set\":\"decided_by\",\"var\":\"user.id\"},"
    "{\"set\":\"approved_budget\",\"copy\":\"budget\"},{\"set\":\"priority\",\"value\":\"high\"}]},"
    "{\"name\":\"escalate\",\"from\":\"new\",\"to\":\"board\",\"condition\":\"budget > 50000\"}]}";

START_TEST(set_actions_and_conditions)
{
    const char *GR = "/api/v1/records/grant";
    struct resp r;
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/types/grant", GRANT_TYPE, &r), 201);
    resp_free(&r);
    /* Actions that cannot fit are refused when the definition is saved. */
    char *badflow = strdup(GRANT_FLOW);
    char *p = strstr(badflow, "\"value\":\"high\"");
    memcpy(p, "\"value\":\"hugh\"", 14);
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/workflows/grant_flow", badflow, &r), 422);
    ck_assert_msg(problem_has_field(r.body, "transitions[0].actions[3].value"), "%s", r.body);
    resp_free(&r);
    p = strstr(badflow, "{\"set\":\"decided_by\",\"var\":\"user.id\"}");
    memcpy(p, "{\"set\":\"decided_by\",\"var\":\"user.xx\"}", 36);
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/workflows/grant_flow", badflow, &r), 422);
    ck_assert_msg(problem_has_field(r.body, "transitions[0].actions[1].var"), "%s", r.body);
    resp_free(&r);
    free(badflow);
    ck_assert_int_eq(req(NULL, "GET", "/api/v1/meta/workflows/grant_flow", NULL, NULL), 404);
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/workflows/grant_flow", GRANT_FLOW, &r), 201);
    ck_assert_msg(strstr(r.body, "\"grant_flow\"") != NULL, "%s", r.body);
    resp_free(&r);

    /* approve sets all four fields, in one history event listing them. */
    ck_assert_int_eq(req(NULL, "POST", GR, "{\"title\":\"g1\",\"budget\":\"1234.5\"}", &r), 201);
    long long g1 = json_int(r.body, "id", 0);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"new\",\"decided_at\":null,\"decided_by\":"
                                        "null,\"approved_budget\":null,\"priority\":null}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(NULL, GR, g1, "approve", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"approved\",\"version\":2,\"decided_by\":"
                                        "\"admin\",\"approved_budget\":\"1234.50\",\"priority\":"
                                        "\"high\",\"budget\":\"1234.50\"}"),
                  "%s", r.body);
    cJSON *rec = cJSON_Parse(r.body);
    const cJSON *da = cJSON_GetObjectItemCaseSensitive(rec, "decided_at");
    ck_assert_msg(cJSON_IsString(da) && strlen(da->valuestring) >= 20 &&
                      strncmp(da->valuestring, "20", 2) == 0 && strchr(da->valuestring, 'T'),
                  "%s", r.body);
    cJSON_Delete(rec);
    resp_free(&r);
    char path[160];
    snprintf(path, sizeof(path), "%s/%lld/history", GR, g1);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"items\":[{\"action\":\"create\"},{\"action\":"
                                        "\"transition\",\"transition\":\"approve\",\"from\":"
                                        "\"new\",\"to\":\"approved\",\"changes\":{"
                                        "\"decided_by\":{\"from\":null,\"to\":\"admin\"},"
                                        "\"approved_budget\":{\"from\":null,\"to\":\"1234.50\"},"
                                        "\"priority\":{\"from\":null,\"to\":\"high\"}}}]}"),
                  "%s", r.body);
    cJSON *h = cJSON_Parse(r.body);
    const cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(h, "items"), 1);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(ev, "changes");
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(ch, "decided_at") != NULL, "%s", r.body);
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(ch, "budget") == NULL, "%s", r.body);
    cJSON_Delete(h);
    resp_free(&r);

    /* The condition: refused for a small budget, allowed for a large one. */
    ck_assert_int_eq(req(NULL, "POST", GR, "{\"title\":\"small\",\"budget\":\"50000\"}", &r), 201);
    long long small = json_int(r.body, "id", 0);
    resp_free(&r);
    ck_assert_int_eq(req(NULL, "POST", GR, "{\"title\":\"large\",\"budget\":\"50000.01\"}", &r),
                     201);
    long long large = json_int(r.body, "id", 0);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld/transitions", GR, small);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"items\":[{\"name\":\"approve\"}]}") &&
                      strstr(r.body, "escalate") == NULL,
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(NULL, GR, small, "escalate", NULL, &r), 422);
    ck_assert_msg(json_contains(r.body, "{\"rule\":\"condition\",\"path\":"
                                        "\"transitions[1].condition\"}"),
                  "%s", r.body);
    ck_assert_msg(strstr(r.body, "budget > 50000") != NULL, "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld", GR, small);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"new\",\"version\":1}"), "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld/transitions", GR, large);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"items\":[{\"name\":\"approve\"},{\"name\":"
                                        "\"escalate\",\"to\":\"board\"}]}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(move(NULL, GR, large, "escalate", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"board\",\"version\":2,\"decided_by\":null}"),
                  "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(transition_events(GR, small), 0);
    ck_assert_int_eq(transition_events(GR, large), 1);

    /* A type change that breaks the workflow (its condition names budget) is refused. */
    const char *no_budget =
        "{\"name\":\"grant\",\"initial_state\":\"new\",\"fields\":["
        "{\"name\":\"title\",\"type\":\"text\",\"required\":true},"
        "{\"name\":\"priority\",\"type\":\"enum\",\"options\":[\"low\",\"high\"]},"
        "{\"name\":\"decided_at\",\"type\":\"datetime\"},"
        "{\"name\":\"decided_by\",\"type\":\"text\"},"
        "{\"name\":\"approved_budget\",\"type\":\"decimal\",\"scale\":2}]}";
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/types/grant", no_budget, &r), 409);
    ck_assert_msg(strstr(r.body, "grant_flow") &&
                      problem_has_field(r.body, "transitions[0].actions[2].copy"),
                  "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/%lld", GR, large);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"budget\":\"50000.01\"}"), "%s", r.body);
    resp_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * e. Idempotency-Key on a transition.
 */
START_TEST(idempotency_key_on_a_transition)
{
    long long id = create_as(A, "idem", "2026-10-01");
    char path[160];
    snprintf(path, sizeof(path), "%s/%lld/transitions/submit", MR, id);
    const char *body = "{\"comment\":\"please\"}";
    struct resp r1, r2, r3;
    ck_assert_int_eq(req2(A, "Idempotency-Key: wf-key-1", "POST", path, body, &r1), 200);
    ck_assert_msg(json_contains(r1.body, "{\"state\":\"submitted\",\"version\":2}"), "%s", r1.body);
    ck_assert_int_eq(req2(A, "Idempotency-Key: wf-key-1", "POST", path, body, &r2), 200);
    ck_assert_str_eq(r1.body, r2.body);
    ck_assert_int_eq(transition_events(MR, id), 1);
    /* The same key with another body is refused; another key runs it again: 409 state. */
    ck_assert_int_eq(
        req2(A, "Idempotency-Key: wf-key-1", "POST", path, "{\"comment\":\"other\"}", &r3), 422);
    ck_assert_msg(json_contains(r3.body, "{\"field\":\"Idempotency-Key\"}"), "%s", r3.body);
    resp_free(&r3);
    ck_assert_int_eq(req2(A, "Idempotency-Key: wf-key-2", "POST", path, body, &r3), 409);
    ck_assert_msg(json_contains(r3.body, "{\"rule\":\"state\"}"), "%s", r3.body);
    resp_free(&r3);
    ck_assert_int_eq(transition_events(MR, id), 1);
    /* Keys belong to their user: bob's same key does not replay ann's answer. */
    ck_assert_int_eq(req2(B, "Idempotency-Key: wf-key-1", "POST", path, body, &r3), 404);
    resp_free(&r3);
    /* A malformed key (129 characters; an empty one) is refused before anything runs. */
    char longkey[160];
    snprintf(longkey, sizeof(longkey), "Idempotency-Key: %0129d", 7);
    ck_assert_int_eq(req2(A, longkey, "POST", path, body, &r3), 400);
    ck_assert_msg(json_contains(r3.body, "{\"field\":\"Idempotency-Key\"}"), "%s", r3.body);
    resp_free(&r3);
    ck_assert_int_eq(req2(A, "Idempotency-Key;", "POST", path, body, &r3), 400);
    resp_free(&r3);
    snprintf(path, sizeof(path), "%s/%lld/history", MR, id);
    ck_assert_int_eq(req(NULL, "GET", path, NULL, &r3), 200);
    ck_assert_msg(json_contains(r3.body, "{\"items\":[{\"action\":\"create\"},{\"action\":"
                                         "\"transition\",\"transition\":\"submit\",\"comment\":"
                                         "\"please\"}]}"),
                  "%s", r3.body);
    ck_assert_int_eq(count_sub(r3.body, "\"seq\":"), 2);
    resp_free(&r3);
    resp_free(&r1);
    resp_free(&r2);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Regression tests for bugs found while writing this suite (fixed in the runtime).
 */
START_TEST(set_action_cannot_empty_a_required_field)
{
    /* x is required; 'go' copies y (null here) into x. The action breaks the field's rules, so the
     * transition must be refused (422, rule "action") and the record must keep x. */
    const char *type = "{\"name\":\"act\",\"initial_state\":\"a\",\"fields\":["
                       "{\"name\":\"x\",\"type\":\"text\",\"required\":true},"
                       "{\"name\":\"y\",\"type\":\"text\"}]}";
    const char *flow = "{\"name\":\"act_flow\",\"type\":\"act\",\"states\":["
                       "{\"name\":\"a\",\"initial\":true},{\"name\":\"b\"}],\"transitions\":["
                       "{\"name\":\"go\",\"from\":\"a\",\"to\":\"b\",\"actions\":["
                       "{\"set\":\"x\",\"copy\":\"y\"}]}]}";
    struct resp r;
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/types/act", type, NULL), 201);
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/workflows/act_flow", flow, NULL), 201);
    ck_assert_int_eq(req(NULL, "POST", "/api/v1/records/act", "{\"x\":\"keep\"}", NULL), 201);
    long st = req(NULL, "POST", "/api/v1/records/act/1/transitions/go?dry_run=1", NULL, &r);
    /* Regression: a dry run once answered 200 although the action empties x. */
    ck_assert_msg(st == 422 && json_contains(r.body, "{\"rule\":\"action\"}"),
                  "regression: a set action that empties a required field passes the dry run: "
                  "%ld %s",
                  st, r.body);
    resp_free(&r);
    st = req(NULL, "POST", "/api/v1/records/act/1/transitions/go", NULL, &r);
    /* Regression: the transition once answered 200 with "x":null and stored it. */
    ck_assert_msg(st == 422 && json_contains(r.body, "{\"rule\":\"action\"}"),
                  "regression: a set action empties required field x: %ld %s", st, r.body);
    resp_free(&r);
    ck_assert_int_eq(req(NULL, "GET", "/api/v1/records/act/1", NULL, &r), 200);
    ck_assert_msg(json_contains(r.body, "{\"state\":\"a\",\"version\":1,\"x\":\"keep\"}"), "%s",
                  r.body);
    resp_free(&r);
}
END_TEST

START_TEST(workflow_on_a_type_without_initial_state)
{
    /* The type names no initial_state; the workflow's initial state is 'open'. Either the
     * workflow is refused when saved, or new records start in 'open' so that it can run. */
    const char *type = "{\"name\":\"noinit\",\"fields\":[{\"name\":\"t\",\"type\":\"text\"}]}";
    const char *flow = "{\"name\":\"noinit_flow\",\"type\":\"noinit\",\"states\":["
                       "{\"name\":\"open\",\"initial\":true},{\"name\":\"done\",\"final\":true}],"
                       "\"transitions\":[{\"name\":\"finish\",\"from\":\"open\",\"to\":\"done\"}]}";
    struct resp r;
    ck_assert_int_eq(req(NULL, "PUT", "/api/v1/meta/types/noinit", type, NULL), 201);
    long st = req(NULL, "PUT", "/api/v1/meta/workflows/noinit_flow", flow, &r);
    resp_free(&r);
    if (st == 422 || st == 409) return; /* refused when saved: consistent */
    ck_assert_int_eq(st, 201);
    ck_assert_int_eq(req(NULL, "POST", "/api/v1/records/noinit", "{\"t\":\"a\"}", &r), 201);
    /* Regression: the workflow was once accepted but the record is created with "state":null, and
     * every transition then answers 409 "not possible in state ''": the workflow can never run. */
    ck_assert_msg(json_contains(r.body, "{\"state\":\"open\"}"),
                  "regression: workflow saved for a type without initial_state, but records "
                  "start outside it: %s",
                  r.body);
    resp_free(&r);
    ck_assert_int_eq(req(NULL, "POST", "/api/v1/records/noinit/1/transitions/finish", NULL, NULL),
                     200);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_workflow");
    TCase *tc = tcase_create("workflow");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, concurrent_submits_one_wins_per_record);
    tcase_add_test(tc, roles_partner_reviewer_and_other_org);
    tcase_add_test(tc, meta_api_errors_in_flight_and_new_transition);
    tcase_add_test(tc, set_actions_and_conditions);
    tcase_add_test(tc, idempotency_key_on_a_transition);
    suite_add_tcase(s, tc);
    /* Known runtime bugs (reported, not fixed here): these fail until the runtime is fixed. */
    TCase *bugs = tcase_create("known_runtime_bugs");
    tcase_add_unchecked_fixture(bugs, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(bugs, setup, teardown);
    tcase_set_timeout(bugs, 120);
    tcase_add_test(bugs, set_action_cannot_empty_a_required_field);
    tcase_add_test(bugs, workflow_on_a_type_without_initial_state);
    suite_add_tcase(s, bugs);
    return run_suite(s);
}
