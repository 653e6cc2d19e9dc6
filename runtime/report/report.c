/* report.c — report definitions (parse, check, store) and runs (scan or counters, group,
 * measure, sort, JSON or CSV). */
#include "report/report.h"

#include "calendar/calendar.h"
#include "sla/sla.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS   2
#define MAX_MEASURE  16
#define MAX_PARAMS   16
#define MAX_ROWS     100000 /* groups one run may hold */
#define DEFAULT_SCAN 5000000

enum bucket { B_NONE, B_DAY, B_WEEK, B_MONTH, B_QUARTER, B_YEAR };
static const char *const bucket_names[] = {"", "day", "week", "month", "quarter", "year"};

struct group {
    char *name;                /* column name (owned) */
    int col;                   /* field id or TRL_COL_* */
    enum trl_ftype type;       /* its type */
    const struct trl_field *f; /* the field (NULL for a system column); borrowed from the catalog
                                  the report was parsed with: re-resolved at run time */
    enum bucket bucket;        /* time bucket of a date/datetime column */
    char *zone;                /* zone of the bucket (owned, "UTC" default) */
    struct trl_tz *tz;         /* that zone, loaded once at parse for a bucket (owned) */
};

enum m_op {
    M_COUNT,
    M_COUNT_DISTINCT,
    M_SUM,
    M_AVG,
    M_MIN,
    M_MAX,
    M_MEDIAN,
    M_P90,
    M_SLA_MET,
    M_SLA_BREACHED,
    M_SLA_COMPLIANCE,
    M_SLA_TO_BREACH,
};
static const char *const op_names[] = {"count",
                                       "count_distinct",
                                       "sum",
                                       "avg",
                                       "min",
                                       "max",
                                       "median",
                                       "p90",
                                       "sla_met",
                                       "sla_breached",
                                       "sla_compliance",
                                       "sla_median_to_breach"};
_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == M_SLA_TO_BREACH + 1,
               "one name per measure op");

enum dur_kind { D_NONE, D_BETWEEN, D_IN };

struct measure {
    char *name;               /* column name (owned) */
    struct trl_labels labels; /* display labels */
    enum m_op op;
    char *field;           /* measured field (owned) or NULL */
    enum dur_kind dur;     /* a duration measure */
    char *from, *to, *in;  /* states (owned) */
    char *calendar;        /* business calendar (owned) or NULL: elapsed time */
    int64_t unit_ms;       /* duration unit */
    char *unit;            /* "hours", ... (owned) */
    char *policy, *target; /* SLA measures: which clocks (owned, NULL: any) */
};

struct param {
    char *name; /* owned */
    char *type; /* "text", "date", ... (owned) */
    char *dflt; /* default value text (owned) or NULL */
    bool required;
    struct trl_labels labels;
};

struct sortkey {
    char *by; /* column name (owned) */
    bool desc;
};

struct trl_report {
    char *name;
    struct trl_labels labels;
    char *type;
    char *filter; /* owned or NULL */
    struct param *params;
    size_t nparams;
    struct group groups[MAX_GROUPS];
    size_t ngroups;
    struct measure *m;
    size_t nm;
    struct sortkey *sort;
    size_t nsort;
    int64_t limit; /* 0: all */
};

const char *trl_report_name(const struct trl_report *r)
{
    return r->name;
}

const char *trl_report_type(const struct trl_report *r)
{
    return r->type;
}

void trl_report_free(struct trl_report *r)
{
    if (!r) return;
    free(r->name);
    trl_labels_free(&r->labels);
    free(r->type);
    free(r->filter);
    for (size_t i = 0; i < r->nparams; i++) {
        free(r->params[i].name);
        free(r->params[i].type);
        free(r->params[i].dflt);
        trl_labels_free(&r->params[i].labels);
    }
    free(r->params);
    for (size_t i = 0; i < r->ngroups; i++) {
        free(r->groups[i].name);
        free(r->groups[i].zone);
        trl_tz_free(r->groups[i].tz);
    }
    for (size_t i = 0; i < r->nm; i++) {
        struct measure *m = &r->m[i];
        free(m->name);
        trl_labels_free(&m->labels);
        free(m->field);
        free(m->from);
        free(m->to);
        free(m->in);
        free(m->calendar);
        free(m->unit);
        free(m->policy);
        free(m->target);
    }
    free(r->m);
    for (size_t i = 0; i < r->nsort; i++)
        free(r->sort[i].by);
    free(r->sort);
    free(r);
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 */
static char *dup_str(struct trl_defcheck *c, const cJSON *j)
{
    if (!cJSON_IsString(j)) return NULL;
    char *s = strdup(j->valuestring);
    if (!s) c->rc = TRL_ENOMEM;
    return s;
}

static bool is_numeric(enum trl_ftype t)
{
    return t == TRL_FT_INT || t == TRL_FT_DECIMAL;
}

static const char *const sys_cols[] = {"state",      "owner",      "org",        "created_at",
                                       "updated_at", "created_by", "updated_by", NULL};

/* Resolves a column name of ty for grouping or measuring. */
static int column(const struct trl_type *ty, const char *name, int *col, enum trl_ftype *type,
                  const struct trl_field **f)
{
    struct trl_expr_field ef;
    *f = NULL;
    if (trl_rec_resolve_any((void *)ty, name, strlen(name), &ef) != 0) return TRL_ENOTFOUND;
    bool sys = ef.id >= (int)TRL_COL_ID;
    if (sys) {
        bool ok = false;
        for (int i = 0; sys_cols[i] && !ok; i++)
            ok = strcmp(sys_cols[i], name) == 0;
        if (!ok) return TRL_ENOTFOUND;
    } else {
        *f = trl_type_field(ty, name, strlen(name));
    }
    *col = ef.id;
    *type = ef.type;
    return 0;
}

static bool state_known(const struct trl_workflow *w, const char *s)
{
    if (!w) return true; /* no workflow: states cannot be checked */
    for (size_t i = 0; i < w->nstates; i++)
        if (strcmp(w->states[i].name, s) == 0) return true;
    return false;
}

static void parse_group(struct trl_defcheck *c, const cJSON *j, const char *path,
                        const struct trl_type *ty, struct group *g)
{
    static const char *const keys[] = {"field", "bucket", "timezone"};
    char p[200];
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object such as {\"field\": \"region\"}");
        return;
    }
    trl_def_keys(c, j, path, keys, 3);
    g->name = dup_str(c, cJSON_GetObjectItemCaseSensitive(j, "field"));
    snprintf(p, sizeof(p), "%s.field", path);
    if (!g->name) {
        trl_def_err(c, p, "must name a field, state, owner, org, created_at or updated_at");
        return;
    }
    if (ty && column(ty, g->name, &g->col, &g->type, &g->f)) {
        trl_def_err(c, p, "type %s has no column '%s' to group by", ty->name, g->name);
        return;
    }
    if (g->f && (g->f->computed || g->f->type == TRL_FT_LONGTEXT || g->f->type == TRL_FT_JSON)) {
        trl_def_err(c, p, "cannot group by %s field '%s'",
                    g->f->computed ? "computed" : trl_ftype_name(g->f->type), g->name);
        return;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bucket");
    snprintf(p, sizeof(p), "%s.bucket", path);
    if (b) {
        for (int k = 1; k <= B_YEAR && cJSON_IsString(b); k++)
            if (strcmp(b->valuestring, bucket_names[k]) == 0) g->bucket = (enum bucket)k;
        if (!g->bucket) trl_def_err(c, p, "must be day, week, month, quarter or year");
        if (ty && g->type != TRL_FT_DATE && g->type != TRL_FT_DATETIME)
            trl_def_err(c, p, "only a date or datetime column has time buckets ('%s' is %s)",
                        g->name, trl_ftype_name(g->type));
    } else if (ty && (g->type == TRL_FT_DATETIME)) {
        trl_def_err(c, p, "grouping by a datetime needs a bucket (day, week, month, ...)");
    }
    const cJSON *z = cJSON_GetObjectItemCaseSensitive(j, "timezone");
    snprintf(p, sizeof(p), "%s.timezone", path);
    g->zone = strdup(cJSON_IsString(z) ? z->valuestring : "UTC");
    if (!g->zone) c->rc = TRL_ENOMEM;
    if (z || (g->bucket && g->zone)) {
        /* Loaded once here: a run reuses it (a zone given must exist). */
        struct trl_diag zd;
        trl_diag_init(&zd);
        bool bad = z && (!cJSON_IsString(z) || !g->zone);
        if (!bad && trl_tz_load(NULL, g->zone, &g->tz, &zd) && z) bad = true;
        if (bad)
            trl_def_err(c, p, "unknown time zone");
        else if (z && g->type == TRL_FT_DATE)
            trl_def_err(c, p, "a date has no time zone (only datetime buckets do)");
        if (!g->bucket) {
            trl_tz_free(g->tz);
            g->tz = NULL;
        }
        trl_diag_reset(&zd);
    }
}

static void parse_measure(struct trl_defcheck *c, const cJSON *j, const char *path,
                          const struct trl_type *ty, const struct trl_wf_set *ws, struct measure *m)
{
    static const char *const keys[] = {"name",     "labels", "op",    "field",
                                       "duration", "policy", "target"};
    char p[200];
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object such as {\"name\": \"n\", \"op\": \"count\"}");
        return;
    }
    trl_def_keys(c, j, path, keys, 7);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%s.name", path);
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
        trl_def_err(c, p, "must be a name ([a-z_][a-z0-9_]*)");
    else
        m->name = dup_str(c, nm);
    snprintf(p, sizeof(p), "%s.labels", path);
    trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"), p, &m->labels);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    snprintf(p, sizeof(p), "%s.op", path);
    int found = -1;
    for (int k = 0; k <= M_SLA_TO_BREACH && cJSON_IsString(op); k++)
        if (strcmp(op->valuestring, op_names[k]) == 0) found = k;
    if (found < 0) {
        trl_def_err(c, p,
                    "must be count, count_distinct, sum, avg, min, max, median, p90, sla_met, "
                    "sla_breached, sla_compliance or sla_median_to_breach");
        return;
    }
    m->op = (enum m_op)found;
    const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, "field");
    const cJSON *dj = cJSON_GetObjectItemCaseSensitive(j, "duration");
    bool sla = m->op >= M_SLA_MET;
    m->field = dup_str(c, fj);
    m->policy = dup_str(c, cJSON_GetObjectItemCaseSensitive(j, "policy"));
    m->target = dup_str(c, cJSON_GetObjectItemCaseSensitive(j, "target"));
    if (!sla && (m->policy || m->target)) {
        snprintf(p, sizeof(p), "%s.policy", path);
        trl_def_err(c, p, "policy and target belong to SLA measures");
    }
    if (dj) {
        static const char *const dkeys[] = {"from", "to", "in", "calendar", "unit"};
        snprintf(p, sizeof(p), "%s.duration", path);
        if (!cJSON_IsObject(dj)) {
            trl_def_err(c, p, "must be {\"from\": state, \"to\": state} or {\"in\": state}");
            return;
        }
        trl_def_keys(c, dj, p, dkeys, 5);
        if (m->op != M_COUNT && m->op != M_AVG && m->op != M_MEDIAN && m->op != M_P90 &&
            m->op != M_MIN && m->op != M_MAX) {
            snprintf(p, sizeof(p), "%s.op", path);
            trl_def_err(c, p, "a duration is measured with count, avg, min, max, median or p90");
        }
        m->from = dup_str(c, cJSON_GetObjectItemCaseSensitive(dj, "from"));
        m->to = dup_str(c, cJSON_GetObjectItemCaseSensitive(dj, "to"));
        m->in = dup_str(c, cJSON_GetObjectItemCaseSensitive(dj, "in"));
        m->calendar = dup_str(c, cJSON_GetObjectItemCaseSensitive(dj, "calendar"));
        m->unit = dup_str(c, cJSON_GetObjectItemCaseSensitive(dj, "unit"));
        if (!m->unit && !(m->unit = strdup("hours"))) c->rc = TRL_ENOMEM;
        const struct trl_workflow *w = ws && ty ? trl_wf_by_type(ws, ty->name) : NULL;
        if (m->in && !m->from && !m->to) {
            m->dur = D_IN;
            snprintf(p, sizeof(p), "%s.duration.in", path);
            if (!state_known(w, m->in)) trl_def_err(c, p, "no state '%s'", m->in);
        } else if (m->from && m->to && !m->in) {
            m->dur = D_BETWEEN;
            snprintf(p, sizeof(p), "%s.duration.from", path);
            if (!state_known(w, m->from)) trl_def_err(c, p, "no state '%s'", m->from);
            snprintf(p, sizeof(p), "%s.duration.to", path);
            if (!state_known(w, m->to)) trl_def_err(c, p, "no state '%s'", m->to);
        } else {
            snprintf(p, sizeof(p), "%s.duration", path);
            trl_def_err(c, p, "give from and to (time between entering them) or in (time in it)");
        }
        static const struct {
            const char *n;
            int64_t ms;
        } units[] = {{"ms", 1},
                     {"seconds", 1000},
                     {"minutes", 60000},
                     {"hours", 3600000},
                     {"days", 86400000}};
        m->unit_ms = 0;
        for (size_t k = 0; k < 5 && m->unit; k++)
            if (strcmp(units[k].n, m->unit) == 0) m->unit_ms = units[k].ms;
        if (!m->unit_ms) {
            snprintf(p, sizeof(p), "%s.duration.unit", path);
            trl_def_err(c, p, "must be ms, seconds, minutes, hours or days");
        }
        if (m->calendar && ws && !trl_wf_calendar(ws, m->calendar)) {
            snprintf(p, sizeof(p), "%s.duration.calendar", path);
            trl_def_err(c, p, "no calendar '%s'", m->calendar);
        }
        if (fj) {
            snprintf(p, sizeof(p), "%s.field", path);
            trl_def_err(c, p, "a duration measure has no field");
        }
        return;
    }
    if (m->op == M_SLA_TO_BREACH) {
        if (!(m->unit = strdup("hours"))) c->rc = TRL_ENOMEM;
        m->unit_ms = 3600000;
    }
    if (m->op == M_MEDIAN || m->op == M_P90) {
        snprintf(p, sizeof(p), "%s.duration", path);
        trl_def_err(c, p, "median and p90 measure durations: give a duration");
        return;
    }
    if (sla || m->op == M_COUNT) {
        if (fj) {
            snprintf(p, sizeof(p), "%s.field", path);
            trl_def_err(c, p, "%s takes no field", op_names[m->op]);
        }
        return;
    }
    snprintf(p, sizeof(p), "%s.field", path);
    if (!m->field) {
        trl_def_err(c, p, "%s needs a field", op_names[m->op]);
        return;
    }
    int col;
    enum trl_ftype t;
    const struct trl_field *f;
    if (ty && column(ty, m->field, &col, &t, &f)) {
        trl_def_err(c, p, "type %s has no field '%s'", ty->name, m->field);
        return;
    }
    if (ty && f && f->computed)
        trl_def_err(c, p, "'%s' is computed: it cannot be measured", m->field);
    if (ty && m->op != M_COUNT_DISTINCT && !is_numeric(t) &&
        !((m->op == M_MIN || m->op == M_MAX) && (t == TRL_FT_DATE || t == TRL_FT_DATETIME)))
        trl_def_err(c, p, "%s needs an int or decimal field ('%s' is %s)", op_names[m->op],
                    m->field, trl_ftype_name(t));
}

