/* engine.c — SLA status of a record, business calendars in the meta API, and the test clock. */
#include "http_int.h"

#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET /api/v1/records/{type}/{id}/sla */
void trl_http_record_sla(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    int rc = trl_wf_sla_json(t, &cx, r->wfs, r->ty, r->id, &r->out);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

/* ---------------------------------------------------------------------------------------------
 * /api/v1/meta/calendars[/{name}]
 */
static int exec_put_calendar(struct req *r, struct trl_txn *t)
{
    bool changed;
    const char *name = r->type_name;
    char *old = NULL;
    bool existed = trl_meta_get(t, "calendar", name, &old) == 0;
    free(old);
    int rc = trl_wf_calendar_put(t, name, r->body.data ? r->body.data : "", r->body.len, NULL,
                                 &changed, &r->d);
    if (rc) return rc;
    char *def = NULL;
    if ((rc = trl_meta_get(t, "calendar", name, &def))) return rc;
    int e = trl_buf_adds(&r->out, def);
    free(def);
    if (e) return TRL_ENOMEM;
    trl_http_ok(r, existed ? 200 : 201);
    if (!existed) snprintf(r->location, sizeof(r->location), "/api/v1/meta/calendars/%s", name);
    return 0;
}

static int exec_delete_calendar(struct req *r, struct trl_txn *t)
{
    int rc = trl_wf_calendar_delete(t, r->type_name, &r->d);
    if (!rc) r->status = 204;
    return rc;
}

struct cal_list {
    struct trl_buf *out;
    size_t n;
};

static int list_cal(void *ud, const char *name, const char *json, size_t n)
{
    struct cal_list *l = ud;
    (void)name;
    while (n && (json[n - 1] == '\n' || json[n - 1] == ' '))
        n--;
    return (l->n++ && trl_buf_addc(l->out, ',')) || trl_buf_add(l->out, json, n) ? TRL_ENOMEM : 0;
}

void trl_http_meta_calendars(struct req *r, const char *name)
{
    const char *m = r->method;
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    if (!*name || strcmp(m, "GET") == 0) {
        if (!trl_http_method(r, "GET")) return;
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        int rc;
        if (!*name) {
            struct cal_list l = {.out = &r->out};
            rc = trl_buf_adds(&r->out, "{\"items\":[") ? TRL_ENOMEM : 0;
            if (!rc) rc = trl_meta_each(t, "calendar", list_cal, &l);
            if (!rc && trl_buf_adds(&r->out, "]}")) rc = TRL_ENOMEM;
        } else {
            char *def = NULL;
            rc = trl_meta_get(t, "calendar", name, &def);
            if (!rc && trl_buf_adds(&r->out, def)) rc = TRL_ENOMEM;
            free(def);
        }
        trl_txn_end(t);
        if (rc == TRL_ENOTFOUND)
            return trl_http_fail(r, rc, "name", "no such calendar", "不存在该日历");
        if (rc) return trl_http_fail_d(r, rc);
        return trl_http_ok(r, 200);
    }
    r->type_name = strdup(name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    r->ty = NULL;
    if (strcmp(m, "PUT") == 0) return trl_http_queue_write(r, exec_put_calendar, true);
    if (strcmp(m, "DELETE") == 0) return trl_http_queue_write(r, exec_delete_calendar, true);
    snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
    trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                  "此处只支持 GET、PUT 或 DELETE");
}

/* ---------------------------------------------------------------------------------------------
 * GET/POST /api/v1/test/clock {"advance_ms": N} | {"now": "RFC 3339"}: only when the server runs
 * with --test-clock, only for administrators. Time never moves backwards.
 */
void trl_http_test_clock(struct req *r)
{
    struct trl_server *s = r->srv;
    if (s->clock != &s->testclock)
        return trl_http_fail(r, TRL_ENOTFOUND, "", "no such resource", "不存在该资源");
    if (!trl_http_admin_only(r)) return;
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    if (strcmp(r->method, "POST") == 0) {
        if (trl_http_parse_object(r)) return;
        int64_t add = -1;
        for (size_t i = 0; i < r->nin; i++) {
            const struct trl_input *in = &r->in[i];
            int64_t v;
            if (strcmp(in->name, "advance_ms") == 0 && in->kind == TRL_IN_NUMBER &&
                trl_parse_i64(in->s, in->n, &v) == 0 && v >= 0 && v <= 366LL * 86400000 * 10) {
                add = v;
            } else if (strcmp(in->name, "now") == 0 && in->kind == TRL_IN_STRING &&
                       trl_datetime_parse(in->s, in->n, &v) == 0) {
                add = v - trl_clock_now(s->clock);
                if (add < 0)
                    return trl_http_fail(r, TRL_EVALIDATION, "now",
                                         "the test clock never moves backwards",
                                         "测试时钟不能倒退");
            } else {
                return trl_http_fail(r, TRL_EVALIDATION, in->name,
                                     "give advance_ms (0 to ten years) or now (RFC 3339)",
                                     "请提供 advance_ms(0 到十年)或 now(RFC 3339)");
            }
        }
        if (add < 0)
            return trl_http_fail(r, TRL_EVALIDATION, "advance_ms", "give advance_ms or now",
                                 "请提供 advance_ms 或 now");
        atomic_fetch_add(&s->test_offset, add);
        trl_http_wake_timers(s);
    } else if (strcmp(r->method, "GET") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET or POST here", "此处只支持 GET 或 POST");
    }
    char ts[40];
    trl_datetime_format(trl_clock_now(s->clock), ts);
    trl_buf_printf(&r->out, "{\"now\":\"%s\",\"offset_ms\":%lld}", ts,
                   (long long)atomic_load(&s->test_offset));
    trl_http_ok(r, 200);
}
