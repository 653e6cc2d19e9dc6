/*
 * pattern.c — string.find, string.match, string.gmatch and string.gsub for the sandbox.
 *
 * Lua's own matcher backtracks without bound: ".-.-.-b" against 400 characters takes seconds
 * inside one C call, where the count hook never fires. These functions implement the same
 * pattern language (Lua 5.4 manual §6.4.1: classes, sets, quantifiers * + - ?, captures, %b, %f,
 * back references, anchors) with a step counter: every step of the matcher (an attempt at a
 * pattern item, one character of an expansion, of %b or of a back reference) counts, and every
 * PM_BATCH steps the work is charged to the call's instruction budget at one unit per
 * PM_STEPS_PER_UNIT steps (which also reads the clock). So a pattern may be as complex as the
 * budget allows and no more; nothing is refused up front for its shape.
 *
 * Also: the subject is at most TRL_HOOKS_MAX_SUBJECT bytes (longer is a runtime error), plain
 * searches use memmem (linear), and character classes are ASCII whatever the locale.
 * Differences from stock Lua are only in those limits and in the messages' function names.
 */
#include "hooks/hooks_int.h"

#include <string.h>

#define PM_MAXCAPTURES    32
#define PM_MAXDEPTH       200 /* recursion of the matcher ("pattern too complex") */
#define PM_BATCH          1024
#define PM_STEPS_PER_UNIT 4
#define CAP_UNFINISHED    (-1)
#define CAP_POSITION      (-2)
#define SPECIALS          "^$*+?.([%-"

struct pm {
    const char *src_init; /* subject start */
    const char *src_end;  /* subject end */
    const char *p_end;    /* pattern end */
    lua_State *L;
    int depth;    /* recursion budget left */
    int level;    /* captures open or closed so far */
    size_t steps; /* steps since the last charge */
    struct {
        const char *init;
        ptrdiff_t len; /* length, CAP_UNFINISHED or CAP_POSITION */
    } capture[PM_MAXCAPTURES];
};

static void pm_charge(struct pm *ms)
{
    size_t units = ms->steps / PM_STEPS_PER_UNIT;
    ms->steps %= PM_STEPS_PER_UNIT;
    if (units) hk_charge(ms->L, units);
}

static inline void pm_step(struct pm *ms, size_t n)
{
    ms->steps += n;
    if (ms->steps >= PM_BATCH) pm_charge(ms);
}

/* Pattern byte at p, or 0 at the end. */
static inline unsigned char pat(const struct pm *ms, const char *p)
{
    return p < ms->p_end ? (unsigned char)*p : 0;
}

static int is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}
static int is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}
static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int is_alpha(int c)
{
    return is_lower(c) || is_upper(c);
}
static int is_space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}
static int is_cntrl(int c)
{
    return c < 32 || c == 127;
}
static int is_graph(int c)
{
    return c > 32 && c < 127;
}
static int is_punct(int c)
{
    return is_graph(c) && !is_alpha(c) && !is_digit(c);
}
static int is_xdigit(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Does c belong to class %cl? */
static int class_has(int c, int cl)
{
    int res;
    switch (cl | 0x20) {
    case 'a':
        res = is_alpha(c);
        break;
    case 'c':
        res = is_cntrl(c);
        break;
    case 'd':
        res = is_digit(c);
        break;
    case 'g':
        res = is_graph(c);
        break;
    case 'l':
        res = is_lower(c);
        break;
    case 'p':
        res = is_punct(c);
        break;
    case 's':
        res = is_space(c);
        break;
    case 'u':
        res = is_upper(c);
        break;
    case 'w':
        res = is_alpha(c) || is_digit(c);
        break;
    case 'x':
        res = is_xdigit(c);
        break;
    default:
        return cl == c;
    }
    return is_upper(cl) ? !res : res;
}

/* End of the single-character class starting at p (just past it). */
static const char *class_end(struct pm *ms, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (pat(ms, p) == '^') p++;
        do { /* the first character of a set is taken literally, even ']' */
            if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < ms->p_end) p++;
        } while (pat(ms, p) != ']');
        return p + 1;
    }
    return p;
}

/* Does c match the set [p, ec] (p at '[', ec at its ']')? */
static int set_has(int c, const char *p, const char *ec)
{
    int sig = 1;
    if (p[1] == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p)) return sig;
        } else if (p[1] == '-' && p + 2 < ec) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return sig;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

