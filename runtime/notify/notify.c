/* notify.c — templates, rendering as escaped markdown and HTML, and the per-user inbox. */
#include "notify.h"

#include <cjson/cJSON.h>
#include <cmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Built-in templates. Values come from the caller in the recipient's language (the type's label,
 * the outcome word, the step's label), so the texts only join them.
 */
static const char *const PH_TASK[] = {"approval", "step", "type", "title", NULL};
static const char *const PH_DECIDED[] = {"title", "outcome", "actor", "comment", NULL};
static const char *const PH_RETURNED[] = {"title", "actor", "comment", NULL};
static const char *const PH_ASSIGNED[] = {"type", "title", "actor", NULL};
static const char *const PH_SLA[] = {"type", "title", "due", "policy", NULL};

static const struct trl_notify_tmpl BUILTIN_EN[] = {
    {"approval_task", "Approval needed: {{title}}",
     "You have an approval task: {{approval}}, step {{step}}, for {{type}} “{{title}}”.", PH_TASK},
    {"approval_decided", "Your request “{{title}}” was {{outcome}}",
     "Your request “{{title}}” was {{outcome}} by {{actor}}.\n\n{{comment}}", PH_DECIDED},
    {"returned", "Returned for changes: {{title}}",
     "Your request “{{title}}” was returned to you for changes by {{actor}}.\n\n{{comment}}",
     PH_RETURNED},
    {"assigned", "Assigned to you: {{title}}",
     "{{type}} “{{title}}” was assigned to you by {{actor}}.", PH_ASSIGNED},
    {"sla_warning", "Due soon: {{title}}", "{{type}} “{{title}}” is due {{due}} ({{policy}}).",
     PH_SLA},
    {"sla_breach", "Overdue: {{title}}",
     "{{type}} “{{title}}” was due {{due}} and is now overdue ({{policy}}).", PH_SLA},
};

static const struct trl_notify_tmpl BUILTIN_ZH[] = {
    {"approval_task", "待审批：{{title}}",
     "您有一项审批任务：{{type}}“{{title}}”的{{approval}}，步骤：{{step}}。", PH_TASK},
    {"approval_decided", "您的申请“{{title}}”已{{outcome}}",
     "您的申请“{{title}}”已由 {{actor}} {{outcome}}。\n\n{{comment}}", PH_DECIDED},
    {"returned", "已退回修改：{{title}}",
     "您的申请“{{title}}”已被 {{actor}} 退回修改。\n\n{{comment}}", PH_RETURNED},
    {"assigned", "分配给您：{{title}}", "{{actor}} 将{{type}}“{{title}}”分配给了您。", PH_ASSIGNED},
    {"sla_warning", "即将到期：{{title}}", "{{type}}“{{title}}”将于 {{due}} 到期（{{policy}}）。",
     PH_SLA},
    {"sla_breach", "已超时：{{title}}",
     "{{type}}“{{title}}”应于 {{due}} 完成，现已超时（{{policy}}）。", PH_SLA},
};

#define NBUILTIN (sizeof(BUILTIN_EN) / sizeof(BUILTIN_EN[0]))

