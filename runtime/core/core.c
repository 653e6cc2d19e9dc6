/* core.c — errors, diagnostics, buffers, UTF-8, logging and small string helpers. */
#include "core.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct err_row {
    const char *token;
    int status;
    const char *en;
    const char *zh;
};

static const struct err_row err_rows[] = {
#define TRL_X_ROW(name, tok, status, en, zh) {tok, status, en, zh},
    TRL_ERRORS(TRL_X_ROW)
#undef TRL_X_ROW
};

static const struct err_row *err_row(int code)
{
    /* Compare before negating: -INT_MIN does not exist. */
    if (code > 0 || code <= -(int)TRL_ERR_COUNT) return &err_rows[TRL_EINTERNAL_IDX];
    return &err_rows[-code];
}

const char *trl_err_token(int code)
{
    return err_row(code)->token;
}

int trl_err_status(int code)
{
    return err_row(code)->status;
}

const char *trl_err_title(int code, const char *lang)
{
    const struct err_row *r = err_row(code);
    return (lang && strcmp(lang, "zh-CN") == 0) ? r->zh : r->en;
}

const char *trl_lang_pick(const char *al)
{
    /* Highest-q match between zh* and en*; ties go to the first listed; q=0 means "not
     * acceptable" (RFC 9110 §12.4.2), so such a tag is never chosen. */
    double best_q = -1;
    const char *best = "en";
    if (!al) return best;
    const char *p = al;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *tag = p;
        while (*p && *p != ';' && *p != ',' && *p != ' ')
            p++;
        size_t tlen = (size_t)(p - tag);
        double q = 1.0;
        while (*p && *p != ',') {
            if (p[0] == ';') {
                const char *qq = p + 1;
                while (*qq == ' ')
                    qq++;
                if (qq[0] == 'q' && qq[1] == '=') q = strtod(qq + 2, NULL);
            }
            p++;
        }
        const char *lang = NULL;
        if (tlen >= 2 && (strncasecmp(tag, "zh", 2) == 0))
            lang = "zh-CN";
        else if (tlen >= 2 && strncasecmp(tag, "en", 2) == 0)
            lang = "en";
        if (lang && q > 0 && q > best_q) {
            best_q = q;
            best = lang;
        }
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------
 * Diagnostics
 */
void trl_diag_init(struct trl_diag *d)
{
    memset(d, 0, sizeof(*d));
}

void trl_diag_reset(struct trl_diag *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nferrs; i++) {
        free(d->ferrs[i].field);
        free(d->ferrs[i].code);
        free(d->ferrs[i].detail);
    }
    free(d->ferrs);
    memset(d, 0, sizeof(*d));
}

int trl_diag_set_at(struct trl_diag *d, int code, const char *file, int line, const char *fmt, ...)
{
    if (!d) return code;
    d->code = code;
    d->file = file;
    d->line = line;
    d->message_zh[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof(d->message), fmt, ap);
    va_end(ap);
    return code;
}

void trl_diag_zh(struct trl_diag *d, const char *fmt, ...)
{
    if (!d) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message_zh, sizeof(d->message_zh), fmt, ap);
    va_end(ap);
}

void trl_diag_field(struct trl_diag *d, const char *field)
{
    if (!d) return;
    snprintf(d->field, sizeof(d->field), "%s", field ? field : "");
}

void trl_diag_rule(struct trl_diag *d, const char *rule, const char *path)
{
    if (!d) return;
    snprintf(d->rule, sizeof(d->rule), "%s", rule ? rule : "");
    snprintf(d->path, sizeof(d->path), "%s", path ? path : "");
}

int trl_diag_add_ferr(struct trl_diag *d, const char *field, const char *code, const char *detail)
{
    if (d->nferrs == d->capferrs) {
        size_t nc = d->capferrs ? d->capferrs * 2 : 8;
        struct trl_ferr *nf = realloc(d->ferrs, nc * sizeof(*nf));
        if (!nf) return TRL_ENOMEM;
        d->ferrs = nf;
        d->capferrs = nc;
    }
    struct trl_ferr *e = &d->ferrs[d->nferrs];
    e->field = strdup(field ? field : "");
    e->code = strdup(code ? code : "invalid");
    e->detail = strdup(detail ? detail : "");
    if (!e->field || !e->code || !e->detail) {
        free(e->field);
        free(e->code);
        free(e->detail);
        return TRL_ENOMEM;
    }
    d->nferrs++;
    return 0;
}

