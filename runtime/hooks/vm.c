/*
 * vm.c — the VM object, the cache of compiled modules, and trl_hooks_call.
 *
 * Compiling: the text is first loaded as it is (mode "t": a binary chunk is refused), which
 * checks it and gives Lua's own syntax messages; then it is loaded again wrapped as
 *     return function(_ENV, ...) <text>\nend
 * (the prefix sits on line 1, so line numbers do not move) and run once to get the module's
 * factory: a function that runs the module's top-level code with a given environment. Because a
 * text that compiles alone is a complete block, the wrapped text parses the same way; the outer
 * chunk's own _ENV is an empty table in any case. The factory is kept in the registry, keyed in a
 * small open-addressing table by (app, module) with its version.
 *
 * Running: each call makes a new environment (metatable shared and locked, __index the sandbox
 * globals, _G the environment itself), calls the factory with it — so the module's locals and
 * tables are new too — looks the function up in the table it returns and calls it, all inside one
 * lua_pcall whose message handler notes the innermost Lua position. The environment is also kept
 * in a registry table slot per nesting depth, for require.
 *
 * Errors: the handler never calls Lua code (it may run with hooks disabled when the count hook
 * raised). A non-string error value with __tostring is converted after the stack has unwound,
 * in protected mode and within what is left of the call's limits, so a looping __tostring is
 * stopped; messages are cut to a few hundred bytes and cleaned to printable UTF-8.
 */
#include "hooks/hooks_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRAP_PREFIX "return function(_ENV, ...) "
#define WRAP_SUFFIX "\nend"
#define MSG_MAX     400

void hk_file_of(const char *app, const char *module, char *out, size_t n)
{
    size_t ml = strlen(module);
    bool spec = ml > 5 && strcmp(module + ml - 5, "_spec") == 0;
    snprintf(out, n, "%s/%s/%s.lua", app, spec ? "tests" : "hooks", module);
}

static bool name_ok(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return n <= TRL_HOOKS_NAME_MAX;
}

static bool version_ok(const char *s)
{
    return s && *s && strlen(s) <= TRL_HOOKS_NAME_MAX;
}

/* Copies s[0..len) into out (size n) as printable UTF-8: invalid bytes become '?', control
 * characters ' '. Stops before `room` output bytes would be passed; returns the input consumed. */
static size_t clean_part(char *out, size_t room, size_t *o, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        const char *from = s + i;
        char one;
        size_t used = k;
        if (k == 0 || i + k > len || (k > 1 && !trl_utf8_valid(from, k))) {
            one = '?';
            from = &one;
            k = 1;
            used = 1;
        } else if (k == 1 && (c < 32 || c == 127)) {
            one = ' ';
            from = &one;
        }
        if (*o + k > room) break;
        memcpy(out + *o, from, k);
        *o += k;
        i += used;
    }
    return i;
}

/* Copies a message into out (size n >= 64) cleaned as above; one too long keeps its head and its
 * tail (where a nested error's cause is) around " ... ". */
static void clean_copy(char *out, size_t n, const char *s, size_t len)
{
    size_t o = 0;
    if (clean_part(out, n - 1, &o, s, len) < len) {
        o = 0;
        size_t half = (n - 6) / 2;
        clean_part(out, half, &o, s, len);
        memcpy(out + o, " ... ", 5);
        o += 5;
        size_t t = len > half ? len - half : 0;
        while (t < len && ((unsigned char)s[t] & 0xc0) == 0x80)
            t++; /* start the tail on a character */
        clean_part(out, n - 1, &o, s + t, len - t);
    }
    out[o] = 0;
}

/* Length of a leading "file:line" position of msg ("app/hooks/x.lua:12: ..."), 0 when none. */
static size_t position_len(const char *msg)
{
    for (size_t i = 0; msg[i] && msg[i] != ' ' && i < 200; i++) {
        if (msg[i] != ':' || msg[i + 1] < '0' || msg[i + 1] > '9') continue;
        size_t j = i + 1;
        while (msg[j] >= '0' && msg[j] <= '9')
            j++;
        return msg[j] == ':' ? j : 0;
    }
    return 0;
}

