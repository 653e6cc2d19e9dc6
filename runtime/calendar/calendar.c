/*
 * calendar.c — business calendars: parsing and checking a definition, and counting working time.
 *
 * A calendar is a weekly pattern (the spans of each weekday, in ms after local midnight) plus a
 * sorted list of exceptions: merged holiday ranges (no work) and make-up working days (their own
 * spans). Counting walks time in stretches of constant UTC offset (trl_tz_offset_span): inside a
 * stretch, local time is UTC plus one constant, so the working intervals of a local day are its
 * spans shifted by that constant and clipped to the stretch. That is what makes a span that
 * crosses a DST change count its real length: the stretch before the change takes the part of the
 * span before it, the stretch after takes the rest, and a repeated hour is walked twice.
 *
 * Speed: within a stretch, whole days that hold no exception are skipped seven at a time (a week
 * from any weekday holds each weekday once, so its working time is the weekly total), then one at
 * a time by their precomputed totals; only the day on which the count ends looks at its spans.
 * The exception list is entered by binary search once per stretch and then followed with a cursor.
 * Everything is integer milliseconds.
 */
#include "calendar/calendar.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS          86400000LL
#define CAL_MAX_SPANS   8
#define CAL_MAX_ENTRIES 4096
#define CAL_MAX_JSON    (1 << 20)
#define CAL_MAX_NAME    63
#define CAL_MAX_TEXT    200 /* bytes of a holiday or workday "name" */

/* The working spans of one local day. */
struct plan {
    int n;                    /* spans used */
    int32_t a[CAL_MAX_SPANS]; /* starts, ms after local midnight, ascending */
    int32_t b[CAL_MAX_SPANS]; /* ends (exclusive): a[i] < b[i] <= a[i+1], b[i] <= DAY_MS */
    int64_t total;            /* sum of b[i] - a[i] */
};

/* A run of local dates whose plan differs from the weekly pattern. */
struct excep {
    int32_t from;  /* first local date (days since 1970-01-01) */
    int32_t to;    /* last local date, inclusive */
    uint32_t plan; /* index into trl_cal.plans; 0 is the empty plan of holidays */
};

