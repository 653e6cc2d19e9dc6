/*
 * test_hooks.c — the Lua sandbox of runtime/hooks/: escape attempts (each asserting the exact
 * error), the three limits and the C functions that could dodge them (each stopped in well under
 * a second, with the VM usable afterwards), isolation between runs and between apps, error
 * shapes (file:line, kinds, caps on messages), the call API, and a per-call overhead figure.
 *
 * A "snippet" is a module whose function f has the given body, on line 1 of the file:
 *     return {f = function(...) <body>
 *     end}
 * so the body's line numbers are the file's.
 */
#include "hooks/hooks.h"
#include "hooks_fixture.h"

#include <check.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2026-03-01T12:34:56Z */
#define FIXED_MS 1772368496000LL

static int64_t fixed_now(const struct trl_clock *c)
{
    return FIXED_MS + c->offset_ms;
}

static struct trl_clock clk = {fixed_now, 0};
/* What a call returned: the first result as text, and how many results there were. */
struct result {
    int nres;
    int type;
    char text[1024];
    size_t len;
};

static int read_first(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)d;
    struct result *r = ud;
    r->nres = nres;
    r->type = nres ? lua_type(L, -nres) : LUA_TNONE;
    r->text[0] = 0;
    r->len = 0;
    if (nres && (r->type == LUA_TSTRING || r->type == LUA_TNUMBER)) {
        lua_pushvalue(L, -nres);
        const char *s = lua_tolstring(L, -1, &r->len);
        snprintf(r->text, sizeof(r->text), "%s", s);
        lua_pop(L, 1);
    } else if (nres && r->type == LUA_TBOOLEAN) {
        snprintf(r->text, sizeof(r->text), "%s", lua_toboolean(L, -nres) ? "true" : "false");
    } else if (nres) {
        snprintf(r->text, sizeof(r->text), "%s", lua_typename(L, r->type));
    }
    return 0;
}

static int call_module(const char *app, const char *module, const char *text, const char *fn,
                       const struct trl_hooks_limits *lim, struct result *res, struct trl_diag *d)
{
    struct trl_hooks_src src = {app, module, version_of(text), text, strlen(text)};
    memset(res, 0, sizeof(*res));
    trl_diag_reset(d);
    return trl_hooks_call(vm, &src, fn, NULL, read_first, res, lim, d);
}

static char snippet_buf[1 << 16];

static const char *snippet(const char *body)
{
    snprintf(snippet_buf, sizeof(snippet_buf), "return {f = function(...) %s\nend}", body);
    return snippet_buf;
}

/* Runs body as function f of module app/hooks/m.lua. */
static int run_lim(const char *body, const struct trl_hooks_limits *lim, struct result *res,
                   struct trl_diag *d)
{
    return call_module("app", "m", snippet(body), "f", lim, res, d);
}

static int run(const char *body, struct result *res, struct trl_diag *d)
{
    return run_lim(body, NULL, res, d);
}

/* The default limits with a deadline that does not come first in a sanitizer build on a loaded
 * machine: bodies expected to succeed, or to stop on another limit, are judged by that. */
static const struct trl_hooks_limits slow = {0, 0, 900};

/* body must succeed and return the text want. */
static void expect_value(const char *body, const char *want)
{
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = run_lim(body, &slow, &r, &d);
    ck_assert_msg(rc == 0, "%s: failed: %s", body, d.message);
    ck_assert_msg(strcmp(r.text, want) == 0, "%s: got '%s', want '%s'", body, r.text, want);
    trl_diag_reset(&d);
}

/* body must fail with code, rule and a message containing frag. */
static void expect_error_lim(const char *body, const struct trl_hooks_limits *lim, int code,
                             const char *rule, const char *frag)
{
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    double t0 = now_s();
    int rc = run_lim(body, lim, &r, &d);
    double dt = now_s() - t0;
    ck_assert_msg(rc == code, "%s: rc %d (%s), want %d", body, rc, d.message, code);
    ck_assert_msg(strcmp(d.rule, rule) == 0, "%s: rule '%s' (%s), want '%s'", body, d.rule,
                  d.message, rule);
    ck_assert_msg(strstr(d.message, frag), "%s: message '%s' lacks '%s'", body, d.message, frag);
    ck_assert_msg(dt < 1.0, "%s: took %.3f s", body, dt);
    trl_diag_reset(&d);
    /* The VM is usable at once. */
    expect_value("return 6 * 7", "42");
}

static void expect_error(const char *body, int code, const char *rule, const char *frag)
{
    expect_error_lim(body, &slow, code, rule, frag);
}

static const struct trl_hooks_limits roomy = {1000000000, 0, 900};

/* body must be stopped by the instruction budget. */
static void expect_budget(const char *body)
{
    expect_error_lim(body, &slow, TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
}

static void expect_runtime(const char *body, const char *frag)
{
    expect_error(body, TRL_EINTERNAL, "runtime", frag);
}

/* ---------------------------------------------------------------------------------------------
 * Escapes
 */
START_TEST(dangerous_globals_are_absent)
{
    static const char *const names[] = {
        "io",      "package", "debug", "load", "loadfile",   "dofile", "collectgarbage",
        "rawset",  "rawget",  "print", "warn", "loadstring", "module", "newproxy",
        "setfenv", "getfenv", NULL};
    for (int i = 0; names[i]; i++) {
        char body[128], frag[128];
        snprintf(body, sizeof(body), "return %s", names[i]);
        snprintf(frag, sizeof(frag), "app/hooks/m.lua:1: undeclared global '%s'", names[i]);
        expect_runtime(body, frag);
    }
    expect_runtime("return package.loadlib", "undeclared global 'package'");
    expect_runtime("return io.open('/etc/passwd')", "undeclared global 'io'");
    expect_runtime("return debug.getregistry()", "undeclared global 'debug'");
    expect_runtime("return dofile('/etc/passwd')", "undeclared global 'dofile'");
    expect_runtime("return loadfile('/etc/passwd')", "undeclared global 'loadfile'");
    expect_runtime("return load('return 1')", "undeclared global 'load'");
    expect_runtime("rawset(string, 'x', 1)", "undeclared global 'rawset'");
    expect_runtime("return rawget(_G, 'x')", "undeclared global 'rawget'");
    expect_runtime("collectgarbage()", "undeclared global 'collectgarbage'");
    expect_value("return type(rawequal) .. type(rawlen) .. tostring(rawlen({1, 2}))",
                 "functionfunction2");
}
END_TEST

START_TEST(os_has_only_time_date_clock)
{
    expect_runtime("return os.execute('id')", "attempt to call a nil value (field 'execute')");
    expect_runtime("return os.getenv('HOME')", "attempt to call a nil value (field 'getenv')");
    expect_runtime("os.exit(1)", "attempt to call a nil value (field 'exit')");
    expect_runtime("os.remove('/tmp/x')", "attempt to call a nil value (field 'remove')");
    expect_value("local n = {} for k in pairs(os) do n[#n + 1] = k end table.sort(n) "
                 "return table.concat(n, ',')",
                 "clock,date,time");
}
END_TEST

START_TEST(require_reaches_only_the_apps_modules)
{
    expect_runtime("return require('io')", "require: module 'io' not found in app/hooks/");
    expect_runtime("return require('os')", "require: module 'os' not found in app/hooks/");
    expect_runtime("return require('../../etc/passwd')", "require: invalid module name");
    expect_runtime("return require('string')", "not found");
}
END_TEST

/* Bytecode of a module made by a plain Lua state. */
struct chunk {
    char *p;
    size_t n;
};

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    struct chunk *c = ud;
    c->p = realloc(c->p, c->n + n);
    memcpy(c->p + c->n, p, n);
    c->n += n;
    return 0;
}