void hk_where(lua_State *L, char *out, size_t n)
{
    lua_Debug ar;
    out[0] = 0;
    for (int level = 1; level < 32 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar)) break;
        if (ar.currentline > 0) {
            snprintf(out, n, "%s:%d", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* Message handler of a call: notes the position, returns the error unchanged. Calls no Lua. */
static int hk_msgh(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    if (vm->cur) hk_where(L, vm->cur->where, sizeof(vm->cur->where));
    return 1;
}

static int hk_panic(lua_State *L)
{
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    trl_log(TRL_LOG_ERROR, "hooks: unprotected Lua error: %s", m);
    abort();
}

/* ---------------------------------------------------------------------------------------------
 * The cache of compiled modules
 */
static uint64_t mod_hash(const char *app, const char *module)
{
    uint64_t h = trl_fnv1a(TRL_FNV1A_INIT, app, strlen(app));
    h = trl_fnv1a(h, "/", 1);
    h = trl_fnv1a(h, module, strlen(module));
    return h ? h : 1;
}

static struct hk_module *mod_find(struct trl_hooks_vm *vm, uint64_t h, const char *app,
                                  const char *module)
{
    if (!vm->capmods) return NULL;
    size_t mask = vm->capmods - 1;
    for (size_t i = h & mask; vm->mods[i].hash; i = (i + 1) & mask) {
        struct hk_module *m = &vm->mods[i];
        if (m->hash == h && strcmp(m->app, app) == 0 && strcmp(m->module, module) == 0) return m;
    }
    return NULL;
}

/* A free slot for hash h (the table is grown first when more than half full). NULL on OOM. */
static struct hk_module *mod_slot(struct trl_hooks_vm *vm, uint64_t h)
{
    if ((vm->nmods + 1) * 2 > vm->capmods) {
        size_t cap = vm->capmods ? vm->capmods * 2 : 16;
        struct hk_module *mods = calloc(cap, sizeof(*mods));
        if (!mods) return NULL;
        for (size_t i = 0; i < vm->capmods; i++) {
            if (!vm->mods[i].hash) continue;
            size_t j = vm->mods[i].hash & (cap - 1);
            while (mods[j].hash)
                j = (j + 1) & (cap - 1);
            mods[j] = vm->mods[i];
        }
        free(vm->mods);
        vm->mods = mods;
        vm->capmods = cap;
    }
    size_t i = h & (vm->capmods - 1);
    while (vm->mods[i].hash)
        i = (i + 1) & (vm->capmods - 1);
    return &vm->mods[i];
}

static void mod_clear(struct hk_module *m)
{
    free(m->app);
    free(m->module);
    free(m->version);
    memset(m, 0, sizeof(*m));
}

void trl_hooks_forget(struct trl_hooks_vm *vm, const char *app)
{
    if (!vm || !app || !vm->capmods) return;
    struct hk_module *old = vm->mods;
    size_t cap = vm->capmods;
    struct hk_module *mods = calloc(cap, sizeof(*mods));
    if (!mods) return; /* nothing dropped; the modules stay usable */
    vm->mods = mods;
    vm->nmods = 0;
    for (size_t i = 0; i < cap; i++) {
        if (!old[i].hash) continue;
        if (strcmp(old[i].app, app) == 0) {
            luaL_unref(vm->L, LUA_REGISTRYINDEX, old[i].ref);
            mod_clear(&old[i]);
            continue;
        }
        size_t j = old[i].hash & (cap - 1);
        while (mods[j].hash)
            j = (j + 1) & (cap - 1);
        mods[j] = old[i];
        vm->nmods++;
    }
    free(old);
}

/* ---------------------------------------------------------------------------------------------
 * Compiling
 */
struct compile_args {
    const char *text;      /* the module's text */
    size_t len;            /* its bytes */
    const char *wrapped;   /* the text inside the factory wrapper */
    size_t wlen;           /* its bytes */
    const char *chunkname; /* "@app/hooks/module.lua" */
    int status;            /* Lua status of the failed load, LUA_OK when both loaded */
    int ref;               /* registry reference of the factory */
    char err[MSG_MAX];     /* message of the failed load */
};

static int compile_p(lua_State *L)
{
    struct compile_args *a = lua_touserdata(L, 1);
    lua_pop(L, 1);
    for (int pass = 0; pass < 2; pass++) {
        const char *t = pass ? a->wrapped : a->text;
        size_t n = pass ? a->wlen : a->len;
        a->status = luaL_loadbufferx(L, t, n, a->chunkname, "t");
        if (a->status != LUA_OK) {
            size_t l = 0;
            const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &l) : "?";
            clean_copy(a->err, sizeof(a->err), m, l ? l : strlen(m));
            return 0;
        }
        if (!pass) lua_pop(L, 1);
    }
    lua_newtable(L); /* the wrapper chunk's own _ENV: nothing */
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 1);
    a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Compiles src with the thread L (the main thread or the running coroutine) unless that version
 * is cached; sets *ref to the factory's registry reference. */
static int compile(struct trl_hooks_vm *vm, lua_State *L, const struct trl_hooks_src *src, int *ref,
                   struct trl_diag *d)
{
    if (!name_ok(src->app) || !name_ok(src->module) || !version_ok(src->version) || !src->text) {
        trl_diag_set(d, TRL_EINVAL, "hooks: bad module reference (app, module, version, text)");
        trl_diag_zh(d, "钩子:模块引用无效(应用、模块、版本或源代码)");
        return TRL_EINVAL;
    }
    char file[160];
    hk_file_of(src->app, src->module, file, sizeof(file));
    uint64_t h = mod_hash(src->app, src->module);
    struct hk_module *m = mod_find(vm, h, src->app, src->module);
    if (m && strcmp(m->version, src->version) == 0) {
        *ref = m->ref;
        return 0;
    }
    if (src->len > TRL_HOOKS_MAX_SOURCE) {
        trl_diag_set(d, TRL_ETOOBIG, "%s: source of %zu bytes is over the limit of %u bytes", file,
                     src->len, (unsigned)TRL_HOOKS_MAX_SOURCE);
        trl_diag_zh(d, "%s:源代码 %zu 字节,超过上限 %u 字节", file, src->len,
                    (unsigned)TRL_HOOKS_MAX_SOURCE);
        trl_diag_rule(d, "source", file);
        return TRL_ETOOBIG;
    }
    char chunkname[164];
    snprintf(chunkname, sizeof(chunkname), "@%s", file);
    size_t wlen = sizeof(WRAP_PREFIX) - 1 + src->len + sizeof(WRAP_SUFFIX) - 1;
    char *wrapped = malloc(wlen);
    if (!wrapped) return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory compiling %s", file);
    memcpy(wrapped, WRAP_PREFIX, sizeof(WRAP_PREFIX) - 1);
    memcpy(wrapped + sizeof(WRAP_PREFIX) - 1, src->text, src->len);
    memcpy(wrapped + sizeof(WRAP_PREFIX) - 1 + src->len, WRAP_SUFFIX, sizeof(WRAP_SUFFIX) - 1);
    struct compile_args a = {.text = src->text,
                             .len = src->len,
                             .wrapped = wrapped,
                             .wlen = wlen,
                             .chunkname = chunkname,
                             .ref = LUA_NOREF};
    lua_pushcfunction(L, compile_p);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 1, 0, 0);
    free(wrapped);
    if (st != LUA_OK) {
        lua_pop(L, 1);
        trl_diag_set(d, TRL_ENOMEM, "%s: memory limit exceeded while compiling", file);
        trl_diag_zh(d, "%s:编译时内存超出上限", file);
        trl_diag_rule(d, "memory", file);
        return TRL_ENOMEM;
    }
    if (a.status != LUA_OK) {
        if (a.status == LUA_ERRMEM) {
            trl_diag_set(d, TRL_ENOMEM, "%s: memory limit exceeded while compiling", file);
            trl_diag_zh(d, "%s:编译时内存超出上限", file);
            trl_diag_rule(d, "memory", file);
            return TRL_ENOMEM;
        }
        size_t pl = position_len(a.err);
        char path[160];
        snprintf(path, sizeof(path), "%.*s", (int)(pl ? pl : strlen(file)), pl ? a.err : file);
        trl_diag_set(d, TRL_EVALIDATION, "%s", a.err);
        trl_diag_zh(d, "Lua 语法错误:%s", a.err);
        trl_diag_rule(d, "syntax", path);
        return TRL_EVALIDATION;
    }
    if (m) {
        char *v = trl_strndup(src->version, strlen(src->version));
        if (!v) {
            luaL_unref(L, LUA_REGISTRYINDEX, a.ref);
            return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory compiling %s", file);
        }
        luaL_unref(L, LUA_REGISTRYINDEX, m->ref);
        free(m->version);
        m->version = v;
        m->ref = a.ref;
    } else {
        struct hk_module *s = mod_slot(vm, h);
        char *app = trl_strndup(src->app, strlen(src->app));
        char *mod = trl_strndup(src->module, strlen(src->module));
        char *v = trl_strndup(src->version, strlen(src->version));
        if (!s || !app || !mod || !v) {
            free(app);
            free(mod);
            free(v);
            luaL_unref(L, LUA_REGISTRYINDEX, a.ref);
            return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory compiling %s", file);
        }
        *s = (struct hk_module){.hash = h, .app = app, .module = mod, .version = v, .ref = a.ref};
        vm->nmods++;
    }
    vm->ncompiles++;
    *ref = a.ref;
    return 0;
}

