/* loadgen: a small HTTP/1.1 keep-alive load generator for the Trellis benchmark.
 *
 * Design: --conns connections are spread over --threads event-loop threads (default 1), each an
 * epoll loop over non-blocking sockets. Each connection has at most one request in flight: it
 * sends the next request only after the full response has been read (Content-Length, chunked, or
 * read-until-close). On a 2-core machine shared with the server under test, one epoll thread
 * serving all connections costs far less CPU (no context switch per request, one epoll_wait for
 * many ready sockets) than one blocking thread per connection, so the load generator takes as
 * little CPU from the server as possible; --threads 2 is there in case one core is not enough.
 *
 * Placeholders in the body template and in paths: {{i}} global request index, {{i1}} the same
 * plus one (record ids start at 1), {{region}}
 * (north, south, east, west by i), {{rand}} (xorshift64*, fixed seed, 0..999999, a new value per
 * occurrence, deterministic per request index), {{uuid}} (random v4 uuid from the same stream).
 *
 * Output: one line on stdout and a JSON object in --out:
 * {phase, n, ok, errors, rps, p50_ms, p99_ms, max_ms, loadgen_cpu_pct, ...}.
 * Exit status: 0 all requests ok, 1 some errors or timeout, 2 usage or setup failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS    32
#define MAX_CONNS      1024
#define MAX_THREADS    64
#define MAX_HDR_BYTES  (64 * 1024)
#define MAX_RESP_BYTES (64 * 1024 * 1024)
#define READ_CHUNK     (64 * 1024)

/* ---------- small helpers ---------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addu(struct buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    buf_add(b, tmp, (size_t)n);
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct buf b = {0};
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, n);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b.p);
        return NULL;
    }
    if (!b.p) buf_reserve(&b, 0), b.p[0] = '\0';
    *len_out = b.len;
    return b.p;
}

/* ---------- deterministic random stream per request ---------- */

static uint64_t g_seed = 0x5eed7e11155eedull;

struct rng {
    uint64_t s;
};

