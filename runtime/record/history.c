/* history.c — the hash-chained history, the change log, idempotency keys and `trellis check`. */
#include "record_int.h"

#include "codec/codec.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hist_key(unsigned char k[16], uint32_t type_id, uint64_t id, uint32_t seq)
{
    trl_rec_key(k, type_id, id);
    trl_put_u32be(k + 12, seq);
}

static void chain_hash(const unsigned char prev[32], const void *ev, size_t n,
                       unsigned char out[32])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev, 32);
    crypto_hash_sha256_update(&st, ev, n);
    crypto_hash_sha256_final(&st, out);
}

int trl_rec_hist_append(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                        struct trl_record *r, const char *action, const char *changes,
                        size_t changes_n, const char *extra)
{
    struct trl_buf ev;
    char ts[32];
    trl_buf_init(&ev);
    uint32_t seq = r->hist_seq + 1;
    trl_datetime_format(cx->now_ms, ts);
    const char *actor = cx->who ? cx->who->user : "";
    const char *rid = cx->request_id ? cx->request_id : "";
    /* Room for the hash in front of the event text. */
    int rc = trl_buf_add(&ev, r->hist_hash, 32);
    rc = rc || trl_buf_printf(&ev, "{\"seq\":%u,\"at\":\"%s\",\"actor\":", seq, ts) ||
         trl_buf_add_json_str(&ev, actor, strlen(actor)) ||
         trl_buf_printf(&ev, ",\"action\":\"%s\",\"version\":%llu,\"request_id\":", action,
                        (unsigned long long)r->version) ||
         trl_buf_add_json_str(&ev, rid, strlen(rid)) ||
         (extra && *extra && (trl_buf_addc(&ev, ',') || trl_buf_adds(&ev, extra))) ||
         trl_buf_adds(&ev, ",\"changes\":") || trl_buf_add(&ev, changes, changes_n) ||
         trl_buf_addc(&ev, '}');
    if (rc) {
        trl_buf_free(&ev);
        return TRL_ENOMEM;
    }
    unsigned char h[32];
    chain_hash(r->hist_hash, ev.data + 32, ev.len - 32, h);
    memcpy(ev.data, h, 32);
    unsigned char k[16];
    hist_key(k, ty->id, r->id, seq);
    rc = trl_txn_put(t, TRL_DB_HIST, k, 16, ev.data, ev.len, TRL_PUT_NOOVERWRITE | TRL_PUT_APPEND);
    trl_buf_free(&ev);
    if (rc == TRL_EEXIST) rc = TRL_ECORRUPT;
    if (rc) return rc;
    r->hist_seq = seq;
    memcpy(r->hist_hash, h, 32);

    /* Change log: global sequence -> (type, id, seq). */
    uint64_t lseq;
    if ((rc = trl_txn_seq_next(t, "log", &lseq))) return rc;
    unsigned char lb[8], le[16];
    trl_put_u64be(lb, lseq);
    trl_put_u32be(le, ty->id);
    trl_put_u64be(le + 4, r->id);
    trl_put_u32be(le + 12, seq);
    return trl_txn_put(t, TRL_DB_LOG, lb, 8, le, 16, TRL_PUT_APPEND);
}

/* Calls fn for each event of record id in order (the chain head skipped): its hash (32 bytes)
 * and its JSON text. Stops at fn's first non-zero result and returns it. */
static int hist_each(struct trl_txn *t, const struct trl_type *ty, uint64_t id,
                     int (*fn)(void *ud, const unsigned char *hash, const char *ev, size_t n),
                     void *ud)
{
    unsigned char pre[12];
    trl_rec_key(pre, ty->id, id);
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_HIST, &c);
    if (rc) return rc;
    int mv;
    for (mv = trl_cursor_seek(c, pre, 12); mv == 0; mv = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n != 16 || memcmp(k.p, pre, 12) != 0) break;
        if (trl_get_u32be((const unsigned char *)k.p + 12) == 0) continue; /* head */
        if (v.n < 34) {
            rc = TRL_ECORRUPT;
            break;
        }
        if ((rc = fn(ud, v.p, (const char *)v.p + 32, v.n - 32))) break; /* no step after it */
    }
    trl_cursor_close(c);
    if (mv && mv != TRL_ENOTFOUND && !rc) rc = mv;
    return rc;
}