void trl_diag_move(struct trl_diag *dst, struct trl_diag *src)
{
    trl_diag_reset(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

struct ferr_msg {
    const char *code;
    const char *en;
    const char *zh;
};

/* "%s" in a template stands for the rule's detail. */
static const struct ferr_msg ferr_msgs[] = {
    {"required", "is required", "为必填项"},
    {"hook", "%s", "%s"},
    {"unknown_field", "is not a field of this type", "不是此类型的字段"},
    {"type", "must be %s", "类型应为 %s"},
    {"max_length", "must be at most %s characters", "长度不能超过 %s 个字符"},
    {"min_length", "must be at least %s characters", "长度不能少于 %s 个字符"},
    {"min", "must be at least %s", "不能小于 %s"},
    {"max", "must be at most %s", "不能大于 %s"},
    {"pattern", "does not match the required pattern %s", "不符合格式要求 %s"},
    {"enum", "must be one of: %s", "必须是以下选项之一:%s"},
    {"unique", "must be unique; %s is already used", "必须唯一;%s 已被使用"},
    {"ref_missing", "refers to a record that does not exist (%s)", "引用的记录不存在(%s)"},
    {"scale", "has more than %s decimal places", "小数位数不能超过 %s 位"},
    {"range", "is out of range", "超出取值范围"},
    {"read_only", "is read-only", "为只读字段"},
    {"invalid_date", "must be a date YYYY-MM-DD", "必须是 YYYY-MM-DD 格式的日期"},
    {"invalid_datetime", "must be an RFC 3339 date-time", "必须是 RFC 3339 格式的日期时间"},
    {"utf8", "is not valid UTF-8", "不是有效的 UTF-8"},
    {"json", "is not valid JSON", "不是有效的 JSON"},
    {"attachment", "must be an uploaded file id", "必须是已上传文件的 ID"},
    {"schema", "%s", "%s"},
    {"duplicate_key", "appears more than once in the body", "在请求体中出现了多次"},
    {"not_fillable", "cannot be filled in by transition '%s'", "不能在流转“%s”中填写"},
};

/* Chinese for the details the engine itself produces. */
static const char *detail_zh(const char *d)
{
    static const char *map[][2] = {
        {"a string", "字符串"},
        {"an integer", "整数"},
        {"a decimal number or string", "数字或数字字符串"},
        {"a decimal number", "数字"},
        {"true or false", "true 或 false"},
        {"a record id", "记录 ID"},
        {"text without NUL characters", "不含 NUL 字符的文本"},
        {"a JSON object", "JSON 对象"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i][0], d) == 0) return map[i][1];
    return d;
}

void trl_ferr_message(const struct trl_ferr *e, const char *lang, char *buf, size_t n)
{
    bool zh = lang && strcmp(lang, "zh-CN") == 0;
    const char *detail = zh ? detail_zh(e->detail) : e->detail;
    for (size_t i = 0; i < sizeof(ferr_msgs) / sizeof(ferr_msgs[0]); i++) {
        if (strcmp(ferr_msgs[i].code, e->code) == 0) {
            const char *t = zh ? ferr_msgs[i].zh : ferr_msgs[i].en;
            const char *pct = strstr(t, "%s");
            if (pct)
                snprintf(buf, n, "%.*s%s%s", (int)(pct - t), t, detail, pct + 2);
            else
                snprintf(buf, n, "%s", t);
            return;
        }
    }
    snprintf(buf, n, "%s%s%s", zh ? "无效" : "is invalid", e->detail[0] ? ": " : "", e->detail);
}

/* ---------------------------------------------------------------------------------------------
 * Buffers
 */
void trl_buf_init(struct trl_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void trl_buf_free(struct trl_buf *b)
{
    if (!b) return;
    free(b->data);
    trl_buf_init(b);
}

void trl_buf_clear(struct trl_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

int trl_buf_reserve(struct trl_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->len + extra + 1) {
        if (nc > SIZE_MAX / 2) return TRL_ENOMEM;
        nc *= 2;
    }
    char *nd = realloc(b->data, nc);
    if (!nd) return TRL_ENOMEM;
    b->data = nd;
    b->cap = nc;
    return 0;
}

int trl_buf_add(struct trl_buf *b, const void *p, size_t n)
{
    if (trl_buf_reserve(b, n)) return TRL_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int trl_buf_adds(struct trl_buf *b, const char *s)
{
    return trl_buf_add(b, s, strlen(s));
}

int trl_buf_addc(struct trl_buf *b, char c)
{
    return trl_buf_add(b, &c, 1);
}

int trl_buf_vprintf(struct trl_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return TRL_EINVAL;
    if (trl_buf_reserve(b, (size_t)n)) return TRL_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int trl_buf_printf(struct trl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = trl_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int trl_buf_add_u16be(struct trl_buf *b, uint16_t v)
{
    unsigned char t[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    return trl_buf_add(b, t, 2);
}

int trl_buf_add_u32be(struct trl_buf *b, uint32_t v)
{
    unsigned char t[4];
    trl_put_u32be(t, v);
    return trl_buf_add(b, t, 4);
}

int trl_buf_add_u64be(struct trl_buf *b, uint64_t v)
{
    unsigned char t[8];
    trl_put_u64be(t, v);
    return trl_buf_add(b, t, 8);
}

int trl_buf_add_varint(struct trl_buf *b, uint64_t v)
{
    unsigned char t[10];
    size_t n = 0;
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        if (v) c |= 0x80;
        t[n++] = c;
    } while (v);
    return trl_buf_add(b, t, n);
}

static bool plain_number(const char *s, size_t n)
{
    size_t i = (n && (s[0] == '-' || s[0] == '+')) ? 1 : 0, digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    return digits && i == n;
}

int trl_buf_add_csv(struct trl_buf *b, const char *s, size_t n)
{
    bool formula = n && s[0] && strchr("=+-@\t\r", s[0]) && !plain_number(s, n);
    bool quote = formula && (s[0] == '\t' || s[0] == '\r');
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    int rc = (quote && trl_buf_addc(b, '"')) || (formula && trl_buf_addc(b, '\''));
    for (size_t i = 0; i < n && !rc; i++)
        rc = s[i] == '"' ? trl_buf_adds(b, "\"\"") : trl_buf_addc(b, s[i]);
    if (!rc && quote) rc = trl_buf_addc(b, '"');
    return rc ? TRL_ENOMEM : 0;
}

int trl_buf_add_json_str(struct trl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (trl_buf_reserve(b, n + 2)) return TRL_ENOMEM;
    if (trl_buf_addc(b, '"')) return TRL_ENOMEM;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run && trl_buf_add(b, s + i - run, run)) return TRL_ENOMEM;
        run = 0;
        char esc[7];
        size_t el = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        if (trl_buf_add(b, esc, el)) return TRL_ENOMEM;
    }
    if (run && trl_buf_add(b, s + n - run, run)) return TRL_ENOMEM;
    return trl_buf_addc(b, '"');
}

char *trl_buf_steal(struct trl_buf *b)
{
    char *d = b->data;
    if (!d) d = calloc(1, 1);
    trl_buf_init(b);
    return d;
}

uint16_t trl_get_u16be(const void *p)
{
    const unsigned char *c = p;
    return (uint16_t)((c[0] << 8) | c[1]);
}

uint32_t trl_get_u32be(const void *p)
{
    const unsigned char *c = p;
    return ((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) | ((uint32_t)c[2] << 8) | c[3];
}

uint64_t trl_get_u64be(const void *p)
{
    const unsigned char *c = p;
    return ((uint64_t)trl_get_u32be(c) << 32) | trl_get_u32be(c + 4);
}

void trl_put_u32be(void *p, uint32_t v)
{
    unsigned char *c = p;
    c[0] = (unsigned char)(v >> 24);
    c[1] = (unsigned char)(v >> 16);
    c[2] = (unsigned char)(v >> 8);
    c[3] = (unsigned char)v;
}

void trl_put_u64be(void *p, uint64_t v)
{
    unsigned char *c = p;
    trl_put_u32be(c, (uint32_t)(v >> 32));
    trl_put_u32be(c + 4, (uint32_t)v);
}

int trl_get_varint_slow(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const unsigned char *q = *p;
    while (q < end) {
        unsigned char c = *q++;
        if (shift == 63 && (c & 0x7e)) return TRL_ECORRUPT;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *p = q;
            *out = v;
            return 0;
        }
        shift += 7;
        if (shift > 63) return TRL_ECORRUPT;
    }
    return TRL_ECORRUPT;
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8 (RFC 3629 well-formedness table)
 */
bool trl_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c == 0xE0)
            need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
            need = 2;
        else if (c == 0xED)
            need = 2, hi = 0x9F;
        else if (c == 0xF0)
            need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            need = 3;
        else if (c == 0xF4)
            need = 3, hi = 0x8F;
        else
            return false;
        if (n - i <= need) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        i += need + 1;
    }
    return true;
}

size_t trl_utf8_len(const char *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) cp++;
    return cp;
}

