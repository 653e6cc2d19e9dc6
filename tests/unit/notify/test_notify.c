/*
 * test_notify.c — notification templates and the in-app inbox on a real store.
 *
 * What it proves: placeholders with and without blanks take their values, unknown ones are
 * empty, and `{{{`, unterminated and malformed ones stay literal text; a value is text whatever
 * it holds (every ASCII punctuation character comes out as itself, a javascript: link, emphasis,
 * raw HTML, block syntax and entities in a value add no markup); raw HTML and unsafe links in a
 * template are dropped by cmark; Chinese text passes unchanged; long values are cut, a body over
 * the cap is refused leaving the buffers as they were, a subject is cut on a character boundary;
 * every built-in kind exists in both languages, lists exactly the placeholders it uses and fits
 * the cap even with worst-case values. On the store: send, list (newest first, with the unread
 * count), read (twice keeps the first read_at), read_all (also past one internal batch), someone
 * else's or an unknown message is not found and changes nothing, refusals store nothing, pages
 * follow cursors without gaps or repeats, and after bounded random operations (fixed seed) each
 * user's count equals their unread flags and a model's unread set, and trl_notify_check agrees;
 * it also catches damage.
 */
#include "notify/notify.h"

#include <check.h>

#include "../fixture.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static char tmp_dir[192];
static struct trl_store *st;
static const int64_t NOW = 1790000000000; /* 2026-09-21T14:13:20Z */

static void setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/s", fx_base_dir);
    fx_rm_tree(tmp_dir);
    struct trl_store_opts o = {.dir = tmp_dir};
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_msg(trl_store_open(&o, &st, &d) == 0, "open: %s", d.message);
    trl_diag_reset(&d);
}

static void teardown(void)
{
    trl_store_close(st);
    st = NULL;
    fx_rm_tree(tmp_dir);
}

static void nop(void) {}

/* ---------------------------------------------------------------------------------------------
 * Rendering
 */
struct kv {
    const char *k, *v;
};

static int kv_lookup(void *ud, const char *name, size_t n, struct trl_buf *value)
{
    ck_assert_uint_eq(strlen(name), n);
    for (const struct kv *p = ud; p->k; p++)
        if (strcmp(p->k, name) == 0) {
            if (strcmp(p->v, "<fail>") == 0) return TRL_EIO;
            return trl_buf_adds(value, p->v) ? TRL_ENOMEM : 0;
        }
    return TRL_ENOTFOUND;
}

/* Renders tmpl with kv into md and html (owned strings, free()); returns the code. */
static int render(const char *tmpl, const struct kv *kv, char **md, char **html)
{
    struct trl_buf m, h;
    trl_buf_init(&m);
    trl_buf_init(&h);
    int rc = trl_notify_render(tmpl, kv_lookup, (void *)kv, &m, &h);
    *md = m.data ? trl_buf_steal(&m) : strdup("");
    *html = h.data ? trl_buf_steal(&h) : strdup("");
    return rc;
}

