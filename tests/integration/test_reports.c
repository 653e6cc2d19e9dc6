/* Reports against the real server (runtime/report, runtime/http/reports.c): property tests
 * (issue 6) over a random, seeded data set.
 *
 * The data set (built once, by an unchecked fixture): a few hundred marketing_request records
 * created over HTTP as two partners of acme, one of globex and the administrator, with random
 * regions, budgets (two places, some near the top of the field's range so that sums pass 2^63
 * cents), partners (some Chinese, some with commas and quotes), start dates; moved through submit,
 * start_review and the approval routes (approve, return, reject; the director step over 50,000)
 * while the test clock (`serve --test-clock`) jumps minutes to days between batches; a few deleted.
 * The suite keeps its own model of every record; the times each entered its states are read back
 * from GET /api/v1/records/{type}/{id}/history and their sequence checked against the model.
 *
 * What it proves:
 *  - random ad-hoc definitions (POST /api/v1/reports/run: filters from a small grammar, with
 *    @param.x parameters given in the query string or by default, 0..2 group-bys incl. date and
 *    datetime buckets in Asia/Shanghai, count, count_distinct, sum/avg/min/max, durations between
 *    states and in a state in elapsed and cn_office business time with count/avg/min/max/median/
 *    p90, sort and limit) answer exactly what a brute-force computation over the model answers;
 *  - stored reports run by partners count only their org's records (counts by state or region
 *    from their org's counters), reviewers and auditors all of them, and a report that filters,
 *    groups or measures a field hidden from the caller's role answers 403 naming the field;
 *  - the counters behind requests_by_state equal a brute-force count after creates, transitions,
 *    deletes, and after kill -9 and a restart; `trellis check` stays clean;
 *  - bad definitions are refused with 422 naming the path and nothing is stored; a scan over
 *    --report-max-scan answers 400 while the counters still answer;
 *  - CSV: BOM, header labels in English and Chinese (Accept-Language), enum and state values as
 *    their labels, CRLF, quoting exactly when needed, the same cells as the JSON;
 *  - dashboards: every widget with its data; a widget whose report is gone carries its error.
 *
 * Seed: TRELLIS_SEED overrides the default (printed on stderr).
 * The test case "regressions" holds tests of runtime bugs found while writing this suite. It is
 * registered only when TRELLIS_REPORT_REGRESSIONS is set, so that CI stays green; each says what
 * it expects and what happens.
 */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef __int128 i128;

static const char *MR = "/api/v1/records/marketing_request";

/* ---------------------------------------------------------------------------------------------
 * Servers and users
 */
enum { ANN, AMY, BOB, RITA, FAY, DAN, AUD, NUSERS };
static const struct test_user USERS0[NUSERS] = {
    [ANN] = {"ann", "partner", "acme", ""},   [AMY] = {"amy", "partner", "acme", ""},
    [BOB] = {"bob", "partner", "globex", ""}, [RITA] = {"rita", "reviewer", NULL, ""},
    [FAY] = {"fay", "finance", NULL, ""},     [DAN] = {"dan", "director", NULL, ""},
    [AUD] = {"aud", "auditor", NULL, ""}, /* reads all, budget and partner hidden */
};
static struct test_user U[NUSERS]; /* users of the shared server S */
static struct srv S;               /* the shared server with the data set */
static struct srv *SV = &S;        /* the server the helpers talk to */
static struct test_user *UU = U;   /* and its users */
#define H(u) (UU[u].hdr)

/* Creates a data dir with the orgs and users, starts it (extra serve arguments). */
static void server_up(struct srv *s, struct test_user *users, const char *extra)
{
    memcpy(users, USERS0, sizeof(USERS0));
    srv_up(s, extra, (const char *[]){"acme", "globex", NULL}, users, NUSERS);
}

/* A server of the test's own (serve arguments extra) with users of its own, made by server_up;
 * the helpers talk to it until own_server_down. */
static struct srv OWN;
static struct test_user OWN_U[NUSERS];

static void own_server_up(const char *extra)
{
    SV = &OWN;
    UU = OWN_U;
    server_up(&OWN, OWN_U, extra);
}

/* Points the helpers back at the shared server, then stops, checks and removes OWN. */
static void own_server_down(void)
{
    SV = &S;
    UU = U;
    srv_teardown(&OWN);
}

static long call(const char *auth, const char *method, const char *body, struct resp *out,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static long call(const char *auth, const char *method, const char *body, struct resp *out,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    long st = api_vcall(SV, auth, method, body, out, fmt, ap);
    va_end(ap);
    return st;
}

/* A request with extra headers (NULL-terminated, at most 6) as auth (NULL: admin). */
static long call_h(const char *auth, const char *method, const char *path, const char *body,
                   const char *const *extra, struct resp *out)
{
    const char *h[10];
    int n = 0;
    if (body) h[n++] = "Content-Type: application/json";
    if (auth) h[n++] = auth;
    for (int i = 0; extra && extra[i] && n < 9; i++)
        h[n++] = extra[i];
    h[n] = NULL;
    http(SV, method, path, body, body ? strlen(body) : 0, h, out);
    return out->status;
}

/* ---------------------------------------------------------------------------------------------
 * Random numbers (splitmix64), seeded
 */
static uint64_t SEED, rng_state;

static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int rnd(int n)
{
    return (int)(rnd64() % (uint64_t)n);
}

static int64_t rnd_range(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1));
}

static bool chance(int pct)
{
    return rnd(100) < pct;
}

static void seed_init(void)
{
    const char *e = getenv("TRELLIS_SEED");
    SEED = e && *e ? strtoull(e, NULL, 0) : 20260611ULL;
    rng_state = SEED;
    fprintf(stderr, "integration_reports: seed %llu (set TRELLIS_SEED to replay another)\n",
            (unsigned long long)SEED);
}

/* Each test draws from its own stream of the seed (tests run in forked children). */
static void reseed(uint64_t salt)
{
    rng_state = SEED * 0x100000001b3ULL ^ salt;
}

/* ---------------------------------------------------------------------------------------------
 * Dates, decimals
 */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static void date_text(int64_t days, char *out, size_t n)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, n, "%04lld-%02u-%02u", (long long)y, m, d);
}

static int64_t date_days(const char *s)
{
    int y, m, d;
    ck_assert_msg(sscanf(s, "%d-%d-%d", &y, &m, &d) == 3, "bad date %s", s);
    return days_from_civil(y, (unsigned)m, (unsigned)d);
}

/* v (scaled by 100) as decimal text with two places: "-12.30". */
static void dec_text(i128 v, char *out, size_t n)
{
    char digits[64];
    int nd = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[nd++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (nd < 3)
        digits[nd++] = '0';
    size_t o = 0;
    if (neg) out[o++] = '-';
    for (int i = nd; i-- > 0 && o + 2 < n;) {
        out[o++] = digits[i];
        if (i == 2) out[o++] = '.';
    }
    out[o] = 0;
}

/* num/den rounded half away from zero (den > 0); *tie when exactly halfway. */
static i128 div_half_away(i128 num, i128 den, bool *tie)
{
    i128 q = num / den, r = num % den;
    if (r < 0) r = -r;
    if (tie) *tie = 2 * r == den;
    if (2 * r >= den) q += num < 0 ? -1 : 1;
    return q;
}

/* ---------------------------------------------------------------------------------------------
 * The business calendar cn_office (samples/marketing/calendars/cn_office.json), computed here:
 * Asia/Shanghai is UTC+8 without DST; holidays have no spans, make-up days Monday's (or theirs).
 */
struct span {
    int from, to; /* minutes of the local day */
};
static struct {
    struct span week[7][8]; /* 0 = Monday */
    int nweek[7];
    int64_t hol[64];
    int nhol;
    int64_t work[32];
    struct span wspans[32][8];
    int nwspans[32], nwork;
} CAL;
#define SH_OFF (8 * HOUR_MS)

static int hhmm(const char *s)
{
    int h, m;
    ck_assert_msg(sscanf(s, "%d:%d", &h, &m) == 2, "bad time %s", s);
    return h * 60 + m;
}

static int spans_of_json(const cJSON *a, struct span *out)
{
    int n = 0;
    const cJSON *sp;
    cJSON_ArrayForEach(sp, a)
    {
        out[n].from = hhmm(cJSON_GetArrayItem(sp, 0)->valuestring);
        out[n].to = hhmm(cJSON_GetArrayItem(sp, 1)->valuestring);
        n++;
    }
    return n;
}

static void calendar_load(void)
{
    memset(&CAL, 0, sizeof(CAL));
    char path[1024];
    snprintf(path, sizeof(path), "%s/samples/marketing/calendars/cn_office.json", trellis_src());
    char *buf = read_file_ok(path);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(str_eq(obj_str(j, "timezone"), "Asia/Shanghai"),
                  "this suite computes cn_office in Asia/Shanghai (UTC+8)");
    static const char *const wd[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    const cJSON *week = cJSON_GetObjectItemCaseSensitive(j, "week");
    for (int i = 0; i < 7; i++)
        CAL.nweek[i] = spans_of_json(cJSON_GetObjectItemCaseSensitive(week, wd[i]), CAL.week[i]);
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "holidays"))
    {
        const char *d = cJSON_IsString(h) ? h->valuestring : obj_str(h, "date");
        if (d) {
            CAL.hol[CAL.nhol++] = date_days(d);
            continue;
        }
        for (int64_t x = date_days(obj_str(h, "from")); x <= date_days(obj_str(h, "to")); x++)
            CAL.hol[CAL.nhol++] = x;
    }
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "workdays"))
    {
        const char *d = cJSON_IsString(h) ? h->valuestring : obj_str(h, "date");
        int k = CAL.nwork++;
        CAL.work[k] = date_days(d);
        const cJSON *sp = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "spans") : NULL;
        if (sp)
            CAL.nwspans[k] = spans_of_json(sp, CAL.wspans[k]);
        else {
            CAL.nwspans[k] = CAL.nweek[0];
            memcpy(CAL.wspans[k], CAL.week[0], sizeof(CAL.week[0]));
        }
    }
    cJSON_Delete(j);
}

static int day_spans(int64_t day, const struct span **sp)
{
    for (int i = 0; i < CAL.nhol; i++)
        if (CAL.hol[i] == day) return 0;
    for (int i = 0; i < CAL.nwork; i++)
        if (CAL.work[i] == day) {
            *sp = CAL.wspans[i];
            return CAL.nwspans[i];
        }
    int wd = (int)(((day + 3) % 7 + 7) % 7);
    *sp = CAL.week[wd];
    return CAL.nweek[wd];
}

/* Working time of cn_office in [a, b), ms. */
static int64_t biz_between(int64_t a, int64_t b)
{
    if (b <= a) return 0;
    int64_t sum = 0;
    for (int64_t d = floor_div(a + SH_OFF, DAY_MS); d <= floor_div(b - 1 + SH_OFF, DAY_MS); d++) {
        const struct span *sp = NULL;
        int n = day_spans(d, &sp);
        for (int i = 0; i < n; i++) {
            int64_t s = d * DAY_MS + sp[i].from * MIN_MS - SH_OFF;
            int64_t e = d * DAY_MS + sp[i].to * MIN_MS - SH_OFF;
            if (s < a) s = a;
            if (e > b) e = b;
            if (e > s) sum += e - s;
        }
    }
    return sum;
}

/* ---------------------------------------------------------------------------------------------
 * The model
 */
enum { ST_DRAFT, ST_SUBMITTED, ST_MREVIEW, ST_FREVIEW, ST_RETURNED, ST_APPROVED, ST_REJECTED, NST };
static const char *const STATES[NST] = {
    "draft", "submitted", "marketing_review", "finance_review", "returned", "approved", "rejected"};
static const char *const REGIONS[4] = {"north", "south", "east", "west"};
static const char *const ORGS[3] = {NULL, "acme", "globex"};
static const char *const PARTNERS[] = {
    "Acme Corp",       "acme corp",   "Globex",         "Foo, Inc.",
    "The \"Best\" Co", "华为技术",    "阿里巴巴(中国)", "北京星辰广告有限公司, 上海分公司",
    "Zed & Co",        "Ünïcode GmbH"};
#define NPARTNERS ((int)(sizeof(PARTNERS) / sizeof(PARTNERS[0])))

static int state_index(const char *s)
{
    for (int i = 0; i < NST; i++)
        if (str_eq(s, STATES[i])) return i;
    ck_abort_msg("unknown state %s", s ? s : "(null)");
    return -1;
}

#define MAXREC 400
#define MAXENT 40
struct rec {
    long long id;
    int creator; /* user index, -1 for the administrator */
    int org;     /* 0 none, 1 acme, 2 globex */
    char title[24];
    int partner;    /* index into PARTNERS */
    int region;     /* -1: null */
    int64_t budget; /* cents */
    bool has_start;
    int64_t start;   /* days */
    int64_t created; /* ms */
    char created_txt[32];
    int state, fin_step;
    bool deleted;
    int nexp, exp[MAXENT];       /* the states it went through, as done here */
    int nent, ent_state[MAXENT]; /* ... and as the history tells (create and */
    int64_t ent_at[MAXENT];      /* transition events) */
    int64_t exp_at[MAXENT];      /* the clock when each was done (about) */
};
static struct rec R[MAXREC];
static int NR;
static int64_t T0, T1; /* the data set's first and last clock */

static int live_count(int org) /* org -1: all */
{
    int n = 0;
    for (int i = 0; i < NR; i++)
        if (!R[i].deleted && (org < 0 || R[i].org == org)) n++;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Building the data set over HTTP
 */
static int64_t clock_now(void)
{
    return clock_now_ms(SV);
}

static const char *auth_of(int u)
{
    return u < 0 ? ADMIN : H(u);
}

static int64_t random_budget(void)
{
    int k = rnd(100);
    if (k < 5) return 0;
    if (k < 35) return rnd_range(1, 99999);            /* 0.01 .. 999.99 */
    if (k < 65) return rnd_range(100000, 10000000);    /* 1,000 .. 100,000 */
    if (k < 75) return 5000000 + rnd_range(-1, 1);     /* around the director's 50,000 */
    if (k < 80) return rnd_range(1, 1000) * 100000;    /* round thousands */
    return rnd_range(100000000000000000LL, INT64_MAX); /* 10^15 .. 92,233,720,368,547,758.07 */
}

static void rec_push(struct rec *r, int st, int64_t at)
{
    ck_assert_int_lt(r->nexp, MAXENT);
    r->exp_at[r->nexp] = at;
    r->exp[r->nexp++] = st;
    r->state = st;
}

/* Creates a record as creator (-1: admin) and adds it to the model. */
static int create_rec(int creator, int64_t now)
{
    ck_assert_int_lt(NR, MAXREC);
    struct rec *r = &R[NR];
    memset(r, 0, sizeof(*r));
    r->creator = creator;
    r->org = creator < 0 ? 0 : str_eq(UU[creator].org, "acme") ? 1 : 2;
    snprintf(r->title, sizeof(r->title), "req %03d", NR);
    r->partner = rnd(NPARTNERS);
    r->region = chance(12) ? -1 : rnd(4);
    r->budget = random_budget();
    r->has_start = !chance(12);
    r->start = days_from_civil(2026, 11, 1) + rnd(500);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "title", r->title);
    cJSON_AddStringToObject(b, "partner", PARTNERS[r->partner]);
    char txt[64];
    dec_text(r->budget, txt, sizeof(txt));
    cJSON_AddStringToObject(b, "budget", txt);
    if (r->region >= 0) cJSON_AddStringToObject(b, "region", REGIONS[r->region]);
    if (r->has_start) {
        date_text(r->start, txt, sizeof(txt));
        cJSON_AddStringToObject(b, "start_date", txt);
    }
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    struct resp rs;
    long st = call(auth_of(creator), "POST", body, &rs, "%s", MR);
    ck_assert_msg(st == 201, "create %s: %ld %s", body, st, rs.body);
    cJSON *j = resp_json(&rs);
    r->id = obj_int(j, "id");
    dec_text(r->budget, txt, sizeof(txt));
    ck_assert_msg(str_eq(obj_str(j, "budget"), txt), "budget %s read back as %s", txt,
                  obj_str(j, "budget"));
    ck_assert_msg(str_eq(obj_str(j, "org"), ORGS[r->org]) || (!r->org && !obj_str(j, "org")),
                  "org of %s", rs.body);
    snprintf(r->created_txt, sizeof(r->created_txt), "%s", obj_str(j, "created_at"));
    r->created = obj_time_ms(j, "created_at");
    cJSON_Delete(j);
    resp_free(&rs);
    free(body);
    rec_push(r, ST_DRAFT, now);
    return NR++;
}

