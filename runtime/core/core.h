/*
 * core — the vocabulary every other Trellis module speaks.
 *
 * What lives here: the one table of error codes (TRL_E*), the diagnostics area a failing call
 * fills (struct trl_diag), growable byte buffers, UTF-8 checks, the injectable clock, logging,
 * the small value model shared by the codec, the schema, the expression language and records,
 * and the caller's identity (struct trl_principal).
 *
 * Invariants: core depends on libc only; it holds no mutable global state (the clock is an
 * object the server context owns and passes down). Every *_free accepts NULL.
 */
#ifndef TRL_CORE_H
#define TRL_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Errors. One row per code: enum name, stable snake_case token, HTTP status, English title,
 * Simplified Chinese title. http/ maps codes to statuses through this table only.
 */
#define TRL_ERRORS(X)                                                                              \
    X(TRL_OK, "ok", 200, "OK", "成功")                                                             \
    X(TRL_EINVAL, "invalid_request", 400, "Invalid request", "请求无效")                           \
    X(TRL_EJSON, "malformed_json", 400, "Malformed JSON", "JSON 格式错误")                         \
    X(TRL_EQUERY, "bad_query", 400, "Invalid query", "查询无效")                                   \
    X(TRL_EAUTH, "unauthenticated", 401, "Authentication required", "需要登录")                    \
    X(TRL_EFORBIDDEN, "forbidden", 403, "Not allowed", "无权执行此操作")                           \
    X(TRL_ENOTFOUND, "not_found", 404, "Not found", "未找到")                                      \
    X(TRL_EMETHOD, "method_not_allowed", 405, "Method not allowed", "不支持该请求方法")            \
    X(TRL_ENOTACCEPT, "not_acceptable", 406, "Not acceptable", "无法提供请求的格式")               \
    X(TRL_ECONFLICT, "conflict", 409, "Conflict", "冲突")                                          \
    X(TRL_EEXIST, "already_exists", 409, "Already exists", "已存在")                               \
    X(TRL_EPRECOND, "precondition_failed", 412, "Version mismatch", "版本不匹配")                  \
    X(TRL_ETOOBIG, "payload_too_large", 413, "Request body too large", "请求体过大")               \
    X(TRL_EURITOOLONG, "uri_too_long", 414, "URI too long", "URI 过长")                            \
    X(TRL_EMEDIATYPE, "unsupported_media_type", 415, "Unsupported media type", "不支持的媒体类型") \
    X(TRL_EVALIDATION, "validation_failed", 422, "Validation failed", "数据校验失败")              \
    X(TRL_ERATELIMIT, "rate_limited", 429, "Too many requests", "请求过于频繁")                    \
    X(TRL_EHEADERS, "headers_too_large", 431, "Request headers too large", "请求头过大")           \
    X(TRL_EINTERNAL, "internal_error", 500, "Internal error", "内部错误")                          \
    X(TRL_EHOOK, "hook_failed", 500, "Hook failed", "钩子执行失败")                                \
    X(TRL_ENOMEM, "out_of_memory", 503, "Out of memory", "内存不足")                               \
    X(TRL_EUNAVAIL, "unavailable", 503, "Service unavailable", "服务暂不可用")                     \
    X(TRL_ETIMEOUT, "timeout", 503, "Request timed out", "请求超时")                               \
    X(TRL_EFULL, "storage_full", 507, "Storage full", "存储空间已满")                              \
    X(TRL_EIO, "io_error", 500, "I/O error", "读写错误")                                           \
    X(TRL_ECORRUPT, "corrupt", 500, "Stored data is corrupt", "存储数据已损坏")                    \
    X(TRL_EMAPFULL, "map_full", 507, "Storage map full", "存储映射已满")

enum trl_err {
#define TRL_X_ENUM(name, tok, status, en, zh) name##_IDX,
    TRL_ERRORS(TRL_X_ENUM)
#undef TRL_X_ENUM
        TRL_ERR_COUNT
};
/* Error codes are the negated indexes: 0 is success, -TRL_EINVAL_IDX ... are failures. */
#define TRL_X_CODE(name, tok, status, en, zh) static const int name = -(int)name##_IDX;
TRL_ERRORS(TRL_X_CODE)
#undef TRL_X_CODE

