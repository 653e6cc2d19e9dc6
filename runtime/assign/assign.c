/* assign.c — assignment rules: definitions and the strategies that pick an assignee. */
#include "assign.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Definitions
 */
void trl_assign_def_free(struct trl_assign_def *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->nrules; i++) {
        struct trl_assign_rule *r = &a->rules[i];
        free(r->name);
        free(r->condition);
        trl_expr_free(r->cond);
        free(r->user);
        free(r->group);
        free(r->skills_field);
        free(r->region_field);
    }
    free(a->rules);
    for (size_t i = 0; i < a->non; i++)
        free(a->on[i]);
    free(a->on);
    free(a->field);
    memset(a, 0, sizeof(*a));
}

static char *dup_name(struct trl_defcheck *c, const cJSON *v, const char *path, const char *what)
{
    if (!cJSON_IsString(v) || !trl_auth_name_valid(v->valuestring)) {
        trl_def_err(c, path, "must be a %s name", what);
        return NULL;
    }
    char *s = strdup(v->valuestring);
    if (!s) c->rc = TRL_ENOMEM;
    return s;
}

static char *text_field(struct trl_defcheck *c, const cJSON *v, const char *path,
                        const struct trl_type *ty)
{
    if (!cJSON_IsString(v)) {
        trl_def_err(c, path, "must name a text field");
        return NULL;
    }
    if (ty) {
        const struct trl_field *f = trl_type_field(ty, v->valuestring, strlen(v->valuestring));
        if (!f || (f->type != TRL_FT_TEXT && f->type != TRL_FT_ENUM)) {
            trl_def_err(c, path, "type %s has no text or enum field '%s'", ty->name,
                        v->valuestring);
            return NULL;
        }
    }
    char *s = strdup(v->valuestring);
    if (!s) c->rc = TRL_ENOMEM;
    return s;
}

static void parse_rule(struct trl_defcheck *c, const cJSON *j, const char *path,
                       const struct trl_type *ty, struct trl_assign_rule *r)
{
    static const char *const keys[] = {"name",  "condition",    "strategy",    "user",
                                       "group", "skills_field", "region_field"};
    char p[200];
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object");
        return;
    }
    trl_def_keys(c, j, path, keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%.150s.name", path);
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
        trl_def_err(c, p, "must be a lower-case identifier (a-z, 0-9, _)");
    else if (!(r->name = strdup(nm->valuestring)))
        c->rc = TRL_ENOMEM;
    const cJSON *cond = cJSON_GetObjectItemCaseSensitive(j, "condition");
    snprintf(p, sizeof(p), "%.150s.condition", path);
    if (cond && !cJSON_IsString(cond)) {
        trl_def_err(c, p, "must be an expression such as \"region = \\\"east\\\"\"");
    } else if (cond) {
        trl_rec_def_condition(c, cond->valuestring, p, ty, &r->cond, &r->condition);
    }
    static const char *const strategies[] = {"user", "round_robin", "least_loaded", "skills",
                                             "region"};
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "strategy");
    snprintf(p, sizeof(p), "%.150s.strategy", path);
    size_t k = 0;
    while (cJSON_IsString(st) && k < 5 && strcmp(strategies[k], st->valuestring) != 0)
        k++;
    if (!cJSON_IsString(st) || k == 5) {
        trl_def_err(c, p, "must be user, round_robin, least_loaded, skills or region");
        return;
    }
    r->strategy = (enum trl_assign_strategy)k;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *group = cJSON_GetObjectItemCaseSensitive(j, "group");
    if (r->strategy == TRL_ASSIGN_USER) {
        snprintf(p, sizeof(p), "%.150s.user", path);
        r->user = dup_name(c, user, p, "user");
        if (group) {
            snprintf(p, sizeof(p), "%.150s.group", path);
            trl_def_err(c, p, "a user rule names a user, not a group");
        }
    } else {
        snprintf(p, sizeof(p), "%.150s.group", path);
        r->group = dup_name(c, group, p, "group");
        if (user) {
            snprintf(p, sizeof(p), "%.150s.user", path);
            trl_def_err(c, p, "only a user rule names a user");
        }
    }
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(j, "skills_field");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(j, "region_field");
    snprintf(p, sizeof(p), "%.150s.skills_field", path);
    if (r->strategy == TRL_ASSIGN_SKILLS)
        r->skills_field = text_field(c, sf, p, ty);
    else if (sf)
        trl_def_err(c, p, "only a skills rule takes skills_field");
    snprintf(p, sizeof(p), "%.150s.region_field", path);
    if (r->strategy == TRL_ASSIGN_REGION)
        r->region_field = text_field(c, rf, p, ty);
    else if (rf)
        trl_def_err(c, p, "only a region rule takes region_field");
}

