/* record.c — create, patch, delete and get of records; indexes and counters; JSON output. */
#include "record_int.h"

#include <cmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record being changed (or read by an event): the working copy and its context. */
struct trl_rec_move {
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    struct trl_record *r;         /* the working copy */
    const struct trl_record *old; /* the stored version (NULL on create) */
    struct trl_arena *arena;
    char state[128]; /* current state, NUL-terminated */
    bool updatable;
    struct trl_buf *notes; /* JSON strings for the history event this change writes, or NULL */
};

void trl_rec_key(unsigned char k[12], uint32_t type_id, uint64_t id)
{
    trl_put_u32be(k, type_id);
    trl_put_u64be(k + 4, id);
}

int trl_rec_load(struct trl_txn *t, const struct trl_type *ty, uint64_t id, struct trl_arena *arena,
                 struct trl_record *r)
{
    unsigned char k[12];
    struct trl_slice v;
    trl_rec_key(k, ty->id, id);
    int rc = trl_txn_get(t, TRL_DB_REC, k, sizeof(k), &v);
    if (rc) return rc;
    if (arena) {
        void *copy = trl_arena_alloc(arena, v.n ? v.n : 1);
        if (!copy) return TRL_ENOMEM;
        memcpy(copy, v.p, v.n);
        v.p = copy;
    }
    rc = trl_record_decode(v.p, v.n, r);
    if (rc) return rc;
    r->type_id = ty->id;
    r->id = id;
    return 0;
}

void trl_rec_column(const struct trl_type *ty, const struct trl_record *r, uint32_t col,
                    struct trl_value *out)
{
    memset(out, 0, sizeof(*out));
    switch (col) {
    case TRL_COL_ID:
        out->kind = TRL_V_INT, out->i = (int64_t)r->id;
        return;
    case TRL_COL_VERSION:
        out->kind = TRL_V_INT, out->i = (int64_t)r->version;
        return;
    case TRL_COL_CREATED_AT:
        out->kind = TRL_V_INT, out->i = r->created_at;
        return;
    case TRL_COL_UPDATED_AT:
        out->kind = TRL_V_INT, out->i = r->updated_at;
        return;
    case TRL_COL_STATE:
        *out = r->state;
        break;
    case TRL_COL_OWNER:
        *out = r->owner;
        break;
    case TRL_COL_ORG:
        *out = r->org;
        break;
    case TRL_COL_CREATED_BY:
        *out = r->created_by;
        break;
    case TRL_COL_UPDATED_BY:
        *out = r->updated_by;
        break;
    case TRL_COL_NAME:
        *out = r->name;
        break;
    default: {
        const struct trl_value *v = trl_record_get(r, col);
        if (v) {
            *out = *v;
        } else {
            const struct trl_field *f = trl_type_field_by_id(ty, col);
            if (f && f->has_default) *out = f->dflt;
        }
        return;
    }
    }
    /* System text columns: empty means absent. */
    if (out->kind == TRL_V_BYTES && out->n == 0) memset(out, 0, sizeof(*out));
}

void trl_rec_value(const struct trl_type *ty, const struct trl_record *r, int col,
                   struct trl_value *out)
{
    trl_rec_column(ty, r, (uint32_t)col, out);
}

void trl_rec_access(const struct trl_type *ty, const struct trl_principal *who,
                    struct trl_access *a, unsigned char *fields)
{
    memset(a, 0, sizeof(*a));
    memset(fields, who && who->admin ? TRL_FIELD_WRITE : TRL_FIELD_HIDDEN, ty->nfields);
    a->fields = fields;
    if (!who || who->admin) {
        a->create = a->read = a->update = a->del = TRL_SCOPE_ALL;
        return;
    }
    for (size_t i = 0; i < ty->nperms; i++) {
        const struct trl_perm *p = &ty->perms[i];
        bool has = false;
        for (size_t k = 0; k < who->nroles && !has; k++)
            has = strcmp(who->roles[k], p->role) == 0;
        if (!has) continue;
        a->create |= p->create;
        a->read |= p->read;
        a->update |= p->update;
        a->del |= p->del;
        for (size_t f = 0; f < ty->nfields; f++)
            if (p->fields[f] > fields[f]) fields[f] = p->fields[f];
    }
}

static bool value_is(const struct trl_value *v, const char *mine)
{
    size_t n = strlen(mine);
    return n && v->kind == TRL_V_BYTES && v->n == n && memcmp(v->s, mine, n) == 0;
}

bool trl_rec_in_scope(const struct trl_rec_ctx *cx, const struct trl_type *ty, enum trl_scope scope,
                      const struct trl_record *r)
{
    if (!cx->acc || (scope & TRL_SCOPE_ALL)) return true;
    if (scope == TRL_SCOPE_NONE || !cx->who) return false;
    if ((scope & TRL_SCOPE_OWN) && value_is(&r->owner, cx->who->user)) return true;
    if ((scope & TRL_SCOPE_ORG) && value_is(&r->org, cx->who->org)) return true;
    if ((scope & TRL_SCOPE_ASSIGNED) && ty && ty->assignee_field) {
        const struct trl_field *f =
            trl_type_field(ty, ty->assignee_field, strlen(ty->assignee_field));
        struct trl_value v;
        if (f) {
            trl_rec_column(ty, r, f->id, &v);
            if (value_is(&v, cx->who->user)) return true;
        }
    }
    if ((scope & TRL_SCOPE_ASSIGNED) && ty && ty->assignee_group_field && cx->who->ngroups) {
        /* Assigned to a team the caller is in (a queue: "logistics"). */
        const struct trl_field *f =
            trl_type_field(ty, ty->assignee_group_field, strlen(ty->assignee_group_field));
        struct trl_value v;
        if (f) {
            trl_rec_column(ty, r, f->id, &v);
            for (size_t i = 0; i < cx->who->ngroups && i < 16; i++)
                if (value_is(&v, cx->who->groups[i])) return true;
        }
    }
    return false;
}

enum trl_fmode trl_rec_field_mode(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                                  const struct trl_field *f)
{
    if (!cx || !cx->acc) return TRL_FIELD_WRITE;
    return (enum trl_fmode)cx->acc->fields[f - ty->fields];
}

struct syscol {
    const char *name;
    uint32_t col;
    enum trl_ftype type;
    bool indexed;
};

const char *trl_rec_sys_label(const char *name, bool zh)
{
    static const struct {
        const char *n, *en, *zh;
    } l[] = {{"id", "ID", "ID"},
             {"name", "Number", "编号"},
             {"state", "State", "状态"},
             {"owner", "Owner", "负责人"},
             {"org", "Organisation", "组织"},
             {"created_at", "Created", "创建时间"},
             {"updated_at", "Updated", "更新时间"},
             {"created_by", "Created by", "创建人"},
             {"updated_by", "Updated by", "更新人"}};
    for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++)
        if (strcmp(l[i].n, name) == 0) return zh ? l[i].zh : l[i].en;
    return NULL;
}

static const struct syscol syscols[] = {
    {"id", TRL_COL_ID, TRL_FT_INT, true},
    {"state", TRL_COL_STATE, TRL_FT_TEXT, true},
    {"owner", TRL_COL_OWNER, TRL_FT_USER, true},
    {"org", TRL_COL_ORG, TRL_FT_TEXT, true},
    {"updated_at", TRL_COL_UPDATED_AT, TRL_FT_DATETIME, true},
    {"created_at", TRL_COL_CREATED_AT, TRL_FT_DATETIME, true},
    {"created_by", TRL_COL_CREATED_BY, TRL_FT_USER, false},
    {"updated_by", TRL_COL_UPDATED_BY, TRL_FT_USER, false},
    {"name", TRL_COL_NAME, TRL_FT_TEXT, false},
    {"version", TRL_COL_VERSION, TRL_FT_INT, false},
};

int trl_rec_resolve(const struct trl_type *ty, const char *name, size_t n,
                    struct trl_expr_field *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(syscols) / sizeof(syscols[0]); i++) {
        if (strlen(syscols[i].name) == n && memcmp(syscols[i].name, name, n) == 0) {
            out->id = (int)syscols[i].col;
            out->type = syscols[i].type;
            out->indexed = syscols[i].indexed;
            return 0;
        }
    }
    const struct trl_field *f = trl_type_field(ty, name, n);
    if (!f || f->computed) return TRL_ENOTFOUND; /* computed values are not stored */
    out->id = (int)f->id;
    out->type = f->type;
    out->scale = f->scale;
    out->indexed = f->indexed;
    out->options = f->option_values;
    out->noptions = f->noptions;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Keys, indexes and counters
 */
