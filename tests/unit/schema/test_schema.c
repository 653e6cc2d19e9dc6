/*
 * test_schema.c — object types: compile errors that name the definition path, every field type
 * and rule, defaults in the field's units, field conversion and rule checks, canonical JSON,
 * schema evolution against stored data (stable field ids, renames, retired ids, refused
 * incompatible changes), autonaming, the catalog and generic meta definitions.
 *
 * Each test gets a temporary store under /tmp (mkdtemp in the fixture, removed afterwards).
 * Definitions are written in the tests with ' for " (jq() swaps them) to stay readable.
 */
#include "schema/schema.h"

#include <check.h>

#include "../fixture.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Fixture
 */
static char tmp_dir[192]; /* per test: inside fx_base_dir */
static struct trl_store *st;

static void setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/t-XXXXXX", fx_base_dir);
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    struct trl_store_opts o = {.dir = tmp_dir};
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_store_open(&o, &st, &d), 0);
    trl_diag_reset(&d);
}

static void teardown(void)
{
    trl_store_close(st);
    st = NULL;
    fx_rm_tree(tmp_dir);
}

/* A definition with ' for ". Returns one of a few rotating static buffers. */
static const char *jq(const char *s)
{
    static char bufs[6][8192];
    static int next;
    char *b = bufs[next++ % 6];
    size_t n = strlen(s);
    ck_assert_uint_lt(n, sizeof(bufs[0]));
    for (size_t i = 0; i <= n; i++)
        b[i] = s[i] == '\'' ? '"' : s[i];
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * Writing definitions through the writer, reading the catalog
 */
struct put_job {
    const char *name, *def, *app;
    bool changed;
    struct trl_diag d;
};

static int put_fn(struct trl_txn *t, void *arg)
{
    struct put_job *p = arg;
    return trl_schema_put_type(t, p->name, p->def, strlen(p->def), p->app ? p->app : "",
                               &p->changed, &p->d);
}

/* Stores def as type name; returns the rc; *pj keeps the diagnostics (reset by the caller). */
static int put_type_d(const char *name, const char *def, struct put_job *pj)
{
    memset(pj, 0, sizeof(*pj));
    pj->name = name;
    pj->def = def;
    trl_diag_init(&pj->d);
    return trl_store_write(st, put_fn, pj);
}

static bool put_type(const char *name, const char *def)
{
    struct put_job pj;
    int rc = put_type_d(name, def, &pj);
    ck_assert_msg(rc == 0, "put %s: rc %d: %s (%zu field errors, first %s: %s)", name, rc,
                  pj.d.message, pj.d.nferrs, pj.d.nferrs ? pj.d.ferrs[0].field : "-",
                  pj.d.nferrs ? pj.d.ferrs[0].detail : "-");
    bool changed = pj.changed;
    trl_diag_reset(&pj.d);
    return changed;
}

static struct trl_catalog *load(void)
{
    struct trl_txn *t = NULL;
    struct trl_catalog *c = NULL;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    int rc = trl_catalog_load(t, &c, &d);
    trl_txn_end(t);
    ck_assert_msg(rc == 0, "catalog load: %s", d.message);
    trl_diag_reset(&d);
    return c;
}

static const struct trl_field *field(const struct trl_type *t, const char *name)
{
    const struct trl_field *f = trl_type_field(t, name, strlen(name));
    ck_assert_msg(f != NULL, "no field %s", name);
    return f;
}

/* Index of the field error for path, or -1. */
static int ferr_at(const struct trl_diag *d, const char *path)
{
    for (size_t i = 0; i < d->nferrs; i++)
        if (strcmp(d->ferrs[i].field, path) == 0) return (int)i;
    return -1;
}

/* Checks a definition expecting a validation error at every path given (NULL-terminated). */
static void expect_paths(const char *def, const char *const *paths)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_schema_check_type("t", def, strlen(def), &d);
    ck_assert_msg(rc == TRL_EVALIDATION, "%s: rc %d", def, rc);
    ck_assert_int_eq(d.code, TRL_EVALIDATION);
    for (size_t i = 0; paths[i]; i++) {
        int k = ferr_at(&d, paths[i]);
        if (k < 0) {
            char got[1024] = "";
            for (size_t j = 0; j < d.nferrs; j++) {
                strncat(got, d.ferrs[j].field, sizeof(got) - strlen(got) - 3);
                strcat(got, ", ");
            }
            ck_abort_msg("%s: no error at %s (errors at: %s)", def, paths[i], got);
        }
        ck_assert_str_eq(d.ferrs[k].code, "schema");
        ck_assert_uint_gt(strlen(d.ferrs[k].detail), 0);
    }
    trl_diag_reset(&d);
}

#define EXPECT_PATHS(def, ...)                                                                     \
    do {                                                                                           \
        static const char *const p_[] = {__VA_ARGS__, NULL};                                       \
        expect_paths(jq(def), p_);                                                                 \
    } while (0)

/* Inserts a raw record of type_id (as the record layer stores it) with the given values. */
struct raw_job {
    uint32_t type_id;
    uint64_t id;
    struct trl_fval vals[4];
    size_t nvals;
};

static int raw_fn(struct trl_txn *t, void *arg)
{
    struct raw_job *r = arg;
    struct trl_record rec;
    struct trl_buf b;
    unsigned char k[12];
    trl_record_init(&rec);
    trl_buf_init(&b);
    rec.version = 1;
    for (size_t i = 0; i < r->nvals; i++)
        trl_record_set(&rec, r->vals[i].fid, &r->vals[i].v);
    int rc = trl_record_encode(&rec, &b);
    trl_put_u32be(k, r->type_id);
    trl_put_u64be(k + 4, r->id);
    if (!rc) rc = trl_txn_put(t, TRL_DB_REC, k, 12, b.data, b.len, 0);
    trl_buf_free(&b);
    trl_record_free(&rec);
    return rc;
}

static void raw_insert(uint32_t type_id, uint64_t id, uint32_t fid, struct trl_value v)
{
    struct raw_job r = {.type_id = type_id, .id = id, .nvals = 1};
    r.vals[0].fid = fid;
    r.vals[0].v = v;
    ck_assert_int_eq(trl_store_write(st, raw_fn, &r), 0);
}

static struct trl_value sv(const char *s)
{
    return (struct trl_value){.kind = TRL_V_BYTES, .s = s, .n = strlen(s)};
}

static struct trl_value iv(int64_t i)
{
    return (struct trl_value){.kind = TRL_V_INT, .i = i};
}

/* Number of idx entries whose key starts with u32be iid. */
static long idx_entries(uint32_t iid)
{
    struct trl_txn *t = NULL;
    struct trl_cursor *c = NULL;
    unsigned char pre[4];
    trl_put_u32be(pre, iid);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_cursor_open(t, TRL_DB_IDX, &c), 0);
    long n = 0;
    for (int rc = trl_cursor_seek(c, pre, 4); rc == 0; rc = trl_cursor_next(c)) {
        struct trl_slice k;
        trl_cursor_get(c, &k, NULL);
        if (k.n < 4 || memcmp(k.p, pre, 4) != 0) break;
        n++;
    }
    trl_cursor_close(c);
    trl_txn_end(t);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Compile errors
 */
START_TEST(errors_name_the_definition_path)
{
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text'},{'name':'b','type':'int'},"
                 "{'name':'c','type':'text','max_length':-1}]}",
                 "fields[2].max_length");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'float'}]}", "fields[0].type");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a'}]}", "fields[0].type");
    EXPECT_PATHS("{'name':'t','colour':'red','fields':[]}", "colour");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text'},"
                 "{'name':'b','type':'text','colour':1}]}",
                 "fields[1].colour");
    EXPECT_PATHS("{'name':'other','fields':[]}", "name");
    EXPECT_PATHS("{'fields':[]}", "name");
    EXPECT_PATHS("{'name':'t','fields':{}}", "fields");
    EXPECT_PATHS("{'name':'t'}", "fields");
}
END_TEST

