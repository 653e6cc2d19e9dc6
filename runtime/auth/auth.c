/* auth.c — users, orgs, passwords and API tokens in TRL_DB_AUTH. */
#include "auth.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW_OPSLIMIT 2ULL               /* OWASP: at least 2 passes ... */
#define PW_MEMLIMIT ((size_t)19 << 20) /* ... over at least 19 MiB */
#define PW_MIN      8
#define PW_MAX      1024

bool trl_auth_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int trl_auth_password_hash(const char *pw, char *out, struct trl_diag *d)
{
    size_t n = strlen(pw);
    if (n < PW_MIN || n > PW_MAX || !trl_utf8_valid(pw, n)) {
        trl_diag_set(d, TRL_EVALIDATION, "a password is 8 to 1024 characters of UTF-8 text");
        trl_diag_zh(d, "密码须为 8 到 1024 个字符的 UTF-8 文本");
        trl_diag_field(d, "password");
        return TRL_EVALIDATION;
    }
    char buf[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(buf, pw, n, PW_OPSLIMIT, PW_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13))
        return trl_diag_set(d, TRL_ENOMEM, "not enough memory to hash a password");
    snprintf(out, 128, "%s", buf);
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

bool trl_auth_password_verify(const char *hash, const char *pw)
{
    if (!hash[0]) return false;
    return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Keys and JSON
 */
static int key(struct trl_buf *k, char kind, const char *name)
{
    trl_buf_clear(k);
    if (trl_buf_addc(k, kind) || trl_buf_addc(k, 0) || trl_buf_adds(k, name)) return TRL_ENOMEM;
    return 0;
}

/* Appends j printed compactly to out and frees j (takes ownership; NULL is out of memory). */
static int buf_add_cjson(struct trl_buf *out, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return TRL_ENOMEM;
    int rc = trl_buf_adds(out, s);
    free(s);
    return rc;
}

static int put_json(struct trl_txn *t, char kind, const char *name, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (!s) return TRL_ENOMEM;
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = key(&k, kind, name);
    if (!rc) rc = trl_txn_put(t, TRL_DB_AUTH, k.data, k.len, s, strlen(s), 0);
    trl_buf_free(&k);
    free(s);
    return rc;
}

/* Loads and parses the JSON under (kind, name); *out owned (cJSON_Delete). */
static int get_json(struct trl_txn *t, char kind, const char *name, cJSON **out)
{
    struct trl_buf k;
    struct trl_slice v;
    trl_buf_init(&k);
    int rc = key(&k, kind, name);
    if (!rc) rc = trl_txn_get(t, TRL_DB_AUTH, k.data, k.len, &v);
    trl_buf_free(&k);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(v.p, v.n);
    return *out ? 0 : TRL_ECORRUPT;
}

static void str_field(const cJSON *j, const char *k, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int64_t num_field(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static size_t list_field(const cJSON *j, const char *k, char (*out)[64], size_t cap)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, k);
    size_t n = 0;
    for (const cJSON *e = cJSON_IsArray(a) ? a->child : NULL; e && n < cap; e = e->next)
        if (cJSON_IsString(e)) snprintf(out[n++], 64, "%s", e->valuestring);
    return n;
}

static cJSON *str_list(char (*v)[64], size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* ---------------------------------------------------------------------------------------------
 * Users
 */
static cJSON *user_to_json(const struct trl_user *u, bool with_hash)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "name", u->name);
    cJSON_AddStringToObject(j, "display_name", u->display);
    cJSON_AddStringToObject(j, "email", u->email);
    cJSON_AddStringToObject(j, "language", u->lang);
    cJSON_AddStringToObject(j, "org", u->org);
    cJSON_AddStringToObject(j, "manager", u->manager);
    cJSON_AddStringToObject(j, "region", u->region);
    cJSON_AddItemToObject(j, "roles", str_list((char(*)[64])u->roles, u->nroles));
    cJSON_AddItemToObject(j, "skills", str_list((char(*)[64])u->skills, u->nskills));
    cJSON_AddBoolToObject(j, "active", u->active);
    cJSON_AddNumberToObject(j, "created_at", (double)u->created_at);
    cJSON_AddNumberToObject(j, "password_changed_at", (double)u->pw_changed_at);
    if (with_hash) cJSON_AddStringToObject(j, "password_hash", u->pwhash);
    return j;
}

int trl_auth_user_json(const struct trl_user *u, struct trl_buf *out)
{
    cJSON *j = user_to_json(u, false);
    if (!j) return TRL_ENOMEM;
    /* Times as RFC 3339 for people and clients. */
    char ts[32];
    trl_datetime_format(u->created_at, ts);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "created_at", cJSON_CreateString(ts));
    if (u->pw_changed_at) {
        trl_datetime_format(u->pw_changed_at, ts);
        cJSON_ReplaceItemInObjectCaseSensitive(j, "password_changed_at", cJSON_CreateString(ts));
    } else {
        cJSON_ReplaceItemInObjectCaseSensitive(j, "password_changed_at", cJSON_CreateNull());
    }
    return buf_add_cjson(out, j);
}