bool trl_rec_column_counted(const struct trl_type *ty, uint32_t col)
{
    if (col == TRL_COL_STATE) return true;
    const struct trl_field *f = trl_type_field_by_id(ty, col);
    return f && f->indexed && (f->type == TRL_FT_ENUM || f->type == TRL_FT_REF);
}

size_t trl_rec_index_cap(const struct trl_type *ty)
{
    return 4 + ty->nfields;
}

size_t trl_rec_index_entries(const struct trl_type *ty, const struct trl_record *r,
                             struct trl_idx_entry *out, size_t cap)
{
    size_t n = 0;
    static const uint32_t sys[] = {TRL_COL_STATE, TRL_COL_OWNER, TRL_COL_ORG, TRL_COL_UPDATED_AT};
    for (size_t i = 0; i < 4 && n < cap; i++) {
        out[n].col = sys[i];
        out[n].unique = false;
        out[n].counted = trl_rec_column_counted(ty, sys[i]);
        trl_rec_column(ty, r, sys[i], &out[n].v);
        n++;
    }
    for (size_t i = 0; i < ty->nfields && n < cap; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (!f->indexed) continue;
        out[n].col = f->id;
        out[n].unique = f->unique;
        out[n].counted = trl_rec_column_counted(ty, f->id);
        trl_rec_column(ty, r, f->id, &out[n].v);
        n++;
    }
    return n;
}

static bool value_eq(const struct trl_value *a, const struct trl_value *b)
{
    if (a->kind != b->kind) return false;
    if (a->kind == TRL_V_INT) return a->i == b->i;
    if (a->kind == TRL_V_BYTES) return a->n == b->n && (a->n == 0 || memcmp(a->s, b->s, a->n) == 0);
    return true;
}

/* Per-org counters, so that a partner's counts are O(1) too: ('o', iid, org, value) for each
 * counted column (state, enums) and ('p', type, org) for the records of an org. r is the record
 * written (or removed when !add), old its previous version (NULL on create and delete). */
static int org_counters(struct trl_txn *t, const struct trl_type *ty, const struct trl_record *r,
                        const struct trl_record *old, bool add, const struct trl_idx_entry *e,
                        size_t n, const struct trl_idx_entry *oe, size_t on, struct trl_buf *k)
{
    const struct trl_value *org = &r->org, *oorg = old ? &old->org : NULL;
    bool has = org->kind == TRL_V_BYTES && org->n;
    bool ohas = oorg && oorg->kind == TRL_V_BYTES && oorg->n;
    bool org_changed = old && (has != ohas || (has && !value_eq(org, oorg)));
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!e[i].counted) continue;
        uint32_t iid = trl_index_id(ty, e[i].col);
        if (old) {
            bool same = i < on && oe[i].col == e[i].col && value_eq(&oe[i].v, &e[i].v);
            if (same && !org_changed) continue;
            if (ohas && i < on) {
                rc = trl_schema_org_cnt_key(k, iid, oorg, &oe[i].v);
                if (!rc) rc = trl_schema_counter_add(t, k, -1);
            }
            if (!rc && has) {
                rc = trl_schema_org_cnt_key(k, iid, org, &e[i].v);
                if (!rc) rc = trl_schema_counter_add(t, k, 1);
            }
        } else if (has) {
            rc = trl_schema_org_cnt_key(k, iid, org, &e[i].v);
            if (!rc) rc = trl_schema_counter_add(t, k, add ? 1 : -1);
        }
    }
    if (!rc && !old && has) {
        rc = trl_schema_org_total_key(k, ty->id, org);
        if (!rc) rc = trl_schema_counter_add(t, k, add ? 1 : -1);
    } else if (!rc && org_changed) {
        if (ohas && !(rc = trl_schema_org_total_key(k, ty->id, oorg)))
            rc = trl_schema_counter_add(t, k, -1);
        if (!rc && has && !(rc = trl_schema_org_total_key(k, ty->id, org)))
            rc = trl_schema_counter_add(t, k, 1);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Deferred plain index entries (schema.h, trl_schema_pending_key). Rewriting the tail page of
 * each (index, value) range for every commit cost half the pages a create commit wrote; records
 * now get their plain entries in batches of INDEX_BATCH, which fill those pages many entries at a
 * time. Until then listings read the pending records themselves (query.c).
 */
#define INDEX_BATCH 32

int trl_rec_each_from(struct trl_txn *t, const struct trl_type *ty, uint64_t from,
                      int (*fn)(void *ud, const struct trl_record *r, struct trl_slice raw),
                      void *ud)
{
    struct trl_cursor *c;
    int rc = trl_cursor_open(t, TRL_DB_REC, &c);
    if (rc) return rc;
    unsigned char lo[12];
    trl_rec_key(lo, ty->id, from);
    int mv;
    for (mv = trl_cursor_seek(c, lo, 12); mv == 0; mv = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n != 12 || memcmp(key.p, lo, 4) != 0) break;
        struct trl_record r;
        if ((rc = trl_record_decode(v.p, v.n, &r))) break;
        r.type_id = ty->id;
        r.id = trl_get_u64be((const unsigned char *)key.p + 4);
        rc = fn(ud, &r, v);
        trl_record_free(&r);
        /* Not a step more after an error: a failed write (a full map) leaves the txn unusable,
         * and the step would fail (and log) with MDB_BAD_TXN. */
        if (rc) break;
    }
    trl_cursor_close(c);
    if (!rc && mv && mv != TRL_ENOTFOUND) rc = mv;
    return rc;
}

struct flusher {
    struct trl_txn *t;
    const struct trl_type *ty;
    struct trl_idx_entry *e;
    size_t cap;
    struct trl_buf k;
    uint64_t *written;
};

static int flush_one(void *ud, const struct trl_record *r, struct trl_slice raw)
{
    (void)raw;
    struct flusher *f = ud;
    size_t n = trl_rec_index_entries(f->ty, r, f->e, f->cap);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = trl_schema_idx_key(&f->k, trl_index_id(f->ty, f->e[i].col), &f->e[i].v, r->id);
        if (!rc) rc = trl_txn_put(f->t, TRL_DB_IDX, f->k.data, f->k.len, "", 0, 0);
    }
    (*f->written)++;
    return rc;
}

/* Writes the plain index entries of every pending record of ty and clears its pending mark.
 * cat_version is the schema version ty was read at: when the store's differs (a definition
 * changed since), nothing is written now, so entries always follow the schema of the txn. */
