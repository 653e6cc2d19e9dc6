/* Records API end to end against the real server: CRUD, ETags, history, listing, cursors,
 * idempotency (also across a restart), concurrent If-Match writers, openapi, health, metrics. */
#include "harness.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_teardown(&S);
}

static const char *MR = "/api/v1/records/marketing_request";

static long long create(const char *body)
{
    struct resp r;
    ck_assert_int_eq(http_json(&S, "POST", MR, body, &r), 0);
    ck_assert_msg(r.status == 201, "create %ld: %s", r.status, r.body);
    long long id = json_int(r.body, "id", -1);
    resp_free(&r);
    return id;
}

START_TEST(crud_round_trip)
{
    long long id = create("{\"title\":\"春季促销 Spring\",\"partner\":\"Acme\",\"region\":\"east\","
                          "\"budget\":\"1200.5\",\"start_date\":\"2026-03-01\"}");
    ck_assert_int_gt(id, 0);
    char path[128], etag[64];
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    struct resp r;
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_contains(r.body, "{\"title\":\"春季促销 Spring\",\"budget\":\"1200.50\","
                                    "\"region\":\"east\",\"state\":\"draft\",\"version\":1}"));
    ck_assert_str_eq(resp_header(&r, "ETag", etag, sizeof(etag)), "\"1\"");
    resp_free(&r);

    /* PATCH with the right version, then a stale one. */
    const char *h1[] = {"Content-Type: application/json", "If-Match: \"1\"", NULL};
    http(&S, "PATCH", path, "{\"budget\":99.9,\"start_date\":null}", 33, h1, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert(json_contains(r.body, "{\"budget\":\"99.90\",\"start_date\":null,\"version\":2}"));
    resp_free(&r);
    http(&S, "PATCH", path, "{\"budget\":1}", 12, h1, &r);
    ck_assert_int_eq(r.status, 412);
    ck_assert(json_contains(r.body, "{\"code\":\"precondition_failed\"}"));
    resp_free(&r);

    /* History: two events, in order, with the diffs. */
    char hpath[160];
    snprintf(hpath, sizeof(hpath), "%s/history", path);
    http(&S, "GET", hpath, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_contains(r.body, "{\"items\":[{\"seq\":1,\"action\":\"create\"},{\"seq\":2,"
                                    "\"action\":\"update\",\"changes\":{\"budget\":{\"from\":"
                                    "\"1200.50\",\"to\":\"99.90\"}}}]}"));
    resp_free(&r);

    /* Delete; the record is gone, its history stays. */
    http(&S, "DELETE", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    resp_free(&r);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    http(&S, "GET", hpath, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_contains(
        r.body, "{\"items\":[{\"seq\":1},{\"seq\":2},{\"seq\":3,\"action\":\"delete\"}]}"));
    resp_free(&r);
}
END_TEST

START_TEST(listing_filter_sort_cursor)
{
    static const char *regions[] = {"north", "south", "east", "west"};
    for (int i = 0; i < 40; i++) {
        char body[256];
        snprintf(
            body, sizeof(body),
            "{\"title\":\"Req %d\",\"partner\":\"P%d\",\"region\":\"%s\",\"budget\":\"%d.25\"}", i,
            i % 3, regions[i % 4], i * 100);
        create(body);
    }
    /* east: i = 2, 6, ..., 38 -> 10 records; newest first, pages of 3. */
    char path[512];
    long long seen[16];
    int n = 0;
    char cursor[256] = "";
    for (int page = 0; page < 10; page++) {
        snprintf(path, sizeof(path),
                 "%s?filter=region%%20%%3D%%20%%22east%%22&sort=-created_at&limit=3%s%s", MR,
                 cursor[0] ? "&cursor=" : "", cursor);
        struct resp r;
        http(&S, "GET", path, NULL, 0, NULL, &r);
        ck_assert_msg(r.status == 200, "%s", r.body);
        /* Pull ids out in order. */
        for (const char *p = r.body; (p = strstr(p, "{\"id\":")); p += 6)
            seen[n++] = atoll(p + 6);
        const char *nc = strstr(r.body, "\"next_cursor\":\"");
        if (nc) {
            nc += 15;
            snprintf(cursor, sizeof(cursor), "%.*s", (int)(strchr(nc, '"') - nc), nc);
        }
        resp_free(&r);
        if (!nc) break;
        /* Records added while paging do not disturb the keyset. */
        if (page == 1)
            create("{\"title\":\"late\",\"partner\":\"P\",\"region\":\"east\",\"budget\":1}");
    }
    ck_assert_int_eq(n, 10);
    for (int i = 1; i < n; i++)
        ck_assert_int_lt(seen[i], seen[i - 1]);

    /* count=exact with a range filter; sort by an indexed field (region, an enum) ascending. */
    struct resp r;
    snprintf(path, sizeof(path),
             "%s?filter=budget%%20%%3E%%3D%%201000%%20%%26%%26%%20budget%%20%%3C%%202000&sort="
             "created_at&count=exact&limit=100",
             MR);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_int_eq(json_int(r.body, "count", -1), 10);
    ck_assert(strstr(r.body, "\"budget\":\"1000.25\"") < strstr(r.body, "\"budget\":\"1900.25\""));
    resp_free(&r);
    snprintf(path, sizeof(path), "%s?sort=region&limit=1000", MR);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert(strstr(r.body, "\"region\":\"east\"") < strstr(r.body, "\"region\":\"north\""));
    ck_assert(strstr(r.body, "\"region\":\"south\"") < strstr(r.body, "\"region\":\"west\""));
    resp_free(&r);

    /* Bad expressions name the column. */
    snprintf(path, sizeof(path), "%s?filter=region%%20%%3D%%3D%%20%%22east%%22", MR);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(strstr(r.body, "column") != NULL, "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s?sort=description", MR);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s?limt=5", MR);
    http(&S, "GET", path, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
}
END_TEST

START_TEST(idempotency_survives_restart)
{
    const char *h[] = {"Content-Type: application/json", "Idempotency-Key: abc-123", NULL};
    const char *body = "{\"title\":\"Once\",\"partner\":\"P\",\"budget\":\"5\"}";
    struct resp a, b, c;
    http(&S, "POST", MR, body, strlen(body), h, &a);
    ck_assert_int_eq(a.status, 201);
    http(&S, "POST", MR, body, strlen(body), h, &b);
    ck_assert_int_eq(b.status, 201);
    ck_assert_str_eq(a.body, b.body);
    srv_stop(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    http(&S, "POST", MR, body, strlen(body), h, &c);
    ck_assert_int_eq(c.status, 201);
    ck_assert_str_eq(a.body, c.body);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 1);
    resp_free(&c);
    /* The same key with another body is refused. */
    http(&S, "POST", MR, "{\"title\":\"Other\",\"partner\":\"P\",\"budget\":\"5\"}", 44, h, &c);
    ck_assert_int_eq(c.status, 422);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 1);
    resp_free(&a);
    resp_free(&b);
    resp_free(&c);
}
END_TEST

struct racer {
    const char *path;
    long status;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    const char *h[] = {"Content-Type: application/json", "If-Match: \"1\"", NULL};
    struct resp r;
    http(&S, "PATCH", x->path, "{\"title\":\"winner\"}", 18, h, &r);
    x->status = r.status;
    resp_free(&r);
    return NULL;
}

START_TEST(concurrent_if_match_one_wins)
{
    long long id = create("{\"title\":\"t\",\"partner\":\"P\",\"budget\":\"5\"}");
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    enum { N = 8 };
    pthread_t th[N];
    struct racer rs[N];
    for (int i = 0; i < N; i++) {
        rs[i].path = path;
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    int ok = 0, stale = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].status == 200) ok++;
        if (rs[i].status == 412) stale++;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(stale, N - 1);
}
END_TEST

START_TEST(health_metrics_openapi)
{
    struct resp r;
    http(&S, "GET", "/healthz", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    http(&S, "GET", "/metrics", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "trellis_http_requests_total") != NULL);
    resp_free(&r);
    http(&S, "GET", "/api/v1/openapi.json", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_contains(r.body, "{\"openapi\":\"3.1.0\"}"));
    ck_assert(strstr(r.body, "\"/api/v1/records/marketing_request/{id}\"") != NULL);
    resp_free(&r);
    http(&S, "GET", "/nope", NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert(json_contains(r.body, "{\"status\":404,\"code\":\"not_found\"}"));
    resp_free(&r);
    http(&S, "PUT", MR, "{}", 2, NULL, &r);
    ck_assert_int_eq(r.status, 405);
    resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, crud_round_trip);
    tcase_add_test(tc, listing_filter_sort_cursor);
    tcase_add_test(tc, idempotency_survives_restart);
    tcase_add_test(tc, concurrent_if_match_one_wins);
    tcase_add_test(tc, health_metrics_openapi);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
