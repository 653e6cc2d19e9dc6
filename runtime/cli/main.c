/* main.c — the `trellis` command: where the modules are wired together. */
#include "cli.h"

#include "app/app.h"
#include "auth/auth.h"
#include "http/http.h"
#include "notify/notify.h"
#include "workflow/workflow.h"
#include "record/record.h"

#include <sodium.h>

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
    "  hooks test APP_DIR                         run the app's Lua specs (tests/*_spec.lua)\n"
    "  hooks lint APP_DIR                         luacheck the app's hooks and specs\n"
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
    "  --threads N            HTTP worker threads (default: one per core, at most 64)\n"
    "  --max-streams N        most open GET /api/v1/events streams; more get 503 (default 256)\n"
    "  --map-max MIB          cap of the store's map; writes past it answer 507 (default 65536)\n"
    "  --max-scan N           most records one listing may examine (default 200000)\n"
    "  --report-max-scan N    most records one report run may examine (default 5000000)\n"
    "  --export-max-rows N    most rows of one CSV export of a listing (default 100000)\n"
    "  --port-file FILE       write the bound port to FILE once listening (for scripts/tests)\n"
    "  --test-clock           let administrators move time (POST /api/v1/test/clock) for SLA\n"
    "                         tests; never use it in production\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (and --tls-key FILE); session\n"
    "                         cookies are then Secure and named __Host-trellis_session\n"
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
    "usage: trellis import TYPE FILE [--data DIR] [--batch N] [--org ORG] [--owner USER]\n"
    "Creates one record of TYPE per line of FILE (a JSON object per line; - reads stdin), with "
    "the\n"
    "same validation, indexes, counters and history as POST /api/v1/records/TYPE. Lines are\n"
    "committed in batches of N (default 1000); the first invalid line stops the import, its batch\n"
    "is not stored, and the line number and every failing field are printed. The records belong\n"
    "to ORG and USER (both must exist; default: no org, owner admin), e.g. a partner's records\n"
    "moved from another system.\n";

static const char *help_user =
    "usage: trellis user add NAME --role ROLE [--role ROLE]... [--org ORG] [--display TEXT]\n"
    "                        [--email ADDR] [--lang en|zh-CN] [--region R] [--manager USER]\n"
    "                        [--password-stdin] [--data DIR]\n"
    "       trellis user passwd NAME [--data DIR]      (reads the new password from stdin)\n"
    "       trellis user disable|enable NAME [--data DIR]\n"
    "       trellis user list [--data DIR]\n"
    "Passwords are read from standard input (one line), never from the command line, and stored\n"
    "only as Argon2id hashes (2 passes, 19 MiB).\n";

static const char *help_org =
    "usage: trellis org add NAME [--label-en TEXT] [--label-zh TEXT] [--data DIR]\n"
    "       trellis org list [--data DIR]\n";

static const char *help_token =
    "usage: trellis token create USER [--name NAME] [--role ROLE]... [--expires DAYS] [--data "
    "DIR]\n"
    "       trellis token list [--data DIR]\n"
    "       trellis token revoke NAME [--data DIR]\n"
    "create prints a Bearer token for USER once (only its hash is stored); --role limits it to\n"
    "some of the user's roles (default: all of them); --expires makes it expire after DAYS days.\n";

static const char *help_check =
    "usage: trellis check [--data DIR]\n"
    "Verifies that records, indexes, unique indexes, counters, sequences and hash-chained history\n"
    "agree. Prints each problem and exits 1 when there is any, 0 when the store is consistent.\n";

