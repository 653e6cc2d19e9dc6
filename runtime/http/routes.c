/* routes.c — the v1 routes: records, history, meta types and apps, files, openapi, health,
 * metrics. Reads answer at once; writes are prepared here and executed in the writer thread. */
#include "http_int.h"

#include "auth/auth.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */
static void ok_json(struct req *r, int status)
{
    r->status = status;
    r->ctype = "application/json";
}

static void fail_d(struct req *r, int rc)
{
    if (!r->d.code) trl_diag_set(&r->d, rc, "%s", trl_err_title(rc, "en"));
    trl_http_problem(r);
}

static bool parse_id(const char *s, size_t n, uint64_t *id)
{
    if (n == 0 || n > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0) return false;
    *id = v;
    return true;
}

static void rec_ctx(struct req *r, struct trl_rec_ctx *cx)
{
    memset(cx, 0, sizeof(*cx));
    cx->acc = r->acc.fields ? &r->acc : NULL;
    cx->cat = r->cat;
    cx->who = &r->who;
    cx->now_ms = trl_clock_now(r->srv->clock);
    cx->request_id = r->request_id;
    cx->lang = r->lang;
    cx->d = &r->d;
    cx->max_scan = r->srv->o.max_scan;
    if (!r->hb.eng && r->srv->hooks) {
        /* A read: hooks it fires (computed fields) may read but not write. */
        trl_hooks_bind_init(&r->hb, r->srv->hooks, r->cat, r->wfs);
        r->hb.read_only = true;
    }
    cx->ev = r->hb.eng ? &r->hb.ev : NULL;
}

static const char *arg(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Refuses unknown query parameters: a typo must not silently list everything. */
struct argcheck {
    const char *const *allowed;
    char bad[64];
};

static enum MHD_Result argcheck_it(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind, (void)value;
    struct argcheck *a = cls;
    for (const char *const *p = a->allowed; *p; p++)
        if (strcmp(*p, key) == 0) return MHD_YES;
    snprintf(a->bad, sizeof(a->bad), "%s", key);
    return MHD_NO;
}

static bool check_args(struct req *r, const char *const *allowed)
{
    struct argcheck a = {.allowed = allowed};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, argcheck_it, &a);
    if (!a.bad[0]) return true;
    char en[160], zh[160];
    snprintf(en, sizeof(en), "unknown query parameter '%s'", a.bad);
    snprintf(zh, sizeof(zh), "未知的查询参数“%s”", a.bad);
    trl_http_fail(r, TRL_EQUERY, a.bad, en, zh);
    return false;
}

/* If-Match: "N" (strong), or * (any existing record). A weak tag never matches (RFC 9110
 * §13.1.1 uses the strong comparison): it is answered like a stale one. */
static uint64_t if_match(struct req *r, bool *bad)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-Match");
    *bad = false;
    if (!h) return 0;
    size_t n = strlen(h);
    if (n == 1 && h[0] == '*') return 0;
    if (n >= 4 && strncmp(h, "W/\"", 3) == 0 && h[n - 1] == '"') return UINT64_MAX;
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') h++, n -= 2;
    uint64_t v;
    if (!parse_id(h, n, &v)) {
        *bad = true;
        return 0;
    }
    return v;
}

/* The caller's rights on r->ty (record routes; again in the writer, whose catalog may be
 * newer). 0 or TRL_ENOMEM. */
static int compute_access(struct req *r)
{
    unsigned char *modes = trl_arena_alloc(&r->arena, r->ty->nfields + 1);
    if (!modes) return TRL_ENOMEM;
    trl_rec_access(r->ty, &r->who, &r->acc, modes);
    return 0;
}

static int read_begin(struct req *r, struct trl_txn **t)
{
    int rc = trl_store_read(r->srv->store, t);
    if (rc) trl_http_fail(r, rc, "", "the store cannot be read now", "暂时无法读取存储");
    return rc;
}

static void set_etag(struct req *r, uint64_t version)
{
    snprintf(r->etag, sizeof(r->etag), "\"%llu\"", (unsigned long long)version);
}

static void queue_write(struct req *r, write_exec_fn exec, bool barrier)
{
    r->exec = exec;
    r->job.barrier = barrier;
    r->suspended = true;
}

/* ---------------------------------------------------------------------------------------------
 * Writes (run in the writer thread)
 */
int trl_http_job_fn(struct trl_txn *t, void *arg)
{
    struct req *r = arg;
    /* A batch may rerun after map growth: start clean each time. */
    trl_buf_clear(&r->out);
    trl_diag_reset(&r->d);
    r->etag[0] = r->location[0] = 0;
    r->status = 0;
    /* The writer sees the newest catalog (it is the only thread that changes it). */
    struct trl_catalog *cur;
    struct trl_wf_set *curw;
    trl_http_snapshot(r->srv, &cur, &curw);
    trl_catalog_unref(r->cat);
    trl_wf_set_unref(r->wfs);
    r->cat = cur;
    r->wfs = curw;
    if (r->ty && r->type_name) { /* record operations: the type must still exist */
        r->ty = trl_catalog_type(r->cat, r->type_name);
        if (r->ty && r->acc.fields && compute_access(r)) return TRL_ENOMEM;
        if (!r->ty) {
            trl_diag_set(&r->d, TRL_ENOTFOUND, "no type '%s'", r->type_name);
            trl_diag_zh(&r->d, "不存在类型“%s”", r->type_name);
        }
    }
    /* Hooks fired by the job run in this thread's lent VM, returned when the job ends. */
    trl_hooks_bind_done(&r->hb); /* a binding the request's read part used */
    trl_hooks_bind_init(&r->hb, r->srv->hooks, r->cat, r->wfs);
    int rc = r->d.code ? r->d.code : r->exec(r, t);
    trl_hooks_bind_done(&r->hb);
    memset(&r->hb, 0, sizeof(r->hb));
    if (rc && rc != TRL_EMAPFULL) {
        if (!r->d.code) trl_diag_set(&r->d, rc, "%s", trl_err_title(rc, "en"));
        trl_http_problem(r);
    }
    return rc;
}

static void fingerprint(struct req *r, char *out)
{
    unsigned char h[32];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)r->method, strlen(r->method));
    crypto_hash_sha256_update(&st, (const unsigned char *)r->url, strlen(r->url));
    crypto_hash_sha256_update(&st, (const unsigned char *)(r->body.data ? r->body.data : ""),
                              r->body.len);
    crypto_hash_sha256_final(&st, h);
    trl_hex(h, 32, out);
}

/* Idempotency-Key: when r carries a key already used by this user, answers again with the first
 * response (*replayed) or refuses a different request under the same key. fp receives the
 * request's fingerprint for idem_store. */
static int idem_replay(struct req *r, struct trl_txn *t, int64_t now_ms, char fp[65],
                       bool *replayed)
{
    *replayed = false;
    if (!r->idem_key) return 0;
    bool found;
    struct trl_idem e;
    fingerprint(r, fp);
    int rc = trl_idem_get(t, r->who.user, r->idem_key, now_ms, &found, &e);
    if (rc || !found) return rc;
    bool same = strcmp(e.fingerprint, fp) == 0;
    if (same) {
        /* The first answer, again; nothing is written. */
        r->status = e.status;
        r->ctype = "application/json";
        trl_buf_adds(&r->out, e.body);
    }
    trl_idem_free(&e);
    if (!same) {
        trl_diag_set(&r->d, TRL_EVALIDATION,
                     "Idempotency-Key '%s' was already used for a different request", r->idem_key);
        trl_diag_zh(&r->d, "幂等键“%s”已用于另一个不同的请求", r->idem_key);
        trl_diag_field(&r->d, "Idempotency-Key");
        return TRL_EVALIDATION;
    }
    *replayed = true;
    return 0;
}

/* Stores the answer just made under r's Idempotency-Key (none: nothing to do). */
static int idem_store(struct req *r, struct trl_txn *t, int64_t now_ms, char fp[65])
{
    if (!r->idem_key) return 0;
    struct trl_idem e = {.status = r->status, .body = r->out.data, .fingerprint = fp};
    return trl_idem_put(t, r->who.user, r->idem_key, now_ms, &e);
}

/* Reads the Idempotency-Key header into r->idem_key; false after answering a bad one. */
static bool idem_header(struct req *r)
{
    const char *ik = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (!ik) return true;
    size_t n = strlen(ik);
    bool ok = n > 0 && n <= 128 && trl_utf8_valid(ik, n);
    for (size_t i = 0; i < n && ok; i++)
        ok = (unsigned char)ik[i] >= 0x20;
    if (!ok) {
        trl_http_fail(r, TRL_EINVAL, "Idempotency-Key",
                      "Idempotency-Key must be 1 to 128 printable characters",
                      "Idempotency-Key 必须是 1 到 128 个可打印字符");
        return false;
    }
    r->idem_key = strdup(ik);
    if (!r->idem_key) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足"), false;
    return true;
}

static int exec_create(struct req *r, struct trl_txn *t)
{
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    char fp[65];
    bool replayed;
    int rc = idem_replay(r, t, cx.now_ms, fp, &replayed);
    if (rc || replayed) {
        const char *idp = replayed ? strstr(r->out.data, "\"id\":") : NULL;
        if (idp)
            snprintf(r->location, sizeof(r->location), "/api/v1/records/%s/%llu", r->type_name,
                     strtoull(idp + 5, NULL, 10));
        return rc;
    }
    uint64_t id;
    uint64_t version;
    if ((rc = trl_wf_rec_create(t, &cx, r->wfs, r->ty, r->in, r->nin, &id, &version, &r->out)))
        return rc;
    ok_json(r, 201);
    set_etag(r, version);
    snprintf(r->location, sizeof(r->location), "/api/v1/records/%s/%llu", r->ty->name,
             (unsigned long long)id);
    return idem_store(r, t, cx.now_ms, fp);
}

static int exec_patch(struct req *r, struct trl_txn *t)
{
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    int rc = trl_wf_rec_patch(t, &cx, r->wfs, r->ty, r->id, r->if_match, r->in, r->nin, &r->out);
    if (rc) return rc;
    ok_json(r, 200);
    /* The version is in the body; read it back for the ETag. */
    const char *v = strstr(r->out.data, "\"version\":");
    if (v) set_etag(r, strtoull(v + 10, NULL, 10));
    return 0;
}

static int exec_delete(struct req *r, struct trl_txn *t)
{
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    int rc = trl_wf_rec_delete(t, &cx, r->wfs, r->ty, r->id, r->if_match);
    if (rc) return rc;
    r->status = 204;
    return 0;
}

static int exec_put_type(struct req *r, struct trl_txn *t)
{
    bool changed;
    const char *name = r->type_name;
    bool existed = trl_catalog_type(r->cat, name) != NULL;
    r->ty = NULL;
    /* NULL: a type keeps the app it belongs to, so `app export` still writes it. */
    int rc = trl_schema_put_type(t, name, r->body.data, r->body.len, NULL, &changed, &r->d);
    if (!rc && changed) rc = trl_wf_check_all(t, &r->d);
    if (rc) return rc;
    char *def = NULL;
    if ((rc = trl_meta_get(t, "type", name, &def))) return rc;
    trl_buf_adds(&r->out, def);
    free(def);
    ok_json(r, existed ? 200 : 201);
    (void)changed;
    if (!existed) snprintf(r->location, sizeof(r->location), "/api/v1/meta/types/%s", name);
    return 0;
}

static int exec_delete_type(struct req *r, struct trl_txn *t)
{
    int rc = trl_schema_delete_type(t, r->type_name, &r->d);
    if (!rc) rc = trl_wf_check_all(t, &r->d);
    if (rc) return rc;
    r->status = 204;
    return 0;
}

struct file_meta {
    char sha[65];
    uint64_t size;
    char media[128];
};

static int exec_file(struct req *r, struct trl_txn *t)
{
    struct file_meta *fm = r->aux; /* filled by files_upload */
    struct trl_buf v;
    trl_buf_init(&v);
    int rc = trl_buf_add_u64be(&v, fm->size) || trl_buf_adds(&v, fm->media) ||
             trl_buf_addc(&v, 0) || trl_buf_adds(&v, r->who.user);
    if (rc)
        rc = TRL_ENOMEM;
    else
        rc = trl_txn_put(t, TRL_DB_FILES, fm->sha, 64, v.data, v.len, 0);
    trl_buf_free(&v);
    if (rc) return rc;
    ok_json(r, 201);
    trl_buf_printf(&r->out, "{\"id\":\"%s\",\"size\":%llu,\"media_type\":", fm->sha,
                   (unsigned long long)fm->size);
    trl_buf_add_json_str(&r->out, fm->media, strlen(fm->media));
    trl_buf_addc(&r->out, '}');
    snprintf(r->location, sizeof(r->location), "/api/v1/files/%s", fm->sha);
    return 0;
}

/* Answers {"items": <what fn appends>} from a read txn. */
static void list_items(struct req *r, int (*fn)(struct trl_txn *, struct trl_buf *))
{
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    int rc = trl_buf_adds(&r->out, "{\"items\":");
    if (!rc) rc = fn(t, &r->out);
    trl_txn_end(t);
    if (!rc) rc = trl_buf_addc(&r->out, '}');
    if (rc) return fail_d(r, rc);
    ok_json(r, 200);
}

/* ---------------------------------------------------------------------------------------------
 * Records
 */
static const char *const list_args[] = {"filter", "sort",   "limit",  "cursor", "count",
                                        "fields", "expand", "render", "format", NULL};
static const char *const get_args[] = {"fields", "expand", "render", NULL};

/* fields= and expand= must name columns of the type (expand: ref fields). */
static bool names_arg(struct req *r, const char *param, bool refs_only)
{
    static const char *sys[] = {"id",         "type",       "name",      "version",
                                "state",      "owner",      "org",       "created_at",
                                "created_by", "updated_at", "updated_by"};
    const char *v = arg(r, param);
    if (!v) return true;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        const struct trl_field *f = trl_type_field(r->ty, p, n);
        bool seen = f && (!r->acc.fields || r->acc.fields[f - r->ty->fields] != TRL_FIELD_HIDDEN);
        bool ok = refs_only ? (seen && f->type == TRL_FT_REF) : seen;
        for (size_t i = 0; !refs_only && !ok && i < sizeof(sys) / sizeof(sys[0]); i++)
            ok = strlen(sys[i]) == n && strncmp(sys[i], p, n) == 0;
        if (!ok) {
            char en[200], zh[200];
            snprintf(en, sizeof(en), "%s: '%.*s' is not %s of %s", param, (int)(n < 64 ? n : 64), p,
                     refs_only ? "a ref field" : "a field", r->ty->name);
            snprintf(zh, sizeof(zh), "%s:“%.*s”不是 %s 的%s", param, (int)(n < 64 ? n : 64), p,
                     r->ty->name, refs_only ? "引用字段" : "字段");
            trl_http_fail(r, TRL_EQUERY, param, en, zh);
            return false;
        }
        p += n;
        if (*p == ',') p++;
    }
    return true;
}