static void rng_init(struct rng *r, uint64_t i)
{
    /* splitmix64 of (seed, i) so that each request index has its own fixed stream */
    uint64_t z = g_seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_next(struct rng *r)
{
    /* xorshift64* */
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---------- templates ---------- */

enum seg_kind { SEG_LIT, SEG_I, SEG_I1, SEG_REGION, SEG_RAND, SEG_UUID };

struct seg {
    enum seg_kind kind;
    const char *s;
    size_t n;
};

struct tmpl {
    struct seg *segs;
    size_t nsegs;
    int dynamic;
};

static void tmpl_push(struct tmpl *t, enum seg_kind k, const char *s, size_t n)
{
    if (k == SEG_LIT && n == 0) return;
    struct seg *ns = realloc(t->segs, (t->nsegs + 1) * sizeof *ns);
    if (!ns) die("out of memory");
    t->segs = ns;
    t->segs[t->nsegs++] = (struct seg){k, s, n};
    if (k != SEG_LIT) t->dynamic = 1;
}

/* src must outlive the template */
static void tmpl_parse(struct tmpl *t, const char *src, size_t len)
{
    static const struct {
        const char *name;
        enum seg_kind kind;
    } names[] = {{"{{i}}", SEG_I},
                 {"{{i1}}", SEG_I1},
                 {"{{region}}", SEG_REGION},
                 {"{{rand}}", SEG_RAND},
                 {"{{uuid}}", SEG_UUID}};
    memset(t, 0, sizeof *t);
    size_t lit = 0, pos = 0;
    while (pos < len) {
        int matched = 0;
        if (src[pos] == '{' && pos + 1 < len && src[pos + 1] == '{') {
            for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
                size_t nl = strlen(names[k].name);
                if (pos + nl <= len && memcmp(src + pos, names[k].name, nl) == 0) {
                    tmpl_push(t, SEG_LIT, src + lit, pos - lit);
                    tmpl_push(t, names[k].kind, NULL, 0);
                    pos += nl;
                    lit = pos;
                    matched = 1;
                    break;
                }
            }
        }
        if (!matched) pos++;
    }
    tmpl_push(t, SEG_LIT, src + lit, len - lit);
}

static void tmpl_render(const struct tmpl *t, uint64_t i, struct rng *r, struct buf *out)
{
    static const char *regions[] = {"north", "south", "east", "west"};
    for (size_t k = 0; k < t->nsegs; k++) {
        const struct seg *s = &t->segs[k];
        switch (s->kind) {
        case SEG_LIT:
            buf_add(out, s->s, s->n);
            break;
        case SEG_I:
            buf_addu(out, i);
            break;
        case SEG_I1:
            buf_addu(out, i + 1);
            break;
        case SEG_REGION:
            buf_adds(out, regions[i % 4]);
            break;
        case SEG_RAND:
            buf_addu(out, rng_next(r) % 1000000);
            break;
        case SEG_UUID: {
            uint64_t a = rng_next(r), b = rng_next(r);
            a = (a & ~0xF000ull) | 0x4000ull;               /* version 4 */
            b = (b & 0x3FFFFFFFFFFFFFFFull) | (1ull << 63); /* variant 10 */
            char tmp[40];
            int n =
                snprintf(tmp, sizeof tmp, "%08llx-%04llx-%04llx-%04llx-%012llx",
                         (unsigned long long)(a >> 32), (unsigned long long)((a >> 16) & 0xFFFF),
                         (unsigned long long)(a & 0xFFFF), (unsigned long long)(b >> 48),
                         (unsigned long long)(b & 0xFFFFFFFFFFFFull));
            buf_add(out, tmp, (size_t)n);
            break;
        }
        }
    }
}

/* ---------- configuration and shared state ---------- */

static struct {
    const char *host;
    int port;
    int conns;
    int threads;
    uint64_t requests;
    const char *method;
    const char *path;
    const char *path_file;
    const char *body_file;
    const char *body_inline;
    const char *headers[MAX_HEADERS];
    int nheaders;
    int expect;
    const char *phase;
    const char *out;
    double timeout_s;
    int quiet;
} cfg = {
    .host = "127.0.0.1",
    .port = 0,
    .conns = 8,
    .threads = 1,
    .requests = 1000,
    .method = "GET",
    .path = "/",
    .expect = 200,
    .phase = "run",
    .timeout_s = 120,
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static struct tmpl *g_paths; /* one template per path (path-file lines or --path) */
static size_t g_npaths;
static struct tmpl g_body;
static char *g_path_text, *g_body_text; /* file contents the templates point into */
static int g_has_body;
static int g_user_ct; /* user gave a Content-Type header */
static int g_is_head;
static char g_host_hdr[300];

static atomic_uint_fast64_t g_next_i;
static uint64_t *g_lat_ns; /* latency per request index, 0 = no response */
static uint64_t g_deadline_ns;
static atomic_int g_sample_taken; /* first unexpected response printed once */

struct thread_stats {
    uint64_t started, ok, bad_status, transport_err, timeouts, reconnects, responses;
    uint64_t status_count[600];
};

/* ---------- connections ---------- */

enum conn_state { C_IDLE, C_SENDING, C_RECV, C_DONE };

struct conn {
    int fd;
    enum conn_state state;
    int want_out;
    struct buf req;
    size_t sent;
    struct buf resp;
    uint64_t cur_i, t0;
    int used; /* requests sent on this socket */
    /* response parse state */
    int hdr_done, status, chunked, close_after, until_close;
    long long clen;
    size_t hdr_len, scan_from, chunk_pos;
};

struct worker {
    pthread_t th;
    int epfd;
    struct conn *conns;
    int nconns;
    int active;
    struct thread_stats st;
};

static void conn_close(struct worker *w, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->want_out = 0;
    c->used = 0;
}

static int conn_open(struct worker *w, struct conn *c)
{
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* blocking connect: on loopback it completes or fails at once */
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->want_out = 0;
    c->used = 0;
    return 0;
}

static void set_out(struct worker *w, struct conn *c, int on)
{
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void build_request(struct conn *c, uint64_t i)
{
    struct rng r;
    rng_init(&r, i);
    struct buf *b = &c->req;
    b->len = 0;
    buf_adds(b, cfg.method);
    buf_add(b, " ", 1);
    tmpl_render(&g_paths[i % g_npaths], i, &r, b);
    buf_adds(b, " HTTP/1.1\r\nHost: ");
    buf_adds(b, g_host_hdr);
    buf_adds(b, "\r\nUser-Agent: trellis-loadgen\r\n");
    for (int k = 0; k < cfg.nheaders; k++) {
        buf_adds(b, cfg.headers[k]);
        buf_add(b, "\r\n", 2);
    }
    if (g_has_body) {
        if (!g_user_ct) buf_adds(b, "Content-Type: application/json\r\n");
        /* render the body after a fixed-width Content-Length we fill in afterwards */
        buf_adds(b, "Content-Length: ");
        size_t cl_at = b->len;
        buf_adds(b, "0000000000\r\n\r\n");
        size_t body_at = b->len;
        tmpl_render(&g_body, i, &r, b);
        char tmp[16];
        snprintf(tmp, sizeof tmp, "%010zu", b->len - body_at);
        memcpy(b->p + cl_at, tmp, 10);
    } else {
        buf_add(b, "\r\n", 2);
    }
    c->sent = 0;
}

static void reset_parse(struct conn *c)
{
    c->resp.len = 0;
    if (c->resp.p) c->resp.p[0] = '\0';
    c->hdr_done = c->status = c->chunked = c->close_after = c->until_close = 0;
    c->clen = -1;
    c->hdr_len = c->scan_from = c->chunk_pos = 0;
}

static void record_error(struct worker *w, struct conn *c, const char *what)
{
    w->st.transport_err++;
    if (!atomic_exchange(&g_sample_taken, 1))
        fprintf(stderr, "loadgen: request %llu: %s (%s)\n", (unsigned long long)c->cur_i, what,
                errno ? strerror(errno) : "no errno");
}

static int do_send(struct worker *w, struct conn *c);

/* take the next request index and send it; loops (no recursion) past connect failures */
static void start_next(struct worker *w, struct conn *c)
{
    for (;;) {
        if (now_ns() >= g_deadline_ns) {
            conn_close(w, c);
            c->state = C_DONE;
            w->active--;
            return;
        }
        uint64_t i = atomic_fetch_add(&g_next_i, 1);
        if (i >= cfg.requests) {
            conn_close(w, c);
            c->state = C_DONE;
            w->active--;
            return;
        }
        w->st.started++;
        c->cur_i = i;
        if (c->fd < 0) {
            if (conn_open(w, c) != 0) {
                record_error(w, c, "connect failed");
                continue;
            }
            w->st.reconnects++;
        }
        build_request(c, i);
        reset_parse(c);
        c->state = C_SENDING;
        c->t0 = now_ns();
        if (do_send(w, c) == 0) return;
        /* send failed: error recorded, connection closed; go on with the next index */
    }
}

/* 0 = sent or waiting for EPOLLOUT, -1 = failed (error recorded, connection closed) */
static int do_send(struct worker *w, struct conn *c)
{
    while (c->sent < c->req.len) {
        ssize_t n =
            send(c->fd, c->req.p + c->sent, c->req.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(w, c, 1);
            return 0;
        }
        record_error(w, c, "send failed");
        conn_close(w, c);
        return -1;
    }
    set_out(w, c, 0);
    c->state = C_RECV;
    c->used++;
    return 0;
}

static int hdr_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0) return 0;
    const char *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return 1;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t k = 0; k + tl <= n; k++)
        if (strncasecmp(v + k, tok, tl) == 0) return 1;
    return 0;
}

