/* query.c — listing: filter (the expression language), sort, keyset cursors, index plans.
 *
 * A listing is driven by ordered streams of record ids:
 *   - sorted by id / created_at: for each equality or `in` on an indexed column (and for the
 *     caller's row scope when it is exactly "org" or "own"), a group of index ranges
 *     (iid, value), one per value, merged by id; the groups are intersected by leapfrogging
 *     (each seeks to the largest id another stands on), so `region = "east" && state = "draft"`
 *     as a partner reads only ids all three agree on, however the predicates correlate with id
 *     order. Without any, the record table itself;
 *   - sorted by an indexed column: that column's index, narrowed by any bound on it.
 * Every candidate is then checked against the whole filter, so a plan only narrows the reading,
 * never changes the answer. The scan stops after `limit` matches, so an equality query reads
 * O(result) index entries; a query that examines more than max_scan records is refused.
 */
#include "record_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_SCAN 200000
#define MAX_GROUPS       4 /* index groups intersected */
#define MAX_GROUP_VALUES 8 /* `in` values for a group that is not the cheapest */

/* One ordered source of record ids. */
struct stream {
    struct trl_cursor *c;  /* cursor over idx or rec */
    struct trl_buf lo, hi; /* key bounds: lo inclusive, hi exclusive */
    size_t idlen_off;      /* for index streams sorted by id: offset of the id in the key */
    bool table;            /* a stream over the rec table */
    bool done;             /* exhausted */
    uint64_t id;           /* current record id */
    struct trl_slice key;  /* current key */
    struct trl_slice val;  /* table streams: the current record's bytes */
};

struct lister {
    struct trl_txn *t;
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    struct trl_expr *expr;
    struct trl_expr_env env;
    uint32_t sort_col; /* TRL_COL_ID or an indexed column */
    enum trl_ftype sort_type;
    bool desc;
    bool by_id; /* the sort is by id (id or created_at) */
    struct stream *streams;
    size_t nstreams;
    size_t gstart[MAX_GROUPS + 1]; /* group g is streams [gstart[g], gstart[g + 1]) */
    size_t ngroups;                /* 0 or 1: plain merge; more: intersection */
    struct trl_buf seek;           /* scratch key for leapfrog seeks */
    int64_t scanned;
    int64_t max_scan;
    struct trl_slice cand; /* the candidate's record bytes when a table stream gave it */
    /* Records whose plain index entries are still pending (schema.h): ids from pending_from on,
     * none of them in the index. Index plans sorted by id read them as one more table stream,
     * before (descending) or after (ascending) the index; a plan sorted by a column merges them
     * in by sort key from a sorted copy. */
    uint64_t pending_from;
    bool has_tail;
    bool from_tail; /* the candidate is a pending record: counted as examined only if it matches
                       (at most a batch of them, whatever the plan) */
    struct stream tail;
    struct tail_ent *tents;    /* sorted plans: pending records in [lo, hi) by sort key */
    size_t ntents, tcap, tpos; /* tpos: next entry (ascending) or entries left (descending) */
};

struct tail_ent {
    struct trl_buf key; /* sort key in the index format */
    uint64_t id;
    struct trl_slice val; /* the record's bytes (valid for the txn) */
};

static void stream_free(struct stream *s)
{
    trl_cursor_close(s->c);
    trl_buf_free(&s->lo);
    trl_buf_free(&s->hi);
}

static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* Reads the current position; marks done when outside [lo, hi). */
static int stream_settle(struct stream *s, int mv)
{
    if (mv == TRL_ENOTFOUND) {
        s->done = true;
        return 0;
    }
    if (mv) return mv;
    trl_cursor_get(s->c, &s->key, s->table ? &s->val : NULL);
    if (key_cmp(s->key.p, s->key.n, s->lo.data, s->lo.len) < 0 ||
        (s->hi.len && key_cmp(s->key.p, s->key.n, s->hi.data, s->hi.len) >= 0)) {
        s->done = true;
        return 0;
    }
    if (s->key.n < 8) return TRL_ECORRUPT;
    s->id = trl_get_u64be((const unsigned char *)s->key.p + s->key.n - 8);
    return 0;
}

/* Positions a stream at its first entry in the direction, after the cursor key if given. */
static int stream_start(struct stream *s, bool desc, const struct trl_buf *after)
{
    int mv;
    s->done = false;
    if (!desc) {
        if (after && after->len) {
            /* First key > after: seek to after, skip it when equal. */
            mv = trl_cursor_seek(s->c, after->data, after->len);
            if (mv == 0) {
                struct trl_slice k;
                trl_cursor_get(s->c, &k, NULL);
                if (key_cmp(k.p, k.n, after->data, after->len) == 0) mv = trl_cursor_next(s->c);
            }
            if (mv == 0) {
                struct trl_slice k;
                trl_cursor_get(s->c, &k, NULL);
                if (key_cmp(k.p, k.n, s->lo.data, s->lo.len) < 0)
                    mv = trl_cursor_seek(s->c, s->lo.data, s->lo.len);
            }
        } else {
            mv = trl_cursor_seek(s->c, s->lo.data, s->lo.len);
        }
    } else {
        const struct trl_buf *top = &s->hi;
        if (after && after->len &&
            (!s->hi.len || key_cmp(after->data, after->len, s->hi.data, s->hi.len) < 0))
            top = after;
        mv = trl_cursor_seek_before(s->c, top->len ? top->data : NULL, top->len);
    }
    return stream_settle(s, mv);
}