START_TEST(errors_for_field_names)
{
    EXPECT_PATHS("{'name':'t','fields':[{'name':'Title','type':'text'}]}", "fields[0].name");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'1a','type':'text'}]}", "fields[0].name");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a-b','type':'text'}]}", "fields[0].name");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'','type':'text'}]}", "fields[0].name");
    EXPECT_PATHS("{'name':'t','fields':[{'type':'text'}]}", "fields[0].name");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a234567890123456789012345678901234567890123456789"
                 "012345678901234','type':'text'}]}",
                 "fields[0].name");
    /* System columns cannot be fields. */
    static const char *reserved[] = {"id",         "state",      "owner",      "org",
                                     "created_at", "updated_at", "created_by", "updated_by",
                                     "name",       "version",    "type"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        char def[256];
        snprintf(def, sizeof(def), "{'name':'t','fields':[{'name':'%s','type':'text'}]}",
                 reserved[i]);
        EXPECT_PATHS(def, "fields[0].name");
    }
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text'},{'name':'a','type':'int'}]}",
                 "fields[1].name");
    EXPECT_PATHS("{'name':'t','fields':['a']}", "fields[0]");
}
END_TEST

START_TEST(errors_for_rules_on_the_wrong_type)
{
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','scale':2}]}", "fields[0].scale");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'decimal','scale':10}]}",
                 "fields[0].scale");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'decimal','scale':1.5}]}",
                 "fields[0].scale");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','max_length':3}]}",
                 "fields[0].max_length");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','min_length':'3'}]}",
                 "fields[0].min_length");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','min':1}]}", "fields[0].min");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'bool','max':1}]}", "fields[0].max");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','min':5,'max':1}]}",
                 "fields[0].min");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','min':'x'}]}", "fields[0].min");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'decimal','scale':2,'max':'1.234'}]}",
                 "fields[0].max");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','pattern':'x'}]}",
                 "fields[0].pattern");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','pattern':'(unclosed'}]}",
                 "fields[0].pattern");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','options':['x']}]}",
                 "fields[0].options");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'enum'}]}", "fields[0].options");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'enum','options':[]}]}",
                 "fields[0].options");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'enum','options':['x','y','x']}]}",
                 "fields[0].options[2]");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'enum','options':['x',3]}]}",
                 "fields[0].options[1]");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'ref'}]}", "fields[0].ref_type");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','ref_type':'u'}]}",
                 "fields[0].ref_type");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'longtext','indexed':true}]}",
                 "fields[0].indexed");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'json','unique':true}]}",
                 "fields[0].indexed");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','required':'yes'}]}",
                 "fields[0].required");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','max_size':10}]}",
                 "fields[0].max_size");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'attachment','media_types':['png']}]}",
                 "fields[0].media_types");
}
END_TEST

START_TEST(errors_for_defaults_labels_and_type_keys)
{
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','default':'abc'}]}",
                 "fields[0].default");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','max_length':3,"
                 "'default':'toolong'}]}",
                 "fields[0].default");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'enum','options':['x'],"
                 "'default':'y'}]}",
                 "fields[0].default");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'decimal','scale':1,"
                 "'default':'1.25'}]}",
                 "fields[0].default");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'int','min':10,'default':5}]}",
                 "fields[0].default");
    EXPECT_PATHS("{'name':'t','labels':{'fr':'x'},'fields':[]}", "labels.fr");
    EXPECT_PATHS("{'name':'t','labels':'x','fields':[]}", "labels");
    EXPECT_PATHS("{'name':'t','fields':[{'name':'a','type':'text','labels':{'en':1}}]}",
                 "fields[0].labels.en");
    EXPECT_PATHS("{'name':'t','title_field':'nope','fields':[{'name':'a','type':'text'}]}",
                 "title_field");
    EXPECT_PATHS("{'name':'t','autoname':'MR-{YYYY}','fields':[]}", "autoname");
    EXPECT_PATHS("{'name':'t','initial_state':'Draft!','fields':[]}", "initial_state");
}
END_TEST

START_TEST(errors_are_collected_at_once)
{
    const char *def = jq("{'name':'t','colour':1,'fields':[{'name':'a','type':'float'},"
                         "{'name':'b','type':'text','max_length':-5},"
                         "{'name':'c','type':'int','pattern':'x'}]}");
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_schema_check_type("t", def, strlen(def), &d), TRL_EVALIDATION);
    ck_assert_uint_eq(d.nferrs, 4);
    ck_assert_int_ge(ferr_at(&d, "colour"), 0);
    ck_assert_int_ge(ferr_at(&d, "fields[0].type"), 0);
    ck_assert_int_ge(ferr_at(&d, "fields[1].max_length"), 0);
    ck_assert_int_ge(ferr_at(&d, "fields[2].pattern"), 0);
    ck_assert_ptr_nonnull(strstr(d.message, "'t'"));
    ck_assert_uint_gt(strlen(d.message_zh), 0);
    trl_diag_reset(&d);

    /* Not JSON, or not an object. */
    ck_assert_int_ne(trl_schema_check_type("t", "{", 1, &d), 0);
    ck_assert(d.code == TRL_EVALIDATION || d.code == TRL_EJSON);
    trl_diag_reset(&d);
    ck_assert_int_eq(trl_schema_check_type("t", "[1]", 3, &d), TRL_EVALIDATION);
    trl_diag_reset(&d);
}
END_TEST

