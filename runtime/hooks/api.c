/* api.c — what hook code sees of Trellis: the `trellis` module (records, users, log, errors,
 * json, markdown, uuid), `rec` objects over the record an event is about, and error objects.
 *
 * Memory rule (hooks.h): a C function here never holds malloc'd memory across a Lua call that
 * can raise. Work that allocates keeps it in a box (a userdata with __gc, made before the work),
 * so a raise in the middle leaks nothing: the box frees it when collected. */
#include "hooks/hk_api.h"

#include <cmark.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char KEY_BIND[] = "trl.bind";
static const char KEY_RECMT[] = "trl.recmt";
static const char KEY_ERRMT[] = "trl.errmt";
static const char KEY_BOXMT[] = "trl.boxmt";

#define LOG_MAX_LINES 100   /* trellis.log lines per call */
#define HK_MAX_SCAN   20000 /* records one trellis.query / count may examine */
#define LOG_MAX_BYTES 2000

/* ---------------------------------------------------------------------------------------------
 * Boxes
 */
struct hk_box {
    struct trl_buf out;
    struct trl_diag d;
    struct trl_arena arena;
    struct trl_input *in;
    unsigned char *modes;
    bool open;
};

static void box_clear(struct hk_box *b)
{
    if (!b->open) return;
    trl_buf_free(&b->out);
    trl_diag_reset(&b->d);
    trl_arena_free(&b->arena);
    free(b->in);
    free(b->modes);
    b->in = NULL;
    b->modes = NULL;
    b->open = false;
}

static int box_gc(lua_State *L)
{
    box_clear(lua_touserdata(L, 1));
    return 0;
}

static struct hk_box *box_new(lua_State *L)
{
    struct hk_box *b = lua_newuserdatauv(L, sizeof(*b), 0);
    memset(b, 0, sizeof(*b));
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_BOXMT);
    lua_setmetatable(L, -2);
    trl_buf_init(&b->out);
    trl_diag_init(&b->d);
    trl_arena_init(&b->arena);
    b->open = true;
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * Error objects
 */
static int err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "error");
    return 1;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v || !*v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* Pushes an error object for d (code rc). */
static void push_error(lua_State *L, int rc, const struct trl_diag *d)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, trl_err_status(rc));
    lua_setfield(L, -2, "status");
    set_str(L, "code", trl_err_token(rc));
    set_str(L, "message", d->message[0] ? d->message : trl_err_title(rc, "en"));
    set_str(L, "message_zh", d->message_zh);
    set_str(L, "field", d->field);
    set_str(L, "rule", d->rule);
    set_str(L, "path", d->path);
    set_str(L, "hook", d->hook);
    if (d->nferrs) {
        lua_createtable(L, (int)d->nferrs, 0);
        for (size_t i = 0; i < d->nferrs; i++) {
            char msg[512];
            trl_ferr_message(&d->ferrs[i], "en", msg, sizeof(msg));
            lua_createtable(L, 0, 3);
            set_str(L, "field", d->ferrs[i].field);
            set_str(L, "code", d->ferrs[i].code);
            set_str(L, "message", msg);
            lua_pushstring(L, d->ferrs[i].detail ? d->ferrs[i].detail : "");
            lua_setfield(L, -2, "detail");
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "errors");
    }
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_ERRMT);
    lua_setmetatable(L, -2);
}

/* Raises the error in box b (rc), freeing the box first. */
static int raise_box(lua_State *L, struct hk_box *b, int rc)
{
    struct trl_diag d;
    /* Copy the scalars; the field errors are re-read from the box before it is cleared. */
    push_error(L, rc, &b->d);
    box_clear(b);
    (void)d;
    return lua_error(L);
}

static int code_of_status(lua_Integer st)
{
    switch (st) {
    case 400:
        return TRL_EINVAL;
    case 401:
        return TRL_EAUTH;
    case 403:
        return TRL_EFORBIDDEN;
    case 404:
        return TRL_ENOTFOUND;
    case 409:
        return TRL_ECONFLICT;
    case 412:
        return TRL_EPRECOND;
    case 422:
        return TRL_EVALIDATION;
    case 429:
        return TRL_ERATELIMIT;
    case 503:
        return TRL_EUNAVAIL;
    default:
        return TRL_EHOOK;
    }
}

static const char *raw_str(lua_State *L, int t, const char *k, char *buf, size_t n)
{
    lua_pushstring(L, k);
    lua_rawget(L, t);
    buf[0] = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t l;
        const char *s = lua_tolstring(L, -1, &l);
        /* Clean: printable UTF-8 is what diagnostics carry. */
        size_t o = 0;
        for (size_t i = 0; i < l && o + 1 < n; i++)
            buf[o++] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
        /* Cut short: end before the character the cut went through. */
        if (o < l)
            while (o > 0 && ((unsigned char)s[o] & 0xC0) == 0x80)
                o--;
        buf[o] = 0;
    }
    lua_pop(L, 1);
    return buf;
}

/* vm->host_error: an error object (ours) on top of the stack fills d. Runs after the stack
 * unwound, in the failed call's state; reads raw fields only (no metamethod runs). */
