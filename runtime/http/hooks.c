/* hooks.c — /api/v1/meta/hooks: an app's Lua hook modules, checked (compiled and their top-level
 * code run) before they are saved, so a syntax error is refused with file:line and the running
 * version stays in force. */
#include "http_int.h"

#include "codec/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* Splits "app/module" into r->type_name ("app/module"); false after answering when bad. */
static bool parse_key(struct req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    if (!slash || !name_ok(rest, (size_t)(slash - rest)) ||
        !name_ok(slash + 1, strlen(slash + 1))) {
        trl_http_fail(
            r, TRL_ENOTFOUND, "",
            "hook modules are at /api/v1/meta/hooks/{app}/{module} (names: a-z, 0-9, _ "
            "and -)",
            "钩子模块的地址为 /api/v1/meta/hooks/{app}/{module}(名称仅含 a-z、0-9、_ 和 -)");
        return false;
    }
    r->type_name = strdup(rest);
    if (!r->type_name) {
        trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        return false;
    }
    return true;
}

static int exec_put_hook(struct req *r, struct trl_txn *t)
{
    const char *key = r->type_name;
    char app[64];
    snprintf(app, sizeof(app), "%.*s", (int)(strchr(key, '/') - key), key);
    char *def = NULL;
    int rc = strcmp(app, "local") == 0 ? 0 : trl_meta_get(t, "app", app, &def);
    free(def);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(&r->d, TRL_ENOTFOUND,
                     "no app '%s' is installed (hooks of types made through the API go to app "
                     "'local')",
                     app);
        trl_diag_zh(&r->d, "未安装应用“%s”(通过 API 创建的类型的钩子属于应用“local”)", app);
        trl_diag_field(&r->d, "app");
        return rc;
    }
    if (rc) return rc;
    char *old = NULL;
    bool existed = trl_meta_get(t, "hook", key, &old) == 0;
    bool same =
        existed && strlen(old) == r->body.len && memcmp(old, r->body.data, r->body.len) == 0;
    free(old);
    if (!same) {
        if ((rc = trl_meta_put(t, "hook", key, r->body.data, r->body.len))) return rc;
        uint64_t ver;
        if ((rc = trl_txn_seq_next(t, "schema_version", &ver))) return rc;
    }
    trl_buf_printf(&r->out, "{\"app\":\"%s\",\"module\":\"%s\",\"bytes\":%zu,\"changed\":%s}", app,
                   strchr(key, '/') + 1, r->body.len, same ? "false" : "true");
    trl_http_ok(r, existed ? 200 : 201);
    if (!existed) snprintf(r->location, sizeof(r->location), "/api/v1/meta/hooks/%s", key);
    return 0;
}

static int exec_delete_hook(struct req *r, struct trl_txn *t)
{
    int rc = trl_meta_del(t, "hook", r->type_name);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(&r->d, rc, "no hook module '%s'", r->type_name);
        trl_diag_zh(&r->d, "不存在钩子模块“%s”", r->type_name);
        return rc;
    }
    uint64_t ver;
    if (!rc) rc = trl_txn_seq_next(t, "schema_version", &ver);
    if (!rc) r->status = 204;
    return rc;
}

/* `require` while checking a module: the app's other stored modules. */
static int resolve_stored(void *ud, const char *app, const char *module, struct trl_hooks_src *out,
                          struct trl_diag *d)
{
    (void)d;
    struct req *r = ud;
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", app, module);
    const struct trl_wf_text *h =
        r->wfs ? trl_wf_text_find(r->wfs->hooks, r->wfs->nhooks, key) : NULL;
    if (!h) return TRL_ENOTFOUND;
    *out = (struct trl_hooks_src){app, module, "check", h->text, h->n};
    return 0;
}

