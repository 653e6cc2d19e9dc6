/*
 * limits.c — the three limits of a call and the C functions that must not run long.
 *
 * Instructions: a count hook fires every HK_PERIOD VM instructions of the main thread and every
 * HK_CO_PERIOD of each coroutine, adds the period to the call's count, and reads the monotonic
 * clock for the deadline. When a limit is hit the stop becomes sticky: the hook is re-armed to fire
 * on every instruction and raises each time, C wrappers raise at once, and the allocator allows
 * only HK_STOP_GRACE more bytes (for raising and reporting), so no pcall, xpcall, coroutine or
 * __close handler gets to run a second instruction.
 *
 * Memory: the state's allocator counts every byte. Growth beyond the call's cap is refused; Lua
 * then runs an emergency collection and retries, and a second refusal in a row makes the stop
 * final. The allocator also reads the clock every HK_ALLOC_CLOCK_BYTES allocated, which bounds
 * VM instructions that do a lot of work (concatenating long strings) between two hook calls.
 *
 * C functions run without the count hook, so the ones whose work is not bounded by the memory
 * cap either charge their work to the instruction budget before doing it (table.move, insert,
 * remove, sort, concat, unpack; utf8.len, offset, codepoint; string.pack, unpack, packsize;
 * tonumber of long strings) or are rewritten (string.rep checks its result against the memory
 * left before allocating, and fills it by doubling copies). Pattern matching is in pattern.c.
 */
#include "hooks/hooks_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t hk_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *realloc_counted(struct trl_hooks_vm *vm, void *ptr, size_t old, size_t nsize)
{
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    vm->used = vm->used - old + nsize;
    return p;
}

static void set_stop(struct hk_inv *iv, int kind)
{
    if (iv->stop) return;
    iv->stop = kind;
    iv->grace = HK_STOP_GRACE;
}

void *hk_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct trl_hooks_vm *vm = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        vm->used -= old;
        return NULL;
    }
    struct hk_inv *iv = vm->cur;
    if (iv && nsize > old) {
        size_t grow = nsize - old;
        if (iv->stop) {
            /* Stopped: only what raising and reporting the stop needs (stack, CallInfo). */
            if (grow > iv->grace) return NULL;
            iv->grace -= grow;
            return realloc_counted(vm, ptr, old, nsize);
        }
        if (vm->used + grow > iv->mem_limit || vm->used + grow < vm->used) {
            /* Lua collects and retries once: the second refusal in a row is final. */
            if (++iv->refusals >= 2) set_stop(iv, HK_STOP_MEMORY);
            return NULL;
        }
        iv->refusals = 0;
        iv->unclocked_bytes += grow;
        if (iv->unclocked_bytes >= HK_ALLOC_CLOCK_BYTES) {
            iv->unclocked_bytes = 0;
            if (hk_mono_ns() >= iv->deadline_ns) {
                set_stop(iv, HK_STOP_DEADLINE);
                return NULL;
            }
        }
    }
    return realloc_counted(vm, ptr, old, nsize);
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* Count-hook period of a thread: HK_PERIOD for the main thread, HK_CO_PERIOD for coroutines
 * (what a coroutine runs after its last hook call is not counted when it yields, so its period
 * is short), 1 once stopped, never more than the budget left. */
static int period_for(const struct hk_inv *iv, int period)
{
    if (iv->stop || iv->used >= iv->budget) return 1;
    uint64_t left = iv->budget - iv->used;
    return left < (uint64_t)period ? (int)left : period;
}