/* Stable token ("validation_failed") for a code; "internal_error" for an unknown code. */
const char *trl_err_token(int code);
/* HTTP status of a code (500 for an unknown one). */
int trl_err_status(int code);
/* Title of a code in lang ("en" or "zh-CN"); static storage. */
const char *trl_err_title(int code, const char *lang);

/* Language chosen from an Accept-Language header: "zh-CN" or "en" (static strings). */
const char *trl_lang_pick(const char *accept_language);

/* ---------------------------------------------------------------------------------------------
 * Diagnostics: what a failing call says about itself. One per request (in struct trl_ctx) or per
 * command. The field errors list collects every failing field of a validation at once.
 */
struct trl_ferr {
    char *field;  /* field name (owned), "" when the error concerns the whole body */
    char *code;   /* stable rule token (owned): required, max_length, pattern, ... */
    char *detail; /* parameter of the rule for the message (owned), may be "" */
};

struct trl_diag {
    int code;               /* TRL_E* of the failure, 0 when none */
    char message[512];      /* English detail for logs and the problem `detail` */
    char message_zh[512];   /* Chinese detail, empty when not given (then message is used) */
    char field[128];        /* field at fault for single-field errors, "" otherwise */
    char rule[32];          /* kind of rule that refused (workflow: state, role, condition...) */
    char path[160];         /* definition path of that rule ("transitions[2].condition") */
    char hook[160];         /* app hook that refused ("app/module.function"), "" when none */
    const char *file;       /* source location that set the error (static) */
    int line;               /* line that set the error */
    int cause;              /* underlying code (MDB_*, errno), 0 when none */
    struct trl_ferr *ferrs; /* owned array of field errors */
    size_t nferrs;          /* used entries of ferrs */
    size_t capferrs;        /* allocated entries of ferrs */
};

void trl_diag_init(struct trl_diag *d);
/* Frees the field errors and clears the diagnostics for reuse. */
void trl_diag_reset(struct trl_diag *d);
/* Records code and an English message (printf format); returns code so callers can
 * `return trl_diag_set(...)`. A later call overwrites an earlier error. */
