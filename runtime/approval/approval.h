/*
 * approval — multi-step approval flows attached to workflow states (DESIGN.md §1, §2;
 * runtime/workflow/README.md documents the definition format).
 *
 * An approval is a sequence of steps. Each step names its approvers (users, a role, a group, the
 * user in a record field, or the requester's manager), a mode (any one, all, quorum N, or
 * sequential in the listed order), an optional condition (the step is skipped when it is false)
 * and whether the requester may approve their own request. Its outcome comes from explicit
 * approve and reject counts (trl_appr_outcome), never from "every task completed": a step ends
 * as soon as its outcome is certain, and its other open tasks are cancelled in the same commit.
 *
 * This module keeps definitions, the pure voting rules and the stored state: approvals, their
 * tasks, each user's pending inbox and out-of-office rules. The workflow engine drives it: it
 * starts an approval when a record enters the state, opens steps, and runs the transition an
 * outcome calls for. Everything runs inside the caller's write txn, so an approval's state and
 * the record's always commit together.
 *
 * Storage (TRL_DB_APPR, integers big-endian):
 *   'A' id u64                        -> approval JSON (steps, counts, status)
 *   'T' id u64                        -> task JSON
 *   'P' user NUL task u64             -> ""     (pending inbox: present iff the task is pending)
 *   'D' user NUL task u64             -> ""     (tasks the user decided, delegated or lost)
 *   'R' type NUL record u64 appr u64  -> ""     (every approval of a record)
 *   'O' user                          -> out-of-office rule JSON
 */
#ifndef TRL_APPROVAL_H
#define TRL_APPROVAL_H

#include "auth/auth.h"
#include "record/record.h"

#define TRL_APPR_MAX_APPROVERS 64 /* approvers of one step after resolution */

enum trl_appr_mode {
    TRL_APPR_ANY,        /* the first decision decides */
    TRL_APPR_ALL,        /* every approver approves; one reject rejects */
    TRL_APPR_QUORUM,     /* quorum approvals; rejected once quorum cannot be reached */
    TRL_APPR_SEQUENTIAL, /* one after another in the listed order; one reject rejects */
};

enum trl_appr_who {
    TRL_APPR_USERS,   /* named users */
    TRL_APPR_ROLE,    /* every active user holding the role */
    TRL_APPR_GROUP,   /* the members of a group */
    TRL_APPR_FIELD,   /* the user named in a record field (e.g. the account manager) */
    TRL_APPR_MANAGER, /* the requester's manager */
};

struct trl_appr_step {
    char *name;               /* step name (owned) */
    struct trl_labels labels; /* display labels */
    enum trl_appr_who who;    /* where approvers come from */
    char **names;             /* USERS: user names; ROLE/GROUP/FIELD: one name (owned) */
    size_t nnames;            /* entries */
    enum trl_appr_mode mode;  /* voting rule */
    unsigned quorum;          /* QUORUM: approvals needed */
    char *condition;          /* source text (owned) or NULL: the step always runs */
    struct trl_expr *cond;    /* compiled condition (owned) */
    bool allow_self;          /* the requester may approve their own request */
    char *on_approve;         /* transition that ends the approval when this step approves
                                 (owned), NULL: go on to the next step */
    char *on_reject;          /* transition when this step rejects (owned), NULL: the approval's */
    int64_t time_limit_ms;    /* business time the step may stay open (0: no limit) */
    char *calendar;           /* calendar of the limit (owned), NULL: 24x7 */
    enum trl_appr_who escalate_who; /* escalation target: USERS (one), ROLE or MANAGER */
    char *escalate_to; /* USERS: the user; ROLE: the role (owned), NULL: no escalation */
};

struct trl_appr_def {
    char *name;                  /* approval name, unique in its workflow (owned) */
    struct trl_labels labels;    /* display labels */
    char *state;                 /* the state it is attached to (owned) */
    struct trl_appr_step *steps; /* owned */
    size_t nsteps;               /* entries */
    char *on_approve;            /* transition after the last step approves (owned) */
    char *on_reject;             /* transition when a step rejects (owned) */
    char *on_return;             /* transition when an approver returns it (owned) or NULL */
    char *on_recall;             /* transition when the requester recalls it (owned) or NULL */
};

