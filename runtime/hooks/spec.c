/* spec.c — `trellis hooks test`: an app's tests/NAME_spec.lua in describe / it / expect style, each
 * test in its own nested transaction that is rolled back, so every test starts from the store as
 * the app was installed. */
#include "hooks/hk_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The framework: `require("trellis_spec")` in a spec (the runner prepends it). */
static const char framework[] =
    "local M = {}\n"
    "local tests, stack = {}, {}\n"
    "local function path(name)\n"
    "  local p = {}\n"
    "  for _, d in ipairs(stack) do p[#p + 1] = d.name end\n"
    "  p[#p + 1] = name\n"
    "  return table.concat(p, ' > ')\n"
    "end\n"
    "local function describe(name, fn)\n"
    "  if type(name) ~= 'string' or type(fn) ~= 'function' then\n"
    "    error('describe(name, function) expected', 2)\n"
    "  end\n"
    "  stack[#stack + 1] = {name = name, before = {}, after = {}}\n"
    "  fn()\n"
    "  stack[#stack] = nil\n"
    "end\n"
    "local function it(name, fn)\n"
    "  if type(name) ~= 'string' or type(fn) ~= 'function' then\n"
    "    error('it(name, function) expected', 2)\n"
    "  end\n"
    "  local before, after = {}, {}\n"
    "  for _, d in ipairs(stack) do\n"
    "    for _, b in ipairs(d.before) do before[#before + 1] = b end\n"
    "    for _, a in ipairs(d.after) do table.insert(after, 1, a) end\n"
    "  end\n"
    "  tests[#tests + 1] = {name = path(name), fn = fn, before = before, after = after}\n"
    "end\n"
    "local function pending(name)\n"
    "  tests[#tests + 1] = {name = path(name), pending = true}\n"
    "end\n"
    "local function each(list, what)\n"
    "  return function(fn)\n"
    "    local d = stack[#stack]\n"
    "    if not d then error(what .. ' must be inside describe', 2) end\n"
    "    d[list][#d[list] + 1] = fn\n"
    "  end\n"
    "end\n"
    "local function show(v)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) == 'table' then\n"
    "    local ok, s = pcall(trellis.json.encode, v)\n"
    "    if ok then return s end\n"
    "  end\n"
    "  return tostring(v)\n"
    "end\n"
    "local function deep(a, b)\n"
    "  if a == b then return true end\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' then return false end\n"
    "  for k, v in pairs(a) do if not deep(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local function expect(actual)\n"
    "  local e = {}\n"
    "  local function check(ok, msg)\n"
    "    if e.negate then ok = not ok; msg = 'not: ' .. msg end\n"
    "    if not ok then error(msg, 3) end\n"
    "  end\n"
    "  local function m(fn)\n"
    "    return function(a, ...)\n"
    "      if a == e then return fn(...) end\n"
    "      return fn(a, ...)\n"
    "    end\n"
    "  end\n"
    "  e.to_be = m(function(x) check(actual == x, 'expected ' .. show(x) .. ', got ' .. "
    "show(actual)) end)\n"
    "  e.to_equal = m(function(x) check(deep(actual, x), 'expected ' .. show(x) .. ', got ' .. "
    "show(actual)) end)\n"
    "  e.to_be_nil = m(function() check(actual == nil, 'expected nil, got ' .. show(actual)) "
    "end)\n"
    "  e.to_be_truthy = m(function() check(actual, 'expected a true value, got ' .. "
    "show(actual)) end)\n"
    "  e.to_be_falsy = m(function() check(not actual, 'expected a false value, got ' .. "
    "show(actual)) end)\n"
    "  e.to_match = m(function(p) check(type(actual) == 'string' and actual:find(p) ~= nil, "
    "'expected ' .. show(actual) .. ' to match ' .. show(p)) end)\n"
    "  e.to_contain = m(function(x)\n"
    "    local found = false\n"
    "    if type(actual) == 'string' then found = actual:find(x, 1, true) ~= nil\n"
    "    elseif type(actual) == 'table' then\n"
    "      for _, v in pairs(actual) do if deep(v, x) then found = true end end\n"
    "    end\n"
    "    check(found, 'expected ' .. show(actual) .. ' to contain ' .. show(x))\n"
    "  end)\n"
    "  e.to_be_greater_than = m(function(x) check(actual > x, 'expected ' .. show(actual) .. "
    "' > ' .. show(x)) end)\n"
    "  e.to_be_less_than = m(function(x) check(actual < x, 'expected ' .. show(actual) .. "
    "' < ' .. show(x)) end)\n"
    "  e.to_fail = m(function(want)\n"
    "    local ok, err = pcall(actual)\n"
    "    if e.negate then\n"
    "      if not ok then error('expected no error, got ' .. tostring(err), 2) end\n"
    "      return\n"
    "    end\n"
    "    if ok then error('expected an error', 2) end\n"
    "    local text = tostring(err)\n"
    "    if type(err) == 'table' and err.status then text = err.status .. ' ' .. "
    "tostring(err.message) end\n"
    "    if want and not text:find(want, 1, true) then\n"
    "      error('expected an error containing ' .. show(want) .. ', got ' .. show(text), 2)\n"
    "    end\n"
    "    return err\n"
    "  end)\n"
    "  e.never = setmetatable({}, {__index = function(_, k)\n"
    "    e.negate = true\n"
    "    return e[k]\n"
    "  end})\n"
    "  return e\n"
    "end\n"
    "function M.api()\n"
    "  return describe, it, expect, each('before', 'before_each'), each('after', 'after_each'), "
    "pending\n"
    "end\n"
    "function M.runner()\n"
    "  local R = {}\n"
    "  function R.list()\n"
    "    local names = {}\n"
    "    for i, t in ipairs(tests) do names[i] = t.name end\n"
    "    return names\n"
    "  end\n"
    "  function R.run(i)\n"
    "    local t = tests[i]\n"
    "    if t.pending then return 'pending' end\n"
    "    for _, b in ipairs(t.before) do b() end\n"
    "    t.fn()\n"
    "    for _, a in ipairs(t.after) do a() end\n"
    "    return 'ok'\n"
    "  end\n"
    "  return R\n"
    "end\n"
    "return M\n";

