/* Authorisation through every path: two partner orgs and a reviewer on the sample app, a type with
 * a finance-only field; IDOR attempts across orgs answer 404; hidden fields leave get, list,
 * filters, sorts and history; counts count only visible rows; files follow their records. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct srv S;
static char A[128], B[128], REV[128], FIN[128], GST[128]; /* Authorization headers */
static const char *MR = "/api/v1/records/marketing_request";

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    cli_run3(&S, "org", "add", "acme");
    cli_run3(&S, "org", "add", "globex");
    cli_add_user(&S, "ann", "partner", "acme", NULL, A, sizeof(A));
    cli_add_user(&S, "bob", "partner", "globex", NULL, B, sizeof(B));
    cli_add_user(&S, "rita", "reviewer", NULL, NULL, REV, sizeof(REV));
    cli_add_user(&S, "fay", "finance", NULL, NULL, FIN, sizeof(FIN));
    cli_add_user(&S, "gus", "guest", NULL, NULL, GST, sizeof(GST));
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_teardown(&S);
}

/* One request as hdr (every caller names one). */
static long req(const char *hdr, const char *method, const char *path, const char *body,
                struct resp *out)
{
    return api_request(&S, hdr, NULL, method, path, body, out);
}

static long long create_as(const char *hdr, const char *title)
{
    return api_create_request(&S, hdr, title);
}

START_TEST(partners_see_only_their_org_and_guessing_ids_finds_nothing)
{
    long long a1 = create_as(A, "acme one"), a2 = create_as(A, "acme two");
    long long b1 = create_as(B, "globex one");
    char path[160];
    struct resp r;
    /* ann's listing and count: only acme's two. */
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/marketing_request?count=exact", NULL, &r), 200);
    ck_assert_int_eq(json_int(r.body, "count", -1), 2);
    ck_assert(strstr(r.body, "globex one") == NULL);
    resp_free(&r);
    ck_assert_int_eq(
        req(A, "GET",
            "/api/v1/records/marketing_request?filter=region%20%3D%20%22east%22&count=exact", NULL,
            &r),
        200);
    ck_assert_int_eq(json_int(r.body, "count", -1), 2);
    resp_free(&r);
    /* IDOR: bob guesses acme's ids through every record path: all 404, nothing changes. */
    snprintf(path, sizeof(path), "%s/%lld", MR, a1);
    ck_assert_int_eq(req(B, "GET", path, NULL, NULL), 404);
    ck_assert_int_eq(req(B, "PATCH", path, "{\"title\":\"hijack\"}", NULL), 404);
    ck_assert_int_eq(req(B, "DELETE", path, NULL, NULL), 404);
    snprintf(path, sizeof(path), "%s/%lld/history", MR, a2);
    ck_assert_int_eq(req(B, "GET", path, NULL, NULL), 404);
    snprintf(path, sizeof(path), "%s/%lld", MR, a1);
    ck_assert_int_eq(req(A, "GET", path, NULL, &r), 200);
    ck_assert(json_contains(r.body, "{\"title\":\"acme one\",\"org\":\"acme\",\"version\":1}"));
    resp_free(&r);
    /* The reviewer reads everything but may not write. */
    ck_assert_int_eq(req(REV, "GET", "/api/v1/records/marketing_request?count=exact", NULL, &r),
                     200);
    ck_assert_int_eq(json_int(r.body, "count", -1), 3);
    resp_free(&r);
    ck_assert_int_eq(req(REV, "PATCH", path, "{\"title\":\"x\"}", NULL), 403);
    ck_assert_int_eq(
        req(REV, "POST", MR, "{\"title\":\"x\",\"partner\":\"P\",\"budget\":\"1\"}", NULL), 403);
    /* Partners may not delete, even in their org. */
    ck_assert_int_eq(req(A, "DELETE", path, NULL, NULL), 403);
    /* A role with no rights on the type does not see it at all. */
    ck_assert_int_eq(req(GST, "GET", MR, NULL, NULL), 404);
    snprintf(path, sizeof(path), "%s/%lld", MR, b1);
    ck_assert_int_eq(req(B, "PATCH", path, "{\"title\":\"globex renamed\"}", NULL), 200);
    /* Nobody raises their own rights through a record: org and owner are not writable. */
    ck_assert_int_eq(req(B, "PATCH", path, "{\"org\":\"acme\"}", &r), 422);
    ck_assert(
        json_contains(r.body, "{\"errors\":[{\"field\":\"org\",\"code\":\"unknown_field\"}]}"));
    resp_free(&r);
    ck_assert_int_eq(req(B, "PATCH", path, "{\"owner\":\"ann\"}", NULL), 422);
    /* Refusals are audited. */
    for (int i = 0; i < 50; i++) {
        req(S.auth, "GET", "/api/v1/audit?limit=50", NULL, &r);
        if (strstr(r.body, "\"actor\":\"rita\",\"action\":\"forbidden\"")) break;
        resp_free(&r);
        usleep(20000);
    }
    ck_assert_msg(strstr(r.body, "\"actor\":\"rita\",\"action\":\"forbidden\"") != NULL, "%s",
                  r.body);
    resp_free(&r);
}
END_TEST