int hk_stop_raise(lua_State *L, int kind)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    if (vm->cur) set_stop(vm->cur, kind);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    /* The value is made at start-up: raising allocates nothing. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_stop[kind]);
    return lua_error(L);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct trl_hooks_vm *vm = hk_vm(L);
    struct hk_inv *iv = vm->cur;
    if (!iv) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    if (!iv->stop) {
        iv->used += (uint64_t)lua_gethookcount(L);
        if (iv->used >= iv->budget)
            set_stop(iv, HK_STOP_INSTR);
        else if (hk_mono_ns() >= iv->deadline_ns)
            set_stop(iv, HK_STOP_DEADLINE);
        else {
            int next = period_for(iv, L == vm->L ? HK_PERIOD : HK_CO_PERIOD);
            if (next != lua_gethookcount(L)) lua_sethook(L, count_hook, LUA_MASKCOUNT, next);
            return;
        }
    }
    hk_stop_raise(L, iv->stop);
}

void hk_limits_begin(struct trl_hooks_vm *vm, struct hk_inv *iv, const struct trl_hooks_limits *lim,
                     const char *app)
{
    struct hk_inv *outer = vm->cur;
    memset(iv, 0, sizeof(*iv));
    iv->outer = outer;
    iv->app = app;
    iv->depth = outer ? outer->depth + 1 : 0;
    if (lim) iv->lim = *lim;
    if (!iv->lim.instructions) iv->lim.instructions = TRL_HOOKS_DEFAULT_INSTRUCTIONS;
    if (!iv->lim.memory) iv->lim.memory = TRL_HOOKS_DEFAULT_MEMORY;
    if (!iv->lim.time_ms) iv->lim.time_ms = TRL_HOOKS_DEFAULT_TIME_MS;
    int64_t now = hk_mono_ns();
    iv->start_ns = now;
    iv->deadline_ns = now + (int64_t)iv->lim.time_ms * 1000000;
    iv->budget = iv->lim.instructions;
    iv->mem_limit = vm->used + iv->lim.memory;
    if (iv->mem_limit < vm->used) iv->mem_limit = SIZE_MAX;
    if (outer) {
        /* An inner call lives within what is left of the outer one. */
        uint64_t left = outer->used >= outer->budget ? 0 : outer->budget - outer->used;
        if (left < iv->budget) iv->budget = left;
        if (outer->deadline_ns < iv->deadline_ns) iv->deadline_ns = outer->deadline_ns;
        if (outer->mem_limit < iv->mem_limit) iv->mem_limit = outer->mem_limit;
        if (outer->stop) set_stop(iv, outer->stop);
        if (iv->budget == 0) set_stop(iv, HK_STOP_INSTR);
    } else {
        vm->close_depth = 0;
    }
    vm->cur = iv;
    lua_sethook(vm->L, count_hook, LUA_MASKCOUNT, period_for(iv, HK_PERIOD));
}

void hk_limits_end(struct trl_hooks_vm *vm, struct hk_inv *iv)
{
    struct hk_inv *outer = iv->outer;
    vm->cur = outer;
    if (!outer) {
        lua_sethook(vm->L, NULL, 0, 0);
        return;
    }
    outer->used += iv->used;
    if (outer->used < iv->used) outer->used = UINT64_MAX;
    /* An inner stop ends the outer call too when it was the outer call's limit. */
    if (outer->used >= outer->budget)
        set_stop(outer, HK_STOP_INSTR);
    else if (hk_mono_ns() >= outer->deadline_ns)
        set_stop(outer, HK_STOP_DEADLINE);
    else if (iv->stop == HK_STOP_MEMORY && iv->mem_limit == outer->mem_limit)
        set_stop(outer, HK_STOP_MEMORY);
    lua_sethook(vm->L, count_hook, LUA_MASKCOUNT, period_for(outer, HK_PERIOD));
}

void hk_arm_coroutine(lua_State *L, lua_State *co)
{
    struct hk_inv *iv = hk_vm(L)->cur;
    if (iv) lua_sethook(co, count_hook, LUA_MASKCOUNT, period_for(iv, HK_CO_PERIOD));
}

void hk_charge(lua_State *L, uint64_t units)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    struct hk_inv *iv = vm->cur;
    if (!iv) return;
    if (iv->stop) hk_stop_raise(L, iv->stop);
    iv->used += units;
    if (iv->used < units || iv->used >= iv->budget) hk_stop_raise(L, HK_STOP_INSTR);
    iv->unclocked += units;
    if (iv->unclocked >= HK_PERIOD) {
        iv->unclocked = 0;
        if (hk_mono_ns() >= iv->deadline_ns) hk_stop_raise(L, HK_STOP_DEADLINE);
    }
}

size_t hk_mem_room(lua_State *L)
{
    struct trl_hooks_vm *vm = hk_vm(L);
    if (!vm->cur) return SIZE_MAX;
    return vm->cur->mem_limit > vm->used ? vm->cur->mem_limit - vm->used : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Wrappers. Each charges its work, then calls the original function (upvalue 1) with the same
 * arguments.
 */
static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Elements in [i, j] (0 when empty), saturating. */
static uint64_t span(lua_Integer i, lua_Integer j)
{
    if (j < i) return 0;
    uint64_t n = (uint64_t)j - (uint64_t)i;
    return n == UINT64_MAX ? n : n + 1;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (a && b > UINT64_MAX / a) return UINT64_MAX;
    return a * b;
}

static int lb_table_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    hk_charge(L, span(f, e));
    return call_original(L);
}

static int lb_table_concat(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 4);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
    lua_pushinteger(L, j); /* the length is taken once, here */
    lua_replace(L, 4);
    hk_charge(L, span(i, j));
    return call_original(L);
}

static int lb_table_unpack(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 3);
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
    lua_pushinteger(L, j);
    lua_replace(L, 3);
    hk_charge(L, span(i, j));
    return call_original(L);
}

