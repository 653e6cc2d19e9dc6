/* problem.c — RFC 9457 problem+json responses, and request bodies into struct trl_input. */
#include "http_int.h"

#include "codec/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool trl_http_body_json(struct req *r, int max_depth)
{
    struct trl_diag jd;
    trl_diag_init(&jd);
    bool ok = trl_json_check(r->body.data ? r->body.data : "", r->body.len, max_depth, &jd) == 0;
    if (!ok) {
        trl_diag_set(&r->d, TRL_EJSON, "the body is not valid JSON: %s", jd.message);
        trl_diag_zh(&r->d, "请求体不是有效的 JSON:%s", jd.message);
        trl_http_problem(r);
    }
    trl_diag_reset(&jd);
    return ok;
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
             trl_buf_add_json_str(o, detail, strlen(detail)) || trl_buf_adds(o, ",\"instance\":") ||
             trl_buf_add_json_str(o, r->url ? r->url : "", r->url ? strlen(r->url) : 0) ||
             trl_buf_adds(o, ",\"request_id\":") ||
             trl_buf_add_json_str(o, r->request_id, strlen(r->request_id));
    if (!rc && d->field[0])
        rc = trl_buf_adds(o, ",\"field\":") || trl_buf_add_json_str(o, d->field, strlen(d->field));
    if (!rc && d->rule[0])
        rc = trl_buf_adds(o, ",\"rule\":") || trl_buf_add_json_str(o, d->rule, strlen(d->rule));
    if (!rc && d->path[0])
        rc = trl_buf_adds(o, ",\"path\":") || trl_buf_add_json_str(o, d->path, strlen(d->path));
    if (!rc && d->hook[0])
        rc = trl_buf_adds(o, ",\"hook\":") || trl_buf_add_json_str(o, d->hook, strlen(d->hook));
    if (!rc && d->nferrs) {
        rc = trl_buf_adds(o, ",\"errors\":[");
        for (size_t i = 0; i < d->nferrs && !rc; i++) {
            char msg[512];
            trl_ferr_message(&d->ferrs[i], r->lang, msg, sizeof(msg));
            const struct trl_ferr *e = &d->ferrs[i];
            rc = trl_buf_adds(o, i ? ",{\"field\":" : "{\"field\":") ||
                 trl_buf_add_json_str(o, e->field, strlen(e->field)) ||
                 trl_buf_adds(o, ",\"code\":") ||
                 trl_buf_add_json_str(o, e->code, strlen(e->code)) ||
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

int trl_http_parse_object(struct req *r)
{
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    size_t ml = ctype ? strcspn(ctype, ";") : 0;
    while (ml && (ctype[ml - 1] == ' ' || ctype[ml - 1] == '\t'))
        ml--;
    bool json =
        ctype && ((ml == 16 && strncasecmp(ctype, "application/json", 16) == 0) ||
                  (ml == 28 && strncasecmp(ctype, "application/merge-patch+json", 28) == 0));
    if (ctype && !json) {
        trl_http_fail(r, TRL_EMEDIATYPE, "", "send the body as application/json",
                      "请求体须为 application/json");
        return TRL_EMEDIATYPE;
    }
    int rc =
        trl_json_object_inputs(r->body.data, r->body.len, 64, &r->in, &r->nin, &r->json, &r->d);
    if (rc) trl_http_problem(r);
    return rc;
}
