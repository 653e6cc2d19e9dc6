/* http_int.h — private to runtime/http: server context, requests, write jobs. */
#ifndef TRL_HTTP_INT_H
#define TRL_HTTP_INT_H

#include "hooks/hooks.h"
#include "http.h"
#include "workflow/workflow.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* A tracked connection, for the per-request deadline watchdog. */
struct conn_track {
    int fd;                         /* socket (never closed by us: shutdown only) */
    int64_t started_ms;             /* monotonic ms when the current phase began */
    int64_t limit_ms;               /* how long the current phase may take */
    size_t uri_len;                 /* length of the current request's URI with its query */
    bool busy;                      /* a request is being received or handled */
    bool waiting_writer;            /* suspended on a write job (bounded by the writer) */
    bool streaming;                 /* an event stream: exempt from the deadline */
    uint32_t ip;                    /* client IPv4 address, network order (per-address limit) */
    unsigned worker;                /* index of the HTTP worker serving it */
    struct conn_track *prev, *next; /* registry links */
};

/* One HTTP worker: a libmicrohttpd daemon with its own epoll thread and no listen socket. The
 * acceptor hands each new connection to the worker with the fewest (a libmicrohttpd thread pool
 * lets one thread accept a burst of up to ten, so a handful of keep-alive clients can all land
 * on one thread while the others idle). */
struct http_worker {
    struct trl_server *srv; /* the server (back pointer) */
    struct MHD_Daemon *mhd; /* the daemon (owned) */
    unsigned nconns;        /* open connections (conn_lock) */
};

/* An accepted connection handed to a worker that has not yet reported it started. */
struct pending_conn {
    int fd;           /* its socket */
    uint32_t ip;      /* client address */
    unsigned worker;  /* the worker it went to */
    int64_t since_ms; /* monotonic ms of the hand-over */
};

#define TRL_HTTP_MAX_WORKERS 64