static int stream_step(struct stream *s, bool desc)
{
    return stream_settle(s, desc ? trl_cursor_prev(s->c) : trl_cursor_next(s->c));
}

/* Bytes of a key-encoded value without its terminator: a prefix of all longer values. */
static int add_prefix_bound(struct trl_buf *b, const struct trl_value *v)
{
    size_t before = b->len;
    int rc = trl_key_add_value(b, v);
    if (rc) return rc;
    if (v->kind == TRL_V_BYTES && b->len >= before + 3) b->len -= 2;
    b->data[b->len] = 0;
    return 0;
}

static int open_index_stream(struct lister *l, struct stream *s, uint32_t col,
                             const struct trl_value *eq)
{
    uint32_t iid = trl_index_id(l->ty, col);
    int rc = trl_cursor_open(l->t, TRL_DB_IDX, &s->c);
    if (rc) return rc;
    if (trl_buf_add_u32be(&s->lo, iid) || trl_key_add_value(&s->lo, eq)) return TRL_ENOMEM;
    if (trl_buf_add(&s->hi, s->lo.data, s->lo.len) || trl_buf_add_u64be(&s->hi, UINT64_MAX) ||
        trl_buf_addc(&s->hi, 0))
        return TRL_ENOMEM;
    return 0;
}

static int open_table_stream(struct lister *l, struct stream *s)
{
    int rc = trl_cursor_open(l->t, TRL_DB_REC, &s->c);
    if (rc) return rc;
    s->table = true;
    if (trl_buf_add_u32be(&s->lo, l->ty->id) || trl_buf_add_u32be(&s->hi, l->ty->id + 1))
        return TRL_ENOMEM;
    return 0;
}

/* The sort column's index with optional bounds from a predicate on it. */
static int open_sorted_stream(struct lister *l, struct stream *s, const struct trl_expr_pred *p)
{
    uint32_t iid = trl_index_id(l->ty, l->sort_col);
    int rc = trl_cursor_open(l->t, TRL_DB_IDX, &s->c);
    if (rc) return rc;
    rc = trl_buf_add_u32be(&s->lo, iid);
    if (!rc && p && p->kind == TRL_PRED_EQ) {
        rc = trl_key_add_value(&s->lo, &p->vals[0]);
        rc = rc || trl_buf_add(&s->hi, s->lo.data, s->lo.len) ||
             trl_buf_add_u64be(&s->hi, UINT64_MAX) || trl_buf_addc(&s->hi, 0);
    } else if (!rc && p && p->kind == TRL_PRED_PREFIX) {
        rc = add_prefix_bound(&s->lo, &p->vals[0]);
        /* 0xFF never occurs in UTF-8 text: every value with the prefix sorts before it. */
        rc = rc || trl_buf_add(&s->hi, s->lo.data, s->lo.len) || trl_buf_addc(&s->hi, (char)0xFF);
    } else if (!rc && p && p->kind == TRL_PRED_RANGE) {
        if (p->has_lo) rc = trl_key_add_value(&s->lo, &p->lo);
        if (!rc && p->has_hi) {
            rc = trl_buf_add_u32be(&s->hi, iid) || trl_key_add_value(&s->hi, &p->hi) ||
                 trl_buf_add_u64be(&s->hi, UINT64_MAX) || trl_buf_addc(&s->hi, 0);
        }
    }
    if (!rc && !s->hi.len) rc = trl_buf_add_u32be(&s->hi, iid + 1);
    return rc ? TRL_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Cursors: base64url of [2][u32 type][u16 sort col][u8 desc][sort key bytes]
 */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_encode(const unsigned char *p, size_t n, struct trl_buf *out)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char c[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63]};
        if (trl_buf_add(out, c, i + 2 < n ? 4 : i + 1 < n ? 3 : 2)) return TRL_ENOMEM;
    }
    return 0;
}

static int b64_decode(const char *s, struct trl_buf *out)
{
    uint32_t v = 0;
    int bits = 0;
    for (; *s; s++) {
        const char *p = strchr(b64, *s);
        if (!p || !*s) return TRL_EINVAL;
        v = (v << 6) | (uint32_t)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (trl_buf_addc(out, (char)((v >> bits) & 0xFF))) return TRL_ENOMEM;
        }
    }
    return 0;
}

