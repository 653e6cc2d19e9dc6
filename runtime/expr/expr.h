/*
 * expr — the one expression language of Trellis (DESIGN.md §5).
 *
 * The same parser and evaluator serve API list filters, transition conditions, approval-step and
 * SLA conditions, assignment rules and report filters. A source text is parsed once into an
 * immutable compiled expression (struct trl_expr, owned by the caller, free with trl_expr_free);
 * columns are resolved and type-checked at parse time through a caller-supplied resolver, so an
 * expression that parsed cannot fail on types later. Literal values are bound into the tree,
 * never spliced into anything.
 *
 * Grammar (precedence low to high):
 *   expr    := or
 *   or      := and ( "||" and )*
 *   and     := unary ( "&&" unary )*
 *   unary   := "!" unary | primary
 *   primary := "(" expr ")" | cmp
 *   cmp     := column op operand
 *            | column "in" "(" operand ( "," operand )* ")"
 *            | column "not" "in" "(" ... ")"
 *   op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~" (contains) | "^=" (starts with)
 *   operand := string ("..." with JSON escapes) | number (-12, 3.50) | true | false | null
 *            | variable (@now, @today, @user.id, @user.org, @user.role, @user.region)
 *   column  := identifier [A-Za-z_][A-Za-z0-9_]*
 *
 * Types: operands are converted to the column's type at parse time: a decimal literal to the
 * column's scale, "2026-01-31" to days for a date, RFC 3339 text to ms for a datetime, enum
 * literals must be options of the column. `= null` / `!= null` test absence. Ordering operators on
 * text compare bytes (code point order); `~` is a substring test (ASCII case-insensitive) and `^=`
 * a prefix test, both only on text-like columns. A comparison with an absent (null) value is
 * false except `= null` and `!= ...` (which is true when the value is absent).
 *
 * Errors name the 1-based column in the source: "column 12: expected a value after '='".
 * Thread safety: a compiled expression is immutable; evaluate it from any thread.
 */
#ifndef TRL_EXPR_H
#define TRL_EXPR_H

#include "core/core.h"

/* What the resolver says about a column. */
struct trl_expr_field {
    int id;                     /* caller's identifier of the column, passed back to get */
    enum trl_ftype type;        /* static type */
    int scale;                  /* decimal places for TRL_FT_DECIMAL */
    bool indexed;               /* an index exists on it (for plans) */
    const char *const *options; /* enum options (borrowed, valid during the parse), or NULL */
    size_t noptions;            /* number of options */
};

/* Resolves a column name (not NUL-terminated, n bytes). Returns 0 and fills out, or
 * TRL_ENOTFOUND for an unknown column, or another TRL_E* (e.g. TRL_EFORBIDDEN when the caller may
 * not filter on it) — parse then fails with that code and the column in the message. */
typedef int (*trl_expr_resolve_fn)(void *ud, const char *name, size_t n,
                                   struct trl_expr_field *out);

/* Reads the current value of column `id` for evaluation. The value's bytes must stay valid until
 * trl_expr_eval returns. Returns 0 (a missing value is TRL_V_NULL) or a TRL_E* that aborts. */
typedef int (*trl_expr_get_fn)(void *ud, int id, struct trl_value *out);

/* Values of the @variables at evaluation time. */
struct trl_expr_env {
    const struct trl_principal *user; /* @user.*; NULL -> every @user.* is null */
    int64_t now_ms;                   /* @now (UTC ms); @today is its date */
};

struct trl_expr;

/* Parses and type-checks src[0..n). On success *out is owned by the caller (trl_expr_free).
 * Errors: TRL_EQUERY (syntax, type, unknown column: d->message names the column and what was
 * expected, d->field the column name when one is at fault), TRL_ENOMEM, or the resolver's code.
 * Limits: at most 4096 bytes of source and nesting depth 64 (TRL_EQUERY beyond). */
int trl_expr_parse(const char *src, size_t n, trl_expr_resolve_fn resolve, void *ud,
                   struct trl_expr **out, struct trl_diag *d);
void trl_expr_free(struct trl_expr *e);
/* Parameters bound into an expression: `@param.name` in the source stands for value text that
 * is converted to the type of the column it is compared with, like a literal (so a report's
 * parameters are bound, never spliced into the text). values[k] NULL: given no value. */
struct trl_expr_params {
    const char *const *names;
    const char *const *values;
    size_t n;
    bool check_only; /* checking a definition with placeholder values: an enum parameter's
                        placeholder need not be one of the column's options */
};
/* trl_expr_parse with parameters (params may be NULL: `@param.x` is then refused). Values are
 * copied into the expression. */
int trl_expr_parse_params(const char *src, size_t n, trl_expr_resolve_fn resolve, void *ud,
                          const struct trl_expr_params *params, struct trl_expr **out,
                          struct trl_diag *d);

/* Evaluates e. Returns 0 with *result set, or the getter's error. */
int trl_expr_eval(const struct trl_expr *e, trl_expr_get_fn get, void *ud,
                  const struct trl_expr_env *env, bool *result, struct trl_diag *d);

/* ---------------------------------------------------------------------------------------------
 * Plans: conjuncts an index can answer. A plan lists the predicates of the top-level `&&` chain
 * that constrain one indexed column with constants (or @variables, resolved with env): equality,
 * `in`, ranges and prefixes. The caller picks one to drive an index scan and still evaluates the
 * whole expression on each candidate record, so a plan is an optimisation, never a semantics.
 */
enum trl_expr_pred_kind {
    TRL_PRED_EQ,     /* column = vals[0] (vals[0] may be TRL_V_NULL for `= null`) */
    TRL_PRED_IN,     /* column in vals[0..nvals) */
    TRL_PRED_RANGE,  /* lo/hi bounds below */
    TRL_PRED_PREFIX, /* column ^= vals[0] (bytes) */
};

struct trl_expr_pred {
    enum trl_expr_pred_kind kind; /* what shape */
    int id;                       /* column id from the resolver */
    enum trl_ftype type;          /* column type */
    struct trl_value *vals;       /* EQ/IN/PREFIX values; bytes point into the expression or env */
    size_t nvals;                 /* number of vals */
    bool has_lo, lo_incl;         /* RANGE lower bound present / inclusive */
    struct trl_value lo;          /* RANGE lower bound */
    bool has_hi, hi_incl;         /* RANGE upper bound present / inclusive */
    struct trl_value hi;          /* RANGE upper bound */
};

struct trl_expr_plan {
    struct trl_expr_pred *preds; /* owned array; free with trl_expr_plan_free */
    size_t npreds;               /* entries in preds */
};

/* Fills plan with every indexable conjunct on columns the resolver marked indexed. A top-level
 * `||` or `!` yields an empty plan. Values point into e (and env strings): valid while both live.
 * Returns 0 or TRL_ENOMEM. */
int trl_expr_plan_build(const struct trl_expr *e, const struct trl_expr_env *env,
                        struct trl_expr_plan *plan);
void trl_expr_plan_free(struct trl_expr_plan *plan);

/* Number of terms of the top-level `&&` chain (1 for an expression without a top-level `&&`).
 * When it equals a plan's npreds, the plan states the whole expression exactly (for example, so
 * a count can come from a maintained counter). */
size_t trl_expr_conjuncts(const struct trl_expr *e);

/* Compares two values of one column type: <0, 0, >0 (null sorts first). Used by sort and
 * range checks so that ordering has one definition. */
int trl_expr_value_cmp(enum trl_ftype type, const struct trl_value *a, const struct trl_value *b);

#endif
