/*
 * schema — object types: fields, rules, indexes, autonaming and schema evolution.
 *
 * A type is defined by a JSON document (a file in an app's types/ folder or PUT
 * /api/v1/meta/types/{name}). Definitions are stored in the `meta` database together with the
 * store's private bookkeeping (numeric type id, stable field ids, retired field ids), and compiled
 * into an immutable catalog: struct trl_catalog, shared by every thread through reference counting.
 * A change of any definition builds a new catalog; requests that hold the old one keep using it
 * until they end.
 *
 * Field ids are stable: a renamed field ("renamed_from") keeps its id and so its data; a removed
 * field's id is retired and never reused, so its data is no longer served; an added field gets a
 * fresh id and existing records read it as its default.
 *
 * Indexes: index id = type id << 16 | column id. Columns with an index: every field marked
 * indexed or unique, every enum, ref and user field, and the system columns state, owner, org,
 * updated_at. Keys in TRL_DB_IDX: u32be index id, encoded value, u64be record id -> empty.
 * Unique fields additionally have u32be (index id | 0x8000), encoded value -> u64be record id.
 */
#ifndef TRL_SCHEMA_H
#define TRL_SCHEMA_H

#include "codec/codec.h"
#include "core/core.h"
#include "store/store.h"

/* Reserved column ids of the system columns (field ids are below TRL_COL_SYSTEM). */
enum {
    TRL_COL_SYSTEM = 0xFF00,
    TRL_COL_ID = 0xFF00,
    TRL_COL_STATE = 0xFF01,
    TRL_COL_OWNER = 0xFF02,
    TRL_COL_ORG = 0xFF03,
    TRL_COL_UPDATED_AT = 0xFF04,
    TRL_COL_CREATED_AT = 0xFF05,
    TRL_COL_CREATED_BY = 0xFF06,
    TRL_COL_UPDATED_BY = 0xFF07,
    TRL_COL_NAME = 0xFF08,
    TRL_COL_VERSION = 0xFF09,
};

struct trl_labels {
    char *en; /* English text (owned), never NULL after compile ("" when absent) */
    char *zh; /* Simplified Chinese text (owned), never NULL ("" when absent) */
};

struct trl_option {
    char *value;              /* stored value (owned) */
    struct trl_labels labels; /* display labels */
};

struct trl_field {
    uint32_t id;                /* stable field id (< TRL_COL_SYSTEM) */
    char *name;                 /* field name (owned) */
    enum trl_ftype type;        /* field type */
    struct trl_labels labels;   /* display labels */
    struct trl_labels help;     /* help text */
    bool required;              /* must have a value after every write */
    bool unique;                /* no two records share a value */
    bool indexed;               /* has an index (also true for enum, ref, user, unique) */
    bool read_only;             /* not writable through the records API */
    bool computed;              /* evaluated on read by the app's hook computed.<name>; never
                                   stored (read_only, not indexed, not filterable) */
    int scale;                  /* decimal places (decimal) */
    bool has_min, has_max;      /* bounds present */
    int64_t min, max;           /* int, decimal (scaled), date (days), datetime (ms) */
    int64_t min_length;         /* text: minimum characters (0: none) */
    int64_t max_length;         /* text: maximum characters (0: none) */
    char *pattern;              /* PCRE2 source (owned) or NULL */
    void *re;                   /* compiled pattern (pcre2_code *), owned */
    bool has_default;           /* a default exists */
    struct trl_value dflt;      /* default value; bytes owned by the field */
    struct trl_option *options; /* enum options (owned) */
    const char **option_values; /* option values array for the expression resolver (owned) */
    size_t noptions;            /* number of options */
    char *ref_type;             /* ref: name of the referenced type (owned) */
    int64_t max_size;           /* attachment: maximum bytes (0: server default) */
    char **media_types;         /* attachment: allowed media types (owned), NULL = any */
    size_t nmedia_types;        /* entries in media_types */
};

/* Row scopes of a permission. They are sets: a role's scope and the union over the caller's
 * roles are bit masks (OWN | ASSIGNED: records they own or are assigned). */
enum trl_scope {
    TRL_SCOPE_NONE = 0,
    TRL_SCOPE_OWN = 1,      /* created by the caller (owner) */
    TRL_SCOPE_ORG = 2,      /* the record's org is the caller's */
    TRL_SCOPE_ASSIGNED = 4, /* assignee_field names the caller, or assignee_group_field a group
                               the caller is in */
    TRL_SCOPE_ALL = 8,      /* every record */
};
/* Field modes of a permission. */
enum trl_fmode { TRL_FIELD_HIDDEN = 0, TRL_FIELD_READ, TRL_FIELD_WRITE };

/* What one role may do with a type ("permissions": {"<role>": {...}} in the definition). */
struct trl_perm {
    char *role;            /* role name (owned) */
    enum trl_scope create; /* may create (ALL or ORG or OWN: any; NONE: no) */
    enum trl_scope read;   /* rows it may read */
    enum trl_scope update; /* rows it may change */
    enum trl_scope del;    /* rows it may delete */
    unsigned char *fields; /* enum trl_fmode per field index (owned) */
};