static char *bytecode(size_t *n)
{
    lua_State *L = luaL_newstate();
    ck_assert_int_eq(luaL_loadstring(L, "return {f = function() return 1 end}"), 0);
    struct chunk c = {NULL, 0};
    ck_assert_int_eq(lua_dump(L, dump_writer, &c, 0), 0);
    lua_close(L);
    ck_assert_uint_gt(c.n, 4);
    ck_assert(memcmp(c.p, "\x1bLua", 4) == 0);
    *n = c.n;
    return c.p;
}

static struct trl_hooks_src resolver_mods[8];
static size_t resolver_n;

static int test_resolver(void *ud, const char *app, const char *module, struct trl_hooks_src *out,
                         struct trl_diag *d)
{
    (void)ud;
    (void)d;
    for (size_t i = 0; i < resolver_n; i++)
        if (strcmp(resolver_mods[i].app, app) == 0 &&
            strcmp(resolver_mods[i].module, module) == 0) {
            *out = resolver_mods[i];
            return 0;
        }
    return TRL_ENOTFOUND;
}

START_TEST(bytecode_is_refused_by_every_loader)
{
    size_t n;
    char *bc = bytecode(&n);
    struct trl_hooks_src src = {"app", "bin", "1", bc, n};
    struct trl_diag d;
    trl_diag_init(&d);
    /* the module loader */
    int rc = trl_hooks_call(vm, &src, "f", NULL, NULL, NULL, NULL, &d);
    ck_assert_msg(rc == TRL_EVALIDATION, "%d %s", rc, d.message);
    ck_assert_str_eq(d.rule, "syntax");
    ck_assert_ptr_nonnull(strstr(d.message, "attempt to load a binary chunk (mode is 't')"));
    ck_assert_int_eq(trl_hooks_compile(vm, &src, &d), TRL_EVALIDATION);
    /* require */
    resolver_mods[0] = (struct trl_hooks_src){"app", "binlib", "1", bc, n};
    resolver_n = 1;
    trl_hooks_vm_set_resolver(vm, test_resolver, NULL);
    expect_runtime("return require('binlib')", "attempt to load a binary chunk (mode is 't')");
    /* load, string.dump */
    expect_runtime("return load(string.dump(function() end))", "undeclared global 'load'");
    expect_runtime("return string.dump(function() end)",
                   "attempt to call a nil value (field 'dump')");
    expect_runtime("return ('').dump(function() end)",
                   "attempt to call a nil value (field 'dump')");
    trl_diag_reset(&d);
    free(bc);
    resolver_n = 0;
}
END_TEST

START_TEST(string_metatable_is_locked)
{
    expect_value("return tostring(getmetatable(''))", "false");
    expect_runtime("getmetatable('').__index = {}", "attempt to index a boolean value");
    expect_runtime("setmetatable('', {})",
                   "bad argument #1 to 'setmetatable' (table expected, got string)");
    expect_runtime("string.upper = function() return 'pwned' end",
                   "attempt to modify a read-only table (field 'upper')");
    expect_value("return ('abc'):upper() .. ('x'):rep(3)", "ABCxxx");
}
END_TEST

START_TEST(library_tables_are_read_only)
{
    expect_runtime("string.x = 1", "attempt to modify a read-only table (field 'x')");
    expect_runtime("math.pi = 3", "attempt to modify a read-only table (field 'pi')");
    expect_runtime("table.insert(math, 1)", "attempt to modify a read-only table");
    expect_runtime("table.move({1}, 1, 1, 1, coroutine)", "attempt to modify a read-only table");
    expect_runtime("os.time = nil", "attempt to modify a read-only table (field 'time')");
    expect_runtime("setmetatable(string, nil)", "cannot change a protected metatable");
    expect_value("return tostring(getmetatable(table))", "false");
    expect_value("local n = 0 for k, v in pairs(string) do n = n + 1 end return n > 10", "true");
    expect_value("return tostring(next(string))", "nil");
}
END_TEST

START_TEST(globals_and_env_are_protected)
{
    expect_runtime("setmetatable(_G, {})", "cannot change a protected metatable");
    expect_runtime("setmetatable(_ENV, nil)", "cannot change a protected metatable");
    expect_value("return tostring(getmetatable(_G)) .. tostring(_G == _ENV)", "falsetrue");
    expect_runtime("return undefined_name", "undeclared global 'undefined_name'");
    expect_value("x = 5 return x", "5");
    expect_value("_G.string = nil return type(string)", "table");
    expect_value("local _ENV = {y = 3} return y", "3");
    expect_runtime("_ENV = nil return tostring(1)",
                   "attempt to index a nil value (upvalue '_ENV')");
    expect_value("return type(math.randomseed)", "nil");
}
END_TEST

START_TEST(gc_metamethods_are_refused)
{
    expect_runtime("setmetatable({}, {__gc = function() end})",
                   "setmetatable: __gc metamethods are not allowed in hooks");
    expect_runtime("setmetatable({}, {__gc = false})", "__gc metamethods are not allowed");
    /* Weak tables are allowed. */
    expect_value("local t = setmetatable({}, {__mode = 'k'}) t[{}] = 1 return 'ok'", "ok");
}
END_TEST

