/* main.c — the `trellis` command: where the modules are wired together. */
#include "app/app.h"
#include "http/http.h"
#include "record/record.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define VERSION "0.1.0"

static const char *usage_main =
    "usage: trellis <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve [--data DIR] [--listen ADDR:PORT]   serve the REST API\n"
    "  app install DIR [--data DIR]               install (or upgrade) the app in folder DIR\n"
    "  app export NAME DIR [--data DIR]           write app NAME's definitions into DIR\n"
    "  app list [--data DIR]                      list installed apps\n"
    "  backup FILE [--data DIR]                   hot, consistent, compacted copy of the store\n"
    "  restore FILE [--data DIR]                  replace the store with a backup (server "
    "stopped)\n"
    "  check [--data DIR]                         verify records, indexes, counters and history\n"
    "  import TYPE FILE [--data DIR]              create records from JSON lines (one object a "
    "line)\n"
    "  version                                    print the version\n"
    "\n"
    "Every command takes --data DIR (default ./data). `trellis COMMAND --help` says more.\n";

static const char *help_serve =
    "usage: trellis serve [--data DIR] [--listen ADDR:PORT] [options]\n"
    "  --listen ADDR:PORT     address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --body-limit BYTES     largest JSON body (default 1048576)\n"
    "  --file-limit BYTES     largest upload to /api/v1/files (default 16777216)\n"
    "  --conn-limit N         most open connections (default 1024)\n"
    "  --per-ip-limit N       most connections from one client address (default 256)\n"
    "  --idle-timeout S       close connections idle this long (default 30)\n"
    "  --deadline S           total time one request may take from its first byte (default 60)\n"
    "  --threads N            HTTP threads (default: one per core)\n"
    "  --map-max MIB          cap of the store's map; writes past it answer 507 (default 65536)\n"
    "  --max-scan N           most records one listing may examine (default 200000)\n"
    "  --port-file FILE       write the bound port to FILE once listening (for scripts/tests)\n"
    "Stops cleanly on SIGINT or SIGTERM after finishing queued writes.\n";

static const char *help_app =
    "usage: trellis app install DIR [--data DIR]\n"
    "       trellis app export NAME DIR [--data DIR]\n"
    "       trellis app list [--data DIR]\n"
    "install reads every file of the app folder (app.json, types/, workflows/, forms/, reports/,\n"
    "i18n/, hooks/, tests/), refuses the whole app naming the file at fault, or stores it in one\n"
    "transaction. export writes canonical JSON (2-space indent, stable key order), so install\n"
    "then export gives back canonical files byte for byte.\n";

static const char *help_backup =
    "usage: trellis backup FILE [--data DIR]\n"
    "Writes a consistent, compacted copy of the store to FILE (which must not exist), also while\n"
    "the server runs. Attachments live in DIR/files: copy that folder too (it is "
    "content-addressed,\n"
    "so a plain copy after the backup is consistent).\n";

static const char *help_restore =
    "usage: trellis restore FILE [--data DIR]\n"
    "Replaces the store in DIR with the backup FILE. Refused while a server uses DIR.\n";

static const char *help_import =
    "usage: trellis import TYPE FILE [--data DIR] [--batch N]\n"
    "Creates one record of TYPE per line of FILE (a JSON object per line; - reads stdin), with "
    "the\n"
    "same validation, indexes, counters and history as POST /api/v1/records/TYPE. Lines are\n"
    "committed in batches of N (default 1000); the first invalid line stops the import, its batch\n"
    "is not stored, and the line number and every failing field are printed.\n";

static const char *help_check =
    "usage: trellis check [--data DIR]\n"
    "Verifies that records, indexes, unique indexes, counters, sequences and hash-chained history\n"
    "agree. Prints each problem and exits 1 when there is any, 0 when the store is consistent.\n";

struct args {
    const char *data;
    const char *pos[4];
    int npos;
    bool help;
    struct trl_server_opts so;
    const char *port_file;
    unsigned long long batch;
};

static int need_value(int i, int argc, const char *opt)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "trellis: %s needs a value\n", opt);
        return -1;
    }
    return 0;
}

static int parse_u(const char *s, unsigned long long *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return (errno || *end || !*s) ? -1 : 0;
}