int trl_hooks_compile(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, struct trl_diag *d)
{
    int ref;
    if (!vm || !src) return trl_diag_set(d, TRL_EINVAL, "hooks: no VM or module");
    return compile(vm, vm->L, src, &ref, d);
}

/* The factory of src: the cached one, src's text compiled, or the resolver's text compiled. */
static int find_factory(struct trl_hooks_vm *vm, lua_State *L, const struct trl_hooks_src *src,
                        int *ref, struct trl_diag *d)
{
    if (src->text) return compile(vm, L, src, ref, d);
    if (!name_ok(src->app) || !name_ok(src->module)) {
        trl_diag_set(d, TRL_EINVAL, "hooks: bad app or module name");
        trl_diag_zh(d, "钩子:应用或模块名称无效");
        return TRL_EINVAL;
    }
    /* Without a version (require), the cached copy serves only when nothing can say which text
     * is current: with a resolver, its text's version decides (compile reuses an equal one). */
    struct hk_module *m = mod_find(vm, mod_hash(src->app, src->module), src->app, src->module);
    if (m && (src->version ? strcmp(m->version, src->version) == 0 : !vm->resolve)) {
        *ref = m->ref;
        return 0;
    }
    struct trl_hooks_src r = {0};
    int rc =
        vm->resolve ? vm->resolve(vm->resolve_ud, src->app, src->module, &r, d) : TRL_ENOTFOUND;
    if (rc == 0 && !r.text) rc = TRL_ENOTFOUND;
    if (rc) {
        if (!d->code) {
            trl_diag_set(d, TRL_ENOTFOUND, "hooks: module %s/hooks/%s.lua not found", src->app,
                         src->module);
            trl_diag_zh(d, "钩子:找不到模块 %s/hooks/%s.lua", src->app, src->module);
        }
        return rc;
    }
    r.app = src->app; /* a resolver answers for the app asked about, never another */
    r.module = src->module;
    return compile(vm, L, &r, ref, d);
}