static int index_flush(struct trl_txn *t, const struct trl_type *ty, uint64_t cat_version,
                       uint64_t *written)
{
    uint64_t from = 0, ver = 0;
    int rc = trl_schema_pending_get(t, ty->id, &from);
    if (rc || !from) return rc;
    if ((rc = trl_txn_seq_get(t, "schema_version", &ver))) return rc;
    if (ver != cat_version) return 0;
    struct flusher f = {.t = t, .ty = ty, .cap = trl_rec_index_cap(ty), .written = written};
    trl_buf_init(&f.k);
    f.e = malloc(f.cap * sizeof(*f.e));
    rc = f.e ? trl_rec_each_from(t, ty, from, flush_one, &f) : TRL_ENOMEM;
    if (!rc && !(rc = trl_schema_pending_key(&f.k, ty->id))) {
        rc = trl_txn_del(t, TRL_DB_CNT, f.k.data, f.k.len);
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_buf_free(&f.k);
    free(f.e);
    return rc;
}

int trl_rec_index_flush(struct trl_txn *t, const struct trl_catalog *cat, uint64_t *written)
{
    /* The types first: flushing deletes the keys a walk would step on (past 64 pending types,
     * the rest wait for the next call). */
    uint32_t ids[64];
    size_t n;
    *written = 0;
    int rc = trl_schema_pending_types(t, ids, 64, &n);
    for (size_t i = 0; i < n && !rc; i++) {
        const struct trl_type *ty = trl_catalog_type_by_id(cat, ids[i]);
        if (ty) rc = index_flush(t, ty, cat->version, written);
    }
    return rc;
}

int trl_rec_index_pending(struct trl_txn *t, bool *any)
{
    uint32_t id;
    size_t n;
    int rc = trl_schema_pending_types(t, &id, 1, &n);
    *any = n > 0;
    return rc;
}

/* Adds (add=true) or removes r's index entries and counters; with old given, only the entries
 * whose value differs. A new record's plain entries wait for its batch, and so do the changes of
 * a record still waiting; unique entries and counters are written at once. */
static int index_apply(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                       const struct trl_record *r, const struct trl_record *old, bool add,
                       uint64_t *batch_from)
{
    struct trl_diag *d = cx->d;
    uint64_t pending = 0;
    int rc = trl_schema_pending_get(t, ty->id, &pending);
    if (rc) return rc;
    bool create = add && !old;
    bool defer = create || (pending && r->id >= pending);
    size_t cap = trl_rec_index_cap(ty);
    struct trl_idx_entry *e = malloc(2 * cap * sizeof(*e));
    if (!e) return TRL_ENOMEM;
    struct trl_idx_entry *oe = e + cap;
    size_t n = trl_rec_index_entries(ty, r, e, cap);
    size_t on = old ? trl_rec_index_entries(ty, old, oe, cap) : 0;
    struct trl_buf k;
    trl_buf_init(&k);
    unsigned char idb[8];
    trl_put_u64be(idb, r->id);
    if (create && !pending) {
        /* Ids only grow: this record is the first of a new batch. */
        unsigned char pv[8];
        trl_put_u64be(pv, r->id);
        pending = r->id;
        rc = trl_schema_pending_key(&k, ty->id);
        if (!rc) rc = trl_txn_put(t, TRL_DB_CNT, k.data, k.len, pv, 8, 0);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t iid = trl_index_id(ty, e[i].col);
        if (old) {
            /* Same column list in the same order (same schema snapshot). */
            if (i < on && oe[i].col == e[i].col && value_eq(&oe[i].v, &e[i].v)) continue;
            if (i < on) {
                if (!defer && !(rc = trl_schema_idx_key(&k, iid, &oe[i].v, old->id)))
                    rc = trl_txn_del(t, TRL_DB_IDX, k.data, k.len);
                if (rc == TRL_ENOTFOUND) rc = 0;
                if (!rc && oe[i].unique && oe[i].v.kind != TRL_V_NULL) {
                    rc = trl_schema_uniq_key(&k, iid, &oe[i].v);
                    if (!rc) rc = trl_txn_del(t, TRL_DB_IDX, k.data, k.len);
                    if (rc == TRL_ENOTFOUND) rc = 0;
                }
                if (!rc && oe[i].counted) {
                    rc = trl_schema_cnt_key(&k, iid, &oe[i].v);
                    if (!rc) rc = trl_schema_counter_add(t, &k, -1);
                }
            }
        }
        if (rc) break;
        if (!defer) {
            if ((rc = trl_schema_idx_key(&k, iid, &e[i].v, r->id))) break;
            rc = add ? trl_txn_put(t, TRL_DB_IDX, k.data, k.len, "", 0, 0)
                     : trl_txn_del(t, TRL_DB_IDX, k.data, k.len);
            if (!add && rc == TRL_ENOTFOUND) rc = 0;
        }
        if (!rc && e[i].unique && e[i].v.kind != TRL_V_NULL) {
            rc = trl_schema_uniq_key(&k, iid, &e[i].v);
            if (!rc && add) {
                rc = trl_txn_put(t, TRL_DB_IDX, k.data, k.len, idb, 8, TRL_PUT_NOOVERWRITE);
                if (rc == TRL_EEXIST) {
                    const struct trl_field *f = trl_type_field_by_id(ty, e[i].col);
                    char shown[96] = "";
                    if (f && e[i].v.kind == TRL_V_INT)
                        trl_field_format_int(f, e[i].v.i, shown, sizeof(shown));
                    else if (e[i].v.kind == TRL_V_BYTES)
                        snprintf(shown, sizeof(shown), "\"%.*s\"",
                                 (int)(e[i].v.n < 80 ? e[i].v.n : 80), e[i].v.s);
                    trl_diag_add_ferr(d, f ? f->name : "", "unique", shown);
                    rc = TRL_EVALIDATION;
                }
            } else if (!rc) {
                rc = trl_txn_del(t, TRL_DB_IDX, k.data, k.len);
                if (rc == TRL_ENOTFOUND) rc = 0;
            }
        }
        if (!rc && e[i].counted) {
            rc = trl_schema_cnt_key(&k, iid, &e[i].v);
            if (!rc) rc = trl_schema_counter_add(t, &k, add ? 1 : -1);
        }
    }
    if (!rc && !old) {
        rc = trl_schema_cnt_total_key(&k, ty->id);
        if (!rc) rc = trl_schema_counter_add(t, &k, add ? 1 : -1);
    }
    if (!rc) rc = org_counters(t, ty, r, old, add, e, n, oe, on, &k);
    trl_buf_free(&k);
    free(e);
    if (batch_from) *batch_from = pending;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * JSON output
 */
int trl_rec_value_json(const struct trl_field *f, const struct trl_value *v, struct trl_buf *out)
{
    char tmp[48];
    if (v->kind == TRL_V_NULL) return trl_buf_adds(out, "null");
    switch (f->type) {
    case TRL_FT_INT:
    case TRL_FT_REF:
        return trl_buf_printf(out, "%lld", (long long)v->i);
    case TRL_FT_BOOL:
        return trl_buf_adds(out, v->i ? "true" : "false");
    case TRL_FT_DECIMAL:
    case TRL_FT_DATE:
    case TRL_FT_DATETIME:
        trl_field_format_int(f, v->i, tmp, sizeof(tmp));
        return trl_buf_add_json_str(out, tmp, strlen(tmp));
    case TRL_FT_JSON:
        return trl_buf_add(out, v->s, v->n);
    default:
        return trl_buf_add_json_str(out, v->s, v->n);
    }
}

static bool in_list(const char *list, const char *name)
{
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static int add_key(struct trl_buf *out, bool *first, const char *k)
{
    int rc = trl_buf_adds(out, *first ? "\"" : ",\"");
    *first = false;
    if (!rc) rc = trl_buf_adds(out, k);
    if (!rc) rc = trl_buf_adds(out, "\":");
    return rc;
}

static int add_sys_str(struct trl_buf *out, bool *first, const char *k, const struct trl_value *v,
                       const char *fields)
{
    if (!in_list(fields, k)) return 0;
    int rc = add_key(out, first, k);
    if (rc) return rc;
    if (v->kind != TRL_V_BYTES || v->n == 0) return trl_buf_adds(out, "null");
    return trl_buf_add_json_str(out, v->s, v->n);
}

int trl_rec_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 const struct trl_record *r, const struct trl_rec_out *o, struct trl_buf *out)
{
    static const struct trl_rec_out none = {0};
    if (!o) o = &none;
    const char *fl = o->fields;
    bool first = true;
    char ts[32];
    int rc = trl_buf_addc(out, '{');
    if (!rc && in_list(fl, "id"))
        rc = add_key(out, &first, "id") || trl_buf_printf(out, "%llu", (unsigned long long)r->id);
    if (!rc && in_list(fl, "type"))
        rc = add_key(out, &first, "type") || trl_buf_add_json_str(out, ty->name, strlen(ty->name));
    if (!rc) rc = add_sys_str(out, &first, "name", &r->name, fl);
    if (!rc && in_list(fl, "version"))
        rc = add_key(out, &first, "version") ||
             trl_buf_printf(out, "%llu", (unsigned long long)r->version);
    if (!rc) rc = add_sys_str(out, &first, "state", &r->state, fl);
    if (!rc) rc = add_sys_str(out, &first, "owner", &r->owner, fl);
    if (!rc) rc = add_sys_str(out, &first, "org", &r->org, fl);
    if (!rc && in_list(fl, "created_at")) {
        trl_datetime_format(r->created_at, ts);
        rc = add_key(out, &first, "created_at") || trl_buf_printf(out, "\"%s\"", ts);
    }
    if (!rc) rc = add_sys_str(out, &first, "created_by", &r->created_by, fl);
    if (!rc && in_list(fl, "updated_at")) {
        trl_datetime_format(r->updated_at, ts);
        rc = add_key(out, &first, "updated_at") || trl_buf_printf(out, "\"%s\"", ts);
    }
    if (!rc) rc = add_sys_str(out, &first, "updated_by", &r->updated_by, fl);
    for (size_t i = 0; i < ty->nfields && !rc; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (!in_list(fl, f->name)) continue;
        if (trl_rec_field_mode(cx, ty, f) == TRL_FIELD_HIDDEN) continue;
        struct trl_value v;
        trl_rec_column(ty, r, f->id, &v);
        rc = add_key(out, &first, f->name);
        if (rc) break;
        if (f->computed) {
            /* The app's hook computes it now; without one it is null. */
            if (!cx || !t || !trl_rec_wants(cx, ty, TRL_EV_COMPUTE, f->name)) {
                rc = trl_buf_adds(out, "null");
                continue;
            }
            struct trl_rec_move m = {.cx = cx, .ty = ty, .r = (struct trl_record *)r};
            snprintf(m.state, sizeof(m.state), "%.*s", (int)r->state.n,
                     r->state.s ? r->state.s : "");
            struct trl_rec_event ev = {.kind = TRL_EV_COMPUTE,
                                       .ty = ty,
                                       .rec = &m,
                                       .name = f->name,
                                       .field = f,
                                       .out = out};
            size_t mark = out->len;
            int hrc = trl_rec_fire(t, cx, &ev);
            if (hrc) return hrc;
            if (out->len == mark) rc = trl_buf_adds(out, "null");
            continue;
        }
        if (f->type == TRL_FT_LONGTEXT && o->render_html && v.kind == TRL_V_BYTES) {
            char *html = cmark_markdown_to_html(v.s, v.n, CMARK_OPT_SAFE);
            if (!html) return TRL_ENOMEM;
            rc = trl_buf_add_json_str(out, html, strlen(html));
            free(html);
        } else if (f->type == TRL_FT_REF && v.kind == TRL_V_INT && o->expand &&
                   in_list(o->expand, f->name) && t && cx) {
            /* The referenced record as the caller may see it: their row scope and field modes
             * on ITS type (not the outer type's); out of scope it stays a plain id. */
            const struct trl_type *rt = trl_catalog_type(cx->cat, f->ref_type);
            struct trl_record rr;
            if (rt && trl_rec_load(t, rt, (uint64_t)v.i, NULL, &rr) == 0) {
                struct trl_rec_ctx rcx = *cx;
                struct trl_access racc;
                unsigned char *modes = cx->acc ? malloc(rt->nfields + 1) : NULL;
                if (cx->acc && !modes) {
                    trl_record_free(&rr);
                    return TRL_ENOMEM;
                }
                if (cx->acc) {
                    trl_rec_access(rt, cx->who, &racc, modes);
                    rcx.acc = &racc;
                }
                if (trl_rec_in_scope(&rcx, rt, rcx.acc ? rcx.acc->read : TRL_SCOPE_ALL, &rr))
                    rc = trl_rec_json(t, &rcx, rt, &rr, NULL, out);
                else
                    rc = trl_rec_value_json(f, &v, out);
                free(modes);
                trl_record_free(&rr);
            } else {
                rc = trl_rec_value_json(f, &v, out);
            }
        } else {
            rc = trl_rec_value_json(f, &v, out);
        }
    }
    if (!rc) rc = trl_buf_addc(out, '}');
    return rc ? TRL_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Validation
 */
static int check_exists(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_field *f,
                        const struct trl_value *v, struct trl_diag *d)
{
    if (v->kind == TRL_V_NULL) return 0;
    if (f->type == TRL_FT_REF) {
        const struct trl_type *rt = trl_catalog_type(cx->cat, f->ref_type);
        char tmp[96];
        snprintf(tmp, sizeof(tmp), "%s %lld", f->ref_type, (long long)v->i);
        if (!rt) return trl_diag_add_ferr(d, f->name, "ref_missing", tmp) ? TRL_ENOMEM : 1;
        unsigned char k[12];
        struct trl_slice s;
        trl_rec_key(k, rt->id, (uint64_t)v->i);
        int rc = trl_txn_get(t, TRL_DB_REC, k, 12, &s);
        if (rc == TRL_ENOTFOUND)
            return trl_diag_add_ferr(d, f->name, "ref_missing", tmp) ? TRL_ENOMEM : 1;
        return rc;
    }
    if (f->type == TRL_FT_ATTACHMENT) {
        struct trl_slice s;
        int rc = trl_txn_get(t, TRL_DB_FILES, v->s, v->n, &s);
        if (rc == TRL_ENOTFOUND)
            return trl_diag_add_ferr(d, f->name, "attachment", "") ? TRL_ENOMEM : 1;
        if (rc) return rc;
        /* Metadata: u64 size, then media type text. */
        if (s.n >= 8) {
            uint64_t size = trl_get_u64be(s.p);
            char tmp[64];
            if (f->max_size && (int64_t)size > f->max_size) {
                snprintf(tmp, sizeof(tmp), "%lld bytes", (long long)f->max_size);
                return trl_diag_add_ferr(d, f->name, "max", tmp) ? TRL_ENOMEM : 1;
            }
            if (f->nmedia_types) {
                size_t ml = s.n - 8;
                const char *mt = (const char *)s.p + 8;
                const char *nul = memchr(mt, 0, ml);
                if (nul) ml = (size_t)(nul - mt);
                bool ok = false;
                for (size_t i = 0; i < f->nmedia_types && !ok; i++)
                    ok = strlen(f->media_types[i]) == ml && memcmp(f->media_types[i], mt, ml) == 0;
                if (!ok) {
                    struct trl_buf b;
                    trl_buf_init(&b);
                    for (size_t i = 0; i < f->nmedia_types; i++)
                        trl_buf_printf(&b, "%s%s", i ? ", " : "", f->media_types[i]);
                    int r2 = trl_diag_add_ferr(d, f->name, "enum", b.data ? b.data : "");
                    trl_buf_free(&b);
                    return r2 ? TRL_ENOMEM : 1;
                }
            }
        }
        return 0;
    }
    return 0;
}

/* Applies inputs to r (converting), collecting field errors in cx->d. Returns 0 (field errors
 * may have been added), TRL_EFORBIDDEN (a field the caller may read but not write), TRL_ENOMEM. */
static int apply_inputs(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                        struct trl_record *r, const struct trl_input *in, size_t n,
                        struct trl_arena *arena)
{
    struct trl_diag *d = cx->d;
    for (size_t i = 0; i < n; i++) {
        const struct trl_field *f = trl_type_field(ty, in[i].name, strlen(in[i].name));
        if (!f) {
            if (trl_diag_add_ferr(d, in[i].name, "unknown_field", "")) return TRL_ENOMEM;
            continue;
        }
        if (f->read_only) {
            if (trl_diag_add_ferr(d, f->name, "read_only", "")) return TRL_ENOMEM;
            continue;
        }
        enum trl_fmode mode = trl_rec_field_mode(cx, ty, f);
        if (mode == TRL_FIELD_HIDDEN) {
            /* A field this caller may not see does not exist for them. */
            if (trl_diag_add_ferr(d, in[i].name, "unknown_field", "")) return TRL_ENOMEM;
            continue;
        }
        if (mode == TRL_FIELD_READ) {
            /* Not a validation matter: this caller may not write the field at all. */
            trl_diag_reset(d);
            trl_diag_set(d, TRL_EFORBIDDEN, "you may not change '%s'", f->name);
            trl_diag_zh(d, "你无权修改“%s”", f->name);
            trl_diag_field(d, f->name);
            return TRL_EFORBIDDEN;
        }
        struct trl_value v;
        int rc = trl_field_convert(f, &in[i], arena, &v, d);
        if (rc == TRL_EVALIDATION) continue;
        if (rc) return rc;
        if (trl_record_set(r, f->id, &v)) return TRL_ENOMEM;
    }
    return 0;
}

/* Checks every rule of every field of r (defaults filled on create), appending failures to
 * cx->d; fields that already have an error (a failed conversion) are skipped. References and
 * uniqueness are checked for the values this write changes against old (every value on create,
 * old NULL): a PATCH of another field must not fail because a referenced record was deleted
 * since. Returns 0, TRL_EVALIDATION, TRL_ENOMEM, TRL_EIO. */
static int check_rules(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                       struct trl_record *r, const struct trl_record *old)
{
    struct trl_diag *d = cx->d;
    bool creating = old == NULL;
    int rc = 0;
    for (size_t i = 0; i < ty->nfields; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (f->computed) continue;
        const struct trl_value *v = trl_record_get(r, f->id);
        bool failed_conv = false;
        for (size_t k = 0; k < d->nferrs && !failed_conv; k++)
            failed_conv = strcmp(d->ferrs[k].field, f->name) == 0;
        if (failed_conv) continue;
        if (!v && creating && f->has_default) {
            if (trl_record_set(r, f->id, &f->dflt)) return TRL_ENOMEM;
            v = trl_record_get(r, f->id);
        }
        if (!v) {
            if (f->required && !(f->has_default && !creating)) {
                if (trl_diag_add_ferr(d, f->name, "required", "")) return TRL_ENOMEM;
            }
            continue;
        }
        rc = trl_field_check(f, v, d);
        if (rc < 0) return rc;
        if (!creating) {
            const struct trl_value *ov = trl_record_get(old, f->id);
            if (ov && value_eq(ov, v)) continue;
        }
        rc = check_exists(t, cx, f, v, d);
        if (rc < 0) return rc;
        if (f->unique) {
            /* Reported with every other failing field; index_apply stays the last guard. */
            struct trl_buf k;
            struct trl_slice hit;
            trl_buf_init(&k);
            rc = trl_schema_uniq_key(&k, trl_index_id(ty, f->id), v);
            if (!rc) rc = trl_txn_get(t, TRL_DB_IDX, k.data, k.len, &hit);
            trl_buf_free(&k);
            if (rc == 0 && hit.n == 8 && trl_get_u64be(hit.p) != r->id) {
                char shown[96] = "";
                if (v->kind == TRL_V_INT)
                    trl_field_format_int(f, v->i, shown, sizeof(shown));
                else
                    snprintf(shown, sizeof(shown), "\"%.*s\"", (int)(v->n < 80 ? v->n : 80), v->s);
                if (trl_diag_add_ferr(d, f->name, "unique", shown)) return TRL_ENOMEM;
            } else if (rc && rc != TRL_ENOTFOUND) {
                return rc;
            }
            rc = 0;
        }
    }
    return d->nferrs ? TRL_EVALIDATION : 0;
}

static int validation_failed(const struct trl_rec_ctx *cx, const struct trl_type *ty)
{
    trl_diag_set(cx->d, TRL_EVALIDATION, "%zu field(s) of %s failed validation", cx->d->nferrs,
                 ty->name);
    trl_diag_zh(cx->d, "%s 有 %zu 个字段未通过校验", ty->name, cx->d->nferrs);
    return TRL_EVALIDATION;
}

/* JSON object of per-field changes between old (NULL on create) and r (NULL on delete). */
static int diff_json(const struct trl_type *ty, const struct trl_record *old,
                     const struct trl_record *r, struct trl_buf *out, size_t *nchanges)
{
    int rc = trl_buf_addc(out, '{');
    *nchanges = 0;
    for (size_t i = 0; i < ty->nfields && !rc; i++) {
        const struct trl_field *f = &ty->fields[i];
        if (f->computed) continue;
        const struct trl_value *a = old ? trl_record_get(old, f->id) : NULL;
        const struct trl_value *b = r ? trl_record_get(r, f->id) : NULL;
        struct trl_value nullv = {0};
        if (!a) a = &nullv;
        if (!b) b = &nullv;
        if (value_eq(a, b)) continue;
        if (*nchanges) rc = trl_buf_addc(out, ',');
        (*nchanges)++;
        rc = rc || trl_buf_add_json_str(out, f->name, strlen(f->name)) ||
             trl_buf_adds(out, ":{\"from\":") || trl_rec_value_json(f, a, out) ||
             trl_buf_adds(out, ",\"to\":") || trl_rec_value_json(f, b, out) ||
             trl_buf_addc(out, '}');
    }
    if (!rc) rc = trl_buf_addc(out, '}');
    return rc ? TRL_ENOMEM : 0;
}

/* The history members of a change: extra (members without a leading comma, may be NULL) and
 * the notes hooks added, as "notes":[...]. Points *out at the text to pass (owned by buf). */
static int hist_extra(const char *extra, const struct trl_buf *notes, struct trl_buf *buf,
                      const char **out)
{
    *out = extra;
    if (!notes || !notes->len) return 0;
    int rc = (extra && *extra && (trl_buf_adds(buf, extra) || trl_buf_addc(buf, ','))) ||
             trl_buf_adds(buf, "\"notes\":[") || trl_buf_add(buf, notes->data, notes->len) ||
             trl_buf_addc(buf, ']');
    *out = buf->data;
    return rc ? TRL_ENOMEM : 0;
}

int trl_rec_move_note(struct trl_rec_move *m, const char *text, size_t n)
{
    if (!m->notes) return TRL_ECONFLICT;
    if (m->notes->len >= 16384) return 0; /* enough said */
    int rc =
        (m->notes->len && trl_buf_addc(m->notes, ',')) || trl_buf_add_json_str(m->notes, text, n);
    return rc ? TRL_ENOMEM : 0;
}

int trl_rec_note(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 uint64_t id, const char *text, size_t n)
{
    struct trl_buf ex;
    trl_buf_init(&ex);
    int rc = trl_buf_adds(&ex, "\"notes\":[") || trl_buf_add_json_str(&ex, text, n) ||
                     trl_buf_addc(&ex, ']')
                 ? TRL_ENOMEM
                 : 0;
    struct trl_rec_ctx ecx = *cx;
    ecx.acc = NULL;
    ecx.ev = NULL; /* a note is not a change hooks hear about */
    struct trl_rec_move_opts o = {.action = "note", .extra = &ex};
    if (!rc) rc = trl_rec_move(t, &ecx, ty, id, 0, NULL, 0, &o, NULL);
    trl_buf_free(&ex);
    return rc;
}

static int store_record(struct trl_txn *t, const struct trl_record *r, bool fresh)
{
    struct trl_buf b;
    unsigned char k[12];
    trl_buf_init(&b);
    int rc = trl_record_encode(r, &b);
    trl_rec_key(k, r->type_id, r->id);
    if (!rc) rc = trl_txn_put(t, TRL_DB_REC, k, 12, b.data, b.len, fresh ? TRL_PUT_APPEND : 0);
    trl_buf_free(&b);
    return rc;
}

static void set_str(struct trl_value *v, const char *s)
{
    v->kind = TRL_V_BYTES;
    v->s = s ? s : "";
    v->n = strlen(v->s);
}

/* A move over a record of its own (trl_rec_view_open). */
struct view {
    struct trl_rec_move m; /* first: the handle given out */
    struct trl_record r;
    struct trl_arena arena;
    struct trl_rec_ctx cx;
};

int trl_rec_view_open(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                      uint64_t id, struct trl_rec_move **out)
{
    struct view *v = calloc(1, sizeof(*v));
    if (!v) return TRL_ENOMEM;
    trl_arena_init(&v->arena);
    int rc = trl_rec_load(t, ty, id, &v->arena, &v->r);
    if (rc) {
        trl_arena_free(&v->arena);
        free(v);
        return rc;
    }
    v->cx = *cx;
    v->m = (struct trl_rec_move){
        .cx = &v->cx, .ty = ty, .r = &v->r, .arena = &v->arena, .updatable = true};
    snprintf(v->m.state, sizeof(v->m.state), "%.*s", (int)v->r.state.n,
             v->r.state.s ? v->r.state.s : "");
    *out = &v->m;
    return 0;
}

void trl_rec_view_close(struct trl_rec_move *m)
{
    if (!m) return;
    struct view *v = (struct view *)m;
    trl_record_free(&v->r);
    trl_arena_free(&v->arena);
    free(v);
}

const struct trl_type *trl_rec_move_type(const struct trl_rec_move *m)
{
    return m->ty;
}

uint64_t trl_rec_move_id(const struct trl_rec_move *m)
{
    return m->r->id;
}

const struct trl_rec_ctx *trl_rec_move_ctx(const struct trl_rec_move *m)
{
    return m->cx;
}

enum trl_fmode trl_rec_move_mode(const struct trl_rec_move *m, const struct trl_field *f)
{
    return trl_rec_field_mode(m->cx, m->ty, f);
}

int trl_rec_move_get_old(const struct trl_rec_move *m, int col, struct trl_value *out)
{
    if (!m->old) return TRL_ENOTFOUND;
    trl_rec_column(m->ty, m->old, (uint32_t)col, out);
    return 0;
}

const char *trl_rec_move_state(const struct trl_rec_move *m)
{
    return m->state;
}

bool trl_rec_move_updatable(const struct trl_rec_move *m)
{
    return m->updatable;
}

int trl_rec_move_get(void *ud, int col, struct trl_value *out)
{
    struct trl_rec_move *m = ud;
    trl_rec_column(m->ty, m->r, (uint32_t)col, out);
    return 0;
}

int trl_rec_move_set_d(struct trl_rec_move *m, const struct trl_field *f, const struct trl_input *v,
                       struct trl_diag *d)
{
    /* The input's bytes may not outlive this call (a Lua string): the move keeps a copy. */
    struct trl_input in = *v;
    if (in.s && in.n) {
        char *c = trl_arena_strndup(m->arena, in.s, in.n);
        if (!c) return TRL_ENOMEM;
        in.s = c;
    }
    v = &in;
    struct trl_value val;
    int rc = trl_field_convert(f, v, m->arena, &val, d);
    if (rc) return rc;
    if (val.kind != TRL_V_NULL) {
        rc = trl_field_check(f, &val, d);
        if (rc < 0) return rc;
        if (rc > 0) return TRL_EVALIDATION;
    }
    return trl_record_set(m->r, f->id, &val) ? TRL_ENOMEM : 0;
}

int trl_rec_move_set(struct trl_rec_move *m, const struct trl_field *f, const struct trl_input *v)
{
    return trl_rec_move_set_d(m, f, v, m->cx->d);
}

int trl_rec_move_set_value(struct trl_rec_move *m, const struct trl_field *f,
                           const struct trl_value *v)
{
    if (v->kind != TRL_V_NULL) {
        int rc = trl_field_check(f, v, m->cx->d);
        if (rc < 0) return rc;
        if (rc > 0) return TRL_EVALIDATION;
    }
    return trl_record_set(m->r, f->id, v) ? TRL_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Events
 */
bool trl_rec_wants(const struct trl_rec_ctx *cx, const struct trl_type *ty, enum trl_rec_ev kind,
                   const char *name)
{
    return cx->ev && cx->ev->wants(cx->ev->ud, ty, kind, name);
}

int trl_rec_fire(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_rec_event *ev)
{
    if (!trl_rec_wants(cx, ev->ty, ev->kind, ev->name)) return 0;
    return cx->ev->fire(cx->ev->ud, t, cx, ev);
}

int trl_rec_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                   const struct trl_input *in, size_t n, uint64_t *id, struct trl_buf *out)
{
    struct trl_record r;
    struct trl_arena arena;
    struct trl_buf diff, notes, hxbuf;
    char name[200] = "";
    trl_record_init(&r);
    trl_arena_init(&arena);
    trl_buf_init(&diff);
    trl_buf_init(&notes);
    trl_buf_init(&hxbuf);
    if (cx->acc && cx->acc->create == TRL_SCOPE_NONE) {
        trl_diag_set(cx->d, TRL_EFORBIDDEN, "your roles may not create %s records", ty->name);
        trl_diag_zh(cx->d, "你的角色无权创建 %s 记录", ty->name);
        return TRL_EFORBIDDEN;
    }
    const char *user = cx->who ? cx->who->user : "";
    set_str(&r.owner, cx->create_owner ? cx->create_owner : user);
    set_str(&r.created_by, user);
    set_str(&r.updated_by, user);
    set_str(&r.org, cx->create_org ? cx->create_org : cx->who ? cx->who->org : "");
    set_str(&r.state, ty->initial_state);
    r.type_id = ty->id;
    r.version = 1;
    r.created_at = r.updated_at = cx->now_ms;
    int rc = apply_inputs(cx, ty, &r, in, n, &arena);
    if (rc) goto out;
    struct trl_rec_move m = {
        .cx = cx, .ty = ty, .r = &r, .arena = &arena, .updatable = true, .notes = &notes};
    snprintf(m.state, sizeof(m.state), "%s", ty->initial_state);
    if (!cx->d->nferrs) {
        struct trl_rec_event ev = {
            .kind = TRL_EV_BEFORE_CREATE, .ty = ty, .rec = &m, .writable = true, .op = "create"};
        if ((rc = trl_rec_fire(t, cx, &ev))) goto out;
    }
    rc = check_rules(t, cx, ty, &r, NULL);
    if (rc == TRL_EVALIDATION) validation_failed(cx, ty);
    if (rc) goto out;
    struct trl_rec_event vev = {.kind = TRL_EV_VALIDATE, .ty = ty, .rec = &m, .op = "create"};
    if ((rc = trl_rec_fire(t, cx, &vev))) goto out;

    char seqkey[32];
    snprintf(seqkey, sizeof(seqkey), "id:%u", ty->id);
    if ((rc = trl_txn_seq_next(t, seqkey, &r.id))) goto out;
    if (ty->autoname) {
        char key[256];
        uint64_t seq;
        trl_schema_autoname_key(ty, cx->now_ms, key, sizeof(key));
        if ((rc = trl_txn_seq_next(t, key, &seq))) goto out;
        trl_schema_autoname(ty, cx->now_ms, seq, name, sizeof(name));
    }
    set_str(&r.name, name);

    uint64_t batch_from = 0;
    if ((rc = index_apply(t, cx, ty, &r, NULL, true, &batch_from))) {
        if (rc == TRL_EVALIDATION) validation_failed(cx, ty);
        goto out;
    }
    size_t nch;
    if ((rc = diff_json(ty, NULL, &r, &diff, &nch))) goto out;
    const char *hx;
    if ((rc = hist_extra(NULL, &notes, &hxbuf, &hx))) goto out;
    if ((rc = trl_rec_hist_append(t, cx, ty, &r, "create", diff.data, diff.len, hx))) goto out;
    if ((rc = store_record(t, &r, true))) goto out;
    /* Once stored, the create that fills its batch writes the batch. */
    uint64_t written = 0;
    if (cx->cat && r.id - batch_from + 1 >= INDEX_BATCH &&
        (rc = index_flush(t, ty, cx->cat->version, &written)))
        goto out;
    *id = r.id;
    if (out) rc = trl_rec_json(t, cx, ty, &r, NULL, out);
out:
    trl_buf_free(&notes);
    trl_buf_free(&hxbuf);
    trl_buf_free(&diff);
    trl_record_free(&r);
    trl_arena_free(&arena);
    return rc;
}

static int version_check(const struct trl_rec_ctx *cx, const struct trl_record *r,
                         uint64_t if_match)
{
    if (if_match && if_match != r->version) {
        trl_diag_set(cx->d, TRL_EPRECOND,
                     "the record is at version %llu, not %llu; reload it and try again",
                     (unsigned long long)r->version, (unsigned long long)if_match);
        trl_diag_zh(cx->d, "记录当前版本为 %llu,而不是 %llu;请刷新后重试",
                    (unsigned long long)r->version, (unsigned long long)if_match);
        return TRL_EPRECOND;
    }
    return 0;
}

static int not_found(const struct trl_rec_ctx *cx, const struct trl_type *ty, uint64_t id)
{
    trl_diag_set(cx->d, TRL_ENOTFOUND, "no %s with id %llu", ty->name, (unsigned long long)id);
    trl_diag_zh(cx->d, "不存在 ID 为 %llu 的 %s", (unsigned long long)id, ty->name);
    return TRL_ENOTFOUND;
}

void trl_rec_def_condition(struct trl_defcheck *c, const char *src, const char *path,
                           const struct trl_type *ty, struct trl_expr **cond, char **text)
{
    if (!ty) return;
    struct trl_diag ed;
    trl_diag_init(&ed);
    int rc = trl_expr_parse(src, strlen(src), trl_rec_resolve_any, (void *)ty, cond, &ed);
    if (rc == TRL_ENOMEM) c->rc = rc;
    if (rc) trl_def_err(c, path, "%s", ed.message);
    trl_diag_reset(&ed);
    if (!(*text = strdup(src))) c->rc = TRL_ENOMEM;
}

int trl_rec_resolve_any(void *ud, const char *name, size_t n, struct trl_expr_field *out)
{
    return trl_rec_resolve(ud, name, n, out);
}

/* The one update path. A patch (PATCH) needs the update scope, and writes nothing when no field
 * changed; a move (a workflow transition) is governed by its guard and always writes, as an
 * event. */
static int change(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                  uint64_t id, uint64_t if_match, const struct trl_input *in, size_t n,
                  const struct trl_rec_move_opts *o, bool patch, struct trl_buf *out)
{
    struct trl_record old, r;
    struct trl_arena arena;
    struct trl_buf diff, notes, hxbuf;
    trl_record_init(&r);
    trl_arena_init(&arena);
    trl_buf_init(&diff);
    trl_buf_init(&notes);
    trl_buf_init(&hxbuf);
    int rc = trl_rec_load(t, ty, id, &arena, &old);
    if (rc == TRL_ENOTFOUND) rc = not_found(cx, ty, id);
    if (rc) {
        trl_arena_free(&arena);
        return rc;
    }
    if (!trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->read : TRL_SCOPE_ALL, &old)) {
        rc = not_found(cx, ty, id);
        goto out;
    }
    bool updatable = trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->update : TRL_SCOPE_ALL, &old);
    if (patch && !updatable) {
        rc = trl_diag_set(cx->d, TRL_EFORBIDDEN, "your roles may not change this %s", ty->name);
        trl_diag_zh(cx->d, "你的角色无权修改此 %s", ty->name);
        goto out;
    }
    if ((rc = version_check(cx, &old, if_match))) goto out;
    /* r starts as a copy of old (values borrow the same txn memory). */
    r = old;
    r.vals = malloc((old.nvals ? old.nvals : 1) * sizeof(*r.vals));
    if (!r.vals) {
        rc = TRL_ENOMEM;
        r.nvals = r.capvals = 0;
        goto out;
    }
    memcpy(r.vals, old.vals, old.nvals * sizeof(*r.vals));
    r.capvals = old.nvals ? old.nvals : 1;
    struct trl_rec_move m = {
        .cx = cx, .ty = ty, .r = &r, .old = &old, .arena = &arena, .notes = &notes};
    snprintf(m.state, sizeof(m.state), "%.*s", (int)old.state.n, old.state.s ? old.state.s : "");
    m.updatable = updatable;
    if (o->guard && (rc = o->guard(o->ud, TRL_MOVE_LOADED, &m))) {
        if (rc == TRL_MOVE_STOP) rc = 0;
        goto out;
    }
    if ((rc = apply_inputs(cx, ty, &r, in, n, &arena))) goto out;
    if (patch && !cx->d->nferrs && !o->dry_run) {
        /* A before_update hook may change the record; the rules below check what it set. */
        struct trl_rec_move om = {.cx = cx, .ty = ty, .r = &old, .arena = &arena};
        snprintf(om.state, sizeof(om.state), "%s", m.state);
        struct trl_rec_event ev = {.kind = TRL_EV_BEFORE_UPDATE,
                                   .ty = ty,
                                   .rec = &m,
                                   .old = &om,
                                   .writable = true,
                                   .op = "update"};
        if ((rc = trl_rec_fire(t, cx, &ev))) goto out;
    }
    rc = check_rules(t, cx, ty, &r, &old);
    if (rc == TRL_EVALIDATION) validation_failed(cx, ty);
    if (rc) goto out;
    if (o->guard && (rc = o->guard(o->ud, TRL_MOVE_FILLED, &m))) {
        if (rc == TRL_MOVE_STOP) rc = 0;
        goto out;
    }
    if (o->guard) {
        /* What the guard set (workflow actions, hooks) must keep to every rule. */
        if ((rc = check_rules(t, cx, ty, &r, &old)) == TRL_EVALIDATION) {
            validation_failed(cx, ty);
            trl_diag_rule(cx->d, "action", "");
        }
        if (rc) goto out;
    }
    if (o->dry_run) goto out;
    if (patch || o->to_state) {
        struct trl_rec_move om = {.cx = cx, .ty = ty, .r = &old, .arena = &arena};
        snprintf(om.state, sizeof(om.state), "%s", m.state);
        struct trl_rec_event ev = {.kind = TRL_EV_VALIDATE,
                                   .ty = ty,
                                   .rec = &m,
                                   .old = &om,
                                   .op = patch ? "update" : "transition"};
        if ((rc = trl_rec_fire(t, cx, &ev))) goto out;
    }
    if (o->to_state) set_str(&r.state, o->to_state);
    size_t nch;
    if ((rc = diff_json(ty, &old, &r, &diff, &nch))) goto out;
    if (patch && nch == 0) {
        if (out) rc = trl_rec_json(t, cx, ty, &old, NULL, out);
        goto out;
    }
    r.version = old.version + 1;
    r.updated_at = cx->now_ms > old.updated_at ? cx->now_ms : old.updated_at;
    set_str(&r.updated_by, cx->who ? cx->who->user : "");
    if ((rc = index_apply(t, cx, ty, &r, &old, true, NULL))) {
        if (rc == TRL_EVALIDATION) validation_failed(cx, ty);
        goto out;
    }
    const char *hx;
    if ((rc = hist_extra(o->extra ? o->extra->data : NULL, &notes, &hxbuf, &hx))) goto out;
    if ((rc = trl_rec_hist_append(t, cx, ty, &r, o->action ? o->action : "update", diff.data,
                                  diff.len, hx)))
        goto out;
    if ((rc = store_record(t, &r, false))) goto out;
    if (out) {
        struct trl_record fresh;
        if ((rc = trl_rec_load(t, ty, id, NULL, &fresh))) goto out;
        rc = trl_rec_json(t, cx, ty, &fresh, NULL, out);
        trl_record_free(&fresh);
    }
out:
    trl_buf_free(&notes);
    trl_buf_free(&hxbuf);
    trl_buf_free(&diff);
    trl_record_free(&r);
    trl_record_free(&old);
    trl_arena_free(&arena);
    return rc;
}

int trl_rec_patch(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                  uint64_t id, uint64_t if_match, const struct trl_input *in, size_t n,
                  struct trl_buf *out)
{
    const struct trl_rec_move_opts o = {.action = "update"};
    return change(t, cx, ty, id, if_match, in, n, &o, true, out);
}

int trl_rec_move(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                 uint64_t id, uint64_t if_match, const struct trl_input *in, size_t n,
                 const struct trl_rec_move_opts *o, struct trl_buf *out)
{
    return change(t, cx, ty, id, if_match, in, n, o, false, out);
}

int trl_rec_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                   uint64_t id, uint64_t if_match)
{
    struct trl_record r;
    struct trl_buf diff, notes, hxbuf;
    struct trl_arena arena;
    trl_buf_init(&diff);
    trl_buf_init(&notes);
    trl_buf_init(&hxbuf);
    trl_arena_init(&arena);
    int rc = trl_rec_load(t, ty, id, &arena, &r);
    if (rc == TRL_ENOTFOUND) rc = not_found(cx, ty, id);
    if (rc) {
        trl_arena_free(&arena);
        return rc;
    }
    if (!trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->read : TRL_SCOPE_ALL, &r)) {
        rc = not_found(cx, ty, id);
        goto out;
    }
    if (!trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->del : TRL_SCOPE_ALL, &r)) {
        rc = trl_diag_set(cx->d, TRL_EFORBIDDEN, "your roles may not delete this %s", ty->name);
        trl_diag_zh(cx->d, "你的角色无权删除此 %s", ty->name);
        goto out;
    }
    if ((rc = version_check(cx, &r, if_match))) goto out;
    struct trl_rec_move m = {
        .cx = cx, .ty = ty, .r = &r, .arena = &arena, .updatable = true, .notes = &notes};
    snprintf(m.state, sizeof(m.state), "%.*s", (int)r.state.n, r.state.s ? r.state.s : "");
    struct trl_rec_event ev = {.kind = TRL_EV_BEFORE_DELETE, .ty = ty, .rec = &m, .op = "delete"};
    if ((rc = trl_rec_fire(t, cx, &ev))) goto out;
    size_t nch;
    if ((rc = index_apply(t, cx, ty, &r, NULL, false, NULL))) goto out;
    if ((rc = diff_json(ty, &r, NULL, &diff, &nch))) goto out;
    const char *hx;
    if ((rc = hist_extra(NULL, &notes, &hxbuf, &hx))) goto out;
    if ((rc = trl_rec_hist_append(t, cx, ty, &r, "delete", diff.data, diff.len, hx))) goto out;
    /* The chain head of a deleted record lives at seq 0 of its history. */
    unsigned char hk[16], head[36];
    trl_rec_key(hk, ty->id, id);
    trl_put_u32be(hk + 12, 0);
    trl_put_u32be(head, r.hist_seq);
    memcpy(head + 4, r.hist_hash, 32);
    if ((rc = trl_txn_put(t, TRL_DB_HIST, hk, 16, head, 36, 0))) goto out;
    unsigned char k[12];
    trl_rec_key(k, ty->id, id);
    rc = trl_txn_del(t, TRL_DB_REC, k, 12);
