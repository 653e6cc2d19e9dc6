/* More Lua hooks against the real server: the hook features test_hooks.c does not cover.
 *
 * 1. Custom endpoints (/api/v1/apps/{app}/x/{name}, module `endpoints`): GET with query
 *    parameters and a body-less answer (204), POST writing a record (201), per-method tables and
 *    a plain function for any method, 405 with Allow, 404 for unknown endpoints, apps and bad
 *    names, 401 without credentials, a GET that tries to write (500 hook_failed: reads only), a
 *    POST failing after it wrote (nothing stored), invalid JSON (400), Chinese text both ways,
 *    and the caller's permissions (a partner sees only their org's records).
 * 2. Computed fields ("computed": true, module local/<type>, computed.<field>): shown by GET,
 *    lists (also with fields=) and the answers of POST/PATCH, null without a hook, refused as
 *    input (422 read_only), in filters and sorts (400); a value the field cannot hold fails the
 *    read (500 hook_failed naming the hook) and rolls back a write whose answer it is; type
 *    definitions refusing computed + required/unique/indexed/default (422 naming the path);
 *    field permissions hide computed fields (their hook is not even called).
 * 3. Scheduled jobs (app.json hooks.schedules, `serve --test-clock`): a job runs once per due
 *    time, as the system user, a failing run is rolled back and runs again at its next time, a
 *    reinstall with another (or no) schedule re-plans it; app install refuses a bad cron or an
 *    unknown zone naming hooks.schedules[i].
 * 4. trellis.log(msg, {history = true}): notes in the event of the change being written (before
 *    hooks, validate, named transition hooks), a "note" event of its own after an update;
 *    `trellis check` stays clean.
 * 5. App install and hooks: a syntax error in hooks/x.lua is refused naming the file and line and
 *    installs nothing; a module the app no longer has is removed on reinstall (not listed, not
 *    run); a module requiring a sibling at top level installs and runs.
 * 6. `trellis hooks test` (a failing spec: exit 1 with file:line; no tests folder: "no specs",
 *    exit 0) and `trellis hooks lint` (a hook using io.open is flagged, naming the global).
 *
 * Every refused request also checks that the watched record types are exactly as before (lists
 * with count=exact, every record and its history by id); `trellis check` runs after each test.
 *
 * Test case "regressions" holds tests of behaviour README.md documents but the runtime does not
 * have (yet). They are compiled always but registered only when TRELLIS_HOOKS_REGRESSIONS is set,
 * so that CI stays green; each comment says what is expected and what happens.
 */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct srv S;
static const char *MR = "/api/v1/records/marketing_request";
static const char *HOOKS = "/api/v1/meta/hooks";
static const char *EP_FILE = "marketing/hooks/endpoints.lua";

enum { ANN, BOB, RITA, NUSERS };
static struct test_user U[NUSERS] = {
    [ANN] = {"ann", "partner", "acme", ""},
    [BOB] = {"bob", "partner", "globex", ""},
    [RITA] = {"rita", "reviewer", NULL, ""},
};
#define H(u) (U[u].hdr)

/* ---------------------------------------------------------------------------------------------
 * Server
 */
/* The record types whose records (and histories) a refusal must leave alone; with fields, only
 * those columns are compared (for types whose computed fields may fail to read). */
static struct watched watched[8];
static int nwatched;

static void watch_fields(const char *type, const char *fields)
{
    ck_assert_int_lt(nwatched, 8);
    watched[nwatched].type = type;
    watched[nwatched++].fields = fields;
}

static void watch(const char *type)
{
    watch_fields(type, NULL);
}

static void setup(void)
{
    srv_up(&S, "--test-clock", (const char *[]){"acme", "globex", NULL}, U, NUSERS);
    nwatched = 0;
    watch("marketing_request");
}

static void teardown(void)
{
    srv_teardown(&S);
}

/* ---------------------------------------------------------------------------------------------
 * Hook modules
 */
/* The modules GET /api/v1/meta/hooks lists, as "app/module" joined by commas (sorted). */
static void module_list(char *out, size_t n)
{
    cJSON *items, *j = api_get_items(&S, ADMIN, &items, "%s", HOOKS);
    cJSON *names = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        char k[160];
        snprintf(k, sizeof(k), "%s/%s", obj_str(it, "app"), obj_str(it, "module"));
        cJSON_AddItemToArray(names, cJSON_CreateString(k));
    }
    ck_assert(json_join_sorted(names, out, n));
    cJSON_Delete(names);
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------------------------------------
 * Requests and "changes nothing"
 */
/* One request as auth (ADMIN, API_ANON or an "Authorization: ..." header), extra one more header
 * or NULL; the status, the answer in out. */
static long request(const char *auth, const char *extra, const char *method, const char *path,
                    const char *body, struct resp *out)
{
    return api_request(&S, auth, extra, method, path, body, out);
}

/* refused(auth, method, body, want, out, fmt, ...): a request that must be refused as want says
 * and change nothing in the watched types; the answer is left in out when out is not NULL. */
#define refused(...) assert_refused(&S, watched, nwatched, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------------
 * Records
 */
/* POST body to the records of type as auth: 201 and the new id. */
static long long rec_create(const char *auth, const char *type, const char *body)
{
    long long id = api_create(&S, auth, body, "/api/v1/records/%s", type);
    ck_assert_int_gt(id, 0);
    return id;
}

static long long mr_create(const char *auth, const char *title)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"title\":\"%s\",\"partner\":\"P\",\"budget\":\"10\",\"start_date\":\"2027-03-01\"}",
             title);
    return rec_create(auth, "marketing_request", body);
}

/* Record type/id as the administrator sees it, as JSON text (owned). */
static char *rec_text(const char *auth, const char *type, long long id)
{
    return api_get_text(&S, auth, "/api/v1/records/%s/%lld", type, id);
}

#define ASSERT_JSON_HAS(text, subset)                                                              \
    ck_assert_msg(json_contains(text, subset), "want %s in %s", subset, text)

