/*
 * fuzz_workflow.c — libFuzzer target for workflow definitions (trl_wf_parse), as an app's
 * workflows folder or PUT /api/v1/meta/workflows/{name} deliver them.
 *
 * Definitions are checked against a real catalog, built once (lazily) the way the server builds
 * one: type definitions stored through trl_schema_put_type in a scratch store, then
 * trl_catalog_load. It holds the sample app's marketing_request type plus plan (with a json list
 * for create ... for_each) and delivery_task (a target of create actions), so conditions, field
 * lists, set/copy/var constants, approvers, assignment fields and create mappings all resolve.
 *
 * Invariants: a refusal is TRL_EJSON, TRL_EVALIDATION (with at least one field error) or
 * TRL_ENOMEM, with nothing returned. An accepted workflow has its canonical definition, and that
 * canonical form is accepted again (under the workflow's own name) to the same canonical form
 * (save -> export -> save).
 */
#define _XOPEN_SOURCE 700
#include "schema/schema.h"
#include "store/store.h"
#include "workflow/workflow.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* samples/marketing/types/marketing_request.json */
static const char marketing_request_def[] =
    "{\"name\":\"marketing_request\",\"labels\":{\"en\":\"Marketing request\",\"zh-CN\":"
    "\"市场活动申请\"},\"title_field\":\"title\",\"autoname\":\"MR-{YYYY}-{#####}\","
    "\"initial_state\":\"draft\",\"fields\":["
    "{\"name\":\"title\",\"type\":\"text\",\"labels\":{\"en\":\"Title\",\"zh-CN\":\"标题\"},"
    "\"required\":true,\"min_length\":1,\"max_length\":200},"
    "{\"name\":\"partner\",\"type\":\"text\",\"labels\":{\"en\":\"Partner\",\"zh-CN\":"
    "\"合作伙伴\"},\"help\":{\"en\":\"The channel partner's name\",\"zh-CN\":"
    "\"渠道合作伙伴名称\"},\"required\":true,\"max_length\":200},"
    "{\"name\":\"region\",\"type\":\"enum\",\"labels\":{\"en\":\"Region\",\"zh-CN\":\"区域\"},"
    "\"options\":[{\"value\":\"north\",\"labels\":{\"en\":\"North\",\"zh-CN\":\"华北\"}},"
    "{\"value\":\"south\",\"labels\":{\"en\":\"South\",\"zh-CN\":\"华南\"}},"
    "{\"value\":\"east\",\"labels\":{\"en\":\"East\",\"zh-CN\":\"华东\"}},"
    "{\"value\":\"west\",\"labels\":{\"en\":\"West\",\"zh-CN\":\"华西\"}}]},"
    "{\"name\":\"budget\",\"type\":\"decimal\",\"labels\":{\"en\":\"Budget\",\"zh-CN\":"
    "\"预算\"},\"required\":true,\"scale\":2,\"min\":\"0\"},"
    "{\"name\":\"start_date\",\"type\":\"date\",\"labels\":{\"en\":\"Start date\",\"zh-CN\":"
    "\"开始日期\"}},"
    "{\"name\":\"description\",\"type\":\"longtext\",\"labels\":{\"en\":\"Description\","
    "\"zh-CN\":\"描述\"},\"help\":{\"en\":\"Markdown\",\"zh-CN\":\"支持 Markdown\"},"
    "\"max_length\":5000},"
    "{\"name\":\"assignee\",\"type\":\"text\",\"labels\":{\"en\":\"Assignee\",\"zh-CN\":"
    "\"处理人\"},\"indexed\":true,\"max_length\":63}],"
    "\"permissions\":{\"director\":{\"read\":\"all\"},\"finance\":{\"read\":\"all\"},"
    "\"partner\":{\"create\":\"org\",\"delete\":\"none\",\"read\":\"org\",\"update\":\"org\"},"
    "\"reviewer\":{\"read\":\"all\"}}}";

/* A source type with a json list (tests/integration/cases/07_actions.json). */
static const char plan_def[] =
    "{\"name\":\"plan\",\"title_field\":\"title\",\"initial_state\":\"draft\",\"fields\":["
    "{\"name\":\"title\",\"type\":\"text\",\"required\":true},"
    "{\"name\":\"region\",\"type\":\"text\"},"
    "{\"name\":\"lines\",\"type\":\"json\"},"
    "{\"name\":\"approved_at\",\"type\":\"datetime\"},"
    "{\"name\":\"approved_on\",\"type\":\"date\"},"
    "{\"name\":\"owner_user\",\"type\":\"user\"}]}";

