/* approval.c — approval definitions, voting rules, stored approvals, tasks and inboxes. */
#include "approval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Definitions
 */
static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void trl_appr_def_free(struct trl_appr_def *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->nsteps; i++) {
        struct trl_appr_step *s = &a->steps[i];
        free(s->name);
        trl_labels_free(&s->labels);
        free_strv(s->names, s->nnames);
        free(s->condition);
        trl_expr_free(s->cond);
        free(s->on_approve);
        free(s->on_reject);
        free(s->calendar);
        free(s->escalate_to);
    }
    free(a->steps);
    free(a->name);
    trl_labels_free(&a->labels);
    free(a->state);
    free(a->on_approve);
    free(a->on_reject);
    free(a->on_return);
    free(a->on_recall);
    memset(a, 0, sizeof(*a));
}

static char *dup_or_err(struct trl_defcheck *c, const char *s)
{
    char *r = strdup(s);
    if (!r) c->rc = TRL_ENOMEM;
    return r;
}

/* An optional transition name member into an owned string (NULL when absent). */
static char *opt_name(struct trl_defcheck *c, const cJSON *j, const char *key, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v) || !trl_def_ident(v->valuestring)) {
        trl_def_err(c, path, "must name a transition");
        return NULL;
    }
    return dup_or_err(c, v->valuestring);
}

static void parse_approvers(struct trl_defcheck *c, const cJSON *j, const char *path,
                            const struct trl_type *ty, struct trl_appr_step *s)
{
    static const char *const kinds[] = {"users", "role", "group", "field", "manager"};
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path,
                    "name the approvers: {\"users\": [...]}, {\"role\": ...}, {\"group\": ...}, "
                    "{\"field\": ...} or {\"manager\": true}");
        return;
    }
    trl_def_keys(c, j, path, kinds, 5);
    if (cJSON_GetArraySize(j) != 1) {
        trl_def_err(c, path, "give exactly one of users, role, group, field, manager");
        return;
    }
    const cJSON *v = j->child;
    char p[200];
    snprintf(p, sizeof(p), "%.150s.%s", path, v->string);
    if (strcmp(v->string, "manager") == 0) {
        s->who = TRL_APPR_MANAGER;
        if (!cJSON_IsTrue(v)) trl_def_err(c, p, "must be true (the requester's manager)");
        return;
    }
    if (strcmp(v->string, "users") == 0) {
        s->who = TRL_APPR_USERS;
        size_t n, k = 0;
        if (!(s->names = trl_def_array(c, v, p, 1, TRL_APPR_MAX_APPROVERS, sizeof(*s->names),
                                       "user names", &n)))
            return;
        for (const cJSON *u = v->child; u; u = u->next, k++) {
            char p2[220];
            snprintf(p2, sizeof(p2), "%.150s[%zu]", p, k);
            if (!cJSON_IsString(u) || !trl_auth_name_valid(u->valuestring)) {
                trl_def_err(c, p2, "must be a user name");
                continue;
            }
            for (size_t q = 0; q < s->nnames; q++)
                if (strcmp(s->names[q], u->valuestring) == 0)
                    trl_def_err(c, p2, "user '%s' is listed twice", u->valuestring);
            s->names[s->nnames++] = dup_or_err(c, u->valuestring);
        }
        return;
    }
    s->who = strcmp(v->string, "role") == 0    ? TRL_APPR_ROLE
             : strcmp(v->string, "group") == 0 ? TRL_APPR_GROUP
                                               : TRL_APPR_FIELD;
    if (!cJSON_IsString(v) || !trl_auth_name_valid(v->valuestring)) {
        trl_def_err(c, p, "must be a %s name", v->string);
        return;
    }
    if (s->who == TRL_APPR_FIELD && ty) {
        const struct trl_field *f = trl_type_field(ty, v->valuestring, strlen(v->valuestring));
        if (!f)
            trl_def_err(c, p, "type %s has no field '%s'", ty->name, v->valuestring);
        else if (f->type != TRL_FT_TEXT)
            trl_def_err(c, p, "field '%s' must be a text field holding a user name",
                        v->valuestring);
    }
    if (!(s->names = calloc(1, sizeof(*s->names)))) {
        c->rc = TRL_ENOMEM;
        return;
    }
    s->names[0] = dup_or_err(c, v->valuestring);
    s->nnames = 1;
}

static void parse_step(struct trl_defcheck *c, const cJSON *j, const char *path,
                       const struct trl_type *ty, struct trl_appr_def *a, struct trl_appr_step *s)
{
    static const char *const keys[] = {"name",      "labels",     "approvers",  "mode",
                                       "quorum",    "condition",  "allow_self", "on_approve",
                                       "on_reject", "time_limit", "escalate_to"};
    char p[200];
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object");
        return;
    }
    trl_def_keys(c, j, path, keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%.150s.name", path);
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring)) {
        trl_def_err(c, p, "must be a lower-case identifier (a-z, 0-9, _)");
    } else {
        for (size_t k = 0; k < a->nsteps; k++)
            if (&a->steps[k] != s && a->steps[k].name &&
                strcmp(a->steps[k].name, nm->valuestring) == 0)
                trl_def_err(c, p, "step '%s' is defined twice", nm->valuestring);
    }
    s->name = dup_or_err(c, cJSON_IsString(nm) ? nm->valuestring : "");
    snprintf(p, sizeof(p), "%.150s.labels", path);
    trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"), p, &s->labels);
    snprintf(p, sizeof(p), "%.150s.approvers", path);
    parse_approvers(c, cJSON_GetObjectItemCaseSensitive(j, "approvers"), p, ty, s);

    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(j, "mode");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quorum");
    snprintf(p, sizeof(p), "%.150s.mode", path);
    const char *m = cJSON_IsString(mode) ? mode->valuestring : mode ? "" : "any";
    if (strcmp(m, "any") == 0)
        s->mode = TRL_APPR_ANY;
    else if (strcmp(m, "all") == 0)
        s->mode = TRL_APPR_ALL;
    else if (strcmp(m, "quorum") == 0)
        s->mode = TRL_APPR_QUORUM;
    else if (strcmp(m, "sequential") == 0)
        s->mode = TRL_APPR_SEQUENTIAL;
    else
        trl_def_err(c, p, "must be \"any\", \"all\", \"quorum\" or \"sequential\"");
    snprintf(p, sizeof(p), "%.150s.quorum", path);
    if (s->mode == TRL_APPR_QUORUM) {
        if (!cJSON_IsNumber(q) || q->valuedouble < 1 || q->valuedouble > TRL_APPR_MAX_APPROVERS ||
            q->valuedouble != (double)(int)q->valuedouble)
            trl_def_err(c, p, "a quorum step needs \"quorum\": approvals needed, 1 to %d",
                        TRL_APPR_MAX_APPROVERS);
        else
            s->quorum = (unsigned)q->valueint;
        if (s->who == TRL_APPR_USERS && s->nnames && s->quorum > s->nnames)
            trl_def_err(c, p, "needs %u approvals but only %zu users are listed", s->quorum,
                        s->nnames);
        if ((s->who == TRL_APPR_FIELD || s->who == TRL_APPR_MANAGER) && s->quorum > 1)
            trl_def_err(c, p, "a %s step has one approver",
                        s->who == TRL_APPR_FIELD ? "field" : "manager");
    } else if (q) {
        trl_def_err(c, p, "only a quorum step takes a quorum");
    }

    const cJSON *cond = cJSON_GetObjectItemCaseSensitive(j, "condition");
    snprintf(p, sizeof(p), "%.150s.condition", path);
    if (cond && !cJSON_IsString(cond)) {
        trl_def_err(c, p, "must be an expression such as \"budget > 50000\"");
    } else if (cond) {
        trl_rec_def_condition(c, cond->valuestring, p, ty, &s->cond, &s->condition);
    }
    const cJSON *self = cJSON_GetObjectItemCaseSensitive(j, "allow_self");
    snprintf(p, sizeof(p), "%.150s.allow_self", path);
    if (self && !cJSON_IsBool(self)) trl_def_err(c, p, "must be true or false");
    s->allow_self = cJSON_IsTrue(self);
    snprintf(p, sizeof(p), "%.150s.on_approve", path);
    s->on_approve = opt_name(c, j, "on_approve", p);
    snprintf(p, sizeof(p), "%.150s.on_reject", path);
    s->on_reject = opt_name(c, j, "on_reject", p);
    /* "time_limit": {"hours": N, "minutes": M, "calendar": "name"} and whom to escalate to. */
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(j, "time_limit");
    snprintf(p, sizeof(p), "%.150s.time_limit", path);
    if (tl) {
        static const char *const tkeys[] = {"hours", "minutes", "calendar"};
        if (!cJSON_IsObject(tl)) {
            trl_def_err(c, p, "must be {\"hours\": N, \"minutes\": M, \"calendar\": name}");
        } else {
            trl_def_keys(c, tl, p, tkeys, 3);
            int64_t minutes = 0;
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(tl, "hours");
            const cJSON *mi = cJSON_GetObjectItemCaseSensitive(tl, "minutes");
            const cJSON *cal = cJSON_GetObjectItemCaseSensitive(tl, "calendar");
            if (h && (!cJSON_IsNumber(h) || h->valuedouble < 0 || h->valuedouble > 100000))
                trl_def_err(c, p, "hours must be 0 to 100000");
            else if (h)
                minutes += (int64_t)h->valuedouble * 60;
            if (mi && (!cJSON_IsNumber(mi) || mi->valuedouble < 0 || mi->valuedouble > 6000000))
                trl_def_err(c, p, "minutes must be a positive number");
            else if (mi)
                minutes += (int64_t)mi->valuedouble;
            if (minutes <= 0) trl_def_err(c, p, "give hours and/or minutes");
            s->time_limit_ms = minutes * 60000;
            if (cal && (!cJSON_IsString(cal) || !trl_def_ident(cal->valuestring)))
                trl_def_err(c, p, "calendar must name a business calendar");
            else if (cal)
                s->calendar = dup_or_err(c, cal->valuestring);
        }
    }
    const cJSON *esc = cJSON_GetObjectItemCaseSensitive(j, "escalate_to");
    snprintf(p, sizeof(p), "%.150s.escalate_to", path);
    if (esc) {
        const cJSON *v = cJSON_IsObject(esc) ? esc->child : NULL;
        if (!tl) trl_def_err(c, p, "escalation needs a time_limit");
        if (!v || v->next) {
            trl_def_err(c, p, "must be {\"user\": name}, {\"role\": name} or {\"manager\": true}");
        } else if (strcmp(v->string, "manager") == 0 && cJSON_IsTrue(v)) {
            s->escalate_who = TRL_APPR_MANAGER;
            s->escalate_to = dup_or_err(c, "manager");
        } else if ((strcmp(v->string, "user") == 0 || strcmp(v->string, "role") == 0) &&
                   cJSON_IsString(v) && trl_auth_name_valid(v->valuestring)) {
            s->escalate_who = strcmp(v->string, "user") == 0 ? TRL_APPR_USERS : TRL_APPR_ROLE;
            s->escalate_to = dup_or_err(c, v->valuestring);
        } else {
            trl_def_err(c, p, "must be {\"user\": name}, {\"role\": name} or {\"manager\": true}");
        }
    }
}