static int user_from_json(const cJSON *j, struct trl_user *u)
{
    memset(u, 0, sizeof(*u));
    str_field(j, "name", u->name, sizeof(u->name));
    str_field(j, "display_name", u->display, sizeof(u->display));
    str_field(j, "email", u->email, sizeof(u->email));
    str_field(j, "language", u->lang, sizeof(u->lang));
    str_field(j, "org", u->org, sizeof(u->org));
    str_field(j, "manager", u->manager, sizeof(u->manager));
    str_field(j, "region", u->region, sizeof(u->region));
    str_field(j, "password_hash", u->pwhash, sizeof(u->pwhash));
    u->nroles = list_field(j, "roles", u->roles, TRL_AUTH_MAX_ROLES);
    u->nskills = list_field(j, "skills", u->skills, TRL_AUTH_MAX_SKILLS);
    u->active = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "active"));
    u->created_at = num_field(j, "created_at");
    u->pw_changed_at = num_field(j, "password_changed_at");
    return u->name[0] ? 0 : TRL_ECORRUPT;
}

static int bad(struct trl_diag *d, const char *field, const char *en, const char *zh)
{
    trl_diag_add_ferr(d, field, "invalid", en);
    trl_diag_set(d, TRL_EVALIDATION, "%s: %s", field, en);
    trl_diag_zh(d, "%s:%s", field, zh);
    trl_diag_field(d, field);
    return TRL_EVALIDATION;
}

/* ---------------------------------------------------------------------------------------------
 * Users by role: "r\0<role>\0<user>" -> "", kept by trl_auth_user_put and built once by
 * trl_auth_upgrade for older stores (marked by "v\0users_by_role"), so that a role's holders are
 * found without reading every user (approval steps, escalations, notifications to a role).
 */
static const char role_mark[] = "v\0users_by_role";
static const char group_mark[] = "v\0groups_by_user";

/* The key (kind, a, b) of an index row: "r\0<role>\0<user>" or "m\0<user>\0<group>". */
static int pair_key(struct trl_buf *k, char kind, const char *a, const char *b)
{
    trl_buf_clear(k);
    if (key(k, kind, a) || trl_buf_addc(k, 0) || trl_buf_adds(k, b)) return TRL_ENOMEM;
    return 0;
}

/* Puts (add) or deletes the index rows (kind, names[i], fixed) for i < n. */
static int pair_rows(struct trl_txn *t, char kind, const char (*names)[64], size_t n,
                     const char *fixed, bool add)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = pair_key(&k, kind, names[i], fixed))) break;
        rc = add ? trl_txn_put(t, TRL_DB_AUTH, k.data, k.len, "", 0, 0)
                 : trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_buf_free(&k);
    return rc;
}

/* Adds (add) or removes the rows of every role of u. */
static int roles_index(struct trl_txn *t, const struct trl_user *u, bool add)
{
    return pair_rows(t, 'r', (const char(*)[64])u->roles, u->nroles, u->name, add);
}

static bool has_mark(struct trl_txn *t, const char *mark, size_t n, int *rc)
{
    struct trl_slice v;
    *rc = trl_txn_get(t, TRL_DB_AUTH, mark, n, &v);
    if (*rc == TRL_ENOTFOUND) {
        *rc = 0;
        return false;
    }
    return *rc == 0;
}

struct role_filter {
    const char *role;
    int (*fn)(void *ud, const struct trl_user *u);
    void *ud;
};

static int if_role(void *ud, const struct trl_user *u)
{
    const struct role_filter *f = ud;
    return trl_auth_user_has_role(u, f->role) ? f->fn(f->ud, u) : 0;
}

int trl_auth_role_users(struct trl_txn *t, const char *role,
                        int (*fn)(void *ud, const struct trl_user *u), void *ud)
{
    int rc;
    if (!has_mark(t, role_mark, sizeof(role_mark) - 1, &rc)) {
        /* A store the server has not brought up to date yet: read every user. */
        struct role_filter f = {role, fn, ud};
        return rc ? rc : trl_auth_user_each(t, if_role, &f);
    }
    struct trl_buf pre;
    trl_buf_init(&pre);
    rc = key(&pre, 'r', role) || trl_buf_addc(&pre, 0) ? TRL_ENOMEM : 0;
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    struct trl_user *u = rc ? NULL : malloc(sizeof(*u));
    if (!rc && !u) rc = TRL_ENOMEM;
    for (int mv = rc ? 1 : trl_cursor_seek(c, pre.data, pre.len); !rc && mv == 0;
         mv = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n <= pre.len || memcmp(k.p, pre.data, pre.len) != 0) break;
        char name[64];
        size_t nn = k.n - pre.len;
        if (nn >= sizeof(name)) continue;
        memcpy(name, (const char *)k.p + pre.len, nn);
        name[nn] = 0;
        int gr = trl_auth_user_get(t, name, u);
        if (gr == TRL_ENOTFOUND || (!gr && !trl_auth_user_has_role(u, role)))
            continue; /* a stray row: trl_auth_check reports it */
        rc = gr ? gr : fn(ud, u);
    }
    free(u);
    if (c) trl_cursor_close(c);
    trl_buf_free(&pre);
    return rc;
}