/* Pending approval tasks per approver (reloaded every batch). */
static struct pend {
    bool loaded;
    int n;
    long long rec[MAXREC * 2], tid[MAXREC * 2];
} PEND[NUSERS];

static long long pending_task(int u, long long id)
{
    struct pend *p = &PEND[u];
    if (!p->loaded) {
        cJSON *items, *j = api_get_items(SV, H(u), &items,
                                         "/api/v1/approvals?assignee=me&status=pending"
                                         "&limit=1000");
        p->n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            ck_assert_int_lt(p->n, MAXREC * 2);
            p->rec[p->n] = obj_int(it, "record");
            p->tid[p->n++] = obj_int(it, "id");
        }
        cJSON_Delete(j);
        p->loaded = true;
    }
    long long tid = 0;
    for (int i = 0; i < p->n; i++)
        if (p->rec[i] == id) {
            ck_assert_msg(tid == 0, "%s has two pending tasks on record %lld", UU[u].name, id);
            tid = p->tid[i];
        }
    return tid;
}

static void transition(struct rec *r, const char *auth, const char *name, int want, int64_t now)
{
    struct resp rs;
    long st = call(auth, "POST", "{}", &rs, "%s/%lld/transitions/%s", MR, r->id, name);
    ck_assert_msg(st == 200, "%s on %lld: %ld %s", name, r->id, st, rs.body);
    cJSON *j = resp_json(&rs);
    ck_assert_msg(str_eq(obj_str(j, "state"), STATES[want]), "%s on %lld: want %s: %s", name, r->id,
                  STATES[want], rs.body);
    cJSON_Delete(j);
    resp_free(&rs);
    rec_push(r, want, now);
}

/* A decision on the record's pending task of approver u; want: the state after it. */
static void decide(struct rec *r, int u, const char *verb, int want, int64_t now)
{
    long long tid = pending_task(u, r->id);
    ck_assert_msg(tid > 0, "no pending task of %s on record %lld (state %s)", UU[u].name, r->id,
                  STATES[r->state]);
    struct resp rs;
    long st = call(H(u), "POST", "{\"comment\":\"decided, \\\"by\\\" the test\"}", &rs,
                   "/api/v1/approvals/%lld/%s", tid, verb);
    ck_assert_msg(st == 200, "%s %s task %lld (record %lld): %ld %s", UU[u].name, verb, tid, r->id,
                  st, rs.body);
    cJSON *j = resp_json(&rs);
    const char *got = obj_str(cJSON_GetObjectItemCaseSensitive(j, "record"), "state");
    ck_assert_msg(str_eq(got, STATES[want]), "%s %s on record %lld: want %s: %s", UU[u].name, verb,
                  r->id, STATES[want], rs.body);
    cJSON_Delete(j);
    resp_free(&rs);
    if (want != r->state) rec_push(r, want, now);
}

/* One step of record r along the workflow (false when it cannot move). */
static bool step_record(struct rec *r, int64_t now)
{
    int k = rnd(100);
    switch (r->state) {
    case ST_DRAFT:
    case ST_RETURNED: {
        if (r->budget <= 0 || !r->has_start) return false; /* the sample's hook refuses 0 */
        int actor = r->creator < 0 ? -1 : r->org == 1 ? (chance(50) ? ANN : AMY) : BOB;
        transition(r, auth_of(actor), "submit", ST_SUBMITTED, now);
        return true;
    }
    case ST_SUBMITTED:
        transition(r, H(RITA), "start_review", ST_MREVIEW, now);
        r->fin_step = 0;
        return true;
    case ST_MREVIEW:
        if (k < 62)
            decide(r, RITA, "approve", ST_FREVIEW, now);
        else if (k < 82)
            decide(r, RITA, "return", ST_RETURNED, now);
        else
            decide(r, RITA, "reject", ST_REJECTED, now);
        r->fin_step = 0;
        return true;
    case ST_FREVIEW: {
        int u = r->fin_step ? DAN : FAY;
        if (k < 70) {
            bool director = !r->fin_step && r->budget > 5000000; /* condition budget > 50000 */
            decide(r, u, "approve", director ? ST_FREVIEW : ST_APPROVED, now);
            r->fin_step = director;
        } else if (k < 85) {
            decide(r, u, "return", ST_RETURNED, now);
        } else {
            decide(r, u, "reject", ST_REJECTED, now);
        }
        return true;
    }
    default:
        return false;
    }
}

static void delete_rec(struct rec *r)
{
    struct resp rs;
    long st = call(ADMIN, "DELETE", NULL, &rs, "%s/%lld", MR, r->id);
    ck_assert_msg(st == 204, "delete %lld: %ld %s", r->id, st, rs.body);
    resp_free(&rs);
    r->deleted = true;
}

/* Random work: batches of creates, moves and a few deletes; with_clock moves the test clock
 * between batches. */
static void random_work(int batches, int target, bool with_clock, int create_pct)
{
    static bool acted[MAXREC];
    for (int b = 0; b < batches; b++) {
        int64_t now = 0;
        if (with_clock) {
            int k = rnd(100);
            int64_t step = k < 50   ? rnd_range(1, 180) * MIN_MS
                           : k < 85 ? rnd_range(3, 20) * HOUR_MS
                                    : rnd_range(24, 72) * HOUR_MS;
            clock_advance(SV, step + rnd_range(0, 59999));
            now = clock_now();
        }
        memset(PEND, 0, sizeof(PEND));
        memset(acted, 0, sizeof(acted));
        int na = 2 + rnd(7);
        for (int a = 0; a < na; a++) {
            if (NR < target && (chance(create_pct) || NR < 8)) {
                static const int creators[] = {ANN, AMY, BOB, -1, ANN, BOB};
                acted[create_rec(creators[rnd(6)], now)] = true;
                continue;
            }
            for (int tries = 0; tries < 12; tries++) {
                int i = rnd(NR);
                if (R[i].deleted || acted[i]) continue;
                if (step_record(&R[i], now)) {
                    acted[i] = true;
                    break;
                }
            }
        }
        if (NR > 10 && chance(5)) {
            int i = rnd(NR);
            if (!R[i].deleted && !acted[i] && R[i].state != ST_MREVIEW && R[i].state != ST_FREVIEW)
                delete_rec(&R[i]);
        }
    }
}

/* Reads every live record's history into the model and checks it against what was done. */
static void read_histories(bool check_times)
{
    for (int i = 0; i < NR; i++) {
        struct rec *r = &R[i];
        if (r->deleted) continue;
        cJSON *items, *j = api_get_items(SV, ADMIN, &items, "%s/%lld/history", MR, r->id);
        r->nent = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            const char *act = obj_str(it, "action");
            int st = -1;
            if (str_eq(act, "create"))
                st = ST_DRAFT;
            else if (str_eq(act, "transition"))
                st = state_index(obj_str(it, "to"));
            if (st < 0) continue;
            ck_assert_int_lt(r->nent, MAXENT);
            r->ent_state[r->nent] = st;
            r->ent_at[r->nent++] = obj_time_ms(it, "at");
        }
        cJSON_Delete(j);
        bool same = r->nent == r->nexp;
        for (int k = 0; k < r->nent && same; k++)
            same = r->ent_state[k] == r->exp[k];
        ck_assert_msg(same, "record %lld: the history's states differ from what was done", r->id);
        ck_assert_msg(r->ent_at[0] == r->created, "record %lld: created_at %s, history %lld", r->id,
                      r->created_txt, (long long)r->ent_at[0]);
        for (int k = 0; k < r->nent; k++) {
            if (k) ck_assert_int_ge(r->ent_at[k], r->ent_at[k - 1]);
            /* The test clock runs on in real time between its moves: the event's time is the
             * clock read just before the batch, plus at most the batch's real duration. */
            if (check_times)
                ck_assert_msg(r->ent_at[k] >= r->exp_at[k] && r->ent_at[k] < r->exp_at[k] + 60000,
                              "record %lld event %d at %lld, clock %lld", r->id, k,
                              (long long)r->ent_at[k], (long long)r->exp_at[k]);
        }
    }
}

static void data_setup(void)
{
    seed_init();
    calendar_load();
    SV = &S;
    UU = U;
    NR = 0;
    memset(R, 0, sizeof(R));
    server_up(&S, U, "--test-clock");
    /* An auditor role: reads every record, but not budget and partner (a copy of the type as
     * installed, with one more role). */
    cJSON *ty = api_get_json(&S, ADMIN, "/api/v1/meta/types/marketing_request");
    cJSON *perms = cJSON_GetObjectItemCaseSensitive(ty, "permissions");
    cJSON_AddItemToObject(perms, "auditor",
                          cJSON_Parse("{\"read\":\"all\",\"fields\":{\"budget\":\"hidden\","
                                      "\"partner\":\"hidden\"}}"));
    struct resp rs;
    long st = api_put_json(&S, ADMIN, ty, &rs, "/api/v1/meta/types/marketing_request");
    ck_assert_msg(st == 200, "PUT type with the auditor role: %ld %s", st, rs.body);
    resp_free(&rs);
    cJSON_Delete(ty);
    /* The clock starts at 2026-12-07 (so that the data set spans the calendar's New Year
     * holiday and a change of year), or now when that is later. */
    int64_t now = clock_now(), anchor = time_ms("2026-12-07T00:00:00Z");
    if (anchor > now) clock_set_ms(&S, anchor);
    T0 = clock_now();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    random_work(280, 300, true, 30);
    T1 = clock_now();
    read_histories(true);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int per[NST] = {0}, del = 0;
    for (int i = 0; i < NR; i++)
        if (R[i].deleted)
            del++;
        else
            per[R[i].state]++;
    char t0[40], t1[40];
    date_text(floor_div(T0, DAY_MS), t0, sizeof(t0));
    date_text(floor_div(T1, DAY_MS), t1, sizeof(t1));
    fprintf(stderr,
            "integration_reports: %d records (%d deleted) from %s to %s in %.1f s; draft %d "
            "submitted %d marketing_review %d finance_review %d returned %d approved %d "
            "rejected %d\n",
            NR, del, t0, t1, (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
            per[0], per[1], per[2], per[3], per[4], per[5], per[6]);
    ck_assert_int_eq(count_records(&S, "marketing_request"), live_count(-1));
}

static void data_teardown(void)
{
    srv_teardown(&S);
}

/* ---------------------------------------------------------------------------------------------
 * Report definitions: a struct the test evaluates itself, printed as the JSON the server parses
 */
enum { GC_REGION, GC_STATE, GC_PARTNER, GC_ORG, GC_START, GC_CREATED, GC_TITLE };
static const char *const GCOLS[] = {"region",     "state",      "partner", "org",
                                    "start_date", "created_at", "title"};
static const char *const BUCKETS[] = {"", "day", "week", "month", "quarter", "year"};
enum { B_NONE, B_DAY, B_WEEK, B_MONTH, B_QUARTER, B_YEAR };
static const char *const ZONES[] = {NULL, "UTC", "Asia/Shanghai"};

enum { MO_COUNT, MO_CD, MO_SUM, MO_AVG, MO_MIN, MO_MAX, MO_MEDIAN, MO_P90 };
static const char *const MOPS[] = {"count", "count_distinct", "sum", "avg", "min",
                                   "max",   "median",         "p90"};
enum { MF_NONE, MF_BUDGET, MF_PARTNER, MF_REGION, MF_STATE, MF_START, MF_CREATED };
static const char *const MFIELDS[] = {NULL,    "budget",     "partner",   "region",
                                      "state", "start_date", "created_at"};
static const char *const UNITS[] = {"ms", "seconds", "minutes", "hours", "days"};
static const int64_t UNIT_MS[] = {1, 1000, 60000, 3600000, 86400000};

enum { FN_CMP, FN_AND, FN_OR, FN_NOT };
enum { FC_REGION, FC_STATE, FC_BUDGET, FC_START, FC_PARTNER };
static const char *const FCOLS[] = {"region", "state", "budget", "start_date", "partner"};
enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_ISNULL, OP_NOTNULL, OP_CONTAINS };
static const char *const FOPS[] = {"=", "!=", "<", "<=", ">", ">=", "in", "=", "!=", "~"};
static const char *const NEEDLES[] = {"co", "CORP", "inc", "技术", "\"best\"", ", "};

struct fnode {
    int kind, l, r;
    int col, op, nv;
    int64_t v[3]; /* region/state index, cents, days, partner or needle index */
    int param;    /* -1, or the parameter standing for v[0] */
};
struct pdef {
    char type[12];
    bool has_dflt, given, required;
    char dflt[48], val[48];
};
struct gdef {
    int col, bucket, zone;
};
struct mdef {
    int op, field;
    int dur; /* 0, 1 between from and to, 2 in */
    int from, to, in;
    bool biz;
    int unit;   /* -1: not given (hours) */
    int labels; /* 0 none, 1 en, 2 en and zh-CN */
};
struct def {
    char name[40];
    int nf, froot;
    struct fnode f[16];
    int np;
    struct pdef p[6];
    int ng;
    struct gdef g[2];
    int nm;
    struct mdef m[6];
    char mn[6][24]; /* measure (column) names */
    int ns, skey[3];
    bool sdesc[3];
    int limit;
};

static int unit_of(const struct mdef *m)
{
    return m->unit < 0 ? 3 : m->unit;
}

/* Labels the test gives measures (with a comma and quotes, for CSV). */
static void measure_labels(const struct def *d, int i, char *en, char *zh, size_t n)
{
    const struct mdef *m = &d->m[i];
    const char *name = d->mn[i];
    if (m->labels == 0) {
        snprintf(en, n, "%s", name);
        snprintf(zh, n, "%s", name);
        return;
    }
    snprintf(en, n, "Measure %d, \"%s\"", i, MOPS[m->op]);
    if (m->labels == 2)
        snprintf(zh, n, "度量%d,“%s”", i, MOPS[m->op]);
    else
        snprintf(zh, n, "%s", en);
}

/* Values in filters */
static void value_text(int col, int64_t v, char *out, size_t n, bool literal)
{
    char t[64];
    switch (col) {
    case FC_REGION:
        snprintf(t, sizeof(t), "%s", REGIONS[v]);
        break;
    case FC_STATE:
        snprintf(t, sizeof(t), "%s", STATES[v]);
        break;
    case FC_BUDGET:
        dec_text(v, t, sizeof(t));
        if (literal && v % 100 == 0) *strchr(t, '.') = 0; /* "1200" as well as "1200.50" */
        snprintf(out, n, "%s", t);
        return;
    case FC_START:
        date_text(v, t, sizeof(t));
        break;
    default:
        snprintf(t, sizeof(t), "%s", "?");
    }
    if (literal)
        snprintf(out, n, "\"%s\"", t);
    else
        snprintf(out, n, "%s", t);
}

