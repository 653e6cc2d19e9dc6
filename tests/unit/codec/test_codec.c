/*
 * test_codec.c — order-preserving index keys and the binary record format.
 *
 * Keys: for random pairs of integers and of byte strings (embedded NULs, 0xFF, prefixes),
 * LMDB's byte order of the encodings equals the order of the values, also when a record id
 * follows the value as it does in index keys; decoding returns the value. Records: encode and
 * decode round trip every field, decoding borrows the input, and corrupt or truncated inputs are
 * refused with TRL_ECORRUPT leaving the record empty.
 */
#include "codec/codec.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check's ck_assert_* writes a mark to its parent process on every success: far too slow inside
 * loops of 100000 iterations, so loops test with this and only report failures. */
#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

/* xorshift64*: deterministic, so a failure replays. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* LMDB's default key order: memcmp over the common length, then the shorter first. */
static int lmdb_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    return lmdb_cmp(a, an, b, bn);
}

static struct trl_value vint(int64_t i)
{
    return (struct trl_value){.kind = TRL_V_INT, .i = i};
}

static struct trl_value vbytes(const char *s, size_t n)
{
    return (struct trl_value){.kind = TRL_V_BYTES, .s = s, .n = n};
}

static void enc(struct trl_buf *b, const struct trl_value *v)
{
    trl_buf_clear(b);
    LOOP_ASSERT(trl_key_add_value(b, v) == 0, "trl_key_add_value failed");
}

/* ---------------------------------------------------------------------------------------------
 * Keys
 */
static int64_t random_int(uint64_t *s)
{
    uint64_t r = rng_next(s);
    switch (r % 6) {
    case 0:
        return (int64_t)rng_next(s);
    case 1:
        return (int64_t)(rng_next(s) % 2001) - 1000;
    case 2:
        return INT64_MIN + (int64_t)(rng_next(s) % 3);
    case 3:
        return INT64_MAX - (int64_t)(rng_next(s) % 3);
    case 4:
        return (int64_t)(rng_next(s) % 512) - 256;
    default:
        return -(int64_t)(rng_next(s) >> 2);
    }
}

START_TEST(int_keys_sort_like_ints)
{
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    struct trl_buf a, b;
    trl_buf_init(&a);
    trl_buf_init(&b);
    for (int i = 0; i < 200000; i++) {
        int64_t x = random_int(&seed), y = random_int(&seed);
        struct trl_value vx = vint(x), vy = vint(y);
        enc(&a, &vx);
        enc(&b, &vy);
        LOOP_ASSERT(a.len == 9, "int key of %zu bytes", a.len);
        int want = x < y ? -1 : x > y;
        LOOP_ASSERT(lmdb_cmp(a.data, a.len, b.data, b.len) == want, "%lld vs %lld", (long long)x,
                    (long long)y);
    }
    trl_buf_free(&a);
    trl_buf_free(&b);
}
END_TEST

/* Random bytes over a small alphabet rich in NUL, 0x01, 0xFF so escapes and prefixes collide. */
static size_t random_bytes(uint64_t *s, char *out, size_t cap)
{
    static const char alpha[] = {0, 1, 2, 'a', 'b', (char)0x7f, (char)0xfe, (char)0xff};
    size_t n = (size_t)(rng_next(s) % (cap + 1));
    for (size_t i = 0; i < n; i++)
        out[i] = alpha[rng_next(s) % sizeof(alpha)];
    return n;
}

