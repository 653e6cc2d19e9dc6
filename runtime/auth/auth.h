/*
 * auth — identities: users, orgs, roles, passwords and API tokens (issue 3, first part).
 *
 * Users and orgs live in TRL_DB_AUTH as small JSON documents under "u\0<name>" and
 * "o\0<name>". Passwords are Argon2id hashes from libsodium (crypto_pwhash_str_alg) at OWASP's
 * minimum or above: 2 passes over 19 MiB; the password itself is never stored or logged.
 * API tokens are 256-bit random secrets shown once; only their SHA-256 is stored, under
 * "t\0<hex>" (by hash, for authentication) and "n\0<name>" (by name, for listing and revocation).
 *
 * Every function that writes runs inside a write txn given by the caller; reads run in any txn.
 * Names are lower-case identifiers ([a-z0-9_.-], 1..63 characters); display texts are UTF-8.
 */
#ifndef TRL_AUTH_H
#define TRL_AUTH_H

#include "core/core.h"
#include "store/store.h"

#define TRL_AUTH_MAX_ROLES  16 /* roles per user or token */
#define TRL_AUTH_MAX_SKILLS 32 /* skills per user */

struct trl_user {
    char name[64];                        /* login name, unique */
    char display[128];                    /* display name */
    char email[128];                      /* e-mail address, "" when none */
    char lang[8];                         /* "en" or "zh-CN" */
    char org[64];                         /* org name, "" for none */
    char manager[64];                     /* manager's user name, "" for none */
    char region[64];                      /* region, "" for none */
    char roles[TRL_AUTH_MAX_ROLES][64];   /* role names */
    size_t nroles;                        /* entries in roles */
    char skills[TRL_AUTH_MAX_SKILLS][64]; /* skills for dispatch */
    size_t nskills;                       /* entries in skills */
    bool active;                          /* false: disabled, cannot log in */
    char pwhash[128];                     /* Argon2id string, "" when no password is set */
    int64_t created_at;                   /* UTC ms */
    int64_t pw_changed_at;                /* UTC ms of the last password change, 0 never */
};

struct trl_token {
    char name[64];                      /* token name, unique */
    char user[64];                      /* the user it acts as */
    char roles[TRL_AUTH_MAX_ROLES][64]; /* roles it is scoped to (a subset of the user's) */
    size_t nroles;                      /* entries in roles */
    int64_t created_at;                 /* UTC ms */
    int64_t expires_at;                 /* UTC ms, 0 for never */
};

/* True for a valid user, org, role or token name. */
bool trl_auth_name_valid(const char *s);

/* Hashes a password (Argon2id, 2 passes, 19 MiB) into out (>= 128 bytes). Passwords must be
 * 8..1024 bytes of UTF-8: TRL_EVALIDATION with d otherwise; TRL_ENOMEM when the hash cannot get
 * its memory. Costs about 50 ms: callers bound how many run at once. */
int trl_auth_password_hash(const char *pw, char *out, struct trl_diag *d);
/* True when pw matches the stored hash (constant-time comparison inside libsodium). */
bool trl_auth_password_verify(const char *hash, const char *pw);

/* Users. put creates or replaces (the org and manager must exist, names must be valid:
 * TRL_EVALIDATION naming the field; roles are names that apps define);
 * get returns TRL_ENOTFOUND for an unknown name. */
int trl_auth_user_put(struct trl_txn *t, const struct trl_user *u, struct trl_diag *d);
int trl_auth_user_get(struct trl_txn *t, const char *name, struct trl_user *u);
/* Appends a JSON array of users (without password hashes) to out. */
int trl_auth_user_list(struct trl_txn *t, struct trl_buf *out);
/* Appends one user as JSON (without the password hash) to out. */
int trl_auth_user_json(const struct trl_user *u, struct trl_buf *out);

/* Calls fn for every user in name order (stops at fn's first non-zero result and returns it). */
int trl_auth_user_each(struct trl_txn *t, int (*fn)(void *ud, const struct trl_user *u), void *ud);
/* Fills who with user u acting with roles (u's own, or an API token's subset): user, org, region,
 * roles (the first is the primary one), skills, and admin when a role is "admin". Groups are
 * left to trl_auth_user_groups. */
void trl_auth_principal(const struct trl_user *u, const char (*roles)[64], size_t nroles,
                        struct trl_principal *who);
/* Calls fn for every user holding role, in name order, through the index by role (stops at fn's
 * first non-zero result and returns it). */
int trl_auth_role_users(struct trl_txn *t, const char *role,
                        int (*fn)(void *ud, const struct trl_user *u), void *ud);
/* True when u holds role. */
bool trl_auth_user_has_role(const struct trl_user *u, const char *role);

/* Groups: teams that approvals and assignment rules name. Members must be existing users. */
#define TRL_AUTH_MAX_MEMBERS 256
struct trl_group {
    char name[64];                          /* group name, unique */
    char label_en[128];                     /* display label (English) */
    char label_zh[128];                     /* display label (Simplified Chinese) */
    char members[TRL_AUTH_MAX_MEMBERS][64]; /* user names in the order given */
    size_t nmembers;                        /* entries in members */
};
/* Creates or replaces a group (TRL_EVALIDATION naming the field for a bad name or member). */
int trl_auth_group_put(struct trl_txn *t, const struct trl_group *g, struct trl_diag *d);
/* 0, TRL_ENOTFOUND. */
int trl_auth_group_get(struct trl_txn *t, const char *name, struct trl_group *g);
/* 0, TRL_ENOTFOUND. */
int trl_auth_group_delete(struct trl_txn *t, const char *name);
/* Appends a JSON array of groups to out. */
int trl_auth_group_list(struct trl_txn *t, struct trl_buf *out);
/* The groups user belongs to (at most max, in name order) into out; *n how many. */
int trl_auth_user_groups(struct trl_txn *t, const char *user, char (*out)[64], size_t max,
                         size_t *n);
