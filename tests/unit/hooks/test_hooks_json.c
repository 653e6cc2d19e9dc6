/*
 * test_hooks_json.c — trellis.json (runtime/hooks/json.c): round trips of every JSON kind, the
 * JSONTestSuite parsing files (y_ decode, n_ are refused, i_ either, none crashes), null, empty
 * arrays and objects, sorted keys, integers and floats, invalid UTF-8 both ways, nesting, cycles,
 * mixed and sparse tables, values JSON cannot hold (with their paths), and the call's limits
 * (huge texts and tables stop on the instruction or memory limit, quickly). The host API
 * (hk_json_push_text, hk_json_encode_value) is exercised from the call's callbacks.
 *
 * A "snippet" is a module whose function f has the given body, on line 1 of the file:
 *     return {f = function(json, ...) <body>
 *     end}
 * json is the table hk_json_push_lib makes; the push callback may add more arguments.
 */
#include "hooks/hk_json.h"
#include "hooks/hooks_int.h"
#include "hooks_fixture.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the push callback adds after the json table, and what the read callback does. */
enum extra { X_NONE, X_TEXT, X_HOST_TEXT, X_USERDATA, X_LIB_TWICE };

struct ctx {
    enum extra extra;
    const char *text; /* X_TEXT: pushed as a string; X_HOST_TEXT: decoded by hk_json_push_text */
    size_t len;
    int host_encode;     /* read: hk_json_encode_value of the first result into enc */
    struct trl_buf enc;  /* host_encode's output (freed by the test) */
    const void *null_at; /* read: address of json.null when the first result is it */
    int nres;
    int type;
    char text_out[1 << 16];
    size_t len_out;
};

static int push_args(lua_State *L, void *ud)
{
    struct ctx *c = ud;
    hk_json_push_lib(L);
    switch (c->extra) {
    case X_TEXT:
        lua_pushlstring(L, c->text, c->len);
        return 2;
    case X_HOST_TEXT:
        return 1 + hk_json_push_text(L, c->text, c->len);
    case X_USERDATA:
        lua_newuserdatauv(L, 8, 0);
        lua_pushlightuserdata(L, c);
        return 3;
    case X_LIB_TWICE:
        hk_json_push_lib(L);
        return 2;
    default:
        return 1;
    }
}

static int read_first(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)d;
    struct ctx *c = ud;
    c->nres = nres;
    c->type = nres ? lua_type(L, -nres) : LUA_TNONE;
    c->text_out[0] = 0;
    c->len_out = 0;
    if (c->host_encode && nres) {
        hk_json_encode_value(L, -nres, &c->enc);
        return 0;
    }
    if (nres && lua_type(L, -nres) == LUA_TUSERDATA) c->null_at = lua_topointer(L, -nres);
    if (nres && (c->type == LUA_TSTRING || c->type == LUA_TNUMBER)) {
        lua_pushvalue(L, -nres);
        const char *s = lua_tolstring(L, -1, &c->len_out);
        size_t n = c->len_out < sizeof(c->text_out) - 1 ? c->len_out : sizeof(c->text_out) - 1;
        memcpy(c->text_out, s, n);
        c->text_out[n] = 0;
        lua_pop(L, 1);
    } else if (nres && c->type == LUA_TBOOLEAN) {
        snprintf(c->text_out, sizeof(c->text_out), "%s",
                 lua_toboolean(L, -nres) ? "true" : "false");
    } else if (nres) {
        snprintf(c->text_out, sizeof(c->text_out), "%s", lua_typename(L, c->type));
    }
    return 0;
}

static char snippet_buf[1 << 16];

static int run_ctx(const char *body, struct ctx *c, const struct trl_hooks_limits *lim,
                   struct trl_diag *d)
{
    snprintf(snippet_buf, sizeof(snippet_buf), "return {f = function(json, ...) %s\nend}", body);
    struct trl_hooks_src src = {"app", "m", version_of(snippet_buf), snippet_buf,
                                strlen(snippet_buf)};
    trl_diag_reset(d);
    return trl_hooks_call(vm, &src, "f", push_args, read_first, c, lim, d);
}

static struct ctx *new_ctx(void)
{
    struct ctx *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    trl_buf_init(&c->enc);
    return c;
}

static void free_ctx(struct ctx *c)
{
    trl_buf_free(&c->enc);
    free(c);
}

/* The default limits with a deadline that does not come first in a sanitizer build on a loaded
 * machine: bodies expected to succeed, or to stop on another limit, are judged by that. */
static const struct trl_hooks_limits slow = {0, 0, 900};

/* body must succeed and return the text want. */
static void expect_value(const char *body, const char *want)
{
    struct ctx *c = new_ctx();
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = run_ctx(body, c, &slow, &d);
    ck_assert_msg(rc == 0, "%s: failed: %s", body, d.message);
    ck_assert_msg(strcmp(c->text_out, want) == 0, "%s: got '%s', want '%s'", body, c->text_out,
                  want);
    trl_diag_reset(&d);
    free_ctx(c);
}

/* body must fail with code, rule and a message containing frag, in well under a second, and the
 * VM must work afterwards. */