START_TEST(byte_keys_sort_like_bytes_with_embedded_nuls)
{
    uint64_t seed = 12345;
    struct trl_buf a, b;
    trl_buf_init(&a);
    trl_buf_init(&b);
    char x[16], y[16];
    for (int i = 0; i < 200000; i++) {
        size_t xn = random_bytes(&seed, x, sizeof(x));
        size_t yn;
        if (i % 4 == 0) {
            /* y extends or truncates x: prefix order must hold. */
            yn = xn ? (size_t)(rng_next(&seed) % (xn + 1)) : 0;
            memcpy(y, x, yn);
            if (i % 8 == 0 && yn < sizeof(y)) y[yn++] = (char)(rng_next(&seed) % 3);
        } else {
            yn = random_bytes(&seed, y, sizeof(y));
        }
        struct trl_value vx = vbytes(x, xn), vy = vbytes(y, yn);
        enc(&a, &vx);
        enc(&b, &vy);
        int want = bytes_cmp(x, xn, y, yn);
        int got = lmdb_cmp(a.data, a.len, b.data, b.len);
        LOOP_ASSERT(got == want, "case %d: got %d want %d (lengths %zu, %zu)", i, got, want, xn,
                    yn);
    }
    trl_buf_free(&a);
    trl_buf_free(&b);
}
END_TEST

START_TEST(byte_key_order_examples)
{
    /* "a" < "a\0" < "a\0\0" < "a\x01" < "ab" < "b"; "" first. */
    static const struct {
        const char *s;
        size_t n;
    } ordered[] = {{"", 0},    {"\0", 1},    {"\0\0", 2},    {"\x01", 1},  {"a", 1},
                   {"a\0", 2}, {"a\0\0", 3}, {"a\0\x01", 3}, {"a\x01", 2}, {"ab", 2},
                   {"b", 1},   {"\xff", 1},  {"\xff\xff", 2}};
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    struct trl_buf a, b;
    trl_buf_init(&a);
    trl_buf_init(&b);
    for (size_t i = 0; i + 1 < n; i++) {
        struct trl_value x = vbytes(ordered[i].s, ordered[i].n);
        struct trl_value y = vbytes(ordered[i + 1].s, ordered[i + 1].n);
        enc(&a, &x);
        enc(&b, &y);
        ck_assert_msg(lmdb_cmp(a.data, a.len, b.data, b.len) < 0, "entry %zu vs %zu", i, i + 1);
    }
    /* Null sorts before every int, ints before bytes (one column holds one kind). */
    struct trl_value nul = {.kind = TRL_V_NULL}, lo = vint(INT64_MIN), empty = vbytes("", 0);
    enc(&a, &nul);
    enc(&b, &lo);
    ck_assert_int_lt(lmdb_cmp(a.data, a.len, b.data, b.len), 0);
    enc(&a, &empty);
    ck_assert_int_gt(lmdb_cmp(a.data, a.len, b.data, b.len), 0);
    trl_buf_free(&a);
    trl_buf_free(&b);
}
END_TEST

START_TEST(index_keys_with_record_ids_sort_by_value_then_id)
{
    /* Index keys are value || u64be id: the value's encoding must be prefix-free, or a longer
     * value could sort between two ids of a shorter one. */
    uint64_t seed = 777;
    struct trl_buf a, b;
    trl_buf_init(&a);
    trl_buf_init(&b);
    char x[8], y[8];
    for (int i = 0; i < 100000; i++) {
        size_t xn = random_bytes(&seed, x, sizeof(x));
        size_t yn = i % 3 ? random_bytes(&seed, y, sizeof(y)) : xn;
        if (i % 3 == 0) memcpy(y, x, xn);
        uint64_t ix = rng_next(&seed), iy = i % 5 ? rng_next(&seed) : ix;
        struct trl_value vx = vbytes(x, xn), vy = vbytes(y, yn);
        enc(&a, &vx);
        trl_buf_add_u64be(&a, ix);
        enc(&b, &vy);
        trl_buf_add_u64be(&b, iy);
        int want = bytes_cmp(x, xn, y, yn);
        if (!want) want = ix < iy ? -1 : ix > iy;
        LOOP_ASSERT(lmdb_cmp(a.data, a.len, b.data, b.len) == want, "bytes case %d", i);
    }
    for (int i = 0; i < 100000; i++) {
        int64_t vx = random_int(&seed), vy = i % 4 ? random_int(&seed) : vx;
        uint64_t ix = rng_next(&seed) % 100, iy = rng_next(&seed) % 100;
        struct trl_value kx = vint(vx), ky = vint(vy);
        enc(&a, &kx);
        trl_buf_add_u64be(&a, ix);
        enc(&b, &ky);
        trl_buf_add_u64be(&b, iy);
        int want = vx != vy ? (vx < vy ? -1 : 1) : (ix < iy ? -1 : ix > iy);
        LOOP_ASSERT(lmdb_cmp(a.data, a.len, b.data, b.len) == want, "int case %d", i);
    }
    trl_buf_free(&a);
    trl_buf_free(&b);
}
END_TEST