static int bad_param(const struct trl_rec_ctx *cx, const char *param, const char *en,
                     const char *zh)
{
    trl_diag_set(cx->d, TRL_EQUERY, "%s: %s", param, en);
    trl_diag_zh(cx->d, "%s:%s", param, zh);
    trl_diag_field(cx->d, param);
    return TRL_EQUERY;
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 */
struct getctx {
    const struct trl_type *ty;
    const struct trl_record *r;
};

static int get_col(void *ud, int id, struct trl_value *out)
{
    struct getctx *g = ud;
    trl_rec_column(g->ty, g->r, (uint32_t)id, out);
    return 0;
}

int trl_rec_resolve_caller(void *ud, const char *name, size_t n, struct trl_expr_field *out)
{
    struct trl_rec_caller_resolver *rs = ud;
    int rc = trl_rec_resolve(rs->ty, name, n, out);
    if (rc) return rc;
    const struct trl_field *f = trl_type_field(rs->ty, name, n);
    if (f && trl_rec_field_mode(rs->cx, rs->ty, f) == TRL_FIELD_HIDDEN) {
        snprintf(rs->hidden, sizeof(rs->hidden), "%.*s", (int)(n < 63 ? n : 63), name);
        return TRL_EFORBIDDEN;
    }
    return 0;
}

static int tail_ent_cmp(const void *a, const void *b)
{
    const struct tail_ent *x = a, *y = b;
    return key_cmp(x->key.data, x->key.len, y->key.data, y->key.len);
}

/* Keeps a waiting record with its sort key when the key is inside the sorted stream's bounds. */
static int copy_tail(void *ud, const struct trl_record *r, struct trl_slice raw)
{
    struct lister *l = ud;
    const struct stream *ix = &l->streams[0];
    if (l->ntents == l->tcap) {
        size_t nc = l->tcap ? l->tcap * 2 : 16;
        struct tail_ent *ne = realloc(l->tents, nc * sizeof(*ne));
        if (!ne) return TRL_ENOMEM;
        l->tents = ne, l->tcap = nc;
    }
    struct tail_ent *te = &l->tents[l->ntents];
    struct trl_value cv;
    trl_rec_column(l->ty, r, l->sort_col, &cv);
    trl_buf_init(&te->key);
    te->id = r->id;
    te->val = raw;
    int rc = trl_schema_idx_key(&te->key, trl_index_id(l->ty, l->sort_col), &cv, r->id);
    bool inside = key_cmp(te->key.data, te->key.len, ix->lo.data, ix->lo.len) >= 0 &&
                  (!ix->hi.len || key_cmp(te->key.data, te->key.len, ix->hi.data, ix->hi.len) < 0);
    if (!rc && inside)
        l->ntents++;
    else
        trl_buf_free(&te->key);
    return rc;
}

/* Opens the pending records beside an index plan (no-op for table plans or none pending). */
static int open_tail(struct lister *l)
{
    int rc = trl_schema_pending_get(l->t, l->ty->id, &l->pending_from);
    if (rc || !l->pending_from || !l->nstreams || l->streams[0].table) return rc;
    l->has_tail = true;
    if (!l->by_id) {
        /* Sorted by a column: a sorted copy of the pending records inside the stream's bounds. */
        rc = trl_rec_each_from(l->t, l->ty, l->pending_from, copy_tail, l);
        if (!rc && l->ntents > 1) qsort(l->tents, l->ntents, sizeof(*l->tents), tail_ent_cmp);
        return rc;
    }
    struct stream *s = &l->tail;
    s->table = true;
    if (trl_buf_add_u32be(&s->lo, l->ty->id) || trl_buf_add_u64be(&s->lo, l->pending_from) ||
        trl_buf_add_u32be(&s->hi, l->ty->id + 1))
        return TRL_ENOMEM;
    return trl_cursor_open(l->t, TRL_DB_REC, &s->c);
}

/* Positions the pending records at their first in the direction after `after` (an id for plans
 * by id, a sort key otherwise; may be empty). */
static int start_tail(struct lister *l, const struct trl_buf *after)
{
    if (!l->has_tail) return 0;
    bool from = after && after->len;
    if (!l->by_id) {
        /* Ascending: skip the entries at or before `after`; descending: those at or past it. */
        size_t i = l->desc ? l->ntents : 0;
        while (from && (l->desc ? i > 0 : i < l->ntents)) {
            const struct trl_buf *k = &l->tents[l->desc ? i - 1 : i].key;
            int c = key_cmp(k->data, k->len, after->data, after->len);
            if (l->desc ? c < 0 : c > 0) break;
            i = l->desc ? i - 1 : i + 1;
        }
        l->tpos = i;
        return 0;
    }
    struct trl_buf full;
    trl_buf_init(&full);
    int rc = 0;
    if (from &&
        (trl_buf_add_u32be(&full, l->ty->id) || trl_buf_add(&full, after->data, after->len)))
        rc = TRL_ENOMEM;
    if (!rc) rc = stream_start(&l->tail, l->desc, from ? &full : NULL);
    trl_buf_free(&full);
    return rc;
}

static bool tail_has(const struct lister *l)
{
    return l->desc ? l->tpos > 0 : l->tpos < l->ntents;
}

static const struct tail_ent *tail_cur(const struct lister *l)
{
    return &l->tents[l->desc ? l->tpos - 1 : l->tpos];
}

static void tail_free(struct lister *l)
{
    stream_free(&l->tail);
    for (size_t i = 0; i < l->ntents; i++)
        trl_buf_free(&l->tents[i].key);
    free(l->tents);
}

/* Sort key of a record in the stream's key format (for the next cursor). */
static int sort_key(struct lister *l, const struct trl_record *r, struct trl_buf *out)
{
    trl_buf_clear(out);
    if (l->by_id) return trl_buf_add_u64be(out, r->id);
    struct trl_value v;
    trl_rec_column(l->ty, r, l->sort_col, &v);
    return trl_schema_idx_key(out, trl_index_id(l->ty, l->sort_col), &v, r->id);
}

/* Positions s at its first id at or past target in the direction (no move when already there). */
static int stream_seek_id(struct lister *l, struct stream *s, uint64_t target)
{
    if (s->done || (l->desc ? s->id <= target : s->id >= target)) return 0;
    trl_buf_clear(&l->seek);
    if (trl_buf_add(&l->seek, s->lo.data, s->lo.len) || trl_buf_add_u64be(&l->seek, target) ||
        (l->desc && trl_buf_addc(&l->seek, 0)))
        return TRL_ENOMEM;
    /* Descending: the last key < (prefix, target, 0), that is the last <= (prefix, target). */
    int mv = l->desc ? trl_cursor_seek_before(s->c, l->seek.data, l->seek.len)
                     : trl_cursor_seek(s->c, l->seek.data, l->seek.len);
    return stream_settle(s, mv);
}

/* Group g's current id (the first in the direction over its streams); false when exhausted. */
static bool group_id(const struct lister *l, size_t g, uint64_t *id)
{
    bool any = false;
    for (size_t i = l->gstart[g]; i < l->gstart[g + 1]; i++) {
        const struct stream *s = &l->streams[i];
        if (s->done) continue;
        if (!any || (l->desc ? s->id > *id : s->id < *id)) *id = s->id;
        any = true;
    }
    return any;
}

/* The next id every group holds (leapfrog intersection); *have false at the end. Each round
 * that moves the target counts as an examined entry, so max_scan bounds the work. */
static int next_common(struct lister *l, uint64_t *id, bool *have)
{
    *have = false;
    l->cand = (struct trl_slice){0};
    uint64_t target = 0;
    if (!group_id(l, 0, &target)) return 0;
    for (;;) {
        bool agreed = true;
        for (size_t g = 0; g < l->ngroups; g++) {
            for (size_t i = l->gstart[g]; i < l->gstart[g + 1]; i++) {
                int rc = stream_seek_id(l, &l->streams[i], target);
                if (rc) return rc;
            }
            uint64_t gid = 0;
            if (!group_id(l, g, &gid)) return 0;
            if (gid != target) {
                target = gid;
                agreed = false;
            }
        }
        if (agreed) break;
        if (++l->scanned > l->max_scan) return 0; /* next_match reports it */
    }
    *id = target;
    *have = true;
    for (size_t i = 0; i < l->nstreams; i++) {
        struct stream *s = &l->streams[i];
        while (!s->done && s->id == target) {
            int rc = stream_step(s, l->desc);
            if (rc) return rc;
        }
    }
    return 0;
}

static int next_planned(struct lister *l, uint64_t *id, bool *have);

/* The next candidate: the plan's, with the pending records taken in order. By id they all
 * come after every indexed id, so they go first when descending and last when ascending; in a
 * column's order they are merged by sort key. */
static int next_candidate(struct lister *l, uint64_t *id, bool *have)
{
    l->from_tail = false;
    if (!l->has_tail) return next_planned(l, id, have);
    uint64_t tid = 0;
    struct trl_slice tval = {0};
    if (l->by_id) {
        if (!l->desc || l->tail.done) {
            int rc = next_planned(l, id, have);
            if (rc || *have || l->desc || l->tail.done) return rc;
        }
        tid = l->tail.id, tval = l->tail.val;
        int rc = stream_step(&l->tail, l->desc);
        if (rc) return rc;
    } else {
        const struct stream *s = &l->streams[0];
        if (!tail_has(l)) return next_planned(l, id, have);
        const struct tail_ent *te = tail_cur(l);
        int c = s->done ? 0 : key_cmp(te->key.data, te->key.len, s->key.p, s->key.n);
        if (!s->done && (l->desc ? c <= 0 : c >= 0)) return next_planned(l, id, have);
        tid = te->id, tval = te->val;
        l->tpos = l->desc ? l->tpos - 1 : l->tpos + 1;
    }
    *id = tid;
    *have = true;
    l->from_tail = true;
    l->cand = tval;
    return 0;
}

/* Picks the next id across the plan's streams (merge by id in the direction). */
static int next_planned(struct lister *l, uint64_t *id, bool *have)
{
    if (l->ngroups > 1) return next_common(l, id, have);
    *have = false;
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < l->nstreams; i++) {
        struct stream *s = &l->streams[i];
        if (s->done) continue;
        if (best == SIZE_MAX ||
            (l->desc ? s->id > l->streams[best].id : s->id < l->streams[best].id))
            best = i;
    }
    if (best == SIZE_MAX) return 0;
    *id = l->streams[best].id;
    *have = true;
    /* A table stream holds the record itself: no second lookup by id. */
    l->cand = l->streams[best].table ? l->streams[best].val : (struct trl_slice){0};
    /* Advance every stream sitting on that id (an `in` list may repeat a value). */
    for (size_t i = 0; i < l->nstreams; i++) {
        struct stream *s = &l->streams[i];
        while (!s->done && s->id == *id) {
            int rc = stream_step(s, l->desc);
            if (rc) return rc;
        }
    }
    return 0;
}