/* ---------------------------------------------------------------------------------------------
 * Logging and helpers
 */
void trl_log_at(enum trl_log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[32];
    trl_datetime_format(trl_clock_now(&(struct trl_clock){0}), ts);
    const char *base = strrchr(file, '/');
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %-5s %s:%d %s\n", ts, names[level], base ? base + 1 : file, line, msg);
}

void trl_hex(const void *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[c[i] >> 4];
        out[2 * i + 1] = hex[c[i] & 15];
    }
    out[2 * n] = 0;
}

char *trl_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

uint64_t trl_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

int trl_parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && s[0] == '-') neg = true, i = 1;
    if (i == n || n - i > 19) return TRL_EINVAL;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return TRL_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (!neg && v > (uint64_t)INT64_MAX) return TRL_EINVAL;
    if (neg && v > (uint64_t)INT64_MAX + 1) return TRL_EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static const char *ftype_names[TRL_FT_COUNT] = {
    "text",     "longtext", "int", "decimal", "bool", "date",
    "datetime", "enum",     "ref", "user",    "json", "attachment",
};

const char *trl_ftype_name(enum trl_ftype t)
{
    return (unsigned)t < TRL_FT_COUNT ? ftype_names[t] : NULL;
}

int trl_ftype_parse(const char *name)
{
    for (int i = 0; i < TRL_FT_COUNT; i++)
        if (strcmp(ftype_names[i], name) == 0) return i;
    return -1;
}