static void str_literal(const char *s, char *out, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 3 < n; s++) {
        if (*s == '"' || *s == '\\') out[o++] = '\\';
        out[o++] = *s;
    }
    out[o++] = '"';
    out[o] = 0;
}

static void sb_add(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sb_add(char *buf, size_t n, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

static void filter_text(const struct def *d, int i, char *out, size_t n)
{
    const struct fnode *f = &d->f[i];
    if (f->kind == FN_AND || f->kind == FN_OR) {
        sb_add(out, n, "(");
        filter_text(d, f->l, out, n);
        sb_add(out, n, ") %s (", f->kind == FN_AND ? "&&" : "||");
        filter_text(d, f->r, out, n);
        sb_add(out, n, ")");
        return;
    }
    if (f->kind == FN_NOT) {
        sb_add(out, n, "!(");
        filter_text(d, f->l, out, n);
        sb_add(out, n, ")");
        return;
    }
    sb_add(out, n, "%s %s ", FCOLS[f->col], FOPS[f->op]);
    char t[160];
    if (f->op == OP_ISNULL || f->op == OP_NOTNULL) {
        sb_add(out, n, "null");
    } else if (f->param >= 0) {
        sb_add(out, n, "@param.p%d", f->param);
    } else if (f->col == FC_PARTNER) {
        str_literal(f->op == OP_CONTAINS ? NEEDLES[f->v[0]] : PARTNERS[f->v[0]], t, sizeof(t));
        sb_add(out, n, "%s", t);
    } else if (f->op == OP_IN) {
        sb_add(out, n, "(");
        for (int k = 0; k < f->nv; k++) {
            value_text(f->col, f->v[k], t, sizeof(t), true);
            sb_add(out, n, "%s%s", k ? ", " : "", t);
        }
        sb_add(out, n, ")");
    } else {
        value_text(f->col, f->v[0], t, sizeof(t), true);
        sb_add(out, n, "%s", t);
    }
}

static char *def_json(const struct def *d)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", d->name);
    cJSON_AddStringToObject(j, "type", "marketing_request");
    cJSON *lab = cJSON_AddObjectToObject(j, "labels");
    cJSON_AddStringToObject(lab, "en", "Random report");
    cJSON_AddStringToObject(lab, "zh-CN", "随机报表");
    if (d->froot >= 0) {
        char ft[4096] = "";
        filter_text(d, d->froot, ft, sizeof(ft));
        cJSON_AddStringToObject(j, "filter", ft);
    }
    if (d->np) {
        cJSON *ps = cJSON_AddArrayToObject(j, "params");
        for (int i = 0; i < d->np; i++) {
            cJSON *p = cJSON_CreateObject();
            char nm[8];
            snprintf(nm, sizeof(nm), "p%d", i);
            cJSON_AddStringToObject(p, "name", nm);
            cJSON_AddStringToObject(p, "type", d->p[i].type);
            if (d->p[i].has_dflt) cJSON_AddStringToObject(p, "default", d->p[i].dflt);
            if (d->p[i].required) cJSON_AddTrueToObject(p, "required");
            cJSON_AddItemToArray(ps, p);
        }
    }
    if (d->ng || chance(20)) {
        cJSON *gs = cJSON_AddArrayToObject(j, "group_by");
        for (int i = 0; i < d->ng; i++) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddStringToObject(g, "field", GCOLS[d->g[i].col]);
            if (d->g[i].bucket) cJSON_AddStringToObject(g, "bucket", BUCKETS[d->g[i].bucket]);
            if (ZONES[d->g[i].zone]) cJSON_AddStringToObject(g, "timezone", ZONES[d->g[i].zone]);
            cJSON_AddItemToArray(gs, g);
        }
    }
    cJSON *ms = cJSON_AddArrayToObject(j, "measures");
    for (int i = 0; i < d->nm; i++) {
        const struct mdef *m = &d->m[i];
        cJSON *o = cJSON_CreateObject();
        char en[128], zh[128];
        cJSON_AddStringToObject(o, "name", d->mn[i]);
        cJSON_AddStringToObject(o, "op", MOPS[m->op]);
        if (m->labels) {
            measure_labels(d, i, en, zh, sizeof(en));
            cJSON *l = cJSON_AddObjectToObject(o, "labels");
            cJSON_AddStringToObject(l, "en", en);
            if (m->labels == 2) cJSON_AddStringToObject(l, "zh-CN", zh);
        }
        if (m->field) cJSON_AddStringToObject(o, "field", MFIELDS[m->field]);
        if (m->dur) {
            cJSON *du = cJSON_AddObjectToObject(o, "duration");
            if (m->dur == 1) {
                cJSON_AddStringToObject(du, "from", STATES[m->from]);
                cJSON_AddStringToObject(du, "to", STATES[m->to]);
            } else {
                cJSON_AddStringToObject(du, "in", STATES[m->in]);
            }
            if (m->biz) cJSON_AddStringToObject(du, "calendar", "cn_office");
            if (m->unit >= 0) cJSON_AddStringToObject(du, "unit", UNITS[m->unit]);
        }
        cJSON_AddItemToArray(ms, o);
    }
    if (d->ns) {
        cJSON *ss = cJSON_AddArrayToObject(j, "sort");
        for (int i = 0; i < d->ns; i++) {
            cJSON *o = cJSON_CreateObject();
            int k = d->skey[i];
            cJSON_AddStringToObject(o, "by", k < d->ng ? GCOLS[d->g[k].col] : d->mn[k - d->ng]);
            if (d->sdesc[i])
                cJSON_AddTrueToObject(o, "desc");
            else if (chance(30))
                cJSON_AddFalseToObject(o, "desc");
            cJSON_AddItemToArray(ss, o);
        }
    }
    if (d->limit) cJSON_AddNumberToObject(j, "limit", d->limit);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

/* The query string of the given parameters ("" or "?p0=..&p1=.."). */
static void def_query(const struct def *d, char *out, size_t n, const char *more)
{
    out[0] = 0;
    for (int i = 0; i < d->np; i++)
        if (d->p[i].given) sb_add(out, n, "%cp%d=%s", out[0] ? '&' : '?', i, d->p[i].val);
    if (more) sb_add(out, n, "%c%s", out[0] ? '&' : '?', more);
}

/* Random definitions */
static int64_t random_date(void)
{
    return days_from_civil(2026, 11, 1) + rnd(520) - 10;
}

static int64_t random_threshold(void)
{
    int i = rnd(NR);
    if (chance(50)) return R[i].budget + rnd_range(-1, 1);
    return random_budget();
}

static void gen_cmp(struct def *d, struct fnode *f)
{
    static const int cols[] = {FC_REGION, FC_REGION, FC_STATE, FC_STATE, FC_STATE, FC_BUDGET,
                               FC_BUDGET, FC_BUDGET, FC_START, FC_START, FC_START, FC_PARTNER};
    f->kind = FN_CMP;
    f->param = -1;
    f->col = cols[rnd(12)];
    f->nv = 1;
    switch (f->col) {
    case FC_REGION: {
        static const int ops[] = {OP_EQ, OP_EQ, OP_NE, OP_IN, OP_ISNULL, OP_NOTNULL};
        f->op = ops[rnd(6)];
        if (f->op == OP_IN) f->nv = 1 + rnd(3);
        for (int k = 0; k < f->nv; k++)
            f->v[k] = rnd(4);
        break;
    }
    case FC_STATE: {
        static const int ops[] = {OP_EQ, OP_EQ, OP_NE, OP_IN, OP_IN};
        f->op = ops[rnd(5)];
        if (f->op == OP_IN) f->nv = 1 + rnd(3);
        for (int k = 0; k < f->nv; k++)
            f->v[k] = rnd(NST);
        break;
    }
    case FC_BUDGET: {
        static const int ops[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE};
        f->op = ops[rnd(6)];
        f->v[0] = random_threshold();
        break;
    }
    case FC_START: {
        static const int ops[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_ISNULL, OP_NOTNULL};
        f->op = ops[rnd(7)];
        f->v[0] = f->op == OP_EQ && NR ? R[rnd(NR)].start : random_date();
        break;
    }
    default:
        f->op = chance(50) ? OP_EQ : OP_CONTAINS;
        f->v[0] = f->op == OP_EQ ? rnd(NPARTNERS) : rnd((int)(sizeof(NEEDLES) / sizeof(*NEEDLES)));
    }
    /* A parameter instead of the literal. */
    /* Decimal parameters of 9,223,372,036.86 and more are refused: see regression
     * large_decimal_parameter. */
    bool small = f->col != FC_BUDGET || (f->v[0] < 900000000000LL && f->v[0] > -900000000000LL);
    if (f->op <= OP_GE && f->col != FC_PARTNER && small && d->np < 6 && chance(35)) {
        int k = d->np++;
        struct pdef *p = &d->p[k];
        f->param = k;
        snprintf(p->type, sizeof(p->type), "%s",
                 f->col == FC_BUDGET                 ? "decimal"
                 : f->col == FC_START                ? "date"
                 : f->col == FC_REGION && chance(50) ? "enum"
                                                     : "text");
        char ev[48], other[48];
        value_text(f->col, f->v[0], ev, sizeof(ev), false);
        int64_t o = f->col == FC_REGION   ? rnd(4)
                    : f->col == FC_STATE  ? rnd(NST)
                    : f->col == FC_BUDGET ? rnd_range(0, 900000000000LL)
                                          : random_date();
        value_text(f->col, o, other, sizeof(other), false);
        /* An enum (or text) parameter compared with the enum region needs a default: see
         * regression enum_parameter_without_a_default. */
        bool need_dflt = f->col == FC_REGION;
        p->given = chance(70);
        if (p->given) {
            snprintf(p->val, sizeof(p->val), "%s", ev);
            p->has_dflt = need_dflt || chance(40);
            snprintf(p->dflt, sizeof(p->dflt), "%s", other);
            p->required = !p->has_dflt && chance(50);
        } else {
            p->has_dflt = true;
            snprintf(p->dflt, sizeof(p->dflt), "%s", ev);
        }
    }
}

static int gen_filter(struct def *d, int depth)
{
    int n = d->nf++;
    int k = depth >= 2 ? 0 : rnd(10);
    if (k < 5) {
        gen_cmp(d, &d->f[n]);
        return n;
    }
    d->f[n].kind = k < 8 ? FN_AND : k < 9 ? FN_OR : FN_NOT;
    int l = gen_filter(d, depth + 1);
    d->f[n].l = l;
    if (d->f[n].kind != FN_NOT) {
        int r = gen_filter(d, depth + 1);
        d->f[n].r = r;
    }
    return n;
}

static void gen_measure(struct mdef *m)
{
    memset(m, 0, sizeof(*m));
    m->unit = -1;
    m->labels = rnd(3);
    int k = rnd(100);
    if (k < 45) { /* durations */
        static const int ops[] = {MO_COUNT, MO_AVG, MO_MIN, MO_MAX, MO_MEDIAN, MO_P90};
        m->op = ops[rnd(6)];
        static const int pairs[][2] = {
            {ST_DRAFT, ST_SUBMITTED},    {ST_SUBMITTED, ST_MREVIEW},  {ST_SUBMITTED, ST_APPROVED},
            {ST_MREVIEW, ST_FREVIEW},    {ST_SUBMITTED, ST_REJECTED}, {ST_DRAFT, ST_APPROVED},
            {ST_RETURNED, ST_SUBMITTED}, {ST_FREVIEW, ST_APPROVED},   {ST_MREVIEW, ST_RETURNED}};
        if (chance(55)) {
            m->dur = 1;
            if (chance(85)) {
                int p = rnd(9);
                m->from = pairs[p][0];
                m->to = pairs[p][1];
            } else {
                m->from = rnd(NST);
                m->to = rnd(NST);
            }
        } else {
            static const int in[] = {ST_DRAFT,   ST_SUBMITTED, ST_MREVIEW,
                                     ST_FREVIEW, ST_RETURNED,  ST_APPROVED};
            m->dur = 2;
            m->in = in[rnd(6)];
        }
        m->biz = chance(45);
        m->unit = rnd(6) - 1;
        return;
    }
    if (k < 57) {
        m->op = MO_COUNT;
        return;
    }
    if (k < 67) {
        static const int f[] = {MF_PARTNER, MF_PARTNER, MF_REGION, MF_STATE, MF_START, MF_BUDGET};
        m->op = MO_CD;
        m->field = f[rnd(6)];
        return;
    }
    if (k < 87) {
        m->op = chance(50) ? MO_SUM : MO_AVG;
        m->field = MF_BUDGET;
        return;
    }
    static const int f[] = {MF_BUDGET, MF_BUDGET, MF_START, MF_CREATED};
    m->op = chance(50) ? MO_MIN : MO_MAX;
    m->field = f[rnd(4)];
}

static void gen_def(struct def *d, const char *name)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->froot = chance(65) ? gen_filter(d, 0) : -1;
    d->ng = rnd(3);
    int used = 0;
    for (int k = 0; k < d->ng; k++) {
        static const int cols[] = {GC_REGION, GC_REGION, GC_STATE, GC_STATE,   GC_PARTNER,
                                   GC_ORG,    GC_START,  GC_START, GC_CREATED, GC_CREATED};
        int c;
        do
            c = cols[rnd(10)];
        while (used & (1 << c));
        used |= 1 << c;
        d->g[k].col = c;
        if (c == GC_START) d->g[k].bucket = rnd(6);
        if (c == GC_CREATED) {
            d->g[k].bucket = 1 + rnd(5);
            d->g[k].zone = rnd(3) == 0 ? 0 : rnd(3) == 0 ? 1 : 2;
        }
    }
    d->nm = 1 + rnd(4);
    for (int i = 0; i < d->nm; i++) {
        gen_measure(&d->m[i]);
        snprintf(d->mn[i], sizeof(d->mn[i]), "m%d", i);
    }
    if (chance(55)) {
        d->ns = 1 + rnd(2);
        for (int i = 0; i < d->ns; i++) {
            int k;
            bool dup;
            do {
                k = rnd(d->ng + d->nm);
                dup = false;
                for (int q = 0; q < i; q++)
                    dup |= d->skey[q] == k;
            } while (dup && d->ng + d->nm > i);
            d->skey[i] = k;
            d->sdesc[i] = chance(50);
        }
    }
    d->limit = chance(30) ? 1 + rnd(6) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Brute force over the model
 */
static bool ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t k = 0;
        while (k < n && p[k]) {
            unsigned char a = (unsigned char)p[k], b = (unsigned char)needle[k];
            if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z') b = (unsigned char)(b - 'A' + 'a');
            if (a != b) break;
            k++;
        }
        if (k == n) return true;
    }
    return n == 0;
}