static int parse_args(int argc, char **argv, int start, struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->data = "./data";
    for (int i = start; i < argc; i++) {
        const char *o = argv[i];
        unsigned long long v;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            a->help = true;
        } else if (strcmp(o, "--data") == 0) {
            if (need_value(i, argc, o)) return -1;
            a->data = argv[++i];
        } else if (strcmp(o, "--listen") == 0) {
            if (need_value(i, argc, o)) return -1;
            a->so.listen = argv[++i];
        } else if (strcmp(o, "--port-file") == 0) {
            if (need_value(i, argc, o)) return -1;
            a->port_file = argv[++i];
        } else if (strncmp(o, "--", 2) == 0) {
            static const char *num[] = {"--batch",      "--body-limit",   "--file-limit",
                                        "--conn-limit", "--per-ip-limit", "--idle-timeout",
                                        "--deadline",   "--threads",      "--map-max",
                                        "--max-scan",   "--map-initial"};
            size_t k;
            for (k = 0; k < sizeof(num) / sizeof(num[0]); k++)
                if (strcmp(o, num[k]) == 0) break;
            if (k == sizeof(num) / sizeof(num[0])) {
                fprintf(stderr, "trellis: unknown option %s (see --help)\n", o);
                return -1;
            }
            if (need_value(i, argc, o)) return -1;
            if (parse_u(argv[++i], &v)) {
                fprintf(stderr, "trellis: %s needs a number, not '%s'\n", o, argv[i]);
                return -1;
            }
            switch (k) {
            case 0:
                a->batch = v;
                break;
            case 1:
                a->so.body_limit = v;
                break;
            case 2:
                a->so.file_limit = v;
                break;
            case 3:
                a->so.conn_limit = (unsigned)v;
                break;
            case 4:
                a->so.per_ip_limit = (unsigned)v;
                break;
            case 5:
                a->so.idle_timeout_s = (unsigned)v;
                break;
            case 6:
                a->so.deadline_s = (unsigned)v;
                break;
            case 7:
                a->so.threads = (unsigned)v;
                break;
            case 8:
                a->so.map_max = (size_t)v << 20;
                break;
            case 9:
                a->so.max_scan = (int64_t)v;
                break;
            case 10:
                a->so.map_initial = (size_t)v << 20;
                break;
            }
        } else {
            if (a->npos == 4) {
                fprintf(stderr, "trellis: too many arguments\n");
                return -1;
            }
            a->pos[a->npos++] = o;
        }
    }
    return 0;
}

static void print_diag(const struct trl_diag *d)
{
    fprintf(stderr, "trellis: %s\n", d->message[0] ? d->message : trl_err_title(d->code, "en"));
    for (size_t i = 0; i < d->nferrs; i++) {
        char msg[512];
        trl_ferr_message(&d->ferrs[i], "en", msg, sizeof(msg));
        fprintf(stderr, "  %s: %s\n", d->ferrs[i].field, msg);
    }
}

/* The data directory's lock, held by `serve` and `restore` so they exclude each other. */
static int lock_data(const char *dir, bool create)
{
    char path[4096];
    if (create) mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/trellis.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return -2;
    }
    return fd;
}

static int cmd_serve(struct args *a)
{
    if (a->help) return fputs(help_serve, stdout), 0;
    int lock = lock_data(a->data, true);
    if (lock == -2) {
        fprintf(stderr, "trellis: another trellis process serves %s\n", a->data);
        return 1;
    }
    if (lock < 0) {
        fprintf(stderr, "trellis: cannot use data directory %s: %s\n", a->data, strerror(errno));
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits: only sigwait sees them */
    signal(SIGPIPE, SIG_IGN);
    a->so.data_dir = a->data;
    struct trl_server *s = NULL;
    struct trl_diag d;
    trl_diag_init(&d);
    if (trl_server_start(&a->so, &s, &d)) {
        print_diag(&d);
        trl_diag_reset(&d);
        close(lock);
        return 1;
    }
    const char *listen = a->so.listen ? a->so.listen : "127.0.0.1:8080";
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
    fprintf(stderr, "trellis: listening on http://%s:%u/ (Ctrl-C stops)\n", host,
            trl_server_port(s));
    if (a->port_file) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp", a->port_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%u\n", trl_server_port(s));
            fclose(f);
            rename(tmp, a->port_file);
        }
    }
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "trellis: stopping (signal %d)\n", sig);
    trl_server_stop(s);
    close(lock);
    return 0;
}

