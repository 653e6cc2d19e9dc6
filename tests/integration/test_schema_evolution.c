/* Schema evolution on a live server with records, through PUT/DELETE /api/v1/meta/types/{name}:
 * add (with defaults), rename, remove and re-add fields, change labels and rules, refused
 * incompatible changes, definition errors with their paths, and the life of a brand-new type.
 * After each scenario `trellis check` passes on the live store, again after the server stopped,
 * and the server starts again on the evolved definitions. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;

static void setup(void)
{
    int rc = srv_init(&S, NULL);
    tmpreg_add(S.dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    int rc = srv_stop_and_check(&S);
    /* Every stored definition loads again at start. */
    int src = srv_start(&S);
    srv_stop(&S);
    srv_cleanup(&S);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(src == 0, "the server does not start again on the evolved definitions");
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* `trellis check` on the live data directory (a second process reading LMDB). */
static void live_check(void)
{
    char *out = NULL;
    int rc = store_check(S.dir, &out);
    ck_assert_msg(rc == 0, "trellis check on the live store failed (%d):\n%s", rc, out);
    free(out);
}

static long put_type(const char *name, const char *def, char **body)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/meta/types/%s", name);
    struct resp r;
    ck_assert_int_eq(http_json(&S, "PUT", path, def, &r), 0);
    long st = r.status;
    if (body) *body = strdup(r.body);
    resp_free(&r);
    return st;
}

/* PUT that must succeed (200, or 201 for a new type). */
static void put_ok(const char *name, const char *def)
{
    char *body = NULL;
    long st = put_type(name, def, &body);
    ck_assert_msg(st == 200 || st == 201, "PUT %s: %ld %s", name, st, body);
    free(body);
}

/* The stored definition (owned) or NULL when absent. */
static char *get_meta(const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/meta/types/%s", name);
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", path, NULL, 0, NULL, &r), 0);
    char *def = r.status == 200 ? strdup(r.body) : NULL;
    ck_assert_msg(r.status == 200 || r.status == 404, "GET meta %s: %ld", name, r.status);
    resp_free(&r);
    return def;
}

static long long create(const char *type, const char *body)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/records/%s", type);
    struct resp r;
    ck_assert_int_eq(http_json(&S, "POST", path, body, &r), 0);
    ck_assert_msg(r.status == 201, "create %s %s: %ld %s", type, body, r.status, r.body);
    long long id = json_int(r.body, "id", -1);
    resp_free(&r);
    return id;
}

/* GET a record (200 expected); body owned. */
static char *get_rec(const char *type, long long id)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/records/%s/%lld", type, id);
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", path, NULL, 0, NULL, &r), 0);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body);
    char *b = strdup(r.body);
    resp_free(&r);
    return b;
}

/* PATCH a record; returns the status, body in *body (owned) when asked. */
static long patch(const char *type, long long id, const char *json, char **body)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/records/%s/%lld", type, id);
    struct resp r;
    ck_assert_int_eq(http_json(&S, "PATCH", path, json, &r), 0);
    long st = r.status;
    if (body) *body = strdup(r.body);
    resp_free(&r);
    return st;
}

static void urlenc(const char *in, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < n; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '-' || *p == '.') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

/* GET a listing with a filter (and extra query text); returns the status, body owned. */
static long list(const char *type, const char *filter, const char *extra, char **body)
{
    char enc[512], path[800];
    urlenc(filter ? filter : "", enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/records/%s?limit=1000%s%s%s%s", type,
             filter ? "&filter=" : "", filter ? enc : "", extra ? "&" : "", extra ? extra : "");
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", path, NULL, 0, NULL, &r), 0);
    long st = r.status;
    *body = strdup(r.body);
    resp_free(&r);
    return st;
}

/* Number of items a filter returns and, with count=exact, the count it reports: both must be
 * `want`. */
static void expect_count(const char *type, const char *filter, int want)
{
    char *body = NULL;
    long st = list(type, filter, "count=exact", &body);
    ck_assert_msg(st == 200, "filter %s: %ld %s", filter, st, body);
    cJSON *j = cJSON_Parse(body);
    int items = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items"));
    long long count = json_int(body, "count", -1);
    cJSON_Delete(j);
    ck_assert_msg(items == want, "filter %s on %s: %d items, expected %d\n%s", filter, type, items,
                  want, body);
    ck_assert_msg(count == want, "filter %s on %s: count=exact says %lld, expected %d", filter,
                  type, count, want);
    free(body);
}