static bool render_arg(struct req *r, bool *html)
{
    if (!names_arg(r, "fields", false) || !names_arg(r, "expand", true)) return false;
    const char *render = arg(r, "render");
    *html = false;
    if (!render) return true;
    if (strcmp(render, "html") == 0) {
        *html = true;
        return true;
    }
    trl_http_fail(r, TRL_EQUERY, "render", "render: the only value is 'html'",
                  "render:唯一可用的值是 html");
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * CSV export of a listing (`?format=csv` or `Accept: text/csv`): every matching record the caller
 * may read, newest first by default, in one read txn, at most --export-max-rows (default
 * 100,000; more is refused before anything is sent). UTF-8 with a BOM (Excel on Chinese Windows), a
 * header of labels in the caller's language, enum values and states by their labels, and no column
 * the caller may not read.
 */

struct csv_col {
    const char *key;           /* member of the record's JSON */
    const struct trl_field *f; /* the field, or NULL for a system column */
    const char *label_en, *label_zh;
};

static const char *state_label(const struct trl_workflow *w, const char *st, bool zh)
{
    for (size_t i = 0; w && i < w->nstates; i++)
        if (strcmp(w->states[i].name, st) == 0) {
            const char *l = zh ? w->states[i].labels.zh : w->states[i].labels.en;
            return l && *l ? l : st;
        }
    return st;
}

/* One cell from the raw JSON text of a record member (NULL: absent). Numbers are copied as
 * they are (cJSON would hold them as doubles and change integers past 2^53), strings and JSON
 * values are decoded by cJSON, enum values and states are shown by their labels. */
static int csv_value(struct trl_buf *out, const struct csv_col *c, const char *v, size_t vn,
                     const struct trl_workflow *w, bool zh)
{
    if (!v || (vn == 4 && memcmp(v, "null", 4) == 0)) return 0;
    if (*v != '"' && *v != '{' && *v != '[') return trl_buf_add(out, v, vn); /* number, bool */
    cJSON *j = cJSON_ParseWithLength(v, vn);
    if (!j) return TRL_ECORRUPT;
    int rc;
    if (cJSON_IsString(j)) {
        const char *s = j->valuestring;
        if (c->f && c->f->type == TRL_FT_ENUM)
            for (size_t o = 0; o < c->f->noptions; o++)
                if (strcmp(c->f->options[o].value, s) == 0) {
                    const char *l = zh ? c->f->options[o].labels.zh : c->f->options[o].labels.en;
                    if (l && *l) s = l;
                    break;
                }
        if (!c->f && strcmp(c->key, "state") == 0) s = state_label(w, s, zh);
        rc = trl_buf_add_csv(out, s, strlen(s));
    } else {
        char *txt = cJSON_PrintUnformatted(j); /* json values compact */
        rc = txt ? trl_buf_add_csv(out, txt, strlen(txt)) : TRL_ENOMEM;
        free(txt);
    }
    cJSON_Delete(j);
    return rc;
}

/* Writing one page of a listing's JSON as CSV rows, straight from its text. */
struct csv_page {
    const struct csv_col *cols;
    size_t ncols;
    const char **v; /* per column: the current record's member text, or NULL */
    size_t *vn;
    const struct trl_workflow *w;
    bool zh;
    struct trl_buf *csv;
    int64_t rows, max; /* rows written so far; past max, the walk stops (too_many) */
    bool too_many;
    char *cursor; /* the page's next_cursor (owned), NULL on the last page */
};

static int csv_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct csv_page *p = ud;
    for (size_t i = 0; i < p->ncols; i++)
        if (kn == strlen(p->cols[i].key) + 2 && memcmp(k + 1, p->cols[i].key, kn - 2) == 0) {
            p->v[i] = v, p->vn[i] = vn;
            break;
        }
    return 0;
}

static int csv_row(void *ud, const char *v, size_t vn)
{
    struct csv_page *p = ud;
    if (++p->rows > p->max) {
        p->too_many = true; /* counted by the caller */
        return 1;
    }
    for (size_t i = 0; i < p->ncols; i++)
        p->v[i] = NULL;
    int rc = trl_json_each_member(v, vn, csv_member, p);
    /* Not `a || b`: that would turn csv_value's error code into 1, which the walk takes for
     * "stop here" and the page's rows after it would be dropped silently. */
    for (size_t i = 0; i < p->ncols && !rc; i++) {
        rc = i ? trl_buf_addc(p->csv, ',') : 0;
        if (!rc) rc = csv_value(p->csv, &p->cols[i], p->v[i], p->vn[i], p->w, p->zh);
    }
    return rc ? rc : trl_buf_adds(p->csv, "\r\n");
}

static int csv_page_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct csv_page *p = ud;
    if (kn == 7 && memcmp(k, "\"items\"", 7) == 0) {
        int rc = trl_json_each_element(v, vn, csv_row, p);
        return rc < 0 ? rc : p->too_many;
    }
    if (kn == 13 && memcmp(k, "\"next_cursor\"", 13) == 0 && *v == '"') {
        cJSON *j = cJSON_ParseWithLength(v, vn);
        p->cursor = cJSON_IsString(j) ? strdup(j->valuestring) : NULL;
        cJSON_Delete(j);
        if (!p->cursor) return TRL_ENOMEM;
    }
    return 0;
}

/* A listing page's exact "count" member. */
static int count_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    (void)vn;
    if (kn != 7 || memcmp(k, "\"count\"", 7) != 0) return 0;
    *(uint64_t *)ud = strtoull(v, NULL, 10);
    return 1;
}

/* The columns: fields= in its order, else id, name, state, every field the caller may read,
 * owner, org, created_at, updated_at. */
static size_t csv_columns(struct req *r, const char *fields, const struct trl_workflow *w,
                          struct csv_col *cols, size_t cap)
{
    static const char *const sys[] = {"id",  "name",       "state",     "owner",
                                      "org", "created_at", "updated_at"};
#define SYS_COL(k)                                                                                 \
    ((struct csv_col){(k), NULL, trl_rec_sys_label((k), false), trl_rec_sys_label((k), true)})
    const struct trl_type *ty = r->ty;
    size_t n = 0;
    const char *p = fields;
    while (p && *p && n < cap) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const struct trl_field *f = trl_type_field(ty, p, len);
        if (f) {
            cols[n++] = (struct csv_col){f->name, f, f->labels.en, f->labels.zh};
        } else {
            for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
                if (strlen(sys[i]) == len && memcmp(sys[i], p, len) == 0)
                    cols[n++] = SYS_COL(sys[i]);
        }
        p = e ? e + 1 : NULL;
    }
    if (fields) return n;
    cols[n++] = SYS_COL(sys[0]);
    if (ty->autoname) cols[n++] = SYS_COL(sys[1]);
    if (w) cols[n++] = SYS_COL(sys[2]);
    for (size_t i = 0; i < ty->nfields && n + 4 < cap; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (r->acc.fields && r->acc.fields[i] == TRL_FIELD_HIDDEN) continue;
        cols[n++] = (struct csv_col){f->name, f, f->labels.en, f->labels.zh};
    }
    for (size_t i = 3; i < 7; i++)
        cols[n++] = SYS_COL(sys[i]);
#undef SYS_COL
    return n;
}

static void records_csv(struct req *r, struct trl_list_opts *o)
{
    if (o->cursor || o->limit)
        return trl_http_fail(r, TRL_EQUERY, o->cursor ? "cursor" : "limit",
                             "an export has every matching record: no cursor or limit",
                             "导出包含所有匹配的记录:不能指定 cursor 或 limit");
    if (o->out.expand || o->out.render_html)
        return trl_http_fail(r, TRL_EQUERY, o->out.expand ? "expand" : "render",
                             "an export has plain values: no expand or render",
                             "导出只包含原始值:不能指定 expand 或 render");
    bool zh = r->lang && strcmp(r->lang, "zh-CN") == 0;
    const struct trl_workflow *w = r->wfs ? trl_wf_by_type(r->wfs, r->ty->name) : NULL;
    struct csv_col *cols = calloc(r->ty->nfields + 8, sizeof(*cols));
    if (!cols) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    size_t ncols = csv_columns(r, o->out.fields, w, cols, r->ty->nfields + 8);
    struct trl_txn *t;
    if (read_begin(r, &t)) {
        free(cols);
        return;
    }
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    struct trl_buf page, csv;
    trl_buf_init(&page);
    trl_buf_init(&csv);
    o->limit = 1000;
    struct csv_page cp = {.cols = cols,
                          .ncols = ncols,
                          .v = calloc(ncols + 1, sizeof(*cp.v)),
                          .vn = calloc(ncols + 1, sizeof(*cp.vn)),
                          .w = w,
                          .zh = zh,
                          .csv = &csv,
                          .max = r->srv->o.export_max_rows ? r->srv->o.export_max_rows : 100000};
    int rc = cp.v && cp.vn ? trl_buf_adds(&csv, "\xEF\xBB\xBF") : TRL_ENOMEM;
    for (size_t i = 0; i < ncols && !rc; i++) {
        const char *l =
            zh && cols[i].label_zh && *cols[i].label_zh ? cols[i].label_zh : cols[i].label_en;
        if (!l || !*l) l = cols[i].key;
        rc = (i && trl_buf_addc(&csv, ',')) || trl_buf_add_csv(&csv, l, strlen(l)) ? TRL_ENOMEM : 0;
    }
    if (!rc) rc = trl_buf_adds(&csv, "\r\n");
    while (!rc) {
        trl_buf_clear(&page);
        o->cursor = cp.cursor;
        if ((rc = trl_rec_list(t, &cx, r->ty, o, &page))) break;
        char *prev = cp.cursor;
        cp.cursor = NULL;
        rc = trl_json_each_member(page.data, page.len, csv_page_member, &cp);
        free(prev);
        if (rc > 0) rc = 0; /* stopped at the row limit */
        if (cp.too_many || !cp.cursor) break;
    }
    if (!rc && cp.too_many) {
        /* Refused before anything is sent, with the exact number of rows it would have. */
        uint64_t n = 0;
        trl_buf_clear(&page);
        o->cursor = NULL;
        o->limit = 1;
        o->count_exact = true;
        rc = trl_rec_list(t, &cx, r->ty, o, &page);
        if (!rc && trl_json_each_member(page.data, page.len, count_member, &n) < 0)
            rc = TRL_ECORRUPT;
        if (!rc) {
            trl_diag_set(&r->d, TRL_EQUERY,
                         "the export would have %llu rows, more than %lld: narrow the filter",
                         (unsigned long long)n, (long long)cp.max);
            trl_diag_zh(&r->d, "导出将有 %llu 行,超过 %lld 行:请缩小筛选范围",
                        (unsigned long long)n, (long long)cp.max);
            trl_diag_field(&r->d, "filter");
            rc = TRL_EQUERY;
        }
    }
    trl_txn_end(t);
    free(cp.cursor);
    free(cp.v);
    free(cp.vn);
    free(cols);
    trl_buf_free(&page);
    o->cursor = NULL;
    if (rc) {
        trl_buf_free(&csv);
        return fail_d(r, rc);
    }
    trl_buf_free(&r->out);
    r->out = csv;
    r->status = 200;
    r->ctype = "text/csv; charset=utf-8";
}

static void records_list(struct req *r)
{
    if (!check_args(r, list_args)) return;
    const char *fmt = arg(r, "format");
    if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0)
        return trl_http_fail(r, TRL_EQUERY, "format", "format: csv or json",
                             "format:只能是 csv 或 json");
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    bool csv = fmt ? strcmp(fmt, "csv") == 0 : accept && strstr(accept, "text/csv") != NULL;
    struct trl_list_opts o = {0};
    o.filter = arg(r, "filter");
    o.sort = arg(r, "sort");
    o.cursor = arg(r, "cursor");
    o.out.fields = arg(r, "fields");
    o.out.expand = arg(r, "expand");
    if (!render_arg(r, &o.out.render_html)) return;
    const char *lim = arg(r, "limit");
    if (lim) {
        int64_t v;
        if (trl_parse_i64(lim, strlen(lim), &v) || v < 1 || v > 1000) {
            trl_http_fail(r, TRL_EQUERY, "limit", "limit: must be an integer from 1 to 1000",
                          "limit:必须是 1 到 1000 之间的整数");
            return;
        }
        o.limit = v;
    }
    const char *count = arg(r, "count");
    if (count) {
        if (strcmp(count, "exact") != 0) {
            trl_http_fail(r, TRL_EQUERY, "count", "count: the only value is 'exact'",
                          "count:唯一可用的值是 exact");
            return;
        }
        o.count_exact = true;
    }
    if (csv) return records_csv(r, &o);
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    int rc = trl_rec_list(t, &cx, r->ty, &o, &r->out);
    trl_txn_end(t);
    if (rc)
        fail_d(r, rc);
    else
        ok_json(r, 200);
}

static void records_get(struct req *r)
{
    if (!check_args(r, get_args)) return;
    struct trl_rec_out o = {.fields = arg(r, "fields"), .expand = arg(r, "expand")};
    if (!render_arg(r, &o.render_html)) return;
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    uint64_t version = 0;
    int rc = trl_rec_get(t, &cx, r->ty, r->id, &o, &version, &r->out);
    trl_txn_end(t);
    if (rc) {
        fail_d(r, rc);
        return;
    }
    set_etag(r, version);
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    if (inm && strcmp(inm, r->etag) == 0) {
        trl_buf_clear(&r->out);
        r->status = 304;
        return;
    }
    ok_json(r, 200);
}

static void records_history(struct req *r)
{
    if (!check_args(r, (const char *const[]){NULL})) return;
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    /* As the caller may see it: scope, and no changes of hidden or removed fields (the rules
     * GET /api/v1/events shares). */
    int rc = trl_rec_history(t, &cx, r->ty, r->id, &r->out);
    trl_txn_end(t);
    if (rc) return fail_d(r, rc);
    ok_json(r, 200);
}