const struct trl_notify_tmpl *trl_notify_template(const char *kind, const char *lang)
{
    const struct trl_notify_tmpl *set =
        lang && strcmp(lang, "zh-CN") == 0 ? BUILTIN_ZH : BUILTIN_EN;
    for (size_t i = 0; kind && i < NBUILTIN; i++)
        if (strcmp(set[i].kind, kind) == 0) return &set[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Rendering
 */
static const char ELLIPSIS[] = "\xE2\x80\xA6";    /* … */
static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 when there is none. */
static size_t u8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0Fu;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07u;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_ascii_punct(unsigned char c)
{
    return c && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) != NULL;
}

static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

/* Drops b's bytes after len (b holds valid text up to there). */
static void buf_cut(struct trl_buf *b, size_t len)
{
    if (b->data && len <= b->len) {
        b->len = len;
        b->data[len] = 0;
    }
}

/* Cuts b's bytes after mark to at most max bytes on a character boundary, ending in "…". */
static int cut_with_ellipsis(struct trl_buf *b, size_t mark, size_t max)
{
    if (b->len - mark <= max) return 0;
    size_t pos = mark + max - (sizeof(ELLIPSIS) - 1);
    while (pos > mark && ((unsigned char)b->data[pos] & 0xC0) == 0x80)
        pos--;
    buf_cut(b, pos);
    return trl_buf_adds(b, ELLIPSIS) ? TRL_ENOMEM : 0;
}

/* Copies s[0..n) into out as well-formed UTF-8 (U+FFFD for each bad byte), without leading and
 * trailing white space, cut at TRL_NOTIFY_VALUE_MAX bytes. */
static int clean_value(const char *s, size_t n, struct trl_buf *out)
{
    trl_buf_clear(out);
    while (n && is_space((unsigned char)s[0]))
        s++, n--;
    while (n && is_space((unsigned char)s[n - 1]))
        n--;
    for (size_t i = 0; i < n && out->len <= TRL_NOTIFY_VALUE_MAX;) {
        size_t l = u8_seq((const unsigned char *)s + i, n - i);
        int rc = l ? trl_buf_add(out, s + i, l) : trl_buf_adds(out, REPLACEMENT);
        if (rc) return TRL_ENOMEM;
        i += l ? l : 1;
    }
    return cut_with_ellipsis(out, 0, TRL_NOTIFY_VALUE_MAX);
}

/* One rendering in progress. */
struct render {
    trl_notify_lookup_fn lookup; /* value source, NULL: none */
    void *ud;                    /* its argument */
    bool md;                     /* markdown (values escaped) rather than plain text */
    struct trl_buf *out;         /* output (appended) */
    size_t mark;                 /* out->len on entry */
    struct trl_buf raw;          /* the lookup's value (owned) */
    struct trl_buf val;          /* the value cleaned (owned) */
};

/* Plain text: control characters become spaces, leading spaces are dropped, and nothing is added
 * once the output is past the subject cap (it is cut there anyway). */
static int text_add(struct render *x, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (x->out->len - x->mark > TRL_NOTIFY_SUBJECT_MAX) return 0;
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) c = ' ';
        if (c == ' ' && x->out->len == x->mark) continue;
        if (trl_buf_addc(x->out, (char)c)) return TRL_ENOMEM;
    }
    return 0;
}

static int md_room(struct render *x, size_t n)
{
    return x->out->len - x->mark + n > TRL_NOTIFY_BODY_MAX ? TRL_ETOOBIG : 0;
}

/* Template text goes into markdown as written. */
static int md_literal(struct render *x, const char *s, size_t n)
{
    int rc = md_room(x, n);
    if (rc) return rc;
    return trl_buf_add(x->out, s, n) ? TRL_ENOMEM : 0;
}

/* A value goes into markdown as text: ASCII punctuation backslash-escaped, each line break a hard
 * break ("\" at the end of the line) with the next line's indentation dropped (so no line of a
 * value can open a block), other control characters as spaces. */
static int md_value(struct render *x, const char *s, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
            while (i + 1 < n && (s[i + 1] == ' ' || s[i + 1] == '\t'))
                i++;
            rc = trl_buf_add(x->out, "\\\n", 2) ? TRL_ENOMEM : 0;
            continue;
        }
        if (c < 0x20 || c == 0x7f) c = ' ';
        if (is_ascii_punct(c) && trl_buf_addc(x->out, '\\')) return TRL_ENOMEM;
        if (trl_buf_addc(x->out, (char)c)) return TRL_ENOMEM;
    }
    return rc ? rc : md_room(x, 0); /* a value is bounded: checking after it is enough */
}

