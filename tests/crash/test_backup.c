/*
 * crash_backup — hot backup during a write load, restore, and what restore and backup refuse.
 *
 *   - `trellis backup FILE` from another process while 4 clients create records (on a store
 *     seeded with 8000 records through `trellis import`, ~50 MB): the backup restores
 *     (`trellis restore FILE --data NEWDIR`) into a store that passes `trellis check`, holds every
 *     create acknowledged before the backup began, holds only acknowledged (or seeded) records,
 *     and its count lies between the live counts taken just before and just after the backup.
 *   - restore is refused while a server runs on the target directory;
 *   - restore of a file that is not a backup (garbage, empty, missing, a directory, another
 *     program's LMDB file) is refused and leaves the target's store byte for byte as it was;
 *   - backup to an existing file is refused and leaves that file alone;
 *   - restore with the server stopped really replaces the store (positive control).
 */
#include "load.h"

#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct srv S, R;

enum { SEEDED = 8000 }; /* records imported before the hot backup test's load */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int trellis(char **out, const char *a0, const char *a1, const char *a2, const char *a3)
{
    const char *argv[] = {a0, a1, a2, a3, NULL};
    return run_trellis(argv, out, 300);
}

static void scratch_dir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/trellis-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void rm_tree(const char *dir)
{
    if (strncmp(dir, "/tmp/trellis-test-", 18) != 0) return;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int by_title(const void *a, const void *b)
{
    return strcmp(((const struct ack *)a)->title, ((const struct ack *)b)->title);
}

START_TEST(hot_backup_during_load_restores)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    guard_srv(&S);
    guard_srv(&R);
    char scratch[64], file[128], seed[128];
    scratch_dir(scratch, sizeof(scratch));
    snprintf(file, sizeof(file), "%s/hot.backup", scratch);

    /* A store of some size first (~50 MB), so the backup's snapshot spans many commits. */
    snprintf(seed, sizeof(seed), "%s/seed.jsonl", scratch);
    FILE *f = fopen(seed, "w");
    ck_assert_ptr_nonnull(f);
    char desc[1001];
    memset(desc, 'd', 1000);
    desc[1000] = 0;
    for (int i = 0; i < SEEDED; i++)
        fprintf(f,
                "{\"title\":\"seed-%d\",\"partner\":\"P\",\"budget\":\"%d\",\"region\":"
                "\"north\",\"description\":\"%s\"}\n",
                i, i, desc);
    fclose(f);
    char *out = NULL;
    const char *import[] = {"import", "marketing_request", seed, "--data", S.dir, NULL};
    int rc = run_trellis(import, &out, 300);
    ck_assert_msg(rc == 0, "import: %s", out ? out : "");
    free(out);
    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(count_records(&S, "marketing_request"), SEEDED);

    struct load L;
    memset(&L, 0, sizeof(L));
    L.s = &S;
    L.nthreads = 4;
    L.max_per_thread = 20000;
    snprintf(L.tag, sizeof(L.tag), "hot-%d", (int)getpid());
    ck_assert_int_eq(load_start(&L), 0);
    for (int i = 0; i < 500 && load_acked(&L) < 400; i++)
        sleep_ms(10);
    ck_assert_int_ge(load_acked(&L), 400);

    /* Everything acknowledged now is committed before the backup's snapshot. */
    size_t pre_acked = load_acked(&L);
    long before = count_records(&S, "marketing_request");
    long long t0 = now_ms();
    rc = trellis(&out, "backup", file, "--data", S.dir);
    long long took = now_ms() - t0;
    long after = count_records(&S, "marketing_request");
    size_t post_acked = load_acked(&L);
    ck_assert_msg(rc == 0, "backup during load: %d %s", rc, out ? out : "");
    free(out);
    sleep_ms(100);
    load_stop(&L);
    printf("hot backup: %lld ms; live count %ld before, %ld after; %zu acknowledged in all\n", took,
           before, after, L.nacks);
    ck_assert_msg(L.nother == 0 && L.nfail == 0, "load saw status %ld (%s), %ld failures",
                  L.other_status, L.other_body, L.nfail);
    ck_assert_int_ge(before, SEEDED + (long)pre_acked);
    ck_assert_msg(post_acked > pre_acked && after > before,
                  "the load did not run during the backup (%ld -> %ld)", before, after);

    /* The backup is compacted: never larger than the live file. */
    struct stat sb, sl;
    char live[300];
    snprintf(live, sizeof(live), "%s/data.mdb", S.dir);
    ck_assert_int_eq(stat(file, &sb), 0);
    ck_assert_int_eq(stat(live, &sl), 0);
    ck_assert_int_le(sb.st_size, sl.st_size);

    /* Restore into a fresh directory; the result passes check. */
    memset(&R, 0, sizeof(R));
    /* The backup holds S's users and tokens: the same credentials open the restored copy. */
    snprintf(R.token, sizeof(R.token), "%s", S.token);
    snprintf(R.auth, sizeof(R.auth), "%s", S.auth);
    scratch_dir(R.dir, sizeof(R.dir));
    snprintf(R.log, sizeof(R.log), "%s.log", R.dir);
    rc = trellis(&out, "restore", file, "--data", R.dir);
    ck_assert_msg(rc == 0, "restore: %d %s", rc, out ? out : "");
    free(out);
    rc = store_check(R.dir, &out);
    ck_assert_msg(rc == 0, "check of the restored store: %s", out ? out : "");
    free(out);

    ck_assert_int_eq(srv_start(&R), 0);
    long restored = count_records(&R, "marketing_request");
    printf("hot backup: restored count %ld\n", restored);
    ck_assert_int_ge(restored, before);
    ck_assert_int_le(restored, after);

    /* It holds every create acknowledged before the backup, with its title... */
    struct client cl;
    ck_assert_int_eq(client_init(&cl, &R), 0);
    for (size_t i = 0; i < pre_acked; i++) {
        char path[128], want[LOAD_TITLE_MAX + 16];
        snprintf(path, sizeof(path), "/api/v1/records/marketing_request/%lld", L.acks[i].id);
        struct resp r;
        ck_assert_int_eq(client_req(&cl, "GET", path, NULL, &r), 0);
        ck_assert_msg(r.status == 200, "record %lld acknowledged before the backup is missing: %s",
                      L.acks[i].id, r.body);
        snprintf(want, sizeof(want), "{\"title\":\"%s\"}", L.acks[i].title);
        ck_assert_msg(json_contains(r.body, want), "record %lld: %s", L.acks[i].id, r.body);
        resp_free(&r);
    }
    /* ...and nothing that was not acknowledged, each once, with the id it had. */
    struct ack *all = NULL;
    long n = list_all(&cl, &all);
    ck_assert_int_eq(n, restored);
    qsort(L.acks, L.nacks, sizeof(*L.acks), by_title);
    long long max_id = 0;
    long seeded = 0;
    for (long i = 0; i < n; i++) {
        if (strncmp(all[i].title, "seed-", 5) == 0) {
            seeded++;
            continue;
        }
        struct ack *hit = bsearch(&all[i], L.acks, L.nacks, sizeof(*L.acks), by_title);
        ck_assert_msg(hit != NULL, "restored record %lld (%s) was never acknowledged", all[i].id,
                      all[i].title);
        ck_assert_int_eq(hit->id, all[i].id);
        if (all[i].id > max_id) max_id = all[i].id;
    }
    ck_assert_int_eq(seeded, SEEDED);
    /* The restored server writes, continuing the id sequence. */
    struct resp r;
    ck_assert_int_eq(client_req(&cl, "POST", "/api/v1/records/marketing_request",
                                "{\"title\":\"after-restore\",\"partner\":\"P\",\"budget\":\"1\"}",
                                &r),
                     0);
    ck_assert_msg(r.status == 201, "create on the restored store: %ld %s", r.status, r.body);
    ck_assert_int_gt(json_int(r.body, "id", -1), max_id);
    resp_free(&r);
    client_free(&cl);
    free(all);
    load_free(&L);

    srv_stop(&R);
    rc = store_check(R.dir, &out);
    ck_assert_msg(rc == 0, "check of the restored store after writes: %s", out ? out : "");
    free(out);
    srv_stop(&S);
    rc = store_check(S.dir, &out);
    ck_assert_msg(rc == 0, "check of the live store: %s", out ? out : "");
    free(out);
    srv_cleanup(&R);
    srv_cleanup(&S);
    rm_tree(scratch);
}
END_TEST