int trl_auth_user_put(struct trl_txn *t, const struct trl_user *u, struct trl_diag *d)
{
    if (!trl_auth_name_valid(u->name))
        return bad(d, "name", "use 1 to 63 of a-z, 0-9, _ . -",
                   "只能使用 1 到 63 个 a-z、0-9、_ . -");
    if (strcmp(u->lang, "en") != 0 && strcmp(u->lang, "zh-CN") != 0)
        return bad(d, "language", "must be en or zh-CN", "必须是 en 或 zh-CN");
    if (!trl_utf8_valid(u->display, strlen(u->display)))
        return bad(d, "display_name", "is not valid UTF-8", "不是有效的 UTF-8");
    for (size_t i = 0; i < u->nroles; i++)
        if (!trl_auth_name_valid(u->roles[i]))
            return bad(d, "roles", "role names use a-z, 0-9, _ . -",
                       "角色名只能使用 a-z、0-9、_ . -");
    if (u->org[0] && !trl_auth_org_exists(t, u->org)) {
        char en[128], zh[128];
        snprintf(en, sizeof(en), "no org '%.60s'; add it first", u->org);
        snprintf(zh, sizeof(zh), "组织“%.60s”不存在,请先添加", u->org);
        return bad(d, "org", en, zh);
    }
    if (u->manager[0]) {
        struct trl_user m;
        if (strcmp(u->manager, u->name) == 0 || trl_auth_user_get(t, u->manager, &m) != 0)
            return bad(d, "manager", "must be another existing user", "必须是另一个已存在的用户");
    }
    /* Disabling a user or changing their password ends their sessions, in this same txn. */
    struct trl_user *old = malloc(sizeof(*old));
    if (!old) return TRL_ENOMEM;
    int rc = trl_auth_user_get(t, u->name, old);
    bool existed = rc == 0;
    if (rc == TRL_ENOTFOUND) rc = 0;
    if (!rc && existed && ((old->active && !u->active) || strcmp(old->pwhash, u->pwhash) != 0)) {
        size_t ended;
        rc = trl_auth_sessions_end_user(t, u->name, &ended);
    }
    /* The index by role follows the roles. */
    if (!rc && existed) rc = roles_index(t, old, false);
    free(old);
    if (!rc) rc = roles_index(t, u, true);
    if (rc) return rc;
    cJSON *j = user_to_json(u, true);
    if (!j) return TRL_ENOMEM;
    rc = put_json(t, 'u', u->name, j);
    cJSON_Delete(j);
    return rc;
}

int trl_auth_user_get(struct trl_txn *t, const char *name, struct trl_user *u)
{
    cJSON *j = NULL;
    int rc = get_json(t, 'u', name, &j);
    if (rc) return rc;
    rc = user_from_json(j, u);
    cJSON_Delete(j);
    return rc;
}

/* Calls fn for every entry of kind in name order. */
static int each(struct trl_txn *t, char kind, int (*fn)(void *ud, const void *v, size_t n),
                void *ud)
{
    struct trl_cursor *c = NULL;
    char pre[2] = {kind, 0};
    int rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, pre, 2); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n < 2 || memcmp(k.p, pre, 2) != 0) break;
        if ((rc = fn(ud, v.p, v.n))) break;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

struct lister {
    struct trl_buf *out;
    size_t n;
};
static int list_raw(void *ud, const void *v, size_t n);

static int list_user(void *ud, const void *v, size_t n)
{
    struct lister *l = ud;
    cJSON *j = cJSON_ParseWithLength(v, n);
    struct trl_user u;
    int rc = j ? user_from_json(j, &u) : TRL_ECORRUPT;
    cJSON_Delete(j);
    if (rc) return rc;
    if (l->n++ && trl_buf_addc(l->out, ',')) return TRL_ENOMEM;
    return trl_auth_user_json(&u, l->out);
}

int trl_auth_user_list(struct trl_txn *t, struct trl_buf *out)
{
    struct lister l = {.out = out};
    int rc = trl_buf_addc(out, '[');
    if (!rc) rc = each(t, 'u', list_user, &l);
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc;
}

struct user_iter {
    int (*fn)(void *ud, const struct trl_user *u);
    void *ud;
};

static int each_user(void *ud, const void *v, size_t n)
{
    struct user_iter *it = ud;
    cJSON *j = cJSON_ParseWithLength(v, n);
    struct trl_user u;
    int rc = j ? user_from_json(j, &u) : TRL_ECORRUPT;
    cJSON_Delete(j);
    return rc ? rc : it->fn(it->ud, &u);
}

int trl_auth_user_each(struct trl_txn *t, int (*fn)(void *ud, const struct trl_user *u), void *ud)
{
    struct user_iter it = {fn, ud};
    return each(t, 'u', each_user, &it);
}

void trl_auth_principal(const struct trl_user *u, const char (*roles)[64], size_t nroles,
                        struct trl_principal *who)
{
    snprintf(who->user, sizeof(who->user), "%s", u->name);
    snprintf(who->org, sizeof(who->org), "%s", u->org);
    snprintf(who->region, sizeof(who->region), "%s", u->region);
    snprintf(who->role, sizeof(who->role), "%s", nroles ? roles[0] : "");
    who->nroles = 0;
    who->admin = false;
    for (size_t i = 0; i < nroles && i < 16; i++) {
        snprintf(who->roles[who->nroles++], 64, "%s", roles[i]);
        if (strcmp(roles[i], "admin") == 0) who->admin = true;
    }
    who->nskills = 0;
    for (size_t i = 0; i < u->nskills && i < 32; i++)
        snprintf(who->skills[who->nskills++], 64, "%s", u->skills[i]);
}

bool trl_auth_user_has_role(const struct trl_user *u, const char *role)
{
    for (size_t i = 0; i < u->nroles; i++)
        if (strcmp(u->roles[i], role) == 0) return true;
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Groups (teams for assignment and approvals): "g\0<name>" -> {name, labels, members}, and
 * membership by user: "m\0<user>\0<group>" -> "" (kept with the group; rebuilt once by
 * trl_auth_upgrade for stores made before it existed, marked by "v\0groups_by_user").
 */
/* Adds (add) or removes the membership rows of every member of g. */
static int members_index(struct trl_txn *t, const struct trl_group *g, bool add)
{
    return pair_rows(t, 'm', (const char(*)[64])g->members, g->nmembers, g->name, add);
}

int trl_auth_user_groups(struct trl_txn *t, const char *user, char (*out)[64], size_t max,
                         size_t *n)
{
    *n = 0;
    struct trl_buf pre;
    trl_buf_init(&pre);
    int rc = key(&pre, 'm', user) || trl_buf_addc(&pre, 0) ? TRL_ENOMEM : 0;
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    for (int mv = rc ? 1 : trl_cursor_seek(c, pre.data, pre.len); !rc && mv == 0 && *n < max;
         mv = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n <= pre.len || memcmp(k.p, pre.data, pre.len) != 0) break;
        size_t gn = k.n - pre.len;
        if (gn >= 64) continue;
        memcpy(out[*n], (const char *)k.p + pre.len, gn);
        out[(*n)++][gn] = 0;
    }
    if (c) trl_cursor_close(c);
    trl_buf_free(&pre);
    return rc;
}

