/* problem.c — RFC 9457 problem+json responses, and request bodies into struct trl_input. */
#include "http_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void trl_http_json_free(void *json)
{
    cJSON_Delete(json);
}

void trl_http_problem(struct req *r)
{
    struct trl_diag *d = &r->d;
    int code = d->code ? d->code : TRL_EINTERNAL;
    bool zh = strcmp(r->lang, "zh-CN") == 0;
    r->status = trl_err_status(code);
    r->ctype = "application/problem+json";
    trl_buf_clear(&r->out);
    struct trl_buf *o = &r->out;
    const char *tok = trl_err_token(code);
    const char *title = trl_err_title(code, r->lang);
    const char *detail = zh && d->message_zh[0] ? d->message_zh : d->message;
    if (!detail[0]) detail = title;
    int rc = trl_buf_printf(o, "{\"type\":\"urn:trellis:problem:%s\",\"title\":", tok) ||
             trl_buf_add_json_str(o, title, strlen(title)) ||
             trl_buf_printf(o, ",\"status\":%d,\"code\":\"%s\",\"detail\":", r->status, tok) ||
             trl_buf_add_json_str(o, detail, strlen(detail)) ||
             trl_buf_adds(o, ",\"instance\":") ||
             trl_buf_add_json_str(o, r->url ? r->url : "", r->url ? strlen(r->url) : 0) ||
             trl_buf_adds(o, ",\"request_id\":") ||
             trl_buf_add_json_str(o, r->request_id, strlen(r->request_id));
    if (!rc && d->field[0])
        rc = trl_buf_adds(o, ",\"field\":") || trl_buf_add_json_str(o, d->field, strlen(d->field));
    if (!rc && d->nferrs) {
        rc = trl_buf_adds(o, ",\"errors\":[");
        for (size_t i = 0; i < d->nferrs && !rc; i++) {
            char msg[512];
            trl_ferr_message(&d->ferrs[i], r->lang, msg, sizeof(msg));
            const struct trl_ferr *e = &d->ferrs[i];
            rc = trl_buf_adds(o, i ? ",{\"field\":" : "{\"field\":") ||
                 trl_buf_add_json_str(o, e->field, strlen(e->field)) ||
                 trl_buf_adds(o, ",\"code\":") || trl_buf_add_json_str(o, e->code, strlen(e->code)) ||
                 trl_buf_adds(o, ",\"message\":") || trl_buf_add_json_str(o, msg, strlen(msg)) ||
                 trl_buf_addc(o, '}');
        }
        if (!rc) rc = trl_buf_addc(o, ']');
    }
    if (!rc) rc = trl_buf_addc(o, '}');
    if (rc) {
        trl_buf_clear(o);
        trl_buf_adds(o, "{\"status\":503,\"code\":\"out_of_memory\"}");
        r->status = 503;
    }
    if (r->status >= 500 && code != TRL_EFULL && code != TRL_EUNAVAIL)
        trl_log(TRL_LOG_ERROR, "%s %s -> %d %s: %s (%s:%d)", r->method, r->url ? r->url : "",
                r->status, tok, d->message, d->file ? d->file : "?", d->line);
}

void trl_http_fail(struct req *r, int code, const char *field, const char *en, const char *zh)
{
    trl_diag_reset(&r->d);
    trl_diag_set(&r->d, code, "%s", en);
    if (zh) trl_diag_zh(&r->d, "%s", zh);
    if (field) trl_diag_field(&r->d, field);
    trl_http_problem(r);
}

void trl_http_number_text(double d, char *out, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Walking validated JSON text to find the exact lexeme of each top-level member's value (cJSON
 * keeps numbers only as doubles, which would break exact decimals).
 */
static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    p++; /* opening quote */
    while (p < e && *p != '"') p += (*p == '\\') ? 2 : 1;
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
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

int trl_http_parse_object(struct req *r)
{
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (ctype && strncasecmp(ctype, "application/json", 16) != 0 &&
        strncasecmp(ctype, "application/merge-patch+json", 28) != 0) {
        trl_http_fail(r, TRL_EMEDIATYPE, "", "send the body as application/json",
                      "请求体须为 application/json");
        return TRL_EMEDIATYPE;
    }
    struct trl_diag jd;
    trl_diag_init(&jd);
    if (trl_json_check(r->body.data ? r->body.data : "", r->body.len, 64, &jd)) {
        trl_diag_set(&r->d, TRL_EJSON, "the body is not valid JSON: %s", jd.message);
        trl_diag_zh(&r->d, "请求体不是有效的 JSON:%s", jd.message);
        trl_diag_reset(&jd);
        trl_http_problem(r);
        return TRL_EJSON;
    }
    trl_diag_reset(&jd);
    cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
    if (!j) {
        trl_http_fail(r, TRL_ENOMEM, "", "out of memory parsing the body", "解析请求体时内存不足");
        return TRL_ENOMEM;
    }
    r->json = j;
    if (!cJSON_IsObject(j)) {
        trl_http_fail(r, TRL_EJSON, "", "the body must be a JSON object", "请求体必须是 JSON 对象");
        return TRL_EJSON;
    }
    size_t n = (size_t)cJSON_GetArraySize(j);
    r->in = calloc(n ? n : 1, sizeof(*r->in));
    if (!r->in) {
        trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        return TRL_ENOMEM;
    }
    /* Walk the text in step with the tree: members appear in the same order. */
    const char *p = r->body.data, *e = r->body.data + r->body.len;
    p = skip_ws(p, e);
    p++; /* { */
    size_t i = 0;
    for (cJSON *c = j->child; c; c = c->next, i++) {
        p = skip_ws(p, e);
        p = skip_string(p, e); /* key */
        p = skip_ws(p, e);
        p++; /* : */
        p = skip_ws(p, e);
        const char *vs = p;
        p = skip_value(p, e);
        struct trl_input *in = &r->in[i];
        in->name = c->string;
        if (cJSON_IsNull(c)) {
            in->kind = TRL_IN_NULL;
        } else if (cJSON_IsBool(c)) {
            in->kind = TRL_IN_BOOL;
            in->b = cJSON_IsTrue(c);
        } else if (cJSON_IsNumber(c)) {
            in->kind = TRL_IN_NUMBER;
            in->s = vs;
            in->n = (size_t)(p - vs);
        } else if (cJSON_IsString(c)) {
            in->kind = TRL_IN_STRING;
            in->s = c->valuestring;
            in->n = strlen(c->valuestring);
            /* A JSON string may carry \u0000, which C strings cannot: refuse it. */
            if (memchr(vs, '\\', (size_t)(p - vs)) && strstr(vs, "\\u0000") &&
                strstr(vs, "\\u0000") < p) {
                trl_diag_add_ferr(&r->d, c->string, "type", "text without NUL characters");
            }
        } else {
            in->kind = TRL_IN_JSON;
            in->s = vs;
            in->n = (size_t)(p - vs);
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') p++;
    }
    r->nin = n;
    if (r->d.nferrs) {
        trl_diag_set(&r->d, TRL_EVALIDATION, "the body has invalid values");
        trl_diag_zh(&r->d, "请求体包含无效的值");
        trl_http_problem(r);
        return TRL_EVALIDATION;
    }
    return 0;
}