static int host_error(lua_State *L, const char *where, struct trl_diag *d)
{
    int t = lua_gettop(L);
    if (lua_type(L, t) != LUA_TTABLE || !lua_getmetatable(L, t)) return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_ERRMT);
    bool ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!ours) return 0;
    char code[40], msg[400], zh[400], field[128], rule[32], hook[160];
    raw_str(L, t, "code", code, sizeof(code));
    raw_str(L, t, "message", msg, sizeof(msg));
    raw_str(L, t, "message_zh", zh, sizeof(zh));
    raw_str(L, t, "field", field, sizeof(field));
    raw_str(L, t, "rule", rule, sizeof(rule));
    raw_str(L, t, "hook", hook, sizeof(hook));
    lua_pushliteral(L, "status");
    lua_rawget(L, t);
    lua_Integer st = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 500;
    lua_pop(L, 1);
    int rc = 0;
    for (int c = 1; c < TRL_ERR_COUNT && code[0] && !rc; c++)
        if (strcmp(trl_err_token(-c), code) == 0) rc = -c;
    if (!rc) rc = code_of_status(st);
    trl_diag_set(d, rc, "%s", msg[0] ? msg : trl_err_title(rc, "en"));
    if (zh[0]) trl_diag_zh(d, "%s", zh);
    if (field[0]) trl_diag_field(d, field);
    trl_diag_rule(d, rule[0] ? rule : "error", where);
    if (hook[0]) snprintf(d->hook, sizeof(d->hook), "%s", hook);
    lua_pushliteral(L, "errors");
    if (lua_rawget(L, t) == LUA_TTABLE) {
        int e = lua_gettop(L);
        for (lua_Integer i = 1; i <= 64; i++) {
            if (lua_rawgeti(L, e, i) != LUA_TTABLE) {
                lua_pop(L, 1);
                break;
            }
            char ef[128], ec[40], em[300], ed[300];
            int ei = lua_gettop(L);
            raw_str(L, ei, "field", ef, sizeof(ef));
            raw_str(L, ei, "code", ec, sizeof(ec));
            raw_str(L, ei, "message", em, sizeof(em));
            lua_pushliteral(L, "detail");
            bool has_detail = lua_rawget(L, ei) == LUA_TSTRING;
            lua_pop(L, 1);
            raw_str(L, ei, "detail", ed, sizeof(ed));
            lua_pop(L, 1);
            /* A relayed field error keeps its code and parameter (the record layer's); one the
             * hook wrote carries its text under code "hook". */
            int fe = has_detail && ec[0] && strcmp(ec, "hook") != 0
                         ? trl_diag_add_ferr(d, ef, ec, ed)
                         : trl_diag_add_ferr(d, ef, "hook", em);
            if (fe) break;
        }
    }
    lua_pop(L, 1);
    if (field[0] && !d->nferrs && (rc == TRL_EVALIDATION)) trl_diag_add_ferr(d, field, "hook", msg);
    return rc;
}

/* trellis.error(status, message [, field]) */
static int l_error(lua_State *L)
{
    lua_Integer st = luaL_optinteger(L, 1, 500);
    size_t ml;
    const char *msg = luaL_checklstring(L, 2, &ml);
    const char *field = luaL_optstring(L, 3, NULL);
    if (st < 400 || st > 599) st = 500;
    int rc = code_of_status(st);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, st);
    lua_setfield(L, -2, "status");
    set_str(L, "code", trl_err_token(rc));
    lua_pushlstring(L, msg, ml < 400 ? ml : 400);
    lua_setfield(L, -2, "message");
    if (field && *field) {
        set_str(L, "field", field);
        lua_createtable(L, 1, 0);
        lua_createtable(L, 0, 3);
        set_str(L, "field", field);
        set_str(L, "code", "hook");
        lua_pushlstring(L, msg, ml < 250 ? ml : 250);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, 1);
        lua_setfield(L, -2, "errors");
    }
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_ERRMT);
    lua_setmetatable(L, -2);
    return lua_error(L);
}

/* ---------------------------------------------------------------------------------------------
 * The current frame
 */
static struct trl_hooks_bind *bind_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_BIND);
    struct trl_hooks_bind *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b;
}

static struct hk_frame *frame_of(lua_State *L, const char *fn)
{
    struct trl_hooks_bind *b = bind_of(L);
    if (!b || !b->frame)
        luaL_error(L, "trellis.%s: not available here (only while a hook runs)", fn);
    return b->frame;
}

static struct hk_frame *write_frame(lua_State *L, const char *fn)
{
    struct hk_frame *fr = frame_of(L, fn);
    if (fr->b->read_only)
        luaL_error(L, "trellis.%s: this request only reads (use POST for an endpoint that writes)",
                   fn);
    return fr;
}

static const struct trl_type *type_arg(lua_State *L, struct hk_frame *fr, int i, const char *fn)
{
    const char *name = luaL_checkstring(L, i);
    const struct trl_type *ty = trl_catalog_type(fr->b->cat, name);
    if (!ty) luaL_error(L, "trellis.%s: no record type '%s'", fn, name);
    return ty;
}

static uint64_t id_arg(lua_State *L, int i, const char *fn)
{
    lua_Integer v;
    if (lua_isinteger(L, i))
        v = lua_tointeger(L, i);
    else if (lua_type(L, i) == LUA_TSTRING)
        v = (lua_Integer)strtoll(lua_tostring(L, i), NULL, 10);
    else
        return (uint64_t)luaL_error(L, "trellis.%s: argument #%d must be a record id", fn, i);
    if (v <= 0) luaL_error(L, "trellis.%s: argument #%d must be a record id", fn, i);
    return (uint64_t)v;
}

/* The context an operation on ty runs with: the frame's caller with their rights on ty (none
 * when the hook is privileged), errors into the box, events to the same binding. */
