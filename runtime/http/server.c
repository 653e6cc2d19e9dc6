/* server.c — libmicrohttpd plumbing: request lifecycle, suspend/resume around the writer,
 * limits, the deadline watchdog, start and stop. */
#include "http_int.h"

#include <stddef.h>

#include "auth/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------------------------------
 * Connection registry and the deadline watchdog
 */
/* A hand-over a worker has not reported started after this long was dropped by it. */
#define PEND_STALE_MS 10000

/* Removes pending entry i (conn_lock held). */
static void pend_remove(struct trl_server *s, size_t i)
{
    s->pend[i] = s->pend[--s->npend];
}

/* Removes the hand-over of socket fd, if any (conn_lock held). */
static void pend_drop_fd(struct trl_server *s, int fd)
{
    for (size_t i = 0; i < s->npend; i++)
        if (s->pend[i].fd == fd) {
            pend_remove(s, i);
            return;
        }
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_worker *w = cls;
    struct trl_server *s = w->srv;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_track *t = calloc(1, sizeof(*t));
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&s->conn_lock);
        pend_drop_fd(s, fd); /* the acceptor's reservation becomes the connection's own */
        if (!t) {
            pthread_mutex_unlock(&s->conn_lock);
            return; /* untracked: no deadline, not counted (out of memory only) */
        }
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ai && ai->client_addr && ai->client_addr->sa_family == AF_INET)
            t->ip = ((const struct sockaddr_in *)(const void *)ai->client_addr)->sin_addr.s_addr;
        t->fd = fd;
        t->worker = (unsigned)(w - s->workers);
        t->started_ms = trl_mono_ms();
        /* A new connection's first byte comes at once: its first request has the deadline. */
        t->limit_ms = (int64_t)s->o.deadline_s * 1000;
        t->busy = true;
        t->next = s->conns;
        if (s->conns) s->conns->prev = t;
        s->conns = t;
        s->nconns++;
        w->nconns++;
        pthread_mutex_unlock(&s->conn_lock);
        *socket_ctx = t;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_track *t = *socket_ctx;
        if (!t) return;
        pthread_mutex_lock(&s->conn_lock);
        if (t->prev)
            t->prev->next = t->next;
        else
            s->conns = t->next;
        if (t->next) t->next->prev = t->prev;
        s->nconns--;
        s->workers[t->worker].nconns--;
        if (s->accept_parked && s->wake_fd[1] >= 0) {
            /* The acceptor waits for a free slot: wake it (a full pipe already wakes it). */
            s->accept_parked = false;
            ssize_t n = write(s->wake_fd[1], "c", 1);
            (void)n;
        }
        pthread_mutex_unlock(&s->conn_lock);
        free(t);
        *socket_ctx = NULL;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The acceptor: one thread accepts, applies the connection limits over all workers, and hands
 * each connection to the least loaded worker.
 */

/* Reserves a slot for a new connection from ip and picks its worker; false if a limit is
 * reached. conn_lock held. */
static bool admit(struct trl_server *s, int fd, uint32_t ip, unsigned *worker)
{
    int64_t now = trl_mono_ms();
    unsigned load[TRL_HTTP_MAX_WORKERS];
    for (unsigned i = 0; i < s->nworkers; i++)
        load[i] = s->workers[i].nconns;
    size_t same_ip = 0;
    for (size_t i = 0; i < s->npend;) {
        /* A worker that could not set a connection up closes it without a word; its socket
         * number coming back, or a hand-over older than a few seconds, shows that. */
        if (s->pend[i].fd == fd || now - s->pend[i].since_ms > PEND_STALE_MS) {
            pend_remove(s, i);
            continue;
        }
        load[s->pend[i].worker]++;
        if (s->pend[i].ip == ip) same_ip++;
        i++;
    }
    for (const struct conn_track *t = s->conns; t && same_ip < s->o.per_ip_limit; t = t->next)
        if (t->ip == ip) same_ip++;
    if (same_ip >= s->o.per_ip_limit) return false;
    if (s->npend == s->pend_cap) {
        size_t cap = s->pend_cap ? s->pend_cap * 2 : 16;
        struct pending_conn *p = realloc(s->pend, cap * sizeof(*p));
        if (!p) return false;
        s->pend = p;
        s->pend_cap = cap;
    }
    unsigned best = 0;
    for (unsigned i = 1; i < s->nworkers; i++)
        if (load[i] < load[best]) best = i;
    s->pend[s->npend++] = (struct pending_conn){fd, ip, best, now};
    *worker = best;
    return true;
}

/* True when the open and handed-over connections reach the limit; then the acceptor parks until
 * one closes (new connections wait in the listen backlog, as libmicrohttpd's own limit does).
 * conn_lock held. */
static bool at_limit(struct trl_server *s)
{
    int64_t now = trl_mono_ms();
    for (size_t i = 0; i < s->npend;)
        if (now - s->pend[i].since_ms > PEND_STALE_MS)
            pend_remove(s, i);
        else
            i++;
    s->accept_parked = s->nconns + s->npend >= s->o.conn_limit;
    return s->accept_parked;
}

