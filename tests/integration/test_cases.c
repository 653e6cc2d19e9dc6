/*
 * test_cases.c — data-driven HTTP cases against the real server: adding a case needs no C.
 *
 * Every .json file in tests/integration/cases/ (override with TRELLIS_CASES=<file or folder>) is
 * one Check test. Each file gets a fresh data directory with the sample app installed and one
 * server; its cases run in file order against that server, so a case may create a record that a
 * later case patches (record ids count from 1 per type in a fresh store). After the last case the
 * server is stopped and `trellis check` must pass. Every failing case of a file is reported (the
 * run does not stop at the first).
 *
 * A case file is a JSON array of case objects. Members (any other member is an error, so a typo
 * cannot silently disable a check):
 *   "name"            required; shown in failures
 *   "comment"         ignored
 *   "method"          default "GET"
 *   "path"            required, e.g. "/api/v1/records/marketing_request?limit=5" (sent as is)
 *   "headers"         {"Name": "value", ...}; "" sends the header with an empty value; null
 *                     suppresses a header libcurl would add.
 *                     When a body is sent and no Content-Type is given, Content-Type:
 *                     application/json is added.
 *   "body"            a JSON value, sent as its (unformatted) JSON text. Numbers pass through a
 *                     double, so use body_raw for exact or huge numeric lexemes.
 *   "body_raw"        a string sent byte for byte (after {{var}} substitution)
 *   "body_base64"     bytes given in base64 (for invalid UTF-8 and other non-text bodies)
 *   "status"          required: the expected HTTP status
 *   "expect"          a JSON value the response body must contain (json_contains: objects by
 *                     member, arrays element by element in order, scalars equal)
 *   "expect_headers"  {"Name": "exact value"}; null means the header must be absent
 *   "detail_contains" a string or array of strings that the problem's "detail" must contain
 *   "lengths"         {"member": N}: top-level array members of the response and their lengths
 *   "lang"            "zh-CN": the problem's title, detail and every errors[].message contain
 *                     Chinese (a CJK ideograph); "en": its title and detail contain none
 *   "unchanged"       true: the request must not change the store. Before and after, the runner
 *                     takes count_records of every installed type and a snapshot (type
 *                     definitions, every record, every record's history) and compares them.
 *   "save"            {"var": "path"}: after the case, remember a member of the response
 *                     ("next_cursor", "items.0.id") as {{var}} for the path, headers and bodies of
 *                     later cases in the same file.
 * Every response with a status >= 400 must also be application/problem+json whose "status" equals
 * the HTTP status, with a non-empty "title" and "detail" and a lower-case English "code" token.
 */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILES 64
#define MAX_VARS  32

static char files[MAX_FILES][1280];
static int nfiles;

struct var {
    char name[64];
    char *value;
};

struct run {
    struct srv s;
    const char *file;  /* base name, for messages */
    const char *cname; /* current case */
    char *fails;       /* failure report (owned) */
    size_t nfails;     /* failed checks */
    struct var vars[MAX_VARS];
    int nvars;
};

