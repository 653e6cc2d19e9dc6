/*
 * sandbox.c — what hook code can reach, built from allow lists.
 *
 * Only six openers run: base, string, table, math, utf8, coroutine (luaL_requiref each; never
 * luaL_openlibs), so io, os, package and debug exist nowhere in the state, not even in the
 * registry's loaded table. From those libraries:
 *   - the sandbox globals (SG) take an allow-listed subset of base, our own setmetatable (refuses
 *     __gc), xpcall (the handler runs after unwinding) and require (the app's own modules only),
 *     and a read-only proxy of each library plus an `os` of Trellis functions;
 *   - string.dump and math.randomseed are deleted; coroutine.yield says when it cannot yield;
 *     coroutine.close is nested at most HK_MAX_CLOSE_DEPTH deep (5.4.4 overflows the C stack);
 *     coroutine.create and wrap give the new thread the short coroutine hook period;
 *   - the long-running C functions are replaced by charging or metered versions (limits.c,
 *     pattern.c) in the library tables themselves, so the string metatable's __index (the same
 *     table) serves the safe versions to ("x"):rep(...) too;
 *   - the string metatable gets __metatable = false: getmetatable("") is false and the metatable
 *     can be neither reached nor replaced.
 * A proxy is an empty table whose metatable (locked) reads through to the real table, raises on
 * writes and iterates with __pairs, so no real library table is ever handed to Lua code. SG has
 * a metatable whose __index raises "undeclared global 'x'". Each run's environment is a new table
 * whose metatable (shared, locked) has __index = SG; it is built in vm.c.
 */
#include "hooks/hooks_int.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Read-only proxies and undeclared globals
 */
static int lb_ro_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        char key[68];
        snprintf(key, sizeof(key), "%s", lua_tostring(L, 2));
        return luaL_error(L, "attempt to modify a read-only table (field '%s')", key);
    }
    return luaL_error(L, "attempt to modify a read-only table");
}

/* Iterator of a proxy: next over the real table (upvalue 1). */
static int lb_ro_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs of a proxy: returns the iterator (upvalue 1), the proxy and nil. */
static int lb_ro_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Pushes a read-only proxy of the table at real. */
static void push_proxy(lua_State *L, int real)
{
    real = lua_absindex(L, real);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lb_ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, lb_ro_next, 1);
    lua_pushcclosure(L, lb_ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_setmetatable(L, -2);
}

static int lb_undeclared(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        char key[68];
        snprintf(key, sizeof(key), "%s", lua_tostring(L, 2));
        return luaL_error(L, "undeclared global '%s'", key);
    }
    return luaL_error(L, "undeclared global (a %s key)", luaL_typename(L, 2));
}

/* ---------------------------------------------------------------------------------------------
 * Base functions of our own
 */
static int lb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        /* Finalisers would run at some later collection, outside any call's limits and possibly
         * during another app's call. Lua marks an object for finalisation only when its
         * metatable has __gc at this moment, so checking here is enough. */
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in hooks");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* xpcall(f, handler, ...): like pcall, then handler(err) once the stack has unwound. Lua's own
 * xpcall runs the handler at the point of the error, where an error raised by the count hook
 * would run it with hooks disabled: a looping handler would never be stopped. */
static int xpcall_finish(lua_State *L, int status, lua_KContext extra)
{
    if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L) - (int)extra;
    /* stack: f handler true err */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_pcall(L, 1, 1, 0);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static int lb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f handler true f args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 0, 2, xpcall_finish);
    return xpcall_finish(L, status, 2);
}

static int lb_co_yield(lua_State *L)
{
    if (!lua_isyieldable(L))
        return luaL_error(L, "attempt to yield across the host boundary (coroutine.yield "
                             "outside a coroutine, or through a C function)");
    return lua_yield(L, lua_gettop(L));
}

/* coroutine.create and coroutine.wrap: the original, then the new thread's count hook armed
 * with the coroutine period (wrap's thread is its closure's upvalue). */
static int lb_co_create(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    lua_State *co = lua_tothread(L, -1);
    if (!co && lua_getupvalue(L, -1, 1)) {
        co = lua_tothread(L, -1);
        lua_pop(L, 1);
    }
    if (co) hk_arm_coroutine(L, co);
    return 1;
}

