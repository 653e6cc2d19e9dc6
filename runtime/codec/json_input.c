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

/* Walking text that trl_json_check accepted, to find the exact lexeme of each top-level member's
 * value (the walk needs no error handling: the text is known to be valid). */
static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    p++;
    while (p < e && *p != '"')
        p += (*p == '\\') ? 2 : 1;
    return p < e ? p + 1 : e;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e) return e;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = skip_string(p, e);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p;
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
    const char *p = skip_ws(s, s + n), *e = s + n;
    p++; /* { */
    size_t i = 0;
    int rc = 0;
    for (cJSON *c = j->child; c; c = c->next, i++) {
        p = skip_ws(p, e);
        p = skip_string(p, e);
        p = skip_ws(p, e);
        p++; /* : */
        p = skip_ws(p, e);
        const char *vs = p;
        p = skip_value(p, e);
        struct trl_input *x = &v[i];
        x->name = c->string;
        if (cJSON_IsNull(c)) {
            x->kind = TRL_IN_NULL;
        } else if (cJSON_IsBool(c)) {
            x->kind = TRL_IN_BOOL;
            x->b = cJSON_IsTrue(c);
        } else if (cJSON_IsNumber(c)) {
            x->kind = TRL_IN_NUMBER;
            x->s = vs;
            x->n = (size_t)(p - vs);
        } else if (cJSON_IsString(c)) {
            x->kind = TRL_IN_STRING;
            x->s = c->valuestring;
            x->n = strlen(c->valuestring);
            /* cJSON stops a string at an escaped U+0000: refuse it rather than truncate. */
            const char *z = memmem(vs, (size_t)(p - vs), "\\u0000", 6);
            if (z && trl_diag_add_ferr(d, c->string, "type", "text without NUL characters"))
                rc = TRL_ENOMEM;
            else if (z)
                rc = TRL_EVALIDATION;
        } else {
            x->kind = TRL_IN_JSON;
            x->s = vs;
            x->n = (size_t)(p - vs);
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') p++;
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
