/* hooks_cmd.c — `trellis hooks test|lint APP_DIR`: an app's Lua specs against a temporary store,
 * and luacheck with the sandbox's globals. */
#include "cli.h"

#include "app/app.h"
#include "auth/auth.h"
#include "hooks/hooks.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *help_hooks =
    "usage: trellis hooks test APP_DIR [--filter TEXT]\n"
    "       trellis hooks lint APP_DIR\n"
    "test installs the app in APP_DIR into a temporary store and runs every tests/*_spec.lua\n"
    "(describe / it / expect, see runtime/hooks/README.md): each test runs in its own\n"
    "transaction (users, orgs and groups from tests/fixtures.json are there first),\n"
    "rolled back afterwards, acting as an administrator (trellis.as switches user).\n"
    "It prints each test and a summary line and exits 1 when a test fails.\n"
    "lint runs luacheck (Debian package lua-check) over hooks/ and tests/ with the globals hook\n"
    "code may use (the sandbox's: no io, os beyond time/date/clock, load, ...).\n";

/* tests/fixtures.json: {"orgs": [{"name", "label_en", "label_zh"}], "users": [{"name",
 * "roles", "org", "region", "skills", "manager", "lang"}], "groups": [{"name", "members"}]},
 * created in the temporary store before the specs run. */
static int load_fixtures(struct trl_txn *t, const char *app_dir, struct trl_diag *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/fixtures.json", app_dir);
    char *text = NULL;
    size_t n;
    if (trl_read_file(path, 1 << 20, &text, &n) != 0) return 0; /* none */
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return trl_diag_set(d, TRL_EJSON, "%s is not a JSON object", path);
    }
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "orgs"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(e, "label_en");
        const cJSON *zh = cJSON_GetObjectItemCaseSensitive(e, "label_zh");
        if (!rc && cJSON_IsString(nm))
            rc = trl_auth_org_put(t, nm->valuestring,
                                  cJSON_IsString(en) ? en->valuestring : nm->valuestring,
                                  cJSON_IsString(zh) ? zh->valuestring : nm->valuestring, d);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "users"))
    {
        if (rc) break;
        struct trl_user u;
        memset(&u, 0, sizeof(u));
        const cJSON *v;
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "name")))
            snprintf(u.name, sizeof(u.name), "%s", v->valuestring);
        snprintf(u.display, sizeof(u.display), "%s", u.name);
        snprintf(u.lang, sizeof(u.lang), "%s",
                 cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "lang")) ? v->valuestring
                                                                                 : "en");
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "org")))
            snprintf(u.org, sizeof(u.org), "%s", v->valuestring);
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "region")))
            snprintf(u.region, sizeof(u.region), "%s", v->valuestring);
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "manager")))
            snprintf(u.manager, sizeof(u.manager), "%s", v->valuestring);
        const cJSON *r;
        cJSON_ArrayForEach(
            r, cJSON_GetObjectItemCaseSensitive(e, "roles")) if (cJSON_IsString(r) &&
                                                                 u.nroles < TRL_AUTH_MAX_ROLES)
            snprintf(u.roles[u.nroles++], sizeof(u.roles[0]), "%s", r->valuestring);
        cJSON_ArrayForEach(
            r, cJSON_GetObjectItemCaseSensitive(e, "skills")) if (cJSON_IsString(r) &&
                                                                  u.nskills < TRL_AUTH_MAX_SKILLS)
            snprintf(u.skills[u.nskills++], sizeof(u.skills[0]), "%s", r->valuestring);
        u.active = true;
        rc = trl_auth_user_put(t, &u, d);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "groups"))
    {
        if (rc) break;
        struct trl_group *g = calloc(1, sizeof(*g));
        if (!g) {
            rc = TRL_ENOMEM;
            break;
        }
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(v)) snprintf(g->name, sizeof(g->name), "%s", v->valuestring);
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(
                                  e, "members")) if (cJSON_IsString(m) &&
                                                     g->nmembers < TRL_AUTH_MAX_MEMBERS)
            snprintf(g->members[g->nmembers++], sizeof(g->members[0]), "%s", m->valuestring);
        rc = trl_auth_group_put(t, g, d);
        free(g);
    }
    cJSON_Delete(j);
    if (rc && !d->message[0]) trl_diag_set(d, rc, "%s: cannot create the fixtures", path);
    return rc;
}

