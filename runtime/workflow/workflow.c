/* workflow.c — workflow definitions: parse, check, store, load; transitions: list and run. */
#include "workflow.h"

#include "codec/codec.h"
#include "notify/notify.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Freeing
 */
static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_actions(struct trl_wf_action *a, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        free_actions(a[k].sub, a[k].nsub);
        free(a[k].field);
        free((char *)a[k].val.s);
        free(a[k].ref);
        free(a[k].name);
        trl_labels_free(&a[k].message);
    }
    free(a);
}

void trl_wf_free(struct trl_workflow *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->nstates; i++) {
        free(w->states[i].name);
        trl_labels_free(&w->states[i].labels);
        free(w->states[i].category);
        free(w->states[i].color);
    }
    free(w->states);
    for (size_t i = 0; i < w->ntransitions; i++) {
        struct trl_wf_transition *t = &w->transitions[i];
        free(t->name);
        trl_labels_free(&t->labels);
        free_strv(t->from, t->nfrom);
        free(t->to);
        free_strv(t->roles, t->nroles);
        free(t->condition);
        trl_expr_free(t->cond);
        free_strv(t->required, t->nrequired);
        free_strv(t->fields, t->nfields);
        trl_labels_free(&t->confirm);
        free_actions(t->actions, t->nactions);
    }
    free(w->transitions);
    for (size_t i = 0; i < w->napprovals; i++)
        trl_appr_def_free(&w->approvals[i]);
    free(w->approvals);
    for (size_t i = 0; i < w->nslas; i++) {
        struct trl_wf_sla *p = &w->slas[i];
        free(p->name);
        trl_labels_free(&p->labels);
        free(p->condition);
        trl_expr_free(p->cond);
        free(p->calendar);
        free_strv(p->pause, p->npause);
        for (size_t k = 0; k < p->ntargets; k++) {
            struct trl_wf_sla_target *tg = &p->targets[k];
            free(tg->name);
            trl_labels_free(&tg->labels);
            free_strv(tg->start, tg->nstart);
            free_strv(tg->stop, tg->nstop);
            free_actions(tg->on_warning, tg->nwarning);
            free_actions(tg->on_breach, tg->nbreach);
        }
        free(p->targets);
    }
    free(w->slas);
    trl_assign_def_free(&w->assignment);
    free(w->name);
    free(w->type);
    trl_labels_free(&w->labels);
    free(w->definition);
    free(w);
}

/* ---------------------------------------------------------------------------------------------
 * Parsing and checking
 */
/* A string or an array of strings into an owned vector. */
static char **strv(struct trl_defcheck *c, const cJSON *j, const char *path, bool allow_string,
                   size_t *n)
{
    *n = 0;
    if (!j) return NULL;
    if (allow_string && cJSON_IsString(j)) {
        char **v = malloc(sizeof(*v));
        if (!v || !(v[0] = strdup(j->valuestring))) {
            free(v);
            c->rc = TRL_ENOMEM;
            return NULL;
        }
        *n = 1;
        return v;
    }
    if (!cJSON_IsArray(j)) {
        trl_def_err(c, path, "must be an array of names");
        return NULL;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(j), k = 0;
    char **v = calloc(cnt ? cnt : 1, sizeof(*v));
    if (!v) {
        c->rc = TRL_ENOMEM;
        return NULL;
    }
    for (const cJSON *it = j->child; it; it = it->next) {
        if (!cJSON_IsString(it)) {
            char p[200];
            snprintf(p, sizeof(p), "%s[%zu]", path, k);
            trl_def_err(c, p, "must be a name");
            continue;
        }
        if (!(v[k] = strdup(it->valuestring))) c->rc = TRL_ENOMEM;
        k++;
    }
    *n = k;
    return v;
}

static const struct trl_wf_state *find_state(const struct trl_workflow *w, const char *name)
{
    for (size_t i = 0; i < w->nstates; i++)
        if (w->states[i].name && strcmp(w->states[i].name, name) == 0) return &w->states[i];
    return NULL;
}

static bool color_ok(const char *s)
{
    if (strlen(s) != 7 || s[0] != '#') return false;
    for (int i = 1; i < 7; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return false;
    return true;
}

static void parse_states(struct trl_defcheck *c, const cJSON *arr, const struct trl_type *ty,
                         struct trl_workflow *w)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        trl_def_err(c, "states", "must be a non-empty array of states");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    w->states = calloc(n, sizeof(*w->states));
    if (!w->states) {
        c->rc = TRL_ENOMEM;
        return;
    }
    static const char *const keys[] = {"name", "labels", "initial", "final", "category", "color"};
    size_t ninitial = 0, i = 0;
    for (const cJSON *s = arr->child; s; s = s->next, i++) {
        char path[64], p2[96];
        snprintf(path, sizeof(path), "states[%zu]", i);
        struct trl_wf_state *st = &w->states[w->nstates++];
        if (!cJSON_IsObject(s)) {
            trl_def_err(c, path, "must be an object");
            st->name = strdup("");
            st->category = strdup("");
            st->color = strdup("");
            st->labels.en = strdup("");
            st->labels.zh = strdup("");
            continue;
        }
        trl_def_keys(c, s, path, keys, sizeof(keys) / sizeof(keys[0]));
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(s, "name");
        snprintf(p2, sizeof(p2), "%s.name", path);
        if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
            trl_def_err(c, p2, "must be a lower-case identifier (a-z, 0-9, _)");
        else if (find_state(w, nm->valuestring))
            trl_def_err(c, p2, "state '%s' is defined twice", nm->valuestring);
        st->name = strdup(cJSON_IsString(nm) ? nm->valuestring : "");
        snprintf(p2, sizeof(p2), "%s.labels", path);
        trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(s, "labels"), p2, &st->labels);
        const cJSON *ini = cJSON_GetObjectItemCaseSensitive(s, "initial");
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(s, "final");
        snprintf(p2, sizeof(p2), "%s.initial", path);
        if (ini && !cJSON_IsBool(ini)) trl_def_err(c, p2, "must be true or false");
        snprintf(p2, sizeof(p2), "%s.final", path);
        if (fin && !cJSON_IsBool(fin)) trl_def_err(c, p2, "must be true or false");
        st->initial = cJSON_IsTrue(ini);
        st->final = cJSON_IsTrue(fin);
        if (st->initial) {
            ninitial++;
            snprintf(p2, sizeof(p2), "%s.initial", path);
            if (ty && (!ty->initial_state || !*ty->initial_state))
                trl_def_err(
                    c, p2, "type %s has no initial_state; set it to '%s' so new records start here",
                    ty->name, st->name ? st->name : "");
            else if (ty && st->name && strcmp(ty->initial_state, st->name) != 0)
                trl_def_err(c, p2,
                            "type %s starts records in '%s' (its initial_state); the initial state "
                            "must be the same",
                            ty->name, ty->initial_state);
            if (st->final) trl_def_err(c, p2, "the initial state cannot be final");
        }
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(s, "category");
        snprintf(p2, sizeof(p2), "%s.category", path);
        const char *cv = cJSON_IsString(cat) ? cat->valuestring : (st->final ? "done" : "open");
        if (cat && (!cJSON_IsString(cat) ||
                    (strcmp(cv, "open") && strcmp(cv, "waiting") && strcmp(cv, "done"))))
            trl_def_err(c, p2, "must be one of open, waiting, done");
        st->category = strdup(cv);
        const cJSON *col = cJSON_GetObjectItemCaseSensitive(s, "color");
        snprintf(p2, sizeof(p2), "%s.color", path);
        if (col && (!cJSON_IsString(col) || !color_ok(col->valuestring)))
            trl_def_err(c, p2, "must be a colour like \"#1677ff\"");
        st->color = strdup(cJSON_IsString(col) ? col->valuestring : "");
        if (!st->name || !st->category || !st->color) c->rc = TRL_ENOMEM;
    }
    if (ninitial != 1)
        trl_def_err(c, "states", "exactly one state must be initial (found %zu)", ninitial);
}

/* Variables a set action may use, with the field types each fits. */
static bool var_fits(const char *var, enum trl_ftype ft)
{
    if (strcmp(var, "now") == 0) return ft == TRL_FT_DATETIME;
    if (strcmp(var, "today") == 0) return ft == TRL_FT_DATE;
    if (strcmp(var, "user.id") == 0) return ft == TRL_FT_USER || ft == TRL_FT_TEXT;
    if (strcmp(var, "user.org") == 0 || strcmp(var, "user.region") == 0)
        return ft == TRL_FT_TEXT || ft == TRL_FT_ENUM;
    return false;
}

static bool var_known(const char *var)
{
    static const char *const vars[] = {"now", "today", "user.id", "user.org", "user.region"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strcmp(vars[i], var) == 0) return true;
    return false;
}

static bool var_known(const char *var);

/* A JSON constant of a definition as an input (text owned by in->s). false on ENOMEM (c->rc). */
static bool const_input(struct trl_defcheck *c, const cJSON *v, struct trl_input *in)
{
    char *text = NULL;
    in->name = "";
    if (cJSON_IsNull(v)) {
        in->kind = TRL_IN_NULL;
    } else if (cJSON_IsBool(v)) {
        in->kind = TRL_IN_BOOL;
        in->b = cJSON_IsTrue(v);
    } else if (cJSON_IsString(v)) {
        in->kind = TRL_IN_STRING;
        text = strdup(v->valuestring);
    } else {
        in->kind = cJSON_IsNumber(v) ? TRL_IN_NUMBER : TRL_IN_JSON;
        text = cJSON_PrintUnformatted(v);
    }
    in->s = text;
    in->n = text ? strlen(text) : 0;
    if (in->kind != TRL_IN_NULL && in->kind != TRL_IN_BOOL && !text) {
        c->rc = TRL_ENOMEM;
        return false;
    }
    return true;
}

/* {"create": "<type>", "for_each": "<json field>", "fields": {"<target>": {"value" | "copy" |
 * "var" | "item": ...}}}: the target type and its fields are checked by check_creates. */
static void parse_create(struct trl_defcheck *c, const cJSON *a, const char *path,
                         const struct trl_type *ty, struct trl_wf_action *out)
{
    static const char *const keys[] = {"create", "for_each", "fields"};
    char p2[220];
    trl_def_keys(c, a, path, keys, 3);
    out->kind = TRL_ACT_CREATE;
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(a, "create");
    snprintf(p2, sizeof(p2), "%.180s.create", path);
    if (!cJSON_IsString(cr) || !trl_def_ident(cr->valuestring))
        trl_def_err(c, p2, "must name a record type");
    else if (!(out->ref = strdup(cr->valuestring)))
        c->rc = TRL_ENOMEM;
    const cJSON *fe = cJSON_GetObjectItemCaseSensitive(a, "for_each");
    snprintf(p2, sizeof(p2), "%.180s.for_each", path);
    if (fe) {
        const struct trl_field *f =
            cJSON_IsString(fe) && ty ? trl_type_field(ty, fe->valuestring, strlen(fe->valuestring))
                                     : NULL;
        if (!cJSON_IsString(fe) || (ty && (!f || f->type != TRL_FT_JSON)))
            trl_def_err(c, p2, "must name a json field holding an array (one record per element)");
        else if (!(out->name = strdup(fe->valuestring)))
            c->rc = TRL_ENOMEM;
    }
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(a, "fields");
    snprintf(p2, sizeof(p2), "%.180s.fields", path);
    if (!cJSON_IsObject(fields) || !fields->child) {
        trl_def_err(c, p2, "map at least one field of the new record");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(fields);
    if (!(out->sub = calloc(n, sizeof(*out->sub)))) {
        c->rc = TRL_ENOMEM;
        return;
    }
    static const char *const sys[] = {"id", "name", "owner", "org", "state"};
    for (const cJSON *m = fields->child; m; m = m->next) {
        struct trl_wf_action *sub = &out->sub[out->nsub++];
        char p3[260];
        snprintf(p3, sizeof(p3), "%s.%s", p2, m->string);
        sub->kind = TRL_ACT_SET;
        if (!(sub->field = strdup(m->string))) c->rc = TRL_ENOMEM;
        static const char *const mkeys[] = {"value", "copy", "var", "item"};
        if (!cJSON_IsObject(m) || cJSON_GetArraySize(m) != 1) {
            trl_def_err(c, p3,
                        "must be one of {\"value\": ...}, {\"copy\": field}, "
                        "{\"var\": ...} or {\"item\": key}");
            continue;
        }
        trl_def_keys(c, m, p3, mkeys, 4);
        const cJSON *v = m->child;
        if (strcmp(v->string, "copy") == 0) {
            sub->src = TRL_WF_COPY;
            bool ok = cJSON_IsString(v) &&
                      (!ty || trl_type_field(ty, v->valuestring, strlen(v->valuestring)));
            for (size_t k = 0; !ok && cJSON_IsString(v) && k < 5; k++)
                ok = strcmp(sys[k], v->valuestring) == 0;
            if (!ok)
                trl_def_err(c, p3, "copy names a field of %s (or id, name, owner, org, state)",
                            ty ? ty->name : "the type");
        } else if (strcmp(v->string, "var") == 0) {
            sub->src = TRL_WF_VAR;
            if (!cJSON_IsString(v) || !var_known(v->valuestring))
                trl_def_err(c, p3, "var is one of now, today, user.id, user.org, user.region");
        } else if (strcmp(v->string, "item") == 0) {
            sub->src = TRL_WF_ITEM;
            if (!out->name) trl_def_err(c, p3, "item needs for_each");
            if (!cJSON_IsString(v)) trl_def_err(c, p3, "item names a key of the list element");
        } else {
            sub->src = TRL_WF_CONST;
            const_input(c, v, &sub->val);
            continue;
        }
        if (cJSON_IsString(v) && !(sub->ref = strdup(v->valuestring))) c->rc = TRL_ENOMEM;
    }
}

/* Create actions name a type of the catalog and its writable fields; constants fit them. */
static void check_creates(struct trl_defcheck *c, const struct trl_catalog *cat,
                          const struct trl_wf_action *acts, size_t n, const char *pathfmt, size_t i)
{
    for (size_t k = 0; k < n; k++) {
        const struct trl_wf_action *a = &acts[k];
        if (a->kind != TRL_ACT_CREATE || !a->ref) continue;
        char path[200];
        snprintf(path, sizeof(path), pathfmt, i, k);
        const struct trl_type *tt = trl_catalog_type(cat, a->ref);
        if (!tt) {
            trl_def_err(c, path, "no type '%s' is defined", a->ref);
            continue;
        }
        for (size_t q = 0; q < a->nsub; q++) {
            const struct trl_wf_action *m = &a->sub[q];
            char p2[300];
            snprintf(p2, sizeof(p2), "%s.fields.%s", path, m->field);
            const struct trl_field *f = trl_type_field(tt, m->field, strlen(m->field));
            if (!f) {
                trl_def_err(c, p2, "type %s has no field '%s'", tt->name, m->field);
                continue;
            }
            if (m->src != TRL_WF_CONST) continue;
            struct trl_diag vd;
            struct trl_arena arena;
            struct trl_value v;
            trl_diag_init(&vd);
            trl_arena_init(&arena);
            int rc = trl_field_convert(f, &m->val, &arena, &v, &vd);
            if (rc == 0 && v.kind != TRL_V_NULL) rc = trl_field_check(f, &v, &vd) > 0;
            if (rc) trl_def_err(c, p2, "not a valid value of %s.%s", tt->name, f->name);
            trl_arena_free(&arena);
            trl_diag_reset(&vd);
        }
    }
}

/* "function" or "module.function": module a-z 0-9 _ -, function a Lua name. */
static bool hook_name_ok(const char *s)
{
    const char *dot = strchr(s, '.');
    const char *fn = dot ? dot + 1 : s;
    if (dot) {
        if (dot == s || dot - s > 63) return false;
        for (const char *p = s; p < dot; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                return false;
    }
    size_t n = strlen(fn);
    if (n == 0 || n > 63 || (*fn >= '0' && *fn <= '9')) return false;
    for (const char *p = fn; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static void parse_action(struct trl_defcheck *c, const cJSON *a, const char *path,
                         const struct trl_type *ty, bool allow_transition,
                         struct trl_wf_action *out)
{
    char p2[200];
    if (!cJSON_IsObject(a)) {
        trl_def_err(c, path, "must be an object such as {\"set\": \"field\", \"var\": \"now\"}");
        return;
    }
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(a, "set");
    const cJSON *notify = cJSON_GetObjectItemCaseSensitive(a, "notify");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(a, "transition");
    if (tr && allow_transition) {
        static const char *const tkeys[] = {"transition"};
        trl_def_keys(c, a, path, tkeys, 1);
        out->kind = TRL_ACT_TRANSITION;
        snprintf(p2, sizeof(p2), "%s.transition", path);
        if (!cJSON_IsString(tr) || !trl_def_ident(tr->valuestring))
            trl_def_err(c, p2, "must name a transition");
        else if (!(out->ref = strdup(tr->valuestring)))
            c->rc = TRL_ENOMEM;
        return;
    }
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(a, "create");
    if (cr) {
        parse_create(c, a, path, ty, out);
        return;
    }
    const cJSON *hk = cJSON_GetObjectItemCaseSensitive(a, "hook");
    if (hk) {
        static const char *const hkeys[] = {"hook"};
        trl_def_keys(c, a, path, hkeys, 1);
        out->kind = TRL_ACT_HOOK;
        snprintf(p2, sizeof(p2), "%s.hook", path);
        if (!cJSON_IsString(hk) || !hook_name_ok(hk->valuestring))
            trl_def_err(c, p2,
                        "must name a hook function: \"function\" of the type's module or "
                        "\"module.function\" (letters, digits, _ and -)");
        else if (!(out->ref = strdup(hk->valuestring)))
            c->rc = TRL_ENOMEM;
        return;
    }
    const cJSON *asg = cJSON_GetObjectItemCaseSensitive(a, "assign");
    if (asg) {
        static const char *const akeys[] = {"assign"};
        trl_def_keys(c, a, path, akeys, 1);
        out->kind = TRL_ACT_ASSIGN;
        snprintf(p2, sizeof(p2), "%s.assign", path);
        if (cJSON_IsString(asg) && trl_def_ident(asg->valuestring)) {
            if (!(out->ref = strdup(asg->valuestring))) c->rc = TRL_ENOMEM;
        } else if (!cJSON_IsTrue(asg)) {
            trl_def_err(c, p2, "must be true (run the rules) or a rule name");
        }
        return;
    }
    if (notify) {
        static const char *const nkeys[] = {"notify", "message"};
        trl_def_keys(c, a, path, nkeys, 2);
        out->kind = TRL_ACT_NOTIFY;
        snprintf(p2, sizeof(p2), "%s.notify", path);
        static const char *const whos[] = {"user", "field", "role", "requester"};
        const cJSON *w = cJSON_IsObject(notify) ? notify->child : NULL;
        size_t wi = 0;
        while (w && wi < 4 && strcmp(whos[wi], w->string) != 0)
            wi++;
        if (!w || w->next || wi == 4) {
            trl_def_err(c, p2,
                        "must be one of {\"user\": name}, {\"field\": a text field holding a user "
                        "name}, {\"role\": name} or {\"requester\": true}");
            return;
        }
        if (!(out->ref = strdup(whos[wi]))) c->rc = TRL_ENOMEM;
        if (wi == 3) {
            if (!cJSON_IsTrue(w)) trl_def_err(c, p2, "requester must be true");
        } else if (!cJSON_IsString(w) || !*w->valuestring) {
            trl_def_err(c, p2, "%s must be a name", whos[wi]);
        } else {
            if (wi == 1 && ty) {
                const struct trl_field *nf =
                    trl_type_field(ty, w->valuestring, strlen(w->valuestring));
                if (!nf || nf->type != TRL_FT_TEXT)
                    trl_def_err(c, p2, "type %s has no text field '%s'", ty->name, w->valuestring);
            }
            if (!(out->name = strdup(w->valuestring))) c->rc = TRL_ENOMEM;
        }
        snprintf(p2, sizeof(p2), "%s.message", path);
        trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(a, "message"), p2, &out->message);
        return;
    }
    if (!set) {
        const char *k = a->child ? a->child->string : "";
        trl_def_err(c, path, "unknown action '%s' (supported: set, notify, assign, create, hook%s)",
                    k, allow_transition ? ", transition" : "");
        return;
    }
    static const char *const keys[] = {"set", "value", "var", "copy"};
    trl_def_keys(c, a, path, keys, sizeof(keys) / sizeof(keys[0]));
    snprintf(p2, sizeof(p2), "%s.set", path);
    const struct trl_field *f = cJSON_IsString(set) && ty
                                    ? trl_type_field(ty, set->valuestring, strlen(set->valuestring))
                                    : NULL;
    if (!cJSON_IsString(set)) {
        trl_def_err(c, p2, "must name a field");
        return;
    }
    if (ty && !f) {
        trl_def_err(c, p2, "type %s has no field '%s'", ty->name, set->valuestring);
        return;
    }
    if (!(out->field = strdup(set->valuestring))) c->rc = TRL_ENOMEM;
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(a, "value");
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(a, "var");
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(a, "copy");
    if ((val != NULL) + (var != NULL) + (cp != NULL) != 1) {
        trl_def_err(c, path,
                    "give exactly one of value (a constant), var (now, today, user.id, "
                    "user.org, user.region) or copy (another field)");
        return;
    }
    if (var) {
        out->src = TRL_WF_VAR;
        snprintf(p2, sizeof(p2), "%s.var", path);
        if (!cJSON_IsString(var) || !var_known(var->valuestring)) {
            trl_def_err(c, p2, "must be one of now, today, user.id, user.org, user.region");
            return;
        }
        if (f && !var_fits(var->valuestring, f->type))
            trl_def_err(c, p2, "'%s' does not fit field %s of type %s", var->valuestring, f->name,
                        trl_ftype_name(f->type));
        if (!(out->ref = strdup(var->valuestring))) c->rc = TRL_ENOMEM;
    } else if (cp) {
        out->src = TRL_WF_COPY;
        snprintf(p2, sizeof(p2), "%s.copy", path);
        const struct trl_field *sf =
            cJSON_IsString(cp) && ty ? trl_type_field(ty, cp->valuestring, strlen(cp->valuestring))
                                     : NULL;
        if (!cJSON_IsString(cp) || (ty && !sf)) {
            trl_def_err(c, p2, "must name a field of type %s", ty ? ty->name : "?");
            return;
        }
        if (f && sf && sf->type != f->type)
            trl_def_err(c, p2, "field %s is %s, field %s is %s: copy needs the same type", sf->name,
                        trl_ftype_name(sf->type), f->name, trl_ftype_name(f->type));
        if (!(out->ref = strdup(cp->valuestring))) c->rc = TRL_ENOMEM;
    } else {
        out->src = TRL_WF_CONST;
        if (!const_input(c, val, &out->val)) return;
        if (f) {
            /* The constant must be a valid value of the field, now rather than at run time. */
            struct trl_diag vd;
            struct trl_arena arena;
            struct trl_value v;
            trl_diag_init(&vd);
            trl_arena_init(&arena);
            int rc = trl_field_convert(f, &out->val, &arena, &v, &vd);
            if (rc == 0 && v.kind != TRL_V_NULL) rc = trl_field_check(f, &v, &vd) > 0;
            if (rc == 0 && v.kind == TRL_V_NULL && f->required) {
                rc = 1;
                trl_diag_add_ferr(&vd, f->name, "required", "");
            }
            if (rc) {
                char msg[256] = "not a valid value";
                if (vd.nferrs) trl_ferr_message(&vd.ferrs[0], "en", msg, sizeof(msg));
                snprintf(p2, sizeof(p2), "%s.value", path);
                trl_def_err(c, p2, "not a valid value of %s: %s", f->name, msg);
            }
            trl_arena_free(&arena);
            trl_diag_reset(&vd);
        }
    }
}

static void parse_transitions(struct trl_defcheck *c, const cJSON *arr, const struct trl_type *ty,
                              struct trl_workflow *w)
{
    if (!arr) return; /* a workflow may have no transitions yet */
    if (!cJSON_IsArray(arr)) {
        trl_def_err(c, "transitions", "must be an array of transitions");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    w->transitions = calloc(n ? n : 1, sizeof(*w->transitions));
    if (!w->transitions) {
        c->rc = TRL_ENOMEM;
        return;
    }
    static const char *const keys[] = {
        "name",     "labels", "from",    "to",      "roles",           "condition",
        "required", "fields", "confirm", "actions", "comment_required"};
    size_t i = 0;
    for (const cJSON *tj = arr->child; tj; tj = tj->next, i++) {
        char path[64], p2[128];
        snprintf(path, sizeof(path), "transitions[%zu]", i);
        struct trl_wf_transition *t = &w->transitions[w->ntransitions++];
        if (!cJSON_IsObject(tj)) {
            trl_def_err(c, path, "must be an object");
            continue;
        }
        trl_def_keys(c, tj, path, keys, sizeof(keys) / sizeof(keys[0]));
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(tj, "name");
        snprintf(p2, sizeof(p2), "%s.name", path);
        if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring)) {
            trl_def_err(c, p2, "must be a lower-case identifier (a-z, 0-9, _)");
        } else {
            for (size_t k = 0; k + 1 < w->ntransitions; k++)
                if (w->transitions[k].name && strcmp(w->transitions[k].name, nm->valuestring) == 0)
                    trl_def_err(c, p2,
                                "transition '%s' is defined twice (list several states in "
                                "\"from\" instead)",
                                nm->valuestring);
        }
        t->name = strdup(cJSON_IsString(nm) ? nm->valuestring : "");
        snprintf(p2, sizeof(p2), "%s.labels", path);
        trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(tj, "labels"), p2, &t->labels);
        snprintf(p2, sizeof(p2), "%s.confirm", path);
        trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(tj, "confirm"), p2, &t->confirm);

        snprintf(p2, sizeof(p2), "%s.from", path);
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(tj, "from");
        if (!from) trl_def_err(c, p2, "name the state(s) this transition leaves from");
        t->from = strv(c, from, p2, true, &t->nfrom);
        if (from && t->nfrom == 0) trl_def_err(c, p2, "name at least one state");
        for (size_t k = 0; k < t->nfrom; k++) {
            const struct trl_wf_state *st = find_state(w, t->from[k]);
            char p3[160];
            snprintf(p3, sizeof(p3), "%s[%zu]", p2, k);
            if (!st)
                trl_def_err(c, cJSON_IsString(from) ? p2 : p3, "unknown state '%s'", t->from[k]);
            else if (st->final)
                trl_def_err(c, cJSON_IsString(from) ? p2 : p3,
                            "state '%s' is final: no transition may leave it", t->from[k]);
        }
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(tj, "to");
        snprintf(p2, sizeof(p2), "%s.to", path);
        if (!cJSON_IsString(to))
            trl_def_err(c, p2, "name the state this transition enters");
        else if (!find_state(w, to->valuestring))
            trl_def_err(c, p2, "unknown state '%s'", to->valuestring);
        t->to = strdup(cJSON_IsString(to) ? to->valuestring : "");

        snprintf(p2, sizeof(p2), "%s.roles", path);
        t->roles = strv(c, cJSON_GetObjectItemCaseSensitive(tj, "roles"), p2, false, &t->nroles);

        const cJSON *cond = cJSON_GetObjectItemCaseSensitive(tj, "condition");
        snprintf(p2, sizeof(p2), "%s.condition", path);
        if (cond && !cJSON_IsString(cond)) {
            trl_def_err(c, p2, "must be an expression such as \"budget > 50000\"");
        } else if (cond) {
            trl_rec_def_condition(c, cond->valuestring, p2, ty, &t->cond, &t->condition);
        }

        const char *lists[2] = {"required", "fields"};
        for (int li = 0; li < 2; li++) {
            snprintf(p2, sizeof(p2), "%s.%s", path, lists[li]);
            size_t cnt = 0;
            char **v = strv(c, cJSON_GetObjectItemCaseSensitive(tj, lists[li]), p2, false, &cnt);
            for (size_t k = 0; k < cnt && ty; k++) {
                const struct trl_field *f = trl_type_field(ty, v[k], strlen(v[k]));
                char p3[160];
                snprintf(p3, sizeof(p3), "%s[%zu]", p2, k);
                if (!f)
                    trl_def_err(c, p3, "type %s has no field '%s'", ty->name, v[k]);
                else if (li == 1 && f->read_only)
                    trl_def_err(c, p3,
                                "field '%s' is read-only; a transition cannot let callers fill it",
                                v[k]);
            }
            if (li == 0)
                t->required = v, t->nrequired = cnt;
            else
                t->fields = v, t->nfields = cnt;
        }
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(tj, "comment_required");
        snprintf(p2, sizeof(p2), "%s.comment_required", path);
        if (cr && !cJSON_IsBool(cr)) trl_def_err(c, p2, "must be true or false");
        t->comment_required = cJSON_IsTrue(cr);
        const cJSON *acts = cJSON_GetObjectItemCaseSensitive(tj, "actions");
        snprintf(p2, sizeof(p2), "%s.actions", path);
        if (acts && !cJSON_IsArray(acts)) {
            trl_def_err(c, p2, "must be an array of actions");
        } else if (acts) {
            size_t na = (size_t)cJSON_GetArraySize(acts);
            t->actions = calloc(na ? na : 1, sizeof(*t->actions));
            if (!t->actions) {
                c->rc = TRL_ENOMEM;
                continue;
            }
            size_t k = 0;
            for (const cJSON *a = acts->child; a; a = a->next, k++) {
                char p3[160];
                snprintf(p3, sizeof(p3), "%s[%zu]", p2, k);
                parse_action(c, a, p3, ty, false, &t->actions[t->nactions++]);
            }
        }
        if (!t->name || !t->to) c->rc = TRL_ENOMEM;
    }
}