const char *hk_spec_framework(size_t *n)
{
    *n = sizeof(framework) - 1;
    return framework;
}

struct names {
    char **v;
    size_t n;
};

static int read_list(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)d;
    struct names *nm = ud;
    int t = lua_gettop(L) - nres + 1;
    if (nres < 1 || !lua_istable(L, t)) return 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, t);
    if (n > 100000) n = 100000;
    if (n && !(nm->v = calloc((size_t)n, sizeof(*nm->v)))) return TRL_ENOMEM;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, t, i);
        const char *s = lua_tostring(L, -1);
        nm->v[nm->n] = strdup(s ? s : "?");
        lua_pop(L, 1);
        if (!nm->v[nm->n]) return TRL_ENOMEM;
        nm->n++;
    }
    return 0;
}

struct one {
    struct trl_hooks_bind *b;
    const struct trl_rec_ctx *cx;
    const struct trl_hooks_src *src;
    lua_Integer index;
    int rc;       /* the test's outcome: 0 passed, else failed (cx->d says why) */
    bool pending; /* read_status */
};

static int push_index(lua_State *L, void *ud)
{
    lua_pushinteger(L, ((struct one *)ud)->index);
    return 1;
}

static int read_status(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)d;
    struct one *o = ud;
    const char *s = nres >= 1 ? lua_tostring(L, lua_gettop(L) - nres + 1) : NULL;
    o->pending = s && strcmp(s, "pending") == 0;
    return 0;
}

/* In a nested txn that is always rolled back: the test leaves nothing. */
static int one_txn(struct trl_txn *nt, void *arg)
{
    struct one *o = arg;
    o->rc = trl_hooks_run(o->b, nt, o->cx, o->src, "run", push_index, read_status, o);
    return TRL_ECONFLICT; /* roll back */
}

int trl_hooks_spec_run(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                       const char *app, const char *name, const char *text, size_t n, FILE *out,
                       struct trl_hooks_spec_result *res)
{
    static const char head[] = "local describe, it, expect, before_each, after_each, pending = "
                               "require('trellis_spec').api(); ";
    static const char tail[] = "\nreturn require('trellis_spec').runner()\n";
    size_t tn = sizeof(head) - 1 + n + sizeof(tail) - 1;
    char *src_text = malloc(tn + 1);
    if (!src_text) return TRL_ENOMEM;
    memcpy(src_text, head, sizeof(head) - 1);
    memcpy(src_text + sizeof(head) - 1, text, n);
    memcpy(src_text + sizeof(head) - 1 + n, tail, sizeof(tail));
    char modname[80];
    snprintf(modname, sizeof(modname), "%s", name);
    struct trl_hooks_src src = {app, modname, "spec", src_text, tn};
    char file[200];
    hk_file_of(app, modname, file, sizeof(file));
    fprintf(out, "%s\n", file);
    struct names nm = {0};
    int rc = trl_hooks_run(b, t, cx, &src, "list", NULL, read_list, &nm);
    if (rc) {
        fprintf(out, "  ✗ could not load: %s\n", cx->d->message);
        res->failed++;
        trl_diag_reset(cx->d);
        free(src_text);
        return 0;
    }
    for (size_t i = 0; i < nm.n; i++) {
        struct one o = {.b = b, .cx = cx, .src = &src, .index = (lua_Integer)i + 1};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int trc = trl_txn_nested(t, one_txn, &o);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (trc != TRL_ECONFLICT && trc != 0 && !o.rc) o.rc = trc; /* the store failed */
        if (o.rc) {
            res->failed++;
            fprintf(out, "  ✗ %s\n      %s\n", nm.v[i],
                    cx->d->message[0] ? cx->d->message : trl_err_title(o.rc, "en"));
            for (size_t k = 0; k < cx->d->nferrs; k++) {
                char msg[512];
                trl_ferr_message(&cx->d->ferrs[k], "en", msg, sizeof(msg));
                fprintf(out, "      %s: %s\n", cx->d->ferrs[k].field, msg);
            }
        } else if (o.pending) {
            res->pending++;
            fprintf(out, "  - %s (pending)\n", nm.v[i]);
        } else {
            res->passed++;
            fprintf(out, "  ✓ %s (%.1f ms)\n", nm.v[i], ms);
        }
        trl_diag_reset(cx->d);
    }
    for (size_t i = 0; i < nm.n; i++)
        free(nm.v[i]);
    free(nm.v);
    free(src_text);
    return 0;
}
