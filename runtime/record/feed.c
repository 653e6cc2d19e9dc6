/* feed.c — the change feed: the global change log read in order, and each change as a caller may
 * see it (GET /api/v1/events). The visibility and field rules are the history's (history.c uses
 * the same helpers), so a change reaches exactly the callers who could read it in the history. */
#include "record_int.h"

#include "codec/codec.h"

#include <string.h>

int trl_rec_log_last(struct trl_txn *t, uint64_t *seq)
{
    struct trl_cursor *c = NULL;
    *seq = 0;
    int rc = trl_cursor_open(t, TRL_DB_LOG, &c);
    if (rc) return rc;
    rc = trl_cursor_seek_before(c, NULL, 0);
    if (rc == 0) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n == 8)
            *seq = trl_get_u64be(k.p);
        else
            rc = TRL_ECORRUPT;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

int trl_rec_log_read(struct trl_txn *t, uint64_t after, struct trl_rec_change *out, size_t max,
                     size_t *n)
{
    struct trl_cursor *c = NULL;
    *n = 0;
    if (after == UINT64_MAX || max == 0) return 0;
    unsigned char k[8];
    trl_put_u64be(k, after + 1);
    int rc = trl_cursor_open(t, TRL_DB_LOG, &c);
    if (rc) return rc;
    int mv;
    for (mv = trl_cursor_seek(c, k, 8); mv == 0 && *n < max; mv = trl_cursor_next(c)) {
        struct trl_slice key, v;
        trl_cursor_get(c, &key, &v);
        if (key.n != 8 || v.n != 16) {
            rc = TRL_ECORRUPT;
            break;
        }
        struct trl_rec_change *ch = &out[(*n)++];
        const unsigned char *p = v.p;
        ch->seq = trl_get_u64be(key.p);
        ch->type_id = trl_get_u32be(p);
        ch->id = trl_get_u64be(p + 4);
        ch->hist_seq = trl_get_u32be(p + 12);
    }
    trl_cursor_close(c);
    if (!rc && mv && mv != TRL_ENOTFOUND) rc = mv;
    return rc;
}

bool trl_rec_hist_visible(const struct trl_rec_ctx *cx, const struct trl_type *ty,
                          const struct trl_record *r)
{
    if (!cx->acc || (cx->acc->read & TRL_SCOPE_ALL)) return true;
    return r && trl_rec_in_scope(cx, ty, cx->acc->read, r);
}

/* ---------------------------------------------------------------------------------------------
 * History events are JSON objects that history.c writes (no insignificant whitespace, members
 * in a fixed order, "changes" last); trl_json_each_member still accepts whitespace, and refuses
 * anything it cannot follow as TRL_ECORRUPT rather than guessing.
 */
struct changes_filter {
    const struct trl_rec_ctx *cx;
    const struct trl_type *ty;
    struct trl_buf *out;
    size_t kept;
};

/* One member of "changes": kept when the type still has the field and the caller may see it. */
static int change_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct changes_filter *f = ud;
    const struct trl_field *fd = kn >= 2 ? trl_type_field(f->ty, k + 1, kn - 2) : NULL;
    if (!fd || trl_rec_field_mode(f->cx, f->ty, fd) == TRL_FIELD_HIDDEN) return 0;
    int rc = (f->kept++ && trl_buf_addc(f->out, ',')) || trl_buf_add(f->out, k, kn) ||
             trl_buf_addc(f->out, ':') || trl_buf_add(f->out, v, vn);
    return rc ? TRL_ENOMEM : 0;
}

struct members {
    struct changes_filter cf;
    bool omit_seq;
    bool lead_comma;
    size_t written;
    char *action;
    size_t action_n;
};

static bool key_is(const char *k, size_t kn, const char *name)
{
    size_t n = strlen(name);
    return kn == n + 2 && memcmp(k + 1, name, n) == 0;
}