/* The next record of the streams that matches the filter, loaded into r (the caller frees it);
 * *have is false at the end. Past max_scan candidates it fails with TRL_EINVAL naming param. */
static int next_match(struct lister *l, const char *param, struct trl_record *r, bool *have)
{
    for (;;) {
        uint64_t id = 0;
        int rc = next_candidate(l, &id, have);
        if (rc) return rc;
        if (!*have && l->scanned <= l->max_scan) return 0;
        if ((*have && l->from_tail) ? l->scanned > l->max_scan : ++l->scanned > l->max_scan) {
            *have = false;
            trl_diag_set(l->cx->d, TRL_EINVAL,
                         "%s: the query examines more than %lld records; narrow the filter with an "
                         "equality on an indexed field",
                         param, (long long)l->max_scan);
            trl_diag_zh(l->cx->d, "%s:查询需要检查超过 %lld 条记录;请在有索引的字段上加等值条件",
                        param, (long long)l->max_scan);
            trl_diag_field(l->cx->d, param);
            return TRL_EINVAL;
        }
        if (l->cand.p) {
            rc = trl_record_decode(l->cand.p, l->cand.n, r);
            r->type_id = l->ty->id;
            r->id = id;
        } else {
            rc = trl_rec_load(l->t, l->ty, id, NULL, r);
            if (rc == TRL_ENOTFOUND) continue; /* an index entry of a record deleted meanwhile */
        }
        if (rc) return rc;
        if (!trl_rec_in_scope(l->cx, l->ty, l->cx->acc ? l->cx->acc->read : TRL_SCOPE_ALL, r)) {
            trl_record_free(r); /* out of the caller's scope: as if absent */
            continue;
        }
        bool match = true;
        if (l->expr) {
            struct getctx g = {.ty = l->ty, .r = r};
            rc = trl_expr_eval(l->expr, get_col, &g, &l->env, &match, l->cx->d);
        }
        if (rc || match) {
            if (rc) trl_record_free(r);
            if (!rc && l->from_tail) l->scanned++;
            return rc;
        }
        trl_record_free(r);
    }
}

