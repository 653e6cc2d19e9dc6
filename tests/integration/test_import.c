/* `trellis import`: JSON lines through the same create path as the API, committed in batches;
 * the first bad line stops the import, naming the line and the field, and its batch is not
 * stored. */
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
}

static void teardown(void)
{
    char *out = NULL;
    int rc = store_check(S.dir, &out);
    if (rc) fprintf(stderr, "check: %s\n", out);
    free(out);
    srv_cleanup(&S);
    ck_assert_int_eq(rc, 0);
}

static void write_lines(const char *path, int n, int bad_at)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 1; i <= n; i++) {
        if (i == bad_at)
            fprintf(f, "{\"title\":\"bad %d\",\"partner\":\"P\",\"budget\":\"1.234\"}\n", i);
        else
            fprintf(f,
                    "{\"title\":\"导入 "
                    "%d\",\"partner\":\"P%d\",\"region\":\"east\",\"budget\":\"%d.50\"}\n",
                    i, i % 7, i);
        if (i % 5 == 0) fprintf(f, "\n"); /* blank lines are skipped */
    }
    fclose(f);
}

static long count_now(void)
{
    ck_assert_int_eq(srv_start(&S), 0);
    long n = count_records(&S, "marketing_request");
    srv_stop(&S);
    return n;
}

START_TEST(import_creates_every_line)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/in.jsonl", S.dir);
    write_lines(path, 250, 0);
    char *out = NULL;
    const char *argv[] = {"import", "marketing_request", path,  "--data",
                          S.dir,    "--batch",           "100", NULL};
    int rc = run_trellis(argv, &out, 120);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "imported 250 marketing_request") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(count_now(), 250);
}
END_TEST

START_TEST(import_stops_at_the_first_bad_line)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/in.jsonl", S.dir);
    /* Line numbers count blank lines: item 150 is on line 150 + 29 blank lines = 179. */
    write_lines(path, 250, 150);
    char *out = NULL;
    const char *argv[] = {"import", "marketing_request", path,  "--data",
                          S.dir,    "--batch",           "100", NULL};
    int rc = run_trellis(argv, &out, 120);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "line 179") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "budget") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "imported 100 record(s)") != NULL, "%s", out);
    free(out);
    /* The first batch (items 1-100) is stored; nothing of the failing batch. */
    ck_assert_int_eq(count_now(), 100);
}
END_TEST

START_TEST(import_refuses_an_unknown_type_and_bad_json)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/in.jsonl", S.dir);
    FILE *f = fopen(path, "w");
    fputs("{\"title\":\"x\",\"partner\":\"p\",\"budget\":1}\n{\"title\": 01}\n", f);
    fclose(f);
    char *out = NULL;
    const char *a1[] = {"import", "no_such_type", path, "--data", S.dir, NULL};
    ck_assert_int_eq(run_trellis(a1, &out, 60), 1);
    ck_assert_msg(strstr(out, "no_such_type") != NULL, "%s", out);
    free(out);
    const char *a2[] = {"import", "marketing_request", path, "--data", S.dir, NULL};
    ck_assert_int_eq(run_trellis(a2, &out, 60), 1);
    ck_assert_msg(strstr(out, "line 2") && strstr(out, "leading zero"), "%s", out);
    free(out);
    ck_assert_int_eq(count_now(), 0);
    const char *a3[] = {"import", "--help", NULL};
    ck_assert_int_eq(run_trellis(a3, &out, 60), 0);
    ck_assert(strstr(out, "usage: trellis import") != NULL);
    free(out);
}
END_TEST

/* --org and --owner: a partner's records moved from another system belong to the partner (their
 * org scope sees them, counters per org included); an org or user that does not exist is
 * refused before anything is stored. */
START_TEST(import_into_a_partner_org)
{
    cli_run3(&S, "org", "add", "acme");
    char pat[128];
    cli_add_user(&S, "pat", "partner", "acme", NULL, pat, sizeof(pat));
    char path[300];
    snprintf(path, sizeof(path), "%s/in.jsonl", S.dir);
    write_lines(path, 30, 0);
    char *out = NULL;
    const char *bad_org[] = {
        "import", "marketing_request", path, "--data", S.dir, "--org", "nosuch", NULL};
    ck_assert_int_eq(run_trellis(bad_org, &out, 60), 1);
    ck_assert_msg(strstr(out, "no org 'nosuch'") != NULL, "%s", out);
    free(out);
    const char *bad_owner[] = {"import", "marketing_request", path,     "--data", S.dir, "--org",
                               "acme",   "--owner",           "nobody", NULL};
    ck_assert_int_eq(run_trellis(bad_owner, &out, 60), 1);
    ck_assert_msg(strstr(out, "no user 'nobody'") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(count_now(), 0);

    const char *ok[] = {"import", "marketing_request", path,  "--data", S.dir, "--org",
                        "acme",   "--owner",           "pat", NULL};
    ck_assert_int_eq(run_trellis(ok, &out, 60), 0);
    free(out);
    write_lines(path, 20, 0);
    const char *hq[] = {"import", "marketing_request", path, "--data", S.dir, NULL};
    ck_assert_int_eq(run_trellis(hq, &out, 60), 0);
    free(out);

    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 50);
    cJSON *items = NULL;
    cJSON *page = api_get_items(&S, pat, &items, "/api/v1/records/marketing_request?limit=100");
    ck_assert_int_eq(cJSON_GetArraySize(items), 30);
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        ck_assert_str_eq(obj_str(it, "org"), "acme");
        ck_assert_str_eq(obj_str(it, "owner"), "pat");
    }
    cJSON_Delete(page);
    /* The by-state count as pat comes from acme's counters: 30 drafts. */
    cJSON *rep = api_get_json(&S, pat, "/api/v1/reports/requests_by_state");
    char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(rep, "rows"));
    ck_assert_msg(strstr(txt, "[\"draft\",30") != NULL, "%s", txt);
    free(txt);
    cJSON_Delete(rep);
    srv_stop(&S);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_import");
    TCase *tc = tcase_create("import");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, import_creates_every_line);
    tcase_add_test(tc, import_stops_at_the_first_bad_line);
    tcase_add_test(tc, import_refuses_an_unknown_type_and_bad_json);
    tcase_add_test(tc, import_into_a_partner_org);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