/* The names of every entry of kind ("u" users, "g" groups), NUL-separated, into names: the
 * rows of an index are written under a cursor's feet otherwise. */
static int collect_names(struct trl_txn *t, char kind, struct trl_buf *names)
{
    char pre[2] = {kind, 0};
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    int mv = rc ? 1 : trl_cursor_seek(c, pre, 2);
    for (; !rc && mv == 0; mv = trl_cursor_next(c)) {
        struct trl_slice k, v;
        trl_cursor_get(c, &k, &v);
        if (k.n < 2 || memcmp(k.p, pre, 2) != 0) break;
        if (trl_buf_add(names, (const char *)k.p + 2, k.n - 2) || trl_buf_addc(names, 0))
            rc = TRL_ENOMEM;
    }
    if (c) trl_cursor_close(c);
    return rc;
}

/* Builds the index by role (users) or by group member (groups) once, marked by mark. */
static int upgrade_index(struct trl_txn *t, char kind, const char *mark, size_t mark_n,
                         bool *changed)
{
    int rc;
    if (has_mark(t, mark, mark_n, &rc) || rc) return rc;
    struct trl_buf names;
    trl_buf_init(&names);
    rc = collect_names(t, kind, &names);
    struct trl_user *u = kind == 'u' && !rc ? malloc(sizeof(*u)) : NULL;
    struct trl_group *g = kind == 'g' && !rc ? malloc(sizeof(*g)) : NULL;
    if (!rc && !u && !g) rc = TRL_ENOMEM;
    for (size_t off = 0; !rc && off < names.len; off += strlen(names.data + off) + 1) {
        if (u && !(rc = trl_auth_user_get(t, names.data + off, u))) rc = roles_index(t, u, true);
        if (g && !(rc = trl_auth_group_get(t, names.data + off, g))) rc = members_index(t, g, true);
    }
    free(u);
    free(g);
    trl_buf_free(&names);
    if (!rc) rc = trl_txn_put(t, TRL_DB_AUTH, mark, mark_n, "1", 1, 0);
    if (!rc) *changed = true;
    return rc;
}

int trl_auth_upgrade(struct trl_txn *t, bool *changed)
{
    *changed = false;
    int rc = upgrade_index(t, 'u', role_mark, sizeof(role_mark) - 1, changed);
    if (!rc) rc = upgrade_index(t, 'g', group_mark, sizeof(group_mark) - 1, changed);
    return rc;
}

struct member_check {
    struct trl_txn *t;
    struct trl_buf *report;
    int problems;
};

static int check_group(void *ud, const void *v, size_t n)
{
    struct member_check *mc = ud;
    cJSON *j = cJSON_ParseWithLength(v, n);
    if (!j) return TRL_ECORRUPT;
    char name[64] = "";
    str_field(j, "name", name, sizeof(name));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "members");
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = 0;
    for (const cJSON *it = cJSON_IsArray(m) ? m->child : NULL; it && !rc; it = it->next) {
        struct trl_slice sv;
        if (!cJSON_IsString(it) || (rc = pair_key(&k, 'm', it->valuestring, name))) break;
        int gr = trl_txn_get(mc->t, TRL_DB_AUTH, k.data, k.len, &sv);
        if (gr == TRL_ENOTFOUND) {
            mc->problems++;
            rc = trl_buf_printf(mc->report, "auth: group %s lists %s, the index by user does not\n",
                                name, it->valuestring);
        } else {
            rc = gr;
        }
    }
    trl_buf_free(&k);
    cJSON_Delete(j);
    return rc;
}

struct role_check {
    struct trl_txn *t;
    struct trl_buf *report;
    struct trl_buf k;
    int problems;
};

static int check_user_roles(void *ud, const struct trl_user *u)
{
    struct role_check *rc_ = ud;
    int rc = 0;
    for (size_t i = 0; i < u->nroles && !rc; i++) {
        struct trl_slice v;
        if ((rc = pair_key(&rc_->k, 'r', u->roles[i], u->name))) break;
        int gr = trl_txn_get(rc_->t, TRL_DB_AUTH, rc_->k.data, rc_->k.len, &v);
        if (gr == TRL_ENOTFOUND) {
            rc_->problems++;
            rc = trl_buf_printf(rc_->report,
                                "auth: user %s has role %s, the index by role does not\n", u->name,
                                u->roles[i]);
        } else {
            rc = gr;
        }
    }
    return rc;
}

