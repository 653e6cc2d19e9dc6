/* harness.c — see harness.h. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *trellis_bin(void)
{
    const char *b = getenv("TRELLIS_BIN");
    return b ? b : "./trellis";
}

const char *trellis_src(void)
{
    const char *s = getenv("TRELLIS_SRC");
    return s ? s : "..";
}

const char *trellis_shared(void)
{
    static char buf[4096];
    const char *s = getenv("TRELLIS_SHARED");
    if (s) return s;
    snprintf(buf, sizeof(buf), "%s/../shared", trellis_src());
    return buf;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int run_trellis(const char *const *argv, char **out, int timeout_s)
{
    char tmpl[] = "/tmp/trellis-cli-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        int n = 0;
        while (argv[n])
            n++;
        char **av = calloc((size_t)n + 2, sizeof(char *));
        av[0] = (char *)trellis_bin();
        for (int i = 0; i < n; i++)
            av[i + 1] = (char *)argv[i];
        execv(trellis_bin(), av);
        _exit(127);
    }
    int status = -1, waited = 0;
    for (int i = 0; i < timeout_s * 100; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            waited = 1;
            break;
        }
        sleep_ms(10);
    }
    if (!waited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        status = -1;
    }
    if (out) {
        off_t len = lseek(fd, 0, SEEK_END);
        *out = calloc(1, (size_t)len + 1);
        if (*out) {
            if (pread(fd, *out, (size_t)len, 0) < 0) (*out)[0] = 0;
        }
    }
    close(fd);
    unlink(tmpl);
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int srv_init(struct srv *s, const char *app_dir)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/trellis-test-XXXXXX");
    if (!mkdtemp(s->dir)) return -1;
    snprintf(s->log, sizeof(s->log), "%s.log", s->dir);
    char app[4096];
    if (app_dir)
        snprintf(app, sizeof(app), "%s", app_dir);
    else
        snprintf(app, sizeof(app), "%s/samples/marketing", trellis_src());
    char *out = NULL;
    const char *argv[] = {"app", "install", app, "--data", s->dir, NULL};
    int rc = run_trellis(argv, &out, 60);
    if (rc != 0) fprintf(stderr, "harness: app install failed (%d): %s\n", rc, out ? out : "");
    free(out);
    if (rc) return -1;
    const char *add[] = {"user", "add", "admin", "--role", "admin", "--data", s->dir, NULL};
    rc = run_trellis(add, &out, 60);
    if (rc != 0) fprintf(stderr, "harness: user add failed (%d): %s\n", rc, out ? out : "");
    free(out);
    if (rc) return -1;
    const char *tok[] = {"token", "create", "admin", "--name", "harness", "--data", s->dir, NULL};
    rc = run_trellis(tok, &out, 60);
    const char *p = out ? strstr(out, "trl_") : NULL;
    if (rc != 0 || !p) {
        fprintf(stderr, "harness: token create failed (%d): %s\n", rc, out ? out : "");
        free(out);
        return -1;
    }
    snprintf(s->token, sizeof(s->token), "%.68s", p);
    snprintf(s->auth, sizeof(s->auth), "Authorization: Bearer %s", s->token);
    free(out);
    return 0;
}

int srv_start(struct srv *s)
{
    char portfile[300];
    snprintf(portfile, sizeof(portfile), "%s/port", s->dir);
    unlink(portfile);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* If the test process dies (a Check timeout), the server dies with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *av[64];
        int n = 0;
        av[n++] = (char *)trellis_bin();
        av[n++] = "serve";
        av[n++] = "--data";
        av[n++] = s->dir;
        av[n++] = "--listen";
        av[n++] = "127.0.0.1:0";
        av[n++] = "--port-file";
        av[n++] = portfile;
        char extra[512];
        snprintf(extra, sizeof(extra), "%s", s->extra);
        for (char *tok = strtok(extra, " "); tok && n < 62; tok = strtok(NULL, " "))
            av[n++] = tok;
        av[n] = NULL;
        execv(trellis_bin(), av);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 3000; i++) { /* 30 s: ASan builds start slowly */
        FILE *f = fopen(portfile, "r");
        if (f) {
            unsigned p = 0;
            int ok = fscanf(f, "%u", &p);
            fclose(f);
            if (ok == 1 && p) {
                s->port = p;
                return 0;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "harness: server exited at start; log %s\n", s->log);
            return -1;
        }
        sleep_ms(10);
    }
    srv_kill9(s);
    return -1;
}

void srv_stop(struct srv *s)
{
    if (!s->pid) return;
    kill(s->pid, SIGTERM);
    int status;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    srv_kill9(s);
}

