/* events.c — GET /api/v1/events: server-sent events of the record changes the caller may see
 * (DESIGN.md §5), read from the global change log.
 *
 * A stream is a struct trl_stream owned by its libmicrohttpd response (freed by the response's
 * free callback) and registered in the server (s->streams, under s->ev_lock) so that others can
 * wake it. Its content reader runs on the connection's HTTP thread: it hands over what is
 * buffered; else it re-checks the credential when due, opens a read txn, reads one bounded batch
 * of the log after the last sequence it looked at, formats the changes the caller may see (the
 * history's rules: trl_rec_change_json), ends the txn, and adds a heartbeat comment when nothing
 * was sent for a while. With nothing to send it parks: marks itself parked, suspends the
 * connection and returns 0. No read txn and no catalog reference is held while parked.
 *
 * Wakes: the writer after every committed batch (trl_http_events_wake, from the jobs' done
 * callbacks), the watchdog when a parked stream's heartbeat or credential check is due, and the
 * server's stop. A waker claims parked streams under ev_lock and resumes them after unlocking,
 * so no libmicrohttpd call is made under our lock. A resume must never precede its suspend: a
 * stream marks itself `suspending` until MHD_suspend_connection has returned, and a waker that
 * finds it so leaves `wake_pending` for the stream to resume itself. A claimed stream cannot be
 * freed before its resume (its connection is suspended), and the free callback unlinks under
 * ev_lock, so every pointer a waker follows is alive. ev_gen closes the last gap: a stream
 * parks only if no commit was announced since it began its read.
 *
 * Stop: trl_server_stop sets `stopping`, wakes every stream (each then ends its response) and
 * waits, bounded, until they are gone, before MHD_stop_daemon (which must not meet a suspended
 * connection).
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EV_BATCH      256          /* log entries read per read txn */
#define EV_MAX_ROUNDS 16           /* batches one reader call may scan before it yields */
#define EV_OUT_HIGH   (256 * 1024) /* stop filling past this many buffered bytes */

struct trl_stream {
    struct trl_server *srv;         /* the server */
    struct MHD_Connection *conn;    /* the connection (valid while the response lives) */
    struct trl_principal who;       /* the caller, refreshed at every credential check */
    bool bearer;                    /* secret is an API token (else a session cookie) */
    char *secret;                   /* the credential (owned; wiped when freed) */
    char *types;                    /* ?types= as given (owned), NULL: every type */
    uint64_t last;                  /* sequence of the last change looked at */
    struct trl_buf out;             /* bytes produced, not yet handed to libmicrohttpd */
    size_t off;                     /* bytes of out already handed over */
    struct trl_buf scratch;         /* one change's JSON while it is framed */
    int64_t sent_ms;                /* monotonic ms when bytes were last produced */
    int64_t checked_ms;             /* monotonic ms of the last credential check */
    bool ending;                    /* end the response once out is sent */
    bool parked;                    /* (ev_lock) suspended or suspending, waiting for a wake */
    bool suspending;                /* (ev_lock) MHD_suspend_connection has not returned yet */
    bool wake_pending;              /* (ev_lock) woken while suspending: resume itself */
    int64_t wake_ms;                /* (ev_lock) monotonic ms the watchdog wakes it anyway */
    struct trl_stream *prev, *next; /* (ev_lock) registry links */
    struct trl_stream *wnext;       /* a waker's list of claimed streams */
};

/* ---------------------------------------------------------------------------------------------
 * Waking
 */

/* Claims st for a waker (ev_lock held): true when the caller must resume it. */
static bool claim(struct trl_stream *st)
{
    if (!st->parked) return false;
    st->parked = false;
    if (st->suspending) {
        st->wake_pending = true; /* the stream resumes itself once its suspend returned */
        return false;
    }
    return true;
}