START_TEST(put_type_reports_the_same_paths_and_stores_nothing)
{
    struct put_job pj;
    const char *def = jq("{'name':'t','fields':[{'name':'a','type':'text'},"
                         "{'name':'b','type':'text','max_length':'ten'}]}");
    ck_assert_int_eq(put_type_d("t", def, &pj), TRL_EVALIDATION);
    ck_assert_int_ge(ferr_at(&pj.d, "fields[1].max_length"), 0);
    ck_assert_str_eq(pj.d.ferrs[ferr_at(&pj.d, "fields[1].max_length")].code, "schema");
    trl_diag_reset(&pj.d);
    struct trl_catalog *c = load();
    ck_assert_uint_eq(c->ntypes, 0);
    trl_catalog_unref(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Every type and rule
 */
static const char *all_types_def =
    "{'name':'all','labels':{'en':'All','zh-CN':'全部'},'title_field':'title',"
    "'autoname':'A-{YYYY}-{####}','initial_state':'draft','fields':["
    "{'name':'title','type':'text','required':true,'min_length':1,'max_length':4,"
    "'pattern':'^[^x]*$','labels':{'en':'Title','zh-CN':'标题'},'help':{'en':'Short'}},"
    "{'name':'notes','type':'longtext','max_length':1000},"
    "{'name':'qty','type':'int','min':1,'max':10,'default':3},"
    "{'name':'price','type':'decimal','scale':2,'min':'0.01','max':100,'default':'1.5'},"
    "{'name':'price_n','type':'decimal','default':1.5},"
    "{'name':'rate','type':'decimal','scale':4},"
    "{'name':'ok','type':'bool','default':true},"
    "{'name':'day','type':'date','min':'2026-01-01','max':'2026-12-31','default':'2026-06-01'},"
    "{'name':'at','type':'datetime','min':'2026-01-01T00:00:00+08:00'},"
    "{'name':'region','type':'enum','default':'east','options':["
    "{'value':'north','labels':{'en':'North','zh-CN':'华北'}},'south',"
    "{'value':'east','labels':{'en':'East'}},'west']},"
    "{'name':'parent','type':'ref','ref_type':'all'},"
    "{'name':'who','type':'user'},"
    "{'name':'extra','type':'json'},"
    "{'name':'file','type':'attachment','max_size':1048576,'media_types':['image/png',"
    "'application/pdf']},"
    "{'name':'code','type':'text','unique':true,'read_only':true},"
    "{'name':'tag','type':'text','indexed':true,'default':'none'}]}";

START_TEST(every_field_type_and_rule_compiles)
{
    ck_assert(put_type("all", jq(all_types_def)));
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, "all");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->nfields, 16);
    ck_assert_str_eq(t->labels.en, "All");
    ck_assert_str_eq(t->labels.zh, "全部");
    ck_assert_str_eq(t->title_field, "title");
    ck_assert_str_eq(t->autoname, "A-{YYYY}-{####}");
    ck_assert_str_eq(t->initial_state, "draft");
    ck_assert_str_eq(t->app, "");
    for (size_t i = 0; i < t->nfields; i++) {
        ck_assert_uint_gt(t->fields[i].id, 0);
        ck_assert_uint_lt(t->fields[i].id, TRL_COL_SYSTEM);
        for (size_t k = 0; k < i; k++)
            ck_assert_uint_ne(t->fields[k].id, t->fields[i].id);
    }

    const struct trl_field *f = field(t, "title");
    ck_assert_int_eq(f->type, TRL_FT_TEXT);
    ck_assert(f->required);
    ck_assert_int_eq(f->min_length, 1);
    ck_assert_int_eq(f->max_length, 4);
    ck_assert_str_eq(f->pattern, "^[^x]*$");
    ck_assert_ptr_nonnull(f->re);
    ck_assert_str_eq(f->labels.zh, "标题");
    ck_assert_str_eq(f->help.en, "Short");
    ck_assert_str_eq(f->help.zh, "Short"); /* falls back to English */
    ck_assert(!f->indexed);
    ck_assert_str_eq(field(t, "notes")->labels.en, "notes"); /* label falls back to the name */

    f = field(t, "qty");
    ck_assert(f->has_min && f->has_max && f->has_default);
    ck_assert_int_eq(f->min, 1);
    ck_assert_int_eq(f->max, 10);
    ck_assert_int_eq(f->dflt.kind, TRL_V_INT);
    ck_assert_int_eq(f->dflt.i, 3);

    /* Decimal bounds and defaults are scaled integers. */
    f = field(t, "price");
    ck_assert_int_eq(f->scale, 2);
    ck_assert_int_eq(f->min, 1);
    ck_assert_int_eq(f->max, 10000);
    ck_assert_int_eq(f->dflt.i, 150);
    f = field(t, "price_n");
    ck_assert_int_eq(f->scale, 2); /* the default scale */
    ck_assert_int_eq(f->dflt.i, 150);
    ck_assert_int_eq(field(t, "rate")->scale, 4);

    f = field(t, "ok");
    ck_assert_int_eq(f->dflt.kind, TRL_V_INT);
    ck_assert_int_eq(f->dflt.i, 1);

    int32_t d0, d1, d2;
    trl_date_parse("2026-01-01", 10, &d0);
    trl_date_parse("2026-12-31", 10, &d1);
    trl_date_parse("2026-06-01", 10, &d2);
    f = field(t, "day");
    ck_assert_int_eq(f->min, d0);
    ck_assert_int_eq(f->max, d1);
    ck_assert_int_eq(f->dflt.i, d2);
    f = field(t, "at");
    ck_assert_int_eq(f->min, (int64_t)d0 * 86400000 - 8 * 3600000);

    f = field(t, "region");
    ck_assert_int_eq(f->type, TRL_FT_ENUM);
    ck_assert(f->indexed); /* enums are always indexed */
    ck_assert_uint_eq(f->noptions, 4);
    ck_assert_str_eq(f->options[0].value, "north");
    ck_assert_str_eq(f->options[0].labels.zh, "华北");
    ck_assert_str_eq(f->options[1].value, "south");
    ck_assert_str_eq(f->options[1].labels.en, "south");
    ck_assert_str_eq(f->options[2].labels.zh, "East");
    ck_assert_str_eq(f->option_values[3], "west");
    ck_assert_int_eq(f->dflt.kind, TRL_V_BYTES);
    ck_assert_uint_eq(f->dflt.n, 4);
    ck_assert_int_eq(memcmp(f->dflt.s, "east", 4), 0);

    f = field(t, "parent");
    ck_assert_str_eq(f->ref_type, "all");
    ck_assert(f->indexed);
    ck_assert(field(t, "who")->indexed);
    ck_assert(!field(t, "extra")->indexed);
    f = field(t, "file");
    ck_assert_int_eq(f->max_size, 1048576);
    ck_assert_uint_eq(f->nmedia_types, 2);
    ck_assert_str_eq(f->media_types[1], "application/pdf");
    f = field(t, "code");
    ck_assert(f->unique && f->indexed && f->read_only);
    f = field(t, "tag");
    ck_assert(f->indexed && !f->unique);
    ck_assert_uint_eq(f->dflt.n, 4);

    ck_assert_ptr_eq(trl_type_field_by_id(t, field(t, "tag")->id), field(t, "tag"));
    ck_assert_ptr_null(trl_type_field(t, "nope", 4));
    ck_assert_ptr_null(trl_type_field_by_id(t, 9999));
    ck_assert_uint_eq(trl_index_id(t, TRL_COL_STATE), (t->id << 16) | 0xFF01);
    trl_catalog_unref(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Conversion and rules
 */
static struct trl_catalog *conv_cat;
static const struct trl_type *conv_type;

static void setup_conv(void)
{
    setup();
    put_type("all", jq(all_types_def));
    conv_cat = load();
    conv_type = trl_catalog_type(conv_cat, "all");
    ck_assert_ptr_nonnull(conv_type);
}

static void teardown_conv(void)
{
    trl_catalog_unref(conv_cat);
    conv_cat = NULL;
    teardown();
}

static struct trl_input in_str(const char *s)
{
    return (struct trl_input){.name = "x", .kind = TRL_IN_STRING, .s = s, .n = strlen(s)};
}

static struct trl_input in_num(const char *s)
{
    return (struct trl_input){.name = "x", .kind = TRL_IN_NUMBER, .s = s, .n = strlen(s)};
}

static struct trl_input in_bool(bool b)
{
    return (struct trl_input){.name = "x", .kind = TRL_IN_BOOL, .b = b};
}

static struct trl_input in_json(const char *s)
{
    return (struct trl_input){.name = "x", .kind = TRL_IN_JSON, .s = s, .n = strlen(s)};
}

/* Converts in for field name; expects success and returns the value. */
static struct trl_value conv_ok(const char *name, struct trl_input in, struct trl_arena *a)
{
    struct trl_diag d;
    struct trl_value v;
    trl_diag_init(&d);
    int rc = trl_field_convert(field(conv_type, name), &in, a, &v, &d);
    ck_assert_msg(rc == 0, "%s <%.*s>: rc %d (%s)", name, (int)in.n, in.s ? in.s : "", rc,
                  d.nferrs ? d.ferrs[0].code : "-");
    ck_assert_uint_eq(d.nferrs, 0);
    trl_diag_reset(&d);
    return v;
}

/* Converts expecting one field error with code (and detail when given). */
static void conv_bad(const char *name, struct trl_input in, const char *code, const char *detail)
{
    struct trl_diag d;
    struct trl_value v;
    struct trl_arena a;
    trl_diag_init(&d);
    trl_arena_init(&a);
    int rc = trl_field_convert(field(conv_type, name), &in, &a, &v, &d);
    ck_assert_msg(rc == TRL_EVALIDATION, "%s <%.*s> accepted", name, (int)in.n, in.s ? in.s : "");
    ck_assert_uint_eq(d.nferrs, 1);
    ck_assert_str_eq(d.ferrs[0].field, name);
    ck_assert_msg(strcmp(d.ferrs[0].code, code) == 0, "%s: code %s, want %s", name, d.ferrs[0].code,
                  code);
    if (detail) ck_assert_str_eq(d.ferrs[0].detail, detail);
    trl_diag_reset(&d);
    trl_arena_free(&a);
}

/* Checks v against field name's rules; returns the number of failures, codes in d. */
static int check_rules(const char *name, struct trl_value v, struct trl_diag *d)
{
    trl_diag_init(d);
    return trl_field_check(field(conv_type, name), &v, d);
}

static void rules_ok(const char *name, struct trl_value v)
{
    struct trl_diag d;
    int n = check_rules(name, v, &d);
    ck_assert_msg(n == 0, "%s: %d failure(s), first %s", name, n, n > 0 ? d.ferrs[0].code : "-");
    trl_diag_reset(&d);
}

static void rules_bad(const char *name, struct trl_value v, const char *code, const char *detail)
{
    struct trl_diag d;
    int n = check_rules(name, v, &d);
    ck_assert_msg(n == 1, "%s: %d failures, want 1 (%s)", name, n, code);
    ck_assert_str_eq(d.ferrs[0].field, name);
    ck_assert_str_eq(d.ferrs[0].code, code);
    if (detail) ck_assert_str_eq(d.ferrs[0].detail, detail);
    trl_diag_reset(&d);
}

START_TEST(text_conversion_and_length_in_characters)
{
    struct trl_arena a;
    trl_arena_init(&a);
    struct trl_value v = conv_ok("title", in_str("中文"), &a);
    ck_assert_int_eq(v.kind, TRL_V_BYTES);
    ck_assert_uint_eq(v.n, 6);
    conv_bad("title", in_num("12"), "type", "a string");
    conv_bad("title", in_bool(true), "type", NULL);
    conv_bad("title", (struct trl_input){.name = "x", .kind = TRL_IN_STRING, .s = "\xc3", .n = 1},
             "utf8", NULL);
    /* max_length 4 counts characters, not bytes: 4 Chinese characters are 12 bytes. */
    rules_ok("title", sv("中文中文"));
    rules_bad("title", sv("中文中文中"), "max_length", "4");
    rules_bad("title", sv("abcde"), "max_length", "4");
    rules_bad("title", sv(""), "min_length", "1");
    /* The pattern (no 'x') and the length fail together. */
    struct trl_diag d;
    ck_assert_int_eq(check_rules("title", sv("xxxxx"), &d), 2);
    ck_assert_int_ge(ferr_at(&d, "title"), 0);
    ck_assert_str_eq(d.ferrs[0].code, "max_length");
    ck_assert_str_eq(d.ferrs[1].code, "pattern");
    ck_assert_str_eq(d.ferrs[1].detail, "^[^x]*$");
    trl_diag_reset(&d);
    rules_bad("title", sv("ax"), "pattern", "^[^x]*$");
    rules_ok("notes", sv("a much longer note than four characters"));
    /* Null values break no rule (required is the record layer's business). */
    rules_ok("title", (struct trl_value){.kind = TRL_V_NULL});
    v = conv_ok("title", (struct trl_input){.name = "x", .kind = TRL_IN_NULL}, &a);
    ck_assert_int_eq(v.kind, TRL_V_NULL);
    trl_arena_free(&a);
}
END_TEST

START_TEST(pcre2_patterns_are_unicode_aware)
{
    ck_assert(put_type("p", jq("{'name':'p','fields':["
                               "{'name':'code','type':'text','pattern':'^[A-Z]{2}-\\\\d{3}$'},"
                               "{'name':'han','type':'text','pattern':'^\\\\p{Han}{2,3}$'}]}")));
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, "p");
    struct trl_diag d;
    trl_diag_init(&d);
    const struct trl_field *code = field(t, "code"), *han = field(t, "han");
    ck_assert_str_eq(code->pattern, "^[A-Z]{2}-\\d{3}$");
    struct trl_value v = sv("MR-123");
    ck_assert_int_eq(trl_field_check(code, &v, &d), 0);
    v = sv("mr-123");
    ck_assert_int_eq(trl_field_check(code, &v, &d), 1);
    v = sv("MR-1234");
    ck_assert_int_eq(trl_field_check(code, &v, &d), 1);
    v = sv("促销");
    ck_assert_int_eq(trl_field_check(han, &v, &d), 0);
    v = sv("促销活动好");
    ck_assert_int_eq(trl_field_check(han, &v, &d), 1);
    v = sv("ab");
    ck_assert_int_eq(trl_field_check(han, &v, &d), 1);
    ck_assert_uint_eq(d.nferrs, 4);
    for (size_t i = 0; i < d.nferrs; i++)
        ck_assert_str_eq(d.ferrs[i].code, "pattern");
    trl_diag_reset(&d);
    trl_catalog_unref(c);
}
END_TEST

START_TEST(int_and_decimal_conversion)
{
    struct trl_arena a;
    trl_arena_init(&a);
    ck_assert_int_eq(conv_ok("qty", in_num("7"), &a).i, 7);
    ck_assert_int_eq(conv_ok("qty", in_num("-7"), &a).i, -7);
    conv_bad("qty", in_num("4.2"), "type", "an integer");
    conv_bad("qty", in_num("1e3"), "type", NULL);
    conv_bad("qty", in_num("99999999999999999999"), "range", NULL);
    conv_bad("qty", in_str("7"), "type", "an integer");
    rules_bad("qty", iv(0), "min", "1");
    rules_bad("qty", iv(11), "max", "10");
    rules_ok("qty", iv(10));

    ck_assert_int_eq(conv_ok("price", in_num("12.3"), &a).i, 1230);
    ck_assert_int_eq(conv_ok("price", in_str("12.30"), &a).i, 1230);
    ck_assert_int_eq(conv_ok("price", in_num("12.300"), &a).i, 1230);
    ck_assert_int_eq(conv_ok("rate", in_num("0.1234"), &a).i, 1234);
    conv_bad("price", in_num("12.345"), "scale", "2");
    conv_bad("rate", in_str("1.00001"), "scale", "4");
    conv_bad("price", in_num("1e2"), "type", "a decimal number");
    conv_bad("price", in_bool(false), "type", "a decimal number or string");
    conv_bad("price", in_str("999999999999999999999"), "range", NULL);
    rules_bad("price", iv(0), "min", "0.01");
    rules_bad("price", iv(10001), "max", "100.00");
    rules_ok("price", iv(10000));
    trl_arena_free(&a);
}
END_TEST

START_TEST(bool_date_datetime_conversion)
{
    struct trl_arena a;
    trl_arena_init(&a);
    struct trl_value v = conv_ok("ok", in_bool(true), &a);
    ck_assert_int_eq(v.kind, TRL_V_INT);
    ck_assert_int_eq(v.i, 1);
    ck_assert_int_eq(conv_ok("ok", in_bool(false), &a).i, 0);
    conv_bad("ok", in_str("true"), "type", "true or false");
    conv_bad("ok", in_num("1"), "type", NULL);

    int32_t days;
    trl_date_parse("2026-03-01", 10, &days);
    ck_assert_int_eq(conv_ok("day", in_str("2026-03-01"), &a).i, days);
    conv_bad("day", in_str("2026-02-30"), "invalid_date", NULL);
    conv_bad("day", in_str("2026-03-01T00:00:00Z"), "invalid_date", NULL);
    conv_bad("day", in_num("20260301"), "invalid_date", NULL);
    rules_bad("day", iv(days - 365), "min", "2026-01-01");
    rules_bad("day", iv(days + 365), "max", "2026-12-31");

    int64_t ms;
    trl_datetime_parse("2026-03-01T02:00:00Z", 20, &ms);
    ck_assert_int_eq(conv_ok("at", in_str("2026-03-01T10:00:00+08:00"), &a).i, ms);
    conv_bad("at", in_str("2026-03-01"), "invalid_datetime", NULL);
    conv_bad("at", in_num("1767225600000"), "invalid_datetime", NULL);
    rules_bad("at", iv(0), "min", "2025-12-31T16:00:00.000Z");
    trl_arena_free(&a);
}
END_TEST

START_TEST(enum_ref_user_json_attachment_conversion)
{
    struct trl_arena a;
    trl_arena_init(&a);
    const struct trl_field *region = field(conv_type, "region");
    struct trl_value v = conv_ok("region", in_str("east"), &a);
    ck_assert_ptr_eq(v.s, region->options[2].value); /* points at the option, not the input */
    conv_bad("region", in_str("East"), "enum", "north, south, east, west");
    conv_bad("region", in_str(""), "enum", NULL);
    conv_bad("region", in_num("1"), "type", "a string");

    ck_assert_int_eq(conv_ok("parent", in_num("5"), &a).i, 5);
    conv_bad("parent", in_num("0"), "type", "a record id");
    conv_bad("parent", in_num("-3"), "type", "a record id");
    conv_bad("parent", in_str("5"), "type", NULL);
    rules_ok("parent", iv(5)); /* ref existence is checked by records, not by rules */

    v = conv_ok("who", in_str("alice"), &a);
    ck_assert_uint_eq(v.n, 5);

    v = conv_ok("extra", in_json("{\"a\":[1,2]}"), &a);
    ck_assert_int_eq(v.kind, TRL_V_BYTES);
    ck_assert_int_eq(memcmp(v.s, "{\"a\":[1,2]}", v.n), 0);
    v = conv_ok("extra", in_str("say \"hi\""), &a); /* a JSON string keeps its JSON text */
    ck_assert_uint_eq(v.n, 12);
    ck_assert_int_eq(memcmp(v.s, "\"say \\\"hi\\\"\"", 12), 0);
    v = conv_ok("extra", in_bool(true), &a);
    ck_assert_int_eq(memcmp(v.s, "true", 4), 0);
    v = conv_ok("extra", in_num("1.50"), &a);
    ck_assert_int_eq(memcmp(v.s, "1.50", 4), 0);

    const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    v = conv_ok("file", in_str(sha), &a);
    ck_assert_uint_eq(v.n, 64);
    conv_bad("file", in_str("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"),
             "attachment", NULL);
    conv_bad("file", in_str("abc"), "attachment", NULL);
    conv_bad("file", in_num("1"), "attachment", NULL);
    trl_arena_free(&a);
}
END_TEST

START_TEST(format_int_per_type)
{
    char out[48];
    trl_field_format_int(field(conv_type, "price"), -5, out, sizeof(out));
    ck_assert_str_eq(out, "-0.05");
    trl_field_format_int(field(conv_type, "rate"), 15, out, sizeof(out));
    ck_assert_str_eq(out, "0.0015");
    trl_field_format_int(field(conv_type, "day"), 0, out, sizeof(out));
    ck_assert_str_eq(out, "1970-01-01");
    trl_field_format_int(field(conv_type, "at"), 1, out, sizeof(out));
    ck_assert_str_eq(out, "1970-01-01T00:00:00.001Z");
    trl_field_format_int(field(conv_type, "ok"), 1, out, sizeof(out));
    ck_assert_str_eq(out, "true");
    trl_field_format_int(field(conv_type, "qty"), -42, out, sizeof(out));
    ck_assert_str_eq(out, "-42");
    trl_field_format_int(field(conv_type, "price"), 123456, out, 4);
    ck_assert_str_eq(out, "123");
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Canonical JSON
 */
START_TEST(canonical_json_is_stable)
{
    const char *defs[] = {
        jq(all_types_def),
        jq("{'zeta':1,'fields':[],'alpha':[1,2,{'b':1,'a':2}],'name':'x','type':'y'}"),
        jq("{'name':'t','n':1.0,'m':1.5,'big':12345678901234,'neg':-0.25,'s':'a\\nb\\u00e9\\\"',"
           "'e':{},'l':[],'t':true,'f':false,'z':null}"),
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        struct trl_diag d;
        trl_diag_init(&d);
        char *c1 = trl_schema_canonical_json(defs[i], strlen(defs[i]), &d);
        ck_assert_ptr_nonnull(c1);
        char *c2 = trl_schema_canonical_json(c1, strlen(c1), &d);
        ck_assert_ptr_nonnull(c2);
        ck_assert_str_eq(c1, c2);
        ck_assert_int_eq(c1[strlen(c1) - 1], '\n');
        free(c1);
        free(c2);
        trl_diag_reset(&d);
    }
}
END_TEST

START_TEST(canonical_json_key_order_and_layout)
{
    const char *in =
        jq("{'fields':[{'type':'text','zz':1,'name':'a','aa':2}],'zeta':[1,'two',true],"
           "'labels':{'zh-CN':'中','en':'E'},'name':'t','alpha':{},'n':1.0,'s':'q\\\"'}");
    struct trl_diag d;
    trl_diag_init(&d);
    char *c = trl_schema_canonical_json(in, strlen(in), &d);
    ck_assert_ptr_nonnull(c);
    /* Known keys first in the fixed order (name, labels, ..., fields), then the rest sorted;
     * arrays of scalars stay on one line; 2-space indent; numbers in shortest form. */
    const char *want = "{\n"
                       "  \"name\": \"t\",\n"
                       "  \"labels\": {\n"
                       "    \"en\": \"E\",\n"
                       "    \"zh-CN\": \"中\"\n"
                       "  },\n"
                       "  \"fields\": [\n"
                       "    {\n"
                       "      \"name\": \"a\",\n"
                       "      \"type\": \"text\",\n"
                       "      \"aa\": 2,\n"
                       "      \"zz\": 1\n"
                       "    }\n"
                       "  ],\n"
                       "  \"alpha\": {},\n"
                       "  \"n\": 1,\n"
                       "  \"s\": \"q\\\"\",\n"
                       "  \"zeta\": [1, \"two\", true]\n"
                       "}\n";
    ck_assert_str_eq(c, want);
    free(c);
    ck_assert_ptr_null(trl_schema_canonical_json("{'a'", 4, &d));
    ck_assert_int_eq(d.code, TRL_EJSON);
    trl_diag_reset(&d);
}
END_TEST

START_TEST(stored_definition_is_canonical)
{
    const char *def = jq("{'fields':[{'type':'text','name':'a'}],'name':'t'}");
    put_type("t", def);
    struct trl_diag d;
    trl_diag_init(&d);
    char *canon = trl_schema_canonical_json(def, strlen(def), &d);
    struct trl_catalog *c = load();
    ck_assert_str_eq(trl_catalog_type(c, "t")->definition, canon);
    struct trl_txn *t = NULL;
    char *stored = NULL;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_meta_get(t, "type", "t", &stored), 0);
    trl_txn_end(t);
    ck_assert_str_eq(stored, canon);
    /* The same definition in another layout is not a change. */
    ck_assert(!put_type("t", canon));
    free(stored);
    free(canon);
    trl_catalog_unref(c);
    trl_diag_reset(&d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Schema evolution
 */
static uint32_t fid_of(const char *type, const char *name)
{
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, type);
    ck_assert_ptr_nonnull(t);
    const struct trl_field *f = trl_type_field(t, name, strlen(name));
    uint32_t id = f ? f->id : 0;
    trl_catalog_unref(c);
    return id;
}

static uint32_t type_id_of(const char *type)
{
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, type);
    ck_assert_ptr_nonnull(t);
    uint32_t id = t->id;
    trl_catalog_unref(c);
    return id;
}

START_TEST(adding_a_field_keeps_existing_ids)
{
    struct trl_catalog *c0 = load();
    uint64_t v0 = c0->version;
    trl_catalog_unref(c0);
    ck_assert(put_type("t", jq("{'name':'t','fields':[{'name':'a','type':'text'},"
                               "{'name':'b','type':'int'}]}")));
    uint32_t a = fid_of("t", "a"), b = fid_of("t", "b");
    ck_assert_uint_ne(a, b);
    ck_assert(put_type("t", jq("{'name':'t','fields':[{'name':'c','type':'date'},"
                               "{'name':'a','type':'text'},{'name':'b','type':'int'}]}")));
    ck_assert_uint_eq(fid_of("t", "a"), a);
    ck_assert_uint_eq(fid_of("t", "b"), b);
    uint32_t cid = fid_of("t", "c");
    ck_assert_uint_gt(cid, a);
    ck_assert_uint_gt(cid, b);
    struct trl_catalog *c1 = load();
    ck_assert_uint_eq(c1->version, v0 + 2);
    trl_catalog_unref(c1);
    /* Storing the identical definition again changes nothing. */
    ck_assert(!put_type("t", jq("{'name':'t','fields':[{'name':'c','type':'date'},"
                                "{'name':'a','type':'text'},{'name':'b','type':'int'}]}")));
    struct trl_catalog *c2 = load();
    ck_assert_uint_eq(c2->version, v0 + 2);
    trl_catalog_unref(c2);
}
END_TEST

START_TEST(rename_keeps_the_field_id_and_its_data)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'title','type':'text'}]}"));
    uint32_t tid = type_id_of("t"), fid = fid_of("t", "title");
    raw_insert(tid, 1, fid, sv("kept"));
    put_type("t", jq("{'name':'t','fields':[{'name':'headline','type':'text',"
                     "'renamed_from':'title'}]}"));
    ck_assert_uint_eq(fid_of("t", "headline"), fid);
    ck_assert_uint_eq(fid_of("t", "title"), 0);
    /* The stored value is now the renamed field's value. */
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, "t");
    struct trl_txn *rt = NULL;
    unsigned char k[12];
    struct trl_slice v;
    struct trl_record r;
    trl_put_u32be(k, tid);
    trl_put_u64be(k + 4, 1);
    ck_assert_int_eq(trl_store_read(st, &rt), 0);
    ck_assert_int_eq(trl_txn_get(rt, TRL_DB_REC, k, 12, &v), 0);
    ck_assert_int_eq(trl_record_decode(v.p, v.n, &r), 0);
    const struct trl_value *hv = trl_record_get(&r, field(t, "headline")->id);
    ck_assert_ptr_nonnull(hv);
    ck_assert_int_eq(memcmp(hv->s, "kept", 4), 0);
    trl_record_free(&r);
    trl_txn_end(rt);
    trl_catalog_unref(c);
    /* Keeping renamed_from in later versions is harmless. */
    ck_assert(!put_type("t", jq("{'name':'t','fields':[{'name':'headline','type':'text',"
                                "'renamed_from':'title'}]}")));
    ck_assert_uint_eq(fid_of("t", "headline"), fid);
}
END_TEST

