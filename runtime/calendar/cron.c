/*
 * cron.c — cron expressions for scheduled jobs: parsing the five fields (Vixie cron / POSIX
 * syntax, plus the @yearly ... @hourly macros) and finding the next instant one matches.
 *
 * A parsed expression is one bit set per field (minute, hour, day of month, month, day of week)
 * and two flags that record whether the day-of-month and day-of-week fields start with '*':
 * as in Vixie cron, when neither does, a day matches if either field matches, otherwise both
 * must. Expressions that can match no day at all ("0 0 30 2 *") are found at parse time.
 *
 * Finding the next firing walks stretches of constant UTC offset (trl_tz_offset_span). Inside a
 * stretch local time is UTC plus a constant, so the search runs on local minutes: a month not in
 * the set is skipped whole, a day that does not match is skipped, then the first matching hour
 * and minute come from the bit sets. The DST rules are stated on the stretch boundaries: when
 * the clock jumps forward, the local minutes it skips fire once, at the first instant of the new
 * stretch; when it jumps back, the local minutes already seen before the change do not fire
 * again. No step is smaller than a minute that cannot match, so a call costs a few hundred
 * steps at most, even for an expression that matches once in 28 years.
 */
#include "calendar/calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRON_MAX_LEN 200
#define CRON_NONE    INT64_MAX /* first_match found nothing */
#define MIN_PER_DAY  1440
/* The walk stays within these UTC seconds, so local minute arithmetic cannot overflow. */
#define CRON_LO_S (TRL_CAL_MIN_MS / 1000 - 2 * 86400)
#define CRON_HI_S (TRL_CAL_MAX_MS / 1000 + 2 * 86400)

struct trl_cron {
    uint64_t minute; /* bit m set: minute m (0-59) matches */
    uint32_t hour;   /* bit h: hour h (0-23) */
    uint32_t dom;    /* bit d: day of month d (1-31) */
    uint32_t month;  /* bit m: month m (1-12) */
    uint32_t dow;    /* bit w: weekday w, Sunday = 0 (0-6; a 7 in the text is folded into 0) */
    bool dom_star;   /* the day-of-month field starts with '*' */
    bool dow_star;   /* the day-of-week field starts with '*' */
    bool never;      /* no day of any year matches */
};