static int lb_table_insert(lua_State *L)
{
    luaL_checkany(L, 1);
    if (lua_gettop(L) == 3) {
        /* elements from pos to e move up by one; + wraps as in Lua's own table.insert */
        lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u);
        lua_Integer pos = luaL_checkinteger(L, 2);
        if (pos >= 1 && pos <= e) hk_charge(L, span(pos, e));
    }
    return call_original(L);
}

static int lb_table_remove(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos >= 1 && pos <= size) hk_charge(L, span(pos, size));
    return call_original(L);
}

static int lb_table_sort(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_Integer n = luaL_len(L, 1);
    if (n > 1) {
        uint64_t logn = 0;
        for (uint64_t v = (uint64_t)n; v; v >>= 1)
            logn++;
        hk_charge(L, sat_mul((uint64_t)n, logn));
    }
    return call_original(L);
}

/* Functions that scan a string without allocating: one unit per 64 bytes. */
static int lb_scan_charged(lua_State *L)
{
    size_t n = 0;
    if (lua_type(L, 1) == LUA_TSTRING) lua_tolstring(L, 1, &n);
    if (n >= 64) hk_charge(L, n >> 6);
    return call_original(L);
}

static int lb_tonumber(lua_State *L)
{
    return lb_scan_charged(L);
}

/* string.pack, packsize: one unit per format byte. string.unpack: plus the data scanned. */
static int lb_pack_charged(lua_State *L)
{
    size_t nf = 0, nd = 0;
    if (lua_type(L, 1) == LUA_TSTRING) lua_tolstring(L, 1, &nf);
    if (lua_type(L, 2) == LUA_TSTRING) lua_tolstring(L, 2, &nd);
    hk_charge(L, nf + (nd >> 6));
    return call_original(L);
}

/* string.rep: refuses a result larger than the memory left before allocating it, and copies by
 * doubling so that even a million one-byte copies cost a few memcpy calls. */
static int lb_str_rep(lua_State *L)
{
    size_t l = 0, lsep = 0;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t unit = l + lsep;
    if (unit < l || (uint64_t)n > (uint64_t)(SIZE_MAX / unit))
        return hk_stop_raise(L, HK_STOP_MEMORY);
    size_t total = (size_t)n * unit - lsep;
    if (total >= hk_mem_room(L)) return hk_stop_raise(L, HK_STOP_MEMORY);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    memcpy(p, s, l);
    size_t rest = total - l; /* (n - 1) blocks of sep followed by s */
    if (rest) {
        char *q = p + l;
        memcpy(q, sep, lsep);
        memcpy(q + lsep, s, l);
        size_t filled = unit;
        while (filled < rest) {
            size_t chunk = filled < rest - filled ? filled : rest - filled;
            memcpy(q + filled, q, chunk);
            filled += chunk;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

void hk_wrap(lua_State *L, int g0, int idx, const char *lib, const char *name, lua_CFunction fn)
{
    char key[48];
    snprintf(key, sizeof(key), "%s.%s", lib, name);
    lua_getfield(L, idx, name);
    lua_pushvalue(L, -1);
    lua_setfield(L, g0, key); /* error messages of the original still name it */
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, idx, name);
}

static void replace(lua_State *L, int idx, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_setfield(L, idx, name);
}

void hk_push_tonumber(lua_State *L, int g0)
{
    lua_getfield(L, g0, "tonumber");
    lua_pushcclosure(L, lb_tonumber, 1);
}

void hk_limits_wrap(lua_State *L, int g0, int string, int table, int utf8)
{
    replace(L, string, "rep", lb_str_rep);
    replace(L, string, "find", hk_str_find);
    replace(L, string, "match", hk_str_match);
    replace(L, string, "gmatch", hk_str_gmatch);
    replace(L, string, "gsub", hk_str_gsub);
    hk_wrap(L, g0, string, "string", "pack", lb_pack_charged);
    hk_wrap(L, g0, string, "string", "packsize", lb_pack_charged);
    hk_wrap(L, g0, string, "string", "unpack", lb_pack_charged);

    hk_wrap(L, g0, table, "table", "move", lb_table_move);
    hk_wrap(L, g0, table, "table", "concat", lb_table_concat);
    hk_wrap(L, g0, table, "table", "unpack", lb_table_unpack);
    hk_wrap(L, g0, table, "table", "insert", lb_table_insert);
    hk_wrap(L, g0, table, "table", "remove", lb_table_remove);
    hk_wrap(L, g0, table, "table", "sort", lb_table_sort);

    hk_wrap(L, g0, utf8, "utf8", "len", lb_scan_charged);
    hk_wrap(L, g0, utf8, "utf8", "offset", lb_scan_charged);
    hk_wrap(L, g0, utf8, "utf8", "codepoint", lb_scan_charged);
}