/* 1 = response complete, 0 = need more bytes, -1 = malformed */
static int parse_resp(struct conn *c)
{
    char *p = c->resp.p;
    size_t len = c->resp.len;
    if (!c->hdr_done) {
    again:;
        char *e = memmem(p + c->scan_from, len - c->scan_from, "\r\n\r\n", 4);
        if (!e) {
            c->scan_from = len > 3 ? len - 3 : 0;
            return len > MAX_HDR_BYTES ? -1 : 0;
        }
        c->hdr_len = (size_t)(e - p) + 4;
        if (c->hdr_len < 12 || memcmp(p, "HTTP/1.", 7) != 0) return -1;
        int minor = p[7] - '0';
        c->status = atoi(p + 9);
        if (c->status < 100 || c->status > 599) return -1;
        if (c->status < 200) { /* interim response (100 Continue): drop it */
            memmove(p, p + c->hdr_len, len - c->hdr_len);
            c->resp.len = len = len - c->hdr_len;
            p[len] = '\0';
            c->scan_from = 0;
            goto again;
        }
        c->close_after = (minor == 0);
        const char *line = memchr(p, '\n', c->hdr_len) + 1;
        const char *end = p + c->hdr_len - 2;
        while (line < end) {
            const char *nl = memchr(line, '\n', (size_t)(end - line) + 1);
            size_t ln = (size_t)(nl - line);
            if (ln && line[ln - 1] == '\r') ln--;
            const char *v;
            size_t vl;
            if (hdr_is(line, ln, "content-length", &v, &vl)) {
                c->clen = strtoll(v, NULL, 10);
                if (c->clen < 0) return -1;
            } else if (hdr_is(line, ln, "transfer-encoding", &v, &vl)) {
                if (has_token(v, vl, "chunked")) c->chunked = 1;
            } else if (hdr_is(line, ln, "connection", &v, &vl)) {
                if (has_token(v, vl, "close"))
                    c->close_after = 1;
                else if (has_token(v, vl, "keep-alive"))
                    c->close_after = 0;
            }
            line = nl + 1;
        }
        c->hdr_done = 1;
        if (g_is_head || c->status == 204 || c->status == 304)
            c->clen = 0, c->chunked = 0;
        else if (c->chunked)
            c->chunk_pos = c->hdr_len;
        else if (c->clen < 0)
            c->until_close = 1, c->close_after = 1;
    }
    if (c->chunked) {
        for (;;) {
            size_t pos = c->chunk_pos;
            char *crlf = memmem(p + pos, len - pos, "\r\n", 2);
            if (!crlf) return 0;
            char *endp;
            unsigned long long sz = strtoull(p + pos, &endp, 16);
            if (endp == p + pos) return -1;
            size_t data = (size_t)(crlf - p) + 2;
            if (sz == 0) {
                /* trailer section ends with an empty line; data-2 is the size line's CRLF */
                return memmem(p + data - 2, len - (data - 2), "\r\n\r\n", 4) ? 1 : 0;
            }
            if (sz > MAX_RESP_BYTES) return -1;
            if (len < data + sz + 2) return 0;
            c->chunk_pos = data + sz + 2;
        }
    }
    if (c->clen >= 0) {
        if (len > c->hdr_len + (size_t)c->clen) return -1; /* extra bytes: nothing pipelined */
        return len == c->hdr_len + (size_t)c->clen;
    }
    return 0; /* until close */
}

