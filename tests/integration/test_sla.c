/* SLA clocks against the real server (runtime/sla, the SLA part of runtime/workflow,
 * runtime/http/engine.c), on the sample marketing_request with SLA policies added, a business
 * calendar cn_office (Asia/Shanghai, Mon-Fri 09:00-12:00 and 13:00-18:00, Monday 2036-12-08 a
 * holiday) and the server's test clock (`serve --test-clock`, POST /api/v1/test/clock).
 *
 * What it proves: due times count business hours across a weekend and a holiday (checked to the
 * millisecond against an independent model of the calendar) and a 24x7 policy counts plain time;
 * policies are chosen by their condition in order; the warning (75 %) and the breach (100 %) fire
 * once each with their actions (inbox messages, a history event each, the set field, the
 * transition to rejected that stops the clock and cancels the approval); pausing (entering a pause
 * state) freezes elapsed_ms and resuming moves due_at by exactly the paused business time, never
 * restarting the clock; a clock stopped in time is met and nothing fires after its old due time;
 * deleting a record stops its clocks; a restart (kill -9 or SIGTERM) between warning and breach
 * loses nothing and fires nothing twice, and timers that fell due while the server was down fire
 * once, in due order; the test clock route is 404 without --test-clock, 403 for non-admins, and
 * refuses bad input without moving; bad SLA
 * definitions are refused 422 naming their path and change nothing; calendars in use cannot be
 * deleted (409). `trellis check` passes after every test.
 *
 * Dates are in December 2036 so that the test clock (which never moves backwards) can reach them
 * for years to come.
 */
#include "harness.h"

#include "core/core.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct srv S;
static const char *MR = "/api/v1/records/marketing_request";
static const char *WF = "/api/v1/meta/workflows/marketing_request";
static const char *CLOCK = "/api/v1/test/clock";

/* The users of every test (admin is the harness's). */
enum { ANN, RITA, FAY, DAN, NUSERS };
static struct test_user U[NUSERS] = {
    [ANN] = {"ann", "partner", "acme", ""},
    [RITA] = {"rita", "reviewer", NULL, ""},
    [FAY] = {"fay", "finance", NULL, ""},
    [DAN] = {"dan", "director", NULL, ""},
};
#define H(u) (U[u].hdr)

static const char *CAL_JSON =
    "{\"name\":\"cn_office\",\"labels\":{\"en\":\"China office\",\"zh-CN\":\"中国办公时间\"},"
    "\"timezone\":\"Asia/Shanghai\",\"week\":{"
    "\"mon\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]],"
    "\"tue\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]],"
    "\"wed\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]],"
    "\"thu\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]],"
    "\"fri\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]],"
    "\"sat\":[],\"sun\":[]},"
    "\"holidays\":[{\"date\":\"2036-12-08\",\"name\":\"test holiday\"}]}";

/* The policy of most tests: the brief's review target, and a handling target over the whole
 * request that pauses while the request is returned to the partner. */
static const char *STD_SLAS =
    "[{\"name\":\"standard\",\"labels\":{\"en\":\"Standard\",\"zh-CN\":\"标准\"},"
    "\"calendar\":\"cn_office\",\"condition\":\"budget <= 50000\",\"pause\":[\"returned\"],"
    "\"targets\":["
    "{\"name\":\"review\",\"labels\":{\"en\":\"Review\",\"zh-CN\":\"审核\"},"
    "\"start\":[\"marketing_review\"],\"stop\":[\"finance_review\",\"rejected\",\"returned\","
    "\"draft\"],\"hours\":16,\"minutes\":0,\"warn_percent\":75,"
    "\"on_warning\":[{\"notify\":{\"requester\":true}}],"
    "\"on_breach\":[{\"notify\":{\"role\":\"director\"}},{\"set\":\"description\",\"value\":"
    "\"escalated\"},{\"transition\":\"reject\"}]},"
    "{\"name\":\"handling\",\"labels\":{\"en\":\"Handling\",\"zh-CN\":\"处理\"},"
    "\"start\":[\"submitted\"],\"stop\":[\"approved\",\"rejected\"],\"hours\":40}]}]";

/* Long enough for the scheduler (250 ms) to have fired anything due, twice over. */
static void quiet(void)
{
    wait_ms(700);
}

/* ---------------------------------------------------------------------------------------------
 * Users, server
 */
static void setup(void)
{
    srv_up(&S, "--test-clock", (const char *[]){"acme", NULL}, U, NUSERS);
    struct resp r;
    /* The sample may bring a cn_office of its own: this one replaces it. */
    long st = api_call(&S, ADMIN, "PUT", CAL_JSON, &r, "/api/v1/meta/calendars/cn_office");
    ck_assert_msg(st == 201 || st == 200, "PUT calendar: %ld %s", st, r.body);
    resp_free(&r);
}

static void teardown(void)
{
    srv_teardown(&S);
}

static const char *fmt_ms(int64_t ms, char *buf)
{
    trl_datetime_format(ms, buf);
    return buf;
}