START_TEST(removed_field_id_is_retired)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'a','type':'text'},"
                     "{'name':'b','type':'text'}]}"));
    uint32_t a = fid_of("t", "a"), b = fid_of("t", "b");
    put_type("t", jq("{'name':'t','fields':[{'name':'b','type':'text'}]}"));
    ck_assert_uint_eq(fid_of("t", "b"), b);
    ck_assert_uint_eq(fid_of("t", "a"), 0);
    /* Re-adding the same name gets a new id: the old data is never served again. */
    put_type("t", jq("{'name':'t','fields':[{'name':'b','type':'text'},"
                     "{'name':'a','type':'int'}]}"));
    uint32_t a2 = fid_of("t", "a");
    ck_assert_uint_ne(a2, a);
    ck_assert_uint_gt(a2, b);
    /* A rename from a removed name does not resurrect its id either. */
    put_type("t", jq("{'name':'t','fields':[{'name':'b','type':'text'},"
                     "{'name':'c','type':'int','renamed_from':'x_never'}]}"));
    ck_assert_uint_gt(fid_of("t", "c"), a2);
}
END_TEST

START_TEST(rename_beside_a_new_field_of_the_old_name_gets_distinct_ids)
{
    /* 'b' takes over a's id (and data); a new 'a' in the same definition must not share it. */
    put_type("t", jq("{'name':'t','fields':[{'name':'a','type':'text'}]}"));
    uint32_t a = fid_of("t", "a");
    struct put_job pj;
    int rc = put_type_d("t",
                        jq("{'name':'t','fields':[{'name':'b','type':'text','renamed_from':'a'},"
                           "{'name':'a','type':'text'}]}"),
                        &pj);
    trl_diag_reset(&pj.d);
    if (rc == 0) {
        uint32_t b = fid_of("t", "b"), a2 = fid_of("t", "a");
        ck_assert_msg(a2 != b, "fields a and b share field id %u", b);
        ck_assert_uint_eq(b, a);
    } else {
        ck_assert(rc == TRL_EVALIDATION || rc == TRL_ECONFLICT);
    }
}
END_TEST