void trl_appr_def_parse(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                        const struct trl_type *ty, struct trl_appr_def *a)
{
    static const char *const keys[] = {"name",       "labels",    "state",     "steps",
                                       "on_approve", "on_reject", "on_return", "on_recall"};
    char p[160];
    memset(a, 0, sizeof(*a));
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object");
        return;
    }
    trl_def_keys(c, j, path, keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%.150s.name", path);
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
        trl_def_err(c, p, "must be a lower-case identifier (a-z, 0-9, _)");
    a->name = dup_or_err(c, cJSON_IsString(nm) ? nm->valuestring : "");
    snprintf(p, sizeof(p), "%.150s.labels", path);
    trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"), p, &a->labels);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "state");
    snprintf(p, sizeof(p), "%.150s.state", path);
    if (!cJSON_IsString(st)) trl_def_err(c, p, "name the state this approval runs in");
    a->state = dup_or_err(c, cJSON_IsString(st) ? st->valuestring : "");
    const char *outs[4] = {"on_approve", "on_reject", "on_return", "on_recall"};
    char **dst[4] = {&a->on_approve, &a->on_reject, &a->on_return, &a->on_recall};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%.150s.%s", path, outs[i]);
        *dst[i] = opt_name(c, j, outs[i], p);
        if (i < 2 && !cJSON_GetObjectItemCaseSensitive(j, outs[i]))
            trl_def_err(c, p, "name the transition that runs when the approval %s",
                        i == 0 ? "is approved" : "is rejected");
    }
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
    snprintf(p, sizeof(p), "%.150s.steps", path);
    size_t n, k = 0;
    if (!(a->steps = trl_def_array(c, steps, p, 1, 32, sizeof(*a->steps), "steps", &n))) return;
    for (const cJSON *s = steps->child; s; s = s->next, k++) {
        char p2[200];
        snprintf(p2, sizeof(p2), "%.150s.steps[%zu]", path, k);
        a->nsteps++;
        parse_step(c, s, p2, ty, a, &a->steps[k]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Voting rules
 */
enum trl_appr_outcome trl_appr_outcome(enum trl_appr_mode mode, unsigned quorum, unsigned n,
                                       unsigned approves, unsigned rejects)
{
    switch (mode) {
    case TRL_APPR_ANY:
        if (approves) return TRL_APPR_APPROVED;
        return rejects ? TRL_APPR_REJECTED : TRL_APPR_PENDING;
    case TRL_APPR_ALL:
    case TRL_APPR_SEQUENTIAL:
        if (rejects) return TRL_APPR_REJECTED;
        return approves >= n ? TRL_APPR_APPROVED : TRL_APPR_PENDING;
    case TRL_APPR_QUORUM:
        if (approves >= quorum) return TRL_APPR_APPROVED;
        /* Those who have not voted cannot lift the approvals to the quorum any more. */
        if (n - (rejects < n ? rejects : n) < quorum) return TRL_APPR_REJECTED;
        return TRL_APPR_PENDING;
    }
    return TRL_APPR_PENDING;
}

static const char *mode_name(enum trl_appr_mode m)
{
    switch (m) {
    case TRL_APPR_ANY:
        return "any";
    case TRL_APPR_ALL:
        return "all";
    case TRL_APPR_QUORUM:
        return "quorum";
    case TRL_APPR_SEQUENTIAL:
        return "sequential";
    }
    return "any";
}

static enum trl_appr_mode mode_of(const char *s)
{
    return strcmp(s, "all") == 0          ? TRL_APPR_ALL
           : strcmp(s, "quorum") == 0     ? TRL_APPR_QUORUM
           : strcmp(s, "sequential") == 0 ? TRL_APPR_SEQUENTIAL
                                          : TRL_APPR_ANY;
}

/* ---------------------------------------------------------------------------------------------
 * Keys and documents
 */
/* kind + id. */
static void id_key(unsigned char k[9], char kind, uint64_t id)
{
    k[0] = (unsigned char)kind;
    trl_put_u64be(k + 1, id);
}

/* kind + name + NUL [+ u64 [+ u64]] into b. */
static int name_key(struct trl_buf *b, char kind, const char *name, const uint64_t *a,
                    const uint64_t *c)
{
    trl_buf_clear(b);
    int rc = trl_buf_addc(b, kind) || trl_buf_add(b, name, strlen(name) + 1);
    if (!rc && a) rc = trl_buf_add_u64be(b, *a);
    if (!rc && c) rc = trl_buf_add_u64be(b, *c);
    return rc ? TRL_ENOMEM : 0;
}

static int doc_get(struct trl_txn *t, char kind, uint64_t id, cJSON **out)
{
    unsigned char k[9];
    id_key(k, kind, id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_APPR, k, sizeof(k), &v);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(v.p, v.n);
    return *out ? 0 : TRL_ECORRUPT;
}

static int doc_put(struct trl_txn *t, char kind, uint64_t id, const cJSON *j)
{
    unsigned char k[9];
    id_key(k, kind, id);
    char *s = cJSON_PrintUnformatted(j);
    if (!s) return TRL_ENOMEM;
    int rc = trl_txn_put(t, TRL_DB_APPR, k, sizeof(k), s, strlen(s), 0);
    free(s);
    return rc;
}

static int flag_put(struct trl_txn *t, char kind, const char *user, uint64_t task)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, kind, user, &task, NULL);
    if (!rc) rc = trl_txn_put(t, TRL_DB_APPR, k.data, k.len, "", 0, 0);
    trl_buf_free(&k);
    return rc;
}