#define ASSERT_MS(got, want)                                                                       \
    do {                                                                                           \
        int64_t g_ = (got), w_ = (want);                                                           \
        char gb_[40], wb_[40];                                                                     \
        ck_assert_msg(g_ == w_, "%s: want %s, got %s", #got, fmt_ms(w_, wb_), fmt_ms(g_, gb_));    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * An independent model of cn_office: UTC+8 all year, Mon-Fri 09-12 and 13-18, 2036-12-08 off.
 */
static const int64_t TZ_MS = 8 * HOUR_MS;

static bool workday(int64_t day)
{
    static int64_t hol = -1;
    if (hol < 0) hol = (time_ms("2036-12-08T00:00:00+08:00") + TZ_MS) / DAY_MS;
    int64_t wd = ((day % 7) + 7 + 4) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
    return wd >= 1 && wd <= 5 && day != hol;
}

/* Business ms in [a, b). */
static int64_t biz_between(int64_t a, int64_t b)
{
    int64_t sum = 0;
    static const int spans[2][2] = {{9, 12}, {13, 18}};
    for (int64_t day = (a + TZ_MS) / DAY_MS; day <= (b + TZ_MS) / DAY_MS; day++) {
        if (!workday(day)) continue;
        for (int k = 0; k < 2; k++) {
            int64_t s = day * DAY_MS - TZ_MS + spans[k][0] * HOUR_MS;
            int64_t e = day * DAY_MS - TZ_MS + spans[k][1] * HOUR_MS;
            int64_t lo = a > s ? a : s, hi = b < e ? b : e;
            if (hi > lo) sum += hi - lo;
        }
    }
    return sum;
}

/* The earliest t >= start with biz_between(start, t) == d (d > 0). */
static int64_t biz_add(int64_t start, int64_t d)
{
    static const int spans[2][2] = {{9, 12}, {13, 18}};
    for (int64_t day = (start + TZ_MS) / DAY_MS, end = day + 400; day < end; day++) {
        if (!workday(day)) continue;
        for (int k = 0; k < 2; k++) {
            int64_t s = day * DAY_MS - TZ_MS + spans[k][0] * HOUR_MS;
            int64_t e = day * DAY_MS - TZ_MS + spans[k][1] * HOUR_MS;
            int64_t from = start > s ? start : s;
            if (from >= e) continue;
            if (d <= e - from) return from + d;
            d -= e - from;
        }
    }
    ck_abort_msg("biz_add: out of range");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The test clock
 */
static int64_t clock_now(int64_t *offset)
{
    cJSON *j = api_get_json(&S, ADMIN, "%s", CLOCK);
    int64_t now = obj_time_ms(j, "now");
    if (offset) *offset = obj_int(j, "offset_ms");
    cJSON_Delete(j);
    return now;
}

/* ---------------------------------------------------------------------------------------------
 * Workflow, records, history, clocks, inboxes
 */
/* PUT the installed sample workflow (as GET answers it) with "slas" (a JSON text; NULL: none);
 * the status, body in out. */
static long put_slas(const char *slas, struct resp *out)
{
    cJSON *def = api_get_json(&S, ADMIN, "%s", WF);
    cJSON_DeleteItemFromObjectCaseSensitive(def, "slas");
    if (slas) {
        cJSON *s = cJSON_Parse(slas);
        ck_assert_msg(s != NULL, "slas not JSON: %s", slas);
        cJSON_AddItemToObject(def, "slas", s);
    }
    long st = api_put_json(&S, ADMIN, def, out, "%s", WF);
    cJSON_Delete(def);
    return st;
}

static void put_slas_ok(const char *slas)
{
    struct resp r;
    long st = put_slas(slas, &r);
    ck_assert_msg(st == 200 || st == 201, "PUT workflow with slas: %ld %s", st, r.body);
    resp_free(&r);
}

/* A request by ann, submitted by ann; its id. */
static long long new_request(const char *title, const char *budget)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"title\":\"%s\",\"partner\":\"Acme\",\"budget\":\"%s\",\"start_date\":"
             "\"2036-12-31\"}",
             title, budget);
    struct resp r;
    long st = api_call(&S, H(ANN), "POST", body, &r, "%s", MR);
    ck_assert_msg(st == 201, "create: %ld %s", st, r.body);
    long long id = json_int(r.body, "id", 0);
    resp_free(&r);
    st = api_call(&S, H(ANN), "POST", "{}", &r, "%s/%lld/transitions/submit", MR, id);
    ck_assert_msg(st == 200 && json_contains(r.body, "{\"state\":\"submitted\"}"), "submit: %ld %s",
                  st, r.body);
    resp_free(&r);
    return id;
}

static long move(const char *hdr, long long id, const char *name, const char *body,
                 struct resp *out)
{
    return api_call(&S, hdr, "POST", body ? body : "{}", out, "%s/%lld/transitions/%s", MR, id,
                    name);
}

static void move_ok(const char *hdr, long long id, const char *name, const char *body,
                    const char *state)
{
    struct resp r;
    long st = move(hdr, id, name, body, &r);
    ck_assert_msg(st == 200, "%s on %lld: %ld %s", name, id, st, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_msg(str_eq(obj_str(j, "state"), state), "%s on %lld: want %s: %s", name, id, state,
                  r.body);
    cJSON_Delete(j);
    resp_free(&r);
}

static void start_review(long long id)
{
    move_ok(H(RITA), id, "start_review", NULL, "marketing_review");
}

/* The record (owned). */
static cJSON *record(long long id)
{
    return api_get_json(&S, ADMIN, "%s/%lld", MR, id);
}

static bool state_is(long long id, const char *state)
{
    cJSON *j = record(id);
    bool ok = str_eq(obj_str(j, "state"), state);
    cJSON_Delete(j);
    return ok;
}

/* The history items (owned root; items in *items). */
static cJSON *history(long long id, cJSON **items)
{
    return api_get_items(&S, ADMIN, items, "%s/%lld/history", MR, id);
}

/* Fired SLA events of target and phase in the record's history. */
static int count_sla(long long id, const char *target, const char *phase)
{
    cJSON *items, *h = history(id, &items);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, items)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "sla");
        if (str_eq(obj_str(e, "action"), "sla") && str_eq(obj_str(s, "target"), target) &&
            str_eq(obj_str(s, "phase"), phase))
            n++;
    }
    cJSON_Delete(h);
    return n;
}

/* History events with that action. */
static int count_action(long long id, const char *action)
{
    return api_history_count(&S, MR, id, "action", action);
}

static int count_transition(long long id, const char *name)
{
    return api_history_count(&S, MR, id, "transition", name);
}

/* The last history event of transition name (owned copy). */
static cJSON *transition_event(long long id, const char *name)
{
    cJSON *items, *h = history(id, &items), *found = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, items)
    {
        if (str_eq(obj_str(e, "transition"), name)) {
            cJSON_Delete(found);
            found = cJSON_Duplicate(e, true);
        }
    }
    cJSON_Delete(h);
    ck_assert_msg(found != NULL, "record %lld has no %s event", id, name);
    return found;
}

/* The event's "sla" list holds exactly want (a JSON array of {"target","event"}, any order). */
static void assert_sla_list(const cJSON *ev, const char *want)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(ev, "sla");
    cJSON *w = cJSON_Parse(want);
    char *txt = cJSON_PrintUnformatted(ev);
    ck_assert_msg(w && json_same_items(l, w), "want sla %s in %s", want, txt);
    free(txt);
    cJSON_Delete(w);
}

/* The clock of target on record id (owned copy); NULL when absent. */
static cJSON *clock_of(long long id, const char *target, int *nitems)
{
    char *t = api_get_text(&S, ADMIN, "%s/%lld/sla", MR, id);
    cJSON *j = cJSON_Parse(t);
    ck_assert_msg(j != NULL, "sla not JSON: %s", t);
    free(t);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    ck_assert(cJSON_IsArray(items));
    if (nitems) *nitems = cJSON_GetArraySize(items);
    cJSON *found = NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        if (str_eq(obj_str(it, "target"), target)) found = cJSON_Duplicate(it, true);
    }
    cJSON_Delete(j);
    return found;
}

static cJSON *sla_clock(long long id, const char *target)
{
    cJSON *c = clock_of(id, target, NULL);
    ck_assert_msg(c != NULL, "record %lld has no clock %s", id, target);
    return c;
}

#define ASSERT_CLOCK(c, subset)                                                                    \
    do {                                                                                           \
        char *t_ = cJSON_PrintUnformatted(c);                                                      \
        ck_assert_msg(json_contains(t_, subset), "want %s in %s", subset, t_);                     \
        free(t_);                                                                                  \
    } while (0)

/* Messages of kind about record id in user u's inbox. */
static int inbox_count(int u, const char *kind, long long id)
{
    return api_inbox_count(&S, H(u), kind, "marketing_request", id);
}

/* Pending approval tasks of user u on record id. */
static int pending_tasks(int u, long long id)
{
    char *t = api_get_text(&S, H(u), "/api/v1/approvals?assignee=me&status=pending&limit=1000");
    cJSON *j = cJSON_Parse(t);
    free(t);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "items"))
    {
        if (obj_int(it, "record") == id) n++;
    }
    cJSON_Delete(j);
    return n;
}

/* Every SLA trace of one record: fired events per phase, transitions, inbox messages. */
struct trace {
    int warn, breach, sla_events, rejects;
    int ann_warn, ann_breach, dan_warn, dan_breach;
};

static void trace_of(long long id, struct trace *t)
{
    t->warn = count_sla(id, "review", "warning");
    t->breach = count_sla(id, "review", "breach");
    t->sla_events = count_action(id, "sla");
    t->rejects = count_transition(id, "reject");
    t->ann_warn = inbox_count(ANN, "sla_warning", id);
    t->ann_breach = inbox_count(ANN, "sla_breach", id);
    t->dan_warn = inbox_count(DAN, "sla_warning", id);
    t->dan_breach = inbox_count(DAN, "sla_breach", id);
}

