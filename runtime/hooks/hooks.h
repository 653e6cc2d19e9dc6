/*
 * hooks — the Lua 5.4 sandbox that runs an app's hook code (issue 5, first increment).
 *
 * One object: a VM (struct trl_hooks_vm), made once per thread and reused for every call that
 * thread makes. It holds one Lua state whose libraries are built from allow lists: base, string,
 * table, math, utf8 and coroutine are opened (io, os, package and debug never are), dangerous
 * functions are left out (load, loadfile, dofile, string.dump, collectgarbage, rawget, rawset,
 * print, warn, math.randomseed), `os` is a table of Trellis functions (time, date, clock; UTC
 * only), and `require` loads only the app's own modules through a resolver the caller installs.
 * runtime/hooks/README.md lists every name, limit and wrapped function.
 *
 * Code: a module is the text of `<app>/hooks/<module>.lua`. It is compiled from source text only
 * (never bytecode) once per (app, module, version) and kept in the VM; a new version recompiles.
 * The chunk name makes errors read "app/hooks/x.lua:12: message".
 *
 * Runs: trl_hooks_call runs the module's top-level code in a fresh environment and calls one of
 * the functions of the table it returns ("name", or "table.name" for a function in a table of
 * the module's table). Every call starts from the same state: the environment,
 * the module's locals and everything created are new, library tables are read-only proxies, the
 * string metatable is locked, and no run (of the same or another app) sees what another wrote.
 * Reading a global nobody defined raises "undeclared global 'x'".
 * A call has three limits (struct trl_hooks_limits): instructions, memory and wall-clock time.
 * A stop is sticky — once a limit is hit every further instruction raises again — so pcall,
 * xpcall and coroutines cannot swallow it; C functions that could run long without executing an
 * instruction (string.rep, table.move, pattern matching, ...) charge their work or are capped.
 *
 * Errors come back as TRL_E* codes with a struct trl_diag whose `rule` says what failed and whose
 * `path` says where ("app/hooks/x.lua:12"):
 *   rule "syntax"        TRL_EVALIDATION  the text does not compile (or is bytecode)
 *   rule "source"        TRL_ETOOBIG      the text is over TRL_HOOKS_MAX_SOURCE bytes
 *   rule "runtime"       TRL_EINTERNAL    a Lua error (error(), a failed operation, a refused
 *                                         escape, a yield across the host boundary, ...)
 *   rule "module"        TRL_EINTERNAL    the module did not return a table
 *   rule "function"      TRL_ENOTFOUND    the module has no function of that name
 *   rule "instructions"  TRL_ETIMEOUT     the instruction budget ran out
 *   rule "deadline"      TRL_ETIMEOUT     the wall-clock time ran out
 *   rule "memory"        TRL_ENOMEM       the memory cap was reached
 *   rule "depth"         TRL_EINTERNAL    calls nested deeper than TRL_HOOKS_MAX_DEPTH
 * Messages are English (message) and Chinese (message_zh), at most a few hundred bytes, valid
 * UTF-8 without control characters, whatever the script raised.
 *
 * Lifetimes and threads: the VM is owned by the caller and used by one thread at a time; nothing
 * here is global. A call may be made from inside another call (a hook that writes fires the hooks
 * of that write): the inner call runs within what is left of the outer call's limits.
 *
 * Never: include a Lua header outside runtime/hooks/ (this header only names struct lua_State for
 * the callbacks), hold malloc'd memory in a callback across a Lua API call that can raise, or
 * share a VM between threads at the same time.
 */
#ifndef TRL_HOOKS_H
#define TRL_HOOKS_H

#include "core/core.h"
#include "workflow/workflow.h"

#include <stdio.h>

struct lua_State;
struct trl_hooks_vm;

#define TRL_HOOKS_DEFAULT_INSTRUCTIONS 1000000u     /* per call */
#define TRL_HOOKS_DEFAULT_MEMORY       (16u << 20)  /* bytes per call */
#define TRL_HOOKS_DEFAULT_TIME_MS      50u          /* milliseconds per call */
#define TRL_HOOKS_MAX_SOURCE           (1u << 20)   /* bytes of one module's text */
#define TRL_HOOKS_MAX_SUBJECT          (256u << 10) /* subject of string.find/match/gsub */
#define TRL_HOOKS_MAX_DEPTH            8            /* calls nested inside calls */
#define TRL_HOOKS_NAME_MAX             63           /* bytes of an app, module or version */

