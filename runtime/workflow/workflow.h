/*
 * workflow — state machines bound to record types (DESIGN.md §1, §2; runtime/workflow/README.md
 * documents the definition format).
 *
 * A workflow names its type, its states (labels, initial, final, category, colour) and its
 * transitions (from, to, roles, condition, required fields, fields the caller may fill, confirm
 * text, ordered actions). Definitions are checked against the catalog when saved: every error
 * names its path in the definition (`transitions[2].condition`) and, for conditions, the column.
 *
 * Compiled workflows are immutable and shared through a reference-counted set, loaded next to
 * the catalog of the same schema version. A transition runs in one write job: the record layer
 * loads the record and applies the inputs, this module decides (state, role, required fields,
 * condition) and acts (set fields), and the record layer writes the new state and one history
 * event — all of it or nothing.
 */
#ifndef TRL_WORKFLOW_H
#define TRL_WORKFLOW_H

#include "approval/approval.h"
#include "assign/assign.h"
#include "sla/sla.h"
#include "record/record.h"

struct trl_wf_state {
    char *name;               /* state name (owned) */
    struct trl_labels labels; /* display labels */
    bool initial;             /* new records start here (exactly one state) */
    bool final;               /* no transition leaves it */
    char *category;           /* "open", "waiting" or "done" (owned) */
    char *color;              /* "#rrggbb" or "" (owned) */
};

enum trl_wf_src {
    TRL_WF_CONST, /* a JSON constant */
    TRL_WF_VAR,   /* now, today, user.id, user.org, user.region */
    TRL_WF_COPY,  /* another field of the record */
    TRL_WF_ITEM,  /* a key of the current element of a create action's for_each list */
};

enum trl_wf_act {
    TRL_ACT_SET,        /* set a field */
    TRL_ACT_NOTIFY,     /* an in-app notification */
    TRL_ACT_TRANSITION, /* run a transition (SLA actions only) */
    TRL_ACT_ASSIGN,     /* apply the assignment rules (ref: one rule's name, or NULL: all) */
    TRL_ACT_CREATE,     /* create related records (ref: their type; name: the for_each field) */
    TRL_ACT_HOOK,       /* call an app hook (ref: "function" of the type's module, or
                           "module.function") */
};

struct trl_wf_action {
    enum trl_wf_act kind;      /* what it does */
    char *field;               /* SET: the field it sets (owned) */
    enum trl_wf_src src;       /* SET: where the value comes from */
    struct trl_input val;      /* SET CONST: the constant (name "" , s owned) */
    char *ref;                 /* SET VAR: variable name; COPY: source field; TRANSITION: its
                                  name; NOTIFY: "user", "field", "role" or "requester" (owned) */
    char *name;                /* NOTIFY: the user, field or role named (owned) or NULL */
    struct trl_labels message; /* NOTIFY: markdown template ("" for the built-in text) */
    struct trl_wf_action *sub; /* CREATE: one SET-like mapping per target field (owned) */
    size_t nsub;               /* entries */
};

struct trl_wf_transition {
    char *name;                    /* transition name (owned) */
    struct trl_labels labels;      /* display labels */
    char **from;                   /* states it leaves from (owned) */
    size_t nfrom;                  /* entries of from */
    char *to;                      /* state it enters (owned) */
    char **roles;                  /* roles allowed (owned); none: whoever may update the record */
    size_t nroles;                 /* entries of roles */
    char *condition;               /* source text (owned) or NULL */
    struct trl_expr *cond;         /* compiled condition (owned) or NULL */
    char **required;               /* fields that must hold a value (owned) */
    size_t nrequired;              /* entries */
    char **fields;                 /* fields the caller may fill in the transition (owned) */
    size_t nfields;                /* entries */
    struct trl_labels confirm;     /* confirmation text ("" when none) */
    bool comment_required;         /* the caller must give a comment (e.g. reject) */
    struct trl_wf_action *actions; /* ordered actions (owned) */
    size_t nactions;               /* entries */
};

/* An SLA target: a clock that starts when the record enters a start state and stops (met or
 * breached) when it enters a stop state, counted in business time of its policy's calendar. */
struct trl_wf_sla_target {
    char *name;                       /* target name, unique per record (owned) */
    struct trl_labels labels;         /* display labels */
    char **start, **stop;             /* states (owned) */
    size_t nstart, nstop;             /* entries */
    int64_t target_ms;                /* business time allowed */
    unsigned warn_percent;            /* warn at this share of the target (0: never) */
    struct trl_wf_action *on_warning; /* actions at the warning (owned) */
    size_t nwarning;                  /* entries */
    struct trl_wf_action *on_breach;  /* actions at the breach (owned) */
    size_t nbreach;                   /* entries */
};