START_TEST(placeholders_blanks_unknown_and_literals)
{
    static const struct kv kv[] = {{"name", "Ann"}, {"a.b", "dotted"}, {"x_1", "X"}, {0, 0}};
    char *md, *html;
    ck_assert_int_eq(
        render("Hi {{name}}, {{ name }}, {{\tname  }}! {{a.b}} {{x_1}}", kv, &md, &html), 0);
    ck_assert_str_eq(md, "Hi Ann, Ann, Ann! dotted X");
    ck_assert_str_eq(html, "<p>Hi Ann, Ann, Ann! dotted X</p>\n");
    free(md);
    free(html);
    /* Unknown names and a missing lookup give empty text. */
    ck_assert_int_eq(render("[{{nope}}]({{ other }})", kv, &md, &html), 0);
    ck_assert_str_eq(md, "[]()");
    free(md);
    free(html);
    struct trl_buf m;
    trl_buf_init(&m);
    ck_assert_int_eq(trl_notify_render("a{{name}}b", NULL, NULL, &m, NULL), 0);
    ck_assert_str_eq(m.data, "ab");
    trl_buf_free(&m);
    /* Literal text: triple braces, unterminated, malformed names, single braces, empty. */
    static const char *const lit[] = {"{{{name}}}", "{{name", "{{ name }",   "{{na me}}",
                                      "{{name!}}",  "{name}", "{{}}",        "{{ }}",
                                      "x{{",        "}}",     "{{{{name}}}}"};
    for (size_t i = 0; i < sizeof(lit) / sizeof(lit[0]); i++) {
        ck_assert_int_eq(render(lit[i], kv, &md, &html), 0);
        LOOP_ASSERT(strcmp(md, lit[i]) == 0, "%s -> %s", lit[i], md);
        LOOP_ASSERT(!strstr(html, "Ann"), "%s -> %s", lit[i], html);
        free(md);
        free(html);
    }
    /* A name of 64 bytes is a placeholder, one of 65 is text. */
    char t64[80], t65[80];
    snprintf(t64, sizeof(t64), "{{%.64s}}",
             "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
    snprintf(t65, sizeof(t65), "{{%.65s}}",
             "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
    ck_assert_int_eq(render(t64, kv, &md, &html), 0);
    ck_assert_str_eq(md, "");
    free(md);
    free(html);
    ck_assert_int_eq(render(t65, kv, &md, &html), 0);
    ck_assert_str_eq(md, t65);
    free(md);
    free(html);
    /* Text after a placeholder's closing braces stays. */
    ck_assert_int_eq(render("{{name}}}", kv, &md, &html), 0);
    ck_assert_str_eq(md, "Ann}");
    free(md);
    free(html);
}
END_TEST

START_TEST(values_are_text_never_markup)
{
    char *md, *html;
    /* Every ASCII punctuation character comes out as itself (HTML-escaped only). */
    static const struct kv p[] = {{"v", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}, {0, 0}};
    ck_assert_int_eq(render("{{v}}", p, &md, &html), 0);
    ck_assert_str_eq(html, "<p>!&quot;#$%&amp;'()*+,-./:;&lt;=&gt;?@[\\]^_`{|}~</p>\n");
    free(md);
    free(html);
    /* A link with a javascript: target and emphasis, inside emphasis of the template. */
    static const struct kv inj[] = {{"title", "*[x](javascript:alert(1))*"}, {0, 0}};
    ck_assert_int_eq(render("Request **{{title}}** done", inj, &md, &html), 0);
    ck_assert_ptr_null(strstr(html, "<a"));
    ck_assert_ptr_null(strstr(html, "<em>"));
    ck_assert_ptr_null(strstr(html, "href"));
    ck_assert_ptr_nonnull(strstr(html, "*[x](javascript:alert(1))*"));
    free(md);
    free(html);
    /* Raw HTML, autolinks and entities in a value. */
    static const struct kv raw[] = {
        {"v", "<script>alert(1)</script> <img src=x onerror=alert(1)> <http://evil> &amp; &#60;"},
        {0, 0}};
    ck_assert_int_eq(render("{{v}}", raw, &md, &html), 0);
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "<img"));
    ck_assert_ptr_null(strstr(html, "<a"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    ck_assert_ptr_nonnull(strstr(html, "&amp;amp; &amp;#60;"));
    free(md);
    free(html);
    /* Block syntax on every line of a multi-line value, at the start of a template line: one
     * paragraph with line breaks and nothing else. */
    static const struct kv blk[] = {
        {"v",
         "  # heading\n\n- item\n    code\n> quote\n1. one\n2) two\n***\n===\n```\n<div>x</div>"
         "\r\n\ttabbed\n[ref]: http://x\n~~~"},
        {0, 0}};
    ck_assert_int_eq(render("{{v}}\n\nafter", blk, &md, &html), 0);
    static const char *const tags[] = {"<h1",   "<h2",         "<ul", "<ol",  "<li", "<pre",
                                       "<code", "<blockquote", "<hr", "<div", "<a"};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
        LOOP_ASSERT(!strstr(html, tags[i]), "%s in %s", tags[i], html);
    ck_assert_ptr_nonnull(strstr(html, "<p># heading<br />\n<br />\n- item<br />\ncode<br />"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;div&gt;x&lt;/div&gt;<br />\ntabbed<br />"));
    ck_assert_ptr_nonnull(strstr(html, "</p>\n<p>after</p>\n"));
    free(md);
    free(html);
    /* Values are trimmed; two lines make one hard break. */
    static const struct kv ml[] = {{"v", " \n line1\nline2 \n "}, {0, 0}};
    ck_assert_int_eq(render("[{{v}}]", ml, &md, &html), 0);
    ck_assert_str_eq(html, "<p>[line1<br />\nline2]</p>\n");
    free(md);
    free(html);
}
END_TEST

START_TEST(template_html_is_suppressed_and_chinese_passes)
{
    char *md, *html;
    static const struct kv kv[] = {{"name", "张三（测试）"}, {0, 0}};
    ck_assert_int_eq(render("<script>alert(1)</script>\n\nhi <b onclick=x>{{name}}</b> "
                            "[link](javascript:alert(1)) ![i](vbscript:x)",
                            kv, &md, &html),
                     0);
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "<b"));
    ck_assert_ptr_null(strstr(html, "javascript:"));
    ck_assert_ptr_null(strstr(html, "vbscript:"));
    ck_assert_ptr_nonnull(strstr(html, "raw HTML omitted"));
    ck_assert_ptr_nonnull(strstr(html, "张三（测试）"));
    free(md);
    free(html);
    /* Markdown of the template itself works. */
    ck_assert_int_eq(render("您好，**{{name}}**！\n\n- 一\n- 二", kv, &md, &html), 0);
    ck_assert_str_eq(md, "您好，**张三（测试）**！\n\n- 一\n- 二");
    ck_assert_str_eq(html, "<p>您好，<strong>张三（测试）</strong>！</p>\n<ul>\n<li>一</li>\n"
                           "<li>二</li>\n</ul>\n");
    free(md);
    free(html);
}
END_TEST

START_TEST(caps_utf8_and_lookup_errors)
{
    struct trl_buf m, h;
    trl_buf_init(&m);
    trl_buf_init(&h);
    /* A body of exactly the cap renders; one byte more is refused, buffers unchanged. */
    char *big = malloc(TRL_NOTIFY_BODY_MAX + 2);
    memset(big, 'a', TRL_NOTIFY_BODY_MAX);
    big[TRL_NOTIFY_BODY_MAX] = 0;
    ck_assert_int_eq(trl_notify_render(big, NULL, NULL, &m, &h), 0);
    ck_assert_uint_eq(m.len, TRL_NOTIFY_BODY_MAX);
    trl_buf_clear(&m);
    trl_buf_clear(&h);
    trl_buf_adds(&m, "keep");
    trl_buf_adds(&h, "keep");
    big[TRL_NOTIFY_BODY_MAX] = 'a';
    big[TRL_NOTIFY_BODY_MAX + 1] = 0;
    ck_assert_int_eq(trl_notify_render(big, NULL, NULL, &m, &h), TRL_ETOOBIG);
    ck_assert_str_eq(m.data, "keep");
    ck_assert_str_eq(h.data, "keep");
    free(big);
    /* Values are cut at TRL_NOTIFY_VALUE_MAX bytes ending in "…"; many of them hit the cap. */
    char *val = malloc(5001), *punct = malloc(5001);
    memset(val, 'x', 5000);
    val[5000] = 0;
    memset(punct, '*', 5000);
    punct[5000] = 0;
    const struct kv kv[] = {
        {"v", val}, {"p", punct}, {"bad", "a\xff\xc3(b"}, {"boom", "<fail>"}, {0, 0}};
    trl_buf_clear(&m);
    ck_assert_int_eq(trl_notify_render("{{v}}", kv_lookup, (void *)kv, &m, NULL), 0);
    ck_assert_uint_eq(m.len, TRL_NOTIFY_VALUE_MAX);
    ck_assert_str_eq(m.data + m.len - 3, "…");
    trl_buf_clear(&m);
    char many[200] = "";
    for (int i = 0; i < 8; i++)
        strcat(many, "{{p}}");
    ck_assert_int_eq(trl_notify_render(many, kv_lookup, (void *)kv, &m, NULL), 0);
    ck_assert_uint_eq(m.len, 8 * (2 * (TRL_NOTIFY_VALUE_MAX - 3) + 3));
    trl_buf_clear(&m);
    strcat(many, "{{p}}");
    ck_assert_int_eq(trl_notify_render(many, kv_lookup, (void *)kv, &m, NULL), TRL_ETOOBIG);
    ck_assert_uint_eq(m.len, 0);
    free(val);
    free(punct);
    /* Bad bytes: a template is refused, a value shows U+FFFD. */
    ck_assert_int_eq(trl_notify_render("a\xff", NULL, NULL, &m, NULL), TRL_EINVAL);
    ck_assert_int_eq(trl_notify_render("{{bad}}", kv_lookup, (void *)kv, &m, NULL), 0);
    ck_assert_str_eq(m.data, "a\xEF\xBF\xBD\xEF\xBF\xBD\\(b");
    /* A lookup's own error stops rendering and leaves the buffers as they were. */
    trl_buf_clear(&m);
    trl_buf_adds(&m, "keep");
    ck_assert_int_eq(trl_notify_render("x {{boom}} y", kv_lookup, (void *)kv, &m, &h), TRL_EIO);
    ck_assert_str_eq(m.data, "keep");
    ck_assert_str_eq(h.data, "keep");
    trl_buf_free(&m);
    trl_buf_free(&h);
}
END_TEST

START_TEST(subjects_are_plain_text_cut_on_a_character)
{
    struct trl_buf s;
    trl_buf_init(&s);
    static const struct kv kv[] = {{"t", "*[x](y)* <b>\nnext"}, {"zh", "中"}, {0, 0}};
    ck_assert_int_eq(trl_notify_render_text("  Re: {{ t }}\t{{none}} ", kv_lookup, (void *)kv, &s),
                     0);
    ck_assert_str_eq(s.data, "Re: *[x](y)* <b> next");
    /* 200 three-byte characters (600 bytes) are cut to at most 512 bytes ending in "…". */
    char tmpl[2000] = "";
    for (int i = 0; i < 200; i++)
        strcat(tmpl, "{{zh}}");
    trl_buf_clear(&s);
    ck_assert_int_eq(trl_notify_render_text(tmpl, kv_lookup, (void *)kv, &s), 0);
    ck_assert_uint_le(s.len, TRL_NOTIFY_SUBJECT_MAX);
    ck_assert_uint_eq(s.len, 510); /* 169 characters and the ellipsis */
    ck_assert(trl_utf8_valid(s.data, s.len));
    ck_assert_str_eq(s.data + s.len - 3, "…");
    ck_assert_int_eq(trl_notify_render_text("\xc3", NULL, NULL, &s), TRL_EINVAL);
    ck_assert_uint_eq(s.len, 510);
    trl_buf_free(&s);
}
END_TEST

/* The names used in a template, each once, into names (NULL-terminated). */
static size_t used_names(const char *t, char names[][65], size_t max)
{
    size_t n = 0;
    for (const char *p = strstr(t, "{{"); p; p = strstr(p + 2, "{{")) {
        const char *e = strstr(p, "}}");
        ck_assert_ptr_nonnull(e);
        char nm[65];
        snprintf(nm, sizeof(nm), "%.*s", (int)(e - p - 2), p + 2);
        size_t i = 0;
        while (i < n && strcmp(names[i], nm) != 0)
            i++;
        if (i == n && n < max) snprintf(names[n++], 65, "%s", nm);
    }
    return n;
}

static int worst_lookup(void *ud, const char *name, size_t n, struct trl_buf *value)
{
    (void)ud;
    (void)name;
    (void)n;
    for (int i = 0; i < 3 * TRL_NOTIFY_VALUE_MAX; i++)
        if (trl_buf_addc(value, "*_[<&\\"[i % 6])) return TRL_ENOMEM;
    return 0;
}

START_TEST(builtin_templates_in_both_languages)
{
    static const char *const kinds[] = {"approval_task", "approval_decided", "returned",
                                        "assigned",      "sla_warning",      "sla_breach"};
    static const char *const langs[] = {"en", "zh-CN"};
    for (size_t k = 0; k < 6; k++)
        for (size_t l = 0; l < 2; l++) {
            const struct trl_notify_tmpl *t = trl_notify_template(kinds[k], langs[l]);
            LOOP_ASSERT(t && strcmp(t->kind, kinds[k]) == 0, "%s %s", kinds[k], langs[l]);
            LOOP_ASSERT(t->subject[0] && t->body[0], "%s %s empty", kinds[k], langs[l]);
            /* Chinese texts are Chinese, English ones ASCII apart from quotes. */
            bool cjk = strstr(t->body, "\xe7") || strstr(t->body, "\xe5") ||
                       strstr(t->body, "\xe6") || strstr(t->body, "\xe4");
            LOOP_ASSERT(cjk == (l == 1), "%s %s language", kinds[k], langs[l]);
            char names[16][65];
            size_t n = used_names(t->subject, names, 16);
            char body_names[16][65];
            size_t bn = used_names(t->body, body_names, 16);
            for (size_t i = 0; i < bn; i++) {
                size_t j = 0;
                while (j < n && strcmp(names[j], body_names[i]) != 0)
                    j++;
                if (j == n) snprintf(names[n++], 65, "%s", body_names[i]);
            }
            size_t np = 0;
            while (t->placeholders[np])
                np++;
            LOOP_ASSERT(np == n, "%s %s: %zu listed, %zu used", kinds[k], langs[l], np, n);
            for (size_t i = 0; i < n; i++) {
                bool listed = false;
                for (size_t j = 0; j < np; j++)
                    listed |= strcmp(t->placeholders[j], names[i]) == 0;
                LOOP_ASSERT(listed, "%s %s: %s not listed", kinds[k], langs[l], names[i]);
            }
            /* Every built-in renders with no values at all, and with every value as long as it
             * can be and made of punctuation only (the longest escaping): a built-in can never
             * refuse a notification. */
            struct trl_buf m, h;
            trl_buf_init(&m);
            trl_buf_init(&h);
            LOOP_ASSERT(trl_notify_render(t->body, NULL, NULL, &m, &h) == 0, "%s", kinds[k]);
            trl_buf_clear(&m);
            LOOP_ASSERT(trl_notify_render(t->body, worst_lookup, NULL, &m, &h) == 0, "%s worst",
                        kinds[k]);
            LOOP_ASSERT(m.len > (size_t)n * TRL_NOTIFY_VALUE_MAX, "%s worst: %zu", kinds[k], m.len);
            trl_buf_free(&m);
            trl_buf_free(&h);
        }
    ck_assert_ptr_null(trl_notify_template("nope", "en"));
    ck_assert_ptr_null(trl_notify_template(NULL, "en"));
    ck_assert_ptr_eq(trl_notify_template("assigned", "fr"), trl_notify_template("assigned", "en"));
    ck_assert_ptr_eq(trl_notify_template("assigned", NULL), trl_notify_template("assigned", "en"));
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * The inbox on a store
 */
struct send_arg {
    struct trl_notify_msg m; /* what to send */
    int64_t now;             /* when */
    uint64_t id;             /* the new id */
};

static int send_fn(struct trl_txn *t, void *arg)
{
    struct send_arg *a = arg;
    return trl_notify_send(t, &a->m, a->now, &a->id);
}

static uint64_t send_one(const char *user, const char *kind, const char *lang, const struct kv *kv,
                         int64_t now)
{
    struct send_arg a = {.m = {.user = user,
                               .lang = lang,
                               .kind = kind,
                               .lookup = kv_lookup,
                               .ud = (void *)kv,
                               .link = {.type = "ticket", .record = 7}},
                         .now = now};
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), 0);
    ck_assert_uint_gt(a.id, 0);
    return a.id;
}

struct read_arg {
    const char *user; /* whose */
    uint64_t id;      /* which message, 0: all */
    int64_t now;      /* when */
    size_t n;         /* read_all: how many */
};

static int read_fn(struct trl_txn *t, void *arg)
{
    struct read_arg *a = arg;
    if (a->id) return trl_notify_read(t, a->user, a->id, a->now);
    return trl_notify_read_all(t, a->user, a->now, &a->n);
}

static int read_one(const char *user, uint64_t id, int64_t now)
{
    struct read_arg a = {.user = user, .id = id, .now = now};
    return trl_store_write(st, read_fn, &a);
}

static size_t read_all(const char *user, int64_t now)
{
    struct read_arg a = {.user = user, .now = now};
    ck_assert_int_eq(trl_store_write(st, read_fn, &a), 0);
    return a.n;
}

/* Lists a page as a cJSON tree (owned). */
static cJSON *list(const char *user, bool unread, size_t limit, uint64_t cursor)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_int_eq(trl_notify_list(t, user, unread, limit, cursor, &b), 0);
    trl_txn_end(t);
    cJSON *j = cJSON_Parse(b.data);
    ck_assert_msg(j != NULL, "%s", b.data);
    trl_buf_free(&b);
    return j;
}