struct trl_type {
    uint32_t id;                /* numeric type id, stable */
    char *name;                 /* type name (owned) */
    char *app;                  /* app that installed it (owned), "" when defined by API */
    struct trl_labels labels;   /* display labels */
    char *title_field;          /* name of the title field (owned) or NULL */
    char *assignee_field;       /* text or user field naming the assignee (scope "assigned"), or
                                   NULL (owned) */
    char *assignee_group_field; /* text field naming the assigned group (scope "assigned" for
                                   its members), or NULL (owned) */
    char *autoname;             /* autonaming pattern (owned) or NULL */
    char *initial_state;        /* state of new records (owned), "" when the type has no workflow */
    struct trl_field *fields;   /* fields in definition order (owned) */
    size_t nfields;             /* number of fields */
    char *definition;           /* canonical definition JSON (owned) */
    struct trl_perm *perms;     /* per-role permissions (owned); none: administrators only */
    size_t nperms;              /* entries in perms */
};

struct trl_catalog {
    uint64_t version;        /* increases with every definition change */
    struct trl_type **types; /* sorted by name (owned) */
    size_t ntypes;           /* number of types */
    int refs;                /* reference count (atomic) */
};

/* Reference counting: trl_catalog_ref returns c; unref frees at zero. Both accept NULL. */
struct trl_catalog *trl_catalog_ref(struct trl_catalog *c);
void trl_catalog_unref(struct trl_catalog *c);

/* Builds a catalog from every type stored in meta (read txn). Returns 0 and an owned catalog
 * (refs 1), or TRL_ECORRUPT / TRL_ENOMEM with d naming the definition that failed. */
int trl_catalog_load(struct trl_txn *t, struct trl_catalog **out, struct trl_diag *d);

const struct trl_type *trl_catalog_type(const struct trl_catalog *c, const char *name);
const struct trl_type *trl_catalog_type_by_id(const struct trl_catalog *c, uint32_t id);
const struct trl_field *trl_type_field(const struct trl_type *t, const char *name, size_t n);
const struct trl_field *trl_type_field_by_id(const struct trl_type *t, uint32_t id);

/* Index id of a column of type t. */
static inline uint32_t trl_index_id(const struct trl_type *t, uint32_t col)
{
    return (t->id << 16) | (col & 0xFFFF);
}
#define TRL_UNIQUE_BIT 0x8000u

/* Keys of TRL_DB_IDX and TRL_DB_CNT (layouts in record/record.h); each clears b first and
 * returns 0 or TRL_ENOMEM. uniq_key adds TRL_UNIQUE_BIT itself. */
int trl_schema_idx_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v, uint64_t rid);
int trl_schema_uniq_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v);
int trl_schema_cnt_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v);
/* The per-org counter key of value v of index iid in org: ('o', iid, org, v). */
int trl_schema_org_cnt_key(struct trl_buf *b, uint32_t iid, const struct trl_value *org,
                           const struct trl_value *v);
int trl_schema_cnt_total_key(struct trl_buf *b, uint32_t type_id);
/* The per-org record count key of a type: ('p', type, org). */
int trl_schema_org_total_key(struct trl_buf *b, uint32_t type_id, const struct trl_value *org);
/* Deferred index entries. A new record's plain (not unique) index entries are written in
 * batches, not by its own create: ('q', type) in TRL_DB_CNT holds the first record id whose
 * plain entries are not written yet ("pending from"); every record of the type with an id at or
 * past it has none, every record before it has all of them. Absent: nothing is pending. Unique
 * entries and counters are always current. record/ writes the batches and reads the pending
 * records beside the index; schema/ skips them when it builds an index. */
int trl_schema_pending_key(struct trl_buf *b, uint32_t type_id);
/* The type's pending-from id, 0 when nothing is pending: 0, TRL_ECORRUPT, TRL_EIO. */
int trl_schema_pending_get(struct trl_txn *t, uint32_t type_id, uint64_t *from);
/* The ids of the types with records pending, in id order, at most cap of them (*n). */
int trl_schema_pending_types(struct trl_txn *t, uint32_t *ids, size_t cap, size_t *n);

/* Reads a counter (0 when absent): 0, TRL_ECORRUPT, TRL_EIO. */
int trl_schema_counter_get(struct trl_txn *t, const struct trl_buf *key, uint64_t *n);
/* Adds delta to a counter; one that reaches 0 is deleted. 0 or a store error. */
int trl_schema_counter_add(struct trl_txn *t, const struct trl_buf *key, int64_t delta);

/* Validates and stores a type definition (JSON text def[0..n)) named name, created or changed,
 * inside write txn t: assigns ids, keeps renamed fields' ids, retires removed ones, builds added
 * indexes from existing records, drops removed indexes, and refuses incompatible changes (a field's
 * type changed, a unique rule over existing duplicates, a name clash). app names the installing
 * app; NULL keeps the type's current app ("" for a new type: the meta API). Returns 0,
 * TRL_EVALIDATION (d->ferrs name the definition path, e.g. "fields[2].max_length"), TRL_ECONFLICT
 * (incompatible with stored data), TRL_ENOMEM, TRL_EIO. *changed is set false when the stored
 * definition was identical. */