struct args {
    const char *data;
    const char *pos[4];
    int npos;
    bool help;
    const char *filter; /* hooks test --filter */
    struct trl_server_opts so;
    const char *port_file;
    unsigned long long batch;
    const char *roles[TRL_AUTH_MAX_ROLES]; /* --role, repeatable */
    size_t nroles;
    const char *org, *display, *email, *lang, *region, *manager, *name, *label_en, *label_zh;
    const char *owner; /* import --owner */
    bool password_stdin;
    unsigned long long expires_days;
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
        } else if (strcmp(o, "--password-stdin") == 0) {
            a->password_stdin = true;
        } else if (strcmp(o, "--role") == 0) {
            if (need_value(i, argc, o)) return -1;
            if (a->nroles == TRL_AUTH_MAX_ROLES) {
                fprintf(stderr, "trellis: at most %d roles\n", TRL_AUTH_MAX_ROLES);
                return -1;
            }
            a->roles[a->nroles++] = argv[++i];
        } else if (strcmp(o, "--org") == 0 || strcmp(o, "--display") == 0 ||
                   strcmp(o, "--email") == 0 || strcmp(o, "--lang") == 0 ||
                   strcmp(o, "--region") == 0 || strcmp(o, "--manager") == 0 ||
                   strcmp(o, "--name") == 0 || strcmp(o, "--label-en") == 0 ||
                   strcmp(o, "--label-zh") == 0 || strcmp(o, "--owner") == 0) {
            if (need_value(i, argc, o)) return -1;
            const char *v = argv[++i];
            if (strcmp(o, "--org") == 0)
                a->org = v;
            else if (strcmp(o, "--display") == 0)
                a->display = v;
            else if (strcmp(o, "--email") == 0)
                a->email = v;
            else if (strcmp(o, "--lang") == 0)
                a->lang = v;
            else if (strcmp(o, "--region") == 0)
                a->region = v;
            else if (strcmp(o, "--manager") == 0)
                a->manager = v;
            else if (strcmp(o, "--name") == 0)
                a->name = v;
            else if (strcmp(o, "--label-en") == 0)
                a->label_en = v;
            else if (strcmp(o, "--owner") == 0)
                a->owner = v;
            else
                a->label_zh = v;
        } else if (strcmp(o, "--tls-cert") == 0 || strcmp(o, "--tls-key") == 0) {
            if (need_value(i, argc, o)) return -1;
            if (o[6] == 'c')
                a->so.tls_cert = argv[++i];
            else
                a->so.tls_key = argv[++i];
        } else if (strcmp(o, "--test-clock") == 0) {
            a->so.test_clock = true;
        } else if (strcmp(o, "--filter") == 0) {
            if (need_value(i, argc, o)) return -1;
            a->filter = argv[++i];
        } else if (strcmp(o, "--port-file") == 0) {
            if (need_value(i, argc, o)) return -1;
            a->port_file = argv[++i];
        } else if (strncmp(o, "--", 2) == 0) {
            static const char *num[] = {"--expires",         "--batch",           "--body-limit",
                                        "--file-limit",      "--conn-limit",      "--per-ip-limit",
                                        "--idle-timeout",    "--deadline",        "--threads",
                                        "--map-max",         "--max-scan",        "--map-initial",
                                        "--report-max-scan", "--export-max-rows", "--max-streams"};
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
            /* By name, so that the list above can change order freely. */
            if (strcmp(o, "--expires") == 0)
                a->expires_days = v;
            else if (strcmp(o, "--batch") == 0)
                a->batch = v;
            else if (strcmp(o, "--body-limit") == 0)
                a->so.body_limit = v;
            else if (strcmp(o, "--file-limit") == 0)
                a->so.file_limit = v;
            else if (strcmp(o, "--conn-limit") == 0)
                a->so.conn_limit = (unsigned)v;
            else if (strcmp(o, "--per-ip-limit") == 0)
                a->so.per_ip_limit = (unsigned)v;
            else if (strcmp(o, "--idle-timeout") == 0)
                a->so.idle_timeout_s = (unsigned)v;
            else if (strcmp(o, "--deadline") == 0)
                a->so.deadline_s = (unsigned)v;
            else if (strcmp(o, "--threads") == 0)
                a->so.threads = (unsigned)v;
            else if (strcmp(o, "--max-streams") == 0)
                a->so.max_streams = (unsigned)v;
            else if (strcmp(o, "--map-max") == 0)
                a->so.map_max = (size_t)v << 20;
            else if (strcmp(o, "--max-scan") == 0)
                a->so.max_scan = (int64_t)v;
            else if (strcmp(o, "--map-initial") == 0)
                a->so.map_initial = (size_t)v << 20;
            else if (strcmp(o, "--report-max-scan") == 0)
                a->so.report_max_scan = (int64_t)v;
            else if (strcmp(o, "--export-max-rows") == 0)
                a->so.export_max_rows = (int64_t)v;
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

void trl_cli_print_diag(const struct trl_diag *d)
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
        trl_cli_print_diag(&d);
        trl_diag_reset(&d);
        close(lock);
        return 1;
    }
    const char *listen = a->so.listen ? a->so.listen : "127.0.0.1:8080";
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
    fprintf(stderr, "trellis: listening on %s://%s:%u/ (Ctrl-C stops)\n",
            a->so.tls_cert ? "https" : "http", host, trl_server_port(s));
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
        trl_cli_print_diag(&d);
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
            trl_cli_print_diag(&d);
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
            trl_cli_print_diag(&d);
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
                trl_cli_print_diag(&d);
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
        trl_cli_print_diag(&d);
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
    if (!rc && problems >= 0) {
        /* Approvals and inboxes agree too. */
        int ap = trl_appr_check(t, &report);
        int au = trl_auth_check(t, &report);
        if (ap >= 0) ap = au < 0 ? au : ap + au;
        struct trl_diag nd;
        trl_diag_init(&nd);
        int nrc = trl_notify_check(t, &nd);
        if (ap < 0) {
            problems = ap;
        } else {
            problems += ap;
            if (nrc == TRL_ECORRUPT) {
                problems++;
                trl_buf_printf(&report, "inbox: %s\n", nd.message);
            } else if (nrc) {
                problems = nrc;
            }
        }
        trl_diag_reset(&nd);
    }
    trl_txn_end(t);
    if (rc)
        trl_cli_print_diag(&d);
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
        printf("ok: %zu type(s), %zu record(s): records, indexes, counters, history, approvals "
               "and inboxes agree\n",
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
    const char *org, *owner; /* --org, --owner or NULL */
};