static int emit_value(struct render *x, const char *name, size_t n)
{
    char nm[TRL_NOTIFY_NAME_MAX + 1];
    memcpy(nm, name, n);
    nm[n] = 0;
    trl_buf_clear(&x->raw);
    int rc = x->lookup ? x->lookup(x->ud, nm, n, &x->raw) : TRL_ENOTFOUND;
    if (rc == TRL_ENOTFOUND) {
        trl_buf_clear(&x->raw);
        rc = 0;
    }
    if (rc) return rc;
    if ((rc = clean_value(x->raw.data ? x->raw.data : "", x->raw.len, &x->val))) return rc;
    const char *v = x->val.data ? x->val.data : "";
    return x->md ? md_value(x, v, x->val.len) : text_add(x, v, x->val.len);
}

static int emit_literal(struct render *x, const char *s, size_t n)
{
    return x->md ? md_literal(x, s, n) : text_add(x, s, n);
}

/* At s, just past "{{": optional blanks, a name, optional blanks, "}}". Returns the bytes used
 * through "}}" (name and n set), or 0 when this is not a placeholder. */
static size_t placeholder(const char *s, const char **name, size_t *n)
{
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    size_t b = i;
    while (is_name_char((unsigned char)s[i]))
        i++;
    size_t e = i;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (e == b || e - b > TRL_NOTIFY_NAME_MAX || s[i] != '}' || s[i + 1] != '}') return 0;
    *name = s + b;
    *n = e - b;
    return i + 2;
}

static int scan(struct render *x, const char *tmpl)
{
    const char *p = tmpl;
    int rc = 0;
    while (*p && !rc) {
        const char *q = strchr(p, '{');
        if (!q) q = p + strlen(p);
        if (q > p && (rc = emit_literal(x, p, (size_t)(q - p)))) break;
        if (!*q) break;
        size_t run = 0;
        while (q[run] == '{')
            run++;
        const char *name;
        size_t n, used = run == 2 ? placeholder(q + 2, &name, &n) : 0;
        if (used) {
            rc = emit_value(x, name, n);
            p = q + 2 + used;
        } else {
            /* One brace, or three and more ({{{ is never a placeholder): literal text. */
            rc = emit_literal(x, q, run);
            p = q + run;
        }
    }
    return rc;
}

int trl_notify_render(const char *tmpl, trl_notify_lookup_fn lookup, void *ud,
                      struct trl_buf *md_out, struct trl_buf *html_out)
{
    if (!tmpl || !trl_utf8_valid(tmpl, strlen(tmpl))) return TRL_EINVAL;
    struct render x = {.lookup = lookup, .ud = ud, .md = true, .out = md_out, .mark = md_out->len};
    size_t hmark = html_out ? html_out->len : 0;
    trl_buf_init(&x.raw);
    trl_buf_init(&x.val);
    /* An empty template still yields a NUL-terminated (empty) text. */
    int rc = trl_buf_add(md_out, "", 0) ? TRL_ENOMEM : 0;
    if (!rc) rc = scan(&x, tmpl);
    if (!rc && html_out) {
        char *html =
            cmark_markdown_to_html(md_out->data + x.mark, md_out->len - x.mark, CMARK_OPT_DEFAULT);
        if (!html || trl_buf_adds(html_out, html)) rc = TRL_ENOMEM;
        free(html);
    }
    trl_buf_free(&x.raw);
    trl_buf_free(&x.val);
    if (rc) {
        buf_cut(md_out, x.mark);
        if (html_out) buf_cut(html_out, hmark);
    }
    return rc;
}

