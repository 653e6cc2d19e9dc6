/* GET /api/v1/events: server-sent events of the changes the caller may see. An administrator's
 * stream carries every change in order, promptly; a partner's only their org's records, without
 * hidden fields or types they cannot read; Last-Event-ID and after= resume exactly; types=
 * filters; bad parameters are refused naming them; idle streams get heartbeats; a revoked token
 * or a disabled user ends the stream; the stream limit answers 503 and a stop with open streams
 * is prompt and clean. The heartbeat and the credential check are shortened for the suite
 * (TRELLIS_EVENTS_HEARTBEAT_MS, TRELLIS_EVENTS_RECHECK_MS). */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct srv S;
static char A[128], B[128], FIN[128], REV[128]; /* Authorization headers */
static const char *MR = "/api/v1/records/marketing_request";

/* True when the response headers hold line (case-insensitive, e.g. "cache-control: no-store"). */
static bool has_header(const char *hdr, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = hdr; *p; p++)
        if (strncasecmp(p, line, n) == 0) return true;
    return false;
}

/* json_contains on a parsed value. */
static bool tree_contains(const cJSON *j, const char *subset)
{
    char *txt = cJSON_PrintUnformatted(j);
    bool ok = txt && json_contains(txt, subset);
    free(txt);
    return ok;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------------
 * A server-sent events client on libcurl's multi interface: one transfer, pumped by the test.
 */
struct sse {
    CURLM *m;
    CURL *e;
    struct curl_slist *hl;
    char *buf;       /* every byte of the body so far (NUL-terminated) */
    size_t n;        /* its length */
    char hdr[2048];  /* response headers */
    size_t hn;       /* their length */
    bool done;       /* the transfer ended */
    CURLcode result; /* how it ended */
    long status;     /* HTTP status */
};

static size_t sse_body(char *p, size_t size, size_t nm, void *ud)
{
    struct sse *s = ud;
    size_t len = size * nm;
    char *nb = realloc(s->buf, s->n + len + 1);
    if (!nb) return 0;
    memcpy(nb + s->n, p, len);
    s->n += len;
    nb[s->n] = 0;
    s->buf = nb;
    return len;
}

static size_t sse_header(char *p, size_t size, size_t nm, void *ud)
{
    struct sse *s = ud;
    size_t len = size * nm;
    if (s->hn + len < sizeof(s->hdr)) {
        memcpy(s->hdr + s->hn, p, len);
        s->hn += len;
        s->hdr[s->hn] = 0;
    }
    return len;
}

/* Runs the transfer for up to ms milliseconds (less when it ends). */
static void sse_pump(struct sse *s, int ms)
{
    int64_t end = now_ms() + ms;
    while (!s->done) {
        int running = 0;
        curl_multi_perform(s->m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                s->done = true;
                s->result = msg->data.result;
            }
        if (s->done || !running) {
            s->done = true;
            break;
        }
        int64_t rest = end - now_ms();
        if (rest <= 0) break;
        curl_multi_poll(s->m, NULL, 0, (int)(rest < 50 ? rest : 50), NULL);
    }
    curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &s->status);
}

/* Opens path as auth (NULL: the harness's administrator) with one more header (or NULL) and
 * waits (bounded) for the response to start. */
static void sse_open(struct sse *s, const char *auth, const char *path, const char *extra)
{
    memset(s, 0, sizeof(*s));
    s->buf = calloc(1, 1);
    s->m = curl_multi_init();
    s->e = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", S.port, path);
    s->hl = curl_slist_append(NULL, auth ? auth : S.auth);
    s->hl = curl_slist_append(s->hl, "Accept: text/event-stream");
    if (extra) s->hl = curl_slist_append(s->hl, extra);
    curl_easy_setopt(s->e, CURLOPT_URL, url);
    curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, s->hl);
    curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, sse_body);
    curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->e, CURLOPT_HEADERFUNCTION, sse_header);
    curl_easy_setopt(s->e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->e, CURLOPT_TIMEOUT, 120L); /* a backstop: every wait below is shorter */
    curl_multi_add_handle(s->m, s->e);
    for (int i = 0; i < 100 && !s->done && !strstr(s->hdr, "\r\n\r\n"); i++)
        sse_pump(s, 50);
}

