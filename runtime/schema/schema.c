/* schema.c — type definitions: compile, validate, evolve, store; field conversion and rules. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "schema.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Meta keys: kind NUL name
 */
static int meta_key(struct trl_buf *k, const char *kind, const char *name)
{
    trl_buf_clear(k);
    if (trl_buf_adds(k, kind) || trl_buf_addc(k, 0) || trl_buf_adds(k, name)) return TRL_ENOMEM;
    return 0;
}

int trl_meta_put(struct trl_txn *t, const char *kind, const char *name, const char *json, size_t n)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = meta_key(&k, kind, name);
    if (!rc) rc = trl_txn_put(t, TRL_DB_META, k.data, k.len, json, n, 0);
    trl_buf_free(&k);
    return rc;
}

int trl_meta_get(struct trl_txn *t, const char *kind, const char *name, char **out)
{
    struct trl_buf k;
    struct trl_slice v;
    trl_buf_init(&k);
    int rc = meta_key(&k, kind, name);
    if (!rc) rc = trl_txn_get(t, TRL_DB_META, k.data, k.len, &v);
    if (!rc) {
        *out = trl_strndup(v.p, v.n);
        if (!*out) rc = TRL_ENOMEM;
    }
    trl_buf_free(&k);
    return rc;
}

int trl_meta_del(struct trl_txn *t, const char *kind, const char *name)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = meta_key(&k, kind, name);
    if (!rc) rc = trl_txn_del(t, TRL_DB_META, k.data, k.len);
    trl_buf_free(&k);
    return rc;
}

int trl_meta_each(struct trl_txn *t, const char *kind,
                  int (*fn)(void *ud, const char *name, const char *json, size_t n), void *ud)
{
    struct trl_cursor *c = NULL;
    size_t kl = strlen(kind);
    int rc = trl_cursor_open(t, TRL_DB_META, &c);
    if (rc) return rc;
    char prefix[64];
    if (kl + 1 > sizeof(prefix)) {
        trl_cursor_close(c);
        return TRL_EINVAL;
    }
    memcpy(prefix, kind, kl + 1);
    for (rc = trl_cursor_seek(c, prefix, kl + 1); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n < kl + 1 || memcmp(k.p, prefix, kl + 1) != 0) break;
        char name[256];
        size_t nl = k.n - kl - 1;
        if (nl >= sizeof(name)) continue;
        memcpy(name, (const char *)k.p + kl + 1, nl);
        name[nl] = 0;
        char *json = trl_strndup(v.p, v.n);
        if (!json) {
            rc = TRL_ENOMEM;
            break;
        }
        rc = fn(ud, name, json, v.n);
        free(json);
        if (rc) break;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

struct prune {
    bool (*keep)(void *ud, const char *name);
    void *ud;
    struct trl_buf names; /* NUL-separated names to delete */
};

static int prune_collect(void *ud, const char *name, const char *json, size_t n)
{
    (void)json, (void)n;
    struct prune *p = ud;
    if (p->keep(p->ud, name)) return 0;
    return trl_buf_add(&p->names, name, strlen(name) + 1) ? TRL_ENOMEM : 0;
}

int trl_meta_prune(struct trl_txn *t, const char *kind, bool (*keep)(void *ud, const char *name),
                   int (*drop)(void *ud, struct trl_txn *t, const char *name), void *ud, size_t *n)
{
    /* The names first: deleting under a cursor's feet is not allowed. */
    struct prune p = {.keep = keep, .ud = ud};
    trl_buf_init(&p.names);
    *n = 0;
    int rc = trl_meta_each(t, kind, prune_collect, &p);
    for (size_t off = 0; !rc && off < p.names.len; off += strlen(p.names.data + off) + 1) {
        const char *name = p.names.data + off;
        if (drop) rc = drop(ud, t, name);
        if (!rc) rc = trl_meta_del(t, kind, name);
        if (!rc) (*n)++;
    }
    trl_buf_free(&p.names);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Canonical JSON: known keys first in a fixed order, then the rest sorted; 2-space indent.
 */
static const char *key_order[] = {
    "name",
    "value",
    "type",
    "version",
    "labels",
    "en",
    "zh-CN",
    "help",
    "description",
    "title_field",
    "assignee_field",
    "assignee_group_field",
    "autoname",
    "initial_state",
    "required",
    "unique",
    "indexed",
    "read_only",
    "computed",
    "default",
    "scale",
    "min",
    "max",
    "min_length",
    "max_length",
    "pattern",
    "options",
    "ref_type",
    "max_size",
    "media_types",
    "renamed_from",
    "fields",
    "roles",
    "types",
    "dependencies",
    "states",
    "transitions",
    "initial",
    "final",
    "category",
    "color",
    "from",
    "to",
    "condition",
    "comment_required",
    "confirm",
    "actions",
    "set",
    "var",
    "copy",
    "approvals",
    "state",
    "steps",
    "approvers",
    "mode",
    "quorum",
    "allow_self",
    "on_approve",
    "on_reject",
    "on_return",
    "on_recall",
    "slas",
    "calendar",
    "pause",
    "targets",
    "start",
    "stop",
    "hours",
    "minutes",
    "warn_percent",
    "on_warning",
    "on_breach",
    "notify",
    "message",
    "transition",
    "assignment",
    "field",
    "on",
    "rules",
    "strategy",
    "user",
    "group",
    "skills_field",
    "region_field",
    "assign",
    "create",
    "for_each",
    "item",
};

static int key_rank(const char *k)
{
    for (size_t i = 0; i < sizeof(key_order) / sizeof(key_order[0]); i++)
        if (strcmp(k, key_order[i]) == 0) return (int)i;
    return 1000;
}

static int key_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int rx = key_rank(x->string), ry = key_rank(y->string);
    if (rx != ry) return rx - ry;
    return strcmp(x->string, y->string);
}

static int add_number(struct trl_buf *b, double d)
{
    if (d == (double)(int64_t)d && d > -9.007199254740992e15 && d < 9.007199254740992e15)
        return trl_buf_printf(b, "%lld", (long long)d);
    for (int prec = 1; prec <= 17; prec++) {
        char tmp[40];
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) return trl_buf_adds(b, tmp);
    }
    return trl_buf_printf(b, "%.17g", d);
}

static int print_canon(struct trl_buf *b, const cJSON *j, int indent)
{
    int rc = 0;
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        size_t n = (size_t)cJSON_GetArraySize(j);
        bool obj = cJSON_IsObject(j);
        if (n == 0) return trl_buf_adds(b, obj ? "{}" : "[]");
        const cJSON **kids = malloc(n * sizeof(*kids));
        if (!kids) return TRL_ENOMEM;
        size_t i = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            kids[i++] = c;
        if (obj) qsort(kids, n, sizeof(*kids), key_cmp);
        /* Arrays of scalars stay on one line: short and diff-friendly enough. */
        bool inl = !obj;
        for (i = 0; i < n && inl; i++)
            if (cJSON_IsObject(kids[i]) || cJSON_IsArray(kids[i])) inl = false;
        rc = trl_buf_addc(b, obj ? '{' : '[');
        for (i = 0; i < n && !rc; i++) {
            if (i) rc = trl_buf_adds(b, inl ? ", " : ",");
            if (!inl) {
                rc = rc ? rc : trl_buf_addc(b, '\n');
                for (int k = 0; k < indent + 2 && !rc; k++)
                    rc = trl_buf_addc(b, ' ');
            }
            if (obj && !rc) {
                rc = trl_buf_add_json_str(b, kids[i]->string, strlen(kids[i]->string));
                rc = rc ? rc : trl_buf_adds(b, ": ");
            }
            rc = rc ? rc : print_canon(b, kids[i], indent + 2);
        }
        if (!inl && !rc) {
            rc = trl_buf_addc(b, '\n');
            for (int k = 0; k < indent && !rc; k++)
                rc = trl_buf_addc(b, ' ');
        }
        free(kids);
        return rc ? rc : trl_buf_addc(b, obj ? '}' : ']');
    }
    if (cJSON_IsString(j)) return trl_buf_add_json_str(b, j->valuestring, strlen(j->valuestring));
    if (cJSON_IsNumber(j)) return add_number(b, j->valuedouble);
    if (cJSON_IsTrue(j)) return trl_buf_adds(b, "true");
    if (cJSON_IsFalse(j)) return trl_buf_adds(b, "false");
    return trl_buf_adds(b, "null");
}

char *trl_schema_canonical_json(const char *json, size_t n, struct trl_diag *d)
{
    cJSON *j = cJSON_ParseWithLength(json, n);
    if (!j) {
        trl_diag_set(d, TRL_EJSON, "definition is not valid JSON");
        return NULL;
    }
    struct trl_buf b;
    trl_buf_init(&b);
    int rc = print_canon(&b, j, 0);
    if (!rc) rc = trl_buf_addc(&b, '\n');
    cJSON_Delete(j);
    if (rc) {
        trl_buf_free(&b);
        trl_diag_set(d, TRL_ENOMEM, "out of memory");
        return NULL;
    }
    return trl_buf_steal(&b);
}

/* ---------------------------------------------------------------------------------------------
 * Catalog lifetime
 */
void trl_labels_free(struct trl_labels *l)
{
    free(l->en);
    free(l->zh);
    l->en = l->zh = NULL;
}