/* Resumes the claimed streams of list (no lock held: each is suspended until resumed). */
static void resume_list(struct trl_stream *list)
{
    while (list) {
        struct trl_stream *next = list->wnext; /* before the resume: st may be gone after */
        MHD_resume_connection(list->conn);
        list = next;
    }
}

/* Wakes every parked stream (due_ms < 0), or those whose wake time is at most due_ms. */
static void wake(struct trl_server *s, int64_t due_ms)
{
    struct trl_stream *list = NULL;
    pthread_mutex_lock(&s->ev_lock);
    for (struct trl_stream *st = s->streams; st; st = st->next) {
        if (!st->parked || (due_ms >= 0 && st->wake_ms > due_ms)) continue;
        if (claim(st)) {
            st->wnext = list;
            list = st;
        }
    }
    pthread_mutex_unlock(&s->ev_lock);
    resume_list(list);
}

void trl_http_events_wake(struct trl_server *s)
{
    /* Nothing to wake: a stream counts itself before its first read, so it cannot miss a batch
     * committed before that read. */
    if (!atomic_load(&s->n_streams)) return;
    /* One wake per committed batch is enough: every job of it committed before the first done. */
    uint64_t batches, jobs;
    trl_store_writer_stats(s->store, &batches, &jobs);
    if (atomic_exchange(&s->ev_batch, batches) == batches) return;
    atomic_fetch_add(&s->ev_gen, 1);
    wake(s, -1);
}

void trl_http_events_tick(struct trl_server *s)
{
    if (atomic_load(&s->n_streams)) wake(s, trl_mono_ms());
}

void trl_http_events_stop(struct trl_server *s)
{
    /* stopping is set, and a stream checks it under ev_lock before it parks: after this wake
     * none is parked, and each ends its response the next time it runs. A client that does not
     * read keeps its stream past the wait; MHD_stop_daemon closes it then. */
    wake(s, -1);
    for (int i = 0; i < 300 && atomic_load(&s->n_streams) > 0; i++)
        usleep(10000);
}

/* ---------------------------------------------------------------------------------------------
 * Reading
 */
static bool type_wanted(const char *types, const char *name)
{
    if (!types) return true;
    size_t n = strlen(name);
    for (const char *p = types; *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && memcmp(p, name, n) == 0) return true;
        p += l;
        if (*p == ',') p++;
    }
    return false;
}

/* The caller's access to one type, computed once per batch. */
struct type_acc {
    const struct trl_type *ty; /* NULL: slot unused */
    struct trl_access acc;     /* the caller's rights */
    unsigned char *modes;      /* field modes (owned) */
    bool wanted;               /* in ?types= and readable */
};

static struct type_acc *type_access(struct trl_stream *st, struct type_acc *cache, size_t cap,
                                    const struct trl_type *ty)
{
    size_t i;
    for (i = 0; i < cap && cache[i].ty; i++)
        if (cache[i].ty == ty) return &cache[i];
    if (i == cap) return NULL;
    struct type_acc *e = &cache[i];
    e->modes = malloc(ty->nfields + 1);
    if (!e->modes) return NULL;
    e->ty = ty;
    trl_rec_access(ty, &st->who, &e->acc, e->modes);
    e->wanted = type_wanted(st->types, ty->name) && e->acc.read != TRL_SCOPE_NONE;
    return e;
}

