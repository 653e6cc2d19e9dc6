/* record_codec.c — the binary record format.
 *
 *   u8 format (1)
 *   varint version, zigzag created_at, zigzag updated_at, varint hist_seq, 32 bytes hist_hash
 *   6 x (varint length, bytes): name, state, owner, org, created_by, updated_by
 *   varint nvals, then per value: varint fid, u8 kind, (zigzag varint | varint length, bytes)
 */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define FORMAT 1

static uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzz(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

void trl_record_init(struct trl_record *r)
{
    memset(r, 0, sizeof(*r));
}

void trl_record_free(struct trl_record *r)
{
    if (!r) return;
    free(r->vals);
    r->vals = NULL;
    r->nvals = r->capvals = 0;
}

static size_t find(const struct trl_record *r, uint32_t fid, bool *found)
{
    size_t lo = 0, hi = r->nvals;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->vals[mid].fid < fid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->nvals && r->vals[lo].fid == fid;
    return lo;
}

const struct trl_value *trl_record_get(const struct trl_record *r, uint32_t fid)
{
    bool found;
    size_t i = find(r, fid, &found);
    return found ? &r->vals[i].v : NULL;
}

int trl_record_set(struct trl_record *r, uint32_t fid, const struct trl_value *v)
{
    bool found;
    size_t i = find(r, fid, &found);
    if (v->kind == TRL_V_NULL) {
        if (found) {
            memmove(&r->vals[i], &r->vals[i + 1], (r->nvals - i - 1) * sizeof(r->vals[0]));
            r->nvals--;
        }
        return 0;
    }
    if (found) {
        r->vals[i].v = *v;
        return 0;
    }
    if (r->nvals == r->capvals) {
        size_t nc = r->capvals ? r->capvals * 2 : 16;
        struct trl_fval *nv = realloc(r->vals, nc * sizeof(*nv));
        if (!nv) return TRL_ENOMEM;
        r->vals = nv;
        r->capvals = nc;
    }
    memmove(&r->vals[i + 1], &r->vals[i], (r->nvals - i) * sizeof(r->vals[0]));
    r->vals[i].fid = fid;
    r->vals[i].v = *v;
    r->nvals++;
    return 0;
}

static int add_str(struct trl_buf *b, const struct trl_value *v)
{
    size_t n = v->kind == TRL_V_BYTES ? v->n : 0;
    if (trl_buf_add_varint(b, n)) return TRL_ENOMEM;
    return trl_buf_add(b, v->s, n);
}

int trl_record_encode(const struct trl_record *r, struct trl_buf *b)
{
    if (trl_buf_reserve(b, 64 + 48 * r->nvals)) return TRL_ENOMEM;
    if (trl_buf_addc(b, FORMAT) || trl_buf_add_varint(b, r->version) ||
        trl_buf_add_varint(b, zz(r->created_at)) || trl_buf_add_varint(b, zz(r->updated_at)) ||
        trl_buf_add_varint(b, r->hist_seq) || trl_buf_add(b, r->hist_hash, 32))
        return TRL_ENOMEM;
    if (add_str(b, &r->name) || add_str(b, &r->state) || add_str(b, &r->owner) ||
        add_str(b, &r->org) || add_str(b, &r->created_by) || add_str(b, &r->updated_by))
        return TRL_ENOMEM;
    if (trl_buf_add_varint(b, r->nvals)) return TRL_ENOMEM;
    for (size_t i = 0; i < r->nvals; i++) {
        const struct trl_value *v = &r->vals[i].v;
        if (trl_buf_add_varint(b, r->vals[i].fid) || trl_buf_addc(b, (char)v->kind))
            return TRL_ENOMEM;
        if (v->kind == TRL_V_INT) {
            if (trl_buf_add_varint(b, zz(v->i))) return TRL_ENOMEM;
        } else if (v->kind == TRL_V_BYTES) {
            if (add_str(b, v)) return TRL_ENOMEM;
        }
    }
    return 0;
}

static int get_str(const unsigned char **p, const unsigned char *end, struct trl_value *v)
{
    uint64_t n;
    if (trl_get_varint(p, end, &n) || n > (uint64_t)(end - *p)) return TRL_ECORRUPT;
    v->kind = TRL_V_BYTES;
    v->s = (const char *)*p;
    v->n = (size_t)n;
    v->i = 0;
    *p += n;
    return 0;
}

int trl_record_decode(const void *data, size_t n, struct trl_record *r)
{
    const unsigned char *p = data, *end = p + n;
    uint64_t u, nv;
    trl_record_init(r);
    if (n < 1 || *p++ != FORMAT) return TRL_ECORRUPT;
    if (trl_get_varint(&p, end, &r->version)) goto corrupt;
    if (trl_get_varint(&p, end, &u)) goto corrupt;
    r->created_at = unzz(u);
    if (trl_get_varint(&p, end, &u)) goto corrupt;
    r->updated_at = unzz(u);
    if (trl_get_varint(&p, end, &u) || u > UINT32_MAX) goto corrupt;
    r->hist_seq = (uint32_t)u;
    if (end - p < 32) goto corrupt;
    memcpy(r->hist_hash, p, 32);
    p += 32;
    if (get_str(&p, end, &r->name) || get_str(&p, end, &r->state) || get_str(&p, end, &r->owner) ||
        get_str(&p, end, &r->org) || get_str(&p, end, &r->created_by) ||
        get_str(&p, end, &r->updated_by))
        goto corrupt;
    if (trl_get_varint(&p, end, &nv) || nv > (uint64_t)(end - p)) goto corrupt;
    if (nv) {
        r->vals = malloc(nv * sizeof(*r->vals));
        if (!r->vals) return TRL_ENOMEM;
        r->capvals = nv;
    }
    uint32_t prev = 0;
    for (uint64_t i = 0; i < nv; i++) {
        struct trl_fval *f = &r->vals[i];
        if (trl_get_varint(&p, end, &u) || u > UINT32_MAX || (i && u <= prev) || p >= end)
            goto corrupt;
        f->fid = prev = (uint32_t)u;
        memset(&f->v, 0, sizeof(f->v));
        f->v.kind = (enum trl_vkind) * p++;
        if (f->v.kind == TRL_V_INT) {
            if (trl_get_varint(&p, end, &u)) goto corrupt;
            f->v.i = unzz(u);
        } else if (f->v.kind == TRL_V_BYTES) {
            if (get_str(&p, end, &f->v)) goto corrupt;
        } else {
            goto corrupt;
        }
        r->nvals++;
    }
    if (p != end) goto corrupt;
    return 0;
corrupt:
    trl_record_free(r);
    return TRL_ECORRUPT;
}
