/* app.c — reading, installing, exporting and listing apps. */
#include "app.h"

#include "calendar/calendar.h"
#include "hooks/hooks.h"
#include "report/report.h"
#include "workflow/workflow.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct folder {
    const char *dir;        /* sub-folder of the app */
    const char *kind;       /* meta kind */
    const char *ext;        /* file extension */
    const char *owner_kind; /* meta kind naming the owning app, NULL: the key says ("app/name") */
};

static const struct folder folders[] = {
    {"types", "type", ".json", "typeapp"},
    {"calendars", "calendar", ".json", "calendarapp"},
    {"workflows", "workflow", ".json", "workflowapp"},
    {"forms", "form", ".json", NULL},
    {"reports", "report", ".json", "reportapp"},
    {"dashboards", "dashboard", ".json", "dashboardapp"},
    {"i18n", "i18n", ".json", NULL},
    {"hooks", "hook", ".lua", NULL},
    {"tests", "hooktest", ".lua", NULL},
};

/* Refuses a file of app b whose definition another app installed (TRL_ECONFLICT). */
static int owner_conflict(struct trl_txn *t, const struct trl_app_bundle *b,
                          const struct trl_app_file *f, struct trl_diag *d)
{
    const char *owner_kind = NULL;
    for (size_t i = 0; i < sizeof(folders) / sizeof(folders[0]); i++)
        if (strcmp(folders[i].kind, f->kind) == 0) owner_kind = folders[i].owner_kind;
    char *owner = NULL;
    int rc = 0;
    if (owner_kind && trl_meta_get(t, owner_kind, f->name, &owner) == 0 && *owner &&
        strcmp(owner, b->name) != 0)
        rc = trl_diag_set(d, TRL_ECONFLICT, "%s: %s '%s' belongs to app '%s'", f->path, f->kind,
                          f->name, owner);
    free(owner);
    return rc;
}

#define MAX_FILE (4 << 20)

static int read_file(const char *path, char **out, size_t *n, struct trl_diag *d)
{
    int rc = trl_read_file(path, MAX_FILE, out, n);
    if (rc == TRL_ETOOBIG) return trl_diag_set(d, TRL_EINVAL, "%s is larger than 4 MiB", path);
    if (rc == TRL_EIO) return trl_diag_set(d, TRL_EIO, "cannot read %s: %s", path, strerror(errno));
    return rc;
}

static int add_file(struct trl_app_bundle *b, const char *kind, const char *name, const char *rel,
                    char *text, size_t n)
{
    struct trl_app_file *nf = realloc(b->files, (b->nfiles + 1) * sizeof(*nf));
    if (!nf) {
        free(text);
        return TRL_ENOMEM;
    }
    b->files = nf;
    struct trl_app_file *f = &b->files[b->nfiles];
    f->kind = strdup(kind);
    f->name = strdup(name);
    f->path = strdup(rel);
    f->text = text;
    f->n = n;
    b->nfiles++;
    if (!f->kind || !f->name || !f->path) return TRL_ENOMEM;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void trl_app_bundle_free(struct trl_app_bundle *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nfiles; i++) {
        free(b->files[i].kind);
        free(b->files[i].name);
        free(b->files[i].path);
        free(b->files[i].text);
    }
    free(b->files);
    free(b->name);
    free(b->version);
    memset(b, 0, sizeof(*b));
}

