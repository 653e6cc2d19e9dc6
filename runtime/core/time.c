/* time.c — the injectable clock, civil dates, RFC 3339 and exact decimals. */
#include "core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t system_now_ms(const struct trl_clock *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + (c ? c->offset_ms : 0);
}

void trl_clock_system(struct trl_clock *c)
{
    c->now_ms = system_now_ms;
    c->offset_ms = 0;
}

int64_t trl_clock_now(const struct trl_clock *c)
{
    if (!c || !c->now_ms) return system_now_ms(c);
    return c->now_ms(c);
}

int64_t trl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int32_t trl_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}

void trl_civil_from_days(int32_t zz, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z = (int64_t)zz + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

int trl_date_parse(const char *s, size_t n, int32_t *days)
{
    unsigned y, m, d;
    if (n != 10 || s[4] != '-' || s[7] != '-') return TRL_EINVAL;
    if (digits(s, 4, &y) || digits(s + 5, 2, &m) || digits(s + 8, 2, &d)) return TRL_EINVAL;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return TRL_EINVAL;
    *days = trl_days_from_civil(y, m, d);
    return 0;
}

void trl_date_format(int32_t days, char *out)
{
    int64_t y;
    unsigned m, d;
    trl_civil_from_days(days, &y, &m, &d);
    unsigned yy = (unsigned)(y < 0 ? 0 : y > 9999 ? 9999 : y);
    out[0] = (char)('0' + yy / 1000);
    out[1] = (char)('0' + yy / 100 % 10);
    out[2] = (char)('0' + yy / 10 % 10);
    out[3] = (char)('0' + yy % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = 0;
}

int trl_datetime_parse(const char *s, size_t n, int64_t *ms)
{
    int32_t days;
    unsigned hh, mi, ss, frac = 0;
    if (n < 20) return TRL_EINVAL;
    if (trl_date_parse(s, 10, &days)) return TRL_EINVAL;
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
        return TRL_EINVAL;
    if (digits(s + 11, 2, &hh) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &ss))
        return TRL_EINVAL;
    if (hh > 23 || mi > 59 || ss > 59) return TRL_EINVAL;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i, k = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (k < 3) frac = frac * 10 + (unsigned)(s[i] - '0'), k++;
            i++;
        }
        if (i == start) return TRL_EINVAL;
        while (k < 3)
            frac *= 10, k++;
    }
    int64_t off_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        unsigned oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return TRL_EINVAL;
        off_min = (int64_t)oh * 60 + om;
        if (s[i] == '-') off_min = -off_min;
        i += 6;
    } else {
        return TRL_EINVAL;
    }
    if (i != n) return TRL_EINVAL;
    *ms = (((int64_t)days * 86400 + hh * 3600 + mi * 60 + ss) - off_min * 60) * 1000 + frac;
    return 0;
}

void trl_datetime_format(int64_t ms, char *out)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t msr = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    trl_date_format((int32_t)days, out);
    unsigned h = (unsigned)(sod / 3600), mi = (unsigned)(sod / 60 % 60), se = (unsigned)(sod % 60);
    unsigned ml = (unsigned)msr;
    char *o = out + 10;
    *o++ = 'T';
    *o++ = (char)('0' + h / 10), *o++ = (char)('0' + h % 10), *o++ = ':';
    *o++ = (char)('0' + mi / 10), *o++ = (char)('0' + mi % 10), *o++ = ':';
    *o++ = (char)('0' + se / 10), *o++ = (char)('0' + se % 10), *o++ = '.';
    *o++ = (char)('0' + ml / 100), *o++ = (char)('0' + ml / 10 % 10), *o++ = (char)('0' + ml % 10);
    *o++ = 'Z';
    *o = 0;
}

int trl_decimal_parse(const char *s, size_t n, int scale, int64_t *out, const char **why)
{
    size_t i = 0;
    bool neg = false;
    *why = "type";
    if (n && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', i = 1;
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t int_len = i - int_start;
    size_t frac_start = i, frac_len = 0;
    if (i < n && s[i] == '.') {
        i++;
        frac_start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_len = i - frac_start;
        if (frac_len == 0) return TRL_EINVAL;
    }
    if (i != n || int_len == 0) return TRL_EINVAL;
    /* Trailing zeros beyond the scale are harmless ("1.500" at scale 2). */
    while (frac_len > (size_t)scale && s[frac_start + frac_len - 1] == '0')
        frac_len--;
    if (frac_len > (size_t)scale) {
        *why = "scale";
        return TRL_EINVAL;
    }
    __int128 v = 0;
    for (size_t k = 0; k < int_len; k++) {
        v = v * 10 + (s[int_start + k] - '0');
        if (v > (__int128)INT64_MAX * 10) break;
    }
    for (size_t k = 0; k < (size_t)scale; k++) {
        v = v * 10 + (k < frac_len ? s[frac_start + k] - '0' : 0);
        if (v > ((__int128)1 << 100)) break;
    }
    if (neg) v = -v;
    if (v > INT64_MAX || v < INT64_MIN) {
        *why = "range";
        return TRL_EINVAL;
    }
    *out = (int64_t)v;
    *why = NULL;
    return 0;
}

void trl_decimal_format(int64_t v, int scale, char *out)
{
    char digitsbuf[32];
    unsigned __int128 a = v < 0 ? (unsigned __int128)(-(__int128)v) : (unsigned __int128)v;
    int n = 0;
    do {
        digitsbuf[n++] = (char)('0' + (int)(a % 10));
        a /= 10;
    } while (a);
    while (n <= scale)
        digitsbuf[n++] = '0';
    int o = 0;
    if (v < 0) out[o++] = '-';
    for (int k = n - 1; k >= 0; k--) {
        out[o++] = digitsbuf[k];
        if (k == scale && scale > 0) out[o++] = '.';
    }
    out[o] = 0;
}
