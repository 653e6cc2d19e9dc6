/*
 * fixture — the temporary directory every store-backed unit suite works in.
 *
 * fx_tcase makes a TCase whose unchecked fixture (run by Check's parent process) creates
 * fx_base_dir under /tmp and removes it afterwards, so a failed test, whose forked child exits
 * before its own teardown, still leaves nothing behind. Tests make their stores inside it.
 */
#ifndef TRL_TEST_FIXTURE_H
#define TRL_TEST_FIXTURE_H

#include <check.h>

extern char fx_base_dir[128]; /* the suite's temporary directory, "" outside a TCase */

/* Removes a directory tree (like rm -rf); errors are ignored. */
void fx_rm_tree(const char *dir);
/* A TCase with the base directory fixture and the per-test fixture su/td. */
TCase *fx_tcase(const char *name, void (*su)(void), void (*td)(void));

#endif