struct trl_server {
    struct trl_server_opts o; /* options (strings borrowed for the server's life) */
    char *files_dir;          /* <data>/files (owned) */
    struct trl_store *store;  /* the store (owned) */
    struct http_worker workers[TRL_HTTP_MAX_WORKERS]; /* HTTP workers (the first nworkers) */
    unsigned nworkers;                                /* workers started */
    int listen_fd;                                    /* listening socket (owned), -1 if none */
    int wake_fd[2];                                   /* pipe that stops the acceptor, -1 if none */
    pthread_t acceptor;                               /* accepts and hands connections to workers */
    bool acceptor_started;                            /* acceptor thread exists */
    unsigned nconns;                                  /* open connections (conn_lock) */
    bool accept_parked;                               /* acceptor waits for a slot (conn_lock) */
    struct pending_conn *pend;             /* handed over, not yet started (conn_lock; owned) */
    size_t npend, pend_cap;                /* entries and capacity of pend */
    atomic_uint_fast64_t n_conn_refused;   /* metrics: connections refused at a limit */
    struct trl_clock sysclock;             /* default clock */
    const struct trl_clock *clock;         /* clock in use */
    pthread_mutex_t cat_lock;              /* guards cat */
    struct trl_catalog *cat;               /* current catalog (one reference owned) */
    struct trl_wf_set *wfs;                /* workflows compiled against cat (one reference) */
    struct trl_hooks_engine *hooks;        /* app hooks (owned) */
    pthread_mutex_t conn_lock;             /* guards the connection registry */
    struct conn_track *conns;              /* registry of open connections */
    pthread_t watchdog;                    /* deadline and reader-slot timer */
    pthread_mutex_t wd_lock;               /* guards wd_stop */
    pthread_cond_t wd_cond;                /* wakes the watchdog to stop */
    bool wd_stop;                          /* watchdog should end */
    bool wd_started;                       /* watchdog thread exists */
    unsigned port;                         /* bound port */
    uint64_t boot_id;                      /* random per start, prefix of request ids */
    atomic_uint_fast64_t req_seq;          /* request id counter */
    atomic_uint_fast64_t n_requests;       /* metrics: requests answered */
    atomic_uint_fast64_t n_status[6];      /* metrics: by class 1xx..5xx (index 1..5) */
    atomic_uint_fast64_t latency_us_sum;   /* metrics: total latency */
    atomic_uint_fast64_t n_deadline_kills; /* metrics: connections cut by the deadline */
    atomic_uint_fast64_t lat_bucket[12];   /* metrics: latency histogram buckets */
    atomic_int pending_jobs;               /* write jobs submitted and not yet done */
    struct trl_write_job purge_job;        /* periodic purge of expired idempotency keys */
    atomic_bool purge_busy;                /* purge_job is queued or running */
    size_t purged;                         /* keys removed by the last purge (writer thread) */
    struct trl_write_job index_job;        /* writes waiting index entries when idle */
    atomic_bool index_busy;                /* index_job is queued or running */
    uint64_t index_seen;                   /* writer jobs counted at the last watchdog tick */
    uint64_t index_looked;                 /* ... when the watchdog last looked for waiting ones */
    atomic_bool stopping;                  /* stop requested: new requests get 503 */
    struct trl_clock testclock;            /* the movable clock (test_clock) */
    atomic_int_fast64_t test_offset;       /* ms added to real time by the test clock */
    struct trl_write_job timer_job;        /* fires due timers (SLA) */
    atomic_bool timer_busy;                /* timer_job is queued or running */
    atomic_bool timer_more;                /* the last firing hit its batch limit */
    size_t timer_fired;                    /* timers fired by the last job (writer thread) */
    atomic_uint_fast64_t jobs_version;     /* snapshot version scheduled jobs were planned for */
    atomic_uint_fast64_t n_timers_fired;   /* metrics: timers fired */
    pthread_mutex_t ev_lock;               /* guards streams and their parking (events.c) */
    struct trl_stream *streams;            /* open event streams */
    atomic_int n_streams;                  /* open event streams (the metrics gauge) */
    atomic_uint_fast64_t ev_gen;           /* bumped when a commit is announced */
    atomic_uint_fast64_t ev_batch;         /* writer batch count at the last announcement */
    int64_t ev_heartbeat_ms;               /* idle streams get a comment this often */
    int64_t ev_recheck_ms;                 /* stream credentials are checked this often */
    pthread_t hashers[2];      /* password hashing: at most two at a time, off HTTP threads */
    int nhashers;              /* hashers started */
    pthread_mutex_t hlock;     /* guards the hashing queue */
    pthread_cond_t hcond;      /* signals queued hashing work or stop */
    struct req *hhead, *htail; /* queued logins */
    bool hstop;                /* hashers should end */
    char dummy_hash[128];      /* hash checked for unknown users, so timing tells nothing */
    bool tls;                  /* serving HTTPS: cookies are Secure and __Host- */
    char *tls_cert, *tls_key;  /* PEM texts (owned) */
    pthread_mutex_t tlock;     /* guards throttle */
    struct throttle {
        char key[80];      /* "u:<user>" or "a:<client address>", "" free */
        unsigned failures; /* failed logins in a row */
        int64_t last_ms;   /* monotonic ms of the last failure */
        int64_t until_ms;  /* no login attempt before this monotonic ms */
    } throttle[1024];      /* failed-login throttle (brute force) */
};

struct req;
typedef int (*write_exec_fn)(struct req *r, struct trl_txn *t);