static int open_store(const char *dir, bool ro, struct trl_store **s)
{
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store_opts so = {.dir = dir, .read_only = ro};
    if (ro) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/data.mdb", dir);
        if (stat(path, &st)) {
            fprintf(stderr, "trellis: no store in %s (run `trellis app install` or serve first)\n",
                    dir);
            return 1;
        }
    }
    if (trl_store_open(&so, s, &d)) {
        print_diag(&d);
        trl_diag_reset(&d);
        return 1;
    }
    return 0;
}

struct install_job {
    struct trl_app_bundle *b;
    struct trl_diag *d;
    bool changed;
};

static int install_fn(struct trl_txn *t, void *arg)
{
    struct install_job *j = arg;
    trl_diag_reset(j->d);
    return trl_app_install(t, j->b, &j->changed, j->d);
}

static int cmd_app(struct args *a)
{
    if (a->help || a->npos < 1) return fputs(help_app, a->help ? stdout : stderr), a->help ? 0 : 2;
    const char *sub = a->pos[0];
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_store *s = NULL;
    int rc = 1;
    if (strcmp(sub, "install") == 0) {
        if (a->npos != 2) return fputs(help_app, stderr), 2;
        struct trl_app_bundle b;
        if (trl_app_read_dir(a->pos[1], &b, &d)) {
            print_diag(&d);
            trl_diag_reset(&d);
            return 1;
        }
        if (open_store(a->data, false, &s)) {
            trl_app_bundle_free(&b);
            return 1;
        }
        struct install_job j = {.b = &b, .d = &d};
        int wrc = trl_store_write(s, install_fn, &j);
        if (wrc) {
            if (!d.code) trl_diag_set(&d, wrc, "install failed: %s", trl_err_title(wrc, "en"));
            fprintf(stderr, "trellis: app %s was not installed; nothing was changed\n", b.name);
            print_diag(&d);
        } else {
            printf("installed %s %s into %s%s\n", b.name, b.version, a->data,
                   j.changed ? "" : " (already up to date)");
            rc = 0;
        }
        trl_app_bundle_free(&b);
    } else if (strcmp(sub, "export") == 0) {
        if (a->npos != 3) return fputs(help_app, stderr), 2;
        if (open_store(a->data, true, &s)) return 1;
        struct trl_txn *t;
        if (trl_store_read(s, &t) == 0) {
            if (trl_app_export(t, a->pos[1], a->pos[2], &d))
                print_diag(&d);
            else
                rc = 0, printf("exported %s into %s\n", a->pos[1], a->pos[2]);
            trl_txn_end(t);
        }
    } else if (strcmp(sub, "list") == 0) {
        if (open_store(a->data, true, &s)) return 1;
        struct trl_txn *t;
        struct trl_buf out;
        trl_buf_init(&out);
        if (trl_store_read(s, &t) == 0) {
            if (trl_app_list(t, &out) == 0) rc = 0, printf("%s\n", out.data);
            trl_txn_end(t);
        }
        trl_buf_free(&out);
    } else {
        fputs(help_app, stderr);
        rc = 2;
    }
    trl_store_close(s);
    trl_diag_reset(&d);
    return rc;
}

static int cmd_backup(struct args *a)
{
    if (a->help || a->npos != 1)
        return fputs(help_backup, a->help ? stdout : stderr), a->help ? 0 : 2;
    struct trl_store *s;
    if (open_store(a->data, true, &s)) return 1;
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_store_backup(s, a->pos[0], &d);
    if (rc)
        print_diag(&d);
    else
        printf("backup of %s written to %s\n", a->data, a->pos[0]);
    trl_diag_reset(&d);
    trl_store_close(s);
    return rc ? 1 : 0;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = -1, rc = -1;
    if (in < 0) return -1;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out >= 0) {
        char buf[1 << 16];
        ssize_t n;
        rc = 0;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n) rc = -1;
        if (n < 0) rc = -1;
        if (fsync(out)) rc = -1;
        if (close(out)) rc = -1;
    }
    close(in);
    return rc;
}