static bool feval(const struct def *d, int i, const struct rec *r)
{
    const struct fnode *f = &d->f[i];
    switch (f->kind) {
    case FN_AND:
        return feval(d, f->l, r) && feval(d, f->r, r);
    case FN_OR:
        return feval(d, f->l, r) || feval(d, f->r, r);
    case FN_NOT:
        return !feval(d, f->l, r);
    default:
        break;
    }
    bool null = false;
    int64_t x = 0;
    switch (f->col) {
    case FC_REGION:
        null = r->region < 0;
        x = r->region;
        break;
    case FC_STATE:
        x = r->state;
        break;
    case FC_BUDGET:
        x = r->budget;
        break;
    case FC_START:
        null = !r->has_start;
        x = r->start;
        break;
    default:
        if (f->op == OP_CONTAINS) return ci_contains(PARTNERS[r->partner], NEEDLES[f->v[0]]);
        return r->partner == f->v[0];
    }
    if (f->op == OP_ISNULL) return null;
    if (f->op == OP_NOTNULL) return !null;
    if (null) return f->op == OP_NE; /* `!= v` holds for an absent value, the rest does not */
    int64_t v = f->v[0];
    switch (f->op) {
    case OP_EQ:
        return x == v;
    case OP_NE:
        return x != v;
    case OP_LT:
        return x < v;
    case OP_LE:
        return x <= v;
    case OP_GT:
        return x > v;
    case OP_GE:
        return x >= v;
    default:
        for (int k = 0; k < f->nv; k++)
            if (x == f->v[k]) return true;
        return false;
    }
}

/* The duration of measure m for record r (false when it has none), ms. */
static bool rec_duration(const struct rec *r, const struct mdef *m, int64_t *out)
{
    if (m->dur == 1) {
        for (int i = 0; i < r->nent; i++) {
            if (r->ent_state[i] != m->from) continue;
            for (int k = i + 1; k < r->nent; k++)
                if (r->ent_state[k] == m->to) {
                    int64_t a = r->ent_at[i], b = r->ent_at[k];
                    *out = m->biz ? biz_between(a, b) : b - a;
                    return true;
                }
            return false; /* from the first time it entered `from` */
        }
        return false;
    }
    bool any = false;
    int64_t total = 0;
    for (int i = 0; i + 1 < r->nent; i++) {
        if (r->ent_state[i] != m->in) continue;
        int64_t a = r->ent_at[i], b = r->ent_at[i + 1];
        total += m->biz ? biz_between(a, b) : b - a;
        any = true;
    }
    *out = total;
    return any;
}

static int64_t bucket_of(int b, int64_t days)
{
    int64_t y;
    unsigned m, dd;
    switch (b) {
    case B_NONE:
    case B_DAY:
        return days;
    case B_WEEK:
        return days - ((days + 3) % 7 + 7) % 7; /* Monday */
    default:
        civil_from_days(days, &y, &m, &dd);
        if (b == B_MONTH) return y * 12 + (int64_t)m - 1;
        if (b == B_QUARTER) return y * 4 + ((int64_t)m - 1) / 3;
        return y;
    }
}

static void bucket_label(int b, int64_t v, char *out, size_t n)
{
    switch (b) {
    case B_NONE:
    case B_DAY:
    case B_WEEK:
        date_text(v, out, n);
        return;
    case B_MONTH:
        snprintf(out, n, "%04lld-%02lld", (long long)(v / 12), (long long)(v % 12 + 1));
        return;
    case B_QUARTER:
        snprintf(out, n, "%04lld-Q%lld", (long long)(v / 4), (long long)(v % 4 + 1));
        return;
    default:
        snprintf(out, n, "%04lld", (long long)v);
    }
}

struct gkey {
    bool null, isint;
    int64_t i;
    const char *s;
};

static struct gkey group_key(const struct gdef *g, const struct rec *r)
{
    struct gkey k = {0};
    switch (g->col) {
    case GC_REGION:
        k.null = r->region < 0;
        k.s = k.null ? NULL : REGIONS[r->region];
        break;
    case GC_STATE:
        k.s = STATES[r->state];
        break;
    case GC_PARTNER:
        k.s = PARTNERS[r->partner];
        break;
    case GC_ORG:
        k.null = r->org == 0;
        k.s = ORGS[r->org];
        break;
    case GC_TITLE:
        k.s = r->title;
        break;
    case GC_START:
        k.null = !r->has_start;
        k.isint = true;
        k.i = bucket_of(g->bucket, r->start);
        break;
    default: {
        int64_t off = g->zone == 2 ? 8 * HOUR_MS : 0;
        k.isint = true;
        k.i = bucket_of(g->bucket, floor_div(r->created + off, DAY_MS));
    }
    }
    return k;
}

static bool gkey_eq(const struct gkey *a, const struct gkey *b)
{
    if (a->null || b->null) return a->null == b->null;
    return a->isint ? a->i == b->i : strcmp(a->s, b->s) == 0;
}

/* The server's order of group values: null first, numbers, then bytes. */
static int gkey_cmp(const struct gkey *a, const struct gkey *b)
{
    if (a->null != b->null) return a->null ? -1 : 1;
    if (a->null) return 0;
    if (a->isint) return (a->i > b->i) - (a->i < b->i);
    size_t na = strlen(a->s), nb = strlen(b->s);
    int c = memcmp(a->s, b->s, na < nb ? na : nb);
    if (c) return c < 0 ? -1 : 1;
    return (na > nb) - (na < nb);
}

/* A measure's value: null, or num/den exactly (for sorting); its cell text; for a duration
 * exactly halfway between two hundredths, alt is the other neighbour. */
struct mval {
    bool null;
    i128 num, den;
    char txt[96], alt[96];
};

static int mval_cmp(const struct mval *a, const struct mval *b)
{
    if (a->null != b->null) return a->null ? -1 : 1;
    if (a->null) return 0;
    i128 x = a->num * b->den, y = b->num * a->den;
    return (x > y) - (x < y);
}

#define MAXCOLS 8
struct erow {
    struct gkey k[2];
    struct mval v[6];
    int *members;
    int nmem, capmem;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Hundredths of num/den units: "12.35" (half away from zero), the neighbour when a tie. */
static void hundredths(struct mval *v, i128 num, i128 den)
{
    bool tie;
    i128 q = div_half_away(num * 100, den, &tie);
    snprintf(v->txt, sizeof(v->txt), "%lld.%02lld", (long long)(q / 100), (long long)(q % 100));
    v->alt[0] = 0;
    if (tie) {
        i128 o = q - 1;
        snprintf(v->alt, sizeof(v->alt), "%lld.%02lld", (long long)(o / 100), (long long)(o % 100));
    }
}

static void measure_value(const struct def *d, int mi, const struct erow *row, struct mval *v)
{
    const struct mdef *m = &d->m[mi];
    memset(v, 0, sizeof(*v));
    v->den = 1;
    int n = row->nmem;
    if (m->dur) {
        int64_t *vals = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        int nv = 0;
        i128 sum = 0;
        for (int i = 0; i < n; i++) {
            int64_t x;
            if (rec_duration(&R[row->members[i]], m, &x)) {
                vals[nv++] = x;
                sum += x;
            }
        }
        int64_t unit = UNIT_MS[unit_of(m)];
        if (m->op == MO_COUNT) {
            v->num = nv;
            snprintf(v->txt, sizeof(v->txt), "%d", nv);
        } else if (!nv) {
            v->null = true;
            snprintf(v->txt, sizeof(v->txt), "null");
        } else {
            qsort(vals, (size_t)nv, sizeof(*vals), cmp_i64);
            i128 num, den = unit;
            if (m->op == MO_AVG)
                num = sum, den = (i128)unit * nv;
            else if (m->op == MO_MIN)
                num = vals[0];
            else if (m->op == MO_MAX)
                num = vals[nv - 1];
            else if (m->op == MO_MEDIAN)
                num = nv % 2 ? vals[nv / 2] : (vals[nv / 2 - 1] + vals[nv / 2]) / 2;
            else /* nearest rank: the ceil(0.9 n)-th smallest */
                num = vals[(nv * 9 + 9) / 10 - 1];
            v->num = num;
            v->den = den;
            hundredths(v, num, den);
        }
        free(vals);
        return;
    }
    if (m->op == MO_COUNT) {
        v->num = n;
        snprintf(v->txt, sizeof(v->txt), "%d", n);
        return;
    }
    if (m->op == MO_CD) {
        int distinct = 0;
        for (int i = 0; i < n; i++) {
            const struct rec *a = &R[row->members[i]];
            int64_t x = 0;
            bool null = false;
            switch (m->field) {
            case MF_PARTNER:
                x = a->partner;
                break;
            case MF_REGION:
                x = a->region, null = a->region < 0;
                break;
            case MF_STATE:
                x = a->state;
                break;
            case MF_START:
                x = a->start, null = !a->has_start;
                break;
            default:
                x = a->budget;
            }
            if (null) continue;
            bool seen = false;
            for (int k = 0; k < i && !seen; k++) {
                const struct rec *b = &R[row->members[k]];
                switch (m->field) {
                case MF_PARTNER:
                    seen = b->partner == x;
                    break;
                case MF_REGION:
                    seen = b->region == x;
                    break;
                case MF_STATE:
                    seen = b->state == x;
                    break;
                case MF_START:
                    seen = b->has_start && b->start == x;
                    break;
                default:
                    seen = b->budget == x;
                }
            }
            if (!seen) distinct++;
        }
        v->num = distinct;
        snprintf(v->txt, sizeof(v->txt), "%d", distinct);
        return;
    }
    /* sum, avg, min, max of budget; min, max of start_date and created_at */
    i128 sum = 0;
    int nv = 0, best = -1;
    int64_t bx = 0;
    for (int i = 0; i < n; i++) {
        const struct rec *a = &R[row->members[i]];
        int64_t x;
        if (m->field == MF_BUDGET)
            x = a->budget;
        else if (m->field == MF_START) {
            if (!a->has_start) continue;
            x = a->start;
        } else
            x = a->created;
        sum += x;
        if (best < 0 || (m->op == MO_MIN ? x < bx : x > bx)) best = row->members[i], bx = x;
        nv++;
    }
    if (!nv) {
        v->null = true;
        snprintf(v->txt, sizeof(v->txt), "null");
        return;
    }
    char t[96];
    if (m->op == MO_SUM) {
        v->num = sum;
        dec_text(sum, t, sizeof(t));
    } else if (m->op == MO_AVG) {
        v->num = sum, v->den = nv;
        dec_text(div_half_away(sum, nv, NULL), t, sizeof(t));
    } else {
        v->num = bx;
        if (m->field == MF_BUDGET)
            dec_text(bx, t, sizeof(t));
        else if (m->field == MF_START)
            date_text(bx, t, sizeof(t));
        else
            snprintf(t, sizeof(t), "%s", R[best].created_txt);
    }
    snprintf(v->txt, sizeof(v->txt), "s:%s", t);
}

static const struct def *SORT_DEF;

static int erow_cmp(const void *pa, const void *pb)
{
    const struct def *d = SORT_DEF;
    const struct erow *a = pa, *b = pb;
    if (!d->ns) {
        for (int k = 0; k < d->ng; k++) {
            int c = gkey_cmp(&a->k[k], &b->k[k]);
            if (c) return c;
        }
        return 0;
    }
    for (int s = 0; s < d->ns; s++) {
        int k = d->skey[s];
        int c =
            k < d->ng ? gkey_cmp(&a->k[k], &b->k[k]) : mval_cmp(&a->v[k - d->ng], &b->v[k - d->ng]);
        if (c) return d->sdesc[s] ? -c : c;
    }
    return 0;
}

/* The expected rows of d over the live records of org (-1: all), sorted (ties kept together).
 * *matched: the records that passed the filter. Free with rows_free. */
static struct erow *expect(const struct def *d, int org, int *nrows, int *matched)
{
    int cap = NR + 2, nr = 0;
    struct erow *rows = calloc((size_t)cap, sizeof(*rows));
    *matched = 0;
    if (d->ng == 0) nr = 1; /* one row, also over no records */
    for (int i = 0; i < NR; i++) {
        const struct rec *r = &R[i];
        if (r->deleted || (org >= 0 && r->org != org)) continue;
        if (d->froot >= 0 && !feval(d, d->froot, r)) continue;
        (*matched)++;
        struct gkey k[2];
        for (int g = 0; g < d->ng; g++)
            k[g] = group_key(&d->g[g], r);
        int at = -1;
        for (int x = 0; x < nr && at < 0; x++) {
            bool same = true;
            for (int g = 0; g < d->ng && same; g++)
                same = gkey_eq(&rows[x].k[g], &k[g]);
            if (same) at = x;
        }
        if (at < 0) {
            at = nr++;
            memcpy(rows[at].k, k, sizeof(k));
        }
        struct erow *e = &rows[at];
        if (e->nmem == e->capmem) {
            e->capmem = e->capmem ? e->capmem * 2 : 8;
            e->members = realloc(e->members, sizeof(int) * (size_t)e->capmem);
        }
        e->members[e->nmem++] = i;
    }
    for (int x = 0; x < nr; x++)
        for (int m = 0; m < d->nm; m++)
            measure_value(d, m, &rows[x], &rows[x].v[m]);
    SORT_DEF = d;
    qsort(rows, (size_t)nr, sizeof(*rows), erow_cmp);
    *nrows = nr;
    return rows;
}

static void rows_free(struct erow *rows, int n)
{
    for (int i = 0; i < n; i++)
        free(rows[i].members);
    free(rows);
}

/* The cell text of group value k: "null" or "s:<label>". */
static void gkey_text(const struct gdef *g, const struct gkey *k, char *out, size_t n)
{
    if (k->null) {
        snprintf(out, n, "null");
        return;
    }
    if (!k->isint) {
        snprintf(out, n, "s:%s", k->s);
        return;
    }
    char t[32];
    bucket_label(g->bucket, k->i, t, sizeof(t));
    snprintf(out, n, "s:%s", t);
}

/* ---------------------------------------------------------------------------------------------
 * Comparing an answer with the brute force
 */
/* The columns' types as the answer declares them, and a cell as text: "null", "s:<string>",
 * "<int>" or "<number with two places>". */
/* How column k's numbers are written: "number" (two places) or "int". */
static const char *num_kind(const struct def *d, int k)
{
    if (k < d->ng) return "text";
    const struct mdef *m = &d->m[k - d->ng];
    return m->dur && m->op != MO_COUNT ? "number" : "int";
}

static void cell_text(const cJSON *c, const char *type, char *out, size_t n)
{
    if (cJSON_IsNull(c))
        snprintf(out, n, "null");
    else if (cJSON_IsString(c))
        snprintf(out, n, "s:%s", c->valuestring);
    else if (cJSON_IsNumber(c))
        snprintf(out, n, str_eq(type, "number") ? "%.2f" : "%.0f", c->valuedouble);
    else
        snprintf(out, n, "?%d", c ? c->type : -1);
}

/* The type a measure's column declares. A count of durations says "number" (with the
 * duration's unit) although it is a count: see regression duration_count_is_an_int. */
static bool STRICT_TYPES = true; /* a duration count is an int without a unit (was a bug) */
static const char *measure_type(const struct mdef *m)
{
    if (m->dur) return m->op == MO_COUNT && STRICT_TYPES ? "int" : "number";
    if (m->op == MO_COUNT || m->op == MO_CD) return "int";
    if (m->field == MF_BUDGET) return "decimal";
    return m->field == MF_START ? "date" : "datetime";
}

struct check_stats {
    int reports, rows, cells, ties_other_way, counters, scans;
};
static struct check_stats STATS;

/* Checks an answer's columns and rows against the brute force; true when equal. Ties of the
 * sort keys may come in any order; a limit may cut a tie anywhere. strict_ties: a duration
 * exactly halfway between two hundredths must round away from zero (else either neighbour is
 * taken and counted). why gets the first difference. */
static bool answer_matches(const struct def *d, int org, const char *body, bool counters_ok,
                           bool strict_ties, char *why, size_t wn)
{
    why[0] = 0;
    cJSON *j = cJSON_Parse(body);
    if (!j) {
        snprintf(why, wn, "not JSON");
        return false;
    }
    bool ok = false;
    int ne = 0, matched = 0;
    struct erow *E = expect(d, org, &ne, &matched);
    bool *used = calloc((size_t)ne + 1, sizeof(bool));
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(j, "columns");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
    char types[MAXCOLS][16];
    int ncols = d->ng + d->nm;
    if (cJSON_GetArraySize(cols) != ncols) {
        snprintf(why, wn, "%d columns, want %d", cJSON_GetArraySize(cols), ncols);
        goto out;
    }
    for (int c = 0; c < ncols; c++) {
        const cJSON *col = cJSON_GetArrayItem(cols, c);
        const char *wname = c < d->ng ? GCOLS[d->g[c].col] : d->mn[c - d->ng];
        snprintf(types[c], sizeof(types[c]), "%s",
                 obj_str(col, "type") ? obj_str(col, "type") : "");
        if (!str_eq(obj_str(col, "name"), wname) ||
            !str_eq(obj_str(col, "role"), c < d->ng ? "group" : "measure")) {
            snprintf(why, wn, "column %d is %s", c, cJSON_PrintUnformatted(col));
            goto out;
        }
        if (c >= d->ng) {
            const struct mdef *m = &d->m[c - d->ng];
            if (!str_eq(obj_str(col, "op"), MOPS[m->op]) || !str_eq(types[c], measure_type(m)) ||
                (m->dur && !(m->op == MO_COUNT && STRICT_TYPES) &&
                 !str_eq(obj_str(col, "unit"), UNITS[unit_of(m)])) ||
                (m->dur && m->op == MO_COUNT && STRICT_TYPES && obj_str(col, "unit")) ||
                (m->field == MF_BUDGET && m->op != MO_CD && obj_int(col, "scale") != 2)) {
                snprintf(why, wn, "column %d: %s", c, cJSON_PrintUnformatted(col));
                goto out;
            }
        }
    }
    bool counters = counters_ok && d->froot < 0 && d->ng == 1 && !d->g[0].bucket &&
                    (d->g[0].col == GC_STATE || d->g[0].col == GC_REGION);
    for (int m = 0; m < d->nm && counters; m++)
        counters = d->m[m].op == MO_COUNT && !d->m[m].dur;
    if (!str_eq(obj_str(j, "source"), counters ? "counters" : "scan")) {
        snprintf(why, wn, "source %s, want %s", obj_str(j, "source"),
                 counters ? "counters" : "scan");
        goto out;
    }
    if (counters)
        STATS.counters++;
    else
        STATS.scans++;
    if (obj_int(j, "total_rows") != ne || obj_int(j, "matched") != matched) {
        snprintf(why, wn, "total_rows %lld matched %lld, want %d and %d", obj_int(j, "total_rows"),
                 obj_int(j, "matched"), ne, matched);
        goto out;
    }
    int shown = d->limit && d->limit < ne ? d->limit : ne;
    if (cJSON_GetArraySize(rows) != shown) {
        snprintf(why, wn, "%d rows, want %d", cJSON_GetArraySize(rows), shown);
        goto out;
    }
    /* Blocks of rows equal in the sort keys: the answer must go through them in order. */
    int block = 0;
    for (int i = 0; i < shown; i++) {
        const cJSON *row = cJSON_GetArrayItem(rows, i);
        char got[MAXCOLS][200];
        for (int c = 0; c < ncols; c++)
            cell_text(cJSON_GetArrayItem(row, c), num_kind(d, c), got[c], sizeof(got[c]));
        int found = -1, lenient = 0;
        for (;;) {
            int end = block;
            while (end < ne && erow_cmp(&E[end], &E[block]) == 0)
                end++;
            for (int x = block; x < end && found < 0; x++) {
                if (used[x]) continue;
                bool same = true;
                int len = 0;
                for (int c = 0; c < ncols && same; c++) {
                    char want[200];
                    if (c < d->ng) {
                        gkey_text(&d->g[c], &E[x].k[c], want, sizeof(want));
                        same = strcmp(want, got[c]) == 0;
                    } else {
                        const struct mval *v = &E[x].v[c - d->ng];
                        same = strcmp(v->txt, got[c]) == 0;
                        if (!same && !strict_ties && v->alt[0] && strcmp(v->alt, got[c]) == 0)
                            same = true, len++;
                    }
                }
                if (same) found = x, lenient = len;
            }
            bool all_used = true;
            for (int x = block; x < end; x++)
                all_used &= used[x] || x == found;
            if (found >= 0) {
                used[found] = true;
                if (all_used) block = end;
                break;
            }
            if (!all_used || end >= ne) break;
            block = end;
        }
        if (found < 0) {
            size_t o = 0;
            o += (size_t)snprintf(why + o, wn - o, "row %d [", i);
            for (int c = 0; c < ncols && o < wn; c++)
                o += (size_t)snprintf(why + o, wn - o, "%s%s", c ? " | " : "", got[c]);
            o += (size_t)snprintf(why + o, wn - o, "] is not expected here; expected:");
            for (int x = 0; x < ne && x < 40 && o < wn; x++) {
                o += (size_t)snprintf(why + o, wn - o, "\n  %s[", used[x] ? "(shown) " : "");
                for (int c = 0; c < ncols && o < wn; c++) {
                    char want[200];
                    if (c < d->ng)
                        gkey_text(&d->g[c], &E[x].k[c], want, sizeof(want));
                    else
                        snprintf(want, sizeof(want), "%s%s%s", E[x].v[c - d->ng].txt,
                                 E[x].v[c - d->ng].alt[0] ? "~" : "", E[x].v[c - d->ng].alt);
                    o += (size_t)snprintf(why + o, wn - o, "%s%s", c ? " | " : "", want);
                }
                o += (size_t)snprintf(why + o, wn - o, "]");
            }
            goto out;
        }
        STATS.ties_other_way += lenient;
        STATS.cells += ncols;
    }
    STATS.rows += shown;
    STATS.reports++;
    ok = true;
out:
    free(used);
    rows_free(E, ne);
    cJSON_Delete(j);
    return ok;
}

#define WHY_N 16384
static char WHY[WHY_N];

/* POSTs d to /reports/run as the administrator and checks the answer. */
static void check_adhoc(const struct def *d, bool strict)
{
    char *body = def_json(d), q[512];
    def_query(d, q, sizeof(q), NULL);
    struct resp rs;
    long st = call(ADMIN, "POST", body, &rs, "/api/v1/reports/run%s", q);
    ck_assert_msg(st == 200, "POST /api/v1/reports/run%s %s: %ld %s", q, body, st, rs.body);
    bool ok = answer_matches(d, -1, rs.body, true, strict, WHY, WHY_N);
    if (!ok) /* the whole story on stderr: Check's messages are bounded */
        fprintf(stderr, "seed %llu: report /api/v1/reports/run%s\n%s\nanswered\n%s\n%s\n",
                (unsigned long long)SEED, q, body, rs.body, WHY);
    ck_assert_msg(ok, "seed %llu: an ad-hoc report differs from the model: %.300s",
                  (unsigned long long)SEED, WHY);
    resp_free(&rs);
    free(body);
}

/* ---------------------------------------------------------------------------------------------
 * The sample app's reports, as definitions the brute force understands
 */
/* d emptied and named name, without a filter, with ng group-bys (their columns still to set). */
static void def_start(struct def *d, const char *name, int ng)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->froot = -1;
    d->ng = ng;
}