struct hist_out {
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    struct trl_buf *out;
    size_t n;
};

/* One event as the caller may see it, with its hash added. */
static int hist_item(void *ud, const unsigned char *hash, const char *ev, size_t n)
{
    struct hist_out *h = ud;
    char hex[65];
    trl_hex(hash, 32, hex);
    int rc = trl_buf_adds(h->out, h->n++ ? ",{" : "{");
    if (!rc) rc = trl_rec_hist_members(h->cx, h->ty, ev, n, false, false, NULL, 0, h->out);
    if (!rc) rc = trl_buf_printf(h->out, ",\"hash\":\"%s\"}", hex);
    return rc;
}

int trl_rec_history(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                    uint64_t id, struct trl_buf *out)
{
    if (cx->acc && !(cx->acc->read & TRL_SCOPE_ALL)) {
        /* The history of a record is as visible as the record; a deleted one only to callers
         * who may read every row. */
        struct trl_record r;
        int lr = trl_rec_load(t, ty, id, NULL, &r);
        bool ok = lr == 0 && trl_rec_hist_visible(cx, ty, &r);
        if (lr == 0) trl_record_free(&r);
        if (!ok) {
            trl_diag_set(cx->d, TRL_ENOTFOUND, "no %s with id %llu", ty->name,
                         (unsigned long long)id);
            trl_diag_zh(cx->d, "不存在 ID 为 %llu 的 %s", (unsigned long long)id, ty->name);
            return TRL_ENOTFOUND;
        }
    }
    struct hist_out h = {cx, ty, out, 0};
    int rc = trl_buf_adds(out, "{\"items\":[");
    if (!rc) rc = hist_each(t, ty, id, hist_item, &h);
    if (!rc && h.n == 0) {
        trl_diag_set(cx->d, TRL_ENOTFOUND, "no %s with id %llu", ty->name, (unsigned long long)id);
        trl_diag_zh(cx->d, "不存在 ID 为 %llu 的 %s", (unsigned long long)id, ty->name);
        return TRL_ENOTFOUND;
    }
    if (!rc) rc = trl_buf_adds(out, "]}");
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Idempotency keys: value = u64 created ms, u16 status, fingerprint NUL, body
 */
#define IDEM_TTL_MS (24LL * 3600 * 1000)

static int idem_key(struct trl_buf *k, const char *user, const char *key)
{
    trl_buf_clear(k);
    if (trl_buf_adds(k, user) || trl_buf_addc(k, 0) || trl_buf_adds(k, key)) return TRL_ENOMEM;
    return 0;
}

int trl_idem_get(struct trl_txn *t, const char *user, const char *key, int64_t now_ms, bool *found,
                 struct trl_idem *e)
{
    struct trl_buf k;
    struct trl_slice v;
    trl_buf_init(&k);
    *found = false;
    memset(e, 0, sizeof(*e));
    int rc = idem_key(&k, user, key);
    if (!rc) rc = trl_txn_get(t, TRL_DB_IDEM, k.data, k.len, &v);
    trl_buf_free(&k);
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v.n < 10) return TRL_ECORRUPT;
    int64_t at = (int64_t)trl_get_u64be(v.p);
    if (now_ms - at > IDEM_TTL_MS) return 0;
    const char *p = (const char *)v.p + 10;
    const char *nul = memchr(p, 0, v.n - 10);
    if (!nul) return TRL_ECORRUPT;
    e->status = trl_get_u16be((const unsigned char *)v.p + 8);
    e->fingerprint = trl_strndup(p, (size_t)(nul - p));
    e->body = trl_strndup(nul + 1, v.n - 10 - (size_t)(nul - p) - 1);
    if (!e->fingerprint || !e->body) {
        trl_idem_free(e);
        return TRL_ENOMEM;
    }
    *found = true;
    return 0;
}

