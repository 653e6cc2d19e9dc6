/* approvals.c — approval inboxes and decisions, out-of-office rules, groups, and the record's
 * approval routes (recall, list). Reads answer at once; writes run in the writer thread. */
#include "http_int.h"

#include "auth/auth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decision request prepared on the HTTP thread (lives in the request arena). */
struct decision_req {
    enum trl_appr_decision decision;
    char comment[2048];
    char to[64];
};

/* Reads the string members of r->json named in keys (others are refused naming the field) into
 * outs (cap bytes each). false with the problem filled. */
static bool string_members(struct req *r, const char *const *keys, char **outs, const size_t *cap,
                           size_t n)
{
    if (r->body.len == 0) return true;
    if (trl_http_parse_object(r)) return false;
    for (const cJSON *it = ((const cJSON *)r->json)->child; it; it = it->next) {
        size_t k = 0;
        while (k < n && strcmp(keys[k], it->string) != 0)
            k++;
        if (k == n) {
            char en[160], zh[160];
            snprintf(en, sizeof(en), "unknown member '%.64s'", it->string);
            snprintf(zh, sizeof(zh), "未知成员“%.64s”", it->string);
            trl_http_fail(r, TRL_EVALIDATION, it->string, en, zh);
            return false;
        }
        if (cJSON_IsNull(it)) continue;
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= cap[k]) {
            char en[160], zh[160];
            snprintf(en, sizeof(en), "%s must be a string of at most %zu bytes", keys[k],
                     cap[k] - 1);
            snprintf(zh, sizeof(zh), "%s 必须是不超过 %zu 字节的字符串", keys[k], cap[k] - 1);
            trl_http_fail(r, TRL_EVALIDATION, keys[k], en, zh);
            return false;
        }
        snprintf(outs[k], cap[k], "%s", it->valuestring);
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Inbox: GET /api/v1/approvals?assignee=me&status=pending&limit=&cursor=
 */
static void approvals_list(struct req *r)
{
    static const char *const args[] = {"assignee", "status", "limit", "cursor", NULL};
    if (!trl_http_check_args(r, args)) return;
    const char *as = trl_http_arg(r, "assignee"), *st = trl_http_arg(r, "status");
    const char *l = trl_http_arg(r, "limit"), *c = trl_http_arg(r, "cursor");
    const char *user = r->who.user;
    if (as && strcmp(as, "me") != 0) {
        if (!r->who.admin && strcmp(as, r->who.user) != 0)
            return trl_http_fail(r, TRL_EFORBIDDEN, "assignee",
                                 "only administrators may read another user's approvals",
                                 "只有管理员可以查看其他用户的审批");
        user = as;
    }
    if (st && strcmp(st, "pending") != 0 && strcmp(st, "done") != 0)
        return trl_http_fail(r, TRL_EQUERY, "status", "status is pending or done",
                             "status 只能是 pending 或 done");
    int64_t lim = 50, cur = 0;
    if (l && (trl_parse_i64(l, strlen(l), &lim) || lim < 1 || lim > 1000))
        return trl_http_fail(r, TRL_EQUERY, "limit", "limit is 1 to 1000", "limit 为 1 到 1000");
    if (c && (trl_parse_i64(c, strlen(c), &cur) || cur < 1))
        return trl_http_fail(r, TRL_EQUERY, "cursor", "cursor is a next_cursor of a previous page",
                             "cursor 必须是上一页返回的 next_cursor");
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    int rc = trl_appr_list(t, user, !st || strcmp(st, "pending") == 0, (size_t)lim, (uint64_t)cur,
                           &r->out);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

/* A task exists for the caller when it is theirs, they are an administrator, or they may read
 * its record: 0, or TRL_ENOTFOUND (answered exactly like an unknown id, so that another org's
 * task ids reveal nothing). */
static int task_visible(struct req *r, struct trl_txn *t, const struct trl_appr_result *info)
{
    if (r->who.admin || strcmp(info->assignee, r->who.user) == 0) return 0;
    const struct trl_type *ty = trl_catalog_type(r->cat, info->type);
    unsigned char *modes = ty ? trl_arena_alloc(&r->arena, ty->nfields + 1) : NULL;
    if (!modes) return TRL_ENOTFOUND;
    struct trl_access acc;
    trl_rec_access(ty, &r->who, &acc, modes);
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    cx.acc = &acc;
    int rc = trl_rec_visible(t, &cx, ty, info->record);
    trl_diag_reset(&r->d);
    return rc == TRL_ENOTFOUND || rc == TRL_EFORBIDDEN ? TRL_ENOTFOUND : rc;
}

/* GET /api/v1/approvals/{id}: its assignee, an administrator, or whoever may read the record. */
static void approvals_get(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    struct trl_appr_result info;
    int rc = trl_appr_task_info(t, r->id, &info);
    if (!rc) rc = task_visible(r, t, &info);
    if (!rc) rc = trl_appr_task_json(t, r->id, &r->out);
    trl_txn_end(t);
    if (rc == TRL_ENOTFOUND)
        return trl_http_fail(r, TRL_ENOTFOUND, "id", "no such approval task", "不存在该审批任务");
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

static int exec_decide(struct req *r, struct trl_txn *t)
{
    const struct decision_req *dr = r->aux;
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    struct trl_wf_decision dec = {.task = r->id,
                                  .decision = dr->decision,
                                  .comment = dr->comment[0] ? dr->comment : NULL,
                                  .to = dr->to[0] ? dr->to : NULL};
    /* Someone who may not see the task learns nothing from deciding it: "no such task". */
    struct trl_appr_result info;
    int rc = trl_appr_task_info(t, r->id, &info);
    if (!rc && (rc = task_visible(r, t, &info)) == TRL_ENOTFOUND) {
        trl_diag_set(&r->d, TRL_ENOTFOUND, "no approval task %llu", (unsigned long long)r->id);
        trl_diag_zh(&r->d, "审批任务 %llu 不存在", (unsigned long long)r->id);
        return rc;
    }
    if (rc && rc != TRL_ENOTFOUND) return rc;
    rc = trl_wf_decide(t, &cx, r->wfs, &dec, &r->out);
    if (!rc) trl_http_ok(r, 200);
    return rc;
}

/* POST /api/v1/approvals/{id}/{approve|reject|return|delegate} {"comment": .., "to": ..} */
static void approvals_decide(struct req *r, const char *verb)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    static const char *const verbs[] = {"approve", "reject", "return", "delegate"};
    size_t v = 0;
    while (v < 4 && strcmp(verbs[v], verb) != 0)
        v++;
    if (v == 4)
        return trl_http_fail(r, TRL_ENOTFOUND, "decision",
                             "no such decision (approve, reject, return, delegate)",
                             "不存在该操作(approve、reject、return、delegate)");
    if (strcmp(r->method, "POST") != 0) {
        snprintf(r->allow, sizeof(r->allow), "POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use POST here", "此处只支持 POST");
    }
    struct decision_req *dr = trl_arena_alloc(&r->arena, sizeof(*dr));
    if (!dr) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(dr, 0, sizeof(*dr));
    dr->decision = (enum trl_appr_decision)v;
    static const char *const keys[] = {"comment", "to"};
    char *outs[] = {dr->comment, dr->to};
    const size_t caps[] = {sizeof(dr->comment), sizeof(dr->to)};
    if (!string_members(r, keys, outs, caps, v == TRL_DECIDE_DELEGATE ? 2 : 1)) return;
    if (!trl_utf8_valid(dr->comment, strlen(dr->comment)))
        return trl_http_fail(r, TRL_EVALIDATION, "comment", "comment is not valid UTF-8",
                             "comment 不是有效的 UTF-8");
    r->aux = dr;
    trl_http_queue_write(r, exec_decide, false);
}

/* ---------------------------------------------------------------------------------------------
 * Out of office: GET/PUT/DELETE /api/v1/approvals/out-of-office[?user=NAME]
 */
static int exec_ooo(struct req *r, struct trl_txn *t)
{
    struct trl_appr_ooo *o = r->aux;
    int64_t now = trl_clock_now(r->srv->clock);
    if (strcmp(r->method, "DELETE") == 0) {
        int rc = trl_appr_ooo_delete(t, o->user);
        if (rc == TRL_ENOTFOUND) {
            trl_diag_set(&r->d, rc, "%s has no out-of-office rule", o->user);
            trl_diag_zh(&r->d, "%s 没有外出委托规则", o->user);
        }
        if (!rc) trl_http_ok(r, 204);
        return rc;
    }
    size_t moved = 0;
    int rc = trl_appr_ooo_put(t, o, now, &moved, &r->d);
    if (rc) return rc;
    if (trl_appr_ooo_json(o, &r->out)) return TRL_ENOMEM;
    r->out.len--; /* reopen the object */
    if (trl_buf_printf(&r->out, ",\"active\":%s,\"moved_tasks\":%zu}",
                       now >= o->from_ms && now < o->until_ms ? "true" : "false", moved))
        return TRL_ENOMEM;
    trl_http_ok(r, 200);
    return 0;
}

static void out_of_office(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){"user", NULL})) return;
    const char *u = trl_http_arg(r, "user");
    if (u && strcmp(u, r->who.user) != 0 && !r->who.admin)
        return trl_http_fail(r, TRL_EFORBIDDEN, "user",
                             "only administrators may set another user's out-of-office rule",
                             "只有管理员可以设置其他用户的外出委托");
    if (!u) u = r->who.user;
    if (!*u)
        return trl_http_fail(r, TRL_EINVAL, "user", "name the user (?user=NAME)",
                             "请指定用户(?user=NAME)");
    struct trl_appr_ooo *o = trl_arena_alloc(&r->arena, sizeof(*o));
    if (!o) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(o, 0, sizeof(*o));
    snprintf(o->user, sizeof(o->user), "%s", u);
    if (strcmp(r->method, "GET") == 0) {
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        int rc = trl_appr_ooo_get(t, u, o);
        trl_txn_end(t);
        if (rc == TRL_ENOTFOUND)
            return trl_http_fail(r, rc, "", "no out-of-office rule", "没有外出委托规则");
        if (rc || trl_appr_ooo_json(o, &r->out)) return trl_http_fail_d(r, rc ? rc : TRL_ENOMEM);
        return trl_http_ok(r, 200);
    }
    if (strcmp(r->method, "DELETE") == 0) {
        r->aux = o;
        return trl_http_queue_write(r, exec_ooo, false);
    }
    if (strcmp(r->method, "PUT") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                             "此处只支持 GET、PUT 或 DELETE");
    }
    char from[64] = "", until[64] = "";
    static const char *const keys[] = {"delegate", "from", "until", "note"};
    char *outs[] = {o->delegate, from, until, o->note};
    const size_t caps[] = {sizeof(o->delegate), sizeof(from), sizeof(until), sizeof(o->note)};
    if (!string_members(r, keys, outs, caps, 4)) return;
    const char *missing = !o->delegate[0] ? "delegate"
                          : !from[0]      ? "from"
                          : !until[0]     ? "until"
                                          : NULL;
    if (missing) {
        trl_diag_add_ferr(&r->d, missing, "required", "");
        return trl_http_fail(r, TRL_EVALIDATION, missing,
                             "give delegate, from and until (RFC 3339 times)",
                             "请提供 delegate、from 和 until(RFC 3339 时间)");
    }
    if (trl_datetime_parse(from, strlen(from), &o->from_ms))
        return trl_http_fail(r, TRL_EVALIDATION, "from", "from must be an RFC 3339 time",
                             "from 必须是 RFC 3339 时间");
    if (trl_datetime_parse(until, strlen(until), &o->until_ms))
        return trl_http_fail(r, TRL_EVALIDATION, "until", "until must be an RFC 3339 time",
                             "until 必须是 RFC 3339 时间");
    r->aux = o;
    trl_http_queue_write(r, exec_ooo, false);
}