int trl_notify_render_text(const char *tmpl, trl_notify_lookup_fn lookup, void *ud,
                           struct trl_buf *out)
{
    if (!tmpl || !trl_utf8_valid(tmpl, strlen(tmpl))) return TRL_EINVAL;
    struct render x = {.lookup = lookup, .ud = ud, .md = false, .out = out, .mark = out->len};
    trl_buf_init(&x.raw);
    trl_buf_init(&x.val);
    int rc = trl_buf_add(out, "", 0) ? TRL_ENOMEM : 0;
    if (!rc) rc = scan(&x, tmpl);
    if (!rc) rc = cut_with_ellipsis(out, x.mark, TRL_NOTIFY_SUBJECT_MAX);
    if (!rc) {
        size_t end = out->len;
        while (end > x.mark && out->data[end - 1] == ' ')
            end--;
        buf_cut(out, end);
    }
    trl_buf_free(&x.raw);
    trl_buf_free(&x.val);
    if (rc) buf_cut(out, x.mark);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Keys: kind, user, NUL [, id u64 big-endian]
 */
#define KEY_MAX (1 + TRL_NOTIFY_USER_MAX + 1 + 8)

static bool user_ok(const char *user)
{
    size_t n = user ? strlen(user) : 0;
    return n >= 1 && n <= TRL_NOTIFY_USER_MAX;
}

/* Fills k (KEY_MAX bytes) and returns its length; the user must be user_ok. */
static size_t key_of(unsigned char *k, char kind, const char *user, const uint64_t *id)
{
    size_t n = strlen(user);
    k[0] = (unsigned char)kind;
    memcpy(k + 1, user, n + 1);
    if (id) trl_put_u64be(k + n + 2, *id);
    return n + 2 + (id ? 8 : 0);
}

static int count_get(struct trl_txn *t, const char *user, uint64_t *n)
{
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'C', user, NULL);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
    *n = 0;
    if (rc == TRL_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v.n != 8) return TRL_ECORRUPT;
    *n = trl_get_u64be(v.p);
    return 0;
}