/* Reads one batch of the log after st->last into st->out. *more: the log goes on past it. */
static int fill(struct trl_stream *st, bool *more)
{
    struct trl_server *s = st->srv;
    struct trl_rec_change ch[EV_BATCH];
    struct trl_txn *t = NULL;
    struct trl_catalog *cat = NULL;
    struct trl_wf_set *wfs = NULL;
    struct type_acc *cache = NULL;
    size_t n = 0, cap = 0;
    struct trl_diag d;
    trl_diag_init(&d);
    *more = false;
    int rc = trl_store_read(s->store, &t);
    if (rc) return rc;
    rc = trl_rec_log_read(t, st->last, ch, EV_BATCH, &n);
    if (rc || n == 0) goto out;
    *more = n == EV_BATCH;
    trl_http_snapshot(s, &cat, &wfs);
    cap = cat->ntypes;
    cache = calloc(cap ? cap : 1, sizeof(*cache));
    if (!cache) {
        rc = TRL_ENOMEM;
        goto out;
    }
    int64_t now = trl_clock_now(s->clock);
    for (size_t i = 0; i < n; i++) {
        if (st->out.len >= EV_OUT_HIGH) {
            *more = true;
            break;
        }
        uint64_t prev = st->last;
        st->last = ch[i].seq;
        const struct trl_type *ty = trl_catalog_type_by_id(cat, ch[i].type_id);
        if (!ty) continue; /* the type is gone: its history is nobody's now */
        struct type_acc *ta = type_access(st, cache, cap, ty);
        if (!ta) {
            st->last = prev; /* looked at again next time */
            rc = TRL_ENOMEM;
            break;
        }
        if (!ta->wanted) continue;
        struct trl_rec_ctx cx = {.cat = cat,
                                 .acc = &ta->acc,
                                 .who = &st->who,
                                 .now_ms = now,
                                 .request_id = "",
                                 .lang = "en",
                                 .d = &d};
        bool visible;
        char action[32];
        trl_buf_clear(&st->scratch);
        int cr = trl_rec_change_json(t, &cx, ty, &ch[i], &visible, action, &st->scratch);
        if (cr) {
            /* One unreadable change must not stall the stream: log it and go on. */
            trl_log(TRL_LOG_WARN, "events: change %llu (%s %llu) skipped: %s",
                    (unsigned long long)ch[i].seq, ty->name, (unsigned long long)ch[i].id,
                    trl_err_token(cr));
            continue;
        }
        if (!visible) continue;
        size_t mark = st->out.len;
        if (trl_buf_printf(&st->out, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ch[i].seq,
                           action[0] ? action : "change") ||
            trl_buf_add(&st->out, st->scratch.data, st->scratch.len) ||
            trl_buf_adds(&st->out, "\n\n")) {
            if (st->out.data) st->out.data[st->out.len = mark] = 0;
            st->last = prev; /* sent next time round */
            rc = TRL_ENOMEM;
            break;
        }
    }
out:
    for (size_t i = 0; cache && i < cap; i++)
        free(cache[i].modes);
    free(cache);
    trl_txn_end(t);
    trl_wf_set_unref(wfs);
    trl_catalog_unref(cat);
    trl_diag_reset(&d);
    return rc;
}

/* The credential still holds (and who follows the user's current roles and groups). A store
 * that cannot be read now ends nothing: the check is made again at the next wake. */
static bool recheck(struct trl_stream *st)
{
    struct trl_principal who;
    memset(&who, 0, sizeof(who));
    int rc = trl_http_principal(st->srv, st->bearer, st->secret, &who);
    if (rc == TRL_EIO || rc == TRL_EUNAVAIL || rc == TRL_ENOMEM) {
        int64_t again = st->srv->ev_recheck_ms < 1000 ? st->srv->ev_recheck_ms : 1000;
        st->checked_ms = trl_mono_ms() + again - st->srv->ev_recheck_ms; /* again in a second */
        return true;
    }
    if (rc) return false;
    st->who = who;
    return true;
}

