/*
 * harness — integration tests against the real `trellis` binary over HTTP (libcurl).
 *
 * srv_start makes a temporary data directory, installs the sample app with the CLI, starts
 * `trellis serve --listen 127.0.0.1:0 --port-file ...` as a child process and waits (bounded) for
 * the port. Every wait is bounded; processes are ended by PID only.
 * Environment (set by ctest): TRELLIS_BIN, TRELLIS_SRC, TRELLIS_SHARED.
 * The shared helpers further down use Check (ck_assert) and runtime/core's datetime functions:
 * a suite links trl_core after trl_testharness (as tests/integration and tests/crash do).
 */
#ifndef TRL_TEST_HARNESS_H
#define TRL_TEST_HARNESS_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

/* Milliseconds in a minute, an hour and a day (the test clock moves in them). */
#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* The auth argument of the api_* helpers below: NULL (ADMIN) sends the harness's admin token,
 * API_ANON no credentials at all, anything else is the caller's "Authorization: ..." header. */
#define ADMIN NULL
extern const char API_ANON[];

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
/* The same without reading any computed field (fields=id). */
long count_records_ids(const struct srv *s, const char *type);
/* The text of a file (owned, NUL-terminated; *n its length when n is not NULL), NULL when it
 * cannot be read. */
char *read_file(const char *path, size_t *n);
/* read_file that asserts that the file can be read. */
char *read_file_ok(const char *path);

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

/* ---------------------------------------------------------------------------------------------
 * Helpers shared by the suites. The ones that check something fail the running Check test
 * (ck_assert) when it does not hold; the macros below keep the failure at the test's own line.
 */

/* Sleeps ms milliseconds. */
void wait_ms(int ms);
/* Polls cond every 50 ms for up to 5 s, then asserts it (the rest: ck_assert_msg's message). */
#define WAIT_FOR(cond, ...)                                                                        \
    do {                                                                                           \
        for (int w_ = 0; w_ < 100 && !(cond); w_++)                                                \
            wait_ms(50);                                                                           \
        ck_assert_msg(cond, __VA_ARGS__);                                                          \
    } while (0)

/* Server and store. */
/* Stops the server and runs `trellis check` on its data directory, printing the check's output
 * to stderr when it fails; the check's exit status (0: consistent). For teardowns (the data
 * directory stays: srv_cleanup removes it). */
int srv_stop_and_check(struct srv *s);
/* Asserts that `trellis check` passes on s->dir (the server stopped, or live). */
void assert_store_check(const struct srv *s);
/* A suite's checked teardown: srv_stop_and_check, srv_cleanup, and asserts that the check
 * passed. */
void srv_teardown(struct srv *s);
/* Runs every test of suite (CK_NORMAL) and frees the runner; 1 when a test failed, else 0 (what
 * main returns). */
struct Suite;
int run_suite(struct Suite *suite);

/* The CLI against s->dir. */
/* Runs `trellis A B C --data <s->dir>` and asserts that it succeeds ("org add acme"). */
void cli_run3(const struct srv *s, const char *a, const char *b, const char *c);
/* Adds user name with role (and org when not NULL), creates an API token for them (named
 * token_name; NULL: the CLI's default name) and writes "Authorization: Bearer <token>" into
 * hdr (n bytes). */
void cli_add_user(const struct srv *s, const char *name, const char *role, const char *org,
                  const char *token_name, char *hdr, size_t n);
/* A user of a suite: name, role, org (or NULL) and, once added, its Authorization header. */
struct test_user {
    const char *name, *role, *org;
    char hdr[128]; /* "Authorization: Bearer ..." */
};
/* cli_add_user for each of the n users, with a token named "tk_<name>" each. */
void cli_add_users(const struct srv *s, struct test_user *users, int n);
/* Creates an API token for user name (named token_name; NULL: the CLI's default name) and
 * writes "Authorization: Bearer <token>" into hdr (n bytes). */
void cli_token(const struct srv *s, const char *name, const char *token_name, char *hdr, size_t n);
/* srv_init with the sample app (s->dir registered with tmpreg_add, even when srv_init fails
 * half-way), serve arguments extra (NULL: none), the orgs (a NULL-terminated list, or NULL),
 * the n users (cli_add_users); then srv_start. Asserts every step. */
void srv_up(struct srv *s, const char *extra, const char *const *orgs, struct test_user *users,
            int n);

/* Requests with Content-Type: application/json. auth is the caller's "Authorization: Bearer ..."
 * header, NULL (ADMIN) for the harness's admin token, API_ANON for none. They answer the HTTP
 * status (0 when the request failed) and leave the response in out, or free it when out is
 * NULL. */
/* One request to path; extra is one more header ("Idempotency-Key: k") or NULL. */
long api_request(const struct srv *s, const char *auth, const char *extra, const char *method,
                 const char *path, const char *body, struct resp *out);
