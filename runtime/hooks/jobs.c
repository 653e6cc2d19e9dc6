/* jobs.c — scheduled hooks: app.json hooks.schedules [{name, cron, timezone, hook}] run by the
 * timer machinery. Each job has one timer (owner "job/<app>/<name>", a row keyed by its due time)
 * and a state row (meta kind "jobstate", key "app/name": "cron<TAB>zone<TAB>due ms") saying
 * which expression the timer was planned from. A fired job runs its hook in a nested txn (a
 * failure rolls back what the hook did, is logged, and the job is planned again), then plans its
 * next run from the expression — in the same txn, so a run that committed never repeats and one
 * lost to a crash fires after the restart. */
#include "hooks/hk_api.h"

#include "sla/sla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct hk_sched *find_sched(const struct hk_conf *c, const char *app, const char *name)
{
    for (size_t i = 0; c && i < c->napps; i++) {
        if (strcmp(c->apps[i].name, app) != 0) continue;
        for (size_t k = 0; k < c->apps[i].nscheds; k++)
            if (strcmp(c->apps[i].scheds[k].name, name) == 0) return &c->apps[i].scheds[k];
    }
    return NULL;
}

/* Plans the next run of job app/s after now: cancels its timer, adds the new one, writes the
 * state. */
static int plan(struct trl_txn *t, const char *app, const struct hk_sched *s, int64_t now)
{
    char owner[160], key[160], state[320];
    snprintf(owner, sizeof(owner), "job/%s/%s", app, s->name);
    snprintf(key, sizeof(key), "%s/%s", app, s->name);
    int rc = trl_timer_cancel(t, owner, NULL);
    int64_t next = trl_cron_next(s->cron, s->tz, now);
    if (!rc && next != TRL_CAL_NEVER) rc = trl_timer_add(t, next, owner, "{}", NULL);
    snprintf(state, sizeof(state), "%s\t%s\t%lld", s->cron_text, s->zone,
             (long long)(next == TRL_CAL_NEVER ? 0 : next));
    if (!rc) rc = trl_meta_put(t, "jobstate", key, state, strlen(state));
    return rc;
}

struct job_run {
    struct trl_hooks_bind *b;
    const struct trl_rec_ctx *cx;
    const char *app;
    const struct hk_sched *s;
};

static int push_job(lua_State *L, void *ud)
{
    const struct job_run *j = ud;
    hk_push_ctx(L, hk_api_bound(hk_vm(L))->frame);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, j->s->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, j->s->cron_text);
    lua_setfield(L, -2, "cron");
    lua_pushstring(L, j->s->zone);
    lua_setfield(L, -2, "timezone");
    return 2;
}

static int run_job(struct trl_txn *nt, void *arg)
{
    struct job_run *j = arg;
    struct trl_hooks_src src = {j->app, j->s->module, NULL, NULL, 0};
    return trl_hooks_run(j->b, nt, j->cx, &src, j->s->fn, push_job, NULL, j);
}

int hk_job_timer(void *ud, struct trl_txn *t, const struct trl_rec_ctx *cx, const char *owner,
                 const char *payload, size_t n)
{
    (void)payload;
    (void)n;
    struct trl_hooks_bind *b = ud;
    char app[64], name[80];
    const char *p = owner + 4, *sl = strchr(p, '/');
    if (!sl || (size_t)(sl - p) >= sizeof(app)) return 0;
    snprintf(app, sizeof(app), "%.*s", (int)(sl - p), p);
    snprintf(name, sizeof(name), "%s", sl + 1);
    const struct hk_conf *c = b->eng && b->ws ? hk_bind_conf(b) : NULL;
    const struct hk_sched *s = find_sched(c, app, name);
    if (!s) {
        trl_log(TRL_LOG_WARN, "scheduled job %s/%s is no longer defined: dropped", app, name);
        char key[160];
        snprintf(key, sizeof(key), "%s/%s", app, name);
        int rc = trl_meta_del(t, "jobstate", key);
        return rc == TRL_ENOTFOUND ? 0 : rc;
    }
    int64_t t0 = trl_mono_ms();
    struct job_run j = {b, cx, app, s};
    int rc = trl_txn_nested(t, run_job, &j);
    if (rc == TRL_EMAPFULL || rc == TRL_EIO) return rc; /* the store: the timer stays */
    if (rc) {
        trl_log(TRL_LOG_WARN, "scheduled job %s/%s (%s.%s) failed and was rolled back: %s", app,
                name, s->module, s->fn, cx->d ? cx->d->message : "?");
        if (cx->d) trl_diag_reset(cx->d);
    } else {
        trl_log(TRL_LOG_INFO, "scheduled job %s/%s ran in %lld ms", app, name,
                (long long)(trl_mono_ms() - t0));
    }
    return plan(t, app, s, cx->now_ms);
}

/* Keeps the job states of jobs the settings still name. */
static bool job_named(void *ud, const char *name)
{
    const char *sl = strchr(name, '/');
    char app[64];
    if (!sl || (size_t)(sl - name) >= sizeof(app)) return false;
    snprintf(app, sizeof(app), "%.*s", (int)(sl - name), name);
    return find_sched(ud, app, sl + 1) != NULL;
}

/* A job that is gone loses its timer with its state. */
static int cancel_job(void *ud, struct trl_txn *t, const char *name)
{
    (void)ud;
    char owner[180];
    snprintf(owner, sizeof(owner), "job/%s", name);
    return trl_timer_cancel(t, owner, NULL);
}

int trl_hooks_sync_jobs(struct trl_hooks_bind *b, struct trl_txn *t, int64_t now,
                        struct trl_diag *d)
{
    if (!b->eng || !b->ws) return 0;
    const struct hk_conf *c = hk_bind_conf(b);
    if (!c) return trl_diag_set(d, TRL_ENOMEM, "hooks: cannot load the app settings");
    int rc = 0;
    for (size_t i = 0; i < c->napps && !rc; i++) {
        const struct hk_app *a = &c->apps[i];
        for (size_t k = 0; k < a->nscheds && !rc; k++) {
            const struct hk_sched *s = &a->scheds[k];
            char key[160], want[300], *have = NULL;
            snprintf(key, sizeof(key), "%s/%s", a->name, s->name);
            snprintf(want, sizeof(want), "%s\t%s\t", s->cron_text, s->zone);
            bool same = trl_meta_get(t, "jobstate", key, &have) == 0 &&
                        strncmp(have, want, strlen(want)) == 0;
            free(have);
            if (!same) rc = plan(t, a->name, s, now);
        }
    }
    size_t gone;
    if (!rc) rc = trl_meta_prune(t, "jobstate", job_named, cancel_job, (void *)c, &gone);
    return rc;
}