/* ---------------------------------------------------------------------------------------------
 * Workflow transitions
 */
static const struct trl_workflow *workflow_of(struct req *r)
{
    const struct trl_workflow *w = trl_wf_by_type(r->wfs, r->ty->name);
    if (!w) {
        trl_diag_set(&r->d, TRL_ENOTFOUND, "type %s has no workflow", r->ty->name);
        trl_diag_zh(&r->d, "类型 %s 没有工作流", r->ty->name);
        trl_diag_rule(&r->d, "workflow", "");
    }
    return w;
}

static void records_transitions(struct req *r)
{
    if (!check_args(r, (const char *const[]){NULL})) return;
    const struct trl_workflow *w = workflow_of(r);
    if (!w) return trl_http_problem(r);
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    int rc = trl_wf_available(t, &cx, r->ty, w, r->id, &r->out);
    trl_txn_end(t);
    if (rc) return fail_d(r, rc);
    ok_json(r, 200);
}

/* The transition body: {"fields": {...}, "comment": "..."} (both optional). Leaves the fields'
 * inputs in r->in and the comment in r->aux. */
static bool transition_body(struct req *r)
{
    r->aux = NULL;
    if (r->body.len == 0) return true;
    if (trl_http_parse_object(r)) return false;
    const struct trl_input *fields = NULL;
    for (size_t i = 0; i < r->nin; i++) {
        const struct trl_input *in = &r->in[i];
        if (strcmp(in->name, "comment") == 0 && in->kind == TRL_IN_STRING) {
            char *c = trl_arena_alloc(&r->arena, in->n + 1);
            if (!c) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足"), false;
            memcpy(c, in->s, in->n);
            c[in->n] = 0;
            r->aux = c;
        } else if (strcmp(in->name, "comment") == 0) {
            if (in->kind == TRL_IN_NULL) continue; /* null: no comment */
            trl_http_fail(r, TRL_EVALIDATION, "comment", "comment must be a string",
                          "comment 必须是字符串");
            return false;
        } else if (strcmp(in->name, "fields") == 0 && in->kind == TRL_IN_JSON && in->n &&
                   in->s[0] == '{') {
            fields = in;
        } else if (strcmp(in->name, "fields") == 0) {
            trl_http_fail(r, TRL_EVALIDATION, "fields",
                          "fields must be an object of the values this transition lets you fill",
                          "fields 必须是对象,包含此流转允许填写的字段值");
            return false;
        } else {
            char en[200], zh[200];
            snprintf(en, sizeof(en),
                     "unknown member '%.64s' (a transition takes fields and comment)", in->name);
            snprintf(zh, sizeof(zh), "未知成员“%.64s”(流转只接受 fields 和 comment)", in->name);
            trl_http_fail(r, TRL_EVALIDATION, in->name, en, zh);
            return false;
        }
    }
    /* Replace the outer members by the fields' own (the comment lives in the arena). */
    struct trl_input *in2 = NULL;
    size_t nin2 = 0;
    void *tree2 = NULL;
    if (fields && trl_json_object_inputs(fields->s, fields->n, 63, &in2, &nin2, &tree2, &r->d)) {
        trl_http_problem(r);
        return false;
    }
    free(r->in);
    trl_json_tree_free(r->json);
    r->in = in2;
    r->nin = nin2;
    r->json = tree2;
    return true;
}

static int exec_transition(struct req *r, struct trl_txn *t)
{
    const struct trl_workflow *w = workflow_of(r);
    if (!w) return TRL_ENOTFOUND;
    struct trl_rec_ctx cx;
    rec_ctx(r, &cx);
    char fp[65];
    bool replayed;
    int rc = idem_replay(r, t, cx.now_ms, fp, &replayed);
    if (rc || replayed) return rc;
    struct trl_wf_run run = {.transition = r->transition,
                             .if_match = r->if_match,
                             .in = r->in,
                             .nin = r->nin,
                             .comment = r->aux};
    if ((rc = trl_wf_transition(t, &cx, r->ty, w, r->id, &run, &r->out))) return rc;
    ok_json(r, 200);
    const char *v = strstr(r->out.data, "\"version\":");
    if (v) set_etag(r, strtoull(v + 10, NULL, 10));
    return idem_store(r, t, cx.now_ms, fp);
}

static void records_transition(struct req *r, const char *name)
{
    static const char *const args[] = {"dry_run", NULL};
    if (!check_args(r, args)) return;
    const char *dr = arg(r, "dry_run");
    if (dr && strcmp(dr, "1") && strcmp(dr, "true") && strcmp(dr, "0") && strcmp(dr, "false"))
        return trl_http_fail(r, TRL_EQUERY, "dry_run", "dry_run is 1 or 0",
                             "dry_run 只能是 1 或 0");
    bool dry = dr && (strcmp(dr, "1") == 0 || strcmp(dr, "true") == 0);
    bool bad;
    r->if_match = if_match(r, &bad);
    if (bad)
        return trl_http_fail(r, TRL_EPRECOND, "If-Match", "If-Match must be an ETag such as \"3\"",
                             "If-Match 必须是 ETag,例如 \"3\"");
    if (!*name || strlen(name) >= sizeof(r->transition))
        return trl_http_fail(r, TRL_ENOTFOUND, "transition", "no such transition", "不存在该流转");
    memcpy(r->transition, name, strlen(name) + 1);
    if (!transition_body(r)) return;
    const struct trl_workflow *w = workflow_of(r);
    if (!w) return trl_http_problem(r);
    if (dry) {
        /* Checks everything in a read txn: nothing can be written. */
        struct trl_txn *t;
        if (read_begin(r, &t)) return;
        struct trl_rec_ctx cx;
        rec_ctx(r, &cx);
        struct trl_wf_run run = {.transition = r->transition,
                                 .if_match = r->if_match,
                                 .in = r->in,
                                 .nin = r->nin,
                                 .comment = r->aux,
                                 .dry_run = true};
        int rc = trl_wf_transition(t, &cx, r->ty, w, r->id, &run, &r->out);
        trl_txn_end(t);
        if (rc) return fail_d(r, rc);
        return ok_json(r, 200);
    }
    if (!idem_header(r)) return;
    r->type_name = strdup(r->ty->name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    queue_write(r, exec_transition, false);
}

static bool prepare_body_write(struct req *r)
{
    if (trl_http_parse_object(r)) return false;
    r->type_name = strdup(r->ty->name);
    if (!r->type_name) {
        trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        return false;
    }
    return true;
}

/* Runs fn when the request's method is method, else answers 405 with Allow. */
bool trl_http_method(struct req *r, const char *method)
{
    if (strcmp(r->method, method) == 0) return true;
    snprintf(r->allow, sizeof(r->allow), "%s", method);
    char en[64], zh[64];
    snprintf(en, sizeof(en), "use %s here", method);
    snprintf(zh, sizeof(zh), "此处只支持 %s", method);
    trl_http_fail(r, TRL_EMETHOD, "", en, zh);
    return false;
}

void trl_http_one_method(struct req *r, const char *method, void (*fn)(struct req *))
{
    if (trl_http_method(r, method)) fn(r);
}

static void route_records(struct req *r, const char *rest)
{
    /* rest: "{type}", "{type}/{id}", "{type}/{id}/history" */
    const char *slash = strchr(rest, '/');
    size_t tl = slash ? (size_t)(slash - rest) : strlen(rest);
    char tname[80];
    if (tl == 0 || tl >= sizeof(tname)) {
        trl_http_fail(r, TRL_ENOTFOUND, "type", "no such type", "不存在该类型");
        return;
    }
    memcpy(tname, rest, tl);
    tname[tl] = 0;
    r->ty = trl_catalog_type(r->cat, tname);
    if (!r->ty) {
        char en[160], zh[160];
        snprintf(en, sizeof(en), "no type '%s' is installed", tname);
        snprintf(zh, sizeof(zh), "未安装类型“%s”", tname);
        trl_http_fail(r, TRL_ENOTFOUND, "type", en, zh);
        return;
    }
    if (compute_access(r)) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    if (r->acc.read == TRL_SCOPE_NONE && r->acc.create == TRL_SCOPE_NONE) {
        /* A type the caller has no rights on does not exist for them. */
        char en[160], zh[160];
        snprintf(en, sizeof(en), "no type '%s' is installed", tname);
        snprintf(zh, sizeof(zh), "未安装类型“%s”", tname);
        trl_http_fail(r, TRL_ENOTFOUND, "type", en, zh);
        return;
    }
    const char *m = r->method;
    if (!slash || !slash[1]) {
        if (strcmp(m, "GET") == 0) return records_list(r);
        if (strcmp(m, "POST") == 0) {
            if (idem_header(r) && prepare_body_write(r)) queue_write(r, exec_create, false);
            return;
        }
        snprintf(r->allow, sizeof(r->allow), "GET, POST");
        trl_http_fail(r, TRL_EMETHOD, "", "use GET or POST here", "此处只支持 GET 或 POST");
        return;
    }
    const char *idp = slash + 1;
    const char *s2 = strchr(idp, '/');
    size_t il = s2 ? (size_t)(s2 - idp) : strlen(idp);
    if (!parse_id(idp, il, &r->id)) {
        trl_http_fail(r, TRL_ENOTFOUND, "id", "no record with that id", "不存在该 ID 的记录");
        return;
    }
    if (s2) {
        /* The record's sub-resources, each with the one method it takes. */
        static const struct {
            const char *path, *method;
            void (*fn)(struct req *);
        } subs[] = {
            {"/transitions", "GET", records_transitions},
            {"/approvals", "GET", trl_http_record_approvals},
            {"/sla", "GET", trl_http_record_sla},
            {"/recall", "POST", trl_http_record_recall},
            {"/history", "GET", records_history},
        };
        for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
            if (strcmp(s2, subs[k].path) == 0)
                return trl_http_one_method(r, subs[k].method, subs[k].fn);
        if (strncmp(s2, "/transitions/", 13) == 0 && !strchr(s2 + 13, '/')) {
            if (strcmp(m, "POST") == 0) return records_transition(r, s2 + 13);
            snprintf(r->allow, sizeof(r->allow), "POST");
            trl_http_fail(r, TRL_EMETHOD, "", "use POST here", "此处只支持 POST");
            return;
        }
        trl_http_fail(r, TRL_ENOTFOUND, "", "no such resource", "不存在该资源");
        return;
    }
    if (strcmp(m, "GET") == 0) return records_get(r);
    bool bad;
    r->if_match = if_match(r, &bad);
    if (bad) {
        trl_http_fail(r, TRL_EPRECOND, "If-Match", "If-Match must be an ETag such as \"3\"",
                      "If-Match 必须是 ETag,例如 \"3\"");
        return;
    }
    if (strcmp(m, "PATCH") == 0) {
        if (prepare_body_write(r)) queue_write(r, exec_patch, false);
        return;
    }
    if (strcmp(m, "DELETE") == 0) {
        r->type_name = strdup(r->ty->name);
        if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        queue_write(r, exec_delete, false);
        return;
    }
    snprintf(r->allow, sizeof(r->allow), "GET, PATCH, DELETE");
    trl_http_fail(r, TRL_EMETHOD, "", "use GET, PATCH or DELETE here",
                  "此处只支持 GET、PATCH 或 DELETE");
}

/* ---------------------------------------------------------------------------------------------
 * Meta
 */
static void meta_types(struct req *r, const char *name)
{
    const char *m = r->method;
    if (!*name) {
        if (!trl_http_method(r, "GET")) return;
        trl_buf_adds(&r->out, "{\"items\":[");
        for (size_t i = 0; i < r->cat->ntypes; i++) {
            const struct trl_type *ty = r->cat->types[i];
            if (i) trl_buf_addc(&r->out, ',');
            trl_buf_adds(&r->out, ty->definition);
            while (r->out.len && r->out.data[r->out.len - 1] == '\n')
                r->out.len--;
        }
        trl_buf_adds(&r->out, "]}");
        return ok_json(r, 200);
    }
    if (strcmp(m, "GET") == 0) {
        const struct trl_type *ty = trl_catalog_type(r->cat, name);
        if (!ty) return trl_http_fail(r, TRL_ENOTFOUND, "name", "no such type", "不存在该类型");
        trl_buf_adds(&r->out, ty->definition);
        return ok_json(r, 200);
    }
    r->type_name = strdup(name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    if (strcmp(m, "PUT") == 0) {
        if (!trl_http_body_json(r, 64)) return;
        r->ty = NULL; /* PUT creates the type when it does not exist */
        return queue_write(r, exec_put_type, true);
    }
    if (strcmp(m, "DELETE") == 0) return queue_write(r, exec_delete_type, true);
    snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
    trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                  "此处只支持 GET、PUT 或 DELETE");
}

static int exec_put_workflow(struct req *r, struct trl_txn *t)
{
    bool changed;
    const char *name = r->type_name;
    bool existed = trl_wf_by_name(r->wfs, name) != NULL;
    int rc =
        trl_wf_put(t, name, r->body.data ? r->body.data : "", r->body.len, NULL, &changed, &r->d);
    if (rc) return rc;
    char *def = NULL;
    if ((rc = trl_meta_get(t, "workflow", name, &def))) return rc;
    trl_buf_adds(&r->out, def);
    free(def);
    ok_json(r, existed ? 200 : 201);
    if (!existed) snprintf(r->location, sizeof(r->location), "/api/v1/meta/workflows/%s", name);
    return 0;
}

static int exec_delete_workflow(struct req *r, struct trl_txn *t)
{
    int rc = trl_wf_delete(t, r->type_name, &r->d);
    if (rc) return rc;
    r->status = 204;
    return 0;
}

static void meta_workflows(struct req *r, const char *name)
{
    const char *m = r->method;
    if (!*name) {
        if (!trl_http_method(r, "GET")) return;
        trl_buf_adds(&r->out, "{\"items\":[");
        for (size_t i = 0; r->wfs && i < r->wfs->n; i++) {
            if (i) trl_buf_addc(&r->out, ',');
            trl_buf_adds(&r->out, r->wfs->wfs[i]->definition);
            while (r->out.len && r->out.data[r->out.len - 1] == '\n')
                r->out.len--;
        }
        trl_buf_adds(&r->out, "]}");
        return ok_json(r, 200);
    }
    if (strcmp(m, "GET") == 0) {
        const struct trl_workflow *w = trl_wf_by_name(r->wfs, name);
        if (!w)
            return trl_http_fail(r, TRL_ENOTFOUND, "name", "no such workflow", "不存在该工作流");
        trl_buf_adds(&r->out, w->definition);
        return ok_json(r, 200);
    }
    r->type_name = strdup(name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    r->ty = NULL;
    if (strcmp(m, "PUT") == 0) return queue_write(r, exec_put_workflow, true);
    if (strcmp(m, "DELETE") == 0) return queue_write(r, exec_delete_workflow, true);
    snprintf(r->allow, sizeof(r->allow), "GET, PUT, DELETE");
    trl_http_fail(r, TRL_EMETHOD, "", "use GET, PUT or DELETE here",
                  "此处只支持 GET、PUT 或 DELETE");
}

static void meta_apps(struct req *r, const char *name)
{
    if (strcmp(r->method, "GET") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET");
        return trl_http_fail(r, TRL_EMETHOD, "", "apps are installed with `trellis app install`",
                             "应用通过 `trellis app install` 安装");
    }
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    int rc;
    if (!*name) {
        trl_buf_adds(&r->out, "{\"items\":");
        rc = trl_app_list(t, &r->out);
        trl_buf_addc(&r->out, '}');
    } else {
        char *def = NULL;
        rc = trl_meta_get(t, "app", name, &def);
        if (!rc) trl_buf_adds(&r->out, def);
        free(def);
        if (rc == TRL_ENOTFOUND) trl_diag_set(&r->d, rc, "no app '%s' is installed", name);
    }
    trl_txn_end(t);
    if (rc) return fail_d(r, rc);
    ok_json(r, 200);
}

/* ---------------------------------------------------------------------------------------------
 * Files: content-addressed by SHA-256 under <data>/files/ab/<sha>
 */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void files_upload(struct req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct || !strchr(ct, '/') || strlen(ct) >= 128)
        return trl_http_fail(r, TRL_EMEDIATYPE, "Content-Type",
                             "send the file's media type in Content-Type",
                             "请在 Content-Type 中给出文件的媒体类型");
    if (r->body.len == 0)
        return trl_http_fail(r, TRL_EINVAL, "body", "the file is empty", "文件为空");
    struct file_meta *fm = trl_arena_alloc(&r->arena, sizeof(*fm));
    if (!fm) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)r->body.data, r->body.len);
    trl_hex(h, 32, fm->sha);
    fm->size = r->body.len;
    size_t ml = strcspn(ct, ";");
    while (ml && ct[ml - 1] == ' ')
        ml--;
    snprintf(fm->media, sizeof(fm->media), "%.*s", (int)ml, ct);
    char dir[4200], path[4300], tmp[4300];
    snprintf(dir, sizeof(dir), "%s/%.2s", r->srv->files_dir, fm->sha);
    snprintf(path, sizeof(path), "%s/%s", dir, fm->sha);
    struct stat st;
    if (stat(path, &st) != 0) {
        /* Durable before the metadata commits: write, fsync, rename, fsync the folder. */
        mkdir(dir, 0700);
        snprintf(tmp, sizeof(tmp), "%s/.%s.%llu", dir, fm->sha,
                 (unsigned long long)atomic_fetch_add(&r->srv->req_seq, 1));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        bool ok = fd >= 0;
        if (ok) ok = write(fd, r->body.data, r->body.len) == (ssize_t)r->body.len;
        if (ok) ok = fsync(fd) == 0;
        if (fd >= 0 && close(fd)) ok = false;
        if (ok) ok = rename(tmp, path) == 0;
        if (ok) ok = fsync_dir(dir) == 0;
        if (!ok) {
            unlink(tmp);
            return trl_http_fail(r, TRL_EIO, "", "the file could not be stored", "文件无法保存");
        }
    }
    r->aux = fm;
    queue_write(r, exec_file, false);
}