/* The index by role agrees with the users: the number of problems (lines in report). */
static int check_roles(struct trl_txn *t, struct trl_buf *report, int *problems)
{
    int rc;
    if (!has_mark(t, role_mark, sizeof(role_mark) - 1, &rc)) return rc; /* built at start */
    struct role_check c = {.t = t, .report = report};
    trl_buf_init(&c.k);
    rc = trl_auth_user_each(t, check_user_roles, &c);
    struct trl_cursor *cur = NULL;
    struct trl_user *u = rc ? NULL : malloc(sizeof(*u));
    if (!rc && !u) rc = TRL_ENOMEM;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_AUTH, &cur);
    for (int mv = rc ? 1 : trl_cursor_seek(cur, "r", 2); !rc && mv == 0;
         mv = trl_cursor_next(cur)) {
        struct trl_slice k, v;
        trl_cursor_get(cur, &k, &v);
        if (k.n < 2 || memcmp(k.p, "r", 2) != 0) break;
        const char *role = (const char *)k.p + 2;
        const char *sep = memchr(role, 0, k.n - 2);
        if (!sep) {
            rc = TRL_ECORRUPT;
            break;
        }
        char r[64], name[64];
        snprintf(r, sizeof(r), "%.*s", (int)(sep - role), role);
        snprintf(name, sizeof(name), "%.*s", (int)(k.n - 2 - (size_t)(sep - role) - 1), sep + 1);
        if (trl_auth_user_get(t, name, u) != 0 || !trl_auth_user_has_role(u, r)) {
            c.problems++;
            rc = trl_buf_printf(report,
                                "auth: the index by role gives %s role %s, which the user does "
                                "not hold\n",
                                name, r);
        }
    }
    if (cur) trl_cursor_close(cur);
    free(u);
    trl_buf_free(&c.k);
    *problems += c.problems;
    return rc;
}

int trl_auth_check(struct trl_txn *t, struct trl_buf *report)
{
    int role_problems = 0;
    int rrc = check_roles(t, report, &role_problems);
    if (rrc) return rrc;
    int rc;
    if (!has_mark(t, group_mark, sizeof(group_mark) - 1, &rc))
        return rc ? rc : role_problems; /* built at the next server start */
    struct member_check mc = {.t = t, .report = report, .problems = role_problems};
    rc = each(t, 'g', check_group, &mc);
    /* Every row of the index names a group that lists the user. */
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    int mv = rc ? 1 : trl_cursor_seek(c, "m", 2);
    for (; !rc && mv == 0; mv = trl_cursor_next(c)) {
        struct trl_slice k, kv;
        trl_cursor_get(c, &k, &kv);
        if (k.n < 2 || memcmp(k.p, "m", 2) != 0) break;
        const char *user = (const char *)k.p + 2;
        const char *sep = memchr(user, 0, k.n - 2);
        if (!sep) {
            rc = TRL_ECORRUPT;
            break;
        }
        char u[64], g[64];
        snprintf(u, sizeof(u), "%.*s", (int)(sep - user), user);
        snprintf(g, sizeof(g), "%.*s", (int)(k.n - 2 - (size_t)(sep - user) - 1), sep + 1);
        struct trl_group *gr = malloc(sizeof(*gr));
        if (!gr) {
            rc = TRL_ENOMEM;
            break;
        }
        bool listed = false;
        if (trl_auth_group_get(t, g, gr) == 0)
            for (size_t i = 0; i < gr->nmembers && !listed; i++)
                listed = strcmp(gr->members[i], u) == 0;
        free(gr);
        if (!listed) {
            mc.problems++;
            rc = trl_buf_printf(report,
                                "auth: the index by user puts %s in group %s, which "
                                "does not list them\n",
                                u, g);
        }
    }
    if (c) trl_cursor_close(c);
    if (rc) return rc;
    return mc.problems;
}

int trl_auth_group_put(struct trl_txn *t, const struct trl_group *g, struct trl_diag *d)
{
    if (!trl_auth_name_valid(g->name))
        return bad(d, "name", "use 1 to 63 of a-z, 0-9, _ . -",
                   "只能使用 1 到 63 个 a-z、0-9、_ . -");
    if (!trl_utf8_valid(g->label_en, strlen(g->label_en)) ||
        !trl_utf8_valid(g->label_zh, strlen(g->label_zh)))
        return bad(d, "labels", "is not valid UTF-8", "不是有效的 UTF-8");
    for (size_t i = 0; i < g->nmembers; i++) {
        struct trl_user u;
        if (trl_auth_user_get(t, g->members[i], &u) != 0) {
            char en[128], zh[128];
            snprintf(en, sizeof(en), "no user '%.60s'", g->members[i]);
            snprintf(zh, sizeof(zh), "用户“%.60s”不存在", g->members[i]);
            return bad(d, "members", en, zh);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(g->members[k], g->members[i]) == 0)
                return bad(d, "members", "lists a user twice", "重复列出了同一用户");
    }
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddStringToObject(j, "name", g->name);
    cJSON *labels = cJSON_AddObjectToObject(j, "labels");
    cJSON_AddStringToObject(labels, "en", g->label_en[0] ? g->label_en : g->name);
    cJSON_AddStringToObject(labels, "zh-CN", g->label_zh[0] ? g->label_zh : g->name);
    cJSON_AddItemToObject(j, "members", str_list((char(*)[64])g->members, g->nmembers));
    /* The old members' rows go, the new ones come. */
    struct trl_group *old = malloc(sizeof(*old));
    int rc = old ? 0 : TRL_ENOMEM;
    if (!rc) {
        int gr = trl_auth_group_get(t, g->name, old);
        rc = gr == TRL_ENOTFOUND ? 0 : gr ? gr : members_index(t, old, false);
    }
    free(old);
    if (!rc) rc = members_index(t, g, true);
    if (!rc) rc = put_json(t, 'g', g->name, j);
    cJSON_Delete(j);
    return rc;
}

