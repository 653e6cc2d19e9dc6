/*
 * harness — integration tests against the real `trellis` binary over HTTP (libcurl).
 *
 * srv_start makes a temporary data directory, installs the sample app with the CLI, starts
 * `trellis serve --listen 127.0.0.1:0 --port-file ...` as a child process and waits (bounded) for
 * the port. Every wait is bounded; processes are ended by PID only.
 * Environment (set by ctest): TRELLIS_BIN, TRELLIS_SRC, TRELLIS_SHARED.
 */
#ifndef TRL_TEST_HARNESS_H
#define TRL_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct srv {
    pid_t pid;       /* child process, 0 when not running */
    unsigned port;   /* bound port */
    char dir[256];   /* data directory (owned by the test; removed by srv_cleanup) */
    char log[300];   /* server log file */
    char extra[512]; /* extra serve arguments */
    char token[80];  /* an admin API token made by srv_init (`trellis token create`) */
    char auth[128];  /* "Authorization: Bearer <token>", for raw-socket requests */
    bool tls;        /* the server speaks HTTPS (self-signed: not verified) */
};

struct resp {
    long status;   /* HTTP status, 0 on transport failure */
    char *body;    /* response body, NUL-terminated (owned) */
    size_t n;      /* body length */
    char *headers; /* raw response headers (owned) */
};

/* Path of the trellis binary and of the source tree. */
const char *trellis_bin(void);
const char *trellis_src(void);
const char *trellis_shared(void);

/* Creates a data dir with the sample app installed (app_dir NULL: samples/marketing), an admin
 * user and an admin API token (s->token). */
int srv_init(struct srv *s, const char *app_dir);
/* Starts serving s->dir (extra arguments in s->extra); 0 or -1. */
int srv_start(struct srv *s);
/* SIGTERM and wait (bounded), then SIGKILL if needed. */
void srv_stop(struct srv *s);
/* SIGKILL now and reap. */
void srv_kill9(struct srv *s);
/* srv_stop and remove the data directory. */
void srv_cleanup(struct srv *s);

/* One request. headers: NULL-terminated array of "Name: value". body may be NULL. The admin
 * token is sent unless headers carry an Authorization header of their own (use http_anon for
 * none at all). */
int http(const struct srv *s, const char *method, const char *path, const char *body, size_t n,
         const char *const *headers, struct resp *out);
/* The same without any credentials. */
int http_anon(const struct srv *s, const char *method, const char *path, const char *body, size_t n,
              const char *const *headers, struct resp *out);
/* Shorthands with Content-Type: application/json. */
int http_json(const struct srv *s, const char *method, const char *path, const char *body,
              struct resp *out);
void resp_free(struct resp *r);
/* Value of a response header (copied into buf) or NULL. */
const char *resp_header(const struct resp *r, const char *name, char *buf, size_t n);

/* Runs `trellis ARGS...` (argv NULL-terminated), capturing stdout+stderr into out (owned,
 * may be NULL). Returns the exit status, or -1. Bounded by timeout_s. */
int run_trellis(const char *const *argv, char **out, int timeout_s);
/* `trellis check --data dir`: 0 when consistent. */
int store_check(const char *dir, char **out);
/* Number of records of a type through the API (count=exact); -1 on failure. */
long count_records(const struct srv *s, const char *type);

/* A registry of temporary folders that the suite's parent process removes after the tests (a
 * failing Check test ends its forked child at once, before any teardown of its own). Use
 * tmpreg_setup/tmpreg_teardown as an unchecked fixture and tmpreg_add for each folder. */
void tmpreg_setup(void);
void tmpreg_add(const char *dir);
void tmpreg_teardown(void);
/* The registry folder itself (a place for a suite's scratch folders), "" when none. */
const char *tmpreg_dir(void);

/* JSON helpers over cJSON: integer member of a top-level object, or def. */
long long json_int(const char *json, const char *key, long long def);
/* True when every member of `subset` (a JSON text) appears with an equal value in `json`
 * (objects compared recursively; arrays compared element by element). */
bool json_contains(const char *json, const char *subset);

#endif