void hk_require_factory(lua_State *L, const char *app, const char *module)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    char msg[MSG_MAX];
    if (!name_ok(module)) {
        clean_copy(msg, 80, module, strlen(module));
        luaL_error(L,
                   "require: invalid module name '%s' (only modules of the app's hooks/ folder: "
                   "a-z, 0-9, '_', '-')",
                   msg);
    }
    struct trl_hooks_src src = {.app = app, .module = module};
    struct trl_diag d;
    trl_diag_init(&d);
    int ref = LUA_NOREF;
    int rc = find_factory(vm, L, &src, &ref, &d);
    clean_copy(msg, sizeof(msg), d.message, strlen(d.message));
    trl_diag_reset(&d); /* nothing malloc'd may be held when raising */
    if (rc == TRL_ENOTFOUND)
        luaL_error(L, "require: module '%s' not found in %s/hooks/", module, app);
    if (rc) luaL_error(L, "require: %s", msg);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
}

/* ---------------------------------------------------------------------------------------------
 * Calling
 */
struct run_args {
    struct trl_hooks_vm *vm;
    int ref;                /* the module's factory */
    int depth;              /* nesting depth of the call */
    const char *file;       /* "app/hooks/module.lua" */
    const char *module;     /* module name, the factory's vararg */
    const char *fn;         /* function to call */
    trl_hooks_push_fn push; /* argument pusher or NULL */
    trl_hooks_read_fn read; /* result reader or NULL */
    void *ud;               /* their argument */
    struct trl_diag *d;     /* for read */
    int cb_rc;              /* a callback's code */
    int bad;                /* 1: the module returned no table, 2: no such function */
};

