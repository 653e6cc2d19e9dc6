/*
 * report — reports over records: a definition (JSON, runtime/report/README.md) names a source
 * type, a filter in the one expression language with parameters the caller fills, up to two
 * group-bys (fields, state, or a time bucket of a date/datetime field in a named zone), measures
 * (count, count_distinct, sum, avg, min, max of int/decimal fields; count, avg, median, p90 of
 * durations taken from the history, in calendar or business time; SLA met, breached and
 * compliance), a sort and a top N. Running one answers JSON with column metadata (name, type,
 * labels in English and Chinese, value labels) and rows, or CSV with a UTF-8 BOM.
 *
 * Only records the caller may read are counted (row scopes through trl_rec_each); a field the
 * caller may not read cannot be grouped, filtered or measured (TRL_EFORBIDDEN naming it). Sums
 * of decimals are exact (128-bit scaled integers). A count grouped by the state or an enum field,
 * without a filter, for a caller who reads every record, comes from the counters kept in the
 * same write transaction as the records: O(number of values). Everything else scans records in
 * their binary form (no JSON) and stops at the configured scan limit with TRL_EINVAL.
 *
 * Lifetimes: a struct trl_report is owned by the caller (trl_report_free) and immutable; it
 * borrows nothing. Runs use the catalog and workflow set given to them.
 */
#ifndef TRL_REPORT_H
#define TRL_REPORT_H

#include "record/record.h"
#include "workflow/workflow.h"

struct trl_report;

/* Parses and checks a definition against the catalog (and the workflow set for states,
 * calendars and SLA policies): unknown fields, a sum of a text field, a bucket on a non-date,
 * bad parameters ... each reported as a field error (code "schema") naming its path. Returns
 * owned *out, or TRL_EJSON / TRL_EVALIDATION / TRL_ENOMEM. */
int trl_report_parse(const struct trl_catalog *cat, const struct trl_wf_set *ws, const char *json,
                     size_t n, struct trl_report **out, struct trl_diag *d);
void trl_report_free(struct trl_report *r);
const char *trl_report_name(const struct trl_report *r);
/* The name of the report's source type. */
const char *trl_report_type(const struct trl_report *r);

/* Definitions stored in meta (kind "report", keyed by name; "reportapp" names the owning app).
 * put checks the definition first (TRL_EVALIDATION as trl_report_parse; the name must match);
 * *changed tells whether anything was written. get appends the stored JSON to out. */
int trl_report_put(struct trl_txn *t, const struct trl_catalog *cat, const struct trl_wf_set *ws,
                   const char *name, const char *json, size_t n, const char *app, bool *changed,
                   struct trl_diag *d);
int trl_report_get(struct trl_txn *t, const char *name, struct trl_buf *out);
int trl_report_delete(struct trl_txn *t, const char *name, struct trl_diag *d);
/* Appends {"items":[{"name","labels","type","app"}...]} of the stored reports. */
int trl_report_list(struct trl_txn *t, struct trl_buf *out);

/* A run's inputs. */
struct trl_report_run {
    const char *const *param_names; /* parameters the caller gave (name, value pairs) */
    const char *const *param_values;
    size_t nparams;
    const struct trl_wf_set *ws; /* calendars, states, SLA policies (may be NULL) */
    int64_t max_scan;            /* most records examined (0: 5,000,000) */
    bool csv;                    /* CSV (UTF-8 BOM, CRLF) instead of JSON */
    const char *lang;            /* labels of CSV headers and values: "en" or "zh-CN" */
};

/* Runs r as cx->who, with their rights on r's type (cx->acc is not used; no who or an
 * administrator sees everything): appends the answer to out. Errors: TRL_EQUERY (a bad or
 * missing parameter: d names it), TRL_EFORBIDDEN (a field the caller may not read), TRL_EINVAL
 * (over the scan limit), TRL_ENOTFOUND (the type is gone). */
int trl_report_exec(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_report *r,
                    const struct trl_report_run *run, struct trl_buf *out);
/* Reads stored report name and parses it against cat and ws for running (*out owned,
 * trl_report_free). TRL_ENOTFOUND (no such report, d says so), TRL_EVALIDATION (the definition
 * no longer fits the types: d says what broke). */
int trl_report_load(struct trl_txn *t, const struct trl_catalog *cat, const struct trl_wf_set *ws,
                    const char *name, struct trl_report **out, struct trl_diag *d);

/* Dashboards (meta kind "dashboard"): {"name", "labels", "widgets": [{"title": {en, zh-CN},
 * "kind": number|bar|line|pie|table, "report": name, "params": {...}}]}. put checks that every
 * widget names a stored report. run appends {"name","labels","widgets":[{..., "data": <the
 * report's answer or a problem>}]} (each widget runs as cx->who with their rights on the
 * widget's type, whatever cx->acc says; one that fails carries its problem and the others still
 * answer). */
int trl_dashboard_put(struct trl_txn *t, const char *name, const char *json, size_t n,
                      const char *app, bool *changed, struct trl_diag *d);
int trl_dashboard_run(struct trl_txn *t, const struct trl_rec_ctx *cx, const char *name,
                      const struct trl_report_run *run, struct trl_buf *out);
/* Appends {"items":[{"name","labels","widgets": n}...]} of the stored dashboards. */
int trl_dashboard_list(struct trl_txn *t, struct trl_buf *out);

#endif
