/* json_input.c — a JSON object's members as struct trl_input, numbers kept exact. */
#include "codec.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void trl_json_tree_free(void *tree)
{
    cJSON_Delete(tree);
}

/* Walking an object's text to find the exact lexeme of each member's value. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the string literal starting at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* The end of the JSON value starting at p, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end) return NULL;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                if (!(p = skip_string(p, end))) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p > s ? p : NULL;
}

/* Walks the members of an object (k the key with its quotes) or the elements of an array (k
 * NULL), calling fn with each value's raw text; stops at fn's first non-zero result. */
static int walk(const char *s, size_t n, bool object,
                int (*fn)(void *ud, const char *k, size_t kn, const char *v, size_t vn), void *ud)
{
    const char *end = s + n, *p = skip_ws(s, end);
    char close = object ? '}' : ']';
    if (p >= end || *p != (object ? '{' : '[')) return TRL_ECORRUPT;
    p = skip_ws(p + 1, end);
    if (p < end && *p == close) return 0;
    while (p < end) {
        const char *k = NULL, *ke = NULL;
        if (object) {
            k = p, ke = *p == '"' ? skip_string(p, end) : NULL;
            if (!ke) return TRL_ECORRUPT;
            p = skip_ws(ke, end);
            if (p >= end || *p != ':') return TRL_ECORRUPT;
            p = skip_ws(p + 1, end);
        }
        const char *ve = skip_value(p, end);
        if (!ve) return TRL_ECORRUPT;
        int rc = fn(ud, k, k ? (size_t)(ke - k) : 0, p, (size_t)(ve - p));
        if (rc) return rc;
        p = skip_ws(ve, end);
        if (p < end && *p == close) return 0;
        if (p >= end || *p != ',') return TRL_ECORRUPT;
        p = skip_ws(p + 1, end);
    }
    return TRL_ECORRUPT;
}

int trl_json_each_member(const char *s, size_t n,
                         int (*fn)(void *ud, const char *k, size_t kn, const char *v, size_t vn),
                         void *ud)
{
    return walk(s, n, true, fn, ud);
}

struct element_fn {
    int (*fn)(void *ud, const char *v, size_t vn);
    void *ud;
};

static int element(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    (void)k, (void)kn;
    const struct element_fn *e = ud;
    return e->fn(e->ud, v, vn);
}

int trl_json_each_element(const char *s, size_t n, int (*fn)(void *ud, const char *v, size_t vn),
                          void *ud)
{
    struct element_fn e = {fn, ud};
    return walk(s, n, false, element, &e);
}

/* Collects each member's value text into in[i].s / in[i].n, in order. */
struct lexemes {
    struct trl_input *in;
    size_t n, cap;
};

static int lexeme(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    (void)k, (void)kn;
    struct lexemes *l = ud;
    if (l->n == l->cap) return TRL_ECORRUPT;
    l->in[l->n].s = v;
    l->in[l->n++].n = vn;
    return 0;
}

int trl_json_object_inputs(const char *s, size_t n, int max_depth, struct trl_input **in,
                           size_t *nin, void **tree, struct trl_diag *d)
{
    *in = NULL;
    *nin = 0;
    *tree = NULL;
    struct trl_diag jd;
    trl_diag_init(&jd);
    if (trl_json_check(s ? s : "", n, max_depth, &jd)) {
        struct trl_diag gd;
        trl_diag_init(&gd);
        bool grammar_ok = trl_json_check_grammar(s ? s : "", n, max_depth, &gd) == 0;
        trl_diag_reset(&gd);
        if (grammar_ok) {
            /* Valid JSON with a repeated member: which value was meant is unknowable. */
            const char *q = strchr(jd.message, '"');
            char key[96] = "";
            if (q) snprintf(key, sizeof(key), "%.*s", (int)strcspn(q + 1, "\""), q + 1);
            trl_diag_set(d, TRL_EVALIDATION, "the body repeats a member: %s", jd.message);
            trl_diag_zh(d, "请求体中有重复的成员:%s", jd.message);
            int rc = trl_diag_add_ferr(d, key, "duplicate_key", "");
            trl_diag_reset(&jd);
            return rc ? rc : TRL_EVALIDATION;
        }
        trl_diag_set(d, TRL_EJSON, "the body is not valid JSON: %s", jd.message);
        trl_diag_zh(d, "请求体不是有效的 JSON:%s", jd.message);
        trl_diag_reset(&jd);
        return TRL_EJSON;
    }
    trl_diag_reset(&jd);
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) return trl_diag_set(d, TRL_ENOMEM, "out of memory parsing JSON");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        trl_diag_set(d, TRL_EVALIDATION, "the body must be a JSON object");
        trl_diag_zh(d, "请求体必须是 JSON 对象");
        int rc = trl_diag_add_ferr(d, "", "type", "a JSON object");
        return rc ? rc : TRL_EVALIDATION;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(j);
    struct trl_input *v = calloc(cnt ? cnt : 1, sizeof(*v));
    if (!v) {
        cJSON_Delete(j);
        return trl_diag_set(d, TRL_ENOMEM, "out of memory");
    }
    /* Members appear in the text in the same order as in the tree. */
    struct lexemes lx = {.in = v, .cap = cnt};
    int rc = trl_json_each_member(s, n, lexeme, &lx);
    if (!rc && lx.n != cnt) rc = TRL_ECORRUPT;
    if (rc) {
        free(v);
        cJSON_Delete(j);
        return trl_diag_set(d, TRL_EINTERNAL, "cannot follow a checked JSON object");
    }
    size_t i = 0;
    for (cJSON *c = j->child; c; c = c->next, i++) {
        struct trl_input *x = &v[i];
        const char *vs = x->s;
        size_t vn = x->n;
        x->name = c->string;
        x->s = NULL;
        x->n = 0;
        if (cJSON_IsNull(c)) {
            x->kind = TRL_IN_NULL;
        } else if (cJSON_IsBool(c)) {
            x->kind = TRL_IN_BOOL;
            x->b = cJSON_IsTrue(c);
        } else if (cJSON_IsNumber(c)) {
            x->kind = TRL_IN_NUMBER;
            x->s = vs;
            x->n = vn;
        } else if (cJSON_IsString(c)) {
            x->kind = TRL_IN_STRING;
            x->s = c->valuestring;
            x->n = strlen(c->valuestring);
            /* cJSON stops a string at an escaped U+0000: refuse it rather than truncate. */
            const char *z = memmem(vs, vn, "\\u0000", 6);
            if (z && trl_diag_add_ferr(d, c->string, "type", "text without NUL characters"))
                rc = TRL_ENOMEM;
            else if (z)
                rc = TRL_EVALIDATION;
        } else {
            x->kind = TRL_IN_JSON;
            x->s = vs;
            x->n = vn;
        }
    }
    if (rc) {
        if (rc == TRL_EVALIDATION) {
            trl_diag_set(d, TRL_EVALIDATION, "the body has invalid values");
            trl_diag_zh(d, "请求体包含无效的值");
        }
        free(v);
        cJSON_Delete(j);
        return rc;
    }
    *in = v;
    *nin = cnt;
    *tree = j;
    return 0;
}