START_TEST(type_change_refused_only_when_records_exist)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'n','type':'text'},"
                     "{'name':'m','type':'text'}]}"));
    /* No records: any change goes. */
    put_type("t", jq("{'name':'t','fields':[{'name':'n','type':'int'},"
                     "{'name':'m','type':'text'}]}"));
    uint32_t tid = type_id_of("t"), n = fid_of("t", "n");
    raw_insert(tid, 1, n, iv(5));
    struct put_job pj;
    int rc = put_type_d("t",
                        jq("{'name':'t','fields':[{'name':'n','type':'date'},"
                           "{'name':'m','type':'text'}]}"),
                        &pj);
    ck_assert_int_eq(rc, TRL_ECONFLICT);
    ck_assert_int_eq(pj.d.code, TRL_ECONFLICT);
    ck_assert_str_eq(pj.d.field, "n");
    ck_assert_int_ge(ferr_at(&pj.d, "fields[0].type"), 0);
    ck_assert_ptr_nonnull(strstr(pj.d.message, "int"));
    ck_assert_ptr_nonnull(strstr(pj.d.message, "date"));
    trl_diag_reset(&pj.d);
    /* Nothing changed. */
    struct trl_catalog *c = load();
    ck_assert_int_eq(field(trl_catalog_type(c, "t"), "n")->type, TRL_FT_INT);
    trl_catalog_unref(c);
    /* text <-> longtext keeps the bytes: allowed with records. */
    put_type("t", jq("{'name':'t','fields':[{'name':'n','type':'int'},"
                     "{'name':'m','type':'longtext'}]}"));
    put_type("t", jq("{'name':'t','fields':[{'name':'n','type':'int'},"
                     "{'name':'m','type':'text'}]}"));
    /* Removing the field and adding a new one of another type is the supported way. */
    put_type("t", jq("{'name':'t','fields':[{'name':'n2','type':'date'},"
                     "{'name':'m','type':'text'}]}"));
    ck_assert_uint_ne(fid_of("t", "n2"), n);
}
END_TEST

