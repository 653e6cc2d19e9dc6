/*
 * json.c — trellis.json: JSON text to Lua values and back, for untrusted hook code.
 *
 * Decoding. The text is first scanned once (charged at one unit per 16 bytes before the scan):
 * the scan checks UTF-8 over the whole text, the nesting depth, and counts the values, which are
 * charged and must fit (as cJSON nodes) in the memory the call has left — all before cJSON runs,
 * so a huge text stops at a limit without being parsed. cJSON then parses the text; its tree is
 * held by a to-be-closed userdata, so it is freed however the decode ends. The tree is walked in
 * document order together with the text: numbers and strings are read from the text itself (cJSON
 * keeps no number lexeme — integers beyond 2^53 would lose digits — and stops strings at an
 * escaped U+0000), and the walk checks the grammar at the token level (whitespace, literals,
 * number syntax, escapes, control characters, trailing text), which is stricter than cJSON.
 *
 * Encoding. Values are written into a struct trl_buf held by a to-be-closed userdata. Tables are
 * read raw (lua_next, lua_rawget): no metamethod runs, so encoding runs no Lua code. Each value
 * costs one unit and every 16 bytes of output one more; the output may not outgrow the memory
 * the call has left. Object keys are sorted bytewise; their strings are anchored (in stack slots,
 * or for objects of more than SMALL_KEYS keys in a table) while the C sort array points at them.
 *
 * Marks. Decoded arrays and objects get one of two shared metatables whose __metatable field is
 * the string "json.array" or "json.object" (locked: hook code cannot reach or change them); the
 * null sentinel is a zero-size userdata. All are made once per state and kept in the registry.
 */
#include "hooks/hk_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry key of the table holding the shared values below. */
static const char k_state = 0;

enum { ST_NULL = 1, ST_ARRAY, ST_OBJECT, ST_TREE, ST_OUT, ST_COUNT = ST_OUT };

/* Estimated bytes of one cJSON node (the struct and the allocator's overhead). */
#define NODE_BYTES (sizeof(cJSON) + 16)
/* Output bytes and values charged in one hk_charge call. */
#define CHARGE_BATCH 256

/* ---------------------------------------------------------------------------------------------
 * Shared state
 */
static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

static int tree_free(lua_State *L)
{
    cJSON **box = lua_touserdata(L, 1);
    if (box && *box) {
        cJSON_Delete(*box);
        *box = NULL;
    }
    return 0;
}

static int out_free(lua_State *L)
{
    struct trl_buf *b = lua_touserdata(L, 1);
    if (b) trl_buf_free(b);
    return 0;
}

/* A metatable with __close and __gc set to fn (boxes freed however a call ends). */
static void push_box_mt(lua_State *L, lua_CFunction fn)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
}

/* Pushes the shared state table, making it on first use. */
static void push_state(lua_State *L)
{
    luaL_checkstack(L, 6, "json");
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_state) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_createtable(L, ST_COUNT, 0);

    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "json.null");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawseti(L, -2, ST_NULL);

    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__metatable");
    lua_rawseti(L, -2, ST_ARRAY);

    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "json.object");
    lua_setfield(L, -2, "__metatable");
    lua_rawseti(L, -2, ST_OBJECT);

    push_box_mt(L, tree_free);
    lua_rawseti(L, -2, ST_TREE);
    push_box_mt(L, out_free);
    lua_rawseti(L, -2, ST_OUT);

    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &k_state);
}

/* Pushes the null sentinel, the array and the object metatables (3 slots). */
static void push_marks(lua_State *L)
{
    push_state(L);
    lua_rawgeti(L, -1, ST_NULL);
    lua_rawgeti(L, -2, ST_ARRAY);
    lua_rawgeti(L, -3, ST_OBJECT);
    lua_remove(L, -4);
}

/* Pushes a to-be-closed box of size bytes (zeroed) whose metatable is state field mt. */
static void *push_box(lua_State *L, size_t size, int mt)
{
    void *p = lua_newuserdatauv(L, size, 0);
    memset(p, 0, size);
    push_state(L);
    lua_rawgeti(L, -1, mt);
    lua_setmetatable(L, -3);
    lua_pop(L, 1);
    lua_toclose(L, -1);
    return p;
}

void hk_json_push_null(lua_State *L)
{
    push_state(L);
    lua_rawgeti(L, -1, ST_NULL);
    lua_remove(L, -2);
}