START_TEST(key_get_value_round_trips)
{
    uint64_t seed = 4242;
    struct trl_buf b;
    trl_buf_init(&b);
    char x[32];
    for (int i = 0; i < 20000; i++) {
        struct trl_value v;
        int kind = (int)(rng_next(&seed) % 3);
        if (kind == 0)
            v = (struct trl_value){.kind = TRL_V_NULL};
        else if (kind == 1)
            v = vint(random_int(&seed));
        else
            v = vbytes(x, random_bytes(&seed, x, sizeof(x)));
        enc(&b, &v);
        trl_buf_add_u64be(&b, 99); /* trailing id, as in index keys */
        struct trl_arena a;
        trl_arena_init(&a);
        const unsigned char *p = (const unsigned char *)b.data, *end = p + b.len;
        struct trl_value out;
        LOOP_ASSERT(trl_key_get_value(&p, end, &a, &out) == 0, "case %d refused", i);
        LOOP_ASSERT(end - p == 8, "case %d: stopped %td bytes before the end", i, end - p);
        LOOP_ASSERT(trl_get_u64be(p) == 99, "case %d: id", i);
        LOOP_ASSERT(out.kind == v.kind, "case %d: kind", i);
        if (v.kind == TRL_V_INT) LOOP_ASSERT(out.i == v.i, "case %d: int", i);
        if (v.kind == TRL_V_BYTES) {
            LOOP_ASSERT(out.n == v.n && memcmp(out.s, v.s, v.n) == 0, "case %d: bytes", i);
            /* Without escapes the bytes are borrowed from the key itself. */
            if (!memchr(v.s, 0, v.n))
                LOOP_ASSERT(out.s >= b.data && out.s + out.n <= b.data + b.len,
                            "case %d: not borrowed", i);
        }
        trl_arena_free(&a);
    }
    trl_buf_free(&b);
}
END_TEST

START_TEST(key_get_value_refuses_corrupt_keys)
{
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"", 0},                 /* nothing */
        {"\x00", 1},             /* unknown tag */
        {"\x04", 1},             /* unknown tag */
        {"\x02\x80\x00\x00", 4}, /* truncated int */
        {"\x03"
         "abc",
         4}, /* bytes without terminator */
        {"\x03"
         "abc\x00",
         5}, /* half a terminator */
        {"\x03"
         "a\x00\x02",
         4}, /* NUL followed by neither FF nor 01 */
        {"\x03"
         "a\x00\xff",
         4}, /* escape then end */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trl_arena a;
        trl_arena_init(&a);
        const unsigned char *p = (const unsigned char *)bad[i].bytes, *start = p;
        struct trl_value out;
        ck_assert_msg(trl_key_get_value(&p, p + bad[i].n, &a, &out) == TRL_ECORRUPT, "case %zu", i);
        ck_assert_ptr_eq(p, start);
        trl_arena_free(&a);
    }
}
END_TEST