static void files_get(struct req *r, const char *sha)
{
    if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
        return trl_http_fail(r, TRL_ENOTFOUND, "id", "no such file", "不存在该文件");
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_FILES, sha, 64, &v);
    char media[128] = "application/octet-stream";
    bool may = r->who.admin;
    if (rc == 0 && v.n > 8) {
        size_t ml = strnlen((const char *)v.p + 8, v.n - 8);
        snprintf(media, sizeof(media), "%.*s", (int)ml, (const char *)v.p + 8);
        /* The uploader may fetch it; so may anyone who may read a record holding it. */
        const char *up = (const char *)v.p + 8 + ml + 1;
        if (8 + ml + 1 < v.n && strlen(r->who.user) == v.n - 8 - ml - 1 &&
            memcmp(up, r->who.user, v.n - 8 - ml - 1) == 0)
            may = true;
    }
    if (rc == 0 && !may) rc = trl_rec_file_visible(t, r->cat, &r->who, sha, &may);
    trl_txn_end(t);
    if (rc || !may) return trl_http_fail(r, TRL_ENOTFOUND, "id", "no such file", "不存在该文件");
    char path[4300];
    snprintf(path, sizeof(path), "%s/%.2s/%s", r->srv->files_dir, sha, sha);
    FILE *f = fopen(path, "rb");
    if (!f) return trl_http_fail(r, TRL_EIO, "", "the file is missing on disk", "文件在磁盘上缺失");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        trl_buf_add(&r->out, buf, n);
    fclose(f);
    r->status = 200;
    r->ctype = trl_arena_strndup(&r->arena, media, strlen(media));
}

/* ---------------------------------------------------------------------------------------------
 * OpenAPI, health, metrics
 */