static void *acceptor_main(void *arg)
{
    struct trl_server *s = arg;
    int64_t last_complaint = 0;
    for (;;) {
        pthread_mutex_lock(&s->conn_lock);
        bool full = at_limit(s);
        pthread_mutex_unlock(&s->conn_lock);
        /* While full, only the wake pipe is watched (a close or the stop writes to it); the
         * timeout lets stale hand-overs expire. */
        struct pollfd p[2] = {{s->wake_fd[0], POLLIN, 0}, {s->listen_fd, POLLIN, 0}};
        if (poll(p, full ? 1 : 2, full ? 1000 : -1) < 0) {
            if (errno == EINTR) continue;
            trl_log(TRL_LOG_ERROR, "http: poll on the listening socket failed: %s",
                    strerror(errno));
            break;
        }
        if (p[0].revents) {
            char drain[64];
            while (read(s->wake_fd[0], drain, sizeof(drain)) > 0) {
            }
            if (atomic_load(&s->stopping)) break;
        }
        if (full || !(p[1].revents & POLLIN)) continue;
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: say so now and then, and let connections close. */
                int64_t now = trl_mono_ms();
                if (now - last_complaint > 10000) {
                    trl_log(TRL_LOG_WARN, "http: cannot accept a connection: %s", strerror(errno));
                    last_complaint = now;
                }
                poll(NULL, 0, 10);
            }
            continue; /* EAGAIN, EINTR, ECONNABORTED, ... */
        }
        uint32_t ip = sl >= sizeof(sa) && sa.sin_family == AF_INET ? sa.sin_addr.s_addr : 0;
        unsigned wi = 0;
        pthread_mutex_lock(&s->conn_lock);
        bool ok = admit(s, fd, ip, &wi);
        pthread_mutex_unlock(&s->conn_lock);
        if (!ok) {
            atomic_fetch_add(&s->n_conn_refused, 1);
            close(fd);
            continue;
        }
        if (MHD_add_connection(s->workers[wi].mhd, fd, (struct sockaddr *)&sa, sl) != MHD_YES) {
            /* libmicrohttpd closed the socket: give the slot back. */
            pthread_mutex_lock(&s->conn_lock);
            pend_drop_fd(s, fd);
            pthread_mutex_unlock(&s->conn_lock);
        }
    }
    return NULL;
}

static int listen_on(struct trl_server *s, const struct sockaddr_in *sa, struct trl_diag *d)
{
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->listen_fd < 0)
        return trl_diag_set(d, TRL_EIO, "cannot open a socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(s->listen_fd, (const struct sockaddr *)sa, sizeof(*sa)) ||
        listen(s->listen_fd, SOMAXCONN))
        return trl_diag_set(d, TRL_EIO, "cannot listen on %s (%s)", s->o.listen, strerror(errno));
    struct sockaddr_in bound;
    socklen_t bl = sizeof(bound);
    if (getsockname(s->listen_fd, (struct sockaddr *)&bound, &bl))
        return trl_diag_set(d, TRL_EIO, "cannot read the bound address: %s", strerror(errno));
    s->port = ntohs(bound.sin_port);
    if (pipe2(s->wake_fd, O_CLOEXEC | O_NONBLOCK)) {
        s->wake_fd[0] = s->wake_fd[1] = -1;
        return trl_diag_set(d, TRL_EIO, "cannot create a pipe: %s", strerror(errno));
    }
    return 0;
}

static int auth_upgrade_fn(struct trl_txn *t, void *arg)
{
    return trl_auth_upgrade(t, arg);
}

/* The watchdog's background jobs (purge, timers, index batches): at most one of each queued,
 * busy while it is; counted in pending_jobs so a stop waits for it. */
static void background_submit(struct trl_server *s, struct trl_write_job *job, atomic_bool *busy,
                              trl_write_fn fn, void (*done)(void *arg, int rc))
{
    if (atomic_exchange(busy, true)) return;
    job->fn = fn;
    job->done = done;
    job->arg = s;
    atomic_fetch_add(&s->pending_jobs, 1);
    if (trl_store_submit(s->store, job)) {
        atomic_store(busy, false);
        atomic_fetch_sub(&s->pending_jobs, 1);
    }
}

static void background_done(struct trl_server *s, atomic_bool *busy)
{
    atomic_store(busy, false);
    atomic_fetch_sub(&s->pending_jobs, 1);
}

static int purge_fn(struct trl_txn *t, void *arg)
{
    struct trl_server *s = arg;
    return trl_idem_purge(t, trl_clock_now(s->clock), 10000, &s->purged);
}

static void purge_done(void *arg, int rc)
{
    struct trl_server *s = arg;
    if (rc)
        trl_log(TRL_LOG_WARN, "purging expired idempotency keys failed: %s", trl_err_token(rc));
    else if (s->purged)
        trl_log(TRL_LOG_INFO, "purged %zu expired idempotency key(s)", s->purged);
    background_done(s, &s->purge_busy);
}

/* Deferred index entries (record.h): a full batch is written by the create that fills it; the
 * rest waits until the writer has had no job for a watchdog tick, so listings seldom read pending
 * records themselves. */
