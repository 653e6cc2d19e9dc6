/* engine.c — an app's hook modules bound to the record events: the VM pool, what each module
 * defines (learnt once per snapshot version), the arguments events hand to hook functions (ctx,
 * the record as `rec`, old, transition/decision/clock tables), validate results, and errors.
 * The `trellis` module is in api.c. */
#include "hooks/hk_api.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Snapshot configuration: modules and their functions, app settings
 */
static void mod_free(struct hk_mod *m)
{
    for (size_t i = 0; i < m->nfns; i++)
        free(m->fns[i]);
    free(m->fns);
}

static void conf_unref(struct hk_conf *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t i = 0; i < c->nmods; i++)
        mod_free(&c->mods[i]);
    free(c->mods);
    for (size_t i = 0; i < c->napps; i++) {
        struct hk_app *a = &c->apps[i];
        for (size_t k = 0; k < a->npriv; k++)
            free(a->priv[k]);
        free(a->priv);
        free(a->limits);
        for (size_t k = 0; k < a->nscheds; k++) {
            trl_cron_free(a->scheds[k].cron);
            trl_tz_free(a->scheds[k].tz);
        }
        free(a->scheds);
    }
    free(c->apps);
    free(c);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool sorted_has(char *const *list, size_t n, const char *s)
{
    return n && bsearch(&s, list, n, sizeof(*list), str_cmp) != NULL;
}

/* Reader of trl_hooks_module: the names of the module's functions, and of the functions in its
 * tables one level down ("stats.GET"). Raw iteration: no metamethod runs. */
static int list_fns(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)nres;
    (void)d;
    struct hk_mod *m = ud;
    int tbl = lua_gettop(L);
    size_t cap = 0;
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            int vt = lua_type(L, -1);
            int sub = vt == LUA_TTABLE ? lua_gettop(L) : 0;
            if (sub) lua_pushnil(L);
            /* Either the value itself, or each function of the sub-table. */
            for (int more = 1; more;) {
                char name[2 * TRL_HOOKS_NAME_MAX + 2];
                more = 0;
                if (!sub) {
                    if (vt != LUA_TFUNCTION || strlen(k) > TRL_HOOKS_NAME_MAX) break;
                    snprintf(name, sizeof(name), "%s", k);
                } else {
                    if (!lua_next(L, sub)) break;
                    more = 1;
                    bool fn = lua_type(L, -1) == LUA_TFUNCTION && lua_type(L, -2) == LUA_TSTRING;
                    const char *k2 = fn ? lua_tostring(L, -2) : "";
                    lua_pop(L, 1);
                    if (!fn || strlen(k) > TRL_HOOKS_NAME_MAX || strlen(k2) > TRL_HOOKS_NAME_MAX)
                        continue;
                    snprintf(name, sizeof(name), "%s.%s", k, k2);
                }
                if (m->nfns == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    char **nf = realloc(m->fns, nc * sizeof(*nf));
                    if (!nf) return TRL_ENOMEM;
                    m->fns = nf;
                    cap = nc;
                }
                if (!(m->fns[m->nfns] = strdup(name))) return TRL_ENOMEM;
                m->nfns++;
            }
        }
        lua_settop(L, tbl + 1); /* keep the key */
    }
    return 0;
}

static void limits_from_json(const cJSON *j, struct trl_hooks_limits *l)
{
    const cJSON *v;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "instructions")) &&
        v->valuedouble > 0)
        l->instructions = (uint64_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "memory_kb")) && v->valuedouble > 0)
        l->memory = (size_t)v->valuedouble * 1024;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "time_ms")) && v->valuedouble > 0)
        l->time_ms = (uint32_t)v->valuedouble;
}