static void field_free(struct trl_field *f)
{
    free(f->name);
    trl_labels_free(&f->labels);
    trl_labels_free(&f->help);
    free(f->pattern);
    pcre2_code_free(f->re);
    if (f->has_default && f->dflt.kind == TRL_V_BYTES) free((char *)f->dflt.s);
    for (size_t i = 0; i < f->noptions; i++) {
        free(f->options[i].value);
        trl_labels_free(&f->options[i].labels);
    }
    free(f->options);
    free(f->option_values);
    free(f->ref_type);
    for (size_t i = 0; i < f->nmedia_types; i++)
        free(f->media_types[i]);
    free(f->media_types);
}

static void type_free(struct trl_type *t)
{
    if (!t) return;
    free(t->name);
    free(t->app);
    trl_labels_free(&t->labels);
    free(t->title_field);
    free(t->assignee_field);
    free(t->assignee_group_field);
    free(t->autoname);
    free(t->initial_state);
    for (size_t i = 0; i < t->nfields; i++)
        field_free(&t->fields[i]);
    free(t->fields);
    for (size_t i = 0; i < t->nperms; i++) {
        free(t->perms[i].role);
        free(t->perms[i].fields);
    }
    free(t->perms);
    free(t->definition);
    free(t);
}

struct trl_catalog *trl_catalog_ref(struct trl_catalog *c)
{
    if (c) atomic_fetch_add_explicit((_Atomic int *)&c->refs, 1, memory_order_relaxed);
    return c;
}