static int index_fn(struct trl_txn *t, void *arg)
{
    struct trl_server *s = arg;
    struct trl_catalog *cat;
    struct trl_wf_set *wfs;
    trl_http_snapshot(s, &cat, &wfs);
    uint64_t written = 0;
    int rc = trl_rec_index_flush(t, cat, &written);
    trl_catalog_unref(cat);
    trl_wf_set_unref(wfs);
    return rc;
}

static void index_done(void *arg, int rc)
{
    struct trl_server *s = arg;
    if (rc) trl_log(TRL_LOG_WARN, "writing waiting index entries failed: %s", trl_err_token(rc));
    background_done(s, &s->index_busy);
}

/* Looks once per quiet spell: when the writer ran no job since the last tick and some ran since
 * the last look (jobs counts the writer's jobs, the index job included). */
static void index_check(struct trl_server *s)
{
    uint64_t batches, jobs;
    trl_store_writer_stats(s->store, &batches, &jobs);
    bool idle = jobs == s->index_seen;
    s->index_seen = jobs;
    if (!idle || jobs == s->index_looked || atomic_load(&s->stopping) ||
        atomic_load(&s->index_busy))
        return;
    struct trl_txn *t;
    bool any = false;
    if (trl_store_read(s->store, &t)) return;
    int rc = trl_rec_index_pending(t, &any);
    trl_txn_end(t);
    if (rc) return;
    s->index_looked = jobs;
    if (any) background_submit(s, &s->index_job, &s->index_busy, index_fn, index_done);
}

/* Timers: the watchdog sees the first due key and hands firing to the writer. */
static int timers_fn(struct trl_txn *t, void *arg)
{
    struct trl_server *s = arg;
    struct trl_catalog *cat;
    struct trl_wf_set *wfs;
    trl_http_snapshot(s, &cat, &wfs);
    struct trl_principal sys = {.user = "system", .admin = true};
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_hooks_bind hb;
    trl_hooks_bind_init(&hb, s->hooks, cat, wfs);
    struct trl_rec_ctx cx = {.cat = cat,
                             .who = &sys,
                             .now_ms = trl_clock_now(s->clock),
                             .request_id = "timer",
                             .lang = "en",
                             .d = &d,
                             .ev = &hb.ev};
    s->timer_fired = 0;
    int rc = 0;
    if (wfs->version != atomic_load(&s->jobs_version)) {
        /* The app settings changed (or the server started): plan the scheduled jobs. */
        rc = trl_hooks_sync_jobs(&hb, t, cx.now_ms, &d);
        if (!rc) atomic_store(&s->jobs_version, wfs->version);
    }
    if (!rc) rc = trl_wf_fire_timers(t, &cx, wfs, 500, &s->timer_fired);
    trl_hooks_bind_done(&hb);
    if (rc && rc != TRL_EMAPFULL)
        trl_log(TRL_LOG_WARN, "firing timers failed: %s %s", trl_err_token(rc), d.message);
    trl_diag_reset(&d);
    trl_wf_set_unref(wfs);
    trl_catalog_unref(cat);
    return rc;
}

static void timers_done(void *arg, int rc)
{
    struct trl_server *s = arg;
    if (!rc) atomic_fetch_add(&s->n_timers_fired, s->timer_fired);
    if (!rc) trl_http_events_wake(s);          /* timers and scheduled hooks change records */
    if (rc) atomic_store(&s->jobs_version, 0); /* plan again with the next job */
    atomic_store(&s->timer_more, !rc && s->timer_fired >= 500);
    background_done(s, &s->timer_busy);
    if (atomic_load(&s->timer_more)) trl_http_wake_timers(s);
}

void trl_http_wake_timers(struct trl_server *s)
{
    pthread_mutex_lock(&s->wd_lock);
    pthread_cond_signal(&s->wd_cond);
    pthread_mutex_unlock(&s->wd_lock);
}

static void timers_check(struct trl_server *s)
{
    if (atomic_load(&s->stopping) || atomic_load(&s->timer_busy)) return;
    struct trl_txn *t = NULL;
    int64_t due = 0;
    if (trl_store_read(s->store, &t)) return;
    int rc = trl_timer_next(t, &due);
    trl_txn_end(t);
    struct trl_catalog *cat;
    struct trl_wf_set *wfs;
    trl_http_snapshot(s, &cat, &wfs);
    bool replan = wfs && wfs->version != atomic_load(&s->jobs_version);
    trl_wf_set_unref(wfs);
    trl_catalog_unref(cat);
    if (!replan && (rc || due > trl_clock_now(s->clock))) return;
    background_submit(s, &s->timer_job, &s->timer_busy, timers_fn, timers_done);
}

static int64_t test_now(const struct trl_clock *c)
{
    const struct trl_server *s =
        (const struct trl_server *)(const void *)((const char *)c -
                                                  offsetof(struct trl_server, testclock));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&s->test_offset);
}

/* Called when a request line has arrived: the request's own deadline starts here. */
static void *uri_logged(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct trl_server *s = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_track *t = ci ? ci->socket_context : NULL;
    if (t) {
        pthread_mutex_lock(&s->conn_lock);
        t->started_ms = trl_mono_ms();
        t->limit_ms = (int64_t)s->o.deadline_s * 1000;
        t->uri_len = strlen(uri);
        pthread_mutex_unlock(&s->conn_lock);
    }
    return NULL;
}