struct cJSON;
/* Parses one approval definition at path (e.g. "approvals[0]") of a workflow for type ty:
 * errors go to c as path-named field errors; transition and state names are checked by the
 * caller, who knows them. out is owned by the caller (trl_appr_def_free) even on errors. */
void trl_appr_def_parse(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                        const struct trl_type *ty, struct trl_appr_def *out);
void trl_appr_def_free(struct trl_appr_def *a);

enum trl_appr_outcome { TRL_APPR_PENDING, TRL_APPR_APPROVED, TRL_APPR_REJECTED };

/* The outcome of a step with n approvers of which approves approved and rejects rejected: the
 * voting rule of the mode, decided as soon as it is certain either way. */
enum trl_appr_outcome trl_appr_outcome(enum trl_appr_mode mode, unsigned quorum, unsigned n,
                                       unsigned approves, unsigned rejects);

/* ---------------------------------------------------------------------------------------------
 * Stored approvals
 */
/* What an approval is about. */
struct trl_appr_subject {
    const char *workflow;  /* workflow name */
    const char *type;      /* record type name */
    uint64_t record;       /* record id */
    const char *title;     /* record title for inboxes ("" when none) */
    const char *requester; /* who asked: the record's owner */
};

/* Starts approval def for subject (status pending, no step open yet). *id receives its id. */
int trl_appr_start(struct trl_txn *t, const struct trl_appr_def *def,
                   const struct trl_appr_subject *s, int64_t now, uint64_t *id);

/* Resolves the approvers of step for subject: field_user is the value of the step's field (FIELD
 * only). Inactive users are left out, so is the requester unless the step allows self-approval,
 * and each out-of-office approver is replaced by their delegate (recorded). No approver, or fewer
 * than the quorum: TRL_EVALIDATION with d saying why. */
struct trl_appr_approver {
    char user[64]; /* who gets the task */
    char via[64];  /* the approver they stand in for (out of office), "" when none */
};
int trl_appr_resolve(struct trl_txn *t, const struct trl_appr_step *step, const char *requester,
                     const char *field_user, int64_t now, struct trl_appr_approver *out, size_t *n,
                     struct trl_diag *d);

/* Opens step i of approval id with its approvers: one task each (in a sequential step only the
 * first is pending, the others wait their turn). task_ids (n entries, or NULL) receives them. */
int trl_appr_open_step(struct trl_txn *t, uint64_t id, size_t i, const struct trl_appr_step *step,
                       const struct trl_appr_approver *ap, size_t n, int64_t now,
                       uint64_t *task_ids);
/* Marks step i skipped (its condition was false). */
int trl_appr_skip_step(struct trl_txn *t, uint64_t id, size_t i, int64_t now);

/* A decision on a task. */
enum trl_appr_decision {
    TRL_DECIDE_APPROVE,
    TRL_DECIDE_REJECT,
    TRL_DECIDE_RETURN,
    TRL_DECIDE_DELEGATE
};
struct trl_appr_result {
    uint64_t approval;                  /* the task's approval */
    char workflow[64];                  /* its workflow */
    char type[64];                      /* record type */
    uint64_t record;                    /* record id */
    size_t step;                        /* index of the task's step */
    char step_name[64];                 /* its name */
    char requester[64];                 /* the record's requester */
    enum trl_appr_outcome step_outcome; /* the step's outcome after the decision */
    bool returned;                      /* the decision returned the request to the requester */
    char assignee[64];                  /* the task's assignee */
    char approval_name[64];             /* the approval's definition name */
    char next_assignee[64];             /* sequential: who holds the turn now ("" none) */
    uint64_t next_task;                 /* and their task */
};
/* Reads a task's approval and step without deciding (for the engine's checks). 0, TRL_ENOTFOUND. */
int trl_appr_task_info(struct trl_txn *t, uint64_t task, struct trl_appr_result *r);
/* Records who's decision on task. Refused, changing nothing: TRL_ENOTFOUND (no such task),
 * TRL_EFORBIDDEN (who is not its assignee), TRL_ECONFLICT (the task is no longer pending),
 * TRL_EVALIDATION (reject and return need a comment; delegate needs an active user other than
 * the assignee who holds no task of the step, and not the requester unless self-approval is
 * allowed). When the step's outcome becomes certain its other open tasks are cancelled. */
