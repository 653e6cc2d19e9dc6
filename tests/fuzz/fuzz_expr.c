/*
 * fuzz_expr.c — libFuzzer target for the expression language.
 *
 * Parses the input against a marketing_request-like schema. A failed parse must leave no
 * expression and an English message that is valid UTF-8 and names a column; a successful one
 * must plan and evaluate without error on a fixed record, and no plan predicate may exclude
 * the record when the whole expression accepts it.
 */
#include "expr/expr.h"

#include <stdlib.h>
#include <string.h>

enum {
    C_TITLE,
    C_REGION,
    C_BUDGET,
    C_START,
    C_CREATED,
    C_UPDATED,
    C_STATE,
    C_OWNER,
    C_ORG,
    C_COUNT,
    C_ACTIVE,
    C_REF,
    C_NOTES,
    C_PARTNER,
    NCOLS
};

static const char *const region_opts[] = {"north", "south", "east", "west"};

static const struct {
    const char *name;
    enum trl_ftype type;
    int scale;
    bool indexed;
} cols[NCOLS] = {
    [C_TITLE] = {"title", TRL_FT_TEXT, 0, false},
    [C_REGION] = {"region", TRL_FT_ENUM, 0, true},
    [C_BUDGET] = {"budget", TRL_FT_DECIMAL, 2, true},
    [C_START] = {"start_date", TRL_FT_DATE, 0, true},
    [C_CREATED] = {"created_at", TRL_FT_DATETIME, 0, true},
    [C_UPDATED] = {"updated_at", TRL_FT_DATETIME, 0, false},
    [C_STATE] = {"state", TRL_FT_TEXT, 0, true},
    [C_OWNER] = {"owner", TRL_FT_USER, 0, true},
    [C_ORG] = {"org", TRL_FT_TEXT, 0, true},
    [C_COUNT] = {"count", TRL_FT_INT, 0, true},
    [C_ACTIVE] = {"active", TRL_FT_BOOL, 0, true},
    [C_REF] = {"ref_id", TRL_FT_REF, 0, true},
    [C_NOTES] = {"notes", TRL_FT_LONGTEXT, 0, false},
    [C_PARTNER] = {"partner", TRL_FT_TEXT, 0, true},
};

static int resolve(void *ud, const char *name, size_t n, struct trl_expr_field *out)
{
    (void)ud;
    if (n == 6 && memcmp(name, "secret", 6) == 0) return TRL_EFORBIDDEN;
    for (int i = 0; i < NCOLS; i++) {
        if (strlen(cols[i].name) == n && memcmp(cols[i].name, name, n) == 0) {
            out->id = i;
            out->type = cols[i].type;
            out->scale = cols[i].scale;
            out->indexed = cols[i].indexed;
            out->options = cols[i].type == TRL_FT_ENUM ? region_opts : NULL;
            out->noptions = cols[i].type == TRL_FT_ENUM ? 4 : 0;
            return 0;
        }
    }
    return TRL_ENOTFOUND;
}

static int get(void *ud, int id, struct trl_value *out)
{
    const struct trl_value *rec = ud;
    if (id < 0 || id >= NCOLS) abort();
    *out = rec[id];
    return 0;
}

static struct trl_value str(const char *s)
{
    return (struct trl_value){.kind = TRL_V_BYTES, .s = s, .n = strlen(s)};
}

static struct trl_value num(int64_t i)
{
    return (struct trl_value){.kind = TRL_V_INT, .i = i};
}

static bool pred_holds(const struct trl_expr_pred *p, const struct trl_value *v)
{
    switch (p->kind) {
    case TRL_PRED_EQ:
    case TRL_PRED_IN:
        for (size_t i = 0; i < p->nvals; i++) {
            if (p->vals[i].kind == TRL_V_NULL) {
                if (v->kind == TRL_V_NULL) return true;
            } else if (v->kind != TRL_V_NULL && trl_expr_value_cmp(p->type, v, &p->vals[i]) == 0) {
                return true;
            }
        }
        return false;
    case TRL_PRED_RANGE:
        if (v->kind == TRL_V_NULL || (!p->has_lo && !p->has_hi)) return false;
        if (p->has_lo) {
            int c = trl_expr_value_cmp(p->type, v, &p->lo);
            if (c < 0 || (c == 0 && !p->lo_incl)) return false;
        }
        if (p->has_hi) {
            int c = trl_expr_value_cmp(p->type, v, &p->hi);
            if (c > 0 || (c == 0 && !p->hi_incl)) return false;
        }
        return true;
    case TRL_PRED_PREFIX:
        return p->nvals == 1 && v->kind == TRL_V_BYTES && v->n >= p->vals[0].n &&
               memcmp(v->s, p->vals[0].s, p->vals[0].n) == 0;
    }
    return false;
}

static void check_env(const struct trl_expr *e, const struct trl_value *rec,
                      const struct trl_expr_env *env)
{
    struct trl_diag d;
    struct trl_expr_plan plan;
    bool res = false;
    trl_diag_init(&d);
    if (trl_expr_plan_build(e, env, &plan) != 0) abort();
    if (trl_expr_eval(e, get, (void *)rec, env, &res, &d) != 0) abort();
    for (size_t i = 0; res && i < plan.npreds; i++) {
        const struct trl_expr_pred *p = &plan.preds[i];
        if (p->id < 0 || p->id >= NCOLS || p->type != cols[p->id].type) abort();
        if (!pred_holds(p, &rec[p->id])) abort();
    }
    trl_expr_plan_free(&plan);
    trl_diag_reset(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct trl_principal user = {
        .user = "alice", .org = "acme", .role = "marketer", .region = "east"};
    struct trl_value rec[NCOLS] = {
        [C_TITLE] = str("Spring 促销 Campaign"),
        [C_REGION] = str("east"),
        [C_BUDGET] = num(1230),
        [C_START] = num(20513),
        [C_CREATED] = num(1772355600000),
        [C_UPDATED] = num(1772359200000),
        [C_STATE] = str("submitted"),
        [C_OWNER] = str("alice"),
        [C_ORG] = str("acme"),
        [C_COUNT] = num(5),
        [C_ACTIVE] = num(1),
        [C_REF] = num(42),
        [C_NOTES] = str("Line one\nLINE TWO"),
        [C_PARTNER] = {.kind = TRL_V_NULL},
    };
    struct trl_expr_env env = {.user = &user, .now_ms = 1772359200000};
    struct trl_diag d;
    struct trl_expr *e = NULL;
    trl_diag_init(&d);
    int rc = trl_expr_parse((const char *)data, size, resolve, NULL, &e, &d);
    if (rc) {
        if (e) abort();
        if (rc != TRL_EQUERY && rc != TRL_EFORBIDDEN) abort();
        if (d.code != rc || strncmp(d.message, "column ", 7) != 0) abort();
        if (!trl_utf8_valid(d.message, strlen(d.message))) abort();
        if (!trl_utf8_valid(d.field, strlen(d.field))) abort();
    } else {
        check_env(e, rec, &env);
        check_env(e, rec, NULL);
        rec[C_TITLE] = (struct trl_value){.kind = TRL_V_NULL};
        rec[C_PARTNER] = str("促销");
        rec[C_BUDGET] = num(-99);
        check_env(e, rec, &env);
        trl_expr_free(e);
    }
    trl_diag_reset(&d);
    return 0;
}