static const struct trl_wf_transition *find_transition(const struct trl_workflow *w,
                                                       const char *name)
{
    for (size_t i = 0; name && i < w->ntransitions; i++)
        if (w->transitions[i].name && strcmp(w->transitions[i].name, name) == 0)
            return &w->transitions[i];
    return NULL;
}

/* An outcome of an approval must be a transition that leaves the approval's state. */
static void check_outcome(struct trl_defcheck *c, const struct trl_workflow *w, const char *state,
                          const char *tname, const char *path)
{
    if (!tname) return;
    const struct trl_wf_transition *t = find_transition(w, tname);
    if (!t) {
        trl_def_err(c, path, "unknown transition '%s'", tname);
        return;
    }
    bool from = false;
    for (size_t k = 0; k < t->nfrom && !from; k++)
        from = strcmp(t->from[k], state) == 0;
    if (!from) trl_def_err(c, path, "transition '%s' does not leave state '%s'", tname, state);
}

static void parse_approvals(struct trl_defcheck *c, const cJSON *arr, const struct trl_type *ty,
                            struct trl_workflow *w)
{
    if (!arr) return;
    if (!cJSON_IsArray(arr)) {
        trl_def_err(c, "approvals", "must be an array of approvals");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    w->approvals = calloc(n ? n : 1, sizeof(*w->approvals));
    if (!w->approvals) {
        c->rc = TRL_ENOMEM;
        return;
    }
    for (const cJSON *aj = arr->child; aj; aj = aj->next, i++) {
        char path[64], p2[128];
        snprintf(path, sizeof(path), "approvals[%zu]", i);
        struct trl_appr_def *a = &w->approvals[w->napprovals++];
        trl_appr_def_parse(c, aj, path, ty, a);
        if (!a->name || !a->state) continue;
        snprintf(p2, sizeof(p2), "%s.name", path);
        for (size_t k = 0; k + 1 < w->napprovals; k++)
            if (w->approvals[k].name && strcmp(w->approvals[k].name, a->name) == 0)
                trl_def_err(c, p2, "approval '%s' is defined twice", a->name);
        snprintf(p2, sizeof(p2), "%s.state", path);
        const struct trl_wf_state *st = a->state[0] ? find_state(w, a->state) : NULL;
        if (a->state[0] && !st)
            trl_def_err(c, p2, "unknown state '%s'", a->state);
        else if (st && st->final)
            trl_def_err(c, p2, "state '%s' is final: an approval there could not end", a->state);
        else if (st && st->initial)
            trl_def_err(c, p2,
                        "state '%s' is the initial state: attach approvals to a state that a "
                        "transition enters (e.g. after submit)",
                        a->state);
        for (size_t k = 0; k + 1 < w->napprovals && st; k++)
            if (w->approvals[k].state && strcmp(w->approvals[k].state, a->state) == 0)
                trl_def_err(c, p2, "state '%s' already has approval '%s'", a->state,
                            w->approvals[k].name);
        if (!st) continue;
        const char *outs[4] = {a->on_approve, a->on_reject, a->on_return, a->on_recall};
        const char *keys[4] = {"on_approve", "on_reject", "on_return", "on_recall"};
        for (int k = 0; k < 4; k++) {
            snprintf(p2, sizeof(p2), "%s.%s", path, keys[k]);
            check_outcome(c, w, a->state, outs[k], p2);
        }
        for (size_t k = 0; k < a->nsteps; k++) {
            snprintf(p2, sizeof(p2), "%s.steps[%zu].on_approve", path, k);
            check_outcome(c, w, a->state, a->steps[k].on_approve, p2);
            snprintf(p2, sizeof(p2), "%s.steps[%zu].on_reject", path, k);
            check_outcome(c, w, a->state, a->steps[k].on_reject, p2);
        }
    }
}

/* A list of state names that must all exist, at path. */
static char **state_list(struct trl_defcheck *c, const struct trl_workflow *w, const cJSON *j,
                         const char *path, size_t *n)
{
    char **v = strv(c, j, path, true, n);
    for (size_t k = 0; k < *n; k++)
        if (!find_state(w, v[k])) {
            char p[240];
            snprintf(p, sizeof(p), "%.200s[%zu]", path, k);
            trl_def_err(c, cJSON_IsString(j) ? path : p, "unknown state '%s'", v[k]);
        }
    return v;
}

static struct trl_wf_action *action_list(struct trl_defcheck *c, const cJSON *j, const char *path,
                                         const struct trl_type *ty, size_t *n)
{
    *n = 0;
    if (!j) return NULL;
    if (!cJSON_IsArray(j)) {
        trl_def_err(c, path, "must be an array of actions");
        return NULL;
    }
    size_t na = (size_t)cJSON_GetArraySize(j), k = 0;
    struct trl_wf_action *a = calloc(na ? na : 1, sizeof(*a));
    if (!a) {
        c->rc = TRL_ENOMEM;
        return NULL;
    }
    for (const cJSON *it = j->child; it; it = it->next, k++) {
        char p[220];
        snprintf(p, sizeof(p), "%.200s[%zu]", path, k);
        parse_action(c, it, p, ty, true, &a[(*n)++]);
    }
    return a;
}

static void parse_target(struct trl_defcheck *c, const cJSON *j, const char *path,
                         const struct trl_type *ty, struct trl_workflow *w,
                         struct trl_wf_sla_target *tg)
{
    static const char *const keys[] = {"name",    "labels",       "start",      "stop",     "hours",
                                       "minutes", "warn_percent", "on_warning", "on_breach"};
    char p[220];
    if (!cJSON_IsObject(j)) {
        trl_def_err(c, path, "must be an object");
        return;
    }
    trl_def_keys(c, j, path, keys, sizeof(keys) / sizeof(keys[0]));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    snprintf(p, sizeof(p), "%.180s.name", path);
    if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
        trl_def_err(c, p, "must be a lower-case identifier (a-z, 0-9, _)");
    if (!(tg->name = strdup(cJSON_IsString(nm) ? nm->valuestring : ""))) c->rc = TRL_ENOMEM;
    snprintf(p, sizeof(p), "%.180s.labels", path);
    trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"), p, &tg->labels);
    snprintf(p, sizeof(p), "%.180s.start", path);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "start");
    if (!st) trl_def_err(c, p, "name the state(s) that start the clock");
    tg->start = state_list(c, w, st, p, &tg->nstart);
    snprintf(p, sizeof(p), "%.180s.stop", path);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "stop");
    if (!sp) trl_def_err(c, p, "name the state(s) that stop the clock (met when in time)");
    tg->stop = state_list(c, w, sp, p, &tg->nstop);
    for (size_t a = 0; a < tg->nstart; a++)
        for (size_t b = 0; b < tg->nstop; b++)
            if (strcmp(tg->start[a], tg->stop[b]) == 0)
                trl_def_err(c, p, "state '%s' both starts and stops the clock", tg->stop[b]);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hours");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(j, "minutes");
    snprintf(p, sizeof(p), "%.180s.hours", path);
    int64_t minutes = 0;
    if (h && (!cJSON_IsNumber(h) || h->valuedouble < 0 || h->valuedouble > 100000 ||
              h->valuedouble != (double)(int64_t)h->valuedouble))
        trl_def_err(c, p, "must be a whole number of hours, 0 to 100000");
    else if (h)
        minutes += (int64_t)h->valuedouble * 60;
    snprintf(p, sizeof(p), "%.180s.minutes", path);
    if (mi && (!cJSON_IsNumber(mi) || mi->valuedouble < 0 || mi->valuedouble > 6000000 ||
               mi->valuedouble != (double)(int64_t)mi->valuedouble))
        trl_def_err(c, p, "must be a whole number of minutes");
    else if (mi)
        minutes += (int64_t)mi->valuedouble;
    if (minutes <= 0)
        trl_def_err(c, path, "give the target as \"hours\" and/or \"minutes\" of business time");
    tg->target_ms = minutes * 60000;
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(j, "warn_percent");
    snprintf(p, sizeof(p), "%.180s.warn_percent", path);
    if (wp && (!cJSON_IsNumber(wp) || wp->valuedouble < 1 || wp->valuedouble > 99 ||
               wp->valuedouble != (double)(int)wp->valuedouble))
        trl_def_err(c, p, "must be a whole percentage from 1 to 99");
    else if (wp)
        tg->warn_percent = (unsigned)wp->valueint;
    snprintf(p, sizeof(p), "%.180s.on_warning", path);
    tg->on_warning =
        action_list(c, cJSON_GetObjectItemCaseSensitive(j, "on_warning"), p, ty, &tg->nwarning);
    snprintf(p, sizeof(p), "%.180s.on_breach", path);
    tg->on_breach =
        action_list(c, cJSON_GetObjectItemCaseSensitive(j, "on_breach"), p, ty, &tg->nbreach);
    /* Transition actions must name transitions of this workflow. */
    struct trl_wf_action *lists[2] = {tg->on_warning, tg->on_breach};
    size_t ns[2] = {tg->nwarning, tg->nbreach};
    for (int l = 0; l < 2; l++)
        for (size_t k = 0; k < ns[l]; k++)
            if (lists[l][k].kind == TRL_ACT_TRANSITION && lists[l][k].ref &&
                !find_transition(w, lists[l][k].ref)) {
                snprintf(p, sizeof(p), "%.160s.%s[%zu].transition", path,
                         l ? "on_breach" : "on_warning", k);
                trl_def_err(c, p, "unknown transition '%s'", lists[l][k].ref);
            }
}