static void *watchdog_main(void *arg)
{
    struct trl_server *s = arg;
    int64_t last_reader_check = trl_mono_ms(), last_purge = 0;
    pthread_mutex_lock(&s->wd_lock);
    while (!s->wd_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->wd_cond, &s->wd_lock, &ts);
        if (s->wd_stop) break;
        pthread_mutex_unlock(&s->wd_lock);
        int64_t now = trl_mono_ms();
        pthread_mutex_lock(&s->conn_lock);
        for (struct conn_track *t = s->conns; t; t = t->next) {
            if (t->busy && !t->waiting_writer && !t->streaming && t->fd >= 0 &&
                now - t->started_ms > t->limit_ms) {
                /* Cut it: libmicrohttpd sees the error and closes the connection itself. */
                shutdown(t->fd, SHUT_RDWR);
                t->fd = -1;
                atomic_fetch_add(&s->n_deadline_kills, 1);
            }
        }
        pthread_mutex_unlock(&s->conn_lock);
        trl_http_events_tick(s); /* heartbeats and credential checks of parked event streams */
        timers_check(s);
        index_check(s);
        if (now - last_reader_check > 60000) {
            int n = trl_store_reader_check(s->store);
            if (n) trl_log(TRL_LOG_WARN, "cleared %d stale reader slot(s)", n);
            last_reader_check = now;
        }
        if (now - last_purge > 600000 && !atomic_load(&s->stopping) &&
            !atomic_load(&s->purge_busy)) {
            last_purge = now;
            background_submit(s, &s->purge_job, &s->purge_busy, purge_fn, purge_done);
        }
        pthread_mutex_lock(&s->wd_lock);
    }
    pthread_mutex_unlock(&s->wd_lock);
    return NULL;
}

static struct conn_track *track_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 */
static void req_free(struct req *r)
{
    if (!r) return;
    trl_buf_free(&r->body);
    trl_buf_free(&r->out);
    trl_diag_reset(&r->d);
    trl_arena_free(&r->arena);
    trl_hooks_bind_done(&r->hb);
    trl_catalog_unref(r->cat);
    trl_wf_set_unref(r->wfs);
    free(r->url);
    free(r->in);
    free(r->type_name);
    free(r->idem_key);
    trl_json_tree_free(r->json);
    free(r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)toe;
    struct req *r = *con_cls;
    struct conn_track *t = track_of(c);
    if (t) {
        struct trl_server *s = cls;
        pthread_mutex_lock(&s->conn_lock);
        /* Between requests: the next request line must arrive within idle + deadline. */
        t->busy = true;
        t->waiting_writer = false;
        t->streaming = false;
        t->started_ms = trl_mono_ms();
        t->limit_ms = (int64_t)(s->o.idle_timeout_s + s->o.deadline_s) * 1000;
        pthread_mutex_unlock(&s->conn_lock);
    }
    req_free(r);
    *con_cls = NULL;
}

static void observe(struct trl_server *s, int status, int64_t us)
{
    atomic_fetch_add(&s->n_requests, 1);
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) atomic_fetch_add(&s->n_status[cls], 1);
    atomic_fetch_add(&s->latency_us_sum, (uint64_t)us);
    static const int64_t bounds_us[11] = {500,   1000,   2500,   5000,   10000,  25000,
                                          50000, 100000, 250000, 500000, 1000000};
    int b = 0;
    while (b < 11 && us > bounds_us[b])
        b++;
    atomic_fetch_add(&s->lat_bucket[b], 1);
}

static enum MHD_Result respond(struct req *r)
{
    /* Every permission refusal is audited, wherever in the request it was decided. */
    if (r->status == 403) trl_http_audit_refusal(r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->out.len, r->out.data ? r->out.data : (void *)"",
        r->out.data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    trl_buf_init(&r->out); /* the response owns the bytes now */
    if (r->status != 204 && r->status != 304)
        MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->etag[0]) MHD_add_response_header(resp, "ETag", r->etag);
    if (r->location[0]) MHD_add_response_header(resp, "Location", r->location);
    if (r->allow[0]) MHD_add_response_header(resp, "Allow", r->allow);
    if (r->retry_after[0]) MHD_add_response_header(resp, "Retry-After", r->retry_after);
    if (r->www_auth[0]) MHD_add_response_header(resp, "WWW-Authenticate", r->www_auth);
    if (r->set_cookie[0]) MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
    if (r->status == 413 || r->status == 414 || r->status == 431)
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    observe(r->srv, r->status, now_us() - r->t0_us);
    return ret;
}

/* GET /api/v1/events: the streaming response (events.c) instead of a buffer. */
static enum MHD_Result respond_stream(struct req *r)
{
    struct MHD_Response *resp = trl_http_events_response(r);
    if (!resp) {
        trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        return respond(r);
    }
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->track) {
        /* Open for as long as the client listens: the request deadline does not apply. */
        pthread_mutex_lock(&r->srv->conn_lock);
        r->track->streaming = true;
        pthread_mutex_unlock(&r->srv->conn_lock);
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    observe(r->srv, 200, now_us() - r->t0_us);
    return ret;
}