static void op_ctx(struct hk_frame *fr, const struct trl_type *ty, struct hk_box *bx,
                   struct trl_access *acc, struct trl_rec_ctx *cx)
{
    *cx = *fr->cx;
    cx->d = &bx->d;
    cx->ev = &fr->b->ev;
    cx->acc = NULL;
    cx->create_org = cx->create_owner = NULL; /* never inherited from the event's change */
    /* No C call may run long (the count hook cannot stop it): a query from a hook examines at
     * most HK_MAX_SCAN records, and says to add an indexed filter otherwise. */
    if (!cx->max_scan || cx->max_scan > HK_MAX_SCAN) cx->max_scan = HK_MAX_SCAN;
    if (!fr->privileged && (bx->modes = malloc(ty->nfields + 1))) {
        trl_rec_access(ty, fr->cx->who, acc, bx->modes);
        cx->acc = acc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Values
 */
static const int64_t pow10s[] = {1,       10,       100,       1000,       10000,        100000,
                                 1000000, 10000000, 100000000, 1000000000, 10000000000LL};

/* Pushes the value of column col (field f, or NULL for a system column) of type ty. */
static void push_value(lua_State *L, const struct trl_field *f, int col, const struct trl_value *v)
{
    if (v->kind == TRL_V_NULL) {
        lua_pushnil(L);
        return;
    }
    char tmp[48];
    if (!f) {
        if (col == TRL_COL_CREATED_AT || col == TRL_COL_UPDATED_AT) {
            trl_datetime_format(v->i, tmp);
            lua_pushstring(L, tmp);
        } else if (v->kind == TRL_V_INT) {
            lua_pushinteger(L, v->i);
        } else {
            lua_pushlstring(L, v->s, v->n);
        }
        return;
    }
    switch (f->type) {
    case TRL_FT_INT:
    case TRL_FT_REF:
        lua_pushinteger(L, v->i);
        return;
    case TRL_FT_BOOL:
        lua_pushboolean(L, v->i != 0);
        return;
    case TRL_FT_DECIMAL: {
        int64_t p = f->scale >= 0 && f->scale <= 10 ? pow10s[f->scale] : 1;
        if (v->i % p == 0)
            lua_pushinteger(L, v->i / p);
        else
            lua_pushnumber(L, (lua_Number)v->i / (lua_Number)p);
        return;
    }
    case TRL_FT_DATE:
    case TRL_FT_DATETIME:
        trl_field_format_int(f, v->i, tmp, sizeof(tmp));
        lua_pushstring(L, tmp);
        return;
    case TRL_FT_JSON:
        hk_json_push_text(L, v->s, v->n);
        return;
    default:
        lua_pushlstring(L, v->s, v->n);
        return;
    }
}

/* Converts the Lua value at idx into an input for field f (NULL: unknown field, the record
 * layer reports it). Number text goes into arena, JSON text too. Raises on a value no field can
 * take. */
static void to_input(lua_State *L, int idx, const struct trl_field *f, struct trl_arena *arena,
                     struct trl_buf *jbuf, const char *name, struct trl_input *in)
{
    idx = lua_absindex(L, idx);
    memset(in, 0, sizeof(*in));
    in->name = name;
    int t = lua_type(L, idx);
    char num[64];
    if (t == LUA_TNIL) {
        in->kind = TRL_IN_NULL;
        return;
    }
    if (t == LUA_TLIGHTUSERDATA || t == LUA_TUSERDATA || t == LUA_TTABLE) {
        hk_json_push_null(L);
        bool isnull = lua_rawequal(L, -1, idx);
        lua_pop(L, 1);
        if (isnull) {
            in->kind = TRL_IN_NULL;
            return;
        }
    }
    switch (t) {
    case LUA_TBOOLEAN:
        in->kind = TRL_IN_BOOL;
        in->b = lua_toboolean(L, idx);
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(num, sizeof(num), "%lld", (long long)lua_tointeger(L, idx));
        } else {
            lua_Number x = lua_tonumber(L, idx);
            if (!isfinite((double)x)) luaL_error(L, "%s: NaN and infinity are not values", name);
            /* The shortest text that reads back as the same number: 12.35 stays "12.35", and a
             * decimal field refuses 12.345 at scale 2 as the API does (no silent rounding). */
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(num, sizeof(num), "%.*g", prec, (double)x);
                if (strtod(num, NULL) == (double)x) break;
            }
        }
        in->kind = TRL_IN_NUMBER;
        if (!(in->s = trl_arena_strndup(arena, num, strlen(num)))) luaL_error(L, "out of memory");
        in->n = strlen(num);
        return;
    case LUA_TSTRING:
        in->kind = TRL_IN_STRING;
        in->s = lua_tolstring(L, idx, &in->n);
        return;
    case LUA_TTABLE: {
        if (f && f->type != TRL_FT_JSON)
            luaL_error(L, "%s: a table is a value of json fields only (this one is %s)", name,
                       trl_ftype_name(f->type));
        size_t mark = jbuf->len;
        hk_json_encode_value(L, idx, jbuf);
        if (!(in->s = trl_arena_strndup(arena, jbuf->data + mark, jbuf->len - mark)))
            luaL_error(L, "out of memory");
        in->n = jbuf->len - mark;
        jbuf->len = mark;
        in->kind = TRL_IN_JSON;
        /* A JSON string or number is not a table: only arrays and objects come this way. */
        return;
    }
    default:
        luaL_error(L, "%s: a %s is not a field value", name, lua_typename(L, t));
    }
}

/* The fields table at idx as inputs into the box (names borrowed from the table, which stays on
 * the stack). Raises on a non-string key. */
static size_t table_inputs(lua_State *L, int idx, const struct trl_type *ty, struct hk_box *bx,
                           const char *fn)
{
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = 0, cap = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "trellis.%s: field names must be strings", fn);
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            if (nc > 1024) luaL_error(L, "trellis.%s: too many fields", fn);
            struct trl_input *ni = realloc(bx->in, nc * sizeof(*ni));
            if (!ni) luaL_error(L, "out of memory");
            bx->in = ni;
            cap = nc;
        }
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        const struct trl_field *f = trl_type_field(ty, k, kl);
        to_input(L, -1, f, &bx->arena, &bx->out, k, &bx->in[n]);
        n++;
        lua_pop(L, 1);
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * `rec` objects
 */
struct hk_rec {
    struct trl_rec_move *m;
    struct hk_frame *fr;
    bool writable;
    bool valid;
};

static struct hk_rec *rec_check(lua_State *L)
{
    struct hk_rec *r = luaL_checkudata(L, 1, KEY_RECMT);
    if (!r->valid) luaL_error(L, "this record object belongs to a hook call that has ended");
    return r;
}

static const char *const sys_names[] = {"id",         "type",       "name",       "state",
                                        "owner",      "org",        "version",    "created_at",
                                        "created_by", "updated_at", "updated_by", NULL};