static void finish(struct worker *w, struct conn *c)
{
    uint64_t lat = now_ns() - c->t0;
    g_lat_ns[c->cur_i] = lat ? lat : 1;
    w->st.responses++;
    w->st.status_count[c->status]++;
    if (c->status == cfg.expect) {
        w->st.ok++;
    } else {
        w->st.bad_status++;
        if (!atomic_exchange(&g_sample_taken, 1)) {
            size_t bl = c->resp.len - c->hdr_len;
            fprintf(stderr, "loadgen: request %llu: status %d, expected %d; body: %.*s\n",
                    (unsigned long long)c->cur_i, c->status, cfg.expect, (int)(bl > 400 ? 400 : bl),
                    c->resp.p + c->hdr_len);
        }
    }
    if (c->close_after || c->sent < c->req.len) conn_close(w, c);
    c->state = C_IDLE;
    start_next(w, c);
}

static void do_recv(struct worker *w, struct conn *c)
{
    if (c->resp.len > MAX_RESP_BYTES) {
        errno = 0;
        record_error(w, c, "response too large");
        conn_close(w, c);
        start_next(w, c);
        return;
    }
    buf_reserve(&c->resp, READ_CHUNK);
    ssize_t n = recv(c->fd, c->resp.p + c->resp.len, c->resp.cap - c->resp.len - 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n > 0) {
        c->resp.len += (size_t)n;
        c->resp.p[c->resp.len] = '\0';
        int r = parse_resp(c);
        if (r == 0) return;
        if (r > 0) {
            finish(w, c);
            return;
        }
        errno = 0;
        record_error(w, c, "malformed response");
    } else if (n == 0) {
        if (c->hdr_done && c->until_close) {
            finish(w, c);
            return;
        }
        errno = 0;
        record_error(w, c,
                     c->resp.len ? "connection closed mid-response"
                                 : "connection closed before response");
    } else {
        record_error(w, c, "recv failed");
    }
    conn_close(w, c);
    start_next(w, c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->active = w->nconns;
    for (int k = 0; k < w->nconns; k++) {
        w->conns[k].fd = -1;
        w->conns[k].state = C_IDLE;
        start_next(w, &w->conns[k]);
    }
    struct epoll_event evs[64];
    while (w->active > 0) {
        uint64_t now = now_ns();
        if (now >= g_deadline_ns) break;
        uint64_t left_ms = (g_deadline_ns - now) / 1000000 + 1;
        int n = epoll_wait(w->epfd, evs, 64, left_ms > 200 ? 200 : (int)left_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("loadgen: epoll_wait");
            break;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (c->fd < 0 || c->state == C_DONE) continue;
            if (c->state == C_SENDING) {
                /* an early answer (e.g. 413 before the whole body was read) ends the request */
                if (evs[k].events & EPOLLIN)
                    do_recv(w, c);
                else if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    if (do_send(w, c) != 0) start_next(w, c);
            } else if (c->state == C_RECV) {
                if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) do_recv(w, c);
            }
        }
    }
    /* deadline reached: whatever is still in flight is a timeout */
    for (int k = 0; k < w->nconns; k++) {
        struct conn *c = &w->conns[k];
        if (c->state == C_SENDING || c->state == C_RECV) w->st.timeouts++;
        conn_close(w, c);
        c->state = C_DONE;
    }
    return NULL;
}