static int parse_sort(const struct trl_rec_ctx *cx, struct lister *l, const char *sort)
{
    l->sort_col = TRL_COL_ID;
    l->by_id = true;
    l->desc = true;
    if (!sort || !*sort) return 0;
    const char *p = sort;
    bool desc = false;
    if (*p == '-')
        desc = true, p++;
    else if (*p == '+')
        p++;
    size_t n = strcspn(p, ",");
    struct trl_expr_field f;
    char name[80];
    snprintf(name, sizeof(name), "%.*s", (int)(n < 64 ? n : 64), p);
    if (trl_rec_resolve(l->ty, p, n, &f)) {
        trl_diag_set(cx->d, TRL_EQUERY, "sort: unknown field '%s'", name);
        trl_diag_zh(cx->d, "sort:未知字段“%s”", name);
        trl_diag_field(cx->d, "sort");
        return TRL_EQUERY;
    }
    const struct trl_field *sf = trl_type_field(l->ty, p, n);
    if (sf && trl_rec_field_mode(cx, l->ty, sf) == TRL_FIELD_HIDDEN) {
        trl_diag_set(cx->d, TRL_EFORBIDDEN, "sort: you may not sort on '%s'", name);
        trl_diag_zh(cx->d, "sort:你无权按“%s”排序", name);
        trl_diag_field(cx->d, "sort");
        return TRL_EFORBIDDEN;
    }
    l->desc = desc;
    l->sort_type = f.type;
    if (f.id == TRL_COL_ID || f.id == TRL_COL_CREATED_AT) {
        l->sort_col = TRL_COL_ID;
        l->by_id = true;
        return 0; /* ids are unique: later keys can never break a tie */
    }
    if (!f.indexed) {
        trl_diag_set(cx->d, TRL_EQUERY,
                     "sort: '%s' is not indexed; sort by id, created_at, updated_at or an "
                     "indexed field",
                     name);
        trl_diag_zh(cx->d,
                    "sort:字段“%s”没有索引,只能按 id、created_at、updated_at 或有索引的字段排序",
                    name);
        trl_diag_field(cx->d, "sort");
        return TRL_EQUERY;
    }
    if (p[n] == ',') {
        const char *rest = p + n + 1;
        if (*rest == '-' || *rest == '+') rest++;
        if (strcmp(rest, "id") != 0 && strcmp(rest, "created_at") != 0)
            return bad_param(cx, "sort", "only one field can be sorted on; ties are ordered by id",
                             "只能按一个字段排序;相同值按 id 排序");
    }
    l->sort_col = (uint32_t)f.id;
    l->by_id = false;
    return 0;
}

/* Streams in id order for a filter's plan: the cheapest equality/in predicate on an indexed
 * column drives (one stream per value), else the table; positioned after `after` (an id key, may
 * be empty). */