bool trl_ftype_is_int(enum trl_ftype t)
{
    switch (t) {
    case TRL_FT_INT:
    case TRL_FT_DECIMAL:
    case TRL_FT_BOOL:
    case TRL_FT_DATE:
    case TRL_FT_DATETIME:
    case TRL_FT_REF:
        return true;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Arenas
 */
struct trl_arena_chunk {
    struct trl_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void trl_arena_init(struct trl_arena *a)
{
    a->head = NULL;
}

void trl_arena_free(struct trl_arena *a)
{
    if (!a) return;
    struct trl_arena_chunk *c = a->head;
    while (c) {
        struct trl_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}

void *trl_arena_alloc(struct trl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct trl_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        c = malloc(sizeof(*c) + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *trl_arena_strndup(struct trl_arena *a, const char *s, size_t n)
{
    char *d = trl_arena_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 */
int trl_mkdir_p(const char *dir, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, mode) && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) && errno != EEXIST) return -1;
    return 0;
}

int trl_read_file(const char *path, size_t max, char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return TRL_EIO;
    struct trl_buf b;
    trl_buf_init(&b);
    char tmp[8192];
    size_t r;
    int rc = 0;
    while (!rc && (r = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (b.len + r > max)
            rc = TRL_ETOOBIG;
        else if (trl_buf_add(&b, tmp, r))
            rc = TRL_ENOMEM;
    }
    if (!rc && ferror(f)) rc = TRL_EIO;
    fclose(f);
    if (rc) {
        trl_buf_free(&b);
        return rc;
    }
    *n = b.len;
    *out = trl_buf_steal(&b);
    return *out ? 0 : TRL_ENOMEM;
}
