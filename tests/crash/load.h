/*
 * load — the write load and the keep-alive client shared by the crash tests.
 *
 * A load runs N threads, each with its own keep-alive libcurl handle, creating marketing_request
 * records with a unique title per request in a bounded loop. Every create answered 201 is recorded
 * (id and title); a request whose answer never came (transport failure: the server died) is
 * recorded as in flight, and that thread stops. Every loop is bounded (requests per thread and a
 * per-request timeout).
 */
#ifndef TRL_CRASH_LOAD_H
#define TRL_CRASH_LOAD_H

#include "harness.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define LOAD_MAX_THREADS 16
#define LOAD_TITLE_MAX   96

struct ack {
    long long id;
    char title[LOAD_TITLE_MAX];
};

struct load {
    /* Set before load_start. */
    const struct srv *s;
    int nthreads;
    int max_per_thread; /* bound of each thread's loop */
    char tag[48];       /* title prefix, unique per run */
    size_t desc_len;    /* description of this many characters (0: none) */
    bool stop_on_507;   /* the first 507 stops every thread */

    /* Results (under m while running). */
    pthread_mutex_t m;
    struct ack *acks;
    size_t nacks, cap;
    char inflight[LOAD_MAX_THREADS][LOAD_TITLE_MAX]; /* "" when none */
    long n201, n507, nother, nfail;
    long other_status;    /* first status that was neither 201 nor 507 */
    char other_body[512]; /* and its body */
    char body507[1024];   /* body of the first 507 */

    atomic_int stop;
    pthread_t th[LOAD_MAX_THREADS];
    int idx[LOAD_MAX_THREADS];
    bool started;
};

/* Starts the threads; 0 or -1. */
int load_start(struct load *l);
/* Asks the threads to stop, joins them (each ends after its current request). */
void load_stop(struct load *l);
/* Frees the results. */
void load_free(struct load *l);
/* Number of acknowledged creates so far (locked). */
size_t load_acked(struct load *l);
/* Number of in-flight requests (after load_stop). */
int load_inflight(const struct load *l);

/* A keep-alive client for checks after the load. */
struct client {
    CURL *c;
    unsigned port;
    char auth[128]; /* the harness's Authorization header */
};
int client_init(struct client *cl, const struct srv *s);
void client_free(struct client *cl);
/* One request with Content-Type: application/json when body is given; 0 or -1 (transport). */
int client_req(struct client *cl, const char *method, const char *path, const char *body,
               struct resp *out);

/* Every record of marketing_request (id, title), paged with the cursor; the count or -1. */
long list_all(struct client *cl, struct ack **out);

/* A gauge of /metrics, e.g. "trellis_store_map_bytes{kind=\"size\"}"; -1 when absent. */
long long metric(struct client *cl, const char *name);

/* Kills (SIGKILL) every guarded server still running when the process exits, so a failed
 * assertion (which exits the forked test) leaves no server behind; its data dir is kept and
 * named on stderr for a post-mortem. The srv must outlive the process (static). */
void guard_srv(struct srv *s);

void sleep_ms(int ms);
long long now_ms(void);

#endif