out:
    trl_buf_free(&notes);
    trl_buf_free(&hxbuf);
    trl_buf_free(&diff);
    trl_record_free(&r);
    trl_arena_free(&arena);
    return rc;
}

int trl_rec_get(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                uint64_t id, const struct trl_rec_out *o, uint64_t *version, struct trl_buf *out)
{
    struct trl_record r;
    int rc = trl_rec_load(t, ty, id, NULL, &r);
    if (rc == TRL_ENOTFOUND) return not_found(cx, ty, id);
    if (rc) return rc;
    if (!trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->read : TRL_SCOPE_ALL, &r)) {
        trl_record_free(&r);
        return not_found(cx, ty, id); /* out of scope looks like absent: nothing leaks */
    }
    if (version) *version = r.version;
    rc = trl_rec_json(t, cx, ty, &r, o, out);
    trl_record_free(&r);
    return rc;
}

int trl_rec_visible(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                    uint64_t id)
{
    struct trl_record r;
    int rc = trl_rec_load(t, ty, id, NULL, &r);
    if (rc == TRL_ENOTFOUND) return not_found(cx, ty, id);
    if (rc) return rc;
    bool in = trl_rec_in_scope(cx, ty, cx->acc ? cx->acc->read : TRL_SCOPE_ALL, &r);
    trl_record_free(&r);
    return in ? 0 : not_found(cx, ty, id);
}