/* What one of the five fields accepts. */
struct field_spec {
    int no;                   /* position, 1-5, as named in messages */
    const char *en;           /* English name in messages */
    const char *zh;           /* Chinese name in messages */
    int lo, hi;               /* accepted values ('*' means lo-hi) */
    int maxstep;              /* largest step */
    const char *const *names; /* three-letter names of the values names_base..., or NULL */
    int names_base;           /* value of names[0] */
    int nnames;               /* entries of names */
    const char *names_en;     /* "month name (JAN-DEC)" */
    const char *names_zh;     /* the same in Chinese */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct field_spec fields[5] = {
    {1, "minute", "分钟", 0, 59, 60, NULL, 0, 0, NULL, NULL},
    {2, "hour", "小时", 0, 23, 24, NULL, 0, 0, NULL, NULL},
    {3, "day-of-month", "日", 1, 31, 31, NULL, 0, 0, NULL, NULL},
    {4, "month", "月", 1, 12, 12, month_names, 1, 12, "a month name (JAN-DEC)",
     "月份名称(JAN-DEC)"},
    {5, "day-of-week", "星期", 0, 7, 7, day_names, 0, 7, "a weekday name (SUN-SAT)",
     "星期名称(SUN-SAT)"},
};

/* The macros and the fields they stand for. */
static const struct {
    const char *name;
    const char *fields;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return -floor_div(-a, b);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Sunday = 0 for day numbers since 1970-01-01 (a Thursday). */
static unsigned weekday(int64_t z)
{
    return (unsigned)(z + 4 - 7 * floor_div(z + 4, 7));
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* ---------------------------------------------------------------------------------------------
 * Messages
 */

/* Copies s[0..n) into out (size 64) for a message: printable ASCII as is, other bytes as \xNN,
 * cut with "..." when long. */
static const char *quote(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (o + 8 > 64) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, 64 - o, "\\x%02X", ch);
    }
    out[o] = 0;
    return out;
}

static int field_error(struct trl_diag *d, const struct field_spec *f, const char *en,
                       const char *zh)
{
    trl_diag_set(d, TRL_EVALIDATION, "cron field %d (%s): %s", f->no, f->en, en);
    trl_diag_zh(d, "cron 表达式第 %d 个字段(%s):%s", f->no, f->zh, zh);
    return TRL_EVALIDATION;
}

/* The error for a character that cannot stand at item[p]. */
static int bad_char(struct trl_diag *d, const struct field_spec *f, const char *item, size_t n,
                    size_t p)
{
    char q[64], c[64], en[256], zh[256];
    quote(q, item, n);
    if (p >= n) {
        snprintf(en, sizeof(en), "'%s' is missing a number at its end", q);
        snprintf(zh, sizeof(zh), "'%s' 末尾缺少数字", q);
        return field_error(d, f, en, zh);
    }
    char ch = upper(item[p]);
    quote(c, item + p, 1);
    if (ch == '?' || ch == 'L' || ch == 'W' || ch == '#') {
        snprintf(en, sizeof(en),
                 "'%s' in '%s' is not supported (Quartz syntax; standard cron has no ?, L, W or "
                 "#)%s",
                 c, q, ch == '?' ? "; use *" : "");
        snprintf(zh, sizeof(zh), "不支持 '%s' 中的 '%s'(Quartz 语法;标准 cron 没有 ?、L、W、#)%s",
                 q, c, ch == '?' ? ";请用 *" : "");
        return field_error(d, f, en, zh);
    }
    snprintf(en, sizeof(en), "unexpected '%s' in '%s'", c, q);
    snprintf(zh, sizeof(zh), "'%s' 中有意外的字符 '%s'", q, c);
    return field_error(d, f, en, zh);
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 */

/* Reads a number of at most 4 significant digits from s[*p..n) into *v (a longer one reads as
 * 10000, out of every range). */
static void read_digits(const char *s, size_t n, size_t *p, int *v)
{
    int x = 0;
    while (*p < n && is_digit(s[*p])) {
        x = x * 10 + (s[*p] - '0');
        if (x > 10000) x = 10000;
        (*p)++;
    }
    *v = x;
}

/* Reads a value (a number or a name) of field f at item[*p]. */
static int read_value(struct trl_diag *d, const struct field_spec *f, const char *item, size_t n,
                      size_t *p, int *v)
{
    char q[64], en[256], zh[256];
    size_t s = *p;
    if (s < n && is_digit(item[s])) {
        read_digits(item, n, p, v);
        if (*v < f->lo || *v > f->hi) {
            quote(q, item + s, *p - s);
            snprintf(en, sizeof(en), "%s is out of range %d-%d", q, f->lo, f->hi);
            snprintf(zh, sizeof(zh), "%s 超出范围 %d-%d", q, f->lo, f->hi);
            return field_error(d, f, en, zh);
        }
        return 0;
    }
    if (s < n && is_alpha(item[s])) {
        size_t e = s;
        while (e < n && is_alpha(item[e]))
            e++;
        *p = e;
        if (f->names && e - s == 3)
            for (int i = 0; i < f->nnames; i++)
                if (upper(item[s]) == f->names[i][0] && upper(item[s + 1]) == f->names[i][1] &&
                    upper(item[s + 2]) == f->names[i][2]) {
                    *v = f->names_base + i;
                    return 0;
                }
        bool quartz = true; /* L, W, LW */
        for (size_t i = s; i < e; i++)
            if (upper(item[i]) != 'L' && upper(item[i]) != 'W') quartz = false;
        if (quartz && e - s <= 2) return bad_char(d, f, item, n, s);
        quote(q, item + s, e - s);
        if (f->names) {
            snprintf(en, sizeof(en), "'%s' is not %s", q, f->names_en);
            snprintf(zh, sizeof(zh), "'%s' 不是%s", q, f->names_zh);
        } else {
            snprintf(en, sizeof(en),
                     "'%s' is not a number (names are allowed only for months and "
                     "weekdays)",
                     q);
            snprintf(zh, sizeof(zh), "'%s' 不是数字(只有月和星期字段可用名称)", q);
        }
        return field_error(d, f, en, zh);
    }
    return bad_char(d, f, item, n, s);
}

/* Parses one list item ("*", "*\/n", "a", "a-b", "a-b/n") into *bits. */
static int parse_item(struct trl_diag *d, const struct field_spec *f, const char *item, size_t n,
                      uint64_t *bits)
{
    char q[64], qs[64], en[256], zh[256];
    int a, b, step = 1, rc;
    size_t p = 0;
    bool range = true;
    if (item[0] == '*') {
        a = f->lo;
        b = f->hi;
        p = 1;
    } else {
        if ((rc = read_value(d, f, item, n, &p, &a))) return rc;
        if (p < n && item[p] == '-') {
            p++;
            if ((rc = read_value(d, f, item, n, &p, &b))) return rc;
            if (b < a) {
                quote(q, item, p);
                snprintf(en, sizeof(en), "range '%s' is reversed (%d > %d)%s", q, a, b,
                         f->no == 5 ? "; Sunday may be written 7" : "");
                snprintf(zh, sizeof(zh), "范围 '%s' 起点大于终点(%d > %d)%s", q, a, b,
                         f->no == 5 ? ";星期日也可写作 7" : "");
                return field_error(d, f, en, zh);
            }
        } else {
            b = a;
            range = false;
        }
    }
    if (p < n && item[p] == '/') {
        quote(q, item, n);
        if (!range) {
            snprintf(en, sizeof(en), "'%s': a step needs a range, as in */n or a-b/n", q);
            snprintf(zh, sizeof(zh), "'%s':步长只能用于范围,如 */n 或 a-b/n", q);
            return field_error(d, f, en, zh);
        }
        size_t ss = ++p;
        if (p >= n || !is_digit(item[p])) return bad_char(d, f, item, n, p);
        read_digits(item, n, &p, &step);
        if (step < 1 || step > f->maxstep) {
            quote(qs, item + ss, p - ss);
            snprintf(en, sizeof(en), "step %s in '%s' is out of range 1-%d", qs, q, f->maxstep);
            snprintf(zh, sizeof(zh), "'%s' 的步长 %s 超出范围 1-%d", q, qs, f->maxstep);
            return field_error(d, f, en, zh);
        }
    }
    if (p != n) return bad_char(d, f, item, n, p);
    for (int v = a; v <= b; v += step)
        *bits |= 1ULL << v;
    return 0;
}

/* Parses field f, the text s[0..n) (non-empty, no white space), into *bits. */
static int parse_field(struct trl_diag *d, const struct field_spec *f, const char *s, size_t n,
                       uint64_t *bits)
{
    *bits = 0;
    for (size_t i = 0;;) {
        size_t e = i;
        while (e < n && s[e] != ',')
            e++;
        if (e == i) {
            char q[64], en[256], zh[256];
            quote(q, s, n);
            snprintf(en, sizeof(en), "empty list element in '%s'", q);
            snprintf(zh, sizeof(zh), "'%s' 中有空的列表项", q);
            return field_error(d, f, en, zh);
        }
        int rc = parse_item(d, f, s + i, e - i, bits);
        if (rc) return rc;
        if (e == n) break;
        i = e + 1;
    }
    return 0;
}

/* True when some day of some year can match: a month in the set has a day of the set (February
 * counting 29), or the day-of-week field alone can match (both fields restricted). */
static bool can_match(const struct trl_cron *c)
{
    if (!c->dom_star && !c->dow_star) return true;
    for (unsigned m = 1; m <= 12; m++)
        if (c->month >> m & 1)
            for (unsigned dd = 1; dd <= days_in_month(2000, m); dd++)
                if (c->dom >> dd & 1) return true;
    return false;
}

int trl_cron_parse(const char *expr, struct trl_cron **out, struct trl_diag *d)
{
    *out = NULL;
    if (!expr) {
        trl_diag_set(d, TRL_EVALIDATION, "cron expression is missing");
        trl_diag_zh(d, "缺少 cron 表达式");
        return TRL_EVALIDATION;
    }
    size_t len = strlen(expr);
    if (len > CRON_MAX_LEN) {
        trl_diag_set(d, TRL_EVALIDATION, "cron expression is %zu bytes; at most %d are allowed",
                     len, CRON_MAX_LEN);
        trl_diag_zh(d, "cron 表达式长 %zu 字节,最多 %d 字节", len, CRON_MAX_LEN);
        return TRL_EVALIDATION;
    }
    const char *s = expr, *end = expr + len;
    while (s < end && is_space(*s))
        s++;
    while (end > s && is_space(end[-1]))
        end--;
    if (s == end) {
        trl_diag_set(d, TRL_EVALIDATION, "cron expression is empty");
        trl_diag_zh(d, "cron 表达式为空");
        return TRL_EVALIDATION;
    }
    if (*s == '@') {
        const char *text = NULL;
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]) && !text; i++) {
            size_t k = strlen(macros[i].name);
            if ((size_t)(end - s) != k) continue;
            size_t j = 0;
            while (j < k && upper(s[j]) == upper(macros[i].name[j]))
                j++;
            if (j == k) text = macros[i].fields;
        }
        if (!text) {
            char q[64];
            quote(q, s, (size_t)(end - s));
            trl_diag_set(d, TRL_EVALIDATION,
                         "unknown cron macro '%s'; expected @yearly, @annually, @monthly, "
                         "@weekly, @daily, @midnight or @hourly",
                         q);
            trl_diag_zh(d,
                        "未知的 cron 宏 '%s';可用的有 @yearly、@annually、@monthly、@weekly、"
                        "@daily、@midnight、@hourly",
                        q);
            return TRL_EVALIDATION;
        }
        s = text;
        end = text + strlen(text);
    }

    const char *fs[5];
    size_t fn[5];
    int nf = 0;
    for (const char *p = s; p < end;) {
        const char *e = p;
        while (e < end && !is_space(*e))
            e++;
        if (nf < 5) {
            fs[nf] = p;
            fn[nf] = (size_t)(e - p);
        }
        nf++;
        p = e;
        while (p < end && is_space(*p))
            p++;
    }
    if (nf != 5) {
        bool extra = nf == 6 || nf == 7;
        trl_diag_set(d, TRL_EVALIDATION,
                     "cron expression has %d field%s; expected 5 (minute hour day-of-month month "
                     "day-of-week)%s",
                     nf, nf == 1 ? "" : "s",
                     extra ? "; seconds and year fields are not supported" : "");
        trl_diag_zh(d, "cron 表达式有 %d 个字段,应为 5 个(分钟 小时 日 月 星期)%s", nf,
                    extra ? ";不支持秒和年字段" : "");
        return TRL_EVALIDATION;
    }

    struct trl_cron c = {0};
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(d, &fields[i], fs[i], fn[i], &bits[i]);
        if (rc) return rc;
    }
    c.minute = bits[0];
    c.hour = (uint32_t)bits[1];
    c.dom = (uint32_t)bits[2];
    c.month = (uint32_t)bits[3];
    c.dow = (uint32_t)((bits[4] | bits[4] >> 7) & 0x7f);
    c.dom_star = fs[2][0] == '*';
    c.dow_star = fs[4][0] == '*';
    c.never = !can_match(&c);

    struct trl_cron *r = malloc(sizeof(*r));
    if (!r) {
        trl_diag_set(d, TRL_ENOMEM, "out of memory parsing a cron expression");
        trl_diag_zh(d, "解析 cron 表达式时内存不足");
        return TRL_ENOMEM;
    }
    *r = c;
    *out = r;
    return 0;
}