/* The record type/id (read as auth) contains subset. */
#define ASSERT_REC(auth, type, id, subset)                                                         \
    do {                                                                                           \
        char *t_ = rec_text(auth, type, id);                                                       \
        ck_assert_msg(json_contains(t_, subset), "%s %lld: want %s in %s", type, (long long)(id),  \
                      subset, t_);                                                                 \
        free(t_);                                                                                  \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Files, apps and the CLI
 */
static void write_text(const char *dir, const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    mkdir(p, 0755); /* one level of folders: types, hooks, tests */
    *slash = '/';
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "cannot write %s", p);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* A new empty folder under the suite's scratch folder, into dir. */
static void scratch_dir(char *dir, size_t n)
{
    snprintf(dir, n, "%s/appXXXXXX", tmpreg_dir()[0] ? tmpreg_dir() : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* `trellis app install dir --data S.dir` (the server stopped); the exit status, output in out. */
static int app_install(const char *dir, char **out)
{
    const char *argv[] = {"app", "install", dir, "--data", S.dir, NULL};
    return run_trellis(argv, out, 60);
}

/* `trellis app list --data S.dir` (the server stopped), owned. */
static char *app_list(void)
{
    const char *argv[] = {"app", "list", "--data", S.dir, NULL};
    char *out = NULL;
    ck_assert_int_eq(run_trellis(argv, &out, 60), 0);
    return out;
}

/* Stops the server, installs dir (which must succeed) and starts it again. */
static void reinstall(const char *dir)
{
    srv_stop(&S);
    char *out = NULL;
    int rc = app_install(dir, &out);
    ck_assert_msg(rc == 0, "app install %s: %d %s", dir, rc, out);
    free(out);
    ck_assert_int_eq(srv_start(&S), 0);
}

/* ---------------------------------------------------------------------------------------------
 * The jobs app: job_run records written by its scheduled job, job_ctl telling the job to fail,
 * a job_run module that requires a sibling at its top level.
 */
static const char *JOB_RUN_TYPE =
    "{\"name\":\"job_run\",\"fields\":["
    "{\"name\":\"job\",\"type\":\"text\"},{\"name\":\"who\",\"type\":\"text\"},"
    "{\"name\":\"cron\",\"type\":\"text\"},{\"name\":\"tz\",\"type\":\"text\"},"
    "{\"name\":\"at\",\"type\":\"datetime\"},{\"name\":\"stamp\",\"type\":\"text\"}]}\n";
static const char *JOB_CTL_TYPE =
    "{\"name\":\"job_ctl\",\"fields\":[{\"name\":\"fail\",\"type\":\"bool\"}]}\n";
static const char *JOBS_LUA =
    "local M = {}\n"
    "function M.tick(ctx, job)\n"
    "  trellis.create('job_run', {job = job.name, who = ctx.user.id, cron = job.cron,\n"
    "    tz = job.timezone, at = ctx.now})\n"
    "  if trellis.count('job_ctl', 'fail = true') > 0 then error('told to fail') end\n"
    "end\n"
    "return M\n";
static const char *HELPER_LUA = "return { stamp = function(s) return 'stamped ' .. s end }\n";
static const char *JOB_RUN_LUA = "local helper = require('helper')\n"
                                 "local M = {}\n"
                                 "function M.before_create(ctx, rec)\n"
                                 "  rec.stamp = helper.stamp(rec.job or '-')\n"
                                 "end\n"
                                 "return M\n";
static const char *SCHED_V1 = "[{\"name\":\"tick\",\"cron\":\"0 9 * * *\","
                              "\"timezone\":\"Asia/Shanghai\",\"hook\":\"jobs.tick\"}]";
static const char *SCHED_V2 =
    "[{\"name\":\"tick\",\"cron\":\"30 13 * * *\",\"timezone\":\"UTC\",\"hook\":\"jobs.tick\"}]";

/* Writes the jobs app into a new scratch folder (dir): version, its schedules (a JSON list, or
 * NULL for none), with or without the job_run module, plus one more file when extra_rel is not
 * NULL. */
static void write_jobs_app(char *dir, size_t n, const char *version, const char *schedules,
                           bool job_run_module, const char *extra_rel, const char *extra_text)
{
    scratch_dir(dir, n);
    char app[1024];
    snprintf(app, sizeof(app), "{\"name\":\"jobsapp\",\"version\":\"%s\"%s%s%s}\n", version,
             schedules ? ",\"hooks\":{\"schedules\":" : "", schedules ? schedules : "",
             schedules ? "}" : "");
    write_text(dir, "app.json", app);
    write_text(dir, "types/job_run.json", JOB_RUN_TYPE);
    write_text(dir, "types/job_ctl.json", JOB_CTL_TYPE);
    write_text(dir, "hooks/jobs.lua", JOBS_LUA);
    write_text(dir, "hooks/helper.lua", HELPER_LUA);
    if (job_run_module) write_text(dir, "hooks/job_run.lua", JOB_RUN_LUA);
    if (extra_rel) write_text(dir, extra_rel, extra_text);
}

/* Writes the jobs app 1.0.0 (SCHED_V1, with the job_run module) into a new scratch folder (dir),
 * installs it and watches job_run. */
static void install_jobs_v1(char *dir, size_t n)
{
    write_jobs_app(dir, n, "1.0.0", SCHED_V1, true, NULL, NULL);
    reinstall(dir);
    watch("job_run");
}

/* The first hh:mm UTC strictly after now. */
static int64_t next_utc(int64_t now, int hh, int mm)
{
    int64_t t = now - now % DAY_MS + hh * HOUR_MS + mm * MIN_MS;
    return t <= now ? t + DAY_MS : t;
}

static long job_runs(void)
{
    return count_records_ids(&S, "job_run");
}

/* No timer fires while we look: the clock was moved (which wakes the timers) and nothing may
 * happen; a second is ample for the writer. */
static void settle(void)
{
    wait_ms(1000);
}

/* The first hh:mm UTC after the test clock's now, the due time: the clock is moved to a minute
 * before it and the server left to plan its jobs (it plans them at its first timer check after a
 * start: a clock already past due would plan the next one). */
static int64_t arm_next(int hh, int mm)
{
    int64_t due = next_utc(clock_now_ms(&S), hh, mm);
    clock_set_ms(&S, due - MIN_MS);
    settle();
    return due;
}

/* The job_run records, oldest first, as "cron|tz|who|stamp" lines (owned). */
static char *runs_text(void)
{
    cJSON *items,
        *j = api_get_items(&S, ADMIN, &items, "/api/v1/records/job_run?sort=id&limit=1000");
    char *out = calloc(1, 8192);
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        snprintf(out + strlen(out), 8192 - strlen(out), "%s|%s|%s|%s|%s\n", obj_str(it, "job"),
                 obj_str(it, "cron"), obj_str(it, "tz"), obj_str(it, "who"),
                 obj_str(it, "stamp") ? obj_str(it, "stamp") : "(null)");
    }
    cJSON_Delete(j);
    return out;
}

#define ASSERT_RUNS(want)                                                                          \
    do {                                                                                           \
        char *r_ = runs_text();                                                                    \
        ck_assert_msg(strcmp(r_, want) == 0, "job runs:\n%s\nwant:\n%s", r_, want);                \
        free(r_);                                                                                  \
    } while (0)

/* The last job_run (as JSON, owned). */
static cJSON *last_run(void)
{
    cJSON *items, *j = api_get_items(&S, ADMIN, &items, "/api/v1/records/job_run?sort=-id&limit=1");
    ck_assert_int_eq(cJSON_GetArraySize(items), 1);
    cJSON *r = cJSON_Duplicate(cJSON_GetArrayItem(items, 0), true);
    cJSON_Delete(j);
    return r;
}

/* How many times the server log holds needle. */
static int server_log_count(const char *needle)
{
    FILE *f = fopen(S.log, "r");
    if (!f) return 0;
    int n = 0;
    char line[8192];
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* =============================================================================================
 * 1. Custom endpoints
 */
static const char *EP_LUA =
    "local M = {stats = {}, ping = {}, mine = {}, writer = {}}\n"
    "function M.stats.GET(ctx, req)\n"
    "  return {drafts = trellis.count('marketing_request', 'state = \"draft\"'),\n"
    "    q = req.params.q, zh = req.params.zh, n = tonumber(req.params.n), flag = "
    "req.params.flag,\n"
    "    user = ctx.user.id, method = req.method, name = req.name, no_body = req.body == nil}\n"
    "end\n"
    "function M.stats.POST(ctx, req)\n"
    "  local r = trellis.create('marketing_request', req.body)\n"
    "  return 201, {id = r.id, title = r.title, owner = r.owner, org = r.org, state = r.state,\n"
    "    msg = '已创建:' .. r.title, lang = ctx.lang}\n"
    "end\n"
    "function M.ping.GET(ctx, req) end\n"
    "function M.ping.DELETE(ctx, req) return 202 end\n"
    "function M.echo(ctx, req)\n"
    "  return {method = req.method, body = req.body, user = ctx.user.id, name = req.name}\n"
    "end\n"
    "function M.mine.GET(ctx, req)\n"
    "  local t = {}\n"
    "  for _, it in ipairs(trellis.query('marketing_request', nil, {sort = 'id'})) do\n"
    "    t[#t + 1] = it.title\n"
    "  end\n"
    "  local id = tonumber(req.params.id)\n"
    "  local g = id and trellis.get('marketing_request', id)\n"
    "  if id and not g then trellis.error(404, '没有申请 ' .. id) end\n"
    "  return {titles = table.concat(t, ','), count = trellis.count('marketing_request'),\n"
    "    got = g and g.title or trellis.json.null}\n"
    "end\n"
    "function M.writer.GET(ctx, req)\n"
    "  trellis.create('marketing_request', {title = 'from a GET', partner = 'P', budget = 1}) -- "
    "get\n"
    "  return {}\n"
    "end\n"
    "function M.writer.POST(ctx, req)\n"
    "  trellis.create('marketing_request', {title = 'first', partner = 'P', budget = 1})\n"
    "  trellis.create('marketing_request', {title = 'second', partner = 'P', budget = 2})\n"
    "  if req.body and req.body.refuse then trellis.error(409, '冲突:' .. req.body.refuse) end\n"
    "  error('failed after writing') -- post\n"
    "end\n"
    "function M.bad_status(ctx, req) return 700 end\n"
    "return M\n";

static long ep_call(const char *auth, const char *method, const char *body, struct resp *out,
                    const char *app, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/apps/%s/x/%s", app, name);
    return request(auth, NULL, method, path, body, out);
}

/* An endpoint call that must answer status; the parsed JSON answer (owned, NULL when empty). */
static cJSON *ep_ok(const char *auth, const char *method, const char *name, const char *body,
                    long status)
{
    struct resp r;
    long st = ep_call(auth, method, body, &r, "marketing", name);
    ck_assert_msg(st == status, "%s %s: want %ld, got %ld %s", method, name, status, st, r.body);
    cJSON *j = r.n ? resp_json(&r) : NULL;
    if (r.n) {
        char ct[128] = "";
        ck_assert_msg(resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                          strncmp(ct, "application/json", 16) == 0,
                      "%s %s: content type %s", method, name, ct);
    }
    resp_free(&r);
    return j;
}

#define ASSERT_EP(auth, method, name, body, status, subset)                                        \
    do {                                                                                           \
        cJSON *j_ = ep_ok(auth, method, name, body, status);                                       \
        char *t_ = cJSON_PrintUnformatted(j_);                                                     \
        ck_assert_msg(json_contains(t_, subset), "%s %s: want %s in %s", method, name, subset,     \
                      t_);                                                                         \
        free(t_);                                                                                  \
        cJSON_Delete(j_);                                                                          \
    } while (0)

START_TEST(endpoints_answer_by_method_with_params_and_status)
{
    api_hook_ok(&S, "marketing", "endpoints", EP_LUA);
    mr_create(ADMIN, "one draft");
    /* GET with query parameters (a UTF-8 one percent-encoded, one without a value). */
    ASSERT_EP(ADMIN, "GET", "stats?q=hello&zh=%E4%B8%AD%E6%96%87&n=5&flag", NULL, 200,
              "{\"drafts\":1,\"q\":\"hello\",\"zh\":\"中文\",\"n\":5,\"flag\":\"\","
              "\"user\":\"admin\",\"method\":\"GET\",\"name\":\"stats\",\"no_body\":true}");
    /* A function returning nothing: 204 without a body; returning a status only: that status. */
    struct resp r;
    ck_assert_int_eq(ep_call(ADMIN, "GET", NULL, &r, "marketing", "ping"), 204);
    ck_assert_msg(r.n == 0, "204 with a body: %s", r.body);
    resp_free(&r);
    ck_assert_int_eq(ep_call(ADMIN, "DELETE", NULL, &r, "marketing", "ping"), 202);
    ck_assert_msg(r.n == 0, "202 with a body: %s", r.body);
    resp_free(&r);
    /* POST writes a record: 201 with what the function returned; the record is there. */
    cJSON *j = ep_ok(ADMIN, "POST", "stats",
                     "{\"title\":\"via endpoint\",\"partner\":\"P\",\"budget\":\"7\"}", 201);
    long long id = obj_int(j, "id");
    ck_assert_int_gt(id, 0);
    ck_assert_str_eq(obj_str(j, "title"), "via endpoint");
    ck_assert_str_eq(obj_str(j, "owner"), "admin");
    ck_assert_str_eq(obj_str(j, "state"), "draft");
    cJSON_Delete(j);
    ASSERT_REC(ADMIN, "marketing_request", id,
               "{\"title\":\"via endpoint\",\"budget\":\"7.00\",\"created_by\":\"admin\"}");
    ck_assert_int_eq(count_records(&S, "marketing_request"), 2);
    ASSERT_EP(ADMIN, "GET", "stats", NULL, 200, "{\"drafts\":2}");
    /* A plain function answers every method. */
    const char *methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (int i = 0; i < 5; i++) {
        char want[128];
        snprintf(want, sizeof(want), "{\"method\":\"%s\",\"user\":\"admin\",\"name\":\"echo\"}",
                 methods[i]);
        ASSERT_EP(ADMIN, methods[i], "echo", NULL, 200, want);
    }
    ASSERT_EP(ADMIN, "PATCH", "echo", "{\"a\":[1,null,{\"b\":\"c\"}]}", 200,
              "{\"method\":\"PATCH\",\"body\":{\"a\":[1,null,{\"b\":\"c\"}]}}");
    /* A per-method table refuses the other methods: 405 with Allow, nothing written. */
    const struct {
        const char *method, *name, *allow;
    } na[] = {{"PUT", "stats", "GET, POST"},
              {"DELETE", "stats", "GET, POST"},
              {"POST", "ping", "GET, DELETE"},
              {"PATCH", "mine", "GET"}};
    for (int i = 0; i < 4; i++) {
        char path[128], allow[128] = "";
        snprintf(path, sizeof(path), "/api/v1/apps/marketing/x/%s", na[i].name);
        refused(ADMIN, na[i].method, "{\"title\":\"x\",\"partner\":\"P\",\"budget\":\"1\"}",
                &(struct prob){.status = 405, .code = "method_not_allowed"}, &r, "%s", path);
        ck_assert_msg(
            resp_header(&r, "Allow", allow, sizeof(allow)) && strcmp(allow, na[i].allow) == 0,
            "%s %s: Allow \"%s\", want \"%s\"", na[i].method, na[i].name, allow, na[i].allow);
        resp_free(&r);
    }
    /* A status outside 200..599 is the hook's fault. */
    refused(ADMIN, "GET", NULL,
            &(struct prob){.status = 500,
                           .code = "hook_failed",
                           .hook = "marketing/endpoints.bad_status",
                           .detail = "~700"},
            NULL, "/api/v1/apps/marketing/x/bad_status");
    ck_assert_int_eq(count_records(&S, "marketing_request"), 2);
}
END_TEST

START_TEST(endpoints_refuse_unknown_names_apps_and_callers)
{
    api_hook_ok(&S, "marketing", "endpoints", EP_LUA);
    mr_create(ADMIN, "there");
    const char *body = "{\"title\":\"x\",\"partner\":\"P\",\"budget\":\"1\"}";
    /* 404: an unknown endpoint (GET and POST), an unknown app, an endpoint of another app,
     * names that cannot be names, paths not of the form {app}/x/{name}. */
    const char *paths[] = {
        "/api/v1/apps/marketing/x/nosuch",    "/api/v1/apps/nosuch/x/stats",
        "/api/v1/apps/local/x/stats",         "/api/v1/apps/marketing/x/Stats",
        "/api/v1/apps/marketing/x/stats.GET", "/api/v1/apps/marketing/x/stats/more",
        "/api/v1/apps/Marketing/x/stats",     "/api/v1/apps/marketing/y/stats",
        "/api/v1/apps/marketing/x/",          "/api/v1/apps/marketing"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        refused(ADMIN, "GET", NULL, &(struct prob){.status = 404, .code = "not_found"}, NULL, "%s",
                paths[i]);
        refused(ADMIN, "POST", body, &(struct prob){.status = 404, .code = "not_found"}, NULL, "%s",
                paths[i]);
    }
    /* 401 without credentials or with a token that does not exist, for reads and writes. */
    refused(API_ANON, "GET", NULL, &(struct prob){.status = 401, .code = "unauthenticated"}, NULL,
            "/api/v1/apps/marketing/x/stats");
    refused(API_ANON, "POST", body, &(struct prob){.status = 401, .code = "unauthenticated"}, NULL,
            "/api/v1/apps/marketing/x/stats");
    refused(API_ANON, "GET", NULL, &(struct prob){.status = 401, .code = "unauthenticated"}, NULL,
            "/api/v1/apps/marketing/x/nosuch");
    const char *bad = "Authorization: Bearer trl_0000000000000000000000000000000000000000000000000"
                      "000000000000000";
    refused(bad, "POST", body, &(struct prob){.status = 401, .code = "unauthenticated"}, NULL,
            "/api/v1/apps/marketing/x/stats");
    /* 400 for a body that is not JSON: the function never runs. */
    const char *bad_json[] = {"{\"title\":", "{\"a\":1} x", "{'a':1}", "\xff\xfe"};
    for (int i = 0; i < 4; i++)
        refused(ADMIN, "POST", bad_json[i], &(struct prob){.status = 400, .code = "malformed_json"},
                NULL, "/api/v1/apps/marketing/x/stats");
    /* A body the write refuses: the write's own answer (422 naming the field). */
    struct resp r;
    refused(ADMIN, "POST", "{\"title\":\"no budget\",\"partner\":\"P\"}",
            &(struct prob){.status = 422, .code = "validation_failed"}, &r,
            "/api/v1/apps/marketing/x/stats");
    ck_assert_msg(problem_has_error(r.body, "budget", "required"), "want a budget error: %s",
                  r.body);
    resp_free(&r);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 1);
}
END_TEST

START_TEST(endpoint_get_cannot_write_and_post_rolls_back)
{
    api_hook_ok(&S, "marketing", "endpoints", EP_LUA);
    mr_create(ADMIN, "before");
    char path[128];
    /* A GET runs in a read transaction: its write is refused and the call fails. */
    refused(ADMIN, "GET", NULL,
            &(struct prob){.status = 500,
                           .code = "hook_failed",
                           .rule = "runtime",
                           .path = at_line(path, sizeof(path), EP_FILE, EP_LUA, "-- get"),
                           .hook = "marketing/endpoints.writer.GET",
                           .detail = "~trellis.create: this request only reads"},
            NULL, "/api/v1/apps/marketing/x/writer");
    /* A POST that wrote two records and then failed leaves nothing behind. */
    char detail[256];
    snprintf(detail, sizeof(detail), "%s: failed after writing",
             at_line(path, sizeof(path), EP_FILE, EP_LUA, "-- post"));
    refused(ADMIN, "POST", NULL,
            &(struct prob){.status = 500,
                           .code = "hook_failed",
                           .rule = "runtime",
                           .path = path,
                           .hook = "marketing/endpoints.writer.POST",
                           .detail = detail},
            NULL, "/api/v1/apps/marketing/x/writer");
    /* trellis.error after writing keeps its status (and its Chinese message); nothing stored. */
    refused(ADMIN, "POST", "{\"refuse\":\"重复的申请\"}",
            &(struct prob){.status = 409,
                           .rule = "error",
                           .hook = "marketing/endpoints.writer.POST",
                           .detail = "冲突:重复的申请"},
            NULL, "/api/v1/apps/marketing/x/writer");
    ck_assert_int_eq(count_records(&S, "marketing_request"), 1);
    /* The server carries on: the next POST writes. */
    cJSON *j =
        ep_ok(ADMIN, "POST", "stats", "{\"title\":\"after\",\"partner\":\"P\",\"budget\":1}", 201);
    cJSON_Delete(j);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 2);
    assert_store_check(&S);
}
END_TEST

START_TEST(endpoints_carry_chinese_text_both_ways)
{
    api_hook_ok(&S, "marketing", "endpoints", EP_LUA);
    struct resp r;
    const char *body =
        "{\"title\":\"春季路演 · 华东区\",\"partner\":\"上海某某科技有限公司\",\"budget\":\"100\"}";
    long st = request(ADMIN, "Accept-Language: zh-CN", "POST", "/api/v1/apps/marketing/x/stats",
                      body, &r);
    ck_assert_msg(st == 201, "POST stats: %ld %s", st, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(obj_str(j, "title"), "春季路演 · 华东区");
    ck_assert_str_eq(obj_str(j, "msg"), "已创建:春季路演 · 华东区");
    ck_assert_str_eq(obj_str(j, "lang"), "zh-CN");
    long long id = obj_int(j, "id");
    cJSON_Delete(j);
    resp_free(&r);
    ASSERT_REC(ADMIN, "marketing_request", id,
               "{\"title\":\"春季路演 · 华东区\",\"partner\":\"上海某某科技有限公司\"}");
    /* Back out through a GET (query) and a parameter. */
    ASSERT_EP(ADMIN, "GET", "mine", NULL, 200,
              "{\"titles\":\"春季路演 · 华东区\",\"count\":1,\"got\":null}");
    char name[64];
    snprintf(name, sizeof(name), "mine?id=%lld", id);
    ASSERT_EP(ADMIN, "GET", name, NULL, 200, "{\"got\":\"春季路演 · 华东区\"}");
    ASSERT_EP(ADMIN, "GET", "stats?q=%E6%98%A5%E5%AD%A3", NULL, 200, "{\"q\":\"春季\"}");
    ASSERT_EP(ADMIN, "PUT", "echo", "{\"备注\":\"你好,世界\"}", 200,
              "{\"body\":{\"备注\":\"你好,世界\"}}");
    /* A refusal in Chinese. */
    refused(ADMIN, "GET", NULL,
            &(struct prob){.status = 404, .rule = "error", .detail = "没有申请 99"}, NULL,
            "/api/v1/apps/marketing/x/mine?id=99");
}
END_TEST

START_TEST(endpoints_act_with_the_callers_permissions)
{
    api_hook_ok(&S, "marketing", "endpoints", EP_LUA);
    long long a = mr_create(H(ANN), "ann's");
    long long b = mr_create(H(BOB), "bob's");
    mr_create(ADMIN, "admin's");
    /* Each partner sees their org's records only; the administrator all of them. */
    ASSERT_EP(H(ANN), "GET", "mine", NULL, 200, "{\"titles\":\"ann's\",\"count\":1}");
    ASSERT_EP(H(BOB), "GET", "mine", NULL, 200, "{\"titles\":\"bob's\",\"count\":1}");
    ASSERT_EP(ADMIN, "GET", "mine", NULL, 200, "{\"titles\":\"ann's,bob's,admin's\",\"count\":3}");
    ASSERT_EP(H(RITA), "GET", "mine", NULL, 200, "{\"count\":3}");
    ASSERT_EP(H(ANN), "GET", "stats", NULL, 200, "{\"drafts\":1,\"user\":\"ann\"}");
    /* Another org's record is absent for the partner's endpoint. */
    char name[64];
    snprintf(name, sizeof(name), "/api/v1/apps/marketing/x/mine?id=%lld", b);
    refused(H(ANN), "GET", NULL, &(struct prob){.status = 404, .rule = "error"}, NULL, "%s", name);
    snprintf(name, sizeof(name), "mine?id=%lld", a);
    ASSERT_EP(H(ANN), "GET", name, NULL, 200, "{\"got\":\"ann's\"}");
    /* The partner's write is theirs (owner, org). */
    cJSON *j = ep_ok(H(ANN), "POST", "stats",
                     "{\"title\":\"ann via endpoint\",\"partner\":\"P\",\"budget\":\"1\"}", 201);
    ck_assert_str_eq(obj_str(j, "owner"), "ann");
    ck_assert_str_eq(obj_str(j, "org"), "acme");
    long long c = obj_int(j, "id");
    cJSON_Delete(j);
    ASSERT_REC(ADMIN, "marketing_request", c, "{\"owner\":\"ann\",\"org\":\"acme\"}");
    ASSERT_EP(H(BOB), "GET", "mine", NULL, 200, "{\"titles\":\"bob's\",\"count\":1}");
    /* A reviewer may not create requests: the endpoint's write is refused with 403. */
    refused(H(RITA), "POST", "{\"title\":\"rita's\",\"partner\":\"P\",\"budget\":\"1\"}",
            &(struct prob){
                .status = 403, .code = "forbidden", .hook = "marketing/endpoints.stats.POST"},
            NULL, "/api/v1/apps/marketing/x/stats");
    ck_assert_int_eq(count_records(&S, "marketing_request"), 4);
}
END_TEST

/* =============================================================================================
 * 2. Computed fields
 */
static const char *GADGET = "/api/v1/records/gadget";
static const char *GADGET_FILE = "local/hooks/gadget.lua";
/* gadget: two stored fields and four computed ones; partners may not see "secret". */
static const char *GADGET_TYPE =
    "{\"name\":\"gadget\",\"labels\":{\"en\":\"Gadget\",\"zh-CN\":\"小工具\"},\"fields\":["
    "{\"name\":\"n\",\"type\":\"int\"},"
    "{\"name\":\"label\",\"type\":\"text\",\"max_length\":50},"
    "{\"name\":\"double_n\",\"type\":\"int\",\"computed\":true},"
    "{\"name\":\"shout\",\"type\":\"text\",\"computed\":true,\"max_length\":10},"
    "{\"name\":\"secret\",\"type\":\"text\",\"computed\":true},"
    "{\"name\":\"nohook\",\"type\":\"text\",\"computed\":true}],"
    "\"permissions\":{\"partner\":{\"create\":\"all\",\"read\":\"all\",\"update\":\"all\","
    "\"fields\":{\"secret\":\"hidden\"}}}}";
/* secret fails for anyone but the administrator: partners, who may not see it, never run it. */
static const char *GADGET_LUA =
    "local M = {computed = {}}\n"
    "function M.computed.double_n(ctx, rec)\n"
    "  if rec.n then return rec.n * 2 end\n"
    "end\n"
    "function M.computed.shout(ctx, rec)\n"
    "  if rec.label == 'too long' then return 'much more than ten characters' end\n"
    "  if rec.label == 'table' then return {1, 2} end\n"
    "  if rec.label == 'boom' then error('shout failed') end -- boom\n"
    "  return rec.label and rec.label:upper() or nil\n"
    "end\n"
    "function M.computed.secret(ctx, rec)\n"
    "  if ctx.user.id ~= 'admin' then error('secret computed for ' .. ctx.user.id) end\n"
    "  return 'for ' .. ctx.user.id .. ' ' .. tostring(rec.double_n)\n"
    "end\n"
    "return M\n";

static void put_gadget_type(void)
{
    struct resp r;
    long st = api_call(&S, ADMIN, "PUT", GADGET_TYPE, &r, "/api/v1/meta/types/gadget");
    ck_assert_msg(st == 201, "PUT gadget: %ld %s", st, r.body);
    resp_free(&r);
    watch("gadget");
}

/* The write (method on path, body) answers want_status with JSON containing subset; its id. */
static long long write_ok(const char *auth, const char *method, const char *path, const char *body,
                          long want_status, const char *subset)
{
    struct resp r;
    long st = request(auth, NULL, method, path, body, &r);
    ck_assert_msg(st == want_status && json_contains(r.body, subset),
                  "%s %s %s: want %ld %s, got %ld %s", method, path, body, want_status, subset, st,
                  r.body);
    long long id = json_int(r.body, "id", 0);
    resp_free(&r);
    return id;
}

START_TEST(computed_fields_show_on_every_read)
{
    put_gadget_type();
    /* No module yet: every computed field reads null, also in the create's answer. */
    long long g1 = write_ok(ADMIN, "POST", GADGET, "{\"n\":2,\"label\":\"a\"}", 201,
                            "{\"n\":2,\"double_n\":null,\"shout\":null,\"secret\":null,"
                            "\"nohook\":null}");
    ASSERT_REC(ADMIN, "gadget", g1,
               "{\"double_n\":null,\"shout\":null,\"secret\":null,\"nohook\":null}");
    /* The module computes them on GET; a field without a function stays null. */
    api_hook_ok(&S, "local", "gadget", GADGET_LUA);
    ASSERT_REC(ADMIN, "gadget", g1,
               "{\"n\":2,\"label\":\"a\",\"double_n\":4,\"shout\":\"A\",\"secret\":\"for admin "
               "nil\",\"nohook\":null}");
    /* Answers of writes: create, update (computed from the new values). */
    long long g2 = write_ok(ADMIN, "POST", GADGET, "{\"n\":5,\"label\":\"中文\"}", 201,
                            "{\"n\":5,\"double_n\":10,\"shout\":\"中文\",\"nohook\":null}");
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld", GADGET, g1);
    write_ok(ADMIN, "PATCH", path, "{\"n\":7}", 200,
             "{\"n\":7,\"version\":2,\"double_n\":14,\"shout\":\"A\"}");
    long long g3 = write_ok(ADMIN, "POST", GADGET, "{\"label\":\"no n\"}", 201,
                            "{\"n\":null,\"double_n\":null,\"shout\":\"NO N\"}");
    /* Never stored: history holds only the stored fields. */
    char *h = api_get_text(&S, ADMIN, "%s/%lld/history", GADGET, g1);
    ck_assert_msg(!strstr(h, "double_n") && !strstr(h, "shout"), "computed in history: %s", h);
    free(h);
    /* Lists, with and without a projection. */
    char *t = api_get_text(&S, ADMIN, "%s?sort=id&count=exact", GADGET);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"count\":3,\"items\":[{\"id\":%lld,\"double_n\":14,\"shout\":\"A\"},{\"id\":%lld,"
             "\"double_n\":10,\"shout\":\"中文\"},{\"id\":%lld,\"double_n\":null,\"shout\":\"NO "
             "N\"}]}",
             g1, g2, g3);
    ASSERT_JSON_HAS(t, want);
    free(t);
    t = api_get_text(&S, ADMIN, "%s?sort=id&fields=id,double_n", GADGET);
    snprintf(want, sizeof(want),
             "{\"items\":[{\"id\":%lld,\"double_n\":14},{\"id\":%lld,\"double_n\":10},{\"id\":%lld,"
             "\"double_n\":null}],\"next_cursor\":null}",
             g1, g2, g3);
    ck_assert_str_eq(t, want);
    free(t);
    t = api_get_text(&S, ADMIN, "%s?sort=id&fields=id,label", GADGET);
    ck_assert_msg(!strstr(t, "double_n") && !strstr(t, "shout"), "not projected: %s", t);
    free(t);
    /* A filter on a stored field still lists computed values. */
    t = api_get_text(&S, ADMIN, "%s?filter=n%%20%%3D%%207&fields=id,double_n,shout", GADGET);
    snprintf(want, sizeof(want),
             "{\"items\":[{\"id\":%lld,\"double_n\":14,\"shout\":\"A\"}],\"next_cursor\":null}",
             g1);
    ck_assert_str_eq(t, want);
    free(t);
    /* trellis.get from a hook shows the record as the REST API does: computed fields included. */
    api_hook_ok(&S, "local", "endpoints",
                "return { peek = function(ctx, req)\n"
                "  local g = trellis.get('gadget', tonumber(req.params.id))\n"
                "  local items = trellis.query('gadget', 'n = 5')\n"
                "  return {double_n = g.double_n, shout = g.shout, listed = items[1].double_n}\n"
                "end }\n");
    snprintf(path, sizeof(path), "/api/v1/apps/local/x/peek?id=%lld", g1);
    struct resp r;
    ck_assert_int_eq(request(ADMIN, NULL, "GET", path, NULL, &r), 200);
    ASSERT_JSON_HAS(r.body, "{\"double_n\":14,\"shout\":\"A\",\"listed\":10}");
    resp_free(&r);
    ck_assert_int_eq(count_records(&S, "gadget"), 3);
}
END_TEST

START_TEST(computed_fields_are_refused_as_input_filters_and_sorts)
{
    put_gadget_type();
    api_hook_ok(&S, "local", "gadget", GADGET_LUA);
    long long g = rec_create(ADMIN, "gadget", "{\"n\":1,\"label\":\"a\"}");
    struct resp r;
    /* As input: 422 read_only naming the field, on create and update, admin or not. */
    const struct {
        const char *auth, *method, *body, *field;
    } in[] = {{ADMIN, "POST", "{\"n\":1,\"double_n\":2}", "double_n"},
              {ADMIN, "POST", "{\"nohook\":\"x\"}", "nohook"},
              {H(ANN), "POST", "{\"n\":1,\"shout\":\"X\"}", "shout"},
              {ADMIN, "PATCH", "{\"shout\":\"x\"}", "shout"},
              {ADMIN, "PATCH", "{\"n\":9,\"double_n\":18}", "double_n"},
              {H(ANN), "PATCH", "{\"double_n\":null}", "double_n"}};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char path[128];
        if (in[i].method[1] == 'O')
            snprintf(path, sizeof(path), "%s", GADGET);
        else
            snprintf(path, sizeof(path), "%s/%lld", GADGET, g);
        refused(in[i].auth, in[i].method, in[i].body,
                &(struct prob){.status = 422, .code = "validation_failed"}, &r, "%s", path);
        ck_assert_msg(problem_has_error(r.body, in[i].field, "read_only"),
                      "%s %s: want %s read_only: %s", in[i].method, in[i].body, in[i].field,
                      r.body);
        resp_free(&r);
    }
    /* In filters and sorts: 400, as for a field the type does not have. */
    const char *q[] = {"filter=double_n%20%3E%201",
                       "filter=shout%20%3D%20%22A%22",
                       "filter=nohook%20%3D%20null",
                       "filter=n%20%3E%200%20%26%26%20double_n%20%3E%200",
                       "sort=double_n",
                       "sort=-shout"};
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
        refused(ADMIN, "GET", NULL, &(struct prob){.status = 400, .code = "bad_query"}, NULL,
                "%s?%s", GADGET, q[i]);
    /* Hooks cannot filter on them either. */
    api_hook_ok(&S, "local", "endpoints",
                "return { q = function(ctx, req)\n"
                "  local ok, e = pcall(trellis.query, 'gadget', 'double_n > 0')\n"
                "  local ok2, e2 = pcall(trellis.count, 'gadget', 'shout = \"A\"')\n"
                "  return {ok = ok, ok2 = ok2, status = type(e) == 'table' and e.status or -1}\n"
                "end }\n");
    ck_assert_int_eq(request(ADMIN, NULL, "GET", "/api/v1/apps/local/x/q", NULL, &r), 200);
    ASSERT_JSON_HAS(r.body, "{\"ok\":false,\"ok2\":false,\"status\":400}");
    resp_free(&r);
    ASSERT_REC(ADMIN, "gadget", g, "{\"n\":1,\"version\":1,\"double_n\":2}");
}
END_TEST