int trl_auth_group_get(struct trl_txn *t, const char *name, struct trl_group *g)
{
    cJSON *j = NULL;
    int rc = get_json(t, 'g', name, &j);
    if (rc) return rc;
    memset(g, 0, sizeof(*g));
    str_field(j, "name", g->name, sizeof(g->name));
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "labels");
    str_field(l, "en", g->label_en, sizeof(g->label_en));
    str_field(l, "zh-CN", g->label_zh, sizeof(g->label_zh));
    g->nmembers = list_field(j, "members", g->members, TRL_AUTH_MAX_MEMBERS);
    cJSON_Delete(j);
    return 0;
}

int trl_auth_group_delete(struct trl_txn *t, const char *name)
{
    struct trl_group *old = malloc(sizeof(*old));
    if (!old) return TRL_ENOMEM;
    int gr = trl_auth_group_get(t, name, old);
    int orc = gr ? gr : members_index(t, old, false);
    free(old);
    if (orc) return orc;
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = key(&k, 'g', name);
    if (!rc) rc = trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
    trl_buf_free(&k);
    return rc;
}

int trl_auth_group_list(struct trl_txn *t, struct trl_buf *out)
{
    struct lister l = {.out = out};
    int rc = trl_buf_addc(out, '[');
    if (!rc) rc = each(t, 'g', list_raw, &l);
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Orgs
 */
int trl_auth_org_put(struct trl_txn *t, const char *name, const char *label_en,
                     const char *label_zh, struct trl_diag *d)
{
    if (!trl_auth_name_valid(name))
        return bad(d, "name", "use 1 to 63 of a-z, 0-9, _ . -",
                   "只能使用 1 到 63 个 a-z、0-9、_ . -");
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    cJSON_AddStringToObject(j, "name", name);
    cJSON *labels = cJSON_AddObjectToObject(j, "labels");
    cJSON_AddStringToObject(labels, "en", label_en && *label_en ? label_en : name);
    cJSON_AddStringToObject(labels, "zh-CN", label_zh && *label_zh ? label_zh : name);
    int rc = put_json(t, 'o', name, j);
    cJSON_Delete(j);
    return rc;
}

bool trl_auth_org_exists(struct trl_txn *t, const char *name)
{
    cJSON *j = NULL;
    if (get_json(t, 'o', name, &j)) return false;
    cJSON_Delete(j);
    return true;
}

static int list_raw(void *ud, const void *v, size_t n)
{
    struct lister *l = ud;
    if (l->n++ && trl_buf_addc(l->out, ',')) return TRL_ENOMEM;
    return trl_buf_add(l->out, v, n);
}

int trl_auth_org_list(struct trl_txn *t, struct trl_buf *out)
{
    struct lister l = {.out = out};
    int rc = trl_buf_addc(out, '[');
    if (!rc) rc = each(t, 'o', list_raw, &l);
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Tokens
 */
static void token_hash_hex(const char *secret, char hex[65])
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
    trl_hex(h, 32, hex);
}

static cJSON *token_to_json(const struct trl_token *tok, const char *hash)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "name", tok->name);
    cJSON_AddStringToObject(j, "user", tok->user);
    cJSON_AddItemToObject(j, "roles", str_list((char(*)[64])tok->roles, tok->nroles));
    cJSON_AddNumberToObject(j, "created_at", (double)tok->created_at);
    cJSON_AddNumberToObject(j, "expires_at", (double)tok->expires_at);
    if (hash) cJSON_AddStringToObject(j, "hash", hash);
    return j;
}

int trl_auth_token_create(struct trl_txn *t, const struct trl_token *tok, char *secret,
                          struct trl_diag *d)
{
    if (!trl_auth_name_valid(tok->name))
        return bad(d, "name", "use 1 to 63 of a-z, 0-9, _ . -",
                   "只能使用 1 到 63 个 a-z、0-9、_ . -");
    struct trl_user u;
    if (trl_auth_user_get(t, tok->user, &u) != 0 || !u.active)
        return bad(d, "user", "must be an existing, active user", "必须是已存在且启用的用户");
    for (size_t i = 0; i < tok->nroles; i++) {
        bool has = false;
        for (size_t k = 0; k < u.nroles && !has; k++)
            has = strcmp(u.roles[k], tok->roles[i]) == 0;
        if (!has)
            return bad(d, "roles", "a token can only hold roles its user has",
                       "令牌只能拥有其用户已有的角色");
    }
    cJSON *old = NULL;
    if (get_json(t, 'n', tok->name, &old) == 0) {
        cJSON_Delete(old);
        trl_diag_set(d, TRL_EEXIST, "a token named '%s' exists; revoke it first", tok->name);
        trl_diag_zh(d, "名为“%s”的令牌已存在,请先吊销", tok->name);
        trl_diag_field(d, "name");
        return TRL_EEXIST;
    }
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    char hex[65], hash[65];
    trl_hex(raw, sizeof(raw), hex);
    sodium_memzero(raw, sizeof(raw));
    snprintf(secret, 80, "trl_%s", hex);
    sodium_memzero(hex, sizeof(hex));
    token_hash_hex(secret, hash);
    cJSON *j = token_to_json(tok, hash);
    if (!j) return TRL_ENOMEM;
    int rc = put_json(t, 't', hash, j);
    if (!rc) rc = put_json(t, 'n', tok->name, j);
    cJSON_Delete(j);
    return rc;
}

static int token_from_json(const cJSON *j, struct trl_token *tok)
{
    memset(tok, 0, sizeof(*tok));
    str_field(j, "name", tok->name, sizeof(tok->name));
    str_field(j, "user", tok->user, sizeof(tok->user));
    tok->nroles = list_field(j, "roles", tok->roles, TRL_AUTH_MAX_ROLES);
    tok->created_at = num_field(j, "created_at");
    tok->expires_at = num_field(j, "expires_at");
    return tok->name[0] ? 0 : TRL_ECORRUPT;
}