static int run_p(lua_State *L)
{
    struct run_args *r = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref); /* 1: factory */
    lua_createtable(L, 0, 4);                  /* 2: environment */
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->vm->ref_env_mt);
    lua_setmetatable(L, 2);
    lua_pushliteral(L, "_G");
    lua_pushvalue(L, 2);
    lua_rawset(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->vm->ref_runs); /* 3 */
    lua_pushvalue(L, 2);
    lua_rawseti(L, 3, 2 * r->depth + 1);
    lua_pushnil(L);
    lua_rawseti(L, 3, 2 * r->depth + 2);
    lua_settop(L, 2);
    lua_pushstring(L, r->module);
    lua_call(L, 2, 1); /* 1: the module's table */
    if (!lua_istable(L, 1)) {
        r->bad = 1;
        return luaL_error(L, "%s returned %s, not a table of functions", r->file,
                          luaL_typename(L, 1));
    }
    if (!r->fn) {
        /* The module's table itself, for the reader (trl_hooks_module). */
        lua_settop(L, 1);
        if (r->read) r->cb_rc = r->read(L, 1, r->ud, r->d);
        return 0;
    }
    /* "name" or "table.name" (one level: endpoints by method, computed fields). */
    const char *dot = strchr(r->fn, '.');
    if (dot) {
        lua_pushlstring(L, r->fn, (size_t)(dot - r->fn));
        if (lua_rawget(L, 1) != LUA_TTABLE) {
            r->bad = 2;
            return luaL_error(L, "%s has no function '%s'", r->file, r->fn);
        }
        lua_replace(L, 1);
        lua_getfield(L, 1, dot + 1);
    } else {
        lua_getfield(L, 1, r->fn); /* 2 */
    }
    if (!lua_isfunction(L, 2)) {
        r->bad = 2;
        return luaL_error(L, "%s has no function '%s'", r->file, r->fn);
    }
    int n = 0;
    if (r->push) {
        n = r->push(L, r->ud);
        if (n < 0) {
            r->cb_rc = n;
            return 0;
        }
    }
    lua_call(L, n, LUA_MULTRET);
    if (r->read) r->cb_rc = r->read(L, lua_gettop(L) - 1, r->ud, r->d);
    return 0;
}

/* __tostring of an error value, in protected mode: the string, or nil. */
static int tostring_p(lua_State *L)
{
    if (luaL_getmetafield(L, 1, "__tostring") == LUA_TNIL) return 0;
    lua_pop(L, 1);
    luaL_tolstring(L, 1, NULL);
    return 1;
}