/* Makes sure bytes more can be held by the call: collects once if not, then stops the call. */
static void need_room(lua_State *L, size_t bytes)
{
    if (bytes <= hk_mem_room(L)) return;
    lua_gc(L, LUA_GCCOLLECT, 0);
    if (bytes > hk_mem_room(L)) hk_stop_raise(L, HK_STOP_MEMORY);
}

/* Length of the valid UTF-8 sequence at s (n bytes available, n >= 1), 0 when invalid: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] >= 0xA0) return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 */
struct dec {
    lua_State *L;
    const char *s; /* the text */
    const char *e; /* its end */
    int null_idx;  /* stack index of the null sentinel */
    int arr_idx;   /* of the array metatable */
    int obj_idx;   /* of the object metatable */
};

static int dec_fail(struct dec *d, const char *at, const char *what)
{
    return luaL_error(d->L, "json.decode: %s at byte offset %I", what, (lua_Integer)(at - d->s));
}

/* Checks UTF-8 and the nesting depth; returns an upper estimate of the values in the text. */
static size_t dec_scan(struct dec *d)
{
    const unsigned char *s = (const unsigned char *)d->s;
    size_t n = (size_t)(d->e - d->s), values = 1;
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t l = utf8_seq(s + i, n - i);
            if (!l) dec_fail(d, d->s + i, "invalid UTF-8");
            i += l;
            continue;
        }
        i++;
        if (in_str) {
            if (c == '"')
                in_str = 0;
            else if (c == '\\' && i < n && s[i] < 0x80)
                i++; /* the escaped character (a non-ASCII one is checked as UTF-8) */
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '[':
        case '{':
            if (++depth > HK_JSON_MAX_DEPTH)
                dec_fail(d, d->s + i - 1, "nesting deeper than 128 arrays and objects");
            values++;
            break;
        case ']':
        case '}':
            depth--;
            break;
        case ',':
            values++;
            break;
        default:
            break;
        }
    }
    return values;
}

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the start of a token: fails unless the text has c there. */
static const char *expect(struct dec *d, const char *p, char c, const char *what)
{
    p = skip_ws(p, d->e);
    if (p >= d->e || *p != c) dec_fail(d, p, what);
    return p + 1;
}

static int is_digit(const char *p, const char *e)
{
    return p < e && *p >= '0' && *p <= '9';
}

/* Reads the number at p (strict JSON syntax) and pushes it. */
static const char *dec_number(struct dec *d, const char *p)
{
    lua_State *L = d->L;
    const char *q = p, *e = d->e;
    if (q < e && *q == '-') q++;
    if (!is_digit(q, e)) dec_fail(d, p, "invalid number");
    if (*q == '0')
        q++;
    else
        while (is_digit(q, e))
            q++;
    if (q < e && *q == '.') {
        if (!is_digit(++q, e)) dec_fail(d, p, "invalid number");
        while (is_digit(q, e))
            q++;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-')) q++;
        if (!is_digit(q, e)) dec_fail(d, p, "invalid number");
        while (is_digit(q, e))
            q++;
    }
    size_t len = (size_t)(q - p);
    char buf[64];
    const char *num = buf;
    int temp = 0;
    if (len < sizeof(buf)) {
        memcpy(buf, p, len);
        buf[len] = 0;
    } else {
        lua_pushlstring(L, p, len);
        num = lua_tostring(L, -1);
        temp = 1;
    }
    /* Lua's own conversion (locale-proof): an integer when the lexeme has no fraction or
     * exponent and fits in 64 bits, else a float. */
    if (lua_stringtonumber(L, num) == 0) dec_fail(d, p, "invalid number");
    if (temp) lua_remove(L, -2);
    if (!lua_isinteger(L, -1) && isinf(lua_tonumber(L, -1))) dec_fail(d, p, "number out of range");
    return q;
}

