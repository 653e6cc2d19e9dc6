/*
 * replay_main.c — runs a libFuzzer target without libFuzzer, so every build (gcc included)
 * exercises it under ctest.
 *
 * Usage: <target>_replay CORPUS_DIR [N [SEED]]
 * Feeds every regular file of CORPUS_DIR to LLVMFuzzerTestOneInput, then N inputs (default
 * 10000) made from a fixed seed: mutations and splices of the corpus files, and now and then
 * bytes drawn from the corpus's own alphabet. The same arguments always replay the same inputs.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT 8192

struct seed {
    uint8_t *data; /* owned file contents */
    size_t n;      /* bytes */
};

struct corpus {
    struct seed *seeds; /* owned array */
    size_t n, cap;      /* used / allocated */
    uint8_t alpha[256]; /* distinct bytes seen in the corpus */
    size_t nalpha;      /* entries of alpha */
};

static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static size_t below(uint64_t *s, size_t n)
{
    return n ? (size_t)((next(s) >> 11) % n) : 0;
}

static int read_file(const char *path, struct seed *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) goto out;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) goto out;
    /* Exactly n bytes, so the sanitizer catches a read past the input. */
    uint8_t *exact = realloc(buf, n ? n : 1);
    if (!exact) goto out;
    buf = exact;
    out->data = buf;
    out->n = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int load_corpus(const char *dir, struct corpus *c)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open corpus directory %s\n", dir);
        return -1;
    }
    bool seen[256] = {false};
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 64;
            struct seed *ns = realloc(c->seeds, nc * sizeof(*ns));
            if (!ns) {
                rc = -1;
                break;
            }
            c->seeds = ns;
            c->cap = nc;
        }
        struct seed s;
        if (read_file(path, &s) != 0) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            rc = -1;
            break;
        }
        /* Run the seed exactly as stored. */
        LLVMFuzzerTestOneInput(s.data, s.n);
        for (size_t i = 0; i < s.n; i++)
            seen[s.data[i]] = true;
        c->seeds[c->n++] = s;
    }
    closedir(d);
    for (int b = 0; b < 256; b++)
        if (seen[b]) c->alpha[c->nalpha++] = (uint8_t)b;
    return rc;
}

/* One generated input in buf (REPLAY_MAX_INPUT bytes); returns its length. */
static size_t generate(const struct corpus *c, uint64_t *rs, uint8_t *buf)
{
    size_t n = 0;
    if (c->n == 0 || below(rs, 16) == 0) {
        size_t len = below(rs, 128);
        for (size_t i = 0; i < len; i++)
            buf[i] = c->nalpha && below(rs, 8) ? c->alpha[below(rs, c->nalpha)]
                                               : (uint8_t)below(rs, 256);
        return len;
    }
    const struct seed *s = &c->seeds[below(rs, c->n)];
    n = s->n < REPLAY_MAX_INPUT ? s->n : REPLAY_MAX_INPUT;
    memcpy(buf, s->data, n);
    size_t muts = 1 + below(rs, 8);
    for (size_t m = 0; m < muts; m++) {
        size_t pos = below(rs, n + 1);
        switch (below(rs, 6)) {
        case 0: /* replace a byte */
            if (n) buf[below(rs, n)] = c->nalpha ? c->alpha[below(rs, c->nalpha)] : 0;
            break;
        case 1: /* insert a byte */
            if (n < REPLAY_MAX_INPUT) {
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = c->nalpha && below(rs, 4) ? c->alpha[below(rs, c->nalpha)]
                                                     : (uint8_t)below(rs, 256);
                n++;
            }
            break;
        case 2: { /* delete a range */
            size_t len = below(rs, n - pos + 1);
            memmove(buf + pos, buf + pos + len, n - pos - len);
            n -= len;
            break;
        }
        case 3: { /* duplicate a range */
            size_t len = below(rs, n - pos + 1);
            if (len && n + len <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + len, buf + pos, n - pos);
                n += len;
            }
            break;
        }
        case 4: { /* splice a piece of another seed */
            const struct seed *o = &c->seeds[below(rs, c->n)];
            size_t from = below(rs, o->n + 1), len = below(rs, o->n - from + 1);
            if (n + len <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + len, buf + pos, n - pos);
                memcpy(buf + pos, o->data + from, len);
                n += len;
            }
            break;
        }
        default: /* truncate */
            n = pos;
            break;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    struct corpus c = {0};
    uint8_t *buf = NULL;
    int rc = EXIT_FAILURE;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [N [SEED]]\n", argv[0]);
        return EXIT_FAILURE;
    }
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
    uint64_t rs = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x5EEDF00DCAFEULL;
    if (rs == 0) rs = 1;
    if (load_corpus(argv[1], &c) != 0) goto out;
    buf = malloc(REPLAY_MAX_INPUT);
    if (!buf) goto out;
    for (long i = 0; i < count; i++) {
        size_t n = generate(&c, &rs, buf);
        /* An exact-size copy, so reading past the input is caught. */
        uint8_t *in = malloc(n ? n : 1);
        if (!in) goto out;
        memcpy(in, buf, n);
        LLVMFuzzerTestOneInput(in, n);
        free(in);
    }
    printf("replay: %zu corpus files, %ld generated inputs\n", c.n, count);
    rc = EXIT_SUCCESS;
out:
    free(buf);
    for (size_t i = 0; i < c.n; i++)
        free(c.seeds[i].data);
    free(c.seeds);
    return rc;
}