int trl_auth_token_check(struct trl_txn *t, const char *secret, int64_t now_ms,
                         struct trl_token *tok, struct trl_user *user)
{
    if (strncmp(secret, "trl_", 4) != 0 || strlen(secret) != 68) return TRL_EAUTH;
    char hash[65];
    token_hash_hex(secret, hash);
    cJSON *j = NULL;
    if (get_json(t, 't', hash, &j)) return TRL_EAUTH;
    int rc = token_from_json(j, tok);
    cJSON_Delete(j);
    if (rc) return TRL_EAUTH;
    if (tok->expires_at && now_ms >= tok->expires_at) return TRL_EAUTH;
    struct trl_user mine;
    struct trl_user *u = user ? user : &mine;
    if (trl_auth_user_get(t, tok->user, u) != 0 || !u->active) return TRL_EAUTH;
    return 0;
}

int trl_auth_token_get(struct trl_txn *t, const char *name, struct trl_token *tok)
{
    cJSON *j = NULL;
    int rc = get_json(t, 'n', name, &j);
    if (rc) return rc;
    rc = token_from_json(j, tok);
    cJSON_Delete(j);
    return rc;
}

int trl_auth_token_revoke(struct trl_txn *t, const char *name)
{
    cJSON *j = NULL;
    int rc = get_json(t, 'n', name, &j);
    if (rc) return rc;
    char hash[65];
    str_field(j, "hash", hash, sizeof(hash));
    cJSON_Delete(j);
    struct trl_buf k;
    trl_buf_init(&k);
    rc = key(&k, 't', hash);
    if (!rc) {
        rc = trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    if (!rc) rc = key(&k, 'n', name);
    if (!rc) rc = trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
    trl_buf_free(&k);
    return rc;
}

static int list_token(void *ud, const void *v, size_t n)
{
    struct lister *l = ud;
    cJSON *j = cJSON_ParseWithLength(v, n);
    if (!j) return TRL_ECORRUPT;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "hash");
    if (l->n++ && trl_buf_addc(l->out, ',')) {
        cJSON_Delete(j);
        return TRL_ENOMEM;
    }
    return buf_add_cjson(l->out, j);
}

int trl_auth_token_list(struct trl_txn *t, struct trl_buf *out)
{
    struct lister l = {.out = out};
    int rc = trl_buf_addc(out, '[');
    if (!rc) rc = each(t, 'n', list_token, &l);
    if (!rc) rc = trl_buf_addc(out, ']');
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Sessions
 */
static int session_index_key(struct trl_buf *k, const char *user, const char *hash)
{
    trl_buf_clear(k);
    if (trl_buf_addc(k, 'S') || trl_buf_addc(k, 0) || trl_buf_adds(k, user) || trl_buf_addc(k, 0) ||
        trl_buf_adds(k, hash))
        return TRL_ENOMEM;
    return 0;
}

static cJSON *session_to_json(const struct trl_session *s)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "user", s->user);
    cJSON_AddStringToObject(j, "csrf", s->csrf);
    cJSON_AddNumberToObject(j, "created_at", (double)s->created_at);
    cJSON_AddNumberToObject(j, "last_seen_at", (double)s->last_seen_at);
    cJSON_AddNumberToObject(j, "idle_ms", (double)s->idle_ms);
    cJSON_AddNumberToObject(j, "expires_at", (double)s->expires_at);
    return j;
}

static void session_from_json(const cJSON *j, struct trl_session *s)
{
    memset(s, 0, sizeof(*s));
    str_field(j, "user", s->user, sizeof(s->user));
    str_field(j, "csrf", s->csrf, sizeof(s->csrf));
    s->created_at = num_field(j, "created_at");
    s->last_seen_at = num_field(j, "last_seen_at");
    s->idle_ms = num_field(j, "idle_ms");
    s->expires_at = num_field(j, "expires_at");
}

int trl_auth_session_create(struct trl_txn *t, const char *user, int64_t now, int64_t idle_ms,
                            int64_t absolute_ms, char *secret, struct trl_session *out)
{
    unsigned char raw[32], c[32];
    char hex[65], hash[65];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(c, sizeof(c));
    trl_hex(raw, sizeof(raw), hex);
    snprintf(secret, 80, "s_%s", hex);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(hex, sizeof(hex));
    token_hash_hex(secret, hash);
    memset(out, 0, sizeof(*out));
    snprintf(out->user, sizeof(out->user), "%s", user);
    trl_hex(c, sizeof(c), out->csrf);
    out->created_at = out->last_seen_at = now;
    out->idle_ms = idle_ms;
    out->expires_at = now + absolute_ms;
    cJSON *j = session_to_json(out);
    if (!j) return TRL_ENOMEM;
    int rc = put_json(t, 's', hash, j);
    cJSON_Delete(j);
    struct trl_buf k;
    trl_buf_init(&k);
    if (!rc) rc = session_index_key(&k, user, hash);
    if (!rc) rc = trl_txn_put(t, TRL_DB_AUTH, k.data, k.len, "", 0, 0);
    trl_buf_free(&k);
    return rc;
}