static int hex4(const char *p, const char *e, unsigned *out)
{
    if (e - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* Reads the string at p (at its opening quote) and pushes it. */
static const char *dec_string(struct dec *d, const char *p)
{
    lua_State *L = d->L;
    const char *e = d->e, *r = p + 1;
    while (r < e && *r != '"' && *r != '\\' && (unsigned char)*r >= 0x20)
        r++;
    if (r < e && *r == '"') { /* no escapes: the common case */
        lua_pushlstring(L, p + 1, (size_t)(r - p - 1));
        return r + 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, p + 1, (size_t)(r - p - 1));
    for (;;) {
        const char *run = r;
        while (r < e && *r != '"' && *r != '\\' && (unsigned char)*r >= 0x20)
            r++;
        luaL_addlstring(&b, run, (size_t)(r - run));
        if (r >= e) dec_fail(d, p, "unterminated string");
        if (*r == '"') break;
        if (*r != '\\') dec_fail(d, r, "control character in a string");
        if (r + 1 >= e) dec_fail(d, p, "unterminated string");
        char c = r[1];
        const char *esc = r;
        r += 2;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            luaL_addchar(&b, c);
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u': {
            unsigned cp = 0, lo = 0;
            if (hex4(r, e, &cp)) dec_fail(d, esc, "invalid \\u escape");
            r += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) dec_fail(d, esc, "lone surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (e - r < 6 || r[0] != '\\' || r[1] != 'u' || hex4(r + 2, e, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    dec_fail(d, esc, "lone surrogate in a \\u escape");
                r += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            add_utf8(&b, cp);
            break;
        }
        default:
            dec_fail(d, esc, "invalid escape in a string");
        }
    }
    luaL_pushresult(&b);
    return r + 1;
}

static const char *dec_literal(struct dec *d, const char *p, const char *lit, size_t n)
{
    if ((size_t)(d->e - p) < n || memcmp(p, lit, n) != 0) dec_fail(d, p, "invalid JSON");
    return p + n;
}

/* Pushes the value of node j, whose text starts at p (whitespace allowed); returns its end. */
static const char *dec_value(struct dec *d, const cJSON *j, const char *p)
{
    lua_State *L = d->L;
    p = skip_ws(p, d->e);
    if (p >= d->e) dec_fail(d, p, "unexpected end of text");
    luaL_checkstack(L, 6, "json.decode");
    switch (j->type & 0xFF) {
    case cJSON_NULL:
        lua_pushvalue(L, d->null_idx);
        return dec_literal(d, p, "null", 4);
    case cJSON_False:
        lua_pushboolean(L, 0);
        return dec_literal(d, p, "false", 5);
    case cJSON_True:
        lua_pushboolean(L, 1);
        return dec_literal(d, p, "true", 4);
    case cJSON_Number:
        return dec_number(d, p);
    case cJSON_String:
        if (*p != '"') dec_fail(d, p, "invalid JSON");
        return dec_string(d, p);
    case cJSON_Array: {
        if (*p != '[') dec_fail(d, p, "invalid JSON");
        p++;
        int n = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            n++;
        lua_createtable(L, n, 0);
        lua_pushvalue(L, d->arr_idx);
        lua_setmetatable(L, -2);
        lua_Integer i = 0;
        for (const cJSON *c = j->child; c; c = c->next) {
            if (i) p = expect(d, p, ',', "expected ','");
            p = dec_value(d, c, p);
            lua_rawseti(L, -2, ++i);
        }
        return expect(d, p, ']', "expected ']'");
    }
    case cJSON_Object: {
        if (*p != '{') dec_fail(d, p, "invalid JSON");
        p++;
        int n = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            n++;
        lua_createtable(L, 0, n);
        lua_pushvalue(L, d->obj_idx);
        lua_setmetatable(L, -2);
        int first = 1;
        for (const cJSON *c = j->child; c; c = c->next) {
            if (!first) p = expect(d, p, ',', "expected ','");
            first = 0;
            p = skip_ws(p, d->e);
            if (p >= d->e || *p != '"') dec_fail(d, p, "expected a string key");
            p = dec_string(d, p);
            p = expect(d, p, ':', "expected ':'");
            p = dec_value(d, c, p);
            lua_rawset(L, -3); /* a repeated key: the last one wins */
        }
        return expect(d, p, '}', "expected '}'");
    }
    default:
        return dec_fail(d, p, "invalid JSON"), p;
    }
}

