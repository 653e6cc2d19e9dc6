/*
 * tz.c — time zones from TZif files (RFC 8536) and their POSIX TZ footer rules.
 *
 * A loaded zone keeps only what the calendar needs: the instants at which the UTC offset changes
 * (transitions that only rename the zone or flip isdst without changing the offset are dropped)
 * with the offset from each on, the offset before the first one, and the footer rule that governs
 * every instant from the last transition on. Version 1 files use their 32-bit block; later
 * versions skip it and read the 64-bit block and the footer. Leap-second zones ("right/...") are
 * refused: their timestamps are not POSIX seconds.
 *
 * A footer rule gives the transitions of any year directly, so offsets are computed from the
 * year's rule instants (the year before and after too, so that rules whose times spill over a new
 * year, and southern-hemisphere rules whose DST spans the new year, come out right).
 */
#include "calendar/calendar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_MAX_NAME    64
#define TZ_MAX_FILE    (1 << 20)
#define TZ_MAX_OFF     93600 /* |UT offset| accepted from a file: 26 hours (RFC 8536 §3.2) */
/* Footer arithmetic clamps instants to +-10^13 s (about 317,000 years) so day numbers fit int32. */
#define TZ_CLAMP 10000000000000LL

/* A rule date of a POSIX TZ string: Jn, n or Mm.w.d, and the local time of the change. */
struct tz_date {
    char kind;    /* 'J' (1..365, Feb 29 never counted), 'D' (0..365), 'M' (month.week.day) */
    int n;        /* J and D: the day number */
    int m, w, wd; /* M: month 1..12, week 1..5 (5 = last), weekday 0..6 (0 = Sunday) */
    int32_t time; /* seconds after local midnight (-167 h .. 167 h), default 02:00 */
};

/* The footer: standard offset and, when the zone observes DST, the DST offset and its rules. */
struct tz_rule {
    int32_t std;          /* standard offset, seconds east */
    int32_t dst;          /* DST offset, seconds east (== std without DST) */
    bool has_dst;         /* start and end are meaningful */
    struct tz_date start; /* change to DST, in standard local time */
    struct tz_date end;   /* change back, in DST local time */
};

