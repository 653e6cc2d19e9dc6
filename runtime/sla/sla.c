/* sla.c — timers keyed by due time, and SLA clocks over business calendars. */
#include "sla.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Timers
 */
static int owner_key(struct trl_buf *k, const char *owner, const uint64_t *id)
{
    trl_buf_clear(k);
    int rc = trl_buf_addc(k, (char)0xFF) || trl_buf_add(k, owner, strlen(owner) + 1);
    if (!rc && id) rc = trl_buf_add_u64be(k, *id);
    return rc ? TRL_ENOMEM : 0;
}

int trl_timer_add(struct trl_txn *t, int64_t due_ms, const char *owner, const char *payload,
                  uint64_t *idp)
{
    if (due_ms < 0 || strlen(owner) > 200) return TRL_EINVAL;
    uint64_t id;
    int rc = trl_txn_seq_next(t, "timer", &id);
    if (rc) return rc;
    /* The payload carries its owner first (owner NUL payload) so a fired timer names it. */
    unsigned char k[16];
    trl_put_u64be(k, (uint64_t)due_ms);
    trl_put_u64be(k + 8, id);
    struct trl_buf v;
    trl_buf_init(&v);
    if (trl_buf_add(&v, owner, strlen(owner) + 1) || trl_buf_adds(&v, payload)) {
        trl_buf_free(&v);
        return TRL_ENOMEM;
    }
    rc = trl_txn_put(t, TRL_DB_TIMER, k, sizeof(k), v.data, v.len, TRL_PUT_APPEND);
    trl_buf_free(&v);
    if (rc) return rc;
    struct trl_buf ok;
    trl_buf_init(&ok);
    rc = owner_key(&ok, owner, &id);
    if (!rc) rc = trl_txn_put(t, TRL_DB_TIMER, ok.data, ok.len, k, 8, 0);
    trl_buf_free(&ok);
    if (!rc && idp) *idp = id;
    return rc;
}

int trl_timer_cancel(struct trl_txn *t, const char *owner, size_t *n)
{
    if (n) *n = 0;
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = owner_key(&k, owner, NULL);
    if (rc) return rc;
    /* Collect first: deleting under an open cursor is not part of the store contract. */
    struct {
        uint64_t id, due;
    } found[64];
    size_t nf;
    do {
        nf = 0;
        struct trl_cursor *c = NULL;
        if ((rc = trl_cursor_open(t, TRL_DB_TIMER, &c))) break;
        for (rc = trl_cursor_seek(c, k.data, k.len); rc == 0 && nf < 64; rc = trl_cursor_next(c)) {
            struct trl_slice ck, cv;
            trl_cursor_get(c, &ck, &cv);
            if (ck.n != k.len + 8 || memcmp(ck.p, k.data, k.len) != 0 || cv.n != 8) break;
            found[nf].id = trl_get_u64be((const unsigned char *)ck.p + k.len);
            found[nf].due = trl_get_u64be(cv.p);
            nf++;
        }
        trl_cursor_close(c);
        if (rc == TRL_ENOTFOUND) rc = 0;
        for (size_t i = 0; i < nf && !rc; i++) {
            unsigned char tk[16];
            trl_put_u64be(tk, found[i].due);
            trl_put_u64be(tk + 8, found[i].id);
            rc = trl_txn_del(t, TRL_DB_TIMER, tk, sizeof(tk));
            if (rc == TRL_ENOTFOUND) rc = 0;
            struct trl_buf ok;
            trl_buf_init(&ok);
            if (!rc) rc = owner_key(&ok, owner, &found[i].id);
            if (!rc) rc = trl_txn_del(t, TRL_DB_TIMER, ok.data, ok.len);
            trl_buf_free(&ok);
            if (!rc && n) (*n)++;
        }
    } while (!rc && nf == 64);
    trl_buf_free(&k);
    return rc;
}

int trl_timer_next(struct trl_txn *t, int64_t *due)
{
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_TIMER, &c);
    if (rc) return rc;
    rc = trl_cursor_seek(c, NULL, 0);
    if (!rc) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n != 16 || ((const unsigned char *)k.p)[0] >= 0x80)
            rc = TRL_ENOTFOUND;
        else
            *due = (int64_t)trl_get_u64be(k.p);
    }
    trl_cursor_close(c);
    return rc;
}