int hk_json_push_text(lua_State *L, const char *json, size_t n)
{
    if (!json) json = "";
    if (n > HK_JSON_MAX_TEXT)
        luaL_error(L, "json.decode: text too long (%I bytes, at most %I)", (lua_Integer)n,
                   (lua_Integer)HK_JSON_MAX_TEXT);
    need_room(L, n);
    hk_charge(L, n / 16 + 1); /* the scan and the parse */
    luaL_checkstack(L, 8, "json.decode");
    int base = lua_gettop(L);
    push_marks(L);
    struct dec d = {L, json, json + n, base + 1, base + 2, base + 3};
    size_t values = dec_scan(&d);
    hk_charge(L, values);
    need_room(L, values * NODE_BYTES + n); /* values <= n + 1: no overflow */

    cJSON **tree = push_box(L, sizeof(cJSON *), ST_TREE); /* base + 4 */
    const char *end = NULL;
    *tree = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!*tree) {
        if (!end || end < json || end > json + n) end = json;
        if (skip_ws(json, json + n) == json + n) dec_fail(&d, json + n, "no value");
        dec_fail(&d, end, "invalid JSON");
    }
    const char *p = dec_value(&d, *tree, json);
    p = skip_ws(p, d.e);
    if (p != d.e) dec_fail(&d, p, "unexpected text after the value");
    lua_closeslot(L, base + 4); /* frees the tree */
    lua_copy(L, -1, base + 1);
    lua_settop(L, base + 1);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 */
#define PATH_CAP 256

struct comp {
    const char *key; /* object key (anchored while in use), NULL for an array index */
    size_t klen;
    lua_Integer index;
};

struct enc {
    lua_State *L;
    struct trl_buf *b; /* the output, in a to-be-closed box */
    int null_idx;      /* stack index of the null sentinel */
    int arr_idx;       /* of the array metatable */
    int obj_idx;       /* of the object metatable */
    size_t bytes;      /* output bytes not charged yet */
    uint64_t units;    /* values not charged yet */
    int ncomp;         /* path components in use */
    int ntab;          /* tables being encoded (nesting) */
    struct comp comp[HK_JSON_MAX_DEPTH + 1];
    const void *tab[HK_JSON_MAX_DEPTH + 1];
    char path[PATH_CAP]; /* the path of an error (kept off the C stack of the recursion) */
};

static void enc_charge(struct enc *e)
{
    uint64_t u = e->units + e->bytes / 16;
    if (!u) return;
    e->units = 0;
    e->bytes %= 16;
    hk_charge(e->L, u);
}

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || n > 40) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* One path component ("[3]", ".name", "[\"a b\"]") into out (size >= 80). */
static void comp_str(const struct comp *c, char *out, size_t cap)
{
    if (!c->key) {
        snprintf(out, cap, "[" LUA_INTEGER_FMT "]", (LUAI_UACINT)c->index);
        return;
    }
    if (is_ident(c->key, c->klen)) {
        snprintf(out, cap, ".%.*s", (int)c->klen, c->key);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i = 0;
    out[n++] = '[';
    out[n++] = '"';
    while (i < c->klen && n < 48) {
        unsigned char ch = (unsigned char)c->key[i];
        if (ch < 0x20) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
            i++;
        } else if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
            i++;
        } else {
            size_t l = utf8_seq((const unsigned char *)c->key + i, c->klen - i);
            if (!l) l = 1; /* keys in a path were checked; stay safe anyway */
            memcpy(out + n, c->key + i, l);
            n += l;
            i += l;
        }
    }
    if (i < c->klen) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '"';
    out[n++] = ']';
    out[n] = 0;
}

/* The path of the value being encoded ("$.items[3]"), long paths keep their head and tail. */
static void path_str(const struct enc *e, char *out, size_t cap)
{
    char part[80];
    size_t n = 0, keep_head = 60, keep_tail = 140;
    out[n++] = '$';
    out[n] = 0;
    int k = 0;
    for (; k < e->ncomp; k++) {
        comp_str(&e->comp[k], part, sizeof(part));
        size_t pl = strlen(part);
        if (n + pl > keep_head) break;
        memcpy(out + n, part, pl + 1);
        n += pl;
    }
    if (k == e->ncomp) return;
    /* the tail: as many last components as fit */
    int first = e->ncomp;
    size_t tail = 0;
    while (first > k) {
        comp_str(&e->comp[first - 1], part, sizeof(part));
        size_t pl = strlen(part);
        if (tail + pl > keep_tail) break;
        tail += pl;
        first--;
    }
    if (n + 3 + tail + 1 > cap) return;
    if (first > k) {
        memcpy(out + n, "...", 4);
        n += 3;
    }
    for (int i = first; i < e->ncomp; i++) {
        comp_str(&e->comp[i], part, sizeof(part));
        size_t pl = strlen(part);
        memcpy(out + n, part, pl + 1);
        n += pl;
    }
}

