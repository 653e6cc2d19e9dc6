/* reports.c — /api/v1/reports, /api/v1/dashboards and their meta routes. */
#include "http_int.h"

#include "codec/codec.h"
#include "report/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qparams {
    const char *names[32];
    const char *values[32];
    size_t n;
    bool csv;
    bool too_many;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct qparams *q = cls;
    if (strcmp(key, "format") == 0) {
        q->csv = value && strcmp(value, "csv") == 0;
        return MHD_YES;
    }
    if (q->n >= 32) {
        q->too_many = true;
        return MHD_NO;
    }
    q->names[q->n] = key;
    q->values[q->n] = value ? value : "";
    q->n++;
    return MHD_YES;
}

/* The run's settings from the request: parameters from the query string, CSV from
 * `Accept: text/csv` or `?format=csv`. */
static void run_of(struct req *r, struct qparams *q, struct trl_report_run *run)
{
    memset(q, 0, sizeof(*q));
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect, q);
    const char *acc = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    if (acc && strstr(acc, "text/csv")) q->csv = true;
    *run = (struct trl_report_run){.param_names = q->names,
                                   .param_values = q->values,
                                   .nparams = q->n,
                                   .ws = r->wfs,
                                   .max_scan = r->srv->o.report_max_scan,
                                   .csv = q->csv,
                                   .lang = r->lang};
}

/* Runs a report for the caller (their row scopes and field modes on its type) in one read txn:
 * the stored report name, or rep when name is NULL. Answers JSON or CSV. */
static void run_report(struct req *r, const char *name, const struct trl_report *rep)
{
    struct qparams q;
    struct trl_report_run run;
    run_of(r, &q, &run);
    if (q.too_many)
        return trl_http_fail(r, TRL_EQUERY, "", "at most 32 parameters", "参数最多 32 个");
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    struct trl_report *loaded = NULL;
    int rc = 0;
    if (name) {
        rc = trl_report_load(t, r->cat, r->wfs, name, &loaded, &r->d);
        /* A stored definition that no longer fits the types: say what broke. */
        if (rc == TRL_EVALIDATION) rc = r->d.code = TRL_ECONFLICT;
        rep = loaded;
    }
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    if (!rc) rc = trl_report_exec(t, &cx, rep, &run, &r->out);
    trl_txn_end(t);
    trl_report_free(loaded);
    if (rc) {
        trl_buf_clear(&r->out);
        return trl_http_fail_d(r, rc);
    }
    r->status = 200;
    r->ctype = q.csv ? "text/csv; charset=utf-8" : "application/json";
}

/* The stored reports or dashboards, with their labels. */
static void list_defs(struct req *r, bool report)
{
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    int rc = report ? trl_report_list(t, &r->out) : trl_dashboard_list(t, &r->out);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

/* GET /api/v1/reports[/{name}], POST /api/v1/reports/run */
void trl_http_reports_route(struct req *r, const char *rest)
{
    if (!*rest) {
        if (trl_http_method(r, "GET")) list_defs(r, true);
        return;
    }
    if (strcmp(rest, "run") == 0) {
        if (strcmp(r->method, "POST") != 0) {
            snprintf(r->allow, sizeof(r->allow), "POST");
            return trl_http_fail(r, TRL_EMETHOD, "", "use POST with a report definition",
                                 "请用 POST 提交报表定义");
        }
        if (!trl_http_admin_only(r)) return;
        if (!trl_http_body_json(r, 32)) return;
        struct trl_report *rep = NULL;
        if (trl_report_parse(r->cat, r->wfs, r->body.data, r->body.len, &rep, &r->d))
            return trl_http_problem(r);
        run_report(r, NULL, rep);
        trl_report_free(rep);
        return;
    }
    if (!trl_http_method(r, "GET")) return;
    run_report(r, rest, NULL);
}

/* GET /api/v1/dashboards/{name} */
void trl_http_dashboards_route(struct req *r, const char *name)
{
    if (!trl_http_method(r, "GET")) return;
    /* Each widget's report runs with its own parameters, as JSON, with the caller's rights on
     * its own type. */
    struct trl_report_run run = {.ws = r->wfs, .max_scan = r->srv->o.report_max_scan};
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    int rc = trl_dashboard_run(t, &cx, name, &run, &r->out);
    trl_txn_end(t);
    if (rc) {
        trl_buf_clear(&r->out);
        return trl_http_fail_d(r, rc);
    }
    trl_http_ok(r, 200);
}

/* Meta: reports and dashboards (administrators). */
static int exec_put(struct req *r, struct trl_txn *t)
{
    bool changed = false;
    const char *name = r->type_name + 2; /* "r:" or "d:" */
    bool report = r->type_name[0] == 'r';
    char *old = NULL;
    bool existed = trl_meta_get(t, report ? "report" : "dashboard", name, &old) == 0;
    free(old);
    int rc = report ? trl_report_put(t, r->cat, r->wfs, name, r->body.data, r->body.len, NULL,
                                     &changed, &r->d)
                    : trl_dashboard_put(t, name, r->body.data, r->body.len, NULL, &changed, &r->d);
    if (rc) return rc;
    char *def = NULL;
    if ((rc = trl_meta_get(t, report ? "report" : "dashboard", name, &def))) return rc;
    trl_buf_adds(&r->out, def);
    free(def);
    trl_http_ok(r, existed ? 200 : 201);
    if (!existed)
        snprintf(r->location, sizeof(r->location), "/api/v1/meta/%s/%s",
                 report ? "reports" : "dashboards", name);
    return 0;
}

static int exec_delete(struct req *r, struct trl_txn *t)
{
    const char *name = r->type_name + 2;
    int rc;
    if (r->type_name[0] == 'r') {
        rc = trl_report_delete(t, name, &r->d);
    } else {
        rc = trl_meta_del(t, "dashboard", name);
        if (rc == TRL_ENOTFOUND) {
            trl_diag_set(&r->d, rc, "no dashboard '%s'", name);
        } else if (!rc) {
            rc = trl_meta_del(t, "dashboardapp", name);
            if (rc == TRL_ENOTFOUND) rc = 0;
        }
    }
    if (!rc) r->status = 204;
    return rc;
}

void trl_http_meta_reports(struct req *r, const char *name, bool report)
{
    const char *kind = report ? "report" : "dashboard";
    if (!*name) {
        if (trl_http_method(r, "GET")) list_defs(r, report);
        return;
    }
    if (!trl_def_ident(name))
        return trl_http_fail(r, TRL_ENOTFOUND, "name", "no such definition", "不存在该定义");
    if (strcmp(r->method, "GET") == 0) {
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        char *def = NULL;
        int rc = trl_meta_get(t, kind, name, &def);
        trl_txn_end(t);
        if (rc == TRL_ENOTFOUND)
            return trl_http_fail(r, rc, "", "no such definition", "不存在该定义");
        if (rc) return trl_http_fail_d(r, rc);
        trl_buf_adds(&r->out, def);
        free(def);
        return trl_http_ok(r, 200);
    }
    size_t nl = strlen(name);
    if (!(r->type_name = malloc(nl + 3)))
        return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    snprintf(r->type_name, nl + 3, "%c:%s", report ? 'r' : 'd', name);
    r->ty = NULL;
    if (strcmp(r->method, "PUT") == 0) {
        if (!trl_http_body_json(r, 32)) return;
        return trl_http_queue_write(r, exec_put, true);
    }
    if (strcmp(r->method, "DELETE") == 0) return trl_http_queue_write(r, exec_delete, true);
    snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
    trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                  "此处只支持 GET、PUT 或 DELETE");
}