int trl_timer_fire(struct trl_txn *t, int64_t now, size_t max, trl_timer_fn fn, void *ud,
                   size_t *fired)
{
    *fired = 0;
    int rc = 0;
    while (*fired < max && !rc) {
        /* One at a time from the front: the callback may add or cancel timers. */
        struct trl_cursor *c = NULL;
        if ((rc = trl_cursor_open(t, TRL_DB_TIMER, &c))) break;
        rc = trl_cursor_seek(c, NULL, 0);
        unsigned char key[16];
        char *val = NULL;
        size_t vn = 0;
        int64_t due = 0;
        if (!rc) {
            struct trl_slice k, v;
            trl_cursor_get(c, &k, &v);
            if (k.n != 16 || ((const unsigned char *)k.p)[0] >= 0x80) {
                rc = TRL_ENOTFOUND;
            } else {
                due = (int64_t)trl_get_u64be(k.p);
                if (due > now) {
                    rc = TRL_ENOTFOUND;
                } else {
                    memcpy(key, k.p, 16);
                    if (!(val = malloc(v.n + 1))) rc = TRL_ENOMEM;
                    if (val) {
                        memcpy(val, v.p, v.n);
                        val[v.n] = 0;
                        vn = v.n;
                    }
                }
            }
        }
        trl_cursor_close(c);
        if (rc) {
            free(val);
            break;
        }
        const char *owner = val;
        size_t on = strnlen(val, vn);
        const char *payload = on < vn ? val + on + 1 : "";
        size_t pn = on < vn ? vn - on - 1 : 0;
        rc = trl_txn_del(t, TRL_DB_TIMER, key, sizeof(key));
        struct trl_buf ok;
        trl_buf_init(&ok);
        uint64_t id = trl_get_u64be(key + 8);
        if (!rc) rc = owner_key(&ok, owner, &id);
        if (!rc) {
            rc = trl_txn_del(t, TRL_DB_TIMER, ok.data, ok.len);
            if (rc == TRL_ENOTFOUND) rc = 0;
        }
        trl_buf_free(&ok);
        if (!rc) rc = fn(ud, t, due, owner, payload, pn);
        free(val);
        if (!rc) (*fired)++;
    }
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

int trl_timer_count(struct trl_txn *t, uint64_t *n)
{
    *n = 0;
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_TIMER, &c);
    if (rc) return rc;
    for (rc = trl_cursor_seek(c, NULL, 0); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n != 16 || ((const unsigned char *)k.p)[0] >= 0x80) break;
        (*n)++;
    }
    trl_cursor_close(c);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------------------------------------
 * Clocks
 */
static const char *const status_names[] = {"running", "paused", "met", "breached"};

static int clock_key(struct trl_buf *k, const char *type, uint64_t record, const char *target)
{
    trl_buf_clear(k);
    int rc = trl_buf_addc(k, (char)0xFE) || trl_buf_addc(k, 'c') ||
             trl_buf_add(k, type, strlen(type) + 1) || trl_buf_add_u64be(k, record) ||
             (target && trl_buf_adds(k, target));
    return rc ? TRL_ENOMEM : 0;
}

void trl_sla_owner(const struct trl_sla_clock *c, char *out, size_t n)
{
    snprintf(out, n, "sla/%s/%llu/%s", c->type, (unsigned long long)c->record, c->target);
}

static int64_t jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void jstr(const cJSON *j, const char *k, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int clock_from(const char *type, uint64_t record, const char *target, const void *p,
                      size_t n, struct trl_sla_clock *c)
{
    cJSON *j = cJSON_ParseWithLength(p, n);
    if (!j) return TRL_ECORRUPT;
    memset(c, 0, sizeof(*c));
    snprintf(c->type, sizeof(c->type), "%s", type);
    c->record = record;
    snprintf(c->target, sizeof(c->target), "%s", target);
    jstr(j, "policy", c->policy, sizeof(c->policy));
    jstr(j, "calendar", c->calendar, sizeof(c->calendar));
    c->target_ms = jnum(j, "target_ms");
    c->warn_ms = jnum(j, "warn_ms");
    c->started_at = jnum(j, "started_at");
    c->since = jnum(j, "since");
    c->elapsed_ms = jnum(j, "elapsed_ms");
    c->due_at = jnum(j, "due_at");
    c->warn_at = jnum(j, "warn_at");
    c->stopped_at = jnum(j, "stopped_at");
    c->breached_at = jnum(j, "breached_at");
    c->warned_at = jnum(j, "warned_at");
    c->status = (enum trl_sla_status)jnum(j, "status");
    c->stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stopped"));
    cJSON_Delete(j);
    return 0;
}

static int clock_put(struct trl_txn *t, const struct trl_sla_clock *c)
{
    char v[1024];
    int n = snprintf(v, sizeof(v),
                     "{\"policy\":\"%s\",\"calendar\":\"%s\",\"target_ms\":%lld,\"warn_ms\":%lld,"
                     "\"started_at\":%lld,\"since\":%lld,\"elapsed_ms\":%lld,\"due_at\":%lld,"
                     "\"warn_at\":%lld,\"stopped_at\":%lld,\"breached_at\":%lld,"
                     "\"warned_at\":%lld,\"status\":%d,\"stopped\":%s}",
                     c->policy, c->calendar, (long long)c->target_ms, (long long)c->warn_ms,
                     (long long)c->started_at, (long long)c->since, (long long)c->elapsed_ms,
                     (long long)c->due_at, (long long)c->warn_at, (long long)c->stopped_at,
                     (long long)c->breached_at, (long long)c->warned_at, (int)c->status,
                     c->stopped ? "true" : "false");
    if (n < 0 || (size_t)n >= sizeof(v)) return TRL_EINVAL;
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = clock_key(&k, c->type, c->record, c->target);
    if (!rc) rc = trl_txn_put(t, TRL_DB_TIMER, k.data, k.len, v, (size_t)n, 0);
    trl_buf_free(&k);
    return rc;
}

int trl_sla_get(struct trl_txn *t, const char *type, uint64_t record, const char *target,
                struct trl_sla_clock *c)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = clock_key(&k, type, record, target);
    struct trl_slice v;
    if (!rc) rc = trl_txn_get(t, TRL_DB_TIMER, k.data, k.len, &v);
    trl_buf_free(&k);
    return rc ? rc : clock_from(type, record, target, v.p, v.n, c);
}

