/*
 * test_jsonsuite.c — every file of JSONTestSuite's test_parsing POSTed as the body of a create.
 *
 *   n_ (188 files, invalid JSON): 400 with code malformed_json, and the record count unchanged.
 *   y_ (95 files, valid JSON): never refused as malformed_json — the strict JSON check accepts
 *      them. Most are not objects holding a valid record, so they get another 4xx (422); nothing
 *      is stored unless the answer is 201.
 *   i_ (implementation-defined): any 4xx or 201, never a 5xx, and the server process survives
 *      every one (checked after each file).
 * At the end /healthz answers, the process is alive, the count equals the 201s seen, and after
 * stopping the server `trellis check` passes.
 */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static struct srv S;
static const char *MR = "/api/v1/records/marketing_request";

static void setup(void)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_cleanup(&S);
}

static bool alive(const struct srv *s)
{
    int st;
    return s->pid > 0 && waitpid(s->pid, &st, WNOHANG) == 0 && kill(s->pid, 0) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The problem code of a response body, copied into buf ("" when none). */
static const char *code_of(const char *body, char *buf, size_t n)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "code");
    snprintf(buf, n, "%s", cJSON_IsString(c) ? c->valuestring : "");
    cJSON_Delete(j);
    return buf;
}

static char fails[16384]; /* failure report */
static int nfails;

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    size_t used = strlen(fails);
    if (used + strlen(line) + 2 < sizeof(fails)) {
        strcat(fails, line);
        strcat(fails, "\n");
    }
    nfails++;
}

START_TEST(every_test_parsing_file)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/testdata/JSONTestSuite/test_parsing", trellis_shared());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s: %s", dir, strerror(errno));
    char *names[512];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 512)
        if (e->d_name[0] != '.' && strstr(e->d_name, ".json")) names[nn++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof(names[0]), by_name);

    int ny = 0, nnf = 0, ni = 0, created = 0;
    int y_422 = 0, i_ok = 0, i_refused = 0;
    fails[0] = 0;
    nfails = 0;
    long base = count_records(&S, "marketing_request");
    ck_assert_int_ge(base, 0);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    for (int i = 0; i < nn; i++) {
        const char *name = names[i];
        char path[4400], code[64];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        size_t len;
        char *body = read_file(path, &len);
        ck_assert_msg(body != NULL, "cannot read %s", path);
        struct resp r;
        int rc = http(&S, "POST", MR, body, len, hdr, &r);
        free(body);
        if (rc) {
            note("%s: no answer (transport error)", name);
            resp_free(&r);
            if (!alive(&S)) break;
            continue;
        }
        code_of(r.body, code, sizeof(code));
        if (r.status == 201) created++;
        if (name[0] == 'n') {
            nnf++;
            if (r.status != 400 || strcmp(code, "malformed_json") != 0)
                note("%s (invalid JSON): status %ld code '%s', "
                     "expected 400 malformed_json",
                     name, r.status, code);
        } else if (name[0] == 'y') {
            ny++;
            if (strcmp(code, "malformed_json") == 0 || r.status >= 500 || r.status < 200)
                note("%s (valid JSON): status %ld code '%s', "
                     "expected no malformed_json and no 5xx",
                     name, r.status, code);
            if (r.status == 422) y_422++;
        } else if (name[0] == 'i') {
            ni++;
            if (r.status >= 500 || r.status < 200)
                note("%s (implementation-defined): status %ld %s", name, r.status, code);
            if (strcmp(code, "malformed_json") == 0)
                i_refused++;
            else
                i_ok++;
        }
        resp_free(&r);
        /* Nothing stored beyond the 201s; the server still runs. */
        long now = count_records(&S, "marketing_request");
        if (now != base + created)
            note("%s: record count %ld after it, expected %ld", name, now, base + created);
        if (!alive(&S)) {
            note("%s: the server process died", name);
            break;
        }
    }
    for (int i = 0; i < nn; i++)
        free(names[i]);
    fprintf(stderr,
            "jsonsuite: %d y_ (%d answered 422), %d n_, %d i_ (%d accepted as JSON, %d refused "
            "as malformed), %d created, %d failure(s)\n",
            ny, y_422, nnf, ni, i_ok, i_refused, created, nfails);
    ck_assert_msg(nfails == 0, "%d failure(s):\n%.3000s", nfails, fails);
    ck_assert_int_eq(ny, 95);
    ck_assert_int_eq(nnf, 188);
    ck_assert_int_gt(ni, 0);

    /* The server is healthy afterwards. */
    struct resp h;
    ck_assert_int_eq(http(&S, "GET", "/healthz", NULL, 0, NULL, &h), 0);
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
    ck_assert(alive(&S));
    ck_assert_int_eq(count_records(&S, "marketing_request"), base + created);
    srv_stop(&S);
    char *out = NULL;
    int crc = store_check(S.dir, &out);
    ck_assert_msg(crc == 0, "trellis check: %s", out ? out : "");
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_jsonsuite");
    TCase *tc = tcase_create("jsonsuite");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_test_parsing_file);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