/* Pushes column k of r; returns 0 when k is not a column of the type. */
static int rec_push(lua_State *L, struct hk_rec *r, const char *k, size_t kl)
{
    const struct trl_type *ty = trl_rec_move_type(r->m);
    if (strcmp(k, "type") == 0) {
        lua_pushstring(L, ty->name);
        return 1;
    }
    if (strcmp(k, "id") == 0) {
        uint64_t id = trl_rec_move_id(r->m);
        if (id)
            lua_pushinteger(L, (lua_Integer)id);
        else
            lua_pushnil(L);
        return 1;
    }
    const struct trl_field *cf = trl_type_field(ty, k, kl);
    if (cf && cf->computed) {
        lua_pushnil(L); /* computed on read, not part of the record */
        return 1;
    }
    struct trl_expr_field ef;
    if (trl_rec_resolve_any((void *)ty, k, kl, &ef) != 0) return 0;
    const struct trl_field *f = ef.id < TRL_COL_ID ? cf : NULL;
    if (f && !r->fr->privileged && trl_rec_move_mode(r->m, f) == TRL_FIELD_HIDDEN) {
        lua_pushnil(L);
        return 1;
    }
    struct trl_value v;
    trl_rec_move_get(r->m, ef.id, &v);
    push_value(L, f, ef.id, &v);
    return 1;
}

static int rec_index(lua_State *L)
{
    struct hk_rec *r = rec_check(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 2, &kl);
    if (!rec_push(L, r, k, kl))
        return luaL_error(L, "%s has no field '%s'", trl_rec_move_type(r->m)->name, k);
    return 1;
}

static int rec_newindex(lua_State *L)
{
    struct hk_rec *r = rec_check(L);
    size_t kl;
    const char *k = luaL_checklstring(L, 2, &kl);
    const struct trl_type *ty = trl_rec_move_type(r->m);
    if (!r->writable) {
        const char *ev = r->fr->fn ? r->fr->fn : "this hook";
        return luaL_error(L,
                          "rec is read-only in %s: change records in before_* hooks or with "
                          "trellis.update",
                          ev);
    }
    const struct trl_field *f = trl_type_field(ty, k, kl);
    if (!f) {
        for (int i = 0; sys_names[i]; i++)
            if (strcmp(sys_names[i], k) == 0)
                return luaL_error(L, "rec.%s is kept by Trellis and cannot be set%s", k,
                                  strcmp(k, "state") == 0 ? " (run a transition)" : "");
        return luaL_error(L, "%s has no field '%s'", ty->name, k);
    }
    if (f->computed) return luaL_error(L, "rec.%s is computed on read and cannot be set", k);
    struct hk_box *bx = box_new(L);
    struct trl_input in;
    to_input(L, 3, f, &bx->arena, &bx->out, f->name, &in);
    int rc = trl_rec_move_set_d(r->m, f, &in, &bx->d);
    if (rc) {
        char msg[400];
        if (bx->d.nferrs)
            trl_ferr_message(&bx->d.ferrs[0], "en", msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "%.390s", bx->d.message[0] ? bx->d.message : "refused");
        box_clear(bx);
        return luaL_error(L, "cannot set rec.%s: %s", f->name, msg);
    }
    box_clear(bx);
    return 0;
}

/* __pairs: system columns, then the fields the hook may read that have a value. */
static int rec_next(lua_State *L)
{
    struct hk_rec *r = rec_check(L);
    const struct trl_type *ty = trl_rec_move_type(r->m);
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
    size_t nsys = sizeof(sys_names) / sizeof(sys_names[0]) - 1;
    for (;; i++) {
        const char *k;
        if ((size_t)i < nsys)
            k = sys_names[i];
        else if ((size_t)i - nsys < ty->nfields)
            k = ty->fields[i - (lua_Integer)nsys].name;
        else
            return 0;
        lua_pushstring(L, k);
        rec_push(L, r, k, strlen(k));
        if (lua_isnil(L, -1)) {
            lua_pop(L, 2);
            continue;
        }
        lua_pushinteger(L, i + 1);
        lua_replace(L, lua_upvalueindex(1));
        return 2;
    }
}

