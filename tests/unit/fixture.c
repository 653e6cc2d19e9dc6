/* fixture.c — see fixture.h. */
#define _XOPEN_SOURCE 700
#include "fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

char fx_base_dir[128];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fx_rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void base_setup(void)
{
    snprintf(fx_base_dir, sizeof(fx_base_dir), "/tmp/trl-unit-XXXXXX");
    if (!mkdtemp(fx_base_dir)) {
        perror("mkdtemp");
        abort();
    }
}

static void base_teardown(void)
{
    fx_rm_tree(fx_base_dir);
}

TCase *fx_tcase(const char *name, void (*su)(void), void (*td)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, su, td);
    return tc;
}