static int app_conf(struct hk_app *a, const struct trl_wf_text *t)
{
    snprintf(a->name, sizeof(a->name), "%s", t->key);
    cJSON *j = cJSON_ParseWithLength(t->text, t->n);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hooks");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "privileged");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(h, "limits");
    int rc = 0;
    size_t np = cJSON_IsArray(p) ? (size_t)cJSON_GetArraySize(p) : 0;
    if (np && !(a->priv = calloc(np, sizeof(*a->priv)))) rc = TRL_ENOMEM;
    for (const cJSON *e = np ? p->child : NULL; e && !rc; e = e->next)
        if (cJSON_IsString(e) && !(a->priv[a->npriv++] = strdup(e->valuestring))) rc = TRL_ENOMEM;
    if (!rc && a->npriv) qsort(a->priv, a->npriv, sizeof(*a->priv), str_cmp);
    size_t nl = cJSON_IsObject(lim) ? (size_t)cJSON_GetArraySize(lim) : 0;
    if (!rc && nl && !(a->limits = calloc(nl, sizeof(*a->limits)))) rc = TRL_ENOMEM;
    for (const cJSON *e = nl ? lim->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsObject(e)) continue;
        struct hk_limit *l = &a->limits[a->nlimits++];
        snprintf(l->key, sizeof(l->key), "%s", e->string);
        limits_from_json(e, &l->lim);
    }
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(h, "schedules");
    size_t ns = cJSON_IsArray(sc) ? (size_t)cJSON_GetArraySize(sc) : 0;
    if (!rc && ns && !(a->scheds = calloc(ns, sizeof(*a->scheds)))) rc = TRL_ENOMEM;
    for (const cJSON *e = ns ? sc->child : NULL; e && !rc; e = e->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(e, "cron");
        const cJSON *hk = cJSON_GetObjectItemCaseSensitive(e, "hook");
        const cJSON *tz = cJSON_GetObjectItemCaseSensitive(e, "timezone");
        const char *dot = cJSON_IsString(hk) ? strchr(hk->valuestring, '.') : NULL;
        if (!cJSON_IsString(nm) || !cJSON_IsString(cr) || !dot) continue; /* checked at install */
        struct hk_sched *s = &a->scheds[a->nscheds];
        snprintf(s->name, sizeof(s->name), "%s", nm->valuestring);
        snprintf(s->cron_text, sizeof(s->cron_text), "%s", cr->valuestring);
        snprintf(s->zone, sizeof(s->zone), "%s", cJSON_IsString(tz) ? tz->valuestring : "UTC");
        snprintf(s->module, sizeof(s->module), "%.*s", (int)(dot - hk->valuestring),
                 hk->valuestring);
        snprintf(s->fn, sizeof(s->fn), "%s", dot + 1);
        struct trl_diag cd;
        trl_diag_init(&cd);
        int crc = trl_cron_parse(s->cron_text, &s->cron, &cd);
        if (!crc) crc = trl_tz_load(NULL, s->zone, &s->tz, &cd);
        trl_diag_reset(&cd);
        if (crc == TRL_ENOMEM) rc = crc;
        if (crc) {
            trl_cron_free(s->cron);
            trl_tz_free(s->tz);
            memset(s, 0, sizeof(*s));
            continue;
        }
        a->nscheds++;
    }
    cJSON_Delete(j);
    return rc;
}

/* Builds the configuration of ws: runs each module's top-level code once to list its
 * functions. A module that fails is kept, marked, with its error. */