static uint64_t unread_of(const char *user)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    uint64_t n = 99;
    ck_assert_int_eq(trl_notify_unread(t, user, &n), 0);
    trl_txn_end(t);
    return n;
}

/* Unread flags of user counted straight from the store (the key layout of notify.h). */
static uint64_t flags_of(const char *user)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    unsigned char k[80];
    size_t kn = strlen(user) + 2;
    k[0] = 'U';
    memcpy(k + 1, user, kn - 1);
    struct trl_cursor *c;
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_INBOX, &c), 0);
    uint64_t n = 0;
    for (int rc = trl_cursor_seek(c, k, kn); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice ck;
        trl_cursor_get(c, &ck, NULL);
        if (ck.n != kn + 8 || memcmp(ck.p, k, kn) != 0) break;
        n++;
    }
    trl_cursor_close(c);
    trl_txn_end(t);
    return n;
}

static int check_store(char *msg, size_t n)
{
    struct trl_txn *t;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_notify_check(t, &d);
    snprintf(msg, n, "%s", d.message);
    trl_diag_reset(&d);
    trl_txn_end(t);
    return rc;
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

START_TEST(send_list_read_and_read_all)
{
    static const struct kv kv[] = {
        {"title", "Printer *jam*"}, {"actor", "bob"}, {"type", "Ticket"}, {0, 0}};
    uint64_t a1 = send_one("alice", "assigned", "en", kv, NOW);
    uint64_t b1 = send_one("bob", "assigned", "en", kv, NOW + 1);
    uint64_t a2 = send_one("alice", "assigned", "zh-CN", kv, NOW + 2);
    uint64_t a3 = send_one("alice", "sla_breach", "en", kv, NOW + 3);
    ck_assert(a1 < b1 && b1 < a2 && a2 < a3);
    ck_assert_uint_eq(unread_of("alice"), 3);
    ck_assert_uint_eq(unread_of("bob"), 1);
    ck_assert_uint_eq(unread_of("carol"), 0);

    cJSON *j = list("alice", false, 10, 0);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), 3);
    ck_assert_int_eq((int)jnum(j, "unread"), 3);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next_cursor")));
    const cJSON *m3 = cJSON_GetArrayItem(items, 0), *m2 = cJSON_GetArrayItem(items, 1);
    const cJSON *m1 = cJSON_GetArrayItem(items, 2);
    ck_assert_uint_eq((uint64_t)jnum(m3, "id"), a3);
    ck_assert_uint_eq((uint64_t)jnum(m2, "id"), a2);
    ck_assert_uint_eq((uint64_t)jnum(m1, "id"), a1);
    ck_assert_str_eq(jstr(m1, "kind"), "assigned");
    ck_assert_str_eq(jstr(m1, "subject"), "Assigned to you: Printer *jam*");
    ck_assert_str_eq(jstr(m1, "body_md"), "Ticket “Printer \\*jam\\*” was assigned to you by bob.");
    ck_assert_str_eq(jstr(m1, "body_html"),
                     "<p>Ticket “Printer *jam*” was assigned to you by bob.</p>\n");
    ck_assert_str_eq(jstr(m2, "subject"), "分配给您：Printer *jam*");
    ck_assert_str_eq(jstr(m1, "created_at"), "2026-09-21T14:13:20.000Z");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m1, "read_at")));
    const cJSON *link = cJSON_GetObjectItemCaseSensitive(m1, "link");
    ck_assert_str_eq(jstr(link, "type"), "ticket");
    ck_assert_int_eq((int)jnum(link, "record"), 7);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(link, "task")));
    cJSON_Delete(j);

    /* Read one; reading again later keeps the first time. */
    ck_assert_int_eq(read_one("alice", a2, NOW + 100), 0);
    ck_assert_int_eq(read_one("alice", a2, NOW + 999999), 0);
    ck_assert_uint_eq(unread_of("alice"), 2);
    struct trl_txn *t;
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_notify_get(t, "alice", a2, &b), 0);
    j = cJSON_Parse(b.data);
    ck_assert_str_eq(jstr(j, "read_at"), "2026-09-21T14:13:20.100Z");
    ck_assert_str_eq(jstr(j, "subject"), "分配给您：Printer *jam*");
    cJSON_Delete(j);
    /* Someone else's message and an unknown one: not found, the same answer. */
    trl_buf_clear(&b);
    ck_assert_int_eq(trl_notify_get(t, "alice", b1, &b), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_notify_get(t, "alice", 999, &b), TRL_ENOTFOUND);
    ck_assert_int_eq(trl_notify_get(t, "", a1, &b), TRL_EINVAL);
    ck_assert_uint_eq(b.len, 0);
    trl_txn_end(t);
    trl_buf_free(&b);
    ck_assert_int_eq(read_one("alice", b1, NOW), TRL_ENOTFOUND);
    ck_assert_int_eq(read_one("alice", 999, NOW), TRL_ENOTFOUND);
    ck_assert_uint_eq(unread_of("bob"), 1);

    j = list("alice", true, 10, 0);
    items = cJSON_GetObjectItemCaseSensitive(j, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);
    ck_assert_uint_eq((uint64_t)jnum(cJSON_GetArrayItem(items, 0), "id"), a3);
    ck_assert_uint_eq((uint64_t)jnum(cJSON_GetArrayItem(items, 1), "id"), a1);
    cJSON_Delete(j);

    /* Read all: the two left, then none; bob's stays unread. */
    ck_assert_uint_eq(read_all("alice", NOW + 200), 2);
    ck_assert_uint_eq(read_all("alice", NOW + 300), 0);
    ck_assert_uint_eq(unread_of("alice"), 0);
    ck_assert_uint_eq(unread_of("bob"), 1);
    j = list("alice", false, 10, 0);
    items = cJSON_GetObjectItemCaseSensitive(j, "items");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(items, 0), "read_at"), "2026-09-21T14:13:20.200Z");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(items, 1), "read_at"), "2026-09-21T14:13:20.100Z");
    cJSON_Delete(j);
    char msg[512];
    ck_assert_msg(check_store(msg, sizeof(msg)) == 0, "%s", msg);
}
END_TEST