void trl_catalog_unref(struct trl_catalog *c)
{
    if (!c) return;
    if (atomic_fetch_sub_explicit((_Atomic int *)&c->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < c->ntypes; i++)
        type_free(c->types[i]);
    free(c->types);
    free(c);
}

const struct trl_type *trl_catalog_type(const struct trl_catalog *c, const char *name)
{
    size_t lo = 0, hi = c->ntypes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(c->types[mid]->name, name);
        if (cmp == 0) return c->types[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct trl_type *trl_catalog_type_by_id(const struct trl_catalog *c, uint32_t id)
{
    for (size_t i = 0; i < c->ntypes; i++)
        if (c->types[i]->id == id) return c->types[i];
    return NULL;
}

const struct trl_field *trl_type_field(const struct trl_type *t, const char *name, size_t n)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strlen(t->fields[i].name) == n && memcmp(t->fields[i].name, name, n) == 0)
            return &t->fields[i];
    return NULL;
}

const struct trl_field *trl_type_field_by_id(const struct trl_type *t, uint32_t id)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (t->fields[i].id == id) return &t->fields[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Field conversion and rules
 */
void trl_field_format_int(const struct trl_field *f, int64_t v, char *out, size_t n)
{
    char tmp[40];
    switch (f->type) {
    case TRL_FT_DECIMAL:
        trl_decimal_format(v, f->scale, tmp);
        break;
    case TRL_FT_DATE:
        trl_date_format((int32_t)v, tmp);
        break;
    case TRL_FT_DATETIME:
        trl_datetime_format(v, tmp);
        break;
    case TRL_FT_BOOL:
        snprintf(tmp, sizeof(tmp), "%s", v ? "true" : "false");
        break;
    default:
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    }
    snprintf(out, n, "%s", tmp);
}

static int conv_fail(struct trl_diag *d, const struct trl_field *f, const char *code,
                     const char *detail)
{
    int rc = trl_diag_add_ferr(d, f->name, code, detail);
    return rc ? rc : TRL_EVALIDATION;
}

static bool is_hex64(const char *s, size_t n)
{
    if (n != 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

int trl_field_convert(const struct trl_field *f, const struct trl_input *in,
                      struct trl_arena *arena, struct trl_value *out, struct trl_diag *d)
{
    (void)arena;
    memset(out, 0, sizeof(*out));
    if (in->kind == TRL_IN_NULL) return 0;
    const char *tname = trl_ftype_name(f->type);
    switch (f->type) {
    case TRL_FT_TEXT:
    case TRL_FT_LONGTEXT:
    case TRL_FT_USER:
        if (in->kind != TRL_IN_STRING) return conv_fail(d, f, "type", "a string");
        if (!trl_utf8_valid(in->s, in->n)) return conv_fail(d, f, "utf8", "");
        out->kind = TRL_V_BYTES;
        out->s = in->s;
        out->n = in->n;
        return 0;
    case TRL_FT_ENUM:
        if (in->kind != TRL_IN_STRING) return conv_fail(d, f, "type", "a string");
        for (size_t i = 0; i < f->noptions; i++) {
            if (strlen(f->options[i].value) == in->n &&
                memcmp(f->options[i].value, in->s, in->n) == 0) {
                out->kind = TRL_V_BYTES;
                out->s = f->options[i].value;
                out->n = in->n;
                return 0;
            }
        }
        {
            char opts[512] = "";
            size_t o = 0;
            for (size_t i = 0; i < f->noptions && o < sizeof(opts) - 1; i++)
                o += (size_t)snprintf(opts + o, sizeof(opts) - o, "%s%s", i ? ", " : "",
                                      f->options[i].value);
            return conv_fail(d, f, "enum", opts);
        }
    case TRL_FT_INT:
    case TRL_FT_REF:
        if (in->kind != TRL_IN_NUMBER) return conv_fail(d, f, "type", "an integer");
        if (trl_parse_i64(in->s, in->n, &out->i)) {
            bool digits = true;
            for (size_t i = 0; i < in->n; i++)
                if (!(in->s[i] == '-' || (in->s[i] >= '0' && in->s[i] <= '9'))) digits = false;
            return conv_fail(d, f, digits ? "range" : "type", "an integer");
        }
        if (f->type == TRL_FT_REF && out->i <= 0) return conv_fail(d, f, "type", "a record id");
        out->kind = TRL_V_INT;
        return 0;
    case TRL_FT_DECIMAL: {
        if (in->kind != TRL_IN_NUMBER && in->kind != TRL_IN_STRING)
            return conv_fail(d, f, "type", "a decimal number or string");
        const char *why = NULL;
        if (trl_decimal_parse(in->s, in->n, f->scale, &out->i, &why)) {
            char sc[16];
            snprintf(sc, sizeof(sc), "%d", f->scale);
            if (why && strcmp(why, "scale") == 0) return conv_fail(d, f, "scale", sc);
            if (why && strcmp(why, "range") == 0) return conv_fail(d, f, "range", "");
            return conv_fail(d, f, "type", "a decimal number");
        }
        out->kind = TRL_V_INT;
        return 0;
    }
    case TRL_FT_BOOL:
        if (in->kind != TRL_IN_BOOL) return conv_fail(d, f, "type", "true or false");
        out->kind = TRL_V_INT;
        out->i = in->b;
        return 0;
    case TRL_FT_DATE: {
        int32_t days;
        if (in->kind != TRL_IN_STRING || trl_date_parse(in->s, in->n, &days))
            return conv_fail(d, f, "invalid_date", "");
        out->kind = TRL_V_INT;
        out->i = days;
        return 0;
    }
    case TRL_FT_DATETIME:
        if (in->kind != TRL_IN_STRING || trl_datetime_parse(in->s, in->n, &out->i))
            return conv_fail(d, f, "invalid_datetime", "");
        out->kind = TRL_V_INT;
        return 0;
    case TRL_FT_JSON:
        out->kind = TRL_V_BYTES;
        if (in->kind == TRL_IN_STRING) {
            /* A JSON string value is stored as its JSON text. */
            struct trl_buf b;
            trl_buf_init(&b);
            if (trl_buf_add_json_str(&b, in->s, in->n)) return TRL_ENOMEM;
            out->s = trl_arena_strndup(arena, b.data, b.len);
            out->n = b.len;
            trl_buf_free(&b);
            if (!out->s) return TRL_ENOMEM;
            return 0;
        }
        if (in->kind == TRL_IN_BOOL) {
            out->s = in->b ? "true" : "false";
            out->n = strlen(out->s);
            return 0;
        }
        out->s = in->s;
        out->n = in->n;
        return 0;
    case TRL_FT_ATTACHMENT:
        if (in->kind != TRL_IN_STRING || !is_hex64(in->s, in->n))
            return conv_fail(d, f, "attachment", "");
        out->kind = TRL_V_BYTES;
        out->s = in->s;
        out->n = in->n;
        return 0;
    default:
        break;
    }
    return conv_fail(d, f, "type", tname ? tname : "?");
}

int trl_field_check(const struct trl_field *f, const struct trl_value *v, struct trl_diag *d)
{
    int n = 0;
    char tmp[64];
    if (v->kind == TRL_V_NULL) return 0;
    if (v->kind == TRL_V_BYTES && (f->type == TRL_FT_TEXT || f->type == TRL_FT_LONGTEXT)) {
        size_t chars = trl_utf8_len(v->s, v->n);
        if (f->max_length && (int64_t)chars > f->max_length) {
            snprintf(tmp, sizeof(tmp), "%lld", (long long)f->max_length);
            if (trl_diag_add_ferr(d, f->name, "max_length", tmp)) return TRL_ENOMEM;
            n++;
        }
        if (f->min_length && (int64_t)chars < f->min_length) {
            snprintf(tmp, sizeof(tmp), "%lld", (long long)f->min_length);
            if (trl_diag_add_ferr(d, f->name, "min_length", tmp)) return TRL_ENOMEM;
            n++;
        }
        if (f->re) {
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(f->re, NULL);
            if (!md) return TRL_ENOMEM;
            int m = pcre2_match(f->re, (PCRE2_SPTR)v->s, v->n, 0, 0, md, NULL);
            pcre2_match_data_free(md);
            if (m < 0) {
                if (trl_diag_add_ferr(d, f->name, "pattern", f->pattern)) return TRL_ENOMEM;
                n++;
            }
        }
    }
    if (v->kind == TRL_V_BYTES && f->type == TRL_FT_ENUM) {
        /* Options may have been removed since the value was stored. */
        bool ok = false;
        for (size_t i = 0; i < f->noptions && !ok; i++)
            ok =
                strlen(f->options[i].value) == v->n && memcmp(f->options[i].value, v->s, v->n) == 0;
        if (!ok) {
            char opts[512] = "";
            size_t o = 0;
            for (size_t i = 0; i < f->noptions && o < sizeof(opts) - 1; i++)
                o += (size_t)snprintf(opts + o, sizeof(opts) - o, "%s%s", i ? ", " : "",
                                      f->options[i].value);
            if (trl_diag_add_ferr(d, f->name, "enum", opts)) return TRL_ENOMEM;
            n++;
        }
    }
    if (v->kind == TRL_V_INT && f->type != TRL_FT_REF && f->type != TRL_FT_BOOL) {
        if (f->has_min && v->i < f->min) {
            trl_field_format_int(f, f->min, tmp, sizeof(tmp));
            if (trl_diag_add_ferr(d, f->name, "min", tmp)) return TRL_ENOMEM;
            n++;
        }
        if (f->has_max && v->i > f->max) {
            trl_field_format_int(f, f->max, tmp, sizeof(tmp));
            if (trl_diag_add_ferr(d, f->name, "max", tmp)) return TRL_ENOMEM;
            n++;
        }
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Compiling a definition
 */
void trl_def_err(struct trl_defcheck *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (trl_diag_add_ferr(c->d, path, "schema", msg)) c->rc = TRL_ENOMEM;
    c->nerr++;
}

void *trl_def_array(struct trl_defcheck *c, const cJSON *j, const char *path, size_t min,
                    size_t max, size_t elem, const char *what, size_t *n)
{
    *n = 0;
    size_t cnt = cJSON_IsArray(j) ? (size_t)cJSON_GetArraySize(j) : 0;
    if (!cJSON_IsArray(j) || cnt < min || cnt > max) {
        trl_def_err(c, path, "must be an array of %zu to %zu %s", min, max, what);
        return NULL;
    }
    void *v = calloc(cnt ? cnt : 1, elem);
    if (!v) {
        c->rc = TRL_ENOMEM;
        return NULL;
    }
    *n = cnt;
    return v;
}

void trl_def_labels(struct trl_defcheck *c, const cJSON *j, const char *path,
                    struct trl_labels *out)
{
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "en");
    const cJSON *zh = cJSON_GetObjectItemCaseSensitive(j, "zh-CN");
    if (j && !cJSON_IsObject(j))
        trl_def_err(c, path, "must be an object {\"en\": ..., \"zh-CN\": ...}");
    static const char *const keys[] = {"en", "zh-CN"};
    if (cJSON_IsObject(j)) trl_def_keys(c, j, path, keys, 2);
    if ((en && !cJSON_IsString(en)) || (zh && !cJSON_IsString(zh)))
        trl_def_err(c, path, "labels must be strings");
    out->en = strdup(cJSON_IsString(en) ? en->valuestring : "");
    out->zh = strdup(cJSON_IsString(zh) ? zh->valuestring : "");
    if (!out->en || !out->zh) c->rc = TRL_ENOMEM;
}

bool trl_def_ident(const char *s)
{
    if (!s || !*s || strlen(s) > 63) return false;
    if (!((*s >= 'a' && *s <= 'z') || *s == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
    return true;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void compile_labels(struct trl_defcheck *c, const cJSON *j, const char *path,
                           struct trl_labels *out, const char *fallback)
{
    out->en = out->zh = NULL;
    if (j && !cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object {\"en\": ..., \"zh-CN\": ...}");
    } else if (j) {
        for (const cJSON *k = j->child; k; k = k->next) {
            if (strcmp(k->string, "en") && strcmp(k->string, "zh-CN")) {
                char p[160];
                snprintf(p, sizeof(p), "%s.%s", path, k->string);
                trl_def_err(c, p, "unknown language (use en and zh-CN)");
            } else if (!cJSON_IsString(k)) {
                char p[160];
                snprintf(p, sizeof(p), "%s.%s", path, k->string);
                trl_def_err(c, p, "must be a string");
            }
        }
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "en");
        const cJSON *zh = cJSON_GetObjectItemCaseSensitive(j, "zh-CN");
        if (cJSON_IsString(en)) out->en = strdup(en->valuestring);
        if (cJSON_IsString(zh)) out->zh = strdup(zh->valuestring);
    }
    if (!out->en) out->en = dup_or_empty(fallback);
    if (!out->zh) out->zh = strdup(out->en ? out->en : "");
    if (!out->en || !out->zh) c->rc = TRL_ENOMEM;
}

static const char *field_keys[] = {
    "name",      "type",    "labels",   "help",     "required",    "unique",       "indexed",
    "read_only", "default", "scale",    "min",      "max",         "min_length",   "max_length",
    "pattern",   "options", "ref_type", "max_size", "media_types", "renamed_from", "computed",
};
static const char *type_keys[] = {
    "name",        "labels",         "description",
    "title_field", "assignee_field", "assignee_group_field",
    "autoname",    "initial_state",  "fields",
    "permissions",
};

void trl_def_keys(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                  const char *const *keys, size_t nkeys)
{
    for (const cJSON *k = j->child; k; k = k->next) {
        bool ok = false;
        for (size_t i = 0; i < nkeys && !ok; i++)
            ok = strcmp(k->string, keys[i]) == 0;
        if (!ok) {
            char p[200];
            snprintf(p, sizeof(p), "%s%s%s", path, *path ? "." : "", k->string);
            trl_def_err(c, p, "unknown key '%s'", k->string);
        }
    }
}

static bool get_bool(struct trl_defcheck *c, const cJSON *j, const char *key, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return false;
    if (!cJSON_IsBool(v)) {
        char p[200];
        snprintf(p, sizeof(p), "%s.%s", path, key);
        trl_def_err(c, p, "must be true or false");
        return false;
    }
    return cJSON_IsTrue(v);
}

/* A JSON member as input (numbers as shortest round-trip text into tmp). */
static void to_input(const cJSON *v, struct trl_input *in, char *tmp, size_t tmpn,
                     struct trl_arena *arena)
{
    memset(in, 0, sizeof(*in));
    if (cJSON_IsNull(v)) {
        in->kind = TRL_IN_NULL;
    } else if (cJSON_IsBool(v)) {
        in->kind = TRL_IN_BOOL;
        in->b = cJSON_IsTrue(v);
    } else if (cJSON_IsNumber(v)) {
        in->kind = TRL_IN_NUMBER;
        struct trl_buf b;
        trl_buf_init(&b);
        add_number(&b, v->valuedouble);
        snprintf(tmp, tmpn, "%s", b.data ? b.data : "0");
        trl_buf_free(&b);
        in->s = tmp;
        in->n = strlen(tmp);
    } else if (cJSON_IsString(v)) {
        in->kind = TRL_IN_STRING;
        in->s = v->valuestring;
        in->n = strlen(v->valuestring);
    } else {
        in->kind = TRL_IN_JSON;
        char *p = cJSON_PrintUnformatted(v);
        if (p) {
            in->s = trl_arena_strndup(arena, p, strlen(p));
            in->n = strlen(p);
            free(p);
        }
    }
}

/* min/max/default through the field's own conversion, so the units always agree. */
static bool convert_member(struct trl_defcheck *c, struct trl_field *f, const cJSON *v,
                           const char *path, struct trl_value *out, struct trl_arena *arena)
{
    struct trl_input in;
    char tmp[64];
    struct trl_diag tmpd;
    trl_diag_init(&tmpd);
    to_input(v, &in, tmp, sizeof(tmp), arena);
    int rc = trl_field_convert(f, &in, arena, out, &tmpd);
    if (rc) {
        char msg[300];
        if (tmpd.nferrs)
            trl_ferr_message(&tmpd.ferrs[0], "en", msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "invalid value");
        trl_def_err(c, path, "%s %s", f->name, msg);
        trl_diag_reset(&tmpd);
        return false;
    }
    trl_diag_reset(&tmpd);
    return true;
}

static void compile_field(struct trl_defcheck *c, const cJSON *j, const char *path,
                          struct trl_field *f, struct trl_arena *arena)
{
    char p[200];
    memset(f, 0, sizeof(*f));
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object");
        f->name = strdup("");
        compile_labels(c, NULL, path, &f->labels, "");
        compile_labels(c, NULL, path, &f->help, "");
        return;
    }
    trl_def_keys(c, j, path, field_keys, sizeof(field_keys) / sizeof(field_keys[0]));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%s.name", path);
    if (!cJSON_IsString(name) || !trl_def_ident(name->valuestring)) {
        trl_def_err(c, p,
                    "must be a lower-case identifier [a-z_][a-z0-9_]* of at most 63 characters");
        f->name = strdup("");
    } else {
        f->name = strdup(name->valuestring);
        static const char *reserved[] = {"id",         "state",      "owner",      "org",
                                         "created_at", "updated_at", "created_by", "updated_by",
                                         "name",       "version",    "type"};
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
            if (strcmp(f->name, reserved[i]) == 0)
                trl_def_err(c, p, "'%s' is a system column and cannot be a field name", f->name);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    snprintf(p, sizeof(p), "%s.type", path);
    int ft = cJSON_IsString(type) ? trl_ftype_parse(type->valuestring) : -1;
    if (ft < 0) {
        trl_def_err(c, p,
                    "must be one of text, longtext, int, decimal, bool, date, datetime, enum, ref, "
                    "user, json, attachment");
        ft = TRL_FT_TEXT;
    }
    f->type = (enum trl_ftype)ft;
    snprintf(p, sizeof(p), "%s.labels", path);
    compile_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"), p, &f->labels, f->name);
    snprintf(p, sizeof(p), "%s.help", path);
    compile_labels(c, cJSON_GetObjectItemCaseSensitive(j, "help"), p, &f->help, "");
    f->required = get_bool(c, j, "required", path);
    f->unique = get_bool(c, j, "unique", path);
    f->indexed = get_bool(c, j, "indexed", path) || f->unique || f->type == TRL_FT_ENUM ||
                 f->type == TRL_FT_REF || f->type == TRL_FT_USER || f->type == TRL_FT_ATTACHMENT;
    f->read_only = get_bool(c, j, "read_only", path);
    f->computed = get_bool(c, j, "computed", path);
    if (f->computed) {
        /* Evaluated by a hook on read, never stored: nothing to index, require or default. */
        static const char *const no[] = {"required", "unique", "indexed", "default"};
        for (size_t k = 0; k < 4; k++)
            if (cJSON_GetObjectItemCaseSensitive(j, no[k])) {
                snprintf(p, sizeof(p), "%s.%s", path, no[k]);
                trl_def_err(c, p, "a computed field is not stored: it cannot be %s", no[k]);
            }
        if (f->type == TRL_FT_ATTACHMENT) {
            snprintf(p, sizeof(p), "%s.computed", path);
            trl_def_err(c, p, "attachment fields cannot be computed");
        }
        f->read_only = true;
        f->indexed = f->unique = f->required = false;
    }
    if ((f->unique || get_bool(c, j, "indexed", path)) &&
        (f->type == TRL_FT_LONGTEXT || f->type == TRL_FT_JSON)) {
        snprintf(p, sizeof(p), "%s.indexed", path);
        trl_def_err(c, p, "%s fields cannot be indexed or unique", trl_ftype_name(f->type));
    }

    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(j, "scale");
    if (scale) {
        snprintf(p, sizeof(p), "%s.scale", path);
        if (f->type != TRL_FT_DECIMAL)
            trl_def_err(c, p, "only decimal fields have a scale");
        else if (!cJSON_IsNumber(scale) || scale->valuedouble < 0 || scale->valuedouble > 9 ||
                 scale->valuedouble != (int)scale->valuedouble)
            trl_def_err(c, p, "must be an integer from 0 to 9");
        else
            f->scale = (int)scale->valuedouble;
    } else if (f->type == TRL_FT_DECIMAL) {
        f->scale = 2;
    }

    static const char *lens[] = {"min_length", "max_length"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, lens[k]);
        if (!v) continue;
        snprintf(p, sizeof(p), "%s.%s", path, lens[k]);
        if (f->type != TRL_FT_TEXT && f->type != TRL_FT_LONGTEXT)
            trl_def_err(c, p, "only text and longtext fields have a length");
        else if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
                 v->valuedouble != (double)(int64_t)v->valuedouble)
            trl_def_err(c, p, "must be a non-negative integer");
        else if (k == 0)
            f->min_length = (int64_t)v->valuedouble;
        else
            f->max_length = (int64_t)v->valuedouble;
    }

    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "options");
    if (f->type == TRL_FT_ENUM) {
        snprintf(p, sizeof(p), "%s.options", path);
        if (!cJSON_IsArray(opts) || cJSON_GetArraySize(opts) == 0) {
            trl_def_err(c, p, "an enum needs a non-empty array of options");
        } else {
            size_t n = (size_t)cJSON_GetArraySize(opts);
            f->options = calloc(n, sizeof(*f->options));
            f->option_values = calloc(n, sizeof(*f->option_values));
            if (!f->options || !f->option_values) {
                c->rc = TRL_ENOMEM;
                return;
            }
            size_t i = 0;
            for (const cJSON *o = opts->child; o; o = o->next, i++) {
                char op[220];
                snprintf(op, sizeof(op), "%s.options[%zu]", path, i);
                struct trl_option *opt = &f->options[f->noptions];
                const cJSON *val =
                    cJSON_IsString(o) ? o : cJSON_GetObjectItemCaseSensitive(o, "value");
                if (!cJSON_IsString(val) || !*val->valuestring ||
                    !trl_utf8_valid(val->valuestring, strlen(val->valuestring))) {
                    trl_def_err(c, op,
                                "an option is a string or {\"value\": ..., \"labels\": ...}");
                    continue;
                }
                for (size_t k = 0; k < f->noptions; k++)
                    if (strcmp(f->options[k].value, val->valuestring) == 0)
                        trl_def_err(c, op, "duplicate option '%s'", val->valuestring);
                opt->value = strdup(val->valuestring);
                char lp[240];
                snprintf(lp, sizeof(lp), "%s.labels", op);
                compile_labels(
                    c, cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "labels") : NULL, lp,
                    &opt->labels, val->valuestring);
                f->option_values[f->noptions] = opt->value;
                f->noptions++;
            }
        }
    } else if (opts) {
        snprintf(p, sizeof(p), "%s.options", path);
        trl_def_err(c, p, "only enum fields have options");
    }

    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "ref_type");
    if (f->type == TRL_FT_REF) {
        snprintf(p, sizeof(p), "%s.ref_type", path);
        if (!cJSON_IsString(ref) || !trl_def_ident(ref->valuestring))
            trl_def_err(c, p, "a ref field needs the name of the referenced type");
        else
            f->ref_type = strdup(ref->valuestring);
    } else if (ref) {
        snprintf(p, sizeof(p), "%s.ref_type", path);
        trl_def_err(c, p, "only ref fields have ref_type");
    }

    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    if (pat) {
        snprintf(p, sizeof(p), "%s.pattern", path);
        if (f->type != TRL_FT_TEXT) {
            trl_def_err(c, p, "only text fields have a pattern");
        } else if (!cJSON_IsString(pat)) {
            trl_def_err(c, p, "must be a PCRE2 regular expression string");
        } else {
            int err;
            PCRE2_SIZE off;
            f->re = pcre2_compile((PCRE2_SPTR)pat->valuestring, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &off, NULL);
            if (!f->re) {
                PCRE2_UCHAR emsg[256];
                pcre2_get_error_message(err, emsg, sizeof(emsg));
                trl_def_err(c, p, "invalid regular expression at offset %zu: %s", (size_t)off,
                            (char *)emsg);
            } else {
                pcre2_jit_compile(f->re, PCRE2_JIT_COMPLETE);
                f->pattern = strdup(pat->valuestring);
            }
        }
    }

    const cJSON *msize = cJSON_GetObjectItemCaseSensitive(j, "max_size");
    const cJSON *mtypes = cJSON_GetObjectItemCaseSensitive(j, "media_types");
    if ((msize || mtypes) && f->type != TRL_FT_ATTACHMENT) {
        snprintf(p, sizeof(p), "%s.%s", path, msize ? "max_size" : "media_types");
        trl_def_err(c, p, "only attachment fields have max_size and media_types");
    } else {
        if (msize) {
            snprintf(p, sizeof(p), "%s.max_size", path);
            if (!cJSON_IsNumber(msize) || msize->valuedouble < 1)
                trl_def_err(c, p, "must be a positive number of bytes");
            else
                f->max_size = (int64_t)msize->valuedouble;
        }
        if (mtypes) {
            snprintf(p, sizeof(p), "%s.media_types", path);
            if (!cJSON_IsArray(mtypes)) {
                trl_def_err(c, p, "must be an array of media types such as \"image/png\"");
            } else {
                size_t n = (size_t)cJSON_GetArraySize(mtypes);
                f->media_types = calloc(n ? n : 1, sizeof(char *));
                if (!f->media_types) {
                    c->rc = TRL_ENOMEM;
                    return;
                }
                for (const cJSON *m = mtypes->child; m; m = m->next)
                    if (cJSON_IsString(m) && strchr(m->valuestring, '/'))
                        f->media_types[f->nmedia_types++] = strdup(m->valuestring);
                    else
                        trl_def_err(c, p, "each media type is a string such as \"image/png\"");
            }
        }
    }

    /* Bounds and default use the field's own conversion. */
    static const char *bounds[] = {"min", "max"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, bounds[k]);
        if (!v) continue;
        snprintf(p, sizeof(p), "%s.%s", path, bounds[k]);
        if (!trl_ftype_is_int(f->type) || f->type == TRL_FT_BOOL || f->type == TRL_FT_REF) {
            trl_def_err(c, p, "only int, decimal, date and datetime fields have %s", bounds[k]);
            continue;
        }
        struct trl_value bv;
        if (convert_member(c, f, v, p, &bv, arena) && bv.kind == TRL_V_INT) {
            if (k == 0)
                f->has_min = true, f->min = bv.i;
            else
                f->has_max = true, f->max = bv.i;
        }
    }
    if (f->has_min && f->has_max && f->min > f->max) {
        snprintf(p, sizeof(p), "%s.min", path);
        trl_def_err(c, p, "min is greater than max");
    }
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "default");
    if (dv && !cJSON_IsNull(dv)) {
        snprintf(p, sizeof(p), "%s.default", path);
        struct trl_value v;
        if (convert_member(c, f, dv, p, &v, arena)) {
            struct trl_diag tmpd;
            trl_diag_init(&tmpd);
            if (trl_field_check(f, &v, &tmpd) > 0) {
                char msg[300];
                trl_ferr_message(&tmpd.ferrs[0], "en", msg, sizeof(msg));
                trl_def_err(c, p, "default %s", msg);
            } else {
                f->has_default = true;
                f->dflt = v;
                if (v.kind == TRL_V_BYTES) {
                    f->dflt.s = trl_strndup(v.s, v.n);
                    if (!f->dflt.s) c->rc = TRL_ENOMEM;
                }
            }
            trl_diag_reset(&tmpd);
        }
    }
}