/* One candidate group of open_id_streams: a column and its values, with a cost estimate. */
struct group_plan {
    uint32_t col;
    const struct trl_value *vals;
    size_t nvals;
    uint64_t cost;
};

/* The estimated entries of an equality or `in` on an indexed column: the value counters where
 * kept (state, enums), else a guess that prefers equality over `in`. */
static uint64_t pred_cost(struct lister *l, uint32_t col, const struct trl_value *vals, size_t n)
{
    uint64_t cost = 0;
    const struct trl_field *f = trl_type_field_by_id(l->ty, col);
    for (size_t k = 0; k < n; k++) {
        uint64_t c = UINT64_MAX / 16;
        if (col == TRL_COL_STATE || (f && f->type == TRL_FT_ENUM)) {
            struct trl_buf ck;
            trl_buf_init(&ck);
            if (trl_schema_cnt_key(&ck, trl_index_id(l->ty, col), &vals[k]) == 0)
                trl_schema_counter_get(l->t, &ck, &c);
            trl_buf_free(&ck);
        } else {
            c = 1000;
        }
        cost += c;
    }
    return cost;
}

/* The caller's row scope as an index group when it is exactly one indexed column: "org" (the
 * org index at the caller's org, costed by the per-org counter) or "own" (the owner index). */
static bool scope_group(struct lister *l, struct trl_value *v, struct group_plan *gp)
{
    const struct trl_rec_ctx *cx = l->cx;
    if (!cx->acc || !cx->who) return false;
    enum trl_scope sc = cx->acc->read;
    if (sc == TRL_SCOPE_ORG && cx->who->org[0]) {
        *v = (struct trl_value){.kind = TRL_V_BYTES, .s = cx->who->org, .n = strlen(cx->who->org)};
        *gp = (struct group_plan){.col = TRL_COL_ORG, .vals = v, .nvals = 1, .cost = 1000};
        struct trl_buf ck;
        trl_buf_init(&ck);
        uint64_t c;
        if (trl_schema_org_total_key(&ck, l->ty->id, v) == 0 &&
            trl_schema_counter_get(l->t, &ck, &c) == 0)
            gp->cost = c;
        trl_buf_free(&ck);
        return true;
    }
    if (sc == TRL_SCOPE_OWN && cx->who->user[0]) {
        *v =
            (struct trl_value){.kind = TRL_V_BYTES, .s = cx->who->user, .n = strlen(cx->who->user)};
        *gp = (struct group_plan){.col = TRL_COL_OWNER, .vals = v, .nvals = 1, .cost = 1000};
        return true;
    }
    return false;
}

static int open_id_streams(struct lister *l, const struct trl_expr_plan *plan,
                           const struct trl_buf *after)
{
    struct group_plan gp[MAX_GROUPS + 1];
    size_t ng = 0;
    struct trl_value scope_v;
    int rc = 0;
    /* Candidates, kept sorted by cost; the cheapest MAX_GROUPS are used. */
    for (size_t i = 0; i <= plan->npreds; i++) {
        struct group_plan c;
        if (i < plan->npreds) {
            const struct trl_expr_pred *p = &plan->preds[i];
            if (p->id == TRL_COL_ID || p->id == TRL_COL_CREATED_AT) continue;
            if (p->kind != TRL_PRED_EQ && p->kind != TRL_PRED_IN) continue;
            c = (struct group_plan){.col = (uint32_t)p->id, .vals = p->vals, .nvals = p->nvals};
            c.cost = pred_cost(l, c.col, p->vals, p->nvals);
        } else if (!scope_group(l, &scope_v, &c)) {
            continue;
        }
        size_t at = ng;
        while (at > 0 && gp[at - 1].cost > c.cost) {
            gp[at] = gp[at - 1];
            at--;
        }
        gp[at] = c;
        if (ng < MAX_GROUPS) ng++;
    }
    /* Past the cheapest, a group with many values costs a seek per value at each step. */
    size_t keep = ng ? 1 : 0, ns = ng ? gp[0].nvals : 1;
    for (size_t g = 1; g < ng; g++)
        if (gp[g].nvals <= MAX_GROUP_VALUES) {
            gp[keep++] = gp[g];
            ns += gp[g].nvals;
        }
    ng = keep;
    l->streams = calloc(ns, sizeof(*l->streams));
    if (!l->streams) return TRL_ENOMEM;
    l->nstreams = ns;
    l->ngroups = ng;
    size_t si = 0;
    for (size_t g = 0; g < (ng ? ng : 1) && !rc; g++) {
        l->gstart[g] = si;
        for (size_t k = 0; k < (ng ? gp[g].nvals : 1) && !rc; k++, si++) {
            struct stream *s = &l->streams[si];
            rc = ng ? open_index_stream(l, s, gp[g].col, &gp[g].vals[k]) : open_table_stream(l, s);
            if (rc) break;
            struct trl_buf full;
            trl_buf_init(&full);
            if (after->len) {
                /* The cursor holds an id: position after it within this stream's range. */
                rc = trl_buf_add(&full, s->lo.data, s->lo.len) ||
                     trl_buf_add(&full, after->data, after->len);
                if (rc) rc = TRL_ENOMEM;
            }
            if (!rc) rc = stream_start(s, l->desc, after->len ? &full : NULL);
            trl_buf_free(&full);
        }
        l->gstart[g + 1] = si;
    }
    return rc;
}