#define MAX_URI     16384
#define MAX_HEADERS 32768

static enum MHD_Result header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static bool valid_request_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 40) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    struct trl_server *s = cls;
    struct req *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0_us = now_us();
        r->track = track_of(conn);
        trl_diag_init(&r->d);
        trl_arena_init(&r->arena);
        trl_buf_init(&r->body);
        trl_buf_init(&r->out);
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->url = strdup(url);
        r->lang =
            trl_lang_pick(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Language"));
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && valid_request_id(rid))
            snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
        else
            snprintf(r->request_id, sizeof(r->request_id), "%08llx-%06llx",
                     (unsigned long long)(s->boot_id & 0xFFFFFFFF),
                     (unsigned long long)atomic_fetch_add(&s->req_seq, 1));
        /* Anonymous until trl_http_route authenticates the request. */
        r->is_upload = strcmp(method, "POST") == 0 && strcmp(url, "/api/v1/files") == 0;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, r->client,
                      sizeof(r->client));
        else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr,
                      r->client, sizeof(r->client));
        *con_cls = r;
        if (!r->url) return MHD_NO;
        /* Our own limits sit below libmicrohttpd's memory pool, so that these refusals are
         * problem+json like every other one (the pool's own answer is bare HTML). */
        size_t hdr_bytes = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, header_bytes, &hdr_bytes);
        if ((r->track ? r->track->uri_len : strlen(url)) > MAX_URI) {
            trl_http_fail(r, TRL_EURITOOLONG, "", "the URI is longer than 16384 bytes",
                          "URI 超过 16384 字节");
            return respond(r);
        }
        if (hdr_bytes > MAX_HEADERS) {
            trl_http_fail(r, TRL_EHEADERS, "", "the request headers exceed 32768 bytes",
                          "请求头超过 32768 字节");
            return respond(r);
        }
        size_t limit = r->is_upload ? s->o.file_limit : s->o.body_limit;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || *end || v > limit) {
                /* Refuse before reading any of the body. */
                r->too_big = true;
                trl_http_fail(r, TRL_ETOOBIG, "", "the request body is larger than the limit",
                              "请求体超过大小限制");
                return respond(r);
            }
        }
        return MHD_YES;
    }
    if (r->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t limit = r->is_upload ? s->o.file_limit : s->o.body_limit;
        if (r->too_big || r->body.len + *upload_data_size > limit) {
            /* libmicrohttpd 0.9.75 cannot answer in the middle of a body (that only happens with
             * chunked bodies: a declared length is refused at once). Drop the excess without
             * keeping it and answer 413 when the body ends; a body that goes on past 4x the
             * limit has its connection closed instead, unread. */
            r->too_big = true;
            r->discarded += *upload_data_size;
            *upload_data_size = 0;
            return r->discarded > 3 * limit ? MHD_NO : MHD_YES;
        }
        if (trl_buf_add(&r->body, upload_data, *upload_data_size)) {
            *upload_data_size = 0;
            r->too_big = true; /* answered below with 413: the server could not hold it */
            return MHD_YES;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->too_big) {
        trl_http_fail(r, TRL_ETOOBIG, "", "the request body is larger than the limit",
                      "请求体超过大小限制");
        return respond(r);
    }
    if (r->suspended) {
        /* Resumed by the writer: the job's result is in r. */
        if (!atomic_load(&r->done)) return MHD_YES;
        r->suspended = false;
        if (r->track) {
            pthread_mutex_lock(&s->conn_lock);
            r->track->waiting_writer = false;
            pthread_mutex_unlock(&s->conn_lock);
        }
        return respond(r);
    }
    if (atomic_load(&s->stopping))
        trl_http_fail(r, TRL_EUNAVAIL, "", "the server is shutting down", "服务正在关闭");
    else
        trl_http_route(r);
    if (r->stream) return respond_stream(r);
    if (r->suspended) {
        if (r->track) {
            pthread_mutex_lock(&s->conn_lock);
            r->track->waiting_writer = true;
            pthread_mutex_unlock(&s->conn_lock);
        }
        MHD_suspend_connection(conn);
        atomic_fetch_add(&s->pending_jobs, 1);
        if (r->hashing) {
            pthread_mutex_lock(&s->hlock);
            r->hnext = NULL;
            if (s->htail)
                s->htail->hnext = r;
            else
                s->hhead = r;
            s->htail = r;
            pthread_cond_signal(&s->hcond);
            pthread_mutex_unlock(&s->hlock);
        } else {
            trl_http_submit_write(r);
        }
        return MHD_YES;
    }
    return respond(r);
}

void trl_http_submit_write(struct req *r)
{
    struct trl_server *s = r->srv;
    r->job.fn = trl_http_job_fn;
    r->job.done = trl_http_job_done;
    r->job.arg = r;
    if (trl_store_submit(s->store, &r->job)) {
        trl_http_fail(r, TRL_EUNAVAIL, "", "the server is shutting down", "服务正在关闭");
        trl_http_resume(r);
    }
}