/* One request to a printf-formatted path. */
long api_call(const struct srv *s, const char *auth, const char *method, const char *body,
              struct resp *out, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* api_call with the path's arguments in a va_list (for a suite's own variadic wrapper). */
long api_vcall(const struct srv *s, const char *auth, const char *method, const char *body,
               struct resp *out, const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* A GET that must answer 200: the body (owned). */
char *api_get_text(const struct srv *s, const char *auth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A GET that must answer 200 with JSON: the parsed body (owned). */
cJSON *api_get_json(const struct srv *s, const char *auth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A GET that must answer 200 with a JSON object whose "items" is an array: the parsed body
 * (owned), its items in *items. */
cJSON *api_get_items(const struct srv *s, const char *auth, cJSON **items, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* PUT doc (printed unformatted) to a formatted path; the status, the response in out. */
long api_put_json(const struct srv *s, const char *auth, const cJSON *doc, struct resp *out,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* POST body to a formatted records path as auth and assert 201: the new record's id (0 when
 * the answer has none). */
long long api_create(const struct srv *s, const char *auth, const char *body, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A marketing_request titled title (partner P, region east, budget 10) created as auth: its id. */
long long api_create_request(const struct srv *s, const char *auth, const char *title);

/* Records and their history, as the administrator reads them; type_path is the records
 * collection ("/api/v1/records/marketing_request"). */
/* String member key of record id (def when absent or not a string), copied into buf. */
const char *api_record_str(const struct srv *s, const char *type_path, long long id,
                           const char *key, const char *def, char *buf, size_t n);
/* History events of record id whose string member key equals value (key NULL: every event). */
int api_history_count(const struct srv *s, const char *type_path, long long id, const char *key,
                      const char *value);
/* History event -back of record id (0: the last) as JSON text (owned); asserts that it exists. */
char *api_history_event(const struct srv *s, const char *type_path, long long id, int back);
/* The record is in state want. */
#define ASSERT_RECORD_STATE(s, type_path, id, want)                                                \
    do {                                                                                           \
        char st_[64];                                                                              \
        ck_assert_msg(                                                                             \
            strcmp(api_record_str(s, type_path, id, "state", "(none)", st_, sizeof(st_)), want) == \
                0,                                                                                 \
            "record %lld: want state %s, got %s", (long long)(id), want, st_);                     \
    } while (0)
/* History event -back of the record contains subset (json_contains). */
#define ASSERT_HISTORY_EVENT(s, type_path, id, back, subset)                                       \
    do {                                                                                           \
        char *ev_ = api_history_event(s, type_path, id, back);                                     \
        ck_assert_msg(json_contains(ev_, subset), "record %lld event -%d: want %s in %s",          \
                      (long long)(id), back, subset, ev_);                                         \
        free(ev_);                                                                                 \
    } while (0)

/* Approval tasks and inboxes. */
/* The pending approval task of the user behind auth (called name in messages) on record id, 0
 * when none; asserts that there is at most one. With check_each, also that each such task says
 * status pending and assignee name. */
long long api_pending_task(const struct srv *s, const char *auth, const char *name, long long id,
                           bool check_each);
/* Approval task tid (GET /api/v1/approvals/{tid} as the administrator) contains subset. */
#define ASSERT_APPROVAL_TASK(s, tid, subset)                                                       \
    do {                                                                                           \
        struct resp r_;                                                                            \
        ck_assert_int_eq(                                                                          \
            api_call(s, NULL, "GET", NULL, &r_, "/api/v1/approvals/%lld", (long long)(tid)), 200); \
        ck_assert_msg(json_contains(r_.body, subset), "task %lld: want %s in %s",                  \
                      (long long)(tid), subset, r_.body);                                          \
        resp_free(&r_);                                                                            \
    } while (0)
/* Messages of kind in the inbox of the user behind auth that link record id of type type_name
 * ("marketing_request"). */
int api_inbox_count(const struct srv *s, const char *auth, const char *kind, const char *type_name,
                    long long id);

/* Snapshots: a refused request changes nothing. */
/* GET answers kept to compare later: each entry a label ("the record", "rita's inbox"), the
 * caller's auth (copied; NULL: admin), a path and the body it answered. Zero-initialise (or let
 * the first snapshot_add on a {0} snapshot start it). */
struct snapshot {
    int n;
    struct snapshot_entry {
        char label[64];
        char auth[128]; /* "" for the admin token */
        char path[256];
        char *body;
    } * e;
};
/* GETs the formatted path as auth (it must answer 200) and keeps the body under label. */
void snapshot_add(const struct srv *s, struct snapshot *snap, const char *label, const char *auth,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* GETs every entry again, in order, and asserts that it answers the same body ("<what> changed
 * <label>:\n<before>\n->\n<after>"); then frees the snapshot. */
void snapshot_same(const struct srv *s, struct snapshot *snap, const char *what);

/* Runs transition name on record id of type_path as auth (who names them in messages) with body
 * and asserts that it is refused: status want and, when rule is not NULL, a problem naming rule
 * (and path when not NULL); then that nothing in snap (taken just before) changed. Frees snap. */
void assert_move_refused(const struct srv *s, struct snapshot *snap, const char *type_path,
                         long long id, const char *auth, const char *who, const char *name,
                         const char *body, long want, const char *rule, const char *path);

/* What a refusal must answer (assert_prob): status, and each member that is not NULL: code,
 * rule, path, hook and field exactly ("a|b": a or b), detail exactly or, as "~text", containing
 * text; with no_field, neither "field" nor "errors". */
struct prob {
    long status;
    const char *code, *rule, *path, *hook, *detail, *field;
    bool no_field;
};
/* The answer r (status got) is a problem+json as w says; what names the request in messages. */
void assert_prob(const struct resp *r, long got, const struct prob *w, const char *what);
/* A record type a refusal must leave alone: its list with the exact count, every record's history
 * and, when fields is NULL, every record by id (with fields, the list shows only those columns:
 * for types whose computed fields may fail to read). */
struct watched {
    const char *type, *fields;
};
/* Snapshots of the n watched types into snap (which it starts afresh). */
void snapshot_watched(const struct srv *s, struct snapshot *snap, const struct watched *w, int n);
/* Runs method on the formatted path as auth with body and asserts that it is refused as want
 * says and changes nothing in the nw watched types (their counts, count_records_ids, and
 * snapshot_watched). The answer is left in out when out is not NULL. */
void assert_refused(const struct srv *s, const struct watched *w, int nw, const char *auth,
                    const char *method, const char *body, const struct prob *want, struct resp *out,
                    const char *fmt, ...) __attribute__((format(printf, 9, 10)));

/* Hook modules (/api/v1/meta/hooks/{app}/{module}, Lua text). */
/* PUT module text as auth; the status, the answer in out (or freed). */
long api_put_hook(const struct srv *s, const char *auth, const char *app, const char *module,
                  const char *lua, struct resp *out);
/* Saves app/module as the administrator and asserts that it was taken (changed). */
void api_hook_ok(const struct srv *s, const char *app, const char *module, const char *lua);
/* "file:N" into buf, where N is the line of text holding needle (the first one); asserts that
 * text holds it. */
const char *at_line(char *buf, size_t n, const char *file, const char *text, const char *needle);

/* The server's test clock (`serve --test-clock`, POST /api/v1/test/clock). */
/* Sets the clock to ms (UTC milliseconds) and asserts that it is there. */
void clock_set_ms(const struct srv *s, int64_t ms);
/* Sets the clock to an RFC 3339 datetime. */
void clock_set(const struct srv *s, const char *rfc3339);
/* Moves the clock on by ms. */
void clock_advance(const struct srv *s, int64_t ms);
/* The clock's time (UTC milliseconds). */
int64_t clock_now_ms(const struct srv *s);

/* JSON and problem answers. */
/* The response body parsed (owned); asserts that it is JSON. */
cJSON *resp_json(const struct resp *r);
/* String member key of object j, NULL when absent or not a string. */
const char *obj_str(const cJSON *j, const char *key);
/* Number member key of object j, -1 when absent or not a number. */
long long obj_int(const cJSON *j, const char *key);
/* An RFC 3339 datetime as UTC milliseconds; asserts that it parses. */
int64_t time_ms(const char *rfc3339);
/* Datetime member key of object j as UTC milliseconds, 0 when null; asserts that it is a
 * datetime or null. */
int64_t obj_time_ms(const cJSON *j, const char *key);
/* True when a and b are both strings and equal. */
bool str_eq(const char *a, const char *b);
/* The strings of JSON array arr sorted and joined by commas into out ("rex,rita"); other items
 * are left out. False when an item was not a string or there were more than 16. */
bool json_join_sorted(const cJSON *arr, char *out, size_t n);
/* Index of the first object of array arr whose string member key is value, -1 when none. */
int json_find(const cJSON *arr, const char *key, const char *value);
/* True when have is an array of as many items as want and each item of want has an equal one in
 * have (in any order). */
bool json_same_items(const cJSON *have, const cJSON *want);
/* True when the problem body's errors[] has an entry whose "field" is field. */
bool problem_has_field(const char *body, const char *field);
/* The same with "code" code too (code NULL: any). */
bool problem_has_error(const char *body, const char *field, const char *code);
/* The answer r (status got) is want_status and, when rule is not NULL, a problem naming rule (and
 * path when not NULL); what names the request in messages. */
void assert_problem(const struct resp *r, long want_status, long got, const char *rule,
                    const char *path, const char *what);

#endif