static int lb_co_close(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    if (vm->close_depth >= HK_MAX_CLOSE_DEPTH)
        return luaL_error(L, "coroutine.close nested more than %d deep", HK_MAX_CLOSE_DEPTH);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    vm->close_depth++;
    int status = lua_pcall(L, n, LUA_MULTRET, 0);
    vm->close_depth--;
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* require(name): a module of the running app's hooks/ folder, through the caller's resolver.
 * Modules share the run's environment and are loaded once per run. */
static int lb_require(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    struct hk_inv *iv = vm->cur;
    const char *name = luaL_checkstring(L, 1);
    if (!iv) return luaL_error(L, "require: no hook is running");
    lua_settop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_runs);          /* 2 */
    if (lua_rawgeti(L, 2, 2 * iv->depth + 2) != LUA_TTABLE) { /* 3: loaded */
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 2, 2 * iv->depth + 2);
    }
    lua_pushvalue(L, 1);
    int t = lua_rawget(L, 3);
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
        return luaL_error(L, "require: module '%s' requires itself (a cycle)", name);
    if (t != LUA_TNIL) return 1;
    lua_pop(L, 1);
    hk_require_factory(L, iv->app, name); /* 4 */
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 0); /* loading: a require of it from itself is a cycle */
    lua_rawset(L, 3);
    lua_rawgeti(L, 2, 2 * iv->depth + 1); /* the run's environment */
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        lua_rawset(L, 3);
        return lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, 3);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * os: time, date and clock. UTC only; times are integer seconds since the epoch, years 1-9999.
 */
#define OS_MIN_TIME (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define OS_MAX_TIME 253402300799LL   /* 9999-12-31T23:59:59Z */

static const char *const date_formats[] = {"!%Y-%m-%dT%H:%M:%SZ", "!%Y-%m-%d", "!%Y-%m-%d %H:%M:%S",
                                           "!%H:%M:%S", NULL};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static lua_Integer date_field(lua_State *L, const char *k, lua_Integer dflt, int required)
{
    int isnum = 0;
    int t = lua_getfield(L, 1, k);
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum) {
        if (t != LUA_TNIL) return luaL_error(L, "os.time: field '%s' is not an integer", k);
        if (required) return luaL_error(L, "os.time: field '%s' missing in date table", k);
        v = dflt;
    } else if (v < -1000000000 || v > 1000000000) {
        return luaL_error(L, "os.time: field '%s' is out of range", k);
    }
    lua_pop(L, 1);
    return v;
}