struct trl_cal {
    char *name;          /* owned definition name */
    char *label_en;      /* owned, NULL when not given */
    char *label_zh;      /* owned, NULL when not given */
    struct trl_tz *tz;   /* owned zone */
    struct plan week[7]; /* weekly pattern, Monday = 0 */
    int64_t week_ms;     /* working ms of one normal week */
    struct plan *plans;  /* owned: [0] empty (holidays), then one per make-up day */
    size_t nplans;       /* entries of plans */
    struct excep *ex;    /* owned exceptions, sorted, disjoint */
    size_t nex;          /* entries of ex */
    int64_t last_work;   /* last make-up date (INT64_MIN when none): after it a calendar
                            without weekly working time has no work left */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Monday = 0 for day numbers since 1970-01-01 (a Thursday). */
static int weekday(int64_t d)
{
    return (int)(d + 3 - 7 * floor_div(d + 3, 7));
}

/* ---------------------------------------------------------------------------------------------
 * Counting
 */

/* First exception whose last date is >= d. */
static size_t ex_seek(const struct trl_cal *c, int64_t d)
{
    size_t lo = 0, hi = c->nex;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ex[mid].to < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Plan of local date d; *xi is a cursor (first exception with to >= some date <= d). */
static const struct plan *plan_at(const struct trl_cal *c, int64_t d, size_t *xi)
{
    while (*xi < c->nex && c->ex[*xi].to < d)
        (*xi)++;
    if (*xi < c->nex && c->ex[*xi].from <= d) return &c->plans[c->ex[*xi].plan];
    return &c->week[weekday(d)];
}

/* Counts the working time in [s, e) (TRL_CAL_MIN_MS <= s < e <= TRL_CAL_MAX_MS) until `budget`
 * ms (> 0) have been counted. Returns the instant at which the budget is used up, or
 * TRL_CAL_NEVER with *sum_out = all the working time of [s, e). */
static int64_t walk(const struct trl_cal *c, int64_t s, int64_t e, int64_t budget, int64_t *sum_out)
{
    int64_t sum = 0, u = s;
    size_t hx = 0;
    while (u < e) {
        int64_t from, until;
        int64_t off = (int64_t)trl_tz_offset_span(c->tz, floor_div(u, 1000), &from, &until) * 1000;
        /* Inside a long holiday range, skip the zone's offset changes too: jump to a day before
         * its end. Offsets lie within 26 hours and change by less than a day, so every instant
         * jumped over has a local date in the range: after its first day (local time never
         * steps back a whole day) and before its end ((to + 1) days - 27 h + 26 h). */
        int64_t ld = floor_div(u + off, DAY_MS);
        while (hx < c->nex && c->ex[hx].to < ld)
            hx++;
        if (hx < c->nex && c->ex[hx].from < ld && c->plans[c->ex[hx].plan].total == 0) {
            int64_t jump = (c->ex[hx].to + 1) * DAY_MS - 27 * 3600000LL;
            if (jump > e) jump = e;
            if (jump > u + 2 * DAY_MS) {
                u = jump;
                continue;
            }
        }
        int64_t seg_end = (until >= INT64_MAX / 1000 || until * 1000 >= e) ? e : until * 1000;
        int64_t ls = u + off, le = seg_end + off; /* the stretch in local time */
        int64_t d = floor_div(ls, DAY_MS);
        size_t xi = ex_seek(c, d);
        for (; d * DAY_MS < le; d++) {
            if (c->week_ms == 0 && d > c->last_work + 2) goto done; /* no work left anywhere */
            int64_t day0 = d * DAY_MS;
            int64_t k = day0 >= ls ? floor_div(le, DAY_MS) - d : 0; /* whole days ahead */
            if (k > 0) {
                while (xi < c->nex && c->ex[xi].to < d)
                    xi++;
                int64_t plain = xi < c->nex ? c->ex[xi].from - d : k; /* before an exception */
                if (plain > k) plain = k;
                if (plain > 0 && c->week_ms == 0) {
                    d += plain;
                    k -= plain;
                } else if (plain >= 7) {
                    int64_t w = plain / 7, wmax = (budget - sum - 1) / c->week_ms;
                    if (w > wmax) w = wmax;
                    sum += w * c->week_ms;
                    d += 7 * w;
                    k -= 7 * w;
                }
                for (; k > 0; d++, k--) {
                    /* Inside a holiday range no day has work: jump to its end at once (a range
                     * may span centuries; walking it day by day costs milliseconds a call). */
                    while (xi < c->nex && c->ex[xi].to < d)
                        xi++;
                    if (xi < c->nex && c->ex[xi].from <= d && c->plans[c->ex[xi].plan].total == 0) {
                        int64_t skip = c->ex[xi].to - d + 1;
                        if (skip > k) skip = k;
                        d += skip - 1;
                        k -= skip - 1;
                        continue;
                    }
                    const struct plan *p = plan_at(c, d, &xi);
                    if (p->total >= budget - sum) break;
                    sum += p->total;
                }
                if (d * DAY_MS >= le) break;
                day0 = d * DAY_MS;
            }
            const struct plan *p = plan_at(c, d, &xi);
            for (int i = 0; i < p->n; i++) {
                int64_t x = day0 + p->a[i], y = day0 + p->b[i];
                if (x < ls) x = ls;
                if (y > le) y = le;
                if (y <= x) continue;
                if (y - x >= budget - sum) return x - off + (budget - sum);
                sum += y - x;
            }
        }
        u = seg_end;
    }
done:
    *sum_out = sum;
    return TRL_CAL_NEVER;
}

int64_t trl_cal_add(const struct trl_cal *c, int64_t start_ms, int64_t business_ms)
{
    if (business_ms <= 0) return start_ms;
    if (start_ms >= TRL_CAL_MAX_MS) return TRL_CAL_NEVER;
    if (start_ms < TRL_CAL_MIN_MS) start_ms = TRL_CAL_MIN_MS;
    int64_t sum;
    return walk(c, start_ms, TRL_CAL_MAX_MS, business_ms, &sum);
}

int64_t trl_cal_between(const struct trl_cal *c, int64_t a_ms, int64_t b_ms)
{
    if (a_ms < TRL_CAL_MIN_MS) a_ms = TRL_CAL_MIN_MS;
    if (b_ms > TRL_CAL_MAX_MS) b_ms = TRL_CAL_MAX_MS;
    if (b_ms <= a_ms) return 0;
    int64_t sum = 0;
    walk(c, a_ms, b_ms, INT64_MAX, &sum);
    return sum;
}

int64_t trl_cal_next_working(const struct trl_cal *c, int64_t at_ms)
{
    int64_t r = trl_cal_add(c, at_ms, 1);
    return r == TRL_CAL_NEVER ? r : r - 1;
}

/* ---------------------------------------------------------------------------------------------
 * Accessors and lifetime
 */
const char *trl_cal_name(const struct trl_cal *c)
{
    return c->name;
}

const char *trl_cal_label(const struct trl_cal *c, const char *lang)
{
    bool zh = lang && strcmp(lang, "zh-CN") == 0;
    const char *first = zh ? c->label_zh : c->label_en, *second = zh ? c->label_en : c->label_zh;
    return first ? first : second ? second : c->name;
}

const struct trl_tz *trl_cal_tz(const struct trl_cal *c)
{
    return c->tz;
}

void trl_cal_free(struct trl_cal *c)
{
    if (!c) return;
    free(c->name);
    free(c->label_en);
    free(c->label_zh);
    trl_tz_free(c->tz);
    free(c->plans);
    free(c->ex);
    free(c);
}

static struct trl_cal *cal_new(void)
{
    struct trl_cal *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->last_work = INT64_MIN / 2;
    c->plans = calloc(1, sizeof(*c->plans));
    if (!c->plans) {
        free(c);
        return NULL;
    }
    c->nplans = 1;
    return c;
}

int trl_cal_24x7(struct trl_cal **out)
{
    struct trl_diag scratch;
    trl_diag_init(&scratch);
    *out = NULL;
    struct trl_cal *c = cal_new();
    if (!c) return TRL_ENOMEM;
    int rc = trl_tz_load(NULL, "UTC", &c->tz, &scratch);
    trl_diag_reset(&scratch);
    c->name = strdup("24x7");
    if (rc || !c->name) {
        trl_cal_free(c);
        return TRL_ENOMEM;
    }
    for (int i = 0; i < 7; i++)
        c->week[i] = (struct plan){.n = 1, .a = {0}, .b = {(int32_t)DAY_MS}, .total = DAY_MS};
    c->week_ms = 7 * DAY_MS;
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing. Every problem becomes a field error (code "schema") named by its path, as the
 * definitions of the other modules report theirs; parsing goes on to report them all.
 */
struct chk {
    struct trl_diag *d; /* where errors go */
    int nerr;           /* errors added */
    int rc;             /* first hard error (TRL_ENOMEM) */
};

__attribute__((format(printf, 3, 4))) static void err(struct chk *k, const char *path,
                                                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (trl_diag_add_ferr(k->d, path, "schema", msg)) k->rc = TRL_ENOMEM;
    k->nerr++;
}

/* Refuses members of object j not in keys, and members given twice. */
static void check_keys(struct chk *k, const cJSON *j, const char *path, const char *const *keys,
                       size_t nkeys)
{
    for (const cJSON *m = j->child; m; m = m->next) {
        char p[200];
        snprintf(p, sizeof(p), "%s%s%s", path, *path ? "." : "", m->string);
        bool ok = false;
        for (size_t i = 0; i < nkeys && !ok; i++)
            ok = strcmp(m->string, keys[i]) == 0;
        if (!ok) {
            err(k, p, "unknown key '%s'", m->string);
            continue;
        }
        for (const cJSON *o = j->child; o != m; o = o->next) {
            if (strcmp(o->string, m->string) == 0) {
                err(k, p, "appears more than once");
                break;
            }
        }
    }
}

static bool ident(const char *s)
{
    if (!s || !*s || strlen(s) > CAL_MAX_NAME) return false;
    if (!((*s >= 'a' && *s <= 'z') || *s == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
    return true;
}

/* "HH:MM", 00:00 .. 24:00, into ms after midnight; -1 when malformed. */
static int32_t parse_hhmm(const cJSON *v)
{
    if (!cJSON_IsString(v)) return -1;
    const char *s = v->valuestring;
    if (strlen(s) != 5 || s[2] != ':') return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && !(s[i] >= '0' && s[i] <= '9')) return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m)) return -1;
    return (int32_t)((h * 60 + m) * 60000);
}

/* Spans of one day at path into p; false (with errors added) when any is wrong. */
static bool parse_spans(struct chk *k, const cJSON *j, const char *path, struct plan *p)
{
    memset(p, 0, sizeof(*p));
    if (!cJSON_IsArray(j)) {
        err(k, path, "must be a list of spans [[\"09:00\", \"12:00\"], ...]");
        return false;
    }
    int n = cJSON_GetArraySize(j);
    if (n > CAL_MAX_SPANS) {
        err(k, path, "has %d spans; at most %d per day", n, CAL_MAX_SPANS);
        return false;
    }
    bool ok = true;
    int i = 0;
    int32_t prev_end = -1;
    for (const cJSON *s = j->child; s; s = s->next, i++) {
        char sp[200];
        snprintf(sp, sizeof(sp), "%s[%d]", path, i);
        if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != 2) {
            err(k, sp, "must be a span [\"HH:MM\", \"HH:MM\"]");
            ok = false;
            prev_end = -1;
            continue;
        }
        int32_t a = parse_hhmm(s->child), b = parse_hhmm(s->child->next);
        if (a < 0 || b < 0) {
            const cJSON *bad = a < 0 ? s->child : s->child->next;
            err(k, sp, "%s %s%s%s is not a time HH:MM from 00:00 to 24:00", a < 0 ? "start" : "end",
                cJSON_IsString(bad) ? "'" : "",
                cJSON_IsString(bad) ? bad->valuestring : "(not text)",
                cJSON_IsString(bad) ? "'" : "");
            ok = false;
            prev_end = -1;
            continue;
        }
        if (a >= b) {
            err(k, sp, "ends (%s) before or when it starts (%s)", s->child->next->valuestring,
                s->child->valuestring);
            ok = false;
        } else if (a < prev_end) {
            err(k, sp, "starts at %s, before %s[%d] ends; spans must be in order without overlap",
                s->child->valuestring, path, i - 1);
            ok = false;
        }
        prev_end = b;
        if (ok) {
            p->a[p->n] = a;
            p->b[p->n++] = b;
            p->total += b - a;
        }
    }
    return ok;
}

static const char *const day_keys[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static void parse_week(struct chk *k, const cJSON *j, struct trl_cal *c)
{
    if (cJSON_IsString(j) && strcmp(j->valuestring, "24x7") == 0) {
        for (int i = 0; i < 7; i++)
            c->week[i] = (struct plan){.n = 1, .a = {0}, .b = {(int32_t)DAY_MS}, .total = DAY_MS};
    } else if (!cJSON_IsObject(j)) {
        err(k, "week", "must be an object {\"mon\": [[\"09:00\", \"18:00\"]], ...} or \"24x7\"");
        return;
    } else {
        check_keys(k, j, "week", day_keys, 7);
        for (int i = 0; i < 7; i++) {
            const cJSON *dj = cJSON_GetObjectItemCaseSensitive(j, day_keys[i]);
            char p[32];
            snprintf(p, sizeof(p), "week.%s", day_keys[i]);
            if (dj) parse_spans(k, dj, p, &c->week[i]);
        }
    }
    for (int i = 0; i < 7; i++)
        c->week_ms += c->week[i].total;
}

/* A date string at path: 1900-01-01 .. 9999-12-31. */
static bool parse_date(struct chk *k, const cJSON *v, const char *path, int32_t *out)
{
    if (!cJSON_IsString(v) || trl_date_parse(v->valuestring, strlen(v->valuestring), out) ||
        *out < trl_days_from_civil(1900, 1, 1)) {
        err(k, path, "must be a date YYYY-MM-DD from 1900-01-01 to 9999-12-31");
        return false;
    }
    return true;
}

static void check_text(struct chk *k, const cJSON *v, const char *path)
{
    if (v && (!cJSON_IsString(v) || strlen(v->valuestring) > CAL_MAX_TEXT))
        err(k, path, "must be a text of at most %d bytes", CAL_MAX_TEXT);
}

struct hol {
    int32_t from, to; /* local dates, inclusive */
    int idx;          /* position in "holidays" */
};

struct mkup {
    int32_t day;   /* local date */
    int idx;       /* position in "workdays" */
    uint32_t plan; /* index into plans */
};

static int hol_cmp(const void *x, const void *y)
{
    const struct hol *a = x, *b = y;
    return a->from != b->from ? (a->from < b->from ? -1 : 1) : a->idx - b->idx;
}

static int mkup_cmp(const void *x, const void *y)
{
    const struct mkup *a = x, *b = y;
    return a->day != b->day ? (a->day < b->day ? -1 : 1) : a->idx - b->idx;
}

static void parse_holidays(struct chk *k, const cJSON *j, struct hol *h, size_t *nh)
{
    int i = 0;
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        char p[64], q[80];
        snprintf(p, sizeof(p), "holidays[%d]", i);
        struct hol x = {.idx = i};
        if (cJSON_IsString(e)) {
            if (!parse_date(k, e, p, &x.from)) continue;
            x.to = x.from;
        } else if (cJSON_IsObject(e)) {
            static const char *const keys[] = {"date", "from", "to", "name"};
            check_keys(k, e, p, keys, 4);
            snprintf(q, sizeof(q), "%s.name", p);
            check_text(k, cJSON_GetObjectItemCaseSensitive(e, "name"), q);
            const cJSON *date = cJSON_GetObjectItemCaseSensitive(e, "date");
            const cJSON *from = cJSON_GetObjectItemCaseSensitive(e, "from");
            const cJSON *to = cJSON_GetObjectItemCaseSensitive(e, "to");
            if (date && (from || to)) {
                err(k, p, "give either \"date\" or \"from\" and \"to\", not both");
                continue;
            }
            if (date) {
                snprintf(q, sizeof(q), "%s.date", p);
                if (!parse_date(k, date, q, &x.from)) continue;
                x.to = x.from;
            } else if (!from || !to) {
                err(k, p, "needs \"date\", or \"from\" and \"to\"");
                continue;
            } else {
                snprintf(q, sizeof(q), "%s.from", p);
                bool ok = parse_date(k, from, q, &x.from);
                snprintf(q, sizeof(q), "%s.to", p);
                if (!parse_date(k, to, q, &x.to) || !ok) continue;
                if (x.to < x.from) {
                    err(k, q, "%s is before from (%s)", to->valuestring, from->valuestring);
                    continue;
                }
            }
        } else {
            err(k, p,
                "must be a date \"YYYY-MM-DD\" or {\"from\": ..., \"to\": ..., \"name\": ...}");
            continue;
        }
        h[(*nh)++] = x;
    }
}

static void parse_workdays(struct chk *k, const cJSON *j, struct trl_cal *c, struct mkup *w,
                           size_t *nw)
{
    int i = 0;
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        char p[64], q[80];
        snprintf(p, sizeof(p), "workdays[%d]", i);
        struct mkup x = {.idx = i};
        const cJSON *spans = NULL;
        if (cJSON_IsString(e)) {
            if (!parse_date(k, e, p, &x.day)) continue;
        } else if (cJSON_IsObject(e)) {
            static const char *const keys[] = {"date", "spans", "name"};
            check_keys(k, e, p, keys, 3);
            snprintf(q, sizeof(q), "%s.name", p);
            check_text(k, cJSON_GetObjectItemCaseSensitive(e, "name"), q);
            snprintf(q, sizeof(q), "%s.date", p);
            if (!parse_date(k, cJSON_GetObjectItemCaseSensitive(e, "date"), q, &x.day)) continue;
            spans = cJSON_GetObjectItemCaseSensitive(e, "spans");
        } else {
            err(k, p, "must be a date \"YYYY-MM-DD\" or {\"date\": ..., \"spans\": [...]}");
            continue;
        }
        struct plan *pl = &c->plans[c->nplans];
        if (spans) {
            snprintf(q, sizeof(q), "%s.spans", p);
            if (!parse_spans(k, spans, q, pl)) continue;
            if (pl->n == 0) {
                err(k, q, "is empty; a day without work is a holiday");
                continue;
            }
        } else if (c->week[0].n == 0) {
            err(k, p, "has no spans and Monday has none to copy");
            continue;
        } else {
            *pl = c->week[0];
        }
        x.plan = (uint32_t)c->nplans++;
        w[(*nw)++] = x;
    }
}