int trl_idem_put(struct trl_txn *t, const char *user, const char *key, int64_t now_ms,
                 const struct trl_idem *e)
{
    struct trl_buf k, v;
    trl_buf_init(&k);
    trl_buf_init(&v);
    int rc = idem_key(&k, user, key);
    rc = rc || trl_buf_add_u64be(&v, (uint64_t)now_ms) ||
         trl_buf_add_u16be(&v, (uint16_t)e->status) || trl_buf_adds(&v, e->fingerprint) ||
         trl_buf_addc(&v, 0) || trl_buf_adds(&v, e->body);
    if (rc)
        rc = TRL_ENOMEM;
    else
        rc = trl_txn_put(t, TRL_DB_IDEM, k.data, k.len, v.data, v.len, 0);
    trl_buf_free(&k);
    trl_buf_free(&v);
    return rc;
}

void trl_idem_free(struct trl_idem *e)
{
    if (!e) return;
    free(e->body);
    free(e->fingerprint);
    e->body = e->fingerprint = NULL;
}

int trl_idem_purge(struct trl_txn *t, int64_t now_ms, size_t max, size_t *n)
{
    struct trl_cursor *c = NULL;
    struct trl_buf k;
    trl_buf_init(&k);
    *n = 0;
    int rc = trl_cursor_open(t, TRL_DB_IDEM, &c);
    if (rc) return rc;
    /* Collect first, then delete: a delete under an open cursor would move it. */
    struct trl_buf keys;
    trl_buf_init(&keys);
    size_t found = 0;
    for (rc = trl_cursor_seek(c, NULL, 0); rc == 0 && found < max; rc = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (v.n >= 8 && now_ms - (int64_t)trl_get_u64be(v.p) > IDEM_TTL_MS) {
            if (trl_buf_add_u32be(&keys, (uint32_t)key.n) || trl_buf_add(&keys, key.p, key.n)) {
                rc = TRL_ENOMEM;
                break;
            }
            found++;
        }
    }
    trl_cursor_close(c);
    if (rc == TRL_ENOTFOUND) rc = 0;
    for (size_t off = 0; !rc && off < keys.len;) {
        uint32_t kl = trl_get_u32be(keys.data + off);
        rc = trl_txn_del(t, TRL_DB_IDEM, keys.data + off + 4, kl);
        off += 4 + kl;
        if (!rc) (*n)++;
    }
    trl_buf_free(&keys);
    trl_buf_free(&k);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Consistency check
 */
struct checker {
    struct trl_txn *t;
    struct trl_buf *report;
    int problems;
};

static void problem(struct checker *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct checker *ck, const char *fmt, ...)
{
    ck->problems++;
    if (!ck->report || ck->problems > 1000) return;
    va_list ap;
    va_start(ap, fmt);
    trl_buf_vprintf(ck->report, fmt, ap);
    va_end(ap);
    trl_buf_addc(ck->report, '\n');
}

/* Walks the history chain of (type, id); returns the head seq/hash computed. */
static int check_chain(struct checker *ck, const struct trl_type *ty, uint64_t id, uint32_t *seq,
                       unsigned char hash[32], bool *has_head, uint32_t *head_seq,
                       unsigned char head_hash[32])
{
    struct trl_cursor *c = NULL;
    unsigned char pre[12];
    trl_rec_key(pre, ty->id, id);
    memset(hash, 0, 32);
    *seq = 0;
    *has_head = false;
    int rc = trl_cursor_open(ck->t, TRL_DB_HIST, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, pre, 12); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n != 16 || memcmp(k.p, pre, 12) != 0) break;
        uint32_t s = trl_get_u32be((const unsigned char *)k.p + 12);
        if (s == 0) {
            if (v.n == 36) {
                *has_head = true;
                *head_seq = trl_get_u32be(v.p);
                memcpy(head_hash, (const unsigned char *)v.p + 4, 32);
            } else {
                problem(ck, "%s %llu: history head is malformed", ty->name, (unsigned long long)id);
            }
            continue;
        }
        if (s != *seq + 1)
            problem(ck, "%s %llu: history event %u is missing", ty->name, (unsigned long long)id,
                    *seq + 1);
        unsigned char h[32];
        if (v.n < 33) {
            problem(ck, "%s %llu: history event %u is truncated", ty->name, (unsigned long long)id,
                    s);
        } else {
            chain_hash(hash, (const unsigned char *)v.p + 32, v.n - 32, h);
            if (memcmp(h, v.p, 32) != 0)
                problem(ck, "%s %llu: history event %u was altered (hash mismatch)", ty->name,
                        (unsigned long long)id, s);
            memcpy(hash, v.p, 32);
        }
        *seq = s;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

/* Expected per-org counters: key bytes -> count (open addressing). */
struct orgcnt {
    char **key;
    size_t *klen;
    uint64_t *want;
    bool *seen;
    size_t cap, n;
};

static size_t orgcnt_find(const struct orgcnt *m, const char *k, size_t n)
{
    size_t j = trl_fnv1a(TRL_FNV1A_INIT, k, n) & (m->cap - 1);
    while (m->key[j] && !(m->klen[j] == n && memcmp(m->key[j], k, n) == 0))
        j = (j + 1) & (m->cap - 1);
    return j;
}

static int orgcnt_add(struct orgcnt *m, const char *k, size_t n)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct orgcnt nm = {.cap = m->cap ? m->cap * 2 : 64};
        nm.key = calloc(nm.cap, sizeof(*nm.key));
        nm.klen = calloc(nm.cap, sizeof(*nm.klen));
        nm.want = calloc(nm.cap, sizeof(*nm.want));
        nm.seen = calloc(nm.cap, sizeof(*nm.seen));
        if (!nm.key || !nm.klen || !nm.want || !nm.seen) {
            free(nm.key), free(nm.klen), free(nm.want), free(nm.seen);
            return TRL_ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            size_t j = orgcnt_find(&nm, m->key[i], m->klen[i]);
            nm.key[j] = m->key[i], nm.klen[j] = m->klen[i], nm.want[j] = m->want[i];
        }
        nm.n = m->n;
        free(m->key), free(m->klen), free(m->want), free(m->seen);
        *m = nm;
    }
    size_t j = orgcnt_find(m, k, n);
    if (!m->key[j]) {
        if (!(m->key[j] = malloc(n ? n : 1))) return TRL_ENOMEM;
        memcpy(m->key[j], k, n);
        m->klen[j] = n;
        m->n++;
    }
    m->want[j]++;
    return 0;
}