void trl_http_resume(struct req *r)
{
    struct trl_server *s = r->srv;
    atomic_store(&r->done, true);
    MHD_resume_connection(r->conn);
    atomic_fetch_sub(&s->pending_jobs, 1); /* last: a stop may free everything after it */
}

/* The hashing pool: password checks cost about 50 ms of CPU and 19 MiB each, so at most two run
 * at once, and never on the HTTP threads (a login flood must not slow other routes). */
static void *hasher_main(void *arg)
{
    struct trl_server *s = arg;
    pthread_mutex_lock(&s->hlock);
    for (;;) {
        while (!s->hhead && !s->hstop)
            pthread_cond_wait(&s->hcond, &s->hlock);
        struct req *r = s->hhead;
        if (!r) break;
        s->hhead = r->hnext;
        if (!s->hhead) s->htail = NULL;
        pthread_mutex_unlock(&s->hlock);
        trl_http_login_hash(r); /* queues a write job, or answers and resumes */
        pthread_mutex_lock(&s->hlock);
    }
    pthread_mutex_unlock(&s->hlock);
    return NULL;
}

void trl_http_job_done(void *arg, int rc)
{
    struct req *r = arg;
    r->job_rc = rc;
    if (rc) {
        /* A failure of the batch itself (commit, full) overrides the job's own answer. */
        if (rc == TRL_EFULL || rc == TRL_EIO || rc == TRL_ENOMEM || rc == TRL_EUNAVAIL) {
            trl_buf_clear(&r->out);
            if (r->d.code != rc) {
                trl_diag_reset(&r->d);
                if (rc == TRL_EFULL)
                    trl_diag_set(&r->d, rc,
                                 "the store reached its configured size cap; nothing was written");
                else
                    trl_diag_set(&r->d, rc, "the write could not be committed");
                if (rc == TRL_EFULL) trl_diag_zh(&r->d, "存储已达到配置的容量上限;未写入任何数据");
            }
            trl_http_problem(r);
        } else if (!r->out.len) {
            trl_http_problem(r);
        }
    }
    struct trl_server *s = r->srv;
    if (rc == 0 && r->job.barrier) {
        /* A definition changed and is durable: publish the new catalog before the next batch. */
        struct trl_diag d;
        trl_diag_init(&d);
        if (trl_http_reload_catalog(s, &d))
            trl_log(TRL_LOG_ERROR, "cannot reload the catalog: %s", d.message);
        trl_diag_reset(&d);
        trl_http_wake_timers(s); /* scheduled jobs may have changed */
    }
    if (rc == 0) trl_http_events_wake(s); /* before the resume: a stop may follow it */
    trl_http_resume(r);
}

/* ---------------------------------------------------------------------------------------------
 * Start and stop
 */
static int parse_listen(const char *listen, struct sockaddr_in *sa, struct trl_diag *d)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host))
        return trl_diag_set(d, TRL_EINVAL, "--listen must be ADDR:PORT, e.g. 127.0.0.1:8080");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return trl_diag_set(d, TRL_EINVAL, "--listen: bad port '%s'", colon + 1);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return trl_diag_set(d, TRL_EINVAL, "--listen: '%s' is not an IPv4 address", host);
    return 0;
}

void trl_http_snapshot(struct trl_server *s, struct trl_catalog **cat, struct trl_wf_set **wfs)
{
    pthread_mutex_lock(&s->cat_lock);
    *cat = trl_catalog_ref(s->cat);
    *wfs = trl_wf_set_ref(s->wfs);
    pthread_mutex_unlock(&s->cat_lock);
}

int trl_http_reload_catalog(struct trl_server *s, struct trl_diag *d)
{
    struct trl_txn *t = NULL;
    struct trl_catalog *c = NULL;
    struct trl_wf_set *w = NULL;
    int rc = trl_store_read(s->store, &t);
    if (rc) return trl_diag_set(d, rc, "cannot read the store");
    rc = trl_catalog_load(t, &c, d);
    if (!rc) rc = trl_wf_set_load(t, c, &w, d);
    trl_txn_end(t);
    if (rc) {
        trl_catalog_unref(c);
        return rc;
    }
    pthread_mutex_lock(&s->cat_lock);
    struct trl_catalog *old = s->cat;
    struct trl_wf_set *oldw = s->wfs;
    s->cat = c;
    s->wfs = w;
    pthread_mutex_unlock(&s->cat_lock);
    trl_catalog_unref(old);
    trl_wf_set_unref(oldw);
    return 0;
}

static void print_loaded(struct trl_server *s)
{
    struct trl_txn *t = NULL;
    struct trl_buf apps;
    trl_buf_init(&apps);
    if (trl_store_read(s->store, &t) == 0) {
        trl_app_list(t, &apps);
        trl_txn_end(t);
    }
    fprintf(stderr, "trellis: data directory %s\n", s->o.data_dir);
    fprintf(stderr, "trellis: apps %s\n", apps.data ? apps.data : "[]");
    fprintf(stderr, "trellis: %zu type(s):", s->cat->ntypes);
    for (size_t i = 0; i < s->cat->ntypes; i++)
        fprintf(stderr, " %s%s", s->cat->types[i]->name, i + 1 < s->cat->ntypes ? "," : "");
    fprintf(stderr, "\n");
    trl_buf_free(&apps);
}