/* Whether a problem body lists an error for field `field` (with code `code` when not NULL). */
static bool has_error(const char *body, const char *field, const char *code)
{
    cJSON *j = cJSON_Parse(body);
    bool found = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "errors"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (cJSON_IsString(f) && strcmp(f->valuestring, field) == 0 &&
            (!code || (cJSON_IsString(c) && strcmp(c->valuestring, code) == 0)) &&
            cJSON_IsString(m) && m->valuestring[0])
            found = true;
    }
    cJSON_Delete(j);
    return found;
}

static bool has_key(const char *json, const char *key)
{
    cJSON *j = cJSON_Parse(json);
    bool has = cJSON_GetObjectItemCaseSensitive(j, key) != NULL;
    cJSON_Delete(j);
    return has;
}

#define HAS(body, subset)                                                                          \
    ck_assert_msg(json_contains(body, subset), "expected %s in\n%s", subset, body)

/* ---------------------------------------------------------------------------------------------
 * Scenarios
 */

START_TEST(add_field_with_default)
{
    put_ok("ev", "{\"name\":\"ev\",\"fields\":[{\"name\":\"title\",\"type\":\"text\",\"required\":"
                 "true},{\"name\":\"n\",\"type\":\"int\"}]}");
    long long a = create("ev", "{\"title\":\"a\",\"n\":1}");
    long long b = create("ev", "{\"title\":\"b\",\"n\":2}");
    long long c = create("ev", "{\"title\":\"c\",\"n\":3}");
    put_ok("ev", "{\"name\":\"ev\",\"fields\":[{\"name\":\"title\",\"type\":\"text\",\"required\":"
                 "true},{\"name\":\"n\",\"type\":\"int\"},"
                 "{\"name\":\"prio\",\"type\":\"int\",\"default\":3,\"indexed\":true},"
                 "{\"name\":\"tag\",\"type\":\"enum\",\"options\":[\"x\",\"y\"],\"default\":\"x\"},"
                 "{\"name\":\"flag\",\"type\":\"bool\",\"default\":true},"
                 "{\"name\":\"cost\",\"type\":\"decimal\",\"default\":\"1.5\"},"
                 "{\"name\":\"note\",\"type\":\"text\"}]}");
    /* Existing records read the defaults (and null where there is none). */
    long long ids[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        char *r = get_rec("ev", ids[i]);
        HAS(r, "{\"prio\":3,\"tag\":\"x\",\"flag\":true,\"cost\":\"1.50\",\"note\":null,"
               "\"version\":1}");
        free(r);
    }
    /* Filters on the new fields: indexed (prio), enum (tag, always indexed), plain (flag, cost,
     * note). */
    expect_count("ev", "prio = 3", 3);
    expect_count("ev", "tag = \"x\"", 3);
    expect_count("ev", "tag in (\"x\", \"y\")", 3);
    expect_count("ev", "flag = true", 3);
    expect_count("ev", "cost = 1.5", 3);
    expect_count("ev", "note = null", 3);
    expect_count("ev", "prio > 2 && tag = \"x\" && n >= 2", 2);
    char *body = NULL;
    ck_assert_int_eq(list("ev", NULL, "sort=-prio", &body), 200);
    free(body);

    /* New records: the default when left out, the value when given. */
    long long d = create("ev", "{\"title\":\"d\"}");
    create("ev", "{\"title\":\"e\",\"prio\":5,\"tag\":\"y\",\"flag\":false}");
    char *r = get_rec("ev", d);
    HAS(r, "{\"prio\":3,\"tag\":\"x\",\"flag\":true}");
    free(r);
    expect_count("ev", "prio = 3", 4);
    expect_count("ev", "prio = 5", 1);
    expect_count("ev", "tag = \"x\"", 4);
    expect_count("ev", "tag = \"y\"", 1);

    /* Changing an old record's defaulted values moves it between index entries and counters. */
    ck_assert_int_eq(patch("ev", a, "{\"prio\":7,\"tag\":\"y\"}", &body), 200);
    free(body);
    ck_assert_int_eq(patch("ev", b, "{\"n\":20}", &body), 200);
    HAS(body, "{\"prio\":3,\"tag\":\"x\",\"n\":20}");
    free(body);
    expect_count("ev", "prio = 3", 3);
    expect_count("ev", "prio = 7", 1);
    expect_count("ev", "tag = \"x\"", 3);
    expect_count("ev", "tag = \"y\"", 2);
    live_check();
}
END_TEST