START_TEST(error_values_cannot_hang_or_explode)
{
    /* A __tostring that loops: stopped, reported as the original runtime error. */
    expect_runtime("error(setmetatable({}, {__tostring = function() while true do end end}))",
                   "app/hooks/m.lua:1: (error object is a table value)");
    /* A __tostring that works is used. */
    expect_runtime("error(setmetatable({}, {__tostring = function() return 'custom' end}))",
                   "custom");
    expect_runtime("error(setmetatable({}, {__tostring = function() return {} end}))",
                   "(error object is a table value)");
    /* A huge message is cut; binary bytes are cleaned. */
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(run("error(string.rep('x', 1000000))", &r, &d), TRL_EINTERNAL);
    ck_assert_uint_lt(strlen(d.message), 500);
    ck_assert_ptr_nonnull(strstr(d.message, "app/hooks/m.lua:1: xxx"));
    ck_assert_ptr_nonnull(strstr(d.message, "xxx ... xxx"));
    ck_assert_int_eq(run("error('a\\0b\\255\\n\\1c', 0)", &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.message, "app/hooks/m.lua:1: a b?  c");
    ck_assert(trl_utf8_valid(d.message, strlen(d.message)));
    ck_assert_int_eq(run("error('\\xe4\\xb8\\xad\\xe6', 0)", &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.message, "app/hooks/m.lua:1: \xe4\xb8\xad?");
    ck_assert_int_eq(run("error(42)", &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.message, "app/hooks/m.lua:1: 42");
    trl_diag_reset(&d);
}
END_TEST

START_TEST(yields_across_the_host_boundary_are_refused)
{
    expect_runtime("coroutine.yield(1)", "attempt to yield across the host boundary");
    expect_runtime("local co = coroutine.wrap(function() table.sort({3, 2, 1}, function(a, b) "
                   "coroutine.yield() return a < b end) end) co()",
                   "attempt to yield across the host boundary");
    expect_value("local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) "
                 "return b * 2 end) return co(1) + co(10)",
                 "22");
    expect_value("local co = coroutine.wrap(function() return select(2, pcall(function() "
                 "coroutine.yield(5) return 7 end)) end) return co() + co()",
                 "12");
}
END_TEST

START_TEST(xpcall_runs_its_handler_after_unwinding)
{
    expect_value("return select(2, xpcall(function() error('x', 0) end, function(m) return 'h:' "
                 ".. m end))",
                 "h:x");
    expect_value("return select('#', xpcall(function(a, b) return a, b end, error, 1, 2))", "3");
    expect_value("local ok, e = xpcall(error, function() error('again', 0) end, 'first') return "
                 "tostring(ok) .. e",
                 "falseagain");
}
END_TEST

START_TEST(coroutine_close_nesting_cannot_crash)
{
    /* Lua 5.4.4 overflows the C stack closing nested coroutines (fixed in 5.4.5). */
    struct trl_hooks_limits lim = {200000000, 1u << 30, 20000};
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = run_lim("local coro = false "
                     "for i = 1, 50000 do "
                     "  local previous = coro "
                     "  coro = coroutine.create(function() "
                     "    local cc <close> = setmetatable({}, {__close = function() "
                     "      if previous then assert(coroutine.close(previous)) end end}) "
                     "    coroutine.yield() end) "
                     "  assert(coroutine.resume(coro)) "
                     "end "
                     "local m = tostring(select(2, coroutine.close(coro))) "
                     "return m:find('coroutine.close nested more than 100 deep', 1, true) "
                     "and 'capped' or m",
                     &lim, &r, &d);
    ck_assert_msg(rc == 0, "%s", d.message);
    ck_assert_str_eq(r.text, "capped");
    trl_diag_reset(&d);
    expect_value("return 1", "1");
}
END_TEST

START_TEST(os_time_and_date_are_utc_and_allow_listed)
{
    expect_value("return os.time()", "1772368496");
    expect_value("return os.date('!%Y-%m-%dT%H:%M:%SZ')", "2026-03-01T12:34:56Z");
    expect_value("return os.date()", "2026-03-01T12:34:56Z");
    expect_value("return os.date('!%Y-%m-%d', 0)", "1970-01-01");
    expect_value("return os.date('!%Y-%m-%d %H:%M:%S', -1)", "1969-12-31 23:59:59");
    expect_value("return os.date('!%H:%M:%S', 3661)", "01:01:01");
    expect_value("local t = os.date('*t') return t.year .. '/' .. t.month .. '/' .. t.day .. ' ' "
                 ".. t.hour .. ' w' .. t.wday .. ' y' .. t.yday .. ' ' .. tostring(t.isdst)",
                 "2026/3/1 12 w1 y60 false");
    expect_value("return os.time({year = 2026, month = 3, day = 1, hour = 12, min = 34, sec = 56})",
                 "1772368496");
    expect_value("return os.time({year = 2026, month = 13, day = 1, hour = 0}) == "
                 "os.time({year = 2027, month = 1, day = 1, hour = 0})",
                 "true");
    expect_value("return os.time({year = 1970, month = 1, day = 1})", "43200");
    expect_value("local c = os.clock() return c >= 0 and c < 1", "true");
    expect_runtime("return os.date('%c')", "os.date: format '%c' is not allowed");
    expect_runtime("return os.date('%Y-%m-%d')", "is not allowed");
    expect_runtime("return os.time({year = 2026})", "os.time: field 'month' missing in date table");
    expect_runtime("return os.time({year = 2026, month = 'x', day = 1})",
                   "field 'month' is not an integer");
    expect_runtime("return os.time({year = 10000, month = 1, day = 1})", "year out of range");
    expect_runtime("return os.date('!%Y-%m-%d', 2^60)", "os.date: time out of range");
    expect_runtime("return os.date('!%Y-%m-%d', 'x')", "bad argument #2 to 'date'");
}
END_TEST

START_TEST(selftest_passes)
{
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_hooks_vm_selftest(vm, &d), 0);
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Limits
 */
START_TEST(runaway_loops_stop)
{
    expect_error("while true do end", TRL_ETIMEOUT, "instructions",
                 "app/hooks/m.lua:1: instruction budget exceeded (1000000 instructions)");
    expect_budget("while true do pcall(function() while true do end end) end");
    expect_budget("for i = 1, 1e9 do pcall(error, 'x') end");
    expect_budget("while true do xpcall(function() while true do end end, function() while true "
                  "do end end) end");
    expect_budget("coroutine.wrap(function() while true do end end)()");
    expect_budget("while true do coroutine.resume(coroutine.create(function() while true do end "
                  "end)) end");
    expect_budget("local cos = {} for i = 1, 1e6 do local co = coroutine.create(function() for j = "
                  "1, 990 do end coroutine.yield() end) coroutine.resume(co) cos[#cos % 100 + 1] = "
                  "co end");
    expect_budget("do local x <close> = setmetatable({}, {__close = function() while true do end "
                  "end}) while true do end end");
    expect_budget("local t = setmetatable({}, {__index = function(t, k) while true do end end}) "
                  "return pcall(string.format, '%s', t.x)");
    expect_budget("while true do string.gsub('aaa', 'a', function() pcall(function() while true do "
                  "end end) end) end");
}
END_TEST

START_TEST(deadline_stops_a_call)
{
    struct trl_hooks_limits lim = {UINT64_MAX / 2, 0, 30};
    double t0 = now_s();
    expect_error_lim("while true do end", &lim, TRL_ETIMEOUT, "deadline",
                     "app/hooks/m.lua:1: time limit exceeded (30 ms)");
    ck_assert_double_ge(now_s() - t0, 0.029);
    /* Long VM instructions between hook calls: comparing 7 MB strings. */
    struct trl_hooks_limits big = {UINT64_MAX / 2, 64u << 20, 50};
    expect_error_lim("local a = string.rep('x', 7e6) local b = string.rep('x', 7e6) while true do "
                     "local _ = a < b end",
                     &big, TRL_ETIMEOUT, "deadline", "time limit exceeded (50 ms)");
    expect_error_lim("local a = string.rep('x', 7e6) while true do local b = a .. 'y' end", &big,
                     TRL_ETIMEOUT, "deadline", "time limit exceeded (50 ms)");
}
END_TEST

START_TEST(deep_recursion_stops)
{
    expect_error_lim("local function f() return 1 + f() end return f()", &slow, TRL_ENOMEM,
                     "memory", "memory limit exceeded (16777216 bytes)");
    struct trl_hooks_limits lim = {1000000000, 256u << 20, 900};
    expect_error_lim("local function f() return 1 + f() end return f()", &lim, TRL_EINTERNAL,
                     "runtime", "stack overflow");
    expect_runtime("local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) "
                   "return t[k] end return t.x",
                   "stack overflow");
    expect_value("local function f() return pcall(f) end return tostring(f())", "true");
    expect_value("local function f() return select(2, xpcall(f, f)) end return type(f())",
                 "string");
    expect_runtime("local function f() return string.gsub('a', 'a', f) end return f()",
                   "stack overflow");
    expect_runtime("local function f() return coroutine.wrap(f)() end return f()",
                   "stack overflow");
    /* Lua 5.4.4's "Lua-stack overflow when C stack overflows while handling an error". */
    struct trl_hooks_limits small = {100000, 0, 900};
    expect_error_lim("local function loop() assert(xpcall(loop, loop)) end loop()", &small,
                     TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
    expect_value("local function loop() assert(pcall(loop)) end "
                 "local ok = xpcall(loop, loop) return tostring(ok)",
                 "false");
    expect_error_lim("local function loop() local x <close> = setmetatable({}, {__close = loop}) "
                     "error('x') end loop()",
                     &slow, TRL_ENOMEM, "memory", "memory limit exceeded");
    expect_runtime("local function f() return string.gsub('a', 'a', f) end "
                   "return coroutine.wrap(f)()",
                   "stack overflow");
}
END_TEST

START_TEST(memory_growth_stops)
{
    expect_error_lim("local t = {} for i = 1, 1e9 do t[i] = i end", &roomy, TRL_ENOMEM, "memory",
                     "memory limit exceeded (16777216 bytes)");
    expect_error_lim("local t = {} for i = 1, 1e9 do t[i .. ''] = {} end", &roomy, TRL_ENOMEM,
                     "memory", "memory limit exceeded");
    expect_error_lim("local s = 'x' while true do s = s .. s end", &roomy, TRL_ENOMEM, "memory",
                     "memory limit exceeded");
    expect_error_lim(
        "while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) "
        "end",
        &roomy, TRL_ENOMEM, "memory", "memory limit exceeded");
    expect_error_lim("local s = {} for i = 1, 1e9 do s[i] = ('x'):rep(1000) .. i end", &roomy,
                     TRL_ENOMEM, "memory", "memory limit exceeded");
    struct trl_hooks_limits small = {0, 100000, 900};
    expect_error_lim("local t = {} for i = 1, 1e5 do t[i] = i end", &small, TRL_ENOMEM, "memory",
                     "memory limit exceeded (100000 bytes)");
    /* Garbage does not count: a loop that drops what it makes runs to its end. */
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(
        run_lim("for i = 1, 20000 do local t = {('x'):rep(1000)} end return 'done'", &slow, &r, &d),
        0);
    ck_assert_str_eq(r.text, "done");
    trl_diag_reset(&d);
}
END_TEST

START_TEST(long_c_functions_are_capped)
{
    expect_error("return string.rep('x', 2^30)", TRL_ENOMEM, "memory", "memory limit exceeded");
    expect_error("return ('x'):rep(2^62, ',')", TRL_ENOMEM, "memory", "memory limit exceeded");
    expect_value("return #string.rep('', 2^30)", "0");
    expect_value("return #string.rep('', 2^30, '')", "0");
    expect_value("return string.rep('ab', 3, ',')", "ab,ab,ab");
    expect_value("return #string.rep('abc', 1000000)", "3000000");
    expect_value("return string.rep('x', 0) .. string.rep('x', -1) .. string.rep('x', 1, ',')",
                 "x");
    expect_budget("table.move({}, 1, 2^27, 2)");
    expect_budget("table.move({}, math.mininteger, math.maxinteger, 1)");
    expect_value("return table.concat(table.move({1, 2, 3}, 1, 3, 2), ',')", "1,1,2,3");
    expect_budget("local t = setmetatable({}, {__len = function() return 2^40 end}) "
                  "table.remove(t, 1)");
    expect_budget("local t = setmetatable({}, {__len = function() return 2^40 end}) "
                  "table.insert(t, 1, 'x')");
    expect_budget("return table.concat(setmetatable({}, {__index = function() return '' end}), "
                  "'', 1, 2^40)");
    expect_budget("return table.concat(setmetatable({}, {__len = function() return 2^40 end, "
                  "__index = rawlen}))");
    expect_budget("return table.unpack({}, 1, 1e7)");
    expect_runtime("table.insert({}, 5, 'x')",
                   "bad argument #2 to 'table.insert' (position out of bounds)");
    expect_runtime("return tonumber('z', 99)", "bad argument #2 to 'tonumber' (base out of range)");
    expect_value("local t = setmetatable({}, {__len = function() return math.maxinteger end}) "
                 "table.insert(t, 1, 'x') return t[1]",
                 "x");
    expect_budget("table.sort(setmetatable({}, {__len = function() return 2^30 end, __index = "
                  "rawlen}))");
    expect_value("local t = {5, 3, 9, 1} table.sort(t) table.insert(t, 1, 0) table.remove(t) "
                 "return table.concat(t, ',') .. select('#', table.unpack(t))",
                 "0,1,3,54");
    expect_budget("local s = ('\\u{4e2d}'):rep(2e6) while true do utf8.len(s) end");
    expect_budget("local s = (' '):rep(8e6) .. '1' while true do tonumber(s) end");
    expect_budget("local f = ('x'):rep(4e6) while true do pcall(string.unpack, f, '') end");
    expect_value("return utf8.len('\\u{4e2d}\\u{6587}') .. tonumber('  12  ') .. "
                 "string.unpack('i2', string.pack('i2', 7))",
                 "2127");
}
END_TEST

START_TEST(patterns_are_metered)
{
    expect_budget("return string.find(string.rep('a', 400), '.-.-.-.-b')");
    expect_budget("return string.find(string.rep('a', 400), '.-.-.-b')");
    expect_budget("return string.match(string.rep('a', 5000), '(.-)%1b')");
    expect_budget("return string.gsub(string.rep('a', 200000), '.-b', '')");
    expect_budget("for w in string.gmatch(string.rep('a', 200000), 'a*b') do end");
    expect_budget("return string.find(string.rep('(', 100000), '%b()')");
    expect_runtime("return string.find(string.rep('a', 300000), 'b')",
                   "string.find: subject too long (300000 bytes, at most 262144)");
    expect_runtime("return string.gsub(string.rep('a', 300000), 'b', '')",
                   "string.gsub: subject too long");
    expect_runtime("return string.gmatch(string.rep('a', 300000), 'b')",
                   "string.gmatch: subject too long");
    expect_value("return tostring(string.find(string.rep('a', 262144), 'ab', 1, true))", "nil");
    expect_value("return tostring(string.find(string.rep('a', 262143) .. 'b', 'ab'))", "262143");
    expect_runtime("return string.find('a', "
                   "'(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))')",
                   "too many captures");
    expect_runtime("return string.find('a', '%')", "malformed pattern (ends with '%')");
    expect_runtime("return string.find('a', '[a')", "malformed pattern (missing ']')");
    expect_runtime("return string.find('a', '%f')", "missing '[' after '%f' in pattern");
    expect_runtime("return string.find('a', '%b')", "missing arguments to '%b'");
    expect_runtime("return string.find('a', '(a')", "unfinished capture");
    expect_runtime("return string.match('a', 'a)')", "invalid pattern capture");
    expect_runtime("return string.find('a', '%1')", "invalid capture index %1");
    expect_runtime("return string.gsub('a', 'a', '%2')", "invalid capture index %2");
    expect_runtime("return string.gsub('a', 'a', '%x')", "invalid use of '%' in replacement");
    expect_runtime("return string.gsub('a', 'a', {a = {}})", "invalid replacement value (a table)");
    expect_runtime("return string.find(string.rep('a', 300) .. 'b', string.rep('a?', 300) .. "
                   "'b')",
                   "pattern too complex");
}
END_TEST

/* The matcher against what stock Lua 5.4 answers (manual §6.4.1; liblua5.4 has no lua binary
 * here, so the answers are written out). */
START_TEST(patterns_behave_as_in_lua)
{
    static const char *const cases[][2] = {
        {"return string.find('hello world', 'o w')", "5"},
        {"return select(2, string.find('hello world', 'o w'))", "7"},
        {"return string.find('hello', 'l+')", "3"},
        {"return string.match('key = value', '(%w+)%s*=%s*(%w+)')", "key"},
        {"return select(2, string.match('key = value', '(%w+)%s*=%s*(%w+)'))", "value"},
        {"return string.match('  trim me  ', '^%s*(.-)%s*$')", "trim me"},
        {"return string.match('2026-03-01', '^(%d%d%d%d)%-(%d%d)%-(%d%d)$')", "2026"},
        {"return string.match('hello', '()ll()')", "3"},
        {"return select(2, string.match('hello', '()ll()'))", "5"},
        {"return string.match('THE (quick) fox', '%((%a+)%)')", "quick"},
        {"return string.match('f(a(b)c)d', '%b()')", "(a(b)c)"},
        {"return string.gsub('THE (quick) fox', '%f[%a]%a+', 'X')", "X (X) X"},
        {"return string.gsub('hello world', '(%w+)', '<%1>')", "<hello> <world>"},
        {"return string.gsub('hello world', '%w+', '%0 %0', 1)", "hello hello world"},
        {"return string.gsub('abc', '', '-')", "-a-b-c-"},
        {"return string.gsub('hello', 'l', {l = 'L'})", "heLLo"},
        {"return string.gsub('$name is $age', '%$(%w+)', {name = 'Ann', age = 7})", "Ann is 7"},
        {"return string.gsub('abc', '%w', function(c) return c:upper() .. '.' end)", "A.B.C."},
        {"return string.gsub('abc', 'b', function() return false end)", "abc"},
        {"return select(2, string.gsub('a,b,,c', ',', ';'))", "3"},
        {"local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t + 1] = k .. v "
         "end return table.concat(t, ' ')",
         "a1 b2"},
        {"local n = 0 for w in string.gmatch('one two  three', '%a+') do n = n + 1 end return n",
         "3"},
        {"local t = {} for w in string.gmatch('abc', '') do t[#t + 1] = '.' end return #t", "4"},
        {"local t = {} for w in string.gmatch('hello world', '%a+', 7) do t[#t + 1] = w end "
         "return table.concat(t)",
         "world"},
        {"return string.find('a+b', '+', 1, true)", "2"},
        {"return string.find('a.b', '.', 2, true)", "2"},
        {"return string.find('abc', 'c', -1)", "3"},
        {"return tostring(string.find('abc', 'a', 10))", "nil"},
        {"return string.find('abc', '', 4)", "4"},
        {"return string.match('[x]', '[]x[]+')", "[x]"},
        {"return string.match('a-b', '[%-]')", "-"},
        {"return string.match('Zz9_', '[^%l]+')", "Z"},
        {"return string.match('xAAy', '(A+)%1B')", "nil"},
        {"return string.match('xAAy', '(A+)%1')", "A"},
        {"return string.match('xAAy', '(A)%1')", "A"},
        {"return string.match('hello', '^(h?)ello$')", "h"},
        {"return string.match('ello', '^(h?)ello$')", ""},
        {"return string.match('aaab', 'a-b')", "aaab"},
        {"return string.match('^a', '^^a')", "^a"},
        {"return string.match('a$b', 'a$b')", "a$b"},
        {"return string.match('\\0x\\0', '%z')", "nil"},
        {"return string.match('tab\\there', '%c')", "\t"},
        {"return string.gsub('x y', '%s', '%%')", "x%y"},
        {"return string.match('caf\\xc3\\xa9', '%a+')", "caf"},
        {NULL, NULL}};
    for (int i = 0; cases[i][0]; i++) {
        if (strcmp(cases[i][1], "nil") == 0) {
            char body[512];
            snprintf(body, sizeof(body), "return tostring((%s))", cases[i][0] + 7);
            expect_value(body, "nil");
        } else {
            expect_value(cases[i][0], cases[i][1]);
        }
    }
}
END_TEST

START_TEST(limits_are_per_call)
{
    struct trl_hooks_limits tight = {10000, 0, 0};
    expect_error_lim("for i = 1, 100000 do end", &tight, TRL_ETIMEOUT, "instructions",
                     "instruction budget exceeded (10000 instructions)");
    struct trl_hooks_limits loose = {100000000, 0, 1000};
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(
        run_lim("local n = 0 for i = 1, 2000000 do n = n + 1 end return n", &loose, &r, &d), 0);
    ck_assert_str_eq(r.text, "2000000");
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Isolation
 */
static const char *const evil =
    "return {f = function()\n"
    "  pcall(function() string.rep = nil end)\n"
    "  pcall(function() getmetatable('').__index = {rep = function() return 'pwned' end} end)\n"
    "  pcall(function() getmetatable('').__index.upper = nil end)\n"
    "  pcall(function() setmetatable(_G, {__index = function() return 'pwned' end}) end)\n"
    "  pcall(function() math.pi = 3 end)\n"
    "  pcall(function() table.insert = nil end)\n"
    "  pcall(function() coroutine.wrap = nil end)\n"
    "  tostring = function() return 'pwned' end\n"
    "  _G.pairs = nil\n"
    "  poison = 'pwned'\n"
    "  _G.string = {rep = function() return 'pwned' end}\n"
    "  return 'done'\n"
    "end}\n";

static const char *const good =
    "local calls = 0\n"
    "return {f = function()\n"
    "  calls = calls + 1\n"
    "  assert(calls == 1, 'module state survived a call')\n"
    "  assert(('ab'):rep(2) == 'abab' and string.rep('x', 3) == 'xxx')\n"
    "  assert(('abc'):upper() == 'ABC')\n"
    "  assert(tostring(12) == '12' and math.pi > 3.14)\n"
    "  assert(type(pairs) == 'function' and type(table.insert) == 'function')\n"
    "  assert(not pcall(function() return poison end))\n"
    "  assert(rawequal(getmetatable(''), false))\n"
    "  return 'clean'\n"
    "end}\n";

START_TEST(one_app_cannot_poison_another)
{
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(call_module("evil", "m", evil, "f", NULL, &r, &d), 0);
        ck_assert_str_eq(r.text, "done");
        int rc = call_module("good", "m", good, "f", NULL, &r, &d);
        ck_assert_msg(rc == 0, "run %d: %s", i, d.message);
        ck_assert_str_eq(r.text, "clean");
    }
    /* The same app's next run sees nothing of its last either. */
    expect_value("return tostring(rawequal(tostring, tostring)) .. type(string.rep)",
                 "truefunction");
    trl_diag_reset(&d);
}
END_TEST

START_TEST(module_state_is_fresh_per_call)
{
    const char *text = "local n = 0\nlocal t = {}\nreturn {f = function() n = n + 1 t[#t + 1] = "
                       "n assert(not pcall(function() return g end)) g = 1 return n + #t + g end}";
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(call_module("app", "state", text, "f", NULL, &r, &d), 0);
        ck_assert_str_eq(r.text, "3");
    }
    trl_diag_reset(&d);
}
END_TEST

START_TEST(require_loads_the_apps_own_modules)
{
    resolver_mods[0] = (struct trl_hooks_src){
        "app", "lib", "1",
        "shared[1] = shared[1] + 1\nlocal M = {}\nfunction M.twice(x) return 2 * x end\nreturn M",
        0};
    resolver_mods[0].len = strlen(resolver_mods[0].text);
    resolver_mods[1] = (struct trl_hooks_src){"app", "broken", "1", "local x = \n", 0};
    resolver_mods[1].len = strlen(resolver_mods[1].text);
    resolver_mods[2] = (struct trl_hooks_src){"app", "loop", "1", "return require('loop')", 0};
    resolver_mods[2].len = strlen(resolver_mods[2].text);
    resolver_mods[3] = (struct trl_hooks_src){"other", "secret", "1", "return 'secret'", 0};
    resolver_mods[3].len = strlen(resolver_mods[3].text);
    resolver_n = 4;
    trl_hooks_vm_set_resolver(vm, test_resolver, NULL);
    expect_value("shared = {0} local a = require('lib') local b = require('lib') "
                 "return a.twice(21) .. tostring(a == b) .. shared[1]",
                 "42true1");
    expect_value("return pcall(function() return shared end) and 'leak' or 'fresh'", "fresh");
    expect_runtime("return require('broken')", "require: app/hooks/broken.lua:2:");
    expect_runtime("pcall(require, 'missing') return require('missing')",
                   "require: module 'missing' not found in app/hooks/");
    expect_runtime("return require('loop')", "require: module 'loop' requires itself (a cycle)");
    expect_runtime("return require('secret')", "require: module 'secret' not found in app/hooks/");
    trl_hooks_vm_set_resolver(vm, NULL, NULL);
    resolver_n = 0;
}
END_TEST

START_TEST(require_follows_a_changed_module)
{
    /* A VM that compiled `greeting` keeps it only while it is current: once the resolver gives
     * a new version, the next require (with no version of its own) compiles that one. Engines
     * lend VMs from a pool, so another VM may have seen the new snapshot first. */
    resolver_mods[0] = (struct trl_hooks_src){"app", "greeting", "1", "return {word = 'one'}", 0};
    resolver_mods[0].len = strlen(resolver_mods[0].text);
    resolver_n = 1;
    trl_hooks_vm_set_resolver(vm, test_resolver, NULL);
    struct trl_hooks_src main1 = {"app", "main", "1",
                                  "return {f = function() return require('greeting').word end}", 0};
    main1.len = strlen(main1.text);
    struct trl_diag d;
    trl_diag_init(&d);
    struct result r;
    ck_assert_int_eq(trl_hooks_call(vm, &main1, "f", NULL, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "one");
    resolver_mods[0] = (struct trl_hooks_src){"app", "greeting", "2", "return {word = 'two'}", 0};
    resolver_mods[0].len = strlen(resolver_mods[0].text);
    struct trl_hooks_src main2 = main1;
    main2.version = "2";
    ck_assert_int_eq(trl_hooks_call(vm, &main2, "f", NULL, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "two");
    /* Unchanged, it stays cached (the same text, nothing compiled again). */
    ck_assert_int_eq(trl_hooks_call(vm, &main2, "f", NULL, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "two");
    trl_diag_reset(&d);
    trl_hooks_vm_set_resolver(vm, NULL, NULL);
    resolver_n = 0;
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Errors and the call API
 */
START_TEST(syntax_errors_report_file_and_line)
{
    struct trl_hooks_src src = {"app", "syn", "1", "local x = 1\n\nlocal y = = 2\nreturn {}", 0};
    src.len = strlen(src.text);
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_hooks_compile(vm, &src, &d), TRL_EVALIDATION);
    ck_assert_str_eq(d.rule, "syntax");
    ck_assert_str_eq(d.path, "app/hooks/syn.lua:3");
    ck_assert_str_eq(d.message, "app/hooks/syn.lua:3: unexpected symbol near '='");
    ck_assert_ptr_nonnull(strstr(d.message_zh, "Lua 语法错误"));
    src.text = "return {f = function()\n  if x then\nend}";
    src.len = strlen(src.text);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "f", NULL, NULL, NULL, NULL, &d), TRL_EVALIDATION);
    ck_assert_str_eq(d.message, "app/hooks/syn.lua:3: unexpected symbol near '}'");
    /* A compiled version stays in force when a new one does not compile. */
    src.text = "return {f = function() return 'v1' end}";
    src.len = strlen(src.text);
    ck_assert_int_eq(trl_hooks_compile(vm, &src, &d), 0);
    struct trl_hooks_src bad = {"app", "syn", "2", "return {", 8};
    ck_assert_int_eq(trl_hooks_compile(vm, &bad, &d), TRL_EVALIDATION);
    struct result r;
    src.text = NULL;
    src.len = 0;
    ck_assert_int_eq(trl_hooks_call(vm, &src, "f", NULL, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "v1");
    /* What compiles alone compiles wrapped: varargs and a final return. */
    struct trl_hooks_src va = {"app", "va", "1",
                               "local name = ...\nreturn {f = function() "
                               "return name end}",
                               0};
    va.len = strlen(va.text);
    ck_assert_int_eq(trl_hooks_call(vm, &va, "f", NULL, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "va");
    struct trl_hooks_src esc = {"app", "esc", "1", "end return function() end --", 0};
    esc.len = strlen(esc.text);
    ck_assert_int_eq(trl_hooks_compile(vm, &esc, &d), TRL_EVALIDATION);
    trl_diag_reset(&d);
}
END_TEST

START_TEST(runtime_errors_report_file_and_line)
{
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    const char *text = "local M = {}\nfunction M.f()\n  local t = nil\n  return t.x\nend\n"
                       "function M.g()\n  error('boom')\nend\nfunction M.h()\n"
                       "  error({code = 1})\nend\nreturn M\n";
    ck_assert_int_eq(call_module("app", "rt", text, "f", NULL, &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.rule, "runtime");
    ck_assert_str_eq(d.path, "app/hooks/rt.lua:4");
    ck_assert_str_eq(d.message, "app/hooks/rt.lua:4: attempt to index a nil value (local 't')");
    ck_assert_int_eq(call_module("app", "rt", text, "g", NULL, &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.message, "app/hooks/rt.lua:7: boom");
    ck_assert_int_eq(call_module("app", "rt", text, "h", NULL, &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.message, "app/hooks/rt.lua:10: (error object is a table value)");
    ck_assert_str_eq(d.path, "app/hooks/rt.lua:10");
    ck_assert_int_eq(call_module("app", "rt", text, "nope", NULL, &r, &d), TRL_ENOTFOUND);
    ck_assert_str_eq(d.rule, "function");
    ck_assert_str_eq(d.message, "app/hooks/rt.lua has no function 'nope'");
    ck_assert_int_eq(call_module("app", "nil", "local x = 1", "f", NULL, &r, &d), TRL_EINTERNAL);
    ck_assert_str_eq(d.rule, "module");
    ck_assert_str_eq(d.message, "app/hooks/nil.lua returned nil, not a table of functions");
    trl_diag_reset(&d);
}
END_TEST

START_TEST(bad_references_are_refused)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_hooks_src src = {"App", "m", "1", "return {}", 9};
    ck_assert_int_eq(trl_hooks_compile(vm, &src, &d), TRL_EINVAL);
    src.app = "app";
    src.module = "../m";
    ck_assert_int_eq(trl_hooks_call(vm, &src, "f", NULL, NULL, NULL, NULL, &d), TRL_EINVAL);
    src.module = "m";
    src.version = "";
    ck_assert_int_eq(trl_hooks_compile(vm, &src, &d), TRL_EINVAL);
    src.version = "1";
    ck_assert_int_eq(trl_hooks_call(vm, &src, "", NULL, NULL, NULL, NULL, &d), TRL_EINVAL);
    char *big = malloc(TRL_HOOKS_MAX_SOURCE + 2);
    memset(big, ' ', TRL_HOOKS_MAX_SOURCE + 1);
    big[TRL_HOOKS_MAX_SOURCE + 1] = 0;
    struct trl_hooks_src huge = {"app", "huge", "1", big, TRL_HOOKS_MAX_SOURCE + 1};
    ck_assert_int_eq(trl_hooks_compile(vm, &huge, &d), TRL_ETOOBIG);
    ck_assert_str_eq(d.rule, "source");
    free(big);
    struct trl_hooks_src missing = {"app", "missing", NULL, NULL, 0};
    ck_assert_int_eq(trl_hooks_call(vm, &missing, "f", NULL, NULL, NULL, NULL, &d), TRL_ENOTFOUND);
    trl_diag_reset(&d);
}
END_TEST

static int push_two(lua_State *L, void *ud)
{
    (void)ud;
    lua_pushinteger(L, 40);
    lua_pushstring(L, "2");
    return 2;
}

static int push_fail(lua_State *L, void *ud)
{
    (void)L;
    (void)ud;
    return TRL_ECONFLICT;
}

static int read_fail(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)L;
    (void)nres;
    (void)ud;
    return trl_diag_set(d, TRL_EVALIDATION, "bad result");
}

START_TEST(calls_pass_arguments_and_results)
{
    struct trl_hooks_src src = {"app", "args", "1",
                                "return {add = function(a, b) return a + b, 'second' end}", 0};
    src.len = strlen(src.text);
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "add", push_two, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "42");
    ck_assert_int_eq(r.nres, 2);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "add", push_fail, read_first, &r, NULL, &d),
                     TRL_ECONFLICT);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "add", push_two, read_fail, &r, NULL, &d),
                     TRL_EVALIDATION);
    ck_assert_str_eq(d.message, "bad result");
    /* A new version recompiles; the same version does not. */
    struct trl_hooks_stats st;
    trl_hooks_vm_stats(vm, &st);
    uint64_t compiles = st.compiles;
    ck_assert_int_eq(trl_hooks_call(vm, &src, "add", push_two, read_first, &r, NULL, &d), 0);
    trl_hooks_vm_stats(vm, &st);
    ck_assert_uint_eq(st.compiles, compiles);
    struct trl_hooks_src v2 = {"app", "args", "2", "return {add = function(a, b) return a * b end}",
                               0};
    v2.len = strlen(v2.text);
    ck_assert_int_eq(trl_hooks_call(vm, &v2, "add", push_two, read_first, &r, NULL, &d), 0);
    ck_assert_str_eq(r.text, "80");
    trl_hooks_vm_stats(vm, &st);
    ck_assert_uint_eq(st.compiles, compiles + 1);
    ck_assert_uint_eq(st.modules, 1);
    trl_hooks_forget(vm, "app");
    trl_hooks_vm_stats(vm, &st);
    ck_assert_uint_eq(st.modules, 0);
    trl_diag_reset(&d);
}
END_TEST

/* A host function handed to Lua that calls another hook inside the running one. */
struct nest {
    const char *text; /* inner module */
    struct trl_hooks_limits lim;
    int rc;            /* inner call's code */
    char msg[256];     /* inner call's message */
    struct result out; /* outer call's result */
};

static int read_nest(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    struct nest *n = ud;
    return read_first(L, nres, &n->out, d);
}

static int lb_nested(lua_State *L)
{
    struct nest *n = lua_touserdata(L, lua_upvalueindex(1));
    struct trl_hooks_src src = {"inner", "m", version_of(n->text), n->text, strlen(n->text)};
    struct result r;
    struct trl_diag d;
    trl_diag_init(&d);
    n->rc = trl_hooks_call(vm, &src, "f", NULL, read_first, &r, &n->lim, &d);
    snprintf(n->msg, sizeof(n->msg), "%s", d.message);
    trl_diag_reset(&d);
    if (n->rc) return luaL_error(L, "inner call failed");
    lua_pushstring(L, r.text);
    return 1;
}

static int push_nested(lua_State *L, void *ud)
{
    lua_pushlightuserdata(L, ud);
    lua_pushcclosure(L, lb_nested, 1);
    return 1;
}

START_TEST(calls_nest_within_the_outer_limits)
{
    struct nest n = {"return {f = function() return 'inner ' .. tostring(pcall(function() return "
                     "x end)) end}",
                     {0, 0, 0},
                     0,
                     "",
                     {0}};
    struct trl_hooks_src src = {"outer", "m", "1",
                                "return {f = function(call) x = 1 return call() .. ' ' .. x "
                                "end, g = function(call) for i = 1, 990000 do end return "
                                "select(2, pcall(call)) end,"
                                " h = function(call) return coroutine.wrap(call)() end}",
                                0};
    src.len = strlen(src.text);
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "f", push_nested, read_nest, &n, NULL, &d), 0);
    ck_assert_str_eq(n.out.text, "inner false 1");
    ck_assert_int_eq(trl_hooks_call(vm, &src, "h", push_nested, read_nest, &n, NULL, &d), 0);
    ck_assert_str_eq(n.out.text, "inner false");
    /* The inner runaway hits what is left of the outer budget, and the outer call stops too. */
    n.text = "return {f = function() while true do end end}";
    double t0 = now_s();
    ck_assert_int_eq(trl_hooks_call(vm, &src, "g", push_nested, read_nest, &n, NULL, &d),
                     TRL_ETIMEOUT);
    ck_assert_double_lt(now_s() - t0, 1.0);
    ck_assert_int_eq(n.rc, TRL_ETIMEOUT);
    ck_assert_str_eq(d.rule, "instructions");
    /* An inner call's own tighter limit stops only the inner call. */
    n.lim.instructions = 1000;
    ck_assert_int_eq(trl_hooks_call(vm, &src, "g", push_nested, read_nest, &n, NULL, &d), 0);
    ck_assert_int_eq(n.rc, TRL_ETIMEOUT);
    ck_assert_str_eq(n.out.text, "inner call failed");
    trl_diag_reset(&d);
    expect_value("return 1", "1");
}
END_TEST

