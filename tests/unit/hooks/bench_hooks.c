/*
 * bench_hooks.c — what a Lua hook costs a record write (run by scripts/bench-hooks on a Release
 * build; not a test).
 *
 * A temporary store with the sample app (samples/marketing) installed. Four runs of N creates of
 * marketing_request through trl_wf_rec_create (the API's write path, without HTTP), 1000 creates
 * per write transaction, each run on the same store:
 *   none      the sample's hook module (no create hooks: nothing is called)
 *   trivial   plus before_create(ctx, rec) reading one field
 *   busy      plus before_create setting a field and validate reading three
 *   qc        plus after_create doing one trellis.query (limit 1) and one trellis.create of
 *             another type
 * Each run is measured three times and the fastest kept (the machine is shared); the line gives
 * microseconds per create and the difference to `none`, i.e. the hook's cost per call.
 * Exit 0 whatever the figures; 1 when something cannot be set up.
 */
#include "app/app.h"
#include "hooks/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N     20000
#define BATCH 1000

static const char *const base_module = "local M = {}\n"
                                       "function M.before_transition_submit(ctx, rec, t) end\n";

static const char *const variants[][2] = {
    {"none", ""},
    {"trivial", "function M.before_create(ctx, rec) if rec.budget < 0 then error('x') end end\n"},
    {"busy",
     "function M.before_create(ctx, rec) rec.partner = rec.partner:match('^%s*(.-)%s*$') end\n"
     "function M.validate(ctx, rec, old)\n"
     "  if rec.budget > 1e9 and not rec.description and rec.region == 'east' then\n"
     "    return {budget = 'too much'}\n"
     "  end\n"
     "end\n"},
    {"qc", "function M.after_create(ctx, rec)\n"
           "  local items = trellis.query('marketing_request', 'region = \"east\"', {limit = 1})\n"
           "  trellis.create('bench_note', {note = rec.name .. ' ' .. #items})\n"
           "end\n"},
};

static const char *const note_type =
    "{\"name\": \"bench_note\", \"labels\": {\"en\": \"Note\", \"zh-CN\": \"备注\"}, \"fields\": "
    "[{\"name\": \"note\", \"type\": \"text\", \"labels\": {\"en\": \"Note\", \"zh-CN\": "
    "\"备注\"}}]}";

struct setup {
    const char *module; /* hook module text */
    struct trl_diag *d;
};

static int put_module(struct trl_txn *t, void *arg)
{
    struct setup *s = arg;
    uint64_t v;
    int rc = trl_meta_put(t, "hook", "marketing/marketing_request", s->module, strlen(s->module));
    if (!rc) rc = trl_txn_seq_next(t, "schema_version", &v);
    return rc;
}

static int put_type(struct trl_txn *t, void *arg)
{
    struct setup *s = arg;
    bool ch;
    return trl_schema_put_type(t, "bench_note", note_type, strlen(note_type), NULL, &ch, s->d);
}

struct batch {
    struct trl_hooks_engine *eng;
    int first;
    int n;
    struct trl_diag *d;
};