/* Writes the index entries still waiting for their batch (record.h). */
static int flush_fn(struct trl_txn *t, void *arg)
{
    uint64_t written;
    return trl_rec_index_flush(t, arg, &written);
}

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
                                     .create_org = j->org,
                                     .create_owner = j->owner,
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
    if (!rc && (a->org || a->owner)) { /* both must exist: records nobody can reach are lost */
        struct trl_user u;
        if ((rc = trl_store_read(s, &t)) == 0) {
            if (a->org && !trl_auth_org_exists(t, a->org)) {
                fprintf(stderr, "trellis: no org '%s' (trellis org add)\n", a->org);
                rc = 1;
            } else if (a->owner && trl_auth_user_get(t, a->owner, &u) != 0) {
                fprintf(stderr, "trellis: no user '%s' (trellis user add)\n", a->owner);
                rc = 1;
            }
            trl_txn_end(t);
        }
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
            struct import_job j = {.ty = ty,
                                   .cat = cat,
                                   .lines = lines,
                                   .lineno = nos,
                                   .n = n,
                                   .d = &d,
                                   .org = a->org,
                                   .owner = a->owner};
            snprintf(j.who.user, sizeof(j.who.user), "admin");
            j.who.admin = true;
            int wrc = trl_store_write(s, import_fn, &j);
            if (wrc) {
                fprintf(stderr, "trellis: line %zu: ", nos[j.bad]);
                trl_cli_print_diag(&d);
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
    /* The last partial batch of index entries (record.h): the store is left fully indexed. */
    if (!rc && trl_store_write(s, flush_fn, cat)) {
        fprintf(stderr, "trellis: could not write the last index entries; `trellis serve` "
                        "writes them when it starts\n");
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

/* ---------------------------------------------------------------------------------------------
 * Users, orgs and tokens
 */
/* Reads one line from stdin into buf (without the newline). 0, or -1 at EOF/error. */
static int read_secret(char *buf, size_t n)
{
    if (!fgets(buf, (int)n, stdin)) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

enum auth_op {
    OP_USER_ADD,
    OP_USER_PASSWD,
    OP_USER_ACTIVE,
    OP_ORG_ADD,
    OP_TOKEN_CREATE,
    OP_TOKEN_REVOKE
};

struct auth_job {
    enum auth_op op;
    struct args *a;
    struct trl_diag *d;
    const char *pwhash; /* computed before the txn (hashing takes 50 ms) */
    bool active;        /* OP_USER_ACTIVE */
    char secret[80];    /* OP_TOKEN_CREATE output */
};

static int auth_op(struct trl_txn *t, struct auth_job *j);

/* Every change from the command line is audited, with "cli" as the actor. */
static int auth_fn(struct trl_txn *t, void *arg)
{
    struct auth_job *j = arg;
    int rc = auth_op(t, j);
    if (rc) return rc;
    static const char *actions[] = {"user_create", "user_update",  "user_update",
                                    "org_create",  "token_create", "token_revoke"};
    struct trl_clock clk;
    trl_clock_system(&clk);
    const char *detail = j->op == OP_USER_ACTIVE ? (j->active ? "enabled" : "disabled")
                         : j->pwhash             ? "password set"
                                                 : "";
    struct trl_audit a = {.actor = "cli",
                          .action = actions[j->op],
                          .target = j->a->pos[1],
                          .client = "",
                          .detail = detail};
    return trl_auth_audit(t, trl_clock_now(&clk), &a);
}

static int auth_op(struct trl_txn *t, struct auth_job *j)
{
    struct args *a = j->a;
    struct trl_clock clk;
    trl_clock_system(&clk);
    int64_t now = trl_clock_now(&clk);
    trl_diag_reset(j->d);
    struct trl_user u;
    int rc;
    switch (j->op) {
    case OP_USER_ADD:
        if (trl_auth_user_get(t, a->pos[1], &u) == 0) {
            trl_diag_set(j->d, TRL_EEXIST, "user '%s' exists", a->pos[1]);
            return TRL_EEXIST;
        }
        memset(&u, 0, sizeof(u));
        snprintf(u.name, sizeof(u.name), "%s", a->pos[1]);
        snprintf(u.display, sizeof(u.display), "%s", a->display ? a->display : a->pos[1]);
        snprintf(u.email, sizeof(u.email), "%s", a->email ? a->email : "");
        snprintf(u.lang, sizeof(u.lang), "%s", a->lang ? a->lang : "en");
        snprintf(u.org, sizeof(u.org), "%s", a->org ? a->org : "");
        snprintf(u.region, sizeof(u.region), "%s", a->region ? a->region : "");
        snprintf(u.manager, sizeof(u.manager), "%s", a->manager ? a->manager : "");
        for (size_t i = 0; i < a->nroles; i++)
            snprintf(u.roles[i], 64, "%s", a->roles[i]);
        u.nroles = a->nroles;
        u.active = true;
        u.created_at = now;
        if (j->pwhash) {
            snprintf(u.pwhash, sizeof(u.pwhash), "%s", j->pwhash);
            u.pw_changed_at = now;
        }
        return trl_auth_user_put(t, &u, j->d);
    case OP_USER_PASSWD:
    case OP_USER_ACTIVE:
        if ((rc = trl_auth_user_get(t, a->pos[1], &u))) {
            trl_diag_set(j->d, rc, "no user '%s'", a->pos[1]);
            return rc;
        }
        if (j->op == OP_USER_PASSWD) {
            snprintf(u.pwhash, sizeof(u.pwhash), "%s", j->pwhash);
            u.pw_changed_at = now;
        } else {
            u.active = j->active;
        }
        return trl_auth_user_put(t, &u, j->d);
    case OP_ORG_ADD:
        return trl_auth_org_put(t, a->pos[1], a->label_en, a->label_zh, j->d);
    case OP_TOKEN_CREATE: {
        struct trl_token tok = {0};
        if ((rc = trl_auth_user_get(t, a->pos[1], &u))) {
            trl_diag_set(j->d, rc, "no user '%s'", a->pos[1]);
            return rc;
        }
        if (a->name)
            snprintf(tok.name, sizeof(tok.name), "%s", a->name);
        else
            snprintf(tok.name, sizeof(tok.name), "%.40s-%lld", u.name, (long long)(now / 1000));
        snprintf(tok.user, sizeof(tok.user), "%s", u.name);
        if (a->nroles) {
            for (size_t i = 0; i < a->nroles; i++)
                snprintf(tok.roles[i], 64, "%s", a->roles[i]);
            tok.nroles = a->nroles;
        } else {
            memcpy(tok.roles, u.roles, sizeof(tok.roles));
            tok.nroles = u.nroles;
        }
        tok.created_at = now;
        tok.expires_at = a->expires_days ? now + (int64_t)a->expires_days * 86400000 : 0;
        return trl_auth_token_create(t, &tok, j->secret, j->d);
    }
    case OP_TOKEN_REVOKE:
        rc = trl_auth_token_revoke(t, a->pos[1]);
        if (rc == TRL_ENOTFOUND) trl_diag_set(j->d, rc, "no token '%s'", a->pos[1]);
        return rc;
    }
    return TRL_EINVAL;
}

static int run_auth(struct args *a, struct auth_job *j)
{
    struct trl_store *s = NULL;
    if (open_store(a->data, false, &s)) return 1;
    int rc = trl_store_write(s, auth_fn, j);
    trl_store_close(s);
    if (rc) {
        if (!j->d->code) trl_diag_set(j->d, rc, "%s", trl_err_title(rc, "en"));
        trl_cli_print_diag(j->d);
        return 1;
    }
    return 0;
}

static int list_auth(struct args *a, int (*fn)(struct trl_txn *, struct trl_buf *))
{
    struct trl_store *s = NULL;
    if (open_store(a->data, true, &s)) return 1;
    struct trl_txn *t = NULL;
    struct trl_buf out;
    trl_buf_init(&out);
    int rc = trl_store_read(s, &t);
    if (!rc) rc = fn(t, &out);
    trl_txn_end(t);
    if (!rc) printf("%s\n", out.data);
    trl_buf_free(&out);
    trl_store_close(s);
    return rc ? 1 : 0;
}

static int cmd_user(struct args *a)
{
    if (a->help || a->npos < 1) return fputs(help_user, a->help ? stdout : stderr), a->help ? 0 : 2;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0) return list_auth(a, trl_auth_user_list);
    if (a->npos != 2) return fputs(help_user, stderr), 2;
    struct trl_diag d;
    trl_diag_init(&d);
    struct auth_job j = {.a = a, .d = &d};
    char pw[1100], hash[128];
    int rc;
    if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
        bool want_pw = strcmp(sub, "passwd") == 0 || a->password_stdin;
        if (strcmp(sub, "add") == 0 && a->nroles == 0) {
            fprintf(stderr, "trellis: user add needs at least one --role\n");
            return 2;
        }
        if (want_pw) {
            if (read_secret(pw, sizeof(pw))) {
                fprintf(stderr, "trellis: no password on standard input\n");
                return 1;
            }
            rc = trl_auth_password_hash(pw, hash, &d);
            sodium_memzero(pw, sizeof(pw));
            if (rc) {
                trl_cli_print_diag(&d);
                trl_diag_reset(&d);
                return 1;
            }
            j.pwhash = hash;
        }
        j.op = strcmp(sub, "add") == 0 ? OP_USER_ADD : OP_USER_PASSWD;
    } else if (strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
        j.op = OP_USER_ACTIVE;
        j.active = strcmp(sub, "enable") == 0;
    } else {
        return fputs(help_user, stderr), 2;
    }
    rc = run_auth(a, &j);
    if (!rc) printf("user %s: %s done\n", a->pos[1], sub);
    trl_diag_reset(&d);
    return rc;
}

static int cmd_org(struct args *a)
{
    if (a->help || a->npos < 1) return fputs(help_org, a->help ? stdout : stderr), a->help ? 0 : 2;
    if (strcmp(a->pos[0], "list") == 0) return list_auth(a, trl_auth_org_list);
    if (strcmp(a->pos[0], "add") != 0 || a->npos != 2) return fputs(help_org, stderr), 2;
    struct trl_diag d;
    trl_diag_init(&d);
    struct auth_job j = {.op = OP_ORG_ADD, .a = a, .d = &d};
    int rc = run_auth(a, &j);
    if (!rc) printf("org %s added\n", a->pos[1]);
    trl_diag_reset(&d);
    return rc;
}

static int cmd_token(struct args *a)
{
    if (a->help || a->npos < 1)
        return fputs(help_token, a->help ? stdout : stderr), a->help ? 0 : 2;
    if (strcmp(a->pos[0], "list") == 0) return list_auth(a, trl_auth_token_list);
    if (a->npos != 2) return fputs(help_token, stderr), 2;
    struct trl_diag d;
    trl_diag_init(&d);
    struct auth_job j = {.a = a, .d = &d};
    if (strcmp(a->pos[0], "create") == 0)
        j.op = OP_TOKEN_CREATE;
    else if (strcmp(a->pos[0], "revoke") == 0)
        j.op = OP_TOKEN_REVOKE;
    else
        return fputs(help_token, stderr), 2;
    int rc = run_auth(a, &j);
    if (!rc && j.op == OP_TOKEN_CREATE)
        printf("%s\n", j.secret); /* the only time it is shown */
    else if (!rc)
        printf("token %s revoked\n", a->pos[1]);
    sodium_memzero(j.secret, sizeof(j.secret));
    trl_diag_reset(&d);
    return rc;
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
    if (strcmp(cmd, "user") == 0) return cmd_user(&a);
    if (strcmp(cmd, "org") == 0) return cmd_org(&a);
    if (strcmp(cmd, "token") == 0) return cmd_token(&a);
    if (strcmp(cmd, "hooks") == 0) return trl_cli_hooks(a.npos, a.pos, a.help, a.filter);
    fprintf(stderr, "trellis: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