static int event_member(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    struct members *m = ud;
    struct trl_buf *out = m->cf.out;
    if (m->omit_seq && key_is(k, kn, "seq")) return 0;
    if (m->action && key_is(k, kn, "action") && vn >= 2 && vn - 2 < m->action_n) {
        memcpy(m->action, v + 1, vn - 2);
        m->action[vn - 2] = 0;
    }
    if ((m->written++ || m->lead_comma) && trl_buf_addc(out, ',')) return TRL_ENOMEM;
    if (trl_buf_add(out, k, kn) || trl_buf_addc(out, ':')) return TRL_ENOMEM;
    if (!key_is(k, kn, "changes")) return trl_buf_add(out, v, vn) ? TRL_ENOMEM : 0;
    m->cf.kept = 0;
    if (trl_buf_addc(out, '{')) return TRL_ENOMEM;
    int rc = trl_json_each_member(v, vn, change_member, &m->cf);
    if (!rc && trl_buf_addc(out, '}')) rc = TRL_ENOMEM;
    return rc;
}

int trl_rec_hist_members(const struct trl_rec_ctx *cx, const struct trl_type *ty, const char *ev,
                         size_t n, bool omit_seq, bool lead_comma, char *action, size_t action_n,
                         struct trl_buf *out)
{
    struct members m = {.cf = {.cx = cx, .ty = ty, .out = out},
                        .omit_seq = omit_seq,
                        .lead_comma = lead_comma,
                        .action = action,
                        .action_n = action_n};
    if (action && action_n) action[0] = 0;
    size_t len = out->len;
    int rc = trl_json_each_member(ev, n, event_member, &m);
    if (rc && out->data) out->data[out->len = len] = 0;
    return rc;
}

int trl_rec_change_json(struct trl_txn *t, const struct trl_rec_ctx *cx, const struct trl_type *ty,
                        const struct trl_rec_change *ch, bool *visible, char action[32],
                        struct trl_buf *out)
{
    struct trl_record r;
    *visible = false;
    action[0] = 0;
    int lr = trl_rec_load(t, ty, ch->id, NULL, &r);
    if (lr && lr != TRL_ENOTFOUND) return lr;
    bool live = lr == 0;
    int rc = 0;
    if (!trl_rec_hist_visible(cx, ty, live ? &r : NULL)) goto out;
    unsigned char k[16];
    struct trl_slice v;
    trl_rec_key(k, ty->id, ch->id);
    trl_put_u32be(k + 12, ch->hist_seq);
    rc = trl_txn_get(t, TRL_DB_HIST, k, 16, &v);
    if (rc == TRL_ENOTFOUND) {
        rc = 0; /* nothing to show (a log entry without its event: `trellis check` reports it) */
        goto out;
    }
    if (!rc && v.n < 34) rc = TRL_ECORRUPT;
    if (rc) goto out;
    size_t len = out->len;
    const struct trl_value *nm = live ? &r.name : NULL;
    rc = trl_buf_printf(out, "{\"seq\":%llu,\"type\":", (unsigned long long)ch->seq) ||
                 trl_buf_add_json_str(out, ty->name, strlen(ty->name)) ||
                 trl_buf_printf(out, ",\"id\":%llu,\"name\":", (unsigned long long)ch->id) ||
                 (nm && nm->kind == TRL_V_BYTES && nm->n ? trl_buf_add_json_str(out, nm->s, nm->n)
                                                         : trl_buf_adds(out, "null")) ||
                 trl_buf_printf(out, ",\"hist_seq\":%u", ch->hist_seq)
             ? TRL_ENOMEM
             : 0;
    if (!rc)
        rc = trl_rec_hist_members(cx, ty, (const char *)v.p + 32, v.n - 32, true, true, action, 32,
                                  out);
    if (!rc && trl_buf_addc(out, '}')) rc = TRL_ENOMEM;
    if (rc) {
        if (out->data) out->data[out->len = len] = 0;
    } else {
        *visible = true;
    }
out:
    if (live) trl_record_free(&r);
    return rc;
}