/* "permissions": {"<role>": {"create": "org", "read": "all", "update": "own", "delete": "none",
 *                            "fields": {"<field>": "read" | "hidden" | "write"}}} */
static enum trl_scope parse_scope(struct trl_defcheck *c, const cJSON *v, const char *path)
{
    static const char *names[] = {"none", "own", "org", "assigned", "all"};
    static const enum trl_scope bits[] = {TRL_SCOPE_NONE, TRL_SCOPE_OWN, TRL_SCOPE_ORG,
                                          TRL_SCOPE_ASSIGNED, TRL_SCOPE_ALL};
    if (!v) return TRL_SCOPE_NONE;
    for (int i = 0; i < 5 && cJSON_IsString(v); i++)
        if (strcmp(v->valuestring, names[i]) == 0) return bits[i];
    trl_def_err(c, path, "a scope is one of all, org, own, assigned, none");
    return TRL_SCOPE_NONE;
}

static void compile_perms(struct trl_defcheck *c, const cJSON *j, struct trl_type *t)
{
    if (!j) return;
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, "permissions", "must be an object of roles");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(j);
    t->perms = calloc(n ? n : 1, sizeof(*t->perms));
    if (!t->perms) {
        c->rc = TRL_ENOMEM;
        return;
    }
    for (const cJSON *r = j->child; r; r = r->next) {
        char p[160];
        snprintf(p, sizeof(p), "permissions.%s", r->string);
        if (!trl_def_ident(r->string) && strchr(r->string, '-') == NULL) {
            trl_def_err(c, p, "role names use a-z, 0-9, _ and -");
            continue;
        }
        if (!cJSON_IsObject(r)) {
            trl_def_err(c, p, "must be an object with create, read, update, delete and fields");
            continue;
        }
        static const char *keys[] = {"create", "read", "update", "delete", "fields"};
        trl_def_keys(c, r, p, keys, 5);
        struct trl_perm *pm = &t->perms[t->nperms++];
        pm->role = strdup(r->string);
        pm->fields = malloc(t->nfields ? t->nfields : 1);
        if (!pm->role || !pm->fields) {
            c->rc = TRL_ENOMEM;
            return;
        }
        char q[200];
        snprintf(q, sizeof(q), "%s.create", p);
        pm->create = parse_scope(c, cJSON_GetObjectItemCaseSensitive(r, "create"), q);
        snprintf(q, sizeof(q), "%s.read", p);
        pm->read = parse_scope(c, cJSON_GetObjectItemCaseSensitive(r, "read"), q);
        snprintf(q, sizeof(q), "%s.update", p);
        pm->update = parse_scope(c, cJSON_GetObjectItemCaseSensitive(r, "update"), q);
        snprintf(q, sizeof(q), "%s.delete", p);
        pm->del = parse_scope(c, cJSON_GetObjectItemCaseSensitive(r, "delete"), q);
        /* By default a role reads every field and writes them where it may update. */
        for (size_t i = 0; i < t->nfields; i++)
            pm->fields[i] = pm->update != TRL_SCOPE_NONE || pm->create != TRL_SCOPE_NONE
                                ? TRL_FIELD_WRITE
                                : TRL_FIELD_READ;
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(r, "fields");
        for (const cJSON *f = cJSON_IsObject(fs) ? fs->child : NULL; f; f = f->next) {
            snprintf(q, sizeof(q), "%s.fields.%s", p, f->string);
            const struct trl_field *fd = trl_type_field(t, f->string, strlen(f->string));
            if (!fd) {
                trl_def_err(c, q, "no such field");
                continue;
            }
            size_t idx = (size_t)(fd - t->fields);
            if (cJSON_IsString(f) && strcmp(f->valuestring, "hidden") == 0)
                pm->fields[idx] = TRL_FIELD_HIDDEN;
            else if (cJSON_IsString(f) && strcmp(f->valuestring, "read") == 0)
                pm->fields[idx] = TRL_FIELD_READ;
            else if (cJSON_IsString(f) && strcmp(f->valuestring, "write") == 0)
                pm->fields[idx] = TRL_FIELD_WRITE;
            else
                trl_def_err(c, q, "a field mode is one of write, read, hidden");
        }
        if (fs && !cJSON_IsObject(fs)) {
            snprintf(q, sizeof(q), "%s.fields", p);
            trl_def_err(c, q, "must be an object of field modes");
        }
    }
}