/* Fills d for a failed call; the error value is on top of the stack; limits still apply. */
static int report(struct trl_hooks_vm *vm, struct hk_inv *iv, const struct run_args *r, int status,
                  struct trl_diag *d)
{
    lua_State *L = vm->L;
    int kind = iv->stop;
    if (!kind && status == LUA_ERRMEM) kind = HK_STOP_MEMORY;
    const char *where = iv->where[0] ? iv->where : r->file;
    switch (kind) {
    case HK_STOP_INSTR:
        trl_diag_set(d, TRL_ETIMEOUT, "%s: instruction budget exceeded (%llu instructions)", where,
                     (unsigned long long)iv->lim.instructions);
        trl_diag_zh(d, "%s:指令数超出上限(%llu 条)", where,
                    (unsigned long long)iv->lim.instructions);
        trl_diag_rule(d, "instructions", where);
        return TRL_ETIMEOUT;
    case HK_STOP_DEADLINE:
        trl_diag_set(d, TRL_ETIMEOUT, "%s: time limit exceeded (%u ms)", where,
                     (unsigned)iv->lim.time_ms);
        trl_diag_zh(d, "%s:执行时间超出上限(%u 毫秒)", where, (unsigned)iv->lim.time_ms);
        trl_diag_rule(d, "deadline", where);
        return TRL_ETIMEOUT;
    case HK_STOP_MEMORY:
        trl_diag_set(d, TRL_ENOMEM, "%s: memory limit exceeded (%zu bytes)", where, iv->lim.memory);
        trl_diag_zh(d, "%s:内存超出上限(%zu 字节)", where, iv->lim.memory);
        trl_diag_rule(d, "memory", where);
        return TRL_ENOMEM;
    default:
        break;
    }
    /* An error the host raised on purpose (trellis.error, a refused write): its own code. */
    if (vm->host_error) {
        int hc = vm->host_error(L, where, d);
        if (hc) return hc;
    }
    /* A Lua error. */
    char text[MSG_MAX];
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING) {
        size_t l;
        const char *s = lua_tolstring(L, -1, &l);
        clean_copy(text, sizeof(text), s, l);
    } else if (t == LUA_TNUMBER) {
        if (lua_isinteger(L, -1))
            snprintf(text, sizeof(text), "%lld", (long long)lua_tointeger(L, -1));
        else
            snprintf(text, sizeof(text), "%.14g", (double)lua_tonumber(L, -1));
    } else {
        snprintf(text, sizeof(text), "(error object is a %s value)", lua_typename(L, t));
        if (t == LUA_TTABLE || t == LUA_TUSERDATA) {
            lua_pushcfunction(L, tostring_p);
            lua_pushvalue(L, -2);
            if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING && !iv->stop) {
                size_t l;
                const char *s = lua_tolstring(L, -1, &l);
                clean_copy(text, sizeof(text), s, l);
            }
            lua_pop(L, 1);
        }
    }
    size_t pl = position_len(text);
    char path[160];
    if (pl)
        snprintf(path, sizeof(path), "%.*s", (int)pl, text);
    else
        snprintf(path, sizeof(path), "%s", where);
    int code = r->bad == 2 ? TRL_ENOTFOUND : TRL_EINTERNAL;
    const char *rule = r->bad == 2 ? "function" : r->bad == 1 ? "module" : "runtime";
    if (pl || r->bad) {
        trl_diag_set(d, code, "%s", text);
        trl_diag_zh(d, "Lua 运行错误:%s", text);
    } else {
        trl_diag_set(d, code, "%s: %s", path, text);
        trl_diag_zh(d, "Lua 运行错误:%s: %s", path, text);
    }
    trl_diag_rule(d, rule, path);
    return code;
}

static int call(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, const char *fn,
                trl_hooks_push_fn push, trl_hooks_read_fn read, void *ud,
                const struct trl_hooks_limits *limits, struct trl_diag *d);

int trl_hooks_call(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, const char *fn,
                   trl_hooks_push_fn push, trl_hooks_read_fn read, void *ud,
                   const struct trl_hooks_limits *limits, struct trl_diag *d)
{
    if (!fn) {
        trl_diag_set(d, TRL_EINVAL, "hooks: bad call (no function name)");
        trl_diag_zh(d, "钩子:调用参数无效");
        return TRL_EINVAL;
    }
    return call(vm, src, fn, push, read, ud, limits, d);
}

int trl_hooks_module(struct trl_hooks_vm *vm, const struct trl_hooks_src *src,
                     trl_hooks_read_fn read, void *ud, const struct trl_hooks_limits *limits,
                     struct trl_diag *d)
{
    return call(vm, src, NULL, NULL, read, ud, limits, d);
}