void trl_cron_free(struct trl_cron *c)
{
    free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Next firing
 */

static bool day_matches(const struct trl_cron *c, unsigned dd, unsigned wd)
{
    bool dm = c->dom >> dd & 1, wm = c->dow >> wd & 1;
    return c->dom_star || c->dow_star ? dm && wm : dm || wm;
}

/* The first local minute in [m, m_hi) (minutes since 1970-01-01T00:00 local) that c matches, or
 * CRON_NONE. Each turn moves m forward by at least a minute that cannot match: to the next
 * month of the set, the next matching day, the next hour. */
static int64_t first_match(const struct trl_cron *c, int64_t m, int64_t m_hi)
{
    while (m < m_hi) {
        int64_t z = floor_div(m, MIN_PER_DAY), y;
        int mod = (int)(m - z * MIN_PER_DAY), hr = mod / 60, mi = mod % 60;
        unsigned mo, dd;
        trl_civil_from_days((int32_t)z, &y, &mo, &dd);
        if (!(c->month >> mo & 1)) {
            uint32_t later = c->month & ~((2u << mo) - 1);
            if (later) {
                mo = (unsigned)__builtin_ctz(later);
            } else {
                y++;
                mo = (unsigned)__builtin_ctz(c->month);
            }
            m = (int64_t)trl_days_from_civil(y, mo, 1) * MIN_PER_DAY;
            continue;
        }
        unsigned wd = weekday(z);
        if (!day_matches(c, dd, wd)) {
            unsigned dim = days_in_month(y, mo), k = dd + 1;
            while (k <= dim && !day_matches(c, k, (wd + k - dd) % 7))
                k++;
            m = (z + (k - dd)) * MIN_PER_DAY; /* k == dim + 1: the 1st of the next month */
            continue;
        }
        uint32_t hs = c->hour & (~0u << hr);
        if (!hs) {
            m = (z + 1) * MIN_PER_DAY;
            continue;
        }
        int h = __builtin_ctz(hs);
        if (h != hr) mi = 0;
        uint64_t ms = c->minute & (~0ULL << mi);
        if (!ms) {
            m = z * MIN_PER_DAY + (h + 1) * 60;
            continue;
        }
        m = z * MIN_PER_DAY + h * 60 + __builtin_ctzll(ms);
        return m < m_hi ? m : CRON_NONE;
    }
    return CRON_NONE;
}

static int64_t answer(int64_t utc_s)
{
    return utc_s < TRL_CAL_MAX_MS / 1000 ? utc_s * 1000 : TRL_CAL_NEVER;
}

int64_t trl_cron_next(const struct trl_cron *c, const struct trl_tz *tz, int64_t after_ms)
{
    if (!c || c->never || after_ms >= TRL_CAL_MAX_MS) return TRL_CAL_NEVER;
    if (after_ms < TRL_CAL_MIN_MS) after_ms = TRL_CAL_MIN_MS - 1;
    /* Answers are whole UTC minutes > a. A local minute m of a stretch with offset o fires at
     * the first whole UTC minute at or after its start, ceil(m * 60 - o): later than a exactly
     * when m * 60 > a + o. */
    int64_t a = floor_div(after_ms, 60000) * 60;
    for (int64_t t = a;;) {
        int64_t from = INT64_MIN, until = INT64_MAX;
        int32_t o = tz ? trl_tz_offset_span(tz, t, &from, &until) : 0;
        if (from < CRON_LO_S) from = CRON_LO_S;
        if (until > CRON_HI_S) until = CRON_HI_S;
        /* The offset before this stretch: local times [from + op, from + o) were skipped
         * (op < o) or [from + o, from + op) were already seen (op > o). */
        int32_t op = tz && from > CRON_LO_S ? trl_tz_offset(tz, from - 1) : o;
        if (o > op) {
            int64_t g = ceil_div(from, 60) * 60;
            if (g > a &&
                first_match(c, ceil_div(from + op, 60), ceil_div(from + o, 60)) != CRON_NONE)
                return answer(g);
        }
        int64_t lo = floor_div(a + o, 60) + 1, seen = ceil_div(from + (op > o ? op : o), 60);
        if (lo < seen) lo = seen;
        int64_t m = first_match(c, lo, ceil_div(until + o, 60));
        if (m != CRON_NONE) return answer(ceil_div(m * 60 - o, 60) * 60);
        if (until >= CRON_HI_S) return TRL_CAL_NEVER;
        t = until;
    }
}