static int schedule(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                    int64_t now)
{
    char owner[256];
    trl_sla_owner(c, owner, sizeof(owner));
    int rc = trl_timer_cancel(t, owner, NULL);
    if (rc) return rc;
    c->since = now;
    int64_t left = c->target_ms - c->elapsed_ms;
    c->due_at = trl_cal_add(cal, now, left > 0 ? left : 0);
    c->warn_at = 0;
    char payload[256];
    if (c->warn_ms > 0 && !c->warned_at) {
        /* A warning point passed while paused (before its timer fired) still warns, at once. */
        c->warn_at =
            c->elapsed_ms < c->warn_ms ? trl_cal_add(cal, now, c->warn_ms - c->elapsed_ms) : now;
        snprintf(payload, sizeof(payload), "{\"sla\":\"%s\",\"phase\":\"warning\"}", c->target);
        if (c->warn_at != TRL_CAL_NEVER &&
            (rc = trl_timer_add(t, c->warn_at, owner, payload, NULL)))
            return rc;
    }
    if (!c->breached_at && c->due_at != TRL_CAL_NEVER) {
        snprintf(payload, sizeof(payload), "{\"sla\":\"%s\",\"phase\":\"breach\"}", c->target);
        if ((rc = trl_timer_add(t, c->due_at, owner, payload, NULL))) return rc;
    }
    return 0;
}

int trl_sla_start(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                  int64_t now)
{
    c->started_at = now;
    c->elapsed_ms = 0;
    c->stopped_at = c->breached_at = c->warned_at = 0;
    c->stopped = false;
    c->status = TRL_SLA_RUNNING;
    int rc = schedule(t, c, cal, now);
    return rc ? rc : clock_put(t, c);
}

int64_t trl_sla_elapsed(const struct trl_sla_clock *c, const struct trl_cal *cal, int64_t now)
{
    if (c->status == TRL_SLA_RUNNING || (c->status == TRL_SLA_BREACHED && !c->stopped && c->since &&
                                         c->stopped_at == 0 && c->since <= now))
        return c->elapsed_ms + (c->since ? trl_cal_between(cal, c->since, now) : 0);
    return c->elapsed_ms;
}

int trl_sla_pause(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                  int64_t now)
{
    if (c->stopped || c->status == TRL_SLA_PAUSED) return 0;
    c->elapsed_ms += trl_cal_between(cal, c->since, now);
    c->since = 0;
    c->status = TRL_SLA_PAUSED;
    c->warn_at = 0;
    char owner[256];
    trl_sla_owner(c, owner, sizeof(owner));
    int rc = trl_timer_cancel(t, owner, NULL);
    return rc ? rc : clock_put(t, c);
}

int trl_sla_resume(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                   int64_t now)
{
    if (c->stopped || c->status != TRL_SLA_PAUSED) return 0;
    c->status = c->breached_at ? TRL_SLA_BREACHED : TRL_SLA_RUNNING;
    int rc = schedule(t, c, cal, now);
    return rc ? rc : clock_put(t, c);
}

int trl_sla_stop(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal, int64_t now)
{
    if (c->stopped) return 0;
    if (c->status != TRL_SLA_PAUSED) c->elapsed_ms += trl_cal_between(cal, c->since, now);
    c->since = 0;
    c->stopped = true;
    c->stopped_at = now;
    c->warn_at = 0;
    if (c->breached_at || c->elapsed_ms > c->target_ms) {
        c->status = TRL_SLA_BREACHED;
        if (!c->breached_at) c->breached_at = c->due_at && c->due_at < now ? c->due_at : now;
    } else {
        c->status = TRL_SLA_MET;
    }
    char owner[256];
    trl_sla_owner(c, owner, sizeof(owner));
    int rc = trl_timer_cancel(t, owner, NULL);
    return rc ? rc : clock_put(t, c);
}