/* IDOR beyond the record routes: another org's partner guessing ids through the workflow
 * (transitions offered and run), the record's approvals and SLA, the approval task itself and
 * its decisions, reports and the CSV export: 404 or nothing counted, and nothing changes. */
START_TEST(guessing_ids_through_workflow_approvals_reports_and_exports_finds_nothing)
{
    long long a1 = create_as(A, "acme plan");
    long long b1 = create_as(B, "globex plan");
    char path[200];
    struct resp r;
    snprintf(path, sizeof(path), "%s/%lld/transitions/submit", MR, a1);
    ck_assert_int_eq(req(A, "POST", path, "{\"fields\":{\"start_date\":\"2027-03-01\"}}", NULL),
                     200);
    snprintf(path, sizeof(path), "%s/%lld/transitions/start_review", MR, a1);
    ck_assert_int_eq(req(REV, "POST", path, "{}", NULL), 200);
    ck_assert_int_eq(req(REV, "GET", "/api/v1/approvals?assignee=me&status=pending", NULL, &r),
                     200);
    cJSON *j = resp_json(&r);
    const cJSON *it = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "items"), 0);
    long long task = obj_int(it, "id");
    ck_assert_int_eq(obj_int(it, "record"), a1);
    cJSON_Delete(j);
    resp_free(&r);

    struct snapshot snap = {0};
    snapshot_add(&S, &snap, "acme's request", NULL, "%s/%lld", MR, a1);
    snapshot_add(&S, &snap, "its history", NULL, "%s/%lld/history", MR, a1);
    snapshot_add(&S, &snap, "its approvals", NULL, "%s/%lld/approvals", MR, a1);
    snapshot_add(&S, &snap, "rita's tasks", REV, "/api/v1/approvals?assignee=me&status=pending");
    static const struct {
        const char *method, *fmt, *body;
    } tries[] = {
        {"GET", "%s/%lld/transitions", NULL},
        {"POST", "%s/%lld/transitions/recall", "{}"},
        {"POST", "%s/%lld/transitions/submit", "{}"},
        {"GET", "%s/%lld/approvals", NULL},
        {"GET", "%s/%lld/sla", NULL},
    };
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        snprintf(path, sizeof(path), tries[i].fmt, MR, a1);
        long st = req(B, tries[i].method, path, tries[i].body, &r);
        ck_assert_msg(st == 404, "bob %s %s: %ld %s", tries[i].method, path, st, r.body);
        resp_free(&r);
    }
    static const char *const decisions[] = {"approve", "reject", "return", "delegate"};
    snprintf(path, sizeof(path), "/api/v1/approvals/%lld", task);
    ck_assert_int_eq(req(B, "GET", path, NULL, NULL), 404);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/api/v1/approvals/%lld/%s", task, decisions[i]);
        long st = req(B, "POST", path, i == 3 ? "{\"to\":\"bob\"}" : "{\"comment\":\"guess\"}", &r);
        ck_assert_msg(st == 404, "bob %s: %ld %s", path, st, r.body);
        resp_free(&r);
    }
    snapshot_same(&S, &snap, "bob's guesses");

    /* Reports and exports count and show only globex's. */
    ck_assert_int_eq(req(B, "GET", "/api/v1/reports/requests_by_state", NULL, &r), 200);
    ck_assert_msg(strstr(r.body, "\"rows\":[[\"draft\",1]]"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(req(B, "GET", "/api/v1/records/marketing_request?format=csv", NULL, &r), 200);
    ck_assert_msg(strstr(r.body, "globex plan") && !strstr(r.body, "acme plan"), "%s", r.body);
    resp_free(&r);
    (void)b1;
}
END_TEST

START_TEST(hidden_fields_leave_every_path)
{
    /* A type with a finance-only field: partners create in their org but never see "approved". */
    const char *def =
        "{\"name\":\"claim\",\"fields\":[{\"name\":\"amount\",\"type\":\"decimal\"},"
        "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"approved\",\"type\":\"decimal\"},"
        "{\"name\":\"receipt\",\"type\":\"attachment\"}],"
        "\"permissions\":{\"partner\":{\"create\":\"org\",\"read\":\"org\",\"update\":\"org\","
        "\"fields\":{\"approved\":\"hidden\"}},\"finance\":{\"read\":\"all\",\"update\":\"all\","
        "\"fields\":{\"amount\":\"read\",\"note\":\"read\",\"receipt\":\"read\"}}}}";
    struct resp r;
    ck_assert_int_eq(req(S.auth, "PUT", "/api/v1/meta/types/claim", def, &r), 201);
    resp_free(&r);
    /* ann uploads a receipt and files a claim holding it. */
    const char *hu[] = {A, "Content-Type: text/plain", NULL};
    http(&S, "POST", "/api/v1/files", "receipt 42", 10, hu, &r);
    ck_assert_int_eq(r.status, 201);
    char sha[65];
    const char *sp = strstr(r.body, "\"id\":\"");
    snprintf(sha, sizeof(sha), "%.64s", sp + 6);
    resp_free(&r);
    char body[256];
    snprintf(body, sizeof(body), "{\"amount\":\"120.50\",\"note\":\"booth\",\"receipt\":\"%s\"}",
             sha);
    ck_assert_int_eq(req(A, "POST", "/api/v1/records/claim", body, &r), 201);
    ck_assert(strstr(r.body, "approved") == NULL);
    resp_free(&r);
    /* Setting the hidden field is refused as an unknown field; finance may set it. */
    ck_assert_int_eq(req(A, "PATCH", "/api/v1/records/claim/1", "{\"approved\":\"100\"}", &r), 422);
    ck_assert(json_contains(r.body,
                            "{\"errors\":[{\"field\":\"approved\",\"code\":\"unknown_field\"}]}"));
    resp_free(&r);
    ck_assert_int_eq(req(FIN, "PATCH", "/api/v1/records/claim/1", "{\"note\":\"x\"}", NULL), 403);
    ck_assert_int_eq(req(FIN, "PATCH", "/api/v1/records/claim/1", "{\"approved\":\"100\"}", &r),
                     200);
    ck_assert(json_contains(r.body, "{\"approved\":\"100.00\"}"));
    resp_free(&r);
    /* ann: absent from get, list and history; filtering and sorting on it are refused. */
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/claim/1", NULL, &r), 200);
    ck_assert(strstr(r.body, "approved") == NULL && strstr(r.body, "120.50") != NULL);
    resp_free(&r);
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/claim", NULL, &r), 200);
    ck_assert(strstr(r.body, "approved") == NULL);
    resp_free(&r);
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/claim/1/history", NULL, &r), 200);
    ck_assert_msg(strstr(r.body, "approved") == NULL && strstr(r.body, "\"amount\"") != NULL, "%s",
                  r.body);
    resp_free(&r);
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/claim?filter=approved%20%3E%200", NULL, &r),
                     403);
    ck_assert(json_contains(r.body, "{\"code\":\"forbidden\",\"field\":\"approved\"}"));
    resp_free(&r);
    ck_assert_int_eq(req(A, "GET", "/api/v1/records/claim?fields=approved", NULL, NULL), 400);
    /* Finance sees it in the history. */
    ck_assert_int_eq(req(FIN, "GET", "/api/v1/records/claim/1/history", NULL, &r), 200);
    ck_assert(strstr(r.body, "\"approved\"") != NULL);
    resp_free(&r);
    /* Files: the uploader and readers of the record get it; another org does not. */
    char fpath[128];
    snprintf(fpath, sizeof(fpath), "/api/v1/files/%s", sha);
    ck_assert_int_eq(req(A, "GET", fpath, NULL, NULL), 200);
    ck_assert_int_eq(req(FIN, "GET", fpath, NULL, NULL), 200);
    ck_assert_int_eq(req(B, "GET", fpath, NULL, NULL), 404);
    ck_assert_int_eq(req(REV, "GET", fpath, NULL, NULL), 404); /* no rights on claims */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_permissions");
    TCase *tc = tcase_create("permissions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, partners_see_only_their_org_and_guessing_ids_finds_nothing);
    tcase_add_test(tc, hidden_fields_leave_every_path);
    tcase_add_test(tc, guessing_ids_through_workflow_approvals_reports_and_exports_finds_nothing);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
