/*
 * expr.c — lexer, recursive-descent parser, type checker, evaluator and index planner of the
 * expression language declared in expr.h.
 *
 * A compiled expression is one arena: the struct trl_expr itself, every node, every decoded string
 * literal and every search table live in it, so trl_expr_free is one trl_arena_free and a failed
 * parse leaks nothing. Literals are converted to the column's representation while parsing, so
 * evaluation only compares struct trl_value's. Error columns count code points from 1.
 */
#include "expr/expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPR_MAX_SRC    4096
#define EXPR_MAX_DEPTH  64
#define EXPR_MAX_IN     256
#define EXPR_MS_PER_DAY 86400000LL

/* ---------------------------------------------------------------------------------------------
 * Compiled form
 */
enum expr_op {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_CONTAINS,
    OP_PREFIX,
    OP_IN,
    OP_NOTIN,
};

enum expr_var {
    VAR_NOW,
    VAR_TODAY,
    VAR_USER_ID,
    VAR_USER_ORG,
    VAR_USER_ROLE,
    VAR_USER_REGION,
    VAR_USER_SKILLS,
};

enum operand_kind {
    OPND_LIT,  /* converted literal in v */
    OPND_NULL, /* the null literal */
    OPND_VAR,  /* @variable, resolved at evaluation against the column's type */
    OPND_COL,  /* another column of a compatible type */
};

struct col_ref {
    int id;              /* resolver's column id */
    enum trl_ftype type; /* static type */
    int scale;           /* decimal places for decimals */
    bool indexed;        /* the resolver said an index exists */
};

struct operand {
    enum operand_kind kind; /* which members below are meaningful */
    struct trl_value v;     /* OPND_LIT: value (bytes in the expression's arena) */
    enum expr_var var;      /* OPND_VAR: which variable */
    struct col_ref col;     /* OPND_COL: the other column */
    const char *folded;     /* OPND_LIT of '~': ASCII-lowercased needle */
    const int32_t *fail;    /* OPND_LIT of '~': KMP failure table over folded */
};

enum node_kind { NODE_OR, NODE_AND, NODE_NOT, NODE_CMP };

struct node {
    enum node_kind kind;   /* what shape */
    struct node *kids;     /* OR/AND: first child; NOT: the negated child */
    struct node *next;     /* next sibling in an OR/AND list */
    enum expr_op op;       /* CMP: operator */
    struct col_ref col;    /* CMP: left-hand column */
    struct operand *opnds; /* CMP: operands (one, or the in-list) */
    size_t nopnds;         /* CMP: number of operands */
};

struct trl_expr {
    struct trl_arena arena; /* owns this struct and everything it points to */
    struct node *root;      /* the tree */
};

/* ---------------------------------------------------------------------------------------------
 * Lexer
 */
enum tok_kind {
    T_EOF,
    T_IDENT,
    T_STRING,
    T_NUMBER,
    T_VAR,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_TILDE,
    T_PREFIX,
    T_AND,
    T_OR,
    T_BANG,
    T_IN,
    T_NOT,
    T_TRUE,
    T_FALSE,
    T_NULL,
};

struct tok {
    enum tok_kind kind; /* what was read */
    size_t off;         /* byte offset of the first byte in the source */
    size_t len;         /* bytes of source text */
    const char *s;      /* T_STRING: decoded bytes (arena) */
    size_t n;           /* T_STRING: decoded length */
    enum expr_var var;  /* T_VAR: which variable */
    bool param;         /* a bound @param.name: s/n hold its value text */
};

/* A resolved column during parsing, with what messages need. */
struct field_info {
    struct col_ref col;         /* what goes into the tree */
    const char *name;           /* name in the source */
    size_t nlen;                /* its length */
    size_t off;                 /* its offset in the source */
    const char *const *options; /* enum options (borrowed from the resolver) */
    size_t noptions;            /* number of options */
};

struct parser {
    const char *src;                      /* source text */
    size_t n;                             /* its length */
    size_t pos;                           /* next unread byte */
    struct tok tok;                       /* current token */
    struct trl_arena *arena;              /* the expression's arena */
    trl_expr_resolve_fn resolve;          /* column resolver */
    void *ud;                             /* its user data */
    struct trl_diag *d;                   /* where errors go */
    int depth;                            /* current nesting of '(' and '!' */
    const struct trl_expr_params *params; /* values of @param.name, NULL: none */
};

static int src_col(const struct parser *p, size_t off)
{
    return 1 + (int)trl_utf8_len(p->src, off);
}

static int perr(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, size_t off, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return trl_diag_set(p->d, TRL_EQUERY, "column %d: %s", src_col(p, off), msg);
}

/* Records code with "column N: ..." naming the field at fault. */
static int vferr(struct parser *p, int code, const struct field_info *f, size_t off,
                 const char *fmt, va_list ap)
{
    char msg[448];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    int rc = trl_diag_set(p->d, code, "column %d: %s", src_col(p, off), msg);
    char name[128];
    size_t nl = f->nlen < sizeof(name) - 1 ? f->nlen : sizeof(name) - 1;
    memcpy(name, f->name, nl);
    name[nl] = 0;
    trl_diag_field(p->d, name);
    return rc;
}