/* Bookkeeping stored beside a definition: {"id": N, "next_field": K, "fields": {name: id}}. */
struct typeinfo {
    uint32_t id;
    uint32_t next_field;
    cJSON *fields; /* name -> id (owned) */
};

static int typeinfo_load(struct trl_txn *t, const char *name, struct typeinfo *ti)
{
    char *js = NULL;
    memset(ti, 0, sizeof(*ti));
    int rc = trl_meta_get(t, "typeinfo", name, &js);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(js);
    free(js);
    if (!j) return TRL_ECORRUPT;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *nf = cJSON_GetObjectItemCaseSensitive(j, "next_field");
    cJSON *fields = cJSON_DetachItemFromObjectCaseSensitive(j, "fields");
    bool ok = cJSON_IsNumber(id) && cJSON_IsNumber(nf) && cJSON_IsObject(fields);
    if (ok) {
        ti->id = (uint32_t)id->valuedouble;
        ti->next_field = (uint32_t)nf->valuedouble;
        ti->fields = fields;
    }
    cJSON_Delete(j);
    if (!ok) {
        cJSON_Delete(fields);
        return TRL_ECORRUPT;
    }
    return 0;
}

static int typeinfo_store(struct trl_txn *t, const char *name, const struct typeinfo *ti)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddNumberToObject(j, "id", ti->id);
    cJSON_AddNumberToObject(j, "next_field", ti->next_field);
    cJSON_AddItemReferenceToObject(j, "fields", ti->fields);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return TRL_ENOMEM;
    int rc = trl_meta_put(t, "typeinfo", name, s, strlen(s));
    free(s);
    return rc;
}