/* Limits of one call. A zero member takes its default. */
struct trl_hooks_limits {
    uint64_t instructions; /* VM instructions, plus the work C functions charge as instructions */
    size_t memory;         /* bytes the call may add to what the VM held when it started */
    uint32_t time_ms;      /* wall-clock milliseconds from the start of the call */
};

/* One module's text. Strings are borrowed for the duration of the call they are given to. */
struct trl_hooks_src {
    const char *app;     /* app name: a-z, 0-9, '_', '-'; 1 to TRL_HOOKS_NAME_MAX bytes */
    const char *module;  /* file under the app's hooks/ without ".lua"; same alphabet */
    const char *version; /* version of the text (any bytes but NUL, at most TRL_HOOKS_NAME_MAX);
                          * a version other than the cached one recompiles */
    const char *text;    /* Lua source; NULL when the caller knows (app, module, version) is
                          * compiled, or wants the resolver asked */
    size_t len;          /* bytes of text */
};

/* Finds the text of module `module` of app `app` for `require` (and for trl_hooks_call when
 * src->text is NULL and the module is not compiled). Fills *out with borrowed strings valid until
 * the trl_hooks_call in progress returns. Returns 0, or TRL_ENOTFOUND (d may say more). */
typedef int (*trl_hooks_resolve_fn)(void *ud, const char *app, const char *module,
                                    struct trl_hooks_src *out, struct trl_diag *d);
/* Pushes the arguments of the hook function onto L; returns how many (>= 0), or a negative
 * TRL_E* that ends the call with that code (d untouched). Runs in protected mode: a Lua error it
 * raises is reported like any other runtime error. */
typedef int (*trl_hooks_push_fn)(struct lua_State *L, void *ud);
/* Reads the nres results on top of L's stack. Returns 0, or a negative TRL_E* that trl_hooks_call
 * returns as is (the callback fills d). Runs in protected mode, within the call's limits. */
typedef int (*trl_hooks_read_fn)(struct lua_State *L, int nres, void *ud, struct trl_diag *d);

/* Makes a VM: the sandboxed state, its read-only libraries, and a self-test that asserts io, os,
 * package, debug, load, string.dump ... are absent from the registry's loaded table and from the
 * globals. clock is borrowed (it must outlive the VM) and serves os.time and os.date; NULL uses
 * the system clock. Returns owned *out (trl_hooks_vm_free). Errors: TRL_ENOMEM, TRL_EINTERNAL
 * (the self-test failed: d says what it found). */
int trl_hooks_vm_new(const struct trl_clock *clock, struct trl_hooks_vm **out, struct trl_diag *d);
/* Frees the VM and every compiled module. Accepts NULL. Not during a call. */
void trl_hooks_vm_free(struct trl_hooks_vm *vm);

/* Runs the sandbox self-test again (trl_hooks_vm_new runs it once). 0 or TRL_EINTERNAL. */
int trl_hooks_vm_selftest(struct trl_hooks_vm *vm, struct trl_diag *d);

/* Installs the resolver `require` uses (NULL: require finds nothing). fn and ud are borrowed. */
void trl_hooks_vm_set_resolver(struct trl_hooks_vm *vm, trl_hooks_resolve_fn fn, void *ud);

/* Compiles src (text required) into the VM's cache unless that version is already there; the
 * check the meta API runs before saving a hook. Errors: TRL_EINVAL (bad app, module or version
 * name, NULL text), TRL_ETOOBIG (rule "source"), TRL_EVALIDATION (rule "syntax", path
 * "app/hooks/x.lua:LINE", message as Lua gives it), TRL_ENOMEM. */
int trl_hooks_compile(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, struct trl_diag *d);

/* Drops every compiled module of app (uninstalled or replaced). Not during a call. */
void trl_hooks_forget(struct trl_hooks_vm *vm, const char *app);

