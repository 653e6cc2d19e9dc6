/* keys.c — order-preserving encoding of values inside index keys. */
#include "codec.h"

#include <string.h>

/* Tags sort null < int < bytes; a column holds one kind, so mixing never matters for order. */
enum { TAG_NULL = 0x01, TAG_INT = 0x02, TAG_BYTES = 0x03 };

int trl_key_add_value(struct trl_buf *b, const struct trl_value *v)
{
    switch (v->kind) {
    case TRL_V_NULL:
        return trl_buf_addc(b, TAG_NULL);
    case TRL_V_INT:
        if (trl_buf_addc(b, TAG_INT)) return TRL_ENOMEM;
        return trl_buf_add_u64be(b, (uint64_t)v->i ^ 0x8000000000000000ull);
    case TRL_V_BYTES: {
        /* 0x00 is escaped as 0x00 0xFF; the value ends with 0x00 0x01, so a prefix sorts first. */
        if (trl_buf_reserve(b, v->n + 3)) return TRL_ENOMEM;
        if (trl_buf_addc(b, TAG_BYTES)) return TRL_ENOMEM;
        size_t start = 0;
        for (size_t i = 0; i < v->n; i++) {
            if (v->s[i] == 0) {
                if (trl_buf_add(b, v->s + start, i - start + 1)) return TRL_ENOMEM;
                if (trl_buf_addc(b, (char)0xFF)) return TRL_ENOMEM;
                start = i + 1;
            }
        }
        if (trl_buf_add(b, v->s + start, v->n - start)) return TRL_ENOMEM;
        return trl_buf_add(b, "\x00\x01", 2);
    }
    }
    return TRL_EINVAL;
}

int trl_key_get_value(const unsigned char **pp, const unsigned char *end, struct trl_arena *arena,
                      struct trl_value *out)
{
    const unsigned char *p = *pp;
    if (p >= end) return TRL_ECORRUPT;
    memset(out, 0, sizeof(*out));
    switch (*p++) {
    case TAG_NULL:
        out->kind = TRL_V_NULL;
        break;
    case TAG_INT:
        if (end - p < 8) return TRL_ECORRUPT;
        out->kind = TRL_V_INT;
        out->i = (int64_t)(trl_get_u64be(p) ^ 0x8000000000000000ull);
        p += 8;
        break;
    case TAG_BYTES: {
        const unsigned char *start = p;
        size_t escapes = 0;
        for (;;) {
            if (end - p < 2) return TRL_ECORRUPT;
            if (p[0] == 0 && p[1] == 1) break;
            if (p[0] == 0 && p[1] == 0xFF)
                escapes++, p += 2;
            else if (p[0] == 0)
                return TRL_ECORRUPT;
            else
                p++;
        }
        out->kind = TRL_V_BYTES;
        size_t raw = (size_t)(p - start);
        if (!escapes) {
            out->s = (const char *)start;
            out->n = raw;
        } else {
            char *d = trl_arena_alloc(arena, raw - escapes + 1);
            if (!d) return TRL_ENOMEM;
            size_t o = 0;
            for (const unsigned char *q = start; q < p; q++) {
                d[o++] = (char)*q;
                if (*q == 0) q++;
            }
            out->s = d;
            out->n = o;
        }
        p += 2;
        break;
    }
    default:
        return TRL_ECORRUPT;
    }
    *pp = p;
    return 0;
}