static int flag_del(struct trl_txn *t, char kind, const char *user, uint64_t task)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, kind, user, &task, NULL);
    if (!rc) rc = trl_txn_del(t, TRL_DB_APPR, k.data, k.len);
    trl_buf_free(&k);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int64_t jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void jset_str(cJSON *j, const char *k, const char *v)
{
    cJSON *n = v ? cJSON_CreateString(v) : cJSON_CreateNull();
    if (cJSON_GetObjectItemCaseSensitive(j, k))
        cJSON_ReplaceItemInObjectCaseSensitive(j, k, n);
    else
        cJSON_AddItemToObject(j, k, n);
}

static void jset_num(cJSON *j, const char *k, double v)
{
    cJSON *n = cJSON_CreateNumber(v);
    if (cJSON_GetObjectItemCaseSensitive(j, k))
        cJSON_ReplaceItemInObjectCaseSensitive(j, k, n);
    else
        cJSON_AddItemToObject(j, k, n);
}

static void jset_time(cJSON *j, const char *k, int64_t ms)
{
    char ts[40];
    trl_datetime_format(ms, ts);
    jset_str(j, k, ts);
}

static cJSON *labels_json(const struct trl_labels *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "en", l->en ? l->en : "");
    cJSON_AddStringToObject(o, "zh-CN", l->zh ? l->zh : "");
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Approvals
 */
int trl_appr_start(struct trl_txn *t, const struct trl_appr_def *def,
                   const struct trl_appr_subject *s, int64_t now, uint64_t *id)
{
    int rc = trl_txn_seq_next(t, "approval", id);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddNumberToObject(j, "id", (double)*id);
    cJSON_AddStringToObject(j, "name", def->name);
    cJSON_AddItemToObject(j, "labels", labels_json(&def->labels));
    cJSON_AddStringToObject(j, "workflow", s->workflow);
    cJSON_AddStringToObject(j, "type", s->type);
    cJSON_AddNumberToObject(j, "record", (double)s->record);
    cJSON_AddStringToObject(j, "title", s->title ? s->title : "");
    cJSON_AddStringToObject(j, "requester", s->requester ? s->requester : "");
    cJSON_AddStringToObject(j, "state", def->state);
    cJSON_AddStringToObject(j, "status", "pending");
    cJSON_AddNumberToObject(j, "step", 0);
    jset_time(j, "started_at", now);
    cJSON_AddNullToObject(j, "ended_at");
    cJSON *steps = cJSON_AddArrayToObject(j, "steps");
    for (size_t i = 0; steps && i < def->nsteps; i++) {
        const struct trl_appr_step *st = &def->steps[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", st->name);
        cJSON_AddItemToObject(o, "labels", labels_json(&st->labels));
        cJSON_AddStringToObject(o, "mode", mode_name(st->mode));
        if (st->mode == TRL_APPR_QUORUM) cJSON_AddNumberToObject(o, "quorum", st->quorum);
        cJSON_AddStringToObject(o, "status", "waiting");
        cJSON_AddNumberToObject(o, "approvers", 0);
        cJSON_AddNumberToObject(o, "approves", 0);
        cJSON_AddNumberToObject(o, "rejects", 0);
        cJSON_AddArrayToObject(o, "tasks");
        cJSON_AddItemToArray(steps, o);
    }
    rc = doc_put(t, 'A', *id, j);
    cJSON_Delete(j);
    if (rc) return rc;
    struct trl_buf k;
    trl_buf_init(&k);
    rc = name_key(&k, 'R', s->type, &s->record, id);
    if (!rc) rc = trl_txn_put(t, TRL_DB_APPR, k.data, k.len, "", 0, 0);
    trl_buf_free(&k);
    return rc;
}

int trl_appr_active(struct trl_txn *t, const char *type, uint64_t record, uint64_t *id, char *name,
                    size_t name_n)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, 'R', type, &record, NULL);
    if (rc) return rc;
    /* The newest approval of the record is the only one that can be pending. */
    uint64_t max = UINT64_MAX;
    if (trl_buf_add_u64be(&k, max)) {
        trl_buf_free(&k);
        return TRL_ENOMEM;
    }
    struct trl_cursor *c = NULL;
    if ((rc = trl_cursor_open(t, TRL_DB_APPR, &c))) {
        trl_buf_free(&k);
        return rc;
    }
    rc = trl_cursor_seek_before(c, k.data, k.len);
    if (!rc) {
        struct trl_slice ck;
        trl_cursor_get(c, &ck, NULL);
        if (ck.n != k.len || memcmp(ck.p, k.data, k.len - 8) != 0)
            rc = TRL_ENOTFOUND;
        else
            *id = trl_get_u64be((const unsigned char *)ck.p + k.len - 8);
    }
    trl_cursor_close(c);
    trl_buf_free(&k);
    if (rc) return rc;
    cJSON *j = NULL;
    if ((rc = doc_get(t, 'A', *id, &j))) return rc == TRL_ENOTFOUND ? TRL_ECORRUPT : rc;
    if (strcmp(jstr(j, "status"), "pending") != 0) rc = TRL_ENOTFOUND;
    if (!rc && name) snprintf(name, name_n, "%s", jstr(j, "name"));
    cJSON_Delete(j);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Approvers
 */
static bool ooo_active(const struct trl_appr_ooo *o, int64_t now)
{
    return o->delegate[0] && now >= o->from_ms && now < o->until_ms;
}

/* Follows out-of-office rules from user (at most 8 hops, stopping at a cycle). */
static int stand_in(struct trl_txn *t, const char *user, int64_t now, char *out, size_t n)
{
    char cur[64];
    snprintf(cur, sizeof(cur), "%s", user);
    for (int hop = 0; hop < 8; hop++) {
        struct trl_appr_ooo o;
        int rc = trl_appr_ooo_get(t, cur, &o);
        if (rc == TRL_ENOTFOUND || (!rc && !ooo_active(&o, now))) break;
        if (rc) return rc;
        if (strcmp(o.delegate, user) == 0) break;
        snprintf(cur, sizeof(cur), "%s", o.delegate);
    }
    snprintf(out, n, "%s", cur);
    return 0;
}

struct resolver {
    struct trl_txn *t;
    const struct trl_appr_step *step;
    const char *requester;
    int64_t now;
    struct trl_appr_approver *out;
    size_t n;
    size_t self_left_out; /* the requester was an approver and was left out */
};