int trl_rec_count(struct trl_txn *t, const struct trl_type *ty, uint64_t *n)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = trl_schema_cnt_total_key(&k, ty->id);
    if (!rc) rc = trl_schema_counter_get(t, &k, n);
    trl_buf_free(&k);
    return rc;
}

int trl_rec_count_value(struct trl_txn *t, const struct trl_type *ty, int col, const char *org,
                        const struct trl_value *v, uint64_t *n)
{
    struct trl_buf k;
    trl_buf_init(&k);
    uint32_t iid = trl_index_id(ty, (uint32_t)col);
    struct trl_value o = {.kind = TRL_V_BYTES, .s = org, .n = org ? strlen(org) : 0};
    int rc = org ? trl_schema_org_cnt_key(&k, iid, &o, v) : trl_schema_cnt_key(&k, iid, v);
    if (!rc) rc = trl_schema_counter_get(t, &k, n);
    trl_buf_free(&k);
    return rc;
}

int trl_rec_count_each(struct trl_txn *t, const struct trl_type *ty, int col, const char *org,
                       struct trl_arena *arena,
                       int (*fn)(void *ud, const struct trl_value *v, uint64_t n), void *ud)
{
    struct trl_buf pre;
    trl_buf_init(&pre);
    uint32_t iid = trl_index_id(ty, (uint32_t)col);
    struct trl_value o = {.kind = TRL_V_BYTES, .s = org, .n = org ? strlen(org) : 0};
    int rc = trl_buf_addc(&pre, org ? 'o' : 'c') || trl_buf_add_u32be(&pre, iid) ||
                     (org && trl_key_add_value(&pre, &o))
                 ? TRL_ENOMEM
                 : 0;
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_CNT, &c);
    int mv;
    for (mv = rc ? 1 : trl_cursor_seek(c, pre.data, pre.len); mv == 0 && !rc;
         mv = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n <= pre.len || memcmp(k.p, pre.data, pre.len) != 0) break;
        const unsigned char *p = (const unsigned char *)k.p + pre.len;
        struct trl_value val;
        if (trl_key_get_value(&p, (const unsigned char *)k.p + k.n, arena, &val) || v.n != 8) {
            rc = TRL_ECORRUPT;
            break;
        }
        rc = fn(ud, &val, trl_get_u64be(v.p));
    }
    trl_cursor_close(c);
    trl_buf_free(&pre);
    return rc;
}