static int conf_build(struct trl_hooks_bind *b, struct hk_conf **out)
{
    const struct trl_wf_set *ws = b->ws;
    struct hk_conf *c = calloc(1, sizeof(*c));
    if (!c) return TRL_ENOMEM;
    c->refs = 1;
    c->version = ws->version;
    int rc = 0;
    if (ws->nhooks && !(c->mods = calloc(ws->nhooks, sizeof(*c->mods)))) rc = TRL_ENOMEM;
    if (!rc && ws->napps && !(c->apps = calloc(ws->napps, sizeof(*c->apps)))) rc = TRL_ENOMEM;
    for (size_t i = 0; i < ws->napps && !rc; i++, c->napps++)
        rc = app_conf(&c->apps[i], &ws->apps[i]);
    struct trl_hooks_vm *vm = rc ? NULL : hk_bind_vm(b);
    if (!rc && ws->nhooks && !vm) rc = TRL_ENOMEM;
    char version[24];
    snprintf(version, sizeof(version), "%llu", (unsigned long long)ws->version);
    for (size_t i = 0; i < ws->nhooks && !rc; i++) {
        const struct trl_wf_text *t = &ws->hooks[i];
        struct hk_mod *m = &c->mods[c->nmods++];
        const char *slash = strchr(t->key, '/');
        if (!slash || (size_t)(slash - t->key) >= sizeof(m->app) ||
            strlen(slash + 1) >= sizeof(m->module)) {
            m->failed = true;
            snprintf(m->error, sizeof(m->error), "bad hook module key '%s'", t->key);
            continue;
        }
        snprintf(m->key, sizeof(m->key), "%s", t->key);
        snprintf(m->app, sizeof(m->app), "%.*s", (int)(slash - t->key), t->key);
        snprintf(m->module, sizeof(m->module), "%s", slash + 1);
        struct trl_hooks_src src = {m->app, m->module, version, t->text, t->n};
        struct trl_diag d;
        trl_diag_init(&d);
        int mrc = trl_hooks_module(vm, &src, list_fns, m, NULL, &d);
        if (mrc == TRL_ENOMEM && !d.rule[0]) {
            rc = mrc;
        } else if (mrc) {
            m->failed = true;
            snprintf(m->error, sizeof(m->error), "%.250s", d.message);
        } else if (m->nfns) {
            qsort(m->fns, m->nfns, sizeof(*m->fns), str_cmp);
        }
        trl_diag_reset(&d);
    }
    if (rc) {
        conf_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

static struct hk_conf *conf_get(struct trl_hooks_bind *b)
{
    if (b->conf) return b->conf;
    struct trl_hooks_engine *e = b->eng;
    pthread_mutex_lock(&e->lock);
    if (e->conf && e->conf->version == b->ws->version) {
        __atomic_add_fetch(&e->conf->refs, 1, __ATOMIC_RELAXED);
        b->conf = e->conf;
    }
    pthread_mutex_unlock(&e->lock);
    if (b->conf) return b->conf;
    struct hk_conf *c;
    if (conf_build(b, &c)) return NULL;
    pthread_mutex_lock(&e->lock);
    if (!e->conf || e->conf->version <= c->version) {
        conf_unref(e->conf);
        e->conf = c;
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&e->lock);
    b->conf = c;
    return c;
}

const struct hk_conf *hk_bind_conf(struct trl_hooks_bind *b)
{
    return conf_get(b);
}

const struct hk_mod *hk_conf_mod(const struct hk_conf *c, const char *app, const char *module)
{
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", app, module);
    size_t lo = 0, hi = c->nmods;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(c->mods[mid].key, key);
        if (r == 0) return &c->mods[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const struct hk_app *conf_app(const struct hk_conf *c, const char *app)
{
    for (size_t i = 0; i < c->napps; i++)
        if (strcmp(c->apps[i].name, app) == 0) return &c->apps[i];
    return NULL;
}

bool hk_mod_has(const struct hk_mod *m, const char *fn)
{
    return m && !m->failed && sorted_has(m->fns, m->nfns, fn);
}

/* Whether app declares module.fn (or the whole module) privileged. */
static bool privileged(const struct hk_conf *c, const char *app, const char *module, const char *fn)
{
    const struct hk_app *a = conf_app(c, app);
    if (!a || !a->npriv) return false;
    char full[160];
    snprintf(full, sizeof(full), "%s.%s", module, fn);
    return sorted_has(a->priv, a->npriv, module) || sorted_has(a->priv, a->npriv, full);
}

/* The limits of module.fn: the engine's, then the app's "*", then its "module.fn". */
static void limits_for(const struct trl_hooks_bind *b, const char *app, const char *module,
                       const char *fn, struct trl_hooks_limits *out)
{
    *out = b->eng->limits;
    const struct hk_app *a = conf_app(b->conf, app);
    if (!a) return;
    char full[160];
    snprintf(full, sizeof(full), "%s.%s", module, fn);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < a->nlimits; i++) {
            const struct hk_limit *l = &a->limits[i];
            if (strcmp(l->key, pass ? full : "*") != 0) continue;
            if (l->lim.instructions) out->instructions = l->lim.instructions;
            if (l->lim.memory) out->memory = l->lim.memory;
            if (l->lim.time_ms) out->time_ms = l->lim.time_ms;
        }
}

/* ---------------------------------------------------------------------------------------------
 * The engine and its VMs
 */
int trl_hooks_engine_new(const struct trl_hooks_engine_opts *o, struct trl_hooks_engine **out,
                         struct trl_diag *d)
{
    struct trl_hooks_engine *e = calloc(1, sizeof(*e));
    if (!e) return trl_diag_set(d, TRL_ENOMEM, "hooks: out of memory");
    if (o) {
        e->clock = o->clock;
        e->limits = o->limits;
    }
    pthread_mutex_init(&e->lock, NULL);
    /* One VM at once: a broken sandbox stops the start, not the first request. */
    struct trl_hooks_vm *vm;
    int rc = hk_vm_make(e, &vm, d);
    if (rc) {
        trl_hooks_engine_free(e);
        return rc;
    }
    hk_vm_return(e, vm);
    *out = e;
    return 0;
}

void trl_hooks_engine_free(struct trl_hooks_engine *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->nidle; i++)
        trl_hooks_vm_free(e->idle[i]);
    free(e->idle);
    conf_unref(e->conf);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void trl_hooks_engine_stats(struct trl_hooks_engine *e, struct trl_hooks_engine_stats *out)
{
    out->calls = __atomic_load_n(&e->calls, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&e->errors, __ATOMIC_RELAXED);
    pthread_mutex_lock(&e->lock);
    out->vms = e->nvms;
    pthread_mutex_unlock(&e->lock);
}

/* Module app/module as snapshot ws has it: version (24 bytes) the snapshot's version, text NULL
 * when ws has no such module (returns false then). */
static bool snapshot_src(const struct trl_wf_set *ws, const char *app, const char *module,
                         char *version, struct trl_hooks_src *out)
{
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", app, module);
    const struct trl_wf_text *h = trl_wf_text_find(ws->hooks, ws->nhooks, key);
    snprintf(version, 24, "%llu", (unsigned long long)ws->version);
    *out = (struct trl_hooks_src){app, module, version, h ? h->text : NULL, h ? h->n : 0};
    return h != NULL;
}

/* `require` in hook code: the app's own modules of the lending binding's snapshot, and the
 * spec framework. */
static int resolve(void *ud, const char *app, const char *module, struct trl_hooks_src *out,
                   struct trl_diag *d)
{
    (void)d;
    struct trl_hooks_vm *vm = ud;
    if (strcmp(module, "trellis_spec") == 0) {
        size_t n;
        const char *t = hk_spec_framework(&n);
        *out = (struct trl_hooks_src){app, module, "builtin", t, n};
        return 0;
    }
    struct trl_hooks_bind *b = hk_api_bound(vm);
    if (!b || !b->ws) return TRL_ENOTFOUND;
    return snapshot_src(b->ws, app, module, b->version, out) ? 0 : TRL_ENOTFOUND;
}

int hk_vm_make(struct trl_hooks_engine *e, struct trl_hooks_vm **out, struct trl_diag *d)
{
    struct trl_hooks_vm *vm;
    int rc = trl_hooks_vm_new(e->clock, &vm, d);
    if (rc) return rc;
    trl_hooks_vm_set_resolver(vm, resolve, vm);
    if ((rc = hk_api_install(vm, d))) {
        trl_hooks_vm_free(vm);
        return rc;
    }
    pthread_mutex_lock(&e->lock);
    e->nvms++;
    pthread_mutex_unlock(&e->lock);
    *out = vm;
    return 0;
}

void hk_vm_return(struct trl_hooks_engine *e, struct trl_hooks_vm *vm)
{
    pthread_mutex_lock(&e->lock);
    if (e->nidle == e->capidle) {
        size_t nc = e->capidle ? e->capidle * 2 : 4;
        struct trl_hooks_vm **ni = realloc(e->idle, nc * sizeof(*ni));
        if (!ni) {
            e->nvms--;
            pthread_mutex_unlock(&e->lock);
            trl_hooks_vm_free(vm);
            return;
        }
        e->idle = ni;
        e->capidle = nc;
    }
    e->idle[e->nidle++] = vm;
    pthread_mutex_unlock(&e->lock);
}

struct trl_hooks_vm *hk_bind_vm(struct trl_hooks_bind *b)
{
    if (b->vm) return b->vm;
    struct trl_hooks_engine *e = b->eng;
    pthread_mutex_lock(&e->lock);
    if (e->nidle) b->vm = e->idle[--e->nidle];
    pthread_mutex_unlock(&e->lock);
    if (!b->vm) {
        struct trl_diag d;
        trl_diag_init(&d);
        if (hk_vm_make(e, &b->vm, &d))
            trl_log(TRL_LOG_ERROR, "hooks: cannot make a VM: %s", d.message);
        trl_diag_reset(&d);
    }
    if (b->vm) hk_api_attach(b->vm, b);
    return b->vm;
}

/* ---------------------------------------------------------------------------------------------
 * Events
 */
static const char *const ev_fn[TRL_EV_COUNT] = {
    [TRL_EV_VALIDATE] = "validate",
    [TRL_EV_BEFORE_CREATE] = "before_create",
    [TRL_EV_AFTER_CREATE] = "after_create",
    [TRL_EV_BEFORE_UPDATE] = "before_update",
    [TRL_EV_AFTER_UPDATE] = "after_update",
    [TRL_EV_BEFORE_DELETE] = "before_delete",
    [TRL_EV_AFTER_DELETE] = "after_delete",
    [TRL_EV_BEFORE_TRANSITION] = "before_transition",
    [TRL_EV_AFTER_TRANSITION] = "after_transition",
    [TRL_EV_APPROVAL_DECIDED] = "approval_decided",
    [TRL_EV_SLA_WARNING] = "sla_warning",
    [TRL_EV_SLA_BREACH] = "sla_breach",
    [TRL_EV_ACTION] = NULL,
};

const char *hk_type_app(const struct trl_type *ty)
{
    return ty->app && *ty->app ? ty->app : "local";
}

/* The (module, function) pairs an event calls, at most two; returns how many. */
static size_t targets(const struct hk_conf *c, const struct trl_type *ty, enum trl_rec_ev kind,
                      const char *name, const struct hk_mod **mods, char fns[2][136])
{
    const char *app = hk_type_app(ty);
    if (kind == TRL_EV_ACTION) {
        if (!name) return 0;
        const char *dot = strchr(name, '.');
        char module[64];
        if (dot)
            snprintf(module, sizeof(module), "%.*s", (int)(dot - name), name);
        else
            snprintf(module, sizeof(module), "%s", ty->name);
        const struct hk_mod *m = hk_conf_mod(c, app, module);
        snprintf(fns[0], sizeof(fns[0]), "%s", dot ? dot + 1 : name);
        mods[0] = m;
        return m && (m->failed || hk_mod_has(m, fns[0])) ? 1 : 0;
    }
    if (kind == TRL_EV_COMPUTE) {
        const struct hk_mod *m = hk_conf_mod(c, app, ty->name);
        if (!m || !name) return 0;
        snprintf(fns[0], sizeof(fns[0]), "computed.%s", name);
        mods[0] = m;
        return m->failed || hk_mod_has(m, fns[0]) ? 1 : 0;
    }
    if (kind < 0 || kind >= TRL_EV_COUNT || !ev_fn[kind]) return 0;
    const struct hk_mod *m = hk_conf_mod(c, app, ty->name);
    if (!m) return 0;
    if (m->failed) {
        mods[0] = m;
        snprintf(fns[0], sizeof(fns[0]), "%s", ev_fn[kind]);
        return 1;
    }
    size_t n = 0;
    if (hk_mod_has(m, ev_fn[kind])) {
        mods[n] = m;
        snprintf(fns[n++], sizeof(fns[0]), "%s", ev_fn[kind]);
    }
    if ((kind == TRL_EV_BEFORE_TRANSITION || kind == TRL_EV_AFTER_TRANSITION) && name) {
        char spec[136];
        snprintf(spec, sizeof(spec), "%s_%s", ev_fn[kind], name);
        if (hk_mod_has(m, spec)) {
            mods[n] = m;
            snprintf(fns[n++], sizeof(fns[0]), "%s", spec);
        }
    }
    return n;
}

static bool ev_wants(void *ud, const struct trl_type *ty, enum trl_rec_ev kind, const char *name)
{
    struct trl_hooks_bind *b = ud;
    if (!b->eng || !b->ws || !b->ws->nhooks || !ty) return false;
    const struct hk_conf *c = conf_get(b);
    if (!c) return true; /* fire reports why */
    const struct hk_mod *mods[2];
    char fns[2][136];
    return targets(c, ty, kind, name, mods, fns) > 0;
}

/* Maps a failed call's diagnostics into the request's: hook errors are TRL_EHOOK (500) with the
 * hook named; refusals the hook raised keep their code. */
static int hook_failed(struct trl_hooks_engine *e, const struct trl_rec_ctx *cx,
                       struct trl_diag *hd, int rc, const char *app, const char *module,
                       const char *fn)
{
    __atomic_add_fetch(&e->errors, 1, __ATOMIC_RELAXED);
    static const char *const hookish[] = {"runtime",  "module", "function", "instructions",
                                          "deadline", "memory", "depth",    "syntax",
                                          "source",   NULL};
    bool ours = false;
    for (int i = 0; hookish[i] && !ours; i++)
        ours = strcmp(hd->rule, hookish[i]) == 0;
    if (ours) rc = hd->code = TRL_EHOOK;
    if (!hd->hook[0]) snprintf(hd->hook, sizeof(hd->hook), "%s/%s.%s", app, module, fn);
    if (cx->d) {
        trl_diag_move(cx->d, hd);
    } else {
        trl_diag_reset(hd);
    }
    return rc;
}

/* Calls fn of module src for frame fr (t, cx, ev, user set by the caller). */
static int call_src(struct trl_hooks_bind *b, struct hk_frame *fr, const struct trl_hooks_src *src,
                    const char *fn, trl_hooks_push_fn push, trl_hooks_read_fn read)
{
    const struct trl_rec_ctx *cx = fr->cx;
    struct trl_hooks_vm *vm = hk_bind_vm(b);
    if (!vm) return trl_diag_set(cx->d, TRL_ENOMEM, "hooks: no VM could be made");
    if (!b->conf && b->ws) conf_get(b);
    struct trl_hooks_limits lim;
    limits_for(b, src->app, src->module, fn, &lim);
    fr->b = b;
    fr->app = src->app;
    fr->module = src->module;
    fr->fn = fn;
    fr->privileged = b->conf && privileged(b->conf, src->app, src->module, fn);
    fr->outer = b->frame;
    b->frame = fr;
    struct trl_diag hd;
    trl_diag_init(&hd);
    __atomic_add_fetch(&b->eng->calls, 1, __ATOMIC_RELAXED);
    int rc = trl_hooks_call(vm, src, fn, push, read, fr, &lim, &hd);
    b->frame = fr->outer;
    hk_frame_end(vm->L, fr);
    if (rc) return hook_failed(b->eng, cx, &hd, rc, src->app, src->module, fn);
    trl_diag_reset(&hd);
    return 0;
}

int hk_call(struct trl_hooks_bind *b, struct hk_frame *fr, const struct hk_mod *m, const char *fn,
            trl_hooks_push_fn push, trl_hooks_read_fn read)
{
    const struct trl_rec_ctx *cx = fr->cx;
    if (m->failed) {
        trl_diag_set(cx->d, TRL_EHOOK, "%s", m->error);
        trl_diag_zh(cx->d, "钩子模块加载失败:%s", m->error);
        trl_diag_rule(cx->d, "module", "");
        snprintf(cx->d->hook, sizeof(cx->d->hook), "%s.%s", m->key, fn);
        __atomic_add_fetch(&b->eng->errors, 1, __ATOMIC_RELAXED);
        return TRL_EHOOK;
    }
    char version[24];
    struct trl_hooks_src src;
    snapshot_src(b->ws, m->app, m->module, version, &src);
    return call_src(b, fr, &src, fn, push, read);
}

/* trl_hooks_run's callbacks: the caller's, with the caller's ud. */
struct run_user {
    trl_hooks_push_fn push;
    trl_hooks_read_fn read;
    void *ud;
};

static int run_push(lua_State *L, void *ud)
{
    struct hk_frame *fr = ud;
    const struct run_user *u = fr->user;
    return u->push ? u->push(L, u->ud) : 0;
}

static int run_read(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    struct hk_frame *fr = ud;
    const struct run_user *u = fr->user;
    return u->read ? u->read(L, nres, u->ud, d) : 0;
}

int trl_hooks_run(struct trl_hooks_bind *b, struct trl_txn *t, const struct trl_rec_ctx *cx,
                  const struct trl_hooks_src *src, const char *fn, trl_hooks_push_fn push,
                  trl_hooks_read_fn read, void *ud)
{
    if (!b->eng) return trl_diag_set(cx->d, TRL_EUNAVAIL, "hooks are not available here");
    struct trl_hooks_src s = *src;
    char version[24];
    if (!s.text && b->ws && !snapshot_src(b->ws, src->app, src->module, version, &s)) {
        trl_diag_set(cx->d, TRL_ENOTFOUND, "app %s has no hook module '%s'", src->app, src->module);
        trl_diag_zh(cx->d, "应用 %s 没有钩子模块“%s”", src->app, src->module);
        return TRL_ENOTFOUND;
    }
    struct run_user u = {push, read, ud};
    struct hk_frame fr = {.t = t, .cx = cx, .user = &u};
    return call_src(b, &fr, &s, fn, run_push, run_read);
}

/* Arguments of an event's function: ctx, rec and the event's third argument. */
static int push_event(lua_State *L, void *ud)
{
    struct hk_frame *fr = ud;
    const struct trl_rec_event *ev = fr->ev;
    hk_push_ctx(L, fr);
    hk_push_rec(L, fr, ev->rec, ev->writable, 0);
    switch (ev->kind) {
    case TRL_EV_VALIDATE:
    case TRL_EV_BEFORE_UPDATE:
    case TRL_EV_AFTER_UPDATE:
        if (ev->old)
            hk_push_rec(L, fr, ev->old, false, 1);
        else
            lua_pushnil(L);
        return 3;
    case TRL_EV_BEFORE_TRANSITION:
    case TRL_EV_AFTER_TRANSITION:
    case TRL_EV_ACTION:
        lua_createtable(L, 0, 4);
        if (ev->kind == TRL_EV_ACTION ? ev->transition != NULL : ev->name != NULL) {
            lua_pushstring(L, ev->kind == TRL_EV_ACTION ? ev->transition : ev->name);
            lua_setfield(L, -2, "name");
        }
        if (ev->from) {
            lua_pushstring(L, ev->from);
            lua_setfield(L, -2, "from");
        }
        if (ev->to) {
            lua_pushstring(L, ev->to);
            lua_setfield(L, -2, "to");
        }
        if (ev->comment) {
            lua_pushstring(L, ev->comment);
            lua_setfield(L, -2, "comment");
        }
        return 3;
    case TRL_EV_APPROVAL_DECIDED:
    case TRL_EV_SLA_WARNING:
    case TRL_EV_SLA_BREACH:
        if (ev->detail)
            hk_json_push_text(L, ev->detail, strlen(ev->detail));
        else
            lua_createtable(L, 0, 2);
        if (ev->comment) {
            lua_pushstring(L, ev->comment);
            lua_setfield(L, -2, "comment");
        }
        return 3;
    default:
        return 2;
    }
}

/* validate's results: nothing or true passes; a table {field = message} refuses with field
 * errors; a string (or false, message) refuses as a whole. */
static int read_validate(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    struct hk_frame *fr = ud;
    if (nres < 1) return 0;
    int r1 = lua_gettop(L) - nres + 1;
    int t = lua_type(L, r1);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && lua_toboolean(L, r1))) return 0;
    const char *tn = fr->ev->ty->name;
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, r1)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                char msg[256];
                size_t ml = 0;
                const char *s =
                    lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &ml) : "is invalid";
                if (!ml) ml = strlen(s);
                snprintf(msg, sizeof(msg), "%.*s", (int)(ml < 250 ? ml : 250), s);
                if (trl_diag_add_ferr(d, lua_tostring(L, -2), "hook", msg)) return TRL_ENOMEM;
            }
            lua_pop(L, 1);
        }
        if (!d->nferrs) return 0; /* an empty table: no complaint */
        trl_diag_set(d, TRL_EVALIDATION, "%zu field(s) of %s failed validation", d->nferrs, tn);
        trl_diag_zh(d, "%s 有 %zu 个字段未通过校验", tn, d->nferrs);
    } else {
        int mi = t == LUA_TBOOLEAN && nres >= 2 ? r1 + 1 : r1;
        const char *s = lua_type(L, mi) == LUA_TSTRING ? lua_tostring(L, mi) : "refused";
        trl_diag_set(d, TRL_EVALIDATION, "%s: %.400s", tn, s);
        trl_diag_zh(d, "%s:%.400s", tn, s);
    }
    char where[160];
    hk_file_of(fr->app, fr->module, where, sizeof(where));
    trl_diag_rule(d, "hook", where);
    return TRL_EVALIDATION;
}