static int cmd_restore(struct args *a)
{
    if (a->help || a->npos != 1)
        return fputs(help_restore, a->help ? stdout : stderr), a->help ? 0 : 2;
    int lock = lock_data(a->data, true);
    if (lock == -2) {
        fprintf(stderr, "trellis: a server is using %s; stop it before restoring\n", a->data);
        return 1;
    }
    if (lock < 0) {
        fprintf(stderr, "trellis: cannot use %s: %s\n", a->data, strerror(errno));
        return 1;
    }
    /* Verify the backup opens as a store before replacing anything. */
    char tmpdir[4200], tmpdb[4300], path[4300], lockp[4300];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.restore", a->data);
    mkdir(tmpdir, 0700);
    snprintf(tmpdb, sizeof(tmpdb), "%s/data.mdb", tmpdir);
    int rc = 1;
    struct stat bst;
    const char *why = NULL;
    if (stat(a->pos[0], &bst))
        why = strerror(errno);
    else if (!S_ISREG(bst.st_mode) || bst.st_size < 8192)
        why = "too small to be a store";
    if (why) {
        fprintf(stderr, "trellis: %s is not a Trellis backup (%s)\n", a->pos[0], why);
        goto out;
    }
    if (copy_file(a->pos[0], tmpdb)) {
        fprintf(stderr, "trellis: cannot read %s: %s\n", a->pos[0], strerror(errno));
        goto out;
    }
    struct trl_store *s = NULL;
    if (open_store(tmpdir, true, &s)) {
        fprintf(stderr, "trellis: %s is not a Trellis backup\n", a->pos[0]);
        goto out;
    }
    trl_store_close(s);
    snprintf(path, sizeof(path), "%s/data.mdb", a->data);
    snprintf(lockp, sizeof(lockp), "%s/lock.mdb", a->data);
    if (rename(tmpdb, path)) {
        fprintf(stderr, "trellis: cannot replace %s: %s\n", path, strerror(errno));
        goto out;
    }
    unlink(lockp);
    int dfd = open(a->data, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) fsync(dfd), close(dfd);
    printf("restored %s from %s\n", a->data, a->pos[0]);
    rc = 0;
out:
    unlink(tmpdb);
    snprintf(lockp, sizeof(lockp), "%s/lock.mdb", tmpdir);
    unlink(lockp);
    rmdir(tmpdir);
    close(lock);
    return rc;
}

static int cmd_check(struct args *a)
{
    if (a->help) return fputs(help_check, stdout), 0;
    struct trl_store *s;
    if (open_store(a->data, true, &s)) return 1;
    struct trl_txn *t = NULL;
    struct trl_catalog *cat = NULL;
    struct trl_diag d;
    struct trl_buf report;
    trl_diag_init(&d);
    trl_buf_init(&report);
    int rc = trl_store_read(s, &t);
    if (!rc) rc = trl_catalog_load(t, &cat, &d);
    int problems = -1;
    if (!rc) problems = trl_rec_check(t, cat, &report);
    trl_txn_end(t);
    if (rc)
        print_diag(&d);
    else if (problems < 0)
        fprintf(stderr, "trellis: check failed: %s\n", trl_err_title(problems, "en"));
    else if (problems > 0) {
        fputs(report.data, stdout);
        printf("%d problem(s) found in %s\n", problems, a->data);
    } else {
        size_t nrec = 0;
        struct trl_txn *t2;
        if (trl_store_read(s, &t2) == 0) {
            for (size_t i = 0; i < cat->ntypes; i++) {
                uint64_t n = 0;
                trl_rec_count(t2, cat->types[i], &n);
                nrec += n;
            }
            trl_txn_end(t2);
        }
        printf("ok: %zu type(s), %zu record(s): records, indexes, counters and history agree\n",
               cat->ntypes, nrec);
    }
    trl_catalog_unref(cat);
    trl_buf_free(&report);
    trl_diag_reset(&d);
    trl_store_close(s);
    return (rc || problems != 0) ? 1 : 0;
}

struct import_job {
    const struct trl_type *ty;
    const struct trl_catalog *cat;
    char **lines;       /* the batch's lines (borrowed) */
    size_t *lineno;     /* their line numbers */
    size_t n;           /* lines in the batch */
    size_t bad;         /* index of the failing line */
    struct trl_diag *d; /* its diagnostics */
    struct trl_principal who;
};