static int rec_pairs(lua_State *L)
{
    rec_check(L);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, rec_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int rec_tostring(lua_State *L)
{
    struct hk_rec *r = luaL_checkudata(L, 1, KEY_RECMT);
    if (!r->valid) {
        lua_pushliteral(L, "record (ended)");
        return 1;
    }
    lua_pushfstring(L, "%s %I", trl_rec_move_type(r->m)->name, (lua_Integer)trl_rec_move_id(r->m));
    return 1;
}

void hk_push_rec(lua_State *L, struct hk_frame *fr, struct trl_rec_move *m, bool writable, int slot)
{
    struct hk_rec *r = lua_newuserdatauv(L, sizeof(*r), 0);
    *r = (struct hk_rec){.m = m, .fr = fr, .writable = writable, .valid = true};
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_RECMT);
    lua_setmetatable(L, -2);
    if (slot < 0 || slot >= 2) return;
    /* Pinned until hk_frame_end marks it ended: the full collection after a stopped call must
     * not free it while the frame still points at it. */
    lua_pushvalue(L, -1);
    fr->refs[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
    fr->recs[slot] = r;
}

int hk_read_computed(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    struct hk_frame *fr = ud;
    const struct trl_field *f = fr->ev->field;
    struct trl_buf *out = fr->ev->out;
    int v = lua_gettop(L) - nres + 1;
    if (nres < 1 || lua_isnil(L, v)) return trl_buf_adds(out, "null") ? TRL_ENOMEM : 0;
    struct hk_box *bx = box_new(L);
    struct trl_input in;
    to_input(L, v, f, &bx->arena, &bx->out, f->name, &in);
    struct trl_value val;
    int rc = trl_field_convert(f, &in, &bx->arena, &val, &bx->d);
    if (!rc && val.kind != TRL_V_NULL && trl_field_check(f, &val, &bx->d) > 0) rc = TRL_EVALIDATION;
    if (rc) {
        char msg[300];
        if (bx->d.nferrs)
            trl_ferr_message(&bx->d.ferrs[0], "en", msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "cannot be converted");
        trl_diag_set(d, TRL_EHOOK, "computed.%s returned a value that %s field %s cannot hold: %s",
                     f->name, trl_ftype_name(f->type), f->name, msg);
        trl_diag_rule(d, "runtime", "");
        box_clear(bx);
        return TRL_EHOOK;
    }
    rc = trl_rec_value_json(f, &val, out) ? TRL_ENOMEM : 0;
    box_clear(bx);
    return rc;
}

void hk_frame_end(lua_State *L, struct hk_frame *fr)
{
    for (int i = 0; i < 2; i++)
        if (fr->recs[i]) {
            fr->recs[i]->valid = false;
            luaL_unref(L, LUA_REGISTRYINDEX, fr->refs[i]);
            fr->recs[i] = NULL;
        }
}

void hk_push_ctx(lua_State *L, struct hk_frame *fr)
{
    const struct trl_rec_ctx *cx = fr->cx;
    const struct trl_principal *who = cx->who;
    lua_createtable(L, 0, 8);
    lua_createtable(L, 0, 8);
    set_str(L, "id", who && who->user[0] ? who->user : "system");
    set_str(L, "org", who ? who->org : NULL);
    set_str(L, "region", who ? who->region : NULL);
    lua_pushboolean(L, !who || !who->user[0] || who->admin);
    lua_setfield(L, -2, "admin");
    lua_createtable(L, who ? (int)who->nroles : 0, 0);
    for (size_t i = 0; who && i < who->nroles; i++) {
        lua_pushstring(L, who->roles[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "roles");
    lua_setfield(L, -2, "user");
    set_str(L, "lang", cx->lang ? cx->lang : "en");
    set_str(L, "app", fr->app);
    set_str(L, "hook", fr->fn);
    if (fr->ev) {
        set_str(L, "type", fr->ev->ty->name);
        set_str(L, "op", fr->ev->op);
    }
    set_str(L, "request_id", cx->request_id);
    char ts[40];
    trl_datetime_format(cx->now_ms, ts);
    set_str(L, "now", ts);
}

/* ---------------------------------------------------------------------------------------------
 * trellis.*
 */
/* In the record table at idx (as the API renders it), decimal fields become numbers, as `rec`
 * gives them (integers when whole). */
static void fix_record(lua_State *L, int idx, const struct trl_type *ty)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) return;
    /* Columns without a value are nil, as in `rec` (not trellis.json.null). */
    hk_json_push_null(L);
    int nul = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_rawequal(L, -1, nul)) {
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, idx); /* clearing a present field during the traversal is allowed */
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    for (size_t i = 0; i < ty->nfields; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (f->type != TRL_FT_DECIMAL) continue;
        lua_pushstring(L, f->name);
        if (lua_rawget(L, idx) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            char buf[64];
            snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), s);
            /* "12.00" -> 12, "12.30" -> 12.3 */
            char *dot = strchr(buf, '.');
            bool whole = true;
            for (char *p = dot ? dot + 1 : NULL; p && *p; p++)
                if (*p != '0') whole = false;
            if (dot && whole) *dot = 0;
            lua_pushstring(L, f->name);
            if (lua_stringtonumber(L, buf) == 0) lua_pushvalue(L, -3);
            lua_rawset(L, idx);
        }
        lua_pop(L, 1);
    }
}

/* Decodes the JSON in the box's buffer (a record of ty, or NULL), frees the box, returns 1. */
static int return_json(lua_State *L, struct hk_box *bx, size_t from, const struct trl_type *ty)
{
    /* The text stays in the box (collected with it if decoding raises). */
    hk_json_push_text(L, bx->out.data + from, bx->out.len - from);
    box_clear(bx);
    if (ty) fix_record(L, -1, ty);
    return 1;
}

/* trellis.get(type, id) -> record table or nil */
static int l_get(lua_State *L)
{
    lua_settop(L, 2); /* boxes go above the arguments */
    struct hk_frame *fr = frame_of(L, "get");
    const struct trl_type *ty = type_arg(L, fr, 1, "get");
    uint64_t id = id_arg(L, 2, "get");
    struct hk_box *bx = box_new(L);
    struct trl_access acc;
    struct trl_rec_ctx cx;
    op_ctx(fr, ty, bx, &acc, &cx);
    uint64_t ver;
    int rc = trl_rec_get(fr->t, &cx, ty, id, NULL, &ver, &bx->out);
    if (rc == TRL_ENOTFOUND) {
        box_clear(bx);
        lua_pushnil(L);
        return 1;
    }
    if (rc) return raise_box(L, bx, rc);
    return return_json(L, bx, 0, ty);
}

/* trellis.query(type [, filter [, {sort=, limit=, fields=, cursor=}]]) -> items, next_cursor */
static int l_query(lua_State *L)
{
    lua_settop(L, 3); /* boxes go above the arguments */
    struct hk_frame *fr = frame_of(L, "query");
    const struct trl_type *ty = type_arg(L, fr, 1, "query");
    const char *filter = luaL_optstring(L, 2, NULL);
    struct trl_list_opts o = {.filter = filter};
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "sort");
        o.sort = lua_tostring(L, -1);
        lua_getfield(L, 3, "limit");
        o.limit = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        lua_getfield(L, 3, "fields");
        o.out.fields = lua_tostring(L, -1);
        lua_getfield(L, 3, "cursor");
        o.cursor = lua_tostring(L, -1);
        lua_pop(L, 4); /* the strings stay referenced by the options table */
    }
    struct hk_box *bx = box_new(L);
    struct trl_access acc;
    struct trl_rec_ctx cx;
    op_ctx(fr, ty, bx, &acc, &cx);
    int rc = trl_rec_list(fr->t, &cx, ty, &o, &bx->out);
    if (rc) return raise_box(L, bx, rc);
    hk_json_push_text(L, bx->out.data, bx->out.len);
    box_clear(bx);
    int res = lua_gettop(L);
    lua_getfield(L, res, "items");
    int items = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, items, i) == LUA_TTABLE; i++) {
        fix_record(L, -1, ty);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, res, "next_cursor");
    if (lua_type(L, -1) != LUA_TSTRING) { /* the last page: nil, not json.null */
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 2;
}