/* One HTTP request from first call to completion. */
struct req {
    struct trl_server *srv;      /* server */
    struct MHD_Connection *conn; /* its connection */
    struct conn_track *track;    /* watchdog registry entry (borrowed) */
    char method[8];              /* GET, POST, ... */
    char *url;                   /* path (owned) */
    int64_t t0_us;               /* start, for latency */
    struct trl_buf body;         /* request body */
    bool too_big;                /* body exceeded the limit */
    size_t discarded;            /* body bytes dropped after the limit */
    bool is_upload;              /* POST /api/v1/files: raw bytes */
    struct trl_principal who;    /* caller */
    const char *lang;            /* en / zh-CN */
    char request_id[48];         /* X-Request-Id */
    struct trl_diag d;           /* diagnostics */
    struct trl_arena arena;      /* request memory */
    struct trl_catalog *cat;     /* catalog snapshot (a reference) */
    struct trl_wf_set *wfs;      /* workflows of that snapshot (a reference) */
    struct trl_hooks_bind hb;    /* app hooks for the write job (bound while it runs) */
    const char *bearer;          /* the API token secret it came with (borrowed), or NULL */
    struct trl_stream *stream;   /* GET /api/v1/events: the stream to answer with (events.c) */
    /* Write jobs */
    struct trl_write_job job;  /* queued to the writer */
    write_exec_fn exec;        /* runs in the writer */
    bool suspended;            /* waiting for the writer */
    atomic_bool done;          /* writer finished */
    int job_rc;                /* job result */
    const struct trl_type *ty; /* target type (in cat) */
    char *type_name;           /* target type name (owned) */
    char transition[64];       /* workflow transition to run, "" none */
    uint64_t id;               /* target record id */
    uint64_t if_match;         /* If-Match version, 0 none */
    struct trl_input *in;      /* parsed body members (borrow the JSON tree) */
    size_t nin;                /* entries */
    void *json;                /* cJSON tree of the body (owned) */
    char *idem_key;            /* Idempotency-Key (owned) */
    void *aux;                 /* route-specific data in arena (file metadata) */
    bool hashing;          /* the suspended request waits for the hashing pool, not the writer */
    struct req *hnext;     /* hashing queue link */
    char set_cookie[200];  /* Set-Cookie, "" none */
    char session[80];      /* the session secret that authenticated the request, "" none */
    char client[64];       /* client address text */
    struct trl_access acc; /* the caller's rights on ty (record routes) */
    /* Response */
    int status;           /* HTTP status */
    struct trl_buf out;   /* response body */
    const char *ctype;    /* content type */
    char etag[32];        /* ETag value, "" none */
    char location[256];   /* Location, "" none */
    char allow[64];       /* Allow for 405, "" none */
    char retry_after[16]; /* Retry-After, "" none */
    char www_auth[96];    /* WWW-Authenticate for 401, "" none */
    char token_name[64];  /* name of the API token that authenticated the request */
    bool responded;       /* a response was queued */
};

/* routes.c */
/* Routes a complete request: either fills the response (status/out) or queues a write job and
 * suspends (r->suspended). */
void trl_http_route(struct req *r);
/* Runs the write job of r in the writer thread. */
int trl_http_job_fn(struct trl_txn *t, void *arg);
/* Loads a fresh catalog and publishes it. */
int trl_http_reload_catalog(struct trl_server *s, struct trl_diag *d);
/* The catalog and its workflows, taken together (references owned by the caller). */
void trl_http_snapshot(struct trl_server *s, struct trl_catalog **cat, struct trl_wf_set **wfs);

/* routes.c, run by a hashing thread for a queued login: verifies the password, then either
 * queues the session's write job or answers. */
void trl_http_login_hash(struct req *r);

/* Audits a 403 answer (routes.c); respond() calls it once per refused request. */
void trl_http_audit_refusal(struct req *r);

/* routes.c helpers shared with approvals.c */
void trl_http_ok(struct req *r, int status);
void trl_http_fail_d(struct req *r, int rc);
bool trl_http_check_args(struct req *r, const char *const *allowed);
const char *trl_http_arg(struct req *r, const char *name);
int trl_http_read_begin(struct req *r, struct trl_txn **t);
void trl_http_queue_write(struct req *r, write_exec_fn exec, bool barrier);
void trl_http_rec_ctx(struct req *r, struct trl_rec_ctx *cx);
bool trl_http_parse_id(const char *s, size_t n, uint64_t *id);
bool trl_http_admin_only(struct req *r);
/* True when the body is valid JSON (trl_json_check to max_depth); else answers 400 and false. */
bool trl_http_body_json(struct req *r, int max_depth);
/* True when the request's method is method, else answers 405 with Allow and false. */
bool trl_http_method(struct req *r, const char *method);
/* Runs fn when the request's method is method, else answers 405 with Allow. */
void trl_http_one_method(struct req *r, const char *method, void (*fn)(struct req *));