static int push_recurse(lua_State *L, void *ud);

static int lb_recurse(lua_State *L)
{
    struct trl_hooks_src *src = lua_touserdata(L, lua_upvalueindex(1));
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_hooks_call(vm, src, "f", push_recurse, NULL, src, NULL, &d);
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", d.message);
    trl_diag_reset(&d);
    if (rc) return luaL_error(L, "%s", msg);
    return 0;
}

static int push_recurse(lua_State *L, void *ud)
{
    lua_pushlightuserdata(L, ud);
    lua_pushcclosure(L, lb_recurse, 1);
    return 1;
}

START_TEST(nesting_depth_is_capped)
{
    struct trl_hooks_src src = {"app", "rec", "1", "return {f = function(call) call() end}", 0};
    src.len = strlen(src.text);
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_hooks_call(vm, &src, "f", push_recurse, NULL, &src, NULL, &d),
                     TRL_EINTERNAL);
    ck_assert_msg(strstr(d.message, "hook calls nested more than 8 deep"), "%s", d.message);
    trl_diag_reset(&d);
    expect_value("return 1", "1");
}
END_TEST

START_TEST(per_call_overhead)
{
    struct trl_hooks_src src = {"bench", "m", "1",
                                "local M = {}\nfunction M.before_create(ctx, rec) return true "
                                "end\nreturn M",
                                0};
    src.len = strlen(src.text);
    struct trl_diag d;
    trl_diag_init(&d);
    const int n = 100000;
    ck_assert_int_eq(trl_hooks_call(vm, &src, "before_create", NULL, NULL, NULL, NULL, &d), 0);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        int rc = trl_hooks_call(vm, &src, "before_create", NULL, NULL, NULL, NULL, &d);
        if (rc) ck_abort_msg("call %d: %s", i, d.message);
    }
    double us = (now_s() - t0) * 1e6 / n;
    struct trl_hooks_stats st;
    trl_hooks_vm_stats(vm, &st);
    printf("hooks: %d calls of a trivial hook: %.2f us per call (VM holds %zu bytes)\n", n, us,
           st.memory);
    ck_assert_uint_lt(st.memory, 4u << 20); /* nothing accumulates */
    trl_diag_reset(&d);
}
END_TEST

static Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");
    TCase *tc = tcase_create("escapes");
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    tcase_add_test(tc, dangerous_globals_are_absent);
    tcase_add_test(tc, os_has_only_time_date_clock);
    tcase_add_test(tc, require_reaches_only_the_apps_modules);
    tcase_add_test(tc, bytecode_is_refused_by_every_loader);
    tcase_add_test(tc, string_metatable_is_locked);
    tcase_add_test(tc, library_tables_are_read_only);
    tcase_add_test(tc, globals_and_env_are_protected);
    tcase_add_test(tc, gc_metamethods_are_refused);
    tcase_add_test(tc, error_values_cannot_hang_or_explode);
    tcase_add_test(tc, yields_across_the_host_boundary_are_refused);
    tcase_add_test(tc, xpcall_runs_its_handler_after_unwinding);
    tcase_add_test(tc, coroutine_close_nesting_cannot_crash);
    tcase_add_test(tc, os_time_and_date_are_utc_and_allow_listed);
    tcase_add_test(tc, selftest_passes);
    suite_add_tcase(s, tc);
    /* Tagged "timing": limits race the wall clock, which scripts/valgrind (20-50x slower)
     * cannot keep; it runs with CK_EXCLUDE_TAGS=timing. */
    tc = tcase_create("limits");
    tcase_set_tags(tc, "timing");
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    tcase_add_test(tc, runaway_loops_stop);
    tcase_add_test(tc, deadline_stops_a_call);
    tcase_add_test(tc, deep_recursion_stops);
    tcase_add_test(tc, memory_growth_stops);
    tcase_add_test(tc, long_c_functions_are_capped);
    tcase_add_test(tc, patterns_are_metered);
    tcase_add_test(tc, patterns_behave_as_in_lua);
    tcase_add_test(tc, limits_are_per_call);
    tcase_add_test(tc, calls_nest_within_the_outer_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("isolation");
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    tcase_add_test(tc, one_app_cannot_poison_another);
    tcase_add_test(tc, module_state_is_fresh_per_call);
    tcase_add_test(tc, require_loads_the_apps_own_modules);
    tcase_add_test(tc, require_follows_a_changed_module);
    suite_add_tcase(s, tc);
    tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    tcase_add_test(tc, syntax_errors_report_file_and_line);
    tcase_add_test(tc, runtime_errors_report_file_and_line);
    tcase_add_test(tc, bad_references_are_refused);
    tcase_add_test(tc, calls_pass_arguments_and_results);
    tcase_add_test(tc, nesting_depth_is_capped);
    suite_add_tcase(s, tc);
    tc = tcase_create("bench");
    tcase_set_tags(tc, "timing");
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    tcase_add_test(tc, per_call_overhead);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    hooks_vm_clock = &clk; /* the VMs of this suite run on the fixed clock */
    SRunner *sr = srunner_create(hooks_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