static ssize_t take(struct trl_stream *st, char *buf, size_t max)
{
    size_t n = st->out.len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.data + st->off, n);
    st->off += n;
    if (st->off == st->out.len) {
        trl_buf_clear(&st->out);
        st->off = 0;
    }
    return (ssize_t)n;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct trl_stream *st = cls;
    struct trl_server *s = st->srv;
    for (int round = 0;; round++) {
        if (st->off < st->out.len) return take(st, buf, max);
        if (st->ending || atomic_load(&s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t now = trl_mono_ms();
        if (now - st->checked_ms >= s->ev_recheck_ms) {
            st->checked_ms = now;
            if (!recheck(st)) {
                st->ending = true;
                trl_buf_adds(&st->out, ": the credential is no longer valid\n\n");
                continue;
            }
        }
        uint64_t gen = atomic_load(&s->ev_gen);
        bool more = false;
        int rc = fill(st, &more);
        if (rc)
            trl_log(TRL_LOG_WARN, "events: reading the change log failed: %s", trl_err_token(rc));
        if (!st->out.len && now - st->sent_ms >= s->ev_heartbeat_ms)
            trl_buf_adds(&st->out, ": keep-alive\n\n");
        if (st->out.len) {
            st->sent_ms = now;
            continue;
        }
        if (more && !rc && round < EV_MAX_ROUNDS) continue;
        /* Nothing to send: park until a commit, the watchdog (heartbeat, credential check; at
         * once to go on with a long scan; in a second after a failed read) or the stop wakes
         * it. */
        pthread_mutex_lock(&s->ev_lock);
        if (atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->ev_lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (atomic_load(&s->ev_gen) != gen && !more && !rc) {
            pthread_mutex_unlock(&s->ev_lock);
            continue; /* a commit was announced while it read: read again */
        }
        int64_t hb = st->sent_ms + s->ev_heartbeat_ms, ck = st->checked_ms + s->ev_recheck_ms;
        st->wake_ms = rc ? now + 1000 : more ? now : hb < ck ? hb : ck;
        st->parked = true;
        st->suspending = true;
        st->wake_pending = false;
        pthread_mutex_unlock(&s->ev_lock);
        MHD_suspend_connection(st->conn);
        pthread_mutex_lock(&s->ev_lock);
        st->suspending = false;
        bool self = st->wake_pending;
        st->wake_pending = false;
        pthread_mutex_unlock(&s->ev_lock);
        if (self) MHD_resume_connection(st->conn);
        return 0;
    }
}

static void stream_free(void *cls)
{
    struct trl_stream *st = cls;
    struct trl_server *s = st->srv;
    pthread_mutex_lock(&s->ev_lock);
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    pthread_mutex_unlock(&s->ev_lock);
    atomic_fetch_sub(&s->n_streams, 1);
    trl_buf_free(&st->out);
    trl_buf_free(&st->scratch);
    if (st->secret) {
        memset(st->secret, 0, strlen(st->secret));
        free(st->secret);
    }
    free(st->types);
    free(st);
}

/* ---------------------------------------------------------------------------------------------
 * The route
 */

/* A change sequence: 0 to 2^63-1 in decimal digits. */
static bool parse_seq(const char *s, uint64_t *out)
{
    int64_t v;
    if (s[0] == '-' || trl_parse_i64(s, strlen(s), &v)) return false;
    *out = (uint64_t)v;
    return true;
}

/* ?types=a,b: every name a type the caller has rights on (others do not exist for them). */
static bool types_arg(struct req *r, const char *types)
{
    if (!*types) goto bad;
    for (const char *p = types; *p;) {
        size_t l = strcspn(p, ",");
        char name[80];
        if (l == 0 || l >= sizeof(name)) goto bad;
        memcpy(name, p, l);
        name[l] = 0;
        const struct trl_type *ty = trl_catalog_type(r->cat, name);
        if (ty) {
            unsigned char *modes = trl_arena_alloc(&r->arena, ty->nfields + 1);
            struct trl_access a;
            if (!modes) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足"), false;
            trl_rec_access(ty, &r->who, &a, modes);
            if (a.read == TRL_SCOPE_NONE && a.create == TRL_SCOPE_NONE) ty = NULL;
        }
        if (!ty) {
            char en[160], zh[160];
            snprintf(en, sizeof(en), "types: no type '%s' is installed", name);
            snprintf(zh, sizeof(zh), "types:未安装类型“%s”", name);
            trl_http_fail(r, TRL_EQUERY, "types", en, zh);
            return false;
        }
        p += l;
        if (*p == ',' && !p[1]) goto bad;
        if (*p == ',') p++;
    }
    return true;
bad:
    trl_http_fail(r, TRL_EQUERY, "types", "types: a comma-separated list of type names",
                  "types:以逗号分隔的类型名列表");
    return false;
}

void trl_http_events(struct req *r)
{
    static const char *const args[] = {"after", "types", NULL};
    struct trl_server *s = r->srv;
    if (!trl_http_check_args(r, args)) return;
    const char *leid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *after = trl_http_arg(r, "after");
    const char *types = trl_http_arg(r, "types");
    uint64_t from = 0;
    bool have_from = false;
    /* An EventSource reconnects to the same URL (after= and all) with Last-Event-ID: the header
     * is the newer of the two. */
    if (leid) {
        if (!parse_seq(leid, &from))
            return trl_http_fail(r, TRL_EQUERY, "Last-Event-ID",
                                 "Last-Event-ID must be the id of an event (a change sequence)",
                                 "Last-Event-ID 必须是某个事件的 id(变更序号)");
        have_from = true;
    } else if (after) {
        if (!parse_seq(after, &from))
            return trl_http_fail(
                r, TRL_EQUERY, "after",
                "after must be a change sequence (a whole number, 0 for the start)",
                "after 必须是变更序号(非负整数,0 表示从头开始)");
        have_from = true;
    }
    if (types && !types_arg(r, types)) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    uint64_t last = 0;
    int rc = trl_rec_log_last(t, &last);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    /* Past the end (a store restored from an older backup): from the end. */
    if (!have_from || from > last) from = last;
    if (atomic_fetch_add(&s->n_streams, 1) >= (int)s->o.max_streams) {
        atomic_fetch_sub(&s->n_streams, 1);
        snprintf(r->retry_after, sizeof(r->retry_after), "10");
        return trl_http_fail(r, TRL_EUNAVAIL, "",
                             "too many event streams are open; try again later",
                             "打开的事件流过多,请稍后再试");
    }
    struct trl_stream *st = calloc(1, sizeof(*st));
    const char *secret = r->session[0] ? r->session : r->bearer;
    if (st) {
        st->secret = strdup(secret ? secret : "");
        st->types = types ? strdup(types) : NULL;
    }
    if (!st || !st->secret || (types && !st->types)) {
        if (st) free(st->secret), free(st->types);
        free(st);
        atomic_fetch_sub(&s->n_streams, 1);
        return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    }
    st->srv = s;
    st->conn = r->conn;
    st->who = r->who;
    st->bearer = !r->session[0];
    st->last = from;
    st->sent_ms = st->checked_ms = trl_mono_ms();
    trl_buf_init(&st->out);
    trl_buf_init(&st->scratch);
    /* EventSource waits this long before it reconnects (with Last-Event-ID). */
    trl_buf_adds(&st->out, "retry: 2000\n\n");
    r->stream = st;
    r->status = 200;
}

struct MHD_Response *trl_http_events_response(struct req *r)
{
    struct trl_stream *st = r->stream;
    struct trl_server *s = r->srv;
    r->stream = NULL;
    /* The request lives as long as the stream: it keeps no catalog (each wake takes its own). */
    trl_catalog_unref(r->cat);
    trl_wf_set_unref(r->wfs);
    r->cat = NULL;
    r->wfs = NULL;
    pthread_mutex_lock(&s->ev_lock);
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    pthread_mutex_unlock(&s->ev_lock);
    /* From here on the response owns st: stream_free runs when it is destroyed. */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, st, stream_free);
    if (!resp) {
        stream_free(st);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* proxies: do not buffer */
    /* A client that stops reading is cut after the idle timeout plus two heartbeats. */
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)(s->o.idle_timeout_s + 2 * (s->ev_heartbeat_ms / 1000)));
    return resp;
}