START_TEST(refusals_store_nothing)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct send_arg a = {.m = {.user = "alice", .kind = "assigned", .d = &d}, .now = NOW};
    const char *users[] = {"", NULL,
                           "a234567890123456789012345678901234567890123456789012345678901234"};
    for (int i = 0; i < 3; i++) {
        a.m.user = users[i];
        ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_EINVAL);
        ck_assert_str_eq(d.field, "user");
    }
    a.m.user = "alice";
    const char *kinds[] = {"", "Bad", "has space", "k23456789012345678901234567890123"};
    for (int i = 0; i < 4; i++) {
        a.m.kind = kinds[i];
        ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_EINVAL);
        ck_assert_str_eq(d.field, "kind");
    }
    /* A kind of its own needs both texts. */
    a.m.kind = "custom";
    a.m.subject = "S {{x}}";
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_EINVAL);
    ck_assert_str_eq(d.field, "body");
    ck_assert_ptr_nonnull(strstr(d.message_zh, "custom"));
    a.m.body = "a\xff";
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_EINVAL);
    ck_assert_str_eq(d.field, "body");
    char *big = malloc(TRL_NOTIFY_BODY_MAX + 10);
    memset(big, 'b', TRL_NOTIFY_BODY_MAX + 9);
    big[TRL_NOTIFY_BODY_MAX + 9] = 0;
    a.m.body = big;
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(d.message, "16384"));
    ck_assert_ptr_nonnull(strstr(d.message_zh, "16384"));
    free(big);
    a.m.body = "B";
    a.m.link.type = "t234567890123456789012345678901234567890123456789012345678901234";
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), TRL_EINVAL);
    ck_assert_str_eq(d.field, "link.type");
    trl_diag_reset(&d);
    ck_assert_uint_eq(unread_of("alice"), 0);
    cJSON *j = list("alice", false, 10, 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items")), 0);
    cJSON_Delete(j);
    /* The same message with a valid link goes through; with a NULL diag too. */
    a.m.link.type = "";
    a.m.d = NULL;
    ck_assert_int_eq(trl_store_write(st, send_fn, &a), 0);
    j = list("alice", false, 10, 0);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "items"), 0);
    ck_assert_str_eq(jstr(m, "subject"), "S");
    ck_assert_str_eq(jstr(m, "kind"), "custom");
    ck_assert(cJSON_IsNull(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "link"), "type")));
    cJSON_Delete(j);
    /* list refuses a zero limit and an empty user. */
    struct trl_txn *t;
    struct trl_buf b;
    trl_buf_init(&b);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_notify_list(t, "alice", false, 0, 0, &b), TRL_EINVAL);
    ck_assert_int_eq(trl_notify_list(t, "", false, 1, 0, &b), TRL_EINVAL);
    ck_assert_uint_eq(b.len, 0);
    trl_txn_end(t);
    trl_buf_free(&b);
}
END_TEST