int trl_rec_count_org(struct trl_txn *t, const struct trl_type *ty, const char *org, uint64_t *n)
{
    struct trl_buf k;
    trl_buf_init(&k);
    struct trl_value o = {.kind = TRL_V_BYTES, .s = org, .n = strlen(org)};
    int rc = trl_schema_org_total_key(&k, ty->id, &o);
    if (!rc) rc = trl_schema_counter_get(t, &k, n);
    trl_buf_free(&k);
    return rc;
}

/* A waiting record, in the caller's read scope, holding file sha in an attachment field the
 * caller may see (1 stops the walk). */
struct holder {
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    const unsigned char *modes;
    const struct trl_value *sha;
};

static int holds_file(void *ud, const struct trl_record *r, struct trl_slice raw)
{
    (void)raw;
    const struct holder *h = ud;
    for (size_t fi = 0; fi < h->ty->nfields; fi++) {
        const struct trl_field *f = &h->ty->fields[fi];
        if (f->type != TRL_FT_ATTACHMENT || h->modes[fi] == TRL_FIELD_HIDDEN) continue;
        const struct trl_value *fv = trl_record_get(r, f->id);
        if (fv && value_eq(fv, h->sha))
            return trl_rec_in_scope(h->cx, h->ty, h->cx->acc->read, r) ? 1 : 0;
    }
    return 0;
}