static int add_approver(struct resolver *r, const struct trl_user *u)
{
    if (!u->active) return 0;
    if (!r->step->allow_self && r->requester && strcmp(u->name, r->requester) == 0) {
        r->self_left_out++;
        return 0;
    }
    char who[64];
    int rc = stand_in(r->t, u->name, r->now, who, sizeof(who));
    if (rc) return rc;
    if (!r->step->allow_self && r->requester && strcmp(who, r->requester) == 0) {
        r->self_left_out++;
        return 0;
    }
    struct trl_user d;
    if (strcmp(who, u->name) != 0 && (trl_auth_user_get(r->t, who, &d) != 0 || !d.active))
        snprintf(who, sizeof(who), "%s", u->name); /* the delegate is gone: keep the approver */
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->out[i].user, who) == 0) return 0; /* one person, one vote */
    if (r->n >= TRL_APPR_MAX_APPROVERS) return 0;
    snprintf(r->out[r->n].user, sizeof(r->out[r->n].user), "%s", who);
    snprintf(r->out[r->n].via, sizeof(r->out[r->n].via), "%s",
             strcmp(who, u->name) != 0 ? u->name : "");
    r->n++;
    return 0;
}

static int add_named(struct resolver *r, const char *name)
{
    struct trl_user u;
    int rc = trl_auth_user_get(r->t, name, &u);
    if (rc == TRL_ENOTFOUND) return 0;
    return rc ? rc : add_approver(r, &u);
}

static int add_holder(void *ud, const struct trl_user *u)
{
    return add_approver(ud, u);
}

int trl_appr_resolve(struct trl_txn *t, const struct trl_appr_step *step, const char *requester,
                     const char *field_user, int64_t now, struct trl_appr_approver *out, size_t *n,
                     struct trl_diag *d)
{
    struct resolver r = {.t = t, .step = step, .requester = requester, .now = now, .out = out};
    int rc = 0;
    const char *what = "";
    switch (step->who) {
    case TRL_APPR_USERS:
        for (size_t i = 0; i < step->nnames && !rc; i++)
            rc = add_named(&r, step->names[i]);
        what = "listed users";
        break;
    case TRL_APPR_ROLE:
        rc = trl_auth_role_users(t, step->names[0], add_holder, &r);
        what = "role";
        break;
    case TRL_APPR_GROUP: {
        struct trl_group *g = malloc(sizeof(*g));
        if (!g) return TRL_ENOMEM;
        rc = trl_auth_group_get(t, step->names[0], g);
        if (rc == TRL_ENOTFOUND) rc = 0, g->nmembers = 0;
        for (size_t i = 0; i < g->nmembers && !rc; i++)
            rc = add_named(&r, g->members[i]);
        free(g);
        what = "group";
        break;
    }
    case TRL_APPR_FIELD:
        if (field_user && *field_user) rc = add_named(&r, field_user);
        what = "field";
        break;
    case TRL_APPR_MANAGER: {
        struct trl_user u;
        if (requester && *requester && trl_auth_user_get(t, requester, &u) == 0 && u.manager[0])
            rc = add_named(&r, u.manager);
        what = "manager";
        break;
    }
    }
    if (rc) return rc;
    *n = r.n;
    unsigned need = step->mode == TRL_APPR_QUORUM ? step->quorum : 1;
    if (r.n >= need) return 0;
    const char *name = step->nnames ? step->names[0] : "";
    if (r.n == 0) {
        trl_diag_set(d, TRL_EVALIDATION,
                     "approval step '%s' has no approver (%s%s%s: no active user%s)", step->name,
                     what, *name ? " " : "", step->who == TRL_APPR_USERS ? "" : name,
                     r.self_left_out ? " other than the requester" : "");
        trl_diag_zh(d, "审批步骤“%s”没有审批人(%s%s:没有%s可用的在职用户)", step->name, what,
                    step->who == TRL_APPR_USERS ? "" : name, r.self_left_out ? "除申请人以外" : "");
    } else {
        trl_diag_set(d, TRL_EVALIDATION,
                     "approval step '%s' needs %u approvals but has only %zu approver(s)",
                     step->name, need, r.n);
        trl_diag_zh(d, "审批步骤“%s”需要 %u 人同意,但只有 %zu 名审批人", step->name, need, r.n);
    }
    return TRL_EVALIDATION;
}

/* ---------------------------------------------------------------------------------------------
 * Steps and tasks
 */
static cJSON *step_at(cJSON *a, size_t i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "steps"), (int)i);
}

static int new_task(struct trl_txn *t, const cJSON *a, size_t i, const cJSON *step,
                    const char *user, const char *via, const char *from, bool pending,
                    unsigned order, int64_t now, uint64_t *id)
{
    int rc = trl_txn_seq_next(t, "task", id);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddNumberToObject(j, "id", (double)*id);
    cJSON_AddNumberToObject(j, "approval", jnum(a, "id"));
    cJSON_AddStringToObject(j, "approval_name", jstr(a, "name"));
    cJSON_AddStringToObject(j, "workflow", jstr(a, "workflow"));
    cJSON_AddStringToObject(j, "type", jstr(a, "type"));
    cJSON_AddNumberToObject(j, "record", jnum(a, "record"));
    cJSON_AddStringToObject(j, "title", jstr(a, "title"));
    cJSON_AddStringToObject(j, "requester", jstr(a, "requester"));
    cJSON_AddStringToObject(j, "step", jstr(step, "name"));
    cJSON_AddNumberToObject(j, "step_index", (double)i);
    cJSON_AddItemToObject(j, "step_labels",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(step, "labels"), 1));
    cJSON_AddStringToObject(j, "mode", jstr(step, "mode"));
    cJSON_AddNumberToObject(j, "order", order);
    cJSON_AddStringToObject(j, "assignee", user);
    jset_str(j, "on_behalf_of", via && *via ? via : NULL);
    jset_str(j, "delegated_from", from && *from ? from : NULL);
    cJSON_AddStringToObject(j, "status", pending ? "pending" : "waiting");
    jset_time(j, "created_at", now);
    cJSON_AddNullToObject(j, "decided_at");
    cJSON_AddNullToObject(j, "comment");
    rc = doc_put(t, 'T', *id, j);
    cJSON_Delete(j);
    if (!rc && pending) rc = flag_put(t, 'P', user, *id);
    return rc;
}

int trl_appr_open_step(struct trl_txn *t, uint64_t id, size_t i, const struct trl_appr_step *step,
                       const struct trl_appr_approver *ap, size_t n, int64_t now,
                       uint64_t *task_ids)
{
    cJSON *a = NULL;
    int rc = doc_get(t, 'A', id, &a);
    if (rc) return rc;
    cJSON *s = step_at(a, i);
    if (!s) {
        cJSON_Delete(a);
        return TRL_ECORRUPT;
    }
    jset_num(a, "step", (double)i);
    jset_str(s, "status", "pending");
    jset_num(s, "approvers", (double)n);
    jset_time(s, "started_at", now);
    cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
    for (size_t k = 0; k < n && !rc; k++) {
        uint64_t tid;
        bool pending = step->mode != TRL_APPR_SEQUENTIAL || k == 0;
        rc = new_task(t, a, i, s, ap[k].user, ap[k].via, NULL, pending, (unsigned)k, now, &tid);
        if (!rc) cJSON_AddItemToArray(tasks, cJSON_CreateNumber((double)tid));
        if (!rc && task_ids) task_ids[k] = tid;
    }
    if (!rc) rc = doc_put(t, 'A', id, a);
    cJSON_Delete(a);
    return rc;
}

int trl_appr_skip_step(struct trl_txn *t, uint64_t id, size_t i, int64_t now)
{
    cJSON *a = NULL;
    int rc = doc_get(t, 'A', id, &a);
    if (rc) return rc;
    cJSON *s = step_at(a, i);
    if (!s) {
        cJSON_Delete(a);
        return TRL_ECORRUPT;
    }
    jset_str(s, "status", "skipped");
    jset_time(s, "ended_at", now);
    rc = doc_put(t, 'A', id, a);
    cJSON_Delete(a);
    return rc;
}

