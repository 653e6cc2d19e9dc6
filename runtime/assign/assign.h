/*
 * assign — assignment and dispatch rules (DESIGN.md §1, §2; runtime/workflow/README.md documents
 * the definition format).
 *
 * A workflow's "assignment" names the text field that holds the assignee, when the rules apply
 * (on create and/or after named transitions) and an ordered list of rules. The first rule whose
 * condition holds picks the assignee with its strategy:
 *   user          a fixed user;
 *   round_robin   the next active member of a group, in the group's order (a counter per rule
 *                 in the store, advanced in the same txn);
 *   least_loaded  the active member of a group with the fewest open records (records of the type
 *                 assigned to them in a state whose category is not "done");
 *   skills        among a group's active members, those whose skills cover every skill the
 *                 record requires (a text field, comma- or space-separated), the least loaded;
 *   region        among a group's active members, those whose region equals the record's
 *                 region field, the least loaded.
 * Ties are broken deterministically: fewer open records first, then the group's order.
 * The workflow engine evaluates conditions, writes the assignee in the same change and records it
 * in the history, and notifies the assignee.
 */
#ifndef TRL_ASSIGN_H
#define TRL_ASSIGN_H

#include "auth/auth.h"
#include "record/record.h"

enum trl_assign_strategy {
    TRL_ASSIGN_USER,
    TRL_ASSIGN_ROUND_ROBIN,
    TRL_ASSIGN_LEAST_LOADED,
    TRL_ASSIGN_SKILLS,
    TRL_ASSIGN_REGION,
};

struct trl_assign_rule {
    char *name;                        /* rule name (owned) */
    char *condition;                   /* source (owned) or NULL: always */
    struct trl_expr *cond;             /* compiled (owned) */
    enum trl_assign_strategy strategy; /* how it picks */
    char *user;                        /* USER: the user (owned) */
    char *group;                       /* the others: the group of candidates (owned) */
    char *skills_field;                /* SKILLS: text field with the required skills (owned) */
    char *region_field;                /* REGION: field holding the record's region (owned) */
};

struct trl_assign_def {
    char *field;                   /* the text field that holds the assignee (owned) */
    bool on_create;                /* apply when a record is created */
    char **on;                     /* transitions after which the rules apply (owned) */
    size_t non;                    /* entries */
    struct trl_assign_rule *rules; /* ordered (owned) */
    size_t nrules;                 /* entries */
};

struct cJSON;
/* Parses "assignment" at path for type ty; errors go to c by path. out is owned by the caller
 * (trl_assign_def_free) even on errors. Transition names in "on" are checked by the caller. */
void trl_assign_def_parse(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                          const struct trl_type *ty, struct trl_assign_def *out);
void trl_assign_def_free(struct trl_assign_def *a);

/* What a pick needs to know about the record. */
struct trl_assign_subject {
    const struct trl_rec_ctx *cx; /* for counting open records (acc is ignored) */
    const struct trl_type *ty;    /* the record's type */
    const char *field;            /* the assignee field */
    const char *const *open;      /* states whose category is not "done" (NULL-terminated) */
    const char *skills;           /* the record's required skills ("" when none) */
    const char *region;           /* the record's region ("" when none) */
    const char *rr_key;           /* round-robin counter name ("rr:<workflow>:<rule>") */
    const char *exclude;          /* a user never to pick (e.g. the requester), or NULL */
};

/* Picks the assignee of rule r for s into out (64 bytes). TRL_ENOTFOUND with d saying why when
 * no candidate fits (empty group, nobody with the skills or region, inactive user). */
int trl_assign_pick(struct trl_txn *t, const struct trl_assign_rule *r,
                    const struct trl_assign_subject *s, char *out, struct trl_diag *d);
/* Open records of s->ty assigned to user (as the load strategies count them). */
int trl_assign_load(struct trl_txn *t, const struct trl_assign_subject *s, const char *user,
                    uint64_t *n);

#endif