struct trl_tz {
    char name[TZ_MAX_NAME + 1]; /* as given to trl_tz_load */
    int64_t *at;                /* owned: instants (UTC s, ascending) where the offset changes */
    int32_t *off;               /* owned: off[i] holds from at[i] on */
    size_t n;                   /* entries of at and off */
    int32_t off0;               /* offset before at[0] (time type 0 of the file) */
    int64_t last;               /* the file's last transition (dropped or not), INT64_MIN if none */
    bool has_rule;              /* rule governs instants >= last (all instants without one) */
    struct tz_rule rule;        /* the footer */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* ---------------------------------------------------------------------------------------------
 * POSIX TZ strings (the footer): "CET-1CEST,M3.5.0,M10.5.0/3", "<+08>-8", "EST5EDT,0/0,J365/25".
 */
static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A zone abbreviation: three or more letters, or <...> with letters, digits, '+' and '-'. */
static const char *rule_name(const char *s)
{
    const char *p = s;
    if (*p == '<') {
        p++;
        while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-')
            p++;
        if (*p != '>' || p - s - 1 < 3) return NULL;
        return p + 1;
    }
    while (is_alpha(*p))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *rule_num(const char *s, int maxdig, int *out)
{
    int v = 0, k = 0;
    while (k < maxdig && is_digit(s[k]))
        v = v * 10 + (s[k++] - '0');
    if (k == 0) return NULL;
    *out = v;
    return s + k;
}

/* [+-]hh[:mm[:ss]] with hours up to maxh; *out in seconds, sign applied. */
static const char *rule_hms(const char *s, int maxh, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    if (!(s = rule_num(s, 3, &h)) || h > maxh) return NULL;
    if (*s == ':') {
        if (!(s = rule_num(s + 1, 2, &m)) || m > 59) return NULL;
        if (*s == ':' && (!(s = rule_num(s + 1, 2, &sec)) || sec > 59)) return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *rule_date(const char *s, struct tz_date *r)
{
    r->time = 7200;
    if (*s == 'J') {
        r->kind = 'J';
        if (!(s = rule_num(s + 1, 3, &r->n)) || r->n < 1 || r->n > 365) return NULL;
    } else if (*s == 'M') {
        r->kind = 'M';
        if (!(s = rule_num(s + 1, 2, &r->m)) || r->m < 1 || r->m > 12 || *s != '.') return NULL;
        if (!(s = rule_num(s + 1, 1, &r->w)) || r->w < 1 || r->w > 5 || *s != '.') return NULL;
        if (!(s = rule_num(s + 1, 1, &r->wd)) || r->wd > 6) return NULL;
    } else {
        r->kind = 'D';
        if (!(s = rule_num(s, 3, &r->n)) || r->n > 365) return NULL;
    }
    if (*s == '/' && !(s = rule_hms(s + 1, 167, &r->time))) return NULL;
    return s;
}

/* Parses a whole footer; false when it is not a POSIX TZ string this reader understands (a DST
 * zone must carry its rules, as RFC 8536 footers do). */
static bool rule_parse(const char *s, struct tz_rule *r)
{
    int32_t west;
    memset(r, 0, sizeof(*r));
    if (!(s = rule_name(s)) || !(s = rule_hms(s, 24, &west))) return false;
    r->std = r->dst = -west;
    if (!*s) return true;
    if (!(s = rule_name(s))) return false;
    r->has_dst = true;
    r->dst = r->std + 3600;
    if (*s && *s != ',') {
        if (!(s = rule_hms(s, 24, &west))) return false;
        r->dst = -west;
    }
    if (*s != ',' || !(s = rule_date(s + 1, &r->start))) return false;
    if (*s != ',' || !(s = rule_date(s + 1, &r->end))) return false;
    return *s == 0;
}

/* Local date (days since the epoch) on which rule date r falls in year y. */
static int64_t rule_day(const struct tz_date *r, int64_t y)
{
    int64_t jan1 = trl_days_from_civil(y, 1, 1);
    if (r->kind == 'J') return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    if (r->kind == 'D') return jan1 + r->n;
    int64_t first = trl_days_from_civil(y, (unsigned)r->m, 1);
    int64_t wd1 = first + 4 - 7 * floor_div(first + 4, 7); /* weekday of the 1st, 0 = Sunday */
    int64_t day = first + (r->wd - wd1 + 7) % 7 + 7 * (r->w - 1);
    while (day >= first + days_in_month(y, r->m))
        day -= 7;
    return day;
}

/* Offset and span at t under the footer rule alone. */
static int32_t rule_span(const struct tz_rule *r, int64_t t, int64_t *from, int64_t *until)
{
    *from = INT64_MIN;
    *until = INT64_MAX;
    if (!r->has_dst) return r->std;
    if (t > TZ_CLAMP) t = TZ_CLAMP;
    if (t < -TZ_CLAMP) t = -TZ_CLAMP;
    int64_t y;
    unsigned mo, dd;
    trl_civil_from_days((int32_t)floor_div(t + r->std, 86400), &y, &mo, &dd);
    /* The changes of the years around t, in order; a stable sort keeps "end of year y" before
     * "start of year y+1" when they coincide (a zone on DST all year), so DST wins the tie. */
    int64_t at[6];
    int32_t off[6];
    int k = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        at[k] = rule_day(&r->start, yy) * 86400 + r->start.time - r->std;
        off[k++] = r->dst;
        at[k] = rule_day(&r->end, yy) * 86400 + r->end.time - r->dst;
        off[k++] = r->std;
    }
    for (int i = 1; i < 6; i++) {
        for (int j = i; j > 0 && at[j - 1] > at[j]; j--) {
            int64_t ta = at[j];
            at[j] = at[j - 1];
            at[j - 1] = ta;
            int32_t to = off[j];
            off[j] = off[j - 1];
            off[j - 1] = to;
        }
    }
    int last = -1;
    for (int i = 0; i < 6 && at[i] <= t; i++)
        last = i;
    /* t lies in year y (standard local time), so the year before always has a change <= t. */
    if (last < 0) return r->std;
    *from = at[last];
    if (last + 1 < 6) *until = at[last + 1];
    return off[last];
}

/* ---------------------------------------------------------------------------------------------
 * Lookups
 */
int32_t trl_tz_offset_span(const struct trl_tz *tz, int64_t t, int64_t *from, int64_t *until)
{
    int64_t f = INT64_MIN, u = INT64_MAX;
    int32_t o;
    bool footer = tz->has_rule && t >= tz->last;
    if (footer) {
        o = rule_span(&tz->rule, t, &f, &u);
        if (f < tz->last) f = tz->last;
    } else if (tz->n == 0 || t < tz->at[0]) {
        o = tz->off0;
        if (tz->n) u = tz->at[0];
    } else {
        size_t lo = 0, hi = tz->n; /* at[lo] <= t, and t < at[hi] when hi < n */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->at[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        o = tz->off[lo];
        f = tz->at[lo];
        if (hi < tz->n) u = tz->at[hi];
    }
    if (!footer && tz->has_rule && u > tz->last) {
        /* The rule takes over at the last transition; the stretch goes on when it keeps o. */
        int64_t rf, ru;
        u = rule_span(&tz->rule, tz->last, &rf, &ru) == o ? ru : tz->last;
    }
    if (from) *from = f;
    if (until) *until = u;
    return o;
}

int32_t trl_tz_offset(const struct trl_tz *tz, int64_t utc_s)
{
    return trl_tz_offset_span(tz, utc_s, NULL, NULL);
}

int64_t trl_tz_to_utc(const struct trl_tz *tz, int64_t local)
{
    /* Every solution u of u + offset(u) == local lies in [local - TZ_MAX_OFF, local + TZ_MAX_OFF]:
     * walk the constant-offset stretches over that window in order. The first stretch holding
     * its solution gives the earliest instant; when none does, local falls in a gap and the
     * offset before the first gap applies. */
    int64_t t = local - TZ_MAX_OFF, gap = INT64_MIN, prev_until = INT64_MIN;
    int32_t prev_off = 0;
    for (int i = 0; i < 64 && t <= local + TZ_MAX_OFF; i++) {
        int64_t from, until;
        int32_t o = trl_tz_offset_span(tz, t, &from, &until);
        int64_t u = local - o;
        if (u >= from && u < until) return u;
        if (gap == INT64_MIN && i > 0 && o > prev_off && local >= prev_until + prev_off &&
            local < from + o)
            gap = local - prev_off;
        if (until == INT64_MAX) break;
        prev_until = until;
        prev_off = o;
        t = until;
    }
    return gap != INT64_MIN ? gap : local - trl_tz_offset(tz, local);
}

const char *trl_tz_name(const struct trl_tz *tz)
{
    return tz->name;
}

/* ---------------------------------------------------------------------------------------------
 * Loading
 */
static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TZ_MAX_NAME || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") ||
        strstr(s, "//"))
        return false;
    for (const char *p = s; *p; p++)
        if (!(is_alpha(*p) || is_digit(*p) || *p == '_' || *p == '-' || *p == '+' || *p == '/'))
            return false;
    return true;
}

void trl_tz_free(struct trl_tz *tz)
{
    if (!tz) return;
    free(tz->at);
    free(tz->off);
    free(tz);
}

static int corrupt(struct trl_diag *d, const char *path, const char *why)
{
    trl_diag_set(d, TRL_ECORRUPT, "time zone file %s is damaged: %s", path, why);
    trl_diag_zh(d, "时区文件 %s 已损坏:%s", path, why);
    return TRL_ECORRUPT;
}

static int unknown_zone(struct trl_diag *d, const char *name, const char *why)
{
    trl_diag_set(d, TRL_EVALIDATION, "unknown time zone '%s'%s%s", name, *why ? ": " : "", why);
    trl_diag_zh(d, "未知的时区“%s”", name);
    return TRL_EVALIDATION;
}

struct tzif_counts {
    uint64_t isut, isstd, leap, time, type, chars; /* the six header counts */
};

static void read_counts(const unsigned char *h, struct tzif_counts *c)
{
    c->isut = trl_get_u32be(h + 20);
    c->isstd = trl_get_u32be(h + 24);
    c->leap = trl_get_u32be(h + 28);
    c->time = trl_get_u32be(h + 32);
    c->type = trl_get_u32be(h + 36);
    c->chars = trl_get_u32be(h + 40);
}

static uint64_t block_size(const struct tzif_counts *c, unsigned tsize)
{
    return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd +
           c->isut;
}

/* Reads the data block at p (tsize 4 or 8 bytes per time) into tz. */
static int read_block(const unsigned char *p, const struct tzif_counts *c, unsigned tsize,
                      struct trl_tz *tz, const char *name, const char *path, struct trl_diag *d)
{
    if (c->type == 0 || c->type > 256 || c->chars == 0) return corrupt(d, path, "no time types");
    if (c->leap) return unknown_zone(d, name, "zones with leap seconds are not supported");
    if ((c->isstd && c->isstd != c->type) || (c->isut && c->isut != c->type))
        return corrupt(d, path, "indicator counts differ from the type count");
    const unsigned char *times = p, *idx = p + c->time * tsize, *types = idx + c->time;
    int32_t utoff[256];
    for (uint64_t i = 0; i < c->type; i++) {
        const unsigned char *e = types + i * 6;
        utoff[i] = (int32_t)trl_get_u32be(e);
        if (utoff[i] < -TZ_MAX_OFF || utoff[i] > TZ_MAX_OFF || e[4] > 1 || e[5] >= c->chars)
            return corrupt(d, path, "bad time type");
    }
    tz->off0 = utoff[0];
    if (c->time) {
        tz->at = malloc(c->time * sizeof(*tz->at));
        tz->off = malloc(c->time * sizeof(*tz->off));
        if (!tz->at || !tz->off) return TRL_ENOMEM;
    }
    int32_t prev = tz->off0;
    int64_t last = INT64_MIN;
    tz->last = INT64_MIN;
    for (uint64_t i = 0; i < c->time; i++) {
        int64_t t = tsize == 8 ? (int64_t)trl_get_u64be(times + i * 8)
                               : (int64_t)(int32_t)trl_get_u32be(times + i * 4);
        if (i && t <= last) return corrupt(d, path, "transition times are not ascending");
        if (idx[i] >= c->type) return corrupt(d, path, "transition names a missing type");
        last = t;
        if (utoff[idx[i]] == prev) continue;
        prev = utoff[idx[i]];
        tz->at[tz->n] = t;
        tz->off[tz->n++] = prev;
    }
    tz->last = last;
    return 0;
}

static int parse_tzif(const unsigned char *p, size_t n, struct trl_tz *tz, const char *name,
                      const char *path, struct trl_diag *d)
{
    struct tzif_counts c;
    if (n < 44 || memcmp(p, "TZif", 4) != 0) return unknown_zone(d, name, "not a TZif file");
    unsigned version = p[4];
    read_counts(p, &c);
    uint64_t v1 = block_size(&c, 4);
    if (v1 > n - 44) return corrupt(d, path, "truncated");
    if (version == 0) return read_block(p + 44, &c, 4, tz, name, path, d);
    const unsigned char *h2 = p + 44 + v1;
    size_t left = n - 44 - (size_t)v1;
    if (left < 44 || memcmp(h2, "TZif", 4) != 0) return corrupt(d, path, "no version 2 header");
    read_counts(h2, &c);
    uint64_t v2 = block_size(&c, 8);
    if (v2 > left - 44) return corrupt(d, path, "truncated");
    int rc = read_block(h2 + 44, &c, 8, tz, name, path, d);
    if (rc) return rc;
    const char *f = (const char *)h2 + 44 + v2, *end = (const char *)p + n;
    if (f >= end || *f != '\n') return corrupt(d, path, "no footer");
    const char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
    if (!nl || nl - f - 1 > 255) return corrupt(d, path, "unterminated footer");
    if (nl == f + 1) return 0; /* empty footer: the last offset stays */
    char footer[256];
    memcpy(footer, f + 1, (size_t)(nl - f - 1));
    footer[nl - f - 1] = 0;
    if (!rule_parse(footer, &tz->rule)) return corrupt(d, path, "footer is not a POSIX TZ rule");
    tz->has_rule = true;
    return 0;
}

int trl_tz_load(const char *zoneinfo_dir, const char *name, struct trl_tz **out, struct trl_diag *d)
{
    *out = NULL;
    if (!name || !name_valid(name)) {
        trl_diag_set(d, TRL_EVALIDATION,
                     "'%.80s' is not a time zone name (letters, digits, _ - + and / between "
                     "parts, at most %d bytes)",
                     name ? name : "", TZ_MAX_NAME);
        trl_diag_zh(d, "“%.80s”不是有效的时区名称", name ? name : "");
        return TRL_EVALIDATION;
    }
    struct trl_tz *tz = calloc(1, sizeof(*tz));
    if (!tz) return TRL_ENOMEM;
    strcpy(tz->name, name);
    tz->last = INT64_MIN;
    if (strcmp(name, "UTC") == 0) {
        *out = tz;
        return 0;
    }
    char path[4096];
    int len =
        snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir ? zoneinfo_dir : TZ_DEFAULT_DIR, name);
    char *buf = NULL;
    size_t n = 0;
    int rc;
    if (len < 0 || (size_t)len >= sizeof(path)) {
        rc = unknown_zone(d, name, "zoneinfo path too long");
        goto out;
    }
    rc = trl_read_file(path, TZ_MAX_FILE, &buf, &n);
    if (rc == TRL_EIO && (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)) {
        rc = unknown_zone(d, name, "");
    } else if (rc == TRL_EIO) {
        int e = errno;
        trl_diag_set(d, TRL_EIO, "cannot read time zone file %s: %s", path, strerror(e));
        trl_diag_zh(d, "无法读取时区文件 %s:%s", path, strerror(e));
        d->cause = e;
    } else if (rc == TRL_ETOOBIG) {
        rc = corrupt(d, path, "larger than 1 MiB");
    } else if (rc == 0) {
        rc = parse_tzif((const unsigned char *)buf, n, tz, name, path, d);
    }
out:
    free(buf);
    if (rc) {
        trl_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}