static void orgcnt_free(struct orgcnt *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->key[i]);
    free(m->key), free(m->klen), free(m->want), free(m->seen);
}

/* Counts into *have the waiting records whose column of the index key prefix pfx (iid, value)
 * holds that value: the value counters count them, the index does not hold them yet. */
struct pending_count {
    const struct trl_type *ty;
    const unsigned char *pfx;
    size_t pl;
    struct trl_buf k;
    uint64_t *have;
};

static int count_one(void *ud, const struct trl_record *r, struct trl_slice raw)
{
    (void)raw;
    struct pending_count *pc = ud;
    uint32_t iid = trl_get_u32be(pc->pfx);
    struct trl_value cur;
    trl_rec_column(pc->ty, r, iid & 0xFFFF, &cur);
    int rc = trl_schema_idx_key(&pc->k, iid, &cur, r->id);
    if (!rc && pc->k.len == pc->pl + 8 && memcmp(pc->k.data, pc->pfx, pc->pl) == 0) (*pc->have)++;
    return rc;
}

static int count_pending(struct checker *ck, const struct trl_type *ty, uint64_t pending,
                         const unsigned char *pfx, size_t pl, uint64_t *have)
{
    struct pending_count pc = {.ty = ty, .pfx = pfx, .pl = pl, .have = have};
    trl_buf_init(&pc.k);
    int rc = trl_rec_each_from(ck->t, ty, pending, count_one, &pc);
    trl_buf_free(&pc.k);
    return rc;
}

