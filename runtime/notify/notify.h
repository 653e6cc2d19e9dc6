/*
 * notify — in-app notifications: message templates and each user's inbox (DESIGN.md §2, the
 * in-app part of the notify layer; e-mail and webhooks through an outbox come later).
 *
 * A notification is one message to one user: a kind ("approval_task", "assigned", ...), a
 * plain-text subject, a markdown body with its HTML rendering, an optional link to what it is
 * about (a record, an approval task), when it was created and when the user read it. Texts come
 * from templates with {{name}} placeholders whose values a lookup callback supplies; every kind
 * has built-in English and Simplified Chinese templates, and a definition may bring its own.
 * runtime/notify/README.md documents the kinds, their texts and the placeholder rules.
 *
 * Values are text, never markup: the renderer backslash-escapes every ASCII punctuation character
 * of a value (CommonMark §2.4) and turns its line breaks into hard breaks, so a record title such
 * as `*[x](javascript:alert(1))*` shows as written and cannot add a link, emphasis or a block.
 * The HTML comes from cmark with CMARK_OPT_DEFAULT, which drops raw HTML and unsafe link targets
 * (javascript:, vbscript:, file:, data: but for a few image types) of the template text too.
 *
 * Every write runs in the caller's write txn, so a notification commits (or not) with the change
 * that caused it; this module never opens a txn of its own and never checks that the recipient
 * exists (the caller resolves users and their language).
 *
 * Storage (TRL_DB_INBOX, integers big-endian):
 *   'M' user NUL id u64  -> message JSON (the document trl_notify_get returns)
 *   'U' user NUL id u64  -> ""  (present iff the message is unread)
 *   'C' user NUL         -> u64 (the user's unread count; absent when 0)
 * Message ids come from the sequence "message" (trl_txn_seq_next), so they grow with time and
 * newest-first is a reverse scan. Invariant: C(user) equals the number of U keys of the user, and
 * every U key has its M key (trl_notify_check verifies both).
 */
#ifndef TRL_NOTIFY_H
#define TRL_NOTIFY_H

#include "store/store.h"

#define TRL_NOTIFY_BODY_MAX    16384 /* bytes of rendered body markdown; more is TRL_ETOOBIG */
#define TRL_NOTIFY_SUBJECT_MAX 512   /* bytes of a subject; a longer one is cut, ending in "…" */
#define TRL_NOTIFY_VALUE_MAX   1024 /* bytes of one placeholder value; longer ones are cut, "…" */
#define TRL_NOTIFY_NAME_MAX    64   /* bytes of a placeholder name */
#define TRL_NOTIFY_USER_MAX    63   /* bytes of a recipient's user name */
#define TRL_NOTIFY_KIND_MAX    32   /* bytes of a kind */

/* ---------------------------------------------------------------------------------------------
 * Templates
 */
/* Supplies the value of placeholder name (NUL-terminated, n = strlen(name)) by appending its text
 * to value (empty on entry; valid UTF-8 expected, invalid bytes show as U+FFFD). Returns 0, or
 * TRL_ENOTFOUND for a name it does not know (rendered as empty text); any other code stops the
 * rendering, which returns it. */
typedef int (*trl_notify_lookup_fn)(void *ud, const char *name, size_t n, struct trl_buf *value);

/* Renders markdown template tmpl (NUL-terminated UTF-8) with the values of lookup (NULL: every
 * placeholder is unknown): appends the markdown to md_out and, unless html_out is NULL, its HTML
 * to html_out. Placeholders are `{{name}}` or `{{ name }}` with name made of A-Z a-z 0-9 _ . (1 to
 * TRL_NOTIFY_NAME_MAX bytes); anything else, `{{{`, and an unterminated `{{` are literal text.
 * Values are escaped as text (see the essay above) and cut at TRL_NOTIFY_VALUE_MAX bytes; an
 * escaped value takes at most twice that, so a template of up to 7 placeholders and 2 KiB of text
 * always fits (every built-in does).
 * Returns 0, TRL_EINVAL (tmpl is not valid UTF-8), TRL_ETOOBIG (the markdown would exceed
 * TRL_NOTIFY_BODY_MAX bytes), TRL_ENOMEM, or the lookup's error; on failure both buffers hold
 * what they held before. */
int trl_notify_render(const char *tmpl, trl_notify_lookup_fn lookup, void *ud,
                      struct trl_buf *md_out, struct trl_buf *html_out);

/* Renders plain-text template tmpl (a subject) into out (appended): the same placeholders, values
 * inserted verbatim (no escaping: the text is never markup), every control character (line breaks
 * included) turned into a space, leading and trailing spaces trimmed, and the result cut at
 * TRL_NOTIFY_SUBJECT_MAX bytes on a character boundary, ending in "…". Returns 0, TRL_EINVAL
 * (tmpl is not valid UTF-8), TRL_ENOMEM, or the lookup's error; on failure out holds what it held
 * before. */
int trl_notify_render_text(const char *tmpl, trl_notify_lookup_fn lookup, void *ud,
                           struct trl_buf *out);