static void def_requests_by_state(struct def *d)
{
    def_start(d, "requests_by_state", 1);
    d->g[0].col = GC_STATE;
    d->nm = 1;
    d->m[0].op = MO_COUNT;
    d->m[0].unit = -1;
    snprintf(d->mn[0], sizeof(d->mn[0]), "requests");
}

/* state = "approved" && start_date >= @param.from (default 2000-01-01) */
static void def_spend_by_region(struct def *d, const char *from)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "spend_by_region");
    d->nf = 3;
    d->froot = 0;
    d->f[0] = (struct fnode){.kind = FN_AND, .l = 1, .r = 2, .param = -1};
    d->f[1] = (struct fnode){
        .kind = FN_CMP, .col = FC_STATE, .op = OP_EQ, .nv = 1, .v = {ST_APPROVED}, .param = -1};
    d->f[2] = (struct fnode){.kind = FN_CMP,
                             .col = FC_START,
                             .op = OP_GE,
                             .nv = 1,
                             .v = {date_days(from ? from : "2000-01-01")},
                             .param = -1};
    d->ng = 1;
    d->g[0].col = GC_REGION;
    d->nm = 3;
    d->m[0] = (struct mdef){.op = MO_COUNT, .unit = -1};
    d->m[1] = (struct mdef){.op = MO_SUM, .field = MF_BUDGET, .unit = -1};
    d->m[2] = (struct mdef){.op = MO_AVG, .field = MF_BUDGET, .unit = -1};
    snprintf(d->mn[0], sizeof(d->mn[0]), "requests");
    snprintf(d->mn[1], sizeof(d->mn[1]), "spend");
    snprintf(d->mn[2], sizeof(d->mn[2]), "average");
    d->ns = 1;
    d->skey[0] = 2; /* spend */
    d->sdesc[0] = true;
}

static void def_approval_cycle(struct def *d)
{
    def_start(d, "approval_cycle", 1);
    d->g[0] = (struct gdef){.col = GC_CREATED, .bucket = B_MONTH, .zone = 2};
    d->nm = 4;
    d->m[0] = (struct mdef){
        .op = MO_COUNT, .dur = 1, .from = ST_SUBMITTED, .to = ST_APPROVED, .unit = -1};
    d->m[1] = (struct mdef){
        .op = MO_MEDIAN, .dur = 1, .from = ST_SUBMITTED, .to = ST_APPROVED, .unit = 3};
    d->m[2] =
        (struct mdef){.op = MO_P90, .dur = 1, .from = ST_SUBMITTED, .to = ST_APPROVED, .unit = 3};
    d->m[3] = (struct mdef){.op = MO_AVG, .dur = 2, .in = ST_MREVIEW, .biz = true, .unit = 3};
    snprintf(d->mn[0], sizeof(d->mn[0]), "approved");
    snprintf(d->mn[1], sizeof(d->mn[1]), "median_hours");
    snprintf(d->mn[2], sizeof(d->mn[2]), "p90_hours");
    snprintf(d->mn[3], sizeof(d->mn[3]), "review_business_hours");
}

/* GET /api/v1/reports/{name}{query} as auth: 200 and the brute force over org's records. */
static void check_stored(const struct def *d, const char *auth, const char *who, int org,
                         bool reads_all, const char *query)
{
    struct resp rs;
    long st = call(auth, "GET", NULL, &rs, "/api/v1/reports/%s%s", d->name, query ? query : "");
    ck_assert_msg(st == 200, "GET report %s%s as %s: %ld %s", d->name, query ? query : "", who, st,
                  rs.body);
    ck_assert_msg(answer_matches(d, org, rs.body, reads_all, false, WHY, WHY_N),
                  "seed %llu: report %s%s as %s answered\n%s\n%s", (unsigned long long)SEED,
                  d->name, query ? query : "", who, rs.body, WHY);
    resp_free(&rs);
}

/* ---------------------------------------------------------------------------------------------
 * 1. The data set is what the store holds.
 */
START_TEST(the_model_is_what_the_store_holds)
{
    ck_assert_int_eq(count_records(&S, "marketing_request"), live_count(-1));
    cJSON *items, *j = api_get_items(&S, ADMIN, &items,
                                     "%s?limit=1000&sort=id&fields=id,state,budget,partner,region,"
                                     "start_date,org,created_at",
                                     MR);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        while (k < NR && R[k].deleted)
            k++;
        ck_assert_int_lt(k, NR);
        const struct rec *r = &R[k++];
        char b[64], sd[16] = "";
        dec_text(r->budget, b, sizeof(b));
        if (r->has_start) date_text(r->start, sd, sizeof(sd));
        ck_assert_msg(obj_int(it, "id") == r->id &&
                          str_eq(obj_str(it, "state"), STATES[r->state]) &&
                          str_eq(obj_str(it, "budget"), b) &&
                          str_eq(obj_str(it, "partner"), PARTNERS[r->partner]) &&
                          (r->region < 0 ? !obj_str(it, "region")
                                         : str_eq(obj_str(it, "region"), REGIONS[r->region])) &&
                          (r->has_start ? str_eq(obj_str(it, "start_date"), sd)
                                        : !obj_str(it, "start_date")) &&
                          str_eq(obj_str(it, "created_at"), r->created_txt),
                      "record %lld differs from the model: %s", r->id, cJSON_PrintUnformatted(it));
    }
    cJSON_Delete(j);
    /* Deleted records are gone. */
    for (int i = 0; i < NR; i++)
        if (R[i].deleted) {
            struct resp rs;
            ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "%s/%lld", MR, R[i].id), 404);
            resp_free(&rs);
        }
    /* Sums of budgets pass 2^63 cents (exact 128-bit sums are needed). */
    i128 sum = 0;
    for (int i = 0; i < NR; i++)
        if (!R[i].deleted) sum += R[i].budget;
    ck_assert_msg(sum > (i128)INT64_MAX, "the data set's budgets should sum past 2^63 cents");
    assert_store_check(&S);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 2. Random ad-hoc definitions answer what the brute force answers.
 */
START_TEST(random_adhoc_reports_match_the_model)
{
    reseed(2);
    memset(&STATS, 0, sizeof(STATS));
    struct def d;
    /* The sample reports' definitions first (as ad-hoc runs of what they say). */
    def_requests_by_state(&d);
    check_stored(&d, ADMIN, "admin", -1, true, NULL);
    def_spend_by_region(&d, NULL);
    check_stored(&d, ADMIN, "admin", -1, true, NULL);
    def_spend_by_region(&d, "2027-03-01");
    check_stored(&d, ADMIN, "admin", -1, true, "?from=2027-03-01");
    def_approval_cycle(&d);
    check_stored(&d, ADMIN, "admin", -1, true, NULL);
    int n = 400;
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "adhoc_%d", i);
        gen_def(&d, nm);
        check_adhoc(&d, false);
    }
    fprintf(stderr,
            "integration_reports: %d reports, %d rows, %d cells equal to the brute force (%d "
            "from the counters, %d scans); %d duration cells exactly halfway between two "
            "hundredths were rounded towards zero (see regression duration_ties_round_half_"
            "away_from_zero)\n",
            STATS.reports, STATS.rows, STATS.cells, STATS.counters, STATS.scans,
            STATS.ties_other_way);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 3. Stored reports run as partners, reviewers and auditors.
 */
/* The first field hidden from the auditor (budget, partner) that the report touches, in the
 * order the server checks: filter (left to right), group-bys, measures. NULL: none. */
static const char *hidden_touch_f(const struct def *d, int i)
{
    const struct fnode *f = &d->f[i];
    if (f->kind != FN_CMP) {
        const char *h = hidden_touch_f(d, f->l);
        if (!h && f->kind != FN_NOT) h = hidden_touch_f(d, f->r);
        return h;
    }
    return f->col == FC_BUDGET ? "budget" : f->col == FC_PARTNER ? "partner" : NULL;
}