static void expect_error_ctx(const char *body, struct ctx *c, const struct trl_hooks_limits *lim,
                             int code, const char *rule, const char *frag)
{
    struct trl_diag d;
    trl_diag_init(&d);
    double t0 = now_s();
    int rc = run_ctx(body, c, lim, &d);
    double dt = now_s() - t0;
    ck_assert_msg(rc == code, "%s: rc %d (%s), want %d", body, rc, d.message, code);
    ck_assert_msg(strcmp(d.rule, rule) == 0, "%s: rule '%s' (%s), want '%s'", body, d.rule,
                  d.message, rule);
    ck_assert_msg(strstr(d.message, frag), "%s: message '%s' lacks '%s'", body, d.message, frag);
    ck_assert_msg(dt < 1.0, "%s: took %.3f s", body, dt);
    trl_diag_reset(&d);
    expect_value("return json.encode({6 * 7})", "[42]");
}

static void expect_error(const char *body, const char *frag)
{
    struct ctx *c = new_ctx();
    expect_error_ctx(body, c, NULL, TRL_EINTERNAL, "runtime", frag);
    free_ctx(c);
}

/* ---------------------------------------------------------------------------------------------
 * Round trips and kinds
 */
START_TEST(every_kind_round_trips)
{
    static const char *const texts[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "42",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "-0.25",
        "3.0",
        "-0.0",
        "1e+20",
        "1.7976931348623157e+308",
        "2.2250738585072014e-308",
        "0.1",
        "\"\"",
        "\"plain\"",
        "\"q\\\"b\\\\n\\nt\\tr\\rb\\bf\\f\\u0001\\u001f/\"",
        "\"é中😀\"",
        "\"a\\u0000b\"",
        "[]",
        "{}",
        "[1,2,3]",
        "[null,null]",
        "[[],{},[[]],[{}]]",
        "{\"a\":null}",
        "{\"\":0}",
        "{\"a\":1,\"b\":[true,false,null,\"x\",1.5,{\"c\":{}}]}",
        "{\"1\":\"one\",\"2\":\"two\"}",
        NULL,
    };
    for (int i = 0; texts[i]; i++) {
        const char *body = "return json.encode(json.decode(...))";
        const char *t = texts[i];
        struct ctx *c = new_ctx();
        c->extra = X_TEXT;
        c->text = t;
        c->len = strlen(t);
        struct trl_diag d;
        trl_diag_init(&d);
        int rc = run_ctx(body, c, NULL, &d);
        ck_assert_msg(rc == 0, "%s: %s", t, d.message);
        ck_assert_msg(strcmp(c->text_out, t) == 0, "%s: got %s", t, c->text_out);
        /* The host path gives the same. */
        c->extra = X_HOST_TEXT;
        c->host_encode = 1;
        rc = run_ctx("return ...", c, NULL, &d);
        ck_assert_msg(rc == 0, "%s: %s", t, d.message);
        ck_assert_msg(c->enc.len == strlen(t) && strcmp(c->enc.data, t) == 0, "%s: host got %s", t,
                      c->enc.data);
        trl_diag_reset(&d);
        free_ctx(c);
    }
    /* Types of what decode gives. */
    expect_value("local v = json.decode('{\"a\":[1,\"x\",true,null,{}]}') "
                 "return type(v) .. type(v.a) .. math.type(v.a[1]) .. type(v.a[2]) .. "
                 "type(v.a[3]) .. tostring(v.a[4] == json.null) .. type(v.a[5]) .. #v.a",
                 "tabletableintegerstringbooleantruetable5");
    expect_value("return json.decode('\"a\\\\u0000b\"') == 'a\\0b'", "true");
    expect_value("return json.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\/\"')", "é😀/");
    expect_value("return json.decode(' \\t\\r\\n[ 1 , { \"a\" : 2 } ] \\n')[2].a", "2");
    /* A repeated key: the last one wins. */
    expect_value("return json.encode(json.decode('{\"a\":1,\"a\":2}'))", "{\"a\":2}");
    /* Escaping: short forms, \u00XX for other controls, DEL and non-ASCII as they are. */
    expect_value("return json.encode('a\"b\\\\c\\n\\t\\r\\b\\f\\1\\31/\\127é')",
                 "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\x7f\xc3\xa9\"");
    expect_value("return json.encode({true, false, 'x', 1, 2.5})", "[true,false,\"x\",1,2.5]");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * JSONTestSuite
 */
static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(sz > 0 ? (size_t)sz : 1); /* exact size, no NUL: ASan sees overreads */
    ck_assert_ptr_nonnull(p);
    size_t got = fread(p, 1, (size_t)sz, f);
    fclose(f);
    ck_assert_uint_eq(got, (size_t)sz);
    *n = got;
    return p;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(json_test_suite)
{
    const char *shared = getenv("TRELLIS_SHARED");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/testdata/JSONTestSuite/test_parsing",
             shared ? shared : "/work/shared");
    DIR *dh = opendir(dir);
    ck_assert_msg(dh != NULL, "cannot open %s", dir);
    char *names[1024];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(dh)) && nn < 1024) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(dh);
    qsort(names, nn, sizeof(names[0]), name_cmp);
    ck_assert_uint_ge(nn, 300);
    int y = 0, n = 0, i_ok = 0, i_refused = 0;
    char accepted[1024] = "";
    const char *body = "local v = json.decode(...) local t = json.encode(v) "
                       "assert(json.encode(json.decode(t)) == t, 'not stable: ' .. t) return t";
    for (size_t k = 0; k < nn; k++) {
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
        size_t len;
        char *text = read_file(path, &len);
        ck_assert_msg(text != NULL, "cannot read %s", path);
        struct ctx *c = new_ctx();
        struct trl_diag d;
        trl_diag_init(&d);
        /* 1: the text as a Lua string given to json.decode */
        c->extra = X_TEXT;
        c->text = text;
        c->len = len;
        int rc = run_ctx(body, c, &slow, &d);
        char first = names[k][0];
        if (first == 'y') {
            ck_assert_msg(rc == 0, "%s: refused: %s", names[k], d.message);
            y++;
        } else if (first == 'n') {
            ck_assert_msg(rc == TRL_EINTERNAL && strstr(d.message, "json.decode: "),
                          "%s: rc %d (%s), want a json.decode error", names[k], rc, d.message);
            n++;
        } else {
            ck_assert_msg(rc == 0 || (rc == TRL_EINTERNAL && strstr(d.message, "json.decode: ")),
                          "%s: rc %d (%s)", names[k], rc, d.message);
            if (rc == 0) {
                i_ok++;
                size_t al = strlen(accepted);
                snprintf(accepted + al, sizeof(accepted) - al, " %s", names[k]);
            } else
                i_refused++;
        }
        char *want = rc == 0 ? strdup(c->text_out) : NULL;
        int rc1 = rc;
        /* 2: the same bytes through hk_json_push_text from the host, encoded back by the host */
        c->extra = X_HOST_TEXT;
        c->host_encode = 1;
        rc = run_ctx("return ...", c, &slow, &d);
        ck_assert_msg(rc == rc1, "%s: host path rc %d (%s), Lua path %d", names[k], rc, d.message,
                      rc1);
        if (rc == 0)
            ck_assert_msg(strcmp(c->enc.data, want) == 0, "%s: host %s, Lua %s", names[k],
                          c->enc.data, want);
        else
            ck_assert_msg(strstr(d.message, "json.decode: "), "%s: %s", names[k], d.message);
        free(want);
        trl_diag_reset(&d);
        free_ctx(c);
        free(text);
        free(names[k]);
    }
    printf("JSONTestSuite: %d y_ decoded, %d n_ refused, i_: %d decoded (%s), %d refused\n", y, n,
           i_ok, accepted, i_refused);
    ck_assert_int_eq(y, 95);
    ck_assert_int_eq(n, 188);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * null, arrays and objects
 */