/* The per-org counters of ty agree with its records: every ('o', iid, org, value) and
 * ('p', type, org) key holds the number of records it counts, and none is missing. */
static int check_org_counters(struct checker *ck, const struct trl_type *ty)
{
    struct orgcnt m = {0};
    struct trl_buf k;
    trl_buf_init(&k);
    size_t cap = trl_rec_index_cap(ty);
    struct trl_idx_entry *e = malloc(cap * sizeof(*e));
    struct trl_cursor *c = NULL;
    int rc = e ? trl_cursor_open(ck->t, TRL_DB_REC, &c) : TRL_ENOMEM;
    unsigned char pre[4];
    trl_put_u32be(pre, ty->id);
    int mv;
    for (mv = rc ? 1 : trl_cursor_seek(c, pre, 4); mv == 0 && !rc; mv = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n != 12 || memcmp(key.p, pre, 4) != 0) break;
        struct trl_record r;
        if (trl_record_decode(v.p, v.n, &r) != 0) continue; /* reported by the main check */
        if (r.org.kind == TRL_V_BYTES && r.org.n) {
            size_t n = trl_rec_index_entries(ty, &r, e, cap);
            for (size_t i = 0; i < n && !rc; i++) {
                if (!e[i].counted) continue;
                rc = trl_schema_org_cnt_key(&k, trl_index_id(ty, e[i].col), &r.org, &e[i].v);
                if (!rc) rc = orgcnt_add(&m, k.data, k.len);
            }
            if (!rc) rc = trl_schema_org_total_key(&k, ty->id, &r.org);
            if (!rc) rc = orgcnt_add(&m, k.data, k.len);
        }
        trl_record_free(&r);
    }
    trl_cursor_close(c);
    c = NULL;
    /* Stored keys of this type: 'o' + (type << 16 | col) and 'p' + type. */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        unsigned char p[5] = {pass ? 'p' : 'o'};
        size_t pl;
        if (pass) {
            trl_put_u32be(p + 1, ty->id);
            pl = 5;
        } else {
            p[1] = (unsigned char)(ty->id >> 8), p[2] = (unsigned char)ty->id;
            pl = 3;
        }
        if ((rc = trl_cursor_open(ck->t, TRL_DB_CNT, &c))) break;
        for (mv = trl_cursor_seek(c, p, pl); mv == 0; mv = trl_cursor_next(c)) {
            struct trl_slice key, v;
            trl_cursor_get(c, &key, &v);
            if (key.n < pl || memcmp(key.p, p, pl) != 0) break;
            uint64_t have = v.n == 8 ? trl_get_u64be(v.p) : 0;
            size_t j = m.cap ? orgcnt_find(&m, key.p, key.n) : 0;
            uint64_t want = m.cap && m.key[j] ? m.want[j] : 0;
            if (m.cap && m.key[j]) m.seen[j] = true;
            if (have != want)
                problem(ck, "%s: an org counter says %llu, the records hold %llu", ty->name,
                        (unsigned long long)have, (unsigned long long)want);
        }
        trl_cursor_close(c);
        c = NULL;
    }
    for (size_t i = 0; i < m.cap && !rc; i++)
        if (m.key[i] && !m.seen[i])
            problem(ck, "%s: %llu record(s) of an org have no org counter", ty->name,
                    (unsigned long long)m.want[i]);
    orgcnt_free(&m);
    trl_buf_free(&k);
    free(e);
    return rc;
}