static bool valid_name(const char *s)
{
    if (!*s) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

static int check_json(const char *rel, const char *text, size_t n, struct trl_diag *d)
{
    struct trl_diag jd;
    trl_diag_init(&jd);
    int rc = trl_json_check(text, n, 128, &jd);
    if (rc) {
        trl_diag_set(d, TRL_EJSON, "%s: %s", rel, jd.message);
        trl_diag_zh(d, "%s:JSON 格式错误(%s)", rel, jd.message);
        trl_diag_field(d, rel);
    }
    trl_diag_reset(&jd);
    return rc;
}

static bool hook_ref_ok(const char *s)
{
    /* "module" or "module.function" */
    size_t n = strlen(s);
    if (n == 0 || n > 127) return false;
    int dots = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (++dots > 1 || p == s || !p[1]) return false;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* app.json "hooks": {"privileged": ["module", "module.fn"], "limits": {"*" | "module.fn":
 * {"instructions", "memory_kb", "time_ms"}}, "schedules": [{"name", "cron", "timezone", "hook"}]}.
 * TRL_EINVAL naming the path of the first problem. */
static int check_hooks_conf(const cJSON *h, struct trl_diag *d)
{
    if (!h) return 0;
    if (!cJSON_IsObject(h))
        return trl_diag_set(d, TRL_EINVAL, "app.json: \"hooks\" must be an object");
    for (const cJSON *k = h->child; k; k = k->next) {
        if (strcmp(k->string, "privileged") == 0) {
            if (!cJSON_IsArray(k))
                return trl_diag_set(d, TRL_EINVAL,
                                    "app.json: hooks.privileged must be a list of \"module\" or "
                                    "\"module.function\"");
            int i = 0;
            for (const cJSON *e = k->child; e; e = e->next, i++)
                if (!cJSON_IsString(e) || !hook_ref_ok(e->valuestring))
                    return trl_diag_set(d, TRL_EINVAL,
                                        "app.json: hooks.privileged[%d] must be \"module\" or "
                                        "\"module.function\"",
                                        i);
        } else if (strcmp(k->string, "limits") == 0) {
            if (!cJSON_IsObject(k))
                return trl_diag_set(d, TRL_EINVAL, "app.json: hooks.limits must be an object");
            for (const cJSON *e = k->child; e; e = e->next) {
                if ((strcmp(e->string, "*") != 0 && !hook_ref_ok(e->string)) || !cJSON_IsObject(e))
                    return trl_diag_set(d, TRL_EINVAL,
                                        "app.json: hooks.limits.%.80s: keys are \"*\" or "
                                        "\"module.function\", values objects",
                                        e->string);
                for (const cJSON *l = e->child; l; l = l->next) {
                    bool known = strcmp(l->string, "instructions") == 0 ||
                                 strcmp(l->string, "memory_kb") == 0 ||
                                 strcmp(l->string, "time_ms") == 0;
                    double max = strcmp(l->string, "instructions") == 0 ? 1e9
                                 : strcmp(l->string, "memory_kb") == 0  ? 262144
                                                                        : 10000;
                    if (!known || !cJSON_IsNumber(l) || l->valuedouble < 1 || l->valuedouble > max)
                        return trl_diag_set(d, TRL_EINVAL,
                                            "app.json: hooks.limits.%.80s.%.40s: one of "
                                            "instructions (1..1e9), memory_kb (1..262144), "
                                            "time_ms (1..10000)",
                                            e->string, l->string);
                }
            }
        } else if (strcmp(k->string, "schedules") == 0) {
            if (!cJSON_IsArray(k))
                return trl_diag_set(d, TRL_EINVAL, "app.json: hooks.schedules must be a list");
            int i = 0;
            for (const cJSON *e = k->child; e; e = e->next, i++) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *cr = cJSON_GetObjectItemCaseSensitive(e, "cron");
                const cJSON *hk = cJSON_GetObjectItemCaseSensitive(e, "hook");
                const cJSON *tz = cJSON_GetObjectItemCaseSensitive(e, "timezone");
                if (!cJSON_IsString(nm) || !valid_name(nm->valuestring) || !cJSON_IsString(cr) ||
                    !cJSON_IsString(hk) || !strchr(hk->valuestring, '.') ||
                    !hook_ref_ok(hk->valuestring) || (tz && !cJSON_IsString(tz)))
                    return trl_diag_set(d, TRL_EINVAL,
                                        "app.json: hooks.schedules[%d] needs \"name\", \"cron\" "
                                        "and \"hook\" (\"module.function\"), and may give "
                                        "\"timezone\"",
                                        i);
                for (const cJSON *o = k->child; o != e; o = o->next) {
                    const cJSON *on = cJSON_GetObjectItemCaseSensitive(o, "name");
                    if (cJSON_IsString(on) && strcmp(on->valuestring, nm->valuestring) == 0)
                        return trl_diag_set(d, TRL_EINVAL,
                                            "app.json: hooks.schedules[%d].name: '%.64s' is "
                                            "already the name of another job",
                                            i, nm->valuestring);
                }
                struct trl_cron *c = NULL;
                struct trl_diag cd;
                trl_diag_init(&cd);
                int crc = trl_cron_parse(cr->valuestring, &c, &cd);
                trl_cron_free(c);
                if (crc) {
                    trl_diag_set(d, TRL_EINVAL, "app.json: hooks.schedules[%d].cron: %.300s", i,
                                 cd.message);
                    trl_diag_reset(&cd);
                    return TRL_EINVAL;
                }
                if (tz) {
                    struct trl_tz *z = NULL;
                    crc = trl_tz_load(NULL, tz->valuestring, &z, &cd);
                    trl_tz_free(z);
                    trl_diag_reset(&cd);
                    if (crc)
                        return trl_diag_set(d, TRL_EINVAL,
                                            "app.json: hooks.schedules[%d].timezone: unknown "
                                            "zone '%.64s'",
                                            i, tz->valuestring);
                }
            }
        } else {
            return trl_diag_set(d, TRL_EINVAL,
                                "app.json: hooks.%.60s is unknown (privileged, limits, "
                                "schedules)",
                                k->string);
        }
    }
    return 0;
}

int trl_app_read_dir(const char *dir, struct trl_app_bundle *b, struct trl_diag *d)
{
    char path[4096];
    char *text = NULL;
    size_t n;
    int rc;
    memset(b, 0, sizeof(*b));
    snprintf(path, sizeof(path), "%s/app.json", dir);
    if ((rc = read_file(path, &text, &n, d))) return rc;
    if ((rc = check_json("app.json", text, n, d))) {
        free(text);
        return rc;
    }
    cJSON *j = cJSON_ParseWithLength(text, n);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    if (!cJSON_IsString(nm) || !valid_name(nm->valuestring) || !cJSON_IsString(ver)) {
        cJSON_Delete(j);
        free(text);
        trl_diag_field(d, "app.json");
        return trl_diag_set(d, TRL_EINVAL,
                            "app.json: needs \"name\" (lower-case letters, digits, _ and -) and "
                            "\"version\" strings");
    }
    static const char *app_keys[] = {"name",         "version", "labels", "description",
                                     "dependencies", "roles",   "hooks"};
    for (const cJSON *k = j->child; k; k = k->next) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(app_keys) / sizeof(app_keys[0]) && !ok; i++)
            ok = strcmp(k->string, app_keys[i]) == 0;
        if (!ok) {
            trl_diag_field(d, "app.json");
            trl_diag_set(d, TRL_EINVAL, "app.json: unknown key '%s'", k->string);
            cJSON_Delete(j);
            free(text);
            return TRL_EINVAL;
        }
    }
    if ((rc = check_hooks_conf(cJSON_GetObjectItemCaseSensitive(j, "hooks"), d))) {
        cJSON_Delete(j);
        free(text);
        trl_diag_field(d, "app.json");
        return rc;
    }
    b->name = strdup(nm->valuestring);
    b->version = strdup(ver->valuestring);
    cJSON_Delete(j);
    if ((rc = add_file(b, "app", b->name, "app.json", text, n))) goto fail;

    /* Never ignore a file silently: every top-level entry must be something an app holds. */
    DIR *top = opendir(dir);
    if (!top) {
        rc = trl_diag_set(d, TRL_EIO, "cannot read %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *te;
    while (!rc && (te = readdir(top))) {
        const char *fn = te->d_name;
        if (fn[0] == '.') continue;
        bool known = strcmp(fn, "app.json") == 0 || strcmp(fn, "README.md") == 0 ||
                     strncmp(fn, "LICENSE", 7) == 0 ||
                     (strlen(fn) > 3 && strcmp(fn + strlen(fn) - 3, ".md") == 0);
        for (size_t fi = 0; fi < sizeof(folders) / sizeof(folders[0]) && !known; fi++)
            known = strcmp(fn, folders[fi].dir) == 0;
        if (!known) {
            trl_diag_field(d, fn);
            rc =
                trl_diag_set(d, TRL_EINVAL,
                             "%s: not part of an app (expected app.json, README.md and the folders "
                             "types, calendars, workflows, forms, reports, i18n, hooks, tests)",
                             fn);
        }
    }
    closedir(top);
    if (rc) goto fail;
    for (size_t fi = 0; fi < sizeof(folders) / sizeof(folders[0]); fi++) {
        snprintf(path, sizeof(path), "%s/%s", dir, folders[fi].dir);
        DIR *dh = opendir(path);
        if (!dh) continue;
        char **names = NULL;
        size_t nn = 0;
        struct dirent *de;
        while ((de = readdir(dh))) {
            if (de->d_name[0] == '.') continue;
            char **nn2 = realloc(names, (nn + 1) * sizeof(*names));
            if (!nn2 || !(nn2[nn] = strdup(de->d_name))) {
                names = nn2 ? nn2 : names;
                rc = TRL_ENOMEM;
                break;
            }
            names = nn2;
            nn++;
        }
        closedir(dh);
        if (!rc && nn > 1) qsort(names, nn, sizeof(*names), name_cmp);
        for (size_t i = 0; i < nn && !rc; i++) {
            const char *fn = names[i];
            size_t fl = strlen(fn), el = strlen(folders[fi].ext);
            char rel[512];
            snprintf(rel, sizeof(rel), "%s/%s", folders[fi].dir, fn);
            if (strcmp(folders[fi].dir, "tests") == 0 && strcmp(fn, "fixtures.json") == 0)
                continue; /* users, orgs and groups for `trellis hooks test`: not installed */
            if (fl <= el || strcmp(fn + fl - el, folders[fi].ext) != 0) {
                /* Never ignore a file silently. */
                trl_diag_field(d, rel);
                rc = trl_diag_set(d, TRL_EINVAL,
                                  "%s: unexpected file (only *%s files belong in %s/)", rel,
                                  folders[fi].ext, folders[fi].dir);
                break;
            }
            char base[256];
            snprintf(base, sizeof(base), "%.*s", (int)(fl - el), fn);
            if (!valid_name(base)) {
                trl_diag_field(d, rel);
                rc = trl_diag_set(d, TRL_EINVAL,
                                  "%s: file names use lower-case letters, digits, _ and -", rel);
                break;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, rel);
            if ((rc = read_file(path, &text, &n, d))) break;
            if (strcmp(folders[fi].ext, ".json") == 0) {
                if ((rc = check_json(rel, text, n, d))) {
                    free(text);
                    break;
                }
                cJSON *dj = cJSON_ParseWithLength(text, n);
                const cJSON *dn = cJSON_GetObjectItemCaseSensitive(dj, "name");
                if (!cJSON_IsObject(dj) || !cJSON_IsString(dn) ||
                    strcmp(dn->valuestring, base) != 0) {
                    cJSON_Delete(dj);
                    free(text);
                    trl_diag_field(d, rel);
                    rc = trl_diag_set(d, TRL_EINVAL,
                                      "%s: \"name\" must be \"%s\", as the file is named", rel,
                                      base);
                    break;
                }
                cJSON_Delete(dj);
            } else if (!trl_utf8_valid(text, n)) {
                free(text);
                trl_diag_field(d, rel);
                rc = trl_diag_set(d, TRL_EINVAL, "%s: not valid UTF-8", rel);
                break;
            }
            rc = add_file(b, folders[fi].kind, base, rel, text, n);
        }
        for (size_t i = 0; i < nn; i++)
            free(names[i]);
        free(names);
        if (rc) goto fail;
    }
    return 0;
fail:
    trl_app_bundle_free(b);
    return rc;
}

/* Messages and field errors of a refused definition name its file. Returns rc. */
static int prefix_errors(const struct trl_app_file *f, struct trl_diag *d, int rc)
{
    char msg[sizeof(d->message)];
    snprintf(msg, sizeof(msg), "%s", d->message);
    snprintf(d->message, sizeof(d->message), "%s: %.400s", f->path, msg);
    for (size_t k = 0; k < d->nferrs; k++) {
        char *p = malloc(strlen(f->path) + strlen(d->ferrs[k].field) + 3);
        if (!p) return TRL_ENOMEM;
        sprintf(p, "%s%s%s", f->path, *d->ferrs[k].field ? ": " : "", d->ferrs[k].field);
        free(d->ferrs[k].field);
        d->ferrs[k].field = p;
    }
    return rc;
}

/* `require` while checking a module being installed: the bundle's other hook modules. */
static int resolve_bundle(void *ud, const char *app, const char *module, struct trl_hooks_src *out,
                          struct trl_diag *d)
{
    (void)d;
    const struct trl_app_bundle *b = ud;
    for (size_t i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].kind, "hook") == 0 && strcmp(b->files[i].name, module) == 0) {
            *out = (struct trl_hooks_src){app, module, "check", b->files[i].text, b->files[i].n};
            return 0;
        }
    return TRL_ENOTFOUND;
}