static int ferr(struct parser *p, const struct field_info *f, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int ferr(struct parser *p, const struct field_info *f, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vferr(p, TRL_EQUERY, f, off, fmt, ap);
    va_end(ap);
    return rc;
}

static int ferr_code(struct parser *p, int code, const struct field_info *f, size_t off,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int ferr_code(struct parser *p, int code, const struct field_info *f, size_t off,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vferr(p, code, f, off, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(struct parser *p)
{
    return trl_diag_set(p->d, TRL_ENOMEM, "out of memory while parsing an expression");
}

/* Length of s[0..n) cut to at most max bytes on a code point boundary. */
static size_t clip_len(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* Quoted source text of a token for messages: "found ')'", "found \"abc\"". */
static void describe(const struct parser *p, const struct tok *t, char *buf, size_t bn)
{
    if (t->kind == T_EOF) {
        snprintf(buf, bn, "end of input");
        return;
    }
    const char *s = p->src + t->off;
    size_t k = clip_len(s, t->len, 60);
    const char *more = k < t->len ? "..." : "";
    if (t->kind == T_STRING || t->kind == T_NUMBER)
        snprintf(buf, bn, "%.*s%s", (int)k, s, more);
    else
        snprintf(buf, bn, "'%.*s%s'", (int)k, s, more);
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at s[0..4) (caller checked the bytes exist); -1 when not hex. */
static long hex4(const char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes of the UTF-8 sequence led by c, 0 when c cannot lead one. */
static size_t utf8_seq_len(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

static int lex_string(struct parser *p, struct tok *t)
{
    const char *s = p->src;
    size_t start = p->pos, i = start + 1, end;
    /* Find the closing quote first so the decoded buffer can be sized. */
    for (end = i; end < p->n && s[end] != '"'; end++)
        if (s[end] == '\\') end++;
    if (end >= p->n) return perr(p, start, "unterminated string");
    char *buf = trl_arena_alloc(p->arena, end - i + 1);
    if (!buf) return oom(p);
    size_t o = 0;
    while (i < end) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20)
            return perr(p, i, "control character 0x%02x in string (use an escape such as \\n)", c);
        if (c >= 0x80) {
            size_t k = utf8_seq_len(c);
            if (k == 0 || k > end - i || !trl_utf8_valid(s + i, k))
                return perr(p, i, "string is not valid UTF-8");
            memcpy(buf + o, s + i, k);
            o += k, i += k;
            continue;
        }
        if (c != '\\') {
            buf[o++] = (char)c;
            i++;
            continue;
        }
        unsigned char e = (unsigned char)s[i + 1];
        size_t esc = i;
        i += 2;
        switch (e) {
        case '"':
            buf[o++] = '"';
            break;
        case '\\':
            buf[o++] = '\\';
            break;
        case '/':
            buf[o++] = '/';
            break;
        case 'b':
            buf[o++] = '\b';
            break;
        case 'f':
            buf[o++] = '\f';
            break;
        case 'n':
            buf[o++] = '\n';
            break;
        case 'r':
            buf[o++] = '\r';
            break;
        case 't':
            buf[o++] = '\t';
            break;
        case 'u': {
            long cp = end - i >= 4 ? hex4(s + i) : -1;
            if (cp < 0) return perr(p, esc, "invalid \\u escape in string (needs 4 hex digits)");
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return perr(p, esc, "invalid \\u escape in string: unpaired surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = -1;
                if (end - i >= 6 && s[i] == '\\' && s[i + 1] == 'u') lo = hex4(s + i + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return perr(p, esc, "invalid \\u escape in string: unpaired surrogate");
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += utf8_put(buf + o, (unsigned long)cp);
            break;
        }
        default:
            if (e >= 0x20 && e < 0x7f)
                return perr(p, esc, "invalid escape '\\%c' in string", (char)e);
            return perr(p, esc, "invalid escape in string");
        }
    }
    buf[o] = 0;
    t->kind = T_STRING;
    t->s = buf;
    t->n = o;
    p->pos = end + 1;
    return 0;
}

static int lex_number(struct parser *p, struct tok *t)
{
    const char *s = p->src;
    size_t start = p->pos, i = start;
    bool ok = true;
    if (s[i] == '-') i++;
    if (i >= p->n || !is_digit((unsigned char)s[i])) ok = false;
    while (i < p->n && is_digit((unsigned char)s[i]))
        i++;
    if (ok && i < p->n && s[i] == '.') {
        i++;
        if (i >= p->n || !is_digit((unsigned char)s[i])) ok = false;
        while (i < p->n && is_digit((unsigned char)s[i]))
            i++;
    }
    if (i < p->n && (is_ident_char((unsigned char)s[i]) || s[i] == '.')) ok = false;
    if (!ok) {
        while (i < p->n && (is_ident_char((unsigned char)s[i]) || s[i] == '.'))
            i++;
        if (i == start + 1 && s[start] == '-') return perr(p, start, "unexpected '-'");
        size_t k = clip_len(s + start, i - start, 60);
        return perr(p, start, "malformed number '%.*s'", (int)k, s + start);
    }
    t->kind = T_NUMBER;
    p->pos = i;
    return 0;
}

static const struct {
    const char *name;
    enum expr_var var;
} vars[] = {
    {"@now", VAR_NOW},
    {"@today", VAR_TODAY},
    {"@user.id", VAR_USER_ID},
    {"@user.org", VAR_USER_ORG},
    {"@user.role", VAR_USER_ROLE},
    {"@user.region", VAR_USER_REGION},
    {"@user.skills", VAR_USER_SKILLS},
};

static int lex_var(struct parser *p, struct tok *t)
{
    const char *s = p->src;
    size_t start = p->pos, i = start + 1;
    while (i < p->n && (is_ident_char((unsigned char)s[i]) || s[i] == '.'))
        i++;
    if (i - start > 7 && memcmp(s + start, "@param.", 7) == 0) {
        /* A bound parameter: its value becomes a literal converted to the column's type (in
         * convert_literal), never text spliced into the source. */
        const char *name = s + start + 7;
        size_t nl = i - start - 7;
        const struct trl_expr_params *ps = p->params;
        for (size_t k = 0; ps && k < ps->n; k++) {
            if (strlen(ps->names[k]) != nl || memcmp(ps->names[k], name, nl) != 0) continue;
            if (!ps->values[k])
                return perr(p, start, "parameter '%.*s' has no value", (int)clip_len(name, nl, 60),
                            name);
            t->kind = T_STRING;
            t->param = true;
            t->n = strlen(ps->values[k]);
            if (!(t->s = trl_arena_strndup(p->arena, ps->values[k], t->n)))
                return trl_diag_set(p->d, TRL_ENOMEM, "out of memory");
            t->len = i - start;
            p->pos = i;
            return 0;
        }
        return perr(p, start, "unknown parameter '%.*s'%s", (int)clip_len(s + start, i - start, 60),
                    s + start, ps && ps->n ? "" : " (this expression takes no parameters)");
    }
    for (size_t k = 0; k < sizeof(vars) / sizeof(vars[0]); k++) {
        if (strlen(vars[k].name) == i - start && memcmp(vars[k].name, s + start, i - start) == 0) {
            t->kind = T_VAR;
            t->var = vars[k].var;
            p->pos = i;
            return 0;
        }
    }
    size_t k = clip_len(s + start, i - start, 60);
    return perr(p, start,
                "unknown variable '%.*s' (known: @now, @today, @user.id, @user.org, @user.role, "
                "@user.region, @user.skills)",
                (int)k, s + start);
}

static const struct {
    const char *word;
    enum tok_kind kind;
} keywords[] = {
    {"in", T_IN}, {"not", T_NOT}, {"true", T_TRUE}, {"false", T_FALSE}, {"null", T_NULL},
};

/* Reads the next token into p->tok. */
static int advance(struct parser *p)
{
    const char *s = p->src;
    while (p->pos < p->n &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
    struct tok t = {.off = p->pos};
    int rc = 0;
    if (p->pos >= p->n) {
        t.kind = T_EOF;
        p->tok = t;
        return 0;
    }
    unsigned char c = (unsigned char)s[p->pos];
    unsigned char c2 = p->pos + 1 < p->n ? (unsigned char)s[p->pos + 1] : 0;
    size_t w = 1;
    switch (c) {
    case '(':
        t.kind = T_LPAREN;
        break;
    case ')':
        t.kind = T_RPAREN;
        break;
    case ',':
        t.kind = T_COMMA;
        break;
    case '~':
        t.kind = T_TILDE;
        break;
    case '=':
        t.kind = T_EQ;
        break;
    case '!':
        t.kind = c2 == '=' ? T_NE : T_BANG;
        w = c2 == '=' ? 2 : 1;
        break;
    case '<':
        t.kind = c2 == '=' ? T_LE : T_LT;
        w = c2 == '=' ? 2 : 1;
        break;
    case '>':
        t.kind = c2 == '=' ? T_GE : T_GT;
        w = c2 == '=' ? 2 : 1;
        break;
    case '^':
        if (c2 != '=') return perr(p, p->pos, "unexpected '^' (did you mean '^='?)");
        t.kind = T_PREFIX, w = 2;
        break;
    case '&':
        if (c2 != '&') return perr(p, p->pos, "unexpected '&' (did you mean '&&'?)");
        t.kind = T_AND, w = 2;
        break;
    case '|':
        if (c2 != '|') return perr(p, p->pos, "unexpected '|' (did you mean '||'?)");
        t.kind = T_OR, w = 2;
        break;
    case '"':
        if ((rc = lex_string(p, &t))) return rc;
        w = 0;
        break;
    case '@':
        if ((rc = lex_var(p, &t))) return rc;
        w = 0;
        break;
    default:
        if (c == '-' || is_digit(c)) {
            if ((rc = lex_number(p, &t))) return rc;
            w = 0;
        } else if (is_ident_start(c)) {
            size_t i = p->pos;
            while (i < p->n && is_ident_char((unsigned char)s[i]))
                i++;
            t.kind = T_IDENT;
            for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
                if (strlen(keywords[k].word) == i - p->pos &&
                    memcmp(keywords[k].word, s + p->pos, i - p->pos) == 0)
                    t.kind = keywords[k].kind;
            p->pos = i;
            w = 0;
        } else {
            size_t k = utf8_seq_len(c);
            if (c >= 0x80 && k && k <= p->n - p->pos && trl_utf8_valid(s + p->pos, k))
                return perr(p, p->pos, "unexpected character '%.*s'", (int)k, s + p->pos);
            if (c > 0x20 && c < 0x7f) return perr(p, p->pos, "unexpected character '%c'", c);
            return perr(p, p->pos, "unexpected byte 0x%02x", c);
        }
    }
    p->pos += w;
    t.len = p->pos - t.off;
    p->tok = t;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Type checking and literal conversion
 */
static bool text_like(enum trl_ftype t)
{
    return t == TRL_FT_TEXT || t == TRL_FT_LONGTEXT || t == TRL_FT_ENUM || t == TRL_FT_USER;
}

static const char *op_text(enum expr_op op)
{
    static const char *const t[] = {"=", "!=", "<", "<=", ">", ">=", "~", "^=", "in", "not in"};
    return t[op];
}

static const char *ftname(enum trl_ftype t)
{
    const char *s = trl_ftype_name(t);
    return s ? s : "unknown";
}

static int resolve_field(struct parser *p, const struct tok *t, struct field_info *f)
{
    struct trl_expr_field out = {0};
    memset(f, 0, sizeof(*f));
    f->name = p->src + t->off;
    f->nlen = t->len;
    f->off = t->off;
    int nl = (int)clip_len(f->name, f->nlen, 100);
    int rc = p->resolve(p->ud, f->name, f->nlen, &out);
    if (rc == TRL_ENOTFOUND) return ferr(p, f, t->off, "unknown field '%.*s'", nl, f->name);
    if (rc == TRL_ENOMEM) return oom(p);
    if (rc)
        return ferr_code(p, rc, f, t->off, "field '%.*s' cannot be used here (%s)", nl, f->name,
                         trl_err_token(rc));
    if ((unsigned)out.type >= TRL_FT_COUNT || out.scale < 0 || out.scale > 18 ||
        (out.noptions && !out.options))
        return ferr_code(p, TRL_EINTERNAL, f, t->off, "field '%.*s' has an unusable definition", nl,
                         f->name);
    f->col.id = out.id;
    f->col.type = out.type;
    f->col.scale = out.type == TRL_FT_DECIMAL ? out.scale : 0;
    f->col.indexed = out.indexed;
    f->options = out.options;
    f->noptions = out.noptions;
    return 0;
}

/* Lowercased copy and KMP failure table of a '~' needle, so matching is linear. */
static int prepare_contains(struct parser *p, struct operand *o)
{
    size_t n = o->v.n;
    char *f = trl_arena_alloc(p->arena, n + 1);
    int32_t *fail = trl_arena_alloc(p->arena, (n + 1) * sizeof(int32_t));
    if (!f || !fail) return oom(p);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o->v.s[i];
        f[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    f[n] = 0;
    if (n) fail[0] = 0;
    for (size_t i = 1, k = 0; i < n; i++) {
        while (k > 0 && f[i] != f[k])
            k = (size_t)fail[k - 1];
        if (f[i] == f[k]) k++;
        fail[i] = (int32_t)k;
    }
    o->folded = f;
    o->fail = fail;
    return 0;
}

/* Converts the literal token t into the representation of field f for operator op. */
static int convert_literal(struct parser *p, const struct field_info *f, enum expr_op op,
                           const struct tok *t, struct operand *o)
{
    char lit[96];
    describe(p, t, lit, sizeof(lit));
    int nl = (int)clip_len(f->name, f->nlen, 100);
    const char *fn = f->name;
    const char *tn = ftname(f->col.type);
    const char *num = p->src + t->off;
    size_t numlen = t->len;
    struct tok pt;
    if (t->param) {
        /* A parameter's text takes the kind the column needs: a number for numeric columns,
         * true/false for bool, a string otherwise (the conversion below checks it). */
        pt = *t;
        enum trl_ftype ct = f->col.type;
        if (ct == TRL_FT_INT || ct == TRL_FT_REF || ct == TRL_FT_DECIMAL) {
            pt.kind = T_NUMBER;
            num = t->s;
            numlen = t->n;
        } else if (ct == TRL_FT_BOOL && t->n == 4 && memcmp(t->s, "true", 4) == 0) {
            pt.kind = T_TRUE;
        } else if (ct == TRL_FT_BOOL && t->n == 5 && memcmp(t->s, "false", 5) == 0) {
            pt.kind = T_FALSE;
        }
        t = &pt;
    }
    o->kind = OPND_LIT;
    if (op == OP_CONTAINS || op == OP_PREFIX) {
        if (t->kind != T_STRING)
            return ferr(p, f, t->off, "'%s' needs a string; found %s", op_text(op), lit);
        o->v = (struct trl_value){.kind = TRL_V_BYTES, .s = t->s, .n = t->n};
        return op == OP_CONTAINS ? prepare_contains(p, o) : 0;
    }
    o->v = (struct trl_value){.kind = TRL_V_INT};
    switch (f->col.type) {
    case TRL_FT_INT:
    case TRL_FT_REF:
        if (t->kind != T_NUMBER)
            return ferr(p, f, t->off, "field '%.*s' is %s; %s is not an integer", nl, fn, tn, lit);
        if (trl_parse_i64(num, numlen, &o->v.i)) {
            if (memchr(num, '.', numlen))
                return ferr(p, f, t->off, "field '%.*s' is %s; %s is not an integer", nl, fn, tn,
                            lit);
            return ferr(p, f, t->off, "field '%.*s' is %s; %s is out of range", nl, fn, tn, lit);
        }
        return 0;
    case TRL_FT_DECIMAL: {
        const char *s = num, *why = NULL;
        size_t n = numlen;
        if (t->kind == T_STRING)
            s = t->s, n = t->n;
        else if (t->kind != T_NUMBER)
            return ferr(p, f, t->off, "field '%.*s' is decimal; %s is not a decimal", nl, fn, lit);
        if (trl_decimal_parse(s, n, f->col.scale, &o->v.i, &why)) {
            if (why && strcmp(why, "scale") == 0)
                return ferr(p, f, t->off, "field '%.*s' allows %d decimal places; %s has more", nl,
                            fn, f->col.scale, lit);
            if (why && strcmp(why, "range") == 0)
                return ferr(p, f, t->off, "field '%.*s' is decimal; %s is out of range", nl, fn,
                            lit);
            return ferr(p, f, t->off, "field '%.*s' is decimal; %s is not a decimal", nl, fn, lit);
        }
        return 0;
    }
    case TRL_FT_BOOL:
        if (t->kind != T_TRUE && t->kind != T_FALSE)
            return ferr(p, f, t->off, "field '%.*s' is bool; %s is not true or false", nl, fn, lit);
        o->v.i = t->kind == T_TRUE;
        return 0;
    case TRL_FT_DATE: {
        int32_t days;
        if (t->kind != T_STRING || trl_date_parse(t->s, t->n, &days))
            return ferr(p, f, t->off, "field '%.*s' is date; %s is not a date (\"YYYY-MM-DD\")", nl,
                        fn, lit);
        o->v.i = days;
        return 0;
    }
    case TRL_FT_DATETIME: {
        int32_t days;
        if (t->kind == T_STRING && trl_date_parse(t->s, t->n, &days) == 0) {
            o->v.i = (int64_t)days * EXPR_MS_PER_DAY;
            return 0;
        }
        if (t->kind != T_STRING || trl_datetime_parse(t->s, t->n, &o->v.i))
            return ferr(p, f, t->off,
                        "field '%.*s' is datetime; %s is not an RFC 3339 time "
                        "(\"2026-01-31T09:00:00Z\")",
                        nl, fn, lit);
        return 0;
    }
    case TRL_FT_ENUM:
        if (t->kind != T_STRING)
            return ferr(p, f, t->off, "field '%.*s' is enum; %s is not a string", nl, fn, lit);
        /* Checking a definition whose parameter has no value yet: any option will do. */
        if (f->options && !(t->param && p->params && p->params->check_only)) {
            bool found = false;
            for (size_t i = 0; i < f->noptions && !found; i++)
                found = f->options[i] && strlen(f->options[i]) == t->n &&
                        memcmp(f->options[i], t->s, t->n) == 0;
            if (!found) {
                char list[200];
                size_t o2 = 0;
                list[0] = 0;
                for (size_t i = 0; i < f->noptions && o2 < sizeof(list); i++) {
                    int w = snprintf(list + o2, sizeof(list) - o2, "%s%s", i ? ", " : "",
                                     f->options[i] ? f->options[i] : "");
                    if (w < 0) break;
                    o2 += (size_t)w;
                }
                if (o2 >= sizeof(list)) {
                    size_t k = clip_len(list, strlen(list), sizeof(list) - 5);
                    memcpy(list + k, "...", 4);
                }
                return ferr(p, f, t->off, "'%.*s' has no option %s (options: %s)", nl, fn, lit,
                            list);
            }
        }
        o->v = (struct trl_value){.kind = TRL_V_BYTES, .s = t->s, .n = t->n};
        return 0;
    case TRL_FT_TEXT:
    case TRL_FT_LONGTEXT:
    case TRL_FT_USER:
    case TRL_FT_JSON:
    case TRL_FT_ATTACHMENT:
        if (t->kind != T_STRING) {
            if (t->kind == T_NUMBER)
                return ferr(p, f, t->off, "field '%.*s' is %s; %s is not a string (quote it)", nl,
                            fn, tn, lit);
            return ferr(p, f, t->off, "field '%.*s' is %s; %s is not a string", nl, fn, tn, lit);
        }
        o->v = (struct trl_value){.kind = TRL_V_BYTES, .s = t->s, .n = t->n};
        return 0;
    default:
        return ferr(p, f, t->off, "field '%.*s' has an unsupported type", nl, fn);
    }
}

/* Parses one operand of `f op ...`; `after` names the token before it for messages. */
static int parse_operand(struct parser *p, const struct field_info *f, enum expr_op op,
                         const char *after, bool allow_col, struct operand *o)
{
    int rc;
    const struct tok *t = &p->tok;
    int nl = (int)clip_len(f->name, f->nlen, 100);
    memset(o, 0, sizeof(*o));
    switch (t->kind) {
    case T_STRING:
    case T_NUMBER:
    case T_TRUE:
    case T_FALSE:
        if ((rc = convert_literal(p, f, op, t, o))) return rc;
        break;
    case T_NULL:
        if (op != OP_EQ && op != OP_NE && op != OP_IN && op != OP_NOTIN)
            return ferr(p, f, t->off, "null can only be compared with = or != (not '%s')",
                        op_text(op));
        o->kind = OPND_NULL;
        break;
    case T_VAR: {
        enum trl_ftype ty = f->col.type;
        bool timev = t->var == VAR_NOW || t->var == VAR_TODAY;
        const char *vn = p->src + t->off;
        int vl = (int)t->len;
        if (timev && (op == OP_CONTAINS || op == OP_PREFIX))
            return ferr(p, f, t->off, "'%s' needs a string; found '%.*s'", op_text(op), vl, vn);
        if (timev && ty != TRL_FT_DATE && ty != TRL_FT_DATETIME)
            return ferr(p, f, t->off, "'%.*s' needs a date or datetime field; '%.*s' is %s", vl, vn,
                        nl, f->name, ftname(ty));
        if (!timev && !text_like(ty))
            return ferr(p, f, t->off, "'%.*s' needs a text field; '%.*s' is %s", vl, vn, nl,
                        f->name, ftname(ty));
        if (t->var == VAR_USER_SKILLS && op != OP_EQ && op != OP_NE && op != OP_IN &&
            op != OP_NOTIN)
            return ferr(p, f, t->off,
                        "'%.*s' holds several values (every skill of the caller): compare it "
                        "with =, !=, in or not in",
                        vl, vn);
        o->kind = OPND_VAR;
        o->var = t->var;
        break;
    }
    case T_IDENT:
        if (allow_col) {
            struct field_info g;
            if ((rc = resolve_field(p, t, &g))) return rc;
            int gl = (int)clip_len(g.name, g.nlen, 100);
            bool text = text_like(f->col.type) && text_like(g.col.type);
            if ((op == OP_CONTAINS || op == OP_PREFIX) && !text)
                return ferr(p, text_like(f->col.type) ? &g : f, t->off,
                            "'%s' needs text fields; '%.*s' is %s and '%.*s' is %s", op_text(op),
                            nl, f->name, ftname(f->col.type), gl, g.name, ftname(g.col.type));
            bool same = f->col.type == g.col.type && f->col.scale == g.col.scale;
            if (!same && !text)
                return ferr(p, &g, t->off, "cannot compare '%.*s' (%s) with '%.*s' (%s)", nl,
                            f->name, ftname(f->col.type), gl, g.name, ftname(g.col.type));
            o->kind = OPND_COL;
            o->col = g.col;
            break;
        }
        /* fall through */
    default: {
        char found[96];
        describe(p, t, found, sizeof(found));
        return perr(p, t->off, "expected a value after '%s' but found %s", after, found);
    }
    }
    return advance(p);
}

static struct node *new_node(struct parser *p, enum node_kind kind)
{
    struct node *nd = trl_arena_alloc(p->arena, sizeof(*nd));
    if (!nd) return NULL;
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    return nd;
}

/* After `column in` / `column not in`: "(" operand ("," operand)* ")". */
static int parse_in_list(struct parser *p, const struct field_info *f, enum expr_op op,
                         struct node *nd)
{
    int rc;
    struct operand *items = NULL;
    size_t n = 0, cap = 0;
    char found[96];
    if (p->tok.kind != T_LPAREN) {
        describe(p, &p->tok, found, sizeof(found));
        return perr(p, p->tok.off, "expected '(' after '%s' but found %s", op_text(op), found);
    }
    if ((rc = advance(p))) return rc;
    const char *after = "(";
    for (;;) {
        if (n == EXPR_MAX_IN)
            return perr(p, p->tok.off, "too many values in '%s' (at most %d)", op_text(op),
                        EXPR_MAX_IN);
        if (n == cap) { /* grow in the arena; the outgrown copies go when the arena does */
            size_t nc = cap ? cap * 4 : 4;
            struct operand *ni = trl_arena_alloc(p->arena, nc * sizeof(*ni));
            if (!ni) return oom(p);
            if (n) memcpy(ni, items, n * sizeof(*ni));
            items = ni, cap = nc;
        }
        if ((rc = parse_operand(p, f, op, after, false, &items[n]))) return rc;
        n++;
        if (p->tok.kind == T_RPAREN) break;
        if (p->tok.kind != T_COMMA) {
            describe(p, &p->tok, found, sizeof(found));
            return perr(p, p->tok.off, "expected ',' or ')' in the '%s' list but found %s",
                        op_text(op), found);
        }
        after = ",";
        if ((rc = advance(p))) return rc;
    }
    nd->opnds = items;
    nd->nopnds = n;
    return advance(p);
}

static int parse_cmp(struct parser *p, struct node **out)
{
    int rc;
    char found[96];
    struct field_info f;
    if (p->tok.kind != T_IDENT) {
        describe(p, &p->tok, found, sizeof(found));
        return perr(p, p->tok.off, "expected a field name but found %s", found);
    }
    if ((rc = resolve_field(p, &p->tok, &f))) return rc;
    int nl = (int)clip_len(f.name, f.nlen, 100);
    struct node *nd = new_node(p, NODE_CMP);
    if (!nd) return oom(p);
    nd->col = f.col;
    if ((rc = advance(p))) return rc;
    enum expr_op op;
    switch (p->tok.kind) {
    case T_EQ:
        op = OP_EQ;
        break;
    case T_NE:
        op = OP_NE;
        break;
    case T_LT:
        op = OP_LT;
        break;
    case T_LE:
        op = OP_LE;
        break;
    case T_GT:
        op = OP_GT;
        break;
    case T_GE:
        op = OP_GE;
        break;
    case T_TILDE:
        op = OP_CONTAINS;
        break;
    case T_PREFIX:
        op = OP_PREFIX;
        break;
    case T_IN:
        op = OP_IN;
        break;
    case T_NOT:
        op = OP_NOTIN;
        break;
    default:
        describe(p, &p->tok, found, sizeof(found));
        return perr(p, p->tok.off, "expected an operator after '%.*s' but found %s", nl, f.name,
                    found);
    }
    nd->op = op;
    size_t opoff = p->tok.off;
    if ((op == OP_CONTAINS || op == OP_PREFIX) && !text_like(f.col.type))
        return ferr(p, &f, opoff, "'%s' needs a text field; '%.*s' is %s", op_text(op), nl, f.name,
                    ftname(f.col.type));
    if ((rc = advance(p))) return rc;
    if (op == OP_NOTIN) {
        if (p->tok.kind != T_IN) {
            describe(p, &p->tok, found, sizeof(found));
            return perr(p, p->tok.off, "expected 'in' after 'not' but found %s", found);
        }
        if ((rc = advance(p))) return rc;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        if ((rc = parse_in_list(p, &f, op, nd))) return rc;
    } else {
        nd->opnds = trl_arena_alloc(p->arena, sizeof(*nd->opnds));
        if (!nd->opnds) return oom(p);
        nd->nopnds = 1;
        if ((rc = parse_operand(p, &f, op, op_text(op), true, nd->opnds))) return rc;
    }
    *out = nd;
    return 0;
}

static int parse_or(struct parser *p, struct node **out);

static int enter(struct parser *p)
{
    if (++p->depth > EXPR_MAX_DEPTH)
        return perr(p, p->tok.off, "expression nested deeper than %d levels", EXPR_MAX_DEPTH);
    return 0;
}

static int parse_unary(struct parser *p, struct node **out)
{
    int rc;
    char found[96];
    if (p->tok.kind == T_BANG) {
        if ((rc = enter(p))) return rc;
        struct node *nd = new_node(p, NODE_NOT);
        if (!nd) return oom(p);
        if ((rc = advance(p))) return rc;
        if ((rc = parse_unary(p, &nd->kids))) return rc;
        p->depth--;
        *out = nd;
        return 0;
    }
    if (p->tok.kind == T_LPAREN) {
        size_t open = p->tok.off;
        if ((rc = enter(p))) return rc;
        if ((rc = advance(p))) return rc;
        if ((rc = parse_or(p, out))) return rc;
        if (p->tok.kind != T_RPAREN) {
            describe(p, &p->tok, found, sizeof(found));
            return perr(p, p->tok.off, "expected ')' to close '(' at column %d but found %s",
                        src_col(p, open), found);
        }
        p->depth--;
        return advance(p);
    }
    return parse_cmp(p, out);
}

/* and := unary ("&&" unary)*; or := and ("||" and)* — one list node per chain. */
static int parse_chain(struct parser *p, struct node **out, bool is_or)
{
    int rc;
    struct node *first;
    enum tok_kind sep = is_or ? T_OR : T_AND;
    if ((rc = is_or ? parse_chain(p, &first, false) : parse_unary(p, &first))) return rc;
    if (p->tok.kind != sep) {
        *out = first;
        return 0;
    }
    struct node *nd = new_node(p, is_or ? NODE_OR : NODE_AND);
    if (!nd) return oom(p);
    nd->kids = first;
    struct node *last = first;
    while (p->tok.kind == sep) {
        if ((rc = advance(p))) return rc;
        struct node *k;
        if ((rc = is_or ? parse_chain(p, &k, false) : parse_unary(p, &k))) return rc;
        last->next = k;
        last = k;
    }
    *out = nd;
    return 0;
}

static int parse_or(struct parser *p, struct node **out)
{
    return parse_chain(p, out, true);
}

int trl_expr_parse(const char *src, size_t n, trl_expr_resolve_fn resolve, void *ud,
                   struct trl_expr **out, struct trl_diag *d)
{
    return trl_expr_parse_params(src, n, resolve, ud, NULL, out, d);
}

int trl_expr_parse_params(const char *src, size_t n, trl_expr_resolve_fn resolve, void *ud,
                          const struct trl_expr_params *params, struct trl_expr **out,
                          struct trl_diag *d)
{
    struct trl_arena arena;
    struct parser p = {.src = src ? src : "",
                       .n = src ? n : 0,
                       .arena = &arena,
                       .resolve = resolve,
                       .ud = ud,
                       .d = d,
                       .params = params};
    struct trl_expr *e = NULL;
    struct node *root = NULL;
    int rc;
    trl_arena_init(&arena);
    *out = NULL;
    if (!resolve) return trl_diag_set(d, TRL_EINVAL, "expression parse needs a resolver");
    if (p.n > EXPR_MAX_SRC) {
        p.n = EXPR_MAX_SRC;
        return trl_diag_set(d, TRL_EQUERY, "column %d: expression longer than %d bytes",
                            src_col(&p, EXPR_MAX_SRC), EXPR_MAX_SRC);
    }
    if ((rc = advance(&p))) goto out;
    if (p.tok.kind == T_EOF) {
        rc = perr(&p, p.tok.off, "empty expression");
        goto out;
    }
    if ((rc = parse_or(&p, &root))) goto out;
    if (p.tok.kind != T_EOF) {
        char found[96];
        describe(&p, &p.tok, found, sizeof(found));
        bool word = p.tok.kind == T_IDENT &&
                    ((p.tok.len == 3 && memcmp(p.src + p.tok.off, "and", 3) == 0) ||
                     (p.tok.len == 2 && memcmp(p.src + p.tok.off, "or", 2) == 0));
        rc = perr(&p, p.tok.off, "unexpected %s after the end of the expression%s", found,
                  word ? " (use && and ||)" : "");
        goto out;
    }
    e = trl_arena_alloc(&arena, sizeof(*e));
    if (!e) {
        rc = oom(&p);
        goto out;
    }
    e->root = root;
    e->arena = arena;
    *out = e;
    return 0;
out:
    trl_arena_free(&arena);
    return rc;
}

void trl_expr_free(struct trl_expr *e)
{
    if (!e) return;
    struct trl_arena a = e->arena;
    trl_arena_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 */
int trl_expr_value_cmp(enum trl_ftype type, const struct trl_value *a, const struct trl_value *b)
{
    enum trl_vkind ka = a ? a->kind : TRL_V_NULL, kb = b ? b->kind : TRL_V_NULL;
    if (ka != kb) return ka < kb ? -1 : 1;
    if (ka == TRL_V_INT) {
        int64_t x = a->i, y = b->i;
        if (type == TRL_FT_BOOL) x = x != 0, y = y != 0;
        return x < y ? -1 : x > y;
    }
    if (ka == TRL_V_BYTES) {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = m ? memcmp(a->s, b->s, m) : 0;
        if (c) return c < 0 ? -1 : 1;
        return a->n < b->n ? -1 : a->n > b->n;
    }
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b) != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

/* Value of a variable for a column of type t; TRL_V_NULL when env has no answer. */
static void var_value(enum expr_var var, enum trl_ftype t, const struct trl_expr_env *env,
                      struct trl_value *out)
{
    *out = (struct trl_value){.kind = TRL_V_NULL};
    if (!env) return;
    const char *s = NULL;
    size_t cap = 0;
    switch (var) {
    case VAR_NOW:
        out->kind = TRL_V_INT;
        out->i = t == TRL_FT_DATE ? floor_div(env->now_ms, EXPR_MS_PER_DAY) : env->now_ms;
        return;
    case VAR_TODAY:
        out->kind = TRL_V_INT;
        out->i = floor_div(env->now_ms, EXPR_MS_PER_DAY);
        if (t == TRL_FT_DATETIME) out->i *= EXPR_MS_PER_DAY;
        return;
    case VAR_USER_ID:
        if (env->user) s = env->user->user, cap = sizeof(env->user->user);
        break;
    case VAR_USER_ORG:
        if (env->user) s = env->user->org, cap = sizeof(env->user->org);
        break;
    case VAR_USER_ROLE:
        if (env->user) s = env->user->role, cap = sizeof(env->user->role);
        break;
    case VAR_USER_REGION:
        if (env->user) s = env->user->region, cap = sizeof(env->user->region);
        break;
    case VAR_USER_SKILLS:
        if (env->user && env->user->nskills)
            s = env->user->skills[0], cap = sizeof(env->user->skills[0]);
        break;
    }
    if (!s) return;
    size_t n = strnlen(s, cap);
    if (n == 0) return;
    *out = (struct trl_value){.kind = TRL_V_BYTES, .s = s, .n = n};
}

struct eval_ctx {
    trl_expr_get_fn get;            /* column reader */
    void *ud;                       /* its user data */
    const struct trl_expr_env *env; /* variables */
    struct trl_diag *d;             /* where errors go */
};

static int get_col(struct eval_ctx *c, int id, struct trl_value *v)
{
    *v = (struct trl_value){.kind = TRL_V_NULL};
    int rc = c->get(c->ud, id, v);
    if (rc && c->d && c->d->code == 0)
        trl_diag_set(c->d, rc, "reading a field for an expression failed (%s)", trl_err_token(rc));
    return rc;
}

static int operand_value(struct eval_ctx *c, const struct node *nd, const struct operand *o,
                         struct trl_value *v)
{
    switch (o->kind) {
    case OPND_LIT:
        *v = o->v;
        return 0;
    case OPND_VAR:
        var_value(o->var, nd->col.type, c->env, v);
        return 0;
    case OPND_COL:
        return get_col(c, o->col.id, v);
    case OPND_NULL:
        break;
    }
    *v = (struct trl_value){.kind = TRL_V_NULL};
    return 0;
}

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* ASCII case-insensitive substring test; linear with a literal's KMP table. */
static bool contains_ci(const struct trl_value *h, const struct trl_value *nv,
                        const struct operand *o)
{
    const unsigned char *hs = (const unsigned char *)h->s;
    size_t hn = h->n, nn = nv->n;
    if (nn == 0) return true;
    if (nn > hn) return false;
    if (o->kind == OPND_LIT && o->fail) {
        const unsigned char *f = (const unsigned char *)o->folded;
        size_t k = 0;
        for (size_t i = 0; i < hn; i++) {
            unsigned char c = fold(hs[i]);
            while (k > 0 && c != f[k])
                k = (size_t)o->fail[k - 1];
            if (c == f[k] && ++k == nn) return true;
        }
        return false;
    }
    const unsigned char *ns = (const unsigned char *)nv->s;
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t k = 0;
        while (k < nn && fold(hs[i + k]) == fold(ns[k]))
            k++;
        if (k == nn) return true;
    }
    return false;
}

static int eval_cmp(struct eval_ctx *c, const struct node *nd, bool *res)
{
    struct trl_value a, b;
    int rc = get_col(c, nd->col.id, &a);
    if (rc) return rc;
    enum trl_ftype ty = nd->col.type;
    *res = false;
    switch (nd->op) {
    case OP_EQ:
    case OP_NE:
    case OP_IN:
    case OP_NOTIN: {
        bool hit = false;
        for (size_t i = 0; i < nd->nopnds && !hit; i++) {
            const struct operand *o = &nd->opnds[i];
            if (o->kind == OPND_NULL) {
                hit = a.kind == TRL_V_NULL;
                continue;
            }
            if (o->kind == OPND_VAR && (o->var == VAR_USER_ROLE || o->var == VAR_USER_SKILLS)) {
                /* Every role (or skill) of the caller counts, not only the first. */
                const struct trl_principal *u = c->env ? c->env->user : NULL;
                size_t n = !u ? 0 : o->var == VAR_USER_ROLE ? u->nroles : u->nskills;
                for (size_t k = 0; k < n && !hit && a.kind == TRL_V_BYTES; k++) {
                    const char *v = o->var == VAR_USER_ROLE ? u->roles[k] : u->skills[k];
                    b = (struct trl_value){.kind = TRL_V_BYTES, .s = v, .n = strnlen(v, 64)};
                    hit = trl_expr_value_cmp(ty, &a, &b) == 0;
                }
                if (o->var == VAR_USER_ROLE && u && !u->nroles && u->role[0] && !hit &&
                    a.kind == TRL_V_BYTES) {
                    b = (struct trl_value){
                        .kind = TRL_V_BYTES, .s = u->role, .n = strnlen(u->role, 64)};
                    hit = trl_expr_value_cmp(ty, &a, &b) == 0;
                }
                continue;
            }
            if ((rc = operand_value(c, nd, o, &b))) return rc;
            hit =
                a.kind != TRL_V_NULL && b.kind != TRL_V_NULL && trl_expr_value_cmp(ty, &a, &b) == 0;
        }
        *res = (nd->op == OP_EQ || nd->op == OP_IN) ? hit : !hit;
        return 0;
    }
    default:
        break;
    }
    if ((rc = operand_value(c, nd, &nd->opnds[0], &b))) return rc;
    if (a.kind == TRL_V_NULL || b.kind == TRL_V_NULL) return 0;
    switch (nd->op) {
    case OP_LT:
        *res = trl_expr_value_cmp(ty, &a, &b) < 0;
        break;
    case OP_LE:
        *res = trl_expr_value_cmp(ty, &a, &b) <= 0;
        break;
    case OP_GT:
        *res = trl_expr_value_cmp(ty, &a, &b) > 0;
        break;
    case OP_GE:
        *res = trl_expr_value_cmp(ty, &a, &b) >= 0;
        break;
    case OP_CONTAINS:
        *res = a.kind == TRL_V_BYTES && b.kind == TRL_V_BYTES && contains_ci(&a, &b, &nd->opnds[0]);
        break;
    case OP_PREFIX:
        *res = a.kind == TRL_V_BYTES && b.kind == TRL_V_BYTES && b.n <= a.n &&
               (b.n == 0 || memcmp(a.s, b.s, b.n) == 0);
        break;
    default:
        break;
    }
    return 0;
}

static int eval_node(struct eval_ctx *c, const struct node *nd, bool *res)
{
    int rc;
    switch (nd->kind) {
    case NODE_OR:
    case NODE_AND: {
        bool want = nd->kind == NODE_OR; /* the value that settles the chain */
        for (const struct node *k = nd->kids; k; k = k->next) {
            if ((rc = eval_node(c, k, res))) return rc;
            if (*res == want) return 0;
        }
        *res = !want;
        return 0;
    }
    case NODE_NOT:
        if ((rc = eval_node(c, nd->kids, res))) return rc;
        *res = !*res;
        return 0;
    case NODE_CMP:
        return eval_cmp(c, nd, res);
    }
    return TRL_EINTERNAL;
}

int trl_expr_eval(const struct trl_expr *e, trl_expr_get_fn get, void *ud,
                  const struct trl_expr_env *env, bool *result, struct trl_diag *d)
{
    *result = false;
    if (!e || !get) return trl_diag_set(d, TRL_EINVAL, "expression evaluation needs a getter");
    struct eval_ctx c = {.get = get, .ud = ud, .env = env, .d = d};
    bool r = false;
    int rc = eval_node(&c, e->root, &r);
    if (rc) return rc;
    *result = r;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Plans
 */
static bool plan_operand(const struct trl_expr_env *env, const struct node *nd,
                         const struct operand *o, struct trl_value *v)
{
    switch (o->kind) {
    case OPND_LIT:
        *v = o->v;
        return true;
    case OPND_NULL:
        *v = (struct trl_value){.kind = TRL_V_NULL};
        return true;
    case OPND_VAR:
        /* A variable of several values cannot drive an index with one of them. */
        if ((o->var == VAR_USER_ROLE || o->var == VAR_USER_SKILLS) &&
            (nd->op == OP_EQ || nd->op == OP_IN))
            return false;
        var_value(o->var, nd->col.type, env, v);
        return v->kind != TRL_V_NULL;
    case OPND_COL:
        return false;
    }
    return false;
}

/* Counts an upper bound of predicates and values under the top-level && chain. */
static void plan_count(const struct node *nd, size_t *npreds, size_t *nvals)
{
    if (nd->kind == NODE_AND) {
        for (const struct node *k = nd->kids; k; k = k->next)
            plan_count(k, npreds, nvals);
        return;
    }
    if (nd->kind != NODE_CMP || !nd->col.indexed) return;
    (*npreds)++;
    *nvals += nd->nopnds;
}

struct plan_fill {
    const struct trl_expr_env *env; /* for variables */
    struct trl_expr_pred *preds;    /* output array */
    size_t npreds;                  /* used entries */
    struct trl_value *vals;         /* value pool */
    size_t nvals;                   /* used pool entries */
};

static void range_bound(struct trl_expr_pred *pr, enum expr_op op, const struct trl_value *v)
{
    bool lower = op == OP_GT || op == OP_GE, incl = op == OP_GE || op == OP_LE;
    if (lower) {
        int c = pr->has_lo ? trl_expr_value_cmp(pr->type, v, &pr->lo) : 1;
        if (c > 0 || (c == 0 && !incl)) pr->lo = *v, pr->lo_incl = incl;
        pr->has_lo = true;
    } else {
        int c = pr->has_hi ? trl_expr_value_cmp(pr->type, v, &pr->hi) : -1;
        if (c < 0 || (c == 0 && !incl)) pr->hi = *v, pr->hi_incl = incl;
        pr->has_hi = true;
    }
}

static void plan_walk(const struct node *nd, struct plan_fill *pf)
{
    if (nd->kind == NODE_AND) {
        for (const struct node *k = nd->kids; k; k = k->next)
            plan_walk(k, pf);
        return;
    }
    if (nd->kind != NODE_CMP || !nd->col.indexed) return;
    struct trl_value v;
    struct trl_expr_pred *pr = &pf->preds[pf->npreds];
    memset(pr, 0, sizeof(*pr));
    pr->id = nd->col.id;
    pr->type = nd->col.type;
    switch (nd->op) {
    case OP_EQ:
    case OP_PREFIX:
        if (!plan_operand(pf->env, nd, &nd->opnds[0], &v)) return;
        pr->kind = nd->op == OP_EQ ? TRL_PRED_EQ : TRL_PRED_PREFIX;
        pr->vals = &pf->vals[pf->nvals++];
        pr->vals[0] = v;
        pr->nvals = 1;
        pf->npreds++;
        return;
    case OP_IN:
        pr->kind = TRL_PRED_IN;
        pr->vals = &pf->vals[pf->nvals];
        for (size_t i = 0; i < nd->nopnds; i++) {
            const struct operand *o = &nd->opnds[i];
            if (o->kind == OPND_VAR && (o->var == VAR_USER_ROLE || o->var == VAR_USER_SKILLS)) {
                pr->nvals = 0; /* several values: this predicate cannot drive an index */
                return;
            }
            if (!plan_operand(pf->env, nd, o, &v)) continue;
            pr->vals[pr->nvals++] = v;
        }
        if (pr->nvals == 0) return;
        pf->nvals += pr->nvals;
        pf->npreds++;
        return;
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        if (!plan_operand(pf->env, nd, &nd->opnds[0], &v) || v.kind == TRL_V_NULL) return;
        for (size_t i = 0; i < pf->npreds; i++) {
            if (pf->preds[i].kind == TRL_PRED_RANGE && pf->preds[i].id == nd->col.id) {
                range_bound(&pf->preds[i], nd->op, &v);
                return;
            }
        }
        pr->kind = TRL_PRED_RANGE;
        range_bound(pr, nd->op, &v);
        pf->npreds++;
        return;
    }
    default:
        return;
    }
}

int trl_expr_plan_build(const struct trl_expr *e, const struct trl_expr_env *env,
                        struct trl_expr_plan *plan)
{
    size_t npreds = 0, nvals = 0;
    plan->preds = NULL;
    plan->npreds = 0;
    if (!e || !e->root) return 0;
    plan_count(e->root, &npreds, &nvals);
    if (npreds == 0) return 0;
    /* One block: predicates, then the values they point at. */
    struct trl_expr_pred *preds =
        malloc(npreds * sizeof(*preds) + nvals * sizeof(struct trl_value));
    if (!preds) return TRL_ENOMEM;
    struct plan_fill pf = {
        .env = env, .preds = preds, .vals = (struct trl_value *)(preds + npreds)};
    plan_walk(e->root, &pf);
    if (pf.npreds == 0) {
        free(preds);
        return 0;
    }
    plan->preds = preds;
    plan->npreds = pf.npreds;
    return 0;
}

void trl_expr_plan_free(struct trl_expr_plan *plan)
{
    if (!plan) return;
    free(plan->preds);
    plan->preds = NULL;
    plan->npreds = 0;
}

static size_t conjuncts(const struct node *nd)
{
    if (nd->kind != NODE_AND) return 1;
    size_t n = 0;
    for (const struct node *k = nd->kids; k; k = k->next)
        n += conjuncts(k);
    return n;
}

size_t trl_expr_conjuncts(const struct trl_expr *e)
{
    return e && e->root ? conjuncts(e->root) : 0;
}