static void create_n(const struct srv *s, int n, const char *tag)
{
    for (int i = 0; i < n; i++) {
        char body[160];
        snprintf(body, sizeof(body), "{\"title\":\"%s-%d\",\"partner\":\"P\",\"budget\":\"%d\"}",
                 tag, i, i);
        struct resp r;
        ck_assert_int_eq(http_json(s, "POST", "/api/v1/records/marketing_request", body, &r), 0);
        ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
        resp_free(&r);
    }
}

/* Restore of `file` into S.dir (server stopped) is refused; the store is byte for byte intact. */
static void refused_untouched(const char *file, const char *why)
{
    char live[300], tmp[300];
    snprintf(live, sizeof(live), "%s/data.mdb", S.dir);
    snprintf(tmp, sizeof(tmp), "%s/.restore", S.dir);
    size_t n0, n1;
    char *b0 = slurp(live, &n0);
    ck_assert_ptr_nonnull(b0);
    char *out = NULL;
    int rc = trellis(&out, "restore", file, "--data", S.dir);
    printf("restore of %s: exit %d: %s", why, rc, out ? out : "");
    ck_assert_msg(rc != 0 && rc != -1, "restore of %s was not refused: %d %s", why, rc,
                  out ? out : "");
    free(out);
    char *b1 = slurp(live, &n1);
    ck_assert_ptr_nonnull(b1);
    ck_assert_msg(n0 == n1 && memcmp(b0, b1, n0) == 0, "restore of %s changed the store", why);
    free(b0);
    free(b1);
    struct stat st;
    ck_assert_msg(stat(tmp, &st) != 0, "restore of %s left %s behind", why, tmp);
}