/* Compiles def into *out using the ids of ti (read-only: ids must already exist). */
static int compile_type(const char *name, const char *def, size_t n, const char *app,
                        const struct typeinfo *ti, struct trl_type **out, struct trl_diag *d)
{
    struct trl_defcheck c = {.d = d};
    struct trl_arena arena;
    trl_arena_init(&arena);
    cJSON *j = cJSON_ParseWithLength(def, n);
    struct trl_type *t = calloc(1, sizeof(*t));
    if (!t) {
        cJSON_Delete(j);
        return TRL_ENOMEM;
    }
    t->name = strdup(name);
    t->app = strdup(app ? app : "");
    t->id = ti ? ti->id : 0;
    if (!j || !cJSON_IsObject(j)) {
        trl_def_err(&c, "", "a type definition is a JSON object");
        goto done;
    }
    trl_def_keys(&c, j, "", type_keys, sizeof(type_keys) / sizeof(type_keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(nm) || strcmp(nm->valuestring, name) != 0)
        trl_def_err(&c, "name", "must be \"%s\" (the type's name)", name);
    if (!trl_def_ident(name))
        trl_def_err(&c, "name", "must be a lower-case identifier [a-z_][a-z0-9_]*");
    compile_labels(&c, cJSON_GetObjectItemCaseSensitive(j, "labels"), "labels", &t->labels, name);
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(j, "autoname");
    if (an) {
        if (!cJSON_IsString(an) || !strstr(an->valuestring, "{#"))
            trl_def_err(&c, "autoname",
                        "must be a pattern with a counter, e.g. \"MR-{YYYY}-{#####}\"");
        else
            t->autoname = strdup(an->valuestring);
    }
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(j, "initial_state");
    if (is && (!cJSON_IsString(is) || !trl_def_ident(is->valuestring)))
        trl_def_err(&c, "initial_state", "must be a state name");
    t->initial_state = strdup(cJSON_IsString(is) ? is->valuestring : "");
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(j, "fields");
    if (!cJSON_IsArray(fields)) {
        trl_def_err(&c, "fields", "must be an array of field definitions");
        goto done;
    }
    size_t nf = (size_t)cJSON_GetArraySize(fields);
    if (nf > 500) trl_def_err(&c, "fields", "at most 500 fields per type");
    t->fields = calloc(nf ? nf : 1, sizeof(*t->fields));
    if (!t->fields) {
        c.rc = TRL_ENOMEM;
        goto done;
    }
    size_t i = 0;
    for (const cJSON *f = fields->child; f; f = f->next, i++) {
        char path[64];
        snprintf(path, sizeof(path), "fields[%zu]", i);
        struct trl_field *fd = &t->fields[t->nfields++];
        compile_field(&c, f, path, fd, &arena);
        if (!fd->name) {
            c.rc = TRL_ENOMEM;
            continue;
        }
        for (size_t k = 0; k + 1 < t->nfields; k++)
            if (*fd->name && strcmp(t->fields[k].name, fd->name) == 0) {
                char p[80];
                snprintf(p, sizeof(p), "%s.name", path);
                trl_def_err(&c, p, "duplicate field '%s'", fd->name);
            }
        if (ti && *fd->name) {
            const cJSON *idj = cJSON_GetObjectItemCaseSensitive(ti->fields, fd->name);
            fd->id = cJSON_IsNumber(idj) ? (uint32_t)idj->valuedouble : 0;
        }
    }
    /* A rename takes the old field's place: the old name cannot stay as another field. */
    i = 0;
    for (const cJSON *f = fields->child; f; f = f->next, i++) {
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(f, "renamed_from");
        if (!rf) continue;
        char p[80];
        snprintf(p, sizeof(p), "fields[%zu].renamed_from", i);
        if (!cJSON_IsString(rf) || !trl_def_ident(rf->valuestring)) {
            trl_def_err(&c, p, "must be the field's previous name");
            continue;
        }
        if (i < t->nfields && strcmp(rf->valuestring, t->fields[i].name) == 0) continue;
        if (trl_type_field(t, rf->valuestring, strlen(rf->valuestring)))
            trl_def_err(&c, p, "'%s' is still a field of this type; a renamed field replaces it",
                        rf->valuestring);
    }
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(j, "title_field");
    if (tf) {
        if (!cJSON_IsString(tf) || !trl_type_field(t, tf->valuestring, strlen(tf->valuestring)))
            trl_def_err(&c, "title_field", "must name one of the type's fields");
        else
            t->title_field = strdup(tf->valuestring);
    }
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(j, "assignee_field");
    if (af) {
        const struct trl_field *f =
            cJSON_IsString(af) ? trl_type_field(t, af->valuestring, strlen(af->valuestring)) : NULL;
        if (!f || (f->type != TRL_FT_TEXT && f->type != TRL_FT_USER))
            trl_def_err(&c, "assignee_field", "must name a text or user field of the type");
        else if (!(t->assignee_field = strdup(af->valuestring)))
            c.rc = TRL_ENOMEM;
    }
    const cJSON *gf = cJSON_GetObjectItemCaseSensitive(j, "assignee_group_field");
    if (gf) {
        const struct trl_field *f =
            cJSON_IsString(gf) ? trl_type_field(t, gf->valuestring, strlen(gf->valuestring)) : NULL;
        if (!f || f->type != TRL_FT_TEXT)
            trl_def_err(&c, "assignee_group_field", "must name a text field of the type");
        else if (!(t->assignee_group_field = strdup(gf->valuestring)))
            c.rc = TRL_ENOMEM;
    }
    compile_perms(&c, cJSON_GetObjectItemCaseSensitive(j, "permissions"), t);
    t->definition = trl_schema_canonical_json(def, n, d);
done:
    cJSON_Delete(j);
    trl_arena_free(&arena);
    if (c.rc || c.nerr || !t->definition) {
        type_free(t);
        if (c.rc) return c.rc;
        if (!d->code || d->code == TRL_EJSON)
            trl_diag_set(d, TRL_EVALIDATION, "type definition '%s' is invalid", name);
        trl_diag_zh(d, "类型定义“%s”无效", name);
        return TRL_EVALIDATION;
    }
    *out = t;
    return 0;
}

static int type_cmp(const void *a, const void *b)
{
    return strcmp((*(struct trl_type *const *)a)->name, (*(struct trl_type *const *)b)->name);
}

struct load_ctx {
    struct trl_txn *t;
    struct trl_catalog *cat;
    size_t cap;
    struct trl_diag *d;
};

static int load_one(void *ud, const char *name, const char *json, size_t n)
{
    struct load_ctx *lc = ud;
    struct typeinfo ti;
    int rc = typeinfo_load(lc->t, name, &ti);
    if (rc) {
        trl_diag_set(lc->d, TRL_ECORRUPT, "type '%s' has no bookkeeping", name);
        return TRL_ECORRUPT;
    }
    char *app = NULL;
    trl_meta_get(lc->t, "typeapp", name, &app);
    struct trl_type *ty = NULL;
    rc = compile_type(name, json, n, app ? app : "", &ti, &ty, lc->d);
    free(app);
    cJSON_Delete(ti.fields);
    if (rc) return rc;
    if (lc->cat->ntypes == lc->cap) {
        size_t nc = lc->cap ? lc->cap * 2 : 16;
        struct trl_type **nt = realloc(lc->cat->types, nc * sizeof(*nt));
        if (!nt) {
            type_free(ty);
            return TRL_ENOMEM;
        }
        lc->cat->types = nt;
        lc->cap = nc;
    }
    lc->cat->types[lc->cat->ntypes++] = ty;
    return 0;
}

int trl_catalog_load(struct trl_txn *t, struct trl_catalog **out, struct trl_diag *d)
{
    struct trl_catalog *c = calloc(1, sizeof(*c));
    if (!c) return TRL_ENOMEM;
    c->refs = 1;
    struct load_ctx lc = {.t = t, .cat = c, .d = d};
    int rc = trl_txn_seq_get(t, "schema_version", &c->version);
    if (!rc) rc = trl_meta_each(t, "type", load_one, &lc);
    if (rc) {
        trl_catalog_unref(c);
        return rc;
    }
    if (c->ntypes > 1) qsort(c->types, c->ntypes, sizeof(*c->types), type_cmp);
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Storing definitions (schema evolution)
 */
/* Whether the type has at least one record. */
static int type_has_records(struct trl_txn *t, uint32_t type_id, bool *has)
{
    struct trl_cursor *c = NULL;
    unsigned char k[4];
    trl_put_u32be(k, type_id);
    int rc = trl_cursor_open(t, TRL_DB_REC, &c);
    if (rc) return rc;
    rc = trl_cursor_seek(c, k, 4);
    *has = false;
    if (rc == 0) {
        struct trl_slice key;
        trl_cursor_get(c, &key, NULL);
        *has = key.n >= 4 && memcmp(key.p, k, 4) == 0;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

/* Deletes every key of db starting with prefix[0..pn). */
static int drop_prefix(struct trl_txn *t, enum trl_db db, const unsigned char *prefix, size_t pn)
{
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, db, &c);
    if (rc) return rc;
    for (;;) {
        rc = trl_cursor_seek(c, prefix, pn);
        if (rc) break;
        struct trl_slice key;
        trl_cursor_get(c, &key, NULL);
        if (key.n < pn || memcmp(key.p, prefix, pn) != 0) break;
        unsigned char kb[512];
        if (key.n > sizeof(kb)) {
            rc = TRL_ECORRUPT;
            break;
        }
        memcpy(kb, key.p, key.n);
        if ((rc = trl_txn_del(t, db, kb, key.n))) break;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------------------------------------
 * Index and counter keys (layouts in record.h), shared by record writes and index builds here.
 */
int trl_schema_idx_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v, uint64_t rid)
{
    trl_buf_clear(b);
    if (trl_buf_add_u32be(b, iid) || trl_key_add_value(b, v) || trl_buf_add_u64be(b, rid))
        return TRL_ENOMEM;
    return 0;
}

int trl_schema_uniq_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v)
{
    trl_buf_clear(b);
    if (trl_buf_add_u32be(b, iid | TRL_UNIQUE_BIT) || trl_key_add_value(b, v)) return TRL_ENOMEM;
    return 0;
}

int trl_schema_cnt_key(struct trl_buf *b, uint32_t iid, const struct trl_value *v)
{
    trl_buf_clear(b);
    if (trl_buf_addc(b, 'c') || trl_buf_add_u32be(b, iid) || trl_key_add_value(b, v))
        return TRL_ENOMEM;
    return 0;
}

int trl_schema_cnt_total_key(struct trl_buf *b, uint32_t type_id)
{
    trl_buf_clear(b);
    if (trl_buf_addc(b, 't') || trl_buf_add_u32be(b, type_id)) return TRL_ENOMEM;
    return 0;
}

int trl_schema_org_total_key(struct trl_buf *b, uint32_t type_id, const struct trl_value *org)
{
    trl_buf_clear(b);
    if (trl_buf_addc(b, 'p') || trl_buf_add_u32be(b, type_id) || trl_key_add_value(b, org))
        return TRL_ENOMEM;
    return 0;
}

/* ('q', type): the one layout of the pending mark's key. */
static void pending_key(unsigned char k[5], uint32_t type_id)
{
    k[0] = 'q';
    trl_put_u32be(k + 1, type_id);
}

int trl_schema_pending_key(struct trl_buf *b, uint32_t type_id)
{
    unsigned char k[5];
    pending_key(k, type_id);
    trl_buf_clear(b);
    return trl_buf_add(b, k, 5);
}

int trl_schema_pending_get(struct trl_txn *t, uint32_t type_id, uint64_t *from)
{
    unsigned char k[5];
    pending_key(k, type_id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_CNT, k, 5, &v);
    *from = 0;
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v.n != 8) return TRL_ECORRUPT;
    *from = trl_get_u64be(v.p);
    return 0;
}

int trl_schema_pending_types(struct trl_txn *t, uint32_t *ids, size_t cap, size_t *n)
{
    struct trl_cursor *c;
    *n = 0;
    int rc = trl_cursor_open(t, TRL_DB_CNT, &c);
    if (rc) return rc;
    int mv;
    for (mv = trl_cursor_seek(c, "q", 1); mv == 0 && *n < cap; mv = trl_cursor_next(c)) {
        struct trl_slice key;
        trl_cursor_get(c, &key, NULL);
        if (key.n != 5 || ((const char *)key.p)[0] != 'q') break;
        ids[(*n)++] = trl_get_u32be(key.p + 1);
    }
    trl_cursor_close(c);
    return mv && mv != TRL_ENOTFOUND ? mv : 0;
}

int trl_schema_counter_get(struct trl_txn *t, const struct trl_buf *key, uint64_t *n)
{
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_CNT, key->data, key->len, &v);
    *n = 0;
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v.n != 8) return TRL_ECORRUPT;
    *n = trl_get_u64be(v.p);
    return 0;
}

