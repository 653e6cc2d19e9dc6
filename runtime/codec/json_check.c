/*
 * json_check.c — strict RFC 8259 validation of untrusted JSON text before cJSON sees it.
 *
 * One pass over the bytes, no recursion: containers live on an explicit stack of frames bounded by
 * max_depth (64 frames inline, the rest on the heap). Strings are scanned eight bytes at a time
 * until a quote, backslash, control byte or non-ASCII byte shows up; non-ASCII bytes are checked
 * as UTF-8 in place (no overlongs, no UTF-8-encoded surrogates, nothing above U+10FFFF).
 *
 * Duplicate keys: every key of an open object is pushed on a key stack as (hash, decoded text,
 * position). Keys without escapes borrow their text from the input; keys with escapes are decoded
 * into an arena, so "a" and "\u0061" compare equal. When an object closes its keys are checked
 * (pairwise up to 16 keys, sorted otherwise: O(k log k) whatever the hash does, so crafted
 * collisions cannot make it quadratic) and then popped. The error names the earliest second
 * occurrence of a key. Because the check runs at the closing brace, an error that comes later
 * inside the same object (a bad number, say) is reported instead of the duplicate.
 *
 * Positions: "line L, column C" are 1-based. Lines end at LF, CR LF or a lone CR. Columns count
 * characters (Unicode code points), not bytes; a tab counts as one. They are computed only when an
 * error is reported, by rescanning the input up to the error.
 *
 * Depth: each array or object is one level; a scalar at the top is depth 0, "[]" is depth 1.
 * Opening a container beyond max_depth levels is refused; a negative max_depth counts as 0.
 */
#include "codec/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects with at most this many keys are checked pairwise; larger ones are sorted. */
#define SMALL_OBJECT 16
/* Frames kept inside struct jc before the stack moves to the heap. */
#define INLINE_FRAMES 64
/* Longest key text quoted in a "duplicate key" message, in bytes. */
#define KEY_QUOTE_MAX 64

struct jkey {
    uint64_t hash;    /* hash of the decoded key text */
    const char *text; /* decoded text: borrowed from the input or from jc.arena */
    size_t len;       /* bytes of text */
    size_t pos;       /* input offset of the key's opening quote, for the error message */
};

struct jframe {
    size_t key0; /* index in jc.keys of this object's first key (unused for arrays) */
    bool obj;    /* object (true) or array (false) */
};

struct jc {
    const unsigned char *s;           /* start of the input (borrowed) */
    const unsigned char *e;           /* end of the input: s + n, never dereferenced */
    struct trl_diag *d;               /* where a failure is described (borrowed, may be NULL) */
    struct jkey *keys;                /* owned stack of the keys of every open object */
    size_t nkeys;                     /* used entries of keys */
    size_t capkeys;                   /* allocated entries of keys */
    struct trl_arena arena;           /* decoded text of keys that contain escapes */
    struct jframe *st;                /* open containers: inl, or owned heap copy when deeper */
    size_t depth;                     /* used entries of st */
    size_t capst;                     /* allocated entries of st */
    struct jframe inl[INLINE_FRAMES]; /* initial frame storage */
    bool allow_dups;                  /* grammar only: duplicate keys pass */
};

/* ---------------------------------------------------------------------------------------------
 * Errors
 */
static void position(const unsigned char *s, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char b = s[i];
        if (b == '\n') {
            if (i == 0 || s[i - 1] != '\r') l++;
            c = 1;
        } else if (b == '\r') {
            l++;
            c = 1;
        } else if ((b & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int fail(struct jc *j, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails with TRL_EJSON: "line L, column C: " for position at, then the printf-style text. */
static int fail(struct jc *j, const unsigned char *at, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    size_t line, col;
    position(j->s, (size_t)(at - j->s), &line, &col);
    return trl_diag_set(j->d, TRL_EJSON, "line %zu, column %zu: %s", line, col, what);
}

static int nomem(struct jc *j)
{
    return trl_diag_set(j->d, TRL_ENOMEM, "out of memory while checking JSON");
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8
 */
/* Length of the well-formed multi-byte sequence at p (p < e, *p >= 0x80), or 0 when it is not
 * well-formed (bad lead byte, overlong, surrogate, above U+10FFFF, truncated by e). */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *e)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if ((size_t)(e - p) <= need) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k <= need; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return need + 1;
}

/* Code point of the well-formed sequence p[0..len). */
static uint32_t utf8_decode(const unsigned char *p, size_t len)
{
    if (len == 1) return p[0];
    uint32_t cp = p[0] & (0x7F >> len);
    for (size_t k = 1; k < len; k++)
        cp = (cp << 6) | (p[k] & 0x3F);
    return cp;
}

/* Fails with a description of the unexpected character at p (p < e). */
static int unexpected(struct jc *j, const unsigned char *p, const char *what)
{
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7F) return fail(j, p, "%s, found '%c'", what, c);
    if (c < 0x80) return fail(j, p, "%s, found U+%04X", what, (unsigned)c);
    size_t len = utf8_seq(p, j->e);
    if (!len) return fail(j, p, "invalid UTF-8");
    return fail(j, p, "%s, found U+%04X", what, (unsigned)utf8_decode(p, len));
}

/* ---------------------------------------------------------------------------------------------
 * Scalars
 */
static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        int x;
        if (c >= '0' && c <= '9')
            x = c - '0';
        else if (c >= 'a' && c <= 'f')
            x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            x = c - 'A' + 10;
        else
            return -1;
        v = (v << 4) | x;
    }
    return v;
}