static void failf(struct run *r, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[4400];
    snprintf(line, sizeof(line), "%s: case \"%s\": %s\n", r->file, r->cname ? r->cname : "?", msg);
    fputs(line, stderr);
    size_t old = r->fails ? strlen(r->fails) : 0;
    char *n = realloc(r->fails, old + strlen(line) + 1);
    if (n) {
        memcpy(n + old, line, strlen(line) + 1);
        r->fails = n;
    }
    r->nfails++;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */
static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decodes base64 (whitespace ignored, padding optional); -1 on a bad character. */
static long b64_decode(const char *in, char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '=' || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') continue;
        int v = b64val((unsigned char)*p);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    return n;
}

/* Replaces {{name}} by saved variables; unknown names are an error. Returns owned text. */
static char *subst(struct run *r, const char *in, size_t n, size_t *outn)
{
    size_t cap = n + 1, o = 0;
    char *out = malloc(cap);
    for (size_t i = 0; out && i < n;) {
        const char *add = in + i;
        size_t addn = 1;
        if (i + 1 < n && in[i] == '{' && in[i + 1] == '{') {
            const char *end = strstr(in + i + 2, "}}");
            if (end && (size_t)(end - in) < n) {
                size_t nl = (size_t)(end - (in + i + 2));
                const char *val = NULL;
                for (int k = 0; k < r->nvars; k++)
                    if (strlen(r->vars[k].name) == nl &&
                        memcmp(r->vars[k].name, in + i + 2, nl) == 0)
                        val = r->vars[k].value;
                if (!val) {
                    failf(r, "unknown variable {{%.*s}}", (int)nl, in + i + 2);
                    val = "";
                }
                add = val;
                addn = strlen(val);
                i = (size_t)(end - in) + 2;
            } else {
                i++;
            }
        } else {
            i++;
        }
        if (o + addn + 1 > cap) {
            cap = (o + addn + 1) * 2;
            char *nb = realloc(out, cap);
            if (!nb) {
                free(out);
                return NULL;
            }
            out = nb;
        }
        memcpy(out + o, add, addn);
        o += addn;
    }
    if (out) out[o] = 0;
    if (outn) *outn = o;
    return out;
}

/* Member at a dotted path ("items.0.id"). */
static const cJSON *json_path(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok && j; tok = strtok(NULL, ".")) {
        if (cJSON_IsArray(j)) {
            char *end;
            long i = strtol(tok, &end, 10);
            j = *end ? NULL : cJSON_GetArrayItem(j, (int)i);
        } else {
            j = cJSON_GetObjectItemCaseSensitive(j, tok);
        }
    }
    return j;
}

/* True when s holds a CJK unified ideograph (U+4E00..U+9FFF: UTF-8 E4 B8 80 .. E9 BF BF). */
static bool has_cjk(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        if (*p >= 0xE4 && *p <= 0xE9 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
            (*p > 0xE4 || p[1] >= 0xB8))
            return true;
    return false;
}