START_TEST(decimal_scale_change_refused_with_records)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'p','type':'decimal','scale':2}]}"));
    put_type("t", jq("{'name':'t','fields':[{'name':'p','type':'decimal','scale':3}]}"));
    raw_insert(type_id_of("t"), 1, fid_of("t", "p"), iv(1500));
    struct put_job pj;
    ck_assert_int_eq(
        put_type_d("t", jq("{'name':'t','fields':[{'name':'p','type':'decimal','scale':2}]}"), &pj),
        TRL_ECONFLICT);
    ck_assert_str_eq(pj.d.field, "p");
    trl_diag_reset(&pj.d);
}
END_TEST

START_TEST(unique_over_duplicates_refused)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'code','type':'text'}]}"));
    uint32_t tid = type_id_of("t"), code = fid_of("t", "code");
    raw_insert(tid, 1, code, sv("A"));
    raw_insert(tid, 2, code, sv("B"));
    raw_insert(tid, 3, code, sv("A"));
    struct put_job pj;
    ck_assert_int_eq(put_type_d("t",
                                jq("{'name':'t','fields':[{'name':'code','type':'text',"
                                   "'unique':true}]}"),
                                &pj),
                     TRL_ECONFLICT);
    ck_assert_str_eq(pj.d.field, "code");
    ck_assert_ptr_nonnull(strstr(pj.d.message, "unique"));
    trl_diag_reset(&pj.d);
    /* Nothing of the attempt stayed: no index entries, the field not unique. */
    struct trl_catalog *c = load();
    const struct trl_type *t = trl_catalog_type(c, "t");
    ck_assert(!field(t, "code")->unique);
    ck_assert_int_eq(idx_entries(trl_index_id(t, code)), 0);
    ck_assert_int_eq(idx_entries(trl_index_id(t, code) | TRL_UNIQUE_BIT), 0);
    trl_catalog_unref(c);
}
END_TEST