int trl_rec_list(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_list_opts *o, struct trl_buf *out)
{
    struct lister l = {.t = t, .cx = cx, .ty = ty};
    struct trl_expr_plan plan = {0};
    struct trl_buf after, key;
    trl_buf_init(&after);
    trl_buf_init(&key);
    int rc = 0;
    l.env.user = cx->who;
    l.env.now_ms = cx->now_ms;
    l.max_scan = cx->max_scan > 0 ? cx->max_scan : DEFAULT_MAX_SCAN;
    int64_t limit = o->limit ? o->limit : 50;
    if (limit < 1 || limit > 1000) {
        rc = bad_param(cx, "limit", "must be between 1 and 1000", "必须在 1 到 1000 之间");
        goto out;
    }
    if ((rc = parse_sort(cx, &l, o->sort))) goto out;
    if (o->filter && *o->filter) {
        struct trl_rec_caller_resolver rs = {.ty = ty, .cx = cx};
        rc = trl_expr_parse(o->filter, strlen(o->filter), trl_rec_resolve_caller, &rs, &l.expr,
                            cx->d);
        if (rc == TRL_EFORBIDDEN) {
            trl_diag_set(cx->d, TRL_EFORBIDDEN, "filter: you may not filter on '%s'", rs.hidden);
            trl_diag_zh(cx->d, "filter:你无权按“%s”筛选", rs.hidden);
            trl_diag_field(cx->d, rs.hidden);
            goto out;
        }
        if (rc) {
            if (rc == TRL_ENOTFOUND) rc = TRL_EQUERY;
            if (!cx->d->code) trl_diag_set(cx->d, rc, "filter is invalid");
            if (!cx->d->field[0]) trl_diag_field(cx->d, "filter");
            char msg[sizeof(cx->d->message)];
            snprintf(msg, sizeof(msg), "%s", cx->d->message);
            if (strncmp(msg, "filter", 6) != 0)
                snprintf(cx->d->message, sizeof(cx->d->message), "filter: %.500s", msg);
            if (!cx->d->message_zh[0]) trl_diag_zh(cx->d, "筛选条件 filter 无效:%.400s", msg);
            goto out;
        }
        if ((rc = trl_expr_plan_build(l.expr, &l.env, &plan))) goto out;
    }
    if (o->cursor && *o->cursor) {
        struct trl_buf raw;
        trl_buf_init(&raw);
        rc = b64_decode(o->cursor, &raw);
        if (rc || raw.len < 8 || (unsigned char)raw.data[0] != 2 ||
            trl_get_u32be(raw.data + 1) != ty->id ||
            trl_get_u16be(raw.data + 5) != (l.sort_col & 0xFFFF) || (raw.data[7] != 0) != l.desc) {
            trl_buf_free(&raw);
            rc = bad_param(cx, "cursor", "is not a cursor of this listing (sort or type differ)",
                           "不是此列表的游标(排序或类型不同)");
            goto out;
        }
        if (l.by_id) {
            if (raw.len != 16) {
                trl_buf_free(&raw);
                rc = bad_param(cx, "cursor", "is malformed", "格式错误");
                goto out;
            }
        }
        rc = trl_buf_add(&after, raw.data + 8, raw.len - 8);
        trl_buf_free(&raw);
        if (rc) goto out;
    }

    /* Choose the streams. */
    const struct trl_expr_pred *drive = NULL;
    if (l.by_id) {
        if ((rc = open_id_streams(&l, &plan, &after))) goto out;
    } else {
        for (size_t i = 0; i < plan.npreds; i++)
            if ((uint32_t)plan.preds[i].id == l.sort_col && plan.preds[i].kind != TRL_PRED_IN)
                drive = &plan.preds[i];
        l.streams = calloc(1, sizeof(*l.streams));
        if (!l.streams) {
            rc = TRL_ENOMEM;
            goto out;
        }
        l.nstreams = 1;
        rc = open_sorted_stream(&l, &l.streams[0], drive);
        if (!rc) rc = stream_start(&l.streams[0], l.desc, after.len ? &after : NULL);
    }
    if (!rc) rc = open_tail(&l);
    if (!rc) rc = start_tail(&l, &after);
    if (rc) goto out;

    /* Scan. */
    rc = trl_buf_adds(out, "{\"items\":[");
    int64_t n = 0;
    bool more = false;
    while (!rc) {
        struct trl_record r;
        bool have;
        if ((rc = next_match(&l, "filter", &r, &have)) || !have) break;
        if (n == limit) {
            more = true;
            trl_record_free(&r);
            break;
        }
        if (n) rc = trl_buf_addc(out, ',');
        if (!rc) rc = trl_rec_json(t, cx, ty, &r, &o->out, out);
        if (!rc) rc = sort_key(&l, &r, &key);
        n++;
        trl_record_free(&r);
    }
    if (rc) goto out;
    rc = trl_buf_adds(out, "],\"next_cursor\":");
    if (!rc && more) {
        unsigned char hdr[8] = {2,
                                0,
                                0,
                                0,
                                0,
                                (unsigned char)((l.sort_col >> 8) & 0xFF),
                                (unsigned char)(l.sort_col & 0xFF),
                                l.desc ? 1 : 0};
        trl_put_u32be(hdr + 1, ty->id);
        struct trl_buf raw;
        trl_buf_init(&raw);
        rc = trl_buf_add(&raw, hdr, 8) || trl_buf_add(&raw, key.data, key.len) ||
             trl_buf_addc(out, '"') || b64_encode((unsigned char *)raw.data, raw.len, out) ||
             trl_buf_addc(out, '"');
        trl_buf_free(&raw);
        if (rc) rc = TRL_ENOMEM;
    } else if (!rc) {
        rc = trl_buf_adds(out, "null");
    }
    if (!rc && o->count_exact) {
        uint64_t count = 0;
        const struct trl_expr_pred *p0 = plan.npreds == 1 ? &plan.preds[0] : NULL;
        /* The maintained counters answer for every row, and for exactly one org's rows (read
         * scope "org" alone: a partner). */
        bool all_rows = !cx->acc || (cx->acc->read & TRL_SCOPE_ALL);
        const char *org = !all_rows && cx->acc->read == TRL_SCOPE_ORG && cx->who && cx->who->org[0]
                              ? cx->who->org
                              : NULL;
        bool counters = all_rows || org;
        bool counted = counters && p0 && (p0->kind == TRL_PRED_EQ || p0->kind == TRL_PRED_IN) &&
                       p0->id >= 0 && trl_rec_column_counted(ty, (uint32_t)p0->id) &&
                       trl_expr_conjuncts(l.expr) == 1;
        if (!l.expr && counters) {
            rc = org ? trl_rec_count_org(t, ty, org, &count) : trl_rec_count(t, ty, &count);
        } else if (counted) {
            /* The filter is exactly `col = v` / `col in (...)` on a counted column: O(values). */
            for (size_t i = 0; i < p0->nvals && !rc; i++) {
                uint64_t c = 0;
                bool dup = false;
                for (size_t k = 0; k < i && !dup; k++)
                    dup = trl_expr_value_cmp(p0->type, &p0->vals[k], &p0->vals[i]) == 0 &&
                          p0->vals[k].kind == p0->vals[i].kind;
                if (dup) continue;
                rc = trl_rec_count_value(t, ty, p0->id, org, &p0->vals[i], &c);
                count += c;
            }
        } else {
            /* Count through the same plan, from the start, without a limit. */
            for (size_t i = 0; i < l.nstreams && !rc; i++)
                rc = stream_start(&l.streams[i], l.desc, NULL);
            if (!rc) rc = start_tail(&l, NULL);
            l.scanned = 0;
            while (!rc) {
                struct trl_record r;
                bool have;
                if ((rc = next_match(&l, "count", &r, &have)) || !have) break;
                count++;
                trl_record_free(&r);
            }
        }
        if (!rc) rc = trl_buf_printf(out, ",\"count\":%llu", (unsigned long long)count);
    }
    if (!rc) rc = trl_buf_addc(out, '}');
out:
    for (size_t i = 0; i < l.nstreams; i++)
        stream_free(&l.streams[i]);
    free(l.streams);
    tail_free(&l);
    trl_buf_free(&l.seek);
    trl_expr_plan_free(&plan);
    trl_expr_free(l.expr);
    trl_buf_free(&after);
    trl_buf_free(&key);
    return rc;
}

