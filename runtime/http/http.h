/*
 * http — the JSON REST API over libmicrohttpd (DESIGN.md §3, §5).
 *
 * One server per data directory. Reads run on libmicrohttpd's threads in a read txn; writes are
 * queued to the store's writer thread with the connection suspended, and answered only after their
 * batch commit returned. Every refusal is an RFC 9457 problem+json body whose title and detail
 * follow Accept-Language (en, zh-CN) and whose `code` and `errors[].code` are stable tokens.
 *
 * Hardening: epoll, a total connection limit, a per-client-address limit, an inactivity timeout,
 * and a total deadline per request counted from its connection's first byte (a watchdog shuts
 * down connections past it, so a slow-drip client cannot hold one forever); bodies over the limit
 * get 413 without being read further.
 */
#ifndef TRL_HTTP_H
#define TRL_HTTP_H

#include "app/app.h"
#include "record/record.h"

struct trl_server_opts {
    const char *data_dir;          /* data directory (store, files) */
    const char *listen;            /* "127.0.0.1:8080" */
    size_t body_limit;             /* bytes (0: 1 MiB) */
    size_t file_limit;             /* upload bytes for POST /api/v1/files (0: 16 MiB) */
    unsigned conn_limit;           /* total connections (0: 1024) */
    unsigned per_ip_limit;         /* connections per client address (0: 256) */
    unsigned idle_timeout_s;       /* inactivity timeout (0: 30) */
    unsigned deadline_s;           /* total per-request deadline (0: 60) */
    unsigned threads;              /* HTTP threads (0: one per core) */
    unsigned max_streams;          /* open GET /api/v1/events streams (0: 256); more get 503 */
    size_t map_initial;            /* store map initial bytes (0: default) */
    size_t map_max;                /* store map cap bytes (0: default) */
    int64_t max_scan;              /* most records one listing may examine (0: 200000) */
    int64_t report_max_scan;       /* most records one report run may examine (0: 5000000) */
    int64_t export_max_rows;       /* most rows of one CSV export of a listing (0: 100000) */
    const struct trl_clock *clock; /* injectable clock (NULL: system) */
    const char *tls_cert;          /* PEM certificate file: serve HTTPS (NULL: plain HTTP) */
    const char *tls_key;           /* PEM private key file (with tls_cert) */
    bool test_clock; /* a clock tests may move (POST /api/v1/test/clock): never in production */
};

struct trl_server;

/* Opens the store, loads the catalog and starts listening. Prints what it loaded to stderr.
 * Returns 0 and an owned server (trl_server_stop), or a TRL_E* with d saying why. */
int trl_server_start(const struct trl_server_opts *o, struct trl_server **out, struct trl_diag *d);
/* Stops accepting, finishes queued writes, closes the store. Accepts NULL. */
void trl_server_stop(struct trl_server *s);
/* The port actually bound (useful with port 0). */
unsigned trl_server_port(const struct trl_server *s);

#endif