static void parse_slas(struct trl_defcheck *c, const cJSON *arr, const struct trl_type *ty,
                       struct trl_workflow *w)
{
    if (!arr) return;
    if (!cJSON_IsArray(arr)) {
        trl_def_err(c, "slas", "must be an array of SLA policies");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    if (!(w->slas = calloc(n ? n : 1, sizeof(*w->slas)))) {
        c->rc = TRL_ENOMEM;
        return;
    }
    static const char *const keys[] = {"name",     "labels", "condition",
                                       "calendar", "pause",  "targets"};
    for (const cJSON *pj = arr->child; pj; pj = pj->next, i++) {
        char path[64], p[128];
        snprintf(path, sizeof(path), "slas[%zu]", i);
        struct trl_wf_sla *pol = &w->slas[w->nslas++];
        if (!cJSON_IsObject(pj)) {
            trl_def_err(c, path, "must be an object");
            continue;
        }
        trl_def_keys(c, pj, path, keys, sizeof(keys) / sizeof(keys[0]));
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(pj, "name");
        snprintf(p, sizeof(p), "%s.name", path);
        if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
            trl_def_err(c, p, "must be a lower-case identifier (a-z, 0-9, _)");
        else
            for (size_t k = 0; k + 1 < w->nslas; k++)
                if (w->slas[k].name && strcmp(w->slas[k].name, nm->valuestring) == 0)
                    trl_def_err(c, p, "policy '%s' is defined twice", nm->valuestring);
        if (!(pol->name = strdup(cJSON_IsString(nm) ? nm->valuestring : ""))) c->rc = TRL_ENOMEM;
        snprintf(p, sizeof(p), "%s.labels", path);
        trl_def_labels(c, cJSON_GetObjectItemCaseSensitive(pj, "labels"), p, &pol->labels);
        const cJSON *cond = cJSON_GetObjectItemCaseSensitive(pj, "condition");
        snprintf(p, sizeof(p), "%s.condition", path);
        if (cond && !cJSON_IsString(cond)) {
            trl_def_err(c, p, "must be an expression such as \"priority = \\\"high\\\"\"");
        } else if (cond) {
            trl_rec_def_condition(c, cond->valuestring, p, ty, &pol->cond, &pol->condition);
        }
        const cJSON *cal = cJSON_GetObjectItemCaseSensitive(pj, "calendar");
        snprintf(p, sizeof(p), "%s.calendar", path);
        if (cal && (!cJSON_IsString(cal) || !trl_def_ident(cal->valuestring)))
            trl_def_err(c, p, "must name a business calendar");
        else if (cal && !(pol->calendar = strdup(cal->valuestring)))
            c->rc = TRL_ENOMEM;
        snprintf(p, sizeof(p), "%s.pause", path);
        pol->pause =
            state_list(c, w, cJSON_GetObjectItemCaseSensitive(pj, "pause"), p, &pol->npause);
        const cJSON *tj = cJSON_GetObjectItemCaseSensitive(pj, "targets");
        snprintf(p, sizeof(p), "%s.targets", path);
        if (!cJSON_IsArray(tj) || cJSON_GetArraySize(tj) == 0 || cJSON_GetArraySize(tj) > 16) {
            trl_def_err(c, p, "must be an array of 1 to 16 targets");
            continue;
        }
        size_t nt = (size_t)cJSON_GetArraySize(tj), k = 0;
        if (!(pol->targets = calloc(nt, sizeof(*pol->targets)))) {
            c->rc = TRL_ENOMEM;
            continue;
        }
        for (const cJSON *t = tj->child; t; t = t->next, k++) {
            char p2[160];
            snprintf(p2, sizeof(p2), "%s.targets[%zu]", path, k);
            parse_target(c, t, p2, ty, w, &pol->targets[pol->ntargets++]);
            for (size_t q = 0; q + 1 < pol->ntargets; q++)
                if (pol->targets[q].name && pol->targets[k].name &&
                    strcmp(pol->targets[q].name, pol->targets[k].name) == 0) {
                    snprintf(p2, sizeof(p2), "%s.targets[%zu].name", path, k);
                    trl_def_err(c, p2, "target '%s' is defined twice", pol->targets[k].name);
                }
        }
    }
}

int trl_wf_parse(const struct trl_catalog *cat, const char *name, const char *json, size_t n,
                 struct trl_workflow **out, struct trl_diag *d)
{
    *out = NULL;
    int rc = trl_json_check(json, n, 32, d);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(json, n);
    if (!j) return TRL_ENOMEM;
    struct trl_defcheck c = {.d = d};
    struct trl_workflow *w = calloc(1, sizeof(*w));
    if (!w) {
        cJSON_Delete(j);
        return TRL_ENOMEM;
    }
    if (!cJSON_IsObject(j)) {
        trl_def_err(&c, "", "a workflow definition is a JSON object");
    } else {
        static const char *const keys[] = {"name",        "type",      "labels", "states",
                                           "transitions", "approvals", "slas",   "assignment"};
        trl_def_keys(&c, j, "", keys, sizeof(keys) / sizeof(keys[0]));
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
        if (!cJSON_IsString(nm) || !trl_def_ident(nm->valuestring))
            trl_def_err(&c, "name", "must be a lower-case identifier (a-z, 0-9, _)");
        else if (name && strcmp(nm->valuestring, name) != 0)
            trl_def_err(&c, "name", "is '%s' but the definition is saved as '%s'", nm->valuestring,
                        name);
        w->name = strdup(cJSON_IsString(nm) ? nm->valuestring : (name ? name : ""));
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "type");
        const struct trl_type *ty = NULL;
        if (!cJSON_IsString(tp))
            trl_def_err(&c, "type", "name the record type this workflow runs on");
        else if (!(ty = trl_catalog_type(cat, tp->valuestring)))
            trl_def_err(&c, "type", "no type '%s' is defined", tp->valuestring);
        w->type = strdup(cJSON_IsString(tp) ? tp->valuestring : "");
        trl_def_labels(&c, cJSON_GetObjectItemCaseSensitive(j, "labels"), "labels", &w->labels);
        parse_states(&c, cJSON_GetObjectItemCaseSensitive(j, "states"), ty, w);
        parse_transitions(&c, cJSON_GetObjectItemCaseSensitive(j, "transitions"), ty, w);
        parse_approvals(&c, cJSON_GetObjectItemCaseSensitive(j, "approvals"), ty, w);
        parse_slas(&c, cJSON_GetObjectItemCaseSensitive(j, "slas"), ty, w);
        const cJSON *asg = cJSON_GetObjectItemCaseSensitive(j, "assignment");
        if (asg) {
            trl_assign_def_parse(&c, asg, "assignment", ty, &w->assignment);
            for (size_t k = 0; k < w->assignment.non; k++)
                if (strcmp(w->assignment.on[k], "create") != 0 &&
                    !find_transition(w, w->assignment.on[k])) {
                    char p[64];
                    snprintf(p, sizeof(p), "assignment.on[%zu]", k);
                    trl_def_err(&c, p, "unknown transition '%s'", w->assignment.on[k]);
                }
        }
        for (size_t i = 0; i < w->ntransitions; i++)
            check_creates(&c, cat, w->transitions[i].actions, w->transitions[i].nactions,
                          "transitions[%zu].actions[%zu]", i);
        for (size_t i = 0; i < w->nslas; i++)
            for (size_t k = 0; k < w->slas[i].ntargets; k++) {
                char fmt[96];
                snprintf(fmt, sizeof(fmt), "slas[%%zu].targets[%zu].on_warning[%%zu]", k);
                check_creates(&c, cat, w->slas[i].targets[k].on_warning,
                              w->slas[i].targets[k].nwarning, fmt, i);
                snprintf(fmt, sizeof(fmt), "slas[%%zu].targets[%zu].on_breach[%%zu]", k);
                check_creates(&c, cat, w->slas[i].targets[k].on_breach,
                              w->slas[i].targets[k].nbreach, fmt, i);
            }
        for (size_t i = 0; i < w->nslas; i++)
            for (size_t q = 0; q < w->slas[i].ntargets; q++)
                for (int l = 0; l < 2; l++) {
                    const struct trl_wf_sla_target *tg = &w->slas[i].targets[q];
                    const struct trl_wf_action *acts = l ? tg->on_breach : tg->on_warning;
                    size_t na = l ? tg->nbreach : tg->nwarning;
                    for (size_t k = 0; k < na; k++) {
                        if (acts[k].kind != TRL_ACT_ASSIGN) continue;
                        char p[128];
                        snprintf(p, sizeof(p), "slas[%zu].targets[%zu].%s[%zu].assign", i, q,
                                 l ? "on_breach" : "on_warning", k);
                        bool found = !acts[k].ref;
                        for (size_t r = 0; r < w->assignment.nrules && !found; r++)
                            found = w->assignment.rules[r].name &&
                                    strcmp(w->assignment.rules[r].name, acts[k].ref) == 0;
                        if (!w->assignment.nrules)
                            trl_def_err(&c, p, "the workflow has no assignment rules");
                        else if (!found)
                            trl_def_err(&c, p, "no assignment rule '%s'", acts[k].ref);
                    }
                }
        for (size_t i = 0; i < w->ntransitions; i++)
            for (size_t k = 0; k < w->transitions[i].nactions; k++) {
                const struct trl_wf_action *act = &w->transitions[i].actions[k];
                if (act->kind != TRL_ACT_ASSIGN) continue;
                char p[96];
                snprintf(p, sizeof(p), "transitions[%zu].actions[%zu].assign", i, k);
                bool found = !act->ref;
                for (size_t q = 0; q < w->assignment.nrules && !found; q++)
                    found = w->assignment.rules[q].name &&
                            strcmp(w->assignment.rules[q].name, act->ref) == 0;
                if (!w->assignment.nrules)
                    trl_def_err(&c, p, "the workflow has no assignment rules");
                else if (!found)
                    trl_def_err(&c, p, "no assignment rule '%s'", act->ref);
            }
        if (!w->name || !w->type) c.rc = TRL_ENOMEM;
    }
    cJSON_Delete(j);
    if (!c.rc && !c.nerr) {
        w->definition = trl_schema_canonical_json(json, n, d);
        if (!w->definition) c.rc = d->code ? d->code : TRL_ENOMEM;
    }
    if (c.rc || c.nerr) {
        trl_wf_free(w);
        if (c.rc) return c.rc;
        trl_diag_set(d, TRL_EVALIDATION,
                     "the workflow definition has %d error(s); the first: %s: %s", c.nerr,
                     d->ferrs[0].field, d->ferrs[0].detail);
        trl_diag_zh(d, "工作流定义有 %d 处错误;第一处:%s:%s", c.nerr, d->ferrs[0].field,
                    d->ferrs[0].detail);
        return TRL_EVALIDATION;
    }
    *out = w;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Storing
 */
struct other_ctx {
    const char *name;
    const char *type;
    char other[128];
};

static int find_other(void *ud, const char *name, const char *json, size_t n)
{
    struct other_ctx *o = ud;
    if (strcmp(name, o->name) == 0) return 0;
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(tp) && strcmp(tp->valuestring, o->type) == 0)
        snprintf(o->other, sizeof(o->other), "%s", name);
    cJSON_Delete(j);
    return 0;
}

/* Records in each state that the new definition lacks: refused, with the count. */
static int check_in_flight(struct trl_txn *t, const struct trl_type *ty,
                           const struct trl_workflow *nw, const struct trl_workflow *old,
                           struct trl_diag *d)
{
    if (!old) return 0;
    for (size_t i = 0; i < old->nstates; i++) {
        if (find_state(nw, old->states[i].name)) continue;
        struct trl_buf k;
        trl_buf_init(&k);
        struct trl_value v = {
            .kind = TRL_V_BYTES, .s = old->states[i].name, .n = strlen(old->states[i].name)};
        uint64_t cnt = 0;
        int rc = trl_schema_cnt_key(&k, trl_index_id(ty, TRL_COL_STATE), &v);
        if (!rc) rc = trl_schema_counter_get(t, &k, &cnt);
        trl_buf_free(&k);
        if (rc) return rc;
        if (cnt) {
            trl_diag_set(d, TRL_ECONFLICT,
                         "state '%s' cannot be removed: %llu %s record(s) are in it; move them "
                         "to another state first",
                         old->states[i].name, (unsigned long long)cnt, ty->name);
            trl_diag_zh(d, "无法删除状态“%s”:仍有 %llu 条 %s 记录处于该状态;请先将其移至其他状态",
                        old->states[i].name, (unsigned long long)cnt, ty->name);
            trl_diag_field(d, "states");
            trl_diag_rule(d, "in_flight", "states");
            return TRL_ECONFLICT;
        }
    }
    return 0;
}

/* An approval with pending instances must keep its name and state (their tasks would be
 * orphaned): refused with the count. nw NULL: the workflow is being removed. */
static int check_pending_approvals(struct trl_txn *t, const char *type,
                                   const struct trl_workflow *nw, const struct trl_workflow *old,
                                   struct trl_diag *d)
{
    for (size_t i = 0; old && i < old->napprovals; i++) {
        const struct trl_appr_def *a = &old->approvals[i];
        bool kept = false;
        for (size_t k = 0; nw && k < nw->napprovals && !kept; k++)
            kept = strcmp(nw->approvals[k].name, a->name) == 0 &&
                   strcmp(nw->approvals[k].state, a->state) == 0;
        if (kept) continue;
        uint64_t n;
        int rc = trl_appr_pending_count(t, type, a->name, NULL, &n);
        if (rc) return rc;
        if (n) {
            trl_diag_set(d, TRL_ECONFLICT,
                         "approval '%s' has %llu pending approval(s): it cannot be removed, "
                         "renamed or moved to another state until they are decided or recalled",
                         a->name, (unsigned long long)n);
            trl_diag_zh(d,
                        "审批“%s”还有 %llu "
                        "个进行中的审批:在它们被处理或撤回之前,不能删除、改名或改挂到其他状态",
                        a->name, (unsigned long long)n);
            trl_diag_rule(d, "in_flight", "approvals");
            return TRL_ECONFLICT;
        }
    }
    return 0;
}

int trl_wf_put(struct trl_txn *t, const char *name, const char *json, size_t n, const char *app,
               bool *changed, struct trl_diag *d)
{
    *changed = false;
    struct trl_catalog *cat = NULL;
    struct trl_workflow *w = NULL, *old = NULL;
    char *olddef = NULL, *oldapp = NULL;
    int rc = trl_catalog_load(t, &cat, d);
    if (rc) return rc;
    if ((rc = trl_wf_parse(cat, name, json, n, &w, d))) goto out;
    const struct trl_type *ty = trl_catalog_type(cat, w->type);
    struct other_ctx oc = {.name = name, .type = w->type};
    if ((rc = trl_meta_each(t, "workflow", find_other, &oc))) goto out;
    if (oc.other[0]) {
        rc = trl_diag_set(d, TRL_ECONFLICT, "type %s already runs workflow '%s'; a type has one",
                          w->type, oc.other);
        trl_diag_zh(d, "类型 %s 已绑定工作流“%s”;每个类型只能有一个工作流", w->type, oc.other);
        trl_diag_field(d, "type");
        goto out;
    }
    rc = trl_meta_get(t, "workflow", name, &olddef);
    if (rc && rc != TRL_ENOTFOUND) goto out;
    if (olddef) {
        struct trl_diag od;
        trl_diag_init(&od);
        /* An old definition that no longer compiles (its type changed) has no states to keep. */
        if (trl_wf_parse(cat, name, olddef, strlen(olddef), &old, &od)) old = NULL;
        trl_diag_reset(&od);
    }
    rc = 0;
    for (size_t i = 0; i < w->napprovals && !rc; i++)
        for (size_t k = 0; k < w->approvals[i].nsteps && !rc; k++) {
            const char *cn = w->approvals[i].steps[k].calendar;
            char *cd = NULL;
            if (!cn) continue;
            rc = trl_meta_get(t, "calendar", cn, &cd);
            free(cd);
            if (rc == TRL_ENOTFOUND) {
                char path[96];
                snprintf(path, sizeof(path), "approvals[%zu].steps[%zu].time_limit", i, k);
                trl_diag_add_ferr(d, path, "schema", "no such business calendar");
                rc = trl_diag_set(d, TRL_EVALIDATION, "%s: no calendar '%s' is defined", path, cn);
                trl_diag_zh(d, "%s:未定义工作日历“%s”", path, cn);
            }
        }
    if (rc) goto out;
    for (size_t i = 0; i < w->nslas; i++) {
        char *cd = NULL;
        if (!w->slas[i].calendar) continue;
        rc = trl_meta_get(t, "calendar", w->slas[i].calendar, &cd);
        free(cd);
        if (rc == TRL_ENOTFOUND) {
            char path[64];
            snprintf(path, sizeof(path), "slas[%zu].calendar", i);
            trl_diag_add_ferr(d, path, "schema", "no such business calendar");
            rc = trl_diag_set(d, TRL_EVALIDATION, "slas[%zu].calendar: no calendar '%s' is defined",
                              i, w->slas[i].calendar);
            trl_diag_zh(d, "slas[%zu].calendar:未定义工作日历“%s”", i, w->slas[i].calendar);
        }
        if (rc) goto out;
    }
    if ((rc = check_in_flight(t, ty, w, old, d))) goto out;
    if ((rc = check_pending_approvals(t, w->type, w, old, d))) goto out;
    if (trl_meta_get(t, "workflowapp", name, &oldapp) != 0) oldapp = NULL;
    if (!app) app = oldapp ? oldapp : "";
    rc = 0;
    if (olddef && oldapp && strcmp(olddef, w->definition) == 0 && strcmp(oldapp, app) == 0)
        goto out; /* the same definition of the same app: nothing to write */
    if ((rc = trl_meta_put(t, "workflow", name, w->definition, strlen(w->definition)))) goto out;
    if ((rc = trl_meta_put(t, "workflowapp", name, app, strlen(app)))) goto out;
    uint64_t ver;
    if ((rc = trl_txn_seq_next(t, "schema_version", &ver))) goto out;
    *changed = true;
out:
    free(olddef);
    free(oldapp);
    trl_wf_free(w);
    trl_wf_free(old);
    trl_catalog_unref(cat);
    return rc;
}

int trl_wf_check_all(struct trl_txn *t, struct trl_diag *d)
{
    struct trl_catalog *cat = NULL;
    struct trl_wf_set *ws = NULL;
    int rc = trl_catalog_load(t, &cat, d);
    if (!rc) rc = trl_wf_set_load(t, cat, &ws, d);
    if (rc == TRL_EVALIDATION) d->code = rc = TRL_ECONFLICT;
    trl_wf_set_unref(ws);
    trl_catalog_unref(cat);
    return rc;
}

/* Removes definition name of kind and its app owner, and bumps the schema version (the next
 * snapshot reloads). TRL_ENOTFOUND names what was missing. */
static int delete_definition(struct trl_txn *t, const char *kind, const char *app_kind,
                             const char *name, const char *what_en, const char *what_zh,
                             struct trl_diag *d)
{
    int rc = trl_meta_del(t, kind, name);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(d, TRL_ENOTFOUND, "no %s '%s'", what_en, name);
        trl_diag_zh(d, "不存在%s“%s”", what_zh, name);
        return rc;
    }
    if (!rc) rc = trl_meta_del(t, app_kind, name);
    if (rc == TRL_ENOTFOUND) rc = 0;
    uint64_t ver;
    if (!rc) rc = trl_txn_seq_next(t, "schema_version", &ver);
    return rc;
}

int trl_wf_delete(struct trl_txn *t, const char *name, struct trl_diag *d)
{
    char *def = NULL;
    if (trl_meta_get(t, "workflow", name, &def) == 0) {
        cJSON *j = cJSON_Parse(def);
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "type");
        uint64_t pending = 0;
        int prc = cJSON_IsString(tp)
                      ? trl_appr_pending_count(t, tp->valuestring, NULL, NULL, &pending)
                      : 0;
        cJSON_Delete(j);
        free(def);
        if (prc) return prc;
        if (pending) {
            trl_diag_set(d, TRL_ECONFLICT,
                         "workflow '%s' has %llu pending approval(s): decide or recall them first",
                         name, (unsigned long long)pending);
            trl_diag_zh(d, "工作流“%s”还有 %llu 个进行中的审批:请先处理或撤回", name,
                        (unsigned long long)pending);
            trl_diag_rule(d, "in_flight", "approvals");
            return TRL_ECONFLICT;
        }
    }
    return delete_definition(t, "workflow", "workflowapp", name, "workflow", "工作流", d);
}

/* ---------------------------------------------------------------------------------------------
 * Sets
 */
struct load_ctx {
    const struct trl_catalog *cat;
    struct trl_wf_set *s;
    size_t cap;
    struct trl_diag *d;
};

static int load_one(void *ud, const char *name, const char *json, size_t n)
{
    struct load_ctx *l = ud;
    struct trl_workflow *w;
    int rc = trl_wf_parse(l->cat, name, json, n, &w, l->d);
    if (rc) {
        char msg[sizeof(l->d->message)];
        snprintf(msg, sizeof(msg), "%s", l->d->message);
        trl_diag_set(l->d, rc, "stored workflow '%s' no longer fits its type: %.400s", name, msg);
        return rc;
    }
    if (l->s->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        struct trl_workflow **nw = realloc(l->s->wfs, nc * sizeof(*nw));
        if (!nw) {
            trl_wf_free(w);
            return TRL_ENOMEM;
        }
        l->s->wfs = nw;
        l->cap = nc;
    }
    w->set = l->s;
    l->s->wfs[l->s->n++] = w; /* meta_each walks names in order: the set stays sorted */
    return 0;
}

struct load_texts {
    struct trl_wf_text **list;
    size_t *n;
    size_t cap;
};

static int load_text(void *ud, const char *name, const char *json, size_t n)
{
    struct load_texts *l = ud;
    if (*l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        struct trl_wf_text *nl = realloc(*l->list, nc * sizeof(*nl));
        if (!nl) return TRL_ENOMEM;
        *l->list = nl;
        l->cap = nc;
    }
    struct trl_wf_text *e = &(*l->list)[*l->n];
    e->key = strdup(name);
    e->text = trl_strndup(json, n);
    e->n = n;
    if (!e->key || !e->text) {
        free(e->key);
        free(e->text);
        return TRL_ENOMEM;
    }
    (*l->n)++; /* meta_each walks names in order: the list stays sorted */
    return 0;
}