START_TEST(computed_value_the_field_cannot_hold_fails_the_read)
{
    put_gadget_type();
    /* Stored before the module: fine until the hook computes from them. */
    long long bad = rec_create(ADMIN, "gadget", "{\"n\":1,\"label\":\"too long\"}");
    long long ok = rec_create(ADMIN, "gadget", "{\"n\":2,\"label\":\"fine\"}");
    long long tbl = rec_create(ADMIN, "gadget", "{\"n\":3,\"label\":\"table\"}");
    api_hook_ok(&S, "local", "gadget", GADGET_LUA);
    nwatched = 1; /* gadget by its stored columns: reading its computed ones fails here */
    watch_fields("gadget", "id,version,n,label,updated_at");
    /* GET and lists: 500 hook_failed naming the hook and the field. */
    const char *hook = "local/gadget.computed.shout";
    refused(ADMIN, "GET", NULL,
            &(struct prob){
                .status = 500,
                .code = "hook_failed",
                .hook = hook,
                .detail = "~computed.shout returned a value that text field shout cannot hold"},
            NULL, "%s/%lld", GADGET, bad);
    refused(ADMIN, "GET", NULL,
            &(struct prob){.status = 500, .code = "hook_failed", .hook = hook, .detail = "~10"},
            NULL, "%s/%lld", GADGET, bad);
    refused(ADMIN, "GET", NULL,
            &(struct prob){.status = 500, .code = "hook_failed", .hook = hook, .path = GADGET_FILE},
            NULL, "%s/%lld", GADGET, tbl);
    refused(ADMIN, "GET", NULL, &(struct prob){.status = 500, .code = "hook_failed", .hook = hook},
            NULL, "%s?sort=id", GADGET);
    /* Not asked for, not computed: the projection without it reads. */
    free(api_get_text(&S, ADMIN, "%s?sort=id&fields=id,label,double_n", GADGET));
    ASSERT_REC(ADMIN, "gadget", ok, "{\"shout\":\"FINE\",\"double_n\":4}");
    /* A write whose answer cannot be computed is rolled back with it. */
    refused(ADMIN, "POST", "{\"n\":4,\"label\":\"too long\"}",
            &(struct prob){.status = 500, .code = "hook_failed", .hook = hook}, NULL, "%s", GADGET);
    refused(ADMIN, "PATCH", "{\"label\":\"too long\"}",
            &(struct prob){.status = 500, .code = "hook_failed", .hook = hook}, NULL, "%s/%lld",
            GADGET, ok);
    /* A Lua error in the function: 500 with its file and line. */
    char path[128], detail[160];
    at_line(path, sizeof(path), GADGET_FILE, GADGET_LUA, "-- boom");
    snprintf(detail, sizeof(detail), "%s: shout failed", path);
    refused(ADMIN, "PATCH", "{\"label\":\"boom\"}",
            &(struct prob){.status = 500,
                           .code = "hook_failed",
                           .rule = "runtime",
                           .path = path,
                           .hook = hook,
                           .detail = detail},
            NULL, "%s/%lld", GADGET, ok);
    ASSERT_REC(ADMIN, "gadget", ok, "{\"label\":\"fine\",\"version\":1,\"shout\":\"FINE\"}");
    ck_assert_int_eq(count_records_ids(&S, "gadget"), 3);
    /* Fixed by the hook, the record reads again. */
    api_hook_ok(&S, "local", "gadget",
                "local M = {computed = {}}\n"
                "function M.computed.shout(ctx, rec) return rec.label:sub(1, 3) end\n"
                "return M\n");
    ASSERT_REC(ADMIN, "gadget", bad, "{\"shout\":\"too\",\"double_n\":null}");
}
END_TEST