static void schema_of_field(struct trl_buf *o, const struct trl_field *f)
{
    switch (f->type) {
    case TRL_FT_TEXT:
    case TRL_FT_LONGTEXT:
        trl_buf_adds(o, "{\"type\":[\"string\",\"null\"]");
        if (f->max_length) trl_buf_printf(o, ",\"maxLength\":%lld", (long long)f->max_length);
        if (f->min_length) trl_buf_printf(o, ",\"minLength\":%lld", (long long)f->min_length);
        if (f->pattern) {
            trl_buf_adds(o, ",\"pattern\":");
            trl_buf_add_json_str(o, f->pattern, strlen(f->pattern));
        }
        break;
    case TRL_FT_INT:
        trl_buf_adds(o, "{\"type\":[\"integer\",\"null\"]");
        if (f->has_min) trl_buf_printf(o, ",\"minimum\":%lld", (long long)f->min);
        if (f->has_max) trl_buf_printf(o, ",\"maximum\":%lld", (long long)f->max);
        break;
    case TRL_FT_REF:
        trl_buf_printf(o, "{\"type\":[\"integer\",\"null\"],\"description\":\"id of a %s\"",
                       f->ref_type ? f->ref_type : "record");
        break;
    case TRL_FT_DECIMAL:
        /* Strings are answered; JSON numbers are accepted too (the pattern applies to strings). */
        if (f->scale)
            trl_buf_printf(o,
                           "{\"type\":[\"string\",\"number\",\"null\"],\"pattern\":"
                           "\"^-?[0-9]+(\\\\.[0-9]{1,%d})?$\"",
                           f->scale);
        else
            trl_buf_adds(o,
                         "{\"type\":[\"string\",\"number\",\"null\"],\"pattern\":\"^-?[0-9]+$\"");
        break;
    case TRL_FT_BOOL:
        trl_buf_adds(o, "{\"type\":[\"boolean\",\"null\"]");
        break;
    case TRL_FT_DATE:
        trl_buf_adds(o, "{\"type\":[\"string\",\"null\"],\"format\":\"date\"");
        break;
    case TRL_FT_DATETIME:
        trl_buf_adds(o, "{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"");
        break;
    case TRL_FT_ENUM:
        trl_buf_adds(o, "{\"enum\":[");
        for (size_t i = 0; i < f->noptions; i++) {
            if (i) trl_buf_addc(o, ',');
            trl_buf_add_json_str(o, f->options[i].value, strlen(f->options[i].value));
        }
        trl_buf_adds(o, ",null]");
        break;
    case TRL_FT_ATTACHMENT:
        trl_buf_adds(o, "{\"type\":[\"string\",\"null\"],\"pattern\":\"^[0-9a-f]{64}$\"");
        break;
    case TRL_FT_USER:
        trl_buf_adds(o, "{\"type\":[\"string\",\"null\"]");
        break;
    default: /* json: any JSON value; the object needs a first member before ",title" */
        trl_buf_adds(o, "{\"description\":\"Any JSON value\"");
        break;
    }
    if (f->labels.en[0]) {
        trl_buf_adds(o, ",\"title\":");
        trl_buf_add_json_str(o, f->labels.en, strlen(f->labels.en));
    }
    if (f->read_only) trl_buf_adds(o, ",\"readOnly\":true");
    trl_buf_addc(o, '}');
}

static void openapi(struct req *r)
{
    struct trl_buf *o = &r->out;
    trl_buf_adds(o, "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"Trellis API\",\"version\":\"1\","
                    "\"description\":\"Records of the installed types, generated from their "
                    "definitions.\"},\"servers\":[{\"url\":\"/\"}],"
                    "\"security\":[{\"bearer\":[]},{\"session\":[]}],\"paths\":{");
    static const char *problem =
        "{\"description\":\"%s\",\"content\":{\"application/problem+json\":"
        "{\"schema\":{\"$ref\":\"#/components/schemas/Problem\"}}}}";
    trl_buf_adds(o,
                 "\"/healthz\":{\"get\":{\"operationId\":\"healthz\",\"security\":[],"
                 "\"responses\":{\"200\":{\"description\":\"The server and its store answer.\"}}}},"
                 "\"/api/v1/auth/login\":{\"post\":{\"operationId\":\"login\",\"security\":[],"
                 "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{"
                 "\"schema\":{\"type\":\"object\",\"required\":[\"username\",\"password\"],"
                 "\"properties\":{\"username\":{\"type\":\"string\"},\"password\":{\"type\":"
                 "\"string\"}}}}}},\"responses\":{\"200\":{\"description\":\"Logged in: a "
                 "session cookie and the csrf_token to send as X-CSRF-Token on writes\"},"
                 "\"401\":{\"description\":\"Wrong user name or password\"},\"429\":{"
                 "\"description\":\"Too many failed logins; see Retry-After\"}}}},"
                 "\"/api/v1/auth/me\":{\"get\":{\"operationId\":\"me\",\"responses\":{\"200\":"
                 "{\"description\":\"The caller\"},\"401\":{\"description\":\"Not "
                 "authenticated\"}}}}");
    for (size_t i = 0; i < r->cat->ntypes; i++) {
        const char *n = r->cat->types[i]->name;
        trl_buf_printf(
            o,
            ",\"/api/v1/records/%s\":{\"get\":{\"operationId\":\"list_%s\",\"summary\":"
            "\"List %s records\",\"parameters\":["
            "{\"name\":\"filter\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
            "{\"name\":\"sort\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
            "{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\","
            "\"minimum\":1,\"maximum\":1000}},"
            "{\"name\":\"cursor\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
            "{\"name\":\"count\",\"in\":\"query\",\"schema\":{\"enum\":[\"exact\"]}},"
            "{\"name\":\"fields\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
            "{\"name\":\"format\",\"in\":\"query\",\"schema\":{\"enum\":[\"json\",\"csv\"]}}],"
            "\"responses\":{\"200\":{\"description\":\"A page of records (CSV: every matching "
            "record)\",\"content\":"
            "{\"application/json\":{\"schema\":{\"type\":\"object\",\"properties\":{"
            "\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/%s\"}},"
            "\"next_cursor\":{\"type\":[\"string\",\"null\"]},\"count\":{\"type\":\"integer\"}}}},"
            "\"text/csv\":{\"schema\":{\"type\":\"string\"}}}}"
            ",",
            n, n, n, n);
        trl_buf_printf(o, "\"400\":");
        trl_buf_printf(o, problem, "Bad filter, sort, limit or cursor");
        trl_buf_printf(o,
                       "}},\"post\":{\"operationId\":\"create_%s\",\"parameters\":[{\"name\":"
                       "\"Idempotency-Key\",\"in\":\"header\",\"schema\":{\"type\":\"string\"}}],"
                       "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":"
                       "{\"schema\":{\"$ref\":\"#/components/schemas/%s\"}}}},\"responses\":{"
                       "\"201\":{\"description\":\"Created\",\"content\":{\"application/json\":"
                       "{\"schema\":{\"$ref\":\"#/components/schemas/%s\"}}}},\"422\":",
                       n, n, n);
        trl_buf_printf(o, problem, "Validation failed");
        trl_buf_adds(o, "}}}");
        trl_buf_printf(
            o,
            ",\"/api/v1/records/%s/{id}\":{\"parameters\":[{\"name\":\"id\",\"in\":"
            "\"path\",\"required\":true,\"schema\":{\"type\":\"integer\"}}],"
            "\"get\":{\"operationId\":\"get_%s\",\"responses\":{\"200\":{\"description\":"
            "\"The record\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":"
            "\"#/components/schemas/%s\"}}}},\"404\":",
            n, n, n);
        trl_buf_printf(o, problem, "Not found");
        trl_buf_printf(o,
                       "}},\"patch\":{\"operationId\":\"update_%s\",\"parameters\":[{\"name\":"
                       "\"If-Match\",\"in\":\"header\",\"schema\":{\"type\":\"string\"}}],"
                       "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":"
                       "{\"schema\":{\"$ref\":\"#/components/schemas/%s_patch\"}}}},\"responses\":{"
                       "\"200\":{\"description\":\"Updated\"},\"412\":",
                       n, n);
        trl_buf_printf(o, problem, "Stale If-Match");
        trl_buf_printf(o, ",\"422\":");
        trl_buf_printf(o, problem, "Validation failed");
        trl_buf_printf(o,
                       "}},\"delete\":{\"operationId\":\"delete_%s\",\"responses\":{\"204\":"
                       "{\"description\":\"Deleted\"}}}}",
                       n);
        trl_buf_printf(o,
                       ",\"/api/v1/records/%s/{id}/history\":{\"get\":{\"operationId\":"
                       "\"history_%s\",\"parameters\":[{\"name\":\"id\",\"in\":\"path\","
                       "\"required\":true,\"schema\":{\"type\":\"integer\"}}],\"responses\":{"
                       "\"200\":{\"description\":\"Events in order\"}}}}",
                       n, n);
        if (!trl_wf_by_type(r->wfs, n)) continue;
        /* The workflow's routes: transitions, approvals, recall, SLA clocks. */
        static const char *idp = "\"parameters\":[{\"name\":\"id\",\"in\":\"path\","
                                 "\"required\":true,\"schema\":{\"type\":\"integer\"}}]";
        trl_buf_printf(o,
                       ",\"/api/v1/records/%s/{id}/transitions\":{%s,\"get\":{\"operationId\":"
                       "\"transitions_%s\",\"summary\":\"What the caller may do now\","
                       "\"responses\":{\"200\":{\"description\":\"The state and the transitions "
                       "the caller may run, with the fields each needs\"}}}}",
                       n, idp, n);
        trl_buf_printf(
            o,
            ",\"/api/v1/records/%s/{id}/transitions/{name}\":{\"parameters\":[{\"name\":\"id\","
            "\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"integer\"}},{\"name\":"
            "\"name\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}],"
            "\"post\":{\"operationId\":\"transition_%s\",\"parameters\":[{\"name\":"
            "\"dry_run\",\"in\":\"query\",\"schema\":{\"enum\":[\"1\",\"0\",\"true\","
            "\"false\"]}},{\"name\":\"If-Match\",\"in\":\"header\",\"schema\":{\"type\":"
            "\"string\"}},{\"name\":\"Idempotency-Key\",\"in\":\"header\",\"schema\":{"
            "\"type\":\"string\"}}],\"requestBody\":{\"content\":{\"application/json\":{"
            "\"schema\":{\"type\":\"object\",\"properties\":{\"fields\":{\"type\":"
            "\"object\"},\"comment\":{\"type\":[\"string\",\"null\"]}}}}}},\"responses\":{"
            "\"200\":{\"description\":\"The record after the transition (or, for a dry run, "
            "ok)\"},\"403\":",
            n, n);
        trl_buf_printf(o, problem, "Role not allowed (rule role)");
        trl_buf_adds(o, ",\"409\":");
        trl_buf_printf(o, problem, "Wrong state, or decided by a pending approval");
        trl_buf_adds(o, ",\"422\":");
        trl_buf_printf(o, problem, "Required field, condition, comment or action refused");
        trl_buf_printf(o,
                       "}}},\"/api/v1/records/%s/{id}/approvals\":{%s,\"get\":{\"operationId\":"
                       "\"approvals_of_%s\",\"responses\":{\"200\":{\"description\":\"Every "
                       "approval of the record, newest first, with steps and tasks\"}}}}"
                       ",\"/api/v1/records/%s/{id}/recall\":{%s,\"post\":{\"operationId\":"
                       "\"recall_%s\",\"requestBody\":{\"content\":{\"application/json\":{"
                       "\"schema\":{\"type\":\"object\",\"properties\":{\"comment\":{\"type\":"
                       "\"string\"}}}}}},\"responses\":{\"200\":{\"description\":\"Recalled: "
                       "the record after the on_recall transition\"},\"409\":",
                       n, idp, n, n, idp, n);
        trl_buf_printf(o, problem, "Nothing pending, or the approval cannot be recalled");
        trl_buf_printf(
            o,
            "}}},\"/api/v1/records/%s/{id}/sla\":{%s,\"get\":{\"operationId\":"
            "\"sla_%s\",\"responses\":{\"200\":{\"description\":\"The record's SLA "
            "clocks: status, target, elapsed and remaining business time, due time\"}}}}",
            n, idp, n);
    }
    trl_buf_adds(
        o, ",\"/api/v1/approvals\":{\"get\":{\"operationId\":\"approval_tasks\",\"summary\":"
           "\"Approval tasks (the inbox)\",\"parameters\":[{\"name\":\"assignee\",\"in\":"
           "\"query\",\"schema\":{\"type\":\"string\",\"default\":\"me\"}},{\"name\":"
           "\"status\",\"in\":\"query\",\"schema\":{\"enum\":[\"pending\",\"done\"]}},"
           "{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\"}},{"
           "\"name\":\"cursor\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],"
           "\"responses\":{\"200\":{\"description\":\"Tasks, newest first\"}}}},"
           "\"/api/v1/approvals/{task}\":{\"parameters\":[{\"name\":\"task\",\"in\":\"path\","
           "\"required\":true,\"schema\":{\"type\":\"integer\"}}],\"get\":{\"operationId\":"
           "\"approval_task\",\"responses\":{\"200\":{\"description\":\"The task with its "
           "approval\"}}}},\"/api/v1/approvals/{task}/{decision}\":{\"parameters\":[{\"name\":"
           "\"task\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"integer\"}},{"
           "\"name\":\"decision\",\"in\":\"path\",\"required\":true,\"schema\":{\"enum\":["
           "\"approve\",\"reject\",\"return\",\"delegate\"]}}],\"post\":{\"operationId\":"
           "\"decide\",\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{"
           "\"type\":\"object\",\"properties\":{\"comment\":{\"type\":\"string\"},\"to\":{"
           "\"type\":\"string\"}}}}}},\"responses\":{\"200\":{\"description\":\"The task and "
           "the record after the decision\"},\"403\":{\"description\":\"Not your task\"},"
           "\"409\":{\"description\":\"The task is closed\"},\"422\":{\"description\":"
           "\"Comment or delegate refused\"}}}},\"/api/v1/approvals/out-of-office\":{\"get\":{"
           "\"operationId\":\"out_of_office\",\"responses\":{\"200\":{\"description\":\"The "
           "caller's rule\"}}},\"put\":{\"operationId\":\"set_out_of_office\",\"requestBody\":{"
           "\"required\":true,\"content\":{\"application/json\":{\"schema\":{\"type\":"
           "\"object\",\"required\":[\"delegate\",\"from\",\"until\"],\"properties\":{"
           "\"delegate\":{\"type\":\"string\"},\"from\":{\"type\":\"string\",\"format\":"
           "\"date-time\"},\"until\":{\"type\":\"string\",\"format\":\"date-time\"},\"note\":"
           "{\"type\":\"string\"}}}}}},\"responses\":{\"200\":{\"description\":\"Stored; "
           "pending tasks moved when active\"}}},\"delete\":{\"operationId\":"
           "\"clear_out_of_office\",\"responses\":{\"204\":{\"description\":\"Removed\"}}}},"
           "\"/api/v1/events\":{\"get\":{\"operationId\":\"events\",\"summary\":\"Server-sent "
           "events of the record changes the caller may see\",\"parameters\":[{\"name\":"
           "\"after\",\"in\":\"query\",\"schema\":{\"type\":\"integer\"}},{\"name\":"
           "\"types\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},{\"name\":"
           "\"Last-Event-ID\",\"in\":\"header\",\"schema\":{\"type\":\"integer\"}}],"
           "\"responses\":{\"200\":{\"description\":\"A stream of changes\",\"content\":{"
           "\"text/event-stream\":{\"schema\":{\"type\":\"string\"}}}},\"503\":{"
           "\"description\":\"Too many open streams\"}}}},"
           "\"/api/v1/inbox\":{\"get\":{\"operationId\":\"inbox\",\"parameters\":[{\"name\":"
           "\"unread\",\"in\":\"query\",\"schema\":{\"enum\":[\"1\",\"0\",\"true\","
           "\"false\"]}},{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":"
           "\"integer\"}},{\"name\":\"cursor\",\"in\":\"query\",\"schema\":{\"type\":"
           "\"string\"}}],\"responses\":{\"200\":{\"description\":\"Messages, newest first, "
           "and the unread count\"}}}},\"/api/v1/inbox/count\":{\"get\":{\"operationId\":"
           "\"inbox_count\",\"responses\":{\"200\":{\"description\":\"Unread messages\"}}}},"
           "\"/api/v1/inbox/{id}/read\":{\"parameters\":[{\"name\":\"id\",\"in\":\"path\","
           "\"required\":true,\"schema\":{\"type\":\"integer\"}}],\"post\":{\"operationId\":"
           "\"inbox_read\",\"responses\":{\"200\":{\"description\":\"Marked read\"}}}},"
           "\"/api/v1/inbox/read-all\":{\"post\":{\"operationId\":\"inbox_read_all\","
           "\"responses\":{\"200\":{\"description\":\"How many were marked\"}}}},"
           "\"/api/v1/groups\":{\"get\":{\"operationId\":\"groups\",\"responses\":{\"200\":{"
           "\"description\":\"Groups (administrators)\"}}}},\"/api/v1/groups/{name}\":{"
           "\"parameters\":[{\"name\":\"name\",\"in\":\"path\",\"required\":true,\"schema\":{"
           "\"type\":\"string\"}}],\"get\":{\"operationId\":\"group\",\"responses\":{\"200\":"
           "{\"description\":\"The group\"}}},\"put\":{\"operationId\":\"put_group\","
           "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":{"
           "\"type\":\"object\",\"required\":[\"members\"],\"properties\":{\"labels\":{"
           "\"type\":\"object\"},\"members\":{\"type\":\"array\",\"items\":{\"type\":"
           "\"string\"}}}}}}},\"responses\":{\"200\":{\"description\":\"Stored\"}}},\"delete\":"
           "{\"operationId\":\"delete_group\",\"responses\":{\"204\":{\"description\":"
           "\"Removed\"}}}}");
    trl_buf_adds(o,
                 "},\"components\":{\"securitySchemes\":{\"bearer\":{\"type\":\"http\","
                 "\"scheme\":\"bearer\",\"description\":\"API token from trellis token create or "
                 "POST /api/v1/auth/tokens\"},\"session\":{\"type\":\"apiKey\",\"in\":\"cookie\","
                 "\"name\":\"trellis_session\",\"description\":\"Browser session from POST "
                 "/api/v1/auth/login; writes also need the X-CSRF-Token header\"}},"
                 "\"schemas\":{\"Problem\":{\"type\":\"object\",\"properties\":"
                 "{\"type\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"},\"status\":"
                 "{\"type\":\"integer\"},\"code\":{\"type\":\"string\"},\"detail\":{\"type\":"
                 "\"string\"},\"errors\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                 "\"properties\":{\"field\":{\"type\":\"string\"},\"code\":{\"type\":\"string\"},"
                 "\"message\":{\"type\":\"string\"}}}}}}");
    for (size_t i = 0; i < r->cat->ntypes; i++) {
        const struct trl_type *ty = r->cat->types[i];
        trl_buf_printf(o, ",\"%s\":{\"type\":\"object\",\"title\":", ty->name);
        trl_buf_add_json_str(o, ty->labels.en, strlen(ty->labels.en));
        trl_buf_adds(
            o, ",\"properties\":{\"id\":{\"type\":\"integer\",\"readOnly\":true},"
               "\"version\":{\"type\":\"integer\",\"readOnly\":true},"
               "\"type\":{\"type\":\"string\",\"readOnly\":true},"
               "\"name\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"owner\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"org\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"created_by\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"updated_by\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"state\":{\"type\":[\"string\",\"null\"],\"readOnly\":true},"
               "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\",\"readOnly\":true},"
               "\"updated_at\":{\"type\":\"string\",\"format\":\"date-time\",\"readOnly\":true}");
        for (size_t k = 0; k < ty->nfields; k++) {
            trl_buf_printf(o, ",\"%s\":", ty->fields[k].name);
            schema_of_field(o, &ty->fields[k]);
        }
        trl_buf_adds(o, "}");
        size_t nreq = 0;
        for (size_t k = 0; k < ty->nfields; k++)
            if (ty->fields[k].required && !ty->fields[k].has_default)
                trl_buf_printf(o, "%s\"%s\"", nreq++ ? "," : ",\"required\":[", ty->fields[k].name);
        if (nreq) trl_buf_addc(o, ']');
        trl_buf_addc(o, '}');
        /* PATCH bodies: any subset of the fields, nothing required; null removes a value. */
        trl_buf_printf(o,
                       ",\"%s_patch\":{\"type\":\"object\",\"description\":\"Any subset of "
                       "the fields of %s; null removes a value.\",\"properties\":{",
                       ty->name, ty->name);
        for (size_t k = 0; k < ty->nfields; k++)
            trl_buf_printf(o, "%s\"%s\":{\"$ref\":\"#/components/schemas/%s/properties/%s\"}",
                           k ? "," : "", ty->fields[k].name, ty->name, ty->fields[k].name);
        trl_buf_adds(o, "}}");
    }
    trl_buf_adds(o, "}}}");
    ok_json(r, 200);
}

static void healthz(struct req *r)
{
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    trl_txn_end(t);
    trl_buf_printf(&r->out, "{\"status\":\"ok\",\"types\":%zu}", r->cat->ntypes);
    ok_json(r, 200);
}

static void metrics(struct req *r)
{
    struct trl_server *s = r->srv;
    struct trl_buf *o = &r->out;
    size_t map, cap, used;
    uint64_t batches, jobs;
    trl_store_stats(s->store, &map, &cap, &used);
    trl_store_writer_stats(s->store, &batches, &jobs);
    trl_buf_adds(o, "# HELP trellis_http_requests_total HTTP requests answered, by status class.\n"
                    "# TYPE trellis_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        trl_buf_printf(o, "trellis_http_requests_total{class=\"%dxx\"} %llu\n", c,
                       (unsigned long long)atomic_load(&s->n_status[c]));
    trl_buf_adds(o, "# HELP trellis_http_request_duration_seconds Request latency.\n"
                    "# TYPE trellis_http_request_duration_seconds histogram\n");
    static const char *le[11] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                 "0.05",   "0.1",   "0.25",   "0.5",   "1"};
    uint64_t cum = 0;
    for (int b = 0; b < 11; b++) {
        cum += atomic_load(&s->lat_bucket[b]);
        trl_buf_printf(o, "trellis_http_request_duration_seconds_bucket{le=\"%s\"} %llu\n", le[b],
                       (unsigned long long)cum);
    }
    cum += atomic_load(&s->lat_bucket[11]);
    trl_buf_printf(o, "trellis_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                   (unsigned long long)cum);
    trl_buf_printf(o, "trellis_http_request_duration_seconds_sum %.6f\n",
                   (double)atomic_load(&s->latency_us_sum) / 1e6);
    trl_buf_printf(o, "trellis_http_request_duration_seconds_count %llu\n",
                   (unsigned long long)cum);
    trl_buf_printf(
        o,
        "# HELP trellis_http_deadline_cuts_total Connections cut by the per-request deadline.\n"
        "# TYPE trellis_http_deadline_cuts_total counter\n"
        "trellis_http_deadline_cuts_total %llu\n",
        (unsigned long long)atomic_load(&s->n_deadline_kills));
    unsigned per_worker[TRL_HTTP_MAX_WORKERS];
    pthread_mutex_lock(&s->conn_lock);
    unsigned open_conns = s->nconns, nworkers = s->nworkers;
    for (unsigned i = 0; i < nworkers; i++)
        per_worker[i] = s->workers[i].nconns;
    pthread_mutex_unlock(&s->conn_lock);
    trl_buf_printf(o,
                   "# HELP trellis_http_connections Open HTTP connections.\n"
                   "# TYPE trellis_http_connections gauge\ntrellis_http_connections %u\n"
                   "# HELP trellis_http_connections_refused_total Connections closed at once "
                   "because the per-address limit was reached (or memory ran out).\n"
                   "# TYPE trellis_http_connections_refused_total counter\n"
                   "trellis_http_connections_refused_total %llu\n"
                   "# HELP trellis_http_worker_connections Open HTTP connections per worker "
                   "thread.\n"
                   "# TYPE trellis_http_worker_connections gauge\n",
                   open_conns, (unsigned long long)atomic_load(&s->n_conn_refused));
    for (unsigned i = 0; i < nworkers; i++)
        trl_buf_printf(o, "trellis_http_worker_connections{worker=\"%u\"} %u\n", i, per_worker[i]);
    trl_buf_printf(o,
                   "# HELP trellis_event_streams Open GET /api/v1/events streams.\n"
                   "# TYPE trellis_event_streams gauge\ntrellis_event_streams %d\n",
                   atomic_load(&s->n_streams));
    trl_buf_printf(o,
                   "# HELP trellis_timers_fired_total SLA and escalation timers fired.\n"
                   "# TYPE trellis_timers_fired_total counter\n"
                   "trellis_timers_fired_total %llu\n",
                   (unsigned long long)atomic_load(&s->n_timers_fired));
    if (s->hooks) {
        struct trl_hooks_engine_stats hs;
        trl_hooks_engine_stats(s->hooks, &hs);
        trl_buf_printf(o,
                       "# HELP trellis_hook_calls_total Lua hook functions called.\n"
                       "# TYPE trellis_hook_calls_total counter\ntrellis_hook_calls_total %llu\n"
                       "# HELP trellis_hook_errors_total Hook calls that failed or refused.\n"
                       "# TYPE trellis_hook_errors_total counter\ntrellis_hook_errors_total %llu\n"
                       "# HELP trellis_hook_vms Lua VMs made (one per thread that ran hooks).\n"
                       "# TYPE trellis_hook_vms gauge\ntrellis_hook_vms %zu\n",
                       (unsigned long long)hs.calls, (unsigned long long)hs.errors, hs.vms);
    }
    trl_buf_printf(
        o,
        "# HELP trellis_store_commits_total Group commits of the writer.\n"
        "# TYPE trellis_store_commits_total counter\ntrellis_store_commits_total %llu\n"
        "# HELP trellis_store_write_jobs_total Write jobs run by the writer.\n"
        "# TYPE trellis_store_write_jobs_total counter\ntrellis_store_write_jobs_total %llu\n",
        (unsigned long long)batches, (unsigned long long)jobs);
    trl_buf_printf(o,
                   "# HELP trellis_store_map_bytes Store map size, cap and bytes in use.\n"
                   "# TYPE trellis_store_map_bytes gauge\n"
                   "trellis_store_map_bytes{kind=\"size\"} %zu\n"
                   "trellis_store_map_bytes{kind=\"cap\"} %zu\n"
                   "trellis_store_map_bytes{kind=\"used\"} %zu\n",
                   map, cap, used);
    struct trl_txn *t;
    if (trl_store_read(s->store, &t) == 0) {
        trl_buf_adds(o, "# HELP trellis_records Records per type.\n# TYPE trellis_records gauge\n");
        for (size_t i = 0; i < r->cat->ntypes; i++) {
            uint64_t n = 0;
            trl_rec_count(t, r->cat->types[i], &n);
            trl_buf_printf(o, "trellis_records{type=\"%s\"} %llu\n", r->cat->types[i]->name,
                           (unsigned long long)n);
        }
        trl_txn_end(t);
    }
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---------------------------------------------------------------------------------------------
 * The router
 */
static bool prefix(const char *s, const char *p, const char **rest)
{
    size_t n = strlen(p);
    if (strncmp(s, p, n) != 0) return false;
    *rest = s + n;
    return true;
}

static void only_get(struct req *r, void (*fn)(struct req *))
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET here", "此处只支持 GET");
    }
    fn(r);
}

/* ---------------------------------------------------------------------------------------------
 * Authentication: a Bearer API token or a session cookie. Fills r->who.
 */
static void audit_async(struct req *r, const char *action, const char *target, const char *detail);

#define SESSION_COOKIE "trellis_session"
/* Over TLS the cookie is Secure and carries the __Host- prefix (host-only, Path=/, Secure). */
#define SESSION_COOKIE_TLS "__Host-trellis_session"

static const char *cookie_name(const struct req *r)
{
    return r->srv->tls ? SESSION_COOKIE_TLS : SESSION_COOKIE;
}
#define SESSION_IDLE_MS     (30LL * 60 * 1000)   /* 30 minutes without a request */
#define SESSION_ABSOLUTE_MS (12LL * 3600 * 1000) /* 12 hours in all */

/* The caller behind a credential as of now, filled into who: a Bearer token's secret (bearer:
 * the token's roles) or a session cookie's secret (the user's roles); the user's groups either
 * way. tok and ss (may be NULL) receive the token or the session. 0 or the refusal (TRL_EAUTH:
 * unknown, revoked, expired, user disabled) or a read error. */
static int credential_who(struct trl_txn *t, int64_t now, bool bearer, const char *secret,
                          struct trl_principal *who, struct trl_token *tok, struct trl_session *ss)
{
    struct trl_user u;
    struct trl_token tk;
    struct trl_session se;
    if (!tok) tok = &tk;
    if (!ss) ss = &se;
    int rc = bearer ? trl_auth_token_check(t, secret, now, tok, &u)
                    : trl_auth_session_check(t, secret, now, ss, &u);
    if (!rc) rc = trl_auth_user_groups(t, u.name, who->groups, 16, &who->ngroups);
    if (rc) return rc;
    if (bearer)
        trl_auth_principal(&u, (const char(*)[64])tok->roles, tok->nroles, who);
    else
        trl_auth_principal(&u, (const char(*)[64])u.roles, u.nroles, who);
    return 0;
}

int trl_http_principal(struct trl_server *s, bool bearer, const char *secret,
                       struct trl_principal *who)
{
    struct trl_txn *t;
    int rc = trl_store_read(s->store, &t);
    if (rc) return rc;
    rc = credential_who(t, trl_clock_now(s->clock), bearer, secret, who, NULL, NULL);
    trl_txn_end(t);
    return rc;
}

/* Write jobs no request waits for (session refreshes, audit entries): calloc'd structs whose
 * first member is struct detached. The server counts them so that a stop waits for them. */
struct detached {
    struct trl_write_job job; /* queued to the writer */
    struct trl_server *srv;   /* for the pending count */
    const char *what;         /* for the log line when one fails */
};

static void detached_done(void *arg, int rc)
{
    struct detached *dj = arg;
    if (rc) trl_log(TRL_LOG_WARN, "%s failed: %s", dj->what, trl_err_token(rc));
    atomic_fetch_sub(&dj->srv->pending_jobs, 1);
    free(dj);
}

/* Queues dj (taking ownership: freed when done, or at once when the store is closing). */
static void detached_submit(struct trl_server *s, struct detached *dj, trl_write_fn fn,
                            const char *what)
{
    dj->srv = s;
    dj->what = what;
    dj->job.fn = fn;
    dj->job.done = detached_done;
    dj->job.arg = dj;
    atomic_fetch_add(&s->pending_jobs, 1);
    if (trl_store_submit(s->store, &dj->job)) {
        atomic_fetch_sub(&s->pending_jobs, 1);
        free(dj);
    }
}

struct touch_job {
    struct detached base; /* first: the job */
    char secret[80];      /* the session to refresh */
    int64_t now;          /* when it was seen */
};

static int touch_fn(struct trl_txn *t, void *arg)
{
    struct touch_job *tj = arg;
    int rc = trl_auth_session_touch(t, tj->secret, tj->now);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

/* Idle expiry slides: a session seen again after a minute is refreshed by a small write job. */
static void touch_session(struct req *r, const struct trl_session *ss, int64_t now)
{
    if (now - ss->last_seen_at < 60000) return;
    struct touch_job *tj = calloc(1, sizeof(*tj));
    if (!tj) return;
    tj->now = now;
    snprintf(tj->secret, sizeof(tj->secret), "%s", r->session);
    detached_submit(r->srv, &tj->base, touch_fn, "session refresh");
}

static bool session_cookie(struct req *r, char *out, size_t n)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, cookie_name(r));
    if (!v || strlen(v) >= n) return false;
    snprintf(out, n, "%s", v);
    return true;
}