static int create_batch(struct trl_txn *t, void *arg)
{
    struct batch *b = arg;
    struct trl_catalog *cat = NULL;
    struct trl_wf_set *ws = NULL;
    int rc = trl_catalog_load(t, &cat, b->d);
    if (!rc) rc = trl_wf_set_load(t, cat, &ws, b->d);
    if (rc) {
        trl_catalog_unref(cat);
        return rc;
    }
    const struct trl_type *ty = trl_catalog_type(cat, "marketing_request");
    struct trl_hooks_bind hb;
    trl_hooks_bind_init(&hb, b->eng, cat, ws);
    struct trl_principal who = {.user = "bench", .role = "admin", .nroles = 1, .admin = true};
    snprintf(who.roles[0], sizeof(who.roles[0]), "admin");
    static const char *const regions[] = {"north", "south", "east", "west"};
    for (int i = 0; i < b->n && !rc; i++) {
        char title[64], budget[32];
        snprintf(title, sizeof(title), "Spring promo %d 春季促销", b->first + i);
        snprintf(budget, sizeof(budget), "%d.50", 1000 + (b->first + i) % 90000);
        const char *region = regions[(b->first + i) % 4];
        struct trl_input in[] = {
            {.name = "title", .kind = TRL_IN_STRING, .s = title, .n = strlen(title)},
            {.name = "partner", .kind = TRL_IN_STRING, .s = " Acme ", .n = 6},
            {.name = "region", .kind = TRL_IN_STRING, .s = region, .n = strlen(region)},
            {.name = "budget", .kind = TRL_IN_STRING, .s = budget, .n = strlen(budget)},
        };
        struct trl_rec_ctx cx = {.cat = cat,
                                 .who = &who,
                                 .now_ms = 1790000000000LL + b->first + i,
                                 .request_id = "bench",
                                 .lang = "en",
                                 .d = b->d,
                                 .ev = &hb.ev};
        uint64_t id;
        rc = trl_wf_rec_create(t, &cx, ws, ty, in, 4, &id, NULL, NULL);
    }
    trl_hooks_bind_done(&hb);
    trl_wf_set_unref(ws);
    trl_catalog_unref(cat);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct install {
    struct trl_app_bundle *b;
    struct trl_diag *d;
};

static int install_fn(struct trl_txn *t, void *arg)
{
    struct install *in = arg;
    bool changed;
    return trl_app_install(t, in->b, &changed, in->d);
}

/* One run: N creates in batches; seconds. */
static int run(struct trl_store *st, struct trl_hooks_engine *eng, int *next, double *secs,
               struct trl_diag *d)
{
    double t0 = now_s();
    for (int done = 0; done < N; done += BATCH) {
        struct batch b = {.eng = eng, .first = *next, .n = BATCH, .d = d};
        int rc = trl_store_write(st, create_batch, &b);
        if (rc) return rc;
        *next += BATCH;
    }
    *secs = now_s() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *src = argc > 1 ? argv[1] : ".";
    char dir[] = "/tmp/trellis-bench-hooks.XXXXXX";
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store *st = NULL;
    struct trl_store_opts so = {.dir = dir};
    char app[4096];
    snprintf(app, sizeof(app), "%s/samples/marketing", src);
    struct trl_app_bundle bundle;
    struct trl_hooks_engine *eng = NULL;
    int rc = trl_store_open(&so, &st, &d);
    if (!rc) rc = trl_app_read_dir(app, &bundle, &d);
    struct install ij = {&bundle, &d};
    if (!rc) rc = trl_store_write(st, install_fn, &ij);
    struct setup ts = {.d = &d};
    if (!rc) rc = trl_store_write(st, put_type, &ts);
    struct trl_hooks_engine_opts eo = {0};
    if (!rc) rc = trl_hooks_engine_new(&eo, &eng, &d);
    if (rc) {
        fprintf(stderr, "bench_hooks: setup failed: %s\n", d.message);
        return 1;
    }
    printf("bench_hooks: %d creates per run, %d per transaction, best of 3\n", N, BATCH);
    int next = 0;
    double base = 0;
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]) && !rc; v++) {
        char module[2048];
        snprintf(module, sizeof(module), "%s%sreturn M\n", base_module, variants[v][1]);
        struct setup s = {.module = module, .d = &d};
        if ((rc = trl_store_write(st, put_module, &s))) break;
        double best = 1e9;
        for (int k = 0; k < 3 && !rc; k++) {
            double secs;
            rc = run(st, eng, &next, &secs, &d);
            if (!rc && secs < best) best = secs;
        }
        if (rc) break;
        double us = best / N * 1e6;
        if (v == 0) base = us;
        printf("%-8s %8.2f us/create  %+7.2f us vs none  (%.0f creates/s)\n", variants[v][0], us,
               us - base, N / best);
    }
    if (rc) fprintf(stderr, "bench_hooks: %s (%s)\n", d.message, trl_err_token(rc));
    struct trl_hooks_engine_stats es;
    trl_hooks_engine_stats(eng, &es);
    printf("hook calls %llu, errors %llu, VMs %zu\n", (unsigned long long)es.calls,
           (unsigned long long)es.errors, es.vms);
    trl_hooks_engine_free(eng);
    trl_app_bundle_free(&bundle);
    trl_store_close(st);
    trl_diag_reset(&d);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_hooks: could not remove %s\n", dir);
    return rc ? 1 : 0;
}