void srv_kill9(struct srv *s)
{
    if (!s->pid) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void srv_cleanup(struct srv *s)
{
    srv_stop(s);
    if (s->dir[0] && strncmp(s->dir, "/tmp/trellis-test-", 18) == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", s->dir, s->log);
        if (system(cmd) != 0) fprintf(stderr, "harness: could not remove %s\n", s->dir);
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = size * n;
    char *nb = realloc(r->body, r->n + len + 1);
    if (!nb) return 0;
    memcpy(nb + r->n, p, len);
    r->n += len;
    nb[r->n] = 0;
    r->body = nb;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = size * n, old = r->headers ? strlen(r->headers) : 0;
    char *nh = realloc(r->headers, old + len + 1);
    if (!nh) return 0;
    memcpy(nh + old, p, len);
    nh[old + len] = 0;
    r->headers = nh;
    return len;
}

static int http_do(const struct srv *s, const char *method, const char *path, const char *body,
                   size_t n, const char *const *headers, bool auth, struct resp *out);

int http(const struct srv *s, const char *method, const char *path, const char *body, size_t n,
         const char *const *headers, struct resp *out)
{
    bool own = false;
    for (const char *const *h = headers; h && *h && !own; h++)
        own = strncasecmp(*h, "Authorization:", 14) == 0;
    return http_do(s, method, path, body, n, headers, !own && s->auth[0], out);
}

int http_anon(const struct srv *s, const char *method, const char *path, const char *body, size_t n,
              const char *const *headers, struct resp *out)
{
    return http_do(s, method, path, body, n, headers, false, out);
}

static int http_do(const struct srv *s, const char *method, const char *path, const char *body,
                   size_t n, const char *const *headers, bool auth, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    out->body = calloc(1, 1);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[8192];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", s->tls ? "https" : "http", s->port, path);
    struct curl_slist *hl = NULL;
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    if (auth) hl = curl_slist_append(hl, s->auth);
    if (s->tls) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int http_json(const struct srv *s, const char *method, const char *path, const char *body,
              struct resp *out)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return http(s, method, path, body, body ? strlen(body) : 0, h, out);
}

void resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

const char *resp_header(const struct resp *r, const char *name, char *buf, size_t n)
{
    if (!r->headers) return NULL;
    size_t nl = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *e = strstr(p, "\r\n");
        if (!e) e = p + strlen(p);
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, n, "%.*s", (int)(e - v), v);
            return buf;
        }
        p = *e ? e + 2 : e;
    }
    return NULL;
}

int store_check(const char *dir, char **out)
{
    const char *argv[] = {"check", "--data", dir, NULL};
    return run_trellis(argv, out, 300);
}

long count_records(const struct srv *s, const char *type)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/records/%s?count=exact&limit=1", type);
    struct resp r;
    if (http(s, "GET", path, NULL, 0, NULL, &r) || r.status != 200) {
        resp_free(&r);
        return -1;
    }
    long long n = json_int(r.body, "count", -1);
    resp_free(&r);
    return (long)n;
}

long long json_int(const char *json, const char *key, long long def)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    long long r = cJSON_IsNumber(v) ? (long long)v->valuedouble : def;
    cJSON_Delete(j);
    return r;
}

static bool contains(const cJSON *have, const cJSON *want)
{
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(have)) return false;
        for (const cJSON *w = want->child; w; w = w->next) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(have, w->string);
            if (!h || !contains(h, w)) return false;
        }
        return true;
    }
    if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(have)) return false;
        const cJSON *h = have->child;
        for (const cJSON *w = want->child; w; w = w->next, h = h ? h->next : NULL)
            if (!h || !contains(h, w)) return false;
        return true;
    }
    return cJSON_Compare(have, want, true);
}

bool json_contains(const char *json, const char *subset)
{
    cJSON *h = cJSON_Parse(json), *w = cJSON_Parse(subset);
    bool ok = h && w && contains(h, w);
    cJSON_Delete(h);
    cJSON_Delete(w);
    return ok;
}

/* Temporary folders are listed in a folder the parent process creates, and removed by it after
 * the tests: a failing test (a forked child) ends at once, before any teardown of its own. */
static char reg[64]; /* the registry folder, "" when none */

void tmpreg_setup(void)
{
    snprintf(reg, sizeof(reg), "/tmp/trellis-test-XXXXXX");
    if (!mkdtemp(reg)) reg[0] = 0;
}

void tmpreg_add(const char *dir)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/dirs", reg);
    FILE *f = reg[0] ? fopen(p, "a") : NULL;
    if (!f) return;
    fprintf(f, "%s\n", dir);
    fclose(f);
}

void tmpreg_teardown(void)
{
    if (!reg[0]) return;
    char p[128], line[512], cmd[1200];
    snprintf(p, sizeof(p), "%s/dirs", reg);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "/tmp/trellis-test-", 18) != 0 || strchr(line, '\'') ||
            strstr(line, ".."))
            continue;
        snprintf(cmd, sizeof(cmd), "/bin/rm -rf '%s' '%s.log'", line, line);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", line);
    }
    if (f) fclose(f);
    snprintf(cmd, sizeof(cmd), "/bin/rm -rf '%s'", reg);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", reg);
}

const char *tmpreg_dir(void)
{
    return reg;
}