/* Room for k more output bytes; returns where they go (the caller adds k to the length). */
static char *reserve(struct enc *e, size_t k)
{
    struct trl_buf *b = e->b;
    e->bytes += k;
    if (e->bytes >= 16 * CHARGE_BATCH) enc_charge(e);
    if (b->cap - b->len < k + 1) {
        size_t need = b->len + k + 1;
        if (need < b->len) hk_stop_raise(e->L, HK_STOP_MEMORY);
        need_room(e->L, need);
        if (trl_buf_reserve(b, k)) hk_stop_raise(e->L, HK_STOP_MEMORY);
    }
    return b->data + b->len;
}

static void out_add(struct enc *e, const char *s, size_t n)
{
    memcpy(reserve(e, n), s, n);
    e->b->len += n;
}

static void out_char(struct enc *e, char c)
{
    *reserve(e, 1) = c;
    e->b->len++;
}

static void enc_string(struct enc *e, const char *s, size_t n, int is_key)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t extra = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t l = utf8_seq(u + i, n - i);
            if (!l) {
                path_str(e, e->path, sizeof(e->path));
                if (is_key)
                    luaL_error(e->L,
                               "json.encode: a key of the table at %s is not valid UTF-8 "
                               "(byte offset %I)",
                               e->path, (lua_Integer)i);
                luaL_error(e->L, "json.encode: string at %s is not valid UTF-8 (byte offset %I)",
                           e->path, (lua_Integer)i);
            }
            i += l;
            continue;
        }
        if (c < 0x20)
            extra += (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') ? 1 : 5;
        else if (c == '"' || c == '\\')
            extra++;
        i++;
    }
    if (n > SIZE_MAX / 8) hk_stop_raise(e->L, HK_STOP_MEMORY);
    size_t total = n + extra + 2;
    char *p = reserve(e, total);
    *p++ = '"';
    if (!extra) {
        memcpy(p, s, n);
        p += n;
    } else {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
            unsigned char c = u[i];
            if (c >= 0x20 && c != '"' && c != '\\') {
                *p++ = (char)c;
                continue;
            }
            *p++ = '\\';
            switch (c) {
            case '"':
            case '\\':
                *p++ = (char)c;
                break;
            case '\b':
                *p++ = 'b';
                break;
            case '\f':
                *p++ = 'f';
                break;
            case '\n':
                *p++ = 'n';
                break;
            case '\r':
                *p++ = 'r';
                break;
            case '\t':
                *p++ = 't';
                break;
            default:
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
            }
        }
    }
    *p = '"';
    e->b->len += total;
}

/* Writes a float in the shortest of %.15g, %.16g, %.17g that reads back to the same double, with
 * ".0" added when it would read as an integer. */
static void enc_float(struct enc *e, lua_Number v)
{
    if (isnan(v) || isinf(v)) {
        path_str(e, e->path, sizeof(e->path));
        luaL_error(e->L, "json.encode: cannot encode %s at %s",
                   isnan(v) ? "NaN"
                   : v > 0  ? "inf"
                            : "-inf",
                   e->path);
    }
    char buf[48];
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(buf, sizeof(buf) - 3, "%.*g", prec, (double)v);
        if (prec == 17 || strtod(buf, NULL) == (double)v) break;
    }
    int integral = 1;
    for (int i = 0; i < len; i++) {
        char c = buf[i];
        if (c == 'e')
            integral = 0;
        else if (!(c >= '0' && c <= '9') && c != '-' && c != '+') {
            buf[i] = '.'; /* the decimal point, whatever the locale */
            integral = 0;
        }
    }
    if (integral) {
        buf[len++] = '.';
        buf[len++] = '0';
    }
    out_add(e, buf, (size_t)len);
}

static void enc_value(struct enc *e, int idx);

struct skey {
    const char *s;
    size_t n;
    lua_Integer at; /* its stack slot, or its index in the anchor table */
};

/* Keys of an object kept in stack slots (more: in a table). */
#define SMALL_KEYS 16

static int skey_cmp(const void *a, const void *b)
{
    const struct skey *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->s, y->s, m) : 0;
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

static const char *key_kind(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) return "float";
    return luaL_typename(L, idx);
}