static int check_type(struct checker *ck, const struct trl_type *ty)
{
    struct trl_cursor *c = NULL;
    struct trl_buf k;
    trl_buf_init(&k);
    unsigned char pre[4];
    trl_put_u32be(pre, ty->id);
    uint64_t nrec = 0, max_id = 0, pending = 0, npending = 0;
    size_t cap = trl_rec_index_cap(ty);
    struct trl_idx_entry *e = malloc(cap * sizeof(*e));
    int rc = e ? trl_schema_pending_get(ck->t, ty->id, &pending) : TRL_ENOMEM;
    if (!rc) rc = trl_cursor_open(ck->t, TRL_DB_REC, &c);
    if (rc) {
        free(e);
        return rc;
    }
    for (rc = trl_cursor_seek(c, pre, 4); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n < 4 || memcmp(key.p, pre, 4) != 0) break;
        if (key.n != 12) {
            problem(ck, "%s: malformed record key", ty->name);
            continue;
        }
        uint64_t id = trl_get_u64be((const unsigned char *)key.p + 4);
        struct trl_record r;
        if (trl_record_decode(v.p, v.n, &r)) {
            problem(ck, "%s %llu: record cannot be decoded", ty->name, (unsigned long long)id);
            continue;
        }
        r.type_id = ty->id;
        r.id = id;
        nrec++;
        if (id > max_id) max_id = id;
        /* A record waiting for its batch has no plain entries yet; every other has all. */
        bool waits = pending && id >= pending;
        npending += waits;
        size_t n = trl_rec_index_entries(ty, &r, e, cap);
        for (size_t i = 0; i < n; i++) {
            struct trl_slice tmp;
            uint32_t iid = trl_index_id(ty, e[i].col);
            bool found = trl_schema_idx_key(&k, iid, &e[i].v, id) == 0 &&
                         trl_txn_get(ck->t, TRL_DB_IDX, k.data, k.len, &tmp) == 0;
            if (!found && !waits)
                problem(ck, "%s %llu: index entry for column %u is missing", ty->name,
                        (unsigned long long)id, e[i].col);
            else if (found && waits)
                problem(ck, "%s %llu: index entry for column %u exists before its batch", ty->name,
                        (unsigned long long)id, e[i].col);
            if (e[i].unique && e[i].v.kind != TRL_V_NULL &&
                trl_schema_uniq_key(&k, iid, &e[i].v) == 0) {
                if (trl_txn_get(ck->t, TRL_DB_IDX, k.data, k.len, &tmp) != 0 || tmp.n != 8 ||
                    trl_get_u64be(tmp.p) != id)
                    problem(ck, "%s %llu: unique index entry for column %u is wrong", ty->name,
                            (unsigned long long)id, e[i].col);
            }
        }
        uint32_t seq;
        unsigned char hash[32], hh[32];
        bool has_head;
        uint32_t head_seq;
        if ((rc = check_chain(ck, ty, id, &seq, hash, &has_head, &head_seq, hh))) {
            trl_record_free(&r);
            break;
        }
        if (seq != r.hist_seq || memcmp(hash, r.hist_hash, 32) != 0)
            problem(ck, "%s %llu: history chain (%u events) does not end at the record's head (%u)",
                    ty->name, (unsigned long long)id, seq, r.hist_seq);
        trl_record_free(&r);
    }
    trl_cursor_close(c);
    c = NULL;
    if (rc == TRL_ENOTFOUND) rc = 0;
    if (rc) goto out;

    /* Every index entry of the type points at a live record with that value. */
    uint64_t nidx_state = 0;
    if ((rc = trl_cursor_open(ck->t, TRL_DB_IDX, &c))) goto out;
    unsigned char ipre[2] = {(unsigned char)(ty->id >> 8), (unsigned char)ty->id};
    for (rc = trl_cursor_seek(c, ipre, 2); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n < 4 || memcmp(key.p, ipre, 2) != 0) break;
        uint32_t iid = trl_get_u32be(key.p);
        uint32_t col = iid & 0xFFFF;
        bool uniq = col < TRL_COL_SYSTEM && (col & TRL_UNIQUE_BIT);
        uint64_t rid;
        const unsigned char *p = (const unsigned char *)key.p + 4, *end = p + key.n - 4;
        struct trl_value val;
        struct trl_arena a;
        trl_arena_init(&a);
        if (trl_key_get_value(&p, end, &a, &val)) {
            problem(ck, "%s: malformed index key", ty->name);
            trl_arena_free(&a);
            continue;
        }
        if (uniq) {
            if (v.n != 8) {
                problem(ck, "%s: malformed unique entry", ty->name);
                trl_arena_free(&a);
                continue;
            }
            rid = trl_get_u64be(v.p);
            col &= ~TRL_UNIQUE_BIT;
        } else {
            if (end - p != 8) {
                problem(ck, "%s: malformed index key", ty->name);
                trl_arena_free(&a);
                continue;
            }
            rid = trl_get_u64be(p);
        }
        if (col == TRL_COL_STATE) nidx_state++;
        struct trl_record r;
        unsigned char rk[12];
        struct trl_slice rv;
        trl_rec_key(rk, ty->id, rid);
        if (trl_txn_get(ck->t, TRL_DB_REC, rk, 12, &rv) != 0) {
            problem(ck, "%s: index on column %u points at missing record %llu", ty->name, col,
                    (unsigned long long)rid);
        } else if (trl_record_decode(rv.p, rv.n, &r) == 0) {
            r.type_id = ty->id;
            r.id = rid;
            struct trl_value cur;
            trl_rec_column(ty, &r, col, &cur);
            if (cur.kind != val.kind || (cur.kind == TRL_V_INT && cur.i != val.i) ||
                (cur.kind == TRL_V_BYTES && (cur.n != val.n || memcmp(cur.s, val.s, cur.n))))
                problem(ck, "%s %llu: stale index entry on column %u", ty->name,
                        (unsigned long long)rid, col);
            trl_record_free(&r);
        }
        trl_arena_free(&a);
    }
    trl_cursor_close(c);
    c = NULL;
    if (rc == TRL_ENOTFOUND) rc = 0;
    if (rc) goto out;
    if (nidx_state != nrec - npending)
        problem(ck, "%s: %llu indexed records but %llu state index entries", ty->name,
                (unsigned long long)(nrec - npending), (unsigned long long)nidx_state);

    /* Counters. */
    uint64_t cnt;
    if ((rc = trl_rec_count(ck->t, ty, &cnt))) goto out;
    if (cnt != nrec)
        problem(ck, "%s: counter says %llu records, the table holds %llu", ty->name,
                (unsigned long long)cnt, (unsigned long long)nrec);
    /* Per-value counters equal index range sizes. */
    if ((rc = trl_cursor_open(ck->t, TRL_DB_CNT, &c))) goto out;
    unsigned char cpre[3] = {'c', (unsigned char)(ty->id >> 8), (unsigned char)ty->id};
    for (rc = trl_cursor_seek(c, cpre, 3); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n < 5 || memcmp(key.p, cpre, 3) != 0) break;
        uint64_t want = v.n == 8 ? trl_get_u64be(v.p) : 0, have = 0;
        /* Count index entries with this (iid, value) prefix. */
        struct trl_cursor *ic = NULL;
        if ((rc = trl_cursor_open(ck->t, TRL_DB_IDX, &ic))) break;
        const unsigned char *pfx = (const unsigned char *)key.p + 1;
        size_t pl = key.n - 1;
        int mv;
        for (mv = trl_cursor_seek(ic, pfx, pl); mv == 0; mv = trl_cursor_next(ic)) {
            struct trl_slice ik;
            trl_cursor_get(ic, &ik, NULL);
            if (ik.n != pl + 8 || memcmp(ik.p, pfx, pl) != 0) break;
            have++;
        }
        trl_cursor_close(ic);
        /* Records waiting for their batch are counted but not yet in the index. */
        if (pending && (rc = count_pending(ck, ty, pending, pfx, pl, &have))) break;
        if (want != have)
            problem(ck, "%s: value counter of column %u says %llu, the index holds %llu", ty->name,
                    trl_get_u32be(pfx) & 0xFFFF, (unsigned long long)want,
                    (unsigned long long)have);
    }
    trl_cursor_close(c);
    c = NULL;
    if (rc == TRL_ENOTFOUND) rc = 0;

    if (!rc) rc = check_org_counters(ck, ty);

    /* The id sequence is past every id. */
    char seqkey[32];
    snprintf(seqkey, sizeof(seqkey), "id:%u", ty->id);
    uint64_t seqv = 0;
    if ((rc = trl_txn_seq_get(ck->t, seqkey, &seqv))) goto out;
    if (max_id > seqv)
        problem(ck, "%s: id sequence %llu is behind record id %llu", ty->name,
                (unsigned long long)seqv, (unsigned long long)max_id);