/* Number at *pp (a '-' or a digit); advances *pp past it. */
static int scan_number(struct jc *j, const unsigned char **pp)
{
    const unsigned char *p = *pp, *e = j->e;
    if (*p == '-') p++;
    if (p == e || !is_digit(*p)) return fail(j, p, "expected a digit after '-'");
    if (*p == '0') {
        p++;
        if (p < e && is_digit(*p)) return fail(j, p - 1, "leading zero in number");
    } else {
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p == e || !is_digit(*p)) return fail(j, p, "expected a digit after the decimal point");
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || !is_digit(*p)) return fail(j, p, "expected a digit in the exponent");
        while (p < e && is_digit(*p))
            p++;
    }
    *pp = p;
    return 0;
}

/* true, false or null at *pp (first byte t, f or n); advances *pp past it. */
static int scan_literal(struct jc *j, const unsigned char **pp)
{
    const unsigned char *p = *pp;
    const char *lit = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
    size_t len = strlen(lit), have = (size_t)(j->e - p);
    if (have >= len && memcmp(p, lit, len) == 0) {
        *pp = p + len;
        return 0;
    }
    if (have < len && memcmp(p, lit, have) == 0) return fail(j, j->e, "unexpected end of input");
    return fail(j, p, "invalid literal (expected %s)", lit);
}

/* ---------------------------------------------------------------------------------------------
 * Strings
 */
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when one of the 8 bytes in w is '"', '\\', < 0x20 or >= 0x80. The lowest flagged byte
 * is always a true hit (borrows only flag bytes above a real one). */
static inline uint64_t special8(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w) | w) & HIGHS;
}

/* Bytes of plain text (no special byte) at p, looking 8 at a time; stops within 8 of e. */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *e)
{
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = special8(w);
        if (m) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            p += (unsigned)__builtin_ctzll(m) >> 3;
#endif
            return p;
        }
        p += 8;
    }
    return p;
}

/* String whose opening quote is at *pp; advances *pp past the closing quote. *esc (may be NULL)
 * tells whether the string contains escapes. */
static int scan_string(struct jc *j, const unsigned char **pp, bool *esc)
{
    const unsigned char *open = *pp, *p = open + 1, *e = j->e;
    bool had_esc = false;
    for (;;) {
        p = skip_plain(p, e);
        if (p == e) return fail(j, open, "unterminated string");
        unsigned char c = *p;
        if (c == '"') break;
        if (c >= 0x80) {
            size_t len = utf8_seq(p, e);
            if (!len) return fail(j, p, "invalid UTF-8");
            p += len;
        } else if (c == '\\') {
            had_esc = true;
            if (e - p < 2) return fail(j, open, "unterminated string");
            c = p[1];
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
                c == 't') {
                p += 2;
                continue;
            }
            if (c != 'u') {
                if (c >= 0x20 && c < 0x7F) return fail(j, p, "invalid escape '\\%c'", c);
                return fail(j, p, "invalid escape (backslash before U+%04X)", (unsigned)c);
            }
            int cp = e - p >= 6 ? hex4(p + 2) : -1;
            if (cp < 0) return fail(j, p, "invalid \\u escape (expected 4 hex digits)");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(j, p, "lone low surrogate \\u%04X", (unsigned)cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = e - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(j, p, "high surrogate \\u%04X not followed by a low surrogate",
                                (unsigned)cp);
                p += 6;
            }
            p += 6;
        } else if (c < 0x20) {
            return fail(j, p, "unescaped control character U+%04X in string", (unsigned)c);
        } else {
            p++; /* plain byte: without ctz, skip_plain stops at the start of a chunk */
        }
    }
    *pp = p + 1;
    if (esc) *esc = had_esc;
    return 0;
}