static const char *hidden_touch(const struct def *d)
{
    const char *h = d->froot >= 0 ? hidden_touch_f(d, d->froot) : NULL;
    for (int g = 0; g < d->ng && !h; g++)
        if (d->g[g].col == GC_PARTNER) h = "partner";
    for (int m = 0; m < d->nm && !h; m++)
        if (d->m[m].field == MF_BUDGET || d->m[m].field == MF_PARTNER) h = MFIELDS[d->m[m].field];
    return h;
}

START_TEST(stored_reports_count_only_what_the_caller_may_read)
{
    reseed(3);
    memset(&STATS, 0, sizeof(STATS));
    struct resp rs;
    /* Ad-hoc definitions are for administrators. */
    long st = call(H(ANN), "POST",
                   "{\"name\":\"x\",\"type\":\"marketing_request\",\"measures\":"
                   "[{\"name\":\"n\",\"op\":\"count\"}]}",
                   &rs, "/api/v1/reports/run");
    assert_problem(&rs, 403, st, NULL, NULL, "ann POST /api/v1/reports/run");
    resp_free(&rs);
    int nh = 0, n = 60;
    for (int i = 0; i < n; i++) {
        struct def d;
        char nm[32], q[512];
        snprintf(nm, sizeof(nm), "pr_%d", i);
        gen_def(&d, nm);
        if (i < 4) { /* a few the counters can answer */
            d.froot = -1;
            d.ng = 1;
            d.g[0] = (struct gdef){.col = i % 2 ? GC_REGION : GC_STATE};
            d.nm = 1 + i / 2;
            for (int m = 0; m < d.nm; m++) {
                d.m[m] = (struct mdef){.op = MO_COUNT, .unit = -1};
                snprintf(d.mn[m], sizeof(d.mn[m]), "m%d", m);
            }
            d.ns = 0;
            d.np = 0;
        }
        char *body = def_json(&d);
        st = call(ADMIN, "PUT", body, &rs, "/api/v1/meta/reports/%s", nm);
        ck_assert_msg(st == 201, "PUT report %s %s: %ld %s", nm, body, st, rs.body);
        resp_free(&rs);
        free(body);
        def_query(&d, q, sizeof(q), NULL);
        check_stored(&d, ADMIN, "admin", -1, true, q);
        check_stored(&d, H(ANN), "ann (acme)", 1, true, q);
        check_stored(&d, H(AMY), "amy (acme)", 1, true, q);
        check_stored(&d, H(BOB), "bob (globex)", 2, true, q);
        check_stored(&d, H(RITA), "rita (reviewer)", -1, true, q);
        const char *hid = hidden_touch(&d);
        if (!hid) {
            check_stored(&d, H(AUD), "aud (auditor)", -1, true, q);
            continue;
        }
        nh++;
        st = call(H(AUD), "GET", NULL, &rs, "/api/v1/reports/%s%s", nm, q);
        assert_problem(&rs, 403, st, NULL, NULL, "aud runs a report touching a hidden field");
        cJSON *j = resp_json(&rs);
        ck_assert_msg(str_eq(obj_str(j, "field"), hid) && strstr(obj_str(j, "detail"), hid),
                      "aud: want a 403 naming %s: %s", hid, rs.body);
        cJSON_Delete(j);
        resp_free(&rs);
    }
    ck_assert_int_gt(nh, 0);
    /* The sample's spend_by_region measures budget; its requests_by_state does not. */
    struct def d;
    def_spend_by_region(&d, NULL);
    st = call(H(AUD), "GET", NULL, &rs, "/api/v1/reports/spend_by_region");
    assert_problem(&rs, 403, st, NULL, NULL, "aud GET spend_by_region");
    ck_assert_msg(problem_has_field(rs.body, "budget") || strstr(rs.body, "\"field\":\"budget\""),
                  "want budget named: %s", rs.body);
    resp_free(&rs);
    check_stored(&d, H(ANN), "ann", 1, true, NULL);
    check_stored(&d, H(BOB), "bob", 2, true, NULL);
    def_requests_by_state(&d);
    check_stored(&d, H(AUD), "aud", -1, true, NULL);
    check_stored(&d, H(BOB), "bob", 2, true, NULL);
    /* Everyone signed in sees the list. */
    cJSON *items, *j = api_get_items(SV, H(BOB), &items, "/api/v1/reports");
    ck_assert_int_eq(cJSON_GetArraySize(items), 4 + n);
    cJSON_Delete(j);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(call(ADMIN, "DELETE", NULL, &rs, "/api/v1/meta/reports/pr_%d", i), 204);
        resp_free(&rs);
    }
    fprintf(stderr,
            "integration_reports: %d stored reports x 6 callers (%d touch a hidden field)\n", n,
            nh);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 4. CSV
 */
struct csv {
    int nrows, ncols[400];
    char *cell[400][MAXCOLS];
    bool quoted[400][MAXCOLS];
};

static void csv_free(struct csv *c)
{
    for (int r = 0; r < c->nrows; r++)
        for (int k = 0; k < c->ncols[r]; k++)
            free(c->cell[r][k]);
}

/* Parses CSV text (after the BOM): fields quoted when they hold , " CR or LF, "" inside; lines
 * end with CRLF. False (why) on anything else. */
static bool csv_parse(const char *t, size_t n, struct csv *c, char *why, size_t wn)
{
    memset(c, 0, sizeof(*c));
    size_t i = 0;
    while (i < n) {
        ck_assert_int_lt(c->nrows, 400);
        int r = c->nrows++;
        for (;;) {
            ck_assert_int_lt(c->ncols[r], MAXCOLS);
            int k = c->ncols[r]++;
            char *v = malloc(n + 1);
            size_t o = 0;
            if (t[i] == '"') {
                c->quoted[r][k] = true;
                i++;
                for (;;) {
                    if (i >= n) {
                        snprintf(why, wn, "unterminated quoted field on line %d", r + 1);
                        free(v);
                        return false;
                    }
                    if (t[i] == '"' && i + 1 < n && t[i + 1] == '"') {
                        v[o++] = '"';
                        i += 2;
                    } else if (t[i] == '"') {
                        i++;
                        break;
                    } else {
                        v[o++] = t[i++];
                    }
                }
            } else {
                while (i < n && t[i] != ',' && t[i] != '\r' && t[i] != '\n') {
                    if (t[i] == '"') {
                        snprintf(why, wn, "a quote inside an unquoted field on line %d", r + 1);
                        free(v);
                        return false;
                    }
                    v[o++] = t[i++];
                }
            }
            v[o] = 0;
            c->cell[r][k] = v;
            if (i < n && t[i] == ',') {
                i++;
                continue;
            }
            if (i + 1 < n + 1 && i + 1 <= n && t[i] == '\r' && i + 1 < n && t[i + 1] == '\n') {
                i += 2;
                break;
            }
            snprintf(why, wn, "line %d does not end with CRLF (byte %zu: 0x%02x)", r + 1, i,
                     i < n ? (unsigned char)t[i] : 0);
            return false;
        }
    }
    return true;
}

/* CSV shows enum and state values as their labels in the caller's language. */
static const char *value_label(int col, const char *v, bool zh)
{
    static const char *const st_en[NST] = {
        "Draft",    "Submitted", "Marketing review", "Finance review", "Returned for changes",
        "Approved", "Rejected"};
    static const char *const st_zh[NST] = {"草稿",       "已提交", "市场部审核", "财务审核",
                                           "已退回修改", "已批准", "已驳回"};
    static const char *const rg_en[4] = {"North", "South", "East", "West"};
    static const char *const rg_zh[4] = {"华北", "华南", "华东", "华西"};
    if (col == GC_STATE)
        for (int i = 0; i < NST; i++)
            if (strcmp(v, STATES[i]) == 0) return zh ? st_zh[i] : st_en[i];
    if (col == GC_REGION)
        for (int i = 0; i < 4; i++)
            if (strcmp(v, REGIONS[i]) == 0) return zh ? rg_zh[i] : rg_en[i];
    return v;
}

static const char *group_label(int col, bool zh)
{
    static const char *const en[] = {"Region",     "State",   "Partner", "Organisation",
                                     "Start date", "Created", "Title"};
    static const char *const cn[] = {"区域",     "状态",     "合作伙伴", "组织",
                                     "开始日期", "创建时间", "标题"};
    return zh ? cn[col] : en[col];
}

/* Runs d as JSON and as CSV (Accept or ?format=csv; zh: Accept-Language zh-CN) and compares. */
static void check_csv(const struct def *d, bool by_accept, bool zh)
{
    char *body = def_json(d), q[512], path[700];
    def_query(d, q, sizeof(q), by_accept ? NULL : "format=csv");
    snprintf(path, sizeof(path), "/api/v1/reports/run%s", q);
    struct resp js, cs;
    const char *const hj[] = {zh ? "Accept-Language: zh-CN" : "Accept-Language: en", NULL};
    const char *const hc[] = {zh ? "Accept-Language: zh-CN,zh;q=0.9" : "Accept-Language: en-GB",
                              by_accept ? "Accept: text/csv" : "Accept: */*", NULL};
    char jpath[700];
    def_query(d, q, sizeof(q), NULL);
    snprintf(jpath, sizeof(jpath), "/api/v1/reports/run%s", q);
    long jst = call_h(NULL, "POST", jpath, body, hj, &js);
    ck_assert_msg(jst == 200, "POST %s %s: %ld %s", jpath, body, jst, js.body);
    ck_assert_msg(answer_matches(d, -1, js.body, true, false, WHY, WHY_N), "%s %s\n%s\n%s", jpath,
                  body, js.body, WHY);
    long st = call_h(NULL, "POST", path, body, hc, &cs);
    ck_assert_msg(st == 200, "CSV %s: %ld %s", path, st, cs.body);
    char ct[128];
    ck_assert_msg(resp_header(&cs, "Content-Type", ct, sizeof(ct)) &&
                      strncmp(ct, "text/csv", 8) == 0 && strstr(ct, "charset=utf-8"),
                  "CSV content type %s", ct);
    ck_assert_msg(cs.n >= 3 && memcmp(cs.body, "\xEF\xBB\xBF", 3) == 0, "no UTF-8 BOM: %s",
                  cs.body);
    struct csv c;
    char why[256];
    ck_assert_msg(csv_parse(cs.body + 3, cs.n - 3, &c, why, sizeof(why)), "CSV %s: %s\n%s", path,
                  why, cs.body);
    cJSON *j = cJSON_Parse(js.body);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
    int ncols = d->ng + d->nm;
    ck_assert_msg(c.nrows == 1 + cJSON_GetArraySize(rows), "CSV has %d lines for %d rows:\n%s",
                  c.nrows, cJSON_GetArraySize(rows), cs.body);
    /* Header: labels in the caller's language. */
    ck_assert_int_eq(c.ncols[0], ncols);
    for (int k = 0; k < ncols; k++) {
        char en[128], cn[128];
        const char *want;
        if (k < d->ng)
            want = group_label(d->g[k].col, zh);
        else {
            measure_labels(d, k - d->ng, en, cn, sizeof(en));
            want = zh ? cn : en;
        }
        ck_assert_msg(strcmp(c.cell[0][k], want) == 0, "CSV header %d: \"%s\", want \"%s\"", k,
                      c.cell[0][k], want);
    }
    /* Rows: the JSON's cells, in the JSON's order; quoted exactly when they need it. */
    for (int r = 1; r < c.nrows; r++) {
        ck_assert_int_eq(c.ncols[r], ncols);
        const cJSON *row = cJSON_GetArrayItem(rows, r - 1);
        for (int k = 0; k < ncols; k++) {
            char want[200];
            const cJSON *cell = cJSON_GetArrayItem(row, k);
            cell_text(cell, num_kind(d, k), want, sizeof(want));
            const char *w = str_eq(want, "null") ? "" : want[0] == 's' ? want + 2 : want;
            if (k < d->ng && want[0] == 's') w = value_label(d->g[k].col, w, zh);
            ck_assert_msg(strcmp(c.cell[r][k], w) == 0, "CSV line %d cell %d: \"%s\", JSON %s",
                          r + 1, k, c.cell[r][k], want);
        }
    }
    for (int r = 0; r < c.nrows; r++)
        for (int k = 0; k < c.ncols[r]; k++) {
            bool needs = strpbrk(c.cell[r][k], ",\"\r\n") != NULL;
            ck_assert_msg(c.quoted[r][k] == needs, "CSV line %d cell %d (%s) %s quoted", r + 1, k,
                          c.cell[r][k], c.quoted[r][k] ? "is" : "is not");
        }
    cJSON_Delete(j);
    csv_free(&c);
    resp_free(&js);
    resp_free(&cs);
    free(body);
}

START_TEST(csv_has_a_bom_labels_crlf_quoting_and_the_json_cells)
{
    reseed(4);
    struct def d;
    /* Partners with commas and quotes, labels with commas and quotes. */
    def_start(&d, "csv_a", 2);
    d.g[0].col = GC_PARTNER;
    d.g[1].col = GC_REGION;
    d.nm = 4;
    d.m[0] = (struct mdef){.op = MO_COUNT, .unit = -1, .labels = 2};
    d.m[1] = (struct mdef){.op = MO_SUM, .field = MF_BUDGET, .unit = -1, .labels = 2};
    d.m[2] = (struct mdef){.op = MO_AVG, .field = MF_BUDGET, .unit = -1, .labels = 1};
    d.m[3] = (struct mdef){.op = MO_MIN, .field = MF_START, .unit = -1};
    for (int i = 0; i < d.nm; i++)
        snprintf(d.mn[i], sizeof(d.mn[i]), "m%d", i);
    for (int v = 0; v < 4; v++)
        check_csv(&d, v & 1, v & 2);
    /* Sys columns, buckets, durations (numbers with two places). */
    d.ng = 2;
    d.g[0] = (struct gdef){.col = GC_STATE};
    d.g[1] = (struct gdef){.col = GC_CREATED, .bucket = B_MONTH, .zone = 2};
    d.nm = 3;
    d.m[0] = (struct mdef){
        .op = MO_AVG, .dur = 1, .from = ST_SUBMITTED, .to = ST_APPROVED, .unit = 3, .labels = 2};
    d.m[1] = (struct mdef){.op = MO_MAX, .dur = 2, .in = ST_MREVIEW, .biz = true, .unit = 2};
    d.m[2] = (struct mdef){.op = MO_MAX, .field = MF_CREATED, .unit = -1, .labels = 1};
    for (int v = 0; v < 4; v++)
        check_csv(&d, v & 1, v & 2);
    /* Organisation, no rows for a filter that matches nothing, one row without groups. */
    d.ng = 1;
    d.g[0] = (struct gdef){.col = GC_ORG};
    d.nf = 1;
    d.froot = 0;
    d.f[0] = (struct fnode){
        .kind = FN_CMP, .col = FC_BUDGET, .op = OP_LT, .nv = 1, .v = {0}, .param = -1};
    check_csv(&d, true, true);
    d.ng = 0;
    check_csv(&d, false, false);
    for (int i = 0; i < 30; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "csv_%d", i);
        gen_def(&d, nm);
        check_csv(&d, chance(50), chance(50));
    }
    /* A stored report as CSV (GET). */
    def_requests_by_state(&d);
    struct resp rs;
    const char *const h[] = {"Accept: text/csv", "Accept-Language: zh-CN", NULL};
    ck_assert_int_eq(call_h(NULL, "GET", "/api/v1/reports/requests_by_state", NULL, h, &rs), 200);
    ck_assert_msg(
        strncmp(rs.body, "\xEF\xBB\xBF状态,申请数\r\n", strlen("\xEF\xBB\xBF状态,申请数\r\n")) == 0,
        "requests_by_state CSV in Chinese: %s", rs.body);
    resp_free(&rs);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 5. Bad definitions are refused naming the path; nothing is stored.
 */