/* Closes an open task (pending or waiting) with status, moving it out of the inbox. */
static int close_task(struct trl_txn *t, cJSON *task, const char *status, const char *comment,
                      int64_t now)
{
    const char *user = jstr(task, "assignee");
    bool was_pending = strcmp(jstr(task, "status"), "pending") == 0;
    uint64_t tid = (uint64_t)jnum(task, "id");
    jset_str(task, "status", status);
    jset_time(task, "decided_at", now);
    if (comment && *comment) jset_str(task, "comment", comment);
    int rc = doc_put(t, 'T', tid, task);
    if (!rc && was_pending) rc = flag_del(t, 'P', user, tid);
    if (!rc) rc = flag_put(t, 'D', user, tid);
    return rc;
}

/* Cancels every open task of step s. */
static int cancel_open(struct trl_txn *t, cJSON *s, int64_t now)
{
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
    int rc = 0;
    for (const cJSON *it = tasks ? tasks->child : NULL; it && !rc; it = it->next) {
        cJSON *task = NULL;
        if ((rc = doc_get(t, 'T', (uint64_t)it->valuedouble, &task))) break;
        const char *st = jstr(task, "status");
        if (strcmp(st, "pending") == 0 || strcmp(st, "waiting") == 0)
            rc = close_task(t, task, "cancelled", NULL, now);
        cJSON_Delete(task);
    }
    return rc;
}

int trl_appr_task_info(struct trl_txn *t, uint64_t task, struct trl_appr_result *r)
{
    cJSON *j = NULL;
    int rc = doc_get(t, 'T', task, &j);
    if (rc) return rc;
    memset(r, 0, sizeof(*r));
    r->approval = (uint64_t)jnum(j, "approval");
    snprintf(r->workflow, sizeof(r->workflow), "%s", jstr(j, "workflow"));
    snprintf(r->type, sizeof(r->type), "%s", jstr(j, "type"));
    r->record = (uint64_t)jnum(j, "record");
    r->step = (size_t)jnum(j, "step_index");
    snprintf(r->step_name, sizeof(r->step_name), "%s", jstr(j, "step"));
    snprintf(r->requester, sizeof(r->requester), "%s", jstr(j, "requester"));
    snprintf(r->assignee, sizeof(r->assignee), "%s", jstr(j, "assignee"));
    snprintf(r->approval_name, sizeof(r->approval_name), "%s", jstr(j, "approval_name"));
    cJSON_Delete(j);
    return 0;
}

struct pending_count {
    const char *type, *name, *state;
    uint64_t n;
};

int trl_appr_pending_count(struct trl_txn *t, const char *type, const char *name, const char *state,
                           uint64_t *n)
{
    *n = 0;
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_APPR, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, "A", 1); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n != 9 || ((const char *)k.p)[0] != 'A') break;
        cJSON *j = cJSON_ParseWithLength(v.p, v.n);
        if (!j) {
            rc = TRL_ECORRUPT;
            break;
        }
        if (strcmp(jstr(j, "status"), "pending") == 0 && strcmp(jstr(j, "type"), type) == 0 &&
            (!name || strcmp(jstr(j, "name"), name) == 0) &&
            (!state || strcmp(jstr(j, "state"), state) == 0))
            (*n)++;
        cJSON_Delete(j);
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

static int refuse(struct trl_diag *d, int code, const char *rule, const char *en, const char *zh)
{
    trl_diag_set(d, code, "%s", en);
    trl_diag_zh(d, "%s", zh);
    trl_diag_rule(d, rule, "");
    return code;
}

/* The task of step s that holds user (open or not), or NULL. Owned by the caller. */
static int find_holder(struct trl_txn *t, const cJSON *s, const char *user, bool open_only,
                       bool *found)
{
    *found = false;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
    for (const cJSON *it = tasks ? tasks->child : NULL; it && !*found; it = it->next) {
        cJSON *task = NULL;
        int rc = doc_get(t, 'T', (uint64_t)it->valuedouble, &task);
        if (rc) return rc;
        const char *st = jstr(task, "status");
        bool open = strcmp(st, "pending") == 0 || strcmp(st, "waiting") == 0;
        if (strcmp(jstr(task, "assignee"), user) == 0 && (open || !open_only)) *found = true;
        cJSON_Delete(task);
    }
    return 0;
}

static int decide(struct trl_txn *t, cJSON *a, cJSON *task, const char *who,
                  enum trl_appr_decision dec, const char *comment, const char *to, bool allow_self,
                  int64_t now, struct trl_appr_result *r, struct trl_diag *d)
{
    size_t si = (size_t)jnum(task, "step_index");
    cJSON *s = step_at(a, si);
    if (!s) return TRL_ECORRUPT;
    uint64_t tid = (uint64_t)jnum(task, "id");
    int rc;
    if (dec == TRL_DECIDE_DELEGATE) {
        struct trl_user u;
        const char *err_en = NULL, *err_zh = NULL;
        bool holds = false;
        if (!to || !*to) {
            err_en = "say whom to delegate to (\"to\": a user name)";
            err_zh = "请指定转交给谁(\"to\":用户名)";
        } else if (strcmp(to, jstr(task, "assignee")) == 0) {
            err_en = "the task is already yours";
            err_zh = "该任务已经是你的";
        } else if (trl_auth_user_get(t, to, &u) != 0 || !u.active) {
            err_en = "no active user by that name";
            err_zh = "没有该名称的在职用户";
        } else if (!allow_self && strcmp(to, jstr(a, "requester")) == 0) {
            err_en = "the requester may not approve their own request";
            err_zh = "申请人不能审批自己的申请";
        } else if ((rc = find_holder(t, s, to, true, &holds))) {
            return rc;
        } else if (holds) {
            err_en = "that user already holds a task in this step (one person, one vote)";
            err_zh = "该用户在此步骤已有审批任务(一人一票)";
        }
        if (err_en) {
            trl_diag_add_ferr(d, "to", "invalid", err_en);
            return refuse(d, TRL_EVALIDATION, "delegate", err_en, err_zh);
        }
        /* The task closes as delegated; a new one takes its place (and its turn). */
        bool pending = strcmp(jstr(task, "status"), "pending") == 0;
        char from[64];
        snprintf(from, sizeof(from), "%s", jstr(task, "assignee"));
        unsigned order = (unsigned)jnum(task, "order");
        if ((rc = close_task(t, task, "delegated", comment, now))) return rc;
        uint64_t nid;
        if ((rc = new_task(t, a, si, s, to, NULL, from, pending, order, now, &nid))) return rc;
        /* Keep the step's task list in order: the new task replaces the old one. */
        cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
        int idx = 0;
        for (cJSON *it = tasks ? tasks->child : NULL; it; it = it->next, idx++)
            if ((uint64_t)it->valuedouble == tid) {
                cJSON_ReplaceItemInArray(tasks, idx, cJSON_CreateNumber((double)nid));
                break;
            }
        r->step_outcome = TRL_APPR_PENDING;
        r->next_task = nid;
        snprintf(r->next_assignee, sizeof(r->next_assignee), "%s", to);
        return doc_put(t, 'A', (uint64_t)jnum(a, "id"), a);
    }
    if (dec != TRL_DECIDE_APPROVE && (!comment || !*comment)) {
        trl_diag_add_ferr(d, "comment", "required", "");
        return refuse(d, TRL_EVALIDATION, "comment",
                      dec == TRL_DECIDE_REJECT
                          ? "a rejection needs a comment saying why"
                          : "returning a request needs a comment saying what to change",
                      dec == TRL_DECIDE_REJECT ? "驳回需要填写意见说明原因"
                                               : "退回需要填写意见说明需要修改的内容");
    }
    const char *status = dec == TRL_DECIDE_APPROVE  ? "approved"
                         : dec == TRL_DECIDE_REJECT ? "rejected"
                                                    : "returned";
    if ((rc = close_task(t, task, status, comment, now))) return rc;
    unsigned approves = (unsigned)jnum(s, "approves"), rejects = (unsigned)jnum(s, "rejects");
    if (dec == TRL_DECIDE_APPROVE) approves++;
    if (dec == TRL_DECIDE_REJECT) rejects++;
    jset_num(s, "approves", approves);
    jset_num(s, "rejects", rejects);
    enum trl_appr_mode mode = mode_of(jstr(s, "mode"));
    unsigned n = (unsigned)jnum(s, "approvers");
    unsigned quorum = (unsigned)jnum(s, "quorum");
    r->returned = dec == TRL_DECIDE_RETURN;
    r->step_outcome =
        r->returned ? TRL_APPR_REJECTED : trl_appr_outcome(mode, quorum, n, approves, rejects);
    (void)who;
    if (r->step_outcome != TRL_APPR_PENDING) {
        jset_str(s, "status",
                 r->returned                            ? "returned"
                 : r->step_outcome == TRL_APPR_APPROVED ? "approved"
                                                        : "rejected");
        jset_time(s, "ended_at", now);
        rc = cancel_open(t, s, now);
    } else if (mode == TRL_APPR_SEQUENTIAL) {
        /* The next approver in the listed order gets their turn. */
        const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
        for (const cJSON *it = tasks ? tasks->child : NULL; it && !rc; it = it->next) {
            cJSON *nt = NULL;
            if ((rc = doc_get(t, 'T', (uint64_t)it->valuedouble, &nt))) break;
            bool waiting = strcmp(jstr(nt, "status"), "waiting") == 0;
            if (waiting) {
                /* Their turn: an out-of-office rule in force now sends it to the delegate. */
                char who2[64], cur[64];
                snprintf(cur, sizeof(cur), "%s", jstr(nt, "assignee"));
                bool holds = false;
                rc = stand_in(t, cur, now, who2, sizeof(who2));
                if (!rc && strcmp(who2, cur) != 0) rc = find_holder(t, s, who2, true, &holds);
                if (!rc && strcmp(who2, cur) != 0 && !holds &&
                    (allow_self || strcmp(who2, jstr(a, "requester")) != 0)) {
                    jset_str(nt, "on_behalf_of", cur);
                    jset_str(nt, "assignee", who2);
                }
                jset_str(nt, "status", "pending");
                jset_time(nt, "created_at", now);
                rc = doc_put(t, 'T', (uint64_t)jnum(nt, "id"), nt);
                if (!rc) rc = flag_put(t, 'P', jstr(nt, "assignee"), (uint64_t)jnum(nt, "id"));
                snprintf(r->next_assignee, sizeof(r->next_assignee), "%s", jstr(nt, "assignee"));
                r->next_task = (uint64_t)jnum(nt, "id");
            }
            cJSON_Delete(nt);
            if (waiting) break;
        }
    }
    if (!rc) rc = doc_put(t, 'A', (uint64_t)jnum(a, "id"), a);
    return rc;
}

