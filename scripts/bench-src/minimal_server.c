/* minimal_server: the "raw building blocks" reference for the Trellis benchmark.
 *
 * libmicrohttpd (2 daemons, each with its own epoll thread, suspend/resume) + LMDB with default
 * durable settings (no MDB_NOSYNC, no MDB_NOMETASYNC). One thread accepts and hands each
 * connection to the daemon with the fewest, as trellis serve does (a libmicrohttpd thread pool
 * lets one thread accept a burst of up to ten connections, so all 8 benchmark clients can land
 * on one thread in some runs and the figures swing by a third between runs). POST
 * /api/v1/records/marketing_request stores the body bytes under a new id and answers 201 {"id":N}
 * once the record is durable.
 *
 * Write path as in DESIGN.md section 3: the handler queues a job and suspends the connection;
 * one writer thread takes every queued job, puts each (optionally in its own nested txn with
 * --nested), commits the batch once (group commit: one fsync for the batch), then resumes the
 * connections. The 201 is queued on the call after resume, never on the first call for a request
 * (libmicrohttpd 0.9.75 would answer Connection: close and lose keep-alive).
 *
 * GET /healthz -> 200. GET /stats -> {"records":N,"commits":C,"jobs":J} (C and J since start).
 * usage: minimal_server --port P --data DIR [--nested] [--threads 2]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <lmdb.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CREATE_PATH "/api/v1/records/marketing_request"
#define MAX_BODY    (1024 * 1024)

enum req_state { R_READING, R_QUEUED, R_DONE, R_TOO_LARGE };

struct req {
    enum req_state state;
    int is_create;
    char *body;
    size_t len, cap;
    uint64_t id;
    int status;
    struct MHD_Connection *conn;
    struct req *next;
};

static MDB_env *g_env;
static MDB_dbi g_dbi;
static int g_nested;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct req *g_head, *g_tail;
static int g_stop;
static uint64_t g_next_id;                    /* writer thread only */
static uint64_t g_commits, g_jobs, g_records; /* under g_mu */