/* A valid LMDB file that is not a Trellis store (one named database "other"). */
static void foreign_lmdb(const char *path)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "other", MDB_CREATE, &dbi), 0);
    MDB_val k = {3, "key"}, v = {5, "value"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    char lock[300];
    snprintf(lock, sizeof(lock), "%s-lock", path);
    unlink(lock);
}

START_TEST(restore_and_backup_refusals)
{
    ck_assert_int_eq(srv_init(&S, NULL), 0);
    guard_srv(&S);
    ck_assert_int_eq(srv_start(&S), 0);
    char scratch[64], good[128], junk[128], empty[128], missing[128], exist[128], other[128];
    scratch_dir(scratch, sizeof(scratch));
    snprintf(good, sizeof(good), "%s/good.backup", scratch);
    snprintf(junk, sizeof(junk), "%s/junk.backup", scratch);
    snprintf(empty, sizeof(empty), "%s/empty.backup", scratch);
    snprintf(missing, sizeof(missing), "%s/missing.backup", scratch);
    snprintf(exist, sizeof(exist), "%s/exists.backup", scratch);
    snprintf(other, sizeof(other), "%s/other.mdb", scratch);

    create_n(&S, 3, "first");
    char *out = NULL;
    int rc = trellis(&out, "backup", good, "--data", S.dir);
    ck_assert_msg(rc == 0, "backup: %s", out ? out : "");
    free(out);
    create_n(&S, 2, "second");

    /* Backup to an existing file: refused, the file is left alone. */
    spit(exist, "keep me\n");
    rc = trellis(&out, "backup", exist, "--data", S.dir);
    printf("backup to an existing file: exit %d: %s", rc, out ? out : "");
    ck_assert_msg(rc != 0 && rc != -1, "backup over an existing file was not refused: %s",
                  out ? out : "");
    free(out);
    size_t n;
    char *kept = slurp(exist, &n);
    ck_assert_ptr_nonnull(kept);
    ck_assert_str_eq(kept, "keep me\n");
    free(kept);

    /* Restore while the server runs on the target: refused, the server carries on. */
    rc = trellis(&out, "restore", good, "--data", S.dir);
    printf("restore under a running server: exit %d: %s", rc, out ? out : "");
    ck_assert_msg(rc != 0 && rc != -1, "restore under a running server was not refused: %s",
                  out ? out : "");
    ck_assert_ptr_nonnull(strstr(out, "server"));
    free(out);
    struct resp r;
    ck_assert_int_eq(http_json(&S, "GET", "/healthz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 5);
    create_n(&S, 1, "still-writes");
    srv_stop(&S);

    /* Not a backup: garbage, an empty file, a missing file. Each refused, store untouched. */
    FILE *f = fopen(junk, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 2000; i++)
        fprintf(f, "this is not a trellis backup, line %d\n", i);
    fclose(f);
    spit(empty, "");
    refused_untouched(junk, "a text file");
    refused_untouched(empty, "an empty file");
    refused_untouched(missing, "a missing file");
    refused_untouched(scratch, "a directory");
    foreign_lmdb(other);
    refused_untouched(other, "an LMDB file of another program");
    rc = store_check(S.dir, &out);
    ck_assert_msg(rc == 0, "check after refused restores: %s", out ? out : "");
    free(out);
    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 6);
    srv_stop(&S);

    /* Positive control: with the server stopped, restore replaces the store. */
    rc = trellis(&out, "restore", good, "--data", S.dir);
    ck_assert_msg(rc == 0, "restore: %s", out ? out : "");
    free(out);
    rc = store_check(S.dir, &out);
    ck_assert_msg(rc == 0, "check after restore: %s", out ? out : "");
    free(out);
    ck_assert_int_eq(srv_start(&S), 0);
    ck_assert_int_eq(count_records(&S, "marketing_request"), 3);
    create_n(&S, 1, "after-restore");
    ck_assert_int_eq(count_records(&S, "marketing_request"), 4);
    srv_stop(&S);
    rc = store_check(S.dir, &out);
    ck_assert_msg(rc == 0, "check after writes on the restored store: %s", out ? out : "");
    free(out);
    srv_cleanup(&S);
    rm_tree(scratch);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("crash_backup");
    TCase *tc = tcase_create("backup");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, hot_backup_during_load_restores);
    tcase_add_test(tc, restore_and_backup_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