/* approvals.c */
/* /api/v1/approvals[/...]: rest is what follows "/api/v1/approvals/" ("" for the list). */
void trl_http_approvals_route(struct req *r, const char *rest);
/* GET /api/v1/records/{type}/{id}/approvals (r->ty, r->id set). */
void trl_http_record_approvals(struct req *r);
/* POST /api/v1/records/{type}/{id}/recall (r->ty, r->id set). */
void trl_http_record_recall(struct req *r);
/* /api/v1/groups[/{name}] (administrators). */
void trl_http_groups_route(struct req *r, const char *name);

/* inbox.c */
/* /api/v1/inbox[/...]: the caller's in-app notifications; rest follows "/api/v1/inbox/". */
void trl_http_inbox_route(struct req *r, const char *rest);

/* engine.c */
/* GET /api/v1/records/{type}/{id}/sla (r->ty, r->id set). */
void trl_http_record_sla(struct req *r);
/* /api/v1/meta/calendars[/{name}] (administrators). */
void trl_http_meta_calendars(struct req *r, const char *name);
/* /api/v1/test/clock (administrators, only with the test clock). */
void trl_http_test_clock(struct req *r);

/* hooks.c */
/* /api/v1/meta/hooks[/{app}/{module}] (administrators); rest follows "/api/v1/meta/hooks/". */
void trl_http_meta_hooks(struct req *r, const char *rest);
/* /api/v1/apps/{app}/x/{name}: a custom endpoint written in Lua; rest follows "/api/v1/apps/". */
void trl_http_app_endpoint(struct req *r, const char *rest);

/* reports.c */
/* /api/v1/reports[/{name}|/run]; rest follows "/api/v1/reports/" ("" for the list). */
void trl_http_reports_route(struct req *r, const char *rest);
/* GET /api/v1/dashboards/{name}. */
void trl_http_dashboards_route(struct req *r, const char *name);
/* /api/v1/meta/reports[/{name}] (report) and /api/v1/meta/dashboards[/{name}]. */
void trl_http_meta_reports(struct req *r, const char *name, bool report);

/* server.c */
/* Wakes the timer scheduler (after the test clock moved). */
void trl_http_wake_timers(struct trl_server *s);
/* Marks a suspended request answered and resumes its connection (any thread). */
void trl_http_resume(struct req *r);
/* Submits r's write job to the store (r stays suspended until it is done). */
void trl_http_submit_write(struct req *r);
void trl_http_job_done(void *arg, int rc);

/* events.c — GET /api/v1/events */
struct trl_stream;
/* The route (authenticated GET): checks the parameters and the stream limit, then leaves the
 * stream in r->stream (r->status 200) or answers a problem. */
void trl_http_events(struct req *r);
/* The streaming response for r->stream (taken: the response owns it from here), or NULL when
 * it cannot be made (the stream is freed). */
struct MHD_Response *trl_http_events_response(struct req *r);
/* Announces a committed batch: wakes every parked stream (the writer, any done callback). */
void trl_http_events_wake(struct trl_server *s);
/* Wakes the parked streams whose heartbeat or credential check is due (the watchdog). */
void trl_http_events_tick(struct trl_server *s);
/* With s->stopping set: wakes every stream so that each ends, and waits (bounded) for them. */
void trl_http_events_stop(struct trl_server *s);

/* routes.c: the caller behind a credential as of now (a Bearer token secret, else a session
 * cookie's secret), filled into who. 0, or the refusal (TRL_EAUTH, TRL_ENOTFOUND...) or a read
 * error. */
int trl_http_principal(struct trl_server *s, bool bearer, const char *secret,
                       struct trl_principal *who);

/* problem.c */
/* Fills r's response with the problem+json of r->d (status from its code). */
void trl_http_problem(struct req *r);
/* Sets r->d and fills the problem response in one step. */
void trl_http_fail(struct req *r, int code, const char *field, const char *en, const char *zh);
/* Parses r->body as a JSON object into r->in (strict check first). 0 or a TRL_E* with r->d. */
int trl_http_parse_object(struct req *r);

#endif