/* A duration in ms from the environment, at most (and by default) def, at least 50. */
static int64_t env_ms(const char *name, int64_t def)
{
    const char *v = getenv(name);
    int64_t ms;
    if (!v || trl_parse_i64(v, strlen(v), &ms) || ms > def) return def;
    return ms < 50 ? 50 : ms;
}

int trl_server_start(const struct trl_server_opts *o, struct trl_server **out, struct trl_diag *d)
{
    struct sockaddr_in sa;
    int rc;
    struct trl_server *s = calloc(1, sizeof(*s));
    if (!s) return trl_diag_set(d, TRL_ENOMEM, "out of memory");
    s->listen_fd = s->wake_fd[0] = s->wake_fd[1] = -1;
    s->index_looked = UINT64_MAX; /* look at the first quiet tick: a store may start with some */
    s->o = *o;
    if (!s->o.body_limit) s->o.body_limit = 1 << 20;
    if (!s->o.file_limit) s->o.file_limit = 16 << 20;
    if (!s->o.conn_limit) s->o.conn_limit = 1024;
    if (!s->o.per_ip_limit) s->o.per_ip_limit = 256;
    if (!s->o.idle_timeout_s) s->o.idle_timeout_s = 30;
    if (!s->o.deadline_s) s->o.deadline_s = 60;
    if (!s->o.max_streams) s->o.max_streams = 256;
    if (s->o.max_streams > 1000000) s->o.max_streams = 1000000;
    /* Tests shorten the event streams' heartbeat and credential check (never lengthen it). */
    s->ev_heartbeat_ms = env_ms("TRELLIS_EVENTS_HEARTBEAT_MS", 15000);
    s->ev_recheck_ms = env_ms("TRELLIS_EVENTS_RECHECK_MS", 60000);
    if (!s->o.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->o.threads = n > 0 ? (unsigned)n : 2;
    }
    if (!s->o.listen) s->o.listen = "127.0.0.1:8080";
    trl_clock_system(&s->sysclock);
    s->clock = o->clock ? o->clock : &s->sysclock;
    if (o->test_clock && !o->clock) {
        s->testclock.now_ms = test_now;
        s->clock = &s->testclock;
        trl_log(TRL_LOG_WARN, "the test clock is on: POST /api/v1/test/clock moves time");
    }
    s->boot_id = (uint64_t)trl_clock_now(s->clock) ^ ((uint64_t)getpid() << 32);
    pthread_mutex_init(&s->cat_lock, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_mutex_init(&s->wd_lock, NULL);
    pthread_cond_init(&s->wd_cond, NULL);
    pthread_mutex_init(&s->hlock, NULL);
    pthread_mutex_init(&s->tlock, NULL);
    pthread_mutex_init(&s->ev_lock, NULL);
    pthread_cond_init(&s->hcond, NULL);
    if ((rc = parse_listen(s->o.listen, &sa, d))) goto fail;
    size_t dl = strlen(o->data_dir);
    s->files_dir = malloc(dl + 8);
    if (!s->files_dir) {
        rc = trl_diag_set(d, TRL_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(s->files_dir, dl + 8, "%s/files", o->data_dir);
    struct trl_store_opts so = {
        .dir = o->data_dir, .map_initial = o->map_initial, .map_max = o->map_max};
    if ((rc = trl_store_open(&so, &s->store, d))) goto fail;
    mkdir(s->files_dir, 0700);
    bool upgraded = false;
    if ((rc = trl_store_write(s->store, auth_upgrade_fn, &upgraded))) {
        trl_diag_set(d, rc, "bringing the store's auth data up to date failed");
        goto fail;
    }
    if (upgraded) trl_log(TRL_LOG_INFO, "auth: indexes by group member and by role built");
    if ((rc = trl_http_reload_catalog(s, d))) goto fail;
    struct trl_hooks_engine_opts ho = {.clock = s->clock};
    if ((rc = trl_hooks_engine_new(&ho, &s->hooks, d))) goto fail;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (o->tls_cert || o->tls_key) {
        if (!o->tls_cert || !o->tls_key) {
            rc = trl_diag_set(d, TRL_EINVAL, "--tls-cert and --tls-key go together");
            goto fail;
        }
        size_t cn, kn;
        if (trl_read_file(o->tls_cert, 1 << 20, &s->tls_cert, &cn) ||
            trl_read_file(o->tls_key, 1 << 20, &s->tls_key, &kn) || !cn || !kn) {
            rc = trl_diag_set(d, TRL_EIO, "cannot read the TLS certificate or key (%s, %s)",
                              o->tls_cert, o->tls_key);
            goto fail;
        }
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            rc = trl_diag_set(d, TRL_EUNAVAIL, "this libmicrohttpd has no TLS support");
            goto fail;
        }
        flags |= MHD_USE_TLS;
        s->tls = true;
    }
    if (s->o.threads > TRL_HTTP_MAX_WORKERS) s->o.threads = TRL_HTTP_MAX_WORKERS;
    if ((rc = listen_on(s, &sa, d))) goto fail;
    /* Each worker takes every connection the acceptor admits (the limits are applied there, over
     * all workers). An option array, so that the TLS options are passed only when serving TLS
     * (libmicrohttpd logs a warning for each HTTPS option given to a plain daemon). Two-pointer
     * options carry their function in value (MHD_OPTION_ARRAY's rule). */
    flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    for (unsigned i = 0; i < s->o.threads; i++) {
        struct http_worker *w = &s->workers[i];
        w->srv = s;
        struct MHD_OptionItem opts[] = {
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->o.conn_limit, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->o.idle_timeout_s, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)(64 * 1024), NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, s},
            {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)uri_logged, s},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, w},
            {s->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, s->tls_key},
            {s->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
            {MHD_OPTION_END, 0, NULL},
        };
        w->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_ARRAY, opts,
                                  MHD_OPTION_END);
        if (!w->mhd) {
            rc = trl_diag_set(d, TRL_EIO, "cannot start HTTP worker %u of %u", i + 1, s->o.threads);
            goto fail;
        }
        s->nworkers++;
    }
    if (pthread_create(&s->acceptor, NULL, acceptor_main, s)) {
        rc = trl_diag_set(d, TRL_EUNAVAIL, "cannot start the accepting thread");
        goto fail;
    }
    s->acceptor_started = true;
    pthread_setname_np(s->acceptor, "trl-accept");
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0) {
        s->wd_started = true;
        pthread_setname_np(s->watchdog, "trl-watchdog");
    }
    {
        struct trl_diag hd;
        trl_diag_init(&hd);
        if (trl_auth_password_hash("timing-equaliser-for-unknown-users", s->dummy_hash, &hd)) {
            rc = trl_diag_set(d, TRL_ENOMEM, "cannot hash a password: %s", hd.message);
            trl_diag_reset(&hd);
            goto fail;
        }
        trl_diag_reset(&hd);
    }
    for (int i = 0; i < 2; i++)
        if (pthread_create(&s->hashers[s->nhashers], NULL, hasher_main, s) == 0)
            pthread_setname_np(s->hashers[s->nhashers++], "trl-hash");
    if (!s->nhashers) {
        rc = trl_diag_set(d, TRL_EUNAVAIL, "cannot start the password hashing threads");
        goto fail;
    }
    print_loaded(s);
    *out = s;
    return 0;