#define ASSERT_TRACE(id, w, b, rej)                                                                \
    do {                                                                                           \
        struct trace t_;                                                                           \
        trace_of(id, &t_);                                                                         \
        ck_assert_msg(t_.warn == (w) && t_.ann_warn == (w) && t_.breach == (b) &&                  \
                          t_.dan_breach == (b) && t_.sla_events == (w) + (b) &&                    \
                          t_.rejects == (rej) && t_.ann_breach == 0 && t_.dan_warn == 0,           \
                      "record %lld: want %d warning(s), %d breach(es), %d reject(s); got "         \
                      "warning events %d (ann's inbox %d, dan's %d), breach events %d (dan's "     \
                      "inbox %d, ann's %d), sla events %d, rejects %d",                            \
                      (long long)(id), w, b, rej, t_.warn, t_.ann_warn, t_.dan_warn, t_.breach,    \
                      t_.dan_breach, t_.ann_breach, t_.sla_events, t_.rejects);                    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * 1. Business hours across a weekend and a holiday; policies chosen by condition.
 */
START_TEST(business_hours_across_weekend_and_holiday)
{
    put_slas_ok(
        "[{\"name\":\"standard\",\"labels\":{\"en\":\"Standard\",\"zh-CN\":\"标准\"},"
        "\"calendar\":\"cn_office\",\"condition\":\"budget <= 50000\",\"pause\":[\"returned\"],"
        "\"targets\":["
        "{\"name\":\"review\",\"labels\":{\"en\":\"Review\",\"zh-CN\":\"审核\"},"
        "\"start\":[\"marketing_review\"],\"stop\":[\"finance_review\",\"rejected\",\"returned\","
        "\"draft\"],\"hours\":16,\"warn_percent\":75},"
        "{\"name\":\"quick\",\"start\":[\"marketing_review\"],\"stop\":[\"finance_review\"],"
        "\"hours\":3,\"minutes\":30},"
        "{\"name\":\"handling\",\"start\":[\"submitted\"],\"stop\":[\"approved\",\"rejected\"],"
        "\"hours\":40}]},"
        "{\"name\":\"big\",\"labels\":{\"en\":\"Big budget\",\"zh-CN\":\"大额\"},\"targets\":["
        "{\"name\":\"review\",\"labels\":{\"en\":\"Review (24x7)\",\"zh-CN\":\"审核\"},"
        "\"start\":[\"marketing_review\"],\"stop\":[\"finance_review\",\"rejected\"],"
        "\"hours\":4,\"warn_percent\":50}]}]");
    int64_t fri16 = time_ms("2036-12-05T16:00:00+08:00"); /* Friday; Monday 8 Dec is a holiday */
    clock_set_ms(&S, fri16);
    long long id = new_request("Weekend 周末", "12000");
    cJSON *ev = transition_event(id, "submit");
    assert_sla_list(ev, "[{\"target\":\"handling\",\"event\":\"started\"}]");
    cJSON_Delete(ev);
    start_review(id);
    ev = transition_event(id, "start_review");
    assert_sla_list(ev, "[{\"target\":\"review\",\"event\":\"started\"},"
                        "{\"target\":\"quick\",\"event\":\"started\"}]");
    int64_t at = obj_time_ms(ev, "at");
    cJSON_Delete(ev);

    int n = 0;
    cJSON *c = clock_of(id, "review", &n);
    ck_assert_msg(c != NULL && n == 3, "want review, quick and handling clocks, got %d", n);
    ASSERT_CLOCK(c, "{\"target\":\"review\",\"policy\":\"standard\",\"calendar\":\"cn_office\","
                    "\"status\":\"running\",\"paused\":false,\"stopped\":false,"
                    "\"target_ms\":57600000,\"warned_at\":null,\"breached_at\":null,"
                    "\"stopped_at\":null,\"labels\":{\"en\":\"Review\",\"zh-CN\":\"审核\"}}");
    int64_t s = obj_time_ms(c, "started_at");
    ASSERT_MS(s, at);
    ck_assert_msg(s >= fri16 && s - fri16 < MIN_MS, "started %lld ms after 16:00",
                  (long long)(s - fri16));
    /* Fri 16-18 (2 h); Sat, Sun; Mon holiday; Tue 9-12, 13-18 (10 h); Wed 9-12, 13-16. */
    ASSERT_MS(obj_time_ms(c, "due_at"), biz_add(s, 16 * HOUR_MS));
    ASSERT_MS(obj_time_ms(c, "due_at"), time_ms("2036-12-10T16:00:00+08:00") + (s - fri16));
    ASSERT_MS(obj_time_ms(c, "warn_at"), time_ms("2036-12-10T11:00:00+08:00") + (s - fri16));
    cJSON_Delete(c);
    /* 3.5 business hours: due on the next working day after the weekend and the holiday. */
    c = sla_clock(id, "quick");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"target_ms\":12600000,\"warn_at\":null}");
    ASSERT_MS(obj_time_ms(c, "due_at"), time_ms("2036-12-09T10:30:00+08:00") + (s - fri16));
    cJSON_Delete(c);
    c = sla_clock(id, "handling");
    int64_t sh = obj_time_ms(c, "started_at");
    ASSERT_MS(obj_time_ms(c, "due_at"), biz_add(sh, 40 * HOUR_MS));
    ASSERT_MS(obj_time_ms(c, "due_at"), time_ms("2036-12-15T16:00:00+08:00") + (sh - fri16));
    cJSON_Delete(c);

    /* A big budget takes the second policy: 24x7, plain elapsed time. */
    long long big = new_request("Big 大额", "80000");
    ev = transition_event(big, "submit");
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(ev, "sla") == NULL,
                  "no policy's handling target applies to a big budget");
    cJSON_Delete(ev);
    start_review(big);
    c = clock_of(big, "review", &n);
    ck_assert_msg(c != NULL && n == 1, "want only the 24x7 review clock, got %d", n);
    ASSERT_CLOCK(c, "{\"policy\":\"big\",\"calendar\":\"24x7\",\"status\":\"running\","
                    "\"target_ms\":14400000,\"labels\":{\"en\":\"Review (24x7)\"}}");
    int64_t sb = obj_time_ms(c, "started_at");
    ASSERT_MS(obj_time_ms(c, "due_at"), sb + 4 * HOUR_MS);
    ASSERT_MS(obj_time_ms(c, "warn_at"), sb + 2 * HOUR_MS);
    cJSON_Delete(c);

    /* Saturday noon: the business clock has counted Friday's last two hours only; the 24x7
     * clock has warned and breached. */
    clock_set(&S, "2036-12-06T12:00:00+08:00");
    WAIT_FOR(count_sla(big, "review", "breach") == 1, "the 24x7 clock's breach");
    c = sla_clock(id, "review");
    ck_assert_int_eq(obj_int(c, "elapsed_ms"), time_ms("2036-12-05T18:00:00+08:00") - s);
    ck_assert_int_eq(obj_int(c, "remaining_ms"), 16 * HOUR_MS - obj_int(c, "elapsed_ms"));
    ck_assert_int_eq(obj_int(c, "percent"), obj_int(c, "elapsed_ms") * 100 / (16 * HOUR_MS));
    cJSON_Delete(c);
    ck_assert_int_eq(count_sla(big, "review", "warning"), 1);
    c = sla_clock(big, "review");
    ASSERT_CLOCK(c, "{\"status\":\"breached\",\"stopped\":false,\"remaining_ms\":0}");
    ck_assert(obj_time_ms(c, "breached_at") >= sb + 4 * HOUR_MS);
    ck_assert(obj_time_ms(c, "warned_at") >= sb + 2 * HOUR_MS);
    cJSON_Delete(c);
    ck_assert(state_is(big, "marketing_review")); /* no actions in that policy */

    /* Monday (the holiday), late afternoon: nothing more counted, nothing fired. */
    clock_set(&S, "2036-12-08T17:00:00+08:00");
    quiet();
    c = sla_clock(id, "review");
    ck_assert_int_eq(obj_int(c, "elapsed_ms"), time_ms("2036-12-05T18:00:00+08:00") - s);
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"warned_at\":null}");
    cJSON_Delete(c);
    c = sla_clock(id, "quick");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"breached_at\":null}");
    cJSON_Delete(c);
    ck_assert_int_eq(count_action(id, "sla"), 0);

    /* Tuesday 10:00: one more hour (and the milliseconds the test clock ran on since). */
    clock_set(&S, "2036-12-09T10:00:00+08:00");
    c = sla_clock(id, "review");
    int64_t el = obj_int(c, "elapsed_ms"),
            want = time_ms("2036-12-05T18:00:00+08:00") - s + HOUR_MS;
    ck_assert_msg(el >= want && el < want + 5000, "elapsed %lld, want %lld", (long long)el,
                  (long long)want);
    cJSON_Delete(c);
    /* Tuesday 10:30 and a bit: the quick target breaches (no actions: one history event). */
    clock_set_ms(&S, time_ms("2036-12-09T10:30:00+08:00") + (s - fri16) + 1);
    WAIT_FOR(count_sla(id, "quick", "breach") == 1, "the quick target's breach");
    ck_assert_int_eq(count_action(id, "sla"), 1);
    ck_assert(state_is(id, "marketing_review"));
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 2. Warning at 75 %, breach at 100 %, each once, with their actions.
 */