START_TEST(rename_field_data_follows)
{
    put_ok("rn",
           "{\"name\":\"rn\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},{\"name\":"
           "\"note\",\"type\":\"text\"},{\"name\":\"code\",\"type\":\"text\",\"unique\":true},"
           "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\"]}]}");
    long long a = create("rn", "{\"title\":\"A\",\"note\":\"n1\",\"code\":\"C1\",\"kind\":\"a\"}");
    long long b = create("rn", "{\"title\":\"B\",\"note\":\"n2\",\"code\":\"C2\",\"kind\":\"b\"}");
    char *body = NULL;
    ck_assert_int_eq(patch("rn", a, "{\"note\":\"n1b\"}", &body), 200);
    free(body);

    const char *v2 = "{\"name\":\"rn\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                     "{\"name\":\"remark\",\"type\":\"text\",\"renamed_from\":\"note\"},"
                     "{\"name\":\"ref_code\",\"type\":\"text\",\"unique\":true,\"renamed_from\":"
                     "\"code\"},{\"name\":\"category\",\"type\":\"enum\",\"options\":[\"a\",\"b\"],"
                     "\"renamed_from\":\"kind\"}]}";
    put_ok("rn", v2);
    char *r = get_rec("rn", a);
    HAS(r, "{\"remark\":\"n1b\",\"ref_code\":\"C1\",\"category\":\"a\",\"version\":2}");
    ck_assert_msg(!has_key(r, "note") && !has_key(r, "code") && !has_key(r, "kind"), "%s", r);
    free(r);
    r = get_rec("rn", b);
    HAS(r, "{\"remark\":\"n2\",\"ref_code\":\"C2\",\"category\":\"b\"}");
    free(r);

    /* Filters use the new names (and the renamed fields' indexes and counters). */
    expect_count("rn", "remark = \"n1b\"", 1);
    expect_count("rn", "ref_code = \"C2\"", 1);
    expect_count("rn", "category = \"a\"", 1);
    expect_count("rn", "category in (\"a\", \"b\")", 2);
    ck_assert_int_eq(list("rn", "note = \"n1b\"", NULL, &body), 400);
    free(body);
    /* The unique index followed the rename. */
    struct resp rs;
    const char *dup = "{\"title\":\"D\",\"ref_code\":\"C1\"}";
    ck_assert_int_eq(http_json(&S, "POST", "/api/v1/records/rn", dup, &rs), 0);
    ck_assert_msg(rs.status == 422 && has_error(rs.body, "ref_code", "unique"), "%ld %s", rs.status,
                  rs.body);
    resp_free(&rs);
    /* The old name is no longer a field. */
    ck_assert_int_eq(http_json(&S, "POST", "/api/v1/records/rn", "{\"note\":\"x\"}", &rs), 0);
    ck_assert_msg(rs.status == 422 && has_error(rs.body, "note", "unknown_field"), "%ld %s",
                  rs.status, rs.body);
    resp_free(&rs);

    /* History keeps working: the old events, then a new one under the new name. */
    ck_assert_int_eq(patch("rn", a, "{\"remark\":\"n1c\",\"category\":\"b\"}", &body), 200);
    free(body);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/records/rn/%lld/history", a);
    ck_assert_int_eq(http(&S, "GET", path, NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 200);
    HAS(rs.body,
        "{\"items\":[{\"seq\":1,\"action\":\"create\"},{\"seq\":2,\"action\":\"update\"},"
        "{\"seq\":3,\"action\":\"update\",\"changes\":{\"remark\":{\"from\":\"n1b\",\"to\":"
        "\"n1c\"},\"category\":{\"from\":\"a\",\"to\":\"b\"}}}]}");
    resp_free(&rs);
    expect_count("rn", "category = \"b\"", 2);

    /* Putting the same definition again changes nothing. */
    put_ok("rn", v2);
    r = get_rec("rn", a);
    HAS(r, "{\"remark\":\"n1c\",\"ref_code\":\"C1\",\"version\":3}");
    free(r);
    live_check();
}
END_TEST

/* renamed_from naming a field that the definition still has would give two fields one stored
 * column (both read and write the same data): the definition must be refused. */
START_TEST(rename_onto_kept_field_refused)
{
    put_ok("ra", "{\"name\":\"ra\",\"fields\":[{\"name\":\"a\",\"type\":\"text\"}]}");
    long long id = create("ra", "{\"a\":\"keep me\"}");
    char *before = get_meta("ra");
    char *body = NULL;
    long st = put_type("ra",
                       "{\"name\":\"ra\",\"fields\":[{\"name\":\"a\",\"type\":\"text\"},"
                       "{\"name\":\"b\",\"type\":\"text\",\"renamed_from\":\"a\"}]}",
                       &body);
    ck_assert_msg(st == 422 || st == 409, "a rename onto a kept field was accepted: %ld %s", st,
                  body);
    ck_assert_msg(has_error(body, "fields[1].renamed_from", NULL), "%s", body);
    free(body);
    char *after = get_meta("ra");
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    char *r = get_rec("ra", id);
    HAS(r, "{\"a\":\"keep me\"}");
    free(r);
    live_check();
}
END_TEST

START_TEST(remove_field_and_readd)
{
    put_ok("rm", "{\"name\":\"rm\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"n\",\"type\":\"int\",\"indexed\":true},{\"name\":\"secret\",\"type\":"
                 "\"text\"},{\"name\":\"tag\",\"type\":\"enum\",\"options\":[\"x\",\"y\"]}]}");
    long long a = create("rm", "{\"title\":\"A\",\"n\":5,\"secret\":\"s3cr3t-A\",\"tag\":\"x\"}");
    create("rm", "{\"title\":\"B\",\"n\":6,\"secret\":\"s3cr3t-B\",\"tag\":\"y\"}");
    put_ok("rm", "{\"name\":\"rm\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"}]}");

    /* The data of removed fields is no longer served, in any way. */
    char *r = get_rec("rm", a);
    ck_assert_msg(!has_key(r, "n") && !has_key(r, "secret") && !has_key(r, "tag"), "%s", r);
    HAS(r, "{\"title\":\"A\"}");
    free(r);
    char *body = NULL;
    ck_assert_int_eq(list("rm", NULL, NULL, &body), 200);
    ck_assert_msg(!strstr(body, "s3cr3t") && !strstr(body, "\"secret\""), "%s", body);
    free(body);
    ck_assert_int_eq(list("rm", "n = 5", NULL, &body), 400);
    free(body);
    ck_assert_int_eq(list("rm", NULL, "sort=n", &body), 400);
    free(body);
    long st = list("rm", NULL, "fields=title,secret", &body);
    ck_assert_msg((st == 200 || st == 400) && !strstr(body, "s3cr3t"), "%ld %s", st, body);
    free(body);
    struct resp rs;
    ck_assert_int_eq(http_json(&S, "POST", "/api/v1/records/rm", "{\"title\":\"C\",\"n\":1}", &rs),
                     0);
    ck_assert_msg(rs.status == 422 && has_error(rs.body, "n", "unknown_field"), "%ld %s", rs.status,
                  rs.body);
    resp_free(&rs);
    live_check();

    /* Re-adding the same names does not resurrect the old data. */
    put_ok("rm", "{\"name\":\"rm\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"n\",\"type\":\"int\",\"indexed\":true},{\"name\":\"secret\",\"type\":"
                 "\"text\"},{\"name\":\"tag\",\"type\":\"enum\",\"options\":[\"x\",\"y\"]}]}");
    r = get_rec("rm", a);
    HAS(r, "{\"title\":\"A\",\"n\":null,\"secret\":null,\"tag\":null}");
    free(r);
    ck_assert_int_eq(list("rm", NULL, NULL, &body), 200);
    ck_assert_msg(!strstr(body, "s3cr3t"), "%s", body);
    free(body);
    expect_count("rm", "n = 5", 0);
    expect_count("rm", "n = null", 2);
    expect_count("rm", "tag = \"x\"", 0);
    expect_count("rm", "tag = null", 2);
    expect_count("rm", "secret = null", 2);
    ck_assert_int_eq(patch("rm", a, "{\"n\":9,\"tag\":\"y\"}", &body), 200);
    free(body);
    expect_count("rm", "n = 9", 1);
    expect_count("rm", "tag = \"y\"", 1);
    expect_count("rm", "tag = null", 1);
    live_check();
}
END_TEST