void trl_assign_def_parse(struct trl_defcheck *c, const struct cJSON *j, const char *path,
                          const struct trl_type *ty, struct trl_assign_def *a)
{
    static const char *const keys[] = {"field", "on", "rules"};
    char p[160];
    memset(a, 0, sizeof(*a));
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object with field, on and rules");
        return;
    }
    trl_def_keys(c, j, path, keys, 3);
    snprintf(p, sizeof(p), "%.100s.field", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "field");
    if (!cJSON_IsString(f)) {
        trl_def_err(c, p, "name the text field that holds the assignee");
    } else if (ty) {
        const struct trl_field *fd = trl_type_field(ty, f->valuestring, strlen(f->valuestring));
        if (!fd || fd->type != TRL_FT_TEXT)
            trl_def_err(c, p, "type %s has no text field '%s'", ty->name, f->valuestring);
    }
    if (cJSON_IsString(f) && !(a->field = strdup(f->valuestring))) c->rc = TRL_ENOMEM;
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "on");
    snprintf(p, sizeof(p), "%.100s.on", path);
    if (!cJSON_IsArray(on) || cJSON_GetArraySize(on) == 0) {
        trl_def_err(c, p, "list when the rules apply: \"create\" and/or transition names");
    } else {
        size_t n = (size_t)cJSON_GetArraySize(on), k = 0;
        if (!(a->on = calloc(n, sizeof(*a->on)))) {
            c->rc = TRL_ENOMEM;
            return;
        }
        for (const cJSON *it = on->child; it; it = it->next, k++) {
            char p2[200];
            snprintf(p2, sizeof(p2), "%s[%zu]", p, k);
            if (!cJSON_IsString(it) || !trl_def_ident(it->valuestring)) {
                trl_def_err(c, p2, "must be \"create\" or a transition name");
            } else {
                /* "create" stays in the list too, so that errors name the entry's index. */
                if (strcmp(it->valuestring, "create") == 0) a->on_create = true;
                if (!(a->on[a->non++] = strdup(it->valuestring))) c->rc = TRL_ENOMEM;
            }
        }
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(j, "rules");
    snprintf(p, sizeof(p), "%.100s.rules", path);
    size_t n, k = 0;
    if (!(a->rules = trl_def_array(c, rules, p, 1, 64, sizeof(*a->rules), "rules", &n))) return;
    for (const cJSON *it = rules->child; it; it = it->next, k++) {
        char p2[200];
        snprintf(p2, sizeof(p2), "%s[%zu]", p, k);
        a->nrules++;
        parse_rule(c, it, p2, ty, &a->rules[k]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Picking
 */
int trl_assign_load(struct trl_txn *t, const struct trl_assign_subject *s, const char *user,
                    uint64_t *n)
{
    *n = 0;
    struct trl_buf f, out;
    trl_buf_init(&f);
    trl_buf_init(&out);
    int rc = trl_buf_printf(&f, "%s = ", s->field) ||
             trl_buf_add_json_str(&f, user, strlen(user)) || trl_buf_adds(&f, " && state in (");
    size_t k = 0;
    for (const char *const *o = s->open; !rc && o && *o; o++, k++)
        rc = (k && trl_buf_addc(&f, ',')) || trl_buf_add_json_str(&f, *o, strlen(*o));
    if (!rc) rc = trl_buf_addc(&f, ')');
    if (rc) {
        trl_buf_free(&f);
        return TRL_ENOMEM;
    }
    if (k == 0) {
        trl_buf_free(&f);
        return 0;
    }
    struct trl_rec_ctx cx = *s->cx;
    cx.acc = NULL;
    struct trl_diag d;
    trl_diag_init(&d);
    cx.d = &d;
    struct trl_list_opts lo = {
        .filter = f.data, .limit = 1, .count_exact = true, .out = {.fields = "id"}};
    rc = trl_rec_list(t, &cx, s->ty, &lo, &out);
    if (!rc) {
        const char *p = out.data ? strstr(out.data, "\"count\":") : NULL;
        *n = p ? strtoull(p + 8, NULL, 10) : 0;
    } else {
        trl_log(TRL_LOG_WARN, "assignment load of %s: %s", user, d.message);
    }
    trl_diag_reset(&d);
    trl_buf_free(&f);
    trl_buf_free(&out);
    return rc;
}

/* True when every skill of need (comma/space separated) is among u's skills. */
static bool covers(const struct trl_user *u, const char *need)
{
    const char *p = need;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n) break;
        bool has = false;
        for (size_t i = 0; i < u->nskills && !has; i++)
            has = strlen(u->skills[i]) == n && strncmp(u->skills[i], p, n) == 0;
        if (!has) return false;
        p += n;
    }
    return true;
}

static int no_candidate(struct trl_diag *d, const struct trl_assign_rule *r, const char *why_en,
                        const char *why_zh)
{
    trl_diag_set(d, TRL_ENOTFOUND, "assignment rule '%s' finds nobody: %s", r->name, why_en);
    trl_diag_zh(d, "分配规则“%s”找不到处理人:%s", r->name, why_zh);
    trl_diag_rule(d, "assignment", "");
    return TRL_ENOTFOUND;
}

int trl_assign_pick(struct trl_txn *t, const struct trl_assign_rule *r,
                    const struct trl_assign_subject *s, char *out, struct trl_diag *d)
{
    out[0] = 0;
    if (r->strategy == TRL_ASSIGN_USER) {
        struct trl_user u;
        if (trl_auth_user_get(t, r->user, &u) != 0 || !u.active)
            return no_candidate(d, r, "the user is unknown or disabled", "该用户不存在或已停用");
        snprintf(out, 64, "%s", u.name);
        return 0;
    }
    struct trl_group *g = malloc(sizeof(*g));
    struct trl_user *u = malloc(sizeof(*u));
    if (!g || !u) {
        free(g);
        free(u);
        return TRL_ENOMEM;
    }
    int rc = trl_auth_group_get(t, r->group, g);
    if (rc == TRL_ENOTFOUND) {
        g->nmembers = 0;
        rc = 0;
    }
    /* Candidates in the group's order. */
    size_t cand[TRL_AUTH_MAX_MEMBERS], nc = 0;
    for (size_t i = 0; i < g->nmembers && !rc; i++) {
        if (s->exclude && strcmp(g->members[i], s->exclude) == 0) continue;
        if (trl_auth_user_get(t, g->members[i], u) != 0 || !u->active) continue;
        if (r->strategy == TRL_ASSIGN_SKILLS && !covers(u, s->skills ? s->skills : "")) continue;
        if (r->strategy == TRL_ASSIGN_REGION &&
            (!s->region || !*s->region || strcmp(u->region, s->region) != 0))
            continue;
        cand[nc++] = i;
    }
    if (!rc && nc == 0) {
        rc = r->strategy == TRL_ASSIGN_SKILLS
                 ? no_candidate(d, r, "no active member has every required skill",
                                "没有在职成员具备全部所需技能")
             : r->strategy == TRL_ASSIGN_REGION
                 ? no_candidate(d, r, "no active member serves the record's region",
                                "没有在职成员负责该记录的区域")
                 : no_candidate(d, r, "the group has no active member", "该组没有在职成员");
    } else if (!rc && r->strategy == TRL_ASSIGN_ROUND_ROBIN) {
        /* Continue after the member picked last (the counter holds its position + 1), skipping
         * whoever is inactive now: a member leaving or rejoining does not reorder the rest. */
        uint64_t last;
        rc = trl_txn_seq_get(t, s->rr_key, &last);
        size_t start = g->nmembers ? (size_t)(last % g->nmembers) : 0, pick = cand[0];
        for (size_t k = 0; k < nc; k++)
            if (cand[k] >= start) {
                pick = cand[k];
                break;
            }
        if (!rc) rc = trl_txn_seq_set(t, s->rr_key, pick + 1);
        if (!rc) snprintf(out, 64, "%s", g->members[pick]);
    } else if (!rc) {
        /* Least loaded (also among skilled or regional candidates); ties: group order. */
        uint64_t best = UINT64_MAX;
        for (size_t i = 0; i < nc && !rc; i++) {
            uint64_t load;
            rc = trl_assign_load(t, s, g->members[cand[i]], &load);
            if (!rc && load < best) {
                best = load;
                snprintf(out, 64, "%s", g->members[cand[i]]);
            }
        }
    }
    free(g);
    free(u);
    return rc;
}