int trl_schema_counter_add(struct trl_txn *t, const struct trl_buf *key, int64_t delta)
{
    uint64_t n;
    int rc = trl_schema_counter_get(t, key, &n);
    if (rc) return rc;
    n = (uint64_t)((int64_t)n + delta);
    if (n == 0) {
        rc = trl_txn_del(t, TRL_DB_CNT, key->data, key->len);
        return rc == TRL_ENOTFOUND ? 0 : rc;
    }
    unsigned char b[8];
    trl_put_u64be(b, n);
    return trl_txn_put(t, TRL_DB_CNT, key->data, key->len, b, 8, 0);
}

int trl_schema_org_cnt_key(struct trl_buf *b, uint32_t iid, const struct trl_value *org,
                           const struct trl_value *v)
{
    trl_buf_clear(b);
    if (trl_buf_addc(b, 'o') || trl_buf_add_u32be(b, iid) || trl_key_add_value(b, org) ||
        trl_key_add_value(b, v))
        return TRL_ENOMEM;
    return 0;
}

/* Deletes every idx entry whose key starts with the u32 prefix, and its value counters (also
 * the per-org ones). */
static int drop_index(struct trl_txn *t, uint32_t iid)
{
    unsigned char cp[5] = {'c'}, op[5] = {'o'};
    trl_put_u32be(cp + 1, iid);
    trl_put_u32be(op + 1, iid);
    int rc = drop_prefix(t, TRL_DB_CNT, cp, 5);
    if (!rc) rc = drop_prefix(t, TRL_DB_CNT, op, 5);
    return rc ? rc : drop_prefix(t, TRL_DB_IDX, cp + 1, 4);
}

/* Builds the index (and unique index) of field f over existing records of type ty. */
static int build_index(struct trl_txn *t, const struct trl_type *ty, const struct trl_field *f,
                       bool plain, bool unique, struct trl_diag *d)
{
    struct trl_cursor *c = NULL;
    struct trl_buf kb;
    trl_buf_init(&kb);
    unsigned char pre[4];
    trl_put_u32be(pre, ty->id);
    uint64_t pending = 0; /* records from here get their plain entries with their batch */
    int rc = trl_schema_pending_get(t, ty->id, &pending);
    if (!rc) rc = trl_cursor_open(t, TRL_DB_REC, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, pre, 4); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n != 12 || memcmp(k.p, pre, 4) != 0) break;
        uint64_t rid = trl_get_u64be((const unsigned char *)k.p + 4);
        struct trl_record r;
        if ((rc = trl_record_decode(v.p, v.n, &r))) break;
        const struct trl_value *fv = trl_record_get(&r, f->id);
        struct trl_value nullv = {0};
        if (!fv) fv = f->has_default ? &f->dflt : &nullv;
        if (plain) {
            rc = trl_schema_idx_key(&kb, trl_index_id(ty, f->id), fv, rid);
            if (!rc && !(pending && rid >= pending))
                rc = trl_txn_put(t, TRL_DB_IDX, kb.data, kb.len, "", 0, 0);
            bool counted = f->type == TRL_FT_ENUM || f->type == TRL_FT_REF;
            if (!rc && counted) rc = trl_schema_cnt_key(&kb, trl_index_id(ty, f->id), fv);
            if (!rc && counted) rc = trl_schema_counter_add(t, &kb, 1);
            if (!rc && counted && r.org.kind == TRL_V_BYTES && r.org.n) {
                rc = trl_schema_org_cnt_key(&kb, trl_index_id(ty, f->id), &r.org, fv);
                if (!rc) rc = trl_schema_counter_add(t, &kb, 1);
            }
        }
        if (!rc && unique && fv->kind != TRL_V_NULL) {
            unsigned char idb[8];
            trl_put_u64be(idb, rid);
            rc = trl_schema_uniq_key(&kb, trl_index_id(ty, f->id), fv);
            if (!rc) rc = trl_txn_put(t, TRL_DB_IDX, kb.data, kb.len, idb, 8, TRL_PUT_NOOVERWRITE);
            if (rc == TRL_EEXIST) {
                trl_diag_set(d, TRL_ECONFLICT,
                             "field '%s' cannot become unique: existing records share a value",
                             f->name);
                trl_diag_zh(d, "字段“%s”无法设为唯一:已有记录的值重复", f->name);
                trl_diag_field(d, f->name);
                rc = TRL_ECONFLICT;
            }
        }
        trl_record_free(&r);
        if (rc) break;
    }
    trl_cursor_close(c);
    trl_buf_free(&kb);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

static const struct trl_field *old_field_by_id(const struct trl_type *t, uint32_t id)
{
    return t ? trl_type_field_by_id(t, id) : NULL;
}