#define trl_diag_set(d, code, ...) trl_diag_set_at((d), (code), __FILE__, __LINE__, __VA_ARGS__)
int trl_diag_set_at(struct trl_diag *d, int code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Sets the Chinese message of the current error (printf format). */
void trl_diag_zh(struct trl_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the single field at fault. */
void trl_diag_field(struct trl_diag *d, const char *field);
/* Names the rule that refused and its path in a definition (problem members rule, path). */
void trl_diag_rule(struct trl_diag *d, const char *rule, const char *path);
/* Appends a field error; returns 0 or TRL_ENOMEM. */
int trl_diag_add_ferr(struct trl_diag *d, const char *field, const char *code, const char *detail);
/* Moves everything from src into dst (dst is reset first); src is left empty. */
void trl_diag_move(struct trl_diag *dst, struct trl_diag *src);

/* Message of a field-rule code in lang, with detail substituted (owned by buf, size n). */
void trl_ferr_message(const struct trl_ferr *e, const char *lang, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Buffers: a growable byte string, always NUL-terminated after len. Owns its bytes.
 */
struct trl_buf {
    char *data; /* owned, NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};

void trl_buf_init(struct trl_buf *b);
void trl_buf_free(struct trl_buf *b);
/* Each append returns 0 or TRL_ENOMEM (the buffer then holds what it held before). */
int trl_buf_reserve(struct trl_buf *b, size_t extra);
int trl_buf_add(struct trl_buf *b, const void *p, size_t n);
int trl_buf_adds(struct trl_buf *b, const char *s);
int trl_buf_addc(struct trl_buf *b, char c);
int trl_buf_printf(struct trl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int trl_buf_vprintf(struct trl_buf *b, const char *fmt, va_list ap);
/* Big-endian fixed-width integers (keys sort numerically as bytes). */
int trl_buf_add_u16be(struct trl_buf *b, uint16_t v);
int trl_buf_add_u32be(struct trl_buf *b, uint32_t v);
int trl_buf_add_u64be(struct trl_buf *b, uint64_t v);
/* LEB128 unsigned varint. */
int trl_buf_add_varint(struct trl_buf *b, uint64_t v);
/* JSON string literal with quotes and escapes (input must be valid UTF-8). */
int trl_buf_add_json_str(struct trl_buf *b, const char *s, size_t n);
/* Appends s as one CSV cell (RFC 4180: quoted when it holds , " CR or LF, quotes doubled). A
 * text that a spreadsheet would run as a formula (first character = + - @ TAB or CR, and not a
 * plain number such as -12.50) gets a leading ' so that it stays text (OWASP CSV injection). */
int trl_buf_add_csv(struct trl_buf *b, const char *s, size_t n);
/* Takes the bytes out: returns owned string (free with free()), buffer left empty. */
char *trl_buf_steal(struct trl_buf *b);
void trl_buf_clear(struct trl_buf *b);

uint16_t trl_get_u16be(const void *p);
uint32_t trl_get_u32be(const void *p);
uint64_t trl_get_u64be(const void *p);
void trl_put_u32be(void *p, uint32_t v);
void trl_put_u64be(void *p, uint64_t v);
/* Reads a varint from [*p, end); advances *p. Returns 0 or TRL_ECORRUPT. Inline for the
 * one-byte case: record decoding (report scans) reads a few dozen per record. */
int trl_get_varint_slow(const unsigned char **p, const unsigned char *end, uint64_t *out);
static inline int trl_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    const unsigned char *q = *p;
    if (q < end && !(*q & 0x80)) {
        *out = *q;
        *p = q + 1;
        return 0;
    }
    return trl_get_varint_slow(p, end, out);
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8.
 */
/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool trl_utf8_valid(const char *s, size_t n);
/* Number of code points in valid UTF-8 s[0..n). */
size_t trl_utf8_len(const char *s, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Time. Dates are days since 1970-01-01, datetimes UTC milliseconds since the epoch.
 * The clock is an object so tests can inject and advance their own.
 */
struct trl_clock {
    int64_t (*now_ms)(const struct trl_clock *c); /* current UTC time in ms */
    int64_t offset_ms;                            /* added by the system clock; tests move it */
};
/* A clock reading CLOCK_REALTIME plus offset_ms. */
void trl_clock_system(struct trl_clock *c);
int64_t trl_clock_now(const struct trl_clock *c);
/* Monotonic milliseconds, for deadlines and latency. */
int64_t trl_mono_ms(void);

/* Parses "YYYY-MM-DD" (exactly) into days; 0 or TRL_EINVAL. */
int trl_date_parse(const char *s, size_t n, int32_t *days);
/* Formats days as "YYYY-MM-DD" into out (>= 11 bytes). */
void trl_date_format(int32_t days, char *out);
/* Parses RFC 3339 ("2026-01-02T03:04:05.678Z" or with +08:00) into UTC ms; 0 or TRL_EINVAL. */
int trl_datetime_parse(const char *s, size_t n, int64_t *ms);
/* Formats UTC ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 25 bytes). */
void trl_datetime_format(int64_t ms, char *out);
/* Civil date helpers (proleptic Gregorian). */
int32_t trl_days_from_civil(int64_t y, unsigned m, unsigned d);
void trl_civil_from_days(int32_t z, int64_t *y, unsigned *m, unsigned *d);

/* ---------------------------------------------------------------------------------------------
 * Exact decimals: a scaled int64 (value * 10^scale).
 */
/* Parses a decimal text ("-12.30", "5", "1e3" refused) at `scale`; more fractional digits than
 * scale -> TRL_EINVAL with *why = "scale"; overflow -> TRL_EINVAL with *why = "range". */
int trl_decimal_parse(const char *s, size_t n, int scale, int64_t *out, const char **why);
/* Formats a scaled value with exactly `scale` fractional digits into out (>= 32 bytes). */
void trl_decimal_format(int64_t v, int scale, char *out);

/* ---------------------------------------------------------------------------------------------
 * Values: the small tagged union that records, the codec and expressions share.
 * Bytes values borrow their memory; the owner is named wherever a value is produced.
 */
enum trl_vkind {
    TRL_V_NULL = 0,
    TRL_V_INT,   /* i: int, decimal (scaled), bool (0/1), date (days), datetime (ms), ref id */
    TRL_V_BYTES, /* s/n: text, longtext, enum option, user, json text, attachment */
};

struct trl_value {
    enum trl_vkind kind; /* which member is meaningful */
    int64_t i;           /* integer payload */
    const char *s;       /* bytes payload (borrowed), not necessarily NUL-terminated */
    size_t n;            /* length of s */
};

/* Field types of the schema; also the static types of expression operands. */
enum trl_ftype {
    TRL_FT_TEXT = 0,
    TRL_FT_LONGTEXT,
    TRL_FT_INT,
    TRL_FT_DECIMAL,
    TRL_FT_BOOL,
    TRL_FT_DATE,
    TRL_FT_DATETIME,
    TRL_FT_ENUM,
    TRL_FT_REF,
    TRL_FT_USER,
    TRL_FT_JSON,
    TRL_FT_ATTACHMENT,
    TRL_FT_COUNT
};
/* "text", "longtext", ... ; NULL for out of range. */
const char *trl_ftype_name(enum trl_ftype t);
/* Parses a type name; -1 when unknown. */
int trl_ftype_parse(const char *name);
/* True for types whose values are TRL_V_INT. */
bool trl_ftype_is_int(enum trl_ftype t);

/* ---------------------------------------------------------------------------------------------
 * Input values: one JSON member of a request body or definition, without a JSON tree, so that
 * domain modules exchange C structs. Numbers keep their text so decimals stay exact.
 */
enum trl_in_kind { TRL_IN_NULL, TRL_IN_BOOL, TRL_IN_NUMBER, TRL_IN_STRING, TRL_IN_JSON };

struct trl_input {
    const char *name;      /* member name (NUL-terminated, borrowed) */
    enum trl_in_kind kind; /* JSON kind; TRL_IN_JSON is an array or object */
    bool b;                /* TRL_IN_BOOL value */
    const char *s;         /* number text, string bytes or compact JSON (borrowed) */
    size_t n;              /* length of s */
};

/* ---------------------------------------------------------------------------------------------
 * Identity of the caller, as far as the engine needs it. Filled by http/ or cli/.
 */
struct trl_principal {
    char user[64];       /* username, "" for the system */
    char org[64];        /* org name, "" when none */
    char role[64];       /* primary role */
    char roles[16][64];  /* every role the caller acts with */
    size_t nroles;       /* entries in roles */
    char region[64];     /* region, "" when none */
    char skills[32][64]; /* skills for dispatch and @user.skills */
    size_t nskills;      /* entries in skills */
    char groups[16][64]; /* groups (teams) the user belongs to, for scope "assigned" */
    size_t ngroups;      /* entries in groups */
    bool admin;          /* may use the meta API and see everything */
};

/* ---------------------------------------------------------------------------------------------
 * Arenas: many small allocations freed at once (a request, a decoded record).
 */
struct trl_arena_chunk;
struct trl_arena {
    struct trl_arena_chunk *head; /* owned chunk list, newest first */
};
void trl_arena_init(struct trl_arena *a);
/* Frees every chunk; the arena can be reused. */
void trl_arena_free(struct trl_arena *a);
/* Returns n bytes aligned to 16, valid until trl_arena_free; NULL on OOM. */
void *trl_arena_alloc(struct trl_arena *a, size_t n);
/* Copies s[0..n) plus a NUL into the arena; NULL on OOM. */
char *trl_arena_strndup(struct trl_arena *a, const char *s, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Logging to stderr: one line each, with level and source location.
 */
enum trl_log_level { TRL_LOG_DEBUG, TRL_LOG_INFO, TRL_LOG_WARN, TRL_LOG_ERROR };
#define trl_log(level, ...) trl_log_at((level), __FILE__, __LINE__, __VA_ARGS__)
void trl_log_at(enum trl_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Files. mkdir_p creates dir and its missing parents with mode: 0, or -1 with errno set.
 * read_file reads a whole file of at most max bytes into *out (owned, NUL-terminated; free()):
 * 0, TRL_EIO (errno set), TRL_ETOOBIG, TRL_ENOMEM. */
int trl_mkdir_p(const char *dir, unsigned mode);
int trl_read_file(const char *path, size_t max, char **out, size_t *n);

/* Hex encoding of n bytes into out (2n+1 bytes). */
void trl_hex(const void *p, size_t n, char *out);
/* Duplicates n bytes into a NUL-terminated owned string; NULL on OOM. */
char *trl_strndup(const char *s, size_t n);
/* 64-bit FNV-1a of n bytes continuing from h (start with TRL_FNV1A_INIT): for hash tables. */
#define TRL_FNV1A_INIT 1469598103934665603ULL
uint64_t trl_fnv1a(uint64_t h, const void *p, size_t n);
/* Parses a base-10 int64 exactly (optional '-', digits, nothing else); 0 or TRL_EINVAL. */
int trl_parse_i64(const char *s, size_t n, int64_t *out);

#endif