fail:
    trl_server_stop(s);
    return rc;
}

unsigned trl_server_port(const struct trl_server *s)
{
    return s->port;
}

void trl_server_stop(struct trl_server *s)
{
    if (!s) return;
    if (s->wd_started) {
        pthread_mutex_lock(&s->wd_lock);
        s->wd_stop = true;
        pthread_cond_signal(&s->wd_cond);
        pthread_mutex_unlock(&s->wd_lock);
        pthread_join(s->watchdog, NULL);
    }
    /* Refuse new work: stop accepting, and new requests on open connections get 503. */
    atomic_store(&s->stopping, true);
    if (s->acceptor_started) {
        ssize_t n;
        do
            n = write(s->wake_fd[1], "x", 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) trl_log(TRL_LOG_ERROR, "http: cannot wake the acceptor: %s", strerror(errno));
        pthread_join(s->acceptor, NULL);
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    /* Under conn_lock: a connection closing now must not write to the closed (and perhaps
     * reused) descriptor of the pipe. */
    pthread_mutex_lock(&s->conn_lock);
    s->accept_parked = false;
    for (int i = 0; i < 2; i++) {
        if (s->wake_fd[i] >= 0) close(s->wake_fd[i]);
        s->wake_fd[i] = -1;
    }
    pthread_mutex_unlock(&s->conn_lock);
    if (s->nworkers) {
        /* Let queued writes finish and resume their connections, then stop. */
        for (int i = 0; i < 3000 && atomic_load(&s->pending_jobs) > 0; i++)
            usleep(10000);
        /* Event streams end their responses (a suspended connection must not meet the stop). */
        trl_http_events_stop(s);
        for (unsigned i = 0; i < s->nworkers; i++)
            MHD_stop_daemon(s->workers[i].mhd);
    }
    free(s->pend);
    pthread_mutex_lock(&s->hlock);
    s->hstop = true;
    pthread_cond_broadcast(&s->hcond);
    pthread_mutex_unlock(&s->hlock);
    for (int i = 0; i < s->nhashers; i++)
        pthread_join(s->hashers[i], NULL);
    trl_hooks_engine_free(s->hooks);
    trl_store_close(s->store);
    trl_catalog_unref(s->cat);
    trl_wf_set_unref(s->wfs);
    pthread_mutex_destroy(&s->cat_lock);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_mutex_destroy(&s->wd_lock);
    pthread_cond_destroy(&s->wd_cond);
    pthread_mutex_destroy(&s->hlock);
    pthread_mutex_destroy(&s->tlock);
    pthread_mutex_destroy(&s->ev_lock);
    pthread_cond_destroy(&s->hcond);
    free(s->files_dir);
    if (s->tls_key) memset(s->tls_key, 0, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    free(s);
}