int trl_sla_mark(struct trl_txn *t, struct trl_sla_clock *c, const char *phase, int64_t now,
                 bool *apply)
{
    *apply = false;
    if (c->stopped || c->status == TRL_SLA_PAUSED) return 0;
    if (strcmp(phase, "warning") == 0) {
        if (c->warned_at) return 0;
        /* When the threshold passed, not when the timer got to run (a server that was down, a
         * test clock that jumped): reports measure time to breach from these. */
        c->warned_at =
            c->warn_at && c->warn_at != TRL_CAL_NEVER && c->warn_at <= now ? c->warn_at : now;
        c->warn_at = 0;
    } else {
        if (c->breached_at) return 0;
        c->breached_at =
            c->due_at && c->due_at != TRL_CAL_NEVER && c->due_at <= now ? c->due_at : now;
        c->status = TRL_SLA_BREACHED;
    }
    *apply = true;
    return clock_put(t, c);
}

int trl_sla_json(const struct trl_sla_clock *c, const struct trl_cal *cal, int64_t now,
                 struct trl_buf *out)
{
    int64_t el = cal ? trl_sla_elapsed(c, cal, now) : c->elapsed_ms;
    int64_t left = c->target_ms - el;
    char started[40], due[40] = "", warn[40] = "", stopped[40] = "", breached[40] = "",
                      warned[40] = "";
    trl_datetime_format(c->started_at, started);
    if (c->due_at && c->due_at != TRL_CAL_NEVER) trl_datetime_format(c->due_at, due);
    if (c->warn_at && c->warn_at != TRL_CAL_NEVER) trl_datetime_format(c->warn_at, warn);
    if (c->stopped_at) trl_datetime_format(c->stopped_at, stopped);
    if (c->breached_at) trl_datetime_format(c->breached_at, breached);
    if (c->warned_at) trl_datetime_format(c->warned_at, warned);
#define TS(s) (*(s) ? "\"" : ""), (*(s) ? (s) : "null"), (*(s) ? "\"" : "")
    int rc = trl_buf_adds(out, "{\"target\":") ||
             trl_buf_add_json_str(out, c->target, strlen(c->target)) ||
             trl_buf_adds(out, ",\"policy\":") ||
             trl_buf_add_json_str(out, c->policy, strlen(c->policy)) ||
             trl_buf_adds(out, ",\"calendar\":") ||
             trl_buf_add_json_str(out, c->calendar, strlen(c->calendar)) ||
             trl_buf_printf(out,
                            ",\"status\":\"%s\",\"paused\":%s,\"stopped\":%s,\"target_ms\":%lld,"
                            "\"elapsed_ms\":%lld,\"remaining_ms\":%lld,\"percent\":%lld,"
                            "\"started_at\":\"%s\",\"due_at\":%s%s%s,\"warn_at\":%s%s%s,"
                            "\"warned_at\":%s%s%s,\"breached_at\":%s%s%s,\"stopped_at\":%s%s%s}",
                            status_names[c->status], c->status == TRL_SLA_PAUSED ? "true" : "false",
                            c->stopped ? "true" : "false", (long long)c->target_ms, (long long)el,
                            (long long)(left > 0 ? left : 0),
                            (long long)(c->target_ms > 0 ? el * 100 / c->target_ms : 100), started,
                            TS(due), TS(warn), TS(warned), TS(breached), TS(stopped));
#undef TS
    return rc ? TRL_ENOMEM : 0;
}

int trl_sla_each(struct trl_txn *t, const char *type, uint64_t record,
                 int (*fn)(void *ud, const struct trl_sla_clock *c), void *ud)
{
    struct trl_buf k;
    trl_buf_init(&k);
    int rc = clock_key(&k, type, record, NULL);
    struct trl_cursor *c = NULL;
    if (!rc) rc = trl_cursor_open(t, TRL_DB_TIMER, &c);
    for (rc = rc ? rc : trl_cursor_seek(c, k.data, k.len); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice ck, cv;
        trl_cursor_get(c, &ck, &cv);
        if (ck.n <= k.len || memcmp(ck.p, k.data, k.len) != 0) break;
        char target[64];
        size_t tn = ck.n - k.len < sizeof(target) - 1 ? ck.n - k.len : sizeof(target) - 1;
        memcpy(target, (const char *)ck.p + k.len, tn);
        target[tn] = 0;
        struct trl_sla_clock clk;
        if ((rc = clock_from(type, record, target, cv.p, cv.n, &clk))) break;
        if ((rc = fn(ud, &clk))) break;
    }
    trl_cursor_close(c);
    trl_buf_free(&k);
    return rc == TRL_ENOTFOUND ? 0 : rc;
}