int trl_schema_put_type(struct trl_txn *t, const char *name, const char *def, size_t n,
                        const char *app, bool *changed, struct trl_diag *d)
{
    struct typeinfo ti = {0};
    struct trl_type *old = NULL, *nt = NULL;
    cJSON *j = NULL;
    int rc;
    *changed = false;
    bool exists = false;

    char *keep_app = NULL;
    if (!app) {
        if (trl_meta_get(t, "typeapp", name, &keep_app) != 0) keep_app = NULL;
        app = keep_app ? keep_app : "";
    }
    rc = typeinfo_load(t, name, &ti);
    if (rc == 0) {
        exists = true;
        char *olddef = NULL;
        if ((rc = trl_meta_get(t, "type", name, &olddef))) goto out;
        char *oldapp = NULL;
        trl_meta_get(t, "typeapp", name, &oldapp);
        struct trl_diag od;
        trl_diag_init(&od);
        rc = compile_type(name, olddef, strlen(olddef), oldapp ? oldapp : "", &ti, &old, &od);
        trl_diag_reset(&od);
        free(oldapp);
        free(olddef);
        if (rc) goto out;
    } else if (rc == TRL_ENOTFOUND) {
        uint64_t id;
        if ((rc = trl_txn_seq_next(t, "type_id", &id))) goto out;
        if (id >= 0xFFFF) {
            rc = trl_diag_set(d, TRL_ECONFLICT, "too many types");
            goto out;
        }
        ti.id = (uint32_t)id;
        ti.next_field = 1;
        ti.fields = cJSON_CreateObject();
        if (!ti.fields) {
            rc = TRL_ENOMEM;
            goto out;
        }
    } else {
        goto out;
    }

    /* Assign ids: same name keeps its id, renamed_from takes the old name's id, else new. */
    j = cJSON_ParseWithLength(def, n);
    if (!j) {
        rc = trl_diag_set(d, TRL_EJSON, "type definition '%s' is not valid JSON", name);
        goto out;
    }
    cJSON *newmap = cJSON_CreateObject();
    if (!newmap) {
        rc = TRL_ENOMEM;
        goto out;
    }
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(j, "fields");
    size_t idx = 0;
    for (const cJSON *f = cJSON_IsArray(fields) ? fields->child : NULL; f; f = f->next, idx++) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(f, "renamed_from");
        if (!cJSON_IsString(fn) || cJSON_GetObjectItemCaseSensitive(newmap, fn->valuestring))
            continue; /* compile reports it */
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(ti.fields, fn->valuestring);
        if (!idj && cJSON_IsString(rf))
            idj = cJSON_GetObjectItemCaseSensitive(ti.fields, rf->valuestring);
        uint32_t fid;
        if (cJSON_IsNumber(idj)) {
            fid = (uint32_t)idj->valuedouble;
        } else {
            if (ti.next_field >= 0x7FFF) {
                cJSON_Delete(newmap);
                rc = trl_diag_set(d, TRL_ECONFLICT, "too many field changes on type %s", name);
                goto out;
            }
            fid = ti.next_field++;
        }
        cJSON_AddNumberToObject(newmap, fn->valuestring, fid);
    }
    cJSON *oldmap = ti.fields;
    ti.fields = newmap;
    rc = compile_type(name, def, n, app, &ti, &nt, d);
    if (rc) {
        ti.fields = oldmap; /* freed below */
        cJSON_Delete(newmap);
        goto out;
    }
    cJSON_Delete(oldmap);

    /* Incompatible changes against the stored data. */
    for (size_t i = 0; i < nt->nfields; i++) {
        const struct trl_field *nf = &nt->fields[i];
        const struct trl_field *of = old_field_by_id(old, nf->id);
        if (of && of->type != nf->type) {
            bool has = false;
            if ((rc = type_has_records(t, nt->id, &has))) goto out;
            bool compatible = (of->type == TRL_FT_TEXT && nf->type == TRL_FT_LONGTEXT) ||
                              (of->type == TRL_FT_LONGTEXT && nf->type == TRL_FT_TEXT);
            if (has && !compatible) {
                char p[64];
                snprintf(p, sizeof(p), "fields[%zu].type", i);
                trl_diag_add_ferr(d, p, "schema", "changing a field's type is not supported");
                rc = trl_diag_set(d, TRL_ECONFLICT,
                                  "field '%s' of type '%s' cannot change from %s to %s while "
                                  "records exist; add a new field instead",
                                  nf->name, name, trl_ftype_name(of->type),
                                  trl_ftype_name(nf->type));
                trl_diag_zh(d, "已有记录时,类型“%s”的字段“%s”不能从 %s 改为 %s;请新增字段", name,
                            nf->name, trl_ftype_name(of->type), trl_ftype_name(nf->type));
                trl_diag_field(d, nf->name);
                goto out;
            }
        }
        if (of && of->type == TRL_FT_DECIMAL && nf->type == TRL_FT_DECIMAL &&
            of->scale != nf->scale) {
            bool has = false;
            if ((rc = type_has_records(t, nt->id, &has))) goto out;
            if (has) {
                rc = trl_diag_set(d, TRL_ECONFLICT,
                                  "field '%s': the scale of a decimal cannot change while records "
                                  "exist",
                                  nf->name);
                trl_diag_zh(d, "已有记录时,字段“%s”的小数位数不能修改", nf->name);
                trl_diag_field(d, nf->name);
                goto out;
            }
        }
    }

    /* Indexes: drop the ones no longer wanted, build the new ones. */
    if (old) {
        for (size_t i = 0; i < old->nfields; i++) {
            const struct trl_field *of = &old->fields[i];
            const struct trl_field *nf = trl_type_field_by_id(nt, of->id);
            bool keep_plain = nf && nf->indexed && nf->type == of->type;
            bool keep_unique = nf && nf->unique && nf->type == of->type;
            if (of->indexed && !keep_plain && (rc = drop_index(t, trl_index_id(old, of->id))))
                goto out;
            if (of->unique && !keep_unique &&
                (rc = drop_index(t, trl_index_id(old, of->id) | TRL_UNIQUE_BIT)))
                goto out;
        }
    }
    for (size_t i = 0; i < nt->nfields; i++) {
        const struct trl_field *nf = &nt->fields[i];
        const struct trl_field *of = old_field_by_id(old, nf->id);
        bool had_plain = of && of->indexed && of->type == nf->type;
        bool had_unique = of && of->unique && of->type == nf->type;
        /* A new default changes what absent values index as: rebuild. */
        bool dflt_changed =
            of &&
            (of->has_default != nf->has_default ||
             (nf->has_default && (of->dflt.kind != nf->dflt.kind || of->dflt.i != nf->dflt.i ||
                                  of->dflt.n != nf->dflt.n ||
                                  (of->dflt.n && memcmp(of->dflt.s, nf->dflt.s, nf->dflt.n)))));
        if (dflt_changed && had_plain) {
            if ((rc = drop_index(t, trl_index_id(nt, nf->id)))) goto out;
            had_plain = false;
        }
        if (dflt_changed && had_unique) {
            if ((rc = drop_index(t, trl_index_id(nt, nf->id) | TRL_UNIQUE_BIT))) goto out;
            had_unique = false;
        }
        bool plain = nf->indexed && !had_plain;
        bool uniq = nf->unique && !had_unique;
        if ((plain || uniq) && exists && (rc = build_index(t, nt, nf, plain, uniq, d))) goto out;
    }

    *changed =
        !old || strcmp(old->definition, nt->definition) != 0 || strcmp(old->app, nt->app) != 0;
    if ((rc = trl_meta_put(t, "type", name, nt->definition, strlen(nt->definition)))) goto out;
    if ((rc = trl_meta_put(t, "typeapp", name, app ? app : "", strlen(app ? app : "")))) goto out;
    if ((rc = typeinfo_store(t, name, &ti))) goto out;
    if (*changed) {
        uint64_t ver;
        rc = trl_txn_seq_next(t, "schema_version", &ver);
    }
out:
    if (rc && !d->code) trl_diag_set(d, rc, "cannot store type '%s'", name);
    free(keep_app);
    cJSON_Delete(j);
    cJSON_Delete(ti.fields);
    type_free(old);
    type_free(nt);
    return rc;
}

int trl_schema_check_type(const char *name, const char *def, size_t n, struct trl_diag *d)
{
    struct trl_type *ty = NULL;
    int rc = compile_type(name, def, n, "", NULL, &ty, d);
    type_free(ty);
    return rc;
}

int trl_schema_delete_type(struct trl_txn *t, const char *name, struct trl_diag *d)
{
    struct typeinfo ti;
    int rc = typeinfo_load(t, name, &ti);
    if (rc == TRL_ENOTFOUND) return trl_diag_set(d, TRL_ENOTFOUND, "no type '%s'", name);
    if (rc) return rc;
    bool has = false;
    rc = type_has_records(t, ti.id, &has);
    if (!rc && has) {
        rc = trl_diag_set(d, TRL_ECONFLICT, "type '%s' still has records; delete them first", name);
        trl_diag_zh(d, "类型“%s”仍有记录,请先删除记录", name);
    }
    if (!rc) {
        /* Drop every index of the type (their ids share the type's 16-bit prefix). */
        unsigned char pre[2] = {(unsigned char)(ti.id >> 8), (unsigned char)ti.id};
        rc = drop_prefix(t, TRL_DB_IDX, pre, 2);
    }
    if (!rc) {
        unsigned char q[5];
        pending_key(q, ti.id);
        rc = trl_txn_del(t, TRL_DB_CNT, q, 5);
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    if (!rc) rc = trl_meta_del(t, "type", name);
    if (!rc) rc = trl_meta_del(t, "typeinfo", name);
    if (!rc) {
        rc = trl_meta_del(t, "typeapp", name);
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    if (!rc) {
        uint64_t ver;
        rc = trl_txn_seq_next(t, "schema_version", &ver);
    }
    cJSON_Delete(ti.fields);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Autonaming: {YYYY} {YY} {MM} {DD} and {###...} (zero-padded counter)
 */
static void expand(const struct trl_type *t, int64_t ms, uint64_t seq, bool with_seq, char *out,
                   size_t outn)
{
    int64_t y;
    unsigned m, dd;
    int64_t days = ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000;
    trl_civil_from_days((int32_t)days, &y, &m, &dd);
    size_t o = 0;
    const char *p = t->autoname ? t->autoname : "{#####}";
    while (*p && o + 1 < outn) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            if (e) {
                size_t tl = (size_t)(e - p - 1);
                char tmp[32] = "";
                if (tl == 4 && strncmp(p + 1, "YYYY", 4) == 0)
                    snprintf(tmp, sizeof(tmp), "%04d", (int)y);
                else if (tl == 2 && strncmp(p + 1, "YY", 2) == 0)
                    snprintf(tmp, sizeof(tmp), "%02d", (int)(y % 100));
                else if (tl == 2 && strncmp(p + 1, "MM", 2) == 0)
                    snprintf(tmp, sizeof(tmp), "%02u", m);
                else if (tl == 2 && strncmp(p + 1, "DD", 2) == 0)
                    snprintf(tmp, sizeof(tmp), "%02u", dd);
                else if (tl >= 1 && p[1] == '#') {
                    if (with_seq)
                        snprintf(tmp, sizeof(tmp), "%0*llu", (int)tl, (unsigned long long)seq);
                    else
                        snprintf(tmp, sizeof(tmp), "#");
                } else {
                    snprintf(tmp, sizeof(tmp), "%.*s", (int)(tl + 2 < 31 ? tl + 2 : 31), p);
                }
                o += (size_t)snprintf(out + o, outn - o, "%s", tmp);
                if (o >= outn) o = outn - 1;
                p = e + 1;
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o] = 0;
}

void trl_schema_autoname(const struct trl_type *t, int64_t ms, uint64_t seq, char *out, size_t outn)
{
    expand(t, ms, seq, true, out, outn);
}

void trl_schema_autoname_key(const struct trl_type *t, int64_t ms, char *key, size_t keyn)
{
    char tmp[200];
    expand(t, ms, 0, false, tmp, sizeof(tmp));
    snprintf(key, keyn, "name:%u:%s", t->id, tmp);
}