int trl_appr_decide(struct trl_txn *t, uint64_t task, const char *who, enum trl_appr_decision dec,
                    const char *comment, const char *to, bool allow_self, int64_t now,
                    struct trl_appr_result *r, struct trl_diag *d);
/* Pending approvals of type (and of definition name and state, when not NULL): a scan, for
 * definition changes. */
int trl_appr_pending_count(struct trl_txn *t, const char *type, const char *name, const char *state,
                           uint64_t *n);
/* The time limit of step si passed: each of its pending tasks is handed to the step's escalation
 * target (recorded as a delegation "escalated: ..."); to receives who got tasks. A step that
 * has ended meanwhile changes nothing. */
int trl_appr_escalate(struct trl_txn *t, uint64_t id, size_t si, const struct trl_appr_step *st,
                      int64_t now, char (*to)[64], uint64_t *out_tasks, size_t *nto);
/* Ends approval id with status ("approved", "rejected", "returned", "recalled", "cancelled"),
 * cancelling every task still open. */
int trl_appr_finish(struct trl_txn *t, uint64_t id, const char *status, int64_t now);
/* The pending approval of a record: 0 with *id, or TRL_ENOTFOUND. */
int trl_appr_active(struct trl_txn *t, const char *type, uint64_t record, uint64_t *id, char *name,
                    size_t name_n);

/* Output. */
/* Appends {"items":[tasks...],"next_cursor":..} of user's tasks, newest first: status "pending"
 * (the inbox) or "done" (decided, delegated or cancelled ones). cursor: a task id from a previous
 * page (0 for the first). */
int trl_appr_list(struct trl_txn *t, const char *user, bool pending, size_t limit, uint64_t cursor,
                  struct trl_buf *out);
/* Appends a task as JSON with its approval embedded. 0, TRL_ENOTFOUND. */
int trl_appr_task_json(struct trl_txn *t, uint64_t task, struct trl_buf *out);
/* Appends {"items":[approvals...]} of a record, newest first, each with its tasks. */
int trl_appr_record_json(struct trl_txn *t, const char *type, uint64_t record, struct trl_buf *out);

/* `trellis check`: every inbox entry is a pending task of its user and every pending task is in
 * its assignee's inbox. Writes one line per problem to report (may be NULL); returns the number of
 * problems (>= 0) or a TRL_E* when the store cannot be read. */
int trl_appr_check(struct trl_txn *t, struct trl_buf *report);

/* ---------------------------------------------------------------------------------------------
 * Out of office: from from_ms until until_ms, user's new tasks go to delegate, and their pending
 * ones move to the delegate when the rule is set.
 */
struct trl_appr_ooo {
    char user[64];     /* who is away */
    char delegate[64]; /* who acts for them */
    int64_t from_ms;   /* start (UTC ms) */
    int64_t until_ms;  /* end, exclusive (UTC ms) */
    char note[256];    /* free text */
};
/* Stores user's rule (replacing any) and moves their pending tasks when it is active at now.
 * TRL_EVALIDATION naming the field: unknown or inactive delegate, the user themselves, until
 * not after from, a delegation cycle. *moved receives how many tasks moved. */
int trl_appr_ooo_put(struct trl_txn *t, const struct trl_appr_ooo *o, int64_t now, size_t *moved,
                     struct trl_diag *d);
/* 0, TRL_ENOTFOUND. */
int trl_appr_ooo_get(struct trl_txn *t, const char *user, struct trl_appr_ooo *o);
int trl_appr_ooo_delete(struct trl_txn *t, const char *user);
int trl_appr_ooo_json(const struct trl_appr_ooo *o, struct trl_buf *out);

#endif