/* Adds add and takes sub from user's unread count (deleting the key at 0). */
static int count_change(struct trl_txn *t, const char *user, uint64_t add, uint64_t sub)
{
    uint64_t n;
    int rc = count_get(t, user, &n);
    if (rc) return rc;
    if (n + add < sub) return TRL_ECORRUPT;
    n = n + add - sub;
    unsigned char k[KEY_MAX], v[8];
    size_t kn = key_of(k, 'C', user, NULL);
    if (n == 0) {
        rc = trl_txn_del(t, TRL_DB_INBOX, k, kn);
        return rc == TRL_ENOTFOUND ? 0 : rc;
    }
    trl_put_u64be(v, n);
    return trl_txn_put(t, TRL_DB_INBOX, k, kn, v, sizeof(v), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Sending
 */
static int refuse(struct trl_diag *d, int code, const char *field, const char *en, const char *zh)
{
    if (!d) return code;
    trl_diag_set(d, code, "%s", en);
    trl_diag_zh(d, "%s", zh);
    if (field) trl_diag_field(d, field);
    return code;
}

static bool kind_ok(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;
    if (n < 1 || n > TRL_NOTIFY_KIND_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((kind[i] >= 'a' && kind[i] <= 'z') || (kind[i] >= '0' && kind[i] <= '9') ||
              kind[i] == '_'))
            return false;
    return true;
}

/* The message document: see trl_notify_list. */
static int message_json(struct trl_buf *b, uint64_t id, const struct trl_notify_msg *m,
                        const struct trl_buf *subject, const struct trl_buf *md,
                        const struct trl_buf *html, int64_t now)
{
    char ts[40];
    trl_datetime_format(now, ts);
    const struct trl_notify_link *l = &m->link;
    int e = trl_buf_printf(b, "{\"id\":%llu,\"kind\":", (unsigned long long)id) ||
            trl_buf_add_json_str(b, m->kind, strlen(m->kind)) || trl_buf_adds(b, ",\"subject\":") ||
            trl_buf_add_json_str(b, subject->data ? subject->data : "", subject->len) ||
            trl_buf_adds(b, ",\"body_md\":") ||
            trl_buf_add_json_str(b, md->data ? md->data : "", md->len) ||
            trl_buf_adds(b, ",\"body_html\":") ||
            trl_buf_add_json_str(b, html->data ? html->data : "", html->len) ||
            trl_buf_adds(b, ",\"link\":{\"type\":");
    if (!e && l->type && l->type[0])
        e = trl_buf_add_json_str(b, l->type, strlen(l->type));
    else if (!e)
        e = trl_buf_adds(b, "null");
    if (!e && l->record)
        e = trl_buf_printf(b, ",\"record\":%llu", (unsigned long long)l->record);
    else if (!e)
        e = trl_buf_adds(b, ",\"record\":null");
    if (!e && l->task)
        e = trl_buf_printf(b, ",\"task\":%llu}", (unsigned long long)l->task);
    else if (!e)
        e = trl_buf_adds(b, ",\"task\":null}");
    if (!e) e = trl_buf_printf(b, ",\"created_at\":\"%s\",\"read_at\":null}", ts);
    return e ? TRL_ENOMEM : 0;
}

int trl_notify_send(struct trl_txn *t, const struct trl_notify_msg *m, int64_t now, uint64_t *id)
{
    struct trl_diag *d = m->d;
    if (!user_ok(m->user))
        return refuse(d, TRL_EINVAL, "user", "a notification needs a recipient (1 to 63 bytes)",
                      "通知需要接收人（1 到 63 字节）");
    if (!kind_ok(m->kind))
        return refuse(d, TRL_EINVAL, "kind",
                      "a notification kind is 1 to 32 characters of a-z, 0-9 and _",
                      "通知类型须为 1 到 32 个 a-z、0-9 或 _ 字符");
    const char *lt = m->link.type;
    if (lt && (strlen(lt) > 63 || !trl_utf8_valid(lt, strlen(lt))))
        return refuse(d, TRL_EINVAL, "link.type", "the link's type name is not a type name",
                      "链接的类型名无效");
    const struct trl_notify_tmpl *b = trl_notify_template(m->kind, m->lang);
    const char *subj = m->subject ? m->subject : b ? b->subject : NULL;
    const char *body = m->body ? m->body : b ? b->body : NULL;
    if (!subj || !body) {
        char en[160], zh[160];
        snprintf(en, sizeof(en), "kind %s has no built-in texts: give a subject and a body",
                 m->kind);
        snprintf(zh, sizeof(zh), "类型 %s 没有内置文本：请提供标题和正文", m->kind);
        return refuse(d, TRL_EINVAL, subj ? "body" : "subject", en, zh);
    }

    struct trl_buf subject, md, html, doc;
    trl_buf_init(&subject);
    trl_buf_init(&md);
    trl_buf_init(&html);
    trl_buf_init(&doc);
    uint64_t mid = 0;
    int rc = trl_notify_render_text(subj, m->lookup, m->ud, &subject);
    if (rc == TRL_EINVAL) {
        refuse(d, rc, "subject", "the subject template is not valid UTF-8",
               "标题模板不是有效的 UTF-8");
        goto out;
    }
    if (rc) goto out;
    rc = trl_notify_render(body, m->lookup, m->ud, &md, &html);
    if (rc == TRL_EINVAL) {
        refuse(d, rc, "body", "the body template is not valid UTF-8", "正文模板不是有效的 UTF-8");
        goto out;
    }
    if (rc == TRL_ETOOBIG) {
        char en[200], zh[200];
        snprintf(en, sizeof(en),
                 "the body of this %s notification would exceed %d bytes; shorten its template",
                 m->kind, TRL_NOTIFY_BODY_MAX);
        snprintf(zh, sizeof(zh), "该 %s 通知的正文将超过 %d 字节，请缩短模板", m->kind,
                 TRL_NOTIFY_BODY_MAX);
        refuse(d, rc, "body", en, zh);
        goto out;
    }
    if (rc) goto out;
    if ((rc = trl_txn_seq_next(t, "message", &mid))) goto out;
    if ((rc = message_json(&doc, mid, m, &subject, &md, &html, now))) goto out;
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'M', m->user, &mid);
    if ((rc = trl_txn_put(t, TRL_DB_INBOX, k, kn, doc.data, doc.len, TRL_PUT_NOOVERWRITE)))
        goto out;
    kn = key_of(k, 'U', m->user, &mid);
    if ((rc = trl_txn_put(t, TRL_DB_INBOX, k, kn, "", 0, 0))) goto out;
    if ((rc = count_change(t, m->user, 1, 0))) goto out;
    if (id) *id = mid;
out:
    trl_buf_free(&doc);
    trl_buf_free(&html);
    trl_buf_free(&md);
    trl_buf_free(&subject);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reading the inbox
 */
static int add_message(struct trl_txn *t, const char *user, uint64_t id, struct trl_buf *out)
{
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'M', user, &id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
    if (rc) return rc;
    return trl_buf_add(out, v.p, v.n) ? TRL_ENOMEM : 0;
}

int trl_notify_list(struct trl_txn *t, const char *user, bool unread_only, size_t limit,
                    uint64_t cursor, struct trl_buf *out)
{
    if (!user_ok(user) || limit == 0) return TRL_EINVAL;
    unsigned char k[KEY_MAX];
    uint64_t from = cursor ? cursor : UINT64_MAX;
    size_t kn = key_of(k, unread_only ? 'U' : 'M', user, &from), plen = kn - 8;
    size_t mark = out->len, n = 0;
    uint64_t last = 0, unread = 0;
    bool more = false;
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_INBOX, &c);
    if (!rc && trl_buf_adds(out, "{\"items\":[")) rc = TRL_ENOMEM;
    if (!rc) {
        for (rc = trl_cursor_seek_before(c, k, kn); rc == 0; rc = trl_cursor_prev(c)) {
            struct trl_slice ck, cv;
            trl_cursor_get(c, &ck, &cv);
            if (ck.n != kn || memcmp(ck.p, k, plen) != 0) break;
            if (n == limit) {
                more = true;
                break;
            }
            uint64_t mid = trl_get_u64be((const unsigned char *)ck.p + plen);
            if (n++ && trl_buf_addc(out, ',')) {
                rc = TRL_ENOMEM;
                break;
            }
            if (unread_only) {
                rc = add_message(t, user, mid, out);
                if (rc == TRL_ENOTFOUND) rc = TRL_ECORRUPT;
                if (rc) break;
            } else if (trl_buf_add(out, cv.p, cv.n)) {
                rc = TRL_ENOMEM;
                break;
            }
            last = mid;
        }
        if (rc == TRL_ENOTFOUND) rc = 0;
    }
    trl_cursor_close(c);
    if (!rc) rc = count_get(t, user, &unread);
    if (!rc &&
        trl_buf_printf(out, "],\"unread\":%llu,\"next_cursor\":", (unsigned long long)unread))
        rc = TRL_ENOMEM;
    if (!rc && (more ? trl_buf_printf(out, "\"%llu\"}", (unsigned long long)last)
                     : trl_buf_adds(out, "null}")))
        rc = TRL_ENOMEM;
    if (rc) buf_cut(out, mark);
    return rc;
}

int trl_notify_get(struct trl_txn *t, const char *user, uint64_t id, struct trl_buf *out)
{
    if (!user_ok(user)) return TRL_EINVAL;
    return add_message(t, user, id, out);
}

int trl_notify_unread(struct trl_txn *t, const char *user, uint64_t *n)
{
    if (!user_ok(user)) return TRL_EINVAL;
    return count_get(t, user, n);
}

/* ---------------------------------------------------------------------------------------------
 * Marking read
 */
/* Sets read_at of an unread message and drops its unread flag (the count is the caller's). */
static int mark_read(struct trl_txn *t, const char *user, uint64_t id, const char *ts)
{
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'M', user, &id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
    if (rc) return rc == TRL_ENOTFOUND ? TRL_ECORRUPT : rc;
    cJSON *j = cJSON_ParseWithLength(v.p, v.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return TRL_ECORRUPT;
    }
    cJSON *s = cJSON_CreateString(ts);
    char *doc = NULL;
    bool ok = s && (cJSON_GetObjectItemCaseSensitive(j, "read_at")
                        ? cJSON_ReplaceItemInObjectCaseSensitive(j, "read_at", s)
                        : cJSON_AddItemToObject(j, "read_at", s));
    if (!ok) cJSON_Delete(s);
    if (ok) doc = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!doc) return TRL_ENOMEM;
    rc = trl_txn_put(t, TRL_DB_INBOX, k, kn, doc, strlen(doc), 0);
    free(doc);
    if (rc) return rc;
    kn = key_of(k, 'U', user, &id);
    return trl_txn_del(t, TRL_DB_INBOX, k, kn);
}