out:
    trl_cursor_close(c);
    trl_buf_free(&k);
    free(e);
    return rc;
}

/* History of deleted records: the chain must reach the stored head. */
static int check_deleted(struct checker *ck, const struct trl_catalog *cat)
{
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(ck->t, TRL_DB_HIST, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, NULL, 0); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n != 16 || trl_get_u32be((const unsigned char *)k.p + 12) != 0) continue;
        uint32_t tid = trl_get_u32be(k.p);
        uint64_t id = trl_get_u64be((const unsigned char *)k.p + 4);
        const struct trl_type *ty = trl_catalog_type_by_id(cat, tid);
        if (!ty) continue;
        uint32_t seq, hs;
        unsigned char hash[32], hh[32];
        bool has_head;
        /* A separate cursor walks the chain. */
        if ((rc = check_chain(ck, ty, id, &seq, hash, &has_head, &hs, hh))) break;
        if (!has_head || hs != seq || memcmp(hh, hash, 32) != 0)
            problem(ck, "%s %llu (deleted): history chain does not end at its head", ty->name,
                    (unsigned long long)id);
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

int trl_rec_check(struct trl_txn *t, const struct trl_catalog *cat, struct trl_buf *report)
{
    struct checker ck = {.t = t, .report = report};
    for (size_t i = 0; i < cat->ntypes; i++) {
        int rc = check_type(&ck, cat->types[i]);
        if (rc) return rc;
    }
    int rc = check_deleted(&ck, cat);
    if (rc) return rc;
    return ck.problems;
}