static int call(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, const char *fn,
                trl_hooks_push_fn push, trl_hooks_read_fn read, void *ud,
                const struct trl_hooks_limits *limits, struct trl_diag *d)
{
    if (!vm || !src || (fn && (!*fn || strlen(fn) > 2 * TRL_HOOKS_NAME_MAX + 1))) {
        trl_diag_set(d, TRL_EINVAL, "hooks: bad call (no VM, module or function name)");
        trl_diag_zh(d, "钩子:调用参数无效");
        return TRL_EINVAL;
    }
    int depth = vm->cur ? vm->cur->depth + 1 : 0;
    if (depth >= TRL_HOOKS_MAX_DEPTH) {
        trl_diag_set(d, TRL_EINTERNAL, "hook calls nested more than %d deep (calling %s in %s)",
                     TRL_HOOKS_MAX_DEPTH, fn ? fn : "(module)", src->module ? src->module : "?");
        trl_diag_zh(d, "钩子调用嵌套超过 %d 层", TRL_HOOKS_MAX_DEPTH);
        trl_diag_rule(d, "depth", "");
        return TRL_EINTERNAL;
    }
    lua_State *L = vm->L;
    if (!lua_checkstack(L, 16)) /* a call made from a binding inherits its stack */
        return trl_diag_set(d, TRL_ENOMEM, "hooks: no Lua stack left for a call");
    int base = lua_gettop(L);
    int ref = LUA_NOREF;
    int rc = find_factory(vm, L, src, &ref, d);
    if (rc) return rc;
    char file[160];
    hk_file_of(src->app, src->module, file, sizeof(file));
    vm->ncalls++;
    struct hk_inv iv;
    hk_limits_begin(vm, &iv, limits, src->app);
    struct run_args r = {.vm = vm,
                         .ref = ref,
                         .depth = depth,
                         .file = file,
                         .module = src->module,
                         .fn = fn,
                         .push = push,
                         .read = read,
                         .ud = ud,
                         .d = d};
    lua_pushcfunction(L, hk_msgh);
    lua_pushcfunction(L, run_p);
    lua_pushlightuserdata(L, &r);
    int st = lua_pcall(L, 1, 0, base + 1);
    if (st != LUA_OK)
        rc = report(vm, &iv, &r, st, d);
    else
        rc = r.cb_rc;
    hk_limits_end(vm, &iv);
    /* Release the run's environment and modules (array slots: no allocation). */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_runs);
    lua_pushnil(L);
    lua_rawseti(L, -2, 2 * depth + 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, 2 * depth + 2);
    lua_settop(L, base);
    if (depth == 0 && (iv.stop || st == LUA_ERRMEM)) lua_gc(L, LUA_GCCOLLECT);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The VM
 */
static int selftest_p(lua_State *L)
{
    char *why = lua_touserdata(L, 1);
    lua_pop(L, 1);
    lua_pushboolean(L, hk_sandbox_check(L, why, 200) == 0);
    return 1;
}

int trl_hooks_vm_selftest(struct trl_hooks_vm *vm, struct trl_diag *d)
{
    char why[200] = "out of memory";
    lua_State *L = vm->L;
    lua_pushcfunction(L, selftest_p);
    lua_pushlightuserdata(L, why);
    int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ok) return 0;
    trl_diag_set(d, TRL_EINTERNAL, "hooks: sandbox self-test failed: %s", why);
    trl_diag_zh(d, "钩子:沙箱自检失败:%s", why);
    return TRL_EINTERNAL;
}

int trl_hooks_vm_new(const struct trl_clock *clock, struct trl_hooks_vm **out, struct trl_diag *d)
{
    *out = NULL;
    struct trl_hooks_vm *vm = calloc(1, sizeof(*vm));
    if (!vm) return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory");
    if (clock) {
        vm->clock = clock;
    } else {
        trl_clock_system(&vm->own_clock);
        vm->clock = &vm->own_clock;
    }
    vm->L = lua_newstate(hk_alloc, vm);
    if (!vm->L) {
        free(vm);
        return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory");
    }
    lua_atpanic(vm->L, hk_panic);
    lua_pushcfunction(vm->L, hk_sandbox_open);
    if (lua_pcall(vm->L, 0, 0, 0) != LUA_OK) {
        trl_hooks_vm_free(vm);
        return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory building the sandbox");
    }
    int rc = trl_hooks_vm_selftest(vm, d);
    if (rc) {
        trl_hooks_vm_free(vm);
        return rc;
    }
    *out = vm;
    return 0;
}

void trl_hooks_vm_free(struct trl_hooks_vm *vm)
{
    if (!vm) return;
    if (vm->L) lua_close(vm->L);
    for (size_t i = 0; i < vm->capmods; i++)
        if (vm->mods[i].hash) mod_clear(&vm->mods[i]);
    free(vm->mods);
    free(vm);
}

void trl_hooks_vm_set_resolver(struct trl_hooks_vm *vm, trl_hooks_resolve_fn fn, void *ud)
{
    vm->resolve = fn;
    vm->resolve_ud = ud;
}

void trl_hooks_vm_stats(const struct trl_hooks_vm *vm, struct trl_hooks_stats *out)
{
    out->memory = vm->used;
    out->modules = vm->nmods;
    out->calls = vm->ncalls;
    out->compiles = vm->ncompiles;
}