static int lb_os_time(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    if (lua_isnoneornil(L, 1)) {
        lua_pushinteger(L, floor_div(trl_clock_now(vm->clock), 1000));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    int64_t year = date_field(L, "year", 0, 1);
    int64_t month = date_field(L, "month", 0, 1) - 1;
    int64_t day = date_field(L, "day", 0, 1);
    int64_t hour = date_field(L, "hour", 12, 0);
    int64_t min = date_field(L, "min", 0, 0);
    int64_t sec = date_field(L, "sec", 0, 0);
    year += floor_div(month, 12);
    month -= floor_div(month, 12) * 12;
    if (year < 1 || year > 9999) return luaL_error(L, "os.time: year out of range (1 to 9999)");
    int64_t days = trl_days_from_civil(year, (unsigned)month + 1, 1) + (day - 1);
    int64_t t = days * 86400 + hour * 3600 + min * 60 + sec;
    if (t < OS_MIN_TIME || t > OS_MAX_TIME)
        return luaL_error(L, "os.time: date out of range (years 1 to 9999)");
    lua_pushinteger(L, t);
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int lb_os_date(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    const char *fmt = luaL_optstring(L, 1, date_formats[0]);
    int64_t t = lua_isnoneornil(L, 2) ? floor_div(trl_clock_now(vm->clock), 1000)
                                      : (int64_t)luaL_checkinteger(L, 2);
    if (t < OS_MIN_TIME || t > OS_MAX_TIME)
        return luaL_error(L, "os.date: time out of range (years 1 to 9999)");
    int table = strcmp(fmt, "*t") == 0 || strcmp(fmt, "!*t") == 0;
    int known = table;
    for (int i = 0; date_formats[i] && !known; i++)
        known = strcmp(fmt, date_formats[i]) == 0;
    if (!known) {
        char shown[40];
        snprintf(shown, sizeof(shown), "%s", fmt);
        return luaL_error(L,
                          "os.date: format '%s' is not allowed (UTC only: '!%%Y-%%m-%%dT%%H:%%M:"
                          "%%SZ', '!%%Y-%%m-%%d', '!%%Y-%%m-%%d %%H:%%M:%%S', '!%%H:%%M:%%S', "
                          "'*t', '!*t')",
                          shown);
    }
    int64_t days = floor_div(t, 86400);
    int64_t secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    trl_civil_from_days((int32_t)days, &y, &m, &d);
    int hh = (int)(secs / 3600), mi = (int)(secs / 60 % 60), ss = (int)(secs % 60);
    if (table) {
        lua_createtable(L, 0, 9);
        set_int(L, "year", y);
        set_int(L, "month", m);
        set_int(L, "day", d);
        set_int(L, "hour", hh);
        set_int(L, "min", mi);
        set_int(L, "sec", ss);
        set_int(L, "wday", (days % 7 + 7 + 4) % 7 + 1); /* 1970-01-01 was a Thursday (5) */
        set_int(L, "yday", days - trl_days_from_civil(y, 1, 1) + 1);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "isdst");
        return 1;
    }
    char out[40];
    if (strcmp(fmt, "!%Y-%m-%d") == 0)
        snprintf(out, sizeof(out), "%04d-%02u-%02u", (int)y, m, d);
    else if (strcmp(fmt, "!%H:%M:%S") == 0)
        snprintf(out, sizeof(out), "%02d:%02d:%02d", hh, mi, ss);
    else if (strcmp(fmt, "!%Y-%m-%d %H:%M:%S") == 0)
        snprintf(out, sizeof(out), "%04d-%02u-%02u %02d:%02d:%02d", (int)y, m, d, hh, mi, ss);
    else
        snprintf(out, sizeof(out), "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d, hh, mi, ss);
    lua_pushstring(L, out);
    return 1;
}

/* Seconds since the call started (not process CPU time, which would tell about other work). */
static int lb_os_clock(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    int64_t start = vm->cur ? vm->cur->start_ns : hk_mono_ns();
    lua_pushnumber(L, (lua_Number)(hk_mono_ns() - start) / 1e9);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Building the sandbox
 */
static const char *const base_allowed[] = {
    "assert", "error",  "getmetatable", "ipairs",   "next", "pairs",    "pcall", "rawequal",
    "rawlen", "select", "tonumber",     "tostring", "type", "_VERSION", NULL};

/* Removed from the real globals too, though no hook code can reach them. */
static const char *const base_removed[] = {"load",    "loadfile", "dofile", "collectgarbage",
                                           "rawget",  "rawset",   "print",  "warn",
                                           "require", NULL};

static void set_nil(lua_State *L, int idx, const char *k)
{
    lua_pushnil(L);
    lua_setfield(L, idx, k);
}

int hk_sandbox_open(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    static const luaL_Reg openers[] = {{LUA_GNAME, luaopen_base},
                                       {LUA_STRLIBNAME, luaopen_string},
                                       {LUA_TABLIBNAME, luaopen_table},
                                       {LUA_MATHLIBNAME, luaopen_math},
                                       {LUA_UTF8LIBNAME, luaopen_utf8},
                                       {LUA_COLIBNAME, luaopen_coroutine},
                                       {NULL, NULL}};
    for (const luaL_Reg *o = openers; o->name; o++) {
        luaL_requiref(L, o->name, o->func, 0);
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    lua_getfield(L, loaded, LUA_GNAME);
    int g0 = lua_gettop(L);
    lua_getfield(L, loaded, LUA_STRLIBNAME);
    int str = lua_gettop(L);
    lua_getfield(L, loaded, LUA_TABLIBNAME);
    int tab = lua_gettop(L);
    lua_getfield(L, loaded, LUA_MATHLIBNAME);
    int math = lua_gettop(L);
    lua_getfield(L, loaded, LUA_UTF8LIBNAME);
    int utf8 = lua_gettop(L);
    lua_getfield(L, loaded, LUA_COLIBNAME);
    int co = lua_gettop(L);

    /* The libraries, sanitised in place. */
    set_nil(L, str, "dump");
    set_nil(L, math, "randomseed"); /* the generator is shared by every app using this VM */
    hk_limits_wrap(L, g0, str, tab, utf8);
    lua_pushcfunction(L, lb_co_yield);
    lua_setfield(L, co, "yield");
    hk_wrap(L, g0, co, LUA_COLIBNAME, "close", lb_co_close);
    hk_wrap(L, g0, co, LUA_COLIBNAME, "create", lb_co_create);
    hk_wrap(L, g0, co, LUA_COLIBNAME, "wrap", lb_co_create);

    /* The string metatable: locked; its __index is the sanitised string table. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    /* os */
    static const luaL_Reg os_funcs[] = {
        {"time", lb_os_time}, {"date", lb_os_date}, {"clock", lb_os_clock}, {NULL, NULL}};
    luaL_newlib(L, os_funcs);
    int os = lua_gettop(L);

    /* The sandbox globals. */
    lua_createtable(L, 0, 32);
    int sg = lua_gettop(L);
    for (int i = 0; base_allowed[i]; i++) {
        lua_getfield(L, g0, base_allowed[i]);
        lua_setfield(L, sg, base_allowed[i]);
    }
    hk_push_tonumber(L, g0);
    lua_setfield(L, sg, "tonumber");
    lua_pushcfunction(L, lb_setmetatable);
    lua_setfield(L, sg, "setmetatable");
    lua_pushcfunction(L, lb_xpcall);
    lua_setfield(L, sg, "xpcall");
    lua_pushcfunction(L, lb_require);
    lua_setfield(L, sg, "require");
    const struct {
        const char *name;
        int idx;
    } libs[] = {{LUA_STRLIBNAME, str},   {LUA_TABLIBNAME, tab}, {LUA_MATHLIBNAME, math},
                {LUA_UTF8LIBNAME, utf8}, {LUA_COLIBNAME, co},   {"os", os}};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        push_proxy(L, libs[i].idx);
        lua_setfield(L, sg, libs[i].name);
    }
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, lb_undeclared);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, sg);

    for (int i = 0; base_removed[i]; i++)
        set_nil(L, g0, base_removed[i]);

    /* The metatable of run environments, the per-depth run slots and the stop values. */
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, sg);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    vm->ref_env_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 2 * TRL_HOOKS_MAX_DEPTH + 2, 0);
    vm->ref_runs = luaL_ref(L, LUA_REGISTRYINDEX);
    static const char *const stops[HK_STOP_COUNT] = {
        "stopped", "instruction budget exceeded", "memory limit exceeded", "time limit exceeded"};
    for (int i = 0; i < HK_STOP_COUNT; i++) {
        lua_pushstring(L, stops[i]);
        vm->ref_stop[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, 0);
    return 0;
}