static void sse_close(struct sse *s)
{
    if (s->m) {
        curl_multi_remove_handle(s->m, s->e);
        curl_easy_cleanup(s->e);
        curl_multi_cleanup(s->m);
    }
    curl_slist_free_all(s->hl);
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

/* Pumps until the body holds needle (true) or ms pass or the stream ends (false). */
static bool sse_wait(struct sse *s, const char *needle, int ms)
{
    int64_t end = now_ms() + ms;
    while (!strstr(s->buf, needle)) {
        int64_t rest = end - now_ms();
        if (rest <= 0 || s->done) return strstr(s->buf, needle) != NULL;
        sse_pump(s, (int)(rest < 50 ? rest : 50));
    }
    return true;
}

/* Pumps until the transfer ends (true) or ms pass. */
static bool sse_wait_end(struct sse *s, int ms)
{
    int64_t end = now_ms() + ms;
    while (!s->done && now_ms() < end)
        sse_pump(s, 50);
    return s->done;
}

/* One parsed event. */
struct ev {
    long long id;
    char event[32];
    cJSON *data;
};

/* The complete events of the body so far (comments and retry: skipped); returns the count. */
static int sse_events(const struct sse *s, struct ev *out, int cap)
{
    int n = 0;
    const char *p = s->buf;
    for (const char *end; n < cap && (end = strstr(p, "\n\n")); p = end + 2) {
        struct ev e = {.id = -1};
        bool any = false;
        for (const char *l = p; l < end;) {
            const char *nl = memchr(l, '\n', (size_t)(end - l));
            size_t ll = nl ? (size_t)(nl - l) : (size_t)(end - l);
            if (ll > 4 && strncmp(l, "id: ", 4) == 0) {
                e.id = strtoll(l + 4, NULL, 10);
                any = true;
            } else if (ll > 7 && strncmp(l, "event: ", 7) == 0) {
                snprintf(e.event, sizeof(e.event), "%.*s", (int)(ll - 7), l + 7);
            } else if (ll > 6 && strncmp(l, "data: ", 6) == 0) {
                e.data = cJSON_ParseWithLength(l + 6, ll - 6);
                ck_assert_msg(e.data != NULL, "data is not JSON: %.*s", (int)ll, l);
            }
            l += ll + 1;
        }
        if (any)
            out[n++] = e;
        else
            cJSON_Delete(e.data);
    }
    return n;
}

static void evs_free(struct ev *e, int n)
{
    for (int i = 0; i < n; i++)
        cJSON_Delete(e[i].data);
}

/* ---------------------------------------------------------------------------------------------
 * Fixtures
 */
static void setup(void)
{
    setenv("TRELLIS_EVENTS_HEARTBEAT_MS", "300", 1);
    setenv("TRELLIS_EVENTS_RECHECK_MS", "400", 1);
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    cli_run3(&S, "org", "add", "acme");
    cli_run3(&S, "org", "add", "globex");
    cli_add_user(&S, "ann", "partner", "acme", "tk_ann", A, sizeof(A));
    cli_add_user(&S, "bob", "partner", "globex", "tk_bob", B, sizeof(B));
    cli_add_user(&S, "fay", "finance", NULL, "tk_fay", FIN, sizeof(FIN));
    cli_add_user(&S, "rita", "reviewer", NULL, "tk_rita", REV, sizeof(REV));
    ck_assert_int_eq(srv_start(&S), 0);
}

static void teardown(void)
{
    srv_teardown(&S);
}

static long req(const char *hdr, const char *method, const char *path, const char *body,
                struct resp *out)
{
    return api_request(&S, hdr, NULL, method, path, body, out);
}

/* Creates a marketing request as hdr (NULL: admin); its id. */
static long long create_mr(const char *hdr, const char *title)
{
    return api_create_request(&S, hdr, title);
}

/* Types of the suite: claim ("approved" hidden from partners, who work in their org) and memo
 * (reviewers only: partners have no rights on it). */
static void define_types(void)
{
    const char *claim =
        "{\"name\":\"claim\",\"fields\":[{\"name\":\"amount\",\"type\":\"decimal\"},"
        "{\"name\":\"note\",\"type\":\"text\"},{\"name\":\"approved\",\"type\":\"decimal\"}],"
        "\"permissions\":{\"partner\":{\"create\":\"org\",\"read\":\"org\",\"update\":\"org\","
        "\"fields\":{\"approved\":\"hidden\"}},\"finance\":{\"read\":\"all\",\"update\":\"all\","
        "\"fields\":{\"amount\":\"read\",\"note\":\"read\"}}}}";
    const char *memo = "{\"name\":\"memo\",\"fields\":[{\"name\":\"text\",\"type\":\"text\"}],"
                       "\"permissions\":{\"reviewer\":{\"read\":\"all\"}}}";
    ck_assert_int_eq(req(S.auth, "PUT", "/api/v1/meta/types/claim", claim, NULL), 201);
    ck_assert_int_eq(req(S.auth, "PUT", "/api/v1/meta/types/memo", memo, NULL), 201);
}

static long long create_as(const char *hdr, const char *type, const char *body)
{
    return api_create(&S, hdr, body, "/api/v1/records/%s", type);
}

/* The write answered 2xx; its event must be on the stream within a second. */
#define EXPECT_EVENT_SOON(st, needle)                                                              \
    do {                                                                                           \
        int64_t t0_ = now_ms();                                                                    \
        ck_assert_msg(sse_wait(st, needle, 1000), "no '%s' within 1 s; stream:\n%s", needle,       \
                      (st)->buf);                                                                  \
        ck_assert_int_lt(now_ms() - t0_, 1000);                                                    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Tests
 */
START_TEST(admin_sees_every_change_in_order)
{
    /* The default heartbeat (15 s) and credential check (60 s): nothing but the commit can wake
     * the stream in time. */
    srv_stop(&S);
    unsetenv("TRELLIS_EVENTS_HEARTBEAT_MS");
    unsetenv("TRELLIS_EVENTS_RECHECK_MS");
    ck_assert_int_eq(srv_start(&S), 0);
    struct sse st;
    sse_open(&st, NULL, "/api/v1/events", NULL);
    ck_assert_int_eq(st.status, 200);
    ck_assert_msg(has_header(st.hdr, "content-type: text/event-stream"), "%s", st.hdr);
    ck_assert_msg(has_header(st.hdr, "cache-control: no-store"), "%s", st.hdr);
    ck_assert_msg(sse_wait(&st, "retry: 2000\n\n", 2000), "%s", st.buf);
    ck_assert_msg(strncmp(st.buf, "retry: 2000\n\n", 13) == 0, "retry first: %s", st.buf);

    long long id = create_mr(NULL, "stream me");
    char needle[64];
    snprintf(needle, sizeof(needle), "\"id\":%lld,", id);
    EXPECT_EVENT_SOON(&st, "event: create\n");
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    ck_assert_int_eq(req(S.auth, "PATCH", path, "{\"title\":\"streamed\"}", NULL), 200);
    EXPECT_EVENT_SOON(&st, "event: update\n");
    snprintf(path, sizeof(path), "%s/%lld/transitions/submit", MR, id);
    ck_assert_int_eq(
        req(S.auth, "POST", path, "{\"fields\":{\"start_date\":\"2026-03-01\"}}", NULL), 200);
    EXPECT_EVENT_SOON(&st, "event: transition\n");
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    ck_assert_int_eq(req(S.auth, "DELETE", path, NULL, NULL), 204);
    EXPECT_EVENT_SOON(&st, "event: delete\n");

    struct ev e[16];
    int n = sse_events(&st, e, 16);
    ck_assert_msg(n == 4, "want 4 events, got %d:\n%s", n, st.buf);
    static const char *want[] = {"create", "update", "transition", "delete"};
    for (int i = 0; i < 4; i++) {
        const cJSON *d = e[i].data;
        ck_assert_str_eq(e[i].event, want[i]);
        ck_assert_str_eq(obj_str(d, "action"), want[i]);
        if (i) ck_assert_int_gt(e[i].id, e[i - 1].id);
        ck_assert_int_eq(obj_int(d, "seq"), e[i].id);
        ck_assert_str_eq(obj_str(d, "type"), "marketing_request");
        ck_assert_int_eq(obj_int(d, "id"), id);
        ck_assert_int_eq(obj_int(d, "hist_seq"), i + 1);
        if (i < 3) ck_assert_int_eq(obj_int(d, "version"), i + 1);
        ck_assert_str_eq(obj_str(d, "actor"), "admin");
        ck_assert(obj_str(d, "at") != NULL);
        ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(d, "changes")));
    }
    /* The name while the record lives; null once it is deleted. */
    ck_assert(strncmp(obj_str(e[0].data, "name"), "MR-", 3) == 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e[3].data, "name")));
    ck_assert(tree_contains(
        e[1].data, "{\"changes\":{\"title\":{\"from\":\"stream me\",\"to\":\"streamed\"}}}"));
    ck_assert(tree_contains(e[2].data,
                            "{\"transition\":\"submit\",\"from\":\"draft\",\"to\":\"submitted\"}"));
    evs_free(e, n);
    /* The gauge counts it. */
    struct resp r;
    ck_assert_int_eq(http_anon(&S, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    ck_assert_msg(strstr(r.body, "trellis_event_streams 1\n") != NULL, "%s", r.body);
    resp_free(&r);
    sse_close(&st);
}
END_TEST

START_TEST(partner_sees_only_their_org_without_hidden_fields)
{
    define_types();
    struct sse ann, adm, all;
    sse_open(&ann, A, "/api/v1/events", NULL);
    sse_open(&adm, NULL, "/api/v1/events", NULL);
    ck_assert_int_eq(ann.status, 200);
    ck_assert(sse_wait(&ann, "retry: 2000\n\n", 2000));
    /* Another org's claim, the company's (hq) request, a memo, and ann's own claim. */
    long long b1 = create_as(B, "claim", "{\"amount\":\"5\",\"note\":\"globex secret\"}");
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/records/claim/%lld", b1);
    ck_assert_int_eq(req(B, "PATCH", path, "{\"note\":\"globex again\"}", NULL), 200);
    ck_assert_int_eq(req(FIN, "PATCH", path, "{\"approved\":\"4\"}", NULL), 200);
    long long hq = create_mr(NULL, "hq plan");
    long long memo = create_as(S.auth, "memo", "{\"text\":\"board memo\"}");
    long long a1 = create_as(A, "claim", "{\"amount\":\"120.50\",\"note\":\"booth\"}");
    EXPECT_EVENT_SOON(&ann, "\"note\":{\"from\":null,\"to\":\"booth\"}");
    /* Finance approves ann's claim: ann hears of the change, never of the value. */
    snprintf(path, sizeof(path), "/api/v1/records/claim/%lld", a1);
    ck_assert_int_eq(req(FIN, "PATCH", path, "{\"approved\":\"100\"}", NULL), 200);
    ck_assert_int_eq(req(A, "PATCH", path, "{\"note\":\"booth 2\"}", NULL), 200);
    EXPECT_EVENT_SOON(&ann, "\"to\":\"booth 2\"");
    /* The administrator's stream has every one of them, the hidden value too (the data is
     * there to leak). */
    ck_assert_msg(sse_wait(&adm, "\"to\":\"booth 2\"", 1000), "%s", adm.buf);
    ck_assert(strstr(adm.buf, "\"approved\":{\"from\":null,\"to\":\"100.00\"}") != NULL);
    ck_assert(strstr(adm.buf, "globex secret") != NULL && strstr(adm.buf, "board memo") != NULL);
    ck_assert(strstr(adm.buf, "hq plan") != NULL);

    struct ev e[32];
    int n = sse_events(&ann, e, 32);
    ck_assert_msg(n == 3, "ann: want 3 events, got %d:\n%s", n, ann.buf);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(obj_str(e[i].data, "type"), "claim");
        ck_assert_int_eq(obj_int(e[i].data, "id"), a1);
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(e[i].data, "changes");
        ck_assert(cJSON_GetObjectItemCaseSensitive(ch, "approved") == NULL);
    }
    /* Finance's change is there, emptied of the hidden field. */
    ck_assert_str_eq(obj_str(e[1].data, "actor"), "fay");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e[1].data, "changes")), 0);
    evs_free(e, n);
    ck_assert_msg(strstr(ann.buf, "approved") == NULL && strstr(ann.buf, "100.00") == NULL,
                  "hidden field on ann's stream:\n%s", ann.buf);
    ck_assert_msg(strstr(ann.buf, "globex") == NULL && strstr(ann.buf, "memo") == NULL &&
                      strstr(ann.buf, "marketing_request") == NULL,
                  "another org's, hq's or an unreadable type's change on ann's stream:\n%s",
                  ann.buf);
    (void)hq, (void)memo;

    /* The whole log replayed for ann: still only her org's claim; and bob sees only his. */
    sse_open(&all, A, "/api/v1/events?after=0", NULL);
    ck_assert_msg(sse_wait(&all, "\"to\":\"booth 2\"", 2000), "%s", all.buf);
    n = sse_events(&all, e, 32);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(obj_int(e[i].data, "id"), a1);
    evs_free(e, n);
    ck_assert(strstr(all.buf, "approved") == NULL && strstr(all.buf, "globex") == NULL);
    sse_close(&all);
    sse_open(&all, B, "/api/v1/events?after=0", NULL);
    char bneedle[64];
    snprintf(bneedle, sizeof(bneedle), "\"to\":\"globex again\"");
    ck_assert_msg(sse_wait(&all, bneedle, 2000), "%s", all.buf);
    sse_pump(&all, 300);
    ck_assert_msg(strstr(all.buf, "booth") == NULL && strstr(all.buf, "approved") == NULL &&
                      strstr(all.buf, "hq plan") == NULL && strstr(all.buf, "board memo") == NULL,
                  "bob:\n%s", all.buf);
    sse_close(&all);
    /* A type ann may not read does not exist for her. */
    struct resp r;
    ck_assert_int_eq(req(A, "GET", "/api/v1/events?types=memo", NULL, &r), 400);
    ck_assert(json_contains(r.body, "{\"field\":\"types\"}"));
    resp_free(&r);
    /* The reviewer reads every request and memo but has no rights on claims. */
    sse_open(&all, REV, "/api/v1/events?after=0", NULL);
    ck_assert_msg(sse_wait(&all, "board memo", 2000), "%s", all.buf);
    ck_assert(strstr(all.buf, "hq plan") != NULL && strstr(all.buf, "\"type\":\"claim\"") == NULL);
    sse_close(&all);
    sse_close(&ann);
    sse_close(&adm);
}
END_TEST