int trl_schema_put_type(struct trl_txn *t, const char *name, const char *def, size_t n,
                        const char *app, bool *changed, struct trl_diag *d);
/* Checks a type definition (JSON text def[0..n)) named name without storing anything: the same
 * validation as trl_schema_put_type minus the checks against stored data. 0, TRL_EVALIDATION
 * (d->ferrs with definition paths), TRL_EJSON, TRL_ENOMEM. */
int trl_schema_check_type(const char *name, const char *def, size_t n, struct trl_diag *d);
/* Deletes a type definition; refused with TRL_ECONFLICT while records of it exist. */
int trl_schema_delete_type(struct trl_txn *t, const char *name, struct trl_diag *d);

/* Generic definitions of other kinds (apps, workflows, forms, reports...) stored verbatim
 * (canonical JSON) under (kind, name). get returns owned text (free()). */
int trl_meta_put(struct trl_txn *t, const char *kind, const char *name, const char *json, size_t n);
int trl_meta_get(struct trl_txn *t, const char *kind, const char *name, char **out);
int trl_meta_del(struct trl_txn *t, const char *kind, const char *name);
/* Calls fn for each (name, json) of a kind in name order; stops on a non-zero return. */
int trl_meta_each(struct trl_txn *t, const char *kind,
                  int (*fn)(void *ud, const char *name, const char *json, size_t n), void *ud);

/* Deletes every definition of kind whose name keep(ud, name) refuses, calling drop (may be NULL)
 * on each first (its error stops the pruning); *n receives how many went. */
int trl_meta_prune(struct trl_txn *t, const char *kind, bool (*keep)(void *ud, const char *name),
                   int (*drop)(void *ud, struct trl_txn *t, const char *name), void *ud, size_t *n);

/* Canonical pretty JSON of a definition: 2-space indent, known keys first in a fixed order,
 * others sorted, "\n" at the end. Returns owned text (free()) or NULL with d set (invalid JSON). */
char *trl_schema_canonical_json(const char *json, size_t n, struct trl_diag *d);

/* Expands the autonaming pattern of t for a record created at ms with sequence value seq into
 * out (size outn). The sequence key (pattern with dates expanded, so yearly patterns restart) is
 * written to key (size keyn). */
void trl_schema_autoname(const struct trl_type *t, int64_t ms, uint64_t seq, char *out,
                         size_t outn);
void trl_schema_autoname_key(const struct trl_type *t, int64_t ms, char *key, size_t keyn);

/* Converts in to field f's type into *out; bytes are borrowed from in or copied into arena.
 * On failure adds one field error to d (codes: type, scale, range, invalid_date,
 * invalid_datetime, enum, attachment) and returns TRL_EVALIDATION; TRL_ENOMEM otherwise. */
int trl_field_convert(const struct trl_field *f, const struct trl_input *in,
                      struct trl_arena *arena, struct trl_value *out, struct trl_diag *d);

/* Checks value v (already converted to the field's type) against the field's rules, appending
 * failures to d (codes: max_length, min_length, min, max, pattern, enum). Returns the number of
 * failures added (>= 0) or TRL_ENOMEM. */
int trl_field_check(const struct trl_field *f, const struct trl_value *v, struct trl_diag *d);

/* Formats a scalar int value of field f for messages and JSON ("12.30", "2026-01-02"). */
void trl_field_format_int(const struct trl_field *f, int64_t v, char *out, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Checking definitions: types here, and the definitions of the layers above (workflows, ...)
 * with the same conventions: every problem is a field error (code "schema") named by its path in
 * the definition, and all of them are reported at once.
 */
struct cJSON;
struct trl_defcheck {
    struct trl_diag *d; /* where errors go */
    int nerr;           /* errors added */
    int rc;             /* first hard error (TRL_ENOMEM) */
};
/* Adds the error at path (printf format) to c. */
void trl_def_err(struct trl_defcheck *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A definition name: [a-z_][a-z0-9_]*, at most 63 bytes. */
bool trl_def_ident(const char *s);
/* The array member j at path must hold min..max elements: returns a zeroed allocation of that
 * many elements of size elem (owned by the caller) and their count in *n, or NULL (an error at
 * path naming `what`, or TRL_ENOMEM in c->rc). */
void *trl_def_array(struct trl_defcheck *c, const struct cJSON *j, const char *path, size_t min,
                    size_t max, size_t elem, const char *what, size_t *n);
/* Refuses every member of object j not among keys[0..nkeys), at path.member. */
void trl_def_keys(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                  const char *const *keys, size_t nkeys);
/* Optional labels {"en": ..., "zh-CN": ...} at path into owned strings ("" when absent), as the
 * definitions above types (workflows, approvals, SLA policies) write them. */
void trl_def_labels(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                    struct trl_labels *out);
/* Frees both strings of l (which stays reusable). */
void trl_labels_free(struct trl_labels *l);

#endif