const struct trl_wf_text *trl_wf_text_find(const struct trl_wf_text *list, size_t n,
                                           const char *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(list[mid].key, key);
        if (c == 0) return &list[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int load_cal(void *ud, const char *name, const char *json, size_t n)
{
    struct trl_wf_set *s = ud;
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_cal *c = NULL;
    int rc = trl_cal_parse(json, n, NULL, &c, &d);
    if (rc) {
        /* A stored calendar that no longer loads (tzdata changed): clocks fall back to 24x7. */
        trl_log(TRL_LOG_WARN, "calendar '%s' cannot be loaded: %s", name, d.message);
        trl_diag_reset(&d);
        return rc == TRL_ENOMEM ? rc : 0;
    }
    trl_diag_reset(&d);
    struct trl_cal **nc = realloc(s->cals, (s->ncals + 1) * sizeof(*nc));
    if (!nc) {
        trl_cal_free(c);
        return TRL_ENOMEM;
    }
    s->cals = nc;
    s->cals[s->ncals++] = c;
    return 0;
}

const struct trl_cal *trl_wf_calendar(const struct trl_wf_set *s, const char *name)
{
    if (!name || !*name) return s->always;
    for (size_t i = 0; i < s->ncals; i++)
        if (strcmp(trl_cal_name(s->cals[i]), name) == 0) return s->cals[i];
    return NULL;
}

int trl_wf_set_load(struct trl_txn *t, const struct trl_catalog *cat, struct trl_wf_set **out,
                    struct trl_diag *d)
{
    struct trl_wf_set *s = calloc(1, sizeof(*s));
    if (!s) return TRL_ENOMEM;
    s->refs = 1;
    struct load_ctx l = {.cat = cat, .s = s, .d = d};
    int rc = trl_cal_24x7(&s->always);
    if (!rc) rc = trl_meta_each(t, "calendar", load_cal, s);
    if (!rc) rc = trl_meta_each(t, "workflow", load_one, &l);
    struct load_texts lh = {.list = &s->hooks, .n = &s->nhooks};
    struct load_texts la = {.list = &s->apps, .n = &s->napps};
    if (!rc) rc = trl_meta_each(t, "hook", load_text, &lh);
    if (!rc) rc = trl_meta_each(t, "app", load_text, &la);
    s->version = cat ? cat->version : 0;
    if (rc) {
        trl_wf_set_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

struct trl_wf_set *trl_wf_set_ref(struct trl_wf_set *s)
{
    if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void trl_wf_set_unref(struct trl_wf_set *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t i = 0; i < s->n; i++)
        trl_wf_free(s->wfs[i]);
    free(s->wfs);
    for (size_t i = 0; i < s->ncals; i++)
        trl_cal_free(s->cals[i]);
    free(s->cals);
    trl_cal_free(s->always);
    for (size_t i = 0; i < s->nhooks; i++)
        free(s->hooks[i].key), free(s->hooks[i].text);
    free(s->hooks);
    for (size_t i = 0; i < s->napps; i++)
        free(s->apps[i].key), free(s->apps[i].text);
    free(s->apps);
    free(s);
}

const struct trl_workflow *trl_wf_by_name(const struct trl_wf_set *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->wfs[i]->name, name) == 0) return s->wfs[i];
    return NULL;
}

const struct trl_workflow *trl_wf_by_type(const struct trl_wf_set *s, const char *type)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->wfs[i]->type, type) == 0) return s->wfs[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Running
 */
static bool has_role(const struct trl_principal *who, const struct trl_wf_transition *t)
{
    if (!who || who->admin) return true;
    for (size_t i = 0; i < t->nroles; i++) {
        if (strcmp(who->role, t->roles[i]) == 0) return true;
        for (size_t k = 0; k < who->nroles; k++)
            if (strcmp(who->roles[k], t->roles[i]) == 0) return true;
    }
    return false;
}

static bool from_ok(const struct trl_wf_transition *t, const char *state)
{
    for (size_t i = 0; i < t->nfrom; i++)
        if (strcmp(t->from[i], state) == 0) return true;
    return false;
}

static int add_labels(struct trl_buf *o, const struct trl_labels *l)
{
    return trl_buf_adds(o, "{\"en\":") || trl_buf_add_json_str(o, l->en, strlen(l->en)) ||
           trl_buf_adds(o, ",\"zh-CN\":") || trl_buf_add_json_str(o, l->zh, strlen(l->zh)) ||
           trl_buf_addc(o, '}');
}

static int add_strv(struct trl_buf *o, char **v, size_t n)
{
    int rc = trl_buf_addc(o, '[');
    for (size_t i = 0; i < n && !rc; i++)
        rc = (i && trl_buf_addc(o, ',')) || trl_buf_add_json_str(o, v[i], strlen(v[i]));
    return rc || trl_buf_addc(o, ']');
}

struct runner {
    struct trl_txn *txn;
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    const struct trl_workflow *w;
    uint64_t id;                       /* the record */
    const struct trl_wf_transition *t; /* NULL while listing */
    size_t ti;                         /* index of t */
    const struct trl_wf_run *run;
    struct trl_buf *extra;
    struct trl_buf *list; /* listing output */
    char from[128];
    /* Approvals. */
    bool engine;             /* run by the approval engine: no role check, outcomes allowed */
    bool recall;             /* an engine run for a recall: only the requester or an admin */
    const char *finish;      /* status for the approval of the state left (NULL: "cancelled") */
    char next[64];           /* transition the engine runs after this change ("" for none) */
    const char *next_finish; /* and the status it gives the approval */
    const struct trl_wf_decision *dec; /* a decision on a task */
    const struct trl_appr_def *def;    /* the approval decided on */
    size_t di;                         /* its index */
    struct trl_appr_result res;        /* the decision's result */
    const char *const *vars;           /* extra placeholder values: name, value, ..., NULL */
    const struct trl_wf_action *acts;  /* an SLA phase's actions */
    size_t nacts;                      /* entries */
    const char *phase;                 /* "warning" or "breach" */
    const char *by;                    /* who runs an engine transition: "approval" or "sla" */
    char assignee[64];                 /* the user the rules picked (outlives the move) */
    char assigned[256];                /* its history member (",\"assigned\":{...}") or "" */
    char created[160];                 /* history member of created records or "" */
    bool wrote;                        /* on create: the guard let the change be written */
    char actor[128];                   /* {{actor}}: the caller's display name, once looked up */
    bool act_known;                    /* the record's active approval has been read: */
    int act_rc;                        /* 0 (one is pending) or TRL_ENOTFOUND */
    uint64_t act_id;                   /* its id */
    char act_name[64];                 /* its definition's name */
};

static int notify_action(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                         const char *kind);
static int send_note(struct runner *g, struct trl_rec_move *m, const char *user, const char *kind,
                     const struct trl_labels *custom, uint64_t task);

/* Tells user about their approval task (kind approval_task) of step st of def. */
static int note_task(struct runner *g, struct trl_rec_move *m, const struct trl_appr_def *def,
                     const struct trl_appr_step *st, const char *user, uint64_t task)
{
    const char *vars[] = {
        "approval", def->labels.en[0] ? def->labels.en : def->name, "approval@zh", def->labels.zh,
        "step",     st->labels.en[0] ? st->labels.en : st->name,    "step@zh",     st->labels.zh,
        NULL};
    const char *const *saved = g->vars;
    g->vars = vars;
    int rc = send_note(g, m, user, "approval_task", NULL, task);
    g->vars = saved;
    return rc;
}

static const struct trl_appr_def *appr_for_state(const struct trl_workflow *w, const char *state,
                                                 size_t *idx)
{
    for (size_t i = 0; i < w->napprovals; i++)
        if (strcmp(w->approvals[i].state, state) == 0) {
            if (idx) *idx = i;
            return &w->approvals[i];
        }
    return NULL;
}

static bool is_outcome(const struct trl_appr_def *a, const char *t)
{
    const char *o[4] = {a->on_approve, a->on_reject, a->on_return, a->on_recall};
    for (int i = 0; i < 4; i++)
        if (o[i] && strcmp(o[i], t) == 0) return true;
    for (size_t i = 0; i < a->nsteps; i++)
        if ((a->steps[i].on_approve && strcmp(a->steps[i].on_approve, t) == 0) ||
            (a->steps[i].on_reject && strcmp(a->steps[i].on_reject, t) == 0))
            return true;
    return false;
}

/* Whether a pending approval of def holds the record (and its id). The record's active
 * approval is read once per runner (a listing asks for every transition). */
static int pending_approval(struct runner *g, const struct trl_appr_def *def, uint64_t *aid,
                            bool *yes)
{
    if (!g->act_known) {
        g->act_rc = trl_appr_active(g->txn, g->ty->name, g->id, &g->act_id, g->act_name,
                                    sizeof(g->act_name));
        if (g->act_rc && g->act_rc != TRL_ENOTFOUND) return g->act_rc;
        g->act_known = true;
    }
    *aid = g->act_id;
    *yes = g->act_rc == 0 && strcmp(g->act_name, def->name) == 0;
    return 0;
}

/* Role and state: why t may not run from state for the caller, or 0. */
static int may_start(struct runner *g, const struct trl_wf_transition *t, size_t ti,
                     struct trl_rec_move *m, bool report)
{
    struct trl_diag *d = g->cx->d;
    const char *state = trl_rec_move_state(m);
    char path[96];
    if (!from_ok(t, state)) {
        if (!report) return TRL_ECONFLICT;
        struct trl_buf allowed;
        trl_buf_init(&allowed);
        for (size_t i = 0; i < t->nfrom; i++)
            trl_buf_printf(&allowed, "%s%s", i ? ", " : "", t->from[i]);
        trl_diag_set(d, TRL_ECONFLICT, "'%s' is not possible in state '%s' (only from: %s)",
                     t->name, state, allowed.data ? allowed.data : "");
        trl_diag_zh(d, "当前状态“%s”下不能执行“%s”(仅可从以下状态执行:%s)", state, t->name,
                    allowed.data ? allowed.data : "");
        trl_buf_free(&allowed);
        snprintf(path, sizeof(path), "transitions[%zu].from", ti);
        trl_diag_rule(d, "state", path);
        return TRL_ECONFLICT;
    }
    if (g->engine) return 0;
    bool ok = t->nroles ? has_role(g->cx->who, t) : trl_rec_move_updatable(m);
    if (!ok) {
        if (!report) return TRL_EFORBIDDEN;
        trl_diag_set(d, TRL_EFORBIDDEN, "your roles may not run '%s' on this %s", t->name,
                     g->ty->name);
        trl_diag_zh(d, "你的角色无权对此 %s 执行“%s”", g->ty->name, t->name);
        snprintf(path, sizeof(path), "transitions[%zu].roles", ti);
        trl_diag_rule(d, "role", path);
        return TRL_EFORBIDDEN;
    }
    /* A pending approval decides its own outcomes; only an administrator may override it. */
    size_t di;
    const struct trl_appr_def *def = appr_for_state(g->w, state, &di);
    if (def && is_outcome(def, t->name) && !(g->cx->who && g->cx->who->admin)) {
        uint64_t aid;
        bool pending;
        int rc = pending_approval(g, def, &aid, &pending);
        if (rc) return rc;
        if (pending) {
            if (!report) return TRL_ECONFLICT;
            trl_diag_set(d, TRL_ECONFLICT,
                         "'%s' is decided by approval '%s' (%llu): approvers decide through "
                         "/api/v1/approvals",
                         t->name, def->name, (unsigned long long)aid);
            trl_diag_zh(d, "“%s”由审批“%s”(%llu)决定:请审批人通过 /api/v1/approvals 处理", t->name,
                        def->name, (unsigned long long)aid);
            snprintf(path, sizeof(path), "approvals[%zu]", di);
            trl_diag_rule(d, "approval", path);
            return TRL_ECONFLICT;
        }
    }
    return 0;
}

static int eval_cond(const struct runner *g, const struct trl_wf_transition *t,
                     struct trl_rec_move *m, bool *ok)
{
    *ok = true;
    if (!t->cond) return 0;
    struct trl_expr_env env = {.user = g->cx->who, .now_ms = g->cx->now_ms};
    return trl_expr_eval(t->cond, trl_rec_move_get, m, &env, ok, g->cx->d);
}

static bool is_missing(const struct runner *g, struct trl_rec_move *m, const char *field)
{
    const struct trl_field *f = trl_type_field(g->ty, field, strlen(field));
    if (!f) return true;
    struct trl_value v;
    trl_rec_move_get(m, (int)f->id, &v);
    return v.kind == TRL_V_NULL || (v.kind == TRL_V_BYTES && v.n == 0);
}

/* A text column's value as a string ("" when empty). */
static void col_str(struct trl_rec_move *m, int col, char *out, size_t n)
{
    struct trl_value v = {0};
    trl_rec_move_get(m, col, &v);
    if (v.kind == TRL_V_BYTES)
        snprintf(out, n, "%.*s", (int)(v.n < n ? v.n : n - 1), v.s);
    else
        out[0] = 0;
}

/* Opens the first step from `from` on whose condition holds (skipping the others) and appends
 * its description to ab. *opened is false when every remaining step was skipped. A dry run only
 * checks that the step would find approvers. */
static int advance(struct runner *g, struct trl_rec_move *m, const struct trl_appr_def *def,
                   size_t di, uint64_t aid, size_t from, bool dry, bool *opened, struct trl_buf *ab)
{
    *opened = false;
    struct trl_diag *d = g->cx->d;
    char requester[64];
    col_str(m, TRL_COL_OWNER, requester, sizeof(requester));
    int rc = trl_buf_printf(ab, "{\"id\":%llu,\"name\":", (unsigned long long)aid) ||
             trl_buf_add_json_str(ab, def->name, strlen(def->name)) ||
             trl_buf_adds(ab, ",\"skipped\":[");
    size_t nskip = 0;
    for (size_t i = from; i < def->nsteps && !rc && !*opened; i++) {
        const struct trl_appr_step *st = &def->steps[i];
        if (st->cond) {
            bool ok;
            struct trl_expr_env env = {.user = g->cx->who, .now_ms = g->cx->now_ms};
            if ((rc = trl_expr_eval(st->cond, trl_rec_move_get, m, &env, &ok, d))) return rc;
            if (!ok) {
                if (!dry && (rc = trl_appr_skip_step(g->txn, aid, i, g->cx->now_ms))) return rc;
                rc = (nskip++ && trl_buf_addc(ab, ',')) ||
                     trl_buf_add_json_str(ab, st->name, strlen(st->name));
                continue;
            }
        }
        char field_user[64] = "";
        if (st->who == TRL_APPR_FIELD) {
            const struct trl_field *f = trl_type_field(g->ty, st->names[0], strlen(st->names[0]));
            if (f) col_str(m, (int)f->id, field_user, sizeof(field_user));
        }
        struct trl_appr_approver ap[TRL_APPR_MAX_APPROVERS];
        size_t n = 0;
        rc = trl_appr_resolve(g->txn, st, requester, field_user, g->cx->now_ms, ap, &n, d);
        if (rc == TRL_EVALIDATION) {
            char path[128];
            snprintf(path, sizeof(path), "approvals[%zu].steps[%zu].approvers", di, i);
            trl_diag_rule(d, "approvers", path);
        }
        if (rc) return rc;
        uint64_t tids[TRL_APPR_MAX_APPROVERS] = {0};
        if (!dry && (rc = trl_appr_open_step(g->txn, aid, i, st, ap, n, g->cx->now_ms, tids)))
            return rc;
        if (!dry && st->time_limit_ms && g->w->set) {
            const struct trl_cal *cal = trl_wf_calendar(g->w->set, st->calendar);
            if (!cal) cal = g->w->set->always;
            int64_t due = trl_cal_add(cal, g->cx->now_ms, st->time_limit_ms);
            char owner[96], payload[512];
            snprintf(owner, sizeof(owner), "appr/%llu/%zu", (unsigned long long)aid, i);
            snprintf(payload, sizeof(payload),
                     "{\"workflow\":\"%s\",\"type\":\"%s\",\"record\":%llu,\"approval\":\"%s\"}",
                     g->w->name, g->ty->name, (unsigned long long)g->id, def->name);
            if (due != TRL_CAL_NEVER && (rc = trl_timer_add(g->txn, due, owner, payload, NULL)))
                return rc;
        }
        for (size_t k = 0; k < n && !dry && !rc; k++)
            if (st->mode != TRL_APPR_SEQUENTIAL || k == 0) /* the others wait their turn */
                rc = note_task(g, m, def, st, ap[k].user, tids[k]);
        if (rc) return rc;
        *opened = true;
        rc = trl_buf_adds(ab, "],\"step\":") ||
             trl_buf_add_json_str(ab, st->name, strlen(st->name)) ||
             trl_buf_adds(ab, ",\"assignees\":[");
        for (size_t k = 0; k < n && !rc; k++)
            rc = (k && trl_buf_addc(ab, ',')) ||
                 trl_buf_add_json_str(ab, ap[k].user, strlen(ap[k].user));
    }
    if (!rc && !*opened)
        rc = trl_buf_adds(ab, "],\"outcome\":\"approved\"");
    else if (!rc)
        rc = trl_buf_addc(ab, ']');
    return rc || trl_buf_addc(ab, '}') ? TRL_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * SLA clocks on changes
 */
static bool in_list(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0) return true;
    return false;
}

static const struct trl_wf_sla *policy_named(const struct trl_workflow *w, const char *name)
{
    for (size_t i = 0; i < w->nslas; i++)
        if (strcmp(w->slas[i].name, name) == 0) return &w->slas[i];
    return NULL;
}

static const struct trl_wf_sla_target *target_named(const struct trl_wf_sla *p, const char *name)
{
    for (size_t i = 0; p && i < p->ntargets; i++)
        if (strcmp(p->targets[i].name, name) == 0) return &p->targets[i];
    return NULL;
}

static const struct trl_cal *cal_of(const struct trl_workflow *w, const struct trl_wf_sla *p)
{
    if (!w->set) return NULL;
    const struct trl_cal *c = trl_wf_calendar(w->set, p->calendar);
    return c ? c : w->set->always;
}

#define MAX_CLOCKS 32
struct clock_list {
    struct trl_sla_clock c[MAX_CLOCKS];
    size_t n;
};

static int collect_clock(void *ud, const struct trl_sla_clock *c)
{
    struct clock_list *l = ud;
    if (l->n < MAX_CLOCKS) l->c[l->n++] = *c;
    return 0;
}

static int sla_event(struct trl_buf *ev, const char *target, const char *what)
{
    return (ev->len > 1 && trl_buf_addc(ev, ',')) || trl_buf_adds(ev, "{\"target\":") ||
                   trl_buf_add_json_str(ev, target, strlen(target)) ||
                   trl_buf_printf(ev, ",\"event\":\"%s\"}", what)
               ? TRL_ENOMEM
               : 0;
}

/* The record moves from state `from` ("" at creation) to `to`: stops, pauses, resumes and starts
 * its clocks, and appends "sla":[events] to extra (when there are any). */
static int sla_on_move(struct runner *g, struct trl_rec_move *m, const char *from, const char *to,
                       struct trl_buf *extra)
{
    const struct trl_workflow *w = g->w;
    if (!w->nslas || !w->set) return 0;
    int64_t now = g->cx->now_ms;
    struct clock_list *l = calloc(1, sizeof(*l));
    if (!l) return TRL_ENOMEM;
    struct trl_buf ev;
    trl_buf_init(&ev);
    int rc = trl_buf_addc(&ev, '[') ? TRL_ENOMEM : 0;
    if (!rc) rc = trl_sla_each(g->txn, g->ty->name, g->id, collect_clock, l);
    for (size_t i = 0; i < l->n && !rc; i++) {
        struct trl_sla_clock *c = &l->c[i];
        const struct trl_wf_sla *pol = policy_named(w, c->policy);
        const struct trl_wf_sla_target *tg = target_named(pol, c->target);
        const struct trl_cal *cal = pol ? cal_of(w, pol) : NULL;
        if (c->stopped || !tg || !cal) continue;
        if (in_list(tg->stop, tg->nstop, to)) {
            rc = trl_sla_stop(g->txn, c, cal, now);
            if (!rc) rc = sla_event(&ev, c->target, c->status == TRL_SLA_MET ? "met" : "breached");
        } else if (in_list(pol->pause, pol->npause, to) && c->status != TRL_SLA_PAUSED) {
            rc = trl_sla_pause(g->txn, c, cal, now);
            if (!rc) rc = sla_event(&ev, c->target, "paused");
        } else if (c->status == TRL_SLA_PAUSED && !in_list(pol->pause, pol->npause, to)) {
            rc = trl_sla_resume(g->txn, c, cal, now);
            if (!rc) rc = sla_event(&ev, c->target, "resumed");
        }
        (void)from;
    }
    /* Starts: per target name, the first policy whose condition holds. */
    const char *started[MAX_CLOCKS];
    size_t nstarted = 0;
    for (size_t p = 0; p < w->nslas && !rc; p++) {
        const struct trl_wf_sla *pol = &w->slas[p];
        bool applies = false, checked = false;
        for (size_t k = 0; k < pol->ntargets && !rc; k++) {
            const struct trl_wf_sla_target *tg = &pol->targets[k];
            if (!in_list(tg->start, tg->nstart, to)) continue;
            bool done = false;
            for (size_t q = 0; q < nstarted && !done; q++)
                done = strcmp(started[q], tg->name) == 0;
            for (size_t q = 0; q < l->n && !done; q++)
                done = strcmp(l->c[q].target, tg->name) == 0 && !l->c[q].stopped;
            if (done) continue;
            if (!checked) {
                checked = true;
                applies = true;
                if (pol->cond) {
                    struct trl_expr_env env = {.user = g->cx->who, .now_ms = now};
                    rc = trl_expr_eval(pol->cond, trl_rec_move_get, m, &env, &applies, g->cx->d);
                    if (rc) break;
                }
            }
            if (!applies) break;
            const struct trl_cal *cal = cal_of(w, pol);
            if (!cal) break;
            struct trl_sla_clock c = {.record = g->id,
                                      .target_ms = tg->target_ms,
                                      .warn_ms = tg->target_ms * tg->warn_percent / 100};
            snprintf(c.type, sizeof(c.type), "%s", g->ty->name);
            snprintf(c.target, sizeof(c.target), "%s", tg->name);
            snprintf(c.policy, sizeof(c.policy), "%s", pol->name);
            snprintf(c.calendar, sizeof(c.calendar), "%s", pol->calendar ? pol->calendar : "24x7");
            rc = trl_sla_start(g->txn, &c, cal, now);
            if (!rc) rc = sla_event(&ev, tg->name, "started");
            if (nstarted < MAX_CLOCKS) started[nstarted++] = tg->name;
        }
    }
    free(l);
    if (!rc && ev.len > 1 && extra &&
        (trl_buf_adds(extra, ",\"sla\":") || trl_buf_add(extra, ev.data, ev.len) ||
         trl_buf_addc(extra, ']')))
        rc = TRL_ENOMEM;
    trl_buf_free(&ev);
    return rc;
}

/* After a transition's checks: ends the approval of the state left, starts the one of the state
 * entered (a dry run only checks that its first step finds approvers). */
static int cancel_step_timers(struct trl_txn *t, uint64_t aid, size_t nsteps)
{
    int rc = 0;
    for (size_t i = 0; i < nsteps && !rc; i++) {
        char owner[96];
        snprintf(owner, sizeof(owner), "appr/%llu/%zu", (unsigned long long)aid, i);
        rc = trl_timer_cancel(t, owner, NULL);
    }
    return rc;
}

static int approvals_on_move(struct runner *g, struct trl_rec_move *m)
{
    bool dry = g->run->dry_run;
    int rc = 0;
    size_t di;
    const struct trl_appr_def *left = appr_for_state(g->w, g->from, &di);
    if (left && !dry) {
        uint64_t aid;
        bool pending;
        if ((rc = pending_approval(g, left, &aid, &pending))) return rc;
        const char *st = g->finish ? g->finish : "cancelled";
        if (pending) {
            if ((rc = trl_appr_finish(g->txn, aid, st, g->cx->now_ms))) return rc;
            if ((rc = cancel_step_timers(g->txn, aid, left->nsteps))) return rc;
            g->act_known = false; /* it is no longer active */
            if (trl_buf_printf(g->extra, ",\"approval_ended\":{\"id\":%llu,\"status\":\"%s\"}",
                               (unsigned long long)aid, st))
                return TRL_ENOMEM;
        }
    }
    const struct trl_appr_def *entered = appr_for_state(g->w, g->t->to, &di);
    if (!entered) return 0;
    uint64_t aid = 0;
    if (!dry) {
        char requester[64], title[256] = "";
        col_str(m, TRL_COL_OWNER, requester, sizeof(requester));
        const struct trl_field *tf = g->ty->title_field ? trl_type_field(g->ty, g->ty->title_field,
                                                                         strlen(g->ty->title_field))
                                                        : NULL;
        if (tf) col_str(m, (int)tf->id, title, sizeof(title));
        struct trl_appr_subject sub = {.workflow = g->w->name,
                                       .type = g->ty->name,
                                       .record = g->id,
                                       .title = title,
                                       .requester = requester};
        if ((rc = trl_appr_start(g->txn, entered, &sub, g->cx->now_ms, &aid))) return rc;
        g->act_known = false; /* a new approval is active */
    }
    struct trl_buf ab;
    trl_buf_init(&ab);
    bool opened;
    rc = advance(g, m, entered, di, aid, 0, dry, &opened, &ab);
    if (!rc && !dry &&
        (trl_buf_adds(g->extra, ",\"approval\":") || trl_buf_add(g->extra, ab.data, ab.len)))
        rc = TRL_ENOMEM;
    trl_buf_free(&ab);
    if (!rc && !opened && !dry) {
        /* Every step was skipped: the approval is approved at once. */
        snprintf(g->next, sizeof(g->next), "%s", entered->on_approve);
        g->next_finish = "approved";
    }
    return rc;
}

/* Everything a change of state sets going: approvals, then SLA clocks. */
static int engine_on_move(struct runner *g, struct trl_rec_move *m)
{
    int rc = approvals_on_move(g, m);
    if (!rc && !g->run->dry_run) rc = sla_on_move(g, m, g->from, g->t->to, g->extra);
    return rc;
}

static int list_guard(struct runner *g, struct trl_rec_move *m)
{
    struct trl_buf *o = g->list;
    const char *state = trl_rec_move_state(m);
    const struct trl_wf_state *st = find_state(g->w, state);
    int rc = trl_buf_adds(o, "{\"workflow\":") ||
             trl_buf_add_json_str(o, g->w->name, strlen(g->w->name)) ||
             trl_buf_adds(o, ",\"state\":") || trl_buf_add_json_str(o, state, strlen(state));
    if (!rc && st) rc = trl_buf_adds(o, ",\"state_labels\":") || add_labels(o, &st->labels);
    const struct trl_appr_def *def = appr_for_state(g->w, state, NULL);
    if (!rc && def) {
        uint64_t aid;
        bool pending;
        if ((rc = pending_approval(g, def, &aid, &pending))) return rc;
        if (pending)
            rc = trl_buf_printf(o,
                                ",\"approval\":{\"id\":%llu,\"name\":", (unsigned long long)aid) ||
                 trl_buf_add_json_str(o, def->name, strlen(def->name)) || trl_buf_addc(o, '}');
    }
    rc = rc || trl_buf_adds(o, ",\"items\":[");
    size_t k = 0;
    for (size_t i = 0; i < g->w->ntransitions && !rc; i++) {
        const struct trl_wf_transition *t = &g->w->transitions[i];
        if (may_start(g, t, i, m, false)) continue;
        bool ok;
        if ((rc = eval_cond(g, t, m, &ok))) return rc;
        if (!ok) continue;
        /* A required field that is missing and cannot be filled here blocks it for now. */
        bool blocked = false;
        for (size_t r = 0; r < t->nrequired && !blocked; r++) {
            if (!is_missing(g, m, t->required[r])) continue;
            bool fillable = false;
            for (size_t q = 0; q < t->nfields && !fillable; q++)
                fillable = strcmp(t->fields[q], t->required[r]) == 0;
            blocked = !fillable;
        }
        if (blocked) continue;
        rc = (k++ && trl_buf_addc(o, ',')) || trl_buf_adds(o, "{\"name\":") ||
             trl_buf_add_json_str(o, t->name, strlen(t->name)) || trl_buf_adds(o, ",\"labels\":") ||
             add_labels(o, &t->labels) || trl_buf_adds(o, ",\"to\":") ||
             trl_buf_add_json_str(o, t->to, strlen(t->to)) || trl_buf_adds(o, ",\"fields\":") ||
             add_strv(o, t->fields, t->nfields) || trl_buf_adds(o, ",\"required\":") ||
             add_strv(o, t->required, t->nrequired) || trl_buf_adds(o, ",\"missing\":[");
        size_t nm = 0;
        for (size_t r = 0; r < t->nrequired && !rc; r++)
            if (is_missing(g, m, t->required[r]))
                rc = (nm++ && trl_buf_addc(o, ',')) ||
                     trl_buf_add_json_str(o, t->required[r], strlen(t->required[r]));
        rc = rc ||
             trl_buf_printf(o, "],\"comment_required\":%s", t->comment_required ? "true" : "false");
        if (!rc && (t->confirm.en[0] || t->confirm.zh[0]))
            rc = trl_buf_adds(o, ",\"confirm\":") || add_labels(o, &t->confirm);
        rc = rc || trl_buf_addc(o, '}');
    }
    if (!rc) rc = trl_buf_adds(o, "]}");
    return rc ? TRL_ENOMEM : TRL_MOVE_STOP;
}

static int apply_assignment(struct runner *g, struct trl_rec_move *m, const char *only);
static int create_action(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                         const char *path);
static bool in_list(char **v, size_t n, const char *s);

/* Runs the set and notify actions of a list (what names the list: "'submit'", "SLA target x"). */
/* Calls the hook an action names, with the record writable (a dry run calls nothing). */
static int hook_action(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                       const char *path)
{
    if (g->run && g->run->dry_run) return 0;
    struct trl_rec_event ev = {.kind = TRL_EV_ACTION,
                               .ty = g->ty,
                               .rec = m,
                               .writable = true,
                               .name = a->ref,
                               .from = g->from[0] ? g->from : NULL,
                               .to = g->t ? g->t->to : NULL,
                               .transition = g->t ? g->t->name : NULL,
                               .comment = g->run ? g->run->comment : NULL};
    if (!trl_rec_wants(g->cx, g->ty, TRL_EV_ACTION, a->ref)) {
        trl_diag_set(g->cx->d, TRL_ECONFLICT,
                     "action hook '%s' is not defined: the app has no such hook function", a->ref);
        trl_diag_zh(g->cx->d, "动作钩子“%s”未定义:应用中没有这个钩子函数", a->ref);
        trl_diag_rule(g->cx->d, "action", path);
        return TRL_ECONFLICT;
    }
    return trl_rec_fire(g->txn, g->cx, &ev);
}

static int run_list(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *acts,
                    size_t n, const char *what, const char *pathfmt, size_t pi, const char *kind)
{
    for (size_t k = 0; k < n; k++) {
        const struct trl_wf_action *a = &acts[k];
        char path[160];
        snprintf(path, sizeof(path), pathfmt, pi, k);
        int rc;
        if (a->kind == TRL_ACT_TRANSITION) continue; /* run after the change, by the caller */
        if (a->kind == TRL_ACT_ASSIGN) {
            if ((rc = apply_assignment(g, m, a->ref))) return rc;
            continue;
        }
        if (a->kind == TRL_ACT_CREATE) {
            if ((rc = create_action(g, m, a, path))) return rc;
            continue;
        }
        if (a->kind == TRL_ACT_NOTIFY) {
            if ((rc = notify_action(g, m, a, kind))) return rc;
            continue;
        }
        if (a->kind == TRL_ACT_HOOK) {
            if ((rc = hook_action(g, m, a, path))) return rc;
            continue;
        }
        const struct trl_field *f = trl_type_field(g->ty, a->field, strlen(a->field));
        if (!f) {
            rc = TRL_EVALIDATION;
            trl_diag_add_ferr(g->cx->d, a->field, "unknown_field", "");
        } else if (a->src == TRL_WF_CONST) {
            rc = trl_rec_move_set(m, f, &a->val);
        } else {
            struct trl_value v = {0};
            const struct trl_principal *who = g->cx->who;
            if (a->src == TRL_WF_COPY) {
                const struct trl_field *sf = trl_type_field(g->ty, a->ref, strlen(a->ref));
                if (sf) trl_rec_move_get(m, (int)sf->id, &v);
            } else if (strcmp(a->ref, "now") == 0) {
                v.kind = TRL_V_INT;
                v.i = g->cx->now_ms;
            } else if (strcmp(a->ref, "today") == 0) {
                v.kind = TRL_V_INT;
                v.i = (int64_t)((g->cx->now_ms >= 0 ? g->cx->now_ms : g->cx->now_ms - 86399999) /
                                86400000);
            } else {
                const char *s = !who                              ? ""
                                : strcmp(a->ref, "user.id") == 0  ? who->user
                                : strcmp(a->ref, "user.org") == 0 ? who->org
                                                                  : who->region;
                if (*s) {
                    v.kind = TRL_V_BYTES;
                    v.s = s;
                    v.n = strlen(s);
                }
            }
            rc = trl_rec_move_set_value(m, f, &v);
        }
        if (rc) {
            if (rc == TRL_EVALIDATION) {
                trl_diag_set(g->cx->d, TRL_EVALIDATION,
                             "action %zu of %s cannot set %s: the value breaks the field's rules",
                             k + 1, what, a->field);
                trl_diag_zh(g->cx->d, "%s的第 %zu 个动作无法设置 %s:取值不符合字段规则", what,
                            k + 1, a->field);
                trl_diag_rule(g->cx->d, "action", path);
            }
            return rc;
        }
    }
    return 0;
}

static int run_actions(struct runner *g, struct trl_rec_move *m)
{
    char what[96];
    snprintf(what, sizeof(what), "'%s'", g->t->name);
    return run_list(g, m, g->t->actions, g->t->nactions, what, "transitions[%zu].actions[%zu]",
                    g->ti, "transition");
}

static int run_guard(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m)
{
    struct runner *g = ud;
    if (!g->t) return phase == TRL_MOVE_LOADED ? list_guard(g, m) : TRL_MOVE_STOP;
    const struct trl_wf_transition *t = g->t;
    struct trl_diag *d = g->cx->d;
    char path[96];
    int rc;
    if (phase == TRL_MOVE_LOADED) {
        snprintf(g->from, sizeof(g->from), "%s", trl_rec_move_state(m));
        if ((rc = may_start(g, t, g->ti, m, true))) return rc;
        const struct trl_appr_def *def = appr_for_state(g->w, g->from, NULL);
        if (!g->engine && def && is_outcome(def, t->name)) {
            /* Only an administrator gets here while the approval is pending: an override. */
            uint64_t aid;
            bool pending;
            if ((rc = pending_approval(g, def, &aid, &pending))) return rc;
            if (pending) g->finish = "overridden";
        }
        if (g->recall && !(g->cx->who && g->cx->who->admin)) {
            char owner[64];
            col_str(m, TRL_COL_OWNER, owner, sizeof(owner));
            if (!g->cx->who || strcmp(owner, g->cx->who->user) != 0) {
                trl_diag_set(d, TRL_EFORBIDDEN, "only the requester (%s) may recall this approval",
                             owner);
                trl_diag_zh(d, "只有申请人(%s)可以撤回此审批", owner);
                trl_diag_rule(d, "recall", "");
                return TRL_EFORBIDDEN;
            }
        }
        /* Only the fields this transition lets the caller fill. */
        for (size_t i = 0; i < g->run->nin; i++) {
            bool ok = false;
            for (size_t k = 0; k < t->nfields && !ok; k++)
                ok = strcmp(t->fields[k], g->run->in[i].name) == 0;
            if (!ok && trl_diag_add_ferr(d, g->run->in[i].name, "not_fillable", t->name))
                return TRL_ENOMEM;
        }
        if (d->nferrs) {
            trl_diag_set(d, TRL_EVALIDATION, "'%s' does not let you fill %zu of the given fields",
                         t->name, d->nferrs);
            trl_diag_zh(d, "“%s”不允许填写所给字段中的 %zu 个", t->name, d->nferrs);
            snprintf(path, sizeof(path), "transitions[%zu].fields", g->ti);
            trl_diag_rule(d, "fields", path);
            return TRL_EVALIDATION;
        }
        if (t->comment_required && (!g->run->comment || !*g->run->comment)) {
            if (trl_diag_add_ferr(d, "comment", "required", "")) return TRL_ENOMEM;
            trl_diag_set(d, TRL_EVALIDATION, "'%s' needs a comment saying why", t->name);
            trl_diag_zh(d, "执行“%s”需要填写意见说明原因", t->name);
            snprintf(path, sizeof(path), "transitions[%zu].comment_required", g->ti);
            trl_diag_rule(d, "comment", path);
            return TRL_EVALIDATION;
        }
        return 0;
    }
    /* Filled: required fields, then the condition, then the actions. */
    for (size_t r = 0; r < t->nrequired; r++)
        if (is_missing(g, m, t->required[r]) &&
            trl_diag_add_ferr(d, t->required[r], "required", ""))
            return TRL_ENOMEM;
    if (d->nferrs) {
        trl_diag_set(d, TRL_EVALIDATION, "'%s' needs %zu more field(s) filled in", t->name,
                     d->nferrs);
        trl_diag_zh(d, "执行“%s”前还需填写 %zu 个字段", t->name, d->nferrs);
        snprintf(path, sizeof(path), "transitions[%zu].required", g->ti);
        trl_diag_rule(d, "required", path);
        return TRL_EVALIDATION;
    }
    bool ok;
    if ((rc = eval_cond(g, t, m, &ok))) return rc;
    if (!ok) {
        trl_diag_set(d, TRL_EVALIDATION, "the condition of '%s' is not met: %s", t->name,
                     t->condition);
        trl_diag_zh(d, "不满足“%s”的条件:%s", t->name, t->condition);
        snprintf(path, sizeof(path), "transitions[%zu].condition", g->ti);
        trl_diag_rule(d, "condition", path);
        return TRL_EVALIDATION;
    }
    if ((rc = run_actions(g, m))) return rc;
    if (g->w->assignment.nrules && in_list(g->w->assignment.on, g->w->assignment.non, t->name) &&
        (rc = apply_assignment(g, m, NULL)))
        return rc;
    if (!g->run->dry_run) {
        struct trl_rec_event ev = {.kind = TRL_EV_BEFORE_TRANSITION,
                                   .ty = g->ty,
                                   .rec = m,
                                   .writable = true,
                                   .op = "transition",
                                   .name = t->name,
                                   .from = g->from,
                                   .to = t->to,
                                   .comment = g->run->comment};
        if ((rc = trl_rec_fire(g->txn, g->cx, &ev))) return rc;
    }
    /* The history event says which transition ran, between which states, and why. */
    rc = trl_buf_adds(g->extra, "\"transition\":") ||
         trl_buf_add_json_str(g->extra, t->name, strlen(t->name)) ||
         trl_buf_adds(g->extra, ",\"from\":") ||
         trl_buf_add_json_str(g->extra, g->from, strlen(g->from)) ||
         trl_buf_adds(g->extra, ",\"to\":") || trl_buf_add_json_str(g->extra, t->to, strlen(t->to));
    if (!rc && g->run->comment && *g->run->comment)
        rc = trl_buf_adds(g->extra, ",\"comment\":") ||
             trl_buf_add_json_str(g->extra, g->run->comment, strlen(g->run->comment));
    if (!rc && g->engine)
        rc = trl_buf_printf(g->extra, ",\"by\":\"%s\"", g->by ? g->by : "approval");
    if (!rc && g->assigned[0]) rc = trl_buf_adds(g->extra, g->assigned);
    if (!rc && g->created[0]) rc = trl_buf_adds(g->extra, g->created);
    if (rc) return TRL_ENOMEM;
    return engine_on_move(g, m);
}

int trl_wf_available(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                     const struct trl_workflow *w, uint64_t id, struct trl_buf *out)
{
    struct runner g = {.txn = t, .cx = cx, .ty = ty, .w = w, .id = id, .list = out};
    struct trl_rec_move_opts o = {.guard = run_guard, .ud = &g, .dry_run = true};
    return trl_rec_move(t, cx, ty, id, 0, NULL, 0, &o, NULL);
}

/* Replaces out with record id as the caller may see it (the engine wrote it unrestricted):
 * hidden fields stay hidden, and a record the caller may no longer read answers null. */
static int answer_as_caller(struct trl_txn *t, const struct trl_rec_ctx *cx,
                            const struct trl_type *ty, uint64_t id, bool approver,
                            struct trl_buf *out)
{
    struct trl_access acc;
    unsigned char *modes = malloc(ty->nfields + 1);
    if (!modes) return TRL_ENOMEM;
    struct trl_rec_ctx ccx = *cx;
    if (!cx->acc || approver) {
        trl_rec_access(ty, cx->who, &acc, modes);
        /* An approver sees the record they decide on, with their roles' field modes. */
        if (approver) acc.read = TRL_SCOPE_ALL;
        ccx.acc = &acc;
    }
    struct trl_diag d;
    trl_diag_init(&d);
    ccx.d = &d;
    trl_buf_clear(out);
    uint64_t ver;
    int rc = trl_rec_get(t, &ccx, ty, id, NULL, &ver, out);
    trl_diag_reset(&d);
    free(modes);
    if (rc == TRL_ENOTFOUND) {
        trl_buf_clear(out);
        rc = trl_buf_adds(out, "null") ? TRL_ENOMEM : 0;
    }
    return rc;
}

static int fire_stored(struct trl_txn *t, const struct trl_rec_ctx *cx, struct trl_rec_event *ev,
                       uint64_t id);

/* Runs transition run->transition; an approval outcome it leads to runs next (depth-bounded). */
static int transition(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                      const struct trl_workflow *w, uint64_t id, const struct trl_wf_run *run,
                      const struct runner *proto, int depth, struct trl_buf *out)
{
    struct runner g = {.txn = t, .cx = cx, .ty = ty, .w = w, .id = id, .run = run};
    if (proto) {
        g.engine = proto->engine;
        g.recall = proto->recall;
        g.finish = proto->finish;
        g.by = proto->by;
    }
    if (depth > 8) {
        trl_diag_set(cx->d, TRL_ECONFLICT,
                     "approvals chained more than 8 transitions in one request; check the "
                     "workflow for a loop of steps that are all skipped");
        trl_diag_zh(
            cx->d,
            "一次请求中审批连续触发了超过 8 次流转;请检查工作流中是否存在全部被跳过的审批循环");
        trl_diag_rule(cx->d, "approval", "approvals");
        return TRL_ECONFLICT;
    }
    for (size_t i = 0; i < w->ntransitions && !g.t; i++)
        if (strcmp(w->transitions[i].name, run->transition) == 0)
            g.t = &w->transitions[i], g.ti = i;
    if (!g.t) {
        trl_diag_set(cx->d, TRL_ENOTFOUND, "workflow %s has no transition '%s'", w->name,
                     run->transition);
        trl_diag_zh(cx->d, "工作流 %s 中没有名为“%s”的流转", w->name, run->transition);
        trl_diag_rule(cx->d, "transition", "transitions");
        return TRL_ENOTFOUND;
    }
    struct trl_buf extra;
    trl_buf_init(&extra);
    g.extra = &extra;
    struct trl_rec_move_opts o = {.action = "transition",
                                  .to_state = g.t->to,
                                  .guard = run_guard,
                                  .ud = &g,
                                  .extra = &extra,
                                  .dry_run = run->dry_run};
    int rc = trl_rec_move(t, cx, ty, id, run->if_match, run->in, run->nin, &o,
                          run->dry_run ? NULL : out);
    trl_buf_free(&extra);
    if (!rc && !run->dry_run && trl_rec_wants(cx, ty, TRL_EV_AFTER_TRANSITION, g.t->name)) {
        struct trl_rec_event ev = {.kind = TRL_EV_AFTER_TRANSITION,
                                   .ty = ty,
                                   .op = "transition",
                                   .name = g.t->name,
                                   .from = g.from,
                                   .to = g.t->to,
                                   .comment = run->comment};
        if ((rc = fire_stored(t, cx, &ev, id)) == 0 && out)
            rc = answer_as_caller(t, cx, ty, id, false, out);
    }
    if (!rc && run->dry_run)
        rc = trl_buf_adds(out, "{\"ok\":true,\"transition\":") ||
                     trl_buf_add_json_str(out, g.t->name, strlen(g.t->name)) ||
                     trl_buf_adds(out, ",\"from\":") ||
                     trl_buf_add_json_str(out, g.from, strlen(g.from)) ||
                     trl_buf_adds(out, ",\"to\":") ||
                     trl_buf_add_json_str(out, g.t->to, strlen(g.t->to)) || trl_buf_addc(out, '}')
                 ? TRL_ENOMEM
                 : 0;
    if (!rc && g.next[0]) {
        /* The approval's outcome: the engine runs it as part of the same write. */
        struct trl_rec_ctx ecx = *cx;
        ecx.acc = NULL;
        struct trl_wf_run next = {.transition = g.next, .comment = run->comment};
        struct runner ep = {.engine = true, .finish = g.next_finish};
        /* Rendered once, below, as the caller may see it (the engine acts unrestricted). */
        rc = transition(t, &ecx, ty, w, id, &next, &ep, depth + 1, NULL);
        if (!rc && out) rc = answer_as_caller(t, cx, ty, id, false, out);
    }
    return rc;
}

int trl_wf_transition(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                      const struct trl_workflow *w, uint64_t id, const struct trl_wf_run *run,
                      struct trl_buf *out)
{
    return transition(t, cx, ty, w, id, run, NULL, 0, out);
}

int trl_wf_recall(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                  const struct trl_workflow *w, uint64_t id, const char *comment,
                  struct trl_buf *out)
{
    uint64_t aid;
    char name[64];
    int rc = trl_appr_active(t, ty->name, id, &aid, name, sizeof(name));
    if (rc && rc != TRL_ENOTFOUND) return rc;
    const struct trl_appr_def *def = NULL;
    for (size_t i = 0; !rc && i < w->napprovals && !def; i++)
        if (strcmp(w->approvals[i].name, name) == 0) def = &w->approvals[i];
    if (rc || !def) {
        trl_diag_set(cx->d, TRL_ECONFLICT, "this %s has no pending approval to recall", ty->name);
        trl_diag_zh(cx->d, "此 %s 没有可撤回的待审批", ty->name);
        trl_diag_rule(cx->d, "approval", "approvals");
        return TRL_ECONFLICT;
    }
    if (!def->on_recall) {
        trl_diag_set(cx->d, TRL_ECONFLICT,
                     "approval '%s' cannot be recalled: its definition names no on_recall "
                     "transition",
                     def->name);
        trl_diag_zh(cx->d, "审批“%s”不能撤回:其定义未指定 on_recall 流转", def->name);
        trl_diag_rule(cx->d, "recall", "approvals");
        return TRL_ECONFLICT;
    }
    /* Recall needs read access (a requester sees their own record); the requester check is the
     * guard's. */
    if ((rc = trl_rec_visible(t, cx, ty, id))) return rc;
    struct trl_rec_ctx ecx = *cx;
    ecx.acc = NULL;
    struct trl_wf_run run = {.transition = def->on_recall, .comment = comment};
    struct runner ep = {.engine = true, .recall = true, .finish = "recalled"};
    rc = transition(t, &ecx, ty, w, id, &run, &ep, 0, NULL);
    return rc ? rc : answer_as_caller(t, cx, ty, id, false, out);
}

/* The decision's history event, and what follows from the step's outcome. */
static int decide_guard(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m)
{
    struct runner *g = ud;
    struct trl_diag *d = g->cx->d;
    const struct trl_wf_decision *dec = g->dec;
    if (phase == TRL_MOVE_LOADED) {
        if (strcmp(trl_rec_move_state(m), g->def->state) != 0) {
            trl_diag_set(d, TRL_ECONFLICT, "the record left state '%s'; the approval is over",
                         g->def->state);
            trl_diag_zh(d, "记录已离开状态“%s”,该审批已结束", g->def->state);
            trl_diag_rule(d, "task", "");
            return TRL_ECONFLICT;
        }
        return 0;
    }
    struct trl_appr_result *r = &g->res;
    const struct trl_appr_step *st = &g->def->steps[r->step < g->def->nsteps ? r->step : 0];
    int rc = trl_appr_decide(g->txn, dec->task, g->cx->who ? g->cx->who->user : "", dec->decision,
                             dec->comment, dec->to, st->allow_self, g->cx->now_ms, r, d);
    if (rc) return rc;
    static const char *const names[] = {"approve", "reject", "return", "delegate"};
    rc = trl_buf_printf(g->extra,
                        "\"approval\":{\"id\":%llu,\"name\":", (unsigned long long)r->approval) ||
         trl_buf_add_json_str(g->extra, g->def->name, strlen(g->def->name)) ||
         trl_buf_adds(g->extra, ",\"step\":") ||
         trl_buf_add_json_str(g->extra, st->name, strlen(st->name)) ||
         trl_buf_printf(g->extra, ",\"task\":%llu,\"decision\":\"%s\"",
                        (unsigned long long)dec->task, names[dec->decision]);
    if (!rc && dec->decision == TRL_DECIDE_DELEGATE)
        rc = trl_buf_adds(g->extra, ",\"to\":") ||
             trl_buf_add_json_str(g->extra, dec->to, strlen(dec->to));
    if (!rc && dec->comment && *dec->comment)
        rc = trl_buf_adds(g->extra, ",\"comment\":") ||
             trl_buf_add_json_str(g->extra, dec->comment, strlen(dec->comment));
    static const char *const outs[] = {"pending", "approved", "rejected"};
    if (!rc)
        rc = trl_buf_printf(g->extra, ",\"step_outcome\":\"%s\"",
                            r->returned ? "returned" : outs[r->step_outcome]);
    if (rc) return TRL_ENOMEM;
    if (r->step_outcome != TRL_APPR_PENDING) {
        char owner[96];
        snprintf(owner, sizeof(owner), "appr/%llu/%zu", (unsigned long long)r->approval, r->step);
        if ((rc = trl_timer_cancel(g->txn, owner, NULL))) return rc;
    }
    if (r->step_outcome == TRL_APPR_APPROVED) {
        const char *next = st->on_approve;
        if (!next) {
            struct trl_buf ab;
            trl_buf_init(&ab);
            bool opened;
            rc = advance(g, m, g->def, g->di, r->approval, r->step + 1, false, &opened, &ab);
            if (!rc &&
                (trl_buf_adds(g->extra, ",\"next\":") || trl_buf_add(g->extra, ab.data, ab.len)))
                rc = TRL_ENOMEM;
            trl_buf_free(&ab);
            if (rc) return rc;
            if (!opened) next = g->def->on_approve;
        }
        if (next) snprintf(g->next, sizeof(g->next), "%s", next);
        g->next_finish = "approved";
    } else if (r->step_outcome == TRL_APPR_REJECTED) {
        const char *next = r->returned     ? g->def->on_return
                           : st->on_reject ? st->on_reject
                                           : g->def->on_reject;
        snprintf(g->next, sizeof(g->next), "%s", next ? next : "");
        g->next_finish = r->returned ? "returned" : "rejected";
    }
    /* A sequential step: the next approver's turn has come. */
    if (r->next_assignee[0] && (rc = note_task(g, m, g->def, st, r->next_assignee, r->next_task)))
        return rc;
    if (g->next[0]) {
        /* The requester hears the outcome. */
        char requester[64];
        col_str(m, TRL_COL_OWNER, requester, sizeof(requester));
        const char *vars[] = {
            "outcome",     g->next_finish,
            "comment",     dec->comment ? dec->comment : "",
            "approval",    g->def->labels.en[0] ? g->def->labels.en : g->def->name,
            "approval@zh", g->def->labels.zh,
            NULL};
        g->vars = vars;
        rc = send_note(g, m, requester, r->returned ? "returned" : "approval_decided", NULL, 0);
        g->vars = NULL;
        if (rc) return rc;
    }
    rc = trl_buf_addc(g->extra, '}');
    return rc ? TRL_ENOMEM : 0;
}

int trl_wf_decide(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *ws,
                  const struct trl_wf_decision *dec, struct trl_buf *out)
{
    struct trl_appr_result info;
    int rc = trl_appr_task_info(t, dec->task, &info);
    if (rc == TRL_ENOTFOUND) {
        trl_diag_set(cx->d, TRL_ENOTFOUND, "no approval task %llu", (unsigned long long)dec->task);
        trl_diag_zh(cx->d, "审批任务 %llu 不存在", (unsigned long long)dec->task);
        return rc;
    }
    if (rc) return rc;
    const struct trl_type *ty = trl_catalog_type(cx->cat, info.type);
    const struct trl_workflow *w = trl_wf_by_name(ws, info.workflow);
    struct runner g = {.txn = t, .ty = ty, .w = w, .id = info.record, .dec = dec, .engine = true};
    char aname[64] = "";
    uint64_t aid = 0;
    if (ty && w && trl_appr_active(t, ty->name, info.record, &aid, aname, sizeof(aname)) == 0 &&
        aid == info.approval)
        for (size_t i = 0; i < w->napprovals && !g.def; i++)
            if (strcmp(w->approvals[i].name, aname) == 0) g.def = &w->approvals[i], g.di = i;
    if (!g.def) {
        /* The approval ended (or its definition is gone): the task is closed. */
        rc = trl_appr_decide(t, dec->task, cx->who ? cx->who->user : "", dec->decision,
                             dec->comment, dec->to, false, cx->now_ms, &info, cx->d);
        if (!rc) {
            trl_diag_set(cx->d, TRL_ECONFLICT, "this task's approval is over; nothing was changed");
            trl_diag_zh(cx->d, "此任务所属的审批已结束,未做任何更改");
            trl_diag_rule(cx->d, "task", "");
            rc = TRL_ECONFLICT;
        }
        return rc;
    }
    if (dec->decision == TRL_DECIDE_RETURN && !g.def->on_return) {
        trl_diag_set(cx->d, TRL_ECONFLICT,
                     "approval '%s' cannot return requests: its definition names no on_return "
                     "transition",
                     g.def->name);
        trl_diag_zh(cx->d, "审批“%s”不支持退回:其定义未指定 on_return 流转", g.def->name);
        trl_diag_rule(cx->d, "return", "approvals");
        return TRL_ECONFLICT;
    }
    /* The approver acts through the task: the record's row scopes do not apply. */
    struct trl_rec_ctx ecx = *cx;
    ecx.acc = NULL;
    g.cx = &ecx;
    g.res.step = info.step;
    struct trl_buf extra, rec;
    trl_buf_init(&extra);
    trl_buf_init(&rec);
    g.extra = &extra;
    struct trl_rec_move_opts o = {
        .action = "approval", .guard = decide_guard, .ud = &g, .extra = &extra};
    rc = trl_rec_move(t, &ecx, ty, info.record, 0, NULL, 0, &o, NULL);
    trl_buf_free(&extra);
    if (!rc && g.next[0]) {
        struct trl_wf_run next = {.transition = g.next, .comment = dec->comment};
        struct runner ep = {.engine = true, .finish = g.next_finish};
        rc = transition(t, &ecx, ty, w, info.record, &next, &ep, 1, NULL);
    }
    if (!rc && trl_rec_wants(cx, ty, TRL_EV_APPROVAL_DECIDED, g.def->name)) {
        static const char *const dn[] = {"approve", "reject", "return", "delegate"};
        static const char *const on[] = {"pending", "approved", "rejected"};
        const struct trl_appr_result *res = &g.res;
        struct trl_buf det;
        trl_buf_init(&det);
        rc = trl_buf_printf(&det, "{\"approval\":") ||
                     trl_buf_add_json_str(&det, g.def->name, strlen(g.def->name)) ||
                     trl_buf_printf(&det,
                                    ",\"task\":%llu,\"step\":", (unsigned long long)dec->task) ||
                     trl_buf_add_json_str(&det, res->step_name, strlen(res->step_name)) ||
                     trl_buf_printf(&det, ",\"decision\":\"%s\",\"step_outcome\":\"%s\",\"by\":",
                                    dn[dec->decision], on[res->step_outcome]) ||
                     trl_buf_add_json_str(&det, cx->who ? cx->who->user : "",
                                          cx->who ? strlen(cx->who->user) : 0) ||
                     trl_buf_printf(&det, ",\"next\":") ||
                     (g.next[0] ? trl_buf_add_json_str(&det, g.next, strlen(g.next))
                                : trl_buf_adds(&det, "null")) ||
                     trl_buf_addc(&det, '}')
                 ? TRL_ENOMEM
                 : 0;
        struct trl_rec_event ev = {.kind = TRL_EV_APPROVAL_DECIDED,
                                   .ty = ty,
                                   .name = g.def->name,
                                   .comment = dec->comment,
                                   .detail = det.data};
        if (!rc) rc = fire_stored(t, &ecx, &ev, info.record);
        trl_buf_free(&det);
    }
    if (!rc) rc = answer_as_caller(t, cx, ty, info.record, true, &rec);
    if (!rc)
        rc = trl_buf_adds(out, "{\"task\":") ? TRL_ENOMEM : trl_appr_task_json(t, dec->task, out);
    if (!rc)
        rc = trl_buf_adds(out, ",\"record\":") || trl_buf_add(out, rec.data, rec.len) ||
                     trl_buf_addc(out, '}')
                 ? TRL_ENOMEM
                 : 0;
    trl_buf_free(&rec);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Notifications
 */
struct note_ctx {
    struct runner *g;
    struct trl_rec_move *m;
    bool zh; /* the recipient reads Simplified Chinese */
};

/* A column's value as text for a message. */
static int value_text(struct trl_rec_move *m, const struct trl_field *f, int col,
                      struct trl_buf *out)
{
    struct trl_value v = {0};
    trl_rec_move_get(m, col, &v);
    if (v.kind == TRL_V_NULL) return 0;
    if (v.kind == TRL_V_BYTES) return trl_buf_add(out, v.s, v.n) ? TRL_ENOMEM : 0;
    if (f && f->type == TRL_FT_DECIMAL) {
        int64_t p = 1;
        for (int i = 0; i < f->scale; i++)
            p *= 10;
        int64_t a = v.i < 0 ? -v.i : v.i;
        return trl_buf_printf(out, "%s%lld.%0*lld", v.i < 0 ? "-" : "", (long long)(a / p),
                              f->scale, (long long)(a % p))
                   ? TRL_ENOMEM
                   : 0;
    }
    if (f && f->type == TRL_FT_DATETIME) {
        char ts[40];
        trl_datetime_format(v.i, ts);
        return trl_buf_adds(out, ts) ? TRL_ENOMEM : 0;
    }
    return trl_buf_printf(out, "%lld", (long long)v.i) ? TRL_ENOMEM : 0;
}

static int note_lookup(void *ud, const char *name, size_t n, struct trl_buf *value)
{
    struct note_ctx *nc = ud;
    struct runner *g = nc->g;
    /* Extra values; "name@zh" holds the Chinese text of a label. */
    char zhname[80];
    snprintf(zhname, sizeof(zhname), "%s@zh", name);
    for (const char *const *v = g->vars; nc->zh && v && v[0]; v += 2)
        if (strcmp(v[0], zhname) == 0 && v[1] && *v[1])
            return trl_buf_adds(value, v[1]) ? TRL_ENOMEM : 0;
    for (const char *const *v = g->vars; v && v[0]; v += 2)
        if (strcmp(v[0], name) == 0) {
            const char *x = v[1] ? v[1] : "";
            if (nc->zh && strcmp(name, "outcome") == 0)
                x = strcmp(x, "approved") == 0 ? "批准" : strcmp(x, "rejected") == 0 ? "驳回" : x;
            if (trl_buf_adds(value, x)) return TRL_ENOMEM;
            if (strcmp(name, "outcome") == 0) {
                /* Which approval decided: a request passes several. */
                const char *en = NULL, *zh = NULL;
                for (const char *const *q = g->vars; q[0]; q += 2) {
                    if (strcmp(q[0], "approval") == 0) en = q[1];
                    if (strcmp(q[0], "approval@zh") == 0) zh = q[1];
                }
                const char *l = nc->zh && zh && *zh ? zh : en;
                if (l && *l && trl_buf_printf(value, nc->zh ? "(%s)" : " (%s)", l))
                    return TRL_ENOMEM;
            }
            return 0;
        }
    if (strcmp(name, "type") == 0) {
        const char *l = nc->zh ? g->ty->labels.zh : g->ty->labels.en;
        return trl_buf_adds(value, l && *l ? l : g->ty->name) ? TRL_ENOMEM : 0;
    }
    if (strcmp(name, "record") == 0 || strcmp(name, "id") == 0)
        return trl_buf_printf(value, "%llu", (unsigned long long)g->id) ? TRL_ENOMEM : 0;
    if (strcmp(name, "actor") == 0) {
        /* The people reading it know the actor by their display name (刘洋, not liu.yang). */
        if (!g->actor[0]) {
            /* Read once per run: every message of it names the same actor. */
            const char *who = g->cx->who && g->cx->who->user[0] ? g->cx->who->user : NULL;
            struct trl_user u;
            if (who && trl_auth_user_get(g->txn, who, &u) == 0 && u.display[0]) who = u.display;
            snprintf(g->actor, sizeof(g->actor), "%s", who ? who : "system");
        }
        return trl_buf_adds(value, g->actor) ? TRL_ENOMEM : 0;
    }
    if (strcmp(name, "state") == 0) {
        /* During a transition: the state it enters, by its label in the reader's language. */
        const char *st = g->t ? g->t->to : trl_rec_move_state(nc->m);
        const struct trl_wf_state *ws = find_state(g->w, st);
        const char *l = ws ? (nc->zh ? ws->labels.zh : ws->labels.en) : NULL;
        return trl_buf_adds(value, l && *l ? l : st) ? TRL_ENOMEM : 0;
    }
    if (strcmp(name, "name") == 0) return value_text(nc->m, NULL, TRL_COL_NAME, value);
    if (strcmp(name, "owner") == 0 || strcmp(name, "requester") == 0)
        return value_text(nc->m, NULL, TRL_COL_OWNER, value);
    if (strcmp(name, "title") == 0) {
        const struct trl_field *tf = g->ty->title_field ? trl_type_field(g->ty, g->ty->title_field,
                                                                         strlen(g->ty->title_field))
                                                        : NULL;
        return tf ? value_text(nc->m, tf, (int)tf->id, value)
                  : value_text(nc->m, NULL, TRL_COL_NAME, value);
    }
    const struct trl_field *f = trl_type_field(g->ty, name, n);
    if (f && g->cx->acc == NULL) return value_text(nc->m, f, (int)f->id, value);
    return TRL_ENOTFOUND;
}

/* Sends kind to user (their language) about the record of g. */
static int send_note(struct runner *g, struct trl_rec_move *m, const char *user, const char *kind,
                     const struct trl_labels *custom, uint64_t task)
{
    struct trl_user *u = malloc(sizeof(*u));
    if (!u) return TRL_ENOMEM;
    int rc = trl_auth_user_get(g->txn, user, u);
    if (rc == TRL_ENOTFOUND || (!rc && !u->active)) {
        free(u);
        return 0; /* nobody to tell */
    }
    if (rc) {
        free(u);
        return rc;
    }
    bool zh = strcmp(u->lang, "zh-CN") == 0;
    const char *body = NULL, *subject = NULL;
    if (custom && (custom->en[0] || custom->zh[0]))
        body = zh ? (custom->zh[0] ? custom->zh : custom->en)
                  : (custom->en[0] ? custom->en : custom->zh);
    if (!trl_notify_template(kind, u->lang)) {
        subject = zh ? "{{title}}:{{state}}" : "{{title}}: {{state}}";
        if (!body)
            body = zh ? "**{{title}}** 现在处于 {{state}}。" : "**{{title}}** is now {{state}}.";
    } else if (body) {
        subject = trl_notify_template(kind, u->lang)->subject;
    }
    struct note_ctx nc = {.g = g, .m = m, .zh = zh};
    struct trl_diag nd;
    trl_diag_init(&nd);
    struct trl_notify_msg msg = {.user = u->name,
                                 .lang = u->lang,
                                 .kind = kind,
                                 .subject = subject,
                                 .body = body,
                                 .lookup = note_lookup,
                                 .ud = &nc,
                                 .link = {.type = g->ty->name, .record = g->id, .task = task},
                                 .d = &nd};
    rc = trl_notify_send(g->txn, &msg, g->cx->now_ms, NULL);
    if (rc && rc != TRL_EMAPFULL && rc != TRL_EIO && rc != TRL_ENOMEM) {
        /* A message that cannot be rendered must not stop the business change. */
        trl_log(TRL_LOG_WARN, "notification %s to %s not sent: %s", kind, user, nd.message);
        rc = 0;
    }
    trl_diag_reset(&nd);
    free(u);
    return rc;
}

struct role_note {
    struct runner *g;
    struct trl_rec_move *m;
    const struct trl_wf_action *a;
    const char *kind;
    size_t n;
};

static int note_role(void *ud, const struct trl_user *u)
{
    struct role_note *r = ud;
    if (!u->active || r->n >= 200) return 0;
    r->n++;
    return send_note(r->g, r->m, u->name, r->kind, &r->a->message, 0);
}

static int notify_action(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                         const char *kind)
{
    if (strcmp(a->ref, "role") == 0) {
        struct role_note r = {.g = g, .m = m, .a = a, .kind = kind};
        return trl_auth_role_users(g->txn, a->name, note_role, &r);
    }
    char user[64] = "";
    if (strcmp(a->ref, "user") == 0) {
        snprintf(user, sizeof(user), "%s", a->name);
    } else if (strcmp(a->ref, "requester") == 0) {
        col_str(m, TRL_COL_OWNER, user, sizeof(user));
    } else {
        const struct trl_field *f = trl_type_field(g->ty, a->name, strlen(a->name));
        if (f) col_str(m, (int)f->id, user, sizeof(user));
    }
    return user[0] ? send_note(g, m, user, kind, &a->message, 0) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Creation, SLA status, timers
 */
static const struct trl_wf_state *initial_state(const struct trl_workflow *w)
{
    for (size_t i = 0; i < w->nstates; i++)
        if (w->states[i].initial) return &w->states[i];
    return NULL;
}

static int create_guard(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m)
{
    struct runner *g = ud;
    if (phase == TRL_MOVE_LOADED) return 0;
    int rc = g->w->assignment.on_create ? apply_assignment(g, m, NULL) : 0;
    struct trl_buf sla;
    trl_buf_init(&sla);
    if (!rc) rc = sla_on_move(g, m, "", trl_rec_move_state(m), &sla);
    if (!rc && !g->assigned[0] && !sla.len) rc = TRL_MOVE_STOP; /* nothing happened */
    /* extra holds members without a leading comma: "assigned":{...},"sla":[...] */
    if (!rc && g->assigned[0] && trl_buf_adds(g->extra, g->assigned + 1)) rc = TRL_ENOMEM;
    if (!rc && sla.len && trl_buf_adds(g->extra, g->assigned[0] ? sla.data : sla.data + 1))
        rc = TRL_ENOMEM;
    trl_buf_free(&sla);
    if (!rc) g->wrote = true;
    return rc;
}

int trl_wf_on_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id, bool *rewritten)
{
    if (rewritten) *rewritten = false;
    const struct trl_workflow *w = trl_wf_by_type(s, ty->name);
    const struct trl_wf_state *init = w ? initial_state(w) : NULL;
    if (!init) return 0;
    bool any = false;
    for (size_t p = 0; p < w->nslas && !any; p++)
        for (size_t k = 0; k < w->slas[p].ntargets && !any; k++)
            any = in_list(w->slas[p].targets[k].start, w->slas[p].targets[k].nstart, init->name);
    bool assign = w->assignment.nrules && w->assignment.on_create;
    if (!any && !assign) return 0; /* the common case costs nothing */
    struct trl_rec_ctx ecx = *cx;
    ecx.acc = NULL;
    struct trl_wf_run run = {0};
    struct trl_buf extra;
    trl_buf_init(&extra);
    struct runner g = {
        .txn = t, .cx = &ecx, .ty = ty, .w = w, .id = id, .run = &run, .extra = &extra};
    /* An assignment or a started clock is an event of its own: a second version. */
    struct trl_rec_move_opts o = {
        .action = assign ? "assign" : "sla", .guard = create_guard, .ud = &g, .extra = &extra};
    int rc = trl_rec_move(t, &ecx, ty, id, 0, NULL, 0, &o, NULL);
    if (!rc && rewritten) *rewritten = g.wrote;
    trl_buf_free(&extra);
    return rc;
}

struct sla_out {
    const struct trl_wf_set *s;
    const struct trl_workflow *w;
    int64_t now;
    const char *lang;
    struct trl_buf *out;
    size_t n;
};

static int sla_item(void *ud, const struct trl_sla_clock *c)
{
    struct sla_out *o = ud;
    const struct trl_wf_sla *pol = o->w ? policy_named(o->w, c->policy) : NULL;
    const struct trl_wf_sla_target *tg = target_named(pol, c->target);
    const struct trl_cal *cal = pol ? cal_of(o->w, pol) : trl_wf_calendar(o->s, c->calendar);
    if (!cal) cal = o->s->always;
    if (o->n++ && trl_buf_addc(o->out, ',')) return TRL_ENOMEM;
    size_t mark = o->out->len;
    int rc = trl_sla_json(c, cal, o->now, o->out);
    if (rc || !tg) return rc;
    o->out->len = mark + (o->out->len - mark) - 1; /* reopen: add the labels */
    struct trl_labels lb = {.en = tg->labels.en[0] ? tg->labels.en : tg->name,
                            .zh = tg->labels.zh[0] ? tg->labels.zh : tg->name};
    return trl_buf_adds(o->out, ",\"labels\":") || add_labels(o->out, &lb) ||
                   trl_buf_addc(o->out, '}')
               ? TRL_ENOMEM
               : 0;
}

int trl_wf_sla_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                    const struct trl_type *ty, uint64_t id, struct trl_buf *out)
{
    int rc = trl_rec_visible(t, cx, ty, id);
    if (rc) return rc;
    struct sla_out o = {.s = s, .w = trl_wf_by_type(s, ty->name), .now = cx->now_ms, .out = out};
    if (trl_buf_adds(out, "{\"items\":[")) return TRL_ENOMEM;
    rc = trl_sla_each(t, ty->name, id, sla_item, &o);
    return rc ? rc : trl_buf_adds(out, "]}") ? TRL_ENOMEM : 0;
}

struct fire_ctx {
    const struct trl_rec_ctx *cx;
    const struct trl_wf_set *s;
};

/* The SLA phase's actions: set and notify inside one history event, then transitions. */
static int sla_guard(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m)
{
    struct runner *g = ud;
    if (phase == TRL_MOVE_LOADED) return 0;
    const char *phase_name = g->phase;
    char what[128];
    snprintf(what, sizeof(what), "SLA %s (%s)", g->vars[1], phase_name);
    int rc = run_list(g, m, g->acts, g->nacts, what, "slas[%zu].actions[%zu]", 0,
                      strcmp(phase_name, "warning") == 0 ? "sla_warning" : "sla_breach");
    if (rc) return rc;
    return trl_buf_adds(g->extra, "\"sla\":{\"target\":") ||
                   trl_buf_add_json_str(g->extra, g->vars[1], strlen(g->vars[1])) ||
                   trl_buf_printf(g->extra, ",\"phase\":\"%s\"}", phase_name) ||
                   trl_buf_adds(g->extra, g->assigned)
               ? TRL_ENOMEM
               : 0;
}

/* A step's time limit passed: its open tasks go to the escalation target, one history event. */
static int escalate_guard(void *ud, enum trl_rec_move_phase phase, struct trl_rec_move *m)
{
    struct runner *g = ud;
    if (phase == TRL_MOVE_LOADED) return 0;
    char to[TRL_APPR_MAX_APPROVERS][64];
    uint64_t tasks[TRL_APPR_MAX_APPROVERS] = {0};
    size_t nto = 0;
    const struct trl_appr_step *st = &g->def->steps[g->res.step];
    int rc =
        trl_appr_escalate(g->txn, g->res.approval, g->res.step, st, g->cx->now_ms, to, tasks, &nto);
    if (rc) return rc;
    if (!nto) return TRL_MOVE_STOP; /* nothing changed hands: no event */
    rc = trl_buf_printf(g->extra, "\"approval\":{\"id\":%llu,\"name\":",
                        (unsigned long long)g->res.approval) ||
         trl_buf_add_json_str(g->extra, g->def->name, strlen(g->def->name)) ||
         trl_buf_adds(g->extra, ",\"step\":") ||
         trl_buf_add_json_str(g->extra, st->name, strlen(st->name)) ||
         trl_buf_adds(g->extra, ",\"escalated_to\":[");
    for (size_t k = 0; k < nto && !rc; k++)
        rc = (k && trl_buf_addc(g->extra, ',')) ||
             trl_buf_add_json_str(g->extra, to[k], strlen(to[k]));
    if (rc || trl_buf_adds(g->extra, "]}")) return TRL_ENOMEM;
    for (size_t k = 0; k < nto && !rc; k++)
        rc = note_task(g, m, g->def, st, to[k], tasks[k]);
    return rc;
}

static int fire_escalation(struct fire_ctx *f, struct trl_txn *t, const char *owner,
                           const char *payload, size_t pn)
{
    unsigned long long aid;
    size_t si;
    if (sscanf(owner, "appr/%llu/%zu", &aid, &si) != 2) return 0;
    cJSON *j = cJSON_ParseWithLength(payload, pn);
    const cJSON *wn = cJSON_GetObjectItemCaseSensitive(j, "workflow");
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(j, "record");
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(j, "approval");
    const struct trl_workflow *w =
        cJSON_IsString(wn) ? trl_wf_by_name(f->s, wn->valuestring) : NULL;
    const struct trl_type *ty =
        cJSON_IsString(tn) ? trl_catalog_type(f->cx->cat, tn->valuestring) : NULL;
    uint64_t rec = cJSON_IsNumber(rn) ? (uint64_t)rn->valuedouble : 0;
    const struct trl_appr_def *def = NULL;
    for (size_t i = 0; w && cJSON_IsString(an) && i < w->napprovals && !def; i++)
        if (strcmp(w->approvals[i].name, an->valuestring) == 0) def = &w->approvals[i];
    cJSON_Delete(j);
    if (!w || !ty || !def || si >= def->nsteps || !rec) return 0; /* the definition changed */
    struct trl_rec_ctx ecx = *f->cx;
    ecx.acc = NULL;
    struct trl_wf_run run = {0};
    struct trl_buf extra;
    trl_buf_init(&extra);
    struct runner g = {.txn = t,
                       .cx = &ecx,
                       .ty = ty,
                       .w = w,
                       .id = rec,
                       .run = &run,
                       .extra = &extra,
                       .engine = true,
                       .def = def};
    g.res.approval = aid;
    g.res.step = si;
    struct trl_rec_move_opts o = {
        .action = "approval", .guard = escalate_guard, .ud = &g, .extra = &extra};
    int rc = trl_rec_move(t, &ecx, ty, rec, 0, NULL, 0, &o, NULL);
    trl_buf_free(&extra);
    if (rc == TRL_ENOTFOUND) rc = 0; /* the record is gone */
    return rc;
}

struct sla_fire {
    struct runner *g;
    const struct trl_workflow *w;
    const struct trl_type *ty;
    uint64_t rec;
    const struct trl_wf_action *acts;
    size_t n;
    const char *phase;
    const char *policy; /* the clock's policy */
    const char *detail; /* JSON for the SLA hooks */
};

/* In a nested txn: the set/notify/assign/create actions in one history event, then the
 * transitions, then the app's sla_warning / sla_breach hook. */
static int sla_actions(struct trl_txn *nt, void *arg)
{
    struct sla_fire *sf = arg;
    struct runner *g = sf->g;
    g->txn = nt;
    trl_buf_clear(g->extra);
    struct trl_rec_move_opts o = {.action = "sla", .guard = sla_guard, .ud = g, .extra = g->extra};
    /* Nobody reads an answer here: nothing is rendered. */
    int rc = trl_rec_move(nt, g->cx, sf->ty, sf->rec, 0, NULL, 0, &o, NULL);
    for (size_t k = 0; k < sf->n && !rc; k++) {
        if (sf->acts[k].kind != TRL_ACT_TRANSITION) continue;
        struct trl_wf_run tr = {.transition = sf->acts[k].ref, .comment = sf->phase};
        struct runner ep = {.engine = true, .by = "sla"};
        rc = transition(nt, g->cx, sf->ty, sf->w, sf->rec, &tr, &ep, 0, NULL);
    }
    if (!rc) {
        struct trl_rec_event ev = {.kind = strcmp(sf->phase, "warning") == 0 ? TRL_EV_SLA_WARNING
                                                                             : TRL_EV_SLA_BREACH,
                                   .ty = sf->ty,
                                   .name = sf->policy,
                                   .detail = sf->detail};
        rc = fire_stored(nt, g->cx, &ev, sf->rec);
    }
    return rc;
}

static int fire_one(void *ud, struct trl_txn *t, int64_t due, const char *owner,
                    const char *payload, size_t pn)
{
    struct fire_ctx *f = ud;
    (void)due;
    if (strncmp(owner, "appr/", 5) == 0) return fire_escalation(f, t, owner, payload, pn);
    if (strncmp(owner, "job/", 4) == 0) {
        const struct trl_rec_events *ev = f->cx->ev;
        if (ev && ev->timer) return ev->timer(ev->ud, t, f->cx, owner, payload, pn);
        trl_log(TRL_LOG_WARN, "timer %s fired with no hooks to run it", owner);
        return 0;
    }
    /* owner: "sla/<type>/<record>/<target>" */
    char type[64], target[64];
    unsigned long long rec;
    if (sscanf(owner, "sla/%63[^/]/%llu/%63s", type, &rec, target) != 3) return 0;
    cJSON *j = cJSON_ParseWithLength(payload, pn);
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(j, "phase");
    char phase[16];
    snprintf(phase, sizeof(phase), "%s", cJSON_IsString(ph) ? ph->valuestring : "");
    cJSON_Delete(j);
    struct trl_sla_clock c;
    int rc = trl_sla_get(t, type, rec, target, &c);
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    bool apply;
    if ((rc = trl_sla_mark(t, &c, phase, f->cx->now_ms, &apply)) || !apply) return rc;
    const struct trl_workflow *w = trl_wf_by_type(f->s, type);
    const struct trl_wf_sla *pol = w ? policy_named(w, c.policy) : NULL;
    const struct trl_wf_sla_target *tg = target_named(pol, c.target);
    const struct trl_type *ty = trl_catalog_type(f->cx->cat, type);
    if (!tg || !ty) return 0;
    bool warn = strcmp(phase, "warning") == 0;
    const struct trl_wf_action *acts = warn ? tg->on_warning : tg->on_breach;
    size_t n = warn ? tg->nwarning : tg->nbreach;
    char due_s[64], pct[16];
    {
        /* The due time as the calendar's people read it: local time and zone. */
        const struct trl_cal *cal = pol ? cal_of(w, pol) : NULL;
        const struct trl_tz *tz = cal ? trl_cal_tz(cal) : NULL;
        int32_t off = tz ? trl_tz_offset(tz, c.due_at / 1000) : 0;
        char ts[40];
        trl_datetime_format(c.due_at + (int64_t)off * 1000, ts);
        /* "2026-11-26T18:00:00.000Z" -> "2026-11-26 18:00 Asia/Shanghai" */
        snprintf(due_s, sizeof(due_s), "%.10s %.5s %s", ts, ts + 11, tz ? trl_tz_name(tz) : "UTC");
    }
    snprintf(pct, sizeof(pct), "%u", warn ? tg->warn_percent : 100);
    const char *vars[] = {"target",  c.target, "phase",  phase,    "due", due_s,
                          "percent", pct,      "policy", c.policy, NULL};
    struct trl_rec_ctx ecx = *f->cx;
    ecx.acc = NULL;
    struct trl_wf_run run = {0};
    struct trl_buf extra;
    trl_buf_init(&extra);
    struct runner g = {.txn = t,
                       .cx = &ecx,
                       .ty = ty,
                       .w = w,
                       .id = rec,
                       .run = &run,
                       .extra = &extra,
                       .engine = true,
                       .acts = acts,
                       .nacts = n,
                       .phase = phase,
                       .vars = vars};
    char detail[512];
    {
        char ts[40];
        trl_datetime_format(c.due_at, ts);
        snprintf(detail, sizeof(detail),
                 "{\"policy\":\"%s\",\"target\":\"%s\",\"phase\":\"%s\",\"due_at\":\"%s\","
                 "\"percent\":%s}",
                 c.policy, c.target, phase, ts, pct);
    }
    struct sla_fire sf = {.g = &g,
                          .w = w,
                          .ty = ty,
                          .rec = rec,
                          .acts = acts,
                          .n = n,
                          .phase = phase,
                          .policy = c.policy,
                          .detail = detail};
    /* All of the phase's actions, or none: a refused one leaves the clock marked and a history
     * event saying which action failed. */
    rc = trl_txn_nested(t, sla_actions, &sf);
    trl_buf_free(&extra);
    if (rc && rc != TRL_EMAPFULL && rc != TRL_EIO && rc != TRL_ENOMEM && rc != TRL_ENOTFOUND) {
        char why[300];
        snprintf(why, sizeof(why), "%.290s",
                 ecx.d && ecx.d->message[0] ? ecx.d->message : "refused");
        trl_log(TRL_LOG_WARN, "SLA %s of %s %llu: the actions were refused: %s", phase, type, rec,
                why);
        if (ecx.d) trl_diag_reset(ecx.d);
        struct trl_buf ex2;
        trl_buf_init(&ex2);
        rc = trl_buf_adds(&ex2, "\"sla\":{\"target\":") ||
                     trl_buf_add_json_str(&ex2, c.target, strlen(c.target)) ||
                     trl_buf_printf(&ex2, ",\"phase\":\"%s\",\"actions_refused\":", phase) ||
                     trl_buf_add_json_str(&ex2, why, strlen(why)) || trl_buf_addc(&ex2, '}')
                 ? TRL_ENOMEM
                 : 0;
        struct trl_rec_move_opts o2 = {.action = "sla", .extra = &ex2};
        if (!rc) rc = trl_rec_move(t, &ecx, ty, rec, 0, NULL, 0, &o2, NULL);
        trl_buf_free(&ex2);
    }
    if (rc == TRL_ENOTFOUND) rc = 0; /* the record is gone */
    return rc;
}

int trl_wf_fire_timers(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                       size_t max, size_t *fired)
{
    struct fire_ctx f = {.cx = cx, .s = s};
    return trl_timer_fire(t, cx->now_ms, max, fire_one, &f, fired);
}

/* ---------------------------------------------------------------------------------------------
 * Calendars as definitions
 */
int trl_wf_calendar_put(struct trl_txn *t, const char *name, const char *json, size_t n,
                        const char *app, bool *changed, struct trl_diag *d)
{
    *changed = false;
    int rc = trl_json_check(json, n, 32, d);
    if (rc) return rc;
    struct trl_cal *cal = NULL;
    if ((rc = trl_cal_parse(json, n, NULL, &cal, d))) return rc;
    bool same_name = strcmp(trl_cal_name(cal), name) == 0;
    trl_cal_free(cal);
    if (!same_name) {
        trl_diag_add_ferr(d, "name", "schema", "must match the name it is saved as");
        trl_diag_set(d, TRL_EVALIDATION, "name: the calendar is saved as '%s'", name);
        trl_diag_zh(d, "name:该日历保存的名称为“%s”", name);
        return TRL_EVALIDATION;
    }
    char *canon = trl_schema_canonical_json(json, n, d);
    if (!canon) return d->code ? d->code : TRL_ENOMEM;
    char *old = NULL, *oldapp = NULL;
    rc = trl_meta_get(t, "calendar", name, &old);
    if (rc == TRL_ENOTFOUND) rc = 0;
    if (trl_meta_get(t, "calendarapp", name, &oldapp) != 0) oldapp = NULL;
    if (!app) app = oldapp ? oldapp : "";
    if (!rc && !(old && oldapp && strcmp(old, canon) == 0 && strcmp(oldapp, app) == 0)) {
        rc = trl_meta_put(t, "calendar", name, canon, strlen(canon));
        if (!rc) rc = trl_meta_put(t, "calendarapp", name, app, strlen(app));
        uint64_t ver;
        if (!rc) rc = trl_txn_seq_next(t, "schema_version", &ver);
        if (!rc) *changed = true;
    }
    free(old);
    free(oldapp);
    free(canon);
    return rc;
}

struct cal_user {
    const char *cal;
    char wf[128];
};

static int find_cal_user(void *ud, const char *name, const char *json, size_t n)
{
    struct cal_user *u = ud;
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *slas = cJSON_GetObjectItemCaseSensitive(j, "slas");
    for (const cJSON *p = cJSON_IsArray(slas) ? slas->child : NULL; p && !u->wf[0]; p = p->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(p, "calendar");
        if (cJSON_IsString(c) && strcmp(c->valuestring, u->cal) == 0)
            snprintf(u->wf, sizeof(u->wf), "%s", name);
    }
    /* Approval steps' time limits name calendars too. */
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(j, "approvals");
    for (const cJSON *a = cJSON_IsArray(apps) ? apps->child : NULL; a && !u->wf[0]; a = a->next) {
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(a, "steps");
        for (const cJSON *st = cJSON_IsArray(steps) ? steps->child : NULL; st && !u->wf[0];
             st = st->next) {
            const cJSON *tl = cJSON_GetObjectItemCaseSensitive(st, "time_limit");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(tl, "calendar");
            if (cJSON_IsString(c) && strcmp(c->valuestring, u->cal) == 0)
                snprintf(u->wf, sizeof(u->wf), "%s", name);
        }
    }
    cJSON_Delete(j);
    return 0;
}

int trl_wf_calendar_delete(struct trl_txn *t, const char *name, struct trl_diag *d)
{
    struct cal_user u = {.cal = name};
    int rc = trl_meta_each(t, "workflow", find_cal_user, &u);
    if (rc) return rc;
    if (u.wf[0]) {
        trl_diag_set(d, TRL_ECONFLICT,
                     "workflow '%s' uses calendar '%s' (an SLA policy or an approval step's time "
                     "limit)",
                     u.wf, name);
        trl_diag_zh(d, "工作流“%s”使用了日历“%s”(SLA 策略或审批步骤时限)", u.wf, name);
        trl_diag_rule(d, "in_use", "");
        return TRL_ECONFLICT;
    }
    return delete_definition(t, "calendar", "calendarapp", name, "calendar", "日历", d);
}

/* ---------------------------------------------------------------------------------------------
 * Deletion
 */
struct del_ctx {
    struct trl_txn *t;
    const struct trl_wf_set *s;
    const struct trl_workflow *w;
    int64_t now;
};

static int stop_clock(void *ud, const struct trl_sla_clock *c)
{
    struct del_ctx *dc = ud;
    if (c->stopped) return 0;
    struct trl_sla_clock cc = *c;
    const struct trl_wf_sla *pol = dc->w ? policy_named(dc->w, c->policy) : NULL;
    const struct trl_cal *cal = pol ? cal_of(dc->w, pol) : NULL;
    if (!cal) cal = dc->s->always;
    return trl_sla_stop(dc->t, &cc, cal, dc->now);
}

int trl_wf_on_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id)
{
    uint64_t aid;
    int rc = trl_appr_active(t, ty->name, id, &aid, NULL, 0);
    if (rc == 0) rc = trl_appr_finish(t, aid, "cancelled", cx->now_ms);
    if (rc == TRL_ENOTFOUND) rc = 0;
    struct del_ctx dc = {.t = t, .s = s, .w = trl_wf_by_type(s, ty->name), .now = cx->now_ms};
    if (!rc) rc = trl_sla_each(t, ty->name, id, stop_clock, &dc);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Assignment
 */
static int apply_assignment(struct runner *g, struct trl_rec_move *m, const char *only)
{
    const struct trl_assign_def *a = &g->w->assignment;
    if (!a->nrules || !a->field) return 0;
    /* A dry run answers whether the change may happen; whom it would go to is not its
     * question (and picking would advance counters and send messages). */
    if (g->run && g->run->dry_run) return 0;
    const struct trl_field *f = trl_type_field(g->ty, a->field, strlen(a->field));
    if (!f) return 0;
    const char **open = calloc(g->w->nstates + 1, sizeof(*open));
    if (!open) return TRL_ENOMEM;
    for (size_t i = 0, k = 0; i < g->w->nstates; i++)
        if (strcmp(g->w->states[i].category, "done") != 0) open[k++] = g->w->states[i].name;
    int rc = 0;
    for (size_t i = 0; i < a->nrules && !rc; i++) {
        const struct trl_assign_rule *r = &a->rules[i];
        if (only && strcmp(r->name, only) != 0) continue;
        if (r->cond) {
            bool ok;
            struct trl_expr_env env = {.user = g->cx->who, .now_ms = g->cx->now_ms};
            if ((rc = trl_expr_eval(r->cond, trl_rec_move_get, m, &env, &ok, g->cx->d))) break;
            if (!ok) continue;
        }
        char skills[512] = "", region[64] = "", rr[160];
        if (r->skills_field) {
            const struct trl_field *sf =
                trl_type_field(g->ty, r->skills_field, strlen(r->skills_field));
            if (sf) col_str(m, (int)sf->id, skills, sizeof(skills));
        }
        if (r->region_field) {
            const struct trl_field *rf =
                trl_type_field(g->ty, r->region_field, strlen(r->region_field));
            if (rf) col_str(m, (int)rf->id, region, sizeof(region));
        }
        snprintf(rr, sizeof(rr), "rr:%s:%s", g->w->name, r->name);
        struct trl_assign_subject sub = {.cx = g->cx,
                                         .ty = g->ty,
                                         .field = a->field,
                                         .open = open,
                                         .skills = skills,
                                         .region = region,
                                         .rr_key = rr};
        struct trl_diag pd;
        trl_diag_init(&pd);
        rc = trl_assign_pick(g->txn, r, &sub, g->assignee, &pd);
        trl_diag_reset(&pd);
        if (rc == TRL_ENOTFOUND) {
            rc = 0; /* nobody fits this rule: the next one may */
            continue;
        }
        if (rc) break;
        char before[64];
        col_str(m, (int)f->id, before, sizeof(before));
        if (strcmp(before, g->assignee) == 0) break; /* already theirs */
        struct trl_value v = {.kind = TRL_V_BYTES, .s = g->assignee, .n = strlen(g->assignee)};
        if ((rc = trl_rec_move_set_value(m, f, &v))) break;
        snprintf(g->assigned, sizeof(g->assigned),
                 ",\"assigned\":{\"to\":\"%s\",\"rule\":\"%s\",\"from\":%s%s%s}", g->assignee,
                 r->name, before[0] ? "\"" : "", before[0] ? before : "null",
                 before[0] ? "\"" : "");
        rc = send_note(g, m, g->assignee, "assigned", NULL, 0);
        break;
    }
    free(open);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Creating related records
 */
/* A source value as an input for the new record; text lives in arena. */
static int value_input(struct trl_rec_move *m, const struct trl_type *ty, const char *col_name,
                       struct trl_arena *arena, struct trl_input *in)
{
    in->kind = TRL_IN_NULL;
    int col = -1;
    const struct trl_field *f = trl_type_field(ty, col_name, strlen(col_name));
    if (f)
        col = (int)f->id;
    else if (strcmp(col_name, "id") == 0)
        col = TRL_COL_ID;
    else if (strcmp(col_name, "name") == 0)
        col = TRL_COL_NAME;
    else if (strcmp(col_name, "owner") == 0)
        col = TRL_COL_OWNER;
    else if (strcmp(col_name, "org") == 0)
        col = TRL_COL_ORG;
    else if (strcmp(col_name, "state") == 0)
        col = TRL_COL_STATE;
    if (col < 0) return 0;
    struct trl_value v = {0};
    trl_rec_move_get(m, col, &v);
    if (v.kind == TRL_V_NULL) return 0;
    char tmp[48];
    const char *text = NULL;
    size_t tn = 0;
    enum trl_in_kind kind = TRL_IN_STRING;
    if (v.kind == TRL_V_BYTES) {
        text = v.s, tn = v.n;
        kind = f && f->type == TRL_FT_JSON ? TRL_IN_JSON : TRL_IN_STRING;
    } else if (f && f->type == TRL_FT_BOOL) {
        in->kind = TRL_IN_BOOL;
        in->b = v.i != 0;
        return 0;
    } else if (f && f->type == TRL_FT_DATE) {
        trl_date_format((int32_t)v.i, tmp);
    } else if (f && f->type == TRL_FT_DATETIME) {
        trl_datetime_format(v.i, tmp);
    } else if (f && f->type == TRL_FT_DECIMAL) {
        int64_t p = 1, a = v.i < 0 ? -v.i : v.i;
        for (int i = 0; i < f->scale; i++)
            p *= 10;
        snprintf(tmp, sizeof(tmp), "%s%lld.%0*lld", v.i < 0 ? "-" : "", (long long)(a / p),
                 f->scale, (long long)(a % p));
        kind = TRL_IN_NUMBER;
    } else {
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v.i);
        kind = TRL_IN_NUMBER;
    }
    if (!text) text = tmp, tn = strlen(tmp);
    char *c = trl_arena_strndup(arena, text, tn);
    if (!c) return TRL_ENOMEM;
    in->kind = kind;
    in->s = c;
    in->n = tn;
    return 0;
}

static int create_one(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                      const struct trl_type *tt, const cJSON *item, const char *path, uint64_t *id)
{
    struct trl_arena arena;
    trl_arena_init(&arena);
    struct trl_input *in = calloc(a->nsub ? a->nsub : 1, sizeof(*in));
    if (!in) return TRL_ENOMEM;
    int rc = 0;
    for (size_t k = 0; k < a->nsub && !rc; k++) {
        const struct trl_wf_action *s = &a->sub[k];
        in[k].name = s->field;
        if (s->src == TRL_WF_CONST) {
            in[k] = s->val;
            in[k].name = s->field;
        } else if (s->src == TRL_WF_COPY) {
            rc = value_input(m, g->ty, s->ref, &arena, &in[k]);
        } else if (s->src == TRL_WF_ITEM) {
            const cJSON *v =
                cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, s->ref) : NULL;
            char *txt = NULL;
            if (!v || cJSON_IsNull(v)) {
                in[k].kind = TRL_IN_NULL;
            } else if (cJSON_IsBool(v)) {
                in[k].kind = TRL_IN_BOOL;
                in[k].b = cJSON_IsTrue(v);
            } else if (cJSON_IsString(v)) {
                in[k].kind = TRL_IN_STRING;
                txt = trl_arena_strndup(&arena, v->valuestring, strlen(v->valuestring));
                if (!txt) rc = TRL_ENOMEM;
            } else {
                in[k].kind = cJSON_IsNumber(v) ? TRL_IN_NUMBER : TRL_IN_JSON;
                char *p = cJSON_PrintUnformatted(v);
                txt = p ? trl_arena_strndup(&arena, p, strlen(p)) : NULL;
                free(p);
                if (!txt) rc = TRL_ENOMEM;
            }
            in[k].s = txt;
            in[k].n = txt ? strlen(txt) : 0;
        } else {
            const struct trl_principal *who = g->cx->who;
            char tmp[48] = "";
            const char *txt = tmp;
            in[k].kind = TRL_IN_STRING;
            if (strcmp(s->ref, "now") == 0)
                trl_datetime_format(g->cx->now_ms, tmp);
            else if (strcmp(s->ref, "today") == 0)
                trl_date_format(
                    (int32_t)((g->cx->now_ms >= 0 ? g->cx->now_ms : g->cx->now_ms - 86399999) /
                              86400000),
                    tmp);
            else
                txt = !who                              ? ""
                      : strcmp(s->ref, "user.id") == 0  ? who->user
                      : strcmp(s->ref, "user.org") == 0 ? who->org
                                                        : who->region;
            if (!*txt) {
                in[k].kind = TRL_IN_NULL;
            } else {
                char *c = trl_arena_strndup(&arena, txt, strlen(txt));
                if (!c) rc = TRL_ENOMEM;
                in[k].s = c;
                in[k].n = strlen(txt);
            }
        }
    }
    struct trl_rec_ctx ecx = *g->cx;
    ecx.acc = NULL;
    if (!rc) rc = trl_wf_rec_create(g->txn, &ecx, g->w->set, tt, in, a->nsub, id, NULL, NULL);
    if (rc == TRL_EVALIDATION && !g->cx->d->path[0]) {
        char first[200] = "";
        if (g->cx->d->nferrs)
            snprintf(first, sizeof(first), "%s: %s", g->cx->d->ferrs[0].field,
                     g->cx->d->ferrs[0].code);
        trl_diag_set(g->cx->d, TRL_EVALIDATION,
                     "the %s this change creates would be invalid (%s); check the create "
                     "action's field mapping",
                     tt->name, first);
        trl_diag_zh(g->cx->d, "此操作要创建的 %s 无效(%s);请检查创建动作的字段映射", tt->name,
                    first);
        trl_diag_rule(g->cx->d, "action", path);
    }
    free(in);
    trl_arena_free(&arena);
    return rc;
}