int trl_appr_decide(struct trl_txn *t, uint64_t task, const char *who, enum trl_appr_decision dec,
                    const char *comment, const char *to, bool allow_self, int64_t now,
                    struct trl_appr_result *r, struct trl_diag *d)
{
    int rc = trl_appr_task_info(t, task, r);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(d, TRL_ENOTFOUND, "no approval task %llu", (unsigned long long)task);
        trl_diag_zh(d, "审批任务 %llu 不存在", (unsigned long long)task);
        return TRL_ENOTFOUND;
    }
    if (rc) return rc;
    cJSON *j = NULL, *a = NULL;
    if ((rc = doc_get(t, 'T', task, &j))) return rc;
    if (strcmp(jstr(j, "assignee"), who) != 0) {
        rc = refuse(d, TRL_EFORBIDDEN, "approver", "this task is not assigned to you",
                    "此审批任务未分配给你");
    } else if (strcmp(jstr(j, "status"), "pending") != 0) {
        char en[160], zh[160];
        const char *st = jstr(j, "status");
        snprintf(en, sizeof(en), "this task is closed (%s); nothing was changed",
                 strcmp(st, "waiting") == 0 ? "waiting for earlier approvers" : st);
        snprintf(zh, sizeof(zh), "此审批任务已关闭(%s),未做任何更改",
                 strcmp(st, "waiting") == 0 ? "等待前序审批人" : st);
        rc = refuse(d, TRL_ECONFLICT, "task", en, zh);
    } else if ((rc = doc_get(t, 'A', r->approval, &a)) == 0) {
        rc = decide(t, a, j, who, dec, comment, to, allow_self, now, r, d);
    }
    cJSON_Delete(a);
    cJSON_Delete(j);
    return rc;
}

struct first_role {
    const char *skip;
    char found[64];
};

static int first_with_role(void *ud, const struct trl_user *u)
{
    struct first_role *f = ud;
    if (f->found[0] || !u->active) return 0;
    if (f->skip && strcmp(u->name, f->skip) == 0) return 0;
    snprintf(f->found, sizeof(f->found), "%s", u->name);
    return 0;
}

int trl_appr_escalate(struct trl_txn *t, uint64_t id, size_t si, const struct trl_appr_step *st,
                      int64_t now, char (*to)[64], uint64_t *out_tasks, size_t *nto)
{
    *nto = 0;
    cJSON *a = NULL;
    int rc = doc_get(t, 'A', id, &a);
    if (rc) return rc;
    cJSON *s = step_at(a, si);
    if (!s || strcmp(jstr(a, "status"), "pending") != 0 ||
        strcmp(jstr(s, "status"), "pending") != 0 || !st->escalate_to) {
        cJSON_Delete(a);
        return 0; /* the step ended meanwhile */
    }
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(s, "tasks");
    uint64_t ids[TRL_APPR_MAX_APPROVERS];
    size_t n = 0;
    for (const cJSON *it = tasks ? tasks->child : NULL; it && n < TRL_APPR_MAX_APPROVERS;
         it = it->next)
        ids[n++] = (uint64_t)it->valuedouble;
    for (size_t i = 0; i < n && !rc; i++) {
        cJSON *task = NULL;
        if ((rc = doc_get(t, 'T', ids[i], &task))) break;
        if (strcmp(jstr(task, "status"), "pending") == 0) {
            /* Whom to hand it to: a user, the first active holder of a role, or the manager of
             * the approver. */
            char target[64] = "";
            struct trl_user u;
            if (st->escalate_who == TRL_APPR_USERS) {
                snprintf(target, sizeof(target), "%s", st->escalate_to);
            } else if (st->escalate_who == TRL_APPR_MANAGER) {
                if (trl_auth_user_get(t, jstr(task, "assignee"), &u) == 0)
                    snprintf(target, sizeof(target), "%s", u.manager);
            } else {
                struct first_role fr = {.skip = jstr(a, "requester")};
                rc = trl_auth_role_users(t, st->escalate_to, first_with_role, &fr);
                snprintf(target, sizeof(target), "%s", fr.found);
            }
            bool holds = false;
            if (!rc && target[0] && strcmp(target, jstr(task, "assignee")) != 0)
                rc = find_holder(t, s, target, true, &holds);
            if (!rc && target[0] && !holds && strcmp(target, jstr(task, "assignee")) != 0 &&
                trl_auth_user_get(t, target, &u) == 0 && u.active) {
                struct trl_appr_result r;
                struct trl_diag dd;
                trl_diag_init(&dd);
                rc = decide(t, a, task, jstr(task, "assignee"), TRL_DECIDE_DELEGATE,
                            "escalated: the step's time limit passed", target, st->allow_self, now,
                            &r, &dd);
                trl_diag_reset(&dd);
                if (rc == TRL_EVALIDATION)
                    rc = 0;
                else if (!rc && *nto < TRL_APPR_MAX_APPROVERS) {
                    if (out_tasks) out_tasks[*nto] = r.next_task;
                    snprintf(to[(*nto)++], 64, "%s", target);
                }
            }
        }
        cJSON_Delete(task);
    }
    cJSON_Delete(a);
    return rc;
}