START_TEST(null_is_a_unique_sentinel)
{
    expect_value("local a = json.decode('[1,null,3]') "
                 "return #a .. tostring(a[2] == json.null) .. json.encode(a)",
                 "3true[1,null,3]");
    expect_value("local o = json.decode('{\"a\":null,\"b\":1}') "
                 "return tostring(o.a == json.null) .. json.encode(o)",
                 "true{\"a\":null,\"b\":1}");
    expect_value("return json.decode('null') == json.null", "true");
    expect_value("return json.encode({json.null, 1, json.null})", "[null,1,null]");
    expect_value("return json.encode({a = json.null})", "{\"a\":null}");
    expect_value("return json.encode(json.null)", "null");
    expect_value("return json.encode(nil)", "null");
    expect_value("return json.encode()", "null");
    expect_value("return tostring(json.null) .. type(json.null) .. getmetatable(json.null)",
                 "nulluserdatajson.null");
    expect_error("json.null.x = 1", "attempt to index a userdata value");
    expect_error("return json.null.x", "attempt to index a userdata value");
    expect_error("setmetatable(json.null, {})", "table expected, got userdata");

    /* The same value in every table pushed, and in every call. */
    struct ctx *c = new_ctx();
    struct trl_diag d;
    trl_diag_init(&d);
    c->extra = X_LIB_TWICE;
    ck_assert_int_eq(run_ctx("local j2 = ... return json.null == j2.null and json.decode == "
                             "j2.decode and json ~= j2",
                             c, NULL, &d),
                     0);
    ck_assert_str_eq(c->text_out, "true");
    c->extra = X_NONE;
    ck_assert_int_eq(run_ctx("return json.null", c, NULL, &d), 0);
    const void *first = c->null_at;
    ck_assert_ptr_nonnull(first);
    c->null_at = NULL;
    ck_assert_int_eq(run_ctx("return json.decode('[null]')[1]", c, NULL, &d), 0);
    ck_assert_ptr_eq(c->null_at, first);
    trl_diag_reset(&d);
    free_ctx(c);
}
END_TEST