/* trellis.count(type [, filter]) -> integer */
static int l_count(lua_State *L)
{
    lua_settop(L, 2); /* boxes go above the arguments */
    struct hk_frame *fr = frame_of(L, "count");
    const struct trl_type *ty = type_arg(L, fr, 1, "count");
    const char *filter = luaL_optstring(L, 2, NULL);
    struct hk_box *bx = box_new(L);
    struct trl_access acc;
    struct trl_rec_ctx cx;
    op_ctx(fr, ty, bx, &acc, &cx);
    int rc;
    uint64_t n = 0;
    if ((!filter || !*filter) && (!cx.acc || (cx.acc->read & TRL_SCOPE_ALL))) {
        rc = trl_rec_count(fr->t, ty, &n); /* the maintained counter */
    } else {
        struct trl_list_opts o = {
            .filter = filter, .limit = 1, .count_exact = true, .out = {.fields = "id"}};
        rc = trl_rec_list(fr->t, &cx, ty, &o, &bx->out);
        const char *c = rc ? NULL : strstr(bx->out.data, "\"count\":");
        if (c) n = strtoull(c + 8, NULL, 10);
    }
    if (rc) return raise_box(L, bx, rc);
    box_clear(bx);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* Writes run in a nested txn: a refused write inside a hook that catches the error leaves
 * nothing behind. */
enum wkind { W_CREATE, W_UPDATE, W_TRANSITION, W_DELETE };
struct wjob {
    enum wkind kind;
    struct hk_frame *fr;
    struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    uint64_t id, version;
    struct hk_box *bx;
    size_t nin;
    const char *transition, *comment;
    const char *org, *owner; /* create: the record's org and owner (privileged) */
};

static int wjob_run(struct trl_txn *nt, void *arg)
{
    struct wjob *j = arg;
    struct trl_txn *outer = j->fr->t;
    j->fr->t = nt; /* hooks fired by this write see the nested txn */
    int rc;
    const struct trl_wf_set *ws = j->fr->b->ws;
    switch (j->kind) {
    case W_CREATE:
        rc = trl_wf_rec_create(nt, j->cx, ws, j->ty, j->bx->in, j->nin, &j->id, NULL, &j->bx->out);
        break;
    case W_UPDATE:
        rc = trl_wf_rec_patch(nt, j->cx, ws, j->ty, j->id, j->version, j->bx->in, j->nin,
                              &j->bx->out);
        break;
    case W_TRANSITION: {
        const struct trl_workflow *w = trl_wf_by_type(ws, j->ty->name);
        if (!w) {
            rc = trl_diag_set(j->cx->d, TRL_ENOTFOUND, "%s has no workflow", j->ty->name);
            break;
        }
        struct trl_wf_run run = {.transition = j->transition,
                                 .if_match = j->version,
                                 .in = j->bx->in,
                                 .nin = j->nin,
                                 .comment = j->comment};
        rc = trl_wf_transition(nt, j->cx, j->ty, w, j->id, &run, &j->bx->out);
        break;
    }
    default:
        rc = trl_wf_rec_delete(nt, j->cx, ws, j->ty, j->id, j->version);
        break;
    }
    j->fr->t = outer;
    return rc;
}

static int do_write(lua_State *L, struct wjob *j)
{
    struct trl_access acc;
    struct trl_rec_ctx cx;
    op_ctx(j->fr, j->ty, j->bx, &acc, &cx);
    cx.create_org = j->org;
    cx.create_owner = j->owner;
    j->cx = &cx;
    int rc = trl_txn_nested(j->fr->t, wjob_run, j);
    if (rc) return raise_box(L, j->bx, rc);
    if (j->kind == W_DELETE) {
        box_clear(j->bx);
        lua_pushboolean(L, 1);
        return 1;
    }
    return return_json(
        L, j->bx, 0,
        j->kind == W_TRANSITION || j->kind == W_CREATE || j->kind == W_UPDATE ? j->ty : NULL);
}

/* trellis.create(type, fields [, {org =, owner =}]) -> record; org and owner (privileged hooks
 * only) make the record belong to another org and user, e.g. a partner's. */
static int l_create(lua_State *L)
{
    lua_settop(L, 3); /* boxes go above the arguments */
    struct hk_frame *fr = write_frame(L, "create");
    const struct trl_type *ty = type_arg(L, fr, 1, "create");
    const char *org = NULL, *owner = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "org");
        org = lua_tostring(L, -1);
        lua_getfield(L, 3, "owner");
        owner = lua_tostring(L, -1);
        lua_pop(L, 2); /* the strings stay referenced by the options table */
        if ((org || owner) && !fr->privileged)
            return luaL_error(L, "trellis.create: only a privileged hook may choose the org or "
                                 "owner (app.json hooks.privileged)");
        if ((org && (strlen(org) > 63 || (*org && !trl_auth_name_valid(org)))) ||
            (owner && (strlen(owner) > 63 || !trl_auth_name_valid(owner))))
            return luaL_error(L, "trellis.create: org and owner must be names");
    }
    struct hk_box *bx = box_new(L);
    struct wjob j = {.kind = W_CREATE, .fr = fr, .ty = ty, .bx = bx, .org = org, .owner = owner};
    j.nin = table_inputs(L, 2, ty, bx, "create");
    return do_write(L, &j);
}

/* trellis.update(type, id, fields [, version]) -> record */
static int l_update(lua_State *L)
{
    lua_settop(L, 4); /* boxes go above the arguments */
    struct hk_frame *fr = write_frame(L, "update");
    const struct trl_type *ty = type_arg(L, fr, 1, "update");
    uint64_t id = id_arg(L, 2, "update");
    lua_Integer ver = luaL_optinteger(L, 4, 0);
    struct hk_box *bx = box_new(L);
    struct wjob j = {
        .kind = W_UPDATE, .fr = fr, .ty = ty, .id = id, .version = (uint64_t)ver, .bx = bx};
    j.nin = table_inputs(L, 3, ty, bx, "update");
    return do_write(L, &j);
}