static const struct bad_def {
    const char *name, *body, *path;
} BAD[] = {
    {"bad_group_field",
     "\"group_by\":[{\"field\":\"nosuch\"}],\"measures\":[{\"name\":\"n\","
     "\"op\":\"count\"}]",
     "group_by[0].field"},
    {"bad_measure_field", "\"measures\":[{\"name\":\"n\",\"op\":\"max\",\"field\":\"nosuch\"}]",
     "measures[0].field"},
    {"bad_sum_text",
     "\"measures\":[{\"name\":\"n\",\"op\":\"count\"},{\"name\":\"s\",\"op\":"
     "\"sum\",\"field\":\"partner\"}]",
     "measures[1].field"},
    {"bad_avg_text", "\"measures\":[{\"name\":\"a\",\"op\":\"avg\",\"field\":\"title\"}]",
     "measures[0].field"},
    {"bad_bucket",
     "\"group_by\":[{\"field\":\"region\",\"bucket\":\"month\"}],\"measures\":[{"
     "\"name\":\"n\",\"op\":\"count\"}]",
     "group_by[0].bucket"},
    {"bad_bucket_name",
     "\"group_by\":[{\"field\":\"start_date\",\"bucket\":\"fortnight\"}],"
     "\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]",
     "group_by[0].bucket"},
    {"bad_no_bucket",
     "\"group_by\":[{\"field\":\"created_at\"}],\"measures\":[{\"name\":\"n\","
     "\"op\":\"count\"}]",
     "group_by[0].bucket"},
    {"bad_from_state",
     "\"measures\":[{\"name\":\"d\",\"op\":\"avg\",\"duration\":{\"from\":"
     "\"nosuch\",\"to\":\"approved\"}}]",
     "measures[0].duration.from"},
    {"bad_to_state",
     "\"measures\":[{\"name\":\"d\",\"op\":\"avg\",\"duration\":{\"from\":"
     "\"draft\",\"to\":\"done\"}}]",
     "measures[0].duration.to"},
    {"bad_in_state",
     "\"measures\":[{\"name\":\"d\",\"op\":\"p90\",\"duration\":{\"in\":"
     "\"limbo\"}}]",
     "measures[0].duration.in"},
    {"bad_timezone",
     "\"group_by\":[{\"field\":\"created_at\",\"bucket\":\"day\",\"timezone\":"
     "\"Mars/Olympus_Mons\"}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]",
     "group_by[0].timezone"},
    {"bad_date_zone",
     "\"group_by\":[{\"field\":\"start_date\",\"bucket\":\"day\",\"timezone\":"
     "\"Asia/Shanghai\"}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]",
     "group_by[0].timezone"},
    {"bad_calendar",
     "\"measures\":[{\"name\":\"d\",\"op\":\"avg\",\"duration\":{\"in\":"
     "\"draft\",\"calendar\":\"nosuch\"}}]",
     "measures[0].duration.calendar"},
    {"bad_unit",
     "\"measures\":[{\"name\":\"d\",\"op\":\"avg\",\"duration\":{\"in\":\"draft\","
     "\"unit\":\"weeks\"}}]",
     "measures[0].duration.unit"},
    {"bad_median", "\"measures\":[{\"name\":\"d\",\"op\":\"median\",\"field\":\"budget\"}]",
     "measures[0].duration"},
    {"bad_dur_op", "\"measures\":[{\"name\":\"d\",\"op\":\"sum\",\"duration\":{\"in\":\"draft\"}}]",
     "measures[0].op"},
    {"bad_filter", "\"filter\":\"nosuch = 1\",\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]",
     "filter"},
    {"bad_sort", "\"measures\":[{\"name\":\"n\",\"op\":\"count\"}],\"sort\":[{\"by\":\"x\"}]",
     "sort[0].by"},
    {"bad_limit", "\"measures\":[{\"name\":\"n\",\"op\":\"count\"}],\"limit\":0", "limit"},
    {"bad_dup",
     "\"measures\":[{\"name\":\"n\",\"op\":\"count\"},{\"name\":\"n\",\"op\":"
     "\"count\"}]",
     "measures[1].name"},
    {"bad_param_type",
     "\"params\":[{\"name\":\"p\",\"type\":\"colour\"}],\"measures\":[{"
     "\"name\":\"n\",\"op\":\"count\"}]",
     "params[0].type"},
    {"bad_key", "\"colour\":\"red\",\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]", "colour"},
    {"bad_no_measures", "\"measures\":[]", "measures"},
};

START_TEST(bad_definitions_are_refused_naming_the_path_and_nothing_is_stored)
{
    struct resp rs;
    cJSON *items0, *j0 = api_get_items(SV, ADMIN, &items0, "/api/v1/meta/reports");
    int nlist = cJSON_GetArraySize(items0);
    cJSON_Delete(j0);
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char body[2048];
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"type\":\"marketing_request\",%s}",
                 BAD[i].name, BAD[i].body);
        long st = call(ADMIN, "PUT", body, &rs, "/api/v1/meta/reports/%s", BAD[i].name);
        ck_assert_msg(st == 422 && problem_has_field(rs.body, BAD[i].path),
                      "PUT %s: want 422 naming %s: %ld %s", body, BAD[i].path, st, rs.body);
        resp_free(&rs);
        st = call(ADMIN, "POST", body, &rs, "/api/v1/reports/run");
        ck_assert_msg(st == 422 && problem_has_field(rs.body, BAD[i].path),
                      "POST run %s: want 422 naming %s: %ld %s", body, BAD[i].path, st, rs.body);
        resp_free(&rs);
        ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/meta/reports/%s", BAD[i].name),
                         404);
        resp_free(&rs);
        ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/reports/%s", BAD[i].name), 404);
        resp_free(&rs);
    }
    /* A name that differs from the one it is saved as. */
    const char *ok = "{\"name\":\"other\",\"type\":\"marketing_request\",\"measures\":[{\"name\":"
                     "\"n\",\"op\":\"count\"}]}";
    long st = call(ADMIN, "PUT", ok, &rs, "/api/v1/meta/reports/mine");
    ck_assert_msg(st == 422 && problem_has_field(rs.body, "name"), "name mismatch: %ld %s", st,
                  rs.body);
    resp_free(&rs);
    ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/meta/reports/mine"), 404);
    resp_free(&rs);
    ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/meta/reports/other"), 404);
    resp_free(&rs);
    /* An unknown type; not JSON. */
    st = call(ADMIN, "PUT",
              "{\"name\":\"t\",\"type\":\"nosuch\",\"measures\":[{\"name\":\"n\",\"op\":"
              "\"count\"}]}",
              &rs, "/api/v1/meta/reports/t");
    ck_assert_msg(st == 422 && problem_has_field(rs.body, "type"), "unknown type: %ld %s", st,
                  rs.body);
    resp_free(&rs);
    st = call(ADMIN, "PUT", "{\"name\":", &rs, "/api/v1/meta/reports/t");
    ck_assert_msg(st == 400, "not JSON: %ld %s", st, rs.body);
    resp_free(&rs);
    ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/meta/reports/t"), 404);
    resp_free(&rs);
    /* The list is what it was. */
    cJSON *items, *j = api_get_items(SV, ADMIN, &items, "/api/v1/meta/reports");
    ck_assert_int_eq(cJSON_GetArraySize(items), nlist);
    cJSON_Delete(j);
    /* Partners may not write definitions. */
    st = call(H(ANN), "PUT",
              "{\"name\":\"p\",\"type\":\"marketing_request\",\"measures\":[{\"name\":\"n\","
              "\"op\":\"count\"}]}",
              &rs, "/api/v1/meta/reports/p");
    ck_assert_msg(st == 403, "ann PUT report: %ld %s", st, rs.body);
    resp_free(&rs);
    /* Parameters at run time: unknown, of the wrong type, missing when required. */
    const char *pdef = "{\"name\":\"pr\",\"type\":\"marketing_request\",\"filter\":\"start_date "
                       ">= @param.from\",\"params\":[{\"name\":\"from\",\"type\":\"date\","
                       "\"required\":true}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]}";
    static const struct {
        const char *q, *field;
    } pq[] = {{"?from=2026-13-01", "from"}, {"", "from"}, {"?from=2027-01-01&to=x", "to"}};
    for (int i = 0; i < 3; i++) {
        st = call(ADMIN, "POST", pdef, &rs, "/api/v1/reports/run%s", pq[i].q);
        cJSON *pj = resp_json(&rs);
        ck_assert_msg(st == 400 && str_eq(obj_str(pj, "field"), pq[i].field),
                      "run%s: want 400 naming %s: %ld %s", pq[i].q, pq[i].field, st, rs.body);
        cJSON_Delete(pj);
        resp_free(&rs);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 6. Dashboards
 */
/* GET the overview dashboard as auth; checks every widget against GET /api/v1/reports/{name}
 * as the same caller, except broken (the index of a widget that must carry an error with
 * status want_status; -1: none). Returns the parsed dashboard (owned). */
static cJSON *check_dashboard(const char *auth, const char *who, int broken, long want_status)
{
    struct resp rs;
    long st = call(auth, "GET", NULL, &rs, "/api/v1/dashboards/overview");
    ck_assert_msg(st == 200, "dashboard as %s: %ld %s", who, st, rs.body);
    cJSON *dj = resp_json(&rs);
    resp_free(&rs);
    ck_assert_str_eq(obj_str(dj, "name"), "overview");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(dj, "widgets");
    static const char *const reps[] = {"requests_by_state", "spend_by_region", "approval_cycle",
                                       "sla_compliance"};
    static const char *const kinds[] = {"bar", "pie", "line", "table"};
    ck_assert_int_eq(cJSON_GetArraySize(ws), 4);
    for (int i = 0; i < 4; i++) {
        const cJSON *w = cJSON_GetArrayItem(ws, i);
        ck_assert_msg(str_eq(obj_str(w, "report"), reps[i]) && str_eq(obj_str(w, "kind"), kinds[i]),
                      "widget %d: %s", i, cJSON_PrintUnformatted(w));
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(w, "title"));
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(w, "data");
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(data, "error");
        if (i == broken) {
            ck_assert_msg(err && obj_int(err, "status") == want_status && obj_str(err, "detail"),
                          "widget %d as %s: want an error %ld: %s", i, who, want_status,
                          cJSON_PrintUnformatted(w));
            continue;
        }
        ck_assert_msg(!err && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(data, "rows")),
                      "widget %d (%s) as %s: %s", i, reps[i], who, cJSON_PrintUnformatted(w));
        st = call(auth, "GET", NULL, &rs, "/api/v1/reports/%s", reps[i]);
        ck_assert_int_eq(st, 200);
        cJSON *rj = resp_json(&rs);
        ck_assert_msg(cJSON_Compare(rj, data, true), "widget %d as %s: %s\nreport: %s", i, who,
                      cJSON_PrintUnformatted(data), rs.body);
        cJSON_Delete(rj);
        resp_free(&rs);
    }
    return dj;
}

/* Widget i's data of dashboard dj as text (owned). */
static char *widget_data(const cJSON *dj, int i)
{
    return cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dj, "widgets"), i), "data"));
}