/* Checks holidays and make-up days against each other and builds the exception list. */
static void build_exceptions(struct chk *k, struct trl_cal *c, struct hol *h, size_t nh,
                             struct mkup *w, size_t nw)
{
    qsort(h, nh, sizeof(*h), hol_cmp);
    qsort(w, nw, sizeof(*w), mkup_cmp);
    /* Merge overlapping and adjacent holidays in place. */
    size_t m = 0;
    for (size_t i = 0; i < nh; i++) {
        if (m && h[i].from <= h[m - 1].to + 1) {
            if (h[i].to > h[m - 1].to) h[m - 1].to = h[i].to;
        } else {
            h[m++] = h[i];
        }
    }
    c->ex = calloc(m + nw + 1, sizeof(*c->ex));
    if (!c->ex) {
        k->rc = TRL_ENOMEM;
        return;
    }
    size_t hi = 0;
    for (size_t i = 0; i < nw; i++) {
        char p[80], day[16];
        snprintf(p, sizeof(p), "workdays[%d]", w[i].idx);
        trl_date_format(w[i].day, day);
        if (i && w[i].day == w[i - 1].day) {
            err(k, p, "%s is listed twice (also workdays[%d])", day, w[i - 1].idx);
            continue;
        }
        while (hi < m && h[hi].to < w[i].day)
            hi++;
        if (hi < m && h[hi].from <= w[i].day) {
            err(k, p, "%s is also a holiday", day);
            continue;
        }
        if (w[i].day > c->last_work) c->last_work = w[i].day;
    }
    if (k->nerr) return;
    size_t a = 0, b = 0;
    while (a < m || b < nw) {
        if (b >= nw || (a < m && h[a].from < w[b].day)) {
            c->ex[c->nex++] = (struct excep){.from = h[a].from, .to = h[a].to, .plan = 0};
            a++;
        } else {
            c->ex[c->nex++] = (struct excep){.from = w[b].day, .to = w[b].day, .plan = w[b].plan};
            b++;
        }
    }
}