void trl_http_approvals_route(struct req *r, const char *rest)
{
    /* rest: "" | "out-of-office" | "{id}" | "{id}/{decision}" */
    if (!*rest) return trl_http_one_method(r, "GET", approvals_list);
    if (strcmp(rest, "out-of-office") == 0) return out_of_office(r);
    const char *slash = strchr(rest, '/');
    size_t il = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!trl_http_parse_id(rest, il, &r->id))
        return trl_http_fail(r, TRL_ENOTFOUND, "id", "no such approval task", "不存在该审批任务");
    if (!slash) return trl_http_one_method(r, "GET", approvals_get);
    if (strchr(slash + 1, '/'))
        return trl_http_fail(r, TRL_ENOTFOUND, "", "no such resource", "不存在该资源");
    approvals_decide(r, slash + 1);
}

/* ---------------------------------------------------------------------------------------------
 * Record routes: GET .../{id}/approvals, POST .../{id}/recall
 */
void trl_http_record_approvals(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (trl_http_read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    int rc = trl_rec_visible(t, &cx, r->ty, r->id);
    if (!rc) rc = trl_appr_record_json(t, r->ty->name, r->id, &r->out);
    trl_txn_end(t);
    if (rc) return trl_http_fail_d(r, rc);
    trl_http_ok(r, 200);
}

static int exec_recall(struct req *r, struct trl_txn *t)
{
    const struct trl_workflow *w = trl_wf_by_type(r->wfs, r->ty->name);
    if (!w) {
        trl_diag_set(&r->d, TRL_ENOTFOUND, "type %s has no workflow", r->ty->name);
        trl_diag_zh(&r->d, "类型 %s 没有工作流", r->ty->name);
        return TRL_ENOTFOUND;
    }
    struct trl_rec_ctx cx;
    trl_http_rec_ctx(r, &cx);
    int rc = trl_wf_recall(t, &cx, r->ty, w, r->id, r->aux, &r->out);
    if (!rc) trl_http_ok(r, 200);
    return rc;
}

void trl_http_record_recall(struct req *r)
{
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    char *comment = trl_arena_alloc(&r->arena, 2048);
    if (!comment) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    comment[0] = 0;
    static const char *const keys[] = {"comment"};
    char *outs[] = {comment};
    const size_t caps[] = {2048};
    if (!string_members(r, keys, outs, caps, 1)) return;
    r->aux = comment[0] ? comment : NULL;
    r->type_name = strdup(r->ty->name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    trl_http_queue_write(r, exec_recall, false);
}

/* ---------------------------------------------------------------------------------------------
 * Groups (administrators): GET /api/v1/groups, GET/PUT/DELETE /api/v1/groups/{name}
 */
static int exec_group(struct req *r, struct trl_txn *t)
{
    struct trl_group *g = r->aux;
    int rc;
    if (strcmp(r->method, "DELETE") == 0) {
        rc = trl_auth_group_delete(t, g->name);
        if (rc == TRL_ENOTFOUND) {
            trl_diag_set(&r->d, rc, "no group '%s'", g->name);
            trl_diag_zh(&r->d, "不存在组“%s”", g->name);
        }
        if (!rc) trl_http_ok(r, 204);
        return rc;
    }
    if ((rc = trl_auth_group_put(t, g, &r->d))) return rc;
    if (trl_buf_adds(&r->out, "{\"name\":") ||
        trl_buf_add_json_str(&r->out, g->name, strlen(g->name)) ||
        trl_buf_printf(&r->out, ",\"members\":%zu}", g->nmembers))
        return TRL_ENOMEM;
    trl_http_ok(r, 200);
    return 0;
}

void trl_http_groups_route(struct req *r, const char *name)
{
    if (!trl_http_admin_only(r)) return;
    if (!trl_http_check_args(r, (const char *const[]){NULL})) return;
    if (!*name) {
        if (!trl_http_method(r, "GET")) return;
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        int rc = trl_buf_adds(&r->out, "{\"items\":") ? TRL_ENOMEM : 0;
        if (!rc) rc = trl_auth_group_list(t, &r->out);
        trl_txn_end(t);
        if (!rc && trl_buf_addc(&r->out, '}')) rc = TRL_ENOMEM;
        if (rc) return trl_http_fail_d(r, rc);
        return trl_http_ok(r, 200);
    }
    struct trl_group *g = trl_arena_alloc(&r->arena, sizeof(*g));
    if (!g) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(g, 0, sizeof(*g));
    if (strlen(name) >= sizeof(g->name))
        return trl_http_fail(r, TRL_ENOTFOUND, "name", "no such group", "不存在该组");
    snprintf(g->name, sizeof(g->name), "%s", name);
    if (strcmp(r->method, "GET") == 0) {
        struct trl_txn *t;
        if (trl_http_read_begin(r, &t)) return;
        int rc = trl_auth_group_get(t, name, g);
        trl_txn_end(t);
        if (rc == TRL_ENOTFOUND) return trl_http_fail(r, rc, "name", "no such group", "不存在该组");
        if (rc) return trl_http_fail_d(r, rc);
        int e = trl_buf_adds(&r->out, "{\"name\":") ||
                trl_buf_add_json_str(&r->out, g->name, strlen(g->name)) ||
                trl_buf_adds(&r->out, ",\"labels\":{\"en\":") ||
                trl_buf_add_json_str(&r->out, g->label_en, strlen(g->label_en)) ||
                trl_buf_adds(&r->out, ",\"zh-CN\":") ||
                trl_buf_add_json_str(&r->out, g->label_zh, strlen(g->label_zh)) ||
                trl_buf_adds(&r->out, "},\"members\":[");
        for (size_t i = 0; i < g->nmembers && !e; i++)
            e = (i && trl_buf_addc(&r->out, ',')) ||
                trl_buf_add_json_str(&r->out, g->members[i], strlen(g->members[i]));
        if (e || trl_buf_adds(&r->out, "]}")) return trl_http_fail_d(r, TRL_ENOMEM);
        return trl_http_ok(r, 200);
    }
    if (strcmp(r->method, "DELETE") == 0) {
        r->aux = g;
        return trl_http_queue_write(r, exec_group, false);
    }
    if (strcmp(r->method, "PUT") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                             "此处只支持 GET、PUT 或 DELETE");
    }
    if (trl_http_parse_object(r)) return;
    const cJSON *j = r->json;
    for (const cJSON *it = j->child; it; it = it->next)
        if (strcmp(it->string, "name") && strcmp(it->string, "labels") &&
            strcmp(it->string, "members")) {
            char en[160], zh[160];
            snprintf(en, sizeof(en), "unknown member '%.64s' (a group has name, labels, members)",
                     it->string);
            snprintf(zh, sizeof(zh), "未知成员“%.64s”(组只有 name、labels、members)", it->string);
            return trl_http_fail(r, TRL_EVALIDATION, it->string, en, zh);
        }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (nm && (!cJSON_IsString(nm) || strcmp(nm->valuestring, name) != 0))
        return trl_http_fail(r, TRL_EVALIDATION, "name", "name must match the URL",
                             "name 必须与 URL 一致");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "labels");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(l, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(l, "zh-CN");
    if ((l && !cJSON_IsObject(l)) || (en && !cJSON_IsString(en)) || (zh && !cJSON_IsString(zh)))
        return trl_http_fail(r, TRL_EVALIDATION, "labels",
                             "labels is {\"en\": text, \"zh-CN\": text}",
                             "labels 必须是 {\"en\": 文本, \"zh-CN\": 文本}");
    if (cJSON_IsString(en)) snprintf(g->label_en, sizeof(g->label_en), "%s", en->valuestring);
    if (cJSON_IsString(zh)) snprintf(g->label_zh, sizeof(g->label_zh), "%s", zh->valuestring);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "members");
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) > TRL_AUTH_MAX_MEMBERS)
        return trl_http_fail(r, TRL_EVALIDATION, "members", "members is an array of user names",
                             "members 必须是用户名数组");
    for (const cJSON *it = m->child; it; it = it->next) {
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= 64)
            return trl_http_fail(r, TRL_EVALIDATION, "members", "members are user names",
                                 "members 必须是用户名");
        snprintf(g->members[g->nmembers++], 64, "%s", it->valuestring);
    }
    r->aux = g;
    trl_http_queue_write(r, exec_group, false);
}
