/*
 * hk_api.h — what engine.c (events, VM pool, snapshot configuration) and api.c (the `trellis`
 * module, `rec` objects, error objects) share. Only runtime/hooks/ includes it.
 */
#ifndef TRL_HK_API_H
#define TRL_HK_API_H

#include "hooks/hk_json.h"
#include "calendar/calendar.h"
#include "hooks/hooks_int.h"

#include <pthread.h>

/* What one hook module of the snapshot defines. */
struct hk_mod {
    char key[128];   /* "app/module" */
    char app[64];    /* app name */
    char module[64]; /* module name */
    char **fns;      /* sorted names of its functions ("fn", "table.fn"), owned */
    size_t nfns;     /* entries */
    bool failed;     /* its top-level code failed: every call reports error */
    char error[256]; /* why */
};

struct hk_limit {
    char key[136];               /* "*" or "module.function" */
    struct trl_hooks_limits lim; /* zero members: unchanged */
};

/* A scheduled job (app.json hooks.schedules). */
struct hk_sched {
    char name[64];       /* job name */
    char cron_text[208]; /* the expression as written */
    char zone[72];       /* time zone name ("UTC" by default) */
    char module[64];     /* the hook: module.function */
    char fn[64];
    struct trl_cron *cron; /* owned */
    struct trl_tz *tz;     /* owned */
};

/* An app's hook settings (app.json "hooks"). */
struct hk_app {
    char name[64];
    struct hk_sched *scheds; /* owned */
    size_t nscheds;
    char **priv; /* sorted "module" / "module.function" declared privileged (owned) */
    size_t npriv;
    struct hk_limit *limits; /* owned */
    size_t nlimits;
};

/* The hook configuration of one snapshot version (shared, reference-counted). */
struct hk_conf {
    uint64_t version;
    int refs;
    struct hk_mod *mods; /* sorted by key */
    size_t nmods;
    struct hk_app *apps;
    size_t napps;
};

struct trl_hooks_engine {
    const struct trl_clock *clock;  /* borrowed, NULL: system */
    struct trl_hooks_limits limits; /* defaults per call */
    pthread_mutex_t lock;           /* guards idle, nvms, conf */
    struct trl_hooks_vm **idle;     /* VMs not lent (owned) */
    size_t nidle, capidle;
    size_t nvms;            /* VMs made and not freed */
    struct hk_conf *conf;   /* newest configuration (one reference) */
    uint64_t calls, errors; /* counters (atomic) */
};

struct hk_rec;

/* One hook function running (on the C stack of hk_call). */
struct hk_frame {
    struct trl_hooks_bind *b;
    struct trl_txn *t;              /* the write (or read) txn the hook runs in */
    const struct trl_rec_ctx *cx;   /* the context of the event (its d gets errors) */
    const struct trl_rec_event *ev; /* the event, NULL for endpoints and jobs */
    const char *app;                /* the module's app */
    const char *module;             /* the module */
    const char *fn;                 /* the function */
    bool privileged;                /* acts unrestricted */
    struct hk_frame *outer;         /* the frame this one runs inside */
    struct hk_rec *recs[2];         /* `rec` objects to invalidate when the call ends */
    int refs[2];                    /* their registry references (pinned until then) */
    unsigned logs;                  /* trellis.log lines written */
    void *user;                     /* trl_hooks_run's callbacks */
};

/* engine.c */
struct trl_hooks_vm *hk_bind_vm(struct trl_hooks_bind *b);
int hk_vm_make(struct trl_hooks_engine *e, struct trl_hooks_vm **out, struct trl_diag *d);
void hk_vm_return(struct trl_hooks_engine *e, struct trl_hooks_vm *vm);
/* Calls fn of m for frame fr (t, cx, ev set by the caller); errors land in fr->cx->d. */
int hk_call(struct trl_hooks_bind *b, struct hk_frame *fr, const struct hk_mod *m, const char *fn,
            trl_hooks_push_fn push, trl_hooks_read_fn read);
/* The binding's snapshot configuration (built on first use), NULL on failure. */
const struct hk_conf *hk_bind_conf(struct trl_hooks_bind *b);
const struct hk_mod *hk_conf_mod(const struct hk_conf *c, const char *app, const char *module);
bool hk_mod_has(const struct hk_mod *m, const char *fn);
/* The app whose hooks a type uses ("local" for types made through the API). */
const char *hk_type_app(const struct trl_type *ty);

/* api.c */
/* Adds the `trellis` global, the record and error metatables and the host-error recogniser to a
 * fresh VM. */
int hk_api_install(struct trl_hooks_vm *vm, struct trl_diag *d);
/* Makes b the binding the VM's `trellis` functions act for (NULL: none). */
void hk_api_attach(struct trl_hooks_vm *vm, struct trl_hooks_bind *b);
/* The binding the VM is lent to (NULL: none). */
struct trl_hooks_bind *hk_api_bound(struct trl_hooks_vm *vm);
/* Pushes the ctx table of a frame. */
void hk_push_ctx(lua_State *L, struct hk_frame *fr);
/* Pushes a `rec` object over m (slot 0 or 1 of the frame's objects to invalidate). */
void hk_push_rec(lua_State *L, struct hk_frame *fr, struct trl_rec_move *m, bool writable,
                 int slot);
/* Reads a computed field's value (the hook's first result) into the event's out as JSON. */
int hk_read_computed(lua_State *L, int nres, void *ud, struct trl_diag *d);
/* Invalidates the frame's `rec` objects. */
void hk_frame_end(lua_State *L, struct hk_frame *fr);

/* jobs.c: fires the timer of a scheduled job (trl_rec_events.timer). */
int hk_job_timer(void *ud, struct trl_txn *t, const struct trl_rec_ctx *cx, const char *owner,
                 const char *payload, size_t n);

/* spec.c: the text of the spec framework module "trellis_spec". */
const char *hk_spec_framework(size_t *n);

/* sandbox.c: adds the table on top of the stack (popped) to the sandbox globals as name, its
 * table values (one level) and itself as read-only proxies. */
void hk_sandbox_add(lua_State *L, const char *name);

#endif