/* A target type of create actions (same source). */
static const char delivery_task_def[] =
    "{\"name\":\"delivery_task\",\"title_field\":\"title\",\"fields\":["
    "{\"name\":\"request\",\"type\":\"int\"},"
    "{\"name\":\"title\",\"type\":\"text\",\"required\":true},"
    "{\"name\":\"item\",\"type\":\"text\",\"required\":true},"
    "{\"name\":\"qty\",\"type\":\"int\",\"min\":1},"
    "{\"name\":\"region\",\"type\":\"text\"},"
    "{\"name\":\"ordered_at\",\"type\":\"datetime\"},"
    "{\"name\":\"note\",\"type\":\"text\",\"max_length\":20}]}";

struct put_job {
    struct trl_diag d;
};

static int put_types(struct trl_txn *t, void *arg)
{
    struct put_job *p = arg;
    static const struct {
        const char *name, *def;
    } types[] = {{"marketing_request", marketing_request_def},
                 {"plan", plan_def},
                 {"delivery_task", delivery_task_def}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        bool changed;
        int rc = trl_schema_put_type(t, types[i].name, types[i].def, strlen(types[i].def), "",
                                     &changed, &p->d);
        if (rc) return rc;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The catalog, built on first use and kept for the life of the process. */
static const struct trl_catalog *catalog(void)
{
    static struct trl_catalog *cat;
    if (cat) return cat;
    char dir[] = "/tmp/trl-fuzz-workflow-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("fuzz_workflow: mkdtemp");
        abort();
    }
    struct trl_store_opts o = {.dir = dir, .map_initial = (size_t)8 << 20};
    struct trl_store *st = NULL;
    struct trl_txn *t = NULL;
    struct put_job p;
    trl_diag_init(&p.d);
    int rc = trl_store_open(&o, &st, &p.d);
    if (!rc) rc = trl_store_write(st, put_types, &p);
    if (!rc) rc = trl_store_read(st, &t);
    if (!rc) {
        rc = trl_catalog_load(t, &cat, &p.d);
        trl_txn_end(t);
    }
    trl_store_close(st);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    if (rc || !trl_catalog_type(cat, "marketing_request")) {
        fprintf(stderr, "fuzz_workflow: cannot build the catalog: %d %s (%s)\n", rc, p.d.message,
                p.d.nferrs ? p.d.ferrs[0].field : "-");
        abort();
    }
    trl_diag_reset(&p.d);
    return cat;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct trl_catalog *cat = catalog();
    struct trl_diag d;
    struct trl_workflow *w = (struct trl_workflow *)1;
    trl_diag_init(&d);
    int rc = trl_wf_parse(cat, NULL, (const char *)data, size, &w, &d);
    if (rc) {
        if (w) abort();
        if (rc != TRL_EJSON && rc != TRL_EVALIDATION && rc != TRL_ENOMEM) abort();
        if (rc == TRL_EVALIDATION && d.nferrs == 0) abort();
        trl_diag_reset(&d);
        return 0;
    }
    if (!w || !w->definition || !w->name || !w->type) abort();
    if (!trl_catalog_type(cat, w->type)) abort();

    /* The canonical form is accepted again, under its own name, to the same canonical form. */
    struct trl_workflow *w2 = NULL;
    trl_diag_reset(&d);
    rc = trl_wf_parse(cat, w->name, w->definition, strlen(w->definition), &w2, &d);
    if (rc == TRL_ENOMEM) {
        trl_wf_free(w);
        trl_diag_reset(&d);
        return 0;
    }
    if (rc || !w2) {
        fprintf(stderr, "canonical form refused: %s\n%s", d.message, w->definition);
        abort();
    }
    if (strcmp(w->definition, w2->definition) != 0 || w->nstates != w2->nstates ||
        w->ntransitions != w2->ntransitions || w->napprovals != w2->napprovals ||
        w->nslas != w2->nslas || w->assignment.nrules != w2->assignment.nrules)
        abort();
    trl_wf_free(w2);
    trl_wf_free(w);
    trl_diag_reset(&d);
    return 0;
}