static int ev_fire(void *ud, struct trl_txn *t, const struct trl_rec_ctx *cx,
                   const struct trl_rec_event *ev)
{
    struct trl_hooks_bind *b = ud;
    if (!b->eng || !b->ws) return 0;
    const struct hk_conf *c = conf_get(b);
    if (!c) return trl_diag_set(cx->d, TRL_ENOMEM, "hooks: cannot load the app's hook modules");
    const struct hk_mod *mods[2];
    char fns[2][136];
    size_t n = targets(c, ev->ty, ev->kind, ev->name, mods, fns);
    /* Computing a field is a read, also when a write's answer shows it. */
    bool ro = b->read_only;
    if (ev->kind == TRL_EV_COMPUTE) b->read_only = true;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct hk_frame fr = {.t = t, .cx = cx, .ev = ev};
        rc = hk_call(b, &fr, mods[i], fns[i], push_event,
                     ev->kind == TRL_EV_VALIDATE  ? read_validate
                     : ev->kind == TRL_EV_COMPUTE ? hk_read_computed
                                                  : NULL);
    }
    b->read_only = ro;
    return rc;
}

void trl_hooks_bind_init(struct trl_hooks_bind *b, struct trl_hooks_engine *e,
                         const struct trl_catalog *cat, const struct trl_wf_set *ws)
{
    memset(b, 0, sizeof(*b));
    b->eng = e;
    b->cat = cat;
    b->ws = ws;
    b->ev.wants = ev_wants;
    b->ev.fire = ev_fire;
    b->ev.timer = hk_job_timer;
    b->ev.ud = b;
}