/* An SLA policy: chosen by its condition (the first that holds when a target starts). */
struct trl_wf_sla {
    char *name;                        /* policy name (owned) */
    struct trl_labels labels;          /* display labels */
    char *condition;                   /* source text (owned) or NULL */
    struct trl_expr *cond;             /* compiled (owned) */
    char *calendar;                    /* business calendar name, NULL: 24x7 (owned) */
    char **pause;                      /* states in which every clock pauses (owned) */
    size_t npause;                     /* entries */
    struct trl_wf_sla_target *targets; /* owned */
    size_t ntargets;                   /* entries */
};

struct trl_workflow {
    char *name;                            /* workflow name (owned) */
    char *type;                            /* bound type (owned) */
    struct trl_labels labels;              /* display labels */
    struct trl_wf_state *states;           /* owned */
    size_t nstates;                        /* entries */
    struct trl_wf_transition *transitions; /* owned */
    size_t ntransitions;                   /* entries */
    struct trl_appr_def *approvals;        /* approvals attached to states (owned) */
    size_t napprovals;                     /* entries */
    struct trl_assign_def assignment;      /* assignment rules (nrules 0: none) */
    struct trl_wf_sla *slas;               /* SLA policies in order (owned) */
    size_t nslas;                          /* entries */
    char *definition;                      /* canonical JSON (owned) */
    const struct trl_wf_set *set;          /* the set it was loaded in (calendars), or NULL */
};

/* Parses and checks a definition against cat. On success *out is owned (trl_wf_free). Errors:
 * TRL_EJSON (not strict JSON), TRL_EVALIDATION with one field error per problem, each named by its
 * path (`states[1].name`, `transitions[0].condition`). */
int trl_wf_parse(const struct trl_catalog *cat, const char *name, const char *json, size_t n,
                 struct trl_workflow **out, struct trl_diag *d);
void trl_wf_free(struct trl_workflow *w);

/* Stores a definition (write txn): checks it against the catalog of t, refuses a second workflow
 * for a type (TRL_ECONFLICT), an initial state other than the type's, and the removal of a state
 * that records are in (TRL_ECONFLICT saying how many). app: the app it belongs to (NULL keeps the
 * stored one). *changed tells whether anything differed; a change bumps the schema version. */
int trl_wf_put(struct trl_txn *t, const char *name, const char *json, size_t n, const char *app,
               bool *changed, struct trl_diag *d);
/* Checks that every stored workflow still fits the types stored in t (after a type or an app
 * changed: a condition may name a removed field). 0, or TRL_ECONFLICT with d saying which. */
int trl_wf_check_all(struct trl_txn *t, struct trl_diag *d);
/* Removes a workflow (records keep their states). 0, TRL_ENOTFOUND. */
int trl_wf_delete(struct trl_txn *t, const char *name, struct trl_diag *d);

/* Every stored workflow, compiled against cat; shared by reference counting. */
/* A stored text definition of the snapshot that the layers above interpret (hook modules, app
 * manifests): key "app/module" for hooks, the app name for apps. */
struct trl_wf_text {
    char *key;  /* owned */
    char *text; /* owned, NUL-terminated */
    size_t n;   /* bytes of text */
};

struct trl_wf_set {
    struct trl_workflow **wfs; /* owned, sorted by name */
    size_t n;                  /* entries */
    struct trl_cal **cals;     /* business calendars (owned), sorted by name */
    size_t ncals;              /* entries */
    struct trl_cal *always;    /* the 24x7 calendar (owned) */
    struct trl_wf_text *hooks; /* Lua hook modules (meta kind "hook"), sorted by key */
    size_t nhooks;             /* entries */
    struct trl_wf_text *apps;  /* app manifests (meta kind "app"), sorted by key */
    size_t napps;              /* entries */
    uint64_t version;          /* the catalog version the set was loaded with */
    int refs;                  /* reference count (atomic) */
};
/* The text of key in a sorted list (NULL when absent). */
const struct trl_wf_text *trl_wf_text_find(const struct trl_wf_text *list, size_t n,
                                           const char *key);
int trl_wf_set_load(struct trl_txn *t, const struct trl_catalog *cat, struct trl_wf_set **out,
                    struct trl_diag *d);
struct trl_wf_set *trl_wf_set_ref(struct trl_wf_set *s);
void trl_wf_set_unref(struct trl_wf_set *s);
const struct trl_workflow *trl_wf_by_name(const struct trl_wf_set *s, const char *name);
const struct trl_workflow *trl_wf_by_type(const struct trl_wf_set *s, const char *type);

/* Appends {"state":..., "items":[...]} of the transitions the caller may run on record id now:
 * from its state, with their roles and a true condition; each with labels, to, confirm, the
 * fields it lets the caller fill and the required fields still missing. TRL_ENOTFOUND when the
 * record is absent or out of the caller's read scope. */
int trl_wf_available(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                     const struct trl_workflow *w, uint64_t id, struct trl_buf *out);

/* A transition request. */
struct trl_wf_run {
    const char *transition;     /* name */
    uint64_t if_match;          /* 0: none */
    const struct trl_input *in; /* fields the caller fills */
    size_t nin;                 /* entries */
    const char *comment;        /* or NULL */
    bool dry_run;               /* check only, write nothing (a read txn suffices) */
};