int trl_appr_finish(struct trl_txn *t, uint64_t id, const char *status, int64_t now)
{
    cJSON *a = NULL;
    int rc = doc_get(t, 'A', id, &a);
    if (rc) return rc;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(a, "steps");
    for (cJSON *s = steps ? steps->child : NULL; s && !rc; s = s->next) {
        const char *st = jstr(s, "status");
        if (strcmp(st, "pending") == 0) {
            jset_str(s, "status", strcmp(status, "approved") == 0 ? "approved" : "cancelled");
            jset_time(s, "ended_at", now);
        }
        rc = cancel_open(t, s, now);
    }
    jset_str(a, "status", status);
    jset_time(a, "ended_at", now);
    if (!rc) rc = doc_put(t, 'A', id, a);
    cJSON_Delete(a);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Output
 */
static int add_doc(struct trl_txn *t, char kind, uint64_t id, struct trl_buf *out)
{
    unsigned char k[9];
    id_key(k, kind, id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_APPR, k, sizeof(k), &v);
    return rc ? rc : trl_buf_add(out, v.p, v.n) ? TRL_ENOMEM : 0;
}

int trl_appr_list(struct trl_txn *t, const char *user, bool pending, size_t limit, uint64_t cursor,
                  struct trl_buf *out)
{
    struct trl_buf k;
    trl_buf_init(&k);
    uint64_t from = cursor ? cursor : UINT64_MAX;
    int rc = name_key(&k, pending ? 'P' : 'D', user, &from, NULL);
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_APPR, &c);
    if (!rc) rc = trl_buf_adds(out, "{\"items\":[") ? TRL_ENOMEM : 0;
    size_t n = 0, plen = k.len - 8;
    uint64_t last = 0;
    bool more = false;
    if (!rc) {
        for (rc = trl_cursor_seek_before(c, k.data, k.len); rc == 0; rc = trl_cursor_prev(c)) {
            struct trl_slice ck;
            trl_cursor_get(c, &ck, NULL);
            if (ck.n != k.len || memcmp(ck.p, k.data, plen) != 0) break;
            if (n == limit) {
                more = true;
                break;
            }
            uint64_t tid = trl_get_u64be((const unsigned char *)ck.p + plen);
            if ((n++ && trl_buf_addc(out, ',')) || (rc = add_doc(t, 'T', tid, out))) {
                rc = rc ? rc : TRL_ENOMEM;
                break;
            }
            last = tid;
        }
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_cursor_close(c);
    trl_buf_free(&k);
    if (rc) return rc;
    if (more) return trl_buf_printf(out, "],\"next_cursor\":\"%llu\"}", (unsigned long long)last);
    return trl_buf_adds(out, "],\"next_cursor\":null}");
}

static int add_approval(struct trl_txn *t, uint64_t id, struct trl_buf *out)
{
    cJSON *a = NULL;
    int rc = doc_get(t, 'A', id, &a);
    if (rc) return rc;
    /* Steps carry their tasks inline for one-call rendering. */
    cJSON *steps = cJSON_GetObjectItemCaseSensitive(a, "steps");
    for (cJSON *s = steps ? steps->child : NULL; s && !rc; s = s->next) {
        cJSON *ids = cJSON_DetachItemFromObjectCaseSensitive(s, "tasks");
        cJSON *tasks = cJSON_AddArrayToObject(s, "tasks");
        for (const cJSON *it = ids ? ids->child : NULL; it && !rc; it = it->next) {
            cJSON *task = NULL;
            if ((rc = doc_get(t, 'T', (uint64_t)it->valuedouble, &task))) break;
            cJSON *slim = cJSON_CreateObject();
            static const char *const keep[] = {
                "id",    "assignee",   "on_behalf_of", "delegated_from", "status",
                "order", "created_at", "decided_at",   "comment"};
            for (size_t q = 0; q < sizeof(keep) / sizeof(keep[0]); q++) {
                cJSON *v = cJSON_GetObjectItemCaseSensitive(task, keep[q]);
                if (v) cJSON_AddItemToObject(slim, keep[q], cJSON_Duplicate(v, 1));
            }
            cJSON_AddItemToArray(tasks, slim);
            cJSON_Delete(task);
        }
        cJSON_Delete(ids);
    }
    char *s = rc ? NULL : cJSON_PrintUnformatted(a);
    if (!rc && !s) rc = TRL_ENOMEM;
    if (!rc && trl_buf_adds(out, s)) rc = TRL_ENOMEM;
    free(s);
    cJSON_Delete(a);
    return rc;
}

int trl_appr_task_json(struct trl_txn *t, uint64_t task, struct trl_buf *out)
{
    cJSON *j = NULL;
    int rc = doc_get(t, 'T', task, &j);
    if (rc) return rc;
    uint64_t aid = (uint64_t)jnum(j, "approval");
    cJSON_Delete(j);
    size_t mark = out->len;
    if ((rc = add_doc(t, 'T', task, out))) return rc;
    /* Replace the closing brace with the embedded approval. */
    out->len = mark + (out->len - mark) - 1;
    if (trl_buf_adds(out, ",\"approval_detail\":")) return TRL_ENOMEM;
    if ((rc = add_approval(t, aid, out))) return rc;
    return trl_buf_addc(out, '}') ? TRL_ENOMEM : 0;
}

int trl_appr_record_json(struct trl_txn *t, const char *type, uint64_t record, struct trl_buf *out)
{
    struct trl_buf k;
    trl_buf_init(&k);
    uint64_t max = UINT64_MAX;
    int rc = name_key(&k, 'R', type, &record, &max);
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_APPR, &c);
    if (!rc) rc = trl_buf_adds(out, "{\"items\":[") ? TRL_ENOMEM : 0;
    size_t n = 0, plen = k.len - 8;
    if (!rc) {
        for (rc = trl_cursor_seek_before(c, k.data, k.len); rc == 0; rc = trl_cursor_prev(c)) {
            struct trl_slice ck;
            trl_cursor_get(c, &ck, NULL);
            if (ck.n != k.len || memcmp(ck.p, k.data, plen) != 0) break;
            uint64_t aid = trl_get_u64be((const unsigned char *)ck.p + plen);
            if (n++ && trl_buf_addc(out, ',')) rc = TRL_ENOMEM;
            if (rc || (rc = add_approval(t, aid, out))) break;
        }
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_cursor_close(c);
    trl_buf_free(&k);
    return rc ? rc : trl_buf_adds(out, "]}") ? TRL_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Out of office
 */
int trl_appr_ooo_json(const struct trl_appr_ooo *o, struct trl_buf *out)
{
    char from[40], until[40];
    trl_datetime_format(o->from_ms, from);
    trl_datetime_format(o->until_ms, until);
    int rc = trl_buf_adds(out, "{\"user\":") ||
             trl_buf_add_json_str(out, o->user, strlen(o->user)) ||
             trl_buf_adds(out, ",\"delegate\":") ||
             trl_buf_add_json_str(out, o->delegate, strlen(o->delegate)) ||
             trl_buf_printf(out, ",\"from\":\"%s\",\"until\":\"%s\",\"note\":", from, until) ||
             trl_buf_add_json_str(out, o->note, strlen(o->note)) || trl_buf_addc(out, '}');
    return rc ? TRL_ENOMEM : 0;
}

int trl_appr_ooo_get(struct trl_txn *t, const char *user, struct trl_appr_ooo *o)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, 'O', user, NULL, NULL);
    struct trl_slice v;
    if (!rc) rc = trl_txn_get(t, TRL_DB_APPR, k.data, k.len, &v);
    trl_buf_free(&k);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(v.p, v.n);
    if (!j) return TRL_ECORRUPT;
    memset(o, 0, sizeof(*o));
    snprintf(o->user, sizeof(o->user), "%s", user);
    snprintf(o->delegate, sizeof(o->delegate), "%s", jstr(j, "delegate"));
    snprintf(o->note, sizeof(o->note), "%s", jstr(j, "note"));
    o->from_ms = jnum(j, "from_ms");
    o->until_ms = jnum(j, "until_ms");
    cJSON_Delete(j);
    return 0;
}

