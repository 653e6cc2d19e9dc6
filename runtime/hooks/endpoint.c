/* endpoint.c — custom HTTP endpoints written in Lua: /api/v1/apps/{app}/x/{name} calls function
 * `name` (any method) or `name.METHOD` of the app's module `endpoints` with (ctx, req) and turns
 * what it returns into the answer. */
#include "hooks/hk_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ep_call {
    const struct trl_hooks_http_req *rq;
    struct trl_hooks_http_resp *rs;
};

static int ep_push(lua_State *L, void *ud)
{
    struct ep_call *c = ud;
    const struct trl_hooks_http_req *rq = c->rq;
    /* ctx comes from the frame trl_hooks_run made (the binding's innermost). */
    hk_push_ctx(L, hk_api_bound(hk_vm(L))->frame);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, rq->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, rq->name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, 0, (int)rq->nparams);
    for (size_t i = 0; i < rq->nparams; i++) {
        lua_pushstring(L, rq->params[2 * i + 1] ? rq->params[2 * i + 1] : "");
        lua_setfield(L, -2, rq->params[2 * i]);
    }
    lua_setfield(L, -2, "params");
    if (rq->body && rq->nbody) {
        hk_json_push_text(L, rq->body, rq->nbody);
        lua_setfield(L, -2, "body");
    }
    return 2;
}

/* Results: body | status, body | status. */
static int ep_read(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    struct ep_call *c = ud;
    int r1 = lua_gettop(L) - nres + 1;
    int status = 200;
    int bi = r1;
    if (nres >= 1 && lua_isinteger(L, r1)) {
        lua_Integer st = lua_tointeger(L, r1);
        if (st < 200 || st > 599) {
            trl_diag_set(d, TRL_EHOOK, "an endpoint's status must be 200..599, not %lld",
                         (long long)st);
            trl_diag_rule(d, "runtime", "");
            return TRL_EHOOK;
        }
        status = (int)st;
        bi = nres >= 2 ? r1 + 1 : 0;
    } else if (nres < 1) {
        bi = 0;
    }
    c->rs->status = status;
    if (!bi || lua_isnil(L, bi)) {
        if (status == 200) c->rs->status = 204;
        return 0;
    }
    hk_json_encode_value(L, bi, &c->rs->body);
    return 0;
}

int trl_hooks_endpoint(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                       const char *app, const struct trl_hooks_http_req *rq,
                       struct trl_hooks_http_resp *rs)
{
    if (!b->eng || !b->ws) return trl_diag_set(cx->d, TRL_EUNAVAIL, "hooks are not available");
    const struct hk_conf *c = hk_bind_conf(b);
    if (!c) return trl_diag_set(cx->d, TRL_ENOMEM, "hooks: cannot load the app's modules");
    const struct hk_mod *m = hk_conf_mod(c, app, "endpoints");
    char fn[160];
    /* HEAD answers as GET does (the body is dropped by the server). */
    const char *method = strcmp(rq->method, "HEAD") == 0 ? "GET" : rq->method;
    snprintf(fn, sizeof(fn), "%s.%s", rq->name, method);
    bool per_method = hk_mod_has(m, fn);
    if (!per_method && !hk_mod_has(m, rq->name)) {
        /* Which methods the endpoint has, for 405. */
        rs->allow[0] = 0;
        static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
        for (size_t i = 0; m && i < 5; i++) {
            snprintf(fn, sizeof(fn), "%s.%s", rq->name, methods[i]);
            if (hk_mod_has(m, fn))
                snprintf(rs->allow + strlen(rs->allow), sizeof(rs->allow) - strlen(rs->allow),
                         "%s%s", rs->allow[0] ? ", " : "", methods[i]);
        }
        if (rs->allow[0]) {
            trl_diag_set(cx->d, TRL_EMETHOD, "endpoint %s of app %s answers %s", rq->name, app,
                         rs->allow);
            trl_diag_zh(cx->d, "应用 %s 的接口 %s 只支持 %s", app, rq->name, rs->allow);
            return TRL_EMETHOD;
        }
        trl_diag_set(cx->d, TRL_ENOTFOUND, "app %s has no endpoint '%s'", app, rq->name);
        trl_diag_zh(cx->d, "应用 %s 没有接口“%s”", app, rq->name);
        return TRL_ENOTFOUND;
    }
    if (!per_method) snprintf(fn, sizeof(fn), "%s", rq->name);
    struct trl_hooks_src src = {app, "endpoints", NULL, NULL, 0};
    struct ep_call call = {rq, rs};
    rs->status = 200;
    return trl_hooks_run(b, t, cx, &src, fn, ep_push, ep_read, &call);
}