struct stale {
    const struct trl_app_bundle *b;
    const char *kind;
};

/* Keeps the stored "app/name" keys of other apps and those whose file b still has. */
static bool still_there(void *ud, const char *name)
{
    const struct stale *st = ud;
    size_t al = strlen(st->b->name);
    if (strncmp(name, st->b->name, al) != 0 || name[al] != '/') return true;
    for (size_t i = 0; i < st->b->nfiles; i++)
        if (strcmp(st->b->files[i].kind, st->kind) == 0 &&
            strcmp(st->b->files[i].name, name + al + 1) == 0)
            return true;
    return false;
}

/* The snapshot reports are checked against, loaded on the first report (owned). */
struct defs {
    struct trl_catalog *cat;
    struct trl_wf_set *ws;
};

/* Every scheduled job names a hook module the app has. */
static int check_schedules(const struct trl_app_bundle *b, struct trl_diag *d)
{
    const struct trl_app_file *app = NULL;
    for (size_t i = 0; i < b->nfiles && !app; i++)
        if (strcmp(b->files[i].kind, "app") == 0) app = &b->files[i];
    if (!app) return 0;
    cJSON *j = cJSON_ParseWithLength(app->text, app->n);
    const cJSON *sc =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "hooks"), "schedules");
    int rc = 0, i = 0;
    for (const cJSON *e = cJSON_IsArray(sc) ? sc->child : NULL; e && !rc; e = e->next, i++) {
        const cJSON *hk = cJSON_GetObjectItemCaseSensitive(e, "hook");
        const char *dot = cJSON_IsString(hk) ? strchr(hk->valuestring, '.') : NULL;
        if (!dot) continue; /* refused when read */
        bool found = false;
        for (size_t k = 0; k < b->nfiles && !found; k++)
            found =
                strcmp(b->files[k].kind, "hook") == 0 &&
                strlen(b->files[k].name) == (size_t)(dot - hk->valuestring) &&
                strncmp(b->files[k].name, hk->valuestring, (size_t)(dot - hk->valuestring)) == 0;
        if (!found) {
            trl_diag_field(d, "app.json");
            rc = trl_diag_set(d, TRL_EVALIDATION,
                              "app.json: hooks.schedules[%d].hook: the app has no module "
                              "hooks/%.*s.lua",
                              i, (int)(dot - hk->valuestring), hk->valuestring);
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int install(struct trl_txn *t, const struct trl_app_bundle *b, bool *changed,
                   struct trl_diag *d, struct defs *x)
{
    *changed = false;
    int src = check_schedules(b, d);
    if (src) return src;
    /* Types first in two passes: every type exists before refs between them are checked. */
    for (size_t i = 0; i < b->nfiles; i++) {
        const struct trl_app_file *f = &b->files[i];
        int rc = owner_conflict(t, b, f, d);
        if (rc) return rc;
        if (strcmp(f->kind, "type") == 0) {
            bool ch = false;
            rc = trl_schema_put_type(t, f->name, f->text, f->n, b->name, &ch, d);
            if (rc) return prefix_errors(f, d, rc);
            *changed |= ch;
        } else if (strcmp(f->kind, "calendar") == 0) {
            bool ch = false;
            rc = trl_wf_calendar_put(t, f->name, f->text, f->n, b->name, &ch, d);
            if (rc) return prefix_errors(f, d, rc);
            *changed |= ch;
        } else if (strcmp(f->kind, "report") == 0 || strcmp(f->kind, "dashboard") == 0) {
            bool report = strcmp(f->kind, "report") == 0;
            /* Reports are checked against the types and workflows as installed so far (their
             * folders come first). */
            if (report && !x->cat) {
                if ((rc = trl_catalog_load(t, &x->cat, d)) ||
                    (rc = trl_wf_set_load(t, x->cat, &x->ws, d)))
                    return rc;
            }
            bool ch = false;
            rc = report ? trl_report_put(t, x->cat, x->ws, f->name, f->text, f->n, b->name, &ch, d)
                        : trl_dashboard_put(t, f->name, f->text, f->n, b->name, &ch, d);
            if (rc) return prefix_errors(f, d, rc);
            *changed |= ch;
        } else if (strcmp(f->kind, "workflow") == 0) {
            bool ch = false;
            rc = trl_wf_put(t, f->name, f->text, f->n, b->name, &ch, d);
            if (rc) return prefix_errors(f, d, rc);
            *changed |= ch;
        } else {
            char *canon = NULL;
            if (strcmp(f->kind, "hook") == 0) {
                /* Compiled and run before anything is stored: a broken module is refused. */
                if ((rc = trl_hooks_check(b->name, f->name, f->text, f->n, resolve_bundle,
                                          (void *)b, d)))
                    return prefix_errors(f, d, rc == TRL_EHOOK ? TRL_EVALIDATION : rc);
                canon = trl_strndup(f->text, f->n);
            } else if (strcmp(f->kind, "hooktest") == 0) {
                canon = trl_strndup(f->text, f->n);
            } else {
                canon = trl_schema_canonical_json(f->text, f->n, d);
            }
            if (!canon) return d->code ? d->code : TRL_ENOMEM;
            /* Definitions of other kinds are namespaced by app: "app/name". */
            char key[300];
            if (strcmp(f->kind, "app") == 0)
                snprintf(key, sizeof(key), "%s", f->name);
            else
                snprintf(key, sizeof(key), "%s/%s", b->name, f->name);
            char *old = NULL;
            bool same = trl_meta_get(t, f->kind, key, &old) == 0 && strcmp(old, canon) == 0;
            free(old);
            rc = same ? 0 : trl_meta_put(t, f->kind, key, canon, strlen(canon));
            free(canon);
            if (rc) return rc;
            *changed |= !same;
        }
    }
    /* Hook modules and specs the app no longer has are removed (a stale hook would keep
     * running). */
    static const char *const gone_kinds[] = {"hook", "hooktest"};
    for (size_t k = 0; k < 2; k++) {
        struct stale st = {.b = b, .kind = gone_kinds[k]};
        size_t gone;
        int rc = trl_meta_prune(t, gone_kinds[k], still_there, NULL, &st, &gone);
        if (rc) return rc;
        if (gone) *changed = true;
    }
    if (*changed) {
        /* Definitions read into snapshots (hooks, app settings) change with the version. */
        uint64_t ver;
        int rc = trl_txn_seq_next(t, "schema_version", &ver);
        if (rc) return rc;
    }
    /* Every workflow must fit the types as installed now. */
    return trl_wf_check_all(t, d);
}

int trl_app_install(struct trl_txn *t, const struct trl_app_bundle *b, bool *changed,
                    struct trl_diag *d)
{
    struct defs x = {0};
    int rc = install(t, b, changed, d, &x);
    trl_wf_set_unref(x.ws);
    trl_catalog_unref(x.cat);
    return rc;
}

static int write_file(const char *dir, const char *sub, const char *name, const char *ext,
                      const char *text, struct trl_diag *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    if (trl_mkdir_p(path, 0755))
        return trl_diag_set(d, TRL_EIO, "cannot create %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s%s%s/%s%s", dir, sub ? "/" : "", sub ? sub : "", name, ext);
    FILE *f = fopen(path, "wb");
    if (!f) return trl_diag_set(d, TRL_EIO, "cannot write %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    if (fclose(f) || !ok) return trl_diag_set(d, TRL_EIO, "cannot write %s", path);
    return 0;
}

struct export_ctx {
    const char *app;
    const char *dir;
    const char *sub;
    const char *ext;
    struct trl_txn *t;
    struct trl_diag *d;
    const char *owner_kind; /* "typeapp", "workflowapp": definitions keyed by bare name */
};

static int export_one(void *ud, const char *name, const char *json, size_t n)
{
    struct export_ctx *e = ud;
    (void)n;
    if (e->owner_kind) {
        char *owner = NULL;
        bool mine =
            trl_meta_get(e->t, e->owner_kind, name, &owner) == 0 && strcmp(owner, e->app) == 0;
        free(owner);
        if (!mine) return 0;
        return write_file(e->dir, e->sub, name, e->ext, json, e->d);
    }
    size_t al = strlen(e->app);
    if (strncmp(name, e->app, al) != 0 || name[al] != '/') return 0;
    return write_file(e->dir, e->sub, name + al + 1, e->ext, json, e->d);
}

int trl_app_export(struct trl_txn *t, const char *name, const char *dir, struct trl_diag *d)
{
    char *app = NULL;
    int rc = trl_meta_get(t, "app", name, &app);
    if (rc == TRL_ENOTFOUND)
        return trl_diag_set(d, TRL_ENOTFOUND, "no app '%s' is installed", name);
    if (rc) return rc;
    rc = write_file(dir, NULL, "app", ".json", app, d);
    free(app);
    if (rc) return rc;
    for (size_t fi = 0; fi < sizeof(folders) / sizeof(folders[0]) && !rc; fi++) {
        struct export_ctx e = {.app = name,
                               .dir = dir,
                               .sub = folders[fi].dir,
                               .ext = folders[fi].ext,
                               .t = t,
                               .d = d,
                               .owner_kind = folders[fi].owner_kind};
        rc = trl_meta_each(t, folders[fi].kind, export_one, &e);
    }
    return rc;
}

struct list_ctx {
    struct trl_txn *t;
    struct trl_buf *out;
    size_t n;
    const char *app;
    size_t ntypes;
};

static int list_type(void *ud, const char *name, const char *json, size_t n)
{
    struct list_ctx *l = ud;
    (void)json, (void)n;
    char *owner = NULL;
    bool mine = trl_meta_get(l->t, "typeapp", name, &owner) == 0 && strcmp(owner, l->app) == 0;
    free(owner);
    if (!mine) return 0;
    int rc = trl_buf_adds(l->out, l->ntypes++ ? "," : "");
    return rc || trl_buf_add_json_str(l->out, name, strlen(name));
}

static int list_app(void *ud, const char *name, const char *json, size_t n)
{
    struct list_ctx *l = ud;
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(j, "labels");
    char *lab = labels ? cJSON_PrintUnformatted(labels) : NULL;
    int rc = trl_buf_adds(l->out, l->n++ ? "," : "") || trl_buf_adds(l->out, "{\"name\":") ||
             trl_buf_add_json_str(l->out, name, strlen(name)) ||
             trl_buf_adds(l->out, ",\"version\":");
    if (!rc && cJSON_IsString(ver))
        rc = trl_buf_add_json_str(l->out, ver->valuestring, strlen(ver->valuestring));
    else if (!rc)
        rc = trl_buf_adds(l->out, "null");
    rc = rc || trl_buf_adds(l->out, ",\"labels\":") || trl_buf_adds(l->out, lab ? lab : "{}") ||
         trl_buf_adds(l->out, ",\"types\":[");
    free(lab);
    cJSON_Delete(j);
    if (rc) return TRL_ENOMEM;
    struct list_ctx tl = {.t = l->t, .out = l->out, .app = name};
    rc = trl_meta_each(l->t, "type", list_type, &tl);
    return rc ? rc : trl_buf_adds(l->out, "]}");
}

int trl_app_list(struct trl_txn *t, struct trl_buf *out)
{
    struct list_ctx l = {.t = t, .out = out};
    int rc = trl_buf_addc(out, '[');
    if (!rc) rc = trl_meta_each(t, "app", list_app, &l);
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc;
}