START_TEST(labels_and_rules_change)
{
    put_ok("lr", "{\"name\":\"lr\",\"labels\":{\"en\":\"Old\",\"zh-CN\":\"旧\"},\"fields\":["
                 "{\"name\":\"title\",\"type\":\"text\",\"max_length\":50,\"labels\":{\"en\":"
                 "\"Title\"}},{\"name\":\"note\",\"type\":\"text\"},"
                 "{\"name\":\"qty\",\"type\":\"int\",\"min\":0},"
                 "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\",\"c\"]},"
                 "{\"name\":\"code\",\"type\":\"text\"}]}");
    long long a = create("lr", "{\"title\":\"hello world\",\"note\":\"x\",\"qty\":5,\"kind\":\"c\","
                               "\"code\":\"abc\"}");
    long long b = create("lr", "{\"title\":\"ok\",\"qty\":50,\"kind\":\"a\",\"code\":\"ab12\"}");

    /* New labels; every rule tightened; a new required field without default. */
    put_ok("lr", "{\"name\":\"lr\",\"labels\":{\"en\":\"New\",\"zh-CN\":\"新\"},\"fields\":["
                 "{\"name\":\"title\",\"type\":\"text\",\"max_length\":5,\"labels\":{\"en\":"
                 "\"Heading\",\"zh-CN\":\"标题\"},\"help\":{\"en\":\"Short\"}},"
                 "{\"name\":\"note\",\"type\":\"text\"},"
                 "{\"name\":\"qty\",\"type\":\"int\",\"min\":10},"
                 "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\",{\"value\":"
                 "\"c\",\"labels\":{\"en\":\"Sea\",\"zh-CN\":\"海\"}}]},"
                 "{\"name\":\"code\",\"type\":\"text\",\"pattern\":\"^[A-Z]{2}[0-9]+$\"},"
                 "{\"name\":\"owner_name\",\"type\":\"text\",\"required\":true}]}");
    char *meta = get_meta("lr");
    HAS(meta, "{\"labels\":{\"en\":\"New\",\"zh-CN\":\"新\"},\"fields\":[{\"name\":\"title\","
              "\"labels\":{\"en\":\"Heading\",\"zh-CN\":\"标题\"},\"max_length\":5}]}");
    free(meta);

    /* Existing records are still readable, as stored. */
    char *r = get_rec("lr", a);
    HAS(r, "{\"title\":\"hello world\",\"qty\":5,\"kind\":\"c\",\"code\":\"abc\",\"owner_name\":"
           "null,\"version\":1}");
    free(r);
    char *body = NULL;
    ck_assert_int_eq(list("lr", NULL, NULL, &body), 200);
    free(body);

    /* The next write must make the record valid: a PATCH of another field fails, naming every
     * offending field at once, and writes nothing. */
    ck_assert_int_eq(patch("lr", a, "{\"note\":\"y\"}", &body), 422);
    ck_assert_msg(has_error(body, "title", "max_length") && has_error(body, "qty", "min") &&
                      has_error(body, "code", "pattern") &&
                      has_error(body, "owner_name", "required"),
                  "%s", body);
    ck_assert_msg(!has_error(body, "note", NULL) && !has_error(body, "kind", NULL), "%s", body);
    free(body);
    r = get_rec("lr", a);
    HAS(r, "{\"note\":\"x\",\"version\":1}");
    free(r);
    /* Only the failing rule is reported when one rule fails. */
    ck_assert_int_eq(patch("lr", b, "{\"note\":\"y\",\"owner_name\":\"bo\"}", &body), 422);
    ck_assert_msg(has_error(body, "title", NULL) == false && has_error(body, "code", "pattern"),
                  "%s", body);
    free(body);
    /* A PATCH that fixes everything goes through. */
    ck_assert_int_eq(patch("lr", a,
                           "{\"note\":\"y\",\"title\":\"short\",\"qty\":10,\"kind\":\"a\","
                           "\"code\":\"AB1\",\"owner_name\":\"bo\"}",
                           &body),
                     200);
    HAS(body, "{\"note\":\"y\",\"title\":\"short\",\"version\":2}");
    free(body);
    /* New records meet the new rules. */
    struct resp rs;
    ck_assert_int_eq(http_json(&S, "POST", "/api/v1/records/lr",
                               "{\"title\":\"too long\",\"owner_name\":\"x\"}", &rs),
                     0);
    ck_assert_msg(rs.status == 422 && has_error(rs.body, "title", "max_length"), "%ld %s",
                  rs.status, rs.body);
    resp_free(&rs);
    /* Loosening again makes the old record writable without touching its values. */
    put_ok("lr", "{\"name\":\"lr\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"qty\",\"type\":\"int\"},"
                 "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\",\"c\"]},"
                 "{\"name\":\"code\",\"type\":\"text\"},{\"name\":\"owner_name\",\"type\":"
                 "\"text\"}]}");
    ck_assert_int_eq(patch("lr", b, "{\"note\":\"z\"}", &body), 200);
    free(body);
    live_check();
}
END_TEST