/* Calls function fn of module src: compiles it if needed (as trl_hooks_compile), runs the
 * module's top-level code in a fresh environment, looks fn up in the table it returns, pushes the
 * arguments (push may be NULL: none), calls fn and hands its results to read (may be NULL).
 * limits may be NULL (defaults). ud is passed to both callbacks. When src->text is NULL the
 * cached module is used, else the resolver is asked (TRL_ENOTFOUND when neither has it). Returns
 * 0, a code from a callback, or one of the errors of the table at the top of this file (plus
 * TRL_EINVAL for bad names, TRL_ENOMEM when no Lua stack is left for a nested call); d->rule and
 * d->path say which and where. The VM is ready for the next call whatever happened. */
int trl_hooks_call(struct trl_hooks_vm *vm, const struct trl_hooks_src *src, const char *fn,
                   trl_hooks_push_fn push, trl_hooks_read_fn read, void *ud,
                   const struct trl_hooks_limits *limits, struct trl_diag *d);

/* Runs module src's top-level code like trl_hooks_call and hands the table it returns to read
 * (nres 1, the table on top) instead of calling a function: what the engine uses to learn
 * which hook functions a module defines. */
int trl_hooks_module(struct trl_hooks_vm *vm, const struct trl_hooks_src *src,
                     trl_hooks_read_fn read, void *ud, const struct trl_hooks_limits *limits,
                     struct trl_diag *d);

/* Counters of a VM. */
struct trl_hooks_stats {
    size_t memory;     /* bytes the Lua state holds now */
    size_t modules;    /* compiled modules cached */
    uint64_t calls;    /* trl_hooks_call calls made */
    uint64_t compiles; /* modules compiled (cache misses) */
};
void trl_hooks_vm_stats(const struct trl_hooks_vm *vm, struct trl_hooks_stats *out);

/* ---------------------------------------------------------------------------------------------
 * The engine: an app's hook modules bound to the record events (record.h) and the `trellis`
 * module hook code calls (runtime/hooks/README.md documents both for app developers).
 *
 * Modules: the snapshot's hook texts (struct trl_wf_set, meta kind "hook", key "app/module").
 * A type's hooks are the functions of module <type> of the type's app ("local" for types made
 * through the API): validate, before_create, after_create, before_update, after_update,
 * before_delete, after_delete, before_transition, after_transition (also
 * before_transition_<name> / after_transition_<name> for one transition), approval_decided,
 * sla_warning, sla_breach; workflow actions name "function" (of the type's module) or
 * "module.function". Which functions a module defines is learnt once per snapshot version by
 * running its top-level code, so asking costs a lookup.
 *
 * Threads: the engine is shared; it lends each thread a VM (struct trl_hooks_bind holds one while
 * the request runs) and builds one more when all are lent.
 */
struct trl_hooks_engine;
struct hk_conf;
struct hk_frame;

struct trl_hooks_engine_opts {
    const struct trl_clock *clock;  /* borrowed; NULL: system clock */
    struct trl_hooks_limits limits; /* per call unless the app says otherwise (0: defaults) */
};
int trl_hooks_engine_new(const struct trl_hooks_engine_opts *o, struct trl_hooks_engine **out,
                         struct trl_diag *d);
void trl_hooks_engine_free(struct trl_hooks_engine *e);

/* Counters for /metrics. */
struct trl_hooks_engine_stats {
    uint64_t calls;  /* hook functions called */
    uint64_t errors; /* calls that failed (errors, refusals, limits) */
    size_t vms;      /* VMs made */
};
void trl_hooks_engine_stats(struct trl_hooks_engine *e, struct trl_hooks_engine_stats *out);

/* One request's (or job's) use of the engine: put &b->ev into the request's contexts
 * (trl_rec_ctx.ev). Nothing is taken until an event fires; done returns the VM. cat and ws are
 * borrowed for the binding's life. e may be NULL (no hooks: the events are never wanted). */