static void enc_table(struct enc *e, int t)
{
    lua_State *L = e->L;
    if (e->ntab >= HK_JSON_MAX_DEPTH) {
        path_str(e, e->path, sizeof(e->path));
        luaL_error(L, "json.encode: table at %s is nested deeper than 128 arrays and objects",
                   e->path);
    }
    const void *self = lua_topointer(L, t);
    for (int i = 0; i < e->ntab; i++) {
        if (e->tab[i] == self) {
            path_str(e, e->path, sizeof(e->path));
            luaL_error(L, "json.encode: cycle at %s (a table that contains itself)", e->path);
        }
    }
    int mark = 0; /* 1: decoded array, 2: decoded object */
    if (lua_getmetatable(L, t)) {
        if (lua_rawequal(L, -1, e->arr_idx))
            mark = 1;
        else if (lua_rawequal(L, -1, e->obj_idx))
            mark = 2;
        lua_pop(L, 1);
    }

    /* Pass 1: what the keys are; the first SMALL_KEYS string keys are kept in stack slots. */
    luaL_checkstack(L, SMALL_KEYS + 8, "json.encode");
    int kb = lua_gettop(L) + 1;
    lua_settop(L, kb + SMALL_KEYS - 1);
    size_t nstr = 0, nint = 0;
    lua_Integer imin = 0, imax = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING) {
            if (nstr < SMALL_KEYS) {
                lua_pushvalue(L, -2);
                lua_replace(L, kb + (int)nstr);
            }
            nstr++;
        } else if (kt == LUA_TNUMBER && lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (!nint || k < imin) imin = k;
            if (!nint || k > imax) imax = k;
            nint++;
        } else {
            path_str(e, e->path, sizeof(e->path));
            luaL_error(L, "json.encode: table at %s has a %s key (object keys must be strings)",
                       e->path, key_kind(L, -2));
        }
        lua_pop(L, 1);
    }
    if (nint && (nstr || mark == 2)) {
        path_str(e, e->path, sizeof(e->path));
        if (nstr)
            luaL_error(L, "json.encode: table at %s has mixed keys (integers and strings)",
                       e->path);
        luaL_error(L, "json.encode: table at %s is a JSON object but has integer key %I", e->path,
                   imin);
    }
    if (nstr && mark == 1) {
        path_str(e, e->path, sizeof(e->path));
        luaL_error(L, "json.encode: table at %s is a JSON array but has string keys", e->path);
    }
    if (nint && imin < 1) {
        path_str(e, e->path, sizeof(e->path));
        luaL_error(L, "json.encode: table at %s has integer key %I (array indexes start at 1)",
                   e->path, imin);
    }
    if (nint && (lua_Unsigned)imax != nint) {
        path_str(e, e->path, sizeof(e->path));
        luaL_error(L,
                   "json.encode: table at %s is a sparse array (%I elements, largest index %I; "
                   "use json.null for holes)",
                   e->path, (lua_Integer)nint, imax);
    }

    e->tab[e->ntab++] = self;
    if (nint || (mark == 1 && !nstr)) { /* an array */
        lua_settop(L, kb - 1);
        out_char(e, '[');
        for (lua_Integer i = 1; i <= (lua_Integer)nint; i++) {
            if (i > 1) out_char(e, ',');
            lua_rawgeti(L, t, i);
            e->comp[e->ncomp++] = (struct comp){NULL, 0, i};
            enc_value(e, lua_gettop(L));
            e->ncomp--;
            lua_pop(L, 1);
        }
        out_char(e, ']');
        e->ntab--;
        return;
    }

    if (!nstr) { /* an empty table that is not a decoded array */
        out_add(e, "{}", 2);
        lua_settop(L, kb - 1);
        e->ntab--;
        return;
    }
    /* An object. Its keys are anchored (in the stack slots, or for a large object in a table
     * filled by pass 2) while a C array points at them and is sorted bytewise. */
    struct skey small[SMALL_KEYS], *keys = small;
    int anchor = 0;
    lua_Integer m = 0;
    if (nstr <= SMALL_KEYS) {
        for (; m < (lua_Integer)nstr; m++) {
            keys[m].s = lua_tolstring(L, kb + (int)m, &keys[m].n);
            keys[m].at = kb + m;
        }
    } else {
        lua_createtable(L, (int)(nstr < INT32_MAX ? nstr : INT32_MAX), 0);
        anchor = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, anchor, ++m);
            }
        }
        keys = lua_newuserdatauv(L, (size_t)m * sizeof(struct skey) + 1, 0);
        for (lua_Integer i = 0; i < m; i++) {
            lua_rawgeti(L, anchor, i + 1);
            keys[i].s = lua_tolstring(L, -1, &keys[i].n);
            keys[i].at = i + 1;
            lua_pop(L, 1);
        }
    }
    if (m > 1) {
        uint64_t logm = 0;
        for (uint64_t v = (uint64_t)m; v; v >>= 1)
            logm++;
        e->units += (uint64_t)m * logm / 8;
        enc_charge(e);
        qsort(keys, (size_t)m, sizeof(struct skey), skey_cmp);
    }
    out_char(e, '{');
    int first = 1;
    for (lua_Integer i = 0; i < m; i++) {
        if (anchor)
            lua_rawgeti(L, anchor, keys[i].at);
        else
            lua_pushvalue(L, (int)keys[i].at);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) { /* gone from a weak table meanwhile */
            lua_pop(L, 1);
            continue;
        }
        if (!first) out_char(e, ',');
        first = 0;
        enc_string(e, keys[i].s, keys[i].n, 1);
        out_char(e, ':');
        e->comp[e->ncomp++] = (struct comp){keys[i].s, keys[i].n, 0};
        enc_value(e, lua_gettop(L));
        e->ncomp--;
        lua_pop(L, 1);
    }
    out_char(e, '}');
    lua_settop(L, kb - 1);
    e->ntab--;
}