/* Checks that the indexes by group member and by role agree with the groups and users: the
 * number of problems (each a line in report), or a negative error. */
int trl_auth_check(struct trl_txn *t, struct trl_buf *report);
/* Brings an older store's auth data up to date (the indexes by group member and by role);
 * *changed when it wrote.
 * Run once at server start, in a write txn. */
int trl_auth_upgrade(struct trl_txn *t, bool *changed);

/* Orgs: {name, labels}. put is idempotent; exists answers whether one is defined. */
int trl_auth_org_put(struct trl_txn *t, const char *name, const char *label_en,
                     const char *label_zh, struct trl_diag *d);
bool trl_auth_org_exists(struct trl_txn *t, const char *name);
int trl_auth_org_list(struct trl_txn *t, struct trl_buf *out);

/* API tokens. create makes a new random secret for user (which must exist and be active),
 * stores its hash, and writes the secret ("trl_" + 64 hex characters) to secret (>= 80 bytes):
 * it is shown once and cannot be recovered. expires_at 0 for never. TRL_EEXIST for a taken
 * name. */
int trl_auth_token_create(struct trl_txn *t, const struct trl_token *tok, char *secret,
                          struct trl_diag *d);
/* Finds the token for a presented secret: 0 with *tok and its user in *u (may be NULL), or
 * TRL_EAUTH (unknown, revoked, expired at now_ms, or its user disabled). */
int trl_auth_token_check(struct trl_txn *t, const char *secret, int64_t now_ms,
                         struct trl_token *tok, struct trl_user *u);
/* A token by name (never its secret): 0, TRL_ENOTFOUND. */
int trl_auth_token_get(struct trl_txn *t, const char *name, struct trl_token *tok);
/* Revokes a token by name: TRL_ENOTFOUND when none. */
int trl_auth_token_revoke(struct trl_txn *t, const char *name);
/* Appends a JSON array of tokens (never their secrets) to out. */
int trl_auth_token_list(struct trl_txn *t, struct trl_buf *out);

/* ---------------------------------------------------------------------------------------------
 * Sessions (browser logins): 256-bit random secrets sent as a cookie; only their SHA-256 is
 * stored, under "s\0<hex>", with an index "S\0<user>\0<hex>" so that disabling a user or changing
 * their password ends every session of theirs in the same transaction.
 */
struct trl_session {
    char user[64];        /* who is logged in */
    char csrf[65];        /* per-session token the client echoes in X-CSRF-Token on writes */
    int64_t created_at;   /* UTC ms */
    int64_t last_seen_at; /* UTC ms of the last refresh */
    int64_t idle_ms;      /* idle expiry */
    int64_t expires_at;   /* absolute expiry, UTC ms */
};

/* Creates a session for user at now: writes the secret ("s_" + 64 hex) to secret (>= 80 bytes)
 * and fills *out. 0, TRL_EIO. */
int trl_auth_session_create(struct trl_txn *t, const char *user, int64_t now, int64_t idle_ms,
                            int64_t absolute_ms, char *secret, struct trl_session *out);
/* Finds a live session: 0 with *s and its user in *u, or TRL_EAUTH (unknown, idle or absolute
 * expiry passed at now, user disabled). */
int trl_auth_session_check(struct trl_txn *t, const char *secret, int64_t now,
                           struct trl_session *s, struct trl_user *u);
/* Refreshes last_seen of a session (idle expiry slides). 0, TRL_ENOTFOUND. */
int trl_auth_session_touch(struct trl_txn *t, const char *secret, int64_t now);
/* Ends one session (logout). 0, TRL_ENOTFOUND. */
int trl_auth_session_end(struct trl_txn *t, const char *secret);
/* Ends every session of user; *n receives how many. */
int trl_auth_sessions_end_user(struct trl_txn *t, const char *user, size_t *n);

/* ---------------------------------------------------------------------------------------------
 * Audit log: logins, logouts, failed logins, token and user changes, permission refusals.
 * Entries are appended under "a" + u64be sequence (never rewritten) and read by administrators.
 */
struct trl_audit {
    const char *actor;  /* who acted ("" when unknown, "cli" for the command line) */
    const char *action; /* login, login_failed, logout, token_create, token_revoke, user_create,
                           user_update, forbidden, ... */
    const char *target; /* what it concerns (a user, a token, a path) */
    const char *client; /* client address, "" when none */
    const char *detail; /* free text, "" when none */
};
/* Appends an entry at now. 0, or a put error. */
int trl_auth_audit(struct trl_txn *t, int64_t now, const struct trl_audit *a);
/* Appends {"items":[...newest first...],"next_before":N|null} with at most limit entries older
 * than sequence before (0: from the newest). */
int trl_auth_audit_list(struct trl_txn *t, size_t limit, uint64_t before, struct trl_buf *out);

#endif