int trl_auth_session_check(struct trl_txn *t, const char *secret, int64_t now,
                           struct trl_session *s, struct trl_user *u)
{
    if (strncmp(secret, "s_", 2) != 0 || strlen(secret) != 66) return TRL_EAUTH;
    char hash[65];
    token_hash_hex(secret, hash);
    cJSON *j = NULL;
    if (get_json(t, 's', hash, &j)) return TRL_EAUTH;
    session_from_json(j, s);
    cJSON_Delete(j);
    if (now >= s->expires_at || now - s->last_seen_at >= s->idle_ms) return TRL_EAUTH;
    if (trl_auth_user_get(t, s->user, u) != 0 || !u->active) return TRL_EAUTH;
    return 0;
}

int trl_auth_session_touch(struct trl_txn *t, const char *secret, int64_t now)
{
    char hash[65];
    token_hash_hex(secret, hash);
    cJSON *j = NULL;
    int rc = get_json(t, 's', hash, &j);
    if (rc) return rc;
    struct trl_session s;
    session_from_json(j, &s);
    cJSON_Delete(j);
    if (now > s.last_seen_at) s.last_seen_at = now;
    j = session_to_json(&s);
    if (!j) return TRL_ENOMEM;
    rc = put_json(t, 's', hash, j);
    cJSON_Delete(j);
    return rc;
}

static int session_end_hash(struct trl_txn *t, const char *user, const char *hash)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = key(&k, 's', hash);
    if (!rc) rc = trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
    if (!rc || rc == TRL_ENOTFOUND) {
        int irc = session_index_key(&k, user, hash);
        if (!irc) irc = trl_txn_del(t, TRL_DB_AUTH, k.data, k.len);
        if (irc && irc != TRL_ENOTFOUND) rc = irc;
    }
    trl_buf_free(&k);
    return rc;
}

int trl_auth_session_end(struct trl_txn *t, const char *secret)
{
    char hash[65];
    token_hash_hex(secret, hash);
    cJSON *j = NULL;
    int rc = get_json(t, 's', hash, &j);
    if (rc) return rc;
    struct trl_session s;
    session_from_json(j, &s);
    cJSON_Delete(j);
    return session_end_hash(t, s.user, hash);
}

int trl_auth_sessions_end_user(struct trl_txn *t, const char *user, size_t *n)
{
    /* Collect the hashes first: deleting under an open cursor would move it. */
    struct trl_buf pre, found;
    trl_buf_init(&pre);
    trl_buf_init(&found);
    *n = 0;
    int rc = trl_buf_addc(&pre, 'S') || trl_buf_addc(&pre, 0) || trl_buf_adds(&pre, user) ||
                     trl_buf_addc(&pre, 0)
                 ? TRL_ENOMEM
                 : 0;
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    int mv = rc ? rc : trl_cursor_seek(c, pre.data, pre.len);
    for (; !rc && mv == 0; mv = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n != pre.len + 64 || memcmp(k.p, pre.data, pre.len) != 0) break;
        if (trl_buf_add(&found, (const char *)k.p + pre.len, 64)) rc = TRL_ENOMEM;
    }
    trl_cursor_close(c);
    for (size_t off = 0; !rc && off + 64 <= found.len; off += 64) {
        char hash[65];
        memcpy(hash, found.data + off, 64);
        hash[64] = 0;
        rc = session_end_hash(t, user, hash);
        if (!rc) (*n)++;
    }
    trl_buf_free(&pre);
    trl_buf_free(&found);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Audit log
 */
int trl_auth_audit(struct trl_txn *t, int64_t now, const struct trl_audit *a)
{
    uint64_t seq;
    int rc = trl_txn_seq_next(t, "audit", &seq);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject();
    if (!j) return TRL_ENOMEM;
    char ts[32];
    trl_datetime_format(now, ts);
    cJSON_AddNumberToObject(j, "seq", (double)seq);
    cJSON_AddStringToObject(j, "at", ts);
    cJSON_AddStringToObject(j, "actor", a->actor ? a->actor : "");
    cJSON_AddStringToObject(j, "action", a->action ? a->action : "");
    cJSON_AddStringToObject(j, "target", a->target ? a->target : "");
    cJSON_AddStringToObject(j, "client", a->client ? a->client : "");
    cJSON_AddStringToObject(j, "detail", a->detail ? a->detail : "");
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt) return TRL_ENOMEM;
    unsigned char k[9] = {'a'};
    trl_put_u64be(k + 1, seq);
    rc = trl_txn_put(t, TRL_DB_AUTH, k, sizeof(k), txt, strlen(txt), TRL_PUT_APPEND);
    free(txt);
    return rc;
}

int trl_auth_audit_list(struct trl_txn *t, size_t limit, uint64_t before, struct trl_buf *out)
{
    struct trl_cursor *c = NULL;
    unsigned char k[9] = {'a'};
    trl_put_u64be(k + 1, before ? before : UINT64_MAX);
    int rc = trl_cursor_open(t, TRL_DB_AUTH, &c);
    if (rc) return rc;
    rc = trl_buf_adds(out, "{\"items\":[");
    size_t n = 0;
    uint64_t last = 0;
    int mv;
    for (mv = trl_cursor_seek_before(c, k, sizeof(k)); !rc && mv == 0 && n < limit;
         mv = trl_cursor_prev(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n != 9 || ((const unsigned char *)key.p)[0] != 'a') break;
        last = trl_get_u64be((const unsigned char *)key.p + 1);
        if (n++) rc = trl_buf_addc(out, ',');
        if (!rc) rc = trl_buf_add(out, v.p, v.n);
    }
    trl_cursor_close(c);
    if (!rc) {
        if (n == limit && last > 1)
            rc = trl_buf_printf(out, "],\"next_before\":%llu}", (unsigned long long)last);
        else
            rc = trl_buf_adds(out, "],\"next_before\":null}");
    }
    return rc;
}