static void parse_labels(struct chk *k, const cJSON *j, struct trl_cal *c)
{
    if (!j) return;
    if (!cJSON_IsObject(j)) {
        err(k, "labels", "must be an object {\"en\": ..., \"zh-CN\": ...}");
        return;
    }
    static const char *const keys[] = {"en", "zh-CN"};
    check_keys(k, j, "labels", keys, 2);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(j, "zh-CN");
    if (en && !cJSON_IsString(en)) err(k, "labels.en", "must be a string");
    if (zh && !cJSON_IsString(zh)) err(k, "labels.zh-CN", "must be a string");
    if (cJSON_IsString(en) && !(c->label_en = strdup(en->valuestring))) k->rc = TRL_ENOMEM;
    if (cJSON_IsString(zh) && !(c->label_zh = strdup(zh->valuestring))) k->rc = TRL_ENOMEM;
}

static void parse_root(struct chk *k, const cJSON *j, const char *zoneinfo_dir, struct trl_cal *c)
{
    static const char *const keys[] = {"name", "labels",   "timezone",
                                       "week", "holidays", "workdays"};
    check_keys(k, j, "", keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(nm) || !ident(nm->valuestring))
        err(k, "name", "must be a lower-case identifier (a-z, 0-9, _; at most 63 bytes)");
    else if (!(c->name = strdup(nm->valuestring)))
        k->rc = TRL_ENOMEM;
    parse_labels(k, cJSON_GetObjectItemCaseSensitive(j, "labels"), c);

    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(j, "timezone");
    if (!cJSON_IsString(tz)) {
        err(k, "timezone", "must name a time zone (\"Asia/Shanghai\", \"UTC\")");
    } else {
        struct trl_diag td;
        trl_diag_init(&td);
        int rc = trl_tz_load(zoneinfo_dir, tz->valuestring, &c->tz, &td);
        if (rc == TRL_ENOMEM)
            k->rc = rc;
        else if (rc)
            err(k, "timezone", "%s", td.message);
        trl_diag_reset(&td);
    }

    const cJSON *week = cJSON_GetObjectItemCaseSensitive(j, "week");
    if (!week)
        err(k, "week", "is required: the working spans of each weekday");
    else
        parse_week(k, week, c);

    const cJSON *hj = cJSON_GetObjectItemCaseSensitive(j, "holidays");
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(j, "workdays");
    if (hj && !cJSON_IsArray(hj)) {
        err(k, "holidays", "must be a list of dates and date ranges");
        hj = NULL;
    }
    if (wj && !cJSON_IsArray(wj)) {
        err(k, "workdays", "must be a list of make-up working days");
        wj = NULL;
    }
    int nh = hj ? cJSON_GetArraySize(hj) : 0, nw = wj ? cJSON_GetArraySize(wj) : 0;
    if (nh + nw > CAL_MAX_ENTRIES) {
        err(k, nh > CAL_MAX_ENTRIES ? "holidays" : "workdays",
            "holidays and workdays hold %d entries together; at most %d", nh + nw, CAL_MAX_ENTRIES);
        return;
    }
    struct hol *h = calloc((size_t)nh + 1, sizeof(*h));
    struct mkup *w = calloc((size_t)nw + 1, sizeof(*w));
    struct plan *plans = realloc(c->plans, ((size_t)nw + 1) * sizeof(*plans));
    if (plans) c->plans = plans;
    if (!h || !w || !plans) {
        k->rc = TRL_ENOMEM;
    } else {
        size_t hn = 0, wn = 0;
        if (hj) parse_holidays(k, hj, h, &hn);
        if (wj) parse_workdays(k, wj, c, w, &wn);
        if (!k->rc) build_exceptions(k, c, h, hn, w, wn);
        if (week && c->week_ms == 0 && wn == 0 && !k->nerr)
            err(k, "week", "has no working time: give at least one weekday a span");
    }
    free(h);
    free(w);
}