START_TEST(computed_field_definitions_are_checked)
{
    /* computed + required/unique/indexed/default, and attachment: 422 naming the path; the type
     * is not made. */
    const struct {
        const char *extra, *path;
    } bad[] = {{"\"type\":\"int\",\"computed\":true,\"required\":true", "fields[1].required"},
               {"\"type\":\"text\",\"computed\":true,\"unique\":true", "fields[1].unique"},
               {"\"type\":\"text\",\"computed\":true,\"indexed\":true", "fields[1].indexed"},
               {"\"type\":\"int\",\"computed\":true,\"default\":3", "fields[1].default"},
               {"\"type\":\"attachment\",\"computed\":true", "fields[1].computed"}};
    struct resp r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char def[512];
        snprintf(def, sizeof(def),
                 "{\"name\":\"badtype\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"},{\"name\":"
                 "\"c\",%s}]}",
                 bad[i].extra);
        refused(ADMIN, "PUT", def, &(struct prob){.status = 422, .code = "validation_failed"}, &r,
                "/api/v1/meta/types/badtype");
        ck_assert_msg(problem_has_field(r.body, bad[i].path), "want %s: %s", bad[i].path, r.body);
        resp_free(&r);
        ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "/api/v1/meta/types/badtype"), 404);
    }
    /* The same on an existing type: refused, the type as it was. */
    put_gadget_type();
    long long g = rec_create(ADMIN, "gadget", "{\"n\":1}");
    struct snapshot s = {0};
    snapshot_add(&S, &s, "the gadget type", ADMIN, "/api/v1/meta/types/gadget");
    cJSON *def = cJSON_Parse(GADGET_TYPE);
    cJSON *f2 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(def, "fields"), 2);
    cJSON_AddTrueToObject(f2, "indexed");
    long st = api_put_json(&S, ADMIN, def, &r, "/api/v1/meta/types/gadget");
    cJSON_Delete(def);
    assert_prob(&r, st, &(struct prob){.status = 422, .code = "validation_failed"},
                "PUT gadget with an indexed computed field");
    ck_assert_msg(problem_has_field(r.body, "fields[2].indexed"), "%s", r.body);
    resp_free(&r);
    snapshot_same(&S, &s, "the refused type change");
    ASSERT_REC(ADMIN, "gadget", g, "{\"n\":1,\"double_n\":null}");
}
END_TEST