/* ---------- results ---------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0) return 0;
    size_t k = (size_t)(q * (double)n + 0.999999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return (double)v[k - 1] / 1e6;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --port P [--host 127.0.0.1] [--conns 8] [--threads 1]\n"
               "               [--requests N] [--method GET] [--path /p | --path-file FILE]\n"
               "               [--body-template FILE | --body STR] [--header 'K: V']...\n"
               "               [--expect 200] [--phase NAME] [--out result.json]\n"
               "               [--timeout-s 120] [--seed N] [--quiet]\n"
               "placeholders in body and paths: {{i}} {{i1}} {{region}} {{rand}} {{uuid}}\n");
}

static long parse_num(const char *s, const char *what, long lo, long hi)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || v < lo || v > hi) {
        fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    enum {
        OPT_HOST = 1000,
        OPT_PORT,
        OPT_CONNS,
        OPT_THREADS,
        OPT_REQ,
        OPT_METHOD,
        OPT_PATH,
        OPT_PATHFILE,
        OPT_BODYT,
        OPT_BODY,
        OPT_HEADER,
        OPT_EXPECT,
        OPT_PHASE,
        OPT_OUT,
        OPT_TIMEOUT,
        OPT_SEED,
        OPT_QUIET,
        OPT_HELP
    };
    static const struct option opts[] = {
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"conns", required_argument, 0, OPT_CONNS},
        {"threads", required_argument, 0, OPT_THREADS},
        {"requests", required_argument, 0, OPT_REQ},
        {"method", required_argument, 0, OPT_METHOD},
        {"path", required_argument, 0, OPT_PATH},
        {"path-file", required_argument, 0, OPT_PATHFILE},
        {"body-template", required_argument, 0, OPT_BODYT},
        {"body", required_argument, 0, OPT_BODY},
        {"header", required_argument, 0, OPT_HEADER},
        {"expect", required_argument, 0, OPT_EXPECT},
        {"phase", required_argument, 0, OPT_PHASE},
        {"out", required_argument, 0, OPT_OUT},
        {"timeout-s", required_argument, 0, OPT_TIMEOUT},
        {"seed", required_argument, 0, OPT_SEED},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case OPT_HOST:
            cfg.host = optarg;
            break;
        case OPT_PORT:
            cfg.port = (int)parse_num(optarg, "--port", 1, 65535);
            break;
        case OPT_CONNS:
            cfg.conns = (int)parse_num(optarg, "--conns", 1, MAX_CONNS);
            break;
        case OPT_THREADS:
            cfg.threads = (int)parse_num(optarg, "--threads", 1, MAX_THREADS);
            break;
        case OPT_REQ:
            cfg.requests = (uint64_t)parse_num(optarg, "--requests", 1, 100000000);
            break;
        case OPT_METHOD:
            cfg.method = optarg;
            break;
        case OPT_PATH:
            cfg.path = optarg;
            break;
        case OPT_PATHFILE:
            cfg.path_file = optarg;
            break;
        case OPT_BODYT:
            cfg.body_file = optarg;
            break;
        case OPT_BODY:
            cfg.body_inline = optarg;
            break;
        case OPT_HEADER:
            if (cfg.nheaders == MAX_HEADERS) die("too many --header");
            if (!strchr(optarg, ':') || strpbrk(optarg, "\r\n")) die("bad --header, want 'K: V'");
            cfg.headers[cfg.nheaders++] = optarg;
            break;
        case OPT_EXPECT:
            cfg.expect = (int)parse_num(optarg, "--expect", 100, 599);
            break;
        case OPT_PHASE:
            cfg.phase = optarg;
            break;
        case OPT_OUT:
            cfg.out = optarg;
            break;
        case OPT_TIMEOUT: {
            char *e;
            cfg.timeout_s = strtod(optarg, &e);
            if (*e || !(cfg.timeout_s > 0) || cfg.timeout_s > 86400) die("bad --timeout-s");
            break;
        }
        case OPT_SEED:
            g_seed = (uint64_t)parse_num(optarg, "--seed", 0, 0x7fffffffL);
            break;
        case OPT_QUIET:
            cfg.quiet = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg.port == 0) {
        usage(stderr);
        return 2;
    }
    if (cfg.threads > cfg.conns) cfg.threads = cfg.conns;
    if (strpbrk(cfg.method, " \r\n")) die("bad --method");
    g_is_head = strcmp(cfg.method, "HEAD") == 0;
    for (int k = 0; k < cfg.nheaders; k++)
        if (strncasecmp(cfg.headers[k], "content-type:", 13) == 0) g_user_ct = 1;

    /* address */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", cfg.port);
    int gai = getaddrinfo(cfg.host, portstr, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", cfg.host, gai_strerror(gai));
        return 2;
    }
    memcpy(&g_addr, ai->ai_addr, ai->ai_addrlen);
    g_addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(g_host_hdr, sizeof g_host_hdr, "%s:%d", cfg.host, cfg.port);

    /* paths */
    if (cfg.path_file) {
        size_t len;
        char *txt = g_path_text = read_file(cfg.path_file, &len);
        if (!txt) die("cannot read --path-file");
        for (char *line = txt; line < txt + len;) {
            char *nl = memchr(line, '\n', (size_t)(txt + len - line));
            char *end = nl ? nl : txt + len;
            if (end > line && end[-1] == '\r') end--;
            if (end > line) {
                if (*line != '/') die("--path-file: each line must start with /");
                struct tmpl *np = realloc(g_paths, (g_npaths + 1) * sizeof *np);
                if (!np) die("out of memory");
                g_paths = np;
                tmpl_parse(&g_paths[g_npaths++], line, (size_t)(end - line));
            }
            line = nl ? nl + 1 : txt + len;
        }
        if (g_npaths == 0) die("--path-file has no paths");
    } else {
        if (cfg.path[0] != '/' || strpbrk(cfg.path, " \r\n")) die("bad --path");
        g_paths = calloc(1, sizeof *g_paths);
        if (!g_paths) die("out of memory");
        g_npaths = 1;
        tmpl_parse(&g_paths[0], cfg.path, strlen(cfg.path));
    }

    /* body */
    if (cfg.body_file && cfg.body_inline) die("--body-template and --body are exclusive");
    if (cfg.body_file) {
        size_t len;
        char *txt = g_body_text = read_file(cfg.body_file, &len);
        if (!txt) die("cannot read --body-template");
        while (len && (txt[len - 1] == '\n' || txt[len - 1] == '\r'))
            len--;
        tmpl_parse(&g_body, txt, len);
        g_has_body = 1;
    } else if (cfg.body_inline) {
        tmpl_parse(&g_body, cfg.body_inline, strlen(cfg.body_inline));
        g_has_body = 1;
    }

    g_lat_ns = calloc(cfg.requests, sizeof *g_lat_ns);
    struct worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
    struct conn *cs = calloc((size_t)cfg.conns, sizeof *cs);
    if (!g_lat_ns || !ws || !cs) die("out of memory");
    for (int t = 0, c0 = 0; t < cfg.threads; t++) {
        int nc = cfg.conns / cfg.threads + (t < cfg.conns % cfg.threads);
        ws[t].conns = cs + c0;
        ws[t].nconns = nc;
        c0 += nc;
        ws[t].epfd = epoll_create1(EPOLL_CLOEXEC);
        if (ws[t].epfd < 0) die("epoll_create1 failed");
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t_start = now_ns();
    g_deadline_ns = t_start + (uint64_t)(cfg.timeout_s * 1e9);
    for (int t = 0; t < cfg.threads; t++)
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) die("pthread_create");
    for (int t = 0; t < cfg.threads; t++)
        pthread_join(ws[t].th, NULL);
    uint64_t t_end = now_ns();
    getrusage(RUSAGE_SELF, &ru1);

    struct thread_stats tot = {0};
    for (int t = 0; t < cfg.threads; t++) {
        struct thread_stats *s = &ws[t].st;
        tot.started += s->started;
        tot.ok += s->ok;
        tot.bad_status += s->bad_status;
        tot.transport_err += s->transport_err;
        tot.timeouts += s->timeouts;
        tot.reconnects += s->reconnects;
        tot.responses += s->responses;
        for (int k = 0; k < 600; k++)
            tot.status_count[k] += s->status_count[k];
    }
    int timed_out = tot.timeouts > 0 || tot.started < cfg.requests;

    /* latencies of every request that got a full response (expected status or not) */
    size_t nl = 0;
    for (uint64_t i = 0; i < cfg.requests; i++)
        if (g_lat_ns[i]) g_lat_ns[nl++] = g_lat_ns[i];
    qsort(g_lat_ns, nl, sizeof *g_lat_ns, cmp_u64);
    double sum_ms = 0;
    for (size_t k = 0; k < nl; k++)
        sum_ms += (double)g_lat_ns[k] / 1e6;

    double wall = (double)(t_end - t_start) / 1e9;
    if (wall <= 0) wall = 1e-9;
    double cpu = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) + tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    long ncores = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncores < 1) ncores = 1;
    uint64_t errors = tot.bad_status + tot.transport_err + tot.timeouts;
    double rps = (double)tot.ok / wall;
    double cpu_pct = cpu / (wall * (double)ncores) * 100.0;
    double p50 = pct(g_lat_ns, nl, 0.50), p99 = pct(g_lat_ns, nl, 0.99);
    double pmax = nl ? (double)g_lat_ns[nl - 1] / 1e6 : 0;
    double mean = nl ? sum_ms / (double)nl : 0;

    if (!cfg.quiet)
        printf("%s: n=%llu ok=%llu errors=%llu rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
               "loadgen_cpu_pct=%.1f wall_s=%.2f%s\n",
               cfg.phase, (unsigned long long)tot.started, (unsigned long long)tot.ok,
               (unsigned long long)errors, rps, p50, p99, pmax, cpu_pct, wall,
               timed_out ? " TIMED-OUT" : "");
    fflush(stdout);

    if (cfg.out) {
        FILE *f = fopen(cfg.out, "w");
        if (!f) {
            perror("loadgen: --out");
            return 2;
        }
        fprintf(f, "{\"phase\": ");
        json_str(f, cfg.phase);
        fprintf(f,
                ", \"n\": %llu, \"ok\": %llu, \"errors\": %llu, \"rps\": %.1f, \"p50_ms\": %.3f, "
                "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f, \"loadgen_cpu_pct\": %.1f, "
                "\"wall_s\": %.3f, \"requested\": %llu, \"conns\": %d, \"threads\": %d, "
                "\"ncores\": %ld, \"bad_status\": %llu, \"transport_errors\": %llu, "
                "\"timeouts\": %llu, \"connects\": %llu, \"timed_out\": %s, \"method\": ",
                (unsigned long long)tot.started, (unsigned long long)tot.ok,
                (unsigned long long)errors, rps, p50, p99, pmax, mean, cpu_pct, wall,
                (unsigned long long)cfg.requests, cfg.conns, cfg.threads, ncores,
                (unsigned long long)tot.bad_status, (unsigned long long)tot.transport_err,
                (unsigned long long)tot.timeouts, (unsigned long long)tot.reconnects,
                timed_out ? "true" : "false");
        json_str(f, cfg.method);
        fprintf(f, ", \"expect\": %d, \"status_counts\": {", cfg.expect);
        int first = 1;
        for (int k = 100; k < 600; k++)
            if (tot.status_count[k]) {
                fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", k,
                        (unsigned long long)tot.status_count[k]);
                first = 0;
            }
        fprintf(f, "}}\n");
        if (fclose(f) != 0) {
            perror("loadgen: --out");
            return 2;
        }
    }
    for (int k = 0; k < cfg.conns; k++) {
        free(cs[k].req.p);
        free(cs[k].resp.p);
    }
    for (int t = 0; t < cfg.threads; t++)
        close(ws[t].epfd);
    for (size_t k = 0; k < g_npaths; k++)
        free(g_paths[k].segs);
    free(g_paths);
    free(g_body.segs);
    free(g_path_text);
    free(g_body_text);
    free(cs);
    free(ws);
    free(g_lat_ns);
    return errors == 0 && !timed_out ? 0 : 1;
}