void hk_sandbox_add(lua_State *L, const char *name)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    int lib = lua_gettop(L);
    /* Table values one level down become proxies too (trellis.json). */
    lua_pushnil(L);
    while (lua_next(L, lib)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            push_proxy(L, -1);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, lib);
        }
        lua_pop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env_mt);
    lua_getfield(L, -1, "__index");
    push_proxy(L, lib);
    lua_setfield(L, -2, name);
    lua_settop(L, lib - 1);
}

/* ---------------------------------------------------------------------------------------------
 * Self-test
 */
static const char *const never[] = {"io",       "os",      "package",        "debug",      "load",
                                    "loadfile", "dofile",  "collectgarbage", "rawget",     "rawset",
                                    "print",    "warn",    "require",        "loadstring", "module",
                                    "newproxy", "setfenv", "getfenv",        NULL};

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, n, __VA_ARGS__);                                                             \
        lua_settop(L, top);                                                                        \
        return -1;                                                                                 \
    } while (0)

/* True when the table at idx holds a table value (a real table a proxy would hand out). */
static void push_real(lua_State *L, int idx);

/* True when the table at idx holds a table value that is not a locked proxy of a table holding
 * no tables (a real table a proxy would hand out). */
static int holds_table(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            push_real(L, -1);
            int bad = !lua_istable(L, -1);
            if (!bad) {
                /* One level only: the proxied table must hold no table at all. */
                int r = lua_gettop(L);
                lua_pushnil(L);
                while (!bad && lua_next(L, r)) {
                    bad = lua_type(L, -1) == LUA_TTABLE;
                    lua_pop(L, 1);
                }
                if (bad) lua_pop(L, 1);
            }
            lua_pop(L, 1);
            if (bad) {
                lua_pop(L, 2);
                return 1;
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Pushes the real table behind proxy at idx (nil when it is not a locked proxy). */
static void push_real(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) {
        lua_pushnil(L);
        return;
    }
    int ok = lua_getfield(L, -1, "__metatable") == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    ok = ok && lua_getfield(L, -1, "__newindex") == LUA_TFUNCTION;
    lua_pop(L, 1);
    if (!ok) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

int hk_sandbox_check(lua_State *L, char *why, size_t n)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    const char *const gone[] = {"io", "os", "package", "debug", NULL};
    for (int i = 0; gone[i]; i++)
        if (lua_getfield(L, loaded, gone[i]) != LUA_TNIL)
            FAIL("'%s' is in the registry's loaded table", gone[i]);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE) != LUA_TNIL)
        FAIL("the registry has a preload table");
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int g0 = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env_mt);
    lua_getfield(L, -1, "__index");
    int sg = lua_gettop(L);
    if (lua_type(L, sg) != LUA_TTABLE) FAIL("the environment metatable has no globals");
    for (int i = 0; never[i]; i++) {
        if (lua_getfield(L, g0, never[i]) != LUA_TNIL)
            FAIL("'%s' is in the real globals", never[i]);
        lua_pushstring(L, never[i]);
        int ours = strcmp(never[i], "os") == 0 || strcmp(never[i], "require") == 0;
        if (lua_rawget(L, sg) != LUA_TNIL && !ours)
            FAIL("'%s' is in the sandbox globals", never[i]);
        lua_pop(L, 2);
    }
    lua_getfield(L, sg, "require");
    if (lua_tocfunction(L, -1) != lb_require) FAIL("require is not the app-only require");
    lua_pop(L, 1);
    /* Every sandbox global is a function, a string or a locked proxy of a table of non-tables
     * (or of proxies of such tables: trellis.json). */
    lua_pushnil(L);
    while (lua_next(L, sg)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int t = lua_type(L, -1);
        if (t == LUA_TTABLE) {
            push_real(L, -1);
            if (!lua_istable(L, -1)) FAIL("global '%s' is a table but not a read-only proxy", k);
            if (holds_table(L, -1)) FAIL("library '%s' hands out a table", k);
            lua_pop(L, 1);
        } else if (t != LUA_TFUNCTION && t != LUA_TSTRING) {
            FAIL("global '%s' is a %s", k, lua_typename(L, t));
        }
        lua_pop(L, 1);
    }
    /* os is ours: time, date and clock, nothing else. */
    lua_getfield(L, sg, "os");
    push_real(L, -1);
    int os = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, os)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "time") && strcmp(k, "date") && strcmp(k, "clock"))
            FAIL("os.%s is present", k);
        lua_pop(L, 1);
    }
    /* string.dump is gone, and the string metatable is locked onto the sanitised table. */
    lua_getfield(L, loaded, LUA_STRLIBNAME);
    int str = lua_gettop(L);
    if (lua_getfield(L, str, "dump") != LUA_TNIL) FAIL("string.dump is present");
    lua_getfield(L, sg, LUA_STRLIBNAME);
    push_real(L, -1);
    if (!lua_rawequal(L, -1, str)) FAIL("the string global is not the sanitised string table");
    lua_pushliteral(L, "");
    if (!lua_getmetatable(L, -1)) FAIL("strings have no metatable");
    if (lua_getfield(L, -1, "__metatable") != LUA_TBOOLEAN || lua_toboolean(L, -1))
        FAIL("the string metatable is not locked");
    lua_getfield(L, -2, "__index");
    if (!lua_rawequal(L, -1, str)) FAIL("the string metatable does not index the sanitised table");
    lua_getfield(L, loaded, LUA_MATHLIBNAME);
    if (lua_getfield(L, -1, "randomseed") != LUA_TNIL) FAIL("math.randomseed is present");
    lua_settop(L, top);
    return 0;
}