START_TEST(empty_array_and_object_keep_their_kind)
{
    expect_value("return json.encode(json.decode('[]'))", "[]");
    expect_value("return json.encode(json.decode('{}'))", "{}");
    expect_value("return json.encode({})", "{}");
    expect_value("return json.encode({{}, json.decode('[]'), json.decode('{}')})", "[{},[],{}]");
    expect_value("return json.encode(json.decode('{\"a\":[],\"b\":{}}'))", "{\"a\":[],\"b\":{}}");
    expect_value("return getmetatable(json.decode('[]')) .. getmetatable(json.decode('{}'))",
                 "json.arrayjson.object");
    expect_error("setmetatable(json.decode('[]'), {})", "cannot change a protected metatable");
    /* Decoded tables stay usable as plain tables. */
    expect_value("local a = json.decode('[]') a[1] = 'x' table.insert(a, 'y') "
                 "return json.encode(a) .. #a",
                 "[\"x\",\"y\"]2");
    expect_value("local o = json.decode('{}') o.k = 1 return json.encode(o)", "{\"k\":1}");
    expect_error("local a = json.decode('[1]') a.x = 1 return json.encode(a)",
                 "json.encode: table at $ has mixed keys (integers and strings)");
    expect_error("local a = json.decode('[]') a.x = 1 return json.encode({a})",
                 "json.encode: table at $[1] is a JSON array but has string keys");
    expect_error("local o = json.decode('{\"a\":{}}') o.a[1] = 1 return json.encode(o)",
                 "json.encode: table at $.a is a JSON object but has integer key 1");
}
END_TEST

START_TEST(object_keys_are_sorted_bytewise)
{
    expect_value("return json.encode({b = 1, a = 2, c = {z = 1, y = 2}})",
                 "{\"a\":2,\"b\":1,\"c\":{\"y\":2,\"z\":1}}");
    expect_value("return json.encode({['é'] = 1, a = 2, B = 3, [''] = 4, aa = 5, ['a\\0'] = 6})",
                 "{\"\":4,\"B\":3,\"a\":2,\"a\\u0000\":6,\"aa\":5,\"é\":1}");
    /* Whatever the insertion order (and so the hash layout), the same text. */
    expect_value("local a, b = {}, {} for i = 1, 300 do a['k' .. i] = i end "
                 "for i = 300, 1, -1 do b['k' .. i] = i end "
                 "for i = 1, 300, 2 do b['k' .. i] = nil b['k' .. i] = i end "
                 "local s = json.encode(a) "
                 "return tostring(s == json.encode(b)) .. s:sub(1, 30)",
                 "true{\"k1\":1,\"k10\":10,\"k100\":100,\"k");
}
END_TEST