int trl_appr_ooo_delete(struct trl_txn *t, const char *user)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, 'O', user, NULL, NULL);
    if (!rc) rc = trl_txn_del(t, TRL_DB_APPR, k.data, k.len);
    trl_buf_free(&k);
    return rc;
}

static int ooo_bad(struct trl_diag *d, const char *field, const char *en, const char *zh)
{
    trl_diag_add_ferr(d, field, "invalid", en);
    trl_diag_set(d, TRL_EVALIDATION, "%s: %s", field, en);
    trl_diag_zh(d, "%s:%s", field, zh);
    trl_diag_field(d, field);
    return TRL_EVALIDATION;
}

int trl_appr_ooo_put(struct trl_txn *t, const struct trl_appr_ooo *o, int64_t now, size_t *moved,
                     struct trl_diag *d)
{
    *moved = 0;
    struct trl_user u;
    if (strcmp(o->delegate, o->user) == 0)
        return ooo_bad(d, "delegate", "must be someone else", "必须是其他人");
    if (trl_auth_user_get(t, o->delegate, &u) != 0 || !u.active)
        return ooo_bad(d, "delegate", "must be an active user", "必须是在职用户");
    if (o->until_ms <= o->from_ms)
        return ooo_bad(d, "until", "must be after from", "必须晚于开始时间");
    if (!trl_utf8_valid(o->note, strlen(o->note)))
        return ooo_bad(d, "note", "is not valid UTF-8", "不是有效的 UTF-8");
    /* A chain that leads back to the user would bounce tasks forever. */
    char cur[64];
    snprintf(cur, sizeof(cur), "%s", o->delegate);
    for (int hop = 0; hop < 8; hop++) {
        struct trl_appr_ooo x;
        if (trl_appr_ooo_get(t, cur, &x) != 0) break;
        if (strcmp(x.delegate, o->user) == 0 && x.until_ms > o->from_ms && x.from_ms < o->until_ms)
            return ooo_bad(d, "delegate",
                           "delegates back to you in the same period (a delegation cycle)",
                           "在同一时段又委托回你(委托循环)");
        snprintf(cur, sizeof(cur), "%s", x.delegate);
    }
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddStringToObject(j, "delegate", o->delegate);
    cJSON_AddNumberToObject(j, "from_ms", (double)o->from_ms);
    cJSON_AddNumberToObject(j, "until_ms", (double)o->until_ms);
    cJSON_AddStringToObject(j, "note", o->note);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return TRL_ENOMEM;
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = name_key(&k, 'O', o->user, NULL, NULL);
    if (!rc) rc = trl_txn_put(t, TRL_DB_APPR, k.data, k.len, s, strlen(s), 0);
    free(s);
    if (rc || !ooo_active(o, now)) {
        trl_buf_free(&k);
        return rc;
    }
    /* Pending tasks move to the delegate now (the inbox follows at once). */
    uint64_t ids[256];
    size_t n = 0;
    struct trl_cursor *c = NULL;
    rc = name_key(&k, 'P', o->user, NULL, NULL);
    if (!rc) rc = trl_cursor_open(t, TRL_DB_APPR, &c);
    if (!rc) {
        for (rc = trl_cursor_seek(c, k.data, k.len); rc == 0 && n < 256; rc = trl_cursor_next(c)) {
            struct trl_slice ck;
            trl_cursor_get(c, &ck, NULL);
            if (ck.n != k.len + 8 || memcmp(ck.p, k.data, k.len) != 0) break;
            ids[n++] = trl_get_u64be((const unsigned char *)ck.p + k.len);
        }
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_cursor_close(c);
    trl_buf_free(&k);
    for (size_t i = 0; i < n && !rc; i++) {
        cJSON *task = NULL, *a = NULL;
        if ((rc = doc_get(t, 'T', ids[i], &task))) break;
        if ((rc = doc_get(t, 'A', (uint64_t)jnum(task, "approval"), &a)) == 0) {
            cJSON *s2 = step_at(a, (size_t)jnum(task, "step_index"));
            bool holds = false;
            if (s2 && (rc = find_holder(t, s2, o->delegate, true, &holds)) == 0 && !holds &&
                strcmp(o->delegate, jstr(a, "requester")) != 0) {
                struct trl_appr_result r;
                struct trl_diag dd;
                trl_diag_init(&dd);
                char note[300];
                snprintf(note, sizeof(note), "out of office: %s", o->note);
                rc = decide(t, a, task, o->user, TRL_DECIDE_DELEGATE, note, o->delegate, false, now,
                            &r, &dd);
                trl_diag_reset(&dd);
                if (rc == TRL_EVALIDATION)
                    rc = 0; /* leave that one where it is */
                else if (!rc)
                    (*moved)++;
            }
        }
        cJSON_Delete(a);
        cJSON_Delete(task);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Consistency
 */
int trl_appr_check(struct trl_txn *t, struct trl_buf *report)
{
    int problems = 0;
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_APPR, &c);
    if (rc) return rc;
    /* Every inbox entry names a pending task of that user. */
    for (rc = trl_cursor_seek(c, "P", 1); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n < 10 || ((const char *)k.p)[0] != 'P') break;
        const char *user = (const char *)k.p + 1;
        size_t un = strnlen(user, k.n - 1);
        if (un + 1 + 8 + 1 != k.n) continue;
        uint64_t id = trl_get_u64be((const unsigned char *)k.p + 1 + un + 1);
        cJSON *j = NULL;
        int grc = doc_get(t, 'T', id, &j);
        if (grc == TRL_ENOTFOUND || (!grc && (strcmp(jstr(j, "status"), "pending") != 0 ||
                                              strncmp(jstr(j, "assignee"), user, un) != 0))) {
            problems++;
            if (report)
                trl_buf_printf(report, "approval task %llu is in %.*s's inbox but is %s\n",
                               (unsigned long long)id, (int)un, user,
                               grc ? "missing" : jstr(j, "status"));
        } else if (grc) {
            rc = grc;
        }
        cJSON_Delete(j);
        if (rc && rc != TRL_ENOTFOUND) break;
    }
    trl_cursor_close(c);
    if (rc && rc != TRL_ENOTFOUND) return rc;
    /* Every pending task is in its assignee's inbox. */
    if ((rc = trl_cursor_open(t, TRL_DB_APPR, &c))) return rc;
    for (rc = trl_cursor_seek(c, "T", 1); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n != 9 || ((const char *)k.p)[0] != 'T') break;
        cJSON *j = cJSON_ParseWithLength(v.p, v.n);
        if (!j) {
            problems++;
            if (report) trl_buf_printf(report, "an approval task cannot be read\n");
            continue;
        }
        if (strcmp(jstr(j, "status"), "pending") == 0) {
            struct trl_buf pk;
            trl_buf_init(&pk);
            uint64_t id = trl_get_u64be((const unsigned char *)k.p + 1);
            struct trl_slice pv;
            int grc = name_key(&pk, 'P', jstr(j, "assignee"), &id, NULL);
            if (!grc) grc = trl_txn_get(t, TRL_DB_APPR, pk.data, pk.len, &pv);
            if (grc == TRL_ENOTFOUND) {
                problems++;
                if (report)
                    trl_buf_printf(report,
                                   "pending approval task %llu is missing from %s's inbox\n",
                                   (unsigned long long)id, jstr(j, "assignee"));
            }
            trl_buf_free(&pk);
        }
        cJSON_Delete(j);
    }
    trl_cursor_close(c);
    return rc && rc != TRL_ENOTFOUND ? rc : problems;
}