static int import_fn(struct trl_txn *t, void *arg)
{
    struct import_job *j = arg;
    struct trl_clock clk;
    trl_clock_system(&clk);
    for (size_t i = 0; i < j->n; i++) {
        struct trl_input *in = NULL;
        size_t nin = 0;
        void *tree = NULL;
        trl_diag_reset(j->d);
        int rc =
            trl_json_object_inputs(j->lines[i], strlen(j->lines[i]), 64, &in, &nin, &tree, j->d);
        if (!rc) {
            struct trl_rec_ctx cx = {.cat = j->cat,
                                     .who = &j->who,
                                     .now_ms = trl_clock_now(&clk),
                                     .request_id = "import",
                                     .lang = "en",
                                     .d = j->d};
            uint64_t id;
            rc = trl_rec_create(t, &cx, j->ty, in, nin, &id, NULL);
        }
        free(in);
        trl_json_tree_free(tree);
        if (rc) {
            j->bad = i;
            return rc;
        }
    }
    return 0;
}

static int cmd_import(struct args *a)
{
    if (a->help || a->npos != 2)
        return fputs(help_import, a->help ? stdout : stderr), a->help ? 0 : 2;
    FILE *f = strcmp(a->pos[1], "-") == 0 ? stdin : fopen(a->pos[1], "r");
    if (!f) {
        fprintf(stderr, "trellis: cannot read %s: %s\n", a->pos[1], strerror(errno));
        return 1;
    }
    struct trl_store *s = NULL;
    if (open_store(a->data, false, &s)) {
        if (f != stdin) fclose(f);
        return 1;
    }
    struct trl_diag d;
    trl_diag_init(&d);
    struct trl_txn *t = NULL;
    struct trl_catalog *cat = NULL;
    int rc = trl_store_read(s, &t);
    if (!rc) rc = trl_catalog_load(t, &cat, &d);
    trl_txn_end(t);
    const struct trl_type *ty = cat ? trl_catalog_type(cat, a->pos[0]) : NULL;
    if (!rc && !ty) {
        fprintf(stderr, "trellis: no type '%s' is installed\n", a->pos[0]);
        rc = 1;
    }
    size_t batch = a->batch ? (size_t)a->batch : 1000, total = 0, lineno = 0;
    char **lines = calloc(batch, sizeof(char *));
    size_t *nos = calloc(batch, sizeof(size_t));
    char *line = NULL;
    size_t cap = 0;
    int64_t t0 = trl_mono_ms();
    bool eof = false;
    while (!rc && lines && nos && !eof) {
        size_t n = 0;
        while (n < batch) {
            ssize_t len = getline(&line, &cap, f);
            if (len < 0) {
                eof = true;
                break;
            }
            lineno++;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = 0;
            if (!len) continue;
            lines[n] = strdup(line);
            nos[n++] = lineno;
        }
        if (n) {
            struct import_job j = {
                .ty = ty, .cat = cat, .lines = lines, .lineno = nos, .n = n, .d = &d};
            snprintf(j.who.user, sizeof(j.who.user), "admin");
            j.who.admin = true;
            int wrc = trl_store_write(s, import_fn, &j);
            if (wrc) {
                fprintf(stderr, "trellis: line %zu: ", nos[j.bad]);
                print_diag(&d);
                fprintf(stderr,
                        "trellis: imported %zu record(s); nothing from line %zu on was "
                        "stored\n",
                        total, nos[0]);
                rc = 1;
            } else {
                total += n;
            }
        }
        for (size_t i = 0; i < n; i++)
            free(lines[i]);
    }
    if (!rc) {
        double secs = (double)(trl_mono_ms() - t0) / 1000.0;
        printf("imported %zu %s record(s) in %.1f s (%.0f/s)\n", total, a->pos[0], secs,
               secs > 0 ? (double)total / secs : 0.0);
    }
    free(line);
    free(lines);
    free(nos);
    if (f != stdin) fclose(f);
    trl_catalog_unref(cat);
    trl_diag_reset(&d);
    trl_store_close(s);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("trellis %s\n", VERSION);
        return 0;
    }
    struct args a;
    if (parse_args(argc, argv, 2, &a)) return 2;
    if (strcmp(cmd, "serve") == 0) return cmd_serve(&a);
    if (strcmp(cmd, "app") == 0) return cmd_app(&a);
    if (strcmp(cmd, "backup") == 0) return cmd_backup(&a);
    if (strcmp(cmd, "restore") == 0) return cmd_restore(&a);
    if (strcmp(cmd, "check") == 0) return cmd_check(&a);
    if (strcmp(cmd, "import") == 0) return cmd_import(&a);
    fprintf(stderr, "trellis: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