struct many_arg {
    const char *user; /* recipient */
    int n;            /* how many to send */
};

static int many_fn(struct trl_txn *t, void *arg)
{
    struct many_arg *a = arg;
    static const struct kv kv[] = {{"title", "T"}, {0, 0}};
    for (int i = 0; i < a->n; i++) {
        struct trl_notify_msg m = {
            .user = a->user, .kind = "assigned", .lookup = kv_lookup, .ud = (void *)kv};
        int rc = trl_notify_send(t, &m, NOW + i, NULL);
        if (rc) return rc;
    }
    return 0;
}

/* Walks every page of user's inbox; returns the ids seen, newest first, in ids. */
static size_t walk(const char *user, bool unread, size_t limit, uint64_t *ids, size_t max)
{
    size_t n = 0;
    uint64_t cursor = 0;
    for (int pages = 0; pages < 1000; pages++) {
        cJSON *j = list(user, unread, limit, cursor);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        LOOP_ASSERT((size_t)cJSON_GetArraySize(items) <= limit, "page too long");
        for (const cJSON *it = items->child; it; it = it->next) {
            LOOP_ASSERT(n < max, "too many items");
            ids[n++] = (uint64_t)jnum(it, "id");
        }
        const char *next = jstr(j, "next_cursor");
        cursor = next ? strtoull(next, NULL, 10) : 0;
        if (next) LOOP_ASSERT(cursor == ids[n - 1], "cursor is the last id of the page");
        cJSON_Delete(j);
        if (!next) break;
    }
    return n;
}

