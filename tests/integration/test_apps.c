/* Apps on disk through the real `trellis` binary: install, export (byte-for-byte round trip and
 * canonical output), list, refusals of broken apps (whole app, naming the file, nothing stored),
 * and --help on every subcommand.
 *
 * Not covered: `trellis serve` refusing to start on a stored definition it cannot load. Every
 * definition that reaches the store went through the same compile step that serve runs at start,
 * so that state cannot be produced through the CLI or the API, only by writing LMDB directly. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* A fresh temporary folder inside reg (removed by rm_tree, or with reg at the end). */
static void make_tmp(char *out, size_t n)
{
    snprintf(out, n, "%s/tXXXXXX", tmpreg_dir());
    ck_assert_ptr_nonnull(mkdtemp(out));
}

static void rm_tree(const char *dir)
{
    if (strncmp(dir, "/tmp/trellis-test-", 18) != 0 || strstr(dir, "..")) return;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "/bin/rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(tmp, 0755);
        *p = '/';
    }
    ck_assert_msg(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s", tmp);
}

/* Writes text to dir/rel, creating folders. */
static void put_file(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

/* Relative paths of every regular file under dir (recursive), sorted, into list (owned). */
static void list_files_rec(const char *root, const char *rel, char ***list, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s", path);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char sub[1024], full[2100];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        ck_assert_int_eq(stat(full, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            list_files_rec(root, sub, list, n);
        } else {
            *list = realloc(*list, (*n + 1) * sizeof(char *));
            (*list)[(*n)++] = strdup(sub);
        }
    }
    closedir(d);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char **list_files(const char *root, size_t *n)
{
    char **list = NULL;
    *n = 0;
    list_files_rec(root, "", &list, n);
    qsort(list, *n, sizeof(char *), str_cmp);
    return list;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Both folders hold the same files with the same bytes. */
static void assert_same_tree(const char *a, const char *b)
{
    size_t na, nb;
    char **la = list_files(a, &na), **lb = list_files(b, &nb);
    for (size_t i = 0; i < na || i < nb; i++)
        ck_assert_msg(i < na && i < nb && strcmp(la[i], lb[i]) == 0,
                      "file lists differ: %s has %s, %s has %s", a, i < na ? la[i] : "(none)", b,
                      i < nb ? lb[i] : "(none)");
    for (size_t i = 0; i < na; i++) {
        char pa[1100], pb[1100];
        snprintf(pa, sizeof(pa), "%s/%s", a, la[i]);
        snprintf(pb, sizeof(pb), "%s/%s", b, lb[i]);
        size_t sa, sb;
        char *ta = read_file(pa, &sa), *tb = read_file(pb, &sb);
        ck_assert_ptr_nonnull(ta);
        ck_assert_ptr_nonnull(tb);
        ck_assert_msg(sa == sb && memcmp(ta, tb, sa) == 0,
                      "%s differs byte for byte:\n--- %s\n%s\n--- %s\n%s", la[i], pa, ta, pb, tb);
        free(ta);
        free(tb);
    }
    free_list(la, na);
    free_list(lb, nb);
}

/* Runs trellis with up to 6 arguments; returns the exit code, output in *out (owned). */
static int cli(char **out, const char *a0, const char *a1, const char *a2, const char *a3,
               const char *a4, const char *a5)
{
    const char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    char *o = NULL;
    int rc = run_trellis(argv, &o, 120);
    if (out)
        *out = o ? o : strdup("");
    else
        free(o);
    return rc;
}

static int install(const char *data, const char *app, char **out)
{
    return cli(out, "app", "install", app, "--data", data, NULL);
}

static int export_app(const char *data, const char *name, const char *dir, char **out)
{
    return cli(out, "app", "export", name, dir, "--data", data);
}

/* `trellis app list` output (owned). */
static char *app_list(const char *data)
{
    char *out = NULL;
    int rc = cli(&out, "app", "list", "--data", data, NULL, NULL);
    ck_assert_msg(rc == 0, "app list: %d %s", rc, out);
    return out;
}

static void assert_contains(const char *hay, const char *needle)
{
    ck_assert_msg(hay && strstr(hay, needle) != NULL, "expected \"%s\" in:\n%s", needle,
                  hay ? hay : "(null)");
}

static void assert_check_ok(const char *data)
{
    char *out = NULL;
    int rc = store_check(data, &out);
    ck_assert_msg(rc == 0, "trellis check failed (%d):\n%s", rc, out);
    free(out);
}

static const char *sample(void)
{
    static char p[1024];
    snprintf(p, sizeof(p), "%s/samples/marketing", trellis_src());
    return p;
}

/* The second app: definitions written by hand in a non-canonical key order and layout. */
static void write_zeta(const char *dir, const char *version)
{
    char appjson[256];
    snprintf(appjson, sizeof(appjson),
             "{\"roles\": [], \"version\": \"%s\", \"dependencies\": [],\n"
             "\t\"labels\": {\"zh-CN\": \"\\u6d4b\\u8bd5\", \"en\": \"Zeta\"}, \"name\": \"zeta\"}",
             version);
    put_file(dir, "app.json", appjson);
    put_file(
        dir, "types/zeta_item.json",
        "{\"fields\":[{\"max_length\":80,\"required\":true,\"type\":\"text\",\"name\":\"title\","
        "\"labels\":{\"zh-CN\":\"标题\",\"en\":\"Title\"}},\n"
        "  "
        "{\"options\":[\"low\",\"high\"],\"default\":\"low\",\"type\":\"enum\",\"name\":\"prio\"},"
        "{\"scale\":3,\"min\":\"0\",\"type\":\"decimal\",\"name\":\"cost\",\"help\":{\"en\":"
        "\"In \\\"EUR\\\"\"}}],\n"
        "\"title_field\":\"title\",\"autoname\":\"Z-{#####}\",\"labels\":{\"en\":\"Zeta item\"},"
        "\"name\":\"zeta_item\"}");
    put_file(dir, "types/zeta_note.json",
             "{ \"name\" : \"zeta_note\" , \"fields\" : [ { \"type\" : \"ref\" , \"ref_type\" : "
             "\"zeta_item\" , \"name\" : \"item\" } , { \"type\" : \"longtext\" , \"name\" : "
             "\"body\" } ] }");
    put_file(
        dir, "forms/zeta_item.json",
        "{\"sections\":[{\"fields\":[\"title\",\"prio\"],\"columns\":2}],\"name\":\"zeta_item\"}");
    put_file(dir, "hooks/zeta_item.lua",
             "-- hooks are stored verbatim\nlocal M = {}\nfunction M.before_create(ctx, rec)\n"
             "  rec.title = rec.title   \nend\nreturn M\n");
}

/* What `app export` must write for types/zeta_item.json: known keys in their fixed order,
 * 2-space indent, arrays of scalars on one line, "\n" at the end. */
static const char *zeta_item_canonical = "{\n"
                                         "  \"name\": \"zeta_item\",\n"
                                         "  \"labels\": {\n"
                                         "    \"en\": \"Zeta item\"\n"
                                         "  },\n"
                                         "  \"title_field\": \"title\",\n"
                                         "  \"autoname\": \"Z-{#####}\",\n"
                                         "  \"fields\": [\n"
                                         "    {\n"
                                         "      \"name\": \"title\",\n"
                                         "      \"type\": \"text\",\n"
                                         "      \"labels\": {\n"
                                         "        \"en\": \"Title\",\n"
                                         "        \"zh-CN\": \"标题\"\n"
                                         "      },\n"
                                         "      \"required\": true,\n"
                                         "      \"max_length\": 80\n"
                                         "    },\n"
                                         "    {\n"
                                         "      \"name\": \"prio\",\n"
                                         "      \"type\": \"enum\",\n"
                                         "      \"default\": \"low\",\n"
                                         "      \"options\": [\"low\", \"high\"]\n"
                                         "    },\n"
                                         "    {\n"
                                         "      \"name\": \"cost\",\n"
                                         "      \"type\": \"decimal\",\n"
                                         "      \"help\": {\n"
                                         "        \"en\": \"In \\\"EUR\\\"\"\n"
                                         "      },\n"
                                         "      \"scale\": 3,\n"
                                         "      \"min\": \"0\"\n"
                                         "    }\n"
                                         "  ]\n"
                                         "}\n";

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

START_TEST(sample_round_trip_byte_for_byte)
{
    char data[64], out_dir[128];
    make_tmp(data, sizeof(data));
    snprintf(out_dir, sizeof(out_dir), "%s/export", data);
    char *out = NULL;
    int rc = install(data, sample(), &out);
    ck_assert_msg(rc == 0, "install: %d %s", rc, out);
    assert_contains(out, "installed marketing 0.1.0");
    free(out);
    rc = export_app(data, "marketing", out_dir, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    /* Every file of the sample, the same bytes, and nothing else. */
    assert_same_tree(sample(), out_dir);

    /* Installing again changes nothing; exporting over the old export is still identical. */
    rc = install(data, sample(), &out);
    ck_assert_msg(rc == 0, "reinstall: %d %s", rc, out);
    assert_contains(out, "already up to date");
    free(out);
    rc = export_app(data, "marketing", out_dir, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    assert_same_tree(sample(), out_dir);

    /* An app that is not installed cannot be exported. */
    char none[128];
    snprintf(none, sizeof(none), "%s/none", data);
    rc = export_app(data, "nope", none, &out);
    ck_assert_int_ne(rc, 0);
    assert_contains(out, "nope");
    free(out);
    assert_check_ok(data);
    rm_tree(data);
}
END_TEST

START_TEST(non_canonical_app_exports_canonical)
{
    char data[64], data2[64], src[128], out1[128], out2[128], out3[128];
    make_tmp(data, sizeof(data));
    make_tmp(data2, sizeof(data2));
    snprintf(src, sizeof(src), "%s/zeta-src", data);
    snprintf(out1, sizeof(out1), "%s/zeta-out1", data);
    snprintf(out2, sizeof(out2), "%s/zeta-out2", data2);
    snprintf(out3, sizeof(out3), "%s/zeta-out3", data);
    write_zeta(src, "1.2.3");
    char *out = NULL;
    int rc = install(data, src, &out);
    ck_assert_msg(rc == 0, "install: %d %s", rc, out);
    assert_contains(out, "installed zeta 1.2.3");
    free(out);
    rc = export_app(data, "zeta", out1, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);

    /* The same set of files, each canonical and meaning the same as its source. */
    size_t ns, ne;
    char **ls = list_files(src, &ns), **le = list_files(out1, &ne);
    ck_assert_uint_eq(ns, ne);
    for (size_t i = 0; i < ns; i++) {
        ck_assert_str_eq(ls[i], le[i]);
        char ps[1100], pe[1100];
        snprintf(ps, sizeof(ps), "%s/%s", src, ls[i]);
        snprintf(pe, sizeof(pe), "%s/%s", out1, le[i]);
        char *ts = read_file(ps, NULL), *te = read_file(pe, NULL);
        if (strstr(ls[i], ".lua")) {
            ck_assert_str_eq(ts, te); /* hooks verbatim */
        } else {
            cJSON *js = cJSON_Parse(ts), *je = cJSON_Parse(te);
            ck_assert_msg(je != NULL, "%s: exported file is not JSON:\n%s", ls[i], te);
            ck_assert_msg(cJSON_Compare(js, je, true), "%s: content changed:\n%s\nvs\n%s", ls[i],
                          ts, te);
            ck_assert_msg(strcmp(ts, te) != 0, "%s: expected a canonical rewrite", ls[i]);
            /* Canonical: 2-space indent, newline at the end, no tabs, raw UTF-8. */
            ck_assert_msg(te[strlen(te) - 1] == '\n' && !strchr(te, '\t') &&
                              strncmp(te, "{\n  \"name\": ", 12) == 0 && !strstr(te, "\\u"),
                          "%s is not canonical:\n%s", ls[i], te);
            cJSON_Delete(js);
            cJSON_Delete(je);
        }
        free(ts);
        free(te);
    }
    free_list(ls, ns);
    free_list(le, ne);
    char p[1100];
    snprintf(p, sizeof(p), "%s/types/zeta_item.json", out1);
    char *item = read_file(p, NULL);
    ck_assert_str_eq(item, zeta_item_canonical);
    free(item);
    snprintf(p, sizeof(p), "%s/app.json", out1);
    char *app = read_file(p, NULL);
    ck_assert_str_eq(app, "{\n  \"name\": \"zeta\",\n  \"version\": \"1.2.3\",\n  \"labels\": {\n"
                          "    \"en\": \"Zeta\",\n    \"zh-CN\": \"测试\"\n  },\n  \"roles\": [],\n"
                          "  \"dependencies\": []\n}\n");
    free(app);

    /* Installing the export elsewhere and exporting again: byte-identical. */
    rc = install(data2, out1, &out);
    ck_assert_msg(rc == 0, "install of the export: %d %s", rc, out);
    free(out);
    rc = export_app(data2, "zeta", out2, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    assert_same_tree(out1, out2);

    /* Installing the canonical export over the original install changes nothing. */
    rc = install(data, out1, &out);
    ck_assert_msg(rc == 0, "reinstall: %d %s", rc, out);
    assert_contains(out, "already up to date");
    free(out);
    rc = export_app(data, "zeta", out3, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    assert_same_tree(out1, out3);
    assert_check_ok(data);
    assert_check_ok(data2);
    rm_tree(data);
    rm_tree(data2);
}
END_TEST

START_TEST(app_list_names_and_versions)
{
    char data[64], src[128];
    make_tmp(data, sizeof(data));
    snprintf(src, sizeof(src), "%s/zeta-src", data);
    char *out = NULL;
    ck_assert_int_eq(install(data, sample(), &out), 0);
    free(out);
    char *list = app_list(data);
    ck_assert_msg(json_contains(list, "[{\"name\":\"marketing\",\"version\":\"0.1.0\",\"types\":"
                                      "[\"marketing_request\"]}]"),
                  "%s", list);
    free(list);
    write_zeta(src, "2.0.0");
    ck_assert_int_eq(install(data, src, &out), 0);
    free(out);
    list = app_list(data);
    ck_assert_msg(json_contains(list, "[{\"name\":\"marketing\",\"version\":\"0.1.0\"},"
                                      "{\"name\":\"zeta\",\"version\":\"2.0.0\",\"labels\":{\"en\":"
                                      "\"Zeta\"},\"types\":[\"zeta_item\",\"zeta_note\"]}]"),
                  "%s", list);
    free(list);
    /* An upgrade shows the new version. */
    write_zeta(src, "2.1.0");
    ck_assert_int_eq(install(data, src, &out), 0);
    assert_contains(out, "installed zeta 2.1.0");
    free(out);
    list = app_list(data);
    ck_assert_msg(json_contains(list, "[{\"name\":\"marketing\"},{\"name\":\"zeta\",\"version\":"
                                      "\"2.1.0\"}]"),
                  "%s", list);
    free(list);
    rm_tree(data);
}
END_TEST

/* Installs app folder dir into S.dir and expects a refusal whose output contains each needle. */
static struct srv S;

static void refused(const char *dir, const char *const *needles)
{
    char *before = app_list(S.dir);
    char *out = NULL;
    int rc = install(S.dir, dir, &out);
    ck_assert_msg(rc != 0, "install of %s was accepted:\n%s", dir, out);
    for (const char *const *n = needles; *n; n++)
        assert_contains(out, *n);
    free(out);
    char *after = app_list(S.dir);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}

/* A valid copy of zeta with one file replaced (or added). */
static void zeta_with(const char *dir, const char *rel, const char *text)
{
    rm_tree(dir);
    mkdirs(dir);
    write_zeta(dir, "3.0.0");
    if (rel) put_file(dir, rel, text);
}

START_TEST(broken_apps_refused_whole)
{
    int irc = srv_init(&S, NULL);
    tmpreg_add(S.dir);
    ck_assert_int_eq(irc, 0);
    char src[128];
    make_tmp(src, sizeof(src));

    /* JSON syntax error: file, line and column. The first type file (valid) is not stored. */
    zeta_with(src, "types/zeta_note.json",
              "{\n  \"name\": \"zeta_note\",\n  \"fields\": [\n    {\"name\": \"body\" \"type\": "
              "\"longtext\"}\n  ]\n}\n");
    refused(src, (const char *const[]){"types/zeta_note.json", "line 4, column 21", "zeta", NULL});

    /* Bad fields: every error with its definition path; zeta_item (valid, installed first in the
     * same transaction) must not survive. */
    zeta_with(src, "types/zeta_note.json",
              "{\"name\": \"zeta_note\", \"fields\": [{\"name\": \"body\", \"type\": \"longtext\"},"
              " {\"name\": \"size\", \"type\": \"blob\"}, {\"name\": \"code\", \"type\": \"text\","
              " \"max_length\": -1}]}");
    refused(src, (const char *const[]){"types/zeta_note.json", "fields[1].type",
                                       "fields[2].max_length", "not installed", NULL});

    /* A file in types/ that is not a definition. */
    zeta_with(src, "types/notes.txt", "remember the milk\n");
    refused(src, (const char *const[]){"types/notes.txt", NULL});

    /* The definition's name must match its file name. */
    zeta_with(src, "types/zeta_other.json", "{\"name\": \"zeta_misnamed\", \"fields\": []}");
    refused(src, (const char *const[]){"types/zeta_other.json", "zeta_other", NULL});

    /* app.json without a version; app.json with an unknown key. */
    zeta_with(src, "app.json", "{\"name\": \"zeta\"}");
    refused(src, (const char *const[]){"app.json", "version", NULL});
    zeta_with(src, "app.json", "{\"name\": \"zeta\", \"version\": \"1\", \"colour\": \"red\"}");
    refused(src, (const char *const[]){"app.json", "colour", NULL});

    /* A broken form (JSON syntax) names its file too. */
    zeta_with(src, "forms/zeta_item.json", "{\"name\": \"zeta_item\",}");
    refused(src, (const char *const[]){"forms/zeta_item.json", "line 1", NULL});

    /* A type that belongs to another app. */
    zeta_with(src, "types/marketing_request.json",
              "{\"name\": \"marketing_request\", \"fields\": []}");
    refused(src, (const char *const[]){"types/marketing_request.json", "marketing", NULL});

    /* Nothing of zeta reached the store: no app, no types, the sample untouched. */
    char *list = app_list(S.dir);
    ck_assert_msg(!strstr(list, "zeta"), "%s", list);
    free(list);
    ck_assert_int_eq(srv_start(&S), 0);
    static const char *gone[] = {"zeta_item", "zeta_note", "zeta_other", "zeta_misnamed"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/meta/types/%s", gone[i]);
        struct resp r;
        ck_assert_int_eq(http(&S, "GET", path, NULL, 0, NULL, &r), 0);
        ck_assert_msg(r.status == 404, "%s: %ld %s", gone[i], r.status, r.body);
        resp_free(&r);
    }
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", "/api/v1/meta/types/marketing_request", NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char p[1100];
    snprintf(p, sizeof(p), "%s/types/marketing_request.json", sample());
    char *orig = read_file(p, NULL);
    ck_assert_str_eq(r.body, orig);
    free(orig);
    resp_free(&r);
    srv_stop(&S);
    assert_check_ok(S.dir);

    /* The corrected app installs. */
    zeta_with(src, NULL, NULL);
    char *out = NULL;
    int rc = install(S.dir, src, &out);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rm_tree(src);
    srv_cleanup(&S);
}
END_TEST

/* The designer edits an app's types through the meta API (DESIGN.md §1); the edit must stay
 * part of the app, so that exporting writes it back into the app's files. */
START_TEST(api_edit_stays_in_app_export)
{
    int irc = srv_init(&S, NULL);
    tmpreg_add(S.dir);
    ck_assert_int_eq(irc, 0);
    ck_assert_int_eq(srv_start(&S), 0);
    struct resp r;
    ck_assert_int_eq(http(&S, "GET", "/api/v1/meta/types/marketing_request", NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    cJSON *def = cJSON_Parse(r.body);
    resp_free(&r);
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(def, "labels");
    cJSON_ReplaceItemInObjectCaseSensitive(labels, "en", cJSON_CreateString("Marketing request!"));
    char *body = cJSON_PrintUnformatted(def);
    cJSON_Delete(def);
    ck_assert_int_eq(http_json(&S, "PUT", "/api/v1/meta/types/marketing_request", body, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    free(body);
    srv_stop(&S);

    char *list = app_list(S.dir);
    ck_assert_msg(
        json_contains(list, "[{\"name\":\"marketing\",\"types\":[\"marketing_request\"]}]"),
        "the edited type left its app:\n%s", list);
    free(list);
    char out_dir[300];
    snprintf(out_dir, sizeof(out_dir), "%s/export", S.dir);
    char *out = NULL;
    int rc = export_app(S.dir, "marketing", out_dir, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    char p[1100];
    snprintf(p, sizeof(p), "%s/types/marketing_request.json", out_dir);
    char *exported = read_file(p, NULL);
    ck_assert_msg(exported != NULL, "app export no longer writes types/marketing_request.json");
    assert_contains(exported, "\"en\": \"Marketing request!\"");
    /* Otherwise the same bytes as the sample. */
    snprintf(p, sizeof(p), "%s/types/marketing_request.json", sample());
    char *orig = read_file(p, NULL);
    char *at = strstr(orig, "\"en\": \"Marketing request\"");
    ck_assert_ptr_nonnull(at);
    size_t head = (size_t)(at - orig) + strlen("\"en\": \"Marketing request");
    ck_assert_msg(strncmp(exported, orig, head) == 0 && exported[head] == '!' &&
                      strcmp(exported + head + 1, orig + head) == 0,
                  "export differs from the sample beyond the edit:\n%s", exported);
    free(orig);
    free(exported);
    srv_cleanup(&S);
}
END_TEST

/* Empty folders (a fresh scaffold, or one whose only file is an editor's dotfile) are fine. */
START_TEST(empty_folders_install)
{
    char data[64], src[128], out_dir[128];
    make_tmp(data, sizeof(data));
    snprintf(src, sizeof(src), "%s/zeta-src", data);
    snprintf(out_dir, sizeof(out_dir), "%s/zeta-out", data);
    write_zeta(src, "1.0.0");
    char p[256];
    snprintf(p, sizeof(p), "%s/workflows", src);
    mkdirs(p);
    snprintf(p, sizeof(p), "%s/reports", src);
    mkdirs(p);
    char *out = NULL;
    int rc = install(data, src, &out);
    ck_assert_msg(rc == 0, "install with empty folders: %d\n%s", rc, out);
    free(out);
    rc = export_app(data, "zeta", out_dir, &out);
    ck_assert_msg(rc == 0, "export: %d %s", rc, out);
    free(out);
    rm_tree(data);
}
END_TEST

START_TEST(help_on_every_subcommand)
{
    static const char *const cmds[][4] = {
        {"--help", NULL, NULL, "usage: trellis <command>"},
        {"serve", "--help", NULL, "usage: trellis serve"},
        {"app", "--help", NULL, "usage: trellis app install"},
        {"app", "install", "--help", "usage: trellis app install"},
        {"app", "export", "--help", "trellis app export"},
        {"app", "list", "--help", "trellis app list"},
        {"backup", "--help", NULL, "usage: trellis backup"},
        {"restore", "--help", NULL, "usage: trellis restore"},
        {"check", "--help", NULL, "usage: trellis check"},
        {"import", "--help", NULL, "usage: trellis import"},
    };
    char data[64];
    make_tmp(data, sizeof(data));
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/not-there", data);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        /* --data on a folder that does not exist: --help must not touch it. */
        const char *argv[8];
        int n = 0;
        for (int k = 0; k < 3 && cmds[i][k]; k++)
            argv[n++] = cmds[i][k];
        if (strcmp(cmds[i][0], "--help") != 0) {
            argv[n++] = "--data";
            argv[n++] = missing;
        }
        argv[n] = NULL;
        char *out = NULL;
        int rc = run_trellis(argv, &out, 60);
        ck_assert_msg(rc == 0, "%s %s: exit %d\n%s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", rc,
                      out);
        assert_contains(out, cmds[i][3]);
        free(out);
        struct stat st;
        ck_assert_msg(stat(missing, &st) != 0, "%s --help created the data directory", cmds[i][0]);
    }
    /* Misuse is not help: usage on stderr and exit 2. */
    char *out = NULL;
    ck_assert_int_eq(cli(&out, "app", NULL, NULL, NULL, NULL, NULL), 2);
    assert_contains(out, "usage: trellis app");
    free(out);
    ck_assert_int_eq(cli(&out, NULL, NULL, NULL, NULL, NULL, NULL), 2);
    assert_contains(out, "usage: trellis");
    free(out);
    ck_assert_int_eq(cli(&out, "frobnicate", NULL, NULL, NULL, NULL, NULL), 2);
    assert_contains(out, "unknown command");
    free(out);
    rm_tree(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration_apps");
    TCase *tc = tcase_create("apps");
    tcase_add_unchecked_fixture(tc, tmpreg_setup, tmpreg_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sample_round_trip_byte_for_byte);
    tcase_add_test(tc, non_canonical_app_exports_canonical);
    tcase_add_test(tc, app_list_names_and_versions);
    tcase_add_test(tc, broken_apps_refused_whole);
    tcase_add_test(tc, api_edit_stays_in_app_export);
    tcase_add_test(tc, empty_folders_install);
    tcase_add_test(tc, help_on_every_subcommand);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