/* Decodes the escaped string body s[0..n) (already checked) into out; returns the length. */
static size_t unescape(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = (char)s[i++];
            continue;
        }
        unsigned char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b':
            out[o++] = '\b';
            continue;
        case 'f':
            out[o++] = '\f';
            continue;
        case 'n':
            out[o++] = '\n';
            continue;
        case 'r':
            out[o++] = '\r';
            continue;
        case 't':
            out[o++] = '\t';
            continue;
        case 'u':
            break;
        default:
            out[o++] = (char)c;
            continue;
        }
        uint32_t cp = (uint32_t)hex4(s + i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(s + i + 2) - 0xDC00);
            i += 6;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Keys
 */
static uint64_t key_hash(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

static inline bool key_eq(const struct jkey *a, const struct jkey *b)
{
    return a->hash == b->hash && a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

static int key_cmp(const void *pa, const void *pb)
{
    const struct jkey *a = pa, *b = pb;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return memcmp(a->text, b->text, a->len);
}

/* Object key at *pp (expected to be a string), recorded on the key stack; advances *pp past the
 * ':' that follows it. */
static int scan_key(struct jc *j, const unsigned char **pp)
{
    const unsigned char *open = *pp, *p = open, *e = j->e;
    bool esc;
    if (p == e) return fail(j, p, "unexpected end of input");
    if (*p != '"') return unexpected(j, p, "expected a string key");
    int rc = scan_string(j, &p, &esc);
    if (rc) return rc;
    if (j->nkeys == j->capkeys) {
        size_t cap = j->capkeys ? j->capkeys * 2 : 64;
        struct jkey *k = cap <= SIZE_MAX / sizeof(*k) ? realloc(j->keys, cap * sizeof(*k)) : NULL;
        if (!k) return nomem(j);
        j->keys = k;
        j->capkeys = cap;
    }
    struct jkey *k = &j->keys[j->nkeys++];
    size_t raw = (size_t)(p - open) - 2;
    if (esc) {
        char *out = trl_arena_alloc(&j->arena, raw ? raw : 1);
        if (!out) return nomem(j);
        k->len = unescape(open + 1, raw, out);
        k->text = out;
    } else {
        k->len = raw;
        k->text = (const char *)open + 1;
    }
    k->hash = key_hash(k->text, k->len);
    k->pos = (size_t)(open - j->s);
    p = skip_ws(p, e);
    if (p == e) return fail(j, p, "unexpected end of input");
    if (*p != ':') return unexpected(j, p, "expected ':' after the object key");
    *pp = p + 1;
    return 0;
}

/* Fails with "duplicate key" for k, quoting its text (escaped, cut at a character boundary). */
static int duplicate(struct jc *j, const struct jkey *k)
{
    char q[KEY_QUOTE_MAX * 6 + 8];
    size_t o = 0, i = 0;
    const unsigned char *t = (const unsigned char *)k->text;
    while (i < k->len && i < KEY_QUOTE_MAX) {
        unsigned char c = t[i];
        size_t len = c < 0x80 ? 1 : utf8_seq(t + i, t + k->len);
        if (len == 0 || i + len > KEY_QUOTE_MAX) break;
        if (c == '"' || c == '\\') {
            q[o++] = '\\';
            q[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(q + o, sizeof(q) - o, "\\u%04X", (unsigned)c);
        } else {
            memcpy(q + o, t + i, len);
            o += len;
        }
        i += len;
    }
    if (i < k->len) {
        memcpy(q + o, "...", 3);
        o += 3;
    }
    q[o] = 0;
    return fail(j, j->s + k->pos, "duplicate key \"%s\"", q);
}

/* Checks the keys of the object whose keys start at index key0, then pops them. */
static int close_object(struct jc *j, size_t key0)
{
    struct jkey *k = j->keys + key0;
    size_t n = j->nkeys - key0;
    j->nkeys = key0;
    if (n < 2 || j->allow_dups) return 0;
    if (n <= SMALL_OBJECT) {
        for (size_t i = 1; i < n; i++)
            for (size_t m = 0; m < i; m++)
                if (key_eq(&k[i], &k[m])) return duplicate(j, &k[i]);
        return 0;
    }
    qsort(k, n, sizeof(*k), key_cmp);
    const struct jkey *dup = NULL;
    for (size_t i = 0; i < n;) {
        size_t r = i + 1;
        while (r < n && key_eq(&k[r], &k[i]))
            r++;
        if (r - i >= 2) {
            /* In text order, the run's second occurrence is where the key became a duplicate. */
            size_t a = i, b = i + 1;
            if (k[b].pos < k[a].pos) a = i + 1, b = i;
            for (size_t m = i + 2; m < r; m++) {
                if (k[m].pos < k[a].pos)
                    b = a, a = m;
                else if (k[m].pos < k[b].pos)
                    b = m;
            }
            if (!dup || k[b].pos < dup->pos) dup = &k[b];
        }
        i = r;
    }
    return dup ? duplicate(j, dup) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Structure
 */
static int push(struct jc *j, bool obj)
{
    if (j->depth == j->capst) {
        size_t cap = j->capst * 2;
        struct jframe *st;
        if (j->st == j->inl) {
            st = malloc(cap * sizeof(*st));
            if (st) memcpy(st, j->inl, sizeof(j->inl));
        } else {
            st = realloc(j->st, cap * sizeof(*st));
        }
        if (!st) return nomem(j);
        j->st = st;
        j->capst = cap;
    }
    j->st[j->depth].obj = obj;
    j->st[j->depth].key0 = j->nkeys;
    j->depth++;
    return 0;
}

static int parse(struct jc *j, size_t max_depth)
{
    const unsigned char *p = j->s, *e = j->e;
    int rc;
    if (e - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        return fail(j, p, "byte order mark (BOM) is not allowed");
    p = skip_ws(p, e);
    if (p == e) return fail(j, p, "empty input");
    for (;;) {
        /* A value is expected at p. */
        p = skip_ws(p, e);
        if (p == e) return fail(j, p, "unexpected end of input");
        unsigned char c = *p;
        if (c == '"') {
            rc = scan_string(j, &p, NULL);
        } else if (c == '-' || is_digit(c)) {
            rc = scan_number(j, &p);
        } else if (c == 't' || c == 'f' || c == 'n') {
            rc = scan_literal(j, &p);
        } else if (c == '[' || c == '{') {
            if (j->depth >= max_depth)
                return fail(j, p, "nesting deeper than %zu levels", max_depth);
            rc = push(j, c == '{');
            if (rc) return rc;
            p = skip_ws(p + 1, e);
            if (p < e && *p == (c == '[' ? ']' : '}')) {
                p++;
                j->depth--;
            } else if (c == '[') {
                continue;
            } else {
                rc = scan_key(j, &p);
                if (rc) return rc;
                continue;
            }
        } else {
            return unexpected(j, p, "expected a value");
        }
        if (rc) return rc;

        /* After a value: close containers until one continues with ','. */
        for (;;) {
            p = skip_ws(p, e);
            if (j->depth == 0) {
                if (p != e) return fail(j, p, "trailing characters after the JSON value");
                return 0;
            }
            if (p == e) return fail(j, p, "unexpected end of input");
            struct jframe *f = &j->st[j->depth - 1];
            if (*p == ',') {
                const unsigned char *comma = p;
                p = skip_ws(p + 1, e);
                if (!f->obj) {
                    if (p < e && *p == ']') return fail(j, comma, "trailing comma in array");
                } else {
                    if (p < e && *p == '}') return fail(j, comma, "trailing comma in object");
                    rc = scan_key(j, &p);
                    if (rc) return rc;
                }
                break;
            }
            if (f->obj && *p == '}') {
                rc = close_object(j, f->key0);
                if (rc) return rc;
            } else if (f->obj || *p != ']') {
                return unexpected(j, p,
                                  f->obj ? "expected ',' or '}' after an object member"
                                         : "expected ',' or ']' after an array element");
            }
            p++;
            j->depth--;
        }
    }
}

static int check(const char *s, size_t n, int max_depth, bool allow_dups, struct trl_diag *d)
{
    struct jc j;
    j.allow_dups = allow_dups;
    j.s = (const unsigned char *)(n ? s : "");
    j.e = j.s + n;
    j.d = d;
    j.keys = NULL;
    j.nkeys = j.capkeys = 0;
    trl_arena_init(&j.arena);
    j.st = j.inl;
    j.depth = 0;
    j.capst = INLINE_FRAMES;

    int rc = parse(&j, max_depth > 0 ? (size_t)max_depth : 0);

    if (j.st != j.inl) free(j.st);
    trl_arena_free(&j.arena);
    free(j.keys);
    return rc;
}

int trl_json_check(const char *s, size_t n, int max_depth, struct trl_diag *d)
{
    return check(s, n, max_depth, false, d);
}

int trl_json_check_grammar(const char *s, size_t n, int max_depth, struct trl_diag *d)
{
    return check(s, n, max_depth, true, d);
}