/* Removing an enum option is a tightened rule too: a record holding the removed value stays
 * readable, and its next write must choose a valid option. */
START_TEST(removed_enum_option_enforced_on_next_write)
{
    put_ok("eo", "{\"name\":\"eo\",\"fields\":[{\"name\":\"note\",\"type\":\"text\"},"
                 "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\",\"c\"]}]}");
    long long a = create("eo", "{\"note\":\"x\",\"kind\":\"c\"}");
    put_ok("eo", "{\"name\":\"eo\",\"fields\":[{\"name\":\"note\",\"type\":\"text\"},"
                 "{\"name\":\"kind\",\"type\":\"enum\",\"options\":[\"a\",\"b\"]}]}");
    char *r = get_rec("eo", a);
    HAS(r, "{\"kind\":\"c\",\"version\":1}");
    free(r);
    char *body = NULL;
    long st = patch("eo", a, "{\"note\":\"y\"}", &body);
    ck_assert_msg(st == 422 && has_error(body, "kind", "enum"),
                  "PATCH kept a removed enum option: %ld %s", st, body);
    free(body);
    ck_assert_int_eq(patch("eo", a, "{\"note\":\"y\",\"kind\":\"b\"}", &body), 200);
    free(body);
    live_check();
}
END_TEST

START_TEST(incompatible_changes_refused)
{
    const char *v1 = "{\"name\":\"ic\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                     "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"amount\",\"type\":"
                     "\"decimal\",\"scale\":2},{\"name\":\"code\",\"type\":\"text\"}]}";
    put_ok("ic", v1);
    long long a = create("ic", "{\"title\":\"A\",\"note\":\"hello\",\"amount\":\"1.25\","
                               "\"code\":\"same\"}");
    create("ic", "{\"title\":\"B\",\"note\":\"42\",\"amount\":2,\"code\":\"same\"}");
    char *before = get_meta("ic");

    /* text -> int with records: 409 with a clear message; nothing changes. */
    char *body = NULL;
    long st = put_type("ic",
                       "{\"name\":\"ic\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                       "{\"name\":\"note\",\"type\":\"int\"},{\"name\":\"amount\",\"type\":"
                       "\"decimal\",\"scale\":2},{\"name\":\"code\",\"type\":\"text\"}]}",
                       &body);
    ck_assert_msg(st == 409, "%ld %s", st, body);
    HAS(body, "{\"status\":409,\"code\":\"conflict\"}");
    ck_assert_msg(strstr(body, "note") && strstr(body, "text") && strstr(body, "int"), "%s", body);
    free(body);
    char *now = get_meta("ic");
    ck_assert_str_eq(before, now);
    free(now);
    char *r = get_rec("ic", a);
    HAS(r, "{\"note\":\"hello\",\"amount\":\"1.25\"}");
    free(r);

    /* A decimal's scale with records: 409. */
    st = put_type("ic",
                  "{\"name\":\"ic\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                  "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"amount\",\"type\":"
                  "\"decimal\",\"scale\":3},{\"name\":\"code\",\"type\":\"text\"}]}",
                  &body);
    ck_assert_msg(st == 409 && strstr(body, "amount"), "%ld %s", st, body);
    free(body);
    now = get_meta("ic");
    ck_assert_str_eq(before, now);
    free(now);

    /* unique over duplicate values: 409, and uniqueness is not half-applied. */
    st =
        put_type("ic",
                 "{\"name\":\"ic\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"amount\",\"type\":"
                 "\"decimal\",\"scale\":2},{\"name\":\"code\",\"type\":\"text\",\"unique\":true}]}",
                 &body);
    ck_assert_msg(st == 409 && strstr(body, "code") && strstr(body, "unique"), "%ld %s", st, body);
    free(body);
    now = get_meta("ic");
    ck_assert_str_eq(before, now);
    free(now);
    create("ic", "{\"title\":\"C\",\"code\":\"same\"}");
    expect_count("ic", "code = \"same\"", 3);
    live_check();

    /* text -> longtext is compatible and keeps the data. */
    put_ok("ic", "{\"name\":\"ic\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"note\",\"type\":\"longtext\"},{\"name\":\"amount\",\"type\":"
                 "\"decimal\",\"scale\":2},{\"name\":\"code\",\"type\":\"text\"}]}");
    r = get_rec("ic", a);
    HAS(r, "{\"note\":\"hello\"}");
    free(r);

    /* Without records a type may change freely. */
    put_ok("ic_empty", "{\"name\":\"ic_empty\",\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}");
    put_ok("ic_empty", "{\"name\":\"ic_empty\",\"fields\":[{\"name\":\"x\",\"type\":\"date\"}]}");
    create("ic_empty", "{\"x\":\"2026-01-02\"}");
    free(before);
    live_check();
}
END_TEST

START_TEST(definition_errors_listed)
{
    char *before = get_meta("marketing_request");
    ck_assert_ptr_nonnull(before);
    char *body = NULL;
    long st =
        put_type("marketing_request",
                 "{\"name\":\"marketing_request\",\"bogus\":1,\"title_field\":\"nope\",\"fields\":["
                 "{\"name\":\"title\",\"type\":\"text\",\"max_length\":-5},"
                 "{\"name\":\"Bad Name\",\"type\":\"text\"},"
                 "{\"name\":\"budget\",\"type\":\"float\"},"
                 "{\"name\":\"region\",\"type\":\"enum\"},"
                 "{\"name\":\"start_date\",\"type\":\"date\",\"min\":\"2026-02-30\"},"
                 "{\"name\":\"partner\",\"type\":\"text\",\"pattern\":\"([a-z\"},"
                 "{\"name\":\"title\",\"type\":\"text\"}]}",
                 &body);
    ck_assert_msg(st == 422, "%ld %s", st, body);
    static const char *paths[] = {"bogus",          "title_field",       "fields[0].max_length",
                                  "fields[1].name", "fields[2].type",    "fields[3].options",
                                  "fields[4].min",  "fields[5].pattern", "fields[6].name"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        ck_assert_msg(has_error(body, paths[i], NULL), "no error at %s in\n%s", paths[i], body);
    free(body);
    char *after = get_meta("marketing_request");
    ck_assert_str_eq(before, after);
    free(after);
    free(before);

    /* A new type with errors is not created. */
    st = put_type("brand_new", "{\"name\":\"brand_new\",\"fields\":[{\"name\":\"x\"}]}", &body);
    ck_assert_msg(st == 422 && has_error(body, "fields[0].type", NULL), "%ld %s", st, body);
    free(body);
    ck_assert_ptr_null(get_meta("brand_new"));
    /* The body's name must be the URL's; malformed JSON is a 400. */
    st = put_type("brand_new", "{\"name\":\"other\",\"fields\":[]}", &body);
    ck_assert_msg(st == 422 && has_error(body, "name", NULL), "%ld %s", st, body);
    free(body);
    st = put_type("brand_new", "{\"name\":\"brand_new\",\"fields\":[]", &body);
    ck_assert_msg(st == 400, "%ld %s", st, body);
    free(body);
    ck_assert_ptr_null(get_meta("brand_new"));
    live_check();
}
END_TEST

START_TEST(new_type_lifecycle)
{
    const char *def = "{\"name\":\"gadget\",\"labels\":{\"en\":\"Gadget\"},\"title_field\":"
                      "\"label\",\"autoname\":\"G-{####}\",\"fields\":[{\"name\":\"label\","
                      "\"type\":\"text\",\"required\":true},{\"name\":\"size\",\"type\":\"int\","
                      "\"indexed\":true}]}";
    put_ok("gadget", def);
    /* Usable at once. */
    long long id = create("gadget", "{\"label\":\"first\",\"size\":3}");
    char *r = get_rec("gadget", id);
    HAS(r, "{\"label\":\"first\",\"size\":3,\"name\":\"G-0001\"}");
    free(r);
    expect_count("gadget", "size = 3", 1);
    struct resp rs;
    ck_assert_int_eq(http(&S, "GET", "/api/v1/meta/types", NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_msg(strstr(rs.body, "\"gadget\"") != NULL, "%s", rs.body);
    resp_free(&rs);
    /* Listed in openapi.json. */
    ck_assert_int_eq(http(&S, "GET", "/api/v1/openapi.json", NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 200);
    cJSON *oa = cJSON_Parse(rs.body);
    ck_assert_msg(oa != NULL, "openapi.json is not JSON");
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(oa, "paths");
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(paths, "/api/v1/records/gadget"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(paths, "/api/v1/records/gadget/{id}"));
    const cJSON *schemas = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(oa, "components"), "schemas");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(schemas, "gadget"), "properties");
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(props, "label"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(props, "size"));
    cJSON_Delete(oa);
    resp_free(&rs);

    /* DELETE while records exist: 409 and nothing changes. */
    ck_assert_int_eq(http(&S, "DELETE", "/api/v1/meta/types/gadget", NULL, 0, NULL, &rs), 0);
    ck_assert_msg(rs.status == 409, "%ld %s", rs.status, rs.body);
    resp_free(&rs);
    char *meta = get_meta("gadget");
    ck_assert_ptr_nonnull(meta);
    free(meta);
    r = get_rec("gadget", id);
    free(r);
    live_check();

    /* Without records: 204, then gone everywhere. */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/records/gadget/%lld", id);
    ck_assert_int_eq(http(&S, "DELETE", path, NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 204);
    resp_free(&rs);
    ck_assert_int_eq(http(&S, "DELETE", "/api/v1/meta/types/gadget", NULL, 0, NULL, &rs), 0);
    ck_assert_msg(rs.status == 204, "%ld %s", rs.status, rs.body);
    resp_free(&rs);
    ck_assert_ptr_null(get_meta("gadget"));
    ck_assert_int_eq(http(&S, "GET", "/api/v1/records/gadget", NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 404);
    resp_free(&rs);
    ck_assert_int_eq(http(&S, "GET", "/api/v1/openapi.json", NULL, 0, NULL, &rs), 0);
    ck_assert_msg(strstr(rs.body, "gadget") == NULL, "deleted type still in openapi.json");
    resp_free(&rs);
    ck_assert_int_eq(http(&S, "DELETE", "/api/v1/meta/types/gadget", NULL, 0, NULL, &rs), 0);
    ck_assert_int_eq(rs.status, 404);
    resp_free(&rs);
    live_check();

    /* The name can be used again; the new type starts empty. */
    put_ok("gadget", def);
    expect_count("gadget", "size = 3", 0);
    ck_assert_int_eq(count_records(&S, "gadget"), 0);
    create("gadget", "{\"label\":\"again\",\"size\":3}");
    expect_count("gadget", "size = 3", 1);
    live_check();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_schema_evolution");
    TCase *tc = tcase_create("evolution");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, add_field_with_default);
    tcase_add_test(tc, rename_field_data_follows);
    tcase_add_test(tc, rename_onto_kept_field_refused);
    tcase_add_test(tc, remove_field_and_readd);
    tcase_add_test(tc, labels_and_rules_change);
    tcase_add_test(tc, removed_enum_option_enforced_on_next_write);
    tcase_add_test(tc, incompatible_changes_refused);
    tcase_add_test(tc, definition_errors_listed);
    tcase_add_test(tc, new_type_lifecycle);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
