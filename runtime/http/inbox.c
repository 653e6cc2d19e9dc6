/* inbox.c — the caller's in-app notifications (runtime/notify): list, unread count, one message,
 * mark one or all read. Every route acts for the authenticated caller only, administrators
 * included; another user's message answers 404 like an unknown one. Reads answer at once in a
 * read txn; marking runs in the writer thread. */
#include "http_int.h"

#include "notify/notify.h"

#include <stdio.h>
#include <string.h>

static bool only(struct req *r, const char *method)
{
    if (strcmp(r->method, method) == 0) return true;
    snprintf(r->allow, sizeof(r->allow), "%s", method);
    char en[64], zh[64];
    snprintf(en, sizeof(en), "use %s here", method);
    snprintf(zh, sizeof(zh), "此处只支持 %s", method);
    trl_http_fail(r, TRL_EMETHOD, "", en, zh);
    return false;
}

/* Marking takes no body: none, or an empty JSON object. */
static bool no_members(struct req *r)
{
    if (r->body.len == 0) return true;
    if (trl_http_parse_object(r)) return false;
    if (r->nin == 0) return true;
    char en[160], zh[160];
    snprintf(en, sizeof(en), "unknown member '%.64s' (this request takes no body)", r->in[0].name);
    snprintf(zh, sizeof(zh), "未知成员“%.64s”（此请求不需要请求体）", r->in[0].name);
    trl_http_fail(r, TRL_EVALIDATION, r->in[0].name, en, zh);
    return false;
}

static void not_found(struct req *r)
{
    trl_http_fail(r, TRL_ENOTFOUND, "id", "no such message", "不存在该消息");
}

/* GET /api/v1/inbox?unread=1&limit=&cursor= */
static void inbox_list(struct req *r)
{
    static const char *const args[] = {"unread", "limit", "cursor", NULL};
    if (!trl_http_check_args(r, args)) return;
    const char *u = trl_http_arg(r, "unread"), *l = trl_http_arg(r, "limit");
    const char *c = trl_http_arg(r, "cursor");
    bool unread = false;
    if (u) {
        if (strcmp(u, "1") == 0 || strcmp(u, "true") == 0)
            unread = true;
        else if (strcmp(u, "0") != 0 && strcmp(u, "false") != 0)
            return trl_http_fail(r, TRL_EQUERY, "unread", "unread is 1 or 0 (true or false)",
                                 "unread 只能是 1 或 0（true 或 false）");
    }
    int64_t lim = 50, cur = 0;
    if (l && (trl_parse_i64(l, strlen(l), &lim) || lim < 1 || lim > 1000))
        return trl_http_fail(r, TRL_EQUERY, "limit", "limit is 1 to 1000", "limit 为 1 到 1000");
    if (c && (trl_parse_i64(c, strlen(c), &cur) || cur < 1))
        return trl_http_fail(r, TRL_EQUERY, "cursor", "cursor is a next_cursor of a previous page",
                             "cursor 必须是上一页返回的 next_cursor");
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    int rc = trl_notify_list(t, r->who.user, unread, (size_t)lim, (uint64_t)cur, &r->out);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

/* GET /api/v1/inbox/count -> {"unread":N} */
static void inbox_count(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    uint64_t n = 0;
    int rc = trl_notify_unread(t, r->who.user, &n);
    trl_txn_end(t);
    if (!rc && trl_buf_printf(&r->out, "{\"unread\":%llu}", (unsigned long long)n)) rc = TRL_ENOMEM;
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

/* GET /api/v1/inbox/{id} */
static void inbox_get(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    int rc = trl_notify_get(t, r->who.user, r->id, &r->out);
    trl_txn_end(t);
    if (rc == TRL_ENOTFOUND) return not_found(r);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

static int exec_read(struct req *r, struct trl_txn *t)
{
    int rc = trl_notify_read(t, r->who.user, r->id, trl_clock_now(r->srv->clock));
    if (!rc) rc = trl_notify_get(t, r->who.user, r->id, &r->out);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(&r->d, rc, "no such message");
        trl_diag_zh(&r->d, "不存在该消息");
        trl_diag_field(&r->d, "id");
    }
    if (!rc) trl_http_ok(r, 200);
    return rc;
}

/* POST /api/v1/inbox/{id}/read -> the message, read */
static void inbox_read(struct req *r)
{
    if (!only(r, "POST") || !trl_http_check_args(r, (const char *const[]){NULL})) return;
    if (!no_members(r)) return;
    trl_http_queue_write(r, exec_read, false);
}

static int exec_read_all(struct req *r, struct trl_txn *t)
{
    size_t n = 0;
    int rc = trl_notify_read_all(t, r->who.user, trl_clock_now(r->srv->clock), &n);
    if (rc) return rc;
    if (trl_buf_printf(&r->out, "{\"marked\":%zu}", n)) return TRL_ENOMEM;
    trl_http_ok(r, 200);
    return 0;
}

/* POST /api/v1/inbox/read-all -> {"marked":N} */
static void inbox_read_all(struct req *r)
{
    if (!only(r, "POST") || !trl_http_check_args(r, (const char *const[]){NULL})) return;
    if (!no_members(r)) return;
    trl_http_queue_write(r, exec_read_all, false);
}

void trl_http_inbox_route(struct req *r, const char *rest)
{
    /* rest: "" | "count" | "read-all" | "{id}" | "{id}/read" */
    if (!r->who.user[0])
        return trl_http_fail(r, TRL_EAUTH, "", "an inbox belongs to a user; sign in as one",
                             "收件箱属于用户，请以用户身份登录");
    if (!*rest) {
        if (only(r, "GET")) inbox_list(r);
        return;
    }
    if (strcmp(rest, "count") == 0) {
        if (only(r, "GET")) inbox_count(r);
        return;
    }
    if (strcmp(rest, "read-all") == 0) return inbox_read_all(r);
    const char *slash = strchr(rest, '/');
    size_t il = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!trl_http_parse_id(rest, il, &r->id)) return not_found(r);
    if (!slash) {
        if (only(r, "GET")) inbox_get(r);
        return;
    }
    if (strcmp(slash + 1, "read") == 0) return inbox_read(r);
    trl_http_fail(r, TRL_ENOTFOUND, "", "no such resource", "不存在该资源");
}