/* True when only JSON whitespace is left in [p, end). */
static bool only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return false;
    return true;
}

int trl_cal_parse(const char *json, size_t n, const char *zoneinfo_dir, struct trl_cal **out,
                  struct trl_diag *d)
{
    *out = NULL;
    if (n > CAL_MAX_JSON) {
        trl_diag_set(d, TRL_ETOOBIG, "a calendar definition is at most 1 MiB");
        trl_diag_zh(d, "日历定义不能超过 1 MiB");
        return TRL_ETOOBIG;
    }
    const char *end = NULL;
    cJSON *j = NULL;
    if (json && n && trl_utf8_valid(json, n) && !memchr(json, 0, n))
        j = cJSON_ParseWithLengthOpts(json, n, &end, false);
    if (!j || !end || !only_space(end, json + n)) {
        cJSON_Delete(j);
        trl_diag_set(d, TRL_EJSON, "the calendar definition is not valid JSON");
        trl_diag_zh(d, "日历定义不是有效的 JSON");
        return TRL_EJSON;
    }
    struct chk k = {.d = d};
    struct trl_cal *c = cal_new();
    if (!c) {
        cJSON_Delete(j);
        return TRL_ENOMEM;
    }
    if (!cJSON_IsObject(j))
        err(&k, "", "a calendar definition is a JSON object");
    else
        parse_root(&k, j, zoneinfo_dir, c);
    cJSON_Delete(j);
    if (k.rc || k.nerr) {
        trl_cal_free(c);
        if (k.rc) return k.rc;
        trl_diag_set(d, TRL_EVALIDATION,
                     "the calendar definition has %d error(s); the first: %s: %s", k.nerr,
                     d->ferrs[0].field, d->ferrs[0].detail);
        trl_diag_zh(d, "日历定义有 %d 处错误;第一处:%s:%s", k.nerr, d->ferrs[0].field,
                    d->ferrs[0].detail);
        return TRL_EVALIDATION;
    }
    *out = c;
    return 0;
}