#define MAX_DAEMONS 64
static struct MHD_Daemon *g_daemons[MAX_DAEMONS];
static unsigned g_ndaemons;
static unsigned g_open[MAX_DAEMONS]; /* open connections per daemon, under g_mu */
static int g_listen = -1;

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                              enum MHD_ConnectionNotificationCode code)
{
    unsigned *open = cls;
    (void)c;
    (void)socket_ctx;
    pthread_mutex_lock(&g_mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        (*open)++;
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        (*open)--;
    pthread_mutex_unlock(&g_mu);
}

/* Accepts until the listening socket is shut down; each connection goes to the daemon with the
 * fewest open (a connection handed over but not yet started is not counted: connections arrive
 * one at a time, so this only matters in a burst). */
static void *acceptor_main(void *arg)
{
    (void)arg;
    unsigned next = 0;
    for (;;) {
        struct sockaddr_in ca;
        socklen_t cl = sizeof ca;
        int fd = accept4(g_listen, (struct sockaddr *)&ca, &cl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
            break; /* shut down */
        }
        pthread_mutex_lock(&g_mu);
        unsigned best = next++ % g_ndaemons;
        for (unsigned i = 0; i < g_ndaemons; i++)
            if (g_open[i] < g_open[best]) best = i;
        pthread_mutex_unlock(&g_mu);
        (void)MHD_add_connection(g_daemons[best], fd, (struct sockaddr *)&ca, cl);
    }
    return NULL;
}

static void put_be64(unsigned char *k, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        k[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *k)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | k[i];
    return v;
}

static int put_job(MDB_txn *txn, struct req *r)
{
    unsigned char kb[8];
    uint64_t id = g_next_id + 1;
    put_be64(kb, id);
    MDB_val k = {8, kb}, v = {r->len, r->body};
    int rc = mdb_put(txn, g_dbi, &k, &v, MDB_APPEND);
    if (rc == 0) {
        g_next_id = id;
        r->id = id;
    }
    return rc;
}

static void *writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        while (!g_head && !g_stop)
            pthread_cond_wait(&g_cv, &g_mu);
        if (!g_head && g_stop) {
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        struct req *batch = g_head;
        g_head = g_tail = NULL;
        pthread_mutex_unlock(&g_mu);

        uint64_t first_id = g_next_id, n = 0, stored = 0;
        MDB_txn *txn;
        int rc = mdb_txn_begin(g_env, NULL, 0, &txn);
        for (struct req *r = batch; r; r = r->next) {
            n++;
            r->status = 500;
            if (rc != 0) continue;
            if (g_nested) {
                MDB_txn *child;
                int crc = mdb_txn_begin(g_env, txn, 0, &child);
                if (crc == 0) crc = put_job(child, r);
                if (crc == 0)
                    crc = mdb_txn_commit(child);
                else if (child)
                    mdb_txn_abort(child);
                if (crc == 0)
                    r->status = 201, stored++;
                else
                    fprintf(stderr, "minimal_server: put: %s\n", mdb_strerror(crc));
            } else {
                int prc = put_job(txn, r);
                if (prc == 0)
                    r->status = 201, stored++;
                else
                    fprintf(stderr, "minimal_server: put: %s\n", mdb_strerror(prc));
            }
        }
        if (rc == 0) rc = mdb_txn_commit(txn); /* the one fsync for the whole batch */
        if (rc != 0) {
            fprintf(stderr, "minimal_server: commit: %s\n", mdb_strerror(rc));
            g_next_id = first_id;
            stored = 0;
            for (struct req *r = batch; r; r = r->next)
                r->status = 500;
        }
        pthread_mutex_lock(&g_mu);
        g_commits++;
        g_jobs += n;
        g_records += stored;
        pthread_mutex_unlock(&g_mu);
        for (struct req *r = batch, *nx; r; r = nx) {
            nx = r->next;
            r->next = NULL;
            r->state = R_DONE;
            MHD_resume_connection(r->conn);
        }
    }
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *ctype)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct req *r = *con_cls;
    if (!r) {
        /* first call for this request: never queue a response here (keep-alive would be lost) */
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->conn = c;
        r->is_create = strcmp(method, "POST") == 0 && strcmp(url, CREATE_PATH) == 0;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->is_create && r->state == R_READING) {
            size_t n = *upload_data_size;
            if (r->len + n > MAX_BODY) {
                r->state = R_TOO_LARGE;
            } else {
                if (r->len + n > r->cap) {
                    size_t cap = r->cap ? r->cap : 1024;
                    while (cap < r->len + n)
                        cap *= 2;
                    char *p = realloc(r->body, cap);
                    if (!p) return MHD_NO;
                    r->body = p;
                    r->cap = cap;
                }
                memcpy(r->body + r->len, upload_data, n);
                r->len += n;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* the whole request has been received */
    if (r->is_create) {
        switch (r->state) {
        case R_READING:
            pthread_mutex_lock(&g_mu);
            if (g_stop) { /* shutting down: the writer may be gone, never suspend now */
                pthread_mutex_unlock(&g_mu);
                return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"stopping\"}",
                             "application/json");
            }
            r->state = R_QUEUED;
            MHD_suspend_connection(c);
            if (g_tail)
                g_tail->next = r;
            else
                g_head = r;
            g_tail = r;
            pthread_cond_signal(&g_cv);
            pthread_mutex_unlock(&g_mu);
            return MHD_YES;
        case R_QUEUED:
            return MHD_YES; /* not expected: resumed only when done */
        case R_DONE: {
            char out[64];
            if (r->status == 201) {
                snprintf(out, sizeof out, "{\"id\":%llu}", (unsigned long long)r->id);
                return reply(c, MHD_HTTP_CREATED, out, "application/json");
            }
            return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"store failed\"}",
                         "application/json");
        }
        case R_TOO_LARGE:
            return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "{\"error\":\"body too large\"}",
                         "application/json");
        }
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0)
        return reply(c, MHD_HTTP_OK, "{\"status\":\"ok\"}", "application/json");
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        char out[160];
        pthread_mutex_lock(&g_mu);
        snprintf(out, sizeof out, "{\"records\":%llu,\"commits\":%llu,\"jobs\":%llu}",
                 (unsigned long long)g_records, (unsigned long long)g_commits,
                 (unsigned long long)g_jobs);
        pthread_mutex_unlock(&g_mu);
        return reply(c, MHD_HTTP_OK, out, "application/json");
    }
    return reply(c, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", "application/json");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *r = *con_cls;
    if (!r) return;
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static int open_store(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        fprintf(stderr, "minimal_server: --data path too long\n");
        return -1;
    }
    for (char *p = tmp + 1;; p++) { /* mkdir -p */
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(tmp, 0775) != 0 && errno != EEXIST) {
            fprintf(stderr, "minimal_server: mkdir %s: %s\n", tmp, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0') break;
    }
    int rc = mdb_env_create(&g_env);
    if (rc == 0) rc = mdb_env_set_mapsize(g_env, (size_t)4 << 30);
    if (rc == 0) rc = mdb_env_open(g_env, dir, MDB_NOTLS, 0664); /* durable: no NOSYNC */
    MDB_txn *txn = NULL;
    if (rc == 0) rc = mdb_txn_begin(g_env, NULL, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, NULL, 0, &g_dbi);
    if (rc == 0) {
        /* continue numbering after the last stored id, and count what is there */
        MDB_cursor *cur;
        rc = mdb_cursor_open(txn, g_dbi, &cur);
        if (rc == 0) {
            MDB_val k, v;
            if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
                g_next_id = get_be64(k.mv_data);
            mdb_cursor_close(cur);
            MDB_stat st;
            if (mdb_stat(txn, g_dbi, &st) == 0) g_records = st.ms_entries;
        }
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc != 0) {
        fprintf(stderr, "minimal_server: lmdb %s: %s\n", dir, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 0;
    unsigned threads = 2;
    const char *data = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--nested") == 0)
            g_nested = 1;
        else {
            fprintf(stderr, "usage: minimal_server --port P --data DIR [--nested] [--threads 2]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || !data || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: minimal_server --port P --data DIR [--nested] [--threads 2]\n");
        return 2;
    }
    if (open_store(data) != 0) return 1;

    /* block the stop signals in every thread; main waits for them with sigwait */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_t writer;
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        fprintf(stderr, "minimal_server: cannot start writer\n");
        return 1;
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    g_listen = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok =
        g_listen >= 0 && setsockopt(g_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(g_listen, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(g_listen, SOMAXCONN) == 0;
    for (unsigned i = 0; ok && i < threads; i++) {
        g_daemons[i] = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
            0, NULL, NULL, handler, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
            notify_connection, &g_open[i], MHD_OPTION_END);
        if (g_daemons[i])
            g_ndaemons++;
        else
            ok = 0;
    }
    pthread_t acceptor;
    if (ok && pthread_create(&acceptor, NULL, acceptor_main, NULL) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "minimal_server: cannot listen on 127.0.0.1:%d\n", port);
        for (unsigned i = 0; i < g_ndaemons; i++)
            MHD_stop_daemon(g_daemons[i]);
        if (g_listen >= 0) close(g_listen);
        pthread_mutex_lock(&g_mu);
        g_stop = 1;
        pthread_cond_signal(&g_cv);
        pthread_mutex_unlock(&g_mu);
        pthread_join(writer, NULL);
        mdb_env_close(g_env);
        return 1;
    }
    printf("minimal_server: listening on 127.0.0.1:%d, data %s, %u HTTP threads%s\n", port, data,
           threads, g_nested ? ", nested txns" : "");
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);

    /* refuse new writes, let the writer finish and resume every queued connection, then stop
     * the daemon (libmicrohttpd must not be stopped with connections still suspended) */
    pthread_mutex_lock(&g_mu);
    g_stop = 1;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
    shutdown(g_listen, SHUT_RDWR); /* ends the acceptor's accept() */
    pthread_join(acceptor, NULL);
    close(g_listen);
    pthread_join(writer, NULL);
    for (unsigned i = 0; i < g_ndaemons; i++)
        MHD_stop_daemon(g_daemons[i]);
    pthread_mutex_lock(&g_mu);
    printf("minimal_server: stopped: %llu records, %llu commits, %llu jobs since start\n",
           (unsigned long long)g_records, (unsigned long long)g_commits,
           (unsigned long long)g_jobs);
    pthread_mutex_unlock(&g_mu);
    mdb_env_close(g_env);
    return 0;
}