/* The record ids of the events of st, in order, into ids; their count. */
static int event_record_ids(const struct sse *st, long long *ids, long long *seqs, int cap)
{
    struct ev e[64];
    int n = sse_events(st, e, cap < 64 ? cap : 64);
    for (int i = 0; i < n; i++) {
        ids[i] = obj_int(e[i].data, "id");
        seqs[i] = e[i].id;
    }
    evs_free(e, n);
    return n;
}

START_TEST(resume_delivers_exactly_the_missed_events)
{
    struct sse st;
    long long r0 = create_mr(NULL, "before any stream");
    /* No start: from the end (r0 is not replayed). */
    sse_open(&st, NULL, "/api/v1/events", NULL);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    long long r1 = create_mr(NULL, "one"), r2 = create_mr(NULL, "two");
    EXPECT_EVENT_SOON(&st, "\"to\":\"two\"");
    long long ids[16], seqs[16];
    int n = event_record_ids(&st, ids, seqs, 16);
    ck_assert_int_eq(n, 2);
    ck_assert(ids[0] == r1 && ids[1] == r2 && r0 != r1);
    long long last = seqs[1];
    sse_close(&st);
    /* Missed while disconnected. */
    long long r3 = create_mr(NULL, "three"), r4 = create_mr(NULL, "four");
    char h[64], path[64];
    snprintf(h, sizeof(h), "Last-Event-ID: %lld", last);
    /* Last-Event-ID wins over after= (an EventSource reconnects to the same URL). */
    sse_open(&st, NULL, "/api/v1/events?after=0", h);
    ck_assert_msg(sse_wait(&st, "\"to\":\"four\"", 2000), "%s", st.buf);
    long long r5 = create_mr(NULL, "five");
    EXPECT_EVENT_SOON(&st, "\"to\":\"five\"");
    n = event_record_ids(&st, ids, seqs, 16);
    ck_assert_msg(n == 3, "want r3 r4 r5 once each, got %d:\n%s", n, st.buf);
    ck_assert(ids[0] == r3 && ids[1] == r4 && ids[2] == r5);
    ck_assert(seqs[0] > last && seqs[1] > seqs[0] && seqs[2] > seqs[1]);
    sse_close(&st);
    /* after= the same. */
    snprintf(path, sizeof(path), "/api/v1/events?after=%lld", last);
    sse_open(&st, NULL, path, NULL);
    ck_assert_msg(sse_wait(&st, "\"to\":\"five\"", 2000), "%s", st.buf);
    sse_pump(&st, 300);
    n = event_record_ids(&st, ids, seqs, 16);
    ck_assert_msg(n == 3 && ids[0] == r3 && ids[1] == r4 && ids[2] == r5, "%s", st.buf);
    sse_close(&st);
    /* A sequence past the end starts at the end. */
    sse_open(&st, NULL, "/api/v1/events?after=999999999", NULL);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    long long r6 = create_mr(NULL, "six");
    EXPECT_EVENT_SOON(&st, "\"to\":\"six\"");
    n = event_record_ids(&st, ids, seqs, 16);
    ck_assert_msg(n == 1 && ids[0] == r6, "%s", st.buf);
    sse_close(&st);
}
END_TEST