START_TEST(field_permissions_hide_computed_fields)
{
    put_gadget_type();
    api_hook_ok(&S, "local", "gadget", GADGET_LUA);
    long long g = rec_create(ADMIN, "gadget", "{\"n\":3,\"label\":\"x\"}");
    /* The administrator sees secret; ann never does (and its function, which would fail for
     * her, is not called). */
    ASSERT_REC(ADMIN, "gadget", g, "{\"secret\":\"for admin nil\",\"double_n\":6}");
    char *t = rec_text(H(ANN), "gadget", g);
    ASSERT_JSON_HAS(t, "{\"double_n\":6,\"shout\":\"X\"}");
    ck_assert_msg(!strstr(t, "secret"), "ann sees secret: %s", t);
    free(t);
    t = api_get_text(&S, H(ANN), "%s?count=exact", GADGET);
    ASSERT_JSON_HAS(t, "{\"count\":1,\"items\":[{\"double_n\":6}]}");
    ck_assert_msg(!strstr(t, "secret"), "ann's list shows secret: %s", t);
    free(t);
    /* Her writes' answers leave it out too. */
    struct resp r;
    ck_assert_int_eq(request(H(ANN), NULL, "POST", GADGET, "{\"n\":4}", &r), 201);
    ASSERT_JSON_HAS(r.body, "{\"owner\":\"ann\",\"double_n\":8}");
    ck_assert_msg(!strstr(r.body, "secret"), "ann's create answer: %s", r.body);
    long long a = json_int(r.body, "id", 0);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld", GADGET, a);
    ck_assert_int_eq(request(H(ANN), NULL, "PATCH", path, "{\"n\":5}", &r), 200);
    ck_assert_msg(!strstr(r.body, "secret") && json_contains(r.body, "{\"double_n\":10}"),
                  "ann's update answer: %s", r.body);
    resp_free(&r);
    /* Projection, filter and sort on it: refused for her as for any field she cannot see. */
    refused(H(ANN), "GET", NULL, &(struct prob){.status = 400, .code = "bad_query"}, NULL,
            "%s?fields=id,secret", GADGET);
    refused(H(ANN), "GET", NULL, &(struct prob){.status = 400, .code = "bad_query"}, NULL,
            "%s?filter=secret%%20%%3D%%20%%22x%%22", GADGET);
    refused(H(ANN), "POST", "{\"secret\":\"x\"}",
            &(struct prob){.status = 422, .code = "validation_failed"}, NULL, "%s", GADGET);
    /* The administrator reads hers with secret. */
    ASSERT_REC(ADMIN, "gadget", a, "{\"owner\":\"ann\",\"secret\":\"for admin nil\"}");
    ck_assert_int_eq(count_records(&S, "gadget"), 2);
}
END_TEST