START_TEST(warning_then_breach_fire_once_with_their_actions)
{
    put_slas_ok(STD_SLAS);
    int64_t wed = time_ms("2036-12-10T09:30:00+08:00");
    clock_set_ms(&S, wed);
    long long id = new_request("Spring launch 春季", "12000");
    start_review(id);
    ck_assert_int_eq(pending_tasks(RITA, id), 1);
    cJSON *c = sla_clock(id, "review");
    int64_t s = obj_time_ms(c, "started_at"), due = obj_time_ms(c, "due_at"),
            warn = obj_time_ms(c, "warn_at");
    cJSON_Delete(c);
    /* Wed 9:30-12, 13-18 (7.5 h); Thu 9-12, 13-18 (15.5 h); Fri 9-9:30. */
    ASSERT_MS(due, biz_add(s, 16 * HOUR_MS));
    ASSERT_MS(due, time_ms("2036-12-12T09:30:00+08:00") + (s - wed));
    ASSERT_MS(warn, time_ms("2036-12-11T14:30:00+08:00") + (s - wed));

    /* Just before the warning: nothing. */
    clock_set_ms(&S, warn - MIN_MS);
    quiet();
    ASSERT_TRACE(id, 0, 0, 0);

    /* The warning: one history event, one message to the requester. */
    clock_set_ms(&S, warn);
    WAIT_FOR(count_sla(id, "review", "warning") == 1, "the warning of record %lld", id);
    ASSERT_TRACE(id, 1, 0, 0);
    cJSON *items, *h = history(id, &items);
    cJSON *last = cJSON_GetArrayItem(items, cJSON_GetArraySize(items) - 1);
    char *txt = cJSON_PrintUnformatted(last);
    ck_assert_msg(json_contains(txt, "{\"action\":\"sla\",\"actor\":\"system\",\"sla\":{\"target\":"
                                     "\"review\",\"phase\":\"warning\"},\"changes\":{}}"),
                  "warning event: %s", txt);
    free(txt);
    cJSON_Delete(h);
    c = sla_clock(id, "review");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"warn_at\":null,\"breached_at\":null}");
    ck_assert(obj_time_ms(c, "warned_at") >= warn);
    ASSERT_MS(obj_time_ms(c, "due_at"), due);
    cJSON_Delete(c);
    ck_assert(state_is(id, "marketing_review"));

    /* An hour later, still before the breach: nothing more. */
    clock_advance(&S, HOUR_MS);
    quiet();
    ASSERT_TRACE(id, 1, 0, 0);

    /* The breach: the director is told, the description set, the request rejected. */
    clock_set_ms(&S, due);
    WAIT_FOR(state_is(id, "rejected"), "the breach of record %lld to reject it", id);
    ASSERT_TRACE(id, 1, 1, 1);
    h = history(id, &items);
    int nh = cJSON_GetArraySize(items);
    txt = cJSON_PrintUnformatted(cJSON_GetArrayItem(items, nh - 2));
    ck_assert_msg(json_contains(txt, "{\"action\":\"sla\",\"actor\":\"system\",\"sla\":{\"target\":"
                                     "\"review\",\"phase\":\"breach\"},\"changes\":{"
                                     "\"description\":{\"from\":null,\"to\":\"escalated\"}}}"),
                  "breach event: %s", txt);
    free(txt);
    txt = cJSON_PrintUnformatted(cJSON_GetArrayItem(items, nh - 1));
    ck_assert_msg(json_contains(txt, "{\"action\":\"transition\",\"actor\":\"system\","
                                     "\"transition\":\"reject\",\"from\":\"marketing_review\","
                                     "\"to\":\"rejected\"}"),
                  "reject event: %s", txt);
    free(txt);
    assert_sla_list(cJSON_GetArrayItem(items, nh - 1),
                    "[{\"target\":\"review\",\"event\":\"breached\"},"
                    "{\"target\":\"handling\",\"event\":\"met\"}]");
    cJSON_Delete(h);
    cJSON *rec = record(id);
    ck_assert_msg(str_eq(obj_str(rec, "description"), "escalated"), "description: %s",
                  obj_str(rec, "description") ? obj_str(rec, "description") : "null");
    cJSON_Delete(rec);
    /* Leaving the state cancelled the approval. */
    ck_assert_int_eq(pending_tasks(RITA, id), 0);
    c = sla_clock(id, "review");
    ASSERT_CLOCK(c, "{\"status\":\"breached\",\"stopped\":true,\"paused\":false,"
                    "\"remaining_ms\":0}");
    ck_assert(obj_time_ms(c, "breached_at") >= due);
    ck_assert(obj_time_ms(c, "stopped_at") >= due);
    ck_assert(obj_time_ms(c, "warned_at") >= warn && obj_time_ms(c, "warned_at") < due);
    cJSON_Delete(c);
    c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"status\":\"met\",\"stopped\":true}");
    cJSON_Delete(c);

    /* Two days later: nothing fires again. */
    clock_advance(&S, 2 * DAY_MS);
    quiet();
    ASSERT_TRACE(id, 1, 1, 1);
    ck_assert(state_is(id, "rejected"));
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 3. Pause (returned) and resume (submitted again).
 */
