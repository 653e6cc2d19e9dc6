/*
 * hooks_int.h — what the files of runtime/hooks/ share: the VM and invocation structs, the
 * allocator and count hook of limits.c, the library setup of sandbox.c and the pattern functions
 * of pattern.c. Only runtime/hooks/ includes this header (and with it the Lua headers).
 */
#ifndef TRL_HOOKS_INT_H
#define TRL_HOOKS_INT_H

#include "hooks/hooks.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Which limit stopped a call. */
enum hk_stop { HK_STOP_NONE = 0, HK_STOP_INSTR, HK_STOP_MEMORY, HK_STOP_DEADLINE, HK_STOP_COUNT };

/* Count-hook period: instructions between two checks of the budget and the clock. */
#define HK_PERIOD 1000
/* The same for coroutines (see period_for in limits.c). */
#define HK_CO_PERIOD 100
/* Bytes allocated between two readings of the clock by the allocator. */
#define HK_ALLOC_CLOCK_BYTES (256u << 10)
/* Bytes a stopped call may still allocate, in all, to raise and report the stop. */
#define HK_STOP_GRACE (64u << 10)
/* Nesting of coroutine.close calls allowed (Lua 5.4.4 overflows the C stack without a cap). */
#define HK_MAX_CLOSE_DEPTH 100

/* One call in progress. Lives on the C stack of trl_hooks_call; calls made inside a call stack
 * up through `outer`. */
struct hk_inv {
    struct hk_inv *outer;        /* call this one runs inside, NULL at the top */
    const char *app;             /* app of the running module (borrowed from the caller) */
    int depth;                   /* 0 for a top-level call */
    uint64_t budget;             /* instruction units the call may use */
    uint64_t used;               /* units used so far (count hook and C charges) */
    uint64_t unclocked;          /* units charged by C functions since the clock was last read */
    size_t unclocked_bytes;      /* bytes allocated since the allocator last read the clock */
    int64_t start_ns;            /* monotonic time the call started */
    int64_t deadline_ns;         /* monotonic time it must end by */
    size_t mem_limit;            /* vm->used may not grow beyond this */
    struct trl_hooks_limits lim; /* limits as asked, defaults filled (for messages) */
    int stop;                    /* enum hk_stop once a limit is hit; sticky for the call */
    size_t grace;                /* bytes a stopped call may still allocate (HK_STOP_GRACE) */
    int refusals;                /* memory growth refused in a row (2: the cap is really reached) */
    char where[128];             /* innermost Lua position at the last error reaching the host */
};

/* A compiled module in the VM's cache (open addressing on hash). */
struct hk_module {
    uint64_t hash; /* hash of app and module; 0 marks an empty slot */
    char *app;     /* owned */
    char *module;  /* owned */
    char *version; /* owned */
    int ref;       /* registry reference of the module's factory function */
};

struct trl_hooks_vm {
    lua_State *L;                  /* the state (owned) */
    size_t used;                   /* bytes the state holds */
    struct hk_inv *cur;            /* call in progress, NULL between calls */
    const struct trl_clock *clock; /* wall clock of os.time/os.date (borrowed or own_clock) */
    struct trl_clock own_clock;    /* system clock when the caller gave none */
    trl_hooks_resolve_fn resolve;  /* module resolver of require, NULL when none */
    void *resolve_ud;              /* its argument */
    struct hk_module *mods;        /* owned cache slots */
    size_t capmods;                /* slots (a power of two, or 0) */
    size_t nmods;                  /* used slots */
    int ref_env_mt;                /* registry ref: metatable of run environments */
    int ref_runs;                  /* registry ref: environment and loaded table of each depth */
    int ref_stop[HK_STOP_COUNT];   /* registry refs: the values the limits raise */
    int close_depth;               /* coroutine.close calls in progress */
    /* Recognises an error value the host raised on purpose (top of the stack) and fills d:
     * returns its TRL_E* code, or 0 to report it as a Lua error. Set by the engine. */
    int (*host_error)(lua_State *L, const char *where, struct trl_diag *d);
    uint64_t ncalls;    /* trl_hooks_call calls */
    uint64_t ncompiles; /* modules compiled */
};

/* The VM a state belongs to (the allocator's user data). */
static inline struct trl_hooks_vm *hk_vm(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (struct trl_hooks_vm *)ud;
}

/* limits.c */
void *hk_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
int64_t hk_mono_ns(void);
void hk_limits_begin(struct trl_hooks_vm *vm, struct hk_inv *iv, const struct trl_hooks_limits *lim,
                     const char *app);
void hk_limits_end(struct trl_hooks_vm *vm, struct hk_inv *iv);
/* Arms the count hook of coroutine co, made by L, for the running call. */
void hk_arm_coroutine(lua_State *L, lua_State *co);
/* Charges units of C work to the running call; raises when a limit is reached. */
void hk_charge(lua_State *L, uint64_t units);
/* Stops the running call with kind (sticky) and raises. */
int hk_stop_raise(lua_State *L, int kind);
/* Bytes the running call may still allocate (SIZE_MAX outside calls). */
size_t hk_mem_room(lua_State *L);
/* Replaces field name of the library table at idx by the C closure fn whose upvalue 1 is the
 * original; the original is kept in the real globals (g0) as "lib.name" so that its own error
 * messages still name it. */
void hk_wrap(lua_State *L, int g0, int idx, const char *lib, const char *name, lua_CFunction fn);
/* Replaces the long-running C functions of the string, table and utf8 libraries (tables at the
 * given stack indexes) by versions that charge or cap their work. */
void hk_limits_wrap(lua_State *L, int g0, int string, int table, int utf8);
/* Pushes tonumber charging for long strings (the real globals' tonumber stays the original). */
void hk_push_tonumber(lua_State *L, int g0);

/* pattern.c: string.find, match, gmatch and gsub with a metered matcher. */
int hk_str_find(lua_State *L);
int hk_str_match(lua_State *L);
int hk_str_gmatch(lua_State *L);
int hk_str_gsub(lua_State *L);

/* sandbox.c */
/* Opens and locks the libraries, builds the sandbox globals and the environment metatable. */
int hk_sandbox_open(lua_State *L);
/* Checks the sandbox; on failure writes what is wrong into why and returns -1. */
int hk_sandbox_check(lua_State *L, char *why, size_t n);

/* vm.c, for require: compiles (app, module) through the resolver; pushes the factory. Raises. */
void hk_require_factory(lua_State *L, const char *app, const char *module);
/* The file name of a module in messages: "app/hooks/module.lua", or "app/tests/x_spec.lua" for
 * the specs `trellis hooks test` runs (modules named *_spec). */
void hk_file_of(const char *app, const char *module, char *out, size_t n);
/* Copies the innermost Lua position ("app/hooks/x.lua:12") into out, "" when none. */
void hk_where(lua_State *L, char *out, size_t n);

#endif