/* =============================================================================================
 * 3. Scheduled jobs
 */
START_TEST(scheduled_job_runs_once_per_due_time_as_system)
{
    char dir[256];
    install_jobs_v1(dir, sizeof(dir));
    /* 09:00 Shanghai is 01:00 UTC (no DST). */
    int64_t due = arm_next(1, 0);
    ck_assert_int_eq(job_runs(), 0);
    /* Due: one run, as the system, with the job's table; its before_create (which requires a
     * sibling at top level) ran too. */
    clock_set_ms(&S, due + 1000);
    WAIT_FOR(job_runs() >= 1, "the job did not run at its time");
    cJSON *j = last_run();
    ck_assert_str_eq(obj_str(j, "who"), "system");
    ck_assert_str_eq(obj_str(j, "created_by"), "system");
    ck_assert_str_eq(obj_str(j, "owner"), "system");
    ck_assert_int_ge(obj_time_ms(j, "at"), due);
    ck_assert_int_lt(obj_time_ms(j, "at"), due + MIN_MS);
    cJSON_Delete(j);
    ASSERT_RUNS("tick|0 9 * * *|Asia/Shanghai|system|stamped tick\n");
    /* Once per due time: nothing more within the day. */
    settle();
    ck_assert_int_eq(job_runs(), 1);
    clock_advance(&S, HOUR_MS);
    settle();
    clock_set_ms(&S, due + DAY_MS - MIN_MS);
    settle();
    ck_assert_int_eq(job_runs(), 1);
    /* The next day: one more. */
    clock_set_ms(&S, due + DAY_MS + 1000);
    WAIT_FOR(job_runs() >= 2, "the job did not run the next day");
    settle();
    ck_assert_int_eq(job_runs(), 2);
    j = last_run();
    ck_assert_int_ge(obj_time_ms(j, "at"), due + DAY_MS);
    cJSON_Delete(j);
    /* Ten days later at once: the missed run happens once, not ten times. */
    clock_set_ms(&S, due + 11 * DAY_MS + 1000);
    WAIT_FOR(job_runs() >= 3, "the missed run did not happen");
    settle();
    ck_assert_int_eq(job_runs(), 3);
    ck_assert_int_eq(server_log_count("scheduled job jobsapp/tick ran"), 3);
}
END_TEST

START_TEST(failing_job_is_rolled_back_and_runs_again)
{
    char dir[256];
    install_jobs_v1(dir, sizeof(dir));
    watch("job_ctl");
    long long ctl = rec_create(ADMIN, "job_ctl", "{\"fail\":true}");
    int64_t due = arm_next(1, 0);
    struct snapshot s;
    snapshot_watched(&S, &s, watched, nwatched);
    const char *failed = "scheduled job jobsapp/tick (jobs.tick) failed and was rolled back";
    ck_assert_int_eq(server_log_count(failed), 0);
    clock_set_ms(&S, due + 1000);
    WAIT_FOR(server_log_count(failed) == 1, "the failing run was not logged; log %s", S.log);
    ck_assert_int_eq(server_log_count("jobsapp/hooks/jobs.lua:5: told to fail"), 1);
    /* Rolled back: its record is not there; it is not retried before its next time. */
    settle();
    ck_assert_int_eq(job_runs(), 0);
    ck_assert_int_eq(server_log_count(failed), 1);
    snapshot_same(&S, &s, "the failed job");
    /* Told to succeed, it runs at its next time. */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/records/job_ctl/%lld", ctl);
    write_ok(ADMIN, "PATCH", path, "{\"fail\":false}", 200, "{\"fail\":false}");
    clock_set_ms(&S, due + DAY_MS - MIN_MS);
    settle();
    ck_assert_int_eq(job_runs(), 0);
    clock_set_ms(&S, due + DAY_MS + 1000);
    WAIT_FOR(job_runs() == 1, "the job did not run again after failing");
    settle();
    ck_assert_int_eq(job_runs(), 1);
    ck_assert_int_eq(server_log_count(failed), 1);
    cJSON *j = last_run();
    ck_assert_int_ge(obj_time_ms(j, "at"), due + DAY_MS);
    cJSON_Delete(j);
}
END_TEST

START_TEST(reinstalling_replans_and_removes_the_schedule)
{
    char dir[256];
    install_jobs_v1(dir, sizeof(dir));
    int64_t old_due = arm_next(1, 0);
    clock_set_ms(&S, old_due + 1000);
    WAIT_FOR(job_runs() == 1, "the job did not run at its first time");
    /* Another schedule (13:30 UTC), installed while the server is stopped; the restarted server
     * (its clock back to the real time) plans it: the old time (01:00 UTC) runs nothing. */
    write_jobs_app(dir, sizeof(dir), "1.1.0", SCHED_V2, true, NULL, NULL);
    reinstall(dir);
    int64_t due = arm_next(13, 30);
    ck_assert_int_eq(job_runs(), 1);
    clock_set_ms(&S, due + 1000);
    WAIT_FOR(job_runs() == 2, "the job did not run at its new time");
    /* Two more days cover the old schedule's next time (01:00 UTC, old_due + 1 day): only the
     * new schedule runs. */
    clock_set_ms(&S, due + DAY_MS + 1000);
    WAIT_FOR(job_runs() == 3, "the job did not run the next day");
    clock_set_ms(&S, due + 2 * DAY_MS + 1000);
    WAIT_FOR(job_runs() == 4, "the job did not run the day after");
    settle();
    ASSERT_RUNS("tick|0 9 * * *|Asia/Shanghai|system|stamped tick\n"
                "tick|30 13 * * *|UTC|system|stamped tick\n"
                "tick|30 13 * * *|UTC|system|stamped tick\n"
                "tick|30 13 * * *|UTC|system|stamped tick\n");
    /* Without schedules the job no longer runs at all. */
    write_jobs_app(dir, sizeof(dir), "1.2.0", NULL, true, NULL, NULL);
    reinstall(dir);
    clock_set_ms(&S, next_utc(clock_now_ms(&S), 13, 30) + 3 * DAY_MS + 1000);
    settle();
    ck_assert_int_eq(job_runs(), 4);
}
END_TEST

/* =============================================================================================
 * 5. App install and hooks (and the schedules it refuses)
 */