START_TEST(new_indexes_are_built_from_existing_records)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'code','type':'text'}]}"));
    uint32_t tid = type_id_of("t"), code = fid_of("t", "code");
    raw_insert(tid, 1, code, sv("A"));
    raw_insert(tid, 2, code, sv("B"));
    raw_insert(tid, 3, code, sv("C"));
    put_type("t", jq("{'name':'t','fields':[{'name':'code','type':'text','unique':true}]}"));
    uint32_t iid = (tid << 16) | code;
    ck_assert_int_eq(idx_entries(iid), 3);
    ck_assert_int_eq(idx_entries(iid | TRL_UNIQUE_BIT), 3);
    /* Dropping the rule drops the indexes. */
    put_type("t", jq("{'name':'t','fields':[{'name':'code','type':'text'}]}"));
    ck_assert_int_eq(idx_entries(iid), 0);
    ck_assert_int_eq(idx_entries(iid | TRL_UNIQUE_BIT), 0);
    /* An added enum field indexes every record, by its default where it has none. */
    put_type("t", jq("{'name':'t','fields':[{'name':'code','type':'text'},"
                     "{'name':'r','type':'enum','options':['x','y'],'default':'y'}]}"));
    ck_assert_int_eq(idx_entries((tid << 16) | fid_of("t", "r")), 3);
}
END_TEST

struct del_job {
    const char *name;
    struct trl_diag d;
};

static int del_fn(struct trl_txn *t, void *arg)
{
    struct del_job *j = arg;
    return trl_schema_delete_type(t, j->name, &j->d);
}

static int del_rec_fn(struct trl_txn *t, void *arg)
{
    const unsigned char *k = arg;
    return trl_txn_del(t, TRL_DB_REC, k, 12);
}

