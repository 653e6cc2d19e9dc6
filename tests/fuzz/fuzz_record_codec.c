/*
 * fuzz_record_codec.c — libFuzzer target for the binary record format (and the key encoding of
 * the values it holds).
 *
 * Arbitrary bytes go to trl_record_decode. A refusal must be TRL_ECORRUPT with the record left
 * empty. An accepted record must hold strictly increasing field ids and values inside the input;
 * encoding it must decode again to the same record, and that second encoding must equal the
 * first (the canonical form is a fixpoint, never longer than the input). Every value must also
 * survive the order-preserving key encoding.
 */
#include "codec/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void same_value(const struct trl_value *a, const struct trl_value *b)
{
    if (a->kind != b->kind) abort();
    if (a->kind == TRL_V_INT && a->i != b->i) abort();
    if (a->kind == TRL_V_BYTES && (a->n != b->n || (a->n && memcmp(a->s, b->s, a->n) != 0)))
        abort();
}

static void same_record(const struct trl_record *a, const struct trl_record *b)
{
    if (a->version != b->version || a->created_at != b->created_at ||
        a->updated_at != b->updated_at || a->hist_seq != b->hist_seq ||
        memcmp(a->hist_hash, b->hist_hash, 32) != 0 || a->nvals != b->nvals)
        abort();
    same_value(&a->name, &b->name);
    same_value(&a->state, &b->state);
    same_value(&a->owner, &b->owner);
    same_value(&a->org, &b->org);
    same_value(&a->created_by, &b->created_by);
    same_value(&a->updated_by, &b->updated_by);
    for (size_t i = 0; i < a->nvals; i++) {
        if (a->vals[i].fid != b->vals[i].fid) abort();
        same_value(&a->vals[i].v, &b->vals[i].v);
    }
}

static void inside(const struct trl_value *v, const uint8_t *data, size_t size)
{
    if (v->kind != TRL_V_BYTES) return;
    if (v->n && ((const uint8_t *)v->s < data || (const uint8_t *)v->s + v->n > data + size))
        abort();
}

static void key_round_trip(const struct trl_value *v)
{
    struct trl_buf b;
    struct trl_arena a;
    struct trl_value out;
    trl_buf_init(&b);
    trl_arena_init(&a);
    if (trl_key_add_value(&b, v)) abort();
    const unsigned char *p = (const unsigned char *)b.data, *end = p + b.len;
    if (trl_key_get_value(&p, end, &a, &out) || p != end) abort();
    same_value(v, &out);
    trl_arena_free(&a);
    trl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trl_record r1, r2;
    int rc = trl_record_decode(data, size, &r1);
    if (rc) {
        if (rc != TRL_ECORRUPT || r1.vals || r1.nvals) abort();
        return 0;
    }
    for (size_t i = 0; i < r1.nvals; i++) {
        if (i && r1.vals[i - 1].fid >= r1.vals[i].fid) abort();
        if (trl_record_get(&r1, r1.vals[i].fid) != &r1.vals[i].v) abort();
        inside(&r1.vals[i].v, data, size);
        key_round_trip(&r1.vals[i].v);
    }
    inside(&r1.name, data, size);
    inside(&r1.state, data, size);
    inside(&r1.owner, data, size);
    inside(&r1.org, data, size);
    inside(&r1.created_by, data, size);
    inside(&r1.updated_by, data, size);

    struct trl_buf b1, b2;
    trl_buf_init(&b1);
    trl_buf_init(&b2);
    if (trl_record_encode(&r1, &b1)) abort();
    if (b1.len > size) abort(); /* minimal varints: never longer than what was decoded */
    if (trl_record_decode(b1.data, b1.len, &r2)) abort();
    same_record(&r1, &r2);
    if (trl_record_encode(&r2, &b2)) abort();
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) abort();
    trl_record_free(&r2);
    trl_record_free(&r1);
    trl_buf_free(&b1);
    trl_buf_free(&b2);
    return 0;
}