struct spec_job {
    const char *dir;
    const struct trl_app_bundle *b;
    const char *filter;
    struct trl_hooks_spec_result res;
    struct trl_diag *d;
    size_t files;
};

static int spec_fn(struct trl_txn *t, void *arg)
{
    struct spec_job *j = arg;
    bool changed;
    int rc = trl_app_install(t, j->b, &changed, j->d);
    if (!rc) rc = load_fixtures(t, j->dir, j->d);
    if (rc) return rc;
    struct trl_catalog *cat = NULL;
    struct trl_wf_set *ws = NULL;
    if ((rc = trl_catalog_load(t, &cat, j->d)) || (rc = trl_wf_set_load(t, cat, &ws, j->d))) {
        trl_catalog_unref(cat);
        return rc;
    }
    struct trl_hooks_engine *e = NULL;
    /* Specs may do more than one hook call's worth of work; the hooks they fire still run
     * within what is left of it. */
    struct trl_hooks_engine_opts eo = {.limits = {.instructions = 50000000, .time_ms = 10000}};
    if ((rc = trl_hooks_engine_new(&eo, &e, j->d))) {
        trl_wf_set_unref(ws);
        trl_catalog_unref(cat);
        return rc;
    }
    struct trl_hooks_bind hb;
    trl_hooks_bind_init(&hb, e, cat, ws);
    hb.testing = true;
    struct trl_principal who = {.user = "spec", .role = "admin", .nroles = 1, .admin = true};
    snprintf(who.roles[0], sizeof(who.roles[0]), "admin");
    struct trl_clock clk;
    trl_clock_system(&clk);
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_rec_ctx cx = {.cat = cat,
                             .who = &who,
                             .now_ms = trl_clock_now(&clk),
                             .request_id = "spec",
                             .lang = "en",
                             .d = &d,
                             .ev = &hb.ev};
    for (size_t i = 0; i < j->b->nfiles && !rc; i++) {
        const struct trl_app_file *f = &j->b->files[i];
        if (strcmp(f->kind, "hooktest") != 0) continue;
        size_t nl = strlen(f->name);
        if (nl <= 5 || strcmp(f->name + nl - 5, "_spec") != 0) continue;
        if (j->filter && !strstr(f->name, j->filter)) continue;
        j->files++;
        rc = trl_hooks_spec_run(&hb, t, &cx, j->b->name, f->name, f->text, f->n, stdout, &j->res);
    }
    trl_diag_reset(&d);
    trl_hooks_bind_done(&hb);
    trl_hooks_engine_free(e);
    trl_wf_set_unref(ws);
    trl_catalog_unref(cat);
    /* Nothing the specs did is kept (the store is thrown away as well). */
    return rc ? rc : TRL_ECONFLICT;
}

static void remove_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(dh))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(dh);
    rmdir(dir);
}