/* trellis.transition(type, id, name [, fields [, comment]]) -> record */
static int l_transition(lua_State *L)
{
    lua_settop(L, 5); /* boxes go above the arguments */
    struct hk_frame *fr = write_frame(L, "transition");
    const struct trl_type *ty = type_arg(L, fr, 1, "transition");
    uint64_t id = id_arg(L, 2, "transition");
    const char *name = luaL_checkstring(L, 3);
    const char *comment = luaL_optstring(L, 5, NULL);
    struct hk_box *bx = box_new(L);
    struct wjob j = {.kind = W_TRANSITION,
                     .fr = fr,
                     .ty = ty,
                     .id = id,
                     .bx = bx,
                     .transition = name,
                     .comment = comment};
    j.nin = table_inputs(L, 4, ty, bx, "transition");
    return do_write(L, &j);
}

/* trellis.delete(type, id [, version]) -> true */
static int l_delete(lua_State *L)
{
    lua_settop(L, 3); /* boxes go above the arguments */
    struct hk_frame *fr = write_frame(L, "delete");
    const struct trl_type *ty = type_arg(L, fr, 1, "delete");
    uint64_t id = id_arg(L, 2, "delete");
    lua_Integer ver = luaL_optinteger(L, 3, 0);
    struct hk_box *bx = box_new(L);
    struct wjob j = {
        .kind = W_DELETE, .fr = fr, .ty = ty, .id = id, .version = (uint64_t)ver, .bx = bx};
    return do_write(L, &j);
}

/* trellis.now() -> "2026-11-24T08:00:00.000Z" (the request's time) */
static int l_now(lua_State *L)
{
    struct hk_frame *fr = frame_of(L, "now");
    char ts[40];
    trl_datetime_format(fr->cx->now_ms, ts);
    lua_pushstring(L, ts);
    return 1;
}

/* trellis.user([name]) -> {id, display_name, email, lang, org, manager, region, roles, skills,
 * active} or nil; without a name, the caller. */