START_TEST(pause_and_resume_move_due_by_the_paused_business_time)
{
    put_slas_ok(STD_SLAS);
    clock_set(&S, "2036-12-11T10:00:00+08:00"); /* Thursday */
    long long id = new_request("Paused 暂停", "12000");
    cJSON *c = sla_clock(id, "handling");
    int64_t s = obj_time_ms(c, "started_at"), due0 = obj_time_ms(c, "due_at");
    cJSON_Delete(c);
    ASSERT_MS(due0, biz_add(s, 40 * HOUR_MS));
    start_review(id);

    /* Thursday 15:00: returned to the partner; handling pauses, review is met. */
    clock_set(&S, "2036-12-11T15:00:00+08:00");
    move_ok(ADMIN, id, "return", "{\"comment\":\"please fix the budget\"}", "returned");
    cJSON *ev = transition_event(id, "return");
    assert_sla_list(ev, "[{\"target\":\"handling\",\"event\":\"paused\"},"
                        "{\"target\":\"review\",\"event\":\"met\"}]");
    int64_t p = obj_time_ms(ev, "at");
    cJSON_Delete(ev);
    c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"status\":\"paused\",\"paused\":true,\"stopped\":false}");
    int64_t frozen = obj_int(c, "elapsed_ms");
    ck_assert_int_eq(frozen, biz_between(s, p));
    ASSERT_MS(obj_time_ms(c, "started_at"), s);
    cJSON_Delete(c);

    /* Frozen while paused: Friday, and Monday after the weekend. */
    const char *later[] = {"2036-12-12T11:00:00+08:00", "2036-12-15T09:30:00+08:00"};
    for (int i = 0; i < 2; i++) {
        clock_set(&S, later[i]);
        c = sla_clock(id, "handling");
        ASSERT_CLOCK(c, "{\"status\":\"paused\"}");
        ck_assert_msg(obj_int(c, "elapsed_ms") == frozen, "elapsed %lld at %s, frozen at %lld",
                      obj_int(c, "elapsed_ms"), later[i], (long long)frozen);
        ck_assert_int_eq(obj_int(c, "remaining_ms"), 40 * HOUR_MS - frozen);
        cJSON_Delete(c);
    }

    /* Submitted again: resumed (not restarted), due_at moved by the paused business time. */
    move_ok(H(ANN), id, "submit", NULL, "submitted");
    ev = transition_event(id, "submit");
    assert_sla_list(ev, "[{\"target\":\"handling\",\"event\":\"resumed\"}]");
    int64_t r = obj_time_ms(ev, "at");
    cJSON_Delete(ev);
    int64_t paused = biz_between(p, r);
    /* Thu 15-18, Fri 9-12, 13-18, Mon 9-9:30 (give or take the test's own milliseconds). */
    ck_assert_msg(paused > 11 * HOUR_MS + 29 * MIN_MS && paused < 11 * HOUR_MS + 31 * MIN_MS,
                  "paused %lld ms", (long long)paused);
    c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"paused\":false,\"stopped\":false}");
    ASSERT_MS(obj_time_ms(c, "started_at"), s);
    ASSERT_MS(obj_time_ms(c, "due_at"), biz_add(due0, paused));
    ASSERT_MS(obj_time_ms(c, "due_at"), biz_add(r, 40 * HOUR_MS - frozen));
    int64_t due1 = obj_time_ms(c, "due_at");
    cJSON_Delete(c);
    int64_t now = clock_now(NULL);
    c = sla_clock(id, "handling");
    ck_assert_int_ge(obj_int(c, "elapsed_ms"), frozen);
    ck_assert_int_le(obj_int(c, "elapsed_ms"), frozen + biz_between(r, now + 1000));
    cJSON_Delete(c);

    /* The review restarts from zero: its earlier clock had stopped. */
    start_review(id);
    ev = transition_event(id, "start_review");
    assert_sla_list(ev, "[{\"target\":\"review\",\"event\":\"started\"}]");
    int64_t s2 = obj_time_ms(ev, "at");
    cJSON_Delete(ev);
    c = sla_clock(id, "review");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"stopped\":false,\"stopped_at\":null}");
    ASSERT_MS(obj_time_ms(c, "started_at"), s2);
    ASSERT_MS(obj_time_ms(c, "due_at"), biz_add(s2, 16 * HOUR_MS));
    cJSON_Delete(c);
    c = sla_clock(id, "handling");
    ASSERT_MS(obj_time_ms(c, "due_at"), due1);
    cJSON_Delete(c);
    ck_assert_int_eq(count_action(id, "sla"), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 4. Met when stopped in time: nothing fires later.
 */
START_TEST(met_when_stopped_in_time_and_nothing_fires_later)
{
    put_slas_ok(STD_SLAS);
    clock_set(&S, "2036-12-10T09:00:00+08:00");
    long long id = new_request("In time 及时", "12000");
    start_review(id);
    cJSON *c = sla_clock(id, "review");
    int64_t s = obj_time_ms(c, "started_at"), due = obj_time_ms(c, "due_at");
    cJSON_Delete(c);

    /* Wednesday noon: marketing approves (administrator override): review met. */
    clock_set(&S, "2036-12-10T12:00:00+08:00");
    move_ok(ADMIN, id, "marketing_approve", NULL, "finance_review");
    cJSON *ev = transition_event(id, "marketing_approve");
    assert_sla_list(ev, "[{\"target\":\"review\",\"event\":\"met\"}]");
    int64_t stop = obj_time_ms(ev, "at");
    cJSON_Delete(ev);
    c = sla_clock(id, "review");
    ASSERT_CLOCK(c, "{\"status\":\"met\",\"stopped\":true,\"breached_at\":null,"
                    "\"warned_at\":null,\"warn_at\":null}");
    ASSERT_MS(obj_time_ms(c, "stopped_at"), stop);
    ck_assert_int_eq(obj_int(c, "elapsed_ms"), biz_between(s, stop));
    cJSON_Delete(c);

    /* Past the old warning and due times: nothing fires. */
    clock_set_ms(&S, due + HOUR_MS);
    quiet();
    ASSERT_TRACE(id, 0, 0, 0);
    ck_assert_int_eq(count_action(id, "sla"), 0);
    ck_assert(state_is(id, "finance_review"));
    c = sla_clock(id, "review");
    ASSERT_CLOCK(c, "{\"status\":\"met\",\"stopped\":true,\"breached_at\":null}");
    ASSERT_MS(obj_time_ms(c, "stopped_at"), stop);
    cJSON_Delete(c);
    c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"status\":\"running\"}");
    cJSON_Delete(c);
}
END_TEST

/* Deleting a record stops its clocks: nothing fires for it later. */
START_TEST(deleting_a_record_stops_its_clocks)
{
    put_slas_ok(STD_SLAS);
    clock_set(&S, "2036-12-10T09:30:00+08:00");
    long long id = new_request("Deleted 删除", "12000");
    start_review(id);
    long long keep = new_request("Kept 保留", "12000");
    start_review(keep);
    ck_assert_int_eq(api_call(&S, ADMIN, "DELETE", NULL, NULL, "%s/%lld", MR, id), 204);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "%s/%lld/sla", MR, id), 404);
    clock_set(&S, "2036-12-12T12:00:00+08:00"); /* past the warning and the due time */
    WAIT_FOR(state_is(keep, "rejected"), "the breach of the kept record");
    quiet();
    ck_assert_int_eq(inbox_count(ANN, "sla_warning", id), 0);
    ck_assert_int_eq(inbox_count(DAN, "sla_breach", id), 0);
    ASSERT_TRACE(keep, 1, 1, 1);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 5. Restarts: nothing lost, nothing twice.
 */