int trl_rec_each(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_expr *filter, const struct trl_expr_env *env,
                 int (*fn)(void *ud, const struct trl_record *r), void *ud, int64_t *scanned)
{
    struct lister l = {.t = t, .cx = cx, .ty = ty, .sort_col = TRL_COL_ID, .by_id = true};
    l.env = env ? *env : (struct trl_expr_env){.user = cx->who, .now_ms = cx->now_ms};
    l.max_scan = cx->max_scan > 0 ? cx->max_scan : DEFAULT_MAX_SCAN;
    /* The lister evaluates its own expression; this one is borrowed for the scan. */
    l.expr = (struct trl_expr *)filter;
    struct trl_expr_plan plan = {0};
    struct trl_buf none;
    trl_buf_init(&none);
    int rc = filter ? trl_expr_plan_build(filter, &l.env, &plan) : 0;
    if (!rc) rc = open_id_streams(&l, &plan, &none);
    if (!rc) rc = open_tail(&l);
    if (!rc) rc = start_tail(&l, NULL);
    while (!rc) {
        struct trl_record r;
        bool have;
        if ((rc = next_match(&l, "filter", &r, &have)) || !have) break;
        rc = fn(ud, &r);
        trl_record_free(&r);
    }
    if (scanned) *scanned = l.scanned;
    for (size_t i = 0; i < l.nstreams; i++)
        stream_free(&l.streams[i]);
    free(l.streams);
    tail_free(&l);
    trl_buf_free(&l.seek);
    trl_expr_plan_free(&plan);
    return rc;
}