static bool unauthenticated(struct req *r, const char *www, const char *en, const char *zh)
{
    snprintf(r->www_auth, sizeof(r->www_auth), "%s", www);
    trl_http_fail(r, TRL_EAUTH, "Authorization", en, zh);
    return false;
}

/* A Bearer API token, or the session cookie of a browser login (whose writes must also carry
 * the session's X-CSRF-Token). Fills r->who. */
static bool authenticate(struct req *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    char cookie[80];
    bool bearer = h && strncasecmp(h, "Bearer ", 7) == 0;
    if (!bearer && !session_cookie(r, cookie, sizeof(cookie)))
        return unauthenticated(
            r, "Bearer realm=\"trellis\"",
            "log in (POST /api/v1/auth/login) or send an API token: Authorization: Bearer <token>",
            "请先登录(POST /api/v1/auth/login)或发送 API 令牌:Authorization: Bearer <令牌>");
    struct trl_txn *t;
    if (read_begin(r, &t)) return false;
    int64_t now = trl_clock_now(r->srv->clock);
    const char *secret = cookie;
    if (bearer) {
        secret = h + 7;
        while (*secret == ' ')
            secret++;
    }
    struct trl_token tok;
    struct trl_session ss;
    int rc = credential_who(t, now, bearer, secret, &r->who, &tok, &ss);
    trl_txn_end(t);
    if (bearer) {
        if (rc)
            return unauthenticated(r, "Bearer realm=\"trellis\", error=\"invalid_token\"",
                                   "the token is unknown, revoked or expired, or its user is "
                                   "disabled",
                                   "令牌无效、已吊销或已过期,或其用户已停用");
        snprintf(r->token_name, sizeof(r->token_name), "%s", tok.name);
        r->bearer = secret;
        return true;
    }
    if (rc)
        return unauthenticated(r, "Bearer realm=\"trellis\"",
                               "the session has ended or expired; log in again",
                               "会话已结束或已过期,请重新登录");
    snprintf(r->session, sizeof(r->session), "%s", cookie);
    bool safe = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (!safe) {
        /* CSRF: a cookie rides along on any cross-site request; the token does not. */
        const char *x = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
        if (!x || strlen(x) != 64 || sodium_memcmp(x, ss.csrf, 64) != 0) {
            audit_async(r, "forbidden", r->url, "missing or wrong X-CSRF-Token");
            trl_http_fail(r, TRL_EFORBIDDEN, "X-CSRF-Token",
                          "writes with a session cookie need the session's X-CSRF-Token header",
                          "使用会话 Cookie 的写操作需要该会话的 X-CSRF-Token 请求头");
            return false;
        }
    }
    touch_session(r, &ss, now);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Audit: in the txn of the change it records, or as a small write job of its own (refusals and
 * failed logins, which change nothing else).
 */
static int audit_now(struct req *r, struct trl_txn *t, const char *action, const char *target,
                     const char *detail)
{
    struct trl_audit a = {.actor = r->who.user,
                          .action = action,
                          .target = target,
                          .client = r->client,
                          .detail = detail};
    return trl_auth_audit(t, trl_clock_now(r->srv->clock), &a);
}

struct audit_job {
    struct detached base; /* first: the job */
    int64_t now;          /* when it happened */
    char actor[64], action[32], target[256], client[64], detail[128];
};

static int audit_fn(struct trl_txn *t, void *arg)
{
    struct audit_job *j = arg;
    struct trl_audit a = {.actor = j->actor,
                          .action = j->action,
                          .target = j->target,
                          .client = j->client,
                          .detail = j->detail};
    return trl_auth_audit(t, j->now, &a);
}

static void audit_async(struct req *r, const char *action, const char *target, const char *detail)
{
    struct audit_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->now = trl_clock_now(r->srv->clock);
    snprintf(j->actor, sizeof(j->actor), "%s", r->who.user);
    snprintf(j->action, sizeof(j->action), "%s", action);
    snprintf(j->target, sizeof(j->target), "%s", target ? target : "");
    snprintf(j->client, sizeof(j->client), "%s", r->client);
    snprintf(j->detail, sizeof(j->detail), "%s", detail ? detail : "");
    detached_submit(r->srv, &j->base, audit_fn, "an audit entry");
}

void trl_http_audit_refusal(struct req *r)
{
    audit_async(r, "forbidden", r->url, r->method);
}

static bool admin_only(struct req *r)
{
    if (r->who.admin) return true;
    trl_http_fail(r, TRL_EFORBIDDEN, "", "only administrators may do this",
                  "只有管理员可以执行此操作");
    return false;
}

/* Shared with approvals.c (http_int.h). */
void trl_http_ok(struct req *r, int status)
{
    ok_json(r, status);
}
void trl_http_fail_d(struct req *r, int rc)
{
    fail_d(r, rc);
}
bool trl_http_check_args(struct req *r, const char *const *allowed)
{
    return check_args(r, allowed);
}
const char *trl_http_arg(struct req *r, const char *name)
{
    return arg(r, name);
}
int trl_http_read_begin(struct req *r, struct trl_txn **t)
{
    return read_begin(r, t);
}
void trl_http_queue_write(struct req *r, write_exec_fn exec, bool barrier)
{
    queue_write(r, exec, barrier);
}
void trl_http_rec_ctx(struct req *r, struct trl_rec_ctx *cx)
{
    rec_ctx(r, cx);
}
bool trl_http_parse_id(const char *s, size_t n, uint64_t *id)
{
    return parse_id(s, n, id);
}
bool trl_http_admin_only(struct req *r)
{
    return admin_only(r);
}

static void auth_me(struct req *r)
{
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_user u;
    int rc = trl_auth_user_get(t, r->who.user, &u);
    trl_txn_end(t);
    if (rc) return trl_http_fail(r, TRL_EAUTH, "", "the user is gone", "用户不存在");
    trl_buf_adds(&r->out, "{\"user\":");
    trl_auth_user_json(&u, &r->out);
    trl_buf_adds(&r->out, ",\"token\":");
    trl_buf_add_json_str(&r->out, r->token_name, strlen(r->token_name));
    trl_buf_printf(&r->out, ",\"admin\":%s}", r->who.admin ? "true" : "false");
    ok_json(r, 200);
}

/* ---------------------------------------------------------------------------------------------
 * Users, orgs and API tokens (administrators; a user may read and change some of their own)
 */
struct user_edit {
    struct trl_user u;    /* the user as it should be stored (filled in the writer for PATCH) */
    cJSON *patch;         /* the PATCH body (borrowed from r->json) */
    bool create;          /* POST */
    char pwhash[128];     /* a new password's hash, "" for none */
    struct trl_token tok; /* token to create */
    char secret[80];      /* the new token's secret */
};

static bool json_strings(const cJSON *a, char (*out)[64], size_t cap, size_t *n)
{
    *n = 0;
    if (!cJSON_IsArray(a)) return false;
    for (const cJSON *e = a->child; e; e = e->next) {
        if (!cJSON_IsString(e) || *n == cap || strlen(e->valuestring) >= 64) return false;
        snprintf(out[(*n)++], 64, "%s", e->valuestring);
    }
    return true;
}

/* Applies the members of j to u; refuses unknown members and wrong types naming the field. */
static int user_apply(struct req *r, const cJSON *j, struct trl_user *u, bool self_only)
{
    static const char *self_ok[] = {"display_name", "email", "language", "password"};
    for (const cJSON *m = j->child; m; m = m->next) {
        const char *k = m->string;
        bool allowed = !self_only;
        for (size_t i = 0; i < 4 && !allowed; i++)
            allowed = strcmp(k, self_ok[i]) == 0;
        if (!allowed) {
            trl_diag_add_ferr(&r->d, k, "read_only", "");
            continue;
        }
        char *dst = NULL;
        size_t cap = 0;
        if (strcmp(k, "name") == 0)
            dst = u->name, cap = sizeof(u->name);
        else if (strcmp(k, "display_name") == 0)
            dst = u->display, cap = sizeof(u->display);
        else if (strcmp(k, "email") == 0)
            dst = u->email, cap = sizeof(u->email);
        else if (strcmp(k, "language") == 0)
            dst = u->lang, cap = sizeof(u->lang);
        else if (strcmp(k, "org") == 0)
            dst = u->org, cap = sizeof(u->org);
        else if (strcmp(k, "manager") == 0)
            dst = u->manager, cap = sizeof(u->manager);
        else if (strcmp(k, "region") == 0)
            dst = u->region, cap = sizeof(u->region);
        if (dst) {
            if (cJSON_IsNull(m))
                dst[0] = 0;
            else if (!cJSON_IsString(m) || strlen(m->valuestring) >= cap)
                trl_diag_add_ferr(&r->d, k, "type", "a string");
            else
                snprintf(dst, cap, "%s", m->valuestring);
        } else if (strcmp(k, "roles") == 0) {
            if (!json_strings(m, u->roles, TRL_AUTH_MAX_ROLES, &u->nroles))
                trl_diag_add_ferr(&r->d, k, "type", "a list of role names");
        } else if (strcmp(k, "skills") == 0) {
            if (!json_strings(m, u->skills, TRL_AUTH_MAX_SKILLS, &u->nskills))
                trl_diag_add_ferr(&r->d, k, "type", "a list of skills");
        } else if (strcmp(k, "active") == 0) {
            if (!cJSON_IsBool(m))
                trl_diag_add_ferr(&r->d, k, "type", "true or false");
            else
                u->active = cJSON_IsTrue(m);
        } else if (strcmp(k, "password") != 0) {
            trl_diag_add_ferr(&r->d, k, "unknown_field", "");
        }
    }
    if (!r->d.nferrs) return 0;
    trl_diag_set(&r->d, TRL_EVALIDATION, "the user has invalid members");
    trl_diag_zh(&r->d, "用户数据无效");
    return TRL_EVALIDATION;
}

static int exec_user(struct req *r, struct trl_txn *t)
{
    struct user_edit *e = r->aux;
    int64_t now = trl_clock_now(r->srv->clock);
    struct trl_user cur;
    int rc = trl_auth_user_get(t, e->create ? e->u.name : r->type_name, &cur);
    if (e->create) {
        if (rc == 0) {
            trl_diag_set(&r->d, TRL_EEXIST, "user '%s' exists", e->u.name);
            trl_diag_zh(&r->d, "用户“%s”已存在", e->u.name);
            trl_diag_field(&r->d, "name");
            return TRL_EEXIST;
        }
        e->u.created_at = now;
    } else {
        if (rc) {
            trl_diag_set(&r->d, TRL_ENOTFOUND, "no user '%s'", r->type_name);
            return TRL_ENOTFOUND;
        }
        struct trl_user next = cur;
        if ((rc = user_apply(r, e->patch, &next, !r->who.admin))) return rc;
        if (strcmp(next.name, cur.name) != 0) {
            trl_diag_add_ferr(&r->d, "name", "read_only", "");
            trl_diag_set(&r->d, TRL_EVALIDATION, "a user cannot be renamed");
            return TRL_EVALIDATION;
        }
        e->u = next;
    }
    if (e->pwhash[0]) {
        snprintf(e->u.pwhash, sizeof(e->u.pwhash), "%s", e->pwhash);
        e->u.pw_changed_at = now;
    }
    if ((rc = trl_auth_user_put(t, &e->u, &r->d))) return rc;
    if ((rc = audit_now(r, t, e->create ? "user_create" : "user_update", e->u.name,
                        e->pwhash[0] ? "password set" : "")))
        return rc;
    rc = trl_auth_user_json(&e->u, &r->out);
    ok_json(r, e->create ? 201 : 200);
    return rc;
}

static void users_route(struct req *r, const char *name)
{
    const char *m = r->method;
    bool self = *name && strcmp(name, r->who.user) == 0;
    if (!*name) {
        if (!admin_only(r)) return;
        if (strcmp(m, "GET") == 0) return list_items(r, trl_auth_user_list);
        if (strcmp(m, "POST") != 0) {
            snprintf(r->allow, sizeof(r->allow), "GET, POST");
            return trl_http_fail(r, TRL_EMETHOD, "", "use GET or POST here",
                                 "此处只支持 GET 或 POST");
        }
    } else if (!self && !admin_only(r)) {
        return;
    }
    if (*name && strcmp(m, "GET") == 0) {
        struct trl_txn *t;
        if (read_begin(r, &t)) return;
        struct trl_user u;
        int rc = trl_auth_user_get(t, name, &u);
        trl_txn_end(t);
        if (rc) return trl_http_fail(r, TRL_ENOTFOUND, "name", "no such user", "不存在该用户");
        trl_auth_user_json(&u, &r->out);
        return ok_json(r, 200);
    }
    if (*name && strcmp(m, "PATCH") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, PATCH");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET or PATCH here",
                             "此处只支持 GET 或 PATCH");
    }
    /* POST /users or PATCH /users/{name}: the body is a JSON object. */
    if (trl_http_parse_object(r)) return;
    struct user_edit *e = trl_arena_alloc(&r->arena, sizeof(*e));
    if (!e) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(e, 0, sizeof(*e));
    e->create = !*name;
    e->patch = r->json;
    if (e->create) {
        snprintf(e->u.lang, sizeof(e->u.lang), "en");
        e->u.active = true;
        if (user_apply(r, r->json, &e->u, false)) return trl_http_problem(r);
        if (!e->u.display[0]) snprintf(e->u.display, sizeof(e->u.display), "%s", e->u.name);
    }
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(r->json, "password");
    if (pw) {
        /* Hashed here, not in the writer: it takes about 50 ms. */
        if (!cJSON_IsString(pw) || trl_auth_password_hash(pw->valuestring, e->pwhash, &r->d))
            return fail_d(r, r->d.code ? r->d.code : TRL_EVALIDATION);
    }
    r->aux = e;
    r->type_name = strdup(name);
    if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    r->ty = NULL;
    queue_write(r, exec_user, false);
}