/* Does the subject character at s match the class [p, ep)? */
static int single(struct pm *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match(struct pm *ms, const char *s, const char *p);

static const char *match_balance(struct pm *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    char b = p[0], e = p[1];
    int cont = 1;
    const char *start = s;
    while (++s < ms->src_end) {
        if (*s == e) {
            if (--cont == 0) {
                pm_step(ms, (size_t)(s - start));
                return s + 1;
            }
        } else if (*s == b) {
            cont++;
        }
    }
    pm_step(ms, (size_t)(s - start));
    return NULL;
}

static const char *max_expand(struct pm *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single(ms, s + i, p, ep)) {
        i++;
        pm_step(ms, 1);
    }
    while (i >= 0) { /* try the rest with the longest expansion first */
        const char *res = match(ms, s + i, ep + 1);
        if (res) return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(struct pm *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *res = match(ms, s, ep + 1);
        if (res) return res;
        if (!single(ms, s, p, ep)) return NULL;
        s++;
        pm_step(ms, 1);
    }
}

static const char *start_capture(struct pm *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= PM_MAXCAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = match(ms, s, p);
    if (!res) ms->level--;
    return res;
}

static const char *end_capture(struct pm *ms, const char *s, const char *p)
{
    int l = -1;
    for (int i = ms->level - 1; i >= 0; i--)
        if (ms->capture[i].len == CAP_UNFINISHED) {
            l = i;
            break;
        }
    if (l < 0) luaL_error(ms->L, "invalid pattern capture");
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = match(ms, s, p);
    if (!res) ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static const char *match_capture(struct pm *ms, const char *s, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    if (ms->capture[l].len == CAP_POSITION) return NULL; /* as Lua: never matches */
    size_t len = (size_t)ms->capture[l].len;
    pm_step(ms, len / 16 + 1);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

static const char *match(struct pm *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
    pm_step(ms, 1);
    const char *res = NULL;
    for (;;) {
        if (p >= ms->p_end) {
            res = s;
            break;
        }
        unsigned char c = (unsigned char)*p;
        if (c == '(') {
            if (pat(ms, p + 1) == ')')
                res = start_capture(ms, s, p + 2, CAP_POSITION);
            else
                res = start_capture(ms, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (c == ')') {
            res = end_capture(ms, s, p + 1);
            break;
        }
        if (c == '$' && p + 1 == ms->p_end) {
            res = s == ms->src_end ? s : NULL;
            break;
        }
        if (c == '%' && pat(ms, p + 1) == 'b') {
            s = match_balance(ms, s, p + 2);
            if (!s) break;
            p += 4;
            pm_step(ms, 1);
            continue;
        }
        if (c == '%' && pat(ms, p + 1) == 'f') {
            p += 2;
            if (pat(ms, p) != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(ms, p);
            int prev = s == ms->src_init ? 0 : (unsigned char)s[-1];
            int cur = s < ms->src_end ? (unsigned char)*s : 0;
            if (!set_has(prev, p, ep - 1) && set_has(cur, p, ep - 1)) {
                p = ep;
                pm_step(ms, 1);
                continue;
            }
            break;
        }
        if (c == '%' && is_digit(pat(ms, p + 1))) {
            s = match_capture(ms, s, pat(ms, p + 1));
            if (!s) break;
            p += 2;
            continue;
        }
        const char *ep = class_end(ms, p);
        unsigned char q = pat(ms, ep);
        if (!single(ms, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* the item may match nothing */
                p = ep + 1;
                pm_step(ms, 1);
                continue;
            }
            break;
        }
        if (q == '?') {
            res = match(ms, s + 1, ep + 1);
            if (res) break;
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            res = max_expand(ms, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            res = max_expand(ms, s, p, ep);
            break;
        }
        if (q == '-') {
            res = min_expand(ms, s, p, ep);
            break;
        }
        s++;
        p = ep;
        pm_step(ms, 1);
    }
    ms->depth++;
    return res;
}

/* ---------------------------------------------------------------------------------------------
 * Captures and the Lua functions.
 */
static size_t get_capture(struct pm *ms, int i, const char *s, const char *e, const char **cap)
{
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return (size_t)(e - s);
    }
    ptrdiff_t l = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    return (size_t)l;
}

static void push_capture(struct pm *ms, int i, const char *s, const char *e)
{
    const char *cap;
    size_t l = get_capture(ms, i, s, e, &cap);
    if (l != (size_t)CAP_POSITION) lua_pushlstring(ms->L, cap, l);
}

static int push_captures(struct pm *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(ms, i, s, e);
    return n;
}

static void prep(struct pm *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
}

static void reprep(struct pm *ms)
{
    ms->level = 0;
    ms->depth = PM_MAXDEPTH;
}

/* 5.4's relative initial position: 1-based, negative from the end, clamped at 1. */
static size_t posrelat(lua_Integer pos, size_t len)
{
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static void check_subject(lua_State *L, const char *fname, size_t ls)
{
    if (ls > TRL_HOOKS_MAX_SUBJECT)
        luaL_error(L, "%s: subject too long (%I bytes, at most %d)", fname, (lua_Integer)ls,
                   (int)TRL_HOOKS_MAX_SUBJECT);
}

static int no_specials(const char *p, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (strchr(SPECIALS, p[i]) && p[i]) return 0;
    return 1;
}

static int find_aux(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    check_subject(L, find ? "string.find" : "string.match", ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
        hk_charge(L, ((ls - init) >> 6) + 1);
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (hit) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((hit - s) + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    struct pm ms;
    const char *s1 = s + init;
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    prep(&ms, L, s, ls, p, lp);
    do {
        reprep(&ms);
        const char *e = match(&ms, s1, p);
        if (e) {
            pm_charge(&ms);
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, NULL) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    pm_charge(&ms);
    luaL_pushfail(L);
    return 1;
}

int hk_str_find(lua_State *L)
{
    return find_aux(L, 1);
}

int hk_str_match(lua_State *L)
{
    return find_aux(L, 0);
}

/* State of a gmatch iterator (a userdata without metatable, upvalue 3). */
struct gm_state {
    size_t pos;     /* offset where the next search starts */
    ptrdiff_t last; /* offset of the end of the last match, -1 before the first */
};

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gm_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    struct pm ms;
    prep(&ms, L, s, ls, p, lp);
    for (const char *src = s + gm->pos; src <= ms.src_end; src++) {
        reprep(&ms);
        const char *e = match(&ms, src, p);
        if (e && (gm->last < 0 || e != s + gm->last)) {
            gm->pos = (size_t)(e - s);
            gm->last = e - s;
            pm_charge(&ms);
            return push_captures(&ms, src, e);
        }
    }
    gm->pos = ls + 1;
    pm_charge(&ms);
    return 0;
}

int hk_str_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    check_subject(L, "string.gmatch", ls);
    if (init > ls) init = ls + 1;
    lua_settop(L, 2);
    struct gm_state *gm = lua_newuserdatauv(L, sizeof(*gm), 0);
    gm->pos = init;
    gm->last = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void add_s(struct pm *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    const char *end = news + l;
    pm_step(ms, l / 16 + 1);
    while (news < end) {
        const char *pc = memchr(news, '%', (size_t)(end - news));
        if (!pc) {
            luaL_addlstring(b, news, (size_t)(end - news));
            break;
        }
        luaL_addlstring(b, news, (size_t)(pc - news));
        pc++;
        if (pc >= end || !(*pc == '%' || is_digit((unsigned char)*pc)))
            luaL_error(L, "invalid use of '%%' in replacement string");
        if (*pc == '%') {
            luaL_addchar(b, '%');
        } else if (*pc == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else {
            const char *cap;
            size_t cl = get_capture(ms, *pc - '1', s, e, &cap);
            if (cl == (size_t)CAP_POSITION) {
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            } else {
                luaL_addlstring(b, cap, cl);
            }
        }
        news = pc + 1;
    }
}

/* Adds the replacement of match [s, e) to b; returns whether it changed the subject. */
static int add_value(struct pm *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    if (tr == LUA_TSTRING || tr == LUA_TNUMBER) {
        add_s(ms, b, s, e);
        return 1;
    }
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

int hk_str_gsub(lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = lp > 0 && *p == '^';
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    check_subject(L, "string.gsub", srcl);
    if (anchor) {
        p++;
        lp--;
    }
    struct pm ms;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    prep(&ms, L, src, srcl, p, lp);
    while (n < max_s) {
        reprep(&ms);
        const char *e = match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    pm_charge(&ms);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}