START_TEST(pages_follow_cursors)
{
    struct many_arg a = {.user = "alice", .n = 25};
    ck_assert_int_eq(trl_store_write(st, many_fn, &a), 0);
    a.user = "bob";
    a.n = 3;
    ck_assert_int_eq(trl_store_write(st, many_fn, &a), 0);
    uint64_t ids[64];
    size_t limits[] = {1, 7, 10, 24, 25, 26, 1000};
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        size_t n = walk("alice", false, limits[l], ids, 64);
        LOOP_ASSERT(n == 25, "limit %zu: %zu items", limits[l], n);
        for (size_t i = 1; i < n; i++)
            LOOP_ASSERT(ids[i] < ids[i - 1], "limit %zu: order at %zu", limits[l], i);
    }
    /* Read every third one; the unread pages hold exactly the others. */
    size_t n = walk("alice", false, 100, ids, 64);
    for (size_t i = 0; i < n; i += 3)
        ck_assert_int_eq(read_one("alice", ids[i], NOW + 5000), 0);
    uint64_t un[64];
    size_t m = walk("alice", true, 4, un, 64);
    ck_assert_uint_eq(m, 16);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i % 3) LOOP_ASSERT(un[k++] == ids[i], "unread page item %zu", k);
    ck_assert_uint_eq(unread_of("alice"), 16);
    /* A page exactly at the end says there is no more. */
    cJSON *j = list("bob", false, 3, 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next_cursor")));
    cJSON_Delete(j);
    /* read_all past one internal batch (256). */
    a.user = "carol";
    a.n = 600;
    ck_assert_int_eq(trl_store_write(st, many_fn, &a), 0);
    ck_assert_uint_eq(unread_of("carol"), 600);
    ck_assert_uint_eq(read_all("carol", NOW + 1), 600);
    ck_assert_uint_eq(unread_of("carol"), 0);
    ck_assert_uint_eq(flags_of("carol"), 0);
    char msg[512];
    ck_assert_msg(check_store(msg, sizeof(msg)) == 0, "%s", msg);
}
END_TEST