static int exec_org(struct req *r, struct trl_txn *t)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(r->json, "name");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(r->json, "labels");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(l, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(l, "zh-CN");
    if (!cJSON_IsString(n)) {
        trl_diag_add_ferr(&r->d, "name", "required", "");
        return trl_diag_set(&r->d, TRL_EVALIDATION, "an org needs a name");
    }
    int rc = trl_auth_org_put(t, n->valuestring, cJSON_IsString(en) ? en->valuestring : NULL,
                              cJSON_IsString(zh) ? zh->valuestring : NULL, &r->d);
    if (rc) return rc;
    trl_buf_adds(&r->out, "{\"name\":");
    trl_buf_add_json_str(&r->out, n->valuestring, strlen(n->valuestring));
    trl_buf_addc(&r->out, '}');
    ok_json(r, 201);
    return 0;
}

static void orgs_route(struct req *r)
{
    if (!admin_only(r)) return;
    if (strcmp(r->method, "GET") == 0) return list_items(r, trl_auth_org_list);
    if (strcmp(r->method, "POST") != 0) {
        snprintf(r->allow, sizeof(r->allow), "GET, POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET or POST here", "此处只支持 GET 或 POST");
    }
    if (trl_http_parse_object(r)) return;
    queue_write(r, exec_org, false);
}

static int exec_token(struct req *r, struct trl_txn *t)
{
    struct user_edit *e = r->aux;
    if (strcmp(r->method, "DELETE") == 0) {
        /* Only administrators revoke other users' tokens (others' are not found for them). */
        struct trl_token tok;
        int rc = trl_auth_token_get(t, r->type_name, &tok);
        if (!rc && strcmp(tok.user, r->who.user) != 0 && !r->who.admin) rc = TRL_ENOTFOUND;
        if (!rc) rc = trl_auth_token_revoke(t, r->type_name);
        if (!rc) rc = audit_now(r, t, "token_revoke", r->type_name, tok.user);
        if (rc == TRL_ENOTFOUND) {
            trl_diag_set(&r->d, rc, "no token '%s'", r->type_name);
            trl_diag_zh(&r->d, "不存在令牌“%s”", r->type_name);
        }
        if (!rc) r->status = 204;
        return rc;
    }
    e->tok.created_at = trl_clock_now(r->srv->clock);
    if (e->tok.expires_at) e->tok.expires_at = e->tok.created_at + e->tok.expires_at * 86400000;
    if (e->tok.nroles == 0) {
        struct trl_user u;
        if (trl_auth_user_get(t, e->tok.user, &u) == 0) {
            memcpy(e->tok.roles, u.roles, sizeof(e->tok.roles));
            e->tok.nroles = u.nroles;
        }
    }
    int rc = trl_auth_token_create(t, &e->tok, e->secret, &r->d);
    if (rc) return rc;
    if ((rc = audit_now(r, t, "token_create", e->tok.name, e->tok.user))) return rc;
    trl_buf_adds(&r->out, "{\"name\":");
    trl_buf_add_json_str(&r->out, e->tok.name, strlen(e->tok.name));
    trl_buf_adds(&r->out, ",\"user\":");
    trl_buf_add_json_str(&r->out, e->tok.user, strlen(e->tok.user));
    trl_buf_printf(&r->out, ",\"token\":\"%s\"}", e->secret);
    ok_json(r, 201);
    return 0;
}

static void tokens_route(struct req *r, const char *name)
{
    if (!*name && strcmp(r->method, "GET") == 0) {
        if (!admin_only(r)) return;
        return list_items(r, trl_auth_token_list);
    }
    struct user_edit *e = trl_arena_alloc(&r->arena, sizeof(*e));
    if (!e) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(e, 0, sizeof(*e));
    r->aux = e;
    if (*name && strcmp(r->method, "DELETE") == 0) {
        r->type_name = strdup(name);
        if (!r->type_name) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
        return queue_write(r, exec_token, false);
    }
    if (*name || strcmp(r->method, "POST") != 0) {
        snprintf(r->allow, sizeof(r->allow), *name ? "DELETE" : "GET, POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use POST to create, DELETE to revoke",
                             "用 POST 创建,用 DELETE 吊销");
    }
    if (trl_http_parse_object(r)) return;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(r->json, "name");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(r->json, "user");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(r->json, "expires_days");
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(r->json, "roles");
    if (!cJSON_IsString(n) || strlen(n->valuestring) >= 64)
        trl_diag_add_ferr(&r->d, "name", "required", "");
    if (u && (!cJSON_IsString(u) || strlen(u->valuestring) >= 64))
        trl_diag_add_ferr(&r->d, "user", "type", "a string");
    if (x && (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 3650))
        trl_diag_add_ferr(&r->d, "expires_days", "range", "");
    if (roles && !json_strings(roles, e->tok.roles, TRL_AUTH_MAX_ROLES, &e->tok.nroles))
        trl_diag_add_ferr(&r->d, "roles", "type", "a list of role names");
    if (r->d.nferrs) {
        trl_diag_set(&r->d, TRL_EVALIDATION, "the token request is invalid");
        trl_diag_zh(&r->d, "令牌请求无效");
        return trl_http_problem(r);
    }
    snprintf(e->tok.name, sizeof(e->tok.name), "%s", n->valuestring);
    snprintf(e->tok.user, sizeof(e->tok.user), "%s", u ? u->valuestring : r->who.user);
    /* A user makes tokens for themself; administrators for anyone. */
    if (strcmp(e->tok.user, r->who.user) != 0 && !admin_only(r)) return;
    e->tok.expires_at = x ? (int64_t)x->valuedouble : 0; /* days; made absolute in the writer */
    queue_write(r, exec_token, false);
}

/* ---------------------------------------------------------------------------------------------
 * Browser login: POST /api/v1/auth/login {username, password} -> session cookie + CSRF token
 */
