/* /api/v1/openapi.json validated by a real OpenAPI 3.1 validator from the npm registry:
 * @redocly/cli (version pinned in tests/integration/openapi/package-lock.json), installed with
 * `npm ci` into BUILD/openapi-tools (reused while the lock file is unchanged) and run as
 * `redocly lint --config redocly.yaml` with only the `spec` ruleset: structural validity
 * (struct, no-unresolved-refs, path parameters, unique operationIds ...), no style rules.
 * redocly exits 0 when there is no error and 1 when there is any.
 *
 * Skipped, saying so, only when `npm` is not on PATH. If npm is there but the install fails,
 * the test fails. The served document covers the sample app plus a type with every field type. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct srv S;
static char tools[PATH_MAX]; /* BUILD/openapi-tools */

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    char *dup = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", *d ? d : ".", prog);
        found = access(p, X_OK) == 0;
    }
    free(dup);
    return found;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

/* Runs argv (PATH lookup) in dir cwd with output into *out (owned); bounded by timeout_s.
 * Returns the exit status, or -1 (did not run, killed, or timed out). */
static int run(const char *const *argv, const char *cwd, char **out, int timeout_s)
{
    char tmpl[] = "/tmp/trellis-oa-XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (cwd && chdir(cwd)) _exit(126);
        setenv("REDOCLY_TELEMETRY", "off", 1);
        setenv("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true", 1);
        setenv("NO_COLOR", "1", 1);
        setenv("npm_config_update_notifier", "false", 1);
        setpgid(0, 0); /* its own group: a timeout ends npm and its children together */
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid);
    int status = -1;
    bool done = false;
    for (int i = 0; i < timeout_s * 20 && !done; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            done = true;
        else
            nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    if (!done) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    off_t len = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)len + 64);
    if (pread(fd, *out, (size_t)len, 0) < 0) (*out)[0] = 0;
    if (!done) strcat(*out, "\n(timed out)");
    close(fd);
    unlink(tmpl);
    if (!done || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static bool same_file(const char *a, const char *b)
{
    char *x = read_file(a, NULL), *y = read_file(b, NULL);
    bool same = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

static void copy_file(const char *from, const char *to)
{
    char *t = read_file(from, NULL);
    ck_assert_msg(t != NULL, "cannot read %s", from);
    spit(to, t);
    free(t);
}

/* Installs the pinned validator into `tools` unless the same lock file is already installed.
 * Returns the path of the redocly binary. */
static const char *install_validator(void)
{
    static char bin[PATH_MAX + 64];
    char src_pkg[PATH_MAX], src_lock[PATH_MAX], pkg[PATH_MAX + 32], lock[PATH_MAX + 32],
        stamp[PATH_MAX + 32];
    snprintf(src_pkg, sizeof(src_pkg), "%s/tests/integration/openapi/package.json", trellis_src());
    snprintf(src_lock, sizeof(src_lock), "%s/tests/integration/openapi/package-lock.json",
             trellis_src());
    snprintf(pkg, sizeof(pkg), "%s/package.json", tools);
    snprintf(lock, sizeof(lock), "%s/package-lock.json", tools);
    snprintf(stamp, sizeof(stamp), "%s/installed-lock.json", tools);
    snprintf(bin, sizeof(bin), "%s/node_modules/.bin/redocly", tools);
    mkdir(tools, 0755);
    if (access(bin, X_OK) == 0 && same_file(src_lock, stamp)) return bin; /* cached */
    copy_file(src_pkg, pkg);
    copy_file(src_lock, lock);
    unlink(stamp);
    char *out = NULL;
    const char *argv[] = {"npm",        "ci",        "--prefix",         tools,
                          "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error",
                          NULL};
    int rc = run(argv, tools, &out, 600);
    ck_assert_msg(rc == 0 && access(bin, X_OK) == 0,
                  "npm is on PATH but `npm ci --prefix %s` failed (exit %d): the OpenAPI "
                  "validator could not be installed\n%s",
                  tools, rc, out);
    free(out);
    copy_file(src_lock, stamp);
    return bin;
}

/* Runs the validator on file; returns its exit code, report in *out (owned). */
static int lint(const char *bin, const char *file, char **out)
{
    char cfg[PATH_MAX + 32];
    snprintf(cfg, sizeof(cfg), "%s/redocly.yaml", tools);
    const char *argv[] = {bin, "lint", file, "--config", cfg, "--format=stylish", NULL};
    return run(argv, tools, out, 300);
}

/* A type with every field type and rule that shows up in the schema. */
static const char *every_field =
    "{\"name\":\"every_field\",\"labels\":{\"en\":\"Every \\\"field\\\" <type> \\\\ /\","
    "\"zh-CN\":\"所有字段\"},\"title_field\":\"t\",\"autoname\":\"EF-{YYYY}-{###}\","
    "\"initial_state\":\"new\",\"fields\":["
    "{\"name\":\"t\",\"type\":\"text\",\"required\":true,\"unique\":true,\"min_length\":1,"
    "\"max_length\":80,\"pattern\":\"^[A-Za-z0-9 ]+$\",\"labels\":{\"en\":\"Title \\\"q\\\"\","
    "\"zh-CN\":\"标题\"},\"help\":{\"en\":\"help\"}},"
    "{\"name\":\"lt\",\"type\":\"longtext\",\"max_length\":1000},"
    "{\"name\":\"i\",\"type\":\"int\",\"min\":-5,\"max\":500,\"default\":7,\"indexed\":true},"
    "{\"name\":\"dz\",\"type\":\"decimal\",\"scale\":0},"
    "{\"name\":\"d\",\"type\":\"decimal\",\"scale\":3,\"min\":\"0\",\"max\":\"99999.999\"},"
    "{\"name\":\"b\",\"type\":\"bool\",\"default\":false},"
    "{\"name\":\"dt\",\"type\":\"date\",\"min\":\"2020-01-01\"},"
    "{\"name\":\"ts\",\"type\":\"datetime\",\"read_only\":true},"
    "{\"name\":\"e\",\"type\":\"enum\",\"options\":[\"a\",{\"value\":\"b\",\"labels\":{\"en\":"
    "\"Bee\",\"zh-CN\":\"蜂\"}}],\"default\":\"a\"},"
    "{\"name\":\"r\",\"type\":\"ref\",\"ref_type\":\"marketing_request\"},"
    "{\"name\":\"u\",\"type\":\"user\"},"
    "{\"name\":\"j\",\"type\":\"json\"},"
    "{\"name\":\"j2\",\"type\":\"json\",\"labels\":{\"en\":\"\"}},"
    "{\"name\":\"f\",\"type\":\"attachment\",\"max_size\":1000000,\"media_types\":"
    "[\"image/png\",\"application/pdf\"]}]}";

static const char *every_name[] = {"t",  "lt", "i", "dz", "d", "b",  "dt",
                                   "ts", "e",  "r", "u",  "j", "j2", "f"};

/* ---------------------------------------------------------------------------------------------
 * Test
 */

START_TEST(openapi_is_valid_openapi_3_1)
{
    if (!on_path("npm")) {
        printf("SKIP integration_openapi: npm is not on PATH, so openapi.json is not validated "
               "with @redocly/cli (install npm to run this check)\n");
        return;
    }
    char bindir[PATH_MAX];
    snprintf(bindir, sizeof(bindir), "%s", trellis_bin());
    char *slash = strrchr(bindir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(bindir, sizeof(bindir), ".");
    char *real = realpath(bindir, NULL);
    ck_assert_ptr_nonnull(real);
    snprintf(tools, sizeof(tools), "%s/openapi-tools", real);
    free(real);
    const char *bin = install_validator();
    char cfg[PATH_MAX + 32];
    snprintf(cfg, sizeof(cfg), "%s/redocly.yaml", tools);
    spit(cfg, "# Structural validity only (written by tests/integration/test_openapi.c).\n"
              "extends:\n  - spec\n");

    int irc = srv_init(&S, NULL);
    tmpreg_add(S.dir);
    ck_assert_int_eq(irc, 0);
    ck_assert_int_eq(srv_start(&S), 0);
    struct resp r;
    ck_assert_int_eq(http_json(&S, "PUT", "/api/v1/meta/types/every_field", every_field, &r), 0);
    ck_assert_msg(r.status == 200 || r.status == 201, "%ld %s", r.status, r.body);
    resp_free(&r);
    ck_assert_int_eq(
        http_json(&S, "PUT", "/api/v1/meta/types/tiny", "{\"name\":\"tiny\",\"fields\":[]}", &r),
        0);
    ck_assert_msg(r.status == 200 || r.status == 201, "%ld %s", r.status, r.body);
    resp_free(&r);
    ck_assert_int_eq(http(&S, "GET", "/api/v1/openapi.json", NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char ctype[128];
    ck_assert_ptr_nonnull(resp_header(&r, "Content-Type", ctype, sizeof(ctype)));
    ck_assert_msg(strncmp(ctype, "application/json", 16) == 0, "%s", ctype);

    /* Valid JSON, with the paths and schemas of every type. */
    cJSON *doc = cJSON_Parse(r.body);
    if (!doc) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at ? (size_t)(at - r.body) : 0;
        ck_abort_msg("openapi.json is not valid JSON near byte %zu: ...%.80s...", off,
                     r.body + (off > 40 ? off - 40 : 0));
    }
    ck_assert(json_contains(r.body, "{\"openapi\":\"3.1.0\"}"));
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const cJSON *schemas = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "components"), "schemas");
    static const char *types[] = {"marketing_request", "every_field", "tiny"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof(p), "/api/v1/records/%s", types[i]);
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(paths, p) != NULL, "no path %s", p);
        snprintf(p, sizeof(p), "/api/v1/records/%s/{id}", types[i]);
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(paths, p) != NULL, "no path %s", p);
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(schemas, types[i]) != NULL, "no schema %s",
                      types[i]);
    }
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(schemas, "every_field"), "properties");
    for (size_t i = 0; i < sizeof(every_name) / sizeof(every_name[0]); i++)
        ck_assert_msg(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(props, every_name[i])),
                      "every_field.%s missing from the schema", every_name[i]);

    /* Pretty-printed, so the validator's line numbers point somewhere readable. */
    char *pretty = cJSON_Print(doc);
    char file[PATH_MAX + 64], broken[PATH_MAX + 64];
    snprintf(file, sizeof(file), "%s/openapi-%d.json", tools, (int)getpid());
    snprintf(broken, sizeof(broken), "%s/openapi-%d-broken.json", tools, (int)getpid());
    spit(file, pretty);
    free(pretty);

    char *out = NULL;
    int rc = lint(bin, file, &out);
    char nodev[64] = "";
    if (rc != 0) {
        char *v = NULL;
        const char *argv[] = {"node", "--version", NULL};
        run(argv, NULL, &v, 30);
        snprintf(nodev, sizeof(nodev), "%s", v ? v : "?");
        free(v);
    }
    ck_assert_msg(rc == 0,
                  "redocly lint found errors in openapi.json (exit %d; node %s; document kept "
                  "at %s):\n%s",
                  rc, nodev, file, out);
    free(out);

    /* The validator really validates: a structural error in a copy makes it fail. */
    cJSON *e = cJSON_GetObjectItemCaseSensitive(props, "i");
    cJSON_ReplaceItemInObjectCaseSensitive(e, "type", cJSON_CreateString("integr"));
    pretty = cJSON_Print(doc);
    spit(broken, pretty);
    free(pretty);
    rc = lint(bin, broken, &out);
    ck_assert_msg(rc == 1 && strstr(out, "struct"),
                  "the validator accepted a document with \"type\": \"integr\" (exit %d):\n%s", rc,
                  out);
    free(out);

    cJSON_Delete(doc);
    resp_free(&r);
    unlink(file);
    unlink(broken);
    srv_stop(&S);
    char *chk = NULL;
    ck_assert_msg(store_check(S.dir, &chk) == 0, "%s", chk);
    free(chk);
    srv_cleanup(&S);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_openapi");
    TCase *tc = tcase_create("openapi");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_set_timeout(tc, 900); /* a first `npm ci` may download */
    tcase_add_test(tc, openapi_is_valid_openapi_3_1);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