int trl_report_parse(const struct trl_catalog *cat, const struct trl_wf_set *ws, const char *json,
                     size_t n, struct trl_report **out, struct trl_diag *d)
{
    *out = NULL;
    cJSON *j = cJSON_ParseWithLength(json, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return trl_diag_set(d, TRL_EJSON, "a report definition is a JSON object");
    }
    struct trl_report *r = calloc(1, sizeof(*r));
    if (!r) {
        cJSON_Delete(j);
        return TRL_ENOMEM;
    }
    struct trl_defcheck c = {.d = d};
    static const char *const keys[] = {"name",   "labels",   "description", "type", "filter",
                                       "params", "group_by", "measures",    "sort", "limit"};
    trl_def_keys(&c, j, "", keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
        trl_def_err(&c, "name", "must be a name ([a-z_][a-z0-9_]*)");
    else
        r->name = dup_str(&c, nm);
    trl_def_labels(&c, cJSON_GetObjectItemCaseSensitive(j, "labels"), "labels", &r->labels);
    r->type = dup_str(&c, cJSON_GetObjectItemCaseSensitive(j, "type"));
    const struct trl_type *ty = r->type ? trl_catalog_type(cat, r->type) : NULL;
    if (!ty) trl_def_err(&c, "type", "must name an installed record type");
    /* Parameters. */
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "params");
    if (ps)
        r->params = trl_def_array(&c, ps, "params", 0, MAX_PARAMS, sizeof(*r->params), "parameters",
                                  &r->nparams);
    size_t pi = 0;
    for (const cJSON *e = ps && r->params ? ps->child : NULL; e; e = e->next, pi++) {
        struct param *p = &r->params[pi];
        char path[64];
        snprintf(path, sizeof(path), "params[%zu]", pi);
        static const char *const pkeys[] = {"name", "type", "default", "required", "labels"};
        if (!cJSON_IsObject(e)) {
            trl_def_err(&c, path,
                        "must be an object such as {\"name\": \"from\", \"type\": \"date\"}");
            continue;
        }
        trl_def_keys(&c, e, path, pkeys, 5);
        const cJSON *pn = cJSON_GetObjectItemCaseSensitive(e, "name");
        char sub[96];
        snprintf(sub, sizeof(sub), "%s.name", path);
        if (!cJSON_IsString(pn) || !trl_def_ident(pn->valuestring))
            trl_def_err(&c, sub, "must be a name");
        else
            p->name = dup_str(&c, pn);
        p->type = dup_str(&c, cJSON_GetObjectItemCaseSensitive(e, "type"));
        if (!p->type && !(p->type = strdup("text"))) c.rc = TRL_ENOMEM;
        static const char *const ptypes[] = {"text", "int",  "decimal", "date", "datetime",
                                             "bool", "enum", "user",    NULL};
        bool ok = false;
        for (int k = 0; ptypes[k] && p->type && !ok; k++)
            ok = strcmp(ptypes[k], p->type) == 0;
        snprintf(sub, sizeof(sub), "%s.type", path);
        if (!ok)
            trl_def_err(&c, sub, "must be text, int, decimal, date, datetime, bool, enum or user");
        const cJSON *df = cJSON_GetObjectItemCaseSensitive(e, "default");
        if (cJSON_IsNumber(df)) {
            char num[48];
            snprintf(num, sizeof(num), "%.15g", df->valuedouble);
            if (!(p->dflt = strdup(num))) c.rc = TRL_ENOMEM;
        } else {
            p->dflt = dup_str(&c, df);
        }
        p->required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "required"));
        snprintf(sub, sizeof(sub), "%s.labels", path);
        trl_def_labels(&c, cJSON_GetObjectItemCaseSensitive(e, "labels"), sub, &p->labels);
    }
    /* The filter compiles with every parameter at its default (or a placeholder of its type). */
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "filter");
    if (fl && !cJSON_IsString(fl)) trl_def_err(&c, "filter", "must be an expression (a string)");
    r->filter = dup_str(&c, fl);
    if (r->filter && ty && !c.nerr) {
        const char *names[MAX_PARAMS], *vals[MAX_PARAMS];
        for (size_t k = 0; k < r->nparams; k++) {
            names[k] = r->params[k].name ? r->params[k].name : "";
            const char *t = r->params[k].type ? r->params[k].type : "text";
            vals[k] = r->params[k].dflt                                    ? r->params[k].dflt
                      : strcmp(t, "int") == 0 || strcmp(t, "decimal") == 0 ? "0"
                      : strcmp(t, "date") == 0                             ? "2000-01-01"
                      : strcmp(t, "datetime") == 0                         ? "2000-01-01T00:00:00Z"
                      : strcmp(t, "bool") == 0                             ? "true"
                                                                           : "x";
        }
        struct trl_expr_params prm = {names, vals, r->nparams, true};
        struct trl_expr *e = NULL;
        struct trl_diag ed;
        trl_diag_init(&ed);
        int rc = trl_expr_parse_params(r->filter, strlen(r->filter), trl_rec_resolve_any,
                                       (void *)ty, &prm, &e, &ed);
        if (rc == TRL_ENOMEM) c.rc = rc;
        if (rc) trl_def_err(&c, "filter", "%s", ed.message);
        trl_expr_free(e);
        trl_diag_reset(&ed);
    }
    /* Groups. */
    const cJSON *gb = cJSON_GetObjectItemCaseSensitive(j, "group_by");
    if (gb) {
        size_t ng = 0;
        struct group *tmp = trl_def_array(&c, gb, "group_by", 0, MAX_GROUPS, sizeof(*tmp),
                                          "group-bys (a second one makes a pivot)", &ng);
        bool ok = tmp != NULL;
        free(tmp);
        size_t gi = 0;
        for (const cJSON *e = ok ? gb->child : NULL; e && gi < MAX_GROUPS; e = e->next, gi++) {
            char path[48];
            snprintf(path, sizeof(path), "group_by[%zu]", gi);
            parse_group(&c, e, path, ty, &r->groups[gi]);
            r->ngroups = gi + 1;
        }
    }
    /* Measures. */
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "measures");
    r->m = trl_def_array(&c, ms, "measures", 1, MAX_MEASURE, sizeof(*r->m), "measures", &r->nm);
    size_t mi = 0;
    for (const cJSON *e = r->m ? ms->child : NULL; e; e = e->next, mi++) {
        char path[48];
        snprintf(path, sizeof(path), "measures[%zu]", mi);
        parse_measure(&c, e, path, ty, ws, &r->m[mi]);
    }
    /* Column names are unique (sort and CSV name them). */
    for (size_t a = 0; a < r->ngroups + r->nm; a++) {
        const char *na = a < r->ngroups ? r->groups[a].name : r->m[a - r->ngroups].name;
        for (size_t b = 0; b < a && na; b++) {
            const char *nb = b < r->ngroups ? r->groups[b].name : r->m[b - r->ngroups].name;
            if (nb && strcmp(na, nb) == 0) {
                char path[48];
                if (a < r->ngroups)
                    snprintf(path, sizeof(path), "group_by[%zu].field", a);
                else
                    snprintf(path, sizeof(path), "measures[%zu].name", a - r->ngroups);
                trl_def_err(&c, path, "column '%s' appears twice", na);
            }
        }
    }
    /* Sort and limit. */
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "sort");
    if (so)
        r->sort = trl_def_array(&c, so, "sort", 0, MAX_GROUPS + MAX_MEASURE, sizeof(*r->sort),
                                "sort keys", &r->nsort);
    size_t si = 0;
    for (const cJSON *e = r->sort ? so->child : NULL; e; e = e->next, si++) {
        char path[48];
        snprintf(path, sizeof(path), "sort[%zu]", si);
        static const char *const skeys[] = {"by", "desc"};
        trl_def_keys(&c, e, path, skeys, 2);
        r->sort[si].by = dup_str(&c, cJSON_GetObjectItemCaseSensitive(e, "by"));
        r->sort[si].desc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "desc"));
        bool known = false;
        for (size_t k = 0; k < r->ngroups && r->sort[si].by && !known; k++)
            known = r->groups[k].name && strcmp(r->groups[k].name, r->sort[si].by) == 0;
        for (size_t k = 0; k < r->nm && r->sort[si].by && !known; k++)
            known = r->m[k].name && strcmp(r->m[k].name, r->sort[si].by) == 0;
        if (!known) {
            char sub[64];
            snprintf(sub, sizeof(sub), "%s.by", path);
            trl_def_err(&c, sub, "must name a group-by field or a measure");
        }
    }
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "limit");
    if (lim) {
        if (!cJSON_IsNumber(lim) || lim->valuedouble < 1 || lim->valuedouble > MAX_ROWS ||
            lim->valuedouble != (double)(int64_t)lim->valuedouble)
            trl_def_err(&c, "limit", "must be an integer from 1 to %d (top N rows)", MAX_ROWS);
        else
            r->limit = (int64_t)lim->valuedouble;
    }
    cJSON_Delete(j);
    if (c.rc || c.nerr) {
        trl_report_free(r);
        if (c.rc) return c.rc;
        trl_diag_set(d, TRL_EVALIDATION, "the report definition has %d problem(s)", c.nerr);
        trl_diag_zh(d, "报表定义有 %d 处问题", c.nerr);
        return TRL_EVALIDATION;
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Running
 */
struct dset { /* exact set of byte strings (count distinct) */
    uint64_t *hash;
    const char **s;
    size_t *n;
    size_t cap, used;
};

struct acc {
    uint64_t n;       /* values (or records) counted */
    __int128 sum;     /* sum of scaled values */
    int64_t min, max; /* extremes */
    struct dset set;  /* count_distinct */
    int64_t *vals;    /* durations (median, p90) */
    size_t nv, capv;
    uint64_t met, breached;
};

struct row {
    uint64_t hash;
    struct trl_value keys[MAX_GROUPS];
    struct acc *acc;
    __int128 *sortv; /* exact measure values for sorting (filled at the end) */
};

struct state_entry {
    const char *state; /* borrowed from the walk's scratch */
    int64_t at;
};

struct runner {
    const struct trl_report *r;
    const struct trl_type *ty;
    struct trl_txn *t;
    const struct trl_rec_ctx *cx;
    const struct trl_report_run *run;
    const struct trl_tz *tz[MAX_GROUPS]; /* the groups' zones (the report's) */
    int mcol[MAX_MEASURE];
    const struct trl_field *mf[MAX_MEASURE];
    const struct trl_cal *cal[MAX_MEASURE];
    struct row **slots;
    size_t cap, nrows;
    struct trl_arena arena;
    bool need_hist, need_sla;
    struct state_entry *entries; /* the current record's state walk */
    size_t nentries, capentries;
    struct trl_arena walk; /* its strings */
    struct acc *cur;       /* the current record's row accumulators */
    uint64_t matched;
    bool too_many_rows; /* find_row refused a group past MAX_ROWS */
};

static uint64_t value_hash(uint64_t h, const struct trl_value *v)
{
    h = trl_fnv1a(h, &v->kind, sizeof(v->kind));
    if (v->kind == TRL_V_INT) return trl_fnv1a(h, &v->i, sizeof(v->i));
    if (v->kind == TRL_V_BYTES) return trl_fnv1a(h, v->s, v->n);
    return h;
}

static bool value_same(const struct trl_value *a, const struct trl_value *b)
{
    if (a->kind != b->kind) return false;
    if (a->kind == TRL_V_INT) return a->i == b->i;
    if (a->kind == TRL_V_BYTES) return a->n == b->n && (!a->n || memcmp(a->s, b->s, a->n) == 0);
    return true;
}

static int dset_add(struct dset *s, struct trl_arena *a, const void *p, size_t n)
{
    if (s->used * 2 >= s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        uint64_t *nh = calloc(nc, sizeof(*nh));
        const char **ns = calloc(nc, sizeof(*ns));
        size_t *nn = calloc(nc, sizeof(*nn));
        if (!nh || !ns || !nn) {
            free(nh), free(ns), free(nn);
            return TRL_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->s[i]) continue;
            size_t j = s->hash[i] & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            nh[j] = s->hash[i], ns[j] = s->s[i], nn[j] = s->n[i];
        }
        free(s->hash), free(s->s), free(s->n);
        s->hash = nh, s->s = ns, s->n = nn, s->cap = nc;
    }
    uint64_t h = trl_fnv1a(TRL_FNV1A_INIT, p, n);
    size_t j = h & (s->cap - 1);
    while (s->s[j]) {
        if (s->hash[j] == h && s->n[j] == n && memcmp(s->s[j], p, n) == 0) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    char *c = trl_arena_alloc(a, n ? n : 1);
    if (!c) return TRL_ENOMEM;
    memcpy(c, p, n);
    s->hash[j] = h, s->s[j] = c, s->n[j] = n;
    s->used++;
    return 0;
}

/* The bucket of a day (days since the epoch) as an int: the bucket's first day for day and week,
 * y*12+m-1 for month, y*4+q for quarter, y for year. */
static int64_t bucket_of(enum bucket b, int64_t days)
{
    int64_t y;
    unsigned m, dd;
    switch (b) {
    case B_DAY:
        return days;
    case B_WEEK: {
        int64_t wd = ((days + 3) % 7 + 7) % 7; /* 0 = Monday (1970-01-05 was one) */
        return days - wd;
    }
    default:
        trl_civil_from_days((int32_t)days, &y, &m, &dd);
        if (b == B_MONTH) return y * 12 + (int64_t)m - 1;
        if (b == B_QUARTER) return y * 4 + ((int64_t)m - 1) / 3;
        return y;
    }
}

static void bucket_label(enum bucket b, int64_t v, char *out, size_t n)
{
    switch (b) {
    case B_DAY:
    case B_WEEK: {
        char d[16];
        trl_date_format((int32_t)v, d);
        snprintf(out, n, "%s", d);
        return;
    }
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

static int64_t floor_div64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int group_value(struct runner *g, size_t k, const struct trl_record *rec,
                       struct trl_value *out)
{
    const struct group *gr = &g->r->groups[k];
    trl_rec_value(g->ty, rec, gr->col, out);
    if (!gr->bucket || out->kind != TRL_V_INT) return 0;
    int64_t days = out->i;
    if (gr->type == TRL_FT_DATETIME) {
        int32_t off = trl_tz_offset(g->tz[k], floor_div64(out->i, 1000));
        days = floor_div64(out->i + (int64_t)off * 1000, 86400000);
    }
    out->i = bucket_of(gr->bucket, days);
    return 0;
}

static int find_row(struct runner *g, const struct trl_value *keys, struct row **out)
{
    uint64_t h = TRL_FNV1A_INIT;
    for (size_t k = 0; k < g->r->ngroups; k++)
        h = value_hash(h, &keys[k]);
    if ((g->nrows + 1) * 2 > g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        struct row **ns = calloc(nc, sizeof(*ns));
        if (!ns) return TRL_ENOMEM;
        for (size_t i = 0; i < g->cap; i++) {
            if (!g->slots[i]) continue;
            size_t j = g->slots[i]->hash & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = g->slots[i];
        }
        free(g->slots);
        g->slots = ns;
        g->cap = nc;
    }
    size_t j = h & (g->cap - 1);
    for (; g->slots[j]; j = (j + 1) & (g->cap - 1)) {
        struct row *rw = g->slots[j];
        bool same = rw->hash == h;
        for (size_t k = 0; k < g->r->ngroups && same; k++)
            same = value_same(&rw->keys[k], &keys[k]);
        if (same) {
            *out = rw;
            return 0;
        }
    }
    if (g->nrows >= MAX_ROWS) {
        trl_diag_set(g->cx->d, TRL_EINVAL,
                     "the report has more than %d groups; group by fewer values or add a filter",
                     MAX_ROWS);
        trl_diag_zh(g->cx->d, "报表分组超过 %d 个;请减少分组取值或增加筛选条件", MAX_ROWS);
        g->too_many_rows = true;
        return TRL_EINVAL;
    }
    struct row *rw = trl_arena_alloc(&g->arena, sizeof(*rw));
    struct acc *acc = calloc(g->r->nm ? g->r->nm : 1, sizeof(*acc));
    if (!rw || !acc) {
        free(acc);
        return TRL_ENOMEM;
    }
    memset(rw, 0, sizeof(*rw));
    rw->hash = h;
    rw->acc = acc;
    for (size_t k = 0; k < g->r->ngroups; k++) {
        rw->keys[k] = keys[k];
        if (keys[k].kind == TRL_V_BYTES) {
            char *c = trl_arena_alloc(&g->arena, keys[k].n ? keys[k].n : 1);
            if (!c) return TRL_ENOMEM;
            memcpy(c, keys[k].s, keys[k].n);
            rw->keys[k].s = c;
        }
    }
    g->slots[j] = rw;
    g->nrows++;
    *out = rw;
    return 0;
}

static int walk_fn(void *ud, const char *state, int64_t at_ms)
{
    struct runner *g = ud;
    if (g->nentries == g->capentries) {
        size_t nc = g->capentries ? g->capentries * 2 : 16;
        struct state_entry *ne = realloc(g->entries, nc * sizeof(*ne));
        if (!ne) return TRL_ENOMEM;
        g->entries = ne;
        g->capentries = nc;
    }
    char *s = trl_arena_strndup(&g->walk, state, strlen(state));
    if (!s) return TRL_ENOMEM;
    g->entries[g->nentries++] = (struct state_entry){s, at_ms};
    return 0;
}

/* The duration measure m of the current record (from its state walk); false when it has none. */
static bool duration_of(struct runner *g, size_t mi, int64_t *out)
{
    const struct measure *m = &g->r->m[mi];
    const struct trl_cal *cal = g->cal[mi];
    if (m->dur == D_BETWEEN) {
        for (size_t i = 0; i < g->nentries; i++) {
            if (strcmp(g->entries[i].state, m->from) != 0) continue;
            for (size_t k = i + 1; k < g->nentries; k++)
                if (strcmp(g->entries[k].state, m->to) == 0) {
                    int64_t a = g->entries[i].at, b = g->entries[k].at;
                    *out = cal ? trl_cal_between(cal, a, b) : b - a;
                    return true;
                }
            return false;
        }
        return false;
    }
    bool any = false;
    int64_t total = 0;
    for (size_t i = 0; i + 1 < g->nentries; i++) {
        if (strcmp(g->entries[i].state, m->in) != 0) continue;
        int64_t a = g->entries[i].at, b = g->entries[i + 1].at;
        total += cal ? trl_cal_between(cal, a, b) : b - a;
        any = true;
    }
    *out = total;
    return any;
}

static void acc_value(struct acc *a, int64_t v)
{
    if (!a->n || v < a->min) a->min = v;
    if (!a->n || v > a->max) a->max = v;
    a->n++;
    a->sum += v;
}

static int acc_push(struct acc *a, int64_t v)
{
    if (a->nv == a->capv) {
        size_t nc = a->capv ? a->capv * 2 : 16;
        int64_t *nv = realloc(a->vals, nc * sizeof(*nv));
        if (!nv) return TRL_ENOMEM;
        a->vals = nv;
        a->capv = nc;
    }
    a->vals[a->nv++] = v;
    return 0;
}

struct sla_ud {
    struct runner *g;
    struct row *rw;
};

static int sla_fn(void *ud, const struct trl_sla_clock *c)
{
    struct sla_ud *s = ud;
    const struct trl_report *r = s->g->r;
    for (size_t i = 0; i < r->nm; i++) {
        const struct measure *m = &r->m[i];
        if (m->op < M_SLA_MET) continue;
        if (m->policy && strcmp(m->policy, c->policy) != 0) continue;
        if (m->target && strcmp(m->target, c->target) != 0) continue;
        if (c->status == TRL_SLA_MET) s->rw->acc[i].met++;
        if (c->status == TRL_SLA_BREACHED) {
            s->rw->acc[i].breached++;
            /* Time from the clock's start to its breach (elapsed). */
            if (m->op == M_SLA_TO_BREACH && c->breached_at >= c->started_at) {
                int rc = acc_push(&s->rw->acc[i], c->breached_at - c->started_at);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

static int each_record(void *ud, const struct trl_record *rec)
{
    struct runner *g = ud;
    const struct trl_report *r = g->r;
    struct trl_value keys[MAX_GROUPS];
    for (size_t k = 0; k < r->ngroups; k++)
        group_value(g, k, rec, &keys[k]);
    struct row *rw;
    int rc = find_row(g, keys, &rw);
    if (rc) return rc;
    g->matched++;
    if (g->need_hist) {
        g->nentries = 0;
        trl_arena_free(&g->walk); /* empty again, reusable */
        if ((rc = trl_rec_state_walk(g->t, g->ty, rec->id, walk_fn, g))) return rc;
    }
    for (size_t i = 0; i < r->nm; i++) {
        const struct measure *m = &r->m[i];
        struct acc *a = &rw->acc[i];
        if (m->dur) {
            int64_t dms;
            if (!duration_of(g, i, &dms)) continue;
            acc_value(a, dms);
            if ((m->op == M_MEDIAN || m->op == M_P90) && (rc = acc_push(a, dms))) return rc;
            continue;
        }
        if (m->op == M_COUNT) {
            a->n++;
            continue;
        }
        if (m->op >= M_SLA_MET) continue;
        struct trl_value v;
        trl_rec_value(g->ty, rec, g->mcol[i], &v);
        if (v.kind == TRL_V_NULL) continue;
        if (m->op == M_COUNT_DISTINCT) {
            if (v.kind == TRL_V_INT)
                rc = dset_add(&a->set, &g->arena, &v.i, sizeof(v.i));
            else
                rc = dset_add(&a->set, &g->arena, v.s, v.n);
            if (rc) return rc;
            continue;
        }
        if (v.kind == TRL_V_INT) acc_value(a, v.i);
    }
    if (g->need_sla) {
        struct sla_ud su = {g, rw};
        if ((rc = trl_sla_each(g->t, g->ty->name, rec->id, sla_fn, &su))) return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Output
 */
/* A 128-bit integer scaled by 10^scale as decimal text ("-12.30"). */
static void i128_text(__int128 v, int scale, char *out, size_t n)
{
    char digits[64];
    size_t nd = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[nd++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u && nd < sizeof(digits));
    while ((int)nd <= scale && nd < sizeof(digits))
        digits[nd++] = '0';
    size_t o = 0;
    if (neg && o + 1 < n) out[o++] = '-';
    for (size_t i = nd; i-- > 0 && o + 2 < n;) {
        out[o++] = digits[i];
        if ((int)i == scale && scale > 0) out[o++] = '.';
    }
    out[o] = 0;
}

/* num / den rounded half away from zero (den > 0). */
static __int128 rdiv(__int128 num, __int128 den)
{
    __int128 q = num / den, r = num % den;
    if (r < 0) r = -r;
    if (2 * r >= den) q += num < 0 ? -1 : 1;
    return q;
}

/* sum / n rounded half away from zero, at scale (of the field) plus extra places. */
static __int128 div_round(__int128 sum, uint64_t n, int extra)
{
    for (int i = 0; i < extra; i++)
        sum *= 10;
    return rdiv(sum, (__int128)n);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#define NULL_KEY (-((__int128)1 << 126)) /* sorts before every value */

/* A number with `places` decimals from a value scaled by 10^places, as a JSON number. */
static int scaled_json(struct trl_buf *out, __int128 q, int places)
{
    char tmp[96];
    i128_text(q, places, tmp, sizeof(tmp));
    return trl_buf_adds(out, tmp);
}

/* Appends measure i of a row as JSON; *key gets its exact value for sorting (NULL_KEY for
 * null). Durations and percentages are computed in integers and rounded half away from zero,
 * like decimal averages. */
static int measure_json(const struct runner *g, size_t i, struct acc *a, struct trl_buf *out,
                        __int128 *key)
{
    const struct measure *m = &g->r->m[i];
    const struct trl_field *f = g->mf[i];
    int scale = f && f->type == TRL_FT_DECIMAL ? f->scale : 0;
    bool dec = f && f->type == TRL_FT_DECIMAL;
    char tmp[96];
    *key = NULL_KEY;
    if (m->dur || m->op == M_SLA_TO_BREACH) {
        if (m->op == M_COUNT) {
            *key = a->n;
            return trl_buf_printf(out, "%llu", (unsigned long long)a->n);
        }
        __int128 q; /* hundredths of the unit (shown); the key keeps finer precision */
        if (m->op == M_AVG) {
            if (!a->n) return trl_buf_adds(out, "null");
            q = rdiv(a->sum * 100, (__int128)a->n * m->unit_ms);
            *key = rdiv(a->sum * 1000, (__int128)a->n); /* thousandths of a ms */
            return scaled_json(out, q, 2);
        } else {
            int64_t v;
            if (m->op == M_MIN || m->op == M_MAX) {
                if (!a->n) return trl_buf_adds(out, "null");
                v = m->op == M_MIN ? a->min : a->max;
            } else {
                if (!a->nv) return trl_buf_adds(out, "null");
                qsort(a->vals, a->nv, sizeof(*a->vals), cmp_i64);
                if (m->op == M_P90) /* nearest rank */
                    v = a->vals[(a->nv * 9 + 9) / 10 - 1];
                else /* median; of an even count the mean of the middle two */
                    v = a->nv % 2 ? a->vals[a->nv / 2]
                                  : (a->vals[a->nv / 2 - 1] + a->vals[a->nv / 2]) / 2;
            }
            q = rdiv((__int128)v * 100, m->unit_ms);
            *key = v; /* ms */
        }
        return scaled_json(out, q, 2);
    }
    switch (m->op) {
    case M_COUNT:
        *key = a->n;
        return trl_buf_printf(out, "%llu", (unsigned long long)a->n);
    case M_COUNT_DISTINCT:
        *key = a->set.used;
        return trl_buf_printf(out, "%zu", a->set.used);
    case M_SLA_MET:
        *key = a->met;
        return trl_buf_printf(out, "%llu", (unsigned long long)a->met);
    case M_SLA_BREACHED:
        *key = a->breached;
        return trl_buf_printf(out, "%llu", (unsigned long long)a->breached);
    case M_SLA_COMPLIANCE:
        if (!a->met && !a->breached) return trl_buf_adds(out, "null");
        *key = rdiv((__int128)a->met * 1000, (__int128)(a->met + a->breached));
        return scaled_json(out, *key, 1);
    default:
        break;
    }
    if (!a->n) return trl_buf_adds(out, "null");
    if (m->op == M_AVG) {
        /* Decimals keep their scale; integers get two places. */
        int extra = dec ? 0 : 2;
        __int128 q = div_round(a->sum, a->n, extra);
        i128_text(q, scale + extra, tmp, sizeof(tmp));
        *key = div_round(a->sum, a->n, 6); /* finer than shown: ties of the shown value sort */
        return dec ? trl_buf_printf(out, "\"%s\"", tmp) : trl_buf_adds(out, tmp);
    }
    if (m->op == M_SUM) {
        i128_text(a->sum, scale, tmp, sizeof(tmp));
        *key = a->sum;
        return dec ? trl_buf_printf(out, "\"%s\"", tmp) : trl_buf_adds(out, tmp);
    }
    int64_t v = m->op == M_MIN ? a->min : a->max;
    *key = v;
    if (f && (f->type == TRL_FT_DECIMAL || f->type == TRL_FT_DATE || f->type == TRL_FT_DATETIME)) {
        trl_field_format_int(f, v, tmp, sizeof(tmp));
        return trl_buf_printf(out, "\"%s\"", tmp);
    }
    if (!f && g->mcol[i] >= (int)TRL_COL_ID) { /* created_at, updated_at */
        trl_datetime_format(v, tmp);
        return trl_buf_printf(out, "\"%s\"", tmp);
    }
    return trl_buf_printf(out, "%lld", (long long)v);
}

/* Appends group value k of rw as JSON. */
static int group_json(const struct runner *g, size_t k, const struct trl_value *v,
                      struct trl_buf *out)
{
    const struct group *gr = &g->r->groups[k];
    if (v->kind == TRL_V_NULL) return trl_buf_adds(out, "null");
    if (gr->bucket) {
        char lab[32];
        bucket_label(gr->bucket, v->i, lab, sizeof(lab));
        return trl_buf_printf(out, "\"%s\"", lab);
    }
    const struct trl_field *f = trl_type_field_by_id(g->ty, (uint32_t)gr->col);
    if (f) return trl_rec_value_json(f, v, out);
    if (v->kind == TRL_V_INT) return trl_buf_printf(out, "%lld", (long long)v->i);
    return trl_buf_add_json_str(out, v->s, v->n);
}

struct sort_ctx {
    const struct runner *g;
    size_t nm;
};

static int row_cmp_r(const void *a, const void *b, void *ud)
{
    const struct sort_ctx *sc = ud;
    const struct runner *g = sc->g;
    const struct row *x = *(struct row *const *)a, *y = *(struct row *const *)b;
    const struct trl_report *r = g->r;
    size_t nkeys = r->nsort ? r->nsort : r->ngroups;
    for (size_t s = 0; s < nkeys; s++) {
        const char *by = r->nsort ? r->sort[s].by : r->groups[s].name;
        bool desc = r->nsort ? r->sort[s].desc : false;
        int c = 0;
        for (size_t k = 0; k < r->ngroups; k++) {
            if (strcmp(r->groups[k].name, by) != 0) continue;
            const struct trl_value *va = &x->keys[k], *vb = &y->keys[k];
            if (va->kind != vb->kind)
                c = va->kind == TRL_V_NULL ? -1 : vb->kind == TRL_V_NULL ? 1 : 0;
            else if (va->kind == TRL_V_INT)
                c = (va->i > vb->i) - (va->i < vb->i);
            else if (va->kind == TRL_V_BYTES) {
                size_t n = va->n < vb->n ? va->n : vb->n;
                c = n ? memcmp(va->s, vb->s, n) : 0;
                if (!c) c = (va->n > vb->n) - (va->n < vb->n);
            }
        }
        for (size_t i = 0; i < r->nm; i++)
            if (strcmp(r->m[i].name, by) == 0)
                c = (x->sortv[i] > y->sortv[i]) - (x->sortv[i] < y->sortv[i]);
        if (c) return desc ? -c : c;
    }
    return 0;
}

static int labels_json(struct trl_buf *out, const char *en, const char *zh)
{
    return trl_buf_adds(out, "{\"en\":") || trl_buf_add_json_str(out, en, strlen(en)) ||
           trl_buf_adds(out, ",\"zh-CN\":") || trl_buf_add_json_str(out, zh, strlen(zh)) ||
           trl_buf_addc(out, '}');
}

static const char *sys_label(const char *name, bool zh)
{
    const char *l = trl_rec_sys_label(name, zh);
    return l ? l : name;
}

/* The column metadata. */
static int columns_json(const struct runner *g, struct trl_buf *out)
{
    const struct trl_report *r = g->r;
    const struct trl_workflow *w = g->run->ws ? trl_wf_by_type(g->run->ws, g->ty->name) : NULL;
    int rc = trl_buf_adds(out, "\"columns\":[");
    for (size_t k = 0; k < r->ngroups && !rc; k++) {
        const struct group *gr = &r->groups[k];
        const struct trl_field *f = trl_type_field_by_id(g->ty, (uint32_t)gr->col);
        const char *type = gr->bucket ? "text" : trl_ftype_name(gr->type);
        rc = trl_buf_printf(out, "%s{\"name\":", k ? "," : "") ||
             trl_buf_add_json_str(out, gr->name, strlen(gr->name)) ||
             trl_buf_printf(out, ",\"role\":\"group\",\"type\":\"%s\",\"labels\":", type) ||
             labels_json(out, f ? f->labels.en : sys_label(gr->name, false),
                         f ? f->labels.zh : sys_label(gr->name, true));
        if (!rc && gr->bucket)
            rc =
                trl_buf_printf(out, ",\"bucket\":\"%s\",\"timezone\":", bucket_names[gr->bucket]) ||
                trl_buf_add_json_str(out, gr->zone, strlen(gr->zone));
        if (!rc && f && f->type == TRL_FT_ENUM && f->noptions) {
            rc = trl_buf_adds(out, ",\"values\":{");
            for (size_t o = 0; o < f->noptions && !rc; o++)
                rc = trl_buf_adds(out, o ? "," : "") ||
                     trl_buf_add_json_str(out, f->options[o].value, strlen(f->options[o].value)) ||
                     trl_buf_addc(out, ':') ||
                     labels_json(out, f->options[o].labels.en, f->options[o].labels.zh);
            if (!rc) rc = trl_buf_addc(out, '}');
        }
        if (!rc && gr->col == (int)TRL_COL_STATE && w && w->nstates) {
            rc = trl_buf_adds(out, ",\"values\":{");
            for (size_t s = 0; s < w->nstates && !rc; s++)
                rc = trl_buf_adds(out, s ? "," : "") ||
                     trl_buf_add_json_str(out, w->states[s].name, strlen(w->states[s].name)) ||
                     trl_buf_addc(out, ':') ||
                     labels_json(out, w->states[s].labels.en, w->states[s].labels.zh);
            if (!rc) rc = trl_buf_addc(out, '}');
        }
        if (!rc) rc = trl_buf_addc(out, '}');
    }
    for (size_t i = 0; i < r->nm && !rc; i++) {
        const struct measure *m = &r->m[i];
        const struct trl_field *f = g->mf[i];
        bool counted = m->op == M_COUNT; /* records (also a duration's: how many have one) */
        const char *type = counted ? "int"
                           : m->dur || m->op == M_SLA_COMPLIANCE || m->op == M_SLA_TO_BREACH
                               ? "number"
                           : m->op == M_COUNT || m->op == M_COUNT_DISTINCT || m->op == M_SLA_MET ||
                                   m->op == M_SLA_BREACHED
                               ? "int"
                           : m->op == M_AVG && f && f->type == TRL_FT_INT ? "number"
                           : f                                            ? trl_ftype_name(f->type)
                                                                          : "datetime";
        rc = trl_buf_printf(out, "%s{\"name\":", r->ngroups || i ? "," : "") ||
             trl_buf_add_json_str(out, m->name, strlen(m->name)) ||
             trl_buf_printf(out, ",\"role\":\"measure\",\"op\":\"%s\",\"type\":\"%s\"",
                            op_names[m->op], type);
        if (!rc && f && f->type == TRL_FT_DECIMAL)
            rc = trl_buf_printf(out, ",\"scale\":%d", f->scale);
        if (!rc && !counted && (m->dur || m->op == M_SLA_TO_BREACH))
            rc = trl_buf_printf(out, ",\"unit\":\"%s\"", m->unit);
        if (!rc && m->op == M_SLA_COMPLIANCE) rc = trl_buf_adds(out, ",\"unit\":\"percent\"");
        if (!rc)
            rc = trl_buf_adds(out, ",\"labels\":") ||
                 labels_json(out, m->labels.en[0] ? m->labels.en : m->name,
                             m->labels.zh[0]   ? m->labels.zh
                             : m->labels.en[0] ? m->labels.en
                                               : m->name) ||
                 trl_buf_addc(out, '}');
    }
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc ? TRL_ENOMEM : 0;
}

/* The label of group value v of column k for CSV (enum options, workflow states), or NULL. */
static const char *value_label(const struct runner *g, size_t k, const struct trl_value *v, bool zh)
{
    if (v->kind != TRL_V_BYTES) return NULL;
    const struct group *gr = &g->r->groups[k];
    const struct trl_field *f = trl_type_field_by_id(g->ty, (uint32_t)gr->col);
    if (f && f->type == TRL_FT_ENUM) {
        for (size_t o = 0; o < f->noptions; o++)
            if (strlen(f->options[o].value) == v->n && memcmp(f->options[o].value, v->s, v->n) == 0)
                return zh && f->options[o].labels.zh[0] ? f->options[o].labels.zh
                                                        : f->options[o].labels.en;
        return NULL;
    }
    const struct trl_workflow *w = g->run->ws ? trl_wf_by_type(g->run->ws, g->ty->name) : NULL;
    if (gr->col != (int)TRL_COL_STATE || !w) return NULL;
    for (size_t i = 0; i < w->nstates; i++)
        if (strlen(w->states[i].name) == v->n && memcmp(w->states[i].name, v->s, v->n) == 0)
            return zh && w->states[i].labels.zh[0] ? w->states[i].labels.zh
                                                   : w->states[i].labels.en;
    return NULL;
}

/* CSV: one cell from a JSON scalar (strings unquoted and re-escaped for CSV). */
static int csv_cell(struct trl_buf *out, const char *json, size_t n)
{
    cJSON *v = cJSON_ParseWithLength(json, n);
    int rc = 0;
    if (cJSON_IsString(v)) {
        rc = trl_buf_add_csv(out, v->valuestring, strlen(v->valuestring));
    } else if (!cJSON_IsNull(v)) {
        rc = trl_buf_add(out, json, n);
    }
    cJSON_Delete(v);
    return rc ? TRL_ENOMEM : 0;
}

static bool hidden_for(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                       const struct trl_field *f)
{
    return f && trl_rec_field_mode(cx, ty, f) == TRL_FIELD_HIDDEN;
}

static int forbidden(const struct trl_rec_ctx *cx, const char *field, const char *what)
{
    trl_diag_set(cx->d, TRL_EFORBIDDEN, "you may not %s '%s'", what, field);
    trl_diag_zh(cx->d, "你无权按字段“%s”%s", field,
                strcmp(what, "filter on") == 0  ? "筛选"
                : strcmp(what, "group by") == 0 ? "分组"
                                                : "统计");
    trl_diag_field(cx->d, field);
    return TRL_EFORBIDDEN;
}

static bool param_ok(const char *type, const char *v)
{
    size_t n = strlen(v);
    int64_t i;
    int32_t days;
    const char *why;
    if (strcmp(type, "int") == 0) return trl_parse_i64(v, n, &i) == 0;
    if (strcmp(type, "decimal") == 0) {
        /* At the scale the text has (the column's scale is checked where it is compared). */
        const char *dot = memchr(v, '.', n);
        int scale = dot ? (int)(n - (size_t)(dot - v) - 1) : 0;
        return scale <= 9 && trl_decimal_parse(v, n, scale, &i, &why) == 0;
    }
    if (strcmp(type, "date") == 0) return trl_date_parse(v, n, &days) == 0;
    if (strcmp(type, "datetime") == 0) return trl_datetime_parse(v, n, &i) == 0;
    if (strcmp(type, "bool") == 0) return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
    return trl_utf8_valid(v, n) && n <= 1000;
}

struct count_ud {
    struct runner *g;
    uint64_t *seen;
};

static int count_row(void *ud, const struct trl_value *v, uint64_t n)
{
    struct count_ud *cu = ud;
    if (v->kind == TRL_V_NULL || !n) return 0; /* records without one: counted below */
    struct row *rw;
    int rc = find_row(cu->g, v, &rw);
    if (rc) return rc;
    for (size_t m = 0; m < cu->g->r->nm; m++)
        rw->acc[m].n = n;
    *cu->seen += n;
    return 0;
}

/* Counters: a count grouped by the state, an enum or a ref field, nothing else, for a caller who
 * reads every record or exactly their org's. Fills the runner's rows; *done false when the report
 * does not qualify. */
static int from_counters(struct runner *g, bool *done)
{
    const struct trl_report *r = g->r;
    *done = false;
    if (r->filter || r->ngroups != 1 || r->groups[0].bucket) return 0;
    /* Callers who read every record use the global counters, those who read their org's
     * (partners) the org's counters; anything else (own, assigned) scans. */
    const char *org = NULL;
    if (g->cx->acc && !(g->cx->acc->read & TRL_SCOPE_ALL)) {
        if (g->cx->acc->read != TRL_SCOPE_ORG || !g->cx->who || !g->cx->who->org[0]) return 0;
        org = g->cx->who->org;
    }
    for (size_t i = 0; i < r->nm; i++)
        if (r->m[i].op != M_COUNT || r->m[i].dur) return 0;
    const struct group *gr = &r->groups[0];
    const struct trl_field *f = trl_type_field_by_id(g->ty, (uint32_t)gr->col);
    const struct trl_workflow *w = g->run->ws ? trl_wf_by_type(g->run->ws, g->ty->name) : NULL;
    bool state = gr->col == (int)TRL_COL_STATE;
    bool ref = f && f->type == TRL_FT_REF;
    if (!state && !ref && !(f && f->type == TRL_FT_ENUM)) return 0;
    size_t nvals = ref ? 0 : state ? (w ? w->nstates : 1) : f->noptions;
    uint64_t total = 0, seen = 0;
    int rc = org ? trl_rec_count_org(g->t, g->ty, org, &total) : trl_rec_count(g->t, g->ty, &total);
    if (!rc && ref) {
        /* Refs: every referenced record is a value; the counters list them. */
        struct count_ud cu = {g, &seen};
        rc = trl_rec_count_each(g->t, g->ty, gr->col, org, &g->arena, count_row, &cu);
    }
    for (size_t i = 0; i < nvals && !rc; i++) {
        const char *v =
            state ? (w ? w->states[i].name : g->ty->initial_state) : f->option_values[i];
        if (!v) continue;
        struct trl_value val = {.kind = TRL_V_BYTES, .s = v, .n = strlen(v)};
        uint64_t n = 0;
        rc = trl_rec_count_value(g->t, g->ty, gr->col, org, &val, &n);
        if (rc || !n) continue;
        struct row *rw;
        if ((rc = find_row(g, &val, &rw))) break;
        for (size_t m = 0; m < r->nm; m++)
            rw->acc[m].n = n;
        seen += n;
    }
    if (!rc && total > seen) { /* records without a value */
        struct trl_value nul = {.kind = TRL_V_NULL};
        struct row *rw;
        if (!(rc = find_row(g, &nul, &rw)))
            for (size_t m = 0; m < r->nm; m++)
                rw->acc[m].n = total - seen;
    }
    g->matched = total;
    *done = !rc;
    return rc;
}

static void runner_free(struct runner *g)
{
    for (size_t i = 0; i < g->cap; i++) {
        struct row *rw = g->slots[i];
        if (!rw) continue;
        for (size_t m = 0; m < g->r->nm; m++) {
            free(rw->acc[m].set.hash);
            free(rw->acc[m].set.s);
            free(rw->acc[m].set.n);
            free(rw->acc[m].vals);
        }
        free(rw->acc);
        free(rw->sortv);
    }
    free(g->slots);
    free(g->entries);
    trl_arena_free(&g->walk);
    trl_arena_free(&g->arena);
}

int trl_report_exec(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_report *r,
                    const struct trl_report_run *run, struct trl_buf *out)
{
    const struct trl_type *ty = trl_catalog_type(cx->cat, r->type);
    if (!ty) {
        trl_diag_set(cx->d, TRL_ENOTFOUND, "report %s: type %s no longer exists", r->name, r->type);
        trl_diag_zh(cx->d, "报表 %s:类型 %s 已不存在", r->name, r->type);
        return TRL_ENOTFOUND;
    }
    /* The caller's rights on the report's type. */
    unsigned char *modes = malloc(ty->nfields + 1);
    if (!modes) return TRL_ENOMEM;
    struct trl_access acc;
    struct trl_rec_ctx rcx = *cx;
    rcx.acc = NULL;
    if (cx->who && !cx->who->admin) {
        trl_rec_access(ty, cx->who, &acc, modes);
        rcx.acc = &acc;
    }
    cx = &rcx;
    struct runner g = {.r = r, .ty = ty, .t = t, .cx = cx, .run = run};
    trl_arena_init(&g.arena);
    trl_arena_init(&g.walk);
    struct trl_expr *filter = NULL;
    int rc = 0;
    /* Parameters: what the caller gave, else the default; unknown ones are refused. */
    const char *names[MAX_PARAMS], *vals[MAX_PARAMS];
    for (size_t i = 0; i < run->nparams && !rc; i++) {
        bool known = false;
        for (size_t k = 0; k < r->nparams && !known; k++)
            known = strcmp(r->params[k].name, run->param_names[i]) == 0;
        if (!known) {
            rc = trl_diag_set(cx->d, TRL_EQUERY, "report %s has no parameter '%s'", r->name,
                              run->param_names[i]);
            trl_diag_zh(cx->d, "报表 %s 没有参数“%s”", r->name, run->param_names[i]);
            trl_diag_field(cx->d, run->param_names[i]);
        }
    }
    for (size_t k = 0; k < r->nparams && !rc; k++) {
        const struct param *p = &r->params[k];
        names[k] = p->name;
        vals[k] = p->dflt;
        for (size_t i = 0; i < run->nparams; i++)
            if (strcmp(run->param_names[i], p->name) == 0) vals[k] = run->param_values[i];
        if (!vals[k] && p->required) {
            rc = trl_diag_set(cx->d, TRL_EQUERY, "parameter '%s' is required", p->name);
            trl_diag_zh(cx->d, "缺少必填参数“%s”", p->name);
            trl_diag_field(cx->d, p->name);
        } else if (vals[k] && !param_ok(p->type, vals[k])) {
            rc = trl_diag_set(cx->d, TRL_EQUERY, "parameter '%s' must be a %s", p->name, p->type);
            trl_diag_zh(cx->d, "参数“%s”应为 %s", p->name, p->type);
            trl_diag_field(cx->d, p->name);
        }
    }
    if (!rc && r->filter) {
        struct trl_expr_params prm = {names, vals, r->nparams, false};
        struct trl_rec_caller_resolver rs = {.ty = ty, .cx = cx};
        rc = trl_expr_parse_params(r->filter, strlen(r->filter), trl_rec_resolve_caller, &rs, &prm,
                                   &filter, cx->d);
        if (rc == TRL_EFORBIDDEN)
            rc = forbidden(cx, rs.hidden, "filter on");
        else if (rc && rc != TRL_ENOMEM) {
            /* A parameter's value that does not fit the column it is compared with. */
            if (rc == TRL_ENOTFOUND) rc = TRL_EQUERY;
            cx->d->code = rc = TRL_EQUERY;
            if (!cx->d->field[0]) trl_diag_field(cx->d, "filter");
        }
    }
    /* Columns the caller may not read cannot be grouped or measured. */
    for (size_t k = 0; k < r->ngroups && !rc; k++) {
        const struct trl_field *f =
            trl_type_field(ty, r->groups[k].name, strlen(r->groups[k].name));
        struct trl_expr_field ef;
        if (trl_rec_resolve_any((void *)ty, r->groups[k].name, strlen(r->groups[k].name), &ef)) {
            rc = trl_diag_set(cx->d, TRL_ENOTFOUND, "report %s: no column '%s' any more", r->name,
                              r->groups[k].name);
            break;
        }
        if (hidden_for(cx, ty, f)) rc = forbidden(cx, f->name, "group by");
        if (r->groups[k].bucket && !rc && !(g.tz[k] = r->groups[k].tz))
            rc = trl_diag_set(cx->d, TRL_EINTERNAL, "cannot load time zone %s", r->groups[k].zone);
    }
    for (size_t i = 0; i < r->nm && !rc; i++) {
        const struct measure *m = &r->m[i];
        if (m->dur) g.need_hist = true;
        if (m->op >= M_SLA_MET) g.need_sla = true;
        if (m->calendar) {
            g.cal[i] = run->ws ? trl_wf_calendar(run->ws, m->calendar) : NULL;
            if (!g.cal[i]) {
                rc = trl_diag_set(cx->d, TRL_ENOTFOUND, "report %s: no calendar '%s' any more",
                                  r->name, m->calendar);
                break;
            }
        }
        if (!m->field) continue;
        struct trl_expr_field ef;
        if (trl_rec_resolve_any((void *)ty, m->field, strlen(m->field), &ef)) {
            rc = trl_diag_set(cx->d, TRL_ENOTFOUND, "report %s: no field '%s' any more", r->name,
                              m->field);
            break;
        }
        g.mcol[i] = ef.id;
        g.mf[i] = trl_type_field(ty, m->field, strlen(m->field));
        if (hidden_for(cx, ty, g.mf[i])) rc = forbidden(cx, m->field, "measure");
    }
    bool counted = false;
    int64_t scanned = 0;
    if (!rc) rc = from_counters(&g, &counted);
    if (!rc && !counted) {
        struct trl_rec_ctx scx = *cx;
        scx.max_scan = run->max_scan > 0 ? run->max_scan : DEFAULT_SCAN;
        rc = trl_rec_each(t, &scx, ty, filter, NULL, each_record, &g, &scanned);
        if (rc == TRL_EINVAL && !g.too_many_rows) {
            trl_diag_set(cx->d, TRL_EINVAL,
                         "report %s would examine more than %lld records; add a filter on an "
                         "indexed field (or a parameter that narrows it)",
                         r->name, (long long)scx.max_scan);
            trl_diag_zh(cx->d, "报表 %s 需要检查超过 %lld 条记录;请在有索引的字段上增加筛选条件",
                        r->name, (long long)scx.max_scan);
        }
    }
    trl_expr_free(filter);
    if (!rc && r->ngroups == 0 && g.nrows == 0) {
        /* Measures without groups: one row, also over no records (count 0, sums null). */
        struct row *rw;
        rc = find_row(&g, NULL, &rw);
    }
    /* Rows: measure values for sorting, then sort and the top N. */
    struct row **rows = NULL;
    size_t nr = 0;
    struct trl_buf cell;
    trl_buf_init(&cell);
    if (!rc && g.nrows && !(rows = malloc(g.nrows * sizeof(*rows)))) rc = TRL_ENOMEM;
    for (size_t i = 0; i < g.cap && !rc; i++) {
        struct row *rw = g.slots[i];
        if (!rw) continue;
        if (!(rw->sortv = calloc(r->nm ? r->nm : 1, sizeof(*rw->sortv)))) {
            rc = TRL_ENOMEM;
            break;
        }
        for (size_t m = 0; m < r->nm && !rc; m++) {
            trl_buf_clear(&cell);
            rc = measure_json(&g, m, &rw->acc[m], &cell, &rw->sortv[m]) ? TRL_ENOMEM : 0;
        }
        rows[nr++] = rw;
    }
    if (!rc && nr > 1) {
        struct sort_ctx sc = {&g, r->nm};
        qsort_r(rows, nr, sizeof(*rows), row_cmp_r, &sc);
    }
    size_t shown = r->limit && (size_t)r->limit < nr ? (size_t)r->limit : nr;
    bool zh = run->lang && strcmp(run->lang, "zh-CN") == 0;
    if (!rc && run->csv) {
        /* UTF-8 BOM (Excel on Chinese Windows reads the encoding from it), CRLF lines. */
        rc = trl_buf_adds(out, "\xEF\xBB\xBF") ? TRL_ENOMEM : 0;
        for (size_t k = 0; k < r->ngroups + r->nm && !rc; k++) {
            const char *lab;
            if (k < r->ngroups) {
                const struct trl_field *f = trl_type_field_by_id(ty, (uint32_t)r->groups[k].col);
                lab = f ? (zh ? f->labels.zh : f->labels.en) : sys_label(r->groups[k].name, zh);
            } else {
                const struct measure *m = &r->m[k - r->ngroups];
                lab = zh && m->labels.zh[0] ? m->labels.zh
                      : m->labels.en[0]     ? m->labels.en
                                            : m->name;
            }
            rc = (k && trl_buf_addc(out, ',')) || trl_buf_add_csv(out, lab, strlen(lab))
                     ? TRL_ENOMEM
                     : 0;
        }
        if (!rc) rc = trl_buf_adds(out, "\r\n") ? TRL_ENOMEM : 0;
        for (size_t i = 0; i < shown && !rc; i++) {
            for (size_t k = 0; k < r->ngroups + r->nm && !rc; k++) {
                trl_buf_clear(&cell);
                /* Enum and state values as people read them, in the caller's language. */
                const char *lab = k < r->ngroups ? value_label(&g, k, &rows[i]->keys[k], zh) : NULL;
                if (lab && *lab) {
                    rc = (k && trl_buf_addc(out, ',')) || trl_buf_add_csv(out, lab, strlen(lab))
                             ? TRL_ENOMEM
                             : 0;
                    continue;
                }
                __int128 sv;
                rc = k < r->ngroups ? group_json(&g, k, &rows[i]->keys[k], &cell)
                                    : measure_json(&g, k - r->ngroups,
                                                   &rows[i]->acc[k - r->ngroups], &cell, &sv);
                if (rc) rc = TRL_ENOMEM;
                if (!rc && k) rc = trl_buf_addc(out, ',') ? TRL_ENOMEM : 0;
                if (!rc) rc = csv_cell(out, cell.data, cell.len);
            }
            if (!rc) rc = trl_buf_adds(out, "\r\n") ? TRL_ENOMEM : 0;
        }
    } else if (!rc) {
        rc = trl_buf_adds(out, "{\"report\":") ||
                     trl_buf_add_json_str(out, r->name, strlen(r->name)) ||
                     trl_buf_adds(out, ",\"labels\":") ||
                     labels_json(out, r->labels.en, r->labels.zh) ||
                     trl_buf_adds(out, ",\"type\":") ||
                     trl_buf_add_json_str(out, ty->name, strlen(ty->name)) || trl_buf_addc(out, ',')
                 ? TRL_ENOMEM
                 : 0;
        if (!rc) rc = columns_json(&g, out);
        if (!rc) rc = trl_buf_adds(out, ",\"rows\":[") ? TRL_ENOMEM : 0;
        for (size_t i = 0; i < shown && !rc; i++) {
            rc = trl_buf_adds(out, i ? ",[" : "[") ? TRL_ENOMEM : 0;
            for (size_t k = 0; k < r->ngroups && !rc; k++)
                rc = (k && trl_buf_addc(out, ',')) || group_json(&g, k, &rows[i]->keys[k], out)
                         ? TRL_ENOMEM
                         : 0;
            for (size_t m = 0; m < r->nm && !rc; m++) {
                __int128 sv;
                rc = ((r->ngroups || m) && trl_buf_addc(out, ',')) ||
                             measure_json(&g, m, &rows[i]->acc[m], out, &sv)
                         ? TRL_ENOMEM
                         : 0;
            }
            if (!rc) rc = trl_buf_addc(out, ']') ? TRL_ENOMEM : 0;
        }
        if (!rc)
            rc = trl_buf_printf(out,
                                "],\"total_rows\":%zu,\"source\":\"%s\",\"scanned\":%lld,"
                                "\"matched\":%llu}",
                                nr, counted ? "counters" : "scan", (long long)scanned,
                                (unsigned long long)g.matched)
                     ? TRL_ENOMEM
                     : 0;
    }
    trl_buf_free(&cell);
    free(rows);
    runner_free(&g);
    free(modes);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Stored definitions
 */
static int put_def(struct trl_txn *t, const char *kind, const char *owner_kind, const char *name,
                   const char *json, size_t n, const char *app, bool *changed, struct trl_diag *d)
{
    char *canon = trl_schema_canonical_json(json, n, d);
    if (!canon) return d->code ? d->code : TRL_ENOMEM;
    char *old = NULL, *oldapp = NULL;
    int rc = trl_meta_get(t, kind, name, &old);
    if (rc == TRL_ENOTFOUND) rc = 0;
    if (trl_meta_get(t, owner_kind, name, &oldapp) != 0) oldapp = NULL;
    if (!app) app = oldapp ? oldapp : "";
    *changed = false;
    if (!rc && !(old && oldapp && strcmp(old, canon) == 0 && strcmp(oldapp, app) == 0)) {
        rc = trl_meta_put(t, kind, name, canon, strlen(canon));
        if (!rc) rc = trl_meta_put(t, owner_kind, name, app, strlen(app));
        uint64_t ver;
        if (!rc) rc = trl_txn_seq_next(t, "schema_version", &ver);
        *changed = !rc;
    }
    free(canon);
    free(old);
    free(oldapp);
    return rc;
}

int trl_report_put(struct trl_txn *t, const struct trl_catalog *cat, const struct trl_wf_set *ws,
                   const char *name, const char *json, size_t n, const char *app, bool *changed,
                   struct trl_diag *d)
{
    *changed = false;
    struct trl_report *r = NULL;
    int rc = trl_report_parse(cat, ws, json, n, &r, d);
    if (rc) return rc;
    bool same = strcmp(r->name, name) == 0;
    trl_report_free(r);
    if (!same) {
        trl_diag_add_ferr(d, "name", "schema", "must match the name it is saved as");
        trl_diag_set(d, TRL_EVALIDATION, "name: the report is saved as '%s'", name);
        trl_diag_zh(d, "name:该报表保存的名称为“%s”", name);
        return TRL_EVALIDATION;
    }
    return put_def(t, "report", "reportapp", name, json, n, app, changed, d);
}

int trl_report_get(struct trl_txn *t, const char *name, struct trl_buf *out)
{
    char *def = NULL;
    int rc = trl_meta_get(t, "report", name, &def);
    if (!rc) rc = trl_buf_adds(out, def) ? TRL_ENOMEM : 0;
    free(def);
    return rc;
}

int trl_report_load(struct trl_txn *t, const struct trl_catalog *cat, const struct trl_wf_set *ws,
                    const char *name, struct trl_report **out, struct trl_diag *d)
{
    struct trl_buf def;
    trl_buf_init(&def);
    int rc = trl_report_get(t, name, &def);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(d, rc, "no such report");
        trl_diag_zh(d, "不存在该报表");
    }
    if (!rc) rc = trl_report_parse(cat, ws, def.data, def.len, out, d);
    trl_buf_free(&def);
    return rc;
}

int trl_report_delete(struct trl_txn *t, const char *name, struct trl_diag *d)
{
    int rc = trl_meta_del(t, "report", name);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(d, rc, "no report '%s'", name);
        trl_diag_zh(d, "不存在报表“%s”", name);
        return rc;
    }
    if (!rc) rc = trl_meta_del(t, "reportapp", name);
    if (rc == TRL_ENOTFOUND) rc = 0;
    uint64_t ver;
    if (!rc) rc = trl_txn_seq_next(t, "schema_version", &ver);
    return rc;
}

struct list_ctx {
    struct trl_txn *t;
    struct trl_buf *out;
    size_t n;
};

static int list_one(void *ud, const char *name, const char *json, size_t n)
{
    struct list_ctx *l = ud;
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "labels");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(lab, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(lab, "zh-CN");
    char *app = NULL;
    if (trl_meta_get(l->t, "reportapp", name, &app) != 0) app = NULL;
    int rc =
        trl_buf_adds(l->out, l->n++ ? ",{\"name\":" : "{\"name\":") ||
        trl_buf_add_json_str(l->out, name, strlen(name)) || trl_buf_adds(l->out, ",\"type\":") ||
        (cJSON_IsString(ty) ? trl_buf_add_json_str(l->out, ty->valuestring, strlen(ty->valuestring))
                            : trl_buf_adds(l->out, "null")) ||
        trl_buf_adds(l->out, ",\"app\":") ||
        trl_buf_add_json_str(l->out, app ? app : "", app ? strlen(app) : 0) ||
        trl_buf_adds(l->out, ",\"labels\":") ||
        labels_json(l->out, cJSON_IsString(en) ? en->valuestring : name,
                    cJSON_IsString(zh) ? zh->valuestring : "") ||
        trl_buf_addc(l->out, '}');
    free(app);
    cJSON_Delete(j);
    return rc ? TRL_ENOMEM : 0;
}

int trl_report_list(struct trl_txn *t, struct trl_buf *out)
{
    struct list_ctx l = {t, out, 0};
    int rc = trl_buf_adds(out, "{\"items\":[") ? TRL_ENOMEM : 0;
    if (!rc) rc = trl_meta_each(t, "report", list_one, &l);
    if (!rc) rc = trl_buf_adds(out, "]}") ? TRL_ENOMEM : 0;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Dashboards
 */
int trl_dashboard_put(struct trl_txn *t, const char *name, const char *json, size_t n,
                      const char *app, bool *changed, struct trl_diag *d)
{
    *changed = false;
    cJSON *j = cJSON_ParseWithLength(json, n);
    struct trl_defcheck c = {.d = d};
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return trl_diag_set(d, TRL_EJSON, "a dashboard definition is a JSON object");
    }
    static const char *const keys[] = {"name", "labels", "description", "widgets"};
    trl_def_keys(&c, j, "", keys, 4);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(nm) || strcmp(nm->valuestring, name) != 0)
        trl_def_err(&c, "name", "must be \"%s\", the name it is saved as", name);
    struct trl_labels lab = {0};
    trl_def_labels(&c, cJSON_GetObjectItemCaseSensitive(j, "labels"), "labels", &lab);
    trl_labels_free(&lab);
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(j, "widgets");
    size_t nw = 0;
    void *tmp = trl_def_array(&c, ws, "widgets", 1, 64, 1, "widgets", &nw);
    bool ok = tmp != NULL;
    free(tmp);
    size_t i = 0;
    for (const cJSON *w = ok ? ws->child : NULL; w; w = w->next, i++) {
        char p[64];
        snprintf(p, sizeof(p), "widgets[%zu]", i);
        static const char *const wkeys[] = {"title", "kind", "report", "params", "width"};
        if (!cJSON_IsObject(w)) {
            trl_def_err(&c, p, "must be an object such as {\"kind\": \"bar\", \"report\": \"x\"}");
            continue;
        }
        trl_def_keys(&c, w, p, wkeys, 5);
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(w, "kind");
        static const char *const kinds[] = {"number", "bar", "line", "pie", "table", NULL};
        bool kok = false;
        for (int k = 0; kinds[k] && cJSON_IsString(kind) && !kok; k++)
            kok = strcmp(kinds[k], kind->valuestring) == 0;
        char sub[96];
        snprintf(sub, sizeof(sub), "%s.kind", p);
        if (!kok) trl_def_err(&c, sub, "must be number, bar, line, pie or table");
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(w, "report");
        snprintf(sub, sizeof(sub), "%s.report", p);
        char *def = NULL;
        if (!cJSON_IsString(rep) || trl_meta_get(t, "report", rep->valuestring, &def) != 0)
            trl_def_err(&c, sub, "must name a stored report");
        free(def);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(w, "params");
        snprintf(sub, sizeof(sub), "%s.params", p);
        if (pr && !cJSON_IsObject(pr))
            trl_def_err(&c, sub, "must be an object of parameter values");
        for (const cJSON *e = cJSON_IsObject(pr) ? pr->child : NULL; e; e = e->next)
            if (!cJSON_IsString(e) && !cJSON_IsNumber(e) && !cJSON_IsBool(e))
                trl_def_err(&c, sub, "parameter '%s' must be a string, number or boolean",
                            e->string);
        snprintf(sub, sizeof(sub), "%s.title", p);
        struct trl_labels tl = {0};
        trl_def_labels(&c, cJSON_GetObjectItemCaseSensitive(w, "title"), sub, &tl);
        trl_labels_free(&tl);
    }
    cJSON_Delete(j);
    if (c.rc) return c.rc;
    if (c.nerr) {
        trl_diag_set(d, TRL_EVALIDATION, "the dashboard definition has %d problem(s)", c.nerr);
        trl_diag_zh(d, "仪表盘定义有 %d 处问题", c.nerr);
        return TRL_EVALIDATION;
    }
    return put_def(t, "dashboard", "dashboardapp", name, json, n, app, changed, d);
}

int trl_dashboard_run(struct trl_txn *t, const struct trl_rec_ctx *cx, const char *name,
                      const struct trl_report_run *run, struct trl_buf *out)
{
    char *def = NULL;
    int rc = trl_meta_get(t, "dashboard", name, &def);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(cx->d, rc, "no dashboard '%s'", name);
        trl_diag_zh(cx->d, "不存在仪表盘“%s”", name);
    }
    if (rc) return rc;
    cJSON *j = cJSON_Parse(def);
    free(def);
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "labels");
    char *labtxt = lab ? cJSON_PrintUnformatted(lab) : NULL;
    rc = trl_buf_adds(out, "{\"name\":") || trl_buf_add_json_str(out, name, strlen(name)) ||
                 trl_buf_adds(out, ",\"labels\":") || trl_buf_adds(out, labtxt ? labtxt : "{}") ||
                 trl_buf_adds(out, ",\"widgets\":[")
             ? TRL_ENOMEM
             : 0;
    free(labtxt);
    size_t i = 0;
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(j, "widgets");
    for (const cJSON *w = ws ? ws->child : NULL; w && !rc; w = w->next, i++) {
        /* The widget as defined, plus its data (or its problem: the others still answer). */
        char *wtxt = cJSON_PrintUnformatted(w);
        if (!wtxt) {
            rc = TRL_ENOMEM;
            break;
        }
        rc = trl_buf_adds(out, i ? "," : "") || trl_buf_add(out, wtxt, strlen(wtxt) - 1) ||
                     trl_buf_adds(out, ",\"data\":")
                 ? TRL_ENOMEM
                 : 0;
        free(wtxt);
        if (rc) break;
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(w, "report");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(w, "params");
        const char *pn[MAX_PARAMS], *pv[MAX_PARAMS];
        char numbuf[MAX_PARAMS][48];
        size_t np = 0;
        for (const cJSON *e = pr ? pr->child : NULL; e && np < MAX_PARAMS; e = e->next, np++) {
            pn[np] = e->string;
            if (cJSON_IsString(e)) {
                pv[np] = e->valuestring;
            } else {
                if (cJSON_IsBool(e))
                    snprintf(numbuf[np], sizeof(numbuf[np]), "%s",
                             cJSON_IsTrue(e) ? "true" : "false");
                else
                    snprintf(numbuf[np], sizeof(numbuf[np]), "%.15g", e->valuedouble);
                pv[np] = numbuf[np];
            }
        }
        struct trl_report_run wr = *run;
        wr.param_names = pn;
        wr.param_values = pv;
        wr.nparams = np;
        wr.csv = false;
        struct trl_buf data;
        trl_buf_init(&data);
        struct trl_diag wd;
        trl_diag_init(&wd);
        struct trl_rec_ctx wcx = *cx;
        wcx.d = &wd;
        struct trl_report *r = NULL;
        int wrc = trl_report_load(t, cx->cat, run->ws, rep->valuestring, &r, &wd);
        if (!wrc) wrc = trl_report_exec(t, &wcx, r, &wr, &data);
        trl_report_free(r);
        if (wrc == TRL_ENOMEM)
            rc = wrc;
        else if (wrc)
            rc = trl_buf_printf(out, "{\"error\":{\"status\":%d,\"code\":\"%s\",\"detail\":",
                                trl_err_status(wrc), trl_err_token(wrc)) ||
                         trl_buf_add_json_str(out, wd.message, strlen(wd.message)) ||
                         trl_buf_adds(out, "}}")
                     ? TRL_ENOMEM
                     : 0;
        else
            rc = trl_buf_add(out, data.data, data.len) ? TRL_ENOMEM : 0;
        trl_diag_reset(&wd);
        trl_buf_free(&data);
        if (!rc) rc = trl_buf_addc(out, '}') ? TRL_ENOMEM : 0;
    }
    if (!rc) rc = trl_buf_adds(out, "]}") ? TRL_ENOMEM : 0;
    cJSON_Delete(j);
    return rc;
}

struct dlist {
    struct trl_buf *out;
    size_t n;
};

static int dash_one(void *ud, const char *name, const char *json, size_t n)
{
    struct dlist *l = ud;
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "labels");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(lab, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(lab, "zh-CN");
    int rc = trl_buf_adds(l->out, l->n++ ? ",{\"name\":" : "{\"name\":") ||
             trl_buf_add_json_str(l->out, name, strlen(name)) ||
             trl_buf_adds(l->out, ",\"labels\":") ||
             labels_json(l->out, cJSON_IsString(en) ? en->valuestring : name,
                         cJSON_IsString(zh) ? zh->valuestring : "") ||
             trl_buf_printf(l->out, ",\"widgets\":%d}",
                            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "widgets")));
    cJSON_Delete(j);
    return rc ? TRL_ENOMEM : 0;
}

int trl_dashboard_list(struct trl_txn *t, struct trl_buf *out)
{
    struct dlist l = {out, 0};
    int rc = trl_buf_adds(out, "{\"items\":[") ? TRL_ENOMEM : 0;
    if (!rc) rc = trl_meta_each(t, "dashboard", dash_one, &l);
    if (!rc) rc = trl_buf_adds(out, "]}") ? TRL_ENOMEM : 0;
    return rc;
}