struct login {
    char user[64];        /* the name given */
    char password[1100];  /* cleared after hashing */
    char hash[128];       /* the stored hash, or a dummy one (same cost for unknown users) */
    bool known;           /* the user exists and is active */
    char old_session[80]; /* a session cookie the client already had (login rotates it) */
    char secret[80];      /* the new session */
    struct trl_session s; /* its record */
};

static int exec_login(struct req *r, struct trl_txn *t)
{
    struct login *lg = r->aux;
    int64_t now = trl_clock_now(r->srv->clock);
    /* A new session every time (no fixation); the one the client came with ends. */
    if (lg->old_session[0]) {
        int rc = trl_auth_session_end(t, lg->old_session);
        if (rc && rc != TRL_ENOTFOUND) return rc;
    }
    int rc = trl_auth_session_create(t, lg->user, now, SESSION_IDLE_MS, SESSION_ABSOLUTE_MS,
                                     lg->secret, &lg->s);
    if (rc) return rc;
    snprintf(r->who.user, sizeof(r->who.user), "%s", lg->user);
    if ((rc = audit_now(r, t, "login", lg->user, ""))) return rc;
    snprintf(r->set_cookie, sizeof(r->set_cookie),
             "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%lld%s", cookie_name(r), lg->secret,
             SESSION_ABSOLUTE_MS / 1000, r->srv->tls ? "; Secure" : "");
    struct trl_user u;
    if ((rc = trl_auth_user_get(t, lg->user, &u))) return rc;
    trl_buf_adds(&r->out, "{\"user\":");
    trl_auth_user_json(&u, &r->out);
    trl_buf_printf(&r->out, ",\"csrf_token\":\"%s\"}", lg->s.csrf);
    ok_json(r, 200);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Brute-force throttle: after 3 failures in a row, each further attempt for that account (or
 * from that client address) must wait 1, 2, 4 ... seconds, at most 60 s for an account (so an
 * attacker cannot lock a real user out for long) and 15 minutes for an address. A success clears
 * the account; an hour without failures forgets both.
 */
#define THROTTLE_FREE      3
#define THROTTLE_FORGET_MS (3600LL * 1000)

static struct throttle *throttle_slot(struct trl_server *s, const char *key, bool create)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    size_t n = sizeof(s->throttle) / sizeof(s->throttle[0]);
    struct throttle *oldest = NULL;
    for (size_t i = 0; i < 16; i++) {
        struct throttle *t = &s->throttle[(h + i) % n];
        if (strcmp(t->key, key) == 0) return t;
        if (!oldest || !t->key[0] || t->last_ms < oldest->last_ms) oldest = t;
    }
    if (!create) return NULL;
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->key, sizeof(oldest->key), "%s", key);
    return oldest;
}

/* Milliseconds the caller must still wait (0: go ahead). */
static int64_t throttle_wait(struct trl_server *s, const char *user, const char *client)
{
    char k[2][80];
    snprintf(k[0], sizeof(k[0]), "u:%.70s", user);
    snprintf(k[1], sizeof(k[1]), "a:%.70s", client);
    int64_t now = trl_mono_ms(), wait = 0;
    pthread_mutex_lock(&s->tlock);
    for (int i = 0; i < 2; i++) {
        struct throttle *t = throttle_slot(s, k[i], false);
        if (!t) continue;
        if (now - t->last_ms > THROTTLE_FORGET_MS) {
            t->key[0] = 0;
            continue;
        }
        if (t->until_ms - now > wait) wait = t->until_ms - now;
    }
    pthread_mutex_unlock(&s->tlock);
    return wait;
}

static void throttle_result(struct trl_server *s, const char *user, const char *client, bool ok)
{
    char k[2][80];
    snprintf(k[0], sizeof(k[0]), "u:%.70s", user);
    snprintf(k[1], sizeof(k[1]), "a:%.70s", client);
    int64_t now = trl_mono_ms();
    pthread_mutex_lock(&s->tlock);
    for (int i = 0; i < 2; i++) {
        struct throttle *t = throttle_slot(s, k[i], !ok);
        if (!t) continue;
        if (ok) {
            if (i == 0) t->key[0] = 0; /* the account is fine again */
            continue;
        }
        t->failures++;
        t->last_ms = now;
        if (t->failures > THROTTLE_FREE) {
            unsigned shift = t->failures - THROTTLE_FREE - 1;
            int64_t cap = i == 0 ? 60000 : 900000;
            int64_t d = shift > 20 ? cap : (int64_t)1000 << shift;
            t->until_ms = now + (d < cap ? d : cap);
        }
    }
    pthread_mutex_unlock(&s->tlock);
}

void trl_http_login_hash(struct req *r)
{
    struct login *lg = r->aux;
    bool ok = trl_auth_password_verify(lg->hash, lg->password) && lg->known;
    sodium_memzero(lg->password, sizeof(lg->password));
    throttle_result(r->srv, lg->user, r->client, ok);
    if (ok) {
        r->hashing = false;
        r->exec = exec_login;
        return trl_http_submit_write(r);
    }
    trl_http_fail(r, TRL_EAUTH, "password", "wrong user name or password", "用户名或密码错误");
    audit_async(r, "login_failed", lg->user,
                lg->known ? "wrong password" : "unknown or inactive user");
    trl_http_resume(r);
}

static void login_route(struct req *r)
{
    if (strcmp(r->method, "POST") != 0) {
        snprintf(r->allow, sizeof(r->allow), "POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use POST here", "此处只支持 POST");
    }
    if (trl_http_parse_object(r)) return;
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(r->json, "username");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(r->json, "password");
    if (!cJSON_IsString(un) || !cJSON_IsString(pw) || strlen(un->valuestring) >= 64 ||
        strlen(pw->valuestring) >= 1100) {
        if (!cJSON_IsString(un)) trl_diag_add_ferr(&r->d, "username", "required", "");
        if (!cJSON_IsString(pw)) trl_diag_add_ferr(&r->d, "password", "required", "");
        trl_diag_set(&r->d, TRL_EVALIDATION, "send {\"username\": ..., \"password\": ...}");
        trl_diag_zh(&r->d, "请发送 {\"username\": ..., \"password\": ...}");
        return trl_http_problem(r);
    }
    int64_t wait = throttle_wait(r->srv, un->valuestring, r->client);
    if (wait > 0) {
        snprintf(r->retry_after, sizeof(r->retry_after), "%u",
                 (unsigned)((wait + 999) / 1000 % 100000));
        audit_async(r, "login_throttled", un->valuestring, "");
        return trl_http_fail(r, TRL_ERATELIMIT, "", "too many failed logins; wait and try again",
                             "登录失败次数过多,请稍后再试");
    }
    struct login *lg = trl_arena_alloc(&r->arena, sizeof(*lg));
    if (!lg) return trl_http_fail(r, TRL_ENOMEM, "", "out of memory", "内存不足");
    memset(lg, 0, sizeof(*lg));
    snprintf(lg->user, sizeof(lg->user), "%s", un->valuestring);
    snprintf(lg->password, sizeof(lg->password), "%s", pw->valuestring);
    session_cookie(r, lg->old_session, sizeof(lg->old_session));
    struct trl_txn *t;
    if (read_begin(r, &t)) return;
    struct trl_user u;
    lg->known = trl_auth_user_get(t, lg->user, &u) == 0 && u.active && u.pwhash[0];
    trl_txn_end(t);
    /* Unknown users cost the same hash as known ones, so timing does not tell which exist. */
    snprintf(lg->hash, sizeof(lg->hash), "%s", lg->known ? u.pwhash : r->srv->dummy_hash);
    r->aux = lg;
    r->hashing = true;
    r->suspended = true;
}

static int exec_logout(struct req *r, struct trl_txn *t)
{
    int rc = trl_auth_session_end(t, r->session);
    if (rc && rc != TRL_ENOTFOUND) return rc;
    if ((rc = audit_now(r, t, "logout", r->who.user, ""))) return rc;
    snprintf(r->set_cookie, sizeof(r->set_cookie),
             "%s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0%s", cookie_name(r),
             r->srv->tls ? "; Secure" : "");
    r->status = 204;
    return 0;
}

static void logout_route(struct req *r)
{
    if (strcmp(r->method, "POST") != 0) {
        snprintf(r->allow, sizeof(r->allow), "POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use POST here", "此处只支持 POST");
    }
    if (!r->session[0])
        return trl_http_fail(r, TRL_EINVAL, "",
                             "only a browser session can log out; revoke a token instead",
                             "只有浏览器会话可以注销;API 令牌请吊销");
    queue_write(r, exec_logout, false);
}

void trl_http_route(struct req *r)
{
    const char *u = r->url, *rest;
    trl_http_snapshot(r->srv, &r->cat, &r->wfs);
    if (strcmp(u, "/healthz") == 0) return only_get(r, healthz);
    if (strcmp(u, "/metrics") == 0) return only_get(r, metrics);
    if (strcmp(u, "/api/v1/auth/login") == 0) return login_route(r);
    if (!authenticate(r)) return;
    if (strcmp(u, "/api/v1/auth/me") == 0) return only_get(r, auth_me);
    if (strcmp(u, "/api/v1/events") == 0) return trl_http_one_method(r, "GET", trl_http_events);
    if (strcmp(u, "/api/v1/auth/logout") == 0) return logout_route(r);
    if (strcmp(u, "/api/v1/users") == 0) return users_route(r, "");
    if (prefix(u, "/api/v1/users/", &rest)) return users_route(r, rest);
    if (strcmp(u, "/api/v1/orgs") == 0) return orgs_route(r);
    if (strcmp(u, "/api/v1/groups") == 0) return trl_http_groups_route(r, "");
    if (prefix(u, "/api/v1/groups/", &rest)) return trl_http_groups_route(r, rest);
    if (strcmp(u, "/api/v1/approvals") == 0) return trl_http_approvals_route(r, "");
    if (prefix(u, "/api/v1/approvals/", &rest)) return trl_http_approvals_route(r, rest);
    if (strcmp(u, "/api/v1/inbox") == 0) return trl_http_inbox_route(r, "");
    if (prefix(u, "/api/v1/inbox/", &rest)) return trl_http_inbox_route(r, rest);
    if (strcmp(u, "/api/v1/audit") == 0) {
        if (!admin_only(r)) return;
        if (!check_args(r, (const char *const[]){"limit", "before", NULL})) return;
        const char *l = arg(r, "limit"), *b = arg(r, "before");
        int64_t lim = 100, before = 0;
        if ((l && (trl_parse_i64(l, strlen(l), &lim) || lim < 1 || lim > 1000)) ||
            (b && (trl_parse_i64(b, strlen(b), &before) || before < 1)))
            return trl_http_fail(r, TRL_EQUERY, l ? "limit" : "before",
                                 "limit is 1 to 1000 and before a sequence number",
                                 "limit 为 1 到 1000,before 为序号");
        struct trl_txn *t;
        if (read_begin(r, &t)) return;
        int rc = trl_auth_audit_list(t, (size_t)lim, (uint64_t)before, &r->out);
        trl_txn_end(t);
        if (rc) return fail_d(r, rc);
        return ok_json(r, 200);
    }
    if (strcmp(u, "/api/v1/auth/tokens") == 0) return tokens_route(r, "");
    if (prefix(u, "/api/v1/auth/tokens/", &rest)) return tokens_route(r, rest);
    /* The meta API is for administrators (issue 3 brings per-type permissions to records). */
    if (prefix(u, "/api/v1/meta/", &rest) && !admin_only(r)) return;
    if (strcmp(u, "/api/v1/openapi.json") == 0) return only_get(r, openapi);
    if (prefix(u, "/api/v1/records/", &rest)) return route_records(r, rest);
    if (strcmp(u, "/api/v1/meta/types") == 0) return meta_types(r, "");
    if (prefix(u, "/api/v1/meta/types/", &rest)) return meta_types(r, rest);
    if (strcmp(u, "/api/v1/meta/workflows") == 0) return meta_workflows(r, "");
    if (prefix(u, "/api/v1/meta/workflows/", &rest)) return meta_workflows(r, rest);
    if (strcmp(u, "/api/v1/meta/calendars") == 0) return trl_http_meta_calendars(r, "");
    if (prefix(u, "/api/v1/meta/calendars/", &rest)) return trl_http_meta_calendars(r, rest);
    if (strcmp(u, "/api/v1/test/clock") == 0) return trl_http_test_clock(r);
    if (prefix(u, "/api/v1/apps/", &rest)) return trl_http_app_endpoint(r, rest);
    if (strcmp(u, "/api/v1/reports") == 0) return trl_http_reports_route(r, "");
    if (prefix(u, "/api/v1/reports/", &rest)) return trl_http_reports_route(r, rest);
    if (prefix(u, "/api/v1/dashboards/", &rest)) return trl_http_dashboards_route(r, rest);
    if (strcmp(u, "/api/v1/meta/reports") == 0) return trl_http_meta_reports(r, "", true);
    if (prefix(u, "/api/v1/meta/reports/", &rest)) return trl_http_meta_reports(r, rest, true);
    if (strcmp(u, "/api/v1/meta/dashboards") == 0) return trl_http_meta_reports(r, "", false);
    if (prefix(u, "/api/v1/meta/dashboards/", &rest)) return trl_http_meta_reports(r, rest, false);
    if (strcmp(u, "/api/v1/meta/hooks") == 0) return trl_http_meta_hooks(r, "");
    if (prefix(u, "/api/v1/meta/hooks/", &rest)) return trl_http_meta_hooks(r, rest);
    if (strcmp(u, "/api/v1/meta/apps") == 0) return meta_apps(r, "");
    if (prefix(u, "/api/v1/meta/apps/", &rest)) return meta_apps(r, rest);
    if (strcmp(u, "/api/v1/files") == 0) {
        if (strcmp(r->method, "POST") == 0) return files_upload(r);
        snprintf(r->allow, sizeof(r->allow), "POST");
        return trl_http_fail(r, TRL_EMETHOD, "", "use POST here", "此处只支持 POST");
    }
    if (prefix(u, "/api/v1/files/", &rest)) {
        if (strcmp(r->method, "GET") == 0) return files_get(r, rest);
        snprintf(r->allow, sizeof(r->allow), "GET");
        return trl_http_fail(r, TRL_EMETHOD, "", "use GET here", "此处只支持 GET");
    }
    trl_http_fail(r, TRL_ENOTFOUND, "", "no such resource", "不存在该资源");
}