START_TEST(app_install_refuses_bad_schedules_and_syntax_errors)
{
    char dir[256];
    install_jobs_v1(dir, sizeof(dir));
    rec_create(ADMIN, "job_run", "{\"job\":\"by hand\"}");
    struct snapshot s;
    snapshot_watched(&S, &s, watched, nwatched);
    snapshot_add(&S, &s, "the modules", ADMIN, "%s", HOOKS);
    snapshot_add(&S, &s, "the job_run type", ADMIN, "/api/v1/meta/types/job_run");
    snapshot_add(&S, &s, "job_run's module", ADMIN, "%s/jobsapp/job_run", HOOKS);
    srv_stop(&S);
    char *before = app_list();
    const char *good = "{\"name\":\"ok\",\"cron\":\"0 9 * * *\",\"hook\":\"jobs.tick\"}";
    char sched[4][512];
    snprintf(sched[0], sizeof(sched[0]),
             "[%s,{\"name\":\"bad\",\"cron\":\"0 25 * * *\",\"hook\":\"jobs.tick\"}]", good);
    snprintf(sched[1], sizeof(sched[1]),
             "[%s,{\"name\":\"bad\",\"cron\":\"0 9 * * *\",\"timezone\":\"Mars/Olympus\","
             "\"hook\":\"jobs.tick\"}]",
             good);
    snprintf(sched[2], sizeof(sched[2]),
             "[{\"name\":\"bad\",\"cron\":\"0 9 * *\",\"hook\":\"jobs.tick\"}]");
    snprintf(sched[3], sizeof(sched[3]), "%s", SCHED_V1);
    const char *want[4][2] = {{"hooks.schedules[1].cron", "25"},
                              {"hooks.schedules[1].timezone", "Mars/Olympus"},
                              {"hooks.schedules[0].cron", NULL},
                              {"hooks/x.lua", "jobsapp/hooks/x.lua:3:"}};
    const char *syntax = "local M = {}\n"
                         "function M.f(ctx, rec)\n"
                         "  local a = = 1\n"
                         "end\n"
                         "return M\n";
    for (int i = 0; i < 4; i++) {
        /* A newer version that also adds a type and drops a module: none of it may land. */
        write_jobs_app(dir, sizeof(dir), "2.0.0", sched[i], false, "types/extra_t.json",
                       "{\"name\":\"extra_t\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}\n");
        if (i == 3) write_text(dir, "hooks/x.lua", syntax);
        char *out = NULL;
        int rc = app_install(dir, &out);
        ck_assert_msg(rc != 0, "install %d was taken: %s", i, out);
        for (int k = 0; k < 2; k++)
            if (want[i][k])
                ck_assert_msg(strstr(out, want[i][k]) != NULL, "install %d: want \"%s\" in %s", i,
                              want[i][k], out);
        free(out);
        char *after = app_list();
        ck_assert_str_eq(after, before);
        free(after);
    }
    free(before);
    ck_assert_int_eq(srv_start(&S), 0);
    snapshot_same(&S, &s, "the refused installs");
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "/api/v1/meta/types/extra_t"), 404);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "%s/jobsapp/x", HOOKS), 404);
    /* The installed version still works: its module runs, its job runs. */
    long long id = rec_create(ADMIN, "job_run", "{\"job\":\"still\"}");
    ASSERT_REC(ADMIN, "job_run", id, "{\"stamp\":\"stamped still\"}");
    int64_t due = arm_next(1, 0);
    clock_set_ms(&S, due + 1000);
    WAIT_FOR(job_runs() == 3, "the installed job did not run");
    /* Into an empty data directory: refused the same way, nothing installed at all. */
    char fresh[64];
    snprintf(fresh, sizeof(fresh), "/tmp/trellis-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fresh));
    tmpreg_add(fresh);
    write_jobs_app(dir, sizeof(dir), "1.0.0", SCHED_V1, true, "hooks/x.lua", syntax);
    const char *argv[] = {"app", "install", dir, "--data", fresh, NULL};
    char *out = NULL;
    int rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc != 0 && strstr(out, "jobsapp/hooks/x.lua:3:"), "install: %d %s", rc, out);
    free(out);
    const char *list[] = {"app", "list", "--data", fresh, NULL};
    ck_assert_int_eq(run_trellis(list, &out, 60), 0);
    ck_assert_msg(strstr(out, "jobsapp") == NULL, "installed after all: %s", out);
    free(out);
    ck_assert_int_eq(store_check(fresh, NULL), 0);
}
END_TEST

START_TEST(reinstall_removes_a_dropped_module_and_requires_siblings)
{
    char dir[256], mods[512];
    /* v1: job_run.lua requires helper at its top level: installed, listed, run. */
    write_jobs_app(dir, sizeof(dir), "1.0.0", NULL, true, NULL, NULL);
    reinstall(dir);
    module_list(mods, sizeof(mods));
    ck_assert_msg(strstr(mods, "jobsapp/helper,jobsapp/job_run,jobsapp/jobs") != NULL, "%s", mods);
    long long a = rec_create(ADMIN, "job_run", "{\"job\":\"v1\"}");
    ASSERT_REC(ADMIN, "job_run", a, "{\"stamp\":\"stamped v1\"}");
    char *v1 = api_get_text(&S, ADMIN, "%s/jobsapp/job_run", HOOKS);
    ck_assert_str_eq(v1, JOB_RUN_LUA);
    free(v1);
    /* v2 without job_run.lua: the module is gone from the list and from GET, and no longer
     * runs; the others stay. */
    write_jobs_app(dir, sizeof(dir), "1.1.0", NULL, false, NULL, NULL);
    reinstall(dir);
    module_list(mods, sizeof(mods));
    ck_assert_msg(strstr(mods, "jobsapp/job_run") == NULL, "job_run still listed: %s", mods);
    ck_assert_msg(strstr(mods, "jobsapp/helper,jobsapp/jobs") != NULL, "%s", mods);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "%s/jobsapp/job_run", HOOKS), 404);
    long long b = rec_create(ADMIN, "job_run", "{\"job\":\"v2\"}");
    char *t = rec_text(ADMIN, "job_run", b);
    ck_assert_msg(json_contains(t, "{\"job\":\"v2\",\"stamp\":null}"), "%s", t);
    free(t);
    ASSERT_REC(ADMIN, "job_run", a, "{\"stamp\":\"stamped v1\"}");
    /* And back: v3 brings it again. */
    write_jobs_app(dir, sizeof(dir), "1.2.0", NULL, true, NULL, NULL);
    reinstall(dir);
    long long c = rec_create(ADMIN, "job_run", "{\"job\":\"v3\"}");
    ASSERT_REC(ADMIN, "job_run", c, "{\"stamp\":\"stamped v3\"}");
}
END_TEST

/* =============================================================================================
 * 4. trellis.log(msg, {history = true})
 */
static const char *NOTES_LUA =
    "local M = {}\n"
    "function M.before_create(ctx, rec)\n"
    "  trellis.log('before_create: ' .. rec.title, {history = true})\n"
    "  trellis.log('only in the server log')\n"
    "end\n"
    "function M.validate(ctx, rec, old)\n"
    "  if rec.title == 'refuse' then\n"
    "    trellis.log('refusing', {history = true})\n"
    "    return 'refused after a note'\n"
    "  end\n"
    "  if ctx.op == 'create' then trellis.log('校验通过', {history = true}) end\n"
    "end\n"
    "function M.after_update(ctx, rec, old)\n"
    "  if rec.title == 'fail after' then\n"
    "    trellis.log('noted, then failing', {history = true})\n"
    "    error('after_update failed')\n"
    "  end\n"
    "  trellis.log('budget ' .. old.budget .. ' -> ' .. rec.budget, {history = true, level = "
    "'warn'})\n"
    "end\n"
    "function M.before_transition_submit(ctx, rec, t)\n"
    "  trellis.log('submitting by ' .. ctx.user.id, {history = true})\n"
    "end\n"
    "return M\n";

START_TEST(log_history_notes_go_into_the_records_history)
{
    api_hook_ok(&S, "marketing", "marketing_request", NOTES_LUA);
    /* before_create and validate: notes of the create event, in order. */
    long long id = mr_create(H(ANN), "noted");
    ck_assert_int_eq(api_history_count(&S, MR, id, NULL, NULL), 1);
    ASSERT_HISTORY_EVENT(&S, MR, id, 0,
                         "{\"action\":\"create\",\"version\":1,\"notes\":[\"before_create: "
                         "noted\",\"校验通过\"]}");
    char *ev = api_history_event(&S, MR, id, 0);
    cJSON *j = cJSON_Parse(ev);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "notes")), 2);
    cJSON_Delete(j);
    free(ev);
    /* after_update: the update event has no notes; a note event of its own follows (a new
     * version). */
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld", MR, id);
    write_ok(H(ANN), "PATCH", path, "{\"budget\":\"20\"}", 200, "{\"budget\":\"20.00\"}");
    ck_assert_int_eq(api_history_count(&S, MR, id, NULL, NULL), 3);
    ev = api_history_event(&S, MR, id, 1);
    ck_assert_msg(json_contains(ev, "{\"action\":\"update\",\"version\":2}") &&
                      !strstr(ev, "notes"),
                  "update event: %s", ev);
    free(ev);
    ASSERT_HISTORY_EVENT(&S, MR, id, 0,
                         "{\"action\":\"note\",\"version\":3,\"notes\":[\"budget 10 -> 20\"]}");
    ASSERT_REC(ADMIN, "marketing_request", id, "{\"version\":3,\"budget\":\"20.00\"}");
    ck_assert_int_eq(api_history_count(&S, MR, id, "action", "note"), 1);
    /* A PATCH that changes nothing calls nothing and notes nothing. */
    write_ok(H(ANN), "PATCH", path, "{\"budget\":\"20\"}", 200, "{\"version\":3}");
    ck_assert_int_eq(api_history_count(&S, MR, id, NULL, NULL), 3);
    /* A named transition hook: a note in the transition's event. */
    snprintf(path, sizeof(path), "%s/%lld/transitions/submit", MR, id);
    write_ok(H(ANN), "POST", path, "{}", 200, "{\"state\":\"submitted\"}");
    ck_assert_int_eq(api_history_count(&S, MR, id, NULL, NULL), 4);
    ASSERT_HISTORY_EVENT(&S, MR, id, 0, "{\"version\":4,\"notes\":[\"submitting by ann\"]}");
    /* A refused change keeps none of its notes. */
    refused(H(ANN), "POST", "{\"title\":\"refuse\",\"partner\":\"P\",\"budget\":\"1\"}",
            &(struct prob){.status = 422, .code = "validation_failed", .rule = "hook"}, NULL, "%s",
            MR);
    long long b = mr_create(ADMIN, "second");
    snprintf(path, sizeof(path), "%s/%lld", MR, b);
    refused(ADMIN, "PATCH", "{\"title\":\"fail after\"}",
            &(struct prob){.status = 500,
                           .code = "hook_failed",
                           .hook = "marketing/marketing_request.after_update"},
            NULL, "%s", path);
    ck_assert_int_eq(api_history_count(&S, MR, b, NULL, NULL), 1);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 2);
    /* The history chains stay consistent. */
    assert_store_check(&S);
    ck_assert_int_eq(srv_stop_and_check(&S), 0);
    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(api_history_count(&S, MR, id, NULL, NULL), 4);
}
END_TEST

/* =============================================================================================
 * 6. trellis hooks test | lint
 */