START_TEST(key_encodings_are_exact)
{
    struct trl_buf b;
    trl_buf_init(&b);
    struct trl_value v = vint(0);
    enc(&b, &v);
    ck_assert_int_eq(memcmp(b.data, "\x02\x80\x00\x00\x00\x00\x00\x00\x00", 9), 0);
    v = vint(-1);
    enc(&b, &v);
    ck_assert_int_eq(memcmp(b.data, "\x02\x7f\xff\xff\xff\xff\xff\xff\xff", 9), 0);
    v = vbytes("a\0b", 3);
    enc(&b, &v);
    ck_assert_uint_eq(b.len, 7);
    ck_assert_int_eq(memcmp(b.data,
                            "\x03"
                            "a\x00\xff"
                            "b\x00\x01",
                            7),
                     0);
    v = (struct trl_value){.kind = TRL_V_NULL};
    enc(&b, &v);
    ck_assert_uint_eq(b.len, 1);
    ck_assert_int_eq(b.data[0], 1);
    trl_buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Records
 */
static struct trl_value sv(const char *s)
{
    return vbytes(s, strlen(s));
}

static void sample_record(struct trl_record *r)
{
    trl_record_init(r);
    r->type_id = 3;
    r->id = 17;
    r->version = 5;
    r->created_at = 1767225600000LL;
    r->updated_at = -1;
    r->name = sv("MR-2026-00017");
    r->state = sv("submitted");
    r->owner = sv("alice");
    r->org = sv("");
    r->created_by = sv("alice");
    r->updated_by = sv("张伟");
    r->hist_seq = 4;
    for (int i = 0; i < 32; i++)
        r->hist_hash[i] = (unsigned char)(i * 7 + 1);
    struct trl_value v;
    v = sv("Spring 促销");
    ck_assert_int_eq(trl_record_set(r, 9, &v), 0);
    v = vint(INT64_MIN);
    ck_assert_int_eq(trl_record_set(r, 2, &v), 0);
    v = vint(INT64_MAX);
    ck_assert_int_eq(trl_record_set(r, 3, &v), 0);
    v = vbytes("a\0b\xff", 4);
    ck_assert_int_eq(trl_record_set(r, 1, &v), 0);
    v = vbytes("", 0);
    ck_assert_int_eq(trl_record_set(r, 40000, &v), 0);
    v = vint(0);
    ck_assert_int_eq(trl_record_set(r, 0, &v), 0);
    v = vint(-1234567);
    ck_assert_int_eq(trl_record_set(r, UINT32_MAX, &v), 0);
}

static void value_eq(const struct trl_value *a, const struct trl_value *b)
{
    LOOP_ASSERT(a->kind == b->kind, "kind %d != %d", a->kind, b->kind);
    if (a->kind == TRL_V_INT)
        LOOP_ASSERT(a->i == b->i, "int %lld != %lld", (long long)a->i, (long long)b->i);
    if (a->kind == TRL_V_BYTES)
        LOOP_ASSERT(a->n == b->n && (a->n == 0 || memcmp(a->s, b->s, a->n) == 0), "bytes differ");
}

/* System text columns decode as bytes even when encoded from an empty or null value. */
static void sys_eq(const struct trl_value *a, const struct trl_value *b)
{
    size_t an = a->kind == TRL_V_BYTES ? a->n : 0;
    LOOP_ASSERT(b->kind == TRL_V_BYTES, "system column not bytes");
    LOOP_ASSERT(an == b->n && (an == 0 || memcmp(a->s, b->s, an) == 0), "system column differs");
}

static void record_eq(const struct trl_record *a, const struct trl_record *b)
{
    LOOP_ASSERT(a->version == b->version, "version");
    LOOP_ASSERT(a->created_at == b->created_at, "created_at");
    LOOP_ASSERT(a->updated_at == b->updated_at, "updated_at");
    LOOP_ASSERT(a->hist_seq == b->hist_seq, "hist_seq");
    LOOP_ASSERT(memcmp(a->hist_hash, b->hist_hash, 32) == 0, "hist_hash");
    sys_eq(&a->name, &b->name);
    sys_eq(&a->state, &b->state);
    sys_eq(&a->owner, &b->owner);
    sys_eq(&a->org, &b->org);
    sys_eq(&a->created_by, &b->created_by);
    sys_eq(&a->updated_by, &b->updated_by);
    LOOP_ASSERT(a->nvals == b->nvals, "nvals %zu != %zu", a->nvals, b->nvals);
    for (size_t i = 0; i < a->nvals; i++) {
        LOOP_ASSERT(a->vals[i].fid == b->vals[i].fid, "fid at %zu", i);
        value_eq(&a->vals[i].v, &b->vals[i].v);
    }
}

START_TEST(record_set_keeps_fields_sorted)
{
    struct trl_record r;
    sample_record(&r);
    ck_assert_uint_eq(r.nvals, 7);
    for (size_t i = 1; i < r.nvals; i++)
        ck_assert_uint_lt(r.vals[i - 1].fid, r.vals[i].fid);
    ck_assert_ptr_null(trl_record_get(&r, 5));
    ck_assert_int_eq(trl_record_get(&r, 2)->i, INT64_MIN);
    /* Replace in place. */
    struct trl_value v = vint(8);
    ck_assert_int_eq(trl_record_set(&r, 2, &v), 0);
    ck_assert_uint_eq(r.nvals, 7);
    ck_assert_int_eq(trl_record_get(&r, 2)->i, 8);
    /* Null removes; removing an absent field is a no-op. */
    struct trl_value nul = {.kind = TRL_V_NULL};
    ck_assert_int_eq(trl_record_set(&r, 2, &nul), 0);
    ck_assert_ptr_null(trl_record_get(&r, 2));
    ck_assert_uint_eq(r.nvals, 6);
    ck_assert_int_eq(trl_record_set(&r, 2, &nul), 0);
    ck_assert_uint_eq(r.nvals, 6);
    /* Many inserts in descending order grow the array and stay sorted. */
    for (uint32_t f = 1000; f > 100; f--) {
        v = vint(f);
        ck_assert_int_eq(trl_record_set(&r, f, &v), 0);
    }
    for (size_t i = 1; i < r.nvals; i++)
        ck_assert_uint_lt(r.vals[i - 1].fid, r.vals[i].fid);
    ck_assert_int_eq(trl_record_get(&r, 555)->i, 555);
    trl_record_free(&r);
    ck_assert_ptr_null(r.vals);
    trl_record_free(&r);
    trl_record_free(NULL);
}
END_TEST

START_TEST(record_round_trip_keeps_every_field)
{
    struct trl_record r, d;
    struct trl_buf b, b2;
    trl_buf_init(&b);
    trl_buf_init(&b2);
    sample_record(&r);
    ck_assert_int_eq(trl_record_encode(&r, &b), 0);
    ck_assert_int_eq(trl_record_decode(b.data, b.len, &d), 0);
    record_eq(&r, &d);
    /* Decoding borrows: values point into the encoded bytes. */
    const struct trl_value *t = trl_record_get(&d, 9);
    ck_assert(t->s >= b.data && t->s + t->n <= b.data + b.len);
    ck_assert(d.name.s >= b.data && d.name.s < b.data + b.len);
    /* Encoding the decoded record gives the same bytes. */
    ck_assert_int_eq(trl_record_encode(&d, &b2), 0);
    ck_assert_uint_eq(b.len, b2.len);
    ck_assert_int_eq(memcmp(b.data, b2.data, b.len), 0);
    trl_record_free(&d);
    trl_record_free(&r);

    /* An empty record. */
    trl_record_init(&r);
    trl_buf_clear(&b);
    ck_assert_int_eq(trl_record_encode(&r, &b), 0);
    ck_assert_int_eq(trl_record_decode(b.data, b.len, &d), 0);
    record_eq(&r, &d);
    ck_assert_uint_eq(d.nvals, 0);
    trl_record_free(&d);
    trl_buf_free(&b);
    trl_buf_free(&b2);
}
END_TEST

START_TEST(record_random_round_trips)
{
    uint64_t seed = 99;
    struct trl_buf b, b2;
    trl_buf_init(&b);
    trl_buf_init(&b2);
    char pool[64][24];
    for (int it = 0; it < 3000; it++) {
        struct trl_record r, d;
        trl_record_init(&r);
        r.version = rng_next(&seed);
        r.created_at = random_int(&seed);
        r.updated_at = random_int(&seed);
        r.hist_seq = (uint32_t)rng_next(&seed);
        for (int i = 0; i < 32; i++)
            r.hist_hash[i] = (unsigned char)rng_next(&seed);
        size_t used = 0;
        struct trl_value *sys[] = {&r.name, &r.state,      &r.owner,
                                   &r.org,  &r.created_by, &r.updated_by};
        for (size_t k = 0; k < 6; k++) {
            size_t n = random_bytes(&seed, pool[used], sizeof(pool[0]));
            *sys[k] = vbytes(pool[used++], n);
        }
        int nf = (int)(rng_next(&seed) % 40);
        for (int i = 0; i < nf; i++) {
            uint32_t fid = (uint32_t)(rng_next(&seed) % 300);
            struct trl_value v;
            if (rng_next(&seed) % 2) {
                v = vint(random_int(&seed));
            } else {
                size_t n = random_bytes(&seed, pool[used], sizeof(pool[0]));
                v = vbytes(pool[used++], n);
            }
            LOOP_ASSERT(trl_record_set(&r, fid, &v) == 0, "trl_record_set");
            if (used == 64) used = 6;
        }
        trl_buf_clear(&b);
        trl_buf_clear(&b2);
        LOOP_ASSERT(trl_record_encode(&r, &b) == 0, "encode");
        LOOP_ASSERT(trl_record_decode(b.data, b.len, &d) == 0, "iteration %d refused", it);
        record_eq(&r, &d);
        LOOP_ASSERT(trl_record_encode(&d, &b2) == 0, "encode again");
        LOOP_ASSERT(lmdb_cmp(b.data, b.len, b2.data, b2.len) == 0, "iteration %d: bytes differ",
                    it);
        trl_record_free(&d);
        trl_record_free(&r);
    }
    trl_buf_free(&b);
    trl_buf_free(&b2);
}
END_TEST

static void expect_corrupt(const void *p, size_t n, const char *what)
{
    struct trl_record r;
    memset(&r, 0xA5, sizeof(r));
    /* Exact-size heap copy so ASan catches a read past the end. */
    unsigned char *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    LOOP_ASSERT(trl_record_decode(copy, n, &r) == TRL_ECORRUPT, "%s: accepted", what);
    LOOP_ASSERT(r.vals == NULL && r.nvals == 0, "%s: record not left empty", what);
    free(copy);
}

START_TEST(record_truncations_and_trailing_bytes_refused)
{
    struct trl_record r;
    struct trl_buf b;
    trl_buf_init(&b);
    sample_record(&r);
    ck_assert_int_eq(trl_record_encode(&r, &b), 0);
    char what[64];
    for (size_t n = 0; n < b.len; n++) {
        snprintf(what, sizeof(what), "prefix of %zu/%zu bytes", n, b.len);
        expect_corrupt(b.data, n, what);
    }
    trl_buf_addc(&b, 0);
    expect_corrupt(b.data, b.len, "one trailing byte");
    trl_record_free(&r);
    trl_buf_free(&b);
}
END_TEST

/* Builds an encoding by hand: header with empty system strings, then the given tail. */
static void hand_record(struct trl_buf *b, uint8_t format, const void *tail, size_t tn)
{
    trl_buf_clear(b);
    trl_buf_addc(b, (char)format);
    trl_buf_add_varint(b, 1); /* version */
    trl_buf_add_varint(b, 0); /* created_at */
    trl_buf_add_varint(b, 0); /* updated_at */
    trl_buf_add_varint(b, 1); /* hist_seq */
    for (int i = 0; i < 32; i++)
        trl_buf_addc(b, 0);
    for (int i = 0; i < 6; i++)
        trl_buf_add_varint(b, 0);
    trl_buf_add(b, tail, tn);
}

START_TEST(record_corrupt_structures_refused)
{
    struct trl_buf b;
    trl_buf_init(&b);
    struct trl_record r;

    hand_record(&b, 1, "\x00", 1);
    ck_assert_int_eq(trl_record_decode(b.data, b.len, &r), 0); /* the valid baseline */
    trl_record_free(&r);
    hand_record(&b, 1, "\x01\x05\x01\x0e", 4); /* fid 5 = int 7 */
    ck_assert_int_eq(trl_record_decode(b.data, b.len, &r), 0);
    ck_assert_int_eq(trl_record_get(&r, 5)->i, 7);
    trl_record_free(&r);

    static const struct {
        const char *tail;
        size_t n;
        const char *what;
    } bad[] = {
        {"\x02\x05\x01\x00\x05\x01\x00", 7, "duplicate field id"},
        {"\x02\x06\x01\x00\x05\x01\x00", 7, "field ids out of order"},
        {"\x01\x05\x00", 3, "null kind"},
        {"\x01\x05\x03\x00", 4, "unknown kind"},
        {"\x01\x05\x02\x05"
         "abc",
         7, "string longer than the input"},
        {"\x01\x05\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13, "huge string length"},
        {"\x05\x05\x01\x00", 4, "more fields than bytes"},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, "huge field count"},
        {"\x01\x80\x80\x80\x80\x10\x01\x00", 8, "field id above u32"},
        {"\x01\x05", 2, "missing kind"},
        {"\x01\x05\x01", 3, "missing int"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hand_record(&b, 1, bad[i].tail, bad[i].n);
        expect_corrupt(b.data, b.len, bad[i].what);
    }
    hand_record(&b, 2, "\x00", 1);
    expect_corrupt(b.data, b.len, "unknown format");
    hand_record(&b, 0, "\x00", 1);
    expect_corrupt(b.data, b.len, "format 0");
    /* hist_seq beyond u32. */
    trl_buf_clear(&b);
    trl_buf_add(&b, "\x01\x01\x00\x00", 4);
    trl_buf_add_varint(&b, (uint64_t)UINT32_MAX + 1);
    for (int i = 0; i < 32; i++)
        trl_buf_addc(&b, 0);
    for (int i = 0; i < 7; i++)
        trl_buf_add_varint(&b, 0);
    expect_corrupt(b.data, b.len, "hist_seq above u32");
    trl_buf_free(&b);
}
END_TEST

START_TEST(record_bit_flips_never_crash)
{
    struct trl_record r;
    struct trl_buf b;
    trl_buf_init(&b);
    sample_record(&r);
    ck_assert_int_eq(trl_record_encode(&r, &b), 0);
    trl_record_free(&r);
    unsigned char *copy = malloc(b.len);
    uint64_t seed = 5;
    int decoded = 0, refused = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(copy, b.data, b.len);
        int flips = 1 + (int)(rng_next(&seed) % 4);
        for (int k = 0; k < flips; k++)
            copy[rng_next(&seed) % b.len] ^= (unsigned char)(1u << (rng_next(&seed) % 8));
        struct trl_record d;
        int rc = trl_record_decode(copy, b.len, &d);
        LOOP_ASSERT(rc == 0 || rc == TRL_ECORRUPT, "rc %d", rc);
        if (rc == 0) {
            decoded++;
            for (size_t i = 1; i < d.nvals; i++)
                LOOP_ASSERT(d.vals[i - 1].fid < d.vals[i].fid, "field ids not increasing");
            for (size_t i = 0; i < d.nvals; i++)
                if (d.vals[i].v.kind == TRL_V_BYTES)
                    LOOP_ASSERT(d.vals[i].v.s >= (const char *)copy &&
                                    d.vals[i].v.s + d.vals[i].v.n <= (const char *)copy + b.len,
                                "value outside the input");
        } else {
            refused++;
            LOOP_ASSERT(d.vals == NULL && d.nvals == 0, "refused record not empty");
        }
        trl_record_free(&d);
    }
    ck_assert_int_gt(decoded, 0);
    ck_assert_int_gt(refused, 0);
    free(copy);
    trl_buf_free(&b);
}
END_TEST

/* Raw member and element texts: numbers keep every digit, nested values come whole. */
struct raw_seen {
    char out[256];
};

static int seen_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct raw_seen *r = ud;
    size_t n = strlen(r->out);
    snprintf(r->out + n, sizeof(r->out) - n, "%.*s=%.*s;", (int)kn, k, (int)vn, v);
    return 0;
}