static int create_action(struct runner *g, struct trl_rec_move *m, const struct trl_wf_action *a,
                         const char *path)
{
    const struct trl_type *tt = trl_catalog_type(g->cx->cat, a->ref);
    if (!tt) {
        trl_diag_set(g->cx->d, TRL_EVALIDATION, "type %s no longer exists", a->ref);
        trl_diag_zh(g->cx->d, "类型 %s 已不存在", a->ref);
        trl_diag_rule(g->cx->d, "action", path);
        return TRL_EVALIDATION;
    }
    if (g->run && g->run->dry_run) return 0;
    size_t made = 0;
    uint64_t first = 0, last = 0;
    int rc = 0;
    if (a->name) {
        const struct trl_field *lf = trl_type_field(g->ty, a->name, strlen(a->name));
        struct trl_value v = {0};
        if (lf) trl_rec_move_get(m, (int)lf->id, &v);
        cJSON *list = v.kind == TRL_V_BYTES ? cJSON_ParseWithLength(v.s, v.n) : NULL;
        if (list && !cJSON_IsArray(list)) {
            cJSON_Delete(list);
            list = NULL;
        }
        if (list && cJSON_GetArraySize(list) > 500) {
            cJSON_Delete(list);
            trl_diag_set(g->cx->d, TRL_EVALIDATION, "%s holds more than 500 elements", a->name);
            trl_diag_zh(g->cx->d, "%s 的元素超过 500 个", a->name);
            trl_diag_rule(g->cx->d, "action", path);
            return TRL_EVALIDATION;
        }
        for (const cJSON *it = list ? list->child : NULL; it && !rc; it = it->next) {
            uint64_t id;
            rc = create_one(g, m, a, tt, it, path, &id);
            if (!rc) {
                if (!made++) first = id;
                last = id;
            }
        }
        cJSON_Delete(list);
    } else {
        rc = create_one(g, m, a, tt, NULL, path, &first);
        if (!rc) made = 1, last = first;
    }
    if (!rc && made)
        snprintf(g->created, sizeof(g->created),
                 ",\"created\":{\"type\":\"%s\",\"count\":%zu,\"first_id\":%llu,\"last_id\":%llu}",
                 tt->name, made, (unsigned long long)first, (unsigned long long)last);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Record writes with everything the engine adds
 */
/* Fires an event whose record is the stored version of id (opened only when someone listens). */
static int fire_stored(struct trl_txn *t, const struct trl_rec_ctx *cx, struct trl_rec_event *ev,
                       uint64_t id)
{
    if (!trl_rec_wants(cx, ev->ty, ev->kind, ev->name)) return 0;
    struct trl_rec_move *m;
    int rc = trl_rec_view_open(t, cx, ev->ty, id, &m);
    if (rc) return rc;
    ev->rec = m;
    rc = trl_rec_fire(t, cx, ev);
    ev->rec = NULL;
    trl_rec_view_close(m);
    return rc;
}

int trl_wf_rec_create(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                      const struct trl_type *ty, const struct trl_input *in, size_t n, uint64_t *id,
                      uint64_t *version, struct trl_buf *out)
{
    int rc = trl_rec_create(t, cx, ty, in, n, id, out);
    /* What the engine and hooks do next does not inherit the org and owner this create chose. */
    struct trl_rec_ctx ncx = *cx;
    ncx.create_org = ncx.create_owner = NULL;
    cx = &ncx;
    bool rewritten = false;
    if (!rc && s) rc = trl_wf_on_create(t, cx, s, ty, *id, &rewritten);
    struct trl_rec_event ev = {.kind = TRL_EV_AFTER_CREATE, .ty = ty, .op = "create"};
    if (!rc) rc = fire_stored(t, cx, &ev, *id);
    if (rc) return rc;
    if (version) *version = 1;
    if (out && (rewritten || trl_rec_wants(cx, ty, TRL_EV_AFTER_CREATE, NULL))) {
        /* The engine or a hook made another version: answer with the record as it is now. */
        trl_buf_clear(out);
        uint64_t v;
        struct trl_diag d;
        trl_diag_init(&d);
        struct trl_rec_ctx ccx = *cx;
        ccx.d = &d;
        rc = trl_rec_get(t, &ccx, ty, *id, NULL, &v, out);
        if (rc == TRL_ENOTFOUND) {
            /* Deleted or moved out of the caller's sight by a hook. */
            rc = trl_buf_adds(out, "null") ? TRL_ENOMEM : 0;
        } else if (!rc && version) {
            *version = v;
        }
        trl_diag_reset(&d);
    }
    return rc;
}

int trl_wf_rec_patch(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                     const struct trl_type *ty, uint64_t id, uint64_t if_match,
                     const struct trl_input *in, size_t n, struct trl_buf *out)
{
    (void)s;
    struct trl_rec_move *before = NULL;
    int rc = 0;
    bool after = trl_rec_wants(cx, ty, TRL_EV_AFTER_UPDATE, NULL);
    if (after) {
        rc = trl_rec_view_open(t, cx, ty, id, &before);
        if (rc == TRL_ENOTFOUND) rc = 0, after = false; /* trl_rec_patch says so */
        if (rc) return rc;
    }
    size_t mark = out ? out->len : 0;
    uint64_t ver0 = 0;
    if (before) {
        struct trl_value v;
        trl_rec_move_get(before, TRL_COL_VERSION, &v);
        ver0 = (uint64_t)v.i;
    }
    rc = trl_rec_patch(t, cx, ty, id, if_match, in, n, out);
    if (!rc && after) {
        struct trl_rec_move *m;
        if ((rc = trl_rec_view_open(t, cx, ty, id, &m)) == 0) {
            struct trl_value v;
            trl_rec_move_get(m, TRL_COL_VERSION, &v);
            /* A PATCH that changed nothing wrote nothing: no event. */
            if ((uint64_t)v.i != ver0) {
                struct trl_rec_event ev = {
                    .kind = TRL_EV_AFTER_UPDATE, .ty = ty, .rec = m, .old = before, .op = "update"};
                rc = trl_rec_fire(t, cx, &ev);
                if (!rc && out) {
                    out->len = mark;
                    struct trl_diag d;
                    trl_diag_init(&d);
                    struct trl_rec_ctx ccx = *cx;
                    ccx.d = &d;
                    uint64_t vv;
                    rc = trl_rec_get(t, &ccx, ty, id, NULL, &vv, out);
                    if (rc == TRL_ENOTFOUND) rc = trl_buf_adds(out, "null") ? TRL_ENOMEM : 0;
                    trl_diag_reset(&d);
                }
            }
            trl_rec_view_close(m);
        }
    }
    trl_rec_view_close(before);
    return rc;
}

int trl_wf_rec_delete(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_wf_set *s,
                      const struct trl_type *ty, uint64_t id, uint64_t if_match)
{
    struct trl_rec_move *last = NULL;
    int rc = 0;
    if (trl_rec_wants(cx, ty, TRL_EV_AFTER_DELETE, NULL)) {
        rc = trl_rec_view_open(t, cx, ty, id, &last);
        if (rc == TRL_ENOTFOUND) rc = 0; /* trl_rec_delete says so */
        if (rc) return rc;
    }
    rc = trl_rec_delete(t, cx, ty, id, if_match);
    if (!rc && s) rc = trl_wf_on_delete(t, cx, s, ty, id);
    if (!rc && last) {
        struct trl_rec_event ev = {
            .kind = TRL_EV_AFTER_DELETE, .ty = ty, .rec = last, .op = "delete"};
        rc = trl_rec_fire(t, cx, &ev);
    }
    trl_rec_view_close(last);
    return rc;
}