/* A model of three inboxes driven by a fixed-seed generator. */
#define NUSERS 3
#define MAXMSG 512
struct model {
    uint64_t seed;                     /* generator state */
    uint64_t ids[NUSERS][MAXMSG];      /* messages of each user, oldest first */
    bool read[NUSERS][MAXMSG];         /* read flags */
    size_t n[NUSERS];                  /* messages per user */
    int64_t now;                       /* clock */
    size_t ops, sends, reads, foreign; /* statistics */
};
static const char *const USERS[NUSERS] = {"ann", "ben", "chen"};

static uint32_t rnd(struct model *m, uint32_t below)
{
    m->seed = m->seed * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(m->seed >> 33) % below;
}

static size_t model_unread(const struct model *m, int u)
{
    size_t c = 0;
    for (size_t i = 0; i < m->n[u]; i++)
        c += !m->read[u][i];
    return c;
}

static int random_fn(struct trl_txn *t, void *arg)
{
    struct model *m = arg;
    for (int step = 0; step < 25; step++, m->ops++) {
        int u = (int)rnd(m, NUSERS);
        uint32_t op = rnd(m, 100);
        m->now += 1000;
        int rc;
        if (op < 45 && m->n[u] < MAXMSG) {
            static const struct kv kv[] = {{"title", "x"}, {0, 0}};
            struct trl_notify_msg msg = {
                .user = USERS[u], .kind = "returned", .lookup = kv_lookup, .ud = (void *)kv};
            uint64_t id;
            if ((rc = trl_notify_send(t, &msg, m->now, &id))) return rc;
            m->ids[u][m->n[u]] = id;
            m->read[u][m->n[u]++] = false;
            m->sends++;
        } else if (op < 80 && m->n[u]) {
            size_t i = rnd(m, (uint32_t)m->n[u]);
            if ((rc = trl_notify_read(t, USERS[u], m->ids[u][i], m->now))) return rc;
            m->read[u][i] = true;
            m->reads++;
        } else if (op < 90) {
            /* Someone else's message or an unknown id: not found, nothing changes. */
            int o = (u + 1) % NUSERS;
            uint64_t id = m->n[o] ? m->ids[o][rnd(m, (uint32_t)m->n[o])] : 1u << 30;
            if (trl_notify_read(t, USERS[u], id, m->now) != TRL_ENOTFOUND) return TRL_EINTERNAL;
            m->foreign++;
        } else if (op < 95) {
            size_t n;
            if ((rc = trl_notify_read_all(t, USERS[u], m->now, &n))) return rc;
            if (n != model_unread(m, u)) return TRL_EINTERNAL;
            for (size_t i = 0; i < m->n[u]; i++)
                m->read[u][i] = true;
        } else {
            uint64_t n;
            if ((rc = trl_notify_unread(t, USERS[u], &n))) return rc;
            if (n != model_unread(m, u)) return TRL_EINTERNAL;
        }
    }
    return 0;
}