static const char *str_member(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Store snapshot for "unchanged"
 */
struct snap {
    char *text;       /* definitions, records and histories (owned) */
    char counts[512]; /* "type=count ..." from count_records */
};

static void append(char **t, size_t *n, const char *s)
{
    size_t l = strlen(s);
    char *nb = realloc(*t, *n + l + 1);
    if (!nb) return;
    memcpy(nb + *n, s, l + 1);
    *t = nb;
    *n += l;
}

static int snapshot(struct run *r, struct snap *sn)
{
    memset(sn, 0, sizeof(*sn));
    size_t n = 0;
    struct resp m;
    if (http(&r->s, "GET", "/api/v1/meta/types", NULL, 0, NULL, &m) || m.status != 200) {
        resp_free(&m);
        return -1;
    }
    append(&sn->text, &n, m.body);
    cJSON *types = cJSON_Parse(m.body);
    resp_free(&m);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(types, "items");
    const cJSON *ty;
    size_t co = 0;
    cJSON_ArrayForEach(ty, items)
    {
        const char *name = str_member(ty, "name");
        if (!name) continue;
        co += (size_t)snprintf(sn->counts + co, sizeof(sn->counts) - co, "%s=%ld ", name,
                               count_records(&r->s, name));
        if (co >= sizeof(sn->counts)) co = sizeof(sn->counts) - 1;
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/records/%s?sort=id&limit=1000&count=exact", name);
        struct resp l;
        if (http(&r->s, "GET", path, NULL, 0, NULL, &l) || l.status != 200) {
            resp_free(&l);
            cJSON_Delete(types);
            return -1;
        }
        append(&sn->text, &n, l.body);
        cJSON *list = cJSON_Parse(l.body);
        resp_free(&l);
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(list, "items"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
            if (!cJSON_IsNumber(id)) continue;
            snprintf(path, sizeof(path), "/api/v1/records/%s/%lld/history", name,
                     (long long)id->valuedouble);
            struct resp h;
            if (http(&r->s, "GET", path, NULL, 0, NULL, &h) == 0) append(&sn->text, &n, h.body);
            resp_free(&h);
        }
        cJSON_Delete(list);
    }
    cJSON_Delete(types);
    return sn->text ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * One case
 */
static const char *const case_keys[] = {
    "name",        "comment", "method", "path",           "headers",         "body",    "body_raw",
    "body_base64", "status",  "expect", "expect_headers", "detail_contains", "lengths", "lang",
    "unchanged",   "save",    NULL};

static void check_problem(struct run *r, const struct resp *rs, const cJSON *body)
{
    char ct[256];
    if (!resp_header(rs, "Content-Type", ct, sizeof(ct)) ||
        strncmp(ct, "application/problem+json", 24) != 0)
        failf(r, "status %ld but Content-Type is %s, not application/problem+json", rs->status,
              resp_header(rs, "Content-Type", ct, sizeof(ct)) ? ct : "(none)");
    if (!cJSON_IsObject(body)) {
        failf(r, "problem body is not a JSON object: %.300s", rs->body);
        return;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(body, "status");
    if (!cJSON_IsNumber(st) || (long)st->valuedouble != rs->status)
        failf(r, "problem \"status\" does not equal the HTTP status %ld", rs->status);
    const char *code = str_member(body, "code");
    bool ok = code && *code;
    for (const char *p = code; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || *p == '_';
    if (!ok) failf(r, "problem \"code\" is not a lower-case English token: %.300s", rs->body);
    const char *title = str_member(body, "title"), *detail = str_member(body, "detail");
    if (!title || !*title || !detail || !*detail)
        failf(r, "problem lacks a title or detail: %.300s", rs->body);
}

static void run_case(struct run *r, const cJSON *c)
{
    r->cname = str_member(c, "name");
    if (!cJSON_IsObject(c) || !r->cname) {
        r->cname = NULL;
        failf(r, "a case must be an object with a \"name\"");
        return;
    }
    for (const cJSON *m = c->child; m; m = m->next) {
        bool known = false;
        for (const char *const *k = case_keys; *k && !known; k++)
            known = strcmp(*k, m->string) == 0;
        if (!known) {
            failf(r, "unknown member \"%s\" in the case", m->string);
            return;
        }
    }
    const char *method = str_member(c, "method");
    if (!method) method = "GET";
    const char *path_t = str_member(c, "path");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(c, "status");
    if (!path_t || !cJSON_IsNumber(status)) {
        failf(r, "a case needs \"path\" and \"status\"");
        return;
    }
    char *path = subst(r, path_t, strlen(path_t), NULL);

    /* Body */
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(c, "body");
    const cJSON *rb = cJSON_GetObjectItemCaseSensitive(c, "body_raw");
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(c, "body_base64");
    char *body = NULL;
    size_t bodyn = 0;
    if ((jb != NULL) + (rb != NULL) + (bb != NULL) > 1) {
        failf(r, "give at most one of body, body_raw, body_base64");
        free(path);
        return;
    }
    if (jb) {
        char *t = cJSON_PrintUnformatted(jb);
        body = subst(r, t, strlen(t), &bodyn);
        free(t);
    } else if (rb) {
        if (!cJSON_IsString(rb)) {
            failf(r, "body_raw must be a string");
            free(path);
            return;
        }
        body = subst(r, rb->valuestring, strlen(rb->valuestring), &bodyn);
    } else if (bb) {
        body = cJSON_IsString(bb) ? malloc(strlen(bb->valuestring) + 1) : NULL;
        long n = body ? b64_decode(bb->valuestring, body) : -1;
        if (n < 0) {
            failf(r, "body_base64 must be a base64 string");
            free(body);
            free(path);
            return;
        }
        bodyn = (size_t)n;
    }

    /* Headers */
    char *hv[34];
    int nh = 0;
    bool has_ct = false;
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(c, "headers"))
    {
        if (nh >= 32) break;
        if (strcasecmp(h->string, "Content-Type") == 0) has_ct = true;
        if (cJSON_IsNull(h)) {
            size_t l = strlen(h->string) + 2;
            hv[nh] = malloc(l);
            snprintf(hv[nh++], l, "%s:", h->string);
        } else if (cJSON_IsString(h)) {
            char *v = subst(r, h->valuestring, strlen(h->valuestring), NULL);
            size_t l = strlen(h->string) + strlen(v ? v : "") + 3;
            hv[nh] = malloc(l);
            /* libcurl sends "Name;" as a header with an empty value. */
            if (v && *v)
                snprintf(hv[nh++], l, "%s: %s", h->string, v);
            else
                snprintf(hv[nh++], l, "%s;", h->string);
            free(v);
        } else {
            failf(r, "header %s must be a string or null", h->string);
        }
    }
    if (body && !has_ct) hv[nh++] = strdup("Content-Type: application/json");
    hv[nh] = NULL;

    bool unchanged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "unchanged"));
    struct snap before = {0}, after = {0};
    if (unchanged && snapshot(r, &before)) failf(r, "cannot take the store snapshot before");

    struct resp rs;
    int rc = http(&r->s, method, path, body, bodyn, (const char *const *)hv, &rs);
    long want = (long)status->valuedouble;
    cJSON *rj = rs.body ? cJSON_Parse(rs.body) : NULL;
    if (rc) {
        failf(r, "%s %s: no HTTP answer (transport error)", method, path);
    } else {
        if (rs.status != want)
            failf(r, "%s %s: status %ld, expected %ld; body %.600s", method, path, rs.status, want,
                  rs.body);
        if (rs.status >= 400) check_problem(r, &rs, rj);
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(c, "expect");
        if (ex) {
            char *t = cJSON_PrintUnformatted(ex);
            if (!json_contains(rs.body, t))
                failf(r, "response does not contain %.800s\n    response: %.1200s", t, rs.body);
            free(t);
        }
        const cJSON *eh;
        cJSON_ArrayForEach(eh, cJSON_GetObjectItemCaseSensitive(c, "expect_headers"))
        {
            char buf[512];
            const char *got = resp_header(&rs, eh->string, buf, sizeof(buf));
            if (cJSON_IsNull(eh) && got)
                failf(r, "header %s should be absent, is \"%s\"", eh->string, got);
            else if (cJSON_IsString(eh) && (!got || strcmp(got, eh->valuestring) != 0))
                failf(r, "header %s is \"%s\", expected \"%s\"", eh->string, got ? got : "(absent)",
                      eh->valuestring);
        }
        const cJSON *dc = cJSON_GetObjectItemCaseSensitive(c, "detail_contains");
        const char *detail = str_member(rj, "detail");
        if (cJSON_IsString(dc) || cJSON_IsArray(dc)) {
            const cJSON *one = cJSON_IsString(dc) ? dc : dc->child;
            for (; one; one = cJSON_IsString(dc) ? NULL : one->next)
                if (!cJSON_IsString(one) || !detail || !strstr(detail, one->valuestring))
                    failf(r, "detail \"%s\" does not contain \"%s\"", detail ? detail : "(none)",
                          cJSON_IsString(one) ? one->valuestring : "?");
        } else if (dc) {
            failf(r, "detail_contains must be a string or an array of strings");
        }
        const cJSON *ln;
        cJSON_ArrayForEach(ln, cJSON_GetObjectItemCaseSensitive(c, "lengths"))
        {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(rj, ln->string);
            int got = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
            if (!cJSON_IsNumber(ln) || got != (int)ln->valuedouble)
                failf(r, "member %s has %d elements, expected %d", ln->string, got,
                      cJSON_IsNumber(ln) ? (int)ln->valuedouble : -1);
        }
        const char *lang = str_member(c, "lang");
        if (lang) {
            bool zh = strcmp(lang, "zh-CN") == 0;
            const char *title = str_member(rj, "title");
            if (zh != has_cjk(title))
                failf(r, "title \"%s\" is not in %s", title ? title : "(none)", lang);
            if (zh != has_cjk(detail))
                failf(r, "detail \"%s\" is not in %s", detail ? detail : "(none)", lang);
            const cJSON *e, *errs = zh ? cJSON_GetObjectItemCaseSensitive(rj, "errors") : NULL;
            cJSON_ArrayForEach(e, errs)
            {
                const char *msg = str_member(e, "message");
                if (!has_cjk(msg))
                    failf(r, "errors[].message \"%s\" is not in zh-CN", msg ? msg : "(none)");
            }
        }
        const cJSON *sv;
        cJSON_ArrayForEach(sv, cJSON_GetObjectItemCaseSensitive(c, "save"))
        {
            const cJSON *v = cJSON_IsString(sv) ? json_path(rj, sv->valuestring) : NULL;
            char val[1024];
            if (cJSON_IsString(v))
                snprintf(val, sizeof(val), "%s", v->valuestring);
            else if (cJSON_IsNumber(v))
                snprintf(val, sizeof(val), "%lld", (long long)v->valuedouble);
            else {
                failf(r, "cannot save %s: no string or number at %s", sv->string,
                      cJSON_IsString(sv) ? sv->valuestring : "?");
                continue;
            }
            int k = 0;
            while (k < r->nvars && strcmp(r->vars[k].name, sv->string) != 0)
                k++;
            if (k == MAX_VARS) continue;
            if (k == r->nvars) {
                snprintf(r->vars[k].name, sizeof(r->vars[k].name), "%s", sv->string);
                r->nvars++;
            }
            free(r->vars[k].value);
            r->vars[k].value = strdup(val);
        }
    }
    if (unchanged) {
        if (snapshot(r, &after))
            failf(r, "cannot take the store snapshot after");
        else if (before.text && strcmp(before.counts, after.counts) != 0)
            failf(r, "record counts changed: before [%s] after [%s]", before.counts, after.counts);
        else if (before.text && strcmp(before.text, after.text) != 0)
            failf(r, "the store changed (records, histories or definitions differ)");
    }
    free(before.text);
    free(after.text);
    cJSON_Delete(rj);
    resp_free(&rs);
    for (int i = 0; i < nh; i++)
        free(hv[i]);
    free(body);
    free(path);
}

START_TEST(case_file)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    const char *path = files[_i];
    const char *slash = strrchr(path, '/');
    r.file = slash ? slash + 1 : path;
    char *text = read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    ck_assert_msg(cJSON_IsArray(cases), "%s is not a JSON array", path);
    ck_assert_int_eq(srv_init(&r.s, NULL), 0);
    ck_assert_int_eq(srv_start(&r.s), 0);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        run_case(&r, c);
        n++;
    }
    r.cname = "(end of file)";
    srv_stop(&r.s);
    char *out = NULL;
    int rc = store_check(r.s.dir, &out);
    if (rc) failf(&r, "trellis check failed (%d): %s", rc, out ? out : "");
    free(out);
    fprintf(stderr, "%s: %d case(s), %zu failed check(s)\n", r.file, n, r.nfails);
    srv_cleanup(&r.s);
    cJSON_Delete(cases);
    for (int i = 0; i < r.nvars; i++)
        free(r.vars[i].value);
    char *fails = r.fails;
    size_t nf = r.nfails;
    ck_assert_msg(n > 0, "%s has no cases", path);
    if (nf) {
        /* Every failure was printed above; Check's message has a small size limit. */
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s: %zu failed check(s), the first: %.700s", r.file, nf, fails);
        free(fails);
        ck_abort_msg("%s", msg);
    }
    free(fails);
}
END_TEST

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void find_files(void)
{
    const char *o = getenv("TRELLIS_CASES");
    char dir[900];
    if (o && strlen(o) > 5 && strcmp(o + strlen(o) - 5, ".json") == 0) {
        snprintf(files[nfiles++], sizeof(files[0]), "%s", o);
        return;
    }
    if (o)
        snprintf(dir, sizeof(dir), "%s", o);
    else
        snprintf(dir, sizeof(dir), "%s/tests/integration/cases", trellis_src());
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && nfiles < MAX_FILES) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
            snprintf(files[nfiles++], sizeof(files[0]), "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(files, (size_t)nfiles, sizeof(files[0]), by_name);
}

int main(void)
{
    find_files();
    if (nfiles == 0) {
        fprintf(stderr, "integration_cases: no case files found\n");
        return 1;
    }
    Suite *s = suite_create("integration_cases");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, case_file, 0, nfiles);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