static int l_user(lua_State *L)
{
    struct hk_frame *fr = frame_of(L, "user");
    const char *name = luaL_optstring(L, 1, NULL);
    const struct trl_principal *who = fr->cx->who;
    if (!name) name = who && who->user[0] ? who->user : NULL;
    if (!name) {
        lua_pushnil(L);
        return 1;
    }
    struct trl_user *u = lua_newuserdatauv(L, sizeof(*u), 0); /* big: Lua memory, not C stack */
    int rc = trl_auth_user_get(fr->t, name, u);
    if (rc == TRL_ENOTFOUND || (rc == 0 && !trl_auth_name_valid(name))) {
        lua_pushnil(L);
        return 1;
    }
    if (rc) return luaL_error(L, "trellis.user: cannot read user '%s'", name);
    lua_createtable(L, 0, 10);
    set_str(L, "id", u->name);
    set_str(L, "display_name", u->display);
    set_str(L, "email", u->email);
    set_str(L, "lang", u->lang);
    set_str(L, "org", u->org);
    set_str(L, "manager", u->manager);
    set_str(L, "region", u->region);
    lua_pushboolean(L, u->active);
    lua_setfield(L, -2, "active");
    lua_createtable(L, (int)u->nroles, 0);
    for (size_t i = 0; i < u->nroles; i++) {
        lua_pushstring(L, u->roles[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "roles");
    lua_createtable(L, (int)u->nskills, 0);
    for (size_t i = 0; i < u->nskills; i++) {
        lua_pushstring(L, u->skills[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "skills");
    return 1;
}

/* trellis.log(message [, level | {level=, history=true}]) — level "info" (default), "warn" or
 * "error"; to the server log with the hook's file and line, and with history = true into the
 * history of the record the event is about. At most 100 lines of 2000 bytes per call. */
static int l_log(lua_State *L)
{
    struct hk_frame *fr = frame_of(L, "log");
    size_t ml;
    const char *msg = luaL_tolstring(L, 1, &ml);
    const char *lv = "info";
    bool history = false;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "level");
        if (lua_type(L, -1) == LUA_TSTRING) lv = lua_tostring(L, -1);
        lua_getfield(L, 2, "history");
        history = lua_toboolean(L, -1);
        lua_pop(L, 1); /* the level string stays referenced by the options table */
    } else {
        lv = luaL_optstring(L, 2, "info");
    }
    if (history) {
        /* Into the history of the record the event is about: the event of the change being
         * written, or a note event of its own once the record is written. */
        struct trl_rec_move *m = fr->ev ? fr->ev->rec : NULL;
        if (!m) return luaL_error(L, "trellis.log: history needs a record event (not here)");
        if (fr->ev->kind == TRL_EV_AFTER_DELETE)
            return luaL_error(L, "trellis.log: the record is deleted and its history closed (log "
                                 "to its history in before_delete)");
        size_t hl = ml < LOG_MAX_BYTES ? ml : LOG_MAX_BYTES;
        int rc = trl_rec_move_note(m, msg, hl);
        if (rc == TRL_ECONFLICT) {
            if (fr->b->read_only)
                return luaL_error(L, "trellis.log: this request only reads; history needs a write");
            struct trl_diag nd;
            trl_diag_init(&nd);
            struct trl_rec_ctx ncx = *fr->cx;
            ncx.d = &nd;
            rc = trl_rec_note(fr->t, &ncx, trl_rec_move_type(m), trl_rec_move_id(m), msg, hl);
            trl_diag_reset(&nd);
        }
        if (rc)
            return luaL_error(L, "trellis.log: cannot write the history (%s)", trl_err_token(rc));
    }
    enum trl_log_level level = strcmp(lv, "error") == 0  ? TRL_LOG_ERROR
                               : strcmp(lv, "warn") == 0 ? TRL_LOG_WARN
                                                         : TRL_LOG_INFO;
    if (fr->logs >= LOG_MAX_LINES) return 0;
    fr->logs++;
    char where[128];
    hk_where(L, where, sizeof(where));
    char text[LOG_MAX_BYTES + 1];
    size_t o = 0;
    for (size_t i = 0; i < ml && o < LOG_MAX_BYTES; i++)
        text[o++] = (unsigned char)msg[i] < 0x20 ? ' ' : msg[i];
    text[o] = 0;
    trl_log(level, "hook %s (%s%s%s): %s%s", where[0] ? where : "?", fr->fn ? fr->fn : "",
            fr->cx->request_id && *fr->cx->request_id ? ", request " : "",
            fr->cx->request_id ? fr->cx->request_id : "", text, ml > LOG_MAX_BYTES ? " ..." : "");
    if (fr->logs == LOG_MAX_LINES)
        trl_log(TRL_LOG_WARN, "hook %s: more than %d log lines in one call; the rest are dropped",
                where, LOG_MAX_LINES);
    return 0;
}

/* trellis.as(user, fn, ...) — specs only: calls fn acting as user (a user name, or a table
 * {id=, roles={...}, org=, region=} for a user that need not exist) and returns its results. */
static int l_as(lua_State *L)
{
    struct hk_frame *fr = frame_of(L, "as");
    if (!fr->b->testing) return luaL_error(L, "trellis.as: only specs may act as another user");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    /* Lua memory: nothing to free if the call raises. */
    struct trl_principal *p = lua_newuserdatauv(L, sizeof(*p), 0);
    memset(p, 0, sizeof(*p));
    int pi = lua_gettop(L);
    if (lua_type(L, 1) == LUA_TSTRING) {
        struct trl_user *u = lua_newuserdatauv(L, sizeof(*u), 0);
        if (trl_auth_user_get(fr->t, lua_tostring(L, 1), u) != 0)
            return luaL_error(L, "trellis.as: no user '%s'", lua_tostring(L, 1));
        trl_auth_principal(u, (const char(*)[64])u->roles, u->nroles, p);
        if (trl_auth_user_groups(fr->t, u->name, p->groups, 16, &p->ngroups) != 0)
            return luaL_error(L, "trellis.as: cannot read the groups of '%s'", u->name);
        lua_pop(L, 1);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "id");
        snprintf(p->user, sizeof(p->user), "%s", luaL_checkstring(L, -1));
        lua_getfield(L, 1, "org");
        snprintf(p->org, sizeof(p->org), "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_getfield(L, 1, "region");
        snprintf(p->region, sizeof(p->region), "%s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 3);
        if (lua_getfield(L, 1, "roles") == LUA_TTABLE)
            for (lua_Integer i = 1; i <= 16; i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
                    lua_pop(L, 1);
                    break;
                }
                snprintf(p->roles[p->nroles++], sizeof(p->roles[0]), "%s", lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        lua_pop(L, 1);
        for (size_t i = 0; i < p->nroles; i++)
            if (strcmp(p->roles[i], "admin") == 0) p->admin = true;
        if (p->nroles) snprintf(p->role, sizeof(p->role), "%s", p->roles[0]);
    }
    struct trl_rec_ctx *ncx = lua_newuserdatauv(L, sizeof(*ncx), 0);
    *ncx = *fr->cx;
    ncx->who = p;
    ncx->acc = NULL;
    const struct trl_rec_ctx *saved = fr->cx;
    bool priv = fr->privileged;
    fr->cx = ncx;
    fr->privileged = false;
    int base = lua_gettop(L) + 1;
    lua_pushvalue(L, 2);
    for (int i = 3; i < pi; i++)
        lua_pushvalue(L, i);
    int st = lua_pcall(L, pi - 3, LUA_MULTRET, 0);
    fr->cx = saved;
    fr->privileged = priv;
    if (st != LUA_OK) return lua_error(L);
    return lua_gettop(L) - base + 1;
}

/* trellis.markdown(text) -> HTML (CommonMark, safe: raw HTML and dangerous links removed) */
static int l_markdown(lua_State *L)
{
    size_t n;
    const char *md = luaL_checklstring(L, 1, &n);
    if (n > (1u << 20)) return luaL_error(L, "trellis.markdown: text over 1 MiB");
    hk_charge(L, n / 16 + 1);
    char *html = cmark_markdown_to_html(md, n, CMARK_OPT_SAFE);
    if (!html) return luaL_error(L, "out of memory");
    /* Copy into Lua first, then free: pushlstring can raise (memory limit). */
    struct hk_box *bx = box_new(L);
    if (trl_buf_adds(&bx->out, html)) {
        free(html);
        return luaL_error(L, "out of memory");
    }
    free(html);
    lua_pushlstring(L, bx->out.data, bx->out.len);
    box_clear(bx);
    return 1;
}

/* trellis.uuid() -> random (version 4) UUID text */
static int l_uuid(lua_State *L)
{
    unsigned char b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    char s[37];
    snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    lua_pushstring(L, s);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Installation
 */
static int install_p(lua_State *L)
{
    luaL_newmetatable(L, KEY_BOXMT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    luaL_newmetatable(L, KEY_RECMT);
    static const luaL_Reg rec_mt[] = {{"__index", rec_index},
                                      {"__newindex", rec_newindex},
                                      {"__pairs", rec_pairs},
                                      {"__tostring", rec_tostring},
                                      {NULL, NULL}};
    luaL_setfuncs(L, rec_mt, 0);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushliteral(L, "trellis.record");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);

    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushliteral(L, "trellis.error");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_ERRMT);

    static const luaL_Reg fns[] = {
        {"get", l_get},       {"query", l_query},   {"count", l_count},
        {"create", l_create}, {"update", l_update}, {"transition", l_transition},
        {"delete", l_delete}, {"now", l_now},       {"user", l_user},
        {"log", l_log},       {"error", l_error},   {"markdown", l_markdown},
        {"uuid", l_uuid},     {"as", l_as},         {NULL, NULL}};
    luaL_newlib(L, fns);
    hk_json_push_lib(L);
    lua_setfield(L, -2, "json");
    hk_sandbox_add(L, "trellis");
    return 0;
}

int hk_api_install(struct trl_hooks_vm *vm, struct trl_diag *d)
{
    lua_State *L = vm->L;
    lua_pushcfunction(L, install_p);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory installing the trellis module");
    }
    vm->host_error = host_error;
    return trl_hooks_vm_selftest(vm, d);
}

struct trl_hooks_bind *hk_api_bound(struct trl_hooks_vm *vm)
{
    return bind_of(vm->L);
}

void hk_api_attach(struct trl_hooks_vm *vm, struct trl_hooks_bind *b)
{
    lua_State *L = vm->L;
    if (b)
        lua_pushlightuserdata(L, b);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_BIND);
}