START_TEST(types_filter_and_bad_parameters)
{
    define_types();
    struct sse st;
    sse_open(&st, NULL, "/api/v1/events?types=memo,claim", NULL);
    ck_assert_int_eq(st.status, 200);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    create_mr(NULL, "not wanted");
    create_as(S.auth, "memo", "{\"text\":\"wanted memo\"}");
    create_mr(NULL, "not wanted either");
    create_as(A, "claim", "{\"amount\":\"1\",\"note\":\"wanted claim\"}");
    EXPECT_EVENT_SOON(&st, "wanted claim");
    ck_assert(strstr(st.buf, "wanted memo") != NULL);
    ck_assert_msg(strstr(st.buf, "not wanted") == NULL &&
                      strstr(st.buf, "marketing_request") == NULL,
                  "%s", st.buf);
    sse_close(&st);

    static const struct {
        const char *path, *header, *field;
    } bad[] = {
        {"/api/v1/events?after=abc", NULL, "after"},
        {"/api/v1/events?after=-1", NULL, "after"},
        {"/api/v1/events?after=1.5", NULL, "after"},
        {"/api/v1/events?after=", NULL, "after"},
        {"/api/v1/events?after=99999999999999999999", NULL, "after"},
        {"/api/v1/events", "Last-Event-ID: x1", "Last-Event-ID"},
        {"/api/v1/events?types=nope", NULL, "types"},
        {"/api/v1/events?types=claim,nope", NULL, "types"},
        {"/api/v1/events?types=", NULL, "types"},
        {"/api/v1/events?types=claim,", NULL, "types"},
        {"/api/v1/events?since=1", NULL, "since"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r;
        const char *h[] = {bad[i].header, NULL};
        http(&S, "GET", bad[i].path, NULL, 0, bad[i].header ? h : NULL, &r);
        ck_assert_msg(r.status == 400, "%s: %ld %s", bad[i].path, r.status, r.body);
        char ct[128];
        ck_assert(resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                  strstr(ct, "application/problem+json"));
        cJSON *j = resp_json(&r);
        ck_assert_msg(str_eq(obj_str(j, "field"), bad[i].field), "%s: %s", bad[i].path, r.body);
        cJSON_Delete(j);
        resp_free(&r);
    }
    /* Anonymous: 401 problem+json; only GET. */
    struct resp r;
    ck_assert_int_eq(http_anon(&S, "GET", "/api/v1/events", NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 401);
    char ct[128];
    ck_assert(resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
              strstr(ct, "application/problem+json"));
    resp_free(&r);
    const char *bogus[] = {"Authorization: Bearer trl_nope", NULL};
    http(&S, "GET", "/api/v1/events", NULL, 0, bogus, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    ck_assert_int_eq(req(S.auth, "POST", "/api/v1/events", "{}", NULL), 405);
}
END_TEST

START_TEST(idle_stream_gets_heartbeats)
{
    struct sse st;
    sse_open(&st, A, "/api/v1/events", NULL);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    /* The suite's heartbeat is 300 ms (15 s by default). */
    ck_assert_msg(sse_wait(&st, ": keep-alive\n\n", 2000), "%s", st.buf);
    const char *first = strstr(st.buf, ": keep-alive\n\n");
    ck_assert_msg(sse_wait(&st, ": keep-alive\n\n: keep-alive\n\n", 2000) ||
                      strstr(first + 14, ": keep-alive\n\n"),
                  "%s", st.buf);
    ck_assert(!st.done);
    /* Still live after the heartbeats: a change arrives. */
    create_as(A, "marketing_request",
              "{\"title\":\"after beats\",\"partner\":\"P\",\"region\":\"east\",\"budget\":\"1\"}");
    EXPECT_EVENT_SOON(&st, "after beats");
    sse_close(&st);
}
END_TEST

START_TEST(revoked_token_or_disabled_user_ends_the_stream)
{
    struct sse st, st2;
    sse_open(&st, A, "/api/v1/events", NULL);
    sse_open(&st2, B, "/api/v1/events", NULL);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    ck_assert(sse_wait(&st2, "retry: 2000\n\n", 2000));
    sse_pump(&st, 600);
    ck_assert(!st.done);
    ck_assert_int_eq(req(S.auth, "DELETE", "/api/v1/auth/tokens/tk_ann", NULL, NULL), 204);
    int64_t t0 = now_ms();
    /* The suite checks credentials every 400 ms (60 s by default). */
    ck_assert_msg(sse_wait_end(&st, 3000), "the stream outlived its revoked token:\n%s", st.buf);
    ck_assert_int_lt(now_ms() - t0, 3000);
    ck_assert_int_eq(st.result, CURLE_OK); /* ended cleanly, not cut */
    ck_assert_int_eq(req(A, "GET", "/api/v1/events", NULL, NULL), 401);
    /* Disabling bob ends his. */
    ck_assert(!st2.done);
    ck_assert_int_eq(req(S.auth, "PATCH", "/api/v1/users/bob", "{\"active\":false}", NULL), 200);
    ck_assert_msg(sse_wait_end(&st2, 3000), "the stream outlived its user:\n%s", st2.buf);
    sse_close(&st);
    sse_close(&st2);
}
END_TEST

START_TEST(a_browser_session_streams_until_it_ends)
{
    struct resp r;
    ck_assert_int_eq(req(S.auth, "POST", "/api/v1/users",
                         "{\"name\":\"cal\",\"roles\":[\"partner\"],\"org\":\"acme\","
                         "\"password\":\"cal's long password\"}",
                         &r),
                     201);
    resp_free(&r);
    const char *body = "{\"username\":\"cal\",\"password\":\"cal's long password\"}";
    const char *hj[] = {"Content-Type: application/json", NULL};
    http_anon(&S, "POST", "/api/v1/auth/login", body, strlen(body), hj, &r);
    ck_assert_int_eq(r.status, 200);
    char sc[300], cookie[200], csrf[100];
    ck_assert(resp_header(&r, "Set-Cookie", sc, sizeof(sc)) != NULL);
    snprintf(cookie, sizeof(cookie), "Cookie: %.*s", (int)strcspn(sc, ";"), sc);
    const char *x = strstr(r.body, "\"csrf_token\":\"");
    ck_assert(x != NULL);
    snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %.64s", x + 14);
    resp_free(&r);
    /* The cookie instead of a token: cal (acme) hears of ann's request, not of bob's. */
    struct sse st;
    sse_open(&st, cookie, "/api/v1/events", NULL);
    ck_assert_int_eq(st.status, 200);
    ck_assert(sse_wait(&st, "retry: 2000\n\n", 2000));
    create_mr(B, "globex by bob");
    create_mr(A, "acme by ann");
    EXPECT_EVENT_SOON(&st, "acme by ann");
    ck_assert(strstr(st.buf, "globex by bob") == NULL);
    /* Logging out ends the session, and the stream with it. */
    const char *hl[] = {cookie, csrf, NULL};
    http_anon(&S, "POST", "/api/v1/auth/logout", NULL, 0, hl, &r);
    ck_assert_int_eq(r.status, 204);
    resp_free(&r);
    ck_assert_msg(sse_wait_end(&st, 3000), "the stream outlived its session:\n%s", st.buf);
    sse_close(&st);
}
END_TEST

/* The value of the gauge on /metrics, -1 when absent. */
static long gauge(void)
{
    struct resp r;
    long v = -1;
    if (http_anon(&S, "GET", "/metrics", NULL, 0, NULL, &r) == 0) {
        const char *p = strstr(r.body, "\ntrellis_event_streams ");
        if (p) v = strtol(p + 23, NULL, 10);
    }
    resp_free(&r);
    return v;
}

START_TEST(stream_limit_and_prompt_clean_stop)
{
    /* A server of its own with room for two streams. */
    srv_stop(&S);
    snprintf(S.extra, sizeof(S.extra), "--max-streams 2 --deadline 2");
    ck_assert_int_eq(srv_start(&S), 0);
    struct sse s1, s2, s3;
    sse_open(&s1, NULL, "/api/v1/events", NULL);
    sse_open(&s2, A, "/api/v1/events", NULL);
    ck_assert(sse_wait(&s1, "retry: 2000\n\n", 2000) && sse_wait(&s2, "retry: 2000\n\n", 2000));
    /* Streams outlive the per-request deadline (2 s here). */
    sse_pump(&s1, 3000);
    ck_assert_msg(!s1.done && !s2.done, "a stream was cut by the request deadline");
    ck_assert_int_eq(gauge(), 2);
    struct resp r;
    ck_assert_int_eq(req(B, "GET", "/api/v1/events", NULL, &r), 503);
    char h[64];
    ck_assert(resp_header(&r, "Retry-After", h, sizeof(h)) != NULL);
    ck_assert(resp_header(&r, "Content-Type", h, sizeof(h)) &&
              strstr(h, "application/problem+json"));
    resp_free(&r);
    /* A closed stream frees its place (noticed at its next heartbeat at the latest). */
    sse_close(&s2);
    WAIT_FOR(gauge() == 1, "the closed stream still counts: %ld", gauge());
    sse_open(&s3, B, "/api/v1/events", NULL);
    ck_assert_int_eq(s3.status, 200);
    ck_assert(sse_wait(&s3, "retry: 2000\n\n", 2000));
    /* Stop with both streams open: prompt, exit status 0 (ASan/LSan clean), streams ended. */
    int64_t t0 = now_ms();
    kill(S.pid, SIGTERM);
    int status = -1;
    bool exited = false;
    while (!exited && now_ms() - t0 < 10000) {
        sse_pump(&s1, 5);
        sse_pump(&s3, 5);
        if (s1.done && s3.done) wait_ms(10);
        exited = waitpid(S.pid, &status, WNOHANG) == S.pid;
    }
    ck_assert_msg(exited, "the server did not stop within ~10 s with open streams");
    S.pid = 0;
    ck_assert_msg(now_ms() - t0 < 5000, "stop took %lld ms", (long long)(now_ms() - t0));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    ck_assert(sse_wait_end(&s1, 2000) && sse_wait_end(&s3, 2000));
    ck_assert_int_eq(s1.result, CURLE_OK);
    ck_assert_int_eq(s3.result, CURLE_OK);
    sse_close(&s1);
    sse_close(&s3);
    char *log = read_file(S.log, NULL);
    ck_assert(log != NULL);
    ck_assert_msg(!strstr(log, "AddressSanitizer") && !strstr(log, "LeakSanitizer") &&
                      !strstr(log, "runtime error") && !strstr(log, "Fatal error"),
                  "%s", log);
    free(log);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("integration_events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, admin_sees_every_change_in_order);
    tcase_add_test(tc, partner_sees_only_their_org_without_hidden_fields);
    tcase_add_test(tc, resume_delivers_exactly_the_missed_events);
    tcase_add_test(tc, types_filter_and_bad_parameters);
    tcase_add_test(tc, idle_stream_gets_heartbeats);
    tcase_add_test(tc, revoked_token_or_disabled_user_ends_the_stream);
    tcase_add_test(tc, a_browser_session_streams_until_it_ends);
    tcase_add_test(tc, stream_limit_and_prompt_clean_stop);
    suite_add_tcase(s, tc);
    int failed = run_suite(s);
    curl_global_cleanup();
    return failed;
}