START_TEST(delete_type_refused_while_records_exist)
{
    put_type("t", jq("{'name':'t','fields':[{'name':'a','type':'text','indexed':true}]}"));
    put_type("u", jq("{'name':'u','fields':[]}"));
    uint32_t tid = type_id_of("t");
    raw_insert(tid, 1, fid_of("t", "a"), sv("x"));
    struct del_job dj = {.name = "t"};
    trl_diag_init(&dj.d);
    ck_assert_int_eq(trl_store_write(st, del_fn, &dj), TRL_ECONFLICT);
    ck_assert_ptr_nonnull(strstr(dj.d.message, "records"));
    trl_diag_reset(&dj.d);
    struct trl_catalog *c = load();
    ck_assert_ptr_nonnull(trl_catalog_type(c, "t"));
    trl_catalog_unref(c);
    /* Without records it goes, and the other type stays. */
    unsigned char k[12];
    trl_put_u32be(k, tid);
    trl_put_u64be(k + 4, 1);
    ck_assert_int_eq(trl_store_write(st, del_rec_fn, k), 0);
    ck_assert_int_eq(trl_store_write(st, del_fn, &dj), 0);
    trl_diag_reset(&dj.d);
    c = load();
    ck_assert_ptr_null(trl_catalog_type(c, "t"));
    ck_assert_ptr_nonnull(trl_catalog_type(c, "u"));
    trl_catalog_unref(c);
    dj.name = "nope";
    ck_assert_int_eq(trl_store_write(st, del_fn, &dj), TRL_ENOTFOUND);
    trl_diag_reset(&dj.d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Autonaming
 */
START_TEST(autoname_expands_dates_and_counter)
{
    put_type("mr", jq("{'name':'mr','autoname':'MR-{YYYY}-{#####}','fields':[]}"));
    put_type("x", jq("{'name':'x','autoname':'X{YY}{MM}{DD}-{###}-{foo}','fields':[]}"));
    put_type("plain", jq("{'name':'plain','fields':[]}"));
    struct trl_catalog *c = load();
    const struct trl_type *mr = trl_catalog_type(c, "mr");
    const struct trl_type *x = trl_catalog_type(c, "x");
    const struct trl_type *plain = trl_catalog_type(c, "plain");
    int64_t march, dec31, jan1;
    trl_datetime_parse("2026-03-01T10:00:00Z", 20, &march);
    trl_datetime_parse("2026-12-31T23:59:59Z", 20, &dec31);
    trl_datetime_parse("2027-01-01T00:00:00Z", 20, &jan1);
    char out[64], k1[64], k2[64], k3[64];
    trl_schema_autoname(mr, march, 17, out, sizeof(out));
    ck_assert_str_eq(out, "MR-2026-00017");
    trl_schema_autoname(mr, march, 1234567, out, sizeof(out));
    ck_assert_str_eq(out, "MR-2026-1234567"); /* the counter widens, never wraps */
    trl_schema_autoname(x, march, 7, out, sizeof(out));
    ck_assert_str_eq(out, "X260301-007-{foo}");
    trl_schema_autoname(plain, march, 42, out, sizeof(out));
    ck_assert_str_eq(out, "00042");
    trl_schema_autoname(mr, march, 17, out, 6);
    ck_assert_str_eq(out, "MR-20"); /* truncated, terminated */
    /* The sequence key restarts per year. */
    trl_schema_autoname_key(mr, march, k1, sizeof(k1));
    trl_schema_autoname_key(mr, dec31, k2, sizeof(k2));
    trl_schema_autoname_key(mr, jan1, k3, sizeof(k3));
    char want[64];
    snprintf(want, sizeof(want), "name:%u:MR-2026-#", mr->id);
    ck_assert_str_eq(k1, want);
    ck_assert_str_eq(k1, k2);
    ck_assert_str_ne(k1, k3);
    snprintf(want, sizeof(want), "name:%u:MR-2027-#", mr->id);
    ck_assert_str_eq(k3, want);
    /* Types do not share counters. */
    trl_schema_autoname_key(x, march, k2, sizeof(k2));
    ck_assert_str_ne(k1, k2);
    trl_catalog_unref(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Catalog and meta
 */
START_TEST(catalog_load_ref_unref)
{
    put_type("zeta", jq("{'name':'zeta','fields':[]}"));
    put_type("alpha", jq("{'name':'alpha','fields':[{'name':'a','type':'text'}]}"));
    put_type("mid", jq("{'name':'mid','fields':[]}"));
    struct trl_catalog *c = load();
    ck_assert_int_eq(c->refs, 1);
    ck_assert_uint_eq(c->ntypes, 3);
    ck_assert_str_eq(c->types[0]->name, "alpha");
    ck_assert_str_eq(c->types[1]->name, "mid");
    ck_assert_str_eq(c->types[2]->name, "zeta");
    ck_assert_uint_eq(c->version, 3);
    const struct trl_type *z = trl_catalog_type(c, "zeta");
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_eq(trl_catalog_type_by_id(c, z->id), z);
    ck_assert_ptr_null(trl_catalog_type(c, "nope"));
    ck_assert_ptr_null(trl_catalog_type(c, ""));
    ck_assert_ptr_null(trl_catalog_type_by_id(c, 9999));
    /* Distinct, stable type ids. */
    ck_assert_uint_ne(c->types[0]->id, c->types[1]->id);
    ck_assert_uint_ne(c->types[1]->id, c->types[2]->id);
    ck_assert_ptr_eq(trl_catalog_ref(c), c);
    ck_assert_int_eq(c->refs, 2);
    trl_catalog_unref(c);
    ck_assert_int_eq(c->refs, 1);
    ck_assert_str_eq(trl_catalog_type(c, "alpha")->fields[0].name, "a"); /* still alive */
    /* A change builds a new catalog; the old one stays usable until released. */
    put_type("alpha", jq("{'name':'alpha','fields':[{'name':'a','type':'text'},"
                         "{'name':'b','type':'int'}]}"));
    struct trl_catalog *c2 = load();
    ck_assert_uint_gt(c2->version, c->version);
    ck_assert_uint_eq(trl_catalog_type(c, "alpha")->nfields, 1);
    ck_assert_uint_eq(trl_catalog_type(c2, "alpha")->nfields, 2);
    ck_assert_uint_eq(trl_catalog_type(c2, "alpha")->id, trl_catalog_type(c, "alpha")->id);
    trl_catalog_unref(c);
    trl_catalog_unref(c2);
    trl_catalog_ref(NULL);
    trl_catalog_unref(NULL);
}
END_TEST

static int meta_raw_fn(struct trl_txn *t, void *arg)
{
    (void)arg;
    /* A definition without its bookkeeping, as a damaged store would hold it. */
    return trl_meta_put(t, "type", "broken", "{}", 2);
}

START_TEST(catalog_load_names_a_broken_definition)
{
    put_type("fine", jq("{'name':'fine','fields':[]}"));
    ck_assert_int_eq(trl_store_write(st, meta_raw_fn, NULL), 0);
    struct trl_txn *t = NULL;
    struct trl_catalog *c = (struct trl_catalog *)&t;
    struct trl_diag d;
    trl_diag_init(&d);
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    ck_assert_int_eq(trl_catalog_load(t, &c, &d), TRL_ECORRUPT);
    trl_txn_end(t);
    ck_assert_ptr_nonnull(strstr(d.message, "broken"));
    trl_diag_reset(&d);
}
END_TEST

struct meta_job {
    int rc_get_missing, rc_del_missing;
};

static int meta_fn(struct trl_txn *t, void *arg)
{
    struct meta_job *m = arg;
    int rc = trl_meta_put(t, "form", "b", "{\"b\":1}", 7);
    rc = rc ? rc : trl_meta_put(t, "form", "a", "{\"a\":1}", 7);
    rc = rc ? rc : trl_meta_put(t, "form", "c", "{\"c\":1}", 7);
    rc = rc ? rc : trl_meta_put(t, "formx", "a", "{}", 2); /* a kind that extends "form" */
    rc = rc ? rc : trl_meta_put(t, "report", "a", "{}", 2);
    char *out = NULL;
    m->rc_get_missing = trl_meta_get(t, "form", "zz", &out);
    m->rc_del_missing = trl_meta_del(t, "form", "zz");
    return rc;
}

struct each_acc {
    char names[256];
    int stop_after;
    int calls;
};

static int each_cb(void *ud, const char *name, const char *json, size_t n)
{
    struct each_acc *a = ud;
    ck_assert_uint_eq(strlen(json), n);
    strcat(a->names, name);
    strcat(a->names, ";");
    return ++a->calls == a->stop_after ? 7 : 0;
}

START_TEST(meta_definitions_by_kind_and_name)
{
    struct meta_job m = {0};
    ck_assert_int_eq(trl_store_write(st, meta_fn, &m), 0);
    ck_assert_int_eq(m.rc_get_missing, TRL_ENOTFOUND);
    ck_assert_int_eq(m.rc_del_missing, TRL_ENOTFOUND);
    struct trl_txn *t = NULL;
    ck_assert_int_eq(trl_store_read(st, &t), 0);
    char *out = NULL;
    ck_assert_int_eq(trl_meta_get(t, "form", "a", &out), 0);
    ck_assert_str_eq(out, "{\"a\":1}");
    free(out);
    struct each_acc acc = {0};
    ck_assert_int_eq(trl_meta_each(t, "form", each_cb, &acc), 0);
    ck_assert_str_eq(acc.names, "a;b;c;"); /* name order, and not the "formx" kind */
    struct each_acc stop = {.stop_after = 2};
    ck_assert_int_eq(trl_meta_each(t, "form", each_cb, &stop), 7);
    ck_assert_str_eq(stop.names, "a;b;");
    struct each_acc none = {0};
    ck_assert_int_eq(trl_meta_each(t, "workflow", each_cb, &none), 0);
    ck_assert_int_eq(none.calls, 0);
    trl_txn_end(t);
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = fx_tcase("compile_errors", setup, teardown);
    tcase_add_test(tc, errors_name_the_definition_path);
    tcase_add_test(tc, errors_for_field_names);
    tcase_add_test(tc, errors_for_rules_on_the_wrong_type);
    tcase_add_test(tc, errors_for_defaults_labels_and_type_keys);
    tcase_add_test(tc, errors_are_collected_at_once);
    tcase_add_test(tc, put_type_reports_the_same_paths_and_stores_nothing);
    suite_add_tcase(s, tc);
    tc = fx_tcase("field_types", setup, teardown);
    tcase_add_test(tc, every_field_type_and_rule_compiles);
    tcase_add_test(tc, pcre2_patterns_are_unicode_aware);
    suite_add_tcase(s, tc);
    tc = fx_tcase("convert_and_check", setup_conv, teardown_conv);
    tcase_add_test(tc, text_conversion_and_length_in_characters);
    tcase_add_test(tc, int_and_decimal_conversion);
    tcase_add_test(tc, bool_date_datetime_conversion);
    tcase_add_test(tc, enum_ref_user_json_attachment_conversion);
    tcase_add_test(tc, format_int_per_type);
    suite_add_tcase(s, tc);
    tc = fx_tcase("canonical_json", setup, teardown);
    tcase_add_test(tc, canonical_json_is_stable);
    tcase_add_test(tc, canonical_json_key_order_and_layout);
    tcase_add_test(tc, stored_definition_is_canonical);
    suite_add_tcase(s, tc);
    tc = fx_tcase("evolution", setup, teardown);
    tcase_add_test(tc, adding_a_field_keeps_existing_ids);
    tcase_add_test(tc, rename_keeps_the_field_id_and_its_data);
    tcase_add_test(tc, removed_field_id_is_retired);
    tcase_add_test(tc, type_change_refused_only_when_records_exist);
    tcase_add_test(tc, decimal_scale_change_refused_with_records);
    tcase_add_test(tc, unique_over_duplicates_refused);
    tcase_add_test(tc, new_indexes_are_built_from_existing_records);
    tcase_add_test(tc, delete_type_refused_while_records_exist);
    suite_add_tcase(s, tc);
    tc = fx_tcase("autoname", setup, teardown);
    tcase_add_test(tc, autoname_expands_dates_and_counter);
    suite_add_tcase(s, tc);
    tc = fx_tcase("catalog_and_meta", setup, teardown);
    tcase_add_test(tc, catalog_load_ref_unref);
    tcase_add_test(tc, catalog_load_names_a_broken_definition);
    tcase_add_test(tc, meta_definitions_by_kind_and_name);
    suite_add_tcase(s, tc);
    {
        /* Regressions: each was a reproducer of a bug before its fix. */
        tc = fx_tcase("regressions", setup, teardown);
        tcase_add_test(tc, rename_beside_a_new_field_of_the_old_name_gets_distinct_ids);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