void trl_hooks_bind_done(struct trl_hooks_bind *b)
{
    if (b->vm) {
        hk_api_attach(b->vm, NULL);
        hk_vm_return(b->eng, b->vm);
        b->vm = NULL;
    }
    conf_unref(b->conf);
    b->conf = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Checking a module before it is saved
 */
static int want_table(lua_State *L, int nres, void *ud, struct trl_diag *d)
{
    (void)L;
    (void)nres;
    (void)ud;
    (void)d;
    return 0;
}

int trl_hooks_check(const char *app, const char *module, const char *text, size_t n,
                    trl_hooks_resolve_fn resolve, void *ud, struct trl_diag *d)
{
    struct trl_hooks_vm *vm;
    int rc = trl_hooks_vm_new(NULL, &vm, d);
    if (rc) return rc;
    trl_hooks_vm_set_resolver(vm, resolve, ud);
    if ((rc = hk_api_install(vm, d))) {
        trl_hooks_vm_free(vm);
        return rc;
    }
    struct trl_hooks_src src = {app, module, "check", text, n};
    rc = trl_hooks_compile(vm, &src, d);
    if (!rc) {
        rc = trl_hooks_module(vm, &src, want_table, NULL, NULL, d);
        if (rc && rc != TRL_EVALIDATION) {
            rc = d->code = TRL_EHOOK;
            snprintf(d->hook, sizeof(d->hook), "%s/%s", app, module);
        }
    }
    trl_hooks_vm_free(vm);
    return rc;
}