void trl_http_meta_hooks(struct req *r, const char *rest)
{
    const struct trl_wf_set *ws = r->wfs;
    if (!*rest) {
        if (!trl_http_method(r, "GET")) return;
        trl_buf_adds(&r->out, "{\"items\":[");
        for (size_t i = 0; ws && i < ws->nhooks; i++) {
            const char *k = ws->hooks[i].key;
            const char *sl = strchr(k, '/');
            if (!sl) continue;
            trl_buf_printf(&r->out, "%s{\"app\":\"%.*s\",\"module\":\"%s\",\"bytes\":%zu}",
                           i ? "," : "", (int)(sl - k), k, sl + 1, ws->hooks[i].n);
        }
        trl_buf_adds(&r->out, "]}");
        return trl_http_ok(r, 200);
    }
    if (!parse_key(r, rest)) return;
    if (strcmp(r->method, "GET") == 0) {
        const struct trl_wf_text *h =
            ws ? trl_wf_text_find(ws->hooks, ws->nhooks, r->type_name) : NULL;
        if (!h)
            return trl_http_fail(r, TRL_ENOTFOUND, "", "no such hook module", "不存在该钩子模块");
        trl_buf_add(&r->out, h->text, h->n);
        r->status = 200;
        r->ctype = "text/x-lua; charset=utf-8";
        return;
    }
    if (strcmp(r->method, "DELETE") == 0) return trl_http_queue_write(r, exec_delete_hook, true);
    if (strcmp(r->method, "PUT") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                             "此处只支持 GET、PUT 或 DELETE");
    }
    if (r->body.len > TRL_HOOKS_MAX_SOURCE)
        return trl_http_fail(r, TRL_ETOOBIG, "", "a hook module is at most 1 MiB of Lua text",
                             "钩子模块最多 1 MiB 的 Lua 源码");
    if (!trl_utf8_valid(r->body.data ? r->body.data : "", r->body.len))
        return trl_http_fail(r, TRL_EINVAL, "", "the module text must be UTF-8",
                             "模块源码必须是 UTF-8");
    /* Compile and run the top level now, in this thread: a refusal changes nothing. */
    char app[64];
    snprintf(app, sizeof(app), "%.*s", (int)(strchr(r->type_name, '/') - r->type_name),
             r->type_name);
    int rc = trl_hooks_check(app, strchr(r->type_name, '/') + 1, r->body.data ? r->body.data : "",
                             r->body.len, resolve_stored, r, &r->d);
    if (rc) {
        if (rc == TRL_EHOOK) r->d.code = TRL_EVALIDATION; /* the text is what is wrong */
        return trl_http_problem(r);
    }
    trl_http_queue_write(r, exec_put_hook, true);
}

/* ---------------------------------------------------------------------------------------------
 * Custom endpoints: /api/v1/apps/{app}/x/{name}
 */
struct params {
    const char *v[128]; /* name, value pairs */
    size_t n;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct params *p = cls;
    if (p->n >= 64) return MHD_NO;
    p->v[2 * p->n] = key;
    p->v[2 * p->n + 1] = value ? value : "";
    p->n++;
    return MHD_YES;
}

static int run_endpoint(struct req *r, struct trl_txn *t)
{
    char app[64];
    const char *name = strchr(r->type_name, '/') + 1;
    snprintf(app, sizeof(app), "%.*s", (int)(name - 1 - r->type_name), r->type_name);
    struct params p = {.n = 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect, &p);
    struct trl_hooks_http_req rq = {.method = r->method,
                                    .name = name,
                                    .params = p.v,
                                    .nparams = p.n,
                                    .body = r->body.len ? r->body.data : NULL,
                                    .nbody = r->body.len};
    struct trl_hooks_http_resp rs = {.status = 200};
    trl_buf_init(&rs.body);
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx); /* binds r->hb read-only for a GET; a write job has bound it */
    cx.acc = NULL; /* the endpoint's own reads and writes compute the caller's rights per type */
    int rc = trl_hooks_endpoint(&r->hb, t, &cx, app, &rq, &rs);
    if (rc == TRL_EMETHOD) snprintf(r->allow, sizeof(r->allow), "%s", rs.allow);
    if (!rc) {
        trl_buf_clear(&r->out);
        if (rs.body.len) trl_buf_add(&r->out, rs.body.data, rs.body.len);
        r->status = rs.status;
        r->ctype = rs.body.len ? "application/json" : NULL;
    }
    trl_buf_free(&rs.body);
    return rc;
}

void trl_http_app_endpoint(struct req *r, const char *rest)
{
    /* rest: "{app}/x/{name}" */
    const char *x = strstr(rest, "/x/");
    const char *name = x ? x + 3 : NULL;
    if (!x || !name_ok(rest, (size_t)(x - rest)) || !name_ok(name, strlen(name)))
        return trl_http_fail(r, TRL_ENOTFOUND, "",
                             "app endpoints are at /api/v1/apps/{app}/x/{name}",
                             "应用接口的地址为 /api/v1/apps/{app}/x/{name}");
    size_t al = (size_t)(x - rest);
    if (!(r->type_name = malloc(al + strlen(name) + 2)))
        return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    sprintf(r->type_name, "%.*s/%s", (int)al, rest, name);
    r->ty = NULL;
    if (r->body.len && !trl_http_body_json(r, 64)) return;
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        /* Reads run here, in a read txn; the endpoint's writes are refused. */
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        int rc = run_endpoint(r, t);
        trl_txn_end(t);
        if (rc) return trl_http_fail_d(r, rc);
        return;
    }
    trl_http_queue_write(r, run_endpoint, false);
}