static int hooks_test(const char *app_dir, const char *filter)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_app_bundle b;
    if (trl_app_read_dir(app_dir, &b, &d)) {
        trl_cli_print_diag(&d);
        trl_diag_reset(&d);
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/trellis-spec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "trellis: cannot make a temporary store: %s\n", strerror(errno));
        trl_app_bundle_free(&b);
        return 1;
    }
    struct trl_store *s = NULL;
    struct trl_store_opts so = {.dir = dir};
    int rc = trl_store_open(&so, &s, &d);
    struct spec_job j = {.dir = app_dir, .b = &b, .filter = filter, .d = &d};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc) rc = trl_store_write(s, spec_fn, &j);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    trl_store_close(s);
    remove_tree(dir);
    int exit_code = 0;
    if (rc && rc != TRL_ECONFLICT) {
        fprintf(stderr, "trellis: the specs of %s could not run\n", app_dir);
        trl_cli_print_diag(&d);
        exit_code = 1;
    } else {
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        unsigned total = j.res.passed + j.res.failed + j.res.pending;
        if (!j.files)
            printf("no specs: %s/tests has no *_spec.lua%s\n", app_dir,
                   filter ? " matching the filter" : "");
        printf("%u test%s in %zu file%s: %u passed, %u failed, %u pending (%.0f ms)\n", total,
               total == 1 ? "" : "s", j.files, j.files == 1 ? "" : "s", j.res.passed, j.res.failed,
               j.res.pending, ms);
        exit_code = j.res.failed ? 1 : 0;
    }
    trl_diag_reset(&d);
    trl_app_bundle_free(&b);
    return exit_code;
}

/* The globals hook code may read (runtime/hooks/README.md); specs add the framework's. */
static const char *const read_globals =
    "assert,error,getmetatable,ipairs,next,pairs,pcall,rawequal,rawlen,select,setmetatable,"
    "tonumber,tostring,type,xpcall,require,_VERSION,string,table,math,utf8,coroutine,os,trellis";
static const char *const spec_globals = "describe,it,expect,before_each,after_each,pending";

static bool on_path(const char *prog)
{
    const char *p = getenv("PATH");
    if (!p) return false;
    char buf[4096];
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
        if (n && access(buf, X_OK) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static int run_luacheck(const char *dir, bool spec)
{
    struct stat st;
    if (stat(dir, &st) != 0) return 0;
    char globals[512];
    snprintf(globals, sizeof(globals), "%s%s%s", read_globals, spec ? "," : "",
             spec ? spec_globals : "");
    /* luacheck takes a list after --read-globals: one argument per name. */
    char *argv[96];
    int n = 0;
    argv[n++] = "luacheck";
    argv[n++] = "--no-color";
    argv[n++] = "--codes";
    argv[n++] = "--std";
    argv[n++] = "none";
    argv[n++] = "--no-max-line-length";
    argv[n++] = "--no-unused-args"; /* hook functions have fixed signatures */
    argv[n++] = "--read-globals";
    char *save = NULL;
    for (char *tok = strtok_r(globals, ",", &save); tok && n < 90; tok = strtok_r(NULL, ",", &save))
        argv[n++] = tok;
    argv[n++] = "--";
    argv[n++] = (char *)dir;
    argv[n] = NULL;
    pid_t pid;
    if (posix_spawnp(&pid, "luacheck", NULL, NULL, argv, environ) != 0) {
        fprintf(stderr, "trellis: cannot run luacheck: %s\n", strerror(errno));
        return 1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int hooks_lint(const char *app_dir)
{
    if (!on_path("luacheck")) {
        fprintf(stderr,
                "trellis: luacheck is not installed. On Debian: apt-get install lua-check (or run "
                "scripts/deps test), then run `trellis hooks lint %s` again.\n",
                app_dir);
        return 3;
    }
    char hooks[4096], tests[4096];
    snprintf(hooks, sizeof(hooks), "%s/hooks", app_dir);
    snprintf(tests, sizeof(tests), "%s/tests", app_dir);
    int a = run_luacheck(hooks, false);
    int b = run_luacheck(tests, true);
    return a > b ? a : b;
}

int trl_cli_hooks(int npos, const char *const *pos, bool help, const char *filter)
{
    if (help) return fputs(help_hooks, stdout), 0;
    if (npos != 2) return fputs(help_hooks, stderr), 2;
    if (strcmp(pos[0], "test") == 0) return hooks_test(pos[1], filter);
    if (strcmp(pos[0], "lint") == 0) return hooks_lint(pos[1]);
    fputs(help_hooks, stderr);
    return 2;
}