struct state_walk {
    const struct trl_type *ty;
    int (*fn)(void *ud, const char *state, int64_t at_ms);
    void *ud;
    const char *to; /* the "to" member's value text (with quotes), or NULL */
    size_t to_n;
};

static int find_to(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct state_walk *w = ud;
    if (kn != 4 || memcmp(k, "\"to\"", 4) != 0) return 0;
    w->to = v;
    w->to_n = vn;
    return 1; /* found: stop */
}

static int state_event(void *ud, const unsigned char *hash, const char *ev, size_t evn)
{
    (void)hash;
    struct state_walk *w = ud;
    /* {"seq":N,"at":"<24 bytes>","actor":...,"action":"<name>",... (history.c writes it) */
    const char *at = memmem(ev, evn < 40 ? evn : 40, "\"at\":\"", 6);
    const char *act = memmem(ev, evn, "\"action\":\"", 10);
    int64_t at_ms;
    if (!at || !act || trl_datetime_parse(at + 6, 24, &at_ms)) return 0;
    act += 10;
    size_t left = evn - (size_t)(act - ev);
    if (left > 7 && memcmp(act, "create\"", 7) == 0)
        return w->fn(w->ud, w->ty->initial_state ? w->ty->initial_state : "", at_ms);
    if (left <= 11 || memcmp(act, "transition\"", 11) != 0) return 0;
    /* Transitions say where they went: the "to" member, a state name (no escapes). */
    w->to = NULL;
    if (trl_json_each_member(ev, evn, find_to, w) != 1 || w->to_n < 2 || w->to[0] != '"' ||
        memchr(w->to, '\\', w->to_n))
        return 0;
    char state[64];
    if (w->to_n - 2 >= sizeof(state)) return 0;
    memcpy(state, w->to + 1, w->to_n - 2);
    state[w->to_n - 2] = 0;
    return w->fn(w->ud, state, at_ms);
}

int trl_rec_state_walk(struct trl_txn *t, const struct trl_type *ty, uint64_t id,
                       int (*fn)(void *ud, const char *state, int64_t at_ms), void *ud)
{
    struct state_walk w = {.ty = ty, .fn = fn, .ud = ud};
    return hist_each(t, ty, id, state_event, &w);
}