START_TEST(dashboard_widgets_carry_their_data_or_their_error)
{
    struct def d[3];
    def_requests_by_state(&d[0]);
    def_spend_by_region(&d[1], NULL);
    def_approval_cycle(&d[2]);
    const char *who[] = {"admin", "ann", "bob", "rita"};
    const char *auth[] = {ADMIN, H(ANN), H(BOB), H(RITA)};
    int org[] = {-1, 1, 2, -1};
    for (int u = 0; u < 4; u++) {
        cJSON *dj = check_dashboard(auth[u], who[u], -1, 0);
        for (int i = 0; i < 3; i++) {
            char *t = widget_data(dj, i);
            ck_assert_msg(answer_matches(&d[i], org[u], t, true, false, WHY, WHY_N),
                          "dashboard widget %d as %s: %s\n%s", i, who[u], t, WHY);
            free(t);
        }
        cJSON_Delete(dj);
    }
    /* The auditor may not read budget: spend_by_region's widget carries a 403, the rest
     * answer. */
    cJSON_Delete(check_dashboard(H(AUD), "aud", 1, 403));
    /* A widget whose report is gone carries a 404; the others still answer. */
    struct resp rs;
    ck_assert_int_eq(call(ADMIN, "DELETE", NULL, &rs, "/api/v1/meta/reports/approval_cycle"), 204);
    resp_free(&rs);
    cJSON *dj = check_dashboard(ADMIN, "admin", 2, 404);
    char *t = widget_data(dj, 0);
    ck_assert_msg(answer_matches(&d[0], -1, t, true, false, WHY, WHY_N), "%s\n%s", t, WHY);
    free(t);
    cJSON_Delete(dj);
    cJSON_Delete(check_dashboard(H(ANN), "ann", 2, 404));
    /* Restored, it answers again. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/samples/marketing/reports/approval_cycle.json", trellis_src());
    char *def = read_file_ok(path);
    long st = call(ADMIN, "PUT", def, &rs, "/api/v1/meta/reports/approval_cycle");
    ck_assert_msg(st == 201, "PUT approval_cycle back: %ld %s", st, rs.body);
    resp_free(&rs);
    free(def);
    dj = check_dashboard(ADMIN, "admin", -1, 0);
    t = widget_data(dj, 2);
    ck_assert_msg(answer_matches(&d[2], -1, t, true, false, WHY, WHY_N), "%s\n%s", t, WHY);
    free(t);
    cJSON_Delete(dj);
    /* No such dashboard. */
    ck_assert_int_eq(call(ADMIN, "GET", NULL, &rs, "/api/v1/dashboards/nosuch"), 404);
    resp_free(&rs);
    /* A dashboard naming a report that does not exist is refused. */
    st = call(ADMIN, "PUT",
              "{\"name\":\"d2\",\"widgets\":[{\"kind\":\"bar\",\"report\":\"nosuch\"}]}", &rs,
              "/api/v1/meta/dashboards/d2");
    ck_assert_msg(st == 422 && problem_has_field(rs.body, "widgets[0].report"), "%ld %s", st,
                  rs.body);
    resp_free(&rs);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 7. Counters: requests_by_state equals a brute-force count, also after kill -9 (own server).
 */
static void check_counters(const char *when)
{
    struct def d;
    def_requests_by_state(&d);
    char label[160];
    snprintf(label, sizeof(label), "admin %s", when);
    check_stored(&d, ADMIN, label, -1, true, NULL);
    snprintf(label, sizeof(label), "rita %s", when);
    check_stored(&d, H(RITA), label, -1, true, NULL);
    snprintf(label, sizeof(label), "ann %s", when);
    check_stored(&d, H(ANN), label, 1, true, NULL);
    snprintf(label, sizeof(label), "amy %s", when);
    check_stored(&d, H(AMY), label, 1, true, NULL);
    snprintf(label, sizeof(label), "bob %s", when);
    check_stored(&d, H(BOB), label, 2, true, NULL);
    /* The same count by scanning (a filter keeps the counters out). */
    d.nf = 1;
    d.froot = 0;
    d.f[0] = (struct fnode){
        .kind = FN_CMP, .col = FC_BUDGET, .op = OP_GE, .nv = 1, .v = {0}, .param = -1};
    check_adhoc(&d, false);
    /* By region too (an enum's counters). */
    d.froot = -1;
    d.g[0].col = GC_REGION;
    check_adhoc(&d, false);
    ck_assert_int_eq(count_records(SV, "marketing_request"), live_count(-1));
}

START_TEST(counters_equal_a_brute_force_count_also_after_kill_9)
{
    reseed(7);
    NR = 0;
    own_server_up("");
    check_counters("with no records");
    for (int round = 0; round < 3; round++) {
        random_work(10, NR + 18, false, 45);
        for (int k = 0; k < 2; k++) { /* and some deletes */
            int i = rnd(NR);
            if (!R[i].deleted && R[i].state != ST_MREVIEW && R[i].state != ST_FREVIEW)
                delete_rec(&R[i]);
        }
        char when[64];
        snprintf(when, sizeof(when), "after round %d", round);
        check_counters(when);
    }
    /* Writes, then kill -9 at once: every acknowledged write counts after the restart. */
    random_work(6, NR + 12, false, 45);
    for (int i = 0; i < NR; i++)
        if (!R[i].deleted && R[i].state == ST_DRAFT) {
            delete_rec(&R[i]);
            break;
        }
    srv_kill9(&OWN);
    ck_assert_int_eq(srv_start(&OWN), 0);
    check_counters("after kill -9 and a restart");
    random_work(6, NR + 8, false, 45);
    check_counters("after more work");
    assert_store_check(&OWN);
    own_server_down();
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 8. The scan limit (own server with --report-max-scan 10).
 */
START_TEST(a_scan_over_the_limit_is_refused_while_the_counters_answer)
{
    reseed(8);
    NR = 0;
    own_server_up("--report-max-scan 10");
    for (int i = 0; i < 14; i++) {
        int k = create_rec(i % 2 ? ANN : -1, 0);
        (void)k;
    }
    /* 3 in the north (by hand), the rest elsewhere. */
    int north = 0;
    for (int i = 0; i < NR; i++)
        if (R[i].region == 0) north++;
    struct resp rs;
    const char *scan = "{\"name\":\"big\",\"type\":\"marketing_request\",\"group_by\":[{\"field\":"
                       "\"region\"}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"},{\"name\":"
                       "\"s\",\"op\":\"sum\",\"field\":\"budget\"}]}";
    long st = call(ADMIN, "POST", scan, &rs, "/api/v1/reports/run");
    assert_problem(&rs, 400, st, NULL, NULL, "a scan of 14 records over a limit of 10");
    cJSON *j = resp_json(&rs);
    ck_assert_msg(obj_str(j, "detail") &&
                      strstr(obj_str(j, "detail"), "would examine more than 10 records"),
                  "the limit's message: %s", rs.body);
    cJSON_Delete(j);
    resp_free(&rs);
    /* The counters answer. */
    struct def d;
    def_requests_by_state(&d);
    check_stored(&d, ADMIN, "admin", -1, true, NULL);
    check_stored(&d, H(RITA), "rita", -1, true, NULL);
    /* A partner's count comes from their org's counters: no scan either. */
    check_stored(&d, H(ANN), "ann", 1, true, NULL);
    check_stored(&d, H(BOB), "bob", 2, true, NULL);
    /* A partner's scan reads only their org's records (the org index drives it with the
     * scope): under the limit that all 14 records would exceed. */
    st = call(ADMIN, "PUT",
              "{\"name\":\"by_start\",\"type\":\"marketing_request\",\"group_by\":[{\"field\":"
              "\"start_date\"}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]}",
              &rs, "/api/v1/meta/reports/by_start");
    ck_assert_int_eq(st, 201);
    resp_free(&rs);
    st = call(H(ANN), "GET", NULL, &rs, "/api/v1/reports/by_start");
    ck_assert_msg(st == 200, "ann: by_start answered %ld: %.300s", st, rs.body);
    {
        cJSON *j = cJSON_Parse(rs.body);
        ck_assert_ptr_nonnull(j);
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "scanned");
        const cJSON *ma = cJSON_GetObjectItemCaseSensitive(j, "matched");
        ck_assert(cJSON_IsNumber(sc) && cJSON_IsNumber(ma));
        ck_assert_msg(sc->valueint == ma->valueint && sc->valueint < 14,
                      "ann: scanned %d, matched %d of 14 records", sc->valueint, ma->valueint);
        cJSON_Delete(j);
    }
    resp_free(&rs);
    /* A filter on an indexed field narrows the scan under the limit. */
    if (north <= 10) {
        const char *narrow = "{\"name\":\"north\",\"type\":\"marketing_request\",\"filter\":"
                             "\"region = \\\"north\\\"\",\"measures\":[{\"name\":\"n\",\"op\":"
                             "\"count\"}]}";
        st = call(ADMIN, "POST", narrow, &rs, "/api/v1/reports/run");
        ck_assert_msg(st == 200, "region = north (%d records): %ld %s", north, st, rs.body);
        j = resp_json(&rs);
        const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "rows"), 0);
        ck_assert_int_eq((int)cJSON_GetArrayItem(row, 0)->valuedouble, north);
        cJSON_Delete(j);
        resp_free(&rs);
    }
    own_server_down();
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Regressions: runtime bugs found by this suite, fixed (each comment tells the story).
 */

/* Bug 1: a parameter of type enum (or text) without a default cannot be compared with an enum
 * field: the definition is refused at parse time (422, errors[0].field "filter": "column 10:
 * 'region' has no option @param.r (options: north, south, east, west)"). trl_report_parse
 * (runtime/report/report.c) compiles the filter with a placeholder "x" for every parameter
 * without a default, and "x" is no option of region. The parameter type "enum" exists for this
 * very use. */
START_TEST(enum_parameter_without_a_default)
{
    const char *def = "{\"name\":\"by_region\",\"type\":\"marketing_request\",\"filter\":\"region "
                      "= @param.r\",\"params\":[{\"name\":\"r\",\"type\":\"enum\",\"required\":"
                      "true}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]}";
    struct resp rs;
    long st = call(ADMIN, "POST", def, &rs, "/api/v1/reports/run?r=north");
    ck_assert_msg(st == 200, "POST run ?r=north: %ld %s", st, rs.body);
    cJSON *j = resp_json(&rs);
    int want = 0;
    for (int i = 0; i < NR; i++)
        if (!R[i].deleted && R[i].region == 0) want++;
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "rows"), 0);
    ck_assert_int_eq((int)cJSON_GetArrayItem(row, 0)->valuedouble, want);
    cJSON_Delete(j);
    resp_free(&rs);
    st = call(ADMIN, "PUT", def, &rs, "/api/v1/meta/reports/by_region");
    ck_assert_msg(st == 201, "PUT: %ld %s", st, rs.body);
    resp_free(&rs);
    call(ADMIN, "DELETE", NULL, &rs, "/api/v1/meta/reports/by_region");
    resp_free(&rs);
}
END_TEST

/* Bug 2: sorting (and so the top N) by a sum, avg, min or max of decimals compares doubles
 * (measure_json's sortv in runtime/report/report.c): two sums that differ by one cent above
 * 2^53 cents compare equal, and the rows keep whatever order the hash table gave them, so the
 * same report sorted ascending and descending answers the same first row; one of them is wrong.
 * Exact 128-bit sums are shown but not sorted by. */
START_TEST(sort_by_large_decimal_sums_is_exact)
{
    own_server_up("");
    struct resp rs;
    /* 2^60 cents and one cent more. */
    const char *bodies[] = {"{\"title\":\"a\",\"partner\":\"P\",\"region\":\"north\",\"budget\":"
                            "\"11529215046068469.76\"}",
                            "{\"title\":\"b\",\"partner\":\"P\",\"region\":\"south\",\"budget\":"
                            "\"11529215046068469.77\"}"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(call(ADMIN, "POST", bodies[i], &rs, "%s", MR), 201);
        resp_free(&rs);
    }
    const char *want[2] = {"north", "south"};
    char got[2][16];
    for (int desc = 0; desc < 2; desc++) {
        char def[512];
        snprintf(def, sizeof(def),
                 "{\"name\":\"top\",\"type\":\"marketing_request\",\"group_by\":[{\"field\":"
                 "\"region\"}],\"measures\":[{\"name\":\"s\",\"op\":\"sum\",\"field\":"
                 "\"budget\"}],\"sort\":[{\"by\":\"s\",\"desc\":%s}],\"limit\":1}",
                 desc ? "true" : "false");
        ck_assert_int_eq(call(ADMIN, "POST", def, &rs, "/api/v1/reports/run"), 200);
        cJSON *j = resp_json(&rs);
        const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "rows"), 0);
        snprintf(got[desc], sizeof(got[desc]), "%s", cJSON_GetArrayItem(row, 0)->valuestring);
        cJSON_Delete(j);
        resp_free(&rs);
    }
    own_server_down();
    ck_assert_msg(str_eq(got[0], want[0]) && str_eq(got[1], want[1]),
                  "top 1 by sum ascending: %s (want %s); descending: %s (want %s) - sums "
                  "11529215046068469.76 and .77",
                  got[0], want[0], got[1], want[1]);
}
END_TEST

/* Bug 3: durations are printed with printf("%.2f") of a double (measure_json in
 * runtime/report/report.c), so a value exactly halfway between two hundredths rounds by the
 * binary fraction: 1.005 s (1005 ms, 1.00499999999999989...) shows as 1.00 and 0.125 h as 0.12,
 * while 1.375 s shows as 1.38 - unlike decimal averages, which round half away from zero. Each
 * record's own durations in seconds (grouped by title, so each cell is one duration): ties are
 * about one in ten. */
START_TEST(duration_ties_round_half_away_from_zero)
{
    struct def d;
    def_start(&d, "ties", 1);
    d.g[0].col = GC_TITLE;
    d.nm = 4;
    d.m[0] = (struct mdef){.op = MO_MAX, .dur = 2, .in = ST_DRAFT, .unit = 1};
    d.m[1] = (struct mdef){.op = MO_MAX, .dur = 1, .from = ST_DRAFT, .to = ST_SUBMITTED, .unit = 1};
    d.m[2] = (struct mdef){.op = MO_MIN, .dur = 2, .in = ST_SUBMITTED, .unit = 1};
    d.m[3] = (struct mdef){.op = MO_MAX, .dur = 2, .in = ST_MREVIEW, .unit = 1};
    for (int i = 0; i < d.nm; i++)
        snprintf(d.mn[i], sizeof(d.mn[i]), "m%d", i);
    memset(&STATS, 0, sizeof(STATS));
    char *body = def_json(&d);
    struct resp rs;
    ck_assert_int_eq(call(ADMIN, "POST", body, &rs, "/api/v1/reports/run"), 200);
    ck_assert_msg(answer_matches(&d, -1, rs.body, true, false, WHY, WHY_N), "%s", WHY);
    /* The answer's rows are the records by title, as the brute force's: name the ties. */
    int nties = 0, other = 0, ne = 0, matched = 0;
    char first[256] = "";
    struct erow *E = expect(&d, -1, &ne, &matched);
    cJSON *j = resp_json(&rs);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
    for (int i = 0; i < ne; i++) {
        const cJSON *row = cJSON_GetArrayItem(rows, i);
        for (int m = 0; m < d.nm; m++) {
            const struct mval *v = &E[i].v[m];
            if (!v->alt[0]) continue;
            nties++;
            char got[64];
            cell_text(cJSON_GetArrayItem(row, 1 + m), "number", got, sizeof(got));
            if (strcmp(got, v->txt) == 0) continue;
            if (!other++)
                snprintf(first, sizeof(first), "%s, m%d: %s5 s shown as %s (want %s)", E[i].k[0].s,
                         m, v->alt, got, v->txt);
        }
    }
    cJSON_Delete(j);
    rows_free(E, ne);
    resp_free(&rs);
    free(body);
    ck_assert_msg(other == 0,
                  "%d of %d durations exactly halfway between two hundredths of a second were "
                  "not rounded half away from zero (as decimal averages are); e.g. %s",
                  other, nties, first);
}
END_TEST

/* Bug 4: a decimal parameter of 9,223,372,036.86 or more is refused ("parameter 'min' must be a
 * decimal", 400) although the field it is compared with holds up to 92,233,720,368,547,758.07:
 * param_ok (runtime/report/report.c) parses every decimal parameter at scale 9 into an int64
 * (trl_decimal_parse(v, n, 9, ...)), which overflows above INT64_MAX / 10^9. */
START_TEST(large_decimal_parameter)
{
    const char *def = "{\"name\":\"big\",\"type\":\"marketing_request\",\"filter\":\"budget "
                      ">= @param.min\",\"params\":[{\"name\":\"min\",\"type\":\"decimal\","
                      "\"default\":\"0\"}],\"measures\":[{\"name\":\"n\",\"op\":\"count\"}]}";
    int want = 0;
    for (int i = 0; i < NR; i++)
        if (!R[i].deleted && R[i].budget >= 1000000000000LL) want++;
    struct resp rs;
    long st = call(ADMIN, "POST", def, &rs, "/api/v1/reports/run?min=10000000000.00");
    ck_assert_msg(st == 200, "min=10000000000.00 (ten billion): %ld %s", st, rs.body);
    cJSON *j = resp_json(&rs);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "rows"), 0);
    ck_assert_int_eq((int)cJSON_GetArrayItem(row, 0)->valuedouble, want);
    cJSON_Delete(j);
    resp_free(&rs);
}
END_TEST

/* Bug 5: the column of a count of durations says "type": "number" and carries the duration's
 * "unit" ("hours" by default) although its cells are counts of records (ints): a chart labels
 * the axis of "approved" in approval_cycle in hours. columns_json (runtime/report/report.c)
 * types every duration measure as a number. */
START_TEST(duration_count_is_an_int)
{
    STRICT_TYPES = true;
    struct def d;
    def_approval_cycle(&d);
    check_stored(&d, ADMIN, "admin", -1, true, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_reports");
    TCase *tc = tcase_create("reports");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_unchecked_fixture(tc, data_setup, data_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, the_model_is_what_the_store_holds);
    tcase_add_test(tc, random_adhoc_reports_match_the_model);
    tcase_add_test(tc, stored_reports_count_only_what_the_caller_may_read);
    tcase_add_test(tc, csv_has_a_bom_labels_crlf_quoting_and_the_json_cells);
    tcase_add_test(tc, bad_definitions_are_refused_naming_the_path_and_nothing_is_stored);
    tcase_add_test(tc, dashboard_widgets_carry_their_data_or_their_error);
    tcase_add_test(tc, counters_equal_a_brute_force_count_also_after_kill_9);
    tcase_add_test(tc, a_scan_over_the_limit_is_refused_while_the_counters_answer);
    suite_add_tcase(s, tc);
    {
        /* Bugs this suite found (fixed). Needs the data set too: the same fixture, so these run
         * in a case of their own. */
        TCase *bugs = tcase_create("regressions");
        tcase_add_unchecked_fixture(bugs, tmpreg_setup, tmpreg_teardown);
        tcase_add_unchecked_fixture(bugs, data_setup, data_teardown);
        tcase_set_timeout(bugs, 120);
        tcase_add_test(bugs, enum_parameter_without_a_default);
        tcase_add_test(bugs, sort_by_large_decimal_sums_is_exact);
        tcase_add_test(bugs, duration_ties_round_half_away_from_zero);
        tcase_add_test(bugs, large_decimal_parameter);
        tcase_add_test(bugs, duration_count_is_an_int);
        suite_add_tcase(s, bugs);
    }
    return run_suite(s);
}