int trl_rec_file_visible(struct trl_txn *t, const struct trl_catalog *cat,
                         const struct trl_principal *who, const char *sha, bool *visible)
{
    *visible = false;
    struct trl_value v = {.kind = TRL_V_BYTES, .s = sha, .n = 64};
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = 0;
    for (size_t ti = 0; ti < cat->ntypes && !rc && !*visible; ti++) {
        const struct trl_type *ty = cat->types[ti];
        unsigned char *modes = malloc(ty->nfields ? ty->nfields : 1);
        if (!modes) return TRL_ENOMEM;
        struct trl_access acc;
        trl_rec_access(ty, who, &acc, modes);
        struct trl_rec_ctx cx = {.cat = cat, .acc = &acc, .who = who};
        for (size_t fi = 0; fi < ty->nfields && !rc && !*visible && acc.read; fi++) {
            const struct trl_field *f = &ty->fields[fi];
            if (f->type != TRL_FT_ATTACHMENT || modes[fi] == TRL_FIELD_HIDDEN) continue;
            /* Index entries (iid, sha, id): the records holding this file in this field. */
            trl_buf_clear(&k);
            if (trl_buf_add_u32be(&k, trl_index_id(ty, f->id)) || trl_key_add_value(&k, &v)) {
                rc = TRL_ENOMEM;
                break;
            }
            struct trl_cursor *c = NULL;
            if ((rc = trl_cursor_open(t, TRL_DB_IDX, &c))) break;
            int mv;
            int seen = 0;
            for (mv = trl_cursor_seek(c, k.data, k.len); mv == 0 && seen < 1000;
                 mv = trl_cursor_next(c), seen++) {
                struct trl_slice key;
                trl_cursor_get(c, &key, NULL);
                if (key.n != k.len + 8 || memcmp(key.p, k.data, k.len) != 0) break;
                struct trl_record r;
                if (trl_rec_load(t, ty, trl_get_u64be((const unsigned char *)key.p + k.len), NULL,
                                 &r) != 0)
                    continue;
                *visible = trl_rec_in_scope(&cx, ty, acc.read, &r);
                trl_record_free(&r);
                if (*visible) break;
            }
            trl_cursor_close(c);
        }
        /* Records waiting for their index batch hold files the index does not show yet. */
        uint64_t pending = 0;
        if (!rc && !*visible && acc.read) rc = trl_schema_pending_get(t, ty->id, &pending);
        if (!rc && !*visible && pending) {
            struct holder h = {.cx = &cx, .ty = ty, .modes = modes, .sha = &v};
            rc = trl_rec_each_from(t, ty, pending, holds_file, &h);
            if (rc > 0) *visible = true, rc = 0;
        }
        free(modes);
    }
    trl_buf_free(&k);
    return rc;
}