/* Runs (or checks) a transition. Refusals name their rule and path (d->rule, d->path):
 * TRL_ENOTFOUND (record or transition unknown), TRL_ECONFLICT (state), TRL_EFORBIDDEN (role),
 * TRL_EVALIDATION (required field, condition, inputs, an action's value), TRL_EPRECOND. On
 * success appends the record JSON (or, for a dry run, {"ok":true,...}) to out. */
int trl_wf_transition(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                      const struct trl_workflow *w, uint64_t id, const struct trl_wf_run *run,
                      struct trl_buf *out);

/* ---------------------------------------------------------------------------------------------
 * Approvals (approval.h keeps their state): entering a state with an approval starts it and opens
 * its first step whose condition holds; leaving the state by any other transition cancels it; a
 * pending approval's outcome transitions are refused to everyone but administrators (who
 * override it).
 */
struct trl_wf_decision {
    uint64_t task;                   /* the task decided on */
    enum trl_appr_decision decision; /* approve, reject, return, delegate */
    const char *comment;             /* required for reject and return */
    const char *to;                  /* delegate: the user who takes over */
};
/* Records a decision (one history event on the record) and, when the step's outcome is certain,
 * opens the next step or runs the outcome transition, all in t. Appends {"task":..,"record":..}.
 * Refusals change nothing and name their rule: TRL_ENOTFOUND (task), TRL_EFORBIDDEN (not the
 * assignee), TRL_ECONFLICT (task closed, approval over, return not configured),
 * TRL_EVALIDATION (comment, delegate), or the outcome transition's own refusal. */
int trl_wf_decide(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *ws,
                  const struct trl_wf_decision *dec, struct trl_buf *out);
/* The requester (or an administrator) recalls the pending approval of record id: its tasks are
 * cancelled and the approval's on_recall transition runs. TRL_ECONFLICT when there is nothing to
 * recall or the approval cannot be recalled; TRL_EFORBIDDEN for anyone else. */
int trl_wf_recall(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                  const struct trl_workflow *w, uint64_t id, const char *comment,
                  struct trl_buf *out);

/* ---------------------------------------------------------------------------------------------
 * SLA clocks (sla.h keeps them): a transition stops, pauses, resumes and starts the record's
 * clocks in the same write; creation starts those whose start state is the initial state.
 */
/* Business calendars are definitions of their own (meta kind "calendar", an app's
 * calendars folder, one JSON file each; format in runtime/calendar/README.md). put checks and
 * stores one (app: its app, NULL keeps the stored one); delete refuses one that a workflow's SLA
 * policy names (TRL_ECONFLICT naming the workflow). */
int trl_wf_calendar_put(struct trl_txn *t, const char *name, const char *json, size_t n,
                        const char *app, bool *changed, struct trl_diag *d);
int trl_wf_calendar_delete(struct trl_txn *t, const char *name, struct trl_diag *d);
/* The calendar named name ("" or NULL: 24x7), or NULL when unknown. */
const struct trl_cal *trl_wf_calendar(const struct trl_wf_set *s, const char *name);
/* After a create of record id: starts the clocks of the initial state and runs the assignment
 * rules that apply on create (a second version with its own history event: *rewritten, when not
 * NULL, says so, and the caller should answer with the record as it now is). */
int trl_wf_on_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id, bool *rewritten);
/* After a delete of record id: its pending approval is cancelled (its tasks leave every inbox)
 * and its clocks stop. */
int trl_wf_on_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id);
/* Appends {"items":[clocks...]} of record id with their state at cx->now_ms (read access to the
 * record is checked: TRL_ENOTFOUND otherwise). */
int trl_wf_sla_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                    const struct trl_type *ty, uint64_t id, struct trl_buf *out);
/* Fires up to max due timers at cx->now_ms (cx->who acts: the system): SLA warnings and breaches
 * mark their clocks and run their actions. *fired receives how many fired. */
int trl_wf_fire_timers(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                       size_t max, size_t *fired);

/* ---------------------------------------------------------------------------------------------
 * Record writes as the API makes them: the record layer's write plus what the engine adds
 * (clocks and assignment on create, approvals and clocks ended on delete) and the after events
 * of app hooks (cx->ev). s may be NULL (no workflows). Errors as trl_rec_create, trl_rec_patch
 * and trl_rec_delete, plus a hook's refusal.
 */
/* Creates a record; out receives it as the caller may see it after everything ran ("null" when a
 * hook moved it out of sight), *version its version (may be NULL). */
int trl_wf_rec_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                      const struct trl_type *ty, const struct trl_input *in, size_t n, uint64_t *id,
                      uint64_t *version, struct trl_buf *out);
int trl_wf_rec_patch(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id, uint64_t if_match,
                     const struct trl_input *in, size_t n, struct trl_buf *out);
int trl_wf_rec_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                      const struct trl_type *ty, uint64_t id, uint64_t if_match);

#endif