static void enc_value(struct enc *e, int idx)
{
    lua_State *L = e->L;
    if (++e->units >= CHARGE_BATCH) enc_charge(e);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        out_add(e, "null", 4);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            out_add(e, "true", 4);
        else
            out_add(e, "false", 5);
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char buf[32];
            int n = snprintf(buf, sizeof(buf), LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            out_add(e, buf, (size_t)n);
        } else {
            enc_float(e, lua_tonumber(L, idx));
        }
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        enc_string(e, s, n, 0);
        return;
    }
    case LUA_TTABLE:
        enc_table(e, idx);
        return;
    case LUA_TUSERDATA:
        if (lua_rawequal(L, idx, e->null_idx)) {
            out_add(e, "null", 4);
            return;
        }
        break;
    default:
        break;
    }
    path_str(e, e->path, sizeof(e->path));
    luaL_error(L, "json.encode: cannot encode a %s at %s", luaL_typename(L, idx), e->path);
}

/* Encodes the value at idx into a new box left at the top of the stack (above the three marks,
 * at base + 4); returns the box's buffer. */
static struct trl_buf *encode_boxed(lua_State *L, int idx, int base, struct enc *e)
{
    luaL_checkstack(L, 8, "json.encode");
    push_marks(L);
    struct trl_buf *b = push_box(L, sizeof(struct trl_buf), ST_OUT);
    trl_buf_init(b);
    memset(e, 0, sizeof(*e));
    e->L = L;
    e->b = b;
    e->null_idx = base + 1;
    e->arr_idx = base + 2;
    e->obj_idx = base + 3;
    enc_value(e, idx);
    enc_charge(e);
    b->data[b->len] = 0;
    return b;
}

int hk_json_encode_value(lua_State *L, int idx, struct trl_buf *out)
{
    idx = lua_absindex(L, idx);
    int base = lua_gettop(L);
    struct enc e;
    struct trl_buf *b = encode_boxed(L, idx, base, &e);
    if (out->len == 0) { /* take the bytes over */
        trl_buf_free(out);
        *out = *b;
        trl_buf_init(b);
    } else if (trl_buf_add(out, b->data, b->len)) {
        hk_stop_raise(L, HK_STOP_MEMORY);
    }
    lua_closeslot(L, base + 4);
    lua_settop(L, base);
    return 0;
}

/* json.encode(value) */
static int l_encode(lua_State *L)
{
    lua_settop(L, 1);
    struct enc e;
    struct trl_buf *b = encode_boxed(L, 1, 1, &e);
    lua_pushlstring(L, b->data, b->len);
    lua_closeslot(L, 5);
    return 1;
}

/* json.decode(text) */
static int l_decode(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "json.decode: expected a string, got %s", luaL_typename(L, 1));
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    lua_settop(L, 1);
    return hk_json_push_text(L, s, n);
}

void hk_json_push_lib(lua_State *L)
{
    luaL_checkstack(L, 4, "json");
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "decode");
    hk_json_push_null(L);
    lua_setfield(L, -2, "null");
}