static int seen_element(void *ud, const char *v, size_t vn)
{
    struct raw_seen *r = ud;
    size_t n = strlen(r->out);
    snprintf(r->out + n, sizeof(r->out) - n, "%.*s;", (int)vn, v);
    return vn == 4 && memcmp(v, "stop", 4) == 0 ? 7 : 0;
}

START_TEST(json_members_and_elements_keep_their_raw_text)
{
    struct raw_seen r = {""};
    const char *o = " { \"id\" : 9007199254740993 , \"a\":[1, {\"b\":\"]\"}], \"s\":\"x\\\"y\"} ";
    ck_assert_int_eq(trl_json_each_member(o, strlen(o), seen_member, &r), 0);
    ck_assert_str_eq(r.out, "\"id\"=9007199254740993;\"a\"=[1, {\"b\":\"]\"}];\"s\"=\"x\\\"y\";");
    r.out[0] = 0;
    const char *a = "[ -1.5e3, \"a,b\", {\"k\":[]}, [], null ]";
    ck_assert_int_eq(trl_json_each_element(a, strlen(a), seen_element, &r), 0);
    ck_assert_str_eq(r.out, "-1.5e3;\"a,b\";{\"k\":[]};[];null;");
    r.out[0] = 0;
    ck_assert_int_eq(trl_json_each_element("[]", 2, seen_element, &r), 0);
    ck_assert_str_eq(r.out, "");
    /* The callback's first non-zero result ends the walk and is returned. */
    ck_assert_int_eq(trl_json_each_element("[1,stop,2]", 10, seen_element, &r), 7);
    ck_assert_str_eq(r.out, "1;stop;");
    /* Text it cannot follow. */
    const char *bad[] = {"", "{}", "[1,", "[1 2]", "[\"x]", "[1,]x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        ck_assert_int_eq(trl_json_each_element(bad[i], strlen(bad[i]), seen_element, &r),
                         TRL_ECORRUPT);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, int_keys_sort_like_ints);
    tcase_add_test(tc, byte_keys_sort_like_bytes_with_embedded_nuls);
    tcase_add_test(tc, byte_key_order_examples);
    tcase_add_test(tc, index_keys_with_record_ids_sort_by_value_then_id);
    tcase_add_test(tc, key_get_value_round_trips);
    tcase_add_test(tc, key_get_value_refuses_corrupt_keys);
    tcase_add_test(tc, key_encodings_are_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("records");
    tcase_add_test(tc, record_set_keeps_fields_sorted);
    tcase_add_test(tc, record_round_trip_keeps_every_field);
    tcase_add_test(tc, record_random_round_trips);
    tcase_add_test(tc, record_truncations_and_trailing_bytes_refused);
    tcase_add_test(tc, record_corrupt_structures_refused);
    tcase_add_test(tc, record_bit_flips_never_crash);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, json_members_and_elements_keep_their_raw_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
