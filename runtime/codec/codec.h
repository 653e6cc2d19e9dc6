/*
 * codec — byte encodings: strict JSON checking, order-preserving index keys, and the binary
 * record format stored in LMDB.
 *
 * JSON: cJSON alone accepts trailing garbage, leading zeros and raw control characters, so every
 * JSON text from outside passes trl_json_check first (RFC 8259 strictly, plus: valid UTF-8, no
 * lone surrogate escapes, no duplicate keys in one object, a nesting limit).
 *
 * Keys: values encode so that memcmp order equals value order (integers big-endian with the sign
 * bit flipped, bytes with 0x00 escaped and a terminator), so LMDB's default comparator sorts
 * index entries by value.
 *
 * Records: struct trl_record is the decoded form. Decoding borrows: the bytes of every value point
 * into the encoded buffer (for LMDB data, valid until the transaction ends); the record owns only
 * its field array. Field values are keyed by the schema's stable field id, so renaming a field
 * keeps its data and a removed field's id is never reused.
 */
#ifndef TRL_CODEC_H
#define TRL_CODEC_H

#include "core/core.h"

/* ---------------------------------------------------------------------------------------------
 * Strict JSON
 */
/* Checks that s[0..n) is exactly one JSON value (RFC 8259) with surrounding whitespace only,
 * valid UTF-8, no escaped lone surrogates, no duplicate object keys, nesting <= max_depth.
 * Returns 0, or TRL_EJSON with d->message giving the line, column and what was wrong
 * (e.g. "line 1, column 7: leading zero in number"). Never reads past s + n. */
int trl_json_check(const char *s, size_t n, int max_depth, struct trl_diag *d);
/* The same check of RFC 8259's grammar alone: duplicate object keys pass (the RFC says names
 * SHOULD be unique, so such text is valid JSON that Trellis refuses as a request, with 422). */
int trl_json_check_grammar(const char *s, size_t n, int max_depth, struct trl_diag *d);

/* Calls fn for each member of the JSON object text s[0..n), in order: its key with the quotes
 * and its value's raw text. Stops at fn's first non-zero result and returns it; TRL_ECORRUPT
 * for text it cannot follow. It checks structure only: text from outside passes
 * trl_json_check first. */
int trl_json_each_member(const char *s, size_t n,
                         int (*fn)(void *ud, const char *k, size_t kn, const char *v, size_t vn),
                         void *ud);

/* The same for each element of the JSON array text s[0..n): its raw text, in order. */
int trl_json_each_element(const char *s, size_t n, int (*fn)(void *ud, const char *v, size_t vn),
                          void *ud);

/* Parses s[0..n), which must be a JSON object, into inputs (one per member, in order): strict
 * check first (trl_json_check with max_depth), then cJSON. Numbers keep their exact text (cJSON
 * alone would turn 12.30 into a double). On success *in (owned, free()) and *tree (owned,
 * trl_json_tree_free) are set; the inputs borrow from tree and from s, so both must outlive them.
 * Errors: TRL_EJSON (not JSON: with line/column), TRL_EVALIDATION (valid JSON that is not a
 * usable object: not an object, a duplicate key, a string holding U+0000; in d->ferrs),
 * TRL_ENOMEM. */
int trl_json_object_inputs(const char *s, size_t n, int max_depth, struct trl_input **in,
                           size_t *nin, void **tree, struct trl_diag *d);
void trl_json_tree_free(void *tree);

/* ---------------------------------------------------------------------------------------------
 * Order-preserving key encoding
 */
/* Appends the order-preserving encoding of v (kind NULL, INT or BYTES); null sorts first.
 * Returns 0 or TRL_ENOMEM. */
int trl_key_add_value(struct trl_buf *b, const struct trl_value *v);
/* Decodes one value at *p (advancing it); bytes are unescaped into arena when they contain
 * escapes, else borrowed. Returns 0, TRL_ECORRUPT or TRL_ENOMEM. */
int trl_key_get_value(const unsigned char **p, const unsigned char *end, struct trl_arena *arena,
                      struct trl_value *out);

/* ---------------------------------------------------------------------------------------------
 * Records
 */
struct trl_fval {
    uint32_t fid;       /* stable field id from the schema */
    struct trl_value v; /* the value (bytes borrowed, see the owner of the record) */
};

struct trl_record {
    uint32_t type_id;            /* type the record belongs to */
    uint64_t id;                 /* record id, unique per type, grows */
    uint64_t version;            /* 1 after create, +1 per change; the ETag */
    int64_t created_at;          /* UTC ms */
    int64_t updated_at;          /* UTC ms */
    struct trl_value name;       /* autoname ("MR-2026-00001") or empty */
    struct trl_value state;      /* workflow state, empty when the type has none */
    struct trl_value owner;      /* username of the owner */
    struct trl_value org;        /* org of the record */
    struct trl_value created_by; /* username */
    struct trl_value updated_by; /* username */
    uint32_t hist_seq;           /* sequence of the newest history event */
    unsigned char hist_hash[32]; /* hash of the newest history event (the chain head) */
    struct trl_fval *vals;       /* owned, sorted by fid, no duplicates */
    size_t nvals;                /* used entries */
    size_t capvals;              /* allocated entries */
};

void trl_record_init(struct trl_record *r);
/* Frees the field array (not the bytes the values borrow). */
void trl_record_free(struct trl_record *r);
/* Value of field fid or NULL. */
const struct trl_value *trl_record_get(const struct trl_record *r, uint32_t fid);
/* Sets (inserts or replaces) field fid; a TRL_V_NULL value removes it. Borrows v's bytes.
 * Returns 0 or TRL_ENOMEM. */
int trl_record_set(struct trl_record *r, uint32_t fid, const struct trl_value *v);

/* Appends the encoding of r to b. Returns 0 or TRL_ENOMEM. */
int trl_record_encode(const struct trl_record *r, struct trl_buf *b);
/* Decodes p[0..n) into r (which it initialises); values borrow p. Returns 0, TRL_ECORRUPT or
 * TRL_ENOMEM; r is left empty on failure. */
int trl_record_decode(const void *p, size_t n, struct trl_record *r);

#endif