START_TEST(restart_between_warning_and_breach)
{
    put_slas_ok(STD_SLAS);
    clock_set(&S, "2036-12-10T09:30:00+08:00"); /* warnings Thu 14:30, due Fri 09:30 */
    long long a = new_request("Restart A", "12000");
    long long b = new_request("Restart B", "30000");
    start_review(a);
    start_review(b);

    clock_set(&S, "2036-12-11T14:30:01+08:00"); /* past both warnings */
    WAIT_FOR(count_sla(a, "review", "warning") == 1 && count_sla(b, "review", "warning") == 1,
             "both warnings");
    ASSERT_TRACE(a, 1, 0, 0);
    ASSERT_TRACE(b, 1, 0, 0);

    /* kill -9: the test clock starts again from real time, far before the due times. */
    srv_kill9(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    quiet();
    ASSERT_TRACE(a, 1, 0, 0);
    clock_set(&S, "2036-12-11T15:00:00+08:00");
    quiet();
    ASSERT_TRACE(a, 1, 0, 0);
    ASSERT_TRACE(b, 1, 0, 0);
    cJSON *c = sla_clock(a, "review");
    ASSERT_CLOCK(c, "{\"status\":\"running\",\"warn_at\":null}");
    ck_assert(obj_time_ms(c, "warned_at") > 0);
    cJSON_Delete(c);

    clock_set(&S, "2036-12-12T09:30:01+08:00"); /* past both due times */
    WAIT_FOR(state_is(a, "rejected") && state_is(b, "rejected"), "both breaches to reject");
    ASSERT_TRACE(a, 1, 1, 1);
    ASSERT_TRACE(b, 1, 1, 1);

    /* A graceful restart, then later still: nothing fires again. */
    srv_stop(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    clock_set(&S, "2036-12-12T12:00:00+08:00");
    quiet();
    ASSERT_TRACE(a, 1, 1, 1);
    ASSERT_TRACE(b, 1, 1, 1);
    srv_kill9(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    clock_set(&S, "2036-12-19T12:00:00+08:00");
    quiet();
    ASSERT_TRACE(a, 1, 1, 1);
    ASSERT_TRACE(b, 1, 1, 1);
}
END_TEST

START_TEST(timers_due_while_down_fire_once_in_due_order)
{
    put_slas_ok(STD_SLAS);
    clock_set(&S, "2036-12-10T09:00:00+08:00");
    long long id = new_request("Down 停机", "12000");
    start_review(id);
    srv_stop(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    /* Both the warning and the breach are due when the clock jumps. */
    clock_set(&S, "2036-12-12T12:00:00+08:00");
    WAIT_FOR(state_is(id, "rejected"), "the breach after the restart");
    ASSERT_TRACE(id, 1, 1, 1);
    cJSON *items, *h = history(id, &items);
    long long seq_w = -1, seq_b = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, items)
    {
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(e, "sla");
        if (str_eq(obj_str(e, "action"), "sla") && str_eq(obj_str(sl, "phase"), "warning"))
            seq_w = obj_int(e, "seq");
        if (str_eq(obj_str(e, "action"), "sla") && str_eq(obj_str(sl, "phase"), "breach"))
            seq_b = obj_int(e, "seq");
    }
    cJSON_Delete(h);
    ck_assert_msg(seq_w > 0 && seq_b > seq_w, "warning at seq %lld, breach at seq %lld", seq_w,
                  seq_b);
    srv_kill9(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    clock_set(&S, "2036-12-15T09:00:00+08:00");
    quiet();
    ASSERT_TRACE(id, 1, 1, 1);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 6. The test clock route.
 */
START_TEST(test_clock_route_admin_only_and_404_without_the_flag)
{
    struct resp r;
    int64_t off0;
    int64_t now0 = clock_now(&off0);
    /* Non-administrators: 403; no credentials: 401. Nothing moves. */
    ck_assert_int_eq(api_call(&S, H(ANN), "GET", NULL, NULL, "%s", CLOCK), 403);
    ck_assert_int_eq(api_call(&S, H(RITA), "POST", "{\"advance_ms\":1000}", NULL, "%s", CLOCK),
                     403);
    ck_assert_int_eq(
        api_call(&S, H(DAN), "POST", "{\"now\":\"2040-01-01T00:00:00Z\"}", NULL, "%s", CLOCK), 403);
    http_anon(&S, "GET", CLOCK, NULL, 0, NULL, &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    int64_t off;
    clock_now(&off);
    ck_assert_int_eq(off, off0);
    /* advance_ms moves by exactly that. */
    ck_assert_int_eq(api_call(&S, ADMIN, "POST", "{\"advance_ms\":60000}", &r, "%s", CLOCK), 200);
    ck_assert_int_eq(json_int(r.body, "offset_ms", -1), off0 + 60000);
    resp_free(&r);
    ck_assert(clock_now(NULL) >= now0 + 60000);
    /* Refusals move nothing. */
    static const char *const bad[][2] = {
        {"{\"now\":\"2001-01-01T00:00:00Z\"}", "now"},
        {"{\"now\":\"not a date\"}", "now"},
        {"{\"advance_ms\":-1}", "advance_ms"},
        {"{\"advance_ms\":\"5\"}", "advance_ms"},
        {"{\"advance_ms\":400000000000}", "advance_ms"},
        {"{\"later\":5}", "later"},
        {"{}", "advance_ms"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long st = api_call(&S, ADMIN, "POST", bad[i][0], &r, "%s", CLOCK);
        ck_assert_msg(st == 422 || st == 400, "%s: %ld %s", bad[i][0], st, r.body);
        cJSON *j = resp_json(&r);
        const char *f = obj_str(j, "field");
        ck_assert_msg(str_eq(f, bad[i][1]) || problem_has_field(r.body, bad[i][1]),
                      "%s: want field %s: %s", bad[i][0], bad[i][1], r.body);
        cJSON_Delete(j);
        resp_free(&r);
        clock_now(&off);
        ck_assert_msg(off == off0 + 60000, "%s moved the clock", bad[i][0]);
    }
    ck_assert_int_eq(api_call(&S, ADMIN, "PUT", "{\"advance_ms\":1}", NULL, "%s", CLOCK), 405);
    /* "now" moves forward. */
    clock_set(&S, "2036-12-01T00:00:00Z");
    ck_assert_int_ge(clock_now(NULL), time_ms("2036-12-01T00:00:00Z"));

    /* Without --test-clock the route does not exist, for anybody. */
    srv_stop(&S);
    S.extra[0] = 0;
    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "%s", CLOCK), 404);
    ck_assert_int_eq(api_call(&S, ADMIN, "POST", "{\"advance_ms\":1000}", NULL, "%s", CLOCK), 404);
    ck_assert_int_eq(api_call(&S, H(ANN), "POST", "{\"advance_ms\":1000}", NULL, "%s", CLOCK), 404);
    /* Records use real time. */
    put_slas_ok(STD_SLAS);
    long long id = new_request("Real time", "100");
    cJSON *c = sla_clock(id, "handling");
    int64_t s = obj_time_ms(c, "started_at");
    cJSON_Delete(c);
    ck_assert_msg(s < time_ms("2036-01-01T00:00:00Z"), "started in the test clock's future");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * 7. Bad definitions and calendars.
 */
/* A policy with slots: calendar, pause, condition, start, target time, warn_percent, on_breach. */
static char *slas_with(const char *cal, const char *pause, const char *cond, const char *start,
                       const char *time, const char *warn, const char *breach)
{
    char *s = malloc(4096);
    snprintf(s, 4096,
             "[{\"name\":\"standard\",\"calendar\":%s,\"pause\":[%s],\"condition\":%s,"
             "\"targets\":[{\"name\":\"review\",\"start\":[%s],\"stop\":[\"finance_review\","
             "\"rejected\"],%s,\"warn_percent\":%s,\"on_warning\":[{\"notify\":{\"requester\":"
             "true}}],\"on_breach\":[%s]}]}]",
             cal ? cal : "\"cn_office\"", pause ? pause : "\"returned\"",
             cond ? cond : "\"budget <= 50000\"", start ? start : "\"marketing_review\"",
             time ? time : "\"hours\":16", warn ? warn : "75",
             breach ? breach
                    : "{\"notify\":{\"role\":\"director\"}},{\"set\":\"description\",\"value\":"
                      "\"escalated\"},{\"transition\":\"reject\"}");
    return s;
}

START_TEST(bad_sla_definitions_are_refused_and_change_nothing)
{
    char *good = slas_with(NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    put_slas_ok(good);
    free(good);
    clock_set(&S, "2036-12-10T09:00:00+08:00");
    long long id = new_request("Bad defs", "100");
    start_review(id);
    char *wf0 = api_get_text(&S, ADMIN, "%s", WF);
    char *sla0 = api_get_text(&S, ADMIN, "%s/%lld/sla", MR, id);
    struct {
        char *slas;
        const char *field, *alt;
    } bad[] = {
        {slas_with(NULL, NULL, NULL, "\"nowhere\"", NULL, NULL, NULL),
         "slas[0].targets[0].start[0]", NULL},
        {slas_with("\"mars_office\"", NULL, NULL, NULL, NULL, NULL, NULL), "slas[0].calendar",
         NULL},
        {slas_with(NULL, NULL, NULL, NULL, NULL, "150", NULL), "slas[0].targets[0].warn_percent",
         NULL},
        {slas_with(NULL, NULL, NULL, NULL, "\"labels\":{\"en\":\"No time\"}", NULL, NULL),
         "slas[0].targets[0]", "slas[0].targets[0].hours"},
        {slas_with(NULL, NULL, NULL, NULL, NULL, NULL,
                   "{\"notify\":{\"role\":\"director\"}},{\"transition\":\"explode\"}"),
         "slas[0].targets[0].on_breach[1].transition", "slas[0].targets[0].on_breach[1]"},
        {slas_with(NULL, "\"limbo\"", NULL, NULL, NULL, NULL, NULL), "slas[0].pause[0]", NULL},
        {slas_with(NULL, NULL, "\"nonexistent > 1\"", NULL, NULL, NULL, NULL), "slas[0].condition",
         NULL},
        {slas_with(NULL, NULL, NULL, NULL, NULL, NULL, "{\"set\":\"nonexistent\",\"value\":\"x\"}"),
         "slas[0].targets[0].on_breach[0].set", "slas[0].targets[0].on_breach[0]"},
        {slas_with(NULL, NULL, NULL, NULL, "\"hours\":-4", NULL, NULL), "slas[0].targets[0].hours",
         NULL},
        {slas_with(NULL, NULL, NULL, "\"finance_review\"", NULL, NULL, NULL),
         "slas[0].targets[0].stop", NULL},
    };
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < nbad; i++) {
        struct resp r;
        long st = put_slas(bad[i].slas, &r);
        ck_assert_msg(st == 422, "case %zu: want 422, got %ld %s\n%s", i, st, r.body, bad[i].slas);
        ck_assert_msg(problem_has_field(r.body, bad[i].field) ||
                          (bad[i].alt && problem_has_field(r.body, bad[i].alt)),
                      "case %zu: want an error at %s: %s", i, bad[i].field, r.body);
        resp_free(&r);
        char *wf = api_get_text(&S, ADMIN, "%s", WF);
        ck_assert_msg(strcmp(wf, wf0) == 0, "case %zu changed the workflow", i);
        free(wf);
        free(bad[i].slas);
    }
    /* A transition action is for SLA actions only. */
    cJSON *def = api_get_json(&S, ADMIN, "%s", WF);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(def, "transitions"), 0);
    cJSON_AddItemToObject(t0, "actions", cJSON_Parse("[{\"transition\":\"reject\"}]"));
    struct resp r;
    long st = api_put_json(&S, ADMIN, def, &r, "%s", WF);
    cJSON_Delete(def);
    ck_assert_msg(st == 422 && problem_has_field(r.body, "transitions[0].actions[0]"), "%ld %s", st,
                  r.body);
    resp_free(&r);
    char *wf = api_get_text(&S, ADMIN, "%s", WF);
    ck_assert_str_eq(wf, wf0);
    free(wf);
    /* The running clock is untouched (elapsed aside, which moves with real time). */
    char *sla1 = api_get_text(&S, ADMIN, "%s/%lld/sla", MR, id);
    cJSON *a = cJSON_Parse(sla0), *b = cJSON_Parse(sla1);
    const cJSON *ia, *ib;
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "items")),
                     cJSON_GetArraySize(cJSON_GetObjectItem(b, "items")));
    ib = cJSON_GetObjectItem(b, "items")->child;
    cJSON_ArrayForEach(ia, cJSON_GetObjectItem(a, "items"))
    {
        static const char *const keys[] = {"target",     "policy", "status",
                                           "started_at", "due_at", "warn_at"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            ck_assert_msg(cJSON_Compare(cJSON_GetObjectItem(ia, keys[k]),
                                        cJSON_GetObjectItem(ib, keys[k]), true),
                          "%s changed: %s -> %s", keys[k], sla0, sla1);
        ib = ib->next;
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(sla0);
    free(sla1);
    free(wf0);
}
END_TEST

/* Replaces the first from in buf (capacity cap) by to. */
static void replace_once(char *buf, size_t cap, const char *from, const char *to)
{
    char *p = strstr(buf, from);
    ck_assert_msg(p != NULL, "no %s in %s", from, buf);
    size_t fl = strlen(from), tl = strlen(to), rest = strlen(p + fl);
    ck_assert((size_t)(p - buf) + tl + rest < cap);
    memmove(p + tl, p + fl, rest + 1);
    memcpy(p, to, tl);
}

START_TEST(calendars_in_use_cannot_be_deleted)
{
    struct resp r;
    char *cal0 = api_get_text(&S, ADMIN, "/api/v1/meta/calendars/cn_office");
    /* Refused calendars change nothing. */
    static const char *const bad[][2] = {
        {"{\"name\":\"cn_office\",\"timezone\":\"Mars/Olympus_Mons\",\"week\":\"24x7\"}",
         "timezone"},
        {"{\"name\":\"other\",\"timezone\":\"UTC\",\"week\":\"24x7\"}", "name"},
        {"{\"name\":\"cn_office\",\"timezone\":\"UTC\",\"week\":{\"mon\":[[\"09:00\",\"08:00\"]]}}",
         "week.mon[0]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long st = api_call(&S, ADMIN, "PUT", bad[i][0], &r, "/api/v1/meta/calendars/cn_office");
        ck_assert_msg(st == 422 && problem_has_field(r.body, bad[i][1]), "case %zu: %ld %s", i, st,
                      r.body);
        resp_free(&r);
    }
    ck_assert_int_eq(
        api_call(&S, H(ANN), "PUT", CAL_JSON, NULL, "/api/v1/meta/calendars/cn_office"), 403);
    ck_assert_int_eq(api_call(&S, H(ANN), "DELETE", NULL, NULL, "/api/v1/meta/calendars/cn_office"),
                     403);
    char *cal = api_get_text(&S, ADMIN, "/api/v1/meta/calendars/cn_office");
    ck_assert_str_eq(cal, cal0);
    free(cal);
    free(cal0);
    /* The same again: 200. */
    long st = api_call(&S, ADMIN, "PUT", CAL_JSON, &r, "/api/v1/meta/calendars/cn_office");
    ck_assert_msg(st == 200, "PUT again: %ld %s", st, r.body);
    resp_free(&r);

    /* A calendar of this test's own, in use by the workflow: 409, and nothing changes. */
    char hk[2048];
    snprintf(hk, sizeof(hk), "%s", CAL_JSON);
    replace_once(hk, sizeof(hk), "cn_office", "hk_office");
    replace_once(hk, sizeof(hk), "Asia/Shanghai", "Asia/Hong_Kong");
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "/api/v1/meta/calendars/hk_office"),
                     404);
    st = api_call(&S, ADMIN, "PUT", hk, &r, "/api/v1/meta/calendars/hk_office");
    ck_assert_msg(st == 201, "PUT hk_office: %ld %s", st, r.body);
    resp_free(&r);
    char *hk0 = api_get_text(&S, ADMIN, "/api/v1/meta/calendars/hk_office");
    const char *hk_slas =
        "[{\"name\":\"hk\",\"calendar\":\"hk_office\",\"targets\":[{\"name\":\"handling\","
        "\"start\":[\"submitted\"],\"stop\":[\"approved\",\"rejected\"],\"hours\":40}]}]";
    put_slas_ok(hk_slas);
    char *wf0 = api_get_text(&S, ADMIN, "%s", WF);
    st = api_call(&S, ADMIN, "DELETE", NULL, &r, "/api/v1/meta/calendars/hk_office");
    ck_assert_msg(st == 409 && strstr(r.body, "marketing_request"), "DELETE in use: %ld %s", st,
                  r.body);
    resp_free(&r);
    cal = api_get_text(&S, ADMIN, "/api/v1/meta/calendars/hk_office");
    ck_assert_str_eq(cal, hk0);
    free(cal);
    char *wf = api_get_text(&S, ADMIN, "%s", WF);
    ck_assert_str_eq(wf, wf0);
    free(wf);
    free(wf0);
    free(hk0);
    /* Clocks run on it. */
    clock_set(&S, "2036-12-10T09:00:00+08:00");
    long long id = new_request("Calendar", "100");
    cJSON *c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"policy\":\"hk\",\"calendar\":\"hk_office\",\"status\":\"running\"}");
    ASSERT_MS(obj_time_ms(c, "due_at"),
              biz_add(obj_time_ms(c, "started_at"), 40 * HOUR_MS)); /* also UTC+8 */
    cJSON_Delete(c);

    /* No longer in use (a 24x7 policy): deleted; then it is gone and cannot be named. */
    put_slas_ok("[{\"name\":\"plain\",\"targets\":[{\"name\":\"handling\",\"start\":"
                "[\"submitted\"],\"stop\":[\"approved\",\"rejected\"],\"hours\":40}]}]");
    st = api_call(&S, ADMIN, "DELETE", NULL, &r, "/api/v1/meta/calendars/hk_office");
    ck_assert_msg(st == 204, "DELETE unused: %ld %s", st, r.body);
    resp_free(&r);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "/api/v1/meta/calendars/hk_office"),
                     404);
    ck_assert_int_eq(api_call(&S, ADMIN, "DELETE", NULL, NULL, "/api/v1/meta/calendars/hk_office"),
                     404);
    st = put_slas(hk_slas, &r);
    ck_assert_msg(st == 422 && problem_has_field(r.body, "slas[0].calendar"), "%ld %s", st, r.body);
    resp_free(&r);
    /* The old clock still answers. */
    c = sla_clock(id, "handling");
    ASSERT_CLOCK(c, "{\"status\":\"running\"}");
    cJSON_Delete(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Regressions: gaps this suite found, fixed in the runtime.
 */
/* A clock started by creation (a target whose start state is the initial state) is recorded in no
 * history event: every transition's event lists the clocks it started, paused, resumed and stopped
 * ("sla":[...]), but the create event does not, so the history never says that clock started. */
START_TEST(creation_that_starts_a_clock_says_so_in_history)
{
    put_slas_ok("[{\"name\":\"intake\",\"calendar\":\"cn_office\",\"targets\":[{\"name\":"
                "\"triage\",\"start\":[\"draft\"],\"stop\":[\"submitted\"],\"minutes\":90}]}]");
    clock_set(&S, "2036-12-10T09:00:00+08:00");
    struct resp r;
    long st =
        api_call(&S, H(ANN), "POST",
                 "{\"title\":\"Triage\",\"partner\":\"Acme\",\"budget\":\"100\"}", &r, "%s", MR);
    ck_assert_int_eq(st, 201);
    long long id = json_int(r.body, "id", 0);
    resp_free(&r);
    cJSON *c = sla_clock(id, "triage");
    ASSERT_CLOCK(c, "{\"status\":\"running\"}");
    cJSON_Delete(c);
    /* The clocks a creation starts are an event of their own right after the create (like an
     * assignment on create): action "sla", version 2; the create answer is that version. */
    cJSON *items, *h = history(id, &items);
    char *txt = cJSON_PrintUnformatted(items);
    ck_assert_msg(json_contains(txt, "[{\"seq\":1,\"action\":\"create\"},{\"seq\":2,\"action\":"
                                     "\"sla\",\"sla\":[{\"target\":\"triage\",\"event\":"
                                     "\"started\"}]}]"),
                  "creation started clock 'triage' (GET .../sla shows it running) but the history "
                  "does not say so: %s",
                  txt);
    free(txt);
    cJSON_Delete(h);
}
END_TEST

/* An SLA action refused at run time (here a copy of an empty field into a required one) drops the
 * phase's history event and its later actions, but the notification sent before it stays: the
 * director gets an "Overdue" message for a breach that no history event records, and the clock
 * says breached. The phase's effects should be all or nothing (and the breach itself recorded). */
START_TEST(refused_sla_action_leaves_no_partial_effects)
{
    put_slas_ok("[{\"name\":\"standard\",\"calendar\":\"cn_office\",\"targets\":[{\"name\":"
                "\"review\",\"start\":[\"marketing_review\"],\"stop\":[\"finance_review\","
                "\"rejected\"],\"hours\":1,\"on_breach\":[{\"notify\":{\"role\":\"director\"}},"
                "{\"set\":\"partner\",\"copy\":\"assignee\"},{\"transition\":\"reject\"}]}]}]");
    clock_set(&S, "2036-12-10T09:30:00+08:00");
    long long id = new_request("Refused action", "100");
    cJSON *rec = record(id);
    ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rec, "assignee")),
                  "this test needs an empty assignee");
    cJSON_Delete(rec);
    start_review(id);
    clock_set(&S, "2036-12-10T12:00:00+08:00");
    cJSON *c = NULL;
    WAIT_FOR(
        (cJSON_Delete(c), c = sla_clock(id, "review"), str_eq(obj_str(c, "status"), "breached")),
        "the breach of record %lld", id);
    cJSON_Delete(c);
    quiet();
    int events = count_sla(id, "review", "breach"), notes = inbox_count(DAN, "sla_breach", id);
    ck_assert_msg(events == 1 && notes <= events,
                  "the breach's set action was refused at run time: the clock says breached, the "
                  "history has %d breach event(s), dan's inbox %d sla_breach message(s) (state %s)",
                  events, notes, state_is(id, "rejected") ? "rejected" : "not rejected");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_sla");
    TCase *tc = tcase_create("sla");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, business_hours_across_weekend_and_holiday);
    tcase_add_test(tc, warning_then_breach_fire_once_with_their_actions);
    tcase_add_test(tc, pause_and_resume_move_due_by_the_paused_business_time);
    tcase_add_test(tc, met_when_stopped_in_time_and_nothing_fires_later);
    tcase_add_test(tc, deleting_a_record_stops_its_clocks);
    tcase_add_test(tc, restart_between_warning_and_breach);
    tcase_add_test(tc, timers_due_while_down_fire_once_in_due_order);
    tcase_add_test(tc, test_clock_route_admin_only_and_404_without_the_flag);
    tcase_add_test(tc, bad_sla_definitions_are_refused_and_change_nothing);
    tcase_add_test(tc, calendars_in_use_cannot_be_deleted);
    suite_add_tcase(s, tc);
    TCase *bugs = tcase_create("regressions");
    tcase_add_unchecked_fixture(bugs, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(bugs, setup, teardown);
    tcase_set_timeout(bugs, 120);
    tcase_add_test(bugs, creation_that_starts_a_clock_says_so_in_history);
    tcase_add_test(bugs, refused_sla_action_leaves_no_partial_effects);
    suite_add_tcase(s, bugs);
    return run_suite(s);
}