struct trl_hooks_bind {
    struct trl_hooks_engine *eng;
    const struct trl_catalog *cat;
    const struct trl_wf_set *ws;
    struct hk_conf *conf;     /* the snapshot's modules (a reference), NULL until needed */
    struct trl_hooks_vm *vm;  /* lent VM, NULL until needed */
    struct hk_frame *frame;   /* innermost event being handled */
    bool read_only;           /* a read request: trellis.create and friends are refused */
    bool testing;             /* `trellis hooks test`: trellis.as is available */
    char version[24];         /* the snapshot version as text (for require) */
    struct trl_rec_events ev; /* the listeners */
};
void trl_hooks_bind_init(struct trl_hooks_bind *b, struct trl_hooks_engine *e,
                         const struct trl_catalog *cat, const struct trl_wf_set *ws);
void trl_hooks_bind_done(struct trl_hooks_bind *b);

/* Calls function fn of a module outside the record events (custom endpoints, scheduled jobs,
 * specs): the hook runs in t acting as cx->who, errors land in cx->d (as for events: hook
 * errors are TRL_EHOOK naming the hook). src->text NULL takes the snapshot's module (and its
 * version); push and read get ud. */
int trl_hooks_run(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                  const struct trl_hooks_src *src, const char *fn, trl_hooks_push_fn push,
                  trl_hooks_read_fn read, void *ud);

/* Custom endpoints: /api/v1/apps/{app}/x/{name} calls `name.METHOD` (or `name`, any method) of
 * the app's module `endpoints` with (ctx, req) where req = {method, name, params, body}; the
 * function returns body | status, body | status. Strings are borrowed. */
struct trl_hooks_http_req {
    const char *method;        /* GET, POST, ... */
    const char *name;          /* endpoint name */
    const char *const *params; /* query parameters: name, value pairs */
    size_t nparams;            /* pairs */
    const char *body;          /* JSON text of the body (checked by the caller), or NULL */
    size_t nbody;              /* bytes */
};
struct trl_hooks_http_resp {
    int status;          /* 200 with a body, 204 without, or what the hook returned */
    struct trl_buf body; /* JSON text (owned by the caller, who inits and frees it) */
    char allow[64];      /* TRL_EMETHOD: the methods the endpoint answers */
};
/* Runs the endpoint in t as cx->who (a read request should set b->read_only: its writes are then
 * refused). TRL_ENOTFOUND (no such endpoint), TRL_EMETHOD (not for this method; rs->allow), or
 * a hook error, with cx->d filled. */
int trl_hooks_endpoint(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                       const char *app, const struct trl_hooks_http_req *rq,
                       struct trl_hooks_http_resp *rs);

/* Scheduled jobs (app.json hooks.schedules): plans a timer for every job whose expression or
 * zone changed since it was planned (or that is new) and drops those of jobs no longer defined.
 * Run in a write txn after the snapshot changes (and at start). 0 or a store error. */
int trl_hooks_sync_jobs(struct trl_hooks_bind *b, struct trl_txn *t, int64_t now,
                        struct trl_diag *d);

/* Runs one spec file (text of tests/<name>.lua, name ending in _spec) of app: its describe / it
 * / expect tests (runtime/hooks/README.md), each in a nested txn of t that is rolled back, acting
 * as cx->who (b->testing enables trellis.as). Prints the file, one line per test and each
 * failure's message with file:line to out; adds to *res. Returns 0 or TRL_ENOMEM. */
struct trl_hooks_spec_result {
    unsigned passed, failed, pending;
};
int trl_hooks_spec_run(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                       const char *app, const char *name, const char *text, size_t n, FILE *out,
                       struct trl_hooks_spec_result *res);

/* Checks a hook module's text before it is saved: it compiles (from text), its top-level code
 * runs within the default limits and returns a table; `require` of the app's other modules goes
 * through resolve (the modules as they will be: the app folder being installed, or the stored
 * ones; NULL: none). TRL_EVALIDATION (rule "syntax",
 * path "app/hooks/x.lua:LINE") or TRL_EHOOK (rule runtime/module/limits) with d saying why. */
int trl_hooks_check(const char *app, const char *module, const char *text, size_t n,
                    trl_hooks_resolve_fn resolve, void *ud, struct trl_diag *d);

#endif