START_TEST(integers_and_floats)
{
    expect_value("return json.encode(3)", "3");
    expect_value("return json.encode(3.0)", "3.0");
    expect_value("return json.encode(-0.0)", "-0.0");
    expect_value("return json.encode(0.1)", "0.1");
    expect_value("return json.encode(1/3)", "0.3333333333333333");
    expect_value("return json.encode(1e20)", "1e+20");
    expect_value("return json.encode(2^53)", "9007199254740992.0");
    expect_value("return json.encode(123456.5)", "123456.5");
    expect_value("return json.encode(math.maxinteger)", "9223372036854775807");
    expect_value("return json.encode(math.mininteger)", "-9223372036854775808");
    expect_value("return json.encode(1e300 * 10)", "1e+301");
    expect_value("return json.encode(5e-324)", "4.94065645841247e-324");
    expect_value("return math.type(json.decode('1')) .. math.type(json.decode('1.0')) .. "
                 "math.type(json.decode('1e2')) .. json.decode('1e2') .. "
                 "math.type(json.decode('-0')) .. json.decode('-0')",
                 "integerfloatfloat100.0integer0");
    expect_value("local z = json.decode('-0.0') return math.type(z) .. (1 / z)", "float-inf");
    /* Exact 64-bit integers (beyond 2^53 a double would lose the last digits). */
    expect_value("local v = json.decode('123456789012345678') "
                 "return math.type(v) .. tostring(v == 123456789012345678)",
                 "integertrue");
    expect_value("return json.decode('9223372036854775807') == math.maxinteger", "true");
    expect_value("return json.decode('-9223372036854775808') == math.mininteger", "true");
    expect_value("local v = json.decode('9223372036854775808') return math.type(v) .. v",
                 "float9.2233720368548e+18");
    expect_value("local v = json.decode('-9223372036854775809') return math.type(v)", "float");
    expect_value("return json.decode('[12345678901234567890123456789]')[1]", "1.2345678901235e+28");
    expect_value("return json.decode('1e-400')", "0.0");
    expect_value("return json.decode('1E+2') + json.decode('25e-1')", "102.5");
    expect_error("return json.decode('1e400')",
                 "json.decode: number out of range at byte offset 0");
    expect_error("return json.decode('[1, -1e400]')",
                 "json.decode: number out of range at byte offset 4");
    /* Random doubles read back exactly and stay floats. */
    expect_value("local bad = 0 for i = 1, 3000 do "
                 "local x = string.unpack('<d', string.pack('<i8', "
                 "math.random(math.mininteger, math.maxinteger))) "
                 "if x == x and x ~= math.huge and x ~= -math.huge then "
                 "local y = json.decode(json.encode(x)) "
                 "if y ~= x or math.type(y) ~= 'float' then bad = bad + 1 end end end "
                 "for _, x in ipairs({0.1, 1/3, 2^-1074, 2^1023, 1e15, 1e16, 123.456, -1.5e-7}) do "
                 "local y = json.decode(json.encode(x)) "
                 "if y ~= x or math.type(y) ~= 'float' then bad = bad + 1 end end "
                 "return bad",
                 "0");
    expect_error("return json.encode(0/0)", "json.encode: cannot encode NaN at $");
    expect_error("return json.encode({x = {1/0}})", "json.encode: cannot encode inf at $.x[1]");
    expect_error("return json.encode({y = -1/0})", "json.encode: cannot encode -inf at $.y");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Strings and UTF-8
 */
START_TEST(invalid_utf8_is_refused_both_ways)
{
    expect_error("return json.decode('\"\\255\"')", "json.decode: invalid UTF-8 at byte offset 1");
    expect_error("return json.decode('[\"ok\", \"\\237\\160\\128\"]')",
                 "json.decode: invalid UTF-8 at byte offset 8"); /* a surrogate */
    expect_error("return json.decode('\"\\192\\175\"')",
                 "json.decode: invalid UTF-8 at byte offset 1"); /* overlong */
    expect_error("return json.decode('\"\\244\\144\\128\\128\"')",
                 "json.decode: invalid UTF-8 at byte offset 1"); /* above U+10FFFF */
    expect_error("return json.decode('\"\\226\\130')",
                 "json.decode: invalid UTF-8 at byte offset 1");
    expect_error("return json.decode('{\"k\\255\":1}')",
                 "json.decode: invalid UTF-8 at byte offset 3");
    expect_error("return json.encode('\\255')",
                 "json.encode: string at $ is not valid UTF-8 (byte offset 0)");
    expect_error("return json.encode({a = {'ok', 'x\\195'}})",
                 "json.encode: string at $.a[2] is not valid UTF-8 (byte offset 1)");
    expect_error("return json.encode({a = '\\237\\160\\128'})",
                 "json.encode: string at $.a is not valid UTF-8 (byte offset 0)");
    expect_error("return json.encode({x = {['k\\255'] = 1}})",
                 "json.encode: a key of the table at $.x is not valid UTF-8 (byte offset 1)");
    expect_value("return json.encode({['é'] = 'ü😀'})", "{\"é\":\"ü😀\"}");
}
END_TEST

START_TEST(decode_errors_name_the_byte_offset)
{
    expect_error("return json.decode('')",
                 "app/hooks/m.lua:1: json.decode: no value at byte offset 0");
    expect_error("return json.decode('  ')", "json.decode: no value at byte offset 2");
    expect_error("return json.decode('[1,]')", "json.decode: invalid JSON at byte offset");
    expect_error("return json.decode('[1] x')",
                 "json.decode: unexpected text after the value at byte offset 4");
    expect_error("return json.decode('{\"a\":1}}')",
                 "json.decode: unexpected text after the value at byte offset 7");
    expect_error("return json.decode('[1,2')", "json.decode: invalid JSON at byte offset");
    expect_error("return json.decode('[\"a\\1b\"]')",
                 "json.decode: control character in a string at byte offset 3");
    expect_error("return json.decode('[\"ok\", \"\\\\ud800\"]')", "json.decode: ");
    expect_error("return json.decode('\"\\\\udc00\"')", "json.decode: ");
    expect_error("return json.decode('\"\\\\x41\"')", "json.decode: ");
    expect_error("return json.decode('[01]')", "json.decode: ");
    expect_error("return json.decode('[1.]')", "json.decode: ");
    expect_error("return json.decode('[\\f1]')", "json.decode: ");
    expect_error("return json.decode('[1]\\0')",
                 "json.decode: unexpected text after the value at byte offset 3");
    expect_error("return json.decode('\\239\\187\\191{}')",
                 "json.decode: invalid JSON at byte offset 0"); /* a byte order mark */
    /* Long lexemes are read whole. */
    expect_value("return json.decode('[' .. string.rep('1', 100) .. ']')[1]",
                 "1.1111111111111e+99");
    expect_value("return json.decode('-0.' .. string.rep('0', 400) .. '1')", "-0.0");
    expect_error("return json.decode('[1' .. string.rep('0', 400) .. ']')",
                 "json.decode: number out of range at byte offset 1");
    expect_error("return json.decode(5)", "json.decode: expected a string, got number");
    expect_error("return json.decode()", "json.decode: expected a string, got no value");
    struct ctx *c = new_ctx();
    static const struct trl_hooks_limits roomy = {0, 64u << 20, 900};
    expect_error_ctx("return json.decode(string.rep(' ', 16 * 2^20 + 1))", c, &roomy, TRL_EINTERNAL,
                     "runtime", "json.decode: text too long (16777217 bytes, at most 16777216)");
    free_ctx(c);
    /* Errors can be caught like any other. */
    expect_value("local ok, err = pcall(json.decode, '{') return tostring(ok) .. ' ' .. err",
                 "false json.decode: invalid JSON at byte offset 0");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Structure: nesting, cycles, keys, values JSON cannot hold
 */
START_TEST(nesting_is_capped_at_128)
{
    expect_value("local s = string.rep('[', 128) .. string.rep(']', 128) "
                 "return tostring(json.encode(json.decode(s)) == s)",
                 "true");
    expect_error("return json.decode(string.rep('[', 129) .. string.rep(']', 129))",
                 "json.decode: nesting deeper than 128 arrays and objects at byte offset 128");
    expect_error("return json.decode(string.rep('{\"a\":', 200))",
                 "json.decode: nesting deeper than 128 arrays and objects at byte offset 640");
    expect_error("return json.decode(string.rep('[', 100000))",
                 "json.decode: nesting deeper than 128");
    expect_value("local t = {} local cur = t for i = 1, 127 do cur[1] = {} cur = cur[1] end "
                 "local s = json.encode(t) return #s .. s:sub(125, 132)",
                 "256[[[{}]]]");
    expect_error("local t = {} local cur = t for i = 1, 128 do cur[1] = {} cur = cur[1] end "
                 "return json.encode(t)",
                 "json.encode: table at $[1][1][1]");
    expect_error("local t = {} local cur = t for i = 1, 128 do cur.next = {} cur = cur.next end "
                 "return json.encode(t)",
                 "is nested deeper than 128 arrays and objects");
    /* Long paths keep their head and tail. */
    const char *deep = "local t = {} local cur = t for i = 1, 200 do cur['k' .. i] = {} "
                       "cur = cur['k' .. i] end return json.encode(t)";
    expect_error(deep, "json.encode: table at $.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13");
    expect_error(deep, ".k16.k17....k101.k102.");
    expect_error(deep, ".k127.k128 is nested deeper than 128 arrays and objects");
    expect_error("local t = {} local cur = t for i = 1, 100 do cur['k' .. i] = {} "
                 "cur = cur['k' .. i] end cur.f = function() end return json.encode(t)",
                 ".k17....k67.k68.k69");
    expect_error("local t = {} local cur = t for i = 1, 100 do cur['k' .. i] = {} "
                 "cur = cur['k' .. i] end cur.f = function() end return json.encode(t)",
                 ".k95.k96.k97.k98.k99.k100.f");
}
END_TEST

START_TEST(cycles_are_refused_shared_tables_are_not)
{
    expect_error("local t = {} t.self = t return json.encode(t)",
                 "json.encode: cycle at $.self (a table that contains itself)");
    expect_error("local a = {} local b = {a} a[1] = b return json.encode({x = a})",
                 "json.encode: cycle at $.x[1][1]");
    expect_value("local s = {1} return json.encode({s, s, {s}})", "[[1],[1],[[1]]]");
}
END_TEST

START_TEST(mixed_sparse_and_odd_keys_are_refused)
{
    expect_error("return json.encode({1, 2, x = 3})",
                 "json.encode: table at $ has mixed keys (integers and strings)");
    expect_error("return json.encode({items = {1, 2, {1, a = 1}}})",
                 "json.encode: table at $.items[3] has mixed keys");
    expect_error("return json.encode({1, nil, 3})",
                 "json.encode: table at $ is a sparse array (2 elements, largest index 3; use "
                 "json.null for holes)");
    expect_error("local a = json.decode('[1,2,3]') a[2] = nil return json.encode(a)",
                 "is a sparse array (2 elements, largest index 3");
    expect_error("return json.encode({[0] = 'a'})",
                 "json.encode: table at $ has integer key 0 (array indexes start at 1)");
    expect_error("return json.encode({a = {[-5] = 1, [1] = 2}})",
                 "json.encode: table at $.a has integer key -5");
    expect_error("return json.encode({[1.5] = 1})",
                 "json.encode: table at $ has a float key (object keys must be strings)");
    expect_error("return json.encode({x = {[true] = 1}})",
                 "json.encode: table at $.x has a boolean key");
    expect_error("return json.encode({[{}] = 1})", "json.encode: table at $ has a table key");
    expect_value("return json.encode({[1] = 'a', [2] = 'b', [3.0] = 'c'})", "[\"a\",\"b\",\"c\"]");
}
END_TEST

START_TEST(functions_threads_userdata_are_refused_with_paths)
{
    expect_error("return json.encode({cb = function() end})",
                 "json.encode: cannot encode a function at $.cb");
    expect_error("return json.encode({1, {co = coroutine.create(function() end)}})",
                 "json.encode: cannot encode a thread at $[2].co");
    expect_error("return json.encode({['a b'] = {f = string.len}})",
                 "json.encode: cannot encode a function at $[\"a b\"].f");
    expect_error("return json.encode({['q\"\\n'] = {f = string.len}})",
                 "json.encode: cannot encode a function at $[\"q\\\"\\u000a\"].f");
    expect_error("return json.encode(json.encode)", "json.encode: cannot encode a function at $");
    struct ctx *c = new_ctx();
    c->extra = X_USERDATA;
    expect_error_ctx("local u = ... return json.encode({u = u})", c, NULL, TRL_EINTERNAL, "runtime",
                     "json.encode: cannot encode a userdata at $.u");
    expect_error_ctx("local _, lu = ... return json.encode({list = {lu}})", c, NULL, TRL_EINTERNAL,
                     "runtime", "json.encode: cannot encode a userdata at $.list[1]");
    free_ctx(c);
}
END_TEST

START_TEST(metamethods_are_never_called)
{
    expect_value("local t = setmetatable({1, 2}, {__index = function() error('no') end, "
                 "__pairs = function() error('no') end, __len = function() error('no') end, "
                 "__tojson = function() error('no') end}) return json.encode(t)",
                 "[1,2]");
    expect_value("return json.encode(setmetatable({}, {__index = {a = 1}}))", "{}");
    /* Weak tables are read like any other. */
    expect_value("local w = setmetatable({}, {__mode = 'kv'}) local one = {1} w.b = one w.a = 'x' "
                 "local k = {} for i = 1, 40 do w['k' .. i] = k end "
                 "return json.encode(w):sub(1, 21)",
                 "{\"a\":\"x\",\"b\":[1],\"k1\"");
    expect_value("return json.encode(setmetatable({b = 1}, {__newindex = function() "
                 "error('no') end, __tostring = function() error('no') end}))",
                 "{\"b\":1}");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * The host API
 */
START_TEST(host_api_decodes_and_encodes)
{
    struct ctx *c = new_ctx();
    struct trl_diag d;
    trl_diag_init(&d);
    /* Text that is not NUL-terminated: only len bytes are read. */
    char *buf = malloc(8);
    memcpy(buf, "[1,2]xyz", 8);
    c->extra = X_HOST_TEXT;
    c->text = buf;
    c->len = 5;
    ck_assert_int_eq(run_ctx("local v = ... return #v .. getmetatable(v)", c, NULL, &d), 0);
    ck_assert_str_eq(c->text_out, "2json.array");
    c->len = 6;
    ck_assert_int_eq(run_ctx("return ...", c, NULL, &d), TRL_EINTERNAL);
    ck_assert_msg(
        strstr(d.message, "json.decode: unexpected text after the value at byte offset 5"), "%s",
        d.message);
    free(buf);

    /* encode_value appends to what out holds, and only on success. */
    c->extra = X_NONE;
    c->host_encode = 1;
    trl_buf_adds(&c->enc, "prefix:");
    ck_assert_int_eq(run_ctx("return {b = {1, 2.5, 'x'}, a = json.null}, 'ignored'", c, NULL, &d),
                     0);
    ck_assert_str_eq(c->enc.data, "prefix:{\"a\":null,\"b\":[1,2.5,\"x\"]}");
    ck_assert_int_eq(run_ctx("return {f = function() end}", c, NULL, &d), TRL_EINTERNAL);
    ck_assert_msg(strstr(d.message, "json.encode: cannot encode a function at $.f"), "%s",
                  d.message);
    ck_assert_str_eq(c->enc.data, "prefix:{\"a\":null,\"b\":[1,2.5,\"x\"]}");
    trl_buf_clear(&c->enc);
    ck_assert_int_eq(run_ctx("return 'solo'", c, NULL, &d), 0);
    ck_assert_str_eq(c->enc.data, "\"solo\"");
    trl_diag_reset(&d);
    free_ctx(c);
}
END_TEST

START_TEST(errors_after_parsing_free_the_tree)
{
    /* cJSON accepts a raw control character in a string; the walk refuses it with the tree
     * alive: the tree is freed by its to-be-closed box (LeakSanitizer checks at exit). */
    for (int i = 0; i < 50; i++)
        expect_error("return json.decode('[{\"a\":[1,2,3]},\"x\\1\"]')",
                     "json.decode: control character in a string at byte offset 17");
    /* A memory stop in the middle of the conversion: 3 MB of text fit in the call's memory
     * (as the estimate counts it), but the Lua buffer unescaping 1.5 million "\n" does not. */
    struct ctx *c = new_ctx();
    size_t n = 3u << 20;
    char *text = malloc(n);
    memcpy(text, "[1,2,\"", 6);
    for (size_t i = 6; i + 2 < n; i += 2)
        memcpy(text + i, "\\n", 2);
    memcpy(text + n - 2, "\"]", 2);
    c->extra = X_HOST_TEXT;
    c->text = text;
    c->len = n;
    static const struct trl_hooks_limits three = {1000000000, (3u << 20) + (256u << 10), 900};
    expect_error_ctx("return 1", c, &three, TRL_ENOMEM, "memory", "memory limit exceeded");
    free(text);
    c->extra = X_NONE;
    /* Memory stops, many times over. */
    static const struct trl_hooks_limits tight = {1000000000, 2u << 20, 900};
    expect_error_ctx("local s = '[' .. string.rep('{\"abcdefgh\":[1,2,\"xyzxyzxyzxyz\"]},', 2000) "
                     ".. '0]' local keep = {} for i = 1, 200 do keep[i] = json.decode(s) end",
                     c, &tight, TRL_ENOMEM, "memory", "memory limit exceeded");
    free_ctx(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Limits
 */
/* "[0,0,...,0]" with count zeros (2 * count + 1 bytes, no NUL). */
static char *zeros(size_t count, size_t *len)
{
    *len = 2 * count + 1;
    char *t = malloc(*len);
    ck_assert_ptr_nonnull(t);
    t[0] = '[';
    for (size_t i = 0; i < count; i++) {
        t[1 + 2 * i] = '0';
        t[2 + 2 * i] = i + 1 < count ? ',' : ']';
    }
    return t;
}

START_TEST(huge_decodes_stop_on_a_limit)
{
    size_t n = 10u << 20, len;
    char *text = zeros(n / 2, &len);
    struct ctx *c = new_ctx();
    /* 10 MB as a Lua string: 1 unit per 16 bytes is over a 200,000 budget at once. */
    c->extra = X_TEXT;
    c->text = text;
    c->len = len;
    static const struct trl_hooks_limits budget = {200000, 64u << 20, 900};
    expect_error_ctx("return json.decode(...)", c, &budget, TRL_ETIMEOUT, "instructions",
                     "instruction budget exceeded (200000 instructions)");
    /* pcall does not swallow it. */
    expect_error_ctx(
        "local ok = pcall(json.decode, ...) local x = 0 for i = 1, 10 do x = x + i end "
        "return x",
        c, &budget, TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
    /* The host hands 10 MB to a call with 4 MiB of memory. */
    c->extra = X_HOST_TEXT;
    static const struct trl_hooks_limits small = {1000000000, 4u << 20, 900};
    expect_error_ctx("return 1", c, &small, TRL_ENOMEM, "memory", "memory limit exceeded");
    /* 5 million values do not fit in 32 MiB (as cJSON nodes or as Lua values). */
    static const struct trl_hooks_limits mid = {1000000000, 32u << 20, 900};
    expect_error_ctx("return 1", c, &mid, TRL_ENOMEM, "memory", "memory limit exceeded");
    free(text);
    /* A long string is cheap in values but not in bytes. */
    char *s = malloc(n);
    memset(s, 'a', n);
    s[0] = '"';
    s[n - 1] = '"';
    c->text = s;
    c->len = n;
    c->extra = X_TEXT;
    expect_error_ctx("return json.decode(...)", c, &budget, TRL_ETIMEOUT, "instructions",
                     "instruction budget exceeded");
    free(s);
    free_ctx(c);
}
END_TEST

START_TEST(huge_encodes_stop_on_a_limit)
{
    struct ctx *c = new_ctx();
    /* A million values from 300 table slots (shared tables are encoded each time). */
    static const struct trl_hooks_limits budget = {200000, 0, 900};
    const char *dag = "local t = {} for i = 1, 100 do t[i] = i end "
                      "local u = {} for i = 1, 100 do u[i] = t end "
                      "local v = {} for i = 1, 100 do v[i] = u end ";
    char body[1024];
    snprintf(body, sizeof(body), "%s return #json.encode(v)", dag);
    expect_error_ctx(body, c, &budget, TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
    /* 2^60 values from 60 tables. */
    expect_error_ctx("local t = {1} for i = 1, 60 do t = {t, t} end return #json.encode(t)", c,
                     &budget, TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
    /* 64 MB of output with 8 MiB of memory. */
    static const struct trl_hooks_limits mem = {1000000000, 8u << 20, 900};
    const char *big = "local s = string.rep('x', 1 << 20) local t = {} "
                      "for i = 1, 64 do t[i] = s end ";
    snprintf(body, sizeof(body), "%s return #json.encode(t)", big);
    expect_error_ctx(body, c, &mem, TRL_ENOMEM, "memory", "memory limit exceeded");
    /* The same through the host's encode. */
    c->host_encode = 1;
    snprintf(body, sizeof(body), "%s return t", big);
    expect_error_ctx(body, c, &mem, TRL_ENOMEM, "memory", "memory limit exceeded");
    snprintf(body, sizeof(body), "%s return v", dag);
    expect_error_ctx(body, c, &budget, TRL_ETIMEOUT, "instructions", "instruction budget exceeded");
    c->host_encode = 0;
    /* Within the limits, big is fine: 4 MB of output. */
    expect_value("local s = string.rep('x', 1 << 20) "
                 "return #json.encode({s, s, s, s})",
                 "4194317");
    free_ctx(c);
}
END_TEST

/* A case of suite s whose tests each get a fresh VM. */
static TCase *vm_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, hooks_vm_setup, hooks_vm_teardown);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *json_suite(void)
{
    Suite *s = suite_create("hooks_json");
    TCase *tc = vm_tcase(s, "values");
    tcase_add_test(tc, every_kind_round_trips);
    tcase_add_test(tc, json_test_suite);
    tcase_add_test(tc, null_is_a_unique_sentinel);
    tcase_add_test(tc, empty_array_and_object_keep_their_kind);
    tcase_add_test(tc, object_keys_are_sorted_bytewise);
    tcase_add_test(tc, integers_and_floats);
    tcase_add_test(tc, invalid_utf8_is_refused_both_ways);
    tcase_add_test(tc, decode_errors_name_the_byte_offset);
    tc = vm_tcase(s, "structure");
    tcase_add_test(tc, nesting_is_capped_at_128);
    tcase_add_test(tc, cycles_are_refused_shared_tables_are_not);
    tcase_add_test(tc, mixed_sparse_and_odd_keys_are_refused);
    tcase_add_test(tc, functions_threads_userdata_are_refused_with_paths);
    tcase_add_test(tc, metamethods_are_never_called);
    tc = vm_tcase(s, "host");
    tcase_add_test(tc, host_api_decodes_and_encodes);
    tcase_add_test(tc, errors_after_parsing_free_the_tree);
    tc = vm_tcase(s, "limits");
    tcase_set_tags(tc, "timing"); /* the instruction budget races a deadline: not under valgrind */
    tcase_add_test(tc, huge_decodes_stop_on_a_limit);
    tcase_add_test(tc, huge_encodes_stop_on_a_limit);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
