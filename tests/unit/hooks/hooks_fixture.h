/* hooks_fixture.h — what the hooks unit suites share: one sandboxed VM per test, a monotonic
 * clock for timing checks, and module versions derived from their text. */
#ifndef TRL_TEST_HOOKS_FIXTURE_H
#define TRL_TEST_HOOKS_FIXTURE_H

#include "hooks/hooks.h"

/* The test's VM, made by hooks_vm_setup (with hooks_vm_clock, NULL: the system clock) and freed
 * by hooks_vm_teardown (Check fixtures). */
extern struct trl_hooks_vm *vm;
extern const struct trl_clock *hooks_vm_clock;
void hooks_vm_setup(void);
void hooks_vm_teardown(void);

/* Monotonic seconds. */
double now_s(void);

/* A version label for text (a hash of it, in a static buffer): a different text under the same
 * module name compiles again. */
const char *version_of(const char *text);

#endif