static const char *FAILING_SPEC = "describe('job runs', function()\n"
                                  "  it('passes', function() expect(1).to_be(1) end)\n"
                                  "  it('fails', function()\n"
                                  "    expect(trellis.count('job_run')).to_be(5)\n"
                                  "  end)\n"
                                  "end)\n";

START_TEST(hooks_test_reports_failures_and_missing_specs)
{
    char dir[256];
    /* No tests folder: "no specs", exit 0. */
    write_jobs_app(dir, sizeof(dir), "1.0.0", SCHED_V1, true, NULL, NULL);
    const char *argv[] = {"hooks", "test", dir, NULL};
    char *out = NULL;
    int rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc == 0, "hooks test without specs: %d %s", rc, out);
    ck_assert_msg(strstr(out, "no specs") && strstr(out, "0 tests in 0 files"), "%s", out);
    free(out);
    /* A failing spec: exit 1, the failure's file:line, the summary. */
    write_jobs_app(dir, sizeof(dir), "1.0.0", SCHED_V1, true, "tests/runs_spec.lua", FAILING_SPEC);
    const char *argv2[] = {"hooks", "test", dir, NULL};
    rc = run_trellis(argv2, &out, 60);
    ck_assert_msg(rc == 1, "hooks test with a failing spec: %d %s", rc, out);
    ck_assert_msg(strstr(out, "jobsapp/tests/runs_spec.lua:4: expected 5, got 0") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "2 tests in 1 file: 1 passed, 1 failed, 0 pending") != NULL, "%s",
                  out);
    free(out);
}
END_TEST

START_TEST(hooks_lint_flags_io_open)
{
    char dir[256];
    write_jobs_app(dir, sizeof(dir), "1.0.0", SCHED_V1, true, NULL, NULL);
    const char *argv[] = {"hooks", "lint", dir, NULL};
    char *out = NULL;
    int rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc == 0, "lint of a clean app: %d %s", rc, out);
    free(out);
    write_jobs_app(dir, sizeof(dir), "1.0.0", SCHED_V1, true, "hooks/evil.lua",
                   "local M = {}\n"
                   "function M.before_create(ctx, rec)\n"
                   "  local fh = io.open('/etc/passwd')\n"
                   "  rec.stamp = fh:read('a')\n"
                   "end\n"
                   "return M\n");
    rc = run_trellis(argv, &out, 60);
    ck_assert_msg(rc != 0, "lint passed a hook using io.open: %s", out);
    ck_assert_msg(strstr(out, "evil.lua:3:") && strstr(out, "'io'"), "lint output: %s", out);
    free(out);
}
END_TEST

/* =============================================================================================
 * Regressions: documented behaviour the runtime does not have. Registered only with
 * TRELLIS_HOOKS_REGRESSIONS set.
 */

/* Was a bug (fixed: deletes carry notes too): trellis.log(msg, {history = true}) in before_delete
 * fails the delete with 500 "corrupt: Stored data is corrupt". README: "in before hooks, validate
 * and actions into the event of the change being written (\"notes\": [...])"; before_delete is a
 * before hook. Cause: runtime/record/record.c trl_rec_delete builds its trl_rec_move without .notes
 * (and passes no notes to trl_rec_hist_append), so trl_rec_move_note answers TRL_ECONFLICT and
 * l_log (runtime/hooks/api.c) falls back to trl_rec_note, which writes a separate note event — a
 * new version of the record being deleted — after which the delete appends its own event with the
 * stale history head (r.hist_seq) and the chain check reports corruption. Want: 204 and the
 * delete event carrying the note. */
START_TEST(log_history_in_before_delete)
{
    api_hook_ok(&S, "marketing", "marketing_request",
                "local M = {}\n"
                "function M.before_delete(ctx, rec)\n"
                "  trellis.log('deleting ' .. rec.title, {history = true})\n"
                "end\n"
                "return M\n");
    long long id = mr_create(ADMIN, "doomed");
    struct resp r;
    long st = api_call(&S, ADMIN, "DELETE", NULL, &r, "%s/%lld", MR, id);
    ck_assert_msg(st == 204, "DELETE with a note in before_delete: %ld %s", st, r.body);
    resp_free(&r);
    ck_assert_int_eq(api_call(&S, ADMIN, "GET", NULL, NULL, "%s/%lld", MR, id), 404);
    ASSERT_HISTORY_EVENT(&S, MR, id, 0, "{\"action\":\"delete\",\"notes\":[\"deleting doomed\"]}");
    assert_store_check(&S);
}
END_TEST

/* BUG: a computed field's function may write when it computes the answer of a write, while the
 * same function is read-only on every other read, so the answer of a POST/PATCH differs from what
 * a GET right after shows, and the computed function leaves side effects a read never does.
 * README ("Computed fields"): the function is called on every *read* — "GET, lists, the answers
 * of writes" — and shows what it returns; GET binds hooks read-only (runtime/http/routes.c
 * rec_ctx: "A read: hooks it fires (computed fields) may read but not write"). Reproduction: type
 * gz {n int, c int computed}, local/gz computed.c = pcall(trellis.create, 'side', ...) and 1 if
 * it wrote else 0; POST /api/v1/records/gz {"n":1} answers "c":1 and leaves a side record, GET
 * /api/v1/records/gz/1 answers "c":0; with trellis.log(..., {history = true}) in the function the
 * POST answers version 1 while the stored record is at version 2 (a note event written by a
 * read). Cause: trl_rec_json (runtime/record/record.c) fires TRL_EV_COMPUTE with the write's
 * binding (r->hb, not read_only) and txn; computed calls should be bound read-only whatever the
 * request (runtime/hooks/engine.c, where the event's frame is set up). Want: the answer of the
 * write is what a read shows, and nothing is written by computing it. */
START_TEST(computed_fields_in_write_answers_are_reads)
{
    struct resp r;
    long st = api_call(&S, ADMIN, "PUT",
                       "{\"name\":\"gz\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"},"
                       "{\"name\":\"c\",\"type\":\"int\",\"computed\":true}]}",
                       &r, "/api/v1/meta/types/gz");
    ck_assert_msg(st == 201, "PUT gz: %ld %s", st, r.body);
    resp_free(&r);
    st = api_call(&S, ADMIN, "PUT",
                  "{\"name\":\"side\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}", &r,
                  "/api/v1/meta/types/side");
    ck_assert_msg(st == 201, "PUT side: %ld %s", st, r.body);
    resp_free(&r);
    api_hook_ok(&S, "local", "gz",
                "local M = {computed = {}}\n"
                "function M.computed.c(ctx, rec)\n"
                "  local ok = pcall(trellis.create, 'side', {n = rec.n})\n"
                "  if rec.n == 2 then pcall(trellis.log, 'computed', {history = true}) end\n"
                "  return ok and 1 or 0\n"
                "end\n"
                "return M\n");
    for (int n = 1; n <= 2; n++) {
        char body[32];
        snprintf(body, sizeof(body), "{\"n\":%d}", n);
        ck_assert_int_eq(api_call(&S, ADMIN, "POST", body, &r, "/api/v1/records/gz"), 201);
        long long id = json_int(r.body, "id", 0);
        char *now = rec_text(ADMIN, "gz", id);
        ck_assert_msg(strcmp(r.body, now) == 0, "POST answered\n%s\nGET shows\n%s", r.body, now);
        free(now);
        resp_free(&r);
        ck_assert_int_eq(api_history_count(&S, "/api/v1/records/gz", id, NULL, NULL), 1);
    }
    ck_assert_int_eq(count_records_ids(&S, "side"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_hooks_more");
    TCase *tc = tcase_create("hooks_more");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, endpoints_answer_by_method_with_params_and_status);
    tcase_add_test(tc, endpoints_refuse_unknown_names_apps_and_callers);
    tcase_add_test(tc, endpoint_get_cannot_write_and_post_rolls_back);
    tcase_add_test(tc, endpoints_carry_chinese_text_both_ways);
    tcase_add_test(tc, endpoints_act_with_the_callers_permissions);
    tcase_add_test(tc, computed_fields_show_on_every_read);
    tcase_add_test(tc, computed_fields_are_refused_as_input_filters_and_sorts);
    tcase_add_test(tc, computed_value_the_field_cannot_hold_fails_the_read);
    tcase_add_test(tc, computed_field_definitions_are_checked);
    tcase_add_test(tc, field_permissions_hide_computed_fields);
    tcase_add_test(tc, scheduled_job_runs_once_per_due_time_as_system);
    tcase_add_test(tc, failing_job_is_rolled_back_and_runs_again);
    tcase_add_test(tc, reinstalling_replans_and_removes_the_schedule);
    tcase_add_test(tc, app_install_refuses_bad_schedules_and_syntax_errors);
    tcase_add_test(tc, reinstall_removes_a_dropped_module_and_requires_siblings);
    tcase_add_test(tc, log_history_notes_go_into_the_records_history);
    suite_add_tcase(s, tc);

    /* The CLI alone: no server. */
    TCase *cli = tcase_create("cli");
    tcase_add_unchecked_fixture(cli, tmpreg_setup, tmpreg_teardown);
    tcase_set_timeout(cli, 60);
    tcase_add_test(cli, hooks_test_reports_failures_and_missing_specs);
    tcase_add_test(cli, hooks_lint_flags_io_open);
    suite_add_tcase(s, cli);

    /* Bugs this suite found (fixed; each test's comment tells the story). */
    TCase *bugs = tcase_create("regressions");
    tcase_add_unchecked_fixture(bugs, tmpreg_setup, tmpreg_teardown);
    tcase_add_checked_fixture(bugs, setup, teardown);
    tcase_set_timeout(bugs, 60);
    tcase_add_test(bugs, log_history_in_before_delete);
    tcase_add_test(bugs, computed_fields_in_write_answers_are_reads);
    suite_add_tcase(s, bugs);
    return run_suite(s);
}