/* A kind's built-in texts in one language. Static storage. */
struct trl_notify_tmpl {
    const char *kind;                /* "approval_task", "approval_decided", "returned", ... */
    const char *subject;             /* plain-text subject template */
    const char *body;                /* markdown body template */
    const char *const *placeholders; /* names the texts use, NULL-terminated */
};

/* The built-in templates of kind in lang ("zh-CN"; any other language, NULL included, gets
 * English), or NULL for a kind without built-ins. Kinds: approval_task, approval_decided,
 * returned, assigned, sla_warning, sla_breach. */
const struct trl_notify_tmpl *trl_notify_template(const char *kind, const char *lang);

/* ---------------------------------------------------------------------------------------------
 * Sending and the inbox
 */
/* What a message is about; every member optional. */
struct trl_notify_link {
    const char *type; /* record type name (at most 63 bytes), NULL or "" for none */
    uint64_t record;  /* record id, 0 for none */
    uint64_t task;    /* approval task id, 0 for none */
};

/* One message to send. Every pointer is borrowed for the call. */
struct trl_notify_msg {
    const char *user;            /* recipient's user name, 1 to TRL_NOTIFY_USER_MAX bytes */
    const char *lang;            /* recipient's language, "en" or "zh-CN" (NULL: "en") */
    const char *kind;            /* kind: [a-z0-9_], 1 to TRL_NOTIFY_KIND_MAX bytes */
    const char *subject;         /* subject template (plain text), NULL: the kind's built-in */
    const char *body;            /* body template (markdown), NULL: the kind's built-in */
    trl_notify_lookup_fn lookup; /* placeholder values, NULL: every placeholder is empty */
    void *ud;                    /* passed to lookup */
    struct trl_notify_link link; /* what the message is about */
    struct trl_diag *d;          /* where a refusal is explained (en and zh), NULL: nowhere */
};

/* Renders m and stores it unread in user's inbox, in t (a write txn), created at now (UTC ms).
 * *id (unless NULL) receives the message id. Refused, writing nothing: TRL_EINVAL (user, kind or
 * link type out of shape; a kind without built-ins and a NULL template; a template that is not
 * valid UTF-8), TRL_ETOOBIG (the body markdown exceeds TRL_NOTIFY_BODY_MAX); also TRL_ENOMEM,
 * the lookup's error, and store errors (TRL_EMAPFULL, TRL_EIO: the txn is then poisoned). */
int trl_notify_send(struct trl_txn *t, const struct trl_notify_msg *m, int64_t now, uint64_t *id);

/* Appends {"items":[messages, newest first],"unread":N,"next_cursor":"id"|null} of user's inbox:
 * every message, or only unread ones. limit: 1 or more items per page; cursor: a next_cursor of a
 * previous page (0 for the first). Each message is
 *   {"id":N,"kind":"..","subject":"..","body_md":"..","body_html":"..",
 *    "link":{"type":".."|null,"record":N|null,"task":N|null},
 *    "created_at":"RFC 3339","read_at":"RFC 3339"|null}.
 * Returns 0, TRL_EINVAL (user empty or longer than TRL_NOTIFY_USER_MAX, limit 0), TRL_ENOMEM,
 * TRL_ECORRUPT, TRL_EIO; on failure out holds what it held before. */
int trl_notify_list(struct trl_txn *t, const char *user, bool unread_only, size_t limit,
                    uint64_t cursor, struct trl_buf *out);

/* Appends message id of user as JSON. 0, TRL_ENOTFOUND (unknown, or another user's: the same
 * answer, so nothing leaks), TRL_EINVAL (user out of shape), TRL_ENOMEM, TRL_EIO. */
int trl_notify_get(struct trl_txn *t, const char *user, uint64_t id, struct trl_buf *out);

/* Marks message id of user read at now, in t (a write txn). Reading a read message changes
 * nothing and keeps its first read_at. 0, TRL_ENOTFOUND (unknown, or another user's),
 * TRL_EINVAL (user out of shape), TRL_ECORRUPT, TRL_ENOMEM, store errors. */
int trl_notify_read(struct trl_txn *t, const char *user, uint64_t id, int64_t now);

/* Marks every unread message of user read at now, in t (a write txn); *n (unless NULL) receives
 * how many. 0, TRL_EINVAL (user out of shape), TRL_ECORRUPT, TRL_ENOMEM, store errors. */
int trl_notify_read_all(struct trl_txn *t, const char *user, int64_t now, size_t *n);

/* user's unread count, O(1). 0, TRL_EINVAL (user out of shape), TRL_ECORRUPT, TRL_EIO. */
int trl_notify_unread(struct trl_txn *t, const char *user, uint64_t *n);

/* Verifies the inbox invariants over every user (for `trellis check` and tests): each unread
 * flag has its message and each user's count equals their unread flags. 0, or TRL_ECORRUPT with
 * d (may be NULL) naming the first disagreement; TRL_EIO, TRL_ENOMEM. */
int trl_notify_check(struct trl_txn *t, struct trl_diag *d);

#endif