START_TEST(counts_match_flags_after_random_operations)
{
    static struct model m; /* large: keep it off the stack */
    memset(&m, 0, sizeof(m));
    m.seed = 20260921;
    m.now = NOW;
    for (int round = 0; round < 40; round++) {
        ck_assert_int_eq(trl_store_write(st, random_fn, &m), 0);
        for (int u = 0; u < NUSERS; u++) {
            uint64_t want = model_unread(&m, u);
            LOOP_ASSERT(unread_of(USERS[u]) == want, "round %d %s count", round, USERS[u]);
            LOOP_ASSERT(flags_of(USERS[u]) == want, "round %d %s flags", round, USERS[u]);
            uint64_t ids[MAXMSG];
            size_t n = walk(USERS[u], true, 50, ids, MAXMSG), k = 0;
            LOOP_ASSERT(n == want, "round %d %s unread list", round, USERS[u]);
            for (size_t i = m.n[u]; i-- > 0;)
                if (!m.read[u][i])
                    LOOP_ASSERT(ids[k++] == m.ids[u][i], "round %d %s unread ids", round, USERS[u]);
        }
        char msg[512];
        LOOP_ASSERT(check_store(msg, sizeof(msg)) == 0, "round %d: %s", round, msg);
    }
    ck_assert_uint_eq(m.ops, 1000);
    ck_assert_uint_gt(m.sends, 300);
    ck_assert_uint_gt(m.reads, 200);
    ck_assert_uint_gt(m.foreign, 50);
}
END_TEST

struct damage {
    int what;   /* 0: a flag without its message; 1: carl's count; 2: alice's count */
    uint64_t v; /* the count to write */
};

static int damage_fn(struct trl_txn *t, void *arg)
{
    const struct damage *dm = arg;
    unsigned char v[8];
    trl_put_u64be(v, dm->v);
    if (dm->what == 0) {
        const unsigned char k[13] = {'U', 'b', 'o', 'b', 0, 0, 0, 0, 0, 0, 0, 0, 0x7f};
        return trl_txn_put(t, TRL_DB_INBOX, k, sizeof(k), "", 0, 0);
    }
    if (dm->what == 1) return trl_txn_put(t, TRL_DB_INBOX, "Ccarl", 6, v, 8, 0);
    return trl_txn_put(t, TRL_DB_INBOX, "Calice", 7, v, 8, 0);
}

START_TEST(check_catches_damage)
{
    struct many_arg a = {.user = "alice", .n = 3};
    ck_assert_int_eq(trl_store_write(st, many_fn, &a), 0);
    char msg[512];
    ck_assert_msg(check_store(msg, sizeof(msg)) == 0, "%s", msg);
    struct damage dm = {.what = 2, .v = 2};
    ck_assert_int_eq(trl_store_write(st, damage_fn, &dm), 0);
    ck_assert_int_eq(check_store(msg, sizeof(msg)), TRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "alice") && strstr(msg, "count 2"), "%s", msg);
    dm.v = 3;
    ck_assert_int_eq(trl_store_write(st, damage_fn, &dm), 0);
    ck_assert_msg(check_store(msg, sizeof(msg)) == 0, "%s", msg);
    ck_assert_uint_eq(read_all("alice", NOW), 3);
    ck_assert_msg(check_store(msg, sizeof(msg)) == 0, "%s", msg);
    dm = (struct damage){.what = 1, .v = 2};
    ck_assert_int_eq(trl_store_write(st, damage_fn, &dm), 0);
    ck_assert_int_eq(check_store(msg, sizeof(msg)), TRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "carl") && strstr(msg, "unread messages 0"), "%s", msg);
    dm = (struct damage){.what = 0};
    ck_assert_int_eq(trl_store_write(st, damage_fn, &dm), 0);
    ck_assert_int_eq(check_store(msg, sizeof(msg)), TRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "bob") && strstr(msg, "no message"), "%s", msg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("notify");
    TCase *r = tcase_create("render");
    tcase_add_checked_fixture(r, nop, nop);
    tcase_add_test(r, placeholders_blanks_unknown_and_literals);
    tcase_add_test(r, values_are_text_never_markup);
    tcase_add_test(r, template_html_is_suppressed_and_chinese_passes);
    tcase_add_test(r, caps_utf8_and_lookup_errors);
    tcase_add_test(r, subjects_are_plain_text_cut_on_a_character);
    tcase_add_test(r, builtin_templates_in_both_languages);
    suite_add_tcase(s, r);
    TCase *tc = fx_tcase("inbox", setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, send_list_read_and_read_all);
    tcase_add_test(tc, refusals_store_nothing);
    tcase_add_test(tc, pages_follow_cursors);
    tcase_add_test(tc, counts_match_flags_after_random_operations);
    tcase_add_test(tc, check_catches_damage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