int trl_notify_read(struct trl_txn *t, const char *user, uint64_t id, int64_t now)
{
    if (!user_ok(user)) return TRL_EINVAL;
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'M', user, &id);
    struct trl_slice v;
    int rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
    if (rc) return rc;
    kn = key_of(k, 'U', user, &id);
    rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
    if (rc == TRL_ENOTFOUND) return 0; /* already read: the first read_at stays */
    if (rc) return rc;
    char ts[40];
    trl_datetime_format(now, ts);
    if ((rc = mark_read(t, user, id, ts))) return rc;
    return count_change(t, user, 0, 1);
}

int trl_notify_read_all(struct trl_txn *t, const char *user, int64_t now, size_t *n)
{
    if (n) *n = 0;
    if (!user_ok(user)) return TRL_EINVAL;
    char ts[40];
    trl_datetime_format(now, ts);
    unsigned char k[KEY_MAX];
    size_t kn = key_of(k, 'U', user, NULL);
    size_t total = 0;
    int rc = 0;
    for (;;) {
        /* Collect a batch with the cursor, then write with it closed; marking drops the flags,
         * so each batch starts again at the front of the user's range. */
        uint64_t ids[256];
        size_t got = 0;
        struct trl_cursor *c = NULL;
        if ((rc = trl_cursor_open(t, TRL_DB_INBOX, &c))) break;
        for (rc = trl_cursor_seek(c, k, kn); rc == 0 && got < 256; rc = trl_cursor_next(c)) {
            struct trl_slice ck;
            trl_cursor_get(c, &ck, NULL);
            if (ck.n != kn + 8 || memcmp(ck.p, k, kn) != 0) break;
            ids[got++] = trl_get_u64be((const unsigned char *)ck.p + kn);
        }
        trl_cursor_close(c);
        if (rc == TRL_ENOTFOUND) rc = 0;
        if (rc || got == 0) break;
        for (size_t i = 0; i < got && !rc; i++)
            rc = mark_read(t, user, ids[i], ts);
        if (!rc) rc = count_change(t, user, 0, got);
        if (rc) break;
        total += got;
    }
    if (!rc && n) *n = total;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Check
 */
static int corrupt(struct trl_diag *d, const char *what, const char *user)
{
    if (d) {
        trl_diag_set(d, TRL_ECORRUPT, "inbox of '%s': %s", user, what);
        trl_diag_zh(d, "用户“%s”的收件箱数据不一致", user);
    }
    return TRL_ECORRUPT;
}

/* The user of an inbox key of kind with tail bytes after the NUL, into user (64 bytes). */
static bool key_user(const struct trl_slice *ck, size_t tail, char *user)
{
    const char *p = ck->p;
    if (ck->n < 2 + tail + 1 || ck->n - tail - 2 > TRL_NOTIFY_USER_MAX) return false;
    size_t un = ck->n - tail - 2;
    if (p[1 + un] != 0 || memchr(p + 1, 0, un)) return false;
    memcpy(user, p + 1, un);
    user[un] = 0;
    return true;
}

static int check_group(struct trl_txn *t, const char *user, uint64_t flags, struct trl_diag *d)
{
    uint64_t cnt;
    int rc = count_get(t, user, &cnt);
    if (rc == TRL_ECORRUPT) return corrupt(d, "the unread count is not 8 bytes", user);
    if (rc) return rc;
    if (cnt != flags) {
        if (d) {
            trl_diag_set(d, TRL_ECORRUPT, "inbox of '%s': unread count %llu, unread messages %llu",
                         user, (unsigned long long)cnt, (unsigned long long)flags);
            trl_diag_zh(d, "用户“%s”的未读计数为 %llu，未读消息为 %llu", user,
                        (unsigned long long)cnt, (unsigned long long)flags);
        }
        return TRL_ECORRUPT;
    }
    return 0;
}

int trl_notify_check(struct trl_txn *t, struct trl_diag *d)
{
    struct trl_cursor *c = NULL;
    int rc = trl_cursor_open(t, TRL_DB_INBOX, &c);
    if (rc) return rc;
    char user[TRL_NOTIFY_USER_MAX + 1], cur[TRL_NOTIFY_USER_MAX + 1] = "";
    uint64_t flags = 0;
    /* Unread flags: each has its message; per user, their number is the count. */
    for (rc = trl_cursor_seek(c, "U", 1); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice ck, v;
        trl_cursor_get(c, &ck, NULL);
        if (ck.n < 1 || ((const char *)ck.p)[0] != 'U') break;
        if (!key_user(&ck, 8, user)) {
            rc = corrupt(d, "malformed unread flag key", "?");
            break;
        }
        uint64_t id = trl_get_u64be((const unsigned char *)ck.p + ck.n - 8);
        if (cur[0] && strcmp(cur, user) != 0) {
            if ((rc = check_group(t, cur, flags, d))) break;
            flags = 0;
        }
        snprintf(cur, sizeof(cur), "%s", user);
        flags++;
        unsigned char k[KEY_MAX];
        size_t kn = key_of(k, 'M', user, &id);
        rc = trl_txn_get(t, TRL_DB_INBOX, k, kn, &v);
        if (rc == TRL_ENOTFOUND) rc = corrupt(d, "an unread flag has no message", user);
        if (rc) break;
    }
    if (rc == 0 || rc == TRL_ENOTFOUND) rc = cur[0] ? check_group(t, cur, flags, d) : 0;
    /* Counts: a user with a count has unread flags (those with flags were compared above). */
    int step = rc ? rc : trl_cursor_seek(c, "C", 1);
    for (; !rc && step == 0; step = trl_cursor_next(c)) {
        struct trl_slice ck, v;
        trl_cursor_get(c, &ck, NULL);
        if (ck.n < 1 || ((const char *)ck.p)[0] != 'C') break;
        if (!key_user(&ck, 0, user)) {
            rc = corrupt(d, "malformed unread count key", "?");
            break;
        }
        unsigned char k[KEY_MAX];
        size_t kn = key_of(k, 'U', user, NULL);
        struct trl_cursor *c2 = NULL;
        if ((rc = trl_cursor_open(t, TRL_DB_INBOX, &c2))) break;
        rc = trl_cursor_seek(c2, k, kn);
        if (!rc) {
            trl_cursor_get(c2, &v, NULL);
            if (v.n != kn + 8 || memcmp(v.p, k, kn) != 0) rc = TRL_ENOTFOUND;
        }
        trl_cursor_close(c2);
        if (rc == TRL_ENOTFOUND) rc = check_group(t, user, 0, d);
    }
    if (!rc && step != 0 && step != TRL_ENOTFOUND) rc = step;
    trl_cursor_close(c);
    return rc;
}
